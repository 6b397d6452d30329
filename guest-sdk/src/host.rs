//! The host a module talks to, and the context that wraps it.
//!
//! In a component the host is the WIT import `oar:runtime/host` (see `wit/oar.wit`); natively it is
//! any [`Host`] implementation, such as `oar-host`'s in-process harness, so a module can be unit
//! tested with `cargo test`. Both speak the same JSON, so a module cannot tell them apart.

use crate::{DatasetSchema, Error, Query, Table};
use serde::de::DeserializeOwned;

/// The calls a module can make, mirroring the WIT `host` interface one to one.
pub trait Host {
    /// Datasets in scope for this run.
    fn datasets(&mut self) -> Vec<String>;
    /// Public schema JSON of a dataset.
    fn dataset_schema(&mut self, name: &str) -> Result<String, String>;
    /// Runs a plan (JSON); answers with a gated table (JSON) or a refusal.
    fn query(&mut self, plan: &str) -> Result<String, String>;
    /// Epsilon still available to this run on `dataset`.
    fn budget_remaining(&mut self, dataset: &str) -> f64;
    /// Publishes a table (JSON) under `name`.
    fn emit(&mut self, name: &str, table: &str) -> Result<(), String>;
    /// Writes a line to the run log.
    fn log(&mut self, message: &str);
}

/// What a module's `run` function receives: its handle on the host.
pub struct Context<'h> {
    host: &'h mut dyn Host,
}

impl<'h> Context<'h> {
    /// Wraps a host.
    pub fn new(host: &'h mut dyn Host) -> Self {
        Context { host }
    }

    /// Datasets this run may read.
    pub fn datasets(&mut self) -> Vec<String> {
        self.host.datasets()
    }

    /// The public schema of `name`.
    pub fn schema(&mut self, name: &str) -> Result<DatasetSchema, Error> {
        let json = self
            .host
            .dataset_schema(name)
            .map_err(|reason| Error::Dataset {
                name: name.to_string(),
                reason,
            })?;
        serde_json::from_str(&json).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Starts a query on dataset `name`.
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut oar_guest::Context) -> Result<(), oar_guest::Error> {
    /// use oar_guest::col;
    /// let table = ctx
    ///     .dataset("cdr")?
    ///     .derive("day", col("timestamp").date())
    ///     .group_by(["region", "day"])
    ///     .count_units("population")
    ///     .release(1.0)?;
    /// ctx.emit("population", &table)?;
    /// # Ok(()) }
    /// ```
    pub fn dataset(&mut self, name: &str) -> Result<Query<'_, 'h>, Error> {
        let schema = self.schema(name)?;
        Ok(Query::new(self, schema))
    }

    /// Epsilon this run may still spend on `dataset`.
    pub fn budget_remaining(&mut self, dataset: &str) -> f64 {
        self.host.budget_remaining(dataset)
    }

    /// Publishes `table` under `name` (a name the manifest declares).
    pub fn emit(&mut self, name: &str, table: &Table) -> Result<(), Error> {
        let json = serde_json::to_string(table).map_err(|e| Error::Protocol(e.to_string()))?;
        self.host.emit(name, &json).map_err(|reason| Error::Emit {
            name: name.to_string(),
            reason,
        })
    }

    /// Writes a line to the run log (never a data value: there are none to write).
    pub fn log(&mut self, message: &str) {
        self.host.log(message)
    }

    /// Sends a plan JSON to the host; used by [`Query::release`].
    pub(crate) fn query_json(&mut self, plan: &str) -> Result<Table, Error> {
        let json = self.host.query(plan).map_err(Error::Refused)?;
        serde_json::from_str(&json).map_err(|e| Error::Protocol(e.to_string()))
    }
}

/// The signature of a module's entry point: a context and typed parameters.
pub type RunFn<P> = fn(&mut Context<'_>, P) -> Result<(), Error>;

/// Runs a module function against `host` with JSON `params` (empty means `{}`).
///
/// This is what a component's exported `run` does; the in-process harness calls it directly.
pub fn run_with_host<P: DeserializeOwned>(
    host: &mut dyn Host,
    params: &str,
    run: RunFn<P>,
) -> Result<(), Error> {
    let text = if params.trim().is_empty() {
        "{}"
    } else {
        params
    };
    let params: P = serde_json::from_str(text).map_err(|e| Error::Params(e.to_string()))?;
    let mut ctx = Context::new(host);
    run(&mut ctx, params)
}
