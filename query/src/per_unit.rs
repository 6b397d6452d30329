//! Checking the per-unit stage ([`Step::PerUnit`](oar_guest::plan::Step::PerUnit)): a window
//! over the privacy unit (and optional further keys) that reduces each unit's rows to one value
//! and gives it back to every row of the unit.
//!
//! The value of a unit depends on that unit's rows alone, so adding or removing one unit changes
//! only its own rows; the aggregation that follows bounds each unit's contribution exactly as for
//! any other column.

use super::checked::{check_expr, CheckCtx, CheckedExpr, Info};
use super::{CheckedStep, QueryError};
use oar_guest::plan::{Expr as PExpr, Reduce};
use oar_guest::schema::ColumnType;
use std::collections::HashMap;

/// The parts of one per-unit step.
pub(crate) struct PerUnitStep<'a> {
    pub name: &'a str,
    pub reduce: Reduce,
    pub expr: &'a PExpr,
    pub rows: Option<&'a PExpr>,
    pub by: &'a [String],
}

/// The checked step, and what is known about its values.
///
/// Semantics every backend follows, per partition (the unit and the `by` keys, a null key being
/// a key of its own), over the partition's rows where `rows` holds (all rows without it):
/// `mode` is the most frequent value, ties and nulls going to the smallest (null sorts first);
/// `min`/`max` ignore nulls (null if none); `mean` and `sum` are in floats, ignore nulls, and are
/// null if not finite (`sum` of no values is 0, `mean` of none null); `count` counts non-null
/// values; `count_distinct` counts distinct non-null values; `any` is true if some value is true,
/// `all` if none is false. Every row of the partition gets the value.
pub(crate) fn check_per_unit(
    step: &PerUnitStep<'_>,
    env: &HashMap<String, Info>,
    ctx: &CheckCtx<'_>,
    read: &mut Vec<String>,
) -> Result<(CheckedStep, Info), QueryError> {
    let (input, info) = check_expr(step.expr, env, ctx, read)?;
    let rows: Option<CheckedExpr> = match step.rows {
        Some(predicate) => {
            let (p, p_info) = check_expr(predicate, env, ctx, read)?;
            if p_info.ty != ColumnType::Bool {
                return Err(QueryError::Type(format!(
                    "per-unit '{}': the row filter must be boolean, got {:?}",
                    step.name, p_info.ty
                )));
            }
            Some(p)
        }
        None => None,
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
    let out = match step.reduce {
        Reduce::Mode | Reduce::Min | Reduce::Max => info.clone(),
        Reduce::Mean => {
            numeric("mean")?;
            Info {
                bounds: info.bounds,
                ..Info::plain(ColumnType::Float)
            }
        }
        Reduce::Sum => {
            numeric("sum")?;
            Info::plain(ColumnType::Float)
        }
        Reduce::Count | Reduce::CountDistinct => Info::plain(ColumnType::Int),
        Reduce::Any => {
            boolean("any")?;
            info.clone()
        }
        Reduce::All => {
            boolean("all")?;
            info.clone()
        }
    };
    for k in step.by {
        // Checking the key checks it exists and is not the privacy unit.
        let (_, key_info) = check_expr(&oar_guest::col(k), env, ctx, read)?;
        if matches!(key_info.ty, ColumnType::Float) {
            return Err(QueryError::Type(format!(
                "per-unit '{}': cannot reduce within '{k}', a float column (use a key such as a date, an hour or a bin)",
                step.name
            )));
        }
    }
    Ok((
        CheckedStep::PerUnit {
            name: step.name.to_string(),
            reduce: step.reduce,
            input,
            input_ty: info.ty,
            rows,
            by: step.by.to_vec(),
        },
        out,
    ))
}
