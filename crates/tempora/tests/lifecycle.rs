//! Workflow-level options through the official Rust SDK: the workflow retry policy, run and
//! execution timeouts, and cron schedules.

mod support;

use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{Client, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::RetryPolicy;
use temporalio_protos::temporal::api::enums::v1::{ContinueAsNewInitiator, RetryState};
use temporalio_protos::temporal::api::history::v1::{history_event::Attributes, HistoryEvent};
use temporalio_sdk::{ApplicationFailure, WorkerOptions, WorkflowContext, WorkflowResult};

use support::{client, execution, get_result, history, start, start_server, terminate, unique, with_worker};

/// Fails until its `succeed_on` attempt.
#[workflow]
#[derive(Default)]
struct Flaky;

#[workflow_methods]
impl Flaky {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, succeed_on: u32) -> WorkflowResult<u32> {
        let attempt = ctx.info().attempt();
        if attempt < succeed_on {
            return Err(ApplicationFailure::new(format!("attempt {attempt} fails")).into());
        }
        Ok(attempt)
    }
}

/// Sleeps on a durable timer.
#[workflow]
#[derive(Default)]
struct Sleeper;

#[workflow_methods]
impl Sleeper {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, secs: u64) -> WorkflowResult<()> {
        ctx.timer(Duration::from_secs(secs)).await;
        Ok(())
    }
}

/// Ticks on a short timer until the server suggests continue-as-new (or forever).
#[workflow]
#[derive(Default)]
struct Ticker;

#[workflow_methods]
impl Ticker {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, stop_when_suggested: bool) -> WorkflowResult<u32> {
        let mut ticks = 0;
        while !(stop_when_suggested && ctx.continue_as_new_suggested()) {
            ctx.timer(Duration::from_millis(10)).await;
            ticks += 1;
        }
        Ok(ticks)
    }
}

/// Returns a result of `bytes` bytes.
#[workflow]
#[derive(Default)]
struct Big;

#[workflow_methods]
impl Big {
    #[run]
    async fn run(_ctx: &mut WorkflowContext<Self>, bytes: usize) -> WorkflowResult<String> {
        Ok("x".repeat(bytes))
    }
}

fn worker_options(queue: &str) -> WorkerOptions {
    support::worker!(queue, activities: [], workflows: [Flaky, Sleeper, Ticker, Big])
}

fn terminate_reason(events: &[HistoryEvent]) -> String {
    match events.last().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => a.reason,
        other => panic!("the run must end terminated: {other:?}"),
    }
}

fn retry(maximum_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Some(prost_types::Duration { seconds: 0, nanos: 100_000_000 }),
        backoff_coefficient: 1.0,
        maximum_attempts,
        ..Default::default()
    }
}

fn started(
    events: &[HistoryEvent],
) -> temporalio_protos::temporal::api::history::v1::WorkflowExecutionStartedEventAttributes {
    match events.first().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a,
        other => panic!("the first event is not WorkflowExecutionStarted: {other:?}"),
    }
}

/// A fresh in-memory server, a client of it, a task queue for this suite's worker and the test's
/// (first) workflow id, named after `id_prefix`.
async fn setup(id_prefix: &str) -> (TestServer, Client, String, String) {
    let (server, client) = start_server(":memory:").await;
    (server, client, unique("lifecycle"), unique(id_prefix))
}

