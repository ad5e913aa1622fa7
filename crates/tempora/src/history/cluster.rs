//! The history service's side of a cluster: which runs and task queues this node serves,
//! calls to the node that serves the others, and taking up or letting go of shards as the
//! lease loop reports them. On a single node everything is served here and none of this
//! calls out.

use std::sync::Arc;

use super::commit::{Outcome, STICKY_LIVENESS};
use super::start::Started;
use super::Service;
use crate::cluster::rpc::{self, AddTask, Execute, StartChild};
use crate::cluster::{Change, Cluster, Placement};
use crate::engine::request::Request;
use crate::engine::start::StartPolicy;
use crate::engine::state::RunKey;
use crate::engine::workflow::StartWorkflow;
use crate::engine::{Effect, Timer};
use crate::error::{Error, Result};
use crate::matching::{QueuedTask, TaskKind};
use crate::runtime::Attempt;
use crate::shard::ShardId;
use crate::store::RecordKind;

impl Service {
    /// Makes this service one node of `cluster`.
    pub(crate) fn join(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster this node is part of, if any.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// Where the runs of a workflow id are served.
    pub(crate) fn run_placement(&self, namespace: &str, workflow_id: &str) -> Placement {
        match self.cluster.get() {
            None => Placement::Local,
            Some(cluster) => cluster.placement(ShardId::of_workflow(namespace, workflow_id)),
        }
    }

    /// Where a task queue's matching is.
    pub(crate) fn queue_placement(&self, namespace: &str, task_queue: &str) -> Placement {
        match self.cluster.get() {
            None => Placement::Local,
            Some(cluster) => cluster.placement(ShardId::of_queue(namespace, task_queue)),
        }
    }

    /// Whether this node serves the runs of a workflow id.
    pub(super) fn serves(&self, namespace: &str, workflow_id: &str) -> bool {
        self.run_placement(namespace, workflow_id) == Placement::Local
    }

    fn channel(&self, address: &str) -> Result<crate::cluster::Peer> {
        let cluster = self.cluster.get().ok_or_else(|| Error::Internal("not in a cluster".into()))?;
        cluster.channel(address)
    }

    /// `execute` on the node that serves the run.
    pub(super) async fn execute_remote(&self, key: &RunKey, request: Request) -> Result<Option<Outcome>> {
        match self.run_placement(&key.namespace, &key.workflow_id) {
            Placement::Local => Ok(None),
            Placement::Remote(address) => {
                let call = Execute { run: key.clone(), request };
                rpc::call(self.channel(&address)?, "Execute", &call).await.map(Some)
            }
            Placement::Unknown(shard) => Err(crate::cluster::unserved(shard)),
        }
    }

    /// `start_workflow` on the node that serves the workflow id.
    pub(super) async fn start_remote(&self, request: &StartWorkflow, policy: StartPolicy) -> Result<Option<Started>> {
        match self.run_placement(&request.key.namespace, &request.key.workflow_id) {
            Placement::Local => Ok(None),
            Placement::Remote(address) => {
                let call = StartChild { request: request.clone(), policy };
                rpc::call(self.channel(&address)?, "StartWorkflow", &call).await.map(Some)
            }
            Placement::Unknown(shard) => Err(crate::cluster::unserved(shard)),
        }
    }

    /// `remove_closed` on the node that serves the run.
    pub(super) async fn remove_remote(&self, run: &RunKey) -> Result<Option<()>> {
        match self.run_placement(&run.namespace, &run.workflow_id) {
            Placement::Local => Ok(None),
            Placement::Remote(address) => rpc::call(self.channel(&address)?, "RemoveClosed", run).await.map(Some),
            Placement::Unknown(shard) => Err(crate::cluster::unserved(shard)),
        }
    }

    /// Another node's `RemoveClosed` (its retention sweep).
    pub(crate) async fn remove_here(self: &Arc<Self>, run: RunKey) -> Result<()> {
        self.must_serve(&run.namespace, &run.workflow_id)?;
        self.remove_closed(&run).await
    }

    /// Whether this node keeps the registries and runs the cluster-wide sweeps, schedules
    /// and batch jobs (every node alone; on a cluster, the holder of `ShardId::REGISTRY`).
    pub(crate) fn holds_registry(&self) -> bool {
        self.registry_placement() == Placement::Local
    }

    /// Where the registries are kept.
    pub(crate) fn registry_placement(&self) -> Placement {
        match self.cluster.get() {
            None => Placement::Local,
            Some(cluster) => cluster.placement(ShardId::REGISTRY),
        }
    }

    /// A versioned poll recorded by the holder of the registries, if that is another node
    /// (`None`: this node holds them).
    pub(super) async fn registry_remote(
        &self,
        poller: &rpc::DeploymentPoller,
    ) -> Result<Option<Option<crate::deployments::Deployment>>> {
        match self.registry_placement() {
            Placement::Local => Ok(None),
            Placement::Remote(address) => {
                rpc::call(self.channel(&address)?, "DeploymentPoller", poller).await.map(Some)
            }
            Placement::Unknown(shard) => Err(crate::cluster::unserved(shard)),
        }
    }

    /// Another node's `DeploymentPoller`.
    pub(crate) async fn deployment_poller_from(
        self: &Arc<Self>,
        poller: rpc::DeploymentPoller,
    ) -> Result<Option<crate::deployments::Deployment>> {
        if !self.holds_registry() {
            return Err(Error::Unavailable("the registries are not kept by this node; retry".into()));
        }
        self.deployment_poller_here(poller).await
    }

    /// Refuses work for runs this node does not serve (the caller's view was stale).
    fn must_serve(&self, namespace: &str, workflow_id: &str) -> Result<()> {
        match self.run_placement(namespace, workflow_id) {
            Placement::Local => Ok(()),
            Placement::Remote(_) | Placement::Unknown(_) => {
                let shard = ShardId::of_workflow(namespace, workflow_id);
                Err(Error::Unavailable(format!("shard {shard} is not served by this node; retry")))
            }
        }
    }

    /// Another node's `Execute`.
    pub(crate) async fn execute_here(self: &Arc<Self>, run: &RunKey, request: Request) -> Result<Outcome> {
        self.must_serve(&run.namespace, &run.workflow_id)?;
        self.execute(run, request).await
    }

    /// Another node's `StartWorkflow` (a child run).
    pub(crate) async fn start_here(self: &Arc<Self>, request: StartWorkflow, policy: StartPolicy) -> Result<Started> {
        self.must_serve(&request.key.namespace, &request.key.workflow_id)?;
        self.start_workflow(request, policy).await
    }

    /// Another node's `AddTask`: `false` for a sticky queue nobody polls; UNAVAILABLE if the
    /// queue is not homed here (the sender's view was stale: it retries).
    pub(crate) fn add_task_here(&self, add: AddTask) -> Result<bool> {
        if self.queue_placement(&add.namespace, &add.task_queue) != Placement::Local {
            let shard = ShardId::of_queue(&add.namespace, &add.task_queue);
            return Err(Error::Unavailable(format!("task queue's shard {shard} is not served by this node")));
        }
        if add.sticky && !self.matching.is_live(&add.namespace, &add.task_queue, add.kind, STICKY_LIVENESS) {
            return Ok(false);
        }
        self.matching.offer(&add.namespace, &add.task_queue, add.kind, add.task);
        Ok(true)
    }

    /// Resolves once this node is no longer the home of a task queue (a poll waiting here
    /// would never get a task: it ends empty, and the worker's next poll finds the new home).
    pub(super) async fn queue_moved_away(&self, namespace: &str, task_queue: &str) {
        if self.cluster.get().is_none() || self.queue_placement(namespace, task_queue) != Placement::Local {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if self.queue_placement(namespace, task_queue) != Placement::Local {
                return;
            }
        }
    }

    /// Offers a task to its queue, wherever the queue's matching is.
    pub(super) fn offer(&self, namespace: &str, task_queue: &str, kind: TaskKind, task: QueuedTask) {
        match self.queue_placement(namespace, task_queue) {
            Placement::Local => self.matching.offer(namespace, task_queue, kind, task),
            _ => {
                let add =
                    AddTask { namespace: namespace.into(), task_queue: task_queue.into(), kind, task, sticky: false };
                self.offer_later(add, None);
            }
        }
    }

    /// Offers a workflow (or query) task to the sticky queue of the worker that caches its run
    /// if that worker polls it, else to the run's normal queue. A workflow task sent to a
    /// sticky queue gets a deadline (`schedule_to_start_ms`) to move to the normal queue.
    pub(super) fn offer_sticky(
        &self,
        namespace: &str,
        sticky_queue: &str,
        normal_queue: &str,
        task: QueuedTask,
        schedule_to_start_ms: Option<i64>,
    ) {
        match self.queue_placement(namespace, sticky_queue) {
            Placement::Local => {
                if self.matching.is_live(namespace, sticky_queue, TaskKind::Workflow, STICKY_LIVENESS) {
                    let run = task.run.clone();
                    self.matching.offer(namespace, sticky_queue, TaskKind::Workflow, task);
                    if let Some(ms) = schedule_to_start_ms {
                        self.add_timer(self.clock.now_ms() + ms, &run, Timer::StickyTimeout { force: false });
                    }
                } else {
                    self.offer(namespace, normal_queue, TaskKind::Workflow, task);
                }
            }
            _ => {
                let add = AddTask {
                    namespace: namespace.into(),
                    task_queue: sticky_queue.into(),
                    kind: TaskKind::Workflow,
                    task,
                    sticky: true,
                };
                self.offer_later(add, Some((normal_queue.to_string(), schedule_to_start_ms)));
            }
        }
    }

    /// Offers a task to the node that is the home of its queue, retrying until it is taken,
    /// the queue's home is here, or the task's run is no longer served here (its new owner
    /// offers it). A sticky offer nobody polls goes to `fallback`'s normal queue.
    fn offer_later(&self, add: AddTask, fallback: Option<(String, Option<i64>)>) {
        let Some(this) = self.me.upgrade() else { return };
        let add = Arc::new(add);
        self.runtime.retry(move || {
            let (this, add, fallback) = (this.clone(), add.clone(), fallback.clone());
            async move {
                let run = &add.task.run;
                if !this.serves(&run.namespace, &run.workflow_id) {
                    return Attempt::Done;
                }
                let address = match this.queue_placement(&add.namespace, &add.task_queue) {
                    Placement::Local => {
                        match &fallback {
                            Some((normal, ms)) => {
                                this.offer_sticky(&add.namespace, &add.task_queue, normal, add.task.clone(), *ms)
                            }
                            None => this.matching.offer(&add.namespace, &add.task_queue, add.kind, add.task.clone()),
                        }
                        return Attempt::Done;
                    }
                    Placement::Remote(address) => address,
                    Placement::Unknown(_) => return Attempt::Again,
                };
                let Ok(channel) = this.channel(&address) else { return Attempt::Again };
                match rpc::call::<_, bool>(channel, "AddTask", &*add).await {
                    Ok(true) => {
                        if let Some((_, Some(ms))) = &fallback {
                            this.add_timer(this.clock.now_ms() + ms, run, Timer::StickyTimeout { force: false });
                        }
                        Attempt::Done
                    }
                    Ok(false) => {
                        if let Some((normal, _)) = &fallback {
                            this.offer(&add.namespace, normal, TaskKind::Workflow, add.task.clone());
                        }
                        Attempt::Done
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, queue = %add.task_queue, "task not offered to its queue's node yet");
                        Attempt::Again
                    }
                }
            }
        });
    }

