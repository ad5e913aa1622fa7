//! Child workflows as their parent sees them: the `StartChildWorkflowExecution` command, the
//! child's start (or failure to start), and its close reported back.
//!
//! The child itself is an ordinary run that knows its parent (`MutableState::parent`); the
//! service starts it after the parent's command is committed, and reports its close.

use temporalio_protos::temporal::api::command::v1::StartChildWorkflowExecutionCommandAttributes;
use temporalio_protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::{
    EventType, StartChildWorkflowExecutionFailedCause, WorkflowIdReusePolicy,
};
use temporalio_protos::temporal::api::history::v1::{self as history, history_event::Attributes, HistoryEvent};

use super::state::{Child, ClosePolicy, Encoded, ParentInfo, RunKey};
use super::workflow::{normal_queue, StartWorkflow};
use super::{ClosingChild, Effect, Tx, LINK_STARTED};
use crate::clock::proto;

const CHILD_TASK_TIMEOUT_DEFAULT_MS: i64 = 10_000;

impl Tx<'_> {
    /// The `StartChildWorkflowExecution` command.
    pub(crate) fn start_child(
        &mut self,
        a: &StartChildWorkflowExecutionCommandAttributes,
        completed_id: i64,
    ) -> Result<(), String> {
        if a.workflow_id.is_empty() {
            return Err("WorkflowId is not set on StartChildWorkflowExecutionCommand.".into());
        }
        let workflow_type = a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        if workflow_type.is_empty() {
            return Err("WorkflowType is not set on StartChildWorkflowExecutionCommand.".into());
        }
        let mut a = a.clone();
        if a.namespace.is_empty() {
            a.namespace = self.state.key.namespace.to_string();
        }
        if a.task_queue.as_ref().is_none_or(|q| q.name.is_empty()) {
            a.task_queue = Some(normal_queue(&self.state.task_queue));
        }
        if proto::duration_ms(a.workflow_task_timeout.as_ref()) <= 0 {
            a.workflow_task_timeout = Some(proto::duration(CHILD_TASK_TIMEOUT_DEFAULT_MS));
        }
        let initiated = initiated_event(&a, completed_id);
        // Appending the event puts the child in state (`replay::apply`).
        let initiated_event_id = self.append(initiated);
        self.effects.push(Effect::StartChild { initiated_event_id });
        Ok(())
    }

    /// The child was started as `run_id`. False if already known (or no longer wanted).
    pub fn child_started(&mut self, initiated_event_id: i64, run_id: &str) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(child) = self.state.children.get_mut(&initiated_event_id) else { return false };
        if !child.run_id.is_empty() {
            return false;
        }
        child.run_id = run_id.to_string();
        let event = started_event(child, self.state.key.namespace.to_string());
        self.add_external(event);
        true
    }

    /// The child could not be started: its workflow id is in use, or its namespace is unknown.
    pub fn child_start_failed(
        &mut self,
        initiated_event_id: i64,
        cause: StartChildWorkflowExecutionFailedCause,
    ) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(child) = self.state.children.remove(&initiated_event_id) else { return false };
        let initiated = child.initiated_event();
        self.add_external(history::StartChildWorkflowExecutionFailedEventAttributes {
            namespace: initiated.namespace,
            workflow_id: child.workflow_id,
            workflow_type: Some(WorkflowType { name: child.workflow_type }),
            cause: cause as i32,
            control: initiated.control,
            initiated_event_id,
            ..Default::default()
        });
        true
    }

    /// The child's chain closed with `close_event` (its last run's closing event).
    pub fn child_closed(&mut self, initiated_event_id: i64, child_run_id: &str, close_event: &HistoryEvent) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(child) = self.state.children.get(&initiated_event_id).cloned() else { return false };
        let namespace = self.state.key.namespace.to_string();
        let mut events: Vec<Attributes> = Vec::new();
        let mut started_event_id = child.started_event_id;
        if child.run_id.is_empty() {
            // The close overtook the report of the start: write both, in order.
            let mut started = child.clone();
            started.run_id = child_run_id.to_string();
            events.push(started_event(&started, namespace.clone()).into());
            started_event_id = LINK_STARTED;
        } else if started_event_id == 0 {
            started_event_id = LINK_STARTED; // Its started event is still buffered.
        }
        let run_id = if child.run_id.is_empty() { child_run_id.to_string() } else { child.run_id.clone() };
        let execution = Some(WorkflowExecution { workflow_id: child.workflow_id.clone(), run_id });
        let workflow_type = Some(WorkflowType { name: child.workflow_type.clone() });
        let Some(closed) =
            closed_event(close_event, namespace, execution, workflow_type, initiated_event_id, started_event_id)
        else {
            return false;
        };
        events.push(closed);
        self.state.children.remove(&initiated_event_id);
        self.add_external_all(events);
        true
    }

    /// Effects of this run's close on its relatives: the parent hears of it, children are
    /// dealt with by their parent close policies.
    pub(crate) fn close_relatives(&mut self) {
        let continued = !self.state.new_execution_run_id.is_empty();
        if let (Some(parent), false) = (&self.state.parent, continued) {
            if let Some(close_event) = self.events.last() {
                self.effects.push(Effect::ReportToParent {
                    parent: parent.clone(),
                    close_event: Box::new(close_event.clone()),
                });
            }
        }
        let children: Vec<ClosingChild> = self
            .state
            .children
            .values()
            .filter(|c| !c.run_id.is_empty() && c.parent_close_policy != ClosePolicy::Abandon)
            .map(|c| ClosingChild {
                namespace: c.initiated_event().namespace,
                workflow_id: c.workflow_id.clone(),
                run_id: c.run_id.clone(),
                policy: c.parent_close_policy,
            })
            .collect();
        if !children.is_empty() {
            self.effects.push(Effect::ParentClosed { children });
        }
    }
}

