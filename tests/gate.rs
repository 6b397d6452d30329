//! The privacy gate's promises, checked on a handmade dataset whose true counts are known.
//!
//! Regions: A has 9 people; B has 500; C has 6 people, one of whom has 1000 rows; D has 400
//! people plus one with 5000 rows; E has nobody.

use oar_guest::plan::{Aggregate, ContributionBounds, Plan};
use oar_guest::table::Suppression;
use oar_guest::{col, Value};
use oar_host::dataset::Dataset;
use oar_host::gate::{self, Dominance, GateConfig};
use oar_host::query::{self, PlanLimits, QueryError};
use oar_host::query::{PolarsBackend, QueryBackend};
use std::fmt::Write as _;
use std::path::Path;

const CONFIG: GateConfig = GateConfig {
    min_units: 10,
    delta0: 1e-9,
    dominance: Some(Dominance { n: 2, k: 0.9 }),
};
const LIMITS: PlanLimits = PlanLimits {
    max_output_cells: 10_000,
    max_groups_per_unit: 64,
};

fn dataset(dir: &Path) -> Dataset {
    let mut csv = String::from("person,region,amount\n");
    let mut id = 0;
    let mut person = |region: &str, rows: usize, amount: f64, csv: &mut String| {
        id += 1;
        for _ in 0..rows {
            writeln!(csv, "p{id},{region},{amount}").unwrap();
        }
    };
    for _ in 0..9 {
        person("A", 3, 10.0, &mut csv);
    }
    for _ in 0..500 {
        person("B", 1, 10.0, &mut csv);
    }
    person("C", 1000, 10.0, &mut csv);
    for _ in 0..5 {
        person("C", 1, 10.0, &mut csv);
    }
    person("D", 5000, 100.0, &mut csv);
    for _ in 0..400 {
        person("D", 1, 10.0, &mut csv);
    }
    std::fs::write(dir.join("people.csv"), csv).unwrap();
    std::fs::write(
        dir.join("people.toml"),
        r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = 1
max_rows_per_group = 1
source = { format = "csv", paths = ["people.csv"] }
[[columns]]
name = "region"
type = "str"
domain = ["A", "B", "C", "D", "E"]
[[columns]]
name = "amount"
type = "float"
bounds = [0.0, 100.0]
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("people.toml")).unwrap()
}

fn fixture() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    (dir, ds)
}

fn count_plan() -> Plan {
    Plan {
        dataset: "people".into(),
        steps: vec![],
        group_by: vec!["region".into()],
        aggregates: vec![Aggregate::CountUnits {
            name: "people".into(),
        }],
        bounds: ContributionBounds::default(),
        epsilon: 1.0,
        totals: false,
        key_selection: false,
    }
}

fn region(name: &str) -> Vec<Value> {
    vec![Value::Str(name.into())]
}

