//! Service clients: the client_credentials grant with both authentication methods, scope limits,
//! failures (401 invalid_client with a Basic challenge), per-client algorithms, discovery, and
//! the `stamp clients` / `stamp users revoke-tokens` commands.

use std::process::Output;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::Value;
use stamp::keys::Alg;

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, no_waits, run_stamp, text, urlencode};

async fn add_client(app: &TestApp, id: &str, scopes: &[&str], alg: Option<Alg>) -> String {
    app.add_service_client(id, scopes, alg).await
}

fn basic(id: &str, secret: &str) -> Header<'static> {
    let raw = format!("{}:{}", urlencode(id), urlencode(secret));
    Header::new("Authorization", format!("Basic {}", STANDARD.encode(raw)))
}

async fn grant_basic<'a>(
    app: &'a TestApp,
    id: &str,
    secret: &str,
    body: &str,
) -> LocalResponse<'a> {
    app.client
        .post("/oauth/token")
        .header(ContentType::Form)
        .header(basic(id, secret))
        .body(body)
        .dispatch()
        .await
}

#[rocket::async_test]
async fn client_secret_basic_gets_a_token_for_the_client_itself() {
    let app = TestApp::spawn().await;
    let secret = add_client(&app, "billing", &["orders:read", "orders:write"], None).await;

    let response = grant_basic(&app, "billing", &secret, "grant_type=client_credentials").await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.headers().get_one("Cache-Control"),
        Some("no-store")
    );
    let body: Value = response.into_json().await.unwrap();
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for this grant"
    );
    assert_eq!(
        body["scope"], "orders:read orders:write",
        "none asked: all allowed"
    );
    let claims = app
        .verify_with_jwks(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["sub"], "billing");
    assert_eq!(claims["client_id"], "billing");
    assert_eq!(claims["scope"], "orders:read orders:write");
    assert!(claims.get("roles").is_none());
}

#[rocket::async_test]
async fn client_secret_post_works_too() {
    let app = TestApp::spawn().await;
    let secret = add_client(&app, "billing", &["orders:read"], None).await;
    let response = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id=billing&client_secret={}&scope=orders:read",
            urlencode(&secret)
        ))
        .await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["scope"], "orders:read");
}

#[rocket::async_test]
async fn scope_is_limited_to_what_the_client_may_have() {
    let app = TestApp::spawn().await;
    let secret = add_client(&app, "billing", &["orders:read", "orders:write"], None).await;

    let narrower = grant_basic(
        &app,
        "billing",
        &secret,
        "grant_type=client_credentials&scope=orders:read",
    )
    .await;
    let body: Value = narrower.into_json().await.unwrap();
    assert_eq!(body["scope"], "orders:read");

    let more = grant_basic(
        &app,
        "billing",
        &secret,
        "grant_type=client_credentials&scope=orders:read%20admin",
    )
    .await;
    let error = assert_oauth_error(more, Status::BadRequest, "invalid_scope").await;
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );

    let nothing_allowed = add_client(&app, "bare", &[], None).await;
    let response = grant_basic(
        &app,
        "bare",
        &nothing_allowed,
        "grant_type=client_credentials&scope=orders:read",
    )
    .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_scope").await;
}

