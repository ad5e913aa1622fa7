//! Runs and their relatives, through the official Rust SDK: continue-as-new, child workflows
//! (results, failures, timeouts, cancellation, parent close policies), reset, and the same
//! scenarios' histories compared with the real Temporal server (`TEMPORA_REFERENCE=1`).

mod scenarios;
mod support;

use std::time::Duration;

use temporalio_client::{WorkflowExecuteUpdateOptions, WorkflowSignalOptions};

use support::{
    assert_events_include, client, describe, execution, get_result, history, history_event_types,
    history_event_types_of, latest_result, on_tempora_and_reference, poll, run_workflow, start, start_options, unique,
    wait_for_event, with_worker, CallLog,
};

use scenarios::*;

#[tokio::test]
async fn continue_as_new_three_times_carries_state_to_the_last_run() {
    let s = setup("chain").await;
    s.run(Chain::run, (1, 4, String::new()), async |handle| {
        let first_run = handle.info().run_id.clone().unwrap();
        // get_result on the first run follows the chain to the last run's result.
        let result = get_result(handle).await.unwrap();
        assert_eq!(result, "1;2;3;4;");
        let first_types = history_event_types_of(&s.client, &s.id, &first_run).await;
        assert_eq!(first_types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"));
    })
    .await;
    // The workflow id's current run is the fourth, completed.
    let described = describe(&s.client, &s.id).await;
    let info = described.workflow_execution_info.unwrap();
    assert_eq!(info.status, 2, "completed");
    assert_ne!(info.execution.unwrap().run_id, info.first_run_id);
}

#[tokio::test]
async fn a_child_workflow_result_and_failure_reach_the_parent() {
    let s = setup("parent").await;
    s.worker(async {
        let ok = s.start(Parent::run, "ann".to_string(), &s.id).await;
        assert_eq!(get_result(&ok).await.unwrap(), "child said: child ann");
        let types = history_event_types(&s.client, &s.id).await;
        assert_events_include(
            &types,
            &[
                "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
                "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
                "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
            ],
        );
        let child = describe(&s.client, &format!("{}-child", s.id)).await;
        let parent = child.workflow_execution_info.unwrap().parent_execution.unwrap();
        assert_eq!(parent.workflow_id, s.id);

        let id = unique("parent");
        let bad = s.start(Parent::run, "fail".to_string(), &id).await;
        let result = get_result(&bad).await.unwrap();
        assert!(result.starts_with("child failed"), "{result}");
        let types = history_event_types(&s.client, &id).await;
        assert!(types.contains(&"EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED".to_string()), "{types:?}");
    })
    .await;
}

#[tokio::test]
async fn parent_close_policies_terminate_cancel_or_abandon_the_children() {
    let s = setup("abandoner").await;
    s.run(Abandoner::run, (), async |handle| {
        get_result(handle).await.unwrap();
        let status = |suffix: &str| {
            let client = s.client.clone();
            let child = format!("{}-{suffix}", s.id);
            async move { describe(&client, &child).await.workflow_execution_info.unwrap().status }
        };
        let statuses = async || (status("terminate").await, status("cancel").await, status("abandon").await);
        let statuses = poll(100, Duration::from_millis(50), statuses, |statuses| *statuses == (5, 4, 1)).await;
        assert_eq!(statuses, (5, 4, 1), "terminated, canceled, still running");
    })
    .await;
}

#[tokio::test]
async fn reset_to_the_first_workflow_task_replays_and_runs_again() {
    use temporalio_protos::temporal::api::enums::v1::WorkflowTaskFailedCause;
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_protos::temporal::api::workflowservice::v1::ResetWorkflowExecutionRequest;
    let s = setup("reset").await;
    s.run(TwoSteps::run, (), async |handle| {
        assert_eq!(get_result(handle).await.unwrap(), "one two");
        let base_run = handle.info().run_id.clone().unwrap();
        let mut service = s.client.connection().workflow_service();
        let request = |finish: i64| ResetWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: execution(&s.id, &base_run),
            reason: "try again".into(),
            workflow_task_finish_event_id: finish,
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        // Event 5 is an activity's scheduled event, not the end of a workflow task.
        let bad = service.reset_workflow_execution(tonic::Request::new(request(5))).await;
        assert_eq!(bad.map(|_| ()).unwrap_err().code(), tonic::Code::InvalidArgument);
        // Event 4 completes the first workflow task.
        let new_run =
            service.reset_workflow_execution(tonic::Request::new(request(4))).await.unwrap().into_inner().run_id;
        assert_ne!(new_run, base_run);
        assert_eq!(latest_result::<TwoSteps>(&s.client, &s.id).await, "one two");
        let events = history(&s.client, &s.id, &new_run).await;
        match &events[3].attributes {
            Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
                assert_eq!(a.cause, WorkflowTaskFailedCause::ResetWorkflow as i32);
                assert_eq!(a.base_run_id, base_run);
            }
            other => panic!("event 4 of the reset run must be the reset failure: {other:?}"),
        }
    })
    .await;
    let echoes = s.log.entries().iter().filter(|e| e.starts_with("echo:")).count();
    assert_eq!(echoes, 4, "both activities ran again in the reset run: {:?}", s.log.entries());
}

