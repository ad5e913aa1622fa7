//! Workflow RPCs from clients: start, signal, cancel, terminate, reset, delete, history,
//! describe.

use temporalio_protos::temporal::api::common::v1::link::workflow_event::{
    EventReference, Reference, RequestIdReference,
};
use temporalio_protos::temporal::api::common::v1::{link, Link, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::{EventType, HistoryEventFilterType, WorkflowExecutionStatus};
use temporalio_protos::temporal::api::workflow::v1::WorkflowExecutionOptions;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::convert::{check_id, history_token, parse_history_token};
use super::views::{self, HistoryRead};
use super::Frontend;
use crate::engine::external::{CancelRequest, Signal};
use crate::engine::request::Request as Change;
use crate::engine::state::RunKey;
use crate::error::{Error, Result};
use crate::history::Polled;

/// Temporal's frontend long-poll expiry for history.
const HISTORY_POLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
const HISTORY_PAGE_SIZE_DEFAULT: usize = 1000;

/// A link to an event of a run, as Temporal returns with starts and signals.
fn event_link(run: &RunKey, reference: Reference) -> Link {
    Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: run.namespace.to_string(),
            workflow_id: run.workflow_id.to_string(),
            run_id: run.run_id.to_string(),
            reference: Some(reference),
        })),
    }
}

/// A signal's event, found through the signal's request id.
fn signaled_reference(request_id: &str) -> Reference {
    Reference::RequestIdRef(RequestIdReference {
        request_id: request_id.to_string(),
        event_type: EventType::WorkflowExecutionSignaled as i32,
    })
}

impl Frontend {
    /// The run a request names in `namespace` (the current run if no run id is given).
    pub(super) async fn run_of(&self, namespace: &str, execution: Option<WorkflowExecution>) -> Result<RunKey> {
        self.svc.namespaces.get(namespace)?;
        let execution = execution.unwrap_or_default();
        self.svc.resolve_run(namespace, &execution.workflow_id, &execution.run_id).await
    }

    /// NOT_FOUND unless the run belongs to the chain `first_execution_run_id` names (if set).
    pub(super) async fn check_first_run(&self, key: &RunKey, first_execution_run_id: &str) -> Result<()> {
        if first_execution_run_id.is_empty() {
            return Ok(());
        }
        let first = self.svc.read(key, |e| e.state.first_execution_run_id.clone()).await?;
        if first != first_execution_run_id {
            return Err(Error::not_found("workflow execution not found for the given first execution run id"));
        }
        Ok(())
    }

