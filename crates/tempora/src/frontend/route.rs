//! Where a request is served on a cluster: calls about a workflow id go to the node that
//! serves its shard, polls and task-queue calls to the node that is the queue's home, calls on
//! the registries (schedules, batch jobs, Nexus endpoints, worker deployments, task queue
//! configs) to the node that keeps them (the holder of `ShardId::REGISTRY`), a worker's
//! shutdown to every node (its polls may wait on any of them); the rest (namespaces,
//! visibility, reads of the database) are answered by whichever node received them. The
//! frontend's `Unary` wrapper forwards a call that belongs elsewhere, unchanged, with the
//! `tempora-forwarded` header; a forwarded call is never forwarded again (its receiver serves
//! it or answers UNAVAILABLE, which the SDKs retry).

use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::operatorservice::v1 as ops;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;

use crate::cluster::unserved;
use crate::shard::ShardId;

/// Set on a call one node forwards to another.
pub(crate) const FORWARDED: &str = "tempora-forwarded";

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Route {
    /// Whichever node received it.
    Here,
    /// The node serving this workflow id.
    Run { namespace: String, workflow_id: String },
    /// The home of this task queue.
    Queue { namespace: String, task_queue: String },
    /// The node that keeps the registries.
    Registry,
    /// This node, then every other one.
    Everywhere,
}

impl Route {
    fn run(namespace: &str, workflow_id: &str) -> Self {
        match workflow_id.is_empty() {
            true => Route::Here,
            false => Route::Run { namespace: namespace.into(), workflow_id: workflow_id.into() },
        }
    }

    fn execution(namespace: &str, execution: &Option<WorkflowExecution>) -> Self {
        execution.as_ref().map_or(Route::Here, |e| Route::run(namespace, &e.workflow_id))
    }

    /// A task token names its run; one that does not parse is refused where it arrived.
    fn token(token: &[u8]) -> Self {
        match <crate::token::TaskToken as prost::Message>::decode(token) {
            Ok(t) => Route::run(&t.namespace, &t.workflow_id),
            Err(_) => Route::Here,
        }
    }

    fn queue(namespace: &str, task_queue: &str) -> Self {
        match task_queue.is_empty() {
            true => Route::Here,
            false => Route::Queue { namespace: namespace.into(), task_queue: task_queue.into() },
        }
    }
}

/// Where each request type goes.
pub(crate) trait Routed {
    /// The gRPC service the request belongs to (for a forward).
    const SERVICE: &'static str = super::SERVICE;

    fn route(&self) -> Route {
        Route::Here
    }

    /// A poll's worker instance key and task queue: while the poll waits out a failover here,
    /// that worker's `ShutdownWorker` ends it (as it ends the polls waiting in matching).
    fn poller(&self) -> Option<(&str, &str)> {
        None
    }
}

macro_rules! here {
    ($($t:ty),* $(,)?) => { $(impl Routed for $t {})* };
}

macro_rules! routed {
    ($($t:ty => |$r:ident| $e:expr),* $(,)?) => {
        $(impl Routed for $t {
            fn route(&self) -> Route {
                let $r = self;
                $e
            }
        })*
    };
}