#[tokio::test]
async fn a_child_timeout_and_a_child_cancellation_reach_the_parent() {
    let s = setup("supervisor").await;
    s.run(Supervisor::run, (), async |handle| {
        let result = get_result(handle).await.unwrap();
        assert!(!result.contains("unexpected"), "{result}");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_events_include(
        &types,
        &[
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT",
            "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
            "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED",
        ],
    );
}

/// Runs the timer, signal, child and continue-as-new scenarios against a server; returns each
/// scenario's event types (for the child scenario: the parent's, then the child's).
async fn scenario_histories(url: &str) -> Vec<(&'static str, Vec<String>)> {
    let client = client(url).await;
    let queue = unique("differential");
    let log = CallLog::default();
    with_worker(&client, worker_options(&queue, &log), async {
        let mut out = Vec::new();
        let id = unique("timers");
        run_workflow(&client, Timers::run, 50, &queue, &id).await;
        out.push(("timers", history_event_types(&client, &id).await));

        let id = unique("signals");
        let handle = client
            .signal_with_start_workflow(Counter::run, 3, Counter::add, 3, start_options(&queue, &id))
            .await
            .unwrap();
        get_result(&handle).await.unwrap();
        out.push(("signal-with-start", history_event_types(&client, &id).await));

        let id = unique("parent");
        run_workflow(&client, Parent::run, "ann".to_string(), &queue, &id).await;
        out.push(("parent", history_event_types(&client, &id).await));
        out.push(("child", history_event_types(&client, &format!("{id}-child")).await));

        let id = unique("supervisor");
        run_workflow(&client, Supervisor::run, (), &queue, &id).await;
        out.push(("child timed out, child cancelled", history_event_types(&client, &id).await));

        let id = unique("reset");
        run_workflow(&client, TwoSteps::run, (), &queue, &id).await;
        let request = temporalio_protos::temporal::api::workflowservice::v1::ResetWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: execution(&id, ""),
            reason: "again".into(),
            workflow_task_finish_event_id: 4,
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        let mut service = client.connection().workflow_service();
        service.reset_workflow_execution(tonic::Request::new(request)).await.unwrap();
        latest_result::<TwoSteps>(&client, &id).await;
        out.push(("reset to the first workflow task", history_event_types(&client, &id).await));

        let id = unique("update");
        let handle = start(&client, Counter::run, 5, &queue, &id).await;
        // Once the first task is done on both servers, each update gets a task of its own.
        wait_for_event(&client, &id, "EVENT_TYPE_WORKFLOW_TASK_COMPLETED").await;
        handle.execute_update(Counter::set, 2, WorkflowExecuteUpdateOptions::default()).await.unwrap();
        let rejected = handle.execute_update(Counter::set, -2, WorkflowExecuteUpdateOptions::default()).await;
        assert!(rejected.is_err());
        handle.signal(Counter::add, 3, WorkflowSignalOptions::default()).await.unwrap();
        get_result(&handle).await.unwrap();
        out.push(("update accepted, update rejected, signal", history_event_types(&client, &id).await));

        let id = unique("chain");
        let handle = start(&client, Chain::run, (1, 2, String::new()), &queue, &id).await;
        let first_run = handle.info().run_id.clone().unwrap();
        get_result(&handle).await.unwrap();
        out.push(("continue-as-new, first run", history_event_types_of(&client, &id, &first_run).await));
        out.push(("continue-as-new, last run", history_event_types(&client, &id).await));
        out
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn timer_signal_child_and_continue_as_new_histories_match_the_real_temporal_server() {
    let Some((ours, theirs)) = on_tempora_and_reference(scenario_histories).await else { return };
    for ((name, ours), (_, theirs)) in ours.iter().zip(theirs.iter()) {
        assert_eq!(ours, theirs, "{name}: tempora vs Temporal");
        eprintln!("{name}: {} events, identical types on both servers", ours.len());
    }
}
