//! What the SDK can tell about a column before the host sees a plan: its type, whether it has
//! clamping bounds, whether it has a public key domain.
//!
//! Dataset columns are described by the schema. Derived columns (from `derive` and `per_unit`)
//! get the facts the host's type checker gives them (oar-host `query::expr` and
//! `query::per_unit`): `hour()` has bounds `[0, 23]` and a domain, a per-unit mean keeps its
//! input's bounds, arithmetic and per-unit sums and counts have neither, and so on. Wherever the
//! outcome is not certain the answer is [`Known::Unknown`], so a check built on these facts
//! never refuses a plan the host would accept.

use crate::plan::{Expr, Reduce};
use crate::{ColumnSchema, ColumnType, DatasetSchema, Value};

/// A yes/no fact that may not be known in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Yes,
    No,
    Unknown,
}

impl From<bool> for Known {
    fn from(b: bool) -> Self {
        if b {
            Known::Yes
        } else {
            Known::No
        }
    }
}

/// What is publicly known about one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// Its type, if known.
    pub ty: Option<ColumnType>,
    /// Whether it has clamping bounds.
    pub bounds: Known,
    /// Whether it has a public domain (and so can be a group key).
    pub domain: Known,
    /// Whether it has a calendar period (so `date()` of it has a domain).
    pub period: Known,
    /// Whether it was derived by the plan rather than read from the dataset.
    pub derived: bool,
}

impl Facts {
    /// Nothing known (a column that does not exist, or an input whose facts are unknown).
    fn unknown() -> Self {
        Facts {
            ty: None,
            bounds: Known::Unknown,
            domain: Known::Unknown,
            period: Known::Unknown,
            derived: true,
        }
    }

    /// A computed value of type `ty` with neither bounds, domain nor period.
    fn plain(ty: Option<ColumnType>) -> Self {
        Facts {
            ty,
            bounds: Known::No,
            domain: Known::No,
            period: Known::No,
            derived: true,
        }
    }

    /// A boolean (comparisons and logic): its domain is `{false, true}`.
    fn boolean() -> Self {
        Facts {
            domain: Known::Yes,
            ..Facts::plain(Some(ColumnType::Bool))
        }
    }

    /// A dataset column, as the host sees it: a declared non-empty domain, a boolean, or a
    /// date with a period has a key domain.
    fn of_column(c: &ColumnSchema) -> Self {
        let declared = c.domain.as_ref().map(|d| !d.is_empty());
        let implicit = c.dtype == ColumnType::Bool
            || (c.dtype == ColumnType::Date && c.period.is_some() && c.domain.is_none());
        Facts {
            ty: Some(c.dtype),
            bounds: c.bounds.is_some().into(),
            domain: (declared.unwrap_or(false) || implicit).into(),
            period: c.period.is_some().into(),
            derived: false,
        }
    }
}

/// The columns available at one point of a plan: the dataset's, then the ones derived so far
/// (a derived column shadows a dataset column of the same name, as on the host).
pub(crate) struct Env<'s> {
    schema: &'s DatasetSchema,
    derived: Vec<(String, Facts)>,
}

impl<'s> Env<'s> {
    /// The dataset's columns, nothing derived yet.
    pub fn new(schema: &'s DatasetSchema) -> Self {
        Env {
            schema,
            derived: Vec::new(),
        }
    }

