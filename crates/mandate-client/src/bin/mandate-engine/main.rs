//! `mandate-engine`: the desktop app's engine without a window, for
//! terminals, scripts and tests. It shares the app's keyring entries and
//! history, so a user signed in in one is signed in in the other.
//!
//!     mandate-engine --issuer URL --broker URL signin
//!     mandate-engine --issuer URL --broker URL inbox
//!     mandate-engine --issuer URL --broker URL show ID
//!     mandate-engine --issuer URL --broker URL approve ID --keep 0=read --lifetime 600
//!     mandate-engine --issuer URL --broker URL revoke GRANT --reason "done"
//!
//! Output is JSON when standard output is not a terminal, and text for
//! people when it is (`--output` chooses). A failure prints
//! `error CODE: message` on stderr and exits with 1. docs/app.md
//! ("mandate-engine: the app in a terminal") documents every command, and
//! a test runs its examples.

mod text;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mandate_client::activity::ActivityFilter;
use mandate_client::commands::{self, ApproveInput, CommandError};
use mandate_client::decision::Tier;
use mandate_client::engine::{BrokerMode, Config, Engine};
use mandate_client::view::ScopeChoice;
use mandate_client::{ClientError, CommandBrowser};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(version, about = "The Mandate desktop app's engine, in a terminal")]
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
    /// JSON, or text for people [default: text on a terminal, else JSON].
    #[arg(long, value_enum)]
    output: Option<Output>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signs in through the browser, and enrolls this device's user key.
    Signin,
    /// The signed-in account, or null.
    Status,
    /// Forgets the sign-in (the user key stays in the keyring).
    Signout,
    /// Reads the broker's inbox; lists the pending requests, newest first.
    Inbox,
    /// One request: the agent, its binding code, the scopes, the chain
    /// behind it, and the decision.
    Show {
        /// The request's id (base64url: one in 64 begins with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Approves a request, narrowed if asked; signs the grant with the
    /// user key and delivers it.
    Approve {
        /// The request's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Keeps scope N (0 is the first `show` lists) with only these
        /// actions: `N=ACTION[,ACTION...]`. Repeat it; scopes not named are
        /// dropped. Without it, every scope as asked.
        #[arg(long = "keep", value_name = "N=ACTIONS", value_parser = parse_keep)]
        keep: Vec<ScopeChoice>,
        /// A shorter lifetime, in seconds (default: as asked).
        #[arg(long)]
        lifetime: Option<u32>,
        /// A lower delegation depth (default: as asked).
        #[arg(long)]
        depth: Option<u8>,
        /// Just this once: one call, ten minutes at most.
        #[arg(long, conflicts_with_all = ["lease", "rule"])]
        once: bool,
        /// For this task: a lease of this many minutes.
        #[arg(long, value_name = "MINUTES", conflicts_with = "rule")]
        lease: Option<u32>,
        /// Always, within these bounds: also a rule, standing this many
        /// days, that approves this agent's later requests that fit.
        #[arg(long, value_name = "DAYS")]
        rule: Option<u32>,
    },
    /// Denies a request; signs the denial and delivers it.
    Deny {
        /// The request's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Why, for the agent.
        #[arg(long)]
        reason: Option<String>,
        /// Deny always: the broker refuses this agent's requests from now on.
        #[arg(long)]
        always: bool,
    },
    /// Types the binding code the agent shows, for a high-risk request.
    Code {
        /// The request's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// The code, as typed.
        code: String,
    },
    /// The standing rules, and the agents denied always.
    Rules,
    /// Ends a standing rule.
    EndRule {
        /// The rule's id, as `rules` lists it.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Lifts "deny always" for an agent key.
    LiftBlock {
        /// The agent key's thumbprint, as `rules` lists it.
        #[arg(allow_hyphen_values = true)]
        agent: String,
    },
    /// Delivers the outbox; prints how many decisions and revocations
    /// still wait.
    Deliver,
    /// The grants in force, by agent, with the sub-delegations beneath
    /// them; and those that ended.
    Delegations,
    /// Revokes a grant, and with it everything delegated beneath it; signs
    /// the revocation and delivers it.
    Revoke {
        /// The grant's id, as `delegations` lists it (base64url: one in 64
        /// begins with '-').
        #[arg(allow_hyphen_values = true)]
        grant: String,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revokes every grant in force, in one signed revocation.
    RevokeAll,
    /// Reads new receipts from the broker, checks them, and lists the
    /// activity, newest first.
    Activity {
        /// Only this agent's (its id).
        #[arg(long)]
        agent: Option<String>,
        /// Only under this grant (its id).
        #[arg(long)]
        grant: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// The decisions signed and the event log; `history verify` checks
    /// them.
    History {
        /// Checks the hash chain and the signed head too.
        #[arg(long)]
        verify: bool,
        #[command(subcommand)]
        action: Option<HistoryAction>,
    },
}

#[derive(Debug, Subcommand)]
enum HistoryAction {
    /// Checks every link of the history's hash chain and the head's
    /// signature by the user key.
    Verify,
}

/// `N=ACTION[,ACTION...]`.
fn parse_keep(text: &str) -> Result<ScopeChoice, String> {
    let (index, actions) = text
        .split_once('=')
        .ok_or("expected N=ACTION[,ACTION...], such as 0=read")?;
    let index = index
        .trim()
        .parse()
        .map_err(|_| format!("{index:?} is not a scope number"))?;
    let actions: Vec<String> = actions
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if actions.is_empty() {
        return Err("keep at least one action; to drop a scope, leave out its --keep".into());
    }
    Ok(ScopeChoice {
        index,
        actions,
        confirm: false,
        confirm_above: None,
    })
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
    let output = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Text
    } else {
        Output::Json
    });
    match run(args).await {
        Ok(done) => {
            let shown = match output {
                Output::Json => done.json.to_string(),
                Output::Text => done.text,
            };
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{}", shown.trim_end()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error {}: {}", e.code, e.message);
            ExitCode::FAILURE
        }
    }
}

