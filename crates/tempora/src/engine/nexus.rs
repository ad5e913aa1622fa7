//! Nexus operations from the caller's side: scheduling (a workflow command), handing attempts
//! to the handler's worker, its answers, retries, the schedule-to-close timeout, cancellation,
//! and the completion of an operation the handler started asynchronously (its callback).
//!
//! Lifecycle of one operation (by its `NexusOperationScheduled` id):
//! `Scheduled → (Completed | Failed | Canceled | TimedOut)` for an operation the handler
//! answers at once, or `Scheduled → Started → (Completed | Failed | Canceled | TimedOut)` when
//! the handler starts it asynchronously and its callback closes it. An attempt that fails with
//! a retryable handler error (or is not answered in time) goes `→ BackingOff → Scheduled` with
//! `attempt + 1` and no event. A cancellation of a started operation is delivered to the
//! handler the same way, one attempt at a time.
//!
//! The endpoint is resolved by the caller of the engine: a completion carries the ids of the
//! endpoints its commands name (`CompleteWorkflowTask::nexus_endpoints`), and dispatching an
//! attempt resolves the endpoint id to its target (`Effect::DispatchNexusTask`).

use std::collections::BTreeMap;

use temporalio_protos::temporal::api::command::v1::ScheduleNexusOperationCommandAttributes;
use temporalio_protos::temporal::api::common::v1::Payload;
use temporalio_protos::temporal::api::enums::v1::{TimeoutType, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::{
    failure, CanceledFailureInfo, Failure, NexusOperationFailureInfo, TimeoutFailureInfo,
};
use temporalio_protos::temporal::api::history::v1 as history;
use temporalio_protos::temporal::api::history::v1::history_event::Attributes;

use super::state::{Encoded, NexusCancel, NexusOperation, RetryPolicy};
use super::{Effect, Timer, Tx};
use crate::clock::{proto, Millis};
use crate::error::{Error, Result};

/// How long a handler has to answer one attempt (Temporal's `request.timeout` default).
pub const REQUEST_TIMEOUT_MS: Millis = 10_000;

/// The retry policy of attempts that fail with a retryable error (Temporal's defaults).
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        initial_interval_ms: 1_000,
        backoff_coefficient: 2.0,
        maximum_interval_ms: 60 * 60 * 1_000,
        maximum_attempts: 0,
        non_retryable_error_types: Vec::new(),
    }
}

/// The callback URL tempora gives handlers: a completion sent to it is delivered inside the
/// server (as Temporal's `temporal://system`).
pub const SYSTEM_CALLBACK_URL: &str = "temporal://system";
/// The callback header that names the operation a completion is for.
pub const CALLBACK_TOKEN_HEADER: &str = "temporal-callback-token";

/// What a callback token names: the caller's run and operation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallbackToken {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub scheduled_event_id: i64,
    pub request_id: String,
}

impl CallbackToken {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a callback token serialises")
    }
    pub fn decode(s: &str) -> Option<CallbackToken> {
        serde_json::from_str(s).ok()
    }
}

/// How a handler (or the server on its behalf) answered an attempt, or how a started
/// operation ended.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum NexusOutcome {
    /// The operation completed at once.
    Completed { result: Option<Payload> },
    /// The handler started it; a callback will close it.
    Started { operation_token: String },
    /// The operation failed (`failure` is the cause).
    Failed { failure: Failure },
    /// The operation was canceled (`failure` is the cause).
    Canceled { failure: Failure },
    /// The handler could not process the request: retried if `retryable`, else the operation
    /// fails with it. `failure` carries `NexusHandlerFailureInfo`.
    HandlerError { failure: Failure, retryable: bool },
    /// The handler accepted a cancellation.
    CancelAccepted,
}

