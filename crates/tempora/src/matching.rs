//! Matching: in-memory task queues with long polls.
//!
//! A queued task is only a pointer to a run (and an activity attempt); the run's mutable state
//! is the truth. A poller that takes a task asks the service to *start* it, which fails
//! harmlessly for a stale pointer, so duplicates and leftovers are safe. Queues are rebuilt
//! at start from the store's work index (derived from mutable state), which makes them safe to
//! keep only in memory.
//!
//! A task offered while a poller waits goes straight to it (sync match); otherwise it waits in
//! the backlog. A poll whose caller vanished (or timed out) hands a task it was given back.
//!
//! A worker that names itself in its polls (a worker instance key) and announces its shutdown
//! (`ShutdownWorker`) gets its outstanding polls on the task queues it names answered empty at
//! once, so it can stop without waiting out a long poll; so do its polls that cross the
//! announcement on the wire (for a short grace). Other queues, and later polls, go on as
//! usual: the TypeScript SDK 1.18 shuts down an internal worker under the key of its main one,
//! and reuses the key for the next worker of the same process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};
use crate::engine::state::RunKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TaskKind {
    Workflow,
    Activity,
    Nexus,
}

/// A pointer to a task in a run's mutable state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueuedTask {
    pub run: RunKey,
    /// 0 for workflow tasks.
    pub scheduled_event_id: i64,
    pub attempt: i32,
    /// Set for a query task: the id of the waiting query (`history::Service::query`) and the
    /// query itself.
    pub query: Option<Box<(String, temporalio_protos::temporal::api::query::v1::WorkflowQuery)>>,
    /// For a Nexus task: an attempt of the operation's cancellation, not of its start.
    #[serde(default)]
    pub cancel: bool,
}

type QueueKey = (String, String, TaskKind);

#[derive(Default)]
struct Queue {
    /// Bounded in practice: each entry is a pending task in some run's mutable state, and
    /// runs bound their pending work (e.g. 2,000 activities).
    /// With when each was queued (the clock's milliseconds).
    backlog: VecDeque<(QueuedTask, Millis)>,
    pollers: VecDeque<oneshot::Sender<QueuedTask>>,
    /// When a worker last polled (the clock's milliseconds).
    last_poll_ms: Option<Millis>,
    /// Who polled recently, by identity: when they last did. Bounded: entries older than
    /// `POLLER_MEMORY_MS` are pruned as new ones arrive, and at most `POLLERS_MAX` are kept.
    seen: HashMap<String, Millis>,
    /// Dispatch rate limit (tasks per second across all pollers).
    limiter: Limiter,
}

/// Backlog slots a queue keeps however far it drains.
const BACKLOG_KEPT: usize = 1024;

impl Queue {
    /// Gives back the memory of a backlog that drained: a queue that once held 100,000 tasks
    /// (starts outrunning the workers) would otherwise keep room for them for good. Halves
    /// the room once three quarters of it is empty, so a steady queue never copies.
    fn shrink_backlog(&mut self) {
        let (len, capacity) = (self.backlog.len(), self.backlog.capacity());
        if capacity > BACKLOG_KEPT && len < capacity / 4 {
            self.backlog.shrink_to((len * 2).max(BACKLOG_KEPT));
        }
    }
}

/// Where a queue's dispatch rate limit comes from (Temporal's `RateLimitSource`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateSource {
    /// Set by `UpdateTaskQueueConfig`; wins over the workers' rate.
    Api,
    /// The `max_tasks_per_second` of the latest poll that gave one.
    Worker,
    /// Neither: unlimited.
    System,
}

/// A token bucket over dispatches: `rate` per second, bursts of `max(ceil(rate), 1)`; a rate
/// of 0 dispatches nothing. A poll reserves its token before it takes a task, so however many
/// pollers wait, tasks leave at most at the rate.
#[derive(Default)]
struct Limiter {
    api_rate: Option<f64>,
    worker_rate: Option<f64>,
    tokens: f64,
    refilled_ms: Millis,
}

impl Limiter {
    fn rate(&self) -> Option<f64> {
        self.api_rate.or(self.worker_rate).filter(|r| r.is_finite())
    }

    fn burst(rate: f64) -> f64 {
        if rate <= 0.0 {
            0.0
        } else {
            rate.ceil().max(1.0)
        }
    }

