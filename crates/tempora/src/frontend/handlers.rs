//! One method per WorkflowService RPC: validate the request (protobuf → domain values, naming
//! the bad field), call the service, build the response.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use temporalio_protos::temporal::api::common::v1::{ActivityType, Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::{
    HistoryEventFilterType, NamespaceState, PendingActivityState, PendingWorkflowTaskState, QueryRejectCondition,
    QueryResultType, TaskQueueKind, UpdateWorkflowExecutionLifecycleStage, WorkflowExecutionStatus,
};
use temporalio_protos::temporal::api::history::v1::{history_event::Attributes, History, HistoryEvent};
use temporalio_protos::temporal::api::namespace::v1::{namespace_info, NamespaceConfig, NamespaceInfo};
use temporalio_protos::temporal::api::query::v1::{QueryRejected, WorkflowQuery};
use temporalio_protos::temporal::api::replication::v1::{ClusterReplicationConfig, NamespaceReplicationConfig};
use temporalio_protos::temporal::api::update::v1::{UpdateRef, WaitPolicy};
use temporalio_protos::temporal::api::workflow::v1 as wf;
use temporalio_protos::temporal::api::workflowservice::v1::{self as ws, get_system_info_response};
use tonic::Request;

use crate::clock::{proto, Millis};
use crate::engine::external::{CancelRequest, Signal};
use crate::engine::state::{RunKey, Sticky};
use crate::engine::workflow::{normal_queue, StartWorkflow};
use crate::engine::workflow_task::CompleteWorkflowTask;
use crate::engine::{is_close_event, Tx};
use crate::error::{Error, Result};
use crate::matching::{QueuedTask, TaskKind};
use crate::service::{Execution, QueryAnswer, Service, StartFn, StartOut};
use crate::store::NamespaceRecord;
use crate::token::TaskToken;

/// Temporal's per-payload limit (`limit.blobSize.error`).
pub const BLOB_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Temporal's matching long-poll expiry.
const TASK_POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// Temporal's frontend long-poll expiry for history.
const HISTORY_POLL_TIMEOUT: Duration = Duration::from_secs(20);
const HISTORY_PAGE_SIZE_DEFAULT: usize = 1000;
const WORKFLOW_TASK_TIMEOUT_DEFAULT_MS: Millis = 10_000;
const STICKY_SCHEDULE_TO_START_DEFAULT_MS: Millis = 5_000;
const WORKFLOW_TASK_TIMEOUT_MAX_MS: Millis = 120_000;
const ID_LENGTH_MAX: usize = 1000;
const SERVER_VERSION: &str = "1.29.0";
const CLUSTER_NAME: &str = "active";

pub struct Frontend {
    svc: Arc<Service>,
}

fn check_blob(size: usize) -> Result<()> {
    if size > BLOB_BYTES_MAX {
        return Err(Error::invalid("Blob data size exceeds limit."));
    }
    Ok(())
}

fn payloads_len(p: &Option<Payloads>) -> usize {
    p.as_ref().map_or(0, |p| p.encoded_len())
}

fn check_id(value: &str, field: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} is not set on request.")));
    }
    if value.len() > ID_LENGTH_MAX {
        return Err(Error::invalid(format!("{field} exceeds length limit.")));
    }
    Ok(())
}

fn non_negative(d: &Option<prost_types::Duration>, field: &str) -> Result<Millis> {
    let ms = proto::duration_ms(d.as_ref());
    if ms < 0 {
        return Err(Error::invalid(format!("Invalid {field}.")));
    }
    Ok(ms)
}

fn execution_of(key: &RunKey) -> WorkflowExecution {
    WorkflowExecution { workflow_id: key.workflow_id.clone(), run_id: key.run_id.clone() }
}

