//! The PostgreSQL backend, for production and (later) several server nodes.
//!
//! Same contract as SQLite: one transaction per group of transitions, committed before any
//! RPC answers. Each execution row carries a version (its transition count) and an update
//! must name the version it read, so two writers can never interleave one run's history.
//! While PostgreSQL is unreachable every call fails with `Error::Backend` (clients see
//! UNAVAILABLE) and the next call reconnects; nothing acknowledged is lost. A connection whose
//! session ended while PostgreSQL stayed up (a restart, a terminated backend) is replaced and
//! the call run again on the new one, unless it is a commit that got as far as its COMMIT.
//!
//! Connections: the writer thread owns one (with its prepared statements) for group commits;
//! reads go through a pool (`r2d2`) so they run concurrently with commits and with each other.
//!
//! One server per database: the writer's session holds an advisory lock (the server lock),
//! taken at open and again on every reconnect, as SQLite's file lock. A second server waits a
//! moment for it (a killed server's session takes that long to end), then refuses to start,
//! naming the holder; a server whose connection dropped and whose lock another server took
//! commits nothing more (UNAVAILABLE). Several nodes on one database is the cluster's job.

use std::sync::Arc;
use std::time::Duration;

use postgres::{Client, NoTls, Statement};
use r2d2_postgres::PostgresConnectionManager;

use postgres::types::ToSql;

use super::{
    decode_execution, BatchJobRecord, Error, ExecutionRecord, NamespaceRecord, Reader, Record, RecordKind, Result,
    Store, WorkChange, WorkRow, Write,
};
use crate::visibility::{self, query, Bind, CountRequest, Counted, Cursor, GroupValue, ListRequest, Listed};

/// Most pooled read connections.
const READ_POOL_MAX: u32 = 8;
/// How long a read waits for a pooled connection (or for PostgreSQL to accept one) before it
/// fails as unavailable.
const READ_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbered migrations; the index + 1 is the schema version (table `tempora_schema`).
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_initial.sql"),
    include_str!("migrations/postgres/0002_row_version.sql"),
    include_str!("migrations/postgres/0003_visibility.sql"),
    include_str!("migrations/postgres/0004_batch_jobs.sql"),
    include_str!("migrations/postgres/0005_visibility_counts.sql"),
    include_str!("migrations/postgres/0006_records.sql"),
    include_str!("migrations/postgres/0007_run_work.sql"),
    include_str!("migrations/postgres/0008_cluster.sql"),
];

/// The advisory lock key of the server lock (`temp`), per database.
const SERVER_LOCK_KEY: i64 = 0x7465_6d70;
/// The advisory lock key migrations hold (`tmig`), per database.
const MIGRATION_LOCK_KEY: i64 = 0x746d_6967;
/// How long opening the store waits for the server lock.
const SERVER_LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long a reconnecting writer waits for it (its own dropped session may still hold it).
const SERVER_LOCK_REGAIN: Duration = Duration::from_secs(2);

/// Takes the server lock on this session, trying until `wait` has passed; then
/// `Error::Locked` naming the session that holds it. Cluster nodes take it shared (they
/// coexist), a single server exclusive: the two exclude each other.
fn take_server_lock(client: &mut Client, wait: Duration, shared: bool) -> Result<()> {
    let deadline = std::time::Instant::now() + wait;
    let take = match shared {
        true => "SELECT pg_try_advisory_lock_shared($1)",
        false => "SELECT pg_try_advisory_lock($1)",
    };
    loop {
        let row = client.query_one(take, &[&SERVER_LOCK_KEY]).map_err(backend)?;
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let holder = client
        .query_opt(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket'), a.backend_start::text
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objid::bigint = $1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&SERVER_LOCK_KEY],
        )
        .map_err(backend)?
        .map(|r| {
            format!(
                "{}, connected from {} since {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .unwrap_or_else(|| "a session that just ended; try again".into());
    let database: String = client.query_one("SELECT current_database()", &[]).map_err(backend)?.get(0);
    let mode = match shared {
        true => "; a single tempora (started without --cluster) serves it",
        false => "",
    };
    Err(Error::Locked(format!("PostgreSQL database {database} (held by {holder}{mode})")))
}

/// The name this server's sessions show in `pg_stat_activity`.
fn application_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("tempora pid {} on {}", std::process::id(), host.trim())
}

pub struct PostgresStore {
    config: postgres::Config,
    client: Option<(Client, Statements)>,
    readers: Arc<PostgresReader>,
    /// A cluster node's leases: every write of a shard's runs checks the shard's epoch.
    fence: Option<Arc<crate::cluster::Fence>>,
}

/// The read side: a pool of connections, created on demand and replaced when broken.
pub struct PostgresReader {
    /// `None` only while being dropped.
    pool: Option<r2d2::Pool<PostgresConnectionManager<NoTls>>>,
}

impl Drop for PostgresReader {
    /// Closing a synchronous connection blocks on its own runtime, which must not happen on an
    /// async worker thread (the last handle may be dropped there), so the pool closes on its
    /// own thread.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new().name("tempora-pool-close".into()).spawn(move || drop(pool));
        }
    }
}

