//! `mandate-demo`: the demo agents. Each scenario's agent asks the user,
//! waits for the decision and follows through (`docs/demo.md`).
//!
//!     mandate-demo --principal http://127.0.0.1:9000#alice --dir DIR
//!
//! The scenarios run at once, so their requests reach the inbox together.
//! Progress is one JSON object per line on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mandate_demo::scenario::{Format, Scenario, Stage};

/// Acts out the demo scenarios against a broker and the demo's resource
/// servers.
#[derive(Debug, Parser)]
struct Args {
    /// The broker.
    #[arg(long, env = "MANDATE_BROKER", default_value = mandate_agent::client::DEFAULT_BROKER_URL)]
    broker: String,
    /// The demo resource servers (mandate-demo-resources).
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    resources: String,
    /// The user to ask, as `issuer#subject`.
    #[arg(long)]
    principal: String,
    /// Where the agents' keys and mandates are kept.
    #[arg(long)]
    dir: PathBuf,
    /// Which scenarios to act out [default: all].
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
    /// How long each agent waits for the user's decision, in seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// How progress lines are written.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
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
    mandate_demo::scenario::set_format(args.format);
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("error: cannot create {}: {e}", args.dir.display());
        return ExitCode::FAILURE;
    }
    let stage = Stage {
        broker: args.broker.trim_end_matches('/').to_owned(),
        resources: args.resources.trim_end_matches('/').to_owned(),
        principal: args.principal,
        dir: args.dir,
        decision_timeout: Duration::from_secs(args.timeout),
        retry: Duration::from_secs(4),
    };
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario
    };
    let runs = scenarios.iter().map(|s| async {
        let outcome = s.run(&stage).await;
        (*s, outcome)
    });
    let mut failed = false;
    for (scenario, outcome) in futures_util::future::join_all(runs).await {
        if let Err(e) = outcome {
            eprintln!("error: the {} scenario: {e:#}", scenario.name());
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
