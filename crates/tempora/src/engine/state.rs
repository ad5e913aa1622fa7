//! Mutable state: what the engine knows about one workflow run besides its history.
//!
//! This is persisted (as JSON) in the same transaction as the run's new events. Everything a
//! restart needs to resume the run — pending workflow task, pending activities with their
//! attempts and deadlines, user timers, buffered events — lives here; timers and queued tasks
//! are derived from it at start (`MutableState::recover`).
//!
//! Protobuf values (payloads, failures, buffered events) are kept as their encoded bytes so the
//! state never depends on a JSON mapping of the API types.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use serde::{Deserialize, Serialize};
use temporalio_protos::temporal::api::common::v1 as common;
use temporalio_protos::temporal::api::enums::v1::{ParentClosePolicy, WorkflowExecutionStatus};

use crate::clock::Millis;

/// A string id with a type of its own, so a workflow id cannot be passed where a run id is
/// meant. Serialised as the plain string; reads as `&str` where one is wanted.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

string_id!(
    /// A namespace's name.
    Namespace
);
string_id!(
    /// A workflow id: names every run of one workflow in its namespace.
    WorkflowId
);
string_id!(
    /// One run of a workflow (a UUID).
    RunId
);

/// Identifies one run of a workflow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunKey {
    pub namespace: Namespace,
    pub workflow_id: WorkflowId,
    pub run_id: RunId,
}

impl RunKey {
    pub fn new(namespace: impl Into<Namespace>, workflow_id: impl Into<WorkflowId>, run_id: impl Into<RunId>) -> Self {
        RunKey { namespace: namespace.into(), workflow_id: workflow_id.into(), run_id: run_id.into() }
    }
}

/// A run's status. Stored (in state JSON and the `executions.status` column) as the number
/// of its `WorkflowExecutionStatus`, so stored runs read the same as before this type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "i32", try_from = "i32")]
pub enum RunStatus {
    #[default]
    Running,
    Completed,
    Failed,
    Canceled,
    Terminated,
    ContinuedAsNew,
    TimedOut,
}

impl RunStatus {
    pub fn to_proto(self) -> WorkflowExecutionStatus {
        match self {
            RunStatus::Running => WorkflowExecutionStatus::Running,
            RunStatus::Completed => WorkflowExecutionStatus::Completed,
            RunStatus::Failed => WorkflowExecutionStatus::Failed,
            RunStatus::Canceled => WorkflowExecutionStatus::Canceled,
            RunStatus::Terminated => WorkflowExecutionStatus::Terminated,
            RunStatus::ContinuedAsNew => WorkflowExecutionStatus::ContinuedAsNew,
            RunStatus::TimedOut => WorkflowExecutionStatus::TimedOut,
        }
    }

    /// The stored number (`WorkflowExecutionStatus`).
    pub fn number(self) -> i32 {
        self.to_proto() as i32
    }
}

impl From<RunStatus> for i32 {
    fn from(status: RunStatus) -> i32 {
        status.number()
    }
}

impl TryFrom<i32> for RunStatus {
    type Error = String;
    fn try_from(n: i32) -> Result<Self, String> {
        use WorkflowExecutionStatus as W;
        Ok(match W::try_from(n).map_err(|_| format!("unknown run status {n}"))? {
            W::Running => RunStatus::Running,
            W::Completed => RunStatus::Completed,
            W::Failed => RunStatus::Failed,
            W::Canceled => RunStatus::Canceled,
            W::Terminated => RunStatus::Terminated,
            W::ContinuedAsNew => RunStatus::ContinuedAsNew,
            W::TimedOut => RunStatus::TimedOut,
            W::Unspecified | W::Paused => return Err(format!("run status {n} is not a run's status")),
        })
    }
}

