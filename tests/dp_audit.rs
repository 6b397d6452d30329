//! Tests that check PRIVACY.md's claims empirically:
//!
//! - **DP audit**: a count release and a sum release, each run many times on two neighbouring
//!   datasets (one person added). The privacy loss estimated from those runs stays within the
//!   claimed ε.
//! - **Differencing attack**: two queries whose difference isolates one person tell the attacker
//!   no more than the ε of the two queries together (FlowKit's leak). The ledger charges both.
//!
//! - **Extended audit**: a unit touching two cells, means, quantiles, totals, key selection, and
//!   NaN or missing values, each within the share of ε PRIVACY.md claims for it.
//!
//! **Confidence.** Each estimated probability gets a Wilson score interval with z = 4.5 (two-sided
//! miss probability about 7e-6). The estimated loss of an event uses the lower bound of one
//! probability over the upper bound of the other. Across the events checked (about 40 per audit),
//! the chance that an audit fails when the mechanism is in fact ε-DP is below 1e-3.
//!
//! **Power.** For counts and sums the claimed loss is attained by a threshold event, so a noise
//! scale 20% too small (a true loss of 1.25 times the claim) is caught: with 6000 samples per
//! world the proven lower bound then exceeds the claim (checked by releasing at ε / 0.8:
//! `a_unit_in_two_cells_stays_within_its_share_and_a_too_small_scale_is_caught`,
//! `a_sum_with_a_too_small_noise_scale_is_caught`).

use oar_guest::plan::{Aggregate, ContributionBounds, Plan, Step};
use oar_guest::{col, Value};
use oar_host::dataset::Dataset;
use oar_host::gate::{self, GateConfig};
use oar_host::query::{self, PlanLimits};
use oar_host::query::{PolarsBackend, QueryBackend};
use std::fmt::Write as _;
use std::path::Path;

const CONFIG: GateConfig = GateConfig {
    min_units: 10,
    delta0: 1e-9,
    dominance: None,
};
const LIMITS: PlanLimits = PlanLimits {
    max_output_cells: 100,
    max_groups_per_unit: 4,
};
const RUNS: usize = 6000;
const Z: f64 = 4.5;

/// 200 people in region B with amounts 1..=50 (cycled); `extra` adds one more person, with
/// amount 50 (the top of the bounds, the largest possible change to a sum). One cell per person.
fn people(dir: &Path, extra: bool) -> Dataset {
    dataset(dir, false, extra.then_some("50"), 1)
}

fn plan(aggregate: Aggregate, epsilon: f64) -> Plan {
    Plan {
        dataset: "people".into(),
        steps: vec![],
        group_by: vec!["region".into()],
        aggregates: vec![aggregate],
        bounds: ContributionBounds::default(),
        epsilon,
        totals: false,
        key_selection: false,
    }
}

/// `RUNS` released values of cell B for `plan` on `ds`.
fn samples(plan: &Plan, ds: &Dataset, column: &str) -> Vec<f64> {
    samples_of(plan, ds, &b(), column, RUNS)
}

