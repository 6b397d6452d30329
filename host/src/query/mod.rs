//! Plans: validation against a dataset's public schema, and compilation to a Polars `LazyFrame`.
//!
//! [`compile`] type-checks every expression as it lowers it, so a plan that reaches Polars is one
//! whose columns exist, whose types fit, whose group keys all have public domains, and which never
//! reads the privacy-unit column. Its output is [`CellStats`]: per cell of the public key domain,
//! the true number of distinct units and the true bounded sums. Those never leave the host; the
//! gate turns them into a noisy table.

mod expr;
mod per_unit;

use crate::dataset::Dataset;
use expr::{lower, Info};
use oar_guest::plan::{Aggregate, Plan, Step};
use oar_guest::Value;
use polars::prelude::*;
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
    /// Its public values, in release order.
    pub domain: Vec<Value>,
}

/// A validated plan ready to run.
pub struct CompiledPlan {
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
    frame: LazyFrame,
    /// Number of sum/mean/quantile value columns in `frame` (`__v0`, `__v1`, ...).
    value_columns: usize,
    /// Per value column: its number of histogram bins if it is a quantile's.
    quantile_bins: Vec<Option<usize>>,
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
}

/// Default number of bins of a quantile's histogram.
pub const DEFAULT_QUANTILE_BINS: u32 = 64;
/// Most bins a quantile may ask for.
pub const MAX_QUANTILE_BINS: u32 = 1024;

/// How many of a cell's largest contributors the query measures for the dominance rule (the
/// policy's `n` may be at most this).
pub const DOMINANCE_TOP: usize = 5;

/// Limits the policy puts on plans.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    /// Most cells a query may produce.
    pub max_output_cells: usize,
    /// Largest contribution bound a plan may ask for.
    pub max_groups_per_unit: u32,
}

const UNIT: &str = "__unit";
const CELL: &str = "__cell";
const UNITS: &str = "__units";

/// Validates `plan` against `dataset` and builds the Polars pipeline that computes its
/// [`CellStats`].
pub fn compile(
    plan: &Plan,
    dataset: &Dataset,
    limits: PlanLimits,
) -> Result<CompiledPlan, QueryError> {
    compile_with_keys(plan, dataset, limits, None)
}

