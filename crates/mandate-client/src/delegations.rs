//! The authority the user has handed out: their grants and the
//! sub-delegations beneath them, what each was used for, and what falls
//! when one is revoked.

use std::collections::{BTreeMap, HashMap, HashSet};

use mandate_core::token::{GrantClaims, peek};
use serde::Serialize;

use crate::ClientError;
use crate::activity::{GrantRow, GrantUse};
use crate::history::History;
use crate::view::{ScopeView, scope_view};

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum GrantState {
    /// In force.
    Active,
    /// Revoked (it, or a grant above it).
    Revoked,
    /// Past its expiry.
    Expired,
}

/// One scope of a grant, and whether it was used.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ScopeUse {
    /// The scope in plain language.
    pub scope: ScopeView,
    /// The actions agents took under it (through this grant or beneath it,
    /// or through the grant it replaced when that was narrowed to what was
    /// used).
    pub used: Vec<String>,
    /// The actions never used.
    pub unused: Vec<String>,
}

/// One grant, as the delegations screen shows it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct GrantView {
    /// The grant's id.
    pub id: String,
    /// The grant it was delegated from; `None` for the user's own.
    pub parent: Option<String>,
    /// Hops from the user: 0 for the user's grant to an agent.
    pub depth: u32,
    /// The agent it was given to (its id).
    pub agent: String,
    /// That agent's fingerprint.
    pub agent_fingerprint: String,
    /// The name the agent gave itself, if it ever asked the user.
    pub agent_name: Option<String>,
    /// Who gave it: `you`, or the delegating agent's name or fingerprint.
    pub issued_by: String,
    /// The purpose signed into it.
    pub purpose: String,
    /// Its scopes, granted against used.
    pub scopes: Vec<ScopeUse>,
    /// How many more hops it allows.
    pub max_depth: u8,
    /// When it was issued.
    pub issued_at: i64,
    /// When it expires.
    pub expires_at: i64,
    /// When it (or a grant above it) was revoked.
    pub revoked_at: Option<i64>,
    /// Where it stands.
    pub state: GrantState,
    /// For the user's own grants, the tier it was approved for: `once`,
    /// `lease` (a countdown and Stop), `rule`, `auto` (a rule approved it)
    /// or `standard`. `None` for sub-delegations.
    pub tier: Option<String>,
    /// Verified actions taken under it and beneath it (and under the grant
    /// it replaced, when that was narrowed to what was used).
    pub actions: i64,
    /// The last of them.
    pub last_used: Option<i64>,
}

/// One agent and the grants it holds.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AgentGrants {
    /// The agent's id.
    pub agent: String,
    /// Its fingerprint.
    pub agent_fingerprint: String,
    /// Its self-asserted name, if it ever asked the user.
    pub agent_name: Option<String>,
    /// Its grants, oldest first.
    pub grants: Vec<GrantView>,
}

/// The delegations screen.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Delegations {
    /// Grants in force, by agent.
    pub active: Vec<AgentGrants>,
    /// Grants that ended (revoked or expired), newest first.
    pub ended: Vec<GrantView>,
}

/// What revoking a grant takes down with it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RevokePreview {
    /// The grant.
    pub grant: GrantView,
    /// The sub-delegations beneath it still in force, which fall with it.
    pub falls: Vec<GrantView>,
    /// Requests waiting in the inbox from sub-agents under it.
    pub pending_requests: Vec<String>,
}

