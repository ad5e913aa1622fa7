//! Workflow-level transitions: start, close, terminate, run timeout, and recovery after restart.

use std::collections::BTreeMap;

use temporalio_protos::temporal::api::command::v1 as command;
use temporalio_protos::temporal::api::common::v1 as common;
use temporalio_protos::temporal::api::enums::v1::{ContinueAsNewInitiator, RetryState, TaskQueueKind};
use temporalio_protos::temporal::api::history::v1 as history;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;

use super::state::{ClosePolicy, Encoded, MutableState, ParentInfo, RunKey, RunStatus, WorkflowTask};
use super::{cron, Effect, Timer, Tx};
use crate::clock::{proto, Millis};

/// A validated start request (see `frontend` for the checks).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StartWorkflow {
    pub key: RunKey,
    pub workflow_type: String,
    pub task_queue: String,
    pub input: Option<common::Payloads>,
    pub execution_timeout_ms: Millis,
    pub run_timeout_ms: Millis,
    pub task_timeout_ms: Millis,
    pub identity: String,
    pub request_id: String,
    pub retry_policy: Option<common::RetryPolicy>,
    pub memo: Option<common::Memo>,
    pub search_attributes: Option<common::SearchAttributes>,
    pub header: Option<common::Header>,
    pub priority: Option<common::Priority>,
    /// Set when a parent workflow starts this run as its child.
    pub parent: Option<ParentInfo>,
    /// Set when this run continues an earlier one (continue-as-new).
    pub continued: Option<Continued>,
    /// Signal-with-start: the signal, written right after `WorkflowExecutionStarted`.
    pub signal: Option<history::WorkflowExecutionSignaledEventAttributes>,
    pub signal_request_id: String,
    /// 1-based; above 1 for a workflow retry.
    pub attempt: i32,
    pub cron_schedule: String,
    /// Delay before the first workflow task (cron, workflow retry).
    pub first_task_backoff_ms: Millis,
    /// What a client start carries from an earlier run (a schedule's previous result or
    /// failure); a continued run's own `continued` wins.
    pub last_completion_result: Option<common::Payloads>,
    pub continued_failure: Option<temporalio_protos::temporal::api::failure::v1::Failure>,
    /// Worker versioning: an override of the run's versioning behavior.
    #[serde(default)]
    pub versioning_override: Option<temporalio_protos::temporal::api::workflow::v1::VersioningOverride>,
    /// Where to report the chain's close (the Nexus operations it runs for).
    #[serde(default)]
    pub callbacks: Vec<super::state::NexusCallback>,
}

/// How a run is closing, for `Tx::next_run`.
pub(crate) enum Closing<'a> {
    Completed(Option<&'a common::Payloads>),
    Failed(&'a temporalio_protos::temporal::api::failure::v1::Failure),
    TimedOut,
}

/// What a run started by continue-as-new inherits from the run it continues.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Continued {
    pub run_id: String,
    pub first_execution_run_id: String,
    /// `ContinueAsNewInitiator` as its protobuf number.
    pub initiator: i32,
    pub failure: Option<temporalio_protos::temporal::api::failure::v1::Failure>,
    pub last_completion_result: Option<common::Payloads>,
    /// When the first run started (for the execution timeout, which spans every run).
    pub execution_start_ms: Millis,
}

