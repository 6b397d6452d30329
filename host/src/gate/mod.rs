//! The privacy gate: turns true per-cell aggregates into a releasable table.
//!
//! For one plan with budget `ε`, split evenly over `k` measurements (one noisy count of units per
//! cell, plus what each sum, mean or quantile needs: see [`release`]):
//!
//! 1. **Noise** (OpenDP `make_laplace` over the whole vector of cells of the public key domain):
//!    counts get discrete Laplace noise with scale `N / ε_i`, where `N` is the most cells one unit
//!    may add to (L1 sensitivity `N`); sums get Laplace noise with scale `N·Δ / ε_i`, where `Δ`
//!    bounds one unit's contribution to one cell. OpenDP's privacy map certifies each `ε_i`.
//! 2. **Noisy threshold**: a cell passes only if its noisy unit count is at least `τ`, calibrated
//!    so a cell with fewer than `min_units` units passes with probability at most `δ0 / C` (`C`
//!    cells), i.e. any such cell passes with probability at most `δ0`.
//! 3. **Hard check**: a cell whose true unit count is below `min_units` is suppressed anyway.
//!
//! Guarantee: **no released cell has fewer than `min_units` distinct units** (step 3), and the
//! release is `(ε, (1 + e^ε)·δ0)`-differentially private with respect to adding or removing one
//! unit (step 3 changes the output of the `ε`-DP steps 1–2 only on an event of probability at most
//! `δ0`). Suppressed cells are reported as suppressed, without their values or which step
//! suppressed them.

pub mod margins;

use crate::query::{CellStats, CheckedPlan, ResolvedAggregate};
use oar_guest::table::{Accuracy, ReleaseInfo, Suppression, Table};
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_laplace;
use opendp::measures::MaxDivergence;
use opendp::metrics::L1Distance;
use std::time::Instant;

/// The gate's settings, from the policy.
#[derive(Debug, Clone, Copy)]
pub struct GateConfig {
    /// Fewest distinct units in a released cell.
    pub min_units: u64,
    /// Bound on the probability that any cell below `min_units` passes the noisy threshold.
    pub delta0: f64,
    /// The dominance rule for sums and means, if any.
    pub dominance: Option<Dominance>,
}

/// The (n, k) dominance rule: a sum cell is suppressed when its `n` largest units hold a share
/// `k` or more of the cell's total of absolute contributions (ACRO's boundary), decided on
/// noisy figures (see [`release`]). ACRO's defaults are n = 2, k = 0.9.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dominance {
    /// How many of the largest contributors are looked at (1 to [`crate::query::DOMINANCE_TOP`]).
    pub n: usize,
    /// The share of the total they may hold, in (0, 1].
    pub k: f64,
}

impl Default for Dominance {
    fn default() -> Self {
        Dominance { n: 2, k: 0.9 }
    }
}

impl Dominance {
    /// Whether a cell is dominated, read off noisy figures: the noisy sum of its `n` largest
    /// absolute contributions `top` against the noisy total of absolute contributions
    /// `abs_total`. ACRO's boundary: `top / total >= k` fails. A total that is not positive is
    /// not told apart from zero by the noise, so no contributor stands out of it: not
    /// dominated. With `k >= 1` the rule is off.
    pub fn dominated(&self, top: f64, abs_total: f64) -> bool {
        self.k < 1.0 && abs_total > 0.0 && top >= self.k * abs_total
    }
}

/// Why the gate could not produce a release.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// OpenDP refused to build or run a measurement.
    #[error("noise mechanism failed: {0}")]
    Mechanism(String),
    /// The run's deadline passed while the gate drew noise.
    #[error("the run's deadline passed while the gate drew noise")]
    Deadline,
    /// The certified privacy loss exceeds the budget asked for.
    #[error("the certified privacy loss {certified} exceeds the requested epsilon {requested}")]
    OverBudget {
        /// What OpenDP's privacy maps certify.
        certified: f64,
        /// What the plan asked for.
        requested: f64,
    },
}

