//! PostgreSQL, the scale-out backend, against a real server: the key store, the `Store` contract
//! on `PgStore`, two issuer replicas on one database, and start-up errors. The URL comes from
//! `STAMP_TEST_DATABASE_URL`, which `.ci/run` sets; each test works in a schema of its own.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{Method, Status};
use rocket::local::asynchronous::Client;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use stamp::auth::ClientSecret;
use stamp::keys::{
    Alg, Kek, KeyError, KeyManager, KeyStoreError, Lifecycle, PgKeyStore, RotateOptions,
};
use stamp::store::{
    AuditEvent, AuditNote, AuditStore, ClientId, ClientStore, Family, HealthCheck, NewClient,
    NewRefreshToken, NewUser, PgStore, RefreshOutcome, Role, Scope, SessionStore, StoreError, User,
    UserChange, UserStore, Username,
};
use stamp::tokens::refresh::{RefreshPolicy, RefreshToken, Rejection, TokenHash};

use crate::helpers::{PASSWORD, TestApp, figment_in, no_waits, urlencode};

/// A migrated pool (the store's and the key store's tables) on a fresh schema, or `None` outside
/// CI when no server is configured (CI sets the variable, and there a missing variable or server
/// fails the test).
pub async fn fresh_schema() -> Option<PgPool> {
    fresh_schema_with_url().await.map(|(pool, _)| pool)
}

/// [`fresh_schema`], plus a URL whose connections use that schema (through the `options`
/// parameter), for a whole issuer.
pub async fn fresh_schema_with_url() -> Option<(PgPool, String)> {
    let url = match test_database_url(
        std::env::var("STAMP_TEST_DATABASE_URL").ok(),
        std::env::var("CI").ok(),
    ) {
        Ok(Some(url)) => url,
        Ok(None) => {
            eprintln!(
                "STAMP_TEST_DATABASE_URL is not set: PostgreSQL test not run (.ci/run sets it)"
            );
            return None;
        }
        Err(why) => panic!("{why}"),
    };
    let now = stamp::clock::now();
    let schema = format!(
        "t_{now}_{}",
        stamp::store::random_id().to_lowercase().replace('-', "_")
    );
    let admin = PgPool::connect(&url).await.expect("PostgreSQL reachable");
    drop_old_schemas(&admin, now).await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let app_url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let options: PgConnectOptions = app_url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    PgKeyStore::migrate(&pool).await.unwrap();
    PgStore::from_pool(pool.clone()).await.unwrap();
    Some((pool, app_url))
}

/// The PostgreSQL URL to test against, `None` to skip, or why the run must fail: on CI (`CI`
/// set to anything but empty, `false` or `0`, as CI services set it) an unset or empty URL
/// would let every PostgreSQL test pass without running.
/// `STAMP_TEST_DATABASE_URL`, `None` outside CI when unset (see [`test_database_url`]).
pub fn database_url_for_tests() -> Option<String> {
    match test_database_url(
        std::env::var("STAMP_TEST_DATABASE_URL").ok(),
        std::env::var("CI").ok(),
    ) {
        Ok(url) => url,
        Err(why) => panic!("{why}"),
    }
}

fn test_database_url(url: Option<String>, ci: Option<String>) -> Result<Option<String>, String> {
    let on_ci = ci.is_some_and(|v| !matches!(v.trim(), "" | "false" | "0"));
    match url.filter(|u| !u.trim().is_empty()) {
        Some(url) => Ok(Some(url)),
        None if on_ci => Err(
            "CI is set but STAMP_TEST_DATABASE_URL is not: the PostgreSQL tests must run on CI"
                .into(),
        ),
        None => Ok(None),
    }
}

#[test]
fn postgres_tests_fail_on_ci_without_a_database_url() {
    assert!(test_database_url(None, Some("true".into())).is_err());
    assert!(test_database_url(Some(" ".into()), Some("1".into())).is_err());
    assert_eq!(test_database_url(None, None), Ok(None));
    assert_eq!(test_database_url(None, Some("false".into())), Ok(None));
    assert_eq!(
        test_database_url(Some("postgres://h/db".into()), Some("true".into())),
        Ok(Some("postgres://h/db".into()))
    );
}

/// Test schemas are named `t_<unix seconds>_<random>`; those over an hour old are left-overs of
/// earlier runs and are dropped, so the test database does not grow without bound. Failures
/// (a concurrent run dropping the same schema) do not matter.
async fn drop_old_schemas(admin: &PgPool, now: i64) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]{10}_'",
    )
    .fetch_all(admin)
    .await
    .unwrap_or_default();
    for name in names {
        let created: i64 = name[2..12].parse().unwrap_or(now);
        if created < now - 3_600 {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(admin)
                .await;
        }
    }
}

fn kek(byte: u8) -> Kek {
    Kek::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
}

fn lifecycle() -> Lifecycle {
    Lifecycle {
        rsa_bits: 2048,
        jwks_max_age: 0,
        max_token_ttl: 900,
        leeway: 0,
        rotate_every: 0,
    }
}

async fn manager(pool: &PgPool, kek_byte: u8) -> Result<KeyManager, KeyError> {
    let store = Arc::new(PgKeyStore::new(pool.clone(), kek(kek_byte)));
    KeyManager::open(store, Alg::Es256, lifecycle(), stamp::clock::now()).await
}

#[rocket::async_test]
async fn keys_are_stored_encrypted_and_reload_with_the_same_kids() {
    let Some(pool) = fresh_schema().await else {
        return;
    };
    let first = manager(&pool, 1).await.unwrap();
    let kids: Vec<String> = first
        .current()
        .keys()
        .iter()
        .map(|k| k.meta.kid.clone())
        .collect();
    assert_eq!(kids.len(), 2);

    let rows = sqlx::query("SELECT kid, ciphertext FROM signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let ciphertext: Vec<u8> = row.get("ciphertext");
        assert!(
            !String::from_utf8_lossy(&ciphertext).contains("PRIVATE KEY"),
            "encrypted at rest"
        );
    }

    let again = manager(&pool, 1).await.unwrap();
    let reloaded: Vec<String> = again
        .current()
        .keys()
        .iter()
        .map(|k| k.meta.kid.clone())
        .collect();
    assert_eq!(kids, reloaded);

    let wrong = manager(&pool, 2)
        .await
        .err()
        .expect("a wrong KEK must not load");
    let shown = wrong.to_string();
    assert!(
        shown.contains("signing_keys row ") && shown.contains("`key_encryption_key`"),
        "names the key and the setting: {shown}"
    );
}

