//! Wiring: open the store, recover open runs, start the timer loop and the gRPC server, and
//! shut all of it down in order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::frontend::{Frontend, WorkflowServiceServer};
use crate::history::Service;
use crate::runtime::Runtime;
use crate::store::{self, postgres::PostgresStore, sqlite::SqliteStore, NamespaceRecord, Store, Write};
use crate::timers::Timers;

pub use crate::frontend::gate::RateLimits;

/// The gRPC service name health checks ask about.
const WORKFLOW_SERVICE: &str = "temporal.api.workflowservice.v1.WorkflowService";

/// Temporal's default retention for namespaces created at start.
const RETENTION_DEFAULT_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Debug)]
pub struct Config {
    pub ip: String,
    pub port: u16,
    /// A SQLite file path, or `:memory:`.
    pub db: String,
    /// Namespaces to create if missing; `default` always exists.
    pub namespaces: Vec<String>,
    /// Per-run limits (Temporal's defaults).
    pub limits: crate::engine::Limits,
    /// Port of Temporal's HTTP/JSON API (`0`: any free port); `None`: not served.
    pub http_port: Option<u16>,
    /// Port of the web UI (`0`: any free port); `None`: not served.
    pub ui_port: Option<u16>,
    /// TLS (and mutual TLS) on every port; `None`: plain TCP.
    pub tls: Option<crate::tls::TlsConfig>,
    /// API keys and JWT verification; authentication is off when it names neither.
    pub auth: crate::auth::AuthConfig,
    /// Per-namespace request and long-poll limits.
    pub rate_limits: RateLimits,
    /// Memory the cache of open runs may use before idle runs are evicted.
    pub run_cache_bytes_max: usize,
    /// Join the cluster kept in the (PostgreSQL) database instead of serving it alone.
    pub cluster: bool,
    /// The address other nodes reach this one at (`host:port`); default: the listen address.
    pub advertise: Option<String>,
    /// What cluster nodes present to each other (`tempora-node-secret`); needed with TLS or
    /// authentication.
    pub cluster_secret: Option<String>,
    /// The CA a node checks the other nodes' certificates against (with TLS); default: the
    /// client CA, else the node's own certificate.
    pub cluster_ca: Option<std::path::PathBuf>,
}

/// The run cache's default budget.
pub const RUN_CACHE_BYTES_DEFAULT: usize = 16 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            ip: "127.0.0.1".into(),
            port: 7233,
            db: "tempora.db".into(),
            namespaces: Vec::new(),
            limits: Default::default(),
            http_port: None,
            ui_port: None,
            tls: None,
            auth: Default::default(),
            rate_limits: Default::default(),
            run_cache_bytes_max: RUN_CACHE_BYTES_DEFAULT,
            cluster: false,
            advertise: None,
            cluster_secret: None,
            cluster_ca: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    /// A setting that cannot be used (an unreadable certificate, a bad JWKS file…).
    #[error("{0}")]
    Config(String),
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// Where the HTTP API listens, if it is served.
    pub http_addr: Option<SocketAddr>,
    /// Where the UI listens, if it is served.
    pub ui_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    http: Vec<JoinHandle<()>>,
    timers: JoinHandle<()>,
    store: store::Handle,
    runtime: Runtime,
    service: Arc<Service>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// How a cluster node reaches the others: over TLS when it serves TLS (checking their
