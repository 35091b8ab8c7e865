//! The requests waiting for the user, and their decisions: the broker's
//! inbox read into the history (each request verified first), the rows
//! and the detail the page shows, and each decision signed and recorded
//! in the outbox.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex as StdMutex;

use mandate_core::token::{GrantClaims, PolicyClaims, RequestClaims};
use mandate_core::{BindingSet, Context, KeySet, Revoked, TokenId};
use tokio::sync::broadcast;

use super::session::Active;
use super::{Update, now};
use crate::decision::{Narrowing, Tier, block_for, denial_for, grant_by_rule, grant_for, rule_for};
use crate::history::{
    DecisionKind, History, NewDecision, NewRule, RequestState, StoredDecision, StoredRequest,
    StoredRule,
};
use crate::tiers::{MAX_CODE_MISSES, RuleFit};
use crate::view::{InboxChanges, InboxRow, RequestDetail};
use crate::{BrokerClient, ClientError};

/// The inbox.
pub(super) struct Inbox {
    history: History,
    broker: BrokerClient,
    updates: broadcast::Sender<Update>,
    /// Inbox rows by request id. A row is computed from a request that
    /// never changes, but computing it verifies the request's signature;
    /// with hundreds pending, each refresh would verify every one again.
    rows: StdMutex<HashMap<String, InboxRow>>,
}

impl Inbox {
    pub(super) fn new(
        history: History,
        broker: BrokerClient,
        updates: broadcast::Sender<Update>,
    ) -> Inbox {
        Inbox {
            history,
            broker,
            updates,
            rows: StdMutex::new(HashMap::new()),
        }
    }

    /// The pending requests the history holds, newest first.
    pub(super) async fn pending(&self, active: &Active) -> Result<Vec<StoredRequest>, ClientError> {
        self.history
            .requests(&active.profile.principal, Some(RequestState::Pending))
            .await
    }

    /// Fetches the inbox, records what is new (verified first), approves
    /// what a standing rule admits, and marks what the broker no longer
    /// lists. Returns how many requests rules approved: their grants wait
    /// in the outbox.
    pub(super) async fn fetch(&self, active: &Active) -> Result<usize, ClientError> {
        let items = self.broker.inbox(active.bearer.expose()).await?;
        let listed: Vec<String> = items.iter().map(|item| item.id.to_string()).collect();
        let (new, approved) = self.record_new(active, &items, &listed).await?;
        let expired = self
            .history
            .expire_missing(&active.profile.principal, &listed)
            .await?;
        self.announce(active, new, expired).await?;
        Ok(approved)
    }

    /// Fetches only the requests `ids` that the inbox stream announced
    /// (`GET /v1/inbox?ids=`), and records them as [`Inbox::fetch`] does,
    /// without reading the whole inbox: an arrival costs a request, not the
    /// inbox. Marks nothing expired, since the answer lists only these.
    pub(super) async fn fetch_new(
        &self,
        active: &Active,
        ids: &[String],
    ) -> Result<usize, ClientError> {
        let mut new = Vec::new();
        let mut approved = 0;
        for chunk in ids.chunks(mandate_broker::handlers::MAX_INBOX_IDS) {
            let items = self
                .broker
                .inbox_among(active.bearer.expose(), chunk)
                .await?;
            let listed: Vec<String> = items.iter().map(|item| item.id.to_string()).collect();
            let (more, by_rule) = self.record_new(active, &items, &listed).await?;
            new.extend(more);
            approved += by_rule;
        }
        self.announce(active, new, 0).await?;
        Ok(approved)
    }

