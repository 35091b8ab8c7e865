//! The requests the user was shown: recorded as they arrive, listed,
//! and marked when the broker no longer holds them.

use mandate_core::token::RequestClaims;
use mandate_core::{Policy, SigningKey};
use sqlx::Row as _;

use super::log::append;
use super::{History, RequestState, StoredRequest};
use crate::ClientError;
use crate::broker::InboxItem;

/// The name the agent `agent` last gave the user `principal` in a
/// request, as an SQL scalar subquery over two SQL expressions: for other
/// parts' queries that show agents' names beside their own rows, so that
/// they need not read the requests' table themselves. NULL when it never
/// asked.
pub(crate) fn agent_name_sql(principal: &str, agent: &str) -> String {
    format!(
        "(SELECT q.agent_name FROM requests q WHERE q.principal = {principal} \
         AND q.agent_id = {agent} ORDER BY q.received_at DESC LIMIT 1)"
    )
}

impl History {
    /// Records a request from the inbox, once. Returns whether it was new.
    pub async fn record_request(
        &self,
        key: &SigningKey,
        principal: &str,
        item: &InboxItem,
        now: i64,
    ) -> Result<bool, ClientError> {
        // Only a request that verifies is kept (and ever shown).
        let asked = RequestClaims::verify(&item.request, &Policy::default(), item.received_at)?;
        let agent_id = asked.signer().agent_id().to_string();
        let agent_name = asked.claims().agent.name.clone();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let chain = serde_json::to_string(&item.parent_chain)
            .map_err(|e| ClientError::History(e.to_string()))?;
        let keys =
            serde_json::to_string(&item.keys).map_err(|e| ClientError::History(e.to_string()))?;
        let tools =
            serde_json::to_string(&item.tools).map_err(|e| ClientError::History(e.to_string()))?;
        let id = item.id.to_string();
        let inserted = sqlx::query(
            "INSERT INTO requests (id, principal, request, agent_id, agent_name, agent_skeleton,
               parent_chain, parent_keys, received_at, expires_at, state, tools, denied_before)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(principal)
        .bind(&item.request)
        .bind(&agent_id)
        .bind(&agent_name)
        .bind(crate::names::skeleton(&agent_name))
        .bind(&chain)
        .bind(&keys)
        .bind(item.received_at)
        .bind(item.expires_at)
        .bind(&tools)
        .bind(item.denied_before)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted && !item.tools.is_empty() {
            // What the servers say may reach the broker after the request
            // did: a pending request takes the latest the broker serves
            // (written only when it differs: the inbox is read often).
            sqlx::query(
                "UPDATE requests SET tools = ? WHERE principal = ? AND id = ? AND state = 'pending'
                   AND tools <> ?",
            )
            .bind(&tools)
            .bind(principal)
            .bind(&id)
            .bind(&tools)
            .execute(&mut *tx)
            .await?;
        }
        if inserted {
            append(
                &mut tx,
                key,
                principal,
                now,
                "request.seen",
                &id,
                Some(&item.request),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Which of `ids` the history holds a request of `principal` by: a
    /// read of those ids only, however long the history.
    pub async fn known_among(
        &self,
        principal: &str,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, ClientError> {
        if ids.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let ids = id_list(ids)?;
        let known: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM requests
             WHERE principal = ? AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(principal)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(known.into_iter().collect())
    }

    /// The ids of the requests of `principal` pending now, newest first
    /// (the order of [`History::requests`]), without reading the requests.
    pub async fn pending_ids(&self, principal: &str) -> Result<Vec<String>, ClientError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM requests WHERE principal = ? AND state = ?
             ORDER BY received_at DESC, id",
        )
        .bind(principal)
        .bind(RequestState::Pending)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The requests of `principal` among `ids`, newest first; an id it
    /// holds no request by is left out.
    pub async fn requests_among(
        &self,
        principal: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredRequest>, ClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = id_list(ids)?;
        let rows = sqlx::query(
            "SELECT * FROM requests
             WHERE principal = ? AND id IN (SELECT value FROM json_each(?))
             ORDER BY received_at DESC, id",
        )
        .bind(principal)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_of).collect()
    }

    /// The requests of `principal`, newest first; only those in `state`
    /// if given.
    pub async fn requests(
        &self,
        principal: &str,
        state: Option<RequestState>,
    ) -> Result<Vec<StoredRequest>, ClientError> {
        let rows = sqlx::query(
            "SELECT * FROM requests WHERE principal = ? AND (? IS NULL OR state = ?)
             ORDER BY received_at DESC, id",
        )
        .bind(principal)
        .bind(state)
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_of).collect()
    }

    /// One request of `principal`.
    pub async fn request(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<Option<StoredRequest>, ClientError> {
        let row = sqlx::query("SELECT * FROM requests WHERE principal = ? AND id = ?")
            .bind(principal)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_of).transpose()
    }

    /// What the history knows of the agent behind request `id`: whether
    /// its key asked before, and, for a key that did not, whether another
    /// key used a look-alike name before (a known name with a new key).
    pub async fn agent_record(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<(bool, bool), ClientError> {
        let row = sqlx::query(
            "SELECT
               EXISTS (SELECT 1 FROM requests o WHERE o.principal = r.principal
                       AND o.agent_id = r.agent_id AND o.received_at <= r.received_at AND o.id <> r.id),
               EXISTS (SELECT 1 FROM requests o WHERE o.principal = r.principal
                       AND o.agent_skeleton = r.agent_skeleton AND o.agent_id <> r.agent_id
                       AND o.received_at <= r.received_at)
             FROM requests r WHERE r.principal = ? AND r.id = ?",
        )
        .bind(principal)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        ?
        .ok_or(ClientError::NotFound)?;
        let known = row.try_get::<bool, _>(0)?;
        let name_taken = row.try_get::<bool, _>(1)?;
        Ok((known, name_taken && !known))
    }

    /// The names agents gave themselves, by agent id (the latest name of
    /// each).
    pub async fn agent_names(
        &self,
        principal: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ClientError> {
        let rows = sqlx::query(
            "SELECT agent_id, agent_name FROM requests WHERE principal = ? ORDER BY received_at",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("agent_id")?, r.try_get("agent_name")?)))
            .collect()
    }

    /// The pending requests of `principal`, each with its parent chain
    /// (the JSON array of the grants above the asking agent, as recorded).
    pub(crate) async fn pending_parent_chains(
        &self,
        principal: &str,
    ) -> Result<Vec<(String, String)>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT id, parent_chain FROM requests WHERE principal = ? AND state = 'pending'",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a binding code typed for the pending request `id`: matched,
    /// or one more miss. Returns the misses so far.
    pub async fn note_code(
        &self,
        principal: &str,
        id: &str,
        matched: bool,
    ) -> Result<i64, ClientError> {
        let sql = if matched {
            "UPDATE requests SET code_matched = 1 WHERE principal = ? AND id = ? AND state = 'pending'
             RETURNING code_misses"
        } else {
            "UPDATE requests SET code_misses = code_misses + 1
             WHERE principal = ? AND id = ? AND state = 'pending' RETURNING code_misses"
        };
        sqlx::query_scalar(sql)
            .bind(principal)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// Flags request `id`: the user should look at who sent it. Logged.
    pub async fn flag_request(
        &self,
        key: &SigningKey,
        principal: &str,
        id: &str,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE requests SET flagged = 1 WHERE principal = ? AND id = ?")
            .bind(principal)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, key, principal, now, "request.flagged", id, None).await?;
        tx.commit().await.map_err(ClientError::from)
    }

    /// Marks the pending requests of `principal` that the broker no longer
    /// lists as pending (they lapsed, or were decided on another device)
    /// expired, keeping those in `still_pending`. Returns how many.
    pub async fn expire_missing(
        &self,
        principal: &str,
        still_pending: &[String],
    ) -> Result<usize, ClientError> {
        let still_pending: std::collections::HashSet<&str> =
            still_pending.iter().map(String::as_str).collect();
        let mut expired = 0;
        for id in self.pending_ids(principal).await? {
            if !still_pending.contains(id.as_str()) {
                expired += sqlx::query(
                    "UPDATE requests SET state = 'expired' WHERE id = ? AND state = 'pending'",
                )
                .bind(&id)
                .execute(&self.pool)
                .await?
                .rows_affected() as usize;
            }
        }
        Ok(expired)
    }
}

/// `ids` as the JSON array that `json_each(?)` reads: one bound value for
/// a list of any length, where `IN (?, ?, …)` would meet SQLite's limit on
/// bound values.
fn id_list(ids: &[&str]) -> Result<String, ClientError> {
    serde_json::to_string(ids).map_err(|e| ClientError::History(format!("request ids: {e}")))
}

fn request_of(r: &sqlx::sqlite::SqliteRow) -> Result<StoredRequest, ClientError> {
    let chain: String = r.try_get("parent_chain")?;
    let keys: String = r.try_get("parent_keys")?;
    let tools: String = r.try_get("tools")?;
    Ok(StoredRequest {
        id: r.try_get("id")?,
        request: r.try_get("request")?,
        parent_chain: serde_json::from_str(&chain)
            .map_err(|e| ClientError::History(e.to_string()))?,
        parent_keys: serde_json::from_str(&keys)
            .map_err(|e| ClientError::History(e.to_string()))?,
        tools: serde_json::from_str(&tools).map_err(|e| ClientError::History(e.to_string()))?,
        received_at: r.try_get("received_at")?,
        expires_at: r.try_get("expires_at")?,
        state: r.try_get("state")?,
        denied_before: r.try_get("denied_before")?,
        code_misses: r.try_get("code_misses")?,
        code_matched: r.try_get("code_matched")?,
        flagged: r.try_get("flagged")?,
    })
}
