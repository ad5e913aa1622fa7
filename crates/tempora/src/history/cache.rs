//! Runs in memory, by shard: every open run is cached (loaded at start), closed runs are read
//! from the store when asked for and not kept. Also each workflow id's current-run pointer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use tokio::sync::{watch, Mutex};

use super::Service;
use crate::engine::state::{MutableState, RunId, RunKey};
use crate::engine::workflow;
use crate::error::{Error, Result};
use crate::runtime::Attempt;
use crate::shard::{ShardId, SHARD_COUNT};

/// A run in memory: mutable state plus full history, and a signal for waiters.
pub struct Execution {
    pub state: MutableState,
    pub history: Vec<HistoryEvent>,
    /// Carries `next_event_id`; changes whenever history grows or the run closes.
    pub(super) changed: watch::Sender<i64>,
}

impl Execution {
    pub(super) fn new(state: MutableState, history: Vec<HistoryEvent>) -> Self {
        let (changed, _) = watch::channel(state.next_event_id);
        Execution { state, history, changed }
    }
}

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
    #[default]
    None,
    Run(RunId),
    /// A start's commit outcome is unknown and the store could not be asked either: the store
    /// is asked on next use, so a retried start can never create a second run.
    Unknown,
}

/// The runs and current pointers of one shard.
#[derive(Default)]
pub(super) struct Shard {
    runs: StdMutex<HashMap<RunId, RunSlot>>,
    current: StdMutex<HashMap<(String, String), Arc<CurrentSlot>>>,
}

/// Every shard this node owns (all of them, on a single node).
pub(super) struct Shards(Vec<Shard>);

impl Shards {
    pub(super) fn new() -> Self {
        Shards((0..SHARD_COUNT).map(|_| Shard::default()).collect())
    }

    pub(super) fn of(&self, namespace: &str, workflow_id: &str) -> &Shard {
        &self.0[ShardId::of(namespace, workflow_id, SHARD_COUNT).0 as usize]
    }

    fn of_run(&self, key: &RunKey) -> &Shard {
        self.of(&key.namespace, &key.workflow_id)
    }
}

impl Service {
    /// Puts an open run in memory (a start, a continue-as-new, recovery).
    pub(super) fn cache_run(&self, state: MutableState, history: Vec<HistoryEvent>) {
        let key = state.key.clone();
        let slot = Arc::new(Mutex::new(Some(Execution::new(state, history))));
        self.shards.of_run(&key).runs.lock().expect("runs lock").insert(key.run_id, slot);
    }

    pub(super) fn forget_run(&self, key: &RunKey) {
        self.shards.of_run(key).runs.lock().expect("runs lock").remove(&key.run_id);
    }

    pub(super) fn is_cached(&self, key: &RunKey) -> bool {
        self.shards.of_run(key).runs.lock().expect("runs lock").contains_key(&key.run_id)
    }

    /// The slot of a run, loading it from the store if it is not in memory. Open runs stay in
    /// memory; a closed run read from the store is handed out without being cached.
    pub(super) async fn run_slot(&self, key: &RunKey) -> Result<RunSlot> {
        let shard = self.shards.of_run(key);
        let cached = shard.runs.lock().expect("runs lock").get(&key.run_id).cloned();
        if let Some(slot) = cached {
            let mut guard = slot.lock().await;
            if guard.is_none() {
                // Dropped after a commit whose outcome is unknown: the store has the truth.
                // Its pending tasks and timers are offered again (duplicates are harmless).
                let record = self.load(key).await?;
                let effects = workflow::recover(&record.state);
                *guard = Some(Execution::new(record.state, record.history));
                drop(guard);
                self.perform(key, effects);
            } else {
                drop(guard);
            }
            return Ok(slot);
        }
        let record = self.load(key).await?;
        let open = record.state.is_open();
        tracing::debug!(run_id = %key.run_id, open, events = record.history.len(), "run loaded from the store");
        let effects = workflow::recover(&record.state);
        let slot = Arc::new(Mutex::new(Some(Execution::new(record.state, record.history))));
        if !open {
            return Ok(slot);
        }
        // Every open run is loaded at start, so an open run found only now was created by a
        // start whose commit outcome was unknown: its work has never been offered.
        let (slot, inserted) = {
            let mut runs = shard.runs.lock().expect("runs lock");
            match runs.get(&key.run_id) {
                Some(existing) => (existing.clone(), false),
                None => {
                    runs.insert(key.run_id.clone(), slot.clone());
                    (slot, true)
                }
            }
        };
        if inserted {
            self.perform(key, effects);
        }
        Ok(slot)
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
        map.entry((namespace.to_string(), workflow_id.to_string())).or_default().clone()
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
        if current == Current::Unknown {
            current = match self.store.load_current_run(namespace, workflow_id).await? {
                Some(run_id) => Current::Run(run_id.into()),
                None => Current::None,
            };
            let mut known = slot.run.lock().expect("current lock");
            if *known == Current::Unknown {
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
                        match this.run_slot(&key).await {
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

    /// At start: the current run of every workflow id, as the store has them.
    pub(super) fn recover_current(&self, current: Vec<(String, String, String)>) {
        for (namespace, workflow_id, run_id) in current {
            self.set_current(&namespace, &workflow_id, Current::Run(run_id.into()));
        }
    }
}
