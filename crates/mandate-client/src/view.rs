//! What the app shows of a request, computed here so that the UI only
//! renders: the agent (its self-asserted name, its key's fingerprint, and
//! warnings about the name), each scope in plain language from the scope
//! catalog with its risk, and the chain of agents behind the request, hop
//! by hop, with what each hop adds or loses.
//!
//! Every string an agent supplied is data: the UI renders it as text,
//! never as HTML.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use mandate_core::scope::{self, AuthorizationDetail};
use mandate_core::token::{ClientVerification, RequestClaims};
use mandate_core::{Policy, PublicKey, VerifiedChain};
use serde::{Deserialize, Serialize};

use crate::history::{RequestState, StoredDecision, StoredRequest};
use crate::names::name_warnings;
use crate::parent::Parent;
use crate::tool_claims::{ServerClaim, ServerSays};

/// How much harm an action can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reading, mostly.
    Low,
    /// Changes that can be undone.
    Medium,
    /// Not in the catalog: shown raw, with a warning.
    Unknown,
    /// Acting in the user's name, spending, deleting.
    High,
}

#[derive(Deserialize)]
struct CatalogType {
    label: String,
    actions: BTreeMap<String, CatalogAction>,
    /// For a type whose actions are open-ended (`mcp`: a tool's name),
    /// how to name one not listed; its risk stays unknown.
    #[serde(default)]
    other_actions: Option<OtherActions>,
}

#[derive(Deserialize)]
struct OtherActions {
    /// The label, with `{action}` where the action's name goes.
    label: String,
}

#[derive(Deserialize)]
struct CatalogAction {
    label: String,
    risk: Risk,
    #[serde(default)]
    irreversible: bool,
}

fn catalog() -> &'static BTreeMap<String, CatalogType> {
    static CATALOG: OnceLock<BTreeMap<String, CatalogType>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Checked by a unit test; an unreadable catalog shows every scope raw.
        serde_json::from_str(include_str!("../catalog/scopes.json")).unwrap_or_default()
    })
}

/// A request, ready to show.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RequestDetail {
    /// The request's id.
    pub id: String,
    /// Where it stands.
    pub state: RequestState,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// Who asks.
    pub agent: AgentView,
    /// The code the agent shows its user, to compare; empty while the
    /// user must type it instead (`needs_code`).
    pub binding_code: String,
    /// The user's instruction, as the agent received it.
    pub intent: Option<String>,
    /// The agent's interpretation of it.
    pub interpretation: String,
    /// What it asks for.
    pub scopes: Vec<ScopeView>,
    /// The highest risk among the scopes.
    pub risk: Risk,
    /// From the user to the agent asking, root first: every hop from
    /// verified data. Empty when the chain behind the request does not
    /// verify; `chain_warning` then says why.
    pub chain: Vec<Hop>,
    /// Why the chain behind the request is not shown, if it is not.
    pub chain_warning: Option<String>,
    /// The grant's lifetime asked for, in seconds.
    pub lifetime: u32,
    /// The delegation depth asked for.
    pub max_depth: u8,
    /// The decision, once made.
    pub decision: Option<StoredDecision>,
    /// The OAuth client behind the request, when the broker filed it for
    /// one (its authorization code flow): who the broker checked it is.
    pub oauth_client: Option<OAuthClientView>,
    /// When the user last denied this agent (within a day), if they did:
    /// "you denied this agent 2 minutes ago".
    pub denied_before: Option<i64>,
    /// The user's standing rules about this agent, and how this request
    /// goes past each (why it came as a prompt).
    pub rules: Vec<crate::tiers::RuleFit>,
    /// Whether the user must type the agent's binding code before
    /// approving: the request is high risk and the code was not typed yet.
    pub needs_code: bool,
    /// How many wrong codes were typed.
    pub code_misses: i64,
    /// Whether the request was flagged (wrong codes three times).
    pub flagged: bool,
}

/// An OAuth client asking through the broker's authorization endpoint.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct OAuthClientView {
    /// Its `client_id`.
    pub client_id: String,
    /// How the broker knows it.
    pub verified_by: ClientCheck,
    /// Where the browser goes back to, with the code.
    pub redirect_uri: String,
    /// The resource its tokens are for.
    pub resource: String,
}

