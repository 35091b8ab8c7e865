//! `mandate-witness+jwt`: a resource server's signed account of a call an
//! agent made to it, beside the agent's own receipt.
//!
//! The agent's receipt says what the agent meant to do; a witness receipt
//! says what reached the resource, under which grant, and how it ended.
//! Only a key the broker trusts as the witness for a resource signs one
//! (docs/protocol.md, 4.10): on its own, or a batch at a time, under a
//! `mandate-witness-report+jwt` that signs the head of a Merkle tree of
//! the batch ([`WitnessReport`]; each receipt then travels with its
//! audit path, and verifies on its own: [`verify_witness`]).

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{Action, Claims, Jti, Outcome, Policy, UnixTime};
use crate::jws::{self, TokenId, TokenKind};
use crate::key::{PublicKey, SigningKey, Thumbprint};
use crate::merkle::{self, Hash};
use crate::{Error, b64};

/// The most seconds a witness receipt's `iat` may precede its arrival at
/// the broker; the app checks its chain no earlier than that before its
/// arrival (docs/protocol.md 4.10).
pub const MAX_AGE: i64 = 600;

/// The time a witness receipt's chain is checked at, for a receipt that
/// arrived at `at`: its `iat` if earlier (a call made just before a
/// revocation and reported just after it stands), but no earlier than
/// [`MAX_AGE`] before `at`, whatever the witness signed.
pub fn made_at(iat: UnixTime, at: UnixTime) -> UnixTime {
    iat.min(at).max(at.saturating_sub(MAX_AGE))
}

/// The longest `name` a witness receipt holds, in bytes.
pub const MAX_NAME: usize = 2048;

/// The claims of a witness receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessClaims {
    /// The id of the leaf grant the call was made under.
    pub grant: TokenId,
    /// The thumbprint of the key that made the call (its proof of
    /// possession, or the DPoP key its access token is bound to).
    pub holder: Thumbprint,
    /// What the call was: `type` the method, `target` the resource's URL.
    pub action: Action,
    /// The tool, prompt or resource the call named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The SHA-256 of the request's body as received, in base64url: the
    /// caller can compute the same over what it sent.
    pub dig: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The W3C trace id the call carried: 32 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// When.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for WitnessClaims {
    const KIND: TokenKind = TokenKind::Witness;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        if !is_digest(&self.dig) {
            return Err(Error::Malformed("dig is not a base64url SHA-256"));
        }
        if self.trace.as_deref().is_some_and(|t| !valid_trace_id(t)) {
            return Err(Error::Malformed("trace is not a W3C trace id"));
        }
        if self
            .name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.len() > MAX_NAME || n.chars().any(char::is_control))
        {
            return Err(Error::Malformed("name is empty, too long, or has controls"));
        }
        Ok(())
    }
}

/// The `dig` of a request body: its SHA-256, in base64url.
pub fn digest_of(body: &[u8]) -> String {
    crate::b64::encode(sha2::Sha256::digest(body))
}

/// A W3C Trace Context trace id: 32 lowercase hex digits, not all zero.
pub fn valid_trace_id(t: &str) -> bool {
    t.len() == 32
        && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && t.bytes().any(|b| b != b'0')
}

fn is_digest(d: &str) -> bool {
    d.len() == 43 && crate::b64::decode_array::<32>(d).is_some_and(|b| crate::b64::encode(b) == d)
}

/// The most receipts one witness report holds.
pub const MAX_REPORT: usize = 100;

/// The claims of a witness report (`mandate-witness-report+jwt`): the head
/// of an RFC 9162 Merkle tree whose leaves are witness receipts. A witness
/// signs one report for a batch of receipts instead of one signature each;
/// each receipt then travels as `REPORT~INDEX~PATH~PAYLOAD`
/// (docs/protocol.md, 4.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessReportClaims {
    /// The tree head, in base64url: 43 characters that decode to 32 bytes.
    pub root: String,
    /// How many receipts the tree holds: 1 to [`MAX_REPORT`].
    pub size: u64,
    /// When the witness signed it.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for WitnessReportClaims {
    const KIND: TokenKind = TokenKind::WitnessReport;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        if !is_digest(&self.root) {
            return Err(Error::Malformed("root is not a base64url SHA-256"));
        }
        if self.size == 0 || self.size > MAX_REPORT as u64 {
            return Err(Error::Malformed("a report holds 1 to 100 receipts"));
        }
        Ok(())
    }
}