fn namespace_response(ns: &NamespaceRecord) -> ws::DescribeNamespaceResponse {
    ws::DescribeNamespaceResponse {
        namespace_info: Some(NamespaceInfo {
            name: ns.name.clone(),
            state: NamespaceState::Registered as i32,
            description: ns.description.clone(),
            owner_email: ns.owner_email.clone(),
            id: ns.id.clone(),
            capabilities: Some(namespace_info::Capabilities::default()),
            limits: Some(namespace_info::Limits::default()),
            ..Default::default()
        }),
        config: Some(NamespaceConfig {
            workflow_execution_retention_ttl: Some(proto::duration(ns.retention_ms)),
            ..Default::default()
        }),
        replication_config: Some(NamespaceReplicationConfig {
            active_cluster_name: CLUSTER_NAME.to_string(),
            clusters: vec![ClusterReplicationConfig { cluster_name: CLUSTER_NAME.to_string(), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Frontend {
    pub fn new(svc: Arc<Service>) -> Self {
        Frontend { svc }
    }

    // ---- cluster and namespaces ----

    pub async fn get_system_info(&self, _r: Request<ws::GetSystemInfoRequest>) -> Result<ws::GetSystemInfoResponse> {
        Ok(ws::GetSystemInfoResponse {
            server_version: SERVER_VERSION.to_string(),
            capabilities: Some(get_system_info_response::Capabilities {
                signal_and_query_header: false,
                internal_error_differentiation: false,
                activity_failure_include_heartbeat: true,
                supports_schedules: false,
                encoded_failure_attributes: true,
                build_id_based_versioning: false,
                upsert_memo: false,
                eager_workflow_start: false,
                sdk_metadata: true,
                count_group_by_execution_status: false,
                nexus: false,
                server_scaled_deployments: false,
                server_scaled_provider_cloud_run: false,
            }),
        })
    }

    pub async fn get_cluster_info(&self, _r: Request<ws::GetClusterInfoRequest>) -> Result<ws::GetClusterInfoResponse> {
        Ok(ws::GetClusterInfoResponse {
            server_version: SERVER_VERSION.to_string(),
            cluster_id: "tempora".to_string(),
            cluster_name: CLUSTER_NAME.to_string(),
            history_shard_count: 1,
            persistence_store: "tempora".to_string(),
            visibility_store: "tempora".to_string(),
            initial_failover_version: 1,
            failover_version_increment: 10,
            ..Default::default()
        })
    }

    pub async fn describe_namespace(
        &self,
        r: Request<ws::DescribeNamespaceRequest>,
    ) -> Result<ws::DescribeNamespaceResponse> {
        let r = r.into_inner();
        let ns = if !r.namespace.is_empty() {
            self.svc.namespace(&r.namespace)?
        } else if !r.id.is_empty() {
            self.svc.namespace_by_id(&r.id)?
        } else {
            return Err(Error::invalid("Namespace not set on request."));
        };
        Ok(namespace_response(&ns))
    }

    pub async fn list_namespaces(&self, _r: Request<ws::ListNamespacesRequest>) -> Result<ws::ListNamespacesResponse> {
        Ok(ws::ListNamespacesResponse {
            namespaces: self.svc.namespaces().iter().map(namespace_response).collect(),
            next_page_token: Vec::new(),
        })
    }

    pub async fn register_namespace(
        &self,
        r: Request<ws::RegisterNamespaceRequest>,
    ) -> Result<ws::RegisterNamespaceResponse> {
        let r = r.into_inner();
        check_id(&r.namespace, "Namespace")?;
        let retention_ms = match proto::duration_ms(r.workflow_execution_retention_period.as_ref()) {
            0 => 72 * 3600 * 1000,
            ms if ms < 0 => return Err(Error::invalid("Invalid WorkflowExecutionRetentionPeriod.")),
            ms => ms,
        };
        self.svc
            .register_namespace(NamespaceRecord {
                name: r.namespace,
                id: uuid::Uuid::new_v4().to_string(),
                description: r.description,
                owner_email: r.owner_email,
                retention_ms,
            })
            .await?;
        Ok(ws::RegisterNamespaceResponse {})
    }

    // ---- workflows ----

    pub async fn start_workflow_execution(
        &self,
        r: Request<ws::StartWorkflowExecutionRequest>,
    ) -> Result<ws::StartWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let (reuse, conflict) = (r.workflow_id_reuse_policy, r.workflow_id_conflict_policy);
        let start = start_request(r)?;
        let started = self.svc.start_workflow(start, reuse, conflict).await?;
        Ok(ws::StartWorkflowExecutionResponse {
            run_id: started.run_id,
            started: started.started,
            status: WorkflowExecutionStatus::Running as i32,
            ..Default::default()
        })
    }

    pub async fn signal_with_start_workflow_execution(
        &self,
        r: Request<ws::SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<ws::SignalWithStartWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        check_id(&r.signal_name, "SignalName")?;
        check_blob(payloads_len(&r.signal_input))?;
        let signal = Signal {
            name: r.signal_name,
            input: r.signal_input,
            identity: r.identity.clone(),
            header: r.header.clone(),
            request_id: r.request_id.clone(),
            external: None,
        };
        let (reuse, conflict) = (r.workflow_id_reuse_policy, r.workflow_id_conflict_policy);
        let start = start_request(ws::StartWorkflowExecutionRequest {
            namespace: r.namespace,
            workflow_id: r.workflow_id,
            workflow_type: r.workflow_type,
            task_queue: r.task_queue,
            input: r.input,
            workflow_execution_timeout: r.workflow_execution_timeout,
            workflow_run_timeout: r.workflow_run_timeout,
            workflow_task_timeout: r.workflow_task_timeout,
            identity: r.identity,
            request_id: r.request_id,
            retry_policy: r.retry_policy,
            cron_schedule: r.cron_schedule,
            memo: r.memo,
            search_attributes: r.search_attributes,
            header: r.header,
            priority: r.priority,
            ..Default::default()
        })?;
        let started = self.svc.signal_with_start(start, signal, reuse, conflict).await?;
        Ok(ws::SignalWithStartWorkflowExecutionResponse {
            run_id: started.run_id,
            started: started.started,
            ..Default::default()
        })
    }

    pub async fn signal_workflow_execution(
        &self,
        r: Request<ws::SignalWorkflowExecutionRequest>,
    ) -> Result<ws::SignalWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        check_id(&r.signal_name, "SignalName")?;
        check_blob(payloads_len(&r.input))?;
        let execution = r.workflow_execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let signal = Signal {
            name: r.signal_name,
            input: r.input,
            identity: r.identity,
            header: r.header,
            request_id: r.request_id,
            external: None,
        };
        self.svc.transition(&key.run_id, move |tx, _| Ok(tx.signal(&signal)?.then_some(())), |_, _| ()).await?;
        Ok(ws::SignalWorkflowExecutionResponse::default())
    }

    pub async fn query_workflow(&self, r: Request<ws::QueryWorkflowRequest>) -> Result<ws::QueryWorkflowResponse> {
        let timeout = query_timeout(r.metadata());
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.execution.unwrap_or_default();
        let query = r.query.ok_or_else(|| Error::invalid("Query is not set on request."))?;
        check_id(&query.query_type, "QueryType")?;
        check_blob(payloads_len(&query.query_args))?;
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let status = self.svc.read(&key.run_id, |e| e.state.status).await?;
        let running = status == WorkflowExecutionStatus::Running as i32;
        let rejected = match QueryRejectCondition::try_from(r.query_reject_condition) {
            Ok(QueryRejectCondition::NotOpen) => !running,
            Ok(QueryRejectCondition::NotCompletedCleanly) => {
                !running && status != WorkflowExecutionStatus::Completed as i32
            }
            _ => false,
        };
        if rejected {
            return Ok(ws::QueryWorkflowResponse {
                query_rejected: Some(QueryRejected { status }),
                ..Default::default()
            });
        }
        match self.svc.query(&key, query, timeout).await? {
            QueryAnswer::Answered(result) => {
                Ok(ws::QueryWorkflowResponse { query_result: result, ..Default::default() })
            }
            QueryAnswer::Failed { message, failure } => Err(Error::QueryFailed { message, failure }),
        }
    }

    pub async fn update_workflow_execution(
        &self,
        r: Request<ws::UpdateWorkflowExecutionRequest>,
    ) -> Result<ws::UpdateWorkflowExecutionResponse> {
        let deadline = tokio::time::Instant::now() + query_timeout(r.metadata());
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.workflow_execution.unwrap_or_default();
        let mut request = r.request.ok_or_else(|| Error::invalid("Request is not set on request."))?;
        let meta = request.meta.get_or_insert_with(Default::default);
        if meta.update_id.is_empty() {
            meta.update_id = uuid::Uuid::new_v4().to_string();
        }
        check_id(&meta.update_id.clone(), "UpdateId")?;
        let update_id = meta.update_id.clone();
        let name = request.input.as_ref().map(|i| i.name.clone()).unwrap_or_default();
        check_id(&name, "Update name")?;
        check_blob(request.input.as_ref().map_or(0, |i| payloads_len(&i.args)))?;
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        if !r.first_execution_run_id.is_empty() {
            let first = self.svc.read(&key.run_id, |e| e.state.first_execution_run_id.clone()).await?;
            if first != r.first_execution_run_id {
                return Err(Error::not_found("workflow execution not found for the given first execution run id"));
            }
        }
        let wanted = wanted_stage(r.wait_policy.as_ref());
        let (stage, outcome) = self.svc.update(&key, request, wanted, deadline).await?;
        Ok(ws::UpdateWorkflowExecutionResponse {
            update_ref: Some(UpdateRef { workflow_execution: Some(execution_of(&key)), update_id }),
            outcome,
            stage: stage as i32,
            ..Default::default()
        })
    }

    /// Update-with-start: one StartWorkflow then one UpdateWorkflow for the same workflow id.
    pub async fn execute_multi_operation(
        &self,
        r: Request<ws::ExecuteMultiOperationRequest>,
    ) -> Result<ws::ExecuteMultiOperationResponse> {
        use ws::execute_multi_operation_request::operation::Operation as Op;
        use ws::execute_multi_operation_response::{response::Response as Out, Response};
        let deadline = tokio::time::Instant::now() + query_timeout(r.metadata());
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let operations = r.operations.len();
        let mut ops = r.operations.into_iter().map(|o| o.operation);
        let (Some(Some(Op::StartWorkflow(mut start))), Some(Some(Op::UpdateWorkflow(update))), None) =
            (ops.next(), ops.next(), ops.next())
        else {
            return Err(Error::invalid(
                "ExecuteMultiOperation takes exactly one StartWorkflow operation followed by one UpdateWorkflow operation.",
            ));
        };
        let failed = |failed: usize| move |e: Error| Error::MultiOperation { failed, operations, error: Box::new(e) };
        let execution = update.workflow_execution.clone().unwrap_or_default();
        if execution.workflow_id != start.workflow_id {
            return Err(failed(1)(Error::invalid("the update's WorkflowId differs from the start's.")));
        }
        if !execution.run_id.is_empty() {
            return Err(failed(1)(Error::invalid("RunId is not allowed in an update-with-start.")));
        }
        if start.workflow_id_conflict_policy == 0 {
            return Err(failed(0)(Error::invalid("WorkflowIdConflictPolicy must be set for update-with-start.")));
        }
        if start.namespace.is_empty() {
            start.namespace = r.namespace.clone();
        }
        let (reuse, conflict) = (start.workflow_id_reuse_policy, start.workflow_id_conflict_policy);
        let start = start_request(start).map_err(failed(0))?;
        let started = self.svc.start_workflow(start, reuse, conflict).await.map_err(failed(0))?;
        let key = RunKey { namespace: r.namespace.clone(), workflow_id: execution.workflow_id, run_id: started.run_id };
        let mut request = update.request.ok_or_else(|| failed(1)(Error::invalid("Request is not set on request.")))?;
        let meta = request.meta.get_or_insert_with(Default::default);
        if meta.update_id.is_empty() {
            meta.update_id = uuid::Uuid::new_v4().to_string();
        }
        let update_id = meta.update_id.clone();
        let wanted = wanted_stage(update.wait_policy.as_ref());
        let (stage, outcome) = self.svc.update(&key, request, wanted, deadline).await.map_err(failed(1))?;
        Ok(ws::ExecuteMultiOperationResponse {
            responses: vec![
                Response {
                    response: Some(Out::StartWorkflow(ws::StartWorkflowExecutionResponse {
                        run_id: key.run_id.clone(),
                        started: started.started,
                        status: WorkflowExecutionStatus::Running as i32,
                        ..Default::default()
                    })),
                },
                Response {
                    response: Some(Out::UpdateWorkflow(ws::UpdateWorkflowExecutionResponse {
                        update_ref: Some(UpdateRef { workflow_execution: Some(execution_of(&key)), update_id }),
                        outcome,
                        stage: stage as i32,
                        ..Default::default()
                    })),
                },
            ],
        })
    }

    pub async fn poll_workflow_execution_update(
        &self,
        r: Request<ws::PollWorkflowExecutionUpdateRequest>,
    ) -> Result<ws::PollWorkflowExecutionUpdateResponse> {
        let deadline = tokio::time::Instant::now() + query_timeout(r.metadata());
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let update_ref = r.update_ref.ok_or_else(|| Error::invalid("UpdateRef is not set on request."))?;
        check_id(&update_ref.update_id, "UpdateId")?;
        let execution = update_ref.workflow_execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let wanted = wanted_stage(r.wait_policy.as_ref());
        let (stage, outcome) = self.svc.wait_update(&key, &update_ref.update_id, wanted, deadline).await?;
        Ok(ws::PollWorkflowExecutionUpdateResponse {
            outcome,
            stage: stage as i32,
            update_ref: Some(UpdateRef {
                workflow_execution: Some(execution_of(&key)),
                update_id: update_ref.update_id,
            }),
        })
    }

    pub async fn respond_query_task_completed(
        &self,
        r: Request<ws::RespondQueryTaskCompletedRequest>,
    ) -> Result<ws::RespondQueryTaskCompletedResponse> {
        let r = r.into_inner();
        let token = TaskToken::parse(&r.task_token, false)?;
        if token.query_id.is_empty() {
            return Err(Error::invalid("the task token is not a query task's"));
        }
        check_blob(payloads_len(&r.query_result))?;
        let answer = if r.completed_type == QueryResultType::Answered as i32 {
            QueryAnswer::Answered(r.query_result)
        } else {
            let message = if r.error_message.is_empty() {
                r.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default()
            } else {
                r.error_message
            };
            QueryAnswer::Failed { message, failure: r.failure.map(Box::new) }
        };
        self.svc.answer_query(&token.query_id, answer)?;
        Ok(ws::RespondQueryTaskCompletedResponse {})
    }

    pub async fn reset_sticky_task_queue(
        &self,
        r: Request<ws::ResetStickyTaskQueueRequest>,
    ) -> Result<ws::ResetStickyTaskQueueResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let f = |tx: &mut Tx, _: &Execution| Ok(tx.state.sticky.take().map(|_| ()));
        self.svc.transition(&key.run_id, f, |_, _| ()).await?;
        Ok(ws::ResetStickyTaskQueueResponse {})
    }

    pub async fn reset_workflow_execution(
        &self,
        r: Request<ws::ResetWorkflowExecutionRequest>,
    ) -> Result<ws::ResetWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.workflow_execution.unwrap_or_default();
        let base = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let run_id = self.svc.reset_workflow(base, r.workflow_task_finish_event_id, r.reason, r.identity).await?;
        Ok(ws::ResetWorkflowExecutionResponse { run_id })
    }

    pub async fn delete_workflow_execution(
        &self,
        r: Request<ws::DeleteWorkflowExecutionRequest>,
    ) -> Result<ws::DeleteWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.workflow_execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        self.svc.delete_run(&key).await?;
        Ok(ws::DeleteWorkflowExecutionResponse {})
    }

    pub async fn request_cancel_workflow_execution(
        &self,
        r: Request<ws::RequestCancelWorkflowExecutionRequest>,
    ) -> Result<ws::RequestCancelWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.workflow_execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        if !r.first_execution_run_id.is_empty() {
            let first = self.svc.read(&key.run_id, |e| e.state.first_execution_run_id.clone()).await?;
            if first != r.first_execution_run_id {
                return Err(Error::not_found("workflow execution not found for the given first execution run id"));
            }
        }
        let cancel = CancelRequest { reason: r.reason, identity: r.identity, external: None };
        self.svc.transition(&key.run_id, move |tx, _| Ok(tx.request_cancel(&cancel)?.then_some(())), |_, _| ()).await?;
        Ok(ws::RequestCancelWorkflowExecutionResponse {})
    }

    pub async fn terminate_workflow_execution(
        &self,
        r: Request<ws::TerminateWorkflowExecutionRequest>,
    ) -> Result<ws::TerminateWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.workflow_execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let (reason, details, identity) = (r.reason, r.details, r.identity);
        self.svc
            .transition(
                &key.run_id,
                move |tx, _| {
                    if !tx.state.is_open() {
                        return Err(Error::not_found("workflow execution already completed"));
                    }
                    tx.terminate(&reason, details, &identity);
                    Ok(Some(()))
                },
                |_, _| (),
            )
            .await?;
        Ok(ws::TerminateWorkflowExecutionResponse {})
    }

    pub async fn get_workflow_execution_history(
        &self,
        r: Request<ws::GetWorkflowExecutionHistoryRequest>,
    ) -> Result<ws::GetWorkflowExecutionHistoryResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        let close_only = r.history_event_filter_type == HistoryEventFilterType::CloseEvent as i32;
        let page_size = match r.maximum_page_size {
            n if n <= 0 => HISTORY_PAGE_SIZE_DEFAULT,
            n => n as usize,
        };
        let from_event_id = parse_history_token(&r.next_page_token)?;
        let deadline = tokio::time::Instant::now() + HISTORY_POLL_TIMEOUT;
        loop {
            let (page, mut changed) = self
                .svc
                .read(&key.run_id, |exec| {
                    (
                        history_page(exec, close_only, from_event_id, page_size, r.wait_new_event),
                        exec.changed.subscribe(),
                    )
                })
                .await?;
            if let Some(page) = page {
                return Ok(page);
            }
            // Long poll: wait for new events (or the close event) until the expiry or shutdown.
            let mut shutdown = self.svc.shutdown_signal();
            let woke = tokio::select! {
                woke = tokio::time::timeout_at(deadline, changed.changed()) => woke.is_ok(),
                _ = shutdown.wait_for(|stop| *stop) => false,
            };
            if !woke {
                return Ok(ws::GetWorkflowExecutionHistoryResponse {
                    history: Some(History { events: Vec::new() }),
                    next_page_token: history_token(from_event_id),
                    ..Default::default()
                });
            }
        }
    }

    pub async fn describe_workflow_execution(
        &self,
        r: Request<ws::DescribeWorkflowExecutionRequest>,
    ) -> Result<ws::DescribeWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let execution = r.execution.unwrap_or_default();
        let key = self.svc.resolve_run(&r.namespace, &execution.workflow_id, &execution.run_id).await?;
        self.svc.read(&key.run_id, describe).await
    }

    // ---- workflow tasks ----

    pub async fn poll_workflow_task_queue(
        &self,
        r: Request<ws::PollWorkflowTaskQueueRequest>,
    ) -> Result<ws::PollWorkflowTaskQueueResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let task_queue = r.task_queue.unwrap_or_default();
        check_id(&task_queue.name, "TaskQueue")?;
        let identity = r.identity;
        let sticky_poll = task_queue.kind == TaskQueueKind::Sticky as i32;
        let svc = self.svc.clone();
        let polled = self
            .svc
            .poll_task(
                &r.namespace,
                &task_queue.name,
                TaskKind::Workflow,
                TASK_POLL_TIMEOUT,
                move |_task| start_workflow_task(svc.clone(), identity.clone(), sticky_poll),
                Some(&query_task_response),
            )
            .await?;
        Ok(polled.unwrap_or_default())
    }

    pub async fn respond_workflow_task_completed(
        &self,
        r: Request<ws::RespondWorkflowTaskCompletedRequest>,
    ) -> Result<ws::RespondWorkflowTaskCompletedResponse> {
        let r = r.into_inner();
        let token = TaskToken::parse(&r.task_token, false)?;
        self.svc.namespace(&token.namespace)?;
        let sticky = r.sticky_attributes.and_then(|a| {
            let task_queue = a.worker_task_queue.map(|q| q.name).filter(|n| !n.is_empty())?;
            let ms = proto::duration_ms(a.schedule_to_start_timeout.as_ref());
            Some(Sticky {
                task_queue,
                schedule_to_start_ms: if ms > 0 { ms } else { STICKY_SCHEDULE_TO_START_DEFAULT_MS },
            })
        });
        let complete = CompleteWorkflowTask {
            sticky,
            scheduled_event_id: token.scheduled_event_id,
            attempt: token.attempt,
            commands: r.commands,
            identity: r.identity,
            binary_checksum: r.binary_checksum,
            sdk_metadata: r.sdk_metadata,
            metering_metadata: r.metering_metadata,
            force_create_new_workflow_task: r.force_create_new_workflow_task,
            messages: r.messages,
            update_requests: Default::default(),
            updates_waiting: false,
        };
        let svc = self.svc.clone();
        let run_id = token.run_id.clone();
        let f = move |tx: &mut Tx, _: &Execution| {
            // Read under the run's lock: an update admitted from here on finds this task done
            // and schedules its own.
            let mut complete = complete;
            let answered = complete.messages.iter().map(|m| m.protocol_instance_id.clone()).collect();
            (complete.update_requests, complete.updates_waiting) = svc.updates_for_completion(&run_id, &answered);
            tx.complete_workflow_task(complete).map(Some)
        };
        let outcome = self.svc.transition(&token.run_id, f, |out, _| out).await?;
        match outcome {
            Some(Err(e)) => Err(e),
            Some(Ok(completed)) => Ok(ws::RespondWorkflowTaskCompletedResponse {
                reset_history_event_id: completed.reset_history_event_id,
                ..Default::default()
            }),
            None => Ok(ws::RespondWorkflowTaskCompletedResponse::default()),
        }
    }

    pub async fn respond_workflow_task_failed(
        &self,
        r: Request<ws::RespondWorkflowTaskFailedRequest>,
    ) -> Result<ws::RespondWorkflowTaskFailedResponse> {
        let r = r.into_inner();
        let token = TaskToken::parse(&r.task_token, false)?;
        self.svc.namespace(&token.namespace)?;
        let (cause, failure, identity) = (r.cause, r.failure, r.identity);
        self.svc
            .transition(
                &token.run_id,
                move |tx, _| {
                    tx.fail_workflow_task(token.scheduled_event_id, token.attempt, cause, failure, &identity)?;
                    Ok(Some(()))
                },
                |_, _| (),
            )
            .await?;
        Ok(ws::RespondWorkflowTaskFailedResponse {})
    }

    // ---- activity tasks ----

    pub async fn poll_activity_task_queue(
        &self,
        r: Request<ws::PollActivityTaskQueueRequest>,
    ) -> Result<ws::PollActivityTaskQueueResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        let task_queue = r.task_queue.unwrap_or_default();
        check_id(&task_queue.name, "TaskQueue")?;
        let identity = r.identity;
        let polled = self
            .svc
            .poll_task(
                &r.namespace,
                &task_queue.name,
                TaskKind::Activity,
                TASK_POLL_TIMEOUT,
                move |task| start_activity_task(task, identity.clone()),
                None,
            )
            .await?;
        Ok(polled.unwrap_or_default())
    }

    /// Runs an activity-token RPC's transition; `f` gets (tx, scheduled id, attempt).
    async fn on_activity<T: Send + 'static>(
        &self,
        token: &[u8],
        f: impl FnOnce(&mut Tx, i64, Option<i32>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let token = TaskToken::parse(token, true)?;
        self.svc.namespace(&token.namespace)?;
        let (scheduled, attempt) = (token.scheduled_event_id, token.attempt);
        let out = self
            .svc
            .transition(&token.run_id, move |tx, _| f(tx, scheduled, Some(attempt)).map(Some), |out, _| out)
            .await?;
        out.ok_or_else(|| Error::not_found("activity task not found"))
    }

    /// The same for the `ById` forms.
    async fn on_activity_by_id<T: Send + 'static>(
        &self,
        namespace: &str,
        workflow_id: &str,
        run_id: &str,
        activity_id: &str,
        f: impl FnOnce(&mut Tx, i64, Option<i32>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.svc.namespace(namespace)?;
        check_id(activity_id, "ActivityId")?;
        let key = self.svc.resolve_run(namespace, workflow_id, run_id).await?;
        let activity_id = activity_id.to_string();
        let out = self
            .svc
            .transition(
                &key.run_id,
                move |tx, _| {
                    let scheduled = tx.find_activity_by_id(&activity_id)?;
                    f(tx, scheduled, None).map(Some)
                },
                |out, _| out,
            )
            .await?;
        out.ok_or_else(|| Error::not_found("activity task not found"))
    }

    pub async fn respond_activity_task_completed(
        &self,
        r: Request<ws::RespondActivityTaskCompletedRequest>,
    ) -> Result<ws::RespondActivityTaskCompletedResponse> {
        let r = r.into_inner();
        check_blob(payloads_len(&r.result))?;
        let (result, identity) = (r.result, r.identity);
        self.on_activity(&r.task_token, move |tx, s, a| tx.complete_activity(s, a, result, &identity)).await?;
        Ok(ws::RespondActivityTaskCompletedResponse::default())
    }

    pub async fn respond_activity_task_completed_by_id(
        &self,
        r: Request<ws::RespondActivityTaskCompletedByIdRequest>,
    ) -> Result<ws::RespondActivityTaskCompletedByIdResponse> {
        let r = r.into_inner();
        check_blob(payloads_len(&r.result))?;
        let (result, identity) = (r.result, r.identity);
        self.on_activity_by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id, move |tx, s, a| {
            tx.complete_activity(s, a, result, &identity)
        })
        .await?;
        Ok(ws::RespondActivityTaskCompletedByIdResponse::default())
    }

    pub async fn respond_activity_task_failed(
        &self,
        r: Request<ws::RespondActivityTaskFailedRequest>,
    ) -> Result<ws::RespondActivityTaskFailedResponse> {
        let r = r.into_inner();
        let failure = r.failure.ok_or_else(|| Error::invalid("Failure is not set on request."))?;
        check_blob(failure.encoded_len())?;
        let (details, identity) = (r.last_heartbeat_details, r.identity);
        self.on_activity(&r.task_token, move |tx, s, a| tx.fail_activity(s, a, failure, details, &identity)).await?;
        Ok(ws::RespondActivityTaskFailedResponse::default())
    }

    pub async fn respond_activity_task_failed_by_id(
        &self,
        r: Request<ws::RespondActivityTaskFailedByIdRequest>,
    ) -> Result<ws::RespondActivityTaskFailedByIdResponse> {
        let r = r.into_inner();
        let failure = r.failure.ok_or_else(|| Error::invalid("Failure is not set on request."))?;
        check_blob(failure.encoded_len())?;
        let (details, identity) = (r.last_heartbeat_details, r.identity);
        self.on_activity_by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id, move |tx, s, a| {
            tx.fail_activity(s, a, failure, details, &identity)
        })
        .await?;
        Ok(ws::RespondActivityTaskFailedByIdResponse::default())
    }

    pub async fn respond_activity_task_canceled(
        &self,
        r: Request<ws::RespondActivityTaskCanceledRequest>,
    ) -> Result<ws::RespondActivityTaskCanceledResponse> {
        let r = r.into_inner();
        check_blob(payloads_len(&r.details))?;
        let (details, identity) = (r.details, r.identity);
        self.on_activity(&r.task_token, move |tx, s, a| tx.cancel_activity(s, a, details, &identity)).await?;
        Ok(ws::RespondActivityTaskCanceledResponse::default())
    }

    pub async fn respond_activity_task_canceled_by_id(
        &self,
        r: Request<ws::RespondActivityTaskCanceledByIdRequest>,
    ) -> Result<ws::RespondActivityTaskCanceledByIdResponse> {
        let r = r.into_inner();
        check_blob(payloads_len(&r.details))?;
        let (details, identity) = (r.details, r.identity);
        self.on_activity_by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id, move |tx, s, a| {
            tx.cancel_activity(s, a, details, &identity)
        })
        .await?;
        Ok(ws::RespondActivityTaskCanceledByIdResponse::default())
    }

    pub async fn record_activity_task_heartbeat(
        &self,
        r: Request<ws::RecordActivityTaskHeartbeatRequest>,
    ) -> Result<ws::RecordActivityTaskHeartbeatResponse> {
        let r = r.into_inner();
        check_blob(payloads_len(&r.details))?;
        let details = r.details;
        let cancel_requested = self.on_activity(&r.task_token, move |tx, s, a| tx.heartbeat(s, a, details)).await?;
        Ok(ws::RecordActivityTaskHeartbeatResponse { cancel_requested, ..Default::default() })
    }

    pub async fn record_activity_task_heartbeat_by_id(
        &self,
        r: Request<ws::RecordActivityTaskHeartbeatByIdRequest>,
    ) -> Result<ws::RecordActivityTaskHeartbeatByIdResponse> {
        let r = r.into_inner();
        check_blob(payloads_len(&r.details))?;
        let details = r.details;
        let cancel_requested = self
            .on_activity_by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id, move |tx, s, a| {
                tx.heartbeat(s, a, details)
            })
            .await?;
        Ok(ws::RecordActivityTaskHeartbeatByIdResponse { cancel_requested, ..Default::default() })
    }

    // ---- workers ----

    pub async fn shutdown_worker(&self, r: Request<ws::ShutdownWorkerRequest>) -> Result<ws::ShutdownWorkerResponse> {
        let r = r.into_inner();
        self.svc.namespace(&r.namespace)?;
        if !r.sticky_task_queue.is_empty() {
            self.svc.sticky_queue_gone(&r.namespace, &r.sticky_task_queue);
        }
        Ok(ws::ShutdownWorkerResponse::default())
    }

    /// Nexus is not supported: the poll waits out its expiry and answers empty, since an error
    /// would make the worker give up.
    pub async fn poll_nexus_task_queue(
        &self,
        r: Request<ws::PollNexusTaskQueueRequest>,
    ) -> Result<ws::PollNexusTaskQueueResponse> {
        self.svc.namespace(&r.get_ref().namespace)?;
        let mut shutdown = self.svc.shutdown_signal();
        let _ = tokio::time::timeout(TASK_POLL_TIMEOUT, shutdown.wait_for(|stop| *stop)).await;
        Ok(ws::PollNexusTaskQueueResponse::default())
    }
}