#[rocket::async_test]
async fn a_ciphertext_moved_to_another_kid_does_not_decrypt() {
    let Some(pool) = fresh_schema().await else {
        return;
    };
    let first = manager(&pool, 1).await.unwrap();
    let kids: Vec<String> = first
        .current()
        .keys()
        .iter()
        .map(|k| k.meta.kid.clone())
        .collect();
    sqlx::query(
        "UPDATE signing_keys SET ciphertext = (SELECT ciphertext FROM signing_keys WHERE kid = $2),
                                 nonce = (SELECT nonce FROM signing_keys WHERE kid = $2) WHERE kid = $1",
    )
    .bind(&kids[0])
    .bind(&kids[1])
    .execute(&pool)
    .await
    .unwrap();
    let err = manager(&pool, 1).await.err().expect("tampered row");
    assert!(err.to_string().contains(&kids[0]), "names the row: {err}");
}

#[rocket::async_test]
async fn replicas_share_rotations_and_never_lose_one() {
    let Some(pool) = fresh_schema().await else {
        return;
    };
    let a = manager(&pool, 1).await.unwrap();
    let b = manager(&pool, 1).await.unwrap();
    assert_eq!(
        a.current().manifest(),
        b.current().manifest(),
        "b found a's bootstrap"
    );

    a.rotate(
        RotateOptions {
            alg: Alg::Es256,
            force: false,
        },
        stamp::clock::now(),
    )
    .await
    .unwrap();
    assert!(
        b.reload_if_changed().await.unwrap(),
        "b picks up a's rotation"
    );
    assert_eq!(a.current().manifest(), b.current().manifest());

    // Racing rotations on two replicas: each either applies on top of the other or is refused
    // as stale, never lost; the generation counts exactly the applied ones.
    let (ra, rb) = tokio::join!(
        a.rotate(
            RotateOptions {
                alg: Alg::Es256,
                force: false
            },
            stamp::clock::now()
        ),
        b.rotate(
            RotateOptions {
                alg: Alg::Es256,
                force: false
            },
            stamp::clock::now()
        ),
    );
    let applied = [&ra, &rb].iter().filter(|r| r.is_ok()).count() as u64;
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert!(
                matches!(e, KeyError::Store(KeyStoreError::Stale { .. })),
                "{e}"
            );
        }
    }
    assert!(applied >= 1);
    let fresh = manager(&pool, 1).await.unwrap();
    let manifest = fresh.current().manifest().clone();
    assert_eq!(manifest.generation, 2 + applied);
    let active = manifest
        .keys
        .iter()
        .filter(|k| k.state == stamp::keys::KeyState::Active)
        .count();
    assert_eq!(active, 1);
}

// ---- The `options` URL parameter ----------------------------------------------------------

#[rocket::async_test]
async fn the_options_url_parameter_sets_the_search_path() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let schema = url.rsplit("%3D").next().unwrap().to_string();
    let pool = PgPool::connect(&url).await.unwrap();
    let current: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, schema);
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1
         AND table_name IN ('users', 'refresh_tokens', 'key_manifest')",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 3, "the migrations ran in the test schema");
}

// ---- Migrations: the store and the key store each own theirs --------------------------------

/// Before the split, one migrator ran `migrations/postgres/{0001_keys,0002_store}.sql`. The same
/// files, gathered again in one directory, stand for a database an older release migrated.
async fn migrator_before_the_split() -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    let dir = tempfile::tempdir().unwrap();
    for file in ["keys/0001_keys.sql", "store/0002_store.sql"] {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/postgres")
            .join(file);
        let name = from.file_name().unwrap().to_owned();
        std::fs::copy(&from, dir.path().join(name)).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    (dir, migrator)
}

#[rocket::async_test]
async fn a_database_migrated_before_the_split_opens_unchanged_and_back() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    // fresh_schema ran the split migrators, including migrations added after the split (0004:
    // client grants): an older release refuses a database newer than itself rather than run on
    // a schema it does not know.
    let pool = PgPool::connect(&url).await.unwrap();
    let (_dir, before) = migrator_before_the_split().await;
    // sqlx leaves its advisory migration lock held when a run fails, so the refused run gets a
    // connection of its own, closed afterwards, which releases the lock.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let newer = before.run(&mut conn).await.unwrap_err();
    conn.close().await.unwrap();
    assert!(
        matches!(newer, sqlx::migrate::MigrateError::VersionMissing(v) if v > 2),
        "{newer}"
    );
    // And a database the older release migrated is accepted by the split migrators, which find
    // nothing to do.
    sqlx::query("DROP TABLE _sqlx_migrations, signing_keys, key_manifest, users, audit_log, refresh_tokens, refresh_families, access_denylist, clients, oidc_sessions, oidc_requests, oidc_codes, oidc_consents, apis")
        .execute(&pool)
        .await
        .unwrap();
    before.run(&pool).await.unwrap();
    let applied =
        || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool);
    assert_eq!(applied().await.unwrap(), 2);
    PgKeyStore::migrate(&pool).await.unwrap();
    PgStore::from_pool(pool.clone()).await.unwrap();
    // Only the migrations added after the split ran: none of the first two ran twice.
    let files = ["keys", "store"]
        .iter()
        .map(|dir| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations/postgres")
                .join(dir);
            std::fs::read_dir(dir).unwrap().count() as i64
        })
        .sum::<i64>();
    assert_eq!(applied().await.unwrap(), files, "no migration ran twice");
}

// ---- The Store contract on PgStore ---------------------------------------------------------

async fn pg_store() -> Option<PgStore> {
    let pool = fresh_schema().await?;
    Some(PgStore::from_pool(pool).await.unwrap())
}

fn new_user(name: &str, roles: &[&str]) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        roles: roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
    }
}

