//! In-process server for integration tests.
use std::net::SocketAddr;

use crate::server::{self, Config, Running};

/// gRPC messages as their wire bytes: the server's own codec, for tests that send any bytes.
pub use crate::frontend::RawCodec;

/// A tempora server running inside the test process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP API (always served, on an ephemeral port).
    pub http_addr: SocketAddr,
    /// The UI (always served, on an ephemeral port).
    pub ui_addr: SocketAddr,
    running: Running,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port; `db` is a SQLite path or `:memory:`.
    pub async fn start(db: &str) -> TestServer {
        Self::try_start(db).await.expect("tempora test server starts")
    }

    /// Like `start`, but returns the error (e.g. the database file is in use).
    pub async fn try_start(db: &str) -> Result<TestServer, String> {
        Self::try_start_with(db, Default::default(), run_cache_bytes()).await
    }

    /// Starts a server with its own per-run limits (to reach them in a test quickly).
    pub async fn start_with_limits(db: &str, limits: crate::engine::Limits) -> TestServer {
        Self::try_start_with(db, limits, run_cache_bytes()).await.expect("tempora test server starts")
    }

    /// Starts a server whose run cache may hold `bytes` (0: every idle run is evicted as soon
    /// as it is counted, so every request reads its run from the store).
    pub async fn start_with_run_cache(db: &str, bytes: usize) -> TestServer {
        Self::try_start_with(db, Default::default(), bytes).await.expect("tempora test server starts")
    }

    /// Starts a node of the cluster kept in the PostgreSQL database `db` (a URL).
    pub async fn start_cluster_node(db: &str) -> Result<TestServer, String> {
        Self::try_start_config(db, Default::default(), run_cache_bytes(), true).await
    }

    async fn try_start_with(
        db: &str,
        limits: crate::engine::Limits,
        run_cache_bytes_max: usize,
    ) -> Result<TestServer, String> {
        Self::try_start_config(db, limits, run_cache_bytes_max, false).await
    }

    async fn try_start_config(
        db: &str,
        limits: crate::engine::Limits,
        run_cache_bytes_max: usize,
        cluster: bool,
    ) -> Result<TestServer, String> {
        let db = backend_db(db).await;
        let config = Config {
            ip: "127.0.0.1".into(),
            port: 0,
            db,
            namespaces: Vec::new(),
            limits,
            http_port: Some(0),
            ui_port: Some(0),
            // Tests drive the server harder than any one namespace's limit allows (the
            // limits themselves are tested through the binary).
            rate_limits: server::RateLimits { requests_per_second: 0.0, concurrent_polls: 0 },
            run_cache_bytes_max,
            cluster,
            ..Default::default()
        };
        let running = server::start(config).await.map_err(|e| e.to_string())?;
        let (Some(http_addr), Some(ui_addr)) = (running.http_addr, running.ui_addr) else {
            return Err("the HTTP API and the UI were not started".into());
        };
        Ok(TestServer { addr: running.addr, http_addr, ui_addr, running })
    }

    /// `http://127.0.0.1:PORT`, for `ConnectionOptions::new(Url)`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many open runs the server holds in memory.
    pub fn cached_runs(&self) -> usize {
        self.running.cached_runs()
    }

    /// How many shards this node holds (a cluster node; every shard on a single server).
    pub fn held_shards(&self) -> usize {
        self.running.held_shards()
    }

    /// Whether this node keeps the registries (schedules, batch jobs, Nexus endpoints, worker
    /// deployments, task queue configs).
    pub fn holds_registry(&self) -> bool {
        self.running.holds_registry()
    }

    /// Stops the server and closes its store (the database file can be reopened afterwards).
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// The run cache of test servers: the default, or `TEMPORA_TEST_RUN_CACHE_BYTES` (e.g. `0`,
/// to run a suite with every idle run evicted).
fn run_cache_bytes() -> usize {
    let bytes = std::env::var("TEMPORA_TEST_RUN_CACHE_BYTES").ok().and_then(|b| b.parse().ok());
    bytes.unwrap_or(server::RUN_CACHE_BYTES_DEFAULT)
}

/// True when integration tests run on PostgreSQL (`TEMPORA_TEST_BACKEND=postgres`).
pub fn is_postgres() -> bool {
    std::env::var("TEMPORA_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The store a test asked for, on the backend under test. On PostgreSQL (base URL from
/// `TEMPORA_TEST_POSTGRES_URL`) each `:memory:` gets a fresh database, and a file path always
/// maps to the same database, so restart tests find their data again.
pub async fn backend_db(db: &str) -> String {
    if !is_postgres() || db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return db.to_string();
    }
    let base = std::env::var("TEMPORA_TEST_POSTGRES_URL").expect(
        "TEMPORA_TEST_BACKEND=postgres needs TEMPORA_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)",
    );
    let name = if db == ":memory:" {
        format!("tempora_{}", uuid::Uuid::new_v4().simple())
    } else {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        db.hash(&mut hasher);
        format!("tempora_f{:x}", hasher.finish())
    };
    let url = with_database(&base, &name);
    tokio::task::spawn_blocking(move || {
        let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("connect to the test PostgreSQL");
        let exists =
            admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).expect("query pg_database");
        if exists.is_none() {
            admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
        }
    })
    .await
    .expect("create test database");
    url
}

/// `base` with its database name replaced.
pub fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let prefix = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    format!("{prefix}/{name}{query}")
}

/// The shard a task queue's home is (a cluster test picking a queue served by a given node).
pub fn queue_shard(namespace: &str, task_queue: &str) -> u32 {
    crate::shard::ShardId::of_queue(namespace, task_queue).0
}
