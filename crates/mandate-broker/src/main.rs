//! `mandate-broker`: serves the broker on a socket.
//!
//!     mandate-broker --listen 127.0.0.1:7700 --data-dir /var/lib/mandate \
//!         --issuer https://idp.example=mandate-app
//!
//! On start it prints one line to standard output,
//! `mandate-broker listening on http://ADDR`, so that scripts and tests can
//! use `--listen 127.0.0.1:0` and read the port back.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use mandate_broker::host::{HostConfig, Hosted};
use mandate_broker::oidc::TrustedIssuer;
use mandate_broker::ratelimit::Rate;
use mandate_broker::{AllowedHost, AllowedOrigin, Limits};

/// Mandate's broker: agents file signed requests, users decide.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "MANDATE_BROKER_LISTEN", default_value = mandate_broker::host::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Where the key file and the default SQLite database live.
    #[arg(
        long,
        env = "MANDATE_BROKER_DATA_DIR",
        default_value = "mandate-broker-data"
    )]
    data_dir: PathBuf,
    /// The database: `sqlite://FILE` or `postgres://...` [default: a SQLite file in the data directory].
    #[arg(long, env = "MANDATE_BROKER_DATABASE")]
    database: Option<String>,
    /// The URL agents and users reach the broker at [default: http://LISTEN].
    #[arg(long, env = "MANDATE_BROKER_PUBLIC_URL")]
    public_url: Option<String>,
    /// An OIDC issuer whose users may sign in, with the client ids its
    /// tokens may be for: `ISSUER=CLIENT_ID[,CLIENT_ID...]`. Repeat for several.
    #[arg(long = "issuer", env = "MANDATE_BROKER_ISSUER")]
    issuers: Vec<String>,
    /// The broker's signing key [default: broker-key in the data directory].
    #[arg(long, env = "MANDATE_BROKER_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The most pending requests one user may have from agents they
    /// approved before, and those agents' endorsed sub-agents.
    #[arg(long, default_value_t = Limits::default().max_pending_known)]
    max_pending_known: i64,
    /// The most pending requests one user may have from other agents.
    #[arg(long, default_value_t = Limits::default().max_pending_new)]
    max_pending_new: i64,
    /// After a user denies an agent's request, how long, in seconds, the
    /// same agent asking for the same scopes is refused (0: never).
    #[arg(long, default_value_t = Limits::default().denial_cooldown)]
    denial_cooldown: i64,
    /// The most followers of the revocation feed's stream at once.
    #[arg(long, default_value_t = Limits::default().max_followers)]
    max_followers: usize,
    /// The most pending requests one agent may have for one user.
    #[arg(long, default_value_t = Limits::default().max_pending_per_agent)]
    max_pending_per_agent: i64,
    /// Overrides one rate limit: `KIND=BURST:PER_SECOND`, where KIND is
    /// agent_requests, user_prompts, agent_calls, user_calls, receipts or
    /// revocations. Repeatable.
    #[arg(long = "rate", value_parser = parse_rate)]
    rates: Vec<(String, Rate)>,
    /// Seconds of clock skew allowed on OIDC tokens' exp, nbf and iat.
    #[arg(long, default_value_t = mandate_broker::oidc::LEEWAY)]
    oidc_leeway: i64,
    /// Seconds between keep-alive comments on idle SSE streams.
    #[arg(long, default_value_t = Limits::default().sse_keepalive.as_secs())]
    sse_keepalive: u64,
    /// How long a user key's binding lasts, in seconds; the app renews it
    /// at half its life while the user is signed in.
    #[arg(long, default_value_t = Limits::default().binding_lifetime)]
    binding_lifetime: i64,
    /// Another `Host` to answer, `NAME[:PORT]` exactly as clients send it
    /// (no port means port 80 or 443), besides the listen address and the
    /// public URL's. Any other is refused, against DNS rebinding.
    /// Repeatable; the variable takes a comma-separated list.
    #[arg(
        long = "allowed-host",
        env = "MANDATE_BROKER_ALLOWED_HOST",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<AllowedHost>,
    /// A web origin, `SCHEME://HOST[:PORT]`, whose requests are taken. A
    /// request with any other `Origin` is refused [default: none].
    /// Repeatable; the variable takes a comma-separated list.
    #[arg(
        long = "allowed-origin",
        env = "MANDATE_BROKER_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    allowed_origins: Vec<AllowedOrigin>,
    /// A resource the broker issues OAuth access tokens for,
    /// `URI[=ALG]`: its URI as clients name it in `resource`, and the
    /// signature its tokens carry (`EdDSA`, the default, or `ES256`). See
    /// docs/oauth.md. Repeatable; the variable takes a comma-separated list.
    #[arg(
        long = "oauth-resource",
        env = "MANDATE_BROKER_OAUTH_RESOURCE",
        value_delimiter = ',',
        value_parser = mandate_broker::oauth::Resource::parse
    )]
    oauth_resources: Vec<mandate_broker::oauth::Resource>,
    /// A resource server trusted to report the calls made to it, as
    /// witness receipts: `URI=THUMBPRINT`, the resource's URI and its
    /// witness key's RFC 7638 thumbprint (`mandate-gateway
    /// --print-witness` prints a gateway's). See docs/mcp.md. Repeatable;
    /// the variable takes a comma-separated list.
    #[arg(
        long = "witness",
        env = "MANDATE_BROKER_WITNESS",
        value_delimiter = ',',
        value_parser = mandate_broker::witness_service::Witness::parse
    )]
    witnesses: Vec<mandate_broker::witness_service::Witness>,
    /// Serves the OAuth authorization code flow, signing users in at
    /// `ISSUER` (one of the --issuer ones) as the public client
    /// `CLIENT_ID`, whose redirect URI is the broker's
    /// `/oauth/callback`. See docs/oauth.md, "The code flow".
    #[arg(
        long = "oauth-sign-in",
        env = "MANDATE_BROKER_OAUTH_SIGN_IN",
        value_parser = mandate_broker::oauth::authorize::CodeFlowConfig::parse
    )]
    oauth_sign_in: Option<mandate_broker::oauth::authorize::CodeFlowConfig>,
    /// Also takes OAuth clients whose `client_id` is an `http://` URL on
    /// this machine (for tests): metadata documents are otherwise
    /// `https://` only.
    #[arg(long)]
    oauth_loopback_clients: bool,
    /// The lifetime, in seconds, an OAuth client's request asks for; the
    /// user may shorten it in the app. From 1 to 2592000 (30 days), as
    /// any request's lifetime.
    #[arg(long, default_value_t = 86_400,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(mandate_core::token::MAX_LIFETIME_SECS)))]
    oauth_grant_lifetime: u32,
}

