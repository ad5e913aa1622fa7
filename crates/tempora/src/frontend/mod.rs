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

/// A call as it arrived, decoded only as far as admitting and routing it needs: the request
/// message stays in its wire bytes, which a forward sends on unchanged.
pub(crate) struct Call {
    operation: &'static str,
    /// The gRPC service the method belongs to (a forward's path).
    service: &'static str,
    namespace: Option<String>,
    route: route::Route,
    /// A poll's worker instance key and task queue (`Routed::poller`).
    poller: Option<(String, String)>,
    metadata: tonic::metadata::MetadataMap,
    message: Bytes,
}

impl Call {
    fn of<Req: gate::Namespaced + route::Routed + Message>(
        operation: &'static str,
        request: &Req,
        metadata: tonic::metadata::MetadataMap,
        message: Bytes,
    ) -> Self {
        Call {
            operation,
            service: Req::SERVICE,
            namespace: request.namespace().map(str::to_string),
            route: request.route(),
            poller: request.poller().map(|(worker, queue)| (worker.to_string(), queue.to_string())),
            metadata,
            message,
        }
    }
}

/// A call's answer in wire bytes, with the response metadata of the node that served it.
type Answer = Result<tonic::Response<Bytes>, tonic::Status>;

/// Serves a call here: its method's handler on the decoded request, the response encoded.
type ServeHere = Box<dyn FnOnce(Arc<Frontend>, tonic::metadata::MetadataMap) -> BoxFuture<Bytes, Error> + Send>;

/// One method's handler over a call's bytes.
type Handler =
    Box<dyn FnOnce(Arc<Frontend>, tonic::Request<Bytes>) -> BoxFuture<tonic::Response<Bytes>, tonic::Status> + Send>;

/// The handler of one method: decodes the request (the only per-method step besides the
/// handler itself and the response's encoding), then `Frontend::dispatch` admits, routes
/// and serves or forwards the call — one copy of that code, not one per method.
fn method<Req, Resp, F, Fut>(operation: &'static str, handler: F) -> Handler
where
    Req: gate::Namespaced + route::Routed + Message + Default + Send + 'static,
    Resp: Message + Send + 'static,
    F: FnOnce(Arc<Frontend>, tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send + 'static,
{
    Box::new(move |fe, request| {
        Box::pin(async move {
            let (metadata, extensions, message) = request.into_parts();
            // As tonic's own prost codec reports a message that does not decode.
            let request = Req::decode(message.clone()).map_err(|e| tonic::Status::internal(e.to_string()))?;
            let call = Call::of(operation, &request, metadata, message);
            let serve: ServeHere = Box::new(move |fe, metadata| {
                Box::pin(async move {
                    let response = handler(fe, tonic::Request::from_parts(metadata, extensions, request)).await?;
                    Ok(Bytes::from(response.encode_to_vec()))
                })
            });
            fe.dispatch(call, serve).await
        })
    })
}

impl Frontend {
    /// Admits a call (authentication, authorization, rate limits), then serves it here or
    /// forwards it to the node it belongs to, and counts it.
    async fn dispatch(self: Arc<Self>, call: Call, serve: ServeHere) -> Answer {
        let began = std::time::Instant::now();
        // Only namespaces that exist become label values (requests may name anything).
        let namespace = match call.namespace.as_deref() {
            Some(n) if self.svc.namespaces.exists(n) => n.to_string(),
            _ => crate::telemetry::UNKNOWN_NAMESPACE.to_string(),
        };
        let span = tracing::debug_span!("rpc", otel.name = call.operation, namespace = %namespace);
        // A call another node forwarded was authenticated, authorized and counted there.
        let admitted = match self.svc.cluster().is_some_and(|c| c.is_node_call(&call.metadata)) {
            true => Ok(gate::Admission::none()),
            false => self.gate.admit(call.operation, call.namespace.as_deref(), &call.metadata),
        };
        let admission = match admitted {
            Ok(admission) => admission,
            Err(e) => {
                crate::telemetry::request(call.operation, &namespace, began.elapsed(), Some(&e));
                return Err(e.into());
            }
        };
        let result = match self.destination_once_owned(call.operation, &call.route, &call.metadata).await {
            Ok(route::Destination::Here) => serve(self.clone(), call.metadata).instrument(span).await,
            Ok(route::Destination::Node(address)) => {
                // Served (and counted) by the node it belongs to.
                let answer = match self.forward_through_failover(&call, address).await {
                    route::Forwarded::Answer(answer) => answer,
                    route::Forwarded::ServeHere => {
                        let result = serve(self.clone(), call.metadata).instrument(span).await;
                        result.map(tonic::Response::new).map_err(tonic::Status::from)
                    }
                };
                drop(admission);
                return answer;
            }
            Ok(route::Destination::Everyone(peers)) => {
                for address in peers {
                    let (fe, metadata, message) = (self.clone(), call.metadata.clone(), call.message.clone());
                    let (service, operation) = (call.service, call.operation);
                    tokio::spawn(async move {
                        if let Err(e) = fe.forward(&address, service, operation, metadata, message).await {
                            tracing::debug!(node = %address, error = %e, operation, "call not forwarded");
                        }
                    });
                }
                serve(self.clone(), call.metadata).instrument(span).await
            }
            Err(e) => Err(e),
        };
        drop(admission);
        crate::telemetry::request(call.operation, &namespace, began.elapsed(), result.as_ref().err());
        result.map(tonic::Response::new).map_err(tonic::Status::from)
    }
}

/// The gRPC codec of every method: messages pass as their wire bytes (each method's handler
/// decodes and encodes its own types), so tonic's server path exists once in the binary
/// rather than once per method (it was a quarter of the code, and code pages are memory).
/// Tests send arbitrary bytes with it too (`tempora::testing::RawCodec`).
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len)))
    }
}

/// A method's handler as tonic's unary service.
struct Method {
    fe: Arc<Frontend>,
    handler: Option<Handler>,
}

impl UnaryService<Bytes> for Method {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        match self.handler.take() {
            Some(handler) => handler(self.fe.clone(), request),
            None => Box::pin(async { Err(tonic::Status::internal("handler called twice")) }),
        }
    }
}

fn unary<B>(fe: Arc<Frontend>, req: http::Request<B>, handler: Handler) -> BoxFuture<http::Response<Body>, Infallible>
where
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    Box::pin(async move {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let mut grpc = Grpc::new(RawCodec)
            .apply_compression_config(accept, EnabledCompressionEncodings::default())
            .apply_max_message_size_config(Some(MESSAGE_BYTES_MAX), Some(MESSAGE_BYTES_MAX));
        Ok(grpc.unary(Method { fe, handler: Some(handler) }, req).await)
    })
}

macro_rules! route {
    ($fe:expr, $req:expr, $method:expr; $($name:literal => $handler:ident),* $(,)?) => {
        match $method {
            $($name => unary($fe, $req, method($name, |fe, r| async move { fe.$handler(r).await })),)*
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
