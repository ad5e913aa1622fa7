//! The history engine: pure state transitions of one workflow run.
//!
//! Input: the run's mutable state, a request, and `now`. Output: the events to append, the
//! updated mutable state, and `Effect`s for the caller to perform after it committed them.
//!
//! Architecture invariants: no I/O, no clock reads, no spawning, no tonic. The caller
//! (`service`) loads state, calls in here on a copy, commits, then performs the effects.

pub mod activity;
pub mod activity_ops;
pub mod children;
mod commands;
pub mod cron;
pub mod external;
pub mod history;
pub mod nexus;
pub mod proto_serde;
pub mod replay;
pub mod request;
pub mod reset;
pub mod start;
pub mod state;
pub mod updates;
pub mod versioning;
pub mod workflow;
pub mod workflow_task;

#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

/// Where event task ids start (Temporal starts its first id range there too).
const TASK_ID_BASE: i64 = 1 << 20;

use prost::Message;
use temporalio_protos::temporal::api::enums::v1::EventType;
use temporalio_protos::temporal::api::history::v1::{history_event::Attributes, HistoryEvent};

use crate::clock::{proto, Millis};
use state::{Encoded, MutableState, ParentInfo, RunKey};

pub use state::RetryPolicy;

/// Per-run limits, Temporal's defaults unless configured otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// A run whose history grows past this many events is terminated.
    pub history_count_max: i64,
    /// … or past this many bytes.
    pub history_size_bytes_max: i64,
    /// From here on, workflow tasks suggest continue-as-new.
    pub history_count_suggest_continue_as_new: i64,
    pub history_size_bytes_suggest_continue_as_new: i64,
    /// A payload a command carries may be at most this big; a bigger one terminates the run.
    pub blob_bytes_max: usize,
    /// Pending work one run may have at once; a command past a limit fails its workflow task.
    pub pending_activities_max: usize,
    pub pending_children_max: usize,
    pub pending_signals_max: usize,
    pub pending_cancels_max: usize,
    /// Temporal's `component.nexusoperations.limit.operation.concurrency`.
    pub pending_nexus_operations_max: usize,
    /// Updates one run may accept in its life (`history.maxTotalUpdates`).
    pub updates_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            history_count_max: 51_200,
            history_size_bytes_max: 50 * 1024 * 1024,
            history_count_suggest_continue_as_new: 4_096,
            history_size_bytes_suggest_continue_as_new: 4 * 1024 * 1024,
            blob_bytes_max: 2 * 1024 * 1024,
            pending_activities_max: 2_000,
            pending_children_max: 2_000,
            pending_signals_max: 2_000,
            pending_cancels_max: 2_000,
            pending_nexus_operations_max: 30,
            updates_max: 2_000,
        }
    }
}

/// Placeholder `started_event_id` in a buffered activity closing event, resolved on append.
pub const LINK_STARTED: i64 = -1;

/// Something the caller must do once the transition is durable.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    /// Offer the run's scheduled workflow task: on the sticky queue of the worker that has
    /// the run cached if that worker is still polling, else on the normal task queue.
    DispatchWorkflowTask {
        task_queue: String,
        sticky: Option<state::Sticky>,
        /// Filled in from the run's versioning after the transition (`stamp_routing`).
        #[serde(default, skip_serializing_if = "state::Routing::is_default")]
        routing: state::Routing,
    },
    /// Offer an activity attempt on its task queue.
    DispatchActivityTask {
        task_queue: String,
        scheduled_event_id: i64,
        attempt: i32,
        #[serde(default, skip_serializing_if = "state::Routing::is_default")]
        routing: state::Routing,
    },
    /// Call back at `at_ms`.
    Timer { at_ms: Millis, timer: Timer },
    /// Start the child initiated by this event (idempotent: its request id is derived from it).
    StartChild { initiated_event_id: i64 },
    /// Find out whether a started child has closed, and report it if so (after a restart).
    CheckChild { initiated_event_id: i64 },
    /// Deliver the signal or cancel request initiated by this event to its target.
    DeliverExternal { initiated_event_id: i64 },
    /// This run, a child, closed: tell its parent (`close_event` is its closing event).
    ReportToParent { parent: ParentInfo, close_event: Box<HistoryEvent> },
    /// This run closed with children still open: apply their parent close policies.
    ParentClosed { children: Vec<ClosingChild> },
    /// Find out whether this child's parent closed without its close policy being applied to
    /// this run (the server stopped in between), and apply it if so (after a restart).
    CheckParent { parent: state::ParentInfo },
    /// An update was accepted, completed or rejected: tell whoever waits for it.
    UpdateProgress { update_id: String, progress: updates::UpdateProgress },
    /// Offer a Nexus operation's attempt (its start, or its cancellation when `cancel`) to
    /// the target of its endpoint.
    DispatchNexusTask { endpoint_id: String, scheduled_event_id: i64, attempt: i32, cancel: bool },
    /// This run closed and Nexus operations wait for its outcome (`MutableState::callbacks`):
    /// report it to them.
    DeliverCallbacks,
}

