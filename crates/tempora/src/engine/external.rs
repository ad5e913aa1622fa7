//! What reaches a run from outside — signals and cancel requests — and the signals and cancel
//! requests a run sends to other runs (`SignalExternalWorkflowExecution`,
//! `RequestCancelExternalWorkflowExecution`), from command to outcome.

use temporalio_protos::temporal::api::command::v1 as command;
use temporalio_protos::temporal::api::common::v1::{Header, Payloads, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::{
    CancelExternalWorkflowExecutionFailedCause, SignalExternalWorkflowExecutionFailedCause,
};
use temporalio_protos::temporal::api::history::v1 as history;

use super::state::{Encoded, ExternalRequest, ExternalSignal};
use super::{Effect, Tx};
use crate::error::{Error, Result};

/// A signal for this run.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    pub name: String,
    pub input: Option<Payloads>,
    pub identity: String,
    pub header: Option<Header>,
    /// Empty: no deduplication.
    pub request_id: String,
    /// The run that sent it, for a signal from another workflow.
    pub external: Option<WorkflowExecution>,
}

impl Signal {
    pub fn event(&self) -> history::WorkflowExecutionSignaledEventAttributes {
        history::WorkflowExecutionSignaledEventAttributes {
            signal_name: self.name.clone(),
            input: self.input.clone(),
            identity: self.identity.clone(),
            header: self.header.clone(),
            external_workflow_execution: self.external.clone(),
            ..Default::default()
        }
    }
}

/// A cancel request for this run.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CancelRequest {
    pub reason: String,
    pub identity: String,
    /// Set when another run asked: (its initiated event id, the run).
    pub external: Option<(i64, WorkflowExecution)>,
}

impl ExternalRequest {
    /// The pending signal an initiated event stands for (also when state is rebuilt from history).
    pub(crate) fn signal(
        initiated_event_id: i64,
        a: &history::SignalExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> Self {
        let target = a.workflow_execution.clone().unwrap_or_default();
        ExternalRequest {
            initiated_event_id,
            namespace: a.namespace.clone(),
            workflow_id: target.workflow_id,
            run_id: target.run_id,
            child_workflow_only: a.child_workflow_only,
            control: a.control.clone(),
            signal: Some(ExternalSignal {
                signal_name: a.signal_name.clone(),
                input: a.input.as_ref().map(Encoded::of),
                header: a.header.as_ref().map(Encoded::of),
            }),
            reason: String::new(),
        }
    }

    /// The pending cancel request an initiated event stands for.
    pub(crate) fn cancel(
        initiated_event_id: i64,
        a: &history::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> Self {
        let target = a.workflow_execution.clone().unwrap_or_default();
        ExternalRequest {
            initiated_event_id,
            namespace: a.namespace.clone(),
            workflow_id: target.workflow_id,
            run_id: target.run_id,
            child_workflow_only: a.child_workflow_only,
            control: a.control.clone(),
            signal: None,
            reason: a.reason.clone(),
        }
    }
}

impl Tx<'_> {
    /// `SignalWorkflowExecution`. False if the signal was already applied (same request id).
    pub fn signal(&mut self, signal: &Signal) -> Result<bool> {
        if !self.state.is_open() {
            return Err(Error::not_found("workflow execution already completed"));
        }
        if !signal.request_id.is_empty() && !self.state.signal_request_ids.insert(signal.request_id.clone()) {
            return Ok(false);
        }
        self.add_external(signal.event());
        Ok(true)
    }

    /// A signal or cancel request that another run (`sender`) initiated with event
    /// `initiated_event_id` arrives. A request meant for a child only is refused (NOT_FOUND)
    /// unless the sender is this run's parent. False if it was already applied.
    pub fn receive_external(
        &mut self,
        sender: WorkflowExecution,
        initiated_event_id: i64,
        request: &ExternalRequest,
    ) -> Result<bool> {
        let from_parent = self.state.parent.as_ref().is_some_and(|p| p.run_id == sender.run_id);
        if request.child_workflow_only && !from_parent {
            return Err(Error::not_found("the target is not a child of the sender"));
        }
        match &request.signal {
            Some(s) => self.signal(&Signal {
                name: s.signal_name.clone(),
                input: s.input.as_ref().map(|p| p.decode()),
                header: s.header.as_ref().map(|h| h.decode()),
                identity: String::new(),
                request_id: format!("{}:{initiated_event_id}", sender.run_id),
                external: Some(sender),
            }),
            None => self.request_cancel(&CancelRequest {
                reason: request.reason.clone(),
                identity: String::new(),
                external: Some((initiated_event_id, sender)),
            }),
        }
    }

    /// `RequestCancelWorkflowExecution`. False if a cancel was already requested or the run
    /// has closed: Temporal treats both as success (also for another run's cancel request).
    pub fn request_cancel(&mut self, req: &CancelRequest) -> Result<bool> {
        if !self.state.is_open() || self.state.cancel_requested {
            return Ok(false);
        }
        self.state.cancel_requested = true;
        let (external_initiated_event_id, external_workflow_execution) = match &req.external {
            Some((id, execution)) => (*id, Some(execution.clone())),
            None => (0, None),
        };
        self.add_external(history::WorkflowExecutionCancelRequestedEventAttributes {
            cause: req.reason.clone(),
            external_initiated_event_id,
            external_workflow_execution,
            identity: req.identity.clone(),
        });
        Ok(true)
    }

    /// The `SignalExternalWorkflowExecution` command.
    pub(crate) fn signal_external(
        &mut self,
        a: &command::SignalExternalWorkflowExecutionCommandAttributes,
        completed_id: i64,
    ) -> std::result::Result<(), String> {
        let target = a.execution.clone().unwrap_or_default();
        if target.workflow_id.is_empty() {
            return Err("WorkflowId is not set on SignalExternalWorkflowExecutionCommand.".into());
        }
        if a.signal_name.is_empty() {
            return Err("SignalName is not set on SignalExternalWorkflowExecutionCommand.".into());
        }
        let initiated = history::SignalExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: completed_id,
            namespace: self.target_namespace(&a.namespace),
            workflow_execution: Some(target),
            signal_name: a.signal_name.clone(),
            input: a.input.clone(),
            control: a.control.clone(),
            child_workflow_only: a.child_workflow_only,
            header: a.header.clone(),
            ..Default::default()
        };
        // Appending the event tracks the request in state (`replay::apply`).
        let initiated_event_id = self.append(initiated);
        self.effects.push(Effect::DeliverExternal { initiated_event_id });
        Ok(())
    }

