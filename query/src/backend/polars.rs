//! The embedded default backend: a checked plan lowered to one Polars `LazyFrame`, collected on
//! Polars' thread pool next to the data. Nothing to install, nothing to start.

use super::{BackendError, QueryBackend};
use crate::checked::CheckedExpr;
use crate::dataset::Dataset;
use crate::{
    CellStats, CheckedPlan, CheckedStep, KeyIndex, UnitValue, ValueInput, BIN_SNAP, DOMINANCE_TOP,
};
use chrono::NaiveDate;
use oar_guest::plan::{ArithOp, CompareOp};
use oar_guest::{ColumnType, Value};
use polars::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod partitions;
mod per_unit;

use per_unit::PerUnitInput;

/// Runs checked plans with Polars.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolarsBackend {
    /// Which Polars engine runs the query.
    pub engine: PolarsEngine,
}

/// Polars' two engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PolarsEngine {
    /// The streaming engine (the default): reads the files in morsels, so memory is bounded by
    /// units and cells rather than rows (a count-only plan holds a few words per unit).
    #[default]
    Streaming,
    /// The in-memory engine: loads the columns it reads, then computes.
    InMemory,
}

impl PolarsBackend {
    /// The backend with the in-memory engine.
    pub const IN_MEMORY: PolarsBackend = PolarsBackend {
        engine: PolarsEngine::InMemory,
    };
    /// The backend with the streaming engine.
    pub const STREAMING: PolarsBackend = PolarsBackend {
        engine: PolarsEngine::Streaming,
    };

    /// Whether `plan` is finished on one row per partition of its last per-unit step rather than
    /// on rows (the same statistics, fewer joins; see `partitions`). For tests and explanations.
    pub fn finishes_on_partitions(plan: &CheckedPlan) -> bool {
        partitions::collapse(plan).is_some()
    }

    /// The Polars plan `plan` runs as (for benchmarks and explanations).
    pub fn lazy_frame(&self, plan: &CheckedPlan, dataset: &Dataset) -> PolarsResult<LazyFrame> {
        frame(plan, dataset, None, self.engine == PolarsEngine::Streaming)
    }
}

impl QueryBackend for PolarsBackend {
    fn name(&self) -> &'static str {
        match self.engine {
            PolarsEngine::Streaming => "polars-streaming",
            PolarsEngine::InMemory => "polars",
        }
    }

    fn execute(
        &self,
        plan: &CheckedPlan,
        dataset: &Dataset,
        deadline: Option<Instant>,
    ) -> Result<CellStats, BackendError> {
        // A panic inside Polars (a bug, or an engine limit) ends this query with a failure of
        // its kind, never the host.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.execute_unguarded(plan, dataset, deadline)
        }))
        .unwrap_or(Err(BackendError::Failed("the query engine panicked")))
    }
}

impl PolarsBackend {
    fn execute_unguarded(
        &self,
        plan: &CheckedPlan,
        dataset: &Dataset,
        deadline: Option<Instant>,
    ) -> Result<CellStats, BackendError> {
        let df = match self.engine {
            PolarsEngine::InMemory => {
                let frame = frame(plan, dataset, None, false).map_err(failed)?;
                match deadline {
                    None => frame.collect().map_err(failed)?,
                    Some(deadline) => collect_until(frame, deadline)?,
                }
            }
            PolarsEngine::Streaming => stream_until(plan, dataset, deadline)?,
        };
        let streaming = self.engine == PolarsEngine::Streaming;
        cell_stats(plan, df, streaming).map_err(failed)
    }
}

/// Runs `plan` on the streaming engine. The engine has no cancel handle, so the scan passes
/// every morsel through a check that fails once the deadline has passed (or the caller gave
/// up): the query stops within one morsel, and this returns at the deadline without waiting.
fn stream_until(
    plan: &CheckedPlan,
    dataset: &Dataset,
    deadline: Option<Instant>,
) -> Result<DataFrame, BackendError> {
    let given_up = Arc::new(AtomicBool::new(false));
    let stop = Stop {
        deadline,
        given_up: given_up.clone(),
    };
    let frame = frame(plan, dataset, Some(stop), true).map_err(failed)?;
    let Some(deadline) = deadline else {
        return frame.collect_with_engine(Engine::Streaming).map_err(failed);
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("oar-streaming-query".into())
        .spawn(move || {
            let _ = tx.send(frame.collect_with_engine(Engine::Streaming));
        })
        .map_err(|_| BackendError::Failed("cannot start a query thread"))?;
    let wait = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(result) => result.map_err(|e| {
            if Instant::now() >= deadline {
                BackendError::Deadline
            } else {
                failed(e)
            }
        }),
        Err(_) => {
            given_up.store(true, Ordering::Relaxed);
            Err(BackendError::Deadline)
        }
    }
}

