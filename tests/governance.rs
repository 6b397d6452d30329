//! Governance: policy errors that name file, line and fix; k-of-n approvals; scope enforcement;
//! signed revocation lists that stop verified, queued and running jobs; the committee's review.

mod common;

use common::{approval, bundle, component, host, verified, World};
use oar_guest::plan::{Aggregate, ContributionBounds, Plan};
use oar_host::bundle::DatasetUse;
use oar_host::job::JobError;
use oar_host::keys::KeyPair;
use oar_host::policy::{DatasetPolicy, Party, Policy, PolicyError};
use oar_host::review::Review;
use oar_host::revocation::{
    RevocationError, RevocationList, Revocations, RevokedKind, SignedRevocations,
};
use oar_host::session::Refusal;
use oar_host::verify::{verify, VerifyError};
use std::collections::BTreeSet;

fn none() -> RevocationList {
    RevocationList::empty()
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn plan(columns_group: &str) -> String {
    serde_json::to_string(&Plan {
        dataset: "cdr".into(),
        steps: vec![],
        group_by: vec![columns_group.into()],
        aggregates: vec![Aggregate::CountUnits { name: "n".into() }],
        bounds: ContributionBounds::default(),
        epsilon: 0.1,
        totals: false,
        key_selection: false,
    })
    .unwrap()
}

/// A world whose policy has a holder key, and that holder's key pair.
fn world_with_holder() -> (World, KeyPair) {
    let mut w = World::new(2, 3);
    let holder = KeyPair::from_seed("holder", "test holder");
    w.policy.holder = Some(Party {
        name: "holder".into(),
        key: holder.public(),
    });
    (w, holder)
}

fn list_with(kind: RevokedKind, id: &str, serial_bumps: usize) -> RevocationList {
    let mut l = RevocationList::empty();
    for _ in 1..serial_bumps {
        l.add(kind, id, "earlier", now());
    }
    l.add(kind, id, "test revocation", now());
    l
}

fn signed_by(list: RevocationList, signers: &[&KeyPair]) -> SignedRevocations {
    let mut s = SignedRevocations::new(list);
    for k in signers {
        s.sign(k);
    }
    s
}

// ---------------------------------------------------------------- policy files

const EXAMPLE: &str = include_str!("../policies/example.toml");

fn policy_error(text: &str) -> PolicyError {
    Policy::from_toml(text, "holder.toml").unwrap_err()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn policy_value_errors_name_the_file_the_line_and_the_fix() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            EXAMPLE.replace(
                "min_units = 10\n\n# Probability",
                "min_units = 5\n\n# Probability",
            ),
            "min_units = 5",
            "set it to 10 or more",
        ),
        (
            EXAMPLE.replace("quorum = 2", "quorum = 4"),
            "quorum = 4",
            "set it between 1 and 3",
        ),
        (
            EXAMPLE.replace("delta0 = 1e-9", "delta0 = 0.01"),
            "delta0 = 0.01",
            "e.g. 1e-9",
        ),
        (
            EXAMPLE.replace("memory_mib = 128", "memory_mib = 0"),
            "memory_mib = 0",
            "must be positive",
        ),
        (
            EXAMPLE
                .replace("datasets = [\"cdr\"]\n\n# Who", "datasets = []\n\n# Who")
                .replacen("datasets = [\"cdr\"]\n", "datasets = []\n", 1),
            "datasets = []",
            "\"*\" for any",
        ),
        (
            EXAMPLE.replace("min_units = 10\n# Total", "min_units = 3\n# Total"),
            "min_units = 3",
            "may only raise it",
        ),
    ];
    for (text, offending, fix) in cases {
        assert_ne!(text, EXAMPLE, "case {offending} must change the file");
        let err = policy_error(&text);
        let PolicyError::Invalid { line, .. } = &err else {
            panic!("{offending}: expected Invalid, got {err}");
        };
        let message = err.to_string();
        assert_eq!(*line, Some(line_of(&text, offending)), "{message}");
        assert!(
            message.starts_with(&format!(
                "policy holder.toml:{}:",
                line_of(&text, offending)
            )),
            "{message}"
        );
        assert!(message.contains(fix), "{message}");
    }
}

