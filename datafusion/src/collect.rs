//! From the stepped rows to [`CellStats`]: cells, one record per (unit, cell), contribution
//! bounding, and the per-cell figures, computed by DataFusion; only one row per cell (and per
//! cell and bin for quantiles) comes back to this process.

use crate::lower::{
    self, abs, binary, clamp, coalesce_f64, column, f64_lit, i64_lit, to_f64, UNIT,
};
use crate::{execute, fail, Job};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::functions::unicode::expr_fn::character_length;
use datafusion::functions_aggregate::expr_fn::{avg, count, max, sum};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{cast, lit, when, Expr, ExprFunctionExt, Operator};
use datafusion::prelude::{DataFrame, SessionContext};
use oar_guest::ColumnType;
use oar_query::backend::BackendError;
use oar_query::dataset::Dataset;
use oar_query::{CellStats, CheckedPlan, KeyIndex, UnitValue, BIN_SNAP, DOMINANCE_TOP};
use std::collections::HashMap;

const CELL: &str = "__oar_cell";

fn contribution(i: usize) -> String {
    format!("__oar_c{i}")
}

fn concat(l: Expr, r: Expr) -> Expr {
    binary(l, Operator::StringConcat, r)
}

/// Computes `plan`'s per-cell statistics over `dataset`.
pub async fn cell_stats(
    ctx: &SessionContext,
    target: &Job,
    plan: &CheckedPlan,
    dataset: &Dataset,
) -> std::result::Result<CellStats, BackendError> {
    let records = records(ctx, plan, dataset).await.map_err(|e| fail(&e))?;
    let per_cell = execute(
        target,
        per_cell(records.clone(), plan).map_err(|e| fail(&e))?,
    )
    .await
    .map_err(|e| fail(&e))?;
    let mut histograms = Vec::new();
    for (i, input) in plan.values().iter().enumerate() {
        histograms.push(match input.quantile_bins {
            Some(bins) => Some(
                execute(
                    target,
                    histogram(records.clone(), i, input.bounds, bins).map_err(|e| fail(&e))?,
                )
                .await
                .map_err(|e| fail(&e))?,
            ),
            None => None,
        });
    }
    assemble(plan, &per_cell, &histograms)
        .map_err(|_| BackendError::Failed("the query engine returned an unexpected result"))
}

/// One row per (unit, cell) a unit keeps after contribution bounding: the cell and the unit's
/// contribution to each value input.
async fn records(ctx: &SessionContext, plan: &CheckedPlan, dataset: &Dataset) -> Result<DataFrame> {
    let mut df = lower::scan(ctx, plan, dataset).await?;
    for s in plan.steps() {
        df = lower::step(df, s)?;
    }
    let mut rows = vec![column(UNIT), cell_expr(plan).alias(CELL)];
    for (i, input) in plan.values().iter().enumerate() {
        let [lo, hi] = input.bounds;
        rows.push(clamp(to_f64(lower::expr(&input.expr)), lo, hi).alias(contribution(i)));
    }
    let df = df.select(rows)?.filter(column(CELL).is_not_null())?;
    // One record per (unit, cell).
    let mut aggs = Vec::new();
    let mut post = vec![column(UNIT).alias(UNIT), column(CELL).alias(CELL)];
    for (i, input) in plan.values().iter().enumerate() {
        let c = contribution(i);
        match input.per_unit {
            UnitValue::Sum { lo, hi } => {
                aggs.push(sum(column(&c)).alias(&c));
                post.push(clamp(coalesce_f64(column(&c), 0.0), lo, hi).alias(&c));
            }
            UnitValue::Mean => {
                aggs.push(avg(column(&c)).alias(&c));
                post.push(column(&c).alias(&c));
            }
        }
    }
    if aggs.is_empty() {
        // DataFusion needs an aggregate; a count that is not used.
        aggs.push(count(lit(1)).alias("__oar_rows"));
    }
    let df = df
        .aggregate(vec![column(UNIT), column(CELL)], aggs)?
        .select(post)?;
    if !plan.truncate() {
        return Ok(df);
    }
    // Contribution bounding: each unit keeps its lowest cells, numbered in cell order within
    // the unit (the same whatever the partitioning).
    let rank = row_number()
        .partition_by(vec![column(UNIT)])
        .order_by(vec![column(CELL).sort(true, false)])
        .build()?
        .alias("__oar_rank");
    let mut keep = vec![column(UNIT), column(CELL)];
    keep.extend((0..plan.values().len()).map(|i| column(&contribution(i))));
    df.window(vec![rank])?
        .filter(column("__oar_rank").lt_eq(lower::rank_lit(u64::from(plan.max_groups_per_unit))))?
        .select(keep)
}

