//! Lowering a checked plan's scan, expressions and steps to DataFusion's DataFrame API.
//!
//! Every rule of `oar_query::checked`'s semantics is kept here, including where DataFusion
//! behaves otherwise:
//! - Arrow compares floats in IEEE *total* order (`-0.0 < 0.0`, NaN above +inf). Every float
//!   in a frame is therefore finite or null and never `-0.0`: a float column reads through
//!   [`finite`], and so does every float arithmetic result.
//! - `greatest`/`least` skip nulls, and `concat` skips nulls; clamps are `CASE`s and cell codes
//!   use `||`, which is null if either side is.
//! - Integer `+ - *` wrap in DataFusion as in the semantics; a division is always done in
//!   floats. A datetime's date, hour and half hour are integer arithmetic on microseconds with
//!   Euclidean remainders, so days before 1970 floor as they should.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::{NullEquality, ScalarValue};
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::{
    avg, bool_and, bool_or, count, count_distinct, max, min, sum,
};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    cast, ident, lit, try_cast, when, BinaryExpr, Expr, ExprFunctionExt, JoinType,
    LogicalPlanBuilder, Operator,
};
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext};
use oar_guest::plan::{ArithOp, CompareOp, Reduce};
use oar_guest::{ColumnType, Value};
use oar_query::dataset::{Dataset, SourceFormat};
use oar_query::{CheckedExpr, CheckedPlan, CheckedStep};

/// The privacy unit's column in every frame (a name no plan or descriptor column can take).
pub const UNIT: &str = "__oar_unit";

const DAY_US: i64 = 86_400_000_000;

/// The DataFusion type a declared column is read as.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Str => DataType::Utf8,
        ColumnType::Date => DataType::Date32,
        ColumnType::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// A column by its exact name (never parsed as `relation.column`).
pub fn column(name: &str) -> Expr {
    ident(name)
}

fn null_of(ty: DataType) -> Expr {
    lit(ScalarValue::try_from(&ty).unwrap_or(ScalarValue::Null))
}

pub(crate) fn f64_lit(x: f64) -> Expr {
    lit(ScalarValue::Float64(Some(x)))
}

pub(crate) fn i64_lit(x: i64) -> Expr {
    lit(ScalarValue::Int64(Some(x)))
}

/// A `row_number()` value (UInt64: compared with an Int64, both would become Decimal128).
pub fn rank_lit(k: u64) -> Expr {
    lit(ScalarValue::UInt64(Some(k)))
}

pub(crate) fn binary(l: Expr, op: Operator, r: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)))
}

/// A float that is finite and not `-0.0`, or null (NaN and ±inf read as null).
pub fn finite(x: Expr) -> Expr {
    when(
        x.clone()
            .gt_eq(f64_lit(-0.0))
            .and(x.clone().lt_eq(f64_lit(0.0))),
        f64_lit(0.0),
    )
    .when(
        x.clone()
            .gt(f64_lit(f64::NEG_INFINITY))
            .and(x.clone().lt(f64_lit(f64::INFINITY))),
        x,
    )
    .otherwise(null_of(DataType::Float64))
    .expect("a CASE with branches")
}

/// `x` as a 64-bit float.
pub fn to_f64(x: Expr) -> Expr {
    cast(x, DataType::Float64)
}

/// `x` clamped to `[lo, hi]`, null staying null.
pub fn clamp(x: Expr, lo: f64, hi: f64) -> Expr {
    when(x.clone().lt(f64_lit(lo)), f64_lit(lo))
        .when(x.clone().gt(f64_lit(hi)), f64_lit(hi))
        .otherwise(x)
        .expect("a CASE with branches")
}

/// `|x|` of a float.
pub fn abs(x: Expr) -> Expr {
    when(
        x.clone().lt(f64_lit(0.0)),
        Expr::Negative(Box::new(x.clone())),
    )
    .otherwise(x)
    .expect("a CASE with branches")
}

/// `a.rem_euclid(b)` for a positive constant `b`.
fn rem_euclid(a: Expr, b: i64) -> Expr {
    binary(
        binary(
            binary(a, Operator::Modulo, i64_lit(b)),
            Operator::Plus,
            i64_lit(b),
        ),
        Operator::Modulo,
        i64_lit(b),
    )
}

/// Microseconds since 1970 of a datetime.
fn micros(x: Expr) -> Expr {
    cast(x, DataType::Int64)
}

