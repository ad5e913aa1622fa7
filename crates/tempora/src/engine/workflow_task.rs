//! Workflow tasks: scheduling, start (poll), completion with commands, failure, timeout.

use std::collections::HashMap;

use temporalio_protos::temporal::api::command::v1::Command;
use temporalio_protos::temporal::api::enums::v1::{TimeoutType, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::{self as history, HistoryEvent};
use temporalio_protos::temporal::api::sdk::v1::WorkflowTaskCompletedMetadata;

use super::commands::is_closing_command;
use super::state::{Encoded, Sticky, WorkflowTask};
use super::updates::Messages;
use super::workflow::normal_queue;
use super::{Effect, Timer, Tx};
use crate::clock::proto;
use crate::error::{Error, Result};

/// The part of a `RespondWorkflowTaskCompleted` the engine needs, validated.
/// The predefined search attribute listing the builds that completed a run's workflow tasks.
const BUILD_IDS: &str = "BuildIds";

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CompleteWorkflowTask {
    pub scheduled_event_id: i64,
    pub attempt: i32,
    pub commands: Vec<Command>,
    pub identity: String,
    pub binary_checksum: String,
    /// The worker's build id (empty if it gave none), recorded in the run's `BuildIds`.
    #[serde(default)]
    pub build_id: String,
    pub sdk_metadata: Option<WorkflowTaskCompletedMetadata>,
    pub metering_metadata: Option<temporalio_protos::temporal::api::common::v1::MeteringMetadata>,
    pub force_create_new_workflow_task: bool,
    /// The worker's sticky queue, if it caches the run.
    pub sticky: Option<Sticky>,
    /// Protocol messages (update acceptances, rejections, responses).
    #[serde(with = "super::proto_serde::list")]
    pub messages: Vec<temporalio_protos::temporal::api::protocol::v1::Message>,
    /// The update requests handed out with this task, by update id.
    pub update_requests: HashMap<String, temporalio_protos::temporal::api::update::v1::Request>,
    /// Updates wait that this task did not carry: a new task must follow.
    pub updates_waiting: bool,
    /// The ids of the Nexus endpoints its `ScheduleNexusOperation` commands name, by name
    /// (resolved by the frontend; a name missing here is not registered).
    #[serde(default)]
    pub nexus_endpoints: std::collections::BTreeMap<String, String>,
    /// The worker's deployment version, if it is a versioned worker, and the versioning
    /// behavior it gives the run (`VersioningBehavior`).
    #[serde(default)]
    pub deployment: Option<super::state::DeploymentVersion>,
    #[serde(default)]
    pub versioning_behavior: i32,
}

/// What a poller needs after starting a workflow task.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StartedWorkflowTask {
    pub scheduled_event_id: i64,
    pub started_event_id: i64,
    pub attempt: i32,
    pub previous_started_event_id: i64,
    /// For a transient attempt: its scheduled and started events, shown to the worker but not
    /// (yet) part of history.
    pub transient_events: Vec<HistoryEvent>,
    pub scheduled_time_ms: i64,
    pub started_time_ms: i64,
}

/// What a completion did that the worker must know.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Completed {
    /// Non-zero when a speculative task was dropped: the worker rewinds to this started id
    /// (`RespondWorkflowTaskCompletedResponse.reset_history_event_id`).
    pub reset_history_event_id: i64,
}

/// Why a completion was not accepted as it stands.
pub(super) enum Rejection {
    /// Fail the task with this cause and message; answer the worker InvalidArgument.
    Bad(WorkflowTaskFailedCause, String),
    /// As `Bad`, then terminate the run (a payload over the limit, as in Temporal).
    Terminate(WorkflowTaskFailedCause, String),
}