/// How the broker identified an OAuth client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ClientCheck {
    /// The broker fetched its metadata document from the `client_id`
    /// URL: the client is whoever serves that address.
    MetadataDocument,
    /// It registered itself (RFC 7591): its name is its own claim.
    Registration,
}

/// An agent, as it describes itself and as its key identifies it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AgentView {
    /// Its id: the thumbprint URI of its key.
    pub id: String,
    /// A short form of the id, to compare by eye.
    pub fingerprint: String,
    /// The name it gives itself. Self-asserted: anyone can claim any name.
    pub name: String,
    /// Who it says publishes it.
    pub publisher: Option<String>,
    /// Its version, as it says.
    pub version: Option<String>,
    /// Whether this key asked before.
    pub known: bool,
    /// What is suspicious about the name.
    pub warnings: Vec<String>,
}

/// One scope in plain language.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ScopeView {
    /// The scope type, raw.
    pub kind: String,
    /// The type's name, if the catalog knows it.
    pub label: Option<String>,
    /// The actions.
    pub actions: Vec<ActionView>,
    /// Where.
    pub locations: Vec<String>,
    /// One resource, if named.
    pub identifier: Option<String>,
    /// The most calls, if limited.
    pub max_calls: Option<u64>,
    /// The most money, if limited: amount and currency.
    pub max_amount: Option<String>,
    /// Which calls the user confirms one by one: `each call`, or `calls
    /// above AMOUNT CURRENCY`; `None` when none.
    pub confirm: Option<String>,
    /// The highest risk among the actions.
    pub risk: Risk,
    /// The scope as JSON, for "show raw".
    pub raw: String,
}

/// One action of a scope.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ActionView {
    /// The action, raw.
    pub name: String,
    /// What it means, if the catalog knows it.
    pub label: Option<String>,
    /// Its risk.
    pub risk: Risk,
    /// Whether its effects cannot be undone.
    pub irreversible: bool,
    /// For an MCP tool, what its server says of it (its annotations),
    /// when the gateway in front of it relayed that: the server's claim,
    /// which sets `risk` and `irreversible` and can lie.
    pub server_says: Option<ServerClaim>,
}

/// Who a hop of the chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The user, the chain's principal.
    User,
    /// The agent the user delegates to.
    Agent,
    /// An agent that an agent delegates to.
    SubAgent,
}

/// One hop of the chain behind a request.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Hop {
    /// Who it is.
    pub role: Role,
    /// The user's principal, or the agent's self-asserted name (or its
    /// fingerprint when the name is not known).
    pub who: String,
    /// The agent's fingerprint; `None` for the user.
    pub fingerprint: Option<String>,
    /// What this hop is for, as its delegator put it.
    pub purpose: Option<String>,
    /// What this hop holds (or asks for, at the last hop), one line each.
    pub scopes: Vec<String>,
    /// What it holds that the hop before did not.
    pub adds: Vec<String>,
    /// What the hop before held that it does not.
    pub loses: Vec<String>,
}