fn started_event(child: &Child, namespace: String) -> history::ChildWorkflowExecutionStartedEventAttributes {
    let initiated = child.initiated_event();
    history::ChildWorkflowExecutionStartedEventAttributes {
        namespace: if initiated.namespace.is_empty() { namespace } else { initiated.namespace },
        initiated_event_id: child.initiated_event_id,
        workflow_execution: Some(WorkflowExecution {
            workflow_id: child.workflow_id.clone(),
            run_id: child.run_id.clone(),
        }),
        workflow_type: Some(WorkflowType { name: child.workflow_type.clone() }),
        header: initiated.header,
        ..Default::default()
    }
}

/// The parent's event for a child's closing event, or `None` if the event does not close.
fn closed_event(
    close_event: &HistoryEvent,
    namespace: String,
    workflow_execution: Option<WorkflowExecution>,
    workflow_type: Option<WorkflowType>,
    initiated_event_id: i64,
    started_event_id: i64,
) -> Option<Attributes> {
    use Attributes as A;
    let event = match close_event.attributes.as_ref()? {
        A::WorkflowExecutionCompletedEventAttributes(a) => {
            A::ChildWorkflowExecutionCompletedEventAttributes(history::ChildWorkflowExecutionCompletedEventAttributes {
                result: a.result.clone(),
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                ..Default::default()
            })
        }
        A::WorkflowExecutionFailedEventAttributes(a) => {
            A::ChildWorkflowExecutionFailedEventAttributes(history::ChildWorkflowExecutionFailedEventAttributes {
                failure: a.failure.clone(),
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                retry_state: a.retry_state,
                ..Default::default()
            })
        }
        A::WorkflowExecutionCanceledEventAttributes(a) => {
            A::ChildWorkflowExecutionCanceledEventAttributes(history::ChildWorkflowExecutionCanceledEventAttributes {
                details: a.details.clone(),
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                ..Default::default()
            })
        }
        A::WorkflowExecutionTimedOutEventAttributes(a) => {
            A::ChildWorkflowExecutionTimedOutEventAttributes(history::ChildWorkflowExecutionTimedOutEventAttributes {
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                retry_state: a.retry_state,
                ..Default::default()
            })
        }
        A::WorkflowExecutionTerminatedEventAttributes(_) => A::ChildWorkflowExecutionTerminatedEventAttributes(
            history::ChildWorkflowExecutionTerminatedEventAttributes {
                namespace,
                workflow_execution,
                workflow_type,
                initiated_event_id,
                started_event_id,
                ..Default::default()
            },
        ),
        _ => return None,
    };
    debug_assert!(close_event.event_type != EventType::WorkflowExecutionContinuedAsNew as i32);
    Some(event)
}

impl Child {
    /// The pending child a `StartChildWorkflowExecutionInitiated` event stands for (starting
    /// it, and replaying its history, both build it here).
    pub(crate) fn initiated(
        initiated_event_id: i64,
        a: &history::StartChildWorkflowExecutionInitiatedEventAttributes,
    ) -> Child {
        Child {
            initiated_event_id,
            workflow_id: a.workflow_id.clone(),
            workflow_type: a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
            run_id: String::new(),
            started_event_id: 0,
            parent_close_policy: a.parent_close_policy.into(),
            initiated: Some(Encoded::of(a)),
            command: None,
        }
    }

    /// Its initiated event's attributes (for state written before they were kept, rebuilt
    /// from the command the way the command first became the event).
    pub fn initiated_event(&self) -> history::StartChildWorkflowExecutionInitiatedEventAttributes {
        match (&self.initiated, &self.command) {
            (Some(event), _) => event.decode(),
            (None, Some(command)) => initiated_event(&command.decode(), 0),
            (None, None) => Default::default(),
        }
    }
}

