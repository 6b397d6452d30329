//! Sealed channels: attacks that read facts about the data *beside* the gate, each written as the
//! attacker would run it. Every test compares what a module or requester can observe (a table,
//! a refusal text, a run's outcome, release metadata) on two neighbouring datasets, which differ
//! by one person. Where the output is deterministic it must be identical; where it is noisy it
//! must not differ beyond what the charged ε allows.
//!
//! Each of these failed on the tree before the gate was sealed (c7bb0a2): the comment on each
//! test says what it showed then.

mod common;

use common::World;
use oar_guest::plan::{Aggregate, ContributionBounds, Plan, Step};
use oar_guest::table::Suppression;
use oar_guest::{col, lit, Table, Value};
use oar_host::bundle::{Bundle, DatasetUse, Manifest, OutputDecl};
use oar_host::dataset::{Catalog, Dataset};
use oar_host::gate::{self, Dominance, GateConfig};
use oar_host::job::Host;
use oar_host::ledger::SqliteLedger;
use oar_host::policy::Policy;
use oar_host::query::{self, PlanLimits};
use oar_host::query::{PolarsBackend, QueryBackend};
use oar_host::sandbox::Runtime;
use oar_host::session::Session;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

const CONFIG: GateConfig = GateConfig {
    min_units: 10,
    delta0: 1e-9,
    dominance: Some(Dominance { n: 2, k: 0.9 }),
};
const LIMITS: PlanLimits = PlanLimits {
    max_output_cells: 10_000,
    max_groups_per_unit: 64,
};

/// Writes `people.csv` (header `person,region,town,amount`) and a descriptor named `cdr` into
/// `dir` and opens it. `rows` are `(region, town, amount)`, one person each; `amount` is
/// written as given ("" is missing, "NaN" and "inf" are what a float file can hold).
fn people(dir: &Path, rows: &[(&str, &str, &str)]) -> Dataset {
    let mut csv = String::from("person,region,town,amount\n");
    for (i, (region, town, amount)) in rows.iter().enumerate() {
        writeln!(csv, "p{i},{region},{town},{amount}").unwrap();
    }
    std::fs::write(dir.join("people.csv"), csv).unwrap();
    std::fs::write(
        dir.join("people.toml"),
        r#"
name = "cdr"
privacy_unit = "person"
max_groups_per_unit = 1
max_rows_per_group = 1
source = { format = "csv", paths = ["people.csv"] }
[[columns]]
name = "region"
type = "str"
domain = ["A", "B"]
[[columns]]
name = "town"
type = "str"
[[columns]]
name = "amount"
type = "float"
bounds = [0.0, 1.0]
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("people.toml")).unwrap()
}

/// `n` people in region A with this amount.
fn crowd(n: usize, amount: &'static str) -> Vec<(&'static str, &'static str, &'static str)> {
    vec![("A", "T", amount); n]
}

fn plan(aggregates: Vec<Aggregate>) -> Plan {
    Plan {
        dataset: "cdr".into(),
        steps: vec![],
        group_by: vec!["region".into()],
        aggregates,
        bounds: ContributionBounds::default(),
        epsilon: 1.0,
        totals: false,
        key_selection: false,
    }
}

fn sum(column: &str) -> Aggregate {
    Aggregate::Sum {
        name: "total".into(),
        column: column.into(),
        bounds: Some([0.0, 1.0]),
    }
}

