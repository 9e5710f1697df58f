//! Issue 11, point 1: sign-up (`POST /signup`, off by default) and the password policy
//! (length bounds and `zxcvbn` strength) on every new password: sign-up, `users add`,
//! password change and reset.

use std::net::SocketAddr;

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, text, urlencode};
use crate::trust_throttle::spawn_manual;

/// Sign-up on.
fn open(figment: Figment) -> Figment {
    figment.merge(Serialized::global("signup", true))
}

/// `POST /signup` with a raw JSON body, from `address`.
async fn signup_from<'a>(app: &'a TestApp, address: &str, body: &str) -> LocalResponse<'a> {
    app.client
        .post("/signup")
        .remote(SocketAddr::new(address.parse().unwrap(), 40000))
        .header(ContentType::JSON)
        .body(body)
        .dispatch()
        .await
}

async fn signup<'a>(app: &'a TestApp, username: &str, password: &str) -> LocalResponse<'a> {
    let body = json!({ "username": username, "password": password }).to_string();
    signup_from(app, "192.0.2.1", &body).await
}

#[rocket::async_test]
async fn sign_up_is_off_by_default_and_answers_not_found() {
    let app = TestApp::spawn().await;
    let response = signup(&app, "alice", PASSWORD).await;
    let body = assert_oauth_error(response, Status::NotFound, "not_found").await;
    assert!(body.is_object());
    let wrong_type = app
        .client
        .post("/signup")
        .header(ContentType::Form)
        .body("username=alice")
        .dispatch()
        .await;
    assert_eq!(wrong_type.status(), Status::NotFound);
    assert!(
        app.app()
            .store
            .user_by_username("alice")
            .await
            .unwrap()
            .is_none()
    );
}

#[rocket::async_test]
async fn sign_up_creates_the_user_and_logs_them_in() {
    let app = TestApp::spawn_with(open).await;
    let response = signup(&app, "Alice", PASSWORD).await;
    assert_eq!(response.status(), Status::Created);
    let tokens: Value = response.into_json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    let user = app
        .app()
        .store
        .user_by_username("alice")
        .await
        .unwrap()
        .expect("alice exists");
    assert!(user.roles.is_empty());
    let claims = app.verify_with_jwks(&access).await.unwrap();
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["client_id"], "stamp", "the default client");

    // The access token is the user's: it changes their password.
    let change = app
        .client
        .post("/account/password")
        .header(Header::new("Authorization", format!("Bearer {access}")))
        .header(ContentType::JSON)
        .body(
            json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" })
                .to_string(),
        )
        .dispatch()
        .await;
    assert_eq!(change.status(), Status::NoContent);
    // That ended the sign-up's session; a fresh login refreshes.
    let refreshed = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&refresh)
        ))
        .await;
    assert_eq!(
        refreshed.status(),
        Status::BadRequest,
        "the change ended it"
    );

    // The audit names the new user as the actor, once, without the password.
    let events = app.app().store.recent_audit(100).await.unwrap();
    let signups: Vec<_> = events
        .iter()
        .filter(|e| e.action == "users.signup")
        .collect();
    assert_eq!(signups.len(), 1);
    assert_eq!(signups[0].actor, format!("user:{}", user.id));
    for event in &events {
        assert!(!serde_json::to_string(event).unwrap().contains(PASSWORD));
    }
}

#[rocket::async_test]
async fn the_refresh_token_of_a_sign_up_refreshes() {
    let app = TestApp::spawn_with(open).await;
    let response = signup(&app, "bob", PASSWORD).await;
    assert_eq!(response.status(), Status::Created);
    let tokens: Value = response.into_json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refreshed = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(refresh)
        ))
        .await;
    assert_eq!(refreshed.status(), Status::Ok);
    let body: Value = refreshed.into_json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[rocket::async_test]
async fn a_taken_username_is_a_conflict() {
    let app = TestApp::spawn_with(open).await;
    app.add_user("carol", PASSWORD, &[]).await;
    let response = signup(&app, "Carol", "another strong passphrase").await;
    let body = assert_oauth_error(response, Status::Conflict, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("username taken")
    );
    // The existing account is untouched.
    app.login("carol", PASSWORD).await;
}