fn mech(e: opendp::error::Error) -> GateError {
    GateError::Mechanism(e.to_string())
}

/// `z` such that a Laplace(b) variable exceeds `b·z` in absolute value with probability 5%.
const LN_20: f64 = 2.995_732_273_553_991;

/// The noisy-count threshold `τ` for discrete Laplace noise of scale `scale`.
///
/// Guarantee: a cell whose true count is at most `min_units - 1` reaches `τ` with probability at
/// most `delta_cell`. For discrete Laplace with `α = e^(-1/scale)`, `P(Z ≥ t) = α^t / (1 + α)`
/// for `t ≥ 1`, so the smallest `t` is `⌈scale·(−ln δ − ln(1 + α))⌉` and
/// `τ = min_units − 1 + t`.
///
/// The arithmetic stays in log space (`ln α = −1/scale` exactly, `ln(1 + α)` by `ln_1p`), so it
/// is sound for every scale, however large: computing `α` first and taking its logarithm
/// rounds `α` to 1 once `1/scale` is below about 1.1e-16, and `τ` then collapses to
/// `min_units`. A relative margin of 1e-12 covers the rounding of the product.
pub fn threshold(scale: f64, min_units: u64, delta_cell: f64) -> f64 {
    let ln_1p_alpha = (-1.0 / scale).exp().ln_1p();
    let t = (scale * (-delta_cell.ln() - ln_1p_alpha) * (1.0 + 1e-12))
        .ceil()
        .max(1.0);
    (min_units - 1) as f64 + t
}

/// Probability that discrete Laplace noise of `scale` is at least `t` (for `t ≥ 1`), computed
/// in log space.
pub fn discrete_laplace_tail(scale: f64, t: f64) -> f64 {
    let ln_1p_alpha = (-1.0 / scale).exp().ln_1p();
    (-t / scale - ln_1p_alpha).exp()
}

/// The cells of `stats` that `keep` accepts, in order, with every per-cell figure.
fn only_cells(plan: &CheckedPlan, stats: &CellStats, keep: impl Fn(usize) -> bool) -> CellStats {
    let cells: Vec<usize> = (0..stats.cells()).filter(|&c| keep(c)).collect();
    let pick = |v: &Vec<i64>| cells.iter().map(|&c| v[c]).collect::<Vec<i64>>();
    let value_aggs = plan
        .aggregates
        .iter()
        .filter(|a| !matches!(a, ResolvedAggregate::CountUnits { .. }));
    CellStats {
        units: pick(&stats.units),
        sums: stats
            .sums
            .iter()
            .map(|v| cells.iter().map(|&c| v[c]).collect())
            .collect(),
        valued: stats.valued.iter().map(pick).collect(),
        dominance: stats
            .dominance
            .iter()
            .map(|v| cells.iter().map(|&c| v[c].clone()).collect())
            .collect(),
        histograms: stats
            .histograms
            .iter()
            .zip(value_aggs)
            .map(|(h, agg)| match agg {
                ResolvedAggregate::Quantile { bins, .. } => cells
                    .iter()
                    .flat_map(|&c| h[c * bins..(c + 1) * bins].iter().copied())
                    .collect(),
                _ => Vec::new(),
            })
            .collect(),
        observed: stats
            .observed
            .as_ref()
            .map(|o| cells.iter().map(|&c| o[c].clone()).collect()),
    }
}

/// One noisy vector the gate measured, with the scale of its noise.
struct Noisy<T> {
    values: Vec<T>,
    scale: f64,
}

/// The measurements of one sum, mean or quantile aggregate.
struct ValueMeasures {
    /// Sum and mean: noisy per-cell sums of per-unit values. Quantile: noisy unit counts per
    /// (cell, bin), at `cell * bins + bin`.
    main: Measured,
    /// Mean: noisy per-cell counts of units that have a value (the denominator).
    valued: Option<Noisy<i64>>,
    /// Dominance (sums): noisy per-cell sums of the `n` largest absolute contributions.
    top: Option<Noisy<f64>>,
    /// Dominance with negative bounds: noisy per-cell totals of absolute contributions (with
    /// non-negative bounds the noisy sum is that total).
    abs: Option<Noisy<f64>>,
}