    /// The schema the plan reads.
    pub fn schema(&self) -> &'s DatasetSchema {
        self.schema
    }

    /// Facts about column `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Facts> {
        self.derived
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .or_else(|| self.schema.column(name).map(Facts::of_column))
    }

    /// Adds (or shadows) column `name`.
    pub fn define(&mut self, name: &str, facts: Facts) {
        self.derived.push((name.to_string(), facts));
    }

    /// Every column name available, dataset columns first, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        for (n, _) in &self.derived {
            if !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        out
    }

    /// Facts about the value of `expr` on each row.
    pub fn of_expr(&self, expr: &Expr) -> Facts {
        match expr {
            Expr::Column { name } => self
                .get(name)
                .map_or_else(Facts::unknown, |f| Facts { derived: true, ..f }),
            Expr::Literal { value } => Facts {
                domain: Known::Yes,
                ..Facts::plain(Some(type_of(value)))
            },
            Expr::Compare { .. }
            | Expr::And { .. }
            | Expr::Or { .. }
            | Expr::Not { .. }
            | Expr::IsIn { .. } => Facts::boolean(),
            Expr::Arith { op, left, right } => {
                let ty = match (self.of_expr(left).ty, self.of_expr(right).ty) {
                    _ if *op == crate::plan::ArithOp::Div => Some(ColumnType::Float),
                    (Some(ColumnType::Int), Some(ColumnType::Int)) => Some(ColumnType::Int),
                    (Some(l), Some(r)) if l.is_numeric() && r.is_numeric() => {
                        Some(ColumnType::Float)
                    }
                    _ => None,
                };
                Facts::plain(ty)
            }
            Expr::Date { expr } => {
                let period = self.of_expr(expr).period;
                Facts {
                    domain: period,
                    period,
                    ..Facts::plain(Some(ColumnType::Date))
                }
            }
            Expr::Hour { .. } | Expr::HalfHour { .. } => Facts {
                bounds: Known::Yes,
                domain: Known::Yes,
                ..Facts::plain(Some(ColumnType::Int))
            },
            Expr::Bin { .. } => Facts {
                domain: Known::Yes,
                ..Facts::plain(Some(ColumnType::Str))
            },
        }
    }

    /// Facts about a per-unit value: `reduce` applied to `expr` over each unit's rows.
    pub fn of_per_unit(&self, reduce: Reduce, expr: &Expr) -> Facts {
        let input = self.of_expr(expr);
        match reduce {
            Reduce::Mode | Reduce::Min | Reduce::Max | Reduce::Any | Reduce::All => input,
            Reduce::Mean => Facts {
                bounds: input.bounds,
                ..Facts::plain(Some(ColumnType::Float))
            },
            Reduce::Sum => Facts::plain(Some(ColumnType::Float)),
            Reduce::Count | Reduce::CountDistinct => Facts::plain(Some(ColumnType::Int)),
        }
    }
}

/// The column type of a literal.
fn type_of(value: &Value) -> ColumnType {
    match value {
        Value::Bool(_) => ColumnType::Bool,
        Value::Int(_) => ColumnType::Int,
        Value::Float(_) => ColumnType::Float,
        Value::Str(_) => ColumnType::Str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::meters_schema;
    use crate::{col, lit};

    #[test]
    fn dataset_columns_carry_their_declared_facts() {
        let schema = meters_schema();
        let env = Env::new(&schema);
        let kwh = env.get("kwh").unwrap();
        assert_eq!(
            (kwh.ty, kwh.bounds, kwh.domain),
            (Some(ColumnType::Float), Known::Yes, Known::No)
        );
        assert_eq!(
            env.get("consent").unwrap().domain,
            Known::Yes,
            "booleans have a domain"
        );
        assert_eq!(env.get("tariff").unwrap().domain, Known::No);
        assert_eq!(env.get("read_at").unwrap().period, Known::Yes);
        assert!(
            env.get("meter_id").is_none(),
            "the privacy unit is not a column"
        );
    }

    #[test]
    fn derived_values_follow_the_hosts_rules() {
        let schema = meters_schema();
        let env = Env::new(&schema);
        let hour = env.of_expr(&col("read_at").hour());
        assert_eq!((hour.bounds, hour.domain), (Known::Yes, Known::Yes));
        let day = env.of_expr(&col("read_at").date());
        assert_eq!(day.domain, Known::Yes, "the period gives date() a domain");
        let scaled = env.of_expr(&(col("kwh") * 2));
        assert_eq!(
            (scaled.ty, scaled.bounds),
            (Some(ColumnType::Float), Known::No)
        );
        assert_eq!(env.of_expr(&(lit(1) + 2)).ty, Some(ColumnType::Int));
        assert_eq!(env.of_expr(&col("kwh").gt(1.0)).ty, Some(ColumnType::Bool));
        assert_eq!(env.of_expr(&col("nope")).ty, None, "unknown stays unknown");
        let mean = env.of_per_unit(Reduce::Mean, &col("kwh"));
        assert_eq!(
            mean.bounds,
            Known::Yes,
            "a per-unit mean keeps its input's bounds"
        );
        let sum = env.of_per_unit(Reduce::Sum, &col("kwh"));
        assert_eq!(sum.bounds, Known::No);
        let count = env.of_per_unit(Reduce::Count, &col("kwh"));
        assert_eq!((count.ty, count.domain), (Some(ColumnType::Int), Known::No));
    }

    #[test]
    fn a_derived_column_shadows_a_dataset_column() {
        let schema = meters_schema();
        let mut env = Env::new(&schema);
        env.define("kwh", env.of_expr(&(col("kwh") * 2)));
        assert_eq!(env.get("kwh").unwrap().bounds, Known::No);
        assert_eq!(env.names().iter().filter(|n| **n == "kwh").count(), 1);
    }
}
