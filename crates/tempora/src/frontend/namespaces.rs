//! Cluster and namespace RPCs.

use temporalio_protos::temporal::api::workflowservice::v1::{self as ws, get_system_info_response};
use tonic::Request;

use super::convert::check_id;
use super::views::{self, CLUSTER_NAME};
use super::Frontend;
use crate::clock::proto;
use crate::error::{Error, Result};
use crate::store::NamespaceRecord;

const SERVER_VERSION: &str = "1.29.0";
/// The shortest retention an update may set (as the dev server allows).
const RETENTION_MIN_MS: i64 = 3600 * 1000;
const NAMESPACE_PAGE_SIZE_DEFAULT: usize = 100;
/// Temporal's default retention of a registered namespace.
const RETENTION_DEFAULT_MS: i64 = 72 * 3600 * 1000;

impl Frontend {
    pub async fn get_system_info(&self, _r: Request<ws::GetSystemInfoRequest>) -> Result<ws::GetSystemInfoResponse> {
        Ok(ws::GetSystemInfoResponse {
            server_version: SERVER_VERSION.to_string(),
            capabilities: Some(get_system_info_response::Capabilities {
                signal_and_query_header: true,
                internal_error_differentiation: false,
                activity_failure_include_heartbeat: true,
                supports_schedules: false,
                encoded_failure_attributes: true,
                build_id_based_versioning: false,
                upsert_memo: true,
                eager_workflow_start: true,
                sdk_metadata: true,
                count_group_by_execution_status: true,
                nexus: false,
                server_scaled_deployments: false,
                server_scaled_provider_cloud_run: false,
            }),
        })
    }

    pub async fn get_cluster_info(&self, _r: Request<ws::GetClusterInfoRequest>) -> Result<ws::GetClusterInfoResponse> {
        Ok(ws::GetClusterInfoResponse {
            server_version: SERVER_VERSION.to_string(),
            cluster_id: "tempora".to_string(),
            cluster_name: CLUSTER_NAME.to_string(),
            history_shard_count: crate::shard::SHARD_COUNT as i32,
            persistence_store: "tempora".to_string(),
            visibility_store: "tempora".to_string(),
            initial_failover_version: 1,
            failover_version_increment: 10,
            ..Default::default()
        })
    }

    pub async fn describe_namespace(
        &self,
        r: Request<ws::DescribeNamespaceRequest>,
    ) -> Result<ws::DescribeNamespaceResponse> {
        let r = r.into_inner();
        let ns = match (r.namespace.is_empty(), r.id.is_empty()) {
            (false, _) => self.svc.namespaces.get(&r.namespace)?,
            (true, false) => self.svc.namespaces.by_id(&r.id)?,
            (true, true) => return Err(Error::invalid("Namespace not set on request.")),
        };
        Ok(views::namespace(&ns, self.svc.limits()))
    }