/// How long a query may wait for a worker: the caller's deadline (`grpc-timeout`) less a
/// margin to answer in, capped by Temporal's long-poll interval.
fn query_timeout(metadata: &tonic::metadata::MetadataMap) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(30);
    const MARGIN: Duration = Duration::from_millis(500);
    let Some(value) = metadata.get("grpc-timeout").and_then(|v| v.to_str().ok()) else { return DEFAULT };
    let (digits, unit) = value.split_at(value.len().saturating_sub(1));
    let Ok(n) = digits.parse::<u64>() else { return DEFAULT };
    let deadline = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return DEFAULT,
    };
    deadline.saturating_sub(MARGIN).min(TASK_POLL_TIMEOUT)
}

/// The stage an update call waits for; Temporal's default is "accepted" for a start and
/// "completed" once a caller asks for it.
fn wanted_stage(policy: Option<&WaitPolicy>) -> UpdateWorkflowExecutionLifecycleStage {
    use UpdateWorkflowExecutionLifecycleStage as Stage;
    match policy.and_then(|p| Stage::try_from(p.lifecycle_stage).ok()) {
        Some(Stage::Unspecified) | None => Stage::Accepted,
        Some(stage) => stage,
    }
}

/// Validates a start request (naming the bad field) and applies Temporal's timeout defaults.
fn start_request(r: ws::StartWorkflowExecutionRequest) -> Result<StartWorkflow> {
    check_id(&r.workflow_id, "WorkflowId")?;
    let workflow_type = r.workflow_type.map(|t| t.name).unwrap_or_default();
    check_id(&workflow_type, "WorkflowType")?;
    let task_queue = r.task_queue.map(|t| t.name).unwrap_or_default();
    check_id(&task_queue, "TaskQueue")?;
    if r.request_id.len() > ID_LENGTH_MAX {
        return Err(Error::invalid("RequestId exceeds length limit."));
    }
    check_blob(payloads_len(&r.input))?;
    let execution_timeout_ms = non_negative(&r.workflow_execution_timeout, "WorkflowExecutionTimeout")?;
    let mut run_timeout_ms = non_negative(&r.workflow_run_timeout, "WorkflowRunTimeout")?;
    if execution_timeout_ms > 0 && (run_timeout_ms == 0 || run_timeout_ms > execution_timeout_ms) {
        run_timeout_ms = execution_timeout_ms;
    }
    let mut task_timeout_ms = non_negative(&r.workflow_task_timeout, "WorkflowTaskTimeout")?;
    if task_timeout_ms == 0 {
        task_timeout_ms = WORKFLOW_TASK_TIMEOUT_DEFAULT_MS;
    }
    task_timeout_ms = task_timeout_ms.min(WORKFLOW_TASK_TIMEOUT_MAX_MS);
    if run_timeout_ms > 0 {
        task_timeout_ms = task_timeout_ms.min(run_timeout_ms);
    }
    if !r.cron_schedule.is_empty() {
        crate::engine::cron::parse(&r.cron_schedule).map_err(Error::InvalidArgument)?;
    }
    if let Some(p) = &r.retry_policy {
        crate::engine::activity::retry_policy(Some(p)).map_err(Error::InvalidArgument)?;
    }
    let request_id = if r.request_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { r.request_id };
    Ok(StartWorkflow {
        key: RunKey { namespace: r.namespace, workflow_id: r.workflow_id, run_id: String::new() },
        workflow_type,
        task_queue,
        input: r.input,
        execution_timeout_ms,
        run_timeout_ms,
        task_timeout_ms,
        identity: r.identity,
        request_id,
        retry_policy: r.retry_policy,
        memo: r.memo,
        search_attributes: r.search_attributes,
        header: r.header,
        priority: r.priority,
        cron_schedule: r.cron_schedule,
        ..Default::default()
    })
}

