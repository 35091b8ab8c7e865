//! Witness receipts: a resource server the broker trusts reports the
//! calls made to it; the user reads them beside the agents' receipts.

use axum::http::StatusCode;
use mandate_broker::router;
use mandate_broker::witness_service::Witness;
use mandate_core::token::{
    Action, Outcome, Policy, WitnessClaims, WitnessReport, digest_of, receipt_id, verify_witness,
};
use mandate_core::{Claims as _, SigningKey, TokenId};
use serde_json::{Value, json};

use crate::revocations::approved;
use crate::users::with_bearer;
use crate::{Harness, NOW, agent, call, get, harness};

const GATEWAY: &str = "http://127.0.0.1:7800/mcp";

fn witness_key() -> SigningKey {
    SigningKey::from_seed(&[77; 32])
}

/// The harness's broker, trusting [`witness_key`] for [`GATEWAY`].
async fn witnessed() -> Harness {
    let mut h = harness().await;
    let w = Witness::parse(&format!("{GATEWAY}={}", witness_key().thumbprint())).unwrap();
    h.state = h.state.clone().witnessed_by(vec![w]);
    h.app = router(h.state.clone());
    h
}

fn claims(grant: TokenId, jti: &str) -> WitnessClaims {
    WitnessClaims {
        grant,
        holder: agent(1).thumbprint(),
        action: Action {
            kind: "tools/call".into(),
            target: GATEWAY.into(),
            summary: "Called the tool read_file".into(),
        },
        name: Some("read_file".into()),
        dig: digest_of(br#"{"jsonrpc":"2.0"}"#),
        outcome: Outcome::Succeeded,
        trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        iat: NOW,
        jti: jti.to_string().try_into().unwrap(),
    }
}

async fn report(h: &Harness, key: &SigningKey, receipts: &[String]) -> (StatusCode, Value) {
    let body = json!({ "key": key.public().to_jwk(), "receipts": receipts });
    call(&h.app, crate::post("/v1/witness", body.to_string())).await
}

#[tokio::test]
async fn a_trusted_witness_reports_and_the_user_reads_it_back() {
    let h = witnessed().await;
    let grant = approved(&h, "w").await;
    let good = claims(grant, "w-1").sign(&witness_key());
    let (status, res) = report(&h, &witness_key(), std::slice::from_ref(&good)).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert!(res["results"][0]["seq"].is_i64(), "{res}");
    assert_eq!(
        res["results"][0]["id"],
        json!(TokenId::of(&good).to_string())
    );

    let (_, mine) = call(
        &h.app,
        with_bearer(get("/v1/receipts", None), &h.idp.token("alice", json!({}))),
    )
    .await;
    let items = mine["receipts"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["receipt"], json!(good));
    assert_eq!(items[0]["grant"], json!(grant.to_string()));
    assert_eq!(
        items[0]["witness"],
        json!(witness_key().thumbprint().to_string())
    );
    assert_eq!(items[0]["keys"], json!([witness_key().public().to_jwk()]));
    assert_eq!(items[0]["chain"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn each_receipt_is_judged_on_its_own() {
    let h = witnessed().await;
    let grant = approved(&h, "w").await;
    let first = claims(grant, "w-1").sign(&witness_key());
    report(&h, &witness_key(), std::slice::from_ref(&first)).await;
    let cases = [
        (first.clone(), "receipt.replayed"),
        (
            WitnessClaims {
                action: Action {
                    target: "http://127.0.0.1:7801/mcp".into(),
                    ..claims(grant, "x").action
                },
                ..claims(grant, "w-2")
            }
            .sign(&witness_key()),
            "witness.target",
        ),
        (
            claims(TokenId::of("no such grant"), "w-3").sign(&witness_key()),
            "witness.unknown_grant",
        ),
        (
            WitnessClaims {
                iat: NOW - 601,
                ..claims(grant, "w-4")
            }
            .sign(&witness_key()),
            "witness.late",
        ),
        (
            WitnessClaims {
                iat: NOW + 61,
                ..claims(grant, "w-5")
            }
            .sign(&witness_key()),
            "time.not_yet_valid",
        ),
        (claims(grant, "w-6").sign(&agent(1)), "header.kid_mismatch"),
        (
            {
                // w-7's header and claims under w-9's signature.
                let a = claims(grant, "w-7").sign(&witness_key());
                let b = claims(grant, "w-9").sign(&witness_key());
                let (head, _) = a.rsplit_once('.').unwrap();
                format!("{head}.{}", b.rsplit_once('.').unwrap().1)
            },
            "signature.invalid",
        ),
        (
            crate::request_token(&witness_key(), "r", &h.alice),
            "header.wrong_typ",
        ),
    ];
    let mut batch: Vec<String> = cases.iter().map(|(t, _)| t.clone()).collect();
    let fine = claims(grant, "w-8").sign(&witness_key());
    batch.push(fine.clone());
    let (status, res) = report(&h, &witness_key(), &batch).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    for (i, (_, code)) in cases.iter().enumerate() {
        let r = &res["results"][i];
        assert_eq!(r["error"]["code"].as_str(), Some(*code), "case {i}: {r}");
        assert!(r.get("seq").is_none(), "case {i}: {r}");
    }
    assert!(res["results"][cases.len()]["seq"].is_i64(), "{res}");
    assert_eq!(feed(&h).await, [first, fine]);
}

#[tokio::test]
async fn only_a_trusted_witness_reports() {
    let h = witnessed().await;
    let grant = approved(&h, "w").await;
    let stranger = SigningKey::from_seed(&[78; 32]);
    let token = claims(grant, "w-1").sign(&stranger);
    let (status, res) = report(&h, &stranger, &[token]).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("witness.unknown"))
    );
    // A broker that trusts no witness refuses every report.
    let plain = harness().await;
    let token = claims(grant, "w-2").sign(&witness_key());
    let (status, res) = report(&plain, &witness_key(), &[token]).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("witness.unknown"))
    );
    // Shapes: none, too many, no key.
    let (status, res) = report(&h, &witness_key(), &[]).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("witness.malformed"))
    );
    let many = vec![claims(grant, "w-3").sign(&witness_key()); 101];
    let (status, res) = report(&h, &witness_key(), &many).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("witness.malformed"))
    );
    let (status, res) = call(
        &h.app,
        crate::post("/v1/witness", json!({"receipts": []}).to_string()),
    )
    .await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body.malformed_json"))
    );
}

