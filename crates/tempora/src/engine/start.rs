//! Whether a start may create a run, given the workflow id's current run: request-id
//! idempotency, and Temporal's workflow id reuse and conflict policies. A pure decision; the
//! history service carries it out under the workflow id's start lock.

use temporalio_protos::temporal::api::enums::v1::{WorkflowIdConflictPolicy, WorkflowIdReusePolicy};

use super::state::{RunId, RunStatus};

use crate::error::Error;

/// `WorkflowIdReusePolicy`: may a closed run's workflow id be used again?
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdReusePolicy {
    #[default]
    AllowDuplicate,
    AllowDuplicateFailedOnly,
    RejectDuplicate,
    /// Deprecated in Temporal: a running run is terminated (as `TerminateExisting`).
    TerminateIfRunning,
}

/// `WorkflowIdConflictPolicy`: what to do when the workflow id's run is still running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdConflictPolicy {
    #[default]
    Fail,
    UseExisting,
    TerminateExisting,
}

impl From<WorkflowIdReusePolicy> for IdReusePolicy {
    fn from(p: WorkflowIdReusePolicy) -> Self {
        match p {
            WorkflowIdReusePolicy::Unspecified | WorkflowIdReusePolicy::AllowDuplicate => Self::AllowDuplicate,
            WorkflowIdReusePolicy::AllowDuplicateFailedOnly => Self::AllowDuplicateFailedOnly,
            WorkflowIdReusePolicy::RejectDuplicate => Self::RejectDuplicate,
            WorkflowIdReusePolicy::TerminateIfRunning => Self::TerminateIfRunning,
        }
    }
}

impl From<WorkflowIdConflictPolicy> for IdConflictPolicy {
    fn from(p: WorkflowIdConflictPolicy) -> Self {
        match p {
            WorkflowIdConflictPolicy::Unspecified | WorkflowIdConflictPolicy::Fail => Self::Fail,
            WorkflowIdConflictPolicy::UseExisting => Self::UseExisting,
            WorkflowIdConflictPolicy::TerminateExisting => Self::TerminateExisting,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartPolicy {
    pub reuse: IdReusePolicy,
    pub conflict: IdConflictPolicy,
}

/// The workflow id's current run, as the decision needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentRun {
    pub run_id: RunId,
    pub status: RunStatus,
    /// The request id of the start that created it.
    pub request_id: String,
}

#[derive(Debug, PartialEq)]
pub enum StartDecision {
    /// Create a new run.
    Start,
    /// Signal-with-start on a running run: signal it instead of starting.
    SignalExisting,
    /// Answer with the current run; `started` says whether this request created it (a retry
    /// with the same request id) or it was already there (`UseExisting`).
    Existing {
        started: bool,
    },
    /// Terminate the running run, then start.
    TerminateThenStart,
    Refuse(Error),
}

/// Decides a start of `workflow_id` with `request_id` against `current`.
pub fn decide(
    current: Option<&CurrentRun>,
    workflow_id: &str,
    request_id: &str,
    policy: StartPolicy,
    with_signal: bool,
) -> StartDecision {
    let Some(current) = current else { return StartDecision::Start };
    let running = current.status == RunStatus::Running;
    if with_signal && running {
        return StartDecision::SignalExisting;
    }
    if current.request_id == request_id {
        return StartDecision::Existing { started: true };
    }
    let refuse = |message: String| {
        StartDecision::Refuse(Error::AlreadyStarted {
            message,
            start_request_id: current.request_id.clone(),
            run_id: current.run_id.to_string(),
            first_execution_run_id: String::new(),
        })
    };
    let run_id = &current.run_id;
    if running {
        return match policy.conflict {
            IdConflictPolicy::UseExisting => StartDecision::Existing { started: false },
            IdConflictPolicy::TerminateExisting => StartDecision::TerminateThenStart,
            IdConflictPolicy::Fail if policy.reuse == IdReusePolicy::TerminateIfRunning => {
                StartDecision::TerminateThenStart
            }
            IdConflictPolicy::Fail => {
                refuse(format!("Workflow execution is already running. WorkflowId: {workflow_id}, RunId: {run_id}."))
            }
        };
    }
    match policy.reuse {
        IdReusePolicy::RejectDuplicate => refuse(format!(
            "Workflow execution already finished and its WorkflowIdReusePolicy is reject duplicate. WorkflowId: {workflow_id}, RunId: {run_id}."
        )),
        IdReusePolicy::AllowDuplicateFailedOnly if current.status == RunStatus::Completed => refuse(format!(
            "Workflow execution already finished successfully. WorkflowId: {workflow_id}, RunId: {run_id}. Workflow Id reuse policy: allow duplicate workflow Id if last run failed."
        )),
        _ => StartDecision::Start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdConflictPolicy as C;
    use IdReusePolicy as R;
    use RunStatus as S;

    fn current(status: S) -> CurrentRun {
        CurrentRun { run_id: "run-1".into(), status, request_id: "req-1".into() }
    }

    fn refused(d: &StartDecision) -> bool {
        matches!(d, StartDecision::Refuse(Error::AlreadyStarted { run_id, start_request_id, .. })
            if run_id == "run-1" && start_request_id == "req-1")
    }

    #[test]
    fn every_policy_against_every_kind_of_current_run() {
        use StartDecision as D;
        // (current status or none, reuse, conflict, with signal, expected)
        type Case = (Option<S>, R, C, bool, fn(&D) -> bool);
        let cases: &[Case] = &[
            (None, R::RejectDuplicate, C::Fail, false, |d| *d == D::Start),
            (Some(S::Running), R::AllowDuplicate, C::Fail, false, refused),
            (Some(S::Running), R::AllowDuplicate, C::UseExisting, false, |d| *d == D::Existing { started: false }),
            (Some(S::Running), R::AllowDuplicate, C::TerminateExisting, false, |d| *d == D::TerminateThenStart),
            (Some(S::Running), R::TerminateIfRunning, C::Fail, false, |d| *d == D::TerminateThenStart),
            (Some(S::Running), R::RejectDuplicate, C::Fail, true, |d| *d == D::SignalExisting),
            (Some(S::Completed), R::AllowDuplicate, C::Fail, false, |d| *d == D::Start),
            (Some(S::Completed), R::AllowDuplicate, C::Fail, true, |d| *d == D::Start),
            (Some(S::Completed), R::RejectDuplicate, C::Fail, false, refused),
            (Some(S::Completed), R::AllowDuplicateFailedOnly, C::Fail, false, refused),
            (Some(S::Failed), R::AllowDuplicateFailedOnly, C::Fail, false, |d| *d == D::Start),
            (Some(S::Terminated), R::AllowDuplicateFailedOnly, C::UseExisting, false, |d| *d == D::Start),
        ];
        for (i, (status, reuse, conflict, signal, expected)) in cases.iter().enumerate() {
            let current = status.map(current);
            let policy = StartPolicy { reuse: *reuse, conflict: *conflict };
            let decision = decide(current.as_ref(), "wf", "req-2", policy, *signal);
            assert!(expected(&decision), "case {i}: {decision:?}");
        }
    }

    #[test]
    fn a_retried_start_gets_the_run_it_created_whatever_the_policy() {
        let policy = StartPolicy { reuse: IdReusePolicy::RejectDuplicate, conflict: IdConflictPolicy::Fail };
        for status in [S::Running, S::Completed, S::Failed] {
            let decision = decide(Some(&current(status)), "wf", "req-1", policy, false);
            assert_eq!(decision, StartDecision::Existing { started: true });
        }
    }
}
