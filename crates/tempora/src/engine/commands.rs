//! The commands of a workflow task's completion, one at a time: each becomes history events
//! and state (or a rejection that fails the task). Called by `workflow_task::complete`.

use prost::Message;
use temporalio_protos::temporal::api::command::v1::{command, Command};
use temporalio_protos::temporal::api::enums::v1::{CommandType, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::history::v1 as history;

use super::state::RunStatus;
use super::updates::Messages;
use super::workflow::Closing;
use super::workflow_task::Rejection;
use super::{Timer, Tx};
use crate::clock::proto;

impl Tx<'_> {
    /// Applies one command; true if it requires a new workflow task right away.
    pub(super) fn apply_command(
        &mut self,
        command: &Command,
        completed_id: i64,
        messages: &mut Messages,
        nexus_endpoints: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, Rejection> {
        use command::Attributes as C;
        let bad = |cause: WorkflowTaskFailedCause, msg: &str| Err(Rejection::Bad(cause, msg.to_string()));
        let Some(attributes) = &command.attributes else {
            return bad(WorkflowTaskFailedCause::UnhandledCommand, "command attributes are not set");
        };
        let payload_bytes = command_payload_bytes(command);
        if payload_bytes > self.limits.blob_bytes_max {
            let name = CommandType::try_from(command.command_type).map(|t| t.as_str_name()).unwrap_or("command");
            return Err(Rejection::Terminate(
                bad_attributes_cause(command),
                format!(
                    "{name} carries a payload of {payload_bytes} bytes, over the limit of {} bytes.",
                    self.limits.blob_bytes_max
                ),
            ));
        }
        match attributes {
            C::ScheduleActivityTaskCommandAttributes(a) => {
                let (pending, max) = (self.state.activities.len(), self.limits.pending_activities_max);
                at_limit(pending, max, WorkflowTaskFailedCause::PendingActivitiesLimitExceeded, "pending activities")?;
                self.schedule_activity(a, completed_id).map_err(|(cause, m)| Rejection::Bad(cause, m))?;
                Ok(false)
            }
            C::RequestCancelActivityTaskCommandAttributes(a) => self
                .request_cancel_activity(a.scheduled_event_id, completed_id)
                .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadRequestCancelActivityAttributes, m)),
            C::StartTimerCommandAttributes(a) => {
                if a.timer_id.is_empty() {
                    return bad(
                        WorkflowTaskFailedCause::BadStartTimerAttributes,
                        "TimerId is not set on StartTimerCommand.",
                    );
                }
                if self.state.timers.contains_key(&a.timer_id) {
                    return bad(
                        WorkflowTaskFailedCause::StartTimerDuplicateId,
                        "StartTimerCommand has a duplicate TimerId.",
                    );
                }
                let fire_in = proto::duration_ms(a.start_to_fire_timeout.as_ref());
                if fire_in <= 0 {
                    return bad(
                        WorkflowTaskFailedCause::BadStartTimerAttributes,
                        "A valid StartToFireTimeout is not set on StartTimerCommand.",
                    );
                }
                let started_event_id = self.append(history::TimerStartedEventAttributes {
                    timer_id: a.timer_id.clone(),
                    start_to_fire_timeout: a.start_to_fire_timeout,
                    workflow_task_completed_event_id: completed_id,
                });
                let fire_time_ms = self.now + fire_in;
                self.schedule_timer(fire_time_ms, Timer::UserTimer { timer_id: a.timer_id.clone(), started_event_id });
                Ok(false)
            }
            C::CancelTimerCommandAttributes(a) => {
                let Some(timer) = self.state.timers.get(&a.timer_id).cloned() else {
                    return bad(
                        WorkflowTaskFailedCause::BadCancelTimerAttributes,
                        "CancelTimerCommand names an unknown TimerId.",
                    );
                };
                self.append(history::TimerCanceledEventAttributes {
                    timer_id: a.timer_id.clone(),
                    started_event_id: timer.started_event_id,
                    workflow_task_completed_event_id: completed_id,
                    identity: String::new(),
                });
                Ok(false)
            }
            C::RecordMarkerCommandAttributes(a) => {
                if a.marker_name.is_empty() {
                    return bad(
                        WorkflowTaskFailedCause::BadRecordMarkerAttributes,
                        "MarkerName is not set on RecordMarkerCommand.",
                    );
                }
                self.append(history::MarkerRecordedEventAttributes {
                    marker_name: a.marker_name.clone(),
                    details: a.details.clone(),
                    workflow_task_completed_event_id: completed_id,
                    header: a.header.clone(),
                    failure: a.failure.clone(),
                });
                Ok(false)
            }
            C::CompleteWorkflowExecutionCommandAttributes(a) => {
                let (new_execution_run_id, _) = self.next_run(Closing::Completed(a.result.as_ref()));
                self.append(history::WorkflowExecutionCompletedEventAttributes {
                    result: a.result.clone(),
                    workflow_task_completed_event_id: completed_id,
                    new_execution_run_id,
                });
                self.close(RunStatus::Completed);
                Ok(false)
            }
            C::ProtocolMessageCommandAttributes(a) => {
                self.protocol_message_command(&a.message_id, messages, completed_id)
                    .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage, m))?;
                Ok(false)
            }
            C::CancelWorkflowExecutionCommandAttributes(a) => {
                self.append(history::WorkflowExecutionCanceledEventAttributes {
                    workflow_task_completed_event_id: completed_id,
                    details: a.details.clone(),
                });
                self.close(RunStatus::Canceled);
                Ok(false)
            }
            C::ContinueAsNewWorkflowExecutionCommandAttributes(a) => {
                let mut a = a.clone();
                if let Some(sa) = &a.search_attributes {
                    a.search_attributes = Some(self.checked_search_attributes(sa, false)?);
                }
                self.continue_as_new(&a, completed_id);
                Ok(false)
            }
            C::UpsertWorkflowSearchAttributesCommandAttributes(a) => {
                let upserted =
                    self.checked_search_attributes(&a.search_attributes.clone().unwrap_or_default(), true)?;
                self.append(history::UpsertWorkflowSearchAttributesEventAttributes {
                    workflow_task_completed_event_id: completed_id,
                    search_attributes: Some(upserted),
                });
                Ok(false)
            }
            C::ModifyWorkflowPropertiesCommandAttributes(a) => {
                self.append(history::WorkflowPropertiesModifiedEventAttributes {
                    workflow_task_completed_event_id: completed_id,
                    upserted_memo: Some(a.upserted_memo.clone().unwrap_or_default()),
                });
                Ok(false)
            }
            C::StartChildWorkflowExecutionCommandAttributes(a) => {
                let (pending, max) = (self.state.children.len(), self.limits.pending_children_max);
                let cause = WorkflowTaskFailedCause::PendingChildWorkflowsLimitExceeded;
                at_limit(pending, max, cause, "pending child workflow executions")?;
                let mut a = a.clone();
                if let Some(sa) = &a.search_attributes {
                    a.search_attributes = Some(self.checked_search_attributes(sa, false)?);
                }
                self.start_child(&a, completed_id)
                    .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadStartChildExecutionAttributes, m))?;
                Ok(false)
            }
            C::SignalExternalWorkflowExecutionCommandAttributes(a) => {
                let (pending, max) = (self.pending_external(true), self.limits.pending_signals_max);
                let cause = WorkflowTaskFailedCause::PendingSignalsLimitExceeded;
                at_limit(pending, max, cause, "pending signals to external workflows")?;
                self.signal_external(a, completed_id)
                    .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes, m))?;
                Ok(false)
            }
            C::RequestCancelExternalWorkflowExecutionCommandAttributes(a) => {
                let (pending, max) = (self.pending_external(false), self.limits.pending_cancels_max);
                let cause = WorkflowTaskFailedCause::PendingRequestCancelLimitExceeded;
                at_limit(pending, max, cause, "pending requests to cancel external workflows")?;
                self.request_cancel_external(a, completed_id).map_err(|m| {
                    Rejection::Bad(WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes, m)
                })?;
                Ok(false)
            }
            C::FailWorkflowExecutionCommandAttributes(a) => {
                let failure = a.failure.clone().unwrap_or_default();
                let (new_execution_run_id, retry_state) = self.next_run(Closing::Failed(&failure));
                self.append(history::WorkflowExecutionFailedEventAttributes {
                    failure: a.failure.clone(),
                    retry_state: retry_state as i32,
                    workflow_task_completed_event_id: completed_id,
                    new_execution_run_id,
                });
                self.close(RunStatus::Failed);
                Ok(false)
            }
            C::ScheduleNexusOperationCommandAttributes(a) => {
                let (pending, max) = (self.state.nexus_operations.len(), self.limits.pending_nexus_operations_max);
                let cause = WorkflowTaskFailedCause::PendingNexusOperationsLimitExceeded;
                at_limit(pending, max, cause, "pending Nexus operations")?;
                self.schedule_nexus_operation(a, completed_id, nexus_endpoints)
                    .map_err(|(cause, m)| Rejection::Bad(cause, m))?;
                Ok(false)
            }
            C::RequestCancelNexusOperationCommandAttributes(a) => self
                .request_cancel_nexus_operation(a.scheduled_event_id, completed_id)
                .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadRequestCancelNexusOperationAttributes, m)),
        }
    }
}

