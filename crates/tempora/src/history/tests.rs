//! Service tests with a faulty store.

use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::clock::SystemClock;
use crate::engine::start::StartPolicy;
use crate::engine::workflow::StartWorkflow;
use crate::error::Error;
use crate::matching::TaskKind;
use crate::store::{sqlite::SqliteStore, ExecutionRecord, Store, Write};

/// SQLite in memory, with one fault on demand: a commit that lands but reports failure
/// (the reply was lost), after which reads fail too (the store went away).
struct LostReply {
    inner: SqliteStore,
    fault: Arc<AtomicBool>,
}

impl LostReply {
    fn check(&self) -> store::Result<()> {
        match self.fault.load(Ordering::SeqCst) {
            true => Err(store::Error::Backend("connection lost".into())),
            false => Ok(()),
        }
    }
}

impl Store for LostReply {
    fn commit(&mut self, writes: &[Write]) -> store::Result<()> {
        self.inner.commit(writes)?;
        self.check()
    }
    fn load_namespaces(&mut self) -> store::Result<Vec<NamespaceRecord>> {
        self.inner.load_namespaces()
    }
    fn load_batch_jobs(&mut self) -> store::Result<Vec<store::BatchJobRecord>> {
        self.inner.load_batch_jobs()
    }
    fn load_records(&mut self) -> store::Result<Vec<store::Record>> {
        self.inner.load_records()
    }
    fn load_execution(&mut self, run_id: &str) -> store::Result<Option<ExecutionRecord>> {
        self.check()?;
        self.inner.load_execution(run_id)
    }
    fn load_work(&mut self, from_ms: i64, to_ms: i64) -> store::Result<Vec<store::WorkRow>> {
        self.check()?;
        self.inner.load_work(from_ms, to_ms)
    }
    fn has_work(&mut self, run_id: &str, item: &str) -> store::Result<bool> {
        self.check()?;
        self.inner.has_work(run_id, item)
    }
    fn load_current_run(&mut self, namespace: &str, workflow_id: &str) -> store::Result<Option<String>> {
        self.check()?;
        self.inner.load_current_run(namespace, workflow_id)
    }
}