routed!(
    ws::StartWorkflowExecutionRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::SignalWithStartWorkflowExecutionRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::SignalWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::RequestCancelWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::TerminateWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::QueryWorkflowRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::ResetStickyTaskQueueRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::DeleteWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::ResetWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::UpdateWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::UpdateWorkflowExecutionOptionsRequest => |r| Route::execution(&r.namespace, &r.workflow_execution),
    ws::PollWorkflowExecutionUpdateRequest => |r| {
        Route::execution(&r.namespace, &r.update_ref.as_ref().and_then(|u| u.workflow_execution.clone()))
    },
    ws::ExecuteMultiOperationRequest => |r| {
        use ws::execute_multi_operation_request::operation::Operation;
        let start = r.operations.iter().find_map(|o| match &o.operation {
            Some(Operation::StartWorkflow(s)) => Some(s.workflow_id.as_str()),
            _ => None,
        });
        Route::run(&r.namespace, start.unwrap_or_default())
    },
    ws::GetWorkflowExecutionHistoryRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::GetWorkflowExecutionHistoryReverseRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::DescribeWorkflowExecutionRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::RespondQueryTaskCompletedRequest => |r| Route::token(&r.task_token),
    ws::RespondWorkflowTaskCompletedRequest => |r| Route::token(&r.task_token),
    ws::RespondWorkflowTaskFailedRequest => |r| Route::token(&r.task_token),
    ws::RespondActivityTaskCompletedRequest => |r| Route::token(&r.task_token),
    ws::RespondActivityTaskFailedRequest => |r| Route::token(&r.task_token),
    ws::RespondActivityTaskCanceledRequest => |r| Route::token(&r.task_token),
    ws::RecordActivityTaskHeartbeatRequest => |r| Route::token(&r.task_token),
    ws::RespondActivityTaskCompletedByIdRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::RespondActivityTaskFailedByIdRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::RespondActivityTaskCanceledByIdRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::RecordActivityTaskHeartbeatByIdRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::PauseActivityRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::UnpauseActivityRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::ResetActivityRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::UpdateActivityOptionsRequest => |r| Route::execution(&r.namespace, &r.execution),
    ws::PauseActivityExecutionRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::UnpauseActivityExecutionRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::ResetActivityExecutionRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::UpdateActivityExecutionOptionsRequest => |r| Route::run(&r.namespace, &r.workflow_id),
    ws::RespondNexusTaskCompletedRequest => |r| Route::token(&r.task_token),
    ws::RespondNexusTaskFailedRequest => |r| Route::token(&r.task_token),
    ws::DescribeTaskQueueRequest => |r| Route::queue(&r.namespace, r.task_queue.as_ref().map_or("", |q| &q.name)),
    ws::ShutdownWorkerRequest => |_r| Route::Everywhere,
);

macro_rules! polls {
    ($($t:ty),* $(,)?) => {
        $(impl Routed for $t {
            fn route(&self) -> Route {
                Route::queue(&self.namespace, self.task_queue.as_ref().map_or("", |q| &q.name))
            }

            fn poller(&self) -> Option<(&str, &str)> {
                let queue = self.task_queue.as_ref().map_or("", |q| q.name.as_str());
                (!self.worker_instance_key.is_empty()).then_some((self.worker_instance_key.as_str(), queue))
            }
        })*
    };
}

polls!(ws::PollWorkflowTaskQueueRequest, ws::PollActivityTaskQueueRequest, ws::PollNexusTaskQueueRequest);

macro_rules! registry {
    ($($t:ty),* $(,)?) => {
        $(impl Routed for $t {
            fn route(&self) -> Route {
                Route::Registry
            }
        })*
    };
}

macro_rules! operator_registry {
    ($($t:ty),* $(,)?) => {
        $(impl Routed for $t {
            const SERVICE: &'static str = super::OPERATOR_SERVICE;

            fn route(&self) -> Route {
                Route::Registry
            }
        })*
    };
}

registry!(
    ws::UpdateTaskQueueConfigRequest,
    ws::StartBatchOperationRequest,
    ws::DescribeBatchOperationRequest,
    ws::ListBatchOperationsRequest,
    ws::StopBatchOperationRequest,
    ws::CreateScheduleRequest,
    ws::DescribeScheduleRequest,
    ws::UpdateScheduleRequest,
    ws::PatchScheduleRequest,
    ws::DeleteScheduleRequest,
    ws::ListSchedulesRequest,
    ws::CountSchedulesRequest,
    ws::ListScheduleMatchingTimesRequest,
    ws::DescribeWorkerDeploymentRequest,
    ws::ListWorkerDeploymentsRequest,
    ws::SetWorkerDeploymentCurrentVersionRequest,
    ws::SetWorkerDeploymentRampingVersionRequest,
    ws::DescribeWorkerDeploymentVersionRequest,
    ws::DeleteWorkerDeploymentVersionRequest,
    ws::DeleteWorkerDeploymentRequest,
    ws::UpdateWorkerDeploymentVersionMetadataRequest,
    ws::SetWorkerDeploymentManagerRequest,
);

