//! The history service: owns the runs in memory, serialises transitions per run, commits them
//! through the store, then performs their effects (matching offers, timers, waking waiters).
//!
//! Every transition runs in its own spawned task so a caller that goes away (tonic drops the
//! handler future) cannot cut a commit in half; the in-memory run is only replaced after its
//! commit succeeded, and dropped for a reload if the commit failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::Duration;

use temporalio_protos::temporal::api::common::v1::Payloads;
use temporalio_protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage;
use temporalio_protos::temporal::api::enums::v1::{
    WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::temporal::api::protocol::v1::Message as ProtocolMessage;
use temporalio_protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::temporal::api::update::v1::{Outcome, Request as UpdateRequest};
use tokio::sync::{watch, Mutex};

use crate::clock::{Clock, Millis};
use crate::engine::external::Signal;
use crate::engine::state::{MutableState, RunKey, Sticky};
use crate::engine::updates::{self, UpdateProgress};
use crate::engine::workflow::{self, StartWorkflow};
use crate::engine::{Effect, Timer, Tx};
use crate::error::{Error, Result};
use crate::matching::{Matching, QueuedTask, TaskKind};
use crate::store::{self, NamespaceRecord, Write};
use crate::timers::{Fire, Timers};

mod relatives;

/// A run in memory: mutable state plus full history, and a signal for history long polls.
pub struct Execution {
    pub state: MutableState,
    pub history: Vec<HistoryEvent>,
    /// Carries `next_event_id`; changes whenever history grows or the run closes.
    pub changed: watch::Sender<i64>,
}

impl Execution {
    fn new(state: MutableState, history: Vec<HistoryEvent>) -> Self {
        let (changed, _) = watch::channel(state.next_event_id);
        Execution { state, history, changed }
    }
}

/// A sticky queue polled within this long counts as live.
const STICKY_LIVENESS: Duration = Duration::from_secs(5);

type RunSlot = Arc<Mutex<Option<Execution>>>;
/// A workflow id's current run. `starts` serialises starts of the id (held across awaits);
/// `run` is the pointer itself, which a transition creating the next run (continue-as-new)
/// sets while holding only its run's lock, so it never waits for a start.
#[derive(Default)]
struct CurrentSlot {
    starts: Mutex<()>,
    run: StdMutex<Current>,
}

impl CurrentSlot {
    fn get(&self) -> Current {
        self.run.lock().expect("current lock").clone()
    }
    fn set(&self, current: Current) {
        *self.run.lock().expect("current lock") = current;
    }
}

/// What memory knows of a workflow id's current run.
#[derive(Clone, Debug, Default, PartialEq)]
enum Current {
    #[default]
    None,
    Run(String),
    /// A start's commit outcome is unknown and the store could not be asked either: the store
    /// is asked on next use, so a retried start can never create a second run.
    Unknown,
}

pub struct Service {
    clock: Arc<dyn Clock>,
    store: store::Handle,
    pub matching: Matching,
    timers: StdMutex<Option<Timers>>,
    namespaces: RwLock<HashMap<String, NamespaceRecord>>,
    runs: StdMutex<HashMap<String, RunSlot>>,
    /// Current run id of each (namespace, workflow id).
    current: StdMutex<HashMap<(String, String), Arc<CurrentSlot>>>,
    shutdown: watch::Receiver<bool>,
    me: std::sync::Weak<Service>,
    /// Queries waiting for a worker's answer, by query id. Only in memory, as in Temporal: a
    /// query is answered within its caller's deadline or not at all.
    queries: StdMutex<HashMap<String, PendingQuery>>,
    /// Updates admitted but not yet completed, by run id then update id. Only in memory until
    /// accepted (then the run's state has them), as in Temporal.
    updates: StdMutex<HashMap<String, HashMap<String, InflightUpdate>>>,
    limits: StdMutex<crate::engine::Limits>,
}

struct InflightUpdate {
    request: UpdateRequest,
    /// `None` until accepted; waiters watch it.
    progress: watch::Sender<Option<UpdateProgress>>,
}

/// An update's lifecycle stage (`UpdateWorkflowExecutionLifecycleStage`) and outcome.
pub type UpdateStatus = (UpdateWorkflowExecutionLifecycleStage, Option<Outcome>);

struct PendingQuery {
    query: WorkflowQuery,
    reply: tokio::sync::oneshot::Sender<QueryAnswer>,
}

/// A worker's answer to a query.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryAnswer {
    Answered(Option<Payloads>),
    Failed { message: String, failure: Option<Box<Failure>> },
}

/// Forgets a pending query when its caller stops waiting, however that happens.
struct QueryGuard<'a> {
    queries: &'a StdMutex<HashMap<String, PendingQuery>>,
    id: String,
}

impl Drop for QueryGuard<'_> {
    fn drop(&mut self) {
        self.queries.lock().expect("queries lock").remove(&self.id);
    }
}

/// Outcome of a start request.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub run_id: String,
    pub started: bool,
}

impl Service {
    pub fn new(clock: Arc<dyn Clock>, store: store::Handle, shutdown: watch::Receiver<bool>) -> Arc<Service> {
        Arc::new_cyclic(|me| Service {
            me: me.clone(),
            clock,
            store,
            matching: Matching::new(shutdown.clone()),
            timers: StdMutex::new(None),
            namespaces: RwLock::new(HashMap::new()),
            runs: StdMutex::new(HashMap::new()),
            current: StdMutex::new(HashMap::new()),
            shutdown,
            queries: StdMutex::new(HashMap::new()),
            updates: StdMutex::new(HashMap::new()),
            limits: StdMutex::new(Default::default()),
        })
    }

