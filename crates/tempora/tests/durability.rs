//! Restarts: stop tempora mid-workflow, start a new one on the same SQLite file, and the
//! workflow finishes exactly as it would have.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::Client;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::RetryPolicy;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

use support::{client, describe, latest_result, start, temp_db, wait_for_event, wait_until, with_worker, OnDisk};

/// Counts calls of each step across workers and restarts.
#[derive(Default, Clone)]
struct Counts {
    first: Arc<AtomicU32>,
    second: Arc<AtomicU32>,
    flaky: Arc<AtomicU32>,
}

#[derive(Clone)]
struct FirstStep(Counts);

#[activities]
impl FirstStep {
    #[activity]
    async fn first(self: Arc<Self>, _ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.0.first.fetch_add(1, Ordering::SeqCst);
        Ok(n + 1)
    }

    /// Fails its first attempt (then waits out a 2 s backoff), succeeds after.
    #[activity]
    async fn flaky(self: Arc<Self>, ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.0.flaky.fetch_add(1, Ordering::SeqCst);
        if ctx.info().attempt == 1 {
            return Err(anyhow::anyhow!("first attempt fails").into());
        }
        Ok(n * 10)
    }
}

/// `second` alone, for a worker of its own.
#[derive(Clone)]
struct SecondStep {
    counts: Counts,
}

#[activities]
impl SecondStep {
    #[activity]
    async fn second(self: Arc<Self>, _ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.counts.second.fetch_add(1, Ordering::SeqCst);
        Ok(n * 2)
    }
}

/// `first` on the workflow's queue, then `second` on queue `"{queue}-second"`, so a worker
/// without `second` leaves the run waiting between the two activities.
#[workflow]
#[derive(Default)]
struct TwoQueues;

#[workflow_methods]
impl TwoQueues {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, input: (String, i64)) -> WorkflowResult<i64> {
        let (queue, n) = input;
        let options = || ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10));
        let a = ctx.execute_activity(FirstStep::first, n, options().build()).await?;
        let b = ctx
            .execute_activity(SecondStep::second, a, options().task_queue(format!("{queue}-second")).build())
            .await?;
        Ok(b)
    }
}

#[workflow]
#[derive(Default)]
struct RetryAcrossRestart;

#[workflow_methods]
impl RetryAcrossRestart {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, n: i64) -> WorkflowResult<i64> {
        let retry = RetryPolicy {
            initial_interval: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
            backoff_coefficient: 2.0,
            maximum_interval: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
            maximum_attempts: 3,
            non_retryable_error_types: vec![],
        };
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).retry_policy(retry).build();
        Ok(ctx.execute_activity(FirstStep::flaky, n, options).await?)
    }
}

/// Sleeps on a durable timer.
#[workflow]
#[derive(Default)]
struct Nap;

#[workflow_methods]
impl Nap {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, ms: u64) -> WorkflowResult<String> {
        ctx.timer(Duration::from_millis(ms)).await;
        Ok("woke".to_string())
    }
}

fn workflow_worker(queue: &str, counts: &Counts) -> WorkerOptions {
    support::worker!(queue, activities: [FirstStep(counts.clone())], workflows: [TwoQueues, RetryAcrossRestart, Nap])
}

/// A worker for `second` alone, on queue `"{queue}-second"`.
fn second_worker(queue: &str, counts: &Counts) -> WorkerOptions {
    support::worker!(format!("{queue}-second"), activities: [SecondStep { counts: counts.clone() }], workflows: [])
}

