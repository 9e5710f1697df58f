//! Issue 10, revocation and the online checks: "log out everywhere", disabling and a password
//! change reach live access tokens on every online check; the issuer's own check equals the
//! shipped verifier's; discovery states only what exists; logout and a failed cookie refresh
//! expire every session cookie; admin answers are not stored; readiness keeps database errors to
//! the log; an over-long login password is refused before hashing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Cookie, Header, Method, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::{Value, json};
use stamp::admin::Actor;
use stamp::clock::Clock;
use stamp::keys::Alg;
use stamp::store::Username;
use stamp::verify::{Verifier, VerifierConfig, VerifyingKeys};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, figment_in, urlencode};

const NOW: i64 = 1_900_000_000;

/// An issuer on a manual clock standing at [`NOW`].
async fn spawn_at_now(tweak: impl FnOnce(Figment) -> Figment) -> (TestApp, Clock) {
    let clock = Clock::manual(NOW);
    (TestApp::spawn_on_clock(&clock, tweak).await, clock)
}

/// A confidential client with `scopes`; returns its secret.
async fn add_client(app: &TestApp, id: &str, scopes: &[&str]) -> String {
    app.add_service_client(id, scopes, None).await
}

/// Whether the gateway client's introspection finds `token` active.
async fn active(app: &TestApp, secret: &str, token: &str) -> bool {
    app.gateway_sees_active(secret, token).await
}

/// The status of `GET /admin/keys` with `token`.
async fn admin_status(app: &TestApp, token: &str) -> Status {
    app.admin_status(token).await
}

#[rocket::async_test]
async fn log_out_everywhere_ends_live_access_tokens_on_every_online_check() {
    let (app, _clock) = spawn_at_now(|f| f).await;
    let root = app.add_user("root", PASSWORD, &["admin"]).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let stolen = app.login("root", PASSWORD).await;
    assert_eq!(admin_status(&app, &stolen).await, Status::Ok);
    assert!(active(&app, &gateway, &stolen).await);

    // The owner logs out everywhere (with the token itself).
    let path = format!("/admin/users/{}/revoke-tokens", root.id);
    let response = app.admin_call(Method::Post, &path, &stolen, None).await;
    assert_eq!(response.status(), Status::Ok);

    // The admin guard, forced rotation included, and introspection refuse the old token.
    let rotate = app
        .admin_call(
            Method::Post,
            "/admin/keys/rotate",
            &stolen,
            Some(r#"{"force":true}"#),
        )
        .await;
    assert_oauth_error(rotate, Status::Unauthorized, "invalid_token").await;
    assert_eq!(admin_status(&app, &stolen).await, Status::Unauthorized);
    assert!(!active(&app, &gateway, &stolen).await);
    // Logout with it is still no error.
    let logout = app
        .client
        .post("/logout")
        .header(Header::new("Authorization", format!("Bearer {stolen}")))
        .dispatch()
        .await;
    assert_eq!(logout.status(), Status::NoContent);
    // The offline verifier still accepts it until `exp`: the price of offline verification.
    assert!(app.verify_with_jwks(&stolen).await.is_ok());

    // A login in the same second after the revocation is live: versions, not times, decide.
    let fresh = app.login("root", PASSWORD).await;
    assert_eq!(admin_status(&app, &fresh).await, Status::Ok);
    assert!(active(&app, &gateway, &fresh).await);
}

#[rocket::async_test]
async fn disabling_and_password_changes_end_live_access_tokens() {
    let (app, _clock) = spawn_at_now(|f| f).await;
    app.add_user("alice", PASSWORD, &["admin"]).await;
    let bob = app.add_user("bob", PASSWORD, &["admin"]).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let alice_token = app.login("alice", PASSWORD).await;
    let bob_token = app.login("bob", PASSWORD).await;

    // Disabled with the CLI's service call, then enabled again: the old token stays dead.
    let alice = Username::parse("alice").unwrap();
    app.app()
        .admin
        .disable_user(&Actor::Cli, &alice)
        .await
        .unwrap();
    assert_eq!(admin_status(&app, &alice_token).await, Status::Unauthorized);
    app.app()
        .store
        .set_disabled("alice", false, NOW)
        .await
        .unwrap();
    assert_eq!(admin_status(&app, &alice_token).await, Status::Unauthorized);
    assert!(!active(&app, &gateway, &alice_token).await);
    let again = app.login("alice", PASSWORD).await;
    assert_eq!(admin_status(&app, &again).await, Status::Ok);

    // A password change ends the tokens issued before it.
    let store = &app.app().store;
    let hash = store
        .user_by_id(&bob.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    store.set_password_hash(&bob.id, &hash, NOW).await.unwrap();
    assert_eq!(admin_status(&app, &bob_token).await, Status::Unauthorized);
    assert!(!active(&app, &gateway, &bob_token).await);
}

#[rocket::async_test]
async fn a_disabled_clients_own_tokens_fail_every_online_check() {
    let (app, _clock) = spawn_at_now(|f| f).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let cron = add_client(&app, "cron", &["admin"]).await;
    let response = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id=cron&client_secret={}",
            urlencode(&cron)
        ))
        .await;
    let body: Value = response.into_json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(admin_status(&app, &token).await, Status::Ok);
    assert!(active(&app, &gateway, &token).await);

    app.app()
        .admin
        .disable_client(&Actor::Cli, "cron")
        .await
        .unwrap();
    assert_eq!(admin_status(&app, &token).await, Status::Unauthorized);
    assert!(!active(&app, &gateway, &token).await);
}

