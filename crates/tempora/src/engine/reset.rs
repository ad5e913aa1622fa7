//! `ResetWorkflowExecution`: a new run whose history is the base run's history up to a
//! workflow task, that task failed with cause RESET_WORKFLOW, the base run's later signals
//! reapplied, and a new workflow task — so the worker replays up to the reset point and
//! continues from there.
//!
//! The new run's mutable state is rebuilt from the copied events (`rebuild`), the one place
//! where state is derived from history rather than from commands.

use prost::Message;
use temporalio_protos::temporal::api::command::v1::StartChildWorkflowExecutionCommandAttributes;
use temporalio_protos::temporal::api::common::v1::{Memo, SearchAttributes};
use temporalio_protos::temporal::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::{self as history, history_event::Attributes, HistoryEvent};

use super::state::{
    Activity, Child, Encoded, ExternalRequest, MutableState, RunKey, UpdateRecord, UserTimer, WorkflowTask,
};
use super::workflow::{start, StartWorkflow};
use super::{Effect, Tx};
use crate::clock::{proto, Millis};

/// The reset run: its state, its whole history (copied and new events), and what to do once
/// it is committed.
pub struct ResetRun {
    pub state: MutableState,
    pub history: Vec<HistoryEvent>,
    pub effects: Vec<Effect>,
}

/// Builds the reset run from the base run's history. `finish_event_id` names the event that
/// ended the workflow task to reset to (its completion, failure or timeout).
pub fn reset(
    base: &MutableState,
    base_history: &[HistoryEvent],
    finish_event_id: i64,
    new_run_id: &str,
    reason: &str,
    identity: &str,
    now: Millis,
) -> Result<ResetRun, String> {
    let started_index = (finish_event_id - 2).max(0) as usize;
    let is_wft_started = base_history
        .get(started_index)
        .is_some_and(|e| e.event_type == EventType::WorkflowTaskStarted as i32 && e.event_id == finish_event_id - 1);
    let finishes_task = base_history.get(started_index + 1).is_some_and(|e| {
        [EventType::WorkflowTaskCompleted, EventType::WorkflowTaskFailed, EventType::WorkflowTaskTimedOut]
            .iter()
            .any(|t| *t as i32 == e.event_type)
    });
    if finish_event_id <= 2 || !is_wft_started || !finishes_task {
        return Err(format!(
            "WorkflowTaskFinishEventId {finish_event_id} does not name the completion, failure or timeout of a workflow task."
        ));
    }
    let copied = &base_history[..=started_index];
    let key = RunKey { run_id: new_run_id.to_string(), ..base.key.clone() };
    let mut state = rebuild(key, copied, base)?;
    let wft = state.workflow_task.clone().ok_or("the reset point has no workflow task")?;
    let mut tx = Tx::new(&mut state, now);
    tx.append(history::WorkflowTaskFailedEventAttributes {
        scheduled_event_id: wft.scheduled_event_id,
        started_event_id: wft.started_event_id,
        cause: WorkflowTaskFailedCause::ResetWorkflow as i32,
        failure: Some(Failure { message: reason.to_string(), ..Default::default() }),
        identity: identity.to_string(),
        base_run_id: base.key.run_id.clone(),
        new_run_id: new_run_id.to_string(),
        ..Default::default()
    });
    tx.state.workflow_task = None;
    // Signals the base run received after the reset point are delivered again.
    for event in &base_history[started_index + 1..] {
        if let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = &event.attributes {
            tx.append(a.clone());
        }
    }
    tx.schedule_workflow_task_if_needed();
    let events = tx.events;
    // Pending activities start over from now (their old deadlines belong to the base run).
    for activity in state.activities.values_mut() {
        activity.scheduled_time_ms = now;
        activity.attempt_scheduled_time_ms = now;
    }
    let effects = super::workflow::recover(&state);
    let mut history = copied.to_vec();
    history.extend(events);
    state.transitions = 1;
    Ok(ResetRun { state, history, effects })
}

