//! The desktop app's commands, as its page calls them: each takes the
//! engine and the page's input and returns what the page shows, or a
//! [`CommandError`]. The Tauri shell (`src-tauri`) routes the page's calls
//! here and adds only what needs a window: the save dialog, the tray,
//! notifications. Everything that crosses IPC is typed here or in the
//! modules it names, and exported to TypeScript from these types.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::activity::ActivityFilter;
use crate::broker::BlockItem;
use crate::calls::CallView;
use crate::decision::Tier;
use crate::engine::{Account, CodeCheck, Engine};
use crate::export::ExportFormat;
use crate::history::{Event, StoredDecision, StoredRevocation};
use crate::tiers::RuleView;
use crate::view::{RequestDetail, ScopeChoice};
use crate::{ClientError, Narrowing};

/// An error as the page sees it: a stable code and a sentence.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct CommandError {
    /// Stable, for the page to act on (`session.signed_out`, ...).
    pub code: String,
    /// A sentence for the user.
    pub message: String,
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> CommandError {
        CommandError {
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

impl CommandError {
    /// The app was started without an OIDC provider to sign in with.
    pub fn config_missing() -> CommandError {
        CommandError {
            code: crate::EngineCode::ConfigMissing.as_str().into(),
            message: "no OIDC provider is configured: set MANDATE_ISSUER".into(),
        }
    }
}

/// A command's result.
pub type Result<T> = std::result::Result<T, CommandError>;

/// What the page needs first.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct AppState {
    /// The signed-in user, if any.
    pub account: Option<Account>,
    /// The OIDC provider the app signs in with.
    pub issuer: String,
    /// The broker the app talks to.
    pub broker_url: String,
}

/// The signed-in user, the last sign-in resumed from the keyring if
/// nobody is signed in yet.
pub async fn app_state(engine: &Engine) -> Result<AppState> {
    let account = match engine.account().await {
        Some(account) => Some(account),
        None => engine.resume().await?,
    };
    Ok(AppState {
        account,
        issuer: engine.issuer().to_owned(),
        broker_url: engine.broker_url().to_owned(),
    })
}

/// How the user narrowed a request: `None` keeps what was asked.
#[derive(Debug, Default, Deserialize, ts_rs::TS)]
pub struct ApproveInput {
    /// The scopes kept, each with the actions kept.
    pub scopes: Option<Vec<ScopeChoice>>,
    /// A shorter lifetime, in seconds.
    pub lifetime: Option<u32>,
    /// A lower delegation depth.
    pub max_depth: Option<u8>,
    /// The tier: just this once, for this task (a lease), always within
    /// these bounds (a rule), or as narrowed. The page offers "just this
    /// once" first.
    pub tier: Option<Tier>,
}

/// Approves request `id` as the user narrowed it; returns the request as
/// it now shows.
pub async fn approve(engine: &Engine, id: &str, input: &ApproveInput) -> Result<RequestDetail> {
    let scopes = match &input.scopes {
        Some(choices) => {
            let request = engine.request(id).await?;
            Some(crate::view::narrowed(&request.request, choices)?)
        }
        None => None,
    };
    let narrowing = Narrowing {
        scopes,
        lifetime: input.lifetime,
        max_depth: input.max_depth,
        tier: input.tier.unwrap_or_default(),
    };
    engine.approve(id, &narrowing).await?;
    Ok(engine.detail(id).await?)
}

/// Denies request `id`, with the user's reason unless it is blank, and
/// with `always`, blocks the agent ("deny always"); returns the request
/// as it now shows.
pub async fn deny(
    engine: &Engine,
    id: &str,
    reason: Option<&str>,
    always: bool,
) -> Result<RequestDetail> {
    engine.deny(id, given(reason), always).await?;
    Ok(engine.detail(id).await?)
}

/// Checks the binding code typed for high-risk request `id`.
pub async fn match_code(engine: &Engine, id: &str, typed: &str) -> Result<CodeCheck> {
    Ok(engine.match_code(id, typed).await?)
}

/// The calls agents ask the user to confirm.
pub async fn calls(engine: &Engine) -> Result<Vec<CallView>> {
    Ok(engine.calls().await?)
}

/// Confirms call `id`; returns the calls still waiting.
pub async fn confirm_call(engine: &Engine, id: &str) -> Result<Vec<CallView>> {
    engine.confirm_call(id).await?;
    calls(engine).await
}

/// Refuses call `id`, with the user's reason unless it is blank; returns
/// the calls still waiting.
pub async fn refuse_call(engine: &Engine, id: &str, reason: Option<&str>) -> Result<Vec<CallView>> {
    engine.refuse_call(id, given(reason)).await?;
    calls(engine).await
}

/// The Rules screen: the user's standing rules, and the agents they deny
/// always.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct RulesView {
    /// The rules, newest first, ended ones included.
    pub rules: Vec<RuleView>,
    /// The blocks, newest first, with how many requests each refused.
    pub blocks: Vec<BlockItem>,
}

