//! The cluster: three tempora nodes on one PostgreSQL database, each serving the shards it
//! leases. Clients and workers connect to different nodes, and every call reaches the node
//! that serves it: the seed's saga (with retries and compensations), timers, signals, updates,
//! queries and child workflows whose parent and child live on different nodes. Then a node
//! leaves (gracefully) and the others take its shards over at once, and a node joins and takes
//! a share. Runs in the PostgreSQL pass only (`TEMPORA_TEST_BACKEND=postgres`).

mod scenarios;
mod support;

use std::sync::Arc;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::{Client, WorkflowExecuteUpdateOptions, WorkflowQueryOptions, WorkflowSignalOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::RetryPolicy;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

use scenarios::{Acts, Child, Counter, Parent, Timers};
use support::{client, get_result, start, transfer, unique, wait_until, CallLog, Common};

/// A step of the saga that always fails (after its retries).
#[derive(Clone)]
struct Failing(CallLog);

#[activities]
impl Failing {
    #[activity]
    async fn confirm(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.record(&ctx, "confirm");
        Err(anyhow::anyhow!("the bank said no").into())
    }
}

/// The seed's money transfer: withdraw, deposit, a step that fails after three attempts, then
/// the compensations in reverse order.
#[workflow]
#[derive(Default)]
struct Transfer;

#[workflow_methods]
impl Transfer {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, amount: i64) -> WorkflowResult<String> {
        let options = || {
            let retry = RetryPolicy {
                initial_interval: Some(prost_types::Duration { seconds: 0, nanos: 100_000_000 }),
                backoff_coefficient: 2.0,
                maximum_interval: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                maximum_attempts: 3,
                non_retryable_error_types: vec![],
            };
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).retry_policy(retry).build()
        };
        match transfer(ctx, amount, options, Failing::confirm).await? {
            Ok(()) => Ok("transferred".into()),
            Err(_) => Ok("compensated".into()),
        }
    }
}

fn worker_options(queue: &str, log: &CallLog) -> WorkerOptions {
    support::worker!(
        queue,
        activities: [Acts(log.clone()), Common(log.clone()), Failing(log.clone())],
        workflows: [Transfer, Timers, Counter, Parent, Child],
    )
}

/// A fresh database with `n` nodes on it, once each holds a share of the shards.
async fn cluster(n: usize) -> Option<(String, Vec<TestServer>)> {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return None;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(TestServer::start_cluster_node(&db).await.expect("a cluster node starts"));
    }
    balanced(&nodes).await;
    Some((db, nodes))
}

/// Waits until every shard is held, by one node each, and every node holds some.
async fn balanced(nodes: &[TestServer]) {
    wait_until("every shard held, and spread over the nodes", async || {
        let held: Vec<usize> = nodes.iter().map(|n| n.held_shards()).collect();
        held.iter().sum::<usize>() == 256 && held.iter().all(|h| *h > 0)
    })
    .await;
}

/// Runs the mixed load with the client on `via` and a worker on each of `workers`.
async fn mixed_load(via: &Client, workers: &[Client], rounds: usize) {
    let queue = unique("cluster");
    let log = CallLog::default();
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).expect("runtime");
    let mut running = Vec::new();
    let mut stops = Vec::new();
    for client in workers {
        let mut worker =
            temporalio_sdk::Worker::new(&runtime, client.clone(), worker_options(&queue, &log)).expect("worker");
        stops.push(worker.shutdown_handle());
        running.push(async move { worker.run().await });
    }
    let body = async {
        let mut sagas = Vec::new();
        let mut counters = Vec::new();
        let mut parents = Vec::new();
        let mut timers = Vec::new();
        for i in 0..rounds {
            sagas.push(start(via, Transfer::run, 100, &queue, unique(&format!("saga-{i}"))).await);
            counters.push(start(via, Counter::run, 6, &queue, unique(&format!("counter-{i}"))).await);
            parents.push(start(via, Parent::run, format!("n{i}"), &queue, unique(&format!("parent-{i}"))).await);
            timers.push(start(via, Timers::run, 100, &queue, unique(&format!("timers-{i}"))).await);
        }
        for counter in &counters {
            for n in [1, 2] {
                counter.signal(Counter::add, n, WorkflowSignalOptions::default()).await.expect("signal");
            }
        }
        for counter in &counters {
            // An update and a query, answered by the worker through the run's node.
            let old = counter.execute_update(Counter::set, 3, WorkflowExecuteUpdateOptions::default()).await;
            assert_eq!(old.expect("update"), 3);
            let total = counter.query(Counter::total, (), WorkflowQueryOptions::default()).await.expect("query");
            assert_eq!(total, 3);
            counter.signal(Counter::add, 3, WorkflowSignalOptions::default()).await.expect("signal");
        }
        for saga in &sagas {
            assert_eq!(get_result(saga).await.expect("saga result"), "compensated");
        }
        for counter in &counters {
            assert_eq!(get_result(counter).await.expect("counter result"), "6 1,2,3");
        }
        for (i, parent) in parents.iter().enumerate() {
            assert_eq!(get_result(parent).await.expect("parent result"), format!("child said: child n{i}"));
        }
        for timer in &timers {
            assert_eq!(get_result(timer).await.expect("timers result"), "cancelled=true winner=activity");
        }
        for stop in &stops {
            stop();
        }
    };
    let run_all = futures::future::join_all(running);
    let (_, results) = tokio::time::timeout(Duration::from_secs(120), async { tokio::join!(body, run_all) })
        .await
        .expect("load finished");
    for result in results {
        result.expect("worker ran cleanly");
    }
    // Each saga ran its steps once each, its failing step three times, then undid in reverse.
    let entries = log.entries();
    let count = |name: &str| entries.iter().filter(|e| e.starts_with(name)).count();
    assert_eq!(count("withdraw:"), rounds, "{entries:?}");
    assert_eq!(count("deposit:"), rounds);
    assert_eq!(count("confirm:"), 3 * rounds);
    assert_eq!(count("undo_deposit:"), rounds);
    assert_eq!(count("undo_withdraw:"), rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_serve_every_call_wherever_it_arrives() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
    let Some((_db, nodes)) = cluster(3).await else { return };
    let clients = [client(&nodes[0].url()).await, client(&nodes[1].url()).await, client(&nodes[2].url()).await];
    // The client on one node, workers on the two others.
    mixed_load(&clients[0], &clients[1..], 6).await;
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaving_node_hands_its_shards_over_at_once_and_a_joining_node_takes_a_share() {
    let Some((db, mut nodes)) = cluster(3).await else { return };
    let leaving = nodes.pop().expect("three nodes");
    let began = std::time::Instant::now();
    leaving.stop().await;
    balanced(&nodes).await;
    let handover = began.elapsed();
    assert!(handover < Duration::from_secs(2), "graceful handover took {handover:?}");
    let clients = [client(&nodes[0].url()).await, client(&nodes[1].url()).await];
    mixed_load(&clients[0], &clients[1..], 3).await;
    nodes.push(TestServer::start_cluster_node(&db).await.expect("a node joins"));
    balanced(&nodes).await;
    let joined = client(&nodes[2].url()).await;
    mixed_load(&joined, &clients, 3).await;
    for node in nodes {
        node.stop().await;
    }
}