operator_registry!(
    ops::CreateNexusEndpointRequest,
    ops::UpdateNexusEndpointRequest,
    ops::DeleteNexusEndpointRequest,
    ops::GetNexusEndpointRequest,
    ops::ListNexusEndpointsRequest,
);

here!(
    ws::GetSystemInfoRequest,
    ws::GetClusterInfoRequest,
    ws::DescribeNamespaceRequest,
    ws::ListNamespacesRequest,
    ws::RegisterNamespaceRequest,
    ws::UpdateNamespaceRequest,
    ws::ListWorkflowExecutionsRequest,
    ws::ScanWorkflowExecutionsRequest,
    ws::ListOpenWorkflowExecutionsRequest,
    ws::ListClosedWorkflowExecutionsRequest,
    ws::CountWorkflowExecutionsRequest,
    ws::GetSearchAttributesRequest,
    ws::ListArchivedWorkflowExecutionsRequest,
    ws::ListTaskQueuePartitionsRequest,
    ws::UpdateWorkerBuildIdCompatibilityRequest,
    ws::GetWorkerBuildIdCompatibilityRequest,
    ws::GetWorkerTaskReachabilityRequest,
    ws::UpdateWorkerVersioningRulesRequest,
    ws::GetWorkerVersioningRulesRequest,
    ops::AddSearchAttributesRequest,
    ops::RemoveSearchAttributesRequest,
    ops::ListSearchAttributesRequest,
    ops::DeleteNamespaceRequest,
    ops::ListClustersRequest,
);

/// How long a client's call waits for its shard to find an owner (a rebalance's handover
/// takes a few hundred milliseconds; a dead node's lapsed lease is taken within a lease round).
const OWNERLESS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const OWNERLESS_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How long past the lease TTL a call waits for an unreachable node's shards to move.
const FAILOVER_SLACK: std::time::Duration = std::time::Duration::from_secs(5);
const FAILOVER_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// What became of a forwarded call.
pub(crate) enum Forwarded {
    /// The answer of the node that served it (or why it could not be sent).
    Answer(super::Answer),
    /// Its shard moved here while it waited: serve it here.
    ServeHere,
}

/// A forward that failed in the transport (no connection, or the connection died under it):
/// the status is the client's own — no answer came back, so no metadata — and tonic gives it
/// as UNAVAILABLE, UNKNOWN "transport error" (a refused connection) or CANCELLED "operation
/// was canceled" (a connection closed under the request). A call that a node answered always
/// comes back with that node's headers. If the node applied the call before it died, sending
/// it to the new owner is what the SDK's own retry would do.
fn undelivered(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled)
        && status.metadata().is_empty()
}

/// Where a call received here is served.
pub(crate) enum Destination {
    Here,
    /// Forwarded to this node.
    Node(String),
    /// Here, and forwarded to each of these nodes.
    Everyone(Vec<String>),
}

