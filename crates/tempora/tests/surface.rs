//! The workflow surface beyond activities, through the official Rust SDK: timers, signals,
//! cancellation, termination, continue-as-new, child workflows, patching, local activities,
//! search attributes and memo, and the pending-activities limit.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::errors::{WorkflowGetResultError, WorkflowUpdateError};
use temporalio_client::{
    Client, WorkflowCancelOptions, WorkflowExecuteUpdateOptions, WorkflowHandle, WorkflowQueryOptions,
    WorkflowSignalOptions,
};
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

use support::{
    assert_events_include, client, count_events, describe, execution, get_result, history, history_event_types,
    history_event_types_of, latest_result, on_tempora_and_reference, poll, run_workflow, start, start_options,
    start_server, terminate, unique, wait_for_event, with_worker, CallLog,
};

/// Activities that record what happened to them in a shared log.
#[derive(Default, Clone)]
struct Acts(CallLog);

#[activities]
impl Acts {
    #[activity]
    async fn echo(self: Arc<Self>, _ctx: ActivityContext, text: String) -> Result<String, ActivityError> {
        self.0.push(format!("echo:{text}"));
        Ok(text)
    }

    #[activity]
    async fn sleep_ms(self: Arc<Self>, _ctx: ActivityContext, ms: u64) -> Result<String, ActivityError> {
        self.0.push("sleep:started");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.0.push("sleep:done");
        Ok("activity".to_string())
    }

    /// Heartbeats until the server says the activity was cancelled.
    #[activity]
    async fn until_cancelled(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
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

fn quick() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10)).build()
}

/// A timer cancelled before it fires, then a timer racing an activity.
#[workflow]
#[derive(Default)]
struct Timers;

#[workflow_methods]
impl Timers {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, activity_ms: u64) -> WorkflowResult<String> {
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
struct Counter {
    total: i64,
    seen: Vec<String>,
}

#[workflow_methods]
impl Counter {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, target: i64) -> WorkflowResult<String> {
        ctx.wait_condition(|s| s.total >= target).await?;
        Ok(ctx.state(|s| format!("{} {}", s.total, s.seen.join(","))))
    }

    #[signal]
    fn add(&mut self, _ctx: &mut SyncWorkflowContext<Self>, n: i64) {
        self.total += n;
        self.seen.push(n.to_string());
    }

    #[query]
    fn total(&self, _ctx: &WorkflowContextView) -> i64 {
        self.total
    }