async fn pending_activities(client: &Client, workflow_id: &str) -> Vec<String> {
    let described = describe(client, workflow_id).await;
    described.pending_activities.into_iter().map(|a| a.activity_type.unwrap_or_default().name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_between_activities_resumes_the_workflow() {
    let (disk, server, c) = OnDisk::start("two-steps").await;
    let counts = Counts::default();
    with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        start(&c, TwoQueues::run, (disk.queue.clone(), 4), &disk.queue, &disk.workflow_id).await;
        wait_until("the run waits for `second`", async || {
            let pending = pending_activities(&c, &disk.workflow_id).await;
            pending.len() == 1 && pending[0].ends_with("second")
        })
        .await;
    })
    .await;
    server.stop().await;
    assert_eq!(counts.first.load(Ordering::SeqCst), 1);

    let (server, c) = disk.serve().await;
    let result = with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        with_worker(&c, second_worker(&disk.queue, &counts), latest_result::<TwoQueues>(&c, &disk.workflow_id)).await
    })
    .await;
    server.stop().await;
    assert_eq!(result, (4 + 1) * 2);
    assert_eq!(counts.first.load(Ordering::SeqCst), 1, "the first activity is not run again");
    assert_eq!(counts.second.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_during_retry_backoff_keeps_the_retry() {
    let (disk, server, c) = OnDisk::start("retry").await;
    let counts = Counts::default();
    with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        start(&c, RetryAcrossRestart::run, 7, &disk.queue, &disk.workflow_id).await;
        let flaky = counts.flaky.clone();
        wait_until("attempt 1 has run", async || flaky.load(Ordering::SeqCst) == 1).await;
    })
    .await;
    // Attempt 1 failed; attempt 2 waits out its 2 s backoff while tempora is down.
    server.stop().await;

    let (server, c) = disk.serve().await;
    let result = with_worker(
        &c,
        workflow_worker(&disk.queue, &counts),
        latest_result::<RetryAcrossRestart>(&c, &disk.workflow_id),
    )
    .await;
    server.stop().await;
    assert_eq!(result, 70);
    assert_eq!(counts.flaky.load(Ordering::SeqCst), 2, "one failed attempt and one success, no more");
}

/// One server per database: SQLite's file lock, PostgreSQL's server lock (which names the
/// session holding it).
#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_database_is_refused() {
    let (_dir, db) = temp_db();
    let first = TestServer::start(&db).await;
    let second = TestServer::try_start(&db).await;
    match second {
        Err(message) => {
            assert!(message.contains("in use by another tempora server"), "{message}");
            if tempora::testing::is_postgres() {
                assert!(message.contains(&format!("held by tempora pid {}", std::process::id())), "{message}");
            }
        }
        Ok(_) => panic!("a second server started on a database in use"),
    }
    first.stop().await;
    // Once the first has stopped, the database can be opened again.
    TestServer::start(&db).await.stop().await;
}

/// Runs `body` while a worker polls, then abandons the worker without stopping it, as when its
/// process dies with the server. A graceful stop would wait: tempora advertises
/// `worker_poll_complete_on_shutdown`, so an SDK worker leaves its polls to the server at
/// shutdown, and this worker's server is gone (its polls retry until one answers there).
async fn with_worker_abandoned<T>(c: &Client, options: WorkerOptions, body: impl std::future::Future<Output = T>) -> T {
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let mut worker = temporalio_sdk::Worker::new(&runtime, c.clone(), options).expect("worker");
    let run = worker.run();
    tokio::select! {
        out = tokio::time::timeout(Duration::from_secs(60), body) => out.expect("test body timed out"),
        ran = run => panic!("the worker stopped by itself: {:?}", ran.err()),
    }
}

