//! Checked expressions: a plan's expressions after type checking, with every public fact
//! resolved, and nothing of any query engine in them.
//!
//! [`check_expr`] refuses what does not type-check and tracks what is publicly known about each
//! value ([`Info`]: type, public domain, bounds, calendar period). Its output, [`CheckedExpr`],
//! is what a [`QueryBackend`](super::backend::QueryBackend) lowers to its own engine; its
//! semantics are stated once here, and every backend must follow them:
//!
//! - **Nulls.** A float column's NaN and ±inf read as null. Comparisons, arithmetic, `date`,
//!   `hour`, `half_hour`, `bin` and `is_in` of a null are null. `and`/`or` follow Kleene logic
//!   (`null and false` is false, `null or true` is true); `not null` is null. A filter keeps a
//!   row only where its predicate is true.
//! - **Numbers.** Integers are 64-bit and wrap on overflow; an operation with a float operand is
//!   done in 64-bit floats; a float result that is not finite is null; division is always in
//!   floats and a division by zero is null.
//! - **Order.** Text compares by bytes, booleans as `false < true`, dates and datetimes in time.

use super::QueryError;
use chrono::{NaiveDate, NaiveDateTime};
use oar_guest::plan::{ArithOp, CompareOp, Expr as PExpr};
use oar_guest::schema::{ColumnSchema, ColumnType};
use oar_guest::Value;
use std::collections::HashMap;

/// A type-checked row expression.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedExpr {
    /// A column of the dataset or one derived by an earlier step.
    Column {
        /// Its name.
        name: String,
        /// Its type (a float column's non-finite values read as null).
        ty: ColumnType,
    },
    /// A constant (its type is the value's).
    Literal(Value),
    /// A date constant (a text literal compared with a date).
    DateConst(NaiveDate),
    /// A datetime constant (a text literal compared with a datetime).
    DatetimeConst(NaiveDateTime),
    /// A comparison; the operands are of the same type or both numeric.
    Compare {
        /// The operator.
        op: CompareOp,
        /// Left operand.
        left: Box<CheckedExpr>,
        /// Right operand.
        right: Box<CheckedExpr>,
    },
    /// Arithmetic on numbers; `ty` is `Int` when both operands are integers and the operator
    /// is not division, `Float` otherwise.
    Arith {
        /// The operator.
        op: ArithOp,
        /// Left operand.
        left: Box<CheckedExpr>,
        /// Right operand.
        right: Box<CheckedExpr>,
        /// The result type.
        ty: ColumnType,
    },
    /// Kleene `and`.
    And(Box<CheckedExpr>, Box<CheckedExpr>),
    /// Kleene `or`.
    Or(Box<CheckedExpr>, Box<CheckedExpr>),
    /// Negation.
    Not(Box<CheckedExpr>),
    /// Membership in a set of constants of the operand's type (`ty`).
    IsIn {
        /// The operand.
        expr: Box<CheckedExpr>,
        /// The set.
        values: Vec<Value>,
        /// The operand's type.
        ty: ColumnType,
    },
    /// The calendar date of a datetime (`from` is `Datetime`) or a date itself (`Date`).
    ToDate {
        /// The operand.
        expr: Box<CheckedExpr>,
        /// The operand's type.
        from: ColumnType,
    },
    /// The hour (0–23) of a datetime.
    Hour(Box<CheckedExpr>),
    /// The half-hour slot (0–47) of a datetime.
    HalfHour(Box<CheckedExpr>),
    /// The label of the bin a number falls in (`labels[i]` for `edges[i] <= x < edges[i+1]`,
    /// the last bin closed), or null outside all bins.
    Bin {
        /// The operand.
        expr: Box<CheckedExpr>,
        /// Strictly increasing finite edges.
        edges: Vec<f64>,
        /// One label per bin.
        labels: Vec<String>,
    },
}

impl CheckedExpr {
    /// Adds the names of the columns the expression reads to `out`.
    pub fn columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            CheckedExpr::Column { name, .. } => out.push(name),
            CheckedExpr::Literal(_) | CheckedExpr::DateConst(_) | CheckedExpr::DatetimeConst(_) => {
            }
            CheckedExpr::Compare { left, right, .. }
            | CheckedExpr::Arith { left, right, .. }
            | CheckedExpr::And(left, right)
            | CheckedExpr::Or(left, right) => {
                left.columns(out);
                right.columns(out);
            }
            CheckedExpr::Not(x) | CheckedExpr::Hour(x) | CheckedExpr::HalfHour(x) => x.columns(out),
            CheckedExpr::IsIn { expr, .. }
            | CheckedExpr::ToDate { expr, .. }
            | CheckedExpr::Bin { expr, .. } => expr.columns(out),
        }
    }

    /// Whether the expression reads any column (else it is one constant for every row).
    pub fn reads_columns(&self) -> bool {
        match self {
            CheckedExpr::Column { .. } => true,
            CheckedExpr::Literal(_) | CheckedExpr::DateConst(_) | CheckedExpr::DatetimeConst(_) => {
                false
            }
            CheckedExpr::Compare { left, right, .. }
            | CheckedExpr::Arith { left, right, .. }
            | CheckedExpr::And(left, right)
            | CheckedExpr::Or(left, right) => left.reads_columns() || right.reads_columns(),
            CheckedExpr::Not(x) | CheckedExpr::Hour(x) | CheckedExpr::HalfHour(x) => {
                x.reads_columns()
            }
            CheckedExpr::IsIn { expr, .. }
            | CheckedExpr::ToDate { expr, .. }
            | CheckedExpr::Bin { expr, .. } => expr.reads_columns(),
        }
    }
}

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

