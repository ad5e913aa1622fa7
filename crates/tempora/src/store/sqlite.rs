//! The embedded SQLite backend (the default). WAL journal with `synchronous=FULL`: a committed
//! transaction survives power loss. The database file is locked exclusively (flock) for the
//! life of the store, so a second server cannot write the same file.

use std::fs::{File, OpenOptions};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    decode_execution, BatchJobRecord, Error, ExecutionRecord, NamespaceRecord, Reader, Record, RecordKind, Result,
    Store, WorkChange, WorkRow, Write,
};
use crate::visibility::{self, query, Bind, CountRequest, Counted, Cursor, GroupValue, ListRequest, Listed};

/// Numbered migrations; the index + 1 is the schema version (`PRAGMA user_version`).
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_initial.sql"),
    include_str!("migrations/sqlite/0002_row_version.sql"),
    include_str!("migrations/sqlite/0003_visibility.sql"),
    include_str!("migrations/sqlite/0004_batch_jobs.sql"),
    include_str!("migrations/sqlite/0005_visibility_counts.sql"),
    include_str!("migrations/sqlite/0006_records.sql"),
    include_str!("migrations/sqlite/0007_run_work.sql"),
];

/// The schema version that added visibility: a database upgraded to it gets a row for each
/// run it already holds.
const VISIBILITY_VERSION: usize = 3;
/// The schema version that added the work index: filled from the open runs it already holds.
const WORK_VERSION: usize = 7;

fn backfill_work(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let running = crate::engine::state::RunStatus::Running.number();
    let mut select = tx.prepare("SELECT state FROM executions WHERE status = ?1").map_err(backend)?;
    let mut rows = select.query([running]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let state: Vec<u8> = row.get(0).map_err(backend)?;
        let record = decode_execution(&state, Vec::new())?;
        let key = &record.state.key;
        write_work(tx, &key.namespace, &key.workflow_id, &key.run_id, &WorkChange::replace(&record.state))?;
    }
    Ok(())
}

