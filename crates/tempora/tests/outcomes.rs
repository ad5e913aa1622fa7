//! What a workflow and its client are told when things go wrong, and timing across restarts.
//!
//! `core.rs` checks that failures happen; these check what the server records about them,
//! as decoded by the official SDK: the activity failure's retry state, its cause (application
//! failure type and flag, or timeout type with the last heartbeat details), a workflow failure
//! with its cause chain as the client sees it, and that timers and retry backoffs pending while
//! the server is down keep their deadlines.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use temporalio_client::errors::WorkflowGetResultError;
use temporalio_common::error::IncomingError;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::RetryPolicy;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, ApplicationFailure, RetryState, WorkerOptions, WorkflowContext,
    WorkflowResult,
};

use support::{
    get_result, history_event_types, latest_result, run_on_fresh_server, start, start_server, transfer, unique,
    wait_for_event, wait_until, with_worker, CallLog, Common, OnDisk,
};

/// A whole test, worker shutdown and restarts included, must finish in this time.
const HARD_LIMIT: Duration = Duration::from_secs(90);

async fn within_limit<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HARD_LIMIT, test).await.expect("test exceeded its hard time limit")
}

/// This suite's own activities; they and the [`Common`] ones record every call in one log.
#[derive(Default, Clone)]
struct Steps(CallLog);

fn millis(ms: u64) -> prost_types::Duration {
    prost_types::Duration { seconds: (ms / 1000) as i64, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

fn retry(max_attempts: i32, initial_ms: u64) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Some(millis(initial_ms)),
        backoff_coefficient: 2.0,
        maximum_interval: Some(millis(initial_ms.max(1000) * 4)),
        maximum_attempts: max_attempts,
        non_retryable_error_types: vec!["Listed".to_string()],
    }
}

/// Start-to-close 10 s, retries 100 ms apart doubling, at most `max_attempts`.
fn options(max_attempts: i32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).retry_policy(retry(max_attempts, 100)).build()
}

fn app_error(message: &str, type_name: &str, non_retryable: bool) -> ActivityError {
    let failure = ApplicationFailure::builder(Box::<dyn std::error::Error + Send + Sync>::from(message.to_string()))
        .type_name(type_name.to_string())
        .non_retryable(non_retryable)
        .build();
    ActivityError::application(failure)
}

#[activities]
impl Steps {
    /// Fails with the non-retryable flag set on the failure itself.
    #[activity]
    async fn flagged(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.record(&ctx, "flagged");
        Err(app_error("flagged as final", "Flagged", true))
    }

    /// Fails with a type the retry policy lists as non-retryable; the flag is not set.
    #[activity]
    async fn listed(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.record(&ctx, "listed");
        Err(app_error("listed as final", "Listed", false))
    }

    /// Outlives a 1 s start-to-close timeout.
    #[activity]
    async fn too_slow(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.record(&ctx, "too_slow");
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    }

    /// Heartbeats progress 7 once, then goes silent past a 1 s heartbeat timeout.
    #[activity]
    async fn stalls(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.record(&ctx, "stalls");
        ctx.record_heartbeat(7u32).await.expect("heartbeat");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = ctx.cancelled() => {}
        }
        Ok(())
    }

    /// The transfer's last step; the bank never confirms.
    #[activity]
    async fn confirm(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.record(&ctx, "confirm");
        Err(anyhow::anyhow!("bank did not confirm").into())
    }

    /// Fails attempt 1; later attempts return their attempt number.
    #[activity]
    async fn fails_first(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<u32, ActivityError> {
        let attempt = self.0.record(&ctx, "fails_first");
        if attempt == 1 {
            return Err(anyhow::anyhow!("first attempt fails").into());
        }
        Ok(attempt)
    }
}

/// "retry_state: cause" for an activity's outcome, e.g.
/// "MaximumAttemptsReached: application type=Flagged non_retryable=true message=...".
fn describe(result: Result<(), ActivityExecutionError>) -> String {
    let failure = match result {
        Ok(()) => return "completed".to_string(),
        Err(ActivityExecutionError::Failed(failure)) => failure,
        Err(other) => return format!("unexpected: {other}"),
    };
    let cause = match failure.cause() {
        Some(IncomingError::Application(app)) => format!(
            "application type={} non_retryable={} message={app}",
            app.type_name().unwrap_or(""),
            app.is_non_retryable()
        ),
        Some(IncomingError::Timeout(timeout)) => format!(
            "timeout {:?} details={:?}",
            timeout.timeout_type(),
            timeout.last_heartbeat_details::<u32>().ok().flatten()
        ),
        other => format!("other cause {other:?}"),
    };
    format!("{:?}: {cause}", failure.retry_state())
}