/// Sets the worker-versioning routing of a run's dispatches from its state (after the
/// transition that produced them, so a completion's new version counts).
pub fn stamp_routing(state: &MutableState, effects: &mut [Effect]) {
    if state.versioning.is_default() {
        return;
    }
    let routing = state::Routing::of(state);
    for effect in effects {
        match effect {
            Effect::DispatchWorkflowTask { routing: r, .. } | Effect::DispatchActivityTask { routing: r, .. } => {
                *r = routing.clone()
            }
            _ => {}
        }
    }
}

/// A child of a closing parent and what its parent close policy says to do with it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClosingChild {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub policy: state::ClosePolicy,
}

/// A run created in the same transaction as the one that closed (continue-as-new).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewRun {
    pub state: MutableState,
    pub events: Vec<HistoryEvent>,
    pub effects: Vec<Effect>,
}

/// A durable deadline of a run. Firing one re-checks the state, so stale timers are no-ops.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Timer {
    WorkflowTaskTimeout {
        scheduled_event_id: i64,
        attempt: i32,
    },
    /// A workflow task offered on a sticky queue was not taken in time: move it to the normal
    /// queue.
    /// `force`: the sticky worker is known to be gone (it shut down).
    StickyTimeout {
        force: bool,
    },
    ActivityTimeout {
        scheduled_event_id: i64,
        attempt: i32,
        kind: ActivityTimeoutKind,
    },
    ActivityRetry {
        scheduled_event_id: i64,
        attempt: i32,
    },
    UserTimer {
        timer_id: String,
        started_event_id: i64,
    },
    WorkflowRunTimeout,
    /// The delay before a run's first workflow task (cron, workflow retry) is over.
    WorkflowBackoff,
    /// A Nexus operation's schedule-to-close timeout.
    NexusTimeout {
        scheduled_event_id: i64,
    },
    /// A Nexus handler did not answer an attempt in time (`cancel`: a cancellation's attempt).
    NexusAttemptTimeout {
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
    },
    /// A Nexus operation's (or its cancellation's) retry backoff is over.
    NexusRetry {
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ActivityTimeoutKind {
    ScheduleToStart,
    StartToClose,
    ScheduleToClose,
    Heartbeat,
}

/// One transition in progress: the state being changed, the events appended so far, the
/// effects to perform after commit.
pub struct Tx<'a> {
    pub state: &'a mut MutableState,
    pub now: Millis,
    pub events: Vec<HistoryEvent>,
    pub effects: Vec<Effect>,
    /// The id a run created by this transition gets (ids are chosen by the caller, so the
    /// engine stays deterministic).
    pub new_run_id: String,
    pub new_run: Option<NewRun>,
    /// The run's `WorkflowExecutionStarted` attributes (input, retry policy, cron schedule…),
    /// for transitions that start the next run.
    pub started: Option<&'a temporalio_protos::temporal::api::history::v1::WorkflowExecutionStartedEventAttributes>,
    pub limits: Limits,
    /// The namespace's custom search attributes, which commands' values are checked against.
    pub search_attribute_types: std::sync::Arc<crate::visibility::attributes::CustomTypes>,
}

