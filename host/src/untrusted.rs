//! Entry points for every parser of bytes OAR receives from outside, shared by the fuzz
//! targets (`fuzz/`) and `tests/fuzz_corpus.rs`. Each takes arbitrary bytes and must return
//! (any result) without panicking.
//!
//! Each runs the real parser and then the checks the host makes next on what it parsed,
//! against one fixed world ([`fixture`]): fixed keys, a policy, a signed bundle of a
//! few-byte stand-in component, its approval and a revocation list, and a tiny synthetic
//! dataset. Each returns whether the input was accepted all the way through, so a test can
//! show that its seeds reach the deepest checks (a fuzzer only needs the absence of panics).
//!
//! | entry point | what arrives from outside | path it takes |
//! |---|---|---|
//! | [`plan`] | a module's `query` call | [`Session::query`] up to the ledger, never the data |
//! | [`table`] | a module's `emit` call | [`Session::emit`], then the release's CSV, Parquet and JSON |
//! | [`manifest`] | `manifest.toml` given to `oar sign` | [`Manifest::from_toml`], sign, write, read, [`verify()`] |
//! | [`bundle`] | a `.oarb` file or upload | [`Bundle::from_json`], [`verify()`] |
//! | [`approval`] | an approval file or upload | serde, the server's signature check, [`verify()`] |
//! | [`revocations`] | a revocation list file or upload | serde, [`Revocations::install`], revocation checks |
//! | [`signature_headers`] | a signed HTTP request | [`oar_httpsig::fuzz::signature_headers`] |
//!
//! Some of them assert a property on the way (a plan survives a JSON round trip; a plan is
//! never answered from a zero budget; a bundle that verifies still does once written and read
//! back): a failed assertion is a finding like a panic.

use crate::approval::{Approval, ApprovalRecord};
use crate::bundle::{Bundle, DatasetUse, Manifest, OutputDecl};
use crate::dataset::{Catalog, Dataset};
use crate::keys::KeyPair;
use crate::ledger::{Ledger, SqliteLedger};
use crate::policy::{Author, Budget, Committee, DatasetPolicy, Limits, Party, Policy, Requester};
use crate::release::provenance::{AnsweredQuery, QueryFigures};
use crate::release::ReleasedTable;
use crate::revocation::{RevocationList, Revocations, Revoked, RevokedKind, SignedRevocations};
use crate::session::{Refusal, Session, MAX_PLAN_BYTES};
use crate::verify::{verify, VerifiedModule};
use chrono::{DateTime, TimeZone, Utc};
use oar_guest::plan::Plan;
use oar_guest::table::{ReleaseInfo, Suppression, Table};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The requester every [`Session`] of the fixture runs for.
pub const REQUESTER: &str = "stats-office";
/// The one output table the fixture's manifest declares (what [`table`] emits under).
pub const OUTPUT: &str = "by_region";
/// The stand-in component of the fixture's bundle: nothing here compiles or runs it.
pub const COMPONENT: &[u8] = b"\0asm(fuzz)";

/// The instant every check runs at: 2026-01-01T00:00:00Z, the same as
/// [`oar_httpsig::fuzz::NOW`]. The fixture's approval is valid from 2025 to 2027.
pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(oar_httpsig::fuzz::NOW, 0)
        .single()
        .expect("a valid instant")
}

/// The fixed world the entry points check inputs against. Its keys come from fixed seeds, so
/// seeds for a corpus can be signed with them (see `tests/fuzz_corpus.rs`).
pub struct Fixture {
    /// The trusted author (may read dataset `cdr` only).
    pub author: KeyPair,
    /// The committee: three members, quorum two.
    pub members: Vec<KeyPair>,
    /// The data holder (may sign revocation lists that add entries).
    pub holder: KeyPair,
    /// The requester [`REQUESTER`].
    pub requester: KeyPair,
    /// The policy: the parties above; column `cell_id` of `cdr` denied; a budget of zero, so
    /// a plan that passes every check is refused at the ledger, before it touches data.
    pub policy: Arc<Policy>,
    /// The bundle: [`COMPONENT`] under [`Fixture::manifest`], signed by the author.
    pub bundle: Bundle,
    /// The bundle's approval, signed by the first two members.
    pub approval: Approval,
    /// The list a host holds before [`revocations`] offers it another: serial 5, two entries,
    /// signed by the holder alone.
    pub revocations: SignedRevocations,
    /// The one query a run answered, for [`table`]'s attestation against an answer.
    pub answer: AnsweredQuery,
    module: Arc<VerifiedModule>,
    catalog: Arc<Catalog>,
    ledger: Arc<SqliteLedger>,
}

