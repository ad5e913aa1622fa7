//! The seed's programs, written with the official Temporal Rust SDK. Nothing here knows it
//! talks to tempora rather than Temporal: only the address differs.
//!
//! - `YourWorkflowDefinition`: three activities in sequence (a parameterised step, GetInfo,
//!   PrintInfo), each feeding the next, start-to-close timeout 10 s.
//! - `JustAnotherWorkflow` / `JustAnotherActivity`: registered under custom names.
//! - `TransferMoney`: withdraw, deposit, a failing step; on failure, compensations in reverse
//!   order, optionally pausing (on a durable timer) between them so a person can kill and
//!   restart the worker or the server and watch the order survive.
//! - `gateway`: `POST /start`, `POST /transfer`, `GET /result/{workflow_id}`.

pub mod gateway;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::temporal::api::common::v1::RetryPolicy;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkerOptions, WorkflowContext, WorkflowResult};

pub const TASK_QUEUE: &str = "your-custom-task-queue-name";

/// The parameter of `YourWorkflowDefinition`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct YourParam {
    pub name: String,
    #[serde(default)]
    pub count: i64,
}

/// What `GetInfo` reports about the running activity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub previous: String,
    pub workflow_id: String,
    pub activity_type: String,
    pub attempt: u32,
}

/// Activities that hold state given at registration: a message and a number.
#[derive(Clone)]
pub struct YourActivities {
    pub message: String,
    pub number: i64,
}

#[activities]
impl YourActivities {
    /// The parameterised step.
    #[activity(name = "YourActivityDefinition")]
    async fn your_activity(self: Arc<Self>, _ctx: ActivityContext, param: YourParam) -> Result<String, ActivityError> {
        Ok(format!("{} {} (count {}, number {})", self.message, param.name, param.count, self.number))
    }

    #[activity(name = "GetInfo")]
    async fn get_info(self: Arc<Self>, ctx: ActivityContext, previous: String) -> Result<Info, ActivityError> {
        let info = ctx.info();
        Ok(Info {
            previous,
            workflow_id: info.workflow_id.clone().unwrap_or_default(),
            activity_type: info.activity_type.clone(),
            attempt: info.attempt,
        })
    }

    #[activity(name = "PrintInfo")]
    async fn print_info(self: Arc<Self>, _ctx: ActivityContext, info: Info) -> Result<String, ActivityError> {
        let line = format!(
            "{} [workflow {}, via {} attempt {}]",
            info.previous, info.workflow_id, info.activity_type, info.attempt
        );
        println!("{line}");
        Ok(line)
    }

    #[activity(name = "JustAnotherActivity")]
    async fn just_another(self: Arc<Self>, _ctx: ActivityContext, input: String) -> Result<String, ActivityError> {
        Ok(format!("{}: {input}", self.message))
    }
}

fn ten_seconds() -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(Duration::from_secs(10))
}

#[workflow]
#[derive(Default)]
pub struct YourWorkflowDefinition;

#[workflow_methods]
impl YourWorkflowDefinition {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, param: YourParam) -> WorkflowResult<String> {
        let first = ctx.execute_activity(YourActivities::your_activity, param, ten_seconds()).await?;
        let info = ctx.execute_activity(YourActivities::get_info, first, ten_seconds()).await?;
        Ok(ctx.execute_activity(YourActivities::print_info, info, ten_seconds()).await?)
    }
}

#[workflow]
#[derive(Default)]
pub struct AnotherWorkflow;

#[workflow_methods]
impl AnotherWorkflow {
    #[run(name = "JustAnotherWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: String) -> WorkflowResult<String> {
        Ok(ctx.execute_activity(YourActivities::just_another, input, ten_seconds()).await?)
    }
}

/// The input of `TransferMoney`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    pub amount: i64,
    /// Seconds to wait (on a durable timer) between the compensations.
    #[serde(default)]
    pub pause_in_compensation_secs: u64,
}

/// A bank whose third step always fails. Every call is printed and kept in `ledger`.
#[derive(Clone, Default)]
pub struct Bank {
    pub ledger: Arc<Mutex<Vec<String>>>,
}

impl Bank {
    fn record(&self, entry: String) {
        println!("bank: {entry}");
        self.ledger.lock().expect("ledger lock").push(entry);
    }
    pub fn entries(&self) -> Vec<String> {
        self.ledger.lock().expect("ledger lock").clone()
    }
}

