//! The edge: protobuf requests become checked domain values here, and only here. Each check
//! names the bad field with Temporal's message; the middle never sees a half-valid request.

use std::time::Duration;

use prost::Message;
use temporalio_protos::temporal::api::common::v1::Payloads;
use temporalio_protos::temporal::api::enums::v1::{
    UpdateWorkflowExecutionLifecycleStage as Stage, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temporalio_protos::temporal::api::update::v1::{Request as UpdateRequest, WaitPolicy};
use temporalio_protos::temporal::api::workflowservice::v1 as ws;

use crate::clock::{proto, Millis};
use crate::engine::start::StartPolicy;
use crate::engine::state::RunKey;
use crate::engine::workflow::StartWorkflow;
use crate::engine::Limits;
use crate::error::{Error, Result};

/// Temporal's matching long-poll expiry.
pub(super) const TASK_POLL_TIMEOUT: Duration = Duration::from_secs(60);
const WORKFLOW_TASK_TIMEOUT_DEFAULT_MS: Millis = 10_000;
const WORKFLOW_TASK_TIMEOUT_MAX_MS: Millis = 120_000;
const ID_LENGTH_MAX: usize = 1000;

/// Checks of request sizes against the server's one set of limits.
#[derive(Clone, Copy)]
pub(super) struct Checks<'a>(pub &'a Limits);

impl Checks<'_> {
    pub(super) fn blob(&self, size: usize) -> Result<()> {
        if size > self.0.blob_bytes_max {
            return Err(Error::invalid("Blob data size exceeds limit."));
        }
        Ok(())
    }

    pub(super) fn payloads(&self, p: &Option<Payloads>) -> Result<()> {
        self.blob(p.as_ref().map_or(0, |p| p.encoded_len()))
    }

    /// A start request: checked, with Temporal's timeout defaults applied.
    pub(super) fn start(&self, r: ws::StartWorkflowExecutionRequest) -> Result<(StartWorkflow, StartPolicy)> {
        let policy = start_policy(r.workflow_id_reuse_policy, r.workflow_id_conflict_policy);
        check_id(&r.workflow_id, "WorkflowId")?;
        let workflow_type = r.workflow_type.map(|t| t.name).unwrap_or_default();
        check_id(&workflow_type, "WorkflowType")?;
        let task_queue = r.task_queue.map(|t| t.name).unwrap_or_default();
        check_id(&task_queue, "TaskQueue")?;
        if r.request_id.len() > ID_LENGTH_MAX {
            return Err(Error::invalid("RequestId exceeds length limit."));
        }
        self.payloads(&r.input)?;
        if r.memo.as_ref().map_or(0, |m| m.encoded_len()) > self.0.blob_bytes_max {
            return Err(Error::invalid("Memo size exceeds limit."));
        }
        let execution_timeout_ms = non_negative(&r.workflow_execution_timeout, "WorkflowExecutionTimeout")?;
        let mut run_timeout_ms = non_negative(&r.workflow_run_timeout, "WorkflowRunTimeout")?;
        if execution_timeout_ms > 0 && (run_timeout_ms == 0 || run_timeout_ms > execution_timeout_ms) {
            run_timeout_ms = execution_timeout_ms;
        }
        let mut task_timeout_ms = non_negative(&r.workflow_task_timeout, "WorkflowTaskTimeout")?;
        if task_timeout_ms == 0 {
            task_timeout_ms = WORKFLOW_TASK_TIMEOUT_DEFAULT_MS;
        }
        task_timeout_ms = task_timeout_ms.min(WORKFLOW_TASK_TIMEOUT_MAX_MS);
        if run_timeout_ms > 0 {
            task_timeout_ms = task_timeout_ms.min(run_timeout_ms);
        }
        if !r.cron_schedule.is_empty() {
            crate::engine::cron::parse(&r.cron_schedule).map_err(Error::InvalidArgument)?;
        }
        let start_delay_ms = non_negative(&r.workflow_start_delay, "WorkflowStartDelay")?;
        if start_delay_ms > 0 && !r.cron_schedule.is_empty() {
            return Err(Error::invalid("CronSchedule and WorkflowStartDelay may not be used together."));
        }
        if let Some(p) = &r.retry_policy {
            crate::engine::activity::retry_policy(Some(p)).map_err(Error::InvalidArgument)?;
        }
        let callbacks = completion_callbacks(r.completion_callbacks)?;
        let request_id = if r.request_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { r.request_id };
        let start = StartWorkflow {
            key: RunKey::new(r.namespace, r.workflow_id, String::new()),
            workflow_type,
            task_queue,
            input: r.input,
            execution_timeout_ms,
            run_timeout_ms,
            task_timeout_ms,
            identity: r.identity,
            request_id,
            retry_policy: r.retry_policy,
            memo: r.memo,
            search_attributes: r.search_attributes,
            header: r.header,
            priority: r.priority,
            cron_schedule: r.cron_schedule,
            first_task_backoff_ms: start_delay_ms,
            last_completion_result: r.last_completion_result,
            continued_failure: r.continued_failure,
            callbacks,
            versioning_override: r.versioning_override,
            ..Default::default()
        };
        Ok((start, policy))
    }

    /// An update request, with an update id generated if the caller left it empty.
    pub(super) fn update(&self, request: Option<UpdateRequest>) -> Result<(UpdateRequest, String)> {
        let mut request = request.ok_or_else(|| Error::invalid("Request is not set on request."))?;
        let meta = request.meta.get_or_insert_with(Default::default);
        if meta.update_id.is_empty() {
            meta.update_id = uuid::Uuid::new_v4().to_string();
        }
        let update_id = meta.update_id.clone();
        check_id(&update_id, "UpdateId")?;
        let name = request.input.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
        check_id(name, "Update name")?;
        self.payloads(&request.input.as_ref().and_then(|i| i.args.clone()))?;
        Ok((request, update_id))
    }
}

