//! `oar-cluster`: a Ballista scheduler or executor for OAR's DataFusion backend, on Ballista's
//! public functions.
//!
//! ```text
//! oar-cluster scheduler [--bind 127.0.0.1:50050] [--executor-timeout SECS] [--task-max-failures N] [--push]
//! oar-cluster executor  [--scheduler 127.0.0.1:50050] [--host 127.0.0.1] [--port 50051]
//!                       [--grpc-port 50052] [--work-dir DIR] [--concurrent-tasks N] [--heartbeat SECS] [--push]
//! ```
//!
//! Point a host at the scheduler with `query_engine = "ballista"` and
//! `ballista_scheduler = "df://HOST:PORT"`. The traffic is not encrypted: run the cluster on the
//! holder's own network (see the README).

use oar_datafusion::cluster::{run_executor, run_scheduler, ExecutorSettings, SchedulerSettings};
use std::process::ExitCode;

const USAGE: &str = "usage:
  oar-cluster scheduler [--bind 127.0.0.1:50050] [--executor-timeout SECS] [--task-max-failures N] [--push]
  oar-cluster executor  [--scheduler 127.0.0.1:50050] [--host 127.0.0.1] [--port 50051]
                        [--grpc-port 50052] [--work-dir DIR] [--concurrent-tasks N] [--heartbeat SECS] [--push]";

fn main() -> ExitCode {
    // Ballista logs through `log` and `tracing`; RUST_LOG picks the level (info by default).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_and_run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oar-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    v.parse()
        .map_err(|_| format!("{flag}: '{v}' is not a valid value\n{USAGE}"))
}

fn parse_and_run(args: &[String]) -> Result<(), String> {
    let (role, flags) = args.split_first().ok_or_else(|| USAGE.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .map_err(|e| format!("could not start the runtime: {e}"))?;
    let mut it = flags.iter();
    match role.as_str() {
        "scheduler" => {
            let mut s = SchedulerSettings::default();
            while let Some(flag) = it.next() {
                match flag.as_str() {
                    "--bind" => s.bind = value(flag, it.next())?,
                    "--executor-timeout" => s.executor_timeout_seconds = value(flag, it.next())?,
                    "--task-max-failures" => s.task_max_failures = value(flag, it.next())?,
                    "--push" => s.pull = false,
                    other => return Err(format!("unknown flag '{other}'\n{USAGE}")),
                }
            }
            runtime.block_on(run_scheduler(s))
        }
        "executor" => {
            let mut s = ExecutorSettings {
                scheduler: "127.0.0.1:50050".parse().expect("valid address"),
                host: "127.0.0.1".into(),
                port: 50051,
                grpc_port: 50052,
                work_dir: None,
                concurrent_tasks: 0,
                heartbeat_seconds: 60,
                pull: true,
            };
            while let Some(flag) = it.next() {
                match flag.as_str() {
                    "--scheduler" => s.scheduler = value(flag, it.next())?,
                    "--host" => s.host = value(flag, it.next())?,
                    "--port" => s.port = value(flag, it.next())?,
                    "--grpc-port" => s.grpc_port = value(flag, it.next())?,
                    "--work-dir" => s.work_dir = Some(value(flag, it.next())?),
                    "--concurrent-tasks" => s.concurrent_tasks = value(flag, it.next())?,
                    "--heartbeat" => s.heartbeat_seconds = value(flag, it.next())?,
                    "--push" => s.pull = false,
                    other => return Err(format!("unknown flag '{other}'\n{USAGE}")),
                }
            }
            runtime.block_on(run_executor(s))
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown role '{other}'\n{USAGE}")),
    }
}