/// The hot-path statements, prepared once per connection: each then costs one round trip.
struct Statements {
    insert_execution: Statement,
    update_execution: Statement,
    insert_events: Statement,
    upsert_current: Statement,
    upsert_visibility: Statement,
    delete_attributes: Statement,
    insert_attributes: Statement,
    delete_run_work: Statement,
    delete_work: Statement,
    insert_work: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements> {
        Ok(Statements {
            insert_execution: client
                .prepare(
                    "INSERT INTO executions (run_id, namespace, workflow_id, status, state, db_version)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .map_err(backend)?,
            update_execution: client
                .prepare(
                    "UPDATE executions SET status = $2, state = $3, db_version = $4
                     WHERE run_id = $1 AND db_version = $5",
                )
                .map_err(backend)?,
            // All of a transition's events in one statement.
            insert_events: client
                .prepare(
                    "INSERT INTO history_events (run_id, event_id, data)
                     SELECT $1, e.id, e.data FROM UNNEST($2::BIGINT[], $3::BYTEA[]) AS e(id, data)",
                )
                .map_err(backend)?,
            upsert_current: client
                .prepare(
                    "INSERT INTO current_executions (namespace, workflow_id, run_id) VALUES ($1, $2, $3)
                     ON CONFLICT (namespace, workflow_id) DO UPDATE SET run_id = excluded.run_id",
                )
                .map_err(backend)?,
            upsert_visibility: client.prepare(&visibility::upsert_sql(query::Dialect::Postgres)).map_err(backend)?,
            delete_run_work: client.prepare("DELETE FROM run_work WHERE run_id = $1").map_err(backend)?,
            delete_work: client
                .prepare("DELETE FROM run_work WHERE run_id = $1 AND item = ANY($2::TEXT[])")
                .map_err(backend)?,
            // All of a transition's new entries in one statement.
            insert_work: client
                .prepare(
                    "INSERT INTO run_work (run_id, item, namespace, workflow_id, shard, due_ms)
                     SELECT $1, w.item, $3, $4, $5, w.due FROM UNNEST($2::TEXT[], $6::BIGINT[]) AS w(item, due)",
                )
                .map_err(backend)?,
            delete_attributes: client
                .prepare("DELETE FROM visibility_attributes WHERE run_id = $1")
                .map_err(backend)?,
            // All of a run's attribute values in one statement.
            insert_attributes: client
                .prepare(
                    "INSERT INTO visibility_attributes (run_id, namespace, name, value_text, value_int, value_double)
                     SELECT $1, $2, a.name, a.t, a.i, a.d
                     FROM UNNEST($3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::DOUBLE PRECISION[]) AS a(name, t, i, d)",
                )
                .map_err(backend)?,
        })
    }
}

fn write_visibility(tx: &mut postgres::Transaction<'_>, st: &Statements, row: &visibility::Row) -> Result<()> {
    let values: Vec<Box<dyn ToSql + Sync>> = row.values().into_iter().map(bind).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
    tx.execute(&st.upsert_visibility, &refs).map_err(backend)?;
    if row.attributes_unchanged {
        return Ok(());
    }
    tx.execute(&st.delete_attributes, &[&row.run_id]).map_err(backend)?;
    if !row.attributes.is_empty() {
        let names: Vec<&str> = row.attributes.iter().map(|a| a.name.as_str()).collect();
        let texts: Vec<Option<&str>> = row.attributes.iter().map(|a| a.text.as_deref()).collect();
        let ints: Vec<Option<i64>> = row.attributes.iter().map(|a| a.int).collect();
        let doubles: Vec<Option<f64>> = row.attributes.iter().map(|a| a.double).collect();
        tx.execute(&st.insert_attributes, &[&row.run_id, &row.namespace, &names, &texts, &ints, &doubles])
            .map_err(backend)?;
    }
    Ok(())
}

fn bind(b: Bind) -> Box<dyn ToSql + Sync> {
    match b {
        Bind::Text(s) => Box::new(s),
        Bind::Int(n) => Box::new(n),
        Bind::Double(f) => Box::new(f),
        Bind::Bytes(b) => Box::new(b),
    }
}

fn param(v: query::SqlValue) -> Box<dyn ToSql + Sync> {
    match v {
        query::SqlValue::Text(s) => Box::new(s),
        query::SqlValue::Int(n) => Box::new(n),
        query::SqlValue::Double(f) => Box::new(f),
    }
}

fn list(client: &mut Client, request: &ListRequest) -> Result<Vec<Listed>> {
    let (sql, params) = visibility::list_sql(request, query::Dialect::Postgres);
    let params: Vec<Box<dyn ToSql + Sync>> = params.into_iter().map(param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v.as_ref()).collect();
    let rows = client.query(&sql, &refs).map_err(backend)?;
    Ok(rows
        .into_iter()
        .map(|r| (Cursor { sort_time: r.get(0), start_time: r.get(1), run_id: r.get(2) }, r.get::<_, Vec<u8>>(3)))
        .collect())
}

fn count(client: &mut Client, request: &CountRequest) -> Result<Counted> {
    let (sql, params, int) = visibility::count_sql(request, query::Dialect::Postgres);
    let params: Vec<Box<dyn ToSql + Sync>> = params.into_iter().map(param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v.as_ref()).collect();
    let rows = client.query(&sql, &refs).map_err(backend)?;
    let mut counted = Counted::default();
    for r in rows {
        let n: i64 = r.get(1);
        counted.total += n;
        if request.group_by.is_some() {
            let value = if int { GroupValue::Int(r.get(0)) } else { GroupValue::Text(r.get(0)) };
            counted.groups.push((value, n));
        }
    }
    Ok(counted)
}

fn backend(e: postgres::Error) -> Error {
    // A server error's own text is in its source: the error itself only says "db error".
    let what = match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => e.to_string(),
    };
    tracing::warn!(error = %what, "postgres error");
    match e.code() {
        Some(&postgres::error::SqlState::DISK_FULL) => Error::Full(what),
        _ => Error::Backend(what),
    }
}