fn policy(reuse_grace: i64) -> RefreshPolicy {
    RefreshPolicy {
        ttl: 3_600,
        family_ttl: 86_400,
        reuse_grace,
    }
}

/// A login's family with its first token, for `user_id` at `now`.
async fn start_family(store: &PgStore, user_id: &str, now: i64) -> (Family, TokenHash) {
    let family = Family {
        id: stamp::store::random_id(),
        user_id: user_id.to_string(),
        client_id: "stamp".into(),
        scope: vec!["openid".into(), "profile".into()],
        created_at: now,
        expires_at: now + 86_400,
        revoked_at: None,
        resource: None,
    };
    let user = store.user_by_id(user_id).await.unwrap().unwrap();
    let first = RefreshToken::generate().hash();
    store
        .create_refresh_family(
            &family,
            &NewRefreshToken {
                hash: first,
                family_id: family.id.clone(),
                token_version: user.token_version,
                issued_at: now,
                expires_at: now + 3_600,
            },
        )
        .await
        .unwrap();
    (family, first)
}

fn rejection(outcome: &RefreshOutcome) -> Option<Rejection> {
    match outcome {
        RefreshOutcome::Rejected(why) => Some(*why),
        RefreshOutcome::Issued { .. } => None,
    }
}

#[rocket::async_test]
async fn pg_store_users_conflicts_and_token_versions() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = 1_800_000_000;
    let alice = store
        .create_user(new_user("Alice", &["admin", "ops"]), now, None)
        .await
        .unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.roles, ["admin", "ops"]);
    let conflict = store
        .create_user(new_user("ALICE", &[]), now, None)
        .await
        .unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict(_)), "{conflict}");
    store
        .create_user(new_user("bob", &[]), now, None)
        .await
        .unwrap();
    store
        .create_user(new_user("_z", &[]), now, None)
        .await
        .unwrap();

    let found = store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(found.roles, alice.roles);
    assert_eq!(found.created_at, now);
    assert!(store.user_by_username("carol").await.unwrap().is_none());
    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap().unwrap().username,
        "alice"
    );
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["_z", "alice", "bob"], "byte order, as on SQLite");

    let disabled = store
        .set_disabled("alice", true, now + 1, None)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.token_version, 1, "disabling ends every session");
    let enabled = store
        .set_disabled("alice", false, now + 2, None)
        .await
        .unwrap();
    assert!(!enabled.disabled);
    assert_eq!(enabled.token_version, 1, "re-enabling bumps nothing");
    let revoked = store
        .revoke_user_tokens(&alice.id, now + 3, None)
        .await
        .unwrap();
    assert_eq!(revoked.token_version, 2);
    let changed = store
        .set_password_hash(&alice.id, "$argon2id$new", now + 4, None)
        .await
        .unwrap();
    assert_eq!(changed.token_version, 3);
    assert_eq!(changed.password_hash, "$argon2id$new");

    assert!(matches!(
        store.set_disabled("nobody", true, now, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_user_tokens("no-such-id", now, None).await,
        Err(StoreError::NotFound(_))
    ));
    store.ping().await.unwrap();
}

#[rocket::async_test]
async fn pg_store_rotates_refresh_tokens_and_detects_reuse() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = stamp::clock::now();
    let alice = store
        .create_user(new_user("alice", &["ops"]), now, None)
        .await
        .unwrap();
    let (family, first) = start_family(&store, &alice.id, now).await;

    let second = RefreshToken::generate().hash();
    let outcome = store
        .refresh(&first, &second, &policy(0), now + 10)
        .await
        .unwrap();
    let RefreshOutcome::Issued {
        family: got,
        user,
        expires_at,
        grace,
    } = outcome
    else {
        panic!("first refresh must be issued: {outcome:?}");
    };
    assert_eq!(got, family);
    assert_eq!(user.id, alice.id);
    assert_eq!(user.roles, ["ops"]);
    assert_eq!(expires_at, now + 10 + 3_600);
    assert!(!grace);
    let record = store.refresh_record(&second).await.unwrap().unwrap();
    assert_eq!(record.issued_at, now + 10);
    assert_eq!(record.state.spent_at, None);
    assert_eq!(
        store
            .refresh_record(&first)
            .await
            .unwrap()
            .unwrap()
            .state
            .spent_at,
        Some(now + 10)
    );

    // Reuse of the spent token revokes the family; its newest token dies with it.
    let third = RefreshToken::generate().hash();
    let reuse = store
        .refresh(&first, &third, &policy(0), now + 20)
        .await
        .unwrap();
    assert_eq!(rejection(&reuse), Some(Rejection::Reused));
    let after = store
        .refresh(&second, &third, &policy(0), now + 21)
        .await
        .unwrap();
    assert_eq!(rejection(&after), Some(Rejection::Revoked));
    let revoked = store.refresh_record(&second).await.unwrap().unwrap();
    assert_eq!(revoked.family.revoked_at, Some(now + 20));
    assert!(store.refresh_record(&third).await.unwrap().is_none());

    let unknown = store
        .refresh(
            &RefreshToken::generate().hash(),
            &third,
            &policy(0),
            now + 22,
        )
        .await
        .unwrap();
    assert_eq!(rejection(&unknown), Some(Rejection::Unknown));
}