/// The Rules screen.
pub async fn rules(engine: &Engine) -> Result<RulesView> {
    Ok(RulesView {
        rules: engine.rules().await?,
        blocks: engine.blocks().await?,
    })
}

/// Ends rule `id`; returns the Rules screen as it now stands.
pub async fn end_rule(engine: &Engine, id: &str) -> Result<RulesView> {
    engine.end_rule(id).await?;
    rules(engine).await
}

/// Lifts the block of `agent`; returns the Rules screen as it now stands.
pub async fn lift_block(engine: &Engine, agent: &str) -> Result<RulesView> {
    engine.lift_block(agent).await?;
    rules(engine).await
}

/// Revokes `grants`, with the user's reason unless it is blank.
pub async fn revoke(
    engine: &Engine,
    grants: &[String],
    reason: Option<&str>,
) -> Result<StoredRevocation> {
    Ok(engine.revoke(grants, given(reason)).await?)
}

/// What the user typed, unless it is blank.
fn given(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

/// Whether the history verifies.
#[derive(Debug, Serialize, ts_rs::TS)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HistoryCheck {
    /// Every event is chained to the one before, and the head is signed.
    Intact {
        /// How many events the chain holds.
        events: i64,
        /// The head's hash.
        head: String,
        /// How many receipts their own chain holds.
        receipts: i64,
    },
    /// It was altered: the error names the first broken event.
    Broken {
        /// Why, with the engine's code (`history.tampered`).
        error: CommandError,
    },
}

/// The signed history: every decision, the event log, and whether it
/// verifies.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct HistoryView {
    /// Every decision signed, newest first.
    pub decisions: Vec<StoredDecision>,
    /// The event log, oldest first.
    pub events: Vec<Event>,
    /// Whether the log verifies.
    pub check: HistoryCheck,
}

/// The history screen. A history that does not verify is shown, with
/// why, rather than refused.
pub async fn history(engine: &Engine) -> Result<HistoryView> {
    engine.account().await.ok_or(ClientError::SignedOut)?;
    let check = match engine.verify_history().await {
        Ok(verified) => HistoryCheck::Intact {
            events: verified.events,
            head: verified.head,
            receipts: verified.receipts,
        },
        Err(e) => HistoryCheck::Broken { error: e.into() },
    };
    Ok(HistoryView {
        decisions: engine.decisions().await?,
        events: engine.events().await?,
        check,
    })
}

/// The user's report of an action they did not expect.
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct ReportInput {
    /// What was wrong, in the user's words.
    pub note: Option<String>,
    /// Also revoke the grant the action was taken under.
    pub revoke: bool,
}

/// Reports receipt `id`; returns the revocation, if one was asked for.
pub async fn report(
    engine: &Engine,
    id: &str,
    input: &ReportInput,
) -> Result<Option<StoredRevocation>> {
    Ok(engine
        .report(id, input.note.as_deref(), input.revoke)
        .await?)
}

/// What the save dialog offers for an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportFile {
    /// The file name it suggests.
    pub name: &'static str,
    /// The filter's label.
    pub label: &'static str,
    /// The filter's extension.
    pub extension: &'static str,
}

impl ExportFile {
    /// The save dialog's suggestion for `format`.
    pub fn of(format: ExportFormat) -> ExportFile {
        match format {
            ExportFormat::Jsonl => ExportFile {
                name: "mandate-activity.jsonl",
                label: "JSON Lines",
                extension: "jsonl",
            },
            ExportFormat::Csv => ExportFile {
                name: "mandate-activity.csv",
                label: "CSV",
                extension: "csv",
            },
        }
    }
}

/// Where an export went.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Exported {
    /// The file chosen in the save dialog.
    pub path: String,
    /// How many records it holds.
    pub records: usize,
}

/// Exports the activity `filter` selects to `path` (chosen by the user),
/// whole or not at all.
pub async fn export(
    engine: &Engine,
    filter: &ActivityFilter,
    format: ExportFormat,
    path: &Path,
) -> Result<Exported> {
    let records = engine.export(filter, format, path).await?;
    Ok(Exported {
        path: path.display().to_string(),
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_reason_is_no_reason() {
        assert_eq!(given(None), None);
        assert_eq!(given(Some("")), None);
        assert_eq!(given(Some(" \n\t")), None);
        assert_eq!(given(Some(" not needed ")), Some(" not needed "));
    }

    #[test]
    fn each_export_format_suggests_its_own_file() {
        for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
            let file = ExportFile::of(format);
            assert!(file.name.ends_with(&format!(".{}", file.extension)));
        }
        assert_ne!(
            ExportFile::of(ExportFormat::Jsonl),
            ExportFile::of(ExportFormat::Csv)
        );
    }

    #[test]
    fn an_engine_error_reaches_the_page_as_its_code_and_sentence() {
        let e = CommandError::from(ClientError::SignedOut);
        assert_eq!(e.code, ClientError::SignedOut.code());
        assert_eq!(e.message, ClientError::SignedOut.to_string());
    }
}