impl PostgresStore {
    /// Connects and migrates the schema (creating it on an empty database), as the one server
    /// of the database.
    pub fn open(url: &str) -> Result<PostgresStore> {
        Self::open_as(url, None)
    }

    /// Opens the store of a cluster node: the server lock is shared with the other nodes, and
    /// each transaction that writes a shard's runs first checks that `fence` holds the
    /// shard's lease at the epoch the database has (`Error::Fenced` otherwise).
    pub(crate) fn open_cluster(url: &str, fence: Arc<crate::cluster::Fence>) -> Result<PostgresStore> {
        Self::open_as(url, Some(fence))
    }

    fn open_as(url: &str, fence: Option<Arc<crate::cluster::Fence>>) -> Result<PostgresStore> {
        let mut config: postgres::Config = url.parse().map_err(backend)?;
        config.application_name(&application_name());
        let mut client = writer_session(&config, SERVER_LOCK_WAIT, fence.is_some())?;
        migrate(&mut client)?;
        let statements = Statements::prepare(&mut client)?;
        let pool = r2d2::Pool::builder()
            .max_size(READ_POOL_MAX)
            .min_idle(Some(1))
            .connection_timeout(READ_CONNECT_TIMEOUT)
            // A broken connection is noticed on use (and dropped by the pool); checking each
            // one before use would cost a round trip per read.
            .test_on_check_out(false)
            .build(PostgresConnectionManager::new(config.clone(), NoTls))
            .map_err(|e| Error::Backend(format!("read pool: {e}")))?;
        let readers = Arc::new(PostgresReader { pool: Some(pool) });
        Ok(PostgresStore { config, client: Some((client, statements)), readers, fence })
    }

    /// Runs the read `f` on the connection, (re)connecting first if needed; a connection
    /// found broken afterwards is dropped so the next call reconnects (see
    /// `with_client_unless`: a read may run twice).
    fn with_client<T>(&mut self, f: impl FnMut(&mut Client, &Statements) -> Result<T>) -> Result<T> {
        self.with_client_unless(|| false, f)
    }

    /// `with_client`, and a connection that died (PostgreSQL restarted, the session was
    /// terminated: noticed only on use) costs no failure: `f` runs once more on a new
    /// connection — unless `committed_maybe` says `f` got as far as sending its COMMIT, whose
    /// outcome is then unknown (the caller reports the failure and reloads). Before COMMIT,
    /// PostgreSQL rolls back a transaction whose session ends, so running it again is safe.
    /// A connection made by this call is not retried: PostgreSQL is down, not a session.
    fn with_client_unless<T>(
        &mut self,
        committed_maybe: impl Fn() -> bool,
        mut f: impl FnMut(&mut Client, &Statements) -> Result<T>,
    ) -> Result<T> {
        let mut connected_now = false;
        loop {
            if self.client.as_ref().is_none_or(|(c, _)| c.is_closed()) {
                self.client = None;
                let mut client = writer_session(&self.config, SERVER_LOCK_REGAIN, self.fence.is_some())?;
                let statements = Statements::prepare(&mut client)?;
                self.client = Some((client, statements));
                connected_now = true;
            }
            let (client, statements) = self.client.as_mut().expect("connected above");
            let result = f(client, statements);
            if result.is_err() && lost(client, &result) {
                self.client = None;
                if !connected_now && !committed_maybe() {
                    continue;
                }
            }
            return result;
        }
    }
}

/// A new session for the writer: connected and holding the server lock (waiting up to
/// `lock_wait` for it); on a cluster node, with `end_paused_writes` set.
fn writer_session(config: &postgres::Config, lock_wait: Duration, cluster: bool) -> Result<Client> {
    let mut client = config.connect(NoTls).map_err(backend)?;
    take_server_lock(&mut client, lock_wait, cluster)?;
    if cluster {
        end_paused_writes(&mut client)?;
    }
    Ok(client)
}

