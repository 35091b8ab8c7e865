//! The event log: each event's hash covers the one before it, and the
//! chain's head is signed with the user key. [`History::verify_log`] walks
//! it and cross-checks the rows it speaks of: this module's own tables,
//! and the rows another part hands it (the receipts marked reported, in
//! [`History::verify`], which checks the receipts' chain too).

use mandate_core::base64url as b64;
use mandate_core::{PublicKey, SigningKey};
use sha2::{Digest as _, Sha256};
use sqlx::{Row as _, SqliteConnection};

use std::collections::HashSet;

use super::{Event, History};
use crate::ClientError;

/// What signs a chain's head: the detached-signature context.
const HEAD_CONTEXT: &str = "mandate-history-head/v1";
/// What each event hash starts with.
const EVENT_DOMAIN: &[u8] = b"mandate-history-event/v1";

impl History {
    /// The event log of `principal`, oldest first.
    pub async fn events(&self, principal: &str) -> Result<Vec<Event>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT seq, at, kind, subject, token, prev, hash FROM events WHERE principal = ? ORDER BY seq",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Checks the event chain of `principal`: every event's hash and
    /// link, the head's signature under `user_key`, and the rows the events
    /// speak of, with `reported` the ids of the receipts marked reported.
    /// The first break is an error naming the event. Returns how many
    /// events the chain holds and its head.
    pub(crate) async fn verify_log(
        &self,
        principal: &str,
        user_key: &PublicKey,
        reported: HashSet<String>,
    ) -> Result<(i64, String), ClientError> {
        let events = self.events(principal).await?;
        let mut prev = [0u8; 32];
        for e in &events {
            let broken = |what: &str| ClientError::Tampered(format!("event {}: {what}", e.seq));
            if decode_hash(&e.prev) != Some(prev) {
                return Err(broken("does not follow the event before it"));
            }
            let hash = event_hash(
                &prev,
                e.seq,
                principal,
                e.at,
                &e.kind,
                &e.subject,
                e.token.as_deref(),
            );
            if decode_hash(&e.hash) != Some(hash) {
                return Err(broken("its content does not match its hash"));
            }
            prev = hash;
        }
        let head = sqlx::query("SELECT seq, hash, signature FROM heads WHERE principal = ?")
            .bind(principal)
            .fetch_optional(&self.pool)
            .await?;
        let Some(head) = head else {
            return if events.is_empty() {
                Ok((0, b64::encode(prev)))
            } else {
                Err(ClientError::Tampered("the signed head is missing".into()))
            };
        };
        let seq: i64 = head.try_get("seq")?;
        let hash: String = head.try_get("hash")?;
        let signature: String = head.try_get("signature")?;
        let last = events.last().map_or(0, |e| e.seq);
        if seq != last || decode_hash(&hash) != Some(prev) {
            return Err(ClientError::Tampered(
                "the signed head is not the last event (events were added or cut off)".into(),
            ));
        }
        let signature: [u8; 64] = b64::decode(&signature)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| ClientError::Tampered("the head's signature is malformed".into()))?;
        user_key
            .verify_detached(
                HEAD_CONTEXT,
                &head_message(principal, seq, &prev),
                &signature,
            )
            .map_err(|_| ClientError::Tampered("the head's signature does not verify".into()))?;
        self.check_rows(principal, &events, reported).await?;
        Ok((events.len() as i64, hash))
    }

    /// Checks the rows the screens read against the verified event log,
    /// both ways: each event that records a request, decision, revocation
    /// or report must find its row holding the very token it recorded (in
    /// log order, so the first mismatch named is the earliest), and no
    /// such row may exist without its event.
    async fn check_rows(
        &self,
        principal: &str,
        events: &[Event],
        mut reported: HashSet<String>,
    ) -> Result<(), ClientError> {
        let table = |sql: &'static str| async move {
            let rows: Vec<(String, String)> = sqlx::query_as(sql)
                .bind(principal)
                .fetch_all(&self.pool)
                .await?;
            Ok::<_, ClientError>(
                rows.into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
        };
        let mut requests = table("SELECT id, request FROM requests WHERE principal = ?").await?;
        let mut decisions =
            table("SELECT request_id, token FROM decisions WHERE principal = ?").await?;
        let mut revocations =
            table("SELECT token_id, token FROM revocations WHERE principal = ?").await?;
        let mut reissues =
            table("SELECT token_id, token FROM reissues WHERE principal = ?").await?;
        for e in events {
            let (rows, what) = match e.kind.as_str() {
                "request.seen" => (&mut requests, "request"),
                "grant.signed" | "denial.signed" => (&mut decisions, "decision"),
                "revocation.signed" => (&mut revocations, "revocation"),
                "grant.reissued" => (&mut reissues, "re-issued grant"),
                "receipt.reported" => {
                    if !reported.remove(&e.subject) {
                        return Err(ClientError::Tampered(format!(
                            "event {} reports receipt {}, which is not marked reported",
                            e.seq, e.subject
                        )));
                    }
                    continue;
                }
                _ => continue,
            };
            match rows.remove(&e.subject) {
                Some(token) if Some(token.as_str()) == e.token.as_deref() => {}
                Some(_) => {
                    return Err(ClientError::Tampered(format!(
                        "{what} {}: its row was altered (event {} recorded another token)",
                        e.subject, e.seq
                    )));
                }
                None => {
                    return Err(ClientError::Tampered(format!(
                        "{what} {}: its row is missing (event {} recorded it)",
                        e.subject, e.seq
                    )));
                }
            }
        }
        for (rows, what) in [
            (requests, "request"),
            (decisions, "decision"),
            (revocations, "revocation"),
            (reissues, "re-issued grant"),
        ] {
            if let Some(id) = rows.keys().min() {
                return Err(ClientError::Tampered(format!(
                    "{what} {id}: a row no event recorded"
                )));
            }
        }
        if let Some(id) = reported.iter().min() {
            return Err(ClientError::Tampered(format!(
                "receipt {id}: marked reported, but no report was recorded"
            )));
        }
        Ok(())
    }
}