/// When a streaming query must stop.
#[derive(Clone)]
struct Stop {
    deadline: Option<Instant>,
    given_up: Arc<AtomicBool>,
}

impl Stop {
    /// `unit` passed through a check of the deadline on every morsel.
    fn check(self, unit: Expr) -> Expr {
        unit.map(
            move |c| {
                let late = self.deadline.is_some_and(|d| Instant::now() >= d);
                if late || self.given_up.load(Ordering::Relaxed) {
                    Err(PolarsError::ComputeError(
                        "the query's deadline passed".into(),
                    ))
                } else {
                    Ok(c)
                }
            },
            |_, field| Ok(field.clone()),
        )
    }
}

fn failed(e: PolarsError) -> BackendError {
    BackendError::Failed(polars_error_kind(&e))
}

/// The kind of a Polars error; its message may quote data values (a failed cast lists the
/// strings), so only the kind is kept.
pub(crate) fn polars_error_kind(e: &PolarsError) -> &'static str {
    use PolarsError as P;
    match e {
        P::ColumnNotFound(_) => "column not found",
        P::ComputeError(_) => "compute error",
        P::Duplicate(_) => "duplicate",
        P::InvalidOperation(_) => "invalid operation",
        P::IO { .. } => "I/O error reading the dataset",
        P::NoData(_) => "no data",
        P::OutOfBounds(_) => "out of bounds",
        P::SchemaFieldNotFound(_) => "schema field not found",
        P::SchemaMismatch(_) => "schema mismatch",
        P::ShapeMismatch(_) => "shape mismatch",
        P::SQLInterface(_) | P::SQLSyntax(_) => "SQL error",
        P::StringCacheMismatch(_) => "string cache mismatch",
        P::StructFieldNotFound(_) => "struct field not found",
        P::Context { .. } => "error with context",
        _ => "other error",
    }
}

/// Sets up to this size become a chain of comparisons instead of `is_in`.
const IS_IN_AS_COMPARISONS: usize = 64;

const UNIT: &str = "__unit";
const CELL: &str = "__cell";
const UNITS: &str = "__units";

/// How often a running query is checked against its deadline.
const DEADLINE_POLL: Duration = Duration::from_millis(2);

/// Collects `frame` on Polars' pool, cancelling it at `deadline`.
fn collect_until(frame: LazyFrame, deadline: Instant) -> Result<DataFrame, BackendError> {
    let running = frame.collect_concurrently().map_err(failed)?;
    loop {
        if let Some(done) = running.fetch() {
            return done.map_err(failed);
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
            return Err(BackendError::Deadline);
        }
        std::thread::sleep(DEADLINE_POLL.min(deadline - now));
    }
}

