//! Engine cases: history so far + input → new events and effects. No I/O, no clock.

use temporalio_protos::temporal::api::command::v1::{
    command, Command, CompleteWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes,
};
use temporalio_protos::temporal::api::common::v1::{ActivityType, Payloads, RetryPolicy};
use temporalio_protos::temporal::api::enums::v1::{
    CommandType, EventType, RetryState, TimeoutType, WorkflowTaskFailedCause,
};
use temporalio_protos::temporal::api::failure::v1::{failure, failure::FailureInfo, ApplicationFailureInfo, Failure};
use temporalio_protos::temporal::api::history::v1::{history_event::Attributes, HistoryEvent};

use super::state::{MutableState, RunKey};
use super::workflow::{start, StartWorkflow};
use super::workflow_task::{CompleteWorkflowTask, Completed};
use super::{ActivityTimeoutKind, Effect, Timer, Tx};
use crate::clock::proto;
use crate::error::Error;

/// A run plus its history, driven step by step.
struct Run {
    state: MutableState,
    history: Vec<HistoryEvent>,
    now: i64,
}

/// The start of every engine test's run: workflow "wf", run "run", queue "tq".
pub(super) fn start_request() -> StartWorkflow {
    StartWorkflow {
        key: RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "run".into() },
        workflow_type: "Wf".into(),
        task_queue: "tq".into(),
        task_timeout_ms: 10_000,
        request_id: "req".into(),
        ..Default::default()
    }
}

impl Run {
    fn new() -> Run {
        let (state, history, _) = start(start_request(), 1_000);
        Run { state, history, now: 1_000 }
    }

    /// Applies `f` as one transition; returns the new event types and the effects.
    fn step<T>(&mut self, f: impl FnOnce(&mut Tx) -> T) -> (T, Vec<EventType>, Vec<Effect>) {
        self.now += 10;
        let mut tx = Tx::new(&mut self.state, self.now);
        let out = f(&mut tx);
        let (events, effects) = (tx.events, tx.effects);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.event_id, self.history.len() as i64 + 1 + i as i64, "event ids are contiguous");
        }
        let types = events.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect();
        self.history.extend(events);
        (out, types, effects)
    }

    fn start_wft(&mut self) -> (i64, i32) {
        let (started, _, _) =
            self.step(|tx| tx.start_workflow_task("worker", "r", "").expect("a workflow task is scheduled"));
        (started.scheduled_event_id, started.attempt)
    }

    fn complete_wft(&mut self, commands: Vec<Command>) -> (Result<Completed, Error>, Vec<EventType>, Vec<Effect>) {
        let (scheduled_event_id, attempt) = self.start_wft();
        let req = CompleteWorkflowTask {
            scheduled_event_id,
            attempt,
            commands,
            identity: "worker".into(),
            // The Nexus endpoint "ep" is registered, as "ep-id".
            nexus_endpoints: [("ep".to_string(), "ep-id".to_string())].into(),
            ..Default::default()
        };
        let (out, types, effects) = self.step(|tx| tx.complete_workflow_task(req).expect("task is running"));
        (out, types, effects)
    }
}

fn schedule_activity(id: &str, max_attempts: i32) -> Command {
    Command {
        command_type: 1,
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: id.into(),
                activity_type: Some(ActivityType { name: "Act".into() }),
                start_to_close_timeout: Some(proto::duration(5_000)),
                retry_policy: Some(RetryPolicy { maximum_attempts: max_attempts, ..Default::default() }),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn complete_workflow() -> Command {
    Command {
        command_type: 6,
        attributes: Some(command::Attributes::CompleteWorkflowExecutionCommandAttributes(
            CompleteWorkflowExecutionCommandAttributes { result: Some(Payloads::default()) },
        )),
        ..Default::default()
    }
}

fn app_failure(non_retryable: bool) -> Failure {
    Failure {
        message: "boom".into(),
        failure_info: Some(failure::FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: "Boom".into(),
            non_retryable,
            ..Default::default()
        })),
        ..Default::default()
    }
}

use EventType as E;

