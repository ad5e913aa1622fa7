//! Activities: scheduling, start (poll), heartbeat, completion, server-side retries, timeouts,
//! cancellation.
//!
//! Lifecycle of one activity (by its `ActivityTaskScheduled` id):
//! `Scheduled → Started → (Completed | Failed | TimedOut | Canceled)`, where a failed or timed
//! out attempt that the retry policy allows goes `Started → BackingOff → Scheduled` with
//! `attempt + 1` and no history event. The final outcome writes `ActivityTaskStarted` (with the
//! last attempt) and the closing event together.

use temporalio_protos::temporal::api::command::v1::ScheduleActivityTaskCommandAttributes;
use temporalio_protos::temporal::api::common::v1::{self as common, Payloads};
use temporalio_protos::temporal::api::enums::v1::{RetryState, TimeoutType, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::{failure, Failure, TimeoutFailureInfo};
use temporalio_protos::temporal::api::history::v1 as history;

use super::state::{Activity, Encoded, RetryPolicy};
use super::{ActivityTimeoutKind, Effect, Timer, Tx, LINK_STARTED};
use crate::clock::{proto, Millis};
use crate::error::{Error, Result};
use temporalio_protos::temporal::api::history::v1::history_event::Attributes;

/// Temporal's defaults for an activity retry policy field left unset.
const DEFAULT_INITIAL_INTERVAL_MS: Millis = 1000;
const DEFAULT_BACKOFF_COEFFICIENT: f64 = 2.0;
const DEFAULT_MAXIMUM_INTERVAL_FACTOR: i64 = 100;

/// Fills Temporal's defaults into a retry policy and validates it.
pub fn retry_policy(p: Option<&common::RetryPolicy>) -> std::result::Result<RetryPolicy, String> {
    let p = p.cloned().unwrap_or_default();
    // A duration under a millisecond (but not zero) is kept as one millisecond, not dropped.
    let ms = |d: &Option<prost_types::Duration>| match proto::duration_ms(d.as_ref()) {
        0 if d.as_ref().is_some_and(|d| d.seconds == 0 && d.nanos > 0) => 1,
        ms => ms,
    };
    let mut initial = ms(&p.initial_interval);
    if initial < 0 {
        return Err("InitialInterval cannot be negative on retry policy.".into());
    }
    if initial == 0 {
        initial = DEFAULT_INITIAL_INTERVAL_MS;
    }
    let mut coefficient = p.backoff_coefficient;
    if coefficient == 0.0 {
        coefficient = DEFAULT_BACKOFF_COEFFICIENT;
    }
    if coefficient < 1.0 {
        return Err("BackoffCoefficient cannot be less than 1 on retry policy.".into());
    }
    let mut maximum = ms(&p.maximum_interval);
    if maximum < 0 {
        return Err("MaximumInterval cannot be negative on retry policy.".into());
    }
    if maximum == 0 {
        maximum = initial.saturating_mul(DEFAULT_MAXIMUM_INTERVAL_FACTOR);
    }
    if maximum < initial {
        return Err("MaximumInterval cannot be less than InitialInterval on retry policy.".into());
    }
    if p.maximum_attempts < 0 {
        return Err("MaximumAttempts cannot be negative on retry policy.".into());
    }
    Ok(RetryPolicy {
        initial_interval_ms: initial,
        backoff_coefficient: coefficient,
        maximum_interval_ms: maximum,
        maximum_attempts: p.maximum_attempts,
        non_retryable_error_types: p.non_retryable_error_types,
    })
}

/// A retry policy as the workflow gave it, with Temporal's defaults in its unset fields: what
/// history records (durations exactly as given, finer than the milliseconds tempora keeps).
pub fn retry_policy_as_given(p: Option<&common::RetryPolicy>) -> common::RetryPolicy {
    let mut p = p.cloned().unwrap_or_default();
    let is_zero = |d: &Option<prost_types::Duration>| d.as_ref().is_none_or(|d| d.seconds == 0 && d.nanos == 0);
    if is_zero(&p.initial_interval) {
        p.initial_interval = Some(proto::duration(DEFAULT_INITIAL_INTERVAL_MS));
    }
    if p.backoff_coefficient == 0.0 {
        p.backoff_coefficient = DEFAULT_BACKOFF_COEFFICIENT;
    }
    if is_zero(&p.maximum_interval) {
        let initial = p.initial_interval.unwrap_or_default();
        let nanos = (i128::from(initial.seconds) * 1_000_000_000 + i128::from(initial.nanos))
            * i128::from(DEFAULT_MAXIMUM_INTERVAL_FACTOR);
        p.maximum_interval = Some(prost_types::Duration {
            seconds: (nanos / 1_000_000_000).clamp(0, i128::from(i64::MAX)) as i64,
            nanos: (nanos % 1_000_000_000) as i32,
        });
    }
    p
}

impl Activity {
    /// The pending activity an `ActivityTaskScheduled` event stands for, at its first attempt
    /// (scheduling it, and replaying its history, both build it here).
    pub(crate) fn scheduled(
        scheduled_event_id: i64,
        a: &history::ActivityTaskScheduledEventAttributes,
        at_ms: Millis,
    ) -> Activity {
        let ms = |d: &Option<prost_types::Duration>| proto::duration_ms(d.as_ref());
        Activity {
            scheduled_event_id,
            activity_id: a.activity_id.clone(),
            activity_type: a.activity_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
            task_queue: a.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
            scheduled_time_ms: at_ms,
            attempt: 1,
            attempt_scheduled_time_ms: at_ms,
            started_time_ms: 0,
            started_identity: String::new(),
            started_request_id: String::new(),
            schedule_to_start_ms: ms(&a.schedule_to_start_timeout),
            start_to_close_ms: ms(&a.start_to_close_timeout),
            schedule_to_close_ms: ms(&a.schedule_to_close_timeout),
            heartbeat_ms: ms(&a.heartbeat_timeout),
            // Written by `schedule_activity` from a checked policy, so it is valid.
            retry: retry_policy(a.retry_policy.as_ref()).unwrap_or_default(),
            last_heartbeat_ms: 0,
            heartbeat_details: None,
            last_failure: None,
            cancel_requested: false,
            cancel_requested_event_id: 0,
            backoff_until_ms: 0,
            paused: None,
            reset_requested: false,
        }
    }
}

/// Temporal's timeout normalisation for a scheduled activity.
/// Returns (schedule_to_close, schedule_to_start, start_to_close, heartbeat).
fn normalize_timeouts(
    a: &ScheduleActivityTaskCommandAttributes,
    run_timeout_ms: Millis,
) -> std::result::Result<(Millis, Millis, Millis, Millis), String> {
    let mut s2c = proto::duration_ms(a.schedule_to_close_timeout.as_ref());
    let mut s2s = proto::duration_ms(a.schedule_to_start_timeout.as_ref());
    let mut stc = proto::duration_ms(a.start_to_close_timeout.as_ref());
    let mut hb = proto::duration_ms(a.heartbeat_timeout.as_ref());
    if s2c < 0 || s2s < 0 || stc < 0 || hb < 0 {
        return Err("A valid timeout may not be negative.".into());
    }
    let cap = |v: Millis| if run_timeout_ms > 0 && (v == 0 || v > run_timeout_ms) { run_timeout_ms } else { v };
    s2c = cap(s2c);
    s2s = cap(s2s);
    stc = cap(stc);
    if s2c > 0 {
        if s2s == 0 || s2s > s2c {
            s2s = s2c;
        }
        if stc == 0 || stc > s2c {
            stc = s2c;
        }
    } else if stc > 0 {
        s2c = run_timeout_ms;
        if s2s == 0 {
            s2s = run_timeout_ms;
        }
    } else {
        return Err("A valid StartToClose or ScheduleToCloseTimeout is not set on ScheduleActivityTaskCommand.".into());
    }
    if hb > stc {
        hb = stc;
    }
    Ok((s2c, s2s, stc, hb))
}

/// The timers and dispatch for an activity's current attempt, given its state.
pub fn attempt_effects(a: &Activity) -> Vec<Effect> {
    let mut effects = Vec::new();
    let timer = |at_ms, kind| Effect::Timer {
        at_ms,
        timer: Timer::ActivityTimeout { scheduled_event_id: a.scheduled_event_id, attempt: a.attempt, kind },
    };
    if let Some(deadline) = a.schedule_to_close_deadline_ms() {
        effects.push(timer(deadline, ActivityTimeoutKind::ScheduleToClose));
    }
    if a.backoff_until_ms > 0 {
        effects.push(Effect::Timer {
            at_ms: a.backoff_until_ms,
            timer: Timer::ActivityRetry { scheduled_event_id: a.scheduled_event_id, attempt: a.attempt },
        });
    } else if a.is_started() {
        if a.start_to_close_ms > 0 {
            effects.push(timer(a.started_time_ms + a.start_to_close_ms, ActivityTimeoutKind::StartToClose));
        }
        if a.heartbeat_ms > 0 {
            let since = a.last_heartbeat_ms.max(a.started_time_ms);
            effects.push(timer(since + a.heartbeat_ms, ActivityTimeoutKind::Heartbeat));
        }
    } else {
        effects.push(Effect::DispatchActivityTask {
            task_queue: a.task_queue.clone(),
            scheduled_event_id: a.scheduled_event_id,
            attempt: a.attempt,
            routing: Default::default(),
        });
        if a.schedule_to_start_ms > 0 {
            effects.push(timer(
                a.attempt_scheduled_time_ms + a.schedule_to_start_ms,
                ActivityTimeoutKind::ScheduleToStart,
            ));
        }
    }
    effects
}

/// What a heartbeat's answer tells the worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatAnswer {
    pub cancel_requested: bool,
    /// An operator paused the activity (`PauseActivity`).
    pub paused: bool,
    /// An operator reset the activity (`ResetActivity`): its next attempt is the first.
    pub reset: bool,
}