/// [`compile`], with the key values [`discover_keys`] found for a plan with key selection.
/// Without them, keys lacking a public domain get a placeholder, which is enough to validate
/// the plan before any data is touched.
pub fn compile_with_keys(
    plan: &Plan,
    dataset: &Dataset,
    limits: PlanLimits,
    observed: Option<&HashMap<String, Vec<Value>>>,
) -> Result<CompiledPlan, QueryError> {
    let schema = dataset.schema();
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
    let mut names = std::collections::HashSet::new();
    for a in &plan.aggregates {
        if !names.insert(a.name()) || a.name().starts_with("__") || a.name().is_empty() {
            return Err(QueryError::Invalid(format!(
                "aggregate name '{}' is empty, reserved or repeated",
                a.name()
            )));
        }
    }

    let (lf, env, mut columns_read) = apply_steps(plan, dataset)?;
    let ctx = expr::LowerCtx {
        dataset: &schema.name,
        unit: &schema.privacy_unit,
    };

    // Keys and their index expressions.
    let mut keys = Vec::new();
    let mut key_index = Vec::new();
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
            Some(found) => found,
            None if plan.key_selection => {
                let placeholder = match info.ty {
                    oar_guest::ColumnType::Str => Value::Str(String::new()),
                    oar_guest::ColumnType::Int => Value::Int(0),
                    other => {
                        return Err(QueryError::Type(format!(
                            "key selection works on text and integer keys; '{k}' is {other:?}"
                        )))
                    }
                };
                let values = observed
                    .and_then(|o| o.get(k))
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| vec![placeholder]);
                let discovered = Info {
                    domain: Some(values),
                    ..info.clone()
                };
                discovered.key_index().expect("a domain was just set")
            }
            None => return Err(QueryError::KeyWithoutDomain(k.clone())),
        };
        if domain.is_empty() {
            return Err(QueryError::KeyWithoutDomain(k.clone()));
        }
        cells = cells.saturating_mul(domain.len());
        if cells > limits.max_output_cells {
            return Err(QueryError::TooManyCells {
                cells,
                max: limits.max_output_cells,
            });
        }
        keys.push(KeySpec {
            name: k.clone(),
            domain,
        });
        key_index.push(index);
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
    let mut value_exprs = Vec::new();
    let mut unit_stage = Vec::new();
    let mut quantile_bins: Vec<Option<(f64, f64, usize)>> = Vec::new();
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
                let v = format!("__v{}", value_exprs.len());
                value_exprs.push(e.alias(v.as_str()));
                unit_stage.push(col(v.as_str()).mean().alias(v.as_str()));
                quantile_bins.push(Some((lo, hi, bins as usize)));
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
                let v = format!("__v{}", value_exprs.len());
                value_exprs.push(e.alias(v.as_str()));
                quantile_bins.push(None);
                if matches!(a, Aggregate::Sum { .. }) {
                    let m = f64::from(n_rows);
                    unit_stage.push(
                        col(v.as_str())
                            .sum()
                            .clip(lit(m * lo.min(0.0)), lit(m * hi.max(0.0)))
                            .alias(v.as_str()),
                    );
                    aggregates.push(ResolvedAggregate::Sum {
                        name: name.clone(),
                        bounds: [lo, hi],
                    });
                } else {
                    unit_stage.push(col(v.as_str()).mean().alias(v.as_str()));
                    aggregates.push(ResolvedAggregate::Mean {
                        name: name.clone(),
                        bounds: [lo, hi],
                    });
                }
            }
        }
    }

    // Rows -> (unit, cell index, clamped values) -> one record per (unit, cell), at most
    // `n_groups` cells per unit -> per-cell totals.
    //
    // Cell index: mixed radix over the key domains; rows outside the domains get null and drop.
    let mut cell = lit(0u64);
    let mut stride: u64 = 1;
    for (index, key) in key_index.iter().zip(&keys).rev() {
        cell = cell + index.expr(col(key.name.as_str())).cast(DataType::UInt64) * lit(stride);
        stride *= index.len() as u64;
    }
    let mut select = vec![
        col(schema.privacy_unit.as_str()).alias(UNIT),
        cell.alias(CELL),
    ];
    select.extend(value_exprs.iter().cloned());
    let rows = lf.select(select).filter(col(CELL).is_not_null());
    // Contribution bounding keeps each unit's `n_groups` lowest cell indices: a choice that depends
    // on this unit's rows alone, so adding or removing another unit cannot change it. It is a
    // no-op (and skipped) when the domain has no more cells than the bound.
    let truncate = (n_groups as usize) < cells;
    let value_names: Vec<String> = (0..value_exprs.len()).map(|i| format!("__v{i}")).collect();
    let per_unit_cell = if value_names.is_empty() {
        // Count-only plans: one group-by on the unit collects its distinct cells. Only units with
        // more than `n_groups` cells need their cells sorted and cut; for the others the cut is a
        // no-op, so they skip it (same result, far less sorting).
        let cells_of_unit = rows.group_by([col(UNIT)]).agg([col(CELL).unique()]).cache();
        let cells_of_unit = if truncate {
            let n = lit(n_groups);
            let over = col(CELL).list().len().gt(n.clone());
            let within = cells_of_unit.clone().filter(over.clone().not());
            let cut = cells_of_unit
                .filter(over)
                .with_column(col(CELL).list().sort(SortOptions::default()).list().head(n));
            concat([within, cut], UnionArgs::default())
                .map_err(|e| QueryError::Invalid(format!("cannot build the query: {e}")))?
        } else {
            cells_of_unit
        };
        cells_of_unit.explode(cols([CELL]))
    } else {
        let per = rows.group_by([col(UNIT), col(CELL)]).agg(unit_stage);
        if truncate {
            // Each unit's cells in index order, cut to the bound; its values follow its cells.
            let n = Some(n_groups as usize);
            let order = SortMultipleOptions::default();
            let mut kept = vec![col(CELL).sort(SortOptions::default()).head(n)];
            kept.extend(
                value_names
                    .iter()
                    .map(|v| col(v.as_str()).sort_by([col(CELL)], order.clone()).head(n)),
            );
            let mut exploded = vec![CELL.to_string()];
            exploded.extend(value_names.iter().cloned());
            per.group_by([col(UNIT)]).agg(kept).explode(cols(exploded))
        } else {
            per
        }
    };
    let mut cell_aggs = vec![len().alias(UNITS)];
    cell_aggs.extend(value_names.iter().map(|v| col(v.as_str()).sum()));
    // For the dominance rule: each cell's largest per-unit contributions, sorted, and the
    // total of absolute contributions.
    cell_aggs.extend(value_names.iter().map(|v| {
        col(v.as_str())
            .abs()
            .sort(SortOptions::default().with_order_descending(true))
            .head(Some(DOMINANCE_TOP))
            .alias(format!("{v}_top"))
    }));
    cell_aggs.extend(
        value_names
            .iter()
            .map(|v| col(v.as_str()).abs().sum().alias(format!("{v}_abs"))),
    );
    // For quantiles: each unit's bin, collected per cell.
    for (v, q) in value_names.iter().zip(&quantile_bins) {
        if let Some((lo, hi, bins)) = *q {
            cell_aggs.push(
                ((col(v.as_str()) - lit(lo)) / lit(hi - lo) * lit(bins as f64))
                    .floor()
                    .clip(lit(0.0), lit((bins - 1) as f64))
                    .cast(DataType::UInt32)
                    .alias(format!("{v}_bins")),
            );
        }
    }
    let frame = per_unit_cell.group_by([col(CELL)]).agg(cell_aggs);
    // The scope check is about the dataset's columns; derived ones are computed from them.
    columns_read.retain(|c| schema.column(c).is_some());

    Ok(CompiledPlan {
        plan: plan.clone(),
        keys,
        aggregates,
        max_groups_per_unit: n_groups,
        max_rows_per_group: n_rows,
        cells,
        threshold_cells: if plan.key_selection {
            limits.max_output_cells.max(cells)
        } else {
            cells
        },
        columns_read,
        frame,
        value_columns: value_exprs.len(),
        quantile_bins: quantile_bins.iter().map(|q| q.map(|(_, _, b)| b)).collect(),
    })
}

