//! Shared test harness: an official-SDK client and worker against an in-process tempora.
#![allow(dead_code)]

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Every test's hard limit, so a broken server fails a test instead of hanging it.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn client(url: &str) -> Client {
    client_in(url, "default").await
}

pub async fn client_in(url: &str, namespace: &str) -> Client {
    let options = ConnectionOptions::new(Url::from_str(url).expect("url")).build();
    let connection = Connection::connect(options).await.expect("connect to tempora");
    Client::new(connection, ClientOptions::new(namespace).build()).expect("client")
}

/// Runs `body` while a worker built from `options` polls; stops the worker when `body` ends.
/// The worker future is not `Send`, so both run in this task.
pub async fn with_worker<T>(client: &Client, options: WorkerOptions, body: impl Future<Output = T>) -> T {
    let runtime = Runtime::from_current_tokio(Default::default()).expect("runtime");
    let mut worker = Worker::new(&runtime, client.clone(), options).expect("worker");
    let stop = worker.shutdown_handle();
    let body = async {
        let out = tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test body timed out");
        stop();
        out
    };
    let (out, run) = tokio::join!(body, worker.run());
    run.expect("worker ran cleanly");
    out
}

/// A unique name for queues and workflow ids.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
