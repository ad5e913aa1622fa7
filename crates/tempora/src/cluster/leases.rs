//! The lease loop: one thread with its own PostgreSQL session that keeps this node in the
//! cluster. Every round (each `ROUND`, or at once when another node announces a change on
//! `LISTEN tempora_leases`) it heartbeats, renews the leases it holds, reads which nodes are
//! live, takes the shards rendezvous hashing gives it and releases those it gives another
//! live node, then reads every shard's owner for routing. Times are the database's; the only
//! local time is the monotonic instant a lease is served until (renewal sent + TTL − margin),
//! so a node whose renewals stop (a pause, a lost connection) stops serving before another
//! node can take its shards. An idle cluster does one round per node every `ROUND`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tokio::sync::mpsc::UnboundedSender;

use super::{Change, Cluster, Lease};
use crate::shard::{ShardId, SHARD_COUNT};
use crate::store::RecordKind;

/// How often a node renews its leases and heartbeats.
pub(crate) const ROUND: Duration = Duration::from_secs(2);
/// How long a lease (and a heartbeat) lasts in the database.
pub(crate) const TTL: Duration = Duration::from_secs(10);
/// A node stops serving a shard this long before its lease could lapse in the database.
const MARGIN: Duration = Duration::from_secs(2);
/// How often the thread checks whether it should stop while it waits.
const WAKE: Duration = Duration::from_millis(200);

const CHANNEL: &str = "tempora_leases";
/// Sent in a namespace change's transaction (`store::postgres`).
pub(crate) const NAMESPACES_CHANNEL: &str = "tempora_namespaces";
/// Sent in a record's transaction, with the record kind as payload (`store::postgres`).
pub(crate) const RECORDS_CHANNEL: &str = "tempora_records";

