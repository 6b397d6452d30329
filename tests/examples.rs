//! The example modules end to end on synthetic data whose ground truth is known: each runs in
//! the sandbox (and natively, through the same gate) and its release is compared with the truth
//! computed independently with Polars. The relative errors at the module's default epsilon are
//! printed (`cargo test --test examples -- --nocapture`).

mod common;

use common::World;
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::ledger::SqliteLedger;
use oar_host::sandbox::Runtime;
use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A host serving `descriptor`, with `world`'s requester allowed on `dataset`.
fn host_for(world: &mut World, dataset: &str, descriptor: &Path) -> Host {
    world.policy.requesters[0].datasets.push(dataset.into());
    let mut catalog = Catalog::new();
    catalog.register(Dataset::open(descriptor).unwrap());
    Host::new(
        Runtime::new(Some(common::cache_dir())).unwrap(),
        catalog,
        world.policy.clone(),
        Arc::new(SqliteLedger::in_memory()),
    )
}

/// Per ward: (active premises, active premises missing from the register).
fn rates_truth(descriptor: &Path) -> HashMap<String, (f64, f64)> {
    let parquet = descriptor.with_file_name("premises.parquet");
    let active = col("waste_contract").or(col("utility_connection"));
    let df = LazyFrame::scan_parquet(PlPath::new(parquet.to_str().unwrap()), Default::default())
        .unwrap()
        .filter(active)
        .group_by([col("ward")])
        .agg([
            len().cast(DataType::Float64).alias("active"),
            col("on_rates_register")
                .not()
                .sum()
                .cast(DataType::Float64)
                .alias("missing"),
        ])
        .collect()
        .unwrap();
    let (w, a, m) = (
        df.column("ward").unwrap().str().unwrap().clone(),
        df.column("active").unwrap().f64().unwrap().clone(),
        df.column("missing").unwrap().f64().unwrap().clone(),
    );
    (0..df.height())
        .map(|i| {
            (
                w.get(i).unwrap().to_string(),
                (a.get(i).unwrap(), m.get(i).unwrap()),
            )
        })
        .collect()
}