#[tokio::test]
async fn a_failing_workflow_is_retried_by_its_retry_policy() {
    let (_server, client, queue, id) = setup("flaky").await;
    with_worker(&client, worker_options(&queue), async {
        let options = WorkflowStartOptions::new(&queue, &id).retry_policy(retry(5)).build();
        let handle = client.start_workflow(Flaky::run, 3, options).await.unwrap();
        let first_run = handle.info().run_id.clone().unwrap();
        // get_result follows the retry chain to the run that succeeded.
        assert_eq!(get_result(&handle).await.unwrap(), 3);
        let first = history(&client, &id, &first_run).await;
        match first.last().and_then(|e| e.attributes.clone()) {
            Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                assert_eq!(a.retry_state, RetryState::InProgress as i32);
                assert!(!a.new_execution_run_id.is_empty());
                let second = started(&history(&client, &id, &a.new_execution_run_id).await);
                assert_eq!(second.attempt, 2);
                assert_eq!(second.initiator, ContinueAsNewInitiator::Retry as i32);
                assert_eq!(second.first_execution_run_id, first_run);
                assert!(second.first_workflow_task_backoff.is_some());
            }
            other => panic!("the first run must fail with a retry: {other:?}"),
        }

        // With two attempts allowed, the second failure is final.
        let id = unique("flaky");
        let options = WorkflowStartOptions::new(&queue, &id).retry_policy(retry(2)).build();
        let handle = client.start_workflow(Flaky::run, 10, options).await.unwrap();
        let result = get_result(&handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::Failed(_))), "{result:?}");
        let last = history(&client, &id, "").await;
        match last.last().and_then(|e| e.attributes.clone()) {
            Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                assert_eq!(a.retry_state, RetryState::MaximumAttemptsReached as i32);
                assert!(a.new_execution_run_id.is_empty());
            }
            other => panic!("the last run must fail for good: {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn run_and_execution_timeouts_time_the_workflow_out() {
    let (_server, client, queue, id) = setup("sleeper").await;
    with_worker(&client, worker_options(&queue), async {
        let options = WorkflowStartOptions::new(&queue, &id).run_timeout(Duration::from_secs(1)).build();
        let handle = client.start_workflow(Sleeper::run, 3600, options).await.unwrap();
        let result = get_result(&handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::TimedOut)), "{result:?}");

        // The execution timeout spans retries: a retried run still ends when it ends.
        let id = unique("sleeper");
        let options = WorkflowStartOptions::new(&queue, &id)
            .execution_timeout(Duration::from_secs(2))
            .run_timeout(Duration::from_millis(700))
            .retry_policy(retry(0))
            .build();
        let started_at = std::time::Instant::now();
        let handle = client.start_workflow(Sleeper::run, 3600, options).await.unwrap();
        let result = get_result(&handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::TimedOut)), "{result:?}");
        let took = started_at.elapsed();
        assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(5), "took {took:?}");
    })
    .await;
}

#[tokio::test]
async fn a_cron_workflow_runs_on_its_schedule() {
    let (_server, client, queue, id) = setup("cron").await;
    with_worker(&client, worker_options(&queue), async {
        let options = WorkflowStartOptions::new(&queue, &id).cron_schedule("@every 1s".to_string()).build();
        let handle = client.start_workflow(Flaky::run, 0, options).await.unwrap();
        let first_run = handle.info().run_id.clone().unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let first = history(&client, &id, &first_run).await;
        assert!(started(&first).first_workflow_task_backoff.is_some(), "the first run waits for the schedule");
        let next = match first.last().and_then(|e| e.attributes.clone()) {
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => a.new_execution_run_id,
            other => panic!("the first run must complete into the next: {other:?}"),
        };
        let second = started(&history(&client, &id, &next).await);
        assert_eq!(second.initiator, ContinueAsNewInitiator::CronSchedule as i32);
        assert_eq!(second.continued_execution_run_id, first_run);
        assert!(second.last_completion_result.is_some(), "the next run gets the last result");
        terminate(&client.get_workflow_handle::<Flaky>(id.clone()), "enough").await;
    })
    .await;
    // Invalid schedules are refused at start.
    let options = WorkflowStartOptions::new(&queue, unique("cron")).cron_schedule("every day".to_string()).build();
    let refused = client.start_workflow(Flaky::run, 0, options).await;
    assert!(refused.is_err(), "an invalid cron schedule must be refused");
}

