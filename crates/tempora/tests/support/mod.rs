//! Shared test harness: an official-SDK client and worker against an in-process tempora.
#![allow(dead_code)]

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Every test's hard limit, so a broken server fails a test instead of hanging it.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn client(url: &str) -> Client {
    client_in(url, "default").await
}

pub async fn client_in(url: &str, namespace: &str) -> Client {
    let options = ConnectionOptions::new(Url::from_str(url).expect("url")).build();
    let connection = Connection::connect(options).await.expect("connect to tempora");
    Client::new(connection, ClientOptions::new(namespace).build()).expect("client")
}

/// Runs `body` while a worker built from `options` polls; stops the worker when `body` ends.
/// The worker future is not `Send`, so both run in this task.
pub async fn with_worker<T>(client: &Client, options: WorkerOptions, body: impl Future<Output = T>) -> T {
    let runtime = Runtime::from_current_tokio(Default::default()).expect("runtime");
    let mut worker = Worker::new(&runtime, client.clone(), options).expect("worker");
    let stop = worker.shutdown_handle();
    let body = async {
        let out = tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test body timed out");
        stop();
        out
    };
    let (out, run) = tokio::join!(body, worker.run());
    run.expect("worker ran cleanly");
    out
}

/// A unique name for queues and workflow ids.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The real Temporal server for differential checks, started by
/// `../shared/tools/reference-server` when `TEMPORA_REFERENCE=1`; `None` (with a notice) else.
pub fn reference_server() -> Option<String> {
    if std::env::var("TEMPORA_REFERENCE").ok().as_deref() != Some("1") {
        eprintln!("notice: TEMPORA_REFERENCE is not 1; skipping the comparison with the real Temporal server");
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/reference-server");
    let out = std::process::Command::new(script).args(["start", "7300"]).output().expect("run reference-server");
    assert!(out.status.success(), "reference-server failed: {}", String::from_utf8_lossy(&out.stderr));
    let addr = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    Some(format!("http://{addr}"))
}

/// The event types of a workflow's history, by name.
pub async fn history_event_types(client: &Client, workflow_id: &str) -> Vec<String> {
    use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
    use temporalio_protos::temporal::api::enums::v1::EventType;
    use temporalio_protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryRequest;
    let mut service = client.connection().workflow_service();
    let mut types = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
            next_page_token: token,
            ..Default::default()
        };
        let page =
            service.get_workflow_execution_history(tonic::Request::new(request)).await.expect("history").into_inner();
        for event in page.history.unwrap_or_default().events {
            types.push(EventType::try_from(event.event_type).map(|t| t.as_str_name().to_string()).unwrap_or_default());
        }
        if page.next_page_token.is_empty() {
            return types;
        }
        token = page.next_page_token;
    }
}
