//! Storage: one `Store` contract, backends behind it, and the group-commit writer.
//!
//! What is durable (written in one transaction per batch of transitions):
//! - each run's mutable state (JSON) and status, keyed by run id;
//! - each run's history events (protobuf bytes), append-only, keyed by (run id, event id);
//! - the current run of every workflow id;
//! - namespaces;
//! - batch jobs, with the progress they resume from;
//! - records: small objects that are not runs (Nexus endpoints, task-queue configs,
//!   schedules), each a JSON document under (kind, scope, id).
//!
//! - each open run's work index (`run_work`): what the run waits on — timers with their due
//!   time, tasks to offer, work owed to other runs — derived from its mutable state
//!   (`engine::workflow::recover`) and rewritten in the same transaction as the state, so a
//!   restart (or a node taking over a shard) finds due work without loading any run.
//!
//! What is only cached in memory: runs (loaded on demand, evicted when idle), task queues
//! (pointers, rebuilt at start from the work index) and the timers due soon (read from the
//! work index a window ahead).
//!
//! Values that only move forward: `next_event_id` (event ids of a run), the schema version.
//!
//! Backends run synchronously on one dedicated thread (`Writer`); the async side talks to it
//! over a channel. Consecutive commits waiting in the channel go into one transaction, so
//! concurrent transitions share one fsync (group commit). A commit replies only once durable.

#[cfg(test)]
mod conformance;
pub mod memory;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::thread;

use prost::Message;
use serde::{Deserialize, Serialize};
use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::engine::state::MutableState;
use crate::visibility::{self, CountRequest, Counted, ListRequest, Listed};

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Another server holds the database (its file lock, or PostgreSQL's server lock).
    #[error("{0} is in use by another tempora server")]
    Locked(String),
    #[error("database schema version {found} is newer than this tempora supports ({supported}); upgrade tempora")]
    TooNew { found: i64, supported: i64 },
    #[error("storage error: {0}")]
    Backend(String),
    /// The disk (or the database's quota) is full: nothing was written.
    #[error("storage is full: {0}")]
    Full(String),
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    #[error("the store is shut down")]
    Closed,
    /// Another writer changed the run since it was read (optimistic concurrency).
    #[error("run {0} was changed by another writer")]
    Conflict(String),
    /// A cluster node wrote to a shard it does not hold (any more): nothing was written.
    #[error("{0}")]
    Fenced(String),
}

impl From<Error> for crate::error::Error {
    /// Clients see that storage is unavailable, never backend details (logged where the
    /// commit failed).
    fn from(e: Error) -> Self {
        match e {
            Error::Closed => crate::error::Error::Unavailable("the server is shutting down".into()),
            Error::Full(_) => crate::error::Error::Unavailable(
                "storage is full (no space left on the database's disk); nothing was changed, retry once space is freed"
                    .into(),
            ),
            Error::Fenced(why) => crate::error::Error::Unavailable(format!("{why}; nothing was changed, retry")),
            _ => crate::error::Error::Unavailable("storage is unavailable; nothing was changed, retry".into()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NamespaceRecord {
    pub name: String,
    pub id: String,
    pub description: String,
    pub owner_email: String,
    pub retention_ms: i64,
    /// Custom search attributes: name → `IndexedValueType` number.
    #[serde(default)]
    pub search_attributes: std::collections::BTreeMap<String, i32>,
    /// Free-form key/values (`NamespaceInfo.data`).
    #[serde(default)]
    pub data: std::collections::BTreeMap<String, String>,
    /// Deleted (OperatorService DeleteNamespace): hidden, its runs being removed; the record
    /// goes once they are.
    #[serde(default)]
    pub deleted: bool,
}

impl NamespaceRecord {
    /// The name a deleted namespace shows, as Temporal renames it.
    pub fn deleted_name(&self) -> String {
        format!("{}-deleted-{}", self.name, self.id.chars().take(5).collect::<String>())
    }
}

/// A batch operation (`StartBatchOperation`) as stored: its request, state and progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BatchJobRecord {
    pub namespace: String,
    pub job_id: String,
    /// The `StartBatchOperationRequest`, protobuf-encoded.
    pub request: Vec<u8>,
    /// `BatchOperationState` number.
    pub state: i32,
    pub start_time_ms: i64,
    /// 0 while running.
    pub close_time_ms: i64,
    pub total: i64,
    pub complete: i64,
    pub failure: i64,
    /// Where the job resumes: the last run id done (by a query, in run id order) or the
    /// number of listed executions done.
    pub cursor: String,
    pub identity: String,
    pub reason: String,
}

/// What a record is (the `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Scope "", id the endpoint id.
    NexusEndpoint,
    /// Scope the namespace, id `<task queue type number>/<task queue name>`.
    TaskQueueConfig,
    /// Scope the namespace, id the schedule id.
    Schedule,
    /// Scope the namespace, id the deployment's name.
    WorkerDeployment,
}

impl RecordKind {
    pub const ALL: [RecordKind; 4] =
        [RecordKind::NexusEndpoint, RecordKind::TaskQueueConfig, RecordKind::Schedule, RecordKind::WorkerDeployment];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::NexusEndpoint => "nexus_endpoint",
            RecordKind::TaskQueueConfig => "task_queue_config",
            RecordKind::Schedule => "schedule",
            RecordKind::WorkerDeployment => "worker_deployment",
        }
    }

