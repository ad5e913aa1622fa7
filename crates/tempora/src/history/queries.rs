//! Queries: not transitions. A query goes to a worker as a query task (on the sticky queue of
//! the worker that caches the run, if it polls, else the normal queue) and its caller waits
//! for `RespondQueryTaskCompleted` within its deadline. Pending queries live only in memory,
//! as in Temporal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use temporalio_protos::temporal::api::common::v1::Payloads;
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::query::v1::WorkflowQuery;
use tokio::sync::oneshot;

use super::Service;
use crate::engine::state::RunKey;
use crate::error::{Error, Result};
use crate::matching::{QueuedTask, TaskKind};

/// A worker's answer to a query.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryAnswer {
    Answered(Option<Payloads>),
    Failed { message: String, failure: Option<Box<Failure>> },
}

struct Pending {
    query: WorkflowQuery,
    reply: oneshot::Sender<QueryAnswer>,
}

/// Queries waiting for a worker's answer, by query id.
#[derive(Default)]
pub(super) struct Registry(Mutex<HashMap<String, Pending>>);

impl Registry {
    /// The query of a pending query id (`None` once its caller stopped waiting).
    pub(super) fn query(&self, query_id: &str) -> Option<WorkflowQuery> {
        self.0.lock().expect("queries lock").get(query_id).map(|p| p.query.clone())
    }

    /// Registers a waiting query; it is forgotten when the returned guard drops.
    fn wait(&self, query: WorkflowQuery) -> (Forget<'_>, oneshot::Receiver<QueryAnswer>) {
        let id = uuid::Uuid::new_v4().to_string();
        let (reply, answer) = oneshot::channel();
        self.0.lock().expect("queries lock").insert(id.clone(), Pending { query, reply });
        (Forget { registry: self, id }, answer)
    }

    fn take(&self, query_id: &str) -> Option<Pending> {
        self.0.lock().expect("queries lock").remove(query_id)
    }
}

/// Forgets a pending query when its caller stops waiting, however that happens.
struct Forget<'a> {
    registry: &'a Registry,
    id: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.registry.take(&self.id);
    }
}

impl Service {
    /// Sends a query to a worker and waits up to `timeout` for its answer. While a workflow
    /// task is scheduled or runs, or before the first one completed, the worker's view of the
    /// run is about to change (or there is none): the query waits for the task to end, so it
    /// sees what came before it (Temporal hands it to the worker with that task).
    pub async fn query(&self, run: &RunKey, query: WorkflowQuery, timeout: Duration) -> Result<QueryAnswer> {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || Error::DeadlineExceeded("query timed out before a worker answered it".into());
        let not_ready = self
            .read(run, |e| {
                e.state.is_open() && e.state.last_completed_wft_started_event_id <= 0 && e.state.workflow_task.is_none()
            })
            .await?;
        if not_ready {
            // A start delay or cron backoff: nothing will run before its time.
            return Err(Error::WorkflowNotReady("Workflow task is not scheduled yet.".into()));
        }
        let idle = |e: &super::Execution| {
            let busy = e.state.workflow_task.is_some() || e.state.last_completed_wft_started_event_id <= 0;
            (!busy || !e.state.is_open()).then(|| (e.state.task_queue.clone(), e.state.sticky.clone()))
        };
        let (task_queue, sticky) = self.watch_run(run, deadline, idle).await?.ok_or_else(timed_out)?;
        let (waiting, answer) = self.queries.wait(query.clone());
        // The query travels with its task: the queue's matching may be on another node.
        let query = Some(Box::new((waiting.id.clone(), query)));
        let task = QueuedTask { run: run.clone(), scheduled_event_id: 0, attempt: 0, query, cancel: false };
        match sticky {
            Some(s) => self.offer_sticky(&run.namespace, &s.task_queue, &task_queue, task, None),
            None => self.offer(&run.namespace, &task_queue, TaskKind::Workflow, task),
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Error::Unavailable("the query was dropped; retry".into())),
            Err(_) => Err(timed_out()),
        }
    }

    /// `RespondQueryTaskCompleted`: hands the answer to the waiting caller.
    pub fn answer_query(&self, query_id: &str, answer: QueryAnswer) -> Result<()> {
        let pending = self.queries.take(query_id);
        let pending = pending.ok_or_else(|| Error::not_found("query task not found, or its caller stopped waiting"))?;
        let _ = pending.reply.send(answer);
        Ok(())
    }
}
