//! Schedules through the official client's raw WorkflowService (the Rust SDK has no schedule
//! client): a schedule fires on its own, is durable across a server restart, catches up the
//! times missed while the server was down and never starts the same time twice. (The Python
//! SDK and CLI suites cover the rest of the API against tempora and the real server.)

mod raw;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use temporalio_client::Client;
use temporalio_protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::temporal::api::enums::v1::ScheduleOverlapPolicy;
use temporalio_protos::temporal::api::schedule::v1::{
    schedule_action, IntervalSpec, Schedule, ScheduleAction, SchedulePolicies, ScheduleSpec,
};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CreateScheduleRequest, DescribeScheduleRequest, DescribeScheduleResponse,
};
use tonic::{Code, Request};

use support::{poll, OnDisk};

fn every_second(workflow_id: &str) -> Schedule {
    Schedule {
        spec: Some(ScheduleSpec {
            interval: vec![IntervalSpec {
                interval: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                phase: None,
            }],
            ..Default::default()
        }),
        action: Some(ScheduleAction {
            action: Some(schedule_action::Action::StartWorkflow(NewWorkflowExecutionInfo {
                workflow_id: workflow_id.into(),
                workflow_type: Some(WorkflowType { name: "Scheduled".into() }),
                task_queue: Some(TaskQueue { name: "scheduled".into(), ..Default::default() }),
                ..Default::default()
            })),
        }),
        policies: Some(SchedulePolicies {
            overlap_policy: ScheduleOverlapPolicy::AllowAll as i32,
            ..Default::default()
        }),
        state: None,
    }
}

async fn describe(client: &Client, id: &str) -> Result<DescribeScheduleResponse, tonic::Status> {
    let request = DescribeScheduleRequest { namespace: "default".into(), schedule_id: id.into() };
    client.connection().workflow_service().describe_schedule(Request::new(request)).await.map(|r| r.into_inner())
}

async fn actions(client: &Client, id: &str) -> i64 {
    describe(client, id).await.unwrap().info.unwrap_or_default().action_count
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_catches_up_after_a_restart_and_never_starts_a_time_twice() {
    let (disk, server, client) = OnDisk::start("sched").await;
    let create = CreateScheduleRequest {
        namespace: "default".into(),
        schedule_id: "every-second".into(),
        schedule: Some(every_second("tick")),
        request_id: "create-1".into(),
        ..Default::default()
    };
    let mut service = client.connection().workflow_service();
    service.create_schedule(Request::new(create.clone())).await.unwrap();
    // The same request again is the same create; another is refused.
    service.create_schedule(Request::new(create.clone())).await.unwrap();
    let other = CreateScheduleRequest { request_id: "create-2".into(), ..create };
    let refused = service.create_schedule(Request::new(other)).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);

    poll(100, Duration::from_millis(100), async || actions(&client, "every-second").await, |n| *n >= 2).await;
    server.stop().await;
    // Down for three seconds: those times are caught up at the restart.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (server, client) = disk.serve().await;
    let described = poll(
        100,
        Duration::from_millis(100),
        async || describe(&client, "every-second").await.unwrap(),
        |d| d.info.as_ref().is_some_and(|i| i.action_count >= 7),
    )
    .await;
    let info = described.info.unwrap();
    assert_eq!(info.missed_catchup_window, 0);

    let started = raw::ids(&client, "TemporalScheduledById = 'every-second'").await;
    let mut seconds: Vec<i64> = started
        .iter()
        .map(|id| {
            let time = id.strip_prefix("tick-").unwrap_or_else(|| panic!("run id {id}"));
            chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp()
        })
        .collect();
    seconds.sort();
    // One run per second, none twice, none missing across the restart.
    let distinct: BTreeSet<i64> = seconds.iter().copied().collect();
    assert_eq!(distinct.len(), seconds.len(), "a time started twice: {started:?}");
    assert!(seconds.windows(2).all(|w| w[1] - w[0] == 1), "a gap in the scheduled times: {seconds:?}");
    assert!(seconds.len() as i64 >= 7 && (seconds.len() as i64) <= info.action_count + 1, "{seconds:?} vs {info:?}");
    server.stop().await;
}