/// What happens to a child when its parent closes (`ParentClosePolicy`). Unspecified is kept
/// as the workflow sent it (and shown so) but acts as Terminate, Temporal's default. Stored as
/// the protobuf number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "i32", from = "i32")]
pub enum ClosePolicy {
    #[default]
    Unspecified,
    Terminate,
    RequestCancel,
    Abandon,
}

impl ClosePolicy {
    pub fn to_proto(self) -> ParentClosePolicy {
        match self {
            ClosePolicy::Unspecified => ParentClosePolicy::Unspecified,
            ClosePolicy::Terminate => ParentClosePolicy::Terminate,
            ClosePolicy::RequestCancel => ParentClosePolicy::RequestCancel,
            ClosePolicy::Abandon => ParentClosePolicy::Abandon,
        }
    }

    /// The policy as a number, as the API and storage carry it.
    pub fn number(self) -> i32 {
        self.to_proto() as i32
    }
}

impl From<i32> for ClosePolicy {
    /// From a workflow's command or from storage; an unknown number is unspecified.
    fn from(n: i32) -> Self {
        match ParentClosePolicy::try_from(n).unwrap_or_default() {
            ParentClosePolicy::Unspecified => ClosePolicy::Unspecified,
            ParentClosePolicy::Terminate => ClosePolicy::Terminate,
            ParentClosePolicy::RequestCancel => ClosePolicy::RequestCancel,
            ParentClosePolicy::Abandon => ClosePolicy::Abandon,
        }
    }
}

impl From<ClosePolicy> for i32 {
    fn from(policy: ClosePolicy) -> i32 {
        policy.number()
    }
}

/// A protobuf message kept as its encoded bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Encoded(pub Vec<u8>);

impl Encoded {
    pub fn of<M: Message>(m: &M) -> Self {
        Encoded(m.encode_to_vec())
    }
    /// Decodes the bytes; they were written by `of`, so failure means corrupt storage.
    pub fn decode<M: Message + Default>(&self) -> M {
        M::decode(self.0.as_slice()).unwrap_or_default()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MutableState {
    pub key: RunKey,
    pub workflow_type: String,
    pub task_queue: String,
    pub status: RunStatus,
    pub start_time_ms: Millis,
    /// 0 while the run is open.
    pub close_time_ms: Millis,
    /// The id the next appended event gets. Only moves forward.
    pub next_event_id: i64,
    pub workflow_task_timeout_ms: Millis,
    pub run_timeout_ms: Millis,
    pub execution_timeout_ms: Millis,
    pub create_request_id: String,
    pub first_execution_run_id: String,
    /// When the first run of this execution chain started: the execution timeout counts from
    /// here. 0 in state written before it existed (then `start_time_ms` is used).
    #[serde(default)]
    pub execution_start_ms: Millis,
    /// `WorkflowTaskStarted` id of the last completed workflow task (`previous_started_event_id`).
    pub last_completed_wft_started_event_id: i64,
    pub workflow_task: Option<WorkflowTask>,
    /// Pending activities by their `ActivityTaskScheduled` event id.
    pub activities: BTreeMap<i64, Activity>,
    /// Pending user timers by timer id.
    pub timers: BTreeMap<String, UserTimer>,
    /// Events that arrived while a workflow task was running, written after its completion.
    pub buffered_events: Vec<Encoded>,
    pub history_size_bytes: i64,
    /// Bumped on every committed transition; makes stale timers and tasks recognisable.
    pub transitions: u64,
    /// The worker queue that has this run cached, from the last completion.
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// A cancellation was requested (`WorkflowExecutionCancelRequested` written).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Request ids of the signals applied, so a retried signal is applied once.
    #[serde(default)]
    pub signal_request_ids: BTreeSet<String>,
    /// Current memo and search attributes (`Memo`, `SearchAttributes`), after upserts.
    #[serde(default)]
    pub memo: Option<Encoded>,
    #[serde(default)]
    pub search_attributes: Option<Encoded>,
    /// The run that started this one as a child, if any.
    #[serde(default)]
    pub parent: Option<ParentInfo>,
    /// Children started by this run and not yet closed, by `StartChildWorkflowExecutionInitiated` id.
    #[serde(default)]
    pub children: BTreeMap<i64, Child>,
    /// Signals and cancel requests this run sent to other runs, not yet delivered, by their
    /// initiated event id.
    #[serde(default)]
    pub external: BTreeMap<i64, ExternalRequest>,
    /// The run that continues this one (continue-as-new), once closed.
    #[serde(default)]
    pub new_execution_run_id: String,
    /// While > 0, the first workflow task waits until then (cron, or a workflow retry's backoff).
    #[serde(default)]
    pub backoff_until_ms: Millis,
    /// When the run's first workflow task became due (start + backoff); 0 in old state.
    #[serde(default)]
    pub execution_time_ms: Millis,
    /// Accepted updates by update id (requests not yet accepted live only in the service).
    #[serde(default)]
    pub updates: BTreeMap<String, UpdateRecord>,
    /// Pending Nexus operations by their `NexusOperationScheduled` event id.
    #[serde(default)]
    pub nexus_operations: BTreeMap<i64, NexusOperation>,
    /// Where to report this run's close (`completion_callbacks` of its start: the Nexus
    /// operations it runs for). Carried to the next run of the chain (continue-as-new, retry).
    #[serde(default)]
    pub callbacks: Vec<NexusCallback>,
    /// Worker versioning: the deployment version the run last completed a task on, how it
    /// follows new versions, and an operator's override.
    #[serde(default, skip_serializing_if = "RunVersioning::is_default")]
    pub versioning: RunVersioning,
}

/// One version of a worker deployment (Temporal's `WorkerDeploymentVersion`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeploymentVersion {
    pub deployment_name: String,
    pub build_id: String,
}

impl DeploymentVersion {
    pub fn to_proto(&self) -> temporalio_protos::temporal::api::deployment::v1::WorkerDeploymentVersion {
        temporalio_protos::temporal::api::deployment::v1::WorkerDeploymentVersion {
            build_id: self.build_id.clone(),
            deployment_name: self.deployment_name.clone(),
        }
    }