    /// What the lease loop reported.
    pub(crate) async fn on_change(self: &Arc<Self>, change: Change) {
        match change {
            Change::Lost(shards) => {
                for shard in shards {
                    self.shards.drop_shard(shard);
                }
            }
            Change::Acquired(shards) => {
                if shards.contains(&ShardId::REGISTRY) {
                    // The registries' writes are served here now: from what the store holds.
                    self.reload_routing_records().await;
                }
                // Another node may have written to these runs since they were cached here.
                for shard in &shards {
                    self.shards.drop_shard(*shard);
                }
                self.take_up_shards(shards);
            }
            Change::Moved(shards) => self.offer_again_to(shards),
            Change::Namespaces => match self.store.reload_namespaces().await {
                Ok(records) => self.namespaces.reload(records),
                Err(e) => tracing::warn!(error = %e, "namespaces not reloaded"),
            },
            Change::Records(kinds) => {
                if kinds.contains(&RecordKind::NexusEndpoint) || kinds.contains(&RecordKind::WorkerDeployment) {
                    self.reload_routing_records().await;
                }
            }
        }
    }

    /// Reads again the registries tasks are routed by (Nexus endpoints, worker deployments):
    /// on a cluster the holder of `ShardId::REGISTRY` changes them and the others follow.
    pub(crate) async fn reload_routing_records(&self) {
        match self.store.reload_records().await {
            Ok(records) => {
                self.endpoints.load(&records);
                self.deployments.load(&records);
            }
            Err(e) => tracing::warn!(error = %e, "Nexus endpoints and worker deployments not reloaded"),
        }
    }