/// Whether the connection a call failed on is gone. A terminated session's error can arrive
/// before the client marks itself closed, so a storage error is followed by a probe (one
/// round trip, on failures only); a conflict or fencing refusal is an answer, not a loss.
fn lost<T>(client: &mut Client, result: &Result<T>) -> bool {
    client.is_closed() || (matches!(result, Err(Error::Backend(_))) && client.is_valid(PROBE_TIMEOUT).is_err())
}

/// How long a probe of a connection that just failed a call may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

fn history(client: &mut Client, run_id: &str) -> Result<Vec<Vec<u8>>> {
    let rows = client
        .query("SELECT data FROM history_events WHERE run_id = $1 ORDER BY event_id", &[&run_id])
        .map_err(backend)?;
    Ok(rows.into_iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
}

fn load_execution(client: &mut Client, run_id: &str) -> Result<Option<ExecutionRecord>> {
    let row = client.query_opt("SELECT state FROM executions WHERE run_id = $1", &[&run_id]).map_err(backend)?;
    match row {
        None => Ok(None),
        Some(row) => {
            let state: Vec<u8> = row.get(0);
            decode_execution(&state, history(client, run_id)?).map(Some)
        }
    }
}

fn load_work(client: &mut Client, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
    let rows = client
        .query(
            "SELECT namespace, workflow_id, run_id, item, due_ms FROM run_work
             WHERE due_ms >= $1 AND due_ms < $2 ORDER BY due_ms",
            &[&from_ms, &to_ms],
        )
        .map_err(backend)?;
    Ok(work_rows(rows))
}

fn work_rows(rows: Vec<postgres::Row>) -> Vec<WorkRow> {
    rows.into_iter()
        .map(|r| WorkRow {
            namespace: r.get(0),
            workflow_id: r.get(1),
            run_id: r.get(2),
            item: r.get(3),
            due_ms: r.get(4),
        })
        .collect()
}

fn load_shard_work(client: &mut Client, shards: &[i32], to_ms: i64) -> Result<Vec<WorkRow>> {
    let rows = client
        .query(
            "SELECT namespace, workflow_id, run_id, item, due_ms FROM run_work
             WHERE shard = ANY($1) AND due_ms < $2 ORDER BY due_ms",
            &[&shards, &to_ms],
        )
        .map_err(backend)?;
    Ok(work_rows(rows))
}

fn load_namespaces(client: &mut Client) -> Result<Vec<NamespaceRecord>> {
    let rows = client.query("SELECT data FROM namespaces ORDER BY name", &[]).map_err(backend)?;
    rows.iter()
        .map(|r| {
            let data: String = r.get(0);
            serde_json::from_str(&data).map_err(|e| Error::Corrupt(format!("namespace: {e}")))
        })
        .collect()
}

fn has_work(client: &mut Client, run_id: &str, item: &str) -> Result<bool> {
    let row = client
        .query_opt("SELECT 1 FROM run_work WHERE run_id = $1 AND item = $2", &[&run_id, &item])
        .map_err(backend)?;
    Ok(row.is_some())
}

/// A run's change to the work index, with the statements `prepare` made (or made for the
/// occasion, during a migration).
fn write_work(
    tx: &mut postgres::Transaction<'_>,
    statements: (&Statement, &Statement, &Statement),
    (namespace, workflow_id, run_id): (&String, &String, &String),
    change: &WorkChange,
) -> Result<()> {
    let (delete_run, delete, insert) = statements;
    if change.replace {
        tx.execute(delete_run, &[run_id]).map_err(backend)?;
    }
    if !change.removed.is_empty() {
        tx.execute(delete, &[run_id, &change.removed]).map_err(backend)?;
    }
    if !change.added.is_empty() {
        let items: Vec<&str> = change.added.iter().map(|(item, _)| item.as_str()).collect();
        let due: Vec<i64> = change.added.iter().map(|(_, due)| *due).collect();
        tx.execute(insert, &[run_id, &items, namespace, workflow_id, &change.shard, &due]).map_err(backend)?;
    }
    Ok(())
}

fn load_current_run(client: &mut Client, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "SELECT run_id FROM current_executions WHERE namespace = $1 AND workflow_id = $2",
            &[&namespace, &workflow_id],
        )
        .map_err(backend)?;
    Ok(row.map(|r| r.get(0)))
}

impl PostgresReader {
    /// Runs the read `f` on a pooled connection. A pooled connection whose session ended
    /// (PostgreSQL restarted, the backend was terminated) is only noticed when a read fails on
    /// it; reads change nothing, so such a read runs again on another connection (the pool
    /// drops the broken one) rather than fail once for every connection the pool held.
    fn with_client<T>(&self, f: impl Fn(&mut Client) -> Result<T>) -> Result<T> {
        let pool = self.pool.as_ref().ok_or(Error::Closed)?;
        let mut attempts_left = READ_POOL_MAX + 1;
        loop {
            let mut conn = pool.get().map_err(|e| Error::Backend(format!("no read connection: {e}")))?;
            let result = f(&mut conn);
            attempts_left -= 1;
            if result.is_ok() || !lost(&mut conn, &result) || attempts_left == 0 {
                return result;
            }
        }
    }
}

