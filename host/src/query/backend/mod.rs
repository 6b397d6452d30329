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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryEngine {
    /// Polars' streaming engine: memory grows with distinct (unit, cell) pairs rather than
    /// rows (1B rows in 11 GiB), at some cost in time on data that fits in memory.
    PolarsStreaming,
    /// Polars' in-memory engine (the default: the fastest while the columns a query reads fit
    /// in memory).
    #[default]
    PolarsInMemory,
}

impl QueryEngine {
    /// Every engine, by name.
    pub const ALL: [QueryEngine; 2] = [QueryEngine::PolarsStreaming, QueryEngine::PolarsInMemory];

    /// Its name in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            QueryEngine::PolarsStreaming => "polars-streaming",
            QueryEngine::PolarsInMemory => "polars-in-memory",
        }
    }

    /// The engine called `name`, or an error listing the names.
    pub fn from_name(name: &str) -> Result<QueryEngine, String> {
        QueryEngine::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = QueryEngine::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown query engine '{name}'; engines: {}",
                    names.join(", ")
                )
            })
    }

    /// A backend running this engine.
    pub fn backend(self) -> std::sync::Arc<dyn QueryBackend> {
        std::sync::Arc::new(match self {
            QueryEngine::PolarsStreaming => PolarsBackend::STREAMING,
            QueryEngine::PolarsInMemory => PolarsBackend::IN_MEMORY,
        })
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
        for e in QueryEngine::ALL {
            assert_eq!(QueryEngine::from_name(e.name()), Ok(e));
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
        assert_eq!(QueryEngine::default().backend().name(), "polars");
        assert_eq!(
            QueryEngine::PolarsStreaming.backend().name(),
            "polars-streaming"
        );
    }
}