    pub fn set_limits(&self, limits: crate::engine::Limits) {
        *self.limits.lock().expect("limits lock") = limits;
    }

    pub fn set_timers(&self, timers: Timers) {
        *self.timers.lock().expect("timers lock") = Some(timers);
    }

    pub fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Loads what a restart needs: namespaces, current runs, and every open run, whose pending
    /// tasks and timers are re-armed.
    pub fn recover(
        self: &Arc<Self>,
        namespaces: Vec<NamespaceRecord>,
        current: Vec<(String, String, String)>,
        open: Vec<store::ExecutionRecord>,
    ) {
        {
            let mut ns = self.namespaces.write().expect("namespaces lock");
            for record in namespaces {
                ns.insert(record.name.clone(), record);
            }
        }
        {
            let mut map = self.current.lock().expect("current lock");
            for (namespace, workflow_id, run_id) in current {
                let slot = CurrentSlot { starts: Mutex::new(()), run: StdMutex::new(Current::Run(run_id)) };
                map.insert((namespace, workflow_id), Arc::new(slot));
            }
        }
        // Every open run is in memory before any of their work starts: that work (a child's
        // check, a delivery) may read another open run, which must not be loaded twice.
        let mut pending = Vec::new();
        let mut children = Vec::new();
        for record in open {
            let key = record.state.key.clone();
            pending.push((key.clone(), workflow::recover(&record.state)));
            if let Some(parent) = record.state.parent.clone() {
                children.push((key.clone(), parent));
            }
            let slot = Arc::new(Mutex::new(Some(Execution::new(record.state, record.history))));
            self.runs.lock().expect("runs lock").insert(key.run_id.clone(), slot);
        }
        for (key, effects) in pending {
            self.perform(&key, effects);
        }
        // A parent may have closed while its close policy could not be applied.
        for (child, parent) in children {
            self.later(relatives::check_parent(child, parent));
        }
    }

    // ---- namespaces ----

