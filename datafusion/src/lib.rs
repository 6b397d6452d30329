//! # oar-datafusion: OAR's query backend on Apache DataFusion and Ballista
//!
//! [`DataFusionBackend`] executes a [`CheckedPlan`] with DataFusion's DataFrame API (no SQL
//! text is ever built): in this process ([`DataFusionBackend::in_process`]), or on the holder's
//! own Ballista cluster ([`DataFusionBackend::ballista`], a `df://scheduler:port` address). The
//! holder's configuration picks it; a module never can.
//!
//! The lowering follows the semantics written once in `oar_query::checked` and
//! `oar_query::CheckedPlan`, with DataFusion's own behaviour fenced off where it differs
//! (see [`lower`]): floats compare in IEEE total order there, so every float is kept finite and
//! without a negative zero; `greatest`/`least` ignore nulls, so clamps are `CASE`s; there is no
//! `mode`, so it is a count per value and a `row_number` per unit, joined back null-safely;
//! contribution bounding is one row per (unit, cell) and a `row_number` over the unit ordered
//! by cell, so the kept cells do not depend on how the rows are partitioned. Two traps found
//! by the random-plan test are fenced off too: the expression simplifier is left out of the
//! session (it drops nulls from `IN` lists, see `context`), and each ranking is its own window
//! node (one `DataFrame::window` call sorts all its rankings by the first one's order).
//!
//! The host always plans: on a cluster it submits the optimised physical plan, so the
//! scheduler runs exactly what was planned here. Only one row per cell (and per cell and bin
//! for quantiles) comes back.
//!
//! Failures carry a kind only ([`BackendError`]): DataFusion's and Ballista's messages can quote
//! data, so they never leave this crate.

mod ballista_job;
pub mod cluster;

/// The parts of Ballista's scheduler protocol an operator's tooling (or a test) needs to ask a
/// scheduler about a job by id, such as one [`DataFusionBackend::cancelled_jobs`] names.
pub mod ballista_proto {
    pub use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    pub use ballista_core::serde::protobuf::{job_status, GetJobStatusParams};
}
mod collect;
pub mod lower;

use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use oar_query::backend::{BackendError, QueryBackend};
use oar_query::dataset::Dataset;
use oar_query::{CellStats, CheckedPlan};
use std::sync::mpsc;
use std::time::Instant;

/// Where a [`DataFusionBackend`] runs its queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// DataFusion in this process, on all cores.
    InProcess,
    /// A Ballista cluster: its scheduler's `df://host:port` address.
    Ballista {
        /// The scheduler, as given (`df://host:port`).
        scheduler: String,
    },
}

/// Executes checked plans on DataFusion, in process or on a Ballista cluster.
pub struct DataFusionBackend {
    target: Target,
    runtime: tokio::runtime::Runtime,
    cancelled: ballista_job::Cancelled,
}

/// One query's execution: where it runs, and the host's word to stop it.
pub(crate) struct Job {
    target: Target,
    stop: ballista_job::Stop,
    cancelled: ballista_job::Cancelled,
}

impl std::fmt::Debug for DataFusionBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFusionBackend")
            .field("target", &self.target)
            .finish()
    }
}

/// Why a backend could not be set up (configuration, before any query).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The scheduler address is not `df://host:port`.
    #[error("Ballista scheduler address '{0}' is not of the form df://host:port (for example df://10.0.0.5:50050)")]
    Address(String),
    /// The async runtime could not start.
    #[error("could not start the query runtime: {0}")]
    Runtime(std::io::Error),
}

impl DataFusionBackend {
    /// DataFusion in this process.
    pub fn in_process() -> Result<Self, SetupError> {
        Self::new(Target::InProcess)
    }

    /// The Ballista cluster whose scheduler listens at `scheduler` (`df://host:port`). Nothing
    /// connects until a query runs, so a host starts while its cluster is still coming up.
    pub fn ballista(scheduler: &str) -> Result<Self, SetupError> {
        check_scheduler_address(scheduler)?;
        Self::new(Target::Ballista {
            scheduler: scheduler.to_string(),
        })
    }

