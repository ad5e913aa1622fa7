//! Work that crosses runs, done after the transition that asked for it has committed:
//! starting children, delivering signals and cancel requests to other runs, reporting a
//! child's close to its parent, applying parent close policies.
//!
//! Each job reads what to do from the committed state and is idempotent, so it can be retried
//! (while the store is unavailable) and run again after a restart (`engine::workflow::recover`).
//! Every change it makes is a typed request to the run it concerns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::enums::v1::StartChildWorkflowExecutionFailedCause;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;

use super::Service;
use crate::engine::children::child_start_request;
use crate::engine::request::Request;
use crate::engine::start::StartPolicy;
use crate::engine::state::{ClosePolicy, ParentInfo, RunKey};
use crate::engine::ClosingChild;
use crate::error::{Error, Result};

pub(super) type Job = Box<dyn Fn(Arc<Service>) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

fn job<F, Fut>(f: F) -> Job
where
    F: Fn(Arc<Service>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Box::new(move |svc| Box::pin(f(svc)))
}

/// Sends `request` to `run`; a run that is gone or closed means there is nothing to do.
async fn tell(svc: &Arc<Service>, run: &RunKey, request: Request) -> Result<()> {
    match svc.execute(run, request).await {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn execution_of(key: &RunKey) -> WorkflowExecution {
    WorkflowExecution { workflow_id: key.workflow_id.to_string(), run_id: key.run_id.to_string() }
}

pub(super) fn start_child(parent: RunKey, initiated_event_id: i64) -> Job {
    job(move |svc| {
        let parent = parent.clone();
        async move {
            let look =
                |e: &super::Execution| (e.state.children.get(&initiated_event_id).cloned(), e.state.root_execution());
            let (child, root) = match svc.read(&parent, look).await {
                Ok((Some(child), root)) if child.run_id.is_empty() => (child, root),
                Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let (req, reuse) = child_start_request(&parent, root, &child);
            let started = match svc.namespaces.get(&req.key.namespace) {
                Ok(_) => svc.start_workflow(req, StartPolicy { reuse, ..Default::default() }).await,
                Err(e) => Err(e),
            };
            let failed = |cause| Request::ChildStartFailed { initiated_event_id, cause };
            let request = match started {
                Ok(started) => Request::ChildStarted { initiated_event_id, run_id: started.run_id.into() },
                Err(Error::AlreadyStarted { .. }) => {
                    failed(StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists)
                }
                Err(Error::NamespaceNotFound(_)) => failed(StartChildWorkflowExecutionFailedCause::NamespaceNotFound),
                Err(e) => return Err(e),
            };
            tell(&svc, &parent, request).await
        }
    })
}

/// After a restart: a started child may have closed while its report to the parent was lost.
/// Follows the child's continue-as-new chain to its last run and reports it if closed.
pub(super) fn check_child(parent: RunKey, initiated_event_id: i64) -> Job {
    job(move |svc| {
        let parent = parent.clone();
        async move {
            let mut child = match svc.read(&parent, |e| e.state.children.get(&initiated_event_id).cloned()).await {
                Ok(Some(child)) if !child.run_id.is_empty() => {
                    let (start, _) = child_start_request(&parent, Default::default(), &child);
                    RunKey { run_id: child.run_id.into(), ..start.key }
                }
                Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            loop {
                let look =
                    |e: &super::Execution| (e.state.is_open(), e.state.new_execution_run_id.clone(), e.history.last());
                let (open, next, last) = match svc.read(&child, look).await {
                    Ok(found) => found,
                    Err(Error::NotFound(_)) => return Ok(()),
                    Err(e) => return Err(e),
                };
                if open {
                    return Ok(()); // It reports when it closes.
                }
                if !next.is_empty() {
                    child.run_id = next.into();
                    continue;
                }
                let Some(close_event) = last else { return Ok(()) };
                let close_event = Box::new(close_event);
                let report =
                    Request::ChildClosed { initiated_event_id, child_run_id: child.run_id.into(), close_event };
                return tell(&svc, &parent, report).await;
            }
        }
    })
}

pub(super) fn report_to_parent(child: RunKey, parent: ParentInfo, close_event: HistoryEvent) -> Job {
    job(move |svc| {
        let (child, parent, close_event) = (child.clone(), parent.clone(), close_event.clone());
        async move {
            let report = Request::ChildClosed {
                initiated_event_id: parent.initiated_event_id,
                child_run_id: child.run_id.into(),
                close_event: Box::new(close_event),
            };
            tell(&svc, &parent.key(), report).await
        }
    })
}

pub(super) fn deliver_external(sender: RunKey, initiated_event_id: i64) -> Job {
    job(move |svc| {
        let sender = sender.clone();
        async move {
            let request = match svc.read(&sender, |e| e.state.external.get(&initiated_event_id).cloned()).await {
                Ok(Some(request)) => request,
                Ok(None) | Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let found = match svc.resolve_run(&request.namespace, &request.workflow_id, &request.run_id).await {
                Ok(target) => {
                    let from = execution_of(&sender);
                    let arrive = Request::FromRun { sender: from, initiated_event_id, request: Box::new(request) };
                    match svc.execute(&target, arrive).await {
                        Ok(_) => true,
                        Err(Error::NotFound(_)) => false,
                        Err(e) => return Err(e),
                    }
                }
                Err(Error::NotFound(_)) | Err(Error::InvalidArgument(_)) | Err(Error::NamespaceNotFound(_)) => false,
                Err(e) => return Err(e),
            };
            tell(&svc, &sender, Request::ExternalDelivered { initiated_event_id, found }).await
        }
    })
}

pub(super) fn parent_closed(parent: RunKey, children: Vec<ClosingChild>) -> Job {
    job(move |svc| {
        let (parent, children) = (parent.clone(), children.clone());
        async move {
            for child in children {
                let target = match svc.resolve_run(&child.namespace, &child.workflow_id, "").await {
                    Ok(target) => target,
                    Err(Error::NotFound(_)) | Err(Error::NamespaceNotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                let policy = child.policy;
                tell(&svc, &target, Request::ParentClosed { parent_run_id: parent.run_id.to_string(), policy }).await?;
            }
            Ok(())
        }
    })
}

/// After a restart: if this child's parent closed (its close policy may not have been applied
/// before the server stopped), the child applies the policy to itself.
pub(super) fn check_parent(child: RunKey, parent: ParentInfo) -> Job {
    job(move |svc| {
        let (child, parent) = (child.clone(), parent.clone());
        async move {
            let parent_open = match svc.read(&parent.key(), |e| e.state.is_open()).await {
                Ok(open) => open,
                Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let policy = parent.close_policy;
            if parent_open || policy == ClosePolicy::Abandon {
                return Ok(());
            }
            tell(&svc, &child, Request::ParentClosed { parent_run_id: parent.run_id.clone(), policy }).await
        }
    })
}

/// Sends one request to a run (work an effect left for later).
pub(super) fn execute(run: RunKey, request: Request) -> Job {
    job(move |svc| {
        let (run, request) = (run.clone(), request.clone());
        async move { tell(&svc, &run, request).await }
    })
}

/// A closed run that Nexus operations wait for: its outcome goes to each of them (callbacks
/// tempora gave their handlers), then the run forgets its callbacks. A caller that is gone, or
/// already has the outcome, changes nothing, so a delivery repeated after a restart is safe.
pub(super) fn deliver_callbacks(run: RunKey) -> Job {
    use crate::engine::nexus::{CallbackToken, CALLBACK_TOKEN_HEADER, SYSTEM_CALLBACK_URL};
    job(move |svc| {
        let run = run.clone();
        async move {
            let look = |e: &super::Execution| (e.state.callbacks.clone(), e.history.last());
            let (callbacks, close_event) = match svc.read(&run, look).await {
                Ok((callbacks, Some(close_event))) if !callbacks.is_empty() => (callbacks, close_event),
                Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let outcome = close_outcome(&close_event);
            for callback in callbacks.iter().filter(|c| c.url == SYSTEM_CALLBACK_URL) {
                let Some(token) = callback.header.get(CALLBACK_TOKEN_HEADER).and_then(|t| CallbackToken::decode(t))
                else {
                    continue;
                };
                let caller = RunKey::new(token.namespace, token.workflow_id, token.run_id);
                let request = Request::NexusCompleted {
                    scheduled_event_id: token.scheduled_event_id,
                    request_id: token.request_id,
                    outcome: outcome.clone(),
                };
                tell(&svc, &caller, request).await?;
            }
            tell(&svc, &run, Request::CallbacksDelivered).await
        }
    })
}

/// How a Nexus operation run by a workflow ended, from the workflow's closing event.
fn close_outcome(event: &HistoryEvent) -> crate::engine::nexus::NexusOutcome {
    use crate::engine::nexus::NexusOutcome;
    use temporalio_protos::temporal::api::enums::v1::TimeoutType;
    use temporalio_protos::temporal::api::failure::v1::{failure::FailureInfo, Failure};
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes as A;
    let failed = |message: &str, info: FailureInfo| NexusOutcome::Failed {
        failure: Failure { message: message.into(), failure_info: Some(info), ..Default::default() },
    };
    match &event.attributes {
        Some(A::WorkflowExecutionCompletedEventAttributes(a)) => {
            NexusOutcome::Completed { result: a.result.as_ref().and_then(|p| p.payloads.first().cloned()) }
        }
        Some(A::WorkflowExecutionFailedEventAttributes(a)) => {
            NexusOutcome::Failed { failure: a.failure.clone().unwrap_or_default() }
        }
        Some(A::WorkflowExecutionCanceledEventAttributes(a)) => NexusOutcome::Canceled {
            failure: Failure {
                message: "operation canceled".into(),
                failure_info: Some(FailureInfo::CanceledFailureInfo(
                    temporalio_protos::temporal::api::failure::v1::CanceledFailureInfo {
                        details: a.details.clone(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            },
        },
        Some(A::WorkflowExecutionTerminatedEventAttributes(_)) => {
            failed("operation terminated", FailureInfo::TerminatedFailureInfo(Default::default()))
        }
        _ => failed(
            "operation exceeded internal timeout",
            FailureInfo::TimeoutFailureInfo(temporalio_protos::temporal::api::failure::v1::TimeoutFailureInfo {
                timeout_type: TimeoutType::StartToClose as i32,
                last_heartbeat_details: None,
            }),
        ),
    }
}
