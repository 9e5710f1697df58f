//! `stamp::verify` against a small JWKS server on 127.0.0.1 that counts its requests: caching by
//! `max-age`, `304` revalidation, background refresh (stale-while-revalidate) that never delays
//! a request while usable keys exist, even with a stalled issuer, rate-limited single-flight
//! refetch on unknown `kid` and its cooldown error, no fetch for a foreign issuer's token,
//! serving stale keys while the issuer is down, the counters, discovery, algorithm confusion,
//! and tokens signed by independent libraries (PyJWT, jose) with keys they generated.
//!
//! Time is a parameter of every call, so the tests move the clock instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use stamp::keys::{Alg, PrivateKey, thumbprint};
use stamp::verify::{JwksClient, JwksConfig, JwksError, Verifier, VerifierConfig, VerifyError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const T0: i64 = 1_800_000_000;
const AUDIENCE: &str = "orders-api";

// ---------------------------------------------------------------------------------------------
// Caching and refetching.

#[tokio::test]
async fn max_age_is_honoured_then_the_set_is_revalidated_with_a_304() {
    let key = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    server.set(|s| s.cache_control = "public, max-age=60".into());
    let verifier = server.verifier(config());
    let token = key.token_valid_for(&server.issuer, T0, 3600);

    assert!(verifier.verify(&token, T0).await.is_ok());
    assert!(verifier.verify(&token, T0 + 59).await.is_ok());
    assert_eq!(server.requests(), 1, "fresh for max-age");

    assert!(verifier.verify(&token, T0 + 60).await.is_ok());
    settle(&verifier).await;
    assert_eq!(server.requests(), 2, "refetched once max-age is over");
    let state = server.state();
    assert_eq!(state.not_modified, 1, "answered 304");
    assert_eq!(
        state.if_none_match.last().map(String::as_str),
        Some(state.etag.as_str()),
        "revalidated with the ETag it was given"
    );
    let status = verifier.keys().status(T0 + 60);
    assert_eq!(
        (status.age, status.keys),
        (Some(0), 1),
        "304 renews the set"
    );

    assert!(verifier.verify(&token, T0 + 119).await.is_ok());
    assert_eq!(
        server.requests(),
        2,
        "fresh again for max-age after the 304"
    );
}

#[tokio::test]
async fn max_age_is_clamped_to_the_floor_and_the_ceiling() {
    let key = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier(JwksConfig {
        min_ttl: 100,
        max_ttl: 1000,
        ..config()
    });
    let token = key.token_valid_for(&server.issuer, T0, 3600);

    server.set(|s| s.cache_control = "no-store".into());
    assert!(verifier.verify(&token, T0).await.is_ok());
    assert!(verifier.verify(&token, T0 + 99).await.is_ok());
    assert_eq!(server.requests(), 1, "no-store is raised to the floor");

    server.set(|s| s.cache_control = "max-age=86400".into());
    assert!(verifier.verify(&token, T0 + 100).await.is_ok());
    settle(&verifier).await;
    assert_eq!(server.requests(), 2);
    assert!(verifier.verify(&token, T0 + 100 + 999).await.is_ok());
    assert_eq!(server.requests(), 2);
    assert!(verifier.verify(&token, T0 + 100 + 1000).await.is_ok());
    settle(&verifier).await;
    assert_eq!(
        server.requests(),
        3,
        "a day of max-age is cut to the ceiling"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let published = TestKey::new(Alg::Es256);
    let rotated_in = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&published]).await;
    server.set(|s| s.delay = Duration::from_millis(200));
    let verifier = server.verifier(config());
    let known = published.token(&server.issuer, T0);
    let unknown = rotated_in.token(&server.issuer, T0);
    assert!(verifier.verify(&known, T0).await.is_ok());
    assert_eq!(server.requests(), 1);

    // Within the interval of the last fetch: no request at all, and a distinct error that
    // says when to retry (the key may have just been published).
    let cooldown = verifier.verify(&unknown, T0 + 10).await;
    assert_eq!(
        cooldown,
        Err(VerifyError::UnknownKidCooldown {
            kid: rotated_in.kid.clone(),
            retry_after: 20
        })
    );
    assert_eq!(
        cooldown.unwrap_err().summary(),
        "the signing key is not known yet, retry later"
    );
    assert_eq!(server.requests(), 1);

    // After it: 20 concurrent callers with the unknown kid cause one request between them; each
    // learns the kid is not published (or, arriving after that fetch, is in the cooldown).
    let results = concurrently(20, &verifier, &unknown, T0 + 31).await;
    assert!(
        results.iter().all(|r| matches!(
            r,
            Err(VerifyError::UnknownKid(_) | VerifyError::UnknownKidCooldown { .. })
        )),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(VerifyError::UnknownKid(_)))),
        "the caller that fetched says the kid is not published"
    );
    assert_eq!(server.requests(), 2, "one refetch for twenty callers");

    // The issuer publishes the key; the next refetch is allowed one interval later.
    server.publish(&[&published, &rotated_in]);
    assert!(
        verifier.verify(&unknown, T0 + 60).await.is_err(),
        "still rate-limited"
    );
    assert_eq!(server.requests(), 2);
    assert!(verifier.verify(&unknown, T0 + 61).await.is_ok());
    assert_eq!(server.requests(), 3);
    assert!(verifier.verify(&known, T0 + 62).await.is_ok());
    assert_eq!(server.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_fetch_when_the_cache_expires() {
    let key = TestKey::new(Alg::Rs256);
    let server = JwksServer::start(&[&key]).await;
    server.set(|s| {
        s.delay = Duration::from_millis(300);
        s.cache_control = "max-age=60".into();
    });
    let verifier = server.verifier(config());
    let token = key.token(&server.issuer, T0);

    let results = concurrently(20, &verifier, &token, T0).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        server.requests(),
        1,
        "cold cache: one fetch for twenty callers"
    );

    let results = concurrently(20, &verifier, &token, T0 + 60).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    settle(&verifier).await;
    assert_eq!(
        server.requests(),
        2,
        "expired cache: one background fetch for twenty callers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_issuer_does_not_delay_requests_with_cached_keys() {
    let key = TestKey::new(Alg::Es256);
    let unpublished = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    server.set(|s| s.cache_control = "max-age=60".into());
    let timeout = Duration::from_millis(1500);
    let verifier = server.verifier(JwksConfig {
        refresh_ahead: 20,
        timeout,
        ..config()
    });
    let token = key.token_valid_for(&server.issuer, T0, 3600);
    assert!(verifier.verify(&token, T0).await.is_ok());
    assert_eq!(server.requests(), 1);

    // The issuer hangs: it accepts connections and never answers (as if SIGSTOPped).
    server.set(|s| s.stall = true);
    // Before expiry (refresh-ahead window), just after it, and well past it: each request is
    // answered from the cache at once while one background refresh hangs.
    for now in [T0 + 45, T0 + 61, T0 + 100] {
        let start = stamp::clock::instant();
        assert!(verifier.verify(&token, now).await.is_ok(), "at {now}");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "a request waited {took:?} for the stalled issuer"
        );
    }
    assert!(verifier.keys().status(T0 + 100).refreshing);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.requests(), 2, "one background refresh, hanging");

    // Only a token whose kid is unknown waits, bounded by the fetch timeout.
    let start = stamp::clock::instant();
    let unknown = verifier
        .verify(&unpublished.token(&server.issuer, T0 + 100), T0 + 100)
        .await;
    let took = start.elapsed();
    assert!(
        matches!(
            unknown,
            Err(VerifyError::Keys(JwksError::Unreachable { .. }))
        ),
        "{unknown:?}"
    );
    assert!(took <= timeout + Duration::from_millis(500), "{took:?}");
    settle(&verifier).await;
    let counters = verifier.keys().counters();
    assert_eq!(counters.background_refreshes, 1);
    assert_eq!(counters.failures, 1, "the timed-out refresh");
    assert_eq!(
        counters.stale_served, 3,
        "at T0+61 and T0+100, and for the unknown kid's look-up"
    );
    assert!(verifier.verify(&token, T0 + 101).await.is_ok());
}

