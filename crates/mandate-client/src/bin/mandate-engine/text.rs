//! `mandate-engine`'s output for people: the same facts as its JSON, laid
//! out for a terminal. Times are shown in UTC.

use std::fmt::Write as _;

use mandate_client::Account;
use mandate_client::activity::ActivityRow;
use mandate_client::commands::RulesView;
use mandate_client::delegations::{Delegations, GrantView};
use mandate_client::history::{StoredDecision, StoredRevocation, Verified};
use mandate_client::view::{InboxRow, RequestDetail, ScopeView};
use serde::Serialize;

/// The name an enum has in the JSON output: `approved`, `high`.
fn name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// A Unix time as `2026-12-03 19:42 UTC`.
fn at(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

pub fn account(account: Option<&Account>) -> String {
    match account {
        None => "Not signed in.".into(),
        Some(a) => format!(
            "Signed in as {} ({})\nUser key {}, at broker {}",
            a.name
                .as_deref()
                .or(a.email.as_deref())
                .unwrap_or(&a.principal),
            a.principal,
            a.key_fingerprint,
            a.broker_url
        ),
    }
}

pub fn inbox(rows: &[InboxRow]) -> String {
    if rows.is_empty() {
        return "No request is waiting.".into();
    }
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{}  code {}  {} ({}), {} risk{}\n    {}\n    lapses {}{}",
            r.id,
            r.binding_code,
            r.agent_name,
            r.fingerprint,
            name(&r.risk),
            match r.hops {
                1 => String::new(),
                n => format!(", {n} agents in the chain"),
            },
            r.interpretation,
            at(r.expires_at),
            if r.chain_refused {
                "\n    The chain behind it does not verify."
            } else {
                ""
            }
        );
    }
    out
}

/// A scope on one line: its kind, its actions (with what each means),
/// and where.
fn scope_line(s: &ScopeView) -> String {
    let actions: Vec<String> = s
        .actions
        .iter()
        .map(|a| match &a.label {
            Some(label) => format!("{} ({label})", a.name),
            None => a.name.clone(),
        })
        .collect();
    format!(
        "{}: {} on {}",
        s.label.as_deref().unwrap_or(&s.kind),
        actions.join(", "),
        s.locations.join(", ")
    )
}

pub fn detail(d: &RequestDetail) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Request {} ({})", d.id, name(&d.state));
    let _ = writeln!(
        out,
        "Agent: {} ({}){}",
        d.agent.name,
        d.agent.fingerprint,
        d.agent
            .publisher
            .as_deref()
            .map(|p| format!(", says it is from {p}"))
            .unwrap_or_default()
    );
    for warning in &d.agent.warnings {
        let _ = writeln!(out, "  Warning: {warning}");
    }
    let _ = writeln!(out, "Binding code: {}", d.binding_code);
    if let Some(intent) = &d.intent {
        let _ = writeln!(out, "Your words: {intent}");
    }
    let _ = writeln!(out, "Purpose: {}", d.interpretation);
    let _ = writeln!(out, "Scopes ({} risk):", name(&d.risk));
    for (i, s) in d.scopes.iter().enumerate() {
        let _ = writeln!(out, "  {i}. {}", scope_line(s));
        if let Some(id) = &s.identifier {
            let _ = writeln!(out, "     only {id}");
        }
        if let Some(n) = s.max_calls {
            let _ = writeln!(out, "     at most {n} calls");
        }
        if let Some(amount) = &s.max_amount {
            let _ = writeln!(out, "     at most {amount}");
        }
    }
    let _ = writeln!(out, "Chain:");
    for hop in &d.chain {
        let _ = writeln!(
            out,
            "  {}: {}{}",
            name(&hop.role),
            hop.who,
            hop.fingerprint
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
    }
    if let Some(warning) = &d.chain_warning {
        let _ = writeln!(out, "  Warning: {warning}");
    }
    let _ = writeln!(
        out,
        "Lifetime {} s, delegation depth {}; lapses {}",
        d.lifetime,
        d.max_depth,
        at(d.expires_at)
    );
    if let Some(t) = d.denied_before {
        let _ = writeln!(out, "You denied this agent at {}", at(t));
    }
    for fit in &d.rules {
        let _ = writeln!(
            out,
            "Goes past your rule {}:",
            fit.label.as_deref().unwrap_or(&fit.rule_id)
        );
        for difference in &fit.differences {
            let _ = writeln!(out, "  - {difference}");
        }
    }
    if d.needs_code {
        let _ = writeln!(
            out,
            "High risk: type the code the agent shows (`code {} CODE`) before approving",
            d.id
        );
    }
    if d.flagged {
        let _ = writeln!(out, "Flagged: the code was typed wrong three times");
    }
    if let Some(decision) = &d.decision {
        out.push_str(&decided(decision));
    }
    out
}