/// Signs `claims` under `header` (both JSON objects) with the issuer's active ES256 key.
fn sign_raw(app: &TestApp, header: &Value, claims: &Value) -> String {
    let keys = app.app().keys.snapshot();
    let key = keys.active(Alg::Es256).unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &key.encoding,
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[rocket::async_test]
async fn the_online_checks_accept_exactly_what_the_shipped_verifier_accepts() {
    let (app, _clock) = spawn_at_now(|f| f).await;
    let root = app.add_user("root", PASSWORD, &["admin"]).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let kid = app.active_kid(Alg::Es256);
    let config = &app.app().config;
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let keys = VerifyingKeys::parse(&serde_json::to_vec(&jwks).unwrap()).unwrap();
    let verifier = Verifier::new(VerifierConfig::new(&config.issuer, &config.audience), ());

    let header = |typ: Option<&str>, crit: bool| {
        let mut h = json!({"alg": "ES256", "kid": kid});
        if let Some(typ) = typ {
            h["typ"] = typ.into();
        }
        if crit {
            h["crit"] = json!(["exp"]);
        }
        h
    };
    let claims = |jti: &str, exp: i64| {
        json!({"iss": config.issuer, "sub": root.id, "aud": config.audience, "exp": exp,
               "iat": NOW, "nbf": NOW, "jti": jti, "client_id": "stamp", "roles": ["admin"]})
    };
    let without = |mut c: Value, claim: &str| {
        c.as_object_mut().unwrap().remove(claim);
        c
    };
    let leeway = VerifierConfig::new("i", "a").leeway as i64;
    let cases = [
        (
            "plain",
            header(Some("at+jwt"), false),
            claims("a", NOW + 60),
            true,
        ),
        (
            "crit",
            header(Some("at+jwt"), true),
            claims("b", NOW + 60),
            false,
        ),
        (
            "typ JWT",
            header(Some("JWT"), false),
            claims("c", NOW + 60),
            false,
        ),
        ("no typ", header(None, false), claims("d", NOW + 60), false),
        (
            "typ application/at+jwt",
            header(Some("application/at+jwt"), false),
            claims("e", NOW + 60),
            true,
        ),
        (
            "typ AT+JWT",
            header(Some("AT+JWT"), false),
            claims("f", NOW + 60),
            true,
        ),
        (
            "exp i64::MAX",
            header(Some("at+jwt"), false),
            claims("g", i64::MAX),
            true,
        ),
        (
            "exp within the leeway",
            header(Some("at+jwt"), false),
            claims("h", NOW - leeway + 1),
            true,
        ),
        (
            "exp past the leeway",
            header(Some("at+jwt"), false),
            claims("i", NOW - leeway),
            false,
        ),
        (
            "no nbf",
            header(Some("at+jwt"), false),
            without(claims("j", NOW + 60), "nbf"),
            true,
        ),
        (
            "no jti",
            header(Some("at+jwt"), false),
            without(claims("k", NOW + 60), "jti"),
            false,
        ),
        (
            "no client_id",
            header(Some("at+jwt"), false),
            without(claims("l", NOW + 60), "client_id"),
            false,
        ),
    ];
    for (name, header, claims, expected) in cases {
        let token = sign_raw(&app, &header, &claims);
        let offline = verifier.verify_with(&keys, &token, NOW).is_ok();
        assert_eq!(offline, expected, "{name}: the shipped verifier");
        let guard = admin_status(&app, &token).await == Status::Ok;
        assert_eq!(guard, expected, "{name}: the admin guard");
        let introspected = active(&app, &gateway, &token).await;
        assert_eq!(introspected, expected, "{name}: introspection");
    }
}

#[rocket::async_test]
async fn discovery_states_only_what_exists() {
    let issuer = "https://id.example.test/";
    let with_issuer = |f: Figment| f.merge(Serialized::global("issuer", issuer));
    let (app, _clock) = spawn_at_now(with_issuer).await;
    add_client(&app, "orders", &["orders:read"]).await;
    let app = TestApp {
        client: Client::tracked(
            stamp::build_with_clock(with_issuer(figment_in(app.dir.path())), Clock::manual(NOW))
                .await
                .unwrap(),
        )
        .await
        .unwrap(),
        dir: app.dir,
    };
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, doc) = app.get_json(path).await;
        assert_eq!(status, Status::Ok);
        assert_eq!(doc["issuer"], issuer, "exactly as configured");
        assert_eq!(
            doc["jwks_uri"],
            "https://id.example.test/.well-known/jwks.json"
        );
        assert_eq!(
            doc["response_types_supported"],
            json!(["code"]),
            "no implicit flow"
        );
        assert_eq!(
            doc["authorization_endpoint"],
            "https://id.example.test/authorize"
        );
        assert_eq!(
            doc["scopes_supported"],
            json!(["email", "openid", "orders:read", "profile"])
        );
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "password",
                "refresh_token",
                "client_credentials",
                "authorization_code"
            ])
        );
    }
    // Tokens carry the issuer exactly as configured, and the shipped verifier agrees.
    app.add_user("alice", PASSWORD, &[]).await;
    let token = app.login("alice", PASSWORD).await;
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let keys = VerifyingKeys::parse(&serde_json::to_vec(&jwks).unwrap()).unwrap();
    let verifier = Verifier::new(VerifierConfig::new(issuer, "stamp"), ());
    assert_eq!(
        verifier.verify_with(&keys, &token, NOW).unwrap().iss,
        issuer
    );
}

