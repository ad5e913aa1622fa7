//! tempora-bench: an official-Rust-SDK worker and starter in one process. Runs N workflows of
//! K sequential no-op activities with C in flight against a server, and reports workflows/s,
//! p50/p99 start-to-result latency, and the server's CPU seconds and RSS read from /proc.
//!
//! `compare` starts tempora (the release binary next to this one) and the reference Temporal
//! server (`shared/tools/reference-server`), runs the same load on both, and prints ratios.

mod cluster;
mod schedules;
mod ui;
mod visibility;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions, WorkflowStartOptions,
};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult};

#[derive(Parser)]
#[command(name = "tempora-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Copy)]
struct Load {
    /// Workflows to run.
    #[arg(short = 'n', long, default_value_t = 1000)]
    workflows: usize,
    /// Sequential activities per workflow.
    #[arg(short = 'k', long, default_value_t = 3)]
    activities: u32,
    /// Workflows in flight.
    #[arg(short = 'c', long, default_value_t = 50)]
    concurrency: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load against a server that is already running.
    Run {
        #[arg(long, default_value = "127.0.0.1:7233")]
        address: String,
        /// The server's PID, for CPU and RSS.
        #[arg(long)]
        pid: Option<u32>,
        #[command(flatten)]
        load: Load,
    },
    /// Start tempora and the reference server, run the same load on both, print ratios.
    Compare {
        #[command(flatten)]
        load: Load,
        /// The tempora binary (default: `tempora` next to this executable).
        #[arg(long)]
        tempora: Option<PathBuf>,
        /// The reference-server script.
        #[arg(long, default_value = "../shared/tools/reference-server")]
        reference: PathBuf,
        /// Skip the latency run at C=1.
        #[arg(long)]
        no_latency: bool,
        /// tempora's store (default: a fresh SQLite file); e.g. a postgres:// URL of an empty
        /// database.
        #[arg(long)]
        db: Option<String>,
    },
    /// Fill a store with closed and open runs, start tempora on it, time List and Count queries.
    Visibility {
        /// Closed runs.
        #[arg(long, default_value_t = 1_000_000)]
        closed: usize,
        /// Running runs.
        #[arg(long, default_value_t = 10_000)]
        open: usize,
        /// Calls per query.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// The store (default: a fresh SQLite file); e.g. a postgres:// URL of an empty database.
        #[arg(long)]
        db: Option<String>,
        #[arg(long)]
        tempora: Option<PathBuf>,
    },
    /// Run an every-second schedule on tempora and on the reference server; report how late
    /// each run started.
    Schedules {
        /// How long each schedule runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long)]
        tempora: Option<PathBuf>,
        #[arg(long, default_value = "../shared/tools/reference-server")]
        reference: PathBuf,
    },
    /// Time what the UI's workflow list and workflow pages fetch, against a run of many events.
    Ui {
        /// Runs in the store.
        #[arg(long, default_value_t = 1_000)]
        runs: usize,
        /// Events in the history of the run whose page is timed.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Rounds.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        #[arg(long)]
        tempora: Option<PathBuf>,
    },
    /// Start 1, 2 and 3 tempora nodes (`--cluster`) on one PostgreSQL database, run the load
    /// with a worker on each node and the starts spread over them; then, with three nodes, time
    /// a fourth node's graceful leave (SIGTERM), SIGKILL one under a load of sleeping
    /// workflows and time the failover.
    Cluster {
        #[command(flatten)]
        load: Load,
        /// An admin URL of the PostgreSQL server (databases are created beside it).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        db: String,
        /// Node counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        nodes: Vec<usize>,
        #[arg(long)]
        tempora: Option<PathBuf>,
    },
    /// Start tempora, put N workflows to sleep on 24 h timers (and probes on short ones),
    /// report RSS, kill and restart it, report the restart time and RSS, and how late the
    /// probes' timers fired after the restart.
    Timers {
        #[arg(short = 'n', long, default_value_t = 10_000)]
        workflows: usize,
        /// Probes: workflows whose timers fire shortly after the restart.
        #[arg(long, default_value_t = 200)]
        probes: usize,
        #[arg(long)]
        tempora: Option<PathBuf>,
        /// Run the scenario on the reference Temporal dev server instead (its own SQLite file,
        /// killed and restarted the same way), with this reference-server script.
        #[arg(long)]
        reference: Option<PathBuf>,
    },
}