/// Releases `plan` over `rows` once through the gate.
fn release(rows: &[(&str, &str, &str)], plan: &Plan) -> Table {
    let dir = tempfile::tempdir().unwrap();
    let ds = people(dir.path(), rows);
    let compiled = query::check(plan, &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    gate::release(&compiled, &stats, CONFIG).unwrap()
}

fn region_a() -> Vec<Value> {
    vec![Value::from("A")]
}

// ---- 2. NaN, ±inf and x/0 ------------------------------------------------------------------

/// Then: one NaN or inf in the data made the whole cell's sum NaN, which OpenDP's float
/// Laplace turned into (noise around) 0: a 2,000-person cell read ~0 when the target was there.
/// And where the file's first rows held whole numbers, the column was read as integers and the
/// one `NaN` made the query fail after the charge: a failure that said the target was there.
#[test]
fn one_nan_or_inf_in_the_data_cannot_wipe_out_a_cell() {
    let base = crowd(2000, "1");
    for odd in ["NaN", "inf", "-inf"] {
        let mut neighbour = base.clone();
        neighbour.push(("A", "T", odd));
        for rows in [&base, &neighbour] {
            let t = release(rows, &plan(vec![sum("amount")]));
            let total = t.get(&region_a(), "total").expect("released");
            assert!(
                (total - 2000.0).abs() < 100.0,
                "with {odd}: the sum reads {total}, not about 2000"
            );
        }
    }
}

/// Then: `v = 1 + 0/(amount - 1)` is NaN for the one person whose amount is 1, and the sum of
/// `v` over 2,000 people read ~0 exactly when that person was in the data.
#[test]
fn division_by_zero_in_a_derived_column_cannot_wipe_out_a_cell() {
    let base = crowd(2000, "0.5");
    let mut neighbour = base.clone();
    neighbour.push(("A", "T", "1.0"));
    let mut p = plan(vec![Aggregate::Sum {
        name: "total".into(),
        column: "v".into(),
        bounds: Some([0.0, 1.0]),
    }]);
    p.steps = vec![Step::Derive {
        name: "v".into(),
        expr: lit(1.0) + lit(0.0) / (col("amount") - 1.0),
    }];
    for rows in [&base, &neighbour] {
        let t = release(rows, &p);
        let total = t.get(&region_a(), "total").expect("released");
        assert!((total - 2000.0).abs() < 100.0, "the sum reads {total}");
    }
}

// ---- 7. Nulls ----------------------------------------------------------------------------

/// Then: a mean divided by every unit of the cell, including those whose value was null, and
/// null values landed in the lowest quantile bin. 50 people with no amount moved the mean of
/// 100 people at 0.8 to 0.53 and the 25th percentile to 0.
#[test]
fn units_with_null_values_drop_out_of_means_and_quantiles() {
    let base = crowd(100, "0.8");
    let mut neighbour = base.clone();
    neighbour.extend(crowd(50, ""));
    neighbour.extend(crowd(5, "NaN"));
    let aggs = vec![
        Aggregate::Mean {
            name: "mean".into(),
            column: "amount".into(),
            bounds: Some([0.0, 1.0]),
        },
        Aggregate::Quantile {
            name: "p25".into(),
            column: "amount".into(),
            q: 0.25,
            bounds: Some([0.0, 1.0]),
            bins: Some(10),
        },
    ];
    let mut p = plan(aggs);
    p.epsilon = 20.0;
    for rows in [&base, &neighbour] {
        let t = release(rows, &p);
        let mean = t.get(&region_a(), "mean").expect("released");
        let p25 = t.get(&region_a(), "p25").expect("released");
        assert!((mean - 0.8).abs() < 0.05, "mean {mean}");
        assert!((p25 - 0.8).abs() < 0.11, "p25 {p25}");
    }
}

// ---- 3. Dominance --------------------------------------------------------------------------

/// How often region A of `rows` is suppressed for dominance over `runs` releases.
fn dominance_rate(rows: &[(&str, &str, &str)], runs: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let ds = people(dir.path(), rows);
    let compiled = query::check(&plan(vec![sum("amount")]), &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    let mut dominated = 0;
    for _ in 0..runs {
        let t = gate::release(&compiled, &stats, CONFIG).unwrap();
        let row = t.rows.iter().find(|r| r.keys == region_a()).unwrap();
        if row.suppressed == Some(Suppression::Dominance) {
            dominated += 1;
        }
    }
    dominated as f64 / runs as f64
}

/// Then: `sum(amount)` over 200 people was marked dominated exactly when one person had a
/// non-zero amount (the true top-2 share jumped from 0/0 to 1/1): a deterministic answer to
/// "does anyone match?", at any ε. Now the decision reads noisy figures, so its rate may move
/// by at most a factor e^ε (plus sampling error) between the neighbours.
#[test]
fn dominance_does_not_answer_whether_one_person_matches() {
    let base = crowd(200, "0");
    let mut neighbour = base.clone();
    neighbour.push(("A", "T", "1"));
    let runs = 600;
    let (r0, r1) = (
        dominance_rate(&base, runs),
        dominance_rate(&neighbour, runs),
    );
    // The whole query is ε = 1-DP; 4.5 standard errors of two rates cover the sampling noise.
    let slack = 4.5 * (0.25 / runs as f64).sqrt() * 2.0;
    let e = 1f64.exp();
    assert!(
        r1 <= e * r0 + slack && r0 <= e * r1 + slack,
        "dominated {r0} of the time without the person, {r1} with"
    );
    assert!(r0 < 1.0 && r1 < 1.0 && r0 > 0.0, "the decision is noisy");
}

// ---- 1. Key selection ------------------------------------------------------------------

/// A host whose only dataset is `ds` (named `cdr`), and a module approved to read its
/// `region`, `town` and `amount` columns.
fn host_over(
    dir: &Path,
    rows: &[(&str, &str, &str)],
    tweak: impl FnOnce(&mut Policy),
) -> (Host, Arc<oar_host::verify::VerifiedModule>) {
    let w = World::new(1, 1);
    let mut policy = w.policy.clone();
    tweak(&mut policy);
    let mut catalog = Catalog::new();
    catalog.register(people(dir, rows));
    let manifest = Manifest {
        datasets: vec![DatasetUse {
            name: "cdr".into(),
            columns: vec!["region".into(), "town".into(), "amount".into()],
        }],
        outputs: vec![OutputDecl {
            name: "population_by_region_day".into(),
            description: String::new(),
        }],
        ..common::manifest()
    };
    let bundle = Bundle::sign(common::component("population"), manifest, &w.author);
    let approval = common::approval(&w, &bundle, 1);
    let module = oar_host::verify::verify(
        &bundle,
        &approval,
        &policy,
        &oar_host::revocation::RevocationList::empty(),
        chrono::Utc::now(),
    )
    .unwrap();
    let host = Host::new(
        Runtime::new(Some(common::cache_dir())).unwrap(),
        catalog,
        policy,
        Arc::new(SqliteLedger::in_memory()),
    );
    (host, Arc::new(module))
}

fn session(host: &Host, module: &Arc<oar_host::verify::VerifiedModule>) -> Session {
    host.session("sealed", "stats-office", module.clone())
}

/// Then: the host counted the towns found in the data and refused, after the charge, when they
/// were more than the policy's cell limit, saying how many. With exactly the limit in the data,
/// one extra person in a new town turned a release into "…5 cells…": whether anyone was there,
/// deterministically, at any ε. Now key selection never refuses on the data: it keeps the
/// combinations whose noisy counts pass, at most the limit of them, by noisy count.
#[test]
fn key_selection_does_not_refuse_when_one_person_adds_a_key() {
    let towns = ["T1", "T2", "T3", "T4"];
    let mut base = Vec::new();
    for t in towns {
        base.extend(vec![("A", t, "0"); 40]);
    }
    let mut p = plan(vec![Aggregate::CountUnits { name: "n".into() }]);
    p.group_by = vec!["town".into()];
    p.key_selection = true;
    let json = serde_json::to_string(&p).unwrap();
    let lone = {
        let mut rows = base.clone();
        rows.push(("A", "X", "0"));
        rows
    };
    let crowded = {
        let mut rows = base.clone();
        rows.extend(vec![("A", "X", "0"); 40]);
        rows
    };
    for rows in [&base, &lone, &crowded] {
        let dir = tempfile::tempdir().unwrap();
        let (host, module) = host_over(dir.path(), rows, |p| p.limits.max_output_cells = 4);
        let mut s = session(&host, &module);
        let answer = s
            .query(&json)
            .expect("key selection answers, whatever the data");
        let t: Table = serde_json::from_str(&answer).unwrap();
        assert!(t.rows.len() <= 4, "at most the policy's cell limit");
        assert!(t.rows.iter().all(|r| r.suppressed.is_none()));
        if rows.len() != crowded.len() {
            assert_eq!(t.rows.len(), 4);
            assert!(t.rows.iter().all(|r| r.keys != vec![Value::from("X")]));
        }
    }
}

// ---- 5. Refusals ---------------------------------------------------------------------------

/// Then: refused queries did not count toward `max_queries_per_run`, so a module could ask
/// any number of questions answered by refusals alone.
#[test]
fn refused_queries_count_toward_the_query_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (host, module) = host_over(dir.path(), &crowd(50, "0"), |p| {
        p.limits.max_queries_per_run = 3
    });
    let mut s = session(&host, &module);
    for _ in 0..3 {
        assert!(s.query("{not a plan").is_err());
    }
    let json =
        serde_json::to_string(&plan(vec![Aggregate::CountUnits { name: "n".into() }])).unwrap();
    let err = s.query(&json).unwrap_err();
    assert!(err.contains("queries"), "{err}");
    assert!(s.finish().charges.is_empty());
}

/// Then: any ε > 0 was accepted; fifteen queries at ε = 1e-17 (1.5e-16 in all) read "≥ 10
/// units?" for every region off a threshold that had collapsed to 10.
#[test]
fn an_epsilon_below_the_policy_minimum_is_refused_before_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (host, module) = host_over(dir.path(), &crowd(50, "0"), |_| {});
    let mut s = session(&host, &module);
    let mut p = plan(vec![Aggregate::CountUnits { name: "n".into() }]);
    for epsilon in [1e-17, 1e-12, 9e-4] {
        p.epsilon = epsilon;
        let err = s.query(&serde_json::to_string(&p).unwrap()).unwrap_err();
        assert!(err.contains("minimum"), "{err}");
    }
    p.epsilon = 1e-3;
    s.query(&serde_json::to_string(&p).unwrap())
        .expect("the policy's minimum itself is allowed");
    let record = s.finish();
    assert_eq!(record.charges.len(), 1);
}

