//! Tests that check PRIVACY.md's claims empirically:
//!
//! - **DP audit**: a count release and a sum release, each run many times on two neighbouring
//!   datasets (one person added). The privacy loss estimated from those runs stays within the
//!   claimed ε.
//! - **Differencing attack**: two queries whose difference isolates one person tell the attacker
//!   no more than the ε of the two queries together (FlowKit's leak). The ledger charges both.
//!
//! **Confidence.** Each estimated probability gets a Wilson score interval with z = 4.5 (two-sided
//! miss probability about 7e-6). The estimated loss of an event uses the lower bound of one
//! probability over the upper bound of the other. Across the 12 events checked, the chance that
//! these tests fail when the mechanism is in fact ε-DP is below 1e-4.

use oar_guest::plan::{Aggregate, ContributionBounds, Plan, Step};
use oar_guest::{col, Value};
use oar_host::dataset::Dataset;
use oar_host::gate::{self, GateConfig};
use oar_host::query::{self, PlanLimits};
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
/// amount 50 (the top of the bounds, the largest possible change to a sum).
fn people(dir: &Path, extra: bool) -> Dataset {
    let mut csv = String::from("person,region,amount\n");
    for i in 0..200 {
        writeln!(csv, "p{i},B,{}", 1 + i % 50).unwrap();
    }
    if extra {
        writeln!(csv, "target,B,50").unwrap();
    }
    std::fs::write(dir.join("people.csv"), csv).unwrap();
    std::fs::write(
        dir.join("people.toml"),
        r#"
name = "people"
privacy_unit = "person"
max_groups_per_unit = 1
source = { format = "csv", paths = ["people.csv"] }
[[columns]]
name = "region"
type = "str"
domain = ["A", "B"]
[[columns]]
name = "amount"
type = "float"
bounds = [0.0, 50.0]
"#,
    )
    .unwrap();
    Dataset::open(&dir.join("people.toml")).unwrap()
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
    let compiled = query::compile(plan, ds, LIMITS).unwrap();
    let stats = compiled.execute().unwrap();
    (0..RUNS)
        .map(|_| {
            gate::release(&compiled, &stats, CONFIG)
                .unwrap()
                .get(&[Value::Str("B".into())], column)
                .expect("a cell of 200 people is released")
        })
        .collect()
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
                let (num_lo, _) = wilson(num, RUNS);
                let (_, den_hi) = wilson(den, RUNS);
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
