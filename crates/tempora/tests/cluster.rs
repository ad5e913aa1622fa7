//! The cluster: tempora nodes on one PostgreSQL database, each serving the shards it leases.
//! Clients and workers connect to different nodes, and every call reaches the node that serves
//! it: the seed's saga (with retries and compensations), timers, signals, updates, queries and
//! child workflows whose parent and child live on different nodes. Membership: a node leaves
//! gracefully (handover under 2 s) and a fourth joins under load. Faults, with node processes:
//! SIGKILL (shards move within 15 s, timers and tasks resume), SIGSTOP past the leases then
//! SIGCONT, a node cut off from PostgreSQL (through a proxy the test cuts), a node the others
//! cannot reach while it still reaches PostgreSQL (its advertised address is a proxy), a
//! symmetric partition between nodes (network namespaces joined by a bridge; root only), and a
//! PostgreSQL restart (alone, with `TEMPORA_TEST_PG_RESTART=1`). Each ends checking every run: event ids
//! contiguous, one timer fired per timer, one completion. The registries (schedules, batch
//! jobs, Nexus endpoints, task queue configs) are kept by one node, reached through any, and
//! move with it. The store's fencing itself is tested in `store/conformance.rs`. Runs in the PostgreSQL pass only (`TEMPORA_TEST_BACKEND=postgres`).

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
async fn a_fourth_node_joining_under_load_takes_a_share_and_a_leaving_node_hands_its_shards_over_at_once() {
    let Some((db, mut nodes)) = cluster(3).await else { return };
    let clients = [client(&nodes[0].url()).await, client(&nodes[1].url()).await, client(&nodes[2].url()).await];
    // A fourth node joins while the load runs: shards move to it under the load's feet.
    let joining = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        TestServer::start_cluster_node(&db).await.expect("a node joins")
    };
    let ((), joined) = tokio::join!(mixed_load(&clients[0], &clients[1..], 4), joining);
    nodes.push(joined);
    balanced(&nodes).await;
    let fourth = client(&nodes[3].url()).await;
    mixed_load(&fourth, &clients, 3).await;
    // It leaves: the others hold its shards at once, not after its leases' TTL.
    let leaving = nodes.pop().expect("four nodes");
    let began = std::time::Instant::now();
    leaving.stop().await;
    balanced(&nodes).await;
    let handover = began.elapsed();
    assert!(handover < Duration::from_secs(2), "graceful handover took {handover:?}");
    mixed_load(&clients[2], &clients[..2], 3).await;
    for node in nodes {
        node.stop().await;
    }
}

/// Sleeps, then runs one activity.
#[workflow]
#[derive(Default)]
struct Nap;

#[workflow_methods]
impl Nap {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, ms: u64) -> WorkflowResult<String> {
        ctx.timer(Duration::from_millis(ms)).await;
        Ok(ctx.execute_activity(Acts::echo, "woke".to_string(), scenarios::quick()).await?)
    }
}

/// A cluster node as a child process, so a test can SIGKILL or SIGSTOP it.
/// A cluster node as a process.
type NodeProcess = support::process::ServerProcess;

fn start_node(db: &str) -> NodeProcess {
    NodeProcess::start(db, &["--cluster"])
}

/// The fault tests' cluster: these nodes, once every one holds its share of the shards, and
/// their addresses.
async fn nodes_holding_shards(db: &str, nodes: Vec<NodeProcess>) -> (Vec<NodeProcess>, Vec<String>) {
    let addresses: Vec<String> = nodes.iter().map(|n| n.address()).collect();
    held_by(db, &addresses).await;
    (nodes, addresses)
}

/// Shards each node holds, read from the database: (owner, live leases).
async fn owners(db: &str) -> Vec<(String, i64)> {
    let db = db.to_string();
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&db, postgres::NoTls).expect("connect");
        c.query(
            "SELECT owner, count(*) FROM shard_leases WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner",
            &[],
        )
        .expect("leases")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    })
    .await
    .expect("read leases")
}

/// Waits until the nodes at `addresses` hold every shard between them, each some (up to 30 s:
/// a dead node's leases lapse after their 10 s TTL).
async fn held_by(db: &str, addresses: &[String]) {
    let held = support::poll(
        600,
        Duration::from_millis(50),
        async || {
            let owners = owners(db).await;
            owners.iter().map(|(_, n)| n).sum::<i64>() == 256
                && owners.len() == addresses.len()
                && owners.iter().all(|(o, _)| addresses.contains(o))
        },
        |held| *held,
    )
    .await;
    assert!(held, "the shards did not settle on {addresses:?} within 30 s: {:?}", owners(db).await);
}