/// Builds the detail of `request` for `principal`, shown as `user`.
/// `user_key` is the key the chain behind the request must be rooted in
/// ([`crate::parent`]); `names` maps agent ids seen before to the names
/// they gave; `name_reused` says whether another key used this agent's
/// name before.
#[allow(clippy::too_many_arguments)]
pub fn detail(
    request: &StoredRequest,
    decision: Option<StoredDecision>,
    principal: &str,
    user: &str,
    user_key: &PublicKey,
    names: &BTreeMap<String, String>,
    known: bool,
    name_reused: bool,
) -> Result<RequestDetail, crate::ClientError> {
    let asked = RequestClaims::verify(&request.request, &Policy::default(), request.received_at)?;
    let claims = asked.claims();
    let agent_id = asked.signer().agent_id();
    let mut warnings = name_warnings(&claims.agent.name);
    if name_reused {
        warnings
            .push("another key used this name before: this may not be the agent you know".into());
    }
    let agent = AgentView {
        id: agent_id.to_string(),
        fingerprint: agent_id.fingerprint(),
        name: claims.agent.name.clone(),
        publisher: claims.agent.publisher.clone(),
        version: claims.agent.version.clone(),
        known,
        warnings,
    };
    let said = ServerSays::of(&request.tools, request.expires_at);
    let scopes: Vec<ScopeView> = claims
        .authorization_details
        .iter()
        .map(|d| scope_view_said(d, &said))
        .collect();
    let risk = scopes.iter().map(|s| s.risk).max().unwrap_or(Risk::Low);
    let (chain, chain_warning) = match crate::parent::verify(request, claims, principal, user_key) {
        Parent::None => (chain(None, claims, &agent, user, names), None),
        Parent::Verified(parent) => (chain(Some(&parent), claims, &agent, user, names), None),
        Parent::Refused(why) => (Vec::new(), Some(why)),
    };
    let needs_code =
        risk == Risk::High && !request.code_matched && request.state == RequestState::Pending;
    Ok(RequestDetail {
        id: request.id.clone(),
        state: request.state,
        received_at: request.received_at,
        expires_at: request.expires_at,
        agent,
        // Typed, not compared, while it is needed: the page does not get it.
        binding_code: if needs_code {
            String::new()
        } else {
            claims.binding_code.to_string()
        },
        intent: claims.intent.clone(),
        interpretation: claims.purpose.clone(),
        scopes,
        risk,
        chain,
        chain_warning,
        lifetime: claims.lifetime,
        max_depth: claims.max_depth,
        decision,
        oauth_client: claims.oauth_client.as_ref().map(|c| OAuthClientView {
            client_id: c.client_id.clone(),
            verified_by: match c.verified_by {
                ClientVerification::MetadataDocument => ClientCheck::MetadataDocument,
                ClientVerification::Registration => ClientCheck::Registration,
            },
            redirect_uri: c.redirect_uri.clone(),
            resource: c.resource.clone(),
        }),
        denied_before: request.denied_before,
        rules: Vec::new(),
        needs_code,
        code_misses: request.code_misses,
        flagged: request.flagged,
    })
}

/// A request as one row of the inbox list.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct InboxRow {
    /// The request's id.
    pub id: String,
    /// The agent's self-asserted name.
    pub agent_name: String,
    /// Its key's fingerprint.
    pub fingerprint: String,
    /// The code the agent showed its user, to match with this request;
    /// empty for a high-risk request, whose code the user types instead.
    pub binding_code: String,
    /// What it says it will do.
    pub interpretation: String,
    /// The highest risk among its scopes.
    pub risk: Risk,
    /// How many agents stand between the user and the requester, the
    /// requester included, counted on the verified chain only.
    pub hops: usize,
    /// Whether the request names a chain behind it that does not verify.
    pub chain_refused: bool,
    /// Whether its name raises warnings.
    pub suspicious_name: bool,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
}

/// What the inbox list must change to show the inbox now, given the rows
/// it holds: the page keeps its rows and asks only for what changed.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct InboxChanges {
    /// The rows of pending requests the list did not hold, newest first
    /// (by `received_at`, later first, then by `id`).
    pub added: Vec<InboxRow>,
    /// The ids the list held that are no longer pending.
    pub gone: Vec<String>,
    /// How many requests are pending now.
    pub pending: usize,
}

/// The inbox row of `request`, for `principal` whose key is `user_key`.
pub fn row(
    request: &StoredRequest,
    principal: &str,
    user_key: &PublicKey,
) -> Result<InboxRow, crate::ClientError> {
    let asked = RequestClaims::verify(&request.request, &Policy::default(), request.received_at)?;
    let claims = asked.claims();
    let agent_id = asked.signer().agent_id();
    let parent = crate::parent::verify(request, claims, principal, user_key);
    let said = ServerSays::of(&request.tools, request.expires_at);
    let risk = claims
        .authorization_details
        .iter()
        .map(|d| scope_view_said(d, &said).risk)
        .max()
        .unwrap_or(Risk::Low);
    Ok(InboxRow {
        id: request.id.clone(),
        agent_name: claims.agent.name.clone(),
        fingerprint: agent_id.fingerprint(),
        // A high-risk request's code is typed, not compared (`needs_code`).
        binding_code: if risk == Risk::High {
            String::new()
        } else {
            claims.binding_code.to_string()
        },
        interpretation: claims.purpose.clone(),
        risk,
        hops: match &parent {
            Parent::Verified(chain) => chain.links().len() + 1,
            Parent::None | Parent::Refused(_) => 1,
        },
        chain_refused: matches!(parent, Parent::Refused(_)),
        suspicious_name: !name_warnings(&claims.agent.name).is_empty(),
        received_at: request.received_at,
        expires_at: request.expires_at,
    })
}