enum Measured {
    Sums(Noisy<f64>),
    Histogram(Noisy<i64>),
}

impl ValueMeasures {
    fn sums(&self) -> &[f64] {
        match &self.main {
            Measured::Sums(n) => &n.values,
            Measured::Histogram(_) => &[],
        }
    }

    fn scale(&self) -> f64 {
        match &self.main {
            Measured::Sums(n) => n.scale,
            Measured::Histogram(n) => n.scale,
        }
    }

    /// Whether `cell` is dominated under `rule`, from noisy figures only.
    fn dominated(&self, rule: &Dominance, cell: usize) -> bool {
        let Some(top) = &self.top else {
            return false;
        };
        let total = match &self.abs {
            Some(abs) => abs.values[cell],
            None => self.sums()[cell],
        };
        rule.dominated(top.values[cell], total)
    }
}

/// Draws the gate's noisy vectors, each with an equal share `eps_each` of the query's ε, for one
/// unit touching at most `n` cells, and adds up what OpenDP's privacy maps certify for them.
struct Meter {
    n: i64,
    eps_each: f64,
    deadline: Option<Instant>,
    certified: f64,
}

impl Meter {
    /// Discrete Laplace noise over integer counts (L1 sensitivity `n`).
    fn counts(&mut self, counts: &[i64]) -> Result<Noisy<i64>, GateError> {
        let (n, eps) = (self.n, self.eps_each);
        let (meas, scale) = calibrate(discrete_laplace, n as f64 / eps, &n, eps)?;
        let values = noise_by(counts, self.deadline, |v| meas.invoke(v))?;
        self.certified += meas.map(&n).map_err(mech)?;
        Ok(Noisy { values, scale })
    }

    /// Laplace noise over sums with L1 sensitivity `d_in`.
    fn sums(&mut self, sums: &[f64], d_in: f64) -> Result<Noisy<f64>, GateError> {
        let eps = self.eps_each;
        let (meas, scale) = calibrate(laplace, d_in / eps, &d_in, eps)?;
        let values = noise_by(sums, self.deadline, |v| meas.invoke(v))?;
        self.certified += meas.map(&d_in).map_err(mech)?;
        Ok(Noisy { values, scale })
    }
}

/// How many noisy vectors the gate measures for a plan: one count vector, then per aggregate
/// its own (see [`release`]).
fn measurements(aggregates: &[ResolvedAggregate], dominance: Option<Dominance>) -> usize {
    let dominance_extra = |bounds: &[f64; 2]| match dominance {
        Some(_) => 1 + usize::from(bounds[0] < 0.0),
        None => 0,
    };
    1 + aggregates
        .iter()
        .map(|a| match a {
            ResolvedAggregate::CountUnits { .. } => 0,
            ResolvedAggregate::Sum { bounds, .. } => 1 + dominance_extra(bounds),
            ResolvedAggregate::Mean { .. } => 2,
            ResolvedAggregate::Quantile { .. } => 1,
        })
        .sum::<usize>()
}

/// Applies noise, threshold and hard check to `stats` computed for `plan`.
///
/// The budget `ε` is split evenly over the noisy vectors measured (OpenDP `make_laplace` over
/// every cell; the sensitivities are for one unit touching at most `N` cells):
/// - the unit count of every cell (discrete Laplace, sensitivity `N`);
/// - per sum: the sum of per-unit values (Laplace, `N·Δ`);
/// - per mean: that sum, and the count of units with a value (discrete, `N`);
/// - per quantile: a histogram of per-unit values (discrete, `N`);
/// - with the dominance rule, per sum: the sum of the `n` largest absolute per-unit
///   contributions (Laplace, `N·Δ`: one unit moves it by at most its own contribution), and,
///   if the bounds allow negative values, the total of absolute contributions (Laplace, `N·Δ`).
///
/// Every decision after that (threshold, dominance, key selection, the quantile reading) reads
/// noisy figures only, except the hard minimum on the true count, which changes the outcome
/// with probability at most `δ0`.
pub fn release(
    plan: &CheckedPlan,
    stats: &CellStats,
    config: GateConfig,
) -> Result<Table, GateError> {
    release_checked(plan, stats, config, HardCheck::On, None)
}

