//! The reference backend: a checked plan interpreted row by row in plain Rust, in memory.
//!
//! It is written to be read, not to be fast: every rule of the query semantics (nulls, Kleene
//! logic, wrapping integers, the per-unit windows, contribution bounding, the per-cell figures)
//! is a few lines here. Other backends are checked against it on random plans
//! (`tests/backends.rs`). Polars only reads the files (the declared columns, as their declared
//! types); it computes nothing.

use super::{BackendError, QueryBackend};
use crate::checked::CheckedExpr;
use crate::dataset::Dataset;
use crate::{
    CellStats, CheckedPlan, CheckedStep, KeyIndex, UnitValue, ValueInput, BIN_SNAP, DOMINANCE_TOP,
};
use chrono::{NaiveDate, NaiveDateTime};
use oar_guest::plan::{ArithOp, CompareOp, Reduce};
use oar_guest::{ColumnType, Value};
use polars::prelude::PolarsError;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// Interprets checked plans row by row (slow; for checking other backends).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceBackend;

impl QueryBackend for ReferenceBackend {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn execute(
        &self,
        plan: &CheckedPlan,
        dataset: &Dataset,
        deadline: Option<Instant>,
    ) -> Result<CellStats, BackendError> {
        let (mut names, mut rows) = read(plan, dataset)
            .map_err(|e| BackendError::Failed(super::polars::polars_error_kind(&e)))?;
        let past = || deadline.is_some_and(|d| Instant::now() >= d);
        for step in plan.steps() {
            if past() {
                return Err(BackendError::Deadline);
            }
            apply(step, plan.unit(), &mut names, &mut rows);
        }
        Ok(aggregate(plan, &names, &rows))
    }
}

/// A non-null value. Dates are days since 1970-01-01, datetimes microseconds since then.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Date(i32),
    Datetime(i64),
}

/// A row: one optional value per column slot; slot 0 is the unit (as text).
type Row = Vec<Option<V>>;

const DAY_US: i64 = 86_400_000_000;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

fn datetime_us(dt: &NaiveDateTime) -> i64 {
    dt.and_utc().timestamp_micros()
}

/// Reads the unit and the columns the plan reads, as their declared types.
fn read(plan: &CheckedPlan, dataset: &Dataset) -> Result<(Vec<String>, Vec<Row>), PolarsError> {
    use polars::prelude::*;
    let schema = dataset.schema();
    let names = plan.scan_columns();
    let df = dataset
        .scan()?
        .select(names.iter().map(|n| col(n.as_str())).collect::<Vec<_>>())
        .collect()?;
    let mut rows: Vec<Row> = vec![vec![None; names.len()]; df.height()];
    for (slot, name) in names.iter().enumerate() {
        let column = df.column(name)?.as_materialized_series().clone();
        if slot == 0 {
            let text = column.cast(&DataType::String)?;
            for (row, v) in text.str()?.into_iter().enumerate() {
                rows[row][slot] = v.map(|s| V::Str(s.to_string()));
            }
            continue;
        }
        let ty = schema
            .column(name)
            .map(|c| c.dtype)
            .ok_or_else(|| PolarsError::ColumnNotFound(name.clone().into()))?;
        let values: Vec<Option<V>> = match ty {
            ColumnType::Bool => column.bool()?.into_iter().map(|v| v.map(V::Bool)).collect(),
            ColumnType::Int => column
                .cast(&DataType::Int64)?
                .i64()?
                .into_iter()
                .map(|v| v.map(V::Int))
                .collect(),
            ColumnType::Float => column
                .cast(&DataType::Float64)?
                .f64()?
                .into_iter()
                .map(|v| v.map(V::Float))
                .collect(),
            ColumnType::Str => column
                .cast(&DataType::String)?
                .str()?
                .into_iter()
                .map(|v| v.map(|s| V::Str(s.to_string())))
                .collect(),
            ColumnType::Date => column
                .cast(&DataType::Int32)?
                .i32()?
                .into_iter()
                .map(|v| v.map(V::Date))
                .collect(),
            ColumnType::Datetime => column
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
                .cast(&DataType::Int64)?
                .i64()?
                .into_iter()
                .map(|v| v.map(V::Datetime))
                .collect(),
        };
        for (row, v) in values.into_iter().enumerate() {
            rows[row][slot] = v;
        }
    }
    Ok((names, rows))
}

