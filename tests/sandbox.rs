//! Hostile and greedy modules: each is stopped or refused, releases nothing, and the ledger
//! stays consistent with what modules saw.

mod common;

use common::{bundle, host, verified, World};
use oar_host::job::JobError;
use oar_host::sandbox::SandboxError;
use oar_host::verify::verify;
use std::sync::Arc;

#[test]
fn population_module_releases_a_gated_table() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let out = host.run(
        verified(&w, "population"),
        "stats-office",
        r#"{"epsilon": 1.0}"#,
    );
    let release = out.result.expect("release");
    assert_eq!(release.tables.len(), 1);
    let t = &release.tables[0].table;
    assert_eq!(t.key_columns, vec!["region", "day"]);
    assert_eq!(
        t.rows.len(),
        21 * 7,
        "every cell of the public domain is listed"
    );
    for row in &t.rows {
        if row.keys[0].as_str() == Some("R21") {
            assert!(
                row.suppressed.is_some(),
                "the six-person island must be suppressed"
            );
        }
    }
    assert!(t.released().count() > 0);
    assert!((common::spent(&ledger, "stats-office") - 1.0).abs() < 1e-12);
    assert_eq!(release.epsilon_total, 1.0);
}

#[test]
fn module_that_loops_forever_is_stopped_by_the_deadline() {
    let mut w = World::new(1, 1);
    w.policy.limits.time_ms = 300;
    let (host, ledger) = host(&w, 10.0);
    let started = std::time::Instant::now();
    let out = host.run(verified(&w, "oar_test_guest_spin"), "stats-office", "{}");
    assert!(
        matches!(
            out.result,
            Err(JobError::Sandbox(SandboxError::Deadline(_)))
        ),
        "{:?}",
        out.result.err()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(out.record.charges.is_empty());
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);
}

#[test]
fn module_that_allocates_past_the_cap_traps_and_charges_nothing() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let out = host.run(verified(&w, "oar_test_guest_hog"), "stats-office", "{}");
    assert!(
        matches!(out.result, Err(JobError::Sandbox(SandboxError::Memory(64)))),
        "{:?}",
        out.result.err()
    );
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);
}

#[test]
fn module_that_traps_after_a_query_releases_nothing_but_keeps_the_charge() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let out = host.run(
        verified(&w, "oar_test_guest_hog"),
        "stats-office",
        r#"{"query_first": true}"#,
    );
    assert!(out.result.is_err());
    // It saw one gated table, so that charge stands (fail closed); its emitted table is not released.
    assert_eq!(out.record.charges.len(), 1);
    assert!((common::spent(&ledger, "stats-office") - 0.5).abs() < 1e-12);
}

#[test]
fn budget_exhaustion_refuses_the_query_and_releases_nothing() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 1.5);
    let module = verified(&w, "oar_test_guest_greedy");
    let out = host.run(module.clone(), "stats-office", r#"{"epsilon": 0.5}"#);
    match &out.result {
        Err(JobError::Sandbox(SandboxError::Module(msg))) => {
            assert!(msg.contains("budget"), "{msg}")
        }
        other => panic!("expected a refusal, got {:?}", other.as_ref().err()),
    }
    assert_eq!(out.record.charges.len(), 3);
    assert_eq!(out.record.refusals.len(), 1);
    assert!((common::spent(&ledger, "stats-office") - 1.5).abs() < 1e-9);
    // A later run is refused at its first query and spends nothing more.
    let again = host.run(module, "stats-office", r#"{"epsilon": 0.1}"#);
    assert!(again.result.is_err());
    assert!(again.record.charges.is_empty());
    assert!((common::spent(&ledger, "stats-office") - 1.5).abs() < 1e-9);
}

#[test]
fn per_run_epsilon_cap_from_the_approval_is_enforced() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 100.0);
    // The manifest and approval allow 2.0 per run: the fifth query of 0.5 is refused.
    let out = host.run(
        verified(&w, "oar_test_guest_greedy"),
        "stats-office",
        r#"{"epsilon": 0.5}"#,
    );
    assert!(out.result.is_err());
    assert_eq!(out.record.charges.len(), 4);
    assert!(
        matches!(
            out.record.refusals[0],
            oar_host::session::Refusal::OverRunCap { .. }
        ),
        "{:?}",
        out.record.refusals
    );
    assert!((common::spent(&ledger, "stats-office") - 2.0).abs() < 1e-9);
}

