//! What agents did on the user's behalf: the receipts they signed, read
//! from the broker's feed, checked here against the user's own key, kept in
//! the history, searched, explained and exported.
//!
//! The broker checked each receipt when the agent reported it, but the app
//! takes no one's word: it verifies the chain (rooted in the user's own key,
//! at the time the broker accepted the receipt, against the revocations it
//! knows) and the receipt's signature by the chain's leaf agent. A receipt
//! that fails is kept and shown as failed, with the rule it broke.
//!
//! The parts, each with one job:
//! - `check`: the checks themselves, no storage ([`Checker`]);
//! - `ingest`: writing checked pages of the feed ([`Ingest`]);
//! - `chain`: the receipt rows' hash chain, and its verification;
//! - `query`: the timeline's pages, one receipt, reporting one;
//! - `grants`: the grants as saved at each sync, and their usage;
//! - `attribution`: a receipt traced back to the user's intent.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use crate::history::agent_name_sql;

mod attribution;
mod chain;
mod check;
mod grants;
mod ingest;
mod query;

pub use attribution::{AttributionView, StepView};
pub use check::{Checker, Verdict};
pub(crate) use grants::{GrantRow, GrantUse};
pub use ingest::Ingest;
pub use query::fts_query;

/// Whether a receipt verified here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Its chain held and its signature is the leaf agent's.
    Verified,
    /// It broke a rule; `error` names which.
    Failed,
}

/// One receipt in the activity timeline.
#[derive(Debug, Clone, Serialize, FromRow, ts_rs::TS)]
pub struct ActivityRow {
    /// Its place in the history.
    pub seq: i64,
    /// The receipt's token id.
    pub id: String,
    /// The grant it names.
    pub grant_id: String,
    /// The agent that signed it: its id (a thumbprint URI).
    pub agent: String,
    /// The agent's fingerprint, for people.
    #[sqlx(skip)]
    pub agent_fingerprint: String,
    /// The name the agent gave itself when it asked, if it ever asked.
    pub agent_name: Option<String>,
    /// For an agent that holds its grant from another agent: the name that
    /// agent gave itself when it asked, if it ever asked.
    pub delegated_by: Option<String>,
    /// The action's type.
    pub kind: String,
    /// What it was done to.
    pub target: String,
    /// The agent's one-line summary.
    pub summary: String,
    /// Why it decided to.
    pub rationale: Option<String>,
    /// `succeeded`, `failed` or `refused`.
    pub outcome: String,
    /// When it acted (the agent's clock).
    pub at: i64,
    /// When the broker accepted it: the time it was checked at.
    pub received_at: i64,
    /// Whether it verified.
    pub status: ReceiptStatus,
    /// The rule it broke, if it failed.
    pub error: Option<String>,
    /// When the user reported it.
    pub reported_at: Option<i64>,
    /// For a witness receipt, the thumbprint of the resource server's key
    /// that signed it (the broker trusts it as that resource's witness);
    /// the agent is then the one whose call it saw.
    pub witness: Option<String>,
    /// The W3C trace id the call carried, for a witness receipt.
    pub trace: Option<String>,
}

/// Which receipts to show. Every field narrows; none set shows everything.
#[derive(Debug, Clone, Default, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
#[ts(optional_fields)]
pub struct ActivityFilter {
    /// Only this agent's (its id).
    pub agent: Option<String>,
    /// Only those made under this grant.
    pub grant: Option<String>,
    /// Only this action type.
    pub kind: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only verified or only failed ones.
    pub status: Option<ReceiptStatus>,
    /// Acted at or after (unix seconds).
    pub from: Option<i64>,
    /// Acted before (unix seconds).
    pub to: Option<i64>,
    /// Words in the summary or the rationale (all of them, as prefixes).
    pub text: Option<String>,
    /// The page after this row: the last row's `seq`.
    pub after: Option<i64>,
    /// How many rows, at most 1000; 200 when unset.
    pub limit: Option<u32>,
}

/// What one sync of the receipt feed brought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Receipts new to the history.
    pub new: usize,
    /// Of those, the ones that failed verification.
    pub failed: usize,
}

/// The columns of an [`ActivityRow`], over `receipts r`: the agents' names
/// come from the requests through [`agent_name_sql`], the one place that
/// reads them from the requests' table.
static ROW_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let agent = agent_name_sql("r.principal", "r.agent");
    // The agent that delegated the grant the receipt was made under.
    let delegator = agent_name_sql(
        "r.principal",
        "(SELECT p.grantee FROM grants g JOIN grants p ON p.id = g.parent WHERE g.id = r.grant_id)",
    );
    format!(
        "r.seq, r.id, r.grant_id, r.agent, {agent} AS agent_name, {delegator} AS delegated_by, \
         r.kind, r.target, r.summary, r.rationale, r.outcome, r.at, r.received_at, r.status, \
         r.error, r.reported_at, r.witness, r.trace"
    )
});

/// The rows of `receipts` whose id may be the one bound (twice): those under
/// its key in either table of ids (migration 0005). The caller compares the
/// whole id.
/// Bind the id's key ([`id_key`]) to both places.
const SEQ_OF_ID: &str = "(SELECT seq FROM receipt_ids WHERE key = ?
     UNION ALL SELECT seq FROM receipt_ids_recent WHERE key = ?)";

/// How many of an id's first characters are its key in the tables of ids
/// (fixed by migration 0005, which fills them).
const ID_KEY_LEN: usize = 10;

/// The key an id is held under: its first [`ID_KEY_LEN`] characters.
fn id_key(id: &str) -> &str {
    id.char_indices()
        .nth(ID_KEY_LEN)
        .map_or(id, |(end, _)| &id[..end])
}

/// An agent id's fingerprint, or the id itself when it is not one.
fn fingerprint(agent: &str) -> String {
    agent
        .parse::<mandate_core::AgentId>()
        .map_or_else(|_| agent.to_owned(), |a| a.fingerprint())
}

fn outcome_str(o: mandate_core::token::Outcome) -> &'static str {
    match o {
        mandate_core::token::Outcome::Succeeded => "succeeded",
        mandate_core::token::Outcome::Failed => "failed",
        mandate_core::token::Outcome::Refused => "refused",
    }
}
