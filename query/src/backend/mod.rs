//! Query backends: what executes a [`CheckedPlan`](super::CheckedPlan) next to the data.
//!
//! A backend receives only a checked plan (its sole constructor is [`check`](super::check)) and
//! returns the per-cell statistics the gate consumes. Whatever it runs on, its failures carry a
//! kind and nothing else: an engine's message can quote data values, so it never leaves the
//! backend. Every backend gives the same statistics for the same plan and data (exactly for
//! counts, to float rounding for sums); `tests/backends.rs` checks that on random plans.

mod polars;
mod reference;

pub use self::polars::{PolarsBackend, PolarsEngine};
pub use reference::ReferenceBackend;

use super::{CellStats, CheckedPlan};
use crate::dataset::Dataset;
use std::time::Instant;

/// Why a backend returned no statistics: a kind, never an engine's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The engine failed (the kind of failure, e.g. "I/O error reading the dataset").
    #[error("the query failed next to the data ({0})")]
    Failed(&'static str),
    /// The deadline passed first; the query was cancelled.
    #[error("the run's deadline passed while the query ran")]
    Deadline,
}

/// The engine a holder runs queries on (its configuration's choice; a module never chooses).
///
/// Named in configuration files and on the command line by [`name`](Self::name):
/// `polars-in-memory`, `polars-streaming`, `datafusion`, or a Ballista scheduler's
/// `df://host:port`. The DataFusion engines are built by the `oar-datafusion` crate (the host's
/// `datafusion` cargo feature); this crate only names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum QueryEngine {
    /// Polars' streaming engine (the default): memory bounded by units and cells rather than
    /// rows, and the fastest of the engines on the population and origin-destination releases
    /// (`oar bench --scale`).
    #[default]
    PolarsStreaming,
    /// Polars' in-memory engine: holds the columns a query reads.
    PolarsInMemory,
    /// Apache DataFusion in the host's process.
    DataFusion,
    /// The holder's Ballista cluster (DataFusion distributed), by its scheduler's address.
    Ballista {
        /// `df://host:port`.
        scheduler: String,
    },
}

impl QueryEngine {
    /// The engines named by a fixed word.
    pub const NAMED: [QueryEngine; 3] = [
        QueryEngine::PolarsStreaming,
        QueryEngine::PolarsInMemory,
        QueryEngine::DataFusion,
    ];

    /// Its name in configuration files and on the command line (a Ballista cluster by its
    /// scheduler's address).
    pub fn name(&self) -> &str {
        match self {
            QueryEngine::PolarsStreaming => "polars-streaming",
            QueryEngine::PolarsInMemory => "polars-in-memory",
            QueryEngine::DataFusion => "datafusion",
            QueryEngine::Ballista { scheduler } => scheduler,
        }
    }

    /// The engine called `name`, or an error listing the names.
    pub fn from_name(name: &str) -> Result<QueryEngine, String> {
        if let Some(e) = QueryEngine::NAMED.into_iter().find(|e| e.name() == name) {
            return Ok(e);
        }
        if name.starts_with("df://") {
            return Ok(QueryEngine::Ballista {
                scheduler: name.to_string(),
            });
        }
        let names: Vec<_> = QueryEngine::NAMED.iter().map(|e| e.name()).collect();
        Err(format!(
            "unknown query engine '{name}'; engines: {}, or a Ballista scheduler as df://host:port",
            names.join(", ")
        ))
    }

    /// A backend running this engine, if it is one of Polars' (the DataFusion engines come
    /// from the `oar-datafusion` crate).
    pub fn polars_backend(&self) -> Option<std::sync::Arc<dyn QueryBackend>> {
        match self {
            QueryEngine::PolarsStreaming => Some(std::sync::Arc::new(PolarsBackend::STREAMING)),
            QueryEngine::PolarsInMemory => Some(std::sync::Arc::new(PolarsBackend::IN_MEMORY)),
            QueryEngine::DataFusion | QueryEngine::Ballista { .. } => None,
        }
    }
}

impl TryFrom<String> for QueryEngine {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        QueryEngine::from_name(&name)
    }
}

impl From<QueryEngine> for String {
    fn from(e: QueryEngine) -> String {
        e.name().to_string()
    }
}

/// Executes checked plans over a dataset.
pub trait QueryBackend: Send + Sync {
    /// A short name, for logs and benchmarks.
    fn name(&self) -> &'static str;

    /// Computes `plan`'s per-cell statistics over `dataset`, giving up at `deadline`.
    fn execute(
        &self,
        plan: &CheckedPlan,
        dataset: &Dataset,
        deadline: Option<Instant>,
    ) -> Result<CellStats, BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_named_in_configuration_and_an_unknown_one_lists_the_choices() {
        for e in QueryEngine::NAMED
            .into_iter()
            .chain([QueryEngine::Ballista {
                scheduler: "df://10.0.0.5:50050".into(),
            }])
        {
            assert_eq!(QueryEngine::from_name(e.name()), Ok(e.clone()));
            let toml = format!("engine = \"{}\"", e.name());
            #[derive(serde::Deserialize)]
            struct C {
                engine: QueryEngine,
            }
            assert_eq!(toml::from_str::<C>(&toml).unwrap().engine, e);
        }
        let err = QueryEngine::from_name("duckdb").unwrap_err();
        assert!(
            err.contains("polars-streaming") && err.contains("polars-in-memory"),
            "{err}"
        );
        assert!(err.contains("df://host:port"), "{err}");
        let name = |e: QueryEngine| e.polars_backend().map(|b| b.name());
        assert_eq!(name(QueryEngine::default()), Some("polars-streaming"));
        assert_eq!(name(QueryEngine::PolarsStreaming), Some("polars-streaming"));
        assert_eq!(name(QueryEngine::DataFusion), None);
    }
}
