//! The gRPC frontend: `temporal.api.workflowservice.v1.WorkflowService`.
//!
//! Requests are routed by path to `Frontend` methods, grouped by RPC family (`namespaces`,
//! `workflows`, `interactions`, `tasks`). Each converts the request into checked domain values
//! (`convert`), calls the history service, and builds the response (`views`). Only this module
//! (and `engine` for history event and command types) knows the wire protocol. Unknown methods
//! answer UNIMPLEMENTED naming the method.
//!
//! The router is written by hand over `tonic::server::Grpc` with the message types from
//! `temporalio-protos`, which ships no server traits.

mod activities;
mod batch;
mod convert;
mod deployments;
pub(crate) mod gate;
mod interactions;
mod namespaces;
mod nexus;
mod nexus_tasks;
pub(crate) mod route;
mod schedules;
pub mod status;
mod task_queues;
mod tasks;
mod views;
mod visibility;
mod workflows;

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Bytes, CompressionEncoding, EnabledCompressionEncodings, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tracing::Instrument;

use crate::error::Error;
use crate::history::Service as History;

/// The WorkflowService's handlers: convert, call the history service, respond.
pub struct Frontend {
    svc: Arc<History>,
    batches: batch::Jobs,
    configs: task_queues::Configs,
    schedules: schedules::Schedules,
    /// Authentication, authorization and rate limits, before every handler.
    gate: Arc<gate::Gate>,
    /// Itself, for background work started from a handler (`&self`).
    me: std::sync::Weak<Frontend>,
}

impl Frontend {
    /// The frontend over `svc`, with the batch jobs and records the store held at start.
    pub fn new(
        svc: Arc<History>,
        batch_jobs: Vec<crate::store::BatchJobRecord>,
        records: &[crate::store::Record],
        gate: Arc<gate::Gate>,
    ) -> Arc<Self> {
        let configs = task_queues::Configs::new(records, &svc.matching);
        Arc::new_cyclic(|me| Frontend {
            svc,
            batches: batch::Jobs::new(batch_jobs),
            configs,
            schedules: schedules::Schedules::new(records),
            gate,
            me: me.clone(),
        })
    }

    fn me(&self) -> Option<Arc<Frontend>> {
        self.me.upgrade()
    }

    /// Starts what runs on the node that keeps the registries: on a single server, at once;
    /// on a cluster, each time this node takes over `ShardId::REGISTRY` (`on_change`).
    pub(crate) fn start_registry_work(self: &Arc<Self>) {
        if self.svc.cluster().is_none() {
            self.resume_batches();
            self.run_schedules();
        }
    }

    /// What the lease loop reported, for the registries this frontend keeps (schedules, batch
    /// jobs, task queue configs): taken over with `ShardId::REGISTRY` (read again from the
    /// store, their runners resumed), let go with it (runners stopped), and configs read
    /// again whenever a node changed one (matching's rate limits follow them).
    pub(crate) async fn on_change(self: &Arc<Self>, change: &crate::cluster::Change) {
        use crate::cluster::Change;
        use crate::shard::ShardId;
        use crate::store::RecordKind;
        match change {
            Change::Lost(shards) if shards.contains(&ShardId::REGISTRY) => {
                self.schedules.let_go();
                self.batches.stop_runners();
            }
            Change::Acquired(shards) if shards.contains(&ShardId::REGISTRY) => self.take_up_registry().await,
            Change::Records(kinds) if kinds.contains(&RecordKind::TaskQueueConfig) => {
                match self.svc.store().reload_records().await {
                    Ok(records) => self.configs.reload(&records, &self.svc.matching),
                    Err(e) => tracing::warn!(error = %e, "task queue configs not reloaded"),
                }
            }
            _ => {}
        }
    }

