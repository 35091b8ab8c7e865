//! Scenarios that run unchanged on every backend.

use mandate_core::{Principal, SigningKey, Thumbprint, TokenId};
use mandate_store::{
    Binding, BindingPut, EventKind, GrantRecord, Idempotency, Lane, NewBlock, NewRequest,
    ReceiptRecord, RequestStatus, RevocationRecord, Store, StoreError, Withdrawn,
};

const NOW: i64 = 1_767_225_600;

fn alice() -> Principal {
    "https://idp.example#alice".to_string().try_into().unwrap()
}

fn bob() -> Principal {
    "https://idp.example#bob".to_string().try_into().unwrap()
}

fn key(n: u8) -> Thumbprint {
    SigningKey::from_seed(&[n; 32]).thumbprint()
}

pub fn request_id(n: u32) -> TokenId {
    TokenId::of(&format!("request-{n}"))
}

fn grant_id(n: u32) -> TokenId {
    TokenId::of(&format!("grant-{n}"))
}

fn new_request(n: u32, principal: &Principal, expires_at: i64) -> NewRequest<'_> {
    NewRequest {
        id: request_id(n),
        agent: key(10),
        principal,
        token: "request.token.compact",
        parent_chain: &[],
        parent_keys: "[]",
        created_at: NOW,
        expires_at,
        lane: Lane::New,
        sponsor: key(10),
        max_pending: 1000,
        max_pending_per_agent: 1000,
    }
}

fn grant(n: u32, parent: Option<TokenId>, request: Option<TokenId>) -> GrantRecord {
    GrantRecord {
        id: grant_id(n),
        principal: alice(),
        request_id: request,
        parent_id: parent,
        issuer: key(1),
        grantee: key(10 + n as u8),
        token: format!("grant.token.{n}"),
        expires_at: NOW + 3600,
        created_at: NOW,
    }
}

pub async fn insert_one_request(store: &Store) {
    store
        .insert_request(&new_request(0, &alice(), NOW + 300))
        .await
        .unwrap();
}

