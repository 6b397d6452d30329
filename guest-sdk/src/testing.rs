//! A scripted [`Host`] for unit tests of a module's logic, without data or a real host.
//!
//! [`FakeHost`] knows the schemas it is given, answers each query with the next table queued
//! with [`FakeHost::answer`] (or refuses it, [`FakeHost::refuse`]), charges a budget, and records
//! every plan it receives and every table the module emits. A test can so check what a module
//! asks for and what it makes of given answers, the post-processing, down to the last cell:
//!
//! ```
//! use oar_guest::testing::{cdr_schema, FakeHost};
//! use oar_guest::{run_with_host, time, Context, Error, Table};
//!
//! // The module under test: busiest hour per region.
//! fn run(ctx: &mut Context, _: serde_json::Value) -> Result<(), Error> {
//!     let t = ctx
//!         .dataset("cdr")?
//!         .derive("hour", time("timestamp").hour())
//!         .group_by(["region", "hour"])
//!         .count_units("callers")
//!         .release(0.5)?;
//!     let mut out = Table::new(["region"], ["busiest_hour"]);
//!     for region in ["North", "South"] {
//!         let busiest = (0..24)
//!             .max_by(|a, b| {
//!                 let n = |h: i64| t.get(&[region.into(), h.into()], "callers").unwrap_or(0.0);
//!                 n(*a).total_cmp(&n(*b))
//!             })
//!             .unwrap();
//!         out.push(vec![region.into()], vec![busiest as f64]);
//!     }
//!     ctx.emit("busiest_hour", &out)
//! }
//!
//! let mut answer = Table::new(["region", "hour"], ["callers"]);
//! answer.push(vec!["North".into(), 9.into()], vec![120.0]);
//! answer.push(vec!["North".into(), 18.into()], vec![310.0]);
//! answer.push(vec!["South".into(), 7.into()], vec![95.0]);
//! let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(answer);
//!
//! run_with_host(&mut host, "", run)?;
//!
//! assert_eq!(host.plans()[0].epsilon, 0.5);
//! let out = host.emitted("busiest_hour").unwrap();
//! assert_eq!(out.get(&["North".into()], "busiest_hour"), Some(18.0));
//! assert_eq!(out.get(&["South".into()], "busiest_hour"), Some(7.0));
//! # Ok::<(), Error>(())
//! ```

use crate::plan::Plan;
use crate::{ColumnSchema, ColumnType, DatasetSchema, Host, Table};
use std::collections::VecDeque;

/// A [`Host`] that answers queries from a script: see the [module docs](self).
///
/// ```
/// use oar_guest::testing::{meters_schema, FakeHost};
/// use oar_guest::{num, Context, Error, Table};
///
/// let mut host = FakeHost::new()
///     .with_dataset(meters_schema())
///     .with_budget("meters", 1.0)
///     .answer(Table::new(["region"], ["total_kwh"]))
///     .refuse("too many cells");
/// let mut ctx = Context::new(&mut host);
/// let q = |ctx: &mut Context<'_>| -> Result<Table, Error> {
///     ctx.dataset("meters")?.group_by(["region"]).sum("total_kwh", num("kwh")).release(0.25)
/// };
/// assert!(q(&mut ctx).is_ok());
/// assert!(matches!(q(&mut ctx), Err(Error::Refused(_))));
/// assert_eq!(ctx.budget_remaining("meters"), 0.75, "a refused query is not charged");
/// assert_eq!(host.plans().len(), 2);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    schemas: Vec<DatasetSchema>,
    answers: VecDeque<Result<Table, String>>,
    budgets: Vec<(String, f64)>,
    outputs: Option<Vec<String>>,
    plans: Vec<Plan>,
    emitted: Vec<(String, Table)>,
    log: Vec<String>,
}

impl FakeHost {
    /// A host with no datasets, no answers queued, an unlimited budget and no limit on the
    /// names of emitted tables.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Host};
    /// let mut host = FakeHost::new();
    /// assert!(host.datasets().is_empty());
    /// ```
    pub fn new() -> Self {
        FakeHost::default()
    }

    /// Makes `schema` available (replacing a dataset of the same name).
    ///
    /// ```
    /// use oar_guest::{testing::{cdr_schema, FakeHost}, Host};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// assert_eq!(host.datasets(), ["cdr"]);
    /// ```
    pub fn with_dataset(mut self, schema: DatasetSchema) -> Self {
        self.schemas.retain(|s| s.name != schema.name);
        self.schemas.push(schema);
        self
    }

