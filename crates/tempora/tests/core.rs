//! The core server through the official Rust SDK: workflows with activities, retries,
//! timeouts, heartbeats, many at once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use temporalio_common::HasWorkflowDefinition;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::RetryPolicy;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, WorkerOptions, WorkflowContext, WorkflowResult};

use support::{
    client, history_event_types, on_tempora_and_reference, run_on_fresh_server, run_workflow, start_server, transfer,
    unique, with_worker, CallLog, Common,
};

/// This suite's own activities; they and the [`Common`] ones record every call in one log.
#[derive(Default, Clone)]
struct Acts(CallLog);

fn retry(max_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Some(prost_types::Duration { seconds: 0, nanos: 100_000_000 }),
        backoff_coefficient: 2.0,
        maximum_interval: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        maximum_attempts: max_attempts,
        non_retryable_error_types: vec!["Fatal".to_string()],
    }
}

fn opts(max_attempts: i32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).retry_policy(retry(max_attempts)).build()
}

#[activities]
impl Acts {
    #[activity]
    async fn greet(self: Arc<Self>, ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
        self.0.record(&ctx, "greet");
        Ok(format!("Hello, {name}!"))
    }

    #[activity]
    async fn step_that_fails(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.record(&ctx, "fail");
        Err(ActivityError::from(anyhow::anyhow!("the third step always fails")))
    }

    /// Fails on attempts 1 and 2, succeeds on 3.
    #[activity]
    async fn flaky(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<u32, ActivityError> {
        let attempt = self.0.record(&ctx, "flaky");
        if attempt < 3 {
            return Err(anyhow::anyhow!("not yet").into());
        }
        Ok(attempt)
    }

    #[activity]
    async fn fatal(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.record(&ctx, "fatal");
        let failure = ApplicationFailure::builder(Box::<dyn std::error::Error + Send + Sync>::from("fatal error"))
            .type_name("Fatal".to_string())
            .build();
        Err(ActivityError::application(failure))
    }

    /// Attempt 1 outlives its 1 s start-to-close timeout; attempt 2 answers at once.
    #[activity]
    async fn slow_then_fast(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<u32, ActivityError> {
        let attempt = self.0.record(&ctx, "slow_then_fast");
        if attempt == 1 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok(attempt)
    }

    /// Attempt 1 heartbeats progress 5 then goes silent past its heartbeat timeout; attempt 2
    /// returns the progress it inherits.
    #[activity]
    async fn heartbeater(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<u32, ActivityError> {
        let attempt = self.0.record(&ctx, "heartbeater");
        if attempt == 1 {
            ctx.record_heartbeat(5u32).await.expect("heartbeat");
            tokio::time::sleep(Duration::from_secs(4)).await;
            return Ok(0);
        }
        Ok(ctx.heartbeat_details().deserialize::<u32>().expect("details").unwrap_or(0))
    }
}

#[workflow]
#[derive(Default)]
struct Hello;

#[workflow_methods]
impl Hello {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        Ok(ctx.execute_activity(Acts::greet, name, opts(0)).await?)
    }
}

/// The seed's workflow shape: three activities in sequence, each feeding the next.
#[workflow]
#[derive(Default)]
struct Pipeline;

#[workflow_methods]
impl Pipeline {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, n: i64) -> WorkflowResult<i64> {
        let a = ctx.execute_activity(Common::add_one, n, opts(0)).await?;
        let b = ctx.execute_activity(Common::double, a, opts(0)).await?;
        Ok(ctx.execute_activity(Common::add_one, b, opts(0)).await?)
    }
}

/// The seed's money-transfer saga: compensations in reverse order when a step fails.
#[workflow]
#[derive(Default)]
struct TransferMoney;

#[workflow_methods]
impl TransferMoney {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, amount: i64) -> WorkflowResult<String> {
        match transfer(ctx, amount, || opts(3), Acts::step_that_fails).await? {
            Ok(()) => Ok("transferred".to_string()),
            Err(_) => Ok("compensated".to_string()),
        }
    }
}

/// Runs one activity chosen by name and reports its result or failure as text.
#[workflow]
#[derive(Default)]
struct RunOne;

#[workflow_methods]
impl RunOne {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, which: String) -> WorkflowResult<String> {
        let timeouts =
            |stc: u64| ActivityOptions::with_start_to_close_timeout(Duration::from_secs(stc)).retry_policy(retry(3));
        let out = match which.as_str() {
            "flaky" => ctx.execute_activity(Acts::flaky, (), opts(5)).await.map(|n| n.to_string()),
            "always_fails" => ctx.execute_activity(Common::always_fails, (), opts(3)).await.map(|_| String::new()),
            "fatal" => ctx.execute_activity(Acts::fatal, (), opts(5)).await.map(|_| String::new()),
            "slow_then_fast" => {
                ctx.execute_activity(Acts::slow_then_fast, (), timeouts(1).build()).await.map(|n| n.to_string())
            }
            _ => ctx
                .execute_activity(Acts::heartbeater, (), timeouts(10).heartbeat_timeout(Duration::from_secs(1)).build())
                .await
                .map(|n| n.to_string()),
        };
        Ok(out.unwrap_or_else(|e| format!("failed: {e}")))
    }
}