#[tokio::test]
async fn history_limits_suggest_continue_as_new_then_terminate() {
    let limits = tempora::engine::Limits {
        history_count_max: 60,
        history_count_suggest_continue_as_new: 20,
        ..Default::default()
    };
    let server = TestServer::start_with_limits(":memory:", limits).await;
    let client = client(&server.url()).await;
    let queue = unique("lifecycle");
    with_worker(&client, worker_options(&queue), async {
        let handle = start(&client, Ticker::run, true, &queue, unique("tick")).await;
        let ticks = get_result(&handle).await.unwrap();
        assert!((2..=5).contains(&ticks), "continue-as-new is suggested from event 20 on, after {ticks} ticks");

        let id = unique("tick");
        let result = get_result(&start(&client, Ticker::run, false, &queue, &id).await).await;
        assert!(matches!(result, Err(WorkflowGetResultError::Terminated { .. })), "{result:?}");
        let events = history(&client, &id, "").await;
        assert_eq!(terminate_reason(&events), "Workflow history count exceeds limit.");
        assert!(events.len() >= 60 && events.len() < 70, "{} events", events.len());
    })
    .await;
}

#[tokio::test]
async fn a_result_over_the_namespace_blob_limit_fails_the_workflow_task_and_the_run_stays_open() {
    use temporalio_protos::temporal::api::enums::v1::WorkflowTaskFailedCause;
    // The namespace advertises its 2 MiB blob limit, so the SDK checks the result itself and
    // fails the task with PAYLOADS_TOO_LARGE instead of sending it (as against Temporal): the
    // run stays open for a fixed worker to complete. (A worker that sends it anyway has its
    // run terminated by the server: `errors.rs`.)
    let (_server, client, queue, id) = setup("big").await;
    let handle = with_worker(&client, worker_options(&queue), async {
        let handle = start(&client, Big::run, 3 * 1024 * 1024, &queue, &id).await;
        for _ in 0..100 {
            let events = history(&client, &id, "").await;
            let too_large = events.iter().any(|e| {
                matches!(&e.attributes, Some(Attributes::WorkflowTaskFailedEventAttributes(a))
                    if a.cause == WorkflowTaskFailedCause::PayloadsTooLarge as i32)
            });
            if too_large {
                return handle;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no workflow task failed with PAYLOADS_TOO_LARGE: {:?}", history(&client, &id, "").await);
    })
    .await;
    let events = history(&client, &id, "").await;
    assert!(!events.iter().any(is_close), "the run stays open");
    terminate(&handle, "cleanup").await;
}

fn is_close(e: &HistoryEvent) -> bool {
    matches!(
        e.attributes,
        Some(
            Attributes::WorkflowExecutionCompletedEventAttributes(_)
                | Attributes::WorkflowExecutionFailedEventAttributes(_)
                | Attributes::WorkflowExecutionTerminatedEventAttributes(_)
        )
    )
}

#[tokio::test]
async fn a_deleted_workflow_is_gone_and_its_id_can_be_reused() {
    use temporalio_protos::temporal::api::workflowservice::v1::{
        DeleteWorkflowExecutionRequest, DescribeWorkflowExecutionRequest, ResetStickyTaskQueueRequest,
    };
    let (_server, client, queue, id) = setup("delete").await;
    let mut service = client.connection().workflow_service();
    start(&client, Sleeper::run, 3600, &queue, &id).await;
    let reset = ResetStickyTaskQueueRequest { namespace: "default".into(), execution: execution(&id, "") };
    service.reset_sticky_task_queue(tonic::Request::new(reset)).await.expect("reset sticky");
    let delete = DeleteWorkflowExecutionRequest { namespace: "default".into(), workflow_execution: execution(&id, "") };
    service.delete_workflow_execution(tonic::Request::new(delete)).await.expect("delete");
    let describe = DescribeWorkflowExecutionRequest { namespace: "default".into(), execution: execution(&id, "") };
    let gone = service.describe_workflow_execution(tonic::Request::new(describe)).await;
    assert_eq!(gone.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound);
    let again = WorkflowStartOptions::new(&queue, &id).build();
    client.start_workflow(Sleeper::run, 3600, again).await.expect("the id is free again");
}
