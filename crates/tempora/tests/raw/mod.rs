//! Raw WorkflowService and OperatorService calls through the official client, for suites
//! that work below the SDK's typed surface (visibility, batch jobs, admin RPCs): starts with
//! search attributes and no worker, terminations, lists by query.
#![allow(dead_code)]

use std::collections::BTreeSet;

use futures::StreamExt;
use temporalio_client::{Client, NamespacedClient, WorkflowListOptions};
use temporalio_protos::temporal::api::common::v1::{Payload, SearchAttributes, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_protos::temporal::api::operatorservice::v1::AddSearchAttributesRequest;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflowservice::v1::{
    ListWorkflowExecutionsRequest, StartWorkflowExecutionRequest, TerminateWorkflowExecutionRequest,
};
use tonic::Request;

use super::support::execution;

pub async fn add_attributes(client: &Client, attributes: &[(&str, IndexedValueType)]) -> Result<(), tonic::Status> {
    let request = AddSearchAttributesRequest {
        namespace: client.namespace(),
        search_attributes: attributes.iter().map(|(n, t)| (n.to_string(), *t as i32)).collect(),
    };
    client.connection().operator_service().add_search_attributes(Request::new(request)).await.map(|_| ())
}

/// A `json/plain` payload without a `type`: the server types it from the registry.
pub fn json(value: &str) -> Payload {
    let mut payload = Payload { data: value.as_bytes().to_vec(), ..Default::default() };
    payload.metadata.insert("encoding".into(), b"json/plain".to_vec());
    payload
}

pub async fn start(
    client: &Client,
    workflow_id: &str,
    workflow_type: &str,
    attributes: &[(&str, &str)],
) -> Result<String, tonic::Status> {
    start_on(client, "visibility", workflow_id, workflow_type, attributes).await
}

/// Starts a workflow on `queue` (no worker needed: it waits there).
pub async fn start_on(
    client: &Client,
    queue: &str,
    workflow_id: &str,
    workflow_type: &str,
    attributes: &[(&str, &str)],
) -> Result<String, tonic::Status> {
    let request = StartWorkflowExecutionRequest {
        namespace: client.namespace(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: workflow_type.into() }),
        task_queue: Some(TaskQueue { name: queue.into(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        search_attributes: (!attributes.is_empty()).then(|| SearchAttributes {
            indexed_fields: attributes.iter().map(|(n, v)| (n.to_string(), json(v))).collect(),
        }),
        ..Default::default()
    };
    let mut service = client.connection().workflow_service();
    service.start_workflow_execution(Request::new(request)).await.map(|r| r.into_inner().run_id)
}

pub async fn terminate(client: &Client, workflow_id: &str) {
    let request = TerminateWorkflowExecutionRequest {
        namespace: client.namespace(),
        workflow_execution: execution(workflow_id, ""),
        reason: "done".into(),
        ..Default::default()
    };
    client.connection().workflow_service().terminate_workflow_execution(Request::new(request)).await.unwrap();
}

/// The workflow ids a query lists (all pages, through the SDK's stream).
pub async fn ids(client: &Client, query: &str) -> BTreeSet<String> {
    let mut stream = client.list_workflows(query, WorkflowListOptions::default());
    let mut ids = BTreeSet::new();
    while let Some(item) = stream.next().await {
        let item = item.unwrap_or_else(|e| panic!("list {query:?}: {e:?}"));
        ids.insert(item.id().to_string());
    }
    ids
}

pub fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

pub async fn list_raw(
    client: &Client,
    query: &str,
    page_size: i32,
    token: Vec<u8>,
) -> Result<(Vec<String>, Vec<u8>), tonic::Status> {
    let request = ListWorkflowExecutionsRequest {
        namespace: client.namespace(),
        page_size,
        next_page_token: token,
        query: query.into(),
    };
    let page =
        client.connection().workflow_service().list_workflow_executions(Request::new(request)).await?.into_inner();
    let ids = page.executions.iter().map(|e| e.execution.as_ref().unwrap().workflow_id.clone()).collect();
    Ok((ids, page.next_page_token))
}