    fn set(&mut self, api_rate: Option<f64>, worker_rate: Option<f64>, now_ms: Millis) {
        let before = self.rate();
        (self.api_rate, self.worker_rate) = (api_rate, worker_rate);
        if self.rate() != before {
            self.tokens = self.rate().map_or(0.0, Self::burst);
            self.refilled_ms = now_ms;
        }
    }

    /// Takes a token: how long to wait before dispatching (`None`: never, at rate 0).
    fn reserve(&mut self, now_ms: Millis) -> Option<Duration> {
        let Some(rate) = self.rate() else { return Some(Duration::ZERO) };
        if rate <= 0.0 {
            return None;
        }
        let elapsed_s = (now_ms - self.refilled_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_s * rate).min(Self::burst(rate));
        self.refilled_ms = now_ms;
        self.tokens -= 1.0;
        Some(if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / rate) })
    }

    /// Gives back a reserved token that dispatched nothing.
    fn unreserve(&mut self) {
        if let Some(rate) = self.rate() {
            self.tokens = (self.tokens + 1.0).min(Self::burst(rate));
        }
    }
}

/// How long DescribeTaskQueue lists a poller after its last poll (Temporal: 5 minutes).
const POLLER_MEMORY_MS: Millis = 5 * 60 * 1000;
const POLLERS_MAX: usize = 1024;

/// What DescribeTaskQueue shows of one queue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueInfo {
    /// (identity, last poll time), most recent first.
    pub pollers: Vec<(String, Millis)>,
    pub backlog_count: usize,
    /// Age of the oldest queued task.
    pub backlog_age_ms: Millis,
}

/// Workers known by their instance key: whether they announced their shutdown.
struct Worker {
    stopped: CancellationToken,
    last_seen_ms: Millis,
    /// When it announced its shutdown.
    shut_down_ms: Option<Millis>,
}

impl Worker {
    fn new(now_ms: Millis) -> Self {
        Worker { stopped: CancellationToken::new(), last_seen_ms: now_ms, shut_down_ms: None }
    }
}

/// After `ShutdownWorker`, polls under the same key answer empty at once for this long.
const WORKER_SHUTDOWN_GRACE_MS: Millis = 3_000;
/// The task queue of a shutdown that named none: all of the worker's.
const ALL_QUEUES: &str = "";

/// Workers are forgotten this long after they last polled or shut down.
const WORKER_MEMORY_MS: Millis = 10 * 60 * 1000;
/// Above this many known workers, forgotten ones are pruned at the next new one.
const WORKERS_PRUNE_AT: usize = 256;

pub struct Matching {
    queues: Mutex<HashMap<QueueKey, Queue>>,
    /// By worker instance key and task queue. Bounded: entries not seen for
    /// `WORKER_MEMORY_MS` are pruned.
    workers: Mutex<HashMap<(String, String), Worker>>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
}

impl Matching {
    pub fn new(clock: Arc<dyn Clock>, shutdown: watch::Receiver<bool>) -> Self {
        Matching { queues: Mutex::new(HashMap::new()), workers: Mutex::new(HashMap::new()), clock, shutdown }
    }

    /// The stop signal of a worker's polls on a task queue: cancelled when it announces its
    /// shutdown (of that queue, or of all), and for a poll within the grace after that. A
    /// later poll starts afresh.
    pub fn worker(&self, instance_key: &str, task_queue: &str) -> CancellationToken {
        let now_ms = self.clock.now_ms();
        let mut workers = self.workers.lock().expect("matching lock");
        let key = (instance_key.to_string(), task_queue.to_string());
        if !workers.contains_key(&key) && workers.len() >= WORKERS_PRUNE_AT {
            workers.retain(|_, w| now_ms - w.last_seen_ms < WORKER_MEMORY_MS);
        }
        let in_grace = |w: &Worker| w.shut_down_ms.is_some_and(|at| now_ms - at < WORKER_SHUTDOWN_GRACE_MS);
        if workers.get(&(instance_key.to_string(), ALL_QUEUES.to_string())).is_some_and(in_grace) {
            let stopped = CancellationToken::new();
            stopped.cancel();
            return stopped;
        }
        let fresh = || Worker::new(now_ms);
        let worker = workers.entry(key).or_insert_with(fresh);
        if worker.shut_down_ms.is_some() && !in_grace(worker) {
            *worker = fresh();
        }
        worker.last_seen_ms = now_ms;
        worker.stopped.clone()
    }