#[test]
fn a_member_listed_twice_is_refused_at_the_repeated_key() {
    let mut text = EXAMPLE.to_string();
    let first_key = "a089c561b90ea3934b525aae1b59de3d5bf04eaf79af6cef1ad3416998d0a54e";
    text = text.replace(
        "5971173816d3bdf20318f8d0050b9bf3ec3d6c88d4d70d0eea97385118a4bc43",
        first_key,
    );
    let err = policy_error(&text);
    let message = err.to_string();
    let PolicyError::Invalid { line, field, .. } = err else {
        panic!("{message}");
    };
    assert_eq!(field, "committee.members[2].key");
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.iter().rposition(|l| l.contains(first_key)).unwrap() + 1;
    assert_eq!(line, Some(last), "{message}");
    assert!(message.contains("count twice"), "{message}");
}

#[test]
fn policy_syntax_errors_name_the_line_and_point_to_the_documented_example() {
    let text = EXAMPLE.replace("max_queries_per_run = 16", "max_querys_per_run = 16");
    let err = policy_error(&text);
    assert!(matches!(err, PolicyError::Parse { .. }));
    let message = err.to_string();
    assert!(
        message.contains(&format!("line {}", line_of(&text, "max_querys_per_run"))),
        "{message}"
    );
    assert!(message.contains("policies/example.toml"), "{message}");

    let text = EXAMPLE.replace(
        "a089c561b90ea3934b525aae1b59de3d5bf04eaf79af6cef1ad3416998d0a54e",
        "not-a-key",
    );
    let message = policy_error(&text).to_string();
    assert!(message.contains("oar keygen"), "{message}");
}

// ---------------------------------------------------------------- approvals and scope

#[test]
fn an_author_may_only_submit_modules_for_their_datasets() {
    let mut w = World::new(1, 1);
    w.policy.authors[0].datasets = vec!["smart-meter".into()];
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    match verify(&b, &a, &w.policy, &none(), now()).unwrap_err() {
        VerifyError::AuthorNotAllowed { dataset, .. } => assert_eq!(dataset, "cdr"),
        other => panic!("{other}"),
    }
}

#[test]
fn an_approval_wider_than_the_manifest_is_refused() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    for widen in [
        |r: &mut Vec<DatasetUse>| r[0].columns.push("cell_id".into()),
        |r: &mut Vec<DatasetUse>| {
            r.push(DatasetUse {
                name: "meters".into(),
                columns: vec!["kwh".into()],
            })
        },
    ] {
        let mut a = approval(&w, &b, 0);
        widen(&mut a.record.datasets);
        a.sign(&w.members[0]);
        let err = verify(&b, &a, &w.policy, &none(), now()).unwrap_err();
        assert!(
            matches!(err, VerifyError::ApprovalWiderThanManifest { .. }),
            "{err}"
        );
    }
}

#[test]
fn scope_violations_at_query_time_are_refused_with_their_own_reason() {
    let mut w = World::new(1, 1);
    w.policy.datasets.insert(
        "cdr".into(),
        DatasetPolicy {
            deny_columns: vec!["region".into()],
            ..Default::default()
        },
    );
    let (h, _) = host(&w, 10.0);
    let mut s = h.session("scope-1", "stats-office", verified(&w, "population"));
    s.query(&plan("region")).unwrap_err();
    // A narrower approval: the module's manifest reads region, the approval only timestamp.
    let b = bundle(&w, component("population"));
    let mut a = approval(&w, &b, 0);
    a.record.datasets[0].columns.retain(|c| c != "region");
    a.sign(&w.members[0]);
    let narrow = std::sync::Arc::new(verify(&b, &a, &w.policy, &none(), now()).unwrap());
    let mut n = h.session("scope-2", "stats-office", narrow);
    n.query(&plan("region")).unwrap_err();
    // A requester the policy does not list for the dataset.
    let mut other = h.session("scope-3", "nobody", verified(&w, "population"));
    other.query(&plan("region")).unwrap_err();

    let denied = s.finish().refusals;
    assert!(
        matches!(&denied[0], Refusal::ColumnDenied { column, .. } if column == "region"),
        "{denied:?}"
    );
    let narrowed = n.finish().refusals;
    assert!(
        matches!(&narrowed[0], Refusal::ColumnNotApproved { column, .. } if column == "region"),
        "{narrowed:?}"
    );
    let outsider = other.finish().refusals;
    assert!(
        matches!(&outsider[0], Refusal::RequesterNotAllowed { .. }),
        "{outsider:?}"
    );
}

