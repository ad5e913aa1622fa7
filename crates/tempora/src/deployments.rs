//! Worker deployments (Temporal's worker versioning): which versions of a deployment poll
//! which task queues, and each deployment's routing — its current version and a ramping
//! version with a percentage. Every deployment is in memory and committed as a record
//! (`worker_deployment`, scope the namespace) before a change is seen.
//!
//! Routing: a versioned worker polls its version's own queue (`versioned_queue`); a run's task
//! goes to the version it is pinned to (by its behavior or an override), else to the current
//! version of the deployment its task queue belongs to — or the ramping one, for the share of
//! workflow ids the percentage names — else to unversioned workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::engine::state::{DeploymentVersion, RunKey};
use crate::matching::TaskKind;
use crate::store::{Record, RecordKind};

/// One version of a deployment, as its workers announced it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub create_time_ms: Millis,
    /// Task queues its workers polled, with the task queue type (`TaskQueueType` number).
    pub task_queues: BTreeSet<(String, i32)>,
    /// When it last became current or ramping, and when it stopped being either (0: never).
    pub current_since_ms: Millis,
    pub ramping_since_ms: Millis,
    pub routing_changed_ms: Millis,
    pub first_activation_ms: Millis,
    pub last_deactivation_ms: Millis,
    /// `VersionMetadata` entries, as encoded `Payload`s.
    #[serde(default)]
    pub metadata: BTreeMap<String, Vec<u8>>,
}

/// A worker deployment and its routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    pub create_time_ms: Millis,
    /// The current version's build id; `None`: unversioned workers get new tasks.
    pub current: Option<String>,
    pub current_changed_ms: Millis,
    /// The ramping version's build id (`Some("")`: ramping to unversioned workers).
    pub ramping: Option<String>,
    pub ramp_percent: f32,
    pub ramping_changed_ms: Millis,
    /// Bumped on every change of its routing (current or ramping version, ramp percentage);
    /// the conflict token is this number, so a worker's registration does not invalidate a
    /// token read before it (as in Temporal).
    pub revision: i64,
    pub last_modifier: String,
    /// If set, only a client of this identity may change the deployment.
    #[serde(default)]
    pub manager_identity: String,
    pub versions: BTreeMap<String, Version>,
}

impl Deployment {
    pub fn conflict_token(&self) -> Vec<u8> {
        self.revision.to_be_bytes().to_vec()
    }

    pub fn version(&self, build_id: &str) -> DeploymentVersion {
        DeploymentVersion { deployment_name: self.name.clone(), build_id: build_id.to_string() }
    }

    pub fn record(&self, namespace: &str) -> Record {
        Record {
            kind: RecordKind::WorkerDeployment,
            scope: namespace.to_string(),
            id: self.name.clone(),
            data: serde_json::to_string(self).expect("a deployment serialises"),
        }
    }
}

/// The matching queue a task goes to, and the version it is for (`None`: unversioned).
#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    pub name: String,
    pub version: Option<DeploymentVersion>,
}

/// The matching queue of one version's workers on a task queue. Unversioned workers poll the
/// task queue's own name; the separator cannot start a deployment name.
pub fn versioned_queue(task_queue: &str, version: Option<&DeploymentVersion>) -> String {
    match version {
        None => task_queue.to_string(),
        Some(v) => format!("{task_queue}\u{0}{}\u{0}{}", v.deployment_name, v.build_id),
    }
}

fn queue_type(kind: TaskKind) -> i32 {
    use temporalio_protos::temporal::api::enums::v1::TaskQueueType;
    match kind {
        TaskKind::Workflow => TaskQueueType::Workflow as i32,
        TaskKind::Activity => TaskQueueType::Activity as i32,
        TaskKind::Nexus => TaskQueueType::Nexus as i32,
    }
}

/// Which of 100 buckets a workflow id falls in, for ramping (stable across processes).
fn ramp_bucket(workflow_id: &str) -> f32 {
    let hash =
        workflow_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % 10_000) as f32 / 100.0
}

/// The registry: (namespace, deployment name) → deployment.
#[derive(Default)]
pub struct Deployments {
    pub(crate) by_name: Mutex<BTreeMap<(String, String), Deployment>>,
    /// Serialises changes, so a check and the commit that follows are one step.
    pub(crate) write: tokio::sync::Mutex<()>,
}