    /// The `RequestCancelExternalWorkflowExecution` command.
    pub(crate) fn request_cancel_external(
        &mut self,
        a: &command::RequestCancelExternalWorkflowExecutionCommandAttributes,
        completed_id: i64,
    ) -> std::result::Result<(), String> {
        if a.workflow_id.is_empty() {
            return Err("WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand.".into());
        }
        let initiated = history::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes {
            workflow_task_completed_event_id: completed_id,
            namespace: self.target_namespace(&a.namespace),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: a.workflow_id.clone(),
                run_id: a.run_id.clone(),
            }),
            control: a.control.clone(),
            child_workflow_only: a.child_workflow_only,
            reason: a.reason.clone(),
            ..Default::default()
        };
        // Appending the event tracks the request in state (`replay::apply`).
        let initiated_event_id = self.append(initiated);
        self.effects.push(Effect::DeliverExternal { initiated_event_id });
        Ok(())
    }

    pub(crate) fn pending_external(&self, signals: bool) -> usize {
        self.state.external.values().filter(|r| r.signal.is_some() == signals).count()
    }

    fn target_namespace(&self, namespace: &str) -> String {
        if namespace.is_empty() {
            self.state.key.namespace.to_string()
        } else {
            namespace.to_string()
        }
    }

    /// The target of an external signal or cancel request got it (`found`) or does not exist.
    pub fn external_delivered(&mut self, initiated_event_id: i64, found: bool) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(request) = self.state.external.remove(&initiated_event_id) else { return false };
        let namespace = request.namespace.clone();
        let execution = Some(WorkflowExecution { workflow_id: request.workflow_id.clone(), run_id: request.run_id });
        let control = request.control.clone();
        match (request.signal.is_some(), found) {
            (true, true) => self.add_external(history::ExternalWorkflowExecutionSignaledEventAttributes {
                initiated_event_id,
                namespace,
                workflow_execution: execution,
                control,
                ..Default::default()
            }),
            (true, false) => self.add_external(history::SignalExternalWorkflowExecutionFailedEventAttributes {
                cause: SignalExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound as i32,
                namespace,
                workflow_execution: execution,
                initiated_event_id,
                control,
                ..Default::default()
            }),
            (false, true) => self.add_external(history::ExternalWorkflowExecutionCancelRequestedEventAttributes {
                initiated_event_id,
                namespace,
                workflow_execution: execution,
                ..Default::default()
            }),
            (false, false) => self.add_external(history::RequestCancelExternalWorkflowExecutionFailedEventAttributes {
                cause: CancelExternalWorkflowExecutionFailedCause::ExternalWorkflowExecutionNotFound as i32,
                namespace,
                workflow_execution: execution,
                initiated_event_id,
                control,
                ..Default::default()
            }),
        }
        true
    }
}