#[test]
fn a_per_dataset_policy_raises_the_minimum_and_sets_the_budget() {
    let mut w = World::new(1, 1);
    w.policy.datasets.insert(
        "cdr".into(),
        DatasetPolicy {
            min_units: Some(1_000_000),
            epsilon_per_requester: Some(0.25),
            ..Default::default()
        },
    );
    let (h, _) = host(&w, 10.0);
    let mut s = h.session("ds-1", "stats-office", verified(&w, "population"));
    assert!((s.budget_remaining("cdr") - 0.25).abs() < 1e-12);
    let table: oar_guest::table::Table =
        serde_json::from_str(&s.query(&plan("region")).unwrap()).unwrap();
    // No region of the small synthetic set has a million subscribers: everything is suppressed.
    assert!(table.rows.iter().all(|r| r.suppressed.is_some()));
}

// ---------------------------------------------------------------- revocation

#[test]
fn revocation_lists_need_the_holder_or_a_committee_quorum() {
    let (w, holder) = world_with_holder();
    let list = list_with(RevokedKind::Module, &"ab".repeat(32), 1);
    let outsider = KeyPair::from_seed("x", "outsider");
    let store = Revocations::new();
    for signers in [vec![], vec![&w.members[0]], vec![&outsider, &w.members[1]]] {
        let err = store
            .install(&signed_by(list.clone(), &signers), &w.policy)
            .unwrap_err();
        assert!(
            matches!(err, RevocationError::NotAuthorised { quorum: 2, .. }),
            "{err}"
        );
    }
    // The same member twice still counts once.
    let twice = SignedRevocations {
        list: list.clone(),
        signatures: vec![
            signed_by(list.clone(), &[&w.members[0]]).signatures[0].clone(),
            signed_by(list.clone(), &[&w.members[0]]).signatures[0].clone(),
        ],
    };
    assert!(store.install(&twice, &w.policy).is_err());
    store
        .install(
            &signed_by(list.clone(), &[&w.members[0], &w.members[2]]),
            &w.policy,
        )
        .expect("quorum of 2 installs");
    store
        .install(&signed_by(list.clone(), &[&holder]), &w.policy)
        .expect("the holder alone installs (same list again is idempotent)");
}

#[test]
fn a_list_edited_after_signing_or_rolled_back_is_refused() {
    let (w, holder) = world_with_holder();
    let store = Revocations::new();
    let v2 = list_with(RevokedKind::Module, &"ab".repeat(32), 2);
    let mut tampered = signed_by(v2.clone(), &[&holder]);
    tampered.list.entries.pop();
    assert!(matches!(
        store.install(&tampered, &w.policy),
        Err(RevocationError::NotAuthorised { .. })
    ));
    store
        .install(&signed_by(v2.clone(), &[&holder]), &w.policy)
        .unwrap();
    let v1 = list_with(RevokedKind::Module, &"ab".repeat(32), 1);
    assert!(matches!(
        store.install(&signed_by(v1, &[&holder]), &w.policy),
        Err(RevocationError::Rollback {
            offered: 1,
            installed: 2
        })
    ));
    let mut reused = v2.clone();
    reused.entries[0].reason = "different".into();
    assert!(matches!(
        store.install(&signed_by(reused, &[&holder]), &w.policy),
        Err(RevocationError::SerialReused { serial: 2 })
    ));
    assert_eq!(store.snapshot(), v2);
}

#[test]
fn revoked_modules_approvals_authors_and_members_are_refused_at_verification() {
    let (w, _) = world_with_holder();
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 2);
    let digest = hex::encode(a.record.digest());
    let cases = [
        (list_with(RevokedKind::Module, &b.module_hash, 1), "module"),
        (list_with(RevokedKind::Approval, &digest, 1), "approval"),
        (
            list_with(RevokedKind::Key, &w.author.public().to_hex(), 1),
            "author",
        ),
        (
            list_with(RevokedKind::Key, &w.members[1].public().to_hex(), 1),
            "member",
        ),
    ];
    for (list, what) in cases {
        let err = verify(&b, &a, &w.policy, &list, now()).unwrap_err();
        let ok = match what {
            "module" => matches!(err, VerifyError::ModuleRevoked { .. }),
            "approval" => matches!(err, VerifyError::ApprovalRevoked { .. }),
            "author" => matches!(err, VerifyError::KeyRevoked { role: "author", .. }),
            _ => {
                matches!(&err, VerifyError::QuorumNotMet { valid: 1, ignored, .. } if ignored[0].contains("revoked"))
            }
        };
        assert!(ok, "{what}: {err}");
        assert!(err.to_string().contains("revoked"), "{err}");
    }
    // Revoking a member whose signature was not needed leaves the quorum intact.
    let mut three = a.clone();
    three.sign(&w.members[2]);
    let list = list_with(RevokedKind::Key, &w.members[1].public().to_hex(), 1);
    verify(&b, &three, &w.policy, &list, now()).expect("2 of the 3 signers remain");
}

