//! `mcp-plain-proxy`: the floor the MCP gateway is measured against
//! (docs/benchmarks.md). It forwards every request to the upstream through
//! the gateway's own forwarding code (`mandate_gateway::upstream`), and
//! checks nothing: no credential, no JSON-RPC reading, no scope.
//!
//!     mcp-plain-proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:8000/mcp
//!
//! Prints `mcp-plain-proxy listening on http://ADDR/mcp`.

use std::io::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse as _, Response};
use clap::Parser;
use mandate_gateway::upstream::{Upstream, streamed};

#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The upstream MCP endpoint.
    #[arg(long)]
    upstream: String,
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = (method == Method::POST).then_some(body);
    match up.send(method, &headers, body, None).await {
        Ok(res) => streamed(res),
        Err(refusal) => refusal.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let upstream = Upstream::new(args.upstream, Vec::new())?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let bound = listener.local_addr()?;
    // Answers stream in small writes (SSE events): without TCP_NODELAY, a
    // write waits on the client's delayed ACK, some 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new()
        .route("/mcp", axum::routing::any(forward))
        .with_state(upstream);
    let mut out = std::io::stdout().lock();
    writeln!(out, "mcp-plain-proxy listening on http://{bound}/mcp")?;
    out.flush()?;
    drop(out);
    axum::serve(listener, app).await?;
    Ok(())
}
