//! Attribution: from verified grants and receipts, the chain behind one
//! action, as data a UI renders:
//!
//! user intent -> agent interpretation -> agent decision -> sub-agent action

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::Error;
use crate::chain::KeySet;
use crate::chain::Link;
use crate::jws::{self, TokenId, TokenKind};
use crate::key::{AgentId, Thumbprint};
use crate::token::{Action, Claims as _, Outcome, Policy, Principal, ReceiptClaims, UnixTime};

/// A receipt whose signature verified under the key of the grant it names.
#[derive(Debug, Clone)]
pub struct Receipt {
    id: TokenId,
    agent: AgentId,
    claims: ReceiptClaims,
}

impl Receipt {
    /// The receipt's id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The acting agent.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// Its claims.
    pub fn claims(&self) -> &ReceiptClaims {
        &self.claims
    }

    /// Its claims, taking them.
    pub fn into_claims(self) -> ReceiptClaims {
        self.claims
    }

    /// Verifies a receipt made under `grant`: it must name that grant and be
    /// signed by the grant's grantee.
    pub fn verify(
        compact: &str,
        grant: &Link,
        keys: &KeySet,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<Receipt, Error> {
        let token = jws::parse(compact, TokenKind::Receipt)?;
        let grantee = grant.claims.cnf.jkt;
        if token.kid != grantee {
            return Err(Error::KidMismatch);
        }
        let key = keys.get(&grantee).ok_or(Error::UnknownKey)?;
        token.verify(key)?;
        let claims: ReceiptClaims = token.claims()?;
        claims.check(policy, now)?;
        if claims.grant != grant.id {
            return Err(Error::Malformed("receipt names another grant"));
        }
        Ok(Receipt {
            id: token.id,
            agent: AgentId::from_thumbprint(grantee),
            claims,
        })
    }

    /// Verifies a witness receipt (protocol.md 4.10: a `mandate-witness+jwt`,
    /// or a receipt of a `mandate-witness-report+jwt`) of a call made under
    /// `grant`, signed by `witness`, a key the caller trusts as the witness
    /// of the resource it names. It must name that grant, and its
    /// `action.target` must be a location in 5.3's grammar that a location
    /// of the grant covers (`call.out_of_scope`, whatever the type or the
    /// action: a refused call is witnessed too). It stands as a receipt of
    /// the grant's agent, whose call the witness saw: its action and
    /// outcome, without a rationale or a cause; its own claims come with it.
    pub fn witnessed(
        compact: &str,
        grant: &Link,
        witness: &crate::PublicKey,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<(Receipt, crate::token::WitnessClaims), Error> {
        let (id, w) = crate::token::verify_witness(compact, witness, policy, now)?;
        if w.grant != grant.id {
            return Err(Error::Malformed("witness receipt names another grant"));
        }
        // A witness speaks only of resources the grant reaches: a key
        // trusted for one resource cannot testify about the grant's use
        // anywhere else. The target is held to the grammar a call's
        // location is (5.3), so that `.../reports/../payroll` is not
        // "under" `.../reports/`.
        if crate::uri::check_location(&w.action.target).is_err()
            || !grant
                .claims
                .authorization_details
                .iter()
                .any(|d| d.locations.iter().any(|l| l.covers(&w.action.target)))
        {
            return Err(Error::OutOfScope);
        }
        let receipt = Receipt {
            id,
            agent: AgentId::from_thumbprint(grant.claims.cnf.jkt),
            claims: ReceiptClaims {
                grant: w.grant,
                action: w.action.clone(),
                outcome: w.outcome,
                rationale: None,
                cause: None,
                iat: w.iat,
                jti: w.jti.clone(),
            },
        };
        Ok((receipt, w))
    }
}

/// One step of an attribution chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// What the user asked for, as signed into the root grant.
    Intent {
        /// The user.
        principal: Principal,
        /// The instruction, if the root grant carries one.
        text: Option<String>,
    },
    /// A grant: an agent's interpretation of its task, approved by the issuer.
    Interpretation {
        /// The grant.
        grant: TokenId,
        /// The key that signed it: the user's at the root, the delegating agent's below.
        issuer: Thumbprint,
        /// The grantee.
        agent: AgentId,
        /// The signed purpose.
        purpose: String,
    },
    /// An earlier action that caused a later one.
    Decision(ActionStep),
    /// The action being explained.
    Action(ActionStep),
    /// A grant or receipt the chain refers to but that is not known here.
    Missing {
        /// Its id.
        id: TokenId,
    },
}

/// An action taken by an agent, from its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionStep {
    /// The receipt.
    pub receipt: TokenId,
    /// The grant it was taken under.
    pub grant: TokenId,
    /// The agent.
    pub agent: AgentId,
    /// What it did.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it decided to.
    pub rationale: Option<String>,
}

