//! # Traffic around events
//!
//! A council wants to know what a stadium match or a concert does to the roads: how many
//! vehicles use each corridor hour by hour on event days, and how much slower journeys are
//! around the event than at the same hours on a comparable day. Journey-time sensors (ANPR or
//! Bluetooth) give one row per vehicle per corridor traversal; the vehicle is the privacy unit.
//!
//! Each event is given as a parameter: its date, its start and end hours, and a baseline date
//! (typically the same weekday a week before or after, with no event). Its *window* runs from
//! two hours before the start to the end of its last hour.
//!
//! Three outputs from two releases:
//!
//! 1. `hourly_flows`: distinct vehicles per `(corridor, date, hour)` on event and baseline days;
//! 2. `journey_times`: median and p90 journey time per `(corridor, window)`, where `window` is
//!    `true` inside event windows and `false` in the same hours on baseline days (each vehicle
//!    contributes its mean journey time per cell);
//! 3. `event_delay`: post-processing of (2), the event's extra median and p90 seconds per
//!    corridor.

use oar_guest::table::{Suppression, Table};
use oar_guest::{col, Context, Error, Expr, Value};
use serde::Deserialize;

/// One event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Day of the event, `YYYY-MM-DD`.
    pub date: String,
    /// A comparable day without an event, `YYYY-MM-DD`.
    pub baseline_date: String,
    /// First hour of the event (0–23).
    pub start_hour: i64,
    /// Last hour of the event (0–23).
    pub end_hour: i64,
}

impl Event {
    /// Rows on `date` in this event's window (two hours before the start to the end hour).
    fn window_on(&self, date: &str) -> Expr {
        let hour = || col("entered_at").hour();
        col("entered_at")
            .date()
            .eq(date)
            .and(hour().ge(self.start_hour - 2))
            .and(hour().le(self.end_hour))
    }
}

/// Parameters a requester may set.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Dataset of journeys.
    pub dataset: String,
    /// Total privacy budget, split evenly between flows and journey times.
    pub epsilon: f64,
    /// The events (by default those of `oar synth journeys`).
    pub events: Vec<Event>,
    /// Journey times are clamped to `[0, max_journey_secs]` and read off 30-second bins.
    pub max_journey_secs: f64,
}

impl Default for Params {
    fn default() -> Self {
        let event = |date: &str, baseline: &str, start, end| Event {
            date: date.into(),
            baseline_date: baseline.into(),
            start_hour: start,
            end_hour: end,
        };
        Params {
            dataset: "journeys".into(),
            epsilon: 2.0,
            events: vec![
                event("2026-04-09", "2026-04-16", 19, 22),
                event("2026-04-18", "2026-04-11", 15, 18),
            ],
            max_journey_secs: 3600.0,
        }
    }
}

/// The flows table (declared in the manifest).
pub const FLOWS: &str = "hourly_flows";
/// The journey-times table (declared in the manifest).
pub const TIMES: &str = "journey_times";
/// The delays table (declared in the manifest).
pub const DELAY: &str = "event_delay";

/// Resolution of the journey-time quantiles, in seconds.
const BIN_SECS: f64 = 30.0;

/// Either of `exprs` (which is non-empty).
fn any_of(exprs: impl IntoIterator<Item = Expr>) -> Expr {
    exprs
        .into_iter()
        .reduce(Expr::or)
        .expect("at least one event")
}

/// Runs the analysis.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    check(&p)?;
    let half = p.epsilon / 2.0;
    let days: Vec<String> = p
        .events
        .iter()
        .flat_map(|e| [e.date.clone(), e.baseline_date.clone()])
        .collect();
    let on_days = any_of(days.iter().map(|d| col("entered_at").date().eq(d.as_str())));
    let flows = ctx
        .dataset(&p.dataset)?
        .filter(on_days)
        .derive("date", col("entered_at").date())
        .derive("hour", col("entered_at").hour())
        .group_by(["corridor", "date", "hour"])
        .count_units("vehicles")
        // Two commutes, an errand and two event trips per day over four days never exceed 12
        // cells; a tighter bound would cut vehicles' later cells and bias those counts down.
        .max_groups_per_unit(12)
        .release(half)?;

    let in_event = any_of(p.events.iter().map(|e| e.window_on(&e.date)));
    let in_baseline = any_of(p.events.iter().map(|e| e.window_on(&e.baseline_date)));
    let bins = (p.max_journey_secs / BIN_SECS).ceil() as u32;
    let range = [0.0, f64::from(bins) * BIN_SECS];
    let times = ctx
        .dataset(&p.dataset)?
        .filter(in_event.clone().or(in_baseline))
        .derive("window", in_event)
        .group_by(["corridor", "window"])
        .quantile_clamped("median_secs", "journey_secs", 0.5, range, bins)
        .quantile_clamped("p90_secs", "journey_secs", 0.9, range, bins)
        .max_groups_per_unit(4)
        .release(half)?;

    ctx.emit(FLOWS, &only_days(&flows, &days))?;
    ctx.emit(TIMES, &times)?;
    ctx.emit(DELAY, &delay_table(&times))
}

fn check(p: &Params) -> Result<(), Error> {
    if p.events.is_empty() {
        return Err(Error::module("give at least one event"));
    }
    for e in &p.events {
        if !(0..24).contains(&e.start_hour) || !(e.start_hour..24).contains(&e.end_hour) {
            return Err(Error::module(format!(
                "event on {}: hours must satisfy 0 <= start_hour <= end_hour <= 23",
                e.date
            )));
        }
        if e.date == e.baseline_date {
            return Err(Error::module(format!(
                "event on {}: the baseline must be another day",
                e.date
            )));
        }
    }
    if p.max_journey_secs.is_nan() || p.max_journey_secs < BIN_SECS {
        return Err(Error::module("max_journey_secs must be at least 30"));
    }
    Ok(())
}

/// The rows of `flows` on `days` only (the query's date key covers the dataset's whole period;
/// dropping the other days' rows is post-processing of the released table).
pub fn only_days(flows: &Table, days: &[String]) -> Table {
    let mut out = flows.clone();
    out.rows
        .retain(|r| days.iter().any(|d| r.keys[1].key_text() == *d));
    out
}

/// Per corridor: the event window's median and p90 minus the baseline's (seconds).
pub fn delay_table(times: &Table) -> Table {
    let mut out = Table::new(["corridor"], ["extra_median_secs", "extra_p90_secs"]);
    let mut corridors: Vec<Value> = Vec::new();
    for row in &times.rows {
        if !corridors.contains(&row.keys[0]) {
            corridors.push(row.keys[0].clone());
        }
    }
    for c in corridors {
        let get = |window: bool, name: &str| times.get(&[c.clone(), Value::Bool(window)], name);
        let values = ["median_secs", "p90_secs"].map(|n| Some(get(true, n)? - get(false, n)?));
        match values {
            [Some(m), Some(p)] => out.push(vec![c], vec![m, p]),
            _ => out.push_suppressed(vec![c], Suppression::Derived),
        }
    }
    out
}

oar_guest::export_module!(run);
