//! Retention: a closed run (history, state, visibility row) is deleted once its namespace's
//! retention period has passed since it closed. A background sweep finds them through
//! visibility (`CloseTime < now - retention`, in run id order) and deletes them in bounded
//! batches, one small transaction per run, pausing between batches so live traffic keeps the
//! store; it runs every tenth of the shortest retention (between 1 s and 1 min).
//!
//! The sweep also empties deleted namespaces: their runs are terminated and removed, then the
//! namespace's record.

use std::sync::Arc;
use std::time::Duration;

use super::Service;
use crate::engine::state::RunKey;
use crate::error::Result;
use crate::visibility::attributes::Registry;
use crate::visibility::{query, ListRequest};

/// Runs deleted per batch.
const BATCH: usize = 200;
/// Pause between batches, so a large backlog of expired runs does not crowd out live work.
const PAUSE: Duration = Duration::from_millis(20);
const SWEEP_MIN: Duration = Duration::from_secs(1);
const SWEEP_MAX: Duration = Duration::from_secs(60);

impl Service {
    /// Starts the sweep (a tracked task that ends at shutdown).
    pub(crate) fn start_retention(self: &Arc<Self>) {
        let svc = self.clone();
        let mut shutdown = self.runtime.shutdown_signal();
        self.runtime.spawn(async move {
            // The interval is looked at every tick: a namespace registered or updated with a
            // short retention shortens it.
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SWEEP_MIN) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                if last.elapsed() < svc.sweep_interval() {
                    continue;
                }
                last = tokio::time::Instant::now();
                // On a cluster one node sweeps: the holder of the registries.
                if !svc.holds_registry() {
                    continue;
                }
                if let Err(e) = svc.sweep().await {
                    tracing::warn!(error = %e, "retention sweep failed; will retry");
                }
            }
        });
    }

    fn sweep_interval(&self) -> Duration {
        if self.namespaces.all_with_deleted().iter().any(|n| n.deleted) {
            return SWEEP_MIN;
        }
        let shortest = self.namespaces.all().iter().map(|n| n.retention_ms).filter(|ms| *ms > 0).min();
        let tenth = Duration::from_millis(shortest.map_or(u64::MAX, |ms| ms as u64 / 10));
        tenth.clamp(SWEEP_MIN, SWEEP_MAX)
    }

    /// Deletes every run whose retention has passed; the number deleted.
    pub(crate) async fn sweep(self: &Arc<Self>) -> Result<usize> {
        let mut deleted = 0;
        for ns in self.namespaces.all_with_deleted().into_iter().filter(|n| n.deleted) {
            deleted += self.remove_namespace(&ns.name).await?;
        }
        for ns in self.namespaces.all() {
            if ns.retention_ms <= 0 {
                continue;
            }
            let before_ns = (self.clock.now_ms() - ns.retention_ms).saturating_mul(1_000_000);
            let custom = self.namespaces.custom_types(&ns.name);
            let parsed = query::parse(&format!("CloseTime < {before_ns}"), &Registry { custom: &custom })
                .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
            loop {
                let request = ListRequest {
                    namespace: ns.name.clone(),
                    filter: parsed.filter.clone(),
                    hide_divisions: false,
                    page_size: BATCH,
                    after: None,
                    by_run_id: true,
                };
                let rows = self.store.list_executions(request).await?;
                for (_, info) in &rows {
                    self.remove_closed(&listed_run(&ns.name, info)).await?;
                    deleted += 1;
                }
                if rows.len() < BATCH {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "retention deleted closed runs");
        }
        Ok(deleted)
    }

    /// Removes the runs of a deleted namespace (terminating open ones), a batch at a time, then
    /// its record; the number of runs removed.
    async fn remove_namespace(self: &Arc<Self>, namespace: &str) -> Result<usize> {
        let mut removed = 0;
        loop {
            let request = ListRequest {
                namespace: namespace.to_string(),
                filter: None,
                hide_divisions: false,
                page_size: BATCH,
                after: None,
                by_run_id: true,
            };
            let rows = self.store.list_executions(request).await?;
            if rows.is_empty() {
                self.namespaces.remove(namespace).await?;
                tracing::info!(namespace, removed, "deleted namespace removed");
                return Ok(removed);
            }
            for (_, info) in &rows {
                self.delete_run(&listed_run(namespace, info)).await?;
                removed += 1;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}

/// The run a listed row (its `WorkflowExecutionInfo` bytes) names.
fn listed_run(namespace: &str, info: &[u8]) -> RunKey {
    let info: temporalio_protos::temporal::api::workflow::v1::WorkflowExecutionInfo =
        prost::Message::decode(info).unwrap_or_default();
    let execution = info.execution.unwrap_or_default();
    RunKey::new(namespace.to_string(), execution.workflow_id, execution.run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_query_parses() {
        let custom = Default::default();
        let parsed = query::parse("CloseTime < 1733000000000000000", &Registry { custom: &custom });
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.0));
    }
}
