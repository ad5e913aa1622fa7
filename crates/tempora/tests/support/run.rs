//! Starting workflows and waiting for their results through the official SDK client.

use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions, WorkflowTerminateOptions,
};
use temporalio_common::HasWorkflowDefinition;
use temporalio_sdk::WorkerOptions;

use super::{start_server, unique, with_worker, CallLog};

/// Plain start options: the task queue and the workflow id, nothing else.
pub fn start_options(queue: &str, workflow_id: impl Into<String>) -> WorkflowStartOptions {
    WorkflowStartOptions::new(queue, workflow_id.into()).build()
}

/// Starts `workflow` with plain options; panics if the start is refused.
pub async fn start<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    queue: &str,
    workflow_id: impl Into<String>,
) -> WorkflowHandle<Client, W>
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    client.start_workflow(workflow, input, start_options(queue, workflow_id)).await.expect("start the workflow")
}

/// The workflow's result (following its run chain), or how it ended otherwise.
pub async fn get_result<W: HasWorkflowDefinition>(
    handle: &WorkflowHandle<Client, W>,
) -> Result<W::Output, WorkflowGetResultError> {
    handle.get_result(WorkflowGetResultOptions::default()).await
}

/// The result of workflow `workflow_id`, from its latest run on; panics if it does not succeed.
pub async fn latest_result<W: HasWorkflowDefinition>(client: &Client, workflow_id: &str) -> W::Output {
    get_result(&client.get_workflow_handle::<W>(workflow_id)).await.expect("the workflow's result")
}

/// Starts `workflow` with plain options and waits for its result; panics unless it succeeds.
pub async fn run_workflow<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    queue: &str,
    workflow_id: impl Into<String>,
) -> W::Output
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    let handle = start(client, workflow, input, queue, workflow_id).await;
    get_result(&handle).await.expect("the workflow's result")
}

/// Runs one workflow to its result on a fresh in-memory server, with a worker made by
/// `worker(queue, log)` for a fresh task queue and call log; stops the server after. Returns the
/// result and the log's entries (the activity calls the run made).
pub async fn run_on_fresh_server<W>(
    worker: impl FnOnce(&str, &CallLog) -> WorkerOptions,
    workflow: W,
    input: W::Input,
) -> (W::Output, Vec<String>)
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    let (server, client) = start_server(":memory:").await;
    let queue = unique("q");
    let log = CallLog::default();
    let run = run_workflow(&client, workflow, input, &queue, unique("wf"));
    let result = with_worker(&client, worker(&queue, &log), run).await;
    server.stop().await;
    (result, log.entries())
}

/// Terminates the workflow with `reason`; panics if the server refuses.
pub async fn terminate<W: HasWorkflowDefinition>(handle: &WorkflowHandle<Client, W>, reason: &str) {
    handle.terminate(WorkflowTerminateOptions::builder().reason(reason).build()).await.expect("terminate");
}