    /// Namespaces by name, in pages; the token is the last name of the previous page.
    pub async fn list_namespaces(&self, r: Request<ws::ListNamespacesRequest>) -> Result<ws::ListNamespacesResponse> {
        let r = r.into_inner();
        let page_size = if r.page_size <= 0 { NAMESPACE_PAGE_SIZE_DEFAULT } else { r.page_size as usize };
        let after = String::from_utf8(r.next_page_token).map_err(|_| Error::invalid("invalid next page token"))?;
        let include_deleted = r.namespace_filter.is_some_and(|f| f.include_deleted);
        let all = if include_deleted { self.svc.namespaces.all_with_deleted() } else { self.svc.namespaces.all() };
        let page: Vec<_> = all.into_iter().filter(|n| after.is_empty() || n.name > after).take(page_size).collect();
        let next_page_token = if page.len() == page_size {
            page.last().map(|n| n.name.clone().into_bytes()).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(ws::ListNamespacesResponse {
            namespaces: page.iter().map(|n| views::namespace(n, self.svc.limits())).collect(),
            next_page_token,
        })
    }

    /// OperatorService `DeleteNamespace`: the namespace disappears at once (renamed, as in
    /// Temporal, in what ListNamespaces shows of it with `include_deleted`); its runs are
    /// terminated and removed in the background (`history::retention`), then its record.
    pub async fn delete_namespace(
        &self,
        r: Request<temporalio_protos::temporal::api::operatorservice::v1::DeleteNamespaceRequest>,
    ) -> Result<temporalio_protos::temporal::api::operatorservice::v1::DeleteNamespaceResponse> {
        let r = r.into_inner();
        let name = match (r.namespace.is_empty(), r.namespace_id.is_empty()) {
            (false, _) => r.namespace,
            (true, false) => self.svc.namespaces.by_id(&r.namespace_id)?.name,
            (true, true) => return Err(Error::invalid("Namespace not set on request.")),
        };
        let record = self
            .svc
            .namespaces
            .update(&name, |record| {
                record.deleted = true;
                Ok(record.clone())
            })
            .await?;
        Ok(temporalio_protos::temporal::api::operatorservice::v1::DeleteNamespaceResponse {
            deleted_namespace: record.deleted_name(),
        })
    }

    /// OperatorService `ListClusters`: this one.
    pub async fn list_clusters(
        &self,
        _r: Request<temporalio_protos::temporal::api::operatorservice::v1::ListClustersRequest>,
    ) -> Result<temporalio_protos::temporal::api::operatorservice::v1::ListClustersResponse> {
        use temporalio_protos::temporal::api::operatorservice::v1 as ops;
        Ok(ops::ListClustersResponse {
            clusters: vec![ops::ClusterMetadata {
                cluster_name: CLUSTER_NAME.to_string(),
                cluster_id: "tempora".to_string(),
                initial_failover_version: 1,
                history_shard_count: crate::shard::SHARD_COUNT as i32,
                is_connection_enabled: true,
                ..Default::default()
            }],
            next_page_token: Vec::new(),
        })
    }

    /// Changes a namespace's description, owner, data (merged) and retention, as Temporal does
    /// for a local namespace; global-namespace changes are refused.
    pub async fn update_namespace(
        &self,
        r: Request<ws::UpdateNamespaceRequest>,
    ) -> Result<ws::UpdateNamespaceResponse> {
        let r = r.into_inner();
        if r.namespace.is_empty() {
            return Err(Error::invalid("Namespace not set on request."));
        }
        if r.promote_namespace {
            return Err(Error::invalid(format!(
                "global namespace is not enabled on this cluster, cannot update global namespace or promote local namespace: {}",
                r.namespace
            )));
        }
        if let Some(replication) = &r.replication_config {
            let named = std::iter::once(replication.active_cluster_name.as_str())
                .chain(replication.clusters.iter().map(|c| c.cluster_name.as_str()));
            if let Some(bad) = named.filter(|n| !n.is_empty()).find(|n| *n != CLUSTER_NAME) {
                return Err(Error::invalid(format!("Invalid cluster name: {bad}")));
            }
        }
        let retention_ms = match r.config.as_ref().and_then(|c| c.workflow_execution_retention_ttl.as_ref()) {
            None => None,
            Some(ttl) => match proto::duration_ms(Some(ttl)) {
                0 => None,
                ms if ms < RETENTION_MIN_MS => {
                    return Err(Error::invalid("A valid retention period is not set on request."))
                }
                ms => Some(ms),
            },
        };
        let record = self
            .svc
            .namespaces
            .update(&r.namespace, |record| {
                if let Some(info) = &r.update_info {
                    if !info.description.is_empty() {
                        record.description = info.description.clone();
                    }
                    if !info.owner_email.is_empty() {
                        record.owner_email = info.owner_email.clone();
                    }
                    record.data.extend(info.data.clone());
                }
                if let Some(ms) = retention_ms {
                    record.retention_ms = ms;
                }
                Ok(record.clone())
            })
            .await?;
        let described = views::namespace(&record, self.svc.limits());
        Ok(ws::UpdateNamespaceResponse {
            namespace_info: described.namespace_info,
            config: described.config,
            replication_config: described.replication_config,
            failover_version: described.failover_version,
            is_global_namespace: false,
        })
    }

    pub async fn register_namespace(
        &self,
        r: Request<ws::RegisterNamespaceRequest>,
    ) -> Result<ws::RegisterNamespaceResponse> {
        let r = r.into_inner();
        check_id(&r.namespace, "Namespace")?;
        let retention_ms = match proto::duration_ms(r.workflow_execution_retention_period.as_ref()) {
            0 => RETENTION_DEFAULT_MS,
            ms if ms < 0 => return Err(Error::invalid("Invalid WorkflowExecutionRetentionPeriod.")),
            ms => ms,
        };
        let record = NamespaceRecord {
            name: r.namespace,
            id: uuid::Uuid::new_v4().to_string(),
            description: r.description,
            owner_email: r.owner_email,
            retention_ms,
            search_attributes: Default::default(),
            data: r.data.into_iter().collect(),
            deleted: false,
        };
        self.svc.namespaces.register(record).await?;
        Ok(ws::RegisterNamespaceResponse {})
    }
}
