//! Talking to a running workflow: queries, updates (also update-with-start) and their answers.

use temporalio_protos::temporal::api::enums::v1::{
    QueryRejectCondition, QueryResultType, UpdateWorkflowExecutionLifecycleStage as Stage, WorkflowExecutionStatus,
};
use temporalio_protos::temporal::api::query::v1::QueryRejected;
use temporalio_protos::temporal::api::update::v1::UpdateRef;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tonic::Request;

use super::convert::{check_id, wait_budget, wanted_stage, UpdateWait};
use super::views::execution_of;
use super::Frontend;
use crate::engine::state::{RunKey, RunStatus};
use crate::error::{Error, Result};
use crate::history::QueryAnswer;
use crate::token::TaskToken;

fn update_response(
    key: &RunKey,
    update_id: String,
    status: crate::history::UpdateStatus,
) -> ws::UpdateWorkflowExecutionResponse {
    let (stage, outcome) = status;
    ws::UpdateWorkflowExecutionResponse {
        update_ref: Some(UpdateRef { workflow_execution: Some(execution_of(key)), update_id }),
        outcome,
        stage: stage as i32,
        ..Default::default()
    }
}

impl Frontend {
    pub async fn query_workflow(&self, r: Request<ws::QueryWorkflowRequest>) -> Result<ws::QueryWorkflowResponse> {
        let timeout = wait_budget(r.metadata());
        let r = r.into_inner();
        let query = r.query.ok_or_else(|| Error::invalid("Query is not set on request."))?;
        check_id(&query.query_type, "QueryType")?;
        self.checks().payloads(&query.query_args)?;
        let key = self.run_of(&r.namespace, r.execution).await?;
        let status = self.svc.read(&key, |e| e.state.status).await?;
        let running = status == RunStatus::Running;
        let rejected = match QueryRejectCondition::try_from(r.query_reject_condition) {
            Ok(QueryRejectCondition::NotOpen) => !running,
            Ok(QueryRejectCondition::NotCompletedCleanly) => !running && status != RunStatus::Completed,
            _ => false,
        };
        if rejected {
            return Ok(ws::QueryWorkflowResponse {
                query_rejected: Some(QueryRejected { status: status.number() }),
                ..Default::default()
            });
        }
        match self.svc.query(&key, query, timeout).await? {
            QueryAnswer::Answered(result) => {
                Ok(ws::QueryWorkflowResponse { query_result: result, ..Default::default() })
            }
            QueryAnswer::Failed { message, failure } => Err(Error::QueryFailed { message, failure }),
        }
    }

    pub async fn respond_query_task_completed(
        &self,
        r: Request<ws::RespondQueryTaskCompletedRequest>,
    ) -> Result<ws::RespondQueryTaskCompletedResponse> {
        let r = r.into_inner();
        let token = TaskToken::parse_in(&r.task_token, false, &r.namespace)?;
        if token.query_id.is_empty() {
            return Err(Error::invalid("the task token is not a query task's"));
        }
        self.checks().payloads(&r.query_result)?;
        let answer = if r.completed_type == QueryResultType::Answered as i32 {
            QueryAnswer::Answered(r.query_result)
        } else {
            let message = match r.error_message.is_empty() {
                true => r.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default(),
                false => r.error_message,
            };
            QueryAnswer::Failed { message, failure: r.failure.map(Box::new) }
        };
        self.svc.answer_query(&token.query_id, answer)?;
        Ok(ws::RespondQueryTaskCompletedResponse {})
    }

    pub async fn update_workflow_execution(
        &self,
        r: Request<ws::UpdateWorkflowExecutionRequest>,
    ) -> Result<ws::UpdateWorkflowExecutionResponse> {
        let wait = UpdateWait::of(r.metadata());
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let (request, update_id) = self.checks().update(r.request)?;
        let key = self.run_of(&r.namespace, r.workflow_execution).await?;
        self.check_first_run(&key, &r.first_execution_run_id).await?;
        let wanted = wanted_stage(r.wait_policy.as_ref());
        let status = wait.answer(self.svc.update(&key, request, wanted, wait.deadline).await?, wanted)?;
        Ok(update_response(&key, update_id, status))
    }