/// What the user kept of one scope when narrowing: the scope's position
/// in the request, and the actions kept.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ScopeChoice {
    /// The scope's index in the request.
    pub index: usize,
    /// The actions kept; at least one.
    pub actions: Vec<String>,
    /// Whether the user confirms each call under this scope, one by one
    /// (`limits.confirm`, docs/protocol.md 5.8). Never drops a `confirm`
    /// the agent asked for itself.
    #[serde(default)]
    pub confirm: bool,
    /// Or: confirm only the calls that commit more than this amount (a
    /// decimal, in the currency of the scope's money limit, which it must
    /// have), and those that state none. Keeps a stricter `confirm` the
    /// agent asked for.
    #[serde(default)]
    pub confirm_above: Option<String>,
}

/// The scopes of `request` narrowed to `choices`: whole scopes dropped,
/// actions unticked. Anything not in the request is refused.
pub fn narrowed(
    request: &str,
    choices: &[ScopeChoice],
) -> Result<Vec<AuthorizationDetail>, crate::ClientError> {
    let (_, claims) = mandate_core::token::peek::<RequestClaims>(request)?;
    let asked = &claims.authorization_details;
    let invalid = |m: &str| crate::ClientError::Invalid(m.to_owned());
    let mut kept = Vec::with_capacity(choices.len());
    for choice in choices {
        let detail = asked
            .get(choice.index)
            .ok_or_else(|| invalid("no such scope"))?;
        if choice.actions.is_empty() {
            return Err(invalid(
                "keep at least one action of a scope, or drop the scope",
            ));
        }
        if choice.actions.iter().any(|a| !detail.actions.contains(a)) {
            return Err(invalid("an action the agent did not ask for"));
        }
        let mut scope = AuthorizationDetail {
            actions: choice.actions.iter().cloned().collect(),
            ..detail.clone()
        };
        if choice.confirm {
            scope.limits.confirm = Some(mandate_core::scope::Confirm { above: None });
        } else if let Some(amount) = &choice.confirm_above {
            scope.limits.confirm = Some(confirm_above(detail, amount)?);
        }
        kept.push(scope);
    }
    Ok(kept)
}

/// The confirmation `detail` asks for once the user asks to confirm its
/// calls above `amount`: the stricter of that and what the agent asked
/// for itself. `amount` is in the currency of the detail's money limit.
fn confirm_above(
    detail: &AuthorizationDetail,
    amount: &str,
) -> Result<mandate_core::scope::Confirm, crate::ClientError> {
    use mandate_core::scope::{Amount, Confirm, Money};
    let invalid = |m: &str| crate::ClientError::Invalid(m.to_owned());
    let limit = detail.limits.max_amount.as_ref().ok_or_else(|| {
        invalid("only a scope with a money limit can be confirmed above an amount")
    })?;
    let amount = Amount::try_from(amount.trim().to_owned())
        .map_err(|_| invalid("the amount to confirm above is not a decimal, such as 1000.00"))?;
    let mine = Money {
        amount,
        currency: limit.currency.clone(),
    };
    Ok(match &detail.limits.confirm {
        None => Confirm { above: Some(mine) },
        Some(Confirm {
            above: Some(theirs),
        }) if theirs.currency == mine.currency && theirs.amount.micros() > mine.amount.micros() => {
            Confirm { above: Some(mine) }
        }
        // Every call, or a lower amount, or another currency (where each
        // call in this one is confirmed): the agent's own is stricter.
        Some(theirs) => theirs.clone(),
    })
}

/// What the catalog says of action `action` of scope type `kind`.
fn catalog_action(kind: &str, action: &str) -> Option<&'static CatalogAction> {
    catalog().get(kind)?.actions.get(action)
}