fn start_workflow_task(
    svc: Arc<Service>,
    identity: String,
    sticky_poll: bool,
) -> StartFn<ws::PollWorkflowTaskQueueResponse> {
    let request_id = uuid::Uuid::new_v4().to_string();
    (
        Box::new(move |tx, _| Ok(tx.start_workflow_task(&identity, &request_id).map(StartOut::WorkflowTask))),
        Box::new(move |out, exec| match out {
            StartOut::WorkflowTask(started) => {
                let started_event_id = started.started_event_id;
                let mut response = workflow_task_response(exec, started, sticky_poll);
                response.messages = svc.update_messages(&exec.state.key.run_id, started_event_id);
                response
            }
            StartOut::Activity(_) => unreachable!("workflow poll starts workflow tasks"),
        }),
    )
}

/// The response to a workflow task poll. A sticky poller has the run cached and gets only
/// the events after the last task it completed; a normal poller gets the whole history.
fn workflow_task_response(
    exec: &Execution,
    started: crate::engine::workflow_task::StartedWorkflowTask,
    sticky_poll: bool,
) -> ws::PollWorkflowTaskQueueResponse {
    let state = &exec.state;
    let from = if sticky_poll { started.previous_started_event_id.max(0) as usize } else { 0 };
    let mut events = exec.history[from.min(exec.history.len())..].to_vec();
    events.extend(started.transient_events);
    ws::PollWorkflowTaskQueueResponse {
        task_token: TaskToken::new(&state.key, started.scheduled_event_id, started.attempt, false).to_bytes(),
        workflow_execution: Some(execution_of(&state.key)),
        workflow_type: Some(WorkflowType { name: state.workflow_type.clone() }),
        previous_started_event_id: started.previous_started_event_id,
        started_event_id: started.started_event_id,
        attempt: started.attempt,
        history: Some(History { events }),
        workflow_execution_task_queue: Some(normal_queue(&state.task_queue)),
        scheduled_time: Some(proto::timestamp(started.scheduled_time_ms)),
        started_time: Some(proto::timestamp(started.started_time_ms)),
        ..Default::default()
    }
}