    /// Update-with-start: one StartWorkflow then one UpdateWorkflow for the same workflow id,
    /// each checked as its own RPC would be.
    pub async fn execute_multi_operation(
        &self,
        r: Request<ws::ExecuteMultiOperationRequest>,
    ) -> Result<ws::ExecuteMultiOperationResponse> {
        use ws::execute_multi_operation_request::operation::Operation as Op;
        use ws::execute_multi_operation_response::{response::Response as Out, Response};
        let wait = UpdateWait::of(r.metadata());
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let operations = r.operations.len();
        let mut ops = r.operations.into_iter().map(|o| o.operation);
        let (Some(Some(Op::StartWorkflow(mut start))), Some(Some(Op::UpdateWorkflow(update))), None) =
            (ops.next(), ops.next(), ops.next())
        else {
            return Err(Error::invalid(
                "ExecuteMultiOperation takes exactly one StartWorkflow operation followed by one UpdateWorkflow operation.",
            ));
        };
        let failed = |failed: usize| move |e: Error| Error::MultiOperation { failed, operations, error: Box::new(e) };
        let execution = update.workflow_execution.clone().unwrap_or_default();
        if execution.workflow_id != start.workflow_id {
            return Err(failed(1)(Error::invalid("the update's WorkflowId differs from the start's.")));
        }
        if !execution.run_id.is_empty() {
            return Err(failed(1)(Error::invalid("RunId is not allowed in an update-with-start.")));
        }
        if start.workflow_id_conflict_policy == 0 {
            return Err(failed(0)(Error::invalid("WorkflowIdConflictPolicy must be set for update-with-start.")));
        }
        if start.namespace.is_empty() {
            start.namespace = r.namespace.clone();
        }
        let (start, policy) = self.start_request(start).map_err(failed(0))?;
        let (request, update_id) = self.checks().update(update.request).map_err(failed(1))?;
        let started = self.svc.start_workflow(start, policy).await.map_err(failed(0))?;
        let key =
            RunKey { run_id: started.run_id, ..RunKey::new(r.namespace.clone(), execution.workflow_id, String::new()) };
        let wanted = wanted_stage(update.wait_policy.as_ref());
        let status = self.svc.update(&key, request, wanted, wait.deadline).await.map_err(failed(1))?;
        let status = wait.answer(status, wanted).map_err(failed(1))?;
        let start = ws::StartWorkflowExecutionResponse {
            run_id: key.run_id.to_string(),
            started: started.started,
            status: WorkflowExecutionStatus::Running as i32,
            ..Default::default()
        };
        Ok(ws::ExecuteMultiOperationResponse {
            responses: vec![
                Response { response: Some(Out::StartWorkflow(start)) },
                Response { response: Some(Out::UpdateWorkflow(update_response(&key, update_id, status))) },
            ],
        })
    }

    pub async fn poll_workflow_execution_update(
        &self,
        r: Request<ws::PollWorkflowExecutionUpdateRequest>,
    ) -> Result<ws::PollWorkflowExecutionUpdateResponse> {
        let wait = UpdateWait::of(r.metadata());
        let r = r.into_inner();
        let update_ref = r.update_ref.ok_or_else(|| Error::invalid("UpdateRef is not set on request."))?;
        check_id(&update_ref.update_id, "UpdateId")?;
        let key = self.run_of(&r.namespace, update_ref.workflow_execution).await?;
        // Unlike an update call, a poll without a stage to wait for answers at once with the
        // stage reached (as Temporal's does): callers use it to see whether an update exists.
        let wanted = match r.wait_policy.as_ref().map(|p| p.lifecycle_stage) {
            None | Some(0) => Stage::Unspecified,
            Some(_) => wanted_stage(r.wait_policy.as_ref()),
        };
        let status = self.svc.wait_update(&key, &update_ref.update_id, wanted, wait.deadline).await?;
        let (stage, outcome) = wait.answer(status, wanted)?;
        Ok(ws::PollWorkflowExecutionUpdateResponse {
            outcome,
            stage: stage as i32,
            update_ref: Some(UpdateRef {
                workflow_execution: Some(execution_of(&key)),
                update_id: update_ref.update_id,
            }),
        })
    }
}
