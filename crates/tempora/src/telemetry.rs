//! Prometheus metrics under Temporal server's names and labels (so its Grafana dashboards
//! read them), scraped at `/metrics` on the HTTP port: requests, errors and latency per
//! operation, storage commits, workflow outcomes, schedule-to-start latency, polls.
//!
//! The `metrics` facade records into one process-wide Prometheus recorder, installed by the
//! first server started in the process; servers in one process (tests) share it. Histograms
//! are in seconds, as Temporal's.
//!
//! Not for: the UI's overview (`stats`, per namespace, last hour) — these only count up.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::engine::state::RunStatus;
use crate::error::Error;
use crate::matching::TaskKind;

/// Latency buckets in seconds: 1 ms to 60 s.
const BUCKETS_SECONDS: [f64; 15] =
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process). `None` if another recorder was installed first.
pub(crate) fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&BUCKETS_SECONDS).ok()?;
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// Folds the histogram samples recorded since the last upkeep into their buckets. The
/// recorder keeps every sample until then: without upkeep, a server nobody scrapes would keep
/// every request's latency forever (100,000 workflow starts: about 10 MB). Run with the
/// server's scavenger.
pub(crate) fn upkeep() {
    if let Some(handle) = HANDLE.get().and_then(Option::as_ref) {
        handle.run_upkeep();
    }
}

/// Task queue backlogs as gauges (`approximate_backlog_count`, `approximate_backlog_age_seconds`),
/// set from matching just before a scrape.
pub(crate) fn backlogs(queues: Vec<(String, String, TaskKind, usize, crate::clock::Millis)>) {
    for (namespace, task_queue, kind, count, age_ms) in queues {
        let labels = [("namespace", namespace), ("taskqueue", task_queue), ("task_type", task_type(kind).to_string())];
        metrics::gauge!("approximate_backlog_count", &labels).set(count as f64);
        metrics::gauge!("approximate_backlog_age_seconds", &labels).set(age_ms as f64 / 1000.0);
    }
}

/// The run cache as gauges (`run_cache_runs`, `run_cache_bytes`), set just before a scrape.
pub(crate) fn run_cache((runs, bytes): (usize, usize)) {
    metrics::gauge!("run_cache_runs").set(runs as f64);
    metrics::gauge!("run_cache_bytes").set(bytes as f64);
}

/// What one pass of a schedule did: `schedule_action_success` (runs started),
/// `schedule_missed_catchup_window`, `schedule_buffer_overruns`, per namespace.
pub(crate) fn schedule(namespace: &str, started: i64, missed: i64, dropped: i64) {
    let labels = [("namespace", namespace.to_string())];
    for (name, n) in [
        ("schedule_action_success", started),
        ("schedule_missed_catchup_window", missed),
        ("schedule_buffer_overruns", dropped),
    ] {
        if n > 0 {
            metrics::counter!(name, &labels).increment(n as u64);
        }
    }
}

/// The text exposition of every metric recorded so far.
pub(crate) fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Temporal's `error_type` label: the Go service error's name.
fn error_type(e: &Error) -> &'static str {
    match e {
        Error::NamespaceNotFound(_) => "serviceerror_NamespaceNotFound",
        Error::NamespaceAlreadyExists(_) => "serviceerror_NamespaceAlreadyExists",
        Error::NotFound(_) => "serviceerror_NotFound",
        Error::AlreadyStarted { .. } => "serviceerror_WorkflowExecutionAlreadyStarted",
        Error::InvalidArgument(_) | Error::UnhandledCommand | Error::QueryFailed { .. } => {
            "serviceerror_InvalidArgument"
        }
        Error::FailedPrecondition(_) | Error::WorkflowNotReady(_) => "serviceerror_FailedPrecondition",
        Error::AlreadyExists(_) => "serviceerror_AlreadyExists",
        Error::PermissionDenied(_) => "serviceerror_PermissionDenied",
        Error::ResourceExhausted(_) | Error::Throttled { .. } => "serviceerror_ResourceExhausted",
        Error::Unauthenticated(_) => "serviceerror_Unauthenticated",
        Error::Unavailable(_) => "serviceerror_Unavailable",
        Error::Unimplemented(_) => "serviceerror_Unimplemented",
        Error::DeadlineExceeded(_) => "serviceerror_DeadlineExceeded",
        Error::Internal(_) | Error::MultiOperation { .. } => "serviceerror_Internal",
    }
}

