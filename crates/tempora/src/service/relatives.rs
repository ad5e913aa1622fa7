//! Work that crosses runs, done after the transition that asked for it has committed:
//! starting children, delivering signals and cancel requests to other runs, reporting a
//! child's close to its parent, applying parent close policies.
//!
//! Each job reads what to do from the committed state and is idempotent, so it can be retried
//! (while the store is unavailable) and run again after a restart (`engine::workflow::recover`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::enums::v1::{ParentClosePolicy, StartChildWorkflowExecutionFailedCause};
use temporalio_protos::temporal::api::history::v1::HistoryEvent;

use super::Service;
use crate::engine::children::child_start_request;
use crate::engine::external::{CancelRequest, Signal};
use crate::engine::state::{ParentInfo, RunKey};
use crate::engine::ClosingChild;
use crate::error::{Error, Result};

pub type Job = Box<dyn Fn(Arc<Service>) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

fn job<F, Fut>(f: F) -> Job
where
    F: Fn(Arc<Service>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Box::new(move |svc| Box::pin(f(svc)))
}

/// A transition's outcome where a run that is gone or closed means there is nothing to do.
fn done<T>(result: Result<T>) -> Result<()> {
    match result {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn execution_of(key: &RunKey) -> WorkflowExecution {
    WorkflowExecution { workflow_id: key.workflow_id.clone(), run_id: key.run_id.clone() }
}

pub fn start_child(parent: RunKey, initiated_event_id: i64) -> Job {
    job(move |svc| {
        let parent = parent.clone();
        async move {
            let child = match svc.read(&parent.run_id, |e| e.state.children.get(&initiated_event_id).cloned()).await {
                Ok(Some(child)) if child.run_id.is_empty() => child,
                Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let (req, reuse) = child_start_request(&parent, &child);
            let started = match svc.namespace(&req.key.namespace) {
                Ok(_) => svc.start_workflow(req, reuse, 0).await,
                Err(e) => Err(e),
            };
            let failed = |cause: StartChildWorkflowExecutionFailedCause| {
                let svc = svc.clone();
                let run_id = parent.run_id.clone();
                async move {
                    let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
                        Ok(tx.child_start_failed(initiated_event_id, cause).then_some(()))
                    };
                    done(svc.transition(&run_id, f, |_, _| ()).await)
                }
            };
            match started {
                Ok(started) => {
                    let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
                        Ok(tx.child_started(initiated_event_id, &started.run_id).then_some(()))
                    };
                    done(svc.transition(&parent.run_id, f, |_, _| ()).await)
                }
                Err(Error::AlreadyStarted { .. }) => {
                    failed(StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists).await
                }
                Err(Error::NamespaceNotFound(_)) => {
                    failed(StartChildWorkflowExecutionFailedCause::NamespaceNotFound).await
                }
                Err(e) => Err(e),
            }
        }
    })
}

/// After a restart: a started child may have closed while its report to the parent was lost.
/// Follows the child's continue-as-new chain to its last run and reports it if closed.
pub fn check_child(parent: RunKey, initiated_event_id: i64) -> Job {
    job(move |svc| {
        let parent = parent.clone();
        async move {
            let mut run_id =
                match svc.read(&parent.run_id, |e| e.state.children.get(&initiated_event_id).cloned()).await {
                    Ok(Some(child)) if !child.run_id.is_empty() => child.run_id,
                    Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
                    Err(e) => return Err(e),
                };
            loop {
                let (open, next, last) = match svc
                    .read(&run_id, |e| {
                        (e.state.is_open(), e.state.new_execution_run_id.clone(), e.history.last().cloned())
                    })
                    .await
                {
                    Ok(found) => found,
                    Err(Error::NotFound(_)) => return Ok(()),
                    Err(e) => return Err(e),
                };
                if open {
                    return Ok(()); // It reports when it closes.
                }
                if !next.is_empty() {
                    run_id = next;
                    continue;
                }
                let Some(close_event) = last else { return Ok(()) };
                let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
                    Ok(tx.child_closed(initiated_event_id, &run_id, &close_event).then_some(()))
                };
                return done(svc.transition(&parent.run_id, f, |_, _| ()).await);
            }
        }
    })
}

