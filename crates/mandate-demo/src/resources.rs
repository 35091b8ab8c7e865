//! The example resource servers the demo agents call, in one process: a
//! Kubernetes API, departments' marketing data and audit logs, a market
//! data feed, a procurement service, and outgoing mail. Every route sits behind
//! [`mandate_agent::require_mandate`]; the data is made up and fixed.
//!
//! Paths map to scopes by their first segment: `/k8s/X` is
//! `https://k8s.example/X`, `/data/X` is `https://data.example/X`, and so
//! on (see [`need`]). A method and path no route names is refused by the
//! verifier (`call.no_need`), even under a valid mandate.
//!
//! Purchase orders commit money. The need of an order carries its amount,
//! read from the body, so the verifier holds each order to the chain's
//! per-call limit and currency (`call.out_of_scope`), and refuses a body
//! that is not an order (`call.unreadable`) before the handler runs.
//! Totals across calls are the resource server's to count
//! ([`mandate_core::scope::permits`]), so the procurement service keeps,
//! per leaf grant, what was spent, and refuses an order that would take
//! the total past the limit (`limit.exceeded`). It counts per leaf grant,
//! in memory: a parent's budget shared by two sub-grants is not summed
//! across them, and a restart forgets the totals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mandate_agent::{Mandated, Need, NoNeed, ResourceVerifier};
use mandate_core::TokenId;
use mandate_core::scope::{self, Amount, Call, Currency, Money};
use serde::Deserialize;
use serde_json::{Value, json};

/// The scope location of purchase orders.
pub const ORDERS: &str = "https://procurement.example/orders";

