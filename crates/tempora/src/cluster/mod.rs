//! The cluster (`--cluster`): several nodes on one PostgreSQL database, each serving the run
//! shards it leases (`leases`), calling the others for what they own (`rpc`).
//!
//! What a node knows, and how fresh it is:
//! - `Fence`: the shards this node holds, each with its epoch and the monotonic instant its
//!   lease may have lapsed by (renewal sent + TTL − margin). The store checks the epoch in
//!   every transaction that writes one of the shard's runs (`store::postgres`), so a node that
//!   lost a lease — even one paused past its TTL — can never commit to the shard's runs.
//! - `View`: who owns each shard (by advertised address), refreshed each lease round, used to
//!   route calls. A stale view only costs a hop: the receiver refuses what it does not hold
//!   with UNAVAILABLE, which callers retry.
//!
//! Task queues have a home too: the owner of the queue's shard (`ShardId::of_queue`) keeps
//! its matching (as Temporal's matching service partitions queues); a run's owner offers its
//! tasks there, and the home asks the run's owner to start one for a poller.
//!
//! Not here: the work of a shard (the history service takes it up and lets it go on
//! `Change` events), and anything on SQLite (a single node holds every shard implicitly).

pub(crate) mod leases;
pub(crate) mod rpc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::shard::{ShardId, SHARD_COUNT};

/// A lease a node holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lease {
    pub epoch: i64,
    /// Past this instant the lease may have lapsed: the node serves the shard no more until a
    /// renewal succeeds.
    pub valid_until: Instant,
}

/// The shards this node holds, shared by the lease loop (writes) and everything that writes
/// or serves a shard's runs (reads).
pub struct Fence {
    pub(crate) node: String,
    held: RwLock<HashMap<u32, Lease>>,
}

impl Fence {
    pub(crate) fn new(node: String) -> Self {
        Fence { node, held: Default::default() }
    }

    /// The shard's epoch if this node holds it and the lease cannot have lapsed.
    pub(crate) fn epoch(&self, shard: ShardId) -> Option<i64> {
        let held = self.held.read().expect("fence lock");
        held.get(&shard.0).filter(|l| Instant::now() < l.valid_until).map(|l| l.epoch)
    }

    pub(crate) fn holds(&self, shard: ShardId) -> bool {
        self.epoch(shard).is_some()
    }

    pub(crate) fn held(&self) -> HashMap<u32, Lease> {
        self.held.read().expect("fence lock").clone()
    }

    pub(crate) fn set(&self, held: HashMap<u32, Lease>) {
        *self.held.write().expect("fence lock") = held;
    }
}

/// What the lease loop tells the history service (and the frontend, which keeps some
/// registries).
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// These shards are now held here: take up their work.
    Acquired(Vec<ShardId>),
    /// These shards are no longer held here: drop what is cached of them.
    Lost(Vec<ShardId>),
    /// The owner of these shards changed (tasks offered to queues homed there may be gone).
    Moved(Vec<ShardId>),
    /// Another node changed the namespaces.
    Namespaces,
    /// Records of these kinds changed (on any node, this one included).
    Records(Vec<crate::store::RecordKind>),
}

/// Where a shard's runs (or a task queue) are served.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Placement {
    Local,
    /// The owner's advertised address.
    Remote(String),
    /// No live owner (a failover in progress).
    Unknown(ShardId),
}

/// What a call for a shard with no live owner at the moment (`Placement::Unknown`) answers.
pub(crate) fn unserved(shard: crate::shard::ShardId) -> crate::error::Error {
    crate::error::Error::Unavailable(format!(
        "shard {shard} has no live owner at the moment (a failover is in progress); retry"
    ))
}

/// Set on every call one node makes to another when the cluster has a secret: the node
/// service refuses calls without it, and the frontend trusts a forwarded call that has it
/// (the node that received it authenticated, authorized and counted it).
pub(crate) const NODE_SECRET: &str = "tempora-node-secret";

/// How this node calls the others.
#[derive(Clone, Default)]
pub struct NodeSecurity {
    /// The cluster's secret (`NODE_SECRET`), if it has one.
    pub(crate) secret: Option<tonic::metadata::AsciiMetadataValue>,
    /// TLS to the other nodes (when the nodes serve TLS).
    pub(crate) tls: Option<tonic::transport::ClientTlsConfig>,
}

/// A connection to another node, and what each call on it carries.
#[derive(Clone)]
pub(crate) struct Peer {
    pub channel: tonic::transport::Channel,
    secret: Option<tonic::metadata::AsciiMetadataValue>,
}