/// Creates a new run: `WorkflowExecutionStarted`, then its first workflow task.
pub fn start(mut req: StartWorkflow, now: Millis) -> (MutableState, Vec<history::HistoryEvent>, Vec<Effect>) {
    if req.continued.is_none() && req.first_task_backoff_ms == 0 && !req.cron_schedule.is_empty() {
        // A new cron workflow's first run waits for the schedule's first time.
        if let Ok(schedule) = cron::parse(&req.cron_schedule) {
            req.first_task_backoff_ms = cron::backoff_ms(&schedule, now, now);
        }
    }
    let continued = req.continued.clone().unwrap_or_default();
    let first_execution_run_id = if continued.first_execution_run_id.is_empty() {
        req.key.run_id.to_string()
    } else {
        continued.first_execution_run_id
    };
    let execution_start_ms = if continued.execution_start_ms > 0 { continued.execution_start_ms } else { now };
    let mut state = MutableState {
        key: req.key.clone(),
        workflow_type: req.workflow_type.clone(),
        task_queue: req.task_queue.clone(),
        status: RunStatus::Running,
        start_time_ms: now,
        close_time_ms: 0,
        next_event_id: 1,
        workflow_task_timeout_ms: req.task_timeout_ms,
        run_timeout_ms: req.run_timeout_ms,
        execution_timeout_ms: req.execution_timeout_ms,
        create_request_id: req.request_id.clone(),
        first_execution_run_id: first_execution_run_id.clone(),
        execution_start_ms,
        last_completed_wft_started_event_id: 0,
        workflow_task: None,
        activities: BTreeMap::new(),
        timers: BTreeMap::new(),
        buffered_events: Vec::new(),
        history_size_bytes: 0,
        transitions: 1,
        sticky: None,
        cancel_requested: false,
        signal_request_ids: Default::default(),
        memo: req.memo.as_ref().map(Encoded::of),
        search_attributes: req.search_attributes.as_ref().map(Encoded::of),
        parent: req.parent.clone(),
        children: BTreeMap::new(),
        external: BTreeMap::new(),
        new_execution_run_id: String::new(),
        updates: BTreeMap::new(),
        nexus_operations: BTreeMap::new(),
        callbacks: req.callbacks.clone(),
        versioning: Default::default(),
        backoff_until_ms: if req.first_task_backoff_ms > 0 { now + req.first_task_backoff_ms } else { 0 },
        execution_time_ms: now + req.first_task_backoff_ms.max(0),
    };
    if !req.signal_request_id.is_empty() {
        state.signal_request_ids.insert(req.signal_request_id.clone());
    }
    super::versioning::set_override(&mut state.versioning, req.versioning_override.as_ref());
    let (workflow_id, run_id) = state.root_execution();
    let root_workflow_execution = common::WorkflowExecution { workflow_id, run_id };
    let mut tx = Tx::new(&mut state, now);
    tx.append(history::WorkflowExecutionStartedEventAttributes {
        workflow_type: Some(common::WorkflowType { name: req.workflow_type }),
        task_queue: Some(normal_queue(&req.task_queue)),
        input: req.input,
        // Unset when the execution has no timeout, as in Temporal.
        workflow_execution_timeout: (req.execution_timeout_ms > 0).then(|| proto::duration(req.execution_timeout_ms)),
        workflow_run_timeout: Some(proto::duration(req.run_timeout_ms)),
        workflow_task_timeout: Some(proto::duration(req.task_timeout_ms)),
        original_execution_run_id: req.key.run_id.to_string(),
        identity: req.identity,
        first_execution_run_id,
        continued_execution_run_id: continued.run_id,
        initiator: continued.initiator,
        continued_failure: continued.failure.or(req.continued_failure),
        last_completion_result: continued.last_completion_result.or(req.last_completion_result),
        parent_workflow_namespace: req.parent.as_ref().map(|p| p.namespace.clone()).unwrap_or_default(),
        parent_workflow_execution: req
            .parent
            .as_ref()
            .map(|p| common::WorkflowExecution { workflow_id: p.workflow_id.clone(), run_id: p.run_id.clone() }),
        parent_initiated_event_id: req.parent.as_ref().map_or(0, |p| p.initiated_event_id),
        // Only a run with a parent names its root; a root run leaves it unset.
        root_workflow_execution: req.parent.is_some().then_some(root_workflow_execution),
        workflow_execution_expiration_time: (req.execution_timeout_ms > 0)
            .then(|| proto::timestamp(execution_start_ms + req.execution_timeout_ms)),
        retry_policy: req.retry_policy,
        attempt: req.attempt.max(1),
        cron_schedule: req.cron_schedule.clone(),
        first_workflow_task_backoff: Some(proto::duration(req.first_task_backoff_ms.max(0))),
        memo: req.memo,
        search_attributes: req.search_attributes,
        header: req.header,
        workflow_id: req.key.workflow_id.to_string(),
        priority: req.priority,
        versioning_override: req.versioning_override,
        ..Default::default()
    });
    if let Some(signal) = req.signal {
        tx.append(signal);
    }
    tx.schedule_workflow_task_if_needed();
    if tx.state.backoff_until_ms > 0 {
        tx.schedule_timer(tx.state.backoff_until_ms, Timer::WorkflowBackoff);
    }
    if let Some(at_ms) = tx.state.run_deadline_ms() {
        tx.schedule_timer(at_ms, Timer::WorkflowRunTimeout);
    }
    let (events, mut effects) = (tx.events, tx.effects);
    super::stamp_routing(&state, &mut effects);
    (state, events, effects)
}