/// Refuses a command that would take a run past a per-run limit of pending work, with
/// Temporal's message (e.g. "PendingActivitiesLimitExceeded: the number of pending
/// activities, 2000, has reached the per-workflow limit").
impl Tx<'_> {
    /// A command's search attributes, checked against the namespace's and typed; a bad one
    /// fails the workflow task (BAD_SEARCH_ATTRIBUTES), as in Temporal.
    fn checked_search_attributes(
        &self,
        sa: &temporalio_protos::temporal::api::common::v1::SearchAttributes,
        keep_nulls: bool,
    ) -> Result<temporalio_protos::temporal::api::common::v1::SearchAttributes, Rejection> {
        let registry = crate::visibility::attributes::Registry { custom: &self.search_attribute_types };
        crate::visibility::attributes::validate(sa, &registry, &self.state.key.namespace, keep_nulls)
            .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadSearchAttributes, m))
    }
}

fn at_limit(pending: usize, max: usize, cause: WorkflowTaskFailedCause, what: &str) -> Result<(), Rejection> {
    if pending < max {
        return Ok(());
    }
    let name = cause.as_str_name().trim_start_matches("WORKFLOW_TASK_FAILED_CAUSE_");
    let name: String = name.split('_').map(|w| w[..1].to_string() + &w[1..].to_lowercase()).collect();
    let message = format!("{name}: the number of {what}, {max}, has reached the per-workflow limit");
    Err(Rejection::Bad(cause, message))
}

