//! The worker: registers the example workflows and activities on `your-custom-task-queue-name`
//! and polls until Ctrl-C.

use clap::Parser;
use tempora_examples::{connect, worker_options, Bank, YourActivities, TASK_QUEUE};
use temporalio_sdk::{Runtime, Worker};

#[derive(Parser)]
struct Args {
    /// The server (tempora or Temporal).
    #[arg(long, default_value = "127.0.0.1:7233")]
    address: String,
    /// The message the activities hold.
    #[arg(long, default_value = "Hello")]
    message: String,
    /// The number the activities hold.
    #[arg(long, default_value_t = 42)]
    number: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = connect(&args.address).await?;
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let activities = YourActivities { message: args.message, number: args.number };
    let mut worker = Worker::new(&runtime, client, worker_options(TASK_QUEUE, activities, Bank::default()))?;
    let stop = worker.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop();
    });
    println!("worker polling {TASK_QUEUE} on {}", args.address);
    worker.run().await?;
    Ok(())
}