/// How an attempt ended, for the retry decision.
enum AttemptOutcome {
    Failed(Failure),
    TimedOut(TimeoutType, Failure),
}

impl Tx<'_> {
    pub(crate) fn schedule_activity(
        &mut self,
        a: &ScheduleActivityTaskCommandAttributes,
        completed_id: i64,
    ) -> std::result::Result<(), (WorkflowTaskFailedCause, String)> {
        let bad = |m: &str| (WorkflowTaskFailedCause::BadScheduleActivityAttributes, m.to_string());
        if a.activity_id.is_empty() {
            return Err(bad("ActivityId is not set on ScheduleActivityTaskCommand."));
        }
        let activity_type = a.activity_type.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        if activity_type.is_empty() {
            return Err(bad("ActivityType is not set on ScheduleActivityTaskCommand."));
        }
        if self.state.pending_activity_by_id(&a.activity_id).is_some() {
            return Err((
                WorkflowTaskFailedCause::ScheduleActivityDuplicateId,
                format!("Activity ID {} is already in use by a pending activity.", a.activity_id),
            ));
        }
        let task_queue = a
            .task_queue
            .as_ref()
            .map(|t| t.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.state.task_queue.clone());
        let (s2c, s2s, stc, hb) = normalize_timeouts(a, self.state.run_timeout_ms).map_err(|m| bad(&m))?;
        retry_policy(a.retry_policy.as_ref()).map_err(|m| bad(&m))?;
        let scheduled = history::ActivityTaskScheduledEventAttributes {
            activity_id: a.activity_id.clone(),
            activity_type: a.activity_type.clone(),
            task_queue: Some(super::workflow::normal_queue(&task_queue)),
            header: a.header.clone(),
            input: a.input.clone(),
            schedule_to_close_timeout: Some(proto::duration(s2c)),
            schedule_to_start_timeout: Some(proto::duration(s2s)),
            start_to_close_timeout: Some(proto::duration(stc)),
            heartbeat_timeout: Some(proto::duration(hb)),
            workflow_task_completed_event_id: completed_id,
            retry_policy: Some(retry_policy_as_given(a.retry_policy.as_ref())),
            use_workflow_build_id: a.use_workflow_build_id,
            priority: a.priority.clone(),
        };
        // Appending the event puts the activity in state (`replay::apply`).
        let scheduled_event_id = self.append(scheduled);
        let effects = self.state.activities.get(&scheduled_event_id).map(attempt_effects).unwrap_or_default();
        self.effects.extend(effects);
        Ok(())
    }

    /// `RequestCancelActivityTask`; true if the activity was cancelled at once (not started),
    /// which needs a new workflow task.
    pub(crate) fn request_cancel_activity(
        &mut self,
        scheduled_event_id: i64,
        completed_id: i64,
    ) -> std::result::Result<bool, String> {
        let Some(activity) = self.state.activities.get(&scheduled_event_id).cloned() else {
            return Err(format!(
                "RequestCancelActivityTask names activity {scheduled_event_id}, which is not pending."
            ));
        };
        let requested_id = self.append(history::ActivityTaskCancelRequestedEventAttributes {
            scheduled_event_id,
            workflow_task_completed_event_id: completed_id,
        });
        if activity.is_started() {
            return Ok(false); // The event marked it; the worker learns it from its heartbeat.
        }
        self.state.activities.remove(&scheduled_event_id);
        self.append(history::ActivityTaskCanceledEventAttributes {
            details: None,
            latest_cancel_requested_event_id: requested_id,
            scheduled_event_id,
            started_event_id: 0,
            identity: String::new(),
            ..Default::default()
        });
        Ok(true)
    }

    /// A worker polled this attempt. `None` if it is no longer pending (stale queued task).
    pub fn start_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        identity: &str,
        request_id: &str,
    ) -> Option<Activity> {
        if !self.state.is_open() {
            return None;
        }
        let now = self.now;
        let a = self.state.activities.get_mut(&scheduled_event_id)?;
        if a.attempt != attempt || a.is_started() || a.backoff_until_ms > 0 || a.paused.is_some() {
            return None;
        }
        // Handed out after a deadline passed (its timer is about to fire): too late to start.
        if due_timeout(a, now).is_some() {
            return None;
        }
        a.started_time_ms = now;
        a.started_identity = identity.to_string();
        a.started_request_id = request_id.to_string();
        a.last_heartbeat_ms = 0;
        let a = a.clone();
        for e in attempt_effects(&a) {
            if matches!(
                e,
                Effect::Timer { timer: Timer::ActivityTimeout { kind: ActivityTimeoutKind::ScheduleToClose, .. }, .. }
            ) {
                continue; // already armed when scheduled
            }
            self.effects.push(e);
        }
        Some(a)
    }

    /// The started activity attempt named by a token (attempt `None` for the `ById` RPCs).
    fn started_activity(&self, scheduled_event_id: i64, attempt: Option<i32>) -> Result<Activity> {
        if !self.state.is_open() {
            return Err(Error::not_found("workflow execution already completed"));
        }
        match self.state.activities.get(&scheduled_event_id) {
            Some(a) if a.is_started() && attempt.is_none_or(|n| n == a.attempt) => Ok(a.clone()),
            _ => Err(Error::not_found("activity task not found")),
        }
    }

    pub fn find_activity_by_id(&self, activity_id: &str) -> Result<i64> {
        if !self.state.is_open() {
            return Err(Error::not_found("workflow execution already completed"));
        }
        self.state
            .pending_activity_by_id(activity_id)
            .map(|a| a.scheduled_event_id)
            .ok_or_else(|| Error::not_found(format!("activity {activity_id} not found")))
    }

    /// Removes the finished activity and returns its final attempt's `ActivityTaskStarted`
    /// (none if it never started) and the `started_event_id` its closing event links to
    /// (`LINK_STARTED`, resolved when appended; 0 if never started).
    fn finish_activity(&mut self, a: &Activity) -> (Option<Attributes>, i64) {
        self.state.activities.remove(&a.scheduled_event_id);
        if !a.is_started() {
            return (None, 0);
        }
        let started = history::ActivityTaskStartedEventAttributes {
            scheduled_event_id: a.scheduled_event_id,
            identity: a.started_identity.clone(),
            request_id: a.started_request_id.clone(),
            attempt: a.attempt,
            last_failure: a.last_failure.as_ref().map(|f| f.decode()),
            ..Default::default()
        };
        (Some(started.into()), LINK_STARTED)
    }

    /// Adds the final attempt's started event (if any) and the closing event, in order.
    fn close_activity(&mut self, started: Option<Attributes>, closing: impl Into<Attributes>) {
        let mut events: Vec<Attributes> = started.into_iter().collect();
        events.push(closing.into());
        self.add_external_all(events);
    }

    pub fn complete_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: Option<i32>,
        result: Option<Payloads>,
        identity: &str,
    ) -> Result<()> {
        let a = self.started_activity(scheduled_event_id, attempt)?;
        let (started, started_event_id) = self.finish_activity(&a);
        self.close_activity(
            started,
            history::ActivityTaskCompletedEventAttributes {
                result,
                scheduled_event_id,
                started_event_id,
                identity: identity.to_string(),
                ..Default::default()
            },
        );
        Ok(())
    }

    pub fn cancel_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: Option<i32>,
        details: Option<Payloads>,
        identity: &str,
    ) -> Result<()> {
        let a = self.started_activity(scheduled_event_id, attempt)?;
        let (started, started_event_id) = self.finish_activity(&a);
        self.close_activity(
            started,
            history::ActivityTaskCanceledEventAttributes {
                details,
                latest_cancel_requested_event_id: a.cancel_requested_event_id,
                scheduled_event_id,
                started_event_id,
                identity: identity.to_string(),
                ..Default::default()
            },
        );
        Ok(())
    }

    pub fn fail_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: Option<i32>,
        failure: Failure,
        last_heartbeat_details: Option<Payloads>,
        identity: &str,
    ) -> Result<()> {
        let a = self.started_activity(scheduled_event_id, attempt)?;
        if let Some(details) = last_heartbeat_details {
            let a = self.state.activities.get_mut(&scheduled_event_id).expect("checked above");
            a.heartbeat_details = Some(Encoded::of(&details));
        }
        let _ = identity;
        self.end_attempt(&a, AttemptOutcome::Failed(failure));
        Ok(())
    }

    /// Records a heartbeat; returns whether cancellation was requested.
    pub fn heartbeat(
        &mut self,
        scheduled_event_id: i64,
        attempt: Option<i32>,
        details: Option<Payloads>,
    ) -> Result<HeartbeatAnswer> {
        let a = self.started_activity(scheduled_event_id, attempt)?;
        let now = self.now;
        let pending = self.state.activities.get_mut(&scheduled_event_id).expect("checked above");
        pending.last_heartbeat_ms = now;
        if let Some(details) = details {
            pending.heartbeat_details = Some(Encoded::of(&details));
        }
        Ok(HeartbeatAnswer {
            cancel_requested: a.cancel_requested,
            paused: a.paused.is_some(),
            reset: a.reset_requested,
        })
    }

    /// Retry or close after a failed or timed-out attempt.
    fn end_attempt(&mut self, a: &Activity, outcome: AttemptOutcome) {
        // Schedule-to-start and schedule-to-close timeouts end the activity; Temporal reports
        // them with retry state TIMEOUT.
        let (failure, retryable, final_state) = match &outcome {
            AttemptOutcome::Failed(f) => (f.clone(), !is_non_retryable(f, &a.retry), RetryState::NonRetryableFailure),
            AttemptOutcome::TimedOut(t, f) => {
                (f.clone(), matches!(t, TimeoutType::StartToClose | TimeoutType::Heartbeat), RetryState::Timeout)
            }
        };
        let retry_state = if !retryable {
            final_state
        } else if a.retry.maximum_attempts > 0 && a.attempt >= a.retry.maximum_attempts {
            RetryState::MaximumAttemptsReached
        } else {
            let delay = next_retry_delay(&failure).unwrap_or_else(|| a.retry.backoff_ms(a.attempt));
            let at = self.now + delay;
            match a.schedule_to_close_deadline_ms() {
                Some(deadline) if at >= deadline => RetryState::Timeout,
                _ => {
                    self.retry_later(a, failure, at);
                    return;
                }
            }
        };
        let (started, started_event_id) = self.finish_activity(a);
        match outcome {
            AttemptOutcome::Failed(failure) => self.close_activity(
                started,
                history::ActivityTaskFailedEventAttributes {
                    failure: Some(failure),
                    scheduled_event_id: a.scheduled_event_id,
                    started_event_id,
                    identity: a.started_identity.clone(),
                    retry_state: retry_state as i32,
                    ..Default::default()
                },
            ),
            AttemptOutcome::TimedOut(_, failure) => self.close_activity(
                started,
                history::ActivityTaskTimedOutEventAttributes {
                    failure: Some(failure),
                    scheduled_event_id: a.scheduled_event_id,
                    started_event_id,
                    retry_state: retry_state as i32,
                },
            ),
        }
    }

    fn retry_later(&mut self, a: &Activity, failure: Failure, at: Millis) {
        let pending = self.state.activities.get_mut(&a.scheduled_event_id).expect("pending activity");
        pending.attempt = if std::mem::take(&mut pending.reset_requested) { 1 } else { pending.attempt + 1 };
        pending.started_time_ms = 0;
        pending.last_failure = Some(Encoded::of(&failure));
        pending.attempt_scheduled_time_ms = at;
        if pending.paused.is_some() {
            // Paused: the next attempt waits for `UnpauseActivity`, not for a timer.
            pending.backoff_until_ms = 0;
            return;
        }
        pending.backoff_until_ms = at;
        let pending = pending.clone();
        self.schedule_timer(
            at,
            Timer::ActivityRetry { scheduled_event_id: a.scheduled_event_id, attempt: pending.attempt },
        );
    }

    /// The retry backoff of `attempt` is over: offer it to workers again.
    pub fn activity_retry_due(&mut self, scheduled_event_id: i64, attempt: i32) -> bool {
        let Some(a) = self.state.activities.get_mut(&scheduled_event_id) else { return false };
        if a.attempt != attempt || a.backoff_until_ms == 0 {
            return false;
        }
        a.backoff_until_ms = 0;
        if a.paused.is_some() {
            return true; // Offered again by `UnpauseActivity`.
        }
        let a = a.clone();
        self.effects.push(Effect::DispatchActivityTask {
            task_queue: a.task_queue.clone(),
            scheduled_event_id,
            attempt,
            routing: Default::default(),
        });
        true
    }

    /// An activity timer fired; true if it changed anything. The timeout applied is the one
    /// due first (`due_timeout`), whichever of the activity's timers fired: timers due at the
    /// same instant fire in no particular order, and the outcome must not depend on it.
    pub fn activity_timed_out(&mut self, scheduled_event_id: i64, attempt: i32, kind: ActivityTimeoutKind) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let Some(a) = self.state.activities.get(&scheduled_event_id).cloned() else { return false };
        // Only the schedule-to-close deadline spans attempts; other timers of an earlier attempt are stale.
        if kind != ActivityTimeoutKind::ScheduleToClose && a.attempt != attempt {
            return false;
        }
        let Some(timeout_type) = due_timeout(&a, self.now) else {
            if kind == ActivityTimeoutKind::Heartbeat && a.is_started() && a.heartbeat_ms > 0 {
                // A heartbeat came since this timer was set: wait for the next deadline.
                let due = a.last_heartbeat_ms.max(a.started_time_ms) + a.heartbeat_ms;
                self.schedule_timer(due, Timer::ActivityTimeout { scheduled_event_id, attempt, kind });
            }
            return false;
        };
        let failure = timeout_failure(timeout_type, &a);
        self.end_attempt(&a, AttemptOutcome::TimedOut(timeout_type, failure));
        true
    }
}

