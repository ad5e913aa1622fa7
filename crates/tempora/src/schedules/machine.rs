//! One schedule's state and its transitions, as Temporal's scheduler defines them: nominal
//! times taken into a buffer (catch-up window, pause, limited actions), the buffer turned into
//! starts by the overlap policy, and what a started run's close changes (running set, recent
//! actions, last result or failure, pause on failure).
//!
//! Pure: no I/O, no clock. The caller (`frontend::schedules`) passes `now`, performs the
//! returned actions after committing the record, and reports back what happened.

use serde::{Deserialize, Serialize};
use temporalio_protos::temporal::api::common::v1::{Memo, Payloads, SearchAttributes, WorkflowExecution};
use temporalio_protos::temporal::api::enums::v1::{ScheduleOverlapPolicy, WorkflowExecutionStatus};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::schedule::v1::{Schedule, ScheduleActionResult, ScheduleInfo};

use super::spec::CompiledSpec;
use crate::clock::{proto, Millis};

/// Temporal's defaults and bounds.
pub const CATCHUP_WINDOW_DEFAULT_MS: Millis = 365 * 24 * 3600 * 1000;
pub const CATCHUP_WINDOW_MIN_MS: Millis = 10_000;
const BUFFER_MAX: usize = 1000;
const RECENT_ACTIONS_MAX: usize = 10;
/// Most nominal times one `advance` looks at; a longer gap is skipped (counted as missed).
const ADVANCE_STEPS_MAX: usize = 100_000;

/// A start waiting for the overlap policy to allow it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Buffered {
    pub nominal_ms: Millis,
    /// The jittered time it was due (the nominal time for manual starts).
    pub actual_ms: Millis,
    /// `ScheduleOverlapPolicy` number (already resolved: never UNSPECIFIED).
    pub overlap: i32,
    /// A trigger or backfill: bypasses pause and limited actions.
    pub manual: bool,
}

/// What the caller must do after committing.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a run for this buffered time; report with `started`.
    Start(Buffered),
    /// Request cancellation of these runs (CANCEL_OTHER).
    Cancel(Vec<WorkflowExecution>),
    /// Terminate these runs (TERMINATE_OTHER).
    Terminate(Vec<WorkflowExecution>),
}

/// A schedule as stored (the `schedule` record's JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub namespace: String,
    pub namespace_id: String,
    pub schedule_id: String,
    /// The schedule with its spec in canonical form.
    pub schedule: Schedule,
    /// Counters, running runs, recent actions, create and update time (future action times
    /// are computed when asked).
    pub info: ScheduleInfo,
    pub memo: Option<Memo>,
    pub search_attributes: Option<SearchAttributes>,
    pub conflict_token: i64,
    pub request_id: String,
    /// Nominal times up to here have been taken (into the buffer, or skipped).
    pub last_processed_ms: Millis,
    pub buffer: Vec<Buffered>,
    pub last_completion_result: Option<Payloads>,
    pub last_failure: Option<Failure>,
}

impl ScheduleRecord {
    pub fn paused(&self) -> bool {
        self.schedule.state.as_ref().is_some_and(|s| s.paused)
    }

    pub fn catchup_window_ms(&self) -> Millis {
        let window = self.schedule.policies.as_ref().and_then(|p| p.catchup_window.as_ref());
        match window {
            None => CATCHUP_WINDOW_DEFAULT_MS,
            Some(d) => proto::duration_ms(Some(d)).max(CATCHUP_WINDOW_MIN_MS),
        }
    }

    /// The policy a start without its own uses (UNSPECIFIED means SKIP).
    pub fn overlap_policy(&self) -> i32 {
        resolve(self.schedule.policies.as_ref().map_or(0, |p| p.overlap_policy))
    }

    fn out_of_actions(&self) -> bool {
        self.schedule.state.as_ref().is_some_and(|s| s.limited_actions && s.remaining_actions <= 0)
    }

