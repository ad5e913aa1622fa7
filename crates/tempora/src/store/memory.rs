//! The in-memory backend: the `Store` contract kept in plain maps, durable only for the life of
//! the value. It exists for tests and as the reference the SQL backends are compared with, so it
//! mirrors them exactly (the conformance suite in `conformance.rs` checks that): a `commit`
//! applies all its writes or none, an update must name the row version it read, and the keys
//! the SQL tables declare unique are refused when repeated.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::{
    decode_execution, BatchJobRecord, Error, ExecutionRecord, NamespaceRecord, Record, RecordKind, Result, Store,
    WorkChange, WorkRow, Write,
};

/// One `executions` row. Its namespace, workflow id and status are not kept: no read uses them.
struct Row {
    version: u64,
    state_json: Vec<u8>,
}

#[derive(Default)]
pub struct MemoryStore {
    /// name → (the `id` column, record). As in the SQL tables, a re-registration of a name
    /// replaces the record but not the id column, which stays unique across names.
    namespaces: HashMap<String, (String, NamespaceRecord)>,
    rows: HashMap<String, Row>,
    /// run id → event id → one encoded `HistoryEvent`; ordered, as the SQL reads are.
    history: HashMap<String, BTreeMap<i64, Vec<u8>>>,
    /// (namespace, workflow id) → the current run id.
    current: HashMap<(String, String), String>,
    /// (namespace, job id) → batch job.
    batch_jobs: HashMap<(String, String), BatchJobRecord>,
    records: HashMap<(RecordKind, String, String), Record>,
    /// run id → the run's work index (item → entry).
    work: HashMap<String, BTreeMap<String, WorkRow>>,
}

/// How to take back one applied write when a later write of the same commit fails.
enum Undo {
    Namespace(String, Option<(String, NamespaceRecord)>),
    Row(String, Option<Row>),
    Event(String, i64),
    History(String, BTreeMap<i64, Vec<u8>>),
    Current((String, String), Option<String>),
    BatchJob((String, String), Option<BatchJobRecord>),
    Record((RecordKind, String, String), Option<Record>),
    Work(String, Option<BTreeMap<String, WorkRow>>),
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn apply(&mut self, write: &Write, undo: &mut Vec<Undo>) -> Result<()> {
        match write {
            Write::Execution {
                run_id,
                namespace,
                workflow_id,
                version,
                expected_version,
                state_json,
                new_events,
                work,
                ..
            } => {
                let row = Row { version: *version, state_json: state_json.clone() };
                self.put_row(run_id, row, *expected_version, undo)?;
                self.append_events(run_id, new_events, undo)?;
                self.change_work(namespace, workflow_id, run_id, work, undo);
                Ok(())
            }
            Write::Current { namespace, workflow_id, run_id } => {
                let key = (namespace.clone(), workflow_id.clone());
                let old = self.current.insert(key.clone(), run_id.clone());
                undo.push(Undo::Current(key, old));
                Ok(())
            }
            Write::Namespace(ns) => self.put_namespace(ns, undo),
            Write::DeleteNamespace { name } => {
                let old = self.namespaces.remove(name);
                undo.push(Undo::Namespace(name.clone(), old));
                Ok(())
            }
            Write::BatchJob(job) => {
                let key = (job.namespace.clone(), job.job_id.clone());
                let old = self.batch_jobs.insert(key.clone(), job.clone());
                undo.push(Undo::BatchJob(key, old));
                Ok(())
            }
            Write::DeleteBatchJob { namespace, job_id } => {
                let key = (namespace.clone(), job_id.clone());
                let old = self.batch_jobs.remove(&key);
                undo.push(Undo::BatchJob(key, old));
                Ok(())
            }
            Write::Record(record) => {
                let key = (record.kind, record.scope.clone(), record.id.clone());
                let old = self.records.insert(key.clone(), record.clone());
                undo.push(Undo::Record(key, old));
                Ok(())
            }
            Write::DeleteRecord { kind, scope, id } => {
                let key = (*kind, scope.clone(), id.clone());
                let old = self.records.remove(&key);
                undo.push(Undo::Record(key, old));
                Ok(())
            }
            Write::DeleteExecution { namespace, workflow_id, run_id } => {
                self.delete(namespace, workflow_id, run_id, undo);
                Ok(())
            }
        }
    }

    /// Insert (no expected version) or versioned update, with the SQL backends' outcomes: an
    /// update that matches no row (missing, or another version) is a `Conflict`; an insert of
    /// an existing run id breaks the primary key, which they report as a backend error.
    fn put_row(&mut self, run_id: &str, row: Row, expected: Option<u64>, undo: &mut Vec<Undo>) -> Result<()> {
        match (expected, self.rows.get(run_id)) {
            (None, None) => {}
            (None, Some(_)) => return Err(Error::Backend(format!("run {run_id} already exists"))),
            (Some(expected), Some(stored)) if stored.version == expected => {}
            (Some(_), _) => return Err(Error::Conflict(run_id.to_string())),
        }
        let old = self.rows.insert(run_id.to_string(), row);
        undo.push(Undo::Row(run_id.to_string(), old));
        Ok(())
    }

    /// History is append-only: an event id already stored breaks the (run id, event id) key.
    fn append_events(&mut self, run_id: &str, events: &[(i64, Vec<u8>)], undo: &mut Vec<Undo>) -> Result<()> {
        let history = self.history.entry(run_id.to_string()).or_default();
        for (event_id, data) in events {
            if history.contains_key(event_id) {
                return Err(Error::Backend(format!("event {event_id} of run {run_id} already exists")));
            }
            history.insert(*event_id, data.clone());
            undo.push(Undo::Event(run_id.to_string(), *event_id));
        }
        Ok(())
    }

