//! The `tempora` command.

use clap::{Parser, Subcommand};
use tempora::server::{self, Config};

#[derive(Parser)]
#[command(name = "tempora", version, about = "A Temporal-compatible durable-execution server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Server commands.
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Start the server.
    Start {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
        /// gRPC port.
        #[arg(long, default_value_t = 7233)]
        port: u16,
        /// SQLite database file, or `:memory:` to keep nothing.
        #[arg(long, default_value = "tempora.db")]
        db: String,
        /// Namespace to create if missing (repeatable); `default` always exists.
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
        /// Port of Temporal's HTTP/JSON API; 0 turns it off.
        #[arg(long, default_value_t = 7243)]
        http_port: u16,
        /// Port of the web UI; 0 turns it off.
        #[arg(long, default_value_t = 8233)]
        ui_port: u16,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let Command::Server { command: ServerCommand::Start { ip, port, db, namespaces, http_port, ui_port } } =
        cli.command;
    let on = |port: u16| (port != 0).then_some(port);
    let config =
        Config { ip, port, db, namespaces, http_port: on(http_port), ui_port: on(ui_port), ..Default::default() };
    let running = match server::start(config).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("tempora: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("tempora listening on {}", running.addr);
    if let Some(addr) = running.http_addr {
        println!("HTTP API on http://{addr}");
    }
    if let Some(addr) = running.ui_addr {
        println!("web UI on http://{addr}");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
