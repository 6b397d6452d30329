//! # Present population per region per day
//!
//! OPAL's headline indicator from mobile-network data: how many distinct subscribers were present
//! in each region on each day. A subscriber seen in a region at least once that day counts once
//! there, however many calls they made.
//!
//! The module asks the host for one aggregate, the count of distinct privacy units (subscribers)
//! per `(region, day)` cell, and publishes it unchanged. The host's gate suppresses cells with too
//! few subscribers and adds calibrated noise; each subscriber counts in at most
//! `max_cells_per_subscriber` cells, so the noise scale is `max_cells_per_subscriber / epsilon`.

use oar_guest::{col, Context, Error};
use serde::Deserialize;

/// Parameters a requester may set.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Dataset of call-detail records.
    pub dataset: String,
    /// Privacy budget for the release.
    pub epsilon: f64,
    /// Contribution bound: the most `(region, day)` cells one subscriber counts in.
    pub max_cells_per_subscriber: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dataset: "cdr".into(),
            epsilon: 1.0,
            max_cells_per_subscriber: 14,
        }
    }
}

/// Name of the table this module publishes (declared in its manifest).
pub const OUTPUT: &str = "population_by_region_day";

/// Runs the analysis.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    ctx.log(&format!("present population, epsilon {}", p.epsilon));
    let table = ctx
        .dataset(&p.dataset)?
        .derive("day", col("timestamp").date())
        .group_by(["region", "day"])
        .count_units("subscribers")
        .max_groups_per_unit(p.max_cells_per_subscriber)
        .release(p.epsilon)?;
    ctx.emit(OUTPUT, &table)
}

oar_guest::export_module!(run);
