//! Hostile test module: loops forever without calling the host. The deadline must stop it.
use oar_guest::{Context, Error};

/// Spins until the host's epoch deadline traps it.
pub fn run(ctx: &mut Context, _p: serde_json::Value) -> Result<(), Error> {
    let mut x: u64 = ctx.datasets().len() as u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x == 42 {
            return Err(Error::module("unreachable in practice"));
        }
    }
}
oar_guest::export_module!(run);
