//! The commit pipeline: a request is applied to a copy of its run's state under the run's
//! lock, committed through the store, installed in memory, and only then are its effects
//! performed — the one place where "effects after commit" happens.

use std::sync::Arc;

use super::cache::{Current, Execution};
use super::relatives;
use super::Service;
use crate::engine::request::{self, Reply, Request};
use crate::engine::state::{Routing, RunKey, Sticky};
use crate::engine::{Effect, Timer};
use crate::error::Result;
use crate::matching::{QueuedTask, TaskKind};
use crate::store::Write;

/// A sticky queue polled within this long counts as live.
pub(crate) const STICKY_LIVENESS: std::time::Duration = std::time::Duration::from_secs(5);

/// What executing a request did.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The request was applied and committed.
    Applied(Reply),
    /// Nothing to change (a stale task or timer, a repeated signal).
    Unchanged,
}

impl Service {
    /// Applies `request` to the run `key` names and commits it. Runs to completion even if
    /// the caller goes away (tonic drops a handler's future when its client leaves).
    /// On a cluster, a run another node serves is executed there.
    pub async fn execute(self: &Arc<Self>, key: &RunKey, request: Request) -> Result<Outcome> {
        use tracing::Instrument;
        if !self.serves(&key.namespace, &key.workflow_id) {
            let moved =
                || crate::error::Error::Unavailable("the run's shard moved while the call was sent; retry".into());
            return self.execute_remote(key, request).await?.ok_or_else(moved);
        }
        let span = tracing::debug_span!("transition", request = request.name(), run_id = %key.run_id);
        let (this, key) = (self.clone(), key.clone());
        self.runtime.complete("transition", async move { this.execute_now(&key, request).await }.instrument(span)).await
    }

    /// `execute` for callers that only care whether it worked.
    pub async fn execute_done(self: &Arc<Self>, key: &RunKey, request: Request) -> Result<()> {
        self.execute(key, request).await.map(|_| ())
    }

    pub(super) async fn execute_now(&self, key: &RunKey, request: Request) -> Result<Outcome> {
        self.execute_inner(key, request, false).await.map(|(outcome, _)| outcome)
    }

    /// A workflow-task completion whose worker asked to run some of its activities itself
    /// (`eager_activity_ids`, on the run's own queue): those start for the worker before they
    /// are offered to any poller (a waiting poller would otherwise take them first); the
    /// others, and any that cannot start, are offered as usual.
    pub async fn complete_with_eager_activities(
        self: &Arc<Self>,
        key: &RunKey,
        request: Request,
        eager_activity_ids: Vec<String>,
        identity: String,
    ) -> Result<(Outcome, Vec<super::Polled>)> {
        let (this, key) = (self.clone(), key.clone());
        self.runtime
            .complete("transition", async move {
                let (outcome, held) = this.execute_inner(&key, request, true).await?;
                let eager: std::collections::HashSet<i64> = this
                    .read(&key, |e| {
                        let ids = eager_activity_ids.iter();
                        ids.filter_map(|id| e.state.pending_activity_by_id(id))
                            .filter(|a| a.task_queue == e.state.task_queue)
                            .map(|a| a.scheduled_event_id)
                            .collect()
                    })
                    .await
                    .unwrap_or_default();
                let mut polled = Vec::new();
                for effect in held {
                    if let Effect::DispatchActivityTask { task_queue, scheduled_event_id, attempt, .. } = &effect {
                        // A rate-limited queue dispatches through matching only, eager or not.
                        let limited =
                            this.matching.effective_rate(&key.namespace, task_queue, TaskKind::Activity).0.is_some();
                        if eager.contains(scheduled_event_id) && !limited {
                            let kind = TaskKind::Activity;
                            let started =
                                this.start_eagerly(&key, kind, *scheduled_event_id, *attempt, identity.clone()).await;
                            if let Ok(Some(task @ super::Polled::Activity(_))) = started {
                                polled.push(task);
                                continue;
                            }
                        }
                    }
                    this.perform(&key, vec![effect]);
                }
                Ok((outcome, polled))
            })
            .await
    }