#[tokio::test]
async fn a_foreign_issuers_token_causes_no_fetch() {
    let key = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier(config());
    let mut foreign = key.claims(&server.issuer, T0, 60);
    foreign["iss"] = "https://evil.test".into();
    let foreign = key.sign(&foreign, Some("at+jwt"));

    // Cold cache: refused as a wrong issuer without fetching the keys.
    assert!(matches!(
        verifier.verify(&foreign, T0).await,
        Err(VerifyError::WrongIssuer { .. })
    ));
    assert_eq!(server.requests(), 0, "no fetch for a foreign issuer");

    // Warm cache, a kid the set does not have: still no refetch.
    assert!(
        verifier
            .verify(&key.token(&server.issuer, T0), T0)
            .await
            .is_ok()
    );
    let stranger = TestKey::new(Alg::Es256);
    let mut claims = stranger.claims("https://evil.test", T0, 60);
    claims["iss"] = "https://evil.test".into();
    assert!(matches!(
        verifier
            .verify(&stranger.sign(&claims, Some("at+jwt")), T0 + 40)
            .await,
        Err(VerifyError::WrongIssuer { .. })
    ));
    assert_eq!(server.requests(), 1);
    assert_eq!(verifier.keys().counters().unknown_kid_refetches, 0);
}

