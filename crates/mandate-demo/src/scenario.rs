//! The three demo scenarios, each an agent (and sub-agents) built on
//! mandate-agent. Each asks its user, waits for the decision, then follows
//! through: it calls the example resource servers ([`crate::resources`])
//! and signs a receipt, with its rationale, for every step, each naming the
//! step that caused it. A call's receipt names its action as the scope
//! type and action it used (`k8s.pods.read`), which is how the app counts
//! what each grant was used for.
//!
//! Progress goes to stdout as one JSON object per line, with `scenario` and
//! `step` (`waiting`, `asked`, `approved`, `denied`, `expired`, `receipt`,
//! `refused`, `done`), so that tests can follow it; or, with [`Format::Text`], as one
//! sentence per line for people.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use mandate_agent::{
    Action, Agent, AgentError, AgentInfo, Ask, Broker, Delegation, Mandate, Outcome, Report,
};
use mandate_core::scope::{Amount, Currency, Money};
use mandate_core::{AuthorizationDetail, TokenId};
use reqwest::Method;
use serde_json::{Value, json};

/// One of the demo scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A Kubernetes troubleshooting agent: read-only, one namespace, one hour.
    K8s,
    /// A GDPR compliance agent: every department's marketing data and the
    /// audit logs.
    Gdpr,
    /// A supply-chain agent with two sub-agents, one of which places orders
    /// under a spending limit.
    SupplyChain,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 3] = [Scenario::K8s, Scenario::Gdpr, Scenario::SupplyChain];

    /// Its name in progress lines and file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::K8s => "k8s",
            Scenario::Gdpr => "gdpr",
            Scenario::SupplyChain => "supply-chain",
        }
    }

    /// Acts the scenario out on `stage`. A denial or an expiry ends it
    /// early, and is not an error.
    pub async fn run(self, stage: &Stage) -> anyhow::Result<()> {
        let outcome = match self {
            Scenario::K8s => k8s(stage).await,
            Scenario::Gdpr => gdpr(stage).await,
            Scenario::SupplyChain => supply_chain(stage).await,
        };
        match outcome {
            Err(e) => match e.downcast_ref::<AgentError>() {
                Some(AgentError::Denied(reason)) => {
                    say(self, "denied", json!({ "reason": reason }));
                    Ok(())
                }
                Some(AgentError::Expired) => {
                    say(self, "expired", json!({}));
                    Ok(())
                }
                _ => Err(e),
            },
            Ok(()) => {
                say(self, "done", json!({}));
                Ok(())
            }
        }
    }
}

/// Where the scenarios play: the broker, the resource servers, the user
/// asked, and a directory for the agents' keys and mandates.
#[derive(Debug)]
pub struct Stage {
    /// The broker's URL.
    pub broker: String,
    /// The example resource servers' base URL.
    pub resources: String,
    /// The user the agents ask (`issuer#subject`).
    pub principal: String,
    /// Keys (`NAME.key`) and mandates (`NAME.mandate.json`) are kept here.
    pub dir: PathBuf,
    /// How long an agent waits for its user's decision.
    pub decision_timeout: Duration,
    /// How long between asks while the user has not signed in yet. The
    /// broker lets one agent file a request every 3 s on average (after a
    /// burst of 20), so a longer wait can go on for as long as it takes.
    pub retry: Duration,
}

/// How progress lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// One sentence per line, for a terminal.
    Text,
}

static FORMAT: std::sync::OnceLock<Format> = std::sync::OnceLock::new();

/// Sets how progress lines are written (JSON unless set).
pub fn set_format(format: Format) {
    let _ = FORMAT.set(format);
}

fn say(scenario: Scenario, step: &str, mut fields: Value) {
    fields["scenario"] = json!(scenario.name());
    fields["step"] = json!(step);
    let line = match FORMAT.get().copied().unwrap_or(Format::Json) {
        Format::Json => fields.to_string(),
        Format::Text => {
            let text = |k: &str| fields[k].as_str().unwrap_or("").to_owned();
            let what = match step {
                "asked" => format!(
                    "asked for authority; binding code {}: approve or deny it in the app",
                    text("binding_code")
                ),
                "approved" => "approved; following through".into(),
                "receipt" => format!("{}: {}", text("agent"), text("summary")),
                "refused" => format!(
                    "{}: {} was refused ({})",
                    text("agent"),
                    text("path"),
                    text("code")
                ),
                "waiting" if text("code") == "rate" => {
                    "the broker asks to slow down; asking again later".into()
                }
                "waiting" => "waiting for the user to sign in".into(),
                "denied" => "denied".into(),
                "expired" => "the request lapsed undecided".into(),
                "done" => "done".into(),
                other => other.into(),
            };
            format!("[{}] {what}", scenario.name())
        }
    };
    // A closed stdout loses the progress lines only; the work goes on.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// An agent of a scenario, with its key kept in the stage's directory.
struct Actor<'a> {
    stage: &'a Stage,
    scenario: Scenario,
    file: &'static str,
    agent: Agent,
    http: reqwest::Client,
}