fn write_work(
    tx: &rusqlite::Transaction<'_>,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    change: &WorkChange,
) -> Result<()> {
    if change.replace {
        tx.prepare_cached("DELETE FROM run_work WHERE run_id = ?1")
            .map_err(backend)?
            .execute([run_id])
            .map_err(backend)?;
    }
    let mut delete = tx.prepare_cached("DELETE FROM run_work WHERE run_id = ?1 AND item = ?2").map_err(backend)?;
    for item in &change.removed {
        delete.execute([run_id, item]).map_err(backend)?;
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO run_work (run_id, item, namespace, workflow_id, shard, due_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(backend)?;
    for (item, due_ms) in &change.added {
        insert.execute(params![run_id, item, namespace, workflow_id, change.shard, due_ms]).map_err(backend)?;
    }
    Ok(())
}

fn load_work(conn: &Connection, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT namespace, workflow_id, run_id, item, due_ms FROM run_work
             WHERE due_ms >= ?1 AND due_ms < ?2 ORDER BY due_ms",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([from_ms, to_ms], |r| {
            Ok(WorkRow {
                namespace: r.get(0)?,
                workflow_id: r.get(1)?,
                run_id: r.get(2)?,
                item: r.get(3)?,
                due_ms: r.get(4)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<std::result::Result<_, _>>().map_err(backend)
}

fn has_work(conn: &Connection, run_id: &str, item: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM run_work WHERE run_id = ?1 AND item = ?2")
        .map_err(backend)?
        .exists([run_id, item])
        .map_err(backend)
}

fn backfill_visibility(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let mut select = tx.prepare("SELECT state FROM executions").map_err(backend)?;
    let mut rows = select.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let state: Vec<u8> = row.get(0).map_err(backend)?;
        let record = decode_execution(&state, Vec::new())?;
        write_visibility(tx, &visibility::Row::of(&record.state))?;
    }
    Ok(())
}

pub struct SqliteStore {
    conn: Connection,
    /// The file, for readers beside the writer (`None` in memory: reads go to the writer).
    path: Option<String>,
    /// Held for its lock; dropping it releases the file.
    _lock: Option<File>,
}

fn backend(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Error::Full(e.to_string()),
        _ => Error::Backend(e.to_string()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one for `:memory:`.
    pub fn open(path: &str) -> Result<SqliteStore> {
        let (conn, lock) = if path == ":memory:" {
            (Connection::open_in_memory().map_err(backend)?, None)
        } else {
            let file = lock_file(path)?;
            (Connection::open(path).map_err(backend)?, Some(file))
        };
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;")
            .map_err(backend)?;
        let path = lock.as_ref().map(|_| path.to_string());
        let mut store = SqliteStore { conn, path, _lock: lock };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(Error::TooNew { found: version, supported });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(backend)?;
            tx.execute_batch(sql).map_err(backend)?;
            if i + 1 == VISIBILITY_VERSION {
                backfill_visibility(&tx)?;
            }
            if i + 1 == WORK_VERSION {
                backfill_work(&tx)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        Ok(())
    }
}

/// Opens (creating if needed) the database file and locks it exclusively: held for as long
/// as the returned file is, refused while another server (or restore) holds it.
fn lock_file(path: &str) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::Backend(format!("cannot open {path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(format!("database file {path}"))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Backend(format!("cannot lock {path}: {e}"))),
    }
}

/// What a backup or restore found in the copy.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSummary {
    pub schema_version: i64,
    pub executions: i64,
    pub bytes: u64,
}

/// Copies the database at `db` into a new file `out`, online: the copy is one read
/// transaction's snapshot (`VACUUM INTO`), so a server may go on writing meanwhile, and the
/// copy holds every transaction committed before it began. The copy is then checked.
pub fn backup(db: &str, out: &str) -> Result<BackupSummary> {
    if !std::path::Path::new(db).exists() {
        return Err(Error::Backend(format!("no database at {db}")));
    }
    if std::path::Path::new(out).exists() {
        return Err(Error::Backend(format!("{out} already exists; a backup never overwrites a file")));
    }
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(backend)?;
    conn.execute("VACUUM INTO ?1", params![out]).map_err(|e| Error::Backend(format!("backup to {out} failed: {e}")))?;
    drop(conn);
    let summary = check_copy(out)?;
    let file = File::open(out).map_err(|e| Error::Backend(format!("cannot open {out}: {e}")))?;
    file.sync_all().map_err(|e| Error::Backend(format!("cannot sync {out}: {e}")))?;
    Ok(summary)
}

/// Replaces the database at `db` with the backup `from`. The server must be stopped: the
/// database's lock is taken first (refused while a server holds it), the backup is checked,
/// then copied beside `db` and renamed over it, and the old write-ahead log is removed so it
/// cannot be replayed onto the restored file.
pub fn restore(from: &str, db: &str) -> Result<BackupSummary> {
    let summary = check_copy(from)?;
    let target = lock_file(db)?;
    let staging = format!("{db}.restoring");
    let io = |what: &str, e: std::io::Error| Error::Backend(format!("restore: cannot {what}: {e}"));
    std::fs::copy(from, &staging).map_err(|e| io(&format!("copy {from} to {staging}"), e))?;
    File::open(&staging).and_then(|f| f.sync_all()).map_err(|e| io(&format!("sync {staging}"), e))?;
    for suffix in ["-wal", "-shm"] {
        match std::fs::remove_file(format!("{db}{suffix}")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&format!("remove {db}{suffix}"), e)),
        }
    }
    std::fs::rename(&staging, db).map_err(|e| io(&format!("rename {staging} to {db}"), e))?;
    if let Some(dir) = std::path::Path::new(db).parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("sync the directory", e))?;
    }
    drop(target);
    Ok(summary)
}