pub async fn requests_flow(store: &Store) {
    let (a, b) = (alice(), bob());
    let chain = [
        "parent.token.one".to_string(),
        "parent.token.two".to_string(),
    ];
    let mut sub_request = new_request(1, &a, NOW + 300);
    sub_request.parent_chain = &chain;
    let keys =
        r#"[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]"#;
    sub_request.parent_keys = keys;
    store
        .insert_request(&new_request(0, &a, NOW + 300))
        .await
        .unwrap();
    store.insert_request(&sub_request).await.unwrap();
    store
        .insert_request(&new_request(2, &a, NOW + 10))
        .await
        .unwrap();
    store
        .insert_request(&new_request(3, &b, NOW + 300))
        .await
        .unwrap();

    // A replayed request is refused and changes nothing.
    let replay = store.insert_request(&new_request(0, &a, NOW + 999)).await;
    assert!(matches!(replay, Err(StoreError::Conflict)), "{replay:?}");
    assert_eq!(store.count_pending(&a, NOW).await.unwrap(), 3);
    assert_eq!(store.count_pending(&b, NOW).await.unwrap(), 1);
    let stored = store.request(&request_id(1)).await.unwrap().unwrap();
    assert_eq!(stored.parent_chain, chain);
    assert_eq!(stored.parent_keys, keys);
    assert_eq!(
        store
            .request(&request_id(0))
            .await
            .unwrap()
            .unwrap()
            .parent_keys,
        "[]"
    );
    assert_eq!(stored.status, RequestStatus::Pending);
    assert_eq!(
        store
            .request(&request_id(0))
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        NOW + 300
    );

    // Users see only their own pending requests.
    let pending: Vec<TokenId> = store
        .pending_requests(&a, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending.len(), 3);
    assert!(!pending.contains(&request_id(3)));

    // Among named ids: only those pending for the user, oldest first; a
    // request lapsed at `now`, another user's and an unknown one are left
    // out.
    let among = |ids: Vec<TokenId>, now| {
        let a = a.clone();
        async move {
            store
                .pending_requests_among(&a, &ids, now)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<TokenId>>()
        }
    };
    // (All were made at NOW: the order is then the ids'.)
    let oldest_first = |mut ids: Vec<TokenId>| {
        ids.sort_by_key(|id| id.to_string());
        ids
    };
    let named = vec![
        request_id(3),
        request_id(1),
        request_id(9),
        request_id(0),
        request_id(2),
    ];
    assert_eq!(
        among(named.clone(), NOW).await,
        oldest_first(vec![request_id(0), request_id(1), request_id(2)])
    );
    assert_eq!(
        among(named, NOW + 10).await,
        oldest_first(vec![request_id(0), request_id(1)])
    );
    assert_eq!(among(Vec::new(), NOW).await, Vec::<TokenId>::new());

    // Approve stores the grant with the decision, once.
    let g = grant(0, None, Some(request_id(0)));
    store
        .approve_request(&request_id(0), &g, NOW + 5)
        .await
        .unwrap();
    let decided = store.request(&request_id(0)).await.unwrap().unwrap();
    assert_eq!(decided.status, RequestStatus::Approved);
    assert_eq!(decided.decision.as_deref(), Some(g.token.as_str()));
    assert_eq!(store.grant(&g.id).await.unwrap(), Some(g.clone()));
    let again = store
        .approve_request(&request_id(0), &grant(9, None, None), NOW + 6)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(
        store.grant(&grant_id(9)).await.unwrap(),
        None,
        "nothing half-written"
    );
    assert!(matches!(
        store.deny_request(&request_id(0), "denial", NOW + 6).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.deny_request(&request_id(77), "denial", NOW).await,
        Err(StoreError::NotFound)
    ));

    // Deny; a lapsed request can no longer be decided and expires.
    store
        .deny_request(&request_id(1), "denial.token", NOW + 7)
        .await
        .unwrap();
    assert_eq!(
        store.request(&request_id(1)).await.unwrap().unwrap().status,
        RequestStatus::Denied
    );
    let late = store
        .approve_request(
            &request_id(2),
            &grant(2, None, Some(request_id(2))),
            NOW + 11,
        )
        .await;
    assert!(matches!(late, Err(StoreError::Conflict)), "{late:?}");
    assert_eq!(store.expire_requests(NOW + 11).await.unwrap(), 1);
    assert_eq!(
        store.request(&request_id(2)).await.unwrap().unwrap().status,
        RequestStatus::Expired
    );
    assert_eq!(store.count_pending(&a, NOW + 11).await.unwrap(), 0);

    // Every change is in the event log, in order.
    let kinds: Vec<EventKind> = store
        .events_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            RequestCreated,
            RequestCreated,
            RequestCreated,
            RequestCreated,
            GrantStored,
            RequestDecided,
            RequestDecided,
            RequestExpired
        ]
    );
    let last = store.last_event().await.unwrap();
    assert!(store.events_since(last, 10).await.unwrap().is_empty());

    // Grants form trees.
    store
        .insert_grant(&grant(1, Some(g.id), None))
        .await
        .unwrap();
    store
        .insert_grant(&grant(3, Some(g.id), None))
        .await
        .unwrap();
    assert_eq!(store.children_of(&g.id).await.unwrap().len(), 2);
    assert_eq!(store.grants_of(&a).await.unwrap().len(), 3);
    // Whom a user has granted to: the fair inbox's known lane.
    assert!(store.has_granted(&a, &key(11)).await.unwrap());
    assert!(!store.has_granted(&a, &key(12)).await.unwrap());
    assert!(!store.has_granted(&b, &key(11)).await.unwrap());
    assert!(matches!(
        store.insert_grant(&grant(1, Some(g.id), None)).await,
        Err(StoreError::Conflict)
    ));
}

