//! Issue 14, point 2: property tests (proptest) of the invariants, with bounded case counts so
//! CI stays fast: issued tokens verify with the published JWKS and `stamp-verify`, and no
//! single-byte change of one does; the key lifecycle never unpublishes a key a live token needs,
//! over random rotations, revocations, schedule ticks and restarts; a refresh token never has two
//! successors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use rocket::http::Status;
use serde_json::Value;
use stamp::keys::{Alg, FileKeyStore, KeyManager, KeyState, Lifecycle, RotateOptions};
use stamp::tokens::{AccessClaims, Subject, TokenIssuer};
use stamp::verify::{Verifier, VerifierConfig, VerifyingKeys};

use crate::helpers::{PASSWORD, TestApp, join_all, urlencode};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A runner with `cases` cases and no failure-persistence files in the source tree.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

/// Verifies like a resource server that does not use `stamp-verify`: jsonwebtoken with the JWK
/// named by `kid`, looked up in the published set.
fn jsonwebtoken_verifies(jwks: &Value, token: &str, issuer: &str, audience: &str) -> bool {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    let Ok(set) = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone()) else {
        return false;
    };
    let Some(jwk) = header.kid.as_deref().and_then(|kid| set.find(kid)) else {
        return false;
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

#[test]
fn issued_tokens_verify_and_no_single_byte_change_does() {
    let rt = runtime();
    let (app, jwks) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let now = stamp::clock::now();
        let keys = &app.app().keys;
        keys.publish_keys(&[Alg::Es256, Alg::Rs256], now)
            .await
            .unwrap();
        keys.rotate(
            RotateOptions {
                alg: Alg::Rs256,
                force: true,
            },
            now,
        )
        .await
        .unwrap();
        let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
        (app, jwks)
    });
    let config = &app.app().config;
    let published = VerifyingKeys::parse(&serde_json::to_vec(&jwks).unwrap()).unwrap();
    let verifier = Verifier::new(VerifierConfig::new(&config.issuer, &config.audience), ());
    let issuer = TokenIssuer::new(config);
    let set = app.app().keys.current();
    let now = stamp::clock::now();

    let strategy = (
        "[A-Za-z0-9_.@-]{1,40}",
        "[a-z][a-z0-9-]{0,15}",
        proptest::collection::vec("[a-z:]{1,12}", 0..4),
        proptest::collection::vec("[a-z]{1,8}", 0..3),
        any::<bool>(),
        any::<proptest::sample::Index>(),
        1u8..=255,
    );
    runner(64)
        .run(
            &strategy,
            |(sub, client_id, scope, roles, rsa, index, delta)| {
                let alg = if rsa { Alg::Rs256 } else { Alg::Es256 };
                let subject = Subject {
                    sub,
                    client_id,
                    scope,
                    roles,
                    ver: None,
                };
                let issued = issuer.issue_with_alg(&set, subject, alg, now).unwrap();
                let token = secrecy::ExposeSecret::expose_secret(&issued.access_token).to_string();
                let claims = verifier
                    .verify_with(&published, &token, now)
                    .map_err(|e| TestCaseError::fail(format!("stamp-verify refused: {e}")))?;
                prop_assert_eq!(claims.jti.as_deref(), Some(issued.claims.jti.as_str()));
                prop_assert!(jsonwebtoken_verifies(
                    &jwks,
                    &token,
                    &config.issuer,
                    &config.audience
                ));

                let mut bytes = token.clone().into_bytes();
                let at = index.index(bytes.len());
                bytes[at] = bytes[at].wrapping_add(delta);
                let Ok(changed) = String::from_utf8(bytes) else {
                    return Ok(()); // not a string a caller could send as a token
                };
                prop_assert!(
                    verifier.verify_with(&published, &changed, now).is_err(),
                    "stamp-verify accepted a changed token (byte {at})"
                );
                prop_assert!(
                    !jsonwebtoken_verifies(&jwks, &changed, &config.issuer, &config.audience),
                    "jsonwebtoken accepted a changed token (byte {at})"
                );
                Ok(())
            },
        )
        .unwrap();
}

/// One step of a key-lifecycle history.
#[derive(Clone, Debug)]
enum Step {
    Rotate { force: bool },
    Revoke(KeyState),
    Tick(i64),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => any::<bool>().prop_map(|force| Step::Rotate { force }),
        1 => prop_oneof![
            Just(KeyState::Active),
            Just(KeyState::Next),
            Just(KeyState::Retired)
        ]
        .prop_map(Step::Revoke),
        4 => (1i64..400).prop_map(Step::Tick),
        1 => Just(Step::Restart),
    ]
}

const LIFECYCLE: Lifecycle = Lifecycle {
    rsa_bits: 2048,
    jwks_max_age: 60,
    max_token_ttl: 120,
    leeway: 5,
    rotate_every: 300,
};

