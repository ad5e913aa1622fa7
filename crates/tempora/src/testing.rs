//! In-process server for integration tests.
use std::net::SocketAddr;

use crate::server::{self, Config, Running};

/// A tempora server running inside the test process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    running: Running,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port; `db` is a SQLite path or `:memory:`.
    pub async fn start(db: &str) -> TestServer {
        Self::try_start(db).await.expect("tempora test server starts")
    }

    /// Like `start`, but returns the error (e.g. the database file is in use).
    pub async fn try_start(db: &str) -> Result<TestServer, String> {
        let config = Config { ip: "127.0.0.1".into(), port: 0, db: db.to_string(), namespaces: Vec::new() };
        let running = server::start(config).await.map_err(|e| e.to_string())?;
        Ok(TestServer { addr: running.addr, running })
    }

    /// `http://127.0.0.1:PORT`, for `ConnectionOptions::new(Url)`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and closes its store (the database file can be reopened afterwards).
    pub async fn stop(self) {
        self.running.stop().await;
    }
}
