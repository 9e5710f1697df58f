//! The issuer's hot paths, each next to its reference in the same run (issue 6):
//! - access-token signing through `TokenIssuer::issue` and `Signer::sign` vs a bare
//!   `jsonwebtoken::encode` of the same claims, ES256 and RS256;
//! - the JWKS request: the handler's work (snapshot, ETag compare, `Arc` clone), and a whole
//!   request through Rocket's local client next to `/health/live` on the same server;
//! - refresh tokens: generation and SHA-256, the indexed lookup, and a durable rotation on SQLite.
//!
//! `cargo bench --bench issuer -- --warm-up-time 1 --measurement-time 3`

// A benchmark that cannot set up must stop loudly; these lints guard library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Header;
use rocket::figment::Figment;
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use stamp::App;
use stamp::config::Config;
use stamp::keys::{Alg, KeyMeta, KeySet, KeyState, Manifest, PrivateKey, thumbprint};
use stamp::store::{Family, NewRefreshToken, NewUser, Username};
use stamp::tokens::refresh::{RefreshPolicy, RefreshToken, TokenHash};
use stamp::tokens::{ACCESS_TOKEN_TYP, AccessClaims, Subject, TokenIssuer};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Settings for an issuer whose keys and database live in `dir`.
fn figment(dir: &std::path::Path) -> Figment {
    stamp::config::figment()
        .merge(("keys_dir", dir.join("keys")))
        .merge((
            "database_url",
            format!("sqlite://{}", dir.join("stamp.db").display()),
        ))
        .merge(("log_level", "off"))
}

/// A key set holding one active key of `alg`, built the way the key manager builds it.
fn key_set(alg: Alg, now: i64) -> KeySet {
    let key = PrivateKey::generate(alg, 2048).unwrap();
    let kid = thumbprint(&key.public_jwk());
    let meta = KeyMeta {
        kid,
        alg,
        state: KeyState::Active,
        created_at: now,
        activated_at: Some(now),
        retired_at: None,
        remove_after: None,
        removed_at: None,
        revoked_at: None,
    };
    let manifest = Manifest {
        format: Manifest::FORMAT,
        generation: 1,
        keys: vec![meta.clone()],
        changes: Vec::new(),
    };
    KeySet::build(manifest, vec![(meta, Arc::new(key), "bench".into())]).unwrap()
}

fn signing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_figment(&figment(dir.path())).unwrap();
    let issuer = TokenIssuer::new(&config);
    let now = stamp::clock::now();
    let subject = Subject {
        sub: "orders-service".into(),
        client_id: "orders-service".into(),
        scope: vec!["api.read".into(), "api.write".into()],
        roles: Vec::new(),

        ver: None,
    };
    let mut group = c.benchmark_group("sign");
    for alg in Alg::ALL {
        let keys = key_set(alg, now);
        let key = keys.active(alg).unwrap();
        // The claims a client_credentials token carries, with a fixed jti.
        let claims: AccessClaims = issuer
            .issue_with_alg(&keys, subject.clone(), alg, now)
            .unwrap()
            .claims;
        let mut header = Header::new(alg.jwt());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(key.meta.kid.clone());
        let encoding = key.private.encoding_key().unwrap();

        group.bench_function(format!("{alg}/TokenIssuer::issue"), |b| {
            b.iter(|| {
                issuer
                    .issue_with_alg(black_box(&keys), subject.clone(), alg, now)
                    .unwrap()
            })
        });
        group.bench_function(format!("{alg}/Signer::sign"), |b| {
            b.iter(|| key.signer.sign(black_box(&claims)).unwrap())
        });
        group.bench_function(format!("{alg}/jsonwebtoken::encode"), |b| {
            b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding).unwrap())
        });
    }
    group.finish();
}

