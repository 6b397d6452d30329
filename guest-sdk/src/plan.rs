//! The query plan: a small typed relational algebra a module sends to the host.
//!
//! A plan reads one dataset, filters and derives columns row by row, groups by keys with public
//! domains and computes aggregates over the privacy unit. The host validates every plan against
//! the dataset's schema and its policy before it compiles it to Polars; the module never sees the
//! rows the plan runs over, only the gated aggregate table.

use crate::Value;
use serde::{Deserialize, Serialize};

/// Most aggregates one plan may ask for; the host refuses a larger plan before it touches any
/// data (split it into several queries).
///
/// ```
/// assert_eq!(oar_guest::plan::MAX_AGGREGATES, 32);
/// ```
pub const MAX_AGGREGATES: usize = 32;

/// Most steps (filters, derived columns and per-unit reductions) one plan may have.
///
/// ```
/// assert!(oar_guest::plan::MAX_PER_UNIT_STEPS < oar_guest::plan::MAX_STEPS);
/// ```
pub const MAX_STEPS: usize = 64;

/// Most per-unit steps one plan may have (each is a window over every row of the dataset).
///
/// ```
/// assert_eq!(oar_guest::plan::MAX_PER_UNIT_STEPS, 8);
/// ```
pub const MAX_PER_UNIT_STEPS: usize = 8;

/// One aggregate query, released with `epsilon`. Modules build it with [`Query`](crate::Query);
/// this is the JSON the host receives.
///
/// ```
/// use oar_guest::plan::{Aggregate, Plan};
/// let json = r#"{"dataset": "cdr", "group_by": ["region"],
///                "aggregates": [{"agg": "count_units", "name": "n"}], "epsilon": 0.5}"#;
/// let plan: Plan = serde_json::from_str(json).unwrap();
/// assert_eq!(plan.aggregates, [Aggregate::CountUnits { name: "n".into() }]);
/// assert!(plan.steps.is_empty() && !plan.totals);
/// // A field a plan does not have is refused by name, never ignored.
/// let typo = json.replace("group_by", "groupby");
/// let err = serde_json::from_str::<Plan>(&typo).unwrap_err().to_string();
/// assert!(err.contains("unknown field `groupby`"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The dataset to read.
    pub dataset: String,
    /// Row-level steps applied in order (filters and derived columns).
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Key columns; each must have a public domain.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The statistics to compute per cell.
    pub aggregates: Vec<Aggregate>,
    /// Per-unit contribution bounds; `None` fields take the dataset's defaults.
    #[serde(default)]
    pub bounds: ContributionBounds,
    /// The privacy budget this release spends, split evenly across its aggregates.
    pub epsilon: f64,
    /// Also release totals and sub-totals over every subset of the keys (key value `"Total"`).
    /// The host computes each margin from the data with its own share of `epsilon`, and
    /// suppresses further cells (secondary suppression) wherever a suppressed cell could be
    /// recovered by subtracting released cells from a released total. At most 3 keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub totals: bool,
    /// Allow group keys without a public domain (text or integer columns): the host finds their
    /// values in the data and releases a key only if its noisy count of units passes the
    /// threshold and its true count the minimum (thresholded key selection). Keys that fail are
    /// left out entirely, never shown as suppressed. Costs a slightly larger delta.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_selection: bool,
}

impl Plan {
    /// The first of the host's plan-size limits this plan exceeds, as `(what, how many, limit)`
    /// ([`MAX_AGGREGATES`], [`MAX_STEPS`], [`MAX_PER_UNIT_STEPS`]). The SDK checks it before
    /// sending and the host before touching any data.
    ///
    /// ```
    /// use oar_guest::plan::{Aggregate, Plan, MAX_AGGREGATES};
    /// let mut plan: Plan = serde_json::from_str(
    ///     r#"{"dataset": "cdr", "aggregates": [], "epsilon": 0.5}"#).unwrap();
    /// assert_eq!(plan.over_size_limit(), None);
    /// plan.aggregates = (0..=MAX_AGGREGATES)
    ///     .map(|i| Aggregate::CountUnits { name: format!("n{i}") })
    ///     .collect();
    /// assert_eq!(plan.over_size_limit(), Some(("aggregates", 33, 32)));
    /// ```
    pub fn over_size_limit(&self) -> Option<(&'static str, usize, usize)> {
        let per_unit = self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::PerUnit { .. }))
            .count();
        [
            ("aggregates", self.aggregates.len(), MAX_AGGREGATES),
            ("steps", self.steps.len(), MAX_STEPS),
            ("per-unit steps", per_unit, MAX_PER_UNIT_STEPS),
        ]
        .into_iter()
        .find(|&(_, n, max)| n > max)
    }
}

