//! The namespaces this server knows: all of them in memory (loaded at start), each created
//! through the store before it becomes visible.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::store::{self, NamespaceRecord, Write};
use crate::visibility::attributes::CustomTypes;
use crate::visibility::query::ValueType;

pub(crate) struct Namespaces {
    by_name: RwLock<HashMap<String, NamespaceRecord>>,
    /// Each namespace's custom search attributes, typed (derived from its record).
    types: RwLock<HashMap<String, Arc<CustomTypes>>>,
    /// Serialises registrations, so two of the same name cannot both commit.
    registering: tokio::sync::Mutex<()>,
    store: store::Handle,
}

impl Namespaces {
    pub(crate) fn new(store: store::Handle, records: Vec<NamespaceRecord>) -> Self {
        let types = records.iter().map(|n| (n.name.clone(), Arc::new(custom_types(n)))).collect();
        let by_name = records.into_iter().map(|n| (n.name.clone(), n)).collect();
        Namespaces { by_name: RwLock::new(by_name), types: RwLock::new(types), registering: Default::default(), store }
    }

    /// The custom search attributes of a namespace (none if it does not exist).
    pub(crate) fn custom_types(&self, name: &str) -> Arc<CustomTypes> {
        self.types.read().expect("namespaces lock").get(name).cloned().unwrap_or_default()
    }

    /// Changes a namespace: `change` edits a copy of its record, which is committed, then
    /// installed. Changes are serialised, so none is lost to a concurrent one.
    pub(crate) async fn update<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut NamespaceRecord) -> Result<T>,
    ) -> Result<T> {
        let _registering = self.registering.lock().await;
        let mut record = self.get(name)?;
        let answer = change(&mut record)?;
        self.store.commit(vec![Write::Namespace(record.clone())]).await?;
        self.install(record);
        Ok(answer)
    }

    /// Replaces what is known with the store's records (another cluster node changed them).
    pub(crate) fn reload(&self, records: Vec<NamespaceRecord>) {
        let types = records.iter().map(|n| (n.name.clone(), Arc::new(custom_types(n)))).collect();
        let by_name = records.into_iter().map(|n| (n.name.clone(), n)).collect();
        *self.types.write().expect("namespaces lock") = types;
        *self.by_name.write().expect("namespaces lock") = by_name;
    }

    fn install(&self, record: NamespaceRecord) {
        let types = Arc::new(custom_types(&record));
        self.types.write().expect("namespaces lock").insert(record.name.clone(), types);
        self.by_name.write().expect("namespaces lock").insert(record.name.clone(), record);
    }

    /// Whether a namespace of that name exists (and is not deleted).
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.by_name.read().expect("namespaces lock").get(name).is_some_and(|n| !n.deleted)
    }

    /// The namespace a request names; INVALID_ARGUMENT if it names none.
    pub(crate) fn get(&self, name: &str) -> Result<NamespaceRecord> {
        if name.is_empty() {
            return Err(Error::invalid("Namespace not set on request."));
        }
        let by_name = self.by_name.read().expect("namespaces lock");
        by_name.get(name).filter(|n| !n.deleted).cloned().ok_or_else(|| Error::NamespaceNotFound(name.to_string()))
    }

    pub(crate) fn by_id(&self, id: &str) -> Result<NamespaceRecord> {
        let by_name = self.by_name.read().expect("namespaces lock");
        by_name
            .values()
            .find(|n| n.id == id && !n.deleted)
            .cloned()
            .ok_or_else(|| Error::NamespaceNotFound(id.to_string()))
    }

    /// Every namespace not deleted, by name.
    pub(crate) fn all(&self) -> Vec<NamespaceRecord> {
        self.all_with_deleted().into_iter().filter(|n| !n.deleted).collect()
    }

    /// Every namespace, deleted ones (whose runs are being removed) included, by name.
    pub(crate) fn all_with_deleted(&self) -> Vec<NamespaceRecord> {
        let mut all: Vec<_> = self.by_name.read().expect("namespaces lock").values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Forgets a deleted namespace whose runs are all gone.
    pub(crate) async fn remove(&self, name: &str) -> Result<()> {
        let _registering = self.registering.lock().await;
        self.store.commit(vec![Write::DeleteNamespace { name: name.to_string() }]).await?;
        self.by_name.write().expect("namespaces lock").remove(name);
        self.types.write().expect("namespaces lock").remove(name);
        Ok(())
    }

    pub(crate) async fn register(&self, record: NamespaceRecord) -> Result<()> {
        let _registering = self.registering.lock().await;
        // A deleted namespace keeps its name until its runs are removed (they are stored under it).
        if self.by_name.read().expect("namespaces lock").contains_key(&record.name) {
            return Err(Error::NamespaceAlreadyExists(record.name));
        }
        self.store.commit(vec![Write::Namespace(record.clone())]).await?;
        self.install(record);
        Ok(())
    }
}

fn custom_types(record: &NamespaceRecord) -> CustomTypes {
    record.search_attributes.iter().filter_map(|(name, n)| ValueType::from_i32(*n).map(|t| (name.clone(), t))).collect()
}
