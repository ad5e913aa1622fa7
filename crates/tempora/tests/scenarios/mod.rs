//! The workflows and activities of the workflow-surface suites (`surface.rs`,
//! `relatives.rs`), their worker, and each test's fresh server.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::{Client, WorkflowHandle};
use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_common::HasWorkflowDefinition;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, CancellableFuture,
    ChildWorkflowCancellationType, ChildWorkflowOptions, ContinueAsNewOptions, LocalActivityOptions, MemoValue,
    ParentClosePolicy, SyncWorkflowContext, TimerResult, WorkerOptions, WorkflowContext, WorkflowContextView,
    WorkflowResult, WorkflowTermination,
};

use crate::support::{start, start_server, unique, with_worker, CallLog};

/// Activities that record what happened to them in a shared log.
#[derive(Default, Clone)]
pub(crate) struct Acts(pub(crate) CallLog);

#[activities]
impl Acts {
    #[activity]
    pub(crate) async fn echo(self: Arc<Self>, _ctx: ActivityContext, text: String) -> Result<String, ActivityError> {
        self.0.push(format!("echo:{text}"));
        Ok(text)
    }

    #[activity]
    pub(crate) async fn sleep_ms(self: Arc<Self>, _ctx: ActivityContext, ms: u64) -> Result<String, ActivityError> {
        self.0.push("sleep:started");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.0.push("sleep:done");
        Ok("activity".to_string())
    }

    /// Heartbeats until the server says the activity was cancelled.
    #[activity]
    pub(crate) async fn until_cancelled(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.push("heartbeater:started");
        for i in 0..600u32 {
            if ctx.is_cancelled() {
                self.0.push("heartbeater:saw cancel");
                return Err(ActivityError::cancelled());
            }
            ctx.record_heartbeat(i).await.expect("heartbeat");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

pub(crate) fn quick() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).build()
}

/// A timer cancelled before it fires, then a timer racing an activity.
#[workflow]
#[derive(Default)]
pub(crate) struct Timers;

#[workflow_methods]
impl Timers {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, activity_ms: u64) -> WorkflowResult<String> {
        let long = ctx.timer(Duration::from_secs(3600));
        // Once a short timer has fired, the long one is in history; then it is cancelled.
        ctx.timer(Duration::from_millis(100)).await;
        long.cancel();
        let cancelled = long.await == TimerResult::Cancelled;
        let winner = temporalio_sdk::workflows::select! {
            _ = ctx.timer(Duration::from_millis(1500)) => "timer",
            r = ctx.execute_activity(Acts::sleep_ms, activity_ms, quick()) => { r?; "activity" }
        };
        Ok(format!("cancelled={cancelled} winner={winner}"))
    }
}

/// Sums signals until it has `target`.
#[workflow]
#[derive(Default)]
pub(crate) struct Counter {
    total: i64,
    seen: Vec<String>,
}

#[workflow_methods]
impl Counter {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, target: i64) -> WorkflowResult<String> {
        ctx.wait_condition(|s| s.total >= target).await?;
        Ok(ctx.state(|s| format!("{} {}", s.total, s.seen.join(","))))
    }

    #[signal]
    pub(crate) fn add(&mut self, _ctx: &mut SyncWorkflowContext<Self>, n: i64) {
        self.total += n;
        self.seen.push(n.to_string());
    }

    #[query]
    pub(crate) fn total(&self, _ctx: &WorkflowContextView) -> i64 {
        self.total
    }

    #[update_validator(set)]
    pub(crate) fn validate_set(
        &self,
        _ctx: &WorkflowContextView,
        value: &i64,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if *value < 0 {
            return Err("the total cannot be negative".into());
        }
        Ok(())
    }

    /// Sets the total; returns the old one.
    #[update]
    pub(crate) fn set(&mut self, _ctx: &mut SyncWorkflowContext<Self>, value: i64) -> i64 {
        std::mem::replace(&mut self.total, value)
    }
}

/// Waits on an activity that heartbeats until cancelled; ends cancelled.
#[workflow]
#[derive(Default)]
pub(crate) struct Cancellable;

#[workflow_methods]
impl Cancellable {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .heartbeat_timeout(Duration::from_millis(500))
            .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
            .build();
        match ctx.execute_activity(Acts::until_cancelled, (), options).await {
            Err(ActivityExecutionError::Cancelled(_)) => Err(WorkflowTermination::cancelled()),
            Err(e) => Err(e.into()),
            Ok(()) => Ok("finished without a cancel".to_string()),
        }
    }
}