#[tokio::test]
async fn the_counters_count_fetches_304s_refetches_and_failures() {
    let key = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    server.set(|s| s.cache_control = "max-age=60".into());
    let verifier = server.verifier(config());
    let token = key.token_valid_for(&server.issuer, T0, 3600);
    assert!(verifier.verify(&token, T0).await.is_ok());
    assert!(verifier.verify(&token, T0 + 60).await.is_ok());
    settle(&verifier).await;
    let unknown = TestKey::new(Alg::Es256).token(&server.issuer, T0);
    assert_eq!(
        verifier.verify(&unknown, T0 + 91).await,
        Err(VerifyError::UnknownKid(unknown_kid(&unknown)))
    );
    assert!(matches!(
        verifier.verify(&unknown, T0 + 92).await,
        Err(VerifyError::UnknownKidCooldown { .. })
    ));
    let counters = verifier.keys().counters();
    assert_eq!(counters.fetches, 3);
    assert_eq!(counters.not_modified, 2);
    assert_eq!(counters.background_refreshes, 1);
    assert_eq!(counters.stale_served, 1);
    assert_eq!(counters.unknown_kid_refetches, 1);
    assert_eq!(counters.unknown_kid_cooldowns, 1);
    assert_eq!(counters.failures, 0);
}

#[tokio::test]
async fn cached_keys_are_served_while_the_issuer_is_down_within_max_stale() {
    let key = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    server.set(|s| s.cache_control = "max-age=60".into());
    let verifier = server.verifier(JwksConfig {
        max_stale: 120,
        refetch_interval: 30,
        ..config()
    });
    let token = key.token_valid_for(&server.issuer, T0, 3600);
    assert!(verifier.verify(&token, T0).await.is_ok());

    let base = server.stop().await;
    assert!(
        verifier.verify(&token, T0 + 70).await.is_ok(),
        "stale keys serve while the issuer is down"
    );
    settle(&verifier).await;
    let status = verifier.keys().status(T0 + 70);
    assert_eq!(status.stale_for, 10, "staleness is reported");
    assert!(
        matches!(status.last_error, Some(JwksError::Unreachable { .. })),
        "{status:?}"
    );
    let attempts = status.fetches;
    assert!(verifier.verify(&token, T0 + 90).await.is_ok());
    assert_eq!(
        verifier.keys().status(T0 + 90).fetches,
        attempts,
        "a down issuer is asked once per interval, not per request"
    );
    assert!(
        verifier.verify(&token, T0 + 180).await.is_ok(),
        "120 s stale"
    );
    settle(&verifier).await;
    let too_old = verifier.verify(&token, T0 + 181).await;
    assert!(
        matches!(
            too_old,
            Err(VerifyError::Keys(JwksError::TooStale {
                max_stale: 120,
                stale_for: 121,
                cutoff,
                ..
            })) if cutoff == T0 + 180
        ),
        "{too_old:?}"
    );
    let message = too_old.unwrap_err().to_string();
    assert!(
        message.contains(&format!("could be used until {}", T0 + 180)),
        "the message states the real cut-off: {message}"
    );

    // The issuer comes back on the same port: the next attempt recovers.
    let server = JwksServer::start_at(base, &[&key]).await;
    assert!(verifier.verify(&token, T0 + 215).await.is_ok());
    assert_eq!(verifier.keys().status(T0 + 215).stale_for, 0);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn the_jwks_is_found_through_discovery_of_the_same_issuer() {
    let key = TestKey::new(Alg::Rs256);
    let server = JwksServer::start(&[&key]).await;
    let keys = JwksClient::discover(&server.issuer, config()).unwrap();
    let verifier = Verifier::new(VerifierConfig::new(&server.issuer, AUDIENCE), keys);
    let claims = verifier
        .verify(&key.token(&server.issuer, T0), T0)
        .await
        .unwrap();
    assert_eq!(claims.sub, "user-1");
    assert_eq!(server.state().discovery_requests, 1);

    // A discovery document naming another issuer is refused (OIDC Discovery §4.3).
    server.set(|s| s.discovery_issuer = Some("https://evil.test".into()));
    let keys = JwksClient::discover(&server.issuer, config()).unwrap();
    let verifier = Verifier::new(VerifierConfig::new(&server.issuer, AUDIENCE), keys);
    let refused = verifier.verify(&key.token(&server.issuer, T0), T0).await;
    assert!(
        matches!(refused, Err(VerifyError::Keys(JwksError::Discovery { .. }))),
        "{refused:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The rules, with keys fetched over HTTP.

#[tokio::test]
async fn each_failed_check_is_named() {
    let ec = TestKey::new(Alg::Es256);
    let rsa = TestKey::new(Alg::Rs256);
    let server = JwksServer::start(&[&ec, &rsa]).await;
    let verifier = server.verifier(config());
    let iss = server.issuer.clone();
    let good = ec.token(&iss, T0);
    let payload = good.split('.').nth(1).unwrap().to_string();
    let signature = good.rsplit('.').next().unwrap().to_string();
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());

    // alg none
    let none = format!(
        "{}.{payload}.",
        b64(json!({"alg":"none","typ":"at+jwt","kid":ec.kid}))
    );
    assert_eq!(
        verifier.verify(&none, T0).await,
        Err(VerifyError::AlgorithmNotAllowed("none".into()))
    );
    // HS256 keyed with the public key as published (the JWKS bytes)
    let jwks_bytes = server.state().jwks;
    let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(rsa.kid.clone());
    let hs = jsonwebtoken::encode(
        &hs,
        &ec.claims(&iss, T0, 60),
        &EncodingKey::from_secret(&jwks_bytes),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&hs, T0).await,
        Err(VerifyError::AlgorithmNotAllowed("HS256".into()))
    );
    // RS256 header on the EC key
    let rs_on_ec = format!(
        "{}.{payload}.{signature}",
        b64(json!({"alg":"RS256","typ":"at+jwt","kid":ec.kid}))
    );
    assert!(matches!(
        verifier.verify(&rs_on_ec, T0).await,
        Err(VerifyError::KeyAlgorithmMismatch {
            key: Alg::Es256,
            header: Alg::Rs256,
            ..
        })
    ));
    // wrong iss, wrong aud
    let mut claims = ec.claims(&iss, T0, 60);
    claims["iss"] = "https://evil.test".into();
    assert!(matches!(
        verifier.verify(&ec.sign(&claims, Some("at+jwt")), T0).await,
        Err(VerifyError::WrongIssuer { .. })
    ));
    let mut claims = ec.claims(&iss, T0, 60);
    claims["aud"] = "another-api".into();
    assert!(matches!(
        verifier.verify(&ec.sign(&claims, Some("at+jwt")), T0).await,
        Err(VerifyError::WrongAudience { .. })
    ));
    // expired, not yet valid (default leeway 5 s)
    assert!(matches!(
        verifier.verify(&good, T0 + 60 + 5).await,
        Err(VerifyError::Expired { .. })
    ));
    assert!(matches!(
        verifier.verify(&good, T0 - 6).await,
        Err(VerifyError::NotYetValid { .. })
    ));
    // wrong typ: an ID token or plain JWT signed by the same key
    assert_eq!(
        verifier
            .verify(&ec.sign(&ec.claims(&iss, T0, 60), Some("JWT")), T0)
            .await,
        Err(VerifyError::WrongType {
            found: Some("JWT".into())
        })
    );
    // one flipped signature character
    let mut forged = good.clone().into_bytes();
    let at = good.rfind('.').unwrap() + 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verifier
            .verify(&String::from_utf8(forged).unwrap(), T0)
            .await,
        Err(VerifyError::BadSignature)
    );
    // and the genuine token passes, so the checks above can pass
    assert!(verifier.verify(&good, T0).await.is_ok());
    assert!(verifier.verify(&rsa.token(&iss, T0), T0).await.is_ok());
}

