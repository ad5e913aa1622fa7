//! The namespaces this server knows: all of them in memory (loaded at start), each created
//! through the store before it becomes visible.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::error::{Error, Result};
use crate::store::{self, NamespaceRecord, Write};

pub(crate) struct Namespaces {
    by_name: RwLock<HashMap<String, NamespaceRecord>>,
    /// Serialises registrations, so two of the same name cannot both commit.
    registering: tokio::sync::Mutex<()>,
    store: store::Handle,
}

impl Namespaces {
    pub(crate) fn new(store: store::Handle, records: Vec<NamespaceRecord>) -> Self {
        let by_name = records.into_iter().map(|n| (n.name.clone(), n)).collect();
        Namespaces { by_name: RwLock::new(by_name), registering: Default::default(), store }
    }

    /// The namespace a request names; INVALID_ARGUMENT if it names none.
    pub(crate) fn get(&self, name: &str) -> Result<NamespaceRecord> {
        if name.is_empty() {
            return Err(Error::invalid("Namespace not set on request."));
        }
        let by_name = self.by_name.read().expect("namespaces lock");
        by_name.get(name).cloned().ok_or_else(|| Error::NamespaceNotFound(name.to_string()))
    }

    pub(crate) fn by_id(&self, id: &str) -> Result<NamespaceRecord> {
        let by_name = self.by_name.read().expect("namespaces lock");
        by_name.values().find(|n| n.id == id).cloned().ok_or_else(|| Error::NamespaceNotFound(id.to_string()))
    }

    /// Every namespace, by name.
    pub(crate) fn all(&self) -> Vec<NamespaceRecord> {
        let mut all: Vec<_> = self.by_name.read().expect("namespaces lock").values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub(crate) async fn register(&self, record: NamespaceRecord) -> Result<()> {
        let _registering = self.registering.lock().await;
        if self.get(&record.name).is_ok() {
            return Err(Error::NamespaceAlreadyExists(record.name));
        }
        self.store.commit(vec![Write::Namespace(record.clone())]).await?;
        self.by_name.write().expect("namespaces lock").insert(record.name.clone(), record);
        Ok(())
    }
}
