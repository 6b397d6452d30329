//! The differential check shared by the backend tests: a small dataset built to hit every edge
//! of the query semantics, a random plan generator, and a comparison of per-cell statistics
//! with the reference executor's (counts, histograms and observed keys exactly, sums to float
//! rounding, since summation order differs between engines).
#![allow(dead_code)]

use oar_guest::plan::{
    Aggregate, ArithOp, CompareOp, ContributionBounds, Expr, Plan, Reduce, Step,
};
use oar_guest::{col, Value};
use oar_host::dataset::Dataset;
use oar_host::query::{self, CellStats, PlanLimits, QueryBackend, ReferenceBackend};
use oar_host::synth::SplitMix64;
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Relative tolerance for float figures (sums of up to a few thousand terms).
pub const TOLERANCE: f64 = 1e-9;

pub const LIMITS: PlanLimits = PlanLimits {
    max_output_cells: 5_000,
    max_groups_per_unit: 64,
};

/// A small dataset built to hit every edge of the semantics.
pub fn edgy() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("backends-edgy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_edgy(&dir);
        dir.join("edgy.toml")
    })
}

pub fn write_edgy(dir: &Path) {
    let mut rng = SplitMix64::new(11);
    let mut person = Vec::new();
    let mut region = Vec::new();
    let mut kind = Vec::new();
    let mut band = Vec::new();
    let mut ts = Vec::new();
    let mut amount = Vec::new();
    let mut visits = Vec::new();
    let mut level = Vec::new();
    let mut flag = Vec::new();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let pct = |rng: &mut SplitMix64, p: u64| rng.below(100) < p;
    for p in 0..140u64 {
        // Most units have a few rows; some have many (over every bound); three rows have no unit.
        let rows = if p % 13 == 0 { 40 } else { 1 + rng.below(10) };
        for _ in 0..rows {
            person.push((p < 137).then(|| format!("p{p:03}")));
            region.push(match rng.below(20) {
                0 => None,
                1 => Some("Z".to_string()),
                r => Some(["A", "B", "C", "D"][(r % 4) as usize].to_string()),
            });
            kind.push(
                (!pct(&mut rng, 5)).then(|| ["u", "v", "w"][rng.below(3) as usize].to_string()),
            );
            band.push(
                (!pct(&mut rng, 5))
                    .then(|| ["x", "y", "zz", "é", ""][rng.below(5) as usize].to_string()),
            );
            ts.push(if pct(&mut rng, 5) {
                None
            } else {
                let days = if pct(&mut rng, 3) {
                    7
                } else {
                    rng.below(5) as i64
                };
                let minutes = rng.below(24 * 60) as i64;
                Some(start + chrono::Duration::days(days) + chrono::Duration::minutes(minutes))
            });
            amount.push(match rng.below(100) {
                0..=2 => Some(f64::NAN),
                3 | 4 => Some(f64::INFINITY),
                5 => Some(f64::NEG_INFINITY),
                6..=9 => None,
                _ => Some(rng.unit() * 70.0 - 10.0),
            });
            visits.push(match rng.below(50) {
                0 | 1 => None,
                2 => Some(i64::MAX / 3),
                _ => Some(rng.below(13) as i64),
            });
            level.push((!pct(&mut rng, 4)).then(|| [1i64, 5, 7, 9][rng.below(4) as usize]));
            flag.push((!pct(&mut rng, 5)).then(|| rng.below(2) == 0));
        }
    }
    let ts = Series::new("ts".into(), ts);
    let mut df = df!(
        "person" => person,
        "region" => region,
        "kind" => kind,
        "band" => band,
        "amount" => amount,
        "visits" => visits,
        "level" => level,
        "flag" => flag,
    )
    .unwrap();
    df.with_column(
        ts.cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap(),
    )
    .unwrap();
    let mut file = std::fs::File::create(dir.join("edgy.parquet")).unwrap();
    ParquetWriter::new(&mut file).finish(&mut df).unwrap();
    std::fs::write(
        dir.join("edgy.toml"),
        r#"name = "edgy"
privacy_unit = "person"
max_groups_per_unit = 3
max_rows_per_group = 2

[source]
format = "parquet"
paths = ["edgy.parquet"]

[[columns]]
name = "region"
type = "str"
domain = ["A", "B", "C", "D"]

[[columns]]
name = "kind"
type = "str"
domain = ["u", "v"]

[[columns]]
name = "band"
type = "str"

[[columns]]
name = "ts"
type = "datetime"
period = ["2026-03-02", "2026-03-06"]

[[columns]]
name = "amount"
type = "float"
bounds = [-5.0, 50.0]

[[columns]]
name = "visits"
type = "int"
domain = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
bounds = [0.0, 20.0]

[[columns]]
name = "level"
type = "int"
domain = [1, 5, 7]
bounds = [0.0, 10.0]

[[columns]]
name = "flag"
type = "bool"
"#,
    )
    .unwrap();
}