impl NexusOperation {
    /// The pending operation a `NexusOperationScheduled` event stands for (scheduling it, and
    /// replaying its history, both build it here).
    pub(crate) fn scheduled(
        scheduled_event_id: i64,
        a: &history::NexusOperationScheduledEventAttributes,
        at_ms: Millis,
    ) -> NexusOperation {
        NexusOperation {
            scheduled_event_id,
            endpoint: a.endpoint.clone(),
            endpoint_id: a.endpoint_id.clone(),
            service: a.service.clone(),
            operation: a.operation.clone(),
            request_id: a.request_id.clone(),
            scheduled_time_ms: at_ms,
            schedule_to_close_ms: proto::duration_ms(a.schedule_to_close_timeout.as_ref()),
            attempt: 1,
            attempt_started_ms: 0,
            backoff_until_ms: 0,
            last_failure: None,
            last_attempt_complete_ms: 0,
            operation_token: None,
            cancel: None,
        }
    }

    /// When the attempt (of the start, or of the cancellation if `cancel`) was handed to a
    /// worker, if it is the one in flight.
    pub fn in_flight(&self, attempt: i32, cancel: bool) -> Option<Millis> {
        let (current, started_ms) = match (cancel, &self.cancel) {
            (false, _) if !self.is_started() => (self.attempt, self.attempt_started_ms),
            (true, Some(c)) if !c.done => (c.attempt, c.attempt_started_ms),
            _ => return None,
        };
        (current == attempt && started_ms > 0).then_some(started_ms)
    }