/// Lowers the numeric input `column` of aggregate `name`, clamped to `bounds` (or the column's
/// declared bounds) as Float64; returns the expression and the bounds.
fn numeric_input(
    name: &str,
    column: &str,
    bounds: Option<[f64; 2]>,
    env: &HashMap<String, Info>,
    ctx: &expr::LowerCtx<'_>,
    columns_read: &mut Vec<String>,
) -> Result<(Expr, [f64; 2]), QueryError> {
    let (e, info) = lower(&oar_guest::col(column), env, ctx, columns_read)?;
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
    Ok((e.cast(DataType::Float64).clip(lit(lo), lit(hi)), [lo, hi]))
}

/// A scan with a plan's steps applied: the frame, the public facts of every column then
/// available, and the dataset columns read so far.
type Stepped = (LazyFrame, HashMap<String, Info>, Vec<String>);

/// The dataset scanned with `plan`'s filters and derived columns applied.
fn apply_steps(plan: &Plan, dataset: &Dataset) -> Result<Stepped, QueryError> {
    let schema = dataset.schema();
    let mut env: HashMap<String, Info> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), Info::of_column(c)))
        .collect();
    let mut columns_read = Vec::new();
    let ctx = expr::LowerCtx {
        dataset: &schema.name,
        unit: &schema.privacy_unit,
    };
    let mut lf = dataset.scan().map_err(|_| {
        QueryError::Invalid("the dataset's files cannot be opened on this host".into())
    })?;
    for step in &plan.steps {
        match step {
            Step::Filter { predicate } => {
                let (e, info) = lower(predicate, &env, &ctx, &mut columns_read)?;
                if info.ty != oar_guest::ColumnType::Bool {
                    return Err(QueryError::Type(format!(
                        "a filter must be boolean, got {:?}",
                        info.ty
                    )));
                }
                lf = lf.filter(e);
            }
            Step::Derive { name, expr } => {
                check_derived_name(name, &schema.privacy_unit)?;
                let (e, info) = lower(expr, &env, &ctx, &mut columns_read)?;
                lf = lf.with_column(e.alias(name.as_str()));
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
                let (e, info) = per_unit::lower_per_unit(&step, &env, &ctx, &mut columns_read)?;
                lf = lf.with_column(e.alias(name.as_str()));
                env.insert(name.clone(), info);
            }
        }
    }

    Ok((lf, env, columns_read))
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

