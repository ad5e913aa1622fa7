//! Schedules through the official client's raw WorkflowService (the Rust SDK has no schedule
//! client): a schedule fires on its own, is durable across a server restart, catches up the
//! times missed while the server was down and never starts the same time twice. (The Python
//! SDK and CLI suites cover the rest of the API against tempora and the real server.)

#![allow(deprecated)] // exclude_calendar: deprecated, still what users send; the server converts it.

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
    CreateScheduleRequest, DeleteScheduleRequest, DescribeScheduleRequest, DescribeScheduleResponse,
    ListScheduleMatchingTimesRequest,
};
use tonic::{Code, Request};

use support::{client, on_tempora_and_reference, poll, OnDisk};

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

/// Specs written the ways users write them: what Describe returns and the times a schedule
/// matches, on tempora and on the real server.
fn specs() -> Vec<ScheduleSpec> {
    let cron = |c: &[&str], zone: &str| ScheduleSpec {
        cron_string: c.iter().map(|s| s.to_string()).collect(),
        timezone_name: zone.into(),
        ..Default::default()
    };
    let seconds = |s: i64| prost_types::Duration { seconds: s, nanos: 0 };
    vec![
        cron(&["0 12 * * MON"], ""),
        cron(&["*/15 9-17 * * MON-FRI"], "America/New_York"),
        cron(&["30 2 * * *"], "Europe/Berlin"),
        cron(&["0 0 29 2 *", "@hourly"], ""),
        ScheduleSpec {
            // No jitter here: it is seeded by the namespace's id, which differs between servers
            // (the spec module's tests hold jittered times read from the real server).
            interval: vec![IntervalSpec { interval: Some(seconds(5400)), phase: Some(seconds(900)) }],
            ..Default::default()
        },
        ScheduleSpec {
            calendar: vec![temporalio_protos::temporal::api::schedule::v1::CalendarSpec {
                hour: "8,20".into(),
                day_of_week: "sat,SUN".into(),
                ..Default::default()
            }],
            exclude_calendar: vec![temporalio_protos::temporal::api::schedule::v1::CalendarSpec {
                hour: "20".into(),
                day_of_month: "1-7".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn specs_and_matching_times_match_the_real_temporal_server() {
    let Some((ours, theirs)) = on_tempora_and_reference(async |url: &str| {
        let client = client(url).await;
        let mut service = client.connection().workflow_service();
        let mut out = Vec::new();
        for (i, spec) in specs().into_iter().enumerate() {
            let id = format!("diff-{i}-{}", uuid::Uuid::new_v4());
            let mut schedule = every_second("diff");
            schedule.spec = Some(spec);
            schedule.state = Some(temporalio_protos::temporal::api::schedule::v1::ScheduleState {
                paused: true,
                ..Default::default()
            });
            let create = CreateScheduleRequest {
                namespace: "default".into(),
                schedule_id: id.clone(),
                schedule: Some(schedule),
                request_id: id.clone(),
                ..Default::default()
            };
            service.create_schedule(Request::new(create)).await.unwrap();
            let described = describe(&client, &id).await.unwrap();
            let times = service
                .list_schedule_matching_times(Request::new(ListScheduleMatchingTimesRequest {
                    namespace: "default".into(),
                    schedule_id: id.clone(),
                    start_time: Some(prost_types::Timestamp { seconds: 1_709_251_200, nanos: 0 }), // 2024-03-01
                    end_time: Some(prost_types::Timestamp { seconds: 1_712_102_400, nanos: 0 }),   // 2024-04-03
                }))
                .await
                .unwrap()
                .into_inner()
                .start_time;
            let schedule = described.schedule.unwrap();
            out.push((schedule.spec, schedule.policies, times));
            let delete =
                DeleteScheduleRequest { namespace: "default".into(), schedule_id: id, identity: String::new() };
            service.delete_schedule(Request::new(delete)).await.unwrap();
        }
        out
    })
    .await
    else {
        return;
    };
    for (i, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(ours.0, theirs.0, "spec {i}: Describe's spec");
        assert_eq!(ours.1, theirs.1, "spec {i}: Describe's policies");
        assert_eq!(ours.2, theirs.2, "spec {i}: matching times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_schedule_requests_get_temporal_errors() {
    use temporalio_protos::temporal::api::workflowservice::v1::{ListSchedulesRequest, UpdateScheduleRequest};
    let (server, client) = support::start_server(":memory:").await;
    let mut service = client.connection().workflow_service();
    let create = |id: &str, schedule: Schedule| CreateScheduleRequest {
        namespace: "default".into(),
        schedule_id: id.into(),
        schedule: Some(schedule),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let mut bad_cron = every_second("w");
    bad_cron.spec = Some(ScheduleSpec { cron_string: vec!["61 * * * *".into()], ..Default::default() });
    let status = service.create_schedule(Request::new(create("bad-cron", bad_cron))).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "Invalid schedule spec: Minute is not in range [0-59]")
    );
    let no_action = Schedule { action: None, ..every_second("w") };
    let status = service.create_schedule(Request::new(create("no-action", no_action))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let status = describe(&client, "missing").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let mut paused = every_second("w");
    paused.state =
        Some(temporalio_protos::temporal::api::schedule::v1::ScheduleState { paused: true, ..Default::default() });
    service.create_schedule(Request::new(create("s", paused.clone()))).await.unwrap();
    let token = describe(&client, "s").await.unwrap().conflict_token;
    let update = |token: Vec<u8>| UpdateScheduleRequest {
        namespace: "default".into(),
        schedule_id: "s".into(),
        schedule: Some(paused.clone()),
        conflict_token: token,
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    service.update_schedule(Request::new(update(token.clone()))).await.unwrap();
    let status = service.update_schedule(Request::new(update(token))).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "mismatched conflict token"));

    let list =
        ListSchedulesRequest { namespace: "default".into(), query: "WorkflowType = 'x'".into(), ..Default::default() };
    let status = service.list_schedules(Request::new(list)).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, r#"invalid query filter for schedules: cannot filter on "WorkflowType""#)
    );
    server.stop().await;
}