#[test]
fn unknown_requester_is_refused_before_anything_runs() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let out = host.run(verified(&w, "population"), "someone-else", "{}");
    assert!(matches!(out.result, Err(JobError::UnknownRequester(_))));
    assert_eq!(common::spent(&ledger, "someone-else"), 0.0);
}

#[test]
fn bad_parameters_fail_the_run_with_the_modules_message() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let out = host.run(
        verified(&w, "population"),
        "stats-office",
        r#"{"epsilon": "lots"}"#,
    );
    match out.result {
        Err(JobError::Sandbox(SandboxError::Module(msg))) => {
            assert!(msg.contains("invalid parameters"), "{msg}")
        }
        other => panic!("unexpected {:?}", other.err()),
    }
}

/// A component that imports a network interface OAR does not provide.
const NETWORK_COMPONENT: &str = r#"
(component
  (import "wasi:sockets/tcp@0.2.0" (instance))
)
"#;

/// A component that imports the filesystem.
const FILESYSTEM_COMPONENT: &str = r#"
(component
  (import "wasi:filesystem/preopens@0.2.6" (instance))
)
"#;

/// A component that imports an unknown interface.
const STRANGE_COMPONENT: &str = r#"
(component
  (import "evil:exfiltrate/send@1.0.0" (instance (export "send" (func))))
)
"#;

#[test]
fn module_importing_anything_else_is_refused() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    for (text, name) in [
        (NETWORK_COMPONENT, "wasi:sockets/tcp"),
        (FILESYSTEM_COMPONENT, "wasi:filesystem/preopens"),
        (STRANGE_COMPONENT, "evil:exfiltrate/send"),
    ] {
        let b = bundle(&w, text.as_bytes().to_vec());
        let a = common::approval(&w, &b, 1);
        let v = Arc::new(
            verify(
                &b,
                &a,
                &w.policy,
                &oar_host::revocation::RevocationList::empty(),
                chrono::Utc::now(),
            )
            .unwrap(),
        );
        match host.runtime().prepare(&v) {
            Err(SandboxError::ForbiddenImport(import)) => {
                assert!(import.starts_with(name), "{import}")
            }
            other => panic!("expected a refusal for {name}, got {:?}", other.map(|_| ())),
        }
        let out = host.run(v, "stats-office", "{}");
        assert!(matches!(
            out.result,
            Err(JobError::Sandbox(SandboxError::ForbiddenImport(_)))
        ));
    }
}

#[test]
fn malformed_component_is_refused_with_a_clear_error() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let b = bundle(&w, b"\0asm\x0d\0\x01\0garbage".to_vec());
    let a = common::approval(&w, &b, 1);
    let v = Arc::new(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            chrono::Utc::now(),
        )
        .unwrap(),
    );
    let out = host.run(v, "stats-office", "{}");
    assert!(matches!(
        out.result,
        Err(JobError::Sandbox(SandboxError::InvalidComponent(_)))
    ));
}

#[test]
fn compiled_code_is_cached_by_module_hash() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let v = verified(&w, "population");
    host.runtime().prepare(&v).unwrap();
    let (_, hit) = host.runtime().prepare(&v).unwrap();
    assert!(hit);
}

#[test]
fn example_module_imports_only_the_host_and_locked_down_wasi() {
    let engine = wasmtime::Engine::default();
    let c = wasmtime::component::Component::new(&engine, common::component("population")).unwrap();
    let imports: Vec<String> = c
        .component_type()
        .imports(&engine)
        .map(|(n, _)| n.to_string())
        .collect();
    assert!(imports
        .iter()
        .any(|i| i == oar_host::sandbox::HOST_INTERFACE));
    assert!(!imports
        .iter()
        .any(|i| i.starts_with("wasi:sockets") || i.starts_with("wasi:http")));
}

