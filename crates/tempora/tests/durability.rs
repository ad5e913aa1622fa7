//! Restarts: stop tempora mid-workflow, start a new one on the same SQLite file, and the
//! workflow finishes exactly as it would have.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::{RetryPolicy, WorkflowExecution};
use temporalio_protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionRequest;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

use support::{client, history_event_types, unique, with_worker};

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

#[derive(Clone)]
struct SecondStep(Counts);

#[activities]
impl SecondStep {
    #[activity]
    async fn second(self: Arc<Self>, _ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.0.second.fetch_add(1, Ordering::SeqCst);
        Ok(n * 2)
    }
}

/// `first` on the workflow's queue, then `second` on queue `"{queue}-second"`, so a worker
/// without `second` leaves the run waiting between the two activities.
#[workflow]
#[derive(Default)]
struct TwoSteps;

#[workflow_methods]
impl TwoSteps {
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
    WorkerOptions::new(queue)
        .register_activities(FirstStep(counts.clone()))
        .register_workflow::<TwoSteps>()
        .unwrap()
        .register_workflow::<RetryAcrossRestart>()
        .unwrap()
        .register_workflow::<Nap>()
        .unwrap()
        .build()
}

async fn pending_activities(client: &Client, workflow_id: &str) -> Vec<String> {
    let mut service = client.connection().workflow_service();
    let request = DescribeWorkflowExecutionRequest {
        namespace: "default".into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
    };
    let described = service.describe_workflow_execution(tonic::Request::new(request)).await.unwrap().into_inner();
    described.pending_activities.into_iter().map(|a| a.activity_type.unwrap_or_default().name).collect()
}