/// The distinct values of `plan`'s group keys that have no public domain, found in the data
/// after the plan's steps (for thresholded key selection). Each list is sorted. Runs next to
/// the data: call it only after the query's budget is reserved.
pub fn discover_keys(
    plan: &Plan,
    dataset: &Dataset,
) -> Result<HashMap<String, Vec<Value>>, DiscoverError> {
    let (lf, env, _) = apply_steps(plan, dataset).map_err(DiscoverError::Plan)?;
    let mut found = HashMap::new();
    for k in &plan.group_by {
        let Some(info) = env.get(k) else { continue };
        if info.domain.is_some() {
            continue;
        }
        let values = lf
            .clone()
            .select([col(k.as_str())])
            .drop_nulls(None)
            .unique(None, UniqueKeepStrategy::Any)
            .sort([k.as_str()], SortMultipleOptions::default())
            .collect()
            .map_err(DiscoverError::Polars)?;
        let column = values.column(k).map_err(DiscoverError::Polars)?;
        let list: Vec<Value> = match info.ty {
            oar_guest::ColumnType::Int => column
                .cast(&DataType::Int64)
                .map_err(DiscoverError::Polars)?
                .i64()
                .map_err(DiscoverError::Polars)?
                .into_no_null_iter()
                .map(Value::Int)
                .collect(),
            _ => column
                .cast(&DataType::String)
                .map_err(DiscoverError::Polars)?
                .str()
                .map_err(DiscoverError::Polars)?
                .into_no_null_iter()
                .map(|s| Value::Str(s.to_string()))
                .collect(),
        };
        found.insert(k.clone(), list);
    }
    Ok(found)
}

/// Why key discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The plan does not validate.
    #[error("{0}")]
    Plan(QueryError),
    /// Polars failed (the message may quote data: report only its kind).
    #[error("the data could not be read")]
    Polars(PolarsError),
}

impl CompiledPlan {
    /// Runs the pipeline next to the data.
    pub fn execute(&self) -> Result<CellStats, PolarsError> {
        let df = self.frame.clone().collect()?;
        let mut units = vec![0i64; self.cells];
        let mut sums = vec![vec![0f64; self.cells]; self.value_columns];
        let mut dominance = vec![vec![(Vec::new(), 0f64); self.cells]; self.value_columns];
        let cell = df.column(CELL)?.cast(&DataType::UInt64)?;
        let cell = cell.u64()?;
        let count = df.column(UNITS)?.cast(&DataType::Int64)?;
        let count = count.i64()?;
        let values: Vec<Float64Chunked> = (0..self.value_columns)
            .map(|i| Ok(df.column(&format!("__v{i}"))?.f64()?.clone()))
            .collect::<PolarsResult<_>>()?;
        let tops: Vec<ListChunked> = (0..self.value_columns)
            .map(|i| Ok(df.column(&format!("__v{i}_top"))?.list()?.clone()))
            .collect::<PolarsResult<_>>()?;
        let mut histograms: Vec<Vec<i64>> = self
            .quantile_bins
            .iter()
            .map(|b| b.map_or(Vec::new(), |b| vec![0; self.cells * b]))
            .collect();
        let bin_lists: Vec<Option<ListChunked>> = self
            .quantile_bins
            .iter()
            .enumerate()
            .map(|(i, b)| match b {
                Some(_) => Ok(Some(df.column(&format!("__v{i}_bins"))?.list()?.clone())),
                None => Ok(None),
            })
            .collect::<PolarsResult<_>>()?;
        let abs: Vec<Float64Chunked> = (0..self.value_columns)
            .map(|i| Ok(df.column(&format!("__v{i}_abs"))?.f64()?.clone()))
            .collect::<PolarsResult<_>>()?;
        for row in 0..df.height() {
            let (Some(c), Some(n)) = (cell.get(row), count.get(row)) else {
                continue;
            };
            let c = c as usize;
            if c >= self.cells {
                continue;
            }
            units[c] = n;
            for (i, v) in values.iter().enumerate() {
                sums[i][c] = v.get(row).unwrap_or(0.0);
                let top: Vec<f64> = match tops[i].get_as_series(row) {
                    Some(s) => s.f64()?.into_no_null_iter().collect(),
                    None => Vec::new(),
                };
                dominance[i][c] = (top, abs[i].get(row).unwrap_or(0.0));
                if let (Some(lists), Some(bins)) = (&bin_lists[i], self.quantile_bins[i]) {
                    if let Some(series) = lists.get_as_series(row) {
                        for b in series.u32()?.into_no_null_iter() {
                            histograms[i][c * bins + (b as usize).min(bins - 1)] += 1;
                        }
                    }
                }
            }
        }
        Ok(CellStats {
            units,
            sums,
            dominance,
            histograms,
        })
    }

    /// Key values of cell `index`.
    pub fn cell_keys(&self, mut index: usize) -> Vec<Value> {
        let mut out = vec![Value::Bool(false); self.keys.len()];
        for (i, k) in self.keys.iter().enumerate().rev() {
            let n = k.domain.len();
            out[i] = k.domain[index % n].clone();
            index /= n;
        }
        out
    }
}