impl super::Frontend {
    /// Where a call goes; UNAVAILABLE while its shard has no live owner (a failover).
    pub(crate) fn destination(
        &self,
        operation: &str,
        route: Route,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Destination, crate::error::Error> {
        self.destination_or_ownerless(operation, route, metadata)?.map_err(unserved)
    }

    /// Where a call received from a client goes. A shard between owners (one node let it go
    /// and the next has not taken it yet, as when nodes join or leave) is waited for, up to
    /// `OWNERLESS_WAIT`, so a rebalance does not bounce clients' calls; past that, UNAVAILABLE.
    pub(crate) async fn destination_once_owned(
        &self,
        operation: &str,
        route: &Route,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Destination, crate::error::Error> {
        let give_up = tokio::time::Instant::now() + OWNERLESS_WAIT;
        loop {
            match self.destination_or_ownerless(operation, route.clone(), metadata)? {
                Ok(destination) => return Ok(destination),
                Err(shard) if tokio::time::Instant::now() >= give_up => return Err(unserved(shard)),
                Err(_) => tokio::time::sleep(OWNERLESS_POLL).await,
            }
        }
    }

    /// Where a call goes, or the shard that has no live owner at the moment.
    fn destination_or_ownerless(
        &self,
        operation: &str,
        route: Route,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Result<Destination, ShardId>, crate::error::Error> {
        let _ = operation;
        let Some(cluster) = self.svc.cluster() else { return Ok(Ok(Destination::Here)) };
        // A forwarded call is served here; on a cluster with a secret, only if another node sent
        // it (a client cannot pin its call to a node by setting the header).
        if metadata.contains_key(FORWARDED) && (!cluster.has_secret() || cluster.is_node_call(metadata)) {
            if route == Route::Registry && !self.svc.holds_registry() {
                // The sender's view is stale: answering from this node's copy could be stale too.
                return Err(crate::error::Error::Unavailable(
                    "the registries are not kept by this node at the moment; retry".into(),
                ));
            }
            return Ok(Ok(Destination::Here));
        }
        Ok(self.target(&route, cluster))
    }

    /// A call this frontend makes on its own behalf (a batch job's operation on one run, a
    /// schedule's watch of a run), sent where a client's call would be served: the answer of
    /// the node that served it, or `Err(request)` handed back to be served here.
    pub(crate) async fn elsewhere<Req, Resp>(
        &self,
        operation: &'static str,
        request: Req,
    ) -> Result<Result<Resp, Req>, crate::error::Error>
    where
        Req: Routed + super::gate::Namespaced + prost::Message,
        Resp: prost::Message + Default,
    {
        let Some(cluster) = self.svc.cluster() else { return Ok(Err(request)) };
        let Destination::Node(address) = self.target(&request.route(), cluster).map_err(unserved)? else {
            return Ok(Err(request));
        };
        let message = request.encode_to_vec().into();
        let call = super::Call::of(operation, &request, Default::default(), message);
        match self.forward_through_failover(&call, address).await {
            Forwarded::Answer(Ok(response)) => Resp::decode(response.into_inner())
                .map_err(|e| crate::error::Error::Internal(format!("{operation} answer: {e}")))
                .map(Ok),
            Forwarded::Answer(Err(status)) => Err(crate::error::Error::from_status(&status)),
            Forwarded::ServeHere => Ok(Err(request)),
        }
    }

    /// Where a call for `route` goes, or the shard that has no live owner at the moment.
    fn target(&self, route: &Route, cluster: &crate::cluster::Cluster) -> Result<Destination, ShardId> {
        use crate::cluster::Placement;
        let placement = match route {
            Route::Here => return Ok(Destination::Here),
            Route::Everywhere => return Ok(Destination::Everyone(cluster.peers())),
            Route::Run { namespace, workflow_id } => self.svc.run_placement(namespace, workflow_id),
            Route::Queue { namespace, task_queue } => self.svc.queue_placement(namespace, task_queue),
            Route::Registry => self.svc.registry_placement(),
        };
        match placement {
            Placement::Local => Ok(Destination::Here),
            Placement::Remote(address) => Ok(Destination::Node(address)),
            Placement::Unknown(shard) => Err(shard),
        }
    }

    /// Resolves once the node at `address` is no longer a member (it died, was paused past
    /// its leases or cut off, and its shards moved): a call forwarded there is abandoned with
    /// UNAVAILABLE, which the SDKs retry, rather than left waiting on a node that will not
    /// answer. A node that is alive and only gave the shard away finishes the call itself
    /// (cutting it short could lose a task it just started for the caller).
    pub(crate) async fn moved_from(&self, _route: &Route, address: &str) {
        let Some(cluster) = self.svc.cluster() else { return std::future::pending().await };
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if !cluster.is_peer(address) {
                return;
            }
        }
    }

    /// Forwards a call to the node at `address`. While that node cannot be reached (it died, or
    /// is cut off, and its leases have not lapsed yet — up to the lease TTL), the call was never
    /// delivered: it waits for the shard to move and goes where it went, or is served here.
    pub(crate) async fn forward_through_failover(&self, call: &super::Call, mut address: String) -> Forwarded {
        let give_up = tokio::time::Instant::now() + crate::cluster::leases::TTL + FAILOVER_SLACK;
        loop {
            let answer = tokio::select! {
                answer = self.forward(&address, call.service, call.operation, call.metadata.clone(), call.message.clone()) => answer,
                // Sent, perhaps applied: not sent again (the caller's retry decides).
                _ = self.moved_from(&call.route, &address) => return Forwarded::Answer(Err(tonic::Status::unavailable(
                    format!("node {address} stopped serving this call's shard; retry"),
                ))),
            };
            match answer {
                Err(status) if undelivered(&status) && tokio::time::Instant::now() < give_up => {}
                answer => return Forwarded::Answer(answer),
            }
            // Wait for the view to move the shard away from the unreachable node. Nothing is in
            // flight meanwhile, so a poll whose worker shuts down can answer empty (no task).
            let stopped =
                call.poller.as_ref().map(|(worker, queue)| self.svc.matching.worker(worker, queue)).unwrap_or_default();
            let next = loop {
                tokio::select! {
                    _ = tokio::time::sleep(FAILOVER_POLL) => {}
                    _ = stopped.cancelled() => return Forwarded::Answer(Ok(tonic::Response::new(Default::default()))),
                }
                match self.destination(call.operation, call.route.clone(), &call.metadata) {
                    Ok(Destination::Node(a)) if a == address && tokio::time::Instant::now() < give_up => continue,
                    Ok(Destination::Node(a)) if a == address => {
                        return Forwarded::Answer(Err(tonic::Status::unavailable(format!(
                            "node {address} is unreachable and its shards have not moved yet; retry"
                        ))))
                    }
                    Err(e) if tokio::time::Instant::now() < give_up => {
                        tracing::debug!(error = %e, "waiting for a shard to find an owner");
                        continue;
                    }
                    other => break other,
                }
            };
            match next {
                Ok(Destination::Node(a)) => address = a,
                Ok(_) => return Forwarded::ServeHere,
                Err(e) => return Forwarded::Answer(Err(e.into())),
            }
        }
    }

    /// Sends a call to the node that serves it, as it came (its message's bytes, its
    /// credentials), and hands back that node's answer.
    pub(crate) async fn forward(
        &self,
        address: &str,
        service: &str,
        operation: &str,
        mut metadata: tonic::metadata::MetadataMap,
        message: tonic::codegen::Bytes,
    ) -> super::Answer {
        let cluster = self.svc.cluster().ok_or_else(|| tonic::Status::internal("not in a cluster"))?;
        let peer = cluster.channel(address).map_err(tonic::Status::from)?;
        metadata.insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        peer.sign(&mut metadata);
        let mut grpc = tonic::client::Grpc::new(peer.channel.clone())
            .max_decoding_message_size(super::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(super::MESSAGE_BYTES_MAX);
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("node {address} unreachable: {e}")))?;
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(format!("/{service}/{operation}"))
            .map_err(|e| tonic::Status::internal(format!("forwarding {operation}: {e}")))?;
        let request = tonic::Request::from_parts(metadata, Default::default(), message);
        grpc.unary(request, path, super::RawCodec).await
    }
}
