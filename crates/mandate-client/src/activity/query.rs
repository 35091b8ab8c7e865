//! Reading the timeline: filtered pages, one receipt, the chain and keys
//! behind it, and the user's report of one.

use mandate_core::Jwk;
use mandate_core::token::{GrantClaims, peek};
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{ActivityFilter, ActivityRow, ROW_COLUMNS, SEQ_OF_ID, fingerprint, id_key};
use crate::ClientError;
use crate::history::History;

impl History {
    /// A page of `principal`'s activity, newest first (by arrival).
    pub async fn activity(
        &self,
        principal: &str,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivityRow>, ClientError> {
        // With words to find, the full-text index leads, newest first, and
        // each match is looked up; otherwise the filter's index does.
        let text = filter.text.as_deref().and_then(fts_query).map(|words| {
            let words = format!("{{summary rationale}} : ({words})");
            match &filter.agent {
                Some(agent) => format!("{words} AND agent : \"{}\"", agent_token(agent)),
                None => words,
            }
        });
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
        q.push(ROW_COLUMNS.as_str());
        match &text {
            Some(words) => {
                // CROSS JOIN keeps the full-text index the outer loop
                // (SQLite would otherwise lead with the agent's index and
                // sort every match).
                q.push(" FROM receipts_text t CROSS JOIN receipts r ON r.seq = t.rowid WHERE receipts_text MATCH ")
                    .push_bind(words.clone())
                    .push(" AND r.principal = ")
                    .push_bind(principal);
            }
            None => {
                q.push(" FROM receipts r WHERE r.principal = ")
                    .push_bind(principal);
            }
        }
        if let Some(agent) = &filter.agent {
            q.push(" AND r.agent = ").push_bind(agent);
        }
        if let Some(grant) = &filter.grant {
            q.push(" AND r.grant_id = ").push_bind(grant);
        }
        if let Some(kind) = &filter.kind {
            q.push(" AND r.kind = ").push_bind(kind);
        }
        if let Some(outcome) = &filter.outcome {
            q.push(" AND r.outcome = ").push_bind(outcome);
        }
        if let Some(status) = filter.status {
            q.push(" AND r.status = ").push_bind(status);
        }
        if let Some(from) = filter.from {
            q.push(" AND r.at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            q.push(" AND r.at < ").push_bind(to);
        }
        if let Some(seq) = filter.after {
            q.push(" AND r.seq < ").push_bind(seq);
        }
        q.push(match text {
            Some(_) => " ORDER BY t.rowid DESC LIMIT ",
            None => " ORDER BY r.seq DESC LIMIT ",
        });
        q.push_bind(i64::from(filter.limit.unwrap_or(200).clamp(1, 1000)));
        let mut rows: Vec<ActivityRow> = q.build_query_as().fetch_all(self.pool()).await?;
        for row in &mut rows {
            row.agent_fingerprint = fingerprint(&row.agent);
        }
        Ok(rows)
    }

    /// One receipt as the timeline shows it, and its compact token.
    pub async fn receipt_row(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<Option<(ActivityRow, String)>, ClientError> {
        let sql = format!(
            "SELECT {}, r.token FROM receipts r
             WHERE r.seq IN {SEQ_OF_ID} AND r.principal = ? AND r.id = ?",
            ROW_COLUMNS.as_str()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_key(id))
            .bind(id_key(id))
            .bind(principal)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let token: String = sqlx::Row::try_get(&row, "token")?;
        let mut activity = ActivityRow::from_row(&row)?;
        activity.agent_fingerprint = fingerprint(&activity.agent);
        Ok(Some((activity, token)))
    }

    /// The chain down to grant `leaf`, root first, as far as the history
    /// holds it.
    pub async fn chain_to(&self, principal: &str, leaf: &str) -> Result<Vec<String>, ClientError> {
        let mut chain = Vec::new();
        let mut next = Some(leaf.to_owned());
        while let Some(id) = next.take() {
            if chain.len() == mandate_core::MAX_CHAIN_LINKS {
                break;
            }
            let row: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT token, parent FROM grants WHERE principal = ? AND id = ?")
                    .bind(principal)
                    .bind(&id)
                    .fetch_optional(self.pool())
                    .await?;
            if let Some((token, parent)) = row {
                chain.push(token);
                next = parent;
            }
        }
        chain.reverse();
        Ok(chain)
    }

    /// The public keys of the agents named along `chain`.
    pub async fn keys_of(&self, chain: &[String]) -> Result<Vec<Jwk>, ClientError> {
        let mut keys = Vec::new();
        for grant in chain {
            let Ok((_, claims)) = peek::<GrantClaims>(grant) else {
                continue;
            };
            if let Some(jwk) = self.key_of(&claims.cnf.jkt.to_string()).await? {
                keys.push(jwk);
            }
        }
        Ok(keys)
    }

    /// The public key of thumbprint `jkt` the history holds: an agent's,
    /// or a witness's, as a receipt brought it.
    pub async fn key_of(&self, jkt: &str) -> Result<Option<Jwk>, ClientError> {
        let jwk: Option<String> = sqlx::query_scalar("SELECT jwk FROM agent_keys WHERE jkt = ?")
            .bind(jkt)
            .fetch_optional(self.pool())
            .await?;
        Ok(jwk.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Marks a receipt as reported by the user, with an event in the
    /// signed history, in one transaction. Reporting twice changes nothing.
    pub async fn report_receipt(
        &self,
        key: &mandate_core::SigningKey,
        principal: &str,
        id: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<bool, ClientError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let marked = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE receipts SET reported_at = ?
             WHERE seq IN {SEQ_OF_ID} AND principal = ? AND id = ? AND reported_at IS NULL"
        )))
        .bind(now)
        .bind(id_key(id))
        .bind(id_key(id))
        .bind(principal)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            let known: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT seq FROM receipts WHERE seq IN {SEQ_OF_ID} AND principal = ? AND id = ?"
            )))
            .bind(id_key(id))
            .bind(id_key(id))
            .bind(principal)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return match known {
                Some(_) => Ok(false),
                None => Err(ClientError::NotFound),
            };
        }
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        crate::history::append(&mut tx, key, principal, now, "receipt.reported", id, note).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The search token the full-text index holds for an agent: `a` and the
/// last 24 letters and digits of its id (the trigger in migration 0003
/// computes the same). Only a pre-filter: the agent is checked exactly.
fn agent_token(agent: &str) -> String {
    let kept: Vec<char> = agent
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ':'))
        .collect();
    let tail: String = kept[kept.len().saturating_sub(24)..].iter().collect();
    format!("a{}", tail.replace('"', ""))
}