pub async fn bindings_stay_with_their_principal(store: &Store) {
    let user = SigningKey::from_seed(&[1; 32]);
    let b = Binding {
        jkt: user.thumbprint(),
        key: *user.public(),
        principal: alice(),
        token: "binding.1".into(),
        issued_at: NOW,
        expires_at: NOW + 100,
        device: "Alice's laptop".into(),
        enrolled_at: NOW,
        last_used_at: None,
    };
    assert!(matches!(
        store.put_binding(&b).await.unwrap(),
        BindingPut::Enrolled(_)
    ));
    let renewed = Binding {
        token: "binding.2".into(),
        issued_at: NOW + 50,
        expires_at: NOW + 200,
        // A renewal keeps the device's name and enrollment time.
        device: "ignored".into(),
        ..b.clone()
    };
    assert!(matches!(
        store.put_binding(&renewed).await.unwrap(),
        BindingPut::Renewed(_)
    ));
    let renewed = Binding {
        device: "Alice's laptop".into(),
        ..renewed
    };
    assert_eq!(
        store.binding(&user.thumbprint()).await.unwrap(),
        Some(renewed.clone())
    );
    let kinds: Vec<EventKind> = store
        .events_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.ends_with(&[EventKind::KeyEnrolled, EventKind::BindingStored]));
    store
        .touch_binding(&user.thumbprint(), NOW + 60)
        .await
        .unwrap();
    store
        .touch_binding(&user.thumbprint(), NOW + 55)
        .await
        .unwrap();
    assert_eq!(
        store
            .binding(&user.thumbprint())
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(NOW + 60),
        "last use only moves forward"
    );
    let renewed = Binding {
        last_used_at: Some(NOW + 60),
        ..renewed
    };
    // An ID token enrolls once; a spent one is forgotten once expired.
    store.spend_id_token("h1", NOW + 10, NOW).await.unwrap();
    assert!(matches!(
        store.spend_id_token("h1", NOW + 10, NOW).await,
        Err(StoreError::Conflict)
    ));
    store
        .spend_id_token("h1", NOW + 30, NOW + 11)
        .await
        .unwrap();
    let stolen = Binding {
        principal: bob(),
        ..b.clone()
    };
    assert!(matches!(
        store.put_binding(&stolen).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.binding(&key(1)).await.unwrap(),
        Some(renewed),
        "unchanged"
    );
    assert_eq!(store.bindings_of(&alice()).await.unwrap().len(), 1);
    assert!(store.bindings_of(&bob()).await.unwrap().is_empty());
    assert_eq!(store.binding(&key(2)).await.unwrap(), None);
}