/// A constant.
pub fn literal(v: &Value) -> Expr {
    match v {
        Value::Bool(b) => lit(ScalarValue::Boolean(Some(*b))),
        Value::Int(i) => i64_lit(*i),
        Value::Float(x) => f64_lit(*x),
        Value::Str(s) => lit(ScalarValue::Utf8(Some(s.clone()))),
    }
}

fn date_days(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// A date constant.
pub fn date_lit(d: chrono::NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(date_days(d))))
}

/// The type of a checked expression's values.
pub fn type_of(e: &CheckedExpr) -> ColumnType {
    match e {
        CheckedExpr::Column { ty, .. } => *ty,
        CheckedExpr::Literal(v) => match v {
            Value::Bool(_) => ColumnType::Bool,
            Value::Int(_) => ColumnType::Int,
            Value::Float(_) => ColumnType::Float,
            Value::Str(_) => ColumnType::Str,
        },
        CheckedExpr::DateConst(_) | CheckedExpr::ToDate { .. } => ColumnType::Date,
        CheckedExpr::DatetimeConst(_) => ColumnType::Datetime,
        CheckedExpr::Compare { .. }
        | CheckedExpr::And(..)
        | CheckedExpr::Or(..)
        | CheckedExpr::Not(_)
        | CheckedExpr::IsIn { .. } => ColumnType::Bool,
        CheckedExpr::Arith { ty, .. } => *ty,
        CheckedExpr::Hour(_) | CheckedExpr::HalfHour(_) => ColumnType::Int,
        CheckedExpr::Bin { .. } => ColumnType::Str,
    }
}

/// A checked expression as a DataFusion expression.
pub fn expr(e: &CheckedExpr) -> Expr {
    match e {
        // Columns are read finite (see `scan`) and derived floats are kept finite, so a column
        // reference is just the column.
        CheckedExpr::Column { name, .. } => column(name),
        CheckedExpr::Literal(v) => literal(v),
        CheckedExpr::DateConst(d) => date_lit(*d),
        CheckedExpr::DatetimeConst(dt) => lit(ScalarValue::TimestampMicrosecond(
            Some(dt.and_utc().timestamp_micros()),
            None,
        )),
        CheckedExpr::Compare { op, left, right } => {
            let (mut l, mut r) = (expr(left), expr(right));
            let (lt, rt) = (type_of(left), type_of(right));
            if lt != rt {
                // Numbers of mixed types compare as floats.
                l = to_f64(l);
                r = to_f64(r);
            }
            let op = match op {
                CompareOp::Eq => Operator::Eq,
                CompareOp::Ne => Operator::NotEq,
                CompareOp::Lt => Operator::Lt,
                CompareOp::Le => Operator::LtEq,
                CompareOp::Gt => Operator::Gt,
                CompareOp::Ge => Operator::GtEq,
            };
            binary(l, op, r)
        }
        CheckedExpr::Arith {
            op,
            left,
            right,
            ty,
        } => {
            let op = match op {
                ArithOp::Add => Operator::Plus,
                ArithOp::Sub => Operator::Minus,
                ArithOp::Mul => Operator::Multiply,
                ArithOp::Div => Operator::Divide,
            };
            if *ty == ColumnType::Int {
                binary(expr(left), op, expr(right))
            } else {
                finite(binary(to_f64(expr(left)), op, to_f64(expr(right))))
            }
        }
        CheckedExpr::And(l, r) => expr(l).and(expr(r)),
        CheckedExpr::Or(l, r) => expr(l).or(expr(r)),
        CheckedExpr::Not(x) => Expr::Not(Box::new(expr(x))),
        CheckedExpr::IsIn {
            expr: x, values, ..
        } => {
            let x = expr(x);
            if values.is_empty() {
                when(x.is_null(), null_of(DataType::Boolean))
                    .otherwise(lit(false))
                    .expect("a CASE with branches")
            } else {
                x.in_list(values.iter().map(literal).collect(), false)
            }
        }
        CheckedExpr::ToDate { expr: x, from } => match from {
            ColumnType::Datetime => {
                let t = micros(expr(x));
                let days = binary(
                    binary(t.clone(), Operator::Minus, rem_euclid(t, DAY_US)),
                    Operator::Divide,
                    i64_lit(DAY_US),
                );
                cast(cast(days, DataType::Int32), DataType::Date32)
            }
            _ => expr(x),
        },
        CheckedExpr::Hour(x) | CheckedExpr::HalfHour(x) => {
            let seconds = binary(
                rem_euclid(micros(expr(x)), DAY_US),
                Operator::Divide,
                i64_lit(1_000_000),
            );
            let hour = binary(seconds.clone(), Operator::Divide, i64_lit(3600));
            if matches!(e, CheckedExpr::Hour(_)) {
                hour
            } else {
                let minute = binary(
                    binary(seconds, Operator::Modulo, i64_lit(3600)),
                    Operator::Divide,
                    i64_lit(60),
                );
                binary(
                    binary(hour, Operator::Multiply, i64_lit(2)),
                    Operator::Plus,
                    when(minute.gt_eq(i64_lit(30)), i64_lit(1))
                        .otherwise(i64_lit(0))
                        .expect("a CASE with branches"),
                )
            }
        }
        CheckedExpr::Bin {
            expr: x,
            edges,
            labels,
        } => {
            let x = to_f64(expr(x));
            let last = labels.len() - 1;
            let bin = |i: usize| {
                let upper = if i == last {
                    x.clone().lt_eq(f64_lit(edges[i + 1]))
                } else {
                    x.clone().lt(f64_lit(edges[i + 1]))
                };
                x.clone().gt_eq(f64_lit(edges[i])).and(upper)
            };
            let text = |i: usize| lit(ScalarValue::Utf8(Some(labels[i].clone())));
            let mut case = when(bin(0), text(0));
            for i in 1..labels.len() {
                case = case.when(bin(i), text(i));
            }
            case.otherwise(null_of(DataType::Utf8))
                .expect("a CASE with branches")
        }
    }
}