struct Noop;

#[activities]
impl Noop {
    #[activity]
    async fn step(_ctx: ActivityContext, n: u32) -> Result<u32, ActivityError> {
        Ok(n + 1)
    }
}

#[workflow]
#[derive(Default)]
struct BenchWorkflow;

#[workflow_methods]
impl BenchWorkflow {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, k: u32) -> WorkflowResult<u32> {
        let mut n = 0;
        for _ in 0..k {
            n = ctx
                .execute_activity(Noop::step, n, ActivityOptions::start_to_close_timeout(Duration::from_secs(30)))
                .await?;
        }
        Ok(n)
    }
}

#[workflow]
#[derive(Default)]
struct Sleeper;

#[workflow_methods]
impl Sleeper {
    #[run]
    async fn run(ctx: &mut WorkflowContext<Self>, ms: u64) -> WorkflowResult<()> {
        ctx.timer(Duration::from_millis(ms)).await;
        Ok(())
    }
}

/// CPU seconds (user + system) and RSS of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct ProcStats {
    cpu_s: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
}

fn proc_stats(pid: u32) -> Result<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).context("stat format")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After ") ": state is field 3 → index 0; utime is field 14 → index 11; stime index 12.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Ok(ProcStats { cpu_s: ticks / 100.0, rss_mb: kb("VmRSS:") / 1024.0, peak_rss_mb: kb("VmHWM:") / 1024.0 })
}

/// CPU and RSS of a process and its children (the reference CLI runs the server itself).
fn tree_stats(pid: u32) -> Result<ProcStats> {
    let mut total = proc_stats(pid)?;
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            if let Ok(s) = tree_stats(child) {
                total.cpu_s += s.cpu_s;
                total.rss_mb += s.rss_mb;
                total.peak_rss_mb += s.peak_rss_mb;
            }
        }
    }
    Ok(total)
}

#[derive(Debug, Default, Clone, Copy)]
struct Report {
    workflows_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_workflow: f64,
    idle_rss_mb: f64,
    rss_after_mb: f64,
}

async fn connect(address: &str) -> Result<Client> {
    let url = Url::from_str(&format!("http://{address}"))?;
    let connection = Connection::connect(ConnectionOptions::new(url).build()).await?;
    Ok(Client::new(connection, ClientOptions::new("default").build())?)
}

/// Runs the load; the worker runs in this task alongside the starters.
async fn run_load(address: &str, pid: Option<u32>, load: Load) -> Result<Report> {
    run_load_spread(&[address.to_string()], pid.as_slice(), load).await
}

