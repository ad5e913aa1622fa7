//! Runs that begin or end outside a workflow task: starts (with request-id idempotency and the
//! id reuse/conflict policies, decided in `engine::start`), signal-with-start, reset and
//! delete. Each holds the workflow id's start lock, so two of them never interleave.

use std::sync::Arc;

use super::cache::{Current, CurrentSlot};
use super::Service;
use crate::engine::external::Signal;
use crate::engine::history::History;
use crate::engine::request::Request;
use crate::engine::start::{self, CurrentRun, StartDecision, StartPolicy};
use crate::engine::state::{RunId, RunKey};
use crate::engine::workflow::{self, StartWorkflow};
use crate::engine::NewRun;
use crate::error::{Error, Result};
use crate::store::Write;

/// Outcome of a start request.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Started {
    pub run_id: RunId,
    /// False when the request joined a run it did not create (signal-with-start on a running
    /// run, `UseExisting`).
    pub started: bool,
}

impl Service {
    /// Starts a run, honouring request-id idempotency and the id reuse/conflict policies.
    /// On a cluster, a workflow id another node serves is started there (a child run).
    pub async fn start_workflow(self: &Arc<Self>, req: StartWorkflow, policy: StartPolicy) -> Result<Started> {
        if !self.serves(&req.key.namespace, &req.key.workflow_id) {
            let moved = || Error::Unavailable("the workflow id's shard moved while the call was sent; retry".into());
            return self.start_remote(&req, policy).await?.ok_or_else(moved);
        }
        let this = self.clone();
        self.runtime.complete("start", async move { this.start_now(req, policy, None).await }).await
    }

    /// An eager start: starts a run and starts its first workflow task for the caller's
    /// worker in the same step, before the task is offered to any poller (a poller could
    /// otherwise take it first). `None` when no run was created or the task could not be
    /// started for the caller; the task is then offered as usual.
    pub async fn start_workflow_eagerly(
        self: &Arc<Self>,
        req: StartWorkflow,
        policy: StartPolicy,
        identity: String,
    ) -> Result<(Started, Option<super::Polled>)> {
        let this = self.clone();
        self.runtime
            .complete("start", async move {
                let (started, held) = this.start_inner(req, policy, None, true).await?;
                if !started.started {
                    return Ok((started, None));
                }
                let run = RunKey { run_id: started.run_id.clone(), ..held.0 };
                let taken = this.start_eagerly(&run, crate::matching::TaskKind::Workflow, 0, 0, identity).await;
                match taken {
                    Ok(Some(polled @ super::Polled::WorkflowTask(_))) => Ok((started, Some(polled))),
                    other => {
                        this.perform(&run, held.1);
                        other.map(|_| (started, None))
                    }
                }
            })
            .await
    }

    /// `SignalWithStartWorkflowExecution`: signals the running run, or starts a new run (as the
    /// reuse policy allows) with the signal as its first event after the start.
    pub async fn signal_with_start(
        self: &Arc<Self>,
        req: StartWorkflow,
        signal: Signal,
        policy: StartPolicy,
    ) -> Result<Started> {
        let this = self.clone();
        self.runtime.complete("start", async move { this.start_now(req, policy, Some(signal)).await }).await
    }

