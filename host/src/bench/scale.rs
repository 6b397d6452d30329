//! `oar bench --scale`: the population and OD releases over growing synthetic sets (10M, 100M,
//! 1B rows by default), time and peak memory, against raw Polars on the same files.
//!
//! Every measurement runs in a child process of its own (`oar bench-variant`), so each peak
//! resident set (`VmHWM`) belongs to one variant alone. The data is generated in files of
//! [`ROWS_PER_FILE`] rows, one at a time, and reused by later runs.

use super::{od_plan, population_plan, BenchError};
use crate::dataset::Dataset;
use crate::progress::Progress;
use crate::query::{self, PlanLimits, QueryEngine};
use crate::synth::cdr::CdrSpec;
use polars::prelude::*;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows per generated file.
pub const ROWS_PER_FILE: usize = 10_000_000;

/// What one child process measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Raw Polars, streaming engine: distinct subscribers per (region, day), no privacy.
    RawStreaming,
    /// The same on Polars' in-memory engine.
    RawInMemory,
    /// Raw Polars, streaming engine: the exact origin-destination table, no privacy. Each
    /// subscriber's most frequent night-time region (home) and working-hours region per day
    /// (counts per region, the largest kept, ties to the smallest region), the two joined on the
    /// subscriber and counted per (day, origin, destination): a subscriber-day is one row of the
    /// join, so no distinct count is needed, and the rows are not joined back.
    RawOdStreaming,
    /// OAR's population release (check, execute, gate), streaming engine.
    Population,
    /// OAR's population release on Polars' in-memory engine.
    PopulationInMemory,
    /// OAR's origin-destination release (two per-unit stages, then day × origin × destination),
    /// streaming engine.
    Od,
    /// The origin-destination release on Polars' in-memory engine.
    OdInMemory,
    /// The population release on DataFusion, in process (needs the `datafusion` feature).
    PopulationDataFusion,
    /// The origin-destination release on DataFusion, in process (needs the `datafusion`
    /// feature).
    OdDataFusion,
}

impl Variant {
    /// Every variant, in report order.
    pub const ALL: [Variant; 9] = [
        Variant::RawStreaming,
        Variant::RawInMemory,
        Variant::Population,
        Variant::PopulationInMemory,
        Variant::PopulationDataFusion,
        Variant::RawOdStreaming,
        Variant::Od,
        Variant::OdInMemory,
        Variant::OdDataFusion,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::RawStreaming => "raw-streaming",
            Variant::RawInMemory => "raw-in-memory",
            Variant::RawOdStreaming => "raw-od-streaming",
            Variant::Population => "population",
            Variant::PopulationInMemory => "population-in-memory",
            Variant::Od => "od",
            Variant::OdInMemory => "od-in-memory",
            Variant::PopulationDataFusion => "population-datafusion",
            Variant::OdDataFusion => "od-datafusion",
        }
    }

    /// The variant named `name`.
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The raw Polars variant its time is compared with.
    fn baseline(self) -> Variant {
        match self {
            Variant::RawOdStreaming | Variant::Od | Variant::OdInMemory | Variant::OdDataFusion => {
                Variant::RawOdStreaming
            }
            _ => Variant::RawStreaming,
        }
    }

    fn in_memory(self) -> bool {
        matches!(
            self,
            Variant::RawInMemory | Variant::PopulationInMemory | Variant::OdInMemory
        )
    }

    /// Whether this build can run it (the DataFusion variants need the `datafusion` feature;
    /// without it they are skipped unless asked for, and then fail saying how to build).
    fn built(self) -> bool {
        cfg!(feature = "datafusion")
            || !matches!(self, Variant::PopulationDataFusion | Variant::OdDataFusion)
    }
}

/// One variant's figures.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Wall time of the query (data already on disk).
    pub time: Duration,
    /// Peak resident set of the process, in bytes.
    pub peak_rss: u64,
}

/// Settings of a scale run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Row counts to measure.
    pub sizes: Vec<usize>,
    /// Subscribers (privacy units), the same at every size, so that memory bounded by units and
    /// cells shows as flat in rows.
    pub subscribers: usize,
    /// Where the data lives (a folder per size, reused).
    pub dir: PathBuf,
    /// The in-memory variants run only up to this many rows (they hold the columns in memory).
    pub in_memory_up_to: usize,
    /// The `oar` executable to run variants with.
    pub exe: PathBuf,
    /// The variants to run (all if empty).
    pub variants: Vec<Variant>,
    /// Runs of each variant at each size (each in a fresh process): the report gives the
    /// median time and the largest peak memory.
    pub repeat: usize,
}