pub async fn revocations_feed(store: &Store) {
    let rev = |n: u32| RevocationRecord {
        id: TokenId::of(&format!("revocation-{n}")),
        principal: alice(),
        signer: key(1),
        token: format!("revocation.token.{n}"),
        created_at: NOW + i64::from(n),
    };
    store
        .insert_revocation(&rev(1), &[grant_id(1), grant_id(2)].map(Withdrawn::Grant))
        .await
        .unwrap();
    store
        .insert_revocation(&rev(2), &[grant_id(2), grant_id(3)].map(Withdrawn::Grant))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_revocation(&rev(1), &[Withdrawn::Grant(grant_id(4))])
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(
        !store.is_revoked(&grant_id(4)).await.unwrap(),
        "a refused revocation stores nothing"
    );
    let feed = store.revoked_since(0, 100).await.unwrap();
    let ids: Vec<Withdrawn> = feed.iter().map(|r| r.withdrawn).collect();
    assert_eq!(
        ids,
        [grant_id(1), grant_id(2), grant_id(3)].map(Withdrawn::Grant)
    );
    assert_eq!(
        feed[1].revocation_id,
        rev(1).id,
        "the first revocation of a grant stands"
    );
    assert!(store.is_revoked(&grant_id(3)).await.unwrap());
    // Only revoked grants the store holds for the principal are listed.
    store.insert_grant(&grant(1, None, None)).await.unwrap();
    store.insert_grant(&grant(4, None, None)).await.unwrap();
    let mine = store.revoked_grants_of(&alice()).await.unwrap();
    assert_eq!(
        mine.into_iter().collect::<Vec<_>>(),
        [(grant_id(1), NOW + 1)],
        "with the time of the first revocation"
    );
    let rest = store.revoked_since(feed[0].seq, 100).await.unwrap();
    assert_eq!(rest.len(), 2);

    // A key removal: a feed entry after the grants', the binding gone, and
    // the key never bound again.
    let user = SigningKey::from_seed(&[9; 32]);
    let binding = Binding {
        jkt: user.thumbprint(),
        key: *user.public(),
        principal: alice(),
        token: "binding.9".into(),
        issued_at: NOW,
        expires_at: NOW + 100,
        device: "lost laptop".into(),
        enrolled_at: NOW,
        last_used_at: None,
    };
    store.put_binding(&binding).await.unwrap();
    store
        .insert_revocation(&rev(7), &[Withdrawn::Key(user.thumbprint())])
        .await
        .unwrap();
    assert!(store.is_key_revoked(&user.thumbprint()).await.unwrap());
    assert!(!store.is_revoked(&TokenId::of("x")).await.unwrap());
    assert_eq!(store.binding(&user.thumbprint()).await.unwrap(), None);
    assert!(matches!(
        store.put_binding(&binding).await,
        Err(StoreError::Conflict)
    ));
    let last = store.revoked_since(feed[2].seq, 100).await.unwrap();
    assert_eq!(
        last.iter().map(|r| r.withdrawn).collect::<Vec<_>>(),
        [Withdrawn::Key(user.thumbprint())]
    );
    assert_eq!(
        store.revoked_by(&rev(7).id).await.unwrap(),
        [Withdrawn::Key(user.thumbprint())]
    );
}

pub async fn receipts_feed(store: &Store) {
    let receipt = |n: u32, principal: Principal| ReceiptRecord {
        seq: 0,
        id: TokenId::of(&format!("receipt-{n}")),
        grant_id: grant_id(1),
        agent: key(11),
        principal,
        token: format!("receipt.token.{n}"),
        keys: format!("[{n}]"),
        created_at: NOW,
        made_at: NOW - i64::from(n),
        witness: None,
    };
    let first = store.insert_receipt(&receipt(1, alice())).await.unwrap();
    store.insert_receipt(&receipt(2, bob())).await.unwrap();
    store.insert_receipt(&receipt(3, alice())).await.unwrap();
    assert!(matches!(
        store.insert_receipt(&receipt(1, alice())).await,
        Err(StoreError::Conflict)
    ));
    // Arriving later changes nothing: the same receipt has the same id and
    // the same `made_at`.
    assert!(matches!(
        store
            .insert_receipt(&ReceiptRecord {
                created_at: NOW + 600,
                ..receipt(3, alice())
            })
            .await,
        Err(StoreError::Conflict)
    ));
    let mine = store.receipts_since(&alice(), 0, 100).await.unwrap();
    assert_eq!(
        mine.iter().map(|r| r.token.as_str()).collect::<Vec<_>>(),
        ["receipt.token.1", "receipt.token.3"]
    );
    assert_eq!(mine[1].made_at, NOW - 3);
    assert_eq!(mine[1].keys, "[3]", "the keys presented are kept");
    assert_eq!(
        store
            .receipts_since(&alice(), first, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    // Witness receipts come in batches; one stored before is skipped and
    // the rest are stored all the same, each with its witness.
    let witnessed = |n: u32| ReceiptRecord {
        witness: Some(key(12)),
        ..receipt(n, alice())
    };
    let seqs = store
        .insert_receipts(&[witnessed(4), receipt(1, alice()), witnessed(5)])
        .await
        .unwrap();
    assert!(seqs[0].is_some() && seqs[1].is_none() && seqs[2] > seqs[0]);
    let mine = store.receipts_since(&alice(), 0, 100).await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|r| (r.token.as_str(), r.witness))
            .collect::<Vec<_>>(),
        [
            ("receipt.token.1", None),
            ("receipt.token.3", None),
            ("receipt.token.4", Some(key(12))),
            ("receipt.token.5", Some(key(12))),
        ]
    );
    assert_eq!(store.insert_receipts(&[]).await.unwrap(), Vec::new());
    // The same receipt twice in one batch is stored once. The batch's
    // events take the next numbers of the log in the receipts' order, and
    // the log goes on after them.
    let before = store.last_event().await.unwrap();
    let seqs = store
        .insert_receipts(&[witnessed(6), witnessed(6), witnessed(7)])
        .await
        .unwrap();
    assert!(seqs[0].is_some() && seqs[1].is_none() && seqs[2] > seqs[0]);
    store.insert_receipt(&receipt(8, alice())).await.unwrap();
    let events = store.events_since(before, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.kind, e.subject.clone()))
            .collect::<Vec<_>>(),
        [6, 7, 8]
            .into_iter()
            .zip(1..)
            .map(|(n, i)| (
                before + i,
                EventKind::ReceiptStored,
                TokenId::of(&format!("receipt-{n}")).to_string()
            ))
            .collect::<Vec<_>>()
    );
    // A batch longer than one statement takes (500 receipts) is stored
    // whole, numbered in its order, its events too.
    let before = store.last_event().await.unwrap();
    let many: Vec<ReceiptRecord> = (100..1301).map(witnessed).collect();
    let seqs = store.insert_receipts(&many).await.unwrap();
    assert_eq!(seqs.len(), many.len());
    assert!(seqs.iter().all(Option::is_some));
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));
    let events = store.events_since(before, 2000).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.subject.clone()))
            .collect::<Vec<_>>(),
        many.iter()
            .zip(1..)
            .map(|(r, i)| (before + i, r.id.to_string()))
            .collect::<Vec<_>>()
    );
}