/// Runs one failing activity, chosen by name, and describes how it failed.
#[workflow]
#[derive(Default)]
struct ActivityOutcome;

#[workflow_methods]
impl ActivityOutcome {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, case: String) -> WorkflowResult<String> {
        let once = |stc_secs: u64| {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(stc_secs)).retry_policy(retry(1, 100))
        };
        let result = match case.as_str() {
            "exhausted" => ctx.execute_activity(Common::always_fails, (), options(3)).await,
            "flagged" => ctx.execute_activity(Steps::flagged, (), options(5)).await,
            "listed" => ctx.execute_activity(Steps::listed, (), options(5)).await,
            "start_to_close" => ctx.execute_activity(Steps::too_slow, (), once(1).build()).await,
            "heartbeat" => {
                let options = once(10).heartbeat_timeout(Duration::from_secs(1)).build();
                ctx.execute_activity(Steps::stalls, (), options).await
            }
            other => panic!("unknown case {other}"),
        };
        Ok(describe(result))
    }
}

/// Withdraw, deposit, confirm; when confirm fails for good, undo in reverse order and fail the
/// workflow with a `TransferFailed` application failure caused by the activity failure.
#[workflow]
#[derive(Default)]
struct FailingTransfer;

#[workflow_methods]
impl FailingTransfer {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, amount: i64) -> WorkflowResult<String> {
        let error = match transfer(ctx, amount, || options(3), Steps::confirm).await? {
            Ok(()) => return Ok("transferred".to_string()),
            Err(error) => error,
        };
        let failure = ApplicationFailure::builder(Box::<dyn std::error::Error + Send + Sync>::from(
            "transfer failed; compensated".to_string(),
        ))
        .type_name("TransferFailed".to_string())
        .non_retryable(true);
        let failure = match error {
            ActivityExecutionError::Failed(cause) => failure.cause(Box::new(IncomingError::Activity(cause))).build(),
            _ => failure.build(),
        };
        Err(failure.into())
    }
}

/// add_one, a 5 s timer, double.
#[workflow]
#[derive(Default)]
struct TimerBetween;

#[workflow_methods]
impl TimerBetween {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, n: i64) -> WorkflowResult<i64> {
        let a = ctx.execute_activity(Common::add_one, n, options(3)).await?;
        ctx.timer(Duration::from_secs(5)).await;
        Ok(ctx.execute_activity(Common::double, a, options(3)).await?)
    }
}

/// One activity that fails attempt 1 and is retried after a 4 s backoff.
#[workflow]
#[derive(Default)]
struct LongBackoff;

#[workflow_methods]
impl LongBackoff {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<u32> {
        let options =
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).retry_policy(retry(3, 4000)).build();
        Ok(ctx.execute_activity(Steps::fails_first, (), options).await?)
    }
}

fn worker_options(queue: &str, log: &CallLog) -> WorkerOptions {
    support::worker!(
        queue,
        activities: [Steps(log.clone()), Common(log.clone())],
        workflows: [ActivityOutcome, FailingTransfer, TimerBetween, LongBackoff],
    )
}

