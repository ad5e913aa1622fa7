//! Operating workflows through the official client's raw services: batch jobs (terminate by
//! query, across a server restart; signal and delete by list; describe, list, stop and their
//! errors), retention deleting closed runs, namespace updates and paging, task-queue
//! describe, and history in reverse.

#![allow(deprecated)] // Temporal deprecates fields its CLI still sends (api_mode, executions).

mod raw;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use temporalio_client::Client;
use temporalio_protos::temporal::api::batch::v1::{BatchOperationSignal, BatchOperationTermination};
use temporalio_protos::temporal::api::enums::v1::{BatchOperationState, BatchOperationType, TaskQueueType};
use temporalio_protos::temporal::api::namespace::v1::{NamespaceConfig, UpdateNamespaceInfo};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflowservice::v1::{
    start_batch_operation_request::Operation, CountWorkflowExecutionsRequest, DescribeBatchOperationRequest,
    DescribeBatchOperationResponse, DescribeNamespaceRequest, DescribeTaskQueueRequest,
    GetWorkflowExecutionHistoryReverseRequest, ListBatchOperationsRequest, ListNamespacesRequest,
    PollWorkflowTaskQueueRequest, RegisterNamespaceRequest, StartBatchOperationRequest, StopBatchOperationRequest,
    UpdateNamespaceRequest,
};
use tonic::{Code, Request};

use raw::{ids, set, start, start_on, terminate};
use support::{execution, poll, start_server, OnDisk};

