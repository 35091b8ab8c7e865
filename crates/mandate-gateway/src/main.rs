//! `mandate-gateway`: run in front of an MCP server that speaks Streamable
//! HTTP, trusting a Mandate broker.
//!
//!     mandate-gateway --listen 127.0.0.1:7900 --upstream http://127.0.0.1:8000/mcp \
//!         --broker http://127.0.0.1:7700
//!
//! On start it prints `mandate-gateway listening on URL`, the MCP
//! endpoint's URL, which is the resource clients ask the broker for.
//! docs/mcp.md has the whole story.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{HeaderName, HeaderValue};
use clap::Parser;
use mandate_gateway::{Config, Gateway};

/// Per-tool Mandate authority in front of an MCP server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "MANDATE_GATEWAY_LISTEN", default_value = "127.0.0.1:7900")]
    listen: SocketAddr,
    /// The upstream MCP endpoint (Streamable HTTP).
    #[arg(
        long,
        env = "MANDATE_GATEWAY_UPSTREAM",
        required_unless_present = "print_witness"
    )]
    upstream: Option<String>,
    /// The broker whose tokens, bindings and revocations to trust.
    #[arg(long, env = "MANDATE_BROKER", default_value = "http://127.0.0.1:7700")]
    broker: String,
    /// The MCP endpoint's URL as clients reach it: the resource the broker
    /// issues tokens for (its --oauth-resource) [default:
    /// http://LISTEN/mcp].
    #[arg(long, env = "MANDATE_GATEWAY_RESOURCE")]
    resource: Option<String>,
    /// A header to send upstream with every call, `NAME: VALUE`: the
    /// gateway's own credential, if the upstream needs one. Prefer the
    /// environment variable, which other users cannot read.
    #[arg(long, env = "MANDATE_GATEWAY_UPSTREAM_HEADER", hide_env_values = true)]
    upstream_header: Vec<String>,
    /// An `Origin` a browser page may call from (none by default).
    #[arg(long)]
    allowed_origin: Vec<String>,
    /// A name for the resource metadata.
    #[arg(long)]
    name: Option<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = mandate_gateway::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// The most proofs remembered (of each kind), each for two minutes,
    /// so that none is used twice; one key's take at most a sixteenth.
    #[arg(long, default_value_t = mandate_gateway::DEFAULT_REPLAY_CAPACITY)]
    replay_capacity: usize,
    /// Refuse every call once the latest broker checkpoint caught up to is
    /// older than this, in seconds.
    #[arg(long, default_value_t = mandate_agent::DEFAULT_MAX_STALENESS.as_secs())]
    max_staleness: u64,
    /// The file of the key the gateway signs a witness receipt of each
    /// call with, created (mode 0600) if missing. The broker must trust
    /// it: `--witness RESOURCE=THUMBPRINT`. Without it, no receipts.
    #[arg(long, env = "MANDATE_GATEWAY_WITNESS_KEY")]
    witness_key: Option<std::path::PathBuf>,
    /// Exports a span of each call, over OTLP/HTTP (protobuf), to this
    /// collector URL: the whole traces path, such as
    /// http://127.0.0.1:4318/v1/traces. Without it, or
    /// OTEL_EXPORTER_OTLP_ENDPOINT (the collector's base URL), no spans.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    otlp_traces: Option<String>,
    /// Prints the witness key's thumbprint (creating the key if missing),
    /// for the broker's `--witness`, and exits.
    #[arg(long, requires = "witness_key")]
    print_witness: bool,
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
    let witness = match &args.witness_key {
        Some(path) => Some(mandate_gateway::witness::WitnessKey::new(
            mandate_keyfile::load_or_create(path)
                .with_context(|| format!("the witness key {}", path.display()))?,
        )),
        None => None,
    };
    if args.print_witness {
        let key = witness.context("--print-witness needs --witness-key")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", key.thumbprint())?;
        out.flush()?;
        return Ok(());
    }
    let upstream = args.upstream.context("--upstream is required")?;
    let mut upstream_headers = Vec::new();
    for h in &args.upstream_header {
        let (name, value) = h
            .split_once(':')
            .context("--upstream-header must be NAME: VALUE")?;
        upstream_headers.push((
            HeaderName::try_from(name.trim()).context("--upstream-header: not a header name")?,
            HeaderValue::try_from(value.trim()).context("--upstream-header: not a header value")?,
        ));
    }
    let spans = match otlp_traces(args.otlp_traces) {
        Some(endpoint) => Some(mandate_gateway::otel::Spans::export_to(&endpoint)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    // Answers stream in small writes (SSE events): without TCP_NODELAY, a
    // write waits on the client's delayed ACK, some 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let config = Config {
        resource: args
            .resource
            .unwrap_or_else(|| format!("http://{bound}/mcp")),
        upstream,
        upstream_headers,
        max_body: args.max_body,
        allowed_origins: args.allowed_origin,
        resource_name: args.name,
        max_staleness: Duration::from_secs(args.max_staleness),
        replay_capacity: args.replay_capacity,
        witness,
        spans: spans.clone(),
    };
    let resource = config.resource.clone();
    let gateway = Gateway::start(config, &args.broker).await?;
    let app = gateway.router();
    let mut out = std::io::stdout().lock();
    writeln!(out, "mandate-gateway listening on {resource}")?;
    out.flush()?;
    drop(out);
    // On Ctrl-C or SIGTERM: stop taking connections, let the calls in
    // flight end (up to GRACE: a client's open event stream would
    // otherwise hold the gateway up for good), report the witness
    // receipts still queued, and send the spans still held.
    let (signalled, mut stopping) = tokio::sync::watch::channel(false);
    let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop_signal().await;
        let _ = signalled.send(true);
    });
    tokio::select! {
        served = std::future::IntoFuture::into_future(serving) => served?,
        () = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(GRACE).await;
        } => tracing::warn!("calls still open {GRACE:?} after the signal to stop: ending them"),
    }
    gateway.stop(Duration::from_secs(10)).await;
    if let Some(spans) = spans {
        tokio::task::spawn_blocking(move || spans.shutdown()).await?;
    }
    Ok(())
}

/// How long calls in flight get to end once the gateway is told to stop.
const GRACE: Duration = Duration::from_secs(5);

/// Ctrl-C, or SIGTERM (a service manager's stop).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            // A Ctrl-C handler that failed to install disables its branch.
            tokio::select! {
                Ok(()) = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The OTLP traces URL: `--otlp-traces` (or its variable), or else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces`, as OpenTelemetry's
/// exporters do; none while `OTEL_SDK_DISABLED` is `true`.
fn otlp_traces(flag: Option<String>) -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    flag.filter(|f| !f.trim().is_empty()).or_else(|| {
        var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim().trim_end_matches('/')))
    })
}
