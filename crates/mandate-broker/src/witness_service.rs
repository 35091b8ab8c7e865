//! Witness receipts: a resource server the broker trusts as the witness
//! for its resource (`--witness URI=JKT`) reports the calls agents made to
//! it, signed with its own key (`mandate-witness+jwt`, docs/protocol.md
//! 4.10). They join the user's receipt feed beside the agents' own.

use std::collections::HashMap;
use std::sync::PoisonError;

use mandate_core::token::{RequestClaims, ToolsClaims, WitnessClaims};
use mandate_core::{Jwk, PublicKey, Thumbprint, TokenId};
use mandate_store::{GrantRecord, ReceiptRecord};
use serde::Serialize;

use crate::error::Code;
use crate::{ApiError, AppState};

/// The most witness receipts one report carries.
pub const MAX_BATCH: usize = 100;

/// How old a witness receipt may be when it arrives, in seconds: a witness
/// reports as it goes, and retries for a few minutes at most.
pub const MAX_AGE: i64 = mandate_core::token::MAX_WITNESS_AGE;

/// A key the broker trusts to witness calls to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The resource's URI: every receipt it signs names it as `target`.
    pub resource: String,
    /// Its key's thumbprint.
    pub jkt: Thumbprint,
}

impl Witness {
    /// `URI=JKT`: the resource's absolute URI and the witness key's RFC
    /// 7638 thumbprint (43 characters of base64url).
    pub fn parse(text: &str) -> Result<Witness, String> {
        let (uri, jkt) = text
            .rsplit_once('=')
            .ok_or_else(|| format!("{text}: a witness is URI=THUMBPRINT"))?;
        let jkt = jkt
            .parse()
            .map_err(|_| format!("{jkt}: not a key thumbprint (43 characters of base64url)"))?;
        crate::oauth::Resource::parse(uri)?;
        Ok(Witness {
            resource: uri.to_owned(),
            jkt,
        })
    }
}

/// What became of one witness receipt of a report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WitnessResult {
    /// The receipt's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// Its position in the user's receipt feed, if it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Why it was not, if it was not: a stable code and a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

/// Stores witness receipts signed by `key`, which must be a witness the
/// broker trusts: either each signed on its own, or, with `report`, the
/// payloads of the receipts of that one signed report (the report must
/// verify and hold exactly them, or the whole report is refused). Then
/// each receipt is judged on its own: naming the witness's resource as
/// `target`, no older than [`MAX_AGE`], and made under a grant the broker
/// holds, whose user's feed it joins. A receipt reported before, in any
/// report, is `receipt.replayed`.
pub async fn report(
    state: &AppState,
    key: &Jwk,
    report: Option<&str>,
    receipts: &[String],
) -> Result<Vec<WitnessResult>, ApiError> {
    if receipts.is_empty() || receipts.len() > MAX_BATCH {
        return Err(ApiError::new(
            Code::WitnessMalformed,
            "a report carries 1 to 100 witness receipts",
        ));
    }
    let (key, witness) = trusted(state, key)?;
    let now = state.now();
    let policy = &state.inner.policy;
    // Each receipt's id, the text it is stored as, and its claims.
    let read: Vec<(TokenId, String, Result<WitnessClaims, ApiError>)> = match report {
        Some(report) => {
            mandate_core::token::open_witness_report(report, receipts, &key, policy, now)
                .map_err(ApiError::token)?
                .into_iter()
                .map(|o| (o.id, o.text, o.claims.map_err(ApiError::token)))
                .collect()
        }
        None => receipts
            .iter()
            .map(|token| {
                let verified =
                    mandate_core::token::verify::<WitnessClaims>(token, &key, policy, now);
                match verified {
                    Ok(v) => (v.id(), token.clone(), Ok(v.into_claims())),
                    Err(e) => (TokenId::of(token), token.clone(), Err(ApiError::token(e))),
                }
            })
            .collect(),
    };
    let keys = serde_json::to_string(&[key.to_jwk()]).unwrap_or_default();
    let mut results = Vec::with_capacity(receipts.len());
    let mut records = Vec::new();
    let mut slots = Vec::new();
    // The grants looked up so far: a batch's receipts share a few.
    let mut grants = HashMap::new();
    for (id, text, claims) in read {
        let judged = match claims {
            Ok(claims) => judge(state, witness, &claims, now, &mut grants)
                .await
                .map(|grant| (grant, claims.iat)),
            Err(e) => Err(e),
        };
        match judged {
            Ok((grant, made_at)) => {
                slots.push(results.len());
                records.push(ReceiptRecord {
                    seq: 0,
                    id,
                    grant_id: grant.id,
                    agent: grant.grantee,
                    principal: grant.principal,
                    token: text,
                    keys: keys.clone(),
                    created_at: now,
                    made_at,
                    witness: Some(key.thumbprint()),
                });
                results.push(WitnessResult {
                    id,
                    seq: None,
                    error: None,
                });
            }
            Err(e) => results.push(WitnessResult {
                id,
                seq: None,
                error: Some(serde_json::json!({"code": e.code, "message": e.message})),
            }),
        }
    }
    let seqs = state.store().insert_receipts(&records).await?;
    for (slot, seq) in slots.into_iter().zip(seqs) {
        let r = &mut results[slot];
        match seq {
            Some(seq) => r.seq = Some(seq),
            None => {
                r.error = Some(serde_json::json!({
                    "code": Code::ReceiptReplayed.as_str(),
                    "message": "this receipt was reported before",
                }));
            }
        }
    }
    if results.iter().any(|r| r.seq.is_some()) {
        state.inner.hub.wake(state.store()).await;
    }
    Ok(results)
}

