//! Schedule precision: how late scheduled runs start. One every-second schedule (ALLOW_ALL,
//! no jitter, no worker needed) runs for a while on tempora and on the reference server; each
//! run's lateness is its start time minus its nominal time (the id's suffix).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use temporalio_client::Client;
use temporalio_protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::temporal::api::enums::v1::ScheduleOverlapPolicy;
use temporalio_protos::temporal::api::schedule::v1::{
    schedule_action, IntervalSpec, Schedule, ScheduleAction, SchedulePolicies, ScheduleSpec,
};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CreateScheduleRequest, DeleteScheduleRequest, ListWorkflowExecutionsRequest,
};

use super::{connect, start_reference, start_tempora, stop_reference, tempora_binary};

pub struct Options {
    pub seconds: u64,
    pub tempora: Option<PathBuf>,
    pub reference: PathBuf,
}

/// Lateness in ms of each run of an every-second schedule that ran `seconds` seconds.
async fn lateness(client: &Client, seconds: u64) -> Result<Vec<f64>> {
    let id = format!("precision-{}", uuid::Uuid::new_v4());
    let schedule = Schedule {
        spec: Some(ScheduleSpec {
            interval: vec![IntervalSpec {
                interval: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                phase: None,
            }],
            ..Default::default()
        }),
        action: Some(ScheduleAction {
            action: Some(schedule_action::Action::StartWorkflow(NewWorkflowExecutionInfo {
                workflow_id: id.clone(),
                workflow_type: Some(WorkflowType { name: "Precision".into() }),
                task_queue: Some(TaskQueue { name: "precision".into(), ..Default::default() }),
                ..Default::default()
            })),
        }),
        policies: Some(SchedulePolicies {
            overlap_policy: ScheduleOverlapPolicy::AllowAll as i32,
            ..Default::default()
        }),
        state: None,
    };
    let mut service = client.connection().workflow_service();
    let create = CreateScheduleRequest {
        namespace: "default".into(),
        schedule_id: id.clone(),
        schedule: Some(schedule),
        request_id: id.clone(),
        ..Default::default()
    };
    service.create_schedule(tonic::Request::new(create)).await?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let delete =
        DeleteScheduleRequest { namespace: "default".into(), schedule_id: id.clone(), identity: String::new() };
    service.delete_schedule(tonic::Request::new(delete)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // the reference's visibility lags
    let mut out = Vec::new();
    let mut runs = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = ListWorkflowExecutionsRequest {
            namespace: "default".into(),
            page_size: 1000,
            next_page_token: token,
            query: format!("WorkflowId STARTS_WITH '{id}-'"),
        };
        let page = service.list_workflow_executions(tonic::Request::new(request)).await?.into_inner();
        runs.extend(page.executions);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    for item in runs {
        let workflow_id = item.execution.as_ref().map(|e| e.workflow_id.clone()).unwrap_or_default();
        let suffix = workflow_id.strip_prefix(&format!("{id}-")).context("run id")?.to_string();
        let nominal = chrono_like_parse(&suffix).with_context(|| suffix.clone())?;
        let started = item.start_time.context("start time")?;
        let started_ms = started.seconds as f64 * 1000.0 + started.nanos as f64 / 1e6;
        out.push(started_ms - nominal as f64 * 1000.0);
        let mut terminate = client.connection().workflow_service();
        let _ = terminate
            .terminate_workflow_execution(tonic::Request::new(
                temporalio_protos::temporal::api::workflowservice::v1::TerminateWorkflowExecutionRequest {
                    namespace: "default".into(),
                    workflow_execution: Some(temporalio_protos::temporal::api::common::v1::WorkflowExecution {
                        workflow_id: workflow_id.clone(),
                        run_id: String::new(),
                    }),
                    reason: "bench".into(),
                    ..Default::default()
                },
            ))
            .await;
    }
    out.sort_by(|a, b| a.total_cmp(b));
    Ok(out)
}

/// `2024-03-01T10:00:05Z` → Unix seconds (UTC, second precision, as schedules name runs).
fn chrono_like_parse(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let t: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
}

fn summary(name: &str, late: &[f64]) {
    if late.is_empty() {
        println!("{name:<10} no runs");
        return;
    }
    let p = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<10} runs {:>4}  lateness ms: min {:>7.1}  p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1}",
        late.len(),
        late[0],
        p(0.5),
        p(0.9),
        p(0.99),
        late[late.len() - 1]
    );
}

pub async fn run(options: Options) -> Result<()> {
    let binary = tempora_binary(options.tempora)?;
    let dir = std::env::temp_dir().join(format!("tempora-bench-sched-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("schedules.db").to_str().context("path")?.to_string();
    let server = start_tempora(&binary, &db).await?;
    let ours = lateness(&connect(&server.address).await?, options.seconds).await?;
    drop(server);
    let port = 7311;
    let (address, _) = start_reference(&options.reference, port)?;
    let theirs = lateness(&connect(&address).await?, options.seconds).await;
    stop_reference(&options.reference, port);
    println!("every-second schedule for {} s, idle server (start time - nominal time):", options.seconds);
    summary("tempora", &ours);
    summary("reference", &theirs?);
    Ok(())
}
