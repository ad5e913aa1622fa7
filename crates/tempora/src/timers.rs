//! The in-memory queue of upcoming deadlines of all runs. Durable timers live in mutable state;
//! this queue is rebuilt from it at start, and fires each timer through the service, which
//! re-checks the state (so stale or duplicate entries are harmless).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, Millis};
use crate::engine::state::RunKey;
use crate::engine::Timer;

/// What fires due timers.
pub trait Fire: Send + Sync + 'static {
    fn fire(self: Arc<Self>, run: RunKey, timer: Timer);
}

#[derive(Clone)]
pub struct Timers {
    /// Unbounded, but every entry is a deadline held in some run's mutable state.
    tx: mpsc::UnboundedSender<Entry>,
}

struct Entry {
    at_ms: Millis,
    run: RunKey,
    timer: Timer,
}

impl Timers {
    pub fn add(&self, at_ms: Millis, run: RunKey, timer: Timer) {
        let _ = self.tx.send(Entry { at_ms, run, timer });
    }

    /// Starts the timer loop; it stops on shutdown or when every `Timers` is dropped.
    pub fn spawn<F: Fire>(
        clock: Arc<dyn Clock>,
        target: Weak<F>,
        shutdown: watch::Receiver<bool>,
    ) -> (Timers, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let join = tokio::spawn(run(clock, target, rx, shutdown));
        (Timers { tx }, join)
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
                        target.clone().fire(entry.run, entry.timer);
                    }
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

    /// Records what fired, and when.
    struct Recorder {
        clock: TokioClock,
        fired: Mutex<Vec<(Millis, Timer)>>,
    }

    impl Fire for Recorder {
        fn fire(self: Arc<Self>, _run: RunKey, timer: Timer) {
            self.fired.lock().unwrap().push((self.clock.now_ms() - TokioClock::START_MS, timer));
        }
    }

    fn user_timer(id: &str) -> Timer {
        Timer::UserTimer { timer_id: id.into(), started_event_id: 5 }
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_in_deadline_order_at_their_time() {
        let clock = TokioClock::new();
        let recorder = Arc::new(Recorder { clock, fired: Mutex::new(Vec::new()) });
        let (stop, shutdown) = watch::channel(false);
        let (timers, join) = Timers::spawn(Arc::new(clock), Arc::downgrade(&recorder), shutdown);
        let at = |ms: Millis| TokioClock::START_MS + ms;
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
}