/// Runs the load with a worker on each of `addresses` and the starts spread over them
/// (round robin); CPU and RSS are the sum over `pids`.
async fn run_load_spread(addresses: &[String], pids: &[u32], load: Load) -> Result<Report> {
    let mut clients = Vec::new();
    for address in addresses {
        clients.push(connect(address).await?);
    }
    let queue = format!("bench-{}", uuid::Uuid::new_v4());
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let mut workers = Vec::new();
    let mut stops = Vec::new();
    for client in &clients {
        let options =
            WorkerOptions::new(&queue).register_activities(Noop).register_workflow::<BenchWorkflow>()?.build();
        let mut worker = Worker::new(&runtime, client.clone(), options)?;
        stops.push(worker.shutdown_handle());
        workers.push(async move { worker.run().await });
    }
    let stats = || -> Result<Option<ProcStats>> {
        if pids.is_empty() {
            return Ok(None);
        }
        let mut sum = ProcStats::default();
        for pid in pids {
            let s = tree_stats(*pid)?;
            (sum.cpu_s, sum.rss_mb, sum.peak_rss_mb) =
                (sum.cpu_s + s.cpu_s, sum.rss_mb + s.rss_mb, sum.peak_rss_mb + s.peak_rss_mb);
        }
        Ok(Some(sum))
    };
    let before = stats()?;
    let started = Instant::now();
    let starters = async {
        let permits = Arc::new(tokio::sync::Semaphore::new(load.concurrency));
        let runs = (0..load.workflows).map(|i| {
            let (client, queue, permits) = (clients[i % clients.len()].clone(), queue.clone(), permits.clone());
            async move {
                let _permit = permits.acquire_owned().await?;
                let t = Instant::now();
                let handle = client
                    .start_workflow(
                        BenchWorkflow::run,
                        load.activities,
                        WorkflowStartOptions::new(&queue, format!("{queue}-{i}")).build(),
                    )
                    .await?;
                let result = handle.get_result(WorkflowGetResultOptions::default()).await?;
                if result != load.activities {
                    bail!("workflow {i} returned {result}");
                }
                Ok::<_, anyhow::Error>(t.elapsed())
            }
        });
        let out = futures::future::join_all(runs).await;
        for stop in &stops {
            stop();
        }
        out
    };
    let (results, ran) = tokio::join!(starters, futures::future::join_all(workers));
    for run in ran {
        run?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = results.into_iter().collect::<Result<Vec<_>>>()?;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    let after = stats()?;
    let cpu = match (before, after) {
        (Some(b), Some(a)) => (a.cpu_s - b.cpu_s) * 1000.0 / load.workflows as f64,
        _ => f64::NAN,
    };
    Ok(Report {
        workflows_per_s: load.workflows as f64 / elapsed,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        cpu_ms_per_workflow: cpu,
        idle_rss_mb: before.map_or(f64::NAN, |s| s.rss_mb),
        rss_after_mb: after.map_or(f64::NAN, |s| s.rss_mb),
    })
}

fn print_report(name: &str, load: Load, r: &Report) {
    println!(
        "{name:<10} N={} K={} C={:<3} {:>8.1} wf/s  p50 {:>7.1} ms  p99 {:>7.1} ms  cpu {:>6.2} ms/wf  rss idle {:>6.1} MB  after {:>6.1} MB",
        load.workflows, load.activities, load.concurrency, r.workflows_per_s, r.p50_ms, r.p99_ms, r.cpu_ms_per_workflow, r.idle_rss_mb, r.rss_after_mb
    );
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tempora_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p),
        None => Ok(std::env::current_exe()?.with_file_name("tempora")),
    }
}

/// Which server the timers scenario runs on.
enum Server {
    Tempora(PathBuf),
    /// The official `temporal` CLI's dev server (this binary).
    Reference(PathBuf),
}

impl Server {
    /// Starts the server on `db` (a file it keeps), waiting for its first answered RPC.
    async fn start(&self, db: &str) -> Result<TemporaProcess> {
        match self {
            Server::Tempora(binary) => start_tempora(binary, db).await,
            Server::Reference(binary) => {
                let port = free_port()?;
                let args = ["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", &port.to_string()];
                let mut command = tokio::process::Command::new(binary);
                command.args(args).args(["--db-filename", db, "--log-level", "warn"]);
                wait_ready(command, port, Duration::from_secs(120)).await
            }
        }
    }

    /// RSS and CPU of the server (with its children: the CLI runs the reference server itself).
    fn stats(&self, pid: u32) -> Result<ProcStats> {
        tree_stats(pid)
    }
}