/// The initiated event a `StartChildWorkflowExecution` command (defaults filled in) becomes.
fn initiated_event(
    a: &StartChildWorkflowExecutionCommandAttributes,
    completed_id: i64,
) -> history::StartChildWorkflowExecutionInitiatedEventAttributes {
    history::StartChildWorkflowExecutionInitiatedEventAttributes {
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
        workflow_task_completed_event_id: completed_id,
        workflow_id_reuse_policy: a.workflow_id_reuse_policy,
        retry_policy: a.retry_policy.clone(),
        cron_schedule: a.cron_schedule.clone(),
        header: a.header.clone(),
        memo: a.memo.clone(),
        search_attributes: a.search_attributes.clone(),
        priority: a.priority.clone(),
        ..Default::default()
    }
}

/// The start request for a child, from its parent's record of it and the parent's root
/// (`MutableState::root_execution`). The request id is derived from the parent's run and
/// event, so starting it again (after a restart) finds the same run.
pub fn child_start_request(
    parent: &RunKey,
    root: (String, String),
    child: &Child,
) -> (StartWorkflow, super::start::IdReusePolicy) {
    let a = child.initiated_event();
    let execution_timeout_ms = proto::duration_ms(a.workflow_execution_timeout.as_ref());
    let mut run_timeout_ms = proto::duration_ms(a.workflow_run_timeout.as_ref());
    if execution_timeout_ms > 0 && (run_timeout_ms == 0 || run_timeout_ms > execution_timeout_ms) {
        run_timeout_ms = execution_timeout_ms;
    }
    let start = StartWorkflow {
        key: RunKey::new(a.namespace.clone(), a.workflow_id.clone(), String::new()),
        workflow_type: child.workflow_type.clone(),
        task_queue: a.task_queue.map(|q| q.name).unwrap_or_default(),
        input: a.input,
        execution_timeout_ms,
        run_timeout_ms,
        task_timeout_ms: proto::duration_ms(a.workflow_task_timeout.as_ref()).max(1),
        identity: String::new(),
        request_id: format!("{}:{}", parent.run_id, child.initiated_event_id),
        retry_policy: a.retry_policy,
        memo: a.memo,
        search_attributes: a.search_attributes,
        header: a.header,
        priority: a.priority,
        cron_schedule: a.cron_schedule,
        parent: Some(ParentInfo {
            namespace: parent.namespace.to_string(),
            workflow_id: parent.workflow_id.to_string(),
            run_id: parent.run_id.to_string(),
            initiated_event_id: child.initiated_event_id,
            close_policy: child.parent_close_policy,
            root_workflow_id: root.0,
            root_run_id: root.1,
        }),
        ..Default::default()
    };
    let reuse = WorkflowIdReusePolicy::try_from(a.workflow_id_reuse_policy).unwrap_or_default();
    (start, reuse.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_kept_by_an_older_version_as_its_command_still_starts_the_same_way() {
        let command = StartChildWorkflowExecutionCommandAttributes {
            namespace: "other".into(),
            workflow_id: "child".into(),
            workflow_type: Some(WorkflowType { name: "Child".into() }),
            task_queue: Some(normal_queue("tq")),
            workflow_task_timeout: Some(proto::duration(10_000)),
            cron_schedule: "@every 1m".into(),
            ..Default::default()
        };
        // The JSON an older version wrote: the command's bytes, no initiated event.
        let legacy = serde_json::json!({
            "initiated_event_id": 5,
            "workflow_id": "child",
            "workflow_type": "Child",
            "run_id": "",
            "started_event_id": 0,
            "parent_close_policy": 1,
            "command": Encoded::of(&command),
        });
        let legacy: Child = serde_json::from_value(legacy).unwrap();
        let current = Child::initiated(5, &initiated_event(&command, 4));
        let parent = RunKey { namespace: "default".into(), workflow_id: "parent".into(), run_id: "p".into() };
        let (from_legacy, _) = child_start_request(&parent, Default::default(), &legacy);
        let (from_current, _) = child_start_request(&parent, Default::default(), &current);
        assert_eq!(from_legacy.key, from_current.key);
        assert_eq!(from_legacy.key.namespace, "other");
        assert_eq!(
            (from_legacy.task_queue, from_legacy.cron_schedule, from_legacy.request_id),
            (from_current.task_queue, from_current.cron_schedule, from_current.request_id)
        );
        // New state keeps the event and no command.
        let json = serde_json::to_value(&current).unwrap();
        assert!(json.get("command").is_none() && json.get("initiated").is_some());
    }
}