    /// Applies and commits; with `hold_activity_dispatch`, the activity dispatches of a
    /// transition that starts no new run are returned instead of performed.
    async fn execute_inner(
        &self,
        key: &RunKey,
        mut request: Request,
        hold_activity_dispatch: bool,
    ) -> Result<(Outcome, Vec<Effect>)> {
        let mut guard = loop {
            let guard = self.run_slot(key).await?.lock_owned().await;
            if guard.is_some() {
                break guard;
            }
            // Another commit with an unknown outcome emptied the slot between its load and
            // this lock: the run exists, so load it again rather than answer NOT_FOUND.
        };
        let Some(exec) = guard.as_mut() else { unreachable!("the loop above leaves only a filled slot") };
        // Under the run's lock: an update admitted from here on finds this task done and
        // schedules its own.
        self.updates.attach(&exec.state.key.run_id, &mut request);
        tracing::trace!(run_id = %key.run_id, ?request, "applying");
        let mut state = exec.state.clone();
        let context = request::Context {
            now: self.clock.now_ms(),
            limits: self.limits,
            history: &exec.history,
            new_run_id: uuid::Uuid::new_v4().to_string(),
            search_attribute_types: self.namespaces.custom_types(&key.namespace),
        };
        let applied = request::apply(&mut state, request, context)?;
        if !applied.changed {
            // Effects derived from unchanged state (a re-armed timer) still apply.
            check_timers_indexed(&exec.state, &applied.effects);
            drop(guard);
            self.perform(key, applied.effects);
            return Ok((Outcome::Unchanged, Vec::new()));
        }
        state.transitions += 1;
        let mut writes = vec![Write::transition(&state, &applied.events, &exec.state)];
        if let Some(next) = &applied.new_run {
            writes.push(Write::execution(&next.state, &next.events, None));
            writes.push(Write::current(&next.state.key));
        }
        if let Err(e) = self.store.commit(writes).await {
            tracing::warn!(run_id = %key.run_id, error = %e, "transition not committed; run will be reloaded");
            *guard = None;
            drop(guard);
            self.reload_later(key);
            return Err(e.into());
        }
        let mut held = Vec::new();
        check_timers_indexed(&state, &applied.effects);
        install(exec, state, applied.events);
        check_replay(exec);
        if exec.state.is_open() {
            self.cached_grew(key, exec.bytes);
        } else {
            self.stats.closed(&key.namespace, exec.state.status, exec.state.close_time_ms);
            crate::telemetry::run_closed(&key.namespace, &exec.state.workflow_type, exec.state.status);
            // Closed runs leave memory; whoever asks later reads them from the store. Holders
            // of this slot keep a consistent (closed, unchanging) copy.
            self.forget_run(key);
            // Updates not yet accepted end with the run; their waiters are told.
            self.updates.run_closed(&key.run_id);
        }
        if let Some(next) = applied.new_run {
            self.stats.started(&key.namespace, next.state.start_time_ms);
            // The next run becomes current before this run's lock is released, so a start
            // that read this run closed sees the pointer moved (`start::current_run_status`).
            let next_key = next.state.key.clone();
            self.cache_run(next.state, crate::engine::history::History::of(&next.events));
            self.set_current(&next_key.namespace, &next_key.workflow_id, Current::Run(next_key.run_id.clone()));
            drop(guard);
            self.perform(key, applied.effects);
            self.perform(&next_key, next.effects);
        } else {
            drop(guard);
            let (hold, now): (Vec<_>, Vec<_>) = applied
                .effects
                .into_iter()
                .partition(|e| hold_activity_dispatch && matches!(e, Effect::DispatchActivityTask { .. }));
            held = hold;
            self.perform(key, now);
        }
        Ok((Outcome::Applied(applied.reply), held))
    }