/// What a call to `path` needs; an order's amount comes from its `body`.
/// A method and path no route names needs nothing, and is refused.
pub fn need(method: &Method, path: &str, body: &[u8]) -> Result<Need, NoNeed> {
    let (service, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .ok_or(NoNeed::Undeclared)?;
    let location = format!("https://{service}.example/{rest}");
    let segments: Vec<&str> = rest.split('/').collect();
    let (kind, action) = match (method.as_str(), service, segments.as_slice()) {
        ("GET", "k8s", ["namespaces", _, "pods"]) => ("k8s.pods", "read"),
        ("GET", "k8s", ["namespaces", _, "events"]) => ("k8s.events", "read"),
        ("GET", "k8s", ["namespaces", _, "pods", _, "log"]) => ("k8s.logs", "read"),
        ("GET", "data", ["marketing", _, "contacts"]) => ("marketing_data", "read"),
        ("GET", "audit", ["logs", _]) => ("audit_logs", "read"),
        ("GET", "market", ["hardware", "prices"]) => ("market_data", "read"),
        ("GET", "procurement", ["vendors"]) => ("vendors", "read"),
        ("POST", "procurement", ["orders"]) => ("purchase_order", "place"),
        ("POST", "mail", [_]) => ("email", "send"),
        _ => return Err(NoNeed::Undeclared),
    };
    let amount = if kind == "purchase_order" {
        let order: Order =
            serde_json::from_slice(body).map_err(|_| NoNeed::Unreadable(ORDER_SHAPE))?;
        Some(order.amount)
    } else {
        None
    };
    Ok(Need {
        kind: kind.into(),
        action: action.into(),
        location,
        identifier: None,
        amount,
    })
}

const ORDER_SHAPE: &str =
    "the body must be an order: vendor, item, quantity, amount {amount, currency}";

/// The routes, behind `verifier`.
pub fn router(verifier: ResourceVerifier) -> Router {
    Router::new()
        .route("/k8s/namespaces/{ns}/pods", get(pods))
        .route("/k8s/namespaces/{ns}/events", get(events))
        .route("/k8s/namespaces/{ns}/pods/{pod}/log", get(log))
        .route("/data/marketing/{dept}/contacts", get(contacts))
        .route("/audit/logs/{name}", get(audit))
        .route("/market/hardware/prices", get(prices))
        .route("/procurement/vendors", get(vendors))
        .route("/procurement/orders", post(order))
        .route("/mail/{to}", post(mail))
        .with_state(Spending::default())
        .layer(axum::middleware::from_fn_with_state(
            verifier,
            mandate_agent::require_mandate,
        ))
}

async fn pods(Path(ns): Path<String>) -> Json<Value> {
    Json(json!({ "namespace": ns, "pods": [
        { "name": "checkout-7f9c", "status": "CrashLoopBackOff", "restarts": 14 },
        { "name": "cart-5d2e", "status": "Running", "restarts": 0 },
        { "name": "search-81aa", "status": "Running", "restarts": 1 },
    ]}))
}

async fn events(Path(ns): Path<String>) -> Json<Value> {
    Json(json!({ "namespace": ns, "events": [
        { "object": "pod/checkout-7f9c", "reason": "OOMKilled", "count": 14 },
        { "object": "pod/checkout-7f9c", "reason": "BackOff", "count": 9 },
        { "object": "pod/search-81aa", "reason": "Unhealthy", "count": 1 },
    ]}))
}

async fn log(Path((ns, pod)): Path<(String, String)>) -> Json<Value> {
    Json(json!({ "namespace": ns, "pod": pod, "lines": [
        "INFO  warming the price cache (412,000 items)",
        "WARN  heap at 251Mi of 256Mi",
        "ERROR java.lang.OutOfMemoryError: Java heap space",
    ]}))
}

async fn contacts(Path(dept): Path<String>) -> Json<Value> {
    // One department kept two contacts after they asked to be erased.
    let kept = if dept == "amer" {
        json!(["c-1042", "c-2291"])
    } else {
        json!([])
    };
    Json(json!({ "department": dept, "contacts": 1200, "erasure_requested": kept }))
}

async fn audit(Path(name): Path<String>) -> Json<Value> {
    Json(json!({ "log": name, "erasures": [
        { "contact": "c-1042", "requested": "2026-09-02", "done_in": ["emea", "apac"] },
        { "contact": "c-2291", "requested": "2026-10-17", "done_in": ["emea", "apac"] },
    ]}))
}

async fn prices() -> Json<Value> {
    Json(json!({ "currency": "USD", "offers": [
        { "vendor": "Northwind", "item": "SSD 2TB", "unit_price": "120.00" },
        { "vendor": "Contoso", "item": "SSD 2TB", "unit_price": "131.50" },
        { "vendor": "Northwind", "item": "RAM 64GB", "unit_price": "210.00" },
        { "vendor": "Fabrikam", "item": "RAM 64GB", "unit_price": "198.00" },
    ]}))
}

async fn vendors() -> Json<Value> {
    Json(json!({ "approved": ["Northwind", "Contoso", "Fabrikam"] }))
}

async fn mail(Path(to): Path<String>, Extension(m): Extension<Mandated>) -> Json<Value> {
    Json(json!({ "sent": true, "to": to, "from_agent": m.agent }))
}

/// What each leaf grant has spent, in millionths, by currency.
#[derive(Clone, Default)]
struct Spending(Arc<Mutex<HashMap<(TokenId, String), u128>>>);

/// A purchase order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    vendor: String,
    item: String,
    quantity: u32,
    amount: Money,
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

async fn order(
    State(spending): State<Spending>,
    Extension(m): Extension<Mandated>,
    body: Result<Json<Order>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // The verifier has read the order (its need), and held its amount to
    // the per-call limit and currency: what is left is the total.
    let Ok(Json(order)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "order.malformed",
            ORDER_SHAPE.into(),
        );
    };
    let key = (m.grant, String::from(order.amount.currency.clone()));
    // The lock is held from the check to the charge, so two orders at once
    // cannot both fit under what is left.
    let Ok(mut spent) = spending.0.lock() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "order.unavailable",
            "try again".into(),
        );
    };
    let before = spent.get(&key).copied().unwrap_or(0);
    let total = before.saturating_add(order.amount.amount.micros());
    let Some(total_money) = money(total, &order.amount.currency) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "order.malformed",
            "the amount is too large".into(),
        );
    };
    let call = Call {
        kind: "purchase_order",
        action: "place",
        location: ORDERS,
        identifier: None,
        amount: Some(&total_money),
    };
    if !scope::permits(&m.scopes, &call) {
        let limit = m
            .scopes
            .iter()
            .filter(|d| d.kind == "purchase_order")
            .find_map(|d| d.limits.max_amount.as_ref())
            .map_or_else(
                || "none".to_owned(),
                |l| {
                    format!(
                        "{} {}",
                        String::from(l.amount.clone()),
                        String::from(l.currency.clone())
                    )
                },
            );
        return refuse(
            StatusCode::FORBIDDEN,
            "limit.exceeded",
            format!(
                "this order would bring the grant's spending to {} {}, over its limit of {limit}",
                decimal(total),
                key.1
            ),
        );
    }
    spent.insert(key, total);
    drop(spent);
    (
        StatusCode::CREATED,
        Json(json!({
            "order": format!("PO-{}", &m.grant.to_string()[..8]),
            "vendor": order.vendor,
            "item": order.item,
            "quantity": order.quantity,
            "amount": order.amount,
            "grant_spent": decimal(total),
        })),
    )
        .into_response()
}