async fn outcome_of(case: &str) -> (String, Vec<String>) {
    within_limit(run_on_fresh_server(worker_options, ActivityOutcome::run, case.to_string())).await
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_attempts_report_maximum_attempts_reached() {
    let (result, calls) = outcome_of("exhausted").await;
    assert_eq!(result, "MaximumAttemptsReached: application type= non_retryable=false message=nope");
    assert_eq!(calls, vec!["always_fails:1", "always_fails:2", "always_fails:3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_flagged_non_retryable_runs_once() {
    let (result, calls) = outcome_of("flagged").await;
    assert_eq!(result, "NonRetryableFailure: application type=Flagged non_retryable=true message=flagged as final");
    assert_eq!(calls, vec!["flagged:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_type_listed_in_the_policy_runs_once() {
    let (result, calls) = outcome_of("listed").await;
    assert_eq!(result, "NonRetryableFailure: application type=Listed non_retryable=false message=listed as final");
    assert_eq!(calls, vec!["listed:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn start_to_close_timeout_on_the_last_attempt_is_a_timeout_failure() {
    let (result, calls) = outcome_of("start_to_close").await;
    assert_eq!(result, "MaximumAttemptsReached: timeout StartToClose details=None");
    assert_eq!(calls, vec!["too_slow:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_timeout_on_the_last_attempt_carries_the_last_details() {
    let (result, calls) = outcome_of("heartbeat").await;
    assert_eq!(result, "MaximumAttemptsReached: timeout Heartbeat details=Some(7)");
    assert_eq!(calls, vec!["stalls:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_transfer_compensates_then_fails_the_workflow_with_its_cause() {
    within_limit(async {
        let (server, client) = start_server(":memory:").await;
        let log = CallLog::default();
        let queue = unique("transfer");
        let error = with_worker(&client, worker_options(&queue, &log), async {
            let handle = start(&client, FailingTransfer::run, 100, &queue, unique("transfer")).await;
            get_result(&handle).await.expect_err("the transfer fails")
        })
        .await;
        server.stop().await;

        assert_eq!(
            log.entries(),
            vec!["withdraw:1", "deposit:1", "confirm:1", "confirm:2", "confirm:3", "undo_deposit:1", "undo_withdraw:1"]
        );
        let WorkflowGetResultError::Failed(failure) = error else { panic!("expected a workflow failure: {error:?}") };
        let IncomingError::Application(app) = *failure else { panic!("expected an application failure: {failure:?}") };
        assert_eq!(app.type_name(), Some("TransferFailed"));
        assert!(app.is_non_retryable());
        assert_eq!(app.to_string(), "transfer failed; compensated");
        let Some(IncomingError::Activity(activity)) = app.cause() else {
            panic!("expected the activity failure as the cause: {:?}", app.cause())
        };
        assert_eq!(activity.activity_type(), Some("Steps::confirm"));
        assert_eq!(activity.retry_state(), RetryState::MaximumAttemptsReached);
        let Some(IncomingError::Application(root)) = activity.cause() else {
            panic!("expected the activity's application failure: {:?}", activity.cause())
        };
        assert_eq!(root.to_string(), "bank did not confirm");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_while_a_timer_is_pending_keeps_its_deadline() {
    within_limit(async {
        let (disk, server, c) = OnDisk::start("timer").await;
        let log = CallLog::default();
        let timer_seen = with_worker(&c, worker_options(&disk.queue, &log), async {
            start(&c, TimerBetween::run, 4, &disk.queue, &disk.workflow_id).await;
            wait_for_event(&c, &disk.workflow_id, "EVENT_TYPE_TIMER_STARTED").await;
            Instant::now()
        })
        .await;
        let history = history_event_types(&c, &disk.workflow_id).await;
        assert!(
            !history.iter().any(|t| t == "EVENT_TYPE_TIMER_FIRED"),
            "the timer fired before the server stopped, so the restart proves nothing: {history:?}"
        );
        server.stop().await;
        assert_eq!(log.entries(), vec!["add_one:1"]);

        let (server, c) = disk.serve().await;
        let result =
            with_worker(&c, worker_options(&disk.queue, &log), latest_result::<TimerBetween>(&c, &disk.workflow_id))
                .await;
        let history = history_event_types(&c, &disk.workflow_id).await;
        server.stop().await;

        assert_eq!(result, (4 + 1) * 2);
        assert_eq!(log.entries(), vec!["add_one:1", "double:1"]);
        let waited = log.times()[1] - timer_seen;
        assert!(waited >= Duration::from_millis(4900), "the 5 s timer fired after {waited:?}");
        let timers: Vec<_> = history.iter().filter(|t| t.starts_with("EVENT_TYPE_TIMER")).collect();
        assert_eq!(timers, vec!["EVENT_TYPE_TIMER_STARTED", "EVENT_TYPE_TIMER_FIRED"]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_during_a_retry_backoff_keeps_its_deadline() {
    within_limit(async {
        let (disk, server, c) = OnDisk::start("backoff").await;
        let log = CallLog::default();
        with_worker(&c, worker_options(&disk.queue, &log), async {
            start(&c, LongBackoff::run, (), &disk.queue, &disk.workflow_id).await;
            wait_until("attempt 1 has run", async || !log.entries().is_empty()).await;
        })
        .await;
        server.stop().await;
        let stopped = Instant::now();
        assert_eq!(log.entries(), vec!["fails_first:1"], "attempt 2 ran before the server stopped");

        let (server, c) = disk.serve().await;
        let result =
            with_worker(&c, worker_options(&disk.queue, &log), latest_result::<LongBackoff>(&c, &disk.workflow_id))
                .await;
        server.stop().await;

        assert_eq!(result, 2);
        assert_eq!(log.entries(), vec!["fails_first:1", "fails_first:2"]);
        let times = log.times();
        assert!(times[1] > stopped, "attempt 2 ran after the restart");
        let backoff = times[1] - times[0];
        assert!(backoff >= Duration::from_millis(3900), "attempt 2 came {backoff:?} after attempt 1, not after 4 s");
    })
    .await
}
