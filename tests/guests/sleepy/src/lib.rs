//! Hostile test module: waits on the clock instead of computing.
//!
//! `{"mode": "sleep"}` sleeps for `Duration::MAX` through WASI's monotonic clock (a
//! `subscribe-duration` pollable, then `poll`). Linked naively, that sleep happens inside a host
//! call, where epoch deadlines cannot interrupt it, and pins a worker forever. The host's clock
//! makes every subscription ready at once, so the module spins through its sleeps and the
//! deadline stops it like any loop.
//!
//! `{"mode": "time"}` tries to time the host: it reads the monotonic clock around a query and
//! emits what it saw as a table (the host's virtual clock shows nothing of the query's cost).
//!
//! `{"mode": "forge"}` emits a query's answer with a forged `release` block (a tiny ε, no
//! threshold); `{"mode": "malformed"}` emits a table whose row has fewer keys than key columns.
use oar_guest::{Context, Error, Table};
use std::time::{Duration, Instant};

/// Parameters.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct Params {
    /// `sleep`, `time`, `forge` or `malformed`.
    pub mode: String,
}

/// Sleeps forever, or times a query.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    if p.mode == "forge" || p.mode == "malformed" {
        let mut table = ctx
            .dataset("cdr")?
            .group_by(["region"])
            .count_units("subscribers")
            .release(0.5)?;
        if p.mode == "forge" {
            if let Some(info) = table.release.as_mut() {
                info.epsilon = 1e-6;
                info.threshold = 0.0;
                info.suppressed_minimum_units = 0;
            }
        } else {
            table.rows[0].keys.clear();
        }
        return ctx.emit("population_by_region_day", &table);
    }
    if p.mode == "time" {
        let start = Instant::now();
        let _ = ctx
            .dataset("cdr")?
            .group_by(["region"])
            .count_units("subscribers")
            .release(0.5)?;
        let took = start.elapsed();
        let mut t = Table::new(["clock"], ["nanoseconds"]);
        t.push(vec!["query".into()], vec![took.as_nanos() as f64]);
        ctx.emit("population_by_region_day", &t)?;
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::MAX);
        std::thread::sleep(Duration::from_secs(3600));
    }
}
oar_guest::export_module!(run);