/// Results per size and variant.
#[derive(Debug, Clone, Default)]
pub struct ScaleReport {
    /// (rows, variant, figures); a variant skipped at a size is absent.
    pub rows: Vec<(usize, Variant, Measurement)>,
    /// (rows, variant, why) for a variant whose process failed (out of memory, say): the run
    /// goes on with the others.
    pub failed: Vec<(usize, Variant, String)>,
}

impl ScaleReport {
    fn get(&self, rows: usize, v: Variant) -> Option<Measurement> {
        self.rows
            .iter()
            .find(|(r, x, _)| *r == rows && *x == v)
            .map(|(_, _, m)| *m)
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sizes: Vec<usize> = self
            .rows
            .iter()
            .map(|(r, _, _)| *r)
            .chain(self.failed.iter().map(|(r, _, _)| *r))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        writeln!(
            f,
            "{:>14}  {:<22} {:>10} {:>8} {:>12}",
            "rows", "variant", "time", "vs raw", "peak RSS"
        )?;
        for rows in sizes {
            for v in Variant::ALL {
                if let Some((_, _, why)) =
                    self.failed.iter().find(|(r, x, _)| *r == rows && *x == v)
                {
                    writeln!(f, "{:>14}  {:<22} failed: {why}", rows, v.name())?;
                    continue;
                }
                let Some(m) = self.get(rows, v) else { continue };
                let base = self.get(rows, v.baseline()).map(|m| m.time.as_secs_f64());
                let ratio = base.map_or(String::from("-"), |b| {
                    format!("{:.2}x", m.time.as_secs_f64() / b)
                });
                writeln!(
                    f,
                    "{:>14}  {:<22} {:>8.2} s {:>8} {:>9.0} MiB",
                    rows,
                    v.name(),
                    m.time.as_secs_f64(),
                    ratio,
                    m.peak_rss as f64 / (1024.0 * 1024.0)
                )?;
            }
        }
        Ok(())
    }
}

/// The data for `rows` rows under `dir`, generated if missing; returns the descriptor.
pub fn ensure_data(
    dir: &Path,
    rows: usize,
    subscribers: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf, BenchError> {
    let folder = dir.join(format!("rows-{rows}-subscribers-{subscribers}"));
    let done = folder.join("complete");
    let descriptor = folder.join("cdr.toml");
    if done.exists() && descriptor.exists() {
        return Ok(descriptor);
    }
    let _ = std::fs::remove_dir_all(&folder);
    let files = rows.div_ceil(ROWS_PER_FILE);
    progress(Progress::Step(&format!(
        "generating {rows} rows ({subscribers} subscribers) in {files} files under {} ...",
        folder.display()
    )));
    let spec = CdrSpec {
        rows,
        subscribers: Some(subscribers),
        ..CdrSpec::default()
    };
    let path = spec.write_in_files(&folder, files, &mut |k| {
        progress(Progress::Count {
            done: k as u64,
            total: files as u64,
        })
    })?;
    std::fs::write(&done, b"")?;
    Ok(path)
}

/// Runs the scale benchmark, each variant in a child process.
pub fn run(
    opts: &ScaleOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ScaleReport, BenchError> {
    let mut report = ScaleReport::default();
    for &rows in &opts.sizes {
        let data = ensure_data(&opts.dir, rows, opts.subscribers, progress)?;
        warm(&data, progress)?;
        for v in Variant::ALL {
            if v.in_memory() && rows > opts.in_memory_up_to {
                continue;
            }
            if !opts.variants.is_empty() && !opts.variants.contains(&v) {
                continue;
            }
            if opts.variants.is_empty() && !v.built() {
                continue;
            }
            progress(Progress::Step(&format!("{rows} rows: {} ...", v.name())));
            match measure(opts, v, &data, progress)? {
                Ok(m) => report.rows.push((rows, v, m)),
                Err(why) => {
                    progress(Progress::Step(&format!("  failed: {why}")));
                    report.failed.push((rows, v, why));
                }
            }
        }
    }
    Ok(report)
}

/// Reads every file of the data once, untimed, so that no variant pays for a cold disk cache
/// (the first variant measured at a size once took 2.6 s where the next took 0.85 s).
fn warm(descriptor: &Path, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), BenchError> {
    let Some(folder) = descriptor.parent() else {
        return Ok(());
    };
    progress(Progress::Step("reading the files once (disk cache) ..."));
    let mut buffer = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let mut file = std::fs::File::open(&path)?;
            while std::io::Read::read(&mut file, &mut buffer)? > 0 {}
        }
    }
    Ok(())
}

