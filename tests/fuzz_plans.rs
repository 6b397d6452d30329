//! Untrusted input never panics the host: mutated plan and bundle JSON, and random expression
//! trees, are either accepted or refused with an error. (Deterministic, seeded; a panic fails.)

mod common;

use common::{host, verified, World};
use oar_guest::plan::{Aggregate, ArithOp, CompareOp, ContributionBounds, Expr, Plan, Step};
use oar_guest::Value;
use oar_host::dataset::Dataset;
use oar_host::query::{self, PlanLimits};
use oar_host::query::{PolarsBackend, QueryBackend};
use oar_host::synth::SplitMix64;

fn valid_plan() -> Plan {
    Plan {
        dataset: "cdr".into(),
        steps: vec![
            Step::Derive {
                name: "day".into(),
                expr: oar_guest::col("timestamp").date(),
            },
            Step::Filter {
                predicate: oar_guest::col("timestamp").hour().ge(6),
            },
        ],
        group_by: vec!["region".into(), "day".into()],
        aggregates: vec![Aggregate::CountUnits { name: "n".into() }],
        bounds: ContributionBounds {
            max_groups_per_unit: Some(7),
            max_rows_per_group: None,
        },
        epsilon: 0.01,
        totals: false,
        key_selection: false,
    }
}

fn mutate(rng: &mut SplitMix64, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(4) {
            0 => bytes[at] = b"{}[]\",:0123456789-eE.ntfa\\ "[rng.below(27) as usize],
            1 => {
                bytes.remove(at);
            }
            2 => bytes.insert(at, bytes[rng.below(bytes.len() as u64) as usize]),
            _ => bytes.truncate(at),
        }
        if bytes.is_empty() {
            bytes.push(b'{');
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_plan_json_is_refused_or_answered_never_a_panic() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 1e9);
    let module = verified(&w, "population");
    let text = serde_json::to_string(&valid_plan()).unwrap();
    let mut rng = SplitMix64::new(1);
    let mut session = host.session("fuzz", "stats-office", module.clone());
    for i in 0..1500 {
        if i % 25 == 0 {
            session = host.session("fuzz", "stats-office", module.clone());
        }
        let _ = session.query(&mutate(&mut rng, &text));
    }
}

#[test]
fn mutated_bundle_json_never_panics_the_reader() {
    let w = World::new(1, 1);
    let bundle = common::bundle(&w, b"(component)".to_vec());
    let text = serde_json::to_string(&bundle).unwrap();
    let mut rng = SplitMix64::new(2);
    for _ in 0..3000 {
        let _ = oar_host::bundle::Bundle::from_json(mutate(&mut rng, &text).as_bytes());
    }
}

fn random_value(rng: &mut SplitMix64) -> Value {
    match rng.below(5) {
        0 => Value::Int(rng.below(30) as i64 - 5),
        1 => Value::Float(rng.unit() * 100.0 - 50.0),
        2 => Value::Bool(rng.below(2) == 0),
        3 => Value::Str(
            ["R01", "R21", "2026-03-03", "2026-03-03T12:00:00", "x"][rng.below(5) as usize].into(),
        ),
        _ => Value::Str(String::new()),
    }
}

fn random_expr(rng: &mut SplitMix64, depth: u32) -> Expr {
    let columns = [
        "timestamp",
        "region",
        "cell_id",
        "day",
        "subscriber_id",
        "nope",
    ];
    if depth == 0 || rng.below(3) == 0 {
        return if rng.below(2) == 0 {
            Expr::Column {
                name: columns[rng.below(columns.len() as u64) as usize].into(),
            }
        } else {
            Expr::Literal {
                value: random_value(rng),
            }
        };
    }
    let sub = |rng: &mut SplitMix64| Box::new(random_expr(rng, depth - 1));
    match rng.below(8) {
        0 => Expr::Compare {
            op: [
                CompareOp::Eq,
                CompareOp::Ne,
                CompareOp::Lt,
                CompareOp::Le,
                CompareOp::Gt,
                CompareOp::Ge,
            ][rng.below(6) as usize],
            left: sub(rng),
            right: sub(rng),
        },
        1 => Expr::Arith {
            op: [ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div][rng.below(4) as usize],
            left: sub(rng),
            right: sub(rng),
        },
        2 => Expr::And {
            left: sub(rng),
            right: sub(rng),
        },
        3 => Expr::Or {
            left: sub(rng),
            right: sub(rng),
        },
        4 => Expr::Not { expr: sub(rng) },
        5 => Expr::IsIn {
            expr: sub(rng),
            values: (0..rng.below(3)).map(|_| random_value(rng)).collect(),
        },
        6 => Expr::Date { expr: sub(rng) },
        _ => Expr::Hour { expr: sub(rng) },
    }
}