    /// A shard newly held: its due work (tasks to offer, cross-run work, timers of the
    /// current window), read from the work index, as a restart takes up every shard.
    fn take_up_shards(&self, shards: Vec<ShardId>) {
        let Some(this) = self.me.upgrade() else { return };
        let shards: Arc<Vec<i32>> = Arc::new(shards.iter().map(|s| s.0 as i32).collect());
        self.runtime.retry(move || {
            let (this, shards) = (this.clone(), shards.clone());
            async move {
                let to_ms = this.clock.now_ms() + crate::timers::WINDOW_MS;
                let rows = match this.store.load_shard_work(shards.to_vec(), to_ms).await {
                    Ok(rows) => rows,
                    Err(_) => return Attempt::Again,
                };
                let taken = rows.len();
                for row in rows {
                    let run = row.run();
                    if !this.serves(&run.namespace, &run.workflow_id) {
                        continue;
                    }
                    match row.effect() {
                        Ok(effect) => this.perform(&run, vec![effect]),
                        Err(e) => tracing::error!(run_id = %row.run_id, error = %e, "work item skipped"),
                    }
                }
                tracing::info!(shards = shards.len(), work = taken, "shards taken up");
                Attempt::Done
            }
        });
    }

    /// Task queues whose home moved lost the tasks offered there: the runs served here offer
    /// theirs again (a duplicate is skipped when its start finds it taken).
    fn offer_again_to(&self, moved: Vec<ShardId>) {
        let Some(this) = self.me.upgrade() else { return };
        let Some(cluster) = self.cluster.get() else { return };
        let held: Vec<i32> = cluster.fence.held().keys().map(|s| *s as i32).collect();
        if held.is_empty() {
            return;
        }
        let moved = Arc::new(moved);
        let held = Arc::new(held);
        self.runtime.retry(move || {
            let (this, moved, held) = (this.clone(), moved.clone(), held.clone());
            async move {
                // Tasks to offer are due at once (0).
                let rows = match this.store.load_shard_work(held.to_vec(), 1).await {
                    Ok(rows) => rows,
                    Err(_) => return Attempt::Again,
                };
                for row in rows {
                    let run = row.run();
                    let queue = match row.effect() {
                        Ok(Effect::DispatchWorkflowTask { task_queue, sticky, routing }) => {
                            // Sticky or not, its queues' homes decide.
                            let sticky_moved = sticky
                                .as_ref()
                                .is_some_and(|s| moved.contains(&ShardId::of_queue(&run.namespace, &s.task_queue)));
                            if sticky_moved || moved.contains(&ShardId::of_queue(&run.namespace, &task_queue)) {
                                Some(Effect::DispatchWorkflowTask { task_queue, sticky, routing })
                            } else {
                                None
                            }
                        }
                        Ok(e @ Effect::DispatchActivityTask { .. }) => {
                            let Effect::DispatchActivityTask { task_queue, .. } = &e else { unreachable!() };
                            moved.contains(&ShardId::of_queue(&run.namespace, task_queue)).then_some(e)
                        }
                        Ok(e @ Effect::DispatchNexusTask { .. }) => {
                            let Effect::DispatchNexusTask { endpoint_id, .. } = &e else { unreachable!() };
                            let target = this.endpoints.worker_target(endpoint_id);
                            let moved_queue =
                                target.is_some_and(|t| moved.contains(&ShardId::of_queue(&t.namespace, &t.task_queue)));
                            moved_queue.then_some(e)
                        }
                        _ => None,
                    };
                    if let Some(effect) = queue {
                        if this.serves(&run.namespace, &run.workflow_id) {
                            this.perform(&run, vec![effect]);
                        }
                    }
                }
                Attempt::Done
            }
        });
    }
}