    /// `ShutdownWorker`: the worker's waiting polls on the task queues it names (all of its
    /// polls if it names none) answer empty now, and for the grace. Only those queues: an SDK
    /// may shut down one of its workers while another goes on under the same key.
    pub fn worker_shut_down(&self, instance_key: &str, task_queues: &[&str]) {
        if instance_key.is_empty() {
            return;
        }
        let now_ms = self.clock.now_ms();
        let mut workers = self.workers.lock().expect("matching lock");
        let all = task_queues.is_empty();
        for ((key, queue), worker) in workers.iter_mut() {
            if key == instance_key && (all || task_queues.contains(&queue.as_str())) {
                worker.stopped.cancel();
                worker.shut_down_ms = Some(now_ms);
            }
        }
        let marks: Vec<&str> = if all { vec![ALL_QUEUES] } else { task_queues.to_vec() };
        for queue in marks {
            let fresh = || Worker::new(now_ms);
            let worker = workers.entry((instance_key.to_string(), queue.to_string())).or_insert_with(fresh);
            worker.stopped.cancel();
            worker.shut_down_ms = Some(now_ms);
            worker.last_seen_ms = now_ms;
        }
    }

    /// Hands the task to a waiting poller, or queues it.
    pub fn offer(&self, namespace: &str, task_queue: &str, kind: TaskKind, mut task: QueuedTask) {
        let mut queues = self.queues.lock().expect("matching lock");
        let queue = queues.entry((namespace.to_string(), task_queue.to_string(), kind)).or_default();
        while let Some(poller) = queue.pollers.pop_front() {
            match poller.send(task) {
                Ok(()) => return,
                Err(returned) => task = returned,
            }
        }
        queue.backlog.push_back((task, self.clock.now_ms()));
    }

    /// Notes a poll by `identity` (for DescribeTaskQueue).
    pub fn poller_seen(&self, namespace: &str, task_queue: &str, kind: TaskKind, identity: &str) {
        let now_ms = self.clock.now_ms();
        let mut queues = self.queues.lock().expect("matching lock");
        let queue = queues.entry((namespace.to_string(), task_queue.to_string(), kind)).or_default();
        if !queue.seen.contains_key(identity) {
            queue.seen.retain(|_, at| now_ms - *at < POLLER_MEMORY_MS);
            if queue.seen.len() >= POLLERS_MAX {
                return;
            }
        }
        queue.seen.insert(identity.to_string(), now_ms);
    }

    /// Sets (or, with `None`, removes) the rate limit `UpdateTaskQueueConfig` gave a queue.
    pub fn set_api_rate(&self, namespace: &str, task_queue: &str, kind: TaskKind, rate: Option<f64>) {
        let now_ms = self.clock.now_ms();
        let mut queues = self.queues.lock().expect("matching lock");
        let queue = queues.entry((namespace.to_string(), task_queue.to_string(), kind)).or_default();
        let worker_rate = queue.limiter.worker_rate;
        queue.limiter.set(rate, worker_rate, now_ms);
    }

    /// Notes the rate a polling worker asks for (the latest poll wins, as in Temporal).
    pub fn set_worker_rate(&self, namespace: &str, task_queue: &str, kind: TaskKind, rate: Option<f64>) {
        let now_ms = self.clock.now_ms();
        let mut queues = self.queues.lock().expect("matching lock");
        let queue = queues.entry((namespace.to_string(), task_queue.to_string(), kind)).or_default();
        let api_rate = queue.limiter.api_rate;
        queue.limiter.set(api_rate, rate, now_ms);
    }

    /// The dispatch rate a queue runs at and where it comes from (`None`: unlimited).
    pub fn effective_rate(&self, namespace: &str, task_queue: &str, kind: TaskKind) -> (Option<f64>, RateSource) {
        let queues = self.queues.lock().expect("matching lock");
        let Some(limiter) = queues.get(&(namespace.to_string(), task_queue.to_string(), kind)).map(|q| &q.limiter)
        else {
            return (None, RateSource::System);
        };
        match (limiter.api_rate, limiter.worker_rate) {
            (Some(rate), _) => (Some(rate), RateSource::Api),
            (None, Some(rate)) => (Some(rate), RateSource::Worker),
            (None, None) => (None, RateSource::System),
        }
    }