    /// Temporal's string form, `<deployment name>.<build id>`.
    pub fn joined(&self) -> String {
        format!("{}.{}", self.deployment_name, self.build_id)
    }
}

/// A run's worker versioning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunVersioning {
    /// `VersioningBehavior` the worker gave at its last completion (0: unversioned).
    pub behavior: i32,
    /// The version whose worker completed the run's last workflow task, if versioned.
    pub version: Option<DeploymentVersion>,
    /// An override pinning the run to a version (`VersioningOverride.pinned`).
    pub override_pinned: Option<DeploymentVersion>,
    /// An override making the run follow the current version (`VersioningOverride.auto_upgrade`).
    pub override_auto_upgrade: bool,
}

impl RunVersioning {
    pub fn is_default(&self) -> bool {
        *self == RunVersioning::default()
    }

    /// The version the run's tasks must go to, if it is pinned (by override or behavior).
    pub fn pinned(&self) -> Option<&DeploymentVersion> {
        use temporalio_protos::temporal::api::enums::v1::VersioningBehavior;
        if let Some(v) = &self.override_pinned {
            return Some(v);
        }
        let pinned = self.behavior == VersioningBehavior::Pinned as i32 && !self.override_auto_upgrade;
        self.version.as_ref().filter(|_| pinned)
    }
}

/// How a run's task is routed among the versions of a task queue's deployment: to `pinned`
/// if set, else to the queue's current (or ramping) version; a sticky queue only if that is
/// the version the run `last` ran on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Routing {
    pub pinned: Option<DeploymentVersion>,
    pub last: Option<DeploymentVersion>,
}

impl Routing {
    pub fn is_default(&self) -> bool {
        self.pinned.is_none() && self.last.is_none()
    }

