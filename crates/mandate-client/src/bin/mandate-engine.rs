//! `mandate-engine`: the desktop app's engine without a window, for
//! scripts, tests and terminals. It shares the app's keyring entries and
//! history, so a user signed in in one is signed in in the other.
//!
//!     mandate-engine --issuer URL --broker URL signin
//!     mandate-engine --issuer URL --broker URL inbox
//!     mandate-engine --issuer URL --broker URL approve ID --lifetime 600
//!
//! Output is JSON on stdout. A failure prints `error CODE: message` on
//! stderr and exits with 1. Sign-in opens `MANDATE_BROWSER` (a command
//! the URL is appended to) or the system browser, and enrolls the key
//! under the device name `MANDATE_DEVICE_NAME` (else the host's name).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mandate_client::engine::{BrokerMode, Config, Engine};
use mandate_client::{ClientError, CommandBrowser, Narrowing};
use mandate_core::AuthorizationDetail;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(version, about = "The Mandate desktop app's engine, headless")]
struct Args {
    /// Where the history lives.
    #[arg(long, env = "MANDATE_DATA_DIR", default_value = "mandate-data")]
    data_dir: PathBuf,
    /// The organization's OIDC issuer.
    #[arg(long, env = "MANDATE_ISSUER")]
    issuer: String,
    /// The app's client id at the provider.
    #[arg(long, env = "MANDATE_CLIENT_ID", default_value = mandate_client::engine::CLIENT_ID)]
    client_id: String,
    /// A shared broker's URL. Without it, a broker is hosted in-process.
    #[arg(long, env = "MANDATE_BROKER")]
    broker: Option<String>,
    /// Where the in-process broker listens.
    #[arg(long, default_value = mandate_client::engine::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The OS keyring service the secrets are kept under.
    #[arg(long, env = "MANDATE_KEYRING_SERVICE", default_value = mandate_client::vault::SERVICE)]
    keyring_service: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signs in through the browser, and enrolls the user key.
    Signin,
    /// The signed-in account, or null.
    Status,
    /// Forgets the sign-in (the user key stays in the keyring).
    Signout,
    /// The pending requests, newest first.
    Inbox,
    /// Approves a request, narrowed if asked.
    Approve {
        /// The request's id (base64url: one in 64 begins with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// The scopes to grant, as a JSON array (default: as asked).
        #[arg(long)]
        scopes: Option<String>,
        /// The lifetime in seconds (default: as asked).
        #[arg(long)]
        lifetime: Option<u32>,
        /// The delegation depth (default: as asked).
        #[arg(long)]
        depth: Option<u8>,
    },
    /// Denies a request.
    Deny {
        /// The request's id (base64url: one in 64 begins with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Why, for the agent.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delivers the outbox; prints how many decisions still wait.
    Deliver,
    /// The decisions signed, and the event log.
    History {
        /// Checks the hash chain and the signed head.
        #[arg(long)]
        verify: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{out}").is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error {}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, ClientError> {
    serde_json::to_value(value).map_err(|e| ClientError::Invalid(e.to_string()))
}

async fn run(args: Args) -> Result<serde_json::Value, ClientError> {
    let config = Config {
        data_dir: args.data_dir,
        issuer: args.issuer,
        client_id: args.client_id,
        broker: match args.broker {
            Some(url) => BrokerMode::Remote { url },
            None => BrokerMode::InProcess {
                listen: args.listen,
            },
        },
        keyring_service: args.keyring_service,
        device: mandate_client::engine::device_name(),
    };
    let engine = Engine::start(config).await?;
    let out = command(&engine, args.command).await;
    engine.shutdown().await;
    out
}

async fn command(engine: &Engine, command: Command) -> Result<serde_json::Value, ClientError> {
    if let Command::Signin = command {
        let account = engine.sign_in(&CommandBrowser::from_env()).await?;
        return to_json(&account);
    }
    let account = engine.resume().await?;
    if let Command::Status = command {
        return to_json(&account);
    }
    if account.is_none() {
        return Err(ClientError::SignedOut);
    }
    match command {
        Command::Signin | Command::Status => Ok(serde_json::Value::Null),
        Command::Signout => {
            engine.sign_out().await?;
            Ok(json!({ "signed_out": true }))
        }
        Command::Inbox => {
            let requests = engine.inbox().await?;
            Ok(json!(
                requests
                    .iter()
                    .map(|r| json!({
                        "id": r.id,
                        "request": r.request,
                        "parent_chain": r.parent_chain,
                        "received_at": r.received_at,
                        "expires_at": r.expires_at,
                    }))
                    .collect::<Vec<_>>()
            ))
        }
        Command::Approve {
            id,
            scopes,
            lifetime,
            depth,
        } => {
            let scopes = scopes
                .map(|s| {
                    serde_json::from_str::<Vec<AuthorizationDetail>>(&s).map_err(|e| {
                        ClientError::Invalid(format!("--scopes is not a list of scopes: {e}"))
                    })
                })
                .transpose()?;
            let narrowing = Narrowing {
                scopes,
                lifetime,
                max_depth: depth,
            };
            to_json(&engine.approve(&id, &narrowing).await?)
        }
        Command::Deny { id, reason } => to_json(&engine.deny(&id, reason.as_deref()).await?),
        Command::Deliver => Ok(json!({ "waiting": engine.deliver().await? })),
        Command::History { verify } => {
            let verified = if verify {
                Some(to_json(&engine.verify_history().await?)?)
            } else {
                None
            };
            Ok(json!({
                "decisions": to_json(&engine.decisions().await?)?,
                "verified": verified,
            }))
        }
    }
}