/// Runs a slow activity (to be terminated meanwhile).
#[workflow]
#[derive(Default)]
pub(crate) struct Slow;

#[workflow_methods]
impl Slow {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, ms: u64) -> WorkflowResult<String> {
        Ok(ctx.execute_activity(Acts::sleep_ms, ms, quick()).await?)
    }
}

/// Continues as new until it has run `runs` times, carrying a trail of run numbers.
#[workflow]
#[derive(Default)]
pub(crate) struct Chain;

#[workflow_methods]
impl Chain {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, input: (u32, u32, String)) -> WorkflowResult<String> {
        let (run, runs, trail) = input;
        let trail = format!("{trail}{run};");
        if run < runs {
            ctx.continue_as_new((run + 1, runs, trail.clone()), ContinueAsNewOptions::default())?;
        }
        Ok(trail)
    }
}

#[workflow]
#[derive(Default)]
pub(crate) struct Child;

#[workflow_methods]
impl Child {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        if name == "fail" {
            return Err(temporalio_sdk::ApplicationFailure::new("the child failed on purpose").into());
        }
        Ok(ctx.execute_activity(Acts::echo, format!("child {name}"), quick()).await?)
    }
}

/// Starts a child and reports its result or failure.
#[workflow]
#[derive(Default)]
pub(crate) struct Parent;

#[workflow_methods]
impl Parent {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        let options = ChildWorkflowOptions::workflow_id(format!("{}-child", ctx.workflow_id()));
        let child = ctx.start_child_workflow(Child::run, name, options).await?;
        match child.result().await {
            Ok(result) => Ok(format!("child said: {result}")),
            Err(e) => Ok(format!("child failed: {e}")),
        }
    }
}

/// A patched branch, a local activity, and upserted search attributes and memo.
#[workflow]
#[derive(Default)]
pub(crate) struct Misc;

const CUSTOM_KEYWORD: SearchAttributeKey<String> = SearchAttributeKey::keyword("CustomKeywordField");

#[workflow_methods]
impl Misc {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        let version = if ctx.patched("v2") { "v2" } else { "v1" };
        let local = ctx
            .execute_local_activity(
                Acts::echo,
                "local".to_string(),
                LocalActivityOptions::builder().start_to_close_timeout(Duration::from_secs(5)).build(),
            )
            .await?;
        ctx.upsert_search_attributes([CUSTOM_KEYWORD.value_set("tempora".to_string())]);
        ctx.upsert_memo([("note", Some(MemoValue::new("hello".to_string())))])?;
        Ok(format!("{version} {local}"))
    }
}

/// Waits an hour, or ends cancelled when asked.
#[workflow]
#[derive(Default)]
pub(crate) struct Waiter;

#[workflow_methods]
impl Waiter {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        match ctx.timer(Duration::from_secs(3600)).await {
            TimerResult::Cancelled => Err(WorkflowTermination::cancelled()),
            _ => Ok("waited".to_string()),
        }
    }
}

/// Starts three waiting children, one per parent close policy, and returns at once.
#[workflow]
#[derive(Default)]
pub(crate) struct Abandoner;

#[workflow_methods]
impl Abandoner {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<()> {
        for (suffix, policy) in [
            ("terminate", ParentClosePolicy::Terminate),
            ("cancel", ParentClosePolicy::RequestCancel),
            ("abandon", ParentClosePolicy::Abandon),
        ] {
            let options = ChildWorkflowOptions::builder()
                .workflow_id(format!("{}-{suffix}", ctx.workflow_id()))
                .parent_close_policy(policy)
                .build();
            ctx.start_child_workflow(Waiter::run, (), options).await?;
        }
        Ok(())
    }
}

/// Starts a child that outlives its run timeout, and a child it then cancels; reports both.
#[workflow]
#[derive(Default)]
pub(crate) struct Supervisor;

#[workflow_methods]
impl Supervisor {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        let timed = ChildWorkflowOptions::builder()
            .workflow_id(format!("{}-slow", ctx.workflow_id()))
            .run_timeout(Duration::from_secs(1))
            .build();
        let slow = ctx.start_child_workflow(Waiter::run, (), timed).await?;
        let timed_out = match slow.result().await {
            Err(e) => format!("{e}"),
            Ok(r) => format!("unexpected result {r}"),
        };
        let options = ChildWorkflowOptions::builder()
            .workflow_id(format!("{}-cancelled", ctx.workflow_id()))
            .cancel_type(ChildWorkflowCancellationType::WaitCancellationCompleted)
            .build();
        let child = ctx.start_child_workflow(Waiter::run, (), options).await?;
        child.cancel("not needed".to_string());
        let cancelled = match child.result().await {
            Err(e) => format!("{e}"),
            Ok(r) => format!("unexpected result {r}"),
        };
        Ok(format!("{timed_out} | {cancelled}"))
    }
}

