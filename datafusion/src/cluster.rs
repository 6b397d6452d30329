//! Starting a Ballista scheduler or executor with Ballista's public functions (the
//! `oar-cluster` binary runs these; holders may equally run Ballista's own binaries).
//!
//! Ballista's gRPC and Arrow Flight traffic is not encrypted and not authenticated, and rows
//! with their unit ids move between executors during a query: a cluster must be the holder's
//! own, on a network only it reaches. The defaults bind to loopback.

use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Seconds without a heartbeat before an executor counts as lost (Ballista's default is
    /// 180; a lost executor's tasks then fail their job, see `task_max_failures`).
    pub executor_timeout_seconds: u64,
    /// How often a task may fail before its job fails (1: the first lost task fails the job).
    pub task_max_failures: usize,
    /// Executors poll for tasks (true, the default) instead of the scheduler pushing them. In
    /// our tests with Ballista 55.0.0, push scheduling did not hand a lost executor's tasks to
    /// the others: the job waited until the run's deadline. Pulled tasks were re-run.
    pub pull: bool,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 50050)),
            executor_timeout_seconds: 180,
            task_max_failures: 4,
            pull: true,
        }
    }
}

/// Runs a scheduler until the process ends.
pub async fn run_scheduler(settings: SchedulerSettings) -> Result<(), String> {
    let config = SchedulerConfig {
        bind_host: settings.bind.ip().to_string(),
        bind_port: settings.bind.port(),
        external_host: settings.bind.ip().to_string(),
        executor_timeout_seconds: settings.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: settings.executor_timeout_seconds.clamp(1, 15),
        task_max_failures: settings.task_max_failures,
        stage_max_failures: settings.task_max_failures,
        scheduling_policy: policy(settings.pull),
        // With no executor left, running jobs fail after this long instead of waiting.
        no_executors_grace_period_seconds: settings.executor_timeout_seconds,
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("could not set up the scheduler: {e}"))?;
    start_server(cluster, settings.bind, Arc::new(config))
        .await
        .map_err(|e| format!("the scheduler stopped: {e}"))
}

/// An executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler's address.
    pub scheduler: SocketAddr,
    /// Host to bind and advertise.
    pub host: String,
    /// Arrow Flight port (shuffle data is fetched from here).
    pub port: u16,
    /// gRPC port (the scheduler pushes tasks here).
    pub grpc_port: u16,
    /// Where shuffle files go (a temporary folder if None).
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (all cores if 0).
    pub concurrent_tasks: usize,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
    /// Poll the scheduler for tasks (must match the scheduler's setting).
    pub pull: bool,
}

fn policy(pull: bool) -> ballista_core::config::TaskSchedulingPolicy {
    if pull {
        ballista_core::config::TaskSchedulingPolicy::PullStaged
    } else {
        ballista_core::config::TaskSchedulingPolicy::PushStaged
    }
}

/// Runs an executor until the process ends.
pub async fn run_executor(settings: ExecutorSettings) -> Result<(), String> {
    let config = ExecutorProcessConfig {
        bind_host: settings.host.clone(),
        external_host: Some(settings.host.clone()),
        port: settings.port,
        grpc_port: settings.grpc_port,
        scheduler_host: settings.scheduler.ip().to_string(),
        scheduler_port: settings.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: settings.concurrent_tasks,
        work_dir: settings
            .work_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: settings.heartbeat_seconds,
        print_thread_info: false,
        task_scheduling_policy: policy(settings.pull),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| format!("the executor stopped: {e}"))
}
