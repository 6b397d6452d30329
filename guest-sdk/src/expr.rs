//! Building row-level expressions: `col("kwh").gt(lit(0.0)).and(col("consent").eq(true))`.

use crate::plan::{ArithOp, CompareOp, Expr};
use crate::Value;

/// A reference to column `name`.
///
/// ```
/// use oar_guest::{col, Expr};
/// assert_eq!(col("region"), Expr::Column { name: "region".into() });
/// ```
pub fn col(name: &str) -> Expr {
    Expr::Column {
        name: name.to_string(),
    }
}

/// A constant.
///
/// ```
/// use oar_guest::{lit, Expr, Value};
/// assert_eq!(lit(3), Expr::Literal { value: Value::Int(3) });
/// ```
pub fn lit(value: impl Into<Value>) -> Expr {
    Expr::Literal {
        value: value.into(),
    }
}

/// Anything that can stand on the right of a comparison: an expression, a typed
/// [`Column`](crate::Column) or a plain value (which becomes a literal).
///
/// ```
/// use oar_guest::{col, lit, IntoExpr};
/// assert_eq!(2.5.into_expr(), lit(2.5));
/// assert_eq!(col("kwh").into_expr(), col("kwh"));
/// ```
pub trait IntoExpr {
    /// Converts to an expression.
    ///
    /// ```
    /// use oar_guest::{lit, IntoExpr};
    /// assert_eq!("North".into_expr(), lit("North"));
    /// ```
    fn into_expr(self) -> Expr;
}

/// Anything that can be a row predicate (in [`Query::filter`](crate::Query::filter),
/// [`Expr::and`], [`per_unit::PerUnit::rows`](crate::per_unit::PerUnit::rows)): an untyped
/// [`Expr`] (the host checks it is boolean) or a typed boolean column, `flag("consent")`.
///
/// A typed number or text column is not a predicate, so `filter(num("kwh"))` does not compile.
///
/// ```
/// use oar_guest::{col, flag, IntoPredicate};
/// assert_eq!(flag("consent").into_predicate(), col("consent"));
/// ```
pub trait IntoPredicate {
    /// Converts to a (presumably boolean) expression.
    ///
    /// ```
    /// use oar_guest::{col, IntoPredicate};
    /// let p = col("kwh").gt(0.0).into_predicate();
    /// assert_eq!(p.columns(), vec!["kwh"]);
    /// ```
    fn into_predicate(self) -> Expr;
}
impl IntoPredicate for Expr {
    fn into_predicate(self) -> Expr {
        self
    }
}
impl IntoExpr for Expr {
    fn into_expr(self) -> Expr {
        self
    }
}
macro_rules! value_into_expr {
    ($($t:ty),*) => {$(
        impl IntoExpr for $t {
            fn into_expr(self) -> Expr {
                lit(self)
            }
        }
    )*};
}
value_into_expr!(&str, String, i64, i32, f64, bool, Value);

impl Expr {
    fn compare(self, op: CompareOp, other: impl IntoExpr) -> Expr {
        Expr::Compare {
            op,
            left: Box::new(self),
            right: Box::new(other.into_expr()),
        }
    }

    pub(crate) fn arith(self, op: ArithOp, other: impl IntoExpr) -> Expr {
        Expr::Arith {
            op,
            left: Box::new(self),
            right: Box::new(other.into_expr()),
        }
    }

