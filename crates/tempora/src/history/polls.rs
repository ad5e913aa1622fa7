//! Long polls: workers taking tasks from matching (each take runs a typed start request on the
//! task's run; stale tasks are skipped), and callers waiting on a run to change. Every wait
//! sleeps until a change, its deadline or shutdown — never in a loop that re-reads.

use std::sync::Arc;
use std::time::Duration;

use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::temporal::api::query::v1::WorkflowQuery;

use super::cache::Execution;
use super::commit::Outcome;
use super::Service;
use crate::engine::request::{ActivityStart, Reply, Request, RunInfo, WorkflowTaskStart};
use crate::error::{Error, Result};
use crate::matching::{QueuedTask, TaskKind};

/// A worker's poll.
#[derive(Clone, Debug)]
pub struct Poll {
    pub namespace: String,
    pub task_queue: String,
    pub kind: TaskKind,
    pub identity: String,
    /// A sticky poller caches its runs: it gets only the events it has not seen.
    pub sticky: bool,
    /// The worker's instance key (empty if it gave none), for `ShutdownWorker`.
    pub worker: String,
    /// The worker's build id (empty if it gave none).
    pub build_id: String,
    pub timeout: Duration,
}

/// What a poll hands to its worker.
pub enum Polled {
    WorkflowTask(Box<WorkflowTaskStart>),
    Query(Box<QueryTask>),
    Activity(Box<ActivityStart>),
    Nexus(Box<crate::engine::nexus::NexusTaskStart>),
}

/// A query for the worker to answer from the run's full history; nothing in the run changes.
pub struct QueryTask {
    pub run: RunInfo,
    pub query_id: String,
    pub query: WorkflowQuery,
    pub previous_started_event_id: i64,
    pub history: Vec<HistoryEvent>,
}

impl Service {
    /// `ShutdownWorker` from a worker that named itself: its waiting polls on `task_queues`
    /// (all, if empty) answer empty.
    pub fn worker_shut_down(&self, instance_key: &str, task_queues: &[&str]) {
        self.matching.worker_shut_down(instance_key, task_queues);
    }

