//! The privacy gate: turns true per-cell aggregates into a releasable table.
//!
//! For one plan with budget `ε`, split evenly over `k` measurements (one noisy count of units per
//! cell, plus one noisy sum per sum or mean aggregate):
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

use crate::query::{CellStats, CompiledPlan, ResolvedAggregate};
use oar_guest::table::{Accuracy, ReleaseInfo, Suppression, Table};
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_laplace;
use opendp::measures::MaxDivergence;
use opendp::metrics::L1Distance;

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

/// The (n, k) dominance rule: a sum or mean cell is suppressed when its `n` largest units hold
/// more than a share `k` of the cell's total (absolute contributions). ACRO's defaults are
/// n = 2, k = 0.9.
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
    /// Whether a cell with these contributions is dominated.
    pub fn dominated(&self, top: &[f64], abs_total: f64) -> bool {
        let top: f64 = top.iter().take(self.n).sum();
        abs_total > 0.0 && top > self.k * abs_total
    }
}

/// Why the gate could not produce a release.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// OpenDP refused to build or run a measurement.
    #[error("noise mechanism failed: {0}")]
    Mechanism(String),
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
/// for `t ≥ 1`, so `t = ⌈ln(delta_cell·(1 + α)) / ln α⌉` and `τ = min_units - 1 + t`.
pub fn threshold(scale: f64, min_units: u64, delta_cell: f64) -> f64 {
    let alpha = (-1.0 / scale).exp();
    let t = ((delta_cell * (1.0 + alpha)).ln() / alpha.ln())
        .ceil()
        .max(1.0);
    (min_units - 1) as f64 + t
}

/// Probability that discrete Laplace noise of `scale` is at least `t` (for `t ≥ 1`).
pub fn discrete_laplace_tail(scale: f64, t: f64) -> f64 {
    let alpha = (-1.0 / scale).exp();
    alpha.powf(t) / (1.0 + alpha)
}