impl Fixture {
    /// The manifest of the fixture's bundle: dataset `cdr` (columns `timestamp`, `region`,
    /// `cell_id`), one output [`OUTPUT`].
    pub fn manifest() -> Manifest {
        Manifest {
            name: "fuzz".into(),
            version: "0.1.0".into(),
            author: "test author".into(),
            purpose: "fuzzing".into(),
            max_epsilon_per_run: 2.0,
            datasets: vec![DatasetUse {
                name: "cdr".into(),
                columns: vec!["timestamp".into(), "region".into(), "cell_id".into()],
            }],
            outputs: vec![OutputDecl {
                name: OUTPUT.into(),
                description: String::new(),
            }],
        }
    }

    /// An approval of `bundle`'s whole scope, valid 2025 to 2027, signed by a quorum.
    pub fn approve(&self, bundle: &Bundle) -> Approval {
        approve(&self.members, bundle)
    }

    /// A fresh run of the fixture's module for [`REQUESTER`], with no list revoking anything.
    pub fn session(&self, job_id: &str) -> Session {
        Session::new(
            job_id,
            REQUESTER,
            self.module.clone(),
            self.catalog.clone(),
            self.policy.clone(),
            self.ledger.clone() as Arc<dyn Ledger>,
            Arc::new(Revocations::new()),
        )
    }
}

/// The fixture, built on first use (it writes a tiny dataset under the temporary directory,
/// shared by every process that uses it).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let key = |name: &str| KeyPair::from_seed(name, &format!("oar fuzz {name}"));
    let author = key("author");
    let members: Vec<KeyPair> = (0..3).map(|i| key(&format!("member-{i}"))).collect();
    let holder = key("holder");
    let requester = key(REQUESTER);
    let party = |k: &KeyPair| Party {
        name: k.name().into(),
        key: k.public(),
    };
    let policy = Arc::new(Policy {
        min_units: 10,
        delta0: 1e-9,
        dominance: Default::default(),
        holder: Some(party(&holder)),
        limits: Limits::default(),
        budget: Budget {
            epsilon_per_requester_dataset: 0.0,
            ..Budget::default()
        },
        authors: vec![Author {
            name: author.name().into(),
            key: author.public(),
            datasets: vec!["cdr".into()],
        }],
        committee: Committee {
            quorum: 2,
            members: members.iter().map(party).collect(),
        },
        requesters: vec![Requester {
            name: REQUESTER.into(),
            key: requester.public(),
            datasets: vec!["cdr".into()],
        }],
        datasets: [(
            "cdr".to_string(),
            DatasetPolicy {
                deny_columns: vec!["cell_id".into()],
                ..DatasetPolicy::default()
            },
        )]
        .into(),
    });
    let bundle = Bundle::sign(COMPONENT.to_vec(), Fixture::manifest(), &author);
    let at = |y, m, d| {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("valid")
    };
    let mut revocations = SignedRevocations::new(RevocationList {
        serial: 5,
        issued_at: at(2025, 6, 1),
        entries: vec![
            Revoked {
                kind: RevokedKind::Key,
                id: key("former-member").public().to_hex(),
                reason: "key lost".into(),
                revoked_at: at(2025, 5, 1),
            },
            Revoked {
                kind: RevokedKind::Module,
                id: "ab".repeat(32),
                reason: "withdrawn by its author".into(),
                revoked_at: at(2025, 6, 1),
            },
        ],
    });
    revocations.sign(&holder);
    let mut answer = Table::new(["region"], ["n"]);
    answer.push(vec!["R01".into()], vec![120.0]);
    answer.push_suppressed(vec!["R21".into()], Suppression::MinimumUnits);
    let release = ReleaseInfo {
        epsilon: 0.5,
        threshold: 31.0,
        min_units: 10,
        released_cells: 1,
        suppressed_cells: 1,
        suppressed_minimum_units: 1,
        ..ReleaseInfo::default()
    };
    answer.release = Some(release.clone());
    let answer = AnsweredQuery {
        figures: QueryFigures {
            query: 0,
            dataset: "cdr".into(),
            release,
            columns: Vec::new(),
        },
        table: answer,
    };
    let approval = approve(&members, &bundle);
    let module = verify(&bundle, &approval, &policy, &RevocationList::empty(), now())
        .expect("the fixture's bundle and approval verify");
    let mut catalog = Catalog::new();
    catalog.register(tiny_cdr());
    Fixture {
        author,
        members,
        holder,
        requester,
        policy,
        bundle,
        approval,
        revocations,
        answer,
        module: Arc::new(module),
        catalog: Arc::new(catalog),
        ledger: Arc::new(SqliteLedger::in_memory()),
    }
}