impl Reader for PostgresReader {
    fn concurrency_max(&self) -> usize {
        READ_POOL_MAX as usize
    }

    fn load_execution(&self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        self.with_client(|client| load_execution(client, run_id))
    }

    fn load_current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        self.with_client(|client| load_current_run(client, namespace, workflow_id))
    }

    fn load_work(&self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
        self.with_client(|client| load_work(client, from_ms, to_ms))
    }

    fn has_work(&self, run_id: &str, item: &str) -> Result<bool> {
        self.with_client(|client| has_work(client, run_id, item))
    }

    fn load_shard_work(&self, shards: &[i32], to_ms: i64) -> Result<Vec<WorkRow>> {
        self.with_client(|c| load_shard_work(c, shards, to_ms))
    }

    fn load_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        self.with_client(load_namespaces)
    }

    fn load_records(&self) -> Result<Vec<Record>> {
        self.with_client(load_records)
    }

    fn load_batch_jobs(&self) -> Result<Vec<BatchJobRecord>> {
        self.with_client(load_batch_jobs)
    }

    fn list_executions(&self, request: &ListRequest) -> Result<Vec<Listed>> {
        self.with_client(|client| list(client, request))
    }

    fn count_executions(&self, request: &CountRequest) -> Result<Counted> {
        self.with_client(|client| count(client, request))
    }
}

/// The schema version that added visibility: a database upgraded to it gets a row for each
/// run it already holds.
const VISIBILITY_VERSION: usize = 3;
/// The schema version that added the work index: filled from the open runs it already holds.
const WORK_VERSION: usize = 7;

fn backfill_work(tx: &mut postgres::Transaction<'_>) -> Result<()> {
    let running = crate::engine::state::RunStatus::Running.number();
    let states: Vec<Vec<u8>> = tx
        .query("SELECT state FROM executions WHERE status = $1", &[&running])
        .map_err(backend)?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let delete_run = tx.prepare("DELETE FROM run_work WHERE run_id = $1").map_err(backend)?;
    let delete = tx.prepare("DELETE FROM run_work WHERE run_id = $1 AND item = ANY($2::TEXT[])").map_err(backend)?;
    let insert = tx
        .prepare(
            "INSERT INTO run_work (run_id, item, namespace, workflow_id, shard, due_ms)
             SELECT $1, w.item, $3, $4, $5, w.due FROM UNNEST($2::TEXT[], $6::BIGINT[]) AS w(item, due)",
        )
        .map_err(backend)?;
    for state in states {
        let record = decode_execution(&state, Vec::new())?;
        let key = &record.state.key;
        let names = (&key.namespace.to_string(), &key.workflow_id.to_string(), &key.run_id.to_string());
        write_work(tx, (&delete_run, &delete, &insert), names, &WorkChange::replace(&record.state))?;
    }
    Ok(())
}

fn backfill_visibility(tx: &mut postgres::Transaction<'_>) -> Result<()> {
    let states: Vec<Vec<u8>> =
        tx.query("SELECT state FROM executions", &[]).map_err(backend)?.into_iter().map(|r| r.get(0)).collect();
    let mut rows = Vec::new();
    for state in states {
        let record = decode_execution(&state, Vec::new())?;
        rows.push(visibility::Row::of(&record.state));
    }
    let upsert = tx.prepare(&visibility::upsert_sql(query::Dialect::Postgres)).map_err(backend)?;
    let insert = tx.prepare(&visibility::attribute_insert_sql(query::Dialect::Postgres)).map_err(backend)?;
    for row in rows {
        let values: Vec<Box<dyn ToSql + Sync>> = row.values().into_iter().map(bind).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        tx.execute(&upsert, &refs).map_err(backend)?;
        for attribute in row.attribute_values() {
            let values: Vec<Box<dyn ToSql + Sync>> = attribute.into_iter().map(bind).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
            tx.execute(&insert, &refs).map_err(backend)?;
        }
    }
    Ok(())
}