    pub fn namespace(&self, name: &str) -> Result<NamespaceRecord> {
        if name.is_empty() {
            return Err(Error::invalid("Namespace not set on request."));
        }
        self.namespaces
            .read()
            .expect("namespaces lock")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NamespaceNotFound(name.to_string()))
    }

    pub fn namespace_by_id(&self, id: &str) -> Result<NamespaceRecord> {
        self.namespaces
            .read()
            .expect("namespaces lock")
            .values()
            .find(|n| n.id == id)
            .cloned()
            .ok_or_else(|| Error::NamespaceNotFound(id.to_string()))
    }

    pub fn namespaces(&self) -> Vec<NamespaceRecord> {
        let mut all: Vec<_> = self.namespaces.read().expect("namespaces lock").values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub async fn register_namespace(&self, record: NamespaceRecord) -> Result<()> {
        if self.namespace(&record.name).is_ok() {
            return Err(Error::NamespaceAlreadyExists(record.name));
        }
        self.store.commit(vec![Write::Namespace(record.clone())]).await?;
        self.namespaces.write().expect("namespaces lock").insert(record.name.clone(), record);
        Ok(())
    }

    // ---- runs ----

    /// The slot of a run, loading it from the store if it is not in memory. Open runs stay in
    /// memory; a closed run read from the store is handed out without being cached.
    async fn run_slot(&self, run_id: &str) -> Result<RunSlot> {
        let cached = self.runs.lock().expect("runs lock").get(run_id).cloned();
        if let Some(slot) = cached {
            let mut guard = slot.lock().await;
            if guard.is_none() {
                // Dropped after a commit whose outcome is unknown: the store has the truth.
                // Its pending tasks and timers are offered again (duplicates are harmless).
                let record = self.store.load_execution(run_id).await?;
                let record = record.ok_or_else(|| Error::not_found("workflow execution not found"))?;
                let (key, effects) = (record.state.key.clone(), workflow::recover(&record.state));
                *guard = Some(Execution::new(record.state, record.history));
                drop(guard);
                self.perform(&key, effects);
                return Ok(slot);
            }
            drop(guard);
            return Ok(slot);
        }
        let record = self.store.load_execution(run_id).await?;
        let record = record.ok_or_else(|| Error::not_found("workflow execution not found"))?;
        let open = record.state.is_open();
        tracing::debug!(run_id, open, events = record.history.len(), "run loaded from the store");
        let (key, effects) = (record.state.key.clone(), workflow::recover(&record.state));
        let slot = Arc::new(Mutex::new(Some(Execution::new(record.state, record.history))));
        if !open {
            return Ok(slot);
        }
        // Every open run is loaded at start, so an open run found only now was created by a
        // start whose commit outcome was unknown: its work has never been offered.
        let (slot, inserted) = {
            let mut runs = self.runs.lock().expect("runs lock");
            match runs.get(run_id) {
                Some(existing) => (existing.clone(), false),
                None => {
                    runs.insert(run_id.to_string(), slot.clone());
                    (slot, true)
                }
            }
        };
        if inserted {
            self.perform(&key, effects);
        }
        Ok(slot)
    }

    /// Reloads a run dropped after a failed commit, retrying while the store is unreachable,
    /// so work the commit may have durably created is not left waiting for a caller.
    fn reload_later(&self, run_id: &str) {
        let Some(this) = self.me.upgrade() else { return };
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(50);
            let mut shutdown = this.shutdown.clone();
            loop {
                match this.run_slot(&run_id).await {
                    Ok(_) | Err(Error::NotFound(_)) => return,
                    Err(_) => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        });
    }

    fn current_slot(&self, namespace: &str, workflow_id: &str) -> Arc<CurrentSlot> {
        let mut map = self.current.lock().expect("current lock");
        map.entry((namespace.to_string(), workflow_id.to_string())).or_default().clone()
    }

    /// The current run id of a workflow id, asking the store if memory does not know it.
    async fn current_run(&self, slot: &CurrentSlot, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        let mut current = slot.get();
        if current == Current::Unknown {
            current = match self.store.load_current_run(namespace, workflow_id).await? {
                Some(run_id) => Current::Run(run_id),
                None => Current::None,
            };
            let mut known = slot.run.lock().expect("current lock");
            if *known == Current::Unknown {
                *known = current.clone();
            }
        }
        Ok(match current {
            Current::Run(run_id) => Some(run_id),
            _ => None,
        })
    }

    /// After a start whose outcome is unknown: learns from the store, as soon as it answers,
    /// whether the run exists, and if so takes it up (its first workflow task is offered).
    fn resolve_current_later(&self, namespace: &str, workflow_id: &str) {
        let Some(this) = self.me.upgrade() else { return };
        let (namespace, workflow_id) = (namespace.to_string(), workflow_id.to_string());
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(50);
            let mut shutdown = this.shutdown.clone();
            loop {
                let slot = this.current_slot(&namespace, &workflow_id);
                let resolved = this.current_run(&slot, &namespace, &workflow_id).await;
                match resolved {
                    Ok(None) => return,
                    Ok(Some(run_id)) => match this.run_slot(&run_id).await {
                        Ok(_) | Err(Error::NotFound(_)) => return,
                        Err(_) => {}
                    },
                    Err(_) => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// The run id to use: `run_id` if given, else the workflow id's current run.
    pub async fn resolve_run(&self, namespace: &str, workflow_id: &str, run_id: &str) -> Result<RunKey> {
        if workflow_id.is_empty() {
            return Err(Error::invalid("WorkflowId is not set on request."));
        }
        let run_id = if run_id.is_empty() {
            let slot = self.current_slot(namespace, workflow_id);
            let current = self.current_run(&slot, namespace, workflow_id).await?;
            current.ok_or_else(|| Error::not_found(format!("workflow not found for ID: {workflow_id}")))?
        } else {
            if uuid::Uuid::parse_str(run_id).is_err() {
                return Err(Error::invalid("Invalid RunId."));
            }
            run_id.to_string()
        };
        let slot = self.run_slot(&run_id).await?;
        let guard = slot.lock().await;
        let exec = guard.as_ref().ok_or_else(|| Error::not_found("workflow execution not found"))?;
        if exec.state.key.namespace != namespace || exec.state.key.workflow_id != workflow_id {
            return Err(Error::not_found(format!(
                "workflow execution not found for ID: {workflow_id}, RunID: {run_id}"
            )));
        }
        Ok(exec.state.key.clone())
    }

    /// Reads a run under its lock.
    pub async fn read<T>(&self, run_id: &str, f: impl FnOnce(&Execution) -> T) -> Result<T> {
        let slot = self.run_slot(run_id).await?;
        let guard = slot.lock().await;
        let exec = guard.as_ref().ok_or_else(|| Error::not_found("workflow execution not found"))?;
        Ok(f(exec))
    }

    /// Applies `f` to a copy of the run's state; if it returns `Some`, commits the new events
    /// and state, installs them, performs the effects, then runs `then` on the updated run.
    /// Runs to completion even if the caller goes away.
    pub async fn transition<T, R>(
        self: &Arc<Self>,
        run_id: &str,
        f: impl FnOnce(&mut Tx, &Execution) -> Result<Option<T>> + Send + 'static,
        then: impl FnOnce(T, &Execution) -> R + Send + 'static,
    ) -> Result<Option<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        let run_id = run_id.to_string();
        let task = tokio::spawn(async move { this.transition_now(&run_id, f, then).await });
        task.await.map_err(|e| Error::Internal(format!("transition task failed: {e}")))?
    }

    async fn transition_now<T, R>(
        &self,
        run_id: &str,
        f: impl FnOnce(&mut Tx, &Execution) -> Result<Option<T>>,
        then: impl FnOnce(T, &Execution) -> R,
    ) -> Result<Option<R>> {
        let slot = self.run_slot(run_id).await?;
        let mut guard = slot.lock().await;
        let exec = guard.as_mut().ok_or_else(|| Error::not_found("workflow execution not found"))?;
        let mut state = exec.state.clone();
        let mut tx = Tx::new(&mut state, self.clock.now_ms()).with_history(&exec.history);
        tx.new_run_id = uuid::Uuid::new_v4().to_string();
        tx.limits = *self.limits.lock().expect("limits lock");
        let out = f(&mut tx, &*exec)?;
        if out.is_some() {
            tx.enforce_history_limits();
        }
        let Tx { events, effects, new_run, .. } = tx;
        let Some(out) = out else {
            // Nothing to commit; effects derived from unchanged state (a re-armed timer) still
            // apply.
            debug_assert!(events.is_empty());
            let key = exec.state.key.clone();
            drop(guard);
            self.perform(&key, effects);
            return Ok(None);
        };
        state.transitions += 1;
        let mut writes = vec![Write::execution(&state, &events, Some(exec.state.transitions))];
        if let Some(next) = &new_run {
            writes.push(Write::execution(&next.state, &next.events, None));
            writes.push(Write::Current {
                namespace: next.state.key.namespace.clone(),
                workflow_id: next.state.key.workflow_id.clone(),
                run_id: next.state.key.run_id.clone(),
            });
        }
        if let Err(e) = self.store.commit(writes).await {
            tracing::warn!(run_id, error = %e, "transition not committed; run will be reloaded");
            *guard = None;
            drop(guard);
            self.reload_later(run_id);
            return Err(e.into());
        }
        let key = state.key.clone();
        exec.state = state;
        exec.history.extend(events);
        exec.changed.send_replace(exec.state.next_event_id);
        let result = then(out, exec);
        if !exec.state.is_open() {
            // Closed runs leave memory; whoever asks later reads them from the store. Holders
            // of this slot keep a consistent (closed, unchanging) copy.
            self.runs.lock().expect("runs lock").remove(run_id);
            // Updates not yet completed end with the run; their waiters are told.
            self.updates.lock().expect("updates lock").remove(run_id);
        }
        if let Some(next) = new_run {
            // The next run becomes current before this run's lock is released, so a start
            // that read this run closed sees the pointer moved (`current_run_status`).
            let next_key = next.state.key.clone();
            let slot = Arc::new(Mutex::new(Some(Execution::new(next.state, next.events))));
            self.runs.lock().expect("runs lock").insert(next_key.run_id.clone(), slot);
            self.current_slot(&next_key.namespace, &next_key.workflow_id).set(Current::Run(next_key.run_id.clone()));
            drop(guard);
            self.perform(&key, effects);
            self.perform(&next_key, next.effects);
            return Ok(Some(result));
        }
        drop(guard);
        self.perform(&key, effects);
        Ok(Some(result))
    }

    fn perform(&self, run: &RunKey, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::DispatchWorkflowTask { task_queue, sticky } => {
                    let task =
                        QueuedTask { run: run.clone(), scheduled_event_id: 0, attempt: 0, query_id: String::new() };
                    let live = |s: &Sticky| {
                        self.matching.is_live(&run.namespace, &s.task_queue, TaskKind::Workflow, STICKY_LIVENESS)
                    };
                    match sticky.filter(live) {
                        Some(sticky) => {
                            self.matching.offer(&run.namespace, &sticky.task_queue, TaskKind::Workflow, task);
                            let at_ms = self.clock.now_ms() + sticky.schedule_to_start_ms;
                            self.add_timer(at_ms, run, Timer::StickyTimeout { force: false });
                        }
                        None => self.matching.offer(&run.namespace, &task_queue, TaskKind::Workflow, task),
                    }
                }
                Effect::DispatchActivityTask { task_queue, scheduled_event_id, attempt } => self.matching.offer(
                    &run.namespace,
                    &task_queue,
                    TaskKind::Activity,
                    QueuedTask { run: run.clone(), scheduled_event_id, attempt, query_id: String::new() },
                ),
                Effect::Timer { at_ms, timer } => self.add_timer(at_ms, run, timer),
                Effect::StartChild { initiated_event_id } => {
                    self.later(relatives::start_child(run.clone(), initiated_event_id))
                }
                Effect::CheckChild { initiated_event_id } => {
                    self.later(relatives::check_child(run.clone(), initiated_event_id))
                }
                Effect::DeliverExternal { initiated_event_id } => {
                    self.later(relatives::deliver_external(run.clone(), initiated_event_id))
                }
                Effect::ReportToParent { parent, close_event } => {
                    self.later(relatives::report_to_parent(run.clone(), parent, *close_event))
                }
                Effect::ParentClosed { children } => self.later(relatives::parent_closed(run.clone(), children)),
                Effect::UpdateProgress { update_id, progress } => self.update_progressed(run, &update_id, progress),
            }
        }
    }

    /// Runs cross-run work (a `relatives` job) in the background, retrying while the store is
    /// unavailable, until it is done or the server stops.
    fn later(&self, job: relatives::Job) {
        let Some(this) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(50);
            let mut shutdown = this.shutdown.clone();
            loop {
                match job(this.clone()).await {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(error = %e, "cross-run work will be retried"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        });
    }

    fn add_timer(&self, at_ms: Millis, run: &RunKey, timer: Timer) {
        if let Some(timers) = self.timers.lock().expect("timers lock").as_ref() {
            timers.add(at_ms, run.clone(), timer);
        }
    }

    /// A worker shut down: tasks waiting on its sticky queue go to the normal queue now.
    pub fn sticky_queue_gone(self: &Arc<Self>, namespace: &str, sticky_queue: &str) {
        for task in self.matching.remove(namespace, sticky_queue, TaskKind::Workflow) {
            self.fire_timer(task.run, Timer::StickyTimeout { force: true });
        }
    }

    // ---- start ----

    /// Starts a run, honouring request-id idempotency and the id reuse/conflict policies.
    pub async fn start_workflow(self: &Arc<Self>, req: StartWorkflow, reuse: i32, conflict: i32) -> Result<Started> {
        let this = self.clone();
        tokio::spawn(async move { this.start_workflow_now(req, reuse, conflict, None).await })
            .await
            .map_err(|e| Error::Internal(format!("start task failed: {e}")))?
    }

    /// `SignalWithStartWorkflowExecution`: signals the running run, or starts a new run (as the
    /// reuse policy allows) with the signal as its first event after the start.
    pub async fn signal_with_start(
        self: &Arc<Self>,
        req: StartWorkflow,
        signal: Signal,
        reuse: i32,
        conflict: i32,
    ) -> Result<Started> {
        let this = self.clone();
        tokio::spawn(async move { this.start_workflow_now(req, reuse, conflict, Some(signal)).await })
            .await
            .map_err(|e| Error::Internal(format!("start task failed: {e}")))?
    }

    /// The current run with its status and create request id. A run that closes while it is
    /// read may have been continued by a new current run, so the pointer is checked again.
    async fn current_run_status(
        &self,
        slot: &CurrentSlot,
        namespace: &str,
        workflow_id: &str,
    ) -> Result<Option<(String, i32, String)>> {
        loop {
            let Some(run_id) = self.current_run(slot, namespace, workflow_id).await? else { return Ok(None) };
            let (status, request_id) =
                self.read(&run_id, |e| (e.state.status, e.state.create_request_id.clone())).await?;
            if slot.get() == Current::Run(run_id.clone()) {
                return Ok(Some((run_id, status, request_id)));
            }
        }
    }

    async fn start_workflow_now(
        self: &Arc<Self>,
        mut req: StartWorkflow,
        reuse: i32,
        conflict: i32,
        signal: Option<Signal>,
    ) -> Result<Started> {
        let current = self.current_slot(&req.key.namespace, &req.key.workflow_id);
        let starting = current.starts.lock().await;
        let (namespace, workflow_id) = (req.key.namespace.clone(), req.key.workflow_id.clone());
        if let Some((run_id, status, request_id)) = self.current_run_status(&current, &namespace, &workflow_id).await? {
            let running = status == WorkflowExecutionStatus::Running as i32;
            if let (Some(signal), true) = (&signal, running) {
                let signal = signal.clone();
                self.transition_now(&run_id, move |tx, _| Ok(tx.signal(&signal)?.then_some(())), |_, _| ()).await?;
                return Ok(Started { run_id, started: false });
            }
            if request_id == req.request_id {
                return Ok(Started { run_id, started: true });
            }
            let conflict =
                WorkflowIdConflictPolicy::try_from(conflict).unwrap_or(WorkflowIdConflictPolicy::Unspecified);
            let reuse = WorkflowIdReusePolicy::try_from(reuse).unwrap_or(WorkflowIdReusePolicy::Unspecified);
            let already = |message: String| Error::AlreadyStarted {
                message,
                start_request_id: request_id.clone(),
                run_id: run_id.clone(),
            };
            if running {
                let terminate = conflict == WorkflowIdConflictPolicy::TerminateExisting
                    || reuse == WorkflowIdReusePolicy::TerminateIfRunning;
                match conflict {
                    WorkflowIdConflictPolicy::UseExisting => return Ok(Started { run_id, started: false }),
                    _ if terminate => {
                        let identity = req.identity.clone();
                        self.transition_now(
                            &run_id,
                            move |tx, _| {
                                tx.terminate("terminated by a new start with the same workflow id", None, &identity);
                                Ok(Some(()))
                            },
                            |_, _| (),
                        )
                        .await?;
                    }
                    _ => {
                        return Err(already(format!(
                            "Workflow execution is already running. WorkflowId: {}, RunId: {}.",
                            req.key.workflow_id, run_id
                        )))
                    }
                }
            } else {
                match reuse {
                    WorkflowIdReusePolicy::RejectDuplicate => {
                        return Err(already(format!(
                            "Workflow execution already finished and its WorkflowIdReusePolicy is reject duplicate. WorkflowId: {}, RunId: {}.",
                            req.key.workflow_id, run_id
                        )))
                    }
                    WorkflowIdReusePolicy::AllowDuplicateFailedOnly if status == WorkflowExecutionStatus::Completed as i32 => {
                        return Err(already(format!(
                            "Workflow execution already finished successfully. WorkflowId: {}, RunId: {}. Workflow Id reuse policy: allow duplicate workflow Id if last run failed.",
                            req.key.workflow_id, run_id
                        )))
                    }
                    _ => {}
                }
            }
        }
        req.key.run_id = uuid::Uuid::new_v4().to_string();
        if let Some(signal) = signal {
            req.signal = Some(signal.event());
            req.signal_request_id = signal.request_id;
        }
        let key = req.key.clone();
        let (state, events, effects) = workflow::start(req, self.clock.now_ms());
        let writes = vec![
            Write::execution(&state, &events, None),
            Write::Current {
                namespace: key.namespace.clone(),
                workflow_id: key.workflow_id.clone(),
                run_id: key.run_id.clone(),
            },
        ];
        let (state, events, effects) = match self.store.commit(writes).await {
            Ok(()) => (state, events, effects),
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
        let slot = Arc::new(Mutex::new(Some(Execution::new(state, events))));
        self.runs.lock().expect("runs lock").insert(key.run_id.clone(), slot);
        current.set(Current::Run(key.run_id.clone()));
        drop(starting);
        self.perform(&key, effects);
        Ok(Started { run_id: key.run_id, started: true })
    }

    // ---- long polls ----

    /// Takes tasks from a queue until one starts (stale ones are skipped) or the poll expires.
    /// Query tasks (workflow queues only) change nothing: `on_query` builds their response.
    pub async fn poll_task<R: Send + 'static>(
        self: &Arc<Self>,
        namespace: &str,
        task_queue: &str,
        kind: TaskKind,
        timeout: Duration,
        start: impl Fn(QueuedTask) -> StartFn<R>,
        on_query: Option<&QueryResponder<R>>,
    ) -> Result<Option<R>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(task) = self.matching.poll(namespace, task_queue, kind, left).await else {
                return Ok(None);
            };
            let run_id = task.run.run_id.clone();
            if !task.query_id.is_empty() {
                let query = self.queries.lock().expect("queries lock").get(&task.query_id).map(|p| p.query.clone());
                let (Some(query), Some(build)) = (query, on_query) else { continue };
                match self.read(&run_id, |exec| build(exec, &query, &task)).await {
                    Ok(response) => return Ok(Some(response)),
                    Err(Error::NotFound(_)) => continue,
                    Err(e) => {
                        self.matching.offer(namespace, task_queue, kind, task);
                        return Err(e);
                    }
                }
            }
            let (f, then) = start(task.clone());
            match self.transition(&run_id, f, then).await {
                Ok(Some(response)) => return Ok(Some(response)),
                Ok(None) | Err(Error::NotFound(_)) => continue,
                Err(e) => {
                    self.matching.offer(namespace, task_queue, kind, task);
                    return Err(e);
                }
            }
        }
    }

    // ---- reset ----

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
        let task = tokio::spawn(async move { this.reset_now(base, finish_event_id, reason, identity).await });
        task.await.map_err(|e| Error::Internal(format!("reset task failed: {e}")))?
    }

    async fn reset_now(&self, base: RunKey, finish_event_id: i64, reason: String, identity: String) -> Result<String> {
        let slot = self.current_slot(&base.namespace, &base.workflow_id);
        let _starting = slot.starts.lock().await;
        let (base_state, base_history) = self.read(&base.run_id, |e| (e.state.clone(), e.history.clone())).await?;
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
        let current = self.current_run(&slot, &base.namespace, &base.workflow_id).await?.unwrap_or(base.run_id);
        let f = move |tx: &mut Tx, _: &Execution| {
            if tx.state.is_open() {
                tx.terminate(&reason, None, &identity);
            }
            tx.new_run = Some(crate::engine::NewRun { state: run.state, events: run.history, effects: run.effects });
            Ok(Some(()))
        };
        self.transition_now(&current, f, |_, _| ()).await?;
        Ok(new_run_id)
    }

    // ---- delete ----

    /// `DeleteWorkflowExecution`: terminates the run if it is open, then removes it (state,
    /// history, and the workflow id's pointer to it).
    pub async fn delete_run(self: &Arc<Self>, run: &RunKey) -> Result<()> {
        let f = |tx: &mut Tx, _: &Execution| {
            if !tx.state.is_open() {
                return Ok(None);
            }
            tx.terminate("Delete workflow execution", None, "");
            Ok(Some(()))
        };
        self.transition(&run.run_id, f, |_, _| ()).await?;
        let slot = self.current_slot(&run.namespace, &run.workflow_id);
        let _starting = slot.starts.lock().await;
        self.store
            .commit(vec![Write::DeleteExecution {
                namespace: run.namespace.clone(),
                workflow_id: run.workflow_id.clone(),
                run_id: run.run_id.clone(),
            }])
            .await?;
        self.runs.lock().expect("runs lock").remove(&run.run_id);
        if slot.get() == Current::Run(run.run_id.clone()) {
            slot.set(Current::None);
        }
        Ok(())
    }

    // ---- updates ----

    /// `UpdateWorkflowExecution`: admits the update (once per update id), makes sure a workflow
    /// task will carry it to a worker, and waits until it reaches `wanted` or `deadline`.
    pub async fn update(
        self: &Arc<Self>,
        run: &RunKey,
        request: UpdateRequest,
        wanted: UpdateWorkflowExecutionLifecycleStage,
        deadline: tokio::time::Instant,
    ) -> Result<UpdateStatus> {
        let update_id = request.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
        let (known, open) =
            self.read(&run.run_id, |e| (e.state.updates.contains_key(&update_id), e.state.is_open())).await?;
        if !known {
            if !open {
                return Err(Error::not_found("workflow execution already completed"));
            }
            let admitted = {
                let mut all = self.updates.lock().expect("updates lock");
                let of_run = all.entry(run.run_id.clone()).or_default();
                let fresh = !of_run.contains_key(&update_id);
                if fresh {
                    let (progress, _) = watch::channel(None);
                    of_run.insert(update_id.clone(), InflightUpdate { request, progress });
                }
                fresh
            };
            if admitted {
                let f = |tx: &mut Tx, _: &Execution| Ok(tx.schedule_speculative_workflow_task().then_some(()));
                self.transition(&run.run_id, f, |_, _| ()).await?;
            }
        }
        self.wait_update(run, &update_id, wanted, deadline).await
    }

    /// Waits until an update reaches `wanted` (or `deadline`), returning where it is.
    pub async fn wait_update(
        &self,
        run: &RunKey,
        update_id: &str,
        wanted: UpdateWorkflowExecutionLifecycleStage,
        deadline: tokio::time::Instant,
    ) -> Result<UpdateStatus> {
        use UpdateWorkflowExecutionLifecycleStage as Stage;
        // Kept across iterations: after a rejection the registry forgets the update, but this
        // receiver still holds its outcome.
        let mut inflight: Option<watch::Receiver<Option<UpdateProgress>>> = None;
        loop {
            let (durable, open, mut changed) = self
                .read(&run.run_id, |e| {
                    (e.state.updates.get(update_id).cloned(), e.state.is_open(), e.changed.subscribe())
                })
                .await?;
            if inflight.is_none() {
                inflight = self
                    .updates
                    .lock()
                    .expect("updates lock")
                    .get(&run.run_id)
                    .and_then(|of_run| of_run.get(update_id))
                    .map(|u| u.progress.subscribe());
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
                    // the receiver keeps the last value, and the loop re-reads the run.
                    Some(rx) => {
                        if rx.changed().await.is_err() && rx.borrow().is_some() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = changed.changed() => {}
                _ = progressed => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ok(status),
            }
        }
    }

    /// The requests to hand to a worker with the workflow task that starts now: every update
    /// not yet accepted (one handed out before but left unanswered is handed out again).
    pub fn update_messages(&self, run_id: &str, started_event_id: i64) -> Vec<ProtocolMessage> {
        let all = self.updates.lock().expect("updates lock");
        let Some(of_run) = all.get(run_id) else { return Vec::new() };
        let mut waiting: Vec<_> = of_run.values().filter(|u| u.progress.borrow().is_none()).collect();
        waiting.sort_by(|a, b| {
            a.request.meta.as_ref().map(|m| &m.update_id).cmp(&b.request.meta.as_ref().map(|m| &m.update_id))
        });
        waiting.into_iter().map(|u| updates::request_message(&u.request, started_event_id - 1)).collect()
    }

    /// For a completion: the requests of updates not yet accepted, and whether any of them is
    /// not answered by `answered` (update ids the completion's messages speak for).
    pub fn updates_for_completion(
        &self,
        run_id: &str,
        answered: &std::collections::HashSet<String>,
    ) -> (HashMap<String, UpdateRequest>, bool) {
        let all = self.updates.lock().expect("updates lock");
        let Some(of_run) = all.get(run_id) else { return (HashMap::new(), false) };
        let pending: HashMap<String, UpdateRequest> = of_run
            .iter()
            .filter(|(_, u)| u.progress.borrow().is_none())
            .map(|(id, u)| (id.clone(), u.request.clone()))
            .collect();
        let waiting = pending.keys().any(|id| !answered.contains(id));
        (pending, waiting)
    }

    fn update_progressed(&self, run: &RunKey, update_id: &str, progress: UpdateProgress) {
        let mut all = self.updates.lock().expect("updates lock");
        let Some(of_run) = all.get_mut(&run.run_id) else { return };
        let done = matches!(progress, UpdateProgress::Completed(_));
        match of_run.get(update_id) {
            Some(u) => u.progress.send_replace(Some(progress)),
            None => return,
        };
        if done {
            of_run.remove(update_id);
        }
    }

    // ---- queries ----

    /// Sends a query to a worker as a query task (on the sticky queue of the worker that has
    /// the run cached, if it is polling) and waits up to `timeout` for its answer.
    pub async fn query(&self, run: &RunKey, query: WorkflowQuery, timeout: Duration) -> Result<QueryAnswer> {
        let deadline = tokio::time::Instant::now() + timeout;
        // While a workflow task runs, the worker's view of the run is about to change: the
        // query waits for the task to end, as Temporal's does.
        let (task_queue, sticky) = loop {
            let (busy, queues, mut changed) = self
                .read(&run.run_id, |e| {
                    let busy = e.state.workflow_task.as_ref().is_some_and(|w| w.is_started());
                    (busy, (e.state.task_queue.clone(), e.state.sticky.clone()), e.changed.subscribe())
                })
                .await?;
            if !busy {
                break queues;
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return Err(Error::DeadlineExceeded("query timed out before a worker answered it".into()));
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queries.lock().expect("queries lock").insert(id.clone(), PendingQuery { query, reply });
        let _guard = QueryGuard { queries: &self.queries, id: id.clone() };
        let live =
            |s: &Sticky| self.matching.is_live(&run.namespace, &s.task_queue, TaskKind::Workflow, STICKY_LIVENESS);
        let queue = sticky.filter(live).map(|s| s.task_queue).unwrap_or(task_queue);
        let task = QueuedTask { run: run.clone(), scheduled_event_id: 0, attempt: 0, query_id: id };
        self.matching.offer(&run.namespace, &queue, TaskKind::Workflow, task);
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Error::Unavailable("the query was dropped; retry".into())),
            Err(_) => Err(Error::DeadlineExceeded("query timed out before a worker answered it".into())),
        }
    }

    /// `RespondQueryTaskCompleted`: hands the answer to the waiting caller.
    pub fn answer_query(&self, query_id: &str, answer: QueryAnswer) -> Result<()> {
        let pending = self.queries.lock().expect("queries lock").remove(query_id);
        let pending = pending.ok_or_else(|| Error::not_found("query task not found, or its caller stopped waiting"))?;
        let _ = pending.reply.send(answer);
        Ok(())
    }

    /// Fires a due timer (called by the timer loop).
    fn fire_timer(self: &Arc<Self>, run: RunKey, timer: Timer) {
        // Every open run is in memory; a timer of a run that is not has outlived its run, and
        // must not load the run's whole history from the store just to find that out.
        if !self.runs.lock().expect("runs lock").contains_key(&run.run_id) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let result = this
                .transition(
                    &run.run_id,
                    move |tx, _| {
                        let changed = match timer {
                            Timer::WorkflowTaskTimeout { scheduled_event_id, attempt } => {
                                tx.workflow_task_timed_out(scheduled_event_id, attempt)
                            }
                            Timer::ActivityTimeout { scheduled_event_id, attempt, kind } => {
                                tx.activity_timed_out(scheduled_event_id, attempt, kind)
                            }
                            Timer::ActivityRetry { scheduled_event_id, attempt } => {
                                tx.activity_retry_due(scheduled_event_id, attempt)
                            }
                            Timer::UserTimer { timer_id, started_event_id } => {
                                tx.user_timer_fired(&timer_id, started_event_id)
                            }
                            Timer::WorkflowRunTimeout => tx.run_timed_out(),
                            Timer::WorkflowBackoff => tx.backoff_done(),
                            Timer::StickyTimeout { force } => tx.sticky_timed_out(force),
                        };
                        Ok(changed.then_some(()))
                    },
                    |_, _| (),
                )
                .await;
            if let Err(e) = result {
                tracing::warn!(run_id = %run.run_id, error = %e, "timer not applied");
            }
        });
    }
}