#[rocket::async_test]
async fn weak_passwords_are_refused_naming_the_rule() {
    let app = TestApp::spawn_with(open).await;
    let cases = [
        ("dave", "short", "too short"),
        ("dave", &"x".repeat(1025), "too long"),
        ("dave", "password1234", "too easy to guess"),
        ("dave", "qwertyuiop", "too easy to guess"),
        ("alice", "alice123", "too easy to guess"),
    ];
    for (username, password, rule) in cases {
        let response = signup(&app, username, password).await;
        let body = assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(rule), "{password}: {description}");
    }
    assert!(app.app().store.list_users().await.unwrap().is_empty());
}

#[rocket::async_test]
async fn the_minimum_length_and_score_are_settings() {
    let app = TestApp::spawn_with(|f| {
        open(f)
            .merge(Serialized::global("password_min_length", 12))
            .merge(Serialized::global("password_min_score", 0))
    })
    .await;
    let short = signup(&app, "erin", "eleven char").await;
    let body = assert_oauth_error(short, Status::BadRequest, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("at least 12")
    );
    let weak_but_allowed = signup(&app, "erin", "password1234").await;
    assert_eq!(weak_but_allowed.status(), Status::Created);
}

#[rocket::async_test]
async fn malformed_requests_are_refused() {
    let app = TestApp::spawn_with(open).await;
    let malformed = signup_from(&app, "192.0.2.1", "{not json").await;
    assert_eq!(malformed.status(), Status::BadRequest);
    let wrong_fields = signup_from(&app, "192.0.2.1", r#"{"username":"frank"}"#).await;
    assert_eq!(wrong_fields.status(), Status::UnprocessableEntity);
    let unknown_field = signup_from(
        &app,
        "192.0.2.1",
        r#"{"username":"frank","password":"x","roles":["admin"]}"#,
    )
    .await;
    assert_eq!(unknown_field.status(), Status::UnprocessableEntity);
    let wrong_type = app
        .client
        .post("/signup")
        .header(ContentType::Form)
        .body("username=frank&password=x")
        .dispatch()
        .await;
    assert_eq!(wrong_type.status(), Status::UnsupportedMediaType);
    let bad_name = signup(&app, "bad name!", PASSWORD).await;
    assert_oauth_error(bad_name, Status::BadRequest, "invalid_request").await;
}

#[rocket::async_test]
async fn cookie_mode_sets_the_session_cookies() {
    let app = TestApp::spawn_with(open).await;
    let body = json!({ "username": "grace", "password": PASSWORD, "cookie": true }).to_string();
    let response = signup_from(&app, "192.0.2.1", &body).await;
    assert_eq!(response.status(), Status::Created);
    let names: Vec<String> = response
        .headers()
        .get("Set-Cookie")
        .map(|c| c.split('=').next().unwrap().to_string())
        .collect();
    for name in ["stamp_access", "stamp_refresh", "stamp_logout"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let json: Value = response.into_json().await.unwrap();
    assert!(json.get("access_token").is_none(), "{json}");
}

#[rocket::async_test]
async fn sign_ups_are_throttled_per_address() {
    // login_throttle_failures = 2: an address gets 4 × 2 = 8 sign-ups, then 429.
    let app =
        spawn_manual(|f| open(f).merge(Serialized::global("login_throttle_failures", 2))).await;
    for i in 0..8 {
        let body = json!({ "username": format!("user{i}"), "password": PASSWORD }).to_string();
        let response = signup_from(&app, "198.51.100.7", &body).await;
        assert_eq!(response.status(), Status::Created, "sign-up {i}");
    }
    let body = json!({ "username": "user8", "password": PASSWORD }).to_string();
    let throttled = signup_from(&app, "198.51.100.7", &body).await;
    assert_eq!(throttled.status(), Status::TooManyRequests);
    assert!(throttled.headers().get_one("Retry-After").is_some());
    // Another address is not held back.
    let elsewhere = signup_from(&app, "203.0.113.9", &body).await;
    assert_eq!(elsewhere.status(), Status::Created);
}

#[test]
fn users_add_refuses_a_common_password() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let weak = run_stamp(
        dir.path(),
        &["users", "add", "henry", "--password-stdin"],
        "password1234\n",
        &[],
    );
    assert!(!weak.status.success());
    assert!(
        text(&weak.stderr).contains("too easy to guess"),
        "{}",
        text(&weak.stderr)
    );
    let derived = run_stamp(
        dir.path(),
        &["users", "add", "henry", "--password-stdin"],
        "henry2024\n",
        &[],
    );
    assert!(!derived.status.success());
    let strong = run_stamp(
        dir.path(),
        &["users", "add", "henry", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert!(strong.status.success(), "{}", text(&strong.stderr));
}
