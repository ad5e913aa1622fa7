//! Storage behaviour the other suites cannot show: schema upgrades from the previous version,
//! and PostgreSQL connections dying under load. PostgreSQL tests read
//! `TEMPORA_TEST_POSTGRES_URL` and are skipped, with a notice, when it is unset.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempora::testing::{with_database, TestServer};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

use support::{
    client, history_event_types, run_workflow, skip_on_postgres, start_options, temp_db, unique, with_worker,
};

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU32>);

#[activities]
impl Counter {
    #[activity]
    async fn bump(self: Arc<Self>, _ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(n + 1)
    }
}

#[workflow]
#[derive(Default)]
struct Steps;

#[workflow_methods]
impl Steps {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, n: i64) -> WorkflowResult<i64> {
        let mut n = n;
        for _ in 0..3 {
            n = ctx
                .execute_activity(Counter::bump, n, ActivityOptions::start_to_close_timeout(Duration::from_secs(20)))
                .await?;
        }
        Ok(n)
    }
}

fn worker(queue: &str, counter: &Counter) -> WorkerOptions {
    support::worker!(queue, activities: [counter.clone()], workflows: [Steps])
}

/// Runs `n` Steps workflows to completion on the server at `url`, calling `meanwhile` while
/// they run; returns their results.
async fn run_steps(url: &str, n: i64, counter: &Counter, meanwhile: impl std::future::Future<Output = ()>) -> Vec<i64> {
    let c = client(url).await;
    let queue = unique("q");
    with_worker(&c, worker(&queue, counter), async {
        let runs = (0..n).map(|i| run_workflow(&c, Steps::run, i * 10, &queue, unique("steps")));
        let (results, ()) = tokio::join!(futures::future::join_all(runs), meanwhile);
        results
    })
    .await
}

fn postgres_url() -> Option<String> {
    let url = std::env::var("TEMPORA_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!("notice: TEMPORA_TEST_POSTGRES_URL is not set; skipping a PostgreSQL test");
    }
    url
}

/// Runs `work` on a connection to the PostgreSQL database at `url`, off the async runtime.
async fn on_postgres<T: Send + 'static>(
    url: &str,
    work: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || work(&mut postgres::Client::connect(&url, postgres::NoTls).unwrap()))
        .await
        .unwrap()
}

async fn fresh_postgres_database(base: &str) -> String {
    let name = format!("tempora_{}", uuid::Uuid::new_v4().simple());
    let create = format!("CREATE DATABASE {name}");
    on_postgres(base, move |admin| admin.batch_execute(&create).unwrap()).await;
    with_database(base, &name)
}

