//! Mutable state derived from history. `apply` is the one place an event's meaning for a
//! run's state is derived: `Tx::append` calls it for every event the forward path writes,
//! and `rebuild` folds a whole history through it (reset builds its new run so). What has no
//! event — attempts after the first and speculative workflow tasks, events buffered while a
//! task runs — the forward path sets itself. In debug builds every committed transition of
//! an open run is checked against a full replay (`divergence`).

use prost::Message;
use temporalio_protos::temporal::api::common::v1::{Memo, SearchAttributes};
use temporalio_protos::temporal::api::history::v1::{history_event::Attributes, HistoryEvent};

use super::state::{
    Activity, Child, Encoded, ExternalRequest, MutableState, NexusOperation, RunKey, UpdateRecord, UserTimer,
    WorkflowTask,
};
use super::workflow::{start, StartWorkflow};
use crate::clock::{proto, Millis};

/// Mutable state as it was after `events` (a prefix of `base`'s history).
pub(crate) fn rebuild(key: RunKey, events: &[HistoryEvent], base: &MutableState) -> Result<MutableState, String> {
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

/// Folds one event into a run's state: the one derivation of state from an event, used when
/// the forward path writes an event (`Tx::append`) and when a history is replayed.
pub(crate) fn apply(state: &mut MutableState, event: &HistoryEvent) {
    apply_workflow_task(state, event);
    apply_event(state, event);
}

/// The workflow-task pointer, from its written events. Attempts after the first and
/// speculative tasks exist in state without events; the forward path sets those itself.
fn apply_workflow_task(state: &mut MutableState, event: &HistoryEvent) {
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
                started_build_id: String::new(),
                speculative: false,
            });
        }
        A::WorkflowTaskStartedEventAttributes(a) => {
            if let Some(w) = state.workflow_task.as_mut() {
                w.started_event_id = id;
                w.started_time_ms = at;
                w.started_identity = a.identity.clone();
                w.started_build_id = a.worker_version.as_ref().map(|v| v.build_id.clone()).unwrap_or_default();
            }
        }
        A::WorkflowTaskCompletedEventAttributes(a) => {
            state.workflow_task = None;
            state.last_completed_wft_started_event_id = a.started_event_id;
        }
        A::WorkflowTaskFailedEventAttributes(_) | A::WorkflowTaskTimedOutEventAttributes(_) => {
            state.workflow_task = None;
        }
        _ => {}
    }
}