    pub fn of(state: &MutableState) -> Routing {
        Routing { pinned: state.versioning.pinned().cloned(), last: state.versioning.version.clone() }
    }
}

/// A Nexus operation as its caller tracks it: scheduled, handed to a handler worker (one
/// attempt at a time, retried while the handler answers with a retryable error), then either
/// closed by the handler's answer or started asynchronously and closed by its callback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NexusOperation {
    pub scheduled_event_id: i64,
    pub endpoint: String,
    pub endpoint_id: String,
    pub service: String,
    pub operation: String,
    /// Sent to the handler; a callback names it, so a stale one is recognised.
    pub request_id: String,
    pub scheduled_time_ms: Millis,
    /// 0: no deadline.
    pub schedule_to_close_ms: Millis,
    pub attempt: i32,
    /// When the current attempt was handed to a worker; 0 while it waits for one.
    pub attempt_started_ms: Millis,
    /// While > 0 the operation waits for a retry at this time.
    pub backoff_until_ms: Millis,
    /// `Failure` of the last attempt, if it failed.
    pub last_failure: Option<Encoded>,
    pub last_attempt_complete_ms: Millis,
    /// Set once the handler started it asynchronously (`NexusOperationStarted`).
    pub operation_token: Option<String>,
    /// Its `NexusOperationCancelRequested` event, once the workflow asked to cancel it.
    pub cancel: Option<NexusCancel>,
}

impl NexusOperation {
    pub fn is_started(&self) -> bool {
        self.operation_token.is_some()
    }

    pub fn deadline_ms(&self) -> Option<Millis> {
        (self.schedule_to_close_ms > 0).then(|| self.scheduled_time_ms + self.schedule_to_close_ms)
    }
}

/// A request to cancel a started Nexus operation, delivered to its handler like the start
/// (one attempt at a time, retried on retryable errors).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NexusCancel {
    pub requested_event_id: i64,
    pub requested_time_ms: Millis,
    pub attempt: i32,
    pub attempt_started_ms: Millis,
    pub backoff_until_ms: Millis,
    pub last_failure: Option<Encoded>,
    /// The handler accepted it (`NexusOperationCancelRequestCompleted`) or refused it for good.
    pub done: bool,
}

/// A Nexus completion callback of a run started by an operation's handler (`Callback.nexus`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NexusCallback {
    pub url: String,
    pub header: BTreeMap<String, String>,
}

/// An accepted update: where it was accepted, and its outcome once completed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub accepted_event_id: i64,
    /// `temporal.api.update.v1.Outcome`.
    pub outcome: Option<Encoded>,
}

/// Where a child reports its close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParentInfo {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub initiated_event_id: i64,
    /// So the child can apply it itself if the parent closed while the server was down.
    #[serde(default)]
    pub close_policy: ClosePolicy,
    /// The top of the parent's chain of parents (a run no workflow started). Empty in state
    /// written before it was kept; the parent stands in for it then.
    #[serde(default)]
    pub root_workflow_id: String,
    #[serde(default)]
    pub root_run_id: String,
}

impl ParentInfo {
    pub fn key(&self) -> RunKey {
        RunKey::new(self.namespace.clone(), self.workflow_id.clone(), self.run_id.clone())
    }
}

/// A child workflow as its parent tracks it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Child {
    pub initiated_event_id: i64,
    pub workflow_id: String,
    pub workflow_type: String,
    /// Empty until `ChildWorkflowExecutionStarted`.
    pub run_id: String,
    pub started_event_id: i64,
    pub parent_close_policy: ClosePolicy,
    /// Its `StartChildWorkflowExecutionInitiated` event, to (re)try the start.
    #[serde(default)]
    pub initiated: Option<Encoded>,
    /// State written before `initiated` existed kept the command instead; read only
    /// (`Child::initiated_event` turns it into the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Encoded>,
}

