//! Operator actions on pending activities (`PauseActivity`, `UnpauseActivity`,
//! `ResetActivity`, `UpdateActivityOptions`), as Temporal has them. None writes history: they
//! change the activity's mutable state and what its next attempt does.
//!
//! A paused activity starts no new attempt: a queued one is not handed out, a failed or
//! timed-out one waits for `UnpauseActivity` instead of its retry; a running attempt goes on
//! and learns of the pause from its heartbeat response. The schedule-to-close deadline still
//! applies; schedule-to-start does not while paused.

use temporalio_protos::temporal::api::activity::v1::ActivityOptions;
use temporalio_protos::temporal::api::common::v1::RetryPolicy as RetryPolicyProto;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;

use super::activity::{attempt_effects, retry_policy};
use super::state::{Activity, ActivityPause};
use super::{Effect, Timer, Tx};
use crate::clock::{proto, Millis};
use crate::error::{Error, Result};

/// Which pending activities an operation names.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum ActivitySelector {
    Id(String),
    /// Every pending activity of this type.
    Type(String),
    /// Every pending activity.
    All,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum ActivityOperation {
    Pause {
        identity: String,
        reason: String,
    },
    Unpause {
        reset_attempts: bool,
        reset_heartbeat: bool,
        jitter_ms: Millis,
    },
    Reset {
        reset_heartbeat: bool,
        keep_paused: bool,
        jitter_ms: Millis,
    },
    /// `paths`: the update mask, in Temporal's field names (`start_to_close_timeout`,
    /// `retry_policy.maximum_attempts`, `task_queue.name`, …).
    UpdateOptions {
        options: Box<ActivityOptions>,
        paths: Vec<String>,
    },
}

