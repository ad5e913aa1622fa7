//! Runs in memory, by shard: a cache of open runs, loaded from the store when first needed and
//! evicted when idle once the cache holds more than its byte budget (closed runs are read from
//! the store when asked for and never kept). Also each workflow id's current-run pointer,
//! likewise a cache of what the store holds.
//!
//! Nothing here is the only copy of anything: every cached run and pointer is as its last
//! commit left it in the store, and a run's pending work is known to matching and the timers
//! (and the store's work index) whether or not the run is cached. So any idle entry may go.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use tokio::sync::{watch, Mutex};

use super::Service;
use crate::engine::history::History;
use crate::engine::state::{MutableState, RunId, RunKey};
use crate::engine::workflow;
use crate::error::{Error, Result};
use crate::runtime::Attempt;
use crate::shard::{ShardId, SHARD_COUNT};

/// A run in memory: mutable state plus full history, and a signal for waiters.
pub struct Execution {
    pub state: MutableState,
    pub history: History,
    /// Carries `next_event_id`; changes whenever history grows or the run closes.
    pub(super) changed: watch::Sender<i64>,
    /// About how much memory this run holds (what the cache budget counts).
    pub(super) bytes: usize,
}

impl Execution {
    pub(super) fn new(state: MutableState, history: History) -> Self {
        let (changed, _) = watch::channel(state.next_event_id);
        let bytes = std::mem::size_of::<Execution>() + STATE_BYTES + history.bytes();
        Execution { state, history, changed, bytes }
    }

    /// Appends committed events, keeping the size count.
    pub(super) fn extend(&mut self, events: &[HistoryEvent]) {
        let before = self.history.bytes();
        self.history.extend(events);
        self.bytes += self.history.bytes() - before;
    }

    /// Whether anyone waits on this run's changes (a waiter must keep the run it subscribed to).
    fn watched(&self) -> bool {
        self.changed.receiver_count() > 0
    }
}

/// What a run's mutable state and its slot hold beyond their structs, about (maps, strings,
/// encoded payloads, allocator overhead): a flat guess, as measuring it would cost more than it
/// is worth. The history is counted exactly (`History::bytes`: its events stay encoded).
const STATE_BYTES: usize = 4 * 1024;

/// The changes of one run, to wait on. A run that can no longer change (closed, or read from
/// the store) has none: waiting on it ends at once, so no wait can spin on a closed run.
pub(crate) struct Changes(watch::Receiver<i64>);

impl Changes {
    /// Waits for the run's next change. False when there will be none.
    pub(crate) async fn next(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

pub(super) type RunSlot = Arc<Mutex<Option<Execution>>>;

/// A workflow id's current run. `starts` serialises starts of the id (held across awaits);
/// `run` is the pointer itself, which a transition creating the next run (continue-as-new)
/// sets while holding only its run's lock, so it never waits for a start.
#[derive(Default)]
pub(super) struct CurrentSlot {
    pub(super) starts: Mutex<()>,
    run: StdMutex<Current>,
}

impl CurrentSlot {
    pub(super) fn get(&self) -> Current {
        self.run.lock().expect("current lock").clone()
    }
    pub(super) fn set(&self, current: Current) {
        *self.run.lock().expect("current lock") = current;
    }
}

/// What memory knows of a workflow id's current run.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum Current {
    None,
    Run(RunId),
    /// Not known here (never asked, or a start's commit outcome is unknown and the store could
    /// not be asked either): the store is asked on next use, so a retried start can never
    /// create a second run.
    #[default]
    Unknown,
}

/// A cached run: its slot, the bytes it was last counted at, and when it was last used.
struct Cached {
    slot: RunSlot,
    bytes: usize,
    used: u64,
}

/// Current-run pointers a shard keeps before it drops the idle ones (they are a cache of one
/// indexed read each).
const CURRENT_PER_SHARD_MAX: usize = 16;

/// The runs and current pointers of one shard.
#[derive(Default)]
pub(super) struct Shard {
    runs: StdMutex<HashMap<RunId, Cached>>,
    current: StdMutex<HashMap<(String, String), Arc<CurrentSlot>>>,
}

/// Every shard this node owns (all of them, on a single node), and the cache's budget.
pub(super) struct Shards {
    shards: Vec<Shard>,
    /// Bytes of all cached runs, as last counted.
    bytes: AtomicUsize,
    bytes_max: usize,
    /// Use counter: orders runs by last use, for eviction.
    tick: AtomicU64,
    /// When freed memory was last handed back to the OS.
    trimmed: StdMutex<Option<std::time::Instant>>,
}

impl Shards {
    pub(super) fn new(bytes_max: usize) -> Self {
        Shards {
            shards: (0..SHARD_COUNT).map(|_| Shard::default()).collect(),
            bytes: AtomicUsize::new(0),
            bytes_max,
            tick: AtomicU64::new(0),
            trimmed: StdMutex::new(None),
        }
    }