    /// Takes the scheduled times due by `now` into the buffer. A time missed by more than the
    /// catch-up window is counted and dropped; while paused or out of actions, times pass.
    pub fn advance(&mut self, spec: &CompiledSpec, now_ms: Millis) {
        let window = self.catchup_window_ms();
        let mut steps = 0;
        while let Some(next) = spec.next_time(self.last_processed_ms, &self.namespace_id, &self.schedule_id) {
            if next.next_ms > now_ms {
                break;
            }
            steps += 1;
            if steps > ADVANCE_STEPS_MAX {
                self.last_processed_ms = now_ms - window;
                continue;
            }
            self.last_processed_ms = next.nominal_ms;
            if self.paused() || self.out_of_actions() {
                continue;
            }
            if now_ms - next.next_ms > window {
                self.info.missed_catchup_window += 1;
                continue;
            }
            let overlap = self.overlap_policy();
            self.buffer.push(Buffered { nominal_ms: next.nominal_ms, actual_ms: next.next_ms, overlap, manual: false });
        }
        self.trim_buffer();
    }

    /// TriggerImmediately: a start now, with `overlap` (0: the schedule's).
    pub fn trigger(&mut self, overlap: i32, now_ms: Millis) {
        let overlap = if overlap == 0 { self.overlap_policy() } else { resolve(overlap) };
        self.buffer.push(Buffered { nominal_ms: now_ms, actual_ms: now_ms, overlap, manual: true });
        self.trim_buffer();
    }

    /// A backfill: every time of the spec in (`start`, `end`] (without jitter), as manual
    /// starts with `overlap` (0: the schedule's).
    pub fn backfill(&mut self, spec: &CompiledSpec, start_ms: Millis, end_ms: Millis, overlap: i32) {
        let overlap = if overlap == 0 { self.overlap_policy() } else { resolve(overlap) };
        let mut t = start_ms - 1000;
        while let Some(nominal) = spec.next_after(t) {
            if nominal > end_ms || self.buffer.len() >= BUFFER_MAX {
                break;
            }
            self.buffer.push(Buffered { nominal_ms: nominal, actual_ms: nominal, overlap, manual: true });
            t = nominal;
        }
        self.trim_buffer();
    }

    fn trim_buffer(&mut self) {
        if self.buffer.len() > BUFFER_MAX {
            let dropped = self.buffer.len() - BUFFER_MAX;
            self.info.buffer_dropped += dropped as i64;
            self.buffer.drain(..dropped);
        }
        self.info.buffer_size = self.buffer.len() as i64;
    }

    /// Decides, by each buffered start's overlap policy, what starts now, what waits, what is
    /// skipped, and which running runs to cancel or terminate.
    pub fn process_buffer(&mut self) -> Vec<Action> {
        use ScheduleOverlapPolicy as P;
        let mut running = !self.info.running_workflows.is_empty();
        let (mut starts, mut waiting) = (Vec::new(), Vec::new());
        let (mut cancel, mut terminate) = (false, false);
        for start in std::mem::take(&mut self.buffer) {
            let policy = P::try_from(start.overlap).unwrap_or(P::Skip);
            if policy == P::AllowAll {
                starts.push(start);
                continue;
            }
            if !running {
                starts.push(start);
                running = true;
                continue;
            }
            match policy {
                P::BufferOne if waiting.is_empty() => waiting.push(start),
                P::BufferAll => waiting.push(start),
                P::CancelOther | P::TerminateOther => {
                    // Only the latest waits for the running runs to go.
                    self.info.overlap_skipped += waiting.len() as i64;
                    waiting = vec![start];
                    cancel |= policy == P::CancelOther;
                    terminate |= policy == P::TerminateOther;
                }
                _ => self.info.overlap_skipped += 1,
            }
        }
        self.buffer = waiting;
        self.info.buffer_size = self.buffer.len() as i64;
        let mut actions: Vec<Action> = starts.into_iter().map(Action::Start).collect();
        if terminate {
            actions.push(Action::Terminate(self.info.running_workflows.clone()));
        } else if cancel {
            actions.push(Action::Cancel(self.info.running_workflows.clone()));
        }
        actions
    }