    /// Queues `table` as the answer to the next query not yet answered. The table must have the
    /// plan's group keys as key columns and its aggregate names as value columns, as the real
    /// host's answer would.
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{Context, Table};
    /// let mut answer = Table::new(["region"], ["n"]);
    /// answer.push(vec!["North".into()], vec![42.0]);
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(answer);
    /// let mut ctx = Context::new(&mut host);
    /// let t = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").release(1.0)?;
    /// assert_eq!(t.get(&["North".into()], "n"), Some(42.0));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn answer(mut self, table: Table) -> Self {
        self.answers.push_back(Ok(table));
        self
    }

    /// Queues a refusal with `reason` as the answer to the next query not yet answered.
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{Context, Error};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).refuse("over the cell limit");
    /// let mut ctx = Context::new(&mut host);
    /// let r = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").release(1.0);
    /// assert!(matches!(r, Err(Error::Refused(ref why)) if why == "over the cell limit"));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn refuse(mut self, reason: impl Into<String>) -> Self {
        self.answers.push_back(Err(reason.into()));
        self
    }

    /// Gives this run `epsilon` to spend on `dataset`; each answered query charges its plan's
    /// epsilon, and a query asking for more than is left is refused.
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{Context, Error, Table};
    /// let mut host = FakeHost::new()
    ///     .with_dataset(cdr_schema())
    ///     .with_budget("cdr", 1.0)
    ///     .answer(Table::new(["region"], ["n"]));
    /// let mut ctx = Context::new(&mut host);
    /// ctx.dataset("cdr")?.group_by(["region"]).count_units("n").release(0.75)?;
    /// assert_eq!(ctx.budget_remaining("cdr"), 0.25);
    /// let r = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").release(0.5);
    /// assert!(matches!(r, Err(Error::Refused(_))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_budget(mut self, dataset: &str, epsilon: f64) -> Self {
        self.budgets.retain(|(d, _)| d != dataset);
        self.budgets.push((dataset.to_string(), epsilon));
        self
    }

    /// Accepts only tables named in `names` in [`Host::emit`], as a module's manifest declares
    /// its outputs.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Host};
    /// let mut host = FakeHost::new().with_outputs(["population"]);
    /// assert!(host.emit("population", r#"{"key_columns":[],"value_columns":[],"rows":[]}"#).is_ok());
    /// assert!(host.emit("other", r#"{"key_columns":[],"value_columns":[],"rows":[]}"#).is_err());
    /// ```
    pub fn with_outputs<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.outputs = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Every plan received, in order (answered or not).
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{Context, Table};
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(Table::new(["region"], ["n"]));
    /// Context::new(&mut host).dataset("cdr")?.group_by(["region"]).count_units("n").release(1.0)?;
    /// assert_eq!(host.plans()[0].group_by, ["region"]);
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The table emitted under `name`, if any.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context, Table};
    /// let mut host = FakeHost::new();
    /// Context::new(&mut host).emit("summary", &Table::new(["k"], ["v"]))?;
    /// assert_eq!(host.emitted("summary").map(|t| t.value_columns.len()), Some(1));
    /// assert!(host.emitted("other").is_none());
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn emitted(&self, name: &str) -> Option<&Table> {
        self.emitted.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The names of the emitted tables, in order.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context, Table};
    /// let mut host = FakeHost::new();
    /// let mut ctx = Context::new(&mut host);
    /// ctx.emit("a", &Table::default())?;
    /// ctx.emit("b", &Table::default())?;
    /// assert_eq!(host.emitted_names(), ["a", "b"]);
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn emitted_names(&self) -> Vec<&str> {
        self.emitted.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The lines the module wrote to the run log.
    ///
    /// ```
    /// use oar_guest::{testing::FakeHost, Context};
    /// let mut host = FakeHost::new();
    /// Context::new(&mut host).log("starting");
    /// assert_eq!(host.log_lines(), ["starting"]);
    /// ```
    pub fn log_lines(&self) -> &[String] {
        &self.log
    }

    fn schema(&self, name: &str) -> Option<&DatasetSchema> {
        self.schemas.iter().find(|s| s.name == name)
    }

    /// Refuses a plan asking for more epsilon than is left on its dataset.
    fn afford(&mut self, plan: &Plan) -> Result<(), String> {
        let left = self.budget_remaining(&plan.dataset);
        if plan.epsilon > left {
            return Err(format!(
                "budget exhausted: the plan asks for epsilon {} and {left} is left on '{}'",
                plan.epsilon, plan.dataset
            ));
        }
        Ok(())
    }

    fn budget_mut(&mut self, dataset: &str) -> Option<&mut f64> {
        self.budgets
            .iter_mut()
            .find(|(d, _)| d == dataset)
            .map(|(_, b)| b)
    }
}