pub fn normal_queue(name: &str) -> TaskQueue {
    TaskQueue { name: name.to_string(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }
}

impl Tx<'_> {
    /// Marks the run closed. Pending work is dropped; late completions for it get NotFound.
    pub(crate) fn close(&mut self, status: RunStatus) {
        self.state.status = status;
        self.state.close_time_ms = self.now;
        self.close_relatives();
        self.state.children.clear();
        self.state.external.clear();
        self.state.workflow_task = None;
        self.state.activities.clear();
        self.state.timers.clear();
        self.state.nexus_operations.clear();
        self.state.buffered_events.clear();
    }

    /// Terminates an open run (`TerminateWorkflowExecution`, or a server-side limit).
    pub fn terminate(&mut self, reason: &str, details: Option<common::Payloads>, identity: &str) {
        self.flush_buffered_events();
        self.append(history::WorkflowExecutionTerminatedEventAttributes {
            reason: reason.to_string(),
            details,
            identity: identity.to_string(),
        });
        self.close(RunStatus::Terminated);
    }

    /// The `ContinueAsNewWorkflowExecution` command: closes this run and creates the next one,
    /// in the same transaction. Unset fields are inherited from this run.
    pub(crate) fn continue_as_new(
        &mut self,
        a: &command::ContinueAsNewWorkflowExecutionCommandAttributes,
        completed_id: i64,
    ) {
        let new_run_id = self.new_run_id.clone();
        debug_assert!(!new_run_id.is_empty(), "the caller chooses the new run's id");
        // SDKs leave it unset; the workflow itself asked (Temporal records it so).
        let initiator = match a.initiator {
            0 => ContinueAsNewInitiator::Workflow as i32,
            given => given,
        };
        let state = &*self.state;
        let or = |ms: Millis, fallback: Millis| if ms > 0 { ms } else { fallback };
        let workflow_type = a.workflow_type.as_ref().map(|t| t.name.clone()).filter(|n| !n.is_empty());
        let task_queue = a.task_queue.as_ref().map(|q| q.name.clone()).filter(|n| !n.is_empty());
        let req = StartWorkflow {
            key: RunKey { run_id: new_run_id.clone().into(), ..state.key.clone() },
            workflow_type: workflow_type.unwrap_or_else(|| state.workflow_type.clone()),
            task_queue: task_queue.unwrap_or_else(|| state.task_queue.clone()),
            input: a.input.clone(),
            execution_timeout_ms: state.execution_timeout_ms,
            run_timeout_ms: or(proto::duration_ms(a.workflow_run_timeout.as_ref()), state.run_timeout_ms),
            task_timeout_ms: or(proto::duration_ms(a.workflow_task_timeout.as_ref()), state.workflow_task_timeout_ms),
            identity: String::new(),
            request_id: new_run_id.clone(),
            retry_policy: a.retry_policy.clone(),
            memo: a.memo.clone().or_else(|| state.memo.as_ref().map(|m| m.decode())),
            search_attributes: a
                .search_attributes
                .clone()
                .or_else(|| state.search_attributes.as_ref().map(|m| m.decode())),
            header: a.header.clone(),
            priority: None,
            parent: state.parent.clone(),
            last_completion_result: None,
            continued_failure: None,
            continued: Some(Continued {
                run_id: state.key.run_id.to_string(),
                first_execution_run_id: state.first_execution_run_id.clone(),
                initiator,
                failure: a.failure.clone(),
                last_completion_result: a.last_completion_result.clone(),
                execution_start_ms: state.execution_start(),
            }),
            signal: None,
            signal_request_id: String::new(),
            attempt: 1,
            cron_schedule: self.started.map(|s| s.cron_schedule.clone()).unwrap_or_default(),
            first_task_backoff_ms: proto::duration_ms(a.backoff_start_interval.as_ref()).max(0),
            callbacks: Vec::new(),
            versioning_override: super::versioning::override_of(&self.state.versioning),
        };
        self.append(history::WorkflowExecutionContinuedAsNewEventAttributes {
            new_execution_run_id: new_run_id.clone(),
            workflow_type: Some(common::WorkflowType { name: req.workflow_type.clone() }),
            task_queue: Some(normal_queue(&req.task_queue)),
            input: req.input.clone(),
            workflow_run_timeout: Some(proto::duration(req.run_timeout_ms)),
            workflow_task_timeout: Some(proto::duration(req.task_timeout_ms)),
            workflow_task_completed_event_id: completed_id,
            backoff_start_interval: a.backoff_start_interval,
            initiator,
            failure: a.failure.clone(),
            last_completion_result: a.last_completion_result.clone(),
            header: req.header.clone(),
            memo: req.memo.clone(),
            search_attributes: req.search_attributes.clone(),
            ..Default::default()
        });
        // Set before the close: a continued run does not report to its parent.
        self.state.new_execution_run_id = new_run_id;
        self.close(RunStatus::ContinuedAsNew);
        self.begin_next_run(req);
    }

    /// Creates the run that continues this one (in this transaction) and links them.
    fn begin_next_run(&mut self, mut req: StartWorkflow) {
        self.state.new_execution_run_id = req.key.run_id.to_string();
        // The operations this chain runs for wait for its last run.
        req.callbacks = std::mem::take(&mut self.state.callbacks);
        let (state, events, effects) = start(req, self.now);
        self.new_run = Some(super::NewRun { state, events, effects });
    }

    /// A user timer fired; false if it was cancelled or is not due.
    pub fn user_timer_fired(&mut self, timer_id: &str, started_event_id: i64) -> bool {
        match self.state.timers.get(timer_id) {
            Some(t) if t.started_event_id == started_event_id && self.now >= t.fire_time_ms => {}
            _ => return false,
        }
        self.state.timers.remove(timer_id);
        self.add_external(history::TimerFiredEventAttributes { timer_id: timer_id.to_string(), started_event_id });
        true
    }

    /// The run timeout fired.
    pub fn run_timed_out(&mut self) -> bool {
        match self.state.run_deadline_ms() {
            Some(deadline) if self.state.is_open() && self.now >= deadline => {}
            _ => return false,
        }
        self.flush_buffered_events();
        let (new_execution_run_id, retry_state) = self.next_run(Closing::TimedOut);
        self.append(history::WorkflowExecutionTimedOutEventAttributes {
            retry_state: retry_state as i32,
            new_execution_run_id,
        });
        self.close(RunStatus::TimedOut);
        true
    }

    /// The first workflow task's backoff is over.
    pub fn backoff_done(&mut self) -> bool {
        if !self.state.is_open() || self.state.backoff_until_ms == 0 || self.now < self.state.backoff_until_ms {
            return false;
        }
        self.state.backoff_until_ms = 0;
        self.schedule_workflow_task_if_needed();
        true
    }

    /// Whether a closing run is followed by another — a workflow retry (for a failure or
    /// timeout, as its retry policy allows), else the next cron run — and if so, creates it.
    /// Returns the new run's id (empty if none) and the retry state for the close event.
    pub(crate) fn next_run(&mut self, closing: Closing) -> (String, RetryState) {
        let Some(started) = self.started else { return (String::new(), RetryState::RetryPolicyNotSet) };
        let (backoff_ms, retry_state, initiator) = match self.retry_backoff(started, &closing) {
            (Some(backoff), state) => (backoff, state, ContinueAsNewInitiator::Retry),
            (None, state) => match cron::parse(&started.cron_schedule) {
                Ok(schedule) if !started.cron_schedule.is_empty() => {
                    let backoff = cron::backoff_ms(&schedule, self.state.execution_time_ms, self.now);
                    (backoff, state, ContinueAsNewInitiator::CronSchedule)
                }
                _ => return (String::new(), state),
            },
        };
        let state = &*self.state;
        let new_run_id = self.new_run_id.clone();
        let (failure, last_completion_result) = match &closing {
            Closing::Completed(result) => (None, result.cloned()),
            Closing::Failed(f) => (Some((*f).clone()), None),
            Closing::TimedOut => (None, None),
        };
        let attempt = if initiator == ContinueAsNewInitiator::Retry { started.attempt.max(1) + 1 } else { 1 };
        let req = StartWorkflow {
            key: RunKey { run_id: new_run_id.clone().into(), ..state.key.clone() },
            workflow_type: state.workflow_type.clone(),
            task_queue: state.task_queue.clone(),
            input: started.input.clone(),
            execution_timeout_ms: state.execution_timeout_ms,
            run_timeout_ms: state.run_timeout_ms,
            task_timeout_ms: state.workflow_task_timeout_ms,
            identity: started.identity.clone(),
            request_id: new_run_id.clone(),
            retry_policy: started.retry_policy.clone(),
            // The run's memo and search attributes as upserted, as Temporal carries them.
            memo: state.memo.as_ref().map(|m| m.decode()).or_else(|| started.memo.clone()),
            search_attributes: state
                .search_attributes
                .as_ref()
                .map(|m| m.decode())
                .or_else(|| started.search_attributes.clone()),
            header: started.header.clone(),
            priority: started.priority.clone(),
            parent: state.parent.clone(),
            last_completion_result: None,
            continued_failure: None,
            continued: Some(Continued {
                run_id: state.key.run_id.to_string(),
                first_execution_run_id: state.first_execution_run_id.clone(),
                initiator: initiator as i32,
                failure,
                last_completion_result,
                execution_start_ms: state.execution_start(),
            }),
            signal: None,
            signal_request_id: String::new(),
            attempt,
            cron_schedule: started.cron_schedule.clone(),
            first_task_backoff_ms: backoff_ms,
            callbacks: Vec::new(),
            versioning_override: super::versioning::override_of(&self.state.versioning),
        };
        self.begin_next_run(req);
        (new_run_id, retry_state)
    }

    /// The backoff before a workflow retry, if the retry policy allows one, and the retry state.
    fn retry_backoff(
        &self,
        started: &history::WorkflowExecutionStartedEventAttributes,
        closing: &Closing,
    ) -> (Option<Millis>, RetryState) {
        if matches!(closing, Closing::Completed(_)) {
            return (None, RetryState::Unspecified);
        }
        if started.retry_policy.is_none() {
            return (None, RetryState::RetryPolicyNotSet);
        }
        let Ok(policy) = super::activity::retry_policy(started.retry_policy.as_ref()) else {
            return (None, RetryState::RetryPolicyNotSet);
        };
        if let Closing::Failed(f) = closing {
            if super::activity::is_non_retryable(f, &policy) {
                return (None, RetryState::NonRetryableFailure);
            }
        }
        let attempt = started.attempt.max(1);
        if policy.maximum_attempts > 0 && attempt >= policy.maximum_attempts {
            return (None, RetryState::MaximumAttemptsReached);
        }
        let backoff = policy.backoff_ms(attempt);
        let execution_start = self.state.execution_start();
        if self.state.execution_timeout_ms > 0
            && self.now + backoff >= execution_start + self.state.execution_timeout_ms
        {
            return (None, RetryState::Timeout);
        }
        (Some(backoff), RetryState::InProgress)
    }
}

