//! Witness receipts in the history: a resource server's signed account of
//! an agent's call, checked here under the key the broker names as the
//! witness and the user's own chain, kept in the signed receipt chain, and
//! traced back like the agent's own receipts. Real SQLite, no broker.

use mandate_client::activity::{ActivityFilter, Checker};
use mandate_client::broker::ReceiptItem;
use mandate_client::history::History;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{
    Action, Outcome, Policy, WitnessClaims, WitnessReport, digest_of, open_witness_report,
};
use mandate_core::{Claims as _, Principal, SigningKey, TokenId};

const NOW: i64 = 1_800_000_000;
const GATEWAY: &str = "http://127.0.0.1:7900/mcp";

fn witness(key: &SigningKey, grant: TokenId, holder: &SigningKey, jti: &str, iat: i64) -> String {
    witness_at(GATEWAY, key, grant, holder, jti, iat)
}

fn witness_at(
    target: &str,
    key: &SigningKey,
    grant: TokenId,
    holder: &SigningKey,
    jti: &str,
    iat: i64,
) -> String {
    let claims = WitnessClaims {
        grant,
        holder: holder.thumbprint(),
        action: Action {
            kind: "tools/call".into(),
            target: target.into(),
            summary: "Called the tool run_command".into(),
        },
        name: Some("run_command".into()),
        dig: digest_of(b"{}"),
        outcome: Outcome::Succeeded,
        trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        iat,
        jti: jti.to_owned().try_into().unwrap(),
    };
    // As the gateway sends them: in a report, one signature for the batch;
    // this one with a sibling, so that it travels with an audit path.
    let sibling = WitnessClaims {
        jti: format!("{jti}-sibling").try_into().unwrap(),
        ..claims.clone()
    };
    let report = WitnessReport::sign(
        &[claims, sibling],
        key,
        iat,
        "r".to_owned().try_into().unwrap(),
    );
    let opened = open_witness_report(
        &report.report,
        &report.receipts,
        key.public(),
        &Policy::default(),
        iat,
    )
    .unwrap();
    opened[0].text.clone()
}

