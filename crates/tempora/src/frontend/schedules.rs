//! Schedules: the WorkflowService's schedule RPCs and the runner that fires them.
//!
//! Every schedule is held in memory (`Schedules`), each committed (a `schedule` record) before
//! a change is visible or acted on. The pure transitions are in `crate::schedules::machine`;
//! this module does the effects: it starts runs through the ordinary start path (so search
//! attributes, limits and id-reuse rules apply), cancels or terminates runs for the overlap
//! policies, and watches the runs it tracks so their close reaches the schedule.
//!
//! Never starting a nominal time twice: a start is committed into the schedule's buffer
//! before it is made, with a request id derived from the schedule and the time, so a start
//! repeated after a crash finds the run it made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use temporalio_protos::temporal::api::common::v1::{Payload, SearchAttributes, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::{
    HistoryEventFilterType, WorkflowExecutionStatus, WorkflowIdReusePolicy,
};
use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::temporal::api::schedule::v1 as sched;
use temporalio_protos::temporal::api::workflowservice::v1 as ws;
use tokio_util::sync::CancellationToken;
use tonic::Request;

use super::Frontend;
use crate::clock::{proto, Millis};
use crate::error::{Error, Result};
use crate::schedules::machine::{self, Action, Buffered, ScheduleRecord};
use crate::schedules::spec::CompiledSpec;
use crate::store::{Record, RecordKind, Write};
use crate::visibility::query::{self, CmpOp, Expr, SqlValue, Test};

const SCHEDULE_ID_BYTES_MAX: usize = 1000;
const PAGE_SIZE_DEFAULT: usize = 1000;
/// The runner wakes at least this often, whatever the schedules say.
const IDLE_WAKE_MS: Millis = 60_000;
const FUTURE_TIMES_DESCRIBE: usize = 10;
const FUTURE_TIMES_LIST: usize = 5;
const RECENT_ACTIONS_LIST: usize = 5;

/// One schedule: its record and compiled spec, under one lock (all changes to a schedule are
/// serialised). `None` once deleted.
struct Loaded {
    record: ScheduleRecord,
    spec: CompiledSpec,
}

type Entry = Arc<tokio::sync::Mutex<Option<Loaded>>>;

pub(super) struct Schedules {
    by_key: Mutex<BTreeMap<(String, String), Entry>>,
    /// Wakes the runner when a schedule changed (its next time may be earlier).
    wake: tokio::sync::Notify,
    /// Cancelled when this node stops keeping the registries (a cluster): the watches of
    /// tracked runs end, and the node that keeps them now watches again.
    tenure: Mutex<CancellationToken>,
    /// Whether the runner's loop was started (once; it acts only while this node keeps the
    /// registries).
    running: std::sync::atomic::AtomicBool,
}

impl Schedules {
    pub(super) fn new(records: &[Record]) -> Self {
        Schedules {
            by_key: Mutex::new(Self::loaded(records)),
            wake: tokio::sync::Notify::new(),
            tenure: Mutex::new(CancellationToken::new()),
            running: Default::default(),
        }
    }

    /// Takes the schedules among `records` (this node took over the registries), replacing
    /// what it knew, in a new tenure.
    pub(super) fn reload(&self, records: &[Record]) {
        self.let_go();
        *self.by_key.lock().expect("schedules lock") = Self::loaded(records);
        *self.tenure.lock().expect("tenure lock") = CancellationToken::new();
    }

    /// Ends this node's tenure (it no longer keeps the registries).
    pub(super) fn let_go(&self) {
        self.tenure.lock().expect("tenure lock").cancel();
    }

    fn tenure(&self) -> CancellationToken {
        self.tenure.lock().expect("tenure lock").clone()
    }

    fn loaded(records: &[Record]) -> BTreeMap<(String, String), Entry> {
        let mut by_key = BTreeMap::new();
        for r in records.iter().filter(|r| r.kind == RecordKind::Schedule) {
            let loaded =
                serde_json::from_str::<ScheduleRecord>(&r.data).map_err(|e| e.to_string()).and_then(|record| {
                    let spec = CompiledSpec::new(record.schedule.spec.as_ref().unwrap_or(&Default::default()))?;
                    Ok(Loaded { record, spec })
                });
            match loaded {
                Ok(loaded) => {
                    by_key.insert((r.scope.clone(), r.id.clone()), Arc::new(tokio::sync::Mutex::new(Some(loaded))));
                }
                Err(e) => tracing::error!(schedule_id = %r.id, error = %e, "unreadable schedule record skipped"),
            }
        }
        by_key
    }

    fn get(&self, namespace: &str, id: &str) -> Option<Entry> {
        self.by_key.lock().expect("schedules lock").get(&(namespace.to_string(), id.to_string())).cloned()
    }