    /// Carries out a committed transition's effects.
    pub(super) fn perform(&self, run: &RunKey, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::DispatchWorkflowTask { task_queue, sticky, routing } => {
                    self.dispatch_workflow_task(run, task_queue, sticky, &routing)
                }
                Effect::DispatchActivityTask { task_queue, scheduled_event_id, attempt, routing } => {
                    let queue = self.deployments.route(run, &task_queue, TaskKind::Activity, routing.pinned.as_ref());
                    self.offer(
                        &run.namespace,
                        &queue.name,
                        TaskKind::Activity,
                        QueuedTask { run: run.clone(), scheduled_event_id, attempt, query: None, cancel: false },
                    )
                }
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
                Effect::CheckParent { parent } => self.later(relatives::check_parent(run.clone(), parent)),
                Effect::UpdateProgress { update_id, progress } => self.updates.progressed(run, &update_id, progress),
                Effect::DispatchNexusTask { endpoint_id, scheduled_event_id, attempt, cancel } => {
                    self.dispatch_nexus_task(run, &endpoint_id, scheduled_event_id, attempt, cancel)
                }
                Effect::DeliverCallbacks => self.later(relatives::deliver_callbacks(run.clone())),
            }
        }
    }

    /// Offers the run's workflow task: on the sticky queue of the worker that caches the run
    /// if it still polls (with a deadline to move it to the normal queue), else normally.
    fn dispatch_workflow_task(&self, run: &RunKey, task_queue: String, sticky: Option<Sticky>, routing: &Routing) {
        let task = QueuedTask { run: run.clone(), scheduled_event_id: 0, attempt: 0, query: None, cancel: false };
        // Worker versioning: the version the task goes to. The worker that caches the run serves
        // it only if it is of that version.
        let queue = self.deployments.route(run, &task_queue, TaskKind::Workflow, routing.pinned.as_ref());
        let sticky = sticky.filter(|_| queue.version == routing.last);
        let task_queue = queue.name;
        match sticky {
            Some(sticky) => {
                let ms = Some(sticky.schedule_to_start_ms);
                self.offer_sticky(&run.namespace, &sticky.task_queue, &task_queue, task, ms)
            }
            None => self.offer(&run.namespace, &task_queue, TaskKind::Workflow, task),
        }
    }

    /// Offers a Nexus attempt to its endpoint's target; an endpoint that is gone fails the
    /// operation (as in Temporal).
    fn dispatch_nexus_task(
        &self,
        run: &RunKey,
        endpoint_id: &str,
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
    ) {
        match self.endpoints.worker_target(endpoint_id) {
            Some(target) => self.offer(
                &target.namespace,
                &target.task_queue,
                TaskKind::Nexus,
                QueuedTask { run: run.clone(), scheduled_event_id, attempt, query: None, cancel },
            ),
            None => {
                let message = match self.endpoints.get(endpoint_id) {
                    Some(_) => "tempora does not call external Nexus endpoints",
                    None => "endpoint not registered",
                };
                let request = crate::engine::request::Request::NexusEndpointGone {
                    scheduled_event_id,
                    attempt,
                    cancel,
                    message: message.into(),
                };
                self.later(relatives::execute(run.clone(), request));
            }
        }
    }

    /// Runs cross-run work (a `relatives` job) in the background, retrying while the store is
    /// unavailable, until it is done or the server stops.
    pub(super) fn later(&self, job: relatives::Job) {
        let Some(this) = self.me.upgrade() else { return };
        let job = Arc::new(job);
        self.runtime.retry(move || {
            let (this, job) = (this.clone(), job.clone());
            async move {
                match job(this).await {
                    Ok(()) => crate::runtime::Attempt::Done,
                    Err(e) => {
                        tracing::debug!(error = %e, "cross-run work will be retried");
                        crate::runtime::Attempt::Again
                    }
                }
            }
        });
    }

    pub(super) fn add_timer(&self, at_ms: crate::clock::Millis, run: &RunKey, timer: Timer) {
        if let Some(timers) = self.timers.lock().expect("timers lock").as_ref() {
            timers.add(at_ms, run.clone(), timer);
        }
    }

    /// Fires a due timer (called by the timer loop).
    pub(super) fn fire_timer(self: &Arc<Self>, run: RunKey, at_ms: crate::clock::Millis, timer: Timer) {
        let this = self.clone();
        self.runtime.spawn(async move {
            // A timer of a run that is not in memory may have outlived its deadline (the run
            // closed, the activity finished): the run's work index says whether it is still
            // wanted, so a stale one costs one indexed read, not loading the run's history.
            // A sticky queue's deadline is in no index and always fires.
            let durable = !matches!(timer, Timer::StickyTimeout { .. });
            // On a cluster, a run's durable timers fire where it is served (a sticky queue's
            // deadline, kept where the queue is, goes to the run's node).
            if durable && !this.serves(&run.namespace, &run.workflow_id) {
                return;
            }
            if durable && !this.is_cached(&run) {
                let item = crate::store::work_key(&Effect::Timer { at_ms, timer: timer.clone() });
                if let Ok(false) = this.store.has_work(&run.run_id, &item).await {
                    return;
                }
            }
            if let Err(e) = this.execute(&run, Request::FireTimer(timer)).await {
                tracing::warn!(run_id = %run.run_id, error = %e, "timer not applied");
            }
        });
    }

    /// A worker shut down: tasks waiting on its sticky queue go to the normal queue now.
    pub fn sticky_queue_gone(self: &Arc<Self>, namespace: &str, sticky_queue: &str) {
        for task in self.matching.remove(namespace, sticky_queue, TaskKind::Workflow) {
            let now = self.clock.now_ms();
            self.fire_timer(task.run, now, Timer::StickyTimeout { force: true });
        }
    }
}