/// [`release`], stopping with [`GateError::Deadline`] if `deadline` passes while it draws noise
/// (it checks between chunks of [`NOISE_CHUNK`] draws).
pub fn release_by(
    plan: &CheckedPlan,
    stats: &CellStats,
    config: GateConfig,
    deadline: Instant,
) -> Result<Table, GateError> {
    release_checked(plan, stats, config, HardCheck::On, Some(deadline))
}

/// Noise is drawn in chunks of this many cells, with a deadline check between chunks. Each
/// cell's noise is independent, so drawing a vector in chunks gives the same distribution.
pub const NOISE_CHUNK: usize = 4096;

/// `measure` applied to `data` chunk by chunk, checking `deadline` between chunks.
fn noise_by<T: Clone>(
    data: &[T],
    deadline: Option<Instant>,
    measure: impl Fn(&Vec<T>) -> opendp::error::Fallible<Vec<T>>,
) -> Result<Vec<T>, GateError> {
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(NOISE_CHUNK) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(GateError::Deadline);
        }
        out.extend(measure(&chunk.to_vec()).map_err(mech)?);
    }
    Ok(out)
}

/// Whether the gate applies its hard minimum on true counts. Only the calibration test turns
/// it off, to see the noisy threshold alone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HardCheck {
    On,
    #[cfg(test)]
    Off,
}