// ---- 6. Release facts ---------------------------------------------------------------------

/// Then: `emit` stored the module's table whole, `release` block included, and the holder
/// signed whatever ε, threshold and suppression counts the module wrote there. A table with
/// fewer keys than key columns panicked the worker when the release was written.
#[test]
fn emitted_tables_carry_the_hosts_figures_and_malformed_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = crowd(300, "0");
    rows.extend(vec![("B", "T", "0"); 3]);
    let (host, module) = host_over(dir.path(), &rows, |_| {});
    let mut s = session(&host, &module);
    let p = plan(vec![Aggregate::CountUnits { name: "n".into() }]);
    let answer: Table =
        serde_json::from_str(&s.query(&serde_json::to_string(&p).unwrap()).unwrap()).unwrap();
    let truth = answer.release.clone().unwrap();
    assert_eq!(
        truth.suppressed_minimum_units, 1,
        "B (3 people) is suppressed"
    );

    // A malformed table is refused with the row at fault, and nothing panics.
    let mut malformed = answer.clone();
    malformed.rows[0].keys.clear();
    let err = s
        .emit(
            "population_by_region_day",
            &serde_json::to_string(&malformed).unwrap(),
        )
        .unwrap_err();
    assert!(err.contains("row 0 has 0 keys"), "{err}");

    // A forged release block, and B's cell "unsuppressed" with a made-up value.
    let mut forged = answer.clone();
    let info = forged.release.as_mut().unwrap();
    info.epsilon = 1e-6;
    info.threshold = 0.0;
    info.suppressed_minimum_units = 0;
    let b = forged
        .rows
        .iter_mut()
        .find(|r| r.keys == vec![Value::from("B")])
        .unwrap();
    b.suppressed = None;
    b.values = vec![3.0];
    s.emit(
        "population_by_region_day",
        &serde_json::to_string(&forged).unwrap(),
    )
    .unwrap();
    let record = s.finish();
    let (_, released, provenance) = &record.outputs[0];
    assert_eq!(
        released.release, None,
        "a changed table is derived: it carries no privacy figures of its own"
    );
    assert!(matches!(
        provenance,
        oar_host::release::provenance::Provenance::Derived { .. }
    ));
    let b = released
        .rows
        .iter()
        .find(|r| r.keys == vec![Value::from("B")])
        .unwrap();
    assert!(
        b.suppressed.is_some() && b.values.is_empty(),
        "B stays suppressed"
    );
    assert_eq!(record.answered[0].release, truth, "the host's record");
}