    fn new(target: Target) -> Result<Self, SetupError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("oar-datafusion")
            .build()
            .map_err(SetupError::Runtime)?;
        Ok(DataFusionBackend {
            target,
            runtime,
            cancelled: Default::default(),
        })
    }

    /// Where the queries run.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The ids of the Ballista jobs this backend cancelled on its cluster because a run's
    /// deadline passed while they ran (oldest first).
    pub fn cancelled_jobs(&self) -> Vec<String> {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Checks that `address` is `df://host:port`.
pub fn check_scheduler_address(address: &str) -> Result<(), SetupError> {
    let bad = || SetupError::Address(address.to_string());
    let rest = address.strip_prefix("df://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

impl QueryBackend for DataFusionBackend {
    fn name(&self) -> &'static str {
        match self.target {
            Target::InProcess => "datafusion",
            Target::Ballista { .. } => "ballista",
        }
    }

    fn execute(
        &self,
        plan: &CheckedPlan,
        dataset: &Dataset,
        deadline: Option<Instant>,
    ) -> Result<CellStats, BackendError> {
        let (plan, dataset) = (plan.clone(), dataset.clone());
        let job = Job {
            target: self.target.clone(),
            stop: Default::default(),
            cancelled: self.cancelled.clone(),
        };
        let stop = job.stop.clone();
        let (tx, rx) = mpsc::channel();
        // The query runs on this backend's own runtime, so `execute` may be called from any
        // thread (a sandbox's, or a server's blocking pool); the caller waits on a channel.
        let task = self.runtime.spawn(async move {
            let result = run(&job, &plan, &dataset).await;
            let _ = tx.send(result);
        });
        let received = match deadline {
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                match self.target {
                    // Dropping the query's stream cancels its tasks.
                    Target::InProcess => task.abort(),
                    // The job cancels itself on the cluster at its next status poll (or as
                    // soon as the scheduler has accepted it), in the background: the run ends
                    // now either way.
                    Target::Ballista { .. } => stop.stop(),
                }
                Err(BackendError::Deadline)
            }
            // The task ended without sending: it panicked.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(BackendError::Failed("the query engine panicked"))
            }
        }
    }
}

async fn run(job: &Job, plan: &CheckedPlan, dataset: &Dataset) -> Result<CellStats, BackendError> {
    collect::cell_stats(&context(&job.target), job, plan, dataset).await
}

/// The session every query is planned in, on this host (also for a cluster: the host plans,
/// the cluster only executes; see [`execute`]).
///
/// DataFusion's expression simplifier is left out: it rewrites `x NOT IN (a) OR x NOT IN (b)`
/// to `true` and `x IN (a) AND x IN (b)` to `false` whatever the nulls (55.2.0,
/// `inlist_intersection`), which under a `NOT` or an `OR` keeps rows with a null `x` that the
/// semantics drop. The random-plan test found it; `tests/datafusion.rs` pins it.
fn context(target: &Target) -> SessionContext {
    let config = match target {
        Target::InProcess => SessionConfig::new()
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get())),
        Target::Ballista { .. } => {
            use ballista_core::extension::SessionConfigExt;
            SessionConfig::new_with_ballista()
        }
    };
    let ctx = SessionContext::new_with_config(config);
    ctx.remove_optimizer_rule("simplify_expressions");
    ctx
}

/// Runs `df` where the target says and gathers its (small) result: in this process, or as a
/// physical plan submitted to the Ballista scheduler. The plan is built and optimised here, so
/// the scheduler cannot re-optimise it with rules this crate leaves out.
pub(crate) async fn execute(
    job: &Job,
    df: datafusion::prelude::DataFrame,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, DataFusionError> {
    match &job.target {
        Target::InProcess => df.collect().await,
        Target::Ballista { scheduler } => {
            let config = df.task_ctx().session_config().clone();
            let plan = df.create_physical_plan().await?;
            let url = format!(
                "http://{}",
                scheduler.strip_prefix("df://").unwrap_or(scheduler)
            );
            ballista_job::run(
                url,
                plan,
                config,
                session_id(),
                job.stop.clone(),
                job.cancelled.clone(),
            )
            .await
        }
    }
}

/// A fresh session id for the scheduler.
fn session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "oar-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The kind of a DataFusion or Ballista failure (never its message).
pub(crate) fn fail(e: &DataFusionError) -> BackendError {
    BackendError::Failed(error_kind(e))
}

fn error_kind(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => {
            "I/O error reading the dataset"
        }
        DataFusionError::ParquetError(_) => "the dataset's files could not be decoded",
        DataFusionError::ResourcesExhausted(_) => "the query engine ran out of memory",
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => "the query engine could not plan the query",
        DataFusionError::External(_) | DataFusionError::ExecutionJoin(_) => {
            "the query cluster failed or could not be reached"
        }
        _ => "the query engine failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduler_address_must_be_df_host_port() {
        for ok in [
            "df://localhost:50050",
            "df://10.0.0.5:1",
            "df://[::1]:50050",
        ] {
            assert!(check_scheduler_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "localhost:50050",
            "http://localhost:50050",
            "df://localhost",
            "df://:50050",
            "df://host:port",
            "df://host:99999",
            "df://a/b:1",
        ] {
            let err = check_scheduler_address(bad).unwrap_err().to_string();
            assert!(err.contains("df://host:port"), "{bad}: {err}");
        }
    }
}