fn release_checked(
    plan: &CheckedPlan,
    stats: &CellStats,
    config: GateConfig,
    hard_check: HardCheck,
    deadline: Option<Instant>,
) -> Result<Table, GateError> {
    // With key selection, a combination below the minimum can never be released (the hard
    // check drops it whatever its noise), so it is left out before any noise is drawn: the
    // output is the same, and a key with millions of rare values costs no draws for them.
    let eligible;
    let stats = if plan.plan.key_selection && hard_check == HardCheck::On {
        eligible = only_cells(plan, stats, |c| stats.units[c] >= config.min_units as i64);
        &eligible
    } else {
        stats
    };
    let epsilon = plan.plan.epsilon;
    let n = i64::from(plan.max_groups_per_unit);
    let dominance = config.dominance.filter(|d| d.k < 1.0);
    // Sums, means and quantiles: one value column each, in plan order (as in `CellStats`).
    let value_aggs: Vec<(usize, &ResolvedAggregate)> = plan
        .aggregates
        .iter()
        .filter(|a| !matches!(a, ResolvedAggregate::CountUnits { .. }))
        .enumerate()
        .collect();
    let mut meter = Meter {
        n,
        eps_each: epsilon / measurements(&plan.aggregates, dominance) as f64,
        deadline,
        certified: 0.0,
    };
    // 1. Noisy counts of units over every cell, then each aggregate's own vectors.
    let counts = meter.counts(&stats.units)?;
    let mut measured = Vec::with_capacity(value_aggs.len());
    for &(i, agg) in &value_aggs {
        measured.push(match agg {
            ResolvedAggregate::Quantile { .. } => ValueMeasures {
                main: Measured::Histogram(meter.counts(&stats.histograms[i])?),
                valued: None,
                top: None,
                abs: None,
            },
            ResolvedAggregate::Sum { bounds, .. } | ResolvedAggregate::Mean { bounds, .. } => {
                let d_in = n as f64 * agg.per_cell_sensitivity(plan.max_rows_per_group);
                let main = Measured::Sums(meter.sums(&stats.sums[i], d_in)?);
                let is_sum = matches!(agg, ResolvedAggregate::Sum { .. });
                let valued = if is_sum {
                    None
                } else {
                    Some(meter.counts(&stats.valued[i])?)
                };
                // The dominance rule is for magnitude tables: sums. A mean is of per-unit
                // values clamped to the bounds, over at least τ units.
                let (mut top, mut abs) = (None, None);
                if let Some(rule) = dominance.filter(|_| is_sum) {
                    let tops: Vec<f64> = stats.dominance[i]
                        .iter()
                        .map(|(top, _)| top.iter().take(rule.n).sum())
                        .collect();
                    top = Some(meter.sums(&tops, d_in)?);
                    if bounds[0] < 0.0 {
                        let totals: Vec<f64> = stats.dominance[i].iter().map(|(_, a)| *a).collect();
                        abs = Some(meter.sums(&totals, d_in)?);
                    }
                }
                ValueMeasures {
                    main,
                    valued,
                    top,
                    abs,
                }
            }
            ResolvedAggregate::CountUnits { .. } => unreachable!("counts have no value column"),
        });
    }
    let certified = meter.certified;
    if certified > epsilon * (1.0 + 1e-9) {
        return Err(GateError::OverBudget {
            certified,
            requested: epsilon,
        });
    }

    // 2 and 3. Threshold on the noisy count, then the hard minimum on the true count.
    let delta_cell = config.delta0 / plan.threshold_cells as f64;
    let selecting = plan.plan.key_selection;
    let tau = threshold(counts.scale, config.min_units, delta_cell);
    let passes = |cell: usize| {
        (counts.values[cell] as f64) >= tau
            && (hard_check != HardCheck::On || stats.units[cell] >= config.min_units as i64)
    };
    // With key selection the keys came from the data: a key combination that does not pass is
    // left out, not shown as suppressed, and at most the policy's cell limit are released, the
    // ones with the largest noisy counts (post-processing of noisy counts). Nothing says how
    // many were left out.
    let cells: Vec<usize> = if selecting {
        let mut kept: Vec<usize> = (0..stats.cells()).filter(|&c| passes(c)).collect();
        if kept.len() > plan.threshold_cells {
            kept.sort_by_key(|&c| (std::cmp::Reverse(counts.values[c]), c));
            kept.truncate(plan.threshold_cells);
            kept.sort_unstable();
        }
        kept
    } else {
        (0..stats.cells()).collect()
    };
    let mut table = Table::new(
        plan.keys.iter().map(|k| k.name.clone()),
        plan.aggregates.iter().map(|a| a.name().to_string()),
    );
    for cell in cells {
        let keys = plan.keys_of(stats, cell);
        let noisy_count = counts.values[cell];
        if !passes(cell) {
            table.push_suppressed(keys, Suppression::MinimumUnits);
            continue;
        }
        let dominated =
            dominance.is_some_and(|rule| measured.iter().any(|m| m.dominated(&rule, cell)));
        if dominated {
            table.push_suppressed(keys, Suppression::Dominance);
            continue;
        }
        let mut values = Vec::with_capacity(plan.aggregates.len());
        let mut s = 0;
        for agg in &plan.aggregates {
            values.push(match agg {
                ResolvedAggregate::CountUnits { .. } => noisy_count as f64,
                ResolvedAggregate::Sum { .. } => {
                    s += 1;
                    measured[s - 1].sums()[cell]
                }
                ResolvedAggregate::Mean { bounds, .. } => {
                    s += 1;
                    let m = &measured[s - 1];
                    let valued = m.valued.as_ref().map_or(noisy_count, |v| v.values[cell]);
                    (m.sums()[cell] / valued.max(1) as f64).clamp(bounds[0], bounds[1])
                }
                ResolvedAggregate::Quantile {
                    q, bounds, bins, ..
                } => {
                    s += 1;
                    let Measured::Histogram(h) = &measured[s - 1].main else {
                        unreachable!("quantiles are measured as histograms")
                    };
                    quantile_from_histogram(&h.values[cell * bins..(cell + 1) * bins], *q, *bounds)
                }
            });
        }
        table.push(keys, values);
    }

    let mut accuracy = Vec::new();
    let mut s = 0;
    for agg in &plan.aggregates {
        accuracy.push(match agg {
            ResolvedAggregate::CountUnits { name } => Accuracy {
                column: name.clone(),
                mechanism: "discrete Laplace (OpenDP make_laplace)".into(),
                noise_scale: counts.scale,
                ci95_half_width: counts.scale * LN_20,
            },
            ResolvedAggregate::Sum { name, .. } => {
                s += 1;
                let scale = measured[s - 1].scale();
                Accuracy {
                    column: name.clone(),
                    mechanism: "Laplace (OpenDP make_laplace)".into(),
                    noise_scale: scale,
                    ci95_half_width: scale * LN_20,
                }
            }
            ResolvedAggregate::Mean { name, bounds } => {
                s += 1;
                let m = &measured[s - 1];
                let b = bounds[0].abs().max(bounds[1].abs());
                let count_scale = m.valued.as_ref().map_or(counts.scale, |v| v.scale);
                Accuracy {
                    column: name.clone(),
                    mechanism: "Laplace sum / discrete Laplace count of units with a value (OpenDP make_laplace)".into(),
                    noise_scale: m.scale(),
                    // Delta-method bound at the smallest released count, τ.
                    ci95_half_width: (m.scale() + b * count_scale) * LN_20 / tau,
                }
            }
            ResolvedAggregate::Quantile {
                name, bounds, bins, ..
            } => {
                s += 1;
                Accuracy {
                    column: name.clone(),
                    mechanism: format!(
                        "quantile read off a noisy histogram of {bins} bins (discrete Laplace, OpenDP make_laplace); the interval is one bin width, the resolution"
                    ),
                    noise_scale: measured[s - 1].scale(),
                    ci95_half_width: (bounds[1] - bounds[0]) / *bins as f64,
                }
            }
        });
    }
    let released = table.released().count();
    // Key selection adds at most N·δ0/C' ≤ δ0 for the keys a neighbouring dataset could add.
    let delta = if selecting {
        (2.0 + epsilon.exp()) * config.delta0
    } else {
        (1.0 + epsilon.exp()) * config.delta0
    };
    table.release = Some(ReleaseInfo {
        epsilon,
        delta,
        min_units: config.min_units,
        threshold: tau,
        accuracy,
        released_cells: released,
        suppressed_cells: table.rows.len() - released,
        suppressed_minimum_units: count_suppressed(&table, Suppression::MinimumUnits),
        suppressed_dominance: count_suppressed(&table, Suppression::Dominance),
        suppressed_secondary: 0,
        keys_selected: selecting,
    });
    Ok(table)
}