fn wilson(hits: usize, n: usize) -> (f64, f64) {
    let p = hits as f64 / n as f64;
    let n = n as f64;
    let denom = 1.0 + Z * Z / n;
    let centre = (p + Z * Z / (2.0 * n)) / denom;
    let half = Z * ((p * (1.0 - p) / n) + Z * Z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The largest privacy loss that the samples prove, over the events "value >= t" and
/// "value < t" for thresholds around the true value. Also returns the largest point estimate.
fn estimated_loss(without: &[f64], with: &[f64], thresholds: &[f64]) -> (f64, f64) {
    let mut proven: f64 = 0.0;
    let mut point: f64 = 0.0;
    for &t in thresholds {
        for upper in [true, false] {
            let hits = |xs: &[f64]| xs.iter().filter(|&&x| (x >= t) == upper).count();
            let (a, b) = (hits(without), hits(with));
            for (num, den) in [(a, b), (b, a)] {
                let (num_lo, _) = wilson(num, without.len());
                let (_, den_hi) = wilson(den, with.len());
                if num_lo > 0.0 {
                    proven = proven.max((num_lo / den_hi).ln());
                }
                if num > 50 && den > 50 {
                    point = point.max((num as f64 / den as f64).ln());
                }
            }
        }
    }
    (proven, point)
}

#[test]
fn count_release_privacy_loss_stays_within_epsilon() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let epsilon = 0.5;
    let p = plan(Aggregate::CountUnits { name: "n".into() }, epsilon);
    let without = samples(&p, &people(d0.path(), false), "n");
    let with = samples(&p, &people(d1.path(), true), "n");
    let thresholds: Vec<f64> = (196..=206).map(f64::from).step_by(2).collect();
    let (proven, point) = estimated_loss(&without, &with, &thresholds);
    assert!(
        proven <= epsilon,
        "the samples prove a privacy loss of {proven:.3} > epsilon {epsilon}"
    );
    // The audit can see the loss at all: its point estimate comes close to epsilon (a mechanism
    // adding no noise, or far too much, would fail one of the two checks).
    assert!(point > 0.6 * epsilon, "point estimate {point:.3}");
}

#[test]
fn sum_release_privacy_loss_stays_within_epsilon() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let epsilon = 2.0;
    // A sum plan spends half its epsilon on the count and half on the sum.
    let p = plan(
        Aggregate::Sum {
            name: "amount".into(),
            column: "amount".into(),
            bounds: None,
        },
        epsilon,
    );
    let without = samples(&p, &people(d0.path(), false), "amount");
    let with = samples(&p, &people(d1.path(), true), "amount");
    let truth = without.iter().sum::<f64>() / RUNS as f64;
    let thresholds: Vec<f64> = (-2..=3).map(|i| truth + f64::from(i) * 25.0).collect();
    let (proven, point) = estimated_loss(&without, &with, &thresholds);
    let sum_epsilon = epsilon / 2.0;
    assert!(
        proven <= sum_epsilon,
        "the samples prove a privacy loss of {proven:.3} > {sum_epsilon}"
    );
    assert!(point > 0.6 * sum_epsilon, "point estimate {point:.3}");
}

#[test]
fn differencing_two_queries_reveals_no_more_than_their_combined_epsilon() {
    // The attack: "everyone in B" minus "everyone in B with an amount below 50" isolates the
    // people with amount 50, the target among them: 4 without the target, 5 with it. Neither
    // query's cell is small, so the minimum-count rule does not stop it; only the noise does.
    // The difference of the two noisy counts is the attacker's test statistic. (Each query is
    // charged to the ledger like any other, so the two together cost 2ε of the budget.)
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let epsilon = 0.5;
    let all = plan(Aggregate::CountUnits { name: "n".into() }, epsilon);
    let mut others = all.clone();
    others.steps = vec![Step::Filter {
        predicate: col("amount").lt(50.0),
    }];
    let difference = |ds: &Dataset| -> Vec<f64> {
        let a = samples(&all, ds, "n");
        let b = samples(&others, ds, "n");
        a.iter().zip(&b).map(|(x, y)| x - y).collect()
    };
    let without = difference(&people(d0.path(), false));
    let with = difference(&people(d1.path(), true));
    // Whatever threshold rule the attacker uses on the difference, the odds of telling the two
    // worlds apart are bounded by the two queries' epsilons added up.
    let thresholds: Vec<f64> = (2..=7).map(f64::from).collect();
    let (proven, _) = estimated_loss(&without, &with, &thresholds);
    assert!(
        proven <= 2.0 * epsilon,
        "differencing proved a loss of {proven:.3} > {}",
        2.0 * epsilon
    );
    // And the best such test is a weak one: accuracy at most e^(2ε) / (1 + e^(2ε)) ≈ 0.73.
    let best = thresholds
        .iter()
        .map(|&t| {
            let right = with.iter().filter(|&&x| x >= t).count()
                + without.iter().filter(|&&x| x < t).count();
            right as f64 / (2 * RUNS) as f64
        })
        .fold(0.0, f64::max);
    let bound = (2.0 * epsilon).exp() / (1.0 + (2.0 * epsilon).exp());
    assert!(
        best <= bound + 0.02,
        "attacker accuracy {best:.3} > {bound:.3}"
    );
}

