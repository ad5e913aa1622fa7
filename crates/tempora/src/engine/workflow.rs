//! Workflow-level transitions: start, close, terminate, run timeout, and recovery after restart.

use std::collections::BTreeMap;

use temporalio_protos::temporal::api::common::v1 as common;
use temporalio_protos::temporal::api::enums::v1::{RetryState, TaskQueueKind, WorkflowExecutionStatus};
use temporalio_protos::temporal::api::history::v1 as history;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;

use super::state::{MutableState, RunKey, WorkflowTask};
use super::{Effect, Timer, Tx};
use crate::clock::{proto, Millis};

/// A validated start request (see `frontend` for the checks).
#[derive(Clone, Debug, Default)]
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
}

/// Creates a new run: `WorkflowExecutionStarted`, then its first workflow task.
pub fn start(req: StartWorkflow, now: Millis) -> (MutableState, Vec<history::HistoryEvent>, Vec<Effect>) {
    let mut state = MutableState {
        key: req.key.clone(),
        workflow_type: req.workflow_type.clone(),
        task_queue: req.task_queue.clone(),
        status: WorkflowExecutionStatus::Running as i32,
        start_time_ms: now,
        close_time_ms: 0,
        next_event_id: 1,
        workflow_task_timeout_ms: req.task_timeout_ms,
        run_timeout_ms: req.run_timeout_ms,
        execution_timeout_ms: req.execution_timeout_ms,
        create_request_id: req.request_id.clone(),
        first_execution_run_id: req.key.run_id.clone(),
        last_completed_wft_started_event_id: 0,
        workflow_task: None,
        activities: BTreeMap::new(),
        timers: BTreeMap::new(),
        buffered_events: Vec::new(),
        history_size_bytes: 0,
        transitions: 1,
        sticky: None,
    };
    let mut tx = Tx::new(&mut state, now);
    tx.append(history::WorkflowExecutionStartedEventAttributes {
        workflow_type: Some(common::WorkflowType { name: req.workflow_type }),
        task_queue: Some(normal_queue(&req.task_queue)),
        input: req.input,
        workflow_execution_timeout: Some(proto::duration(req.execution_timeout_ms)),
        workflow_run_timeout: Some(proto::duration(req.run_timeout_ms)),
        workflow_task_timeout: Some(proto::duration(req.task_timeout_ms)),
        original_execution_run_id: req.key.run_id.clone(),
        identity: req.identity,
        first_execution_run_id: req.key.run_id.clone(),
        retry_policy: req.retry_policy,
        attempt: 1,
        memo: req.memo,
        search_attributes: req.search_attributes,
        header: req.header,
        workflow_id: req.key.workflow_id.clone(),
        priority: req.priority,
        ..Default::default()
    });
    tx.schedule_workflow_task_if_needed();
    if req.run_timeout_ms > 0 {
        tx.schedule_timer(now + req.run_timeout_ms, Timer::WorkflowRunTimeout);
    }
    let (events, effects) = (tx.events, tx.effects);
    (state, events, effects)
}

pub fn normal_queue(name: &str) -> TaskQueue {
    TaskQueue { name: name.to_string(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }
}

impl Tx<'_> {
    /// Marks the run closed. Pending work is dropped; late completions for it get NotFound.
    pub(crate) fn close(&mut self, status: WorkflowExecutionStatus) {
        self.state.status = status as i32;
        self.state.close_time_ms = self.now;
        self.state.workflow_task = None;
        self.state.activities.clear();
        self.state.timers.clear();
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
        self.close(WorkflowExecutionStatus::Terminated);
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
        let deadline = self.state.start_time_ms + self.state.run_timeout_ms;
        if !self.state.is_open() || self.state.run_timeout_ms == 0 || self.now < deadline {
            return false;
        }
        self.flush_buffered_events();
        self.append(history::WorkflowExecutionTimedOutEventAttributes {
            retry_state: RetryState::Timeout as i32,
            new_execution_run_id: String::new(),
        });
        self.close(WorkflowExecutionStatus::TimedOut);
        true
    }
}

/// The timers and dispatches an open run needs after a restart, derived from its state alone.
pub fn recover(state: &MutableState) -> Vec<Effect> {
    let mut effects = Vec::new();
    if !state.is_open() {
        return effects;
    }
    if state.run_timeout_ms > 0 {
        effects.push(Effect::Timer {
            at_ms: state.start_time_ms + state.run_timeout_ms,
            timer: Timer::WorkflowRunTimeout,
        });
    }
    if let Some(wft) = &state.workflow_task {
        recover_workflow_task(state, wft, &mut effects);
    }
    for activity in state.activities.values() {
        effects.extend(super::activity::attempt_effects(activity));
    }
    for timer in state.timers.values() {
        effects.push(Effect::Timer {
            at_ms: timer.fire_time_ms,
            timer: Timer::UserTimer { timer_id: timer.timer_id.clone(), started_event_id: timer.started_event_id },
        });
    }
    effects
}

fn recover_workflow_task(state: &MutableState, wft: &WorkflowTask, effects: &mut Vec<Effect>) {
    if wft.is_started() {
        effects.push(Effect::Timer {
            at_ms: wft.started_time_ms + state.workflow_task_timeout_ms,
            timer: Timer::WorkflowTaskTimeout { scheduled_event_id: wft.scheduled_event_id, attempt: wft.attempt },
        });
    } else {
        effects
            .push(Effect::DispatchWorkflowTask { task_queue: state.task_queue.clone(), sticky: state.sticky.clone() });
    }
}