impl History {
    /// Every grant of `principal`'s the history holds, with its usage.
    /// `user` is the user key's thumbprint: what it signed, the user gave.
    pub async fn grant_views(
        &self,
        principal: &str,
        user: &mandate_core::Thumbprint,
        now: i64,
    ) -> Result<Vec<GrantView>, ClientError> {
        let rows = self.grant_rows(principal).await?;
        let usage = self.grant_usage(principal).await?;
        // A grant re-issued narrower carries on the one it replaced: what was
        // used under the old one counts for the new one, or every scope of
        // the new grant would show as never used.
        let reissued = self.replacements(principal).await?;
        let names = self.agent_names(principal).await?;
        let tiers: HashMap<String, String> = sqlx::query_as(
            "SELECT token_id, tier FROM decisions WHERE principal = ? AND kind = 'grant'",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect();

        let parsed: Vec<(GrantRow, GrantClaims, mandate_core::Thumbprint)> = rows
            .into_iter()
            .filter_map(|r| {
                let (kid, claims) = peek::<GrantClaims>(&r.token).ok()?;
                Some((r, claims, kid))
            })
            .collect();
        let index: HashMap<&str, usize> = parsed
            .iter()
            .enumerate()
            .map(|(i, (r, _, _))| (r.id.as_str(), i))
            .collect();
        // Each grant's ancestors, nearest first (bounded: chains are short).
        let ancestors = |mut i: usize| {
            let mut up = Vec::new();
            while let Some(p) = parsed[i].0.parent.as_deref().and_then(|p| index.get(p)) {
                if up.len() >= mandate_core::MAX_CHAIN_LINKS || up.contains(p) {
                    break;
                }
                up.push(*p);
                i = *p;
            }
            up
        };
        // Usage rolls up: an action under a sub-grant uses its ancestors too.
        let mut kinds: Vec<HashSet<String>> = vec![HashSet::new(); parsed.len()];
        let mut counts = vec![(0i64, None::<i64>); parsed.len()];
        // A grant, then each that replaced it (bounded, as chains are).
        let heirs = |i: usize| {
            std::iter::successors(Some(parsed[i].0.id.as_str()), |g| {
                reissued.get(*g).map(String::as_str)
            })
            .take(mandate_core::MAX_CHAIN_LINKS)
            .filter_map(|g| index.get(g).copied())
        };
        for GrantUse {
            grant_id: grant,
            kind,
            actions: n,
            last_at: last,
        } in &usage
        {
            let Some(&i) = index.get(grant.as_str()) else {
                continue;
            };
            for j in std::iter::once(i).chain(ancestors(i)).flat_map(heirs) {
                kinds[j].insert(kind.clone());
                counts[j].0 += n;
                counts[j].1 = counts[j].1.max(Some(*last));
            }
        }
        let name_of = |agent: &mandate_core::AgentId| names.get(&agent.to_string()).cloned();
        Ok(parsed
            .iter()
            .enumerate()
            .map(|(i, (row, claims, kid))| {
                let up = ancestors(i);
                let revoked_at = std::iter::once(i)
                    .chain(up.iter().copied())
                    .filter_map(|j| parsed[j].0.revoked_at)
                    .min();
                let expires_at = std::iter::once(i)
                    .chain(up.iter().copied())
                    .map(|j| parsed[j].1.exp)
                    .min()
                    .unwrap_or(claims.exp);
                let state = if revoked_at.is_some() {
                    GrantState::Revoked
                } else if expires_at <= now {
                    GrantState::Expired
                } else {
                    GrantState::Active
                };
                let agent = mandate_core::AgentId::from_thumbprint(claims.cnf.jkt);
                let issuer = mandate_core::AgentId::from_thumbprint(*kid);
                let scopes = claims
                    .authorization_details
                    .iter()
                    .map(|d| {
                        let (used, unused) = d
                            .actions
                            .iter()
                            .cloned()
                            .partition(|a| kinds[i].contains(&format!("{}.{a}", d.kind)));
                        ScopeUse {
                            scope: scope_view(d),
                            used,
                            unused,
                        }
                    })
                    .collect();
                GrantView {
                    id: row.id.clone(),
                    parent: row.parent.clone(),
                    depth: u32::try_from(up.len()).unwrap_or(u32::MAX),
                    agent: agent.to_string(),
                    agent_fingerprint: agent.fingerprint(),
                    agent_name: name_of(&agent),
                    issued_by: if kid == user {
                        "you".into()
                    } else {
                        name_of(&issuer).unwrap_or_else(|| issuer.fingerprint())
                    },
                    purpose: claims.purpose.clone(),
                    scopes,
                    max_depth: claims.max_depth,
                    issued_at: claims.iat,
                    expires_at,
                    revoked_at,
                    state,
                    tier: tiers.get(&row.id).cloned(),
                    actions: counts[i].0,
                    last_used: counts[i].1,
                }
            })
            .collect())
    }

    /// The delegations screen: grants in force by agent, and those ended.
    pub async fn delegations(
        &self,
        principal: &str,
        user: &mandate_core::Thumbprint,
        now: i64,
    ) -> Result<Delegations, ClientError> {
        let mut groups: BTreeMap<String, AgentGrants> = BTreeMap::new();
        let mut ended = Vec::new();
        for g in self.grant_views(principal, user, now).await? {
            if g.state != GrantState::Active {
                ended.push(g);
                continue;
            }
            groups
                .entry(g.agent.clone())
                .or_insert_with(|| AgentGrants {
                    agent: g.agent.clone(),
                    agent_fingerprint: g.agent_fingerprint.clone(),
                    agent_name: g.agent_name.clone(),
                    grants: Vec::new(),
                })
                .grants
                .push(g);
        }
        let mut active: Vec<AgentGrants> = groups.into_values().collect();
        // The agents the user granted to first, each in the order it was
        // first given authority; sub-agents after them.
        active.sort_by_key(|a| {
            (
                a.grants.iter().map(|g| g.depth).min(),
                a.grants.iter().map(|g| g.issued_at).min(),
                a.agent.clone(),
            )
        });
        ended.sort_by_key(|g| std::cmp::Reverse(g.revoked_at.unwrap_or(g.expires_at)));
        Ok(Delegations { active, ended })
    }

    /// What revoking grant `id` takes down.
    pub async fn revoke_preview(
        &self,
        principal: &str,
        user: &mandate_core::Thumbprint,
        id: &str,
        now: i64,
    ) -> Result<RevokePreview, ClientError> {
        let views = self.grant_views(principal, user, now).await?;
        let grant = views
            .iter()
            .find(|g| g.id == id)
            .cloned()
            .ok_or(ClientError::NotFound)?;
        let mut below: HashSet<String> = HashSet::from([grant.id.clone()]);
        // Parents come before children (issued_at order), but a sub-grant
        // issued in the same second may not: repeat until nothing changes.
        loop {
            let before = below.len();
            for g in &views {
                if g.parent.as_ref().is_some_and(|p| below.contains(p)) {
                    below.insert(g.id.clone());
                }
            }
            if below.len() == before {
                break;
            }
        }
        let mut falls: Vec<GrantView> = views
            .into_iter()
            .filter(|g| g.id != grant.id && below.contains(&g.id) && g.state == GrantState::Active)
            .collect();
        falls.sort_by_key(|g| (g.depth, g.issued_at));
        let pending_requests = self
            .pending_parent_chains(principal)
            .await?
            .into_iter()
            .filter(|(_, chain)| {
                serde_json::from_str::<Vec<String>>(chain).is_ok_and(|c| {
                    c.iter()
                        .any(|g| below.contains(&mandate_core::TokenId::of(g).to_string()))
                })
            })
            .map(|(id, _)| id)
            .collect();
        Ok(RevokePreview {
            grant,
            falls,
            pending_requests,
        })
    }
}

/// An agent to filter the activity by.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AgentChoice {
    /// Its id.
    pub agent: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its self-asserted name, if it ever asked the user.
    pub name: Option<String>,
}

impl History {
    /// Every agent that holds or held one of `principal`'s grants.
    pub async fn agents(&self, principal: &str) -> Result<Vec<AgentChoice>, ClientError> {
        // The name each agent gave last.
        let names = self.agent_names(principal).await?;
        Ok(self
            .grantees(principal)
            .await?
            .into_iter()
            .map(|agent| AgentChoice {
                name: names.get(&agent).cloned(),
                fingerprint: agent
                    .parse::<mandate_core::AgentId>()
                    .map_or_else(|_| agent.clone(), |a| a.fingerprint()),
                agent,
            })
            .collect())
    }
}