/// A scope in plain language, from the catalog alone.
pub(crate) fn scope_view(d: &AuthorizationDetail) -> ScopeView {
    scope_view_said(d, &ServerSays::default())
}

/// A scope in plain language: from the catalog, and for an MCP tool the
/// catalog does not list, from what its server says of it (`said`): a
/// read-only tool is low risk, a destructive one high and irreversible,
/// any other medium. A tool nobody describes stays unknown.
pub(crate) fn scope_view_said(d: &AuthorizationDetail, said: &ServerSays) -> ScopeView {
    let known = catalog().get(&d.kind);
    let actions: Vec<ActionView> = d
        .actions
        .iter()
        .map(|a| match catalog_action(&d.kind, a) {
            Some(c) => ActionView {
                name: a.clone(),
                label: Some(c.label.clone()),
                risk: c.risk,
                irreversible: c.irreversible,
                server_says: None,
            },
            None => {
                let claim = said.claim(d, a);
                let (risk, irreversible) = match &claim {
                    None => (Risk::Unknown, false),
                    Some(c) if c.read_only => (Risk::Low, false),
                    Some(c) if c.destructive => (Risk::High, true),
                    Some(_) => (Risk::Medium, false),
                };
                ActionView {
                    name: a.clone(),
                    label: known
                        .and_then(|t| t.other_actions.as_ref())
                        .map(|o| o.label.replace("{action}", a)),
                    risk,
                    irreversible,
                    server_says: claim,
                }
            }
        })
        .collect();
    ScopeView {
        kind: d.kind.clone(),
        label: known.map(|t| t.label.clone()),
        risk: actions
            .iter()
            .map(|a| a.risk)
            .max()
            .unwrap_or(Risk::Unknown),
        actions,
        locations: d.locations.iter().map(|l| l.as_str().to_owned()).collect(),
        identifier: d.identifier.clone(),
        max_calls: d.limits.max_calls,
        max_amount: d.limits.max_amount.as_ref().and_then(money_text),
        confirm: d.limits.confirm.as_ref().map(|c| match &c.above {
            None => "each call".to_owned(),
            Some(m) => format!("calls above {}", money_text(m).unwrap_or_default()),
        }),
        raw: serde_json::to_string(d).unwrap_or_default(),
    }
}

/// `5000.00 USD`.
fn money_text(m: &mandate_core::scope::Money) -> Option<String> {
    let v = serde_json::to_value(m).ok()?;
    Some(format!(
        "{} {}",
        v.get("amount")?.as_str()?,
        v.get("currency")?.as_str()?
    ))
}

/// The hops from the user to the requester: the user, each link of the
/// verified `parent` chain, then the requester (verified by its own
/// request's signature).
fn chain(
    parent: Option<&VerifiedChain>,
    claims: &RequestClaims,
    agent: &AgentView,
    user: &str,
    names: &BTreeMap<String, String>,
) -> Vec<Hop> {
    let mut hops = vec![Hop {
        role: Role::User,
        who: user.to_owned(),
        fingerprint: None,
        purpose: None,
        scopes: Vec::new(),
        adds: Vec::new(),
        loses: Vec::new(),
    }];
    let mut before: Option<&[AuthorizationDetail]> = None;
    let links = parent
        .map(|p| p.links().collect::<Vec<_>>())
        .unwrap_or_default();
    for (n, link) in links.iter().enumerate() {
        let g = link.claims();
        let id = g.act.sub.to_string();
        let who = names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| g.act.sub.fingerprint());
        hops.push(agent_hop(
            n,
            who,
            g.act.sub.fingerprint(),
            &g.purpose,
            &g.authorization_details,
            before,
        ));
        before = Some(&g.authorization_details);
    }
    hops.push(agent_hop(
        links.len(),
        agent.name.clone(),
        agent.fingerprint.clone(),
        &claims.purpose,
        &claims.authorization_details,
        before,
    ));
    hops
}

/// The role of the `n`th agent from the user: the first is the agent, the
/// rest are sub-agents.
fn role(n: usize) -> Role {
    if n == 0 { Role::Agent } else { Role::SubAgent }
}

