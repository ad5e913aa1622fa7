//! The one place that maps `Error` to a gRPC status with Temporal's error details.
//!
//! SDKs decode `details[0]` of the `google.rpc.Status` without checking its type, so every
//! status carries at most one detail, the relevant one.

use prost::Message;
use temporalio_protos::google::rpc::Status as RpcStatus;
use temporalio_protos::temporal::api::errordetails::v1 as details;
use tonic::{Code, Status};

use crate::error::Error;

fn any<M: Message>(name: &str, msg: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/temporal.api.errordetails.v1.{name}"),
        value: msg.encode_to_vec(),
    }
}

fn with_detail(code: Code, message: String, detail: Option<prost_types::Any>) -> Status {
    let Some(detail) = detail else {
        return Status::new(code, message);
    };
    let rpc = RpcStatus { code: code as i32, message: message.clone(), details: vec![detail] };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

impl Error {
    /// The error a node's answer carried, for a call this node sent on its own behalf (a batch
    /// job's operation served by another node). Only what those callers tell apart is kept.
    pub(crate) fn from_status(status: &Status) -> Error {
        let message = status.message().to_string();
        match status.code() {
            Code::NotFound => Error::NotFound(message),
            Code::InvalidArgument => Error::InvalidArgument(message),
            Code::FailedPrecondition => Error::FailedPrecondition(message),
            Code::AlreadyExists => Error::AlreadyExists(message),
            Code::Unavailable => Error::Unavailable(message),
            _ => Error::Internal(message),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let message = e.to_string();
        match e {
            Error::NamespaceNotFound(namespace) => with_detail(
                Code::NotFound,
                message,
                Some(any("NamespaceNotFoundFailure", &details::NamespaceNotFoundFailure { namespace })),
            ),
            Error::NamespaceAlreadyExists(_) => with_detail(
                Code::AlreadyExists,
                message,
                Some(any("NamespaceAlreadyExistsFailure", &details::NamespaceAlreadyExistsFailure {})),
            ),
            Error::NotFound(_) => {
                with_detail(Code::NotFound, message, Some(any("NotFoundFailure", &details::NotFoundFailure::default())))
            }
            Error::AlreadyStarted { start_request_id, run_id, first_execution_run_id, .. } => with_detail(
                Code::AlreadyExists,
                message,
                Some(any(
                    "WorkflowExecutionAlreadyStartedFailure",
                    &details::WorkflowExecutionAlreadyStartedFailure {
                        start_request_id,
                        run_id,
                        first_execution_run_id,
                    },
                )),
            ),
            Error::InvalidArgument(_) | Error::UnhandledCommand => with_detail(Code::InvalidArgument, message, None),
            Error::FailedPrecondition(_) => with_detail(Code::FailedPrecondition, message, None),
            Error::AlreadyExists(_) => with_detail(Code::AlreadyExists, message, None),
            Error::PermissionDenied(_) => with_detail(
                Code::PermissionDenied,
                message,
                Some(any("PermissionDeniedFailure", &details::PermissionDeniedFailure::default())),
            ),
            Error::WorkflowNotReady(_) => with_detail(
                Code::FailedPrecondition,
                message,
                Some(any("WorkflowNotReadyFailure", &details::WorkflowNotReadyFailure {})),
            ),
            Error::ResourceExhausted(_) => with_detail(
                Code::ResourceExhausted,
                message,
                Some(any("ResourceExhaustedFailure", &details::ResourceExhaustedFailure::default())),
            ),
            Error::Throttled { concurrent, .. } => {
                use temporalio_protos::temporal::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
                let cause = match concurrent {
                    true => ResourceExhaustedCause::ConcurrentLimit,
                    false => ResourceExhaustedCause::RpsLimit,
                };
                let detail = details::ResourceExhaustedFailure {
                    cause: cause as i32,
                    scope: ResourceExhaustedScope::Namespace as i32,
                };
                with_detail(Code::ResourceExhausted, message, Some(any("ResourceExhaustedFailure", &detail)))
            }
            Error::Unauthenticated(_) => with_detail(Code::Unauthenticated, message, None),
            Error::Unavailable(_) => with_detail(Code::Unavailable, message, None),
            Error::Unimplemented(_) => with_detail(Code::Unimplemented, message, None),
            Error::Internal(_) => with_detail(Code::Internal, message, None),
            Error::QueryFailed { failure, .. } => with_detail(
                Code::InvalidArgument,
                message,
                Some(any("QueryFailedFailure", &details::QueryFailedFailure { failure: failure.map(|f| *f) })),
            ),
            Error::DeadlineExceeded(_) => with_detail(Code::DeadlineExceeded, message, None),
            Error::MultiOperation { failed, operations, error } => {
                use details::multi_operation_execution_failure::OperationStatus;
                let inner = Status::from(*error);
                let inner_details = RpcStatus::decode(inner.details()).map(|s| s.details).unwrap_or_default();
                let aborted = prost_types::Any {
                    type_url: "type.googleapis.com/temporal.api.failure.v1.MultiOperationExecutionAborted".into(),
                    value: Vec::new(),
                };
                let statuses = (0..operations)
                    .map(|i| match i == failed {
                        true => OperationStatus {
                            code: inner.code() as i32,
                            message: inner.message().to_string(),
                            details: inner_details.clone(),
                        },
                        false => OperationStatus {
                            code: Code::Aborted as i32,
                            message: "Operation was aborted.".into(),
                            details: vec![aborted.clone()],
                        },
                    })
                    .collect();
                let failure = details::MultiOperationExecutionFailure { statuses };
                with_detail(inner.code(), message, Some(any("MultiOperationExecutionFailure", &failure)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(status: &Status) -> RpcStatus {
        RpcStatus::decode(status.details()).unwrap()
    }

    #[test]
    fn namespace_not_found_carries_one_detail() {
        let s: Status = Error::NamespaceNotFound("nope".into()).into();
        assert_eq!(s.code(), Code::NotFound);
        let rpc = decode(&s);
        assert_eq!(rpc.details.len(), 1);
        assert!(rpc.details[0].type_url.ends_with("NamespaceNotFoundFailure"));
        let d = details::NamespaceNotFoundFailure::decode(&*rpc.details[0].value).unwrap();
        assert_eq!(d.namespace, "nope");
    }

    #[test]
    fn already_started_names_the_run() {
        let s: Status = Error::AlreadyStarted {
            message: "running".into(),
            start_request_id: "r".into(),
            run_id: "run".into(),
            first_execution_run_id: "first".into(),
        }
        .into();
        assert_eq!(s.code(), Code::AlreadyExists);
        let rpc = decode(&s);
        let d = details::WorkflowExecutionAlreadyStartedFailure::decode(&*rpc.details[0].value).unwrap();
        assert_eq!(d.run_id, "run");
    }

    #[test]
    fn unhandled_command_message_is_exact() {
        let s: Status = Error::UnhandledCommand.into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "UnhandledCommand");
    }
}