#[test]
fn an_unchanged_answer_is_released_with_the_gates_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (host, module) = host_over(dir.path(), &crowd(300, "0"), |_| {});
    let mut s = session(&host, &module);
    let p = plan(vec![Aggregate::CountUnits { name: "n".into() }]);
    let json = s.query(&serde_json::to_string(&p).unwrap()).unwrap();
    let mut answer: Table = serde_json::from_str(&json).unwrap();
    answer.release.as_mut().unwrap().epsilon = 1e-6;
    s.emit(
        "population_by_region_day",
        &serde_json::to_string(&answer).unwrap(),
    )
    .unwrap();
    let record = s.finish();
    let (_, released, provenance) = &record.outputs[0];
    assert_eq!(
        provenance,
        &oar_host::release::provenance::Provenance::Query { query: 0 }
    );
    assert_eq!(released.release.as_ref().unwrap().epsilon, 1.0);
}

// ---- 12. Write, then record -----------------------------------------------------------------

/// Then: the audit log and the ledger said "released" before the files were written, and a
/// table that failed to write left an unsigned, partial release folder behind.
#[test]
fn a_release_that_cannot_be_written_leaves_nothing_on_disk() {
    let mut bad = Table::new(["a", "b"], ["v"]);
    bad.rows.push(oar_guest::table::Row {
        keys: vec![Value::Int(1)],
        values: vec![1.0],
        suppressed: None,
    });
    let release = common::release_of(vec![oar_host::release::ReleasedTable {
        name: "t".into(),
        table: bad,
        provenance: oar_host::release::provenance::Provenance::Derived { from: vec![] },
    }]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release");
    let key = oar_host::keys::KeyPair::from_seed("holder", "holder");
    let err = release.publish(&out, Some(&key)).unwrap_err();
    assert!(err.to_string().contains("row 0"), "{err}");
    assert!(!out.exists(), "no release folder");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial folder either"
    );
}