pub async fn idempotency_keys(store: &Store) {
    let a = alice();
    assert_eq!(
        store
            .begin_idempotent(&a, "k1", "hash-a", NOW)
            .await
            .unwrap(),
        Idempotency::Proceed
    );
    assert_eq!(
        store
            .begin_idempotent(&a, "k1", "hash-a", NOW)
            .await
            .unwrap(),
        Idempotency::InFlight
    );
    assert_eq!(
        store
            .begin_idempotent(&a, "k1", "hash-b", NOW)
            .await
            .unwrap(),
        Idempotency::Mismatch
    );
    store
        .finish_idempotent(&a, "k1", "{\"ok\":true}")
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_idempotent(&a, "k1", "hash-a", NOW)
            .await
            .unwrap(),
        Idempotency::Replay("{\"ok\":true}".into())
    );
    assert!(matches!(
        store.finish_idempotent(&a, "k1", "other").await,
        Err(StoreError::Conflict)
    ));
    // Keys are per principal.
    assert_eq!(
        store
            .begin_idempotent(&bob(), "k1", "hash-z", NOW)
            .await
            .unwrap(),
        Idempotency::Proceed
    );
    // A failed call gives its key back.
    assert_eq!(
        store.begin_idempotent(&a, "k2", "h", NOW).await.unwrap(),
        Idempotency::Proceed
    );
    store.abandon_idempotent(&a, "k2").await.unwrap();
    assert_eq!(
        store.begin_idempotent(&a, "k2", "h", NOW).await.unwrap(),
        Idempotency::Proceed
    );
}

