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
