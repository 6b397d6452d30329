//! Hostile test module: allocates past any sane memory cap. The store limit must trap it.
//!
//! With `{"query_first": true}` it first obtains and emits one gated table, so tests can check
//! that a run which traps afterwards publishes nothing (and that its charge stays: fail closed).
use oar_guest::{Context, Error};

/// Parameters.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct Params {
    /// Release and emit one table before hoarding memory.
    pub query_first: bool,
}

/// Grows memory by 16 MiB at a time until the host traps it.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    if p.query_first {
        let table = ctx
            .dataset("cdr")?
            .group_by(["region"])
            .count_units("subscribers")
            .release(0.5)?;
        ctx.emit("population_by_region_day", &table)?;
    }
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 16 << 20];
        block[0] = hoard.len() as u8;
        hoard.push(std::hint::black_box(block));
    }
}
oar_guest::export_module!(run);
