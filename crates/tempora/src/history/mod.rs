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
mod cluster;
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
use crate::engine::{Effect, Limits, Timer};
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
    /// Set on a cluster node: which shards it serves, and the way to the others.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// The Nexus endpoints, which operations' tasks are routed by.
    pub(crate) endpoints: crate::endpoints::Endpoints,
    /// Worker deployments, which versioned runs' tasks are routed by.
    pub(crate) deployments: crate::deployments::Deployments,
}

impl Service {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        store: store::Handle,
        runtime: Runtime,
        limits: Limits,
        namespaces: Vec<NamespaceRecord>,
        run_cache_bytes_max: usize,
    ) -> Arc<Service> {
        Arc::new_cyclic(|me| Service {
            me: me.clone(),
            matching: Matching::new(clock.clone(), runtime.shutdown_signal()),
            clock,
            namespaces: Namespaces::new(store.clone(), namespaces),
            store,
            timers: StdMutex::new(None),
            shards: cache::Shards::new(run_cache_bytes_max),
            runtime,
            queries: Default::default(),
            updates: Default::default(),
            limits,
            stats: Default::default(),
            cluster: Default::default(),
            endpoints: Default::default(),
            deployments: Default::default(),
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

    /// Takes up, after a restart, the work the store's work index holds as due: tasks to
    /// offer, work owed to other runs, and the timers due before the timer queue's bound. No
    /// run is loaded for it (a run is loaded when its task is taken or its timer fires), so a
    /// start costs the same whatever the number of open runs.
    pub fn recover(self: &Arc<Self>, due: Vec<store::WorkRow>) {
        for row in due {
            match row.effect() {
                Ok(effect) => self.perform(&row.run(), vec![effect]),
                Err(e) => tracing::error!(run_id = %row.run_id, error = %e, "work item skipped"),
            }
        }
    }

    /// A versioned worker polls `task_queue`: its version joins its deployment (created on its
    /// first poll), committed before it is routed to. On a cluster the deployment is recorded
    /// by the holder of the registries, and this node takes its answer.
    pub(crate) async fn deployment_poller(
        &self,
        namespace: &str,
        version: &crate::engine::state::DeploymentVersion,
        task_queue: &str,
        kind: crate::matching::TaskKind,
    ) -> crate::error::Result<()> {
        if self.deployments.seen(namespace, version, task_queue, kind, self.clock.now_ms()).is_none() {
            return Ok(());
        }
        let poller = crate::cluster::rpc::DeploymentPoller {
            namespace: namespace.into(),
            version: version.clone(),
            task_queue: task_queue.into(),
            kind,
        };
        let deployment = match self.registry_remote(&poller).await? {
            Some(deployment) => deployment,
            None => self.deployment_poller_here(poller).await?,
        };
        if let Some(deployment) = deployment {
            self.deployments.set(namespace, &deployment.name.clone(), Some(deployment));
        }
        Ok(())
    }

    /// Records a versioned worker's poll in its deployment (on the holder of the registries);
    /// answers the deployment as it now is.
    pub(crate) async fn deployment_poller_here(
        &self,
        poller: crate::cluster::rpc::DeploymentPoller,
    ) -> crate::error::Result<Option<crate::deployments::Deployment>> {
        let crate::cluster::rpc::DeploymentPoller { namespace, version, task_queue, kind } = poller;
        let _write = self.deployments.write.lock().await;
        let now = self.clock.now_ms();
        let Some(deployment) = self.deployments.seen(&namespace, &version, &task_queue, kind, now) else {
            return Ok(self.deployments.get(&namespace, &version.deployment_name));
        };
        self.store.commit(vec![store::Write::Record(deployment.record(&namespace))]).await?;
        self.deployments.set(&namespace, &deployment.name, Some(deployment.clone()));
        Ok(Some(deployment))
    }

    /// Runs and bytes in the run cache.
    pub(crate) fn cache_usage(&self) -> (usize, usize) {
        self.shards.usage()
    }
}

impl Fire for Service {
    fn fire(self: Arc<Self>, run: RunKey, at_ms: crate::clock::Millis, timer: Timer) {
        self.fire_timer(run, at_ms, timer);
    }

    fn load(
        self: Arc<Self>,
        from_ms: crate::clock::Millis,
        to_ms: crate::clock::Millis,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<crate::timers::Due>> + Send>> {
        Box::pin(async move {
            let rows = self.store.load_work(from_ms, to_ms).await.ok()?;
            let timers = rows.into_iter().filter_map(|row| match row.effect() {
                Ok(Effect::Timer { at_ms, timer }) => Some((at_ms, row.run(), timer)),
                _ => None,
            });
            Some(timers.collect())
        })
    }
}

#[cfg(test)]
mod tests;