    /// `UpdateWorkflowExecutionOptions`: the priority and the versioning override.
    pub async fn update_workflow_execution_options(
        &self,
        r: Request<ws::UpdateWorkflowExecutionOptionsRequest>,
    ) -> Result<ws::UpdateWorkflowExecutionOptionsResponse> {
        let r = r.into_inner();
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("UpdateMask is required."));
        }
        let options = r.workflow_execution_options.unwrap_or_default();
        let mut versioning_override = None;
        for path in &paths {
            match path.as_str() {
                "priority" => {}
                p if p.starts_with("versioning_override") => {
                    if let Some(o) = &options.versioning_override {
                        let (pinned, auto) = crate::engine::versioning::read_override(o);
                        if pinned.is_none() && !auto {
                            return Err(Error::invalid("versioning override must pin a version or auto-upgrade"));
                        }
                    }
                    versioning_override = Some(options.versioning_override.clone());
                }
                other => return Err(Error::invalid(format!("unsupported update_mask path: {other}"))),
            }
        }
        let key = self.run_of(&r.namespace, r.workflow_execution).await?;
        let change = Change::UpdateOptions {
            priority: options.priority.clone(),
            identity: r.identity,
            versioning_override: versioning_override.clone(),
        };
        self.svc.execute_done(&key, change).await?;
        Ok(ws::UpdateWorkflowExecutionOptionsResponse {
            workflow_execution_options: Some(WorkflowExecutionOptions {
                priority: Some(options.priority.unwrap_or_default()),
                versioning_override: versioning_override.flatten(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The first run of the chain `run` belongs to (empty if the run is gone already).
    async fn first_run_of(&self, run: &RunKey) -> String {
        self.svc.read(run, |e| e.state.first_execution_run_id.clone()).await.unwrap_or_default()
    }

    pub async fn start_workflow_execution(
        &self,
        r: Request<ws::StartWorkflowExecutionRequest>,
    ) -> Result<ws::StartWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let (eager, identity) = (r.request_eager_execution, r.identity.clone());
        let (start, policy) = self.start_request(r)?;
        let key = start.key.clone();
        // Eager start: the caller's worker gets the first workflow task in the answer.
        let result = match eager {
            true => self.svc.start_workflow_eagerly(start, policy, identity).await,
            false => self.svc.start_workflow(start, policy).await.map(|started| (started, None)),
        };
        let (started, eager_task) = match result {
            Err(Error::AlreadyStarted { message, start_request_id, run_id, .. }) => {
                let run = RunKey { run_id: run_id.clone().into(), ..key };
                let first_execution_run_id = self.first_run_of(&run).await;
                return Err(Error::AlreadyStarted { message, start_request_id, run_id, first_execution_run_id });
            }
            other => other?,
        };
        let eager_workflow_task = match eager_task {
            Some(Polled::WorkflowTask(task)) => Some(views::workflow_task(*task)),
            _ => None,
        };
        let run = RunKey { run_id: started.run_id.clone(), ..key };
        let first_execution_run_id = self.first_run_of(&run).await;
        Ok(ws::StartWorkflowExecutionResponse {
            run_id: started.run_id.to_string(),
            first_execution_run_id,
            started: started.started,
            status: WorkflowExecutionStatus::Running as i32,
            eager_workflow_task,
            link: Some(event_link(
                &run,
                Reference::EventRef(EventReference {
                    event_id: 1,
                    event_type: EventType::WorkflowExecutionStarted as i32,
                }),
            )),
        })
    }

    pub async fn signal_with_start_workflow_execution(
        &self,
        r: Request<ws::SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<ws::SignalWithStartWorkflowExecutionResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        check_id(&r.signal_name, "SignalName")?;
        self.checks().payloads(&r.signal_input)?;
        let signal = Signal {
            name: r.signal_name,
            input: r.signal_input,
            identity: r.identity.clone(),
            header: r.header.clone(),
            request_id: r.request_id.clone(),
            external: None,
        };
        let (start, policy) = self.start_request(ws::StartWorkflowExecutionRequest {
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
            workflow_id_reuse_policy: r.workflow_id_reuse_policy,
            workflow_id_conflict_policy: r.workflow_id_conflict_policy,
            retry_policy: r.retry_policy,
            cron_schedule: r.cron_schedule,
            memo: r.memo,
            search_attributes: r.search_attributes,
            header: r.header,
            priority: r.priority,
            workflow_start_delay: r.workflow_start_delay,
            user_metadata: r.user_metadata,
            links: r.links,
            versioning_override: r.versioning_override,
            ..Default::default()
        })?;
        let key = RunKey { run_id: String::new().into(), ..start.key.clone() };
        let reference = signaled_reference(&signal.request_id);
        let started = self.svc.signal_with_start(start, signal, policy).await?;
        let run = RunKey { run_id: started.run_id.clone(), ..key };
        let first_execution_run_id = self.first_run_of(&run).await;
        Ok(ws::SignalWithStartWorkflowExecutionResponse {
            first_execution_run_id,
            run_id: started.run_id.to_string(),
            started: started.started,
            signal_link: Some(event_link(&run, reference)),
        })
    }

    pub async fn signal_workflow_execution(
        &self,
        r: Request<ws::SignalWorkflowExecutionRequest>,
    ) -> Result<ws::SignalWorkflowExecutionResponse> {
        let r = r.into_inner();
        check_id(&r.signal_name, "SignalName")?;
        self.checks().payloads(&r.input)?;
        let key = self.run_of(&r.namespace, r.workflow_execution).await?;
        let reference = signaled_reference(&r.request_id);
        let signal = Signal {
            name: r.signal_name,
            input: r.input,
            identity: r.identity,
            header: r.header,
            request_id: r.request_id,
            external: None,
        };
        self.svc.execute_done(&key, Change::Signal(signal)).await?;
        Ok(ws::SignalWorkflowExecutionResponse { link: Some(event_link(&key, reference)) })
    }

    pub async fn request_cancel_workflow_execution(
        &self,
        r: Request<ws::RequestCancelWorkflowExecutionRequest>,
    ) -> Result<ws::RequestCancelWorkflowExecutionResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.workflow_execution).await?;
        self.check_first_run(&key, &r.first_execution_run_id).await?;
        let cancel = CancelRequest { reason: r.reason, identity: r.identity, external: None };
        self.svc.execute_done(&key, Change::RequestCancel(cancel)).await?;
        Ok(ws::RequestCancelWorkflowExecutionResponse {})
    }

    pub async fn terminate_workflow_execution(
        &self,
        r: Request<ws::TerminateWorkflowExecutionRequest>,
    ) -> Result<ws::TerminateWorkflowExecutionResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.workflow_execution).await?;
        let terminate = Change::Terminate { reason: r.reason, details: r.details, identity: r.identity };
        self.svc.execute_done(&key, terminate).await?;
        Ok(ws::TerminateWorkflowExecutionResponse {})
    }

    pub async fn reset_sticky_task_queue(
        &self,
        r: Request<ws::ResetStickyTaskQueueRequest>,
    ) -> Result<ws::ResetStickyTaskQueueResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.execution).await?;
        self.svc.execute_done(&key, Change::ResetStickyTaskQueue).await?;
        Ok(ws::ResetStickyTaskQueueResponse {})
    }

    pub async fn reset_workflow_execution(
        &self,
        r: Request<ws::ResetWorkflowExecutionRequest>,
    ) -> Result<ws::ResetWorkflowExecutionResponse> {
        let r = r.into_inner();
        let base = self.run_of(&r.namespace, r.workflow_execution).await?;
        let run_id = self.svc.reset_workflow(base, r.workflow_task_finish_event_id, r.reason, r.identity).await?;
        Ok(ws::ResetWorkflowExecutionResponse { run_id })
    }

    pub async fn delete_workflow_execution(
        &self,
        r: Request<ws::DeleteWorkflowExecutionRequest>,
    ) -> Result<ws::DeleteWorkflowExecutionResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.workflow_execution).await?;
        self.svc.delete_run(&key).await?;
        Ok(ws::DeleteWorkflowExecutionResponse {})
    }

    pub async fn get_workflow_execution_history(
        &self,
        r: Request<ws::GetWorkflowExecutionHistoryRequest>,
    ) -> Result<ws::GetWorkflowExecutionHistoryResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.execution).await?;
        let read = HistoryRead {
            close_only: r.history_event_filter_type == HistoryEventFilterType::CloseEvent as i32,
            from_event_id: parse_history_token(&r.next_page_token)?,
            page_size: match r.maximum_page_size {
                n if n <= 0 => HISTORY_PAGE_SIZE_DEFAULT,
                n => n as usize,
            },
            wait: r.wait_new_event,
        };
        let deadline = tokio::time::Instant::now() + HISTORY_POLL_TIMEOUT;
        let page = self.svc.watch_run(&key, deadline, |exec| views::history_page(exec, read)).await?;
        Ok(page.unwrap_or_else(|| views::history_poll_expired(read.from_event_id)))
    }

    /// History newest first, in pages (`temporal workflow show --reverse`); the token is the
    /// id of the event the next page starts from.
    pub async fn get_workflow_execution_history_reverse(
        &self,
        r: Request<ws::GetWorkflowExecutionHistoryReverseRequest>,
    ) -> Result<ws::GetWorkflowExecutionHistoryReverseResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.execution).await?;
        let upto = if r.next_page_token.is_empty() { None } else { Some(parse_history_token(&r.next_page_token)?) };
        let page_size = match r.maximum_page_size {
            n if n <= 0 => HISTORY_PAGE_SIZE_DEFAULT,
            n => n as usize,
        };
        self.svc
            .read(&key, |exec| {
                let total = exec.history.len();
                let end = upto.map_or(total, |id| (id as usize).min(total));
                let start = end.saturating_sub(page_size);
                let mut events = exec.history.range(start..end);
                events.reverse();
                let next_page_token = if start > 0 { history_token(start as i64) } else { Vec::new() };
                ws::GetWorkflowExecutionHistoryReverseResponse {
                    history: Some(temporalio_protos::temporal::api::history::v1::History { events }),
                    next_page_token,
                }
            })
            .await
    }

    pub async fn describe_workflow_execution(
        &self,
        r: Request<ws::DescribeWorkflowExecutionRequest>,
    ) -> Result<ws::DescribeWorkflowExecutionResponse> {
        let r = r.into_inner();
        let key = self.run_of(&r.namespace, r.execution).await?;
        self.svc.read(&key, views::describe).await
    }
}
