//! Every request type through the one entry point, `request::apply`: a table of cases, each a
//! run driven to some point by requests, then the request under test, and the events and
//! reply it must produce. No I/O, no clock. Every step also checks that the request survives
//! serialisation and that the state the forward path produced is the state the history
//! replays to (`replay::divergence`).

use temporalio_protos::temporal::api::command::v1::{self as command, command::Attributes as C, Command};
use temporalio_protos::temporal::api::common::v1::{ActivityType, Payload, Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::{
    CommandType, EventType as E, StartChildWorkflowExecutionFailedCause, WorkflowTaskFailedCause,
};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;

use super::external::{CancelRequest, Signal};
use super::request::{apply, ActivityAction, ActivityRef, Applied, Context, Reply, Request};
use super::state::{ClosePolicy, MutableState, ParentInfo};
use super::workflow::{start, StartWorkflow};
use super::workflow_task::CompleteWorkflowTask;
use super::{replay, ActivityTimeoutKind, Limits, Timer};
use crate::clock::proto;
use crate::error::Error;

struct Run {
    state: MutableState,
    history: Vec<HistoryEvent>,
    now: i64,
}

impl Run {
    fn new(parent: Option<ParentInfo>) -> Run {
        Run::with(StartWorkflow { parent, ..super::tests::start_request() })
    }

    fn with(req: StartWorkflow) -> Run {
        let (state, history, _) = start(req, 1_000);
        Run { state, history, now: 1_000 }
    }

    fn apply(&mut self, request: Request) -> Result<Applied, Error> {
        // Every request survives serialisation (as it will on its way to another node).
        let json = serde_json::to_string(&request).expect("a request serialises");
        let request: Request = serde_json::from_str(&json).expect("a request deserialises");
        assert_eq!(serde_json::to_string(&request).unwrap(), json, "a request round-trips unchanged");
        self.now += 10;
        let mut state = self.state.clone();
        let history = super::history::History::of(&self.history);
        let cx = Context {
            now: self.now,
            limits: Limits::default(),
            history: &history,
            new_run_id: "next".into(),
            search_attribute_types: Default::default(),
        };
        let applied = apply(&mut state, request, cx)?;
        for (i, e) in applied.events.iter().enumerate() {
            assert_eq!(e.event_id, self.history.len() as i64 + 1 + i as i64, "event ids are contiguous");
        }
        self.state = state;
        self.history.extend(applied.events.iter().cloned());
        if self.state.is_open() {
            if let Some(diff) = replay::divergence(&self.state, &self.history) {
                panic!("the forward state diverges from the replayed history:\n{diff}");
            }
        }
        Ok(applied)
    }

    /// Starts the scheduled workflow task and completes it with `commands`.
    fn decide(&mut self, commands: Vec<Command>) -> Applied {
        let start = self.apply(start_wft()).expect("a workflow task is scheduled");
        let Reply::WorkflowTaskStarted(started) = start.reply else { panic!("no workflow task started") };
        let complete = CompleteWorkflowTask {
            scheduled_event_id: started.task.scheduled_event_id,
            attempt: started.task.attempt,
            commands,
            identity: "worker".into(),
            ..Default::default()
        };
        let applied = self.apply(Request::CompleteWorkflowTask(Box::new(complete))).expect("task is running");
        assert!(matches!(applied.reply, Reply::WorkflowTaskCompleted(Ok(_))), "{:?}", applied.reply);
        applied
    }
}

fn cmd(attributes: C) -> Command {
    let command_type = match &attributes {
        C::ScheduleActivityTaskCommandAttributes(_) => CommandType::ScheduleActivityTask,
        C::StartTimerCommandAttributes(_) => CommandType::StartTimer,
        C::StartChildWorkflowExecutionCommandAttributes(_) => CommandType::StartChildWorkflowExecution,
        C::SignalExternalWorkflowExecutionCommandAttributes(_) => CommandType::SignalExternalWorkflowExecution,
        C::ContinueAsNewWorkflowExecutionCommandAttributes(_) => CommandType::ContinueAsNewWorkflowExecution,
        C::FailWorkflowExecutionCommandAttributes(_) => CommandType::FailWorkflowExecution,
        C::CompleteWorkflowExecutionCommandAttributes(_) => CommandType::CompleteWorkflowExecution,
        _ => CommandType::Unspecified,
    };
    Command { command_type: command_type as i32, attributes: Some(attributes), ..Default::default() }
}

fn activity() -> Command {
    cmd(C::ScheduleActivityTaskCommandAttributes(command::ScheduleActivityTaskCommandAttributes {
        activity_id: "a1".into(),
        activity_type: Some(ActivityType { name: "Act".into() }),
        task_queue: Some(TaskQueue { name: "tq".into(), ..Default::default() }),
        start_to_close_timeout: Some(proto::duration(5_000)),
        ..Default::default()
    }))
}

fn timer() -> Command {
    cmd(C::StartTimerCommandAttributes(command::StartTimerCommandAttributes {
        timer_id: "t1".into(),
        start_to_fire_timeout: Some(proto::duration(1_000)),
    }))
}

fn child() -> Command {
    cmd(C::StartChildWorkflowExecutionCommandAttributes(command::StartChildWorkflowExecutionCommandAttributes {
        workflow_id: "child".into(),
        workflow_type: Some(WorkflowType { name: "Child".into() }),
        task_queue: Some(TaskQueue { name: "tq".into(), ..Default::default() }),
        ..Default::default()
    }))
}

fn signal_other() -> Command {
    cmd(C::SignalExternalWorkflowExecutionCommandAttributes(
        command::SignalExternalWorkflowExecutionCommandAttributes {
            execution: Some(WorkflowExecution { workflow_id: "other".into(), run_id: String::new() }),
            signal_name: "hello".into(),
            ..Default::default()
        },
    ))
}

fn fail_workflow() -> Command {
    cmd(C::FailWorkflowExecutionCommandAttributes(command::FailWorkflowExecutionCommandAttributes {
        failure: Some(Failure { message: "boom".into(), ..Default::default() }),
    }))
}

fn complete_workflow() -> Command {
    cmd(C::CompleteWorkflowExecutionCommandAttributes(Default::default()))
}

fn continue_as_new() -> Command {
    cmd(C::ContinueAsNewWorkflowExecutionCommandAttributes(Default::default()))
}

fn start_wft() -> Request {
    Request::StartWorkflowTask {
        identity: "worker".into(),
        request_id: "r".into(),
        build_id: String::new(),
        sticky_poll: false,
        updates: Vec::new(),
    }
}

fn signal() -> Request {
    let payload = Payload {
        metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
        data: b"\"hi\"".to_vec(),
        ..Default::default()
    };
    let input = Some(Payloads { payloads: vec![payload] });
    Request::Signal(Signal { name: "s".into(), input, request_id: "sig-1".into(), ..Default::default() })
}

fn by_token(attempt: i32) -> ActivityRef {
    ActivityRef::Token { scheduled_event_id: 5, attempt }
}

/// A run with activity a1 scheduled (event 5) and its attempt 1 started.
fn with_started_activity() -> Run {
    let mut run = Run::new(None);
    run.decide(vec![activity()]);
    let start =
        Request::StartActivityTask { scheduled_event_id: 5, attempt: 1, identity: "w".into(), request_id: "r".into() };
    assert!(matches!(run.apply(start).unwrap().reply, Reply::ActivityStarted(_)));
    run
}

/// A run with child "child" initiated (event 5).
fn with_child() -> Run {
    let mut run = Run::new(None);
    run.decide(vec![child()]);
    run
}

type Setup = fn() -> Run;

fn types(applied: &Applied) -> Vec<E> {
    applied.events.iter().map(|e| E::try_from(e.event_type).unwrap()).collect()
}

/// What a case expects of applying its request.
type Check = Box<dyn Fn(&Result<Applied, Error>) -> bool>;

/// Applied, and satisfying `f`.
fn applied(f: impl Fn(&Applied) -> bool + 'static) -> Check {
    Box::new(move |r| r.as_ref().is_ok_and(&f))
}

/// Applied, changing the run by appending exactly these events.
fn events(expected: &'static [E]) -> Check {
    applied(move |a| a.changed && types(a) == expected)
}

fn unchanged() -> Check {
    applied(|a| !a.changed)
}

fn not_found() -> Check {
    Box::new(|r| matches!(r, Err(Error::NotFound(_))))
}

#[test]
fn every_request_type() {
    let fresh: Setup = || Run::new(None);
    let task_running: Setup = || {
        let mut run = Run::new(None);
        run.apply(start_wft()).unwrap();
        run
    };
    let closed: Setup = || {
        let mut run = Run::new(None);
        let end = Request::Terminate { reason: "r".into(), details: None, identity: "i".into() };
        run.apply(end).unwrap();
        run
    };
    let with_started_child: Setup = || {
        let mut run = with_child();
        run.apply(Request::ChildStarted { initiated_event_id: 5, run_id: "child-run".into() }).unwrap();
        run
    };
    let with_signal_out: Setup = || {
        let mut run = Run::new(None);
        run.decide(vec![signal_other()]);
        run
    };
    let child_of_parent: Setup = || {
        let parent = ParentInfo {
            namespace: "default".into(),
            workflow_id: "parent".into(),
            run_id: "parent-run".into(),
            initiated_event_id: 5,
            close_policy: ClosePolicy::Terminate,
            root_workflow_id: "root".into(),
            root_run_id: "root-run".into(),
        };
        Run::new(Some(parent))
    };
    let with_timer: Setup = || {
        let mut run = Run::new(None);
        run.decide(vec![timer()]);
        run.now += 1_000;
        run
    };
    let sticky: Setup = || {
        let mut run = Run::new(None);
        run.state.sticky = Some(super::state::Sticky { task_queue: "sticky".into(), schedule_to_start_ms: 5_000 });
        run
    };
    let close_event = || {
        let mut run = Run::new(None);
        run.apply(Request::Terminate { reason: "r".into(), details: None, identity: "i".into() }).unwrap();
        Box::new(run.history.last().unwrap().clone())
    };
    let activity_done = |a: ActivityAction, by: ActivityRef| Request::Activity { activity: by, action: a };
    let complete = || ActivityAction::Complete { result: None, identity: "w".into() };
    let failure = Box::new(Failure { message: "boom".into(), ..Default::default() });

    let cases: Vec<(&str, Setup, Request, Check)> = vec![
        ("signal", fresh, signal(), events(&[E::WorkflowExecutionSignaled])),
        ("signal a closed run", closed, signal(), not_found()),
        (
            "cancel",
            fresh,
            Request::RequestCancel(CancelRequest::default()),
            events(&[E::WorkflowExecutionCancelRequested]),
        ),
        ("cancel a closed run", closed, Request::RequestCancel(CancelRequest::default()), unchanged()),
        (
            "update the options",
            fresh,
            Request::UpdateOptions { priority: None, identity: "ops".into(), versioning_override: None },
            events(&[E::WorkflowExecutionOptionsUpdated]),
        ),
        (
            "update the options of a closed run",
            closed,
            Request::UpdateOptions { priority: None, identity: "ops".into(), versioning_override: None },
            not_found(),
        ),
        (
            "cancel while a workflow task runs: buffered, and the replay check agrees",
            task_running,
            Request::RequestCancel(CancelRequest::default()),
            applied(|a| a.changed && a.events.is_empty()),
        ),
        (
            "terminate",
            fresh,
            Request::Terminate { reason: "r".into(), details: None, identity: "i".into() },
            events(&[E::WorkflowExecutionTerminated]),
        ),
        (
            "terminate a closed run",
            closed,
            Request::Terminate { reason: "r".into(), details: None, identity: "i".into() },
            not_found(),
        ),
        ("reset sticky", sticky, Request::ResetStickyTaskQueue, applied(|a| a.changed && a.events.is_empty())),
        ("reset sticky, none", fresh, Request::ResetStickyTaskQueue, unchanged()),
        (
            "start a workflow task",
            fresh,
            start_wft(),
            applied(|a| {
                types(a) == [E::WorkflowTaskStarted]
                    && matches!(&a.reply, Reply::WorkflowTaskStarted(s) if s.history.len() == 3 && s.run.workflow_type == "Wf")
            }),
        ),
        (
            "fail a workflow task",
            || {
                let mut run = Run::new(None);
                run.apply(start_wft()).unwrap();
                run
            },
            Request::FailWorkflowTask {
                scheduled_event_id: 2,
                attempt: 1,
                cause: WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                failure: None,
                identity: "w".into(),
            },
            events(&[E::WorkflowTaskFailed]),
        ),
        (
            "start an activity",
            || {
                let mut run = Run::new(None);
                run.decide(vec![activity()]);
                run
            },
            Request::StartActivityTask {
                scheduled_event_id: 5,
                attempt: 1,
                identity: "w".into(),
                request_id: "r".into(),
            },
            applied(|a| {
                a.events.is_empty() && matches!(&a.reply, Reply::ActivityStarted(s) if s.scheduled.activity_id == "a1")
            }),
        ),
        (
            "a stale activity start",
            fresh,
            Request::StartActivityTask {
                scheduled_event_id: 5,
                attempt: 1,
                identity: "w".into(),
                request_id: "r".into(),
            },
            unchanged(),
        ),
        (
            "complete an activity by token",
            with_started_activity,
            activity_done(complete(), by_token(1)),
            events(&[E::ActivityTaskStarted, E::ActivityTaskCompleted, E::WorkflowTaskScheduled]),
        ),
        (
            "complete an activity while a workflow task runs: buffered, and the replay check agrees",
            || {
                let mut run = with_started_activity();
                run.apply(signal()).unwrap();
                run.apply(start_wft()).unwrap();
                run
            },
            activity_done(complete(), by_token(1)),
            applied(|a| a.changed && a.events.is_empty()),
        ),
        (
            "complete an activity by id",
            with_started_activity,
            activity_done(complete(), ActivityRef::ById("a1".into())),
            events(&[E::ActivityTaskStarted, E::ActivityTaskCompleted, E::WorkflowTaskScheduled]),
        ),
        (
            "complete an activity with a stale token",
            with_started_activity,
            activity_done(complete(), by_token(2)),
            not_found(),
        ),
        (
            "fail an activity: it will be retried, and writes nothing yet",
            with_started_activity,
            activity_done(
                ActivityAction::Fail { failure: failure.clone(), last_heartbeat_details: None, identity: "w".into() },
                by_token(1),
            ),
            applied(|a| a.changed && a.events.is_empty()),
        ),
        (
            "cancel an activity",
            with_started_activity,
            activity_done(
                ActivityAction::Cancel { details: None, identity: "w".into() },
                ActivityRef::ById("a1".into()),
            ),
            events(&[E::ActivityTaskStarted, E::ActivityTaskCanceled, E::WorkflowTaskScheduled]),
        ),
        (
            "heartbeat",
            with_started_activity,
            activity_done(ActivityAction::Heartbeat { details: None }, by_token(1)),
            applied(|a| matches!(a.reply, Reply::Heartbeat(answer) if !answer.cancel_requested)),
        ),
        (
            "an activity's start-to-close timeout",
            || {
                let mut run = with_started_activity();
                run.now += 10_000;
                run
            },
            Request::FireTimer(Timer::ActivityTimeout {
                scheduled_event_id: 5,
                attempt: 1,
                kind: ActivityTimeoutKind::StartToClose,
            }),
            applied(|a| a.changed),
        ),
        (
            "a user timer fires",
            with_timer,
            Request::FireTimer(Timer::UserTimer { timer_id: "t1".into(), started_event_id: 5 }),
            events(&[E::TimerFired, E::WorkflowTaskScheduled]),
        ),
        (
            "a stale timer",
            fresh,
            Request::FireTimer(Timer::UserTimer { timer_id: "t1".into(), started_event_id: 5 }),
            unchanged(),
        ),
        (
            "deliver updates: a speculative task",
            || {
                let mut run = Run::new(None);
                run.decide(vec![]);
                run
            },
            Request::DeliverUpdates,
            applied(|a| a.changed && a.events.is_empty()),
        ),
        (
            "a child started",
            with_child,
            Request::ChildStarted { initiated_event_id: 5, run_id: "child-run".into() },
            events(&[E::ChildWorkflowExecutionStarted, E::WorkflowTaskScheduled]),
        ),
        (
            "a child could not start",
            with_child,
            Request::ChildStartFailed {
                initiated_event_id: 5,
                cause: StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists,
            },
            events(&[E::StartChildWorkflowExecutionFailed, E::WorkflowTaskScheduled]),
        ),
        (
            "a child closed",
            with_started_child,
            Request::ChildClosed {
                initiated_event_id: 5,
                child_run_id: "child-run".into(),
                close_event: close_event(),
            },
            events(&[E::ChildWorkflowExecutionTerminated]),
        ),
        (
            "a signal to another run was delivered",
            with_signal_out,
            Request::ExternalDelivered { initiated_event_id: 5, found: true },
            events(&[E::ExternalWorkflowExecutionSignaled, E::WorkflowTaskScheduled]),
        ),
        (
            "a signal from another run",
            fresh,
            Request::FromRun {
                sender: WorkflowExecution { workflow_id: "other".into(), run_id: "other-run".into() },
                initiated_event_id: 5,
                request: Box::new(super::state::ExternalRequest {
                    initiated_event_id: 5,
                    namespace: "default".into(),
                    workflow_id: "wf".into(),
                    run_id: String::new(),
                    child_workflow_only: false,
                    control: String::new(),
                    signal: Some(super::state::ExternalSignal {
                        signal_name: "hello".into(),
                        input: None,
                        header: None,
                    }),
                    reason: String::new(),
                }),
            },
            events(&[E::WorkflowExecutionSignaled]),
        ),
        (
            "the parent closed: terminate",
            child_of_parent,
            Request::ParentClosed { parent_run_id: "parent-run".into(), policy: ClosePolicy::Terminate },
            events(&[E::WorkflowExecutionTerminated]),
        ),
        (
            "a close policy from another parent",
            child_of_parent,
            Request::ParentClosed { parent_run_id: "someone-else".into(), policy: ClosePolicy::Terminate },
            unchanged(),
        ),
    ];
    for (name, setup, request, check) in cases {
        let mut run = setup();
        let result = run.apply(request);
        assert!(check(&result), "{name}: {:?}", result.as_ref().map(|a| (a.changed, types(a), &a.reply)));
    }
}

#[test]
fn continue_as_new_and_reset_create_the_next_run_in_the_same_transaction() {
    let mut run = Run::new(None);
    let applied = run.decide(vec![continue_as_new()]);
    assert_eq!(types(&applied), [E::WorkflowTaskCompleted, E::WorkflowExecutionContinuedAsNew]);
    let next = applied.new_run.expect("the next run");
    assert_eq!(next.state.key.run_id, "next");
    assert_eq!(next.state.first_execution_run_id, "run");

    let mut base = Run::new(None);
    base.decide(vec![timer()]);
    let reset = super::reset::reset(&base.state, &base.history, 4, "reset-run", "why", "me", base.now).unwrap();
    let new_run = Box::new(super::NewRun { state: reset.state, events: reset.history, effects: reset.effects });
    let applied = base.apply(Request::Reset { reason: "why".into(), identity: "me".into(), run: new_run }).unwrap();
    assert_eq!(types(&applied), [E::WorkflowExecutionTerminated]);
    let reset_run = applied.new_run.expect("the reset run");
    let reset_types: Vec<E> = reset_run.events.iter().map(|e| E::try_from(e.event_type).unwrap()).collect();
    assert_eq!(reset_types[3..], [E::WorkflowTaskFailed, E::WorkflowTaskScheduled]);
}

/// The first event of a run created in the same transaction, and its initiator.
fn started_by(next: &super::NewRun) -> (i32, i32, Option<prost_types::Duration>) {
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes as A;
    match next.events.first().and_then(|e| e.attributes.as_ref()) {
        Some(A::WorkflowExecutionStartedEventAttributes(a)) => (a.attempt, a.initiator, a.first_workflow_task_backoff),
        other => panic!("the next run does not start with WorkflowExecutionStarted: {other:?}"),
    }
}

#[test]
fn a_failed_run_with_attempts_left_is_retried_after_its_backoff() {
    use temporalio_protos::temporal::api::enums::v1::ContinueAsNewInitiator;
    let retry_policy = temporalio_protos::temporal::api::common::v1::RetryPolicy {
        initial_interval: Some(proto::duration(2_000)),
        maximum_attempts: 3,
        ..Default::default()
    };
    let mut run = Run::with(StartWorkflow { retry_policy: Some(retry_policy), ..super::tests::start_request() });
    let applied = run.decide(vec![fail_workflow()]);
    assert_eq!(types(&applied), [E::WorkflowTaskCompleted, E::WorkflowExecutionFailed]);
    let next = applied.new_run.expect("a retry run");
    let (attempt, initiator, backoff) = started_by(&next);
    assert_eq!((attempt, initiator), (2, ContinueAsNewInitiator::Retry as i32));
    assert_eq!(backoff, Some(proto::duration(2_000)));
    assert!(next.effects.iter().any(|e| matches!(e, super::Effect::Timer { timer: Timer::WorkflowBackoff, .. })));
}

#[test]
fn a_cron_run_waits_for_its_time_then_begins_the_next_cron_run_when_it_completes() {
    use temporalio_protos::temporal::api::enums::v1::ContinueAsNewInitiator;
    let mut run = Run::with(StartWorkflow { cron_schedule: "@every 10s".into(), ..super::tests::start_request() });
    assert!(run.state.workflow_task.is_none(), "the first task waits for the schedule");
    let early = run.apply(Request::FireTimer(Timer::WorkflowBackoff)).unwrap();
    assert!(!early.changed, "not yet due");
    run.now += 10_000;
    let due = run.apply(Request::FireTimer(Timer::WorkflowBackoff)).unwrap();
    assert_eq!(types(&due), [E::WorkflowTaskScheduled]);
    let applied = run.decide(vec![complete_workflow()]);
    assert_eq!(types(&applied), [E::WorkflowTaskCompleted, E::WorkflowExecutionCompleted]);
    let next = applied.new_run.expect("the next cron run");
    let (_, initiator, backoff) = started_by(&next);
    assert_eq!(initiator, ContinueAsNewInitiator::CronSchedule as i32);
    assert!(backoff.is_some_and(|b| b.seconds <= 10), "{backoff:?}");
}