/// A signal or cancel request to another run, as its sender tracks it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExternalRequest {
    pub initiated_event_id: i64,
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub child_workflow_only: bool,
    pub control: String,
    /// For a signal: its name, input and header; `None` for a cancel request.
    pub signal: Option<ExternalSignal>,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExternalSignal {
    pub signal_name: String,
    pub input: Option<Encoded>,
    pub header: Option<Encoded>,
}

/// Sticky execution: a worker's own queue, and how long a task may wait there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sticky {
    pub task_queue: String,
    pub schedule_to_start_ms: Millis,
}

impl MutableState {
    pub fn is_open(&self) -> bool {
        self.status == RunStatus::Running
    }

    /// The run at the top of this run's chain of parents: itself when no workflow started it.
    pub fn root_execution(&self) -> (String, String) {
        match &self.parent {
            Some(p) if !p.root_workflow_id.is_empty() => (p.root_workflow_id.clone(), p.root_run_id.clone()),
            Some(p) => (p.workflow_id.clone(), p.run_id.clone()),
            None => (self.key.workflow_id.to_string(), self.key.run_id.to_string()),
        }
    }

    /// When the first run of this execution chain started (the execution timeout counts from it).
    pub fn execution_start(&self) -> Millis {
        if self.execution_start_ms > 0 {
            self.execution_start_ms
        } else {
            self.start_time_ms
        }
    }