impl Host for FakeHost {
    fn datasets(&mut self) -> Vec<String> {
        self.schemas.iter().map(|s| s.name.clone()).collect()
    }

    fn dataset_schema(&mut self, name: &str) -> Result<String, String> {
        let schema = self.schema(name).ok_or_else(|| {
            let known: Vec<&str> = self.schemas.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no dataset '{name}' on this fake host (it has: {}); add it with FakeHost::with_dataset",
                known.join(", ")
            )
        })?;
        serde_json::to_string(schema).map_err(|e| e.to_string())
    }

    fn query(&mut self, plan: &str) -> Result<String, String> {
        let plan: Plan = serde_json::from_str(plan).map_err(|e| format!("malformed plan: {e}"))?;
        self.plans.push(plan.clone());
        if self.schema(&plan.dataset).is_none() {
            return Err(format!("no dataset '{}' on this fake host", plan.dataset));
        }
        self.afford(&plan)?;
        let table = self.answers.pop_front().ok_or_else(|| {
            "no answer queued for this plan: queue one with FakeHost::answer or FakeHost::refuse"
                .to_string()
        })??;
        let names: Vec<&str> = plan.aggregates.iter().map(|a| a.name()).collect();
        if table.key_columns != plan.group_by || table.value_columns != names {
            return Err(format!(
                "the queued answer does not fit the plan: it has keys [{}] and values [{}], the plan groups by [{}] and computes [{}]",
                table.key_columns.join(", "),
                table.value_columns.join(", "),
                plan.group_by.join(", "),
                names.join(", ")
            ));
        }
        if let Some(b) = self.budget_mut(&plan.dataset) {
            *b -= plan.epsilon;
        }
        serde_json::to_string(&table).map_err(|e| e.to_string())
    }

    fn check_plan(&mut self, plan: &str) -> Result<(), String> {
        let plan: Plan = serde_json::from_str(plan).map_err(|e| format!("malformed plan: {e}"))?;
        let schema = self
            .schema(&plan.dataset)
            .ok_or_else(|| format!("no dataset '{}' on this fake host", plan.dataset))?;
        crate::validate::check_plan(schema, &plan).map_err(|e| e.to_string())?;
        if !(plan.epsilon.is_finite() && plan.epsilon > 0.0) {
            return Err(format!("epsilon must be positive, got {}", plan.epsilon));
        }
        self.afford(&plan)?;
        Ok(())
    }

    fn budget_remaining(&mut self, dataset: &str) -> f64 {
        self.budget_mut(dataset).map_or(f64::INFINITY, |b| *b)
    }

    fn emit(&mut self, name: &str, table: &str) -> Result<(), String> {
        if let Some(outputs) = &self.outputs {
            if !outputs.iter().any(|o| o == name) {
                return Err(format!(
                    "table '{name}' is not declared (declared: {})",
                    outputs.join(", ")
                ));
            }
        }
        if self.emitted(name).is_some() {
            return Err(format!("table '{name}' was already emitted in this run"));
        }
        let table: Table =
            serde_json::from_str(table).map_err(|e| format!("malformed table: {e}"))?;
        self.emitted.push((name.to_string(), table));
        Ok(())
    }

    fn log(&mut self, message: &str) {
        self.log.push(message.to_string());
    }
}

/// A small call-detail-records schema, shaped like the demo dataset `cdr`: privacy unit
/// `subscriber_id`; `timestamp` (datetime, 2024-03-01 to 2024-03-07), `region` (str, domain
/// North, South, East, West), `cell_id` (str, no domain); each subscriber in at most 14 cells,
/// 10 rows per cell.
///
/// ```
/// use oar_guest::{testing::cdr_schema, ColumnType};
/// let s = cdr_schema();
/// assert_eq!(s.privacy_unit, "subscriber_id");
/// assert_eq!(s.column("timestamp").map(|c| c.dtype), Some(ColumnType::Datetime));
/// ```
pub fn cdr_schema() -> DatasetSchema {
    DatasetSchema::new("cdr", "subscriber_id")
        .with_column(
            ColumnSchema::new("timestamp", ColumnType::Datetime)
                .with_period("2024-03-01", "2024-03-07")
                .with_description("Time of the call (UTC)."),
        )
        .with_column(
            ColumnSchema::new("region", ColumnType::Str)
                .with_domain(["North", "South", "East", "West"])
                .with_description("Region of the serving cell."),
        )
        .with_column(
            ColumnSchema::new("cell_id", ColumnType::Str)
                .with_description("Serving cell (no public domain: not a group key)."),
        )
        .with_contribution_bounds(14, 10)
}

