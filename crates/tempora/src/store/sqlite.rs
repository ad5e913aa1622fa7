//! The embedded SQLite backend (the default). WAL journal with `synchronous=FULL`: a committed
//! transaction survives power loss. The database file is locked exclusively (flock) for the
//! life of the store, so a second server cannot write the same file.

use std::fs::{File, OpenOptions};

use rusqlite::{params, Connection, OptionalExtension};

use super::{decode_execution, Error, ExecutionRecord, NamespaceRecord, Result, Store, Write};

/// Numbered migrations; the index + 1 is the schema version (`PRAGMA user_version`).
pub const MIGRATIONS: &[&str] =
    &[include_str!("migrations/sqlite/0001_initial.sql"), include_str!("migrations/sqlite/0002_row_version.sql")];

pub struct SqliteStore {
    conn: Connection,
    /// Held for its lock; dropping it releases the file.
    _lock: Option<File>,
}

fn backend(e: rusqlite::Error) -> Error {
    Error::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one for `:memory:`.
    pub fn open(path: &str) -> Result<SqliteStore> {
        let (conn, lock) = if path == ":memory:" {
            (Connection::open_in_memory().map_err(backend)?, None)
        } else {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| Error::Backend(format!("cannot open {path}: {e}")))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked(path.to_string())),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::Backend(format!("cannot lock {path}: {e}"))),
            }
            (Connection::open(path).map_err(backend)?, Some(file))
        };
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;")
            .map_err(backend)?;
        let mut store = SqliteStore { conn, _lock: lock };
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
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        Ok(())
    }

    fn history(&self, run_id: &str) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM history_events WHERE run_id = ?1 ORDER BY event_id")
            .map_err(backend)?;
        let rows = stmt.query_map([run_id], |r| r.get::<_, Vec<u8>>(0)).map_err(backend)?;
        rows.collect::<std::result::Result<_, _>>().map_err(backend)
    }
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
                    tx.execute("DELETE FROM executions WHERE run_id = ?1", [run_id]).map_err(backend)?;
                    tx.execute(
                        "DELETE FROM current_executions WHERE namespace = ?1 AND workflow_id = ?2 AND run_id = ?3",
                        [namespace, workflow_id, run_id],
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

    fn load_open_executions(&mut self) -> Result<Vec<ExecutionRecord>> {
        let running = crate::engine::state::RunStatus::Running.number();
        let rows: Vec<(String, Vec<u8>)> = {
            let mut stmt =
                self.conn.prepare("SELECT run_id, state FROM executions WHERE status = ?1").map_err(backend)?;
            let rows = stmt.query_map([running], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
            rows.collect::<std::result::Result<_, _>>().map_err(backend)?
        };
        rows.into_iter().map(|(run_id, state)| decode_execution(&state, self.history(&run_id)?)).collect()
    }

    fn load_execution(&mut self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        let state: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT state FROM executions WHERE run_id = ?1", [run_id], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        match state {
            None => Ok(None),
            Some(state) => decode_execution(&state, self.history(run_id)?).map(Some),
        }
    }

    fn load_current_runs(&mut self) -> Result<Vec<(String, String, String)>> {
        let mut stmt =
            self.conn.prepare("SELECT namespace, workflow_id, run_id FROM current_executions").map_err(backend)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(backend)?;
        rows.collect::<std::result::Result<_, _>>().map_err(backend)
    }

    fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT run_id FROM current_executions WHERE namespace = ?1 AND workflow_id = ?2",
                [namespace, workflow_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
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
