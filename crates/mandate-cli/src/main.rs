//! `mandate`: the agent SDK and the verifier from a shell.
//!
//!     mandate agent init
//!     mandate agent request --principal ISS#SUB --scope files:read:https://files.example/q3/ \
//!         --purpose "Summarize the Q3 reports" --intent "Summarize Q3" --wait --out mandate.json
//!     mandate agent delegate --mandate mandate.json --to AGENT_ID --purpose ... --out sub.json
//!     mandate agent call --mandate sub.json GET https://files.example/q3/a.txt
//!     mandate agent report --mandate mandate.json --action files.read --target ... --summary ...
//!     mandate verify --mandate sub.json
//!     mandate revocations follow
//!
//! Output is JSON on standard output; messages for people go to standard
//! error. A failure prints `error CODE: message` and exits with 1.

// A command-line tool: standard output is where its answers go.
#![allow(clippy::print_stdout)]

mod io;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use io::{identity, parse_scopes, print_json, read_mandate, write_mandate};
use mandate_agent::{
    Action, Agent, AgentError, AgentInfo, Ask, Broker, BrokerError, Delegation, Outcome, Pending,
    Report, Revocations,
};
use mandate_core::{AgentId, TokenId};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Mandate for agents: ask, delegate, prove, report, verify"
)]
struct Cli {
    /// The broker's URL: `https://`, or `http://` to this machine only
    /// (127.0.0.0/8, ::1, localhost).
    #[arg(
        long,
        global = true,
        env = "MANDATE_BROKER",
        default_value = mandate_agent::client::DEFAULT_BROKER_URL
    )]
    broker: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What an agent does.
    #[command(subcommand)]
    Agent(Box<AgentCommand>),
    /// Verifies a mandate as a resource server would, or receipts the
    /// desktop app exported.
    Verify {
        /// The mandate file (JSON), or `-` for standard input.
        #[arg(
            long,
            required_unless_present = "receipts",
            conflicts_with = "receipts"
        )]
        mandate: Option<PathBuf>,
        /// Receipts exported by the desktop app (JSON Lines), or `-`:
        /// each is checked as it stood when the broker accepted it. Prints
        /// one line per receipt; fails if any does not verify.
        #[arg(long)]
        receipts: Option<PathBuf>,
    },
    /// The desktop app's local history.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Follows the broker's revocations.
    #[command(subcommand)]
    Revocations(RevocationsCommand),
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Checks a history database: every event's hash link, each user's
    /// signed head, and every request, decision, revocation and report
    /// against its event. Names the first row found altered. Reads only.
    Verify {
        /// The history database (`history.sqlite` in the app's data
        /// directory).
        db: PathBuf,
        /// The user key's fingerprint as the app shows it; without it, the
        /// key the database itself names is trusted.
        #[arg(long)]
        key_fingerprint: Option<String>,
    },
}