impl<'a> Tx<'a> {
    pub fn new(state: &'a mut MutableState, now: Millis) -> Self {
        Tx {
            state,
            now,
            events: Vec::new(),
            effects: Vec::new(),
            new_run_id: String::new(),
            new_run: None,
            started: None,
            limits: Limits::default(),
            search_attribute_types: Default::default(),
        }
    }

    /// Terminates an open run whose history outgrew its limits (Temporal's reasons).
    pub fn enforce_history_limits(&mut self) {
        if !self.state.is_open() {
            return;
        }
        let count = self.state.next_event_id - 1;
        let reason = if count >= self.limits.history_count_max {
            "Workflow history count exceeds limit."
        } else if self.state.history_size_bytes >= self.limits.history_size_bytes_max {
            "Workflow history size exceeds limit."
        } else {
            return;
        };
        self.terminate(reason, None, "tempora");
    }

    /// Gives the transition the run's first event (see `started`).
    pub fn with_history(mut self, history: &'a history::History) -> Self {
        self.started = history.started();
        self
    }

    pub fn key(&self) -> &RunKey {
        &self.state.key
    }

    fn event(&self, event_id: i64, attributes: Attributes) -> HistoryEvent {
        // SDKs skip what they do not handle only when told they may (Temporal marks these).
        let worker_may_ignore = matches!(attributes, Attributes::WorkflowExecutionOptionsUpdatedEventAttributes(_));
        HistoryEvent {
            event_id,
            event_time: Some(proto::timestamp(self.now)),
            event_type: event_type(&attributes) as i32,
            // Opaque to clients; in Temporal the id of the transaction that wrote the event.
            task_id: TASK_ID_BASE + self.state.transitions as i64,
            attributes: Some(attributes),
            worker_may_ignore,
            ..Default::default()
        }
    }

    /// Appends an event to history now, returning its id.
    pub fn append(&mut self, attributes: impl Into<Attributes>) -> i64 {
        let id = self.state.next_event_id;
        self.state.next_event_id += 1;
        let event = self.event(id, attributes.into());
        self.state.history_size_bytes += event.encoded_len() as i64;
        replay::apply(self.state, &event);
        self.events.push(event);
        id
    }

    /// Records an event that is not a result of the running workflow task: buffered while a
    /// workflow task is started, appended otherwise; either way a workflow task will see it.
    pub fn add_external(&mut self, attributes: impl Into<Attributes>) {
        self.add_external_all(vec![attributes.into()]);
    }

    /// An event from outside that the workflow need not see at once (options updated): written
    /// (or buffered, during a workflow task) like `add_external`, but schedules no workflow task,
    /// as in Temporal. The next task shows it.
    pub fn add_passive(&mut self, attributes: impl Into<Attributes>) {
        self.record_from_outside(vec![attributes.into()]);
    }

    /// `add_external` for events that must stay together and in order.
    pub fn add_external_all(&mut self, events: Vec<Attributes>) {
        if self.record_from_outside(events) {
            self.schedule_workflow_task_if_needed();
        }
    }

    /// Buffers events while a workflow task runs, else appends them; true if appended.
    fn record_from_outside(&mut self, events: Vec<Attributes>) -> bool {
        let started = self.state.workflow_task.as_ref().is_some_and(|w| w.is_started());
        if started {
            for attributes in events {
                let event = self.event(0, attributes);
                self.state.buffered_events.push(Encoded::of(&event));
            }
            return false;
        }
        self.unspeculate();
        let mut links = HashMap::new();
        for attributes in events {
            self.append_linked(attributes, &mut links);
        }
        true
    }