// ---------------------------------------------------------------------------------------------
// The example resource server (examples/resource_server.rs, compiled into this test binary).

#[path = "../../examples/resource_server.rs"]
#[allow(dead_code)]
mod resource_server;

#[rocket::async_test]
async fn the_example_service_answers_with_rfc6750_challenges() {
    use rocket::http::{Header as HttpHeader, Status};
    use rocket::local::asynchronous::Client;

    let key = TestKey::new(Alg::Es256);
    let server = JwksServer::start(&[&key]).await;
    let figment = rocket::Config::figment().merge(("log_level", "off"));
    let rocket = resource_server::build(figment, server.issuer.clone(), AUDIENCE.into());
    let client = Client::tracked(rocket).await.unwrap();
    let now = stamp::clock::now();
    let bearer = |token: &str| HttpHeader::new("Authorization", format!("Bearer {token}"));
    let challenge = |r: &rocket::local::asynchronous::LocalResponse<'_>| {
        r.headers()
            .get_one("WWW-Authenticate")
            .unwrap_or("")
            .to_string()
    };

    // No token: 401 and a bare challenge.
    let response = client.get("/me").dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(challenge(&response), "Bearer realm=\"orders\"");

    // An invalid token: 401 invalid_token, naming the failed check.
    let expired = key.token(&server.issuer, now - 3600);
    let response = client.get("/me").header(bearer(&expired)).dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(
        challenge(&response),
        "Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"the token has expired\""
    );
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    // A valid token without the scope: /me answers, /orders is 403 insufficient_scope.
    let mut claims = key.claims(&server.issuer, now, 60);
    claims["scope"] = "profile".into();
    let unscoped = key.sign(&claims, Some("at+jwt"));
    let response = client.get("/me").header(bearer(&unscoped)).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let me: Value = response.into_json().await.unwrap();
    assert_eq!(me["sub"], "user-1");
    let response = client
        .get("/orders")
        .header(bearer(&unscoped))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Forbidden);
    assert_eq!(
        challenge(&response),
        "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"orders:read\""
    );

    // With the scope: 200.
    let scoped = key.token(&server.issuer, now);
    let response = client
        .get("/orders")
        .header(bearer(&scoped))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
}

