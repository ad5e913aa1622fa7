//! Nexus tasks for handler workers: `PollNexusTaskQueue` (an operation's start or cancellation
//! as a Nexus request), and `RespondNexusTaskCompleted` / `RespondNexusTaskFailed` turned into
//! the operation's outcome — from Temporal failures (SDKs that announce
//! `temporal_failure_responses`) or from Nexus failures (older SDKs), as Temporal reads both.

use std::collections::HashMap;

use prost::Message;
use temporalio_protos::temporal::api::enums::v1::NexusHandlerErrorRetryBehavior;
use temporalio_protos::temporal::api::failure::v1::{failure::FailureInfo, ApplicationFailureInfo, Failure};
use temporalio_protos::temporal::api::nexus::v1 as nexus;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::Frontend;
use crate::clock::proto;
use crate::engine::nexus::{
    handler_failure, CallbackToken, NexusOutcome, NexusTaskStart, CALLBACK_TOKEN_HEADER, SYSTEM_CALLBACK_URL,
};
use crate::engine::request::Request as Change;
use crate::error::{Error, Result};
use crate::history::Polled;
use crate::matching::TaskKind;
use crate::token::TaskToken;

/// Handler error types a caller retries (Nexus RPC's list); the others fail the operation.
fn retryable_type(error_type: &str) -> bool {
    matches!(error_type, "RESOURCE_EXHAUSTED" | "INTERNAL" | "UNAVAILABLE" | "UPSTREAM_TIMEOUT" | "UNKNOWN" | "")
}

const TEMPORAL_FAILURE_TYPE: &str = "temporal.api.failure.v1.Failure";