    fn all(&self) -> Vec<((String, String), Entry)> {
        self.by_key.lock().expect("schedules lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Temporal's message does not name the schedule.
fn not_found(_id: &str) -> Error {
    Error::not_found("schedule not found")
}

fn conflict_token(n: i64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

impl Frontend {
    pub async fn create_schedule(&self, r: Request<ws::CreateScheduleRequest>) -> Result<ws::CreateScheduleResponse> {
        let r = r.into_inner();
        let namespace = self.svc.namespaces.get(&r.namespace)?;
        check_schedule_id(&r.schedule_id)?;
        let (schedule, spec) = self.checked_schedule(&r.namespace, r.schedule.unwrap_or_default())?;
        let search_attributes = self.checked_schedule_attributes(&r.namespace, r.search_attributes)?;
        let key = (r.namespace.clone(), r.schedule_id.clone());
        let entry: Entry = Arc::new(tokio::sync::Mutex::new(None));
        let mut guard = entry.clone().lock_owned().await;
        let existing = {
            let mut by_key = self.schedules.by_key.lock().expect("schedules lock");
            let existing = by_key.get(&key).cloned();
            if existing.is_none() {
                by_key.insert(key.clone(), entry.clone());
            }
            existing
        };
        if let Some(existing) = existing {
            // A repeated create (same request id) answers as the first did, once that is done.
            let existing = existing.lock().await;
            let same = existing.as_ref().filter(|l| !r.request_id.is_empty() && l.record.request_id == r.request_id);
            if let Some(loaded) = same {
                return Ok(ws::CreateScheduleResponse { conflict_token: conflict_token(loaded.record.conflict_token) });
            }
            return Err(Error::AlreadyStarted {
                message: "schedule with this ID is already registered".into(),
                start_request_id: String::new(),
                run_id: String::new(),
                first_execution_run_id: String::new(),
            });
        }
        let now_ms = self.svc.now_ms();
        let info = sched::ScheduleInfo { create_time: Some(proto::timestamp(now_ms)), ..Default::default() };
        let mut record = ScheduleRecord {
            namespace: r.namespace.clone(),
            namespace_id: namespace.id.clone(),
            schedule_id: r.schedule_id.clone(),
            schedule,
            info,
            memo: r.memo,
            search_attributes,
            conflict_token: 1,
            request_id: r.request_id,
            last_processed_ms: now_ms,
            buffer: Vec::new(),
            last_completion_result: None,
            last_failure: None,
        };
        if let Some(patch) = &r.initial_patch {
            apply_patch(&mut record, &spec, patch, now_ms)?;
        }
        if let Err(e) = self.commit_schedule(&record).await {
            self.schedules.by_key.lock().expect("schedules lock").remove(&key);
            return Err(e);
        }
        *guard = Some(Loaded { record, spec });
        self.act(&mut guard).await;
        self.schedules.wake.notify_one();
        let token = guard.as_ref().map_or(1, |l| l.record.conflict_token);
        Ok(ws::CreateScheduleResponse { conflict_token: conflict_token(token) })
    }

    pub async fn describe_schedule(
        &self,
        r: Request<ws::DescribeScheduleRequest>,
    ) -> Result<ws::DescribeScheduleResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let entry = self.schedules.get(&r.namespace, &r.schedule_id).ok_or_else(|| not_found(&r.schedule_id))?;
        let guard = entry.lock().await;
        let loaded = guard.as_ref().ok_or_else(|| not_found(&r.schedule_id))?;
        let mut info = loaded.record.info.clone();
        info.future_action_times = loaded
            .record
            .future_action_times(&loaded.spec, FUTURE_TIMES_DESCRIBE)
            .into_iter()
            .map(proto::timestamp)
            .collect();
        Ok(ws::DescribeScheduleResponse {
            schedule: Some(loaded.record.schedule.clone()),
            info: Some(info),
            // Unset when empty, as Temporal answers.
            memo: loaded.record.memo.clone().filter(|m| !m.fields.is_empty()),
            search_attributes: loaded.record.search_attributes.clone().filter(|s| !s.indexed_fields.is_empty()),
            conflict_token: conflict_token(loaded.record.conflict_token),
        })
    }

    pub async fn update_schedule(&self, r: Request<ws::UpdateScheduleRequest>) -> Result<ws::UpdateScheduleResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let entry = self.schedules.get(&r.namespace, &r.schedule_id).ok_or_else(|| not_found(&r.schedule_id))?;
        let (schedule, spec) = self.checked_schedule(&r.namespace, r.schedule.unwrap_or_default())?;
        let search_attributes_set = r.search_attributes.is_some();
        let search_attributes = self.checked_schedule_attributes(&r.namespace, r.search_attributes)?;
        let mut guard = entry.clone().lock_owned().await;
        let loaded = guard.as_mut().ok_or_else(|| not_found(&r.schedule_id))?;
        if !r.conflict_token.is_empty() && r.conflict_token != conflict_token(loaded.record.conflict_token) {
            return Err(Error::FailedPrecondition("mismatched conflict token".into()));
        }
        let mut record = loaded.record.clone();
        record.schedule = schedule;
        if search_attributes_set {
            record.search_attributes = search_attributes;
        }
        if let Some(memo) = r.memo {
            record.memo = Some(memo);
        }
        record.conflict_token += 1;
        record.info.update_time = Some(proto::timestamp(self.svc.now_ms()));
        // Times already passed are not taken again under the new spec.
        record.last_processed_ms = record.last_processed_ms.max(self.svc.now_ms());
        self.commit_schedule(&record).await?;
        *loaded = Loaded { record, spec };
        self.act(&mut guard).await;
        self.schedules.wake.notify_one();
        Ok(ws::UpdateScheduleResponse {})
    }

    pub async fn patch_schedule(&self, r: Request<ws::PatchScheduleRequest>) -> Result<ws::PatchScheduleResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let entry = self.schedules.get(&r.namespace, &r.schedule_id).ok_or_else(|| not_found(&r.schedule_id))?;
        let mut guard = entry.clone().lock_owned().await;
        let loaded = guard.as_mut().ok_or_else(|| not_found(&r.schedule_id))?;
        let mut record = loaded.record.clone();
        apply_patch(&mut record, &loaded.spec, &r.patch.unwrap_or_default(), self.svc.now_ms())?;
        self.commit_schedule(&record).await?;
        loaded.record = record;
        self.act(&mut guard).await;
        self.schedules.wake.notify_one();
        Ok(ws::PatchScheduleResponse {})
    }

    pub async fn delete_schedule(&self, r: Request<ws::DeleteScheduleRequest>) -> Result<ws::DeleteScheduleResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let entry = self.schedules.get(&r.namespace, &r.schedule_id).ok_or_else(|| not_found(&r.schedule_id))?;
        let mut guard = entry.lock().await;
        if guard.is_none() {
            return Err(not_found(&r.schedule_id));
        }
        let delete =
            Write::DeleteRecord { kind: RecordKind::Schedule, scope: r.namespace.clone(), id: r.schedule_id.clone() };
        self.svc.store().commit(vec![delete]).await?;
        *guard = None;
        self.schedules.by_key.lock().expect("schedules lock").remove(&(r.namespace, r.schedule_id));
        Ok(ws::DeleteScheduleResponse {})
    }