// ---- The audit extended: several cells per unit, means, quantiles, totals, key selection,
// ---- NaN and null inputs, and the audit's power.
//
// Each case releases one statistic many times on two neighbouring datasets and checks that the
// loss the samples prove stays within what PRIVACY.md claims for that statistic (the share of
// ε its noisy vectors take). For counts and sums the claim is tight, so the audit's *power* is
// checked too: the same statistic released with a noise scale 20% too small (ε / 0.8 while
// claiming ε) must be caught, i.e. the samples must prove a loss above the claim.

/// A dataset for the extended audit: 200 people in region B with amounts 1..=50; each person
/// is in region A too when `both` is set (so one person touches two cells). `extra` adds one
/// person: `Some(amount)` as written in the file ("50", "NaN", "" for missing).
fn wide(dir: &Path, both: bool, extra: Option<&str>) -> Dataset {
    dataset(dir, both, extra, 2)
}

/// The audit's datasets: see [`people`] and [`wide`]; `max_groups` is the descriptor's bound on
/// the cells one person counts in.
fn dataset(dir: &Path, both: bool, extra: Option<&str>, max_groups: u32) -> Dataset {
    let mut csv = String::from("person,region,town,amount\n");
    let mut person = |id: &str, amount: &str| {
        for region in if both { &["B", "A"][..] } else { &["B"][..] } {
            writeln!(csv, "{id},{region},Big,{amount}").unwrap();
        }
    };
    for i in 0..200 {
        person(&format!("p{i}"), &(1 + i % 50).to_string());
    }
    if let Some(amount) = extra {
        person("target", amount);
    }
    std::fs::write(dir.join("people.csv"), csv).unwrap();
    std::fs::write(
        dir.join("people.toml"),
        format!(
            r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = {max_groups}
source = {{ format = "csv", paths = ["people.csv"] }}
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
bounds = [0.0, 50.0]
"#
        ),
    )
    .unwrap();
    Dataset::open(&dir.join("people.toml")).unwrap()
}

/// `runs` released values of the cell with `keys` for `plan` on `ds`.
fn samples_of(plan: &Plan, ds: &Dataset, keys: &[Value], column: &str, runs: usize) -> Vec<f64> {
    let compiled = query::check(plan, ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&compiled, ds, None)
        .unwrap();
    (0..runs)
        .map(|_| {
            gate::release(&compiled, &stats, CONFIG)
                .unwrap()
                .get(keys, column)
                .expect("the cell is released")
        })
        .collect()
}

/// Thresholds spread over the middle of `xs` (its 10th to 90th percentile).
fn spread(xs: &[f64]) -> Vec<f64> {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    (1..=9).map(|i| sorted[i * sorted.len() / 10]).collect()
}

/// Samples per world for the power checks: enough that a true loss 1.25 times the claim shows
/// as a proven loss above it, at z = 4.5.
const POWER_RUNS: usize = 24_000;

/// The loss `runs` samples of `column` at `keys` prove between the two datasets.
fn audit_with(
    plan: &Plan,
    d0: &Dataset,
    d1: &Dataset,
    keys: &[Value],
    column: &str,
    runs: usize,
) -> f64 {
    let without = samples_of(plan, d0, keys, column, runs);
    let with = samples_of(plan, d1, keys, column, runs);
    let mut thresholds = spread(&without);
    thresholds.extend(spread(&with));
    estimated_loss(&without, &with, &thresholds).0
}

fn audit(plan: &Plan, d0: &Dataset, d1: &Dataset, keys: &[Value], column: &str) -> f64 {
    audit_with(plan, d0, d1, keys, column, RUNS)
}

/// The loss the samples of `column` at `keys` prove for `plan`, between the audit's dataset
/// (one region per person) and the same with one more person whose amount is `extra`.
fn audit_neighbours(plan: &Plan, extra: &str, keys: &[Value], column: &str) -> f64 {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (d0, d1) = (
        wide(x.path(), false, None),
        wide(y.path(), false, Some(extra)),
    );
    audit(plan, &d0, &d1, keys, column)
}

fn b() -> Vec<Value> {
    vec![Value::Str("B".into())]
}