impl Peer {
    /// Adds this node's credential to a call's metadata.
    pub(crate) fn sign(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Some(secret) = &self.secret {
            metadata.insert(NODE_SECRET, secret.clone());
        }
    }
}

/// This node's side of the cluster.
pub struct Cluster {
    pub(crate) fence: Arc<Fence>,
    security: NodeSecurity,
    /// The owner address and epoch of each shard (`None`: no live owner), as of the last
    /// lease round.
    view: RwLock<Vec<Option<(String, i64)>>>,
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
    leases: Mutex<Option<leases::Loop>>,
}

impl Cluster {
    pub(crate) fn new(node: String, security: NodeSecurity) -> Arc<Cluster> {
        Arc::new(Cluster {
            fence: Arc::new(Fence::new(node)),
            security,
            view: RwLock::new(vec![None; SHARD_COUNT as usize]),
            channels: Default::default(),
            leases: Default::default(),
        })
    }

    /// This node's id (its advertised address).
    pub(crate) fn node(&self) -> &str {
        &self.fence.node
    }

    pub(crate) fn placement(&self, shard: ShardId) -> Placement {
        if self.fence.holds(shard) {
            return Placement::Local;
        }
        match &self.view.read().expect("view lock")[shard.0 as usize] {
            Some((address, _)) if address != self.node() => Placement::Remote(address.clone()),
            _ => Placement::Unknown(shard),
        }
    }

    /// Whether the node at `address` owns any shard (it is alive and a member).
    pub(crate) fn is_peer(&self, address: &str) -> bool {
        self.view.read().expect("view lock").iter().flatten().any(|(a, _)| a == address)
    }

    /// Every other node that owns a shard.
    pub(crate) fn peers(&self) -> Vec<String> {
        let view = self.view.read().expect("view lock");
        let mut peers: Vec<String> =
            view.iter().flatten().map(|(a, _)| a).filter(|a| *a != self.node()).cloned().collect();
        peers.sort();
        peers.dedup();
        peers
    }

    /// Sets the owners seen in a lease round; returns the shards that had an owner and now
    /// have another (or the same one under a new epoch: it restarted), whose task queues'
    /// matching was lost with it. A shard that had none was announced when it lost it.
    pub(crate) fn set_view(&self, owners: Vec<Option<(String, i64)>>) -> Vec<ShardId> {
        let mut view = self.view.write().expect("view lock");
        let moved = (0..SHARD_COUNT)
            .filter(|s| view[*s as usize].is_some() && view[*s as usize] != owners[*s as usize])
            .map(ShardId)
            .collect();
        *view = owners;
        moved
    }

    /// Whether a call came from another node of this cluster: it carries the cluster's
    /// secret (compared in constant time). A cluster without a secret trusts no call this way.
    pub(crate) fn is_node_call(&self, metadata: &tonic::metadata::MetadataMap) -> bool {
        let (Some(secret), Some(given)) = (&self.security.secret, metadata.get(NODE_SECRET)) else { return false };
        let (secret, given) = (secret.as_bytes(), given.as_bytes());
        secret.len() == given.len() && secret.iter().zip(given).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }

    /// Whether this cluster's nodes present a secret to each other.
    pub(crate) fn has_secret(&self) -> bool {
        self.security.secret.is_some()
    }

    /// A connection to a node (connected lazily, reused), over TLS when the nodes serve it.
    pub(crate) fn channel(&self, address: &str) -> Result<Peer, crate::error::Error> {
        let peer = |channel| Peer { channel, secret: self.security.secret.clone() };
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(channel) = channels.get(address) {
            return Ok(peer(channel.clone()));
        }
        let scheme = if self.security.tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| crate::error::Error::Internal(format!("bad node address {address}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .tcp_nodelay(true)
            // A peer that stops answering (paused, cut off) is noticed on an open connection.
            .http2_keep_alive_interval(std::time::Duration::from_secs(2))
            .keep_alive_timeout(std::time::Duration::from_secs(4))
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.security.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| crate::error::Error::Internal(format!("TLS to node {address}: {e}")))?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(peer(channel))
    }

    pub(crate) fn set_leases(&self, leases: leases::Loop) {
        *self.leases.lock().expect("leases lock") = Some(leases);
    }

    /// Stops serving: every lease is released (and the others told), so they take over at
    /// once rather than after the lease's TTL.
    pub(crate) async fn leave(&self) {
        let leases = self.leases.lock().expect("leases lock").take();
        if let Some(leases) = leases {
            let _ = tokio::task::spawn_blocking(move || leases.stop()).await;
        }
    }
}