    /// This node now keeps the registries: reads them from the store (retrying while it
    /// cannot, as long as it still holds them) and resumes schedules and batch jobs.
    async fn take_up_registry(self: &Arc<Self>) {
        let store = self.svc.store();
        loop {
            if !self.svc.holds_registry() || *self.svc.runtime().shutdown_signal().borrow() {
                return;
            }
            match tokio::try_join!(store.reload_records(), store.reload_batch_jobs()) {
                Ok((records, jobs)) => {
                    self.svc.endpoints.load(&records);
                    self.svc.deployments.load(&records);
                    self.configs.reload(&records, &self.svc.matching);
                    self.schedules.reload(&records);
                    self.batches.reload(jobs);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registries not read yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("this node keeps the registries (schedules, batch jobs, Nexus endpoints, worker deployments)");
        self.resume_batches();
        self.run_schedules();
    }

    fn checks(&self) -> convert::Checks<'_> {
        convert::Checks(self.svc.limits())
    }

    /// A start request, checked: its fields, then its search attributes against the
    /// namespace's (typed on the way in, so every later read carries their type).
    fn start_request(
        &self,
        r: temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest,
    ) -> Result<(crate::engine::workflow::StartWorkflow, crate::engine::start::StartPolicy), Error> {
        let (mut start, policy) = self.checks().start(r)?;
        if let Some(sa) = &start.search_attributes {
            let custom = self.svc.namespaces.custom_types(&start.key.namespace);
            let registry = crate::visibility::attributes::Registry { custom: &custom };
            let checked = crate::visibility::attributes::validate(sa, &registry, &start.key.namespace, false)
                .map_err(Error::InvalidArgument)?;
            start.search_attributes = Some(checked);
        }
        Ok((start, policy))
    }
}

const SERVICE: &str = "temporal.api.workflowservice.v1.WorkflowService";
const OPERATOR_SERVICE: &str = "temporal.api.operatorservice.v1.OperatorService";

/// Largest request we decode. Payload limits (`Limits::blob_bytes_max`) are enforced by the handlers with
/// Temporal's errors; this only keeps tonic's 4 MiB default from rejecting big completions.
const MESSAGE_BYTES_MAX: usize = 128 * 1024 * 1024;

#[derive(Clone)]
pub struct WorkflowServiceServer {
    fe: Arc<Frontend>,
}

impl WorkflowServiceServer {
    pub fn new(fe: Arc<Frontend>) -> Self {
        WorkflowServiceServer { fe }
    }
}

impl NamedService for WorkflowServiceServer {
    const NAME: &'static str = SERVICE;
}

struct Unary<Req, Resp, F> {
    handler: Option<F>,
    fe: Arc<Frontend>,
    /// The RPC's name, for metrics.
    operation: &'static str,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp, F, Fut> UnaryService<Req> for Unary<Req, Resp, F>
where
    Req: gate::Namespaced + route::Routed + Message + Default + Clone + Send + 'static,
    Resp: Message + Default + Send + 'static,
    F: FnOnce(Arc<Frontend>, tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<tonic::Response<Resp>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let handler = self.handler.take();
        let fe = self.fe.clone();
        let operation = self.operation;
        Box::pin(async move {
            let handler = handler.ok_or_else(|| tonic::Status::internal("handler called twice"))?;
            let began = std::time::Instant::now();
            // Only namespaces that exist become label values (requests may name anything).
            let namespace = match request.get_ref().namespace() {
                Some(n) if fe.svc.namespaces.exists(n) => n.to_string(),
                _ => crate::telemetry::UNKNOWN_NAMESPACE.to_string(),
            };
            let span = tracing::debug_span!("rpc", otel.name = operation, namespace = %namespace);
            // A call another node forwarded was authenticated, authorized and counted there.
            let admitted = match fe.svc.cluster().is_some_and(|c| c.is_node_call(request.metadata())) {
                true => Ok(gate::Admission::none()),
                false => fe.gate.admit(operation, request.get_ref().namespace(), request.metadata()),
            };
            let result = match admitted {
                Ok(admission) => {
                    let route = request.get_ref().route();
                    let result = match fe.destination(operation, route.clone(), request.metadata()) {
                        Ok(route::Destination::Here) => handler(fe, request).instrument(span).await,
                        Ok(route::Destination::Node(address)) => {
                            // Served (and counted) by the node it belongs to.
                            let answer = match fe
                                .forward_through_failover::<Req, Resp>(operation, &route, address, &request)
                                .await
                            {
                                route::Forwarded::Answer(answer) => answer,
                                route::Forwarded::ServeHere => {
                                    let result = handler(fe.clone(), request).instrument(span).await;
                                    result.map(tonic::Response::new).map_err(tonic::Status::from)
                                }
                            };
                            drop(admission);
                            return answer;
                        }
                        Ok(route::Destination::Everyone(peers)) => {
                            for address in peers {
                                let (fe, request) = (fe.clone(), clone_request(&request));
                                tokio::spawn(async move {
                                    if let Err(e) = fe.forward::<Req, Resp>(&address, operation, request).await {
                                        tracing::debug!(node = %address, error = %e, operation, "call not forwarded");
                                    }
                                });
                            }
                            handler(fe, request).instrument(span).await
                        }
                        Err(e) => Err(e),
                    };
                    drop(admission);
                    result
                }
                Err(e) => Err(e),
            };
            crate::telemetry::request(operation, &namespace, began.elapsed(), result.as_ref().err());
            result.map(tonic::Response::new).map_err(tonic::Status::from)
        })
    }
}

/// A copy of a call, with its metadata.
pub(crate) fn clone_request<Req: Clone>(request: &tonic::Request<Req>) -> tonic::Request<Req> {
    let mut copy = tonic::Request::new(request.get_ref().clone());
    *copy.metadata_mut() = request.metadata().clone();
    copy
}

fn unary<Req, Resp, B, F, Fut>(
    fe: Arc<Frontend>,
    req: http::Request<B>,
    operation: &'static str,
    handler: F,
) -> BoxFuture<http::Response<Body>, Infallible>
where
    Req: Message + Default + Clone + gate::Namespaced + route::Routed + Send + 'static,
    Resp: Message + Default + Send + 'static,
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    F: FnOnce(Arc<Frontend>, tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send + 'static,
{
    Box::pin(async move {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let mut grpc = Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default())
            .apply_compression_config(accept, EnabledCompressionEncodings::default())
            .apply_max_message_size_config(Some(MESSAGE_BYTES_MAX), Some(MESSAGE_BYTES_MAX));
        let service = Unary { handler: Some(handler), fe, operation, _types: PhantomData };
        Ok(grpc.unary(service, req).await)
    })
}

macro_rules! route {
    ($fe:expr, $req:expr, $method:expr; $($name:literal => $handler:ident),* $(,)?) => {
        match $method {
            $($name => unary($fe, $req, $name, |fe, r| async move { fe.$handler(r).await }),)*
            other => {
                let status = tonic::Status::unimplemented(format!("method {other} is not implemented by tempora"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    };
}

impl<B> Service<http::Request<B>> for WorkflowServiceServer
where
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let method = path.rsplit('/').next().unwrap_or_default().to_string();
        let fe = self.fe.clone();
        route!(fe, req, method.as_str();
            "GetSystemInfo" => get_system_info,
            "GetClusterInfo" => get_cluster_info,
            "DescribeNamespace" => describe_namespace,
            "ListNamespaces" => list_namespaces,
            "RegisterNamespace" => register_namespace,
            "UpdateNamespace" => update_namespace,
            "StartWorkflowExecution" => start_workflow_execution,
            "SignalWithStartWorkflowExecution" => signal_with_start_workflow_execution,
            "SignalWorkflowExecution" => signal_workflow_execution,
            "RequestCancelWorkflowExecution" => request_cancel_workflow_execution,
            "QueryWorkflow" => query_workflow,
            "ResetStickyTaskQueue" => reset_sticky_task_queue,
            "DeleteWorkflowExecution" => delete_workflow_execution,
            "ResetWorkflowExecution" => reset_workflow_execution,
            "UpdateWorkflowExecution" => update_workflow_execution,
            "PollWorkflowExecutionUpdate" => poll_workflow_execution_update,
            "ExecuteMultiOperation" => execute_multi_operation,
            "RespondQueryTaskCompleted" => respond_query_task_completed,
            "GetWorkflowExecutionHistory" => get_workflow_execution_history,
            "DescribeWorkflowExecution" => describe_workflow_execution,
            "PollWorkflowTaskQueue" => poll_workflow_task_queue,
            "RespondWorkflowTaskCompleted" => respond_workflow_task_completed,
            "RespondWorkflowTaskFailed" => respond_workflow_task_failed,
            "PollActivityTaskQueue" => poll_activity_task_queue,
            "RespondActivityTaskCompleted" => respond_activity_task_completed,
            "RespondActivityTaskCompletedById" => respond_activity_task_completed_by_id,
            "RespondActivityTaskFailed" => respond_activity_task_failed,
            "RespondActivityTaskFailedById" => respond_activity_task_failed_by_id,
            "RespondActivityTaskCanceled" => respond_activity_task_canceled,
            "RespondActivityTaskCanceledById" => respond_activity_task_canceled_by_id,
            "RecordActivityTaskHeartbeat" => record_activity_task_heartbeat,
            "RecordActivityTaskHeartbeatById" => record_activity_task_heartbeat_by_id,
            "ShutdownWorker" => shutdown_worker,
            "PollNexusTaskQueue" => poll_nexus_task_queue,
            "RespondNexusTaskCompleted" => respond_nexus_task_completed,
            "RespondNexusTaskFailed" => respond_nexus_task_failed,
            "TerminateWorkflowExecution" => terminate_workflow_execution,
            "PauseActivity" => pause_activity,
            "UnpauseActivity" => unpause_activity,
            "ResetActivity" => reset_activity,
            "UpdateActivityOptions" => update_activity_options,
            "PauseActivityExecution" => pause_activity_execution,
            "UnpauseActivityExecution" => unpause_activity_execution,
            "ResetActivityExecution" => reset_activity_execution,
            "UpdateActivityExecutionOptions" => update_activity_execution_options,
            "UpdateWorkflowExecutionOptions" => update_workflow_execution_options,
            "ListWorkflowExecutions" => list_workflow_executions,
            "ScanWorkflowExecutions" => scan_workflow_executions,
            "ListOpenWorkflowExecutions" => list_open_workflow_executions,
            "ListClosedWorkflowExecutions" => list_closed_workflow_executions,
            "CountWorkflowExecutions" => count_workflow_executions,
            "GetSearchAttributes" => get_search_attributes,
            "ListArchivedWorkflowExecutions" => list_archived_workflow_executions,
            "GetWorkflowExecutionHistoryReverse" => get_workflow_execution_history_reverse,
            "DescribeTaskQueue" => describe_task_queue,
            "ListTaskQueuePartitions" => list_task_queue_partitions,
            "UpdateTaskQueueConfig" => update_task_queue_config,
            "StartBatchOperation" => start_batch_operation,
            "DescribeBatchOperation" => describe_batch_operation,
            "ListBatchOperations" => list_batch_operations,
            "StopBatchOperation" => stop_batch_operation,
            "UpdateWorkerBuildIdCompatibility" => update_worker_build_id_compatibility,
            "GetWorkerBuildIdCompatibility" => get_worker_build_id_compatibility,
            "GetWorkerTaskReachability" => get_worker_task_reachability,
            "UpdateWorkerVersioningRules" => update_worker_versioning_rules,
            "GetWorkerVersioningRules" => get_worker_versioning_rules,
            "CreateSchedule" => create_schedule,
            "DescribeSchedule" => describe_schedule,
            "UpdateSchedule" => update_schedule,
            "PatchSchedule" => patch_schedule,
            "DeleteSchedule" => delete_schedule,
            "ListSchedules" => list_schedules,
            "CountSchedules" => count_schedules,
            "ListScheduleMatchingTimes" => list_schedule_matching_times,
            "DescribeWorkerDeployment" => describe_worker_deployment,
            "ListWorkerDeployments" => list_worker_deployments,
            "SetWorkerDeploymentCurrentVersion" => set_worker_deployment_current_version,
            "SetWorkerDeploymentRampingVersion" => set_worker_deployment_ramping_version,
            "DescribeWorkerDeploymentVersion" => describe_worker_deployment_version,
            "DeleteWorkerDeploymentVersion" => delete_worker_deployment_version,
            "DeleteWorkerDeployment" => delete_worker_deployment,
            "UpdateWorkerDeploymentVersionMetadata" => update_worker_deployment_version_metadata,
            "SetWorkerDeploymentManager" => set_worker_deployment_manager,
        )
    }
}

/// Temporal's `OperatorService`: search attributes, namespaces, clusters and Nexus endpoints;
/// other methods answer UNIMPLEMENTED naming themselves.
#[derive(Clone)]
pub struct OperatorServiceServer {
    fe: Arc<Frontend>,
}

impl OperatorServiceServer {
    pub fn new(fe: Arc<Frontend>) -> Self {
        OperatorServiceServer { fe }
    }
}

impl NamedService for OperatorServiceServer {
    const NAME: &'static str = OPERATOR_SERVICE;
}

impl<B> Service<http::Request<B>> for OperatorServiceServer
where
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default().to_string();
        let fe = self.fe.clone();
        route!(fe, req, method.as_str();
            "AddSearchAttributes" => add_search_attributes,
            "RemoveSearchAttributes" => remove_search_attributes,
            "ListSearchAttributes" => list_search_attributes,
            "DeleteNamespace" => delete_namespace,
            "ListClusters" => list_clusters,
            "CreateNexusEndpoint" => create_nexus_endpoint,
            "UpdateNexusEndpoint" => update_nexus_endpoint,
            "DeleteNexusEndpoint" => delete_nexus_endpoint,
            "GetNexusEndpoint" => get_nexus_endpoint,
            "ListNexusEndpoints" => list_nexus_endpoints,
        )
    }
}