/// How a call went: the answer, or the resource server's refusal.
enum Answer {
    Ok(Value),
    Refused { status: u16, code: String },
}

impl<'a> Actor<'a> {
    fn new(
        stage: &'a Stage,
        scenario: Scenario,
        file: &'static str,
        name: &str,
    ) -> anyhow::Result<Actor<'a>> {
        let path = stage.dir.join(format!("{file}.key"));
        let key = mandate_keyfile::load_or_create(&path)
            .with_context(|| format!("the key {}", path.display()))?;
        let info = AgentInfo {
            name: name.to_owned(),
            publisher: Some("Mandate demo".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        };
        Ok(Actor {
            stage,
            scenario,
            file,
            agent: Agent::new(key, Broker::new(&stage.broker)?, info),
            http: mandate_agent::client::http_client()?,
        })
    }

    /// Asks the user, then waits for the decision. The broker files a
    /// request for a user who has not signed in yet like any other, and it
    /// waits for them. A refusal to file (a rate, or a full inbox) is
    /// tried again after `retry` times 3.
    async fn ask(&self, ask: &Ask) -> anyhow::Result<Mandate> {
        let mut waiting = "";
        let pending = loop {
            let (wait, code) = match self.agent.request(ask).await {
                Ok(pending) => break pending,
                Err(e) if e.code().starts_with("rate.") => (self.stage.retry * 3, "rate"),
                Err(e) if e.code() == "request.too_many_pending" => {
                    (self.stage.retry * 3, "request.too_many_pending")
                }
                // The user said no to this agent: not now (the cooldown
                // after a denial), or never (a block). Neither is asked again.
                Err(e) if e.code() == "request.cooldown" || e.code() == "request.blocked" => {
                    let retry_after = match &e {
                        AgentError::Broker(b) => b.retry_after().map(|d| d.as_secs()),
                        _ => None,
                    };
                    say(
                        self.scenario,
                        "not_asked",
                        json!({ "code": e.code(), "retry_after": retry_after }),
                    );
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            // Said once for each reason, not on every try.
            if waiting != code {
                waiting = code;
                say(self.scenario, "waiting", json!({ "code": code }));
            }
            tokio::time::sleep(wait).await;
        };
        say(
            self.scenario,
            "asked",
            json!({ "agent": self.agent.id().to_string(), "binding_code": pending.binding_code }),
        );
        // Kept for `mandate agent renew`: after the user narrows the grant
        // to what was used, a new grant answers the same request.
        let path = self.stage.dir.join(format!("{}.request.jwt", self.file));
        std::fs::write(&path, &pending.request)
            .with_context(|| format!("writing {}", path.display()))?;
        let mandate = self
            .agent
            .wait(&pending, self.stage.decision_timeout)
            .await?;
        say(
            self.scenario,
            "approved",
            json!({ "agent": self.agent.id().to_string(), "grant": mandate.leaf_id()?.to_string() }),
        );
        self.keep(&mandate)?;
        Ok(mandate)
    }

    /// Writes the mandate beside the key, for `mandate agent call`.
    fn keep(&self, mandate: &Mandate) -> anyhow::Result<()> {
        self.keep_as(self.file, mandate)
    }

    fn keep_as(&self, name: &str, mandate: &Mandate) -> anyhow::Result<()> {
        let path = self.stage.dir.join(format!("{name}.mandate.json"));
        write_json(&path, mandate)
    }

    /// This sub-agent asks the user itself, under `parent`'s mandate and
    /// with its endorsement, for what `parent` does not hold: the user sees
    /// the chain behind the request. `None` if the user says no.
    async fn escalate(
        &self,
        parent: &Actor<'_>,
        mandate: &Mandate,
        ask: &Ask,
    ) -> anyhow::Result<Option<Mandate>> {
        let pending = parent.agent.escalate(mandate, &self.agent, ask).await?;
        say(
            self.scenario,
            "asked",
            json!({ "agent": self.agent.id().to_string(), "via": parent.file,
                    "binding_code": pending.binding_code }),
        );
        match self.agent.wait(&pending, self.stage.decision_timeout).await {
            Ok(granted) => {
                say(
                    self.scenario,
                    "approved",
                    json!({ "agent": self.agent.id().to_string(), "grant": granted.leaf_id()?.to_string() }),
                );
                Ok(Some(granted))
            }
            Err(AgentError::Denied(reason)) => {
                say(
                    self.scenario,
                    "denied",
                    json!({ "agent": self.file, "reason": reason }),
                );
                Ok(None)
            }
            Err(AgentError::Expired) => {
                say(self.scenario, "expired", json!({ "agent": self.file }));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Calls the resource servers under `mandate`.
    async fn call(
        &self,
        mandate: &Mandate,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.stage.resources);
        let bytes = body
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let answer = self.send(mandate, &method, &url, &bytes, None).await?;
        let Answer::Refused { code, .. } = &answer else {
            return Ok(answer);
        };
        if code != "confirm.required" {
            return Ok(answer);
        }
        // The server wants the user's confirmation of this exact call.
        let summary = format!("{method} {path} with {}", String::from_utf8_lossy(&bytes));
        let pending = self
            .agent
            .ask_confirmation(mandate, method.as_str(), &url, &bytes, &summary)
            .await?;
        say(
            self.scenario,
            "confirming",
            json!({ "agent": self.file, "call": pending.id }),
        );
        let token = self
            .agent
            .wait_confirmation(&pending, self.stage.decision_timeout)
            .await?;
        self.send(mandate, &method, &url, &bytes, Some(&token))
            .await
    }

    /// Sends one call, with a confirmation when given.
    async fn send(
        &self,
        mandate: &Mandate,
        method: &Method,
        url: &str,
        body: &[u8],
        confirmation: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method.clone(), url);
        for (name, value) in self.agent.present(mandate, method.as_str(), url)? {
            req = req.header(name, value);
        }
        if let Some(token) = confirmation {
            req = req.header(mandate_agent::CONFIRMATION_HEADER, token);
        }
        if !body.is_empty() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let res = req
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        Ok(if status.is_success() {
            Answer::Ok(body)
        } else {
            Answer::Refused {
                status: status.as_u16(),
                code: body["code"].as_str().unwrap_or("http.error").to_owned(),
            }
        })
    }

    /// Signs and sends a receipt.
    async fn report(
        &self,
        mandate: &Mandate,
        (kind, target, summary): (&str, &str, String),
        outcome: Outcome,
        rationale: &str,
        cause: Option<TokenId>,
    ) -> anyhow::Result<TokenId> {
        let id = self
            .agent
            .report(
                mandate,
                &Report {
                    action: Action {
                        kind: kind.into(),
                        target: target.into(),
                        summary: summary.clone(),
                    },
                    outcome,
                    rationale: Some(rationale.into()),
                    cause,
                },
            )
            .await?;
        say(
            self.scenario,
            "receipt",
            json!({ "agent": self.file, "receipt": id.to_string(), "summary": summary }),
        );
        Ok(id)
    }

    /// One step: a call, then its receipt, succeeded or refused.
    async fn step(
        &self,
        mandate: &Mandate,
        (method, path, body): (Method, &str, Option<Value>),
        action: (&str, &str),
        summary: impl FnOnce(&Value) -> String,
        rationale: &str,
        cause: Option<TokenId>,
    ) -> anyhow::Result<(TokenId, Option<Value>)> {
        let (kind, target) = action;
        match self.call(mandate, method, path, body).await? {
            Answer::Ok(value) => {
                let summary = summary(&value);
                let id = self
                    .report(
                        mandate,
                        (kind, target, summary),
                        Outcome::Succeeded,
                        rationale,
                        cause,
                    )
                    .await?;
                Ok((id, Some(value)))
            }
            Answer::Refused { status, code } => {
                say(
                    self.scenario,
                    "refused",
                    json!({ "agent": self.file, "path": path, "status": status, "code": code }),
                );
                let summary =
                    format!("Refused by the resource server ({code}): {kind} on {target}");
                let id = self
                    .report(
                        mandate,
                        (kind, target, summary),
                        Outcome::Refused,
                        rationale,
                        cause,
                    )
                    .await?;
                Ok((id, None))
            }
        }
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let part = path.with_extension("part");
    std::fs::write(&part, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn detail(kind: &str, actions: &[&str], location: &str) -> anyhow::Result<AuthorizationDetail> {
    AuthorizationDetail::new(kind, actions.iter().copied(), [location])
        .map_err(|e| anyhow::anyhow!("the scope {kind}: {e}"))
}

fn usd(amount: &str) -> anyhow::Result<Money> {
    Ok(Money {
        amount: Amount::try_from(amount.to_owned()).map_err(anyhow::Error::msg)?,
        currency: Currency::try_from("USD".to_owned()).map_err(anyhow::Error::msg)?,
    })
}

fn count(value: &Value, list: &str) -> usize {
    value[list].as_array().map_or(0, Vec::len)
}

const NAMESPACE: &str = "https://k8s.example/namespaces/shop/";

async fn k8s(stage: &Stage) -> anyhow::Result<()> {
    let me = Actor::new(stage, Scenario::K8s, "k8s", "Cluster Doctor")?;
    let mandate = me
        .ask(&Ask {
            principal: stage.principal.clone(),
            scopes: vec![
                detail("k8s.pods", &["read"], NAMESPACE)?,
                detail("k8s.events", &["read"], NAMESPACE)?,
                detail("k8s.logs", &["read"], NAMESPACE)?,
            ],
            purpose: "Read the pods, events and logs in the shop namespace for one hour, \
                      to find out why checkout keeps restarting. Read-only: I change nothing."
                .into(),
            intent: Some("Why does checkout keep restarting? Have a look.".into()),
            lifetime: 3600,
            max_depth: 0,
            expires_in: 3600,
        })
        .await?;
    let (pods, _) = me
        .step(
            &mandate,
            (Method::GET, "/k8s/namespaces/shop/pods", None),
            ("k8s.pods.read", "namespace/shop"),
            |v| {
                format!(
                    "Listed {} pods in shop; checkout-7f9c is in CrashLoopBackOff",
                    count(v, "pods")
                )
            },
            "Start from the pods' state, to find the one that restarts",
            None,
        )
        .await?;
    let (events, _) = me
        .step(
            &mandate,
            (Method::GET, "/k8s/namespaces/shop/events", None),
            ("k8s.events.read", "namespace/shop"),
            |v| {
                format!(
                    "Read {} events: checkout-7f9c was OOMKilled 14 times",
                    count(v, "events")
                )
            },
            "The restarts need a cause, and the events carry the reason each container was killed",
            Some(pods),
        )
        .await?;
    let (logs, _) = me
        .step(
            &mandate,
            (
                Method::GET,
                "/k8s/namespaces/shop/pods/checkout-7f9c/log",
                None,
            ),
            ("k8s.logs.read", "pod/checkout-7f9c"),
            |_| {
                "Read checkout-7f9c's log: the Java heap runs out while the price cache warms up"
                    .into()
            },
            "OOMKilled says the memory ran out, not why; the log shows what was filling it",
            Some(events),
        )
        .await?;
    me.report(
        &mandate,
        (
            "k8s.diagnosis",
            "deployment/checkout",
            "Diagnosis: raise checkout's memory limit above 256Mi, or warm the price cache lazily"
                .into(),
        ),
        Outcome::Succeeded,
        "The kills, the heap warning and the cache warm-up line up. I changed nothing: my grant is \
         read-only, so the fix is yours to make",
        Some(logs),
    )
    .await?;
    Ok(())
}

const DEPARTMENTS: [&str; 3] = ["emea", "amer", "apac"];

async fn gdpr(stage: &Stage) -> anyhow::Result<()> {
    let me = Actor::new(stage, Scenario::Gdpr, "gdpr", "Privacy Auditor")?;
    let mandate = me
        .ask(&Ask {
            principal: stage.principal.clone(),
            scopes: vec![
                detail(
                    "marketing_data",
                    &["read", "export"],
                    "https://data.example/marketing/",
                )?,
                detail("audit_logs", &["read"], "https://audit.example/logs/")?,
            ],
            purpose: "Read every department's marketing contacts and the audit logs, to find \
                      contacts kept after they asked to be erased (GDPR article 17), and export \
                      what I find if you ask me to. This is more than your own account can \
                      read: it sees your department only."
                .into(),
            intent: Some(
                "Check that marketing honours erasure requests, in every department.".into(),
            ),
            lifetime: 86_400,
            max_depth: 0,
            expires_in: 3600,
        })
        .await?;
    let mut last = None;
    let mut kept = Vec::new();
    for dept in DEPARTMENTS {
        let (id, value) = me
            .step(
                &mandate,
                (
                    Method::GET,
                    &format!("/data/marketing/{dept}/contacts"),
                    None,
                ),
                ("marketing_data.read", &format!("marketing/{dept}")),
                |v| {
                    format!(
                        "Read {dept}'s marketing contacts: {} in all, {} asked to be erased",
                        v["contacts"],
                        count(v, "erasure_requested")
                    )
                },
                "Every department keeps its own contact list; each must be checked",
                last,
            )
            .await?;
        if value.is_some_and(|v| count(&v, "erasure_requested") > 0) {
            kept.push(dept);
        }
        last = Some(id);
    }
    let (log, _) = me
        .step(
            &mandate,
            (Method::GET, "/audit/logs/erasures", None),
            ("audit_logs.read", "logs/erasures"),
            |v| {
                format!(
                    "Read the erasure log: {} requests, carried out in emea and apac",
                    count(v, "erasures")
                )
            },
            "The audit log says where each erasure was carried out",
            last,
        )
        .await?;
    me.report(
        &mandate,
        (
            "gdpr.finding",
            "marketing",
            if kept.is_empty() {
                "No contact was kept after an erasure request".into()
            } else {
                format!(
                    "Found contacts kept after their erasure requests in: {}",
                    kept.join(", ")
                )
            },
        ),
        Outcome::Succeeded,
        "A contact still listed after an erasure the audit log records is a contact kept \
         unlawfully. I read only; deleting them is for the department to do",
        Some(log),
    )
    .await?;
    Ok(())
}

const NORTHWIND_ORDERS: &str = "https://mail.example/orders@northwind.example";

async fn supply_chain(stage: &Stage) -> anyhow::Result<()> {
    let scenario = Scenario::SupplyChain;
    let planner = Actor::new(stage, scenario, "supply-planner", "Supply Planner")?;
    let analyst = Actor::new(stage, scenario, "market-analyst", "Market Analyst")?;
    let vendors = Actor::new(stage, scenario, "vendor-manager", "Vendor Manager")?;
    let market = detail("market_data", &["read"], "https://market.example/hardware/")?;
    let listed = detail("vendors", &["read"], "https://procurement.example/vendors")?;
    let mut orders = detail("purchase_order", &["place"], crate::resources::ORDERS)?;
    orders.limits.max_amount = Some(usd("50000")?);
    // An order above 10,000 USD waits for the user to confirm it: the
    // exact order, body and all (docs/protocol.md 4.13). Sub-grants keep it.
    orders.limits.confirm = Some(mandate_core::scope::Confirm {
        above: Some(usd("10000")?),
    });
    let mandate = planner
        .ask(&Ask {
            principal: stage.principal.clone(),
            scopes: vec![market.clone(), listed.clone(), orders.clone()],
            purpose: "Compare hardware prices and restock SSDs and RAM from approved vendors, \
                      spending at most 50,000 USD. I will hand the price analysis and the \
                      ordering to two sub-agents of my own."
                .into(),
            intent: Some("Optimize the hardware supply.".into()),
            lifetime: 7200,
            max_depth: 1,
            expires_in: 3600,
        })
        .await?;
    let plan = planner
        .report(
            &mandate,
            (
                "plan",
                "hardware supply",
                "Split the task: prices to a Market Analyst, orders to a Vendor Manager".into(),
            ),
            Outcome::Succeeded,
            "Comparing offers and placing orders are separate jobs; each sub-agent gets only \
             what its job needs, and the one that spends gets a smaller budget",
            None,
        )
        .await?;

    let for_analyst = planner.agent.delegate(
        &mandate,
        &analyst.agent.id(),
        &Delegation {
            scopes: Some(vec![market]),
            purpose: "Find the best current prices for 2TB SSDs and 64GB RAM".into(),
            intent: Some("Which vendor is cheapest for SSDs and for RAM?".into()),
            lifetime: 3600,
            max_depth: 0,
        },
    )?;
    analyst.keep(&for_analyst)?;
    let (prices, _) = analyst
        .step(
            &for_analyst,
            (Method::GET, "/market/hardware/prices", None),
            ("market_data.read", "hardware"),
            |v| {
                format!(
                    "Compared {} offers: Northwind is cheapest for SSDs (120.00), Fabrikam for RAM (198.00)",
                    count(v, "offers")
                )
            },
            "The planner asked for the cheapest vendor per part",
            Some(plan),
        )
        .await?;

    orders.limits.max_amount = Some(usd("20000")?);
    let for_vendors = planner.agent.delegate(
        &mandate,
        &vendors.agent.id(),
        &Delegation {
            scopes: Some(vec![listed, orders]),
            purpose: "Order 100 SSDs and 50 RAM modules from the cheapest approved vendors, \
                      at most 20,000 USD in all"
                .into(),
            intent: Some("Restock SSDs and RAM at the analyst's best prices.".into()),
            lifetime: 3600,
            max_depth: 0,
        },
    )?;
    vendors.keep(&for_vendors)?;
    let (approved, _) = vendors
        .step(
            &for_vendors,
            (Method::GET, "/procurement/vendors", None),
            ("vendors.read", "approved vendors"),
            |_| "Checked that Northwind and Fabrikam are approved vendors".into(),
            "Orders may go to approved vendors only",
            Some(prices),
        )
        .await?;
    let ssd = ("Northwind", "SSD 2TB", 100, "12000.00");
    let (ssd, _) = order(
        &vendors,
        &for_vendors,
        ssd,
        "Northwind is the cheapest approved vendor for SSDs",
        approved,
    )
    .await?;
    let ram = ("Fabrikam", "RAM 64GB", 50, "9900.00");
    let (ram, placed) = order(
        &vendors,
        &for_vendors,
        ram,
        "Fabrikam is the cheapest approved vendor for RAM; with the SSDs this passes my \
         20,000 USD limit, and the procurement service is the one to say so",
        ssd,
    )
    .await?;
    // Telling the vendor needs email, which the planner does not hold: the
    // vendor manager asks alice itself, with the planner behind it.
    let mut last = ram;
    let ask = Ask {
        principal: stage.principal.clone(),
        scopes: vec![detail("email", &["send"], NORTHWIND_ORDERS)?],
        purpose: "Email Northwind's order desk about the SSD order, to ask for delivery \
                  this week"
            .into(),
        intent: Some("Restock SSDs and RAM at the analyst's best prices.".into()),
        lifetime: 900,
        max_depth: 0,
        expires_in: 3600,
    };
    if let Some(email) = vendors.escalate(&planner, &mandate, &ask).await? {
        vendors.keep_as("vendor-manager-email", &email)?;
        let (sent, _) = vendors
            .step(
                &email,
                (
                    Method::POST,
                    "/mail/orders@northwind.example",
                    Some(json!({ "subject": "SSD order", "text": "Delivery this week, please." })),
                ),
                ("email.send", "orders@northwind.example"),
                |_| "Emailed Northwind's order desk: the SSD order, delivery this week".into(),
                "A large order arrives sooner when the vendor hears of it from a person's desk",
                Some(last),
            )
            .await?;
        last = sent;
    }
    planner
        .report(
            &mandate,
            (
                "plan.outcome",
                "hardware supply",
                if placed.is_some() {
                    "Restocked SSDs and RAM".into()
                } else {
                    "Restocked SSDs; the RAM order needs a larger budget, which is yours to give"
                        .into()
                },
            ),
            Outcome::Succeeded,
            "I do not raise my sub-agents' limits past what you granted; a refused order \
             comes back to you",
            Some(last),
        )
        .await?;
    Ok(())
}

/// The vendor manager orders `quantity` of `item` from `vendor` for
/// `amount` USD: one purchase order, and its receipt.
async fn order(
    vendors: &Actor<'_>,
    mandate: &Mandate,
    (vendor, item, quantity, amount): (&str, &str, u32, &str),
    rationale: &str,
    cause: TokenId,
) -> anyhow::Result<(TokenId, Option<Value>)> {
    let body = json!({ "vendor": vendor, "item": item, "quantity": quantity,
                       "amount": { "amount": amount, "currency": "USD" } });
    vendors
        .step(
            mandate,
            (Method::POST, "/procurement/orders", Some(body)),
            ("purchase_order.place", vendor),
            |v| {
                format!(
                    "Ordered {quantity} {item} from {vendor} for {amount} USD ({})",
                    v["order"].as_str().unwrap_or("?")
                )
            },
            rationale,
            Some(cause),
        )
        .await
}