/// The transition a poller runs on the task it took, and how it builds its response.
pub type StartFn<R> = (
    Box<dyn FnOnce(&mut Tx, &Execution) -> Result<Option<StartOut>> + Send>,
    Box<dyn FnOnce(StartOut, &Execution) -> R + Send>,
);

/// Builds a poller's response to a query task from the run (which the query does not change).
pub type QueryResponder<R> = dyn Fn(&Execution, &WorkflowQuery, &QueuedTask) -> R + Sync;

/// What starting a task yields before the response is built.
pub enum StartOut {
    WorkflowTask(crate::engine::workflow_task::StartedWorkflowTask),
    Activity(Box<crate::engine::state::Activity>),
}

impl Fire for Service {
    fn fire(self: Arc<Self>, run: RunKey, timer: Timer) {
        self.fire_timer(run, timer);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::clock::SystemClock;
    use crate::store::{sqlite::SqliteStore, ExecutionRecord, Store};

    /// SQLite in memory, with one fault on demand: a commit that lands but reports failure
    /// (the reply was lost), after which reads fail too (the store went away).
    struct LostReply {
        inner: SqliteStore,
        fault: Arc<AtomicBool>,
    }

    impl LostReply {
        fn check(&self) -> store::Result<()> {
            match self.fault.load(Ordering::SeqCst) {
                true => Err(store::Error::Backend("connection lost".into())),
                false => Ok(()),
            }
        }
    }

    impl Store for LostReply {
        fn commit(&mut self, writes: &[Write]) -> store::Result<()> {
            self.inner.commit(writes)?;
            self.check()
        }
        fn load_namespaces(&mut self) -> store::Result<Vec<NamespaceRecord>> {
            self.inner.load_namespaces()
        }
        fn load_open_executions(&mut self) -> store::Result<Vec<ExecutionRecord>> {
            self.inner.load_open_executions()
        }
        fn load_execution(&mut self, run_id: &str) -> store::Result<Option<ExecutionRecord>> {
            self.check()?;
            self.inner.load_execution(run_id)
        }
        fn load_current_runs(&mut self) -> store::Result<Vec<(String, String, String)>> {
            self.inner.load_current_runs()
        }
        fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> store::Result<Option<String>> {
            self.check()?;
            self.inner.load_current_run(namespace, workflow_id)
        }
    }

    fn start_request(request_id: &str) -> StartWorkflow {
        StartWorkflow {
            key: RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: String::new() },
            workflow_type: "T".into(),
            task_queue: "q".into(),
            task_timeout_ms: 10_000,
            request_id: request_id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_start_whose_outcome_is_unknown_is_never_applied_twice() {
        let fault = Arc::new(AtomicBool::new(false));
        let store = LostReply { inner: SqliteStore::open(":memory:").unwrap(), fault: fault.clone() };
        let (handle, _writer) = store::Handle::spawn(Box::new(store));
        let (_stop, shutdown) = watch::channel(false);
        let service = Service::new(Arc::new(SystemClock), handle.clone(), shutdown);

        fault.store(true, Ordering::SeqCst);
        let first = service.start_workflow(start_request("r1"), 0, 0).await;
        assert!(matches!(first, Err(Error::Unavailable(_))), "{first:?}");
        fault.store(false, Ordering::SeqCst);

        // The client retries with the same request id: it gets the run that did land.
        let retried = service.start_workflow(start_request("r1"), 0, 0).await.unwrap();
        let stored = handle.load_current_run("default", "wf").await.unwrap();
        assert_eq!(stored.as_deref(), Some(retried.run_id.as_str()));
        // A different start is refused: that run is running.
        let other = service.start_workflow(start_request("r2"), 0, 0).await;
        assert!(matches!(other, Err(Error::AlreadyStarted { ref run_id, .. }) if *run_id == retried.run_id));
        // And its first workflow task is offered.
        let task = service.matching.poll("default", "q", TaskKind::Workflow, Duration::from_secs(5)).await;
        assert_eq!(task.map(|t| t.run.run_id), Some(retried.run_id));
    }
}