#[test]
fn a_witness_is_a_resource_and_a_thumbprint() {
    let jkt = witness_key().thumbprint();
    assert!(Witness::parse(&format!("{GATEWAY}={jkt}")).is_ok());
    for bad in [
        GATEWAY.to_owned(),
        format!("{GATEWAY}=abc"),
        format!("ftp://x/mcp={jkt}"),
        format!("http://example.com/mcp={jkt}"),
        format!("{GATEWAY}?q=1={jkt}"),
    ] {
        assert!(Witness::parse(&bad).is_err(), "{bad}");
    }
}

async fn report_signed(
    h: &Harness,
    key: &SigningKey,
    report: &str,
    receipts: &[String],
) -> (StatusCode, Value) {
    let body = json!({ "key": key.public().to_jwk(), "report": report, "receipts": receipts });
    call(&h.app, crate::post("/v1/witness", body.to_string())).await
}

fn report_of(receipts: &[WitnessClaims], jti: &str) -> WitnessReport {
    WitnessReport::sign(
        receipts,
        &witness_key(),
        NOW,
        jti.to_string().try_into().unwrap(),
    )
}

async fn feed(h: &Harness) -> Vec<String> {
    let (_, mine) = call(
        &h.app,
        with_bearer(get("/v1/receipts", None), &h.idp.token("alice", json!({}))),
    )
    .await;
    mine["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["receipt"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_report_is_one_signature_and_each_receipt_is_judged_and_verifies_on_its_own() {
    let h = witnessed().await;
    let grant = approved(&h, "w").await;
    let elsewhere = WitnessClaims {
        action: Action {
            target: "http://127.0.0.1:7801/mcp".into(),
            ..claims(grant, "x").action
        },
        ..claims(grant, "w-2")
    };
    let receipts = [
        claims(grant, "w-1"),
        elsewhere,
        claims(TokenId::of("no such grant"), "w-3"),
        WitnessClaims {
            iat: NOW - 601,
            ..claims(grant, "w-4")
        },
        WitnessClaims {
            iat: NOW + 61,
            ..claims(grant, "w-5")
        },
        claims(grant, "w-6"),
    ];
    let first = report_of(&receipts, "r-1");
    let (status, res) = report_signed(&h, &witness_key(), &first.report, &first.receipts).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let codes: Vec<Option<&str>> = res["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"]["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some("witness.target"),
            Some("witness.unknown_grant"),
            Some("witness.late"),
            Some("time.not_yet_valid"),
            None
        ]
    );
    for (r, payload) in res["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&first.receipts)
    {
        assert_eq!(r["id"], json!(TokenId::of(payload).to_string()), "{r}");
    }
    // Each stored receipt stands alone: its text verifies under the
    // witness's key, with the report's one signature and its path.
    let stored = feed(&h).await;
    assert_eq!(stored.len(), 2);
    for (text, jti) in stored.iter().zip(["w-1", "w-6"]) {
        let (id, c) =
            verify_witness(text, witness_key().public(), &Policy::default(), NOW).unwrap();
        assert_eq!(c, claims(grant, jti));
        assert_eq!(id, receipt_id(text));
        assert!(text.starts_with(&format!("{}~", first.report)), "{text}");
    }
    // The same receipt in another report is the same receipt.
    let second = report_of(&[claims(grant, "w-1"), claims(grant, "w-7")], "r-2");
    let (status, res) = report_signed(&h, &witness_key(), &second.report, &second.receipts).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(
        res["results"][0]["error"]["code"],
        json!("receipt.replayed")
    );
    assert!(res["results"][1]["seq"].is_i64(), "{res}");
    assert_eq!(feed(&h).await.len(), 3);
}

#[tokio::test]
async fn a_report_that_does_not_hold_its_receipts_is_refused_whole() {
    let h = witnessed().await;
    let grant = approved(&h, "w").await;
    let batch = report_of(
        &[
            claims(grant, "w-1"),
            claims(grant, "w-2"),
            claims(grant, "w-3"),
        ],
        "r-1",
    );
    let mut swapped = batch.receipts.clone();
    swapped.swap(0, 2);
    let mut edited = batch.receipts.clone();
    edited[1] = report_of(&[claims(grant, "w-9")], "r-9").receipts[0].clone();
    let stranger = SigningKey::from_seed(&[78; 32]);
    let strangers = WitnessReport::sign(
        &[claims(grant, "w-1")],
        &stranger,
        NOW,
        "r-3".to_string().try_into().unwrap(),
    );
    let single = claims(grant, "w-1").sign(&witness_key());
    let cases: [(&str, &[String], &str); 6] = [
        (&batch.report, &swapped, "signature.invalid"),
        (&batch.report, &edited, "signature.invalid"),
        (&batch.report, &batch.receipts[..2], "token.malformed"),
        (
            &strangers.report,
            &strangers.receipts,
            "header.kid_mismatch",
        ),
        (&single, &batch.receipts, "header.wrong_typ"),
        ("not a token", &batch.receipts, "token.malformed"),
    ];
    for (report, receipts, code) in cases {
        let (status, res) = report_signed(&h, &witness_key(), report, receipts).await;
        assert_eq!(
            (status, res["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{res}"
        );
    }
    assert!(
        feed(&h).await.is_empty(),
        "nothing of a refused report is stored"
    );
    let (status, res) = report_signed(&h, &witness_key(), &batch.report, &batch.receipts).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(feed(&h).await.len(), 3);
}
