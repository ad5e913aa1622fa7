//! The workflow surface beyond activities, through the official Rust SDK: timers, signals,
//! queries, updates, cancellation, termination, patching, local activities, search attributes
//! and memo, and the pending-activities limit. (Children, continue-as-new, reset and the
//! comparison with the real server: `relatives.rs`.)

mod scenarios;
mod support;

use std::time::Duration;

use futures::StreamExt;
use temporalio_client::errors::{WorkflowGetResultError, WorkflowUpdateError};
use temporalio_client::{
    WorkflowCancelOptions, WorkflowExecuteUpdateOptions, WorkflowListOptions, WorkflowQueryOptions,
    WorkflowSignalOptions,
};
use temporalio_protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_protos::temporal::api::operatorservice::v1::AddSearchAttributesRequest;

use support::{
    assert_events_include, count_events, describe, execution, get_result, history_event_types, latest_result, poll,
    run_workflow, start_options, terminate, unique, wait_for_event, with_worker,
};

use scenarios::*;

#[tokio::test]
async fn timers_cancel_and_race_an_activity() {
    let s = setup("timers").await;
    s.worker(async {
        let fast = s.start(Timers::run, 50, &unique("timers")).await;
        let fast = get_result(&fast).await.unwrap();
        assert_eq!(fast, "cancelled=true winner=activity");
        let slow = s.start(Timers::run, 5000, &s.id).await;
        let slow = get_result(&slow).await.unwrap();
        assert_eq!(slow, "cancelled=true winner=timer");
        let types = history_event_types(&s.client, &s.id).await;
        assert_events_include(
            &types,
            &["EVENT_TYPE_TIMER_CANCELED", "EVENT_TYPE_TIMER_FIRED", "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"],
        );
    })
    .await;
}