/// Compiles `plan`; counts it if accepted, and runs the first 150 accepted plans (a runtime
/// failure is a refusal, not a crash).
fn compile_and_run_some(plan: &Plan, ds: &Dataset, accepted: &mut usize, executed: &mut usize) {
    let limits = PlanLimits {
        max_output_cells: 100_000,
        max_groups_per_unit: 64,
    };
    if let Ok(compiled) = query::check(plan, ds, limits) {
        *accepted += 1;
        if *executed < 150 {
            *executed += 1;
            let _ = PolarsBackend::default().execute(&compiled, ds, None);
        }
    }
}

#[test]
fn random_expression_trees_compile_or_fail_cleanly_and_run_without_panics() {
    let ds = Dataset::open(common::small_cdr()).unwrap();
    let mut rng = SplitMix64::new(3);
    let (mut accepted, mut executed) = (0, 0);
    for _ in 0..3000 {
        let mut plan = valid_plan();
        plan.steps = vec![
            Step::Derive {
                name: "day".into(),
                expr: random_expr(&mut rng, 3),
            },
            Step::Filter {
                predicate: random_expr(&mut rng, 3),
            },
        ];
        plan.group_by = match rng.below(3) {
            0 => vec!["region".into()],
            1 => vec!["day".into()],
            _ => vec![],
        };
        compile_and_run_some(&plan, &ds, &mut accepted, &mut executed);
    }
    assert!(
        accepted > 50,
        "the generator should also produce valid plans ({accepted})"
    );
}

#[test]
fn random_per_unit_steps_compile_or_fail_cleanly_and_run_without_panics() {
    use oar_guest::plan::Reduce;
    let ds = Dataset::open(common::small_cdr()).unwrap();
    let reductions = [
        Reduce::Mode,
        Reduce::Min,
        Reduce::Max,
        Reduce::Mean,
        Reduce::Sum,
        Reduce::Count,
        Reduce::CountDistinct,
        Reduce::Any,
        Reduce::All,
    ];
    let mut rng = SplitMix64::new(5);
    let (mut accepted, mut executed) = (0, 0);
    for _ in 0..2000 {
        let mut plan = valid_plan();
        let by = match rng.below(4) {
            0 => vec!["day".to_string()],
            1 => vec!["subscriber_id".to_string()],
            2 => vec!["nowhere".to_string()],
            _ => vec![],
        };
        plan.steps.push(Step::PerUnit {
            name: "u".into(),
            reduce: reductions[rng.below(reductions.len() as u64) as usize],
            expr: random_expr(&mut rng, 2),
            rows: (rng.below(2) == 0).then(|| random_expr(&mut rng, 2)),
            by,
        });
        plan.group_by = match rng.below(3) {
            0 => vec!["region".into(), "u".into()],
            1 => vec!["u".into()],
            _ => vec!["region".into()],
        };
        if rng.below(2) == 0 {
            plan.aggregates.push(Aggregate::Mean {
                name: "m".into(),
                column: "u".into(),
                bounds: Some([0.0, 10.0]),
            });
        }
        compile_and_run_some(&plan, &ds, &mut accepted, &mut executed);
    }
    assert!(
        accepted > 50,
        "the generator should also produce valid per-unit plans ({accepted})"
    );
}
