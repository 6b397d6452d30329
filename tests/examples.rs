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

/// A host serving `descriptor`, with `world`'s requester allowed on `dataset` and a generous
/// run deadline.
fn host_for(world: &mut World, dataset: &str, descriptor: &Path) -> Host {
    world.policy.requesters[0].datasets.push(dataset.into());
    // Millions of rows, with these tests running side by side on two cores: the deadline is
    // the policy's business, not what these tests measure.
    world.policy.limits.time_ms = 300_000;
    let mut catalog = Catalog::new();
    catalog.register(Dataset::open(descriptor).unwrap());
    Host::new(
        Runtime::new(Some(common::cache_dir())).unwrap(),
        catalog,
        world.policy.clone(),
        Arc::new(SqliteLedger::in_memory()),
    )
}

/// The table `name` of a release.
fn table_named<'a>(release: &'a oar_host::release::Release, name: &str) -> &'a oar_guest::Table {
    &release
        .tables
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no table {name}"))
        .table
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
    let table = |name: &str| table_named(&release, name);
    let flows = table(od_flows::FLOWS);
    assert_eq!(
        flows.rows.len(),
        7 * 21 * 21,
        "every day × origin × destination"
    );
    // Each subscriber adds to one cell per day: Laplace scale b = 7 / 0.75. A single cell
    // misses by more than 16 b with probability e^-16 (1e-7); the mean error is the real check.
    let b = 7.0 / 0.75;
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
                assert!((v - n).abs() < 16.0 * b, "{key:?}: {v} vs {n}");
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
        (withheld_largest as f64) < tau + 16.0 * b,
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

#[test]
fn load_profile_matches_the_ground_truth_for_consenting_households_only() {
    use oar_host::synth::meters::MetersSpec;
    let dir = tempfile::tempdir().unwrap();
    let desc = MetersSpec::default().write(dir.path()).unwrap();
    let truth = common::truth::load_truth(&desc.with_file_name("meters.parquet"), 1.5, 40.0);
    let mut w = World::new(1, 1);
    let host = host_for(&mut w, "meters", &desc);
    let m = common::verified_example(&w, "load-profile", "load_profile");
    let out = host.run(m.clone(), "stats-office", "{}");
    let release = out.result.expect("the module runs");
    assert_eq!(out.record.charges.len(), 2, "profile and daily means");
    assert!((release.epsilon_total - 2.0).abs() < 1e-12);
    let table = |name: &str| table_named(&release, name);
    let profile = table(load_profile::PROFILE);
    assert_eq!(profile.rows.len(), 5 * 48, "every area × half-hour");
    let mut errors = Vec::new();
    for row in &profile.rows {
        let area = row.keys[0].key_text();
        let slot = row.keys[1].as_i64().unwrap();
        if area == "A05" {
            assert!(row.suppressed.is_some(), "8 households must not appear");
            continue;
        }
        let v = profile
            .get(&row.keys, "mean_kwh")
            .unwrap_or_else(|| panic!("{area} {slot} withheld"));
        let t = truth.profile[&(area.clone(), slot)];
        errors.push((v - t).abs() / t);
    }
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    let worst = errors.iter().cloned().fold(0.0, f64::max);
    println!(
        "load-profile at epsilon 2: {} half-hourly means, mean relative error {:.2}%, worst {:.2}%",
        errors.len(),
        100.0 * mean,
        100.0 * worst
    );
    assert_eq!(errors.len(), 4 * 48);
    // A mean plan measures three noisy vectors (count, sum, units with a value), so the sum's
    // ε share is a third of the query's (it was a half before nulls dropped out of means).
    assert!(mean < 0.12, "mean relative error {mean}");

    let daily = table(load_profile::DAILY);
    let mut daily_errors = Vec::new();
    for row in daily.released() {
        let area = row.keys[0].key_text();
        let v = daily.get(&row.keys, "mean_daily_kwh").unwrap();
        daily_errors.push((v - truth.daily[&area]).abs() / truth.daily[&area]);
    }
    println!(
        "load-profile: {} daily means, worst relative error {:.3}%",
        daily_errors.len(),
        100.0 * daily_errors.iter().cloned().fold(0.0, f64::max)
    );
    assert_eq!(daily_errors.len(), 4, "the four large areas, not A05");
    assert!(daily_errors.iter().all(|e| *e < 0.01), "{daily_errors:?}");

    // Households without consent are not in the profile: its units per cell are the consenting
    // households (the profile's noisy count is close to them, not to all meters).
    let consenting = truth.consenting["A01"] as f64;
    assert!(consenting < 0.6 * truth.meters["A01"] as f64);

    let mut local = oar_host::local::LocalHost::new(host.session("native", "stats-office", m));
    oar_guest::run_with_host(&mut local, "{}", load_profile::run).unwrap();
    assert_eq!(local.finish().charges.len(), 2);
}