#[test]
fn the_key_lifecycle_keeps_every_key_a_live_token_needs() {
    let rt = runtime();
    let strategy = (
        proptest::collection::vec(step(), 1..14),
        proptest::collection::vec(1i64..=LIFECYCLE.max_token_ttl, 14),
    );
    runner(24)
        .run(&strategy, |(steps, ttls)| {
            rt.block_on(lifecycle_history(steps, ttls))
        })
        .unwrap();
}

async fn lifecycle_history(steps: Vec<Step>, ttls: Vec<i64>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let open = |now: i64| {
        let store = FileKeyStore::open(dir.path().join("keys")).unwrap();
        KeyManager::open(Arc::new(store), Alg::Es256, LIFECYCLE, now)
    };
    let mut now = 1_900_000_000;
    let mut manager = open(now).await.unwrap();
    let verifier = Verifier::new(VerifierConfig::new("https://issuer.test", "api"), ());
    let mut live: Vec<(String, String, i64)> = Vec::new();
    let mut revoked: HashSet<String> = HashSet::new();
    for (step, ttl) in steps.into_iter().zip(ttls) {
        match &step {
            Step::Rotate { force } => {
                let options = RotateOptions {
                    alg: Alg::Es256,
                    force: *force,
                };
                // Too early without force is a refusal, not a failure.
                let _ = manager.rotate(options, now).await;
            }
            Step::Revoke(state) => {
                let kid = manager
                    .current()
                    .manifest()
                    .keys
                    .iter()
                    .find(|k| k.state == *state)
                    .map(|k| k.kid.clone());
                if let Some(kid) = kid {
                    manager.revoke(&kid, now).await.unwrap();
                    revoked.insert(kid);
                }
            }
            Step::Tick(seconds) => {
                now += seconds;
                manager.tick(now).await.unwrap();
            }
            Step::Restart => {
                drop(manager);
                manager = open(now).await.unwrap();
            }
        }
        let set = manager.current();
        let active = set
            .manifest()
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count();
        prop_assert_eq!(active, 1, "after {:?}: one active key", step);
        // Sign a token with the active key, as the issuer would, and remember it.
        let key = set.active(Alg::Es256).unwrap();
        let claims = AccessClaims {
            iss: "https://issuer.test".into(),
            sub: "user".into(),
            aud: "api".into(),
            exp: now + ttl,
            iat: now,
            nbf: Some(now),
            jti: format!("{now}-{}", live.len()),
            client_id: "stamp".into(),
            scope: None,
            roles: Vec::new(),
            ver: None,
        };
        live.push((
            key.signer.sign(&claims).unwrap(),
            key.meta.kid.clone(),
            claims.exp,
        ));
        live.retain(|(_, _, exp)| *exp > now);
        for (token, kid, exp) in &live {
            if revoked.contains(kid) {
                prop_assert!(
                    verifier
                        .verify_with(set.verifying_keys(), token, now)
                        .is_err()
                );
                continue;
            }
            prop_assert!(
                verifier
                    .verify_with(set.verifying_keys(), token, now)
                    .is_ok(),
                "after {:?} at {}: a token of {} (exp {}) no longer verifies",
                step,
                now,
                kid,
                exp
            );
        }
    }
    Ok(())
}

#[test]
fn a_refresh_token_never_has_two_successors() {
    let rt = runtime();
    // Each step presents one of the tokens seen so far (by index, most often the newest),
    // from 1 to 3 callers at once.
    let strategy = proptest::collection::vec(
        (any::<proptest::sample::Index>(), 1usize..=3, any::<bool>()),
        1..8,
    );
    runner(8)
        .run(&strategy, |steps| rt.block_on(refresh_history(steps)))
        .unwrap();
}

async fn refresh_history(
    steps: Vec<(proptest::sample::Index, usize, bool)>,
) -> Result<(), TestCaseError> {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let login = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    let login: Value = login.into_json().await.unwrap();
    let mut tokens = vec![login["refresh_token"].as_str().unwrap().to_string()];
    let mut successes: HashMap<String, usize> = HashMap::new();
    for (index, callers, newest) in steps {
        let token = if newest {
            tokens.last().unwrap().clone()
        } else {
            tokens[index.index(tokens.len())].clone()
        };
        let body = format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&token)
        );
        let responses = join_all((0..callers).map(|_| app.token_form(&body))).await;
        for response in responses {
            let status = response.status();
            prop_assert!(
                status == Status::Ok || status == Status::BadRequest,
                "{}",
                status
            );
            if status == Status::Ok {
                let body: Value = response.into_json().await.unwrap();
                tokens.push(body["refresh_token"].as_str().unwrap().to_string());
                *successes.entry(token.clone()).or_default() += 1;
            }
        }
    }
    for (token, count) in &successes {
        prop_assert!(
            *count <= 1,
            "{} successors for one token ({})",
            count,
            &token[..6]
        );
    }
    Ok(())
}