/// The `q`-quantile of values spread over equal-width bins of `bounds` with these noisy counts.
///
/// Negative counts are kept as they are: the noise has mean zero, so the total and every
/// cumulative count stay unbiased. Reading negatives as zero would bias them upwards by about
/// half the noise scale per empty bin, and with many empty bins above the data that pushes high
/// quantiles far up the range. The quantile lies in the first bin with a positive count where
/// the cumulative count reaches `q` of the total.
pub fn quantile_from_histogram(counts: &[i64], q: f64, bounds: [f64; 2]) -> f64 {
    let width = (bounds[1] - bounds[0]) / counts.len() as f64;
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    if total <= 0.0 {
        return (bounds[0] + bounds[1]) / 2.0;
    }
    let target = q * total;
    let mut before = 0.0;
    for (b, &c) in counts.iter().enumerate() {
        let c = c as f64;
        if c > 0.0 && before + c >= target {
            let within = ((target - before) / c).clamp(0.0, 1.0);
            return bounds[0] + (b as f64 + within) * width;
        }
        before += c;
    }
    bounds[1]
}

/// Discrete Laplace noise over a vector of integer counts.
type CountsMeasurement = opendp::core::Measurement<
    VectorDomain<AtomDomain<i64>>,
    L1Distance<i64>,
    MaxDivergence,
    Vec<i64>,
>;

/// Laplace noise over a vector of sums (finite values: the query turns NaN and ±inf into
/// null, and nulls add nothing).
type SumsMeasurement = opendp::core::Measurement<
    VectorDomain<AtomDomain<f64>>,
    L1Distance<f64>,
    MaxDivergence,
    Vec<f64>,