/// Of an activity's timeouts that are due at `now`, the one Temporal applies: the earliest
/// deadline and, on equal deadlines, schedule-to-start, then schedule-to-close, start-to-close,
/// heartbeat. (Temporal orders ties by timeout type, start-to-close first, but its deadlines
/// are in nanoseconds: a start-to-close deadline counts from a start that came after the
/// schedule. In milliseconds an attempt started at once — eagerly — ties with it.)
fn due_timeout(a: &Activity, now: Millis) -> Option<TimeoutType> {
    let waiting = !a.is_started() && a.backoff_until_ms == 0 && a.paused.is_none();
    let candidates = [
        (a.is_started() && a.start_to_close_ms > 0)
            .then(|| (a.started_time_ms + a.start_to_close_ms, TimeoutType::StartToClose)),
        (waiting && a.schedule_to_start_ms > 0)
            .then(|| (a.attempt_scheduled_time_ms + a.schedule_to_start_ms, TimeoutType::ScheduleToStart)),
        a.schedule_to_close_deadline_ms().map(|at| (at, TimeoutType::ScheduleToClose)),
        (a.is_started() && a.heartbeat_ms > 0)
            .then(|| (a.last_heartbeat_ms.max(a.started_time_ms) + a.heartbeat_ms, TimeoutType::Heartbeat)),
    ];
    let rank = |t: &TimeoutType| match t {
        TimeoutType::ScheduleToStart => 0,
        TimeoutType::ScheduleToClose => 1,
        TimeoutType::StartToClose => 2,
        _ => 3,
    };
    candidates.into_iter().flatten().filter(|(at, _)| *at <= now).min_by_key(|(at, t)| (*at, rank(t))).map(|(_, t)| t)
}

