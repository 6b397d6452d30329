//! The DataFusion backend, in process and on a Ballista cluster of real processes on loopback.
//!
//! - In process: the same random plans over the same edge-case data as `tests/backends.rs`,
//!   compared with the reference executor.
//! - On a cluster (a scheduler and two executors started from `oar-cluster`, reading the same
//!   Parquet files): the five example modules run in the sandbox, and every query's per-cell
//!   statistics match the Polars backend's for the same plan; an executor killed while a query
//!   runs ends the run in the constant failure, its charge kept and nothing released.

mod common;
#[path = "support/differential.rs"]
mod differential;

use common::World;
use oar_datafusion::DataFusionBackend;
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::ledger::SqliteLedger;
use oar_host::query::{self, BackendError, CellStats, CheckedPlan, QueryBackend};
use oar_host::sandbox::Runtime;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn datafusion_computes_what_the_reference_computes_on_random_plans() {
    let backend = DataFusionBackend::in_process().unwrap();
    // OAR_DIFF_PLANS and OAR_DIFF_SEED run a longer sweep.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    differential::differential(
        &backend,
        env("OAR_DIFF_PLANS", 400) as usize,
        env("OAR_DIFF_SEED", 3),
    );
}

/// A CSV dataset reads the same on DataFusion (every column as text, then converted, a value
/// that does not parse being null) as on Polars' reader, which the reference uses.
#[test]
fn datafusion_reads_a_csv_dataset_as_the_reference_does_on_random_plans() {
    let backend = DataFusionBackend::in_process().unwrap();
    differential::differential_on(differential::edgy_csv(), &backend, 300, 5);
}

/// A query still running at the deadline is abandoned with `Deadline`; one with time to spare
/// finishes. (On a cluster the host stops waiting the same way.)
#[test]
fn the_datafusion_engine_stops_at_the_deadline() {
    let ds = Dataset::open(differential::edgy()).unwrap();
    let plan: oar_guest::plan::Plan = serde_json::from_str(
        r#"{"dataset":"edgy","group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"}],"epsilon":1.0}"#,
    )
    .unwrap();
    let checked = query::check(&plan, &ds, differential::LIMITS).unwrap();
    let backend = DataFusionBackend::in_process().unwrap();
    assert_eq!(
        backend.execute(&checked, &ds, Some(Instant::now())).err(),
        Some(BackendError::Deadline)
    );
    let later = Instant::now() + Duration::from_secs(60);
    assert!(backend.execute(&checked, &ds, Some(later)).is_ok());
}