    fn change_work(
        &mut self,
        namespace: &str,
        workflow_id: &str,
        run_id: &str,
        change: &WorkChange,
        undo: &mut Vec<Undo>,
    ) {
        let old = self.work.get(run_id).cloned();
        let entries = self.work.entry(run_id.to_string()).or_default();
        if change.replace {
            entries.clear();
        }
        for item in &change.removed {
            entries.remove(item);
        }
        for (item, due_ms) in &change.added {
            let row = WorkRow {
                namespace: namespace.to_string(),
                workflow_id: workflow_id.to_string(),
                run_id: run_id.to_string(),
                item: item.clone(),
                due_ms: *due_ms,
            };
            entries.insert(item.clone(), row);
        }
        if entries.is_empty() {
            self.work.remove(run_id);
        }
        undo.push(Undo::Work(run_id.to_string(), old));
    }

    fn put_namespace(&mut self, ns: &NamespaceRecord, undo: &mut Vec<Undo>) -> Result<()> {
        let id = match self.namespaces.get(&ns.name) {
            Some((id, _)) => id.clone(),
            None if self.namespaces.values().any(|(id, _)| *id == ns.id) => {
                return Err(Error::Backend(format!("namespace id {} is already taken", ns.id)));
            }
            None => ns.id.clone(),
        };
        let old = self.namespaces.insert(ns.name.clone(), (id, ns.clone()));
        undo.push(Undo::Namespace(ns.name.clone(), old));
        Ok(())
    }

    fn delete(&mut self, namespace: &str, workflow_id: &str, run_id: &str, undo: &mut Vec<Undo>) {
        if let Some(row) = self.rows.remove(run_id) {
            undo.push(Undo::Row(run_id.to_string(), Some(row)));
        }
        if let Some(history) = self.history.remove(run_id) {
            undo.push(Undo::History(run_id.to_string(), history));
        }
        if let Some(work) = self.work.remove(run_id) {
            undo.push(Undo::Work(run_id.to_string(), Some(work)));
        }
        // The pointer goes only if it names this run: a later run of the id keeps it.
        let key = (namespace.to_string(), workflow_id.to_string());
        if self.current.get(&key).is_some_and(|current| current == run_id) {
            let old = self.current.remove(&key);
            undo.push(Undo::Current(key, old));
        }
    }

    /// Undoes in reverse order, so each step finds the map as its write left it.
    fn roll_back(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Namespace(name, old) => restore(&mut self.namespaces, name, old),
                Undo::Row(run_id, old) => restore(&mut self.rows, run_id, old),
                Undo::Event(run_id, event_id) => {
                    if let Some(history) = self.history.get_mut(&run_id) {
                        history.remove(&event_id);
                    }
                }
                Undo::History(run_id, history) => restore(&mut self.history, run_id, Some(history)),
                Undo::Current(key, old) => restore(&mut self.current, key, old),
                Undo::BatchJob(key, old) => restore(&mut self.batch_jobs, key, old),
                Undo::Record(key, old) => restore(&mut self.records, key, old),
                Undo::Work(run_id, old) => restore(&mut self.work, run_id, old),
            }
        }
        self.history.retain(|_, events| !events.is_empty());
    }

    fn record(&self, run_id: &str, row: &Row) -> Result<ExecutionRecord> {
        let events = self.history.get(run_id).map(|h| h.values().cloned().collect()).unwrap_or_default();
        decode_execution(&row.state_json, events)
    }
}

fn restore<K: Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, old: Option<V>) {
    match old {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    };
}

impl Store for MemoryStore {
    fn commit(&mut self, writes: &[Write]) -> Result<()> {
        let mut undo = Vec::new();
        for write in writes {
            if let Err(e) = self.apply(write, &mut undo) {
                self.roll_back(undo);
                return Err(e);
            }
        }
        Ok(())
    }

    fn load_batch_jobs(&mut self) -> Result<Vec<BatchJobRecord>> {
        Ok(self.batch_jobs.values().cloned().collect())
    }

    fn load_records(&mut self) -> Result<Vec<Record>> {
        Ok(self.records.values().cloned().collect())
    }

    fn load_namespaces(&mut self) -> Result<Vec<NamespaceRecord>> {
        let mut out: Vec<NamespaceRecord> = self.namespaces.values().map(|(_, ns)| ns.clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn load_execution(&mut self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        self.rows.get(run_id).map(|row| self.record(run_id, row)).transpose()
    }

    fn load_work(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
        let mut due: Vec<WorkRow> = self
            .work
            .values()
            .flat_map(|entries| entries.values())
            .filter(|row| row.due_ms >= from_ms && row.due_ms < to_ms)
            .cloned()
            .collect();
        // Due order, then a fixed one among equals, so runs over this store repeat.
        due.sort_by(|a, b| (a.due_ms, &a.run_id, &a.item).cmp(&(b.due_ms, &b.run_id, &b.item)));
        Ok(due)
    }

    fn has_work(&mut self, run_id: &str, item: &str) -> Result<bool> {
        Ok(self.work.get(run_id).is_some_and(|entries| entries.contains_key(item)))
    }

    fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        Ok(self.current.get(&(namespace.to_string(), workflow_id.to_string())).cloned())
    }
}