#[derive(Debug, Args)]
struct KeyArg {
    /// The agent's key file (mode 0600).
    #[arg(long, env = "MANDATE_AGENT_KEY", default_value = "mandate-agent.key")]
    key: PathBuf,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Makes the agent's key, and prints its id.
    Init {
        #[command(flatten)]
        key: KeyArg,
    },
    /// Prints the agent's id and public key.
    Id {
        #[command(flatten)]
        key: KeyArg,
    },
    /// Asks the user for authority.
    Request {
        #[command(flatten)]
        key: KeyArg,
        /// The user, as `ISSUER#SUBJECT`.
        #[arg(long, env = "MANDATE_PRINCIPAL")]
        principal: String,
        /// A scope: `TYPE:ACTION[,ACTION...]:LOCATION`, or a JSON
        /// authorization detail. Repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// What the agent understood it is to do.
        #[arg(long)]
        purpose: String,
        /// The user's instruction, as the agent received it.
        #[arg(long)]
        intent: Option<String>,
        /// The grant's lifetime asked for, in seconds.
        #[arg(long, default_value_t = 3600)]
        lifetime: u32,
        /// Hops the agent may delegate further.
        #[arg(long, default_value_t = 1)]
        max_depth: u8,
        /// The agent's display name (self-asserted).
        #[arg(long, default_value = "mandate CLI")]
        name: String,
        /// Wait for the decision and write the mandate.
        #[arg(long)]
        wait: bool,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Where to write the mandate [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to keep the signed request, for `agent renew` later.
        #[arg(long)]
        save_request: Option<PathBuf>,
        /// For a sub-agent whose delegating agent cannot delegate locally:
        /// the delegating agent's mandate, shown to the user behind this
        /// request.
        #[arg(long, requires = "endorse_key")]
        parent: Option<PathBuf>,
        /// The delegating agent's key file, to endorse the request.
        #[arg(long, requires = "parent")]
        endorse_key: Option<PathBuf>,
    },
    /// Collects the grant that answers a request now: after the user
    /// narrowed its grant to what was used, a new grant answers it.
    Renew {
        #[command(flatten)]
        key: KeyArg,
        /// The signed request (`agent request --save-request`).
        #[arg(long)]
        request: PathBuf,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Where to write the mandate [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Passes part of a mandate to a sub-agent.
    Delegate {
        #[command(flatten)]
        key: KeyArg,
        /// This agent's mandate.
        #[arg(long)]
        mandate: PathBuf,
        /// The sub-agent's id (as `mandate agent id` prints it).
        #[arg(long)]
        to: AgentId,
        /// Narrower scopes [default: the mandate's own].
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// What the sub-agent is to do.
        #[arg(long)]
        purpose: String,
        /// The instruction given to the sub-agent.
        #[arg(long)]
        intent: Option<String>,
        /// Lifetime in seconds, capped at the mandate's expiry.
        #[arg(long, default_value_t = 900)]
        lifetime: u32,
        /// Hops the sub-agent may delegate further.
        #[arg(long, default_value_t = 0)]
        max_depth: u8,
        /// Where to write the sub-agent's mandate [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Calls a resource server under a mandate, and prints its answer.
    Call {
        #[command(flatten)]
        key: KeyArg,
        /// The mandate.
        #[arg(long)]
        mandate: PathBuf,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The request body, sent as written.
        #[arg(long)]
        body: Option<String>,
        /// First ask the user to confirm this exact call (for a scope whose
        /// limits say `confirm`), described so; waits for the answer.
        #[arg(long, value_name = "SUMMARY")]
        confirm: Option<String>,
        /// How long to wait for the user's confirmation, in seconds.
        #[arg(long, default_value_t = 300)]
        confirm_timeout: u64,
    },
    /// Signs a receipt and sends it to the broker.
    Report {
        #[command(flatten)]
        key: KeyArg,
        /// The mandate the action was done under.
        #[arg(long)]
        mandate: PathBuf,
        /// The kind of action, such as `files.read`.
        #[arg(long)]
        action: String,
        /// What it was done to.
        #[arg(long)]
        target: String,
        /// A one-line summary.
        #[arg(long)]
        summary: String,
        /// succeeded, failed or refused.
        #[arg(long, default_value = "succeeded")]
        outcome: String,
        /// Why the agent decided to do it.
        #[arg(long)]
        rationale: Option<String>,
        /// The receipt or request id that caused it. An id may begin with
        /// `-` (base64url), so the value is taken as it comes.
        #[arg(long, allow_hyphen_values = true)]
        cause: Option<TokenId>,
    },
}

#[derive(Debug, Subcommand)]
enum RevocationsCommand {
    /// Prints each revoked grant id as a JSON line, as it is revoked.
    Follow,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MANDATE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error {}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn agent(broker: &str, key: &Path, name: &str) -> Result<Agent, AgentError> {
    let key = mandate_keyfile::load(key)?;
    Ok(Agent::new(
        key,
        Broker::new(broker)?,
        AgentInfo {
            name: name.to_owned(),
            publisher: None,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        },
    ))
}

async fn run(cli: Cli) -> Result<(), AgentError> {
    let broker = cli.broker.as_str();
    match cli.command {
        Command::Agent(command) => run_agent(broker, *command).await,
        Command::Verify {
            mandate: Some(mandate),
            ..
        } => {
            let mandate = read_mandate(&mandate)?;
            let verified =
                mandate_agent::verify_online(&Broker::new(broker)?, &mandate, true).await?;
            print_json(&verified);
            Ok(())
        }
        Command::Verify {
            receipts: Some(file),
            ..
        } => verify_receipts(&Broker::new(broker)?, &file).await,
        Command::Verify { .. } => Err(AgentError::Invalid("name --mandate or --receipts".into())),
        Command::History(HistoryCommand::Verify {
            db,
            key_fingerprint,
        }) => verify_history(&db, key_fingerprint.as_deref()).await,
        Command::Revocations(RevocationsCommand::Follow) => {
            let broker = Broker::new(broker)?;
            let metadata = broker.metadata().await?;
            let _follow = Revocations::follow_with(broker, &metadata, |id| {
                print_json(&json!({ "revoked": id }));
            })?;
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| AgentError::Invalid(e.to_string()))
        }
    }
}

/// One exported receipt: the fields `mandate verify --receipts` reads.
#[derive(serde::Deserialize)]
struct Exported {
    id: String,
    receipt: String,
    chain: Vec<String>,
    keys: Vec<mandate_core::Jwk>,
    binding: String,
    received_at: i64,
    /// For a witness receipt, the thumbprint of its witness's key.
    #[serde(default)]
    witness: Option<String>,
}

async fn verify_receipts(broker: &Broker, file: &Path) -> Result<(), AgentError> {
    let text = io::read_input(file)?;
    let (mut good, mut bad) = (0usize, 0usize);
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = n + 1;
        let record: Exported = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                bad += 1;
                print_json(
                    &json!({ "line": line_no, "error": mandate_agent::LocalCode::ExportMalformed.as_str(), "message": e.to_string() }),
                );
                continue;
            }
        };
        let mandate = mandate_agent::Mandate {
            chain: record.chain,
            binding: record.binding,
            keys: record.keys,
        };
        let result = match &record.witness {
            None => {
                mandate_agent::verify_receipt_online(
                    broker,
                    &mandate,
                    &record.receipt,
                    record.received_at,
                )
                .await
            }
            Some(witness) => {
                mandate_agent::verify_witness_online(
                    broker,
                    &mandate,
                    &record.receipt,
                    witness,
                    record.received_at,
                )
                .await
            }
        }
        .and_then(|v| {
            if v.receipt.to_string() == record.id {
                Ok(v)
            } else {
                Err(AgentError::Invalid(
                    "the record's id is not its receipt's".into(),
                ))
            }
        });
        match result {
            Ok(v) => {
                good += 1;
                print_json(
                    &json!({ "line": line_no, "valid": true, "receipt": v.receipt, "agent": v.mandate.agent, "action": v.action, "witness": record.witness }),
                );
            }
            Err(e) => {
                bad += 1;
                print_json(
                    &json!({ "line": line_no, "valid": false, "receipt": record.id, "error": e.code(), "message": e.to_string() }),
                );
            }
        }
    }
    eprintln!("{good} verified, {bad} failed");
    if bad > 0 || good == 0 {
        return Err(AgentError::Invalid(format!(
            "{bad} of {} receipts did not verify",
            good + bad
        )));
    }
    Ok(())
}

async fn verify_history(db: &Path, fingerprint: Option<&str>) -> Result<(), AgentError> {
    let failed = |e: mandate_client::ClientError| AgentError::Invalid(format!("{}: {e}", e.code()));
    let history = mandate_client::history::History::open_read_only(db)
        .await
        .map_err(failed)?;
    let profiles = history.profiles().await.map_err(failed)?;
    let mut broken = 0;
    for profile in &profiles {
        let key = mandate_core::PublicKey::from_jwk_json(&profile.user_jwk)?;
        let shown = key.agent_id().fingerprint();
        if fingerprint.is_some_and(|f| f != shown) {
            broken += 1;
            print_json(
                &json!({ "principal": profile.principal, "intact": false, "error": mandate_agent::LocalCode::HistoryKeyMismatch.as_str(), "message": format!("the history names key {shown}, not the one given") }),
            );
            continue;
        }
        match history.verify(&profile.principal, &key).await {
            Ok(v) => print_json(
                &json!({ "principal": profile.principal, "intact": true, "events": v.events, "head": v.head, "key_fingerprint": shown }),
            ),
            Err(e) => {
                broken += 1;
                print_json(
                    &json!({ "principal": profile.principal, "intact": false, "error": e.code(), "message": e.to_string() }),
                );
            }
        }
    }
    history.close().await;
    if profiles.is_empty() {
        return Err(AgentError::Invalid("the history holds no user".into()));
    }
    if broken > 0 {
        return Err(AgentError::Invalid(format!(
            "the history of {broken} user(s) does not verify"
        )));
    }
    Ok(())
}

async fn run_agent(broker: &str, command: AgentCommand) -> Result<(), AgentError> {
    match command {
        AgentCommand::Init { key } => {
            let signing = mandate_keyfile::create(&key.key)?;
            eprintln!("made {}", key.key.display());
            print_json(&identity(signing.public()));
        }
        AgentCommand::Id { key } => {
            print_json(&identity(mandate_keyfile::load(&key.key)?.public()));
        }
        AgentCommand::Request {
            key,
            principal,
            scopes,
            purpose,
            intent,
            lifetime,
            max_depth,
            name,
            wait,
            timeout,
            out,
            save_request,
            parent,
            endorse_key,
        } => {
            let agent = agent(broker, &key.key, &name)?;
            let ask = Ask {
                principal,
                scopes: parse_scopes(&scopes)?,
                purpose,
                intent,
                lifetime,
                max_depth,
                expires_in: u32::try_from(timeout).unwrap_or(u32::MAX).max(60),
            };
            let pending = match (parent, endorse_key) {
                (Some(parent), Some(endorser)) => {
                    let endorser = self::agent(broker, &endorser, "mandate CLI")?;
                    endorser
                        .escalate(&read_mandate(&parent)?, &agent, &ask)
                        .await?
                }
                _ => agent.request(&ask).await?,
            };
            eprintln!(
                "Request {} filed. Check that the Mandate app shows the code {}",
                pending.id, pending.binding_code
            );
            if let Some(path) = save_request {
                std::fs::write(&path, &pending.request).map_err(|e| {
                    AgentError::Invalid(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            if !wait {
                print_json(&json!({
                    "id": pending.id,
                    "binding_code": pending.binding_code,
                    "expires_at": pending.expires_at,
                }));
                return Ok(());
            }
            let mandate = agent.wait(&pending, Duration::from_secs(timeout)).await?;
            eprintln!("Approved.");
            write_mandate(&mandate, out.as_deref())?;
        }
        AgentCommand::Renew {
            key,
            request,
            timeout,
            out,
        } => {
            let agent = agent(broker, &key.key, "mandate CLI")?;
            let request = std::fs::read_to_string(&request).map_err(|e| {
                AgentError::Invalid(format!("cannot read {}: {e}", request.display()))
            })?;
            let request = request.trim().to_owned();
            let pending = Pending {
                id: TokenId::of(&request),
                binding_code: String::new(),
                expires_at: 0,
                request,
            };
            let mandate = agent.wait(&pending, Duration::from_secs(timeout)).await?;
            // The request's grant, if it was not replaced, may be revoked.
            mandate_agent::verify_online(agent.broker(), &mandate, true).await?;
            write_mandate(&mandate, out.as_deref())?;
        }
        AgentCommand::Delegate {
            key,
            mandate,
            to,
            scopes,
            purpose,
            intent,
            lifetime,
            max_depth,
            out,
        } => {
            let agent = agent(broker, &key.key, "mandate CLI")?;
            let mandate = read_mandate(&mandate)?;
            let scopes = (!scopes.is_empty())
                .then(|| parse_scopes(&scopes))
                .transpose()?;
            let delegation = Delegation {
                scopes,
                purpose,
                intent,
                lifetime,
                max_depth,
            };
            let sub = agent.delegate(&mandate, &to, &delegation)?;
            write_mandate(&sub, out.as_deref())?;
        }
        AgentCommand::Call {
            key,
            mandate,
            method,
            url,
            body,
            confirm,
            confirm_timeout,
        } => {
            let agent = agent(broker, &key.key, "mandate CLI")?;
            let mandate = read_mandate(&mandate)?;
            let method = reqwest::Method::from_bytes(method.as_bytes())
                .map_err(|_| AgentError::Invalid(format!("{method:?} is not an HTTP method")))?;
            let body = body.unwrap_or_default();
            let confirmation = match confirm {
                Some(summary) => {
                    let pending = agent
                        .ask_confirmation(
                            &mandate,
                            method.as_str(),
                            &url,
                            body.as_bytes(),
                            &summary,
                        )
                        .await?;
                    eprintln!(
                        "Call {} filed for the user to confirm in the Mandate app",
                        pending.id
                    );
                    let token = agent
                        .wait_confirmation(&pending, Duration::from_secs(confirm_timeout))
                        .await?;
                    eprintln!("Confirmed.");
                    Some(token)
                }
                None => None,
            };
            let mut req = mandate_agent::client::http_client()?.request(method.clone(), &url);
            for (name, value) in agent.present(&mandate, method.as_str(), &url)? {
                req = req.header(name, value);
            }
            if let Some(token) = confirmation {
                req = req.header(mandate_agent::CONFIRMATION_HEADER, token);
            }
            if !body.is_empty() {
                req = req.body(body);
            }
            let res = req
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| BrokerError::Unreachable(e.without_url().to_string()))?;
            let status = res.status().as_u16();
            let body = res
                .text()
                .await
                .map_err(|e| BrokerError::Unreachable(e.without_url().to_string()))?;
            let body: serde_json::Value =
                serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
            print_json(&json!({ "status": status, "body": body }));
            if !(200..300).contains(&status) {
                return Err(BrokerError::Refused {
                    status,
                    code: body["code"]
                        .as_str()
                        .unwrap_or(mandate_agent::LocalCode::HttpError.as_str())
                        .to_owned(),
                    message: "the resource server refused the call".into(),
                    retry_after: None,
                }
                .into());
            }
        }
        AgentCommand::Report {
            key,
            mandate,
            action,
            target,
            summary,
            outcome,
            rationale,
            cause,
        } => {
            let agent = agent(broker, &key.key, "mandate CLI")?;
            let mandate = read_mandate(&mandate)?;
            let outcome = match outcome.as_str() {
                "succeeded" => Outcome::Succeeded,
                "failed" => Outcome::Failed,
                "refused" => Outcome::Refused,
                other => {
                    return Err(AgentError::Invalid(format!(
                        "{other:?} is not succeeded, failed or refused"
                    )));
                }
            };
            let report = Report {
                action: Action {
                    kind: action,
                    target,
                    summary,
                },
                outcome,
                rationale,
                cause,
            };
            let id = agent.report(&mandate, &report).await?;
            print_json(&json!({ "receipt": id }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::{AgentCommand, Cli, Command};

    #[test]
    fn an_id_that_begins_with_a_hyphen_is_a_value() {
        // Token ids are base64url: one in 64 begins with `-`.
        let id = format!("-{}", "A".repeat(42));
        let cli = Cli::try_parse_from([
            "mandate",
            "agent",
            "report",
            "--key",
            "k",
            "--mandate",
            "m",
            "--action",
            "files.read",
            "--target",
            "t",
            "--summary",
            "s",
            "--cause",
            &id,
        ])
        .unwrap();
        let Command::Agent(agent) = cli.command else {
            panic!("not an agent command");
        };
        let AgentCommand::Report { cause, .. } = *agent else {
            panic!("not a report");
        };
        assert_eq!(cause.unwrap().to_string(), id);
    }
}
