//! The component side of the WIT world: a [`Host`] over the `oar:runtime/host` imports.

use crate::bindings::oar::runtime::host as wit;
use crate::{run_with_host, Host, RunFn};
use serde::de::DeserializeOwned;

/// The host as a component sees it: every call is a WIT import.
struct WitHost;

impl Host for WitHost {
    fn datasets(&mut self) -> Vec<String> {
        wit::datasets()
    }
    fn dataset_schema(&mut self, name: &str) -> Result<String, String> {
        wit::dataset_schema(name)
    }
    fn query(&mut self, plan: &str) -> Result<String, String> {
        wit::query(plan)
    }
    fn check_plan(&mut self, plan: &str) -> Result<(), String> {
        wit::check_plan(plan)
    }
    fn budget_remaining(&mut self, dataset: &str) -> f64 {
        wit::budget_remaining(dataset)
    }
    fn emit(&mut self, name: &str, table: &str) -> Result<(), String> {
        wit::emit(name, table)
    }
    fn log(&mut self, message: &str) {
        wit::log(message)
    }
}

/// Body of the exported `run`: parses parameters, runs the module, flattens the error to text.
pub fn run_entry<P: DeserializeOwned>(params: &str, run: RunFn<P>) -> Result<(), String> {
    run_with_host(&mut WitHost, params, run).map_err(|e| e.to_string())
}
