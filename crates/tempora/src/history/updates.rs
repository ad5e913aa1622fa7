//! Workflow updates on the service side: the in-memory registry of admitted updates (as in
//! Temporal, an update lives only in memory until a worker accepts it; then the run's state
//! has it), handing them to workers with workflow tasks, and waiting for an update's stage.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use temporalio_protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage as Stage;
use temporalio_protos::temporal::api::update::v1::{Outcome, Request as UpdateRequest};
use tokio::sync::watch;

use super::Service;
use crate::engine::request::Request;
use crate::engine::state::RunKey;
use crate::engine::updates::UpdateProgress;
use crate::error::{Error, Result};

/// An update's lifecycle stage and outcome.
pub type UpdateStatus = (Stage, Option<Outcome>);

struct Inflight {
    request: UpdateRequest,
    /// `None` until accepted; waiters watch it.
    progress: watch::Sender<Option<UpdateProgress>>,
}

/// Updates admitted but not yet completed, by run id then update id.
#[derive(Default)]
pub(super) struct Registry(Mutex<HashMap<String, HashMap<String, Inflight>>>);

impl Registry {
    /// Admits an update once per update id; true if it is new.
    fn admit(&self, run_id: &str, update_id: &str, request: UpdateRequest) -> bool {
        let mut all = self.0.lock().expect("updates lock");
        let of_run = all.entry(run_id.to_string()).or_default();
        if of_run.contains_key(update_id) {
            return false;
        }
        let (progress, _) = watch::channel(None);
        of_run.insert(update_id.to_string(), Inflight { request, progress });
        true
    }

    fn subscribe(&self, run_id: &str, update_id: &str) -> Option<watch::Receiver<Option<UpdateProgress>>> {
        let all = self.0.lock().expect("updates lock");
        all.get(run_id).and_then(|of_run| of_run.get(update_id)).map(|u| u.progress.subscribe())
    }

    /// Gives a workflow task's start or completion the updates it carries: every update not
    /// yet accepted (one handed out before but left unanswered is handed out again).
    pub(super) fn attach(&self, run_id: &str, request: &mut Request) {
        let all = self.0.lock().expect("updates lock");
        let Some(of_run) = all.get(run_id) else { return };
        let mut waiting: Vec<(&String, &Inflight)> =
            of_run.iter().filter(|(_, u)| u.progress.borrow().is_none()).collect();
        waiting.sort_by(|a, b| a.0.cmp(b.0));
        match request {
            Request::StartWorkflowTask { updates, .. } => {
                *updates = waiting.into_iter().map(|(_, u)| u.request.clone()).collect();
            }
            Request::CompleteWorkflowTask(complete) => {
                let answered: HashSet<&String> = complete.messages.iter().map(|m| &m.protocol_instance_id).collect();
                complete.updates_waiting = waiting.iter().any(|(id, _)| !answered.contains(id));
                complete.update_requests = waiting.into_iter().map(|(id, u)| (id.clone(), u.request.clone())).collect();
            }
            _ => {}
        }
    }

    /// Updates not yet completed end with their run; dropping them tells their waiters.
    pub(super) fn run_closed(&self, run_id: &str) {
        self.0.lock().expect("updates lock").remove(run_id);
    }

    pub(super) fn progressed(&self, run: &RunKey, update_id: &str, progress: UpdateProgress) {
        let mut all = self.0.lock().expect("updates lock");
        let Some(of_run) = all.get_mut(&*run.run_id) else { return };
        let done = matches!(progress, UpdateProgress::Completed(_));
        match of_run.get(update_id) {
            Some(u) => u.progress.send_replace(Some(progress)),
            None => return,
        };
        if done {
            of_run.remove(update_id);
        }
    }
}

/// The outcome of an update accepted by a run that closed before completing it (Temporal's
/// words and failure type, which SDKs show to the caller).
fn accepted_update_completed_workflow() -> Outcome {
    use temporalio_protos::temporal::api::failure::v1::{failure::FailureInfo, ApplicationFailureInfo, Failure};
    use temporalio_protos::temporal::api::update::v1::outcome::Value;
    let failure = Failure {
        message: "Workflow Update failed because the Workflow completed before the Update completed.".into(),
        source: "Server".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: "AcceptedUpdateCompletedWorkflow".into(),
            non_retryable: true,
            ..Default::default()
        })),
        ..Default::default()
    };
    Outcome { value: Some(Value::Failure(failure)) }
}

