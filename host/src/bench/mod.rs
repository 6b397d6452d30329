//! `oar bench` / `cargo bench`: the population release against raw Polars and OpenDP, timed in
//! one run on the same synthetic data; `oar bench --scale` ([`scale`]) over growing data.
//!
//! Measured (median of `repeat` runs each):
//! - **raw Polars**: `group_by([region, day]).agg(subscriber_id.n_unique())`, no privacy at all;
//! - **peers** (`--peers`, [`peers`]): Python Polars (exact) and OpenDP-Python's user-level DP
//!   count of the same query on the same file, run by a pinned Python environment;
//! - **OAR query**: plan validation, per-unit bounding, per-cell aggregation and the gate, as a
//!   module's `query` call runs it;
//! - **OAR module run**: the whole sandboxed run of the signed population module (verification,
//!   compiled-code cache, instantiation, the query, emit).

pub mod peers;
pub mod scale;

use crate::approval::{Approval, ApprovalRecord};
use crate::artifacts::{POPULATION_COMPONENT, POPULATION_MANIFEST};
use crate::bundle::{Bundle, Manifest};
use crate::dataset::{Catalog, Dataset};
use crate::job::Host;
use crate::keys::KeyPair;
use crate::ledger::SqliteLedger;
use crate::policy::{Committee, Party, Policy, Requester};
use crate::progress::Progress;
use crate::query::{self, PlanLimits, QueryBackend};
use crate::sandbox::Runtime;
use crate::synth::cdr::CdrSpec;
use crate::verify::verify;
use oar_guest::plan::{Aggregate, ContributionBounds, Plan, Step};
use polars::prelude::*;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Synthetic rows.
    pub rows: usize,
    /// Timed repetitions per variant.
    pub repeat: usize,
    /// Folder for the data (reused when it holds the same size).
    pub dir: PathBuf,
    /// Also time Python Polars and OpenDP-Python on the same file ([`peers`]).
    pub peers: bool,
    /// The Python to run the peers with (else a pinned environment under `dir`).
    pub python: Option<PathBuf>,
}

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Generating data failed.
    #[error(transparent)]
    Synth(#[from] crate::synth::SynthError),
    /// Polars failed.
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    /// The Python peers could not be measured.
    #[error("{0}")]
    Peers(String),
    /// The OAR path failed.
    #[error("oar: {0}")]
    Oar(String),
    /// I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Medians per variant.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Rows measured.
    pub rows: usize,
    /// Raw Polars group-by, the best of Polars' two engines (the baseline).
    pub raw_polars: Duration,
    /// Raw Polars group-by on the in-memory engine.
    pub raw_in_memory: Duration,
    /// Raw Polars group-by on the streaming engine.
    pub raw_streaming: Duration,
    /// Python Polars and OpenDP-Python on the same file (`--peers`), if measured.
    pub peers: Option<peers::PeerTimes>,
    /// OAR query path (validation + execution + gate).
    pub oar_query: Duration,
    /// OAR execution alone (no gate), to split the time, with the default (streaming) engine.
    pub oar_execute: Duration,
    /// OAR execution alone on Polars' in-memory engine.
    pub oar_execute_in_memory: Duration,
    /// Whole sandboxed module run.
    pub oar_module: Duration,
    /// Verification of bundle and approval.
    pub verify: Duration,
    /// Getting compiled code from the in-memory cache.
    pub prepare_cached: Duration,
    /// Instantiation of the component.
    pub instantiate: Duration,
    /// Compiling the component when not cached.
    pub compile: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let ratio = |d: Duration| d.as_secs_f64() / self.raw_polars.as_secs_f64();
        writeln!(
            f,
            "population release over {} rows (median times)",
            self.rows
        )?;
        writeln!(
            f,
            "  raw Polars group-by (no privacy)     {:>9.1} ms   1.00x   (best engine; in-memory {:.1} ms, streaming {:.1} ms)",
            ms(self.raw_polars),
            ms(self.raw_in_memory),
            ms(self.raw_streaming)
        )?;
        if let Some(p) = &self.peers {
            writeln!(
                f,
                "  Python Polars {} (exact, best engine) {:>9.1} ms   {:.2}x",
                p.polars_version,
                ms(p.python_polars),
                ratio(p.python_polars)
            )?;
            writeln!(
                f,
                "  OpenDP-Python {} user-level DP count {:>9.1} ms   {:.2}x",
                p.opendp_version,
                ms(p.opendp),
                ratio(p.opendp)
            )?;
        }
        writeln!(
            f,
            "  OAR query: execute (bounding, cells) {:>9.1} ms   {:.2}x   (in-memory engine {:.1} ms, {:.2}x)",
            ms(self.oar_execute),
            ratio(self.oar_execute),
            ms(self.oar_execute_in_memory),
            ratio(self.oar_execute_in_memory)
        )?;
        writeln!(
            f,
            "  OAR query: execute + gate            {:>9.1} ms   {:.2}x",
            ms(self.oar_query),
            ratio(self.oar_query)
        )?;
        writeln!(
            f,
            "  OAR whole sandboxed module run       {:>9.1} ms   {:.2}x",
            ms(self.oar_module),
            ratio(self.oar_module)
        )?;
        if let Some(p) = &self.peers {
            writeln!(
                f,
                "  OAR query path vs Python Polars      {:.2}x   (exact floor)",
                self.oar_query.as_secs_f64() / p.python_polars.as_secs_f64()
            )?;
            writeln!(
                f,
                "  OpenDP-Python vs OAR query path      {:.1}x faster for OAR",
                p.opendp.as_secs_f64() / self.oar_query.as_secs_f64()
            )?;
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        writeln!(f, "module start-up:")?;
        writeln!(
            f,
            "  verify bundle + approval             {:>9.1} us",
            us(self.verify)
        )?;
        writeln!(
            f,
            "  compiled code from cache             {:>9.1} us",
            us(self.prepare_cached)
        )?;
        writeln!(
            f,
            "  instantiate                          {:>9.1} us",
            us(self.instantiate)
        )?;
        writeln!(
            f,
            "  compile (first run, not cached)      {:>9.1} ms",
            ms(self.compile)
        )
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(
    repeat: usize,
    progress: &mut dyn FnMut(Progress<'_>),
    mut f: impl FnMut() -> Result<T, BenchError>,
) -> Result<Duration, BenchError> {
    let total = repeat.max(1);
    let mut times = Vec::with_capacity(total);
    for i in 0..total {
        let t = Instant::now();
        std::hint::black_box(f()?);
        times.push(t.elapsed());
        progress(Progress::Count {
            done: i as u64 + 1,
            total: total as u64,
        });
    }
    Ok(median(times))
}

/// The population plan, as the example module builds it.
pub fn population_plan(epsilon: f64) -> Plan {
    Plan {
        dataset: "cdr".into(),
        steps: vec![Step::Derive {
            name: "day".into(),
            expr: oar_guest::col("timestamp").date(),
        }],
        group_by: vec!["region".into(), "day".into()],
        aggregates: vec![Aggregate::CountUnits {
            name: "subscribers".into(),
        }],
        bounds: ContributionBounds {
            max_groups_per_unit: Some(14),
            max_rows_per_group: None,
        },
        epsilon,
        totals: false,
        key_selection: false,
    }
}

/// The origin-destination plan, as the `od-flows` example builds its flows table: each
/// subscriber's home (most frequent night-time region over the period) and destination each day
/// (most frequent working-hours region that day), counted per day × origin × destination.
pub fn od_plan(epsilon: f64) -> Plan {
    use oar_guest::plan::Reduce;
    let hour = || oar_guest::col("timestamp").hour();
    Plan {
        dataset: "cdr".into(),
        steps: vec![
            Step::Derive {
                name: "day".into(),
                expr: oar_guest::col("timestamp").date(),
            },
            Step::PerUnit {
                name: "origin".into(),
                reduce: Reduce::Mode,
                expr: oar_guest::col("region"),
                rows: Some(hour().ge(22).or(hour().lt(6))),
                by: vec![],
            },
            Step::PerUnit {
                name: "destination".into(),
                reduce: Reduce::Mode,
                expr: oar_guest::col("region"),
                rows: Some(hour().ge(9).and(hour().lt(17))),
                by: vec!["day".into()],
            },
        ],
        group_by: vec!["day".into(), "origin".into(), "destination".into()],
        aggregates: vec![Aggregate::CountUnits {
            name: "subscribers".into(),
        }],
        bounds: ContributionBounds {
            max_groups_per_unit: Some(7),
            max_rows_per_group: None,
        },
        epsilon,
        totals: false,
        key_selection: false,
    }
}

/// Runs the benchmark; `progress` receives each step and each timed repetition.
pub fn run(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<BenchReport, BenchError> {
    let spec = CdrSpec {
        rows: opts.rows,
        ..CdrSpec::default()
    };
    let marker = opts.dir.join(format!("rows-{}", opts.rows));
    if !marker.exists() {
        progress(Progress::Step(&format!(
            "generating {} synthetic rows in {} ...",
            opts.rows,
            opts.dir.display()
        )));
        let _ = std::fs::remove_dir_all(&opts.dir);
        spec.write(&opts.dir)?;
        std::fs::write(&marker, b"")?;
    }
    let dataset =
        Dataset::open(&opts.dir.join("cdr.toml")).map_err(|e| BenchError::Oar(e.to_string()))?;
    let scan = || dataset.scan();

    progress(Progress::Step("raw Polars ..."));
    let raw = || -> PolarsResult<LazyFrame> {
        Ok(scan()?
            .with_column(col("timestamp").dt().date().alias("day"))
            .group_by([col("region"), col("day")])
            .agg([col("subscriber_id").n_unique()]))
    };
    let raw_in_memory = time(opts.repeat, &mut *progress, || Ok(raw()?.collect()?))?;
    let raw_streaming = time(opts.repeat, &mut *progress, || {
        Ok(raw()?.collect_with_engine(Engine::Streaming)?)
    })?;
    let raw_polars = raw_in_memory.min(raw_streaming);

    progress(Progress::Step("OAR query path ..."));
    let limits = PlanLimits {
        max_output_cells: 100_000,
        max_groups_per_unit: 64,
    };
    let plan = population_plan(1.0);
    let config = crate::gate::GateConfig {
        min_units: 10,
        delta0: 1e-9,
        dominance: Some(crate::gate::Dominance::default()),
    };
    let run_with = |backend: query::PolarsBackend, checked: &query::CheckedPlan| {
        backend
            .execute(checked, &dataset, None)
            .map_err(|e| BenchError::Oar(e.to_string()))
    };
    let execute = |checked: &query::CheckedPlan| run_with(query::PolarsBackend::default(), checked);
    let oar_execute = time(opts.repeat, &mut *progress, || {
        let checked =
            query::check(&plan, &dataset, limits).map_err(|e| BenchError::Oar(e.to_string()))?;
        execute(&checked)
    })?;
    let oar_execute_in_memory = time(opts.repeat, &mut *progress, || {
        let checked =
            query::check(&plan, &dataset, limits).map_err(|e| BenchError::Oar(e.to_string()))?;
        run_with(query::PolarsBackend::IN_MEMORY, &checked)
    })?;
    let oar_query = time(opts.repeat, &mut *progress, || {
        let compiled =
            query::check(&plan, &dataset, limits).map_err(|e| BenchError::Oar(e.to_string()))?;
        let stats = execute(&compiled)?;
        crate::gate::release(&compiled, &stats, config).map_err(|e| BenchError::Oar(e.to_string()))
    })?;

    let peers = if opts.peers {
        let python = peers::python(opts.python.as_deref(), &opts.dir, progress)?;
        progress(Progress::Step("Python Polars and OpenDP-Python ..."));
        let days: Vec<String> = (0..crate::synth::cdr::DAYS)
            .map(|d| (spec.start + chrono::Duration::days(d)).to_string())
            .collect();
        Some(peers::run(
            &python,
            &opts.dir,
            &[opts.dir.join("cdr.parquet")],
            &spec.region_names(),
            &days,
            opts.repeat,
        )?)
    } else {
        None
    };

    progress(Progress::Step("OAR sandboxed module ..."));
    let author = KeyPair::generate("bench-author");
    let member = KeyPair::generate("bench-member");
    let requester = KeyPair::generate("bench");
    let policy = Policy {
        min_units: 10,
        delta0: 1e-9,
        limits: Default::default(),
        budget: crate::policy::Budget {
            epsilon_per_requester_dataset: 1e9,
            ..Default::default()
        },
        holder: None,
        dominance: Default::default(),
        authors: vec![crate::policy::Author {
            name: "a".into(),
            key: author.public(),
            datasets: vec!["cdr".into()],
        }],
        committee: Committee {
            quorum: 1,
            members: vec![Party {
                name: "m".into(),
                key: member.public(),
            }],
        },
        requesters: vec![Requester {
            name: "bench".into(),
            key: requester.public(),
            datasets: vec!["cdr".into()],
        }],
        datasets: Default::default(),
    };
    let manifest =
        Manifest::from_toml(POPULATION_MANIFEST).map_err(|e| BenchError::Oar(e.to_string()))?;
    let bundle = Bundle::sign(POPULATION_COMPONENT.to_vec(), manifest, &author);
    let now = chrono::Utc::now();
    let mut approval = Approval::new(ApprovalRecord::for_bundle(
        &bundle,
        1e9,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(1),
    ));
    approval.sign(&member);
    let verify_now = || {
        verify(
            &bundle,
            &approval,
            &policy,
            &crate::revocation::RevocationList::empty(),
            chrono::Utc::now(),
        )
        .map_err(|e| BenchError::Oar(e.to_string()))
    };
    let verify_time = time(opts.repeat.max(20), &mut *progress, verify_now)?;
    let verified = Arc::new(verify_now()?);
    let mut catalog = Catalog::new();
    catalog.register(dataset.clone());
    let runtime = Runtime::new(None).map_err(|e| BenchError::Oar(e.to_string()))?;
    let t = Instant::now();
    runtime
        .prepare(&verified)
        .map_err(|e| BenchError::Oar(e.to_string()))?;
    let compile = t.elapsed();
    let prepare_cached = time(opts.repeat.max(20), &mut *progress, || {
        runtime
            .prepare(&verified)
            .map_err(|e| BenchError::Oar(e.to_string()))
    })?;
    // Each repetition runs the module: an identical run would otherwise get the first run's
    // release back without running.
    let host = Host::new(
        runtime,
        catalog,
        policy,
        Arc::new(SqliteLedger::in_memory()),
    )
    .without_release_reuse();
    let mut instantiate = Vec::new();
    let oar_module = time(opts.repeat, &mut *progress, || {
        let outcome = host.run(verified.clone(), "bench", r#"{"epsilon": 1.0}"#);
        let stats = outcome
            .stats
            .ok_or_else(|| BenchError::Oar(format!("{:?}", outcome.result.err())))?;
        instantiate.push(stats.instantiate);
        Ok(())
    })?;

    Ok(BenchReport {
        rows: opts.rows,
        raw_polars,
        raw_in_memory,
        raw_streaming,
        oar_execute_in_memory,
        peers,
        oar_query,
        oar_execute,
        oar_module,
        verify: verify_time,
        prepare_cached,
        instantiate: median(instantiate),
        compile,
    })
}