fn worker_options(queue: &str, log: &CallLog) -> WorkerOptions {
    support::worker!(
        queue,
        activities: [Acts(log.clone()), Common(log.clone())],
        workflows: [Hello, Pipeline, TransferMoney, RunOne],
    )
}

/// Runs one workflow to its result on a fresh server and worker; returns the result and the
/// activity calls it made.
async fn run_to_result<W>(workflow: W, input: W::Input) -> (W::Output, Vec<String>)
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    run_on_fresh_server(worker_options, workflow, input).await
}

async fn run_one(which: &str) -> (String, Vec<String>) {
    run_to_result(RunOne::run, which.to_string()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_world() {
    let (result, calls) = run_to_result(Hello::run, "tempora".to_string()).await;
    assert_eq!(result, "Hello, tempora!");
    assert_eq!(calls, vec!["greet:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_activities_feed_each_other() {
    let (result, calls) = run_to_result(Pipeline::run, 4).await;
    assert_eq!(result, (4 + 1) * 2 + 1);
    assert_eq!(calls, vec!["add_one:1", "double:1", "add_one:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_saga_compensates_in_reverse_order() {
    let (result, calls) = run_to_result(TransferMoney::run, 100).await;
    assert_eq!(result, "compensated");
    assert_eq!(
        calls,
        vec!["withdraw:1", "deposit:1", "fail:1", "fail:2", "fail:3", "undo_deposit:1", "undo_withdraw:1"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_then_success_sees_attempts_1_2_3() {
    let (result, calls) = run_one("flaky").await;
    assert_eq!(result, "3");
    assert_eq!(calls, vec!["flaky:1", "flaky:2", "flaky:3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn maximum_attempts_exhausted_fails_the_activity() {
    let (result, calls) = run_one("always_fails").await;
    assert!(result.starts_with("failed"), "{result}");
    assert_eq!(calls, vec!["always_fails:1", "always_fails:2", "always_fails:3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_retryable_error_type_runs_once() {
    let (result, calls) = run_one("fatal").await;
    assert!(result.starts_with("failed"), "{result}");
    assert_eq!(calls, vec!["fatal:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn start_to_close_timeout_then_successful_retry() {
    let (result, calls) = run_one("slow_then_fast").await;
    assert_eq!(result, "2");
    assert_eq!(calls, vec!["slow_then_fast:1", "slow_then_fast:2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_timeout_carries_details_to_next_attempt() {
    let (result, calls) = run_one("heartbeater").await;
    assert_eq!(result, "5", "calls: {calls:?}");
    assert_eq!(calls, vec!["heartbeater:1", "heartbeater:2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_workflows_at_once() {
    let (server, client) = start_server(":memory:").await;
    let log = CallLog::default();
    let queue = unique("q");
    let results = with_worker(&client, worker_options(&queue, &log), async {
        let runs = (0..100).map(|i| run_workflow(&client, Pipeline::run, i, &queue, format!("many-{i}")));
        futures::future::join_all(runs).await
    })
    .await;
    let expected: Vec<i64> = (0..100).map(|i| (i + 1) * 2 + 1).collect();
    assert_eq!(results, expected);
    assert_eq!(log.entries().len(), 300);
    server.stop().await;
}

/// Runs Hello and TransferMoney on the server at `url`; returns their histories' event types.
async fn hello_and_saga_histories(url: &str) -> (Vec<String>, Vec<String>) {
    let client = client(url).await;
    let log = CallLog::default();
    let queue = unique("q");
    let (hello_id, saga_id) = (unique("hello"), unique("transfer"));
    with_worker(&client, worker_options(&queue, &log), async {
        run_workflow(&client, Hello::run, "tempora".to_string(), &queue, &hello_id).await;
        assert_eq!(run_workflow(&client, TransferMoney::run, 100, &queue, &saga_id).await, "compensated");
    })
    .await;
    (history_event_types(&client, &hello_id).await, history_event_types(&client, &saga_id).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn histories_match_the_real_temporal_server() {
    let Some((ours, theirs)) = on_tempora_and_reference(hello_and_saga_histories).await else { return };
    assert_eq!(ours.0, theirs.0, "hello world history");
    assert_eq!(ours.1, theirs.1, "saga history");
    eprintln!("hello world: {} events, saga: {} events, identical types on both servers", ours.0.len(), ours.1.len());
}