/// Applies noise, threshold and hard check to `stats` computed for `plan`.
pub fn release(
    plan: &CompiledPlan,
    stats: &CellStats,
    config: GateConfig,
) -> Result<Table, GateError> {
    let epsilon = plan.plan.epsilon;
    let n = i64::from(plan.max_groups_per_unit);
    // Sums, means and quantiles: one value column each, in plan order (as in `CellStats`).
    let value_aggs: Vec<&ResolvedAggregate> = plan
        .aggregates
        .iter()
        .filter(|a| !matches!(a, ResolvedAggregate::CountUnits { .. }))
        .collect();
    let eps_each = epsilon / (1 + value_aggs.len()) as f64;

    // 1. Noisy counts of units over every cell of the domain.
    let (count_meas, count_scale) = calibrate(discrete_laplace, n as f64 / eps_each, &n, eps_each)?;
    let noisy_counts = count_meas.invoke(&stats.units).map_err(mech)?;
    let mut certified = count_meas.map(&n).map_err(mech)?;

    // Noisy sums, and noisy histograms for quantiles (one per value column, in order).
    let mut noisy_values: Vec<NoisyValues> = Vec::new();
    let mut value_scales = Vec::new();
    for (s_index, agg) in value_aggs.iter().enumerate() {
        if let ResolvedAggregate::Quantile { .. } = agg {
            // Each unit adds one to one bin in at most N cells: L1 sensitivity N.
            let (meas, scale) = calibrate(discrete_laplace, n as f64 / eps_each, &n, eps_each)?;
            let noisy = meas.invoke(&stats.histograms[s_index]).map_err(mech)?;
            certified += meas.map(&n).map_err(mech)?;
            noisy_values.push(NoisyValues::Histogram(noisy));
            value_scales.push(scale);
            continue;
        }
        let delta = per_cell_sensitivity(agg, plan.max_rows_per_group);
        let d_in = n as f64 * delta;
        let (meas, scale) = calibrate(
            |scale| {
                make_laplace::<_, _, MaxDivergence>(
                    VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
                    L1Distance::<f64>::default(),
                    scale,
                    None,
                )
            },
            d_in / eps_each,
            &d_in,
            eps_each,
        )?;
        noisy_values.push(NoisyValues::Sums(
            meas.invoke(&stats.sums[s_index]).map_err(mech)?,
        ));
        certified += meas.map(&d_in).map_err(mech)?;
        value_scales.push(scale);
    }
    if certified > epsilon * (1.0 + 1e-9) {
        return Err(GateError::OverBudget {
            certified,
            requested: epsilon,
        });
    }

    // 2 and 3. Threshold on the noisy count, then the hard minimum on the true count.
    let delta_cell = config.delta0 / plan.threshold_cells as f64;
    let selecting = plan.plan.key_selection;
    let tau = threshold(count_scale, config.min_units, delta_cell);
    let mut table = Table::new(
        plan.keys.iter().map(|k| k.name.clone()),
        plan.aggregates.iter().map(|a| a.name().to_string()),
    );
    for cell in 0..plan.cells {
        let keys = plan.cell_keys(cell);
        let noisy_count = noisy_counts[cell];
        let passes = (noisy_count as f64) >= tau && stats.units[cell] >= config.min_units as i64;
        if !passes {
            // With key selection the key itself came from the data: a key that does not pass
            // is left out, not shown as suppressed.
            if !selecting {
                table.push_suppressed(keys, Suppression::MinimumUnits);
            }
            continue;
        }
        let dominated = config.dominance.is_some_and(|rule| {
            value_aggs
                .iter()
                .zip(&stats.dominance)
                .any(|(agg, per_cell)| {
                    !matches!(agg, ResolvedAggregate::Quantile { .. })
                        && rule.dominated(&per_cell[cell].0, per_cell[cell].1)
                })
        });
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
                    noisy_values[s - 1].sum(cell)
                }
                ResolvedAggregate::Mean { bounds, .. } => {
                    s += 1;
                    (noisy_values[s - 1].sum(cell) / noisy_count as f64).clamp(bounds[0], bounds[1])
                }
                ResolvedAggregate::Quantile {
                    q, bounds, bins, ..
                } => {
                    s += 1;
                    noisy_values[s - 1].quantile(cell, *bins, *q, *bounds)
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
                noise_scale: count_scale,
                ci95_half_width: count_scale * LN_20,
            },
            ResolvedAggregate::Sum { name, .. } => {
                s += 1;
                Accuracy {
                    column: name.clone(),
                    mechanism: "Laplace (OpenDP make_laplace)".into(),
                    noise_scale: value_scales[s - 1],
                    ci95_half_width: value_scales[s - 1] * LN_20,
                }
            }
            ResolvedAggregate::Mean { name, bounds } => {
                s += 1;
                let b = bounds[0].abs().max(bounds[1].abs());
                Accuracy {
                    column: name.clone(),
                    mechanism: "Laplace sum / discrete Laplace count (OpenDP make_laplace)".into(),
                    noise_scale: value_scales[s - 1],
                    // Delta-method bound at the smallest released count, τ.
                    ci95_half_width: (value_scales[s - 1] + b * count_scale) * LN_20 / tau,
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
                    noise_scale: value_scales[s - 1],
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

/// Noisy per-cell values of one sum, mean or quantile aggregate.
enum NoisyValues {
    /// Noisy sums, one per cell.
    Sums(Vec<f64>),
    /// Noisy unit counts per (cell, bin), at `cell * bins + bin`.
    Histogram(Vec<i64>),
}

impl NoisyValues {
    fn sum(&self, cell: usize) -> f64 {
        match self {
            NoisyValues::Sums(v) => v[cell],
            NoisyValues::Histogram(_) => f64::NAN,
        }
    }

    /// The `q`-quantile of `cell` from its noisy histogram: the value where the noisy
    /// cumulative count first reaches `q` of the noisy total, interpolated linearly within its
    /// bin. Post-processing of the noisy counts only.
    fn quantile(&self, cell: usize, bins: usize, q: f64, bounds: [f64; 2]) -> f64 {
        let NoisyValues::Histogram(h) = self else {
            return f64::NAN;
        };
        quantile_from_histogram(&h[cell * bins..(cell + 1) * bins], q, bounds)
    }
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

/// How much one unit can change one cell's value of `agg`.
fn per_cell_sensitivity(agg: &ResolvedAggregate, max_rows_per_group: u32) -> f64 {
    match agg {
        ResolvedAggregate::CountUnits { .. } => 1.0,
        ResolvedAggregate::Sum { bounds, .. } => {
            f64::from(max_rows_per_group) * bounds[0].abs().max(bounds[1].abs())
        }
        ResolvedAggregate::Mean { bounds, .. } => bounds[0].abs().max(bounds[1].abs()),
        ResolvedAggregate::Quantile { .. } => 1.0,
    }
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
