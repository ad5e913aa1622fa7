//! The in-memory queue of the deadlines due soon. Durable timers live in the store's work
//! index (derived from mutable state); this queue holds only those due before a bound that
//! moves forward a window at a time: at start it is filled from the index, then a loader reads
//! each next window from the index before it begins, and a timer added with a later deadline
//! is left to the store. So memory holds minutes of deadlines, never every open run's.
//! Each timer fires through the service, which re-checks the state (so stale or duplicate
//! entries are harmless).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, Millis};
use crate::engine::state::RunKey;
use crate::engine::Timer;

/// How far ahead of the clock the queue holds deadlines.
pub const WINDOW_MS: Millis = 60_000;
/// How long before the bound the loader reads the next window.
const LEAD_MS: Millis = 5_000;

/// The queue's capacity (deadlines) below which it is never shrunk.
const SHRINK_ABOVE: usize = 1024;

/// Timers read from the store: (deadline, run, timer).
pub type Due = Vec<(Millis, RunKey, Timer)>;

/// What fires due timers, and reads the deadlines of a window from the store.
pub trait Fire: Send + Sync + 'static {
    fn fire(self: Arc<Self>, run: RunKey, at_ms: Millis, timer: Timer);
    /// The durable timers due in `[from_ms, to_ms)`; `None` if the store could not be read.
    fn load(self: Arc<Self>, from_ms: Millis, to_ms: Millis) -> Pin<Box<dyn Future<Output = Option<Due>> + Send>>;
}

#[derive(Clone)]
pub struct Timers {
    /// Unbounded, but every entry is a deadline due within about a window.
    tx: mpsc::UnboundedSender<Entry>,
    /// Deadlines before this are kept in memory; later ones are left to the store.
    bound: Arc<AtomicI64>,
}

struct Entry {
    at_ms: Millis,
    run: RunKey,
    timer: Timer,
}

impl Timers {
    /// Queues a deadline, if it is due before the bound (a later one is in the store's work
    /// index and is read with its window). A sticky queue's deadline is not in the store (it
    /// is not part of any run's state) and is always kept.
    pub fn add(&self, at_ms: Millis, run: RunKey, timer: Timer) {
        let durable = !matches!(timer, Timer::StickyTimeout { .. });
        // SeqCst, paired with the loader's: a deadline committed before the loader reads its
        // window is read there; one added after the bound moved is kept here.
        if durable && at_ms >= self.bound.load(Ordering::SeqCst) {
            return;
        }
        let _ = self.tx.send(Entry { at_ms, run, timer });
    }

    /// Starts the timer loop and the window loader, the store having been read up to
    /// `loaded_until_ms`; they stop on shutdown or when every `Timers` is dropped.
    pub fn spawn<F: Fire>(
        clock: Arc<dyn Clock>,
        target: Weak<F>,
        loaded_until_ms: Millis,
        shutdown: watch::Receiver<bool>,
    ) -> (Timers, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let bound = Arc::new(AtomicI64::new(loaded_until_ms));
        let timers = Timers { tx, bound };
        let loader = tokio::spawn(load_windows(clock.clone(), target.clone(), timers.clone(), shutdown.clone()));
        let join = tokio::spawn(async move {
            run(clock, target, rx, shutdown).await;
            loader.abort();
            let _ = loader.await;
        });
        (timers, join)
    }
}

/// Reads each next window of deadlines from the store shortly before it begins: the bound is
/// raised first, then the store read, so a deadline committed meanwhile is either read or kept.
async fn load_windows<F: Fire>(
    clock: Arc<dyn Clock>,
    target: Weak<F>,
    timers: Timers,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let from_ms = timers.bound.load(Ordering::SeqCst);
        let wait_ms = (from_ms - LEAD_MS - clock.now_ms()).max(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let to_ms = (clock.now_ms() + WINDOW_MS).max(from_ms + LEAD_MS);
        timers.bound.store(to_ms, Ordering::SeqCst);
        let mut backoff = Duration::from_millis(50);
        let due = loop {
            let Some(target) = target.upgrade() else { return };
            if let Some(due) = target.load(from_ms, to_ms).await {
                break due;
            }
            // The store is unreachable: these deadlines fire late, never not at all.
            tracing::warn!(from_ms, to_ms, "timers of the next window not read; retrying");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        };
        for (at_ms, run, timer) in due {
            if timers.tx.send(Entry { at_ms, run, timer }).is_err() {
                return;
            }
        }
    }
}

