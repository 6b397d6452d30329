//! The fluent query builder: dataset → filter → derive → group_by → aggregates → release.

use crate::plan::{Aggregate, ContributionBounds, Plan, Step};
use crate::{Context, DatasetSchema, Error, Expr, Table};

/// A plan under construction. Mistakes (an unknown column, a missing aggregate) are remembered and
/// reported by [`Query::release`], so a chain needs only one `?`.
pub struct Query<'c, 'h> {
    ctx: &'c mut Context<'h>,
    schema: DatasetSchema,
    plan: Plan,
    derived: Vec<String>,
    error: Option<Error>,
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
        Query {
            ctx,
            schema,
            plan,
            derived: Vec::new(),
            error: None,
        }
    }

    /// The dataset's public schema.
    pub fn schema(&self) -> &DatasetSchema {
        &self.schema
    }

    fn check_column(&mut self, name: &str) {
        if self.error.is_some()
            || self.derived.iter().any(|d| d == name)
            || self.schema.column(name).is_some()
        {
            return;
        }
        let mut available: Vec<&str> = self
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        available.extend(self.derived.iter().map(String::as_str));
        self.error = Some(Error::UnknownColumn {
            dataset: self.schema.name.clone(),
            column: name.to_string(),
            available: available.join(", "),
        });
    }

    fn check_expr(&mut self, expr: &Expr) {
        for c in expr.columns() {
            self.check_column(c);
        }
    }

    /// Keeps rows where `predicate` holds.
    pub fn filter(mut self, predicate: Expr) -> Self {
        self.check_expr(&predicate);
        self.plan.steps.push(Step::Filter { predicate });
        self
    }

    /// Adds column `name` computed from `expr`.
    pub fn derive(mut self, name: &str, expr: Expr) -> Self {
        self.check_expr(&expr);
        self.derived.push(name.to_string());
        self.plan.steps.push(Step::Derive {
            name: name.to_string(),
            expr,
        });
        self
    }

    /// Adds column `name` holding one value per privacy unit (the per-unit stage), such as a
    /// subscriber's home region. See [`per_unit`](crate::per_unit).
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut oar_guest::Context) -> Result<(), oar_guest::Error> {
    /// use oar_guest::{col, per_unit};
    /// let flows = ctx
    ///     .dataset("cdr")?
    ///     .per_unit("home", per_unit::mode(col("region")).rows(col("timestamp").hour().lt(6)))
    ///     .group_by(["home", "region"])
    ///     .count_units("subscribers")
    ///     .release(1.0)?;
    /// # Ok(()) }
    /// ```
    pub fn per_unit(mut self, name: &str, value: crate::per_unit::PerUnit) -> Self {
        for c in value.columns() {
            self.check_column(c);
        }
        self.derived.push(name.to_string());
        self.plan.steps.push(value.into_step(name));
        self
    }

    /// Groups by these key columns (each needs a public domain).
    pub fn group_by<S: AsRef<str>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        for k in keys {
            let k = k.as_ref();
            self.check_column(k);
            self.plan.group_by.push(k.to_string());
        }
        self
    }

    /// Adds the number of distinct privacy units per cell as column `name`.
    pub fn count_units(mut self, name: &str) -> Self {
        self.plan.aggregates.push(Aggregate::CountUnits {
            name: name.to_string(),
        });
        self
    }

    /// Adds the bounded sum of `column` as `name` (bounds from the schema).
    pub fn sum(mut self, name: &str, column: &str) -> Self {
        self.check_column(column);
        self.plan.aggregates.push(Aggregate::Sum {
            name: name.to_string(),
            column: column.to_string(),
            bounds: None,
        });
        self
    }

    /// Adds the bounded sum of `column`, each value clamped to `[lower, upper]`.
    pub fn sum_clamped(mut self, name: &str, column: &str, lower: f64, upper: f64) -> Self {
        self.check_column(column);
        self.plan.aggregates.push(Aggregate::Sum {
            name: name.to_string(),
            column: column.to_string(),
            bounds: Some([lower, upper]),
        });
        self
    }

    /// Adds the bounded mean of `column` as `name` (bounds from the schema).
    pub fn mean(mut self, name: &str, column: &str) -> Self {
        self.check_column(column);
        self.plan.aggregates.push(Aggregate::Mean {
            name: name.to_string(),
            column: column.to_string(),
            bounds: None,
        });
        self
    }

    /// Adds the bounded mean of `column`, each value clamped to `[lower, upper]` (for derived
    /// columns without declared bounds, such as a per-unit sum).
    pub fn mean_clamped(mut self, name: &str, column: &str, lower: f64, upper: f64) -> Self {
        self.check_column(column);
        self.plan.aggregates.push(Aggregate::Mean {
            name: name.to_string(),
            column: column.to_string(),
            bounds: Some([lower, upper]),
        });
        self
    }

    /// Also releases totals and sub-totals over every subset of the keys (key value `"Total"`),
    /// with secondary suppression so no suppressed cell can be recovered by subtraction.
    pub fn with_totals(mut self) -> Self {
        self.plan.totals = true;
        self
    }

    /// Allows group keys without a public domain: their values come from the data, and only
    /// keys with enough people (noisy threshold, then the minimum) are released at all.
    pub fn select_keys(mut self) -> Self {
        self.plan.key_selection = true;
        self
    }

    /// Adds the `q`-quantile of `column` as `name` (bounds from the schema, 64 bins): `0.5` is
    /// the median, `0.9` the 90th percentile.
    pub fn quantile(mut self, name: &str, column: &str, q: f64) -> Self {
        self.check_column(column);
        self.plan.aggregates.push(Aggregate::Quantile {
            name: name.to_string(),
            column: column.to_string(),
            q,
            bounds: None,
            bins: None,
        });
        self
    }

    /// Adds the `q`-quantile of `column` clamped to `[lower, upper]`, read off `bins`
    /// equal-width bins (the resolution of the answer is `(upper - lower) / bins`).
    pub fn quantile_clamped(
        mut self,
        name: &str,
        column: &str,
        q: f64,
        [lower, upper]: [f64; 2],
        bins: u32,
    ) -> Self {
        self.check_column(column);
        self.plan.aggregates.push(Aggregate::Quantile {
            name: name.to_string(),
            column: column.to_string(),
            q,
            bounds: Some([lower, upper]),
            bins: Some(bins),
        });
        self
    }

    /// Adds the median of `column` as `name`.
    pub fn median(self, name: &str, column: &str) -> Self {
        self.quantile(name, column, 0.5)
    }

    /// Adds a histogram: derives `key` as the bin of `column` over `edges` and groups by it, so
    /// each cell is one bin (count its units with [`Query::count_units`]).
    pub fn histogram(self, key: &str, column: &str, edges: impl IntoIterator<Item = f64>) -> Self {
        let edges: Vec<f64> = edges.into_iter().collect();
        self.derive(key, crate::col(column).bin(edges))
            .group_by([key])
    }

    /// Caps the number of cells one unit may contribute to.
    pub fn max_groups_per_unit(mut self, n: u32) -> Self {
        self.plan.bounds.max_groups_per_unit = Some(n);
        self
    }

    /// Caps the rows of one unit that count towards one cell's sum.
    pub fn max_rows_per_group(mut self, n: u32) -> Self {
        self.plan.bounds.max_rows_per_group = Some(n);
        self
    }

    /// The plan as it stands (for inspection and tests).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Sends the plan to the host with budget `epsilon` and returns the gated table.
    ///
    /// Fails before anything is sent if the plan is malformed; fails with [`Error::Refused`] if the
    /// host refuses (nothing is released or charged then).
    pub fn release(mut self, epsilon: f64) -> Result<Table, Error> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.plan.aggregates.is_empty() {
            return Err(Error::InvalidPlan(
                "no aggregate: add count_units, sum or mean before release".into(),
            ));
        }
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