/// Every run's history: event ids 1, 2, 3…, and one timer fired per timer started.
async fn check_histories(client: &Client, ids: &[String]) {
    for id in ids {
        let events = support::history(client, id, "").await;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.event_id, i as i64 + 1, "{id}: event ids not contiguous");
        }
        let types = support::event_types(&events);
        assert_eq!(support::count_events(&types, "EVENT_TYPE_TIMER_FIRED"), 1, "{id}: {types:?}");
        assert_eq!(support::count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"), 1, "{id}: {types:?}");
    }
}

/// Starts `n` naps of `ms` through `client`; their workflow ids.
async fn start_naps(client: &Client, queue: &str, n: usize, ms: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = unique(&format!("nap-{i}"));
        start(client, Nap::run, ms, queue, id.clone()).await;
        ids.push(id);
    }
    ids
}

/// One DescribeWorkflowExecution over a plain gRPC channel (no SDK retries).
async fn describe_once(url: &str, workflow_id: &str) -> Result<(), tonic::Status> {
    use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
    use temporalio_protos::temporal::api::workflowservice::v1::{
        workflow_service_client::WorkflowServiceClient, DescribeWorkflowExecutionRequest,
    };
    let mut service =
        WorkflowServiceClient::connect(url.to_string()).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let execution = Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() });
    let request = DescribeWorkflowExecutionRequest { namespace: "default".into(), execution };
    service.describe_workflow_execution(request).await.map(|_| ())
}