    pub(super) fn of(&self, namespace: &str, workflow_id: &str) -> &Shard {
        &self.shards[ShardId::of(namespace, workflow_id, SHARD_COUNT).0 as usize]
    }

    fn of_run(&self, key: &RunKey) -> &Shard {
        self.of(&key.namespace, &key.workflow_id)
    }

    /// The cached slot of a run, marked as used now.
    fn get(&self, key: &RunKey) -> Option<RunSlot> {
        let mut runs = self.of_run(key).runs.lock().expect("runs lock");
        let cached = runs.get_mut(&key.run_id)?;
        cached.used = self.tick.fetch_add(1, Ordering::Relaxed);
        Some(cached.slot.clone())
    }

    fn contains(&self, key: &RunKey) -> bool {
        self.of_run(key).runs.lock().expect("runs lock").contains_key(&key.run_id)
    }

    /// Caches `slot` unless the run is cached already; the slot to use, and whether it was this one.
    fn insert(&self, key: &RunKey, slot: RunSlot, bytes: usize, replace: bool) -> (RunSlot, bool) {
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut runs = self.of_run(key).runs.lock().expect("runs lock");
        if let Some(existing) = runs.get(&key.run_id).filter(|_| !replace) {
            return (existing.slot.clone(), false);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(old) = runs.insert(key.run_id.clone(), Cached { slot: slot.clone(), bytes, used }) {
            self.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
        }
        (slot, true)
    }

    fn remove(&self, key: &RunKey) {
        if let Some(old) = self.of_run(key).runs.lock().expect("runs lock").remove(&key.run_id) {
            self.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
        }
    }

    /// Counts a cached run at its new size (its history grew).
    fn resize(&self, key: &RunKey, bytes: usize) {
        let mut runs = self.of_run(key).runs.lock().expect("runs lock");
        if let Some(cached) = runs.get_mut(&key.run_id) {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.bytes.fetch_sub(std::mem::replace(&mut cached.bytes, bytes), Ordering::Relaxed);
        }
    }

    /// Forgets everything cached of a shard (it moved to another node, or came back after
    /// another node may have written to it). Holders of a slot keep their copy; waiters on a
    /// dropped run's changes are woken when the last holder lets go, and ask again.
    pub(super) fn drop_shard(&self, shard: ShardId) {
        let Some(shard) = self.shards.get(shard.0 as usize) else { return };
        let dropped: Vec<Cached> = shard.runs.lock().expect("runs lock").drain().map(|(_, c)| c).collect();
        for cached in &dropped {
            self.bytes.fetch_sub(cached.bytes, Ordering::Relaxed);
        }
        shard.current.lock().expect("current lock").clear();
    }

    /// Cached runs and the bytes they are counted at.
    pub(super) fn usage(&self) -> (usize, usize) {
        let runs = self.shards.iter().map(|s| s.runs.lock().expect("runs lock").len()).sum();
        (runs, self.bytes.load(Ordering::Relaxed))
    }

    /// Over budget: evicts the least recently used idle runs until a quarter of the budget is
    /// free. Idle: nobody holds the slot (no transition waits for or holds its lock, no reader
    /// has it), nobody waits on its changes, and it is not awaiting a reload. Holders get a
    /// slot only through a shard's map, under its lock, so an idle run cannot be picked up
    /// while it is removed.
    fn evict(&self) {
        if self.bytes.load(Ordering::Relaxed) <= self.bytes_max {
            return;
        }
        let target = self.bytes_max / 4 * 3;
        let idle = |cached: &Cached| {
            Arc::strong_count(&cached.slot) == 1
                && cached.slot.try_lock().is_ok_and(|guard| guard.as_ref().is_some_and(|exec| !exec.watched()))
        };
        let mut candidates: Vec<(u64, usize, RunId)> = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let runs = shard.runs.lock().expect("runs lock");
            candidates.extend(runs.iter().filter(|(_, c)| idle(c)).map(|(id, c)| (c.used, i, id.clone())));
        }
        candidates.sort_unstable();
        let mut evicted = 0usize;
        for (_, i, run_id) in candidates {
            if self.bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            let mut runs = self.shards[i].runs.lock().expect("runs lock");
            if runs.get(&run_id).is_some_and(idle) {
                let cached = runs.remove(&run_id).expect("checked above");
                self.bytes.fetch_sub(cached.bytes, Ordering::Relaxed);
                evicted += 1;
            }
        }
        tracing::debug!(
            evicted,
            bytes = self.bytes.load(Ordering::Relaxed),
            "run cache over budget: idle runs evicted"
        );
        self.trim();
    }