/// Maps a key value to its position in its public domain (null if outside it).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyIndex {
    /// Dates: days since `start`, for `len` days.
    DayOffset {
        /// The first day.
        start: NaiveDate,
        /// Number of days.
        len: usize,
    },
    /// Consecutive integers from `first`.
    IntRange {
        /// The first integer.
        first: i64,
        /// How many.
        len: usize,
    },
    /// Any other domain: the value's position in the list. Values of type `ty` match an entry
    /// that is the same value; a date matches its `YYYY-MM-DD` text.
    Lookup(Vec<Value>, ColumnType),
}

impl KeyIndex {
    /// Number of positions.
    pub fn len(&self) -> usize {
        match self {
            KeyIndex::DayOffset { len, .. } | KeyIndex::IntRange { len, .. } => *len,
            KeyIndex::Lookup(d, _) => d.len(),
        }
    }

    /// True if the domain is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

pub(crate) struct CheckCtx<'a> {
    pub dataset: &'a str,
    pub unit: &'a str,
}

/// Checks `e`, returning it checked and what is known about its values; records the columns
/// it reads in `read`.
pub(crate) fn check_expr(
    e: &PExpr,
    env: &HashMap<String, Info>,
    ctx: &CheckCtx<'_>,
    read: &mut Vec<String>,
) -> Result<(CheckedExpr, Info), QueryError> {
    let boxed = Box::new;
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
            (
                CheckedExpr::Column {
                    name: name.clone(),
                    ty: info.ty,
                },
                info.clone(),
            )
        }
        PExpr::Literal { value } => {
            let ty = match value {
                Value::Bool(_) => ColumnType::Bool,
                Value::Int(_) => ColumnType::Int,
                Value::Float(_) => ColumnType::Float,
                Value::Str(_) => ColumnType::Str,
            };
            if matches!(value, Value::Float(x) if !x.is_finite()) {
                return Err(QueryError::Invalid(
                    "a number constant must be finite".into(),
                ));
            }
            (
                CheckedExpr::Literal(value.clone()),
                Info {
                    domain: Some(vec![value.clone()]),
                    ..Info::plain(ty)
                },
            )
        }
        PExpr::Compare { op, left, right } => {
            let (l, li) = check_expr(left, env, ctx, read)?;
            let (r, ri) = check_against(right, &li, env, ctx, read)?;
            let (l, li) = match (&**left, ri.ty) {
                (
                    PExpr::Literal {
                        value: Value::Str(_),
                    },
                    ColumnType::Date | ColumnType::Datetime,
                ) => check_against(left, &ri, env, ctx, read)?,
                _ => (l, li),
            };
            if !comparable(li.ty, ri.ty) {
                return Err(QueryError::Type(format!(
                    "cannot compare {:?} with {:?}",
                    li.ty, ri.ty
                )));
            }
            (
                CheckedExpr::Compare {
                    op: *op,
                    left: boxed(l),
                    right: boxed(r),
                },
                Info::boolean(),
            )
        }
        PExpr::Arith { op, left, right } => {
            let (l, li) = check_expr(left, env, ctx, read)?;
            let (r, ri) = check_expr(right, env, ctx, read)?;
            if !li.ty.is_numeric() || !ri.ty.is_numeric() {
                return Err(QueryError::Type(format!(
                    "arithmetic needs numbers, got {:?} and {:?}",
                    li.ty, ri.ty
                )));
            }
            let both_int = li.ty == ColumnType::Int && ri.ty == ColumnType::Int;
            let ty = if both_int && *op != ArithOp::Div {
                ColumnType::Int
            } else {
                ColumnType::Float
            };
            (
                CheckedExpr::Arith {
                    op: *op,
                    left: boxed(l),
                    right: boxed(r),
                    ty,
                },
                Info::plain(ty),
            )
        }
        PExpr::And { left, right } | PExpr::Or { left, right } => {
            let (l, li) = check_expr(left, env, ctx, read)?;
            let (r, ri) = check_expr(right, env, ctx, read)?;
            if li.ty != ColumnType::Bool || ri.ty != ColumnType::Bool {
                return Err(QueryError::Type("and/or need boolean operands".into()));
            }
            let out = if matches!(e, PExpr::And { .. }) {
                CheckedExpr::And(boxed(l), boxed(r))
            } else {
                CheckedExpr::Or(boxed(l), boxed(r))
            };
            (out, Info::boolean())
        }
        PExpr::Not { expr } => {
            let (x, info) = check_expr(expr, env, ctx, read)?;
            if info.ty != ColumnType::Bool {
                return Err(QueryError::Type("not needs a boolean operand".into()));
            }
            (CheckedExpr::Not(boxed(x)), Info::boolean())
        }
        PExpr::IsIn { expr, values } => {
            let (x, info) = check_expr(expr, env, ctx, read)?;
            if values.is_empty() {
                return Err(QueryError::Invalid("is_in needs at least one value".into()));
            }
            let values = match info.ty {
                ColumnType::Str | ColumnType::Int | ColumnType::Float | ColumnType::Bool => {
                    typed_set(values, info.ty)
                }
                other => {
                    return Err(QueryError::Type(format!(
                        "is_in is not supported on {other:?}"
                    )))
                }
            };
            (
                CheckedExpr::IsIn {
                    expr: boxed(x),
                    values,
                    ty: info.ty,
                },
                Info::boolean(),
            )
        }
        PExpr::Date { expr } => {
            let (x, info) = check_expr(expr, env, ctx, read)?;
            if !matches!(info.ty, ColumnType::Datetime | ColumnType::Date) {
                return Err(QueryError::Type(format!(
                    "date() needs a date or datetime, got {:?}",
                    info.ty
                )));
            }
            let domain = info.period.map(|(a, b)| days_in_period(a, b));
            (
                CheckedExpr::ToDate {
                    expr: boxed(x),
                    from: info.ty,
                },
                Info {
                    ty: ColumnType::Date,
                    domain,
                    bounds: None,
                    period: info.period,
                },
            )
        }
        PExpr::Hour { expr } | PExpr::HalfHour { expr } => {
            let (x, info) = check_expr(expr, env, ctx, read)?;
            let hour = matches!(e, PExpr::Hour { .. });
            if info.ty != ColumnType::Datetime {
                return Err(QueryError::Type(format!(
                    "{}() needs a datetime, got {:?}",
                    if hour { "hour" } else { "half_hour" },
                    info.ty
                )));
            }
            let slots: i64 = if hour { 24 } else { 48 };
            (
                if hour {
                    CheckedExpr::Hour(boxed(x))
                } else {
                    CheckedExpr::HalfHour(boxed(x))
                },
                Info {
                    domain: Some((0..slots).map(Value::Int).collect()),
                    bounds: Some([0.0, (slots - 1) as f64]),
                    ..Info::plain(ColumnType::Int)
                },
            )
        }
        PExpr::Bin { expr, edges } => {
            let (x, info) = check_expr(expr, env, ctx, read)?;
            if !info.ty.is_numeric() {
                return Err(QueryError::Type(format!(
                    "bin() needs a number, got {:?}",
                    info.ty
                )));
            }
            let labels = bin_labels(edges)?;
            (
                CheckedExpr::Bin {
                    expr: boxed(x),
                    edges: edges.clone(),
                    labels: labels.clone(),
                },
                Info {
                    domain: Some(labels.into_iter().map(Value::Str).collect()),
                    ..Info::plain(ColumnType::Str)
                },
            )
        }
    })
}