    /// When this run times out: its run timeout, or the execution timeout if that ends first.
    pub fn run_deadline_ms(&self) -> Option<Millis> {
        let began = self.execution_time_ms.max(self.start_time_ms);
        let run = (self.run_timeout_ms > 0).then(|| began + self.run_timeout_ms);
        let execution = (self.execution_timeout_ms > 0).then(|| self.execution_start() + self.execution_timeout_ms);
        match (run, execution) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn pending_activity_by_id(&self, activity_id: &str) -> Option<&Activity> {
        self.activities.values().find(|a| a.activity_id == activity_id)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowTask {
    /// 1-based. Attempts above 1 are transient: their scheduled/started events are written only
    /// if the attempt completes, so a workflow task failing in a loop does not grow history.
    pub attempt: i32,
    /// For a transient attempt, 0 until it is started (its ids are assigned then).
    pub scheduled_event_id: i64,
    /// 0 until a worker polls it.
    pub started_event_id: i64,
    pub scheduled_time_ms: Millis,
    pub started_time_ms: Millis,
    pub started_identity: String,
    pub started_request_id: String,
    /// The build id of the worker that started it (empty if it gave none).
    #[serde(default)]
    pub started_build_id: String,
    /// Scheduled only to deliver updates: unwritten until it has something to write, and
    /// dropped without a trace if the worker only rejects (Temporal's speculative task).
    #[serde(default)]
    pub speculative: bool,
}

impl WorkflowTask {
    pub fn is_started(&self) -> bool {
        self.started_event_id != 0
    }
    /// Its scheduled and started events are not in history (yet): a retry attempt, or a
    /// speculative task.
    pub fn is_transient(&self) -> bool {
        self.attempt > 1 || self.speculative
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_interval_ms: Millis,
    pub backoff_coefficient: f64,
    /// 0 means no maximum.
    pub maximum_interval_ms: Millis,
    /// 0 means unlimited.
    pub maximum_attempts: i32,
    pub non_retryable_error_types: Vec<String>,
}

impl RetryPolicy {
    pub fn to_proto(&self) -> common::RetryPolicy {
        use crate::clock::proto::duration;
        common::RetryPolicy {
            initial_interval: Some(duration(self.initial_interval_ms)),
            backoff_coefficient: self.backoff_coefficient,
            maximum_interval: Some(duration(self.maximum_interval_ms)),
            maximum_attempts: self.maximum_attempts,
            non_retryable_error_types: self.non_retryable_error_types.clone(),
        }
    }

    /// The wait before attempt `attempt + 1`, after attempt `attempt` failed.
    pub fn backoff_ms(&self, attempt: i32) -> Millis {
        let exp = (attempt - 1).clamp(0, 1000);
        let raw = self.initial_interval_ms as f64 * self.backoff_coefficient.powi(exp);
        let capped = if self.maximum_interval_ms > 0 { raw.min(self.maximum_interval_ms as f64) } else { raw };
        capped.min(i64::MAX as f64 / 2.0) as Millis
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Activity {
    pub scheduled_event_id: i64,
    pub activity_id: String,
    pub activity_type: String,
    pub task_queue: String,
    pub scheduled_time_ms: Millis,
    pub attempt: i32,
    /// When the current attempt became (or becomes, while backing off) available to workers.
    pub attempt_scheduled_time_ms: Millis,
    /// 0 while no worker holds the current attempt.
    pub started_time_ms: Millis,
    pub started_identity: String,
    pub started_request_id: String,
    pub schedule_to_start_ms: Millis,
    pub start_to_close_ms: Millis,
    pub schedule_to_close_ms: Millis,
    pub heartbeat_ms: Millis,
    pub retry: RetryPolicy,
    pub last_heartbeat_ms: Millis,
    /// `Payloads`.
    pub heartbeat_details: Option<Encoded>,
    /// `Failure` of the previous attempt.
    pub last_failure: Option<Encoded>,
    pub cancel_requested: bool,
    pub cancel_requested_event_id: i64,
    /// While > 0 the activity waits for a retry at this time.
    pub backoff_until_ms: Millis,
    /// Set by `PauseActivity` (`engine::activity_ops`): no new attempt starts until unpaused.
    #[serde(default)]
    pub paused: Option<ActivityPause>,
    /// Set by `ResetActivity` while an attempt runs: the next attempt is the first again.
    #[serde(default)]
    pub reset_requested: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivityPause {
    pub time_ms: Millis,
    pub identity: String,
    pub reason: String,
}

impl Activity {
    pub fn is_started(&self) -> bool {
        self.started_time_ms != 0
    }
    /// The absolute schedule-to-close deadline, if any.
    pub fn schedule_to_close_deadline_ms(&self) -> Option<Millis> {
        (self.schedule_to_close_ms > 0).then(|| self.scheduled_time_ms + self.schedule_to_close_ms)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserTimer {
    pub timer_id: String,
    pub started_event_id: i64,
    pub fire_time_ms: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_status_is_stored_as_its_protobuf_number_as_before() {
        for status in [RunStatus::Running, RunStatus::Completed, RunStatus::TimedOut, RunStatus::ContinuedAsNew] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, (status.to_proto() as i32).to_string());
            assert_eq!(serde_json::from_str::<RunStatus>(&json).unwrap(), status);
        }
        // State written before this type existed: `"status": 1` is a running run.
        assert_eq!(serde_json::from_str::<RunStatus>("1").unwrap(), RunStatus::Running);
        assert!(serde_json::from_str::<RunStatus>("0").is_err(), "UNSPECIFIED is no run's status");
    }

    #[test]
    fn a_close_policy_is_stored_as_its_protobuf_number_as_before() {
        for (policy, number) in [
            (ClosePolicy::Unspecified, 0),
            (ClosePolicy::Terminate, 1),
            (ClosePolicy::Abandon, 2),
            (ClosePolicy::RequestCancel, 3),
        ] {
            assert_eq!(serde_json::to_string(&policy).unwrap(), number.to_string());
            assert_eq!(serde_json::from_str::<ClosePolicy>(&number.to_string()).unwrap(), policy);
        }
        // Parent info written before the field existed reads as unspecified (acts as terminate).
        let parent: ParentInfo =
            serde_json::from_str(r#"{"namespace":"n","workflow_id":"w","run_id":"r","initiated_event_id":5}"#).unwrap();
        assert_eq!(parent.close_policy, ClosePolicy::Unspecified);
    }
}