/// certificates against the cluster CA, presenting its own), with the cluster secret when
/// the nodes use TLS or authentication (the node service and forwarded calls would otherwise
/// be open to anyone who reaches the port).
fn node_security(config: &Config, authenticates: bool) -> Result<crate::cluster::NodeSecurity, StartError> {
    if !config.cluster {
        if config.cluster_secret.is_some() || config.cluster_ca.is_some() {
            return Err(StartError::Config("--cluster-secret and --cluster-ca are settings of --cluster".into()));
        }
        return Ok(Default::default());
    }
    if !is_postgres(&config.db) {
        return Err(StartError::Config("--cluster needs a PostgreSQL database (--db postgres://…)".into()));
    }
    let secret = match (&config.cluster_secret, config.tls.is_some() || authenticates) {
        (Some(s), _) if s.len() < 16 => {
            return Err(StartError::Config("--cluster-secret must be at least 16 characters".into()))
        }
        (Some(s), _) => Some(s.parse().map_err(|_| StartError::Config("--cluster-secret must be printable ASCII".into()))?),
        (None, true) => {
            return Err(StartError::Config(
                "--cluster with TLS or authentication needs --cluster-secret (TEMPORA_CLUSTER_SECRET): the credential the nodes present to each other"
                    .into(),
            ))
        }
        (None, false) => None,
    };
    let tls = match &config.tls {
        Some(tls) => Some(tls.client(config.cluster_ca.as_deref()).map_err(StartError::Config)?),
        None if config.cluster_ca.is_some() => {
            return Err(StartError::Config("--cluster-ca needs TLS (--tls-cert and --tls-key)".into()))
        }
        None => None,
    };
    Ok(crate::cluster::NodeSecurity { secret, tls })
}

/// `postgres://…` (or `postgresql://…`) selects PostgreSQL; anything else is a SQLite file.
/// A cluster node's store checks its leases in every write.
fn open_store(db: &str, cluster: Option<&crate::cluster::Cluster>) -> store::Result<Box<dyn Store>> {
    if let Some(cluster) = cluster {
        return Ok(Box::new(PostgresStore::open_cluster(db, cluster.fence.clone())?));
    }
    if is_postgres(db) {
        return Ok(Box::new(PostgresStore::open(db)?));
    }
    Ok(Box::new(SqliteStore::open(db)?))
}

