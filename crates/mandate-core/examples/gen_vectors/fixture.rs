//! The cast and the tools of the test vectors: deterministic keys, a clock,
//! grant builders, and an independent raw JWS signer for malformed tokens.
//!
//! Everything is a pure function of fixed seeds, so regenerating the
//! vectors gives the same bytes.

use std::collections::BTreeMap;

use ed25519_dalek::Signer as _;
use mandate_core::base64url;
use mandate_core::scope::{AuthorizationDetail, Limits, Money};
use mandate_core::token::{
    Actor, Claims as _, Confirmation, GrantClaims, Jti, PopClaims, chain_hash,
};
use mandate_core::{Jwk, SigningKey, Thumbprint, TokenId};
use serde::Serialize;
use serde_json::Value;

/// 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
pub const ALICE: &str = "https://idp.example#alice";
pub const BOB: &str = "https://idp.example#bob";
pub const HTU: &str = "https://files.example/v1/reports/q3";

/// One party: a seed, its signing key and its public JWK.
pub struct Party {
    pub seed: [u8; 32],
    pub key: SigningKey,
}

impl Party {
    pub fn new(n: u8) -> Party {
        let mut seed = [0u8; 32];
        seed[0] = n;
        seed[31] = 0x4d; // 'M'
        Party {
            seed,
            key: SigningKey::from_seed(&seed),
        }
    }

    pub fn jkt(&self) -> Thumbprint {
        self.key.thumbprint()
    }

    pub fn jwk(&self) -> Jwk {
        let mut jwk = self.key.public().to_jwk();
        jwk.kid = None;
        jwk
    }

    /// Signs arbitrary header and payload bytes, bypassing every rule of the crate.
    pub fn raw(&self, header: &str, payload: &str) -> String {
        self.raw_bytes(header.as_bytes(), payload)
    }

    /// [`Party::raw`] for a header that need not be UTF-8.
    pub fn raw_bytes(&self, header: &[u8], payload: &str) -> String {
        let input = format!(
            "{}.{}",
            base64url::encode(header),
            base64url::encode(payload)
        );
        let dalek = ed25519_dalek::SigningKey::from_bytes(&self.seed);
        let sig = dalek.sign(input.as_bytes()).to_bytes();
        format!("{input}.{}", base64url::encode(sig))
    }

    /// The standard grant header for this signer.
    pub fn header(&self, typ: &str) -> String {
        format!(r#"{{"alg":"EdDSA","typ":"{typ}","kid":"{}"}}"#, self.jkt())
    }
}

/// Everyone who appears in the vectors.
pub struct Cast {
    pub alice: Party,
    pub alice_laptop: Party,
    pub bob: Party,
    pub mallory: Party,
    pub agents: Vec<Party>,
}

impl Cast {
    pub fn new() -> Cast {
        Cast {
            alice: Party::new(1),
            alice_laptop: Party::new(2),
            bob: Party::new(3),
            mallory: Party::new(4),
            agents: (0..17).map(|i| Party::new(10 + i)).collect(),
        }
    }
}

pub fn detail(kind: &str, actions: &[&str], locations: &[&str]) -> AuthorizationDetail {
    AuthorizationDetail::new(kind, actions.iter().copied(), locations.iter().copied())
        .expect("valid detail")
}

pub fn money(amount: &str, currency: &str) -> Money {
    Money {
        amount: amount.to_string().try_into().expect("amount"),
        currency: currency.to_string().try_into().expect("currency"),
    }
}

pub fn limited(
    mut d: AuthorizationDetail,
    calls: Option<u64>,
    amount: Option<Money>,
) -> AuthorizationDetail {
    d.limits = Limits {
        max_calls: calls,
        max_amount: amount,
        confirm: None,
    };
    d
}

/// The scope of most root grants: read and write reports, list files.
pub fn root_scope() -> Vec<AuthorizationDetail> {
    vec![
        detail(
            "files",
            &["read", "write", "list"],
            &["https://files.example/v1/reports/"],
        ),
        limited(
            detail(
                "purchase_order",
                &["create"],
                &["https://erp.example/vendors/"],
            ),
            Some(20),
            Some(money("5000.00", "EUR")),
        ),
    ]
}

/// A root grant from `issuer` (a user key) to `grantee`.
pub fn root_claims(sub: &str, grantee: &Party, n: &str) -> GrantClaims {
    GrantClaims {
        sub: sub.to_string().try_into().expect("principal"),
        act: Actor {
            sub: grantee.key.public().agent_id(),
        },
        cnf: Confirmation { jkt: grantee.jkt() },
        authorization_details: root_scope(),
        purpose: "Prepare the Q3 report and order the hardware it calls for".into(),
        intent: Some("Get the Q3 report ready for Friday".into()),
        iat: NOW - 600,
        nbf: NOW - 600,
        exp: NOW + 3600,
        jti: jti(n),
        max_depth: 8,
        prf: None,
        req: Some(TokenId::of(&format!("request-{n}"))),
    }
}

/// A child of `parent` (whose compact form is `parent_token`) to `grantee`, as wide as allowed.
pub fn child_claims(
    parent: &GrantClaims,
    parent_token: &str,
    grantee: &Party,
    n: &str,
) -> GrantClaims {
    GrantClaims {
        sub: parent.sub.clone(),
        act: Actor {
            sub: grantee.key.public().agent_id(),
        },
        cnf: Confirmation { jkt: grantee.jkt() },
        authorization_details: parent.authorization_details.clone(),
        purpose: format!("Sub-task {n} of: {}", parent.purpose),
        intent: None,
        iat: parent.iat + 1,
        nbf: parent.nbf,
        exp: parent.exp,
        jti: jti(n),
        max_depth: parent.max_depth.saturating_sub(1),
        prf: Some(TokenId::of(parent_token)),
        req: None,
    }
}

pub fn jti(n: &str) -> Jti {
    format!("jti-{n}").try_into().expect("jti")
}

/// A chain in progress: the tokens and their claims.
#[derive(Clone, Default)]
pub struct Chain {
    pub tokens: Vec<String>,
    pub claims: Vec<GrantClaims>,
}

impl Chain {
    /// Alice's root grant to agent 0, then one hop per agent up to `depth` links.
    pub fn straight(cast: &Cast, depth: usize, tag: &str) -> Chain {
        Chain::straight_with(cast, depth, tag, |_, _| {})
    }