    /// Hands memory freed by evictions back to the OS, at most once a second: glibc keeps
    /// freed heap pages otherwise, and the process would stay at its busiest size.
    fn trim(&self) {
        let mut trimmed = self.trimmed.lock().expect("trim lock");
        if trimmed.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        *trimmed = Some(std::time::Instant::now());
        crate::runtime::release_free_memory();
    }
}

impl Service {
    /// Puts an open run in memory (a start, a continue-as-new).
    pub(super) fn cache_run(&self, state: MutableState, history: History) {
        let key = state.key.clone();
        let exec = Execution::new(state, history);
        let bytes = exec.bytes;
        self.shards.insert(&key, Arc::new(Mutex::new(Some(exec))), bytes, true);
        self.shards.evict();
    }

    pub(super) fn forget_run(&self, key: &RunKey) {
        self.shards.remove(key);
    }

    pub(super) fn is_cached(&self, key: &RunKey) -> bool {
        self.shards.contains(key)
    }

    /// Counts a cached run at its size after a commit grew it.
    pub(super) fn cached_grew(&self, key: &RunKey, bytes: usize) {
        self.shards.resize(key, bytes);
        self.shards.evict();
    }

    /// The slot of a run, loading it from the store if it is not in memory. An open run is
    /// cached; a closed run read from the store is handed out without being cached. Loading a
    /// run offers none of its work: that is known already (see `take_up`).
    pub(super) async fn run_slot(&self, key: &RunKey) -> Result<RunSlot> {
        if !self.serves(&key.namespace, &key.workflow_id) {
            // Another node's run (a cluster): what its last commit wrote, never cached here.
            let record = self.load(key).await?;
            return Ok(Arc::new(Mutex::new(Some(Execution::new(record.state, record.history)))));
        }
        if let Some(slot) = self.shards.get(key) {
            let mut guard = slot.lock().await;
            if guard.is_none() {
                // Dropped after a commit whose outcome is unknown: the store has the truth.
                // Its pending tasks and timers are offered again (duplicates are harmless).
                let record = self.load(key).await?;
                let effects = workflow::recover(&record.state);
                let exec = Execution::new(record.state, record.history);
                let bytes = exec.bytes;
                *guard = Some(exec);
                drop(guard);
                self.cached_grew(key, bytes);
                self.perform(key, effects);
            } else {
                drop(guard);
            }
            return Ok(slot);
        }
        let record = self.load(key).await?;
        let open = record.state.is_open();
        tracing::debug!(run_id = %key.run_id, open, events = record.history.len(), "run loaded from the store");
        let exec = Execution::new(record.state, record.history);
        let bytes = exec.bytes;
        let slot = Arc::new(Mutex::new(Some(exec)));
        if !open {
            return Ok(slot);
        }
        let (slot, _) = self.shards.insert(key, slot, bytes, false);
        self.shards.evict();
        Ok(slot)
    }

    /// Takes up a run this node may never have offered the work of (a start whose commit
    /// outcome was unknown): loads it and offers its pending work (duplicates are harmless).
    pub(super) async fn take_up(&self, key: &RunKey) -> Result<()> {
        let effects = self.read(key, |exec| workflow::recover(&exec.state)).await?;
        self.perform(key, effects);
        Ok(())
    }

    /// A run from the store, if it is the run `key` names (a run id given with another
    /// workflow id's name is not found).
    async fn load(&self, key: &RunKey) -> Result<crate::store::ExecutionRecord> {
        let record = self.store.load_execution(&key.run_id).await?;
        match record {
            Some(record) if record.state.key == *key => Ok(record),
            _ => Err(Error::not_found(format!(
                "workflow execution not found for ID: {}, RunID: {}",
                key.workflow_id, key.run_id
            ))),
        }
    }

    /// Reloads a run dropped after a failed commit, retrying while the store is unreachable,
    /// so work the commit may have durably created is not left waiting for a caller.
    pub(super) fn reload_later(&self, key: &RunKey) {
        let Some(this) = self.me.upgrade() else { return };
        let key = key.clone();
        self.runtime.retry(move || {
            let (this, key) = (this.clone(), key.clone());
            async move {
                match this.run_slot(&key).await {
                    Ok(_) | Err(Error::NotFound(_)) => Attempt::Done,
                    Err(_) => Attempt::Again,
                }
            }
        });
    }