/// Version 1 of "Versioned": an activity, then a nap.
#[workflow]
#[derive(Default)]
pub(crate) struct VersionedV1;

#[workflow_methods]
impl VersionedV1 {
    #[run(name = "Versioned")]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, nap_ms: u64) -> WorkflowResult<String> {
        let said = ctx.execute_activity(Acts::echo, "v1".to_string(), quick()).await?;
        ctx.timer(Duration::from_millis(nap_ms)).await;
        Ok(said)
    }
}

/// Version 2 of "Versioned": the activity's input changed behind a patch.
#[workflow]
#[derive(Default)]
pub(crate) struct VersionedV2;

#[workflow_methods]
impl VersionedV2 {
    #[run(name = "Versioned")]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, nap_ms: u64) -> WorkflowResult<String> {
        let input = if ctx.patched("say-v2") { "v2" } else { "v1" };
        let said = ctx.execute_activity(Acts::echo, input.to_string(), quick()).await?;
        ctx.timer(Duration::from_millis(nap_ms)).await;
        Ok(said)
    }
}

/// Two activities in sequence.
#[workflow]
#[derive(Default)]
pub(crate) struct TwoSteps;

#[workflow_methods]
impl TwoSteps {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        let one = ctx.execute_activity(Acts::echo, "one".to_string(), quick()).await?;
        let two = ctx.execute_activity(Acts::echo, "two".to_string(), quick()).await?;
        Ok(format!("{one} {two}"))
    }
}

/// Schedules `n` activities at once.
#[workflow]
#[derive(Default)]
pub(crate) struct FanOut;

#[workflow_methods]
impl FanOut {
    #[run]
    pub(crate) async fn run(ctx: &mut WorkflowContext<Self>, n: u32) -> WorkflowResult<usize> {
        let calls: Vec<_> = (0..n).map(|i| ctx.execute_activity(Acts::echo, format!("fan {i}"), quick())).collect();
        let results = temporalio_sdk::workflows::join_all(calls).await;
        Ok(results.into_iter().filter(|r| r.is_ok()).count())
    }
}

pub(crate) fn worker_options(queue: &str, log: &CallLog) -> WorkerOptions {
    crate::support::worker!(
        queue,
        activities: [Acts(log.clone())],
        workflows: [
            Timers, Counter, Cancellable, Slow, Chain, Child, Parent, Misc, FanOut, TwoSteps, Waiter, Abandoner,
            Supervisor,
        ],
    )
}

/// A fresh in-memory server, a client of it, a task queue, the activities' log and the test's
/// (main) workflow id.
pub(crate) struct Setup {
    _server: TestServer,
    pub(crate) client: Client,
    pub(crate) queue: String,
    pub(crate) log: CallLog,
    pub(crate) id: String,
}

/// A fresh [`Setup`], its workflow id named after `id_prefix`.
pub(crate) async fn setup(id_prefix: &str) -> Setup {
    let (server, client) = start_server(":memory:").await;
    Setup { _server: server, client, queue: unique("surface"), log: CallLog::default(), id: unique(id_prefix) }
}

impl Setup {
    /// Runs `body` while a worker with every workflow of this suite polls the queue.
    pub(crate) async fn worker<T>(&self, body: impl Future<Output = T>) -> T {
        with_worker(&self.client, worker_options(&self.queue, &self.log), body).await
    }

    /// Starts `workflow` on the queue as `id`.
    pub(crate) async fn start<W>(&self, workflow: W, input: W::Input, id: &str) -> WorkflowHandle<Client, W>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        start(&self.client, workflow, input, &self.queue, id).await
    }

    /// Starts `workflow` as the test's workflow id while a worker polls, and runs `body` with
    /// its handle.
    pub(crate) async fn run<W, T>(
        &self,
        workflow: W,
        input: W::Input,
        body: impl AsyncFnOnce(&WorkflowHandle<Client, W>) -> T,
    ) -> T
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        self.worker(async { body(&self.start(workflow, input, &self.id).await).await }).await
    }
}
