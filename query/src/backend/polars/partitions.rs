//! Finishing a count-only plan on partitions instead of rows.
//!
//! After a plan's last per-unit step (partition keys: the unit and its `by`), every row of a
//! partition carries the same step value. If everything that follows (filters, derived columns,
//! the group-by keys) reads only columns that are the same on every row of a partition (the
//! unit, the `by` keys, the per-unit values of this step and of earlier ones partitioned by a
//! subset of those keys), then a partition's rows all fall in the same cell or all drop, and the
//! (unit, cell) pairs a count needs are those of the partitions. So the rows need not get the
//! values back: the step's table of partitions is the frame the rest of the plan runs on, and
//! earlier per-unit values are joined onto it (not onto every row).
//!
//! That table lists only partitions with a row the step reduces. The others would get the
//! reduction of nothing, so the step must be one whose reduction of nothing is null (`mode`,
//! `min`, `max`, `mean`), and a null value must drop the partition: a key or a filter after the
//! step that is null whenever the value is (see [`null_with`]).
//!
//! For the origin-destination release this removes a join of every row with each subscriber's
//! home, a join of every row with each subscriber-day's destination, and a distinct count over
//! the rows. `tests/backends.rs` checks such plans, and the shapes that must keep the row path,
//! against the reference executor.

use super::per_unit::{self, PerUnitInput};
use crate::checked::CheckedExpr;
use crate::{CheckedPlan, CheckedStep};
use oar_guest::plan::Reduce;
use polars::prelude::*;
use std::collections::HashSet;

/// How a plan is finished on partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Collapse {
    /// The index of the last per-unit step: steps after it run on partitions.
    pub last: usize,
    /// Earlier per-unit steps, whose values are joined onto the partitions, not the rows.
    pub deferred: Vec<usize>,
    /// Whether each partition is a distinct (unit, cell) pair and no unit has more cells than
    /// the bound: every key of the last step is a group-by key with a public domain, and those
    /// domains have at most `max_groups_per_unit` combinations. Then the pairs need neither a
    /// distinct count nor a cut.
    pub distinct_pairs: bool,
}

/// Whether and how `plan` is finished on partitions (see the module's text).
pub(super) fn collapse(plan: &CheckedPlan) -> Option<Collapse> {
    if !plan.values().is_empty() {
        return None;
    }
    let steps = plan.steps();
    let last = steps
        .iter()
        .rposition(|s| matches!(s, CheckedStep::PerUnit { .. }))?;
    let final_step = PerUnitInput::of(&steps[last])?;
    let null_when_empty = matches!(
        final_step.reduce,
        Reduce::Mode | Reduce::Min | Reduce::Max | Reduce::Mean
    );
    let unit = plan.unit();
    if !null_when_empty
        || plan.plan.key_selection
        || final_step.name == unit
        || final_step.by.iter().any(|k| k == final_step.name)
    {
        return None;
    }
    let by: &[String] = final_step.by;
    let mut available: HashSet<&str> = HashSet::new();
    available.insert(unit);
    available.extend(by.iter().map(String::as_str));
    let mut deferred = Vec::new();
    for (j, step) in steps[..last].iter().enumerate() {
        let Some(earlier) = PerUnitInput::of(step) else {
            continue;
        };
        // Its value is the same on every row of a partition only if its keys are among the
        // final step's, and it can wait for the partitions only if nothing before them reads
        // it, and neither it nor its keys are written again.
        let fixed: Vec<&str> = [earlier.name, unit]
            .into_iter()
            .chain(earlier.by.iter().map(String::as_str))
            .chain(by.iter().map(String::as_str))
            .collect();
        let keys_within = earlier.by.iter().all(|k| by.contains(k));
        let untouched = steps[j + 1..=last]
            .iter()
            .all(|s| !reads(s, earlier.name) && !writes(s).is_some_and(|w| fixed.contains(&w)));
        if !keys_within || !untouched || fixed[1..].contains(&earlier.name) {
            return None;
        }
        deferred.push(j);
        available.insert(earlier.name);
    }
    available.insert(final_step.name);
    // Columns that are null whenever the step's value is, and whether a null value drops.
    let mut null_with_value: HashSet<&str> = HashSet::from([final_step.name]);
    let mut drops = false;
    for step in &steps[last + 1..] {
        match step {
            CheckedStep::Filter(p) if reads_only(p, &available) => {
                drops |= null_with(p, &null_with_value);
            }
            CheckedStep::Derive { name, expr } if reads_only(expr, &available) => {
                available.insert(name);
                if null_with(expr, &null_with_value) {
                    null_with_value.insert(name);
                } else {
                    null_with_value.remove(name.as_str());
                }
            }
            _ => return None,
        }
    }
    // A null key is outside its public domain: the row is in no cell.
    drops |= plan
        .keys
        .iter()
        .any(|k| null_with_value.contains(k.name.as_str()));
    let keys_available = plan
        .keys
        .iter()
        .all(|k| available.contains(k.name.as_str()));
    let rewritten: HashSet<&str> = steps[last + 1..].iter().filter_map(writes).collect();
    let mut combinations: u64 = 1;
    let mut keyed = !rewritten.contains(unit);
    for k in by {
        match plan.keys.iter().find(|key| key.name == *k) {
            Some(key) if key.index.is_some() && !rewritten.contains(k.as_str()) => {
                combinations = combinations.saturating_mul(key.domain.len() as u64);
            }
            _ => keyed = false,
        }
    }
    let distinct_pairs =
        keyed && (!plan.truncate() || combinations <= u64::from(plan.max_groups_per_unit));
    (drops && keys_available).then_some(Collapse {
        last,
        deferred,
        distinct_pairs,
    })
}

