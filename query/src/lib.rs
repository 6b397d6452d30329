//! Plans: checking against a dataset's public schema, and execution by a query backend.
//!
//! Checking and execution are separate. [`check`] is pure and engine-free: it type-checks every
//! expression, resolves every public fact (key domains, clamping bounds, contribution bounds,
//! each aggregate's sensitivity) and refuses what does not fit, all from the plan, the public
//! schema and the policy, before any data is touched. Its output, a [`CheckedPlan`], is what a
//! [`QueryBackend`] executes next to the data; the result is [`CellStats`]: per cell, the true
//! number of distinct units and the true bounded sums. Those never leave the host; the gate turns
//! them into a noisy table, whatever backend computed them.
//!
//! Backends: [`PolarsBackend`] (the embedded default) and [`ReferenceBackend`] (small, slow and
//! obviously correct, to check the others against).

pub mod backend;
mod cell;
pub mod checked;
pub mod dataset;
mod per_unit;

use crate::dataset::Dataset;
pub use backend::{
    BackendError, PolarsBackend, PolarsEngine, QueryBackend, QueryEngine, ReferenceBackend,
};
use checked::{check_expr, Info};
pub use checked::{CheckedExpr, KeyIndex};
use oar_guest::plan::{Aggregate, Plan, Reduce, Step};
use oar_guest::{ColumnType, Value};
use std::collections::HashMap;

/// Why a plan was refused before it touched data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The plan named an unknown column.
    #[error("column '{column}' does not exist in dataset '{dataset}' (known: {known})")]
    UnknownColumn {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// Columns available at that step.
        known: String,
    },
    /// The plan tried to read the privacy-unit column.
    #[error(
        "column '{0}' is the privacy unit; plans may not read it (the host counts units itself)"
    )]
    PrivacyUnitReferenced(String),
    /// A type does not fit.
    #[error("type error: {0}")]
    Type(String),
    /// A group key has no public domain.
    #[error("group key '{0}' has no public domain; group by a column with a declared domain, derive one (date, hour, bin, a comparison), or let the host select keys from the data (key_selection)")]
    KeyWithoutDomain(String),
    /// The key domain is larger than the policy allows.
    #[error("the key domain has {cells} cells; the policy allows at most {max} per query")]
    TooManyCells {
        /// Cells the plan would produce.
        cells: usize,
        /// The policy's limit.
        max: usize,
    },
    /// A sum or mean has no clamping bounds.
    #[error("aggregate '{0}' needs clamping bounds: declare bounds for its column in the dataset descriptor or pass them in the plan")]
    MissingBounds(String),
    /// Anything else malformed.
    #[error("invalid plan: {0}")]
    Invalid(String),
}

/// An aggregate with everything the gate needs resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedAggregate {
    /// Distinct units per cell.
    CountUnits {
        /// Output column.
        name: String,
    },
    /// Bounded sum: each unit's per-cell total is clamped to
    /// `[rows * min(lower, 0), rows * max(upper, 0)]`.
    Sum {
        /// Output column.
        name: String,
        /// Clamping bounds of one row's value.
        bounds: [f64; 2],
    },
    /// Mean of per-unit means: each unit's per-cell mean lies in `bounds`.
    Mean {
        /// Output column.
        name: String,
        /// Clamping bounds of one row's value.
        bounds: [f64; 2],
    },
    /// The `q`-quantile of per-unit means, read off a noisy histogram of `bins` equal-width bins
    /// over `bounds`.
    Quantile {
        /// Output column.
        name: String,
        /// The quantile, in (0, 1).
        q: f64,
        /// Clamping bounds of one row's value.
        bounds: [f64; 2],
        /// Number of bins.
        bins: usize,
    },
}

impl ResolvedAggregate {
    /// How much one unit can change this aggregate in one cell: 1 for counts and quantile
    /// histograms, the largest absolute bound for a mean, that times the rows per cell for a
    /// sum. The gate multiplies it by the number of cells a unit may reach.
    pub fn per_cell_sensitivity(&self, max_rows_per_group: u32) -> f64 {
        match self {
            ResolvedAggregate::CountUnits { .. } | ResolvedAggregate::Quantile { .. } => 1.0,
            ResolvedAggregate::Sum { bounds, .. } => {
                f64::from(max_rows_per_group) * bounds[0].abs().max(bounds[1].abs())
            }
            ResolvedAggregate::Mean { bounds, .. } => bounds[0].abs().max(bounds[1].abs()),
        }
    }