impl Service {
    /// `UpdateWorkflowExecution`: admits the update (once per update id), makes sure a workflow
    /// task will carry it to a worker, and waits until it reaches `wanted` or `deadline`.
    pub async fn update(
        self: &Arc<Self>,
        run: &RunKey,
        request: UpdateRequest,
        wanted: Stage,
        deadline: tokio::time::Instant,
    ) -> Result<UpdateStatus> {
        let update_id = request.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
        let mut run = run.clone();
        loop {
            let (known, open) =
                self.read(&run, |e| (e.state.updates.contains_key(&update_id), e.state.is_open())).await?;
            if !known {
                if !open {
                    return Err(Error::not_found("workflow execution already completed"));
                }
                if self.updates.admit(&run.run_id, &update_id, request.clone()) {
                    self.execute(&run, Request::DeliverUpdates).await?;
                }
            }
            match self.wait_update(&run, &update_id, wanted, deadline).await {
                Err(Error::NotFound(message)) => {
                    // A run that continued as new before any worker saw the update hands it on,
                    // as Temporal does: the caller never notices the new run.
                    let next = self.read(&run, |e| e.state.new_execution_run_id.clone()).await?;
                    if known || next.is_empty() {
                        return Err(Error::NotFound(message));
                    }
                    run = RunKey { run_id: next.into(), ..run };
                }
                answer => return answer,
            }
        }
    }

    /// Waits until an update reaches `wanted` (or `deadline`), returning where it is. A run
    /// that can no longer change answers at once with where the update stands.
    pub async fn wait_update(
        &self,
        run: &RunKey,
        update_id: &str,
        wanted: Stage,
        deadline: tokio::time::Instant,
    ) -> Result<UpdateStatus> {
        // Kept across iterations: after a rejection the registry forgets the update, but this
        // receiver still holds its outcome.
        let mut inflight: Option<watch::Receiver<Option<UpdateProgress>>> = None;
        let mut shutdown = self.runtime.shutdown_signal();
        loop {
            let ((durable, open), mut changes) =
                self.observe(run, |e| (e.state.updates.get(update_id).cloned(), e.state.is_open())).await?;
            if inflight.is_none() {
                inflight = self.updates.subscribe(&run.run_id, update_id);
            }
            let mut progress = inflight.as_ref().map(|rx| rx.borrow().clone());
            let forgotten = inflight.as_ref().is_some_and(|rx| rx.has_changed().is_err());
            if forgotten && progress == Some(None) {
                progress = None; // Forgotten before it was accepted: its run closed.
            }
            let status: UpdateStatus = match (&durable, progress) {
                (Some(record), _) if record.outcome.is_some() => {
                    (Stage::Completed, record.outcome.as_ref().map(|o| o.decode()))
                }
                // Accepted, then the run closed first: the caller was promised an outcome.
                (Some(_), _) if !open => (Stage::Completed, Some(accepted_update_completed_workflow())),
                (_, Some(Some(UpdateProgress::Completed(outcome)))) => (Stage::Completed, Some(*outcome)),
                (Some(_), _) | (_, Some(Some(UpdateProgress::Accepted))) => (Stage::Accepted, None),
                (None, Some(None)) => (Stage::Admitted, None),
                (None, None) if open => return Err(Error::not_found(format!("update {update_id} not found"))),
                (None, None) => return Err(Error::not_found("workflow execution already completed")),
            };
            if status.0 as i32 >= wanted as i32 || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
            let progressed = async {
                match inflight.as_mut() {
                    // Err: the registry forgot the update (it completed, or its run closed);
                    // the receiver keeps the last value, and the loop reads the run again.
                    Some(rx) if rx.has_changed().is_ok() => {
                        let _ = rx.changed().await;
                    }
                    _ => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                changed = changes.next() => if !changed { return Ok(status) },
                _ = progressed => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ok(status),
            }
        }
    }
}