fn slot_of(names: &mut Vec<String>, rows: &mut [Row], name: &str) -> usize {
    match names.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            names.push(name.to_string());
            for r in rows.iter_mut() {
                r.push(None);
            }
            names.len() - 1
        }
    }
}

fn apply(step: &CheckedStep, unit: &str, names: &mut Vec<String>, rows: &mut Vec<Row>) {
    match step {
        CheckedStep::Filter(p) => {
            let n: &[String] = names;
            rows.retain(|r| eval(p, n, r) == Some(V::Bool(true)));
        }
        CheckedStep::Derive { name, expr } => {
            let values: Vec<Option<V>> = rows.iter().map(|r| eval(expr, names, r)).collect();
            let slot = slot_of(names, rows, name);
            for (r, v) in rows.iter_mut().zip(values) {
                r[slot] = v;
            }
        }
        CheckedStep::PerUnit {
            name,
            reduce,
            input,
            rows: only,
            by,
            ..
        } => {
            debug_assert_eq!(names[0], unit);
            let key_slots: Vec<usize> = by
                .iter()
                .map(|k| names.iter().position(|n| n == k).expect("checked key"))
                .collect();
            let partition = |r: &Row| -> Vec<HashKey> {
                std::iter::once(0)
                    .chain(key_slots.iter().copied())
                    .map(|s| HashKey::of(&r[s]))
                    .collect()
            };
            let mut inputs: HashMap<Vec<HashKey>, Vec<Option<V>>> = HashMap::new();
            for r in rows.iter() {
                let entry = inputs.entry(partition(r)).or_default();
                let kept = only
                    .as_ref()
                    .is_none_or(|p| eval(p, names, r) == Some(V::Bool(true)));
                if kept {
                    entry.push(eval(input, names, r));
                }
            }
            let reduced: HashMap<Vec<HashKey>, Option<V>> = inputs
                .into_iter()
                .map(|(k, vs)| (k, reduce_values(*reduce, vs)))
                .collect();
            let values: Vec<Option<V>> = rows
                .iter()
                .map(|r| reduced[&partition(r)].clone())
                .collect();
            let slot = slot_of(names, rows, name);
            for (r, v) in rows.iter_mut().zip(values) {
                r[slot] = v;
            }
        }
    }
}

/// A value as a hash key (floats by their bits; never used for keys, which are not floats).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum HashKey {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
    Date(i32),
    Datetime(i64),
}

impl HashKey {
    fn of(v: &Option<V>) -> HashKey {
        match v {
            None => HashKey::Null,
            Some(V::Bool(b)) => HashKey::Bool(*b),
            Some(V::Int(i)) => HashKey::Int(*i),
            Some(V::Float(x)) => HashKey::Float(x.to_bits()),
            Some(V::Str(s)) => HashKey::Str(s.clone()),
            Some(V::Date(d)) => HashKey::Date(*d),
            Some(V::Datetime(t)) => HashKey::Datetime(*t),
        }
    }
}

fn as_f64(v: &V) -> Option<f64> {
    match v {
        V::Int(i) => Some(*i as f64),
        V::Float(x) => Some(*x),
        _ => None,
    }
}

fn finite(x: f64) -> Option<V> {
    x.is_finite().then_some(V::Float(x))
}

/// Orders two non-null values of one type (numbers across int and float).
fn order(a: &V, b: &V) -> Option<Ordering> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Str(x), V::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Date(x), V::Date(y)) => Some(x.cmp(y)),
        (V::Datetime(x), V::Datetime(y)) => Some(x.cmp(y)),
        _ => as_f64(a)?.partial_cmp(&as_f64(b)?),
    }
}