#[rocket::async_test]
async fn bad_client_authentication_is_401_invalid_client_with_a_basic_challenge() {
    let app = TestApp::spawn().await;
    let secret = add_client(&app, "billing", &["orders:read"], None).await;
    add_client(&app, "retired", &[], None).await;
    let retired_secret = add_client(&app, "retired2", &[], None).await;
    app.app()
        .store
        .set_client_disabled("retired2", true, stamp::clock::now())
        .await
        .unwrap();

    let cases = [
        grant_basic(&app, "billing", "wrong", "grant_type=client_credentials").await,
        grant_basic(&app, "nobody", &secret, "grant_type=client_credentials").await,
        grant_basic(
            &app,
            "retired2",
            &retired_secret,
            "grant_type=client_credentials",
        )
        .await,
        app.token_form("grant_type=client_credentials").await,
        app.token_form("grant_type=client_credentials&client_id=billing")
            .await,
        app.client
            .post("/oauth/token")
            .header(ContentType::Form)
            .header(Header::new("Authorization", "Basic %%%"))
            .body("grant_type=client_credentials")
            .dispatch()
            .await,
    ];
    for response in cases {
        assert_eq!(
            response.headers().get_one("WWW-Authenticate"),
            Some(r#"Basic realm="stamp""#)
        );
        assert_oauth_error(response, Status::Unauthorized, "invalid_client").await;
    }

    // Two methods at once is a malformed request (RFC 6749 §2.3).
    let both = app
        .client
        .post("/oauth/token")
        .header(ContentType::Form)
        .header(basic("billing", &secret))
        .body(format!(
            "grant_type=client_credentials&client_secret={}",
            urlencode(&secret)
        ))
        .dispatch()
        .await;
    assert_oauth_error(both, Status::BadRequest, "invalid_request").await;
}

#[rocket::async_test]
async fn a_client_may_have_its_tokens_signed_with_another_algorithm() {
    let app = TestApp::spawn_with(no_waits).await;
    let secret = add_client(&app, "legacy", &["reports"], Some(Alg::Rs256)).await;
    let es_secret = add_client(&app, "modern", &["reports"], None).await;
    // Written straight to the store: publish its key as `clients add` does, and let the upkeep
    // promote it (no pre-publication wait here). trust_keys.rs covers the wait itself.
    let now = stamp::clock::now();
    app.app()
        .keys
        .publish_keys(&[Alg::Rs256], now)
        .await
        .unwrap();
    app.app().keys.tick(now).await.unwrap();

    let response = grant_basic(&app, "legacy", &secret, "grant_type=client_credentials").await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.unwrap(), app.active_kid(Alg::Rs256));
    assert!(app.verify_with_jwks(token).await.is_ok());

    let response = grant_basic(&app, "modern", &es_secret, "grant_type=client_credentials").await;
    let body: Value = response.into_json().await.unwrap();
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

#[rocket::async_test]
async fn discovery_names_the_grants_endpoints_and_client_auth_methods() {
    let app = TestApp::spawn().await;
    let (_, doc) = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "password",
            "refresh_token",
            "client_credentials",
            "authorization_code"
        ])
    );
    assert_eq!(
        doc["revocation_endpoint"],
        "http://127.0.0.1:8000/oauth/revoke"
    );
    assert_eq!(
        doc["introspection_endpoint"],
        "http://127.0.0.1:8000/oauth/introspect"
    );
    for field in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        let methods = doc[field].as_array().unwrap();
        assert!(methods.contains(&"client_secret_basic".into()), "{field}");
        assert!(methods.contains(&"client_secret_post".into()), "{field}");
    }
}

fn stamp(dir: &std::path::Path, args: &[&str]) -> Output {
    run_stamp(dir, args, "", &[])
}

