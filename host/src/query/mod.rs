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
use std::time::{Duration, Instant};

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
    /// Its public values, in release order (empty for a key selected from the data).
    pub domain: Vec<Value>,
    /// For a key without a public domain (key selection), its type: its values come from the
    /// data and are released only for cells the gate selects.
    pub selected: Option<oar_guest::ColumnType>,
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
    /// Per sum/mean/quantile aggregate, per cell: how many units have a value (not null); a
    /// mean divides by this.
    pub valued: Vec<Vec<i64>>,
    /// With key selection: the key combinations found in the data (after filters and
    /// contribution bounding), one per cell, in release order. None for public key domains.
    /// They are candidates only: the gate releases those whose noisy count passes.
    pub observed: Option<Vec<Vec<Value>>>,
}

impl CellStats {
    /// Number of cells measured.
    pub fn cells(&self) -> usize {
        self.units.len()
    }
}

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

const UNIT: &str = "__unit";
const CELL: &str = "__cell";
const UNITS: &str = "__units";

/// Validates `plan` against `dataset` and builds the Polars pipeline that computes its
/// [`CellStats`].
///
/// With `key_selection`, keys without a public domain are allowed (text and integer keys): the
/// cells are then the key combinations found in the data, each unit's contribution bounded to
/// `max_groups_per_unit` of them, and the gate decides from noisy counts alone which of them
/// appear ([`CellStats::observed`]). Compiling never looks at the data, so every refusal comes
/// before the data is touched.
pub fn compile(
    plan: &Plan,
    dataset: &Dataset,
    limits: PlanLimits,
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

    // With key selection the cells are found in the data; the policy's cell limit, a number
    // that does not depend on the data, bounds them (and calibrates the threshold).
    let threshold_cells = if plan.key_selection {
        limits.max_output_cells.max(cells)
    } else {
        cells
    };
    let per_cell: usize = 1 + quantile_bins
        .iter()
        .map(|q| match q {
            Some((_, _, bins)) => *bins,
            None => 4,
        })
        .fold(0, usize::saturating_add);
    let draws = threshold_cells.saturating_mul(per_cell);
    if draws > MAX_NOISE_DRAWS {
        return Err(QueryError::Invalid(format!(
            "the plan needs up to {draws} noise draws (cells × noisy figures per cell, a quantile's bins each); the host allows at most {MAX_NOISE_DRAWS} per query (use fewer cells, bins or aggregates)"
        )));
    }

    // Rows -> (unit, cell index, clamped values) -> one record per (unit, cell), at most
    // `n_groups` cells per unit -> per-cell totals.
    //
    // Cell index: mixed radix over the key domains; rows outside the domains get null and drop.
    // With key selection, a text code of the key combination instead (see `cell_code`).
    let cell = if plan.key_selection {
        cell_code(&key_index, &keys)
    } else {
        let mut cell = lit(0u64);
        let mut stride: u64 = 1;
        for (index, key) in key_index.iter().zip(&keys).rev() {
            let index = index.as_ref().expect("public keys have an index");
            cell = cell + index.expr(col(key.name.as_str())).cast(DataType::UInt64) * lit(stride);
            stride *= index.len() as u64;
        }
        cell
    };
    let mut select = vec![
        col(schema.privacy_unit.as_str()).alias(UNIT),
        cell.alias(CELL),
    ];
    select.extend(value_exprs.iter().cloned());
    let rows = lf.select(select).filter(col(CELL).is_not_null());
    // Contribution bounding keeps each unit's `n_groups` lowest cell indices: a choice that depends
    // on this unit's rows alone, so adding or removing another unit cannot change it. It is a
    // no-op (and skipped) when the domain has no more cells than the bound.
    let truncate = plan.key_selection || (n_groups as usize) < cells;
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
    // Nulls: a unit whose value is null (missing, NaN, ±inf, x/0: expressions are total and
    // turn these into null) drops out of that aggregate. It adds nothing to a sum or to the
    // dominance figures, is not counted in a mean's denominator (`_n`), and has no quantile bin.
    let mut cell_aggs = vec![len().alias(UNITS)];
    cell_aggs.extend(value_names.iter().map(|v| col(v.as_str()).sum()));
    cell_aggs.extend(
        value_names
            .iter()
            .map(|v| col(v.as_str()).count().alias(format!("{v}_n"))),
    );
    // For the dominance rule: each cell's largest per-unit contributions, sorted, and the
    // total of absolute contributions.
    cell_aggs.extend(value_names.iter().map(|v| {
        col(v.as_str())
            .drop_nulls()
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
                ((col(v.as_str()).drop_nulls() - lit(lo)) / lit(hi - lo) * lit(bins as f64))
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
        threshold_cells,
        columns_read,
        frame,
        value_columns: value_exprs.len(),
        quantile_bins: quantile_bins.iter().map(|q| q.map(|(_, _, b)| b)).collect(),
    })
}

/// Why a query did not produce statistics.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Polars failed (its message may quote data: report only its kind).
    #[error("the query failed next to the data")]
    Polars(#[from] PolarsError),
    /// The run's deadline passed first; the query was cancelled.
    #[error("the run's deadline passed while the query ran")]
    Deadline,
}

/// How often a running query is checked against its deadline.
const DEADLINE_POLL: Duration = Duration::from_millis(2);

/// Collects `frame` on Polars' pool, cancelling it at `deadline`.
fn collect_until(frame: LazyFrame, deadline: Instant) -> Result<DataFrame, ExecuteError> {
    let running = frame.collect_concurrently()?;
    loop {
        if let Some(done) = running.fetch() {
            return Ok(done?);
        }
        let now = Instant::now();
        if now >= deadline {
            running.cancel();
            // Polars' worker sends its (cancelled) result to this handle and must find it
            // alive, so a thread keeps it until then; the caller does not wait.
            let drain = running.clone();
            let _ = std::thread::Builder::new()
                .name("oar-cancelled-query".into())
                .spawn(move || {
                    let _ = drain.fetch_blocking();
                });
            return Err(ExecuteError::Deadline);
        }
        std::thread::sleep(DEADLINE_POLL.min(deadline - now));
    }
}

/// A text code of a row's key combination, for key selection: per key, `<chars>:<text>`, where
/// the text is the value's position in its public domain (public keys) or the value itself
/// (keys selected from the data). The length prefixes make the code injective. A row with a
/// null key, or a value outside a public domain, gets null and drops.
fn cell_code(index: &[Option<expr::KeyIndex>], keys: &[KeySpec]) -> Expr {
    let mut code = lit("");
    for (i, k) in index.iter().zip(keys) {
        let text = match i {
            Some(i) => i.expr(col(k.name.as_str())).cast(DataType::String),
            None => col(k.name.as_str()).cast(DataType::String),
        };
        let prefix = text.clone().str().len_chars().cast(DataType::String) + lit(":");
        code = code + prefix + text;
    }
    code
}

/// The keys of a cell code made by [`cell_code`], or None if it is not one.
fn decode_cell(code: &str, keys: &[KeySpec]) -> Option<Vec<Value>> {
    let mut rest = code;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let (len, tail) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let end = tail.char_indices().nth(len).map_or(tail.len(), |(i, _)| i);
        let (text, tail) = tail.split_at(end);
        rest = tail;
        out.push(match k.selected {
            Some(oar_guest::ColumnType::Int) => Value::Int(text.parse().ok()?),
            Some(_) => Value::Str(text.to_string()),
            None => k.domain.get(text.parse::<usize>().ok()?)?.clone(),
        });
    }
    rest.is_empty().then_some(out)
}

