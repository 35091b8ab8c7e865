//! `mandate-resource-example`: a small file service guarded by Mandate.
//!
//!     mandate-resource-example --listen 127.0.0.1:7800 --broker http://127.0.0.1:7700
//!
//! `GET /files/{path}` needs a `files` detail with `read` on
//! `https://files.example/{path}`; `PUT` needs `write`; any other call is
//! refused (`call.no_need`). A `PUT` body may be up to 64 KiB. The files are
//! made up from their path, so the example has no state to set up. On
//! start it prints `mandate-resource-example listening on http://ADDR`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::Path;
use axum::http::Method;
use axum::routing::get;
use axum::{Extension, Json, Router};
use clap::Parser;
use mandate_agent::{Mandated, Need, NoNeed, ResourceVerifier, VerifierConfig};
use serde_json::{Value, json};

/// A file service that accepts calls under a Mandate.
#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7800")]
    listen: SocketAddr,
    /// The broker whose bindings and revocations to trust.
    #[arg(long, env = "MANDATE_BROKER", default_value = "http://127.0.0.1:7700")]
    broker: String,
    /// The origin agents address this server by [default: http://LISTEN].
    #[arg(long)]
    origin: Option<String>,
    /// Where the files live, as scopes name them.
    #[arg(long, default_value = "https://files.example")]
    location_base: String,
    /// Refuse every call once the latest broker checkpoint caught up to is
    /// older than this, in seconds.
    #[arg(long, default_value_t = mandate_agent::DEFAULT_MAX_STALENESS.as_secs())]
    max_staleness: u64,
    /// How far clocks may disagree, in seconds: a grant is accepted up to
    /// this long past its expiry.
    #[arg(long, default_value_t = mandate_agent::DEFAULT_CLOCK_SKEW.as_secs())]
    clock_skew: u64,
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
    let base = args.location_base.trim_end_matches('/').to_owned();
    let config = VerifierConfig {
        origin: args.origin.unwrap_or_else(|| format!("http://{bound}")),
        max_staleness: Duration::from_secs(args.max_staleness),
        needs: Box::new(move |method: &Method, path: &str, _body: &[u8]| {
            let file = path.strip_prefix("/files/").ok_or(NoNeed::Undeclared)?;
            let action = match *method {
                Method::GET => "read",
                Method::PUT => "write",
                _ => return Err(NoNeed::Undeclared),
            };
            Ok(Need {
                kind: "files".into(),
                action: action.into(),
                location: format!("{base}/{file}"),
                identifier: None,
                amount: None,
            })
        }),
        max_body: mandate_agent::DEFAULT_MAX_BODY,
        replay_capacity: mandate_agent::DEFAULT_REPLAY_CAPACITY,
        clock_skew: Duration::from_secs(args.clock_skew),
    };
    let verifier = ResourceVerifier::from_broker(&args.broker, config)
        .await
        .context("reading the broker's metadata")?;
    let app = Router::new()
        .route("/files/{*path}", get(read).put(write))
        .layer(axum::middleware::from_fn_with_state(
            verifier,
            mandate_agent::require_mandate,
        ));
    let mut out = std::io::stdout().lock();
    writeln!(out, "mandate-resource-example listening on http://{bound}")?;
    out.flush()?;
    drop(out);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn read(Path(path): Path<String>, Extension(m): Extension<Mandated>) -> Json<Value> {
    Json(json!({
        "file": path,
        "content": format!("The contents of {path}."),
        "for": m.principal,
        "agent": m.agent,
        "grant": m.grant,
        "chain_length": m.depth,
    }))
}

async fn write(Path(path): Path<String>, Extension(m): Extension<Mandated>) -> Json<Value> {
    Json(json!({ "file": path, "written": true, "agent": m.agent }))
}
