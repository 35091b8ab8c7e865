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
    let store = Store::connect(&url).await.expect("postgres store");
    Some((store, PgGuard { admin, db }))
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