    /// Output column name.
    pub fn name(&self) -> &str {
        match self {
            ResolvedAggregate::CountUnits { name }
            | ResolvedAggregate::Sum { name, .. }
            | ResolvedAggregate::Mean { name, .. }
            | ResolvedAggregate::Quantile { name, .. } => name,
        }
    }
}

/// A key column and its public domain.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// Key name.
    pub name: String,
    /// Its public values, in release order (empty for a key selected from the data).
    pub domain: Vec<Value>,
    /// For a key without a public domain (key selection), its type: its values come from the
    /// data and are released only for cells the gate selects.
    pub selected: Option<oar_guest::ColumnType>,
    /// For a key with a public domain: how a value maps to its position in it.
    pub index: Option<KeyIndex>,
}

/// A checked row-level step.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedStep {
    /// Keep the rows where the predicate is true.
    Filter(CheckedExpr),
    /// Add (or replace) a column.
    Derive {
        /// The column.
        name: String,
        /// Its value on each row.
        expr: CheckedExpr,
    },
    /// Add a column holding, on every row, a reduction of its unit's rows (see
    /// [`Reduce`] and the module `per_unit` for the semantics).
    PerUnit {
        /// The column.
        name: String,
        /// The reduction.
        reduce: Reduce,
        /// What is reduced.
        input: CheckedExpr,
        /// The input's type.
        input_ty: ColumnType,
        /// Only rows where this holds are reduced (all rows without it).
        rows: Option<CheckedExpr>,
        /// Further partition keys besides the unit.
        by: Vec<String>,
    },
}

/// What each unit contributes to one cell of a sum, mean or quantile.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInput {
    /// The row value: cast to a 64-bit float and clamped to `bounds` (null stays null).
    pub expr: CheckedExpr,
    /// Clamping bounds of one row's value.
    pub bounds: [f64; 2],
    /// How a unit's rows in a cell become its one value.
    pub per_unit: UnitValue,
    /// For a quantile: its number of histogram bins over `bounds`.
    pub quantile_bins: Option<usize>,
}

/// How a unit's (clamped) row values in one cell become its contribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnitValue {
    /// Their sum (of no non-null values: 0), clamped to `[lo, hi]`.
    Sum {
        /// Lower clamp.
        lo: f64,
        /// Upper clamp.
        hi: f64,
    },
    /// Their mean (of no non-null values: null).
    Mean,
}

/// A plan checked against a dataset's public schema and the policy, ready for a backend.
///
/// The sole constructor is [`check`], so a backend can only ever be handed a plan that passed
/// every check; the backend reads its parts through the accessors and computes [`CellStats`]:
///
/// 1. Scan the dataset; apply [`steps`](Self::steps) in order.
/// 2. Per row: the unit, the cell (from [`keys`](Self::keys); a row whose key falls outside a
///    public domain, or is null, has no cell and drops) and each [`values`](Self::values) input.
/// 3. Per (unit, cell): one record; each value input reduced per [`UnitValue`].
/// 4. If [`truncate`](Self::truncate): each unit keeps only its `max_groups_per_unit` records
///    with the lowest cell indices (with key selection, the lowest key-combination codes).
/// 5. Per cell: the number of records, and per value input the sum of non-null contributions
///    (non-finite read as 0), their count, the largest [`DOMINANCE_TOP`] absolute ones, the sum of
///    absolute ones, and for a quantile each unit's bin
///    `floor((v - lo) / (hi - lo) * bins + BIN_SNAP)` clamped to `[0, bins - 1]` ([`BIN_SNAP`]).
#[derive(Debug, Clone)]
pub struct CheckedPlan {
    /// The plan as sent.
    pub plan: Plan,
    /// Keys with their domains.
    pub keys: Vec<KeySpec>,
    /// Aggregates in plan order.
    pub aggregates: Vec<ResolvedAggregate>,
    /// Bound on cells per unit.
    pub max_groups_per_unit: u32,
    /// Bound on rows per unit per cell (sums).
    pub max_rows_per_group: u32,
    /// Number of cells in the key domain.
    pub cells: usize,
    /// The number of cells the threshold is calibrated for: the domain size for public keys,
    /// the policy's cell limit (independent of the data) with key selection.
    pub threshold_cells: usize,
    /// Columns of the dataset the plan reads (for scope checks).
    pub columns_read: Vec<String>,
    unit: String,
    steps: Vec<CheckedStep>,
    values: Vec<ValueInput>,
    truncate: bool,
}

