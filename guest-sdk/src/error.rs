//! What can go wrong inside a module, in words an author can act on.

/// A module's error. `run` turns it into the text the host records in the run log.
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
    pub fn module(msg: impl Into<String>) -> Self {
        Error::Module(msg.into())
    }
}