/// Temporal's limit on the callbacks one workflow carries (`MaxCallbacksPerWorkflow`).
const CALLBACKS_MAX: usize = 32;

/// A start's completion callbacks: only the Nexus callbacks tempora gave its own handlers
/// (delivered inside the server); any other address is refused, as Temporal refuses an
/// address it is not configured to call.
fn completion_callbacks(
    callbacks: Vec<temporalio_protos::temporal::api::common::v1::Callback>,
) -> Result<Vec<crate::engine::state::NexusCallback>> {
    use temporalio_protos::temporal::api::common::v1::callback::Variant;
    if callbacks.len() > CALLBACKS_MAX {
        return Err(Error::invalid(format!("cannot attach more than {CALLBACKS_MAX} callbacks to a workflow")));
    }
    callbacks
        .into_iter()
        .map(|c| match c.variant {
            Some(Variant::Nexus(n)) if n.url == crate::engine::nexus::SYSTEM_CALLBACK_URL => {
                Ok(crate::engine::state::NexusCallback { url: n.url, header: n.header.into_iter().collect() })
            }
            Some(Variant::Nexus(n)) => Err(Error::invalid(format!(
                "invalid url: {:?} is not an address this server calls back (only {})",
                n.url,
                crate::engine::nexus::SYSTEM_CALLBACK_URL
            ))),
            _ => Err(Error::invalid("unsupported callback variant")),
        })
        .collect()
}

pub(super) fn check_id(value: &str, field: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} is not set on request.")));
    }
    if value.len() > ID_LENGTH_MAX {
        return Err(Error::invalid(format!("{field} exceeds length limit.")));
    }
    Ok(())
}

fn non_negative(d: &Option<prost_types::Duration>, field: &str) -> Result<Millis> {
    let ms = proto::duration_ms(d.as_ref());
    if ms < 0 {
        return Err(Error::invalid(format!("Invalid {field}.")));
    }
    Ok(ms)
}

pub(super) fn start_policy(reuse: i32, conflict: i32) -> StartPolicy {
    StartPolicy {
        reuse: WorkflowIdReusePolicy::try_from(reuse).unwrap_or_default().into(),
        conflict: WorkflowIdConflictPolicy::try_from(conflict).unwrap_or_default().into(),
    }
}

/// How long a call may wait (a query for its worker, an update for its stage): the caller's
/// deadline (`grpc-timeout`) less a margin to answer in, capped by the long-poll interval.
pub(super) fn wait_budget(metadata: &tonic::metadata::MetadataMap) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(30);
    const MARGIN: Duration = Duration::from_millis(500);
    let Some(deadline) = caller_deadline(metadata) else { return DEFAULT };
    deadline.saturating_sub(MARGIN).min(TASK_POLL_TIMEOUT)
}

/// How long a task poll may wait: Temporal's long poll, or less if the caller's deadline
/// (`grpc-timeout`) comes first, keeping a second to answer (empty) before it.
pub(super) fn poll_budget(metadata: &tonic::metadata::MetadataMap) -> Duration {
    const MARGIN: Duration = Duration::from_secs(1);
    match caller_deadline(metadata) {
        Some(deadline) => deadline.saturating_sub(MARGIN).min(TASK_POLL_TIMEOUT),
        None => TASK_POLL_TIMEOUT,
    }
}

/// The caller's deadline (`grpc-timeout`), if it sent one.
fn caller_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().saturating_sub(1));
    let n = digits.parse::<u64>().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Temporal's long poll for an update's stage (`LongPollExpirationInterval`).
const UPDATE_LONG_POLL: Duration = Duration::from_secs(20);

/// How long an update call waits for its stage. Past Temporal's long poll the caller gets the
/// stage reached so far (and asks again); a caller whose own deadline is shorter gets
/// DEADLINE_EXCEEDED when it passes first (`binding`), as from Temporal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct UpdateWait {
    pub deadline: tokio::time::Instant,
    pub binding: bool,
}