    pub async fn list_schedules(&self, r: Request<ws::ListSchedulesRequest>) -> Result<ws::ListSchedulesResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let filter = self.schedule_filter(&r.namespace, &r.query)?;
        let page_size = if r.maximum_page_size <= 0 { PAGE_SIZE_DEFAULT } else { r.maximum_page_size as usize };
        let after = String::from_utf8(r.next_page_token).map_err(|_| Error::invalid("invalid next_page_token"))?;
        let mut schedules = Vec::new();
        let mut more = false;
        for ((namespace, id), entry) in self.schedules.all() {
            if namespace != r.namespace || (!after.is_empty() && id <= after) {
                continue;
            }
            let guard = entry.lock().await;
            let Some(loaded) = guard.as_ref() else { continue };
            if !filter.as_ref().is_none_or(|f| matches(f, &loaded.record)) {
                continue;
            }
            if schedules.len() == page_size {
                more = true;
                break;
            }
            schedules.push(list_entry(loaded));
        }
        let next_page_token = match more {
            true => schedules.last().map(|s: &sched::ScheduleListEntry| s.schedule_id.clone().into_bytes()),
            false => None,
        };
        Ok(ws::ListSchedulesResponse { schedules, next_page_token: next_page_token.unwrap_or_default() })
    }

    pub async fn count_schedules(&self, r: Request<ws::CountSchedulesRequest>) -> Result<ws::CountSchedulesResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let filter = self.schedule_filter(&r.namespace, &r.query)?;
        let mut count = 0;
        for ((namespace, _), entry) in self.schedules.all() {
            if namespace != r.namespace {
                continue;
            }
            let guard = entry.lock().await;
            if guard.as_ref().is_some_and(|l| filter.as_ref().is_none_or(|f| matches(f, &l.record))) {
                count += 1;
            }
        }
        Ok(ws::CountSchedulesResponse { count, groups: Vec::new() })
    }

    pub async fn list_schedule_matching_times(
        &self,
        r: Request<ws::ListScheduleMatchingTimesRequest>,
    ) -> Result<ws::ListScheduleMatchingTimesResponse> {
        let r = r.into_inner();
        self.svc.namespaces.get(&r.namespace)?;
        let entry = self.schedules.get(&r.namespace, &r.schedule_id).ok_or_else(|| not_found(&r.schedule_id))?;
        let guard = entry.lock().await;
        let loaded = guard.as_ref().ok_or_else(|| not_found(&r.schedule_id))?;
        let (start, end) = (proto::timestamp_ms(r.start_time.as_ref()), proto::timestamp_ms(r.end_time.as_ref()));
        let times = loaded.spec.matching_times(start, end, &loaded.record.namespace_id, &loaded.record.schedule_id);
        Ok(ws::ListScheduleMatchingTimesResponse { start_time: times.into_iter().map(proto::timestamp).collect() })
    }

    /// Starts the runner: resumes watching the runs schedules track, then fires schedules as
    /// their times come, until shutdown. On a cluster it is called each time this node takes
    /// over the registries; the loop is started once and acts only while the node keeps them.
    pub(crate) fn run_schedules(self: &Arc<Self>) {
        for (_, entry) in self.schedules.all() {
            if let Ok(guard) = entry.try_lock() {
                if let Some(loaded) = guard.as_ref() {
                    for run in &loaded.record.info.running_workflows {
                        self.watch_scheduled_run(&loaded.record.namespace, &loaded.record.schedule_id, run.clone());
                    }
                }
            }
        }
        if self.schedules.running.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.schedules.wake.notify_one();
            return;
        }
        let fe = self.clone();
        let mut shutdown = self.svc.runtime().shutdown_signal();
        self.svc.runtime().spawn(async move {
            loop {
                let wake_at = fe.fire_due_schedules().await;
                let sleep_ms = (wake_at - fe.svc.now_ms()).clamp(0, IDLE_WAKE_MS) as u64;
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
                    _ = fe.schedules.wake.notified() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
    }

    /// Fires every schedule whose time has come; returns when the next one is due.
    async fn fire_due_schedules(&self) -> Millis {
        let now_ms = self.svc.now_ms();
        let mut wake_at = now_ms + IDLE_WAKE_MS;
        if !self.svc.holds_registry() {
            return wake_at; // another node keeps the schedules (a cluster)
        }
        for ((namespace, id), entry) in self.schedules.all() {
            let mut guard = entry.lock_owned().await;
            let Some(loaded) = guard.as_ref() else { continue };
            if self.svc.namespaces.get(&namespace).is_err() {
                // The namespace was deleted: its schedules go with it.
                let delete =
                    Write::DeleteRecord { kind: RecordKind::Schedule, scope: namespace.clone(), id: id.clone() };
                if self.svc.store().commit(vec![delete]).await.is_ok() {
                    *guard = None;
                    self.schedules.by_key.lock().expect("schedules lock").remove(&(namespace, id));
                }
                continue;
            }
            let due = loaded.record.next_wakeup_ms(&loaded.spec).is_some_and(|t| t <= now_ms);
            if due {
                self.act(&mut guard).await;
            }
            if let Some(next) = guard.as_ref().and_then(|l| l.record.next_wakeup_ms(&l.spec)) {
                wake_at = wake_at.min(next);
            }
        }
        wake_at
    }

    /// Takes due times into the buffer, decides what the buffer allows, commits that, then
    /// starts, cancels or terminates runs (each start committed as it is made).
    async fn act(&self, guard: &mut tokio::sync::OwnedMutexGuard<Option<Loaded>>) {
        let Some(loaded) = guard.as_mut() else { return };
        let before = loaded.record.clone();
        loaded.record.advance(&loaded.spec, self.svc.now_ms());
        let actions = loaded.record.process_buffer();
        // Nothing due and nothing to start: only the buffer (skips) can have changed.
        let unchanged =
            loaded.record.last_processed_ms == before.last_processed_ms && loaded.record.buffer == before.buffer;
        if actions.is_empty() && unchanged {
            return;
        }
        // Committed with the starts still buffered: a crash from here on makes them again.
        let mut pending = loaded.record.clone();
        for action in &actions {
            if let Action::Start(start) = action {
                pending.buffer.insert(0, start.clone());
            }
        }
        if let Err(e) = self.commit_schedule(&pending).await {
            tracing::warn!(schedule_id = %loaded.record.schedule_id, error = %e, "schedule not committed; retried later");
            loaded.record = before;
            return;
        }
        for action in actions {
            match action {
                Action::Start(start) => {
                    if let Some(run) = self.start_scheduled(&loaded.record, &start).await {
                        loaded.record.started(&start, run.clone());
                        if start.overlap
                            != temporalio_protos::temporal::api::enums::v1::ScheduleOverlapPolicy::AllowAll as i32
                        {
                            self.watch_scheduled_run(&loaded.record.namespace, &loaded.record.schedule_id, run);
                        }
                    }
                }
                Action::Cancel(runs) => {
                    for run in runs {
                        let request = ws::RequestCancelWorkflowExecutionRequest {
                            namespace: loaded.record.namespace.clone(),
                            workflow_execution: Some(run),
                            identity: scheduler_identity(&loaded.record),
                            reason: "cancelled by schedule overlap policy".into(),
                            ..Default::default()
                        };
                        let _ = self.request_cancel_workflow_execution(Request::new(request)).await;
                    }
                }
                Action::Terminate(runs) => {
                    for run in runs {
                        let request = ws::TerminateWorkflowExecutionRequest {
                            namespace: loaded.record.namespace.clone(),
                            workflow_execution: Some(run),
                            identity: scheduler_identity(&loaded.record),
                            reason: "terminated by schedule overlap policy".into(),
                            ..Default::default()
                        };
                        let _ = self.terminate_workflow_execution(Request::new(request)).await;
                    }
                }
            }
        }
        if let Err(e) = self.commit_schedule(&loaded.record).await {
            tracing::warn!(schedule_id = %loaded.record.schedule_id, error = %e, "schedule progress not committed");
        }
        let (was, now) = (&before.info, &loaded.record.info);
        crate::telemetry::schedule(
            &loaded.record.namespace,
            now.action_count - was.action_count,
            now.missed_catchup_window - was.missed_catchup_window,
            now.buffer_dropped - was.buffer_dropped,
        );
    }

    /// Starts the run of one buffered time; `None` if it could not be started (logged).
    async fn start_scheduled(&self, record: &ScheduleRecord, start: &Buffered) -> Option<WorkflowExecution> {
        let action = record.schedule.action.as_ref().and_then(|a| a.action.as_ref());
        let Some(sched::schedule_action::Action::StartWorkflow(info)) = action else { return None };
        let workflow_id = machine::run_workflow_id(&info.workflow_id, start.nominal_ms);
        let mut search_attributes = info.search_attributes.clone().unwrap_or_default();
        search_attributes.indexed_fields.insert("TemporalScheduledById".into(), json_payload(&record.schedule_id));
        let scheduled_at = chrono::DateTime::from_timestamp_millis(start.nominal_ms).unwrap_or_default();
        search_attributes.indexed_fields.insert(
            "TemporalScheduledStartTime".into(),
            json_payload(&scheduled_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
        let request = ws::StartWorkflowExecutionRequest {
            namespace: record.namespace.clone(),
            workflow_id: workflow_id.clone(),
            workflow_type: info.workflow_type.clone(),
            task_queue: info.task_queue.clone(),
            input: info.input.clone(),
            workflow_execution_timeout: info.workflow_execution_timeout,
            workflow_run_timeout: info.workflow_run_timeout,
            workflow_task_timeout: info.workflow_task_timeout,
            identity: scheduler_identity(record),
            request_id: format!("{}-{}-{}-{}", record.namespace_id, record.schedule_id, start.nominal_ms, start.manual),
            retry_policy: info.retry_policy.clone(),
            memo: info.memo.clone(),
            search_attributes: Some(search_attributes),
            header: info.header.clone(),
            last_completion_result: record.last_completion_result.clone(),
            continued_failure: record.last_failure.clone(),
            user_metadata: info.user_metadata.clone(),
            priority: info.priority.clone(),
            // A scheduled time runs once, even if its run has closed (as in Temporal); a
            // manual start may reuse a closed run's id.
            workflow_id_reuse_policy: match start.manual {
                true => WorkflowIdReusePolicy::AllowDuplicate as i32,
                false => WorkflowIdReusePolicy::RejectDuplicate as i32,
            },
            ..Default::default()
        };
        // The same start repeated after a crash (same request id) answers with the run it made.
        match self.start_workflow_execution(Request::new(request)).await {
            Ok(started) => Some(WorkflowExecution { workflow_id, run_id: started.run_id }),
            Err(e) => {
                tracing::warn!(schedule_id = %record.schedule_id, %workflow_id, error = %e, "scheduled start failed");
                None
            }
        }
    }

    /// Waits for a tracked run to close (through continue-as-new), then tells its schedule;
    /// ends with this node's tenure over the registries.
    fn watch_scheduled_run(&self, namespace: &str, schedule_id: &str, run: WorkflowExecution) {
        let Some(fe) = self.me() else { return };
        let (namespace, schedule_id) = (namespace.to_string(), schedule_id.to_string());
        let tenure = self.schedules.tenure();
        let mut shutdown = self.svc.runtime().shutdown_signal();
        self.svc.runtime().spawn(async move {
            let (status, failure, result) = tokio::select! {
                closed = fe.await_close(&namespace, &run) => closed,
                _ = tenure.cancelled() => return,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let Some(entry) = fe.schedules.get(&namespace, &schedule_id) else { return };
            let mut guard = entry.lock_owned().await;
            let Some(loaded) = guard.as_mut() else { return };
            loaded.record.closed(&run, status, failure, result);
            // The close is committed; what it lets start next commits itself.
            if let Err(e) = fe.commit_schedule(&loaded.record).await {
                tracing::warn!(%schedule_id, error = %e, "a tracked run's close not committed");
            }
            fe.act(&mut guard).await;
            fe.schedules.wake.notify_one();
        });
    }

    /// How a run ends, following continue-as-new: long polls for its close event on the node
    /// that serves it (a run that is gone counts as terminated).
    async fn await_close(&self, namespace: &str, run: &WorkflowExecution) -> Closed {
        let mut execution = run.clone();
        loop {
            let request = ws::GetWorkflowExecutionHistoryRequest {
                namespace: namespace.to_string(),
                execution: Some(execution.clone()),
                wait_new_event: true,
                history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
                ..Default::default()
            };
            let asked = tokio::time::Instant::now();
            let page = match self.elsewhere("GetWorkflowExecutionHistory", request).await {
                Ok(Ok(page)) => Ok(page),
                Ok(Err(request)) => self.get_workflow_execution_history(Request::new(request)).await,
                Err(e) => Err(e),
            };
            let close = match page {
                Ok(page) => page.history.and_then(|h| h.events.into_iter().last()).and_then(|e| e.attributes),
                Err(Error::NotFound(_) | Error::NamespaceNotFound(_)) => {
                    return (WorkflowExecutionStatus::Terminated, None, None)
                }
                Err(e) => {
                    tracing::debug!(workflow_id = %execution.workflow_id, error = %e, "a tracked run's close not read yet");
                    None
                }
            };
            match close {
                Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a)) => {
                    execution.run_id = a.new_execution_run_id;
                }
                Some(attributes) => return closed_by(attributes),
                // The long poll ended (or failed) with the run still open: ask again, no
                // sooner than a second after the last time.
                None => tokio::time::sleep_until(asked + std::time::Duration::from_secs(1)).await,
            }
        }
    }

    async fn commit_schedule(&self, record: &ScheduleRecord) -> Result<()> {
        let data = serde_json::to_string(record).map_err(|e| Error::Internal(format!("schedule: {e}")))?;
        let record = Record {
            kind: RecordKind::Schedule,
            scope: record.namespace.clone(),
            id: record.schedule_id.clone(),
            data,
        };
        self.svc.store().commit(vec![Write::Record(record)]).await?;
        Ok(())
    }

    /// The schedule as stored: spec canonical, action checked, policies and state filled.
    fn checked_schedule(
        &self,
        namespace: &str,
        mut schedule: sched::Schedule,
    ) -> Result<(sched::Schedule, CompiledSpec)> {
        let spec =
            CompiledSpec::new(schedule.spec.as_ref().unwrap_or(&Default::default())).map_err(Error::InvalidArgument)?;
        schedule.spec = Some(spec.canonical().clone());
        let action = schedule.action.as_ref().and_then(|a| a.action.as_ref());
        let Some(sched::schedule_action::Action::StartWorkflow(info)) = action else {
            return Err(Error::invalid("Action is not set on schedule."));
        };
        if info.workflow_type.as_ref().is_none_or(|t| t.name.is_empty()) {
            return Err(Error::invalid("WorkflowType is not set on request."));
        }
        if info.task_queue.as_ref().is_none_or(|q| q.name.is_empty()) {
            return Err(Error::invalid("TaskQueue is not set on request."));
        }
        if info.workflow_id.is_empty() {
            return Err(Error::invalid("WorkflowId is not set on request."));
        }
        if !info.cron_schedule.is_empty() {
            return Err(Error::invalid("CronSchedule is not allowed in a schedule's action"));
        }
        if info.workflow_id.len() + "-2009-11-10T23:00:00Z".len() > SCHEDULE_ID_BYTES_MAX {
            return Err(Error::invalid("WorkflowId is too long for a schedule's action."));
        }
        if let Some(sa) = &info.search_attributes {
            self.checked_schedule_attributes(namespace, Some(sa.clone()))?;
        }
        // The queue's kind is stored as Temporal stores it.
        if let Some(sched::schedule_action::Action::StartWorkflow(info)) =
            schedule.action.as_mut().and_then(|a| a.action.as_mut())
        {
            if let Some(queue) = info.task_queue.as_mut().filter(|q| q.kind == 0) {
                queue.kind = temporalio_protos::temporal::api::enums::v1::TaskQueueKind::Normal as i32;
            }
        }
        let policies = schedule.policies.get_or_insert_with(Default::default);
        policies.overlap_policy = machine::resolve(policies.overlap_policy);
        let window = proto::duration_ms(policies.catchup_window.as_ref());
        policies.catchup_window = Some(proto::duration(match window {
            0 => machine::CATCHUP_WINDOW_DEFAULT_MS,
            w => w.max(machine::CATCHUP_WINDOW_MIN_MS),
        }));
        schedule.state.get_or_insert_with(Default::default);
        Ok((schedule, spec))
    }

    fn checked_schedule_attributes(
        &self,
        namespace: &str,
        sa: Option<SearchAttributes>,
    ) -> Result<Option<SearchAttributes>> {
        let Some(sa) = sa else { return Ok(None) };
        let custom = self.svc.namespaces.custom_types(namespace);
        let registry = crate::visibility::attributes::Registry { custom: &custom };
        crate::visibility::attributes::validate(&sa, &registry, namespace, false)
            .map(Some)
            .map_err(Error::InvalidArgument)
    }

    /// A schedule query: custom attributes, `TemporalSchedulePaused` and `ScheduleId` only.
    fn schedule_filter(&self, namespace: &str, q: &str) -> Result<Option<Expr>> {
        if q.trim().is_empty() {
            return Ok(None);
        }
        let custom = self.svc.namespaces.custom_types(namespace);
        let parsed = query::parse(q, &crate::visibility::attributes::Registry { custom: &custom })
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let Some(filter) = parsed.filter else { return Ok(None) };
        let mut bad = None;
        visit(&filter, &mut |p| {
            let allowed = matches!(p.attribute.column, query::Column::Custom(_))
                || p.attribute.name == "TemporalSchedulePaused"
                || p.attribute.name == "WorkflowId";
            if !allowed && bad.is_none() {
                bad = Some(p.attribute.name.clone());
            }
        });
        if let Some(name) = bad {
            return Err(Error::invalid(format!("invalid query filter for schedules: cannot filter on {name:?}")));
        }
        Ok(Some(filter))
    }
}

fn check_schedule_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("ScheduleId is not set on request."));
    }
    if id.len() > SCHEDULE_ID_BYTES_MAX {
        return Err(Error::invalid("ScheduleId is too long."));
    }
    Ok(())
}

