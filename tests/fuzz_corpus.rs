//! The short run of the fuzz targets in `cargo test`: every checked-in seed of each target
//! (`fuzz/corpus/<target>/`), and deterministic mutations of them, go through the same entry
//! points the fuzz targets call (`oar_host::untrusted`). A panic, or a property an entry point
//! asserts, fails the test, naming the target and the input (hex). The long runs are
//! `fuzz/run.sh` (see `fuzz/README.md`).
//!
//! The seeds are made from real objects signed with the fixture's keys by
//! `cargo test -p oar-host --test fuzz_corpus -- --ignored regenerate_corpus`.

use oar_host::synth::SplitMix64;
use oar_host::untrusted;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Mutations run per target (spread over its seeds), besides the seeds themselves; a longer
/// run (no instrumentation, so no build of the host with coverage) sets
/// `OAR_FUZZ_MUTATIONS`, and another sequence of mutations `OAR_FUZZ_SEED`.
const MUTATIONS: usize = 10_000;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The seeds of `target`, by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("corpus entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("corpus file"))
        })
        .collect();
    files.sort();
    files
}

/// Bytes that matter to the formats fuzzed: JSON, TOML and structured-field punctuation,
/// digits and number parts, and a byte that is not UTF-8.
const ALPHABET: &[u8] = b"{}[]\",:;=()?*#@\\/ \n\r\t-+.0123456789eEntfaTZ\xff";

/// Numbers at the edges of what parsers and checks handle.
const NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "1e308",
    "1e-320",
    "4294967296",
    "9007199254740993",
    "18446744073709551616",
    "-9223372036854775809",
    "0.1",
    "1e999",
];

/// One input made from `seed` by one to four edits: a byte replaced, removed, inserted or
/// repeated, a cut, a number spliced in, a run of bytes doubled, or a splice with `other`.
fn mutate(rng: &mut SplitMix64, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            bytes.push(b'{');
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(8) {
            0 => bytes[at] = ALPHABET[rng.below(ALPHABET.len() as u64) as usize],
            1 => bytes[at] = rng.below(256) as u8,
            2 => {
                bytes.remove(at);
            }
            3 => bytes.insert(at, bytes[rng.below(bytes.len() as u64) as usize]),
            4 => bytes.truncate(at),
            5 => {
                let n = NUMBERS[rng.below(NUMBERS.len() as u64) as usize].as_bytes();
                let end = bytes[at..]
                    .iter()
                    .position(|b| !b.is_ascii_digit() && !b"-+.eE".contains(b))
                    .map_or(bytes.len(), |p| at + p);
                bytes.splice(at..end, n.iter().copied());
            }
            6 => {
                let len = 1 + rng.below(16) as usize;
                let run: Vec<u8> = bytes[at..(at + len).min(bytes.len())].to_vec();
                bytes.splice(at..at, run);
            }
            _ => {
                let from = rng.below(other.len().max(1) as u64) as usize;
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from.min(other.len())..]);
            }
        }
    }
    bytes
}

/// What a run of one target saw.
#[derive(Debug, Default)]
struct Run {
    calls: usize,
    accepted: usize,
}

/// Calls `entry` on `input`; a panic becomes an error naming `target` and the input in hex.
fn call(target: &str, entry: &dyn Fn(&[u8]) -> bool, input: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| entry(input))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(a panic without a message)");
        format!(
            "target {target} panicked: {message}\n  input ({} bytes, hex; `xxd -r -p` turns it \
             back into the file): {}",
            input.len(),
            hex::encode(input)
        )
    })
}

/// Runs `entry` on every seed and on `mutations` mutations of them (seeded by `seed`); the
/// first panic is the error.
fn run(
    target: &str,
    entry: &dyn Fn(&[u8]) -> bool,
    seeds: &[Vec<u8>],
    mutations: usize,
    seed: u64,
) -> Result<Run, String> {
    let mut r = Run::default();
    for s in seeds {
        r.calls += 1;
        r.accepted += call(target, entry, s)? as usize;
    }
    let mut rng = SplitMix64::new(seed);
    for i in 0..mutations {
        let s = &seeds[i % seeds.len()];
        let other = &seeds[rng.below(seeds.len() as u64) as usize];
        let input = mutate(&mut rng, s, other);
        r.calls += 1;
        r.accepted += call(target, entry, &input)? as usize;
    }
    Ok(r)
}