fn start_request(request_id: &str) -> StartWorkflow {
    StartWorkflow {
        key: RunKey::new("default", "wf", ""),
        workflow_type: "T".into(),
        task_queue: "q".into(),
        task_timeout_ms: 10_000,
        request_id: request_id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_start_whose_outcome_is_unknown_is_never_applied_twice() {
    let fault = Arc::new(AtomicBool::new(false));
    let store = LostReply { inner: SqliteStore::open(":memory:").unwrap(), fault: fault.clone() };
    let (handle, _writer) = store::Handle::spawn(Box::new(store));
    let (_stop, shutdown) = watch::channel(false);
    let runtime = Runtime::new(shutdown);
    let service = Service::new(Arc::new(SystemClock), handle.clone(), runtime, Limits::default(), Vec::new(), 1 << 20);

    fault.store(true, Ordering::SeqCst);
    let first = service.start_workflow(start_request("r1"), StartPolicy::default()).await;
    assert!(matches!(first, Err(Error::Unavailable(_))), "{first:?}");
    fault.store(false, Ordering::SeqCst);

    // The client retries with the same request id: it gets the run that did land.
    let retried = service.start_workflow(start_request("r1"), StartPolicy::default()).await.unwrap();
    let stored = handle.load_current_run("default", "wf").await.unwrap();
    assert_eq!(stored.as_deref(), Some(&*retried.run_id));
    // A different start is refused: that run is running.
    let other = service.start_workflow(start_request("r2"), StartPolicy::default()).await;
    assert!(matches!(other, Err(Error::AlreadyStarted { ref run_id, .. }) if retried.run_id == *run_id));
    // And its first workflow task is offered.
    let task = service.matching.poll("default", "q", TaskKind::Workflow, "", Duration::from_secs(5)).await;
    assert_eq!(task.map(|t| t.run.run_id), Some(retried.run_id));
}

/// CPU time this thread has used (user + system), from /proc.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux.
}

/// A service on an in-memory SQLite store, on the current thread's runtime.
fn service() -> (Arc<Service>, crate::store::Handle, watch::Sender<bool>) {
    let store = SqliteStore::open(":memory:").unwrap();
    let (handle, _writer) = crate::store::Handle::spawn(Box::new(store));
    let (stop, shutdown) = watch::channel(false);
    let service = Service::new(
        Arc::new(SystemClock),
        handle.clone(),
        Runtime::new(shutdown),
        Limits::default(),
        Vec::new(),
        1 << 20,
    );
    (service, handle, stop)
}

#[tokio::test]
async fn waits_on_a_closed_run_end_at_once_and_waits_on_an_open_run_sleep() {
    use temporalio_protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage as Stage;
    let (service, handle, _stop) = service();
    // A closed run whose update was accepted but never completed: its outcome is Temporal's
    // "the workflow completed before the update completed" failure, at once.
    let (mut state, events, _) = crate::engine::workflow::start(
        StartWorkflow {
            key: RunKey {
                namespace: "default".into(),
                workflow_id: "closed".into(),
                run_id: uuid::Uuid::new_v4().to_string().into(),
            },
            ..start_request("r")
        },
        1_000,
    );
    state.status = crate::engine::state::RunStatus::Completed;
    state.updates.insert("u1".into(), crate::engine::state::UpdateRecord { accepted_event_id: 2, outcome: None });
    handle.commit(vec![Write::execution(&state, &events, None)]).await.unwrap();
    let closed = state.key.clone();

    let cpu = thread_cpu();
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(5);
    let status = service.wait_update(&closed, "u1", Stage::Completed, deadline).await.unwrap();
    assert_eq!(status.0, Stage::Completed);
    let failure = format!("{:?}", status.1);
    assert!(failure.contains("AcceptedUpdateCompletedWorkflow"), "{failure}");
    let watched = service.watch_run(&closed, deadline, |_| None::<()>).await.unwrap();
    assert_eq!(watched, None);
    assert!(started.elapsed() < Duration::from_secs(1), "waits on a closed run took {:?}", started.elapsed());

    // An open run that does not change: a long poll sleeps until its deadline.
    let open = service.start_workflow(start_request("r2"), StartPolicy::default()).await.unwrap();
    let open = RunKey { run_id: open.run_id, ..start_request("r2").key };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    assert_eq!(service.watch_run(&open, deadline, |_| None::<()>).await.unwrap(), None);
    assert!(tokio::time::Instant::now() >= deadline);
    let used = thread_cpu() - cpu;
    assert!(used < Duration::from_millis(300), "the waits used {used:?} of CPU");

    // A cluster node that does not serve the run (a caller with a stale view): refused at
    // once, not answered empty (which the caller would ask again at once, in a loop).
    service.join(crate::cluster::Cluster::new("elsewhere:1".into(), Default::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let refused = service.watch_run(&open, deadline, |_| None::<()>).await.unwrap_err();
    assert!(matches!(refused, crate::error::Error::Unavailable(_)), "{refused:?}");
}

#[tokio::test]
async fn a_query_waits_while_a_workflow_task_is_scheduled() {
    use crate::engine::request::{Reply, Request};
    use crate::engine::workflow_task::CompleteWorkflowTask;
    use temporalio_protos::temporal::api::query::v1::WorkflowQuery;
    let (service, _handle, _stop) = service();
    let started = service.start_workflow(start_request("r"), StartPolicy::default()).await.unwrap();
    let key = RunKey { run_id: started.run_id, ..start_request("r").key };
    // The first workflow task runs and completes.
    let take = Request::StartWorkflowTask {
        identity: "w".into(),
        request_id: "t1".into(),
        build_id: String::new(),
        sticky_poll: false,
        updates: Vec::new(),
    };
    let Outcome::Applied(Reply::WorkflowTaskStarted(task)) = service.execute(&key, take).await.unwrap() else {
        panic!("no workflow task started")
    };
    let complete = CompleteWorkflowTask {
        scheduled_event_id: task.task.scheduled_event_id,
        attempt: task.task.attempt,
        ..Default::default()
    };
    service.execute(&key, Request::CompleteWorkflowTask(Box::new(complete))).await.unwrap();
    // A signal schedules the next one; no worker has taken it when a query comes.
    let signal = crate::engine::external::Signal { name: "s".into(), ..Default::default() };
    service.execute(&key, Request::Signal(signal)).await.unwrap();
    let query = WorkflowQuery { query_type: "q".into(), ..Default::default() };
    let answer = service.query(&key, query, Duration::from_millis(300)).await;
    assert!(matches!(answer, Err(Error::DeadlineExceeded(_))), "{answer:?}");
    // Only the workflow task was offered: a query task would have shown the worker a history
    // without the signal applied.
    let backlog = service.matching.backlog_len("default", "q", TaskKind::Workflow);
    assert_eq!(backlog, 2, "the first and second workflow tasks' pointers, and no query task");
}
