//! Every state change of one run, as data, and the one entry point that applies it.
//!
//! The history service never hands the engine code to run: it sends a `Request`, addressed to
//! a run, and gets back `Applied` — the events to append, the effects to perform after commit,
//! a run created in the same transaction, and the `Reply` for the caller. A request can be
//! logged, counted, table-tested and (later) routed to the node that owns the run's shard.

use temporalio_protos::temporal::api::common::v1::{Payloads, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::{StartChildWorkflowExecutionFailedCause, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::{
    history_event::Attributes, ActivityTaskScheduledEventAttributes, HistoryEvent,
    WorkflowExecutionOptionsUpdatedEventAttributes,
};
use temporalio_protos::temporal::api::update::v1::Request as UpdateRequest;

use super::external::{CancelRequest, Signal};
use super::state::{Activity, ClosePolicy, ExternalRequest, MutableState};
use super::workflow_task::{CompleteWorkflowTask, Completed, StartedWorkflowTask};
use super::{updates, Effect, Limits, NewRun, Timer, Tx};
use crate::clock::Millis;
use crate::error::{Error, Result};

/// Names the activity an activity RPC is about: by task token, or by activity id (`…ById`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ActivityRef {
    Token { scheduled_event_id: i64, attempt: i32 },
    ById(String),
}

/// What a worker reports about a started activity attempt.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum ActivityAction {
    Complete { result: Option<Payloads>, identity: String },
    Fail { failure: Box<Failure>, last_heartbeat_details: Option<Payloads>, identity: String },
    Cancel { details: Option<Payloads>, identity: String },
    Heartbeat { details: Option<Payloads> },
}

/// One state change of one run. Serialisable (serde), so it can be logged, stored or sent to
/// the node that owns the run's shard.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Request {
    Signal(Signal),
    RequestCancel(CancelRequest),
    /// `TerminateWorkflowExecution`: NOT_FOUND if the run is already closed.
    Terminate {
        reason: String,
        details: Option<Payloads>,
        identity: String,
    },
    /// The worker that cached the run is forgotten; the next task carries full history.
    ResetStickyTaskQueue,
    /// `UpdateWorkflowExecutionOptions`: the run's priority (all of it) from now on, written as
    /// `WorkflowExecutionOptionsUpdated`. NOT_FOUND if the run is closed.
    UpdateOptions {
        priority: Option<temporalio_protos::temporal::api::common::v1::Priority>,
        identity: String,
        /// Set when the update mask names `versioning_override`: the new override (`None`
        /// removes it).
        #[serde(default)]
        versioning_override: Option<Option<temporalio_protos::temporal::api::workflow::v1::VersioningOverride>>,
    },
    /// An operator's action on pending activities (`engine::activity_ops`).
    OperateActivities {
        selector: super::activity_ops::ActivitySelector,
        operation: super::activity_ops::ActivityOperation,
    },
    /// A poller took the run's scheduled workflow task. `updates`: admitted updates to hand
    /// out with it (filled in by the service from its in-memory registry).
    StartWorkflowTask {
        identity: String,
        request_id: String,
        /// The poller's build id (empty if it gave none), shown as its version in history.
        #[serde(default)]
        build_id: String,
        sticky_poll: bool,
        updates: Vec<UpdateRequest>,
    },
    CompleteWorkflowTask(Box<CompleteWorkflowTask>),
    FailWorkflowTask {
        scheduled_event_id: i64,
        attempt: i32,
        cause: WorkflowTaskFailedCause,
        failure: Option<Failure>,
        identity: String,
    },
    /// A poller took an activity attempt.
    StartActivityTask {
        scheduled_event_id: i64,
        attempt: i32,
        identity: String,
        request_id: String,
    },
    Activity {
        activity: ActivityRef,
        action: ActivityAction,
    },
    /// An update was admitted: make sure a workflow task will carry it to a worker.
    DeliverUpdates,
    /// A durable timer of the run is due.
    FireTimer(Timer),
    ChildStarted {
        initiated_event_id: i64,
        run_id: String,
    },
    ChildStartFailed {
        initiated_event_id: i64,
        cause: StartChildWorkflowExecutionFailedCause,
    },
    ChildClosed {
        initiated_event_id: i64,
        child_run_id: String,
        close_event: Box<HistoryEvent>,
    },
    /// The sender learns whether its signal or cancel request reached its target.
    ExternalDelivered {
        initiated_event_id: i64,
        found: bool,
    },
    /// A signal or cancel request another run sent (its `initiated_event_id`) reaches this run.
    FromRun {
        sender: WorkflowExecution,
        initiated_event_id: i64,
        request: Box<ExternalRequest>,
    },
    /// This run's parent closed: apply its close policy if this run is still its open child.
    ParentClosed {
        parent_run_id: String,
        policy: ClosePolicy,
    },
    /// Reset: this run (the workflow id's current one) is terminated if open, and `run`
    /// becomes the current run, in the same transaction.
    Reset {
        reason: String,
        identity: String,
        run: Box<NewRun>,
    },
    /// A handler's worker took a Nexus operation's attempt (of its cancellation if `cancel`).
    StartNexusTask {
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
    },
    /// The handler answered a started Nexus attempt.
    NexusAnswered {
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
        outcome: super::nexus::NexusOutcome,
    },
    /// A Nexus attempt could not be dispatched: its endpoint is gone (or targets what tempora
    /// does not call); `message` says which.
    NexusEndpointGone {
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
        message: String,
    },
    /// A started Nexus operation ended (its handler's run closed).
    NexusCompleted {
        scheduled_event_id: i64,
        request_id: String,
        outcome: super::nexus::NexusOutcome,
    },
    /// This closed run's outcome reached the Nexus operations it ran for.
    CallbacksDelivered,
}