impl Tx<'_> {
    /// Applies an operator action; returns the options of the last activity it changed.
    pub fn operate_activities(
        &mut self,
        selector: &ActivitySelector,
        op: &ActivityOperation,
    ) -> Result<ActivityOptions> {
        if !self.state.is_open() {
            return Err(Error::not_found("workflow execution already completed"));
        }
        let ids: Vec<i64> = self
            .state
            .activities
            .values()
            .filter(|a| match selector {
                ActivitySelector::Id(id) => &a.activity_id == id,
                ActivitySelector::Type(t) => &a.activity_type == t,
                ActivitySelector::All => true,
            })
            .map(|a| a.scheduled_event_id)
            .collect();
        if ids.is_empty() {
            return Err(Error::not_found("activity not found"));
        }
        let mut options = ActivityOptions::default();
        for id in ids {
            match op {
                ActivityOperation::Pause { identity, reason } => self.pause_activity(id, identity, reason),
                ActivityOperation::Unpause { reset_attempts, reset_heartbeat, jitter_ms } => {
                    self.unpause_activity(id, *reset_attempts, *reset_heartbeat, *jitter_ms)
                }
                ActivityOperation::Reset { reset_heartbeat, keep_paused, jitter_ms } => {
                    self.reset_activity(id, *reset_heartbeat, *keep_paused, *jitter_ms)
                }
                ActivityOperation::UpdateOptions { options, paths } => {
                    self.update_activity_options(id, options, paths)?
                }
            }
            options = activity_options(&self.state.activities[&id]);
        }
        Ok(options)
    }

    fn pause_activity(&mut self, id: i64, identity: &str, reason: &str) {
        let now = self.now;
        let a = self.state.activities.get_mut(&id).expect("selected above");
        if a.paused.is_none() {
            a.paused = Some(ActivityPause { time_ms: now, identity: identity.to_string(), reason: reason.to_string() });
        }
    }

    fn unpause_activity(&mut self, id: i64, reset_attempts: bool, reset_heartbeat: bool, jitter_ms: Millis) {
        let a = self.state.activities.get_mut(&id).expect("selected above");
        if a.paused.take().is_none() {
            return;
        }
        if reset_heartbeat {
            a.heartbeat_details = None;
        }
        if !a.is_started() {
            if reset_attempts {
                a.attempt = 1;
            }
            self.offer_attempt_again(id, jitter_ms);
        }
    }

    fn reset_activity(&mut self, id: i64, reset_heartbeat: bool, keep_paused: bool, jitter_ms: Millis) {
        let a = self.state.activities.get_mut(&id).expect("selected above");
        if reset_heartbeat {
            a.heartbeat_details = None;
        }
        if !keep_paused {
            a.paused = None;
        }
        if a.is_started() {
            a.reset_requested = true; // The next attempt is the first again.
            return;
        }
        a.attempt = 1;
        if a.paused.is_none() {
            self.offer_attempt_again(id, jitter_ms);
        }
    }

    /// An attempt that is not running is handed to workers now (or after `jitter_ms`), under a
    /// new attempt number so that pointers queued before are stale.
    fn offer_attempt_again(&mut self, id: i64, jitter_ms: Millis) {
        let now = self.now;
        let a = self.state.activities.get_mut(&id).expect("pending activity");
        a.attempt_scheduled_time_ms = now + jitter_ms.max(0);
        a.backoff_until_ms = if jitter_ms > 0 { now + jitter_ms } else { 0 };
        let a = a.clone();
        if a.backoff_until_ms > 0 {
            self.schedule_timer(
                a.backoff_until_ms,
                Timer::ActivityRetry { scheduled_event_id: id, attempt: a.attempt },
            );
        } else {
            self.effects.extend(attempt_effects(&a));
        }
    }

    fn update_activity_options(&mut self, id: i64, options: &ActivityOptions, paths: &[String]) -> Result<()> {
        let a = self.state.activities.get_mut(&id).expect("selected above");
        let mut changed = a.clone();
        let mut retry = options.retry_policy.clone().unwrap_or_default();
        for path in paths {
            let ms = |d: &Option<prost_types::Duration>| proto::duration_ms(d.as_ref()).max(0);
            match path.as_str() {
                "task_queue.name" | "task_queue" => {
                    let name = options.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default();
                    if name.is_empty() {
                        return Err(Error::invalid("TaskQueue is not set on request."));
                    }
                    changed.task_queue = name;
                }
                "schedule_to_close_timeout" => changed.schedule_to_close_ms = ms(&options.schedule_to_close_timeout),
                "schedule_to_start_timeout" => changed.schedule_to_start_ms = ms(&options.schedule_to_start_timeout),
                "start_to_close_timeout" => changed.start_to_close_ms = ms(&options.start_to_close_timeout),
                "heartbeat_timeout" => changed.heartbeat_ms = ms(&options.heartbeat_timeout),
                "retry_policy" => {
                    changed.retry = retry_policy(Some(&retry)).map_err(Error::InvalidArgument)?;
                }
                p if p.starts_with("retry_policy.") => {
                    let mut current: RetryPolicyProto = changed.retry.to_proto();
                    match &p["retry_policy.".len()..] {
                        "initial_interval" => current.initial_interval = retry.initial_interval.take(),
                        "backoff_coefficient" => current.backoff_coefficient = retry.backoff_coefficient,
                        "maximum_interval" => current.maximum_interval = retry.maximum_interval.take(),
                        "maximum_attempts" => current.maximum_attempts = retry.maximum_attempts,
                        other => {
                            return Err(Error::invalid(format!("unsupported update_mask path: retry_policy.{other}")))
                        }
                    }
                    changed.retry = retry_policy(Some(&current)).map_err(Error::InvalidArgument)?;
                }
                other => return Err(Error::invalid(format!("unsupported update_mask path: {other}"))),
            }
        }
        if changed.start_to_close_ms == 0 && changed.schedule_to_close_ms == 0 {
            return Err(Error::invalid("A valid StartToClose or ScheduleToCloseTimeout is not set."));
        }
        let queue_changed = changed.task_queue != a.task_queue;
        *a = changed;
        let a = a.clone();
        // Timers of the new deadlines (stale ones re-check and do nothing); an attempt waiting
        // for a worker is offered on its (new) queue.
        for effect in attempt_effects(&a) {
            let dispatch = matches!(effect, Effect::DispatchActivityTask { .. });
            if !dispatch || (queue_changed && a.paused.is_none()) {
                self.effects.push(effect);
            }
        }
        Ok(())
    }
}

/// An activity's current options, as `UpdateActivityOptions` and describe show them.
pub fn activity_options(a: &Activity) -> ActivityOptions {
    let d = |ms: Millis| (ms > 0).then(|| proto::duration(ms));
    ActivityOptions {
        task_queue: Some(TaskQueue { name: a.task_queue.clone(), kind: 1, normal_name: String::new() }),
        schedule_to_close_timeout: d(a.schedule_to_close_ms),
        schedule_to_start_timeout: d(a.schedule_to_start_ms),
        start_to_close_timeout: d(a.start_to_close_ms),
        heartbeat_timeout: d(a.heartbeat_ms),
        retry_policy: Some(a.retry.to_proto()),
        ..Default::default()
    }
}