/// True aggregates per cell; they never leave the host.
#[derive(Debug, Clone, PartialEq)]
pub struct CellStats {
    /// Distinct units per cell (after contribution bounding).
    pub units: Vec<i64>,
    /// Per sum/mean aggregate (in plan order), the per-cell total of per-unit values.
    pub sums: Vec<Vec<f64>>,
    /// Per sum/mean aggregate, per cell: the largest [`DOMINANCE_TOP`] per-unit absolute
    /// contributions (descending), and all per-unit absolute contributions added up (for the
    /// dominance rule).
    pub dominance: Vec<Vec<(Vec<f64>, f64)>>,
    /// Per sum/mean/quantile aggregate: for quantiles, the number of units per (cell, bin) at
    /// index `cell * bins + bin`; empty for sums and means.
    pub histograms: Vec<Vec<i64>>,
    /// Per sum/mean/quantile aggregate, per cell: how many units have a value (not null); a
    /// mean divides by this.
    pub valued: Vec<Vec<i64>>,
    /// With key selection: the key combinations found in the data (after filters and
    /// contribution bounding), one per cell, in release order. None for public key domains.
    /// They are candidates only: the gate releases those whose noisy count passes.
    pub observed: Option<Vec<Vec<Value>>>,
}

impl CellStats {
    /// All-zero statistics for `cells` cells of `plan` (with key selection, `observed` names
    /// them): what a backend fills in.
    pub fn zeros(plan: &CheckedPlan, cells: usize, observed: Option<Vec<Vec<Value>>>) -> Self {
        let n = plan.values.len();
        CellStats {
            units: vec![0; cells],
            sums: vec![vec![0.0; cells]; n],
            valued: vec![vec![0; cells]; n],
            dominance: vec![vec![(Vec::new(), 0.0); cells]; n],
            histograms: plan
                .values
                .iter()
                .map(|v| v.quantile_bins.map_or(Vec::new(), |b| vec![0; cells * b]))
                .collect(),
            observed,
        }
    }

    /// Number of cells measured.
    pub fn cells(&self) -> usize {
        self.units.len()
    }
}

/// A unit's quantile bin is `floor(x + BIN_SNAP)` for its position `x` in bin widths. Clamped
/// values are often exactly a bound, so a mean of them often lands exactly on a bin edge (six
/// rows at 3 and one at -3 average 15/7, an edge of 7 bins over [-3, 3]); engines that add in
/// different orders then differ in the last bit and would put the unit in different bins. The
/// snap puts every value within 1e-9 bin widths of an edge in the bin above it, in every
/// backend. (It is a fixed function of the unit's value: the histogram's sensitivity is
/// unchanged.)
pub const BIN_SNAP: f64 = 1e-9;

/// Default number of bins of a quantile's histogram.
pub const DEFAULT_QUANTILE_BINS: u32 = 64;
/// Most bins a quantile may ask for.
pub const MAX_QUANTILE_BINS: u32 = 1024;

/// How many of a cell's largest contributors the query measures for the dominance rule (the
/// policy's `n` may be at most this).
pub const DOMINANCE_TOP: usize = 5;

/// The plan-size limits are part of the plan contract, shared with the SDK (which checks them
/// before sending).
pub use oar_guest::plan::{MAX_AGGREGATES, MAX_PER_UNIT_STEPS, MAX_STEPS};
/// Most expression nodes across a plan's steps.
pub const MAX_EXPRESSION_NODES: usize = 4096;
/// Most noise draws one plan may need: every cell of every noisy vector the gate measures
/// (cells × (1 + up to 4 per sum or mean), plus cells × bins per quantile). OpenDP's exact
/// samplers take about 10 µs a draw on a 2-core machine, so this bounds the gate's work to
/// seconds (a quantile plan of 1.8 million counters took 20 s; the run's deadline also
/// stops the gate between chunks of draws).
pub const MAX_NOISE_DRAWS: usize = 1_000_000;

