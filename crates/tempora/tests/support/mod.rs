//! Shared test harness: an official-SDK client and worker against an in-process tempora (here:
//! clients, servers in memory or on a file kept across restarts, workers, unique names, the
//! reference server), and what the suites share beyond that, re-exported here:
//! - [`run`]: starting workflows and waiting for their results through the SDK client;
//! - [`history`]: raw WorkflowService reads (histories, event types, describe);
//! - [`wait`]: polling until something is reached;
//! - [`activities`]: the activity call log and the activities and saga several suites run.
//!
//! `examples/tests/examples.rs` uses it too (by `#[path]`), so it needs nothing beyond the
//! dependencies both crates have.
#![allow(dead_code)]

pub mod activities;
pub mod history;
pub mod process;
pub mod run;
pub mod wait;

#[allow(unused_imports)]
pub use activities::{transfer, CallLog, Common};
#[allow(unused_imports)]
pub use history::{
    assert_events_include, count_events, describe, event_types, execution, history, history_event_types,
    history_event_types_of, wait_for_event,
};
#[allow(unused_imports)]
pub use run::{get_result, latest_result, run_on_fresh_server, run_workflow, start, start_options, terminate};
#[allow(unused_imports)]
pub use wait::{poll, wait_until};

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Every test's hard limit, so a broken server fails a test instead of hanging it.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn client(url: &str) -> Client {
    client_in(url, "default").await
}

pub async fn client_in(url: &str, namespace: &str) -> Client {
    let options = ConnectionOptions::new(Url::from_str(url).expect("url")).build();
    let connection = Connection::connect(options).await.expect("connect to tempora");
    Client::new(connection, ClientOptions::new(namespace).build()).expect("client")
}

/// An in-process server on `db` (a SQLite path or `:memory:`) and a client of it.
pub async fn start_server(db: &str) -> (TestServer, Client) {
    let server = TestServer::start(db).await;
    let client = client(&server.url()).await;
    (server, client)
}

/// A database file in a fresh temporary directory, for tests that restart a server on it; the
/// directory (and the file) go when the returned `TempDir` is dropped.
pub fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("tempora.db").to_str().expect("utf-8 path").to_string();
    (dir, db)
}

/// A test that restarts tempora on one database file: the file (in a temporary directory that
/// goes with this), the test's task queue and its workflow id.
pub struct OnDisk {
    _dir: tempfile::TempDir,
    pub db: String,
    pub queue: String,
    pub workflow_id: String,
}

impl OnDisk {
    /// A fresh file; the workflow id is named after `id_prefix`.
    pub fn new(id_prefix: &str) -> OnDisk {
        let (dir, db) = temp_db();
        OnDisk { _dir: dir, db, queue: unique("q"), workflow_id: unique(id_prefix) }
    }

    /// A fresh file with a server started on it, and a client of that server.
    pub async fn start(id_prefix: &str) -> (OnDisk, TestServer, Client) {
        let disk = OnDisk::new(id_prefix);
        let (server, client) = disk.serve().await;
        (disk, server, client)
    }

    /// A server on the file (the previous one stopped), and a client of it.
    pub async fn serve(&self) -> (TestServer, Client) {
        start_server(&self.db).await
    }
}

/// Runs `body` while a worker built from `options` polls; stops the worker when `body` ends.
/// The worker future is not `Send`, so both run in this task.
pub async fn with_worker<T>(client: &Client, options: WorkerOptions, body: impl Future<Output = T>) -> T {
    let runtime = Runtime::from_current_tokio(Default::default()).expect("runtime");
    let mut worker = Worker::new(&runtime, client.clone(), options).expect("worker");
    let stop = worker.shutdown_handle();
    let body = async {
        let out = tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test body timed out");
        stop();
        out
    };
    let (out, run) = tokio::join!(body, worker.run());
    run.expect("worker ran cleanly");
    out
}

/// Worker options for a task queue with activity implementers and workflow types registered:
/// `worker!(queue, activities: [Acts(log.clone())], workflows: [Hello, Pipeline])`.
#[allow(unused_macros)]
macro_rules! worker {
    ($queue:expr, activities: [$($activities:expr),* $(,)?], workflows: [$($workflow:ty),* $(,)?] $(,)?) => {{
        let options = temporalio_sdk::WorkerOptions::new($queue);
        $(let options = options.register_activities($activities);)*
        $(let options = options.register_workflow::<$workflow>().expect("register the workflow");)*
        options.build()
    }};
}
#[allow(unused_imports)]
pub(crate) use worker;

/// True, after printing `notice`, when the tests run on PostgreSQL: for SQLite-only tests to
/// return early.
pub fn skip_on_postgres(notice: &str) -> bool {
    let skip = tempora::testing::is_postgres();
    if skip {
        eprintln!("notice: {notice}");
    }
    skip
}

/// A unique name for queues and workflow ids.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The real Temporal server for differential checks, started by
/// `../shared/tools/reference-server` when `TEMPORA_REFERENCE=1`; `None` (with a notice) else.
pub fn reference_server() -> Option<String> {
    if std::env::var("TEMPORA_REFERENCE").ok().as_deref() != Some("1") {
        eprintln!("notice: TEMPORA_REFERENCE is not 1; skipping the comparison with the real Temporal server");
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/reference-server");
    let out = std::process::Command::new(script).args(["start", "7300"]).output().expect("run reference-server");
    assert!(out.status.success(), "reference-server failed: {}", String::from_utf8_lossy(&out.stderr));
    let addr = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    Some(format!("http://{addr}"))
}

/// Runs `scenario` against an in-process tempora, then against the real Temporal server (see
/// [`reference_server`]); returns (tempora's, Temporal's) outcome, or `None` without a reference.
pub async fn on_tempora_and_reference<T>(scenario: impl AsyncFn(&str) -> T) -> Option<(T, T)> {
    let reference = reference_server()?;
    let server = TestServer::start(":memory:").await;
    let ours = scenario(&server.url()).await;
    let theirs = scenario(&reference).await;
    server.stop().await;
    Some((ours, theirs))
}