fn pick<T: Clone>(rng: &mut SplitMix64, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize].clone()
}

/// A random numeric expression.
fn num(rng: &mut SplitMix64, depth: u32, extra: &[String]) -> Expr {
    if depth == 0 || rng.below(3) == 0 {
        let mut names = vec!["amount".to_string(), "visits".into(), "level".into()];
        names.extend(extra.iter().cloned());
        return match rng.below(5) {
            0 => Expr::Literal {
                value: Value::Int(rng.below(7) as i64 - 2),
            },
            1 => Expr::Literal {
                value: Value::Float((rng.unit() * 20.0 - 5.0).round() / 2.0),
            },
            _ => col(&pick(rng, &names)),
        };
    }
    Expr::Arith {
        op: pick(
            rng,
            &[ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div],
        ),
        left: Box::new(num(rng, depth - 1, extra)),
        right: Box::new(num(rng, depth - 1, extra)),
    }
}

/// A random boolean expression.
fn boolean(rng: &mut SplitMix64, depth: u32, extra: &[String]) -> Expr {
    let cmp = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ];
    let compare = |op, l: Expr, r: Expr| Expr::Compare {
        op,
        left: Box::new(l),
        right: Box::new(r),
    };
    let s = |v: &str| Expr::Literal {
        value: Value::Str(v.into()),
    };
    let leaf = rng.below(3) == 0 || depth == 0;
    match if leaf { rng.below(7) } else { 7 + rng.below(4) } {
        0 => compare(
            pick(rng, &cmp),
            num(rng, depth.min(1), extra),
            num(rng, depth.min(1), extra),
        ),
        1 => compare(
            pick(rng, &cmp),
            col(pick(rng, &["region", "kind", "band"])),
            s(pick(rng, &["A", "B", "u", "x", "é", ""])),
        ),
        2 => compare(
            pick(rng, &cmp),
            col("ts"),
            s(pick(rng, &["2026-03-04T12:00:00", "2026-03-03"])),
        ),
        3 => compare(pick(rng, &cmp), s("2026-03-04"), col("ts").date()),
        4 => col("flag"),
        5 => Expr::IsIn {
            expr: Box::new(col(pick(rng, &["region", "visits", "amount", "flag"]))),
            values: (0..1 + rng.below(3))
                .map(|_| match rng.below(4) {
                    0 => Value::Str(pick(rng, &["A", "C", "Z"]).into()),
                    1 => Value::Int(rng.below(10) as i64),
                    2 => Value::Bool(rng.below(2) == 0),
                    _ => Value::Float(rng.below(5) as f64),
                })
                .collect(),
        },
        6 => compare(
            pick(rng, &cmp),
            col("ts").hour(),
            Expr::Literal {
                value: Value::Int(rng.below(24) as i64),
            },
        ),
        7 => Expr::And {
            left: Box::new(boolean(rng, depth - 1, extra)),
            right: Box::new(boolean(rng, depth - 1, extra)),
        },
        8 => Expr::Or {
            left: Box::new(boolean(rng, depth - 1, extra)),
            right: Box::new(boolean(rng, depth - 1, extra)),
        },
        9 => Expr::Not {
            expr: Box::new(boolean(rng, depth - 1, extra)),
        },
        _ => compare(
            pick(rng, &cmp),
            num(rng, depth, extra),
            num(rng, depth, extra),
        ),
    }
}

