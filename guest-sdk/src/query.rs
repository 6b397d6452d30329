//! The fluent query builder: dataset → filter → derive → group_by → aggregates → release.

use crate::plan::{Aggregate, ContributionBounds, Plan, Step};
use crate::typed::{ColumnRef, Num};
use crate::{Context, DatasetSchema, Error, Expr, IntoPredicate, Table};

/// A plan under construction, started by [`Context::dataset`]. Mistakes (an unknown column, a
/// key without a public domain, a sum without bounds...) are found by [`Query::release`] before
/// anything is sent to the host, so a chain needs only one `?`.
///
/// Columns are named with plain strings or with typed handles ([`num`](crate::num),
/// [`text`](crate::text), [`time`](crate::time), [`flag`](crate::flag)):
///
/// ```
/// use oar_guest::testing::{meters_schema, FakeHost};
/// use oar_guest::{flag, num, time, Context, Table};
///
/// let mut answer = Table::new(["region", "slot"], ["meters", "mean_kwh"]);
/// answer.push(vec!["North".into(), 36.into()], vec![812.0, 0.61]);
/// let mut host = FakeHost::new().with_dataset(meters_schema()).answer(answer);
/// let mut ctx = Context::new(&mut host);
///
/// let kwh = num("kwh");
/// let profile = ctx
///     .dataset("meters")?
///     .filter(flag("consent").and(kwh.ge(0.0)))
///     .derive("slot", time("read_at").half_hour())
///     .group_by(["region", "slot"])
///     .count_units("meters")
///     .mean("mean_kwh", &kwh)
///     .release(1.0)?;
/// assert_eq!(profile.get(&["North".into(), 36.into()], "mean_kwh"), Some(0.61));
/// # Ok::<(), oar_guest::Error>(())
/// ```
pub struct Query<'c, 'h> {
    ctx: &'c mut Context<'h>,
    schema: DatasetSchema,
    plan: Plan,
}

impl<'c, 'h> Query<'c, 'h> {
    pub(crate) fn new(ctx: &'c mut Context<'h>, schema: DatasetSchema) -> Self {
        let plan = Plan {
            dataset: schema.name.clone(),
            steps: Vec::new(),
            group_by: Vec::new(),
            aggregates: Vec::new(),
            bounds: ContributionBounds::default(),
            epsilon: 0.0,
            totals: false,
            key_selection: false,
        };
        Query { ctx, schema, plan }
    }

    /// The dataset's public schema.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// let q = ctx.dataset("cdr")?;
    /// assert_eq!(q.schema().privacy_unit, "subscriber_id");
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn schema(&self) -> &DatasetSchema {
        &self.schema
    }