    pub fn from_name(name: &str) -> Option<RecordKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A small durable object that is not a run: one JSON document, read whole at start and kept
/// in memory by its owner, written whole on each change.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: RecordKind,
    pub scope: String,
    pub id: String,
    pub data: String,
}

/// A run as stored: its mutable state and full history.
#[derive(Clone, Debug)]
pub struct ExecutionRecord {
    pub state: MutableState,
    /// Kept encoded, as stored (each event checked once, when read).
    pub history: crate::engine::history::History,
}

/// One change in a transaction. Serialised by the caller, off the writer thread.
#[derive(Clone, Debug)]
pub enum Write {
    Execution {
        run_id: String,
        namespace: String,
        workflow_id: String,
        status: i32,
        /// The row version this write creates (the run's transition count), and the one it
        /// replaces (`None` for a new run).
        version: u64,
        expected_version: Option<u64>,
        state_json: Vec<u8>,
        /// (event id, protobuf bytes), appended.
        new_events: Vec<(i64, Vec<u8>)>,
        /// The run's visibility row, when something a query can see changed.
        visibility: Option<Box<visibility::Row>>,
        /// The change to the run's work index.
        work: WorkChange,
    },
    Current {
        namespace: String,
        workflow_id: String,
        run_id: String,
    },
    Namespace(NamespaceRecord),
    /// Removes a namespace's record (its runs are gone already).
    DeleteNamespace {
        name: String,
    },
    BatchJob(BatchJobRecord),
    DeleteBatchJob {
        namespace: String,
        job_id: String,
    },
    /// Inserts or replaces a record.
    Record(Record),
    DeleteRecord {
        kind: RecordKind,
        scope: String,
        id: String,
    },
    /// Removes a run: its row, its history, and the workflow id's current pointer if it names it.
    DeleteExecution {
        namespace: String,
        workflow_id: String,
        run_id: String,
    },
}

impl Write {
    /// Whether this writes the registries a cluster keeps on the holder of
    /// `ShardId::REGISTRY` (records, batch jobs): fenced by that shard's lease.
    pub fn is_registry(&self) -> bool {
        matches!(
            self,
            Write::Record(_) | Write::DeleteRecord { .. } | Write::BatchJob(_) | Write::DeleteBatchJob { .. }
        )
    }

    /// Makes `run` its workflow id's current run.
    pub fn current(run: &crate::engine::state::RunKey) -> Write {
        Write::Current {
            namespace: run.namespace.to_string(),
            workflow_id: run.workflow_id.to_string(),
            run_id: run.run_id.to_string(),
        }
    }