/// An approval of `bundle`'s whole scope, valid 2025 to 2027, signed by the first two of
/// `members`.
fn approve(members: &[KeyPair], bundle: &Bundle) -> Approval {
    let year = |y| {
        Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
    };
    let total = bundle.manifest.max_epsilon_per_run.max(10.0);
    let record = ApprovalRecord::for_bundle(bundle, total, year(2025), year(2027));
    let mut approval = Approval::new(record);
    for m in &members[..2] {
        approval.sign(m);
    }
    approval
}

/// The synthetic call records (`cdr`: `timestamp`, `region`, `cell_id`, unit
/// `subscriber_id`), a few hundred rows written once under the temporary directory and shared
/// by every process (written aside, then renamed into place, so none reads half of it).
fn tiny_cdr() -> Dataset {
    let spec = crate::synth::cdr::CdrSpec {
        rows: 400,
        ..Default::default()
    };
    let shared = std::env::temp_dir().join("oar-untrusted-cdr-v1");
    let descriptor = |dir: &Path| dir.join("cdr.toml");
    if let Ok(ds) = Dataset::open(&descriptor(&shared)) {
        return ds;
    }
    let own: PathBuf =
        std::env::temp_dir().join(format!("oar-untrusted-cdr-{}", std::process::id()));
    spec.write(&own)
        .expect("a tiny synthetic dataset can be written under the temporary directory");
    let dir = match std::fs::rename(&own, &shared) {
        Ok(()) => shared,
        Err(_) if Dataset::open(&descriptor(&shared)).is_ok() => {
            let _ = std::fs::remove_dir_all(&own);
            shared
        }
        Err(_) => own,
    };
    Dataset::open(&descriptor(&dir)).expect("the tiny dataset opens")
}

/// A module's plan, as its `query` call hands it to the host (a WIT string, so UTF-8), through
/// [`Session::query`]: the size limit, JSON, scope, epsilon, the per-run cap, validation and
/// compilation against the dataset's public schema, the approval's columns and the policy's
/// denied ones, and the ledger, which refuses for want of budget (the fixture's is zero), so
/// no plan ever touches the data.
///
/// Also asserts that a plan the host parses survives a JSON round trip unchanged, and that
/// no plan is answered or charged. Returns whether the plan passed every check before the
/// ledger.
pub fn plan(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    if text.len() <= MAX_PLAN_BYTES {
        if let Ok(parsed) = serde_json::from_str::<Plan>(text) {
            let json = serde_json::to_string(&parsed).expect("a parsed plan serializes");
            let again: Plan = serde_json::from_str(&json).expect("a serialized plan parses");
            assert_eq!(again, parsed, "a plan changed in a JSON round trip");
        }
    }
    let mut session = fixture().session("fuzz-plan");
    let answered = session.query(text);
    assert!(answered.is_err(), "a plan was answered from a zero budget");
    let record = session.finish();
    assert!(record.charges.is_empty(), "a refused plan was charged");
    matches!(record.refusals[..], [Refusal::BudgetExhausted { .. }])
}