/// `Set-Cookie` headers of a response, parsed.
fn set_cookies(response: &LocalResponse<'_>) -> Vec<Cookie<'static>> {
    response
        .headers()
        .get("Set-Cookie")
        .map(|h| Cookie::parse(h.to_string()).unwrap())
        .collect()
}

/// Asserts that `cookies` expire each session cookie at its own path, and nothing else.
fn assert_every_session_cookie_expired(cookies: &[Cookie<'static>]) {
    for (name, path) in [
        ("stamp_access", "/"),
        ("stamp_refresh", "/oauth/token"),
        ("stamp_logout", "/logout"),
    ] {
        let cookie = cookies
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no removal of {name} in {cookies:?}"));
        assert_eq!(cookie.path(), Some(path), "{name}");
        assert_eq!(cookie.value(), "", "{name}");
        assert_eq!(
            cookie.max_age(),
            Some(rocket::time::Duration::ZERO),
            "{name}"
        );
    }
    assert!(
        cookies.iter().all(|c| !c.name().contains("device")),
        "the device cookie stays: {cookies:?}"
    );
    assert_eq!(cookies.len(), 3, "{cookies:?}");
}

/// A cookie-mode login; returns the cookies the login set. The client is untracked, so each
/// later request carries only the cookies a browser would send to its path.
async fn cookie_login(client: &Client) -> Vec<Cookie<'static>> {
    let response = client
        .post("/login")
        .header(ContentType::JSON)
        .body(format!(
            r#"{{"username":"alice","password":"{PASSWORD}","cookie":true}}"#
        ))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    set_cookies(&response)
}

fn cookie(cookies: &[Cookie<'static>], name: &str) -> Cookie<'static> {
    cookies.iter().find(|c| c.name() == name).unwrap().clone()
}

async fn untracked(app: &TestApp) -> Client {
    let rocket = stamp::build(figment_in(app.dir.path())).await.unwrap();
    Client::untracked(rocket).await.unwrap()
}

#[rocket::async_test]
async fn logout_expires_every_session_cookie_including_those_sent_elsewhere() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let browser = untracked(&app).await;
    let set = cookie_login(&browser).await;

    // A browser sends /logout the access cookie (Path=/) and the logout cookie, not the refresh
    // cookie (Path=/oauth/token); and its device cookie.
    let response = browser
        .post("/logout")
        .cookie(cookie(&set, "stamp_access"))
        .cookie(cookie(&set, "stamp_logout"))
        .cookie(Cookie::new("stamp_device", "d1"))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert_every_session_cookie_expired(&set_cookies(&response));
}

#[rocket::async_test]
async fn a_failed_cookie_refresh_expires_every_session_cookie() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let browser = untracked(&app).await;
    let set = cookie_login(&browser).await;
    let refresh = cookie(&set, "stamp_refresh");
    // Spent once by someone else: the browser's refresh is then reuse.
    let stolen = browser
        .post("/oauth/token")
        .header(ContentType::Form)
        .body(format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(refresh.value())
        ))
        .dispatch()
        .await;
    assert_eq!(stolen.status(), Status::Ok);

    let response = browser
        .post("/oauth/token")
        .header(ContentType::Form)
        .cookie(cookie(&set, "stamp_access"))
        .cookie(refresh)
        .cookie(Cookie::new("stamp_device", "d1"))
        .body("grant_type=refresh_token")
        .dispatch()
        .await;
    let cookies = set_cookies(&response);
    assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
    assert_every_session_cookie_expired(&cookies);
}

