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
                upsert_memo: false,
                eager_workflow_start: true,
                sdk_metadata: true,
                count_group_by_execution_status: false,
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
        Ok(views::namespace(&ns))
    }

    pub async fn list_namespaces(&self, _r: Request<ws::ListNamespacesRequest>) -> Result<ws::ListNamespacesResponse> {
        Ok(ws::ListNamespacesResponse {
            namespaces: self.svc.namespaces.all().iter().map(views::namespace).collect(),
            next_page_token: Vec::new(),
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
        };
        self.svc.namespaces.register(record).await?;
        Ok(ws::RegisterNamespaceResponse {})
    }
}