pub async fn start(config: Config) -> Result<Running, StartError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    crate::telemetry::install();
    // Settings are checked before anything is opened.
    let tls = config.tls.as_ref().map(|t| t.load()).transpose().map_err(StartError::Config)?;
    let auth = crate::auth::Authenticator::new(&config.auth).map_err(StartError::Config)?;
    let security = node_security(&config, auth.is_some())?;
    // A cluster node's id is the address the others reach it at, known once it listens.
    let (listener, local) = bind(&config.ip, config.port).await?;
    let cluster = match config.cluster {
        true => {
            let advertise = config.advertise.clone().unwrap_or_else(|| local.to_string());
            if advertise.starts_with("0.0.0.0") || advertise.starts_with("[::]") {
                return Err(StartError::Config(format!(
                    "listening on {advertise}: give --advertise, the address other nodes reach this one at"
                )));
            }
            Some(crate::cluster::Cluster::new(advertise, security))
        }
        false => None,
    };
    let gate = Arc::new(crate::frontend::gate::Gate::new(auth, config.rate_limits));
    let db = config.db.clone();
    let mut wanted = vec!["default".to_string()];
    wanted.extend(config.namespaces.iter().cloned());
    // Work due before the timer queue's first bound: every task to offer and the timers of
    // the first window (later ones are read from the store as their window comes).
    let loaded_until_ms = clock.now_ms() + crate::timers::WINDOW_MS;
    let node = cluster.clone();
    let (store, namespaces, due, batch_jobs, records) = tokio::task::spawn_blocking(move || -> store::Result<_> {
        let mut store = open_store(&db, node.as_deref())?;
        let mut namespaces = store.load_namespaces()?;
        let mut created = Vec::new();
        for name in wanted {
            if !namespaces.iter().any(|n| n.name == name) {
                let record = NamespaceRecord {
                    name,
                    id: uuid::Uuid::new_v4().to_string(),
                    description: String::new(),
                    owner_email: String::new(),
                    retention_ms: RETENTION_DEFAULT_MS,
                    search_attributes: Default::default(),
                    data: Default::default(),
                    deleted: false,
                };
                created.push(Write::Namespace(record.clone()));
                namespaces.push(record);
            }
        }
        store.commit(&created)?;
        // A cluster node takes up each shard's work as it acquires the shard.
        let due = match node {
            Some(_) => Vec::new(),
            None => store.load_work(i64::MIN, loaded_until_ms)?,
        };
        let batch_jobs = store.load_batch_jobs()?;
        let records = store.load_records()?;
        Ok((store, namespaces, due, batch_jobs, records))
    })
    .await
    .map_err(|e| store::Error::Backend(format!("store open task failed: {e}")))??;
    let due_work = due.len();
    let (store, _writer) = store::Handle::spawn(store);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let runtime = Runtime::new(shutdown_rx.clone());
    let service = Service::new(
        clock.clone(),
        store.clone(),
        runtime.clone(),
        config.limits,
        namespaces,
        config.run_cache_bytes_max,
    );
    let (timers, timers_join) = Timers::spawn(clock, Arc::downgrade(&service), loaded_until_ms, shutdown_rx.clone());
    service.set_timers(timers);
    service.endpoints.load(&records);
    service.deployments.load(&records);
    service.recover(due);
    let changes = match &cluster {
        Some(cluster) => Some(join(&config, cluster.clone(), &service, local).await?),
        None => None,
    };
    let http_listener = match config.http_port {
        Some(port) => Some(bind(&config.ip, port).await?),
        None => None,
    };
    let ui_listener = match config.ui_port {
        Some(port) => Some(bind(&config.ip, port).await?),
        None => None,
    };
    let frontend = Frontend::new(service.clone(), batch_jobs, &records, gate.clone());
    let gateway = crate::http::Gateway::new(
        WorkflowServiceServer::new(frontend.clone()),
        crate::frontend::OperatorServiceServer::new(frontend.clone()),
    );
    let mut http = Vec::new();
    let https = tls.as_ref().map(|t| t.http.clone());
    let http_addr = match http_listener {
        Some((listener, addr)) => {
            let router = crate::http::router(gateway.clone(), service.clone());
            http.push(
                serve_http(listener, https.clone(), router, shutdown_rx.clone())
                    .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?,
            );
            Some(addr)
        }
        None => None,
    };
    let ui_addr = match ui_listener {
        Some((listener, addr)) => {
            let router = crate::ui::router(gateway.clone(), service.clone(), gate.clone());
            http.push(
                serve_http(listener, https, router, shutdown_rx.clone())
                    .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?,
            );
            Some(addr)
        }
        None => None,
    };
    frontend.start_registry_work();
    if let Some(changes) = changes {
        follow_changes(changes, service.clone(), frontend.clone(), shutdown_rx.clone());
    }
    service.start_retention();
    runtime.scavenge();
    // gRPC health (`temporal operator cluster health`, the Go SDK's CheckHealth).
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status(WORKFLOW_SERVICE, tonic_health::ServingStatus::Serving).await;
    // Small request/response messages: Nagle plus delayed ACKs would add ~40 ms per RPC.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut stop = shutdown_rx;
    let node_service = cluster.as_ref().map(|_| service.clone());
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.grpc).map_err(|e| StartError::Config(format!("TLS: {e}")))?;
    }
    let server = tokio::spawn(async move {
        let result = builder
            // The CLI compresses its health checks too.
            .add_service(health_service.accept_compressed(tonic::codec::CompressionEncoding::Gzip))
            .add_service(WorkflowServiceServer::new(frontend.clone()))
            .add_service(crate::frontend::OperatorServiceServer::new(frontend))
            // Node-to-node calls: served by cluster nodes only (they bypass the frontend's
            // checks, so a single server must not answer them).
            .add_optional_service(node_service.map(crate::cluster::rpc::NodeServer::new))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "grpc server failed");
        }
    });
    tracing::info!(address = %local, http = ?http_addr, ui = ?ui_addr, db = %redact(&config.db), due_work, "tempora server started");
    Ok(Running {
        addr: local,
        http_addr,
        ui_addr,
        shutdown: shutdown_tx,
        server,
        http,
        timers: timers_join,
        store,
        runtime,
        service,
        cluster,
    })
}

