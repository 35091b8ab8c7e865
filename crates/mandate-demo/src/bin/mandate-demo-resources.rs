//! `mandate-demo-resources`: the example resource servers the demo agents
//! call, in one process, behind Mandate's verifier.
//!
//!     mandate-demo-resources --listen 127.0.0.1:7800 --broker http://127.0.0.1:7700
//!
//! On start it prints `mandate-demo-resources listening on http://ADDR`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use mandate_agent::{ResourceVerifier, VerifierConfig};

/// The demo's resource servers: Kubernetes, marketing data, audit logs,
/// market data and procurement.
#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7800")]
    listen: SocketAddr,
    /// The broker whose bindings and revocations to trust.
    #[arg(long, env = "MANDATE_BROKER", default_value = mandate_agent::client::DEFAULT_BROKER_URL)]
    broker: String,
    /// Refuse every call once the latest broker checkpoint caught up to is
    /// older than this, in seconds.
    #[arg(long, default_value_t = mandate_agent::DEFAULT_MAX_STALENESS.as_secs())]
    max_staleness: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    let config = VerifierConfig {
        origin: format!("http://{bound}"),
        max_staleness: Duration::from_secs(args.max_staleness),
        needs: Box::new(mandate_demo::resources::need),
        max_body: mandate_agent::DEFAULT_MAX_BODY,
        replay_capacity: mandate_agent::DEFAULT_REPLAY_CAPACITY,
        clock_skew: mandate_agent::DEFAULT_CLOCK_SKEW,
    };
    let verifier = ResourceVerifier::from_broker(&args.broker, config)
        .await
        .context("reading the broker's metadata")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "mandate-demo-resources listening on http://{bound}")?;
    out.flush()?;
    drop(out);
    axum::serve(listener, mandate_demo::resources::router(verifier)).await?;
    Ok(())
}