/// The short run of `target`: its seeds, then [`MUTATIONS`] mutations of them. A seed named
/// `valid*` must pass every check and any other hand-named seed must not (so mutations start
/// both from inputs that reach the deepest code and from ones stopped at each check); inputs
/// `fuzz/run.sh --merge` added (named by their SHA-1) may do either.
fn fuzz_briefly(target: &str, entry: fn(&[u8]) -> bool) {
    let files = corpus(target);
    assert!(files.len() >= 3, "{target}: {} seeds", files.len());
    for (name, bytes) in &files {
        let accepted = call(target, &entry, bytes).unwrap_or_else(|report| panic!("{report}"));
        let merged = name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(
            merged || accepted == name.starts_with("valid"),
            "{target}: seed {name} is {}accepted",
            if accepted { "" } else { "not " }
        );
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
    let seed = target
        .bytes()
        .fold(env_number("OAR_FUZZ_SEED").unwrap_or(17), |h, b| {
            h.wrapping_mul(31) ^ b as u64
        });
    let mutations = env_number("OAR_FUZZ_MUTATIONS").map_or(MUTATIONS, |n| n as usize);
    let started = std::time::Instant::now();
    let r =
        run(target, &entry, &seeds, mutations, seed).unwrap_or_else(|report| panic!("{report}"));
    eprintln!(
        "{target}: {} calls, {} accepted, {:.2?}",
        r.calls,
        r.accepted,
        started.elapsed()
    );
}

#[test]
fn signature_headers_never_panic() {
    fuzz_briefly("signature_headers", untrusted::signature_headers);
}

#[test]
fn plans_never_panic_and_are_never_answered_without_budget() {
    fuzz_briefly("plan", untrusted::plan);
}

#[test]
fn emitted_tables_never_panic() {
    fuzz_briefly("table", untrusted::table);
}

#[test]
fn manifests_never_panic_and_survive_the_bundle_file() {
    fuzz_briefly("manifest", untrusted::manifest);
}

#[test]
fn bundles_never_panic() {
    fuzz_briefly("bundle", untrusted::bundle);
}

#[test]
fn approvals_never_panic() {
    fuzz_briefly("approval", untrusted::approval);
}

#[test]
fn revocation_lists_never_panic() {
    fuzz_briefly("revocations", untrusted::revocations);
}

#[test]
fn the_harness_reports_a_panic_with_its_target_and_input() {
    let seeds = vec![b"{\"a\": 1}".to_vec(), b"[1, 2]".to_vec(), b"{}".to_vec()];
    let fragile = |data: &[u8]| -> bool {
        if data.contains(&b'2') {
            panic!("found a two");
        }
        true
    };
    let report = run("fragile", &fragile, &seeds, 10, 1).unwrap_err();
    assert!(
        report.contains("target fragile panicked: found a two"),
        "{report}"
    );
    assert!(report.contains(&hex::encode(b"[1, 2]")), "{report}");
    // Mutations alone find it too.
    let report = run("fragile", &fragile, &seeds[..1], 1000, 1).unwrap_err();
    assert!(report.contains("found a two"), "{report}");
    // And a target that never panics passes.
    let calm = run("calm", &|_: &[u8]| false, &seeds, 100, 1).unwrap();
    assert_eq!((calm.calls, calm.accepted), (103, 0));
}

#[test]
fn mutations_are_deterministic() {
    let a: Vec<Vec<u8>> = {
        let mut rng = SplitMix64::new(9);
        (0..50)
            .map(|_| mutate(&mut rng, b"{\"serial\": 5}", b"[1]"))
            .collect()
    };
    let mut rng = SplitMix64::new(9);
    let b: Vec<Vec<u8>> = (0..50)
        .map(|_| mutate(&mut rng, b"{\"serial\": 5}", b"[1]"))
        .collect();
    assert_eq!(a, b);
    assert!(a.iter().any(|m| m != b"{\"serial\": 5}"));
}

/// Writes the seeds of every target into `fuzz/corpus/` (replacing those there), from real
/// objects signed with the fixture's keys. Run it after changing a format or the fixture:
/// `cargo test -p oar-host --test fuzz_corpus -- --ignored regenerate_corpus`.
#[test]
#[ignore = "rewrites fuzz/corpus; run by hand"]
fn regenerate_corpus() {
    for (target, seeds) in seeds::all() {
        let dir = corpus_dir(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// The seeds: valid objects, and near-valid ones that each stop at a different check.
mod seeds {
    use oar_host::approval::{Approval, ApprovalRecord};
    use oar_host::bundle::Bundle;
    use oar_host::keys::KeyPair;
    use oar_host::revocation::{RevocationList, Revoked, RevokedKind, SignedRevocations};
    use oar_host::untrusted::{fixture, Fixture, COMPONENT};
    use oar_httpsig::{oar, ComponentId, Request, SignatureInput, SignatureParams};
    use serde_json::json;

    type Seeds = Vec<(String, Vec<u8>)>;

    pub fn all() -> Vec<(&'static str, Seeds)> {
        vec![
            ("signature_headers", signature_headers()),
            ("plan", plans()),
            ("table", tables()),
            ("manifest", manifests()),
            ("bundle", bundles()),
            ("approval", approvals()),
            ("revocations", revocations()),
        ]
    }

    fn pretty(v: &impl serde::Serialize) -> Vec<u8> {
        serde_json::to_vec_pretty(v).unwrap()
    }

    fn signature_headers() -> Seeds {
        let f = fixture();
        let key = f.requester.signing_key();
        let now = oar_httpsig::fuzz::NOW;
        let url = "http://127.0.0.1:8420/v1/runs";
        let req = Request::new("POST", url).unwrap();
        let body = br#"{"module_hash":"ab12","params":{"epsilon":0.5}}"#;
        let signed = |req: &Request, body: &[u8], created: i64, nonce: &str| {
            oar::sign_request(req, body, key, created, nonce).unwrap()
        };
        let input = |s: &oar::SignedRequest, target: (&str, &str, Option<&str>), body: &[u8]| {
            oar_httpsig::fuzz::input_bytes(
                &s.signature_input,
                &s.signature,
                &s.content_digest,
                target.0,
                target.1,
                target.2,
                body,
            )
        };
        let target = ("127.0.0.1:8420", "/v1/runs", None);
        let mut out = Seeds::new();
        let s = signed(&req, body, now, "n-1");
        out.push(("valid-post-runs".into(), input(&s, target, body)));

        let q = Request::new("POST", "http://holder.example:8443/v1/jobs?wait=1&x=%20y").unwrap();
        let lines = b"{\n \"a\": 1\n}\n";
        let s = signed(&q, lines, now - 100, "nonce-with-query");
        let t = ("holder.example:8443", "/v1/jobs", Some("wait=1&x=%20y"));
        out.push(("valid-query-and-newlines".into(), input(&s, t, lines)));

        // Every derived component the verifier knows, plus `expires`, under another label.
        let components = [
            "@method",
            "@authority",
            "@path",
            "@query",
            "content-digest",
            "@scheme",
            "@target-uri",
            "@request-target",
            "\"@query-param\";name=\"x\"",
            "\"content-digest\";sf",
            "\"content-digest\";key=\"sha-256\"",
        ];
        let digest = oar_httpsig::content_digest(body);
        let q = Request::new("POST", "http://127.0.0.1:8420/v1/runs?x=1")
            .unwrap()
            .with_header("content-digest", &digest);
        let params = SignatureParams {
            created: Some(now),
            expires: Some(now + 60),
            keyid: Some(oar::keyid_of(&key.verifying_key())),
            alg: Some("ed25519".into()),
            nonce: Some("n-2".into()),
            tag: Some("oar-fuzz".into()),
        };
        let ids = components
            .iter()
            .map(|c| ComponentId::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let si = SignatureInput::new("client-1", ids, params).unwrap();
        let h = oar_httpsig::sign(&q, &si, key).unwrap();
        let rich = oar_httpsig::fuzz::input_bytes(
            &h.signature_input,
            &h.signature,
            &digest,
            "127.0.0.1:8420",
            "/v1/runs",
            Some("x=1"),
            body,
        );
        out.push(("valid-all-components-other-label".into(), rich));

        // Two signatures, each header sent on two lines: one by a key nobody registered
        // (any well-formed keyid resolves here, so it verifies too) and the client's.
        let other = KeyPair::from_seed("other", "oar fuzz other");
        let s1 = oar::sign_request(&req, body, other.signing_key(), now, "n-3").unwrap();
        let s2 = signed(&req, body, now, "n-4");
        let relabel = |v: &str| v.replacen("oar=", "second=", 1);
        let two = oar_httpsig::fuzz::input_bytes(
            &format!("{}\r{}", s1.signature_input, relabel(&s2.signature_input)),
            &format!("{}\r{}", s1.signature, relabel(&s2.signature)),
            &s2.content_digest,
            target.0,
            target.1,
            None,
            body,
        );
        out.push(("valid-two-labels-two-lines".into(), two));

        let s = signed(&req, body, now - 3600, "n-5");
        out.push(("stale-created".into(), input(&s, target, body)));
        let s = signed(&req, body, now, "n-6");
        out.push((
            "body-changed".into(),
            input(&s, target, br#"{"module_hash":"ab13"}"#),
        ));
        out.push((
            "other-authority".into(),
            input(&s, ("127.0.0.1:9999", "/v1/runs", None), body),
        ));
        let weak = s
            .signature_input
            .replace(&oar::keyid_of(&key.verifying_key()), &"0".repeat(64));
        out.push((
            "weak-keyid".into(),
            oar_httpsig::fuzz::input_bytes(
                &weak,
                &s.signature,
                "sha-512=:AAAA:, sha-256=:AAAA:",
                target.0,
                target.1,
                None,
                body,
            ),
        ));
        out
    }

    fn plans() -> Seeds {
        let col = |n: &str| json!({"kind": "column", "name": n});
        let hour = json!({"kind": "hour", "expr": col("timestamp")});
        let day = json!({"kind": "date", "expr": col("timestamp")});
        let count = json!([{"agg": "count_units", "name": "n"}]);
        let plans = [
            (
                "valid-count-by-region-day",
                json!({"dataset": "cdr",
                    "steps": [{"op": "derive", "name": "day", "expr": day},
                              {"op": "filter", "predicate": {"kind": "compare", "op": "ge",
                                  "left": hour, "right": {"kind": "literal", "value": 6}}}],
                    "group_by": ["region", "day"], "aggregates": count,
                    "bounds": {"max_groups_per_unit": 7}, "epsilon": 0.1}),
            ),
            (
                "valid-totals-sum-mean-quantile",
                json!({"dataset": "cdr",
                    "steps": [{"op": "derive", "name": "h", "expr": hour},
                              {"op": "derive", "name": "night", "expr": {"kind": "compare",
                                  "op": "lt", "left": col("h"), "right": {"kind": "literal", "value": 6}}}],
                    "group_by": ["region", "night"],
                    "aggregates": [{"agg": "count_units", "name": "n"},
                                   {"agg": "sum", "name": "s", "column": "h", "bounds": [0.0, 23.0]},
                                   {"agg": "mean", "name": "m", "column": "h", "bounds": [0.0, 23.0]},
                                   {"agg": "quantile", "name": "q", "column": "h", "q": 0.5,
                                    "bounds": [0.0, 24.0], "bins": 24}],
                    "bounds": {"max_groups_per_unit": 2, "max_rows_per_group": 3},
                    "epsilon": 0.5, "totals": true}),
            ),
            (
                "valid-per-unit-bin-is-in",
                json!({"dataset": "cdr",
                    "steps": [{"op": "filter", "predicate": {"kind": "is_in", "expr": col("region"),
                                  "values": ["R01", "R02", "R21"]}},
                              {"op": "per_unit", "name": "calls", "reduce": "count", "expr": col("region"),
                               "by": ["region"]},
                              {"op": "derive", "name": "band", "expr": {"kind": "bin",
                                  "expr": col("calls"), "edges": [0.0, 2.0, 5.0, 10.0]}},
                              {"op": "derive", "name": "slot", "expr": {"kind": "half_hour", "expr": col("timestamp")}}],
                    "group_by": ["region", "band"], "aggregates": count, "epsilon": 0.2}),
            ),
            (
                "valid-key-selection",
                json!({"dataset": "cdr",
                    "steps": [{"op": "derive", "name": "r", "expr": {"kind": "arith", "op": "add",
                                  "left": hour, "right": {"kind": "literal", "value": 1.5}}},
                              {"op": "filter", "predicate": {"kind": "or",
                                  "left": {"kind": "not", "expr": {"kind": "compare", "op": "eq",
                                      "left": col("region"), "right": {"kind": "literal", "value": "R03"}}},
                                  "right": {"kind": "and",
                                      "left": {"kind": "literal", "value": true},
                                      "right": {"kind": "compare", "op": "ne", "left": col("r"),
                                                "right": {"kind": "literal", "value": 0.5}}}}}],
                    "group_by": ["region"], "aggregates": count, "epsilon": 0.05,
                    "key_selection": true}),
            ),
            (
                "denied-column-cell-id",
                json!({"dataset": "cdr",
                    "steps": [{"op": "filter", "predicate": {"kind": "compare", "op": "eq",
                        "left": col("cell_id"), "right": {"kind": "literal", "value": "R01-C01"}}}],
                    "group_by": ["region"], "aggregates": count, "epsilon": 0.1}),
            ),
            (
                "privacy-unit-key",
                json!({"dataset": "cdr", "group_by": ["subscriber_id"], "aggregates": count,
                    "epsilon": 0.1}),
            ),
            (
                "epsilon-below-minimum",
                json!({"dataset": "cdr", "group_by": ["region"], "aggregates": count,
                    "epsilon": 1e-6}),
            ),
            (
                "other-dataset",
                json!({"dataset": "meters", "group_by": ["region"], "aggregates": count,
                    "epsilon": 0.1}),
            ),
        ];
        plans
            .into_iter()
            .map(|(n, p)| (format!("{n}.json"), pretty(&p)))
            .collect()
    }

    fn tables() -> Seeds {
        let f = fixture();
        let answer = &f.answer.table;
        let mut derived = answer.clone();
        derived.value_columns = vec!["share".into()];
        derived.rows[0].values = vec![1.0];
        derived.release = None;
        let tables = [
            (
                "valid-answer-unchanged",
                serde_json::to_value(answer).unwrap(),
            ),
            (
                "valid-derived-share",
                serde_json::to_value(&derived).unwrap(),
            ),
            (
                "valid-mixed-keys-two-columns",
                json!({"key_columns": ["region", "hour", "night", "w"], "value_columns": ["n", "m"],
                    "rows": [{"keys": ["R01", 3, true, 0.5], "values": [12.0, -1.5e3]},
                             {"keys": ["R,\"02\"\n", -4, false, 1e300], "values": [], "suppressed": "dominance"},
                             {"keys": ["", 0, true, -0.0], "values": [], "suppressed": "secondary"}],
                    "release": {"epsilon": 100.0, "delta": 0.0, "min_units": 0, "threshold": 0.0,
                                "accuracy": [], "released_cells": 3, "suppressed_cells": 0}}),
            ),
            (
                "row-short-of-keys",
                json!({"key_columns": ["a", "b"], "value_columns": ["v"],
                    "rows": [{"keys": [1], "values": [1.0]}]}),
            ),
            (
                "status-column",
                json!({"key_columns": ["status"], "value_columns": ["v"], "rows": []}),
            ),
        ];
        tables
            .into_iter()
            .map(|(n, t)| (format!("{n}.json"), pretty(&t)))
            .collect()
    }

    fn manifests() -> Seeds {
        let example = |dir: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../example-algorithms/{dir}/manifest.toml"));
            std::fs::read(path).unwrap()
        };
        let fixture_toml = toml::to_string(&Fixture::manifest()).unwrap();
        let mut other = Fixture::manifest();
        other.datasets[0].name = "meters".into();
        other.max_epsilon_per_run = 0.25;
        vec![
            (
                "valid-fixture.toml".into(),
                fixture_toml.clone().into_bytes(),
            ),
            ("valid-population.toml".into(), example("population")),
            (
                "author-may-not-read-meters.toml".into(),
                example("load-profile"),
            ),
            (
                "other-dataset.toml".into(),
                toml::to_string(&other).unwrap().into_bytes(),
            ),
            (
                "negative-epsilon.toml".into(),
                fixture_toml
                    .replace("max_epsilon_per_run = 2.0", "max_epsilon_per_run = -inf")
                    .into_bytes(),
            ),
            (
                "unknown-field.toml".into(),
                format!("reviewed = true\n{fixture_toml}").into_bytes(),
            ),
        ]
    }

    fn bundles() -> Seeds {
        let f = fixture();
        let mut other_manifest = Fixture::manifest();
        other_manifest.purpose = "another purpose".into();
        let other = Bundle::sign(COMPONENT.to_vec(), other_manifest, &f.author);
        let mut tampered = f.bundle.clone();
        tampered.component = b"\0asm(evil)".to_vec();
        let stranger = KeyPair::from_seed("stranger", "oar fuzz stranger");
        let untrusted = Bundle::sign(COMPONENT.to_vec(), Fixture::manifest(), &stranger);
        let mut format = serde_json::to_value(&f.bundle).unwrap();
        format["format"] = json!("oar-bundle/2");
        vec![
            ("valid.oarb".into(), pretty(&f.bundle)),
            ("other-manifest.oarb".into(), pretty(&other)),
            ("component-tampered.oarb".into(), pretty(&tampered)),
            ("untrusted-author.oarb".into(), pretty(&untrusted)),
            ("other-format.oarb".into(), pretty(&format)),
        ]
    }

    fn approvals() -> Seeds {
        let f = fixture();
        let sign = |record: ApprovalRecord, by: &[&KeyPair]| {
            let mut a = Approval::new(record);
            for k in by {
                a.sign(k);
            }
            a
        };
        let m = &f.members;
        let record = f.approval.record.clone();
        let mut expired = record.clone();
        expired.valid_until = "2025-06-01T00:00:00+02:00"
            .parse::<chrono::DateTime<chrono::FixedOffset>>()
            .unwrap()
            .into();
        let mut wider = record.clone();
        wider.datasets[0].columns.push("subscriber_id".into());
        let mut twice = sign(record.clone(), &[&m[0]]);
        twice.signatures.push(twice.signatures[0].clone());
        vec![
            ("valid.json".into(), pretty(&f.approval)),
            (
                "one-signature.json".into(),
                pretty(&sign(record.clone(), &[&m[2]])),
            ),
            (
                "signed-by-holder.json".into(),
                pretty(&sign(record.clone(), &[&m[0], &f.holder])),
            ),
            (
                "expired.json".into(),
                pretty(&sign(expired, &[&m[0], &m[1]])),
            ),
            (
                "wider-than-manifest.json".into(),
                pretty(&sign(wider, &[&m[1], &m[2]])),
            ),
            ("same-member-twice.json".into(), pretty(&twice)),
        ]
    }

    fn revocations() -> Seeds {
        let f = fixture();
        let base = &f.revocations.list;
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let signed = |list: RevocationList, by: &[&KeyPair]| {
            let mut s = SignedRevocations::new(list);
            for k in by {
                s.sign(k);
            }
            s
        };
        let m = &f.members;
        let mut added = base.clone();
        added.add(
            RevokedKind::Approval,
            &hex::encode(f.approval.record.digest()),
            "consent withdrawn",
            at("2025-12-01T00:00:00Z"),
        );
        let mut lifted = base.clone();
        lifted.entries.remove(0);
        lifted.serial = 6;
        let mut everything = base.clone();
        for (kind, id) in [
            (
                RevokedKind::Module,
                hex::encode(oar_host::keys::sha256(COMPONENT)),
            ),
            (RevokedKind::Key, f.author.public().to_hex()),
            (RevokedKind::Key, f.requester.public().to_hex()),
            (RevokedKind::Key, m[0].public().to_hex()),
        ] {
            everything.add(kind, &id, "compromised", at("2025-12-24T12:00:00Z"));
        }
        let mut rollback = base.clone();
        rollback.serial = 4;
        rollback.entries.push(Revoked {
            kind: RevokedKind::Module,
            id: "cd".repeat(32),
            reason: "older".into(),
            revoked_at: at("2025-01-01T00:00:00Z"),
        });
        vec![
            ("valid-installed-base.json".into(), pretty(&f.revocations)),
            (
                "valid-holder-adds-approval.json".into(),
                pretty(&signed(added, &[&f.holder])),
            ),
            (
                "valid-committee-lifts-entry.json".into(),
                pretty(&signed(lifted.clone(), &[&m[0], &m[1]])),
            ),
            (
                "holder-drops-entry.json".into(),
                pretty(&signed(lifted, &[&f.holder])),
            ),
            (
                "valid-committee-revokes-all.json".into(),
                pretty(&signed(everything, &[&m[1], &m[2]])),
            ),
            (
                "rollback.json".into(),
                pretty(&signed(rollback, &[&f.holder])),
            ),
            (
                "unsigned.json".into(),
                pretty(&SignedRevocations::new(RevocationList::empty())),
            ),
        ]
    }
}

fn seed_text(target: &str, name: &str) -> String {
    String::from_utf8(std::fs::read(corpus_dir(target).join(name)).unwrap()).unwrap()
}

// Regression cases: inputs that made an entry point panic or broke a property. Each is
// `#[ignore]`d while its bug is open (fuzz/README.md says what the fix is) and then stays.

/// A revocation list's `serial` is a `u64`, but signatures cover the list's RFC 8785 form,
/// whose integers stop at 2^53 − 1, and `RevocationList::digest` expects that encoding to
/// succeed: checking a list with a larger serial panics ("revocation lists have no floats",
/// `host/src/revocation.rs`), in `oar revoke`, in the server's admin upload and in a server
/// starting with such a `revocations.json`. The saved input is what the mutations found
/// (`OAR_FUZZ_SEED=2026 OAR_FUZZ_MUTATIONS=500000`): the fixture's list with serial
/// 59007199254740993.
#[test]
fn a_revocation_serial_beyond_two_to_the_53_is_refused_not_a_panic() {
    let found = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/revocations/serial-beyond-2pow53.json");
    let found = std::fs::read_to_string(found).unwrap();
    assert!(found.contains("\"serial\": 59007199254740993"));
    let base = seed_text("revocations", "valid-installed-base.json");
    let largest = base.replacen("\"serial\": 5", "\"serial\": 18446744073709551615", 1);
    let smallest = base.replacen("\"serial\": 5", "\"serial\": 9007199254740992", 1);
    for text in [found, largest, smallest] {
        let result = call("revocations", &untrusted::revocations, text.as_bytes());
        assert_eq!(result, Ok(false));
    }
}

/// Signed timestamps are read with any RFC 3339 offset and kept in UTC. One whose UTC year
/// leaves 0000..=9999 (`9999-12-31T23:59:59-01:00`) is accepted, then written as
/// `+10000-01-01T00:59:59Z`, which the same reader refuses: a server that stores such an
/// approval (or revocation list) cannot read it back.
#[test]
fn a_signed_timestamp_reads_back_as_it_was_written() {
    use oar_host::approval::Approval;
    let base = seed_text("approval", "valid.json");
    for (from, to) in [
        ("2027-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"),
        ("2025-01-01T00:00:00Z", "0000-01-01T00:00:00+01:00"),
    ] {
        let text = base.replacen(from, to, 1);
        // Refusing it on reading is as good as reading it back.
        if let Ok(approval) = serde_json::from_str::<Approval>(&text) {
            let written = serde_json::to_string(&approval).unwrap();
            let read: Result<Approval, _> = serde_json::from_str(&written);
            assert!(read.is_ok(), "{to} was written as {written}");
            assert_eq!(read.unwrap().record, approval.record);
        }
    }
}