/// A row's cell: its public index (Int64), or with key selection its code (text); null if a
/// key is null or outside its public domain.
fn cell_expr(plan: &CheckedPlan) -> Expr {
    if plan.plan.key_selection {
        let mut code: Option<Expr> = None;
        for k in &plan.keys {
            let text = match &k.index {
                Some(index) => cast(position(&k.name, index), DataType::Utf8),
                None => cast(column(&k.name), DataType::Utf8),
            };
            let part = concat(
                concat(
                    cast(character_length(text.clone()), DataType::Utf8),
                    lit(":"),
                ),
                text,
            );
            code = Some(match code {
                Some(c) => concat(c, part),
                None => part,
            });
        }
        code.unwrap_or_else(|| lit(""))
    } else {
        let mut index = i64_lit(0);
        for k in &plan.keys {
            let p = match &k.index {
                Some(i) => position(&k.name, i),
                None => lit(ScalarValue::Int64(None)),
            };
            index = binary(
                binary(index, Operator::Multiply, i64_lit(k.domain.len() as i64)),
                Operator::Plus,
                p,
            );
        }
        index
    }
}

/// A key's position in its public domain (Int64), null if it is outside it or null.
fn position(name: &str, index: &KeyIndex) -> Expr {
    let x = column(name);
    let in_range = |p: Expr, len: usize| {
        when(
            p.clone()
                .gt_eq(i64_lit(0))
                .and(p.clone().lt(i64_lit(len as i64))),
            p,
        )
        .otherwise(lit(ScalarValue::Int64(None)))
        .expect("a CASE with branches")
    };
    match index {
        KeyIndex::DayOffset { start, len } => {
            let days = cast(cast(x, DataType::Int32), DataType::Int64);
            let first = i64::from(
                (*start - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date"))
                    .num_days() as i32,
            );
            in_range(binary(days, Operator::Minus, i64_lit(first)), *len)
        }
        KeyIndex::IntRange { first, len } => {
            in_range(binary(x, Operator::Minus, i64_lit(*first)), *len)
        }
        KeyIndex::Lookup(domain, ty) => lookup(x, domain, *ty),
    }
}

/// The first position in `domain` whose entry matches a value of type `ty` (see
/// [`KeyIndex::Lookup`]).
fn lookup(x: Expr, domain: &[oar_guest::Value], ty: ColumnType) -> Expr {
    use oar_guest::Value;
    let mut branches: Vec<(Expr, i64)> = Vec::new();
    for (i, d) in domain.iter().enumerate() {
        let test = match (ty, d) {
            (ColumnType::Str, d) => Some(x.clone().eq(lit(d.key_text()))),
            (ColumnType::Int, Value::Int(a)) => Some(x.clone().eq(i64_lit(*a))),
            (ColumnType::Int, Value::Float(a)) => Some(to_f64(x.clone()).eq(f64_lit(*a))),
            (ColumnType::Float, Value::Float(a)) => Some(x.clone().eq(f64_lit(*a))),
            (ColumnType::Float, Value::Int(a)) => Some(x.clone().eq(f64_lit(*a as f64))),
            (ColumnType::Bool, Value::Bool(b)) => Some(x.clone().eq(lit(*b))),
            (ColumnType::Date, d) => {
                let text = d.key_text();
                chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .ok()
                    .filter(|day| day.format("%Y-%m-%d").to_string() == text)
                    .map(|day| x.clone().eq(lower::date_lit(day)))
            }
            _ => None,
        };
        if let Some(t) = test {
            branches.push((t, i as i64));
        }
    }
    let mut case = match branches.first() {
        Some((t, i)) => when(t.clone(), i64_lit(*i)),
        None => return lit(ScalarValue::Int64(None)),
    };
    for (t, i) in &branches[1..] {
        case = case.when(t.clone(), i64_lit(*i));
    }
    case.otherwise(lit(ScalarValue::Int64(None)))
        .expect("a CASE with branches")
}

/// Per cell: its units, and per value input the sum, count and absolute sum of the
/// contributions and the largest [`DOMINANCE_TOP`] absolute ones.
fn per_cell(records: DataFrame, plan: &CheckedPlan) -> Result<DataFrame> {
    let n = plan.values().len();
    // One window per value input. DataFusion's `DataFrame::window` puts all its expressions in
    // one window node and sorts once, by the first one's order: two rankings with different
    // orders in one call give the second the first's order (seen in 55.2.0).
    let mut ranked = records;
    for i in 0..n {
        let rank = row_number()
            .partition_by(vec![column(CELL)])
            .order_by(vec![abs(column(&contribution(i))).sort(false, false)])
            .build()?
            .alias(format!("__oar_r{i}"));
        ranked = ranked.window(vec![rank])?;
    }
    let mut aggs = vec![count(lit(1)).alias("__oar_units")];
    for i in 0..n {
        let c = column(&contribution(i));
        aggs.push(sum(c.clone()).alias(format!("__oar_sum{i}")));
        aggs.push(count(c.clone()).alias(format!("__oar_valued{i}")));
        aggs.push(sum(abs(c.clone())).alias(format!("__oar_abs{i}")));
        for k in 1..=DOMINANCE_TOP {
            let top = when(
                column(&format!("__oar_r{i}"))
                    .eq(lower::rank_lit(k as u64))
                    .and(c.clone().is_not_null()),
                abs(c.clone()),
            )
            .otherwise(lit(ScalarValue::Float64(None)))?;
            aggs.push(max(top).alias(format!("__oar_top{i}_{k}")));
        }
    }
    ranked.aggregate(vec![column(CELL)], aggs)
}

/// Per (cell, bin): the units whose contribution to value input `i` falls in the bin.
fn histogram(records: DataFrame, i: usize, [lo, hi]: [f64; 2], bins: usize) -> Result<DataFrame> {
    let c = column(&contribution(i));
    // floor((c - lo) / (hi - lo) * bins + BIN_SNAP), clamped to [0, bins - 1]; the position is
    // at least -1e-9 (c >= lo up to rounding), so truncation is the floor wherever it matters.
    let offset = binary(c.clone(), Operator::Minus, f64_lit(lo));
    let widths = binary(
        binary(offset, Operator::Divide, f64_lit(hi - lo)),
        Operator::Multiply,
        f64_lit(bins as f64),
    );
    let position = binary(widths, Operator::Plus, f64_lit(BIN_SNAP));
    let bin = when(position.clone().lt(f64_lit(0.0)), i64_lit(0))
        .when(
            position.clone().gt_eq(f64_lit((bins - 1) as f64)),
            i64_lit(bins as i64 - 1),
        )
        .otherwise(cast(position, DataType::Int64))?;
    records
        .filter(c.is_not_null())?
        .select(vec![column(CELL), bin.alias("__oar_bin")])?
        .aggregate(
            vec![column(CELL), column("__oar_bin")],
            vec![count(lit(1)).alias("__oar_n")],
        )
}

/// A malformed result (never expected; reported as a failure kind).
#[derive(Debug)]
struct Unexpected;

fn array<'a>(batch: &'a RecordBatch, name: &str) -> std::result::Result<&'a dyn Array, Unexpected> {
    batch
        .column_by_name(name)
        .map(|a| a.as_ref())
        .ok_or(Unexpected)
}