impl ActionStep {
    fn of(r: &Receipt) -> ActionStep {
        ActionStep {
            receipt: r.id,
            grant: r.claims.grant,
            agent: r.agent,
            action: r.claims.action.clone(),
            outcome: r.claims.outcome,
            rationale: r.claims.rationale.clone(),
        }
    }
}

/// The explanation of one receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    /// The receipt explained.
    pub receipt: TokenId,
    /// The steps, from the user's intent to the action.
    pub steps: Vec<Step>,
    /// Whether every grant and receipt referred to was known.
    pub complete: bool,
}

/// Verified grants and receipts, indexed for attribution.
#[derive(Debug, Default)]
pub struct Ledger<'a> {
    grants: HashMap<TokenId, &'a Link>,
    receipts: HashMap<TokenId, &'a Receipt>,
}

/// The longest cause chain followed.
const MAX_CAUSES: usize = 64;

impl<'a> Ledger<'a> {
    /// A ledger over these grants and receipts.
    pub fn new(
        grants: impl IntoIterator<Item = &'a Link>,
        receipts: impl IntoIterator<Item = &'a Receipt>,
    ) -> Ledger<'a> {
        Ledger {
            grants: grants.into_iter().map(|g| (g.id, g)).collect(),
            receipts: receipts.into_iter().map(|r| (r.id, r)).collect(),
        }
    }

    /// Explains one receipt, or `None` if it is not in the ledger.
    pub fn attribute(&self, receipt: &TokenId) -> Option<Attribution> {
        let action = *self.receipts.get(receipt)?;
        let mut complete = true;
        let mut missing = Vec::new();

        // The grant path from the root down to the action's grant.
        let mut path: Vec<&Link> = Vec::new();
        let mut next = Some(action.claims.grant);
        while let Some(id) = next {
            if path.len() >= crate::MAX_CHAIN_LINKS || path.iter().any(|g| g.id == id) {
                complete = false;
                break;
            }
            match self.grants.get(&id) {
                Some(g) => {
                    path.push(g);
                    next = g.claims.prf;
                }
                None => {
                    complete = false;
                    missing.push(Step::Missing { id });
                    break;
                }
            }
        }
        path.reverse();

        // The causes, newest first. A chain of causes ends at the request a
        // grant on the path answered; any other unknown id is missing.
        let requests: HashSet<TokenId> = path.iter().filter_map(|g| g.claims.req).collect();
        let mut causes: Vec<&Receipt> = Vec::new();
        let mut seen = HashSet::from([action.id]);
        let mut next = action.claims.cause;
        while let Some(id) = next {
            if causes.len() >= MAX_CAUSES || !seen.insert(id) {
                complete = false;
                break;
            }
            match self.receipts.get(&id) {
                Some(r) => {
                    causes.push(r);
                    next = r.claims.cause;
                }
                None if requests.contains(&id) => break,
                None => {
                    complete = false;
                    missing.push(Step::Missing { id });
                    break;
                }
            }
        }
        causes.reverse();

        let mut steps = missing;
        if let Some(root) = path.first().filter(|g| g.claims.prf.is_none()) {
            steps.push(Step::Intent {
                principal: root.claims.sub.clone(),
                text: root.claims.intent.clone(),
            });
        }
        let mut placed = vec![false; causes.len()];
        for grant in &path {
            steps.push(Step::Interpretation {
                grant: grant.id,
                issuer: grant.issuer,
                agent: grant.claims.act.sub,
                purpose: grant.claims.purpose.clone(),
            });
            for (cause, done) in causes.iter().zip(placed.iter_mut()) {
                if !*done && cause.claims.grant == grant.id {
                    steps.push(Step::Decision(ActionStep::of(cause)));
                    *done = true;
                }
            }
        }
        for (cause, done) in causes.iter().zip(&placed) {
            if !done {
                steps.push(Step::Decision(ActionStep::of(cause)));
            }
        }
        steps.push(Step::Action(ActionStep::of(action)));
        Some(Attribution {
            receipt: action.id,
            steps,
            complete,
        })
    }
}
