//! Operator RPCs on pending activities: `PauseActivity`, `UnpauseActivity`, `ResetActivity`,
//! `UpdateActivityOptions` (what `temporal activity pause|unpause|reset|update-options` call).

use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::Frontend;
use crate::clock::proto;
use crate::engine::activity_ops::{ActivityOperation, ActivitySelector};
use crate::engine::request::{Reply, Request as Change};
use crate::error::{Error, Result};
use crate::history::Outcome;

/// The activity an operator request names: by id, by type, or all.
fn selector(id: Option<String>, activity_type: Option<String>, all: bool) -> Result<ActivitySelector> {
    match (id, activity_type) {
        (Some(id), _) if !id.is_empty() => Ok(ActivitySelector::Id(id)),
        (_, Some(t)) if !t.is_empty() => Ok(ActivitySelector::Type(t)),
        _ if all => Ok(ActivitySelector::All),
        _ => Err(Error::invalid("Either activity id or activity type must be provided.")),
    }
}

fn jitter_ms(jitter: Option<&prost_types::Duration>) -> Result<i64> {
    let ms = proto::duration_ms(jitter);
    if ms < 0 {
        return Err(Error::invalid("Jitter cannot be negative."));
    }
    Ok(ms)
}

impl Frontend {
    async fn operate(
        &self,
        namespace: &str,
        execution: Option<WorkflowExecution>,
        selector: ActivitySelector,
        operation: ActivityOperation,
    ) -> Result<temporalio_protos::temporal::api::activity::v1::ActivityOptions> {
        let execution = execution.ok_or_else(|| Error::invalid("Execution is not set on request."))?;
        super::convert::check_id(&execution.workflow_id, "WorkflowId")?;
        let key = self.run_of(namespace, Some(execution)).await?;
        match self.svc.execute(&key, Change::OperateActivities { selector, operation }).await? {
            Outcome::Applied(Reply::ActivityOptions(options)) => Ok(*options),
            _ => Err(Error::Internal("an activity operation gave no answer".into())),
        }
    }

    pub async fn pause_activity(&self, r: Request<ws::PauseActivityRequest>) -> Result<ws::PauseActivityResponse> {
        use ws::pause_activity_request::Activity;
        let r = r.into_inner();
        let (id, t) = match r.activity {
            Some(Activity::Id(id)) => (Some(id), None),
            Some(Activity::Type(t)) => (None, Some(t)),
            None => (None, None),
        };
        let operation = ActivityOperation::Pause { identity: r.identity, reason: r.reason };
        self.operate(&r.namespace, r.execution, selector(id, t, false)?, operation).await?;
        Ok(ws::PauseActivityResponse {})
    }

    pub async fn unpause_activity(
        &self,
        r: Request<ws::UnpauseActivityRequest>,
    ) -> Result<ws::UnpauseActivityResponse> {
        use ws::unpause_activity_request::Activity;
        let r = r.into_inner();
        let (id, t, all) = match r.activity {
            Some(Activity::Id(id)) => (Some(id), None, false),
            Some(Activity::Type(t)) => (None, Some(t), false),
            Some(Activity::UnpauseAll(all)) => (None, None, all),
            None => (None, None, false),
        };
        let operation = ActivityOperation::Unpause {
            reset_attempts: r.reset_attempts,
            reset_heartbeat: r.reset_heartbeat,
            jitter_ms: jitter_ms(r.jitter.as_ref())?,
        };
        self.operate(&r.namespace, r.execution, selector(id, t, all)?, operation).await?;
        Ok(ws::UnpauseActivityResponse {})
    }

    pub async fn reset_activity(&self, r: Request<ws::ResetActivityRequest>) -> Result<ws::ResetActivityResponse> {
        use ws::reset_activity_request::Activity;
        let r = r.into_inner();
        let (id, t, all) = match r.activity {
            Some(Activity::Id(id)) => (Some(id), None, false),
            Some(Activity::Type(t)) => (None, Some(t), false),
            Some(Activity::MatchAll(all)) => (None, None, all),
            None => (None, None, false),
        };
        if r.restore_original_options {
            return Err(Error::Unimplemented("restore_original_options is not supported by tempora".into()));
        }
        let operation = ActivityOperation::Reset {
            reset_heartbeat: r.reset_heartbeat,
            keep_paused: r.keep_paused,
            jitter_ms: jitter_ms(r.jitter.as_ref())?,
        };
        self.operate(&r.namespace, r.execution, selector(id, t, all)?, operation).await?;
        Ok(ws::ResetActivityResponse {})
    }