    /// `NexusOperationFailure` around `cause`, as the workflow sees a failed operation.
    pub fn failure(&self, cause: Failure) -> Failure {
        Failure {
            message: "nexus operation completed unsuccessfully".into(),
            cause: Some(Box::new(cause)),
            failure_info: Some(failure::FailureInfo::NexusOperationExecutionFailureInfo(NexusOperationFailureInfo {
                scheduled_event_id: self.scheduled_event_id,
                endpoint: self.endpoint.clone(),
                service: self.service.clone(),
                operation: self.operation.clone(),
                operation_token: self.operation_token.clone().unwrap_or_default(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }
}

/// The timers and dispatch an operation waits on, given its state.
pub fn operation_effects(op: &NexusOperation) -> Vec<Effect> {
    let mut effects = Vec::new();
    let id = op.scheduled_event_id;
    if let Some(at_ms) = op.deadline_ms() {
        effects.push(Effect::Timer { at_ms, timer: Timer::NexusTimeout { scheduled_event_id: id } });
    }
    let dispatch = |attempt, cancel| Effect::DispatchNexusTask {
        endpoint_id: op.endpoint_id.clone(),
        scheduled_event_id: id,
        attempt,
        cancel,
    };
    let attempt_effects = |attempt: i32, started_ms: Millis, backoff_ms: Millis, cancel: bool| match () {
        _ if backoff_ms > 0 => {
            Effect::Timer { at_ms: backoff_ms, timer: Timer::NexusRetry { scheduled_event_id: id, attempt, cancel } }
        }
        _ if started_ms > 0 => Effect::Timer {
            at_ms: started_ms + REQUEST_TIMEOUT_MS,
            timer: Timer::NexusAttemptTimeout { scheduled_event_id: id, attempt, cancel },
        },
        _ => dispatch(attempt, cancel),
    };
    if !op.is_started() {
        effects.push(attempt_effects(op.attempt, op.attempt_started_ms, op.backoff_until_ms, false));
    } else if let Some(c) = op.cancel.as_ref().filter(|c| !c.done) {
        effects.push(attempt_effects(c.attempt, c.attempt_started_ms, c.backoff_until_ms, true));
    }
    effects
}

/// A handler error the server raises itself (the endpoint is gone, an attempt timed out).
pub fn handler_failure(error_type: &str, message: &str) -> Failure {
    Failure {
        message: message.to_string(),
        failure_info: Some(failure::FailureInfo::NexusHandlerFailureInfo(
            temporalio_protos::temporal::api::failure::v1::NexusHandlerFailureInfo {
                r#type: error_type.to_string(),
                retry_behavior: 0,
            },
        )),
        ..Default::default()
    }
}

fn canceled_failure(message: &str) -> Failure {
    Failure {
        message: message.to_string(),
        failure_info: Some(failure::FailureInfo::CanceledFailureInfo(CanceledFailureInfo::default())),
        ..Default::default()
    }
}

/// What a started Nexus attempt shows its handler.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NexusTaskStart {
    pub run: super::request::RunInfo,
    pub operation: NexusOperation,
    /// The operation's `NexusOperationScheduled` event (input, header).
    pub scheduled: history::NexusOperationScheduledEventAttributes,
    /// A cancellation's attempt, not the start's.
    pub cancel: bool,
    /// When the attempt must be answered.
    pub deadline_ms: Millis,
}

impl Tx<'_> {
    /// `ScheduleNexusOperation`. `endpoints`: the ids of the endpoints the completion's
    /// commands name (an unknown name is missing).
    pub(crate) fn schedule_nexus_operation(
        &mut self,
        a: &ScheduleNexusOperationCommandAttributes,
        completed_id: i64,
        endpoints: &BTreeMap<String, String>,
    ) -> std::result::Result<(), (WorkflowTaskFailedCause, String)> {
        let bad = |m: String| (WorkflowTaskFailedCause::BadScheduleNexusOperationAttributes, m);
        if a.endpoint.is_empty() {
            return Err(bad("Endpoint is not set on ScheduleNexusOperationCommand.".into()));
        }
        if a.service.is_empty() {
            return Err(bad("Service is not set on ScheduleNexusOperationCommand.".into()));
        }
        if a.operation.is_empty() {
            return Err(bad("Operation is not set on ScheduleNexusOperationCommand.".into()));
        }
        let Some(endpoint_id) = endpoints.get(&a.endpoint) else {
            return Err(bad(format!("endpoint {:?} not found", a.endpoint)));
        };
        let mut s2c = proto::duration_ms(a.schedule_to_close_timeout.as_ref());
        if s2c < 0 {
            return Err(bad("ScheduleToCloseTimeout may not be negative.".into()));
        }
        let run_left = self.state.run_deadline_ms().map(|d| (d - self.now).max(1));
        if let Some(left) = run_left {
            if s2c == 0 || s2c > left {
                s2c = left;
            }
        }
        let next_id = self.state.next_event_id;
        let scheduled = history::NexusOperationScheduledEventAttributes {
            endpoint: a.endpoint.clone(),
            service: a.service.clone(),
            operation: a.operation.clone(),
            input: a.input.clone(),
            schedule_to_close_timeout: (s2c > 0).then(|| proto::duration(s2c)),
            nexus_header: a.nexus_header.clone(),
            workflow_task_completed_event_id: completed_id,
            // Deterministic and unique: the run and the event.
            request_id: format!("{}-{next_id}", self.state.key.run_id),
            endpoint_id: endpoint_id.clone(),
            schedule_to_start_timeout: a.schedule_to_start_timeout,
            start_to_close_timeout: a.start_to_close_timeout,
        };
        // Appending the event puts the operation in state (`replay::apply`).
        let id = self.append(scheduled);
        let effects = self.state.nexus_operations.get(&id).map(operation_effects).unwrap_or_default();
        self.effects.extend(effects);
        Ok(())
    }

    /// `RequestCancelNexusOperation`; true if the operation was canceled at once (it had not
    /// started), which needs a new workflow task.
    pub(crate) fn request_cancel_nexus_operation(
        &mut self,
        scheduled_event_id: i64,
        completed_id: i64,
    ) -> std::result::Result<bool, String> {
        let Some(op) = self.state.nexus_operations.get(&scheduled_event_id).cloned() else {
            return Err(format!(
                "RequestCancelNexusOperation names operation {scheduled_event_id}, which is not pending."
            ));
        };
        if op.cancel.is_some() {
            return Err(format!("cancellation of Nexus operation {scheduled_event_id} was already requested"));
        }
        self.append(history::NexusOperationCancelRequestedEventAttributes {
            scheduled_event_id,
            workflow_task_completed_event_id: completed_id,
        });
        if !op.is_started() {
            self.state.nexus_operations.remove(&scheduled_event_id);
            self.append(history::NexusOperationCanceledEventAttributes {
                scheduled_event_id,
                failure: Some(op.failure(canceled_failure("operation canceled before it was started"))),
                request_id: op.request_id.clone(),
            });
            return Ok(true);
        }
        self.arm_next_attempt(scheduled_event_id);
        Ok(false)
    }

    /// The dispatch (or timer) of an operation's next attempt; its deadline is armed already.
    fn arm_next_attempt(&mut self, id: i64) {
        let effects = self.state.nexus_operations.get(&id).map(operation_effects).unwrap_or_default();
        let not_deadline = |e: &Effect| !matches!(e, Effect::Timer { timer: Timer::NexusTimeout { .. }, .. });
        self.effects.extend(effects.into_iter().filter(not_deadline));
    }

    /// A handler's worker polled this attempt. `None` if it is no longer pending (a stale
    /// queued task).
    pub fn start_nexus_task(&mut self, scheduled_event_id: i64, attempt: i32, cancel: bool) -> Option<NexusTaskStart> {
        if !self.state.is_open() {
            return None;
        }
        let now = self.now;
        let op = self.state.nexus_operations.get_mut(&scheduled_event_id)?;
        if op.deadline_ms().is_some_and(|d| now >= d) {
            return None; // its timeout is about to fire
        }
        let (is_started, current) = (op.is_started(), op.attempt);
        let started_ms = match (cancel, op.cancel.as_mut()) {
            (false, _) if is_started || current != attempt => return None,
            (false, _) => &mut op.attempt_started_ms,
            (true, Some(c)) if !c.done && c.attempt == attempt => &mut c.attempt_started_ms,
            (true, _) => return None,
        };
        if *started_ms > 0 {
            return None;
        }
        *started_ms = now;
        let left = op.deadline_ms().map_or(REQUEST_TIMEOUT_MS, |d| (d - now).min(REQUEST_TIMEOUT_MS));
        let op = op.clone();
        self.schedule_timer(
            now + REQUEST_TIMEOUT_MS,
            Timer::NexusAttemptTimeout { scheduled_event_id, attempt, cancel },
        );
        Some(NexusTaskStart {
            run: super::request::RunInfo::of(self.state),
            operation: op,
            scheduled: Default::default(),
            cancel,
            deadline_ms: now + left,
        })
    }

    /// A handler's answer to a started attempt. NOT_FOUND if that attempt is not the one in
    /// flight (it timed out, or the operation closed).
    pub fn nexus_answered(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
        outcome: NexusOutcome,
    ) -> Result<()> {
        let gone = || Error::not_found("nexus task not found or already expired");
        if !self.state.is_open() {
            return Err(Error::not_found("workflow execution already completed"));
        }
        let op = self.state.nexus_operations.get(&scheduled_event_id).ok_or_else(gone)?;
        if op.in_flight(attempt, cancel).is_none() {
            return Err(gone());
        }
        if cancel {
            self.cancel_answered(scheduled_event_id, outcome);
        } else {
            self.operation_answered(scheduled_event_id, outcome);
        }
        Ok(())
    }

    /// The outcome of a start attempt (or of the operation).
    fn operation_answered(&mut self, id: i64, outcome: NexusOutcome) {
        let Some(op) = self.state.nexus_operations.get(&id).cloned() else { return };
        match outcome {
            NexusOutcome::Started { operation_token } => {
                if let Some(op) = self.state.nexus_operations.get_mut(&id) {
                    op.operation_token = Some(operation_token.clone());
                    op.attempt_started_ms = 0;
                    op.last_attempt_complete_ms = self.now;
                }
                self.add_external(history::NexusOperationStartedEventAttributes {
                    scheduled_event_id: id,
                    request_id: op.request_id.clone(),
                    operation_id: operation_token.clone(),
                    operation_token,
                });
                // A cancellation requested meanwhile goes to the handler now.
                self.arm_next_attempt(id);
            }
            NexusOutcome::HandlerError { failure, retryable: true } => self.nexus_retry(id, false, failure),
            outcome => self.close_operation(&op, outcome),
        }
    }

    /// Writes an operation's closing event and drops it from the pending ones.
    fn close_operation(&mut self, op: &NexusOperation, outcome: NexusOutcome) {
        let (id, request_id) = (op.scheduled_event_id, op.request_id.clone());
        self.state.nexus_operations.remove(&id);
        let event: Attributes = match outcome {
            NexusOutcome::Completed { result } => {
                history::NexusOperationCompletedEventAttributes { scheduled_event_id: id, result, request_id }.into()
            }
            NexusOutcome::Canceled { failure } => history::NexusOperationCanceledEventAttributes {
                scheduled_event_id: id,
                failure: Some(op.failure(failure)),
                request_id,
            }
            .into(),
            NexusOutcome::Failed { failure } | NexusOutcome::HandlerError { failure, .. } => {
                history::NexusOperationFailedEventAttributes {
                    scheduled_event_id: id,
                    failure: Some(op.failure(failure)),
                    request_id,
                }
                .into()
            }
            NexusOutcome::Started { .. } | NexusOutcome::CancelAccepted => return,
        };
        self.add_external(event);
    }

    /// A retryable failure of an attempt: the next one after a backoff.
    fn nexus_retry(&mut self, id: i64, cancel: bool, failure: Failure) {
        let now = self.now;
        let Some(op) = self.state.nexus_operations.get_mut(&id) else { return };
        let (attempt, started_ms, backoff_ms, last_failure) = match (cancel, op.cancel.as_mut()) {
            (false, _) => (&mut op.attempt, &mut op.attempt_started_ms, &mut op.backoff_until_ms, &mut op.last_failure),
            (true, Some(c)) => {
                (&mut c.attempt, &mut c.attempt_started_ms, &mut c.backoff_until_ms, &mut c.last_failure)
            }
            (true, None) => return,
        };
        *started_ms = 0;
        *backoff_ms = now + retry_policy().backoff_ms(*attempt).max(1);
        *last_failure = Some(Encoded::of(&failure));
        if !cancel {
            op.last_attempt_complete_ms = now;
        }
        let (at_ms, attempt) = (*backoff_ms, *attempt);
        self.schedule_timer(at_ms, Timer::NexusRetry { scheduled_event_id: id, attempt, cancel });
    }

    /// The handler's answer to a cancellation.
    fn cancel_answered(&mut self, id: i64, outcome: NexusOutcome) {
        match outcome {
            NexusOutcome::HandlerError { failure, retryable: true } => self.nexus_retry(id, true, failure),
            outcome => {
                // The handler accepted it (the operation's own completion follows) or refused
                // it for good; either is recorded, as in Temporal.
                let Some(c) = self.state.nexus_operations.get_mut(&id).and_then(|op| op.cancel.as_mut()) else {
                    return;
                };
                c.done = true;
                c.attempt_started_ms = 0;
                let requested_event_id = c.requested_event_id;
                let event: Attributes = match outcome {
                    NexusOutcome::HandlerError { failure, .. } | NexusOutcome::Failed { failure } => {
                        c.last_failure = Some(Encoded::of(&failure));
                        history::NexusOperationCancelRequestFailedEventAttributes {
                            requested_event_id,
                            failure: Some(failure),
                            scheduled_event_id: id,
                            ..Default::default()
                        }
                        .into()
                    }
                    _ => history::NexusOperationCancelRequestCompletedEventAttributes {
                        requested_event_id,
                        scheduled_event_id: id,
                        ..Default::default()
                    }
                    .into(),
                };
                self.add_external(event);
            }
        }
    }

    /// A due Nexus timer; false if stale.
    pub(crate) fn nexus_timer(&mut self, timer: &Timer) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let now = self.now;
        match *timer {
            Timer::NexusTimeout { scheduled_event_id } => {
                let Some(op) = self.state.nexus_operations.get(&scheduled_event_id).cloned() else { return false };
                if op.deadline_ms().is_none_or(|d| now < d) {
                    return false;
                }
                self.state.nexus_operations.remove(&scheduled_event_id);
                let cause = Failure {
                    message: "operation timed out".into(),
                    failure_info: Some(failure::FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
                        timeout_type: TimeoutType::ScheduleToClose as i32,
                        last_heartbeat_details: None,
                    })),
                    ..Default::default()
                };
                self.add_external(history::NexusOperationTimedOutEventAttributes {
                    scheduled_event_id,
                    failure: Some(op.failure(cause)),
                    request_id: op.request_id.clone(),
                });
                true
            }
            Timer::NexusAttemptTimeout { scheduled_event_id, attempt, cancel } => {
                let Some(op) = self.state.nexus_operations.get(&scheduled_event_id) else { return false };
                if op.in_flight(attempt, cancel).is_none_or(|started_ms| now < started_ms + REQUEST_TIMEOUT_MS) {
                    return false;
                }
                self.nexus_retry(scheduled_event_id, cancel, handler_failure("UPSTREAM_TIMEOUT", "upstream timeout"));
                true
            }
            Timer::NexusRetry { scheduled_event_id, attempt, cancel } => {
                let Some(op) = self.state.nexus_operations.get_mut(&scheduled_event_id) else { return false };
                let is_started = op.is_started();
                let (n, backoff_ms) = match (cancel, op.cancel.as_mut()) {
                    (false, _) if !is_started => (&mut op.attempt, &mut op.backoff_until_ms),
                    (true, Some(c)) if !c.done => (&mut c.attempt, &mut c.backoff_until_ms),
                    _ => return false,
                };
                if *n != attempt || *backoff_ms == 0 || now < *backoff_ms {
                    return false;
                }
                *n += 1;
                *backoff_ms = 0;
                let (endpoint_id, attempt) = (op.endpoint_id.clone(), *n);
                self.effects.push(Effect::DispatchNexusTask { endpoint_id, scheduled_event_id, attempt, cancel });
                true
            }
            _ => false,
        }
    }

