//! Per-minute activity of the last hour, per namespace, for the UI's overview page: runs
//! started, completed and failed, and how long tasks waited in their queues
//! (schedule-to-start). Memory only, bounded (an hour of fixed-size minutes per namespace);
//! a restart starts from zero.
//!
//! Not for: alerting or long-term figures (those belong to a metrics endpoint).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Millis;
use crate::engine::state::RunStatus;
use crate::matching::TaskKind;

/// Minutes kept.
pub(crate) const MINUTES: usize = 60;

/// Latency buckets: bucket `i` holds waits below `2^i` ms (the last one, anything longer).
const BUCKETS: usize = 20;

#[derive(Clone, Copy, Default)]
struct Minute {
    /// Minutes since the epoch this slot holds (older contents are stale).
    minute: i64,
    started: u64,
    completed: u64,
    failed: u64,
    workflow_task_waits: [u32; BUCKETS],
    activity_task_waits: [u32; BUCKETS],
}

#[derive(Default)]
pub(crate) struct Stats {
    namespaces: Mutex<HashMap<String, Box<[Minute; MINUTES]>>>,
}

/// The last hour, oldest minute first.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Overview {
    pub minutes: usize,
    pub started: Vec<u64>,
    pub completed: Vec<u64>,
    pub failed: Vec<u64>,
    /// Median schedule-to-start wait per minute (an upper bound: the bucket's top), 0 if none.
    pub workflow_task_latency_ms: Vec<u64>,
    pub activity_task_latency_ms: Vec<u64>,
}

fn bucket(wait_ms: Millis) -> usize {
    let wait = wait_ms.max(0) as u64;
    ((u64::BITS - wait.leading_zeros()) as usize).min(BUCKETS - 1)
}

fn median_ms(waits: &[u32; BUCKETS]) -> u64 {
    let total: u64 = waits.iter().map(|&n| n as u64).sum();
    if total == 0 {
        return 0;
    }
    let mut seen = 0;
    for (i, &n) in waits.iter().enumerate() {
        seen += n as u64;
        if seen * 2 >= total {
            return 1 << i;
        }
    }
    1 << (BUCKETS - 1)
}

impl Stats {
    fn with_minute(&self, namespace: &str, now_ms: Millis, f: impl FnOnce(&mut Minute)) {
        let minute = now_ms.div_euclid(60_000);
        let mut namespaces = self.namespaces.lock().expect("stats lock");
        let minutes = namespaces.entry(namespace.to_string()).or_insert_with(|| Box::new([Minute::default(); MINUTES]));
        let slot = &mut minutes[minute.rem_euclid(MINUTES as i64) as usize];
        if slot.minute != minute {
            *slot = Minute { minute, ..Default::default() };
        }
        f(slot);
    }

    pub(crate) fn started(&self, namespace: &str, now_ms: Millis) {
        self.with_minute(namespace, now_ms, |m| m.started += 1);
    }

    /// A run closed with `status` (continued-as-new runs count as neither).
    pub(crate) fn closed(&self, namespace: &str, status: RunStatus, now_ms: Millis) {
        self.with_minute(namespace, now_ms, |m| match status {
            RunStatus::Completed => m.completed += 1,
            RunStatus::Failed | RunStatus::TimedOut | RunStatus::Terminated | RunStatus::Canceled => m.failed += 1,
            RunStatus::Running | RunStatus::ContinuedAsNew => {}
        });
    }

    /// A task was taken from its queue `wait_ms` after it was scheduled.
    pub(crate) fn task_started(&self, namespace: &str, kind: TaskKind, wait_ms: Millis, now_ms: Millis) {
        self.with_minute(namespace, now_ms, |m| {
            let waits = match kind {
                TaskKind::Workflow => &mut m.workflow_task_waits,
                TaskKind::Activity => &mut m.activity_task_waits,
                TaskKind::Nexus => return,
            };
            waits[bucket(wait_ms)] = waits[bucket(wait_ms)].saturating_add(1);
        });
    }

    pub(crate) fn overview(&self, namespace: &str, now_ms: Millis) -> Overview {
        let now = now_ms.div_euclid(60_000);
        let namespaces = self.namespaces.lock().expect("stats lock");
        let empty = Minute::default();
        let mut out = Overview { minutes: MINUTES, ..Default::default() };
        for minute in (now - MINUTES as i64 + 1)..=now {
            let m = namespaces
                .get(namespace)
                .map(|ms| &ms[minute.rem_euclid(MINUTES as i64) as usize])
                .filter(|m| m.minute == minute)
                .unwrap_or(&empty);
            out.started.push(m.started);
            out.completed.push(m.completed);
            out.failed.push(m.failed);
            out.workflow_task_latency_ms.push(median_ms(&m.workflow_task_waits));
            out.activity_task_latency_ms.push(median_ms(&m.activity_task_waits));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_minute_and_age_out_after_an_hour() {
        let stats = Stats::default();
        let t0 = 1_000 * 60_000;
        stats.started("ns", t0);
        stats.started("ns", t0 + 59_000);
        stats.closed("ns", RunStatus::Completed, t0 + 60_000);
        stats.closed("ns", RunStatus::Failed, t0 + 60_000);
        stats.closed("ns", RunStatus::ContinuedAsNew, t0 + 60_000);
        stats.task_started("ns", TaskKind::Workflow, 3, t0 + 60_000);
        stats.task_started("ns", TaskKind::Workflow, 5, t0 + 60_000);
        stats.task_started("ns", TaskKind::Workflow, 900, t0 + 60_000);
        let o = stats.overview("ns", t0 + 60_000);
        assert_eq!(o.started.len(), MINUTES);
        assert_eq!(o.started[MINUTES - 2..], [2, 0]);
        assert_eq!((o.completed[MINUTES - 1], o.failed[MINUTES - 1]), (1, 1));
        assert_eq!(o.workflow_task_latency_ms[MINUTES - 1], 8, "the median wait's bucket top");
        assert_eq!(stats.overview("other", t0).started.iter().sum::<u64>(), 0);
        // An hour later the same slots are reused and the old counts are gone.
        let later = stats.overview("ns", t0 + 61 * 60_000);
        assert_eq!(later.started.iter().sum::<u64>(), 0);
    }
}