/// What a command printed: as JSON, and as text for people.
struct Done {
    json: Value,
    text: String,
}

fn done<T: Serialize>(value: &T, text: impl FnOnce(&T) -> String) -> Result<Done, CommandError> {
    let json = serde_json::to_value(value)
        .map_err(|e| CommandError::from(ClientError::Invalid(e.to_string())))?;
    Ok(Done {
        text: text(value),
        json,
    })
}

async fn run(args: Args) -> Result<Done, CommandError> {
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
        oauth_resources: Vec::new(),
        witnesses: Vec::new(),
    };
    let engine = Engine::start(config).await?;
    let out = command(&engine, args.command).await;
    engine.shutdown().await;
    out
}

async fn command(engine: &Engine, command: Command) -> Result<Done, CommandError> {
    if let Command::Signin = command {
        let account = engine.sign_in(&CommandBrowser::from_env()).await?;
        return done(&account, |a| text::account(Some(a)));
    }
    let account = engine.resume().await?;
    if let Command::Status = command {
        return done(&account, |a| text::account(a.as_ref()));
    }
    if account.is_none() {
        return Err(ClientError::SignedOut.into());
    }
    match command {
        Command::Signin | Command::Status => unreachable!("handled above"),
        Command::Signout => {
            engine.sign_out().await?;
            done(&json!({ "signed_out": true }), |_| "Signed out.".into())
        }
        Command::Inbox => {
            engine.inbox().await?;
            done(&engine.inbox_rows().await?, |rows| text::inbox(rows))
        }
        Command::Show { id } => done(&engine.detail(&id).await?, text::detail),
        Command::Approve {
            id,
            keep,
            lifetime,
            depth,
            once,
            lease,
            rule,
        } => {
            let tier = match (once, lease, rule) {
                (true, _, _) => Tier::Once,
                (_, Some(minutes), _) => Tier::Lease { minutes },
                (_, _, Some(days)) => Tier::Rule { days },
                _ => Tier::Standard,
            };
            let input = ApproveInput {
                scopes: (!keep.is_empty()).then_some(keep),
                lifetime,
                max_depth: depth,
                tier: Some(tier),
            };
            done(&commands::approve(engine, &id, &input).await?, text::detail)
        }
        Command::Deny { id, reason, always } => done(
            &commands::deny(engine, &id, reason.as_deref(), always).await?,
            text::detail,
        ),
        Command::Code { id, code } => {
            let check = commands::match_code(engine, &id, &code).await?;
            done(&check, |c| {
                if c.matched {
                    "The code matches: the request can be approved.".into()
                } else if c.denied {
                    "Wrong code, three times: the request is denied and flagged.".into()
                } else {
                    format!("Wrong code: {} more tries.", c.misses_left)
                }
            })
        }
        Command::Rules => done(&commands::rules(engine).await?, text::rules),
        Command::EndRule { id } => done(&commands::end_rule(engine, &id).await?, text::rules),
        Command::LiftBlock { agent } => {
            done(&commands::lift_block(engine, &agent).await?, text::rules)
        }
        Command::Deliver => {
            let waiting = engine.deliver().await?;
            done(&json!({ "waiting": waiting }), |_| {
                format!("{waiting} still waiting to be delivered.")
            })
        }
        Command::Delegations => done(&engine.delegations().await?, text::delegations),
        Command::Revoke { grant, reason } => done(
            &commands::revoke(engine, &[grant], reason.as_deref()).await?,
            text::revocation,
        ),
        Command::RevokeAll => done(&engine.revoke_all().await?, |r| match r {
            Some(r) => text::revocation(r),
            None => "No grant in force: nothing to revoke.".into(),
        }),
        Command::Activity {
            agent,
            grant,
            limit,
        } => {
            engine.sync_activity().await?;
            let filter = ActivityFilter {
                agent,
                grant,
                limit: Some(limit),
                ..ActivityFilter::default()
            };
            done(&engine.activity(&filter).await?, |rows| {
                text::activity(rows)
            })
        }
        Command::History {
            action: Some(HistoryAction::Verify),
            ..
        } => done(&engine.verify_history().await?, text::verified),
        Command::History { verify, .. } => {
            let verified = if verify {
                Some(engine.verify_history().await?)
            } else {
                None
            };
            let decisions = engine.decisions().await?;
            let report = json!({ "decisions": decisions, "verified": verified });
            done(&report, |_| text::decisions(&decisions, verified.as_ref()))
        }
    }
}