/// The failure cause Temporal reports for a command whose attributes are invalid.
fn bad_attributes_cause(command: &Command) -> WorkflowTaskFailedCause {
    use command::Attributes as C;
    use WorkflowTaskFailedCause as W;
    match command.attributes {
        Some(C::ScheduleActivityTaskCommandAttributes(_)) => W::BadScheduleActivityAttributes,
        Some(C::CompleteWorkflowExecutionCommandAttributes(_)) => W::BadCompleteWorkflowExecutionAttributes,
        Some(C::FailWorkflowExecutionCommandAttributes(_)) => W::BadFailWorkflowExecutionAttributes,
        Some(C::CancelWorkflowExecutionCommandAttributes(_)) => W::BadCancelWorkflowExecutionAttributes,
        Some(C::RecordMarkerCommandAttributes(_)) => W::BadRecordMarkerAttributes,
        Some(C::ContinueAsNewWorkflowExecutionCommandAttributes(_)) => W::BadContinueAsNewAttributes,
        Some(C::StartChildWorkflowExecutionCommandAttributes(_)) => W::BadStartChildExecutionAttributes,
        Some(C::SignalExternalWorkflowExecutionCommandAttributes(_)) => W::BadSignalWorkflowExecutionAttributes,
        Some(C::ScheduleNexusOperationCommandAttributes(_)) => W::BadScheduleNexusOperationAttributes,
        _ => W::UnhandledCommand,
    }
}

pub(super) fn is_closing_command(command: &Command) -> bool {
    use command::Attributes as C;
    matches!(
        command.attributes,
        Some(
            C::CompleteWorkflowExecutionCommandAttributes(_)
                | C::FailWorkflowExecutionCommandAttributes(_)
                | C::CancelWorkflowExecutionCommandAttributes(_)
                | C::ContinueAsNewWorkflowExecutionCommandAttributes(_)
        )
    )
}

/// Sizes of the payloads a command carries, for the per-payload limit.
pub fn command_payload_bytes(command: &Command) -> usize {
    use command::Attributes as C;
    match &command.attributes {
        Some(C::ScheduleActivityTaskCommandAttributes(a)) => a.input.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::CompleteWorkflowExecutionCommandAttributes(a)) => a.result.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::FailWorkflowExecutionCommandAttributes(a)) => a.failure.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::RecordMarkerCommandAttributes(a)) => a.details.values().map(|p| p.encoded_len()).sum(),
        Some(C::ContinueAsNewWorkflowExecutionCommandAttributes(a)) => a.input.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::StartChildWorkflowExecutionCommandAttributes(a)) => a.input.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::SignalExternalWorkflowExecutionCommandAttributes(a)) => a.input.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::CancelWorkflowExecutionCommandAttributes(a)) => a.details.as_ref().map_or(0, |p| p.encoded_len()),
        Some(C::ScheduleNexusOperationCommandAttributes(a)) => a.input.as_ref().map_or(0, |p| p.encoded_len()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_refusal_names_its_cause_and_the_configured_limit_as_temporal_does() {
        assert!(at_limit(1_999, 2_000, WorkflowTaskFailedCause::PendingActivitiesLimitExceeded, "x").is_ok());
        let Err(Rejection::Bad(cause, message)) =
            at_limit(2_000, 2_000, WorkflowTaskFailedCause::PendingActivitiesLimitExceeded, "pending activities")
        else {
            panic!("the limit was not enforced");
        };
        assert_eq!(cause, WorkflowTaskFailedCause::PendingActivitiesLimitExceeded);
        assert_eq!(
            message,
            "PendingActivitiesLimitExceeded: the number of pending activities, 2000, has reached the per-workflow limit"
        );
        let Err(Rejection::Bad(_, message)) =
            at_limit(3, 3, WorkflowTaskFailedCause::PendingRequestCancelLimitExceeded, "pending requests")
        else {
            panic!("the limit was not enforced");
        };
        assert!(message.starts_with("PendingRequestCancelLimitExceeded: the number of pending requests, 3,"));
    }
}
