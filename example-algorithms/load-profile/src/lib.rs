//! # Smart-meter load profile
//!
//! Cf. the seeds' smart-meter case: a distribution network operator holds half-hourly readings
//! of every household, but a household's half-hourly profile reveals its routine (when it wakes,
//! leaves and comes home), so the operator may use it at that resolution only with consent.
//! Every household may be used at daily resolution.
//!
//! Two releases:
//!
//! 1. `load_profile`: the mean kWh per `(area, half_hour)` over households whose meter carries
//!    consent on every reading (`per_unit::all`), so a household that withdrew consent mid-period
//!    is left out entirely. Each household adds to at most 48 cells (one per half-hour).
//! 2. `daily_consumption`: each household's total per day (`per_unit::sum` by day), then the mean
//!    over all households per area. The half-hourly values never leave the per-unit stage, so
//!    non-consenting households are only used at daily resolution.

use oar_guest::{col, per_unit, Context, Error};
use serde::Deserialize;

/// Parameters a requester may set.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Dataset of half-hourly readings.
    pub dataset: String,
    /// Total privacy budget: `profile_share` of it for the profile, the rest for daily means.
    pub epsilon: f64,
    /// Share of the budget for the half-hourly profile.
    pub profile_share: f64,
    /// Clamp of one half-hour's reading (kWh): readings above count as this much.
    pub max_half_hour_kwh: f64,
    /// Clamp of one household's daily total (kWh).
    pub max_daily_kwh: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dataset: "meters".into(),
            epsilon: 2.0,
            profile_share: 0.75,
            max_half_hour_kwh: 1.5,
            max_daily_kwh: 40.0,
        }
    }
}

/// The half-hourly profile table (declared in the manifest).
pub const PROFILE: &str = "load_profile";
/// The daily consumption table (declared in the manifest).
pub const DAILY: &str = "daily_consumption";

/// Runs the analysis.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    if !(p.profile_share > 0.0 && p.profile_share < 1.0) {
        return Err(Error::module("profile_share must be between 0 and 1"));
    }
    let profile = ctx
        .dataset(&p.dataset)?
        .per_unit("consented", per_unit::all(col("half_hourly_consent")))
        .filter(col("consented"))
        .derive("half_hour", col("read_at").half_hour())
        .group_by(["area", "half_hour"])
        .mean_clamped("mean_kwh", "kwh", 0.0, p.max_half_hour_kwh)
        .max_groups_per_unit(48)
        .release(p.profile_share * p.epsilon)?;
    let daily = ctx
        .dataset(&p.dataset)?
        .derive("day", col("read_at").date())
        .per_unit("daily_kwh", per_unit::sum(col("kwh")).by(["day"]))
        .group_by(["area"])
        .mean_clamped("mean_daily_kwh", "daily_kwh", 0.0, p.max_daily_kwh)
        .max_groups_per_unit(1)
        .release((1.0 - p.profile_share) * p.epsilon)?;
    ctx.emit(PROFILE, &profile)?;
    ctx.emit(DAILY, &daily)
}

oar_guest::export_module!(run);