pub fn report_to_parent(child: RunKey, parent: ParentInfo, close_event: HistoryEvent) -> Job {
    job(move |svc| {
        let (child, parent, close_event) = (child.clone(), parent.clone(), close_event.clone());
        async move {
            let initiated_event_id = parent.initiated_event_id;
            let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
                Ok(tx.child_closed(initiated_event_id, &child.run_id, &close_event).then_some(()))
            };
            done(svc.transition(&parent.run_id, f, |_, _| ()).await)
        }
    })
}

pub fn deliver_external(sender: RunKey, initiated_event_id: i64) -> Job {
    job(move |svc| {
        let sender = sender.clone();
        async move {
            let request = match svc.read(&sender.run_id, |e| e.state.external.get(&initiated_event_id).cloned()).await {
                Ok(Some(request)) => request,
                Ok(None) | Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let found = match svc.resolve_run(&request.namespace, &request.workflow_id, &request.run_id).await {
                Ok(target) => {
                    let from = execution_of(&sender);
                    let sender_run = sender.run_id.clone();
                    let request = request.clone();
                    let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
                        let parent_ok = tx.state.parent.as_ref().is_some_and(|p| p.run_id == sender_run);
                        if request.child_workflow_only && !parent_ok {
                            return Err(Error::not_found("the target is not a child of the sender"));
                        }
                        let changed = match &request.signal {
                            Some(s) => tx.signal(&Signal {
                                name: s.signal_name.clone(),
                                input: s.input.as_ref().map(|p| p.decode()),
                                header: s.header.as_ref().map(|h| h.decode()),
                                identity: String::new(),
                                request_id: format!("{sender_run}:{initiated_event_id}"),
                                external: Some(from),
                            })?,
                            None => tx.request_cancel(&CancelRequest {
                                reason: request.reason.clone(),
                                identity: String::new(),
                                external: Some((initiated_event_id, from)),
                            })?,
                        };
                        Ok(changed.then_some(()))
                    };
                    match svc.transition(&target.run_id, f, |_, _| ()).await {
                        Ok(_) => true,
                        Err(Error::NotFound(_)) => false,
                        Err(e) => return Err(e),
                    }
                }
                Err(Error::NotFound(_)) | Err(Error::InvalidArgument(_)) | Err(Error::NamespaceNotFound(_)) => false,
                Err(e) => return Err(e),
            };
            let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
                Ok(tx.external_delivered(initiated_event_id, found).then_some(()))
            };
            done(svc.transition(&sender.run_id, f, |_, _| ()).await)
        }
    })
}

pub fn parent_closed(parent: RunKey, children: Vec<ClosingChild>) -> Job {
    job(move |svc| {
        let (parent, children) = (parent.clone(), children.clone());
        async move {
            for child in children {
                let target = match svc.resolve_run(&child.namespace, &child.workflow_id, "").await {
                    Ok(target) => target,
                    Err(Error::NotFound(_)) | Err(Error::NamespaceNotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                apply_close_policy(&svc, &target, &parent.run_id, child.policy).await?;
            }
            Ok(())
        }
    })
}

/// After a restart: if this child's parent closed (its close policy may not have been applied
/// before the server stopped), the child applies the policy to itself.
pub fn check_parent(child: RunKey, parent: ParentInfo) -> Job {
    job(move |svc| {
        let (child, parent) = (child.clone(), parent.clone());
        async move {
            let parent_open = match svc.read(&parent.run_id, |e| e.state.is_open()).await {
                Ok(open) => open,
                Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            if parent_open || parent.close_policy == ParentClosePolicy::Abandon as i32 {
                return Ok(());
            }
            apply_close_policy(&svc, &child, &parent.run_id, parent.close_policy).await
        }
    })
}

/// Terminates or cancels `target` by its parent close policy, if it is still the open child of
/// `parent_run_id`.
async fn apply_close_policy(svc: &Arc<Service>, target: &RunKey, parent_run_id: &str, policy: i32) -> Result<()> {
    let parent_run = parent_run_id.to_string();
    let f = move |tx: &mut crate::engine::Tx, _: &super::Execution| {
        let ours = tx.state.parent.as_ref().is_some_and(|p| p.run_id == parent_run);
        if !ours || !tx.state.is_open() {
            return Ok(None);
        }
        let reason = "by parent close policy";
        if policy == ParentClosePolicy::RequestCancel as i32 {
            let req = CancelRequest { reason: reason.into(), ..Default::default() };
            return Ok(tx.request_cancel(&req)?.then_some(()));
        }
        tx.terminate(reason, None, "");
        Ok(Some(()))
    };
    done(svc.transition(&target.run_id, f, |_, _| ()).await)
}