/// The host's cost bound on a plan, decided from the plan alone before any data is touched: its
/// size ([`Plan::over_size_limit`], shared with the SDK) and its expression nodes. Together
/// with the cell limit and the bound on noise draws (checked once the cells are known), this
/// bounds the time and memory a query can take next to the data. (Before, one plan with 1,000
/// sums took 4.3 GB, and 2,500 per-unit steps 1.5 GB on 50k rows.)
fn check_plan_size(plan: &Plan) -> Result<(), QueryError> {
    let too_big = |what: &str, n: usize, max: usize| {
        Err(QueryError::Invalid(format!(
            "the plan has {n} {what}; the host allows at most {max} per query (split it into several queries)"
        )))
    };
    if let Some((what, n, max)) = plan.over_size_limit() {
        return too_big(what, n, max);
    }
    let nodes: usize = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::Filter { predicate } => expression_nodes(predicate),
            Step::Derive { expr, .. } => expression_nodes(expr),
            Step::PerUnit { expr, rows, .. } => {
                expression_nodes(expr) + rows.as_ref().map_or(0, expression_nodes)
            }
        })
        .sum();
    if nodes > MAX_EXPRESSION_NODES {
        return too_big("expression nodes", nodes, MAX_EXPRESSION_NODES);
    }
    Ok(())
}

/// The number of nodes of an expression tree (a list of `is_in` values counts by its length).
fn expression_nodes(e: &oar_guest::plan::Expr) -> usize {
    use oar_guest::plan::Expr as E;
    1 + match e {
        E::Column { .. } | E::Literal { .. } => 0,
        E::Compare { left, right, .. }
        | E::Arith { left, right, .. }
        | E::And { left, right }
        | E::Or { left, right } => expression_nodes(left) + expression_nodes(right),
        E::Not { expr } | E::Date { expr } | E::Hour { expr } | E::HalfHour { expr } => {
            expression_nodes(expr)
        }
        E::IsIn { expr, values } => expression_nodes(expr) + values.len() / 64,
        E::Bin { expr, edges } => expression_nodes(expr) + edges.len(),
    }
}

/// Limits the policy puts on plans.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    /// Most cells a query may produce.
    pub max_output_cells: usize,
    /// Largest contribution bound a plan may ask for.
    pub max_groups_per_unit: u32,
}

/// Checks `plan` against `dataset`'s public schema and the policy's `limits`.
///
/// With `key_selection`, keys without a public domain are allowed (text and integer keys): the
/// cells are then the key combinations found in the data, each unit's contribution bounded to
/// `max_groups_per_unit` of them, and the gate decides from noisy counts alone which of them
/// appear ([`CellStats::observed`]). Checking never looks at the data, so every refusal comes
/// before the data is touched.
pub fn check(
    plan: &Plan,
    dataset: &Dataset,
    limits: PlanLimits,
) -> Result<CheckedPlan, QueryError> {
    check_against_schema(plan, &dataset.schema(), limits)
}

