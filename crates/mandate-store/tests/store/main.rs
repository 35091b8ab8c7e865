//! mandate-store against real databases: a SQLite file, and a Postgres
//! server when MANDATE_TEST_PG_URL names one (scripts/pg.sh starts one;
//! `make test` sets MANDATE_REQUIRE_PG so that a missing server fails).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod scenarios;

use mandate_store::Store;

/// A store on a fresh SQLite file; the directory lives as long as the guard.
pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/mandate.db", dir.path().display());
    (Store::connect(&url).await.expect("sqlite store"), dir)
}

/// A store on a fresh Postgres database, or `None` when no server is configured.
pub async fn postgres(test: &str) -> Option<(Store, PgGuard)> {
    let (url, guard) = postgres_database(test).await?;
    let store = Store::connect(&url).await.expect("postgres store");
    Some((store, guard))
}

/// A fresh, empty Postgres database's URL, or `None` when no server is
/// configured.
pub async fn postgres_database(test: &str) -> Option<(String, PgGuard)> {
    let Ok(base) = std::env::var("MANDATE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("MANDATE_REQUIRE_PG").is_none(),
            "MANDATE_REQUIRE_PG is set but MANDATE_TEST_PG_URL is not"
        );
        eprintln!(
            "skipped on Postgres: MANDATE_TEST_PG_URL is not set (scripts/pg.sh start prints one)"
        );
        return None;
    };
    let db = format!("mandate_{test}_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&base)
        .await
        .expect("postgres admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await
        .expect("create");
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("MANDATE_TEST_PG_URL has no database part"),
    };
    Some((url, PgGuard { admin, db }))
}

/// Drops the test database when the test ends.
pub struct PgGuard {
    admin: sqlx::PgPool,
    db: String,
}

impl PgGuard {
    pub async fn drop_database(self, store: Store) {
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.db
        )))
        .execute(&self.admin)
        .await
        .expect("drop test database");
    }
}

/// Runs one scenario on both backends, as two tests.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = crate::sqlite().await;
                crate::scenarios::$name(&store).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some((store, guard)) = crate::postgres(stringify!($name)).await {
                    crate::scenarios::$name(&store).await;
                    guard.drop_database(store).await;
                }
            }
        }
    )*};
}

on_both!(
    requests_flow,
    bindings_stay_with_their_principal,
    revocations_feed,
    receipts_feed,
    idempotency_keys,
    concurrent_writers,
    pending_cap,
    spent_proofs,
    blocks_and_denials
);

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let (store, dir) = sqlite().await;
    let url = format!("sqlite://{}/mandate.db", dir.path().display());
    let raw = sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    store.close().await;
}

#[tokio::test]
async fn edited_rows_are_reported_as_corrupt() {
    let (store, dir) = sqlite().await;
    scenarios::insert_one_request(&store).await;
    let url = format!("sqlite://{}/mandate.db", dir.path().display());
    let raw = sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection");
    sqlx::query("UPDATE requests SET agent_jkt = 'not a thumbprint'")
        .execute(&raw)
        .await
        .expect("edit");
    let err = store
        .request(&scenarios::request_id(0))
        .await
        .expect_err("corrupt");
    assert_eq!(err.code(), "store.corrupt");
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = Store::connect("mysql://localhost/x")
        .await
        .expect_err("unsupported");
    assert_eq!(err.code(), "store.unsupported_url");
}

/// Receipts stored before the migration that keys them by (made_at, id)
/// come through it whole, and the feed goes on after them: a database
/// migrated one step at a time, as a broker upgraded in place finds it.
async fn receipts_stored_before_made_at_are_kept(url: &str, before: sqlx::migrate::Migrator) {
    let sql = "INSERT INTO receipts (id, grant_id, agent_jkt, principal, token, created_at, keys, witness) \
               VALUES ($1, $2, $3, 'https://idp#alice', $4, $5, '[]', NULL)";
    let rows = |n: i64| {
        (
            mandate_core::TokenId::of(&format!("id-{n}")).to_string(),
            mandate_core::TokenId::of("grant").to_string(),
            mandate_core::SigningKey::from_seed(&[9; 32])
                .thumbprint()
                .to_string(),
            format!("token-{n}"),
            1_800_000_000 + n,
        )
    };
    let mut before = before;
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 20261207000001)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    macro_rules! fill {
        ($pool:expr) => {{
            before.run(&$pool).await.unwrap();
            for n in 1..=3 {
                let (id, grant, agent, token, at) = rows(n);
                sqlx::query(sql)
                    .bind(id)
                    .bind(grant)
                    .bind(agent)
                    .bind(token)
                    .bind(at)
                    .execute(&$pool)
                    .await
                    .unwrap();
            }
            $pool.close().await;
        }};
    }
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        fill!(pool);
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        fill!(pool);
    }
    let store = Store::connect(url).await.expect("migrated");
    let alice: mandate_core::Principal = "https://idp#alice".to_owned().try_into().unwrap();
    let kept = store.receipts_since(&alice, 0, 10).await.unwrap();
    let got: Vec<(i64, &str, i64)> = kept
        .iter()
        .map(|r| (r.seq, r.token.as_str(), r.made_at))
        .collect();
    assert_eq!(
        got,
        [
            (1, "token-1", 1_800_000_001),
            (2, "token-2", 1_800_000_002),
            (3, "token-3", 1_800_000_003)
        ]
    );
    let next = mandate_store::ReceiptRecord {
        seq: 0,
        id: mandate_core::TokenId::of("new"),
        made_at: 1_800_000_010,
        ..kept[0].clone()
    };
    assert_eq!(store.insert_receipt(&next).await.unwrap(), 4);
    assert!(matches!(
        store.insert_receipt(&next).await,
        Err(mandate_store::StoreError::Conflict)
    ));
    store.close().await;
}

#[tokio::test]
async fn receipts_stored_before_made_at_are_kept_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
    receipts_stored_before_made_at_are_kept(&url, sqlx::migrate!("./migrations/sqlite")).await;
}

#[tokio::test]
async fn receipts_stored_before_made_at_are_kept_on_postgres() {
    let Some((url, guard)) = postgres_database("made_at").await else {
        return;
    };
    receipts_stored_before_made_at_are_kept(&url, sqlx::migrate!("./migrations/postgres")).await;
    guard
        .drop_database(Store::connect(&url).await.unwrap())
        .await;
}
