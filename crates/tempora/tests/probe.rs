//! Quick end-to-end probe: one workflow, one activity, official Rust SDK.
use std::str::FromStr;
use std::time::Duration;

use tempora::testing::TestServer;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult};

struct Greeter;

#[activities]
impl Greeter {
    #[activity]
    pub(crate) async fn greet(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
        Ok(format!("Hello, {name}!"))
    }
}

#[workflow]
#[derive(Default)]
struct HelloWorkflow;

#[workflow_methods]
impl HelloWorkflow {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        let greeting = ctx
            .execute_activity(Greeter::greet, name, ActivityOptions::start_to_close_timeout(Duration::from_secs(5)))
            .await?;
        Ok(greeting)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_hello() {
    let server = TestServer::start(":memory:").await;
    let connection = Connection::connect(ConnectionOptions::new(Url::from_str(&server.url()).unwrap()).build()).await.unwrap();
    let client = Client::new(connection, ClientOptions::new("default").build()).unwrap();
    let runtime = Runtime::from_current_tokio(Default::default()).unwrap();
    let opts = WorkerOptions::new("probe-tq").register_activities(Greeter).register_workflow::<HelloWorkflow>().unwrap().build();
    let mut worker = Worker::new(&runtime, client.clone(), opts).unwrap();
    let stop = worker.shutdown_handle();
    let client_side = async {
        let handle = client
            .start_workflow(HelloWorkflow::run, "tempora".to_string(), WorkflowStartOptions::new("probe-tq", "probe-1").build())
            .await
            .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(30), handle.get_result(WorkflowGetResultOptions::default())).await;
        stop();
        result
    };
    let (result, run) = tokio::join!(client_side, worker.run());
    run.unwrap();
    assert_eq!(result.expect("no timeout").unwrap(), "Hello, tempora!");
    server.stop().await;
}