/// Opens a copy read-only, runs SQLite's integrity check and reads its schema version and
/// execution count.
fn check_copy(path: &str) -> Result<BackupSummary> {
    let bad = |why: String| Error::Corrupt(format!("{path}: {why}"));
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| bad(format!("cannot open: {e}")))?;
    let check: String =
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| bad(format!("not a database: {e}")))?;
    if check != "ok" {
        return Err(bad(format!("integrity check failed: {check}")));
    }
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    if schema_version == 0 {
        return Err(bad("not a tempora database (no schema)".into()));
    }
    if schema_version > MIGRATIONS.len() as i64 {
        return Err(Error::TooNew { found: schema_version, supported: MIGRATIONS.len() as i64 });
    }
    let executions: i64 =
        conn.query_row("SELECT count(*) FROM executions", [], |r| r.get(0)).map_err(|e| bad(e.to_string()))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
    Ok(BackupSummary { schema_version, executions, bytes })
}

fn history(conn: &Connection, run_id: &str) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT data FROM history_events WHERE run_id = ?1 ORDER BY event_id").map_err(backend)?;
    let rows = stmt.query_map([run_id], |r| r.get::<_, Vec<u8>>(0)).map_err(backend)?;
    rows.collect::<std::result::Result<_, _>>().map_err(backend)
}