/// `micros` as a decimal string with two fraction digits (or more, when
/// needed).
fn decimal(micros: u128) -> String {
    let (units, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac % 10_000 == 0 {
        format!("{units}.{:02}", frac / 10_000)
    } else {
        format!("{units}.{frac:06}")
    }
}

fn money(micros: u128, currency: &Currency) -> Option<Money> {
    Some(Money {
        amount: Amount::try_from(decimal(micros)).ok()?,
        currency: currency.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_scopes() {
        let n = need(&Method::GET, "/k8s/namespaces/shop/pods/checkout/log", b"").unwrap();
        assert_eq!((n.kind.as_str(), n.action.as_str()), ("k8s.logs", "read"));
        assert_eq!(
            n.location,
            "https://k8s.example/namespaces/shop/pods/checkout/log"
        );
        assert_eq!(n.amount, None);
        // Another method, or a path no route names, needs nothing: refused.
        assert_eq!(
            need(&Method::DELETE, "/procurement/orders", b""),
            Err(NoNeed::Undeclared)
        );
        assert_eq!(
            need(&Method::GET, "/k8s/secrets", b""),
            Err(NoNeed::Undeclared)
        );
        assert_eq!(need(&Method::GET, "/k8s", b""), Err(NoNeed::Undeclared));
    }

    #[test]
    fn an_order_needs_its_amount() {
        let body = br#"{"vendor":"Contoso","item":"SSD 2TB","quantity":10,
                        "amount":{"amount":"120.50","currency":"USD"}}"#;
        let n = need(&Method::POST, "/procurement/orders", body).unwrap();
        assert_eq!(
            (n.kind.as_str(), n.action.as_str(), n.location.as_str()),
            ("purchase_order", "place", ORDERS)
        );
        let amount = n.amount.unwrap();
        assert_eq!(
            (String::from(amount.amount), String::from(amount.currency)),
            ("120.50".to_owned(), "USD".to_owned())
        );
        // An order that does not say how much it spends is not read.
        for body in [&b"not json"[..], br#"{"vendor":"Contoso"}"#, b""] {
            assert_eq!(
                need(&Method::POST, "/procurement/orders", body),
                Err(NoNeed::Unreadable(ORDER_SHAPE))
            );
        }
    }

    #[test]
    fn amounts_print_as_decimals() {
        assert_eq!(decimal(12_000_000_000), "12000.00");
        assert_eq!(decimal(1_500_000), "1.50");
        assert_eq!(decimal(1_234_567), "1.234567");
        assert_eq!(decimal(0), "0.00");
    }
}