fn ints(batch: &RecordBatch, name: &str) -> std::result::Result<Vec<Option<i64>>, Unexpected> {
    let a = array(batch, name)?;
    let a = a.as_primitive_opt::<Int64Type>().ok_or(Unexpected)?;
    Ok(a.iter().collect())
}

fn floats(batch: &RecordBatch, name: &str) -> std::result::Result<Vec<Option<f64>>, Unexpected> {
    let a = array(batch, name)?;
    let a = a.as_primitive_opt::<Float64Type>().ok_or(Unexpected)?;
    Ok(a.iter().collect())
}

/// Cell identities of a batch: indices, or codes with key selection.
enum Cells {
    Index(Vec<Option<i64>>),
    Code(Vec<Option<String>>),
}

fn cells(batch: &RecordBatch, plan: &CheckedPlan) -> std::result::Result<Cells, Unexpected> {
    if plan.plan.key_selection {
        let a = array(batch, CELL)?;
        let text = datafusion::arrow::compute::cast(a, &DataType::Utf8).map_err(|_| Unexpected)?;
        Ok(Cells::Code(
            text.as_string::<i32>()
                .iter()
                .map(|s| s.map(str::to_string))
                .collect(),
        ))
    } else {
        Ok(Cells::Index(ints(batch, CELL)?))
    }
}