fn load_execution(conn: &Connection, run_id: &str) -> Result<Option<ExecutionRecord>> {
    let state: Option<Vec<u8>> = conn
        .query_row("SELECT state FROM executions WHERE run_id = ?1", [run_id], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    match state {
        None => Ok(None),
        Some(state) => decode_execution(&state, history(conn, run_id)?).map(Some),
    }
}

fn load_current_run(conn: &Connection, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT run_id FROM current_executions WHERE namespace = ?1 AND workflow_id = ?2",
        [namespace, workflow_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
}

impl Store for SqliteStore {
    fn commit(&mut self, writes: &[Write]) -> Result<()> {
        let tx = self.conn.transaction().map_err(backend)?;
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
                            .prepare_cached(
                                "INSERT INTO executions (run_id, namespace, workflow_id, status, state, db_version)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            )
                            .map_err(backend)?
                            .execute(params![run_id, namespace, workflow_id, status, state_json, version])
                            .map_err(backend)?,
                        Some(expected) => tx
                            .prepare_cached(
                                "UPDATE executions SET status = ?2, state = ?3, db_version = ?4
                                 WHERE run_id = ?1 AND db_version = ?5",
                            )
                            .map_err(backend)?
                            .execute(params![run_id, status, state_json, version, *expected as i64])
                            .map_err(backend)?,
                    };
                    if written != 1 {
                        return Err(Error::Conflict(run_id.clone()));
                    }
                    let mut insert = tx
                        .prepare_cached("INSERT INTO history_events (run_id, event_id, data) VALUES (?1, ?2, ?3)")
                        .map_err(backend)?;
                    for (event_id, data) in new_events {
                        insert.execute(params![run_id, event_id, data]).map_err(backend)?;
                    }
                    if let Some(row) = visibility {
                        write_visibility(&tx, row)?;
                    }
                    write_work(&tx, namespace, workflow_id, run_id, work)?;
                }
                Write::Current { namespace, workflow_id, run_id } => {
                    tx.prepare_cached(
                        "INSERT INTO current_executions (namespace, workflow_id, run_id) VALUES (?1, ?2, ?3)
                         ON CONFLICT (namespace, workflow_id) DO UPDATE SET run_id = excluded.run_id",
                    )
                    .map_err(backend)?
                    .execute(params![namespace, workflow_id, run_id])
                    .map_err(backend)?;
                }
                Write::DeleteExecution { namespace, workflow_id, run_id } => {
                    tx.execute("DELETE FROM history_events WHERE run_id = ?1", [run_id]).map_err(backend)?;
                    tx.execute("DELETE FROM run_work WHERE run_id = ?1", [run_id]).map_err(backend)?;
                    tx.execute("DELETE FROM executions WHERE run_id = ?1", [run_id]).map_err(backend)?;
                    tx.execute("DELETE FROM visibility WHERE run_id = ?1", [run_id]).map_err(backend)?;
                    tx.execute("DELETE FROM visibility_attributes WHERE run_id = ?1", [run_id]).map_err(backend)?;
                    tx.execute(
                        "DELETE FROM current_executions WHERE namespace = ?1 AND workflow_id = ?2 AND run_id = ?3",
                        [namespace, workflow_id, run_id],
                    )
                    .map_err(backend)?;
                }
                Write::DeleteNamespace { name } => {
                    tx.execute("DELETE FROM namespaces WHERE name = ?1", [name]).map_err(backend)?;
                }
                Write::BatchJob(job) => {
                    let data = serde_json::to_string(job).expect("batch job serialises");
                    tx.prepare_cached(
                        "INSERT INTO batch_jobs (namespace, job_id, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT (namespace, job_id) DO UPDATE SET data = excluded.data",
                    )
                    .map_err(backend)?
                    .execute(params![job.namespace, job.job_id, data])
                    .map_err(backend)?;
                }
                Write::DeleteBatchJob { namespace, job_id } => {
                    tx.execute("DELETE FROM batch_jobs WHERE namespace = ?1 AND job_id = ?2", [namespace, job_id])
                        .map_err(backend)?;
                }
                Write::Record(record) => {
                    tx.prepare_cached(
                        "INSERT INTO records (kind, scope, id, data) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (kind, scope, id) DO UPDATE SET data = excluded.data",
                    )
                    .map_err(backend)?
                    .execute(params![record.kind.as_str(), record.scope, record.id, record.data])
                    .map_err(backend)?;
                }
                Write::DeleteRecord { kind, scope, id } => {
                    tx.execute(
                        "DELETE FROM records WHERE kind = ?1 AND scope = ?2 AND id = ?3",
                        params![kind.as_str(), scope, id],
                    )
                    .map_err(backend)?;
                }
                Write::Namespace(ns) => {
                    let data = serde_json::to_string(ns).expect("namespace serialises");
                    tx.prepare_cached(
                        "INSERT INTO namespaces (name, id, data) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET data = excluded.data",
                    )
                    .map_err(backend)?
                    .execute(params![ns.name, ns.id, data])
                    .map_err(backend)?;
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn load_namespaces(&mut self) -> Result<Vec<NamespaceRecord>> {
        let mut stmt = self.conn.prepare("SELECT data FROM namespaces ORDER BY name").map_err(backend)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(backend)?;
        let mut out = Vec::new();
        for data in rows {
            let data = data.map_err(backend)?;
            out.push(serde_json::from_str(&data).map_err(|e| Error::Corrupt(format!("namespace: {e}")))?);
        }
        Ok(out)
    }

    fn load_batch_jobs(&mut self) -> Result<Vec<BatchJobRecord>> {
        let mut stmt = self.conn.prepare("SELECT data FROM batch_jobs").map_err(backend)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(backend)?;
        let mut out = Vec::new();
        for data in rows {
            let data = data.map_err(backend)?;
            out.push(serde_json::from_str(&data).map_err(|e| Error::Corrupt(format!("batch job: {e}")))?);
        }
        Ok(out)
    }

    fn load_records(&mut self) -> Result<Vec<Record>> {
        let mut stmt = self.conn.prepare("SELECT kind, scope, id, data FROM records").map_err(backend)?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, scope, id, data) = row.map_err(backend)?;
            let kind = RecordKind::from_name(&kind).ok_or_else(|| Error::Corrupt(format!("record kind {kind}")))?;
            out.push(Record { kind, scope, id, data });
        }
        Ok(out)
    }

    fn load_execution(&mut self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        load_execution(&self.conn, run_id)
    }

    fn load_work(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
        load_work(&self.conn, from_ms, to_ms)
    }

    fn has_work(&mut self, run_id: &str, item: &str) -> Result<bool> {
        has_work(&self.conn, run_id, item)
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        self.path.clone().map(|path| Arc::new(SqliteReader { path, idle: Mutex::new(Vec::new()) }) as Arc<dyn Reader>)
    }

    fn list_executions(&mut self, request: &ListRequest) -> Result<Vec<Listed>> {
        list(&self.conn, request)
    }

    fn count_executions(&mut self, request: &CountRequest) -> Result<Counted> {
        count(&self.conn, request)
    }

    fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        load_current_run(&self.conn, namespace, workflow_id)
    }
}