    /// Appends an event, resolving an activity closing event's `LINK_STARTED` to the id of the
    /// `ActivityTaskStarted` appended before it (`links`: scheduled id → started id).
    pub(crate) fn append_linked(&mut self, mut attributes: Attributes, links: &mut HashMap<i64, i64>) -> i64 {
        use Attributes as A;
        let link = |scheduled: i64, started: &mut i64, links: &HashMap<i64, i64>| {
            if *started == LINK_STARTED {
                *started = links.get(&scheduled).copied().unwrap_or(0);
            }
        };
        match &mut attributes {
            A::ActivityTaskStartedEventAttributes(a) => {
                links.insert(a.scheduled_event_id, self.state.next_event_id);
            }
            A::ActivityTaskCompletedEventAttributes(a) => link(a.scheduled_event_id, &mut a.started_event_id, links),
            A::ActivityTaskFailedEventAttributes(a) => link(a.scheduled_event_id, &mut a.started_event_id, links),
            A::ActivityTaskTimedOutEventAttributes(a) => link(a.scheduled_event_id, &mut a.started_event_id, links),
            A::ActivityTaskCanceledEventAttributes(a) => link(a.scheduled_event_id, &mut a.started_event_id, links),
            A::ChildWorkflowExecutionStartedEventAttributes(a) => {
                links.insert(a.initiated_event_id, self.state.next_event_id);
                if let Some(child) = self.state.children.get_mut(&a.initiated_event_id) {
                    child.started_event_id = self.state.next_event_id;
                }
            }
            A::ChildWorkflowExecutionCompletedEventAttributes(a) => {
                link(a.initiated_event_id, &mut a.started_event_id, links)
            }
            A::ChildWorkflowExecutionFailedEventAttributes(a) => {
                link(a.initiated_event_id, &mut a.started_event_id, links)
            }
            A::ChildWorkflowExecutionCanceledEventAttributes(a) => {
                link(a.initiated_event_id, &mut a.started_event_id, links)
            }
            A::ChildWorkflowExecutionTimedOutEventAttributes(a) => {
                link(a.initiated_event_id, &mut a.started_event_id, links)
            }
            A::ChildWorkflowExecutionTerminatedEventAttributes(a) => {
                link(a.initiated_event_id, &mut a.started_event_id, links)
            }
            _ => {}
        }
        self.append(attributes)
    }

    pub fn schedule_timer(&mut self, at_ms: Millis, timer: Timer) {
        self.effects.push(Effect::Timer { at_ms, timer });
    }
}