#[tokio::test]
async fn a_witness_receipt_is_checked_kept_and_traced() {
    let dir = tempfile::tempdir().unwrap();
    let principal: Principal = "https://idp.example#w".to_owned().try_into().unwrap();
    let p = principal.as_str();
    let user = SigningKey::from_seed(&[4; 32]);
    let agent = SigningKey::from_seed(&[5; 32]);
    let gateway = SigningKey::from_seed(&[7; 32]);
    let stranger = SigningKey::from_seed(&[8; 32]);
    let grant = crate::root_grant(
        &user,
        &principal,
        &agent,
        AuthorizationDetail::new("mcp", ["run_command"], [GATEWAY]).unwrap(),
        ("Run the tests", Some("Check that the build passes")),
        (NOW, 1_000),
    );
    let id = TokenId::of(&grant);
    let gw = gateway.thumbprint().to_string();
    let item = |seq: i64, receipt: String, received_at: i64, by: &SigningKey| ReceiptItem {
        seq,
        receipt,
        received_at,
        chain: vec![grant.clone()],
        keys: vec![by.public().to_jwk()],
        witness: Some(by.thumbprint().to_string()),
    };
    let revoked_at = NOW - 100;
    let page = vec![
        // Good.
        item(
            1,
            witness(&gateway, id, &agent, "w-1", NOW - 500),
            NOW - 499,
            &gateway,
        ),
        // Signed by another key than the one the broker names.
        ReceiptItem {
            witness: Some(gw.clone()),
            ..item(
                2,
                witness(&stranger, id, &agent, "w-2", NOW - 400),
                NOW - 399,
                &stranger,
            )
        },
        // Made before the revocation, reported after it: it stands.
        item(
            3,
            witness(&gateway, id, &agent, "w-3", revoked_at - 5),
            revoked_at + 5,
            &gateway,
        ),
        // Made after the revocation: the chain no longer held.
        item(
            4,
            witness(&gateway, id, &agent, "w-4", revoked_at + 5),
            revoked_at + 6,
            &gateway,
        ),
        // Names another grant than the chain's leaf.
        item(
            5,
            witness(
                &gateway,
                TokenId::of("other"),
                &agent,
                "w-5",
                revoked_at - 10,
            ),
            revoked_at - 9,
            &gateway,
        ),
        // About a resource the grant does not reach: a witness speaks
        // only of its grant's locations.
        item(
            6,
            witness_at(
                "https://bank.example/pay",
                &gateway,
                id,
                &agent,
                "w-6",
                revoked_at - 8,
            ),
            revoked_at - 7,
            &gateway,
        ),
        // Signed as made before the revocation, but reported more than
        // ten minutes after it was made: its chain is checked no earlier
        // than ten minutes before its arrival, when it no longer held.
        item(
            7,
            witness(&gateway, id, &agent, "w-7", revoked_at - 5),
            revoked_at + 700,
            &gateway,
        ),
        // Signed on its own, as a witness may still send it: it stands.
        item(
            8,
            {
                let text = witness(&gateway, id, &agent, "w-8", NOW - 300);
                let claims = mandate_core::token::peek_witness(&text).unwrap();
                claims.sign(&gateway)
            },
            NOW - 299,
            &gateway,
        ),
    ];
    let file = dir.path().join("h.sqlite");
    let history = History::open(&file).await.unwrap();
    let mut checker = Checker::new(principal.clone(), user.public()).unwrap();
    checker.revoked(id, revoked_at);
    let got = history.ingest(p, &user, &mut checker, &page).await.unwrap();
    assert_eq!((got.new, got.failed), (8, 5));

    let filter = ActivityFilter {
        limit: Some(10),
        ..ActivityFilter::default()
    };
    let mut rows = history.activity(p, &filter).await.unwrap();
    rows.reverse();
    let seen: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (format!("{:?}", r.status), r.error.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("Verified".into(), None),
            ("Failed".into(), Some("header.kid_mismatch".into())),
            ("Verified".into(), None),
            ("Failed".into(), Some("chain.revoked".into())),
            ("Failed".into(), Some("token.malformed".into())),
            ("Failed".into(), Some("call.out_of_scope".into())),
            ("Failed".into(), Some("chain.revoked".into())),
            ("Verified".into(), None),
        ]
    );
    assert!(rows[0].id != rows[7].id);
    let first = &rows[0];
    assert_eq!(first.witness.as_deref(), Some(gw.as_str()));
    assert_eq!(
        first.trace.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        first.agent,
        agent.public().agent_id().to_string(),
        "the agent whose call it was"
    );
    assert_eq!(first.summary, "Called the tool run_command");
    assert_eq!(first.target, GATEWAY);
    assert_eq!(first.outcome, "succeeded");

    // The rows, witness columns and all, are in the signed receipt chain.
    let verified = history.verify(p, user.public()).await.unwrap();
    assert_eq!(verified.receipts, 8);
    let edit = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE receipts SET trace = '0af7651916cd43dd8448eb211c80319c' WHERE seq = 1")
        .execute(&edit)
        .await
        .unwrap();
    let err = history.verify(p, user.public()).await.unwrap_err();
    assert!(err.to_string().contains("receipt row 1"), "{err}");
    sqlx::query("UPDATE receipts SET trace = '4bf92f3577b34da6a3ce929d0e0e4736', witness = NULL WHERE seq = 1")
        .execute(&edit)
        .await
        .unwrap();
    assert!(
        history.verify(p, user.public()).await.is_err(),
        "the witness column is covered"
    );
    sqlx::query("UPDATE receipts SET witness = ? WHERE seq = 1")
        .bind(&gw)
        .execute(&edit)
        .await
        .unwrap();
    history.verify(p, user.public()).await.unwrap();

    // Exported with what verifies it elsewhere (`mandate verify
    // --receipts`, run in tests/e2e): the witness named, and its key.
    let out = dir.path().join("activity.jsonl");
    mandate_client::export::write(
        &history,
        p,
        "BINDING",
        user.public(),
        &ActivityFilter::default(),
        mandate_client::export::ExportFormat::Jsonl,
        &out,
    )
    .await
    .unwrap();
    let exported: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 8);
    let key = serde_json::to_value(gateway.public().to_jwk()).unwrap();
    for record in &exported {
        assert_eq!(record["witness"], gw.as_str());
        assert!(
            record["keys"].as_array().unwrap().contains(&key),
            "{record}"
        );
    }

    // Traced back: the user's intent, the agent's interpretation, and the
    // action the witness saw, every signature checked again.
    let why = history
        .attribution(p, user.public(), &first.id)
        .await
        .unwrap();
    let steps: Vec<&str> = why.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, ["intent", "interpretation", "action"]);
    assert!(why.complete);
    assert_eq!(why.steps[2].text, "Called the tool run_command");
}