#[rocket::async_test]
async fn cli_clients_add_prints_a_secret_once_that_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let add = stamp(
        dir.path(),
        &[
            "clients",
            "add",
            "billing",
            "--scope",
            "orders:read",
            "--alg",
            "RS256",
        ],
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    let secret = text(&add.stdout).trim().to_string();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&secret)
        .unwrap();
    assert_eq!(raw.len(), 32, "256-bit secret");
    assert!(text(&add.stderr).contains("only this once"));

    let again = stamp(dir.path(), &["clients", "add", "billing"]);
    assert!(!again.status.success());
    let bad = stamp(dir.path(), &["clients", "add", "x", "--alg", "HS256"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("HS256"));

    let list = stamp(dir.path(), &["clients", "list"]);
    let listing = text(&list.stdout);
    assert!(
        listing.contains("billing") && listing.contains("RS256") && listing.contains("orders:read")
    );
    assert!(
        !listing.contains(&secret),
        "the secret is never shown again"
    );
    let db = std::fs::read(dir.path().join("stamp.db")).unwrap();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "only the hash is stored"
    );

    // A manual clock, so the client cache's TTL passes without sleeping.
    let clock = stamp::clock::Clock::manual(stamp::clock::now());
    let rocket = stamp::build_with_clock(crate::helpers::figment_in(dir.path()), clock.clone())
        .await
        .unwrap();
    let client = rocket::local::asynchronous::Client::tracked(rocket)
        .await
        .unwrap();
    let app = TestApp { client, dir };
    let response = grant_basic(&app, "billing", &secret, "grant_type=client_credentials").await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);

    let disable = stamp(app.dir.path(), &["clients", "disable", "billing"]);
    assert!(disable.status.success(), "{}", text(&disable.stderr));
    // A change made by another process reaches this one within `client_cache_ttl` (1 s).
    clock.advance(1);
    let response = grant_basic(&app, "billing", &secret, "grant_type=client_credentials").await;
    assert_oauth_error(response, Status::Unauthorized, "invalid_client").await;
    assert!(
        !stamp(app.dir.path(), &["clients", "disable", "nobody"])
            .status
            .success()
    );
}

#[rocket::async_test]
async fn cli_users_revoke_tokens_ends_the_users_sessions() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    let body: Value = response.into_json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    let out = stamp(app.dir.path(), &["users", "revoke-tokens", "Alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("token version 1"));

    let response = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&refresh)
        ))
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
    assert!(
        !stamp(app.dir.path(), &["users", "revoke-tokens", "nobody"])
            .status
            .success()
    );
    let audit = app.app().store.recent_audit(5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "users.revoke_tokens" && e.actor == "cli")
    );
}

#[rocket::async_test]
async fn a_cached_client_still_needs_its_secret_and_the_cache_can_be_turned_off() {
    use stamp::auth::ClientSecret;
    use stamp::store::{ClientId, NewClient, Scope};

    for ttl in [1u64, 0] {
        let app = TestApp::spawn_with(|f| {
            f.merge(rocket::figment::providers::Serialized::global(
                "client_cache_ttl",
                ttl,
            ))
        })
        .await;
        let secret = ClientSecret::generate();
        let client = NewClient {
            id: ClientId::parse("svc").unwrap(),
            secret_hash: Some(secret.hash()),
            scopes: vec![Scope::parse("read").unwrap()],
            alg: None,
            grants: stamp::store::GrantType::defaults(false),
            redirect_uris: Vec::new(),
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
        };
        app.app()
            .store
            .create_client(client, stamp::clock::now())
            .await
            .unwrap();
        let ok = grant_basic(
            &app,
            "svc",
            secret.expose(),
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(ok.status(), Status::Ok);
        // Now cached (ttl 1): a wrong secret is still refused.
        let wrong = grant_basic(
            &app,
            "svc",
            "not-the-secret",
            "grant_type=client_credentials",
        )
        .await;
        assert_oauth_error(wrong, Status::Unauthorized, "invalid_client").await;
        app.app()
            .store
            .set_client_disabled("svc", true, stamp::clock::now())
            .await
            .unwrap();
        let after = grant_basic(
            &app,
            "svc",
            secret.expose(),
            "grant_type=client_credentials",
        )
        .await;
        if ttl == 0 {
            assert_oauth_error(after, Status::Unauthorized, "invalid_client").await;
        } else {
            // The cached record answers until it expires or is forgotten (bounded staleness).
            assert_eq!(after.status(), Status::Ok);
            app.app().auth.client_cache().forget("svc");
            let forgotten = grant_basic(
                &app,
                "svc",
                secret.expose(),
                "grant_type=client_credentials",
            )
            .await;
            assert_oauth_error(forgotten, Status::Unauthorized, "invalid_client").await;
        }
    }
}