/// The `temporal` binary the reference-server script installs.
fn reference_binary(script: &PathBuf) -> Result<PathBuf> {
    let out = std::process::Command::new(script).arg("path").output()?;
    if !out.status.success() {
        bail!("reference-server path: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default()))
}

/// A server child process on a SQLite file (fsync on).
struct TemporaProcess {
    child: tokio::process::Child,
    address: String,
    /// Time from spawn to the first successful RPC.
    ready_after: Duration,
}

async fn start_tempora(binary: &PathBuf, db: &str) -> Result<TemporaProcess> {
    let port = free_port()?;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["server", "start", "--db", db, "--port", &port.to_string(), "--http-port", "0", "--ui-port", "0"])
        .env("RUST_LOG", "warn");
    wait_ready(command, port, Duration::from_secs(30)).await
}

/// Spawns a server that will listen on `port`; returns once an RPC is answered there.
async fn wait_ready(mut command: tokio::process::Command, port: u16, limit: Duration) -> Result<TemporaProcess> {
    let t = Instant::now();
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start the server")?;
    let address = format!("127.0.0.1:{port}");
    loop {
        if connect(&address).await.is_ok() {
            break;
        }
        if t.elapsed() > limit {
            bail!("the server did not answer in {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(TemporaProcess { child, address, ready_after: t.elapsed() })
}

fn start_reference(script: &PathBuf, port: u16) -> Result<(String, u32)> {
    let out = std::process::Command::new(script).args(["start", &port.to_string()]).output()?;
    if !out.status.success() {
        bail!("reference-server: {}", String::from_utf8_lossy(&out.stderr));
    }
    let address = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    let home = std::env::var("HOME")?;
    let pid_file = format!("{home}/.cache/tempora-reference/run-{port}/pid");
    let pid = std::fs::read_to_string(&pid_file).with_context(|| pid_file.clone())?.trim().parse()?;
    Ok((address, pid))
}

fn stop_reference(script: &PathBuf, port: u16) {
    let _ = std::process::Command::new(script).args(["stop", &port.to_string()]).output();
}

async fn compare(
    load: Load,
    tempora: Option<PathBuf>,
    reference: PathBuf,
    no_latency: bool,
    db: Option<String>,
) -> Result<()> {
    let binary = tempora_binary(tempora)?;
    let dir = std::env::temp_dir().join(format!("tempora-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db = match db {
        Some(db) => db,
        None => dir.join("bench.db").to_str().context("path")?.to_string(),
    };
    // One server at a time: the reference keeps working in the background for a while after
    // a load (its task queues, visibility), which on two cores slows whatever runs beside it.
    let ours = start_tempora(&binary, &db).await?;
    let our_pid = ours.child.id().context("pid")?;
    println!("tempora ready after {:.1} ms", ours.ready_after.as_secs_f64() * 1000.0);
    let one = Load { workflows: 50, activities: load.activities, concurrency: 1 };
    let measure = |address: String, pid: u32| async move {
        let warm = Load { workflows: 20, activities: load.activities, concurrency: 10 };
        run_load(&address, None, warm).await?;
        let loaded = run_load(&address, Some(pid), load).await?;
        let single = if no_latency { None } else { Some(run_load(&address, Some(pid), one).await?) };
        Ok::<_, anyhow::Error>((loaded, single))
    };
    let result = measure(ours.address.clone(), our_pid).await;
    drop(ours);
    let (a, a1) = result?;
    print_report("tempora", load, &a);
    if let Some(a1) = &a1 {
        print_report("tempora", one, a1);
    }
    let port = free_port()?;
    let t = Instant::now();
    let (ref_address, ref_pid) = start_reference(&reference, port)?;
    println!(
        "reference ready after {:.1} ms (includes the script's own wait loop)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let result = measure(ref_address, ref_pid).await;
    stop_reference(&reference, port);
    let _ = std::fs::remove_dir_all(&dir);
    let (b, b1) = result?;
    print_report("reference", load, &b);
    if let Some(b1) = &b1 {
        print_report("reference", one, b1);
    }
    println!(
        "ratios (tempora vs reference): throughput {:.1}x  cpu/wf 1/{:.1}  rss idle 1/{:.1}  rss after 1/{:.1}",
        a.workflows_per_s / b.workflows_per_s,
        b.cpu_ms_per_workflow / a.cpu_ms_per_workflow,
        b.idle_rss_mb / a.idle_rss_mb,
        b.rss_after_mb / a.rss_after_mb
    );
    if let (Some(a1), Some(b1)) = (a1, b1) {
        println!("latency at C=1: p50 1/{:.1}", b1.p50_ms / a1.p50_ms);
    }
    Ok(())
}

/// How long a probe sleeps: it is started just before the kill, so its timer is due after the
/// restart.
const PROBE_SLEEP_MS: u64 = 20_000;

async fn timers(workflows: usize, probes: usize, server: Server) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tempora-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("timers.db");
    let db = db.to_str().context("path")?;
    let mut process = server.start(db).await?;
    let pid = process.child.id().context("pid")?;
    let client = connect(&process.address).await?;
    let queue = format!("sleepers-{}", uuid::Uuid::new_v4());
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let worker_options = || -> Result<WorkerOptions> {
        Ok(WorkerOptions::new(&queue).register_workflow::<Sleeper>()?.max_cached_workflows(100usize).build())
    };
    let mut worker = Worker::new(&runtime, client.clone(), worker_options()?)?;
    let stop = worker.shutdown_handle();
    let t = Instant::now();
    let start_all = |prefix: &'static str, n: usize, ms: u64| {
        let (client, queue) = (client.clone(), queue.clone());
        async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(100));
            let runs = (0..n).map(|i| {
                let (client, queue, permits) = (client.clone(), queue.clone(), permits.clone());
                async move {
                    let _permit = permits.acquire_owned().await?;
                    let options = WorkflowStartOptions::new(&queue, format!("{prefix}-{i}")).build();
                    client.start_workflow(Sleeper::run, ms, options).await?;
                    Ok::<_, anyhow::Error>(())
                }
            });
            futures::future::join_all(runs).await.into_iter().collect::<Result<Vec<()>>>()
        }
    };
    let starters = async {
        start_all("sleeper", workflows, 24 * 3600 * 1000).await?;
        start_all("probe", probes, PROBE_SLEEP_MS).await?;
        // Let the worker take every first workflow task (and start every timer).
        drained(&client, &queue).await?;
        stop();
        Ok::<_, anyhow::Error>(())
    };
    let (started, run) = tokio::join!(starters, worker.run());
    started?;
    run?;
    println!(
        "{workflows} workflows sleeping on 24 h timers, {probes} on {} s ones (started in {:.1} s)",
        PROBE_SLEEP_MS / 1000,
        t.elapsed().as_secs_f64()
    );
    println!("rss with them open: {:.1} MB", server.stats(pid)?.rss_mb);
    // Idle a while: what stays resident once the start's peak is over.
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!("rss with them open, 10 s later: {:.1} MB", server.stats(pid)?.rss_mb);
    process.child.kill().await?;
    let restarted = server.start(db).await?;
    let pid = restarted.child.id().context("pid")?;
    println!("restart to first RPC: {:.1} ms", restarted.ready_after.as_secs_f64() * 1000.0);
    println!("rss after restart: {:.1} MB", server.stats(pid)?.rss_mb);

    // The probes' timers fire after the restart: each must fire at its deadline (the timer's
    // start plus its duration), as the history's event times show.
    let client = connect(&restarted.address).await?;
    let mut worker = Worker::new(&runtime, client.clone(), worker_options()?)?;
    let stop = worker.shutdown_handle();
    let waiting = async {
        let mut late_ms = Vec::new();
        for i in 0..probes {
            let handle = client.get_workflow_handle::<Sleeper>(format!("probe-{i}"));
            handle.get_result(WorkflowGetResultOptions::default()).await?;
            late_ms.push(timer_lateness_ms(&client, &format!("probe-{i}")).await?);
        }
        stop();
        Ok::<_, anyhow::Error>(late_ms)
    };
    let (late_ms, run) = tokio::join!(waiting, worker.run());
    run?;
    let mut late_ms = late_ms?;
    late_ms.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (late_ms.first(), late_ms.last()) {
        let p50 = late_ms[late_ms.len() / 2];
        println!("probe timers after the restart: fired {first:.0} / {p50:.0} / {last:.0} ms after their deadline (min / p50 / max)");
    }
    println!("rss after the probes: {:.1} MB", server.stats(pid)?.rss_mb);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Waits until the workflow task queue has had no backlog for two looks in a row a second apart
/// (and two seconds more, for the tasks in flight).
async fn drained(client: &Client, queue: &str) -> Result<()> {
    use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;
    let mut empty = 0;
    while empty < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let request = DescribeTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(TaskQueue { name: queue.into(), ..Default::default() }),
            task_queue_type: 1,
            report_stats: true,
            ..Default::default()
        };
        let described =
            client.connection().workflow_service().describe_task_queue(tonic::Request::new(request)).await?;
        let backlog = described.into_inner().stats.map_or(0, |s| s.approximate_backlog_count);
        empty = if backlog == 0 { empty + 1 } else { 0 };
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// How long after its deadline a run's one timer fired, from its history's event times.
async fn timer_lateness_ms(client: &Client, workflow_id: &str) -> Result<f64> {
    use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryRequest;
    let request = GetWorkflowExecutionHistoryRequest {
        namespace: "default".into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
        ..Default::default()
    };
    let mut service = client.connection().workflow_service();
    let events = service.get_workflow_execution_history(tonic::Request::new(request)).await?.into_inner();
    let events = events.history.unwrap_or_default().events;
    let ms =
        |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(0.0, |t| t.seconds as f64 * 1e3 + t.nanos as f64 / 1e6);
    let mut deadline = None;
    for event in &events {
        match &event.attributes {
            Some(Attributes::TimerStartedEventAttributes(a)) => {
                let d = a.start_to_fire_timeout.as_ref().map_or(0.0, |d| d.seconds as f64 * 1e3 + d.nanos as f64 / 1e6);
                deadline = Some(ms(&event.event_time) + d);
            }
            Some(Attributes::TimerFiredEventAttributes(_)) => {
                let deadline = deadline.context("timer fired before it started")?;
                return Ok(ms(&event.event_time) - deadline);
            }
            _ => {}
        }
    }
    bail!("{workflow_id}: no timer fired")
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run { address, pid, load } => {
            let r = run_load(&address, pid, load).await?;
            print_report(&address, load, &r);
        }
        Command::Compare { load, tempora, reference, no_latency, db } => {
            compare(load, tempora, reference, no_latency, db).await?
        }
        Command::Timers { workflows, probes, tempora, reference } => {
            let server = match reference {
                Some(script) => Server::Reference(reference_binary(&script)?),
                None => Server::Tempora(tempora_binary(tempora)?),
            };
            timers(workflows, probes, server).await?
        }
        Command::Cluster { load, db, nodes, tempora } => cluster::run(load, &db, &nodes, tempora).await?,
        Command::Ui { runs, events, iterations, tempora } => {
            ui::run(ui::Options { runs, events, iterations, tempora }).await?
        }
        Command::Schedules { seconds, tempora, reference } => {
            schedules::run(schedules::Options { seconds, tempora, reference }).await?
        }
        Command::Visibility { closed, open, iterations, db, tempora } => {
            visibility::run(visibility::Options { closed, open, iterations, db, tempora }).await?
        }
    }
    Ok(())
}