    /// Records the requests `items` (whose ids are `listed`) that the
    /// history lacks, each verified first, and approves those a standing
    /// rule admits. Returns the new ones left for the user, and how many
    /// rules approved.
    async fn record_new(
        &self,
        active: &Active,
        items: &[crate::broker::InboxItem],
        listed: &[String],
    ) -> Result<(Vec<String>, usize), ClientError> {
        let principal = &active.profile.principal;
        let mut new = Vec::new();
        // Each new request is one durable transaction; known ones cost none.
        // Only the listed ids are looked up, however long the history.
        let known = self
            .history
            .known_among(
                principal,
                &listed.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await?;
        for (item, id) in items.iter().zip(listed) {
            if known.contains(id) {
                continue;
            }
            match self
                .history
                .record_request(&active.key, principal, item, now())
                .await
            {
                Ok(true) => new.push(item.id.to_string()),
                Ok(false) => {}
                // A request that does not verify is never shown.
                Err(ClientError::Token(e)) => {
                    tracing::warn!(request = %item.id, code = e.code(), "skipping a request that does not verify");
                }
                Err(e) => return Err(e),
            }
        }
        // A request that fits a standing rule is approved at once, quietly.
        let mut asked = Vec::with_capacity(new.len());
        let mut approved = 0;
        for id in new {
            match self.by_rule(active, &id).await {
                Ok(Some(rule)) => {
                    approved += 1;
                    let _ = self.updates.send(Update::AutoApproved {
                        request_id: id,
                        rule_id: rule.id,
                        label: rule.label,
                    });
                }
                Ok(None) => asked.push(id),
                Err(e) => {
                    tracing::warn!(request = %id, code = e.code(), "a rule could not approve a request");
                    asked.push(id);
                }
            }
        }
        Ok((asked, approved))
    }

    /// Tells the page of the requests `new` and of `expired` ones. Only a
    /// change is announced: a page that re-reads the inbox on each
    /// announcement must not set off another.
    async fn announce(
        &self,
        active: &Active,
        new: Vec<String>,
        expired: usize,
    ) -> Result<(), ClientError> {
        if !new.is_empty() || expired > 0 {
            let pending = self
                .history
                .pending_ids(&active.profile.principal)
                .await?
                .len();
            let _ = self.updates.send(Update::Inbox { pending, new });
        }
        Ok(())
    }

    /// The inbox as the list shows it: the pending requests the history
    /// holds, newest first.
    pub(super) async fn rows(&self, active: &Active) -> Result<Vec<InboxRow>, ClientError> {
        Ok(self.changes(active, &[]).await?.added)
    }

    /// What the list must change to show the inbox, when it shows the
    /// requests `held`: the rows it lacks, and which of its rows are no
    /// longer pending. Only the requests it lacks are read, so a list kept
    /// current request by request costs a row a request, not the whole
    /// inbox each time.
    pub(super) async fn changes(
        &self,
        active: &Active,
        held: &[String],
    ) -> Result<InboxChanges, ClientError> {
        let principal = &active.profile.principal;
        let pending = self.history.pending_ids(principal).await?;
        let now_pending: HashSet<&str> = pending.iter().map(String::as_str).collect();
        let held: HashSet<&str> = held.iter().map(String::as_str).collect();
        let gone = held
            .iter()
            .filter(|id| !now_pending.contains(*id))
            .map(|id| (*id).to_owned())
            .collect();
        let lacking: Vec<&str> = pending
            .iter()
            .map(String::as_str)
            .filter(|id| !held.contains(id))
            .collect();
        let mut requests = self.history.requests_among(principal, &lacking).await?;
        // One decided between the two reads is no longer the list's.
        requests.retain(|r| r.state == RequestState::Pending);
        let mut cache = self
            .rows
            .lock()
            .map_err(|_| ClientError::History("the inbox cache was poisoned".into()))?;
        // Only the rows still pending stay cached (request ids are unique
        // across principals: each is a hash of a signed token).
        cache.retain(|id, _| now_pending.contains(id.as_str()));
        let mut added = Vec::with_capacity(requests.len());
        for request in &requests {
            let row = match cache.get(&request.id) {
                Some(row) => row.clone(),
                None => {
                    let row = crate::view::row(request, principal, active.key.public())?;
                    cache.insert(request.id.clone(), row.clone());
                    row
                }
            };
            added.push(row);
        }
        Ok(InboxChanges {
            added,
            gone,
            pending: pending.len(),
        })
    }

    /// One request, ready to show: the agent, the scopes in plain
    /// language, the chain behind it, the decision.
    pub(super) async fn detail(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<RequestDetail, ClientError> {
        let principal = &active.profile.principal;
        let history = &self.history;
        let request = self.request(active, id).await?;
        let (known, name_reused) = history.agent_record(principal, id).await?;
        let names = history.agent_names(principal).await?;
        let user = active
            .profile
            .email
            .clone()
            .or_else(|| active.profile.name.clone())
            .unwrap_or_else(|| principal.clone());
        let mut detail = crate::view::detail(
            &request,
            history.decision(id).await?,
            principal,
            &user,
            active.key.public(),
            &names,
            known,
            name_reused,
        )?;
        if request.state == RequestState::Pending {
            detail.rules = self.rule_fits(active, &request).await?;
        }
        Ok(detail)
    }

    /// The standing rules about the agent of `request`, each with how the
    /// request goes past it.
    async fn rule_fits(
        &self,
        active: &Active,
        request: &StoredRequest,
    ) -> Result<Vec<RuleFit>, ClientError> {
        let asked = RequestClaims::verify(
            &request.request,
            &mandate_core::Policy::default(),
            request.received_at,
        )?;
        let agent = asked.signer().thumbprint();
        let rules = self
            .history
            .standing_rules(&active.profile.principal, &agent.to_string(), now())
            .await?;
        Ok(rules
            .into_iter()
            .filter_map(|rule| {
                let (_, policy) = mandate_core::token::peek::<PolicyClaims>(&rule.token).ok()?;
                let excesses = policy.excesses(asked.claims(), &agent);
                Some(RuleFit {
                    rule_id: rule.id,
                    label: rule.label,
                    differences: crate::tiers::differences(asked.claims(), &excesses),
                })
            })
            .collect())
    }

    /// Checks the binding code the user typed for the high-risk request
    /// `id`. Wrong [`MAX_CODE_MISSES`] times, the request is denied and
    /// flagged.
    pub(super) async fn match_code(
        &self,
        active: &Active,
        id: &str,
        typed: &str,
    ) -> Result<CodeCheck, ClientError> {
        let request = self.undecided(active, id).await?;
        let (_, asked) = mandate_core::token::peek::<RequestClaims>(&request.request)?;
        let principal = &active.profile.principal;
        let matched = crate::tiers::same_code(typed, asked.binding_code.as_str());
        let misses = self.history.note_code(principal, id, matched).await?;
        let denied = !matched && misses >= MAX_CODE_MISSES;
        if denied {
            self.history
                .flag_request(&active.key, principal, id, now())
                .await?;
            self.deny(
                active,
                id,
                Some("the binding code was typed wrong three times"),
                false,
            )
            .await?;
            tracing::warn!(request = %id, "binding code wrong three times: denied and flagged");
        }
        Ok(CodeCheck {
            matched,
            misses_left: (MAX_CODE_MISSES - misses).max(0),
            denied,
        })
    }

    /// One request of the signed-in user, as recorded.
    pub(super) async fn request(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<StoredRequest, ClientError> {
        self.history
            .request(&active.profile.principal, id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// The decision on request `id`.
    pub(super) async fn decision(&self, id: &str) -> Result<StoredDecision, ClientError> {
        self.history
            .decision(id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// Signs a grant of the request `id`, narrowed as the user chose and
    /// for the tier they chose, and records it in the outbox. For "always,
    /// within these bounds", also signs and records the rule.
    pub(super) async fn approve(
        &self,
        active: &Active,
        id: &str,
        narrowing: &Narrowing,
    ) -> Result<(), ClientError> {
        let request = self.undecided(active, id).await?;
        if self.detail(active, id).await?.needs_code {
            return Err(ClientError::Invalid(
                "this request is high risk: type the code the agent shows first".into(),
            ));
        }
        let (principal, at) = (active.principal()?, now());
        let grant = grant_for(
            &request.request,
            &principal,
            &active.key,
            narrowing,
            at,
            &mut rand_core::OsRng,
        )?;
        let rule = match narrowing.tier {
            Tier::Rule { days } => {
                // Signed just now, so its claims are ours.
                let (_, claims) = mandate_core::token::peek::<GrantClaims>(&grant)?;
                let (_, asked) = mandate_core::token::peek::<RequestClaims>(&request.request)?;
                Some(rule_for(
                    &claims,
                    &principal,
                    &active.key,
                    days,
                    Some(&asked.agent.name),
                    at,
                    &mut rand_core::OsRng,
                )?)
            }
            _ => None,
        };
        let decision = Decided {
            kind: DecisionKind::Grant,
            token: &grant,
            tier: narrowing.tier.as_str(),
            rule_id: None,
        };
        self.record(active, id, decision).await?;
        if let Some(rule) = rule {
            let (_, claims) = mandate_core::token::peek::<PolicyClaims>(&rule)?;
            let new = NewRule {
                id: &TokenId::of(&rule).to_string(),
                token: &rule,
                agent_jkt: &claims.agent.jkt.to_string(),
                label: claims.label.as_deref(),
                expires_at: claims.exp,
            };
            self.history
                .record_rule(&active.key, &active.profile.principal, new, at)
                .await?;
            tracing::info!(request = %id, rule = %new.id, "rule made");
        }
        Ok(())
    }

    /// Signs a denial of the request `id`, with an optional reason, and
    /// records it in the outbox. With `always`, first has the broker block
    /// the agent ("deny always", signed by the user's key): if the broker
    /// cannot be told, nothing is signed and the error says why.
    pub(super) async fn deny(
        &self,
        active: &Active,
        id: &str,
        reason: Option<&str>,
        always: bool,
    ) -> Result<(), ClientError> {
        let request = self.undecided(active, id).await?;
        let (principal, at) = (active.principal()?, now());
        if always {
            let agent = RequestClaims::agent_key(&request.request)?.thumbprint();
            let (_, asked) = mandate_core::token::peek::<RequestClaims>(&request.request)?;
            let policy = block_for(
                &agent,
                &principal,
                &active.key,
                Some(&asked.agent.name),
                at,
                &mut rand_core::OsRng,
            );
            self.broker.block(active.bearer.expose(), &policy).await?;
            let id = TokenId::of(&policy).to_string();
            self.history
                .log(
                    &active.key,
                    &active.profile.principal,
                    "block.stored",
                    &id,
                    Some(&policy),
                    at,
                )
                .await?;
        }
        let denial = denial_for(
            TokenId::of(&request.request),
            &principal,
            &active.key,
            reason,
            at,
            &mut rand_core::OsRng,
        );
        let decision = Decided {
            kind: DecisionKind::Denial,
            token: &denial,
            tier: if always { "block" } else { "standard" },
            rule_id: None,
        };
        self.record(active, id, decision).await
    }

    /// Approves the request `id` under the first standing rule about its
    /// agent that admits it, if one does: a grant signed by the user's
    /// key, recorded as approved by that rule. The rule's signature is
    /// checked again, under this user's key, before it is used.
    async fn by_rule(&self, active: &Active, id: &str) -> Result<Option<StoredRule>, ClientError> {
        let request = self.undecided(active, id).await?;
        let agent = RequestClaims::agent_key(&request.request)?.thumbprint();
        let at = now();
        let rules = self
            .history
            .standing_rules(&active.profile.principal, &agent.to_string(), at)
            .await?;
        if rules.is_empty() {
            return Ok(None);
        }
        let principal = active.principal()?;
        // The rules whose signatures hold under this user's key (the
        // context does not cross an await: it is not `Send`).
        let verified: Vec<(StoredRule, PolicyClaims)> = {
            let keys: KeySet = std::iter::once(*active.key.public()).collect();
            let mut bindings = BindingSet::new();
            bindings.insert(principal.clone(), active.user())?;
            let revoked = Revoked::default();
            let cx = Context {
                now: at,
                policy: mandate_core::Policy::default(),
                keys: &keys,
                bindings: &bindings,
                revoked: &revoked,
            };
            rules
                .into_iter()
                .filter_map(|rule| match PolicyClaims::verify(&rule.token, &cx) {
                    Ok(v) => Some((rule, v.into_claims())),
                    Err(e) => {
                        tracing::warn!(rule = %rule.id, code = e.code(), "a rule does not verify under this key; skipped");
                        None
                    }
                })
                .collect()
        };
        for (rule, policy) in verified {
            let Ok(grant) = grant_by_rule(
                &policy,
                &request.request,
                &principal,
                &active.key,
                at,
                &mut rand_core::OsRng,
            ) else {
                continue;
            };
            let decision = Decided {
                kind: DecisionKind::Grant,
                token: &grant,
                tier: "auto",
                rule_id: Some(&rule.id),
            };
            self.record(active, id, decision).await?;
            return Ok(Some(rule));
        }
        Ok(None)
    }

    async fn undecided(&self, active: &Active, id: &str) -> Result<StoredRequest, ClientError> {
        let request = self.request(active, id).await?;
        if request.state != RequestState::Pending {
            return Err(ClientError::Invalid(format!(
                "this request is already {}",
                request.state.as_str()
            )));
        }
        Ok(request)
    }

    async fn record(
        &self,
        active: &Active,
        id: &str,
        decided: Decided<'_>,
    ) -> Result<(), ClientError> {
        let token_id = TokenId::of(decided.token).to_string();
        self.history
            .record_decision(
                &active.key,
                &active.profile.principal,
                id,
                NewDecision {
                    kind: decided.kind,
                    token: decided.token,
                    token_id: &token_id,
                    tier: decided.tier,
                    rule_id: decided.rule_id,
                },
                now(),
            )
            .await?;
        tracing::info!(request = %id, kind = ?decided.kind, tier = decided.tier, "decision recorded");
        Ok(())
    }
}

/// What came of a binding code the user typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct CodeCheck {
    /// Whether it was the agent's code: approving is now possible.
    pub matched: bool,
    /// How many more wrong codes deny the request.
    pub misses_left: i64,
    /// Whether this miss denied (and flagged) the request.
    pub denied: bool,
}

/// A decision to record, with its tier.
struct Decided<'a> {
    kind: DecisionKind,
    token: &'a str,
    tier: &'a str,
    rule_id: Option<&'a str>,
}