/// Mutable state as it was after `events` (a prefix of `base`'s history).
fn rebuild(key: RunKey, events: &[HistoryEvent], base: &MutableState) -> Result<MutableState, String> {
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) =
        events.first().and_then(|e| e.attributes.as_ref())
    else {
        return Err("the base run's history does not start with WorkflowExecutionStarted".into());
    };
    let req = StartWorkflow {
        key,
        workflow_type: base.workflow_type.clone(),
        task_queue: base.task_queue.clone(),
        execution_timeout_ms: base.execution_timeout_ms,
        run_timeout_ms: base.run_timeout_ms,
        task_timeout_ms: base.workflow_task_timeout_ms,
        request_id: uuid_like(&base.key.run_id),
        memo: started.memo.clone(),
        search_attributes: started.search_attributes.clone(),
        parent: base.parent.clone(),
        ..Default::default()
    };
    let (mut state, _, _) = start(req, time_of(&events[0]));
    state.first_execution_run_id = base.first_execution_run_id.clone();
    state.execution_start_ms = base.execution_start_ms;
    state.next_event_id = 1;
    state.history_size_bytes = 0;
    state.workflow_task = None;
    state.backoff_until_ms = 0;
    for event in events {
        state.next_event_id = event.event_id + 1;
        state.history_size_bytes += event.encoded_len() as i64;
        apply(&mut state, event);
    }
    Ok(state)
}

fn uuid_like(base_run_id: &str) -> String {
    format!("reset-of-{base_run_id}")
}

fn time_of(event: &HistoryEvent) -> Millis {
    event.event_time.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000).unwrap_or(0)
}