    /// Removes `run`: its row, its history, and its workflow id's pointer if it names it.
    pub fn delete(run: &crate::engine::state::RunKey) -> Write {
        Write::DeleteExecution {
            namespace: run.namespace.to_string(),
            workflow_id: run.workflow_id.to_string(),
            run_id: run.run_id.to_string(),
        }
    }

    /// A run's new state and events; `expected_version` is the version read (`None`: new run).
    /// Its visibility row and work index are written whole.
    pub fn execution(state: &MutableState, new_events: &[HistoryEvent], expected_version: Option<u64>) -> Write {
        let work = WorkChange::replace(state);
        Self::run(state, new_events, expected_version, Some(visibility::Row::of(state)), work)
    }

    /// A transition of a run read as `before`: its visibility row is written only when
    /// something a query can see changed, its work index by difference.
    pub fn transition(state: &MutableState, new_events: &[HistoryEvent], before: &MutableState) -> Write {
        let visibility = visibility::needs_write(before, state).then(|| visibility::Row::of_transition(before, state));
        let work = WorkChange::between(before, state);
        Self::run(state, new_events, Some(before.transitions), visibility, work)
    }

    fn run(
        state: &MutableState,
        new_events: &[HistoryEvent],
        expected_version: Option<u64>,
        visibility: Option<visibility::Row>,
        work: WorkChange,
    ) -> Write {
        Write::Execution {
            run_id: state.key.run_id.to_string(),
            namespace: state.key.namespace.to_string(),
            workflow_id: state.key.workflow_id.to_string(),
            status: state.status.number(),
            version: state.transitions,
            expected_version,
            state_json: serde_json::to_vec(state).expect("mutable state serialises"),
            new_events: new_events.iter().map(|e| (e.event_id, e.encode_to_vec())).collect(),
            visibility: visibility.map(Box::new),
            work,
        }
    }
}

/// One entry of the work index: something an open run waits on (an `Effect` of
/// `engine::workflow::recover`, serialised: the entry's key within its run) and when it is due
/// (its time for a timer, 0 for work to do at once).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkRow {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub item: String,
    pub due_ms: i64,
}

impl WorkRow {
    pub fn run(&self) -> crate::engine::state::RunKey {
        crate::engine::state::RunKey::new(self.namespace.clone(), self.workflow_id.clone(), self.run_id.clone())
    }

    /// The effect this entry stands for.
    pub fn effect(&self) -> Result<crate::engine::Effect> {
        serde_json::from_str(&self.item).map_err(|e| Error::Corrupt(format!("work item of run {}: {e}", self.run_id)))
    }
}

/// How a write changes its run's work index: entries removed and added (by key), after
/// removing every entry first when `replace`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkChange {
    pub replace: bool,
    pub removed: Vec<String>,
    pub added: Vec<(String, i64)>,
    /// `hash(namespace, workflow_id) mod SHARD_COUNT`, stored with each entry.
    pub shard: i32,
}

impl WorkChange {
    /// The whole index of a run as `state` has it.
    pub fn replace(state: &MutableState) -> WorkChange {
        WorkChange { replace: true, added: work_of(state).into_iter().collect(), ..WorkChange::of(state) }
    }

    /// What changed between two states of a run.
    pub fn between(before: &MutableState, after: &MutableState) -> WorkChange {
        let (old, new) = (work_of(before), work_of(after));
        let removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
        let added = new.into_iter().filter(|(k, _)| !old.contains_key(k)).collect();
        WorkChange { removed, added, ..WorkChange::of(after) }
    }

    fn of(state: &MutableState) -> WorkChange {
        let shard = crate::shard::ShardId::of(&state.key.namespace, &state.key.workflow_id, crate::shard::SHARD_COUNT);
        WorkChange { shard: shard.0 as i32, ..Default::default() }
    }
}

/// The work index entries of a run: key → due time.
fn work_of(state: &MutableState) -> std::collections::BTreeMap<String, i64> {
    crate::engine::workflow::recover(state).iter().map(|effect| (work_key(effect), work_due_ms(effect))).collect()
}

/// The key of an effect in its run's work index.
pub fn work_key(effect: &crate::engine::Effect) -> String {
    serde_json::to_string(effect).expect("effects serialise")
}