fn parse_rate(spec: &str) -> Result<(String, Rate), String> {
    let bad = || format!("{spec:?} is not KIND=BURST:PER_SECOND");
    let (kind, rate) = spec.split_once('=').ok_or_else(bad)?;
    let (burst, per_second) = rate.split_once(':').ok_or_else(bad)?;
    let rate = Rate {
        burst: burst.parse().map_err(|_| bad())?,
        per_second: per_second.parse().map_err(|_| bad())?,
    };
    if !(rate.per_second.is_finite() && rate.per_second >= 0.0) {
        return Err(bad());
    }
    match kind {
        "agent_requests" | "user_prompts" | "agent_calls" | "user_calls" | "receipts"
        | "revocations" => Ok((kind.to_owned(), rate)),
        _ => Err(format!("{kind:?} is not a rate limit")),
    }
}

impl Args {
    fn limits(&self) -> Limits {
        let mut limits = Limits {
            max_pending_known: self.max_pending_known,
            max_pending_new: self.max_pending_new,
            max_pending_per_agent: self.max_pending_per_agent,
            denial_cooldown: self.denial_cooldown.max(0),
            max_followers: self.max_followers,
            sse_keepalive: Duration::from_secs(self.sse_keepalive.max(1)),
            binding_lifetime: self.binding_lifetime.max(1),
            ..Limits::default()
        };
        for (kind, rate) in &self.rates {
            let slot = match kind.as_str() {
                "agent_requests" => &mut limits.agent_requests,
                "user_prompts" => &mut limits.user_prompts,
                "agent_calls" => &mut limits.agent_calls,
                "receipts" => &mut limits.receipts,
                "revocations" => &mut limits.revocations,
                _ => &mut limits.user_calls,
            };
            *slot = *rate;
        }
        limits
    }
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
    let issuers = args
        .issuers
        .iter()
        .map(|spec| {
            TrustedIssuer::parse(spec)
                .with_context(|| format!("--issuer {spec:?} is not ISSUER=CLIENT_ID"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = HostConfig {
        database: args.database.clone(),
        public_url: args.public_url.clone(),
        key_file: args.key_file.clone(),
        key: None,
        limits: args.limits(),
        oidc_leeway: args.oidc_leeway,
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
        oauth_resources: args.oauth_resources.clone(),
        witnesses: args.witnesses.clone(),
        oauth_code_flow: args.oauth_sign_in.clone().map(|flow| {
            mandate_broker::oauth::authorize::CodeFlowConfig {
                loopback_clients: args.oauth_loopback_clients,
                grant_lifetime: args.oauth_grant_lifetime,
                ..flow
            }
        }),
        ..HostConfig::new(args.listen, args.data_dir.clone(), issuers)
    };
    let hosted = Hosted::start(config).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "mandate-broker listening on http://{}", hosted.bound())
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    drop(out);
    shutdown().await;
    hosted.stop().await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