#[test]
fn one_unit_with_many_rows_counts_as_one_unit() {
    let (_d, ds) = fixture();
    let compiled = query::check(&count_plan(), &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    assert_eq!(stats.units, vec![9, 500, 6, 401, 0]);
}

#[test]
fn cell_with_nine_units_is_never_released_and_big_cells_always_are() {
    let (_d, ds) = fixture();
    let compiled = query::check(&count_plan(), &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    let mut b_values = Vec::new();
    for _ in 0..2000 {
        let t = gate::release(&compiled, &stats, CONFIG).unwrap();
        for name in ["A", "C", "E"] {
            assert_eq!(t.get(&region(name), "people"), None, "cell {name} released");
        }
        let b = t
            .get(&region("B"), "people")
            .expect("B (500 people) released");
        let d = t
            .get(&region("D"), "people")
            .expect("D (401 people) released");
        assert!((d - 401.0).abs() < 40.0, "D counted rows, not people: {d}");
        b_values.push(b);
        let info = t.release.as_ref().unwrap();
        assert_eq!(info.released_cells + info.suppressed_cells, 5);
        assert_eq!(t.suppressed_count(), 3);
    }
    // The released counts carry noise: they vary, centred on the truth, with Laplace spread.
    let n = b_values.len() as f64;
    let mean = b_values.iter().sum::<f64>() / n;
    let var = b_values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    assert!((mean - 500.0).abs() < 0.25, "mean {mean}");
    // Discrete Laplace of scale 1: variance 2α/(1-α)^2 with α = e^-1 ≈ 1.84.
    assert!((var - 1.84).abs() < 0.4, "variance {var}");
}

#[test]
fn threshold_and_accuracy_are_reported_without_values() {
    let (_d, ds) = fixture();
    let compiled = query::check(&count_plan(), &ds, LIMITS).unwrap();
    let t = gate::release(
        &compiled,
        &PolarsBackend::default()
            .execute(&compiled, &ds, None)
            .unwrap(),
        CONFIG,
    )
    .unwrap();
    let info = t.release.unwrap();
    assert!(info.threshold >= 10.0);
    assert_eq!(info.min_units, 10);
    assert_eq!(info.accuracy[0].noise_scale, 1.0);
    assert!(info.delta > 0.0 && info.delta < 1e-8);
    let json = serde_json::to_string(&t.rows).unwrap();
    for row in t.rows.iter().filter(|r| r.suppressed.is_some()) {
        assert!(
            row.values.is_empty(),
            "a suppressed row carries values: {json}"
        );
    }
}

#[test]
fn bounded_sum_clamps_each_unit_and_adds_noise() {
    let (_d, ds) = fixture();
    let mut plan = count_plan();
    plan.aggregates.push(Aggregate::Sum {
        name: "amount".into(),
        column: "amount".into(),
        bounds: None,
    });
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    // D: 400 people with 10.0 and one with 5000 rows of 100.0, clamped to one row's worth (100).
    assert_eq!(stats.sums[0][3], 400.0 * 10.0 + 100.0);
    // The dominance rule is measured with noise too, so a release may (rarely: under 1 in 80
    // test runs saw it once) suppress D; the noise on the sum shows in those released.
    let mut seen = Vec::new();
    for _ in 0..50 {
        let t = gate::release(&compiled, &stats, CONFIG).unwrap();
        seen.extend(t.get(&region("D"), "amount"));
    }
    assert!(seen.len() >= 40, "D released {} times of 50", seen.len());
    assert!(
        seen.iter().any(|v| (v - 4100.0).abs() > 1e-9),
        "sum carries no noise"
    );
    let spread = seen.iter().map(|v| (v - 4100.0).abs()).fold(0.0, f64::max);
    assert!(
        spread < 100.0 * 2.0 * 25.0,
        "noise far larger than its scale: {spread}"
    );
}

#[test]
fn mean_lies_within_the_bounds() {
    let (_d, ds) = fixture();
    let mut plan = count_plan();
    plan.aggregates = vec![Aggregate::Mean {
        name: "avg".into(),
        column: "amount".into(),
        bounds: Some([0.0, 50.0]),
    }];
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    let t = gate::release(
        &compiled,
        &PolarsBackend::default()
            .execute(&compiled, &ds, None)
            .unwrap(),
        CONFIG,
    )
    .unwrap();
    let b = t.get(&region("B"), "avg").unwrap();
    assert!((0.0..=50.0).contains(&b));
    assert!((b - 10.0).abs() < 5.0, "{b}");
}

#[test]
fn contribution_bound_limits_cells_per_unit() {
    // One person in every region: with max_groups_per_unit = 2, they count in at most two.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("person,region,amount\n");
    for r in ["A", "B", "C", "D", "E"] {
        writeln!(csv, "solo,{r},1").unwrap();
    }
    std::fs::write(dir.path().join("people.csv"), csv).unwrap();
    let ds = dataset_with(dir.path(), 2);
    let compiled = query::check(&count_plan(), &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    assert_eq!(stats.units.iter().sum::<i64>(), 2);
    assert_eq!(
        stats.units,
        vec![1, 1, 0, 0, 0],
        "the lowest cells are kept, deterministically"
    );
}

fn dataset_with(dir: &Path, max_groups: u32) -> Dataset {
    std::fs::write(
        dir.join("people.toml"),
        format!(
            "name = \"people\"\nprivacy_unit = \"person\"\nmax_groups_per_unit = {max_groups}\n\
             source = {{ format = \"csv\", paths = [\"people.csv\"] }}\n\
             [[columns]]\nname = \"region\"\ntype = \"str\"\ndomain = [\"A\", \"B\", \"C\", \"D\", \"E\"]\n\
             [[columns]]\nname = \"amount\"\ntype = \"float\"\nbounds = [0.0, 100.0]\n"
        ),
    )
    .unwrap();
    Dataset::open(&dir.join("people.toml")).unwrap()
}

#[test]
fn plan_reading_the_privacy_unit_is_refused() {
    let (_d, ds) = fixture();
    let mut plan = count_plan();
    plan.steps.push(oar_guest::plan::Step::Filter {
        predicate: col("person").eq("p1"),
    });
    assert_eq!(
        query::check(&plan, &ds, LIMITS).err(),
        Some(QueryError::PrivacyUnitReferenced("person".into()))
    );
    let mut plan = count_plan();
    plan.group_by = vec!["person".into()];
    assert!(matches!(
        query::check(&plan, &ds, LIMITS).err(),
        Some(QueryError::PrivacyUnitReferenced(_))
    ));
}

#[test]
fn group_key_without_public_domain_is_refused() {
    let (_d, ds) = fixture();
    let mut plan = count_plan();
    plan.group_by = vec!["amount".into()];
    assert!(matches!(
        query::check(&plan, &ds, LIMITS).err(),
        Some(QueryError::KeyWithoutDomain(_))
    ));
}

#[test]
fn unknown_column_is_refused_with_the_known_ones() {
    let (_d, ds) = fixture();
    let mut plan = count_plan();
    plan.group_by = vec!["regoin".into()];
    let err = query::check(&plan, &ds, LIMITS).err().unwrap().to_string();
    assert!(err.contains("regoin") && err.contains("region"), "{err}");
}

#[test]
fn too_many_cells_is_refused() {
    let (_d, ds) = fixture();
    let limits = PlanLimits {
        max_output_cells: 4,
        ..LIMITS
    };
    assert!(matches!(
        query::check(&count_plan(), &ds, limits).err(),
        Some(QueryError::TooManyCells { cells: 5, max: 4 })
    ));
}

/// Region X: two big earners (1000 each) and 18 people with 1; region Y: 20 people with 500.
fn dominated_dataset(dir: &Path) -> Dataset {
    let mut csv = String::from("person,region,amount\n");
    for i in 0..20 {
        let amount = if i < 2 { 1000.0 } else { 1.0 };
        writeln!(csv, "x{i},X,{amount}").unwrap();
        writeln!(csv, "y{i},Y,500").unwrap();
    }
    std::fs::write(dir.join("firms.csv"), csv).unwrap();
    std::fs::write(
        dir.join("firms.toml"),
        r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = 1
source = { format = "csv", paths = ["firms.csv"] }
[[columns]]
name = "region"
type = "str"
domain = ["X", "Y"]
[[columns]]
name = "amount"
type = "float"
bounds = [0.0, 1000.0]
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("firms.toml")).unwrap()
}

#[test]
fn dominance_rule_suppresses_cells_where_two_units_hold_most_of_the_sum() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dominated_dataset(dir.path());
    let mut plan = count_plan();
    plan.aggregates.push(Aggregate::Sum {
        name: "amount".into(),
        column: "amount".into(),
        bounds: None,
    });
    // Counts of 20 pass the threshold reliably, and the noisy dominance figures (scale 6 here)
    // are far from the boundary: the rule is what is tested.
    plan.epsilon = 500.0;
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    assert_eq!(stats.units, vec![20, 20]);
    assert_eq!(stats.dominance[0][0].0[..2], [1000.0, 1000.0]);
    assert_eq!(stats.dominance[0][0].1, 2018.0);
    for _ in 0..20 {
        let t = gate::release(&compiled, &stats, CONFIG).unwrap();
        let x = t.rows.iter().find(|r| r.keys == region("X")).unwrap();
        assert_eq!(x.suppressed, Some(Suppression::Dominance));
        assert!(
            x.values.is_empty(),
            "a dominated cell shows no value, not even its count"
        );
        assert!(t.get(&region("Y"), "amount").is_some());
        let info = t.release.as_ref().unwrap();
        assert_eq!(
            (info.suppressed_dominance, info.suppressed_minimum_units),
            (1, 0)
        );
    }
    // The rule is the policy's: with k = 1.0 nothing is dominated, and without it X is released.
    for dominance in [Some(Dominance { n: 2, k: 1.0 }), None] {
        let config = GateConfig {
            dominance,
            ..CONFIG
        };
        let t = gate::release(&compiled, &stats, config).unwrap();
        assert!(t.get(&region("X"), "amount").is_some());
    }
    // Counts alone are never subject to the rule.
    let mut counts = count_plan();
    counts.epsilon = 50.0;
    let compiled = query::check(&counts, &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    let t = gate::release(&compiled, &stats, CONFIG).unwrap();
    assert!(t.get(&region("X"), "people").is_some());
}

#[test]
fn dominance_uses_acros_boundary_on_noisy_figures() {
    let rule = Dominance { n: 2, k: 0.9 };
    assert!(rule.dominated(95.0, 100.0));
    assert!(rule.dominated(90.0, 100.0), "top/total >= k fails");
    assert!(!rule.dominated(89.9, 100.0));
    assert!(
        !rule.dominated(0.0, 0.0) && !rule.dominated(1.0, -3.0),
        "no contributor stands out of a total the noise cannot tell from zero"
    );
    assert!(
        !Dominance { n: 2, k: 1.0 }.dominated(100.0, 100.0),
        "k = 1 turns it off"
    );
}

/// 1000 people in region B with amounts 0.05, 0.15, …, 99.95 (uniform over [0, 100]).
fn uniform_dataset(dir: &Path) -> Dataset {
    let mut csv = String::from("person,region,amount\n");
    for i in 0..1000 {
        writeln!(csv, "u{i},B,{}", 0.05 + f64::from(i) * 0.1).unwrap();
    }
    std::fs::write(dir.join("uniform.csv"), csv).unwrap();
    std::fs::write(
        dir.join("uniform.toml"),
        r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = 1
source = { format = "csv", paths = ["uniform.csv"] }
[[columns]]
name = "region"
type = "str"
domain = ["A", "B"]
[[columns]]
name = "amount"
type = "float"
bounds = [0.0, 100.0]
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("uniform.toml")).unwrap()
}

#[test]
fn median_and_p90_come_from_a_noisy_histogram_of_units() {
    let dir = tempfile::tempdir().unwrap();
    let ds = uniform_dataset(dir.path());
    let mut plan = count_plan();
    for (name, q) in [("median", 0.5), ("p90", 0.9)] {
        plan.aggregates.push(Aggregate::Quantile {
            name: name.into(),
            column: "amount".into(),
            q,
            bounds: None,
            bins: Some(50),
        });
    }
    plan.epsilon = 3.0;
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    // Cell B (index 1) holds 1000 units, 20 per bin of width 2.
    assert_eq!(stats.histograms[0][50..100].iter().sum::<i64>(), 1000);
    assert!(stats.histograms[0][50..100].iter().all(|&c| c == 20));
    let mut medians = Vec::new();
    for _ in 0..200 {
        let t = gate::release(&compiled, &stats, CONFIG).unwrap();
        let median = t.get(&region("B"), "median").unwrap();
        let p90 = t.get(&region("B"), "p90").unwrap();
        assert!((median - 50.0).abs() < 6.0, "median {median}");
        assert!((p90 - 90.0).abs() < 6.0, "p90 {p90}");
        assert!(
            t.get(&region("A"), "median").is_none(),
            "the empty cell is suppressed"
        );
        medians.push(median);
        let info = t.release.as_ref().unwrap();
        assert_eq!(info.accuracy[1].ci95_half_width, 2.0, "one bin width");
    }
    assert!(
        medians.iter().any(|m| (m - medians[0]).abs() > 1e-9),
        "the quantile carries noise"
    );
}

#[test]
fn quantile_reading_interpolates_and_keeps_negative_noise() {
    use oar_host::gate::quantile_from_histogram;
    assert_eq!(quantile_from_histogram(&[10, 10], 0.5, [0.0, 2.0]), 1.0);
    assert_eq!(quantile_from_histogram(&[10, 10], 0.25, [0.0, 2.0]), 0.5);
    // Total 5, target 2.5: bin 1 takes the cumulative count from -5 to 5, crossing 2.5 at 3/4.
    assert_eq!(quantile_from_histogram(&[-5, 10, 0], 0.5, [0.0, 3.0]), 1.75);
    // Nothing positive: the middle of the range.
    assert_eq!(quantile_from_histogram(&[-3, -1], 0.5, [0.0, 2.0]), 1.0);
    // Noise on empty bins above the data cancels out instead of pushing the p90 up: 100 units
    // in the first 10 bins, then 110 empty bins with alternating noise of +3 and -3 (clamping
    // the negatives would add 165 phantom units above the data).
    let mut counts = vec![10i64; 10];
    counts.extend((0..110).map(|i| if i % 2 == 0 { 3 } else { -3 }));
    let p90 = quantile_from_histogram(&counts, 0.9, [0.0, 120.0]);
    assert!((p90 - 9.0).abs() < 1e-9, "{p90}");
}

#[test]
fn histograms_group_by_declared_bins() {
    let dir = tempfile::tempdir().unwrap();
    let ds = uniform_dataset(dir.path());
    let mut plan = count_plan();
    plan.steps = vec![oar_guest::plan::Step::Derive {
        name: "band".into(),
        expr: col("amount").bin([0.0, 25.0, 50.0, 75.0, 100.0]),
    }];
    plan.group_by = vec!["band".into()];
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    assert_eq!(
        compiled.keys[0].domain,
        ["[0, 25)", "[25, 50)", "[50, 75)", "[75, 100]"]
            .map(|s| Value::Str(s.into()))
            .to_vec()
    );
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    assert_eq!(stats.units, vec![250, 250, 250, 250]);
    // Edges that are not increasing, or too many bins, are refused before touching data.
    for edges in [vec![0.0, 0.0], vec![1.0], (0..300).map(f64::from).collect()] {
        plan.steps = vec![oar_guest::plan::Step::Derive {
            name: "band".into(),
            expr: col("amount").bin(edges),
        }];
        assert!(matches!(
            query::check(&plan, &ds, LIMITS),
            Err(QueryError::Invalid(_))
        ));
    }
}

/// Towns are not a public domain: Big has 500 people, Mid 60, Tiny 3.
fn towns_dataset(dir: &Path) -> Dataset {
    let mut csv = String::from("person,town\n");
    for (town, people) in [("Big", 500), ("Mid", 60), ("Tiny", 3)] {
        for i in 0..people {
            writeln!(csv, "{town}{i},{town}").unwrap();
        }
    }
    std::fs::write(dir.join("towns.csv"), csv).unwrap();
    std::fs::write(
        dir.join("towns.toml"),
        r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = 1
source = { format = "csv", paths = ["towns.csv"] }
[[columns]]
name = "town"
type = "str"
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("towns.toml")).unwrap()
}

#[test]
fn key_selection_releases_only_keys_with_enough_people_and_hides_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ds = towns_dataset(dir.path());
    let mut plan = count_plan();
    plan.group_by = vec!["town".into()];
    plan.epsilon = 2.0;
    // Without key selection a key with no public domain is refused, with a hint.
    let err = query::check(&plan, &ds, LIMITS).err().unwrap().to_string();
    assert!(err.contains("key_selection"), "{err}");
    plan.key_selection = true;
    // Compiling reads no data; the candidates are the towns found when the query runs.
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    // The threshold is calibrated for the policy's cell limit, not the number of towns found.
    assert_eq!(compiled.threshold_cells, LIMITS.max_output_cells);
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    assert_eq!(stats.observed.as_ref().map(Vec::len), Some(3));
    let town = |t: &str| vec![Value::Str(t.into())];
    for _ in 0..300 {
        let t = gate::release(&compiled, &stats, CONFIG).unwrap();
        assert!(t.get(&town("Big"), "people").is_some());
        assert!(t.get(&town("Mid"), "people").is_some());
        assert!(
            t.rows.iter().all(|r| r.keys != town("Tiny")),
            "a 3-person town must not appear at all, not even as suppressed"
        );
        let info = t.release.as_ref().unwrap();
        assert!(info.keys_selected);
        assert_eq!(
            info.suppressed_cells, 0,
            "how many keys were dropped is not told"
        );
        assert!((info.delta - (2.0 + 2f64.exp()) * 1e-9).abs() < 1e-15);
    }
}

/// People with night-time (hour < 6) and day-time rows: 30 sleep in A (twice) and B (once) and
/// work in C; 20 sleep and work in B; one sleeps once in A and once in B (a tie) and works in
/// C; 15 have day rows in A only (no night rows, so no home).
fn movers_dataset(dir: &Path) -> Dataset {
    let mut csv = String::from("person,region,hour\n");
    let mut id = 0;
    let mut person = |night: &[&str], day: &str, csv: &mut String| {
        id += 1;
        for r in night {
            writeln!(csv, "m{id},{r},2").unwrap();
        }
        writeln!(csv, "m{id},{day},12").unwrap();
    };
    for _ in 0..30 {
        person(&["A", "A", "B"], "C", &mut csv);
    }
    for _ in 0..20 {
        person(&["B"], "B", &mut csv);
    }
    person(&["B", "A"], "C", &mut csv);
    for _ in 0..15 {
        person(&[], "A", &mut csv);
    }
    std::fs::write(dir.join("movers.csv"), csv).unwrap();
    std::fs::write(
        dir.join("movers.toml"),
        r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = 4
source = { format = "csv", paths = ["movers.csv"] }
[[columns]]
name = "region"
type = "str"
domain = ["A", "B", "C"]
[[columns]]
name = "hour"
type = "int"
bounds = [0, 23]
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("movers.toml")).unwrap()
}

#[test]
fn the_per_unit_stage_gives_each_unit_one_value_and_aggregates_count_it_once() {
    use oar_guest::per_unit;
    let dir = tempfile::tempdir().unwrap();
    let ds = movers_dataset(dir.path());
    let night = || col("hour").lt(6);
    // Home region (the mode of night-time rows; ties to the smallest) × day-time region.
    let mut plan = count_plan();
    plan.steps = vec![
        per_unit::mode(col("region"))
            .rows(night())
            .into_step("home"),
        oar_guest::plan::Step::Filter {
            predicate: col("hour").ge(9),
        },
    ];
    plan.group_by = vec!["home".into(), "region".into()];
    let compiled = query::check(&plan, &ds, LIMITS).unwrap();
    assert_eq!(compiled.cells, 9, "home keeps the region's public domain");
    assert_eq!(compiled.columns_read, ["region", "hour"]);
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    // Cells in order (A,A) (A,B) (A,C) (B,A) (B,B) (B,C) (C,·)...: people without a home drop out.
    assert_eq!(stats.units, vec![0, 0, 31, 0, 20, 0, 0, 0, 0]);

    // A per-unit count feeds a mean: night rows per person, averaged by home region.
    plan.steps = vec![
        per_unit::mode(col("region"))
            .rows(night())
            .into_step("home"),
        per_unit::count(col("region"))
            .rows(night())
            .into_step("night_rows"),
    ];
    plan.group_by = vec!["home".into()];
    plan.aggregates = vec![Aggregate::Mean {
        name: "nights".into(),
        column: "night_rows".into(),
        bounds: Some([0.0, 10.0]),
    }];
    let stats = PolarsBackend::default()
        .execute(&query::check(&plan, &ds, LIMITS).unwrap(), &ds, None)
        .unwrap();
    assert_eq!(stats.units, vec![31, 20, 0]);
    assert_eq!(stats.sums[0], vec![30.0 * 3.0 + 2.0, 20.0, 0.0]);

    // Within further keys: each person's number of distinct regions per hour.
    plan.steps = vec![per_unit::count_distinct(col("region"))
        .by(["hour"])
        .into_step("regions_that_hour")];
    plan.group_by = vec!["region".into()];
    plan.aggregates = vec![Aggregate::Mean {
        name: "n".into(),
        column: "regions_that_hour".into(),
        bounds: Some([0.0, 3.0]),
    }];
    let stats = PolarsBackend::default()
        .execute(&query::check(&plan, &ds, LIMITS).unwrap(), &ds, None)
        .unwrap();
    assert_eq!(stats.units, vec![46, 51, 31]);
    // Per-unit means per cell, added up: movers and the tie person saw 2 regions at hour 2,
    // everyone else one region per hour.
    assert_eq!(
        stats.sums[0],
        vec![31.0 * 2.0 + 15.0, 31.0 * 2.0 + 20.0, 31.0]
    );
}

#[test]
fn the_per_unit_stage_refuses_the_privacy_unit_and_wrong_types() {
    use oar_guest::per_unit;
    let dir = tempfile::tempdir().unwrap();
    let ds = movers_dataset(dir.path());
    let mut plan = count_plan();
    let compile_with = |plan: &mut Plan, step: oar_guest::plan::Step| {
        plan.steps = vec![step];
        query::check(plan, &ds, LIMITS).err()
    };
    // The unit may be neither reduced nor a partition key: the host partitions by it itself.
    assert!(matches!(
        compile_with(&mut plan, per_unit::count(col("person")).into_step("x")),
        Some(QueryError::PrivacyUnitReferenced(_))
    ));
    assert!(matches!(
        compile_with(
            &mut plan,
            per_unit::count(col("region")).by(["person"]).into_step("x")
        ),
        Some(QueryError::PrivacyUnitReferenced(_))
    ));
    // A mean of text, an `any` of a number, a row filter that is not boolean.
    for step in [
        per_unit::mean(col("region")).into_step("x"),
        per_unit::any(col("hour")).into_step("x"),
        per_unit::max(col("hour")).rows(col("hour")).into_step("x"),
    ] {
        let err = compile_with(&mut plan, step).expect("refused");
        assert!(matches!(err, QueryError::Type(_)), "{err}");
        assert!(err.to_string().contains("per-unit 'x'"), "{err}");
    }
    // A per-unit sum has no bounds: an aggregate over it must give them.
    plan.steps = vec![per_unit::sum(col("hour")).into_step("total")];
    plan.aggregates = vec![Aggregate::Sum {
        name: "s".into(),
        column: "total".into(),
        bounds: None,
    }];
    assert!(matches!(
        query::check(&plan, &ds, LIMITS),
        Err(QueryError::MissingBounds(_))
    ));
    // A reserved name.
    assert!(matches!(
        compile_with(
            &mut count_plan(),
            per_unit::min(col("hour")).into_step("__cell")
        ),
        Some(QueryError::Invalid(_))
    ));
}