/// [`check`] against a schema alone.
pub fn check_against_schema(
    plan: &Plan,
    schema: &oar_guest::schema::DatasetSchema,
    limits: PlanLimits,
) -> Result<CheckedPlan, QueryError> {
    if plan.dataset != schema.name {
        return Err(QueryError::Invalid(format!(
            "plan is for dataset '{}' but was sent to '{}'",
            plan.dataset, schema.name
        )));
    }
    if !(plan.epsilon.is_finite() && plan.epsilon > 0.0) {
        return Err(QueryError::Invalid(format!(
            "epsilon must be positive, got {}",
            plan.epsilon
        )));
    }
    if plan.aggregates.is_empty() {
        return Err(QueryError::Invalid(
            "a plan needs at least one aggregate".into(),
        ));
    }
    check_plan_size(plan)?;
    let mut names = std::collections::HashSet::new();
    for a in &plan.aggregates {
        if !names.insert(a.name()) || a.name().starts_with("__") || a.name().is_empty() {
            return Err(QueryError::Invalid(format!(
                "aggregate name '{}' is empty, reserved or repeated",
                a.name()
            )));
        }
    }

    let (steps, env, mut columns_read) = check_steps(plan, schema)?;
    let ctx = checked::CheckCtx {
        dataset: &schema.name,
        unit: &schema.privacy_unit,
    };

    // Keys and their index expressions.
    let mut keys = Vec::new();
    let mut cells: usize = 1;
    for k in &plan.group_by {
        let info = env.get(k).ok_or_else(|| {
            if k == &schema.privacy_unit {
                QueryError::PrivacyUnitReferenced(k.clone())
            } else {
                QueryError::UnknownColumn {
                    dataset: schema.name.clone(),
                    column: k.clone(),
                    known: env.keys().cloned().collect::<Vec<_>>().join(", "),
                }
            }
        })?;
        if !columns_read.contains(k) && schema.column(k).is_some() {
            columns_read.push(k.clone());
        }
        let (domain, index) = match info.key_index() {
            Some(found) => (found.0, Some(found.1)),
            None if plan.key_selection => match info.ty {
                oar_guest::ColumnType::Str | oar_guest::ColumnType::Int => (Vec::new(), None),
                other => {
                    return Err(QueryError::Type(format!(
                        "key selection works on text and integer keys; '{k}' is {other:?}"
                    )))
                }
            },
            None => return Err(QueryError::KeyWithoutDomain(k.clone())),
        };
        if domain.is_empty() && index.is_some() {
            return Err(QueryError::KeyWithoutDomain(k.clone()));
        }
        cells = cells.saturating_mul(domain.len().max(1));
        if cells > limits.max_output_cells {
            return Err(QueryError::TooManyCells {
                cells,
                max: limits.max_output_cells,
            });
        }
        keys.push(KeySpec {
            name: k.clone(),
            domain,
            selected: index.is_none().then_some(info.ty),
            index,
        });
    }

    // Aggregates.
    let n_groups = plan
        .bounds
        .max_groups_per_unit
        .unwrap_or(schema.max_groups_per_unit);
    let n_rows = plan
        .bounds
        .max_rows_per_group
        .unwrap_or(schema.max_rows_per_group);
    if n_groups == 0 || n_rows == 0 {
        return Err(QueryError::Invalid(
            "contribution bounds must be at least 1".into(),
        ));
    }
    if n_groups > limits.max_groups_per_unit {
        return Err(QueryError::Invalid(format!(
            "max_groups_per_unit {n_groups} exceeds the policy's limit of {}",
            limits.max_groups_per_unit
        )));
    }
    let mut aggregates = Vec::new();
    let mut values: Vec<ValueInput> = Vec::new();
    for a in &plan.aggregates {
        match a {
            Aggregate::CountUnits { name } => {
                aggregates.push(ResolvedAggregate::CountUnits { name: name.clone() })
            }
            Aggregate::Quantile {
                name,
                column,
                q,
                bounds,
                bins,
            } => {
                if !(*q > 0.0 && *q < 1.0) {
                    return Err(QueryError::Invalid(format!(
                        "aggregate '{name}': quantile q must be in (0, 1), got {q}"
                    )));
                }
                let bins = bins.unwrap_or(DEFAULT_QUANTILE_BINS);
                if !(2..=MAX_QUANTILE_BINS).contains(&bins) {
                    return Err(QueryError::Invalid(format!(
                        "aggregate '{name}': bins must be between 2 and {MAX_QUANTILE_BINS}, got {bins}"
                    )));
                }
                let (e, [lo, hi]) =
                    numeric_input(name, column, *bounds, &env, &ctx, &mut columns_read)?;
                if lo >= hi {
                    return Err(QueryError::Invalid(format!(
                        "aggregate '{name}': a quantile needs lower < upper bounds"
                    )));
                }
                values.push(ValueInput {
                    expr: e,
                    bounds: [lo, hi],
                    per_unit: UnitValue::Mean,
                    quantile_bins: Some(bins as usize),
                });
                aggregates.push(ResolvedAggregate::Quantile {
                    name: name.clone(),
                    q: *q,
                    bounds: [lo, hi],
                    bins: bins as usize,
                });
            }
            Aggregate::Sum {
                name,
                column,
                bounds,
            }
            | Aggregate::Mean {
                name,
                column,
                bounds,
            } => {
                let (e, [lo, hi]) =
                    numeric_input(name, column, *bounds, &env, &ctx, &mut columns_read)?;
                let sum = matches!(a, Aggregate::Sum { .. });
                let m = f64::from(n_rows);
                values.push(ValueInput {
                    expr: e,
                    bounds: [lo, hi],
                    per_unit: if sum {
                        UnitValue::Sum {
                            lo: m * lo.min(0.0),
                            hi: m * hi.max(0.0),
                        }
                    } else {
                        UnitValue::Mean
                    },
                    quantile_bins: None,
                });
                if sum {
                    aggregates.push(ResolvedAggregate::Sum {
                        name: name.clone(),
                        bounds: [lo, hi],
                    });
                } else {
                    aggregates.push(ResolvedAggregate::Mean {
                        name: name.clone(),
                        bounds: [lo, hi],
                    });
                }
            }
        }
    }

    // With key selection the cells are found in the data; the policy's cell limit, a number
    // that does not depend on the data, bounds them (and calibrates the threshold).
    let threshold_cells = if plan.key_selection {
        limits.max_output_cells.max(cells)
    } else {
        cells
    };
    let per_cell: usize = 1 + values
        .iter()
        .map(|v| v.quantile_bins.unwrap_or(4))
        .fold(0, usize::saturating_add);
    let draws = threshold_cells.saturating_mul(per_cell);
    if draws > MAX_NOISE_DRAWS {
        return Err(QueryError::Invalid(format!(
            "the plan needs up to {draws} noise draws (cells × noisy figures per cell, a quantile's bins each); the host allows at most {MAX_NOISE_DRAWS} per query (use fewer cells, bins or aggregates)"
        )));
    }

    // Contribution bounding is a no-op (and skipped) when the domain has no more cells than
    // the bound.
    let truncate = plan.key_selection || (n_groups as usize) < cells;
    // The scope check is about the dataset's columns; derived ones are computed from them.
    columns_read.retain(|c| schema.column(c).is_some());

    Ok(CheckedPlan {
        plan: plan.clone(),
        keys,
        aggregates,
        max_groups_per_unit: n_groups,
        max_rows_per_group: n_rows,
        cells,
        threshold_cells,
        columns_read,
        unit: schema.privacy_unit.clone(),
        steps,
        values,
        truncate,
    })
}

