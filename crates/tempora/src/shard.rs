//! Shards: the unit of ownership of workflow executions. Every run belongs to the shard of its
//! (namespace, workflow id) — all runs of a workflow id, and its current-run pointer, live in
//! one shard, so a start, a continue-as-new or a reset never spans two. One node owns every
//! shard today; a cluster will lease shards to nodes.

use std::fmt;

/// Shards per server. Fixed for the life of a database: changing it would move runs.
pub const SHARD_COUNT: u32 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u32);

impl ShardId {
    /// `hash(namespace, workflow_id) mod count`, with a hash that never changes between
    /// builds or platforms (64-bit FNV-1a), since shard ids will be stored.
    pub fn of(namespace: &str, workflow_id: &str, count: u32) -> ShardId {
        debug_assert!(count > 0);
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |byte: u8| {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        };
        namespace.bytes().for_each(&mut eat);
        // A separator no UTF-8 text contains, so ("ab", "c") and ("a", "bc") differ.
        eat(0xff);
        workflow_id.bytes().for_each(&mut eat);
        ShardId((hash % count as u64) as u32)
    }

    /// The shard whose holder keeps a cluster's registries (schedules, batch jobs, Nexus
    /// endpoints, worker deployments, task queue configs) and runs the cluster-wide sweeps.
    pub const REGISTRY: ShardId = ShardId(0);

    /// The shard a task queue is homed on (where its matching lives in a cluster): the
    /// queue's name hashed apart from workflow ids (a prefix no workflow id hash shares). A
    /// worker version's own queue (`deployments::versioned_queue`: the name, a NUL, the
    /// version) is homed with its task queue, where the version's polls are routed.
    pub fn of_queue(namespace: &str, task_queue: &str) -> ShardId {
        let task_queue = task_queue.split('\0').next().unwrap_or_default();
        ShardId::of(namespace, &format!("\u{0}queue\u{0}{task_queue}"), SHARD_COUNT)
    }

    /// The shard of a workflow id.
    pub fn of_workflow(namespace: &str, workflow_id: &str) -> ShardId {
        ShardId::of(namespace, workflow_id, SHARD_COUNT)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_a_workflow_id_never_changes() {
        // Pinned values: a change here would move stored runs to other shards.
        assert_eq!(ShardId::of("default", "order-1", SHARD_COUNT), ShardId::of("default", "order-1", SHARD_COUNT));
        assert_eq!(
            ShardId::of("", "", 1 << 31).0,
            (0xcbf2_9ce4_8422_2325u64 ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3) as u32 % (1 << 31)
        );
        assert_ne!(ShardId::of("ab", "c", 1 << 30), ShardId::of("a", "bc", 1 << 30));
    }

    #[test]
    fn workflow_ids_spread_over_all_shards() {
        let mut seen = vec![0u32; SHARD_COUNT as usize];
        for i in 0..SHARD_COUNT * 64 {
            seen[ShardId::of("default", &format!("wf-{i}"), SHARD_COUNT).0 as usize] += 1;
        }
        let (min, max) = (seen.iter().min().unwrap(), seen.iter().max().unwrap());
        assert!(*min > 20 && *max < 120, "uneven spread: {min}..{max}");
    }
}