fn scheduler_identity(record: &ScheduleRecord) -> String {
    format!("temporal-scheduler-{}-{}", record.namespace, record.schedule_id)
}

fn json_payload(s: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: serde_json::to_vec(s).expect("a string serialises"),
        ..Default::default()
    }
}

/// Trigger, backfills, pause and unpause, in Temporal's order.
fn apply_patch(
    record: &mut ScheduleRecord,
    spec: &CompiledSpec,
    patch: &sched::SchedulePatch,
    now_ms: Millis,
) -> Result<()> {
    if let Some(trigger) = &patch.trigger_immediately {
        record.trigger(trigger.overlap_policy, now_ms);
    }
    for backfill in &patch.backfill_request {
        let (start, end) =
            (proto::timestamp_ms(backfill.start_time.as_ref()), proto::timestamp_ms(backfill.end_time.as_ref()));
        record.backfill(spec, start, end, backfill.overlap_policy);
    }
    let state = record.schedule.state.get_or_insert_with(Default::default);
    if !patch.pause.is_empty() {
        state.paused = true;
        state.notes = patch.pause.clone();
    }
    if !patch.unpause.is_empty() {
        state.paused = false;
        state.notes = patch.unpause.clone();
    }
    Ok(())
}

/// How a run ended: status, failure (failed runs), result (completed runs).
type Closed = (
    WorkflowExecutionStatus,
    Option<temporalio_protos::temporal::api::failure::v1::Failure>,
    Option<temporalio_protos::temporal::api::common::v1::Payloads>,
);