/// A query task: the run's full history and the query; nothing in the run changes.
fn query_task_response(
    exec: &Execution,
    query: &WorkflowQuery,
    task: &QueuedTask,
) -> ws::PollWorkflowTaskQueueResponse {
    let state = &exec.state;
    ws::PollWorkflowTaskQueueResponse {
        task_token: TaskToken::query(&state.key, &task.query_id).to_bytes(),
        workflow_execution: Some(execution_of(&state.key)),
        workflow_type: Some(WorkflowType { name: state.workflow_type.clone() }),
        previous_started_event_id: state.last_completed_wft_started_event_id,
        started_event_id: 0,
        attempt: 1,
        history: Some(History { events: exec.history.clone() }),
        query: Some(query.clone()),
        workflow_execution_task_queue: Some(normal_queue(&state.task_queue)),
        ..Default::default()
    }
}

fn start_activity_task(task: QueuedTask, identity: String) -> StartFn<ws::PollActivityTaskQueueResponse> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (scheduled, attempt) = (task.scheduled_event_id, task.attempt);
    (
        Box::new(move |tx, _| {
            Ok(tx.start_activity(scheduled, attempt, &identity, &request_id).map(|a| StartOut::Activity(Box::new(a))))
        }),
        Box::new(|out, exec| match out {
            StartOut::Activity(activity) => activity_task_response(exec, *activity),
            StartOut::WorkflowTask(_) => unreachable!("activity poll starts activities"),
        }),
    )
}