/// Orders key tuples for release: integers by value, everything else by its text.
fn compare_keys(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            _ => x.key_text().cmp(&y.key_text()),
        };
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
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

impl CompiledPlan {
    /// Runs the pipeline next to the data.
    pub fn execute(&self) -> Result<CellStats, PolarsError> {
        self.execute_until(None).map_err(|e| match e {
            ExecuteError::Polars(e) => e,
            ExecuteError::Deadline => unreachable!("no deadline was set"),
        })
    }

    /// Runs the pipeline next to the data, stopping at `deadline`.
    ///
    /// Polars runs the query on its thread pool; at the deadline the query is cancelled (Polars
    /// stops it at its next operator boundary) and this returns [`ExecuteError::Deadline`] at
    /// once, without waiting for the cancelled work to wind down.
    pub fn execute_until(&self, deadline: Option<Instant>) -> Result<CellStats, ExecuteError> {
        let df = match deadline {
            None => self.frame.clone().collect()?,
            Some(deadline) => collect_until(self.frame.clone(), deadline)?,
        };
        self.cell_stats(df).map_err(ExecuteError::Polars)
    }

    /// The per-cell statistics from the collected frame.
    fn cell_stats(&self, df: DataFrame) -> Result<CellStats, PolarsError> {
        // Which output cell each row of `df` is: its public index, or with key selection its
        // place among the key combinations found, in release order.
        let (slots, observed): (Vec<Option<usize>>, Option<Vec<Vec<Value>>>) =
            if self.plan.key_selection {
                let codes = df.column(CELL)?.str()?.clone();
                let mut found: Vec<(usize, Vec<Value>)> = (&codes)
                    .into_iter()
                    .enumerate()
                    .filter_map(|(row, c)| Some((row, decode_cell(c?, &self.keys)?)))
                    .collect();
                found.sort_by(|a, b| compare_keys(&a.1, &b.1));
                let mut slots = vec![None; df.height()];
                for (slot, (row, _)) in found.iter().enumerate() {
                    slots[*row] = Some(slot);
                }
                (slots, Some(found.into_iter().map(|(_, k)| k).collect()))
            } else {
                let cell = df.column(CELL)?.cast(&DataType::UInt64)?;
                let slots = cell
                    .u64()?
                    .into_iter()
                    .map(|c| c.map(|c| c as usize).filter(|&c| c < self.cells))
                    .collect();
                (slots, None)
            };
        let cells = observed.as_ref().map_or(self.cells, Vec::len);
        let mut units = vec![0i64; cells];
        let mut sums = vec![vec![0f64; cells]; self.value_columns];
        let mut valued = vec![vec![0i64; cells]; self.value_columns];
        let mut dominance = vec![vec![(Vec::new(), 0f64); cells]; self.value_columns];
        let count = df.column(UNITS)?.cast(&DataType::Int64)?;
        let count = count.i64()?;
        let column = |suffix: &str, i: usize| df.column(&format!("__v{i}{suffix}"));
        let values: Vec<Float64Chunked> = (0..self.value_columns)
            .map(|i| Ok(column("", i)?.cast(&DataType::Float64)?.f64()?.clone()))
            .collect::<PolarsResult<_>>()?;
        let counts: Vec<Int64Chunked> = (0..self.value_columns)
            .map(|i| Ok(column("_n", i)?.cast(&DataType::Int64)?.i64()?.clone()))
            .collect::<PolarsResult<_>>()?;
        let tops: Vec<ListChunked> = (0..self.value_columns)
            .map(|i| Ok(column("_top", i)?.list()?.clone()))
            .collect::<PolarsResult<_>>()?;
        let abs: Vec<Float64Chunked> = (0..self.value_columns)
            .map(|i| Ok(column("_abs", i)?.cast(&DataType::Float64)?.f64()?.clone()))
            .collect::<PolarsResult<_>>()?;
        let mut histograms: Vec<Vec<i64>> = self
            .quantile_bins
            .iter()
            .map(|b| b.map_or(Vec::new(), |b| vec![0; cells * b]))
            .collect();
        let bin_lists: Vec<Option<ListChunked>> = self
            .quantile_bins
            .iter()
            .enumerate()
            .map(|(i, b)| match b {
                Some(_) => Ok(Some(column("_bins", i)?.list()?.clone())),
                None => Ok(None),
            })
            .collect::<PolarsResult<_>>()?;
        for (row, slot) in slots.iter().enumerate() {
            let (Some(c), Some(n)) = (*slot, count.get(row)) else {
                continue;
            };
            units[c] = n;
            for i in 0..self.value_columns {
                sums[i][c] = values[i].get(row).filter(|v| v.is_finite()).unwrap_or(0.0);
                valued[i][c] = counts[i].get(row).unwrap_or(0);
                let top: Vec<f64> = match tops[i].get_as_series(row) {
                    Some(s) => s.f64()?.into_iter().flatten().collect(),
                    None => Vec::new(),
                };
                let total = abs[i].get(row).filter(|a| a.is_finite()).unwrap_or(0.0);
                dominance[i][c] = (top, total);
                if let (Some(lists), Some(bins)) = (&bin_lists[i], self.quantile_bins[i]) {
                    if let Some(series) = lists.get_as_series(row) {
                        for b in series.u32()?.into_iter().flatten() {
                            histograms[i][c * bins + (b as usize).min(bins - 1)] += 1;
                        }
                    }
                }
            }
        }
        Ok(CellStats {
            units,
            sums,
            valued,
            dominance,
            histograms,
            observed,
        })
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
}
