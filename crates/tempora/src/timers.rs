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