fn terminate_by_query(job_id: &str, query: &str, rate: f32) -> StartBatchOperationRequest {
    StartBatchOperationRequest {
        namespace: "default".into(),
        job_id: job_id.into(),
        visibility_query: query.into(),
        reason: "cleanup".into(),
        max_operations_per_second: rate,
        operation: Some(Operation::TerminationOperation(BatchOperationTermination {
            identity: "ops-test".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

async fn describe_job(client: &Client, job_id: &str) -> Result<DescribeBatchOperationResponse, tonic::Status> {
    let request = DescribeBatchOperationRequest { namespace: "default".into(), job_id: job_id.into() };
    client.connection().workflow_service().describe_batch_operation(Request::new(request)).await.map(|r| r.into_inner())
}

async fn wait_job_done(client: &Client, job_id: &str) -> DescribeBatchOperationResponse {
    poll(
        300,
        Duration::from_millis(50),
        async || describe_job(client, job_id).await.unwrap(),
        |d| d.state != BatchOperationState::Running as i32,
    )
    .await
}

async fn count(client: &Client, query: &str) -> i64 {
    let request = CountWorkflowExecutionsRequest { namespace: "default".into(), query: query.into() };
    client
        .connection()
        .workflow_service()
        .count_workflow_executions(Request::new(request))
        .await
        .unwrap()
        .into_inner()
        .count
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_terminate_by_query_with_describe_list_stop_and_errors() {
    let (server, client) = start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    for i in 0..30 {
        start(&client, &format!("batch-{i}"), "BatchMe", &[]).await.unwrap();
    }
    start(&client, "keep-1", "Other", &[]).await.unwrap();

    service
        .start_batch_operation(Request::new(terminate_by_query("job-1", "WorkflowType = 'BatchMe'", 1000.0)))
        .await
        .unwrap();
    let done = wait_job_done(&client, "job-1").await;
    assert_eq!(done.state, BatchOperationState::Completed as i32, "{done:?}");
    assert_eq!(done.operation_type, BatchOperationType::TerminateWorkflow as i32);
    assert_eq!((done.total_operation_count, done.complete_operation_count, done.failure_operation_count), (30, 30, 0));
    assert_eq!((done.identity.as_str(), done.reason.as_str()), ("ops-test", "cleanup"));
    assert_eq!(done.query, "WorkflowType = 'BatchMe'");
    assert!(done.close_time.is_some());
    assert_eq!(count(&client, "WorkflowType = 'BatchMe' AND ExecutionStatus = 'Terminated'").await, 30);
    assert_eq!(count(&client, "").await, 31, "counts follow status changes");
    assert_eq!(count(&client, "ExecutionStatus = 'Running'").await, 1);
    assert_eq!(ids(&client, "ExecutionStatus = 'Running'").await, set(&["keep-1"]));

    let listed = service
        .list_batch_operations(Request::new(ListBatchOperationsRequest {
            namespace: "default".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.operation_info.len(), 1);
    assert_eq!(listed.operation_info[0].job_id, "job-1");

    // Errors, with Temporal's codes and messages.
    let stop = |job_id: &str| StopBatchOperationRequest {
        namespace: "default".into(),
        job_id: job_id.into(),
        reason: "enough".into(),
        ..Default::default()
    };
    let status = service.stop_batch_operation(Request::new(stop("job-1"))).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::NotFound, "workflow execution already completed"));
    let status = service.stop_batch_operation(Request::new(stop("nope"))).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::NotFound, "workflow not found for ID: nope"));
    let status = describe_job(&client, "nope").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let again = terminate_by_query("job-1", "WorkflowType = 'BatchMe'", 0.0);
    let status = service.start_batch_operation(Request::new(again)).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    let mut no_targets = terminate_by_query("job-2", "", 0.0);
    no_targets.visibility_query.clear();
    let status = service.start_batch_operation(Request::new(no_targets)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("must provide required parameters"), "{}", status.message());
    let status =
        service.start_batch_operation(Request::new(terminate_by_query("job-3", "Nope = 1", 0.0))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A slow job can be stopped: it ends FAILED, and what it had not reached keeps running.
    for i in 0..5 {
        start(&client, &format!("slow-{i}"), "Slow", &[]).await.unwrap();
    }
    service
        .start_batch_operation(Request::new(terminate_by_query("job-slow", "WorkflowType = 'Slow'", 1.0)))
        .await
        .unwrap();
    let busy =
        service.start_batch_operation(Request::new(terminate_by_query("job-4", "WorkflowType = 'Other'", 0.0))).await;
    assert_eq!(busy.unwrap_err().code(), Code::ResourceExhausted, "one job at a time per namespace");
    service.stop_batch_operation(Request::new(stop("job-slow"))).await.unwrap();
    let stopped = describe_job(&client, "job-slow").await.unwrap();
    assert_eq!(stopped.state, BatchOperationState::Failed as i32);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(count(&client, "WorkflowType = 'Slow' AND ExecutionStatus = 'Running'").await >= 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_job_resumes_after_a_restart_and_finishes_exactly() {
    let (disk, server, client) = OnDisk::start("batch").await;
    for i in 0..40 {
        start(&client, &format!("r-{i}"), "Restart", &[]).await.unwrap();
    }
    let mut service = client.connection().workflow_service();
    service
        .start_batch_operation(Request::new(terminate_by_query("job-r", "WorkflowType = 'Restart'", 20.0)))
        .await
        .unwrap();
    // Stop the server part-way (about 1.3 s at 20 per second: some done, some not).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let midway = describe_job(&client, "job-r").await.unwrap();
    assert_eq!(midway.state, BatchOperationState::Running as i32);
    server.stop().await;

    let (server, client) = disk.serve().await;
    let terminated_before = count(&client, "WorkflowType = 'Restart' AND ExecutionStatus = 'Terminated'").await;
    assert!(terminated_before > 0 && terminated_before < 40, "stopped part-way: {terminated_before}");
    let done = wait_job_done(&client, "job-r").await;
    assert_eq!(done.state, BatchOperationState::Completed as i32);
    assert_eq!((done.total_operation_count, done.complete_operation_count, done.failure_operation_count), (40, 40, 0));
    assert_eq!(count(&client, "WorkflowType = 'Restart' AND ExecutionStatus = 'Terminated'").await, 40);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_signal_and_delete_by_list_of_executions() {
    let (server, client) = start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    for id in ["s-1", "s-2", "s-3"] {
        start(&client, id, "Signalled", &[]).await.unwrap();
    }
    let signal = StartBatchOperationRequest {
        namespace: "default".into(),
        job_id: "job-signal".into(),
        reason: "poke".into(),
        executions: ["s-1", "s-2"].iter().map(|id| execution(id, "").unwrap()).collect(),
        operation: Some(Operation::SignalOperation(BatchOperationSignal {
            signal: "poke".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    service.start_batch_operation(Request::new(signal)).await.unwrap();
    let done = wait_job_done(&client, "job-signal").await;
    assert_eq!((done.total_operation_count, done.complete_operation_count), (2, 2));
    assert_eq!(done.executions.len(), 2);
    for (id, signalled) in [("s-1", true), ("s-2", true), ("s-3", false)] {
        let types = support::history_event_types(&client, id).await;
        assert_eq!(types.contains(&"EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED".to_string()), signalled, "{id}");
    }
    let delete = StartBatchOperationRequest {
        namespace: "default".into(),
        job_id: "job-delete".into(),
        reason: "tidy".into(),
        visibility_query: "WorkflowId IN ('s-1', 's-3')".into(),
        operation: Some(Operation::DeletionOperation(Default::default())),
        ..Default::default()
    };
    service.start_batch_operation(Request::new(delete)).await.unwrap();
    wait_job_done(&client, "job-delete").await;
    assert_eq!(ids(&client, "").await, set(&["s-2"]));
    assert_eq!(count(&client, "").await, 1, "counts follow deletions");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_closed_runs_of_a_namespace() {
    let (server, client) = start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    let register = RegisterNamespaceRequest {
        namespace: "short".into(),
        workflow_execution_retention_period: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        ..Default::default()
    };
    service.register_namespace(Request::new(register)).await.unwrap();
    let short = support::client_in(&server.url(), "short").await;
    start(&short, "gone", "T", &[]).await.unwrap_or_else(|_| panic!("start in short"));
    start(&short, "stays", "T", &[]).await.unwrap();
    terminate(&short, "gone").await;
    // Runs of "default" (retention 3 days) are untouched.
    start(&client, "default-closed", "T", &[]).await.unwrap();
    terminate(&client, "default-closed").await;
    let listed = poll(100, Duration::from_millis(100), async || ids(&short, "").await, |l| l.len() == 1).await;
    assert_eq!(listed, set(&["stays"]), "the closed run is deleted once its retention passed");
    let request = temporalio_protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryRequest {
        namespace: "short".into(),
        execution: execution("gone", ""),
        ..Default::default()
    };
    let status = service.get_workflow_execution_history(Request::new(request)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "its history went too");
    assert_eq!(ids(&client, "").await, set(&["default-closed"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_are_updated_and_listed_in_pages() {
    let (server, client) = start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    for name in ["ns-a", "ns-b"] {
        let register = RegisterNamespaceRequest { namespace: name.into(), ..Default::default() };
        service.register_namespace(Request::new(register)).await.unwrap();
    }
    let update = |data: &[(&str, &str)], description: &str, retention_s: i64| UpdateNamespaceRequest {
        namespace: "ns-a".into(),
        update_info: Some(UpdateNamespaceInfo {
            description: description.into(),
            data: data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }),
        config: Some(NamespaceConfig {
            workflow_execution_retention_ttl: Some(prost_types::Duration { seconds: retention_s, nanos: 0 }),
            ..Default::default()
        }),
        ..Default::default()
    };
    service.update_namespace(Request::new(update(&[("team", "pay")], "payments", 7 * 86400))).await.unwrap();
    let updated = service.update_namespace(Request::new(update(&[("tier", "1")], "", 0))).await.unwrap().into_inner();
    let info = updated.namespace_info.unwrap();
    assert_eq!(info.description, "payments", "an empty description keeps the old one");
    assert_eq!(info.data, HashMap::from([("team".into(), "pay".into()), ("tier".into(), "1".into())]), "data merges");
    let described = service
        .describe_namespace(Request::new(DescribeNamespaceRequest { namespace: "ns-a".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let ttl = described.config.unwrap().workflow_execution_retention_ttl.unwrap();
    assert_eq!(ttl.seconds, 7 * 86400);
    let status = service.update_namespace(Request::new(update(&[], "", 60))).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "A valid retention period is not set on request.")
    );
    let mut missing = update(&[], "", 0);
    missing.namespace = "nope".into();
    assert_eq!(service.update_namespace(Request::new(missing)).await.unwrap_err().code(), Code::NotFound);

    let mut names = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = ListNamespacesRequest { page_size: 1, next_page_token: token, ..Default::default() };
        let page = service.list_namespaces(Request::new(request)).await.unwrap().into_inner();
        assert!(page.namespaces.len() <= 1);
        names.extend(page.namespaces.into_iter().map(|n| n.namespace_info.unwrap().name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["default", "ns-a", "ns-b"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn task_queue_describe_shows_pollers_and_backlog() {
    let (server, client) = start_server(":memory:").await;
    start_on(&client, "backlogged", "b-1", "T", &[]).await.unwrap();
    start_on(&client, "backlogged", "b-2", "T", &[]).await.unwrap();
    // A poller on another queue, still waiting when we describe it.
    let poller = client.clone();
    let polling = tokio::spawn(async move {
        let request = PollWorkflowTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(TaskQueue { name: "polled".into(), ..Default::default() }),
            identity: "poller-A".into(),
            ..Default::default()
        };
        let _ = poller.connection().workflow_service().poll_workflow_task_queue(Request::new(request)).await;
    });
    let mut service = client.connection().workflow_service();
    let describe = |queue: &str| DescribeTaskQueueRequest {
        namespace: "default".into(),
        task_queue: Some(TaskQueue { name: queue.into(), ..Default::default() }),
        api_mode: 1, // ENHANCED, as `temporal task-queue describe` asks
        report_pollers: true,
        report_stats: true,
        ..Default::default()
    };
    let polled = poll(
        50,
        Duration::from_millis(50),
        async || service.describe_task_queue(Request::new(describe("polled"))).await.unwrap().into_inner(),
        |d| !d.versions_info[""].types_info[&(TaskQueueType::Workflow as i32)].pollers.is_empty(),
    )
    .await;
    let workflow = &polled.versions_info[""].types_info[&(TaskQueueType::Workflow as i32)];
    assert_eq!(workflow.pollers[0].identity, "poller-A");
    assert!(workflow.pollers[0].last_access_time.is_some());
    assert!(polled.versions_info[""].types_info.contains_key(&(TaskQueueType::Activity as i32)));

    let backlogged = service.describe_task_queue(Request::new(describe("backlogged"))).await.unwrap().into_inner();
    let stats = backlogged.versions_info[""].types_info[&(TaskQueueType::Workflow as i32)].stats.unwrap();
    assert_eq!(stats.approximate_backlog_count, 2);

    // The legacy shape (no api mode): pollers of one type.
    let mut legacy = describe("polled");
    legacy.api_mode = 0;
    legacy.include_task_queue_status = true;
    let legacy = service.describe_task_queue(Request::new(legacy)).await.unwrap().into_inner();
    assert_eq!(legacy.pollers[0].identity, "poller-A");
    assert!(legacy.task_queue_status.is_some());
    polling.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_reads_newest_first_in_pages() {
    let (server, client) = start_server(":memory:").await;
    start(&client, "rev", "T", &[]).await.unwrap();
    terminate(&client, "rev").await;
    let forward: Vec<i64> = support::history(&client, "rev", "").await.iter().map(|e| e.event_id).collect();
    let mut service = client.connection().workflow_service();
    let mut reversed = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = GetWorkflowExecutionHistoryReverseRequest {
            namespace: "default".into(),
            execution: execution("rev", ""),
            maximum_page_size: 2,
            next_page_token: token,
        };
        let page = service.get_workflow_execution_history_reverse(Request::new(request)).await.unwrap().into_inner();
        reversed.extend(page.history.unwrap().events.iter().map(|e| e.event_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(reversed, forward.iter().rev().copied().collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_namespace_vanishes_then_its_runs_and_record_go() {
    use temporalio_protos::temporal::api::namespace::v1::NamespaceFilter;
    use temporalio_protos::temporal::api::operatorservice::v1::DeleteNamespaceRequest;
    let (server, client) = start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    let register = || RegisterNamespaceRequest { namespace: "doomed".into(), ..Default::default() };
    service.register_namespace(Request::new(register())).await.unwrap();
    let doomed = support::client_in(&server.url(), "doomed").await;
    start(&doomed, "open-1", "T", &[]).await.unwrap();
    start(&doomed, "closed-1", "T", &[]).await.unwrap();
    terminate(&doomed, "closed-1").await;

    let delete = DeleteNamespaceRequest { namespace: "doomed".into(), ..Default::default() };
    let deleted = client.connection().operator_service().delete_namespace(Request::new(delete)).await.unwrap();
    assert!(deleted.into_inner().deleted_namespace.starts_with("doomed-deleted-"));
    let describe = DescribeNamespaceRequest { namespace: "doomed".into(), ..Default::default() };
    let status = service.describe_namespace(Request::new(describe)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = service.register_namespace(Request::new(register())).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "the name is taken until its runs are gone");

    let list_with_deleted = ListNamespacesRequest {
        namespace_filter: Some(NamespaceFilter { include_deleted: true }),
        ..Default::default()
    };
    let names = async || -> Vec<String> {
        let page =
            client.connection().workflow_service().list_namespaces(Request::new(list_with_deleted.clone())).await;
        page.unwrap().into_inner().namespaces.into_iter().map(|n| n.namespace_info.unwrap().name).collect()
    };
    let gone = poll(100, Duration::from_millis(100), names, |n| !n.iter().any(|n| n.starts_with("doomed"))).await;
    assert_eq!(gone, ["default"]);
    // The name is free again, with nothing left of the old namespace's runs.
    service.register_namespace(Request::new(register())).await.unwrap();
    assert!(ids(&doomed, "").await.is_empty());
    server.stop().await;
}