/// What an event means for a run's pending work (activities, timers, children, requests to
/// other runs, updates) and its cancel flag, memo and search attributes.
fn apply_event(state: &mut MutableState, event: &HistoryEvent) {
    use Attributes as A;
    let id = event.event_id;
    let at = time_of(event);
    let Some(attributes) = &event.attributes else { return };
    match attributes {
        A::ActivityTaskScheduledEventAttributes(a) => {
            state.activities.insert(id, Activity::scheduled(id, a, at));
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
        A::NexusOperationScheduledEventAttributes(a) => {
            state.nexus_operations.insert(id, NexusOperation::scheduled(id, a, at));
        }
        A::NexusOperationStartedEventAttributes(a) => {
            if let Some(op) = state.nexus_operations.get_mut(&a.scheduled_event_id) {
                op.operation_token = Some(a.operation_token.clone());
                op.attempt_started_ms = 0;
            }
        }
        A::NexusOperationCancelRequestedEventAttributes(a) => {
            if let Some(op) = state.nexus_operations.get_mut(&a.scheduled_event_id) {
                op.cancel = Some(super::nexus::cancel_requested(id, at));
            }
        }
        A::NexusOperationCancelRequestCompletedEventAttributes(a) => {
            if let Some(c) = state.nexus_operations.get_mut(&a.scheduled_event_id).and_then(|op| op.cancel.as_mut()) {
                c.done = true;
            }
        }
        A::NexusOperationCancelRequestFailedEventAttributes(a) => {
            if let Some(c) = state.nexus_operations.get_mut(&a.scheduled_event_id).and_then(|op| op.cancel.as_mut()) {
                c.done = true;
            }
        }
        A::NexusOperationCompletedEventAttributes(a) => {
            state.nexus_operations.remove(&a.scheduled_event_id);
        }
        A::NexusOperationFailedEventAttributes(a) => {
            state.nexus_operations.remove(&a.scheduled_event_id);
        }
        A::NexusOperationCanceledEventAttributes(a) => {
            state.nexus_operations.remove(&a.scheduled_event_id);
        }
        A::NexusOperationTimedOutEventAttributes(a) => {
            state.nexus_operations.remove(&a.scheduled_event_id);
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
            crate::visibility::attributes::merge(&mut current, &a.search_attributes.clone().unwrap_or_default());
            state.search_attributes = Some(Encoded::of(&current));
        }
        A::WorkflowPropertiesModifiedEventAttributes(a) => {
            let mut current: Memo = state.memo.as_ref().map(|e| e.decode()).unwrap_or_default();
            // A null or empty value removes its key, as in Temporal.
            for (key, value) in a.upserted_memo.clone().unwrap_or_default().fields {
                if crate::visibility::attributes::is_null(&value) {
                    current.fields.remove(&key);
                } else {
                    current.fields.insert(key, value);
                }
            }
            state.memo = Some(Encoded::of(&current));
        }
        A::StartChildWorkflowExecutionInitiatedEventAttributes(a) => {
            state.children.insert(id, Child::initiated(id, a));
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

/// What of a run's state its history determines, for comparing the two derivations.
#[derive(Debug, PartialEq)]
struct Projection {
    next_event_id: i64,
    history_size_bytes: i64,
    last_completed_wft_started_event_id: i64,
    /// (scheduled, started) of a workflow task that is written to history.
    workflow_task: Option<(i64, i64)>,
    activities: Vec<(i64, String, String)>,
    timers: Vec<(String, i64, Millis)>,
    children: Vec<(i64, String, String)>,
    external: Vec<i64>,
    nexus: Vec<(i64, bool, bool)>,
    updates: Vec<(String, i64, bool)>,
    cancel_requested: bool,
}

fn project(s: &MutableState, include_task: bool) -> Projection {
    Projection {
        next_event_id: s.next_event_id,
        history_size_bytes: s.history_size_bytes,
        last_completed_wft_started_event_id: s.last_completed_wft_started_event_id,
        workflow_task: if include_task {
            s.workflow_task.as_ref().map(|w| (w.scheduled_event_id, w.started_event_id))
        } else {
            None
        },
        activities: s
            .activities
            .values()
            .map(|a| (a.scheduled_event_id, a.activity_id.clone(), a.activity_type.clone()))
            .collect(),
        timers: s.timers.values().map(|t| (t.timer_id.clone(), t.started_event_id, t.fire_time_ms)).collect(),
        children: s
            .children
            .values()
            .map(|c| (c.initiated_event_id, c.workflow_id.clone(), c.run_id.clone()))
            .collect(),
        external: s.external.keys().copied().collect(),
        nexus: s
            .nexus_operations
            .values()
            .map(|o| (o.scheduled_event_id, o.is_started(), o.cancel.is_some()))
            .collect(),
        updates: s.updates.iter().map(|(id, u)| (id.clone(), u.accepted_event_id, u.outcome.is_some())).collect(),
        cancel_requested: s.cancel_requested,
    }
}

/// Where the state of an open run differs from the state its history replays to; `None` if
/// they agree. A workflow task not (yet) written to history (transient, speculative) is not
/// compared.
pub fn divergence(state: &MutableState, history: &[HistoryEvent]) -> Option<String> {
    let mut replayed = match rebuild(state.key.clone(), history, state) {
        Ok(replayed) => replayed,
        Err(e) => return Some(e),
    };
    // Events that arrived during a workflow task wait in the buffer, not yet in history, while
    // the state already reflects them (a cancel request, a closed activity or child).
    for event in &state.buffered_events {
        apply(&mut replayed, &event.decode());
    }
    let written = state.workflow_task.as_ref().is_none_or(|w| !w.is_transient());
    let (forward, replayed) = (project(state, written), project(&replayed, written));
    (forward != replayed).then(|| format!("forward {forward:?}\nreplayed {replayed:?}"))
}
