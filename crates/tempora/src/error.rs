//! The server's error type. Every failure a client can see is one of these; the frontend maps
//! them to gRPC status codes and Temporal error details in one place (`frontend::status`).

#[derive(Debug, Clone, thiserror::Error, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Error {
    #[error("Namespace {0} is not found.")]
    NamespaceNotFound(String),
    #[error("Namespace {0} already exists.")]
    NamespaceAlreadyExists(String),
    /// A workflow execution, run, activity or task (token) that does not exist or is stale.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{message}")]
    AlreadyStarted {
        message: String,
        start_request_id: String,
        run_id: String,
        /// Filled in by the frontend when it knows the run's chain.
        first_execution_run_id: String,
    },
    /// The worker's completion raced with new events; it must take a new workflow task.
    #[error("UnhandledCommand")]
    UnhandledCommand,
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something other than a workflow already has this name (a Nexus endpoint).
    #[error("{0}")]
    AlreadyExists(String),
    /// Refused by the namespace's settings (e.g. deprecated worker versioning).
    #[error("{0}")]
    PermissionDenied(String),
    /// The run has no workflow task to answer with yet (a query during a start delay).
    #[error("{0}")]
    WorkflowNotReady(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A namespace's request rate (`concurrent: false`) or concurrent long polls went over
    /// their limit.
    #[error("{message}")]
    Throttled { message: String, concurrent: bool },
    /// No valid credentials (authentication is on).
    #[error("{0}")]
    Unauthenticated(String),
    /// Storage is unreachable or failed; nothing was changed. Clients retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Internal(String),
    /// The worker's query handler failed (or there is none for the query type).
    #[error("{message}")]
    QueryFailed { message: String, failure: Option<Box<temporalio_protos::temporal::api::failure::v1::Failure>> },
    #[error("{0}")]
    DeadlineExceeded(String),
    /// One operation of an `ExecuteMultiOperation` failed (`failed` is its index); the others
    /// are reported aborted.
    #[error("Update-with-Start could not be executed.")]
    MultiOperation { failed: usize, operations: usize, error: Box<Error> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
}