async fn wait_naps(client: &Client, ids: &[String]) {
    for id in ids {
        let result = support::latest_result::<Nap>(client, id).await;
        assert_eq!(result, "woke");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_shards_move_within_15_s_and_its_timers_and_tasks_resume() {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let (nodes, addresses) = nodes_holding_shards(&db, vec![start_node(&db), start_node(&db), start_node(&db)]).await;
    let (queue, log) = (unique("failover"), CallLog::default());
    let survivor = client(&nodes[0].url).await;
    let worker = client(&nodes[1].url).await;
    let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
    support::with_worker(&worker, options, async {
        // Naps whose timers fall due after the kill, on every node's shards.
        let ids = start_naps(&survivor, &queue, 24, 3_000).await;
        nodes[2].signal("-KILL");
        let killed = std::time::Instant::now();
        // Calls through a survivor, without a client's retries, for runs on every node: those
        // of the dead node's shards wait for their shards to move instead of failing.
        let described = futures::future::join_all(ids.iter().map(|id| describe_once(&nodes[0].url, id))).await;
        for (id, answer) in ids.iter().zip(&described) {
            assert!(answer.is_ok(), "describe {id} during the failover: {answer:?}");
        }
        held_by(&db, &addresses[..2]).await;
        let moved = killed.elapsed();
        wait_naps(&survivor, &ids).await;
        let resumed = killed.elapsed();
        eprintln!("failover: shards moved {moved:?} after the kill, every nap done {resumed:?} after");
        assert!(moved < Duration::from_secs(15), "shards moved {moved:?} after the kill");
        check_histories(&survivor, &ids).await;
        // New work on the two nodes left.
        let more = start_naps(&survivor, &queue, 6, 100).await;
        wait_naps(&survivor, &more).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_paused_past_its_leases_writes_nothing_when_it_wakes() {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let (nodes, addresses) = nodes_holding_shards(&db, vec![start_node(&db), start_node(&db), start_node(&db)]).await;
    let (queue, log) = (unique("paused"), CallLog::default());
    let via = client(&nodes[0].url).await;
    let worker = client(&nodes[1].url).await;
    let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
    support::with_worker(&worker, options, async {
        // The paused node holds timers due while it sleeps.
        let ids = start_naps(&via, &queue, 24, 2_000).await;
        nodes[2].signal("-STOP");
        held_by(&db, &addresses[..2]).await;
        wait_naps(&via, &ids).await;
        // It wakes with its old leases in memory and timers past due: its fence stops every
        // write, it learns it lost the shards, then rejoins and takes a share back.
        nodes[2].signal("-CONT");
        held_by(&db, &addresses).await;
        check_histories(&via, &ids).await;
        let more = start_naps(&via, &queue, 12, 500).await;
        wait_naps(&via, &more).await;
        check_histories(&via, &more).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_server_and_a_cluster_never_share_a_database() {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let node = TestServer::start_cluster_node(&db).await.expect("a cluster node starts");
    let single = TestServer::try_start(&db).await;
    let refused = single.err().expect("a single server on a cluster's database is refused");
    assert!(refused.contains("in use by another tempora server"), "{refused}");
    node.stop().await;
    let single = TestServer::try_start(&db).await.expect("a single server starts once the cluster left");
    let joining = TestServer::start_cluster_node(&db).await;
    let refused = joining.err().expect("a cluster node on a single server's database is refused");
    assert!(refused.contains("a single tempora (started without --cluster) serves it"), "{refused}");
    single.stop().await;
}

/// A TCP proxy to PostgreSQL that a test can cut (every connection dropped, new ones
/// refused) and restore: a node behind it is cut off from the database.
struct Proxy {
    port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        Self::start_on("127.0.0.1", target).await
    }

    /// `start`, listening on `ip` (`0.0.0.0`: on every address of the test's namespace).
    async fn start_on(ip: &str, target: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accepting = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy { port, open, cut }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `url` reaching PostgreSQL through 127.0.0.1:`port`.
fn through(url: &str, port: u16) -> String {
    through_at(url, "127.0.0.1", port)
}

/// `url` reaching PostgreSQL through `host`:`port`.
fn through_at(url: &str, host: &str, port: u16) -> String {
    let at = url.find('@').expect("a URL with a user");
    let rest = &url[at + 1..];
    let slash = rest.find('/').expect("a URL with a database");
    format!("{}{host}:{port}{}", &url[..at + 1], &rest[slash..])
}

/// PostgreSQL's `host:port` in a database URL.
fn postgres_host(url: &str) -> String {
    let rest = &url[url.find('@').expect("a URL with a user") + 1..];
    rest[..rest.find('/').expect("a URL with a database")].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_postgres_stops_serving_and_the_others_take_over() {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let proxy = Proxy::start(postgres_host(&db)).await;
    let nodes = vec![start_node(&db), start_node(&db), start_node(&through(&db, proxy.port))];
    let (nodes, addresses) = nodes_holding_shards(&db, nodes).await;
    let (queue, log) = (unique("cutoff"), CallLog::default());
    let via = client(&nodes[0].url).await;
    let worker = client(&nodes[1].url).await;
    let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
    support::with_worker(&worker, options, async {
        let ids = start_naps(&via, &queue, 24, 2_000).await;
        proxy.cut();
        held_by(&db, &addresses[..2]).await;
        wait_naps(&via, &ids).await;
        check_histories(&via, &ids).await;
        // Back in touch: it learns it lost its shards, and takes a share back.
        proxy.restore();
        held_by(&db, &addresses).await;
        let more = start_naps(&via, &queue, 12, 500).await;
        wait_naps(&via, &more).await;
        check_histories(&via, &more).await;
    })
    .await;
}

/// A partition between nodes that all still reach PostgreSQL: the others cannot reach C (its
/// advertised address is a proxy the test cuts; C's own calls to them still go through). Leases
/// do not depend on reachability, so C keeps its shards and nothing is served twice: calls for
/// C's runs through the others wait for it, then answer UNAVAILABLE (which SDKs retry), and once
/// the partition heals every run completes, each timer fired once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_the_others_cannot_reach_keeps_its_shards_and_its_runs_complete_once_it_heals() {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let port = support::process::free_port();
    let proxy = Proxy::start(format!("127.0.0.1:{port}")).await;
    let advertised = format!("127.0.0.1:{}", proxy.port);
    let c = NodeProcess::start_on(port, &db, &["--cluster", "--advertise", &advertised]);
    let (a, b) = (start_node(&db), start_node(&db));
    let addresses = vec![a.address(), b.address(), advertised.clone()];
    held_by(&db, &addresses).await;
    let (queue, log) = (unique("partition"), CallLog::default());
    let via = client(&a.url).await;
    let worker = client(&b.url).await;
    let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
    support::with_worker(&worker, options, async {
        let ids = start_naps(&via, &queue, 24, 3_000).await;
        proxy.cut();
        let cut = std::time::Instant::now();
        // Calls through A: those of C's shards cannot be delivered; they wait for the shard to
        // move (it does not: C is alive) and end UNAVAILABLE, never served elsewhere.
        let described = futures::future::join_all(ids.iter().map(|id| describe_once(&a.url, id))).await;
        let refused = described.iter().filter(|d| d.is_err()).count();
        for answer in &described {
            if let Err(status) = answer {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            }
        }
        assert!(refused > 0, "no run of the unreachable node's shards among {} naps", ids.len());
        assert!(cut.elapsed() < Duration::from_secs(30), "calls waited {:?}", cut.elapsed());
        a_waiting_poll_ends_when_its_worker_shuts_down(&db, &a.url, &advertised).await;
        // Past the lease TTL, C still holds its shards: it renews them in PostgreSQL.
        held_by(&db, &addresses).await;
        proxy.restore();
        wait_naps(&via, &ids).await;
        eprintln!(
            "partition: {refused} of {} describes refused while C was unreachable; every nap done {:?} after the cut",
            ids.len(),
            cut.elapsed()
        );
        check_histories(&via, &ids).await;
        // The worker stops now: polls B forwarded to C during the cut may still wait for C's
        // shards to move; its ShutdownWorker ends them (the SDK's debug build fails a shutdown
        // that waits over 5 s for a poll).
    })
    .await;
    drop(c);
}

/// A poll through `url` on a task queue whose home is the node at `unreachable` waits for that
/// node (or for its shards to move, which they do not while it renews its leases); its
/// worker's ShutdownWorker ends it at once with an empty answer, as it ends polls waiting in
/// matching, so a worker's shutdown is never held by a node it cannot reach.
async fn a_waiting_poll_ends_when_its_worker_shuts_down(db: &str, url: &str, unreachable: &str) {
    use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_protos::temporal::api::workflowservice::v1::{
        workflow_service_client::WorkflowServiceClient, PollWorkflowTaskQueueRequest, ShutdownWorkerRequest,
    };
    let held = shards_of(db, unreachable).await;
    let queue = (0..)
        .map(|i| unique(&format!("cut-off-queue-{i}")))
        .find(|q| held.contains(&tempora::testing::queue_shard("default", q)))
        .expect("a queue");
    let key = unique("worker-key");
    let mut service = WorkflowServiceClient::connect(url.to_string()).await.expect("connect");
    let poll = PollWorkflowTaskQueueRequest {
        namespace: "default".into(),
        task_queue: Some(TaskQueue { name: queue.clone(), ..Default::default() }),
        identity: "partition-test".into(),
        worker_instance_key: key.clone(),
        ..Default::default()
    };
    let mut poller = service.clone();
    let polling = tokio::spawn(async move { poller.poll_workflow_task_queue(poll).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!polling.is_finished(), "a poll on the unreachable node's queue answered at once: {:?}", polling.await);
    let shutdown = ShutdownWorkerRequest {
        namespace: "default".into(),
        task_queue: queue,
        identity: "partition-test".into(),
        worker_instance_key: key,
        ..Default::default()
    };
    service.shutdown_worker(shutdown).await.expect("ShutdownWorker");
    let answer = tokio::time::timeout(Duration::from_secs(3), polling)
        .await
        .expect("the poll did not end within 3 s of its worker's shutdown")
        .expect("poll task");
    let answer = answer.expect("an empty poll answer, not an error").into_inner();
    assert!(answer.task_token.is_empty(), "the poll was given a task");
}

/// The shards the node at `address` holds a live lease on.
async fn shards_of(db: &str, address: &str) -> Vec<u32> {
    let (db, address) = (db.to_string(), address.to_string());
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&db, postgres::NoTls).expect("connect");
        c.query("SELECT shard FROM shard_leases WHERE owner = $1 AND expires_at > now()", &[&address])
            .expect("leases")
            .iter()
            .map(|r| r.get::<_, i32>(0) as u32)
            .collect()
    })
    .await
    .expect("read leases")
}

/// A private network for a symmetric partition, in Linux network namespaces (root and
/// iproute2's `ip` needed). Node `i` runs in namespace `tempora-node{i}` with two links: an
/// uplink to the test's namespace (it is 10.213.{i+1}.2, the test's end 10.213.{i+1}.1: the
/// test's clients reach it there, it reaches PostgreSQL through a proxy there) and a port on a
/// bridge over which the nodes call each other (10.213.100.{10+i}, advertised). Cutting a
/// node's bridge port drops every packet between it and the other nodes, both ways and
/// silently, as a switch failure would, while it still reaches PostgreSQL and its clients.
struct Namespaces {
    nodes: usize,
}

/// The bridge's name in the test's namespace.
const BRIDGE: &str = "tempora-br";

impl Namespaces {
    /// Creates the namespaces and links for `nodes` nodes; `None` where they cannot be made
    /// (not root, no `ip`), unless `TEMPORA_REQUIRE_NETNS` is set (CI sets it).
    fn create(nodes: usize) -> Option<Namespaces> {
        let namespaces = Namespaces { nodes };
        namespaces.remove();
        let mut steps = vec![format!("link add {BRIDGE} type bridge"), format!("link set {BRIDGE} up")];
        for i in 0..nodes {
            let ns = Self::name(i);
            steps.extend([
                format!("netns add {ns}"),
                format!("-n {ns} link set lo up"),
                format!("link add tempora-up{i} type veth peer name up0 netns {ns}"),
                format!("addr add {}/30 dev tempora-up{i}", Self::gateway(i)),
                format!("link set tempora-up{i} up"),
                format!("-n {ns} addr add {}/30 dev up0", Self::uplink(i)),
                format!("-n {ns} link set up0 up"),
                format!("link add tempora-br{i} type veth peer name br0 netns {ns}"),
                format!("link set tempora-br{i} master {BRIDGE}"),
                format!("link set tempora-br{i} up"),
                format!("-n {ns} addr add {}/24 dev br0", Self::bridged(i)),
                format!("-n {ns} link set br0 up"),
            ]);
        }
        for step in &steps {
            if let Err(why) = ip(step) {
                assert!(
                    std::env::var_os("TEMPORA_REQUIRE_NETNS").is_none(),
                    "network namespaces are required (TEMPORA_REQUIRE_NETNS) but `ip {step}` failed: {why}"
                );
                eprintln!(
                    "notice: no network namespaces here (`ip {step}`: {why}); the symmetric partition test is skipped"
                );
                return None;
            }
        }
        Some(namespaces)
    }

    fn name(i: usize) -> String {
        format!("tempora-node{i}")
    }

    /// The node's address on its uplink: where the test's clients reach it.
    fn uplink(i: usize) -> String {
        format!("10.213.{}.2", i + 1)
    }

    /// The test's end of the node's uplink: where the node reaches PostgreSQL's proxy.
    fn gateway(i: usize) -> String {
        format!("10.213.{}.1", i + 1)
    }

    /// The node's address on the bridge: where the other nodes reach it.
    fn bridged(i: usize) -> String {
        format!("10.213.100.{}", 10 + i)
    }

    /// The command prefix that runs a program in node `i`'s namespace.
    fn exec(i: usize) -> [String; 4] {
        ["ip".into(), "netns".into(), "exec".into(), Self::name(i)]
    }

    /// Cuts node `i` off the bridge: it and the other nodes no longer reach each other.
    fn cut(&self, i: usize) {
        ip(&format!("link set tempora-br{i} down")).expect("cut the node's bridge port");
    }

    fn heal(&self, i: usize) {
        ip(&format!("link set tempora-br{i} up")).expect("restore the node's bridge port");
    }

    /// Removes what `create` made (or a crashed run left); a namespace's links go with it.
    fn remove(&self) {
        for i in 0..self.nodes {
            let _ = ip(&format!("netns del {}", Self::name(i)));
            let _ = ip(&format!("link del tempora-up{i}"));
            let _ = ip(&format!("link del tempora-br{i}"));
        }
        let _ = ip(&format!("link del {BRIDGE}"));
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `ip` with these (space-separated) arguments.
fn ip(args: &str) -> Result<(), String> {
    let out =
        std::process::Command::new("ip").args(args.split(' ')).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A symmetric partition: node C and nodes A, B no longer reach each other (every packet
/// dropped, both ways), while all of them reach PostgreSQL and their clients. Leases live in
/// PostgreSQL, so each side keeps its shards and nothing is served twice: on each side a call
/// for a run of the other side's shards waits for its shard to move (it does not) and ends
/// UNAVAILABLE, while the same call where the run lives is answered — for every run, exactly
/// one of the two. Once the partition heals every run completes, each timer fired once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_symmetric_partition_between_nodes_serves_each_run_on_one_side_and_loses_nothing() {
    if !tempora::testing::is_postgres() {
        eprintln!("notice: the cluster tests run on PostgreSQL only (TEMPORA_TEST_BACKEND=postgres)");
        return;
    }
    let Some(net) = Namespaces::create(3) else { return };
    let db = tempora::testing::backend_db(":memory:").await;
    let proxy = Proxy::start_on("0.0.0.0", postgres_host(&db)).await;
    // Each namespace has its own ports: every node can listen on the same one.
    let port = support::process::free_port();
    let advertised: Vec<String> = (0..3).map(|i| format!("{}:{port}", Namespaces::bridged(i))).collect();
    let nodes: Vec<NodeProcess> = (0..3)
        .map(|i| {
            let exec = Namespaces::exec(i);
            let exec: Vec<&str> = exec.iter().map(String::as_str).collect();
            let db = through_at(&db, &Namespaces::gateway(i), proxy.port);
            let extra = ["--cluster", "--ip", "0.0.0.0", "--advertise", &advertised[i]];
            NodeProcess::start_through(&exec, &Namespaces::uplink(i), port, &db, &extra)
        })
        .collect();
    held_by(&db, &advertised).await;
    let (a, c) = (&nodes[0].url, &nodes[2].url);
    let (queue, log) = (unique("symmetric"), CallLog::default());
    let via = client(a).await;
    let worker = client(&nodes[1].url).await;
    let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
    support::with_worker(&worker, options, async {
        let ids = start_naps(&via, &queue, 24, 3_000).await;
        net.cut(2);
        let cut = std::time::Instant::now();
        let (through_a, through_c) = tokio::join!(
            futures::future::join_all(ids.iter().map(|id| describe_once(a, id))),
            futures::future::join_all(ids.iter().map(|id| describe_once(c, id))),
        );
        assert!(cut.elapsed() < Duration::from_secs(30), "calls waited {:?}", cut.elapsed());
        for ((id, on_a), on_c) in ids.iter().zip(&through_a).zip(&through_c) {
            assert!(on_a.is_ok() != on_c.is_ok(), "{id}: through A {on_a:?}, through C {on_c:?}");
            for status in [on_a, on_c].into_iter().filter_map(|answer| answer.as_ref().err()) {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{id}: {status:?}");
            }
        }
        let on_c = through_a.iter().filter(|d| d.is_err()).count();
        assert!(on_c > 0 && on_c < ids.len(), "{on_c} of {} naps on C's side", ids.len());
        // Past the lease TTL, both sides still hold their shards: they renew them in PostgreSQL.
        held_by(&db, &advertised).await;
        net.heal(2);
        wait_naps(&via, &ids).await;
        eprintln!(
            "symmetric partition: {on_c} of {} naps on C's side; every nap done {:?} after the cut",
            ids.len(),
            cut.elapsed()
        );
        check_histories(&via, &ids).await;
    })
    .await;
    drop(nodes);
}

/// Restarts the local PostgreSQL under a running cluster, so it runs only with
/// `TEMPORA_TEST_PG_RESTART=1` (`.ci/run` sets it and runs it alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_a_cluster_loses_nothing() {
    if !tempora::testing::is_postgres() || std::env::var("TEMPORA_TEST_PG_RESTART").ok().as_deref() != Some("1") {
        eprintln!("notice: TEMPORA_TEST_PG_RESTART is not 1 (or not PostgreSQL); skipping the cluster's PostgreSQL restart test");
        return;
    }
    let db = tempora::testing::backend_db(":memory:").await;
    let (nodes, addresses) = nodes_holding_shards(&db, vec![start_node(&db), start_node(&db), start_node(&db)]).await;
    let (queue, log) = (unique("pgrestart"), CallLog::default());
    let via = client(&nodes[0].url).await;
    let worker = client(&nodes[1].url).await;
    let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
    support::with_worker(&worker, options, async {
        let ids = start_naps(&via, &queue, 24, 1_000).await;
        support::process::restart_postgres().await;
        wait_naps(&via, &ids).await;
        held_by(&db, &addresses).await;
        check_histories(&via, &ids).await;
        let more = start_naps(&via, &queue, 12, 500).await;
        wait_naps(&via, &more).await;
    })
    .await;
}

mod registries {
    //! Schedules, batch jobs, Nexus endpoints and task queue configs on a cluster, through the
    //! official client's raw services (the Rust SDK has no schedule or batch client): kept by
    //! the holder of the registries, reached through any node, and moved with it.

    use super::*;
    use temporalio_protos::temporal::api::batch::v1::BatchOperationReset;
    use temporalio_protos::temporal::api::common::v1::{
        reset_options, Execution, Payload, Payloads, ResetOptions, WorkflowExecution, WorkflowType,
    };
    use temporalio_protos::temporal::api::enums::v1::{
        BatchOperationState, ScheduleOverlapPolicy, TaskQueueType, WorkflowExecutionStatus,
    };
    use temporalio_protos::temporal::api::nexus::v1::{endpoint_target, EndpointSpec, EndpointTarget};
    use temporalio_protos::temporal::api::operatorservice::v1::{CreateNexusEndpointRequest, GetNexusEndpointRequest};
    use temporalio_protos::temporal::api::schedule::v1::{
        schedule_action, IntervalSpec, Schedule, ScheduleAction, SchedulePatch, SchedulePolicies, ScheduleSpec,
    };
    use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
    use temporalio_protos::temporal::api::workflowservice::v1 as ws;
    use tonic::Request;

    fn json(text: &str) -> Payload {
        Payload {
            metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
            data: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// Every second, a nap of 300 ms, one at a time (each run is watched until it closes
    /// before the next starts: the watch crosses nodes).
    fn naps_every_second(queue: &str) -> Schedule {
        Schedule {
            spec: Some(ScheduleSpec {
                interval: vec![IntervalSpec {
                    interval: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                    phase: None,
                }],
                ..Default::default()
            }),
            action: Some(ScheduleAction {
                action: Some(schedule_action::Action::StartWorkflow(NewWorkflowExecutionInfo {
                    workflow_id: unique("scheduled-nap"),
                    workflow_type: Some(WorkflowType { name: "Nap".into() }),
                    task_queue: Some(TaskQueue { name: queue.into(), ..Default::default() }),
                    input: Some(Payloads { payloads: vec![json("300")] }),
                    ..Default::default()
                })),
            }),
            policies: Some(SchedulePolicies {
                overlap_policy: ScheduleOverlapPolicy::BufferOne as i32,
                ..Default::default()
            }),
            state: None,
        }
    }

    async fn schedule_info(client: &Client, id: &str) -> temporalio_protos::temporal::api::schedule::v1::ScheduleInfo {
        let request = ws::DescribeScheduleRequest { namespace: "default".into(), schedule_id: id.into() };
        let described = client.connection().workflow_service().describe_schedule(Request::new(request)).await;
        described.expect("describe the schedule").into_inner().info.unwrap_or_default()
    }

    /// Waits until the schedule has taken `n` actions and every run it started has closed.
    async fn scheduled_runs_closed(client: &Client, id: &str, n: i64) -> i64 {
        let mut taken = 0;
        wait_until("the schedule's runs", async || {
            let info = schedule_info(client, id).await;
            taken = info.action_count;
            info.action_count >= n && info.running_workflows.is_empty()
        })
        .await;
        taken
    }

    /// The runs a schedule started, as visibility sees them.
    async fn runs_of_schedule(client: &Client, id: &str) -> i64 {
        let request = ws::CountWorkflowExecutionsRequest {
            namespace: "default".into(),
            query: format!("TemporalScheduledById = '{id}'"),
        };
        let counted = client.connection().workflow_service().count_workflow_executions(Request::new(request)).await;
        counted.expect("count").into_inner().count
    }

    async fn batch_done(client: &Client, job_id: &str) -> ws::DescribeBatchOperationResponse {
        let mut done = Default::default();
        wait_until("the batch job", async || {
            let request = ws::DescribeBatchOperationRequest { namespace: "default".into(), job_id: job_id.into() };
            done = client
                .connection()
                .workflow_service()
                .describe_batch_operation(Request::new(request))
                .await
                .expect("describe the job")
                .into_inner();
            done.state == BatchOperationState::Completed as i32
        })
        .await;
        done
    }

    /// The client of the node that keeps the registries now.
    fn holder_of<'c>(nodes: &[TestServer], a: &'c Client, b: &'c Client) -> &'c Client {
        match nodes[0].holds_registry() {
            true => a,
            false => b,
        }
    }

    async fn status_of(client: &Client, id: &str) -> Result<i32, tonic::Status> {
        let request = ws::DescribeWorkflowExecutionRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution { workflow_id: id.into(), run_id: String::new() }),
        };
        let described =
            client.connection().workflow_service().describe_workflow_execution(Request::new(request)).await?;
        Ok(described.into_inner().workflow_execution_info.unwrap_or_default().status)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn registries_are_kept_by_one_node_reached_through_any_and_move_with_it() {
        let Some((_db, mut nodes)) = cluster(3).await else { return };
        // The holder of the registries goes last: it is stopped halfway.
        nodes.sort_by_key(|n| n.holds_registry());
        assert!(nodes[2].holds_registry() && !nodes[0].holds_registry() && !nodes[1].holds_registry());
        let (a, b, holder) =
            (client(&nodes[0].url()).await, client(&nodes[1].url()).await, client(&nodes[2].url()).await);
        let (queue, log) = (unique("registries"), CallLog::default());
        let options = support::worker!(&queue, activities: [Acts(log.clone())], workflows: [Nap]);
        support::with_worker(&b, options, async {
            // A schedule created through one node, described through the others.
            let schedule_id = unique("naps");
            let create = ws::CreateScheduleRequest {
                namespace: "default".into(),
                schedule_id: schedule_id.clone(),
                schedule: Some(naps_every_second(&queue)),
                request_id: unique("create"),
                ..Default::default()
            };
            a.connection().workflow_service().create_schedule(Request::new(create)).await.expect("create the schedule");
            scheduled_runs_closed(&b, &schedule_id, 3).await;
            assert!(schedule_info(&holder, &schedule_id).await.action_count >= 3);

            // A Nexus endpoint and a task queue config, changed through one node, read through
            // the others (and used where the queue's matching is).
            let spec = EndpointSpec {
                name: unique("endpoint").replace('_', "-"),
                target: Some(EndpointTarget {
                    variant: Some(endpoint_target::Variant::Worker(endpoint_target::Worker {
                        namespace: "default".into(),
                        task_queue: queue.clone(),
                    })),
                }),
                ..Default::default()
            };
            let created = a
                .connection()
                .operator_service()
                .create_nexus_endpoint(Request::new(CreateNexusEndpointRequest { spec: Some(spec) }))
                .await;
            let endpoint = created.expect("create the endpoint").into_inner().endpoint.expect("an endpoint");
            let get = || GetNexusEndpointRequest { id: endpoint.id.clone() };
            for via in [&b, &holder] {
                let got = via.connection().operator_service().get_nexus_endpoint(Request::new(get())).await;
                assert_eq!(got.expect("get the endpoint").into_inner().endpoint.as_ref(), Some(&endpoint));
            }
            let config = ws::UpdateTaskQueueConfigRequest {
                namespace: "default".into(),
                identity: "test".into(),
                task_queue: queue.clone(),
                task_queue_type: TaskQueueType::Activity as i32,
                update_queue_rate_limit: Some(ws::update_task_queue_config_request::RateLimitUpdate {
                    rate_limit: Some(temporalio_protos::temporal::api::taskqueue::v1::RateLimit {
                        requests_per_second: 500.0,
                    }),
                    reason: "test".into(),
                }),
                ..Default::default()
            };
            a.connection()
                .workflow_service()
                .update_task_queue_config(Request::new(config))
                .await
                .expect("update the config");
            let describe = ws::DescribeTaskQueueRequest {
                namespace: "default".into(),
                task_queue: Some(TaskQueue { name: queue.clone(), ..Default::default() }),
                task_queue_type: TaskQueueType::Activity as i32,
                report_config: true,
                ..Default::default()
            };
            wait_until("the config seen through another node", async || {
                let described =
                    b.connection().workflow_service().describe_task_queue(Request::new(describe.clone())).await;
                let config = described.expect("describe the queue").into_inner().config;
                let limit = config.and_then(|c| c.queue_rate_limit).and_then(|l| l.rate_limit);
                limit.is_some_and(|l| l.requests_per_second == 500.0)
            })
            .await;

            // The holder leaves: the registries move with its shard, and the schedule goes on.
            let before = schedule_info(&a, &schedule_id).await.action_count;
            nodes.pop().expect("three nodes").stop().await;
            balanced(&nodes).await;
            assert!(nodes[0].holds_registry() || nodes[1].holds_registry());
            scheduled_runs_closed(&a, &schedule_id, before + 3).await;
            let got = b.connection().operator_service().get_nexus_endpoint(Request::new(get())).await;
            assert_eq!(got.expect("the endpoint, after the move").into_inner().endpoint.as_ref(), Some(&endpoint));

            // Paused, its runs closed: it started each time once (a run per action).
            let pause = ws::PatchScheduleRequest {
                namespace: "default".into(),
                schedule_id: schedule_id.clone(),
                patch: Some(SchedulePatch { pause: "test".into(), ..Default::default() }),
                request_id: unique("pause"),
                ..Default::default()
            };
            b.connection().workflow_service().patch_schedule(Request::new(pause)).await.expect("pause");
            let taken = scheduled_runs_closed(&b, &schedule_id, 0).await;
            wait_until("every scheduled run visible", async || runs_of_schedule(&a, &schedule_id).await == taken).await;

            // Batch jobs on runs of every node's shards: terminated, then deleted.
            let ids = start_naps(&a, &queue, 8, 600_000).await;
            let targets: Vec<Execution> =
                ids.iter().map(|id| Execution { business_id: id.clone(), ..Default::default() }).collect();
            let terminate = ws::StartBatchOperationRequest {
                namespace: "default".into(),
                job_id: unique("terminate"),
                reason: "test".into(),
                target_executions: targets,
                operation: Some(ws::start_batch_operation_request::Operation::TerminationOperation(Default::default())),
                ..Default::default()
            };
            b.connection()
                .workflow_service()
                .start_batch_operation(Request::new(terminate.clone()))
                .await
                .expect("start the job");
            let done = batch_done(&a, &terminate.job_id).await;
            assert_eq!((done.complete_operation_count, done.failure_operation_count), (8, 0));
            for id in &ids {
                assert_eq!(status_of(&b, id).await.expect("describe"), WorkflowExecutionStatus::Terminated as i32);
            }
            // Reset to their first workflow task: a new run each, written on the run's node.
            let reset = ws::StartBatchOperationRequest {
                job_id: unique("reset"),
                operation: Some(ws::start_batch_operation_request::Operation::ResetOperation(BatchOperationReset {
                    options: Some(ResetOptions {
                        target: Some(reset_options::Target::FirstWorkflowTask(())),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                ..terminate.clone()
            };
            a.connection()
                .workflow_service()
                .start_batch_operation(Request::new(reset.clone()))
                .await
                .expect("start the job");
            let done = batch_done(holder_of(&nodes, &a, &b), &reset.job_id).await;
            assert_eq!((done.complete_operation_count, done.failure_operation_count), (8, 0));
            for id in &ids {
                assert_eq!(status_of(&b, id).await.expect("describe"), WorkflowExecutionStatus::Running as i32);
            }
            let delete = ws::StartBatchOperationRequest {
                job_id: unique("delete"),
                operation: Some(ws::start_batch_operation_request::Operation::DeletionOperation(Default::default())),
                ..terminate
            };
            a.connection()
                .workflow_service()
                .start_batch_operation(Request::new(delete.clone()))
                .await
                .expect("start the job");
            let done = batch_done(&b, &delete.job_id).await;
            assert_eq!((done.complete_operation_count, done.failure_operation_count), (8, 0));
            for id in &ids {
                let gone = status_of(&a, id).await.expect_err("deleted");
                assert_eq!(gone.code(), tonic::Code::NotFound, "{id}: {gone:?}");
            }
        })
        .await;
        for node in nodes {
            node.stop().await;
        }
    }
}