    pub async fn update_activity_options(
        &self,
        r: Request<ws::UpdateActivityOptionsRequest>,
    ) -> Result<ws::UpdateActivityOptionsResponse> {
        use ws::update_activity_options_request::Activity;
        let r = r.into_inner();
        let (id, t, all) = match r.activity {
            Some(Activity::Id(id)) => (Some(id), None, false),
            Some(Activity::Type(t)) => (None, Some(t), false),
            Some(Activity::MatchAll(all)) => (None, None, all),
            None => (None, None, false),
        };
        if r.restore_original {
            return Err(Error::Unimplemented("restore_original is not supported by tempora".into()));
        }
        let options = r.activity_options.ok_or_else(|| Error::invalid("ActivityOptions are not set on request."))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("UpdateMask is not set on request."));
        }
        let operation = ActivityOperation::UpdateOptions { options: Box::new(options), paths };
        let options = self.operate(&r.namespace, r.execution, selector(id, t, all)?, operation).await?;
        Ok(ws::UpdateActivityOptionsResponse { activity_options: Some(options) })
    }
}

/// The `…ActivityExecution` forms the CLI sends (workflow id and activity id as fields). With
/// a workflow id they are the workflow-activity operations above; without one they name a
/// standalone activity, which tempora does not run, so there is none to find.
impl Frontend {
    fn workflow_activity(workflow_id: &str, run_id: &str, activity_id: &str) -> Result<WorkflowExecution> {
        if workflow_id.is_empty() {
            return Err(Error::not_found(format!("activity not found for ID: {activity_id}")));
        }
        Ok(WorkflowExecution { workflow_id: workflow_id.to_string(), run_id: run_id.to_string() })
    }

    pub async fn pause_activity_execution(
        &self,
        r: Request<ws::PauseActivityExecutionRequest>,
    ) -> Result<ws::PauseActivityExecutionResponse> {
        let r = r.into_inner();
        let execution = Self::workflow_activity(&r.workflow_id, &r.run_id, &r.activity_id)?;
        let request = ws::PauseActivityRequest {
            namespace: r.namespace,
            execution: Some(execution),
            identity: r.identity,
            activity: Some(ws::pause_activity_request::Activity::Id(r.activity_id)),
            reason: r.reason,
            request_id: r.request_id,
        };
        self.pause_activity(Request::new(request)).await.map(|_| ws::PauseActivityExecutionResponse {})
    }

    pub async fn unpause_activity_execution(
        &self,
        r: Request<ws::UnpauseActivityExecutionRequest>,
    ) -> Result<ws::UnpauseActivityExecutionResponse> {
        let r = r.into_inner();
        let execution = Self::workflow_activity(&r.workflow_id, &r.run_id, &r.activity_id)?;
        let request = ws::UnpauseActivityRequest {
            namespace: r.namespace,
            execution: Some(execution),
            identity: r.identity,
            activity: Some(ws::unpause_activity_request::Activity::Id(r.activity_id)),
            jitter: r.jitter,
            ..Default::default()
        };
        self.unpause_activity(Request::new(request)).await.map(|_| ws::UnpauseActivityExecutionResponse {})
    }

    pub async fn reset_activity_execution(
        &self,
        r: Request<ws::ResetActivityExecutionRequest>,
    ) -> Result<ws::ResetActivityExecutionResponse> {
        let r = r.into_inner();
        let execution = Self::workflow_activity(&r.workflow_id, &r.run_id, &r.activity_id)?;
        let request = ws::ResetActivityRequest {
            namespace: r.namespace,
            execution: Some(execution),
            identity: r.identity,
            activity: Some(ws::reset_activity_request::Activity::Id(r.activity_id)),
            reset_heartbeat: r.reset_heartbeat,
            keep_paused: r.keep_paused,
            jitter: r.jitter,
            restore_original_options: r.restore_original_options,
        };
        self.reset_activity(Request::new(request)).await.map(|_| ws::ResetActivityExecutionResponse {})
    }

    pub async fn update_activity_execution_options(
        &self,
        r: Request<ws::UpdateActivityExecutionOptionsRequest>,
    ) -> Result<ws::UpdateActivityExecutionOptionsResponse> {
        let r = r.into_inner();
        let execution = Self::workflow_activity(&r.workflow_id, &r.run_id, &r.activity_id)?;
        let request = ws::UpdateActivityOptionsRequest {
            namespace: r.namespace,
            execution: Some(execution),
            identity: r.identity,
            activity_options: r.activity_options,
            update_mask: r.update_mask,
            activity: Some(ws::update_activity_options_request::Activity::Id(r.activity_id)),
            restore_original: r.restore_original,
        };
        let updated = self.update_activity_options(Request::new(request)).await?;
        Ok(ws::UpdateActivityExecutionOptionsResponse { activity_options: updated.activity_options })
    }
}