/// A cluster node's check, first in every transaction: each shard whose runs it writes is
/// leased to this node at the epoch it holds (`FOR SHARE`: a takeover's epoch bump waits for
/// this transaction, and this transaction fails if the bump came first). A node that lost a
/// lease, however long it was paused, commits nothing to the shard's runs.
fn check_fence(tx: &mut postgres::Transaction<'_>, fence: &crate::cluster::Fence, writes: &[Write]) -> Result<()> {
    use crate::shard::ShardId;
    let mut wanted: Vec<(i32, i64)> = Vec::new();
    for write in writes {
        let (namespace, workflow_id) = match write {
            Write::Execution { namespace, workflow_id, .. }
            | Write::Current { namespace, workflow_id, .. }
            | Write::DeleteExecution { namespace, workflow_id, .. } => (namespace, workflow_id),
            _ => continue,
        };
        wanted_shard(&mut wanted, fence, ShardId::of_workflow(namespace, workflow_id))?;
    }
    if writes.iter().any(Write::is_registry) {
        wanted_shard(&mut wanted, fence, ShardId::REGISTRY)?;
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let shards: Vec<i32> = wanted.iter().map(|(s, _)| *s).collect();
    let rows = tx
        .query(
            "SELECT shard, epoch FROM shard_leases WHERE shard = ANY($1) AND owner = $2 ORDER BY shard FOR SHARE",
            &[&shards, &fence.node],
        )
        .map_err(backend)?;
    for (shard, epoch) in wanted {
        let current = rows.iter().find(|r| r.get::<_, i32>(0) == shard).map(|r| r.get::<_, i64>(1));
        if current != Some(epoch) {
            return Err(Error::Fenced(format!("shard {shard} was taken over (epoch {epoch} is stale)")));
        }
    }
    Ok(())
}

/// Adds a shard the transaction writes to, at the epoch this node holds it.
fn wanted_shard(
    wanted: &mut Vec<(i32, i64)>,
    fence: &crate::cluster::Fence,
    shard: crate::shard::ShardId,
) -> Result<()> {
    let epoch = fence.epoch(shard).ok_or_else(|| Error::Fenced(format!("shard {shard} is not held by this node")))?;
    if !wanted.iter().any(|(s, _)| *s == shard.0 as i32) {
        wanted.push((shard.0 as i32, epoch));
    }
    Ok(())
}

fn load_batch_jobs(client: &mut Client) -> Result<Vec<BatchJobRecord>> {
    let rows = client.query("SELECT data FROM batch_jobs", &[]).map_err(backend)?;
    rows.into_iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| Error::Corrupt(format!("batch job: {e}"))))
        .collect()
}

fn load_records(client: &mut Client) -> Result<Vec<Record>> {
    let rows = client.query("SELECT kind, scope, id, data FROM records", &[]).map_err(backend)?;
    rows.into_iter()
        .map(|r| {
            let kind: &str = r.get(0);
            let kind = RecordKind::from_name(kind).ok_or_else(|| Error::Corrupt(format!("record kind {kind}")))?;
            Ok(Record { kind, scope: r.get(1), id: r.get(2), data: r.get(3) })
        })
        .collect()
}

/// A cluster node's writer holds its shards' lease rows (`FOR SHARE`) while it commits: if
/// the node is paused (SIGSTOP, a VM freeze) inside a transaction, PostgreSQL ends the session
/// after a few seconds idle in it, so the takeover of its shards is not blocked behind it.
fn end_paused_writes(client: &mut Client) -> Result<()> {
    client.batch_execute("SET idle_in_transaction_session_timeout = '5s'").map_err(backend)
}

/// A cluster node tells the others that the namespaces changed (delivered at commit).
fn notify_namespaces(tx: &mut postgres::Transaction<'_>, fence: &Option<Arc<crate::cluster::Fence>>) -> Result<()> {
    if fence.is_some() {
        let notify = format!("NOTIFY {}", crate::cluster::leases::NAMESPACES_CHANNEL);
        tx.batch_execute(&notify).map_err(backend)?;
    }
    Ok(())
}

/// A cluster node tells the others that records of a kind changed (delivered at commit; one
/// notification per kind per transaction, as PostgreSQL folds identical ones).
fn notify_records(
    tx: &mut postgres::Transaction<'_>,
    fence: &Option<Arc<crate::cluster::Fence>>,
    kind: RecordKind,
) -> Result<()> {
    if fence.is_some() {
        let notify = format!("NOTIFY {}, '{}'", crate::cluster::leases::RECORDS_CHANNEL, kind.as_str());
        tx.batch_execute(&notify).map_err(backend)?;
    }
    Ok(())
}

fn migrate(client: &mut Client) -> Result<()> {
    {
        let mut tx = client.transaction().map_err(backend)?;
        // Servers starting at once on an empty database (a cluster's nodes) migrate one after
        // the other: `CREATE TABLE IF NOT EXISTS` alone races (one of them fails).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tempora_schema (version INTEGER NOT NULL);
             LOCK TABLE tempora_schema IN EXCLUSIVE MODE;",
        )
        .map_err(backend)?;
        let version: i32 = match tx.query_opt("SELECT version FROM tempora_schema", &[]).map_err(backend)? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO tempora_schema (version) VALUES (0)", &[]).map_err(backend)?;
                0
            }
        };
        let supported = MIGRATIONS.len() as i64;
        if version as i64 > supported {
            return Err(Error::TooNew { found: version as i64, supported });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql).map_err(backend)?;
            if i + 1 == VISIBILITY_VERSION {
                backfill_visibility(&mut tx)?;
            }
            if i + 1 == WORK_VERSION {
                backfill_work(&mut tx)?;
            }
            tx.execute("UPDATE tempora_schema SET version = $1", &[&(i as i32 + 1)]).map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