impl Request {
    /// The request's kind, for traces.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Signal { .. } => "Signal",
            Request::RequestCancel { .. } => "RequestCancel",
            Request::Terminate { .. } => "Terminate",
            Request::ResetStickyTaskQueue => "ResetStickyTaskQueue",
            Request::UpdateOptions { .. } => "UpdateOptions",
            Request::OperateActivities { .. } => "OperateActivities",
            Request::StartWorkflowTask { .. } => "StartWorkflowTask",
            Request::CompleteWorkflowTask { .. } => "CompleteWorkflowTask",
            Request::FailWorkflowTask { .. } => "FailWorkflowTask",
            Request::StartActivityTask { .. } => "StartActivityTask",
            Request::Activity { .. } => "Activity",
            Request::DeliverUpdates => "DeliverUpdates",
            Request::FireTimer { .. } => "FireTimer",
            Request::ChildStarted { .. } => "ChildStarted",
            Request::ChildStartFailed { .. } => "ChildStartFailed",
            Request::ChildClosed { .. } => "ChildClosed",
            Request::ExternalDelivered { .. } => "ExternalDelivered",
            Request::FromRun { .. } => "FromRun",
            Request::ParentClosed { .. } => "ParentClosed",
            Request::Reset { .. } => "Reset",
            Request::StartNexusTask { .. } => "StartNexusTask",
            Request::NexusAnswered { .. } => "NexusAnswered",
            Request::NexusEndpointGone { .. } => "NexusEndpointGone",
            Request::NexusCompleted { .. } => "NexusCompleted",
            Request::CallbacksDelivered => "CallbacksDelivered",
        }
    }
}

/// What the caller of a request learns.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    Done,
    WorkflowTaskStarted(Box<WorkflowTaskStart>),
    ActivityStarted(Box<ActivityStart>),
    /// `Err`: the completion was refused and the task failed (that failure is committed).
    WorkflowTaskCompleted(Result<Completed>),
    Heartbeat(super::activity::HeartbeatAnswer),
    /// The options of the activity an operator action changed last.
    ActivityOptions(Box<temporalio_protos::temporal::api::activity::v1::ActivityOptions>),
    NexusTaskStarted(Box<super::nexus::NexusTaskStart>),
}

