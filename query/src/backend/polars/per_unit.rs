//! The per-unit stage ([`CheckedStep::PerUnit`]): each partition's reduction as a table, given
//! back to every row of the partition (or, see [`super::partitions`], to each partition).

use super::{dtype_of, finite_or_null, lower};
use crate::checked::CheckedExpr;
use crate::CheckedStep;
use oar_guest::plan::Reduce;
use oar_guest::ColumnType;
use polars::prelude::*;

const IN: &str = "__per_unit_in";
const KEEP: &str = "__per_unit_keep";
pub(super) const OUT: &str = "__per_unit_out";
const PRESENT: &str = "__per_unit_present";

/// One per-unit step's parts (see [`CheckedStep::PerUnit`]).
pub(super) struct PerUnitInput<'a> {
    pub name: &'a str,
    pub reduce: Reduce,
    pub input: &'a CheckedExpr,
    pub input_ty: ColumnType,
    pub rows: Option<&'a CheckedExpr>,
    pub by: &'a [String],
}

impl<'a> PerUnitInput<'a> {
    /// The parts of `step`, if it is a per-unit step.
    pub fn of(step: &'a CheckedStep) -> Option<Self> {
        match step {
            CheckedStep::PerUnit {
                name,
                reduce,
                input,
                input_ty,
                rows,
                by,
            } => Some(PerUnitInput {
                name,
                reduce: *reduce,
                input,
                input_ty: *input_ty,
                rows: rows.as_ref(),
                by,
            }),
            _ => None,
        }
    }

    /// The partition keys: the unit, then `by`.
    pub fn keys(&self, unit: &str) -> Vec<Expr> {
        let mut keys = vec![col(unit)];
        keys.extend(self.by.iter().map(|k| col(k.as_str())));
        keys
    }
}

/// The per-unit stage: `reduce` of `input` over the rows where `rows` holds, per unit and
/// `by`, given back to every row of the partition as column `name`.
///
/// A group-by on (unit, by) joined back null-safely (a null unit or key is a partition of its
/// own), not a window: Polars evaluates a window's `mode` group by group, which took 31 s on
/// 1M rows and 100k units (`oar bench --scale`). Partitions with no row where `rows` holds get
/// the reduction of nothing: null, or 0 for sums and counts, false for `any`, true for `all`.
pub(super) fn per_unit(lf: LazyFrame, unit: &str, step: &PerUnitInput<'_>) -> LazyFrame {
    let (base, table) = reduced(lf, unit, step);
    let mut drop = vec![IN];
    if step.rows.is_some() {
        drop.push(KEEP);
    }
    join_reduced(base, table, unit, step).drop(cols(drop))
}

/// The rows with the step's input (and row filter) as columns, and the table of each
/// partition with a kept row: its keys, its value and a marker of presence.
pub(super) fn reduced(
    lf: LazyFrame,
    unit: &str,
    step: &PerUnitInput<'_>,
) -> (LazyFrame, LazyFrame) {
    let PerUnitInput {
        reduce,
        input,
        input_ty,
        rows,
        ..
    } = *step;
    let keys = step.keys(unit);
    // A constant becomes a value on every row here, so a sum adds it once per row.
    let mut base = lf.with_column(lower(input).alias(IN));
    let mut source = base.clone();
    if let Some(p) = rows {
        base = base.with_column(lower(p).alias(KEEP));
        source = base.clone().filter(col(KEEP));
    }
    let value = col(IN);
    let table = match reduce {
        Reduce::Mode => {
            // Count each value (a null too), keep the most frequent; ties go to the smallest,
            // a null first, so the result does not depend on row order. All in vectorised
            // group-bys and one join: a tie-break evaluated group by group (filter, sort,
            // first) took 22 s at 10M rows.
            let mut with_value = keys.clone();
            with_value.push(col(IN));
            let counted = source
                .group_by(with_value)
                .agg([len().alias("__per_unit_n")])
                .cache();
            let top = counted
                .clone()
                .group_by(keys.clone())
                .agg([col("__per_unit_n").max().alias("__per_unit_top")]);
            let mut on = keys.clone();
            on.push(col("__per_unit_n"));
            let mut top_on = keys.clone();
            top_on.push(col("__per_unit_top"));
            let mut inner = JoinArgs::new(JoinType::Inner);
            inner.nulls_equal = true;
            counted
                .join(top, on, top_on, inner)
                .group_by(keys.clone())
                .agg([
                    col(IN).min().alias("__per_unit_min"),
                    col(IN).null_count().alias("__per_unit_nulls"),
                ])
                .with_column(
                    when(col("__per_unit_nulls").eq(lit(0u32)))
                        .then(col("__per_unit_min"))
                        .otherwise(lit(NULL).cast(dtype_of(input_ty)))
                        .alias(OUT),
                )
                .select(keys.iter().cloned().chain([col(OUT)]).collect::<Vec<_>>())
        }
        _ => {
            let agg = match reduce {
                Reduce::Min => value.min(),
                Reduce::Max => value.max(),
                Reduce::Mean => finite_or_null(value.cast(DataType::Float64).mean()),
                Reduce::Sum => finite_or_null(value.cast(DataType::Float64).sum()),
                Reduce::Count => value.count().cast(DataType::Int64),
                Reduce::CountDistinct => value.drop_nulls().n_unique().cast(DataType::Int64),
                Reduce::Any => value.any(true),
                Reduce::All => value.all(true),
                Reduce::Mode => unreachable!("handled above"),
            };
            source.group_by(keys.clone()).agg([agg.alias(OUT)])
        }
    }
    .with_column(lit(true).alias(PRESENT))
    .cache();
    (base, table)
}

/// `target` (rows, or partitions with the step's keys) with the step's value as column `name`,
/// from `table` (see [`reduced`]); a partition missing from `table` gets the reduction of
/// nothing.
pub(super) fn join_reduced(
    target: LazyFrame,
    table: LazyFrame,
    unit: &str,
    step: &PerUnitInput<'_>,
) -> LazyFrame {
    let keys = step.keys(unit);
    // A partition missing from the join reduced nothing (the left join leaves it null).
    let empty = match step.reduce {
        Reduce::Sum => Some(lit(0.0)),
        Reduce::Count | Reduce::CountDistinct => Some(lit(0i64)),
        Reduce::Any => Some(lit(false)),
        Reduce::All => Some(lit(true)),
        Reduce::Mode | Reduce::Min | Reduce::Max | Reduce::Mean => None,
    };
    let out = match empty {
        Some(empty) => when(col(PRESENT).is_null()).then(empty).otherwise(col(OUT)),
        None => col(OUT),
    };
    let mut join = JoinArgs::new(JoinType::Left);
    join.nulls_equal = true;
    join.maintain_order = MaintainOrderJoin::Left;
    target
        .join(table, keys.clone(), keys, join)
        .with_column(out.alias(step.name))
        .drop(cols([OUT, PRESENT]))
}
