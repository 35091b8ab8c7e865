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
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use mandate_broker::oidc::{OidcVerifier, TrustedIssuer};
use mandate_broker::{AppState, Limits, keyfile, router};
use mandate_store::Store;

/// Mandate's broker: agents file signed requests, users decide.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "MANDATE_BROKER_LISTEN", default_value = "127.0.0.1:7700")]
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
}

fn now() -> i64 {
    // A clock before 1970 is a broken machine; treat it as the epoch.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("broker-key"));
    let key = keyfile::load_or_create(&key_file)?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("broker.db").display()));
    let store = Store::connect(&database)
        .await
        .context("opening the database")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let issuers = args
        .issuers
        .iter()
        .map(|spec| {
            TrustedIssuer::parse(spec)
                .with_context(|| format!("--issuer {spec:?} is not ISSUER=CLIENT_ID"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let oidc = OidcVerifier::new(issuers).context("building the HTTP client")?;
    let state = AppState::new(
        store.clone(),
        key,
        &public_url,
        oidc,
        Arc::new(now),
        Limits::default(),
    );
    tokio::spawn(expire_requests(store.clone()));
    tracing::info!(%bound, %public_url, backend = ?store.backend(), "serving");
    let mut out = std::io::stdout().lock();
    writeln!(out, "mandate-broker listening on http://{bound}")
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    drop(out);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving")?;
    store.close().await;
    Ok(())
}

/// Marks lapsed requests expired, every few seconds.
async fn expire_requests(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(e) = store.expire_requests(now()).await {
            tracing::warn!(error = ?e, "expiring requests failed");
        }
    }
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