/// Appends an event to `principal`'s chain and signs the new head, inside
/// the caller's transaction.
pub(crate) async fn append(
    tx: &mut SqliteConnection,
    key: &SigningKey,
    principal: &str,
    at: i64,
    kind: &str,
    subject: &str,
    token: Option<&str>,
) -> Result<(), ClientError> {
    let last: Option<String> =
        sqlx::query_scalar("SELECT hash FROM events WHERE principal = ? ORDER BY seq DESC LIMIT 1")
            .bind(principal)
            .fetch_optional(&mut *tx)
            .await?;
    let prev = match last {
        Some(h) => decode_hash(&h)
            .ok_or_else(|| ClientError::Tampered("the last event's hash is malformed".into()))?,
        None => [0u8; 32],
    };
    let seq: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) + 1 FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let hash = event_hash(&prev, seq, principal, at, kind, subject, token);
    let hash_text = b64::encode(hash);
    sqlx::query(
        "INSERT INTO events (seq, principal, at, kind, subject, token, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(principal)
    .bind(at)
    .bind(kind)
    .bind(subject)
    .bind(token)
    .bind(b64::encode(prev))
    .bind(&hash_text)
    .execute(&mut *tx)
    .await
    ?;
    let signature = key.sign_detached(HEAD_CONTEXT, &head_message(principal, seq, &hash));
    sqlx::query(
        "INSERT INTO heads (principal, seq, hash, signature) VALUES (?, ?, ?, ?)
         ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature",
    )
    .bind(principal)
    .bind(seq)
    .bind(&hash_text)
    .bind(b64::encode(signature))
    .execute(&mut *tx)
    .await
    .map_err(ClientError::from)
    .map(drop)
}

/// The hash of one event: SHA-256 over a domain tag, the previous hash,
/// the sequence number and time (8 bytes each, big endian), and each text
/// field with a 4-byte length (the token with a presence byte first).
fn event_hash(
    prev: &[u8; 32],
    seq: i64,
    principal: &str,
    at: i64,
    kind: &str,
    subject: &str,
    token: Option<&str>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(EVENT_DOMAIN);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [principal, kind, subject] {
        field_into(&mut h, field);
    }
    match token {
        Some(t) => {
            h.update([1]);
            field_into(&mut h, t);
        }
        None => h.update([0]),
    }
    h.finalize().into()
}

pub(crate) fn field_into(h: &mut Sha256, field: &str) {
    h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(field.as_bytes());
}

/// What the head's signature covers: the principal, the head's sequence
/// number and its hash.
pub(crate) fn head_message(principal: &str, seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(principal.len() + 44);
    m.extend_from_slice(
        &u32::try_from(principal.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(principal.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

pub(crate) fn decode_hash(text: &str) -> Option<[u8; 32]> {
    b64::decode(text)?.try_into().ok()
}
