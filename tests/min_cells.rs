//! PRIVACY.md's promise, checked across modules and synthetic sets: no released cell counts
//! fewer than `min_units` distinct people, whatever the module, the data size or the epsilon.
//! Each case pairs an example module with a function computing the true distinct-unit count
//! of every cell from the synthetic data, independently of the host's query path.

mod common;

use common::World;
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::ledger::SqliteLedger;
use oar_host::sandbox::Runtime;
use oar_host::synth::cdr::CdrSpec;
use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// True distinct units per cell key (key values joined by '/').
type Truth = HashMap<String, i64>;

/// Distinct subscribers per (region, day) in a CDR set.
fn population_truth(descriptor: &Path) -> Truth {
    let parquet = descriptor.with_file_name("cdr.parquet");
    let df = LazyFrame::scan_parquet(PlPath::new(parquet.to_str().unwrap()), Default::default())
        .unwrap()
        .with_column(
            col("timestamp")
                .dt()
                .date()
                .cast(DataType::String)
                .alias("day"),
        )
        .group_by([col("region"), col("day")])
        .agg([col("subscriber_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("n")])
        .collect()
        .unwrap();
    let (r, d, n) = (
        df.column("region").unwrap().str().unwrap().clone(),
        df.column("day").unwrap().str().unwrap().clone(),
        df.column("n").unwrap().i64().unwrap().clone(),
    );
    (0..df.height())
        .map(|i| {
            (
                format!("{}/{}", r.get(i).unwrap(), d.get(i).unwrap()),
                n.get(i).unwrap(),
            )
        })
        .collect()
}

/// Per ward: the smaller of the two cells the rates-gap row combines (active premises, and
/// active premises missing from the register); both must reach the minimum.
fn rates_gap_truth(descriptor: &Path) -> Truth {
    let parquet = descriptor.with_file_name("premises.parquet");
    let df = LazyFrame::scan_parquet(PlPath::new(parquet.to_str().unwrap()), Default::default())
        .unwrap()
        .filter(col("waste_contract").or(col("utility_connection")))
        .group_by([col("ward")])
        .agg([
            len().cast(DataType::Int64).alias("active"),
            col("on_rates_register")
                .not()
                .sum()
                .cast(DataType::Int64)
                .alias("missing"),
        ])
        .collect()
        .unwrap();
    let (w, a, m) = (
        df.column("ward").unwrap().str().unwrap().clone(),
        df.column("active").unwrap().i64().unwrap().clone(),
        df.column("missing").unwrap().i64().unwrap().clone(),
    );
    (0..df.height())
        .map(|i| {
            (
                w.get(i).unwrap().to_string(),
                a.get(i).unwrap().min(m.get(i).unwrap()),
            )
        })
        .collect()
}

fn cdr_data(dir: &Path, rows: usize, seed: u64) -> std::path::PathBuf {
    CdrSpec {
        rows,
        seed,
        ..Default::default()
    }
    .write(dir)
    .unwrap()
}

fn premises_data(dir: &Path, rows: usize, seed: u64) -> std::path::PathBuf {
    oar_host::synth::premises::PremisesSpec {
        premises: rows / 2,
        seed,
    }
    .write(dir)
    .unwrap()
}

struct Case {
    /// Component name.
    module: &'static str,
    /// Its crate folder under example-algorithms (for the manifest).
    crate_dir: &'static str,
    /// Dataset it reads.
    dataset: &'static str,
    params: &'static str,
    data: fn(&Path, usize, u64) -> std::path::PathBuf,
    truth: fn(&Path) -> Truth,
}

const CASES: &[Case] = &[
    Case {
        module: "population",
        crate_dir: "population",
        dataset: "cdr",
        params: r#"{"epsilon": 2.0}"#,
        data: cdr_data,
        truth: population_truth,
    },
    Case {
        module: "population",
        crate_dir: "population",
        dataset: "cdr",
        params: r#"{"epsilon": 0.2}"#,
        data: cdr_data,
        truth: population_truth,
    },
    Case {
        module: "rates_gap",
        crate_dir: "rates-gap",
        dataset: "premises",
        params: r#"{"epsilon": 2.0}"#,
        data: premises_data,
        truth: rates_gap_truth,
    },
    Case {
        module: "rates_gap",
        crate_dir: "rates-gap",
        dataset: "premises",
        params: r#"{"epsilon": 0.2}"#,
        data: premises_data,
        truth: rates_gap_truth,
    },
    Case {
        module: "od_flows",
        crate_dir: "od-flows",
        dataset: "cdr",
        params: r#"{"epsilon": 2.0}"#,
        data: cdr_data,
        truth: od_truth,
    },
    Case {
        module: "load_profile",
        crate_dir: "load-profile",
        dataset: "meters",
        params: r#"{"epsilon": 3.0}"#,
        data: meters_data,
        truth: load_truth,
    },
    Case {
        module: "event_traffic",
        crate_dir: "event-traffic",
        dataset: "journeys",
        params: r#"{"epsilon": 3.0}"#,
        data: journeys_data,
        truth: traffic_truth,
    },
];

/// A journeys set with about `rows` journeys (about 19 per vehicle).
fn journeys_data(dir: &Path, rows: usize, seed: u64) -> std::path::PathBuf {
    oar_host::synth::traffic::TrafficSpec {
        vehicles: rows / 19,
        seed,
        ..Default::default()
    }
    .write(dir)
    .unwrap()
}

/// Vehicles per `corridor/date/hour`, per `corridor/window` and per `corridor`.
fn traffic_truth(descriptor: &Path) -> Truth {
    common::truth::traffic_truth(
        &descriptor.with_file_name("journeys.parquet"),
        &[
            ("2026-04-09", "2026-04-16", 19, 22),
            ("2026-04-18", "2026-04-11", 15, 18),
        ],
    )
    .keyed()
}

/// A meters set with `rows / 48` households over one day.
fn meters_data(dir: &Path, rows: usize, seed: u64) -> std::path::PathBuf {
    oar_host::synth::meters::MetersSpec {
        meters: rows / 48,
        seed,
        ..Default::default()
    }
    .write(dir)
    .unwrap()
}

/// Consenting households per `area/half_hour`, all households per `area`.
fn load_truth(descriptor: &Path) -> Truth {
    common::truth::load_truth(&descriptor.with_file_name("meters.parquet"), 1.5, 40.0).keyed()
}

/// Flows keyed `day/origin/destination` and stay shares keyed `day/origin`.
fn od_truth(descriptor: &Path) -> Truth {
    common::truth::od_truth(&descriptor.with_file_name("cdr.parquet")).keyed()
}

#[test]
fn no_example_module_releases_a_cell_below_the_minimum_on_any_synthetic_set() {
    let mut w = World::new(1, 1);
    w.policy.requesters[0].datasets.push("premises".into());
    w.policy.requesters[0].datasets.push("meters".into());
    w.policy.requesters[0].datasets.push("journeys".into());
    let mut released_total = 0;
    for case in CASES {
        for (rows, seed) in [(3_000, 1), (30_000, 2), (150_000, 3)] {
            let dir = tempfile::tempdir().unwrap();
            let desc = (case.data)(dir.path(), rows, seed);
            let truth = (case.truth)(&desc);
            let mut catalog = Catalog::new();
            catalog.register(Dataset::open(&desc).unwrap());
            let host = Host::new(
                Runtime::new(Some(common::cache_dir())).unwrap(),
                catalog,
                w.policy.clone(),
                Arc::new(SqliteLedger::in_memory()),
            );
            let module = common::verified_example(&w, case.crate_dir, case.module);
            let out = host.run(module, "stats-office", case.params);
            let release = out.result.expect("the module runs");
            for t in &release.tables {
                for row in t.table.released() {
                    let key: Vec<String> = row.keys.iter().map(|k| k.key_text()).collect();
                    let key = key.join("/");
                    let n = truth.get(&key).copied().unwrap_or(0);
                    assert!(
                        n >= w.policy.min_units as i64,
                        "{} on {} {rows} (seed {seed}) released {key} with {n} units",
                        case.module,
                        case.dataset
                    );
                    released_total += 1;
                }
            }
        }
    }
    assert!(
        released_total > 100,
        "the check saw too few released cells: {released_total}"
    );
}