#[rocket::async_test]
async fn pg_store_grace_expiry_version_bumps_and_revocation() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = stamp::clock::now();
    let alice = store
        .create_user(new_user("alice", &[]), now, None)
        .await
        .unwrap();

    // Grace: a just-spent token is answered once more, then it is reuse.
    let (_, t0) = start_family(&store, &alice.id, now).await;
    let a = RefreshToken::generate().hash();
    let b = RefreshToken::generate().hash();
    let c = RefreshToken::generate().hash();
    assert!(rejection(&store.refresh(&t0, &a, &policy(30), now + 1).await.unwrap()).is_none());
    let again = store.refresh(&t0, &b, &policy(30), now + 2).await.unwrap();
    assert!(matches!(again, RefreshOutcome::Issued { grace: true, .. }));
    assert_eq!(
        rejection(&store.refresh(&t0, &c, &policy(30), now + 3).await.unwrap()),
        Some(Rejection::Reused)
    );

    // Expiry leaves the family alone.
    let (_, t1) = start_family(&store, &alice.id, now).await;
    assert_eq!(
        rejection(
            &store
                .refresh(&t1, &c, &policy(0), now + 3_600)
                .await
                .unwrap()
        ),
        Some(Rejection::Expired)
    );
    assert!(
        store
            .refresh_record(&t1)
            .await
            .unwrap()
            .unwrap()
            .family
            .revoked_at
            .is_none()
    );

    // "Log out everywhere": the token version moves on, the family is revoked as stale.
    let (_, t2) = start_family(&store, &alice.id, now).await;
    store
        .revoke_user_tokens(&alice.id, now + 5, None)
        .await
        .unwrap();
    assert_eq!(
        rejection(&store.refresh(&t2, &c, &policy(0), now + 6).await.unwrap()),
        Some(Rejection::Stale)
    );

    // Logout / RFC 7009.
    let (family, t3) = start_family(&store, &alice.id, now + 7).await;
    let revoked = store
        .revoke_family_of(&t3, "logout", now + 8)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.id, family.id);
    assert!(
        store
            .revoke_family_of(&t3, "logout", now + 9)
            .await
            .unwrap()
            .is_some(),
        "revoking twice is not an error"
    );
    assert_eq!(
        rejection(&store.refresh(&t3, &c, &policy(0), now + 10).await.unwrap()),
        Some(Rejection::Revoked)
    );
    assert!(
        store
            .revoke_family_of(&RefreshToken::generate().hash(), "logout", now)
            .await
            .unwrap()
            .is_none()
    );

    // Everything is past its lifetime 91 days on: 4 live tokens (t0's successors a, b count,
    // t0 itself, t1, t2, t3) … count exactly what SQLite counts: tokens, then families.
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let families: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_families")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(store.prune_expired(now).await.unwrap(), 0);
    assert_eq!(
        store.prune_expired(now + 91 * 86_400).await.unwrap(),
        (tokens + families) as u64
    );
}

#[rocket::async_test]
async fn pg_store_concurrent_refreshes_of_one_token_have_exactly_one_winner() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = stamp::clock::now();
    let alice = store
        .create_user(new_user("alice", &[]), now, None)
        .await
        .unwrap();
    let store = Arc::new(store);
    for round in 0..5 {
        let (family, presented) = start_family(&store, &alice.id, now).await;
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let successor = RefreshToken::generate().hash();
                    let outcome = store
                        .refresh(&presented, &successor, &policy(0), now + 1)
                        .await
                        .unwrap();
                    (outcome, successor)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (outcome, successor) = task.await.unwrap();
            match rejection(&outcome) {
                None => winners.push(successor),
                Some(why) => assert!(
                    matches!(why, Rejection::Reused | Rejection::Revoked),
                    "round {round}: {why:?}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one refresh wins");
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE family_id = $1")
                .bind(&family.id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(stored, 2, "the first token and one successor, nothing more");
        // The losers were reuse: the family is revoked, the winner's token with it.
        let record = store.refresh_record(&winners[0]).await.unwrap().unwrap();
        assert!(record.family.revoked_at.is_some());
    }
}

#[rocket::async_test]
async fn pg_store_denylist_clients_and_audit() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = 1_800_000_000;

    store
        .deny_access_token("jti-1", now + 60, now)
        .await
        .unwrap();
    store
        .deny_access_token("jti-1", now + 30, now)
        .await
        .unwrap();
    store
        .deny_access_token("jti-old", now - 1, now)
        .await
        .unwrap();
    assert!(store.is_access_token_denied("jti-1").await.unwrap());
    assert!(!store.is_access_token_denied("jti-old").await.unwrap());
    assert!(!store.is_access_token_denied("jti-2").await.unwrap());
    let kept: i64 =
        sqlx::query_scalar("SELECT expires_at FROM access_denylist WHERE jti = 'jti-1'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(kept, now + 60, "a re-deny never shortens the entry");
    assert_eq!(store.prune_expired(now + 61).await.unwrap(), 1);
    assert!(!store.is_access_token_denied("jti-1").await.unwrap());

    let secret = ClientSecret::generate();
    let client = |id: &str, alg| NewClient {
        id: ClientId::parse(id).unwrap(),
        secret_hash: Some(secret.hash()),
        scopes: vec![
            Scope::parse("orders:read").unwrap(),
            Scope::parse("admin").unwrap(),
        ],
        alg,
        grants: stamp::store::GrantType::defaults(false),
        redirect_uris: Vec::new(),
        first_party: true,
        post_logout_redirect_uris: Vec::new(),
    };
    let billing = store
        .create_client(client("billing", Some(Alg::Rs256)), now, None)
        .await
        .unwrap();
    assert_eq!(billing.scopes, ["orders:read", "admin"]);
    store
        .create_client(client("audit", None), now, None)
        .await
        .unwrap();
    let conflict = store
        .create_client(client("billing", None), now, None)
        .await
        .unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict(_)), "{conflict}");
    let found = store.client_by_id("billing").await.unwrap().unwrap();
    assert!(found.secret_hash == Some(secret.hash()));
    assert_eq!(found.alg, Some(Alg::Rs256));
    assert_eq!(found.scopes, ["orders:read", "admin"]);
    assert!(store.client_by_id("nobody").await.unwrap().is_none());
    let ids: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["audit", "billing"]);
    let disabled = store
        .set_client_disabled("billing", true, now, None)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert!(matches!(
        store.set_client_disabled("nobody", true, now, None).await,
        Err(StoreError::NotFound(_))
    ));

    for (i, action) in ["keys.rotate", "users.disable", "keys.revoke"]
        .iter()
        .enumerate()
    {
        store
            .record_audit(&AuditEvent {
                at: now + i as i64,
                actor: "cli".into(),
                action: (*action).into(),
                target: (i == 2).then(|| "kid-1".to_string()),
                detail: None,
            })
            .await
            .unwrap();
    }
    let recent = store.recent_audit(2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].action, "keys.revoke");
    assert_eq!(recent[0].target.as_deref(), Some("kid-1"));
    assert_eq!(recent[1].action, "users.disable");
    assert_eq!(recent[1].at, now + 1);
}

