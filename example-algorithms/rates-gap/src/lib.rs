//! # Business-rates gap per ward
//!
//! Cf. Belfast City Council: premises that look active (they have a commercial waste contract or
//! a non-domestic utility connection) but are not on the business rates register. The council
//! wants to know *where* to canvass, never *which* premise: the privacy unit is the premise, so
//! every released number counts at least the minimum number of premises and carries noise, and
//! asking "is premise P on the list?" is impossible by construction.
//!
//! Two releases are combined in post-processing (a multi-query module):
//!
//! 1. `active`: premises per ward that look active (half the budget);
//! 2. `missing`: of those, the ones not on the register (the other half);
//!
//! then `gap_rate = missing / active` with a 95% interval propagated from both noise scales (the
//! delta method: `Var(m/a) ≈ (σm² + r²·σa²) / a²`, with `σ² = 2b²` for Laplace noise of scale
//! `b`). A ward suppressed in either release is suppressed in the output (marked `derived`).

use oar_guest::table::{Suppression, Table};
use oar_guest::{col, Context, Error};
use serde::Deserialize;

/// Parameters a requester may set.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Dataset of premises.
    pub dataset: String,
    /// Total privacy budget, split evenly between the two releases.
    pub epsilon: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dataset: "premises".into(),
            epsilon: 1.0,
        }
    }
}

/// Name of the published table (declared in the manifest).
pub const OUTPUT: &str = "rates_gap_by_ward";

/// 1.96: the two-sided 95% normal quantile, for the propagated interval.
const Z95: f64 = 1.96;

/// Runs the analysis.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    let active = || col("waste_contract").or(col("utility_connection"));
    let half = p.epsilon / 2.0;
    let active_by_ward = ctx
        .dataset(&p.dataset)?
        .filter(active())
        .group_by(["ward"])
        .count_units("active")
        .release(half)?;
    let missing_by_ward = ctx
        .dataset(&p.dataset)?
        .filter(active().and(!col("on_rates_register")))
        .group_by(["ward"])
        .count_units("missing")
        .release(half)?;
    ctx.emit(OUTPUT, &gap_table(&active_by_ward, &missing_by_ward))
}

/// Combines the two releases: per ward, both counts, the gap rate and its 95% half-width.
pub fn gap_table(active: &Table, missing: &Table) -> Table {
    let (sd_a, sd_m) = (
        active.noise_sd("active").unwrap_or(0.0),
        missing.noise_sd("missing").unwrap_or(0.0),
    );
    let mut out = Table::new(["ward"], ["active", "missing", "gap_rate", "gap_rate_ci95"]);
    for row in &active.rows {
        let a = active.get(&row.keys, "active");
        let m = missing.get(&row.keys, "missing");
        match (a, m) {
            (Some(a), Some(m)) if a > 0.0 => {
                let rate = (m / a).clamp(0.0, 1.0);
                let half_width = Z95 * (sd_m.powi(2) + rate.powi(2) * sd_a.powi(2)).sqrt() / a;
                out.push(row.keys.clone(), vec![a, m, rate, half_width]);
            }
            _ => out.push_suppressed(row.keys.clone(), Suppression::Derived),
        }
    }
    out
}

oar_guest::export_module!(run);