/// The dataset's rows as a frame: the unit (as [`UNIT`]) and the columns the plan reads, each
/// as its declared type (a float column finite, see the module docs).
pub async fn scan(
    ctx: &SessionContext,
    plan: &CheckedPlan,
    dataset: &Dataset,
) -> Result<DataFrame> {
    let files: Vec<String> = dataset
        .files()
        .iter()
        .map(|f| {
            // Executors of a cluster open the same paths: absolute, and resolved here.
            std::fs::canonicalize(f)
                .unwrap_or_else(|_| f.clone())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let schema = dataset.schema();
    let df = match dataset.descriptor().source.format {
        SourceFormat::Parquet => {
            ctx.read_parquet(files, ParquetReadOptions::default())
                .await?
        }
        SourceFormat::Csv => {
            // Every column as text, then converted with `try_cast`: a value that does not
            // parse reads as null, as in the Polars backend, so no value can fail a scan.
            let names = csv_header(dataset)?;
            let text = Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(n, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            );
            ctx.read_csv(files, CsvReadOptions::new().has_header(true).schema(&text))
                .await?
        }
    };
    let mut columns = vec![column(dataset.privacy_unit()).alias(UNIT)];
    for name in plan.scan_columns().iter().skip(1) {
        let ty = schema
            .column(name)
            .map(|c| c.dtype)
            .ok_or_else(|| datafusion::error::DataFusionError::Plan("undeclared column".into()))?;
        let read = match dataset.descriptor().source.format {
            SourceFormat::Csv if ty == ColumnType::Bool => {
                // Text "true"/"false" in any case, as Polars reads it.
                let lower = datafusion::functions::string::expr_fn::lower(column(name));
                when(lower.clone().eq(lit("true")), lit(true))
                    .when(lower.eq(lit("false")), lit(false))
                    .otherwise(null_of(DataType::Boolean))?
            }
            SourceFormat::Csv => try_cast(column(name), arrow_type(ty)),
            SourceFormat::Parquet => cast(column(name), arrow_type(ty)),
        };
        let read = if ty == ColumnType::Float {
            finite(read)
        } else {
            read
        };
        columns.push(read.alias(name));
    }
    df.select(columns)
}

/// The column names of a CSV dataset, in file order.
fn csv_header(dataset: &Dataset) -> Result<Vec<String>> {
    let failed = |e: polars::prelude::PolarsError| {
        datafusion::error::DataFusionError::IoError(std::io::Error::other(e.to_string()))
    };
    let schema = dataset
        .scan()
        .map_err(failed)?
        .collect_schema()
        .map_err(failed)?;
    Ok(schema.iter_names().map(|n| n.to_string()).collect())
}

/// `df` with one more step applied.
pub fn step(df: DataFrame, s: &CheckedStep) -> Result<DataFrame> {
    match s {
        CheckedStep::Filter(p) => df.filter(expr(p)),
        CheckedStep::Derive { name, expr: e } => df.with_column(name, expr(e)),
        CheckedStep::PerUnit {
            name,
            reduce,
            input,
            input_ty,
            rows,
            by,
        } => per_unit(df, name, *reduce, input, *input_ty, rows.as_ref(), by),
    }
}

/// The per-unit stage: a group-by on the unit (and `by`), joined back null-safely.
fn per_unit(
    df: DataFrame,
    name: &str,
    reduce: Reduce,
    input: &CheckedExpr,
    input_ty: ColumnType,
    rows: Option<&CheckedExpr>,
    by: &[String],
) -> Result<DataFrame> {
    let keys: Vec<Expr> = std::iter::once(column(UNIT))
        .chain(by.iter().map(|k| column(k)))
        .collect();
    let key_names: Vec<String> = (0..keys.len()).map(|i| format!("__oar_k{i}")).collect();
    let value = "__oar_v";
    let (reduced, post) = if reduce == Reduce::Mode {
        // The most frequent value (a null is a value), ties to the smallest, null first: a
        // count per value, then the first by count (descending) and value (ascending).
        let kept = match rows {
            Some(p) => df.clone().filter(expr(p))?,
            None => df.clone(),
        };
        let mut selected = keys.clone();
        selected.push(expr(input).alias(value));
        let mut grouped = keys.clone();
        grouped.push(column(value));
        let counts = kept
            .select(selected)?
            .aggregate(grouped, vec![count(lit(1)).alias("__oar_n")])?;
        let rank = row_number()
            .partition_by(keys.clone())
            .order_by(vec![
                column("__oar_n").sort(false, false),
                column(value).sort(true, true),
            ])
            .build()?
            .alias("__oar_rank");
        let top = counts
            .window(vec![rank])?
            .filter(column("__oar_rank").eq(rank_lit(1)))?;
        (top, column(value))
    } else {
        let x = match rows {
            Some(p) => when(expr(p), expr(input)).otherwise(null_of(arrow_type(input_ty)))?,
            None => expr(input),
        };
        let v = column(value);
        // Aggregates, then what the semantics ask of their results (a projection: DataFusion
        // takes only bare aggregates in a group-by).
        let (agg, post) = match reduce {
            Reduce::Min => (min(v), column(value)),
            Reduce::Max => (max(v), column(value)),
            Reduce::Mean => (avg(to_f64(v)), finite(column(value))),
            Reduce::Sum => (sum(to_f64(v)), finite(coalesce_f64(column(value), 0.0))),
            Reduce::Count => (count(v), column(value)),
            Reduce::CountDistinct => (count_distinct(v), column(value)),
            Reduce::Any => (bool_or(v), column(value).is_true()),
            Reduce::All => (bool_and(v), column(value).is_not_false()),
            Reduce::Mode => unreachable!("handled above"),
        };
        let mut selected = keys.clone();
        selected.push(x.alias(value));
        let grouped = df
            .clone()
            .select(selected)?
            .aggregate(keys.clone(), vec![agg.alias(value)])?;
        (grouped, post)
    };
    // Rename the right side's keys and value so the join's columns are unambiguous.
    let mut right_cols: Vec<Expr> = keys
        .iter()
        .zip(&key_names)
        .map(|(k, n)| k.clone().alias(n))
        .collect();
    right_cols.push(post.alias(value));
    let right = reduced.select(right_cols)?;
    let left_names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != name)
        .collect();
    let left_keys: Vec<String> = std::iter::once(UNIT.to_string())
        .chain(by.iter().cloned())
        .collect();
    let (state, left_plan) = df.into_parts();
    let joined = LogicalPlanBuilder::from(left_plan)
        .join_detailed(
            right.into_unoptimized_plan(),
            JoinType::Left,
            (
                left_keys
                    .iter()
                    .map(datafusion::common::Column::from_name)
                    .collect::<Vec<_>>(),
                key_names
                    .iter()
                    .map(datafusion::common::Column::from_name)
                    .collect::<Vec<_>>(),
            ),
            None,
            NullEquality::NullEqualsNull,
        )?
        .build()?;
    let mut out: Vec<Expr> = left_names.iter().map(|n| column(n).alias(n)).collect();
    out.push(column(value).alias(name));
    DataFrame::new(state, joined).select(out)
}

/// `x`, or `default` where it is null.
pub fn coalesce_f64(x: Expr, default: f64) -> Expr {
    when(x.clone().is_null(), f64_lit(default))
        .otherwise(x)
        .expect("a CASE with branches")
}