// ---- 13. Module text ------------------------------------------------------------------------

/// Then: module log lines reached the holder's terminal with escape sequences, carriage returns
/// and newlines intact (a forged "job …: released" line), and refusals echoed plans at length.
#[test]
fn module_text_is_escaped_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (host, module) = host_over(dir.path(), &crowd(50, "0"), |_| {});
    let mut s = session(&host, &module);
    s.log("fine\r\x1b[2Kjob 1: released 9 table(s)\nforged");
    s.log(&"x".repeat(100_000));
    let long = format!("{{\"dataset\": \"{}\"", "y".repeat(200_000));
    let err = s.query(&long).unwrap_err();
    assert!(err.len() < 2_000, "a refusal of {} bytes", err.len());
    let record = s.finish();
    for line in &record.log {
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.chars().count() <= 1025);
    }
}

// ---- 11. Host-work bombs ----------------------------------------------------------------------

/// Then: one plan with 1,000 sums took 4.3 GB; 2,500 per-unit steps 1.5 GB on 50k rows; a
/// quantile plan over many cells and bins 3 GB and 180 s against a 10 s deadline; an emitted
/// table of 1,000,000 columns drove the release writer past 6 GiB. Now each is refused from the
/// plan or the table alone, before any data is touched or anything is parsed at length, and
/// charges nothing. The process's peak memory stays far below what the bombs took (the other
/// tests of this binary use small data).
#[test]
fn host_work_bombs_are_refused_before_the_data_and_charge_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (host, module) = host_over(dir.path(), &crowd(50_000, "0.5"), |p| {
        p.limits.max_output_cells = 1_000_000
    });
    let mut s = session(&host, &module);
    let sums: Vec<Aggregate> = (0..1000)
        .map(|i| Aggregate::Sum {
            name: format!("s{i}"),
            column: "amount".into(),
            bounds: Some([0.0, 1.0]),
        })
        .collect();
    let many_sums = plan(sums);
    let mut many_steps = plan(vec![Aggregate::CountUnits { name: "n".into() }]);
    many_steps.steps = (0..2500)
        .map(|i| Step::PerUnit {
            name: format!("u{i}"),
            reduce: oar_guest::plan::Reduce::Max,
            expr: col("amount"),
            rows: None,
            by: vec![],
        })
        .collect();
    let mut wide_quantiles = plan(vec![Aggregate::Quantile {
        name: "q".into(),
        column: "amount".into(),
        q: 0.9,
        bounds: Some([0.0, 1.0]),
        bins: Some(1024),
    }]);
    wide_quantiles.steps = vec![
        Step::Derive {
            name: "b".into(),
            expr: col("amount").bin((0..=256).map(|i| f64::from(i) / 256.0)),
        },
        Step::Derive {
            name: "c".into(),
            expr: col("amount").bin((0..=64).map(|i| f64::from(i) / 64.0)),
        },
    ];
    // 2 × 256 × 64 cells of 1024 bins: 33.5 million noise draws.
    wide_quantiles.group_by = vec!["region".into(), "b".into(), "c".into()];
    for (bomb, why) in [
        (&many_sums, "aggregates"),
        (&many_steps, "steps"),
        (&wide_quantiles, "noise draws"),
    ] {
        let err = s.query(&serde_json::to_string(bomb).unwrap()).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    let mut wide = Table::new(Vec::<String>::new(), (0..100_000).map(|i| format!("c{i}")));
    wide.rows.clear();
    let err = s
        .emit(
            "population_by_region_day",
            &serde_json::to_string(&wide).unwrap(),
        )
        .unwrap_err();
    assert!(err.contains("at most"), "{err}");
    assert!(s.finish().charges.is_empty());
    let peak = peak_rss_mib();
    eprintln!("peak RSS of the test process: {peak} MiB");
    assert!(peak < 1024, "peak RSS {peak} MiB");
}

/// The process's peak resident memory so far, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}