/// What a worker is told about the run a task belongs to.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub key: super::state::RunKey,
    pub workflow_type: String,
    /// The run's normal task queue.
    pub task_queue: String,
}

impl RunInfo {
    pub fn of(state: &MutableState) -> Self {
        RunInfo {
            key: state.key.clone(),
            workflow_type: state.workflow_type.clone(),
            task_queue: state.task_queue.clone(),
        }
    }
}

/// A started workflow task and what its worker is shown.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WorkflowTaskStart {
    pub run: RunInfo,
    pub task: StartedWorkflowTask,
    /// The events the worker gets: all of history, or only what a sticky worker has not seen,
    /// then the task's own transient events.
    pub history: Vec<HistoryEvent>,
    #[serde(with = "super::proto_serde::list")]
    pub messages: Vec<temporalio_protos::temporal::api::protocol::v1::Message>,
}

/// A started activity attempt and its scheduled event (input, header, priority).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ActivityStart {
    pub run: RunInfo,
    pub activity: Activity,
    pub scheduled: ActivityTaskScheduledEventAttributes,
}

/// What applying a request produced. `changed` false: nothing to commit (effects derived from
/// unchanged state, such as a re-armed timer, still apply).
pub struct Applied {
    pub changed: bool,
    pub events: Vec<HistoryEvent>,
    pub effects: Vec<Effect>,
    pub new_run: Option<NewRun>,
    pub reply: Reply,
}

/// Everything a request is applied with, besides the state it changes.
pub struct Context<'a> {
    pub now: Millis,
    pub limits: Limits,
    /// The run's history so far.
    pub history: &'a super::history::History,
    /// The id a run created by this request gets (continue-as-new, retry, cron).
    pub new_run_id: String,
    /// The namespace's custom search attributes.
    pub search_attribute_types: std::sync::Arc<crate::visibility::attributes::CustomTypes>,
}

/// Applies `request` to `state` (changed in place; the caller applies it to a copy and keeps
/// the copy only once committed).
pub fn apply(state: &mut MutableState, request: Request, cx: Context<'_>) -> Result<Applied> {
    let mut tx = Tx::new(state, cx.now).with_history(cx.history);
    tx.new_run_id = cx.new_run_id;
    tx.limits = cx.limits;
    tx.search_attribute_types = cx.search_attribute_types;
    let was_open = tx.state.is_open();
    let (changed, reply) = tx.dispatch(request, cx.history)?;
    if changed {
        tx.enforce_history_limits();
    }
    if was_open && !tx.state.is_open() && !tx.state.callbacks.is_empty() {
        tx.effects.push(Effect::DeliverCallbacks);
    }
    super::stamp_routing(tx.state, &mut tx.effects);
    if let Some(next) = tx.new_run.as_mut() {
        super::stamp_routing(&next.state, &mut next.effects);
    }
    let Tx { events, effects, new_run, .. } = tx;
    debug_assert!(changed || events.is_empty(), "an unchanged run appended events");
    Ok(Applied { changed, events, effects, new_run, reply })
}