/// A fresh database on the test PostgreSQL: `(base URL, database URL)`; `None` (with a notice)
/// when no test PostgreSQL is set.
async fn fresh_postgres() -> Option<(String, String)> {
    let base = postgres_url()?;
    let url = fresh_postgres_database(&base).await;
    Some((base, url))
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_postgres_connections_lose_nothing() {
    let Some((base, url)) = fresh_postgres().await else { return };
    let server = TestServer::try_start(&url).await.unwrap();
    let counter = Counter::default();
    let database = url.rsplit('/').next().unwrap().to_string();
    let killed_total = AtomicU32::new(0);
    let killer = async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let database = database.clone();
            let killed = on_postgres(&base, move |admin| {
                admin
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&database],
                    )
                    .unwrap()
                    .len()
            })
            .await;
            killed_total.fetch_add(killed as u32, Ordering::SeqCst);
        }
    };
    let results = run_steps(&server.url(), 20, &counter, killer).await;
    assert!(killed_total.load(Ordering::SeqCst) > 0, "tempora's connections were killed under load");
    server.stop().await;
    assert_eq!(results, (0..20).map(|i| i * 10 + 3).collect::<Vec<_>>());
    assert_eq!(counter.0.load(Ordering::SeqCst), 60, "every activity ran exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_database_of_the_previous_schema_is_upgraded() {
    if skip_on_postgres("a SQLite upgrade test; it runs in the SQLite pass") {
        return;
    }
    let (_dir, path) = temp_db();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(tempora::store::sqlite::MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute(
            "INSERT INTO namespaces (name, id, data) VALUES ('legacy', 'id-legacy', ?1)",
            [r#"{"name":"legacy","id":"id-legacy","description":"from v1","owner_email":"","retention_ms":1}"#],
        )
        .unwrap();
    }
    let server = TestServer::start(&path).await;
    let counter = Counter::default();
    assert_eq!(run_steps(&server.url(), 2, &counter, async {}).await, vec![3, 13]);
    let c = client(&server.url()).await;
    let request = temporalio_protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest {
        namespace: "legacy".into(),
        ..Default::default()
    };
    let described = c.connection().workflow_service().describe_namespace(tonic::Request::new(request)).await.unwrap();
    assert_eq!(described.into_inner().namespace_info.unwrap().description, "from v1");
    server.stop().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, tempora::store::sqlite::MIGRATIONS.len() as i64);
    let legacy: i64 =
        conn.query_row("SELECT count(*) FROM namespaces WHERE name = 'legacy'", [], |r| r.get(0)).unwrap();
    assert_eq!(legacy, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_database_of_the_previous_schema_is_upgraded() {
    let Some((_, url)) = fresh_postgres().await else { return };
    on_postgres(&url, |db| {
        db.batch_execute(tempora::store::postgres::MIGRATIONS[0]).unwrap();
        db.batch_execute(
            "CREATE TABLE tempora_schema (version INTEGER NOT NULL); INSERT INTO tempora_schema VALUES (1);",
        )
        .unwrap();
        db.execute(
            "INSERT INTO namespaces (name, id, data) VALUES ('legacy', 'id-legacy', $1)",
            &[&r#"{"name":"legacy","id":"id-legacy","description":"from v1","owner_email":"","retention_ms":1}"#],
        )
        .unwrap();
    })
    .await;
    let server = TestServer::try_start(&url).await.unwrap();
    let counter = Counter::default();
    assert_eq!(run_steps(&server.url(), 2, &counter, async {}).await, vec![3, 13]);
    server.stop().await;
    let (version, legacy) = on_postgres(&url, |db| {
        let version: i32 = db.query_one("SELECT version FROM tempora_schema", &[]).unwrap().get(0);
        let legacy: i64 = db.query_one("SELECT count(*) FROM namespaces WHERE name = 'legacy'", &[]).unwrap().get(0);
        (version, legacy)
    })
    .await;
    assert_eq!(version as usize, tempora::store::postgres::MIGRATIONS.len());
    assert_eq!(legacy, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_schema_newer_than_the_binary_is_refused() {
    let Some((_, url)) = fresh_postgres().await else { return };
    on_postgres(&url, |db| {
        db.batch_execute(
            "CREATE TABLE tempora_schema (version INTEGER NOT NULL); INSERT INTO tempora_schema VALUES (99);",
        )
        .unwrap();
    })
    .await;
    let refused = TestServer::try_start(&url).await.err().expect("a newer schema is refused");
    assert!(refused.contains("newer than this tempora supports"), "{refused}");
}

/// Restarts the machine's PostgreSQL under load. Disruptive for anything else using that
/// server, so it runs only with `TEMPORA_TEST_PG_RESTART=1` (`.ci/run` sets it, and runs this
/// test alone).
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_loses_nothing() {
    let Some(base) = postgres_url() else { return };
    if std::env::var("TEMPORA_TEST_PG_RESTART").ok().as_deref() != Some("1") {
        eprintln!("notice: TEMPORA_TEST_PG_RESTART is not 1; skipping the PostgreSQL restart test");
        return;
    }
    let url = fresh_postgres_database(&base).await;
    let server = TestServer::try_start(&url).await.unwrap();
    let counter = Counter::default();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        support::process::restart_postgres().await;
    };
    let results = run_steps(&server.url(), 20, &counter, restart).await;
    server.stop().await;
    assert_eq!(results, (0..20).map(|i| i * 10 + 3).collect::<Vec<_>>());
    assert_eq!(counter.0.load(Ordering::SeqCst), 60, "every activity ran exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reads_do_not_wait_behind_a_blocked_writer() {
    let Some((_, url)) = fresh_postgres().await else { return };
    let server = TestServer::try_start(&url).await.unwrap();
    let c = client(&server.url()).await;
    let queue = unique("q");
    let counter = Counter::default();
    let done_id = unique("steps");
    with_worker(&c, worker(&queue, &counter), run_workflow(&c, Steps::run, 0, &queue, &done_id)).await;

    // Another session holds a lock that blocks every write to `executions` (not reads).
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let lock_url = url.clone();
    let holder = std::thread::spawn(move || {
        let mut admin = postgres::Client::connect(&lock_url, postgres::NoTls).unwrap();
        let mut tx = admin.transaction().unwrap();
        tx.batch_execute("LOCK TABLE executions IN SHARE MODE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
        tx.commit().unwrap();
    });
    locked.recv().unwrap();
    let start = tokio::spawn({
        let c = c.clone();
        let queue = queue.clone();
        async move { c.start_workflow(Steps::run, 0, start_options(&queue, unique("steps"))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!start.is_finished(), "the start waits for the lock");
    // The finished run is not in memory: its history is read from PostgreSQL, beside the writer.
    let read = tokio::time::timeout(Duration::from_secs(5), history_event_types(&c, &done_id)).await;
    let types = read.expect("a read does not wait behind the blocked writer");
    assert_eq!(types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"));
    assert!(!start.is_finished(), "the start still waits for the lock");
    release.send(()).unwrap();
    holder.join().unwrap();
    start.await.unwrap().expect("the start completes once the lock is released");
    server.stop().await;
}