/// The events of `oar synth journeys` as the module's defaults give them.
const EVENTS: [(&str, &str, i64, i64); 2] = [
    ("2026-04-09", "2026-04-16", 19, 22),
    ("2026-04-18", "2026-04-11", 15, 18),
];

#[test]
fn event_traffic_matches_the_ground_truth_and_shows_the_event_delay() {
    use oar_host::synth::traffic::{TrafficSpec, EVENT_SLOWDOWN};
    let dir = tempfile::tempdir().unwrap();
    let spec = TrafficSpec::default();
    assert_eq!(
        spec.event_dates(),
        EVENTS.map(|e| e.0.to_string()).to_vec(),
        "the module's default events are the synthetic ones"
    );
    let desc = spec.write(dir.path()).unwrap();
    let truth = common::truth::traffic_truth(&desc.with_file_name("journeys.parquet"), &EVENTS);
    let mut w = World::new(1, 1);
    let host = host_for(&mut w, "journeys", &desc);
    let m = common::verified_example(&w, "event-traffic", "event_traffic");
    let out = host.run(m.clone(), "stats-office", "{}");
    let release = out.result.expect("the module runs");
    assert_eq!(out.record.charges.len(), 2, "flows and journey times");
    let table = |name: &str| table_named(&release, name);

    let flows = table(event_traffic::FLOWS);
    assert_eq!(
        flows.rows.len(),
        6 * 4 * 24,
        "corridors × event and baseline days × hours"
    );
    // Laplace scale b = 12 / 1; a cell misses by more than 16 b with probability 1e-7.
    let b = 12.0;
    let mut errors = Vec::new();
    for row in flows.released() {
        let k: Vec<String> = row.keys.iter().map(|k| k.key_text()).collect();
        let n = truth
            .flows
            .get(&(k[0].clone(), k[1].clone(), k[2].parse().unwrap()))
            .copied()
            .unwrap_or(0) as f64;
        let v = flows.get(&row.keys, "vehicles").unwrap();
        assert!(n >= 10.0 && (v - n).abs() < 16.0 * b, "{k:?}: {v} vs {n}");
        errors.push((v - n).abs() / n);
        assert_ne!(k[0], "C6", "the private road never appears");
    }
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    println!(
        "event-traffic at epsilon 2: {} hourly flows released, mean relative error {:.2}%",
        errors.len(),
        100.0 * mean
    );
    // The module emits the flows of the event and baseline days only: a derived table, so its
    // privacy figures are the host's record of the query it came from (the first).
    assert!(
        flows.release.is_none(),
        "a derived table carries no figures"
    );
    println!(
        "event-traffic: flows threshold {:.0} vehicles",
        release.queries[0].release.threshold
    );
    assert!(errors.len() >= 40, "{} flows released", errors.len());
    assert!(mean < 0.05, "{mean}");
    // The arrivals before each event on the stadium corridors are among them.
    for (date, start) in [("2026-04-09", 17), ("2026-04-18", 13)] {
        for c in ["C1", "C2"] {
            let keys = [
                oar_guest::Value::Str(c.into()),
                oar_guest::Value::Str(date.into()),
                oar_guest::Value::Int(start),
            ];
            assert!(
                flows.get(&keys, "vehicles").is_some(),
                "{c} {date} {start}h"
            );
        }
    }

    let times = table(event_traffic::TIMES);
    let mut q_errors = Vec::new();
    for c in ["C1", "C2", "C3", "C4", "C5"] {
        for window in [true, false] {
            let keys = [
                oar_guest::Value::Str(c.into()),
                oar_guest::Value::Bool(window),
            ];
            for (name, q) in [("median_secs", 0.5), ("p90_secs", 0.9)] {
                let v = times
                    .get(&keys, name)
                    .unwrap_or_else(|| panic!("{c} {window} {name} withheld"));
                let t = truth.quantile(c, window, q);
                // 30-second bins, read off noisy cumulative counts: the sparse upper tail of
                // the smaller baseline windows moves most (a few bins).
                assert!((v - t).abs() <= 150.0, "{c} {window} {name}: {v} vs {t}");
                q_errors.push((v - t).abs() / t);
            }
        }
    }
    let q_mean = q_errors.iter().sum::<f64>() / q_errors.len() as f64;
    println!(
        "event-traffic: 20 journey-time quantiles, mean relative error {:.2}%, worst {:.2}%",
        100.0 * q_mean,
        100.0 * q_errors.iter().cloned().fold(0.0, f64::max)
    );
    assert!(q_mean < 0.03, "{q_mean}");

    // The delay table shows the event's effect where the synthetic data has one.
    let delay = table(event_traffic::DELAY);
    for c in ["C1", "C2"] {
        let extra = delay
            .get(&[oar_guest::Value::Str(c.into())], "extra_median_secs")
            .unwrap();
        let base = truth.quantile(c, false, 0.5);
        assert!(
            extra > 0.5 * (EVENT_SLOWDOWN - 1.0) * base,
            "{c}: event adds {extra} s to a {base} s median"
        );
    }
    for c in ["C3", "C4", "C5"] {
        let extra = delay
            .get(&[oar_guest::Value::Str(c.into())], "extra_median_secs")
            .unwrap();
        assert!(extra.abs() <= 120.0, "{c}: no event, yet {extra} s");
    }
    let c6 = delay
        .rows
        .iter()
        .find(|r| r.keys[0] == oar_guest::Value::Str("C6".into()))
        .unwrap();
    assert!(c6.suppressed.is_some());

    let mut local = oar_host::local::LocalHost::new(host.session("native", "stats-office", m));
    oar_guest::run_with_host(&mut local, "{}", event_traffic::run).unwrap();
    assert_eq!(local.finish().charges.len(), 2);
}