    /// Takes tasks from a queue until one starts (stale ones are skipped) or the poll expires.
    pub async fn poll_task(self: &Arc<Self>, poll: &Poll) -> Result<Option<Polled>> {
        let deadline = tokio::time::Instant::now() + poll.timeout;
        self.matching.poller_seen(&poll.namespace, &poll.task_queue, poll.kind, &poll.identity);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // Only the wait is cut short when the queue's home moves, never a task's start.
            let waiting = self.matching.poll(&poll.namespace, &poll.task_queue, poll.kind, &poll.worker, left);
            let task = tokio::select! {
                task = waiting => task,
                _ = self.queue_moved_away(&poll.namespace, &poll.task_queue) => None,
            };
            let Some(task) = task else {
                crate::telemetry::poll_timed_out(&poll.namespace, &poll.task_queue, poll.kind);
                return Ok(None);
            };
            let taken = match &task.query {
                Some(query) => self.take_query(&task, query).await,
                None => self.take_task(&task, poll).await,
            };
            match taken {
                Ok(Some(polled)) => return Ok(Some(polled)),
                Ok(None) | Err(Error::NotFound(_)) => continue,
                Err(e) => {
                    self.matching.offer(&poll.namespace, &poll.task_queue, poll.kind, task);
                    return Err(e);
                }
            }
        }
    }

    /// Eager dispatch: starts a run's workflow task (`scheduled_event_id` 0) or an activity
    /// attempt for the worker that asked, without a poll. `None` if it is not there to start
    /// (a poller took it first, or a start delay holds the first workflow task back).
    pub async fn start_eagerly(
        self: &Arc<Self>,
        run: &crate::engine::state::RunKey,
        kind: TaskKind,
        scheduled_event_id: i64,
        attempt: i32,
        identity: String,
    ) -> Result<Option<Polled>> {
        let task = QueuedTask { run: run.clone(), scheduled_event_id, attempt, query: None, cancel: false };
        let poll = Poll {
            namespace: run.namespace.to_string(),
            task_queue: String::new(),
            kind,
            identity,
            sticky: false,
            worker: String::new(),
            build_id: String::new(),
            timeout: Duration::ZERO,
        };
        match self.take_task(&task, &poll).await {
            Err(Error::NotFound(_)) => Ok(None),
            taken => taken,
        }
    }

    /// Starts a queued workflow task or activity attempt; `None` if it was stale.
    async fn take_task(self: &Arc<Self>, task: &QueuedTask, poll: &Poll) -> Result<Option<Polled>> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let identity = poll.identity.clone();
        let request = match poll.kind {
            TaskKind::Workflow => Request::StartWorkflowTask {
                identity,
                request_id,
                build_id: poll.build_id.clone(),
                sticky_poll: poll.sticky,
                updates: Vec::new(),
            },
            TaskKind::Activity => Request::StartActivityTask {
                scheduled_event_id: task.scheduled_event_id,
                attempt: task.attempt,
                identity,
                request_id,
            },
            TaskKind::Nexus => Request::StartNexusTask {
                scheduled_event_id: task.scheduled_event_id,
                attempt: task.attempt,
                cancel: task.cancel,
            },
        };
        let namespace = &task.run.namespace;
        Ok(match self.execute(&task.run, request).await? {
            Outcome::Applied(Reply::WorkflowTaskStarted(start)) => {
                let (scheduled, started) = (start.task.scheduled_time_ms, start.task.started_time_ms);
                self.task_started(namespace, &poll.task_queue, TaskKind::Workflow, scheduled, started);
                Some(Polled::WorkflowTask(start))
            }
            Outcome::Applied(Reply::ActivityStarted(start)) => {
                let (scheduled, started) = (start.activity.attempt_scheduled_time_ms, start.activity.started_time_ms);
                self.task_started(namespace, &poll.task_queue, TaskKind::Activity, scheduled, started);
                Some(Polled::Activity(start))
            }
            Outcome::Applied(Reply::NexusTaskStarted(start)) => {
                let scheduled = start.operation.last_attempt_complete_ms.max(start.operation.scheduled_time_ms);
                let started = self.now_ms();
                self.task_started(&poll.namespace, &poll.task_queue, TaskKind::Nexus, scheduled, started);
                Some(Polled::Nexus(start))
            }
            Outcome::Applied(_) | Outcome::Unchanged => None,
        })
    }

    /// A task left its queue: counted for the UI's overview and for the metrics.
    fn task_started(&self, namespace: &str, task_queue: &str, kind: TaskKind, scheduled_ms: i64, started_ms: i64) {
        self.stats.task_started(namespace, kind, started_ms - scheduled_ms, started_ms);
        crate::telemetry::task_started(namespace, task_queue, kind, started_ms - scheduled_ms);
    }

    /// A query task for a worker, if its caller still waits.
    async fn take_query(
        &self,
        task: &QueuedTask,
        query: &(String, temporalio_protos::temporal::api::query::v1::WorkflowQuery),
    ) -> Result<Option<Polled>> {
        let (query_id, query) = (&query.0, query.1.clone());
        // A query of a run served here is taken only while its caller waits; one of another
        // node's runs is handed out (its answer finds the caller gone, if it is).
        let served = self.serves(&task.run.namespace, &task.run.workflow_id);
        if served && self.queries.query(query_id).is_none() {
            return Ok(None);
        }
        let polled = self
            .read(&task.run, |exec| QueryTask {
                run: RunInfo::of(&exec.state),
                query_id: query_id.to_string(),
                query,
                previous_started_event_id: exec.state.last_completed_wft_started_event_id,
                history: exec.history.to_vec(),
            })
            .await?;
        Ok(Some(Polled::Query(Box::new(polled))))
    }

    /// Long-polls a run: `look` until it gives an answer, the deadline passes, the server
    /// shuts down, or the run can no longer change (then `None`).
    pub async fn watch_run<T>(
        &self,
        key: &crate::engine::state::RunKey,
        deadline: tokio::time::Instant,
        mut look: impl FnMut(&Execution) -> Option<T>,
    ) -> Result<Option<T>> {
        let mut shutdown = self.runtime.shutdown_signal();
        loop {
            let (answer, mut changes) = self.observe(key, &mut look).await?;
            if answer.is_some() {
                return Ok(answer);
            }
            if !self.serves(&key.namespace, &key.workflow_id) {
                // Another node's run (the caller's view of the cluster was stale): its changes
                // are not seen here, so a wait would end at once, and be asked again at once.
                return Err(Error::Unavailable("this run's shard is not served by this node; retry".into()));
            }
            let changed = tokio::select! {
                changed = tokio::time::timeout_at(deadline, changes.next()) => changed.unwrap_or(false),
                _ = shutdown.wait_for(|stop| *stop) => false,
            };
            if !changed {
                return Ok(None);
            }
        }
    }
}
