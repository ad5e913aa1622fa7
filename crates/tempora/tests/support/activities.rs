//! The log a test's activities record their calls in, the activities several suites share, and
//! the money-transfer saga built on them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use temporalio_common::ActivityDefinition;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityExecutionError, ActivityOptions, WorkflowContext};

use super::wait::wait_until;

/// What a test's activities did, in order, and when: "name:attempt" for a recorded call, or any
/// entry an activity pushes.
#[derive(Default, Clone)]
pub struct CallLog(Arc<Mutex<Vec<(String, Instant)>>>);

impl CallLog {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push((entry.into(), Instant::now()));
    }

    /// Logs a call of activity `name` as "name:attempt"; returns the attempt.
    pub fn record(&self, ctx: &ActivityContext, name: &str) -> u32 {
        let attempt = ctx.info().attempt;
        self.push(format!("{name}:{attempt}"));
        attempt
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(entry, _)| entry.clone()).collect()
    }

    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().iter().map(|(_, at)| *at).collect()
    }

    /// Waits until `entry` is in the log (see [`wait_until`]).
    pub async fn wait_for(&self, entry: &str) {
        wait_until(entry, async || self.entries().iter().any(|e| e == entry)).await;
    }

    /// Records a call of a step that has nothing to return.
    fn step(&self, ctx: &ActivityContext, name: &str) -> Result<(), ActivityError> {
        self.record(ctx, name);
        Ok(())
    }
}

/// Activities the saga and arithmetic workflows of several suites run; each records its call.
#[derive(Default, Clone)]
pub struct Common(pub CallLog);

#[activities]
impl Common {
    #[activity]
    pub async fn withdraw(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.step(&ctx, "withdraw")
    }

    #[activity]
    pub async fn add_one(self: Arc<Self>, ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.0.record(&ctx, "add_one");
        Ok(n + 1)
    }

    #[activity]
    pub async fn double(self: Arc<Self>, ctx: ActivityContext, n: i64) -> Result<i64, ActivityError> {
        self.0.record(&ctx, "double");
        Ok(n * 2)
    }

    #[activity]
    pub async fn deposit(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.step(&ctx, "deposit")
    }

    #[activity]
    pub async fn always_fails(self: Arc<Self>, ctx: ActivityContext, _: ()) -> Result<(), ActivityError> {
        self.0.record(&ctx, "always_fails");
        Err(anyhow::anyhow!("nope").into())
    }

    #[activity]
    pub async fn undo_deposit(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.step(&ctx, "undo_deposit")
    }

    #[activity]
    pub async fn undo_withdraw(self: Arc<Self>, ctx: ActivityContext, _amount: i64) -> Result<(), ActivityError> {
        self.0.step(&ctx, "undo_withdraw")
    }
}

/// The money-transfer saga: withdraw, deposit, then `last`, each with `options()`. When a step
/// fails for good, the steps done are undone in reverse order and `Ok(Err(failure))` returned;
/// `Err` if an undo step fails.
pub async fn transfer<W, Last>(
    ctx: &WorkflowContext<W>,
    amount: i64,
    options: impl Fn() -> ActivityOptions,
    last: Last,
) -> Result<Result<(), ActivityExecutionError>, ActivityExecutionError>
where
    Last: ActivityDefinition<Input = i64, Output = ()>,
{
    let mut done = Vec::new();
    let steps = async {
        ctx.execute_activity(Common::withdraw, amount, options()).await?;
        done.push("withdraw");
        ctx.execute_activity(Common::deposit, amount, options()).await?;
        done.push("deposit");
        ctx.execute_activity(last, amount, options()).await
    }
    .await;
    let Err(failure) = steps else { return Ok(Ok(())) };
    for step in done.iter().rev() {
        match *step {
            "deposit" => ctx.execute_activity(Common::undo_deposit, amount, options()).await?,
            _ => ctx.execute_activity(Common::undo_withdraw, amount, options()).await?,
        }
    }
    Ok(Err(failure))
}