fn assemble(
    plan: &CheckedPlan,
    per_cell: &[RecordBatch],
    histograms: &[Option<Vec<RecordBatch>>],
) -> std::result::Result<CellStats, Unexpected> {
    let values = plan.values();
    // With key selection, the observed cells in release order.
    let (slot_of_code, observed) = if plan.plan.key_selection {
        let mut codes: Vec<String> = Vec::new();
        for b in per_cell {
            if let Cells::Code(c) = cells(b, plan)? {
                codes.extend(c.into_iter().flatten());
            }
        }
        codes.sort();
        codes.dedup();
        let refs: Vec<Option<&str>> = codes.iter().map(|c| Some(c.as_str())).collect();
        let (slots, found) = plan.order_observed(&refs);
        let map: HashMap<String, usize> = codes
            .into_iter()
            .zip(slots)
            .filter_map(|(c, s)| Some((c, s?)))
            .collect();
        (map, Some(found))
    } else {
        (HashMap::new(), None)
    };
    let n_cells = observed.as_ref().map_or(plan.cells, Vec::len);
    let slot = |cells: &Cells, row: usize| -> Option<usize> {
        match cells {
            Cells::Index(v) => v[row]
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < n_cells),
            Cells::Code(v) => v[row].as_ref().and_then(|c| slot_of_code.get(c).copied()),
        }
    };
    let n = values.len();
    let mut stats = CellStats::zeros(plan, n_cells, observed);
    let finite_or_zero = |x: Option<f64>| x.filter(|x| x.is_finite()).unwrap_or(0.0);
    for b in per_cell {
        let cells = cells(b, plan)?;
        let units = ints(b, "__oar_units")?;
        let mut columns = Vec::new();
        for i in 0..n {
            let tops = (1..=DOMINANCE_TOP)
                .map(|k| floats(b, &format!("__oar_top{i}_{k}")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            columns.push((
                floats(b, &format!("__oar_sum{i}"))?,
                ints(b, &format!("__oar_valued{i}"))?,
                floats(b, &format!("__oar_abs{i}"))?,
                tops,
            ));
        }
        for row in 0..b.num_rows() {
            let Some(c) = slot(&cells, row) else { continue };
            stats.units[c] = units[row].unwrap_or(0);
            for (i, (sums, valued, abs, tops)) in columns.iter().enumerate() {
                stats.sums[i][c] = finite_or_zero(sums[row]);
                stats.valued[i][c] = valued[row].unwrap_or(0);
                let top: Vec<f64> = tops.iter().filter_map(|t| t[row]).collect();
                stats.dominance[i][c] = (top, finite_or_zero(abs[row]));
            }
        }
    }
    for (i, batches) in histograms.iter().enumerate() {
        let (Some(batches), Some(bins)) = (batches, values[i].quantile_bins) else {
            continue;
        };
        for b in batches {
            let cells = cells(b, plan)?;
            let bin = ints(b, "__oar_bin")?;
            let count = ints(b, "__oar_n")?;
            for row in 0..b.num_rows() {
                let (Some(c), Some(k)) = (slot(&cells, row), bin[row]) else {
                    continue;
                };
                let k = usize::try_from(k).map_err(|_| Unexpected)?;
                if k >= bins {
                    return Err(Unexpected);
                }
                stats.histograms[i][c * bins + k] += count[row].unwrap_or(0);
            }
        }
    }
    Ok(stats)
}