// ---- Two issuer replicas on one database ---------------------------------------------------

pub const KEK_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// An issuer replica on `url` with the database key store; its own temp dir for nothing but
/// the (unused) key folder.
pub async fn replica(url: &str, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let figment = replica_figment(dir.path(), url);
    let rocket = stamp::build(tweak(figment)).await.expect("replica builds");
    let client = Client::tracked(rocket).await.expect("valid rocket");
    TestApp { client, dir }
}

/// The settings of a replica on `url` with the database key store (no waits for rotation).
pub fn replica_figment(dir: &std::path::Path, url: &str) -> Figment {
    no_waits(figment_in(dir))
        .merge(Serialized::global("database_url", url))
        .merge(Serialized::global("key_store", "database"))
        .merge(Serialized::global("key_encryption_key", KEK_B64))
}

async fn refresh_on(app: &TestApp, token: &str) -> (Status, Value) {
    let response = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(token)
        ))
        .await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

async fn password_login(app: &TestApp, user: &str) -> Value {
    let response = app
        .token_form(&format!(
            "grant_type=password&username={user}&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    assert_eq!(response.status(), Status::Ok);
    response.into_json().await.unwrap()
}

#[rocket::async_test]
async fn replicas_share_users_sessions_and_reuse_detection() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| f).await;
    assert!(a.app().keys.describe_store().contains("PostgreSQL"));
    assert_eq!(
        a.published_kids().await,
        b.published_kids().await,
        "b loaded the keys a created"
    );
    assert!(!a.keys_dir().join("manifest.json").exists(), "no file keys");

    // A user created through A logs in on B; B's token verifies against A's JWKS.
    a.add_user("alice", PASSWORD, &["ops"]).await;
    let on_b = password_login(&b, "alice").await;
    let claims = a
        .verify_with_jwks(on_b["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["roles"], serde_json::json!(["ops"]));

    // A refresh token from A refreshes on B; presenting it again on A is reuse.
    let on_a = password_login(&a, "alice").await;
    let stolen = on_a["refresh_token"].as_str().unwrap();
    let (status, refreshed) = refresh_on(&b, stolen).await;
    assert_eq!(status, Status::Ok, "{refreshed}");
    let (status, body) = refresh_on(&a, stolen).await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(body["error"], "invalid_grant");
    // …and the family is gone on both replicas.
    let (status, _) = refresh_on(&a, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, Status::BadRequest);
    let (status, _) = refresh_on(&b, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, Status::BadRequest);

    // A race across replicas: exactly one wins.
    let session = password_login(&a, "alice").await;
    let token = session["refresh_token"].as_str().unwrap();
    let (ra, rb) = tokio::join!(refresh_on(&a, token), refresh_on(&b, token));
    let mut statuses = [ra.0.code, rb.0.code];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
}

/// `POST /oauth/introspect` on `app` as the client `id` with `secret`.
async fn introspect_on(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    let response = app
        .client
        .post("/oauth/introspect")
        .header(rocket::http::ContentType::Form)
        .body(format!(
            "token={}&client_id={id}&client_secret={}",
            urlencode(token),
            urlencode(secret)
        ))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    response.into_json().await.unwrap()
}

#[rocket::async_test]
async fn logout_and_revoke_all_on_one_replica_hold_on_the_other() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| f).await;
    let alice = a.add_user("alice", PASSWORD, &[]).await;
    let secret = b.add_service_client("gateway", &[], None).await;

    // Logout on A: B refuses the refresh token and introspects the access token as inactive.
    let session = password_login(&b, "alice").await;
    let access = session["access_token"].as_str().unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();
    assert_eq!(
        introspect_on(&a, "gateway", &secret, access).await["active"],
        true
    );
    let response = a
        .client
        .post("/logout")
        .header(rocket::http::ContentType::Form)
        .header(rocket::http::Header::new(
            "Authorization",
            format!("Bearer {access}"),
        ))
        .body(format!("refresh_token={}", urlencode(refresh)))
        .dispatch()
        .await;
    assert!(response.status().code < 300, "{}", response.status());
    assert_eq!(refresh_on(&b, refresh).await.0, Status::BadRequest);
    assert_eq!(
        introspect_on(&b, "gateway", &secret, access).await["active"],
        false
    );

    // "Log out everywhere" through B's admin API ends the sessions A issued.
    let on_a = password_login(&a, "alice").await;
    let admin = b.admin_token().await;
    let response = b
        .admin_call(
            Method::Post,
            &format!("/admin/users/{}/revoke-tokens", alice.id),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        refresh_on(&a, on_a["refresh_token"].as_str().unwrap())
            .await
            .0,
        Status::BadRequest
    );
}

#[rocket::async_test]
async fn a_rotation_on_one_replica_reaches_the_other_on_reload() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    // No polling on b within the test's lifetime: only the explicit reload can move it.
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| {
        f.merge(Serialized::global("key_poll_interval", 3600))
    })
    .await;
    let before = b.published_kids().await;
    let token = a.admin_token().await;
    let response = a
        .admin_call(Method::Post, "/admin/keys/rotate", &token, None)
        .await;
    assert_eq!(response.status(), Status::Ok);
    let after_a = a.published_kids().await;
    assert_ne!(after_a, before);

    b.app().keys.reload_if_changed().await.unwrap();
    let mut after_b = b.published_kids().await;
    let mut expected = after_a.clone();
    after_b.sort();
    expected.sort();
    assert_eq!(after_b, expected);
    assert_eq!(
        a.active_kid(Alg::Es256),
        b.active_kid(Alg::Es256),
        "both sign with the new active key"
    );
    // The audit entry written by A is read by B's store.
    let recent = b.app().store.recent_audit(1).await.unwrap();
    assert_eq!(recent[0].action, "keys.rotate");
}

