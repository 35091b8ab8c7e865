//! Two broker processes on one Postgres database work as one: a
//! revocation posted to one reaches a follower connected to the other,
//! through LISTEN/NOTIFY.

use std::time::Duration;

use mandate_core::TokenId;

use crate::journey::{agent, approved, call};
use crate::user::{Events, User};
use mandate_e2e::procs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_posted_to_one_broker_reaches_followers_of_another() {
    let Some(db) = procs::postgres("instances").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let idp = procs::idp().await;
    // Both instances share the database and the signing key.
    let data = dir.path().join("shared");
    let one = procs::broker(&db, &idp.url, &data, &[]).await;
    let public = ["--public-url", one.url.as_str()];
    let two = procs::broker(&db, &idp.url, &data, &public).await;

    // A follower of the second instance: the raw stream, and a resource
    // server whose verifier follows it.
    let mut follower = Events::open(
        mandate_agent::client::http_client()
            .unwrap()
            .get(format!("{}/v1/revocations/events", two.url)),
    )
    .await;
    let files_server = procs::resource_server(&two.url, 5).await;

    // Everything else goes through the first.
    let alice = User::enrolled(&idp.url, "alice", &one.url).await;
    let planner = agent(&one.url, "planner", dir.path());
    let mandate = approved(&alice, &planner).await;
    let url = format!("{}/files/reports/a.txt", files_server.url);
    assert_eq!(call(&planner, &mandate, &url).await.0, 200);

    let root = TokenId::of(&mandate.chain[0]);
    let (status, body) = alice.revoke(&[root]).await;
    assert_eq!(status, 201, "{body}");
    let event = follower.next_named("revoked", Duration::from_secs(5)).await;
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["grants"], serde_json::json!([root.to_string()]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = call(&planner, &mandate, &url).await;
        if status != 200 {
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("chain.revoked"))
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in [files_server, two, one, idp] {
        p.kill().await;
    }
}

/// A proof of possession one instance accepted is refused by the other:
/// the replay cache is the shared database, not each process's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_one_broker_accepted_is_refused_by_another() {
    use mandate_core::token::{PopClaims, chain_hash};
    use mandate_core::{Claims as _, SigningKey};

    let Some(db) = procs::postgres("replay").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let idp = procs::idp().await;
    let data = dir.path().join("shared");
    let one = procs::broker(&db, &idp.url, &data, &[]).await;
    let public_url = one.url.clone();
    let public = ["--public-url", public_url.as_str()];
    let two = procs::broker(&db, &idp.url, &data, &public).await;
    let alice = User::enrolled(&idp.url, "alice", &one.url).await;

    let key = SigningKey::generate(&mut rand_core::OsRng);
    let request = mandate_e2e::flood::signed_request(&key, &alice.principal.to_string(), "replay");
    let http = mandate_agent::client::http_client().unwrap();
    let filed = http
        .post(format!("{}/v1/requests", one.url))
        .json(&serde_json::json!({ "request": request }))
        .send()
        .await
        .unwrap();
    assert_eq!(filed.status(), 201);
    let id = TokenId::of(&request);
    // Both instances answer for the same public URL, so one proof fits both.
    let proof = |jti: &str| {
        PopClaims {
            htm: "GET".into(),
            htu: format!("{public_url}/v1/requests/{id}"),
            iat: mandate_agent::unix_now(),
            jti: jti.to_string().try_into().unwrap(),
            ath: chain_hash(&[request.as_str()]),
        }
        .sign(&key)
    };
    let poll = |base: &str, pop: String| {
        http.get(format!("{base}/v1/requests/{id}"))
            .header("mandate-pop", pop)
            .timeout(Duration::from_secs(10))
            .send()
    };
    let answer = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        (status, body["code"].as_str().map(str::to_owned))
    };
    let first = proof("p1");
    assert_eq!(
        answer(poll(&one.url, first.clone()).await.unwrap()).await.0,
        200
    );
    assert_eq!(
        answer(poll(&two.url, first.clone()).await.unwrap()).await,
        (401, Some("pop.replayed".to_owned())),
        "the other instance refuses it"
    );
    // The first instance, restarted, still refuses it.
    one.kill().await;
    let one = procs::broker(&db, &idp.url, &data, &public).await;
    assert_eq!(
        answer(poll(&one.url, first).await.unwrap()).await,
        (401, Some("pop.replayed".to_owned())),
        "a restart forgets nothing"
    );
    assert_eq!(
        answer(poll(&two.url, proof("p2")).await.unwrap()).await.0,
        200
    );
    for p in [two, one, idp] {
        p.kill().await;
    }
}
