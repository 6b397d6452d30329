//! The host a module talks to, and the context that wraps it.
//!
//! In a component the host is the WIT import `oar:runtime/host` (see `wit/oar.wit`); natively it is
//! any [`Host`] implementation, such as `oar-host`'s in-process harness, so a module can be unit
//! tested with `cargo test`. Both speak the same JSON, so a module cannot tell them apart.

use crate::{DatasetSchema, Error, Query, Table};
use serde::de::DeserializeOwned;

/// The calls a module can make, mirroring the WIT `host` interface one to one.
///
/// Modules do not call it directly: [`Context`] wraps it. Implement it to drive a module from
/// something other than the real host; [`testing::FakeHost`](crate::testing::FakeHost) is a
/// ready-made scripted one. A minimal host with one fixed answer:
///
/// ```
/// use oar_guest::testing::cdr_schema;
/// use oar_guest::{Context, Host};
///
/// /// Knows one dataset and answers every query with the same table.
/// struct Fixed;
/// impl Host for Fixed {
///     fn datasets(&mut self) -> Vec<String> {
///         vec!["cdr".into()]
///     }
///     fn dataset_schema(&mut self, name: &str) -> Result<String, String> {
///         match name {
///             "cdr" => Ok(serde_json::to_string(&cdr_schema()).unwrap()),
///             _ => Err(format!("no dataset '{name}'")),
///         }
///     }
///     fn query(&mut self, _plan: &str) -> Result<String, String> {
///         Ok(r#"{"key_columns":["region"],"value_columns":["n"],
///                "rows":[{"keys":["North"],"values":[42.0]}]}"#.into())
///     }
///     fn check_plan(&mut self, _plan: &str) -> Result<(), String> {
///         Ok(())
///     }
///     fn budget_remaining(&mut self, _dataset: &str) -> f64 {
///         1.0
///     }
///     fn emit(&mut self, _name: &str, _table: &str) -> Result<(), String> {
///         Ok(())
///     }
///     fn log(&mut self, _message: &str) {}
/// }
///
/// let mut host = Fixed;
/// let mut ctx = Context::new(&mut host);
/// let t = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").release(1.0)?;
/// assert_eq!(t.get(&["North".into()], "n"), Some(42.0));
/// assert!(ctx.dataset("premises").is_err());
/// # Ok::<(), oar_guest::Error>(())
/// ```
pub trait Host {
    /// Datasets in scope for this run.
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, FakeHost}, Host};
    /// assert_eq!(FakeHost::new().with_dataset(cdr_schema()).datasets(), ["cdr"]);
    /// ```
    fn datasets(&mut self) -> Vec<String>;
    /// Public schema JSON of a dataset.
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, FakeHost}, DatasetSchema, Host};
    /// let json = FakeHost::new().with_dataset(cdr_schema()).dataset_schema("cdr").unwrap();
    /// let schema: DatasetSchema = serde_json::from_str(&json).unwrap();
    /// assert_eq!(schema, cdr_schema());
    /// ```
    fn dataset_schema(&mut self, name: &str) -> Result<String, String>;
    /// Runs a plan (JSON); answers with a gated table (JSON) or a refusal.
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, FakeHost}, Host};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).refuse("policy says no");
    /// let plan = r#"{"dataset":"cdr","aggregates":[{"agg":"count_units","name":"n"}],"epsilon":1.0}"#;
    /// assert_eq!(host.query(plan), Err("policy says no".to_string()));
    /// ```
    fn query(&mut self, plan: &str) -> Result<String, String>;
    /// Checks a plan (JSON) as `query` would before touching data, and answers with the refusal
    /// `query` would give, or `Ok`; charges nothing and is not a query.
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, FakeHost}, Host};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).with_budget("cdr", 1.0);
    /// let plan = r#"{"dataset":"cdr","aggregates":[{"agg":"count_units","name":"n"}],"epsilon":0.5}"#;
    /// assert_eq!(host.check_plan(plan), Ok(()));
    /// let typo = r#"{"dataset":"cdr","groupby":["region"],"aggregates":[],"epsilon":0.5}"#;
    /// assert!(host.check_plan(typo).unwrap_err().contains("groupby"));
    /// assert_eq!(host.budget_remaining("cdr"), 1.0);
    /// ```
    fn check_plan(&mut self, plan: &str) -> Result<(), String>;
    /// Epsilon still available to this run on `dataset`.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Host};
    /// assert_eq!(FakeHost::new().with_budget("cdr", 2.0).budget_remaining("cdr"), 2.0);
    /// ```
    fn budget_remaining(&mut self, dataset: &str) -> f64;
    /// Publishes a table (JSON) under `name`.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Host};
    /// let mut host = FakeHost::new();
    /// host.emit("t", r#"{"key_columns":["k"],"value_columns":["v"],"rows":[]}"#).unwrap();
    /// assert_eq!(host.emitted("t").map(|t| t.key_columns.clone()), Some(vec!["k".to_string()]));
    /// ```
    fn emit(&mut self, name: &str, table: &str) -> Result<(), String>;
    /// Writes a line to the run log.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Host};
    /// let mut host = FakeHost::new();
    /// host.log("hello");
    /// assert_eq!(host.log_lines(), ["hello"]);
    /// ```
    fn log(&mut self, message: &str);
}

/// What a module's `run` function receives: its handle on the host.
///
/// ```
/// use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
/// let mut host = FakeHost::new().with_dataset(cdr_schema());
/// let mut ctx = Context::new(&mut host);
/// assert_eq!(ctx.datasets(), ["cdr"]);
/// ```
pub struct Context<'h> {
    host: &'h mut dyn Host,
}

