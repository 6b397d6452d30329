//! Lowering plan expressions to Polars, checking types and tracking public domains on the way.

use super::QueryError;
use chrono::NaiveDate;
use oar_guest::plan::{ArithOp, CompareOp, Expr as PExpr};
use oar_guest::schema::{ColumnSchema, ColumnType};
use oar_guest::Value;
use polars::prelude::*;
use std::collections::HashMap;

/// What is publicly known about an expression's values.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub ty: ColumnType,
    /// Public set of values, if any (makes it usable as a key).
    pub domain: Option<Vec<Value>>,
    /// Clamping bounds (numeric columns).
    pub bounds: Option<[f64; 2]>,
    /// Calendar period (dates, datetimes).
    pub period: Option<(NaiveDate, NaiveDate)>,
}

impl Info {
    pub fn of_column(c: &ColumnSchema) -> Self {
        let period = c.period.as_ref().and_then(|[a, b]| {
            Some((
                NaiveDate::parse_from_str(a, "%Y-%m-%d").ok()?,
                NaiveDate::parse_from_str(b, "%Y-%m-%d").ok()?,
            ))
        });
        let domain = match (c.dtype, &c.domain, period) {
            (_, Some(d), _) => Some(d.clone()),
            (ColumnType::Date, None, Some((a, b))) => Some(days_in_period(a, b)),
            (ColumnType::Bool, None, _) => Some(vec![Value::Bool(false), Value::Bool(true)]),
            _ => None,
        };
        Info {
            ty: c.dtype,
            domain,
            bounds: c.bounds,
            period,
        }
    }

    /// A value of type `ty` with nothing public known about it.
    pub(crate) fn plain(ty: ColumnType) -> Self {
        Info {
            ty,
            domain: None,
            bounds: None,
            period: None,
        }
    }

    fn boolean() -> Self {
        Info {
            domain: Some(vec![Value::Bool(false), Value::Bool(true)]),
            ..Info::plain(ColumnType::Bool)
        }
    }

    /// The key domain and how to map a value to its position in it.
    pub fn key_index(&self) -> Option<(Vec<Value>, KeyIndex)> {
        let domain = self.domain.clone()?;
        let index = match (self.ty, self.period) {
            (ColumnType::Date, Some((start, _)))
                if domain == days_in_period_from(start, domain.len()) =>
            {
                KeyIndex::DayOffset {
                    start,
                    len: domain.len(),
                }
            }
            (ColumnType::Int, _) if is_range(&domain) => KeyIndex::IntRange {
                first: domain[0].as_i64().unwrap_or(0),
                len: domain.len(),
            },
            _ => KeyIndex::Lookup(domain.clone(), self.ty),
        };
        Some((domain, index))
    }
}

/// Maps a key value to its position in the public domain (null if outside it).
#[derive(Debug, Clone)]
pub(crate) enum KeyIndex {
    /// Dates: days since `start`.
    DayOffset { start: NaiveDate, len: usize },
    /// Consecutive integers from `first`.
    IntRange { first: i64, len: usize },
    /// Any other domain: look the value up.
    Lookup(Vec<Value>, ColumnType),
}

impl KeyIndex {
    pub fn len(&self) -> usize {
        match self {
            KeyIndex::DayOffset { len, .. } | KeyIndex::IntRange { len, .. } => *len,
            KeyIndex::Lookup(d, _) => d.len(),
        }
    }

    /// An expression giving the position of `e`'s value in the domain, or null.
    pub fn expr(&self, e: Expr) -> Expr {
        let in_range = |offset: Expr, len: usize| {
            when(
                offset
                    .clone()
                    .gt_eq(lit(0i64))
                    .and(offset.clone().lt(lit(len as i64))),
            )
            .then(offset)
            .otherwise(lit(NULL))
        };
        match self {
            KeyIndex::DayOffset { start, len } => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                let start_days = (*start - epoch).num_days();
                in_range(
                    e.cast(DataType::Int32).cast(DataType::Int64) - lit(start_days),
                    *len,
                )
            }
            KeyIndex::IntRange { first, len } => {
                in_range(e.cast(DataType::Int64) - lit(*first), *len)
            }
            KeyIndex::Lookup(domain, ty) => {
                let positions: Vec<u32> = (0..domain.len() as u32).collect();
                let old = domain_series(domain, *ty);
                e.replace_strict(
                    lit(old),
                    lit(Series::new("new".into(), positions)),
                    Some(lit(NULL).cast(DataType::UInt32)),
                    Some(DataType::UInt32),
                )
            }
        }
    }
}

