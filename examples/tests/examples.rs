//! Every example, end to end against an in-process tempora; the gateway through real HTTP.

// The integration tests' shared harness (worker, history reads, waiting), not a copy of it.
#[path = "../../crates/tempora/tests/support/mod.rs"]
mod support;

use tempora::testing::TestServer;
use tempora_examples::gateway::{self, Fetched, Started};
use tempora_examples::{
    connect, worker_options, AnotherWorkflow, Bank, Transfer, TransferMoney, YourActivities, TASK_QUEUE,
};
use temporalio_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{get_result, history, latest_result, start, temp_db, wait_until, with_worker};

fn activities() -> YourActivities {
    YourActivities { message: "Hi".into(), number: 7 }
}

/// One HTTP/1.1 request over a plain socket; returns (status, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

async fn serve_gateway(client: Client) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, gateway::router(client)).await });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_starts_your_workflow_and_fetches_results_by_id() {
    let server = TestServer::start(":memory:").await;
    let client = connect(&server.addr.to_string()).await.unwrap();
    let addr = serve_gateway(client.clone()).await;
    with_worker(&client, worker_options(TASK_QUEUE, activities(), Bank::default()), async {
        let (status, body) =
            http(addr, "POST", "/start", r#"{"name": "Ada", "count": 2, "workflow_id": "gw-1"}"#).await;
        assert_eq!(status, 200, "{body}");
        let started: Started = serde_json::from_str(&body).unwrap();
        assert_eq!(started.workflow_id, "gw-1");
        assert!(!started.run_id.is_empty());
        assert_eq!(started.result, "Hi Ada (count 2, number 7) [workflow gw-1, via GetInfo attempt 1]");

        let (status, body) = http(addr, "GET", "/result/gw-1", "").await;
        assert_eq!(status, 200, "{body}");
        let fetched: Fetched = serde_json::from_str(&body).unwrap();
        assert_eq!(fetched.result, started.result);

        let (status, _) = http(addr, "GET", "/result/never-started", "").await;
        assert_eq!(status, 404);
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_names_are_what_the_server_sees() {
    let server = TestServer::start(":memory:").await;
    let client = connect(&server.addr.to_string()).await.unwrap();
    with_worker(&client, worker_options(TASK_QUEUE, activities(), Bank::default()), async {
        let handle = start(&client, AnotherWorkflow::run, "ping".to_string(), TASK_QUEUE, "another").await;
        assert_eq!(get_result(&handle).await.unwrap(), "Hi: ping");
        let history = history(&client, "another", "").await;
        use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
        let names: Vec<String> = history
            .iter()
            .filter_map(|e| match &e.attributes {
                Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.workflow_type.clone().map(|t| t.name),
                Some(Attributes::ActivityTaskScheduledEventAttributes(a)) => a.activity_type.clone().map(|t| t.name),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec!["JustAnotherWorkflow", "JustAnotherActivity"]);
    })
    .await;
    server.stop().await;
}

const COMPENSATED: [&str; 7] = [
    "withdraw 100 from alice",
    "deposit 100 to bob",
    "step with error, attempt 1",
    "step with error, attempt 2",
    "step with error, attempt 3",
    "undo deposit 100 to bob",
    "undo withdraw 100 from alice",
];

#[tokio::test(flavor = "multi_thread")]
async fn transfer_through_the_gateway_compensates_in_reverse_order() {
    let server = TestServer::start(":memory:").await;
    let client = connect(&server.addr.to_string()).await.unwrap();
    let addr = serve_gateway(client.clone()).await;
    let bank = Bank::default();
    with_worker(&client, worker_options(TASK_QUEUE, activities(), bank.clone()), async {
        let (status, body) = http(addr, "POST", "/transfer", r#"{"from": "alice", "to": "bob", "amount": 100}"#).await;
        assert_eq!(status, 200, "{body}");
        let started: Started = serde_json::from_str(&body).unwrap();
        assert_eq!(started.result, "transfer of 100 failed; compensated 2 step(s)");
    })
    .await;
    assert_eq!(bank.entries(), COMPENSATED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compensation_order_survives_a_worker_and_server_restart() {
    let (_dir, db) = temp_db();
    let bank = Bank::default();
    let transfer = Transfer { from: "alice".into(), to: "bob".into(), amount: 100, pause_in_compensation_secs: 2 };

    let server = TestServer::start(&db).await;
    let client = connect(&server.addr.to_string()).await.unwrap();
    with_worker(&client, worker_options(TASK_QUEUE, activities(), bank.clone()), async {
        start(&client, TransferMoney::run, transfer, TASK_QUEUE, "paused").await;
        // Wait until the first compensation ran: the workflow now sleeps inside compensation.
        let compensating = async || bank.entries().iter().any(|e| e.starts_with("undo deposit"));
        wait_until("the first compensation ran", compensating).await;
    })
    .await;
    server.stop().await;

    let server = TestServer::start(&db).await;
    let client = connect(&server.addr.to_string()).await.unwrap();
    let worker = worker_options(TASK_QUEUE, activities(), bank.clone());
    let result = with_worker(&client, worker, latest_result::<TransferMoney>(&client, "paused")).await;
    server.stop().await;
    assert_eq!(result, "transfer of 100 failed; compensated 2 step(s)");
    assert_eq!(bank.entries(), COMPENSATED);
}