impl Deployments {
    /// Takes the deployments the store holds (at start, and on a cluster whenever a node
    /// changed them), replacing what was known.
    pub fn load(&self, records: &[Record]) {
        let loaded =
            records.iter().filter(|r| r.kind == RecordKind::WorkerDeployment).filter_map(
                |r| match serde_json::from_str::<Deployment>(&r.data) {
                    Ok(d) => Some(((r.scope.clone(), d.name.clone()), d)),
                    Err(e) => {
                        tracing::error!(id = %r.id, error = %e, "unreadable worker deployment record skipped");
                        None
                    }
                },
            );
        *self.by_name.lock().expect("deployments lock") = loaded.collect();
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Deployment> {
        self.by_name.lock().expect("deployments lock").get(&(namespace.to_string(), name.to_string())).cloned()
    }

    pub fn list(&self, namespace: &str) -> Vec<Deployment> {
        let by_name = self.by_name.lock().expect("deployments lock");
        by_name.iter().filter(|((ns, _), _)| ns == namespace).map(|(_, d)| d.clone()).collect()
    }

    /// Installs a committed deployment (or removes it, `None`).
    pub fn set(&self, namespace: &str, name: &str, deployment: Option<Deployment>) {
        let mut by_name = self.by_name.lock().expect("deployments lock");
        let key = (namespace.to_string(), name.to_string());
        match deployment {
            Some(d) => by_name.insert(key, d),
            None => by_name.remove(&key),
        };
    }

    /// A versioned worker polled `task_queue`: the deployment with this version and queue
    /// recorded, if that is new (the caller commits it, then `set`s it).
    pub fn seen(
        &self,
        namespace: &str,
        version: &DeploymentVersion,
        task_queue: &str,
        kind: TaskKind,
        now_ms: Millis,
    ) -> Option<Deployment> {
        let entry = (task_queue.to_string(), queue_type(kind));
        let known = self.get(namespace, &version.deployment_name);
        if known
            .as_ref()
            .and_then(|d| d.versions.get(&version.build_id))
            .is_some_and(|v| v.task_queues.contains(&entry))
        {
            return None;
        }
        let mut d = known.unwrap_or_else(|| Deployment {
            name: version.deployment_name.clone(),
            create_time_ms: now_ms,
            ..Default::default()
        });
        let v = d
            .versions
            .entry(version.build_id.clone())
            .or_insert_with(|| Version { create_time_ms: now_ms, ..Default::default() });
        v.task_queues.insert(entry);
        Some(d)
    }

    /// Where a task of `run` on `task_queue` goes.
    pub fn route(&self, run: &RunKey, task_queue: &str, kind: TaskKind, pinned: Option<&DeploymentVersion>) -> Queue {
        let version = match pinned {
            Some(v) => Some(v.clone()),
            None => self.routed_version(&run.namespace, task_queue, kind, &run.workflow_id),
        };
        Queue { name: versioned_queue(task_queue, version.as_ref()), version }
    }

    /// The version a task queue's deployment routes an unpinned task to.
    fn routed_version(
        &self,
        namespace: &str,
        task_queue: &str,
        kind: TaskKind,
        workflow_id: &str,
    ) -> Option<DeploymentVersion> {
        let entry = (task_queue.to_string(), queue_type(kind));
        let by_name = self.by_name.lock().expect("deployments lock");
        let d = by_name
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, d)| d)
            .find(|d| d.versions.values().any(|v| v.task_queues.contains(&entry)))?;
        let build = match &d.ramping {
            Some(ramping) if ramp_bucket(workflow_id) < d.ramp_percent => Some(ramping.as_str()),
            _ => d.current.as_deref(),
        };
        build.filter(|b| !b.is_empty()).map(|b| d.version(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_follow_the_current_version_unless_pinned_and_ramping_takes_its_share() {
        let registry = Deployments::default();
        let (v1, v2) = (
            DeploymentVersion { deployment_name: "d".into(), build_id: "1".into() },
            DeploymentVersion { deployment_name: "d".into(), build_id: "2".into() },
        );
        let run = |id: &str| RunKey::new("ns", id, "r");
        // No deployment has the queue: unversioned.
        assert_eq!(registry.route(&run("w"), "q", TaskKind::Workflow, None).name, "q");
        for v in [&v1, &v2] {
            let d = registry.seen("ns", v, "q", TaskKind::Workflow, 1).expect("new");
            registry.set("ns", "d", Some(d));
        }
        assert!(registry.seen("ns", &v1, "q", TaskKind::Workflow, 2).is_none(), "known already");
        // No current version: still unversioned.
        assert_eq!(registry.route(&run("w"), "q", TaskKind::Workflow, None).version, None);
        let mut d = registry.get("ns", "d").unwrap();
        d.current = Some("1".into());
        registry.set("ns", "d", Some(d.clone()));
        assert_eq!(registry.route(&run("w"), "q", TaskKind::Workflow, None).version, Some(v1.clone()));
        assert_eq!(registry.route(&run("w"), "q", TaskKind::Workflow, Some(&v2)).version, Some(v2.clone()));
        assert_eq!(registry.route(&run("w"), "other", TaskKind::Workflow, None).version, None);
        // A 100% ramp takes every workflow id, a 30% ramp about 30 of 100.
        d.ramping = Some("2".into());
        d.ramp_percent = 100.0;
        registry.set("ns", "d", Some(d.clone()));
        assert_eq!(registry.route(&run("w"), "q", TaskKind::Workflow, None).version, Some(v2.clone()));
        d.ramp_percent = 30.0;
        registry.set("ns", "d", Some(d));
        let ramped = (0..1000)
            .filter(|i| {
                registry.route(&run(&format!("w{i}")), "q", TaskKind::Workflow, None).version == Some(v2.clone())
            })
            .count();
        assert!((200..400).contains(&ramped), "{ramped} of 1000 ramped");
    }
}