/// A row-level step.
///
/// ```
/// use oar_guest::{col, plan::Step};
/// let step = Step::Derive { name: "day".into(), expr: col("timestamp").date() };
/// let json = serde_json::to_value(&step).unwrap();
/// assert_eq!(json["op"], "derive");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Keep the rows where `predicate` is true.
    Filter {
        /// A boolean expression.
        predicate: Expr,
    },
    /// Add a column `name` computed by `expr`.
    Derive {
        /// The new column's name.
        name: String,
        /// How to compute it.
        expr: Expr,
    },
    /// The per-unit stage: add a column `name` holding one value per privacy unit (or per unit
    /// and each combination of `by`), computed by reducing that unit's rows with `reduce`.
    /// Every row of the unit receives the value; it can then be a key, a filter or an
    /// aggregate's input like any other column. The value depends on that unit's rows alone,
    /// so each unit still contributes one bounded record per cell and the sensitivity is
    /// unchanged. Examples: a subscriber's home region (the most frequent region of their
    /// night-time rows), a meter's consent status, a vehicle's daily trip count.
    PerUnit {
        /// The new column's name.
        name: String,
        /// How the unit's values reduce to one.
        reduce: Reduce,
        /// The row-level expression reduced.
        expr: Expr,
        /// Only rows where this holds feed the reduction (all rows still receive the result;
        /// a unit with no such row gets null, which drops out of keys and aggregates).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<Expr>,
        /// Further columns to reduce within: one value per unit and per combination of these
        /// (for example per unit and day).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        by: Vec<String>,
    },
}

/// How a unit's rows reduce to one value in a [`Step::PerUnit`].
///
/// ```
/// use oar_guest::{col, per_unit, plan::Reduce};
/// assert_eq!(per_unit::count_distinct(col("cell_id")).reduce(), Reduce::CountDistinct);
/// assert_eq!(serde_json::to_string(&Reduce::CountDistinct).unwrap(), "\"count_distinct\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// The most frequent value (ties go to the smallest); keeps the input's public domain.
    Mode,
    /// The smallest value; keeps the input's domain and bounds.
    Min,
    /// The largest value; keeps the input's domain and bounds.
    Max,
    /// The mean of a number; keeps the input's bounds.
    Mean,
    /// The sum of a number (no bounds: give an aggregate over it explicit bounds).
    Sum,
    /// The number of rows where the input is not null.
    Count,
    /// The number of distinct values.
    CountDistinct,
    /// True if the boolean input holds on any row.
    Any,
    /// True if the boolean input holds on every row.
    All,
}