/// Then: WASI's monotonic clock slept in real time inside `poll`, a host call the epoch
/// deadline cannot interrupt, so `sleep(Duration::MAX)` pinned the worker for good (and a
/// graceful shutdown then hung). Now every clock subscription is ready at once: the sleeping
/// module spins, the deadline traps it, and the same host runs the next job.
#[test]
fn module_that_sleeps_forever_is_stopped_by_the_deadline_and_the_host_runs_the_next_job() {
    let mut w = World::new(1, 1);
    w.policy.limits.time_ms = 2_000;
    let (host, ledger) = host(&w, 10.0);
    let sleepy = verified(&w, "oar_test_guest_sleepy");
    // Compile first, so the deadline below is the sleep's alone.
    host.runtime().prepare(&sleepy).expect("compiles");
    let started = std::time::Instant::now();
    let out = host.run(sleepy, "stats-office", r#"{"mode": "sleep"}"#);
    assert!(
        matches!(
            out.result,
            Err(JobError::Sandbox(SandboxError::Deadline(_)))
        ),
        "{:?}",
        out.result.err()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "stopped at the deadline, not after the sleep"
    );
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);
    let next = host.run(
        verified(&w, "population"),
        "stats-office",
        r#"{"epsilon": 1.0}"#,
    );
    next.result.expect("the next job runs");
}

/// A module reads the monotonic clock around a query: the host's virtual clock shows a few
/// microseconds of readings, nothing of the query's real cost.
#[test]
fn module_cannot_time_a_query_with_the_clock() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let out = host.run(
        verified(&w, "oar_test_guest_sleepy"),
        "stats-office",
        r#"{"mode": "time"}"#,
    );
    let release = out.result.expect("release");
    let t = &release.tables[0].table;
    let seen = t.rows[0].values[0];
    assert!(seen < 100_000.0, "the module saw {seen} ns");
}

/// Then: the session's deadline started before the module was compiled and the epoch trap only
/// when it ran, so for a while `query` answered "the deadline has passed" to a module that was
/// still running: a clock on the host's data work. Now a query past the deadline gets no
/// answer: the run ends with a trap.
#[test]
fn a_query_past_the_deadline_ends_the_run_without_an_answer() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let mut s = host.session("late", "stats-office", verified(&w, "population"));
    s.set_deadline(std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_millis(5));
    let plan = r#"{"dataset": "cdr", "group_by": ["region"], "epsilon": 0.5,
                   "aggregates": [{"agg": "count_units", "name": "n"}]}"#;
    assert!(s.query(plan).is_err());
    assert!(
        s.deadline_hit(),
        "the sandbox ends the run instead of returning"
    );
}