/// A random plan over the edgy dataset (it may be refused; most are not).
pub fn random_plan(rng: &mut SplitMix64) -> Plan {
    let mut steps = Vec::new();
    let mut keys: Vec<String> = vec![
        "region".into(),
        "kind".into(),
        "flag".into(),
        "visits".into(),
        "level".into(),
    ];
    let mut numeric: Vec<String> = Vec::new();
    if rng.below(3) > 0 {
        steps.push(Step::Filter {
            predicate: boolean(rng, 3, &numeric),
        });
    }
    if rng.below(2) == 0 {
        steps.push(Step::Derive {
            name: "day".into(),
            expr: col("ts").date(),
        });
        keys.push("day".into());
    }
    if rng.below(3) == 0 {
        steps.push(Step::Derive {
            name: "slot".into(),
            expr: if rng.below(2) == 0 {
                col("ts").hour()
            } else {
                col("ts").half_hour()
            },
        });
        keys.push("slot".into());
    }
    if rng.below(3) == 0 {
        let edges = pick(
            rng,
            &[
                vec![-5.0, 0.0, 10.0, 50.0],
                vec![0.0, 1.0, 2.5],
                vec![0.0, 100.0],
            ],
        );
        steps.push(Step::Derive {
            name: "bucket".into(),
            expr: Expr::Bin {
                expr: Box::new(num(rng, 1, &numeric)),
                edges,
            },
        });
        keys.push("bucket".into());
    }
    if rng.below(2) == 0 {
        let reduce = pick(
            rng,
            &[
                Reduce::Mode,
                Reduce::Min,
                Reduce::Max,
                Reduce::Mean,
                Reduce::Sum,
                Reduce::Count,
                Reduce::CountDistinct,
                Reduce::Any,
                Reduce::All,
            ],
        );
        let expr = match reduce {
            Reduce::Any | Reduce::All => boolean(rng, 2, &numeric),
            Reduce::Mode | Reduce::Min | Reduce::Max => match rng.below(4) {
                0 => col("region"),
                1 => col("visits"),
                2 => col("flag"),
                _ => num(rng, 1, &numeric),
            },
            Reduce::CountDistinct => col(pick(rng, &["region", "band", "visits", "amount"])),
            _ => num(rng, 2, &numeric),
        };
        let by = match rng.below(4) {
            0 => vec!["region".to_string()],
            1 if keys.contains(&"day".to_string()) => vec!["day".to_string()],
            _ => vec![],
        };
        steps.push(Step::PerUnit {
            name: "per".into(),
            reduce,
            expr,
            rows: (rng.below(3) == 0).then(|| boolean(rng, 1, &[])),
            by,
        });
        keys.push("per".into());
        numeric.push("per".into());
    }
    let key_selection = rng.below(5) == 0;
    let mut group_by = Vec::new();
    if key_selection {
        group_by.push("band".to_string());
    }
    for _ in 0..rng.below(3) {
        let k = pick(rng, &keys);
        if !group_by.contains(&k) {
            group_by.push(k);
        }
    }
    let mut aggregates = vec![Aggregate::CountUnits { name: "n".into() }];
    let mut value_columns = vec!["amount".to_string(), "visits".into(), "level".into()];
    value_columns.extend(numeric.iter().cloned());
    for i in 0..rng.below(4) {
        let column = pick(rng, &value_columns);
        let bounds =
            (rng.below(2) == 0).then(|| pick(rng, &[[0.0, 10.0], [-3.0, 3.0], [1.0, 40.0]]));
        aggregates.push(match rng.below(3) {
            0 => Aggregate::Sum {
                name: format!("s{i}"),
                column,
                bounds,
            },
            1 => Aggregate::Mean {
                name: format!("m{i}"),
                column,
                bounds,
            },
            _ => Aggregate::Quantile {
                name: format!("q{i}"),
                column,
                q: 0.5,
                bounds,
                bins: Some(pick(rng, &[2, 7, 16])),
            },
        });
    }
    Plan {
        dataset: "edgy".into(),
        steps,
        group_by,
        aggregates,
        bounds: ContributionBounds {
            max_groups_per_unit: Some(1 + rng.below(4) as u32),
            max_rows_per_group: Some(1 + rng.below(3) as u32),
        },
        epsilon: 1.0,
        totals: false,
        key_selection,
    }
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOLERANCE * (1.0 + a.abs().max(b.abs()))
}