    /// Like [`Chain::straight`], letting `tweak` edit each link's claims (index, claims) before signing.
    pub fn straight_with(
        cast: &Cast,
        depth: usize,
        tag: &str,
        mut tweak: impl FnMut(usize, &mut GrantClaims),
    ) -> Chain {
        let mut chain = Chain::default();
        for i in 0..depth {
            let n = format!("{tag}-{i}");
            let mut claims = match chain.claims.last() {
                None => root_claims(ALICE, &cast.agents[0], &n),
                Some(parent) => child_claims(
                    parent,
                    chain.tokens.last().map_or("", |t| t),
                    &cast.agents[i],
                    &n,
                ),
            };
            tweak(i, &mut claims);
            let signer = if i == 0 {
                &cast.alice.key
            } else {
                &cast.agents[i - 1].key
            };
            chain.push(claims.sign(signer), claims);
        }
        chain
    }

    pub fn push(&mut self, token: String, claims: GrantClaims) {
        self.tokens.push(token);
        self.claims.push(claims);
    }

    pub fn id(&self, i: usize) -> TokenId {
        TokenId::of(&self.tokens[i])
    }

    /// A proof of possession by `leaf` for `htm` `htu` at `iat`, bound to this chain.
    pub fn pop(&self, leaf: &Party, htm: &str, htu: &str, iat: i64, n: &str) -> String {
        PopClaims {
            htm: htm.into(),
            htu: htu.into(),
            iat,
            jti: jti(n),
            ath: chain_hash(&self.tokens),
        }
        .sign(&leaf.key)
    }
}

/// The payload JSON of a grant, for raw edits.
pub fn claims_json(claims: &GrantClaims) -> String {
    serde_json::to_string(claims).expect("claims serialize")
}

/// One file under tests/vectors.
#[derive(Serialize)]
pub struct Vector {
    pub description: String,
    pub now: i64,
    pub keys: BTreeMap<String, Jwk>,
    pub user_bindings: Vec<Binding>,
    pub chain: Vec<String>,
    pub revoked: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked_keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pop: Option<PopCase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationCase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyCase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessCase>,
    pub expect: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Value>,
}

#[derive(Serialize)]
pub struct Binding {
    pub sub: String,
    pub jkt: String,
}

#[derive(Serialize)]
pub struct PopCase {
    pub token: String,
    pub htm: String,
    pub htu: String,
    /// The proof was already accepted once before this verification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub seen_before: bool,
}

/// A confirmation to check for the call (docs/protocol.md 6.8).
#[derive(Serialize)]
pub struct ConfirmationCase {
    pub token: String,
    pub htm: String,
    pub htu: String,
    /// The call's body, base64url.
    pub body: String,
    /// The confirmation was already accepted once before this verification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub seen_before: bool,
}

/// A standing rule and a request to match against it (4.12).
#[derive(Serialize)]
pub struct PolicyCase {
    pub token: String,
    pub request: String,
}

/// A witness receipt to check against the chain's leaf (4.10).
#[derive(Serialize)]
pub struct WitnessCase {
    /// The receipt, in either form.
    pub token: String,
    /// The witness key's thumbprint; its JWK is in `keys`.
    pub key: String,
}