/// Then: a long query ran past `time_ms` unchecked (one valid quantile plan ran 180 s against a
/// 10 s deadline, most of it drawing noise for a million histogram counters). Now a query still
/// running at the deadline is cancelled, in Polars or in the gate between chunks of noise
/// draws: the call returns at the deadline, with no answer, and the run ends. The plan's own
/// duration is measured first, so the test compares the two rather than trusting a fixed time.
#[test]
fn a_query_still_running_at_the_deadline_is_cancelled() {
    use oar_guest::plan::{Aggregate, ContributionBounds, Plan, Step};
    let w = World::new(1, 1);
    let (host, _) = host(&w, 100.0);
    let plan = Plan {
        dataset: "cdr".into(),
        steps: vec![
            Step::Derive {
                name: "day".into(),
                expr: oar_guest::col("timestamp").date(),
            },
            Step::Derive {
                name: "h".into(),
                expr: oar_guest::col("timestamp").hour(),
            },
        ],
        group_by: vec!["region".into(), "day".into()],
        // 147 cells × 1024 bins × 2 quantiles: about 300,000 noise draws.
        aggregates: (0..2)
            .map(|i| Aggregate::Quantile {
                name: format!("q{i}"),
                column: "h".into(),
                q: 0.25 + 0.5 * f64::from(i),
                bounds: Some([0.0, 23.0]),
                bins: Some(1024),
            })
            .collect(),
        bounds: ContributionBounds::default(),
        epsilon: 1.0,
        totals: false,
        key_selection: false,
    };
    let json = serde_json::to_string(&plan).unwrap();
    let module = verified(&w, "population");
    let mut s = host.session("slow-1", "stats-office", module.clone());
    // The measuring run must not be cut itself (it takes about 4 s alone, near the policy's
    // 5 s, and longer when other tests share the machine).
    s.set_deadline(std::time::Instant::now() + std::time::Duration::from_secs(120));
    let t = std::time::Instant::now();
    s.query(&json).expect("the plan is valid and answers");
    let full = t.elapsed();
    let mut s = host.session("slow-cut", "stats-office", module);
    let budget = full / 5;
    s.set_deadline(std::time::Instant::now() + budget);
    let t = std::time::Instant::now();
    assert!(s.query(&json).is_err());
    let took = t.elapsed();
    assert!(s.deadline_hit());
    assert!(
        took < budget + full / 2,
        "the call returned after {took:?}; the query alone takes {full:?}"
    );
    eprintln!("query alone {full:?}; cancelled after {took:?}");
}

/// Then: the holder signed whatever `release` block the module wrote (a forged ε of 1e-6 went
/// out under the holder's signature), and a table with fewer keys than key columns panicked the
/// worker while the release was written, after the audit log already said "released". Now the
/// signed release carries the host's figures, and a malformed table fails the run with no
/// release folder left behind.
#[test]
fn a_forged_release_block_is_replaced_and_a_malformed_table_leaves_no_release() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let holder = oar_host::keys::KeyPair::from_seed("holder", "test holder");
    let dir = tempfile::tempdir().unwrap();
    let sleepy = verified(&w, "oar_test_guest_sleepy");

    let out_dir = dir.path().join("forged");
    let target = oar_host::job::ReleaseTarget {
        dir: &out_dir,
        signer: Some(&holder),
    };
    let out = host.run_job_into(
        "forge-1",
        sleepy.clone(),
        "stats-office",
        r#"{"mode": "forge"}"#,
        Some(&target),
    );
    out.result.expect("the run releases");
    oar_host::release::signed::verify_dir(&out_dir, &holder.public()).expect("signed");
    let written: oar_host::release::Release =
        serde_json::from_slice(&std::fs::read(out_dir.join("release.json")).unwrap()).unwrap();
    let info = written.tables[0].table.release.as_ref().unwrap();
    assert_eq!(info.epsilon, 0.5, "the host's ε, not the forged 1e-6");
    assert!(info.threshold > 10.0);
    assert_eq!(info, &written.queries[0].release);

    let out_dir = dir.path().join("malformed");
    let target = oar_host::job::ReleaseTarget {
        dir: &out_dir,
        signer: Some(&holder),
    };
    let out = host.run_job_into(
        "bad-1",
        sleepy,
        "stats-office",
        r#"{"mode": "malformed"}"#,
        Some(&target),
    );
    let err = out
        .result
        .expect_err("a malformed table fails the run")
        .to_string();
    assert!(err.contains("row 0 has 0 keys"), "{err}");
    assert!(!out_dir.exists(), "no release folder");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial folder"
    );
}

