//! Prometheus metrics at `/metrics` on the HTTP port, under Temporal server's names and
//! labels: a start, a failed start, a poll that takes the workflow task, a poll that times
//! out and a terminate, each seen in a scrape. And traces: the binary's spans reach an
//! OpenTelemetry collector over OTLP.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use temporalio_protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflowservice::v1::{
    PollWorkflowTaskQueueRequest, StartWorkflowExecutionRequest, TerminateWorkflowExecutionRequest,
};
use tonic::Request;

use support::{start_server, unique};

/// GET /metrics (blocking: run it off the runtime that serves it).
fn scrape(address: std::net::SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the HTTP port");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_shows_requests_storage_tasks_polls_and_outcomes() {
    let (server, client) = start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    let queue = unique("metrics-q");
    let workflow_id = unique("metrics-wf");
    let start = StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.clone(),
        workflow_type: Some(WorkflowType { name: "MetricsWf".into() }),
        task_queue: Some(TaskQueue { name: queue.clone(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    service.start_workflow_execution(Request::new(start.clone())).await.unwrap();
    let refused = StartWorkflowExecutionRequest { workflow_id: String::new(), ..start.clone() };
    service.start_workflow_execution(Request::new(refused)).await.unwrap_err();
    // A workflow task no worker takes: the queue's backlog.
    let idle_queue = unique("idle-q");
    let waiting = StartWorkflowExecutionRequest {
        workflow_id: unique("waiting-wf"),
        task_queue: Some(TaskQueue { name: idle_queue.clone(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..start.clone()
    };
    service.start_workflow_execution(Request::new(waiting)).await.unwrap();
    let nowhere = StartWorkflowExecutionRequest { namespace: unique("no-such-namespace"), ..start.clone() };
    service.start_workflow_execution(Request::new(nowhere)).await.unwrap_err();
    let poll = PollWorkflowTaskQueueRequest {
        namespace: "default".into(),
        task_queue: Some(TaskQueue { name: queue.clone(), ..Default::default() }),
        identity: "metrics-test".into(),
        ..Default::default()
    };
    let task = service.poll_workflow_task_queue(Request::new(poll.clone())).await.unwrap().into_inner();
    assert!(!task.task_token.is_empty(), "the poll took the workflow task");
    // Nothing is there: this poll answers empty a second before the call's deadline.
    let mut empty = Request::new(PollWorkflowTaskQueueRequest {
        task_queue: Some(TaskQueue { name: unique("empty-q"), ..Default::default() }),
        ..poll
    });
    empty.set_timeout(Duration::from_secs(2));
    let _ = service.poll_workflow_task_queue(empty).await;
    let terminate = TerminateWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_execution: Some(WorkflowExecution { workflow_id, run_id: String::new() }),
        reason: "done".into(),
        ..Default::default()
    };
    service.terminate_workflow_execution(Request::new(terminate)).await.unwrap();

    let address = server.http_addr;
    let text = tokio::task::spawn_blocking(move || scrape(address)).await.unwrap();
    let start_op = r#"operation="StartWorkflowExecution""#;
    let in_default = r#"namespace="default""#;
    assert!(
        sample(&text, "service_requests", &[start_op, r#"service_name="frontend""#, in_default]) >= Some(2.0),
        "{text}"
    );
    // A namespace that does not exist is not a label value.
    assert!(!text.contains("no-such-namespace"), "{text}");
    assert!(sample(&text, "service_requests", &[start_op, r#"namespace="_unknown_""#]) >= Some(1.0), "{text}");
    assert!(sample(&text, "service_latency_count", &[start_op, in_default]) >= Some(2.0), "{text}");
    assert!(text.contains("service_latency_bucket{"), "{text}");
    let invalid = r#"error_type="serviceerror_InvalidArgument""#;
    assert_eq!(sample(&text, "service_error_with_type", &[start_op, invalid, in_default]), Some(1.0), "{text}");
    assert!(sample(&text, "persistence_requests", &[r#"operation="Commit""#]) >= Some(2.0), "{text}");
    assert!(sample(&text, "persistence_latency_count", &[]) >= Some(2.0), "{text}");
    let queue_label = format!(r#"taskqueue="{queue}""#);
    let workflow_task = [r#"namespace="default""#, queue_label.as_str(), r#"task_type="Workflow""#];
    assert_eq!(sample(&text, "task_schedule_to_start_latency_count", &workflow_task), Some(1.0), "{text}");
    assert_eq!(sample(&text, "poll_success", &workflow_task), Some(1.0), "{text}");
    assert!(sample(&text, "poll_timeouts", &[r#"task_type="Workflow""#]) >= Some(1.0), "{text}");
    let idle = format!(r#"taskqueue="{idle_queue}""#);
    let idle_labels = [r#"namespace="default""#, idle.as_str(), r#"task_type="Workflow""#];
    assert_eq!(sample(&text, "approximate_backlog_count", &idle_labels), Some(1.0), "{text}");
    assert!(sample(&text, "approximate_backlog_age_seconds", &idle_labels) >= Some(0.0), "{text}");
    assert_eq!(sample(&text, "approximate_backlog_count", &workflow_task), Some(0.0), "{text}");
    let terminated = [r#"namespace="default""#, r#"workflowType="MetricsWf""#];
    assert_eq!(sample(&text, "workflow_terminate", &terminated), Some(1.0), "{text}");
    server.stop().await;
}

/// A stand-in OpenTelemetry collector: keeps the names of the spans it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        let mut names = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                names.extend(scope.spans.into_iter().map(|span| span.name));
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_of_rpcs_and_transitions_reach_an_otlp_collector() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let serving = collector.clone();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving))
            .serve_with_incoming(incoming)
            .await;
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_tempora"))
        .args(["server", "start", "--db", ":memory:", "--http-port", "0", "--ui-port", "0", "--port"])
        .arg(port.to_string())
        .arg("--otlp-endpoint")
        .arg(format!("http://{collector_addr}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the tempora binary");
    let url = format!("http://127.0.0.1:{port}");
    support::wait_until("the server listening", async || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        .await;
    let client = support::client(&url).await;
    let workflow_id = unique("traced");
    let start = StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.clone(),
        workflow_type: Some(WorkflowType { name: "Traced".into() }),
        task_queue: Some(TaskQueue { name: unique("traced-q"), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let mut service = client.connection().workflow_service();
    service.start_workflow_execution(Request::new(start)).await.unwrap();
    let signal = temporalio_protos::temporal::api::workflowservice::v1::SignalWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_execution: Some(WorkflowExecution { workflow_id, run_id: String::new() }),
        signal_name: "poke".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    service.signal_workflow_execution(Request::new(signal)).await.unwrap();
    // A clean stop sends what is still buffered.
    let stopped = std::process::Command::new("kill").arg("-TERM").arg(server.id().to_string()).status().unwrap();
    assert!(stopped.success());
    let status = tokio::task::spawn_blocking(move || server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let names = collector.spans.lock().unwrap().clone();
    assert!(names.iter().any(|n| n == "StartWorkflowExecution"), "{names:?}");
    assert!(names.iter().any(|n| n == "transition"), "{names:?}");
}