/// A table a module emits (a WIT string), through [`Session::emit`] under the declared
/// [`OUTPUT`]: size and row limits, JSON, shape, attestation. An emitted table is then
/// written as a release writes it (CSV, Parquet, JSON), and also attested against a run that
/// answered [`Fixture::answer`]. Returns whether the table was emitted.
pub fn table(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let f = fixture();
    let mut session = f.session("fuzz-table");
    let emitted = session.emit(OUTPUT, text).is_ok();
    for (name, table, provenance) in session.finish().outputs {
        let _ = crate::release::to_csv(&table);
        let _ = crate::release::to_parquet(&table);
        let released = ReleasedTable {
            name,
            table,
            provenance,
        };
        serde_json::to_vec_pretty(&released).expect("released tables serialize");
    }
    if emitted {
        let table: Table = serde_json::from_str(text).expect("an emitted table parses");
        let _ = crate::release::provenance::attest(table, std::slice::from_ref(&f.answer));
    }
    emitted
}

/// A `manifest.toml` as `oar sign` reads it ([`Manifest::from_toml`]), then what follows:
/// its hash, a bundle of it signed by the fixture's author, written as a `.oarb` file is and
/// read back, approved for its whole scope and verified against the policy.
///
/// Asserts that the bundle read back verifies exactly when the one signed does (the file
/// format loses nothing the signatures cover). Returns whether it verified.
pub fn manifest(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(manifest) = Manifest::from_toml(text) else {
        return false;
    };
    let f = fixture();
    let _ = manifest.hash();
    let signed = Bundle::sign(COMPONENT.to_vec(), manifest, &f.author);
    let approval = f.approve(&signed);
    let check = |b: &Bundle| verify(b, &approval, &f.policy, &RevocationList::empty(), now());
    let file = serde_json::to_vec_pretty(&signed).expect("bundles serialize");
    let read = Bundle::from_json(&file).expect("a written bundle reads back");
    let verified = check(&signed).is_ok();
    assert_eq!(
        check(&read).is_ok(),
        verified,
        "a bundle verified differently once written and read back"
    );
    verified
}

/// A bundle file or upload ([`Bundle::from_json`]), verified against the fixture's approval,
/// and against an approval made for it (so the checks after the hashes run for any bundle).
/// Returns whether it verified against the fixture's approval.
pub fn bundle(data: &[u8]) -> bool {
    let Ok(bundle) = Bundle::from_json(data) else {
        return false;
    };
    let f = fixture();
    let _ = bundle.digest();
    let check = |a: &Approval| verify(&bundle, a, &f.policy, &RevocationList::empty(), now());
    let _ = check(&f.approve(&bundle));
    check(&f.approval).is_ok()
}

/// An approval file or upload: JSON, its digest, the server's check on upload (every
/// signature is by a committee member and verifies over the record), then verification of
/// the fixture's bundle under it. Returns whether the bundle verified under it.
pub fn approval(data: &[u8]) -> bool {
    let Ok(approval) = serde_json::from_slice::<Approval>(data) else {
        return false;
    };
    let f = fixture();
    let _ = approval.check_member_signatures(&f.policy);
    verify(
        &f.bundle,
        &approval,
        &f.policy,
        &RevocationList::empty(),
        now(),
    )
    .is_ok()
}

/// A signed revocation list file or upload: JSON, its signatures ([`SignedRevocations::check`]),
/// installation on a host holding no list and on one holding [`Fixture::revocations`]
/// (rollback, a reused serial, entries the holder alone may not drop), then, once installed,
/// the checks a host makes against it before every query. Returns whether it was installed
/// over the fixture's list.
pub fn revocations(data: &[u8]) -> bool {
    let Ok(signed) = serde_json::from_slice::<SignedRevocations>(data) else {
        return false;
    };
    let f = fixture();
    let _ = signed.check(&f.policy);
    let fresh = Revocations::new();
    let installed_fresh = fresh.install(&signed, &f.policy).is_ok();
    let held = Revocations::new();
    held.install(&f.revocations, &f.policy)
        .expect("the fixture's list installs");
    let installed = held.install(&signed, &f.policy).is_ok();
    if installed_fresh || installed {
        let list = &signed.list;
        let _ = f
            .module
            .check_revocations(Some(&f.requester.public()), list, &f.policy);
        let _ = verify(&f.bundle, &f.approval, &f.policy, list, now());
    }
    installed
}

/// A signed HTTP request's headers, target and body: [`oar_httpsig::fuzz::signature_headers`]
/// (its input format is [`oar_httpsig::fuzz::FIELDS`]). Returns whether it verified.
pub fn signature_headers(data: &[u8]) -> bool {
    oar_httpsig::fuzz::signature_headers(data)
}
