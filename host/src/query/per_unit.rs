//! Lowering the per-unit stage ([`Step::PerUnit`](oar_guest::plan::Step::PerUnit)): a window
//! over the privacy unit (and optional further keys) that reduces each unit's rows to one value
//! and gives it back to every row of the unit.
//!
//! The value of a unit depends on that unit's rows alone, so adding or removing one unit changes
//! only its own rows; the aggregation that follows bounds each unit's contribution exactly as for
//! any other column.

use super::expr::{lower, Info, LowerCtx};
use super::QueryError;
use oar_guest::plan::{Expr as PExpr, Reduce};
use oar_guest::schema::ColumnType;
use polars::prelude::*;
use std::collections::HashMap;

/// The parts of one per-unit step.
pub(crate) struct PerUnitStep<'a> {
    pub name: &'a str,
    pub reduce: Reduce,
    pub expr: &'a PExpr,
    pub rows: Option<&'a PExpr>,
    pub by: &'a [String],
}

/// The window expression computing `step` on every row, and what is known about its values.
pub(crate) fn lower_per_unit(
    step: &PerUnitStep<'_>,
    env: &HashMap<String, Info>,
    ctx: &LowerCtx<'_>,
    read: &mut Vec<String>,
) -> Result<(Expr, Info), QueryError> {
    let (input, info) = lower(step.expr, env, ctx, read)?;
    let input = match step.rows {
        Some(predicate) => {
            let (p, p_info) = lower(predicate, env, ctx, read)?;
            if p_info.ty != ColumnType::Bool {
                return Err(QueryError::Type(format!(
                    "per-unit '{}': the row filter must be boolean, got {:?}",
                    step.name, p_info.ty
                )));
            }
            input.filter(p)
        }
        None => input,
    };
    let numeric = |what: &str| {
        if info.ty.is_numeric() {
            Ok(())
        } else {
            Err(QueryError::Type(format!(
                "per-unit '{}': {what} needs a number, got {:?}",
                step.name, info.ty
            )))
        }
    };
    let boolean = |what: &str| {
        if info.ty == ColumnType::Bool {
            Ok(())
        } else {
            Err(QueryError::Type(format!(
                "per-unit '{}': {what} needs a boolean, got {:?}",
                step.name, info.ty
            )))
        }
    };
    let (reduced, out) = match step.reduce {
        // Ties go to the smallest value, so the result does not depend on row order.
        Reduce::Mode => (
            input.mode().sort(SortOptions::default()).first(),
            info.clone(),
        ),
        Reduce::Min => (input.min(), info.clone()),
        Reduce::Max => (input.max(), info.clone()),
        Reduce::Mean => {
            numeric("mean")?;
            (
                super::expr::finite_or_null(input.cast(DataType::Float64).mean()),
                Info {
                    bounds: info.bounds,
                    ..Info::plain(ColumnType::Float)
                },
            )
        }
        Reduce::Sum => {
            numeric("sum")?;
            (
                super::expr::finite_or_null(input.cast(DataType::Float64).sum()),
                Info::plain(ColumnType::Float),
            )
        }
        Reduce::Count => (
            input.count().cast(DataType::Int64),
            Info::plain(ColumnType::Int),
        ),
        Reduce::CountDistinct => (
            input.drop_nulls().n_unique().cast(DataType::Int64),
            Info::plain(ColumnType::Int),
        ),
        Reduce::Any => {
            boolean("any")?;
            (input.any(true), info.clone())
        }
        Reduce::All => {
            boolean("all")?;
            (input.all(true), info.clone())
        }
    };
    let mut partition = vec![col(ctx.unit)];
    for k in step.by {
        // Lowering the key checks it exists and is not the privacy unit.
        let (_, key_info) = lower(&oar_guest::col(k), env, ctx, read)?;
        if matches!(key_info.ty, ColumnType::Float) {
            return Err(QueryError::Type(format!(
                "per-unit '{}': cannot reduce within '{k}', a float column (use a key such as a date, an hour or a bin)",
                step.name
            )));
        }
        partition.push(col(k.as_str()));
    }
    Ok((reduced.over(partition), out))
}
