//! tempora as a child process (the binary `cargo test` built), for tests that kill, pause or
//! restart a server for real, and a restart of the local PostgreSQL.

use std::io::BufRead;

/// A `tempora server start` process on a free loopback port; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    pub url: String,
}

impl ServerProcess {
    /// Starts the server on `db` with `extra` arguments (e.g. `--cluster`) and waits until it
    /// listens.
    pub fn start(db: &str, extra: &[&str]) -> ServerProcess {
        Self::start_on(free_port(), db, extra)
    }

    /// `start`, on the given port.
    pub fn start_on(port: u16, db: &str, extra: &[&str]) -> ServerProcess {
        Self::start_through(&[], "127.0.0.1", port, db, extra)
    }

    /// `start_on`, the command run through `wrapper` (e.g. `ip netns exec <namespace>`, which
    /// execs it: the child is still tempora itself), reached at `host`.
    pub fn start_through(wrapper: &[&str], host: &str, port: u16, db: &str, extra: &[&str]) -> ServerProcess {
        // Only the tempora crate's tests have the binary (the examples share this module).
        let Some(bin) = option_env!("CARGO_BIN_EXE_tempora") else {
            panic!("no tempora binary: only the tempora crate's tests start tempora processes")
        };
        let (program, args) = match wrapper.split_first() {
            Some((program, args)) => (*program, [args, &[bin]].concat()),
            None => (bin, Vec::new()),
        };
        let mut child = std::process::Command::new(program)
            .args(args)
            .args(["server", "start", "--db", db, "--port", &port.to_string(), "--http-port", "0", "--ui-port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn tempora");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "tempora did not start: {line}");
        ServerProcess { child, url: format!("http://{host}:{port}") }
    }

    /// Sends a signal (`-KILL`, `-STOP`, `-CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill").args([signal, &pid]).status().expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGKILL, and wait for it: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// `host:port`, as a cluster node advertises itself.
    pub fn address(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

/// A loopback port free at the moment.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Restarts the local PostgreSQL (Debian's `pg_ctlcluster`), as the restart tests do.
pub async fn restart_postgres() {
    let status = tokio::task::spawn_blocking(|| {
        let version = std::fs::read_dir("/etc/postgresql").unwrap().next().unwrap().unwrap().file_name();
        std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", version.to_str().unwrap(), "main", "restart"])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "pg_ctlcluster restart failed");
}