/// The rows at the last per-unit step -> one row per partition with a reduced row: its keys
/// and the step's value.
pub(super) fn partitions(rows: LazyFrame, unit: &str, step: &PerUnitInput<'_>) -> LazyFrame {
    let (_, table) = per_unit::reduced(rows, unit, step);
    let mut columns = step.keys(unit);
    columns.push(col(per_unit::OUT).alias(step.name));
    table.select(columns)
}

/// Whether `step` reads column `name`.
fn reads(step: &CheckedStep, name: &str) -> bool {
    let mut read = Vec::new();
    match step {
        CheckedStep::Filter(p) => p.columns(&mut read),
        CheckedStep::Derive { expr, .. } => expr.columns(&mut read),
        CheckedStep::PerUnit {
            input, rows, by, ..
        } => {
            input.columns(&mut read);
            if let Some(p) = rows {
                p.columns(&mut read);
            }
            read.extend(by.iter().map(String::as_str));
        }
    }
    read.contains(&name)
}

/// The column `step` writes, if any.
fn writes(step: &CheckedStep) -> Option<&str> {
    match step {
        CheckedStep::Filter(_) => None,
        CheckedStep::Derive { name, .. } | CheckedStep::PerUnit { name, .. } => Some(name),
    }
}

/// Whether `e` is null whenever every column in `null` is (then a filter on it drops the row, and
/// a key of it is outside its domain). Comparisons, arithmetic, negation, dates, hours and bins
/// of a null are null; `and` and `or` only if both sides are (`false and null` is false); a set
/// membership is not taken to be.
fn null_with(e: &CheckedExpr, null: &HashSet<&str>) -> bool {
    match e {
        CheckedExpr::Column { name, .. } => null.contains(name.as_str()),
        CheckedExpr::Literal(_)
        | CheckedExpr::DateConst(_)
        | CheckedExpr::DatetimeConst(_)
        | CheckedExpr::IsIn { .. } => false,
        CheckedExpr::Compare { left, right, .. } | CheckedExpr::Arith { left, right, .. } => {
            null_with(left, null) || null_with(right, null)
        }
        CheckedExpr::And(left, right) | CheckedExpr::Or(left, right) => {
            null_with(left, null) && null_with(right, null)
        }
        CheckedExpr::Not(x)
        | CheckedExpr::Hour(x)
        | CheckedExpr::HalfHour(x)
        | CheckedExpr::ToDate { expr: x, .. }
        | CheckedExpr::Bin { expr: x, .. } => null_with(x, null),
    }
}

fn reads_only(e: &CheckedExpr, available: &HashSet<&str>) -> bool {
    let mut read = Vec::new();
    e.columns(&mut read);
    read.iter().all(|c| available.contains(c))
}