fn write_visibility(tx: &rusqlite::Transaction<'_>, row: &visibility::Row) -> Result<()> {
    tx.prepare_cached(&visibility::upsert_sql(query::Dialect::Sqlite))
        .map_err(backend)?
        .execute(rusqlite::params_from_iter(row.values().into_iter().map(bind)))
        .map_err(backend)?;
    if row.attributes_unchanged {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM visibility_attributes WHERE run_id = ?1")
        .map_err(backend)?
        .execute([&row.run_id])
        .map_err(backend)?;
    let mut insert = tx.prepare_cached(&visibility::attribute_insert_sql(query::Dialect::Sqlite)).map_err(backend)?;
    for values in row.attribute_values() {
        insert.execute(rusqlite::params_from_iter(values.into_iter().map(bind))).map_err(backend)?;
    }
    Ok(())
}

fn bind(b: Bind) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match b {
        Bind::Text(Some(s)) => Value::Text(s),
        Bind::Int(Some(n)) => Value::Integer(n),
        Bind::Double(Some(f)) => Value::Real(f),
        Bind::Text(None) | Bind::Int(None) | Bind::Double(None) => Value::Null,
        Bind::Bytes(b) => Value::Blob(b),
    }
}

fn param(v: query::SqlValue) -> rusqlite::types::Value {
    match v {
        query::SqlValue::Text(s) => rusqlite::types::Value::Text(s),
        query::SqlValue::Int(n) => rusqlite::types::Value::Integer(n),
        query::SqlValue::Double(f) => rusqlite::types::Value::Real(f),
    }
}

fn list(conn: &Connection, request: &ListRequest) -> Result<Vec<Listed>> {
    let (sql, params) = visibility::list_sql(request, query::Dialect::Sqlite);
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.into_iter().map(param)), |r| {
            Ok((Cursor { sort_time: r.get(0)?, start_time: r.get(1)?, run_id: r.get(2)? }, r.get::<_, Vec<u8>>(3)?))
        })
        .map_err(backend)?;
    rows.collect::<std::result::Result<_, _>>().map_err(backend)
}

fn count(conn: &Connection, request: &CountRequest) -> Result<Counted> {
    let (sql, params, int) = visibility::count_sql(request, query::Dialect::Sqlite);
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.into_iter().map(param)), |r| {
            let value = if int { GroupValue::Int(r.get(0)?) } else { GroupValue::Text(r.get(0)?) };
            Ok((value, r.get::<_, i64>(1)?))
        })
        .map_err(backend)?;
    let groups: Vec<(GroupValue, i64)> = rows.collect::<std::result::Result<_, _>>().map_err(backend)?;
    let total = groups.iter().map(|(_, n)| n).sum();
    let groups = if request.group_by.is_some() { groups } else { Vec::new() };
    Ok(Counted { total, groups })
}

/// Read connections to the store's file, beside the writer (WAL lets them read while it
/// writes); opened on demand, kept while idle.
struct SqliteReader {
    path: String,
    idle: Mutex<Vec<Connection>>,
}