    /// The server could not dispatch an attempt: the operation's endpoint is gone (or targets
    /// what tempora does not call). The operation fails, as in Temporal.
    pub(crate) fn nexus_endpoint_gone(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        cancel: bool,
        message: &str,
    ) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(op) = self.state.nexus_operations.get(&scheduled_event_id).cloned() else { return false };
        let failure = handler_failure("NOT_FOUND", message);
        match (cancel, &op.cancel) {
            (false, _) if !op.is_started() && op.attempt == attempt && op.attempt_started_ms == 0 => {
                self.close_operation(&op, NexusOutcome::Failed { failure });
                true
            }
            (true, Some(c)) if !c.done && c.attempt == attempt && c.attempt_started_ms == 0 => {
                self.cancel_answered(scheduled_event_id, NexusOutcome::Failed { failure });
                true
            }
            _ => false,
        }
    }

    /// A started operation's completion, from its handler's callback. False if it is not the
    /// pending operation the callback names (stale, or delivered before).
    pub(crate) fn nexus_completed(&mut self, scheduled_event_id: i64, request_id: &str, outcome: NexusOutcome) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(op) = self.state.nexus_operations.get(&scheduled_event_id).cloned() else { return false };
        if op.request_id != request_id {
            return false;
        }
        if !op.is_started() {
            // The handler's run closed before its worker's answer came back: started first.
            self.operation_answered(scheduled_event_id, NexusOutcome::Started { operation_token: String::new() });
        }
        let Some(op) = self.state.nexus_operations.get(&scheduled_event_id).cloned() else { return false };
        if matches!(outcome, NexusOutcome::Started { .. } | NexusOutcome::CancelAccepted) {
            return true;
        }
        self.close_operation(&op, outcome);
        true
    }
}

/// The cancellation state a `NexusOperationCancelRequested` event starts.
pub(crate) fn cancel_requested(requested_event_id: i64, at_ms: Millis) -> NexusCancel {
    NexusCancel {
        requested_event_id,
        requested_time_ms: at_ms,
        attempt: 1,
        attempt_started_ms: 0,
        backoff_until_ms: 0,
        last_failure: None,
        done: false,
    }
}