#[test]
fn rates_gap_matches_the_ground_truth_and_never_shows_the_small_ward() {
    let dir = tempfile::tempdir().unwrap();
    let desc = oar_host::synth::premises::PremisesSpec::default()
        .write(dir.path())
        .unwrap();
    let truth = rates_truth(&desc);
    let mut w = World::new(1, 1);
    let host = host_for(&mut w, "premises", &desc);
    let m = common::verified_example(&w, "rates-gap", "rates_gap");
    let out = host.run(m.clone(), "stats-office", r#"{"epsilon": 1.0}"#);
    let release = out.result.expect("the module runs");
    assert_eq!(out.record.charges.len(), 2, "two releases");
    assert!((release.epsilon_total - 1.0).abs() < 1e-12);
    let table = &release.tables[0].table;
    assert_eq!(table.rows.len(), 13);

    let mut rel_errors = Vec::new();
    for row in &table.rows {
        let ward = row.keys[0].key_text();
        if ward == "W13" {
            assert!(
                row.suppressed.is_some(),
                "the 4-premise ward must not appear"
            );
            continue;
        }
        let (a_true, m_true) = truth[&ward];
        if row.suppressed.is_some() {
            // Only a ward with few missing premises can fall under the noisy threshold (about
            // 53 at this epsilon); it is then withheld, not shown with a value.
            assert!(m_true < 120.0, "{ward} withheld with {m_true} missing");
            continue;
        }
        let get = |c: &str| table.get(&row.keys, c).unwrap();
        let (a, m, rate, ci) = (
            get("active"),
            get("missing"),
            get("gap_rate"),
            get("gap_rate_ci95"),
        );
        rel_errors.push((a - a_true).abs() / a_true);
        assert!((m - m_true).abs() < 40.0, "{ward}: missing {m} vs {m_true}");
        // The true share lies within twice the propagated 95% half-width (a miss has
        // probability about 1e-4 per ward).
        let true_rate = m_true / a_true;
        assert!(
            (rate - true_rate).abs() <= 2.0 * ci,
            "{ward}: {rate} ± {ci} vs {true_rate}"
        );
        assert!(ci > 0.0 && ci < 0.02, "{ward}: interval {ci}");
    }
    assert!(
        rel_errors.len() >= 10,
        "only {} wards released",
        rel_errors.len()
    );
    let mean = rel_errors.iter().sum::<f64>() / rel_errors.len() as f64;
    println!(
        "rates-gap at epsilon 1: mean relative error of `active` {:.4}%",
        100.0 * mean
    );
    assert!(mean < 0.01, "mean relative error {mean}");

    // The same module code natively, through the same gate and limits.
    let mut local = oar_host::local::LocalHost::new(host.session("native", "stats-office", m));
    oar_guest::run_with_host(&mut local, r#"{"epsilon": 1.0}"#, rates_gap::run).unwrap();
    let native = local.finish();
    assert_eq!(native.outputs[0].1.rows.len(), 13);
    assert_eq!(native.charges.len(), 2);
}

#[test]
fn the_gap_table_propagates_suppression_and_intervals() {
    use oar_guest::table::{Suppression, Table};
    use oar_guest::Value;
    let mut active = Table::new(["ward"], ["active"]);
    active.push(vec![Value::Str("A".into())], vec![1000.0]);
    active.push_suppressed(vec![Value::Str("B".into())], Suppression::MinimumUnits);
    active.push(vec![Value::Str("C".into())], vec![500.0]);
    let mut missing = Table::new(["ward"], ["missing"]);
    missing.push(vec![Value::Str("A".into())], vec![50.0]);
    missing.push(vec![Value::Str("B".into())], vec![12.0]);
    missing.push_suppressed(vec![Value::Str("C".into())], Suppression::MinimumUnits);
    let gap = rates_gap::gap_table(&active, &missing);
    let a = Value::Str("A".into());
    assert_eq!(gap.get(std::slice::from_ref(&a), "gap_rate"), Some(0.05));
    assert_eq!(
        gap.get(&[a], "gap_rate_ci95"),
        Some(0.0),
        "no noise, no interval"
    );
    for ward in ["B", "C"] {
        let row = gap
            .rows
            .iter()
            .find(|r| r.keys[0] == Value::Str(ward.into()))
            .unwrap();
        assert_eq!(row.suppressed, Some(Suppression::Derived), "{ward}");
    }
}

#[test]
fn od_flows_match_the_ground_truth_and_stay_shares_carry_their_interval() {
    let dir = tempfile::tempdir().unwrap();
    let desc = oar_host::synth::cdr::CdrSpec {
        rows: 1_000_000,
        ..Default::default()
    }
    .write(dir.path())
    .unwrap();
    let truth = common::truth::od_truth(&desc.with_file_name("cdr.parquet"));
    let mut w = World::new(1, 1);
    let host = host_for(&mut w, "cdr", &desc);
    let m = common::verified_example(&w, "od-flows", "od_flows");
    let out = host.run(m.clone(), "stats-office", "{}");
    let release = out.result.expect("the module runs");
    assert_eq!(out.record.charges.len(), 2, "flows and residents");
    assert!((release.epsilon_total - 1.0).abs() < 1e-12);
    let table = |name: &str| {
        &release
            .tables
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .table
    };
    let flows = table(od_flows::FLOWS);
    assert_eq!(
        flows.rows.len(),
        7 * 21 * 21,
        "every day × origin × destination"
    );
    // Each subscriber adds to one cell per day: Laplace scale 7 / 0.75.
    let sd = std::f64::consts::SQRT_2 * 7.0 / 0.75;
    let (mut errors, mut big_errors) = (Vec::new(), Vec::new());
    let mut withheld_largest = 0;
    for row in &flows.rows {
        let key: Vec<String> = row.keys.iter().map(|k| k.key_text()).collect();
        let n = truth
            .flows
            .get(&(key[0].clone(), key[1].clone(), key[2].clone()))
            .copied()
            .unwrap_or(0) as f64;
        match flows.get(&row.keys, "subscribers") {
            Some(v) => {
                assert!(n >= 10.0, "{key:?} released with {n} subscribers");
                assert!((v - n).abs() < 6.0 * sd, "{key:?}: {v} vs {n}");
                errors.push((v - n).abs() / n);
                if n >= 200.0 {
                    big_errors.push((v - n).abs() / n);
                }
            }
            None => withheld_largest = withheld_largest.max(n as i64),
        }
    }
    let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len() as f64;
    println!(
        "od-flows at epsilon 1: {} of {} flows released, mean relative error {:.2}% ({:.2}% over the {} flows of at least 200); largest withheld flow {}",
        errors.len(),
        flows.rows.len(),
        100.0 * mean(&errors),
        100.0 * mean(&big_errors),
        big_errors.len(),
        withheld_largest
    );
    let tau = flows.release.as_ref().unwrap().threshold;
    println!("od-flows: noisy threshold {tau:.0} subscribers");
    assert!(big_errors.len() >= 50, "{} big flows", big_errors.len());
    assert!(mean(&big_errors) < 0.05, "{}", mean(&big_errors));
    // The noisy threshold withholds small flows, not large ones.
    assert!(
        (withheld_largest as f64) < tau + 6.0 * sd,
        "a flow of {withheld_largest} was withheld (threshold {tau})"
    );

    let stayers = table(od_flows::STAYERS);
    let mut covered = 0;
    let mut released = 0;
    for row in stayers.released() {
        let key: Vec<String> = row.keys.iter().map(|k| k.key_text()).collect();
        let r = truth.residents[&(key[0].clone(), key[1].clone())] as f64;
        let s = truth.flows[&(key[0].clone(), key[1].clone(), key[1].clone())] as f64;
        let share = stayers.get(&row.keys, "stay_share").unwrap();
        let ci = stayers.get(&row.keys, "stay_share_ci95").unwrap();
        released += 1;
        if (share - s / r).abs() <= ci {
            covered += 1;
        }
    }
    println!("od-flows: {covered} of {released} stay shares within their 95% interval");
    assert!(released >= 50, "{released} stay shares released");
    assert!(
        covered as f64 >= 0.85 * released as f64,
        "{covered} of {released} intervals cover the truth"
    );

    // The same module code natively, through the same gate and limits.
    let mut local = oar_host::local::LocalHost::new(host.session("native", "stats-office", m));
    oar_guest::run_with_host(&mut local, "{}", od_flows::run).unwrap();
    let native = local.finish();
    assert_eq!(native.outputs[0].1.rows.len(), 7 * 21 * 21);
    assert_eq!(native.charges.len(), 2);
}