    /// `self == other`
    ///
    /// ```
    /// use oar_guest::{col, plan::CompareOp, Expr};
    /// let e = col("region").eq("North");
    /// assert!(matches!(e, Expr::Compare { op: CompareOp::Eq, .. }));
    /// ```
    pub fn eq(self, other: impl IntoExpr) -> Expr {
        self.compare(CompareOp::Eq, other)
    }
    /// `self != other`
    ///
    /// ```
    /// use oar_guest::{col, plan::CompareOp, Expr};
    /// assert!(matches!(col("tariff").ne("night"), Expr::Compare { op: CompareOp::Ne, .. }));
    /// ```
    pub fn ne(self, other: impl IntoExpr) -> Expr {
        self.compare(CompareOp::Ne, other)
    }
    /// `self < other`
    ///
    /// ```
    /// use oar_guest::{col, plan::CompareOp, Expr};
    /// assert!(matches!(col("timestamp").hour().lt(6), Expr::Compare { op: CompareOp::Lt, .. }));
    /// ```
    pub fn lt(self, other: impl IntoExpr) -> Expr {
        self.compare(CompareOp::Lt, other)
    }
    /// `self <= other`
    ///
    /// ```
    /// use oar_guest::{col, plan::CompareOp, Expr};
    /// assert!(matches!(col("kwh").le(2.0), Expr::Compare { op: CompareOp::Le, .. }));
    /// ```
    pub fn le(self, other: impl IntoExpr) -> Expr {
        self.compare(CompareOp::Le, other)
    }
    /// `self > other`
    ///
    /// ```
    /// use oar_guest::{col, plan::CompareOp, Expr};
    /// assert!(matches!(col("kwh").gt(0.0), Expr::Compare { op: CompareOp::Gt, .. }));
    /// ```
    pub fn gt(self, other: impl IntoExpr) -> Expr {
        self.compare(CompareOp::Gt, other)
    }
    /// `self >= other`
    ///
    /// ```
    /// use oar_guest::{col, plan::CompareOp, Expr};
    /// let since = col("timestamp").ge("2024-03-01");
    /// assert!(matches!(since, Expr::Compare { op: CompareOp::Ge, .. }));
    /// ```
    pub fn ge(self, other: impl IntoExpr) -> Expr {
        self.compare(CompareOp::Ge, other)
    }
    /// Both `self` and `other`.
    ///
    /// ```
    /// use oar_guest::{col, flag};
    /// let e = col("kwh").gt(0.0).and(flag("consent"));
    /// assert_eq!(e.columns(), vec!["kwh", "consent"]);
    /// ```
    pub fn and(self, other: impl IntoPredicate) -> Expr {
        Expr::And {
            left: Box::new(self),
            right: Box::new(other.into_predicate()),
        }
    }
    /// Either `self` or `other`.
    ///
    /// ```
    /// use oar_guest::{col, Expr};
    /// let active = col("waste_contract").or(col("utility_connection"));
    /// assert!(matches!(active, Expr::Or { .. }));
    /// ```
    pub fn or(self, other: impl IntoPredicate) -> Expr {
        Expr::Or {
            left: Box::new(self),
            right: Box::new(other.into_predicate()),
        }
    }
    /// True where `self` is one of `values`.
    ///
    /// ```
    /// use oar_guest::{col, Expr, Value};
    /// let e = col("region").is_in(["North", "East"]);
    /// assert!(matches!(e, Expr::IsIn { ref values, .. } if values[1] == Value::from("East")));
    /// ```
    pub fn is_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Expr {
        Expr::IsIn {
            expr: Box::new(self),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
    /// The calendar day (`YYYY-MM-DD`) of a date or datetime column.
    ///
    /// ```
    /// use oar_guest::{col, Expr};
    /// assert!(matches!(col("timestamp").date(), Expr::Date { .. }));
    /// ```
    pub fn date(self) -> Expr {
        Expr::Date {
            expr: Box::new(self),
        }
    }
    /// The hour of day (0 to 23) of a datetime column.
    ///
    /// ```
    /// use oar_guest::{col, Expr};
    /// assert!(matches!(col("timestamp").hour(), Expr::Hour { .. }));
    /// ```
    pub fn hour(self) -> Expr {
        Expr::Hour {
            expr: Box::new(self),
        }
    }

    /// The half-hour of day (0 to 47) of a datetime column.
    ///
    /// ```
    /// use oar_guest::col;
    /// let slot = col("read_at").half_hour();
    /// assert_eq!(slot.columns(), vec!["read_at"]);
    /// ```
    pub fn half_hour(self) -> Expr {
        Expr::HalfHour {
            expr: Box::new(self),
        }
    }

    /// The bin of a number as a key `"[lo, hi)"`, for histograms over declared bins.
    ///
    /// ```
    /// use oar_guest::col;
    /// let kwh_band = col("kwh").bin([0.0, 0.5, 1.0, 2.0]);
    /// assert_eq!(kwh_band.columns(), vec!["kwh"]);
    /// ```
    pub fn bin(self, edges: impl IntoIterator<Item = f64>) -> Expr {
        Expr::Bin {
            expr: Box::new(self),
            edges: edges.into_iter().collect(),
        }
    }

    /// Names of the columns this expression reads, in order (a column read twice is listed
    /// twice).
    ///
    /// ```
    /// use oar_guest::{col, lit};
    /// let e = (col("a") + col("b")).gt(lit(1)).or(col("a").eq(0));
    /// assert_eq!(e.columns(), vec!["a", "b", "a"]);
    /// ```
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Column { name } => out.push(name),
            Expr::Literal { .. } => {}
            Expr::Compare { left, right, .. }
            | Expr::Arith { left, right, .. }
            | Expr::And { left, right }
            | Expr::Or { left, right } => {
                left.collect_columns(out);
                right.collect_columns(out);
            }
            Expr::Not { expr }
            | Expr::IsIn { expr, .. }
            | Expr::Date { expr }
            | Expr::Hour { expr }
            | Expr::HalfHour { expr }
            | Expr::Bin { expr, .. } => expr.collect_columns(out),
        }
    }
}

macro_rules! arith_operator {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        /// Arithmetic on expressions: `col("kwh") * 2.0`, `col("a") + col("b")`.
        impl<R: IntoExpr> std::ops::$trait<R> for Expr {
            type Output = Expr;
            fn $method(self, other: R) -> Expr {
                self.arith(ArithOp::$op, other)
            }
        }
    )*};
}
arith_operator!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div);

/// Negation: `!col("consented")`.
impl std::ops::Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr::Not {
            expr: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_build_the_same_plan_nodes_as_the_algebra() {
        let e = (col("kwh") * 2.0) + 1;
        assert_eq!(
            e,
            Expr::Arith {
                op: ArithOp::Add,
                left: Box::new(Expr::Arith {
                    op: ArithOp::Mul,
                    left: Box::new(col("kwh")),
                    right: Box::new(lit(2.0)),
                }),
                right: Box::new(lit(1)),
            }
        );
        assert_eq!(
            !col("ok"),
            Expr::Not {
                expr: Box::new(col("ok"))
            }
        );
        assert_eq!(
            col("a").gt(1).and(col("b").eq("x")).columns(),
            vec!["a", "b"]
        );
    }
}