/// The `namespace` label of a request that names no existing namespace (Temporal's).
pub(crate) const UNKNOWN_NAMESPACE: &str = "_unknown_";

/// One frontend RPC: `service_requests`, `service_latency`, and `service_error_with_type`
/// when it failed, per operation and namespace.
pub(crate) fn request(operation: &'static str, namespace: &str, elapsed: Duration, error: Option<&Error>) {
    let labels =
        [("operation", operation.to_string()), ("service_name", "frontend".into()), ("namespace", namespace.into())];
    metrics::counter!("service_requests", &labels).increment(1);
    metrics::histogram!("service_latency", &labels).record(elapsed.as_secs_f64());
    if let Some(e) = error {
        let mut labels = labels.to_vec();
        labels.push(("error_type", error_type(e).into()));
        metrics::counter!("service_error_with_type", &labels).increment(1);
    }
}

/// One store transaction (a group commit): `persistence_requests`, `persistence_latency`,
/// `persistence_errors`.
pub(crate) fn persistence(operation: &'static str, elapsed: Duration, failed: bool) {
    let labels = [("operation", operation)];
    metrics::counter!("persistence_requests", &labels).increment(1);
    metrics::histogram!("persistence_latency", &labels).record(elapsed.as_secs_f64());
    if failed {
        metrics::counter!("persistence_errors", &labels).increment(1);
    }
}

/// A run closed: `workflow_success`, `workflow_failed`, `workflow_timeout`,
/// `workflow_terminate`, `workflow_cancel` or `workflow_continued_as_new`.
pub(crate) fn run_closed(namespace: &str, workflow_type: &str, status: RunStatus) {
    let name = match status {
        RunStatus::Completed => "workflow_success",
        RunStatus::Failed => "workflow_failed",
        RunStatus::TimedOut => "workflow_timeout",
        RunStatus::Terminated => "workflow_terminate",
        RunStatus::Canceled => "workflow_cancel",
        RunStatus::ContinuedAsNew => "workflow_continued_as_new",
        RunStatus::Running => return,
    };
    let labels = [("namespace", namespace.to_string()), ("workflowType", workflow_type.to_string())];
    metrics::counter!(name, &labels).increment(1);
}

fn task_type(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Workflow => "Workflow",
        TaskKind::Activity => "Activity",
        TaskKind::Nexus => "Nexus",
    }
}

/// A task left its queue `wait_ms` after it was scheduled: `task_schedule_to_start_latency`
/// and `poll_success`.
pub(crate) fn task_started(namespace: &str, task_queue: &str, kind: TaskKind, wait_ms: i64) {
    let labels = [
        ("namespace", namespace.to_string()),
        ("taskqueue", task_queue.to_string()),
        ("task_type", task_type(kind).to_string()),
    ];
    metrics::histogram!("task_schedule_to_start_latency", &labels).record(wait_ms.max(0) as f64 / 1000.0);
    metrics::counter!("poll_success", &labels).increment(1);
}

/// A poll ended with nothing to do: `poll_timeouts`.
pub(crate) fn poll_timed_out(namespace: &str, task_queue: &str, kind: TaskKind) {
    let labels = [
        ("namespace", namespace.to_string()),
        ("taskqueue", task_queue.to_string()),
        ("task_type", task_type(kind).to_string()),
    ];
    metrics::counter!("poll_timeouts", &labels).increment(1);
}