/// A batch of witness receipts under one signature: the signed report,
/// and the receipts' payloads (their claims' JSON in base64url), which are
/// the tree's leaves, in order.
#[derive(Debug, Clone)]
pub struct WitnessReport {
    /// The compact `mandate-witness-report+jwt`.
    pub report: String,
    /// Each receipt's `PAYLOAD`, in the tree's order.
    pub receipts: Vec<String>,
}

impl WitnessReport {
    /// Signs `receipts`, 1 to [`MAX_REPORT`] of them, as one report.
    ///
    /// # Panics
    /// If there are none, or more than [`MAX_REPORT`]: the caller batches.
    pub fn sign(receipts: &[WitnessClaims], key: &SigningKey, iat: UnixTime, jti: Jti) -> Self {
        assert!(
            (1..=MAX_REPORT).contains(&receipts.len()),
            "a report holds 1 to {MAX_REPORT} receipts"
        );
        let payloads: Vec<String> = receipts
            .iter()
            .map(|c| b64::encode(jws::to_json(c)))
            .collect();
        let claims = WitnessReportClaims {
            root: b64::encode(merkle::root(&leaves(&payloads))),
            size: receipts.len() as u64,
            iat,
            jti,
        };
        WitnessReport {
            report: claims.sign(key),
            receipts: payloads,
        }
    }
}

/// One receipt of a report that [`open_report`] opened.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The receipt's id: the SHA-256 of its `PAYLOAD`.
    pub id: TokenId,
    /// Its text form, `REPORT~INDEX~PATH~PAYLOAD`, which verifies on its
    /// own ([`verify_witness`]).
    pub text: String,
    /// Its claims, read and held to their own rules, or why not.
    pub claims: Result<WitnessClaims, Error>,
}

/// Opens a report of `receipts` (their payloads, in order) signed by
/// `key`: the report verifies (as any token, then its own rules), it holds
/// exactly that many receipts (`token.malformed` otherwise), and its root
/// is theirs (`signature.invalid` otherwise). Then each receipt on its
/// own: its text form, and its claims or why they fail.
pub fn open_report(
    report: &str,
    receipts: &[String],
    key: &PublicKey,
    policy: &Policy,
    now: UnixTime,
) -> Result<Vec<Opened>, Error> {
    let claims = super::verify::<WitnessReportClaims>(report, key, policy, now)?.into_claims();
    if claims.size != receipts.len() as u64 {
        return Err(Error::Malformed(
            "the report's size is not its number of receipts",
        ));
    }
    let (root, paths) = merkle::root_and_paths(&leaves(receipts));
    if b64::encode(root) != claims.root {
        return Err(Error::BadSignature);
    }
    Ok(receipts
        .iter()
        .zip(paths)
        .enumerate()
        .map(|(index, (payload, path))| {
            let path: Vec<String> = path.iter().map(b64::encode).collect();
            let text = format!("{report}~{index}~{}~{payload}", path.join("."));
            // What would not verify on its own is refused here too.
            let claims = if text.len() > crate::MAX_TOKEN_BYTES {
                Err(Error::TokenTooLarge)
            } else {
                read_payload(payload, policy, now)
            };
            Opened {
                id: TokenId::of(payload),
                text,
                claims,
            }
        })
        .collect())
}

/// A witness receipt in a report, split: `REPORT~INDEX~PATH~PAYLOAD`.
struct InReport<'a> {
    report: &'a str,
    index: u64,
    path: Vec<Hash>,
    payload: &'a str,
}