/// Plans on which DataFusion once differed from the reference, each with what went wrong.
#[test]
fn plans_that_once_differed_on_datafusion_agree() {
    let cases = [
        // Dominance figures of several value inputs: `DataFrame::window` sorted every ranking
        // by the first one's order, so the second and third inputs' "largest" contributors
        // were arbitrary ones.
        r#"{"dataset":"edgy","steps":[{"op":"derive","name":"bucket","expr":{"kind":"bin","expr":{"kind":"arith","op":"add","left":{"kind":"column","name":"visits"},"right":{"kind":"column","name":"level"}},"edges":[-5.0,0.0,10.0,50.0]}}],"group_by":["level"],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"mean","name":"m0","column":"amount","bounds":[0.0,10.0]},{"agg":"quantile","name":"q1","column":"level","q":0.5,"bins":2},{"agg":"sum","name":"s2","column":"visits"}],"bounds":{"max_groups_per_unit":1,"max_rows_per_group":2},"epsilon":1.0}"#,
        // `visits NOT IN (8) OR visits NOT IN (9)`: DataFusion's simplifier rewrote it to
        // `true`, so rows with a null `visits` passed a filter that drops them (two more units).
        r#"{"dataset":"edgy","steps":[{"op":"filter","predicate":{"kind":"and","left":{"kind":"not","expr":{"kind":"compare","op":"ne","left":{"kind":"literal","value":"2026-03-04"},"right":{"kind":"date","expr":{"kind":"column","name":"ts"}}}},"right":{"kind":"or","left":{"kind":"not","expr":{"kind":"is_in","expr":{"kind":"column","name":"visits"},"values":[true,1.0,8]}},"right":{"kind":"not","expr":{"kind":"is_in","expr":{"kind":"column","name":"visits"},"values":[9]}}}}},{"op":"derive","name":"slot","expr":{"kind":"half_hour","expr":{"kind":"column","name":"ts"}}},{"op":"derive","name":"bucket","expr":{"kind":"bin","expr":{"kind":"column","name":"visits"},"edges":[0.0,100.0]}},{"op":"per_unit","name":"per","reduce":"max","expr":{"kind":"column","name":"visits"},"rows":{"kind":"and","left":{"kind":"compare","op":"gt","left":{"kind":"column","name":"ts"},"right":{"kind":"literal","value":"2026-03-04T12:00:00"}},"right":{"kind":"compare","op":"lt","left":{"kind":"column","name":"ts"},"right":{"kind":"literal","value":"2026-03-04T12:00:00"}}},"by":["region"]}],"group_by":[],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"sum","name":"s0","column":"level"},{"agg":"sum","name":"s1","column":"visits"}],"bounds":{"max_groups_per_unit":4,"max_rows_per_group":2},"epsilon":1.0}"#,
    ];
    let ds = Dataset::open(differential::edgy()).unwrap();
    let backend = DataFusionBackend::in_process().unwrap();
    for case in cases {
        let plan: oar_guest::plan::Plan = serde_json::from_str(case).unwrap();
        let checked = query::check(&plan, &ds, differential::LIMITS).unwrap();
        let want = query::ReferenceBackend
            .execute(&checked, &ds, None)
            .unwrap();
        let got = backend.execute(&checked, &ds, None).unwrap();
        if let Some(d) = differential::difference(&want, &got) {
            panic!("{d}\nplan: {case}");
        }
    }
}

// ---- A cluster on loopback ----------------------------------------------------------------

/// A free TCP port on loopback (free when asked; the processes bind it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Ballista scheduler and two executors, killed when dropped.
struct Cluster {
    scheduler: SocketAddr,
    processes: Vec<Child>,
    _work: tempfile::TempDir,
}