#[activities]
impl Bank {
    #[activity(name = "Withdraw")]
    async fn withdraw(self: Arc<Self>, _ctx: ActivityContext, t: Transfer) -> Result<(), ActivityError> {
        self.record(format!("withdraw {} from {}", t.amount, t.from));
        Ok(())
    }

    #[activity(name = "Deposit")]
    async fn deposit(self: Arc<Self>, _ctx: ActivityContext, t: Transfer) -> Result<(), ActivityError> {
        self.record(format!("deposit {} to {}", t.amount, t.to));
        Ok(())
    }

    #[activity(name = "StepWithError")]
    async fn step_with_error(self: Arc<Self>, ctx: ActivityContext, _t: Transfer) -> Result<(), ActivityError> {
        self.record(format!("step with error, attempt {}", ctx.info().attempt));
        Err(anyhow::anyhow!("this step always fails").into())
    }

    #[activity(name = "UndoDeposit")]
    async fn undo_deposit(self: Arc<Self>, _ctx: ActivityContext, t: Transfer) -> Result<(), ActivityError> {
        self.record(format!("undo deposit {} to {}", t.amount, t.to));
        Ok(())
    }

    #[activity(name = "UndoWithdraw")]
    async fn undo_withdraw(self: Arc<Self>, _ctx: ActivityContext, t: Transfer) -> Result<(), ActivityError> {
        self.record(format!("undo withdraw {} from {}", t.amount, t.from));
        Ok(())
    }
}

/// The seed's retry policy: 1 s initial interval, ×2, at most 1 min, 3 attempts.
pub fn transfer_retry_policy() -> RetryPolicy {
    RetryPolicy {
        initial_interval: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        backoff_coefficient: 2.0,
        maximum_interval: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
        maximum_attempts: 3,
        non_retryable_error_types: vec![],
    }
}

#[derive(Clone, Copy)]
enum Compensation {
    UndoWithdraw,
    UndoDeposit,
}

#[workflow]
#[derive(Default)]
pub struct TransferMoney;

#[workflow_methods]
impl TransferMoney {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, t: Transfer) -> WorkflowResult<String> {
        let options = || {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
                .retry_policy(transfer_retry_policy())
                .build()
        };
        let mut compensations = Vec::new();
        let outcome = async {
            ctx.execute_activity(Bank::withdraw, t.clone(), options()).await?;
            compensations.push(Compensation::UndoWithdraw);
            ctx.execute_activity(Bank::deposit, t.clone(), options()).await?;
            compensations.push(Compensation::UndoDeposit);
            ctx.execute_activity(Bank::step_with_error, t.clone(), options()).await?;
            Ok::<_, temporalio_sdk::ActivityExecutionError>(())
        }
        .await;
        if outcome.is_ok() {
            return Ok(format!("transferred {} from {} to {}", t.amount, t.from, t.to));
        }
        for (i, compensation) in compensations.iter().rev().enumerate() {
            if i > 0 && t.pause_in_compensation_secs > 0 {
                ctx.timer(Duration::from_secs(t.pause_in_compensation_secs)).await;
            }
            match compensation {
                Compensation::UndoDeposit => ctx.execute_activity(Bank::undo_deposit, t.clone(), options()).await?,
                Compensation::UndoWithdraw => ctx.execute_activity(Bank::undo_withdraw, t.clone(), options()).await?,
            }
        }
        Ok(format!("transfer of {} failed; compensated {} step(s)", t.amount, compensations.len()))
    }
}

/// The worker's registrations, on `task_queue`.
pub fn worker_options(task_queue: &str, activities: YourActivities, bank: Bank) -> WorkerOptions {
    WorkerOptions::new(task_queue)
        .register_activities(activities)
        .register_activities(bank)
        .register_workflow::<YourWorkflowDefinition>()
        .expect("register YourWorkflowDefinition")
        .register_workflow::<AnotherWorkflow>()
        .expect("register JustAnotherWorkflow")
        .register_workflow::<TransferMoney>()
        .expect("register TransferMoney")
        .build()
}

/// Connects a client to a Temporal-API server at `address` (host:port).
pub async fn connect(address: &str) -> anyhow::Result<temporalio_client::Client> {
    use std::str::FromStr;
    use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
    let url = Url::from_str(&format!("http://{address}"))?;
    let connection = Connection::connect(ConnectionOptions::new(url).build()).await?;
    Ok(Client::new(connection, ClientOptions::new("default").build())?)
}