fn reduce_values(reduce: Reduce, vs: Vec<Option<V>>) -> Option<V> {
    let present = || vs.iter().flatten();
    match reduce {
        Reduce::Mode => {
            // The most frequent value, a null counting as a value; ties go to the smallest
            // (null first).
            let mut counts: Vec<(Option<V>, usize)> = Vec::new();
            for v in &vs {
                match counts.iter_mut().find(|(c, _)| c == v) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((v.clone(), 1)),
                }
            }
            let top = counts.iter().map(|(_, n)| *n).max()?;
            counts
                .into_iter()
                .filter(|(_, n)| *n == top)
                .map(|(v, _)| v)
                .min_by(|a, b| match (a, b) {
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Less,
                    (_, None) => Ordering::Greater,
                    (Some(a), Some(b)) => order(a, b).unwrap_or(Ordering::Equal),
                })?
        }
        Reduce::Min => present()
            .min_by(|a, b| order(a, b).unwrap_or(Ordering::Equal))
            .cloned(),
        Reduce::Max => present()
            .max_by(|a, b| order(a, b).unwrap_or(Ordering::Equal))
            .cloned(),
        Reduce::Mean => {
            let xs: Vec<f64> = present().filter_map(as_f64).collect();
            if xs.is_empty() {
                return None;
            }
            finite(xs.iter().sum::<f64>() / xs.len() as f64)
        }
        Reduce::Sum => finite(present().filter_map(as_f64).sum()),
        Reduce::Count => Some(V::Int(present().count() as i64)),
        Reduce::CountDistinct => {
            let distinct: HashSet<HashKey> =
                present().map(|v| HashKey::of(&Some(v.clone()))).collect();
            Some(V::Int(distinct.len() as i64))
        }
        Reduce::Any => Some(V::Bool(present().any(|v| *v == V::Bool(true)))),
        Reduce::All => Some(V::Bool(!present().any(|v| *v == V::Bool(false)))),
    }
}

fn eval(e: &CheckedExpr, names: &[String], row: &Row) -> Option<V> {
    let ev = |x: &CheckedExpr| eval(x, names, row);
    match e {
        CheckedExpr::Column { name, ty } => {
            let slot = names.iter().position(|n| n == name)?;
            let v = row[slot].clone()?;
            match (ty, v) {
                (ColumnType::Float, v) => finite(as_f64(&v)?),
                (_, v) => Some(v),
            }
        }
        CheckedExpr::Literal(v) => Some(match v {
            Value::Bool(b) => V::Bool(*b),
            Value::Int(i) => V::Int(*i),
            Value::Float(x) => V::Float(*x),
            Value::Str(s) => V::Str(s.clone()),
        }),
        CheckedExpr::DateConst(d) => Some(V::Date((*d - epoch()).num_days() as i32)),
        CheckedExpr::DatetimeConst(dt) => Some(V::Datetime(datetime_us(dt))),
        CheckedExpr::Compare { op, left, right } => {
            let o = order(&ev(left)?, &ev(right)?)?;
            Some(V::Bool(match op {
                CompareOp::Eq => o.is_eq(),
                CompareOp::Ne => o.is_ne(),
                CompareOp::Lt => o.is_lt(),
                CompareOp::Le => o.is_le(),
                CompareOp::Gt => o.is_gt(),
                CompareOp::Ge => o.is_ge(),
            }))
        }
        CheckedExpr::Arith {
            op,
            left,
            right,
            ty,
        } => {
            let (l, r) = (ev(left)?, ev(right)?);
            if *ty == ColumnType::Int {
                let (V::Int(l), V::Int(r)) = (l, r) else {
                    return None;
                };
                return Some(V::Int(match op {
                    ArithOp::Add => l.wrapping_add(r),
                    ArithOp::Sub => l.wrapping_sub(r),
                    ArithOp::Mul => l.wrapping_mul(r),
                    ArithOp::Div => return None,
                }));
            }
            let (l, r) = (as_f64(&l)?, as_f64(&r)?);
            finite(match op {
                ArithOp::Add => l + r,
                ArithOp::Sub => l - r,
                ArithOp::Mul => l * r,
                ArithOp::Div if r == 0.0 => return None,
                ArithOp::Div => l / r,
            })
        }
        CheckedExpr::And(l, r) => match (ev(l), ev(r)) {
            (Some(V::Bool(false)), _) | (_, Some(V::Bool(false))) => Some(V::Bool(false)),
            (Some(V::Bool(true)), Some(V::Bool(true))) => Some(V::Bool(true)),
            _ => None,
        },
        CheckedExpr::Or(l, r) => match (ev(l), ev(r)) {
            (Some(V::Bool(true)), _) | (_, Some(V::Bool(true))) => Some(V::Bool(true)),
            (Some(V::Bool(false)), Some(V::Bool(false))) => Some(V::Bool(false)),
            _ => None,
        },
        CheckedExpr::Not(x) => match ev(x)? {
            V::Bool(b) => Some(V::Bool(!b)),
            _ => None,
        },
        CheckedExpr::IsIn { expr, values, .. } => {
            let v = ev(expr)?;
            let hit = values.iter().any(|c| match (c, &v) {
                (Value::Str(s), V::Str(t)) => s == t,
                (Value::Int(i), V::Int(j)) => i == j,
                (Value::Float(x), v) => as_f64(v) == Some(*x),
                (Value::Bool(a), V::Bool(b)) => a == b,
                _ => false,
            });
            Some(V::Bool(hit))
        }
        CheckedExpr::ToDate { expr, .. } => match ev(expr)? {
            V::Datetime(t) => Some(V::Date(t.div_euclid(DAY_US) as i32)),
            d @ V::Date(_) => Some(d),
            _ => None,
        },
        CheckedExpr::Hour(x) | CheckedExpr::HalfHour(x) => {
            let V::Datetime(t) = ev(x)? else { return None };
            let of_day = t.rem_euclid(DAY_US) / 1_000_000;
            let (hour, minute) = (of_day / 3600, of_day % 3600 / 60);
            Some(V::Int(if matches!(e, CheckedExpr::Hour(_)) {
                hour
            } else {
                hour * 2 + i64::from(minute >= 30)
            }))
        }
        CheckedExpr::Bin {
            expr,
            edges,
            labels,
        } => {
            let x = as_f64(&ev(expr)?)?;
            let last = labels.len() - 1;
            (0..labels.len())
                .find(|&i| x >= edges[i] && (x < edges[i + 1] || (i == last && x <= edges[i + 1])))
                .map(|i| V::Str(labels[i].clone()))
        }
    }
}