/// `key` as a public key, and the witness the broker trusts it as
/// (`witness.unknown` otherwise), within its rate.
fn trusted<'s>(state: &'s AppState, key: &Jwk) -> Result<(PublicKey, &'s Witness), ApiError> {
    let key = PublicKey::from_jwk(key).map_err(ApiError::token)?;
    let jkt = key.thumbprint();
    let Some(witness) = state.witness(&jkt) else {
        return Err(ApiError::new(
            Code::WitnessUnknown,
            "this key is not a witness this broker trusts",
        ));
    };
    if !state.inner.limiters.receipts.allow(&jkt.to_string()) {
        return Err(crate::error::too_fast(Code::RateReceipts));
    }
    Ok((key, witness))
}

/// The grant a verified receipt was made under, if the broker holds it
/// and the receipt is the witness's to give, and on time.
async fn judge(
    state: &AppState,
    witness: &Witness,
    claims: &WitnessClaims,
    now: i64,
    grants: &mut HashMap<TokenId, Option<GrantRecord>>,
) -> Result<GrantRecord, ApiError> {
    if claims.action.target != witness.resource {
        return Err(ApiError::new(
            Code::WitnessTarget,
            "the receipt's target is not the resource this key witnesses",
        ));
    }
    if claims.iat < now - MAX_AGE {
        return Err(ApiError::new(
            Code::WitnessLate,
            "the receipt is older than ten minutes",
        ));
    }
    let grant = match grants.get(&claims.grant) {
        Some(known) => known.clone(),
        None => {
            let found = state.store().grant(&claims.grant).await?;
            grants.insert(claims.grant, found.clone());
            found
        }
    };
    grant.ok_or_else(|| {
        ApiError::new(
            Code::WitnessUnknownGrant,
            "the receipt names no grant this broker holds",
        )
    })
}

/// What each witness's MCP server last said of its tools: the latest
/// tools statement per resource (`mandate-tools+jwt`, docs/protocol.md
/// 4.11), held in memory. A gateway sends its statement again when its
/// server's listing changes and every five minutes, so a broker that
/// restarts learns it back.
#[derive(Debug, Default)]
pub struct Described(std::sync::Mutex<HashMap<String, ToolsStatement>>);

/// A tools statement, as the app receives it with a request for those
/// tools: it checks the signature under `key` itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ToolsStatement {
    /// The witness's public OKP JWK, whose thumbprint the broker trusts
    /// as the witness of the statement's `resource`.
    #[schema(value_type = Object)]
    pub key: Jwk,
    /// The compact `mandate-tools+jwt`.
    pub statement: String,
    #[serde(skip)]
    iat: i64,
}

impl Described {
    /// The statements for the resources a request's `mcp` scopes reach.
    pub fn for_request(&self, request: &str) -> Vec<ToolsStatement> {
        let Ok((_, claims)) = mandate_core::token::peek::<RequestClaims>(request) else {
            return Vec::new();
        };
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_empty() {
            return Vec::new();
        }
        held.iter()
            .filter(|(resource, _)| {
                claims.authorization_details.iter().any(|d| {
                    d.kind == "mcp" && d.locations.iter().any(|l| l.covers(resource.as_str()))
                })
            })
            .map(|(_, s)| s.clone())
            .collect()
    }
}

/// Holds a witness's tools statement, signed by `key`, which must be the
/// key the broker trusts as the witness of the statement's `resource`. A
/// statement older than the one held is ignored.
pub fn describe(state: &AppState, key: &Jwk, statement: &str) -> Result<(), ApiError> {
    let (key, witness) = trusted(state, key)?;
    let now = state.now();
    let verified =
        mandate_core::token::verify::<ToolsClaims>(statement, &key, &state.inner.policy, now)
            .map_err(ApiError::token)?;
    let claims = verified.claims();
    if claims.resource != witness.resource {
        return Err(ApiError::new(
            Code::WitnessTarget,
            "the statement's resource is not the resource this key witnesses",
        ));
    }
    if claims.iat < now - MAX_AGE {
        return Err(ApiError::new(
            Code::WitnessLate,
            "the statement is older than ten minutes",
        ));
    }
    let mut held = state
        .described
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if held
        .get(&claims.resource)
        .is_none_or(|h| h.iat <= claims.iat)
    {
        held.insert(
            claims.resource.clone(),
            ToolsStatement {
                key: key.to_jwk(),
                statement: statement.to_owned(),
                iat: claims.iat,
            },
        );
    }
    Ok(())
}
