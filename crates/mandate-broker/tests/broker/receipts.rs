//! Receipts: an agent reports under its chain, the user reads them back.

use axum::http::StatusCode;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Action, Actor, Confirmation, GrantClaims, Outcome, ReceiptClaims};
use mandate_core::{Claims as _, SigningKey, TokenId};
use serde_json::{Value, json};

use crate::revocations::{approved, revocation};
use crate::users::{alice_key, with_bearer};
use crate::{Harness, NOW, agent, call, get, harness};

/// Agent 1 delegates part of its grant to agent 2, locally.
async fn chain(h: &Harness) -> Vec<String> {
    let root_id = approved(h, "rc").await;
    let grants = h
        .store
        .grants_of(&h.alice.clone().try_into().unwrap())
        .await
        .unwrap();
    let root = grants.into_iter().find(|g| g.id == root_id).unwrap().token;
    let child = GrantClaims {
        sub: h.alice.clone().try_into().unwrap(),
        act: Actor {
            sub: agent(2).public().agent_id(),
        },
        cnf: Confirmation {
            jkt: agent(2).thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], ["https://f/r/q3"]).unwrap(),
        ],
        purpose: "Fetch the Q3 file".into(),
        intent: None,
        iat: NOW,
        nbf: NOW,
        exp: NOW + 300,
        jti: "child".to_string().try_into().unwrap(),
        max_depth: 0,
        prf: Some(root_id),
        req: None,
    }
    .sign(&agent(1));
    vec![root, child]
}

fn receipt(grant: TokenId, by: &SigningKey, jti: &str) -> String {
    ReceiptClaims {
        grant,
        action: Action {
            kind: "files.read".into(),
            target: "https://f/r/q3".into(),
            summary: "Read the Q3 file".into(),
        },
        outcome: Outcome::Succeeded,
        rationale: Some("The summary needs the figures".into()),
        cause: None,
        iat: NOW,
        jti: jti.to_string().try_into().unwrap(),
    }
    .sign(by)
}

fn report(receipt: &str, chain: &[String], keys: &[&SigningKey]) -> Value {
    json!({ "receipt": receipt, "chain": chain, "keys": keys.iter().map(|k| k.public().to_jwk()).collect::<Vec<_>>() })
}

#[tokio::test]
async fn a_sub_agent_reports_and_the_user_reads_it_back() {
    let h = harness().await;
    let chain = chain(&h).await;
    let leaf = TokenId::of(&chain[1]);
    let r = receipt(leaf, &agent(2), "r1");
    let body = report(&r, &chain, &[&agent(1), &agent(2)]);
    let (status, res) = call(&h.app, crate::post("/v1/receipts", body.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    let (status, res) = call(&h.app, crate::post("/v1/receipts", body.to_string())).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::CONFLICT, Some("receipt.replayed"))
    );

    let (_, mine) = call(
        &h.app,
        with_bearer(get("/v1/receipts", None), &h.idp.token("alice", json!({}))),
    )
    .await;
    let items = mine["receipts"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["receipt"].as_str(), Some(r.as_str()));
    assert_eq!(
        items[0]["chain"],
        json!(chain),
        "the chain it was made under, root first, comes with it"
    );
    assert_eq!(
        items[0]["keys"],
        json!([agent(1).public().to_jwk(), agent(2).public().to_jwk()]),
        "and the keys to check it"
    );
    let (_, theirs) = call(
        &h.app,
        with_bearer(get("/v1/receipts", None), &h.idp.token("bob", json!({}))),
    )
    .await;
    assert!(theirs["receipts"].as_array().unwrap().is_empty());
    // The broker learned the sub-delegation from the report.
    let grants = h
        .store
        .grants_of(&h.alice.clone().try_into().unwrap())
        .await
        .unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g.id == leaf && g.parent_id == Some(TokenId::of(&chain[0])))
    );
}

#[tokio::test]
async fn receipts_that_do_not_verify_are_refused_and_not_stored() {
    let h = harness().await;
    let chain = chain(&h).await;
    let leaf = TokenId::of(&chain[1]);
    let cases = vec![
        (
            report(
                &receipt(leaf, &agent(1), "w1"),
                &chain,
                &[&agent(1), &agent(2)],
            ),
            "header.kid_mismatch",
        ),
        (
            report(
                &receipt(TokenId::of("other"), &agent(2), "w2"),
                &chain,
                &[&agent(1), &agent(2)],
            ),
            "token.malformed",
        ),
        (
            report(&receipt(leaf, &agent(2), "w3"), &chain, &[&agent(2)]),
            "key.unknown",
        ),
        (
            report(&receipt(leaf, &agent(2), "w4"), &[], &[]),
            "receipt.malformed",
        ),
        (
            report(
                &receipt(leaf, &agent(2), "w5"),
                &chain[1..],
                &[&agent(1), &agent(2)],
            ),
            "chain.prf_mismatch",
        ),
    ];
    for (body, code) in cases {
        let (status, res) = call(&h.app, crate::post("/v1/receipts", body.to_string())).await;
        assert_eq!(
            (status, res["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{res}"
        );
    }
    // Once the root is revoked, nothing reported under it is accepted.
    let revoke = json!({ "revocation": revocation(&h.alice, vec![TokenId::of(&chain[0])], &alice_key(), "rr") });
    let (status, _) = call(&h.app, crate::post("/v1/revocations", revoke.to_string())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, res) = call(
        &h.app,
        crate::post(
            "/v1/receipts",
            report(
                &receipt(leaf, &agent(2), "w6"),
                &chain,
                &[&agent(1), &agent(2)],
            )
            .to_string(),
        ),
    )
    .await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("chain.revoked"))
    );
    let (_, mine) = call(
        &h.app,
        with_bearer(get("/v1/receipts", None), &h.idp.token("alice", json!({}))),
    )
    .await;
    assert!(
        mine["receipts"].as_array().unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn sub_agents_are_recorded_only_beneath_a_root_the_broker_holds() {
    let h = harness().await;
    // A root Alice's key signed, but that the broker never issued: no
    // request was decided here for it.
    let root = crate::users::grant(
        &h,
        TokenId::of("never filed"),
        &agent(1),
        &["read"],
        NOW + 600,
    )
    .sign(&alice_key());
    let r = receipt(TokenId::of(&root), &agent(1), "orphan");
    let body = report(&r, &[root], &[&agent(1)]);
    let (status, res) = call(&h.app, crate::post("/v1/receipts", body.to_string())).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("chain.unknown_root")),
        "{res}"
    );
    let alice = h.alice.clone().try_into().unwrap();
    assert!(
        h.store.grants_of(&alice).await.unwrap().is_empty(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn each_leaf_agent_reports_at_its_own_rate() {
    let h = crate::harness_with(mandate_broker::Limits {
        receipts: mandate_broker::ratelimit::Rate {
            burst: 2,
            per_second: 1e-9,
        },
        ..mandate_broker::Limits::default()
    })
    .await;
    let chain = chain(&h).await;
    let leaf = TokenId::of(&chain[1]);
    for n in 0..2 {
        let body = report(
            &receipt(leaf, &agent(2), &format!("ok{n}")),
            &chain,
            &[&agent(1), &agent(2)],
        );
        let (status, res) = call(&h.app, crate::post("/v1/receipts", body.to_string())).await;
        assert_eq!(status, StatusCode::CREATED, "{res}");
    }
    let body = report(
        &receipt(leaf, &agent(2), "over"),
        &chain,
        &[&agent(1), &agent(2)],
    );
    let (status, res) = call(&h.app, crate::post("/v1/receipts", body.to_string())).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate.receipts"))
    );
}
