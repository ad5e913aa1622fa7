//! Worker RPCs: polling task queues, and answering workflow tasks and activity tasks (by task
//! token, or by workflow and activity id — one path for both, `ActivityRef`).

use temporalio_protos::temporal::api::command::v1::command::Attributes;
use temporalio_protos::temporal::api::enums::v1::{TaskQueueKind, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::convert::{check_id, TASK_POLL_TIMEOUT};
use super::{views, Frontend};
use crate::clock::{proto, Millis};
use crate::engine::activity::HeartbeatAnswer;
use crate::engine::request::{ActivityAction, ActivityRef, Reply, Request as Change};
use crate::engine::state::{RunKey, Sticky};
use crate::engine::workflow_task::CompleteWorkflowTask;
use crate::error::{Error, Result};
use crate::history::{Outcome, Poll, Polled};
use crate::matching::TaskKind;
use crate::token::TaskToken;

const STICKY_SCHEDULE_TO_START_DEFAULT_MS: Millis = 5_000;

/// An activity RPC's target: the run and the activity in it.
struct ActivityTarget {
    run: RunKey,
    activity: ActivityRef,
}

/// A worker's build id: from its deployment options, else its older versioning field, else
/// its binary checksum (where sdk-core, for Python and TypeScript, sends it); empty if none.
fn build_id(deployment: Option<String>, versioning: Option<String>, binary_checksum: &str) -> String {
    deployment
        .filter(|b| !b.is_empty())
        .or(versioning.filter(|b| !b.is_empty()))
        .unwrap_or_else(|| binary_checksum.to_string())
}

/// A versioned worker's deployment version (`None` for an unversioned worker).
pub(super) fn versioned(
    options: Option<&temporalio_protos::temporal::api::deployment::v1::WorkerDeploymentOptions>,
) -> Option<crate::engine::state::DeploymentVersion> {
    use temporalio_protos::temporal::api::enums::v1::WorkerVersioningMode;
    options
        .filter(|o| o.worker_versioning_mode == WorkerVersioningMode::Versioned as i32 && !o.deployment_name.is_empty())
        .map(|o| crate::engine::state::DeploymentVersion {
            deployment_name: o.deployment_name.clone(),
            build_id: o.build_id.clone(),
        })
}

impl Frontend {
    /// A versioned worker's poll: its version is recorded in its deployment (committed first
    /// if new), and it polls its version's own queue.
    pub(super) async fn versioned_poll(
        &self,
        poll: &mut Poll,
        options: Option<&temporalio_protos::temporal::api::deployment::v1::WorkerDeploymentOptions>,
    ) -> Result<()> {
        let Some(version) = versioned(options) else { return Ok(()) };
        if poll.sticky {
            return Ok(()); // a worker's own queue: versioned by who polls it
        }
        self.svc.deployment_poller(&poll.namespace, &version, &poll.task_queue, poll.kind).await?;
        poll.task_queue = crate::deployments::versioned_queue(&poll.task_queue, Some(&version));
        Ok(())
    }

    pub(super) fn poll_of(
        &self,
        namespace: String,
        task_queue: Option<temporalio_protos::temporal::api::taskqueue::v1::TaskQueue>,
        kind: TaskKind,
        identity: String,
        worker: String,
    ) -> Result<Poll> {
        self.svc.namespaces.get(&namespace)?;
        let task_queue = task_queue.unwrap_or_default();
        check_id(&task_queue.name, "TaskQueue")?;
        let sticky = task_queue.kind == TaskQueueKind::Sticky as i32;
        Ok(Poll {
            namespace,
            task_queue: task_queue.name,
            kind,
            identity,
            sticky,
            worker,
            build_id: String::new(),
            timeout: TASK_POLL_TIMEOUT,
        })
    }

    pub async fn poll_workflow_task_queue(
        &self,
        r: Request<ws::PollWorkflowTaskQueueRequest>,
    ) -> Result<ws::PollWorkflowTaskQueueResponse> {
        let budget = super::convert::poll_budget(r.metadata());
        let r = r.into_inner();
        let mut poll =
            self.poll_of(r.namespace, r.task_queue, TaskKind::Workflow, r.identity, r.worker_instance_key)?;
        poll.timeout = budget;
        self.versioned_poll(&mut poll, r.deployment_options.as_ref()).await?;
        poll.build_id = build_id(
            r.deployment_options.map(|d| d.build_id),
            r.worker_version_capabilities.map(|c| c.build_id),
            &r.binary_checksum,
        );
        Ok(match self.svc.poll_task(&poll).await? {
            Some(Polled::WorkflowTask(start)) => views::workflow_task(*start),
            Some(Polled::Query(query)) => views::query_task(*query),
            Some(_) => return Err(Error::Internal("another kind of task on a workflow task queue".into())),
            None => Default::default(),
        })
    }

    pub async fn poll_activity_task_queue(
        &self,
        r: Request<ws::PollActivityTaskQueueRequest>,
    ) -> Result<ws::PollActivityTaskQueueResponse> {
        let budget = super::convert::poll_budget(r.metadata());
        let r = r.into_inner();
        let mut poll =
            self.poll_of(r.namespace, r.task_queue, TaskKind::Activity, r.identity, r.worker_instance_key)?;
        poll.timeout = budget;
        self.versioned_poll(&mut poll, r.deployment_options.as_ref()).await?;
        // The worker's own dispatch limit (`max_task_queue_activities_per_second`); the latest
        // poll's wins, and a config's rate overrides it.
        let worker_rate = r.task_queue_metadata.and_then(|m| m.max_tasks_per_second);
        self.svc.matching.set_worker_rate(&poll.namespace, &poll.task_queue, poll.kind, worker_rate);
        Ok(match self.svc.poll_task(&poll).await? {
            Some(Polled::Activity(start)) => views::activity_task(*start),
            Some(_) => return Err(Error::Internal("a workflow task on an activity task queue".into())),
            None => Default::default(),
        })
    }

    pub async fn respond_workflow_task_completed(
        &self,
        r: Request<ws::RespondWorkflowTaskCompletedRequest>,
    ) -> Result<ws::RespondWorkflowTaskCompletedResponse> {
        let r = r.into_inner();
        let token = TaskToken::parse_in(&r.task_token, false, &r.namespace)?;
        self.svc.namespaces.get(&token.namespace)?;
        let eager_activities: Vec<String> = r
            .commands
            .iter()
            .filter_map(|c| match &c.attributes {
                Some(Attributes::ScheduleActivityTaskCommandAttributes(a)) if a.request_eager_execution => {
                    Some(a.activity_id.clone())
                }
                _ => None,
            })
            .collect();
        let identity = r.identity.clone();
        let deployment = versioned(r.deployment_options.as_ref());
        // The endpoints its Nexus commands name, resolved here (the engine reads no registry).
        let named: Vec<&str> = r
            .commands
            .iter()
            .filter_map(|c| match &c.attributes {
                Some(Attributes::ScheduleNexusOperationCommandAttributes(a)) => Some(a.endpoint.as_str()),
                _ => None,
            })
            .collect();
        let unknown = named.iter().any(|n| self.svc.endpoints.id_of_name(n).is_none());
        if unknown && self.svc.cluster().is_some() {
            // Created on another node a moment ago, perhaps: its change may not have reached
            // this node yet.
            self.svc.reload_routing_records().await;
        }
        let nexus_endpoints = named
            .into_iter()
            .filter_map(|name| self.svc.endpoints.id_of_name(name).map(|id| (name.to_string(), id)))
            .collect();
        let sticky = r.sticky_attributes.and_then(|a| {
            let task_queue = a.worker_task_queue.map(|q| q.name).filter(|n| !n.is_empty())?;
            let ms = proto::duration_ms(a.schedule_to_start_timeout.as_ref());
            let schedule_to_start_ms = if ms > 0 { ms } else { STICKY_SCHEDULE_TO_START_DEFAULT_MS };
            Some(Sticky { task_queue, schedule_to_start_ms })
        });
        let complete = CompleteWorkflowTask {
            sticky,
            scheduled_event_id: token.scheduled_event_id,
            attempt: token.attempt,
            commands: r.commands,
            identity: r.identity,
            build_id: build_id(
                r.deployment_options.map(|d| d.build_id),
                r.worker_version_stamp.map(|s| s.build_id),
                &r.binary_checksum,
            ),
            binary_checksum: r.binary_checksum,
            sdk_metadata: r.sdk_metadata,
            metering_metadata: r.metering_metadata,
            force_create_new_workflow_task: r.force_create_new_workflow_task,
            messages: r.messages,
            update_requests: Default::default(),
            updates_waiting: false,
            nexus_endpoints,
            deployment,
            versioning_behavior: r.versioning_behavior,
        };
        let run = token.run();
        let request = Change::CompleteWorkflowTask(Box::new(complete));
        let (outcome, eager) = match eager_activities.is_empty() {
            true => (self.svc.execute(&run, request).await?, Vec::new()),
            false => self.svc.complete_with_eager_activities(&run, request, eager_activities, identity).await?,
        };
        match outcome {
            Outcome::Applied(Reply::WorkflowTaskCompleted(completed)) => Ok(ws::RespondWorkflowTaskCompletedResponse {
                reset_history_event_id: completed?.reset_history_event_id,
                activity_tasks: eager
                    .into_iter()
                    .filter_map(|p| match p {
                        Polled::Activity(start) => Some(views::activity_task(*start)),
                        _ => None,
                    })
                    .collect(),
                ..Default::default()
            }),
            _ => Ok(ws::RespondWorkflowTaskCompletedResponse::default()),
        }
    }

    pub async fn respond_workflow_task_failed(
        &self,
        r: Request<ws::RespondWorkflowTaskFailedRequest>,
    ) -> Result<ws::RespondWorkflowTaskFailedResponse> {
        let r = r.into_inner();
        let token = TaskToken::parse_in(&r.task_token, false, &r.namespace)?;
        self.svc.namespaces.get(&token.namespace)?;
        let fail = Change::FailWorkflowTask {
            scheduled_event_id: token.scheduled_event_id,
            attempt: token.attempt,
            cause: WorkflowTaskFailedCause::try_from(r.cause).unwrap_or(WorkflowTaskFailedCause::Unspecified),
            failure: r.failure,
            identity: r.identity,
        };
        self.svc.execute_done(&token.run(), fail).await?;
        Ok(ws::RespondWorkflowTaskFailedResponse {})
    }

    /// The activity a task token names.
    fn by_token(&self, token: &[u8], namespace: &str) -> Result<ActivityTarget> {
        let token = TaskToken::parse_in(token, true, namespace)?;
        self.svc.namespaces.get(&token.namespace)?;
        let activity = ActivityRef::Token { scheduled_event_id: token.scheduled_event_id, attempt: token.attempt };
        Ok(ActivityTarget { run: token.run(), activity })
    }

    /// The activity a `…ById` request names (in the workflow id's current run if no run id).
    async fn by_id(
        &self,
        namespace: &str,
        workflow_id: &str,
        run_id: &str,
        activity_id: &str,
    ) -> Result<ActivityTarget> {
        self.svc.namespaces.get(namespace)?;
        check_id(activity_id, "ActivityId")?;
        let run = self.svc.resolve_run(namespace, workflow_id, run_id).await?;
        Ok(ActivityTarget { run, activity: ActivityRef::ById(activity_id.to_string()) })
    }

    /// Applies what a worker reports about an activity; returns whether its cancellation was
    /// requested (for heartbeats).
    async fn on_activity(&self, target: ActivityTarget, action: ActivityAction) -> Result<HeartbeatAnswer> {
        let change = Change::Activity { activity: target.activity, action };
        match self.svc.execute(&target.run, change).await? {
            Outcome::Applied(Reply::Heartbeat(answer)) => Ok(answer),
            Outcome::Applied(_) => Ok(HeartbeatAnswer::default()),
            Outcome::Unchanged => Err(Error::not_found("activity task not found")),
        }
    }

    pub async fn respond_activity_task_completed(
        &self,
        r: Request<ws::RespondActivityTaskCompletedRequest>,
    ) -> Result<ws::RespondActivityTaskCompletedResponse> {
        let r = r.into_inner();
        self.checks().payloads(&r.result)?;
        let target = self.by_token(&r.task_token, &r.namespace)?;
        self.on_activity(target, ActivityAction::Complete { result: r.result, identity: r.identity }).await?;
        Ok(Default::default())
    }

    pub async fn respond_activity_task_completed_by_id(
        &self,
        r: Request<ws::RespondActivityTaskCompletedByIdRequest>,
    ) -> Result<ws::RespondActivityTaskCompletedByIdResponse> {
        let r = r.into_inner();
        self.checks().payloads(&r.result)?;
        let target = self.by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id).await?;
        self.on_activity(target, ActivityAction::Complete { result: r.result, identity: r.identity }).await?;
        Ok(Default::default())
    }

    fn fail_action(
        &self,
        failure: Option<temporalio_protos::temporal::api::failure::v1::Failure>,
        last_heartbeat_details: Option<temporalio_protos::temporal::api::common::v1::Payloads>,
        identity: String,
    ) -> Result<ActivityAction> {
        let failure = failure.ok_or_else(|| Error::invalid("Failure is not set on request."))?;
        self.checks().blob(prost::Message::encoded_len(&failure))?;
        Ok(ActivityAction::Fail { failure: Box::new(failure), last_heartbeat_details, identity })
    }

    pub async fn respond_activity_task_failed(
        &self,
        r: Request<ws::RespondActivityTaskFailedRequest>,
    ) -> Result<ws::RespondActivityTaskFailedResponse> {
        let r = r.into_inner();
        let action = self.fail_action(r.failure, r.last_heartbeat_details, r.identity)?;
        let target = self.by_token(&r.task_token, &r.namespace)?;
        self.on_activity(target, action).await?;
        Ok(Default::default())
    }

    pub async fn respond_activity_task_failed_by_id(
        &self,
        r: Request<ws::RespondActivityTaskFailedByIdRequest>,
    ) -> Result<ws::RespondActivityTaskFailedByIdResponse> {
        let r = r.into_inner();
        let action = self.fail_action(r.failure, r.last_heartbeat_details, r.identity)?;
        let target = self.by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id).await?;
        self.on_activity(target, action).await?;
        Ok(Default::default())
    }

    pub async fn respond_activity_task_canceled(
        &self,
        r: Request<ws::RespondActivityTaskCanceledRequest>,
    ) -> Result<ws::RespondActivityTaskCanceledResponse> {
        let r = r.into_inner();
        self.checks().payloads(&r.details)?;
        let target = self.by_token(&r.task_token, &r.namespace)?;
        self.on_activity(target, ActivityAction::Cancel { details: r.details, identity: r.identity }).await?;
        Ok(Default::default())
    }

    pub async fn respond_activity_task_canceled_by_id(
        &self,
        r: Request<ws::RespondActivityTaskCanceledByIdRequest>,
    ) -> Result<ws::RespondActivityTaskCanceledByIdResponse> {
        let r = r.into_inner();
        self.checks().payloads(&r.details)?;
        let target = self.by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id).await?;
        self.on_activity(target, ActivityAction::Cancel { details: r.details, identity: r.identity }).await?;
        Ok(Default::default())
    }

    pub async fn record_activity_task_heartbeat(
        &self,
        r: Request<ws::RecordActivityTaskHeartbeatRequest>,
    ) -> Result<ws::RecordActivityTaskHeartbeatResponse> {
        let r = r.into_inner();
        self.checks().payloads(&r.details)?;
        let target = self.by_token(&r.task_token, &r.namespace)?;
        let answer = self.on_activity(target, ActivityAction::Heartbeat { details: r.details }).await?;
        Ok(ws::RecordActivityTaskHeartbeatResponse {
            cancel_requested: answer.cancel_requested,
            activity_paused: answer.paused,
            activity_reset: answer.reset,
        })
    }

    pub async fn record_activity_task_heartbeat_by_id(
        &self,
        r: Request<ws::RecordActivityTaskHeartbeatByIdRequest>,
    ) -> Result<ws::RecordActivityTaskHeartbeatByIdResponse> {
        let r = r.into_inner();
        self.checks().payloads(&r.details)?;
        let target = self.by_id(&r.namespace, &r.workflow_id, &r.run_id, &r.activity_id).await?;
        let answer = self.on_activity(target, ActivityAction::Heartbeat { details: r.details }).await?;
        Ok(ws::RecordActivityTaskHeartbeatByIdResponse {
            cancel_requested: answer.cancel_requested,
            activity_paused: answer.paused,
            activity_reset: answer.reset,
        })
    }

    pub async fn shutdown_worker(&self, r: Request<ws::ShutdownWorkerRequest>) -> Result<ws::ShutdownWorkerResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let queues: Vec<&str> =
            [r.task_queue.as_str(), r.sticky_task_queue.as_str()].into_iter().filter(|q| !q.is_empty()).collect();
        self.svc.worker_shut_down(&r.worker_instance_key, &queues);
        if !r.sticky_task_queue.is_empty() {
            self.svc.sticky_queue_gone(&r.namespace, &r.sticky_task_queue);
        }
        Ok(ws::ShutdownWorkerResponse::default())
    }
}