fn work_due_ms(effect: &crate::engine::Effect) -> i64 {
    match effect {
        crate::engine::Effect::Timer { at_ms, .. } => *at_ms,
        _ => 0,
    }
}

/// The storage contract every backend implements. Calls run on the writer thread.
pub trait Store: Send + 'static {
    /// Applies all writes in one transaction, durably, or none of them.
    fn commit(&mut self, writes: &[Write]) -> Result<()>;
    fn load_namespaces(&mut self) -> Result<Vec<NamespaceRecord>>;
    fn load_batch_jobs(&mut self) -> Result<Vec<BatchJobRecord>>;
    /// Every record, of every kind.
    fn load_records(&mut self) -> Result<Vec<Record>>;
    fn load_execution(&mut self, run_id: &str) -> Result<Option<ExecutionRecord>>;
    /// The work index entries due in `[from_ms, to_ms)`, in due order.
    fn load_work(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>>;
    /// Whether a run's work index holds an entry (a timer that is still wanted).
    fn has_work(&mut self, run_id: &str, item: &str) -> Result<bool>;
    /// The current run id of one workflow id.
    fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> Result<Option<String>>;
    /// A way to read beside the writer (a connection pool), if the backend has one. Reads then
    /// never wait behind a group commit or the writer's reconnects.
    fn reader(&self) -> Option<Arc<dyn Reader>> {
        None
    }
    /// A page of runs matching a visibility query, in List's order (SQL backends only).
    fn list_executions(&mut self, _request: &ListRequest) -> Result<Vec<Listed>> {
        Err(Error::Backend("this store has no visibility".into()))
    }
    fn count_executions(&mut self, _request: &CountRequest) -> Result<Counted> {
        Err(Error::Backend("this store has no visibility".into()))
    }
}

/// Reads that may run on any thread, concurrently with the writer. They see what was
/// committed before they started.
pub trait Reader: Send + Sync + 'static {
    /// Most reads run at once (the backend's read connections): more would only park blocking
    /// threads, each of which costs memory (a stack, an allocator arena) for nothing.
    fn concurrency_max(&self) -> usize;
    fn load_execution(&self, run_id: &str) -> Result<Option<ExecutionRecord>>;
    fn load_work(&self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>>;
    fn has_work(&self, run_id: &str, item: &str) -> Result<bool>;
    fn load_current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<String>>;
    fn list_executions(&self, request: &ListRequest) -> Result<Vec<Listed>>;
    fn count_executions(&self, request: &CountRequest) -> Result<Counted>;
    /// The work index entries of some shards due before `to_ms` (a cluster node taking them
    /// over).
    fn load_shard_work(&self, _shards: &[i32], _to_ms: i64) -> Result<Vec<WorkRow>> {
        Err(Error::Backend("this store has no shards to take over".into()))
    }
    /// The namespaces (another node changed them).
    fn load_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        Err(Error::Backend("this store has no namespaces to reload".into()))
    }
    /// Every record (another node changed some, or this node took over the registries).
    fn load_records(&self) -> Result<Vec<Record>> {
        Err(Error::Backend("this store has no records to reload".into()))
    }
    /// Every batch job (this node took over the registries).
    fn load_batch_jobs(&self) -> Result<Vec<BatchJobRecord>> {
        Err(Error::Backend("this store has no batch jobs to reload".into()))
    }
}

pub(crate) fn decode_execution(state_json: &[u8], events: Vec<Vec<u8>>) -> Result<ExecutionRecord> {
    let state: MutableState =
        serde_json::from_slice(state_json).map_err(|e| Error::Corrupt(format!("mutable state: {e}")))?;
    let history =
        crate::engine::history::History::decode(events).map_err(|e| Error::Corrupt(format!("history event: {e}")))?;
    Ok(ExecutionRecord { state, history })
}