// ---------------------------------------------------------------------------------------------
// Reverse interop: tokens signed by independent libraries with keys they generated.

#[tokio::test]
async fn tokens_signed_by_pyjwt_and_jose_verify_with_stamp_verify() {
    let libraries = match crate::interop::verifiers() {
        Ok(libraries) => libraries,
        Err(e) => panic!("cannot install the third-party libraries: {e}"),
    };
    for library in libraries.all() {
        for alg in ["ES256", "RS256"] {
            let server = JwksServer::start(&[]).await;
            let signed = library.sign(alg, &server.issuer, AUDIENCE);
            server.set(|s| s.jwks = serde_json::to_vec(&signed["jwks"]).unwrap());
            let verifier = server.verifier(config());
            let token = signed["token"].as_str().unwrap();
            let now = stamp::clock::now();

            let claims = verifier.verify(token, now).await.unwrap_or_else(|e| {
                panic!("a {alg} token signed by {} was refused: {e}", library.name)
            });
            assert!(claims.has_scope("orders:read"), "{}", library.name);
            assert!(claims.sub.ends_with("-user"), "{}", library.name);

            // The same token with another audience configured is refused: the check is real.
            let other = Verifier::new(
                VerifierConfig::new(&server.issuer, "another-api"),
                verifier.keys().clone(),
            );
            assert!(matches!(
                other.verify(token, now).await,
                Err(VerifyError::WrongAudience { .. })
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn config() -> JwksConfig {
    JwksConfig {
        min_ttl: 1,
        max_ttl: 3600,
        default_ttl: 300,
        max_stale: 3600,
        refetch_interval: 30,
        // These tests count fetches at set times; the background refresh ahead of expiry has
        // its own test.
        refresh_ahead: 0,
        timeout: Duration::from_secs(5),
        max_body: 64 * 1024,
        http: None,
    }
}

/// The `kid` in a token's header.
fn unknown_kid(token: &str) -> String {
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until no background refresh is running (they run on this test's runtime).
async fn settle(verifier: &Verifier) {
    for _ in 0..1000 {
        if !verifier.keys().status(T0).refreshing {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the background refresh did not finish");
}

async fn concurrently(
    n: usize,
    verifier: &Verifier,
    token: &str,
    now: i64,
) -> Vec<Result<stamp::verify::Claims, VerifyError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.to_string();
            tokio::spawn(async move { verifier.verify(&token, now).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// A signing key, its `kid` and its public JWK.
struct TestKey {
    kid: String,
    jwk: Value,
    encoding: EncodingKey,
    alg: Alg,
}

impl TestKey {
    fn new(alg: Alg) -> TestKey {
        let key = PrivateKey::generate(alg, 2048).unwrap();
        let public = key.public_jwk();
        let kid = thumbprint(&public);
        TestKey {
            jwk: public.to_json_value(&kid),
            kid,
            encoding: key.encoding_key().unwrap(),
            alg,
        }
    }

    fn claims(&self, issuer: &str, now: i64, ttl: i64) -> Value {
        json!({"iss": issuer, "sub": "user-1", "aud": AUDIENCE, "exp": now + ttl, "iat": now,
               "nbf": now, "jti": "j-1", "client_id": "orders-app", "scope": "orders:read"})
    }

    fn sign(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = Header::new(self.alg.jwt());
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(String::from);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    fn token(&self, issuer: &str, now: i64) -> String {
        self.sign(&self.claims(issuer, now, 60), Some("at+jwt"))
    }

    fn token_valid_for(&self, issuer: &str, now: i64, ttl: i64) -> String {
        self.sign(&self.claims(issuer, now, ttl), Some("at+jwt"))
    }
}

/// What the test JWKS server answers, and what it saw.
#[derive(Clone, Default)]
struct ServerState {
    jwks: Vec<u8>,
    etag: String,
    cache_control: String,
    delay: Duration,
    /// Accept requests and never answer them (an issuer stopped by SIGSTOP, a hung proxy).
    stall: bool,
    discovery_issuer: Option<String>,
    requests: usize,
    not_modified: usize,
    discovery_requests: usize,
    if_none_match: Vec<String>,
}

/// A JWKS and discovery server on 127.0.0.1 (plain tokio, HTTP/1.1, one request per connection).
struct JwksServer {
    issuer: String,
    state: Arc<Mutex<ServerState>>,
    task: Option<JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl JwksServer {
    async fn start(keys: &[&TestKey]) -> JwksServer {
        JwksServer::start_at("127.0.0.1:0".parse().unwrap(), keys).await
    }

    async fn start_at(addr: std::net::SocketAddr, keys: &[&TestKey]) -> JwksServer {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let state = Arc::new(Mutex::new(ServerState {
            cache_control: "public, max-age=300".into(),
            ..ServerState::default()
        }));
        let server_state = state.clone();
        let server_issuer = issuer.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = server_state.clone();
                let issuer = server_issuer.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state, issuer).await;
                });
            }
        });
        let server = JwksServer {
            issuer,
            state,
            task: Some(task),
            addr,
        };
        server.publish(keys);
        server
    }

    fn publish(&self, keys: &[&TestKey]) {
        let jwks: Vec<_> = keys.iter().map(|k| k.jwk.clone()).collect();
        self.set(|s| s.jwks = serde_json::to_vec(&json!({ "keys": jwks })).unwrap());
    }

    fn set(&self, change: impl FnOnce(&mut ServerState)) {
        let mut state = self.state.lock().unwrap();
        change(&mut state);
        state.etag = format!("\"{:x}\"", fnv(&state.jwks));
    }

    fn state(&self) -> ServerState {
        self.state.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.state().requests
    }

    /// A verifier of this issuer's tokens, fetching its JWKS URL directly.
    fn verifier(&self, config: JwksConfig) -> Verifier {
        let keys = JwksClient::new(format!("{}/jwks.json", self.issuer), config).unwrap();
        Verifier::new(VerifierConfig::new(&self.issuer, AUDIENCE), keys)
    }

    /// Stops listening (connections are refused once this returns); returns the address for a
    /// restart.
    async fn stop(mut self) -> std::net::SocketAddr {
        if let Some(task) = self.task.take() {
            task.abort();
            // The listener is dropped when the cancelled task is.
            let _ = task.await;
        }
        self.addr
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    state: Arc<Mutex<ServerState>>,
    issuer: String,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&request).to_string();
    let path = request.split(' ').nth(1).unwrap_or("").to_string();
    let if_none_match = request.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("if-none-match")
            .then(|| value.trim().to_string())
    });
    let stalled = {
        let mut s = state.lock().unwrap();
        s.stall && path == "/jwks.json" && {
            s.requests += 1;
            true
        }
    };
    if stalled {
        // Hold the connection open without a byte of answer.
        return std::future::pending().await;
    }
    let (status, headers, body, delay) = {
        let mut s = state.lock().unwrap();
        match path.as_str() {
            "/jwks.json" => {
                s.requests += 1;
                if let Some(tag) = &if_none_match {
                    s.if_none_match.push(tag.clone());
                }
                let cache = format!("Cache-Control: {}\r\nETag: {}\r\n", s.cache_control, s.etag);
                if if_none_match.as_deref() == Some(s.etag.as_str()) {
                    s.not_modified += 1;
                    ("304 Not Modified", cache, Vec::new(), s.delay)
                } else {
                    ("200 OK", cache, s.jwks.clone(), s.delay)
                }
            }
            "/.well-known/openid-configuration" => {
                s.discovery_requests += 1;
                let doc = json!({
                    "issuer": s.discovery_issuer.clone().unwrap_or_else(|| issuer.clone()),
                    "jwks_uri": format!("{issuer}/jwks.json"),
                });
                (
                    "200 OK",
                    String::new(),
                    serde_json::to_vec(&doc).unwrap(),
                    s.delay,
                )
            }
            _ => ("404 Not Found", String::new(), Vec::new(), Duration::ZERO),
        }
    };
    tokio::time::sleep(delay).await;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// FNV-1a: a stable ETag for the test server's body.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