impl Tx<'_> {
    /// Schedules a workflow task unless one is already scheduled or running.
    pub fn schedule_workflow_task_if_needed(&mut self) {
        // During a first-task backoff (cron, retry), events wait for the backoff to end.
        if self.state.workflow_task.is_some() || !self.state.is_open() || self.state.backoff_until_ms > 0 {
            return;
        }
        self.schedule_workflow_task(1, false);
    }

    /// Schedules a workflow task to deliver updates, unless one is pending. It is written to
    /// history only if it ends up changing something (see `complete_workflow_task`).
    pub fn schedule_speculative_workflow_task(&mut self) -> bool {
        if self.state.workflow_task.is_some() || !self.state.is_open() || self.state.backoff_until_ms > 0 {
            return false;
        }
        self.schedule_workflow_task(1, true);
        true
    }

    /// A speculative task that has not started becomes a normal one (an event arrived for it).
    pub(crate) fn unspeculate(&mut self) {
        let Some(wft) = self.state.workflow_task.clone() else { return };
        if !wft.speculative || wft.is_started() {
            return;
        }
        let scheduled_event_id = self.append(self.scheduled_attrs(&wft));
        if let Some(w) = self.state.workflow_task.as_mut() {
            w.speculative = false;
            w.scheduled_event_id = scheduled_event_id;
        }
    }

    fn schedule_workflow_task(&mut self, attempt: i32, speculative: bool) {
        let scheduled_event_id = if attempt > 1 || speculative {
            0
        } else {
            self.append(history::WorkflowTaskScheduledEventAttributes {
                task_queue: Some(self.dispatch_queue()),
                start_to_close_timeout: Some(proto::duration(self.state.workflow_task_timeout_ms)),
                attempt,
            })
        };
        self.state.workflow_task = Some(WorkflowTask {
            attempt,
            scheduled_event_id,
            started_event_id: 0,
            scheduled_time_ms: self.now,
            started_time_ms: 0,
            started_identity: String::new(),
            started_request_id: String::new(),
            started_build_id: String::new(),
            speculative,
        });
        self.effects.push(Effect::DispatchWorkflowTask {
            task_queue: self.state.task_queue.clone(),
            sticky: self.state.sticky.clone(),
            routing: Default::default(),
        });
    }

    /// The queue a workflow task is scheduled on, as history records it: the sticky queue of
    /// the worker that caches the run, if there is one (matching falls back to the normal
    /// queue if that worker is gone), else the run's task queue. As Temporal records it.
    fn dispatch_queue(&self) -> temporalio_protos::temporal::api::taskqueue::v1::TaskQueue {
        match &self.state.sticky {
            Some(sticky) => temporalio_protos::temporal::api::taskqueue::v1::TaskQueue {
                name: sticky.task_queue.clone(),
                kind: temporalio_protos::temporal::api::enums::v1::TaskQueueKind::Sticky as i32,
                normal_name: self.state.task_queue.clone(),
            },
            None => normal_queue(&self.state.task_queue),
        }
    }

    fn scheduled_attrs(&self, wft: &WorkflowTask) -> history::WorkflowTaskScheduledEventAttributes {
        history::WorkflowTaskScheduledEventAttributes {
            task_queue: Some(self.dispatch_queue()),
            start_to_close_timeout: Some(proto::duration(self.state.workflow_task_timeout_ms)),
            attempt: wft.attempt,
        }
    }

    fn started_attrs(&self, wft: &WorkflowTask) -> history::WorkflowTaskStartedEventAttributes {
        history::WorkflowTaskStartedEventAttributes {
            scheduled_event_id: wft.scheduled_event_id,
            identity: wft.started_identity.clone(),
            request_id: wft.started_request_id.clone(),
            worker_version: (!wft.started_build_id.is_empty()).then(|| {
                temporalio_protos::temporal::api::common::v1::WorkerVersionStamp {
                    build_id: wft.started_build_id.clone(),
                    ..Default::default()
                }
            }),
            history_size_bytes: self.state.history_size_bytes,
            suggest_continue_as_new: self.state.next_event_id >= self.limits.history_count_suggest_continue_as_new
                || self.state.history_size_bytes >= self.limits.history_size_bytes_suggest_continue_as_new,
            ..Default::default()
        }
    }

    /// A worker polled the scheduled workflow task. `None` if there is none to start (the
    /// queued task was stale).
    pub fn start_workflow_task(
        &mut self,
        identity: &str,
        request_id: &str,
        build_id: &str,
    ) -> Option<StartedWorkflowTask> {
        let mut wft = self.state.workflow_task.clone()?;
        if wft.is_started() || !self.state.is_open() {
            return None;
        }
        wft.started_identity = identity.to_string();
        wft.started_request_id = request_id.to_string();
        wft.started_build_id = build_id.to_string();
        wft.started_time_ms = self.now;
        let mut transient_events = Vec::new();
        if wft.is_transient() {
            wft.scheduled_event_id = self.state.next_event_id;
            wft.started_event_id = self.state.next_event_id + 1;
            let scheduled = self.event(wft.scheduled_event_id, self.scheduled_attrs(&wft).into());
            let started = self.event(wft.started_event_id, self.started_attrs(&wft).into());
            transient_events = vec![scheduled, started];
        } else {
            wft.started_event_id = self.append(self.started_attrs(&wft));
        }
        self.schedule_timer(
            self.now + self.state.workflow_task_timeout_ms,
            Timer::WorkflowTaskTimeout { scheduled_event_id: wft.scheduled_event_id, attempt: wft.attempt },
        );
        let started = StartedWorkflowTask {
            scheduled_event_id: wft.scheduled_event_id,
            started_event_id: wft.started_event_id,
            attempt: wft.attempt,
            previous_started_event_id: self.state.last_completed_wft_started_event_id,
            transient_events,
            scheduled_time_ms: wft.scheduled_time_ms,
            started_time_ms: wft.started_time_ms,
        };
        self.state.workflow_task = Some(wft);
        Some(started)
    }

    /// The running workflow task named by a token, or NotFound.
    fn running_workflow_task(&self, scheduled_event_id: i64, attempt: i32) -> Result<WorkflowTask> {
        if !self.state.is_open() {
            return Err(Error::not_found("Workflow execution already completed."));
        }
        match &self.state.workflow_task {
            Some(w) if w.is_started() && w.scheduled_event_id == scheduled_event_id && w.attempt == attempt => {
                Ok(w.clone())
            }
            _ => Err(Error::not_found("Workflow task not found.")),
        }
    }

    /// Adds the completing worker's build to the run's `BuildIds` search attribute, as
    /// Temporal does for unversioned workers: `unversioned`, and `unversioned:<build id>`.
    /// State only (no history event), like Temporal.
    fn record_build_id(&mut self, build_id: &str) {
        use crate::visibility::attributes::{self, Value};
        use temporalio_protos::temporal::api::common::v1::SearchAttributes;
        let mut sa: SearchAttributes = self.state.search_attributes.as_ref().map(|e| e.decode()).unwrap_or_default();
        let mut ids = match sa.indexed_fields.get(BUILD_IDS).and_then(attributes::stored_value) {
            Some(Value::KeywordList(ids)) => ids,
            _ => Vec::new(),
        };
        let wanted = std::iter::once("unversioned".to_string())
            .chain((!build_id.is_empty()).then(|| format!("unversioned:{build_id}")));
        let before = ids.len();
        for id in wanted {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.len() != before {
            sa.indexed_fields.insert(BUILD_IDS.to_string(), attributes::encode(&Value::KeywordList(ids)));
            self.state.search_attributes = Some(Encoded::of(&sa));
        }
    }

    /// Writes a transient attempt's scheduled and started events, which become real now.
    fn materialize(&mut self, wft: &WorkflowTask) {
        if wft.is_transient() {
            let scheduled = self.append(self.scheduled_attrs(wft));
            let started = self.append(self.started_attrs(wft));
            debug_assert_eq!((scheduled, started), (wft.scheduled_event_id, wft.started_event_id));
        }
    }

    /// Appends the events buffered while the workflow task ran.
    pub(crate) fn flush_buffered_events(&mut self) -> bool {
        let buffered = std::mem::take(&mut self.state.buffered_events);
        let any = !buffered.is_empty();
        let mut links = HashMap::new();
        for encoded in buffered {
            let event: HistoryEvent = encoded.decode();
            if let Some(attributes) = event.attributes {
                self.append_linked(attributes, &mut links);
            }
        }
        any
    }

    /// `RespondWorkflowTaskCompleted`. On a bad command the task fails instead (that failure
    /// is committed) and the worker gets the returned error.
    pub fn complete_workflow_task(&mut self, req: CompleteWorkflowTask) -> Result<Result<Completed>> {
        let wft = self.running_workflow_task(req.scheduled_event_id, req.attempt)?;
        let closes = req.commands.iter().any(is_closing_command);
        // New events must reach the worker before the run closes. Updates it has not seen do
        // not hold the run open (as in Temporal): they end with it, or move to the next run.
        if closes && !self.state.buffered_events.is_empty() {
            self.fail_running_workflow_task(
                &wft,
                WorkflowTaskFailedCause::UnhandledCommand,
                None,
                &req.identity,
                Some(1),
            );
            return Ok(Err(Error::UnhandledCommand));
        }
        // Commands are applied to a copy so a bad one leaves no trace but the failure.
        let saved_state = self.state.clone();
        let saved_events = self.events.len();
        let saved_effects = self.effects.len();
        match self.apply_completion(&wft, &req) {
            Ok(completed) => {
                self.record_build_id(&req.build_id);
                Ok(Ok(completed))
            }
            Err(rejection) => {
                *self.state = saved_state;
                self.events.truncate(saved_events);
                self.effects.truncate(saved_effects);
                self.new_run = None;
                let (cause, message, terminate) = match rejection {
                    Rejection::Bad(cause, message) => (cause, message, false),
                    Rejection::Terminate(cause, message) => (cause, message, true),
                };
                let failure = Failure { message: message.clone(), ..Default::default() };
                self.fail_running_workflow_task(&wft, cause, Some(failure), &req.identity, None);
                if terminate {
                    self.terminate(&message, None, "tempora");
                }
                Ok(Err(Error::InvalidArgument(message)))
            }
        }
    }

    fn apply_completion(&mut self, wft: &WorkflowTask, req: &CompleteWorkflowTask) -> Result<Completed, Rejection> {
        let nothing_to_write = req.commands.is_empty()
            && !req.force_create_new_workflow_task
            && self.state.buffered_events.is_empty()
            && super::updates::only_rejections(&req.messages);
        if wft.speculative && nothing_to_write {
            // Only rejections: the task leaves no trace in history, as in Temporal.
            self.state.workflow_task = None;
            self.state.sticky = req.sticky.clone();
            let mut messages = Messages::new(req.messages.clone(), req.update_requests.clone());
            self.remaining_messages(&mut messages, 0)
                .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage, m))?;
            if req.updates_waiting {
                self.schedule_speculative_workflow_task();
            }
            // The worker must forget the task's events too.
            return Ok(Completed { reset_history_event_id: self.state.last_completed_wft_started_event_id });
        }
        self.materialize(wft);
        let completed_id = self.append(history::WorkflowTaskCompletedEventAttributes {
            scheduled_event_id: wft.scheduled_event_id,
            started_event_id: wft.started_event_id,
            identity: req.identity.clone(),
            // A worker that names its build gets it recorded as its version, the checksum
            // only otherwise (as Temporal records them).
            binary_checksum: if req.build_id.is_empty() { req.binary_checksum.clone() } else { String::new() },
            worker_version: (!req.build_id.is_empty()).then(|| {
                temporalio_protos::temporal::api::common::v1::WorkerVersionStamp {
                    build_id: req.build_id.clone(),
                    use_versioning: req.deployment.is_some(),
                }
            }),
            sdk_metadata: req.sdk_metadata.clone(),
            metering_metadata: req.metering_metadata,
            versioning_behavior: if req.deployment.is_some() { req.versioning_behavior } else { 0 },
            worker_deployment_name: req.deployment.as_ref().map(|d| d.deployment_name.clone()).unwrap_or_default(),
            deployment_version: req.deployment.as_ref().map(|d| d.to_proto()),
            ..Default::default()
        });
        // A versioned worker's completion moves the run to its version and behavior.
        if let Some(version) = &req.deployment {
            self.state.versioning.version = Some(version.clone());
            self.state.versioning.behavior = req.versioning_behavior;
        } else if !self.state.versioning.is_default() && self.state.versioning.version.is_some() {
            // An unversioned worker completed it: the run is unversioned again.
            self.state.versioning.version = None;
            self.state.versioning.behavior = 0;
        }
        // Appending the completion cleared the task and moved `last_completed_…`.
        self.state.sticky = req.sticky.clone();
        let mut needs_new_task = req.force_create_new_workflow_task || req.updates_waiting;
        let mut messages = Messages::new(req.messages.clone(), req.update_requests.clone());
        for command in &req.commands {
            if !self.state.is_open() {
                break; // Temporal ignores commands after the closing one.
            }
            needs_new_task |= self.apply_command(command, completed_id, &mut messages, &req.nexus_endpoints)?;
        }
        if !self.state.is_open() {
            return Ok(Completed::default());
        }
        self.remaining_messages(&mut messages, completed_id)
            .map_err(|m| Rejection::Bad(WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage, m))?;
        needs_new_task |= self.flush_buffered_events();
        if needs_new_task {
            self.schedule_workflow_task_if_needed();
        }
        Ok(Completed::default())
    }

    /// `RespondWorkflowTaskFailed` from the worker.
    pub fn fail_workflow_task(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        cause: WorkflowTaskFailedCause,
        failure: Option<Failure>,
        identity: &str,
    ) -> Result<()> {
        let wft = self.running_workflow_task(scheduled_event_id, attempt)?;
        self.fail_running_workflow_task(&wft, cause, failure, identity, None);
        Ok(())
    }

    /// Records a failed attempt and schedules the next one. Only the first failure is written
    /// to history; later attempts are transient (Temporal does the same).
    fn fail_running_workflow_task(
        &mut self,
        wft: &WorkflowTask,
        cause: WorkflowTaskFailedCause,
        failure: Option<Failure>,
        identity: &str,
        next_attempt: Option<i32>,
    ) {
        let next_attempt = next_attempt.unwrap_or(wft.attempt + 1);
        if wft.attempt == 1 || next_attempt == 1 {
            self.materialize(wft);
            self.append(history::WorkflowTaskFailedEventAttributes {
                scheduled_event_id: wft.scheduled_event_id,
                started_event_id: wft.started_event_id,
                cause: cause as i32,
                failure,
                identity: identity.to_string(),
                ..Default::default()
            });
        }
        self.after_failed_attempt(next_attempt);
    }

    fn after_failed_attempt(&mut self, next_attempt: i32) {
        self.state.workflow_task = None;
        // The worker drops a run whose task failed; its next task needs the full history.
        self.state.sticky = None;
        let flushed = self.flush_buffered_events();
        // New events make the next attempt a normal (written) one, as in Temporal.
        self.schedule_workflow_task(if flushed { 1 } else { next_attempt }, false);
    }

    /// A task offered on the sticky queue waited too long: offer it on the normal queue.
    pub fn sticky_timed_out(&mut self, force: bool) -> bool {
        let (Some(w), Some(sticky)) = (&self.state.workflow_task, &self.state.sticky) else { return false };
        let due = w.scheduled_time_ms + sticky.schedule_to_start_ms;
        if w.is_started() || (!force && self.now < due) {
            return false;
        }
        self.state.sticky = None;
        self.effects.push(Effect::DispatchWorkflowTask {
            task_queue: self.state.task_queue.clone(),
            sticky: None,
            routing: Default::default(),
        });
        true
    }

    /// The workflow task's start-to-close timeout fired.
    pub fn workflow_task_timed_out(&mut self, scheduled_event_id: i64, attempt: i32) -> bool {
        let Ok(wft) = self.running_workflow_task(scheduled_event_id, attempt) else {
            return false;
        };
        if self.now < wft.started_time_ms + self.state.workflow_task_timeout_ms {
            return false;
        }
        if wft.attempt == 1 {
            self.materialize(&wft);
            self.append(history::WorkflowTaskTimedOutEventAttributes {
                scheduled_event_id: wft.scheduled_event_id,
                started_event_id: wft.started_event_id,
                timeout_type: TimeoutType::StartToClose as i32,
            });
        }
        self.after_failed_attempt(wft.attempt + 1);
        true
    }
}