#[rocket::async_test]
async fn replicas_learn_of_a_rotation_by_notification_within_seconds() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    // Polling every hour: only LISTEN/NOTIFY can bring the change to b in time.
    let slow = |f: Figment| f.merge(Serialized::global("key_poll_interval", 3600));
    let a = replica(&url, slow).await;
    let b = replica(&url, slow).await;
    // Let b's listener connect and LISTEN (it also reloads once after connecting).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let token = a.admin_token().await;
    let started = stamp::clock::instant();
    let response = a
        .admin_call(Method::Post, "/admin/keys/rotate", &token, None)
        .await;
    assert_eq!(response.status(), Status::Ok);
    let committed = stamp::clock::instant();
    let expected = a.active_kid(Alg::Es256);
    let deadline = started + Duration::from_secs(5);
    while b.active_kid(Alg::Es256) != expected {
        assert!(
            stamp::clock::instant() < deadline,
            "b did not pick up a's rotation within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut kids_a = a.published_kids().await;
    let mut kids_b = b.published_kids().await;
    kids_a.sort();
    kids_b.sort();
    assert_eq!(kids_a, kids_b);
    eprintln!(
        "replica picked up a rotation by NOTIFY {} ms after the rotate call returned ({} ms after it was sent)",
        committed.elapsed().as_millis(),
        started.elapsed().as_millis()
    );
}

#[rocket::async_test]
async fn concurrent_rotations_on_two_replicas_are_applied_or_refused_never_a_500() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| f).await;
    let token = a.admin_token().await;
    let mut applied = 0;
    let mut refused = 0;
    for _ in 0..6 {
        let (ra, rb) = tokio::join!(
            a.admin_call(Method::Post, "/admin/keys/rotate", &token, None),
            b.admin_call(Method::Post, "/admin/keys/rotate", &token, None),
        );
        for response in [ra, rb] {
            match response.status() {
                Status::Ok => applied += 1,
                Status::Conflict => {
                    let body: Value = response.into_json().await.unwrap();
                    assert_eq!(body["error"], "key_set_changed", "{body}");
                    refused += 1;
                }
                other => panic!("a concurrent rotation answered {other}"),
            }
        }
    }
    assert!(applied >= 6, "at least one rotation per round applies");
    // Whatever interleaving happened, the stored key set counts exactly the applied rotations.
    b.app().keys.reload_if_changed().await.unwrap();
    let manifest = b.app().keys.current().manifest().clone();
    assert_eq!(manifest.generation, 1 + applied);
    eprintln!("concurrent rotations: {applied} applied, {refused} refused as stale");
}

// ---- Start-up errors -----------------------------------------------------------------------

