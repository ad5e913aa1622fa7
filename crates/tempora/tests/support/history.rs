//! Raw WorkflowService reads through the official client's gRPC service, in namespace
//! `default`: a run's history and its event types, and DescribeWorkflowExecution.

use std::time::Duration;

use temporalio_client::Client;
use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::enums::v1::EventType;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::temporal::api::workflowservice::v1::{
    DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse, GetWorkflowExecutionHistoryRequest,
};

use super::wait::poll;

/// Run `run_id` of `workflow_id` (its latest run when `run_id` is empty), as requests name it.
pub fn execution(workflow_id: &str, run_id: &str) -> Option<WorkflowExecution> {
    Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() })
}

/// Every event of a run's history (the latest run's when `run_id` is empty), page after page.
pub async fn history(client: &Client, workflow_id: &str, run_id: &str) -> Vec<HistoryEvent> {
    let mut service = client.connection().workflow_service();
    let mut events = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: "default".into(),
            execution: execution(workflow_id, run_id),
            next_page_token: token,
            ..Default::default()
        };
        let page =
            service.get_workflow_execution_history(tonic::Request::new(request)).await.expect("history").into_inner();
        events.extend(page.history.unwrap_or_default().events);
        if page.next_page_token.is_empty() {
            return events;
        }
        token = page.next_page_token;
    }
}

/// The events' types by name (`EVENT_TYPE_…`).
pub fn event_types(events: &[HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).map(|t| t.as_str_name().to_string()).unwrap_or_default())
        .collect()
}

/// The event types of a workflow's history (its latest run), by name.
pub async fn history_event_types(client: &Client, workflow_id: &str) -> Vec<String> {
    history_event_types_of(client, workflow_id, "").await
}

/// The event types of one run's history, by name.
pub async fn history_event_types_of(client: &Client, workflow_id: &str, run_id: &str) -> Vec<String> {
    event_types(&history(client, workflow_id, run_id).await)
}

/// How many events of type `event_type` are among `types`.
pub fn count_events(types: &[String], event_type: &str) -> usize {
    types.iter().filter(|t| *t == event_type).count()
}

/// Asserts that each of `expected` is among the event types.
pub fn assert_events_include(types: &[String], expected: &[&str]) {
    for expected in expected {
        assert!(types.iter().any(|t| t == expected), "{expected} missing from {types:?}");
    }
}

/// Waits until `event_type` is in the workflow's history, reading it every 50 ms; panics with
/// the history after 10 s. Returns the event types it found it in.
pub async fn wait_for_event(client: &Client, workflow_id: &str, event_type: &str) -> Vec<String> {
    let has = |types: &Vec<String>| types.iter().any(|t| t == event_type);
    let types =
        poll(200, Duration::from_millis(50), async || history_event_types(client, workflow_id).await, has).await;
    assert!(has(&types), "{event_type} not in the history of {workflow_id} after 10 s: {types:?}");
    types
}

/// DescribeWorkflowExecution of the workflow's latest run.
pub async fn describe(client: &Client, workflow_id: &str) -> DescribeWorkflowExecutionResponse {
    let mut service = client.connection().workflow_service();
    let request =
        DescribeWorkflowExecutionRequest { namespace: "default".into(), execution: execution(workflow_id, "") };
    service.describe_workflow_execution(tonic::Request::new(request)).await.expect("describe").into_inner()
}
