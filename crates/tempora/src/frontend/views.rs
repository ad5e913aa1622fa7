//! Responses built from domain values: poll responses, history pages, describe, namespaces.

use temporalio_protos::temporal::api::common::v1::{ActivityType, WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::{
    ArchivalState, EventType, NamespaceState, PendingActivityState, PendingWorkflowTaskState,
};
use temporalio_protos::temporal::api::history::v1::{history_event::Attributes, History, HistoryEvent};
use temporalio_protos::temporal::api::namespace::v1::{namespace_info, NamespaceConfig, NamespaceInfo};
use temporalio_protos::temporal::api::replication::v1::{ClusterReplicationConfig, NamespaceReplicationConfig};
use temporalio_protos::temporal::api::workflow::v1 as wf;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;

use super::convert::history_token;
use crate::clock::proto;
use crate::engine::is_close_event;
use crate::engine::request::{ActivityStart, WorkflowTaskStart};
use crate::engine::state::RunKey;
use crate::engine::workflow::normal_queue;
use crate::history::{Execution, QueryTask};
use crate::store::NamespaceRecord;
use crate::token::TaskToken;

pub(super) const CLUSTER_NAME: &str = "active";

pub(super) fn execution_of(key: &RunKey) -> WorkflowExecution {
    WorkflowExecution { workflow_id: key.workflow_id.to_string(), run_id: key.run_id.to_string() }
}

pub(super) fn namespace(ns: &NamespaceRecord, limits: &crate::engine::Limits) -> ws::DescribeNamespaceResponse {
    ws::DescribeNamespaceResponse {
        namespace_info: Some(NamespaceInfo {
            name: if ns.deleted { ns.deleted_name() } else { ns.name.clone() },
            state: if ns.deleted { NamespaceState::Deleted as i32 } else { NamespaceState::Registered as i32 },
            description: ns.description.clone(),
            owner_email: ns.owner_email.clone(),
            id: ns.id.clone(),
            data: ns.data.clone().into_iter().collect(),
            // What tempora really does; SDKs choose their behaviour by these. With
            // `worker_poll_complete_on_shutdown` an SDK worker leaves its polls to the server at
            // shutdown (`ShutdownWorker` ends them, `matching`), so no task is lost to a poll
            // cut short; a worker whose server is down keeps retrying them until it is back.
            capabilities: Some(namespace_info::Capabilities {
                eager_workflow_start: true,
                sync_update: true,
                async_update: true,
                worker_poll_complete_on_shutdown: true,
                ..Default::default()
            }),
            // Only the limits tempora enforces: payloads in requests and commands, a start's memo.
            limits: Some(namespace_info::Limits {
                blob_size_limit_error: limits.blob_bytes_max as i64,
                memo_size_limit_error: limits.blob_bytes_max as i64,
                workflow_task_completion_size_limit_error: 0,
            }),
            supports_schedules: true,
        }),
        config: Some(NamespaceConfig {
            workflow_execution_retention_ttl: Some(proto::duration(ns.retention_ms)),
            bad_binaries: Some(Default::default()),
            history_archival_state: ArchivalState::Disabled as i32,
            visibility_archival_state: ArchivalState::Disabled as i32,
            ..Default::default()
        }),
        replication_config: Some(NamespaceReplicationConfig {
            active_cluster_name: CLUSTER_NAME.to_string(),
            clusters: vec![ClusterReplicationConfig { cluster_name: CLUSTER_NAME.to_string(), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The response to a workflow task poll.
pub(super) fn workflow_task(start: WorkflowTaskStart) -> ws::PollWorkflowTaskQueueResponse {
    let (run, task) = (&start.run, &start.task);
    ws::PollWorkflowTaskQueueResponse {
        task_token: TaskToken::new(&run.key, task.scheduled_event_id, task.attempt, false).to_bytes(),
        workflow_execution: Some(execution_of(&run.key)),
        workflow_type: Some(WorkflowType { name: run.workflow_type.clone() }),
        previous_started_event_id: task.previous_started_event_id,
        started_event_id: task.started_event_id,
        attempt: task.attempt,
        history: Some(History { events: start.history }),
        workflow_execution_task_queue: Some(normal_queue(&run.task_queue)),
        scheduled_time: Some(proto::timestamp(task.scheduled_time_ms)),
        started_time: Some(proto::timestamp(task.started_time_ms)),
        messages: start.messages,
        ..Default::default()
    }
}

/// A query task: the run's full history and the query.
pub(super) fn query_task(q: QueryTask) -> ws::PollWorkflowTaskQueueResponse {
    ws::PollWorkflowTaskQueueResponse {
        task_token: TaskToken::query(&q.run.key, &q.query_id).to_bytes(),
        workflow_execution: Some(execution_of(&q.run.key)),
        workflow_type: Some(WorkflowType { name: q.run.workflow_type.clone() }),
        previous_started_event_id: q.previous_started_event_id,
        started_event_id: 0,
        attempt: 1,
        history: Some(History { events: q.history }),
        query: Some(q.query),
        workflow_execution_task_queue: Some(normal_queue(&q.run.task_queue)),
        ..Default::default()
    }
}

pub(super) fn activity_task(start: ActivityStart) -> ws::PollActivityTaskQueueResponse {
    let (run, a, scheduled) = (start.run, start.activity, start.scheduled);
    ws::PollActivityTaskQueueResponse {
        task_token: TaskToken::new(&run.key, a.scheduled_event_id, a.attempt, true).to_bytes(),
        workflow_namespace: run.key.namespace.to_string(),
        workflow_type: Some(WorkflowType { name: run.workflow_type.clone() }),
        workflow_execution: Some(execution_of(&run.key)),
        activity_type: Some(ActivityType { name: a.activity_type.clone() }),
        activity_id: a.activity_id.clone(),
        header: scheduled.header,
        input: scheduled.input,
        heartbeat_details: a.heartbeat_details.as_ref().map(|d| d.decode()),
        scheduled_time: Some(proto::timestamp(a.scheduled_time_ms)),
        current_attempt_scheduled_time: Some(proto::timestamp(a.attempt_scheduled_time_ms)),
        started_time: Some(proto::timestamp(a.started_time_ms)),
        attempt: a.attempt,
        schedule_to_close_timeout: Some(proto::duration(a.schedule_to_close_ms)),
        start_to_close_timeout: Some(proto::duration(a.start_to_close_ms)),
        heartbeat_timeout: Some(proto::duration(a.heartbeat_ms)),
        retry_policy: Some(a.retry.to_proto()),
        priority: scheduled.priority,
        ..Default::default()
    }
}

/// What a history read asks for.
#[derive(Clone, Copy)]
pub(super) struct HistoryRead {
    pub close_only: bool,
    pub from_event_id: i64,
    pub page_size: usize,
    pub wait: bool,
}

/// The page to answer with, or `None` if a long poll should wait for more.
pub(super) fn history_page(exec: &Execution, read: HistoryRead) -> Option<ws::GetWorkflowExecutionHistoryResponse> {
    let respond = |events: Vec<HistoryEvent>, token: Vec<u8>| ws::GetWorkflowExecutionHistoryResponse {
        history: Some(History { events }),
        next_page_token: token,
        ..Default::default()
    };
    let closed = !exec.state.is_open();
    if read.close_only {
        if closed {
            let close: Vec<HistoryEvent> = exec.history.iter().rev().find(is_close_event).into_iter().collect();
            return Some(respond(close, Vec::new()));
        }
        return (!read.wait).then(|| respond(Vec::new(), Vec::new()));
    }
    let total = exec.history.len() as i64;
    if read.from_event_id > total {
        if read.wait && !closed {
            return None;
        }
        return Some(respond(Vec::new(), Vec::new()));
    }
    let start = (read.from_event_id - 1) as usize;
    let end = (start + read.page_size).min(exec.history.len());
    let events = exec.history.range(start..end);
    let more = (end as i64) < total || (read.wait && !closed);
    Some(respond(events, if more { history_token(end as i64 + 1) } else { Vec::new() }))
}

/// An empty page that lets the caller continue polling from the same event.
pub(super) fn history_poll_expired(from_event_id: i64) -> ws::GetWorkflowExecutionHistoryResponse {
    ws::GetWorkflowExecutionHistoryResponse {
        history: Some(History { events: Vec::new() }),
        next_page_token: history_token(from_event_id),
        ..Default::default()
    }
}

/// Where a reset may go: the first completed workflow task of each build that completed one.
fn reset_points(exec: &Execution) -> Option<wf::ResetPoints> {
    let mut points: Vec<wf::ResetPointInfo> = Vec::new();
    for event in exec.history.iter() {
        let Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) = &event.attributes else { continue };
        let build_id = a.worker_version.as_ref().map(|v| v.build_id.clone()).unwrap_or_default();
        if points.iter().any(|p| p.build_id == build_id && p.binary_checksum == a.binary_checksum) {
            continue;
        }
        points.push(wf::ResetPointInfo {
            build_id,
            binary_checksum: a.binary_checksum.clone(),
            run_id: exec.state.key.run_id.to_string(),
            first_workflow_task_completed_id: event.event_id,
            create_time: event.event_time,
            resettable: true,
            ..Default::default()
        });
    }
    (!points.is_empty()).then_some(wf::ResetPoints { points })
}

/// Deadlines and the request that started the run.
fn extended_info(exec: &Execution) -> wf::WorkflowExecutionExtendedInfo {
    let s = &exec.state;
    let mut request_id_infos = std::collections::HashMap::new();
    if !s.create_request_id.is_empty() {
        request_id_infos.insert(
            s.create_request_id.clone(),
            wf::RequestIdInfo { event_type: EventType::WorkflowExecutionStarted as i32, event_id: 1, buffered: false },
        );
    }
    wf::WorkflowExecutionExtendedInfo {
        execution_expiration_time: (s.execution_timeout_ms > 0)
            .then(|| proto::timestamp(s.execution_start() + s.execution_timeout_ms)),
        run_expiration_time: s.run_deadline_ms().map(proto::timestamp),
        cancel_requested: s.cancel_requested,
        original_start_time: Some(proto::timestamp(s.start_time_ms)),
        request_id_infos,
        ..Default::default()
    }
}

pub(super) fn describe(exec: &Execution) -> ws::DescribeWorkflowExecutionResponse {
    let s = &exec.state;
    let started = exec.history.started().cloned().unwrap_or_default();
    // The last options update (one during a workflow task waits in the buffer), else the start.
    let buffered = s.buffered_events.iter().map(|e| e.decode::<HistoryEvent>());
    let priority = buffered
        .rev()
        .chain(exec.history.iter().rev())
        .find_map(|e| match e.attributes {
            Some(Attributes::WorkflowExecutionOptionsUpdatedEventAttributes(a)) => a.priority,
            _ => None,
        })
        .or_else(|| started.priority.clone());
    let pending_activities = s
        .activities
        .values()
        .map(|a| wf::PendingActivityInfo {
            activity_id: a.activity_id.clone(),
            activity_type: Some(ActivityType { name: a.activity_type.clone() }),
            state: if a.cancel_requested {
                PendingActivityState::CancelRequested as i32
            } else if a.paused.is_some() && a.is_started() {
                PendingActivityState::PauseRequested as i32
            } else if a.paused.is_some() {
                PendingActivityState::Paused as i32
            } else if a.is_started() {
                PendingActivityState::Started as i32
            } else {
                PendingActivityState::Scheduled as i32
            },
            heartbeat_details: a.heartbeat_details.as_ref().map(|d| d.decode()),
            last_heartbeat_time: (a.last_heartbeat_ms > 0).then(|| proto::timestamp(a.last_heartbeat_ms)),
            last_started_time: (a.started_time_ms > 0).then(|| proto::timestamp(a.started_time_ms)),
            attempt: a.attempt,
            maximum_attempts: a.retry.maximum_attempts,
            scheduled_time: Some(proto::timestamp(a.attempt_scheduled_time_ms)),
            expiration_time: a.schedule_to_close_deadline_ms().map(proto::timestamp),
            last_failure: a.last_failure.as_ref().map(|f| f.decode()),
            last_worker_identity: a.started_identity.clone(),
            paused: a.paused.is_some(),
            pause_info: a.paused.as_ref().map(|p| {
                use wf::pending_activity_info::{pause_info, PauseInfo};
                PauseInfo {
                    pause_time: Some(proto::timestamp(p.time_ms)),
                    paused_by: Some(pause_info::PausedBy::Manual(pause_info::Manual {
                        identity: p.identity.clone(),
                        reason: p.reason.clone(),
                    })),
                }
            }),
            activity_options: Some(crate::engine::activity_ops::activity_options(a)),
            next_attempt_schedule_time: (a.backoff_until_ms > 0).then(|| proto::timestamp(a.backoff_until_ms)),
            ..Default::default()
        })
        .collect();
    let pending_workflow_task = s.workflow_task.as_ref().map(|w| wf::PendingWorkflowTaskInfo {
        state: if w.is_started() {
            PendingWorkflowTaskState::Started as i32
        } else {
            PendingWorkflowTaskState::Scheduled as i32
        },
        scheduled_time: Some(proto::timestamp(w.scheduled_time_ms)),
        original_scheduled_time: Some(proto::timestamp(w.scheduled_time_ms)),
        started_time: w.is_started().then(|| proto::timestamp(w.started_time_ms)),
        attempt: w.attempt,
    });
    ws::DescribeWorkflowExecutionResponse {
        execution_config: Some(wf::WorkflowExecutionConfig {
            task_queue: Some(normal_queue(&s.task_queue)),
            workflow_execution_timeout: (s.execution_timeout_ms > 0).then(|| proto::duration(s.execution_timeout_ms)),
            workflow_run_timeout: Some(proto::duration(s.run_timeout_ms)),
            default_workflow_task_timeout: Some(proto::duration(s.workflow_task_timeout_ms)),
            ..Default::default()
        }),
        workflow_extended_info: Some(extended_info(exec)),
        workflow_execution_info: Some(wf::WorkflowExecutionInfo {
            history_length: exec.history.len() as i64,
            auto_reset_points: reset_points(exec),
            most_recent_worker_version_stamp: exec.history.iter().rev().find_map(|e| match &e.attributes {
                Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) => a.worker_version.clone(),
                _ => None,
            }),
            memo: s.memo.as_ref().map(|m| m.decode()).or(started.memo),
            search_attributes: s.search_attributes.as_ref().map(|m| m.decode()).or(started.search_attributes),
            priority,
            versioning_info: versioning_info(&s.versioning),
            worker_deployment_name: s
                .versioning
                .version
                .as_ref()
                .map(|v| v.deployment_name.clone())
                .unwrap_or_default(),
            ..crate::visibility::execution_info(s)
        }),
        pending_activities,
        pending_workflow_task,
        pending_children: s
            .children
            .values()
            .map(|c| wf::PendingChildExecutionInfo {
                workflow_id: c.workflow_id.clone(),
                run_id: c.run_id.clone(),
                workflow_type_name: c.workflow_type.clone(),
                initiated_id: c.initiated_event_id,
                parent_close_policy: c.parent_close_policy.number(),
            })
            .collect(),
        pending_nexus_operations: s.nexus_operations.values().map(pending_nexus_operation).collect(),
        ..Default::default()
    }
}

/// A run's worker versioning as Describe shows it (`None` for an unversioned run).
#[allow(deprecated)]
fn versioning_info(v: &crate::engine::state::RunVersioning) -> Option<wf::WorkflowExecutionVersioningInfo> {
    (!v.is_default()).then(|| wf::WorkflowExecutionVersioningInfo {
        behavior: v.behavior,
        deployment_version: v.version.as_ref().map(|d| d.to_proto()),
        version: v.version.as_ref().map(|d| d.joined()).unwrap_or_default(),
        versioning_override: crate::engine::versioning::override_of(v),
        ..Default::default()
    })
}

fn pending_nexus_operation(op: &crate::engine::state::NexusOperation) -> wf::PendingNexusOperationInfo {
    use temporalio_protos::temporal::api::enums::v1::{NexusOperationCancellationState, PendingNexusOperationState};
    let state = if op.is_started() {
        PendingNexusOperationState::Started
    } else if op.backoff_until_ms > 0 {
        PendingNexusOperationState::BackingOff
    } else {
        PendingNexusOperationState::Scheduled
    };
    #[allow(deprecated)]
    wf::PendingNexusOperationInfo {
        endpoint: op.endpoint.clone(),
        service: op.service.clone(),
        operation: op.operation.clone(),
        operation_id: op.operation_token.clone().unwrap_or_default(),
        operation_token: op.operation_token.clone().unwrap_or_default(),
        schedule_to_close_timeout: (op.schedule_to_close_ms > 0).then(|| proto::duration(op.schedule_to_close_ms)),
        scheduled_time: Some(proto::timestamp(op.scheduled_time_ms)),
        state: state as i32,
        attempt: op.attempt,
        last_attempt_complete_time: (op.last_attempt_complete_ms > 0)
            .then(|| proto::timestamp(op.last_attempt_complete_ms)),
        last_attempt_failure: op.last_failure.as_ref().map(|f| f.decode()),
        next_attempt_schedule_time: (op.backoff_until_ms > 0).then(|| proto::timestamp(op.backoff_until_ms)),
        cancellation_info: op.cancel.as_ref().map(|c| wf::NexusOperationCancellationInfo {
            requested_time: Some(proto::timestamp(c.requested_time_ms)),
            state: if c.done {
                NexusOperationCancellationState::Succeeded as i32
            } else if c.backoff_until_ms > 0 {
                NexusOperationCancellationState::BackingOff as i32
            } else {
                NexusOperationCancellationState::Scheduled as i32
            },
            attempt: c.attempt,
            last_attempt_failure: c.last_failure.as_ref().map(|f| f.decode()),
            next_attempt_schedule_time: (c.backoff_until_ms > 0).then(|| proto::timestamp(c.backoff_until_ms)),
            ..Default::default()
        }),
        scheduled_event_id: op.scheduled_event_id,
        ..Default::default()
    }
}