/// Checks the numeric input `column` of aggregate `name`; returns it and its clamping bounds
/// (`bounds`, or the column's declared bounds).
fn numeric_input(
    name: &str,
    column: &str,
    bounds: Option<[f64; 2]>,
    env: &HashMap<String, Info>,
    ctx: &checked::CheckCtx<'_>,
    columns_read: &mut Vec<String>,
) -> Result<(CheckedExpr, [f64; 2]), QueryError> {
    let (e, info) = check_expr(&oar_guest::col(column), env, ctx, columns_read)?;
    if !info.ty.is_numeric() {
        return Err(QueryError::Type(format!(
            "aggregate '{name}': column '{column}' is {:?}, not numeric",
            info.ty
        )));
    }
    let [lo, hi] = bounds
        .or(info.bounds)
        .ok_or_else(|| QueryError::MissingBounds(name.to_string()))?;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(QueryError::Invalid(format!(
            "aggregate '{name}': bounds must be finite with lower <= upper"
        )));
    }
    Ok((e, [lo, hi]))
}

/// A plan's steps checked: the steps, the public facts of every column then available, and the
/// dataset columns read so far.
type Stepped = (Vec<CheckedStep>, HashMap<String, Info>, Vec<String>);

/// Checks `plan`'s filters and derived columns in order.
fn check_steps(
    plan: &Plan,
    schema: &oar_guest::schema::DatasetSchema,
) -> Result<Stepped, QueryError> {
    let mut env: HashMap<String, Info> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), Info::of_column(c)))
        .collect();
    let mut columns_read = Vec::new();
    let ctx = checked::CheckCtx {
        dataset: &schema.name,
        unit: &schema.privacy_unit,
    };
    let mut steps = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        match step {
            Step::Filter { predicate } => {
                let (e, info) = check_expr(predicate, &env, &ctx, &mut columns_read)?;
                if info.ty != ColumnType::Bool {
                    return Err(QueryError::Type(format!(
                        "a filter must be boolean, got {:?}",
                        info.ty
                    )));
                }
                steps.push(CheckedStep::Filter(e));
            }
            Step::Derive { name, expr } => {
                check_derived_name(name, &schema.privacy_unit)?;
                let (e, info) = check_expr(expr, &env, &ctx, &mut columns_read)?;
                steps.push(CheckedStep::Derive {
                    name: name.clone(),
                    expr: e,
                });
                env.insert(name.clone(), info);
            }
            Step::PerUnit {
                name,
                reduce,
                expr,
                rows,
                by,
            } => {
                check_derived_name(name, &schema.privacy_unit)?;
                let step = per_unit::PerUnitStep {
                    name,
                    reduce: *reduce,
                    expr,
                    rows: rows.as_ref(),
                    by,
                };
                let (checked, info) =
                    per_unit::check_per_unit(&step, &env, &ctx, &mut columns_read)?;
                steps.push(checked);
                env.insert(name.clone(), info);
            }
        }
    }
    Ok((steps, env, columns_read))
}