/// The hop of the `n`th agent, holding (or asking for) `held`, against what
/// the hop `before` held.
fn agent_hop(
    n: usize,
    who: String,
    fingerprint: String,
    purpose: &str,
    held: &[AuthorizationDetail],
    before: Option<&[AuthorizationDetail]>,
) -> Hop {
    Hop {
        role: role(n),
        who,
        fingerprint: Some(fingerprint),
        purpose: Some(purpose.to_owned()),
        scopes: lines(held),
        adds: difference(held, before),
        loses: before
            .map(|b| difference(b, Some(held)))
            .unwrap_or_default(),
    }
}

/// Each action at each location, on one line: `files: read at https://…`.
fn lines(details: &[AuthorizationDetail]) -> Vec<String> {
    details
        .iter()
        .flat_map(atoms)
        .map(|(line, _)| line)
        .collect()
}

/// The atoms of `these` (one action at one location) that `within` does
/// not cover, limits aside. With no `within` (the user), none is new.
fn difference(
    these: &[AuthorizationDetail],
    within: Option<&[AuthorizationDetail]>,
) -> Vec<String> {
    let Some(within) = within else {
        return Vec::new();
    };
    let bare: Vec<AuthorizationDetail> = within.iter().map(without_limits).collect();
    these
        .iter()
        .flat_map(atoms)
        .filter(|(_, atom)| scope::within(std::slice::from_ref(atom), &bare).is_err())
        .map(|(line, _)| line)
        .collect()
}

fn without_limits(d: &AuthorizationDetail) -> AuthorizationDetail {
    AuthorizationDetail {
        limits: Default::default(),
        ..d.clone()
    }
}