impl Store for PostgresStore {
    fn commit(&mut self, writes: &[Write]) -> Result<()> {
        let fence = self.fence.clone();
        let committing = std::cell::Cell::new(false);
        self.with_client_unless(
            || committing.get(),
            |client, st| {
                let mut tx = client.transaction().map_err(backend)?;
                if let Some(fence) = &fence {
                    check_fence(&mut tx, fence, writes)?;
                }
                for write in writes {
                    match write {
                        Write::Execution {
                            run_id,
                            namespace,
                            workflow_id,
                            status,
                            version,
                            expected_version,
                            state_json,
                            new_events,
                            visibility,
                            work,
                        } => {
                            let version = *version as i64;
                            let written = match expected_version {
                                None => tx
                                    .execute(
                                        &st.insert_execution,
                                        &[run_id, namespace, workflow_id, status, state_json, &version],
                                    )
                                    .map_err(backend)?,
                                Some(expected) => tx
                                    .execute(
                                        &st.update_execution,
                                        &[run_id, status, state_json, &version, &(*expected as i64)],
                                    )
                                    .map_err(backend)?,
                            };
                            if written != 1 {
                                return Err(Error::Conflict(run_id.clone()));
                            }
                            if !new_events.is_empty() {
                                let ids: Vec<i64> = new_events.iter().map(|(id, _)| *id).collect();
                                let data: Vec<&[u8]> = new_events.iter().map(|(_, d)| d.as_slice()).collect();
                                tx.execute(&st.insert_events, &[run_id, &ids, &data]).map_err(backend)?;
                            }
                            if let Some(row) = visibility {
                                write_visibility(&mut tx, st, row)?;
                            }
                            let statements = (&st.delete_run_work, &st.delete_work, &st.insert_work);
                            write_work(&mut tx, statements, (namespace, workflow_id, run_id), work)?;
                        }
                        Write::Current { namespace, workflow_id, run_id } => {
                            tx.execute(&st.upsert_current, &[namespace, workflow_id, run_id]).map_err(backend)?;
                        }
                        Write::DeleteExecution { namespace, workflow_id, run_id } => {
                            tx.execute("DELETE FROM history_events WHERE run_id = $1", &[run_id]).map_err(backend)?;
                            tx.execute("DELETE FROM run_work WHERE run_id = $1", &[run_id]).map_err(backend)?;
                            tx.execute("DELETE FROM executions WHERE run_id = $1", &[run_id]).map_err(backend)?;
                            tx.execute("DELETE FROM visibility WHERE run_id = $1", &[run_id]).map_err(backend)?;
                            tx.execute("DELETE FROM visibility_attributes WHERE run_id = $1", &[run_id])
                                .map_err(backend)?;
                            tx.execute(
                            "DELETE FROM current_executions WHERE namespace = $1 AND workflow_id = $2 AND run_id = $3",
                            &[namespace, workflow_id, run_id],
                        )
                        .map_err(backend)?;
                        }
                        Write::DeleteNamespace { name } => {
                            tx.execute("DELETE FROM namespaces WHERE name = $1", &[name]).map_err(backend)?;
                            notify_namespaces(&mut tx, &fence)?;
                        }
                        Write::BatchJob(job) => {
                            let data = serde_json::to_string(job).expect("batch job serialises");
                            tx.execute(
                                "INSERT INTO batch_jobs (namespace, job_id, data) VALUES ($1, $2, $3)
                             ON CONFLICT (namespace, job_id) DO UPDATE SET data = excluded.data",
                                &[&job.namespace, &job.job_id, &data],
                            )
                            .map_err(backend)?;
                        }
                        Write::DeleteBatchJob { namespace, job_id } => {
                            tx.execute(
                                "DELETE FROM batch_jobs WHERE namespace = $1 AND job_id = $2",
                                &[namespace, job_id],
                            )
                            .map_err(backend)?;
                        }
                        Write::Record(record) => {
                            tx.execute(
                                "INSERT INTO records (kind, scope, id, data) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (kind, scope, id) DO UPDATE SET data = excluded.data",
                                &[&record.kind.as_str(), &record.scope, &record.id, &record.data],
                            )
                            .map_err(backend)?;
                            notify_records(&mut tx, &fence, record.kind)?;
                        }
                        Write::DeleteRecord { kind, scope, id } => {
                            tx.execute(
                                "DELETE FROM records WHERE kind = $1 AND scope = $2 AND id = $3",
                                &[&kind.as_str(), scope, id],
                            )
                            .map_err(backend)?;
                            notify_records(&mut tx, &fence, *kind)?;
                        }
                        Write::Namespace(ns) => {
                            let data = serde_json::to_string(ns).expect("namespace serialises");
                            tx.execute(
                                "INSERT INTO namespaces (name, id, data) VALUES ($1, $2, $3)
                             ON CONFLICT (name) DO UPDATE SET data = excluded.data",
                                &[&ns.name, &ns.id, &data],
                            )
                            .map_err(backend)?;
                            notify_namespaces(&mut tx, &fence)?;
                        }
                    }
                }
                committing.set(true);
                tx.commit().map_err(backend)
            },
        )
    }

