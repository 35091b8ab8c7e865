//! "Deny always" rules the broker enforces, and the recent denials a
//! cooldown looks at.

use mandate_core::{Principal, Thumbprint, TokenId};

use crate::{Store, StoreError, on_pool};

/// A user's block of one agent key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// The agent key blocked.
    pub agent: String,
    /// The id of the policy token that asked for it.
    pub policy_id: String,
    /// The compact policy token.
    pub policy: String,
    /// The user's name for it, from the policy.
    pub label: Option<String>,
    /// When the broker stored it.
    pub created_at: i64,
    /// When it ends.
    pub expires_at: i64,
    /// How many requests it refused.
    pub refusals: i64,
}

/// A block to store: the verified policy's facts and the token.
#[derive(Debug, Clone)]
pub struct NewBlock<'a> {
    /// The user whose rule it is.
    pub principal: &'a Principal,
    /// The agent key it blocks.
    pub agent: &'a Thumbprint,
    /// The policy token's id.
    pub policy_id: &'a TokenId,
    /// The compact policy token.
    pub policy: &'a str,
    /// Its label.
    pub label: Option<&'a str>,
    /// Now.
    pub created_at: i64,
    /// The policy's `exp`.
    pub expires_at: i64,
}

type BlockRow = (String, String, String, Option<String>, i64, i64, i64);

fn record(
    (agent, policy_id, policy, label, created_at, expires_at, refusals): BlockRow,
) -> BlockRecord {
    BlockRecord {
        agent,
        policy_id,
        policy,
        label,
        created_at,
        expires_at,
        refusals,
    }
}

impl Store {
    /// Stores a block, replacing the user's earlier one of the same agent
    /// (and its count).
    pub async fn put_block(&self, b: &NewBlock<'_>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            sqlx::query(
                "INSERT INTO blocks (principal, agent_jkt, policy_id, policy, label, created_at, expires_at, refusals) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0) \
                 ON CONFLICT (principal, agent_jkt) DO UPDATE SET policy_id = excluded.policy_id, \
                 policy = excluded.policy, label = excluded.label, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at, refusals = 0",
            )
            .bind(b.principal.as_str())
            .bind(b.agent.to_string())
            .bind(b.policy_id.to_string())
            .bind(b.policy)
            .bind(b.label)
            .bind(b.created_at)
            .bind(b.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Whether the user blocks any of `agents` at `now`; if so, counts one
    /// refusal against each such block, in the same statement.
    pub async fn refuse_if_blocked(
        &self,
        principal: &Principal,
        agents: &[&Thumbprint],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut refused = false;
        for agent in agents {
            let n = on_pool!(self, pool => {
                let _writing = self.writing().await;
                sqlx::query(
                    "UPDATE blocks SET refusals = refusals + 1 \
                     WHERE principal = $1 AND agent_jkt = $2 AND expires_at > $3",
                )
                .bind(principal.as_str())
                .bind(agent.to_string())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
            });
            refused |= n > 0;
        }
        Ok(refused)
    }

    /// The user's blocks standing at `now`, newest first.
    pub async fn blocks(
        &self,
        principal: &Principal,
        now: i64,
    ) -> Result<Vec<BlockRecord>, StoreError> {
        let rows: Vec<BlockRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT agent_jkt, policy_id, policy, label, created_at, expires_at, refusals FROM blocks \
                 WHERE principal = $1 AND expires_at > $2 ORDER BY created_at DESC, agent_jkt",
            )
            .bind(principal.as_str())
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(record).collect())
    }

    /// Lifts the user's block of `agent`; whether there was one.
    pub async fn lift_block(
        &self,
        principal: &Principal,
        agent: &Thumbprint,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            let _writing = self.writing().await;
            sqlx::query("DELETE FROM blocks WHERE principal = $1 AND agent_jkt = $2")
                .bind(principal.as_str())
                .bind(agent.to_string())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// The request tokens the user denied from `agent` since `since`, with
    /// when, newest first, at most `limit`.
    pub async fn recent_denials(
        &self,
        principal: &Principal,
        agent: &Thumbprint,
        since: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT token, decided_at FROM requests WHERE principal = $1 AND agent_jkt = $2 \
                 AND status = 'denied' AND decided_at >= $3 ORDER BY decided_at DESC LIMIT $4",
            )
            .bind(principal.as_str())
            .bind(agent.to_string())
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