    #[update_validator(set)]
    fn validate_set(
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
    fn set(&mut self, _ctx: &mut SyncWorkflowContext<Self>, value: i64) -> i64 {
        std::mem::replace(&mut self.total, value)
    }
}

/// Waits on an activity that heartbeats until cancelled; ends cancelled.
#[workflow]
#[derive(Default)]
struct Cancellable;

#[workflow_methods]
impl Cancellable {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
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
struct Slow;

#[workflow_methods]
impl Slow {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, ms: u64) -> WorkflowResult<String> {
        Ok(ctx.execute_activity(Acts::sleep_ms, ms, quick()).await?)
    }
}

/// Continues as new until it has run `runs` times, carrying a trail of run numbers.
#[workflow]
#[derive(Default)]
struct Chain;

#[workflow_methods]
impl Chain {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, input: (u32, u32, String)) -> WorkflowResult<String> {
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
struct Child;

#[workflow_methods]
impl Child {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        if name == "fail" {
            return Err(temporalio_sdk::ApplicationFailure::new("the child failed on purpose").into());
        }
        Ok(ctx.execute_activity(Acts::echo, format!("child {name}"), quick()).await?)
    }
}

/// Starts a child and reports its result or failure.
#[workflow]
#[derive(Default)]
struct Parent;

#[workflow_methods]
impl Parent {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
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
struct Misc;

const CUSTOM_KEYWORD: SearchAttributeKey<String> = SearchAttributeKey::keyword("CustomKeywordField");

#[workflow_methods]
impl Misc {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
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
struct Waiter;

#[workflow_methods]
impl Waiter {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        match ctx.timer(Duration::from_secs(3600)).await {
            TimerResult::Cancelled => Err(WorkflowTermination::cancelled()),
            _ => Ok("waited".to_string()),
        }
    }
}

/// Starts three waiting children, one per parent close policy, and returns at once.
#[workflow]
#[derive(Default)]
struct Abandoner;

#[workflow_methods]
impl Abandoner {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<()> {
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
struct Supervisor;

#[workflow_methods]
impl Supervisor {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
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
struct VersionedV1;

#[workflow_methods]
impl VersionedV1 {
    #[run(name = "Versioned")]
    async fn run(ctx: &mut WorkflowContext<Self>, nap_ms: u64) -> WorkflowResult<String> {
        let said = ctx.execute_activity(Acts::echo, "v1".to_string(), quick()).await?;
        ctx.timer(Duration::from_millis(nap_ms)).await;
        Ok(said)
    }
}

/// Version 2 of "Versioned": the activity's input changed behind a patch.
#[workflow]
#[derive(Default)]
struct VersionedV2;

#[workflow_methods]
impl VersionedV2 {
    #[run(name = "Versioned")]
    async fn run(ctx: &mut WorkflowContext<Self>, nap_ms: u64) -> WorkflowResult<String> {
        let input = if ctx.patched("say-v2") { "v2" } else { "v1" };
        let said = ctx.execute_activity(Acts::echo, input.to_string(), quick()).await?;
        ctx.timer(Duration::from_millis(nap_ms)).await;
        Ok(said)
    }
}

/// Two activities in sequence.
#[workflow]
#[derive(Default)]
struct TwoSteps;

#[workflow_methods]
impl TwoSteps {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, _: ()) -> WorkflowResult<String> {
        let one = ctx.execute_activity(Acts::echo, "one".to_string(), quick()).await?;
        let two = ctx.execute_activity(Acts::echo, "two".to_string(), quick()).await?;
        Ok(format!("{one} {two}"))
    }
}

/// Schedules `n` activities at once.
#[workflow]
#[derive(Default)]
struct FanOut;

#[workflow_methods]
impl FanOut {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, n: u32) -> WorkflowResult<usize> {
        let calls: Vec<_> = (0..n).map(|i| ctx.execute_activity(Acts::echo, format!("fan {i}"), quick())).collect();
        let results = temporalio_sdk::workflows::join_all(calls).await;
        Ok(results.into_iter().filter(|r| r.is_ok()).count())
    }
}

fn worker_options(queue: &str, log: &CallLog) -> WorkerOptions {
    support::worker!(
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
struct Setup {
    _server: TestServer,
    client: Client,
    queue: String,
    log: CallLog,
    id: String,
}

/// A fresh [`Setup`], its workflow id named after `id_prefix`.
async fn setup(id_prefix: &str) -> Setup {
    let (server, client) = start_server(":memory:").await;
    Setup { _server: server, client, queue: unique("surface"), log: CallLog::default(), id: unique(id_prefix) }
}

impl Setup {
    /// Runs `body` while a worker with every workflow of this suite polls the queue.
    async fn worker<T>(&self, body: impl Future<Output = T>) -> T {
        with_worker(&self.client, worker_options(&self.queue, &self.log), body).await
    }

    /// Starts `workflow` on the queue as `id`.
    async fn start<W>(&self, workflow: W, input: W::Input, id: &str) -> WorkflowHandle<Client, W>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        start(&self.client, workflow, input, &self.queue, id).await
    }

    /// Starts `workflow` as the test's workflow id while a worker polls, and runs `body` with
    /// its handle.
    async fn run<W, T>(
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

#[tokio::test]
async fn timers_cancel_and_race_an_activity() {
    let s = setup("timers").await;
    s.worker(async {
        let fast = s.start(Timers::run, 50, &unique("timers")).await;
        let fast = get_result(&fast).await.unwrap();
        assert_eq!(fast, "cancelled=true winner=activity");
        let slow = s.start(Timers::run, 5000, &s.id).await;
        let slow = get_result(&slow).await.unwrap();
        assert_eq!(slow, "cancelled=true winner=timer");
        let types = history_event_types(&s.client, &s.id).await;
        assert_events_include(
            &types,
            &["EVENT_TYPE_TIMER_CANCELED", "EVENT_TYPE_TIMER_FIRED", "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"],
        );
    })
    .await;
}

#[tokio::test]
async fn signals_sent_before_any_worker_runs_and_while_it_runs() {
    let s = setup("counter").await;
    let handle = s.start(Counter::run, 6, &s.id).await;
    // No worker yet: the signal waits in history.
    handle.signal(Counter::add, 1, WorkflowSignalOptions::default()).await.unwrap();
    s.worker(async {
        handle.signal(Counter::add, 2, WorkflowSignalOptions::default()).await.unwrap();
        handle.signal(Counter::add, 3, WorkflowSignalOptions::default()).await.unwrap();
        let result = get_result(&handle).await.unwrap();
        assert_eq!(result, "6 1,2,3");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"), 3);
    // A closed workflow takes no more signals.
    let late = handle.signal(Counter::add, 4, WorkflowSignalOptions::default()).await;
    assert!(late.is_err(), "a signal to a completed workflow must fail");
}

#[tokio::test]
async fn queries_mid_run_and_after_completion() {
    let s = setup("query").await;
    s.run(Counter::run, 10, async |handle| {
        handle.signal(Counter::add, 4, WorkflowSignalOptions::default()).await.unwrap();
        // The signal's workflow task may still be running; the query then sees 0 or 4.
        let query = async || handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap();
        let total = poll(50, Duration::from_millis(50), query, |total| *total == 4).await;
        assert_eq!(total, 4);
        handle.signal(Counter::add, 6, WorkflowSignalOptions::default()).await.unwrap();
        assert_eq!(get_result(handle).await.unwrap(), "10 4,6");
        // A closed workflow is still queried: the worker replays its history.
        let total = handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap();
        assert_eq!(total, 10);
    })
    .await;
}

#[tokio::test]
async fn an_update_returns_a_value_and_a_validator_rejects_one() {
    let s = setup("update").await;
    s.run(Counter::run, 100, async |handle| {
        let old = handle.execute_update(Counter::set, 7, WorkflowExecuteUpdateOptions::default()).await.unwrap();
        assert_eq!(old, 0);
        let rejected = handle.execute_update(Counter::set, -1, WorkflowExecuteUpdateOptions::default()).await;
        match rejected {
            Err(WorkflowUpdateError::Failed(failure)) => {
                assert!(failure.message.contains("cannot be negative"), "{failure:?}")
            }
            other => panic!("expected the validator's rejection, got {other:?}"),
        }
        assert_eq!(handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap(), 7);
        handle.signal(Counter::add, 93, WorkflowSignalOptions::default()).await.unwrap();
        assert_eq!(get_result(handle).await.unwrap(), "100 93");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"), 1, "{types:?}");
    assert_eq!(count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED"), 1, "{types:?}");
}

#[tokio::test]
async fn update_with_start_starts_or_uses_the_running_workflow() {
    use temporalio_client::errors::{WorkflowStartError, WorkflowUpdateWithStartError};
    use temporalio_client::{WorkflowIdConflictPolicy, WorkflowUpdateWithStartOptions};
    let s = setup("uws").await;
    let options = |policy| WorkflowUpdateWithStartOptions::new(&s.queue, &s.id, policy).build();
    s.worker(async {
        let use_existing = WorkflowIdConflictPolicy::UseExisting;
        let old =
            s.client.execute_update_with_start_workflow(Counter::run, 100, Counter::set, 4, options(use_existing));
        assert_eq!(old.await.unwrap(), 0, "the workflow was started, then updated");
        let old =
            s.client.execute_update_with_start_workflow(Counter::run, 100, Counter::set, 9, options(use_existing));
        assert_eq!(old.await.unwrap(), 4, "the running workflow was updated");
        let fail = WorkflowIdConflictPolicy::Fail;
        let refused = s.client.execute_update_with_start_workflow(Counter::run, 100, Counter::set, 1, options(fail));
        match refused.await {
            Err(WorkflowUpdateWithStartError::Start(WorkflowStartError::AlreadyStarted { .. })) => {}
            other => panic!("a running workflow with the Fail policy refuses the start: {other:?}"),
        }
        let handle = s.client.get_workflow_handle::<Counter>(s.id.clone());
        assert_eq!(handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap(), 9);
        terminate(&handle, "done").await;
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    let accepted = count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED");
    assert_eq!(accepted, 2, "{types:?}");
}

#[tokio::test]
async fn signal_with_start_starts_then_signals_the_running_workflow() {
    let s = setup("sws").await;
    let options = || start_options(&s.queue, &s.id);
    let first = s.client.signal_with_start_workflow(Counter::run, 5, Counter::add, 2, options()).await.unwrap();
    let second = s.client.signal_with_start_workflow(Counter::run, 5, Counter::add, 3, options()).await.unwrap();
    assert_eq!(first.info().run_id, second.info().run_id, "the second call signals the same run");
    s.worker(async {
        let result = get_result(&first).await.unwrap();
        assert_eq!(result, "5 2,3");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(
        &types[..3],
        [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED"
        ]
    );
}

#[tokio::test]
async fn cancelling_a_workflow_reaches_its_heartbeating_activity() {
    let s = setup("cancel").await;
    s.run(Cancellable::run, (), async |handle| {
        s.log.wait_for("heartbeater:started").await;
        handle.cancel(WorkflowCancelOptions::builder().reason("enough").build()).await.unwrap();
        let result = get_result(handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::Cancelled { .. })), "{result:?}");
    })
    .await;
    assert!(s.log.entries().contains(&"heartbeater:saw cancel".to_string()), "{:?}", s.log.entries());
    let types = history_event_types(&s.client, &s.id).await;
    assert_events_include(
        &types,
        &[
            "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED",
            "EVENT_TYPE_ACTIVITY_TASK_CANCELED",
        ],
    );
    assert_eq!(types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"));
}

#[tokio::test]
async fn terminating_while_an_activity_runs_drops_its_late_completion() {
    let s = setup("terminate").await;
    s.run(Slow::run, 1500, async |handle| {
        s.log.wait_for("sleep:started").await;
        terminate(handle, "stop").await;
        let result = get_result(handle).await;
        assert!(matches!(result, Err(WorkflowGetResultError::Terminated { .. })), "{result:?}");
        // The activity finishes after the termination; its completion is refused (NotFound)
        // and changes nothing.
        s.log.wait_for("sleep:done").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_eq!(types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"));
    assert!(!types.contains(&"EVENT_TYPE_ACTIVITY_TASK_COMPLETED".to_string()), "{types:?}");
}

#[tokio::test]
async fn continue_as_new_three_times_carries_state_to_the_last_run() {
    let s = setup("chain").await;
    s.run(Chain::run, (1, 4, String::new()), async |handle| {
        let first_run = handle.info().run_id.clone().unwrap();
        // get_result on the first run follows the chain to the last run's result.
        let result = get_result(handle).await.unwrap();
        assert_eq!(result, "1;2;3;4;");
        let first_types = history_event_types_of(&s.client, &s.id, &first_run).await;
        assert_eq!(first_types.last().map(String::as_str), Some("EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"));
    })
    .await;
    // The workflow id's current run is the fourth, completed.
    let described = describe(&s.client, &s.id).await;
    let info = described.workflow_execution_info.unwrap();
    assert_eq!(info.status, 2, "completed");
    assert_ne!(info.execution.unwrap().run_id, info.first_run_id);
}

#[tokio::test]
async fn a_child_workflow_result_and_failure_reach_the_parent() {
    let s = setup("parent").await;
    s.worker(async {
        let ok = s.start(Parent::run, "ann".to_string(), &s.id).await;
        assert_eq!(get_result(&ok).await.unwrap(), "child said: child ann");
        let types = history_event_types(&s.client, &s.id).await;
        assert_events_include(
            &types,
            &[
                "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
                "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
                "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
            ],
        );
        let child = describe(&s.client, &format!("{}-child", s.id)).await;
        let parent = child.workflow_execution_info.unwrap().parent_execution.unwrap();
        assert_eq!(parent.workflow_id, s.id);

        let id = unique("parent");
        let bad = s.start(Parent::run, "fail".to_string(), &id).await;
        let result = get_result(&bad).await.unwrap();
        assert!(result.starts_with("child failed"), "{result}");
        let types = history_event_types(&s.client, &id).await;
        assert!(types.contains(&"EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED".to_string()), "{types:?}");
    })
    .await;
}

#[tokio::test]
async fn patching_local_activities_search_attributes_and_memo() {
    let s = setup("misc").await;
    assert_eq!(s.worker(run_workflow(&s.client, Misc::run, (), &s.queue, &s.id)).await, "v2 local");
    assert!(s.log.entries().contains(&"echo:local".to_string()));
    let types = history_event_types(&s.client, &s.id).await;
    assert!(types.contains(&"EVENT_TYPE_MARKER_RECORDED".to_string()), "{types:?}");
    assert!(types.contains(&"EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES".to_string()), "{types:?}");
    assert!(types.contains(&"EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED".to_string()), "{types:?}");
    let info = describe(&s.client, &s.id).await.workflow_execution_info.unwrap();
    let memo = info.memo.unwrap_or_default();
    assert!(memo.fields.contains_key("note"), "{memo:?}");
    let attributes = info.search_attributes.unwrap_or_default();
    assert!(attributes.indexed_fields.contains_key("CustomKeywordField"), "{attributes:?}");
}

#[tokio::test]
async fn patched_code_keeps_old_runs_on_the_old_path_across_a_worker_restart() {
    let s = setup("versioned").await;
    let old_id = &s.id;
    let v1 = support::worker!(&s.queue, activities: [Acts(s.log.clone())], workflows: [VersionedV1]);
    with_worker(&s.client, v1, async {
        s.start(VersionedV1::run, 1500, old_id).await;
        wait_for_event(&s.client, old_id, "EVENT_TYPE_TIMER_STARTED").await;
    })
    .await;
    // A new worker with version 2 replays the old run from its history.
    let v2 = support::worker!(&s.queue, activities: [Acts(s.log.clone())], workflows: [VersionedV2]);
    with_worker(&s.client, v2, async {
        assert_eq!(latest_result::<VersionedV2>(&s.client, old_id).await, "v1");
        let new_id = unique("versioned");
        let new = s.start(VersionedV2::run, 10, &new_id).await;
        assert_eq!(get_result(&new).await.unwrap(), "v2");
        let types = history_event_types(&s.client, &new_id).await;
        assert!(types.contains(&"EVENT_TYPE_MARKER_RECORDED".to_string()), "the patch is recorded: {types:?}");
    })
    .await;
    let old_types = history_event_types(&s.client, old_id).await;
    assert!(!old_types.contains(&"EVENT_TYPE_WORKFLOW_TASK_FAILED".to_string()), "no nondeterminism: {old_types:?}");
    assert_eq!(s.log.entries().iter().filter(|e| *e == "echo:v1").count(), 1, "{:?}", s.log.entries());
}

#[tokio::test]
async fn parent_close_policies_terminate_cancel_or_abandon_the_children() {
    let s = setup("abandoner").await;
    s.run(Abandoner::run, (), async |handle| {
        get_result(handle).await.unwrap();
        let status = |suffix: &str| {
            let client = s.client.clone();
            let child = format!("{}-{suffix}", s.id);
            async move { describe(&client, &child).await.workflow_execution_info.unwrap().status }
        };
        let statuses = async || (status("terminate").await, status("cancel").await, status("abandon").await);
        let statuses = poll(100, Duration::from_millis(50), statuses, |statuses| *statuses == (5, 4, 1)).await;
        assert_eq!(statuses, (5, 4, 1), "terminated, canceled, still running");
    })
    .await;
}

#[tokio::test]
async fn reset_to_the_first_workflow_task_replays_and_runs_again() {
    use temporalio_protos::temporal::api::enums::v1::WorkflowTaskFailedCause;
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_protos::temporal::api::workflowservice::v1::ResetWorkflowExecutionRequest;
    let s = setup("reset").await;
    s.run(TwoSteps::run, (), async |handle| {
        assert_eq!(get_result(handle).await.unwrap(), "one two");
        let base_run = handle.info().run_id.clone().unwrap();
        let mut service = s.client.connection().workflow_service();
        let request = |finish: i64| ResetWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: execution(&s.id, &base_run),
            reason: "try again".into(),
            workflow_task_finish_event_id: finish,
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        // Event 5 is an activity's scheduled event, not the end of a workflow task.
        let bad = service.reset_workflow_execution(tonic::Request::new(request(5))).await;
        assert_eq!(bad.map(|_| ()).unwrap_err().code(), tonic::Code::InvalidArgument);
        // Event 4 completes the first workflow task.
        let new_run =
            service.reset_workflow_execution(tonic::Request::new(request(4))).await.unwrap().into_inner().run_id;
        assert_ne!(new_run, base_run);
        assert_eq!(latest_result::<TwoSteps>(&s.client, &s.id).await, "one two");
        let events = history(&s.client, &s.id, &new_run).await;
        match &events[3].attributes {
            Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
                assert_eq!(a.cause, WorkflowTaskFailedCause::ResetWorkflow as i32);
                assert_eq!(a.base_run_id, base_run);
            }
            other => panic!("event 4 of the reset run must be the reset failure: {other:?}"),
        }
    })
    .await;
    let echoes = s.log.entries().iter().filter(|e| e.starts_with("echo:")).count();
    assert_eq!(echoes, 4, "both activities ran again in the reset run: {:?}", s.log.entries());
}

#[tokio::test]
async fn scheduling_past_the_pending_activities_limit_fails_the_workflow_task() {
    let s = setup("fanout").await;
    s.run(FanOut::run, 2001, async |handle| {
        // The task with 2,001 activities is refused; the worker's retries are transient.
        let types = wait_for_event(&s.client, &s.id, "EVENT_TYPE_WORKFLOW_TASK_FAILED").await;
        assert!(types.contains(&"EVENT_TYPE_WORKFLOW_TASK_FAILED".to_string()), "{types:?}");
        assert!(!types.contains(&"EVENT_TYPE_ACTIVITY_TASK_SCHEDULED".to_string()), "{types:?}");
        terminate(handle, "done").await;
    })
    .await;
}

#[tokio::test]
async fn a_child_timeout_and_a_child_cancellation_reach_the_parent() {
    let s = setup("supervisor").await;
    s.run(Supervisor::run, (), async |handle| {
        let result = get_result(handle).await.unwrap();
        assert!(!result.contains("unexpected"), "{result}");
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    assert_events_include(
        &types,
        &[
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT",
            "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
            "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED",
        ],
    );
}

#[tokio::test]
async fn a_repeated_update_id_is_applied_once_and_can_be_polled() {
    use temporalio_protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage;
    use temporalio_protos::temporal::api::update::v1::{outcome, UpdateRef, WaitPolicy};
    use temporalio_protos::temporal::api::workflowservice::v1::PollWorkflowExecutionUpdateRequest;
    let s = setup("update-id").await;
    s.run(Counter::run, 100, async |handle| {
        let options = || WorkflowExecuteUpdateOptions::builder().update_id("set-once".to_string()).build();
        assert_eq!(handle.execute_update(Counter::set, 7, options()).await.unwrap(), 0);
        // The same update id again: the first outcome, not a second update.
        assert_eq!(handle.execute_update(Counter::set, 8, options()).await.unwrap(), 0);
        assert_eq!(handle.query(Counter::total, (), WorkflowQueryOptions::default()).await.unwrap(), 7);
        let mut service = s.client.connection().workflow_service();
        let poll = PollWorkflowExecutionUpdateRequest {
            namespace: "default".into(),
            update_ref: Some(UpdateRef { workflow_execution: execution(&s.id, ""), update_id: "set-once".into() }),
            wait_policy: Some(WaitPolicy { lifecycle_stage: UpdateWorkflowExecutionLifecycleStage::Completed as i32 }),
            ..Default::default()
        };
        let polled =
            service.poll_workflow_execution_update(tonic::Request::new(poll.clone())).await.unwrap().into_inner();
        assert_eq!(polled.stage, UpdateWorkflowExecutionLifecycleStage::Completed as i32);
        assert!(matches!(polled.outcome.and_then(|o| o.value), Some(outcome::Value::Success(_))));
        let unknown = PollWorkflowExecutionUpdateRequest {
            update_ref: Some(UpdateRef { workflow_execution: execution(&s.id, ""), update_id: "never-sent".into() }),
            ..poll
        };
        let missing = service.poll_workflow_execution_update(tonic::Request::new(unknown)).await;
        assert_eq!(missing.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound);
        terminate(handle, "done").await;
    })
    .await;
    let types = history_event_types(&s.client, &s.id).await;
    let accepted = count_events(&types, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED");
    assert_eq!(accepted, 1, "{types:?}");
}

/// Runs the timer, signal, child and continue-as-new scenarios against a server; returns each
/// scenario's event types (for the child scenario: the parent's, then the child's).
async fn scenario_histories(url: &str) -> Vec<(&'static str, Vec<String>)> {
    let client = client(url).await;
    let queue = unique("differential");
    let log = CallLog::default();
    with_worker(&client, worker_options(&queue, &log), async {
        let mut out = Vec::new();
        let id = unique("timers");
        run_workflow(&client, Timers::run, 50, &queue, &id).await;
        out.push(("timers", history_event_types(&client, &id).await));

        let id = unique("signals");
        let handle = client
            .signal_with_start_workflow(Counter::run, 3, Counter::add, 3, start_options(&queue, &id))
            .await
            .unwrap();
        get_result(&handle).await.unwrap();
        out.push(("signal-with-start", history_event_types(&client, &id).await));

        let id = unique("parent");
        run_workflow(&client, Parent::run, "ann".to_string(), &queue, &id).await;
        out.push(("parent", history_event_types(&client, &id).await));
        out.push(("child", history_event_types(&client, &format!("{id}-child")).await));

        let id = unique("supervisor");
        run_workflow(&client, Supervisor::run, (), &queue, &id).await;
        out.push(("child timed out, child cancelled", history_event_types(&client, &id).await));

        let id = unique("reset");
        run_workflow(&client, TwoSteps::run, (), &queue, &id).await;
        let request = temporalio_protos::temporal::api::workflowservice::v1::ResetWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: execution(&id, ""),
            reason: "again".into(),
            workflow_task_finish_event_id: 4,
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        let mut service = client.connection().workflow_service();
        service.reset_workflow_execution(tonic::Request::new(request)).await.unwrap();
        latest_result::<TwoSteps>(&client, &id).await;
        out.push(("reset to the first workflow task", history_event_types(&client, &id).await));

        let id = unique("update");
        let handle = start(&client, Counter::run, 5, &queue, &id).await;
        // Once the first task is done on both servers, each update gets a task of its own.
        wait_for_event(&client, &id, "EVENT_TYPE_WORKFLOW_TASK_COMPLETED").await;
        handle.execute_update(Counter::set, 2, WorkflowExecuteUpdateOptions::default()).await.unwrap();
        let rejected = handle.execute_update(Counter::set, -2, WorkflowExecuteUpdateOptions::default()).await;
        assert!(rejected.is_err());
        handle.signal(Counter::add, 3, WorkflowSignalOptions::default()).await.unwrap();
        get_result(&handle).await.unwrap();
        out.push(("update accepted, update rejected, signal", history_event_types(&client, &id).await));

        let id = unique("chain");
        let handle = start(&client, Chain::run, (1, 2, String::new()), &queue, &id).await;
        let first_run = handle.info().run_id.clone().unwrap();
        get_result(&handle).await.unwrap();
        out.push(("continue-as-new, first run", history_event_types_of(&client, &id, &first_run).await));
        out.push(("continue-as-new, last run", history_event_types(&client, &id).await));
        out
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn timer_signal_child_and_continue_as_new_histories_match_the_real_temporal_server() {
    let Some((ours, theirs)) = on_tempora_and_reference(scenario_histories).await else { return };
    for ((name, ours), (_, theirs)) in ours.iter().zip(theirs.iter()) {
        assert_eq!(ours, theirs, "{name}: tempora vs Temporal");
        eprintln!("{name}: {} events, identical types on both servers", ours.len());
    }
}