    pub(super) fn current_slot(&self, namespace: &str, workflow_id: &str) -> Arc<CurrentSlot> {
        let shard = self.shards.of(namespace, workflow_id);
        let mut map = shard.current.lock().expect("current lock");
        let key = (namespace.to_string(), workflow_id.to_string());
        if map.len() >= CURRENT_PER_SHARD_MAX && !map.contains_key(&key) {
            // Idle pointers (held by no start or reader) go: the store holds each of them.
            map.retain(|_, slot| Arc::strong_count(slot) > 1);
            map.shrink_to(CURRENT_PER_SHARD_MAX);
        }
        map.entry(key).or_default().clone()
    }

    /// Sets what memory knows of a workflow id's current run (recovery, starts, new runs).
    pub(super) fn set_current(&self, namespace: &str, workflow_id: &str, current: Current) {
        self.current_slot(namespace, workflow_id).set(current);
    }

    /// The current run id of a workflow id, asking the store if memory does not know it.
    pub(super) async fn current_run(
        &self,
        slot: &CurrentSlot,
        namespace: &str,
        workflow_id: &str,
    ) -> Result<Option<RunId>> {
        let mut current = slot.get();
        if !self.serves(namespace, workflow_id) {
            // Another node's pointer: only the store knows it.
            current = Current::Unknown;
        }
        if current == Current::Unknown {
            current = match self.store.load_current_run(namespace, workflow_id).await? {
                Some(run_id) => Current::Run(run_id.into()),
                None => Current::None,
            };
            let mut known = slot.run.lock().expect("current lock");
            if *known == Current::Unknown && self.serves(namespace, workflow_id) {
                *known = current.clone();
            }
        }
        Ok(match current {
            Current::Run(run_id) => Some(run_id),
            _ => None,
        })
    }

    /// After a start whose outcome is unknown: learns from the store, as soon as it answers,
    /// whether the run exists, and if so takes it up (its first workflow task is offered).
    pub(super) fn resolve_current_later(&self, namespace: &str, workflow_id: &str) {
        let Some(this) = self.me.upgrade() else { return };
        let (namespace, workflow_id) = (namespace.to_string(), workflow_id.to_string());
        self.runtime.retry(move || {
            let (this, namespace, workflow_id) = (this.clone(), namespace.clone(), workflow_id.clone());
            async move {
                let slot = this.current_slot(&namespace, &workflow_id);
                match this.current_run(&slot, &namespace, &workflow_id).await {
                    Ok(None) => Attempt::Done,
                    Ok(Some(run_id)) => {
                        let key = RunKey::new(namespace, workflow_id, run_id);
                        match this.take_up(&key).await {
                            Ok(_) | Err(Error::NotFound(_)) => Attempt::Done,
                            Err(_) => Attempt::Again,
                        }
                    }
                    Err(_) => Attempt::Again,
                }
            }
        });
    }

    /// The run a request names: `run_id` if given, else the workflow id's current run.
    pub async fn resolve_run(&self, namespace: &str, workflow_id: &str, run_id: &str) -> Result<RunKey> {
        if workflow_id.is_empty() {
            return Err(Error::invalid("WorkflowId is not set on request."));
        }
        let run_id = if run_id.is_empty() {
            let slot = self.current_slot(namespace, workflow_id);
            let current = self.current_run(&slot, namespace, workflow_id).await?;
            current.ok_or_else(|| Error::not_found(format!("workflow not found for ID: {workflow_id}")))?
        } else {
            if uuid::Uuid::parse_str(run_id).is_err() {
                return Err(Error::invalid("Invalid RunId."));
            }
            run_id.into()
        };
        let key = RunKey::new(namespace, workflow_id, run_id);
        self.read(&key, |_| ()).await?;
        Ok(key)
    }

    /// Reads a run under its lock.
    pub async fn read<T>(&self, key: &RunKey, f: impl FnOnce(&Execution) -> T) -> Result<T> {
        loop {
            let slot = self.run_slot(key).await?;
            let guard = slot.lock().await;
            if let Some(exec) = guard.as_ref() {
                return Ok(f(exec));
            }
            // A commit with an unknown outcome emptied the slot between its load and this lock:
            // the run exists, so load it again rather than answer NOT_FOUND (a store that
            // cannot be read ends the loop with UNAVAILABLE).
        }
    }

    /// Reads a run and subscribes to its changes, in one look.
    pub(crate) async fn observe<T>(&self, key: &RunKey, f: impl FnOnce(&Execution) -> T) -> Result<(T, Changes)> {
        self.read(key, |exec| (f(exec), Changes(exec.changed.subscribe()))).await
    }
}