fn activity_task_response(exec: &Execution, a: crate::engine::state::Activity) -> ws::PollActivityTaskQueueResponse {
    let state = &exec.state;
    let scheduled = exec
        .history
        .get((a.scheduled_event_id - 1) as usize)
        .and_then(|e| match &e.attributes {
            Some(Attributes::ActivityTaskScheduledEventAttributes(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    ws::PollActivityTaskQueueResponse {
        task_token: TaskToken::new(&state.key, a.scheduled_event_id, a.attempt, true).to_bytes(),
        workflow_namespace: state.key.namespace.clone(),
        workflow_type: Some(WorkflowType { name: state.workflow_type.clone() }),
        workflow_execution: Some(execution_of(&state.key)),
        activity_type: Some(ActivityType { name: a.activity_type.clone() }),
        activity_id: a.activity_id.clone(),
        header: scheduled.header,
        input: scheduled.input,
        heartbeat_details: a.heartbeat_details.as_ref().map(|d| d.decode()),
        scheduled_time: Some(proto::timestamp(a.scheduled_time_ms)),
        current_attempt_scheduled_time: Some(proto::timestamp(a.attempt_scheduled_time_ms)),
        started_time: Some(proto::timestamp(a.started_time_ms)),
        attempt: a.attempt,
        schedule_to_close_timeout: Some(proto::duration(a.schedule_to_close_ms)),
        start_to_close_timeout: Some(proto::duration(a.start_to_close_ms)),
        heartbeat_timeout: Some(proto::duration(a.heartbeat_ms)),
        retry_policy: Some(a.retry.to_proto()),
        priority: scheduled.priority,
        ..Default::default()
    }
}

/// Page tokens of history reads: the next event id to return, as decimal text.
fn parse_history_token(token: &[u8]) -> Result<i64> {
    if token.is_empty() {
        return Ok(1);
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id >= 1)
        .ok_or_else(|| Error::invalid("Invalid NextPageToken."))
}

fn history_token(next_event_id: i64) -> Vec<u8> {
    next_event_id.to_string().into_bytes()
}

/// The page to answer with, or `None` if a long poll should wait for more.
fn history_page(
    exec: &Execution,
    close_only: bool,
    from_event_id: i64,
    page_size: usize,
    wait: bool,
) -> Option<ws::GetWorkflowExecutionHistoryResponse> {
    let respond = |events: Vec<HistoryEvent>, token: Vec<u8>| ws::GetWorkflowExecutionHistoryResponse {
        history: Some(History { events }),
        next_page_token: token,
        ..Default::default()
    };
    let closed = !exec.state.is_open();
    if close_only {
        if closed {
            let close: Vec<HistoryEvent> =
                exec.history.iter().rev().find(|e| is_close_event(e)).cloned().into_iter().collect();
            return Some(respond(close, Vec::new()));
        }
        return (!wait).then(|| respond(Vec::new(), Vec::new()));
    }
    let total = exec.history.len() as i64;
    if from_event_id > total {
        if wait && !closed {
            return None;
        }
        return Some(respond(Vec::new(), Vec::new()));
    }
    let start = (from_event_id - 1) as usize;
    let end = (start + page_size).min(exec.history.len());
    let events = exec.history[start..end].to_vec();
    let next = end as i64 + 1;
    let more = (end as i64) < total || (wait && !closed);
    Some(respond(events, if more { history_token(next) } else { Vec::new() }))
}

fn describe(exec: &Execution) -> ws::DescribeWorkflowExecutionResponse {
    let s = &exec.state;
    let started = exec.history.first().and_then(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => Some(a.clone()),
        _ => None,
    });
    let started = started.unwrap_or_default();
    let pending_activities = s
        .activities
        .values()
        .map(|a| wf::PendingActivityInfo {
            activity_id: a.activity_id.clone(),
            activity_type: Some(ActivityType { name: a.activity_type.clone() }),
            state: if a.cancel_requested {
                PendingActivityState::CancelRequested as i32
            } else if a.is_started() {
                PendingActivityState::Started as i32
            } else {
                PendingActivityState::Scheduled as i32
            },
            heartbeat_details: a.heartbeat_details.as_ref().map(|d| d.decode()),
            last_heartbeat_time: (a.last_heartbeat_ms > 0).then(|| proto::timestamp(a.last_heartbeat_ms)),
            last_started_time: (a.started_time_ms > 0).then(|| proto::timestamp(a.started_time_ms)),
            attempt: a.attempt,
            maximum_attempts: a.retry.maximum_attempts,
            scheduled_time: Some(proto::timestamp(a.attempt_scheduled_time_ms)),
            expiration_time: a.schedule_to_close_deadline_ms().map(proto::timestamp),
            last_failure: a.last_failure.as_ref().map(|f| f.decode()),
            last_worker_identity: a.started_identity.clone(),
            ..Default::default()
        })
        .collect();
    let pending_workflow_task = s.workflow_task.as_ref().map(|w| wf::PendingWorkflowTaskInfo {
        state: if w.is_started() {
            PendingWorkflowTaskState::Started as i32
        } else {
            PendingWorkflowTaskState::Scheduled as i32
        },
        scheduled_time: Some(proto::timestamp(w.scheduled_time_ms)),
        original_scheduled_time: Some(proto::timestamp(w.scheduled_time_ms)),
        started_time: w.is_started().then(|| proto::timestamp(w.started_time_ms)),
        attempt: w.attempt,
    });
    ws::DescribeWorkflowExecutionResponse {
        execution_config: Some(wf::WorkflowExecutionConfig {
            task_queue: Some(normal_queue(&s.task_queue)),
            workflow_execution_timeout: Some(proto::duration(s.execution_timeout_ms)),
            workflow_run_timeout: Some(proto::duration(s.run_timeout_ms)),
            default_workflow_task_timeout: Some(proto::duration(s.workflow_task_timeout_ms)),
            ..Default::default()
        }),
        workflow_execution_info: Some(wf::WorkflowExecutionInfo {
            execution: Some(execution_of(&s.key)),
            r#type: Some(WorkflowType { name: s.workflow_type.clone() }),
            start_time: Some(proto::timestamp(s.start_time_ms)),
            close_time: (s.close_time_ms > 0).then(|| proto::timestamp(s.close_time_ms)),
            status: s.status,
            history_length: exec.history.len() as i64,
            execution_time: Some(proto::timestamp(s.start_time_ms)),
            memo: s.memo.as_ref().map(|m| m.decode()).or(started.memo),
            search_attributes: s.search_attributes.as_ref().map(|m| m.decode()).or(started.search_attributes),
            parent_namespace_id: s.parent.as_ref().map(|p| p.namespace.clone()).unwrap_or_default(),
            parent_execution: s
                .parent
                .as_ref()
                .map(|p| WorkflowExecution { workflow_id: p.workflow_id.clone(), run_id: p.run_id.clone() }),
            task_queue: s.task_queue.clone(),
            state_transition_count: s.transitions as i64,
            history_size_bytes: s.history_size_bytes,
            execution_duration: (s.close_time_ms > 0).then(|| proto::duration(s.close_time_ms - s.start_time_ms)),
            first_run_id: s.first_execution_run_id.clone(),
            ..Default::default()
        }),
        pending_activities,
        pending_workflow_task,
        pending_children: s
            .children
            .values()
            .map(|c| wf::PendingChildExecutionInfo {
                workflow_id: c.workflow_id.clone(),
                run_id: c.run_id.clone(),
                workflow_type_name: c.workflow_type.clone(),
                initiated_id: c.initiated_event_id,
                parent_close_policy: c.parent_close_policy,
            })
            .collect(),
        ..Default::default()
    }
}