    /// Every queue's backlog: its namespace, name, kind, size and the age of its oldest task.
    pub fn backlogs(&self) -> Vec<(String, String, TaskKind, usize, Millis)> {
        let now_ms = self.clock.now_ms();
        let queues = self.queues.lock().expect("matching lock");
        queues
            .iter()
            .map(|((namespace, task_queue, kind), queue)| {
                let age = queue.backlog.front().map_or(0, |(_, at)| (now_ms - at).max(0));
                (namespace.clone(), task_queue.clone(), *kind, queue.backlog.len(), age)
            })
            .collect()
    }

    /// Recent pollers and the backlog of a queue.
    pub fn describe(&self, namespace: &str, task_queue: &str, kind: TaskKind) -> QueueInfo {
        let now_ms = self.clock.now_ms();
        let queues = self.queues.lock().expect("matching lock");
        let Some(queue) = queues.get(&(namespace.to_string(), task_queue.to_string(), kind)) else {
            return QueueInfo::default();
        };
        let mut pollers: Vec<(String, Millis)> = queue
            .seen
            .iter()
            .filter(|(_, at)| now_ms - **at < POLLER_MEMORY_MS)
            .map(|(identity, at)| (identity.clone(), *at))
            .collect();
        pollers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        QueueInfo {
            pollers,
            backlog_count: queue.backlog.len(),
            backlog_age_ms: queue.backlog.front().map_or(0, |(_, at)| (now_ms - at).max(0)),
        }
    }

    /// Waits up to `timeout` for a task. `None` on expiry, server shutdown, or the shutdown of
    /// the polling worker (`worker`: its instance key, empty if it gave none).
    pub async fn poll(
        &self,
        namespace: &str,
        task_queue: &str,
        kind: TaskKind,
        worker: &str,
        timeout: Duration,
    ) -> Option<QueuedTask> {
        let key: QueueKey = (namespace.to_string(), task_queue.to_string(), kind);
        let stopped = if worker.is_empty() { CancellationToken::new() } else { self.worker(worker, task_queue) };
        if stopped.is_cancelled() {
            return None;
        }
        let mut shutdown = self.shutdown.clone();
        // A rate-limited queue: wait for this poll's token before taking anything.
        let wait = {
            let mut queues = self.queues.lock().expect("matching lock");
            let queue = queues.entry(key.clone()).or_default();
            queue.last_poll_ms = Some(self.clock.now_ms());
            queue.limiter.reserve(self.clock.now_ms())
        };
        if wait != Some(Duration::ZERO) {
            let waited = wait.filter(|w| *w <= timeout);
            let pause = waited.unwrap_or(timeout);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
                _ = stopped.cancelled() => {}
            }
            let interrupted = *shutdown.borrow() || stopped.is_cancelled();
            if waited.is_none() || interrupted {
                let mut queues = self.queues.lock().expect("matching lock");
                if let Some(queue) = queues.get_mut(&key) {
                    queue.limiter.unreserve();
                }
                return None;
            }
        }
        let timeout = timeout.saturating_sub(wait.unwrap_or_default());
        let rx = {
            let mut queues = self.queues.lock().expect("matching lock");
            let queue = queues.entry(key.clone()).or_default();
            queue.last_poll_ms = Some(self.clock.now_ms());
            if let Some((task, _)) = queue.backlog.pop_front() {
                queue.shrink_backlog();
                return Some(task);
            }
            let (tx, rx) = oneshot::channel();
            queue.pollers.retain(|p| !p.is_closed());
            queue.pollers.push_back(tx);
            rx
        };
        let mut waiting = Waiting { rx: Some(rx), matching: self, key: key.clone() };
        let rx = waiting.rx.as_mut().expect("set above");
        let task = tokio::select! {
            task = rx => {
                waiting.rx = None;
                task.ok()
            }
            _ = tokio::time::sleep(timeout) => waiting.take(),
            _ = shutdown.wait_for(|stop| *stop) => waiting.take(),
            _ = stopped.cancelled() => waiting.take(),
        };
        if task.is_none() {
            // Nothing dispatched: the token goes back.
            if let Some(queue) = self.queues.lock().expect("matching lock").get_mut(&key) {
                queue.limiter.unreserve();
            }
        }
        task
    }

    /// True if some worker is polling the queue now or did so within `recent`.
    pub fn is_live(&self, namespace: &str, task_queue: &str, kind: TaskKind, recent: Duration) -> bool {
        let now_ms = self.clock.now_ms();
        let queues = self.queues.lock().expect("matching lock");
        queues.get(&(namespace.to_string(), task_queue.to_string(), kind)).is_some_and(|q| {
            q.pollers.iter().any(|p| !p.is_closed())
                || q.last_poll_ms.is_some_and(|t| now_ms - t < recent.as_millis() as Millis)
        })
    }

    /// Removes a queue (a sticky queue whose worker shut down), returning its backlog.
    pub fn remove(&self, namespace: &str, task_queue: &str, kind: TaskKind) -> Vec<QueuedTask> {
        let mut queues = self.queues.lock().expect("matching lock");
        queues
            .remove(&(namespace.to_string(), task_queue.to_string(), kind))
            .map(|q| q.backlog.into_iter().map(|(task, _)| task).collect())
            .unwrap_or_default()
    }

    /// Tasks waiting in backlogs.
    #[cfg(test)]
    pub fn backlog_len(&self, namespace: &str, task_queue: &str, kind: TaskKind) -> usize {
        let queues = self.queues.lock().expect("matching lock");
        queues.get(&(namespace.to_string(), task_queue.to_string(), kind)).map_or(0, |q| q.backlog.len())
    }
}