/// Many writers at once: every write lands once, and the log has no gaps.
pub async fn concurrent_writers(store: &Store) {
    let principal = alice();
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let store = store.clone();
            let principal = principal.clone();
            tokio::spawn(async move {
                for i in 0..25u32 {
                    let n = t * 1000 + i;
                    store
                        .insert_request(&new_request(n, &principal, NOW + 300))
                        .await
                        .expect("concurrent insert");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(store.count_pending(&principal, NOW).await.unwrap(), 200);
    let events = store.events_since(0, 1000).await.unwrap();
    assert_eq!(events.len(), 200);
    // The log clock hands out numbers in commit order, with no gaps.
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<i64>>());
}

/// The pending cap holds atomically with the insert, and decisions and
/// expiry make room again.
pub async fn pending_cap(store: &Store) {
    let a = alice();
    let capped = |n: u32, expires_at: i64| NewRequest {
        max_pending: 2,
        ..new_request(n, &a, expires_at)
    };
    store.insert_request(&capped(1, NOW + 300)).await.unwrap();
    store.insert_request(&capped(2, NOW + 10)).await.unwrap();
    let events = store.events_since(0, 100).await.unwrap().len();
    assert!(matches!(
        store.insert_request(&capped(3, NOW + 300)).await,
        Err(StoreError::Full)
    ));
    assert!(
        store.request(&request_id(3)).await.unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(store.events_since(0, 100).await.unwrap().len(), events);
    // A replay does not count twice, and is refused as a replay.
    store
        .deny_request(&request_id(1), "denial", NOW)
        .await
        .unwrap();
    assert!(matches!(
        store.insert_request(&capped(2, NOW + 10)).await,
        Err(StoreError::Conflict)
    ));
    store.insert_request(&capped(3, NOW + 300)).await.unwrap();
    assert!(matches!(
        store.insert_request(&capped(4, NOW + 300)).await,
        Err(StoreError::Full)
    ));
    // Request 2 lapses; once marked expired, it no longer counts.
    assert_eq!(store.expire_requests(NOW + 11).await.unwrap(), 1);
    store.insert_request(&capped(4, NOW + 300)).await.unwrap();
    // Other users have their own count.
    store
        .insert_request(&NewRequest {
            max_pending: 2,
            ..new_request(5, &bob(), NOW + 300)
        })
        .await
        .unwrap();
    // A cap of zero admits nothing.
    assert!(matches!(
        store
            .insert_request(&NewRequest {
                max_pending: 0,
                ..new_request(6, &bob(), NOW + 300)
            })
            .await,
        Err(StoreError::Full)
    ));
    // Alice's new lane is full, but her known lane has its own cap, and
    // each sponsor its own share of it.
    let known = |n: u32, sponsor: u8| NewRequest {
        lane: Lane::Known,
        sponsor: key(sponsor),
        max_pending: 3,
        max_pending_per_agent: 1,
        ..new_request(n, &a, NOW + 300)
    };
    assert!(matches!(
        store.insert_request(&capped(7, NOW + 300)).await,
        Err(StoreError::Full)
    ));
    store.insert_request(&known(7, 11)).await.unwrap();
    assert!(
        matches!(
            store.insert_request(&known(8, 11)).await,
            Err(StoreError::Full)
        ),
        "one sponsor's share is full"
    );
    store.insert_request(&known(8, 12)).await.unwrap();
    // A refusal for the sponsor's share took nothing from the lane.
    store.insert_request(&known(9, 13)).await.unwrap();
    assert!(matches!(
        store.insert_request(&known(10, 14)).await,
        Err(StoreError::Full)
    ));
    // Deciding gives both counters back.
    store
        .deny_request(&request_id(7), "denial", NOW)
        .await
        .unwrap();
    store.insert_request(&known(10, 11)).await.unwrap();
}

pub async fn spent_proofs(store: &Store) {
    let a = [1u8; 32];
    let b = [2u8; 32];
    store.spend_proof(&a, NOW + 60, NOW).await.unwrap();
    assert!(
        matches!(
            store.spend_proof(&a, NOW + 60, NOW + 60).await,
            Err(StoreError::Conflict)
        ),
        "a live proof is refused"
    );
    store.spend_proof(&b, NOW + 30, NOW).await.unwrap();
    // Stale, a proof's row is taken over; forgetting drops only stale rows.
    store.spend_proof(&a, NOW + 200, NOW + 61).await.unwrap();
    assert_eq!(store.forget_spent_proofs(NOW + 61).await.unwrap(), 1);
    assert!(matches!(
        store.spend_proof(&a, NOW + 200, NOW + 62).await,
        Err(StoreError::Conflict)
    ));
    // Two racing spends of one proof: exactly one succeeds.
    let c = [3u8; 32];
    let (x, y) = tokio::join!(
        store.spend_proof(&c, NOW + 60, NOW),
        store.spend_proof(&c, NOW + 60, NOW)
    );
    assert_eq!(usize::from(x.is_ok()) + usize::from(y.is_ok()), 1);
}

/// A user's block of an agent: stored, counted, listed, replaced, lifted
/// and ended by its time; and the denials a cooldown looks back on.
pub async fn blocks_and_denials(store: &Store) {
    let (a, b) = (alice(), bob());
    let (policy_id, agent) = (TokenId::of("policy-1"), key(10));
    let block = |policy: &'static str, id, expires_at| NewBlock {
        principal: &a,
        agent: &agent,
        policy_id: id,
        policy,
        label: Some("never"),
        created_at: NOW,
        expires_at,
    };
    store
        .put_block(&block("policy.one", &policy_id, NOW + 100))
        .await
        .unwrap();
    // Only alice's block of that agent refuses, and only while it stands.
    assert!(store.refuse_if_blocked(&a, &[&key(10)], NOW).await.unwrap());
    assert!(
        store
            .refuse_if_blocked(&a, &[&key(11), &key(10)], NOW)
            .await
            .unwrap()
    );
    assert!(!store.refuse_if_blocked(&a, &[&key(11)], NOW).await.unwrap());
    assert!(!store.refuse_if_blocked(&b, &[&key(10)], NOW).await.unwrap());
    assert!(
        !store
            .refuse_if_blocked(&a, &[&key(10)], NOW + 100)
            .await
            .unwrap()
    );
    let listed = store.blocks(&a, NOW).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].agent.as_str(),
            listed[0].refusals,
            listed[0].label.as_deref()
        ),
        (key(10).to_string().as_str(), 2, Some("never"))
    );
    assert!(store.blocks(&b, NOW).await.unwrap().is_empty());
    assert!(store.blocks(&a, NOW + 100).await.unwrap().is_empty());
    // A newer rule replaces the block, and its count.
    let newer = TokenId::of("policy-2");
    store
        .put_block(&block("policy.two", &newer, NOW + 200))
        .await
        .unwrap();
    let listed = store.blocks(&a, NOW).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].policy.as_str(),
            listed[0].refusals,
            listed[0].expires_at
        ),
        ("policy.two", 0, NOW + 200)
    );
    assert!(!store.lift_block(&b, &key(10)).await.unwrap());
    assert!(store.lift_block(&a, &key(10)).await.unwrap());
    assert!(!store.lift_block(&a, &key(10)).await.unwrap());
    assert!(!store.refuse_if_blocked(&a, &[&key(10)], NOW).await.unwrap());

    // Denials: alice's of agent 10, newest first, from `since` on.
    for (n, at) in [(1, NOW + 10), (2, NOW + 20), (3, NOW + 30)] {
        store
            .insert_request(&new_request(n, &a, NOW + 300))
            .await
            .unwrap();
        store
            .deny_request(&request_id(n), &format!("denial-{n}"), at)
            .await
            .unwrap();
    }
    store
        .insert_request(&new_request(4, &a, NOW + 300))
        .await
        .unwrap();
    let denied = store
        .recent_denials(&a, &key(10), NOW + 20, 10)
        .await
        .unwrap();
    let times: Vec<i64> = denied.iter().map(|(_, at)| *at).collect();
    assert_eq!(times, [NOW + 30, NOW + 20]);
    assert_eq!(denied[0].0, "request.token.compact");
    assert_eq!(
        store
            .recent_denials(&a, &key(10), NOW, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .recent_denials(&b, &key(10), NOW, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .recent_denials(&a, &key(11), NOW, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
