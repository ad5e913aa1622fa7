//! The `tempora` command.
//!
//! Every `server start` setting comes from, in order of precedence: its flag, its `TEMPORA_*`
//! environment variable, the TOML file given by `--config`, then the default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use tempora::auth::{ApiKey, AuthConfig};
use tempora::server::{self, Config, RateLimits};
use tempora::tls::TlsConfig;

#[derive(Parser)]
#[command(name = "tempora", version, about = "A Temporal-compatible durable-execution server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Server commands.
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
    /// Database commands (SQLite; for PostgreSQL use pg_dump and pg_restore).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Start the server.
    Start(StartArgs),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy a SQLite database to FILE, online: the server may keep running and writing.
    Backup {
        /// The database to copy.
        #[arg(long, env = "TEMPORA_DB", default_value = "tempora.db")]
        db: String,
        /// The new file to write (never overwritten).
        file: String,
    },
    /// Replace a SQLite database with a backup. The server must be stopped.
    Restore {
        /// The database to replace.
        #[arg(long, env = "TEMPORA_DB", default_value = "tempora.db")]
        db: String,
        /// The backup file to restore.
        file: String,
    },
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, ValueEnum)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
struct StartArgs {
    /// A TOML file of settings (keys as the flags', with `_`; `[tls]`, `[auth]` and
    /// `[rate_limits]` tables). Flags and environment variables override it.
    #[arg(long, env = "TEMPORA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "TEMPORA_IP")]
    ip: Option<String>,
    /// gRPC port [default: 7233].
    #[arg(long, env = "TEMPORA_PORT")]
    port: Option<u16>,
    /// SQLite database file, `:memory:` to keep nothing, or a postgres:// URL [default: tempora.db].
    #[arg(long, env = "TEMPORA_DB")]
    db: Option<String>,
    /// Namespace to create if missing (repeatable; comma-separated in the variable);
    /// `default` always exists.
    #[arg(long = "namespace", short = 'n', env = "TEMPORA_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Port of Temporal's HTTP/JSON API and /metrics; 0 turns it off [default: 7243].
    #[arg(long, env = "TEMPORA_HTTP_PORT")]
    http_port: Option<u16>,
    /// Port of the web UI; 0 turns it off [default: 8233].
    #[arg(long, env = "TEMPORA_UI_PORT")]
    ui_port: Option<u16>,
    /// TLS certificate chain (PEM) for every port; with --tls-key.
    #[arg(long, env = "TEMPORA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "TEMPORA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates: mutual TLS, a client must present one.
    #[arg(long, env = "TEMPORA_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// An API key and its permissions, KEY=NAMESPACE:ROLE[,NAMESPACE:ROLE...] with ROLE read,
    /// write, worker or admin and `temporal-system` for every namespace (repeatable;
    /// `;`-separated in the variable). Any key or --auth-jwks turns authentication on.
    #[arg(long = "api-key", env = "TEMPORA_API_KEYS", value_delimiter = ';', hide_env_values = true)]
    api_keys: Vec<ApiKey>,
    /// A JWKS file (JSON) whose keys sign accepted JWTs; their `permissions` claim gives the roles.
    #[arg(long, env = "TEMPORA_AUTH_JWKS")]
    auth_jwks: Option<PathBuf>,
    /// The JWT claim that holds the permissions [default: permissions].
    #[arg(long, env = "TEMPORA_AUTH_PERMISSIONS_CLAIM")]
    auth_permissions_claim: Option<String>,
    /// When set, JWTs must name this audience (`aud`).
    #[arg(long, env = "TEMPORA_AUTH_AUDIENCE")]
    auth_audience: Option<String>,
    /// Requests per second per namespace, 0 for no limit [default: 2400, Temporal's].
    #[arg(long, env = "TEMPORA_RATE_LIMIT_RPS")]
    rate_limit_rps: Option<f64>,
    /// Long polls waiting at once per namespace, 0 for no limit [default: 1200, Temporal's].
    #[arg(long, env = "TEMPORA_RATE_LIMIT_POLLS")]
    rate_limit_polls: Option<usize>,
    /// Memory for open runs kept in memory, in MiB; idle runs beyond it are evicted and read
    /// again from the database when needed [default: 16].
    #[arg(long, env = "TEMPORA_RUN_CACHE_MB")]
    run_cache_mb: Option<usize>,
    /// Join the cluster of nodes sharing the PostgreSQL database given by --db (each serves
    /// the workflow shards it leases; any node answers any call) [default: serve it alone].
    #[arg(long, env = "TEMPORA_CLUSTER")]
    cluster: bool,
    /// The host:port other cluster nodes reach this one at [default: the listen address].
    #[arg(long, env = "TEMPORA_ADVERTISE")]
    advertise: Option<String>,
    /// The secret cluster nodes present to each other (the same on every node); needed on a
    /// cluster with TLS or authentication.
    #[arg(long, env = "TEMPORA_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// The CA certificates (PEM) a node checks the other nodes' TLS certificates against
    /// [default: --tls-client-ca, else --tls-cert].
    #[arg(long, env = "TEMPORA_CLUSTER_CA")]
    cluster_ca: Option<PathBuf>,
    /// Log lines as text or JSON objects [default: text].
    #[arg(long, env = "TEMPORA_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `tempora=debug` [default: info; RUST_LOG also works].
    #[arg(long, env = "TEMPORA_LOG_LEVEL")]
    log_level: Option<String>,
    /// Send traces (a span per RPC and per state transition) to this OpenTelemetry collector,
    /// OTLP over gRPC, e.g. http://localhost:4317 [default: off].
    #[arg(long, env = "TEMPORA_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

/// The `--config` file.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    ip: Option<String>,
    port: Option<u16>,
    db: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    http_port: Option<u16>,
    ui_port: Option<u16>,
    run_cache_mb: Option<usize>,
    #[serde(default)]
    cluster: bool,
    advertise: Option<String>,
    cluster_secret: Option<String>,
    cluster_ca: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    otlp_endpoint: Option<String>,
    tls: Option<FileTls>,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    rate_limits: FileRateLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    #[serde(default)]
    api_keys: Vec<FileApiKey>,
    jwks_file: Option<PathBuf>,
    permissions_claim: Option<String>,
    audience: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApiKey {
    key: String,
    permissions: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRateLimits {
    requests_per_second: Option<f64>,
    concurrent_polls: Option<usize>,
}

/// How the process reports on itself.
struct Telemetry {
    log_format: LogFormat,
    log_level: String,
    otlp_endpoint: Option<String>,
}

/// The settings a start runs with, and how to log.
fn settings(args: StartArgs) -> Result<(Config, Telemetry), String> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let on = |port: u16| (port != 0).then_some(port);
    let tls = match (args.tls_cert, args.tls_key, file.tls) {
        (Some(cert), Some(key), file) => {
            Some(TlsConfig { cert, key, client_ca: args.tls_client_ca.or(file.and_then(|f| f.client_ca)) })
        }
        (_, _, Some(f)) => Some(TlsConfig { cert: f.cert, key: f.key, client_ca: args.tls_client_ca.or(f.client_ca) }),
        _ if args.tls_client_ca.is_some() => return Err("--tls-client-ca needs --tls-cert and --tls-key".into()),
        _ => None,
    };
    let mut api_keys = args.api_keys;
    for key in file.auth.api_keys {
        let parsed: ApiKey =
            format!("{}={}", key.key, key.permissions.join(",")).parse().map_err(|e| format!("[auth] api key: {e}"))?;
        api_keys.push(parsed);
    }
    let auth = AuthConfig {
        api_keys,
        jwks_file: args.auth_jwks.or(file.auth.jwks_file),
        permissions_claim: args.auth_permissions_claim.or(file.auth.permissions_claim).unwrap_or_default(),
        audience: args.auth_audience.or(file.auth.audience),
    };
    let defaults = RateLimits::default();
    let rate_limits = RateLimits {
        requests_per_second: args
            .rate_limit_rps
            .or(file.rate_limits.requests_per_second)
            .unwrap_or(defaults.requests_per_second),
        concurrent_polls: args
            .rate_limit_polls
            .or(file.rate_limits.concurrent_polls)
            .unwrap_or(defaults.concurrent_polls),
    };
    let mut namespaces = args.namespaces;
    namespaces.extend(file.namespaces);
    let config = Config {
        ip: args.ip.or(file.ip).unwrap_or_else(|| "127.0.0.1".into()),
        port: args.port.or(file.port).unwrap_or(7233),
        db: args.db.or(file.db).unwrap_or_else(|| "tempora.db".into()),
        namespaces,
        http_port: on(args.http_port.or(file.http_port).unwrap_or(7243)),
        ui_port: on(args.ui_port.or(file.ui_port).unwrap_or(8233)),
        tls,
        auth,
        rate_limits,
        run_cache_bytes_max: args
            .run_cache_mb
            .or(file.run_cache_mb)
            .map_or(tempora::server::RUN_CACHE_BYTES_DEFAULT, |mb| mb.saturating_mul(1024 * 1024)),
        cluster: args.cluster || file.cluster,
        advertise: args.advertise.or(file.advertise),
        cluster_secret: args.cluster_secret.or(file.cluster_secret),
        cluster_ca: args.cluster_ca.or(file.cluster_ca),
        ..Default::default()
    };
    let telemetry = Telemetry {
        log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        log_level: args
            .log_level
            .or(file.log_level)
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| "info".into()),
        otlp_endpoint: args.otlp_endpoint.or(file.otlp_endpoint),
    };
    Ok((config, telemetry))
}