>;

/// The Laplace measurement over a vector of sums with this scale.
fn laplace(scale: f64) -> opendp::error::Fallible<SumsMeasurement> {
    make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
        L1Distance::<f64>::default(),
        scale,
        None,
    )
}

/// The discrete Laplace measurement over a vector of integer counts with this scale.
fn discrete_laplace(scale: f64) -> opendp::error::Fallible<CountsMeasurement> {
    make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L1Distance::<i64>::default(),
        scale,
        None,
    )
}

pub(crate) fn count_suppressed(table: &Table, why: Suppression) -> usize {
    table
        .rows
        .iter()
        .filter(|r| r.suppressed == Some(why))
        .count()
}

/// Builds a measurement with the smallest scale (starting from `scale`) whose OpenDP privacy map
/// certifies at most `eps` for input distance `d_in`; OpenDP rounds conservatively, so the first
/// scale can certify a hair more than `eps`.
fn calibrate<M, D>(
    make: impl Fn(f64) -> opendp::error::Fallible<M>,
    mut scale: f64,
    d_in: &D,
    eps: f64,
) -> Result<(M, f64), GateError>
where
    M: Mapped<D>,
{
    if !(scale.is_finite()) || scale < 0.0 {
        return Err(GateError::Mechanism(format!("invalid noise scale {scale}")));
    }
    for _ in 0..64 {
        let m = make(scale).map_err(mech)?;
        if m.certified(d_in)? <= eps {
            return Ok((m, scale));
        }
        scale *= 1.0 + 1e-9;
    }
    Err(GateError::Mechanism(
        "could not calibrate the noise scale".into(),
    ))
}

/// A measurement whose privacy loss can be read for an input distance.
trait Mapped<D> {
    fn certified(&self, d_in: &D) -> Result<f64, GateError>;
}