impl<'a> InReport<'a> {
    /// `None` for the other form, a compact `mandate-witness+jwt`.
    fn split(text: &'a str) -> Option<Result<InReport<'a>, Error>> {
        if !text.contains('~') {
            return None;
        }
        if text.len() > crate::MAX_TOKEN_BYTES {
            return Some(Err(Error::TokenTooLarge));
        }
        let malformed = || Error::Malformed("not REPORT~INDEX~PATH~PAYLOAD");
        let parts: Vec<&str> = text.split('~').collect();
        let &[report, index, path, payload] = parts.as_slice() else {
            return Some(Err(malformed()));
        };
        // INDEX: a decimal number without leading zeros, below 100.
        let index = match index.as_bytes() {
            [b'0'] => 0,
            [b'1'..=b'9', rest @ ..] if rest.len() < 2 && rest.iter().all(u8::is_ascii_digit) => {
                index.parse().unwrap_or(u64::MAX)
            }
            _ => return Some(Err(malformed())),
        };
        // PATH: hashes in base64url, nearest sibling first, joined by `.`.
        let path: Option<Vec<Hash>> = if path.is_empty() {
            Some(Vec::new())
        } else {
            path.split('.')
                .map(|h| b64::decode_array::<32>(h).filter(|b| b64::encode(b) == h))
                .collect()
        };
        let Some(path) = path else {
            return Some(Err(malformed()));
        };
        Some(Ok(InReport {
            report,
            index,
            path,
            payload,
        }))
    }

    fn verify(
        &self,
        key: &PublicKey,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<WitnessClaims, Error> {
        let head = report_claims(self.report, key, policy, now)?;
        if self.index >= head.size {
            return Err(Error::Malformed("index is outside the report"));
        }
        let root = b64::decode_array::<32>(&head.root).ok_or(Error::Malformed("root"))?;
        let leaf = merkle::leaf_hash(self.payload.as_bytes());
        if !merkle::included(&leaf, self.index, head.size, &self.path, &root) {
            return Err(Error::BadSignature);
        }
        read_payload(self.payload, policy, now)
    }
}

/// How many reports [`report_claims`] remembers: a direct-mapped table,
/// each slot behind its own lock. A report's receipts arrive together (a
/// page of the receipt feed), and each verifies on its own.
const RECENT_REPORT_SLOTS: usize = 16;

/// A report verified lately: its id, the key it verified under, and its
/// claims.
type RecentReport = Option<(TokenId, Thumbprint, WitnessReportClaims)>;

/// The reports verified lately; see [`report_claims`].
static RECENT_REPORTS: [std::sync::Mutex<RecentReport>; RECENT_REPORT_SLOTS] =
    [const { std::sync::Mutex::new(None) }; RECENT_REPORT_SLOTS];

/// A report's claims, verified under `key` (step 2 of a receipt in a
/// report, docs/protocol.md 4.10). Parsing it, its `kid`, its signature
/// and reading its claims depend only on its text and the key, so a
/// report verified lately under the same key (the same SHA-256 of its
/// text, the same thumbprint) skips them; its own rules, which depend on
/// the time, run every time. One signature check for a page of a report's
/// receipts, instead of one a receipt.
fn report_claims(
    report: &str,
    key: &PublicKey,
    policy: &Policy,
    now: UnixTime,
) -> Result<WitnessReportClaims, Error> {
    let id = TokenId::of(report);
    let jkt = key.thumbprint();
    let slot = &RECENT_REPORTS[usize::from(id.as_bytes()[0]) % RECENT_REPORT_SLOTS];
    let held = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .filter(|(i, k, _)| *i == id && *k == jkt)
        .map(|(_, _, claims)| claims.clone());
    if let Some(claims) = held {
        claims.check(policy, now)?;
        return Ok(claims);
    }
    #[cfg(test)]
    REPORTS_VERIFIED.with(|n| n.set(n.get() + 1));
    let claims = super::verify::<WitnessReportClaims>(report, key, policy, now)?.into_claims();
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((id, jkt, claims.clone()));
    Ok(claims)
}

#[cfg(test)]
thread_local! {
    /// How many reports [`report_claims`] verified in full, on this thread.
    static REPORTS_VERIFIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The tree's leaves: each receipt's `PAYLOAD` text, hashed as a leaf.
fn leaves(payloads: &[String]) -> Vec<Hash> {
    payloads
        .iter()
        .map(|p| merkle::leaf_hash(p.as_bytes()))
        .collect()
}

/// A receipt's claims from its `PAYLOAD`, without their own rules.
fn claims_in(payload: &str) -> Result<WitnessClaims, Error> {
    let json = b64::decode(payload).ok_or(Error::Malformed("payload is not base64url"))?;
    jws::claims_of(&json)
}

/// A receipt's claims from its `PAYLOAD`, held to their own rules.
fn read_payload(payload: &str, policy: &Policy, now: UnixTime) -> Result<WitnessClaims, Error> {
    let claims = claims_in(payload)?;
    claims.check(policy, now)?;
    Ok(claims)
}

/// Verifies a witness receipt under the witness key `key`, in either form:
/// a compact `mandate-witness+jwt`, signed on its own, or a receipt of a
/// report, `REPORT~INDEX~PATH~PAYLOAD` (docs/protocol.md, 4.10). Gives its
/// id and its claims, held to their own rules.
pub fn verify_witness(
    text: &str,
    key: &PublicKey,
    policy: &Policy,
    now: UnixTime,
) -> Result<(TokenId, WitnessClaims), Error> {
    match InReport::split(text) {
        Some(split) => {
            let split = split?;
            let claims = split.verify(key, policy, now)?;
            Ok((TokenId::of(split.payload), claims))
        }
        None => {
            let verified = super::verify::<WitnessClaims>(text, key, policy, now)?;
            Ok((verified.id(), verified.into_claims()))
        }
    }
}

/// Reads a witness receipt's claims, in either form, without verifying
/// anything: for display of one that failed, and for its times.
pub fn peek_witness(text: &str) -> Result<WitnessClaims, Error> {
    match InReport::split(text) {
        Some(split) => claims_in(split?.payload),
        None => super::peek::<WitnessClaims>(text).map(|(_, c)| c),
    }
}

/// A receipt's id, in any form: the SHA-256 of a compact token (an
/// agent's receipt, or a witness receipt signed on its own), or, for a
/// witness receipt of a report, of its `PAYLOAD`, so that the same receipt
/// in two reports is the same receipt.
pub fn receipt_id(text: &str) -> TokenId {
    match InReport::split(text) {
        Some(Ok(split)) => TokenId::of(split.payload),
        _ => TokenId::of(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::token::verify;

    fn claims() -> WitnessClaims {
        WitnessClaims {
            grant: TokenId::of("grant"),
            holder: SigningKey::from_seed(&[3; 32]).public().thumbprint(),
            action: Action {
                kind: "tools/call".into(),
                target: "https://gw.example/mcp".into(),
                summary: "Called the tool run_command".into(),
            },
            name: Some("run_command".into()),
            dig: digest_of(b"{}"),
            outcome: Outcome::Succeeded,
            trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            iat: 1_796_000_000,
            jti: "w-1".to_string().try_into().unwrap(),
        }
    }

    #[test]
    fn the_chain_is_checked_when_the_call_was_made_within_ten_minutes() {
        let at = 1_796_000_000;
        assert_eq!(made_at(at - 5, at), at - 5);
        assert_eq!(made_at(at + 30, at), at, "never after its arrival");
        assert_eq!(made_at(at - MAX_AGE, at), at - MAX_AGE);
        assert_eq!(made_at(at - 10_000, at), at - MAX_AGE);
    }

    #[test]
    fn verifies_under_the_witness_key_only() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let other = SigningKey::from_seed(&[2; 32]);
        let token = claims().sign(&witness);
        let p = Policy::default();
        let v = verify::<WitnessClaims>(&token, witness.public(), &p, 1_796_000_000).unwrap();
        assert_eq!(v.claims(), &claims());
        assert_eq!(
            verify::<WitnessClaims>(&token, other.public(), &p, 1_796_000_000).err(),
            Some(Error::KidMismatch)
        );
        // Any other kind of token, even by the same key, is not a witness.
        let receipt = crate::token::ReceiptClaims {
            grant: TokenId::of("grant"),
            action: claims().action,
            outcome: Outcome::Succeeded,
            rationale: None,
            cause: None,
            iat: 1_796_000_000,
            jti: "w-1".to_string().try_into().unwrap(),
        }
        .sign(&witness);
        assert_eq!(
            verify::<WitnessClaims>(&receipt, witness.public(), &p, 1_796_000_000)
                .err()
                .map(|e| e.code()),
            Some("header.wrong_typ")
        );
    }

    #[test]
    fn refuses_claims_outside_their_grammar() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let cases: Vec<(WitnessClaims, &str)> = vec![
            (
                WitnessClaims {
                    iat: now + 61,
                    ..claims()
                },
                "time.not_yet_valid",
            ),
            (
                WitnessClaims {
                    dig: "abc".into(),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    dig: format!("{}=", &digest_of(b"")[..42]),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    trace: Some("4BF92F3577B34DA6A3CE929D0E0E4736".into()),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    trace: Some("0".repeat(32)),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    name: Some("a\nb".into()),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    name: Some("x".repeat(MAX_NAME + 1)),
                    ..claims()
                },
                "token.malformed",
            ),
        ];
        for (c, code) in cases {
            let token = c.sign(&witness);
            let got = verify::<WitnessClaims>(&token, witness.public(), &p, now)
                .err()
                .map(|e| e.code());
            assert_eq!(got, Some(code), "{c:?}");
        }
    }

    #[test]
    fn unknown_claims_are_refused() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let mut v = serde_json::to_value(claims()).unwrap();
        v["extra"] = serde_json::json!(1);
        let token = crate::jws::sign(TokenKind::Witness, &witness, &v);
        let got =
            verify::<WitnessClaims>(&token, witness.public(), &Policy::default(), 1_796_000_000);
        assert_eq!(got.err().map(|e| e.code()), Some("token.malformed"));
    }

    fn report_of(n: usize, key: &SigningKey) -> WitnessReport {
        let receipts: Vec<WitnessClaims> = (0..n)
            .map(|i| WitnessClaims {
                jti: format!("w-{i}").try_into().unwrap(),
                ..claims()
            })
            .collect();
        WitnessReport::sign(
            &receipts,
            key,
            1_796_000_000,
            "r-1".to_string().try_into().unwrap(),
        )
    }

    fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn a_report_signs_its_receipts_once_and_each_verifies_on_its_own() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        for n in [1, 2, 3, 7, 64, 100] {
            let batch = report_of(n, &witness);
            assert_eq!(batch.report.matches('.').count(), 2, "one compact token");
            let opened =
                open_report(&batch.report, &batch.receipts, witness.public(), &p, now).unwrap();
            assert_eq!(opened.len(), n);
            for (i, o) in opened.iter().enumerate() {
                let expected = WitnessClaims {
                    jti: format!("w-{i}").try_into().unwrap(),
                    ..claims()
                };
                assert_eq!(o.claims.as_ref().unwrap(), &expected);
                assert_eq!(o.id, TokenId::of(&batch.receipts[i]));
                let (id, c) = verify_witness(&o.text, witness.public(), &p, now).unwrap();
                assert_eq!((id, &c), (o.id, &expected));
                assert_eq!(peek_witness(&o.text).unwrap(), expected);
                assert_eq!(receipt_id(&o.text), o.id);
            }
        }
        // The other form still verifies, with its own id.
        let single = claims().sign(&witness);
        let (id, c) = verify_witness(&single, witness.public(), &p, now).unwrap();
        assert_eq!((id, c), (TokenId::of(&single), claims()));
        assert_eq!(receipt_id(&single), TokenId::of(&single));
        assert_eq!(peek_witness(&single).unwrap(), claims());
    }

    #[test]
    fn a_report_is_verified_once_for_its_receipts_and_its_time_rule_each_time() {
        let witness = SigningKey::from_seed(&[5; 32]);
        let other = SigningKey::from_seed(&[6; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let batch = report_of(50, &witness);
        let opened =
            open_report(&batch.report, &batch.receipts, witness.public(), &p, now).unwrap();
        let before = REPORTS_VERIFIED.with(std::cell::Cell::get);
        for o in &opened {
            verify_witness(&o.text, witness.public(), &p, now).unwrap();
        }
        let verified = REPORTS_VERIFIED.with(std::cell::Cell::get) - before;
        // Once; more only if other tests' reports took its slot meanwhile.
        assert!((1..=5).contains(&verified), "{verified} full checks for 50");
        // What depends on the time is checked each time: the report was
        // signed at `now`, which is ahead of a clock 61 s behind.
        assert_eq!(
            code(verify_witness(
                &opened[1].text,
                witness.public(),
                &p,
                now - 61
            )),
            "time.not_yet_valid"
        );
        assert_eq!(
            code(verify_witness(&opened[1].text, witness.public(), &p, now)),
            "ok"
        );
        // And a remembered report is remembered under its key alone.
        assert_eq!(
            code(verify_witness(&opened[1].text, other.public(), &p, now)),
            "header.kid_mismatch"
        );
    }

    #[test]
    fn a_receipt_of_a_report_is_refused_by_each_rule() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let other = SigningKey::from_seed(&[2; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let batch = report_of(5, &witness);
        let opened =
            open_report(&batch.report, &batch.receipts, witness.public(), &p, now).unwrap();
        let text = opened[2].text.clone();
        let parts: Vec<&str> = text.split('~').collect();
        let with = |i: usize, v: &str| {
            let mut q = parts.clone();
            q[i] = v;
            q.join("~")
        };
        let verify = |t: &str| code(verify_witness(t, witness.public(), &p, now));
        assert_eq!(verify(&text), "ok");
        assert_eq!(
            code(verify_witness(&text, other.public(), &p, now)),
            "header.kid_mismatch"
        );
        // The report's own signature, type and claims.
        let mut bad_sig = parts[0].to_owned();
        let last = bad_sig.pop().unwrap();
        bad_sig.push(if last == 'A' { 'Q' } else { 'A' });
        assert_eq!(verify(&with(0, &bad_sig)), "signature.invalid");
        assert_eq!(
            verify(&with(0, &claims().sign(&witness))),
            "header.wrong_typ"
        );
        let report = |c: WitnessReportClaims| c.sign(&witness);
        let head = crate::token::peek::<WitnessReportClaims>(parts[0])
            .unwrap()
            .1;
        let cases = [
            (
                WitnessReportClaims {
                    size: 0,
                    ..head.clone()
                },
                "token.malformed",
            ),
            (
                WitnessReportClaims {
                    size: 101,
                    ..head.clone()
                },
                "token.malformed",
            ),
            (
                WitnessReportClaims {
                    root: "abc".into(),
                    ..head.clone()
                },
                "token.malformed",
            ),
            (
                WitnessReportClaims {
                    iat: now + 61,
                    ..head.clone()
                },
                "time.not_yet_valid",
            ),
            // Signed, but over another tree: this receipt is not in it.
            (
                WitnessReportClaims {
                    root: digest_of(b"x"),
                    ..head.clone()
                },
                "signature.invalid",
            ),
            (
                WitnessReportClaims {
                    size: 2,
                    ..head.clone()
                },
                "token.malformed",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(verify(&with(0, &report(c.clone()))), want, "{c:?}");
        }
        let mut v = serde_json::to_value(&head).unwrap();
        v["extra"] = serde_json::json!(1);
        let extra = crate::jws::sign(TokenKind::WitnessReport, &witness, &v);
        assert_eq!(verify(&with(0, &extra)), "token.malformed");
        // INDEX: another leaf's is not this one's; outside the grammar or
        // the report, malformed.
        assert_eq!(verify(&with(1, "3")), "signature.invalid");
        for index in ["5", "02", "", "-1", "2 ", "x", "100", "1000"] {
            assert_eq!(verify(&with(1, index)), "token.malformed", "{index:?}");
        }
        // PATH: each hash must be there, in order, and canonical.
        let path: Vec<&str> = parts[2].split('.').collect();
        assert_eq!(path.len(), 3, "leaf 2 of 5");
        let mut bent = path[0].to_owned();
        bent.replace_range(0..1, if bent.starts_with('A') { "B" } else { "A" });
        for changed in [
            [bent.as_str(), path[1], path[2]].join("."),
            [path[1], path[0], path[2]].join("."),
            path[..2].join("."),
            [path[0], path[1], path[2], path[2]].join("."),
            String::new(),
        ] {
            assert_eq!(verify(&with(2, &changed)), "signature.invalid", "{changed}");
        }
        for changed in [
            format!("{}.", parts[2]),
            [&path[0][..42], path[1], path[2]].join("."),
            [&format!("{}=", &path[0][..42]), path[1], path[2]].join("."),
            parts[2].replace('.', ","),
        ] {
            assert_eq!(verify(&with(2, &changed)), "token.malformed", "{changed}");
        }
        // PAYLOAD: another receipt's, or an edited one, is not this leaf.
        assert_eq!(verify(&with(3, &batch.receipts[3])), "signature.invalid");
        assert_eq!(
            verify(&with(3, &format!("{}A", parts[3]))),
            "signature.invalid"
        );
        // Parts: exactly four.
        assert_eq!(verify(&format!("{text}~")), "token.malformed");
        assert_eq!(verify(&parts[..3].join("~")), "token.malformed");
        assert_eq!(verify(&"~".repeat(20_000)), "token.too_large");
    }

    #[test]
    fn a_signed_report_of_claims_outside_their_grammar_is_refused_per_receipt() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let bad = WitnessClaims {
            dig: "abc".into(),
            ..claims()
        };
        let batch = WitnessReport::sign(
            &[
                claims(),
                bad,
                WitnessClaims {
                    iat: now + 61,
                    ..claims()
                },
            ],
            &witness,
            now,
            "r-2".to_string().try_into().unwrap(),
        );
        let opened =
            open_report(&batch.report, &batch.receipts, witness.public(), &p, now).unwrap();
        let codes: Vec<&str> = opened.iter().map(|o| code(o.claims.clone())).collect();
        assert_eq!(codes, ["ok", "token.malformed", "time.not_yet_valid"]);
        for (o, want) in opened.iter().zip(codes) {
            assert_eq!(
                code(verify_witness(&o.text, witness.public(), &p, now)),
                want
            );
        }
        // An unknown claim, or a payload that is not JSON, under a good
        // signature: malformed.
        let mut v = serde_json::to_value(claims()).unwrap();
        v["extra"] = serde_json::json!(1);
        let leaves = [
            b64::encode(serde_json::to_vec(&v).unwrap()),
            b64::encode(b"not json"),
            "*".to_owned(),
        ];
        let hashes: Vec<Hash> = leaves
            .iter()
            .map(|l| merkle::leaf_hash(l.as_bytes()))
            .collect();
        let head = WitnessReportClaims {
            root: b64::encode(merkle::root(&hashes)),
            size: 3,
            iat: now,
            jti: "r-3".to_string().try_into().unwrap(),
        }
        .sign(&witness);
        let opened = open_report(&head, &leaves, witness.public(), &p, now).unwrap();
        for o in &opened {
            assert_eq!(code(o.claims.clone()), "token.malformed");
            assert_eq!(
                code(verify_witness(&o.text, witness.public(), &p, now)),
                "token.malformed"
            );
        }
    }

    #[test]
    fn a_receipt_too_large_to_verify_alone_is_refused_when_opened() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let long = WitnessClaims {
            action: Action {
                summary: "x".repeat(crate::MAX_TOKEN_BYTES),
                ..claims().action
            },
            ..claims()
        };
        let batch = WitnessReport::sign(
            &[claims(), long],
            &witness,
            now,
            "r-4".to_string().try_into().unwrap(),
        );
        let opened =
            open_report(&batch.report, &batch.receipts, witness.public(), &p, now).unwrap();
        assert_eq!(code(opened[0].claims.clone()), "ok");
        assert_eq!(code(opened[1].claims.clone()), "token.too_large");
        assert_eq!(
            code(verify_witness(&opened[1].text, witness.public(), &p, now)),
            "token.too_large"
        );
    }

    #[test]
    fn a_report_opens_only_with_its_own_receipts_in_order() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let batch = report_of(4, &witness);
        let open = |r: &[String]| code(open_report(&batch.report, r, witness.public(), &p, now));
        assert_eq!(open(&batch.receipts), "ok");
        let mut swapped = batch.receipts.clone();
        swapped.swap(0, 1);
        assert_eq!(open(&swapped), "signature.invalid");
        let mut edited = batch.receipts.clone();
        edited[3] = report_of(1, &witness).receipts[0].clone();
        edited[3].push('A');
        assert_eq!(open(&edited), "signature.invalid");
        assert_eq!(open(&batch.receipts[..3]), "token.malformed");
        let mut more = batch.receipts.clone();
        more.push(more[0].clone());
        assert_eq!(open(&more), "token.malformed");
        let other = SigningKey::from_seed(&[2; 32]);
        assert_eq!(
            code(open_report(
                &batch.report,
                &batch.receipts,
                other.public(),
                &p,
                now
            )),
            "header.kid_mismatch"
        );
    }
}