/// `values` as constants of type `ty`: a value of another type matches nothing and is dropped
/// (an integer constant still matches a float column).
fn typed_set(values: &[Value], ty: ColumnType) -> Vec<Value> {
    values
        .iter()
        .filter_map(|v| match (ty, v) {
            (ColumnType::Int, Value::Int(_))
            | (ColumnType::Bool, Value::Bool(_))
            | (ColumnType::Float, Value::Float(_)) => Some(v.clone()),
            (ColumnType::Float, Value::Int(i)) => Some(Value::Float(*i as f64)),
            (ColumnType::Str, v) => Some(Value::Str(v.key_text())),
            _ => None,
        })
        .filter(|v| !matches!(v, Value::Float(x) if !x.is_finite()))
        .collect()
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

/// Checks `e`; a text literal compared with a date or datetime becomes a typed constant.
fn check_against(
    e: &PExpr,
    other: &Info,
    env: &HashMap<String, Info>,
    ctx: &CheckCtx<'_>,
    read: &mut Vec<String>,
) -> Result<(CheckedExpr, Info), QueryError> {
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
            CheckedExpr::DateConst(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?)
        } else {
            let dt = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                })
                .map_err(|_| bad())?;
            CheckedExpr::DatetimeConst(dt)
        };
        return Ok((expr, Info::plain(other.ty)));
    }
    check_expr(e, env, ctx, read)
}

fn comparable(a: ColumnType, b: ColumnType) -> bool {
    a == b || (a.is_numeric() && b.is_numeric())
}