/// A small smart-meter schema with one column of each kind: privacy unit `meter_id`;
/// `read_at` (datetime, January 2024), `region` (str, domain North, South), `tariff` (str, no
/// domain), `kwh` (float, bounds 0 to 5), `occupants` (int, domain 1 to 6), `consent` (bool);
/// each meter in at most 48 cells, 62 rows per cell.
///
/// ```
/// use oar_guest::{testing::meters_schema, ColumnType};
/// let s = meters_schema();
/// assert_eq!(s.column("kwh").and_then(|c| c.bounds), Some([0.0, 5.0]));
/// assert_eq!(s.column("consent").map(|c| c.dtype), Some(ColumnType::Bool));
/// ```
pub fn meters_schema() -> DatasetSchema {
    DatasetSchema::new("meters", "meter_id")
        .with_column(
            ColumnSchema::new("read_at", ColumnType::Datetime)
                .with_period("2024-01-01", "2024-01-31")
                .with_description("End of the half-hour the reading covers."),
        )
        .with_column(
            ColumnSchema::new("region", ColumnType::Str)
                .with_domain(["North", "South"])
                .with_description("Region of the premises."),
        )
        .with_column(
            ColumnSchema::new("tariff", ColumnType::Str)
                .with_description("Tariff name (no public domain)."),
        )
        .with_column(
            ColumnSchema::new("kwh", ColumnType::Float)
                .with_bounds(0.0, 5.0)
                .with_description("Energy used in the half-hour."),
        )
        .with_column(
            ColumnSchema::new("occupants", ColumnType::Int)
                .with_domain(1..=6)
                .with_description("People living at the premises."),
        )
        .with_column(
            ColumnSchema::new("consent", ColumnType::Bool)
                .with_description("Whether the household agreed to research use."),
        )
        .with_contribution_bounds(48, 62)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Error};

    #[test]
    fn an_answer_that_does_not_fit_the_plan_is_refused_and_not_charged() {
        let mut host = FakeHost::new()
            .with_dataset(cdr_schema())
            .with_budget("cdr", 1.0)
            .answer(Table::new(["day"], ["n"]));
        let mut ctx = Context::new(&mut host);
        let r = ctx
            .dataset("cdr")
            .unwrap()
            .group_by(["region"])
            .count_units("n")
            .release(0.5);
        let Err(Error::Refused(why)) = r else {
            panic!("{r:?}")
        };
        assert!(why.contains("groups by [region]"), "{why}");
        assert_eq!(ctx.budget_remaining("cdr"), 1.0);
    }

    #[test]
    fn a_query_without_an_answer_queued_says_how_to_queue_one() {
        let mut host = FakeHost::new().with_dataset(cdr_schema());
        let plan =
            r#"{"dataset":"cdr","aggregates":[{"agg":"count_units","name":"n"}],"epsilon":1.0}"#;
        let why = host.query(plan).unwrap_err();
        assert!(why.contains("FakeHost::answer"), "{why}");
        assert_eq!(host.plans().len(), 1, "the plan is recorded all the same");
        assert!(host.query("not json").is_err());
    }

    #[test]
    fn a_table_is_emitted_once_and_unknown_datasets_are_named() {
        let mut host = FakeHost::new().with_dataset(meters_schema());
        let empty = r#"{"key_columns":[],"value_columns":[],"rows":[]}"#;
        host.emit("t", empty).unwrap();
        assert!(host
            .emit("t", empty)
            .unwrap_err()
            .contains("already emitted"));
        assert!(host.emit("u", "{").unwrap_err().contains("malformed"));
        let why = host.dataset_schema("cdr").unwrap_err();
        assert!(why.contains("meters"), "lists what it has: {why}");
    }

    #[test]
    fn a_dataset_given_twice_is_replaced() {
        let mut host = FakeHost::new()
            .with_dataset(cdr_schema())
            .with_dataset(cdr_schema().with_contribution_bounds(1, 1));
        assert_eq!(host.datasets(), ["cdr"]);
        let schema: DatasetSchema =
            serde_json::from_str(&host.dataset_schema("cdr").unwrap()).unwrap();
        assert_eq!(schema.max_groups_per_unit, 1);
    }
}
