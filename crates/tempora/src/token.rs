//! Task tokens: opaque to workers, they name a workflow task or an activity attempt.

use prost::Message;

use crate::engine::state::RunKey;
use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Message)]
pub struct TaskToken {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub workflow_id: String,
    #[prost(string, tag = "3")]
    pub run_id: String,
    #[prost(int64, tag = "4")]
    pub scheduled_event_id: i64,
    #[prost(int32, tag = "5")]
    pub attempt: i32,
    #[prost(bool, tag = "6")]
    pub activity: bool,
    /// Set only in a query task's token.
    #[prost(string, tag = "7")]
    pub query_id: String,
    /// A Nexus task's token (the run is the operation's caller).
    #[prost(bool, tag = "8")]
    pub nexus: bool,
    /// For a Nexus task: the namespace its handler polls (the endpoint's target).
    #[prost(string, tag = "9")]
    pub target_namespace: String,
    /// For a Nexus task: an attempt of the operation's cancellation.
    #[prost(bool, tag = "10")]
    pub cancel: bool,
}

impl TaskToken {
    pub fn new(run: &RunKey, scheduled_event_id: i64, attempt: i32, activity: bool) -> Self {
        TaskToken {
            namespace: run.namespace.to_string(),
            workflow_id: run.workflow_id.to_string(),
            run_id: run.run_id.to_string(),
            scheduled_event_id,
            attempt,
            activity,
            query_id: String::new(),
            nexus: false,
            target_namespace: String::new(),
            cancel: false,
        }
    }

    /// A Nexus task's token: an attempt of `run`'s operation, handled in `target_namespace`.
    pub fn nexus(run: &RunKey, scheduled_event_id: i64, attempt: i32, cancel: bool, target_namespace: &str) -> Self {
        TaskToken {
            nexus: true,
            cancel,
            target_namespace: target_namespace.to_string(),
            ..TaskToken::new(run, scheduled_event_id, attempt, false)
        }
    }

    /// Parses a Nexus task's token from a handler's answer in `namespace`.
    pub fn parse_nexus(bytes: &[u8], namespace: &str) -> Result<TaskToken> {
        if bytes.is_empty() {
            return Err(Error::invalid("Task token not set on request."));
        }
        let token = TaskToken::decode(bytes).map_err(|_| Error::invalid("Error deserializing task token."))?;
        if token.run_id.is_empty() || !token.nexus {
            return Err(Error::invalid("Error deserializing task token."));
        }
        if !namespace.is_empty() && token.target_namespace != namespace {
            return Err(Error::invalid("Operation requested with a token from a different namespace."));
        }
        Ok(token)
    }

    pub fn query(run: &RunKey, query_id: &str) -> Self {
        TaskToken { query_id: query_id.to_string(), ..TaskToken::new(run, 0, 0, false) }
    }

    pub fn run(&self) -> RunKey {
        RunKey::new(self.namespace.clone(), self.workflow_id.clone(), self.run_id.clone())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Parses a token from a worker; `activity` says which kind the RPC expects.
    pub fn parse(bytes: &[u8], activity: bool) -> Result<TaskToken> {
        if bytes.is_empty() {
            return Err(Error::invalid("Task token not set on request."));
        }
        let token = TaskToken::decode(bytes).map_err(|_| Error::invalid("Error deserializing task token."))?;
        if token.run_id.is_empty() || token.activity != activity || token.nexus {
            return Err(Error::invalid("Error deserializing task token."));
        }
        Ok(token)
    }

    /// `parse`, for a request that names `namespace`: a token of another namespace is refused
    /// (as Temporal does), so a caller allowed in one namespace cannot act in another with a
    /// token it obtained there.
    pub fn parse_in(bytes: &[u8], activity: bool, namespace: &str) -> Result<TaskToken> {
        let token = TaskToken::parse(bytes, activity)?;
        if !namespace.is_empty() && token.namespace != namespace {
            return Err(Error::invalid("Operation requested with a token from a different namespace."));
        }
        Ok(token)
    }
}