impl Tx<'_> {
    fn dispatch(&mut self, request: Request, history: &super::history::History) -> Result<(bool, Reply)> {
        let done = |changed: bool| Ok((changed, Reply::Done));
        match request {
            Request::Signal(signal) => done(self.signal(&signal)?),
            Request::RequestCancel(cancel) => done(self.request_cancel(&cancel)?),
            Request::Terminate { reason, details, identity } => {
                if !self.state.is_open() {
                    return Err(Error::not_found("workflow execution already completed"));
                }
                self.terminate(&reason, details, &identity);
                done(true)
            }
            Request::ResetStickyTaskQueue => done(self.state.sticky.take().is_some()),
            Request::UpdateOptions { priority, identity, versioning_override } => {
                if !self.state.is_open() {
                    return Err(Error::not_found("workflow execution already completed"));
                }
                let (versioning_override, unset_versioning_override) = match versioning_override {
                    Some(Some(o)) => {
                        super::versioning::set_override(&mut self.state.versioning, Some(&o));
                        (Some(o), false)
                    }
                    Some(None) => {
                        super::versioning::set_override(&mut self.state.versioning, None);
                        (None, true)
                    }
                    None => (
                        None,
                        self.state.versioning.override_pinned.is_none() && !self.state.versioning.override_auto_upgrade,
                    ),
                };
                self.add_passive(WorkflowExecutionOptionsUpdatedEventAttributes {
                    priority: Some(priority.unwrap_or_default()),
                    versioning_override,
                    unset_versioning_override,
                    identity,
                    ..Default::default()
                });
                done(true)
            }
            Request::OperateActivities { selector, operation } => {
                let options = self.operate_activities(&selector, &operation)?;
                Ok((true, Reply::ActivityOptions(Box::new(options))))
            }
            Request::StartWorkflowTask { identity, request_id, build_id, sticky_poll, updates } => {
                let Some(task) = self.start_workflow_task(&identity, &request_id, &build_id) else {
                    return done(false);
                };
                let from = if sticky_poll { task.previous_started_event_id.max(0) as usize } else { 0 };
                let mut shown = history.range(from..);
                shown.extend(self.events.iter().cloned());
                shown.extend(task.transient_events.iter().cloned());
                let messages = updates.iter().map(|u| updates::request_message(u, task.started_event_id - 1)).collect();
                let start = WorkflowTaskStart { run: RunInfo::of(self.state), task, history: shown, messages };
                Ok((true, Reply::WorkflowTaskStarted(Box::new(start))))
            }
            Request::CompleteWorkflowTask(complete) => {
                let completed = self.complete_workflow_task(*complete)?;
                Ok((true, Reply::WorkflowTaskCompleted(completed)))
            }
            Request::FailWorkflowTask { scheduled_event_id, attempt, cause, failure, identity } => {
                self.fail_workflow_task(scheduled_event_id, attempt, cause, failure, &identity)?;
                done(true)
            }
            Request::StartActivityTask { scheduled_event_id, attempt, identity, request_id } => {
                let Some(activity) = self.start_activity(scheduled_event_id, attempt, &identity, &request_id) else {
                    return done(false);
                };
                let scheduled = history
                    .get((activity.scheduled_event_id - 1) as usize)
                    .and_then(|e| match e.attributes {
                        Some(Attributes::ActivityTaskScheduledEventAttributes(s)) => Some(s),
                        _ => None,
                    })
                    .unwrap_or_default();
                Ok((
                    true,
                    Reply::ActivityStarted(Box::new(ActivityStart {
                        run: RunInfo::of(self.state),
                        activity,
                        scheduled,
                    })),
                ))
            }
            Request::Activity { activity, action } => self.on_activity(activity, action),
            Request::DeliverUpdates => done(self.schedule_speculative_workflow_task()),
            Request::FireTimer(timer) => done(self.fire(timer)),
            Request::ChildStarted { initiated_event_id, run_id } => {
                done(self.child_started(initiated_event_id, &run_id))
            }
            Request::ChildStartFailed { initiated_event_id, cause } => {
                done(self.child_start_failed(initiated_event_id, cause))
            }
            Request::ChildClosed { initiated_event_id, child_run_id, close_event } => {
                done(self.child_closed(initiated_event_id, &child_run_id, &close_event))
            }
            Request::ExternalDelivered { initiated_event_id, found } => {
                done(self.external_delivered(initiated_event_id, found))
            }
            Request::FromRun { sender, initiated_event_id, request } => {
                done(self.receive_external(sender, initiated_event_id, &request)?)
            }
            Request::ParentClosed { parent_run_id, policy } => done(self.parent_closed(&parent_run_id, policy)?),
            Request::Reset { reason, identity, run } => {
                if self.state.is_open() {
                    self.terminate(&reason, None, &identity);
                }
                self.new_run = Some(*run);
                done(true)
            }
            Request::StartNexusTask { scheduled_event_id, attempt, cancel } => {
                let Some(mut start) = self.start_nexus_task(scheduled_event_id, attempt, cancel) else {
                    return done(false);
                };
                if let Some(Attributes::NexusOperationScheduledEventAttributes(s)) =
                    history.get((scheduled_event_id - 1) as usize).and_then(|e| e.attributes)
                {
                    start.scheduled = s;
                }
                Ok((true, Reply::NexusTaskStarted(Box::new(start))))
            }
            Request::NexusAnswered { scheduled_event_id, attempt, cancel, outcome } => {
                self.nexus_answered(scheduled_event_id, attempt, cancel, outcome)?;
                done(true)
            }
            Request::NexusEndpointGone { scheduled_event_id, attempt, cancel, message } => {
                done(self.nexus_endpoint_gone(scheduled_event_id, attempt, cancel, &message))
            }
            Request::NexusCompleted { scheduled_event_id, request_id, outcome } => {
                done(self.nexus_completed(scheduled_event_id, &request_id, outcome))
            }
            Request::CallbacksDelivered => {
                let had = !self.state.callbacks.is_empty();
                self.state.callbacks.clear();
                done(had)
            }
        }
    }

    fn on_activity(&mut self, activity: ActivityRef, action: ActivityAction) -> Result<(bool, Reply)> {
        let (scheduled_event_id, attempt) = match activity {
            ActivityRef::Token { scheduled_event_id, attempt } => (scheduled_event_id, Some(attempt)),
            ActivityRef::ById(activity_id) => (self.find_activity_by_id(&activity_id)?, None),
        };
        let reply = match action {
            ActivityAction::Complete { result, identity } => {
                self.complete_activity(scheduled_event_id, attempt, result, &identity)?;
                Reply::Done
            }
            ActivityAction::Fail { failure, last_heartbeat_details, identity } => {
                self.fail_activity(scheduled_event_id, attempt, *failure, last_heartbeat_details, &identity)?;
                Reply::Done
            }
            ActivityAction::Cancel { details, identity } => {
                self.cancel_activity(scheduled_event_id, attempt, details, &identity)?;
                Reply::Done
            }
            ActivityAction::Heartbeat { details } => {
                Reply::Heartbeat(self.heartbeat(scheduled_event_id, attempt, details)?)
            }
        };
        Ok((true, reply))
    }

    /// A due timer; stale ones (the state moved on) change nothing.
    fn fire(&mut self, timer: Timer) -> bool {
        match timer {
            Timer::WorkflowTaskTimeout { scheduled_event_id, attempt } => {
                self.workflow_task_timed_out(scheduled_event_id, attempt)
            }
            Timer::ActivityTimeout { scheduled_event_id, attempt, kind } => {
                self.activity_timed_out(scheduled_event_id, attempt, kind)
            }
            Timer::ActivityRetry { scheduled_event_id, attempt } => {
                self.activity_retry_due(scheduled_event_id, attempt)
            }
            Timer::UserTimer { timer_id, started_event_id } => self.user_timer_fired(&timer_id, started_event_id),
            Timer::WorkflowRunTimeout => self.run_timed_out(),
            Timer::WorkflowBackoff => self.backoff_done(),
            Timer::StickyTimeout { force } => self.sticky_timed_out(force),
            Timer::NexusTimeout { .. } | Timer::NexusAttemptTimeout { .. } | Timer::NexusRetry { .. } => {
                self.nexus_timer(&timer)
            }
        }
    }

    /// Applies a closing parent's policy to this run, if it is still that parent's open child.
    fn parent_closed(&mut self, parent_run_id: &str, policy: ClosePolicy) -> Result<bool> {
        let ours = self.state.parent.as_ref().is_some_and(|p| p.run_id == parent_run_id);
        if !ours || !self.state.is_open() {
            return Ok(false);
        }
        let reason = "by parent close policy";
        match policy {
            ClosePolicy::Abandon => Ok(false),
            ClosePolicy::RequestCancel => {
                self.request_cancel(&CancelRequest { reason: reason.into(), ..Default::default() })
            }
            ClosePolicy::Terminate | ClosePolicy::Unspecified => {
                self.terminate(reason, None, "");
                Ok(true)
            }
        }
    }
}