#[test]
fn a_revocation_stops_queued_and_running_jobs() {
    let (w, holder) = world_with_holder();
    let (h, ledger) = host(&w, 10.0);
    let module = verified(&w, "population");

    // Running: the first query is answered; after the list arrives the next is refused.
    let mut running = h.session("run-1", "stats-office", module.clone());
    running
        .query(&plan("region"))
        .expect("answered before revocation");
    let list = list_with(RevokedKind::Module, module.module_hash(), 1);
    h.revocations()
        .install(&signed_by(list, &[&holder]), &w.policy)
        .unwrap();
    running.query(&plan("region")).unwrap_err();
    let record = running.finish();
    assert!(matches!(
        record.refusals[0],
        Refusal::Revoked(VerifyError::ModuleRevoked { .. })
    ));
    assert_eq!(
        record.charges.len(),
        1,
        "only the answered query was charged"
    );

    // Queued: verified before the revocation, started after it.
    let out = h.run(module, "stats-office", r#"{"epsilon": 0.5}"#);
    assert!(
        matches!(
            out.result,
            Err(JobError::Revoked(VerifyError::ModuleRevoked { .. }))
        ),
        "{:?}",
        out.result.err()
    );
    assert!((common::spent(&ledger, "stats-office") - 0.1).abs() < 1e-12);
}

#[test]
fn a_revoked_requester_key_cannot_start_a_job() {
    let (w, holder) = world_with_holder();
    let (h, _) = host(&w, 10.0);
    let list = list_with(RevokedKind::Key, &w.requester.public().to_hex(), 1);
    h.revocations()
        .install(&signed_by(list, &[&holder]), &w.policy)
        .unwrap();
    let out = h.run(verified(&w, "population"), "stats-office", "{}");
    match out.result {
        Err(JobError::Revoked(VerifyError::KeyRevoked { role, .. })) => {
            assert_eq!(role, "requester")
        }
        other => panic!("{:?}", other.err()),
    }
}

// ---------------------------------------------------------------- every refusal is distinct

#[test]
fn every_verification_refusal_has_its_own_variant_and_message() {
    let (w, _) = world_with_holder();
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 2);
    let mut errors: Vec<VerifyError> = Vec::new();
    let mut run = |b: &oar_host::bundle::Bundle,
                   a: &oar_host::approval::Approval,
                   p: &Policy,
                   l: &RevocationList,
                   t| errors.push(verify(b, a, p, l, t).unwrap_err());

    let mut tampered = b.clone();
    tampered.component.push(0);
    run(&tampered, &a, &w.policy, &none(), now());
    let mut untrusted = w.policy.clone();
    untrusted.authors.clear();
    run(&b, &a, &untrusted, &none(), now());
    let mut resigned = b.clone();
    resigned.manifest.purpose.push('!');
    run(&resigned, &a, &w.policy, &none(), now());
    let other = bundle(&w, component("oar_test_guest_spin"));
    run(&other, &a, &w.policy, &none(), now());
    let mut other_manifest = bundle(&w, component("population"));
    other_manifest.manifest.version = "9".into();
    let other_manifest = oar_host::bundle::Bundle::sign(
        other_manifest.component,
        other_manifest.manifest,
        &w.author,
    );
    run(&other_manifest, &a, &w.policy, &none(), now());
    run(&b, &approval(&w, &b, 1), &w.policy, &none(), now());
    run(
        &b,
        &a,
        &w.policy,
        &none(),
        now() - chrono::Duration::days(1),
    );
    run(
        &b,
        &a,
        &w.policy,
        &none(),
        now() + chrono::Duration::days(60),
    );
    let mut bad_eps = approval(&w, &b, 0);
    bad_eps.record.epsilon_per_run = -1.0;
    bad_eps.sign(&w.members[0]);
    bad_eps.sign(&w.members[1]);
    run(&b, &bad_eps, &w.policy, &none(), now());
    let mut narrow = w.policy.clone();
    narrow.authors[0].datasets = vec!["meters".into()];
    run(&b, &a, &narrow, &none(), now());
    let mut wide = approval(&w, &b, 0);
    wide.record.datasets[0].columns.push("cell_id".into());
    wide.sign(&w.members[0]);
    wide.sign(&w.members[1]);
    run(&b, &wide, &w.policy, &none(), now());
    run(
        &b,
        &a,
        &w.policy,
        &list_with(RevokedKind::Module, &b.module_hash, 1),
        now(),
    );
    let digest = hex::encode(a.record.digest());
    run(
        &b,
        &a,
        &w.policy,
        &list_with(RevokedKind::Approval, &digest, 1),
        now(),
    );
    let author = w.author.public().to_hex();
    run(
        &b,
        &a,
        &w.policy,
        &list_with(RevokedKind::Key, &author, 1),
        now(),
    );

    let kinds: BTreeSet<String> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.len(), errors.len(), "{kinds:?}");
    assert_eq!(kinds.len(), 14);
    let messages: BTreeSet<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), errors.len());
}