impl<'h> Context<'h> {
    /// Wraps a host.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context};
    /// let mut host = FakeHost::new();
    /// let mut ctx = Context::new(&mut host);
    /// ctx.log("ready");
    /// assert_eq!(host.log_lines(), ["ready"]);
    /// ```
    pub fn new(host: &'h mut dyn Host) -> Self {
        Context { host }
    }

    /// Datasets this run may read.
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, meters_schema, FakeHost}, Context};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).with_dataset(meters_schema());
    /// assert_eq!(Context::new(&mut host).datasets(), ["cdr", "meters"]);
    /// ```
    pub fn datasets(&mut self) -> Vec<String> {
        self.host.datasets()
    }

    /// The public schema of `name` (free: it is declared, not learnt from the data).
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, FakeHost}, Context, Error};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// let mut ctx = Context::new(&mut host);
    /// let schema = ctx.schema("cdr")?;
    /// assert!(schema.column("region").and_then(|c| c.domain.as_ref()).is_some());
    /// assert!(matches!(ctx.schema("nope"), Err(Error::Dataset { .. })));
    /// # Ok::<(), Error>(())
    /// ```
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
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{col, Context, Table};
    ///
    /// let mut answer = Table::new(["region", "day"], ["population"]);
    /// answer.push(vec!["North".into(), "2024-03-01".into()], vec![1830.0]);
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(answer);
    /// let mut ctx = Context::new(&mut host);
    ///
    /// let table = ctx
    ///     .dataset("cdr")?
    ///     .derive("day", col("timestamp").date())
    ///     .group_by(["region", "day"])
    ///     .count_units("population")
    ///     .release(1.0)?;
    /// ctx.emit("population", &table)?;
    /// assert_eq!(host.emitted("population"), Some(&table));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn dataset(&mut self, name: &str) -> Result<Query<'_, 'h>, Error> {
        let schema = self.schema(name)?;
        Ok(Query::new(self, schema))
    }

    /// Asks the host whether it would answer `plan_json` (see [`Query::check_with_host`] for the
    /// typed way): the host's own checks, nothing charged.
    pub(crate) fn check_json(&mut self, plan_json: &str) -> Result<(), Error> {
        self.host.check_plan(plan_json).map_err(Error::Refused)
    }

    /// Epsilon this run may still spend on `dataset`.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context};
    /// let mut host = FakeHost::new().with_budget("cdr", 0.8);
    /// assert_eq!(Context::new(&mut host).budget_remaining("cdr"), 0.8);
    /// ```
    pub fn budget_remaining(&mut self, dataset: &str) -> f64 {
        self.host.budget_remaining(dataset)
    }

    /// Publishes `table` under `name` (a name the manifest declares).
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context, Error, Table};
    /// let mut host = FakeHost::new().with_outputs(["summary"]);
    /// let mut ctx = Context::new(&mut host);
    /// let mut t = Table::new(["ward"], ["gap_rate"]);
    /// t.push(vec!["Ward 1".into()], vec![0.12]);
    /// ctx.emit("summary", &t)?;
    /// assert!(matches!(ctx.emit("undeclared", &t), Err(Error::Emit { .. })));
    /// assert_eq!(host.emitted("summary"), Some(&t));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn emit(&mut self, name: &str, table: &Table) -> Result<(), Error> {
        let json = serde_json::to_string(table).map_err(|e| Error::Protocol(e.to_string()))?;
        self.host.emit(name, &json).map_err(|reason| Error::Emit {
            name: name.to_string(),
            reason,
        })
    }

    /// Writes a line to the run log (never a data value: there are none to write).
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context};
    /// let mut host = FakeHost::new();
    /// Context::new(&mut host).log("two releases, epsilon 0.5 each");
    /// assert_eq!(host.log_lines().len(), 1);
    /// ```
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
///
/// ```
/// use oar_guest::{Context, Error, RunFn};
/// fn run(ctx: &mut Context, greeting: String) -> Result<(), Error> {
///     ctx.log(&greeting);
///     Ok(())
/// }
/// let entry: RunFn<String> = run;
/// let mut host = oar_guest::testing::FakeHost::new();
/// oar_guest::run_with_host(&mut host, r#""hi""#, entry)?;
/// assert_eq!(host.log_lines(), ["hi"]);
/// # Ok::<(), Error>(())
/// ```
pub type RunFn<P> = fn(&mut Context<'_>, P) -> Result<(), Error>;

/// Runs a module function against `host` with JSON `params` (empty means `{}`).
///
/// This is what a component's exported `run` does; the in-process harness calls it directly.
///
/// ```
/// use oar_guest::testing::{cdr_schema, FakeHost};
/// use oar_guest::{run_with_host, Context, Error, Table};
///
/// #[derive(serde::Deserialize)]
/// struct Params { epsilon: f64 }
///
/// fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
///     let t = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").release(p.epsilon)?;
///     ctx.emit("by_region", &t)
/// }
///
/// let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(Table::new(["region"], ["n"]));
/// run_with_host(&mut host, r#"{"epsilon": 0.3}"#, run)?;
/// assert_eq!(host.plans()[0].epsilon, 0.3);
/// assert!(host.emitted("by_region").is_some());
///
/// let bad = run_with_host(&mut FakeHost::new(), r#"{"epsilon": "high"}"#, run);
/// assert!(matches!(bad, Err(Error::Params(_))));
/// # Ok::<(), Error>(())
/// ```
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
