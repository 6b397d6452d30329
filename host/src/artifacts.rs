//! Guest components built by `build.rs` from this repository's example and test modules.

use std::path::PathBuf;

/// The present-population example module, embedded so `oar demo` needs no files.
pub const POPULATION_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OAR_GUEST_DIR"), "/population.wasm"));

/// The present-population module's manifest.
pub const POPULATION_MANIFEST: &str =
    include_str!("../../example-algorithms/population/manifest.toml");

/// Path of a component built from this repository (`population`, `oar_test_guest_spin`, ...).
pub fn component_path(name: &str) -> PathBuf {
    PathBuf::from(env!("OAR_GUEST_DIR")).join(format!("{name}.wasm"))
}
