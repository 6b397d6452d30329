//! The per-unit stage: one value per privacy unit, derived from that unit's rows.
//!
//! Many indicators are about people rather than rows: a subscriber's home region, a meter's
//! consent status, a vehicle's trips per day. Build the value with one of the functions here
//! and add it with [`Query::per_unit`](crate::Query::per_unit); every row of the unit then
//! carries it, and the aggregates that follow count each unit once per cell as always.
//!
//! ```
//! use oar_guest::{col, per_unit};
//! let night = col("timestamp").hour().lt(6);
//! let home = per_unit::mode(col("region")).rows(night);
//! assert_eq!(home.reduce(), oar_guest::plan::Reduce::Mode);
//! ```

use crate::plan::{Reduce, Step};
use crate::{Expr, IntoPredicate};

/// A per-unit value under construction: a reduction of a row expression over each unit's rows,
/// optionally over a subset of them and within further keys.
///
/// ```
/// use oar_guest::{flag, num, per_unit, plan::Reduce};
/// let daily_kwh = per_unit::sum(num("kwh")).rows(flag("consent")).by(["day"]);
/// assert_eq!(daily_kwh.reduce(), Reduce::Sum);
/// assert_eq!(daily_kwh.columns(), vec!["kwh", "consent", "day"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PerUnit {
    reduce: Reduce,
    expr: Expr,
    rows: Option<Expr>,
    by: Vec<String>,
}

impl PerUnit {
    fn new(reduce: Reduce, expr: impl Into<Expr>) -> Self {
        PerUnit {
            reduce,
            expr: expr.into(),
            rows: None,
            by: Vec::new(),
        }
    }

    /// Reduces only the rows where `predicate` holds (a unit with none gets null). Called twice,
    /// both predicates must hold.
    ///
    /// ```
    /// use oar_guest::{col, flag, per_unit};
    /// let night_home = per_unit::mode(col("region")).rows(col("timestamp").hour().lt(6));
    /// assert_eq!(night_home.columns(), vec!["region", "timestamp"]);
    /// let consented = per_unit::mean(col("kwh")).rows(flag("consent")).rows(col("kwh").gt(0.0));
    /// assert_eq!(consented.columns(), vec!["kwh", "consent", "kwh"]);
    /// ```
    pub fn rows(mut self, predicate: impl IntoPredicate) -> Self {
        let predicate = predicate.into_predicate();
        self.rows = Some(match self.rows.take() {
            Some(previous) => previous.and(predicate),
            None => predicate,
        });
        self
    }

    /// One value per unit *and* per combination of these columns (for example per day).
    ///
    /// ```
    /// use oar_guest::{col, per_unit};
    /// let daily = per_unit::sum(col("kwh")).by(["day"]);
    /// assert_eq!(daily.columns(), vec!["kwh", "day"]);
    /// ```
    pub fn by<S: AsRef<str>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.by
            .extend(keys.into_iter().map(|k| k.as_ref().to_string()));
        self
    }

    /// The reduction.
    ///
    /// ```
    /// use oar_guest::{col, per_unit, plan::Reduce};
    /// assert_eq!(per_unit::any(col("consent")).reduce(), Reduce::Any);
    /// ```
    pub fn reduce(&self) -> Reduce {
        self.reduce
    }

    /// The columns this value reads: the reduced expression's, the row filter's, then `by`.
    ///
    /// ```
    /// use oar_guest::{col, per_unit};
    /// assert_eq!(per_unit::max(col("speed")).columns(), vec!["speed"]);
    /// ```
    pub fn columns(&self) -> Vec<&str> {
        let mut out = self.expr.columns();
        if let Some(r) = &self.rows {
            out.extend(r.columns());
        }
        out.extend(self.by.iter().map(String::as_str));
        out
    }

    /// The plan step that adds this value as column `name`.
    ///
    /// ```
    /// use oar_guest::{col, per_unit, plan::Step};
    /// let step = per_unit::count(col("trip_id")).into_step("trips");
    /// assert!(matches!(step, Step::PerUnit { ref name, .. } if name == "trips"));
    /// ```
    pub fn into_step(self, name: &str) -> Step {
        Step::PerUnit {
            name: name.to_string(),
            reduce: self.reduce,
            expr: self.expr,
            rows: self.rows,
            by: self.by,
        }
    }
}

/// The unit's most frequent value of `expr` (ties go to the smallest value). Keeps the
/// public domain, so the result can be a group key.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::mode(col("region")).reduce(), Reduce::Mode);
/// ```
pub fn mode(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Mode, expr)
}

/// The unit's smallest value of `expr`.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::min(col("timestamp")).reduce(), Reduce::Min);
/// ```
pub fn min(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Min, expr)
}

/// The unit's largest value of `expr`.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::max(col("timestamp")).reduce(), Reduce::Max);
/// ```
pub fn max(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Max, expr)
}

/// The mean of a numeric `expr` over the unit's rows (within the input's bounds).
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::mean(col("kwh")).reduce(), Reduce::Mean);
/// ```
pub fn mean(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Mean, expr)
}

/// The sum of a numeric `expr` over the unit's rows. The result has no declared bounds, so
/// an aggregate over it must give bounds (`sum_clamped`, `mean_clamped`, `quantile_clamped`).
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::sum(col("kwh")).reduce(), Reduce::Sum);
/// ```
pub fn sum(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Sum, expr)
}

/// The number of the unit's rows where `expr` is not null.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::count(col("trip_id")).reduce(), Reduce::Count);
/// ```
pub fn count(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Count, expr)
}

/// The number of distinct values of `expr` among the unit's rows.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::count_distinct(col("region")).reduce(), Reduce::CountDistinct);
/// ```
pub fn count_distinct(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::CountDistinct, expr)
}

/// True if the boolean `expr` holds on any of the unit's rows.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::any(col("opted_out")).reduce(), Reduce::Any);
/// ```
pub fn any(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::Any, expr)
}

/// True if the boolean `expr` holds on every one of the unit's rows.
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::all(col("consent")).reduce(), Reduce::All);
/// ```
pub fn all(expr: impl Into<Expr>) -> PerUnit {
    PerUnit::new(Reduce::All, expr)
}