/// Where `got` differs from `want` beyond the tolerance, described.
pub fn difference(want: &CellStats, got: &CellStats) -> Option<String> {
    if want.observed != got.observed {
        return Some(format!(
            "observed keys differ: {:?} vs {:?}",
            want.observed, got.observed
        ));
    }
    if want.units != got.units {
        return Some(format!("units differ: {:?} vs {:?}", want.units, got.units));
    }
    if want.valued != got.valued {
        return Some(format!(
            "valued counts differ: {:?} vs {:?}",
            want.valued, got.valued
        ));
    }
    if want.histograms != got.histograms {
        return Some(format!(
            "histograms differ: {:?} vs {:?}",
            want.histograms, got.histograms
        ));
    }
    for (i, (w, g)) in want.sums.iter().zip(&got.sums).enumerate() {
        if let Some(c) = (0..w.len()).find(|&c| !close(w[c], g[c])) {
            return Some(format!("sum {i} differs in cell {c}: {} vs {}", w[c], g[c]));
        }
    }
    for (i, (w, g)) in want.dominance.iter().zip(&got.dominance).enumerate() {
        for (c, ((wt, wa), (gt, ga))) in w.iter().zip(g).enumerate() {
            let same_top = wt.len() == gt.len() && wt.iter().zip(gt).all(|(a, b)| close(*a, *b));
            if !same_top || !close(*wa, *ga) {
                return Some(format!(
                    "dominance {i} differs in cell {c}: {wt:?}/{wa} vs {gt:?}/{ga}"
                ));
            }
        }
    }
    None
}

pub fn differential(backend: &dyn QueryBackend, plans: usize, seed: u64) {
    differential_on(edgy(), backend, plans, seed);
}

/// The same edge-case rows as a CSV file (as Polars writes it: NaN, inf and empty fields
/// included), described like the Parquet set.
pub fn edgy_csv() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = edgy().parent().unwrap().join("csv");
        std::fs::create_dir_all(&dir).unwrap();
        let mut df = LazyFrame::scan_parquet(
            PlPath::new(&edgy().with_file_name("edgy.parquet").to_string_lossy()),
            Default::default(),
        )
        .unwrap()
        .collect()
        .unwrap();
        let mut file = std::fs::File::create(dir.join("edgy.csv")).unwrap();
        CsvWriter::new(&mut file).finish(&mut df).unwrap();
        let descriptor = std::fs::read_to_string(edgy())
            .unwrap()
            .replace("format = \"parquet\"", "format = \"csv\"")
            .replace("paths = [\"edgy.parquet\"]", "paths = [\"edgy.csv\"]");
        std::fs::write(dir.join("edgy.toml"), descriptor).unwrap();
        dir.join("edgy.toml")
    })
}

/// [`differential`] over the dataset described at `descriptor`.
pub fn differential_on(descriptor: &Path, backend: &dyn QueryBackend, plans: usize, seed: u64) {
    let ds = Dataset::open(descriptor).unwrap();
    let mut rng = SplitMix64::new(seed);
    let (mut compared, mut refused, mut truncated, mut selected, mut per_unit) = (0, 0, 0, 0, 0);
    // Count-only plans over public keys (Polars collects each unit's cells as a bitset; the
    // bitsets of several words are pinned in `tests/backends.rs`).
    let mut count_only = 0;
    for _ in 0..plans {
        let plan = random_plan(&mut rng);
        let checked = match query::check(&plan, &ds, LIMITS) {
            Ok(c) => c,
            Err(_) => {
                refused += 1;
                continue;
            }
        };
        let want = ReferenceBackend.execute(&checked, &ds, None).unwrap();
        let got = backend.execute(&checked, &ds, None).unwrap_or_else(|e| {
            panic!(
                "{} failed ({e}) on {}",
                backend.name(),
                serde_json::to_string(&plan).unwrap()
            )
        });
        if let Some(d) = difference(&want, &got) {
            panic!(
                "{} differs from the reference: {d}\nplan: {}",
                backend.name(),
                serde_json::to_string(&plan).unwrap()
            );
        }
        compared += 1;
        truncated += usize::from(checked.truncate());
        selected += usize::from(plan.key_selection);
        per_unit += usize::from(plan.steps.iter().any(|s| matches!(s, Step::PerUnit { .. })));
        count_only += usize::from(checked.values().is_empty() && !plan.key_selection);
    }
    // The generator must reach every path, not just be refused.
    assert!(
        compared >= plans / 2,
        "only {compared} of {plans} plans were accepted ({refused} refused)"
    );
    assert!(
        truncated > 20 && selected > 10 && per_unit > 20 && count_only > 20,
        "coverage: {truncated} truncated, {selected} key-selection, {per_unit} per-unit, \
         {count_only} count-only"
    );
}