    /// A start was made (or found made before a restart): counted and, unless ALLOW_ALL,
    /// tracked as running until it closes.
    pub fn started(&mut self, start: &Buffered, run: WorkflowExecution) {
        self.info.action_count += 1;
        if !start.manual {
            if let Some(state) = self.schedule.state.as_mut().filter(|s| s.limited_actions) {
                state.remaining_actions = (state.remaining_actions - 1).max(0);
            }
        }
        if start.overlap != ScheduleOverlapPolicy::AllowAll as i32 {
            self.info.running_workflows.push(run.clone());
        }
        self.info.recent_actions.push(ScheduleActionResult {
            schedule_time: Some(proto::timestamp(start.nominal_ms)),
            actual_time: Some(proto::timestamp(start.actual_ms)),
            start_workflow_result: Some(run),
            start_workflow_status: WorkflowExecutionStatus::Running as i32,
        });
        let excess = self.info.recent_actions.len().saturating_sub(RECENT_ACTIONS_MAX);
        self.info.recent_actions.drain(..excess);
    }

    /// A run this schedule started closed with `status`; `failure` is its failure message
    /// (failed runs), `result` its result (completed runs).
    pub fn closed(
        &mut self,
        run: &WorkflowExecution,
        status: WorkflowExecutionStatus,
        failure: Option<Failure>,
        result: Option<Payloads>,
    ) {
        self.info.running_workflows.retain(|r| r != run);
        for action in self.info.recent_actions.iter_mut().filter(|a| a.start_workflow_result.as_ref() == Some(run)) {
            action.start_workflow_status = status as i32;
        }
        match status {
            WorkflowExecutionStatus::Completed => {
                self.last_completion_result = result;
                self.last_failure = None;
            }
            WorkflowExecutionStatus::Failed | WorkflowExecutionStatus::TimedOut => {
                let timed_out = status == WorkflowExecutionStatus::TimedOut;
                let message = failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
                self.last_failure = failure;
                if self.schedule.policies.as_ref().is_some_and(|p| p.pause_on_failure) {
                    let notes = match timed_out {
                        true => format!("paused due to workflow timeout: {}", run.workflow_id),
                        false => format!("paused due to workflow failure: {}: {message}", run.workflow_id),
                    };
                    let state = self.schedule.state.get_or_insert_with(Default::default);
                    state.paused = true;
                    state.notes = notes;
                }
            }
            _ => {}
        }
    }

    /// When this schedule next has something to do on its own (a scheduled time is due).
    pub fn next_wakeup_ms(&self, spec: &CompiledSpec) -> Option<Millis> {
        spec.next_time(self.last_processed_ms, &self.namespace_id, &self.schedule_id).map(|n| n.next_ms)
    }

    /// The next `n` times it will start a run on its own (none while paused; no more than the
    /// actions left).
    pub fn future_action_times(&self, spec: &CompiledSpec, n: usize) -> Vec<Millis> {
        let n = match self.schedule.state.as_ref().filter(|s| s.limited_actions) {
            Some(state) => n.min(state.remaining_actions.max(0) as usize),
            None => n,
        };
        let mut out = Vec::with_capacity(n);
        let mut t = self.last_processed_ms;
        while out.len() < n {
            let Some(next) = spec.next_time(t, &self.namespace_id, &self.schedule_id) else { break };
            out.push(next.next_ms);
            t = next.nominal_ms;
        }
        out
    }
}

/// UNSPECIFIED (and anything unknown) means SKIP.
pub fn resolve(policy: i32) -> i32 {
    match ScheduleOverlapPolicy::try_from(policy) {
        Ok(ScheduleOverlapPolicy::Unspecified) | Err(_) => ScheduleOverlapPolicy::Skip as i32,
        Ok(p) => p as i32,
    }
}