/// A Nexus failure as a Temporal one: the Temporal failure it carries (older SDKs send it as
/// JSON with this metadata type), else an application failure with its message.
fn from_nexus_failure(f: &nexus::Failure) -> Failure {
    if f.metadata.get("type").map(String::as_str) == Some(TEMPORAL_FAILURE_TYPE) {
        if let Some(failure) = temporal_failure_from_json(&f.details) {
            return Failure {
                message: if failure.message.is_empty() { f.message.clone() } else { failure.message.clone() },
                ..failure
            };
        }
    }
    Failure {
        message: f.message.clone(),
        stack_trace: f.stack_trace.clone(),
        cause: f.cause.as_deref().map(|c| Box::new(from_nexus_failure(c))),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: "NexusFailure".into(),
            non_retryable: true,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn temporal_failure_from_json(details: &[u8]) -> Option<Failure> {
    let json: serde_json::Value = serde_json::from_slice(details).ok()?;
    let descriptor = crate::http::descriptors::POOL.get_message_by_name(TEMPORAL_FAILURE_TYPE)?;
    let message = crate::http::json::json_to_message(json, &descriptor, false).ok()?;
    Failure::decode(message.encode_to_vec().as_slice()).ok()
}

/// Whether a failure says the operation was canceled (rather than failed).
fn is_canceled(f: &Failure) -> bool {
    matches!(f.failure_info, Some(FailureInfo::CanceledFailureInfo(_)))
}

/// What a handler's successful answer means for the operation (or its cancellation).
fn completed_outcome(response: Option<nexus::Response>, cancel: bool) -> Result<NexusOutcome> {
    use nexus::response::Variant as R;
    use nexus::start_operation_response::Variant as S;
    let missing = || Error::invalid("Response is not set on request.");
    match response.and_then(|r| r.variant).ok_or_else(missing)? {
        R::CancelOperation(_) if cancel => Ok(NexusOutcome::CancelAccepted),
        R::StartOperation(start) if !cancel => match start.variant.ok_or_else(missing)? {
            S::SyncSuccess(sync) => Ok(NexusOutcome::Completed { result: sync.payload }),
            #[allow(deprecated)]
            S::AsyncSuccess(started) => {
                let token =
                    if started.operation_token.is_empty() { started.operation_id } else { started.operation_token };
                Ok(NexusOutcome::Started { operation_token: token })
            }
            #[allow(deprecated)]
            S::OperationError(error) => {
                let failure = error.failure.as_ref().map(from_nexus_failure).unwrap_or_default();
                Ok(match error.operation_state.as_str() {
                    "canceled" => NexusOutcome::Canceled { failure },
                    _ => NexusOutcome::Failed { failure },
                })
            }
            S::Failure(failure) if is_canceled(&failure) => Ok(NexusOutcome::Canceled { failure }),
            S::Failure(failure) => Ok(NexusOutcome::Failed { failure }),
        },
        _ => Err(Error::invalid("The response does not answer the task's request.")),
    }
}

/// What a handler error means: retried or final, with its failure as the workflow sees it.
#[allow(deprecated)]
fn failed_outcome(r: &ws::RespondNexusTaskFailedRequest) -> Result<NexusOutcome> {
    let (failure, error_type, behavior) = match (&r.failure, &r.error) {
        (Some(failure), _) => {
            let (error_type, behavior) = match &failure.failure_info {
                Some(FailureInfo::NexusHandlerFailureInfo(info)) => (info.r#type.clone(), info.retry_behavior),
                _ => (String::new(), 0),
            };
            // Temporal keeps the handler error's cause as sent, not its source.
            (Failure { source: String::new(), ..failure.clone() }, error_type, behavior)
        }
        (None, Some(error)) => {
            let message = error.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
            let mut failure = handler_failure(&error.error_type, &message);
            if let Some(FailureInfo::NexusHandlerFailureInfo(info)) = failure.failure_info.as_mut() {
                info.retry_behavior = error.retry_behavior;
            }
            failure.cause =
                error.failure.as_ref().and_then(|f| f.cause.as_deref()).map(|c| Box::new(from_nexus_failure(c)));
            (failure, error.error_type.clone(), error.retry_behavior)
        }
        (None, None) => return Err(Error::invalid("Failure is not set on request.")),
    };
    let retryable = match NexusHandlerErrorRetryBehavior::try_from(behavior).unwrap_or_default() {
        NexusHandlerErrorRetryBehavior::Retryable => true,
        NexusHandlerErrorRetryBehavior::NonRetryable => false,
        NexusHandlerErrorRetryBehavior::Unspecified => retryable_type(&error_type),
    };
    Ok(NexusOutcome::HandlerError { failure, retryable })
}

/// The Nexus request a handler's worker is shown.
fn nexus_task(start: NexusTaskStart, target_namespace: &str, now_ms: i64) -> ws::PollNexusTaskQueueResponse {
    let (run, op, scheduled) = (&start.run.key, &start.operation, start.scheduled);
    let attempt = match (&op.cancel, start.cancel) {
        (Some(c), true) => c.attempt,
        _ => op.attempt,
    };
    let token = TaskToken::nexus(run, op.scheduled_event_id, attempt, start.cancel, target_namespace);
    let mut header: HashMap<String, String> = scheduled.nexus_header.into_iter().collect();
    header.insert("request-timeout".into(), format!("{}ms", (start.deadline_ms - now_ms).max(1)));
    if let Some(deadline) = op.deadline_ms() {
        header.insert("operation-timeout".into(), format!("{}ms", (deadline - now_ms).max(1)));
    }
    let variant = if start.cancel {
        #[allow(deprecated)]
        nexus::request::Variant::CancelOperation(nexus::CancelOperationRequest {
            service: op.service.clone(),
            operation: op.operation.clone(),
            operation_id: op.operation_token.clone().unwrap_or_default(),
            operation_token: op.operation_token.clone().unwrap_or_default(),
        })
    } else {
        let callback = CallbackToken {
            namespace: run.namespace.to_string(),
            workflow_id: run.workflow_id.to_string(),
            run_id: run.run_id.to_string(),
            scheduled_event_id: op.scheduled_event_id,
            request_id: op.request_id.clone(),
        };
        nexus::request::Variant::StartOperation(nexus::StartOperationRequest {
            service: op.service.clone(),
            operation: op.operation.clone(),
            request_id: op.request_id.clone(),
            callback: SYSTEM_CALLBACK_URL.into(),
            payload: scheduled.input,
            callback_header: [(CALLBACK_TOKEN_HEADER.to_string(), callback.encode())].into(),
            links: Vec::new(),
        })
    };
    ws::PollNexusTaskQueueResponse {
        task_token: token.to_bytes(),
        request: Some(nexus::Request {
            header,
            scheduled_time: Some(proto::timestamp(op.scheduled_time_ms)),
            capabilities: Some(nexus::request::Capabilities { temporal_failure_responses: true }),
            variant: Some(variant),
            endpoint: op.endpoint.clone(),
        }),
        ..Default::default()
    }
}

impl Frontend {
    pub async fn poll_nexus_task_queue(
        &self,
        r: Request<ws::PollNexusTaskQueueRequest>,
    ) -> Result<ws::PollNexusTaskQueueResponse> {
        let budget = super::convert::poll_budget(r.metadata());
        let r = r.into_inner();
        let mut poll = self.poll_of(r.namespace, r.task_queue, TaskKind::Nexus, r.identity, r.worker_instance_key)?;
        poll.timeout = budget;
        self.versioned_poll(&mut poll, r.deployment_options.as_ref()).await?;
        Ok(match self.svc.poll_task(&poll).await? {
            Some(Polled::Nexus(start)) => nexus_task(*start, &poll.namespace, self.svc.now_ms()),
            Some(_) => return Err(Error::Internal("another kind of task on a Nexus task queue".into())),
            None => Default::default(),
        })
    }

    async fn on_nexus_answer(
        &self,
        token: &[u8],
        namespace: &str,
        outcome: impl FnOnce(bool) -> Result<NexusOutcome>,
    ) -> Result<()> {
        let token = TaskToken::parse_nexus(token, namespace)?;
        self.svc.namespaces.get(&token.target_namespace)?;
        let outcome = outcome(token.cancel)?;
        let change = Change::NexusAnswered {
            scheduled_event_id: token.scheduled_event_id,
            attempt: token.attempt,
            cancel: token.cancel,
            outcome,
        };
        self.svc.execute_done(&token.run(), change).await
    }

    pub async fn respond_nexus_task_completed(
        &self,
        r: Request<ws::RespondNexusTaskCompletedRequest>,
    ) -> Result<ws::RespondNexusTaskCompletedResponse> {
        let r = r.into_inner();
        self.checks().blob(r.response.as_ref().map_or(0, |m| m.encoded_len()))?;
        let response = r.response;
        self.on_nexus_answer(&r.task_token, &r.namespace, |cancel| completed_outcome(response, cancel)).await?;
        Ok(Default::default())
    }

    pub async fn respond_nexus_task_failed(
        &self,
        r: Request<ws::RespondNexusTaskFailedRequest>,
    ) -> Result<ws::RespondNexusTaskFailedResponse> {
        let r = r.into_inner();
        self.checks().blob(r.encoded_len())?;
        let outcome = failed_outcome(&r)?;
        self.on_nexus_answer(&r.task_token, &r.namespace, |_| Ok(outcome)).await?;
        Ok(Default::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_error_is_retried_by_its_type_unless_it_says_otherwise() {
        #[allow(deprecated)]
        let request = |error_type: &str, behavior: NexusHandlerErrorRetryBehavior| ws::RespondNexusTaskFailedRequest {
            error: Some(nexus::HandlerError {
                error_type: error_type.into(),
                failure: Some(nexus::Failure { message: "boom".into(), ..Default::default() }),
                retry_behavior: behavior as i32,
            }),
            ..Default::default()
        };
        let retryable = |r| match failed_outcome(&r).unwrap() {
            NexusOutcome::HandlerError { failure, retryable } => {
                assert_eq!(failure.message, "boom");
                retryable
            }
            other => panic!("{other:?}"),
        };
        assert!(retryable(request("INTERNAL", NexusHandlerErrorRetryBehavior::Unspecified)));
        assert!(!retryable(request("BAD_REQUEST", NexusHandlerErrorRetryBehavior::Unspecified)));
        assert!(!retryable(request("INTERNAL", NexusHandlerErrorRetryBehavior::NonRetryable)));
        assert!(retryable(request("NOT_FOUND", NexusHandlerErrorRetryBehavior::Retryable)));
        assert!(failed_outcome(&ws::RespondNexusTaskFailedRequest::default()).is_err());
    }

    #[test]
    fn an_operation_error_of_an_older_sdk_reads_its_temporal_failure() {
        let details = br#"{"message":"inner","applicationFailureInfo":{"type":"MyError","nonRetryable":true}}"#;
        let failure = nexus::Failure {
            message: "inner".into(),
            metadata: [("type".to_string(), TEMPORAL_FAILURE_TYPE.to_string())].into(),
            details: details.to_vec(),
            ..Default::default()
        };
        let converted = from_nexus_failure(&failure);
        assert_eq!(converted.message, "inner");
        let Some(FailureInfo::ApplicationFailureInfo(info)) = converted.failure_info else { panic!("{converted:?}") };
        assert_eq!(info.r#type, "MyError");
        let plain = from_nexus_failure(&nexus::Failure { message: "plain".into(), ..Default::default() });
        assert_eq!(plain.message, "plain");
    }
}