/// The event type that goes with a set of attributes.
pub fn event_type(attributes: &Attributes) -> EventType {
    use Attributes as A;
    match attributes {
        A::WorkflowExecutionStartedEventAttributes(_) => EventType::WorkflowExecutionStarted,
        A::WorkflowExecutionCompletedEventAttributes(_) => EventType::WorkflowExecutionCompleted,
        A::WorkflowExecutionFailedEventAttributes(_) => EventType::WorkflowExecutionFailed,
        A::WorkflowExecutionTimedOutEventAttributes(_) => EventType::WorkflowExecutionTimedOut,
        A::WorkflowTaskScheduledEventAttributes(_) => EventType::WorkflowTaskScheduled,
        A::WorkflowTaskStartedEventAttributes(_) => EventType::WorkflowTaskStarted,
        A::WorkflowTaskCompletedEventAttributes(_) => EventType::WorkflowTaskCompleted,
        A::WorkflowTaskTimedOutEventAttributes(_) => EventType::WorkflowTaskTimedOut,
        A::WorkflowTaskFailedEventAttributes(_) => EventType::WorkflowTaskFailed,
        A::ActivityTaskScheduledEventAttributes(_) => EventType::ActivityTaskScheduled,
        A::ActivityTaskStartedEventAttributes(_) => EventType::ActivityTaskStarted,
        A::ActivityTaskCompletedEventAttributes(_) => EventType::ActivityTaskCompleted,
        A::ActivityTaskFailedEventAttributes(_) => EventType::ActivityTaskFailed,
        A::ActivityTaskTimedOutEventAttributes(_) => EventType::ActivityTaskTimedOut,
        A::ActivityTaskCancelRequestedEventAttributes(_) => EventType::ActivityTaskCancelRequested,
        A::ActivityTaskCanceledEventAttributes(_) => EventType::ActivityTaskCanceled,
        A::TimerStartedEventAttributes(_) => EventType::TimerStarted,
        A::TimerFiredEventAttributes(_) => EventType::TimerFired,
        A::TimerCanceledEventAttributes(_) => EventType::TimerCanceled,
        A::MarkerRecordedEventAttributes(_) => EventType::MarkerRecorded,
        A::WorkflowExecutionTerminatedEventAttributes(_) => EventType::WorkflowExecutionTerminated,
        A::WorkflowExecutionCanceledEventAttributes(_) => EventType::WorkflowExecutionCanceled,
        A::WorkflowExecutionCancelRequestedEventAttributes(_) => EventType::WorkflowExecutionCancelRequested,
        A::WorkflowExecutionContinuedAsNewEventAttributes(_) => EventType::WorkflowExecutionContinuedAsNew,
        A::WorkflowExecutionSignaledEventAttributes(_) => EventType::WorkflowExecutionSignaled,
        A::UpsertWorkflowSearchAttributesEventAttributes(_) => EventType::UpsertWorkflowSearchAttributes,
        A::WorkflowPropertiesModifiedEventAttributes(_) => EventType::WorkflowPropertiesModified,
        A::StartChildWorkflowExecutionInitiatedEventAttributes(_) => EventType::StartChildWorkflowExecutionInitiated,
        A::StartChildWorkflowExecutionFailedEventAttributes(_) => EventType::StartChildWorkflowExecutionFailed,
        A::ChildWorkflowExecutionStartedEventAttributes(_) => EventType::ChildWorkflowExecutionStarted,
        A::ChildWorkflowExecutionCompletedEventAttributes(_) => EventType::ChildWorkflowExecutionCompleted,
        A::ChildWorkflowExecutionFailedEventAttributes(_) => EventType::ChildWorkflowExecutionFailed,
        A::ChildWorkflowExecutionCanceledEventAttributes(_) => EventType::ChildWorkflowExecutionCanceled,
        A::ChildWorkflowExecutionTimedOutEventAttributes(_) => EventType::ChildWorkflowExecutionTimedOut,
        A::ChildWorkflowExecutionTerminatedEventAttributes(_) => EventType::ChildWorkflowExecutionTerminated,
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::SignalExternalWorkflowExecutionInitiated
        }
        A::SignalExternalWorkflowExecutionFailedEventAttributes(_) => EventType::SignalExternalWorkflowExecutionFailed,
        A::ExternalWorkflowExecutionSignaledEventAttributes(_) => EventType::ExternalWorkflowExecutionSignaled,
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionInitiated
        }
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionFailed
        }
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(_) => {
            EventType::ExternalWorkflowExecutionCancelRequested
        }
        A::WorkflowExecutionUpdateAcceptedEventAttributes(_) => EventType::WorkflowExecutionUpdateAccepted,
        A::WorkflowExecutionUpdateCompletedEventAttributes(_) => EventType::WorkflowExecutionUpdateCompleted,
        A::WorkflowExecutionOptionsUpdatedEventAttributes(_) => EventType::WorkflowExecutionOptionsUpdated,
        A::NexusOperationScheduledEventAttributes(_) => EventType::NexusOperationScheduled,
        A::NexusOperationStartedEventAttributes(_) => EventType::NexusOperationStarted,
        A::NexusOperationCompletedEventAttributes(_) => EventType::NexusOperationCompleted,
        A::NexusOperationFailedEventAttributes(_) => EventType::NexusOperationFailed,
        A::NexusOperationCanceledEventAttributes(_) => EventType::NexusOperationCanceled,
        A::NexusOperationTimedOutEventAttributes(_) => EventType::NexusOperationTimedOut,
        A::NexusOperationCancelRequestedEventAttributes(_) => EventType::NexusOperationCancelRequested,
        A::NexusOperationCancelRequestCompletedEventAttributes(_) => EventType::NexusOperationCancelRequestCompleted,
        A::NexusOperationCancelRequestFailedEventAttributes(_) => EventType::NexusOperationCancelRequestFailed,
        _ => EventType::Unspecified,
    }
}

/// True for the events that close a run.
pub fn is_close_event(event: &HistoryEvent) -> bool {
    use EventType as E;
    matches!(
        EventType::try_from(event.event_type).unwrap_or(E::Unspecified),
        E::WorkflowExecutionCompleted
            | E::WorkflowExecutionFailed
            | E::WorkflowExecutionTimedOut
            | E::WorkflowExecutionTerminated
            | E::WorkflowExecutionCanceled
            | E::WorkflowExecutionContinuedAsNew
    )
}