/// Read connections: reads at once (`Reader::concurrency_max`), all kept open once opened (an
/// open parses the schema). On two cores more would only queue on the file's locks and pages.
const READERS_MAX: usize = 4;
/// Each read connection's page cache, in KiB (SQLite's default is 2,000). Reads are indexed
/// point lookups, and a connection's cache is void after each commit anyway (the writer
/// commits all the time): the OS's file cache is what serves them.
const READER_CACHE_KIB: u32 = 256;

impl SqliteReader {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().expect("sqlite readers lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(backend)?;
                conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
                conn.execute_batch(&format!("PRAGMA cache_size = -{READER_CACHE_KIB}")).map_err(backend)?;
                conn
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().expect("sqlite readers lock");
        if idle.len() < READERS_MAX {
            idle.push(conn);
        }
        result
    }
}

impl Reader for SqliteReader {
    fn concurrency_max(&self) -> usize {
        READERS_MAX
    }

    fn load_execution(&self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        self.with(|conn| load_execution(conn, run_id))
    }

    fn load_current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        self.with(|conn| load_current_run(conn, namespace, workflow_id))
    }

    fn load_work(&self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
        self.with(|conn| load_work(conn, from_ms, to_ms))
    }

    fn has_work(&self, run_id: &str, item: &str) -> Result<bool> {
        self.with(|conn| has_work(conn, run_id, item))
    }

    fn list_executions(&self, request: &ListRequest) -> Result<Vec<Listed>> {
        self.with(|conn| list(conn, request))
    }

    fn count_executions(&self, request: &CountRequest) -> Result<Counted> {
        self.with(|conn| count(conn, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let path = path.to_str().unwrap();
        let first = SqliteStore::open(path).unwrap();
        assert!(matches!(SqliteStore::open(path), Err(Error::Locked(_))));
        drop(first);
        SqliteStore::open(path).unwrap();
    }

    #[test]
    fn runs_stored_before_visibility_and_the_work_index_are_found_after_the_upgrade() {
        use crate::engine::state::{MutableState, RunKey, RunStatus, UserTimer};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let path = path.to_str().unwrap();
        {
            let mut store = SqliteStore::open(path).unwrap();
            let mut state = MutableState {
                key: RunKey::new("default", "old-wf", "old-run"),
                next_event_id: 2,
                status: RunStatus::Running,
                ..Default::default()
            };
            let timer = UserTimer { timer_id: "t".into(), started_event_id: 1, fire_time_ms: 9_000 };
            state.timers.insert("t".into(), timer);
            store.commit(&[Write::execution(&state, &[], None)]).unwrap();
            // Back to the schema of a tempora without visibility.
            store
                .conn
                .execute_batch(
                    "DROP TABLE visibility; DROP TABLE visibility_attributes; DROP TABLE visibility_counts;
                     DROP TABLE batch_jobs; DROP TABLE records; DROP TABLE run_work;
                     PRAGMA user_version = 2;",
                )
                .unwrap();
        }
        let mut store = SqliteStore::open(path).unwrap();
        let request = ListRequest {
            namespace: "default".into(),
            filter: None,
            hide_divisions: true,
            page_size: 10,
            after: None,
            by_run_id: false,
        };
        let listed = store.list_executions(&request).unwrap();
        assert_eq!(listed.iter().map(|(c, _)| c.run_id.as_str()).collect::<Vec<_>>(), ["old-run"]);
        // Its timer is in the work index, so a restart finds it without loading the run.
        let due = store.load_work(i64::MIN, i64::MAX).unwrap();
        assert_eq!(due.iter().map(|w| (w.run_id.as_str(), w.due_ms)).collect::<Vec<_>>(), [("old-run", 9_000)]);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let path = path.to_str().unwrap();
        {
            let conn = Connection::open(path).unwrap();
            conn.execute_batch("PRAGMA user_version = 99").unwrap();
        }
        assert!(matches!(SqliteStore::open(path), Err(Error::TooNew { found: 99, .. })));
    }
}