/// The running loop; `stop` releases every lease and ends it.
pub(crate) struct Loop {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loop {
    /// Starts the loop; the first round (the node's first shards) is done before it returns.
    pub(crate) fn start(
        url: &str,
        cluster: Arc<Cluster>,
        address: String,
        changes: UnboundedSender<Change>,
    ) -> Result<Loop, String> {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        config.application_name(&format!("tempora node {address} (leases)"));
        // A round never hangs on a database it cannot reach: leases lapse on their own clock.
        config.connect_timeout(Duration::from_secs(2));
        config.keepalives(true).keepalives_idle(Duration::from_secs(5));
        config.options("-c statement_timeout=5000 -c lock_timeout=2000");
        let mut round = Round { config, client: None, cluster, address, changes, epochs: HashMap::new() };
        round.run().map_err(|e| format!("first lease round: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tempora-leases".into())
            .spawn(move || round.serve(&stopping))
            .map_err(|e| e.to_string())?;
        Ok(Loop { stop, thread: Some(thread) })
    }

    /// Releases every lease (the others are told at once) and ends the loop.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Round {
    config: postgres::Config,
    client: Option<Client>,
    cluster: Arc<Cluster>,
    address: String,
    changes: UnboundedSender<Change>,
    /// The epoch of each shard taken, even after its lease lapsed locally: a renewal that
    /// returns the same epoch proves nobody took the shard meanwhile.
    epochs: HashMap<u32, i64>,
}

/// The node a shard goes to: the live node with the highest hash of (shard, node) —
/// rendezvous hashing, so a node joining or leaving moves only its own share of shards.
pub(crate) fn chosen(shard: u32, live: &[String]) -> Option<&String> {
    live.iter().max_by_key(|node| (weight(shard, node), node.as_str()))
}

fn weight(shard: u32, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain(shard.to_le_bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix so neighbouring shards spread (FNV's low bits are weak).
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

impl Round {
    fn serve(mut self, stop: &AtomicBool) {
        let mut next = Instant::now() + ROUND;
        while !stop.load(Ordering::SeqCst) {
            let (notified, namespaces, records) = self.wait(next.min(Instant::now() + WAKE));
            if namespaces {
                let _ = self.changes.send(Change::Namespaces);
            }
            if !records.is_empty() {
                let _ = self.changes.send(Change::Records(records));
            }
            if notified || Instant::now() >= next {
                next = Instant::now() + ROUND;
                if let Err(e) = self.run() {
                    tracing::warn!(error = %e, "lease round failed; leases lapse unless a later round renews them");
                    self.client = None;
                }
            }
        }
        if let Err(e) = self.release_all() {
            tracing::warn!(error = %e, "leases not released; other nodes take them after their TTL");
        }
    }

    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let mut client = self.config.connect(NoTls)?;
            client
                .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {NAMESPACES_CHANNEL}; LISTEN {RECORDS_CHANNEL}"))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Waits until `until` or a notification: (lease change, namespace change, the kinds of
    /// records changed).
    fn wait(&mut self, until: Instant) -> (bool, bool, Vec<RecordKind>) {
        let Ok(client) = self.client() else {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            return (false, false, Vec::new());
        };
        let (mut leases, mut namespaces, mut records) = (false, false, Vec::new());
        let mut seen = |n: &postgres::Notification| match n.channel() {
            NAMESPACES_CHANNEL => namespaces = true,
            RECORDS_CHANNEL => {
                if let Some(kind) = RecordKind::from_name(n.payload()).filter(|k| !records.contains(k)) {
                    records.push(kind);
                }
            }
            _ => leases = true,
        };
        let mut broken = false;
        {
            let mut notifications = client.notifications();
            let first = notifications.timeout_iter(until.saturating_duration_since(Instant::now())).next();
            match first {
                Ok(Some(n)) => {
                    seen(&n);
                    // Any already queued behind it are coalesced into this one wake-up.
                    let mut queued = notifications.iter();
                    loop {
                        match queued.next() {
                            Ok(Some(n)) => seen(&n),
                            Ok(None) => break,
                            Err(_) => {
                                broken = true;
                                break;
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(_) => broken = true,
            }
        }
        if broken {
            self.client = None;
        }
        (leases, namespaces, records)
    }

    fn run(&mut self) -> Result<(), postgres::Error> {
        let sent = Instant::now();
        let ttl_s = TTL.as_secs_f64();
        let me = self.cluster.node().to_string();
        let address = self.address.clone();
        let client = self.client()?;
        client.execute(
            "INSERT INTO cluster_nodes (id, address, heartbeat_at) VALUES ($1, $2, now())
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, heartbeat_at = now()",
            &[&me, &address],
        )?;
        let renewed: HashMap<u32, i64> = client
            .query(
                "UPDATE shard_leases SET expires_at = now() + make_interval(secs => $2)
                 WHERE shard IN (SELECT shard FROM shard_leases WHERE owner = $1 ORDER BY shard FOR UPDATE)
                 RETURNING shard, epoch",
                &[&me, &ttl_s],
            )?
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1)))
            .collect();
        let live: Vec<String> = client
            .query(
                "SELECT id FROM cluster_nodes WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY id",
                &[&ttl_s],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut live = live;
        if !live.contains(&me) {
            live.push(me.clone());
        }
        // What this node served when the round began (leases that had lapsed on its clock
        // are not served, and are taken up again if the renewal kept them).
        let before = self.cluster.fence.held();
        let lapsed: HashSet<u32> = before.iter().filter(|(_, l)| l.valid_until <= sent).map(|(s, _)| *s).collect();
        // Held: what the renewal returned at the epoch we took it with.
        let mut held: HashSet<u32> =
            renewed.iter().filter(|(s, e)| self.epochs.get(s) == Some(e)).map(|(s, _)| *s).collect();
        let wanted: HashSet<u32> = (0..SHARD_COUNT).filter(|s| chosen(*s, &live) == Some(&me)).collect();
        // Every row in this node's name that another live node should hold goes, including
        // rows at an epoch it does not know (written by its previous process, or an acquire
        // whose answer was lost).
        let release: Vec<i32> = renewed.keys().filter(|s| !wanted.contains(s)).map(|s| *s as i32).collect();
        let acquire: Vec<i32> = wanted.iter().filter(|s| !held.contains(s)).map(|s| *s as i32).collect();
        let mut announce = false;
        if !release.is_empty() {
            // Served no more before the release commits: a write in flight holds the lease row
            // (`FOR SHARE`), so the release waits for it, and later writes fail their check.
            let mut fence = self.cluster.fence.held();
            fence.retain(|s, _| !release.contains(&(*s as i32)));
            self.cluster.fence.set(fence);
            let client = self.client()?;
            client.execute(
                "UPDATE shard_leases SET owner = NULL, expires_at = now()
                 WHERE shard IN (
                     SELECT shard FROM shard_leases WHERE owner = $1 AND shard = ANY($2) ORDER BY shard FOR UPDATE)",
                &[&me, &release],
            )?;
            for s in &release {
                held.remove(&(*s as u32));
                self.epochs.remove(&(*s as u32));
            }
            announce = true;
        }
        let mut acquired = Vec::new();
        if !acquire.is_empty() {
            let client = self.client()?;
            // A row locked by a write of its (paused) owner is skipped, not waited for: that
            // write ends when the owner's session does (`idle_in_transaction_session_timeout`
            // on every writer), and a later round takes the shard.
            let rows = client.query(
                "UPDATE shard_leases SET owner = $1, epoch = epoch + 1, expires_at = now() + make_interval(secs => $3)
                 WHERE shard IN (
                     SELECT shard FROM shard_leases
                     WHERE shard = ANY($2) AND (owner IS NULL OR owner = $1 OR expires_at < now())
                     FOR UPDATE SKIP LOCKED)
                 RETURNING shard, epoch",
                &[&me, &acquire, &ttl_s],
            )?;
            for row in rows {
                let (shard, epoch) = (row.get::<_, i32>(0) as u32, row.get::<_, i64>(1));
                self.epochs.insert(shard, epoch);
                held.insert(shard);
                acquired.push(ShardId(shard));
            }
            announce |= !acquired.is_empty();
        }
        let valid_until = sent + TTL - MARGIN;
        let now_held: HashMap<u32, Lease> =
            held.iter().map(|s| (*s, Lease { epoch: self.epochs[s], valid_until })).collect();
        let lost: Vec<ShardId> = before.keys().filter(|s| !now_held.contains_key(s)).map(|s| ShardId(*s)).collect();
        // A lease that lapsed here and was renewed (nobody took the shard): timers and offers
        // dropped while it was not served are taken up again.
        acquired.extend(lapsed.iter().filter(|s| now_held.contains_key(s)).map(|s| ShardId(*s)));
        self.epochs.retain(|s, _| held.contains(s));
        self.cluster.fence.set(now_held);
        let client = self.client()?;
        if announce {
            client.execute(&format!("NOTIFY {CHANNEL}"), &[])?;
        }
        let mut owners = vec![None; SHARD_COUNT as usize];
        for row in client.query(
            "SELECT l.shard, n.address, l.epoch FROM shard_leases l JOIN cluster_nodes n ON n.id = l.owner
             WHERE l.expires_at > now() AND n.heartbeat_at > now() - make_interval(secs => $1)",
            &[&ttl_s],
        )? {
            let shard = row.get::<_, i32>(0) as usize;
            if shard < owners.len() {
                owners[shard] = Some((row.get::<_, String>(1), row.get::<_, i64>(2)));
            }
        }
        let moved = self.cluster.set_view(owners);
        if !lost.is_empty() {
            tracing::info!(shards = lost.len(), "shards lost");
            let _ = self.changes.send(Change::Lost(lost));
        }
        if !acquired.is_empty() {
            tracing::info!(shards = acquired.len(), held = held.len(), "shards acquired");
            let _ = self.changes.send(Change::Acquired(acquired));
        }
        if !moved.is_empty() {
            let _ = self.changes.send(Change::Moved(moved));
        }
        Ok(())
    }

    /// Leaving: nothing is served from here on, every lease is released and the node
    /// forgotten, and the others are told so they take over at once.
    fn release_all(&mut self) -> Result<(), postgres::Error> {
        self.cluster.fence.set(HashMap::new());
        let me = self.cluster.node().to_string();
        let client = self.client()?;
        let mut tx = client.transaction()?;
        tx.execute("UPDATE shard_leases SET owner = NULL, expires_at = now() WHERE owner = $1", &[&me])?;
        tx.execute("DELETE FROM cluster_nodes WHERE id = $1", &[&me])?;
        tx.execute(&format!("NOTIFY {CHANNEL}"), &[])?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_shards_and_moves_only_a_leavers_share() {
        let three: Vec<String> = ["a:1", "b:2", "c:3"].map(String::from).to_vec();
        let mut counts = HashMap::new();
        for s in 0..SHARD_COUNT {
            *counts.entry(chosen(s, &three).unwrap().clone()).or_insert(0) += 1;
        }
        for node in &three {
            let n = counts[node];
            assert!((50..=120).contains(&n), "{node} got {n} shards");
        }
        let two = &three[..2];
        for s in 0..SHARD_COUNT {
            let before = chosen(s, &three).unwrap();
            if before != "c:3" {
                assert_eq!(chosen(s, two), Some(before), "shard {s} moved though its node stayed");
            }
        }
    }
}