fn domain_series(domain: &[Value], ty: ColumnType) -> Series {
    let name: PlSmallStr = "old".into();
    match ty {
        ColumnType::Int => Series::new(name, domain.iter().map(|v| v.as_i64()).collect::<Vec<_>>()),
        ColumnType::Float => Series::new(
            name,
            domain
                .iter()
                .map(|v| match v {
                    Value::Float(x) => Some(*x),
                    Value::Int(i) => Some(*i as f64),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        ColumnType::Bool => Series::new(
            name,
            domain
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        _ => Series::new(
            name,
            domain.iter().map(|v| v.key_text()).collect::<Vec<_>>(),
        ),
    }
}

fn is_range(domain: &[Value]) -> bool {
    let ints: Option<Vec<i64>> = domain.iter().map(Value::as_i64).collect();
    ints.is_some_and(|v| v.windows(2).all(|w| w[1] == w[0] + 1))
}

/// The calendar days from `first` to `last` inclusive, as `YYYY-MM-DD` values.
pub(crate) fn days_in_period(first: NaiveDate, last: NaiveDate) -> Vec<Value> {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| Value::Str(d.format("%Y-%m-%d").to_string()))
        .collect()
}

fn days_in_period_from(first: NaiveDate, n: usize) -> Vec<Value> {
    first
        .iter_days()
        .take(n)
        .map(|d| Value::Str(d.format("%Y-%m-%d").to_string()))
        .collect()
}

pub(crate) struct LowerCtx<'a> {
    pub dataset: &'a str,
    pub unit: &'a str,
}

/// Lowers `e`, returning the Polars expression and what is known about its values.
pub(crate) fn lower(
    e: &PExpr,
    env: &HashMap<String, Info>,
    ctx: &LowerCtx<'_>,
    read: &mut Vec<String>,
) -> Result<(Expr, Info), QueryError> {
    Ok(match e {
        PExpr::Column { name } => {
            if name == ctx.unit {
                return Err(QueryError::PrivacyUnitReferenced(name.clone()));
            }
            let info = env.get(name).ok_or_else(|| QueryError::UnknownColumn {
                dataset: ctx.dataset.to_string(),
                column: name.clone(),
                known: {
                    let mut k: Vec<_> = env.keys().cloned().collect();
                    k.sort();
                    k.join(", ")
                },
            })?;
            if !read.contains(name) {
                read.push(name.clone());
            }
            let column = col(name.as_str());
            // Float data can hold NaN and ±inf; they read as null (missing).
            let column = if info.ty == ColumnType::Float {
                finite_or_null(column)
            } else {
                column
            };
            (column, info.clone())
        }
        PExpr::Literal { value } => {
            let (expr, ty) = match value {
                Value::Bool(b) => (lit(*b), ColumnType::Bool),
                Value::Int(i) => (lit(*i), ColumnType::Int),
                Value::Float(x) => (lit(*x), ColumnType::Float),
                Value::Str(s) => (lit(s.as_str()), ColumnType::Str),
            };
            (
                expr,
                Info {
                    domain: Some(vec![value.clone()]),
                    ..Info::plain(ty)
                },
            )
        }
        PExpr::Compare { op, left, right } => {
            let (l, li) = lower(left, env, ctx, read)?;
            let (r, ri) = lower_against(right, &li, env, ctx, read)?;
            let (l, li) = match (&**left, ri.ty) {
                (
                    PExpr::Literal {
                        value: Value::Str(_),
                    },
                    ColumnType::Date | ColumnType::Datetime,
                ) => lower_against(left, &ri, env, ctx, read)?,
                _ => (l, li),
            };
            if !comparable(li.ty, ri.ty) {
                return Err(QueryError::Type(format!(
                    "cannot compare {:?} with {:?}",
                    li.ty, ri.ty
                )));
            }
            let out = match op {
                CompareOp::Eq => l.eq(r),
                CompareOp::Ne => l.neq(r),
                CompareOp::Lt => l.lt(r),
                CompareOp::Le => l.lt_eq(r),
                CompareOp::Gt => l.gt(r),
                CompareOp::Ge => l.gt_eq(r),
            };
            (out, Info::boolean())
        }
        PExpr::Arith { op, left, right } => {
            let (l, li) = lower(left, env, ctx, read)?;
            let (r, ri) = lower(right, env, ctx, read)?;
            if !li.ty.is_numeric() || !ri.ty.is_numeric() {
                return Err(QueryError::Type(format!(
                    "arithmetic needs numbers, got {:?} and {:?}",
                    li.ty, ri.ty
                )));
            }
            let both_int = li.ty == ColumnType::Int && ri.ty == ColumnType::Int;
            let (out, ty) = match op {
                ArithOp::Add => (
                    l + r,
                    if both_int {
                        ColumnType::Int
                    } else {
                        ColumnType::Float
                    },
                ),
                ArithOp::Sub => (
                    l - r,
                    if both_int {
                        ColumnType::Int
                    } else {
                        ColumnType::Float
                    },
                ),
                ArithOp::Mul => (
                    l * r,
                    if both_int {
                        ColumnType::Int
                    } else {
                        ColumnType::Float
                    },
                ),
                ArithOp::Div => {
                    let r = r.cast(DataType::Float64);
                    (
                        when(r.clone().neq(lit(0.0)))
                            .then(l.cast(DataType::Float64) / r)
                            .otherwise(lit(NULL).cast(DataType::Float64)),
                        ColumnType::Float,
                    )
                }
            };
            // Total arithmetic: a float result that is not finite (overflow, x/0) is null.
            let out = if ty == ColumnType::Float {
                finite_or_null(out)
            } else {
                out
            };
            (out, Info::plain(ty))
        }
        PExpr::And { left, right } | PExpr::Or { left, right } => {
            let (l, li) = lower(left, env, ctx, read)?;
            let (r, ri) = lower(right, env, ctx, read)?;
            if li.ty != ColumnType::Bool || ri.ty != ColumnType::Bool {
                return Err(QueryError::Type("and/or need boolean operands".into()));
            }
            let out = if matches!(e, PExpr::And { .. }) {
                l.and(r)
            } else {
                l.or(r)
            };
            (out, Info::boolean())
        }
        PExpr::Not { expr } => {
            let (x, info) = lower(expr, env, ctx, read)?;
            if info.ty != ColumnType::Bool {
                return Err(QueryError::Type("not needs a boolean operand".into()));
            }
            (x.not(), Info::boolean())
        }
        PExpr::IsIn { expr, values } => {
            let (x, info) = lower(expr, env, ctx, read)?;
            if values.is_empty() {
                return Err(QueryError::Invalid("is_in needs at least one value".into()));
            }
            let set = match info.ty {
                ColumnType::Str | ColumnType::Int | ColumnType::Float | ColumnType::Bool => {
                    domain_series(values, info.ty)
                }
                other => {
                    return Err(QueryError::Type(format!(
                        "is_in is not supported on {other:?}"
                    )))
                }
            };
            (x.is_in(lit(set).implode(), false), Info::boolean())
        }
        PExpr::Date { expr } => {
            let (x, info) = lower(expr, env, ctx, read)?;
            let x = match info.ty {
                ColumnType::Datetime => x.dt().date(),
                ColumnType::Date => x,
                other => {
                    return Err(QueryError::Type(format!(
                        "date() needs a date or datetime, got {other:?}"
                    )))
                }
            };
            let domain = info.period.map(|(a, b)| days_in_period(a, b));
            (
                x,
                Info {
                    ty: ColumnType::Date,
                    domain,
                    bounds: None,
                    period: info.period,
                },
            )
        }
        PExpr::Hour { expr } => {
            let (x, info) = lower(expr, env, ctx, read)?;
            if info.ty != ColumnType::Datetime {
                return Err(QueryError::Type(format!(
                    "hour() needs a datetime, got {:?}",
                    info.ty
                )));
            }
            (
                x.dt().hour().cast(DataType::Int64),
                Info {
                    domain: Some((0..24).map(Value::Int).collect()),
                    bounds: Some([0.0, 23.0]),
                    ..Info::plain(ColumnType::Int)
                },
            )
        }
        PExpr::HalfHour { expr } => {
            let (x, info) = lower(expr, env, ctx, read)?;
            if info.ty != ColumnType::Datetime {
                return Err(QueryError::Type(format!(
                    "half_hour() needs a datetime, got {:?}",
                    info.ty
                )));
            }
            let slot = x.clone().dt().hour().cast(DataType::Int64) * lit(2i64)
                + x.dt()
                    .minute()
                    .cast(DataType::Int64)
                    .gt_eq(lit(30i64))
                    .cast(DataType::Int64);
            (
                slot,
                Info {
                    domain: Some((0..48).map(Value::Int).collect()),
                    bounds: Some([0.0, 47.0]),
                    ..Info::plain(ColumnType::Int)
                },
            )
        }
        PExpr::Bin { expr, edges } => {
            let (x, info) = lower(expr, env, ctx, read)?;
            if !info.ty.is_numeric() {
                return Err(QueryError::Type(format!(
                    "bin() needs a number, got {:?}",
                    info.ty
                )));
            }
            let labels = bin_labels(edges)?;
            let x = x.cast(DataType::Float64);
            // Nested when/then from the last bin down: the first matching bin wins.
            let last = labels.len() - 1;
            let mut binned = lit(NULL).cast(DataType::String);
            for (i, label) in labels.iter().enumerate().rev() {
                let (lo, hi) = (edges[i], edges[i + 1]);
                let upper = if i == last {
                    x.clone().lt_eq(lit(hi))
                } else {
                    x.clone().lt(lit(hi))
                };
                let cond = x.clone().gt_eq(lit(lo)).and(upper);
                binned = when(cond).then(lit(label.as_str())).otherwise(binned);
            }
            (
                binned,
                Info {
                    domain: Some(labels.into_iter().map(Value::Str).collect()),
                    ..Info::plain(ColumnType::Str)
                },
            )
        }
    })
}

/// `e` with NaN and ±inf replaced by null, so no float that is not a number reaches a sum, a
/// comparison or a bound (one NaN would otherwise turn a whole cell's sum into NaN).
pub(crate) fn finite_or_null(e: Expr) -> Expr {
    let e = e.cast(DataType::Float64);
    when(e.clone().is_finite())
        .then(e)
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// Most bins one `bin()` may declare.
pub(crate) const MAX_BINS: usize = 256;

/// The labels `"[lo, hi)"` of the bins between `edges` (the last is closed: `"[lo, hi]"`).
pub(crate) fn bin_labels(edges: &[f64]) -> Result<Vec<String>, QueryError> {
    if edges.len() < 2 || edges.len() > MAX_BINS + 1 {
        return Err(QueryError::Invalid(format!(
            "bin() needs between 2 and {} edges, got {}",
            MAX_BINS + 1,
            edges.len()
        )));
    }
    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(QueryError::Invalid(
            "bin() edges must be finite and strictly increasing".into(),
        ));
    }
    let n = edges.len() - 1;
    Ok((0..n)
        .map(|i| {
            let close = if i + 1 == n { ']' } else { ')' };
            format!("[{}, {}{close}", edges[i], edges[i + 1])
        })
        .collect())
}

/// Lowers `e`; a string literal compared with a date or datetime becomes a typed constant.
fn lower_against(
    e: &PExpr,
    other: &Info,
    env: &HashMap<String, Info>,
    ctx: &LowerCtx<'_>,
    read: &mut Vec<String>,
) -> Result<(Expr, Info), QueryError> {
    if let (
        PExpr::Literal {
            value: Value::Str(s),
        },
        ColumnType::Date | ColumnType::Datetime,
    ) = (e, other.ty)
    {
        let bad = || {
            QueryError::Type(format!(
                "'{s}' is not a date (YYYY-MM-DD) or datetime (YYYY-MM-DDTHH:MM:SS)"
            ))
        };
        let expr = if other.ty == ColumnType::Date {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
            lit(d)
        } else {
            let dt = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                })
                .map_err(|_| bad())?;
            lit(dt)
        };
        return Ok((expr, Info::plain(other.ty)));
    }
    lower(e, env, ctx, read)
}

fn comparable(a: ColumnType, b: ColumnType) -> bool {
    a == b || (a.is_numeric() && b.is_numeric())
}