/// The pipeline: rows -> (unit, cell, clamped values) -> one record per (unit, cell), at most
/// `max_groups_per_unit` cells per unit -> per-cell totals.
fn frame(
    plan: &CheckedPlan,
    dataset: &Dataset,
    stop: Option<Stop>,
    streaming: bool,
) -> PolarsResult<LazyFrame> {
    let mut lf = dataset.scan()?;
    if let Some(stop) = stop {
        lf = lf.with_column(stop.check(col(plan.unit())));
    }
    // A count-only plan whose last steps read only what is fixed per partition finishes on
    // partitions (see `partitions`).
    let collapse = partitions::collapse(plan);
    let mut deferred = Vec::new();
    for (i, step) in plan.steps().iter().enumerate() {
        if let Some(c) = &collapse {
            if c.deferred.contains(&i) {
                let earlier = PerUnitInput::of(step).expect("deferred steps are per-unit");
                let (_, table) = per_unit::reduced(lf.clone(), plan.unit(), &earlier);
                deferred.push((table, earlier));
                continue;
            }
            if i == c.last {
                let last = PerUnitInput::of(step).expect("the last step is per-unit");
                lf = partitions::partitions(lf, plan.unit(), &last);
                for (table, earlier) in deferred.drain(..) {
                    lf = per_unit::join_reduced(lf, table, plan.unit(), &earlier);
                }
                continue;
            }
        }
        lf = match step {
            CheckedStep::Filter(p) => lf.filter(lower(p)),
            CheckedStep::Derive { name, expr } => lf.with_column(lower(expr).alias(name.as_str())),
            CheckedStep::PerUnit { .. } => per_unit::per_unit(
                lf,
                plan.unit(),
                &PerUnitInput::of(step).expect("a per-unit step"),
            ),
        };
    }

    // Cell index: mixed radix over the key domains; rows outside the domains get null and drop.
    // With key selection, a text code of the key combination instead.
    let cell = if plan.plan.key_selection {
        cell_code(plan)
    } else {
        let mut cell = lit(0u64).cast(DataType::UInt64);
        let mut stride: u64 = 1;
        for key in plan.keys.iter().rev() {
            let index = key.index.as_ref().expect("public keys have an index");
            cell = cell
                + key_position(index, col(key.name.as_str())).cast(DataType::UInt64) * lit(stride);
            stride *= index.len() as u64;
        }
        cell
    };
    let values = plan.values();
    let value_names: Vec<String> = (0..values.len()).map(|i| format!("__v{i}")).collect();
    let mut select = vec![col(plan.unit()).alias(UNIT), cell.alias(CELL)];
    select.extend(
        values
            .iter()
            .zip(&value_names)
            .map(|(v, name)| value_input(v).alias(name.as_str())),
    );
    let rows = lf.select(select).filter(col(CELL).is_not_null());
    if let Output::UnitCells { words } = output(plan, streaming) {
        return Ok(unit_cells(rows, words));
    }
    let n_groups = plan.max_groups_per_unit;
    let per_unit_cell = if collapse.as_ref().is_some_and(|c| c.distinct_pairs) {
        // One row per partition is one distinct (unit, cell) pair, within the bound.
        rows
    } else if values.is_empty() {
        // Count-only plans: one group-by on the unit collects its distinct cells. Only units with
        // more than `n_groups` cells need their cells sorted and cut; for the others the cut is a
        // no-op, so they skip it (same result, far less sorting).
        // The distinct (unit, cell) pairs first: a group-by the streaming engine runs in
        // morsels, whose state is bounded by units × cells, not rows. Collecting each unit's
        // cells into a list straight from the rows is not streamable and held every row (10 GB
        // at 100M rows).
        // (The in-memory engine holds the rows anyway, and one group-by on the unit collecting
        // its distinct cells is faster there: 10 s against 27 s at 100M rows.)
        let cells_of_unit = if streaming {
            rows.group_by([col(UNIT), col(CELL)])
                .agg([len().alias("__pair_rows")])
                .select([col(UNIT), col(CELL)])
                .group_by([col(UNIT)])
                .agg([col(CELL)])
        } else {
            rows.group_by([col(UNIT)]).agg([col(CELL).unique()])
        }
        .cache();
        let cells_of_unit = if plan.truncate() {
            let n = lit(n_groups);
            let over = col(CELL).list().len().gt(n.clone());
            let within = cells_of_unit.clone().filter(over.clone().not());
            let cut = cells_of_unit
                .filter(over)
                .with_column(col(CELL).list().sort(SortOptions::default()).list().head(n));
            concat([within, cut], UnionArgs::default())?
        } else {
            cells_of_unit
        };
        cells_of_unit.explode(cols([CELL]))
    } else {
        let unit_stage: Vec<Expr> = values
            .iter()
            .zip(&value_names)
            .map(|(v, name)| {
                let c = col(name.as_str());
                match v.per_unit {
                    UnitValue::Sum { lo, hi } => c.sum().clip(lit(lo), lit(hi)),
                    UnitValue::Mean => c.mean(),
                }
                .alias(name.as_str())
            })
            .collect();
        let per = rows.group_by([col(UNIT), col(CELL)]).agg(unit_stage);
        if plan.truncate() {
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
    // Nulls: a unit whose value is null drops out of that aggregate. It adds nothing to a sum
    // or to the dominance figures, is not counted in a mean's denominator (`_n`), and has no
    // quantile bin.
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
    for (v, input) in value_names.iter().zip(values) {
        if let Some(bins) = input.quantile_bins {
            let [lo, hi] = input.bounds;
            cell_aggs.push(
                ((col(v.as_str()).drop_nulls() - lit(lo)) / lit(hi - lo) * lit(bins as f64)
                    + lit(BIN_SNAP))
                .floor()
                .clip(lit(0.0), lit((bins - 1) as f64))
                .cast(DataType::UInt32)
                .alias(format!("{v}_bins")),
            );
        }
    }
    let out = per_unit_cell.group_by([col(CELL)]).agg(cell_aggs);
    // A per-unit stage's join back to the rows keeps the rows' order (`per_unit`) so that the
    // streaming engine builds its table on the per-unit side; Polars' order check would drop
    // that (no later step observes the order), and the engine would buffer up to 10M rows of
    // each scan to sample which side is smaller.
    Ok(if streaming {
        out.with_check_order(false)
    } else {
        out
    })
}

/// What a plan's collected frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// One row per cell: its number of units and its value figures.
    PerCell,
    /// One row per unit: the cells it has a row in, as a bitset of `words` 64-bit words (bit
    /// `c % 64` of word `c / 64` for cell `c`). Contribution bounding and the per-cell counts
    /// are then done on the bitsets.
    UnitCells {
        /// Words per unit.
        words: usize,
    },
}

/// Count-only plans over up to this many 64-bit words of cells collect each unit's cells as a
/// bitset (on the streaming engine).
const UNIT_CELL_WORDS: usize = 4;

/// How `plan` is collected. A count-only plan over public keys with at most
/// `64 × UNIT_CELL_WORDS` cells needs from each unit only the set of its cells. On the streaming
/// engine, one group-by on the unit OR-ing a bit per row holds a few words per unit whatever the
/// rows, where distinct (unit, cell) pairs grow with the rows (each unit reaches more cells):
/// 0.5 GiB at 10M, 100M and 1B rows, against 1.4, 4.7 and 11 GiB (`oar bench --scale`). The
/// in-memory engine ORs group by group, which took 2.8 s at 10M rows against 1.2 s for a list of
/// each unit's distinct cells, so it keeps the list.
fn output(plan: &CheckedPlan, streaming: bool) -> Output {
    let words = plan.cells.div_ceil(64);
    if streaming
        && plan.values().is_empty()
        && !plan.plan.key_selection
        && (1..=UNIT_CELL_WORDS).contains(&words)
    {
        Output::UnitCells { words }
    } else {
        Output::PerCell
    }
}

/// Rows of (unit, cell) -> one row per unit with its cells as a bitset (see
/// [`Output::UnitCells`]).
fn unit_cells(rows: LazyFrame, words: usize) -> LazyFrame {
    let cell = || col(CELL);
    // Typed literals: an untyped one makes the power a 32-bit integer.
    let bit = lit(2u64)
        .cast(DataType::UInt64)
        .pow((cell() % lit(64u64)).cast(DataType::UInt32));
    let mut word_columns = vec![col(UNIT)];
    word_columns.extend((0..words).map(|w| {
        let first = 64 * w as u64;
        let in_word = cell().gt_eq(lit(first)).and(cell().lt(lit(first + 64)));
        when(in_word)
            .then(bit.clone())
            .otherwise(lit(0u64))
            .cast(DataType::UInt64)
            .alias(format!("__w{w}"))
    }));
    rows.select(word_columns).group_by([col(UNIT)]).agg(
        (0..words)
            .map(|w| col(format!("__w{w}")).bitwise_or())
            .collect::<Vec<_>>(),
    )
}

/// Per-cell unit counts from each unit's cell bitset: a unit counts in its cells, or with
/// truncation in its `max_groups_per_unit` lowest ones.
fn unit_cell_stats(plan: &CheckedPlan, df: DataFrame, words: usize) -> PolarsResult<CellStats> {
    let columns: Vec<UInt64Chunked> = (0..words)
        .map(|w| Ok(df.column(&format!("__w{w}"))?.u64()?.rechunk().into_owned()))
        .collect::<PolarsResult<_>>()?;
    let slices: Vec<&[u64]> = columns
        .iter()
        .map(|c| c.cont_slice().map_err(|e| polars_err!(ComputeError: "{e}")))
        .collect::<PolarsResult<_>>()?;
    let bound = if plan.truncate() {
        plan.max_groups_per_unit as usize
    } else {
        usize::MAX
    };
    let mut stats = CellStats::zeros(plan, plan.cells, None);
    let units = &mut stats.units;
    for row in 0..df.height() {
        let mut left = bound;
        for (w, slice) in slices.iter().enumerate() {
            let mut bits = slice[row];
            while bits != 0 && left > 0 {
                let c = 64 * w + bits.trailing_zeros() as usize;
                if let Some(n) = units.get_mut(c) {
                    *n += 1;
                }
                bits &= bits - 1;
                left -= 1;
            }
        }
    }
    Ok(stats)
}

/// A value input: the row value as a float, clamped.
fn value_input(v: &ValueInput) -> Expr {
    let [lo, hi] = v.bounds;
    lower(&v.expr)
        .cast(DataType::Float64)
        .clip(lit(lo), lit(hi))
}

/// The key-combination code of a row (see [`CheckedPlan::cell_code`]); null if a key is null or
/// outside its public domain.
fn cell_code(plan: &CheckedPlan) -> Expr {
    let mut code = lit("");
    for k in &plan.keys {
        let text = match &k.index {
            Some(i) => key_position(i, col(k.name.as_str())).cast(DataType::String),
            None => col(k.name.as_str()).cast(DataType::String),
        };
        let prefix = text.clone().str().len_chars().cast(DataType::String) + lit(":");
        code = code + prefix + text;
    }
    code
}

/// The per-cell statistics from the collected frame.
fn cell_stats(plan: &CheckedPlan, df: DataFrame, streaming: bool) -> PolarsResult<CellStats> {
    if let Output::UnitCells { words } = output(plan, streaming) {
        return unit_cell_stats(plan, df, words);
    }
    let values = plan.values();
    let (slots, observed): (Vec<Option<usize>>, Option<Vec<Vec<Value>>>) =
        if plan.plan.key_selection {
            let codes = df.column(CELL)?.str()?.clone();
            let codes: Vec<Option<&str>> = codes.into_iter().collect();
            let (slots, found) = plan.order_observed(&codes);
            (slots, Some(found))
        } else {
            let cell = df.column(CELL)?.cast(&DataType::UInt64)?;
            let slots = cell
                .u64()?
                .into_iter()
                .map(|c| c.map(|c| c as usize).filter(|&c| c < plan.cells))
                .collect();
            (slots, None)
        };
    let cells = observed.as_ref().map_or(plan.cells, Vec::len);
    let n = values.len();
    let mut units = vec![0i64; cells];
    let mut sums = vec![vec![0f64; cells]; n];
    let mut valued = vec![vec![0i64; cells]; n];
    let mut dominance = vec![vec![(Vec::new(), 0f64); cells]; n];
    let count = df.column(UNITS)?.cast(&DataType::Int64)?;
    let count = count.i64()?;
    let column = |suffix: &str, i: usize| df.column(&format!("__v{i}{suffix}"));
    let sum_cols: Vec<Float64Chunked> = (0..n)
        .map(|i| Ok(column("", i)?.cast(&DataType::Float64)?.f64()?.clone()))
        .collect::<PolarsResult<_>>()?;
    let counts: Vec<Int64Chunked> = (0..n)
        .map(|i| Ok(column("_n", i)?.cast(&DataType::Int64)?.i64()?.clone()))
        .collect::<PolarsResult<_>>()?;
    let tops: Vec<ListChunked> = (0..n)
        .map(|i| Ok(column("_top", i)?.list()?.clone()))
        .collect::<PolarsResult<_>>()?;
    let abs: Vec<Float64Chunked> = (0..n)
        .map(|i| Ok(column("_abs", i)?.cast(&DataType::Float64)?.f64()?.clone()))
        .collect::<PolarsResult<_>>()?;
    let mut histograms: Vec<Vec<i64>> = values
        .iter()
        .map(|v| v.quantile_bins.map_or(Vec::new(), |b| vec![0; cells * b]))
        .collect();
    let bin_lists: Vec<Option<ListChunked>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| match v.quantile_bins {
            Some(_) => Ok(Some(column("_bins", i)?.list()?.clone())),
            None => Ok(None),
        })
        .collect::<PolarsResult<_>>()?;
    for (row, slot) in slots.iter().enumerate() {
        let (Some(c), Some(count)) = (*slot, count.get(row)) else {
            continue;
        };
        units[c] = count;
        for i in 0..n {
            sums[i][c] = sum_cols[i]
                .get(row)
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            valued[i][c] = counts[i].get(row).unwrap_or(0);
            let top: Vec<f64> = match tops[i].get_as_series(row) {
                Some(s) => s.f64()?.into_iter().flatten().collect(),
                None => Vec::new(),
            };
            let total = abs[i].get(row).filter(|a| a.is_finite()).unwrap_or(0.0);
            dominance[i][c] = (top, total);
            if let (Some(lists), Some(bins)) = (&bin_lists[i], values[i].quantile_bins) {
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

/// An expression giving the position of `e`'s value in the domain, or null.
fn key_position(index: &KeyIndex, e: Expr) -> Expr {
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
    match index {
        KeyIndex::DayOffset { start, len } => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            let start_days = (*start - epoch).num_days();
            in_range(
                e.cast(DataType::Int32).cast(DataType::Int64) - lit(start_days),
                *len,
            )
        }
        KeyIndex::IntRange { first, len } => in_range(e.cast(DataType::Int64) - lit(*first), *len),
        // Polars' streaming engine runs `replace_strict` and `is_in` as an in-memory fallback
        // over their whole input (they are "fake elementwise" to it), which held every row of
        // the scan (10 GB at 100M rows). A cast to an enum of the text domain (one lookup per
        // row) or a chain of comparisons streams.
        KeyIndex::Lookup(domain, ColumnType::Str) => match enum_of(domain) {
            Some(dtype) => e
                .cast(DataType::String)
                .cast(dtype)
                .to_physical()
                .cast(DataType::UInt32),
            None => position_by_comparison(domain, ColumnType::Str, e),
        },
        KeyIndex::Lookup(domain, ty) => position_by_comparison(domain, *ty, e),
    }
}

/// An enum type whose categories are `domain`'s texts in order (None if two are the same).
fn enum_of(domain: &[Value]) -> Option<DataType> {
    let texts: Vec<String> = domain.iter().map(|v| v.key_text()).collect();
    let distinct: std::collections::HashSet<&str> = texts.iter().map(String::as_str).collect();
    if distinct.len() != texts.len() {
        return None;
    }
    let cats = FrozenCategories::new(texts.iter().map(String::as_str)).ok()?;
    Some(DataType::from_frozen_categories(cats))
}

/// The position of `e`'s value in `domain` by comparing it with each value (null if none).
fn position_by_comparison(domain: &[Value], ty: ColumnType, e: Expr) -> Expr {
    let mut out = lit(NULL).cast(DataType::UInt32);
    for (i, constant) in constants(domain, ty).into_iter().enumerate().rev() {
        if let Some(constant) = constant {
            out = when(e.clone().eq(constant))
                .then(lit(i as u32))
                .otherwise(out);
        }
    }
    out
}

/// `values` as typed constants of type `ty`, in order (None for a value of another type).
fn constants(values: &[Value], ty: ColumnType) -> Vec<Option<Expr>> {
    let series = typed_series("constants", values, ty);
    (0..series.len())
        .map(|i| {
            let v = series.get(i).ok().filter(|v| !v.is_null())?;
            Some(lit(Scalar::new(series.dtype().clone(), v.into_static())))
        })
        .collect()
}

/// `values` as a series of type `ty` (a value of another type is null).
fn typed_series(name: &str, values: &[Value], ty: ColumnType) -> Series {
    let name: PlSmallStr = name.into();
    match ty {
        ColumnType::Int => Series::new(name, values.iter().map(|v| v.as_i64()).collect::<Vec<_>>()),
        ColumnType::Float => Series::new(
            name,
            values
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
            values
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        _ => Series::new(
            name,
            values.iter().map(|v| v.key_text()).collect::<Vec<_>>(),
        ),
    }
}

/// The Polars type a column of type `ty` is read as.
fn dtype_of(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Str => DataType::String,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date,
        ColumnType::Datetime => DataType::Datetime(TimeUnit::Microseconds, None),
    }
}

/// `e` with NaN and ±inf replaced by null, so no float that is not a number reaches a sum, a
/// comparison or a bound (one NaN would otherwise turn a whole cell's sum into NaN).
fn finite_or_null(e: Expr) -> Expr {
    let e = e.cast(DataType::Float64);
    when(e.clone().is_finite())
        .then(e)
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// A checked expression as a Polars expression.
fn lower(e: &CheckedExpr) -> Expr {
    match e {
        CheckedExpr::Column { name, ty } => {
            let c = col(name.as_str());
            match ty {
                // Float data can hold NaN and ±inf; they read as null (missing).
                ColumnType::Float => finite_or_null(c),
                ColumnType::Int => c.cast(DataType::Int64),
                ColumnType::Str => c.cast(DataType::String),
                _ => c,
            }
        }
        // Typed literals: Polars' streaming engine cannot materialise a column of an untyped
        // ("dynamic") literal and panics.
        CheckedExpr::Literal(value) => match value {
            Value::Bool(b) => lit(*b),
            Value::Int(i) => lit(*i).cast(DataType::Int64),
            Value::Float(x) => lit(*x).cast(DataType::Float64),
            Value::Str(s) => lit(s.as_str()).cast(DataType::String),
        },
        CheckedExpr::DateConst(d) => lit(*d),
        CheckedExpr::DatetimeConst(dt) => lit(*dt),
        CheckedExpr::Compare { op, left, right } => {
            let (l, r) = (lower(left), lower(right));
            match op {
                CompareOp::Eq => l.eq(r),
                CompareOp::Ne => l.neq(r),
                CompareOp::Lt => l.lt(r),
                CompareOp::Le => l.lt_eq(r),
                CompareOp::Gt => l.gt(r),
                CompareOp::Ge => l.gt_eq(r),
            }
        }
        CheckedExpr::Arith {
            op,
            left,
            right,
            ty,
        } => {
            let (l, r) = (lower(left), lower(right));
            if *ty == ColumnType::Int {
                return match op {
                    ArithOp::Add => l + r,
                    ArithOp::Sub => l - r,
                    ArithOp::Mul => l * r,
                    ArithOp::Div => unreachable!("division is in floats"),
                };
            }
            let (l, r) = (l.cast(DataType::Float64), r.cast(DataType::Float64));
            // Polars divides by a constant by multiplying with its reciprocal, which differs
            // from division in the last bit (x / 5 vs x * 0.2). A divisor made a column takes
            // the exact element-wise path.
            let r = if *op == ArithOp::Div && !right.reads_columns() {
                when(l.clone().is_null()).then(r.clone()).otherwise(r)
            } else {
                r
            };
            // Total arithmetic: a float result that is not finite (overflow, x/0) is null.
            finite_or_null(match op {
                ArithOp::Add => l + r,
                ArithOp::Sub => l - r,
                ArithOp::Mul => l * r,
                ArithOp::Div => when(r.clone().neq(lit(0.0)))
                    .then(l / r)
                    .otherwise(lit(NULL).cast(DataType::Float64)),
            })
        }
        CheckedExpr::And(l, r) => lower(l).and(lower(r)),
        CheckedExpr::Or(l, r) => lower(l).or(lower(r)),
        CheckedExpr::Not(x) => lower(x).not(),
        CheckedExpr::IsIn { expr, values, ty } => {
            // Small sets as a chain of comparisons, which the streaming engine streams (it
            // runs `is_in` in memory over its whole input); Kleene `or` keeps null for null.
            // (The set's values all have the operand's type: the checker typed them.)
            let x = lower(expr);
            if (1..=IS_IN_AS_COMPARISONS).contains(&values.len()) {
                let any = constants(values, *ty)
                    .into_iter()
                    .flatten()
                    .map(|c| x.clone().eq(c))
                    .reduce(|a, b| a.or(b));
                if let Some(any) = any {
                    return any;
                }
            }
            x.is_in(lit(typed_series("set", values, *ty)).implode(), false)
        }
        CheckedExpr::ToDate { expr, from } => match from {
            ColumnType::Datetime => lower(expr).dt().date(),
            _ => lower(expr),
        },
        CheckedExpr::Hour(x) => lower(x).dt().hour().cast(DataType::Int64),
        CheckedExpr::HalfHour(x) => {
            let x = lower(x);
            x.clone().dt().hour().cast(DataType::Int64) * lit(2i64)
                + x.dt()
                    .minute()
                    .cast(DataType::Int64)
                    .gt_eq(lit(30i64))
                    .cast(DataType::Int64)
        }
        CheckedExpr::Bin {
            expr,
            edges,
            labels,
        } => {
            let x = lower(expr).cast(DataType::Float64);
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
            binned
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polars_errors_are_reduced_to_their_kind() {
        let e = PolarsError::ComputeError(
            "conversion failed for values [\"secret-subscriber-42\"]".into(),
        );
        let kind = polars_error_kind(&e);
        assert_eq!(kind, "compute error");
        assert!(!kind.contains("secret"));
        assert!(!BackendError::Failed(kind).to_string().contains("secret"));
    }
}