impl Cluster {
    /// Starts the processes and waits until a query runs on them.
    fn start(scheduler_flags: &[&str], executor_flags: &[&str]) -> Cluster {
        let bin = env!("CARGO_BIN_EXE_oar-cluster");
        let work = tempfile::tempdir().unwrap();
        let scheduler: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // Each process logs to a file of its own in the target's temporary folder (kept for
        // a look after a failure).
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let spawn = |args: Vec<String>| {
            let log = std::fs::File::create(logs.join(format!(
                "{}-{}-{}.log",
                std::process::id(),
                args[0],
                args.iter().find(|a| a.parse::<u16>().is_ok()).map_or("", |p| p)
            )))
            .unwrap();
            Command::new(bin)
                .args(&args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("oar-cluster starts")
        };
        let mut processes = vec![spawn(
            ["scheduler", "--bind", &scheduler.to_string()]
                .iter()
                .chain(scheduler_flags)
                .map(|s| s.to_string())
                .collect(),
        )];
        wait_for_port(scheduler);
        for i in 0..2 {
            let dir = work.path().join(format!("executor-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let (port, grpc) = (free_port(), free_port());
            let mut args: Vec<String> = executor_flags.iter().map(|s| s.to_string()).collect();
            args.splice(
                0..0,
                [
                    "executor".into(),
                    "--scheduler".into(),
                    scheduler.to_string(),
                    "--port".into(),
                    port.to_string(),
                    "--grpc-port".into(),
                    grpc.to_string(),
                    "--work-dir".into(),
                    dir.to_string_lossy().into_owned(),
                    "--concurrent-tasks".into(),
                    "2".into(),
                    "--heartbeat".into(),
                    "1".into(),
                ],
            );
            processes.push(spawn(args));
            wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let cluster = Cluster {
            scheduler,
            processes,
            _work: work,
        };
        cluster.wait_until_it_answers();
        cluster
    }

    fn address(&self) -> String {
        format!("df://{}", self.scheduler)
    }

    fn backend(&self) -> DataFusionBackend {
        DataFusionBackend::ballista(&self.address()).unwrap()
    }

    /// Runs a small query until the scheduler has executors to give it to.
    fn wait_until_it_answers(&self) {
        let ds = Dataset::open(differential::edgy()).unwrap();
        let plan: oar_guest::plan::Plan = serde_json::from_str(
            r#"{"dataset":"edgy","steps":[],"group_by":["region"],
                "aggregates":[{"agg":"count_units","name":"n"}],"epsilon":1.0}"#,
        )
        .unwrap();
        let checked = query::check(&plan, &ds, differential::LIMITS).unwrap();
        let backend = self.backend();
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let deadline = Instant::now() + Duration::from_secs(20);
            match backend.execute(&checked, &ds, Some(deadline)) {
                Ok(_) => return,
                Err(e) if Instant::now() > until => panic!("the cluster never answered: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Kills executor `i` (0 or 1) at once.
    fn kill_executor(&mut self, i: usize) {
        let p = &mut self.processes[1 + i];
        p.kill().unwrap();
        p.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn wait_for_port(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < until, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A backend that keeps every plan it ran (as JSON) with its statistics.
struct Recording {
    inner: Arc<dyn QueryBackend>,
    seen: Mutex<Vec<(String, CellStats)>>,
}

impl Recording {
    fn new(inner: Arc<dyn QueryBackend>) -> Arc<Recording> {
        Arc::new(Recording {
            inner,
            seen: Mutex::new(Vec::new()),
        })
    }
}

impl QueryBackend for Recording {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn execute(
        &self,
        plan: &CheckedPlan,
        dataset: &Dataset,
        deadline: Option<Instant>,
    ) -> Result<CellStats, BackendError> {
        let stats = self.inner.execute(plan, dataset, deadline)?;
        let key = serde_json::to_string(&plan.plan).unwrap();
        self.seen.lock().unwrap().push((key, stats.clone()));
        Ok(stats)
    }
}

/// Every plan both backends ran has the same per-cell statistics on both, and there is one.
/// Plans are matched by their text: a module may choose its next query from a noisy answer, so
/// two runs need not send the same sequence.
fn assert_same_statistics(label: &str, want: &Recording, got: &Recording) {
    let (want, got) = (want.seen.lock().unwrap(), got.seen.lock().unwrap());
    let mut compared = 0;
    for (plan, stats) in want.iter() {
        if let Some((_, theirs)) = got.iter().find(|(p, _)| p == plan) {
            if let Some(d) = differential::difference(stats, theirs) {
                panic!("{label}: the cluster differs from Polars: {d}\nplan: {plan}");
            }
            compared += 1;
        }
    }
    assert!(compared > 0, "{label}: no plan ran on both engines");
}

/// A host over the dataset at `descriptor` running queries on `backend`.
fn host_on(world: &World, descriptor: &Path, backend: Arc<dyn QueryBackend>) -> Host {
    let mut policy = world.policy.clone();
    let name = Dataset::open(descriptor).unwrap().name().to_string();
    policy.requesters[0].datasets.push(name);
    policy.limits.time_ms = 300_000;
    let mut catalog = Catalog::new();
    catalog.register(Dataset::open(descriptor).unwrap());
    Host::new(
        Runtime::new(Some(common::cache_dir())).unwrap(),
        catalog,
        policy,
        Arc::new(SqliteLedger::in_memory()),
    )
    .with_backend(backend)
}

/// The five example modules and a small synthetic dataset for each.
fn examples(dir: &Path) -> Vec<(&'static str, &'static str, PathBuf)> {
    use oar_host::synth;
    let cdr = synth::cdr::CdrSpec {
        rows: 100_000,
        subscribers: Some(5_000),
        ..Default::default()
    }
    .write(&dir.join("cdr"))
    .unwrap();
    vec![
        ("population", "population", cdr.clone()),
        ("od-flows", "od_flows", cdr),
        (
            "rates-gap",
            "rates_gap",
            synth::premises::PremisesSpec::default()
                .write(&dir.join("premises"))
                .unwrap(),
        ),
        (
            "load-profile",
            "load_profile",
            synth::meters::MetersSpec::default()
                .write(&dir.join("meters"))
                .unwrap(),
        ),
        (
            "event-traffic",
            "event_traffic",
            synth::traffic::TrafficSpec::default()
                .write(&dir.join("journeys"))
                .unwrap(),
        ),
    ]
}

#[test]
fn the_five_example_modules_get_the_same_statistics_from_a_ballista_cluster_as_from_polars() {
    let cluster = Cluster::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let w = World::new(1, 1);
    for (crate_dir, component, descriptor) in examples(dir.path()) {
        let module = common::verified_example(&w, crate_dir, component);
        let polars = Recording::new(Arc::new(query::PolarsBackend::default()));
        let ballista = Recording::new(Arc::new(cluster.backend()));
        for backend in [&polars, &ballista] {
            let out =
                host_on(&w, &descriptor, backend.clone()).run(module.clone(), "stats-office", "{}");
            out.result
                .unwrap_or_else(|e| panic!("{crate_dir} on {}: {e}", backend.name()));
        }
        assert!(
            !polars.seen.lock().unwrap().is_empty(),
            "{crate_dir} ran no query"
        );
        assert_same_statistics(crate_dir, &polars, &ballista);
    }
}

/// A CDR set big enough that its origin-destination release runs for several seconds on the
/// cluster, with a host over it on `backend` and the host's ledger.
fn od_host_on(dir: &Path, backend: Arc<dyn QueryBackend>) -> (Host, Arc<SqliteLedger>) {
    od_host_with_time(dir, backend, 120_000)
}

/// [`od_host_on`] with a run time limit of `time_ms`.
fn od_host_with_time(
    dir: &Path,
    backend: Arc<dyn QueryBackend>,
    time_ms: u64,
) -> (Host, Arc<SqliteLedger>) {
    let descriptor = oar_host::synth::cdr::CdrSpec {
        rows: 3_000_000,
        subscribers: Some(200_000),
        ..Default::default()
    }
    .write(dir)
    .unwrap();
    let w = World::new(1, 1);
    let ledger = Arc::new(SqliteLedger::in_memory());
    let mut policy = w.policy.clone();
    policy.limits.time_ms = time_ms;
    let mut catalog = Catalog::new();
    catalog.register(Dataset::open(&descriptor).unwrap());
    let host = Host::new(
        Runtime::new(Some(common::cache_dir())).unwrap(),
        catalog,
        policy,
        ledger.clone(),
    )
    .with_backend(backend);
    (host, ledger)
}

/// Runs the origin-destination module on `host`, killing `executors` of `cluster` 1.5 s in.
fn od_run_killing(
    host: Host,
    cluster: &mut Cluster,
    executors: &[usize],
) -> oar_host::job::JobOutcome {
    let w = World::new(1, 1);
    let module = common::verified_example(&w, "od-flows", "od_flows");
    let run = std::thread::spawn(move || host.run(module, "stats-office", "{}"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !run.is_finished(),
        "the run ended before an executor was killed"
    );
    for &i in executors {
        cluster.kill_executor(i);
    }
    run.join().unwrap()
}

#[test]
fn an_executor_killed_mid_query_leaves_a_whole_release_or_the_constant_failure_never_a_partial_one()
{
    // Ballista usually re-runs a lost executor's tasks on the other one: the release is whole,
    // with every cell's statistics exactly those Polars computes. Sometimes (a task fetched a
    // shuffle partition from the dead executor before it was declared lost, and the stage's
    // resubmission crossed the executor's removal) Ballista 55's job stalls; the run then ends
    // at its deadline in the constant failure, its charges kept and nothing released. Never a
    // partial table.
    // A heartbeat 10 s late counts as lost: under the whole test suite on two cores the
    // surviving executor's 1 s heartbeats were once more than 3 s late, and the job failed.
    let mut cluster = Cluster::start(&["--executor-timeout", "10"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let ballista = Recording::new(Arc::new(cluster.backend()));
    let (host, ledger) = od_host_on(dir.path(), ballista.clone());
    let out = od_run_killing(host, &mut cluster, &[0]);
    if let Err(err) = &out.result {
        assert!(
            matches!(
                err,
                oar_host::job::JobError::Sandbox(oar_host::sandbox::SandboxError::Deadline(_))
            ),
            "not a whole release, and not the constant failure at the deadline: {err}"
        );
        assert!(
            !out.record.charges.is_empty() && common::spent(&ledger, "stats-office") > 0.0,
            "the charge of the stalled query stands"
        );
        assert!(out.files.is_empty());
        eprintln!(
            "Ballista did not recover from the lost executor; the run failed at its deadline"
        );
        return;
    }
    let polars = Recording::new(Arc::new(query::PolarsBackend::default()));
    let (host, _) = od_host_on(&dir.path().join("again"), polars.clone());
    let w = World::new(1, 1);
    host.run(
        common::verified_example(&w, "od-flows", "od_flows"),
        "stats-office",
        "{}",
    )
    .result
    .unwrap();
    assert_same_statistics("after losing an executor", &polars, &ballista);
}

#[test]
fn a_cluster_that_loses_every_executor_mid_query_ends_in_the_constant_failure_with_the_charge_kept()
{
    let mut cluster = Cluster::start(&["--executor-timeout", "3"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let (host, ledger) = od_host_on(dir.path(), Arc::new(cluster.backend()));
    let started = Instant::now();
    let out = od_run_killing(host, &mut cluster, &[0, 1]);
    let err = out
        .result
        .expect_err("a run whose cluster is gone releases nothing");
    let text = format!("{err} {:?}", out.record);
    assert!(
        text.contains("failed after touching the data"),
        "not the constant failure: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the failure waited for the deadline ({:?})",
        started.elapsed()
    );
    assert!(
        !out.record.charges.is_empty() && common::spent(&ledger, "stats-office") > 0.0,
        "the charge of the failed query stands"
    );
    assert!(out.files.is_empty());
}

/// A run whose deadline passes while its query runs as a Ballista job: the run ends at once in
/// the constant failure, and the job is cancelled on the cluster rather than left running with
/// no one to read it (the scheduler reports it failed, not running or done).
#[test]
fn a_job_still_running_at_the_deadline_is_cancelled_on_the_cluster() {
    use oar_datafusion::ballista_proto::{job_status, GetJobStatusParams, SchedulerGrpcClient};
    let cluster = Cluster::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(cluster.backend());
    let (host, ledger) = od_host_with_time(dir.path(), backend.clone(), 3_000);
    let w = World::new(1, 1);
    let started = Instant::now();
    let out = host.run(
        common::verified_example(&w, "od-flows", "od_flows"),
        "stats-office",
        "{}",
    );
    let ended = started.elapsed();
    match &out.result {
        Err(oar_host::job::JobError::Sandbox(oar_host::sandbox::SandboxError::Deadline(_))) => {}
        other => panic!(
            "the OD release over 3M rows was meant to outlast a 3 s deadline: {:?}",
            other.as_ref().map(|_| "released")
        ),
    }
    assert!(ended < Duration::from_secs(10), "the run waited {ended:?}");
    assert!(out.files.is_empty());
    assert!(
        common::spent(&ledger, "stats-office") > 0.0,
        "the charge stands"
    );

    // The job's cancellation reaches the scheduler within a poll or two.
    let until = Instant::now() + Duration::from_secs(20);
    let job = loop {
        if let Some(job) = backend.cancelled_jobs().first() {
            break job.clone();
        }
        assert!(
            Instant::now() < until,
            "no job was cancelled on the cluster"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failed = rt.block_on(async {
        let mut scheduler = SchedulerGrpcClient::connect(format!("http://{}", cluster.scheduler))
            .await
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let status = scheduler
                .get_job_status(GetJobStatusParams {
                    job_id: job.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .status
                .and_then(|s| s.status);
            match status {
                Some(job_status::Status::Failed(_)) => return true,
                Some(job_status::Status::Successful(_)) => return false,
                _ if Instant::now() > until => return false,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    assert!(failed, "job {job} was not cancelled on the cluster");
}