fn timeout_failure(timeout_type: TimeoutType, a: &Activity) -> Failure {
    let name = match timeout_type {
        TimeoutType::StartToClose => "StartToClose",
        TimeoutType::ScheduleToStart => "ScheduleToStart",
        TimeoutType::ScheduleToClose => "ScheduleToClose",
        TimeoutType::Heartbeat => "Heartbeat",
        TimeoutType::Unspecified => "Unspecified",
    };
    Failure {
        message: format!("activity {name} timeout"),
        source: "Server".to_string(),
        cause: a.last_failure.as_ref().map(|f| Box::new(f.decode())),
        failure_info: Some(failure::FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: timeout_type as i32,
            last_heartbeat_details: a.heartbeat_details.as_ref().map(|d| d.decode()),
        })),
        ..Default::default()
    }
}

pub(crate) fn is_non_retryable(f: &Failure, retry: &RetryPolicy) -> bool {
    match &f.failure_info {
        Some(failure::FailureInfo::ApplicationFailureInfo(info)) => {
            info.non_retryable || retry.non_retryable_error_types.iter().any(|t| t == &info.r#type)
        }
        _ => false,
    }
}

fn next_retry_delay(f: &Failure) -> Option<Millis> {
    match &f.failure_info {
        Some(failure::FailureInfo::ApplicationFailureInfo(info)) => {
            info.next_retry_delay.as_ref().map(|d| proto::duration_ms(Some(d))).filter(|d| *d > 0)
        }
        _ => None,
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn retry_intervals_keep_their_milliseconds_and_a_sub_millisecond_one_is_one_millisecond() {
        let d = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
        let p = common::RetryPolicy {
            initial_interval: d(0, 500_000_000),
            maximum_interval: d(1, 0),
            ..Default::default()
        };
        let r = retry_policy(Some(&p)).unwrap();
        assert_eq!((r.initial_interval_ms, r.maximum_interval_ms), (500, 1_000));
        let tiny = common::RetryPolicy { initial_interval: d(0, 1), maximum_interval: d(0, 100), ..Default::default() };
        let r = retry_policy(Some(&tiny)).unwrap();
        assert_eq!((r.initial_interval_ms, r.maximum_interval_ms), (1, 1));
        // History keeps them as given, defaults filled in.
        let given = retry_policy_as_given(Some(&tiny));
        assert_eq!((given.initial_interval, given.maximum_interval), (d(0, 1), d(0, 100)));
        assert_eq!(retry_policy_as_given(None).maximum_interval, d(100, 0));
    }
}