enum Request {
    /// Stop the writer and close the store (releasing its file).
    Close(oneshot::Sender<()>),
    Commit(Vec<Write>, oneshot::Sender<Result<()>>),
    LoadExecution(String, oneshot::Sender<Result<Option<ExecutionRecord>>>),
    LoadCurrentRun(String, String, oneshot::Sender<Result<Option<String>>>),
    LoadWork(i64, i64, oneshot::Sender<Result<Vec<WorkRow>>>),
    HasWork(String, String, oneshot::Sender<Result<bool>>),
    List(Box<ListRequest>, oneshot::Sender<Result<Vec<Listed>>>),
    Count(Box<CountRequest>, oneshot::Sender<Result<Counted>>),
}

/// The async face of a store: cheap to clone. Commits go to the writer thread; reads go to
/// the backend's `Reader` if it has one, else to the writer thread too.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
    reader: Option<Arc<dyn Reader>>,
    /// Permits for reads on the reader's blocking threads, `Reader::concurrency_max` of them.
    reads: Arc<Semaphore>,
}

/// Requests waiting for the writer; a full queue makes callers wait (backpressure).
const QUEUE_MAX: usize = 16 * 1024;
/// Most transitions in one group-committed transaction.
const GROUP_MAX: usize = 1024;

impl Handle {
    /// Starts the writer thread that owns `store`. The thread ends when every handle is dropped.
    pub fn spawn(store: Box<dyn Store>) -> (Handle, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        let reader = store.reader();
        let reads = Arc::new(Semaphore::new(reader.as_ref().map_or(1, |r| r.concurrency_max())));
        let join = thread::Builder::new()
            .name("tempora-store".into())
            .spawn(move || writer_loop(store, rx))
            .expect("spawn store thread");
        (Handle { tx, reader, reads }, join)
    }