    /// Keeps rows where `predicate` holds: an [`Expr`] or a [`flag`](crate::flag) column.
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::{col, flag, plan::Step};
    /// let q = ctx.dataset("meters")?.filter(flag("consent")).filter(col("kwh").gt(0.0));
    /// assert!(matches!(q.plan().steps[..], [Step::Filter { .. }, Step::Filter { .. }]));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn filter(mut self, predicate: impl IntoPredicate) -> Self {
        self.plan.steps.push(Step::Filter {
            predicate: predicate.into_predicate(),
        });
        self
    }

    /// Adds column `name` computed from `expr`.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::{col, plan::Step};
    /// let q = ctx.dataset("cdr")?.derive("day", col("timestamp").date());
    /// assert!(matches!(&q.plan().steps[0], Step::Derive { name, .. } if name == "day"));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn derive(mut self, name: &str, expr: impl Into<Expr>) -> Self {
        self.plan.steps.push(Step::Derive {
            name: name.to_string(),
            expr: expr.into(),
        });
        self
    }

    /// Adds column `name` holding one value per privacy unit (the per-unit stage), such as a
    /// subscriber's home region. See [`per_unit`](crate::per_unit).
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{col, per_unit, Context, Table};
    ///
    /// let mut answer = Table::new(["home", "region"], ["subscribers"]);
    /// answer.push(vec!["North".into(), "South".into()], vec![57.0]);
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(answer);
    /// let mut ctx = Context::new(&mut host);
    /// let flows = ctx
    ///     .dataset("cdr")?
    ///     .per_unit("home", per_unit::mode(col("region")).rows(col("timestamp").hour().lt(6)))
    ///     .group_by(["home", "region"])
    ///     .count_units("subscribers")
    ///     .release(1.0)?;
    /// assert_eq!(flows.get(&["North".into(), "South".into()], "subscribers"), Some(57.0));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn per_unit(mut self, name: &str, value: crate::per_unit::PerUnit) -> Self {
        self.plan.steps.push(value.into_step(name));
        self
    }

    /// Groups by these key columns (names or typed handles). Each needs a public domain: a
    /// dataset column with a declared domain, a boolean, a date with a period, or a derived key
    /// such as `date()`, `hour()`, `bin(..)` or a comparison; or call [`Query::select_keys`].
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::text;
    /// let q = ctx.dataset("cdr")?.group_by([text("region")]).group_by(["cell_id"]);
    /// assert_eq!(q.plan().group_by, ["region", "cell_id"]);
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn group_by<S: AsRef<str>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.plan
            .group_by
            .extend(keys.into_iter().map(|k| k.as_ref().to_string()));
        self
    }

    /// Adds the number of distinct privacy units per cell as column `name`.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::plan::Aggregate;
    /// let q = ctx.dataset("cdr")?.count_units("subscribers");
    /// assert_eq!(q.plan().aggregates, [Aggregate::CountUnits { name: "subscribers".into() }]);
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn count_units(mut self, name: &str) -> Self {
        self.plan.aggregates.push(Aggregate::CountUnits {
            name: name.to_string(),
        });
        self
    }

    /// Adds the bounded sum of number `column` as `name` (bounds from the schema).
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::{num, plan::Aggregate};
    /// let q = ctx.dataset("meters")?.sum("total_kwh", num("kwh"));
    /// assert!(matches!(&q.plan().aggregates[0], Aggregate::Sum { column, bounds: None, .. } if column == "kwh"));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn sum(mut self, name: &str, column: impl ColumnRef<Num>) -> Self {
        self.plan.aggregates.push(Aggregate::Sum {
            name: name.to_string(),
            column: column.column_name(),
            bounds: None,
        });
        self
    }

    /// Adds the bounded sum of number `column`, each value clamped to `[lower, upper]` (for
    /// columns without declared bounds, or to clamp tighter).
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::plan::Aggregate;
    /// let q = ctx.dataset("meters")?.sum_clamped("total_kwh", "kwh", 0.0, 2.0);
    /// assert!(matches!(q.plan().aggregates[0], Aggregate::Sum { bounds: Some([0.0, 2.0]), .. }));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn sum_clamped(
        mut self,
        name: &str,
        column: impl ColumnRef<Num>,
        lower: f64,
        upper: f64,
    ) -> Self {
        self.plan.aggregates.push(Aggregate::Sum {
            name: name.to_string(),
            column: column.column_name(),
            bounds: Some([lower, upper]),
        });
        self
    }

    /// Adds the bounded mean of number `column` as `name` (bounds from the schema).
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::plan::Aggregate;
    /// let q = ctx.dataset("meters")?.mean("mean_kwh", "kwh");
    /// assert!(matches!(q.plan().aggregates[0], Aggregate::Mean { bounds: None, .. }));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn mean(mut self, name: &str, column: impl ColumnRef<Num>) -> Self {
        self.plan.aggregates.push(Aggregate::Mean {
            name: name.to_string(),
            column: column.column_name(),
            bounds: None,
        });
        self
    }

    /// Adds the bounded mean of number `column`, each value clamped to `[lower, upper]` (for
    /// derived columns without declared bounds, such as a per-unit sum).
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::{num, per_unit, plan::Aggregate};
    /// let q = ctx
    ///     .dataset("meters")?
    ///     .per_unit("monthly_kwh", per_unit::sum(num("kwh")))
    ///     .mean_clamped("mean_monthly_kwh", "monthly_kwh", 0.0, 1500.0);
    /// assert!(matches!(q.plan().aggregates[0], Aggregate::Mean { bounds: Some([0.0, 1500.0]), .. }));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn mean_clamped(
        mut self,
        name: &str,
        column: impl ColumnRef<Num>,
        lower: f64,
        upper: f64,
    ) -> Self {
        self.plan.aggregates.push(Aggregate::Mean {
            name: name.to_string(),
            column: column.column_name(),
            bounds: Some([lower, upper]),
        });
        self
    }

    /// Also releases totals and sub-totals over every subset of the keys (key value `"Total"`),
    /// with secondary suppression so no suppressed cell can be recovered by subtraction.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// let q = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").with_totals();
    /// assert!(q.plan().totals);
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn with_totals(mut self) -> Self {
        self.plan.totals = true;
        self
    }

    /// Allows text and integer group keys without a public domain: their values come from the
    /// data, and only keys with enough people (noisy threshold, then the minimum) are released
    /// at all.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context, Table};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(Table::new(["cell_id"], ["n"]));
    /// # let mut ctx = Context::new(&mut host);
    /// let by_cell = ctx.dataset("cdr")?.group_by(["cell_id"]).count_units("n").select_keys();
    /// assert!(by_cell.plan().key_selection);
    /// by_cell.release(1.0)?; // without select_keys, refused: cell_id has no public domain
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn select_keys(mut self) -> Self {
        self.plan.key_selection = true;
        self
    }

    /// Adds the `q`-quantile of number `column` as `name` (bounds from the schema, 64 bins):
    /// `0.5` is the median, `0.9` the 90th percentile.
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::plan::Aggregate;
    /// let q = ctx.dataset("meters")?.quantile("p90_kwh", "kwh", 0.9);
    /// assert!(matches!(q.plan().aggregates[0], Aggregate::Quantile { q, bins: None, .. } if q == 0.9));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn quantile(mut self, name: &str, column: impl ColumnRef<Num>, q: f64) -> Self {
        self.plan.aggregates.push(Aggregate::Quantile {
            name: name.to_string(),
            column: column.column_name(),
            q,
            bounds: None,
            bins: None,
        });
        self
    }

    /// Adds the `q`-quantile of number `column` clamped to `[lower, upper]`, read off `bins`
    /// equal-width bins (the resolution of the answer is `(upper - lower) / bins`).
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::plan::Aggregate;
    /// let q = ctx.dataset("meters")?.quantile_clamped("p50_kwh", "kwh", 0.5, [0.0, 2.0], 40);
    /// assert!(matches!(
    ///     q.plan().aggregates[0],
    ///     Aggregate::Quantile { bounds: Some([0.0, 2.0]), bins: Some(40), .. }
    /// ));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn quantile_clamped(
        mut self,
        name: &str,
        column: impl ColumnRef<Num>,
        q: f64,
        [lower, upper]: [f64; 2],
        bins: u32,
    ) -> Self {
        self.plan.aggregates.push(Aggregate::Quantile {
            name: name.to_string(),
            column: column.column_name(),
            q,
            bounds: Some([lower, upper]),
            bins: Some(bins),
        });
        self
    }

    /// Adds the median of number `column` as `name`.
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::plan::Aggregate;
    /// let q = ctx.dataset("meters")?.median("median_kwh", "kwh");
    /// assert!(matches!(q.plan().aggregates[0], Aggregate::Quantile { q, .. } if q == 0.5));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn median(self, name: &str, column: impl ColumnRef<Num>) -> Self {
        self.quantile(name, column, 0.5)
    }

    /// Adds a histogram: derives `key` as the bin of number `column` over `edges` and groups by
    /// it, so each cell is one bin (count its units with [`Query::count_units`]).
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// let q = ctx.dataset("meters")?.histogram("kwh_band", "kwh", [0.0, 0.5, 1.0, 5.0]).count_units("n");
    /// assert_eq!(q.plan().group_by, ["kwh_band"]);
    /// assert!(q.check().is_ok());
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn histogram(
        self,
        key: &str,
        column: impl ColumnRef<Num>,
        edges: impl IntoIterator<Item = f64>,
    ) -> Self {
        let column = crate::col(&column.column_name());
        self.derive(key, column.bin(edges)).group_by([key])
    }

    /// Caps the number of cells one unit may contribute to.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// let q = ctx.dataset("cdr")?.max_groups_per_unit(7);
    /// assert_eq!(q.plan().bounds.max_groups_per_unit, Some(7));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn max_groups_per_unit(mut self, n: u32) -> Self {
        self.plan.bounds.max_groups_per_unit = Some(n);
        self
    }

    /// Caps the rows of one unit that count towards one cell's sum.
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// let q = ctx.dataset("cdr")?.max_rows_per_group(3);
    /// assert_eq!(q.plan().bounds.max_rows_per_group, Some(3));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn max_rows_per_group(mut self, n: u32) -> Self {
        self.plan.bounds.max_rows_per_group = Some(n);
        self
    }

    /// The plan as it stands (for inspection and tests).
    ///
    /// ```
    /// # use oar_guest::{testing::{cdr_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(cdr_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// let q = ctx.dataset("cdr")?.group_by(["region"]);
    /// assert_eq!(q.plan().dataset, "cdr");
    /// assert!(q.plan().aggregates.is_empty());
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Checks the plan against the dataset's schema without sending it, as
    /// [`Query::release`] does first: every column exists and is not the privacy unit, every
    /// group key has a public domain (or [`Query::select_keys`] applies to it), aggregate names
    /// are distinct, sums, means and quantiles read numbers and have valid bounds, and
    /// quantiles have `q` in (0, 1).
    ///
    /// Derived columns are checked as far as the SDK can know them (`hour()` has bounds and a
    /// domain; arithmetic and per-unit sums have neither); the host checks everything again.
    ///
    /// ```
    /// # use oar_guest::{testing::{meters_schema, FakeHost}, Context};
    /// # let mut host = FakeHost::new().with_dataset(meters_schema());
    /// # let mut ctx = Context::new(&mut host);
    /// use oar_guest::{num, Error};
    /// let q = ctx.dataset("meters")?.derive("kwh2", num("kwh") * 2.0).sum("total", "kwh2");
    /// let err = q.check().unwrap_err();
    /// assert!(matches!(err, Error::Bounds { ref column, .. } if column == "kwh2"));
    /// assert!(err.to_string().contains("sum_clamped(\"total\", \"kwh2\", lower, upper)"));
    /// # Ok::<(), oar_guest::Error>(())
    /// ```
    pub fn check(&self) -> Result<(), Error> {
        crate::validate::check_plan(&self.schema, &self.plan)
    }

    /// Asks the host whether it would answer this plan with budget `epsilon`: the SDK's checks
    /// ([`Query::check`]), then the host's own (scope, schema, the policy, the run's query limit
    /// and the budget left). Nothing is charged, no data is read and it is not a query; a refusal
    /// is the one [`Query::release`] would get.
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{Context, Error};
    ///
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).with_budget("cdr", 1.0);
    /// let mut ctx = Context::new(&mut host);
    /// ctx.dataset("cdr")?.group_by(["region"]).count_units("n").check_with_host(0.5)?;
    /// let over = ctx.dataset("cdr")?.group_by(["region"]).count_units("n").check_with_host(2.0);
    /// assert!(matches!(over, Err(Error::Refused(_))));
    /// assert_eq!(ctx.budget_remaining("cdr"), 1.0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn check_with_host(mut self, epsilon: f64) -> Result<(), Error> {
        self.check()?;
        self.plan.epsilon = epsilon;
        let json = serde_json::to_string(&self.plan).map_err(|e| Error::Protocol(e.to_string()))?;
        self.ctx.check_json(&json)
    }

    /// Checks the plan ([`Query::check`]), sends it to the host with budget `epsilon` and
    /// returns the gated table.
    ///
    /// Fails before anything is sent if the plan is malformed; fails with [`Error::Refused`] if the
    /// host refuses (nothing is released or charged then).
    ///
    /// ```
    /// use oar_guest::testing::{cdr_schema, FakeHost};
    /// use oar_guest::{Context, Error, Table};
    ///
    /// let mut answer = Table::new(["region"], ["subscribers"]);
    /// answer.push(vec!["North".into()], vec![1520.0]);
    /// let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(answer);
    /// let mut ctx = Context::new(&mut host);
    ///
    /// let by_region = ctx.dataset("cdr")?.group_by(["region"]).count_units("subscribers");
    /// let table = by_region.release(0.5)?;
    /// assert_eq!(table.get(&["North".into()], "subscribers"), Some(1520.0));
    ///
    /// // A malformed plan never reaches the host.
    /// let bad = ctx.dataset("cdr")?.group_by(["cell_id"]).count_units("subscribers").release(0.5);
    /// assert!(matches!(bad, Err(Error::GroupKey { ref key, .. }) if key == "cell_id"));
    /// assert_eq!(host.plans().len(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn release(mut self, epsilon: f64) -> Result<Table, Error> {
        self.check()?;
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(Error::InvalidPlan(format!(
                "epsilon must be a positive number, got {epsilon}"
            )));
        }
        self.plan.epsilon = epsilon;
        let json = serde_json::to_string(&self.plan).map_err(|e| Error::Protocol(e.to_string()))?;
        self.ctx.query_json(&json)
    }
}