#[test]
fn start_writes_started_and_schedules_a_workflow_task() {
    let run = Run::new();
    let types: Vec<_> = run.history.iter().map(|e| e.event_type).collect();
    assert_eq!(types, vec![E::WorkflowExecutionStarted as i32, E::WorkflowTaskScheduled as i32]);
    assert_eq!(run.state.next_event_id, 3);
}

#[test]
fn activity_completes_and_wakes_the_workflow() {
    let mut run = Run::new();
    let (out, types, effects) = run.complete_wft(vec![schedule_activity("a1", 0)]);
    assert!(out.is_ok());
    assert_eq!(types, vec![E::WorkflowTaskCompleted, E::ActivityTaskScheduled]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::DispatchActivityTask { scheduled_event_id: 5, attempt: 1, .. })));
    let (a, _, _) = run.step(|tx| tx.start_activity(5, 1, "w", "r"));
    assert!(a.is_some());
    let (res, types, _) = run.step(|tx| tx.complete_activity(5, Some(1), None, "w"));
    res.unwrap();
    assert_eq!(types, vec![E::ActivityTaskStarted, E::ActivityTaskCompleted, E::WorkflowTaskScheduled]);
    match &run.history[6].attributes {
        Some(Attributes::ActivityTaskCompletedEventAttributes(c)) => assert_eq!(c.started_event_id, 6),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn events_during_a_running_workflow_task_are_buffered_then_linked() {
    let mut run = Run::new();
    run.complete_wft(vec![schedule_activity("a1", 0)]).0.unwrap();
    run.step(|tx| tx.start_activity(5, 1, "w", "r"));
    // Some other event wakes the workflow and its task starts...
    run.step(|tx| tx.schedule_workflow_task_if_needed());
    let (sched, attempt) = run.start_wft();
    // ...while the activity completes: nothing is written yet.
    let (_, types, _) = run.step(|tx| tx.complete_activity(5, Some(1), None, "w"));
    assert!(types.is_empty());
    assert_eq!(run.state.buffered_events.len(), 2);
    // Closing now would lose the buffered result.
    let req = CompleteWorkflowTask {
        scheduled_event_id: sched,
        attempt,
        commands: vec![complete_workflow()],
        ..Default::default()
    };
    let (out, types, _) = run.step(|tx| tx.complete_workflow_task(req).unwrap());
    assert_eq!(out, Err(Error::UnhandledCommand));
    assert_eq!(
        types,
        vec![E::WorkflowTaskFailed, E::ActivityTaskStarted, E::ActivityTaskCompleted, E::WorkflowTaskScheduled]
    );
    let started_id = run.history.len() as i64 - 2;
    match &run.history[started_id as usize].attributes {
        Some(Attributes::ActivityTaskCompletedEventAttributes(c)) => assert_eq!(c.started_event_id, started_id),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn failed_attempts_retry_without_events_until_maximum_attempts() {
    let mut run = Run::new();
    run.complete_wft(vec![schedule_activity("a1", 2)]).0.unwrap();
    run.step(|tx| tx.start_activity(5, 1, "w", "r"));
    let (_, types, effects) = run.step(|tx| tx.fail_activity(5, Some(1), app_failure(false), None, "w").unwrap());
    assert!(types.is_empty(), "an intermediate failure writes nothing");
    assert!(effects.iter().any(|e| matches!(e, Effect::Timer { timer: Timer::ActivityRetry { attempt: 2, .. }, .. })));
    // The old attempt's timeout is stale now.
    let (changed, _, _) = run.step(|tx| tx.activity_timed_out(5, 1, ActivityTimeoutKind::StartToClose));
    assert!(!changed);
    run.now += 1_000;
    let (due, _, effects) = run.step(|tx| tx.activity_retry_due(5, 2));
    assert!(due);
    assert!(effects.iter().any(|e| matches!(e, Effect::DispatchActivityTask { attempt: 2, .. })));
    run.step(|tx| tx.start_activity(5, 2, "w", "r").unwrap());
    let (_, types, _) = run.step(|tx| tx.fail_activity(5, Some(2), app_failure(false), None, "w").unwrap());
    assert_eq!(types, vec![E::ActivityTaskStarted, E::ActivityTaskFailed, E::WorkflowTaskScheduled]);
    match &run.history[6].attributes {
        Some(Attributes::ActivityTaskFailedEventAttributes(f)) => {
            assert_eq!(f.retry_state, RetryState::MaximumAttemptsReached as i32)
        }
        other => panic!("unexpected {other:?}"),
    }
    match &run.history[5].attributes {
        Some(Attributes::ActivityTaskStartedEventAttributes(s)) => {
            assert_eq!(s.attempt, 2);
            assert!(s.last_failure.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn non_retryable_failure_closes_at_once() {
    let mut run = Run::new();
    run.complete_wft(vec![schedule_activity("a1", 0)]).0.unwrap();
    run.step(|tx| tx.start_activity(5, 1, "w", "r"));
    let (_, types, _) = run.step(|tx| tx.fail_activity(5, Some(1), app_failure(true), None, "w").unwrap());
    assert_eq!(types, vec![E::ActivityTaskStarted, E::ActivityTaskFailed, E::WorkflowTaskScheduled]);
}

#[test]
fn start_to_close_timeout_retries() {
    let mut run = Run::new();
    run.complete_wft(vec![schedule_activity("a1", 0)]).0.unwrap();
    run.step(|tx| tx.start_activity(5, 1, "w", "r"));
    run.now += 5_000;
    let (changed, types, _) = run.step(|tx| tx.activity_timed_out(5, 1, ActivityTimeoutKind::StartToClose));
    assert!(changed);
    assert!(types.is_empty());
    assert_eq!(run.state.activities[&5].attempt, 2);
}

#[test]
fn equal_schedule_to_start_and_schedule_to_close_deadlines_time_out_as_schedule_to_start() {
    // Both timers are due at the same instant and may fire in either order (TypeScript SDK
    // users saw either answer); Temporal applies schedule-to-start.
    for fired in [ActivityTimeoutKind::ScheduleToClose, ActivityTimeoutKind::ScheduleToStart] {
        let mut run = Run::new();
        let mut command = schedule_activity("a1", 0);
        if let Some(command::Attributes::ScheduleActivityTaskCommandAttributes(a)) = &mut command.attributes {
            a.schedule_to_start_timeout = Some(proto::duration(3_000));
            a.schedule_to_close_timeout = Some(proto::duration(3_000));
        }
        run.complete_wft(vec![command]).0.unwrap();
        let scheduled = &run.state.activities[&5];
        run.now = scheduled.scheduled_time_ms + 3_000 - 10;
        let (changed, types, _) = run.step(|tx| tx.activity_timed_out(5, 1, fired));
        assert!(changed, "{fired:?}");
        assert_eq!(types, vec![E::ActivityTaskTimedOut, E::WorkflowTaskScheduled]);
        match &run.history[5].attributes {
            Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) => {
                let timeout = t.failure.as_ref().and_then(|f| f.failure_info.as_ref());
                assert!(
                    matches!(timeout, Some(FailureInfo::TimeoutFailureInfo(i)) if i.timeout_type == TimeoutType::ScheduleToStart as i32),
                    "{fired:?} gave {timeout:?}"
                );
                assert_eq!(t.retry_state, RetryState::Timeout as i32);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn an_attempt_handed_out_after_its_schedule_to_close_deadline_does_not_start() {
    // The task waited in a queue past its deadline; its timer times it out, not a worker.
    let mut run = Run::new();
    let mut command = schedule_activity("a1", 0);
    if let Some(command::Attributes::ScheduleActivityTaskCommandAttributes(a)) = &mut command.attributes {
        a.schedule_to_close_timeout = Some(proto::duration(300));
    }
    run.complete_wft(vec![command]).0.unwrap();
    run.now = run.state.activities[&5].scheduled_time_ms + 300;
    let (started, _, _) = run.step(|tx| tx.start_activity(5, 1, "w", "r"));
    assert!(started.is_none());
    let (changed, types, _) = run.step(|tx| tx.activity_timed_out(5, 1, ActivityTimeoutKind::ScheduleToClose));
    assert!(changed);
    assert_eq!(types, vec![E::ActivityTaskTimedOut, E::WorkflowTaskScheduled]);
}

#[test]
fn an_attempt_started_at_once_times_out_schedule_to_close_when_both_deadlines_tie() {
    // Only schedule-to-close is set, so start-to-close is the same length; an attempt started
    // in the millisecond it was scheduled (eager dispatch) has both deadlines at once.
    let mut run = Run::new();
    let mut command = schedule_activity("a1", 1);
    if let Some(command::Attributes::ScheduleActivityTaskCommandAttributes(a)) = &mut command.attributes {
        a.schedule_to_close_timeout = Some(proto::duration(300));
        a.start_to_close_timeout = None;
    }
    run.complete_wft(vec![command]).0.unwrap();
    run.now = run.state.activities[&5].scheduled_time_ms - 10; // `step` adds 10
    run.step(|tx| tx.start_activity(5, 1, "w", "r")).0.expect("started");
    run.now = run.state.activities[&5].scheduled_time_ms + 300 - 10;
    let (changed, _, _) = run.step(|tx| tx.activity_timed_out(5, 1, ActivityTimeoutKind::StartToClose));
    assert!(changed);
    let timed_out = run.history.iter().rev().find_map(|e| match &e.attributes {
        Some(Attributes::ActivityTaskTimedOutEventAttributes(t)) => t.failure.clone(),
        _ => None,
    });
    let info = timed_out.and_then(|f| f.failure_info);
    assert!(
        matches!(&info, Some(FailureInfo::TimeoutFailureInfo(i)) if i.timeout_type == TimeoutType::ScheduleToClose as i32),
        "{info:?}"
    );
}

#[test]
fn workflow_task_failures_after_the_first_are_transient() {
    let mut run = Run::new();
    let (sched, attempt) = run.start_wft();
    let (_, types, _) =
        run.step(|tx| tx.fail_workflow_task(sched, attempt, WorkflowTaskFailedCause::Unspecified, None, "w").unwrap());
    assert_eq!(types, vec![E::WorkflowTaskFailed]);
    let (started, types, _) = run.step(|tx| tx.start_workflow_task("w", "r", "").unwrap());
    assert!(types.is_empty(), "a transient attempt writes nothing when it starts");
    assert_eq!(started.attempt, 2);
    assert_eq!(started.transient_events.len(), 2);
    assert_eq!(started.scheduled_event_id, 5);
    let (_, types, _) =
        run.step(|tx| tx.fail_workflow_task(5, 2, WorkflowTaskFailedCause::Unspecified, None, "w").unwrap());
    assert!(types.is_empty());
    let req = {
        let (sched, attempt) = run.start_wft();
        assert_eq!(attempt, 3);
        CompleteWorkflowTask {
            scheduled_event_id: sched,
            attempt,
            commands: vec![complete_workflow()],
            ..Default::default()
        }
    };
    let (out, types, _) = run.step(|tx| tx.complete_workflow_task(req).unwrap());
    out.unwrap();
    assert_eq!(
        types,
        vec![E::WorkflowTaskScheduled, E::WorkflowTaskStarted, E::WorkflowTaskCompleted, E::WorkflowExecutionCompleted]
    );
    assert!(!run.state.is_open());
}

fn schedule_nexus(endpoint: &str, timeout_ms: i64) -> Command {
    Command {
        command_type: CommandType::ScheduleNexusOperation as i32,
        attributes: Some(command::Attributes::ScheduleNexusOperationCommandAttributes(
            temporalio_protos::temporal::api::command::v1::ScheduleNexusOperationCommandAttributes {
                endpoint: endpoint.into(),
                service: "svc".into(),
                operation: "op".into(),
                schedule_to_close_timeout: (timeout_ms > 0).then(|| proto::duration(timeout_ms)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

#[test]
fn a_nexus_operation_on_an_unknown_endpoint_fails_the_task_naming_it() {
    let mut run = Run::new();
    let (out, types, _) = run.complete_wft(vec![schedule_nexus("nowhere", 0)]);
    match out {
        Err(Error::InvalidArgument(m)) => assert_eq!(m, "endpoint \"nowhere\" not found"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(types, vec![E::WorkflowTaskFailed]);
    assert!(run.state.nexus_operations.is_empty());
}

#[test]
fn a_sync_nexus_operation_is_dispatched_started_and_completed_without_a_started_event() {
    use super::nexus::NexusOutcome;
    let mut run = Run::new();
    let (out, types, effects) = run.complete_wft(vec![schedule_nexus("ep", 60_000)]);
    out.unwrap();
    assert_eq!(types, vec![E::WorkflowTaskCompleted, E::NexusOperationScheduled]);
    let id = 5;
    assert!(effects.contains(&Effect::DispatchNexusTask {
        endpoint_id: "ep-id".into(),
        scheduled_event_id: id,
        attempt: 1,
        cancel: false
    }));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Timer { timer: Timer::NexusTimeout { scheduled_event_id: 5 }, .. })));
    let (start, _, effects) = run.step(|tx| tx.start_nexus_task(id, 1, false));
    let start = start.expect("the attempt starts");
    assert_eq!(start.operation.request_id, "run-5");
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Timer { timer: Timer::NexusAttemptTimeout { attempt: 1, .. }, .. })));
    assert!(run.step(|tx| tx.start_nexus_task(id, 1, false)).0.is_none(), "an attempt starts once");
    // A retryable handler error: the next attempt after a backoff, with no event.
    let failure = super::nexus::handler_failure("INTERNAL", "try again");
    let (r, types, effects) =
        run.step(|tx| tx.nexus_answered(id, 1, false, NexusOutcome::HandlerError { failure, retryable: true }));
    r.unwrap();
    assert!(types.is_empty());
    assert!(effects.iter().any(|e| matches!(e, Effect::Timer { timer: Timer::NexusRetry { attempt: 1, .. }, .. })));
    run.now += 1_000;
    let (due, _, effects) =
        run.step(|tx| tx.nexus_timer(&Timer::NexusRetry { scheduled_event_id: id, attempt: 1, cancel: false }));
    assert!(due);
    assert!(effects.iter().any(|e| matches!(e, Effect::DispatchNexusTask { attempt: 2, .. })));
    run.step(|tx| tx.start_nexus_task(id, 2, false).expect("attempt 2 starts"));
    let stale = run.step(|tx| tx.nexus_answered(id, 1, false, NexusOutcome::Completed { result: None })).0;
    assert!(matches!(stale, Err(Error::NotFound(_))), "a stale attempt's answer is refused");
    let (r, types, _) = run.step(|tx| tx.nexus_answered(id, 2, false, NexusOutcome::Completed { result: None }));
    r.unwrap();
    assert_eq!(types, vec![E::NexusOperationCompleted, E::WorkflowTaskScheduled]);
    assert!(run.state.nexus_operations.is_empty());
    assert!(super::replay::divergence(&run.state, &run.history).is_none());
}

#[test]
fn an_async_nexus_operation_is_started_then_closed_by_its_callback_and_times_out_otherwise() {
    use super::nexus::NexusOutcome;
    let mut run = Run::new();
    run.complete_wft(vec![schedule_nexus("ep", 60_000), schedule_nexus("ep", 60_000)]).0.unwrap();
    let (first, second) = (5, 6);
    for id in [first, second] {
        run.step(|tx| tx.start_nexus_task(id, 1, false).expect("starts"));
        let started = NexusOutcome::Started { operation_token: format!("token-{id}") };
        let (r, _, _) = run.step(|tx| tx.nexus_answered(id, 1, false, started));
        r.unwrap();
    }
    assert!(run.state.nexus_operations.values().all(|op| op.is_started()));
    // A callback for another request id is stale.
    assert!(!run.step(|tx| tx.nexus_completed(first, "other", NexusOutcome::Completed { result: None })).0);
    let (done, types, _) = run.step(|tx| tx.nexus_completed(first, "run-5", NexusOutcome::Completed { result: None }));
    assert!(done);
    assert_eq!(types, vec![E::NexusOperationCompleted]);
    // The other one reaches its schedule-to-close deadline.
    run.now = 1_000 + 60_000 + 1_000;
    let (fired, types, _) = run.step(|tx| tx.nexus_timer(&Timer::NexusTimeout { scheduled_event_id: second }));
    assert!(fired);
    assert_eq!(types, vec![E::NexusOperationTimedOut]);
    let Some(Attributes::NexusOperationTimedOutEventAttributes(a)) = &run.history.last().unwrap().attributes else {
        panic!("no timeout event")
    };
    let failure = a.failure.clone().unwrap();
    assert_eq!(failure.message, "nexus operation completed unsuccessfully");
    let Some(FailureInfo::TimeoutFailureInfo(t)) = failure.cause.unwrap().failure_info else { panic!("no cause") };
    assert_eq!(t.timeout_type, TimeoutType::ScheduleToClose as i32);
}

#[test]
fn cancelling_a_nexus_operation_before_it_started_cancels_it_at_once() {
    let mut run = Run::new();
    run.complete_wft(vec![schedule_nexus("ep", 0)]).0.unwrap();
    run.step(|tx| tx.schedule_workflow_task_if_needed()); // say, a signal came
    let cancel = Command {
        command_type: CommandType::RequestCancelNexusOperation as i32,
        attributes: Some(command::Attributes::RequestCancelNexusOperationCommandAttributes(
            temporalio_protos::temporal::api::command::v1::RequestCancelNexusOperationCommandAttributes {
                scheduled_event_id: 5,
            },
        )),
        ..Default::default()
    };
    let (out, types, _) = run.complete_wft(vec![cancel]);
    out.unwrap();
    assert_eq!(
        types,
        vec![
            E::WorkflowTaskCompleted,
            E::NexusOperationCancelRequested,
            E::NexusOperationCanceled,
            E::WorkflowTaskScheduled
        ]
    );
    assert!(run.state.nexus_operations.is_empty());
    assert!(run.step(|tx| tx.start_nexus_task(5, 1, false)).0.is_none(), "its queued attempt is stale");
}

#[test]
fn a_bad_command_fails_the_task_naming_the_missing_field() {
    let mut run = Run::new();
    let signal = Command {
        command_type: CommandType::SignalExternalWorkflowExecution as i32,
        attributes: Some(command::Attributes::SignalExternalWorkflowExecutionCommandAttributes(Default::default())),
        ..Default::default()
    };
    let (out, types, _) = run.complete_wft(vec![signal]);
    match out {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("WorkflowId is not set"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(types, vec![E::WorkflowTaskFailed]);
}

#[test]
fn stale_tokens_are_not_found() {
    let mut run = Run::new();
    let (sched, attempt) = run.start_wft();
    let (res, _, _) =
        run.step(|tx| tx.fail_workflow_task(sched, attempt + 1, WorkflowTaskFailedCause::Unspecified, None, "w"));
    assert!(matches!(res, Err(Error::NotFound(_))));
    let (res, _, _) = run.step(|tx| tx.complete_activity(99, Some(1), None, "w"));
    assert!(matches!(res, Err(Error::NotFound(_))));
}

fn rejection(update_id: &str) -> temporalio_protos::temporal::api::protocol::v1::Message {
    use prost::Message as _;
    use temporalio_protos::temporal::api::update::v1::Rejection;
    temporalio_protos::temporal::api::protocol::v1::Message {
        id: format!("{update_id}/reject"),
        protocol_instance_id: update_id.into(),
        body: Some(prost_types::Any {
            type_url: "type.googleapis.com/temporal.api.update.v1.Rejection".into(),
            value: Rejection {
                failure: Some(Failure { message: "no".into(), ..Default::default() }),
                ..Default::default()
            }
            .encode_to_vec(),
        }),
        sequencing_id: None,
    }
}

#[test]
fn a_speculative_task_that_only_rejects_leaves_no_events() {
    let mut run = Run::new();
    let (out, _, _) = run.complete_wft(vec![]);
    out.unwrap();
    let last_started = run.state.last_completed_wft_started_event_id;
    let history_len = run.history.len();
    let (scheduled, _, _) = run.step(|tx| tx.schedule_speculative_workflow_task());
    assert!(scheduled);
    let (started, types, _) = run.step(|tx| tx.start_workflow_task("worker", "r2", "").unwrap());
    assert!(types.is_empty(), "a speculative task writes nothing when it starts");
    assert_eq!(started.transient_events.len(), 2, "the worker still sees its scheduled and started events");
    let req = CompleteWorkflowTask {
        scheduled_event_id: started.scheduled_event_id,
        attempt: started.attempt,
        messages: vec![rejection("u1")],
        identity: "worker".into(),
        ..Default::default()
    };
    let (out, types, effects) = run.step(|tx| tx.complete_workflow_task(req).unwrap());
    assert_eq!(out.unwrap().reset_history_event_id, last_started);
    assert!(types.is_empty());
    assert_eq!(run.history.len(), history_len);
    assert!(run.state.workflow_task.is_none());
    assert!(effects.iter().any(|e| matches!(e, Effect::UpdateProgress { update_id, .. } if update_id == "u1")));
}

#[test]
fn a_signal_makes_a_waiting_speculative_task_a_normal_one() {
    let mut run = Run::new();
    run.complete_wft(vec![]).0.unwrap();
    run.step(|tx| tx.schedule_speculative_workflow_task());
    let signal = super::external::Signal { name: "s".into(), ..Default::default() };
    let (_, types, _) = run.step(|tx| tx.signal(&signal).unwrap());
    assert_eq!(types, vec![E::WorkflowTaskScheduled, E::WorkflowExecutionSignaled]);
    let (_, types, _) = run.step(|tx| tx.start_workflow_task("worker", "r", "").unwrap());
    assert_eq!(types, vec![E::WorkflowTaskStarted]);
}

mod activity_operations {
    use super::*;
    use crate::engine::activity_ops::{ActivityOperation as Op, ActivitySelector};

    fn a1() -> ActivitySelector {
        ActivitySelector::Id("a1".into())
    }
    fn pause() -> Op {
        Op::Pause { identity: "ops".into(), reason: "look".into() }
    }
    fn dispatched(effects: &[Effect], attempt: i32) -> bool {
        effects.iter().any(|e| matches!(e, Effect::DispatchActivityTask { attempt: a, .. } if *a == attempt))
    }

    #[test]
    fn a_paused_activity_starts_no_attempt_and_waits_for_unpause_instead_of_its_retry() {
        let mut run = Run::new();
        run.complete_wft(vec![schedule_activity("a1", 0)]).0.unwrap();
        let (_, types, _) = run.step(|tx| tx.operate_activities(&a1(), &pause()).unwrap());
        assert!(types.is_empty(), "operator actions write no history");
        let (started, _, _) = run.step(|tx| tx.start_activity(5, 1, "w", "r"));
        assert!(started.is_none(), "a queued attempt of a paused activity is not handed out");

        let unpause = Op::Unpause { reset_attempts: false, reset_heartbeat: false, jitter_ms: 0 };
        let (_, _, effects) = run.step(|tx| tx.operate_activities(&a1(), &unpause).unwrap());
        assert!(dispatched(&effects, 1));
        run.step(|tx| tx.start_activity(5, 1, "w", "r")).0.expect("started once unpaused");

        // Paused while running: the attempt goes on and hears of it; its failure is not retried.
        run.step(|tx| tx.operate_activities(&a1(), &pause()).unwrap());
        let (answer, _, _) = run.step(|tx| tx.heartbeat(5, Some(1), None).unwrap());
        assert!(answer.paused && !answer.cancel_requested);
        let (_, types, effects) = run.step(|tx| tx.fail_activity(5, Some(1), app_failure(false), None, "w").unwrap());
        assert!(types.is_empty());
        assert!(effects.is_empty(), "no retry timer and no dispatch while paused: {effects:?}");
        assert_eq!((run.state.activities[&5].attempt, run.state.activities[&5].backoff_until_ms), (2, 0));

        let unpause = Op::Unpause { reset_attempts: true, reset_heartbeat: true, jitter_ms: 0 };
        let (_, _, effects) = run.step(|tx| tx.operate_activities(&a1(), &unpause).unwrap());
        assert!(dispatched(&effects, 1), "reset_attempts starts again from attempt 1: {effects:?}");
    }

    #[test]
    fn a_reset_of_a_running_activity_makes_its_next_attempt_the_first() {
        let mut run = Run::new();
        run.complete_wft(vec![schedule_activity("a1", 0)]).0.unwrap();
        run.step(|tx| tx.start_activity(5, 1, "w", "r")).0.unwrap();
        run.step(|tx| tx.fail_activity(5, Some(1), app_failure(false), None, "w").unwrap());
        run.now += 1_000;
        run.step(|tx| tx.activity_retry_due(5, 2));
        run.step(|tx| tx.start_activity(5, 2, "w", "r")).0.unwrap();
        let reset = Op::Reset { reset_heartbeat: false, keep_paused: false, jitter_ms: 0 };
        run.step(|tx| tx.operate_activities(&a1(), &reset).unwrap());
        let (answer, _, _) = run.step(|tx| tx.heartbeat(5, Some(2), None).unwrap());
        assert!(answer.reset);
        run.step(|tx| tx.fail_activity(5, Some(2), app_failure(false), None, "w").unwrap());
        assert_eq!(run.state.activities[&5].attempt, 1);
        assert!(!run.state.activities[&5].reset_requested);
    }

    #[test]
    fn operator_actions_name_a_pending_activity_of_an_open_run() {
        let mut run = Run::new();
        run.complete_wft(vec![schedule_activity("a1", 0)]).0.unwrap();
        let other = ActivitySelector::Id("nope".into());
        let (missing, _, _) = run.step(|tx| tx.operate_activities(&other, &pause()));
        assert!(matches!(missing, Err(Error::NotFound(_))));
        let bad = Op::UpdateOptions { options: Box::default(), paths: vec!["no_such_field".into()] };
        let (refused, _, _) = run.step(|tx| tx.operate_activities(&a1(), &bad));
        assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    }
}

#[test]
fn a_versioned_completion_pins_the_run_and_its_next_tasks_carry_the_version() {
    use super::state::{DeploymentVersion, Routing};
    use temporalio_protos::temporal::api::enums::v1::VersioningBehavior;
    let v1 = DeploymentVersion { deployment_name: "d".into(), build_id: "1.0".into() };
    let mut run = Run::new();
    let (scheduled_event_id, attempt) = run.start_wft();
    let req = CompleteWorkflowTask {
        scheduled_event_id,
        attempt,
        identity: "worker".into(),
        build_id: "1.0".into(),
        deployment: Some(v1.clone()),
        versioning_behavior: VersioningBehavior::Pinned as i32,
        ..Default::default()
    };
    run.step(|tx| tx.complete_workflow_task(req).unwrap()).0.unwrap();
    let Some(Attributes::WorkflowTaskCompletedEventAttributes(done)) = &run.history.last().unwrap().attributes else {
        panic!("no completion")
    };
    assert_eq!(done.versioning_behavior, VersioningBehavior::Pinned as i32);
    assert_eq!(done.deployment_version, Some(v1.to_proto()));
    assert_eq!(run.state.versioning.pinned(), Some(&v1));
    // The next workflow task (a signal) is routed to the pinned version.
    let mut effects = run.step(|tx| tx.schedule_workflow_task_if_needed()).2;
    super::stamp_routing(&run.state, &mut effects);
    let routing = Routing { pinned: Some(v1.clone()), last: Some(v1) };
    assert!(effects.iter().any(|e| matches!(e, Effect::DispatchWorkflowTask { routing: r, .. } if *r == routing)));
    // An auto-upgrade override un-pins it.
    let auto = temporalio_protos::temporal::api::workflow::v1::VersioningOverride {
        r#override: Some(temporalio_protos::temporal::api::workflow::v1::versioning_override::Override::AutoUpgrade(
            true,
        )),
        ..Default::default()
    };
    super::versioning::set_override(&mut run.state.versioning, Some(&auto));
    assert_eq!(run.state.versioning.pinned(), None);
}
