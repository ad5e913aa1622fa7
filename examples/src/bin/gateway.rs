//! The HTTP gateway (see `tempora_examples::gateway`).

use clap::Parser;
use tempora_examples::{connect, gateway};

#[derive(Parser)]
struct Args {
    /// The server (tempora or Temporal).
    #[arg(long, default_value = "127.0.0.1:7233")]
    address: String,
    /// Where to listen for HTTP.
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = connect(&args.address).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("gateway listening on http://{}", listener.local_addr()?);
    axum::serve(listener, gateway::router(client)).await?;
    Ok(())
}
