//! `tempora-bench cluster`: throughput and latency with 1, 2 and 3 nodes on one PostgreSQL
//! database, then the handover time when a fourth node leaves gracefully (SIGTERM) and the
//! failover time when one of three nodes is killed.
//!
//! Each measurement gets a fresh database beside the admin URL's. The load runs with a worker
//! connected to each node and the starts spread over the nodes, as a deployment behind a load
//! balancer would. Failover: workflows sleeping 3 s are started across the nodes, one node is
//! SIGKILLed, and the report gives the time from the kill until its shards are held by the
//! others, then until the workflows whose shard it held are seen complete.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use super::{connect, free_port, print_report, run_load_spread, tempora_binary, Load, Noop, Sleeper};

/// A node process.
struct Node {
    child: tokio::process::Child,
    address: String,
}

async fn start_node(binary: &PathBuf, db: &str) -> Result<Node> {
    let port = free_port()?;
    let child = tokio::process::Command::new(binary)
        .args(["server", "start", "--db", db, "--port", &port.to_string(), "--cluster"])
        .args(["--http-port", "0", "--ui-port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let address = format!("127.0.0.1:{port}");
    let t = Instant::now();
    while connect(&address).await.is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("a node did not answer in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Node { child, address })
}

/// `admin` with its database replaced by a fresh one named `name`. (The synchronous client
/// blocks: each use runs in `block_in_place`.)
fn fresh_database(admin: &str, name: &str) -> Result<String> {
    tokio::task::block_in_place(|| fresh_database_now(admin, name))
}

fn fresh_database_now(admin: &str, name: &str) -> Result<String> {
    let mut client = postgres::Client::connect(admin, postgres::NoTls)?;
    // Apart: several statements in one query string run in one transaction, which these refuse.
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    client.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let (base, _) = admin.rsplit_once('/').context("a database URL ends with /name")?;
    Ok(format!("{base}/{name}"))
}

/// Live shard owners: (owner, shards).
fn owners(db: &str) -> Result<Vec<(String, i64)>> {
    tokio::task::block_in_place(|| owners_now(db))
}

fn owners_now(db: &str) -> Result<Vec<(String, i64)>> {
    let mut client = postgres::Client::connect(db, postgres::NoTls)?;
    let rows = client.query(
        "SELECT owner, count(*) FROM shard_leases WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Waits until exactly `nodes` hold every shard between them.
async fn settled(db: &str, nodes: &[&str]) -> Result<()> {
    let t = Instant::now();
    loop {
        let owners = owners(db)?;
        let all = owners.iter().map(|(_, n)| n).sum::<i64>() == 256;
        if all && owners.len() == nodes.len() && owners.iter().all(|(o, _)| nodes.contains(&o.as_str())) {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("shards did not settle on {nodes:?}: {owners:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(load: Load, admin: &str, counts: &[usize], tempora: Option<PathBuf>) -> Result<()> {
    let binary = tempora_binary(tempora)?;
    for &n in counts {
        let db = fresh_database(admin, &format!("tempora_bench_cluster_{n}"))?;
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(start_node(&binary, &db).await?);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
        settled(&db, &addresses.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        let pids: Vec<u32> = nodes.iter().filter_map(|n| n.child.id()).collect();
        let warm = Load { workflows: 20, activities: load.activities, concurrency: 10 };
        run_load_spread(&addresses, &[], warm).await?;
        let report = run_load_spread(&addresses, &pids, load).await?;
        print_report(&format!("{n} node(s)"), load, &report);
        let one = Load { workflows: 50, activities: load.activities, concurrency: 1 };
        let single = run_load_spread(&addresses, &pids, one).await?;
        print_report(&format!("{n} node(s)"), one, &single);
        drop(nodes);
    }
    failover(&binary, admin).await
}

/// A fourth node joins the cluster of `nodes`, takes its share, and is stopped by SIGTERM: the
/// time from the signal until the others hold every shard again.
async fn graceful_leave(binary: &PathBuf, db: &str, nodes: &[&str]) -> Result<()> {
    let mut joining = start_node(binary, db).await?;
    let four: Vec<&str> = nodes.iter().copied().chain([joining.address.as_str()]).collect();
    settled(db, &four).await?;
    let held = owners(db)?.into_iter().find(|(o, _)| *o == joining.address).map_or(0, |(_, n)| n);
    let pid = joining.child.id().context("the fourth node's pid")?;
    let signalled = Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    if !status.success() {
        bail!("kill -TERM {pid} failed");
    }
    settled(db, nodes).await?;
    let handed_over = signalled.elapsed();
    joining.child.wait().await?;
    println!(
        "graceful leave (SIGTERM of a fourth node): its {held} shards were held by the three others {:.0} ms after the signal; the process exited {:.0} ms after it",
        handed_over.as_secs_f64() * 1000.0,
        signalled.elapsed().as_secs_f64() * 1000.0,
    );
    Ok(())
}

async fn failover(binary: &PathBuf, admin: &str) -> Result<()> {
    let db = fresh_database(admin, "tempora_bench_cluster_failover")?;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(binary, &db).await?);
    }
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let three: Vec<&str> = addresses.iter().map(String::as_str).collect();
    settled(&db, &three).await?;
    graceful_leave(binary, &db, &three).await?;
    let client = connect(&addresses[0]).await?;
    let queue = format!("failover-{}", uuid::Uuid::new_v4());
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let options = WorkerOptions::new(&queue).register_activities(Noop).register_workflow::<Sleeper>()?.build();
    let mut worker = Worker::new(&runtime, connect(&addresses[1]).await?, options)?;
    let stop = worker.shutdown_handle();
    let measured = async {
        let mut ids = Vec::new();
        for i in 0..60 {
            let id = format!("{queue}-{i}");
            client.start_workflow(Sleeper::run, 3_000, WorkflowStartOptions::new(&queue, id.clone()).build()).await?;
            ids.push(id);
        }
        // Which workflows live on the node about to die.
        let victim = addresses[2].clone();
        let affected = tokio::task::block_in_place(|| {
            let mut c = postgres::Client::connect(&db, postgres::NoTls)?;
            let rows = c.query(
                "SELECT DISTINCT w.workflow_id FROM run_work w JOIN shard_leases l ON l.shard = w.shard WHERE l.owner = $1",
                &[&victim],
            )?;
            Ok::<_, anyhow::Error>(rows.iter().map(|r| r.get::<_, String>(0)).collect::<std::collections::HashSet<_>>())
        })?;
        let victim_shards = owners(&db)?.into_iter().find(|(o, _)| *o == victim).map_or(0, |(_, n)| n);
        let mut victim_node = nodes.pop().context("three nodes")?;
        victim_node.child.start_kill()?;
        let killed = Instant::now();
        let survivors: Vec<&str> = addresses[..2].iter().map(String::as_str).collect();
        // Calls for the dead node's shards answer UNAVAILABLE until its leases lapse (the SDK
        // retries, within its budget): the results are asked for once the shards moved.
        settled(&db, &survivors).await?;
        let moved = killed.elapsed();
        let waits = ids.iter().filter(|id| affected.contains(*id)).map(|id| {
            let handle = client.get_workflow_handle::<Sleeper>(id.clone());
            async move {
                handle.get_result(WorkflowGetResultOptions::default()).await?;
                Ok::<_, anyhow::Error>(killed.elapsed())
            }
        });
        let done = futures::future::join_all(waits).await;
        let mut done = done.into_iter().collect::<Result<Vec<_>>>()?;
        done.sort();
        for id in &ids {
            client.get_workflow_handle::<Sleeper>(id.clone()).get_result(WorkflowGetResultOptions::default()).await?;
        }
        println!(
            "failover (3 nodes, SIGKILL of one): its {} shards' owners moved after {:.1} s; its {} workflows (3 s timers) were complete {:.1} s (first seen) to {:.1} s (last) after the kill",
            victim_shards,
            moved.as_secs_f64(),
            done.len(),
            done.first().map_or(f64::NAN, |d| d.as_secs_f64()),
            done.last().map_or(f64::NAN, |d| d.as_secs_f64()),
        );
        Ok::<_, anyhow::Error>(())
    };
    // The worker stops however the measurement ended.
    let body = async {
        let result = measured.await;
        stop();
        result
    };
    let (result, ran) = tokio::join!(body, worker.run());
    ran?;
    result
}
