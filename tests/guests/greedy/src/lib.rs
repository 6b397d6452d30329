//! Test module: asks for releases until the host refuses, then reports what it learnt.
//! Used to check that budget exhaustion refuses the query and releases nothing more.
use oar_guest::{Context, Error};

/// Parameters: how much epsilon each query asks for.
#[derive(serde::Deserialize)]
pub struct Params {
    /// Epsilon per query.
    pub epsilon: f64,
}

/// Queries repeatedly, emitting the first table; propagates the refusal that ends it.
pub fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
    for i in 0.. {
        let table = ctx
            .dataset("cdr")?
            .group_by(["region"])
            .count_units("subscribers")
            .release(p.epsilon)?;
        if i == 0 {
            ctx.emit("population_by_region_day", &table)?;
        }
    }
    Ok(())
}
oar_guest::export_module!(run);
