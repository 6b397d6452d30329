//! Signed releases and the hash-chained audit log: a flipped byte anywhere is caught and
//! pinpointed, truncation is caught, a crash between the two writes is recovered, the log holds
//! no data values, and a host that cannot write its log releases nothing.

mod common;

use common::{verified, World};
use oar_host::audit::{self, AuditError, AuditLog, EntryKind};
use oar_host::job::JobError;
use oar_host::keys::KeyPair;
use oar_host::release::signed::{verify_dir, ReleaseVerifyError};
use std::path::Path;
use std::sync::Arc;

fn holder() -> KeyPair {
    KeyPair::from_seed("holder", "test holder")
}

/// Runs the population module twice (the second is the cached repeat) with an audit log in `dir`.
fn audited_runs(dir: &Path) -> (std::path::PathBuf, oar_host::release::Release) {
    let w = World::new(1, 1);
    let (host, _) = common::host(&w, 10.0);
    let log = dir.join("audit.log");
    let host = host.with_audit(Arc::new(AuditLog::open(&log, holder()).unwrap()));
    let module = verified(&w, "population");
    let release = host
        .run(module.clone(), "stats-office", r#"{"epsilon": 0.5}"#)
        .result
        .unwrap();
    host.run(module.clone(), "stats-office", r#"{"epsilon": 0.5}"#)
        .result
        .unwrap();
    // A refused run (unknown requester) is on the record too.
    assert!(host.run(module, "nobody", "{}").result.is_err());
    (log, release)
}

#[test]
fn the_log_records_runs_charges_releases_and_refusals_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (log, release) = audited_runs(dir.path());
    let v = audit::verify(&log, &holder().public()).expect("the log verifies");
    let text = std::fs::read_to_string(&log).unwrap();
    let kinds: Vec<EntryKind> = text
        .lines()
        .map(|l| serde_json::from_str::<audit::Entry>(l).unwrap().body.kind)
        .collect();
    assert_eq!(v.entries, kinds.len());
    assert_eq!(
        kinds,
        vec![
            EntryKind::RunStarted,
            EntryKind::Charge,
            EntryKind::Release,
            EntryKind::Release,
            EntryKind::Refusal
        ]
    );
    // The public register: two releases (the repeat charged nothing), purpose and epsilon.
    let register = audit::export(&log).unwrap();
    assert_eq!(register.len(), 2);
    assert_eq!(register[0].job_id, release.job_id);
    assert_eq!(register[0].epsilon, 0.5);
    assert_eq!(register[1].epsilon, 0.0);
    assert_eq!(register[0].purpose, "tests");
    assert_eq!(register[0].datasets, vec!["cdr".to_string()]);
    // No data values: the only numbers in any entry's details are epsilons and cell counts.
    for line in text.lines() {
        let e: audit::Entry = serde_json::from_str(line).unwrap();
        let serde_json::Value::Object(details) = &e.body.details else {
            panic!("details are an object");
        };
        for (k, v) in details {
            if v.is_number() {
                assert!(["epsilon", "suppressed_cells"].contains(&k.as_str()), "{k}");
            }
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_is_caught_and_pinpointed() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = audited_runs(dir.path());
    let key = holder().public();
    let original = std::fs::read(&log).unwrap();
    let line_of = |i: usize| original[..i].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for i in 0..original.len() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x01;
        std::fs::write(&log, &bytes).unwrap();
        match audit::verify(&log, &key) {
            Ok(_) => panic!("flipping byte {i} went unnoticed"),
            Err(AuditError::Broken { line, .. }) => {
                assert_eq!(line, line_of(i), "byte {i} is on line {}", line_of(i))
            }
            Err(AuditError::Head(_)) => {
                // Only the final newline can be flipped without breaking its own line's JSON
                // check... and then the entry count no longer matches the head.
                assert_eq!(i, original.len() - 1, "byte {i}");
            }
            Err(e) => panic!("byte {i}: {e}"),
        }
    }
    std::fs::write(&log, &original).unwrap();
    audit::verify(&log, &key).unwrap();

    // The head: any flipped byte breaks its signature or its parse.
    let head = audit::head_path(&log);
    let head_bytes = std::fs::read(&head).unwrap();
    for i in 0..head_bytes.len() {
        let mut bytes = head_bytes.clone();
        bytes[i] ^= 0x01;
        std::fs::write(&head, &bytes).unwrap();
        assert!(audit::verify(&log, &key).is_err(), "head byte {i}");
    }
    std::fs::write(&head, &head_bytes).unwrap();
    // Another holder's key does not verify it.
    let other = KeyPair::from_seed("x", "another holder").public();
    assert!(matches!(
        audit::verify(&log, &other),
        Err(AuditError::Head(_))
    ));
}

#[test]
fn truncation_and_a_crash_between_writes_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = audited_runs(dir.path());
    let key = holder().public();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Dropping the last entry: the signed head no longer matches.
    std::fs::write(&log, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    assert!(matches!(
        audit::verify(&log, &key),
        Err(AuditError::Head(_))
    ));
    // Dropping the first: line 1 has the wrong sequence number.
    std::fs::write(&log, lines[1..].join("\n") + "\n").unwrap();
    assert!(matches!(
        audit::verify(&log, &key),
        Err(AuditError::Broken { line: 1, .. })
    ));
    // A crash after an entry was written but before the head was signed: the entry checks,
    // the head lags; reopening verifies the chain and signs a head that covers it.
    std::fs::write(&log, &text).unwrap();
    let log_handle = AuditLog::open(&log, holder()).unwrap();
    let head = std::fs::read(audit::head_path(&log)).unwrap();
    log_handle
        .append(
            EntryKind::Admin,
            "holder",
            serde_json::json!({"act": "test"}),
        )
        .unwrap();
    std::fs::write(audit::head_path(&log), head).unwrap();
    assert!(matches!(
        audit::verify(&log, &key),
        Err(AuditError::Head(_))
    ));
    drop(log_handle);
    AuditLog::open(&log, holder()).unwrap();
    assert_eq!(audit::verify(&log, &key).unwrap().entries, lines.len() + 1);
    // A broken chain is never appended to.
    std::fs::write(&log, lines[1..].join("\n") + "\n").unwrap();
    assert!(matches!(
        AuditLog::open(&log, holder()),
        Err(AuditError::Broken { .. })
    ));
}

#[test]
fn a_host_that_cannot_write_its_log_releases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::new(1, 1);
    let (host, _) = common::host(&w, 10.0);
    let log = dir.path().join("audit.log");
    let host = host.with_audit(Arc::new(AuditLog::open(&log, holder()).unwrap()));
    // The log file disappears and a folder takes its name: every append now fails.
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let out = host.run(
        verified(&w, "population"),
        "stats-office",
        r#"{"epsilon": 0.5}"#,
    );
    assert!(
        matches!(out.result, Err(JobError::Audit(_))),
        "{:?}",
        out.result.err()
    );
}

#[test]
fn signed_releases_verify_offline_and_any_change_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::new(1, 1);
    let (host, _) = common::host(&w, 10.0);
    let release = host
        .run(
            verified(&w, "population"),
            "stats-office",
            r#"{"epsilon": 0.5}"#,
        )
        .result
        .unwrap();
    let out = dir.path().join("release");
    let files = release.write_signed(&out, &holder()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"population_by_region_day.parquet".to_string()));
    assert!(names.contains(&"population_by_region_day.csv".to_string()));
    let key = holder().public();
    let manifest = verify_dir(&out, &key).unwrap();
    assert_eq!(manifest.job_id, release.job_id);
    assert_eq!(manifest.files.len(), 3);

    let csv = out.join("population_by_region_day.csv");
    let original = std::fs::read(&csv).unwrap();
    let mut edited = original.clone();
    let last = edited.len() - 2;
    edited[last] ^= 0x01;
    std::fs::write(&csv, &edited).unwrap();
    assert!(
        matches!(verify_dir(&out, &key), Err(ReleaseVerifyError::FileChanged(f)) if f.ends_with(".csv"))
    );
    std::fs::write(&csv, &original).unwrap();

    std::fs::write(out.join("extra.csv"), "region\nR01\n").unwrap();
    assert!(matches!(
        verify_dir(&out, &key),
        Err(ReleaseVerifyError::Unsigned(_))
    ));
    std::fs::remove_file(out.join("extra.csv")).unwrap();

    std::fs::remove_file(out.join("population_by_region_day.parquet")).unwrap();
    assert!(matches!(
        verify_dir(&out, &key),
        Err(ReleaseVerifyError::FileMissing(_))
    ));
    release.write_signed(&out, &holder()).unwrap();

    let sig = out.join("release.sig.json");
    let text = std::fs::read_to_string(&sig).unwrap();
    std::fs::write(&sig, text.replacen(&release.job_id, "0000000000000000", 1)).unwrap();
    assert!(matches!(
        verify_dir(&out, &key),
        Err(ReleaseVerifyError::BadSignature)
    ));
    std::fs::write(&sig, &text).unwrap();
    let other = KeyPair::from_seed("x", "another holder").public();
    assert!(matches!(
        verify_dir(&out, &other),
        Err(ReleaseVerifyError::WrongHolder { .. })
    ));
    verify_dir(&out, &key).unwrap();
}
