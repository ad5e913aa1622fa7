//! The Nexus endpoint registry: id → endpoint, every endpoint in memory, each committed (a
//! `nexus_endpoint` record) before it is visible. The OperatorService (`frontend/nexus.rs`)
//! changes it; the history service reads it to route an operation's tasks to the endpoint's
//! target (namespace and task queue).

use std::collections::BTreeMap;
use std::sync::Mutex;

use temporalio_protos::temporal::api::nexus::v1::{endpoint_target, Endpoint};

use crate::store::{Record, RecordKind};

/// Where an endpoint sends its operations: a worker's namespace and task queue.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerTarget {
    pub namespace: String,
    pub task_queue: String,
}

/// The registry, ordered by id (List's order, as in Temporal).
#[derive(Default)]
pub struct Endpoints {
    pub(crate) by_id: Mutex<BTreeMap<String, Endpoint>>,
    /// Serialises changes, so a name check and the commit that takes the name are one step.
    pub(crate) write: tokio::sync::Mutex<()>,
}

impl Endpoints {
    /// Takes the endpoints the store holds (at start, and on a cluster whenever a node changed
    /// them), replacing what was known.
    pub fn load(&self, records: &[Record]) {
        let loaded = records.iter().filter(|r| r.kind == RecordKind::NexusEndpoint).filter_map(|r| {
            match serde_json::from_str::<Endpoint>(&r.data) {
                Ok(endpoint) => Some((r.id.clone(), endpoint)),
                Err(e) => {
                    tracing::error!(id = %r.id, error = %e, "unreadable Nexus endpoint record skipped");
                    None
                }
            }
        });
        *self.by_id.lock().expect("endpoints lock") = loaded.collect();
    }

    pub fn get(&self, id: &str) -> Option<Endpoint> {
        self.by_id.lock().expect("endpoints lock").get(id).cloned()
    }

    pub fn id_of_name(&self, name: &str) -> Option<String> {
        let by_id = self.by_id.lock().expect("endpoints lock");
        by_id.values().find(|e| e.spec.as_ref().is_some_and(|s| s.name == name)).map(|e| e.id.clone())
    }

    /// The worker target of an endpoint; `None` if it is gone or targets an external URL
    /// (which tempora does not call).
    pub fn worker_target(&self, id: &str) -> Option<WorkerTarget> {
        let endpoint = self.get(id)?;
        match endpoint.spec?.target?.variant? {
            endpoint_target::Variant::Worker(w) => {
                Some(WorkerTarget { namespace: w.namespace, task_queue: w.task_queue })
            }
            endpoint_target::Variant::External(_) => None,
        }
    }
}