/// What an open run waits on — its timers, the tasks to offer, the work it owes other runs —
/// derived from its state alone. The store keeps this set as an index beside each run (so a
/// restart finds it without loading runs), and a run loaded after an unknown commit outcome
/// offers it again.
pub fn recover(state: &MutableState) -> Vec<Effect> {
    let mut effects = Vec::new();
    if !state.is_open() {
        // A closed run owes its outcome to the operations it ran for until it is delivered.
        if !state.callbacks.is_empty() {
            effects.push(Effect::DeliverCallbacks);
        }
        return effects;
    }
    if let Some(at_ms) = state.run_deadline_ms() {
        effects.push(Effect::Timer { at_ms, timer: Timer::WorkflowRunTimeout });
    }
    if let Some(wft) = &state.workflow_task {
        recover_workflow_task(state, wft, &mut effects);
    }
    if state.backoff_until_ms > 0 {
        effects.push(Effect::Timer { at_ms: state.backoff_until_ms, timer: Timer::WorkflowBackoff });
    }
    for activity in state.activities.values() {
        effects.extend(super::activity::attempt_effects(activity));
    }
    for child in state.children.values() {
        let initiated_event_id = child.initiated_event_id;
        effects.push(match child.run_id.is_empty() {
            true => Effect::StartChild { initiated_event_id },
            false => Effect::CheckChild { initiated_event_id },
        });
    }
    for initiated_event_id in state.external.keys().copied() {
        effects.push(Effect::DeliverExternal { initiated_event_id });
    }
    if let Some(parent) = state.parent.as_ref().filter(|p| p.close_policy != ClosePolicy::Abandon) {
        effects.push(Effect::CheckParent { parent: parent.clone() });
    }
    for op in state.nexus_operations.values() {
        effects.extend(super::nexus::operation_effects(op));
    }
    for timer in state.timers.values() {
        effects.push(Effect::Timer {
            at_ms: timer.fire_time_ms,
            timer: Timer::UserTimer { timer_id: timer.timer_id.clone(), started_event_id: timer.started_event_id },
        });
    }
    super::stamp_routing(state, &mut effects);
    effects
}

fn recover_workflow_task(state: &MutableState, wft: &WorkflowTask, effects: &mut Vec<Effect>) {
    if wft.is_started() {
        effects.push(Effect::Timer {
            at_ms: wft.started_time_ms + state.workflow_task_timeout_ms,
            timer: Timer::WorkflowTaskTimeout { scheduled_event_id: wft.scheduled_event_id, attempt: wft.attempt },
        });
    } else {
        effects.push(Effect::DispatchWorkflowTask {
            task_queue: state.task_queue.clone(),
            sticky: state.sticky.clone(),
            routing: Default::default(),
        });
    }
}