/// How a run ended, from its close event.
fn closed_by(close: Attributes) -> Closed {
    match close {
        Attributes::WorkflowExecutionCompletedEventAttributes(a) => {
            (WorkflowExecutionStatus::Completed, None, a.result)
        }
        Attributes::WorkflowExecutionFailedEventAttributes(a) => (WorkflowExecutionStatus::Failed, a.failure, None),
        Attributes::WorkflowExecutionCanceledEventAttributes(_) => (WorkflowExecutionStatus::Canceled, None, None),
        Attributes::WorkflowExecutionTimedOutEventAttributes(_) => (WorkflowExecutionStatus::TimedOut, None, None),
        _ => (WorkflowExecutionStatus::Terminated, None, None),
    }
}

fn list_entry(loaded: &Loaded) -> sched::ScheduleListEntry {
    let record = &loaded.record;
    let workflow_type = match record.schedule.action.as_ref().and_then(|a| a.action.as_ref()) {
        Some(sched::schedule_action::Action::StartWorkflow(info)) => info.workflow_type.clone(),
        None => None,
    };
    let state = record.schedule.state.clone().unwrap_or_default();
    let recent = &record.info.recent_actions;
    let info = sched::ScheduleListInfo {
        spec: record.schedule.spec.clone(),
        workflow_type,
        notes: state.notes,
        paused: state.paused,
        recent_actions: recent[recent.len().saturating_sub(RECENT_ACTIONS_LIST)..].to_vec(),
        future_action_times: record
            .future_action_times(&loaded.spec, FUTURE_TIMES_LIST)
            .into_iter()
            .map(proto::timestamp)
            .collect(),
        ..Default::default()
    };
    sched::ScheduleListEntry {
        schedule_id: record.schedule_id.clone(),
        memo: record.memo.clone(),
        search_attributes: record.search_attributes.clone(),
        info: Some(info),
    }
}

