//! Bad input gets Temporal's status codes and error details, asserted through the official
//! client (its typed errors where it has them, its raw gRPC service elsewhere). Also here, as
//! they show only in raw responses: eager dispatch and a worker's shutdown ending its polls.

mod hostile;
mod support;

use prost::Message;
use tempora::testing::TestServer;
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::{Client, UntypedWorkflow, WorkflowStartOptions};
use temporalio_protos::google::rpc::Status as RpcStatus;
use temporalio_protos::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temporalio_protos::temporal::api::errordetails::v1::{
    NamespaceNotFoundFailure, WorkflowExecutionAlreadyStartedFailure,
};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflowservice::v1::{
    GetWorkerBuildIdCompatibilityRequest, GetWorkflowExecutionHistoryRequest, RespondActivityTaskCompletedRequest,
    StartActivityExecutionRequest, StartWorkflowExecutionRequest,
};
use tonic::{Code, Request};

use support::{client_in, count_events, execution, history_event_types, start_server, unique};

fn start_request(workflow_id: &str) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "Wf".into() }),
        task_queue: Some(TaskQueue { name: "q".into(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

async fn start_raw(client: &Client, request: StartWorkflowExecutionRequest) -> Result<String, tonic::Status> {
    let mut service = client.connection().workflow_service();
    service.start_workflow_execution(Request::new(request)).await.map(|r| r.into_inner().run_id)
}

/// Asserts the status's code, and that its message names `text`.
fn assert_status(status: &tonic::Status, code: Code, text: &str) {
    assert_eq!(status.code(), code, "{text}: {status:?}");
    assert!(status.message().contains(text), "{text}: {}", status.message());
}

/// A fresh in-memory server, a client of it, and the client's raw WorkflowService.
async fn raw_service() -> (TestServer, Client, Box<dyn WorkflowService>) {
    let (server, c) = start_server(":memory:").await;
    let service = c.connection().workflow_service();
    (server, c, service)
}

fn detail<M: Message + Default>(status: &tonic::Status) -> (String, M) {
    let rpc = RpcStatus::decode(status.details()).expect("status details");
    assert_eq!(rpc.details.len(), 1, "exactly one error detail");
    (rpc.details[0].type_url.clone(), M::decode(rpc.details[0].value.as_slice()).expect("detail decodes"))
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_namespace_is_not_found_with_its_detail() {
    let server = TestServer::start(":memory:").await;
    let c = client_in(&server.url(), "no-such-namespace").await;
    let mut request = start_request("w");
    request.namespace = "no-such-namespace".into();
    let status = start_raw(&c, request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let (type_url, failure): (_, NamespaceNotFoundFailure) = detail(&status);
    assert!(type_url.ends_with("temporal.api.errordetails.v1.NamespaceNotFoundFailure"));
    assert_eq!(failure.namespace, "no-such-namespace");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_running_workflow_id_is_already_started() {
    let (server, c) = start_server(":memory:").await;
    let workflow_id = unique("dup");
    let options = || WorkflowStartOptions::new("q", &workflow_id).build();
    let first = c
        .start_workflow(UntypedWorkflow::new("Wf"), temporalio_common::data_converters::RawValue::empty(), options())
        .await
        .unwrap();
    let run_id = first.info().run_id.clone().unwrap();
    match c
        .start_workflow(UntypedWorkflow::new("Wf"), temporalio_common::data_converters::RawValue::empty(), options())
        .await
    {
        Err(WorkflowStartError::AlreadyStarted { run_id: Some(existing), source }) => {
            assert_eq!(existing, run_id);
            assert_eq!(source.code(), Code::AlreadyExists);
            let (_, failure): (_, WorkflowExecutionAlreadyStartedFailure) = detail(&source);
            assert_eq!(failure.run_id, run_id);
        }
        Err(other) => panic!("expected AlreadyStarted, got {other:?}"),
        Ok(_) => panic!("a second run started with a running workflow id"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_start_with_the_same_request_id_returns_the_same_run() {
    let (server, c) = start_server(":memory:").await;
    let request = start_request(&unique("idem"));
    let first = start_raw(&c, request.clone()).await.unwrap();
    let again = start_raw(&c, request).await.unwrap();
    assert_eq!(first, again);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_fields_are_invalid_arguments_naming_the_field() {
    let (server, c) = start_server(":memory:").await;
    type Case = (&'static str, fn(&mut StartWorkflowExecutionRequest));
    let cases: Vec<Case> = vec![
        ("WorkflowId", |r| r.workflow_id.clear()),
        ("WorkflowType", |r| r.workflow_type = None),
        ("TaskQueue", |r| r.task_queue = None),
    ];
    for (field, break_it) in cases {
        let mut request = start_request(&unique("bad"));
        break_it(&mut request);
        let status = start_raw(&c, request).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, field);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_over_two_megabytes_are_invalid() {
    let (server, c) = start_server(":memory:").await;
    let mut request = start_request(&unique("big"));
    request.input =
        Some(Payloads { payloads: vec![Payload { data: vec![7u8; 2 * 1024 * 1024 + 1], ..Default::default() }] });
    let status = start_raw(&c, request).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "size exceeds limit");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_task_tokens() {
    let (server, _client, mut service) = raw_service().await;
    let malformed = RespondActivityTaskCompletedRequest { task_token: vec![0xff, 0x00, 0x13], ..Default::default() };
    let status = service.respond_activity_task_completed(Request::new(malformed)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // A well-formed token for a run that does not exist.
    let token = tempora::token::TaskToken::new(
        &tempora::engine::state::RunKey {
            namespace: "default".into(),
            workflow_id: "gone".into(),
            run_id: uuid::Uuid::new_v4().to_string().into(),
        },
        5,
        1,
        true,
    );
    let unknown = RespondActivityTaskCompletedRequest { task_token: token.to_bytes(), ..Default::default() };
    let status = service.respond_activity_task_completed(Request::new(unknown)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_workflow_history_is_not_found_and_unsupported_rpcs_name_themselves() {
    let (server, _client, mut service) = raw_service().await;
    let request = GetWorkflowExecutionHistoryRequest {
        namespace: "default".into(),
        execution: execution("never-started", ""),
        ..Default::default()
    };
    let status = service.get_workflow_execution_history(Request::new(request)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // Worker versioning v0.1 (deprecated) is disabled, as on Temporal's dev server.
    let versioning = GetWorkerBuildIdCompatibilityRequest { namespace: "default".into(), ..Default::default() };
    let status = service.get_worker_build_id_compatibility(Request::new(versioning)).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::PermissionDenied,
            "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace."
        )
    );
    // Standalone activities are not served: the status names the method.
    let standalone = StartActivityExecutionRequest { namespace: "default".into(), ..Default::default() };
    let status = service.start_activity_execution(Request::new(standalone)).await.unwrap_err();
    assert_status(&status, Code::Unimplemented, "StartActivityExecution");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_is_applied_once_per_request_id_and_needs_a_running_workflow() {
    use temporalio_protos::temporal::api::workflowservice::v1::SignalWorkflowExecutionRequest;
    let (server, c, mut service) = raw_service().await;
    let id = unique("signal");
    start_raw(&c, start_request(&id)).await.unwrap();
    let signal = |workflow_id: &str, request_id: &str| SignalWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_execution: execution(workflow_id, ""),
        signal_name: "go".into(),
        request_id: request_id.into(),
        ..Default::default()
    };
    for _ in 0..2 {
        service.signal_workflow_execution(Request::new(signal(&id, "same-request"))).await.unwrap();
    }
    service.signal_workflow_execution(Request::new(signal(&id, "another-request"))).await.unwrap();
    let types = history_event_types(&c, &id).await;
    let signaled = count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED");
    assert_eq!(signaled, 2, "a retried signal is applied once: {types:?}");
    let missing = service.signal_workflow_execution(Request::new(signal("no-such-workflow", "r"))).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let unnamed = SignalWorkflowExecutionRequest { signal_name: String::new(), ..signal(&id, "r2") };
    assert_eq!(
        service.signal_workflow_execution(Request::new(unnamed)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_workflows_late_activity_completion_is_not_found() {
    use temporalio_protos::temporal::api::command::v1::{command, Command, ScheduleActivityTaskCommandAttributes};
    use temporalio_protos::temporal::api::common::v1::ActivityType;
    use temporalio_protos::temporal::api::enums::v1::CommandType;
    use temporalio_protos::temporal::api::workflowservice::v1::{
        PollActivityTaskQueueRequest, PollWorkflowTaskQueueRequest, RespondWorkflowTaskCompletedRequest,
        TerminateWorkflowExecutionRequest,
    };
    let (server, c, mut service) = raw_service().await;
    let id = unique("late");
    start_raw(&c, start_request(&id)).await.unwrap();
    let queue = || Some(TaskQueue { name: "q".into(), ..Default::default() });
    let poll = PollWorkflowTaskQueueRequest { namespace: "default".into(), task_queue: queue(), ..Default::default() };
    let task = service.poll_workflow_task_queue(Request::new(poll)).await.unwrap().into_inner();
    let schedule = Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: "1".into(),
                activity_type: Some(ActivityType { name: "Act".into() }),
                task_queue: queue(),
                start_to_close_timeout: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let complete = RespondWorkflowTaskCompletedRequest {
        task_token: task.task_token,
        commands: vec![schedule],
        ..Default::default()
    };
    service.respond_workflow_task_completed(Request::new(complete)).await.unwrap();
    let poll = PollActivityTaskQueueRequest { namespace: "default".into(), task_queue: queue(), ..Default::default() };
    let activity = service.poll_activity_task_queue(Request::new(poll)).await.unwrap().into_inner();
    assert!(!activity.task_token.is_empty());
    let terminate = TerminateWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_execution: execution(&id, ""),
        reason: "stop".into(),
        ..Default::default()
    };
    service.terminate_workflow_execution(Request::new(terminate)).await.unwrap();
    let late = RespondActivityTaskCompletedRequest { task_token: activity.task_token, ..Default::default() };
    let status = service.respond_activity_task_completed(Request::new(late)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    server.stop().await;
}

/// A worker that ignores the namespace's advertised blob limit and sends a bigger result has
/// the task failed and the run terminated by the server, quoting the limit (as Temporal).
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_over_the_blob_limit_fails_the_task_and_terminates_the_run() {
    use temporalio_protos::temporal::api::command::v1::{command, Command, CompleteWorkflowExecutionCommandAttributes};
    use temporalio_protos::temporal::api::enums::v1::CommandType;
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_protos::temporal::api::workflowservice::v1::{
        PollWorkflowTaskQueueRequest, RespondWorkflowTaskCompletedRequest,
    };
    let (server, c, mut service) = raw_service().await;
    let id = unique("big");
    start_raw(&c, start_request(&id)).await.unwrap();
    let queue = Some(TaskQueue { name: "q".into(), ..Default::default() });
    let poll = PollWorkflowTaskQueueRequest { namespace: "default".into(), task_queue: queue, ..Default::default() };
    let task = service.poll_workflow_task_queue(Request::new(poll)).await.unwrap().into_inner();
    let big = Payload {
        metadata: [("encoding".to_string(), b"binary/plain".to_vec())].into(),
        data: vec![b'x'; 3 * 1024 * 1024],
        ..Default::default()
    };
    let complete = Command {
        command_type: CommandType::CompleteWorkflowExecution as i32,
        attributes: Some(command::Attributes::CompleteWorkflowExecutionCommandAttributes(
            CompleteWorkflowExecutionCommandAttributes { result: Some(Payloads { payloads: vec![big] }) },
        )),
        ..Default::default()
    };
    let request = RespondWorkflowTaskCompletedRequest {
        task_token: task.task_token,
        commands: vec![complete],
        ..Default::default()
    };
    let _ = service.respond_workflow_task_completed(Request::new(request)).await;
    let events = support::history(&c, &id, "").await;
    let failed = events.iter().any(|e| matches!(e.attributes, Some(Attributes::WorkflowTaskFailedEventAttributes(_))));
    assert!(failed, "the task is failed before the run is terminated: {events:?}");
    match events.last().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => {
            assert!(a.reason.contains("over the limit"), "{}", a.reason)
        }
        other => panic!("the run must end terminated: {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_health_reports_the_workflow_service_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let server = TestServer::start(":memory:").await;
    let channel = tonic::transport::Endpoint::from_shared(server.url()).unwrap().connect().await.expect("connect");
    // Compressed, as the temporal CLI sends it.
    let mut health = HealthClient::new(channel).send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let ask = |service: &str| HealthCheckRequest { service: service.into() };
    let reply = health.check(Request::new(ask("temporal.api.workflowservice.v1.WorkflowService"))).await.unwrap();
    assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32);
    let unknown = health.check(Request::new(ask("no.such.Service"))).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    server.stop().await;
}

/// Not an error, but the raw service is here: a worker that names itself in its polls gets
/// them answered (empty) by its `ShutdownWorker`, at once, and only its own.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_worker_answers_the_polls_of_the_worker_it_names() {
    use temporalio_protos::temporal::api::workflowservice::v1::{PollActivityTaskQueueRequest, ShutdownWorkerRequest};
    let (_server, c, mut service) = raw_service().await;
    let poll = |key: &str| {
        let mut service = c.connection().workflow_service();
        let request = PollActivityTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(TaskQueue { name: "shutdown-q".into(), ..Default::default() }),
            identity: key.into(),
            worker_instance_key: key.into(),
            ..Default::default()
        };
        tokio::spawn(async move { service.poll_activity_task_queue(Request::new(request)).await })
    };
    let (mine, theirs) = (poll("w1"), poll("w2"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let shutdown =
        ShutdownWorkerRequest { namespace: "default".into(), worker_instance_key: "w1".into(), ..Default::default() };
    service.shutdown_worker(Request::new(shutdown)).await.unwrap();
    let answered = tokio::time::timeout(std::time::Duration::from_secs(5), mine).await.expect("the poll ended");
    assert!(answered.unwrap().unwrap().into_inner().task_token.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!theirs.is_finished(), "another worker's poll goes on");
    theirs.abort();
}

/// Not an error either: eager dispatch is visible only in raw responses. The start hands the
/// first workflow task to its caller, and the completion the activity it asked to run itself.
#[tokio::test(flavor = "multi_thread")]
async fn eager_start_and_eager_activities_come_back_in_the_responses() {
    use temporalio_protos::temporal::api::command::v1::{command, Command, ScheduleActivityTaskCommandAttributes};
    use temporalio_protos::temporal::api::common::v1::ActivityType;
    use temporalio_protos::temporal::api::enums::v1::CommandType;
    use temporalio_protos::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;
    let (server, c, mut service) = raw_service().await;
    let id = unique("eager");
    let start =
        StartWorkflowExecutionRequest { request_eager_execution: true, identity: "me".into(), ..start_request(&id) };
    let started = service.start_workflow_execution(Request::new(start)).await.unwrap().into_inner();
    let task = started.eager_workflow_task.expect("the first workflow task comes with the start");
    assert!(!task.task_token.is_empty());
    assert_eq!(started.first_execution_run_id, started.run_id);
    let schedule = |activity_id: &str, queue: &str| Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: activity_id.into(),
                activity_type: Some(ActivityType { name: "Act".into() }),
                task_queue: Some(TaskQueue { name: queue.into(), ..Default::default() }),
                start_to_close_timeout: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
                request_eager_execution: true,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let complete = RespondWorkflowTaskCompletedRequest {
        task_token: task.task_token,
        // Only an activity on the workflow's own task queue is dispatched eagerly.
        commands: vec![schedule("here", "q"), schedule("elsewhere", "other-q")],
        identity: "me".into(),
        ..Default::default()
    };
    let answer = service.respond_workflow_task_completed(Request::new(complete)).await.unwrap().into_inner();
    let eager: Vec<_> = answer.activity_tasks.iter().map(|t| t.activity_id.as_str()).collect();
    assert_eq!(eager, ["here"]);
    assert_eq!(answer.activity_tasks[0].attempt, 1);
    let done = RespondActivityTaskCompletedRequest {
        task_token: answer.activity_tasks[0].task_token.clone(),
        ..Default::default()
    };
    service.respond_activity_task_completed(Request::new(done)).await.unwrap();
    assert_eq!(count_events(&history_event_types(&c, &id).await, "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"), 1);
    server.stop().await;
}

/// An eager start while a poller already waits on the queue: the first workflow task goes to
/// the starter, never to the waiting poller (it used to be offered to matching first, and a
/// waiting poll sometimes won the race; twenty tries make a regression show).
#[tokio::test(flavor = "multi_thread")]
async fn an_eager_start_is_not_raced_by_a_waiting_poller() {
    use temporalio_protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueRequest;
    let (server, c, mut service) = raw_service().await;
    let mut lost = 0;
    for _ in 0..20 {
        let mut poller = c.connection().workflow_service();
        let poll = PollWorkflowTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(TaskQueue { name: "race-q".into(), ..Default::default() }),
            identity: "poller".into(),
            ..Default::default()
        };
        let waiting = tokio::spawn(async move { poller.poll_workflow_task_queue(Request::new(poll)).await });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let mut start = StartWorkflowExecutionRequest {
            request_eager_execution: true,
            identity: "me".into(),
            ..start_request(&unique("eager-race"))
        };
        start.task_queue = Some(TaskQueue { name: "race-q".into(), ..Default::default() });
        let started = service.start_workflow_execution(Request::new(start)).await.unwrap().into_inner();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        if started.eager_workflow_task.is_none() || waiting.is_finished() {
            lost += 1;
        }
        waiting.abort();
    }
    assert_eq!(lost, 0, "eager starts whose task a waiting poller took, of 20");
    server.stop().await;
}

/// The same for eager activities: an activity the completing worker asked to run itself
/// comes back in the completion's answer even while an activity poller waits on the queue.
#[tokio::test(flavor = "multi_thread")]
async fn an_eager_activity_is_not_raced_by_a_waiting_poller() {
    use temporalio_protos::temporal::api::command::v1::{command, Command, ScheduleActivityTaskCommandAttributes};
    use temporalio_protos::temporal::api::common::v1::ActivityType;
    use temporalio_protos::temporal::api::enums::v1::CommandType;
    use temporalio_protos::temporal::api::workflowservice::v1::{
        PollActivityTaskQueueRequest, RespondWorkflowTaskCompletedRequest,
    };
    let (server, c, mut service) = raw_service().await;
    let mut lost = 0;
    for _ in 0..20 {
        let queue = || Some(TaskQueue { name: "race-a".into(), ..Default::default() });
        let mut start = StartWorkflowExecutionRequest {
            request_eager_execution: true,
            identity: "me".into(),
            ..start_request(&unique("eager-activity-race"))
        };
        start.task_queue = queue();
        let started = service.start_workflow_execution(Request::new(start)).await.unwrap().into_inner();
        let task = started.eager_workflow_task.expect("eager start");
        let mut poller = c.connection().workflow_service();
        let poll = PollActivityTaskQueueRequest {
            namespace: "default".into(),
            task_queue: queue(),
            identity: "poller".into(),
            ..Default::default()
        };
        let waiting = tokio::spawn(async move { poller.poll_activity_task_queue(Request::new(poll)).await });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let schedule = Command {
            command_type: CommandType::ScheduleActivityTask as i32,
            attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
                ScheduleActivityTaskCommandAttributes {
                    activity_id: "a".into(),
                    activity_type: Some(ActivityType { name: "Act".into() }),
                    task_queue: queue(),
                    start_to_close_timeout: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
                    request_eager_execution: true,
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        let complete = RespondWorkflowTaskCompletedRequest {
            task_token: task.task_token,
            commands: vec![schedule],
            identity: "me".into(),
            ..Default::default()
        };
        let answer = service.respond_workflow_task_completed(Request::new(complete)).await.unwrap().into_inner();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        if answer.activity_tasks.len() != 1 || waiting.is_finished() {
            lost += 1;
        }
        waiting.abort();
    }
    assert_eq!(lost, 0, "eager activities a waiting poller took, of 20");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_answers_hostile_input_with_a_status_and_keeps_serving() {
    let inputs = std::env::var("TEMPORA_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(6000);
    let (server, client) = start_server(":memory:").await;
    let began = std::time::Instant::now();
    let (tried, codes) = hostile::every_rpc_survives_hostile_bytes(server.url(), inputs).await;
    eprintln!("hostile input: {tried} inputs in {:?}, no panic, no hang; answers {codes:?}", began.elapsed());
    assert!(codes.get("Ok").copied().unwrap_or(0) > 0 && codes.get("InvalidArgument").copied().unwrap_or(0) > 0);
    // Still serving: a new namespace takes a start (the fuzzing may have changed `default`).
    let namespace = unique("after-fuzz");
    let mut service = client.connection().workflow_service();
    let register = temporalio_protos::temporal::api::workflowservice::v1::RegisterNamespaceRequest {
        namespace: namespace.clone(),
        workflow_execution_retention_period: Some(prost_types::Duration { seconds: 86400, nanos: 0 }),
        ..Default::default()
    };
    service.register_namespace(Request::new(register)).await.expect("register after fuzzing");
    let run_id = start_raw(&client, StartWorkflowExecutionRequest { namespace, ..start_request(&unique("after")) })
        .await
        .expect("start after fuzzing");
    assert!(!run_id.is_empty());
    server.stop().await;
}