fn atoms(d: &AuthorizationDetail) -> Vec<(String, AuthorizationDetail)> {
    let mut out = Vec::new();
    for action in &d.actions {
        for location in &d.locations {
            let atom = AuthorizationDetail {
                actions: [action.clone()].into(),
                locations: vec![location.clone()],
                limits: Default::default(),
                ..d.clone()
            };
            let what = match &d.identifier {
                Some(id) => format!("{}: {action} {id} at {}", d.kind, location.as_str()),
                None => format!("{}: {action} at {}", d.kind, location.as_str()),
            };
            out.push((what, atom));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirming_above_an_amount_is_in_the_limits_currency_and_never_laxer_than_the_agent() {
        use mandate_core::scope::{Confirm, Money};
        let money = |amount: &str, currency: &str| -> Money {
            serde_json::from_value(serde_json::json!({ "amount": amount, "currency": currency }))
                .unwrap()
        };
        let mut pay =
            AuthorizationDetail::new("payments", ["create"], ["https://bank.example/"]).unwrap();
        pay.limits.max_amount = Some(money("5000.00", "EUR"));
        let above = |d: &AuthorizationDetail, a: &str| confirm_above(d, a).map(|c| c.above);
        // Asked for nothing: the user's amount, in the limit's currency.
        assert_eq!(
            above(&pay, " 1000.50 ").unwrap(),
            Some(money("1000.50", "EUR"))
        );
        // The agent asked above 2000: the user's 1000 is stricter.
        pay.limits.confirm = Some(Confirm {
            above: Some(money("2000", "EUR")),
        });
        assert_eq!(above(&pay, "1000").unwrap(), Some(money("1000", "EUR")));
        // The agent asked above 500: theirs stands.
        pay.limits.confirm = Some(Confirm {
            above: Some(money("500", "EUR")),
        });
        assert_eq!(above(&pay, "1000").unwrap(), Some(money("500", "EUR")));
        // Above an amount in another currency (each EUR call confirmed), or
        // each call: theirs stands.
        pay.limits.confirm = Some(Confirm {
            above: Some(money("10", "USD")),
        });
        assert_eq!(above(&pay, "1000").unwrap(), Some(money("10", "USD")));
        pay.limits.confirm = Some(Confirm { above: None });
        assert_eq!(above(&pay, "1000").unwrap(), None);
        // Not an amount; no money limit.
        for bad in ["", "1e3", "-5", "10.", "1,000", "0.1234567"] {
            assert!(above(&pay, bad).is_err(), "{bad:?}");
        }
        let read = AuthorizationDetail::new("files", ["read"], ["https://f.example/"]).unwrap();
        assert!(above(&read, "10").is_err());
    }

    #[test]
    fn the_catalog_reads() {
        let c = catalog();
        assert!(c.len() >= 5);
        assert!(c["files"].actions["delete"].irreversible);
        assert_eq!(c["payments"].actions["create"].risk, Risk::High);
    }

    #[test]
    fn unknown_types_and_actions_are_raw_and_flagged() {
        let d =
            AuthorizationDetail::new("files", ["read", "shred"], ["https://f.example/"]).unwrap();
        let v = scope_view(&d);
        assert_eq!(v.label.as_deref(), Some("Files"));
        assert_eq!(
            (v.actions[0].name.as_str(), v.actions[0].risk),
            ("read", Risk::Low)
        );
        assert_eq!(
            (v.actions[1].name.as_str(), v.actions[1].risk),
            ("shred", Risk::Unknown)
        );
        assert_eq!(v.actions[1].label, None);
        assert_eq!(v.risk, Risk::Unknown);
        // A tool of an MCP server is named, and its risk stays unknown.
        let d = AuthorizationDetail::new(
            "mcp",
            ["run_command", "resources/read"],
            ["https://gw.example/mcp"],
        )
        .unwrap();
        let v = scope_view(&d);
        assert_eq!(v.label.as_deref(), Some("MCP tools"));
        assert_eq!(v.actions[0].name, "resources/read");
        assert_eq!(v.actions[0].risk, Risk::Low);
        assert_eq!(
            v.actions[1].label.as_deref(),
            Some("Use the tool \u{201c}run_command\u{201d}")
        );
        assert_eq!((v.actions[1].risk, v.risk), (Risk::Unknown, Risk::Unknown));
        // What the server says of a tool, relayed by its gateway, sets its
        // risk, and is shown as the server's claim.
        let gw = mandate_core::SigningKey::from_seed(&[5; 32]);
        let at = 1_796_000_000;
        let said = ServerSays::of(
            &[crate::tool_claims::statement(
                &gw,
                "https://gw.example/mcp",
                at,
            )],
            at,
        );
        let d = AuthorizationDetail::new(
            "mcp",
            ["read_file", "run_command", "resources/read"],
            ["https://gw.example/mcp"],
        )
        .unwrap();
        let v = scope_view_said(&d, &said);
        let by_name = |n: &str| v.actions.iter().find(|a| a.name == n).unwrap();
        let read = by_name("read_file");
        assert_eq!((read.risk, read.irreversible), (Risk::Low, false));
        assert!(read.server_says.as_ref().unwrap().read_only);
        let run = by_name("run_command");
        assert_eq!((run.risk, run.irreversible), (Risk::High, true));
        assert!(run.server_says.as_ref().unwrap().destructive);
        let res = by_name("resources/read");
        assert_eq!(
            (res.risk, res.server_says.as_ref()),
            (Risk::Low, None),
            "the catalog's own"
        );
        assert_eq!(v.risk, Risk::High);
        let d =
            AuthorizationDetail::new("rockets", ["launch"], ["https://space.example/"]).unwrap();
        let v = scope_view(&d);
        assert_eq!((v.label, v.risk), (None, Risk::Unknown));
        assert!(v.raw.contains("rockets"));
        let d = AuthorizationDetail::new("payments", ["create"], ["https://pay.example/"]).unwrap();
        let v = scope_view(&d);
        assert_eq!(v.risk, Risk::High);
        assert!(v.actions[0].irreversible);
    }

    #[test]
    fn differences_are_per_action_and_location() {
        let parent = vec![
            AuthorizationDetail::new("files", ["read", "write"], ["https://f.example/a/"]).unwrap(),
        ];
        let child = vec![
            AuthorizationDetail::new("files", ["read", "delete"], ["https://f.example/a/x/"])
                .unwrap(),
        ];
        assert_eq!(
            difference(&child, Some(&parent)),
            ["files: delete at https://f.example/a/x/"]
        );
        assert_eq!(
            difference(&parent, Some(&child)),
            [
                "files: read at https://f.example/a/",
                "files: write at https://f.example/a/"
            ]
        );
        assert!(difference(&child, None).is_empty());
    }
}