fn visit(expr: &Expr, f: &mut impl FnMut(&query::Predicate)) {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| visit(p, f)),
        Expr::Not(inner) => visit(inner, f),
        Expr::Leaf(p) => f(p),
    }
}

/// Evaluates a schedule filter in memory, with SQL's meaning (a missing value matches only
/// IS NULL).
fn matches(expr: &Expr, record: &ScheduleRecord) -> bool {
    match expr {
        Expr::And(parts) => parts.iter().all(|p| matches(p, record)),
        Expr::Or(parts) => parts.iter().any(|p| matches(p, record)),
        Expr::Not(inner) => !matches(inner, record),
        Expr::Leaf(p) => {
            let values = values_of(&p.attribute, record);
            test(&p.test, &values, p.attribute.value_type == query::ValueType::Text)
        }
    }
}

fn values_of(attribute: &query::Attribute, record: &ScheduleRecord) -> Vec<SqlValue> {
    use crate::visibility::attributes::Value;
    match attribute.name.as_str() {
        "WorkflowId" => return vec![SqlValue::Text(record.schedule_id.clone())],
        "TemporalSchedulePaused" => return vec![SqlValue::Int(record.paused() as i64)],
        _ => {}
    }
    let Some(payload) = record.search_attributes.as_ref().and_then(|sa| sa.indexed_fields.get(&attribute.name)) else {
        return Vec::new();
    };
    match crate::visibility::attributes::stored_value(payload) {
        Some(Value::Keyword(s)) => vec![SqlValue::Text(s)],
        Some(Value::Text(s)) => query::text_tokens(&s).into_iter().map(SqlValue::Text).collect(),
        Some(Value::KeywordList(items)) => items.into_iter().map(SqlValue::Text).collect(),
        Some(Value::Int(n)) | Some(Value::Datetime(n)) => vec![SqlValue::Int(n)],
        Some(Value::Bool(b)) => vec![SqlValue::Int(b as i64)],
        Some(Value::Double(f)) => vec![SqlValue::Double(f)],
        None => Vec::new(),
    }
}