/// `opts.repeat` runs of `v` over `data`, each in its own process: the median time and the
/// largest peak memory, or why a run failed (out of memory, say: a result, not the end of the
/// benchmark).
fn measure(
    opts: &ScaleOptions,
    v: Variant,
    data: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Result<Measurement, String>, BenchError> {
    let mut runs = Vec::new();
    for _ in 0..opts.repeat.max(1) {
        let out = std::process::Command::new(&opts.exe)
            .args(["bench-variant", v.name(), "--data"])
            .arg(data)
            .output()?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Ok(Err(match stderr.trim().lines().last() {
                Some(line) => line.to_string(),
                None => match out.status.code() {
                    Some(code) => format!("exit status {code}"),
                    None => "killed (out of memory?)".to_string(),
                },
            }));
        }
        let m = parse_measurement(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
            BenchError::Oar(format!("variant {} printed no measurement", v.name()))
        })?;
        progress(Progress::Step(&format!(
            "  {:.2} s, peak {:.0} MiB",
            m.time.as_secs_f64(),
            m.peak_rss as f64 / 1048576.0
        )));
        runs.push(m);
    }
    runs.sort_by_key(|m| m.time);
    Ok(Ok(Measurement {
        time: runs[runs.len() / 2].time,
        peak_rss: runs.iter().map(|m| m.peak_rss).max().unwrap_or(0),
    }))
}

/// The line a child prints.
pub fn format_measurement(m: &Measurement) -> String {
    format!(
        "seconds={:.6} peak_rss_bytes={}",
        m.time.as_secs_f64(),
        m.peak_rss
    )
}

