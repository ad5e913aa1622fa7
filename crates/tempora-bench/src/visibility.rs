//! `tempora-bench visibility`: List and Count at scale. Fills a store with N closed and M open
//! runs (written straight into the visibility tables with SQL, as the server's writer lays them
//! out; each run has a custom Keyword attribute `CustomerId`, one of 1,000 values), starts
//! tempora on it, and times each query through the gRPC API: p50 and p99 of `iterations` calls.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use prost::Message;
use temporalio_client::Client;
use temporalio_protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_protos::temporal::api::operatorservice::v1::AddSearchAttributesRequest;
use temporalio_protos::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CountWorkflowExecutionsRequest, ListWorkflowExecutionsRequest,
};

use crate::{connect, start_tempora, tempora_binary};

/// When the generated runs start: 2026-01-01T00:00:00Z, one second apart.
const BASE_NS: i64 = 1_767_225_600_000_000_000;
const SECOND_NS: i64 = 1_000_000_000;

pub struct Options {
    pub closed: usize,
    pub open: usize,
    pub iterations: usize,
    pub db: Option<String>,
    pub tempora: Option<PathBuf>,
}

/// A typical `WorkflowExecutionInfo` (what List returns per run), the same for every row.
fn info_template() -> Vec<u8> {
    WorkflowExecutionInfo {
        execution: Some(WorkflowExecution {
            workflow_id: "wf-0000000".into(),
            run_id: uuid::Uuid::new_v4().to_string(),
        }),
        r#type: Some(WorkflowType { name: "BenchType".into() }),
        task_queue: "bench-queue".into(),
        history_length: 12,
        ..Default::default()
    }
    .encode_to_vec()
}

/// Rows 0..open are running; the rest closed 5 s after they started (status 2, 3 or 4).
fn fill_sqlite(path: &str, total: usize, open: usize) -> Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")?;
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO visibility (run_id, namespace, workflow_id, workflow_type, status, task_queue, start_time,
             execution_time, close_time, sort_time, execution_duration, history_length, history_size_bytes,
             state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id,
             namespace_division, info)
         SELECT printf('run-%07d', i), 'default', printf('wf-%07d', i), 'Type' || (i % 10),
             CASE WHEN i < ?2 THEN 1 ELSE 2 + i % 3 END, 'bench-queue',
             ?3 + i * ?4, ?3 + i * ?4,
             CASE WHEN i < ?2 THEN NULL ELSE ?3 + i * ?4 + 5 * ?4 END,
             CASE WHEN i < ?2 THEN 9223372036854775807 ELSE ?3 + i * ?4 + 5 * ?4 END,
             CASE WHEN i < ?2 THEN NULL ELSE 5 * ?4 END,
             12, 2048, 12, NULL, NULL, printf('wf-%07d', i), printf('run-%07d', i), NULL, ?5
         FROM n",
        rusqlite::params![total as i64, open as i64, BASE_NS, SECOND_NS, info_template()],
    )?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO visibility_attributes (run_id, namespace, name, value_text, value_int, value_double)
         SELECT printf('run-%07d', i), 'default', 'CustomerId', 'cust-' || (i % 1000), NULL, NULL FROM n",
        rusqlite::params![total as i64],
    )?;
    tx.commit()?;
    conn.execute_batch("ANALYZE;")?;
    Ok(())
}

fn fill_postgres(url: &str, total: usize, open: usize) -> Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let mut tx = client.transaction()?;
    // A million rows through the per-row counting trigger take tens of minutes (every row
    // updates one counter row); the counters are filled once after the load instead.
    tx.batch_execute("ALTER TABLE visibility DISABLE TRIGGER visibility_count")?;
    tx.execute(
        "INSERT INTO visibility (run_id, namespace, workflow_id, workflow_type, status, task_queue, start_time,
             execution_time, close_time, sort_time, execution_duration, history_length, history_size_bytes,
             state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id,
             namespace_division, info)
         SELECT format('run-%s', lpad(i::text, 7, '0')), 'default', format('wf-%s', lpad(i::text, 7, '0')),
             'Type' || (i % 10), CASE WHEN i < $2::BIGINT THEN 1 ELSE 2 + i % 3 END, 'bench-queue',
             $3::BIGINT + i * $4::BIGINT, $3::BIGINT + i * $4::BIGINT,
             CASE WHEN i < $2::BIGINT THEN NULL ELSE $3::BIGINT + i * $4::BIGINT + 5 * $4::BIGINT END,
             CASE WHEN i < $2::BIGINT THEN 9223372036854775807 ELSE $3::BIGINT + i * $4::BIGINT + 5 * $4::BIGINT END,
             CASE WHEN i < $2::BIGINT THEN NULL ELSE 5 * $4::BIGINT END,
             12, 2048, 12, NULL, NULL, format('wf-%s', lpad(i::text, 7, '0')),
             format('run-%s', lpad(i::text, 7, '0')), NULL, $5::BYTEA
         FROM generate_series(0::BIGINT, $1::BIGINT - 1) AS i",
        &[&(total as i64), &(open as i64), &BASE_NS, &SECOND_NS, &info_template()],
    )?;
    tx.execute(
        "INSERT INTO visibility_attributes (run_id, namespace, name, value_text, value_int, value_double)
         SELECT format('run-%s', lpad(i::text, 7, '0')), 'default', 'CustomerId', 'cust-' || (i % 1000), NULL, NULL
         FROM generate_series(0::BIGINT, $1::BIGINT - 1) AS i",
        &[&(total as i64)],
    )?;
    tx.batch_execute(
        "DELETE FROM visibility_counts;
         INSERT INTO visibility_counts (namespace, status, n)
             SELECT namespace, status, COUNT(*) FROM visibility WHERE namespace_division IS NULL
             GROUP BY namespace, status;
         ALTER TABLE visibility ENABLE TRIGGER visibility_count;",
    )?;
    tx.commit()?;
    client.batch_execute("ANALYZE visibility; ANALYZE visibility_attributes;")?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times `call` `iterations` times (after one warm-up call); (p50, p99) in milliseconds.