/// Joins the cluster: the lease loop's first round (this node's first shards) runs before
/// the node serves; what the loop reports is returned, for `follow_changes`.
async fn join(
    config: &Config,
    cluster: Arc<crate::cluster::Cluster>,
    service: &Arc<Service>,
    local: SocketAddr,
) -> Result<tokio::sync::mpsc::UnboundedReceiver<crate::cluster::Change>, StartError> {
    service.join(cluster.clone());
    let (changes_tx, changes) = tokio::sync::mpsc::unbounded_channel();
    let (url, node, address) = (config.db.clone(), cluster.clone(), cluster.node().to_string());
    let leases =
        tokio::task::spawn_blocking(move || crate::cluster::leases::Loop::start(&url, node, address, changes_tx))
            .await
            .map_err(|e| StartError::Config(format!("lease loop: {e}")))?
            .map_err(|e| StartError::Store(store::Error::Backend(e)))?;
    cluster.set_leases(leases);
    tracing::info!(node = %cluster.node(), listen = %local, "joined the cluster");
    Ok(changes)
}

/// Hands what the lease loop reports to the history service (shards, namespaces, routing
/// records), then to the frontend (the registries it keeps), in order.
fn follow_changes(
    mut changes: tokio::sync::mpsc::UnboundedReceiver<crate::cluster::Change>,
    service: Arc<Service>,
    frontend: Arc<Frontend>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Not a tracked task: it ends with the lease loop, which stops after the tracked work.
    // Bounded in practice: a few changes per lease round.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(change) => {
                        service.on_change(change.clone()).await;
                        frontend.on_change(&change).await;
                    }
                    None => break,
                },
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
            }
        }
    });
}

async fn bind(ip: &str, port: u16) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let addr = format!("{ip}:{port}");
    let listener =
        tokio::net::TcpListener::bind(&addr).await.map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Serves an HTTP router until shutdown (requests in flight are finished first), over TLS
/// when an acceptor is given.
fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    use axum::serve::ListenerExt;
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let task = match tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
                    tracing::error!(error = %e, "https server failed");
                }
            })
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
                    tracing::error!(error = %e, "http server failed");
                }
            })
        }
    };
    Ok(task)
}

impl Running {
    /// How many open runs are in memory (the run cache).
    pub fn cached_runs(&self) -> usize {
        self.service.cache_usage().0
    }

    /// How many shards this node holds (a cluster node; every shard on a single server).
    pub fn held_shards(&self) -> usize {
        match &self.cluster {
            Some(cluster) => cluster.fence.held().len(),
            None => crate::shard::SHARD_COUNT as usize,
        }
    }

    /// Whether this node keeps the registries (the holder of `ShardId::REGISTRY` on a
    /// cluster; a single server always does).
    pub fn holds_registry(&self) -> bool {
        self.service.holds_registry()
    }

    /// Answers in-flight polls, stops accepting requests, and closes the store.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        for http in self.http {
            let _ = http.await;
        }
        let _ = self.timers.await;
        // Background work (commits in flight, cross-run jobs) ends before the store closes.
        self.runtime.wait().await;
        // Then the leases go, so the other nodes take over at once.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        self.store.close().await;
        tracing::info!("tempora server stopped");
    }
}

/// A database setting fit for logs: a URL's password is hidden.
fn redact(db: &str) -> String {
    match (db.find("://"), db.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &db[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &db[..scheme + 3], &db[at..]),
                None => db.to_string(),
            }
        }
        _ => db.to_string(),
    }
}
