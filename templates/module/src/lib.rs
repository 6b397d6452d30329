//! # An OAR module (template)
//!
//! Made by `oar new`. It counts distinct subscribers per region in the `cdr` dataset, and how
//! many of them were there at night, and publishes the night share: two releases combined in
//! post-processing. Change the plans in [`run`], the tables it emits and `manifest.toml`
//! together; `cargo test` runs it natively through the real privacy gate on synthetic data.

use oar_guest::table::{Suppression, Table};
use oar_guest::{col, Context, Error};
use serde::Deserialize;

/// Parameters a requester may set when submitting a run (JSON; missing fields take defaults).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The dataset to read.
    pub dataset: String,
    /// The privacy budget of one run, split evenly between the two releases.
    pub epsilon: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dataset: "cdr".into(),
            epsilon: 1.0,
        }
    }
}

/// The table this module publishes (declared in `manifest.toml`).
pub const OUTPUT: &str = "subscribers_by_region";

/// Runs the analysis: every number it gets back has passed the host's privacy gate.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    let hour = || col("timestamp").hour();
    // The contribution bound sets the noise: a subscriber counts in at most 2 regions (where
    // they live and where they work), so each count's noise scale is 2 / (epsilon / 2).
    let all = ctx
        .dataset(&p.dataset)?
        .group_by(["region"])
        .count_units("subscribers")
        .max_groups_per_unit(2)
        .release(p.epsilon / 2.0)?;
    let night = ctx
        .dataset(&p.dataset)?
        .filter(hour().ge(22).or(hour().lt(6)))
        .group_by(["region"])
        .count_units("at_night")
        .max_groups_per_unit(2)
        .release(p.epsilon / 2.0)?;
    ctx.emit(OUTPUT, &combine(&all, &night))
}

/// Post-processing: per region, both counts and the night share. A region suppressed in
/// either release is suppressed here.
pub fn combine(all: &Table, night: &Table) -> Table {
    let mut out = Table::new(["region"], ["subscribers", "at_night", "night_share"]);
    for row in &all.rows {
        let total = all.get(&row.keys, "subscribers");
        let at_night = night.get(&row.keys, "at_night");
        match (total, at_night) {
            (Some(t), Some(n)) if t > 0.0 => {
                out.push(row.keys.clone(), vec![t, n, (n / t).clamp(0.0, 1.0)])
            }
            _ => out.push_suppressed(row.keys.clone(), Suppression::Derived),
        }
    }
    out
}

oar_guest::export_module!(run);