/// Logs to stderr under the log filter; with an OTLP endpoint, also tempora's spans (debug
/// level, whatever the log filter) to the collector. The returned provider is shut down at
/// exit, which sends what is still buffered.
fn init_telemetry(t: &Telemetry) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_new(&t.log_level)
        .map_err(|e| format!("log level {:?}: {e}", t.log_level))?;
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match t.log_format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    }
    .with_filter(filter);
    let provider = match &t.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| format!("OTLP endpoint {endpoint}: {e}"))?;
            let resource = opentelemetry_sdk::Resource::builder().with_service_name("tempora").build();
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    let traces = provider.as_ref().map(|p| {
        let spans = tracing_subscriber::filter::Targets::new().with_target("tempora", tracing::Level::DEBUG);
        tracing_opentelemetry::layer().with_tracer(p.tracer("tempora")).with_filter(spans)
    });
    tracing_subscriber::registry().with(logs).with(traces).init();
    Ok(provider)
}

fn main() -> std::process::ExitCode {
    tempora::limit_allocator_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tempora: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match Cli::parse().command {
        Command::Server { command: ServerCommand::Start(args) } => runtime.block_on(serve(args)),
        Command::Db { command } => db(command),
    }
}

async fn serve(args: StartArgs) -> std::process::ExitCode {
    let (config, telemetry) = match settings(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("tempora: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let traces = match init_telemetry(&telemetry) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("tempora: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let running = match server::start(config).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("tempora: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("tempora listening on {}", running.addr);
    if let Some(addr) = running.http_addr {
        println!("HTTP API on {scheme}://{addr}");
    }
    if let Some(addr) = running.ui_addr {
        println!("web UI on {scheme}://{addr}");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    if let Some(provider) = traces {
        // Sends the spans still buffered; blocking, so off the async workers.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    std::process::ExitCode::SUCCESS
}

fn db(command: DbCommand) -> std::process::ExitCode {
    let postgres = |db: &str| db.starts_with("postgres://") || db.starts_with("postgresql://");
    let result = match &command {
        DbCommand::Backup { db, .. } | DbCommand::Restore { db, .. } if postgres(db) => {
            Err("for PostgreSQL use pg_dump and pg_restore (see the README's production section)".to_string())
        }
        DbCommand::Backup { db, file } => tempora::store::sqlite::backup(db, file)
            .map(|s| {
                format!(
                    "backed up {db} to {file}: {} executions, {} bytes, schema {}",
                    s.executions, s.bytes, s.schema_version
                )
            })
            .map_err(|e| e.to_string()),
        DbCommand::Restore { db, file } => tempora::store::sqlite::restore(file, db)
            .map(|s| format!("restored {db} from {file}: {} executions, schema {}", s.executions, s.schema_version))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tempora: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