    fn load_namespaces(&mut self) -> Result<Vec<NamespaceRecord>> {
        self.with_client(|client, _| load_namespaces(client))
    }

    fn load_batch_jobs(&mut self) -> Result<Vec<BatchJobRecord>> {
        self.with_client(|client, _| load_batch_jobs(client))
    }

    fn load_records(&mut self) -> Result<Vec<Record>> {
        self.with_client(|client, _| load_records(client))
    }

    fn load_work(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
        self.with_client(|client, _| load_work(client, from_ms, to_ms))
    }

    fn has_work(&mut self, run_id: &str, item: &str) -> Result<bool> {
        self.with_client(|client, _| has_work(client, run_id, item))
    }

    fn load_execution(&mut self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        self.with_client(|client, _| load_execution(client, run_id))
    }

    fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        self.with_client(|client, _| load_current_run(client, namespace, workflow_id))
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        Some(self.readers.clone())
    }

    fn list_executions(&mut self, request: &ListRequest) -> Result<Vec<Listed>> {
        self.with_client(|client, _| list(client, request))
    }

    fn count_executions(&mut self, request: &CountRequest) -> Result<Counted> {
        self.with_client(|client, _| count(client, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{MutableState, RunKey, RunStatus, UserTimer};

    /// A fresh database on the test PostgreSQL: an admin connection, the database's name and
    /// its URL; `None` (the test is skipped) when `TEMPORA_TEST_POSTGRES_URL` is unset.
    fn fresh_database(prefix: &str) -> Option<(Client, String, String)> {
        let Ok(base) = std::env::var("TEMPORA_TEST_POSTGRES_URL") else {
            eprintln!("TEMPORA_TEST_POSTGRES_URL is unset: PostgreSQL test skipped");
            return None;
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = Client::connect(&base, NoTls).expect("connect to the test PostgreSQL");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
        let url = crate::testing::with_database(&base, &name);
        Some((admin, name, url))
    }

    /// A database written before the work index gets one at upgrade, from its open runs.
    #[test]
    fn open_runs_stored_before_the_work_index_are_found_after_the_upgrade() {
        let Some((mut admin, name, url)) = fresh_database("tempora_upgrade") else { return };
        {
            let mut store = PostgresStore::open(&url).unwrap();
            let mut state = MutableState {
                key: RunKey::new("default", "old-wf", "old-run"),
                next_event_id: 2,
                status: RunStatus::Running,
                ..Default::default()
            };
            let timer = UserTimer { timer_id: "t".into(), started_event_id: 1, fire_time_ms: 9_000 };
            state.timers.insert("t".into(), timer);
            store.commit(&[Write::execution(&state, &[], None)]).unwrap();
            // Back to the schema of a tempora without the work index.
            let mut old = Client::connect(&url, NoTls).unwrap();
            old.batch_execute(
                "DROP TABLE run_work, cluster_nodes, shard_leases; UPDATE tempora_schema SET version = 6",
            )
            .unwrap();
        }
        let mut store = PostgresStore::open(&url).unwrap();
        let due = store.load_work(i64::MIN, i64::MAX).unwrap();
        drop(store);
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        assert_eq!(due.iter().map(|w| (w.run_id.as_str(), w.due_ms)).collect::<Vec<_>>(), [("old-run", 9_000)]);
    }

    /// Sessions ended under an idle store (a PostgreSQL restart, `pg_terminate_backend`) cost
    /// the next commit and reads nothing: they run again on new connections.
    #[test]
    fn a_commit_and_reads_on_connections_whose_sessions_ended_succeed_at_once() {
        let Some((mut admin, name, url)) = fresh_database("tempora_sessions") else { return };
        let mut store = PostgresStore::open(&url).unwrap();
        let reader = store.reader().expect("a reader");
        let run = |id: &str| MutableState {
            key: RunKey::new("default", id, id),
            next_event_id: 2,
            status: RunStatus::Running,
            ..Default::default()
        };
        store.commit(&[Write::execution(&run("before"), &[], None)]).unwrap();
        assert!(reader.load_execution("before").unwrap().is_some());
        let ended = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .unwrap()
            .len();
        // Both the writer's session and the pooled reader's.
        assert!(ended >= 2, "{ended} sessions ended");
        let after = store.commit(&[Write::execution(&run("after"), &[], None)]);
        let read = reader.load_execution("after");
        let read_by_writer = store.load_execution("before");
        drop((store, reader));
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        after.expect("the commit after the sessions ended");
        assert!(read.expect("the pooled read after the sessions ended").is_some());
        assert!(read_by_writer.expect("the writer's read after the sessions ended").is_some());
    }
}