// ---------------------------------------------------------------- review

#[test]
fn review_shows_what_a_committee_member_needs() {
    let (w, _) = world_with_holder();
    let b = bundle(&w, component("population"));
    let mut a = approval(&w, &b, 1);
    a.sign(&KeyPair::from_seed("x", "outsider"));
    let mut policy = w.policy.clone();
    policy.datasets.insert(
        "cdr".into(),
        DatasetPolicy {
            deny_columns: vec!["timestamp".into()],
            ..Default::default()
        },
    );
    let review = Review::of(&b, Some(&policy), Some(&a));
    let text = review.to_string();
    for expected in [
        "MODULE   population",
        "signed by trusted author 'author'",
        "signature valid: yes; component intact: yes",
        "dataset 'cdr': columns timestamp, region",
        "the holder's policy denies: timestamp",
        "at least 10 distinct people",
        "at most epsilon 2 per run",
        "population_by_region_day",
        "WHAT IT CANNOT DO",
        &b.module_hash,
        &hex::encode(a.record.digest()),
        "someone not on the roster",
        "quorum: 1 of 2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let json: serde_json::Value = serde_json::to_value(&review).unwrap();
    assert_eq!(json["module_hash"], b.module_hash);
    assert_eq!(json["datasets"][0]["columns"][1], "region");
    assert_eq!(json["approval"]["matches_bundle"], true);
    assert_eq!(json["approval"]["quorum"], serde_json::json!([1, 2]));
    assert_eq!(json["max_epsilon_per_run"], 2.0);

    // Without a policy or approval it still shows the module and the hashes to bind.
    let bare = Review::of(&b, None, None).to_string();
    assert!(bare.contains("not a trusted author in the policy, or no policy given"));
    assert!(bare.contains("No approval given"));
}

#[test]
fn the_holder_alone_cannot_drop_a_committee_revocation() {
    // Finding 12.9: a holder-signed list with a higher serial could simply leave out the
    // committee's entries and so un-revoke a module the committee had stopped.
    let (w, holder) = world_with_holder();
    let store = Revocations::new();
    let module = "ab".repeat(32);
    let committee_list = list_with(RevokedKind::Module, &module, 1);
    store
        .install(
            &signed_by(committee_list.clone(), &[&w.members[0], &w.members[1]]),
            &w.policy,
        )
        .unwrap();
    let mut dropped = RevocationList::empty();
    // (Two additions: serial 2, past the installed 1.)
    dropped.add(RevokedKind::Key, &"cd".repeat(32), "holder's own", now());
    dropped.add(RevokedKind::Key, &"cd".repeat(32), "holder's own", now());
    assert!(dropped.serial > committee_list.serial);
    let err = store
        .install(&signed_by(dropped.clone(), &[&holder]), &w.policy)
        .unwrap_err();
    assert!(err.to_string().contains(&module), "{err}");
    assert_eq!(store.snapshot(), committee_list);
    // The holder may add; a committee quorum may remove.
    let mut added = committee_list.clone();
    added.add(RevokedKind::Key, &"cd".repeat(32), "holder's own", now());
    store
        .install(&signed_by(added, &[&holder]), &w.policy)
        .expect("the holder adds entries");
    dropped.add(RevokedKind::Key, &"cd".repeat(32), "holder's own", now());
    store
        .install(
            &signed_by(dropped, &[&w.members[0], &w.members[2]]),
            &w.policy,
        )
        .expect("a committee quorum may lift a revocation");
}