fn jwks(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let figment = figment(dir.path());
    let mut group = c.benchmark_group("jwks");

    // The handler's own work, without HTTP: what `routes::well_known::jwks` does per request.
    let app = runtime.block_on(async {
        let config = Config::from_figment(&figment).unwrap();
        App::open(config, stamp::clock::Clock::system())
            .await
            .unwrap()
    });
    let if_none_match = Some("\"a-stale-etag\"");
    group.bench_function("handler work (snapshot, etag compare, Arc clone)", |b| {
        b.iter(|| {
            let keys = app.keys.snapshot();
            let etag = keys.etag();
            let fresh = black_box(if_none_match).is_some_and(|h| {
                h.split(',')
                    .map(str::trim)
                    .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
            });
            let body = (!fresh).then(|| keys.jwks().clone());
            (body, etag.to_string(), app.jwks_cache_control.clone())
        })
    });
    drop(app);

    // A whole request through Rocket (routing, guards, responder, body), next to a trivial route
    // of the same server: the difference is what the JWKS route itself costs.
    let client = runtime.block_on(async {
        let rocket = stamp::build(figment).await.unwrap();
        Client::untracked(rocket).await.unwrap()
    });
    for (name, path) in [
        ("request /.well-known/jwks.json", "/.well-known/jwks.json"),
        ("request /health/live", "/health/live"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = client.get(path).dispatch().await;
                    assert_eq!(response.status(), Status::Ok);
                    response.into_bytes().await.unwrap()
                })
            })
        });
    }
    group.finish();
}

fn refresh(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("refresh.db").display());
    let now = stamp::clock::now();
    let policy = RefreshPolicy {
        ttl: 1_209_600,
        family_ttl: 7_776_000,
        reuse_grace: 0,
    };
    let (store, first) = runtime.block_on(async {
        let store = stamp::store::open(&url).await.unwrap();
        let user = store
            .create_user(
                NewUser {
                    username: Username::parse("bench").unwrap(),
                    password_hash: "not-a-real-hash".into(),
                    roles: Vec::new(),
                },
                now,
                None,
            )
            .await
            .unwrap();
        let family = Family {
            id: stamp::store::random_id(),
            user_id: user.id.clone(),
            client_id: "stamp".into(),
            scope: vec!["openid".into()],
            created_at: now,
            expires_at: now + policy.family_ttl,
            revoked_at: None,
            resource: None,
        };
        let first = RefreshToken::generate();
        store
            .create_refresh_family(
                &family,
                &NewRefreshToken {
                    hash: first.hash(),
                    family_id: family.id.clone(),
                    token_version: user.token_version,
                    issued_at: now,
                    expires_at: now + policy.ttl,
                },
            )
            .await
            .unwrap();
        (store, first)
    });

    let mut group = c.benchmark_group("refresh");
    group.bench_function("generate + SHA-256", |b| {
        b.iter(|| RefreshToken::generate().hash())
    });
    let presented = first.expose().to_string();
    group.bench_function("SHA-256 of a presented token", |b| {
        b.iter(|| TokenHash::of(black_box(&presented)))
    });
    let hash = first.hash();
    group.bench_function("lookup (SQLite, indexed by hash)", |b| {
        b.iter(|| {
            runtime
                .block_on(store.refresh_record(black_box(&hash)))
                .unwrap()
        })
    });
    // Each iteration spends the current token and stores its successor: one durable write
    // transaction (WAL, synchronous=FULL), as every refresh grant does.
    let mut current = first.hash();
    group.sample_size(20);
    group.bench_function("rotation (SQLite, durable write)", |b| {
        b.iter(|| {
            let presented = current;
            let successor = RefreshToken::generate().hash();
            let outcome = runtime
                .block_on(store.refresh(&presented, &successor, &policy, now))
                .unwrap();
            assert!(matches!(
                outcome,
                stamp::store::RefreshOutcome::Issued { .. }
            ));
            current = successor;
        })
    });
    group.finish();
    drop(store);
}

criterion_group!(benches, signing, jwks, refresh);
criterion_main!(benches);