/// A key value's position in its public domain, if it is in it.
fn position(index: &KeyIndex, v: &V) -> Option<usize> {
    let in_range =
        |offset: i64, len: usize| (0..len as i64).contains(&offset).then_some(offset as usize);
    match (index, v) {
        (KeyIndex::DayOffset { start, len }, V::Date(d)) => {
            in_range(i64::from(*d) - (*start - epoch()).num_days(), *len)
        }
        (KeyIndex::IntRange { first, len }, V::Int(i)) => in_range(i.wrapping_sub(*first), *len),
        (KeyIndex::Lookup(domain, _), v) => domain.iter().position(|d| match (d, v) {
            (Value::Int(a), V::Int(b)) => a == b,
            (Value::Bool(a), V::Bool(b)) => a == b,
            (Value::Float(a), v) => as_f64(v) == Some(*a),
            (Value::Int(a), V::Float(b)) => *a as f64 == *b,
            (d, V::Str(s)) => d.key_text() == *s,
            (d, V::Date(days)) => {
                let day = epoch() + chrono::Duration::days(i64::from(*days));
                d.key_text() == day.format("%Y-%m-%d").to_string()
            }
            _ => false,
        }),
        _ => None,
    }
}

/// The text of a selected key's value in a cell code.
fn key_text(v: &V) -> Option<String> {
    match v {
        V::Int(i) => Some(i.to_string()),
        V::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// A row's cell: its public index, or with key selection its code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Cell {
    Index(usize),
    Code(String),
}

fn cell_of(plan: &CheckedPlan, names: &[String], row: &Row) -> Option<Cell> {
    let mut positions = Vec::with_capacity(plan.keys.len());
    let mut texts = Vec::with_capacity(plan.keys.len());
    for k in &plan.keys {
        let slot = names.iter().position(|n| *n == k.name)?;
        let v = row[slot].as_ref()?;
        match &k.index {
            Some(index) => {
                let p = position(index, v)?;
                positions.push(p);
                texts.push(p.to_string());
            }
            None => texts.push(key_text(v)?),
        }
    }
    Some(if plan.plan.key_selection {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Cell::Code(plan.cell_code(&texts))
    } else {
        Cell::Index(plan.cell_index(&positions))
    })
}

/// One unit's contribution to one value input in one cell.
fn contribution(input: &ValueInput, xs: &[Option<f64>]) -> Option<f64> {
    let present: Vec<f64> = xs.iter().flatten().copied().collect();
    match input.per_unit {
        UnitValue::Sum { lo, hi } => Some(present.iter().sum::<f64>().clamp(lo, hi)),
        UnitValue::Mean if present.is_empty() => None,
        UnitValue::Mean => Some(present.iter().sum::<f64>() / present.len() as f64),
    }
}

fn aggregate(plan: &CheckedPlan, names: &[String], rows: &[Row]) -> CellStats {
    let values = plan.values();
    // (unit, cell) -> per value input, the clamped row values.
    let mut records: BTreeMap<(HashKey, Cell), Vec<Vec<Option<f64>>>> = BTreeMap::new();
    for r in rows {
        let Some(cell) = cell_of(plan, names, r) else {
            continue;
        };
        let entry = records
            .entry((HashKey::of(&r[0]), cell))
            .or_insert_with(|| vec![Vec::new(); values.len()]);
        for (i, input) in values.iter().enumerate() {
            let [lo, hi] = input.bounds;
            let x = eval(&input.expr, names, r)
                .as_ref()
                .and_then(as_f64)
                .map(|x| x.clamp(lo, hi));
            entry[i].push(x);
        }
    }
    // Contribution bounding: each unit keeps its lowest cells (the map is ordered by unit, then
    // cell).
    let mut kept: Vec<(Cell, Vec<Option<f64>>)> = Vec::new();
    let mut current: Option<(HashKey, usize)> = None;
    for ((unit, cell), xs) in records {
        let n = match &mut current {
            Some((u, n)) if *u == unit => {
                *n += 1;
                *n
            }
            _ => {
                current = Some((unit, 1));
                1
            }
        };
        if plan.truncate() && n > plan.max_groups_per_unit as usize {
            continue;
        }
        let contributions = values
            .iter()
            .zip(&xs)
            .map(|(v, x)| contribution(v, x))
            .collect();
        kept.push((cell, contributions));
    }
    // Cells in release order.
    let (slot_of, observed): (HashMap<Cell, usize>, Option<Vec<Vec<Value>>>) =
        if plan.plan.key_selection {
            let mut codes: Vec<String> = kept
                .iter()
                .filter_map(|(c, _)| match c {
                    Cell::Code(s) => Some(s.clone()),
                    Cell::Index(_) => None,
                })
                .collect();
            codes.sort();
            codes.dedup();
            let refs: Vec<Option<&str>> = codes.iter().map(|c| Some(c.as_str())).collect();
            let (slots, found) = plan.order_observed(&refs);
            let map = codes
                .iter()
                .zip(slots)
                .filter_map(|(c, s)| Some((Cell::Code(c.clone()), s?)))
                .collect();
            (map, Some(found))
        } else {
            ((0..plan.cells).map(|i| (Cell::Index(i), i)).collect(), None)
        };
    let cells = observed.as_ref().map_or(plan.cells, Vec::len);
    let n = values.len();
    let mut stats = CellStats::zeros(plan, cells, observed);
    let mut contributions: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); cells]; n];
    for (cell, xs) in kept {
        let Some(&c) = slot_of.get(&cell) else {
            continue;
        };
        stats.units[c] += 1;
        for (i, x) in xs.into_iter().enumerate() {
            if let Some(x) = x {
                contributions[i][c].push(x);
            }
        }
    }
    for (i, (input, per_cell)) in values.iter().zip(&contributions).enumerate() {
        for (c, xs) in per_cell.iter().enumerate() {
            let sum: f64 = xs.iter().sum();
            stats.sums[i][c] = if sum.is_finite() { sum } else { 0.0 };
            stats.valued[i][c] = xs.len() as i64;
            let mut top: Vec<f64> = xs.iter().map(|x| x.abs()).collect();
            top.sort_by(|a, b| b.total_cmp(a));
            let total: f64 = top.iter().sum();
            top.truncate(DOMINANCE_TOP);
            stats.dominance[i][c] = (top, if total.is_finite() { total } else { 0.0 });
            if let Some(bins) = input.quantile_bins {
                let [lo, hi] = input.bounds;
                for x in xs {
                    let b = ((x - lo) / (hi - lo) * bins as f64 + BIN_SNAP)
                        .floor()
                        .clamp(0.0, (bins - 1) as f64);
                    stats.histograms[i][c * bins + b as usize] += 1;
                }
            }
        }
    }
    stats
}
