//! The history service: owns the runs in memory (by shard), executes typed requests on them
//! (`commit`: apply in the engine, commit through the store, then perform the effects), and
//! carries out what spans runs or time: starts and their id policies (`start`), worker and
//! caller long polls (`polls`), updates (`updates`), queries (`queries`), cross-run work
//! (`relatives`). It never receives code to run, only `engine::request::Request`s.
//!
//! Every transition runs in its own tracked task, so a caller that goes away (tonic drops the
//! handler future) cannot cut a commit in half; the in-memory run is only replaced after its
//! commit succeeded, and dropped for a reload if the commit failed.

mod cache;
mod commit;
mod polls;
mod queries;
mod relatives;
mod retention;
mod start;
mod updates;

use std::sync::{Arc, Mutex as StdMutex, Weak};

pub use cache::Execution;
pub use commit::Outcome;
pub use polls::{Poll, Polled, QueryTask};
pub use queries::QueryAnswer;
pub use updates::UpdateStatus;

use crate::clock::Clock;
use crate::engine::state::RunKey;
use crate::engine::{workflow, Limits, Timer};
use crate::matching::Matching;
use crate::namespaces::Namespaces;
use crate::runtime::Runtime;
use crate::store::{self, NamespaceRecord};
use crate::timers::{Fire, Timers};

pub struct Service {
    clock: Arc<dyn Clock>,
    store: store::Handle,
    pub matching: Matching,
    timers: StdMutex<Option<Timers>>,
    pub(crate) namespaces: Namespaces,
    shards: cache::Shards,
    runtime: Runtime,
    me: Weak<Service>,
    queries: queries::Registry,
    updates: updates::Registry,
    limits: Limits,
    /// The last hour's activity, for the UI's overview.
    pub(crate) stats: crate::stats::Stats,
}

impl Service {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        store: store::Handle,
        runtime: Runtime,
        limits: Limits,
        namespaces: Vec<NamespaceRecord>,
    ) -> Arc<Service> {
        Arc::new_cyclic(|me| Service {
            me: me.clone(),
            matching: Matching::new(clock.clone(), runtime.shutdown_signal()),
            clock,
            namespaces: Namespaces::new(store.clone(), namespaces),
            store,
            timers: StdMutex::new(None),
            shards: cache::Shards::new(),
            runtime,
            queries: Default::default(),
            updates: Default::default(),
            limits,
            stats: Default::default(),
        })
    }

    pub fn set_timers(&self, timers: Timers) {
        *self.timers.lock().expect("timers lock") = Some(timers);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The clock's now (for records kept outside runs: batch jobs).
    pub(crate) fn now_ms(&self) -> crate::clock::Millis {
        self.clock.now_ms()
    }

    /// The store, for reads that bypass the runs in memory (visibility).
    pub(crate) fn store(&self) -> &store::Handle {
        &self.store
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads what a restart needs: current runs, and every open run, whose pending tasks and
    /// timers are re-armed.
    pub fn recover(self: &Arc<Self>, current: Vec<(String, String, String)>, open: Vec<store::ExecutionRecord>) {
        self.recover_current(current);
        // Every open run is in memory before any of their work starts: that work (a child's
        // check, a delivery) may read another open run, which must not be loaded twice.
        let mut pending = Vec::new();
        let mut children = Vec::new();
        for record in open {
            let key = record.state.key.clone();
            pending.push((key.clone(), workflow::recover(&record.state)));
            if let Some(parent) = record.state.parent.clone() {
                children.push((key, parent));
            }
            self.cache_run(record.state, record.history);
        }
        for (key, effects) in pending {
            self.perform(&key, effects);
        }
        // A parent may have closed while its close policy could not be applied.
        for (child, parent) in children {
            self.later(relatives::check_parent(child, parent));
        }
    }
}

impl Fire for Service {
    fn fire(self: Arc<Self>, run: RunKey, timer: Timer) {
        self.fire_timer(run, timer);
    }
}

#[cfg(test)]
mod tests;