/// The `tempora` binary as a child process, so a test can SIGKILL it.
use support::process::ServerProcess;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_activities_loses_nothing() {
    let disk = OnDisk::new("killed");
    let counts = Counts::default();

    let server = ServerProcess::start(&disk.db, &[]);
    let c = client(&server.url).await;
    with_worker_abandoned(&c, workflow_worker(&disk.queue, &counts), async {
        start(&c, TwoQueues::run, (disk.queue.clone(), 20), &disk.queue, &disk.workflow_id).await;
        // Between the activities: `first` done, `second` waiting for its worker (a kill while
        // `first` runs would rightly run it again after its start-to-close timeout).
        let between = async || {
            let pending = pending_activities(&c, &disk.workflow_id).await;
            pending.len() == 1 && pending[0].ends_with("second")
        };
        wait_until("the second activity is pending", between).await;
        server.kill();
    })
    .await;

    let server = ServerProcess::start(&disk.db, &[]);
    let c = client(&server.url).await;
    let result = with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        with_worker(&c, second_worker(&disk.queue, &counts), latest_result::<TwoQueues>(&c, &disk.workflow_id)).await
    })
    .await;
    server.kill();
    assert_eq!(result, 42);
    assert_eq!(counts.first.load(Ordering::SeqCst), 1);
    assert_eq!(counts.second.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_survives_a_server_restart_and_fires_on_time() {
    let started = std::time::Instant::now();
    let (disk, server, c) = OnDisk::start("nap").await;
    let counts = Counts::default();
    with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        start(&c, Nap::run, 3000, &disk.queue, &disk.workflow_id).await;
        wait_for_event(&c, &disk.workflow_id, "EVENT_TYPE_TIMER_STARTED").await;
    })
    .await;
    server.stop().await;

    let (server, c) = disk.serve().await;
    let result =
        with_worker(&c, workflow_worker(&disk.queue, &counts), latest_result::<Nap>(&c, &disk.workflow_id)).await;
    let took = started.elapsed();
    server.stop().await;
    assert_eq!(result, "woke");
    // The timer kept its original deadline: not lost, not restarted from zero.
    assert!(took >= Duration::from_millis(3000) && took < Duration::from_millis(5500), "took {took:?}");
}

/// Issue 16's "a node holds only what it works on": a restart reads no run (start-up does not
/// grow with the open runs), yet every sleeping run's timer fires at its original deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_loads_no_run_and_every_timer_still_fires_on_time() {
    let started = std::time::Instant::now();
    let (disk, server, c) = OnDisk::start("naps").await;
    let counts = Counts::default();
    let ids: Vec<String> = (0..20).map(|i| format!("{}-{i}", disk.workflow_id)).collect();
    with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        for id in &ids {
            start(&c, Nap::run, 4000, &disk.queue, id).await;
        }
        for id in &ids {
            wait_for_event(&c, id, "EVENT_TYPE_TIMER_STARTED").await;
        }
    })
    .await;
    server.stop().await;

    let (server, c) = disk.serve().await;
    assert_eq!(server.cached_runs(), 0, "a restart loaded runs");
    // Reading one run loads that run only.
    assert_eq!(describe(&c, &ids[0]).await.pending_activities.len(), 0);
    assert_eq!(server.cached_runs(), 1);
    let results = with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        let mut results = Vec::new();
        for id in &ids {
            results.push(latest_result::<Nap>(&c, id).await);
        }
        results
    })
    .await;
    let took = started.elapsed();
    server.stop().await;
    assert!(results.iter().all(|r| r == "woke"), "{results:?}");
    assert!(took >= Duration::from_millis(4000) && took < Duration::from_millis(9000), "took {took:?}");
}

/// With no room in the run cache, every request reads its run from the store: workflows of
/// activities on two queues, a retry after a backoff and a timer still end as they would.
#[tokio::test(flavor = "multi_thread")]
async fn runs_work_when_every_idle_run_is_evicted() {
    let disk = OnDisk::new("no-cache");
    let server = TestServer::start_with_run_cache(&disk.db, 0).await;
    let c = client(&server.url()).await;
    let counts = Counts::default();
    let two = format!("{}-two", disk.workflow_id);
    let retry = format!("{}-retry", disk.workflow_id);
    let nap = format!("{}-nap", disk.workflow_id);
    let (a, b, n) = with_worker(&c, workflow_worker(&disk.queue, &counts), async {
        start(&c, TwoQueues::run, (disk.queue.clone(), 4), &disk.queue, &two).await;
        start(&c, RetryAcrossRestart::run, 7, &disk.queue, &retry).await;
        start(&c, Nap::run, 500, &disk.queue, &nap).await;
        with_worker(&c, second_worker(&disk.queue, &counts), async {
            let a = latest_result::<TwoQueues>(&c, &two).await;
            let b = latest_result::<RetryAcrossRestart>(&c, &retry).await;
            let n = latest_result::<Nap>(&c, &nap).await;
            (a, b, n)
        })
        .await
    })
    .await;
    assert_eq!((a, b, n.as_str()), (10, 70, "woke"));
    assert_eq!(server.cached_runs(), 0);
    server.stop().await;
}