fn compare(a: &SqlValue, b: &SqlValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (SqlValue::Text(a), SqlValue::Text(b)) => Some(a.cmp(b)),
        (SqlValue::Int(a), SqlValue::Int(b)) => Some(a.cmp(b)),
        (SqlValue::Int(a), SqlValue::Double(b)) => (*a as f64).partial_cmp(b),
        (SqlValue::Double(a), SqlValue::Int(b)) => a.partial_cmp(&(*b as f64)),
        (SqlValue::Double(a), SqlValue::Double(b)) => a.partial_cmp(b),
        _ => None,
    }
}

/// One test over an attribute's values (several for KeywordList and Text: any may match).
fn test(t: &Test, values: &[SqlValue], text: bool) -> bool {
    use std::cmp::Ordering::*;
    let any = |f: &dyn Fn(&SqlValue) -> bool| values.iter().any(f);
    match t {
        Test::IsNull => values.is_empty(),
        Test::IsNotNull => !values.is_empty(),
        Test::Compare(op, literal) => {
            if text {
                // Text: some token of the value is a token of the literal.
                let SqlValue::Text(literal) = literal else { return false };
                let tokens = query::text_tokens(literal);
                let hit = any(&|v| matches!(v, SqlValue::Text(s) if tokens.contains(s)));
                return if *op == CmpOp::Ne { !values.is_empty() && !hit } else { hit };
            }
            any(&|v| {
                compare(v, literal).is_some_and(|o| match op {
                    CmpOp::Eq => o == Equal,
                    CmpOp::Ne => o != Equal,
                    CmpOp::Lt => o == Less,
                    CmpOp::Le => o != Greater,
                    CmpOp::Gt => o == Greater,
                    CmpOp::Ge => o != Less,
                })
            })
        }
        Test::In(list) => any(&|v| list.iter().any(|l| compare(v, l) == Some(Equal))),
        Test::NotIn(list) => !values.is_empty() && !any(&|v| list.iter().any(|l| compare(v, l) == Some(Equal))),
        Test::Between(lo, hi) => {
            any(&|v| compare(v, lo).is_some_and(|o| o != Less) && compare(v, hi).is_some_and(|o| o != Greater))
        }
        Test::NotBetween(lo, hi) => any(&|v| compare(v, lo) == Some(Less) || compare(v, hi) == Some(Greater)),
        Test::StartsWith(prefix) => any(&|v| matches!(v, SqlValue::Text(s) if s.starts_with(prefix.as_str()))),
        Test::NotStartsWith(prefix) => any(&|v| matches!(v, SqlValue::Text(s) if !s.starts_with(prefix.as_str()))),
    }
}