/// Refuses a derived column name that is empty, reserved (`__`) or the privacy unit's.
fn check_derived_name(name: &str, unit: &str) -> Result<(), QueryError> {
    if name.starts_with("__") || name == unit || name.is_empty() {
        return Err(QueryError::Invalid(format!(
            "cannot derive a column named '{name}'"
        )));
    }
    Ok(())
}

impl CheckedPlan {
    /// The dataset's privacy-unit column.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// The row-level steps, in order.
    pub fn steps(&self) -> &[CheckedStep] {
        &self.steps
    }

    /// The inputs of the sum, mean and quantile aggregates, in plan order.
    pub fn values(&self) -> &[ValueInput] {
        &self.values
    }

    /// Whether each unit's records must be cut to `max_groups_per_unit` cells (false when the
    /// domain has no more cells than the bound, where the cut is a no-op).
    pub fn truncate(&self) -> bool {
        self.truncate
    }

    /// The dataset columns a backend must read: those the plan reads and the unit.
    pub fn scan_columns(&self) -> Vec<String> {
        let mut out = vec![self.unit.clone()];
        out.extend(
            self.columns_read
                .iter()
                .filter(|c| **c != self.unit)
                .cloned(),
        );
        out
    }

    /// The public cell index of a row's key positions (one per key, each in its domain), in
    /// mixed radix with the last key fastest: the order cells are released in, and the order
    /// contribution bounding keeps the lowest of.
    pub fn cell_index(&self, positions: &[usize]) -> usize {
        positions
            .iter()
            .zip(&self.keys)
            .fold(0, |acc, (p, k)| acc * k.domain.len() + p)
    }

    /// With key selection, the text code of a row's key combination: per key, `<chars>:<text>`,
    /// where the text is the value's position in its public domain or the value itself. The
    /// length prefixes make it injective; contribution bounding keeps a unit's codes that sort
    /// lowest by bytes (a choice from the unit's own rows).
    pub fn cell_code(&self, texts: &[&str]) -> String {
        cell::encode(texts)
    }

    /// Key values of cell `index` of `stats`.
    pub fn keys_of(&self, stats: &CellStats, index: usize) -> Vec<Value> {
        match &stats.observed {
            Some(found) => found[index].clone(),
            None => self.cell_keys(index),
        }
    }

    /// Key values of cell `index` of the public key domain.
    pub fn cell_keys(&self, mut index: usize) -> Vec<Value> {
        let mut out = vec![Value::Bool(false); self.keys.len()];
        for (i, k) in self.keys.iter().enumerate().rev() {
            let n = k.domain.len();
            out[i] = k.domain[index % n].clone();
            index /= n;
        }
        out
    }

    /// With key selection: the observed key combinations of `codes` (each a cell code, see
    /// [`cell_code`](Self::cell_code)) in release order, and for each code its slot in that
    /// order (None if it is not a valid code).
    pub fn order_observed(&self, codes: &[Option<&str>]) -> (Vec<Option<usize>>, Vec<Vec<Value>>) {
        let mut found: Vec<(usize, Vec<Value>)> = codes
            .iter()
            .enumerate()
            .filter_map(|(row, c)| Some((row, cell::decode(c.as_ref()?, &self.keys)?)))
            .collect();
        found.sort_by(|a, b| cell::compare_keys(&a.1, &b.1));
        let mut slots = vec![None; codes.len()];
        for (slot, (row, _)) in found.iter().enumerate() {
            slots[*row] = Some(slot);
        }
        (slots, found.into_iter().map(|(_, k)| k).collect())
    }
}