async fn run<F: Fire>(
    clock: Arc<dyn Clock>,
    target: Weak<F>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut heap: BinaryHeap<Reverse<(Millis, u64)>> = BinaryHeap::new();
    let mut entries = std::collections::HashMap::<u64, Entry>::new();
    let mut seq = 0u64;
    loop {
        let wait_ms = heap.peek().map(|Reverse((at, _))| (at - clock.now_ms()).max(0));
        let sleep = tokio::time::sleep(Duration::from_millis(wait_ms.unwrap_or(3_600_000) as u64));
        tokio::select! {
            entry = rx.recv() => match entry {
                Some(entry) => {
                    seq += 1;
                    heap.push(Reverse((entry.at_ms, seq)));
                    entries.insert(seq, entry);
                }
                None => return,
            },
            _ = sleep, if wait_ms.is_some() => {
                let now = clock.now_ms();
                let Some(target) = target.upgrade() else { return };
                while let Some(Reverse((at, id))) = heap.peek().copied() {
                    if at > now {
                        break;
                    }
                    heap.pop();
                    if let Some(entry) = entries.remove(&id) {
                        target.clone().fire(entry.run, entry.at_ms, entry.timer);
                    }
                }
                // After a burst (thousands of task timeouts) the queue would keep its busiest
                // size for good.
                if entries.capacity() > SHRINK_ABOVE && entries.len() < entries.capacity() / 4 {
                    entries.shrink_to_fit();
                    heap.shrink_to_fit();
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clock::TokioClock;

    /// Records what fired, and when; `stored` stands for the store's work index.
    struct Recorder {
        clock: TokioClock,
        fired: Mutex<Vec<(Millis, Timer)>>,
        stored: Mutex<Due>,
        loads: Mutex<Vec<(Millis, Millis)>>,
    }

    impl Recorder {
        fn new(clock: TokioClock) -> Arc<Recorder> {
            Arc::new(Recorder {
                clock,
                fired: Default::default(),
                stored: Default::default(),
                loads: Default::default(),
            })
        }
    }

    impl Fire for Recorder {
        fn fire(self: Arc<Self>, _run: RunKey, at_ms: Millis, timer: Timer) {
            assert!(self.clock.now_ms() >= at_ms, "fired early");
            self.fired.lock().unwrap().push((self.clock.now_ms() - TokioClock::START_MS, timer));
        }

        fn load(self: Arc<Self>, from_ms: Millis, to_ms: Millis) -> Pin<Box<dyn Future<Output = Option<Due>> + Send>> {
            self.loads.lock().unwrap().push((from_ms - TokioClock::START_MS, to_ms - TokioClock::START_MS));
            let stored = self.stored.lock().unwrap();
            let due = stored.iter().filter(|(at, _, _)| *at >= from_ms && *at < to_ms).cloned().collect();
            Box::pin(async move { Some(due) })
        }
    }

    fn user_timer(id: &str) -> Timer {
        Timer::UserTimer { timer_id: id.into(), started_event_id: 5 }
    }

    fn at(ms: Millis) -> Millis {
        TokioClock::START_MS + ms
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_in_deadline_order_at_their_time() {
        let clock = TokioClock::new();
        let recorder = Recorder::new(clock);
        let (stop, shutdown) = watch::channel(false);
        let (timers, join) = Timers::spawn(Arc::new(clock), Arc::downgrade(&recorder), at(WINDOW_MS), shutdown);
        timers.add(at(3_000), RunKey::default(), user_timer("c"));
        timers.add(at(1_000), RunKey::default(), user_timer("a"));
        timers.add(at(2_000), RunKey::default(), user_timer("b"));
        // Already due: fires at once.
        timers.add(at(-5), RunKey::default(), user_timer("late"));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let fired = recorder.fired.lock().unwrap().clone();
        assert_eq!(fired, vec![(0, user_timer("late")), (1_000, user_timer("a")), (2_000, user_timer("b"))]);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(recorder.fired.lock().unwrap().last(), Some(&(3_000, user_timer("c"))));
        stop.send_replace(true);
        join.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn later_deadlines_stay_in_the_store_until_their_window_and_fire_on_time() {
        let clock = TokioClock::new();
        let recorder = Recorder::new(clock);
        // In the store: a deadline in 10 minutes, and one in 5 minutes that is also added here
        // (as a commit's effect would be): it must be kept once, by its window.
        let far = (at(600_000), RunKey::default(), user_timer("far"));
        let mid = (at(300_000), RunKey::default(), user_timer("mid"));
        recorder.stored.lock().unwrap().extend([far.clone(), mid.clone()]);
        let (stop, shutdown) = watch::channel(false);
        let (timers, join) = Timers::spawn(Arc::new(clock), Arc::downgrade(&recorder), at(WINDOW_MS), shutdown);
        timers.add(mid.0, mid.1.clone(), mid.2.clone());
        // A sticky queue's deadline is in no store: kept whatever its time.
        timers.add(at(400_000), RunKey::default(), Timer::StickyTimeout { force: false });
        tokio::time::sleep(Duration::from_millis(700_000)).await;
        let fired = recorder.fired.lock().unwrap().clone();
        let sticky = Timer::StickyTimeout { force: false };
        assert_eq!(fired, vec![(300_000, user_timer("mid")), (400_000, sticky), (600_000, user_timer("far"))]);
        // One read per window, each ahead of the clock, none overlapping: an idle server
        // reads the store about once a minute.
        let loads = recorder.loads.lock().unwrap().clone();
        assert!(loads.windows(2).all(|w| w[0].1 == w[1].0), "{loads:?}");
        assert!((10..=14).contains(&loads.len()), "{} reads in 700 s", loads.len());
        stop.send_replace(true);
        join.await.unwrap();
    }
}