pub fn rules(r: &RulesView) -> String {
    let mut out = String::new();
    if r.rules.is_empty() {
        out.push_str("No rules.\n");
    }
    for rule in &r.rules {
        let state = match rule.ended_at {
            Some(t) => format!("ended {}", at(t)),
            None => format!("until {}", at(rule.expires_at)),
        };
        let _ = writeln!(
            out,
            "Rule {} for {} ({}), {state}; approved {} request(s)",
            rule.id,
            rule.label.as_deref().unwrap_or("an agent"),
            rule.agent_fingerprint,
            rule.matched
        );
        for s in &rule.scopes {
            let _ = writeln!(out, "  {}", scope_line(s));
        }
    }
    for b in &r.blocks {
        let _ = writeln!(
            out,
            "Denied always: {} ({}), {} request(s) refused",
            b.label.as_deref().unwrap_or("an agent"),
            b.agent,
            b.refusals
        );
    }
    out
}

fn decided(d: &StoredDecision) -> String {
    let delivery = match (&d.delivered_at, &d.refused_code) {
        (Some(t), _) => format!("delivered {}", at(*t)),
        (None, Some(code)) => format!("refused by the broker ({code})"),
        (None, None) => "waiting to be delivered".into(),
    };
    format!(
        "Decision: {} signed {}, {delivery}\n",
        name(&d.kind),
        at(d.decided_at)
    )
}

pub fn decisions(decisions: &[StoredDecision], verified: Option<&Verified>) -> String {
    let mut out = String::new();
    for d in decisions {
        let _ = write!(out, "{}  ", d.request_id);
        out.push_str(&decided(d));
    }
    if decisions.is_empty() {
        out.push_str("No decision yet.\n");
    }
    if let Some(v) = verified {
        out.push_str(&self::verified(v));
    }
    out
}

pub fn verified(v: &Verified) -> String {
    format!(
        "History intact: {} events and {} receipts, head {}\n",
        v.events, v.receipts, v.head
    )
}

pub fn revocation(r: &StoredRevocation) -> String {
    let delivery = match (&r.delivered_at, &r.refused_code) {
        (Some(_), _) => "delivered; resource servers refuse these grants from now on".into(),
        (None, Some(code)) => format!("refused by the broker ({code})"),
        (None, None) => "waiting to be delivered (run `deliver`)".into(),
    };
    let mut out = format!(
        "Revoked {} grant{} and everything delegated beneath: {delivery}\n",
        r.grants.len(),
        if r.grants.len() == 1 { "" } else { "s" }
    );
    for g in &r.grants {
        let _ = writeln!(out, "  {g}");
    }
    out
}

fn grant(out: &mut String, g: &GrantView, indent: usize) {
    let pad = " ".repeat(indent);
    let scopes: Vec<String> = g
        .scopes
        .iter()
        .map(|u| {
            let actions: Vec<&str> = u.scope.actions.iter().map(|a| a.name.as_str()).collect();
            format!(
                "{} {} on {}",
                u.scope.label.as_deref().unwrap_or(&u.scope.kind),
                actions.join(","),
                u.scope.locations.join(", ")
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "{pad}{}  {} to {}, from {}; until {}; {} action{}",
        g.id,
        name(&g.state),
        g.agent_name.as_deref().unwrap_or(&g.agent_fingerprint),
        g.issued_by,
        at(g.expires_at),
        g.actions,
        if g.actions == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "{pad}    {}: {}", g.purpose, scopes.join("; "));
}

pub fn delegations(d: &Delegations) -> String {
    let mut out = String::new();
    if d.active.is_empty() {
        out.push_str("No grant in force.\n");
    }
    for agent in &d.active {
        let _ = writeln!(
            out,
            "{} ({})",
            agent.agent_name.as_deref().unwrap_or("An agent"),
            agent.agent_fingerprint
        );
        for g in &agent.grants {
            grant(&mut out, g, 2 + 2 * g.depth as usize);
        }
    }
    if !d.ended.is_empty() {
        out.push_str("Ended:\n");
        for g in &d.ended {
            grant(&mut out, g, 2);
        }
    }
    out
}

pub fn activity(rows: &[ActivityRow]) -> String {
    if rows.is_empty() {
        return "No activity yet.".into();
    }
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{}  {}  {} {} ({}), {}{}",
            at(r.at),
            r.agent_name.as_deref().unwrap_or(&r.agent_fingerprint),
            r.kind,
            r.target,
            r.outcome,
            name(&r.status),
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "    {}", r.summary);
    }
    out
}
