//! What can go wrong inside a module, in words an author can act on.

use crate::ColumnType;

/// A module's error. `run` turns it into the text the host records in the run log.
///
/// Mistakes in a plan are caught by [`Query::release`](crate::Query::release) before anything is
/// sent to the host, and each error names the column, key, aggregate or bound at fault:
///
/// ```
/// use oar_guest::testing::{meters_schema, FakeHost};
/// use oar_guest::{Context, Error};
///
/// let mut host = FakeHost::new().with_dataset(meters_schema());
/// let mut ctx = Context::new(&mut host);
/// let err = ctx.dataset("meters")?.group_by(["region"]).sum("total", "tariff").release(1.0);
/// assert!(matches!(err, Err(Error::ColumnType { ref column, .. }) if column == "tariff"));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dataset is unknown or outside this run's approval.
    #[error("dataset '{name}' is not available to this run: {reason}")]
    Dataset {
        /// The dataset asked for.
        name: String,
        /// The host's reason.
        reason: String,
    },
    /// A plan named a column the dataset (or the plan's derived columns) does not have.
    #[error("column '{column}' is not in dataset '{dataset}'; available columns: {available}")]
    UnknownColumn {
        /// The dataset.
        dataset: String,
        /// The missing column.
        column: String,
        /// The columns that do exist, comma-separated.
        available: String,
    },
    /// A plan read the privacy-unit column, which only the host may read.
    #[error("column '{column}' is the privacy unit of dataset '{dataset}'; plans may not read it (the host counts distinct units itself: use count_units)")]
    PrivacyUnit {
        /// The dataset.
        dataset: String,
        /// The privacy-unit column.
        column: String,
    },
    /// A group key has no public domain (and key selection cannot apply to it).
    #[error("cannot group by '{key}': {detail}")]
    GroupKey {
        /// The key.
        key: String,
        /// What is wrong with it and what to do instead.
        detail: String,
    },
    /// An aggregate's output name is empty, reserved or used twice.
    #[error("aggregate name '{name}' {detail}")]
    AggregateName {
        /// The name.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A sum, mean or quantile reads a column that is not a number.
    #[error("aggregate '{aggregate}': column '{column}' has type {found}, but sums, means and quantiles need a number (int or float); to count units per value of '{column}', group by it and use count_units")]
    ColumnType {
        /// The aggregate's output name.
        aggregate: String,
        /// The column it reads.
        column: String,
        /// The column's type.
        found: ColumnType,
    },
    /// A sum, mean or quantile has no clamping bounds, or bounds that are not an interval.
    #[error("aggregate '{aggregate}' over column '{column}': {detail}")]
    Bounds {
        /// The aggregate's output name.
        aggregate: String,
        /// The column it reads.
        column: String,
        /// What is wrong with the bounds and how to give good ones.
        detail: String,
    },
    /// A quantile asks for `q` outside (0, 1) or for fewer than two bins.
    #[error("quantile '{aggregate}': {detail}")]
    Quantile {
        /// The aggregate's output name.
        aggregate: String,
        /// What is wrong.
        detail: String,
    },
    /// A plan was built wrongly (caught before it reached the host).
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// The host refused the query (validation, policy, budget); nothing was released.
    #[error("query refused by the host: {0}")]
    Refused(String),
    /// The host refused to publish a table.
    #[error("could not emit table '{name}': {reason}")]
    Emit {
        /// The table name.
        name: String,
        /// The host's reason.
        reason: String,
    },
    /// The run's parameters did not parse.
    #[error("invalid parameters: {0}")]
    Params(String),
    /// The host answered with JSON the SDK could not read (an SDK/host version mismatch).
    #[error("malformed answer from the host: {0}")]
    Protocol(String),
    /// An error the module itself raised.
    #[error("{0}")]
    Module(String),
}

impl Error {
    /// A module-level error with a message.
    ///
    /// ```
    /// use oar_guest::Error;
    /// let e = Error::module("no ward has enough premises");
    /// assert_eq!(e.to_string(), "no ward has enough premises");
    /// ```
    pub fn module(msg: impl Into<String>) -> Self {
        Error::Module(msg.into())
    }
}