/// A row-level expression. Build it with [`col`](crate::col), [`lit`](crate::lit), the typed
/// handles ([`num`](crate::num)...) and their methods rather than by hand.
///
/// ```
/// use oar_guest::{col, lit, Expr};
/// let e = col("kwh").gt(0.5);
/// assert_eq!(
///     e,
///     Expr::Compare {
///         op: oar_guest::plan::CompareOp::Gt,
///         left: Box::new(Expr::Column { name: "kwh".into() }),
///         right: Box::new(lit(0.5)),
///     }
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expr {
    /// A column of the dataset or one derived earlier.
    Column {
        /// Its name.
        name: String,
    },
    /// A constant.
    Literal {
        /// The constant.
        value: Value,
    },
    /// A comparison; yields a boolean.
    Compare {
        /// Which comparison.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Arithmetic on numbers.
    Arith {
        /// Which operation.
        op: ArithOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Both true.
    And {
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Either true.
    Or {
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Negation.
    Not {
        /// The operand.
        expr: Box<Expr>,
    },
    /// True where the value is one of `values`.
    IsIn {
        /// The tested expression.
        expr: Box<Expr>,
        /// The accepted values.
        values: Vec<Value>,
    },
    /// The calendar day of a date or datetime, as a `YYYY-MM-DD` key.
    Date {
        /// A date or datetime expression.
        expr: Box<Expr>,
    },
    /// The hour of day (0 to 23) of a datetime.
    Hour {
        /// A datetime expression.
        expr: Box<Expr>,
    },
    /// The half-hour of day (0 to 47: 0 is 00:00–00:29, 47 is 23:30–23:59) of a datetime, the
    /// resolution of smart-meter load profiles.
    HalfHour {
        /// A datetime expression.
        expr: Box<Expr>,
    },
    /// The bin a number falls in, as a key `"[lo, hi)"` (the last bin includes its upper
    /// edge). `edges` are increasing; values outside `[first, last]` have no bin and their rows
    /// drop out. The bins are a public domain, so a histogram is a group-by on this key.
    Bin {
        /// A numeric expression.
        expr: Box<Expr>,
        /// Bin edges, strictly increasing, at least two.
        edges: Vec<f64>,
    },
}

/// Comparison operators.
///
/// ```
/// use oar_guest::{col, plan::CompareOp, Expr};
/// assert!(matches!(col("a").le(1), Expr::Compare { op: CompareOp::Le, .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Arithmetic operators.
///
/// ```
/// use oar_guest::{col, plan::ArithOp, Expr};
/// assert!(matches!(col("kwh") / 2, Expr::Arith { op: ArithOp::Div, .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// A statistic computed per cell.
///
/// ```
/// use oar_guest::plan::Aggregate;
/// let json = r#"{"agg": "sum", "name": "total", "column": "kwh", "bounds": [0.0, 5.0]}"#;
/// let a: Aggregate = serde_json::from_str(json).unwrap();
/// assert!(matches!(a, Aggregate::Sum { bounds: Some([0.0, 5.0]), .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "agg", rename_all = "snake_case", deny_unknown_fields)]
pub enum Aggregate {
    /// The number of distinct privacy units in the cell.
    CountUnits {
        /// Output column name.
        name: String,
    },
    /// The sum of `column`, each value clamped to `bounds` (the column's declared bounds when
    /// `None`) and each unit's rows per cell capped by the contribution bounds.
    Sum {
        /// Output column name.
        name: String,
        /// The numeric column to sum.
        column: String,
        /// Clamping bounds `[lower, upper]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bounds: Option<[f64; 2]>,
    },
    /// Bounded sum divided by the noisy count of contributing units per cell; the budget is split
    /// between the two.
    Mean {
        /// Output column name.
        name: String,
        /// The numeric column to average.
        column: String,
        /// Clamping bounds `[lower, upper]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bounds: Option<[f64; 2]>,
    },
    /// The `q`-quantile (0.5 = median, 0.9 = p90) of the units' values per cell: each unit
    /// contributes one value per cell (its mean there, clamped to `bounds`), the host counts
    /// units per bin of `bins` equal-width bins over `bounds` with noise, and the quantile is
    /// read off the noisy cumulative counts (interpolated within its bin).
    Quantile {
        /// Output column name.
        name: String,
        /// The numeric column.
        column: String,
        /// The quantile, in (0, 1).
        q: f64,
        /// Clamping bounds `[lower, upper]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bounds: Option<[f64; 2]>,
        /// Number of bins (resolution); 64 when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bins: Option<u32>,
    },
}

impl Aggregate {
    /// The output column name.
    ///
    /// ```
    /// use oar_guest::plan::Aggregate;
    /// assert_eq!(Aggregate::CountUnits { name: "n".into() }.name(), "n");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            Aggregate::CountUnits { name }
            | Aggregate::Sum { name, .. }
            | Aggregate::Mean { name, .. }
            | Aggregate::Quantile { name, .. } => name,
        }
    }
}

/// How much one privacy unit may contribute to one release. Declared, never learnt from data.
///
/// ```
/// use oar_guest::plan::ContributionBounds;
/// let b = ContributionBounds { max_groups_per_unit: Some(7), ..Default::default() };
/// assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"max_groups_per_unit":7}"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ContributionBounds {
    /// The most cells one unit may add to (its extra cells are dropped, deterministically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_groups_per_unit: Option<u32>,
    /// The most rows of one unit that count towards one cell's sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_per_group: Option<u32>,
}