/// The plans `run` sends for `params`, as JSON text, from the Rust module run natively against a
/// FakeHost holding `schema` (each query answered with an empty table of its shape).
fn rust_plans<P: serde::de::DeserializeOwned>(
    run: oar_guest::RunFn<P>,
    schema: &oar_guest::DatasetSchema,
    params: &str,
    answers: &[(&[&str], &[&str])],
) -> Vec<String> {
    let mut host = oar_guest::testing::FakeHost::new().with_dataset(schema.clone());
    for (keys, values) in answers {
        host = host.answer(oar_guest::Table::new(
            keys.iter().copied(),
            values.iter().copied(),
        ));
    }
    oar_guest::run_with_host(&mut host, params, run).expect("the Rust module runs");
    host.plans()
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect()
}

/// The plans the Python twin in `example-algorithms/DIR` sends for `params` (python3, the SDK in
/// `guest-sdk/python`, no package from outside the standard library).
fn python_plans(dir: &str, schema: &oar_guest::DatasetSchema, params: &str) -> Vec<String> {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = std::process::Command::new("python3")
        .arg(root.join("tests/python/plans_of.py"))
        .arg(root.join("example-algorithms").join(dir))
        .arg(params)
        .env("PYTHONPATH", root.join("guest-sdk/python"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the README's test command needs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(schema).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The Python twins of `population` and `od-flows` send, for the same parameters, byte for
/// byte the plans their Rust modules send: one contract, two languages.
#[test]
fn python_twins_send_byte_identical_plans() {
    let schema = oar_guest::testing::cdr_schema();
    for params in [
        "{}",
        r#"{"epsilon": 0.5, "max_cells_per_subscriber": 3}"#,
        r#"{"epsilon": 2, "dataset": "cdr"}"#,
    ] {
        let rust = rust_plans(
            population::run,
            &schema,
            params,
            &[(&["region", "day"], &["subscribers"])],
        );
        assert_eq!(rust.len(), 1);
        assert_eq!(
            python_plans("population-py", &schema, params),
            rust,
            "{params}"
        );
    }
    for params in [
        "{}",
        r#"{"epsilon": 0.3, "days": 2}"#,
        r#"{"epsilon": 1e-7}"#,
    ] {
        let rust = rust_plans(
            od_flows::run,
            &schema,
            params,
            &[
                (&["day", "origin", "destination"], &["subscribers"]),
                (&["day", "origin"], &["residents"]),
            ],
        );
        assert_eq!(rust.len(), 2);
        assert_eq!(
            python_plans("od-flows-py", &schema, params),
            rust,
            "{params}"
        );
    }
}

/// The Python SDK's own unit tests and doctests (standard library only).
#[test]
fn the_python_sdk_passes_its_unit_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python");
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(&dir)
        .output()
        .expect("python3 runs (the README's test command needs it)");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let ran: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .expect("unittest reports how many tests ran");
    assert!(ran >= 25, "only {ran} Python tests ran:\n{text}");

    // The same tests and every module's doctests as authors run them, with pytest from PyPI
    // (component.py needs the bindings componentize-py generates, so it is left out).
    let out = common::python::pytest(&dir)
        .args(["oar_guest", "tests", "--ignore=oar_guest/component.py"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" passed"), "{text}");
}

/// The Python SDK refuses bad plans before they reach the host with the Rust SDK's own words:
/// `tests/python/check_errors.py` builds each case with the Python SDK, and the same plan built
/// here with the Rust SDK must fail its early check with the same text (Python spells its own
/// calls where the Rust text names a Rust call).
#[test]
fn the_python_sdk_refuses_bad_plans_with_the_rust_sdks_words() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("python3")
        .arg(repo.join("tests/python/check_errors.py"))
        .env("PYTHONPATH", repo.join("guest-sdk/python"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(cases.len() >= 38, "{} cases", cases.len());
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut python = case["error"].as_str().unwrap().to_string();
        for (py, rs) in case["rust_spelling"].as_object().unwrap() {
            python = python.replace(py.as_str(), rs.as_str().unwrap());
        }
        let rust = rust_check_error(name);
        assert_eq!(python, rust, "{name}");
    }
}

/// The Rust SDK's early-check error for the case `name` of `tests/python/check_errors.py`.
fn rust_check_error(name: &str) -> String {
    use oar_guest::testing::{meters_schema, FakeHost};
    use oar_guest::{col, num, per_unit, Context};
    let mut host = FakeHost::new().with_dataset(meters_schema());
    let mut ctx = Context::new(&mut host);
    let q = ctx.dataset("meters").unwrap();
    let q = match name {
        "unknown_column" => q
            .derive("slot", col("read_at").half_hour())
            .filter(col("kwhh").gt(0.0))
            .count_units("n"),
        "column_used_before_derived" => q
            .filter(col("slot").lt(10))
            .derive("slot", col("read_at").half_hour())
            .count_units("n"),
        "unknown_per_unit_by" => q
            .per_unit("home", per_unit::mode(col("region")).by(["day"]))
            .count_units("n"),
        "unknown_aggregate_column" => q.sum("s", "kwhh"),
        "privacy_unit_key" => q.group_by(["meter_id"]).count_units("n"),
        "privacy_unit_read" => q.filter(col("meter_id").eq(1)).count_units("n"),
        "key_str_without_domain" => q.group_by(["tariff"]).count_units("n"),
        "key_datetime" => q.group_by(["read_at"]).count_units("n"),
        "key_float" => q.group_by(["kwh"]).count_units("n"),
        "key_float_with_key_selection" => q.group_by(["kwh"]).count_units("n").select_keys(),
        "key_derived_float" => q
            .derive("double", num("kwh") * 2)
            .group_by(["double"])
            .count_units("n"),
        "key_per_unit_count" => q
            .per_unit("readings", per_unit::count(col("kwh")))
            .group_by(["readings"])
            .count_units("n"),
        "key_of_unknown_type" => q
            .derive("odd", col("tariff") + 1)
            .group_by(["odd"])
            .count_units("n"),
        "aggregate_name_twice" => q.count_units("n").sum("n", "kwh"),
        "aggregate_name_empty" => q.count_units(""),
        "aggregate_name_reserved" => q.count_units("__n"),
        "sum_of_text" => q.group_by(["region"]).sum("total", "tariff"),
        "mean_of_derived_bool" => q.derive("big", col("kwh").gt(2.0)).mean("m", "big"),
        "mean_without_declared_bounds" => q.group_by(["region"]).mean("avg_people", "occupants"),
        "quantile_of_per_unit_sum" => q
            .per_unit("monthly", per_unit::sum(num("kwh")))
            .quantile("p90", "monthly", 0.9),
        "sum_of_arithmetic" => q.derive("double", num("kwh") * 2).sum("s", "double"),
        "bounds_reversed" => q.sum_clamped("s", "kwh", 5.0, 1.0),
        "bounds_infinite" => q.mean_clamped("m", "kwh", 0.0, f64::INFINITY),
        "bounds_nan" => q.mean_clamped("m", "kwh", f64::NAN, 1.0),
        "bounds_fractional_reversed" => q.sum_clamped("s", "kwh", 2.5e-5, -1e-7),
        "bounds_on_a_rounding_tie" => q.sum_clamped("s", "kwh", 971494685127620.2, 1.0),
        "quantile_with_equal_bounds" => q.quantile_clamped("p", "kwh", 0.5, [1.0, 1.0], 10),
        "quantile_q_0" => q.quantile("p", "kwh", 0.0),
        "quantile_q_1" => q.quantile("p", "kwh", 1.0),
        "quantile_q_1_5" => q.quantile("p", "kwh", 1.5),
        "quantile_q_negative" => q.quantile("p", "kwh", -0.1),
        "quantile_q_nan" => q.quantile("p", "kwh", f64::NAN),
        "quantile_q_huge" => q.quantile("p", "kwh", 1e21),
        "quantile_one_bin" => q.quantile_clamped("p", "kwh", 0.5, [0.0, 1.0], 1),
        "no_aggregate" => q.group_by(["region"]),
        "too_many_aggregates" => (0..33).fold(q, |q, i| q.count_units(&format!("n{i}"))),
        "too_many_steps" => (0..65)
            .fold(q, |q, _| q.filter(col("kwh").ge(0.0)))
            .count_units("n"),
        "too_many_per_unit_steps" => (0..9)
            .fold(q, |q, i| {
                q.per_unit(&format!("u{i}"), per_unit::max(col("kwh")))
            })
            .count_units("n"),
        other => panic!("no Rust twin for case '{other}': add it here"),
    };
    match q.check() {
        Err(e) => e.to_string(),
        Ok(()) => panic!("the Rust SDK accepts case '{name}'"),
    }
}

/// The Python twins, built into components (the pinned componentize-py, `--stub-wasi`), are
/// signed with their Rust twins' manifests, approved and run in the sandbox like any module, and
/// release what their Rust modules release: the same tables, columns and cells in the same order,
/// the same charges, and values within the noise of each other. Prints the Python components'
/// size, cold compile, cached start and run times beside the Rust modules'.
#[test]
fn python_twins_run_in_the_sandbox_and_release_what_their_rust_modules_release() {
    use oar_host::bundle::{Bundle, Manifest};
    let dir = tempfile::tempdir().unwrap();
    let desc = oar_host::synth::cdr::CdrSpec {
        rows: 300_000,
        ..Default::default()
    }
    .write(dir.path())
    .unwrap();
    let mut w = World::new(1, 1);
    // Each run goes through the sandbox (a repeated run is not answered from the release cache).
    let host = host_for(&mut w, "cdr", &desc).without_release_reuse();
    // (Rust crate dir, component, Python twin, the largest Laplace scale of its counts.)
    for (crate_dir, name, twin, scale) in [
        ("population", "population", "population-py", 14.0),
        ("od-flows", "od_flows", "od-flows-py", 7.0 / 0.25),
    ] {
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../example-algorithms/{crate_dir}/manifest.toml")),
        )
        .unwrap();
        let bytes = common::python::component(&format!("example-algorithms/{twin}"));
        let python = common::verified_bundle(
            &w,
            Bundle::sign(
                bytes.clone(),
                Manifest::from_toml(&manifest).unwrap(),
                &w.author,
            ),
        );
        let rust = common::verified_example(&w, crate_dir, name);
        let r = host.run(rust, "stats-office", "{}");
        let p = host.run(python.clone(), "stats-office", "{}");
        let again = host.run(python, "stats-office", "{}");
        for (who, out) in [("rust", &r), ("python", &p), ("python again", &again)] {
            if let Err(e) = &out.result {
                panic!("{twin} ({who}) failed: {e}\nlog: {:?}", out.record.log);
            }
        }
        let (rs, ps, cached) = (
            r.stats.clone().unwrap(),
            p.stats.clone().unwrap(),
            again.stats.clone().unwrap(),
        );
        println!(
            "{twin}: component {:.1} MB; first run compile+verify {:.2?}, instantiate {:.2?}, run {:.2?}; \
             cached start {:.2?} (hit {}), instantiate {:.2?}; module memory {:.1} MiB; \
             Rust {crate_dir}: instantiate {:.2?}, run {:.2?}, module memory {:.1} MiB",
            bytes.len() as f64 / 1e6,
            ps.prepare,
            ps.instantiate,
            ps.execute,
            cached.prepare,
            cached.cache_hit,
            cached.instantiate,
            mib(ps.memory_bytes),
            rs.instantiate,
            rs.execute,
            mib(rs.memory_bytes),
        );
        // The module's memory as the cap counts it: Python's runtime is larger, and both fit.
        let cap = oar_host::policy::Limits::default().memory_mib as f64;
        assert!(mib(ps.memory_bytes) > mib(rs.memory_bytes), "{twin}");
        assert!(mib(ps.memory_bytes) < cap && mib(cached.memory_bytes) < cap);
        let rust_release = r.result.expect("the Rust module runs");
        let python_release = p
            .result
            .unwrap_or_else(|e| panic!("{twin} in the sandbox: {e}"));
        assert!(cached.cache_hit);
        assert_eq!(r.record.charges.len(), p.record.charges.len(), "{twin}");
        assert!((rust_release.epsilon_total - python_release.epsilon_total).abs() < 1e-12);
        assert_eq!(rust_release.tables.len(), python_release.tables.len());
        for (rt, pt) in rust_release.tables.iter().zip(&python_release.tables) {
            assert_eq!(rt.name, pt.name);
            let (a, b) = (&rt.table, &pt.table);
            assert_eq!(a.key_columns, b.key_columns, "{}", rt.name);
            assert_eq!(a.value_columns, b.value_columns, "{}", rt.name);
            let keys =
                |t: &oar_guest::Table| t.rows.iter().map(|r| r.keys.clone()).collect::<Vec<_>>();
            assert_eq!(
                keys(a),
                keys(b),
                "{}: the same cells in the same order",
                rt.name
            );
            // Noise is fresh in each run: cells near the threshold may differ in suppression,
            // and released counts differ by noise (each within 16 scales of the truth but with
            // probability 1e-7).
            let mut disagree = 0;
            for (x, y) in a.rows.iter().zip(&b.rows) {
                match (x.suppressed, y.suppressed) {
                    (None, None) => {
                        let counts = x.values.iter().zip(&y.values).zip(&a.value_columns);
                        // (Shares and their intervals are ratios of two noisy counts.)
                        for ((u, v), column) in counts.filter(|(_, c)| !c.contains("share")) {
                            assert!(
                                (u - v).abs() <= 32.0 * scale,
                                "{}.{column}: {u} vs {v}",
                                rt.name
                            );
                        }
                    }
                    (s, t) if s == t => {}
                    _ => disagree += 1,
                }
            }
            assert!(
                disagree * 10 <= a.rows.len(),
                "{}: {disagree} of {} cells suppressed in one release only",
                rt.name,
                a.rows.len()
            );
        }
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