/// A registered poller. If the poll ends without taking its task (timeout, shutdown, or the
/// caller dropping the future), a task sent in the meantime goes back to the queue.
struct Waiting<'a> {
    rx: Option<oneshot::Receiver<QueuedTask>>,
    matching: &'a Matching,
    key: QueueKey,
}

impl Waiting<'_> {
    /// Stops waiting; returns a task that raced in, if any.
    fn take(&mut self) -> Option<QueuedTask> {
        let mut rx = self.rx.take()?;
        rx.close();
        rx.try_recv().ok()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.take() {
            let (namespace, task_queue, kind) = &self.key;
            self.matching.offer(namespace, task_queue, *kind, task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    fn task(n: i64) -> QueuedTask {
        QueuedTask {
            run: RunKey { namespace: "ns".into(), workflow_id: "w".into(), run_id: "r".into() },
            scheduled_event_id: n,
            attempt: 1,
            query: None,
            cancel: false,
        }
    }

    fn matching() -> (Arc<Matching>, watch::Sender<bool>) {
        let (stop, shutdown) = watch::channel(false);
        (Arc::new(Matching::new(Arc::new(TokioClock::new()), shutdown)), stop)
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_backlog_gives_its_room_back() {
        let (m, _stop) = matching();
        for n in 0..20_000 {
            m.offer("ns", "q", TaskKind::Workflow, task(n));
        }
        let room = |m: &Matching| m.queues.lock().unwrap().values().map(|q| q.backlog.capacity()).sum::<usize>();
        assert!(room(&m) >= 20_000);
        for n in 0..20_000 {
            assert_eq!(m.poll("ns", "q", TaskKind::Workflow, "", Duration::from_millis(10)).await, Some(task(n)));
        }
        assert!(room(&m) <= 2 * BACKLOG_KEPT, "room for {} tasks kept", room(&m));
    }

    #[tokio::test(start_paused = true)]
    async fn backlog_then_sync_match() {
        let (m, _stop) = matching();
        m.offer("ns", "q", TaskKind::Activity, task(1));
        assert_eq!(m.poll("ns", "q", TaskKind::Activity, "", Duration::from_millis(10)).await, Some(task(1)));
        let m2 = m.clone();
        let poller =
            tokio::spawn(async move { m2.poll("ns", "q", TaskKind::Activity, "", Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        m.offer("ns", "q", TaskKind::Activity, task(2));
        assert_eq!(poller.await.unwrap(), Some(task(2)));
        assert_eq!(m.backlog_len("ns", "q", TaskKind::Activity), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_queue_dispatches_a_burst_then_at_its_rate_and_nothing_at_zero() {
        let (m, _stop) = matching();
        for n in 1..=6 {
            m.offer("ns", "q", TaskKind::Activity, task(n));
        }
        m.set_worker_rate("ns", "q", TaskKind::Activity, Some(100.0));
        m.set_api_rate("ns", "q", TaskKind::Activity, Some(2.0));
        assert_eq!(m.effective_rate("ns", "q", TaskKind::Activity), (Some(2.0), RateSource::Api));
        let start = tokio::time::Instant::now();
        let mut at_ms = Vec::new();
        for n in 1..=6 {
            assert_eq!(m.poll("ns", "q", TaskKind::Activity, "", Duration::from_secs(60)).await, Some(task(n)));
            at_ms.push(start.elapsed().as_millis());
        }
        assert_eq!(at_ms, vec![0, 0, 500, 1000, 1500, 2000], "a burst of 2, then one per 500 ms");

        m.set_api_rate("ns", "q", TaskKind::Activity, Some(0.0));
        m.offer("ns", "q", TaskKind::Activity, task(7));
        assert_eq!(m.poll("ns", "q", TaskKind::Activity, "", Duration::from_secs(3)).await, None, "rate 0 stops all");
        m.set_api_rate("ns", "q", TaskKind::Activity, None);
        assert_eq!(m.effective_rate("ns", "q", TaskKind::Activity), (Some(100.0), RateSource::Worker));
        assert_eq!(m.poll("ns", "q", TaskKind::Activity, "", Duration::from_secs(3)).await, Some(task(7)));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_poll_is_empty_and_cancelled_poll_loses_nothing() {
        let (m, _stop) = matching();
        let started = tokio::time::Instant::now();
        assert_eq!(m.poll("ns", "q", TaskKind::Workflow, "", Duration::from_secs(60)).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        let m2 = m.clone();
        let poller =
            tokio::spawn(async move { m2.poll("ns", "q", TaskKind::Workflow, "", Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        poller.abort();
        let _ = poller.await;
        m.offer("ns", "q", TaskKind::Workflow, task(0));
        assert_eq!(m.backlog_len("ns", "q", TaskKind::Workflow), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_is_live_while_polled_and_for_a_while_after() {
        let (m, _stop) = matching();
        let recent = Duration::from_secs(5);
        assert!(!m.is_live("ns", "sticky", TaskKind::Workflow, recent));
        assert_eq!(m.poll("ns", "sticky", TaskKind::Workflow, "", Duration::from_secs(1)).await, None);
        assert!(m.is_live("ns", "sticky", TaskKind::Workflow, recent));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!m.is_live("ns", "sticky", TaskKind::Workflow, recent));
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_shutdown_answers_its_waiting_polls_and_no_one_elses() {
        let (m, _stop) = matching();
        let poll = |worker: &'static str| {
            let m = m.clone();
            tokio::spawn(async move { m.poll("ns", "q", TaskKind::Activity, worker, Duration::from_secs(60)).await })
        };
        let (mine, theirs) = (poll("w1"), poll("w2"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = tokio::time::Instant::now();
        m.worker_shut_down("w1", &[]);
        assert_eq!(mine.await.unwrap(), None);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // A poll that crossed the shutdown on the wire answers at once too.
        assert_eq!(poll("w1").await.unwrap(), None);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Past the grace, a poll under the same key (an SDK may reuse it) waits as usual.
        tokio::time::advance(Duration::from_millis(WORKER_SHUTDOWN_GRACE_MS as u64)).await;
        let next = poll("w1");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!next.is_finished(), "a poll after the shutdown waits as usual");
        m.offer("ns", "q", TaskKind::Activity, task(1));
        m.offer("ns", "q", TaskKind::Activity, task(2));
        let mut got = vec![theirs.await.unwrap(), next.await.unwrap()];
        got.sort_by_key(|t| t.as_ref().map(|t| t.scheduled_event_id));
        assert_eq!(got, vec![Some(task(1)), Some(task(2))]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_shutdown_naming_task_queues_spares_the_workers_other_queues() {
        let (m, _stop) = matching();
        let poll = |queue: &'static str| {
            let m = m.clone();
            tokio::spawn(async move { m.poll("ns", queue, TaskKind::Workflow, "w1", Duration::from_secs(60)).await })
        };
        let (main, internal) = (poll("main"), poll("internal"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        m.worker_shut_down("w1", &["internal"]);
        assert_eq!(internal.await.unwrap(), None);
        let again = poll("main");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!main.is_finished() && !again.is_finished(), "the main queue's polls go on");
        m.offer("ns", "main", TaskKind::Workflow, task(1));
        m.offer("ns", "main", TaskKind::Workflow, task(2));
        assert!(main.await.unwrap().is_some() && again.await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_answers_waiting_polls() {
        let (m, stop) = matching();
        let m2 = m.clone();
        let poller =
            tokio::spawn(async move { m2.poll("ns", "q", TaskKind::Activity, "", Duration::from_secs(60)).await });
        tokio::task::yield_now().await;
        stop.send_replace(true);
        assert_eq!(poller.await.unwrap(), None);
    }
}