/// Installs a committed transition in memory and wakes the run's waiters.
fn install(
    exec: &mut Execution,
    state: crate::engine::state::MutableState,
    events: Vec<temporalio_protos::temporal::api::history::v1::HistoryEvent>,
) {
    exec.state = state;
    exec.extend(&events);
    exec.changed.send_replace(exec.state.next_event_id);
}

/// Debug builds: every deadline a transition arms is in the work index its state derives
/// (`engine::workflow::recover`), with the same time. A timer of an evicted run fires only if
/// the index still holds it, and the window loader reads only the index: a deadline missing
/// from it would be lost once its run left memory.
fn check_timers_indexed(state: &crate::engine::state::MutableState, effects: &[Effect]) {
    #[cfg(debug_assertions)]
    if state.is_open() {
        let indexed = crate::engine::workflow::recover(state);
        for effect in effects {
            if let Effect::Timer { timer, .. } = effect {
                if !matches!(timer, Timer::StickyTimeout { .. }) {
                    assert!(
                        indexed.contains(effect),
                        "run {}: {effect:?} is not in its work index {indexed:?}",
                        state.key.run_id
                    );
                }
            }
        }
    }
    let _ = (state, effects);
}

/// Longest history `check_replay` replays (it runs on every transition of debug builds).
#[cfg(debug_assertions)]
const REPLAY_CHECK_EVENTS_MAX: usize = 5_000;

/// Debug builds: the state the forward path produced must be the state the run's history
/// replays to (`engine::replay`). Every integration test exercises this on every transition.
fn check_replay(exec: &Execution) {
    #[cfg(debug_assertions)]
    if exec.state.is_open() && exec.history.len() <= REPLAY_CHECK_EVENTS_MAX {
        if let Some(diff) = crate::engine::replay::divergence(&exec.state, &exec.history.to_vec()) {
            panic!("run {} diverges from its replayed history:\n{diff}", exec.state.key.run_id);
        }
    }
    let _ = exec;
}