async fn wait_until(mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_between_activities_resumes_the_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tempora.db");
    let db = db.to_str().unwrap();
    let counts = Counts::default();
    let queue = unique("q");
    let workflow_id = unique("two-steps");

    let server = TestServer::start(db).await;
    let c = client(&server.url()).await;
    with_worker(&c, workflow_worker(&queue, &counts), async {
        c.start_workflow(TwoSteps::run, (queue.clone(), 4), WorkflowStartOptions::new(&queue, &workflow_id).build())
            .await
            .unwrap();
        wait_until(async || {
            let pending = pending_activities(&c, &workflow_id).await;
            pending.len() == 1 && pending[0].ends_with("second")
        })
        .await;
    })
    .await;
    server.stop().await;
    assert_eq!(counts.first.load(Ordering::SeqCst), 1);

    let server = TestServer::start(db).await;
    let c = client(&server.url()).await;
    let second_queue = format!("{queue}-second");
    let second_worker = WorkerOptions::new(&second_queue).register_activities(SecondStep(counts.clone())).build();
    let result = with_worker(&c, workflow_worker(&queue, &counts), async {
        with_worker(&c, second_worker, async {
            let handle = c.get_workflow_handle::<TwoSteps>(&workflow_id);
            handle.get_result(WorkflowGetResultOptions::default()).await.unwrap()
        })
        .await
    })
    .await;
    server.stop().await;
    assert_eq!(result, (4 + 1) * 2);
    assert_eq!(counts.first.load(Ordering::SeqCst), 1, "the first activity is not run again");
    assert_eq!(counts.second.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_during_retry_backoff_keeps_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tempora.db");
    let db = db.to_str().unwrap();
    let counts = Counts::default();
    let queue = unique("q");
    let workflow_id = unique("retry");

    let server = TestServer::start(db).await;
    let c = client(&server.url()).await;
    with_worker(&c, workflow_worker(&queue, &counts), async {
        c.start_workflow(RetryAcrossRestart::run, 7, WorkflowStartOptions::new(&queue, &workflow_id).build())
            .await
            .unwrap();
        let flaky = counts.flaky.clone();
        wait_until(async || flaky.load(Ordering::SeqCst) == 1).await;
    })
    .await;
    // Attempt 1 failed; attempt 2 waits out its 2 s backoff while tempora is down.
    server.stop().await;

    let server = TestServer::start(db).await;
    let c = client(&server.url()).await;
    let result = with_worker(&c, workflow_worker(&queue, &counts), async {
        c.get_workflow_handle::<RetryAcrossRestart>(&workflow_id)
            .get_result(WorkflowGetResultOptions::default())
            .await
            .unwrap()
    })
    .await;
    server.stop().await;
    assert_eq!(result, 70);
    assert_eq!(counts.flaky.load(Ordering::SeqCst), 2, "one failed attempt and one success, no more");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_file_is_refused() {
    if tempora::testing::is_postgres() {
        eprintln!("notice: the file lock is SQLite's; skipped on PostgreSQL");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tempora.db");
    let db = db.to_str().unwrap();
    let first = TestServer::start(db).await;
    let second = TestServer::try_start(db).await;
    match second {
        Err(message) => assert!(message.contains("in use by another tempora server"), "{message}"),
        Ok(_) => panic!("a second server started on a file in use"),
    }
    first.stop().await;
    // Once the first has stopped, the file can be opened again.
    TestServer::start(db).await.stop().await;
}

/// The `tempora` binary as a child process, so a test can SIGKILL it.
struct ServerProcess {
    child: std::process::Child,
    url: String,
}

impl ServerProcess {
    fn start(db: &str) -> ServerProcess {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tempora"))
            .args(["server", "start", "--db", db, "--port", &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn tempora");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "tempora did not start: {line}");
        ServerProcess { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_activities_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tempora.db");
    let db = db.to_str().unwrap();
    let counts = Counts::default();
    let queue = unique("q");
    let workflow_id = unique("killed");

    let server = ServerProcess::start(db);
    let c = client(&server.url).await;
    with_worker(&c, workflow_worker(&queue, &counts), async {
        c.start_workflow(TwoSteps::run, (queue.clone(), 20), WorkflowStartOptions::new(&queue, &workflow_id).build())
            .await
            .unwrap();
        wait_until(async || pending_activities(&c, &workflow_id).await.len() == 1).await;
        server.kill();
    })
    .await;

    let server = ServerProcess::start(db);
    let c = client(&server.url).await;
    let second_worker =
        WorkerOptions::new(format!("{queue}-second")).register_activities(SecondStep(counts.clone())).build();
    let result = with_worker(&c, workflow_worker(&queue, &counts), async {
        with_worker(&c, second_worker, async {
            c.get_workflow_handle::<TwoSteps>(&workflow_id)
                .get_result(WorkflowGetResultOptions::default())
                .await
                .unwrap()
        })
        .await
    })
    .await;
    server.kill();
    assert_eq!(result, 42);
    assert_eq!(counts.first.load(Ordering::SeqCst), 1);
    assert_eq!(counts.second.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_survives_a_server_restart_and_fires_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tempora.db");
    let db = db.to_str().unwrap();
    let counts = Counts::default();
    let queue = unique("q");
    let workflow_id = unique("nap");
    let started = std::time::Instant::now();

    let server = TestServer::start(db).await;
    let c = client(&server.url()).await;
    with_worker(&c, workflow_worker(&queue, &counts), async {
        c.start_workflow(Nap::run, 3000, WorkflowStartOptions::new(&queue, &workflow_id).build()).await.unwrap();
        wait_until(async || history_event_types(&c, &workflow_id).await.contains(&"EVENT_TYPE_TIMER_STARTED".into()))
            .await;
    })
    .await;
    server.stop().await;

    let server = TestServer::start(db).await;
    let c = client(&server.url()).await;
    let result = with_worker(&c, workflow_worker(&queue, &counts), async {
        c.get_workflow_handle::<Nap>(&workflow_id).get_result(WorkflowGetResultOptions::default()).await.unwrap()
    })
    .await;
    let took = started.elapsed();
    server.stop().await;
    assert_eq!(result, "woke");
    // The timer kept its original deadline: not lost, not restarted from zero.
    assert!(took >= Duration::from_millis(3000) && took < Duration::from_millis(5500), "took {took:?}");
}