    /// The current run with its status and create request id. A run that closes while it is
    /// read may have been continued by a new current run, so the pointer is checked again.
    async fn current_run_status(
        &self,
        slot: &CurrentSlot,
        namespace: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentRun>> {
        loop {
            let Some(run_id) = self.current_run(slot, namespace, workflow_id).await? else { return Ok(None) };
            let key = RunKey::new(namespace, workflow_id, run_id.clone());
            let (status, request_id) = self.read(&key, |e| (e.state.status, e.state.create_request_id.clone())).await?;
            if slot.get() == Current::Run(run_id.clone()) {
                return Ok(Some(CurrentRun { run_id, status, request_id }));
            }
        }
    }

    async fn start_now(&self, req: StartWorkflow, policy: StartPolicy, signal: Option<Signal>) -> Result<Started> {
        self.start_inner(req, policy, signal, false).await.map(|(started, _)| started)
    }

    /// A start; with `hold_dispatch`, the new run's workflow-task dispatch is not performed
    /// but returned (with the run's key), for the caller to start the task itself or perform it.
    async fn start_inner(
        &self,
        mut req: StartWorkflow,
        policy: StartPolicy,
        signal: Option<Signal>,
        hold_dispatch: bool,
    ) -> Result<(Started, (RunKey, Vec<crate::engine::Effect>))> {
        let held_none = |key: &RunKey| (key.clone(), Vec::new());
        let current = self.current_slot(&req.key.namespace, &req.key.workflow_id);
        let starting = current.starts.lock().await;
        let (namespace, workflow_id) = (req.key.namespace.clone(), req.key.workflow_id.clone());
        let existing = self.current_run_status(&current, &namespace, &workflow_id).await?;
        let decision = start::decide(existing.as_ref(), &workflow_id, &req.request_id, policy, signal.is_some());
        let existing_key = existing.map(|c| RunKey { namespace, workflow_id, run_id: c.run_id });
        match (decision, existing_key) {
            (StartDecision::Start, _) => {}
            (StartDecision::Refuse(e), _) => return Err(e),
            (StartDecision::Existing { started }, Some(key)) => {
                let held = held_none(&key);
                return Ok((Started { run_id: key.run_id, started }, held));
            }
            (StartDecision::SignalExisting, Some(key)) => {
                let signal = signal.expect("decided on a signal");
                self.execute_now(&key, Request::Signal(signal)).await?;
                let held = held_none(&key);
                return Ok((Started { run_id: key.run_id, started: false }, held));
            }
            (StartDecision::TerminateThenStart, Some(key)) => {
                let reason = "terminated by a new start with the same workflow id".to_string();
                let terminate = Request::Terminate { reason, details: None, identity: req.identity.clone() };
                match self.execute_now(&key, terminate).await {
                    // Closed meanwhile: nothing left to terminate.
                    Ok(_) | Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            (decision, None) => {
                return Err(Error::Internal(format!("start decided {decision:?} without a current run")))
            }
        }
        req.key.run_id = uuid::Uuid::new_v4().to_string().into();
        if let Some(signal) = signal {
            req.signal = Some(signal.event());
            req.signal_request_id = signal.request_id;
        }
        let key = req.key.clone();
        let (state, events, effects) = workflow::start(req, self.clock.now_ms());
        let writes = vec![Write::execution(&state, &events, None), Write::current(&key)];
        let (state, events, effects) = match self.store.commit(writes).await {
            Ok(()) => (state, History::of(&events), effects),
            Err(e) => {
                // The outcome is unknown (e.g. the connection died during COMMIT). If the run
                // was written after all, adopt it as the store has it; a retried start with the
                // same request id then finds it instead of creating a second run.
                match self.store.load_execution(&key.run_id).await {
                    Ok(Some(record)) => {
                        let effects = workflow::recover(&record.state);
                        (record.state, record.history, effects)
                    }
                    Ok(None) => {
                        tracing::warn!(run_id = %key.run_id, error = %e, "start not committed");
                        return Err(e.into());
                    }
                    Err(_) => {
                        // Not even that could be asked: forget what memory thought was current.
                        tracing::warn!(run_id = %key.run_id, error = %e, "start outcome unknown");
                        current.set(Current::Unknown);
                        drop(starting);
                        self.resolve_current_later(&key.namespace, &key.workflow_id);
                        return Err(e.into());
                    }
                }
            }
        };
        self.cache_run(state, events);
        current.set(Current::Run(key.run_id.clone()));
        drop(starting);
        self.stats.started(&key.namespace, self.clock.now_ms());
        let (held, effects): (Vec<_>, Vec<_>) = effects
            .into_iter()
            .partition(|e| hold_dispatch && matches!(e, crate::engine::Effect::DispatchWorkflowTask { .. }));
        self.perform(&key, effects);
        Ok((Started { run_id: key.run_id.clone(), started: true }, (key, held)))
    }

    /// `ResetWorkflowExecution`: a new run replaying `base` up to the workflow task that
    /// `finish_event_id` ended; the workflow id's current run is terminated if open, and the
    /// new run becomes current, in one transaction.
    pub async fn reset_workflow(
        self: &Arc<Self>,
        base: RunKey,
        finish_event_id: i64,
        reason: String,
        identity: String,
    ) -> Result<String> {
        let this = self.clone();
        let reset = async move { this.reset_now(base, finish_event_id, reason, identity).await };
        self.runtime.complete("reset", reset).await
    }

    async fn reset_now(&self, base: RunKey, finish_event_id: i64, reason: String, identity: String) -> Result<String> {
        let slot = self.current_slot(&base.namespace, &base.workflow_id);
        let _starting = slot.starts.lock().await;
        let (base_state, base_history) = self.read(&base, |e| (e.state.clone(), e.history.to_vec())).await?;
        let new_run_id = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now_ms();
        let run = crate::engine::reset::reset(
            &base_state,
            &base_history,
            finish_event_id,
            &new_run_id,
            &reason,
            &identity,
            now,
        )
        .map_err(Error::InvalidArgument)?;
        let current = self.current_run(&slot, &base.namespace, &base.workflow_id).await?;
        let current = RunKey { run_id: current.unwrap_or(base.run_id.clone()), ..base };
        let run = Box::new(NewRun { state: run.state, events: run.history, effects: run.effects });
        self.execute_now(&current, Request::Reset { reason, identity, run }).await?;
        Ok(new_run_id)
    }

    /// `DeleteWorkflowExecution`: terminates the run if it is open, then removes it (state,
    /// history, and the workflow id's pointer to it).
    pub async fn delete_run(self: &Arc<Self>, run: &RunKey) -> Result<()> {
        let terminate =
            Request::Terminate { reason: "Delete workflow execution".into(), details: None, identity: String::new() };
        match self.execute(run, terminate).await {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.remove_closed(run).await
    }

    /// Removes a closed run: its state, history, visibility, and the workflow id's pointer to
    /// it (under the id's start lock, so no start reads a pointer to a removed run).
    pub(super) async fn remove_closed(self: &Arc<Self>, run: &RunKey) -> Result<()> {
        if let Some(removed) = self.remove_remote(run).await? {
            return Ok(removed);
        }
        let slot = self.current_slot(&run.namespace, &run.workflow_id);
        let _starting = slot.starts.lock().await;
        self.store.commit(vec![Write::delete(run)]).await?;
        self.forget_run(run);
        if slot.get() == Current::Run(run.run_id.clone()) {
            slot.set(Current::None);
        }
        Ok(())
    }
}
