//! The PostgreSQL key store against a real server. The URL comes from `STAMP_TEST_DATABASE_URL`,
//! which `.ci/run` sets; each test works in a schema of its own.

use std::sync::Arc;

use base64::Engine;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use stamp::keys::{
    Alg, Kek, KeyError, KeyManager, KeyStoreError, Lifecycle, PG_MIGRATOR, PgKeyStore,
    RotateOptions,
};

/// A migrated pool on a fresh schema, or `None` outside CI when no server is configured (CI
/// sets the variable, and there a missing server fails the test).
pub async fn fresh_schema() -> Option<PgPool> {
    let url = match std::env::var("STAMP_TEST_DATABASE_URL") {
        Ok(url) => url,
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI must set STAMP_TEST_DATABASE_URL"),
        Err(_) => {
            eprintln!(
                "STAMP_TEST_DATABASE_URL is not set: PostgreSQL test not run (.ci/run sets it)"
            );
            return None;
        }
    };
    let schema = format!(
        "t_{}",
        stamp::store::random_id().to_lowercase().replace('-', "_")
    );
    let admin = PgPool::connect(&url).await.expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    PG_MIGRATOR.run(&pool).await.unwrap();
    Some(pool)
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
    assert!(wrong.to_string().contains("decryption failed"), "{wrong}");
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