#[tokio::test]
async fn signals_sent_before_any_worker_runs_and_while_it_runs() {
    let s = setup("counter").await;
    let handle = s.start(Counter::run, 6, &s.id).await;
    // No worker yet: the signal waits in history.
    handle.signal(Counter::add, 1, WorkflowSignalOptions::default()).await.unwrap();
    s.worker(async {
        handle.signal(Counter::add, 2, WorkflowSignalOptions::default()).await.unwrap();
        handle.signal(Counter::add, 3, WorkflowSignalOptions::default()).await.unwrap();
        let result = get_result(&handle).await.unwrap();
        assert_eq!(result, "6 1,2,3");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"), 3);
    // A closed workflow takes no more signals.
    let late = handle.signal(Counter::add, 4, WorkflowSignalOptions::default()).await;
    assert!(late.is_err(), "a signal to a completed workflow must fail");
}

#[tokio::test]
async fn queries_mid_run_and_after_completion() {
    let s = setup("query").await;
    s.run(Counter::run, 10, async |handle| {
        handle.signal(Counter::add, 4, WorkflowSignalOptions::default()).await.unwrap();
        // The signal's workflow task may still be running; the query then sees 0 or 4.
        let query = async || handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap();
        let total = poll(50, Duration::from_millis(50), query, |total| *total == 4).await;
        assert_eq!(total, 4);
        handle.signal(Counter::add, 6, WorkflowSignalOptions::default()).await.unwrap();
        assert_eq!(get_result(handle).await.unwrap(), "10 4,6");
        // A closed workflow is still queried: the worker replays its history.
        let total = handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap();
        assert_eq!(total, 10);
    })
    .await;
}

#[tokio::test]
async fn an_update_returns_a_value_and_a_validator_rejects_one() {
    let s = setup("update").await;
    s.run(Counter::run, 100, async |handle| {
        let old = handle.execute_update(Counter::set, 7, WorkflowExecuteUpdateOptions::default()).await.unwrap();
        assert_eq!(old, 0);
        let rejected = handle.execute_update(Counter::set, -1, WorkflowExecuteUpdateOptions::default()).await;
        match rejected {
            Err(WorkflowUpdateError::Failed(failure)) => {
                assert!(failure.message.contains("cannot be negative"), "{failure:?}")
            }
            other => panic!("expected the validator's rejection, got {other:?}"),
        }
        assert_eq!(handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap(), 7);
        handle.signal(Counter::add, 93, WorkflowSignalOptions::default()).await.unwrap();
        assert_eq!(get_result(handle).await.unwrap(), "100 93");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"), 1, "{types:?}");
    assert_eq!(count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED"), 1, "{types:?}");
}

#[tokio::test]
async fn update_with_start_starts_or_uses_the_running_workflow() {
    use temporalio_client::errors::{WorkflowStartError, WorkflowUpdateWithStartError};
    use temporalio_client::{WorkflowIdConflictPolicy, WorkflowUpdateWithStartOptions};
    let s = setup("uws").await;
    let options = |policy| WorkflowUpdateWithStartOptions::new(&s.queue, &s.id, policy).build();
    s.worker(async {
        let use_existing = WorkflowIdConflictPolicy::UseExisting;
        let old =
            s.client.execute_update_with_start_workflow(Counter::run, 100, Counter::set, 4, options(use_existing));
        assert_eq!(old.await.unwrap(), 0, "the workflow was started, then updated");
        let old =
            s.client.execute_update_with_start_workflow(Counter::run, 100, Counter::set, 9, options(use_existing));
        assert_eq!(old.await.unwrap(), 4, "the running workflow was updated");
        let fail = WorkflowIdConflictPolicy::Fail;
        let refused = s.client.execute_update_with_start_workflow(Counter::run, 100, Counter::set, 1, options(fail));
        match refused.await {
            Err(WorkflowUpdateWithStartError::Start(WorkflowStartError::AlreadyStarted { .. })) => {}
            other => panic!("a running workflow with the Fail policy refuses the start: {other:?}"),
        }
        let handle = s.client.get_workflow_handle::<Counter>(s.id.clone());
        assert_eq!(handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap(), 9);
        terminate(&handle, "done").await;
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    let accepted = count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED");
    assert_eq!(accepted, 2, "{types:?}");
}

#[tokio::test]
async fn signal_with_start_starts_then_signals_the_running_workflow() {
    let s = setup("sws").await;
    let options = || start_options(&s.queue, &s.id);
    let first = s.client.signal_with_start_workflow(Counter::run, 5, Counter::add, 2, options()).await.unwrap();
    let second = s.client.signal_with_start_workflow(Counter::run, 5, Counter::add, 3, options()).await.unwrap();
    assert_eq!(first.info().run_id, second.info().run_id, "the second call signals the same run");
    s.worker(async {
        let result = get_result(&first).await.unwrap();
        assert_eq!(result, "5 2,3");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(
        &types[..3],
        [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED"
        ]
    );
}

#[tokio::test]
async fn cancelling_a_workflow_reaches_its_heartbeating_activity() {
    let s = setup("cancel").await;
    s.run(Cancellable::run, (), async |handle| {
        s.log.wait_for("heartbeater:started").await;
        handle.cancel(WorkflowCancelOptions::builder().reason("enough").build()).await.unwrap();
        let result = get_result(handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::Cancelled { .. })), "{result:?}");
    })
    .await;
    assert!(s.log.entries().contains(&"heartbeater:saw cancel".to_string()), "{:?}", s.log.entries());
    let types = history_event_types(&s.client, &s.id).await;
    assert_events_include(
        &types,
        &[
            "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED",
            "EVENT_TYPE_ACTIVITY_TASK_CANCELED",
        ],
    );
    assert_eq!(types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"));
}

#[tokio::test]
async fn terminating_while_an_activity_runs_drops_its_late_completion() {
    let s = setup("terminate").await;
    s.run(Slow::run, 1500, async |handle| {
        s.log.wait_for("sleep:started").await;
        terminate(handle, "stop").await;
        let result = get_result(handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::Terminated { .. })), "{result:?}");
        // The activity finishes after the termination; its completion is refused (NotFound)
        // and changes nothing.
        s.log.wait_for("sleep:done").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"));
    assert!(!types.contains(&"EVENT_TYPE_ACTIVITY_TASK_COMPLETED".to_string()), "{types:?}");
}

#[tokio::test]
async fn patching_local_activities_search_attributes_and_memo() {
    let s = setup("misc").await;
    // Custom search attributes exist once registered (as on Temporal).
    let register = AddSearchAttributesRequest {
        namespace: "default".into(),
        search_attributes: [("CustomKeywordField".to_string(), IndexedValueType::Keyword as i32)].into(),
    };
    s.client.connection().operator_service().add_search_attributes(tonic::Request::new(register)).await.unwrap();
    assert_eq!(s.worker(run_workflow(&s.client, Misc::run, (), &s.queue, &s.id)).await, "v2 local");
    assert!(s.log.entries().contains(&"echo:local".to_string()));
    let types = history_event_types(&s.client, &s.id).await;
    assert!(types.contains(&"EVENT_TYPE_MARKER_RECORDED".to_string()), "{types:?}");
    assert!(types.contains(&"EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES".to_string()), "{types:?}");
    assert!(types.contains(&"EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED".to_string()), "{types:?}");
    let info = describe(&s.client, &s.id).await.workflow_execution_info.unwrap();
    let memo = info.memo.unwrap_or_default();
    assert!(memo.fields.contains_key("note"), "{memo:?}");
    let attributes = info.search_attributes.unwrap_or_default();
    assert_eq!(attributes.indexed_fields["CustomKeywordField"].metadata["type"], b"Keyword", "{attributes:?}");
    // The upsert is visible to List at once, and so is the patch's TemporalChangeVersion.
    for query in ["CustomKeywordField = 'tempora'", "TemporalChangeVersion IS NOT NULL"] {
        let mut listed = s.client.list_workflows(query, WorkflowListOptions::default());
        let found = listed.next().await.expect("one listed").unwrap();
        assert_eq!(found.id(), s.id, "{query}");
    }
}

#[tokio::test]
async fn patched_code_keeps_old_runs_on_the_old_path_across_a_worker_restart() {
    let s = setup("versioned").await;
    let old_id = &s.id;
    let v1 = support::worker!(&s.queue, activities: [Acts(s.log.clone())], workflows: [VersionedV1]);
    with_worker(&s.client, v1, async {
        s.start(VersionedV1::run, 1500, old_id).await;
        wait_for_event(&s.client, old_id, "EVENT_TYPE_TIMER_STARTED").await;
    })
    .await;
    // A new worker with version 2 replays the old run from its history.
    let v2 = support::worker!(&s.queue, activities: [Acts(s.log.clone())], workflows: [VersionedV2]);
    with_worker(&s.client, v2, async {
        assert_eq!(latest_result::<VersionedV2>(&s.client, old_id).await, "v1");
        let new_id = unique("versioned");
        let new = s.start(VersionedV2::run, 10, &new_id).await;
        assert_eq!(get_result(&new).await.unwrap(), "v2");
        let types = history_event_types(&s.client, &new_id).await;
        assert!(types.contains(&"EVENT_TYPE_MARKER_RECORDED".to_string()), "the patch is recorded: {types:?}");
    })
    .await;
    let old_types = history_event_types(&s.client, old_id).await;
    assert!(!old_types.contains(&"EVENT_TYPE_WORKFLOW_TASK_FAILED".to_string()), "no nondeterminism: {old_types:?}");
    assert_eq!(s.log.entries().iter().filter(|e| *e == "echo:v1").count(), 1, "{:?}", s.log.entries());
}

#[tokio::test]
async fn scheduling_past_the_pending_activities_limit_fails_the_workflow_task() {
    let s = setup("fanout").await;
    s.run(FanOut::run, 2001, async |handle| {
        // The task with 2,001 activities is refused; the worker's retries are transient.
        let types = wait_for_event(&s.client, &s.id, "EVENT_TYPE_WORKFLOW_TASK_FAILED").await;
        assert!(types.contains(&"EVENT_TYPE_WORKFLOW_TASK_FAILED".to_string()), "{types:?}");
        assert!(!types.contains(&"EVENT_TYPE_ACTIVITY_TASK_SCHEDULED".to_string()), "{types:?}");
        terminate(handle, "done").await;
    })
    .await;
}

#[tokio::test]
async fn a_repeated_update_id_is_applied_once_and_can_be_polled() {
    use temporalio_protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage;
    use temporalio_protos::temporal::api::update::v1::{outcome, UpdateRef, WaitPolicy};
    use temporalio_protos::temporal::api::workflowservice::v1::PollWorkflowExecutionUpdateRequest;
    let s = setup("update-id").await;
    s.run(Counter::run, 100, async |handle| {
        let options = || WorkflowExecuteUpdateOptions::builder().update_id("set-once".to_string()).build();
        assert_eq!(handle.execute_update(Counter::set, 7, options()).await.unwrap(), 0);
        // The same update id again: the first outcome, not a second update.
        assert_eq!(handle.execute_update(Counter::set, 8, options()).await.unwrap(), 0);
        assert_eq!(handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap(), 7);
        let mut service = s.client.connection().workflow_service();
        let poll = PollWorkflowExecutionUpdateRequest {
            namespace: "default".into(),
            update_ref: Some(UpdateRef { workflow_execution: execution(&s.id, ""), update_id: "set-once".into() }),
            wait_policy: Some(WaitPolicy { lifecycle_stage: UpdateWorkflowExecutionLifecycleStage::Completed as i32 }),
            ..Default::default()
        };
        let polled =
            service.poll_workflow_execution_update(tonic::Request::new(poll.clone())).await.unwrap().into_inner();
        assert_eq!(polled.stage, UpdateWorkflowExecutionLifecycleStage::Completed as i32);
        assert!(matches!(polled.outcome.and_then(|o| o.value), Some(outcome::Value::Success(_))));
        let unknown = PollWorkflowExecutionUpdateRequest {
            update_ref: Some(UpdateRef { workflow_execution: execution(&s.id, ""), update_id: "never-sent".into() }),
            ..poll
        };
        let missing = service.poll_workflow_execution_update(tonic::Request::new(unknown)).await;
        assert_eq!(missing.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound);
        terminate(handle, "done").await;
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    let accepted = count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED");
    assert_eq!(accepted, 1, "{types:?}");
}
