//! A receipt traced back: user intent, agent interpretation, agent
//! decision, sub-agent action.

use mandate_core::{Ledger, PublicKey, Step};
use serde::Serialize;

use super::{ActivityRow, ReceiptStatus, SEQ_OF_ID, id_key, outcome_str};
use crate::ClientError;
use crate::history::History;

/// One step of an attribution chain, as the page shows it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct StepView {
    /// `intent`, `interpretation`, `decision`, `action` or `missing`.
    pub step: String,
    /// Who: the user, or the agent's name or fingerprint.
    pub who: String,
    /// The agent's fingerprint, for agents.
    pub fingerprint: Option<String>,
    /// What: the intent, the purpose, or the action's summary.
    pub text: String,
    /// More: the rationale, who delegated, the outcome.
    pub detail: Option<String>,
    /// The token behind the step (a grant or a receipt), if known.
    pub token_id: Option<String>,
    /// Whether that token's signature verified here.
    pub signature: ReceiptStatus,
}

/// Why an action happened, from the user's intent down to it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AttributionView {
    /// The receipt explained.
    pub receipt: ActivityRow,
    /// The steps, intent first.
    pub steps: Vec<StepView>,
    /// Whether every grant and receipt referred to was known.
    pub complete: bool,
}

impl History {
    /// Explains receipt `id`: every grant and cause on its way is verified
    /// again, here and now, from the tokens the history holds.
    pub async fn attribution(
        &self,
        principal: &str,
        user: &PublicKey,
        id: &str,
    ) -> Result<AttributionView, ClientError> {
        let (row, token) = self
            .receipt_row(principal, id)
            .await?
            .ok_or(ClientError::NotFound)?;
        let mut checker = self.checker(principal, user).await?;
        let mut receipts = Vec::new();
        let mut links = Vec::new();
        let mut next = Some((row.grant_id.clone(), token, row.at));
        // The receipt, then its causes while they are receipts held here.
        while let Some((grant, token, _)) = next.take() {
            if receipts.len() > 64 {
                break;
            }
            let chain = self.chain_to(principal, &grant).await?;
            let id = mandate_core::token::receipt_id(&token).to_string();
            let (at, witness): (i64, Option<String>) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT received_at, witness FROM receipts WHERE seq IN {SEQ_OF_ID} AND id = ?"
                )))
                .bind(id_key(&id))
                .bind(id_key(&id))
                .bind(&id)
                .fetch_optional(self.pool())
                .await?
                .unwrap_or((row.at, None));
            let Ok(receipt) = checker.receipt(&token, &chain, at, witness.as_deref()) else {
                break;
            };
            if let Ok(verified) = checker.chain(&chain, at) {
                links.extend(verified.links().cloned());
            }
            let cause = receipt.claims().cause;
            receipts.push(receipt);
            if let Some(cause) = cause
                && let Some((c, t)) = self.receipt_row(principal, &cause.to_string()).await?
                && c.status == ReceiptStatus::Verified
            {
                next = Some((c.grant_id, t, c.at));
            }
        }
        if receipts.is_empty() {
            // The receipt itself does not verify: say so, and nothing more.
            let step = StepView {
                step: "action".into(),
                who: row
                    .agent_name
                    .clone()
                    .unwrap_or_else(|| row.agent_fingerprint.clone()),
                fingerprint: Some(row.agent_fingerprint.clone()),
                text: row.summary.clone(),
                detail: row.error.clone(),
                token_id: Some(row.id.clone()),
                signature: ReceiptStatus::Failed,
            };
            return Ok(AttributionView {
                receipt: row,
                steps: vec![step],
                complete: false,
            });
        }
        let names = self.agent_names(principal).await?;
        let who = |agent: &mandate_core::AgentId| {
            let id = agent.to_string();
            names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| agent.fingerprint())
        };
        let user_jkt = checker.user();
        let ledger = Ledger::new(links.iter(), receipts.iter());
        let explained = ledger
            .attribute(&receipts[0].id())
            .ok_or(ClientError::NotFound)?;
        let steps = explained
            .steps
            .iter()
            .map(|s| match s {
                Step::Intent { principal, text } => StepView {
                    step: "intent".into(),
                    who: "You".into(),
                    fingerprint: None,
                    text: text
                        .clone()
                        .unwrap_or_else(|| "(no instruction was recorded)".into()),
                    detail: Some(principal.as_str().to_owned()),
                    token_id: None,
                    signature: ReceiptStatus::Verified,
                },
                Step::Interpretation {
                    grant,
                    issuer,
                    agent,
                    purpose,
                } => StepView {
                    step: "interpretation".into(),
                    who: who(agent),
                    fingerprint: Some(agent.fingerprint()),
                    text: purpose.clone(),
                    detail: Some(if *issuer == user_jkt {
                        "granted by you".into()
                    } else {
                        format!(
                            "delegated by {}",
                            who(&mandate_core::AgentId::from_thumbprint(*issuer))
                        )
                    }),
                    token_id: Some(grant.to_string()),
                    signature: ReceiptStatus::Verified,
                },
                Step::Decision(a) | Step::Action(a) => StepView {
                    step: if matches!(s, Step::Decision(_)) {
                        "decision".into()
                    } else {
                        "action".into()
                    },
                    who: who(&a.agent),
                    fingerprint: Some(a.agent.fingerprint()),
                    text: a.action.summary.clone(),
                    detail: Some(match &a.rationale {
                        Some(r) => format!("{} — {r}", outcome_str(a.outcome)),
                        None => outcome_str(a.outcome).to_owned(),
                    }),
                    token_id: Some(a.receipt.to_string()),
                    signature: ReceiptStatus::Verified,
                },
                Step::Missing { id } => StepView {
                    step: "missing".into(),
                    who: "unknown".into(),
                    fingerprint: None,
                    text: "a grant or receipt this history does not hold".into(),
                    detail: None,
                    token_id: Some(id.to_string()),
                    signature: ReceiptStatus::Failed,
                },
            })
            .collect();
        Ok(AttributionView {
            receipt: row,
            steps,
            complete: explained.complete,
        })
    }
}