/// Finding 12.6: any `cache/<hash>.cwasm` was loaded (with an unsafe deserialize) on the
/// strength of its file name: a file planted under an approved module's hash ran as that
/// module. Entries are now tagged with a key only this host holds, over the module hash and
/// the compiled bytes; the cache is private to the host's user.
#[test]
fn a_compiled_code_file_planted_under_another_module_s_name_is_not_run() {
    let w = World::new(1, 1);
    let cache = tempfile::tempdir().unwrap();
    let population = verified(&w, "population");
    let spin = verified(&w, "oar_test_guest_spin");
    {
        let runtime = oar_host::sandbox::Runtime::new(Some(cache.path().to_path_buf())).unwrap();
        runtime.prepare(&spin).unwrap();
    }
    let entry = |hash: &str| cache.path().join(format!("{hash}.cwasm"));
    assert!(entry(spin.module_hash()).exists());
    std::fs::copy(entry(spin.module_hash()), entry(population.module_hash())).unwrap();
    let runtime = oar_host::sandbox::Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let (_, hit) = runtime.prepare(&population).unwrap();
    assert!(!hit, "the planted file was loaded as the population module");
    // The genuine entry still loads in a new runtime.
    let again = oar_host::sandbox::Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    assert!(again.prepare(&spin).unwrap().1, "a genuine entry is a hit");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.path()), 0o700);
        assert_eq!(mode(&entry(spin.module_hash())), 0o600);
    }
}

/// Hostile Python modules (`tests/guests/python-hostile`, one attack per mode, built with the
/// pinned componentize-py) end as their Rust twins do, release nothing and charge only what
/// they saw: a loop is stopped at the deadline; a memory bomb that catches `MemoryError` and
/// carries on still ends capped; unbounded recursion meets the cap; opening a file or a socket
/// fails (no WASI but the stubs, which trap); a flood of queries is refused at the policy's limit.
#[test]
fn hostile_python_modules_end_as_their_rust_twins_do() {
    let mut w = World::new(1, 1);
    w.policy.limits.time_ms = 3_000;
    let (host, ledger) = host(&w, 10.0);
    let bytes = common::python::component("tests/guests/python-hostile");
    let module = common::verified_bundle(&w, bundle(&w, bytes));
    // Compiled before the clock starts (a first compile of a Python component takes seconds).
    host.runtime()
        .prepare(&module)
        .expect("a --stub-wasi component is accepted");
    let limit = w.policy.limits.max_queries_per_run as usize;
    for mode in ["spin", "hog", "recurse", "file", "socket", "flood"] {
        let before = common::spent(&ledger, "stats-office");
        let started = std::time::Instant::now();
        let out = host.run(
            module.clone(),
            "stats-office",
            &format!(r#"{{"mode": "{mode}"}}"#),
        );
        let err = match &out.result {
            Ok(_) => panic!("{mode}: the hostile module released something"),
            Err(JobError::Sandbox(e)) => e,
            Err(e) => panic!("{mode}: failed outside the sandbox: {e}"),
        };
        let spent = common::spent(&ledger, "stats-office") - before;
        match mode {
            "spin" => {
                assert!(matches!(err, SandboxError::Deadline(_)), "{mode}: {err}");
                assert!(started.elapsed() < std::time::Duration::from_secs(20));
            }
            "hog" => assert!(matches!(err, SandboxError::Memory(64)), "{mode}: {err}"),
            // CPython keeps its frames on the heap: unbounded recursion meets the memory cap
            // (a Rust module's meets the stack's end and traps).
            "recurse" => assert!(
                matches!(err, SandboxError::Memory(64) | SandboxError::Trap(_)),
                "{mode}: {err}"
            ),
            "file" | "socket" => assert!(
                matches!(err, SandboxError::Trap(_) | SandboxError::Module(_)),
                "{mode}: {err}"
            ),
            "flood" => {
                assert!(
                    matches!(err, SandboxError::Module(m) if m.contains("queries")),
                    "{mode}: {err}"
                );
                assert_eq!(out.record.charges.len(), limit, "{mode}");
                assert!(
                    (spent - 0.01 * limit as f64).abs() < 1e-9,
                    "{mode}: {spent}"
                );
                continue;
            }
            _ => unreachable!(),
        }
        assert!(out.record.charges.is_empty(), "{mode}");
        assert_eq!(spent, 0.0, "{mode}");
        println!("{mode}: {err}");
    }
}
