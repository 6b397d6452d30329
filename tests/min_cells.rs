//! PRIVACY.md's promise, checked across modules and synthetic sets: no released cell counts
//! fewer than `min_units` distinct people, whatever the module, the data size or the epsilon.
//! Each case pairs an example module with a function computing the true distinct-unit count
//! of every cell from the synthetic data, independently of the host's query path.

mod common;

use common::{verified, World};
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

struct Case {
    module: &'static str,
    params: &'static str,
    truth: fn(&Path) -> Truth,
}

const CASES: &[Case] = &[
    Case {
        module: "population",
        params: r#"{"epsilon": 2.0}"#,
        truth: population_truth,
    },
    Case {
        module: "population",
        params: r#"{"epsilon": 0.2}"#,
        truth: population_truth,
    },
];

#[test]
fn no_example_module_releases_a_cell_below_the_minimum_on_any_synthetic_set() {
    let w = World::new(1, 1);
    let module_of = |name: &str| verified(&w, name);
    let mut released_total = 0;
    for (rows, seed) in [(3_000, 1), (30_000, 2), (150_000, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let desc = CdrSpec {
            rows,
            seed,
            ..Default::default()
        }
        .write(dir.path())
        .unwrap();
        let truth_cache: HashMap<usize, Truth> = CASES
            .iter()
            .enumerate()
            .map(|(i, c)| (i, (c.truth)(&desc)))
            .collect();
        for (i, case) in CASES.iter().enumerate() {
            let mut catalog = Catalog::new();
            catalog.register(Dataset::open(&desc).unwrap());
            let host = Host::new(
                Runtime::new(Some(common::cache_dir())).unwrap(),
                catalog,
                w.policy.clone(),
                Arc::new(SqliteLedger::in_memory()),
            );
            let out = host.run(module_of(case.module), "stats-office", case.params);
            let release = out.result.expect("the module runs");
            let truth = &truth_cache[&i];
            for t in &release.tables {
                for row in t.table.released() {
                    let key: Vec<String> = row.keys.iter().map(|k| k.key_text()).collect();
                    let key = key.join("/");
                    let n = truth.get(&key).copied().unwrap_or(0);
                    assert!(
                        n >= w.policy.min_units as i64,
                        "{} on {rows} rows (seed {seed}) released {key} with {n} people",
                        case.module
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