fn apply(state: &mut MutableState, event: &HistoryEvent) {
    use Attributes as A;
    let id = event.event_id;
    let at = time_of(event);
    let Some(attributes) = &event.attributes else { return };
    match attributes {
        A::WorkflowTaskScheduledEventAttributes(a) => {
            state.workflow_task = Some(WorkflowTask {
                attempt: a.attempt.max(1),
                scheduled_event_id: id,
                started_event_id: 0,
                scheduled_time_ms: at,
                started_time_ms: 0,
                started_identity: String::new(),
                started_request_id: String::new(),
                speculative: false,
            });
        }
        A::WorkflowTaskStartedEventAttributes(a) => {
            if let Some(w) = state.workflow_task.as_mut() {
                w.started_event_id = id;
                w.started_time_ms = at;
                w.started_identity = a.identity.clone();
            }
        }
        A::WorkflowTaskCompletedEventAttributes(a) => {
            state.workflow_task = None;
            state.last_completed_wft_started_event_id = a.started_event_id;
        }
        A::WorkflowTaskFailedEventAttributes(_) | A::WorkflowTaskTimedOutEventAttributes(_) => {
            state.workflow_task = None;
        }
        A::ActivityTaskScheduledEventAttributes(a) => {
            let ms = |d: &Option<prost_types::Duration>| proto::duration_ms(d.as_ref());
            let retry = super::activity::retry_policy(a.retry_policy.as_ref()).unwrap_or_default();
            state.activities.insert(
                id,
                Activity {
                    scheduled_event_id: id,
                    activity_id: a.activity_id.clone(),
                    activity_type: a.activity_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                    task_queue: a.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
                    scheduled_time_ms: at,
                    attempt: 1,
                    attempt_scheduled_time_ms: at,
                    started_time_ms: 0,
                    started_identity: String::new(),
                    started_request_id: String::new(),
                    schedule_to_start_ms: ms(&a.schedule_to_start_timeout),
                    start_to_close_ms: ms(&a.start_to_close_timeout),
                    schedule_to_close_ms: ms(&a.schedule_to_close_timeout),
                    heartbeat_ms: ms(&a.heartbeat_timeout),
                    retry,
                    last_heartbeat_ms: 0,
                    heartbeat_details: None,
                    last_failure: None,
                    cancel_requested: false,
                    cancel_requested_event_id: 0,
                    backoff_until_ms: 0,
                },
            );
        }
        A::ActivityTaskCancelRequestedEventAttributes(a) => {
            if let Some(activity) = state.activities.get_mut(&a.scheduled_event_id) {
                activity.cancel_requested = true;
                activity.cancel_requested_event_id = id;
            }
        }
        A::ActivityTaskCompletedEventAttributes(a) => {
            state.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskFailedEventAttributes(a) => {
            state.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskTimedOutEventAttributes(a) => {
            state.activities.remove(&a.scheduled_event_id);
        }
        A::ActivityTaskCanceledEventAttributes(a) => {
            state.activities.remove(&a.scheduled_event_id);
        }
        A::TimerStartedEventAttributes(a) => {
            let fire_time_ms = at + proto::duration_ms(a.start_to_fire_timeout.as_ref());
            state.timers.insert(
                a.timer_id.clone(),
                UserTimer { timer_id: a.timer_id.clone(), started_event_id: id, fire_time_ms },
            );
        }
        A::TimerFiredEventAttributes(a) => {
            state.timers.remove(&a.timer_id);
        }
        A::TimerCanceledEventAttributes(a) => {
            state.timers.remove(&a.timer_id);
        }
        A::WorkflowExecutionCancelRequestedEventAttributes(_) => state.cancel_requested = true,
        A::UpsertWorkflowSearchAttributesEventAttributes(a) => {
            let mut current: SearchAttributes =
                state.search_attributes.as_ref().map(|e| e.decode()).unwrap_or_default();
            current.indexed_fields.extend(a.search_attributes.clone().unwrap_or_default().indexed_fields);
            state.search_attributes = Some(Encoded::of(&current));
        }
        A::WorkflowPropertiesModifiedEventAttributes(a) => {
            let mut current: Memo = state.memo.as_ref().map(|e| e.decode()).unwrap_or_default();
            current.fields.extend(a.upserted_memo.clone().unwrap_or_default().fields);
            state.memo = Some(Encoded::of(&current));
        }
        A::StartChildWorkflowExecutionInitiatedEventAttributes(a) => {
            let command = StartChildWorkflowExecutionCommandAttributes {
                namespace: a.namespace.clone(),
                workflow_id: a.workflow_id.clone(),
                workflow_type: a.workflow_type.clone(),
                task_queue: a.task_queue.clone(),
                input: a.input.clone(),
                workflow_execution_timeout: a.workflow_execution_timeout,
                workflow_run_timeout: a.workflow_run_timeout,
                workflow_task_timeout: a.workflow_task_timeout,
                parent_close_policy: a.parent_close_policy,
                control: a.control.clone(),
                workflow_id_reuse_policy: a.workflow_id_reuse_policy,
                retry_policy: a.retry_policy.clone(),
                cron_schedule: a.cron_schedule.clone(),
                header: a.header.clone(),
                memo: a.memo.clone(),
                search_attributes: a.search_attributes.clone(),
                ..Default::default()
            };
            state.children.insert(
                id,
                Child {
                    initiated_event_id: id,
                    workflow_id: a.workflow_id.clone(),
                    workflow_type: a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                    run_id: String::new(),
                    started_event_id: 0,
                    parent_close_policy: a.parent_close_policy,
                    command: Encoded::of(&command),
                },
            );
        }
        A::ChildWorkflowExecutionStartedEventAttributes(a) => {
            if let Some(child) = state.children.get_mut(&a.initiated_event_id) {
                child.run_id = a.workflow_execution.as_ref().map(|e| e.run_id.clone()).unwrap_or_default();
                child.started_event_id = id;
            }
        }
        A::StartChildWorkflowExecutionFailedEventAttributes(a) => {
            state.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionCompletedEventAttributes(a) => {
            state.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionFailedEventAttributes(a) => {
            state.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionCanceledEventAttributes(a) => {
            state.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionTimedOutEventAttributes(a) => {
            state.children.remove(&a.initiated_event_id);
        }
        A::ChildWorkflowExecutionTerminatedEventAttributes(a) => {
            state.children.remove(&a.initiated_event_id);
        }
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => {
            state.external.insert(id, ExternalRequest::signal(id, a));
        }
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) => {
            state.external.insert(id, ExternalRequest::cancel(id, a));
        }
        A::ExternalWorkflowExecutionSignaledEventAttributes(a) => {
            state.external.remove(&a.initiated_event_id);
        }
        A::SignalExternalWorkflowExecutionFailedEventAttributes(a) => {
            state.external.remove(&a.initiated_event_id);
        }
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => {
            state.external.remove(&a.initiated_event_id);
        }
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => {
            state.external.remove(&a.initiated_event_id);
        }
        A::WorkflowExecutionUpdateAcceptedEventAttributes(a) => {
            state.updates.insert(a.protocol_instance_id.clone(), UpdateRecord { accepted_event_id: id, outcome: None });
        }
        A::WorkflowExecutionUpdateCompletedEventAttributes(a) => {
            let update_id = a.meta.as_ref().map(|m| m.update_id.clone()).unwrap_or_default();
            if let Some(u) = state.updates.get_mut(&update_id) {
                u.outcome = a.outcome.as_ref().map(Encoded::of);
            }
        }
        _ => {}
    }
}