/// The user's words as an FTS5 query: each word quoted (so no word is
/// read as an operator), all of them required. A word matches whole words;
/// one that ends in `*` matches words that begin with it (a prefix walks
/// every matching word's entries, so it is asked for, not the default).
/// `None` when there is no word.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(stem) => (stem.trim_end_matches('*'), true),
                None => (w, false),
            };
            (!word.is_empty()).then(|| {
                let quoted = format!("\"{}\"", word.replace('"', "\"\""));
                if prefix { format!("{quoted}*") } else { quoted }
            })
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_token_is_the_tail_of_its_id_without_separators() {
        assert_eq!(
            agent_token(
                "urn:ietf:params:oauth:jwk-thumbprint:sha-256:Ab-cd_EF0123456789abcdefghijXYZ"
            ),
            "aF0123456789abcdefghijXYZ"
        );
        assert_eq!(agent_token("x"), "ax");
    }

    #[test]
    fn user_words_never_become_fts_operators() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(fts_query("*"), None);
        assert_eq!(fts_query("pods"), Some("\"pods\"".into()));
        assert_eq!(fts_query("pod*"), Some("\"pod\"*".into()));
        assert_eq!(
            fts_query("NOT \"x OR y*"),
            Some("\"NOT\" \"\"\"x\" \"OR\" \"y\"*".into())
        );
    }
}