/// The id of the run started for `nominal_ms`: the action's id and the time, as Temporal names
/// it (`<id>-2009-11-10T23:00:00Z`).
pub fn run_workflow_id(base: &str, nominal_ms: Millis) -> String {
    let time = chrono::DateTime::from_timestamp_millis(nominal_ms - nominal_ms.rem_euclid(1000)).unwrap_or_default();
    format!("{base}-{}", time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::temporal::api::schedule::v1::{IntervalSpec, SchedulePolicies, ScheduleSpec, ScheduleState};

    const MINUTE: Millis = 60_000;
    /// 2024-01-01T00:00:00Z.
    const T0: Millis = 1_704_067_200_000;

    fn every_minute() -> CompiledSpec {
        let spec = ScheduleSpec {
            interval: vec![IntervalSpec { interval: Some(proto::duration(MINUTE)), phase: None }],
            ..Default::default()
        };
        CompiledSpec::new(&spec).unwrap()
    }

    fn record(overlap: ScheduleOverlapPolicy) -> ScheduleRecord {
        ScheduleRecord {
            namespace: "default".into(),
            namespace_id: "ns-id".into(),
            schedule_id: "s".into(),
            schedule: Schedule {
                policies: Some(SchedulePolicies { overlap_policy: overlap as i32, ..Default::default() }),
                state: Some(ScheduleState::default()),
                ..Default::default()
            },
            info: ScheduleInfo::default(),
            memo: None,
            search_attributes: None,
            conflict_token: 1,
            request_id: String::new(),
            last_processed_ms: T0,
            buffer: Vec::new(),
            last_completion_result: None,
            last_failure: None,
        }
    }

    fn run(n: i32) -> WorkflowExecution {
        WorkflowExecution { workflow_id: format!("w{n}"), run_id: format!("r{n}") }
    }

    fn start_all(r: &mut ScheduleRecord, actions: &[Action], first: i32) -> usize {
        let mut n = first;
        for action in actions {
            if let Action::Start(b) = action {
                r.started(b, run(n));
                n += 1;
            }
        }
        (n - first) as usize
    }

    #[test]
    fn run_ids_carry_the_nominal_time() {
        assert_eq!(run_workflow_id("wf", T0 + 1_500), "wf-2024-01-01T00:00:01Z");
    }

    #[test]
    fn skip_starts_one_and_counts_the_overlaps() {
        let spec = every_minute();
        let mut r = record(ScheduleOverlapPolicy::Unspecified);
        r.advance(&spec, T0 + 3 * MINUTE);
        assert_eq!(r.buffer.len(), 3);
        let actions = r.process_buffer();
        assert_eq!(start_all(&mut r, &actions, 1), 1);
        assert_eq!((r.info.overlap_skipped, r.info.running_workflows.len()), (2, 1));
        r.closed(&run(1), WorkflowExecutionStatus::Completed, None, None);
        assert!(r.info.running_workflows.is_empty());
        assert_eq!(r.info.recent_actions[0].start_workflow_status, WorkflowExecutionStatus::Completed as i32);
    }

    #[test]
    fn buffer_one_keeps_one_and_buffer_all_keeps_every_start() {
        let spec = every_minute();
        for (policy, waiting, skipped) in
            [(ScheduleOverlapPolicy::BufferOne, 1, 2), (ScheduleOverlapPolicy::BufferAll, 3, 0)]
        {
            let mut r = record(policy);
            r.advance(&spec, T0 + 4 * MINUTE);
            let actions = r.process_buffer();
            assert_eq!(start_all(&mut r, &actions, 1), 1);
            assert_eq!(
                (r.buffer.len(), r.info.overlap_skipped, r.info.buffer_size),
                (waiting, skipped, waiting as i64)
            );
            r.closed(&run(1), WorkflowExecutionStatus::Completed, None, None);
            let actions = r.process_buffer();
            assert_eq!(start_all(&mut r, &actions, 2), 1, "{policy:?}: the next waiting start goes");
        }
    }

    #[test]
    fn cancel_and_terminate_other_act_on_the_running_runs() {
        let spec = every_minute();
        for (policy, expect) in [
            (ScheduleOverlapPolicy::CancelOther, Action::Cancel(vec![run(1)])),
            (ScheduleOverlapPolicy::TerminateOther, Action::Terminate(vec![run(1)])),
        ] {
            let mut r = record(policy);
            r.advance(&spec, T0 + MINUTE);
            let actions = r.process_buffer();
            start_all(&mut r, &actions, 1);
            r.advance(&spec, T0 + 2 * MINUTE);
            assert_eq!(r.process_buffer(), vec![expect]);
            assert_eq!(r.buffer.len(), 1, "the new start waits for the old run to close");
        }
    }

    #[test]
    fn allow_all_starts_everything_untracked() {
        let spec = every_minute();
        let mut r = record(ScheduleOverlapPolicy::AllowAll);
        r.advance(&spec, T0 + 3 * MINUTE);
        let actions = r.process_buffer();
        assert_eq!(start_all(&mut r, &actions, 1), 3);
        assert!(r.info.running_workflows.is_empty());
        assert_eq!(r.info.action_count, 3);
    }

    #[test]
    fn catchup_window_pause_and_limited_actions() {
        let spec = every_minute();
        let mut r = record(ScheduleOverlapPolicy::AllowAll);
        r.schedule.policies.as_mut().unwrap().catchup_window = Some(proto::duration(90_000));
        // Down for ten minutes: only the times within 90 s of now are caught up.
        r.advance(&spec, T0 + 10 * MINUTE);
        assert_eq!((r.buffer.len(), r.info.missed_catchup_window), (2, 8));
        r.buffer.clear();

        r.schedule.state = Some(ScheduleState { paused: true, ..Default::default() });
        r.advance(&spec, T0 + 12 * MINUTE);
        assert!(r.buffer.is_empty(), "paused: scheduled times pass");
        r.trigger(0, T0 + 12 * MINUTE);
        assert_eq!(r.buffer.len(), 1, "a trigger bypasses the pause");
        r.buffer.clear();

        r.schedule.state = Some(ScheduleState { limited_actions: true, remaining_actions: 2, ..Default::default() });
        r.advance(&spec, T0 + 14 * MINUTE);
        let actions = r.process_buffer();
        assert_eq!(start_all(&mut r, &actions, 1), 2);
        assert_eq!(r.schedule.state.as_ref().unwrap().remaining_actions, 0);
        r.advance(&spec, T0 + 20 * MINUTE);
        assert!(r.buffer.is_empty(), "no actions left");
        assert!(r.future_action_times(&spec, 10).is_empty());
    }

    #[test]
    fn a_failure_pauses_when_the_policy_says_so() {
        let mut r = record(ScheduleOverlapPolicy::Skip);
        r.schedule.policies.as_mut().unwrap().pause_on_failure = true;
        let failure = Failure { message: "boom".into(), ..Default::default() };
        r.closed(&run(1), WorkflowExecutionStatus::Failed, Some(failure), None);
        let state = r.schedule.state.as_ref().unwrap();
        assert!(state.paused);
        assert_eq!(state.notes, "paused due to workflow failure: w1: boom");
    }

    #[test]
    fn backfill_takes_every_time_in_the_range() {
        let spec = every_minute();
        let mut r = record(ScheduleOverlapPolicy::AllowAll);
        r.backfill(&spec, T0 - 5 * MINUTE, T0 - MINUTE, 0);
        let nominal: Vec<Millis> = r.buffer.iter().map(|b| b.nominal_ms).collect();
        assert_eq!(nominal, (1..=5).rev().map(|m| T0 - m * MINUTE).collect::<Vec<_>>());
        assert!(r.buffer.iter().all(|b| b.manual));
    }
}
