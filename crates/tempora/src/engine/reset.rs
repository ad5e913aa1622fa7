//! `ResetWorkflowExecution`: a new run whose history is the base run's history up to a
//! workflow task, that task failed with cause RESET_WORKFLOW, the base run's later signals
//! reapplied, and a new workflow task — so the worker replays up to the reset point and
//! continues from there.
//!
//! The new run's mutable state is rebuilt from the copied events (`replay::rebuild`).

use temporalio_protos::temporal::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::{self as history, history_event::Attributes, HistoryEvent};

use super::state::{MutableState, RunKey};
use super::{Effect, Tx};
use crate::clock::Millis;

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
    let key = RunKey { run_id: new_run_id.into(), ..base.key.clone() };
    let mut state = super::replay::rebuild(key, copied, base)?;
    let wft = state.workflow_task.clone().ok_or("the reset point has no workflow task")?;
    let mut tx = Tx::new(&mut state, now);
    tx.append(history::WorkflowTaskFailedEventAttributes {
        scheduled_event_id: wft.scheduled_event_id,
        started_event_id: wft.started_event_id,
        cause: WorkflowTaskFailedCause::ResetWorkflow as i32,
        failure: Some(Failure { message: reason.to_string(), ..Default::default() }),
        identity: identity.to_string(),
        base_run_id: base.key.run_id.to_string(),
        new_run_id: new_run_id.to_string(),
        ..Default::default()
    });
    // Appending the failure cleared the task.
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