#[rocket::async_test]
async fn admin_answers_are_never_stored() {
    let app = TestApp::spawn().await;
    let root = app.add_user("root", PASSWORD, &["admin"]).await;
    let token = app.login("root", PASSWORD).await;
    let revoke = format!("/admin/users/{}/revoke-tokens", root.id);
    for (method, path, token) in [
        (Method::Get, "/admin/keys", token.as_str()),
        (Method::Get, "/admin/audit", token.as_str()),
        (Method::Get, "/admin/keys", "not-a-token"),
        (Method::Post, revoke.as_str(), token.as_str()),
    ] {
        let response = app.admin_call(method, path, token, None).await;
        assert_eq!(
            response.headers().get_one("Cache-Control"),
            Some("no-store"),
            "{method} {path} ({})",
            response.status()
        );
    }
}

#[rocket::async_test]
async fn an_overlong_login_password_is_refused_before_hashing() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let long = "x".repeat(1025);
    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={long}"
        ))
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    let response = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(format!(r#"{{"username":"alice","password":"{long}"}}"#))
        .dispatch()
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    // The longest allowed length is still checked against the hash (and is wrong here).
    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            "x".repeat(1024)
        ))
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
}

/// A database of its own on the test server (`STAMP_TEST_DATABASE_URL`), so that it can be
/// closed to connections without disturbing other tests; `None` when no server is configured.
async fn own_database() -> Option<(sqlx::PgPool, String, String)> {
    let url = std::env::var("STAMP_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())?;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let name = format!(
        "stamp_ready_{}",
        stamp::store::random_id().to_lowercase().replace('-', "_")
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url.as_str(), String::new()),
    };
    let (server, _) = base.rsplit_once('/').unwrap();
    Some((admin, name.clone(), format!("{server}/{name}{query}")))
}

#[rocket::async_test]
async fn readiness_does_not_tell_anonymous_callers_the_database_error() {
    let Some((admin, name, url)) = own_database().await else {
        eprintln!("STAMP_TEST_DATABASE_URL is not set: readiness test not run");
        return;
    };
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("database_url", &url))).await;
    assert_eq!(app.get_json("/health/ready").await.0, Status::Ok);

    // The database stops accepting connections and drops the issuer's.
    sqlx::query(&format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    let (status, body) = app.get_json("/health/ready").await;
    assert_eq!(status, Status::ServiceUnavailable);
    assert_eq!(
        body,
        json!({"error": "temporarily_unavailable",
               "error_description": "the database is unavailable"})
    );

    drop(app);
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
}
