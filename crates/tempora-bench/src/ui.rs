//! `tempora-bench ui`: how long the server takes to answer what the UI's two heaviest pages
//! fetch. Starts tempora (SQLite file) with its UI port, starts `runs` workflows and sends one
//! of them signals until its history holds `events` events (no worker: each signal is one
//! event), then times, over `iterations` rounds, through the UI port's HTTP API:
//! - the workflow list page: the first page of 50 runs and the status counts;
//! - the workflow page of the long run: describe plus its whole history (pages of 1,000, as
//!   the UI fetches it).
//!
//! Server time is measured as the client sees it on loopback, one request after another.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use temporalio_protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::temporal::api::workflowservice::v1::{
    SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest,
};

use crate::{connect, free_port, tempora_binary};

pub struct Options {
    pub runs: usize,
    pub events: usize,
    pub iterations: usize,
    pub tempora: Option<PathBuf>,
}

/// One GET on a fresh connection: the whole response (status line, headers, body).
fn get(address: &str, path: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if !response.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", response.lines().next().unwrap_or_default());
    }
    Ok(response)
}

/// The next-page token of a JSON answer, if any (found without parsing the whole page).
fn next_page_token(response: &str) -> Option<String> {
    let at = response.find("\"nextPageToken\":\"")? + "\"nextPageToken\":\"".len();
    let end = response[at..].find('"')?;
    Some(response[at..at + end].to_string()).filter(|t| !t.is_empty())
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(options: Options) -> Result<()> {
    let binary = tempora_binary(options.tempora)?;
    let dir = std::env::temp_dir().join(format!("tempora-bench-ui-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("ui.db");
    let (port, ui_port) = (free_port()?, free_port()?);
    let mut child = tokio::process::Command::new(&binary)
        .args(["server", "start", "--db", db.to_str().context("path")?, "--port", &port.to_string()])
        .args(["--http-port", "0", "--ui-port", &ui_port.to_string()])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let address = format!("127.0.0.1:{port}");
    let ui = format!("127.0.0.1:{ui_port}");
    let client = loop {
        match connect(&address).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let service = client.connection().workflow_service();

    let t = Instant::now();
    let start = |i: usize| StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: format!("ui-bench-{i}"),
        workflow_type: Some(WorkflowType { name: "UiBench".into() }),
        task_queue: Some(TaskQueue { name: "ui-bench".into(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    for chunk in (0..options.runs).collect::<Vec<_>>().chunks(50) {
        let calls = chunk.iter().map(|&i| {
            let mut service = service.clone();
            let request = start(i);
            async move { service.start_workflow_execution(tonic::Request::new(request)).await }
        });
        for result in futures::future::join_all(calls).await {
            result?;
        }
    }
    // A new run has 2 events; every signal adds one.
    let signals = options.events.saturating_sub(2);
    let long = "ui-bench-0";
    for chunk in (0..signals).collect::<Vec<_>>().chunks(50) {
        let calls = chunk.iter().map(|&i| {
            let mut service = service.clone();
            let request = SignalWorkflowExecutionRequest {
                namespace: "default".into(),
                workflow_execution: Some(WorkflowExecution { workflow_id: long.into(), run_id: String::new() }),
                signal_name: "tick".into(),
                input: None,
                request_id: format!("tick-{i}"),
                ..Default::default()
            };
            async move { service.signal_workflow_execution(tonic::Request::new(request)).await }
        });
        for result in futures::future::join_all(calls).await {
            result?;
        }
    }
    println!("setup: {} runs, one of {} events, in {:.1} s", options.runs, options.events, t.elapsed().as_secs_f64());

    let list = "/api/v1/namespaces/default/workflows?pageSize=50&query=".to_string();
    let counts = format!("/api/v1/namespaces/default/workflow-count?query={}", encode("GROUP BY ExecutionStatus"));
    let describe = format!("/api/v1/namespaces/default/workflows/{long}");
    let history = format!("/api/v1/namespaces/default/workflows/{long}/history?maximumPageSize=1000");
    let (mut list_times, mut detail_times) = (Vec::new(), Vec::new());
    let (ui2, list2, counts2, describe2, history2) =
        (ui.clone(), list.clone(), counts.clone(), describe.clone(), history.clone());
    let iterations = options.iterations;
    let (list_times, detail_times, bytes, pages) = tokio::task::spawn_blocking(move || -> Result<_> {
        let (mut bytes, mut pages) = (0, 0);
        for _ in 0..iterations {
            let t = Instant::now();
            get(&ui2, &list2)?;
            get(&ui2, &counts2)?;
            list_times.push(t.elapsed());

            let t = Instant::now();
            get(&ui2, &describe2)?;
            let (mut token, mut n, mut size) = (None::<String>, 0, 0);
            loop {
                let path = match &token {
                    Some(tok) => format!("{history2}&nextPageToken={}", encode(tok)),
                    None => history2.clone(),
                };
                let page = get(&ui2, &path)?;
                size += page.len();
                n += 1;
                token = next_page_token(&page);
                if token.is_none() {
                    break;
                }
            }
            detail_times.push(t.elapsed());
            (bytes, pages) = (size, n);
        }
        Ok((list_times, detail_times, bytes, pages))
    })
    .await??;
    let (p50, p99) = percentiles(list_times);
    println!("workflow list page (first 50 runs + status counts): p50 {p50:.1} ms  p99 {p99:.1} ms");
    let (p50, p99) = percentiles(detail_times);
    println!(
        "workflow page, {} events ({pages} history pages, {:.1} MB of JSON): p50 {p50:.1} ms  p99 {p99:.1} ms",
        options.events,
        bytes as f64 / 1e6
    );
    child.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