pub async fn start_error(tweak: impl FnOnce(Figment) -> Figment) -> String {
    let dir = tempfile::tempdir().unwrap();
    match stamp::build(tweak(figment_in(dir.path()))).await {
        Ok(_) => panic!("should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[rocket::async_test]
async fn database_key_store_settings_are_checked_at_start() {
    // SQLite URL (figment_in's default) with the database key store.
    let message = start_error(|f| {
        f.merge(Serialized::global("key_store", "database"))
            .merge(Serialized::global("key_encryption_key", KEK_B64))
    })
    .await;
    assert!(message.contains("`key_store`"), "{message}");
    assert!(!message.contains('\n'));

    let postgres = |f: Figment| {
        f.merge(Serialized::global(
            "database_url",
            "postgres://postgres@127.0.0.1:5432/stamp_test",
        ))
        .merge(Serialized::global("key_store", "database"))
    };
    let missing = start_error(postgres).await;
    assert!(missing.contains("`key_encryption_key`"), "{missing}");
    assert!(missing.contains("ROCKET_KEY_ENCRYPTION_KEY"), "{missing}");
    assert!(!missing.contains('\n'));

    let short_key = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
    let short = start_error(|f| {
        postgres(f).merge(Serialized::global("key_encryption_key", short_key.as_str()))
    })
    .await;
    assert!(short.contains("`key_encryption_key`"), "{short}");
    assert!(
        !short.contains(&short_key),
        "the key is never echoed: {short}"
    );
    assert!(!short.contains('\n'));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kek");
    std::fs::write(&file, "not base64!").unwrap();
    let bad_file = start_error(|f| {
        postgres(f).merge(Serialized::global(
            "key_encryption_key_file",
            file.display().to_string(),
        ))
    })
    .await;
    assert!(bad_file.contains("`key_encryption_key_file`"), "{bad_file}");
    assert!(!bad_file.contains('\n'));
}

#[rocket::async_test]
async fn an_unreachable_database_is_named_without_its_password() {
    let message = start_error(|f| {
        f.merge(Serialized::global(
            "database_url",
            "postgres://stamp:hunter2@127.0.0.1:1/stamp",
        ))
    })
    .await;
    assert!(message.contains("`database_url`"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[rocket::async_test]
async fn log_out_everywhere_on_one_replica_ends_live_access_tokens_on_the_other() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| f).await;
    let root = a.add_user("root", PASSWORD, &["admin"]).await;
    let secret = a.add_service_client("gateway", &[], None).await;
    let session = password_login(&b, "root").await;
    let token = session["access_token"].as_str().unwrap();
    let keys_on_b = |token: &str| {
        let token = token.to_string();
        let b = &b;
        async move {
            b.admin_call(Method::Get, "/admin/keys", &token, None)
                .await
                .status()
        }
    };
    assert_eq!(keys_on_b(token).await, Status::Ok);
    assert_eq!(
        introspect_on(&b, "gateway", &secret, token).await["active"],
        true
    );

    // "Log out everywhere" through replica A, with the token itself.
    let response = a
        .admin_call(
            Method::Post,
            &format!("/admin/users/{}/revoke-tokens", root.id),
            token,
            None,
        )
        .await;
    assert_eq!(response.status(), Status::Ok);

    // Replica B's admin guard and introspection refuse the token at once.
    assert_eq!(keys_on_b(token).await, Status::Unauthorized);
    let rotate = b
        .admin_call(
            Method::Post,
            "/admin/keys/rotate",
            token,
            Some(r#"{"force":true}"#),
        )
        .await;
    assert_eq!(rotate.status(), Status::Unauthorized);
    assert_eq!(
        introspect_on(&b, "gateway", &secret, token).await["active"],
        false
    );
    // A new login (on either replica) is live on the other.
    let fresh = password_login(&a, "root").await;
    assert_eq!(
        keys_on_b(fresh["access_token"].as_str().unwrap()).await,
        Status::Ok
    );
}

#[rocket::async_test]
async fn pg_store_pages_users_sets_roles_and_deletes_with_their_families() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = 1_800_000_000;
    for name in ["ann", "al_x", "alx", "bob"] {
        store
            .create_user(new_user(name, &[]), now, None)
            .await
            .unwrap();
    }
    let page = |prefix: &'static str, after: Option<&'static str>, limit: u32| {
        let store = &store;
        async move {
            store
                .list_users_page(prefix, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.username)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("", None, 2).await, ["al_x", "alx"], "byte order");
    assert_eq!(page("", Some("alx"), 2).await, ["ann", "bob"]);
    assert_eq!(page("a", Some("al_x"), 10).await, ["alx", "ann"]);
    assert_eq!(page("al_", None, 10).await, ["al_x"], "`_` is no wildcard");
    assert!(page("c", None, 10).await.is_empty());

    let ann = store.user_by_username("ann").await.unwrap().unwrap();
    let ops = [Role::parse("ops").unwrap(), Role::parse("admin").unwrap()];
    let roles = |roles: &[Role]| UserChange {
        roles: Some(roles.to_vec()),
        disabled: None,
    };
    let changed = store
        .update_user(&ann.id, &roles(&ops), now + 1, None)
        .await
        .unwrap();
    assert_eq!(changed.roles, ["ops", "admin"]);
    assert_eq!(changed.token_version, 0);
    // Roles and state in one statement, with its audit entry in the same transaction.
    let both = UserChange {
        roles: Some(Vec::new()),
        disabled: Some(true),
    };
    let note = AuditNote::new("cli", "users.update", now + 2, |user: &User| {
        (
            Some(user.id.clone()),
            Some(format!("v={}", user.token_version)),
        )
    });
    let changed = store
        .update_user(&ann.id, &both, now + 2, Some(&note))
        .await
        .unwrap();
    assert!(changed.roles.is_empty() && changed.disabled);
    assert_eq!(changed.token_version, 1, "disabling bumps the version");
    let entry = &store.recent_audit(1).await.unwrap()[0];
    assert_eq!(entry.action, "users.update");
    assert_eq!(entry.target.as_deref(), Some(ann.id.as_str()));
    assert_eq!(entry.detail.as_deref(), Some("v=1"));
    let missing = store
        .update_user("nope", &roles(&[]), now, Some(&note))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    assert_eq!(
        store.recent_audit(1).await.unwrap()[0].at,
        now + 2,
        "a refused change writes no entry"
    );

    let (_, first) = start_family(&store, &ann.id, now).await;
    assert!(store.refresh_record(&first).await.unwrap().is_some());
    let deleted = store.delete_user(&ann.id, None).await.unwrap();
    assert_eq!(deleted.username, "ann");
    assert!(store.user_by_id(&ann.id).await.unwrap().is_none());
    assert!(
        store.refresh_record(&first).await.unwrap().is_none(),
        "the families and tokens go with the user"
    );
    let again = store.delete_user(&ann.id, None).await.unwrap_err();
    assert!(matches!(again, StoreError::NotFound(_)), "{again}");
}

#[tokio::test]
async fn pg_client_secret_overlap_updates_and_deletion_round_trip() {
    let Some(store) = pg_store().await else {
        return;
    };
    let now = 1_800_000_000;
    let old = ClientSecret::generate();
    let new_client = NewClient {
        id: ClientId::parse("rolling").unwrap(),
        secret_hash: Some(old.hash()),
        scopes: vec![Scope::parse("a").unwrap()],
        alg: None,
        grants: stamp::store::GrantType::defaults(false),
        redirect_uris: Vec::new(),
        first_party: true,
        post_logout_redirect_uris: Vec::new(),
    };
    store.create_client(new_client, now, None).await.unwrap();
    let new = ClientSecret::generate();
    let rotated = store
        .set_client_secret(
            "rolling",
            &new.hash(),
            Some((old.hash(), now + 60)),
            now,
            None,
        )
        .await
        .unwrap();
    assert_eq!(rotated.secret_hash, Some(new.hash()));
    assert_eq!(rotated.previous_secret, Some((old.hash(), now + 60)));
    let read = store.client_by_id("rolling").await.unwrap().unwrap();
    assert_eq!(read.previous_secret, Some((old.hash(), now + 60)));

    let change = stamp::store::ClientChange {
        scopes: Some(vec!["b".into(), "c".into()]),
        disabled: Some(true),
        ..Default::default()
    };
    let changed = store
        .update_client("rolling", &change, now, None)
        .await
        .unwrap();
    assert_eq!(changed.scopes, ["b", "c"]);
    assert!(changed.disabled);
    assert_eq!(changed.previous_secret, Some((old.hash(), now + 60)));

    let again = store
        .set_client_secret("rolling", &old.hash(), None, now, None)
        .await
        .unwrap();
    assert_eq!(again.previous_secret, None);
    store.delete_client("rolling", now, None).await.unwrap();
    assert!(store.client_by_id("rolling").await.unwrap().is_none());
    assert!(matches!(
        store.delete_client("rolling", now, None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[rocket::async_test]
async fn pg_store_queries_the_audit_log_with_filters_and_pages() {
    let Some(store) = pg_store().await else {
        return;
    };
    for at in 1000..=1006_i64 {
        let event = crate::helpers::sample_audit_event(at);
        store.record_audit(&event).await.unwrap();
    }
    let ats = |page: &stamp::store::AuditPage| page.events.iter().map(|e| e.at).collect::<Vec<_>>();
    let all = stamp::store::AuditFilter::default();

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.query_audit(&all, 3, before).await.unwrap();
        seen.extend(ats(&page));
        match page.next {
            Some(cursor) => before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, [1006, 1005, 1004, 1003, 1002, 1001, 1000]);

    let filter = stamp::store::AuditFilter {
        actor: Some("cli".into()),
        action: Some("users.add".into()),
        since: Some(1001),
        until: Some(1006),
        ..Default::default()
    };
    let page = store.query_audit(&filter, 10, None).await.unwrap();
    assert_eq!(ats(&page), [1004, 1002]);
    assert_eq!(page.next, None);
    let subject = stamp::store::AuditFilter {
        subject: Some("t1003".into()),
        ..Default::default()
    };
    assert_eq!(
        ats(&store.query_audit(&subject, 10, None).await.unwrap()),
        [1003]
    );
}

#[rocket::async_test]
async fn every_action_is_audited_once_on_postgresql_through_the_api() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let app = replica(&url, |f| f.merge(Serialized::global("signup", true))).await;
    crate::audit_trail::every_api_action_is_audited_once(&app).await;
}

#[rocket::async_test]
async fn every_action_is_audited_once_on_postgresql_through_the_cli() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ROCKET_DATABASE_URL", url.as_str()),
        ("ROCKET_KEY_STORE", "database"),
        ("ROCKET_KEY_ENCRYPTION_KEY", KEK_B64),
    ];
    // The commands block on their own runtime: off this test's.
    let dir_path = dir.path().to_path_buf();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::audit_trail::every_cli_action_is_audited_once(&dir_path, &env);
    })
    .await
    .unwrap();
}

#[rocket::async_test]
async fn a_key_change_and_its_audit_entry_commit_in_one_transaction_on_postgresql() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let app = replica(&url, |f| {
        f.merge(Serialized::global("instance_name", "pg-a"))
    })
    .await;
    // A rotation straight through the key manager, as by a process that dies right after its
    // commit: nothing else writes the entry, yet it is there at once.
    let options = RotateOptions {
        alg: Alg::Es256,
        force: true,
    };
    let by = stamp::keys::ChangedBy::actor("cli");
    let set = app
        .app()
        .keys
        .rotate_by(options, stamp::clock::now(), by)
        .await
        .unwrap();
    let active = set.active(Alg::Es256).unwrap().meta.kid.clone();
    let events = app.app().store.recent_audit(10).await.unwrap();
    let rotation = events
        .iter()
        .find(|e| e.action == "keys.rotate")
        .expect("written in the key commit's transaction");
    assert_eq!(rotation.actor, "cli");
    assert_eq!(rotation.target.as_deref(), Some(active.as_str()));
    assert!(
        rotation
            .detail
            .as_deref()
            .unwrap()
            .contains("instance=pg-a"),
        "{rotation:?}"
    );
    // The upkeep copies the same records again: still one entry each.
    let changes = set.manifest().changes.clone();
    assert_eq!(
        app.app().store.record_key_changes(&changes).await.unwrap(),
        0
    );
}

#[rocket::async_test]
async fn the_authorization_code_flow_works_across_replicas_on_postgres() {
    use crate::oidc::{VERIFIER, authorize, query, redeem, register, sign_in};

    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| f).await;
    a.add_user("alice", PASSWORD, &[]).await;
    register(&a, "bank", true, true).await;
    let code = sign_in(&a, "bank", "alice").await;
    // The browser session lives in the shared store: replica A answers from it.
    let again = authorize(&a, &query("bank", &[("prompt", "none")])).await;
    assert!(again.param("code").is_some(), "single sign-on");

    // Redeemed on replica B, replayed on A: refused, and what B issued is revoked.
    let (status, tokens) = redeem(&b, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok, "{tokens}");
    assert!(tokens["id_token"].is_string());
    let (status, body) = redeem(&a, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::BadRequest, Some("invalid_grant"))
    );
    let refresh = b
        .token_form(&format!(
            "grant_type=refresh_token&client_id=bank&refresh_token={}",
            urlencode(tokens["refresh_token"].as_str().unwrap())
        ))
        .await;
    assert_eq!(refresh.status(), Status::BadRequest);
    // The pruning job's query runs on PostgreSQL too.
    let removed = a
        .app()
        .store
        .prune_oidc(stamp::clock::now() + 86_400)
        .await
        .unwrap();
    assert!(removed >= 2, "expired codes and the session: {removed}");
}

#[rocket::async_test]
async fn replicas_share_the_api_registry_on_postgres() {
    let Some((_, url)) = fresh_schema_with_url().await else {
        return;
    };
    let a = replica(&url, |f| f).await;
    let b = replica(&url, |f| f).await;
    let admin = a.admin_token().await;
    let orders = "https://orders.example.com";
    let body = serde_json::json!({"id": "orders", "identifier": orders, "scopes": ["orders:read"]});
    let (status, created) = a
        .admin_json(Method::Post, "/admin/apis", &admin, Some(&body.to_string()))
        .await;
    assert_eq!(status, Status::Created, "{created}");
    // The same identifier registered on B is a conflict: one registry.
    let again = serde_json::json!({"id": "orders2", "identifier": orders});
    let (status, _) = b
        .admin_json(
            Method::Post,
            "/admin/apis",
            &admin,
            Some(&again.to_string()),
        )
        .await;
    assert_eq!(status, Status::Conflict);

    // A token for the API issued by B, refreshed on A, introspected on A.
    b.add_user("alice", PASSWORD, &["orders:read"]).await;
    let response = b
        .token_form(&format!(
            "grant_type=password&username=alice&password={}&scope=orders:read&resource={}",
            urlencode(PASSWORD),
            urlencode(orders)
        ))
        .await;
    assert_eq!(response.status(), Status::Ok);
    let tokens: Value = response.into_json().await.unwrap();
    let (status, refreshed) = refresh_on(&a, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, Status::Ok, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    let gateway = a.add_service_client("gateway", &[], None).await;
    let answer = introspect_on(&a, "gateway", &gateway, access).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], orders);

    // Deleted on A: B refuses the resource at once (no cache).
    let (status, _) = a
        .admin_json(Method::Delete, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::NoContent);
    let response = b
        .token_form(&format!(
            "grant_type=password&username=alice&password={}&resource={}",
            urlencode(PASSWORD),
            urlencode(orders)
        ))
        .await;
    assert_eq!(response.status(), Status::BadRequest);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");
    assert_eq!(
        introspect_on(&b, "gateway", &gateway, access).await["active"],
        false
    );
}