impl<DI, MI> Mapped<MI::Distance> for opendp::core::Measurement<DI, MI, MaxDivergence, DI::Carrier>
where
    DI: opendp::core::Domain,
    MI: opendp::core::Metric,
    (DI, MI): opendp::core::MetricSpace,
{
    fn certified(&self, d_in: &MI::Distance) -> Result<f64, GateError> {
        self.map(d_in).map_err(mech)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The noisy threshold on its own, without the hard check behind it: a cell of
    /// `min_units - 1` units passes at most at the calibrated rate. (With the hard check on, a
    /// miscalibrated threshold would never show.) The rate is set high (δ per cell = 0.02) so
    /// that it can be measured: 40,000 draws see about 800 passes, and a threshold one noise
    /// scale too low (a pass rate e times higher) fails the bound by over 20 standard errors.
    #[test]
    fn the_noisy_threshold_alone_lets_a_nine_unit_cell_through_at_most_at_the_calibrated_rate() {
        let trials = 40_000usize;
        for scale in [1.0, 4.0, 25.0] {
            let delta_cell = 0.02;
            let tau = threshold(scale, 10, delta_cell);
            let meas = discrete_laplace(scale).unwrap();
            let noisy = meas.invoke(&vec![9i64; trials]).unwrap();
            let passed = noisy.iter().filter(|&&c| c as f64 >= tau).count() as f64;
            let rate = passed / trials as f64;
            let sd = (delta_cell * (1.0 - delta_cell) / trials as f64).sqrt();
            assert!(
                rate <= delta_cell + 4.5 * sd,
                "scale {scale}: 9-unit cell passes at {rate}, calibrated for {delta_cell}"
            );
            // The threshold is not needlessly high either: the exact tail at τ is within a
            // factor e^(1/scale) of the target.
            let exact = discrete_laplace_tail(scale, tau - 9.0);
            assert!(exact <= delta_cell && exact * (1.0 / scale).exp() > delta_cell);
        }
    }

    /// The same through the whole gate, with its hard check switched off: a 9-unit cell passes
    /// at most at the calibrated rate, and a 500-unit cell always does.
    #[test]
    fn the_gate_without_its_hard_check_releases_a_nine_unit_cell_at_most_at_the_calibrated_rate() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("person,region\n");
        for i in 0..509 {
            let region = if i < 9 { "A" } else { "B" };
            csv.push_str(&format!("p{i},{region}\n"));
        }
        std::fs::write(dir.path().join("people.csv"), csv).unwrap();
        std::fs::write(
            dir.path().join("people.toml"),
            "name = \"people\"\nprivacy_unit = \"person\"\nmax_groups_per_unit = 1\n\
             source = { format = \"csv\", paths = [\"people.csv\"] }\n\
             [[columns]]\nname = \"region\"\ntype = \"str\"\ndomain = [\"A\", \"B\"]\n",
        )
        .unwrap();
        let ds = crate::dataset::Dataset::open(&dir.path().join("people.toml")).unwrap();
        let plan: oar_guest::plan::Plan = serde_json::from_value(serde_json::json!({
            "dataset": "people", "group_by": ["region"], "epsilon": 0.5,
            "aggregates": [{"agg": "count_units", "name": "n"}]
        }))
        .unwrap();
        let limits = crate::query::PlanLimits {
            max_output_cells: 100,
            max_groups_per_unit: 4,
        };
        let compiled = crate::query::check(&plan, &ds, limits).unwrap();
        let stats = crate::query::QueryBackend::execute(
            &crate::query::PolarsBackend::default(),
            &compiled,
            &ds,
            None,
        )
        .unwrap();
        assert_eq!(stats.units, vec![9, 500]);
        // Two cells: δ per cell = δ0 / 2 = 0.02.
        let config = GateConfig {
            min_units: 10,
            delta0: 0.04,
            dominance: None,
        };
        let trials = 20_000;
        let mut passed = 0usize;
        for _ in 0..trials {
            let t = release_checked(&compiled, &stats, config, HardCheck::Off, None).unwrap();
            if t.get(&[oar_guest::Value::from("A")], "n").is_some() {
                passed += 1;
            }
            assert!(t.get(&[oar_guest::Value::from("B")], "n").is_some());
        }
        let rate = passed as f64 / trials as f64;
        let sd = (0.02f64 * 0.98 / trials as f64).sqrt();
        assert!(rate <= 0.02 + 4.5 * sd, "9-unit cell passed at {rate}");
        // And the hard check, on, never lets it through.
        for _ in 0..200 {
            let t = release(&compiled, &stats, config).unwrap();
            assert!(t.get(&[oar_guest::Value::from("A")], "n").is_none());
        }
    }

    /// Below about 5.5e-17 per unit of sensitivity, `exp(-1/scale)` rounds to 1 and the old
    /// formula let τ fall to `min_units`: fifteen queries at ε = 1e-17 then answered "≥ 10
    /// units?" for every cell. In log space τ grows with the scale, as it must.
    #[test]
    fn the_threshold_stays_sound_for_huge_noise_scales() {
        for scale in [1e6, 1e12, 1e16, 1e17, 1e20] {
            let delta_cell = 1e-9 / 100.0;
            let tau = threshold(scale, 10, delta_cell);
            assert!(tau > scale, "scale {scale}: τ = {tau}");
            assert!(discrete_laplace_tail(scale, tau - 9.0) <= delta_cell);
        }
    }

    #[test]
    fn threshold_keeps_cells_below_minimum_under_delta() {
        for scale in [1.0, 3.5, 14.0, 40.0] {
            let delta = 1e-9 / 147.0;
            let tau = threshold(scale, 10, delta);
            // A cell with 9 units needs noise >= tau - 9 to pass.
            let p = discrete_laplace_tail(scale, tau - 9.0);
            assert!(p <= delta, "scale {scale}: p {p} > {delta}");
            // And the threshold is tight: one less would exceed delta.
            let p_looser = discrete_laplace_tail(scale, tau - 10.0);
            assert!(
                tau - 10.0 < 1.0 || p_looser > delta,
                "scale {scale}: threshold not tight"
            );
        }
    }
}
