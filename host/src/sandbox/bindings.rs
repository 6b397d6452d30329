//! The host side of `guest-sdk/wit/oar.wit`, generated from the WIT file itself
//! (`wasmtime::component::bindgen!`): the `oar:runtime/host` functions a module imports and the
//! `run` it exports. A change to the WIT that the host does not follow fails to compile here.

use super::RunState;

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit/oar.wit",
    world: "module",
    // `query` ends the run with a trap once the deadline has passed; nothing else traps.
    imports: { "oar:runtime/host.query": trappable },
});

pub use self::oar::runtime::host::Host;
/// The world's bindings: `Module::new` finds the `run` export, `call_run` calls it.
pub use self::Module as ModuleWorld;

/// Every function forwards to the store's [`Session`](crate::session::Session).
impl Host for RunState {
    fn datasets(&mut self) -> Vec<String> {
        self.session.datasets()
    }

    fn dataset_schema(&mut self, name: String) -> Result<String, String> {
        self.session.dataset_schema(&name)
    }

    fn query(&mut self, plan: String) -> wasmtime::Result<Result<String, String>> {
        let answer = self.session.query(&plan);
        // Past the deadline the module gets no answer at all: the run ends here.
        if self.session.deadline_hit() {
            wasmtime::bail!("the run's deadline passed during a query");
        }
        Ok(answer)
    }

    fn check_plan(&mut self, plan: String) -> Result<(), String> {
        self.session.check_plan(&plan)
    }

    fn budget_remaining(&mut self, dataset: String) -> f64 {
        self.session.budget_remaining(&dataset)
    }

    fn emit(&mut self, name: String, table: String) -> Result<(), String> {
        self.session.emit(&name, &table)
    }

    fn log(&mut self, message: String) {
        self.session.log(&message);
    }
}

/// Links `oar:runtime/host` into `linker` from the generated bindings.
pub fn link(linker: &mut wasmtime::component::Linker<RunState>) -> wasmtime::Result<()> {
    oar::runtime::host::add_to_linker::<RunState, wasmtime::component::HasSelf<RunState>>(
        linker,
        |state| state,
    )
}

#[cfg(test)]
mod tests {
    /// The import check names the interface the bindings are generated from: the WIT's package
    /// and version, and its `host` interface.
    #[test]
    fn the_import_check_names_the_wit_interface() {
        let wit = include_str!("../../../guest-sdk/wit/oar.wit");
        let package = wit
            .lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .and_then(|p| p.strip_suffix(';'))
            .expect("the WIT names its package");
        let (name, version) = package.split_once('@').expect("a versioned package");
        assert!(wit.contains("interface host {"));
        assert_eq!(
            super::super::HOST_INTERFACE,
            format!("{name}/host@{version}")
        );
    }
}