fn parse_measurement(out: &str) -> Option<Measurement> {
    let line = out.lines().rev().find(|l| l.starts_with("seconds="))?;
    let mut seconds = None;
    let mut rss = None;
    for part in line.split_whitespace() {
        match part.split_once('=')? {
            ("seconds", v) => seconds = v.parse::<f64>().ok(),
            ("peak_rss_bytes", v) => rss = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Measurement {
        time: Duration::from_secs_f64(seconds?),
        peak_rss: rss?,
    })
}

/// This process's peak resident set (`VmHWM`), in bytes; 0 where the system does not say.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Runs one variant over the dataset at `data` (in this process) and measures it.
pub fn run_variant(v: Variant, data: &Path) -> Result<Measurement, BenchError> {
    let dataset = Dataset::open(data).map_err(|e| BenchError::Oar(e.to_string()))?;
    let limits = PlanLimits {
        max_output_cells: 100_000,
        max_groups_per_unit: 64,
    };
    let config = crate::gate::GateConfig {
        min_units: 10,
        delta0: 1e-9,
        dominance: Some(crate::gate::Dominance::default()),
    };
    let started = Instant::now();
    match v {
        Variant::RawStreaming | Variant::RawInMemory => {
            let lf = dataset
                .scan()?
                .with_column(col("timestamp").dt().date().alias("day"))
                .group_by([col("region"), col("day")])
                .agg([col("subscriber_id").n_unique()]);
            let df = if v == Variant::RawStreaming {
                lf.collect_with_engine(Engine::Streaming)?
            } else {
                lf.collect()?
            };
            std::hint::black_box(df);
        }
        Variant::RawOdStreaming => {
            let df = raw_od(&dataset)?.collect_with_engine(Engine::Streaming)?;
            std::hint::black_box(df);
        }
        _ => {
            let plan = if matches!(v, Variant::Od | Variant::OdInMemory | Variant::OdDataFusion) {
                od_plan(1.0)
            } else {
                population_plan(1.0)
            };
            let engine = match v {
                Variant::PopulationDataFusion | Variant::OdDataFusion => QueryEngine::DataFusion,
                _ if v.in_memory() => QueryEngine::PolarsInMemory,
                _ => QueryEngine::PolarsStreaming,
            };
            let backend = crate::engine::backend(&engine).map_err(BenchError::Oar)?;
            let checked = query::check(&plan, &dataset, limits)
                .map_err(|e| BenchError::Oar(e.to_string()))?;
            let stats = backend
                .execute(&checked, &dataset, None)
                .map_err(|e| BenchError::Oar(e.to_string()))?;
            let table = crate::gate::release(&checked, &stats, config)
                .map_err(|e| BenchError::Oar(e.to_string()))?;
            std::hint::black_box(table);
        }
    }
    Ok(Measurement {
        time: started.elapsed(),
        peak_rss: peak_rss(),
    })
}

/// The exact origin-destination table in plain Polars (see [`Variant::RawOdStreaming`]).
fn raw_od(dataset: &Dataset) -> PolarsResult<LazyFrame> {
    let hour = || col("timestamp").dt().hour();
    let rows = dataset
        .scan()?
        .with_column(col("timestamp").dt().date().alias("day"));
    let mode = |rows: LazyFrame, keys: &[&str], name: &str| {
        let keys: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
        let mut with_region = keys.clone();
        with_region.push(col("region"));
        let counted = rows.group_by(with_region).agg([len().alias("n")]).cache();
        let top = counted
            .clone()
            .group_by(keys.clone())
            .agg([col("n").max().alias("top")]);
        let mut on = keys.clone();
        on.push(col("n"));
        let mut top_on = keys.clone();
        top_on.push(col("top"));
        counted
            .join(top, on, top_on, JoinArgs::new(JoinType::Inner))
            .group_by(keys)
            .agg([col("region").min().alias(name)])
    };
    let home = mode(
        rows.clone()
            .filter(hour().gt_eq(lit(22)).or(hour().lt(lit(6)))),
        &["subscriber_id"],
        "origin",
    );
    let work = mode(
        rows.filter(hour().gt_eq(lit(9)).and(hour().lt(lit(17)))),
        &["subscriber_id", "day"],
        "destination",
    );
    Ok(work
        .join(
            home,
            [col("subscriber_id")],
            [col("subscriber_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col("day"), col("origin"), col("destination")])
        .agg([len().alias("subscribers")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw baseline is the same question: its exact table is OAR's per-cell unit counts
    /// before noise (no subscriber reaches more cells than days, so bounding drops nothing).
    #[test]
    fn the_raw_od_baseline_counts_what_the_od_release_counts() {
        let dir = tempfile::tempdir().unwrap();
        let spec = CdrSpec {
            rows: 60_000,
            subscribers: Some(3_000),
            ..CdrSpec::default()
        };
        let descriptor = spec.write(dir.path()).unwrap();
        let dataset = Dataset::open(&descriptor).unwrap();
        let limits = PlanLimits {
            max_output_cells: 100_000,
            max_groups_per_unit: 64,
        };
        let checked = query::check(&od_plan(1.0), &dataset, limits).unwrap();
        let backend = crate::engine::backend(&QueryEngine::PolarsStreaming).unwrap();
        let stats = backend.execute(&checked, &dataset, None).unwrap();
        let raw = raw_od(&dataset)
            .unwrap()
            .collect_with_engine(Engine::Streaming)
            .unwrap();
        let mut want = vec![0i64; checked.cells];
        let days = raw.column("day").unwrap().cast(&DataType::String).unwrap();
        let origins = raw.column("origin").unwrap().str().unwrap().clone();
        let destinations = raw.column("destination").unwrap().str().unwrap().clone();
        let subscribers = raw.column("subscribers").unwrap().u32().unwrap().clone();
        let position = |key: usize, text: &str| {
            checked.keys[key]
                .domain
                .iter()
                .position(|v| v.key_text() == text)
                .expect("in the domain")
        };
        for row in 0..raw.height() {
            let (d, o, t) = (
                position(0, days.str().unwrap().get(row).unwrap()),
                position(1, origins.get(row).unwrap()),
                position(2, destinations.get(row).unwrap()),
            );
            let (no, nt) = (checked.keys[1].domain.len(), checked.keys[2].domain.len());
            want[(d * no + o) * nt + t] += subscribers.get(row).unwrap() as i64;
        }
        assert!(want.iter().sum::<i64>() > 10_000, "the data has flows");
        assert_eq!(stats.units, want);
    }

    #[test]
    fn a_measurement_line_round_trips() {
        let m = Measurement {
            time: Duration::from_millis(1234),
            peak_rss: 5 << 20,
        };
        let back = parse_measurement(&format!("noise\n{}\n", format_measurement(&m))).unwrap();
        assert_eq!(back.peak_rss, m.peak_rss);
        assert!((back.time.as_secs_f64() - 1.234).abs() < 1e-6);
        assert!(parse_measurement("nothing here").is_none());
    }

    #[test]
    fn every_variant_is_named_once() {
        for v in Variant::ALL {
            assert_eq!(Variant::from_name(v.name()), Some(v));
        }
    }
}