async fn measure<F, Fut>(iterations: usize, mut call: F) -> Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    call().await?;
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        call().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

async fn list(client: &Client, query: &str, token: Vec<u8>) -> Result<(usize, Vec<u8>)> {
    let request = ListWorkflowExecutionsRequest {
        namespace: "default".into(),
        page_size: 0,
        next_page_token: token,
        query: query.into(),
    };
    let page = client.connection().workflow_service().list_workflow_executions(tonic::Request::new(request)).await?;
    let page = page.into_inner();
    Ok((page.executions.len(), page.next_page_token))
}

async fn count(client: &Client, query: &str) -> Result<i64> {
    let request = CountWorkflowExecutionsRequest { namespace: "default".into(), query: query.into() };
    let counted =
        client.connection().workflow_service().count_workflow_executions(tonic::Request::new(request)).await?;
    Ok(counted.into_inner().count)
}

pub async fn run(options: Options) -> Result<()> {
    let binary = tempora_binary(options.tempora)?;
    let dir = std::env::temp_dir().join(format!("tempora-bench-vis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db = match &options.db {
        Some(db) => db.clone(),
        None => dir.join("visibility.db").to_str().context("path")?.to_string(),
    };
    let total = options.closed + options.open;
    // The server creates the schema and the namespace; the custom attribute is registered
    // through the API, as a user would.
    let mut server = start_tempora(&binary, &db).await?;
    let client = connect(&server.address).await?;
    let add = AddSearchAttributesRequest {
        namespace: "default".into(),
        search_attributes: [("CustomerId".to_string(), IndexedValueType::Keyword as i32)].into(),
    };
    client.connection().operator_service().add_search_attributes(tonic::Request::new(add)).await?;
    server.child.kill().await?;
    let _ = server.child.wait().await;

    let t = Instant::now();
    // The synchronous drivers run off the async runtime.
    let (fill_db, open) = (db.clone(), options.open);
    tokio::task::spawn_blocking(move || {
        if fill_db.starts_with("postgres") {
            fill_postgres(&fill_db, total, open)
        } else {
            fill_sqlite(&fill_db, total, open)
        }
    })
    .await??;
    println!("loaded {} closed + {} open runs in {:.1} s", options.closed, options.open, t.elapsed().as_secs_f64());

    let server = start_tempora(&binary, &db).await?;
    let client = connect(&server.address).await?;
    assert_eq!(count(&client, "").await?, total as i64, "every loaded run is counted");
    // The token of page 50 (1,000 runs a page), found once.
    let mut token = Vec::new();
    for _ in 0..49 {
        token = list(&client, "", token).await?.1;
    }
    let day = |d: i64| BASE_NS + d * 86_400 * SECOND_NS;
    let close_range = format!("CloseTime BETWEEN {} AND {}", day(3), day(3) + 3600 * SECOND_NS);
    let n = options.iterations;
    let c = &client;
    let rows: Vec<(&str, (f64, f64))> = vec![
        ("list, first page (1,000 runs)", measure(n, || async { list(c, "", Vec::new()).await.map(drop) }).await?),
        ("list, page 50 by token", measure(n, || async { list(c, "", token.clone()).await.map(drop) }).await?),
        ("count", measure(n, || async { count(c, "").await.map(drop) }).await?),
        (
            "count GROUP BY ExecutionStatus",
            measure(n, || async { count(c, "GROUP BY ExecutionStatus").await.map(drop) }).await?,
        ),
        (
            "list CustomerId = 'cust-7' (custom Keyword)",
            measure(n, || async { list(c, "CustomerId = 'cust-7'", Vec::new()).await.map(drop) }).await?,
        ),
        (
            "list WorkflowId STARTS_WITH 'wf-00123'",
            measure(n, || async { list(c, "WorkflowId STARTS_WITH 'wf-00123'", Vec::new()).await.map(drop) }).await?,
        ),
        (
            "list CloseTime in a 1-hour range",
            measure(n, || async { list(c, &close_range, Vec::new()).await.map(drop) }).await?,
        ),
        (
            "count ExecutionStatus = 'Running'",
            measure(n, || async { count(c, "ExecutionStatus = 'Running'").await.map(drop) }).await?,
        ),
    ];
    let backend = if db.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    println!("\nvisibility on {backend}, {total} runs, {n} calls each (ms):");
    println!("{:<46} {:>8} {:>8}", "query", "p50", "p99");
    for (name, (p50, p99)) in rows {
        println!("{name:<46} {p50:>8.1} {p99:>8.1}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