/// One person in two cells (N = 2): each cell's count noise has scale 2/ε, so one cell's
/// marginal loss is ε/2. A scale 20% too small is caught.
#[test]
fn a_unit_in_two_cells_stays_within_its_share_and_a_too_small_scale_is_caught() {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (d0, d1) = (wide(x.path(), true, None), wide(y.path(), true, Some("50")));
    let epsilon = 1.0;
    let mut p = plan(Aggregate::CountUnits { name: "n".into() }, epsilon);
    p.bounds.max_groups_per_unit = Some(2);
    let claim = epsilon / 2.0;
    let proven = audit(&p, &d0, &d1, &b(), "n");
    assert!(proven <= claim, "proved {proven:.3} > {claim}");
    // Power: noise for ε / 0.8 (a scale 20% too small) while claiming ε.
    p.epsilon = epsilon / 0.8;
    let proven = audit_with(&p, &d0, &d1, &b(), "n", POWER_RUNS);
    assert!(
        proven > claim,
        "a scale 20% too small went unnoticed (proved only {proven:.3})"
    );
}

/// A sum's share is ε/2 (count and sum, no dominance rule here); a scale 20% too small is caught.
#[test]
fn a_sum_with_a_too_small_noise_scale_is_caught() {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (d0, d1) = (
        wide(x.path(), false, None),
        wide(y.path(), false, Some("50")),
    );
    let epsilon = 2.0 / 0.8;
    let mut p = plan(
        Aggregate::Sum {
            name: "amount".into(),
            column: "amount".into(),
            bounds: None,
        },
        epsilon,
    );
    p.bounds.max_groups_per_unit = Some(1);
    let proven = audit_with(&p, &d0, &d1, &b(), "amount", POWER_RUNS);
    assert!(
        proven > 1.0,
        "a scale 20% too small went unnoticed (proved only {proven:.3})"
    );
}

/// A mean reads two noisy vectors (sum and count of units with a value, ε/3 each).
#[test]
fn mean_release_privacy_loss_stays_within_its_share() {
    let epsilon = 3.0;
    let p = plan(
        Aggregate::Mean {
            name: "mean".into(),
            column: "amount".into(),
            bounds: None,
        },
        epsilon,
    );
    let proven = audit_neighbours(&p, "50", &b(), "mean");
    assert!(proven <= 2.0, "proved {proven:.3} > 2");
}

/// A median is post-processing of a noisy histogram (ε/2).
#[test]
fn quantile_release_privacy_loss_stays_within_its_share() {
    let epsilon = 2.0;
    let p = plan(
        Aggregate::Quantile {
            name: "median".into(),
            column: "amount".into(),
            q: 0.5,
            bounds: None,
            bins: Some(16),
        },
        epsilon,
    );
    let proven = audit_neighbours(&p, "50", &b(), "median");
    assert!(proven <= 1.0, "proved {proven:.3} > 1");
}

/// The grand total of a plan with totals over one key is its own part, a plan without keys
/// computed with ε/2 (the session splits a plan with totals this way).
#[test]
fn a_total_stays_within_its_share() {
    let epsilon = 1.0;
    let mut total = plan(Aggregate::CountUnits { name: "n".into() }, epsilon / 2.0);
    total.group_by.clear();
    let proven = audit_neighbours(&total, "50", &[], "n");
    assert!(proven <= epsilon / 2.0, "proved {proven:.3}");
}

/// Key selection: the count of a selected town.
#[test]
fn a_selected_key_stays_within_epsilon() {
    let epsilon = 0.5;
    let mut p = plan(Aggregate::CountUnits { name: "n".into() }, epsilon);
    p.group_by = vec!["town".into()];
    p.key_selection = true;
    let proven = audit_neighbours(&p, "50", &[Value::Str("Big".into())], "n");
    assert!(proven <= epsilon, "proved {proven:.3}");
}

/// A person whose value is NaN, or missing, changes a sum only as much as any person may (it
/// drops out of the sum, and counts once).
#[test]
fn nan_and_null_inputs_stay_within_epsilon() {
    for odd in ["NaN", ""] {
        let epsilon = 2.0;
        let p = plan(
            Aggregate::Sum {
                name: "amount".into(),
                column: "amount".into(),
                bounds: None,
            },
            epsilon,
        );
        let proven = audit_neighbours(&p, odd, &b(), "amount");
        assert!(proven <= 1.0, "with {odd:?}: proved {proven:.3}");
    }
}