impl UpdateWait {
    pub(super) fn of(metadata: &tonic::metadata::MetadataMap) -> Self {
        const MARGIN: Duration = Duration::from_millis(50);
        let now = tokio::time::Instant::now();
        match caller_deadline(metadata) {
            Some(caller) if caller < UPDATE_LONG_POLL => {
                UpdateWait { deadline: now + caller.saturating_sub(MARGIN), binding: true }
            }
            _ => UpdateWait { deadline: now + UPDATE_LONG_POLL, binding: false },
        }
    }

    /// The answer for a wait that ended at `status`.
    pub(super) fn answer(
        &self,
        status: crate::history::UpdateStatus,
        wanted: Stage,
    ) -> Result<crate::history::UpdateStatus> {
        let short = (status.0 as i32) < (wanted as i32);
        if self.binding && short && tokio::time::Instant::now() >= self.deadline {
            return Err(Error::DeadlineExceeded("context deadline exceeded".into()));
        }
        Ok(status)
    }
}

/// The stage an update call waits for; Temporal's default is "accepted".
pub(super) fn wanted_stage(policy: Option<&WaitPolicy>) -> Stage {
    match policy.and_then(|p| Stage::try_from(p.lifecycle_stage).ok()) {
        Some(Stage::Unspecified) | None => Stage::Accepted,
        Some(stage) => stage,
    }
}

/// Page tokens of history reads: the next event id to return, as decimal text.
pub(super) fn parse_history_token(token: &[u8]) -> Result<i64> {
    if token.is_empty() {
        return Ok(1);
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id >= 1)
        .ok_or_else(|| Error::invalid("Invalid NextPageToken."))
}

pub(super) fn history_token(next_event_id: i64) -> Vec<u8> {
    next_event_id.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_checked_the_same_wherever_it_comes_from() {
        let limits = Limits { blob_bytes_max: 10, ..Default::default() };
        let checks = Checks(&limits);
        assert!(matches!(checks.update(None), Err(Error::InvalidArgument(m)) if m.contains("Request")));
        let unnamed = UpdateRequest::default();
        assert!(matches!(checks.update(Some(unnamed)), Err(Error::InvalidArgument(m)) if m.contains("Update name")));
        let big = UpdateRequest {
            input: Some(temporalio_protos::temporal::api::update::v1::Input {
                name: "u".into(),
                args: Some(Payloads { payloads: vec![Default::default(); 1] }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(checks.update(Some(big.clone())).is_ok());
        let limits = Limits { blob_bytes_max: 1, ..Default::default() };
        assert!(matches!(Checks(&limits).update(Some(big)), Err(Error::InvalidArgument(m)) if m.contains("Blob")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_caller_deadline_ends_an_update_wait_with_deadline_exceeded() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        let long = UpdateWait::of(&metadata);
        assert!(!long.binding);
        assert_eq!(long.deadline - tokio::time::Instant::now(), UPDATE_LONG_POLL);
        metadata.insert("grpc-timeout", "1S".parse().unwrap());
        let short = UpdateWait::of(&metadata);
        assert!(short.binding);
        let accepted = (Stage::Accepted, None);
        // Before the deadline (the run cannot change any more, say): the stage reached.
        assert_eq!(short.answer(accepted.clone(), Stage::Completed), Ok(accepted.clone()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(short.answer(accepted.clone(), Stage::Completed), Err(Error::DeadlineExceeded(_))));
        assert_eq!(short.answer(accepted.clone(), Stage::Accepted), Ok(accepted.clone()));
        assert_eq!(long.answer(accepted.clone(), Stage::Completed), Ok(accepted), "past the long poll: ask again");
    }

    #[test]
    fn the_caller_deadline_bounds_a_wait() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert_eq!(wait_budget(&metadata), Duration::from_secs(30));
        metadata.insert("grpc-timeout", "10S".parse().unwrap());
        assert_eq!(wait_budget(&metadata), Duration::from_millis(9_500));
        metadata.insert("grpc-timeout", "2H".parse().unwrap());
        assert_eq!(wait_budget(&metadata), TASK_POLL_TIMEOUT);
    }

    #[test]
    fn a_task_poll_answers_a_second_before_the_caller_deadline() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert_eq!(poll_budget(&metadata), TASK_POLL_TIMEOUT);
        metadata.insert("grpc-timeout", "70S".parse().unwrap());
        assert_eq!(poll_budget(&metadata), TASK_POLL_TIMEOUT, "the SDKs' 70 s: Temporal's minute");
        metadata.insert("grpc-timeout", "5000m".parse().unwrap());
        assert_eq!(poll_budget(&metadata), Duration::from_secs(4));
        metadata.insert("grpc-timeout", "500m".parse().unwrap());
        assert_eq!(poll_budget(&metadata), Duration::ZERO);
    }
}
