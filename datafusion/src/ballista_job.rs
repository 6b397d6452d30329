//! One query as a Ballista job, run so that the host can take it back: submitted to the
//! scheduler as a physical plan built here, polled until it ends, its result partitions fetched
//! from where the scheduler says. Unlike Ballista's own client, this keeps the job id, so a job
//! still running when the run's deadline passes is cancelled on the cluster instead of running
//! on with no one to read it.

use ballista_core::client::BallistaClient;
use ballista_core::config::BallistaConfig;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::get_job_status_result::FlightProxy;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{
    execute_query_params, execute_query_result, job_status, CancelJobParams, ExecuteQueryParams,
    GetJobStatusParams, KeyValuePair, PartitionLocation,
};
use ballista_core::utils::{create_grpc_client_endpoint, GrpcClientConfig};
use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a running job's status is asked for.
const POLL: Duration = Duration::from_millis(50);

/// Told to a running job by the host: stop, and cancel the job on the cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks the job to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The ids of jobs this backend cancelled on its cluster, for operators' logs and tests.
pub(crate) type Cancelled = Arc<Mutex<Vec<String>>>;

type Scheduler = SchedulerGrpcClient<tonic::transport::Channel>;

fn execution(e: impl std::fmt::Debug) -> DataFusionError {
    DataFusionError::External(format!("{e:?}").into())
}

/// Why a job ended without a result when the host asked it to stop.
fn stopped() -> DataFusionError {
    DataFusionError::External("stopped at the deadline".into())
}

/// Runs `plan` on the cluster at `url` (`http://host:port`) and gathers its result. If `stop` is
/// set while the job runs (or once the scheduler has accepted it), the job is cancelled there
/// and its id added to `cancelled`.
pub(crate) async fn run(
    url: String,
    plan: Arc<dyn ExecutionPlan>,
    config: SessionConfig,
    session_id: String,
    stop: Stop,
    cancelled: Cancelled,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    let codec = config.ballista_physical_extension_codec();
    let mut buf = Vec::new();
    PhysicalPlanNode::try_from_physical_plan(plan, codec.as_ref())?
        .try_encode(&mut buf)
        .map_err(execution)?;
    let settings = config
        .options()
        .entries()
        .into_iter()
        .map(|e| KeyValuePair {
            key: e.key,
            value: e.value,
        })
        .collect();
    let ballista = BallistaConfig::default();
    let grpc = GrpcClientConfig::from(&ballista);
    let max_message_size = ballista.grpc_client_max_message_size();
    let channel = create_grpc_client_endpoint(url.clone(), Some(&grpc))
        .map_err(execution)?
        .connect()
        .await
        .map_err(execution)?;
    let mut scheduler = SchedulerGrpcClient::new(channel)
        .max_encoding_message_size(max_message_size)
        .max_decoding_message_size(max_message_size);

    let mut request = tonic::Request::new(ExecuteQueryParams {
        query: Some(execute_query_params::Query::PhysicalPlan(buf)),
        settings,
        session_id,
        operation_id: String::new(),
    });
    ballista_core::version::insert_version_header(request.metadata_mut());
    let response = scheduler.execute_query(request).await.map_err(execution)?;
    let version = ballista_core::version::check_compatibility(
        Some(ballista_core::BALLISTA_VERSION),
        ballista_core::version::version_from_metadata(response.metadata()),
    );
    let job_id = match response.into_inner().result {
        Some(execute_query_result::Result::Success(s)) => s.job_id,
        other => {
            version.map_err(DataFusionError::Execution)?;
            return Err(execution(other));
        }
    };
    if let Err(e) = version {
        // An older scheduler queued the job without checking the version.
        cancel(&mut scheduler, &job_id, &cancelled).await;
        return Err(DataFusionError::Execution(e));
    }

    loop {
        if stop.stopped() {
            cancel(&mut scheduler, &job_id, &cancelled).await;
            return Err(stopped());
        }
        let status = scheduler
            .get_job_status(GetJobStatusParams {
                job_id: job_id.clone(),
            })
            .await
            .map_err(execution)?
            .into_inner();
        match status.status.and_then(|s| s.status) {
            None | Some(job_status::Status::Queued(_)) | Some(job_status::Status::Running(_)) => {
                tokio::time::sleep(POLL).await
            }
            Some(job_status::Status::Failed(_)) => {
                return Err(DataFusionError::External("the cluster job failed".into()))
            }
            Some(job_status::Status::Successful(done)) => {
                let mut batches = Vec::new();
                for location in done.partition_location {
                    if stop.stopped() {
                        return Err(stopped());
                    }
                    let stream = fetch(
                        location,
                        &url,
                        &status.flight_proxy,
                        max_message_size,
                        &grpc,
                    )
                    .await?;
                    batches.extend(datafusion::physical_plan::common::collect(stream).await?);
                }
                return Ok(batches);
            }
        }
    }
}

/// Cancels `job_id` on the cluster (best effort: a scheduler that cannot be reached has lost the
/// job anyway) and records it.
async fn cancel(scheduler: &mut Scheduler, job_id: &str, cancelled: &Cancelled) {
    let sent = scheduler
        .cancel_job(CancelJobParams {
            job_id: job_id.to_string(),
        })
        .await;
    match sent {
        Ok(_) => {
            tracing::warn!(job = %job_id, "cancelled the Ballista job at the run's deadline");
            cancelled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(job_id.to_string());
        }
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "could not cancel the Ballista job at the run's deadline")
        }
    }
}

/// The stream of one result partition, from its executor or the scheduler's flight proxy.
async fn fetch(
    location: PartitionLocation,
    scheduler_url: &str,
    proxy: &Option<FlightProxy>,
    max_message_size: usize,
    grpc: &GrpcClientConfig,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, DataFusionError> {
    let layout = location.layout();
    let (Some(executor), Some(partition)) = (location.executor_meta, location.partition_id) else {
        return Err(DataFusionError::External(
            "the scheduler named a result partition without its executor".into(),
        ));
    };
    let (host, port) = match proxy {
        Some(FlightProxy::External(address)) => split_host_port(&format!("http://{address}"))?,
        Some(FlightProxy::Local(true)) => split_host_port(scheduler_url)?,
        Some(FlightProxy::Local(false)) | None => (executor.host.clone(), executor.port as u16),
    };
    let mut client = BallistaClient::try_new(
        &host,
        port,
        max_message_size,
        grpc.use_tls,
        None,
        3,
        100,
        0,
        0,
    )
    .await
    .map_err(execution)?;
    client
        .fetch_partition_proxied(
            &executor.id,
            &partition.into(),
            location.file_id,
            layout,
            &executor.host,
            executor.port as u16,
            true,
        )
        .await
        .map_err(|e| e.into_datafusion())
}

fn split_host_port(url: &str) -> Result<(String, u16), DataFusionError> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| DataFusionError::External("a flight proxy address without a port".into()))?;
    let port = port
        .parse()
        .map_err(|_| DataFusionError::External("a flight proxy address with a bad port".into()))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses_split_into_host_and_port() {
        assert_eq!(
            split_host_port("http://10.0.0.5:50050").unwrap(),
            ("10.0.0.5".to_string(), 50050)
        );
        assert_eq!(
            split_host_port("http://sched.local:50050/").unwrap(),
            ("sched.local".to_string(), 50050)
        );
        assert!(split_host_port("http://nowhere").is_err());
    }
}
