//! # Origin–destination flows from call-detail records
//!
//! The COVID-era mobility indicator (Flowminder, OPAL): per day, how many subscribers whose
//! *home region* is A spent the *day* in region B. Both are per-person facts derived from many
//! calls, so the module uses the plan algebra's per-unit stage:
//!
//! - `origin`: each subscriber's most frequent region at night (22:00–05:59) over the whole
//!   period;
//! - `destination`: each subscriber's most frequent region in working hours (09:00–16:59), per
//!   day.
//!
//! Then it counts distinct subscribers per `(day, origin, destination)`. A subscriber adds to
//! at most one cell per day, so the noise scale of a count is `days / epsilon`. Subscribers
//! with no night-time call have no home, and days without a working-hours call have no
//! destination: they drop out rather than being guessed.
//!
//! A second release counts subscribers per `(day, origin)`; in post-processing the module
//! divides the stayers (origin = destination) by it, with an interval propagated from both
//! noise scales, giving the share of residents who stayed in their home region that day.

use oar_guest::table::{Suppression, Table};
use oar_guest::{col, per_unit, Context, Error, Expr, Query};
use serde::Deserialize;

/// Parameters a requester may set.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Dataset of call-detail records.
    pub dataset: String,
    /// Total privacy budget: 3/4 for the flows, 1/4 for the residents per day.
    pub epsilon: f64,
    /// Days in the dataset's period: the most cells one subscriber adds to per release.
    pub days: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dataset: "cdr".into(),
            epsilon: 1.0,
            days: 7,
        }
    }
}

/// The flows table (declared in the manifest).
pub const FLOWS: &str = "od_flows";
/// The stayers table (declared in the manifest).
pub const STAYERS: &str = "od_stayers";

/// 1.96: the two-sided 95% normal quantile.
const Z95: f64 = 1.96;

fn hour() -> Expr {
    col("timestamp").hour()
}

/// Night: 22:00 to 05:59, when people are at home.
pub fn night() -> Expr {
    hour().ge(22).or(hour().lt(6))
}

/// Working hours: 09:00 to 16:59.
pub fn working_hours() -> Expr {
    hour().ge(9).and(hour().lt(17))
}

/// Adds `day`, each subscriber's `origin` (most frequent night-time region over the period)
/// and their `destination` on each day (most frequent working-hours region that day).
pub fn with_origin_and_destination<'c, 'h>(q: Query<'c, 'h>) -> Query<'c, 'h> {
    q.derive("day", col("timestamp").date())
        .per_unit("origin", per_unit::mode(col("region")).rows(night()))
        .per_unit(
            "destination",
            per_unit::mode(col("region"))
                .rows(working_hours())
                .by(["day"]),
        )
}

/// Runs the analysis.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    if p.days == 0 {
        return Err(Error::module("days must be at least 1"));
    }
    // The public list of regions, to keep only subscriber-days with a destination.
    let regions = ctx
        .schema(&p.dataset)?
        .column("region")
        .and_then(|c| c.domain.clone())
        .ok_or_else(|| Error::module("the region column has no public domain"))?;
    let flows = with_origin_and_destination(ctx.dataset(&p.dataset)?)
        .group_by(["day", "origin", "destination"])
        .count_units("subscribers")
        .max_groups_per_unit(p.days)
        .release(0.75 * p.epsilon)?;
    let residents = with_origin_and_destination(ctx.dataset(&p.dataset)?)
        .filter(col("destination").is_in(regions))
        .group_by(["day", "origin"])
        .count_units("residents")
        .max_groups_per_unit(p.days)
        .release(0.25 * p.epsilon)?;
    ctx.emit(FLOWS, &flows)?;
    ctx.emit(STAYERS, &stayers_table(&flows, &residents))
}

/// Per day and origin: stayers (origin = destination), residents with a destination that day,
/// the share who stayed and its 95% half-width (delta method). Suppressed in either release
/// means suppressed here (`derived`).
pub fn stayers_table(flows: &Table, residents: &Table) -> Table {
    let (sd_s, sd_r) = (
        flows.noise_sd("subscribers").unwrap_or(0.0),
        residents.noise_sd("residents").unwrap_or(0.0),
    );
    let mut out = Table::new(
        ["day", "origin"],
        ["stayers", "residents", "stay_share", "stay_share_ci95"],
    );
    for row in &residents.rows {
        let keys = row.keys.clone();
        let stay_keys = [keys[0].clone(), keys[1].clone(), keys[1].clone()];
        let s = flows.get(&stay_keys, "subscribers");
        let r = residents.get(&keys, "residents");
        match (s, r) {
            (Some(s), Some(r)) if r > 0.0 => {
                let share = (s / r).clamp(0.0, 1.0);
                let half = Z95 * (sd_s.powi(2) + share.powi(2) * sd_r.powi(2)).sqrt() / r;
                out.push(keys, vec![s, r, share, half]);
            }
            _ => out.push_suppressed(keys, Suppression::Derived),
        }
    }
    out
}

oar_guest::export_module!(run);