    pub async fn commit(&self, writes: Vec<Write>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Commit(writes, reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Commits what is queued, then closes the store; later calls fail with `Closed`.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Close(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn load_execution(&self, run_id: &str) -> Result<Option<ExecutionRecord>> {
        let run_id = run_id.to_string();
        if let Some(reader) = self.reader.clone() {
            return self.read(move || reader.load_execution(&run_id)).await;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::LoadExecution(run_id, reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub async fn load_current_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<String>> {
        let (namespace, workflow_id) = (namespace.to_string(), workflow_id.to_string());
        if let Some(reader) = self.reader.clone() {
            return self.read(move || reader.load_current_run(&namespace, &workflow_id)).await;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::LoadCurrentRun(namespace, workflow_id, reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub async fn load_work(&self, from_ms: i64, to_ms: i64) -> Result<Vec<WorkRow>> {
        if let Some(reader) = self.reader.clone() {
            return self.read(move || reader.load_work(from_ms, to_ms)).await;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::LoadWork(from_ms, to_ms, reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// `Reader::load_shard_work` (cluster stores only).
    pub async fn load_shard_work(&self, shards: Vec<i32>, to_ms: i64) -> Result<Vec<WorkRow>> {
        let reader = self.reader.clone().ok_or_else(|| Error::Backend("no reader".into()))?;
        self.read(move || reader.load_shard_work(&shards, to_ms)).await
    }

    /// `Reader::load_namespaces` (cluster stores only).
    pub async fn reload_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let reader = self.reader.clone().ok_or_else(|| Error::Backend("no reader".into()))?;
        self.read(move || reader.load_namespaces()).await
    }

    pub async fn reload_records(&self) -> Result<Vec<Record>> {
        let reader = self.reader.clone().ok_or_else(|| Error::Backend("no reader".into()))?;
        self.read(move || reader.load_records()).await
    }

    pub async fn reload_batch_jobs(&self) -> Result<Vec<BatchJobRecord>> {
        let reader = self.reader.clone().ok_or_else(|| Error::Backend("no reader".into()))?;
        self.read(move || reader.load_batch_jobs()).await
    }

    /// Runs a read on a blocking thread once one of the reader's permits is free.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let permit = self.reads.clone().acquire_owned().await.map_err(|_| Error::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| Error::Backend(format!("read task failed: {e}")))?
    }

    pub async fn has_work(&self, run_id: &str, item: &str) -> Result<bool> {
        let (run_id, item) = (run_id.to_string(), item.to_string());
        if let Some(reader) = self.reader.clone() {
            return self.read(move || reader.has_work(&run_id, &item)).await;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::HasWork(run_id, item, reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// A page of a visibility query (beside the writer when the backend can read there).
    pub async fn list_executions(&self, request: ListRequest) -> Result<Vec<Listed>> {
        if let Some(reader) = self.reader.clone() {
            return self.read(move || reader.list_executions(&request)).await;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::List(Box::new(request), reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub async fn count_executions(&self, request: CountRequest) -> Result<Counted> {
        if let Some(reader) = self.reader.clone() {
            return self.read(move || reader.count_executions(&request)).await;
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Count(Box::new(request), reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

fn writer_loop(mut store: Box<dyn Store>, mut rx: mpsc::Receiver<Request>) {
    let mut closed: Option<oneshot::Sender<()>> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut pending = vec![first];
        while pending.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(r) => pending.push(r),
                Err(_) => break,
            }
        }
        let mut group: Vec<(Vec<Write>, oneshot::Sender<Result<()>>)> = Vec::new();
        for request in pending {
            match request {
                Request::Commit(writes, reply) => group.push((writes, reply)),
                Request::LoadExecution(run_id, reply) => {
                    commit_group(store.as_mut(), &mut group);
                    let _ = reply.send(store.load_execution(&run_id));
                }
                Request::LoadCurrentRun(namespace, workflow_id, reply) => {
                    commit_group(store.as_mut(), &mut group);
                    let _ = reply.send(store.load_current_run(&namespace, &workflow_id));
                }
                Request::LoadWork(from_ms, to_ms, reply) => {
                    commit_group(store.as_mut(), &mut group);
                    let _ = reply.send(store.load_work(from_ms, to_ms));
                }
                Request::HasWork(run_id, item, reply) => {
                    commit_group(store.as_mut(), &mut group);
                    let _ = reply.send(store.has_work(&run_id, &item));
                }
                Request::List(request, reply) => {
                    commit_group(store.as_mut(), &mut group);
                    let _ = reply.send(store.list_executions(&request));
                }
                Request::Count(request, reply) => {
                    commit_group(store.as_mut(), &mut group);
                    let _ = reply.send(store.count_executions(&request));
                }
                Request::Close(reply) => closed = Some(reply),
            }
        }
        commit_group(store.as_mut(), &mut group);
        if closed.is_some() {
            break;
        }
    }
    rx.close();
    drop(store);
    if let Some(reply) = closed {
        let _ = reply.send(());
    }
}

fn commit_group(store: &mut dyn Store, group: &mut Vec<(Vec<Write>, oneshot::Sender<Result<()>>)>) {
    if group.is_empty() {
        return;
    }
    let sizes: Vec<usize> = group.iter().map(|(w, _)| w.len()).collect();
    let writes: Vec<Write> = group.iter_mut().flat_map(|(w, _)| std::mem::take(w)).collect();
    let began = std::time::Instant::now();
    let result = store.commit(&writes);
    crate::telemetry::persistence("Commit", began.elapsed(), result.is_err());
    match &result {
        // A run changed by another writer fails the transaction, but only its own transition
        // is wrong: the others are committed again, each alone, so they do not fail with it.
        Err(e @ (Error::Conflict(_) | Error::Fenced(_))) if group.len() > 1 => {
            tracing::warn!(error = %e, transitions = group.len(), "conflict in a group commit; committing its transitions one by one");
            let mut writes = writes.into_iter();
            for ((_, reply), size) in group.drain(..).zip(sizes) {
                let own: Vec<Write> = writes.by_ref().take(size).collect();
                let began = std::time::Instant::now();
                let alone = store.commit(&own);
                crate::telemetry::persistence("Commit", began.elapsed(), alone.is_err());
                let _ = reply.send(alone);
            }
            return;
        }
        Err(e) => tracing::error!(error = %e, transitions = group.len(), "commit failed"),
        Ok(()) => {}
    }
    for (_, reply) in group.drain(..) {
        let _ = reply.send(result.clone());
    }
}
