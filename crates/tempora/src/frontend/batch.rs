//! Batch operations: terminate, cancel, signal, delete, reset or update the options of every
//! workflow a visibility query matches (or a list of executions), as one durable job.
//!
//! A job is a `BatchJobRecord` in the store. Its runner (a tracked task) pages through the
//! targets — a query in run id order, a key no operation changes, so nothing is skipped or done
//! twice while the matches change — applies the operation to each through the same handler a
//! client's single request uses, at most `max_operations_per_second` (default 50, Temporal's),
//! and commits its progress (counts and cursor) after every page and every second. After a restart each running
//! job resumes from its last committed page; the targets of that page may see the operation
//! again, which is harmless (a closed run answers NOT_FOUND, counted as done, as Temporal does).
//!
//! As in Temporal, one job at a time may run per namespace, a stopped job ends FAILED, and
//! finished jobs are kept for the namespace's retention period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use temporalio_protos::temporal::api::batch::v1::BatchOperationInfo;
use temporalio_protos::temporal::api::common::v1::{Execution, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::{
    BatchOperationState, BatchOperationType, EventType, ExecutionType, ResetType,
};
use temporalio_protos::temporal::api::workflowservice::v1::{self as ws, start_batch_operation_request::Operation};
use tokio_util::sync::CancellationToken;
use tonic::Request;

use super::Frontend;
use crate::clock::{proto, Millis};
use crate::error::{Error, Result};
use crate::store::{BatchJobRecord, Write};
use crate::visibility::attributes::Registry;
use crate::visibility::{query, Cursor, ListRequest};

/// Temporal's default rate of a batch job.
const OPERATIONS_PER_SECOND_DEFAULT: f32 = 50.0;
/// Targets read (and progress committed) at a time.
const PAGE_SIZE: usize = 100;
const LIST_PAGE_SIZE_DEFAULT: usize = 1000;
/// A slow job also commits its progress at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(1);

type JobKey = (String, String);

/// The batch jobs of every namespace, running or kept (bounded by retention).
#[derive(Default)]
pub(crate) struct Jobs {
    jobs: Mutex<HashMap<JobKey, Job>>,
}

struct Job {
    record: BatchJobRecord,
    /// Cancelled when the job is stopped (its runner then ends without writing).
    stop: CancellationToken,
}

impl Jobs {
    pub(crate) fn new(records: Vec<BatchJobRecord>) -> Jobs {
        let jobs = records
            .into_iter()
            .map(|record| {
                ((record.namespace.clone(), record.job_id.clone()), Job { record, stop: CancellationToken::new() })
            })
            .collect();
        Jobs { jobs: Mutex::new(jobs) }
    }

    fn get(&self, key: &JobKey) -> Option<BatchJobRecord> {
        self.jobs.lock().expect("batch jobs lock").get(key).map(|j| j.record.clone())
    }

    /// Finished jobs of `namespace` closed before `before_ms` (for retention).
    pub(crate) fn expired(&self, namespace: &str, before_ms: Millis) -> Vec<String> {
        let jobs = self.jobs.lock().expect("batch jobs lock");
        jobs.values()
            .filter(|j| {
                j.record.namespace == namespace && j.record.close_time_ms > 0 && j.record.close_time_ms < before_ms
            })
            .map(|j| j.record.job_id.clone())
            .collect()
    }

    /// Stops every runner (this node no longer keeps the registries): each ends without
    /// writing, and the node that now keeps them resumes the job.
    pub(crate) fn stop_runners(&self) {
        self.jobs.lock().expect("batch jobs lock").values().for_each(|j| j.stop.cancel());
    }

    /// Takes the jobs the store holds (this node took over the registries), replacing what
    /// it knew; the runners it had are stopped.
    pub(crate) fn reload(&self, records: Vec<BatchJobRecord>) {
        let fresh = Jobs::new(records).jobs.into_inner().expect("batch jobs lock");
        let mut jobs = self.jobs.lock().expect("batch jobs lock");
        jobs.values().for_each(|j| j.stop.cancel());
        *jobs = fresh;
    }

    pub(crate) fn forget(&self, namespace: &str, job_id: &str) {
        self.jobs.lock().expect("batch jobs lock").remove(&(namespace.to_string(), job_id.to_string()));
    }
}

/// A single request made on a job's behalf, served where a client's would be: forwarded to
/// the node that serves its run on a cluster, else by this frontend's handler.
macro_rules! served {
    ($fe:expr, $operation:literal, $handler:ident, $request:expr) => {
        match $fe.elsewhere($operation, $request).await? {
            Ok(response) => Ok(response),
            Err(request) => $fe.$handler(Request::new(request)).await,
        }
        .map(drop)
    };
}

fn running() -> i32 {
    BatchOperationState::Running as i32
}

fn operation_type(op: &Operation) -> BatchOperationType {
    match op {
        Operation::TerminationOperation(_) => BatchOperationType::TerminateWorkflow,
        Operation::CancellationOperation(_) => BatchOperationType::CancelWorkflow,
        Operation::SignalOperation(_) => BatchOperationType::SignalWorkflow,
        Operation::DeletionOperation(_) => BatchOperationType::DeleteWorkflow,
        Operation::ResetOperation(_) => BatchOperationType::ResetWorkflow,
        Operation::UpdateWorkflowOptionsOperation(_) => BatchOperationType::UpdateWorkflowExecutionOptions,
        Operation::UnpauseActivitiesOperation(_) => BatchOperationType::UnpauseActivity,
        Operation::ResetActivitiesOperation(_) => BatchOperationType::ResetActivity,
        Operation::UpdateActivityOptionsOperation(_) => BatchOperationType::UpdateActivityOptions,
        _ => BatchOperationType::Unspecified,
    }
}

fn identity_of(op: &Operation) -> String {
    match op {
        Operation::TerminationOperation(o) => o.identity.clone(),
        Operation::CancellationOperation(o) => o.identity.clone(),
        Operation::SignalOperation(o) => o.identity.clone(),
        Operation::DeletionOperation(o) => o.identity.clone(),
        Operation::ResetOperation(o) => o.identity.clone(),
        Operation::UpdateWorkflowOptionsOperation(o) => o.identity.clone(),
        Operation::UnpauseActivitiesOperation(o) => o.identity.clone(),
        Operation::ResetActivitiesOperation(o) => o.identity.clone(),
        Operation::UpdateActivityOptionsOperation(o) => o.identity.clone(),
        _ => String::new(),
    }
}

impl Frontend {
    pub async fn start_batch_operation(
        self: &Arc<Self>,
        r: Request<ws::StartBatchOperationRequest>,
    ) -> Result<ws::StartBatchOperationResponse> {
        let r = r.into_inner();
        if r.job_id.is_empty() {
            return Err(Error::invalid("JobId is not set on request."));
        }
        self.svc.namespaces.get(&r.namespace)?;
        let has_targets = !r.visibility_query.is_empty() || !r.executions.is_empty() || !r.target_executions.is_empty();
        let Some(op) = r.operation.as_ref().filter(|_| !r.reason.is_empty() && has_targets) else {
            return Err(Error::invalid(
                "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)",
            ));
        };
        let listed = !r.executions.is_empty() || !r.target_executions.is_empty();
        if !r.visibility_query.is_empty() && listed || !r.executions.is_empty() && !r.target_executions.is_empty() {
            return Err(Error::invalid("visibility query, executions, and target executions are mutually exclusive"));
        }
        match op {
            Operation::SignalOperation(s) if s.signal.is_empty() => {
                return Err(Error::invalid("must provide signal name"));
            }
            Operation::ResetOperation(reset) if reset_target(reset).is_none() => {
                let name = ResetType::try_from(reset.reset_type).unwrap_or_default().as_str_name();
                let name = name.trim_start_matches("RESET_TYPE_").to_lowercase();
                return Err(Error::invalid(format!("unknown batch reset type {}", capitalize(&name))));
            }
            _ if operation_type(op) == BatchOperationType::Unspecified => {
                return Err(Error::invalid(format!(
                    "The operation type {} is not supported for this namespace",
                    operation_name(op)
                )));
            }
            _ => {}
        }
        let filter = if r.visibility_query.is_empty() {
            None
        } else {
            let custom = self.svc.namespaces.custom_types(&r.namespace);
            let parsed = query::parse(&r.visibility_query, &Registry { custom: &custom }).map_err(|e| {
                Error::InvalidArgument(e.to_string().replacen("invalid query", "invalid visibility query", 1))
            })?;
            Some(parsed)
        };
        self.prune_batches(&r.namespace).await?;
        let key = (r.namespace.clone(), r.job_id.clone());
        let (stop, record) = {
            let mut jobs = self.batches.jobs.lock().expect("batch jobs lock");
            if jobs.values().any(|j| j.record.namespace == r.namespace && j.record.state == running()) {
                return Err(Error::ResourceExhausted("Max concurrent batch operations is reached".into()));
            }
            if let Some(existing) = jobs.get(&key) {
                return Err(Error::AlreadyStarted {
                    message: format!(
                        "Workflow execution already finished. WorkflowId: {}, RunId: {}. Workflow Id reuse policy: reject duplicate workflow Id.",
                        r.job_id, existing.record.job_id
                    ),
                    start_request_id: String::new(),
                    run_id: existing.record.job_id.clone(),
                    first_execution_run_id: String::new(),
                });
            }
            let total = if listed { (r.executions.len() + r.target_executions.len()) as i64 } else { 0 };
            let record = BatchJobRecord {
                namespace: r.namespace.clone(),
                job_id: r.job_id.clone(),
                request: r.encode_to_vec(),
                state: running(),
                start_time_ms: self.svc.now_ms(),
                close_time_ms: 0,
                total,
                complete: 0,
                failure: 0,
                cursor: String::new(),
                identity: identity_of(op),
                reason: r.reason.clone(),
            };
            let stop = CancellationToken::new();
            jobs.insert(key.clone(), Job { record: record.clone(), stop: stop.clone() });
            (stop, record)
        };
        if let Err(e) = self.svc.store().commit(vec![Write::BatchJob(record.clone())]).await {
            self.batches.forget(&key.0, &key.1);
            return Err(e.into());
        }
        let mut record = record;
        if let Some(parsed) = filter {
            // The estimate Describe shows until the job ends.
            let count = crate::visibility::CountRequest {
                namespace: r.namespace.clone(),
                filter: parsed.filter,
                hide_divisions: !parsed.names_namespace_division,
                group_by: None,
            };
            if let Ok(counted) = self.svc.store().count_executions(count).await {
                record.total = counted.total;
                self.save(&record, false).await;
            }
        }
        self.run_batch(record, stop);
        Ok(ws::StartBatchOperationResponse {})
    }

    pub async fn describe_batch_operation(
        &self,
        r: Request<ws::DescribeBatchOperationRequest>,
    ) -> Result<ws::DescribeBatchOperationResponse> {
        let r = r.into_inner();
        if r.namespace.is_empty() {
            return Err(Error::invalid("Namespace is empty."));
        }
        if r.job_id.is_empty() {
            return Err(Error::invalid("JobId is not set on request."));
        }
        self.svc.namespaces.get(&r.namespace)?;
        let job = self.batches.get(&(r.namespace, r.job_id.clone())).ok_or_else(|| not_found(&r.job_id))?;
        let request = ws::StartBatchOperationRequest::decode(job.request.as_slice()).unwrap_or_default();
        Ok(ws::DescribeBatchOperationResponse {
            operation_type: request.operation.as_ref().map_or(0, |op| operation_type(op) as i32),
            job_id: job.job_id,
            state: job.state,
            start_time: Some(proto::timestamp(job.start_time_ms)),
            close_time: (job.close_time_ms > 0).then(|| proto::timestamp(job.close_time_ms)),
            total_operation_count: job.total,
            complete_operation_count: job.complete,
            failure_operation_count: job.failure,
            identity: job.identity,
            reason: job.reason,
            query: request.visibility_query,
            executions: request
                .executions
                .iter()
                .map(|e| Execution {
                    r#type: ExecutionType::Workflow as i32,
                    business_id: e.workflow_id.clone(),
                    run_id: e.run_id.clone(),
                })
                .chain(request.target_executions.iter().cloned())
                .collect(),
        })
    }

    /// Jobs newest first, in pages; the token is the last job's (start time, id).
    pub async fn list_batch_operations(
        &self,
        r: Request<ws::ListBatchOperationsRequest>,
    ) -> Result<ws::ListBatchOperationsResponse> {
        let r = r.into_inner();
        if r.namespace.is_empty() {
            return Err(Error::invalid("Namespace is empty."));
        }
        self.svc.namespaces.get(&r.namespace)?;
        let page_size = if r.page_size <= 0 { LIST_PAGE_SIZE_DEFAULT } else { r.page_size as usize };
        let after: Option<(i64, String)> = if r.next_page_token.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&r.next_page_token).map_err(|_| Error::invalid("invalid next page token"))?)
        };
        let mut jobs: Vec<BatchJobRecord> = {
            let jobs = self.batches.jobs.lock().expect("batch jobs lock");
            jobs.values().filter(|j| j.record.namespace == r.namespace).map(|j| j.record.clone()).collect()
        };
        let order = |j: &BatchJobRecord| (std::cmp::Reverse(j.start_time_ms), j.job_id.clone());
        jobs.sort_by_key(order);
        let page: Vec<BatchJobRecord> = jobs
            .into_iter()
            .filter(|j| after.as_ref().is_none_or(|(t, id)| order(j) > (std::cmp::Reverse(*t), id.clone())))
            .take(page_size)
            .collect();
        let next_page_token = match page.last() {
            Some(last) if page.len() == page_size => {
                serde_json::to_vec(&(last.start_time_ms, &last.job_id)).expect("token serialises")
            }
            _ => Vec::new(),
        };
        let operation_info = page
            .into_iter()
            .map(|j| {
                let request = ws::StartBatchOperationRequest::decode(j.request.as_slice()).unwrap_or_default();
                BatchOperationInfo {
                    job_id: j.job_id,
                    state: j.state,
                    start_time: Some(proto::timestamp(j.start_time_ms)),
                    close_time: (j.close_time_ms > 0).then(|| proto::timestamp(j.close_time_ms)),
                    operation_type: request.operation.as_ref().map_or(0, |op| operation_type(op) as i32),
                }
            })
            .collect();
        Ok(ws::ListBatchOperationsResponse { operation_info, next_page_token })
    }

    pub async fn stop_batch_operation(
        &self,
        r: Request<ws::StopBatchOperationRequest>,
    ) -> Result<ws::StopBatchOperationResponse> {
        let r = r.into_inner();
        if r.namespace.is_empty() {
            return Err(Error::invalid("Namespace is empty."));
        }
        if r.job_id.is_empty() {
            return Err(Error::invalid("JobId is not set on request."));
        }
        if r.reason.is_empty() {
            return Err(Error::invalid("Reason is not set on request."));
        }
        self.svc.namespaces.get(&r.namespace)?;
        let key = (r.namespace.clone(), r.job_id.clone());
        let record = {
            let mut jobs = self.batches.jobs.lock().expect("batch jobs lock");
            let job = jobs.get_mut(&key).ok_or_else(|| not_found(&r.job_id))?;
            if job.record.state != running() {
                return Err(Error::not_found("workflow execution already completed"));
            }
            job.stop.cancel();
            job.record.state = BatchOperationState::Failed as i32;
            job.record.close_time_ms = self.svc.now_ms();
            job.record.clone()
        };
        self.svc.store().commit(vec![Write::BatchJob(record)]).await?;
        Ok(ws::StopBatchOperationResponse {})
    }

    /// Forgets the finished jobs of a namespace whose retention has passed since they closed.
    async fn prune_batches(&self, namespace: &str) -> Result<()> {
        let retention_ms = self.svc.namespaces.get(namespace)?.retention_ms;
        let expired = self.batches.expired(namespace, self.svc.now_ms() - retention_ms);
        if expired.is_empty() {
            return Ok(());
        }
        let deletes = expired
            .iter()
            .map(|job_id| Write::DeleteBatchJob { namespace: namespace.to_string(), job_id: job_id.clone() })
            .collect();
        self.svc.store().commit(deletes).await?;
        for job_id in expired {
            self.batches.forget(namespace, &job_id);
        }
        Ok(())
    }

    /// Resumes the jobs that were running when the server stopped.
    pub(crate) fn resume_batches(self: &Arc<Self>) {
        let running: Vec<(BatchJobRecord, CancellationToken)> = {
            let jobs = self.batches.jobs.lock().expect("batch jobs lock");
            jobs.values().filter(|j| j.record.state == running()).map(|j| (j.record.clone(), j.stop.clone())).collect()
        };
        for (record, stop) in running {
            self.run_batch(record, stop);
        }
    }

    fn run_batch(self: &Arc<Self>, record: BatchJobRecord, stop: CancellationToken) {
        let fe = self.clone();
        let mut shutdown = self.svc.runtime().shutdown_signal();
        self.svc.runtime().spawn(async move {
            tokio::select! {
                _ = fe.batch_loop(record) => {}
                _ = stop.cancelled() => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }

    async fn batch_loop(self: &Arc<Self>, mut job: BatchJobRecord) {
        let request = ws::StartBatchOperationRequest::decode(job.request.as_slice()).unwrap_or_default();
        let Some(op) = request.operation.clone() else { return };
        let rate = if request.max_operations_per_second > 0.0 {
            request.max_operations_per_second
        } else {
            OPERATIONS_PER_SECOND_DEFAULT
        };
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut saved = tokio::time::Instant::now();
        loop {
            let targets = match self.next_targets(&request, &job.cursor).await {
                Ok(targets) => targets,
                Err(e) => {
                    tracing::warn!(job_id = %job.job_id, error = %e, "batch job cannot read its targets; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let last_page = targets.len() < PAGE_SIZE;
            for (execution, cursor) in targets {
                if !self.svc.holds_registry() {
                    return; // the node that keeps the registries now resumes the job
                }
                match self.apply_batch_operation(&request.namespace, &request.reason, &op, execution).await {
                    Ok(()) | Err(Error::NotFound(_)) => job.complete += 1,
                    Err(e) => {
                        tracing::debug!(job_id = %job.job_id, error = %e, "batch operation failed on a target");
                        job.failure += 1;
                    }
                }
                job.cursor = cursor;
                if saved.elapsed() >= SAVE_EVERY {
                    self.save(&job, true).await;
                    saved = tokio::time::Instant::now();
                }
                tokio::time::sleep(interval).await;
            }
            if last_page {
                job.state = BatchOperationState::Completed as i32;
                job.close_time_ms = self.svc.now_ms();
                job.total = job.complete + job.failure;
                self.save(&job, true).await;
                return;
            }
            self.save(&job, true).await;
        }
    }

    /// Commits a job's progress (retrying while the store is unavailable) and shows it.
    async fn save(&self, job: &BatchJobRecord, retry: bool) {
        loop {
            {
                let mut jobs = self.batches.jobs.lock().expect("batch jobs lock");
                match jobs.get_mut(&(job.namespace.clone(), job.job_id.clone())) {
                    // Stopped meanwhile: the stop wrote the final record.
                    Some(current) if current.record.state != running() => return,
                    Some(current) => current.record = job.clone(),
                    None => return,
                }
            }
            match self.svc.store().commit(vec![Write::BatchJob(job.clone())]).await {
                Ok(()) => return,
                Err(e) if retry => {
                    tracing::warn!(job_id = %job.job_id, error = %e, "batch progress not saved; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => return,
            }
        }
    }

    /// The next page of targets after `cursor`, each with the cursor that follows it.
    async fn next_targets(
        &self,
        request: &ws::StartBatchOperationRequest,
        cursor: &str,
    ) -> Result<Vec<(WorkflowExecution, String)>> {
        if request.visibility_query.is_empty() {
            let done: usize = cursor.parse().unwrap_or(0);
            let listed = request.executions.iter().cloned().chain(
                request
                    .target_executions
                    .iter()
                    .map(|e| WorkflowExecution { workflow_id: e.business_id.clone(), run_id: e.run_id.clone() }),
            );
            return Ok(listed.enumerate().skip(done).take(PAGE_SIZE).map(|(i, e)| (e, (i + 1).to_string())).collect());
        }
        let custom = self.svc.namespaces.custom_types(&request.namespace);
        let parsed = query::parse(&request.visibility_query, &Registry { custom: &custom })
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let list = ListRequest {
            namespace: request.namespace.clone(),
            filter: parsed.filter,
            hide_divisions: !parsed.names_namespace_division,
            page_size: PAGE_SIZE,
            after: (!cursor.is_empty()).then(|| Cursor { sort_time: 0, start_time: 0, run_id: cursor.to_string() }),
            by_run_id: true,
        };
        let rows = self.svc.store().list_executions(list).await?;
        Ok(rows
            .into_iter()
            .map(|(cursor, info)| {
                let info =
                    temporalio_protos::temporal::api::workflow::v1::WorkflowExecutionInfo::decode(info.as_slice())
                        .unwrap_or_default();
                (info.execution.unwrap_or_default(), cursor.run_id)
            })
            .collect())
    }

    /// One target of a job, through the handler of the equivalent single request, on the node
    /// that serves the target (`served!`).
    async fn apply_batch_operation(
        &self,
        namespace: &str,
        reason: &str,
        op: &Operation,
        execution: WorkflowExecution,
    ) -> Result<()> {
        let namespace = namespace.to_string();
        match op {
            Operation::TerminationOperation(o) => served!(
                self,
                "TerminateWorkflowExecution",
                terminate_workflow_execution,
                ws::TerminateWorkflowExecutionRequest {
                    namespace,
                    workflow_execution: Some(execution),
                    reason: reason.to_string(),
                    details: o.details.clone(),
                    identity: o.identity.clone(),
                    ..Default::default()
                }
            ),
            Operation::CancellationOperation(o) => served!(
                self,
                "RequestCancelWorkflowExecution",
                request_cancel_workflow_execution,
                ws::RequestCancelWorkflowExecutionRequest {
                    namespace,
                    workflow_execution: Some(execution),
                    identity: o.identity.clone(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                    reason: reason.to_string(),
                    ..Default::default()
                }
            ),
            Operation::SignalOperation(o) => served!(
                self,
                "SignalWorkflowExecution",
                signal_workflow_execution,
                ws::SignalWorkflowExecutionRequest {
                    namespace,
                    workflow_execution: Some(execution),
                    signal_name: o.signal.clone(),
                    input: o.input.clone(),
                    identity: o.identity.clone(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                    header: o.header.clone(),
                    ..Default::default()
                }
            ),
            Operation::DeletionOperation(_) => served!(
                self,
                "DeleteWorkflowExecution",
                delete_workflow_execution,
                ws::DeleteWorkflowExecutionRequest { namespace, workflow_execution: Some(execution) }
            ),
            Operation::ResetOperation(o) => {
                let key = self.run_of(&namespace, Some(execution.clone())).await?;
                let target = reset_target(o).ok_or_else(|| Error::invalid("unknown batch reset type"))?;
                let event_id = self
                    .svc
                    .read(&key, |exec| {
                        let completed =
                            exec.history.iter().filter(|e| e.event_type == EventType::WorkflowTaskCompleted as i32);
                        match target {
                            ResetTarget::First => completed.map(|e| e.event_id).next(),
                            ResetTarget::Last => completed.map(|e| e.event_id).next_back(),
                            ResetTarget::Event(id) => Some(id),
                        }
                    })
                    .await?
                    .ok_or_else(|| Error::invalid("the workflow has no completed workflow task to reset to"))?;
                served!(
                    self,
                    "ResetWorkflowExecution",
                    reset_workflow_execution,
                    ws::ResetWorkflowExecutionRequest {
                        namespace,
                        workflow_execution: Some(execution),
                        reason: reason.to_string(),
                        workflow_task_finish_event_id: event_id,
                        request_id: uuid::Uuid::new_v4().to_string(),
                        identity: o.identity.clone(),
                        ..Default::default()
                    }
                )
            }
            Operation::UpdateWorkflowOptionsOperation(o) => served!(
                self,
                "UpdateWorkflowExecutionOptions",
                update_workflow_execution_options,
                ws::UpdateWorkflowExecutionOptionsRequest {
                    namespace,
                    workflow_execution: Some(execution),
                    workflow_execution_options: o.workflow_execution_options.clone(),
                    update_mask: o.update_mask.clone(),
                    identity: o.identity.clone(),
                }
            ),
            Operation::UnpauseActivitiesOperation(o) => {
                use temporalio_protos::temporal::api::batch::v1::batch_operation_unpause_activities::Activity as Which;
                use ws::unpause_activity_request::Activity;
                let activity = match &o.activity {
                    Some(Which::Type(t)) => Activity::Type(t.clone()),
                    Some(Which::MatchAll(_)) | None => Activity::UnpauseAll(true),
                };
                served!(
                    self,
                    "UnpauseActivity",
                    unpause_activity,
                    ws::UnpauseActivityRequest {
                        namespace,
                        execution: Some(execution),
                        identity: o.identity.clone(),
                        activity: Some(activity),
                        reset_attempts: o.reset_attempts,
                        reset_heartbeat: o.reset_heartbeat,
                        jitter: o.jitter,
                    }
                )
            }
            Operation::ResetActivitiesOperation(o) => {
                use temporalio_protos::temporal::api::batch::v1::batch_operation_reset_activities::Activity as Which;
                use ws::reset_activity_request::Activity;
                let activity = match &o.activity {
                    Some(Which::Type(t)) => Activity::Type(t.clone()),
                    Some(Which::MatchAll(_)) | None => Activity::MatchAll(true),
                };
                served!(
                    self,
                    "ResetActivity",
                    reset_activity,
                    ws::ResetActivityRequest {
                        namespace,
                        execution: Some(execution),
                        identity: o.identity.clone(),
                        activity: Some(activity),
                        reset_heartbeat: o.reset_heartbeat,
                        keep_paused: o.keep_paused,
                        jitter: o.jitter,
                        restore_original_options: o.restore_original_options,
                    }
                )
            }
            Operation::UpdateActivityOptionsOperation(o) => {
                use temporalio_protos::temporal::api::batch::v1::batch_operation_update_activity_options::Activity as Which;
                use ws::update_activity_options_request::Activity;
                let activity = match &o.activity {
                    Some(Which::Type(t)) => Activity::Type(t.clone()),
                    Some(Which::MatchAll(_)) | None => Activity::MatchAll(true),
                };
                served!(
                    self,
                    "UpdateActivityOptions",
                    update_activity_options,
                    ws::UpdateActivityOptionsRequest {
                        namespace,
                        execution: Some(execution),
                        identity: o.identity.clone(),
                        activity_options: o.activity_options.clone(),
                        update_mask: o.update_mask.clone(),
                        activity: Some(activity),
                        restore_original: o.restore_original,
                    }
                )
            }
            other => Err(Error::invalid(format!(
                "The operation type {} is not supported for this namespace",
                operation_name(other)
            ))),
        }
    }
}

#[derive(Clone, Copy)]
enum ResetTarget {
    First,
    Last,
    Event(i64),
}

/// Where a batch reset goes: the options' target, else the deprecated reset type.
fn reset_target(reset: &temporalio_protos::temporal::api::batch::v1::BatchOperationReset) -> Option<ResetTarget> {
    use temporalio_protos::temporal::api::common::v1::reset_options::Target;
    match reset.options.as_ref().and_then(|o| o.target.as_ref()) {
        Some(Target::FirstWorkflowTask(_)) => return Some(ResetTarget::First),
        Some(Target::LastWorkflowTask(_)) => return Some(ResetTarget::Last),
        Some(Target::WorkflowTaskId(id)) => return Some(ResetTarget::Event(*id)),
        _ => {}
    }
    match ResetType::try_from(reset.reset_type).unwrap_or_default() {
        ResetType::FirstWorkflowTask => Some(ResetTarget::First),
        ResetType::LastWorkflowTask => Some(ResetTarget::Last),
        ResetType::Unspecified => None,
    }
}

fn not_found(job_id: &str) -> Error {
    Error::not_found(format!("workflow not found for ID: {job_id}"))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The Go type name Temporal's message gives an operation.
fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::UnpauseActivitiesOperation(_) => {
            "*workflowservice.StartBatchOperationRequest_UnpauseActivitiesOperation"
        }
        Operation::ResetActivitiesOperation(_) => {
            "*workflowservice.StartBatchOperationRequest_ResetActivitiesOperation"
        }
        Operation::UpdateActivityOptionsOperation(_) => {
            "*workflowservice.StartBatchOperationRequest_UpdateActivityOptionsOperation"
        }
        _ => "*workflowservice.StartBatchOperationRequest_Operation",
    }
}
