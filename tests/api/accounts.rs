//! Issue 11, points 2 and 3: a user changes their own password (`POST /account/password`), an
//! administrator resets one (`POST /admin/users/{id}/password`, `stamp users passwd`). Either
//! ends every session of the user (old refresh tokens `invalid_grant`, old access tokens refused
//! by introspection and the admin API), and each writes exactly one audit event naming its actor.

use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::Value;
use stamp::auth::ClientSecret;
use stamp::store::{AuditEvent, ClientId, GrantType, NewClient, Scope};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, text, urlencode};
use crate::trust_throttle::spawn_manual;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// What a login hands out.
struct Tokens {
    access: String,
    refresh: String,
}

/// A password-grant login of `user`: its access and refresh tokens.
async fn login(app: &TestApp, user: &str, password: &str) -> Tokens {
    let response = login_response(app, user, password).await;
    assert_eq!(response.status(), Status::Ok, "login of {user} failed");
    let json: Value = response.into_json().await.unwrap();
    Tokens {
        access: json["access_token"].as_str().unwrap().to_string(),
        refresh: json["refresh_token"].as_str().unwrap().to_string(),
    }
}

async fn login_response<'a>(app: &'a TestApp, user: &str, password: &str) -> LocalResponse<'a> {
    app.token_form(&format!(
        "grant_type=password&username={}&password={}",
        urlencode(user),
        urlencode(password)
    ))
    .await
}

/// `POST /account/password` with `token` and a raw JSON body.
async fn change<'a>(app: &'a TestApp, token: &str, body: &str) -> LocalResponse<'a> {
    app.client
        .post("/account/password")
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .header(ContentType::JSON)
        .body(body)
        .dispatch()
        .await
}

/// The JSON body of a password change.
fn change_body(current: &str, new: &str) -> String {
    serde_json::json!({ "current_password": current, "new_password": new }).to_string()
}

/// `POST /admin/users/{id}/password` with `token`.
async fn reset<'a>(app: &'a TestApp, token: &str, id: &str, password: &str) -> LocalResponse<'a> {
    let body = serde_json::json!({ "password": password }).to_string();
    app.admin_call(
        Method::Post,
        &format!("/admin/users/{id}/password"),
        token,
        Some(&body),
    )
    .await
}

/// Presents a refresh token: the status and the `error` of the answer.
async fn refresh(app: &TestApp, token: &str) -> (Status, Value) {
    let response = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(token)
        ))
        .await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

/// A confidential service client `id` with `scopes`; returns its secret.
async fn add_client(app: &TestApp, id: &str, scopes: &[&str]) -> String {
    let secret = ClientSecret::generate();
    let client = NewClient {
        id: ClientId::parse(id).unwrap(),
        secret_hash: Some(secret.hash()),
        scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
        alg: None,
        grants: GrantType::defaults(false),
        redirect_uris: Vec::new(),
        first_party: true,
        post_logout_redirect_uris: Vec::new(),
    };
    app.app()
        .store
        .create_client(client, stamp::clock::now())
        .await
        .unwrap();
    secret.expose().to_string()
}

/// Whether the gateway client's introspection finds `token` active.
async fn active(app: &TestApp, secret: &str, token: &str) -> bool {
    app.gateway_sees_active(secret, token).await
}

/// The status of `GET /admin/keys` with `token`.
async fn admin_status(app: &TestApp, token: &str) -> Status {
    app.admin_status(token).await
}

/// The audit events with `action`, oldest first.
async fn audited(app: &TestApp, action: &str) -> Vec<AuditEvent> {
    let mut events = app.app().store.recent_audit(1000).await.unwrap();
    events.reverse();
    events.retain(|e| e.action == action);
    events
}

/// Asserts that no audit event mentions any of `secrets`.
async fn assert_audit_keeps_secrets(app: &TestApp, secrets: &[&str]) {
    for event in app.app().store.recent_audit(1000).await.unwrap() {
        let line = serde_json::to_string(&event).unwrap();
        for secret in secrets {
            assert!(
                !line.contains(secret),
                "audit event holds a password: {line}"
            );
        }
    }
}

/// Asserts that the sessions behind `old` are over: its refresh token is `invalid_grant`, its
/// access token is inactive for introspection and refused by the admin API.
async fn assert_sessions_ended(app: &TestApp, gateway: &str, old: &Tokens) {
    let (status, body) = refresh(app, &old.refresh).await;
    assert_eq!(status, Status::BadRequest, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(!active(app, gateway, &old.access).await);
    assert_eq!(admin_status(app, &old.access).await, Status::Unauthorized);
}

#[rocket::async_test]
async fn a_user_changes_their_password_and_every_session_ends() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &["admin"]).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let old = login(&app, "alice", PASSWORD).await;
    let other_device = login(&app, "alice", PASSWORD).await;
    assert_eq!(admin_status(&app, &old.access).await, Status::Ok);
    assert!(active(&app, &gateway, &old.access).await);

    let response = change(&app, &old.access, &change_body(PASSWORD, NEW_PASSWORD)).await;
    assert_eq!(response.status(), Status::NoContent);

    assert_sessions_ended(&app, &gateway, &old).await;
    assert_sessions_ended(&app, &gateway, &other_device).await;
    // The token that made the change is spent too: a second change with it is refused.
    let again = change(&app, &old.access, &change_body(NEW_PASSWORD, PASSWORD)).await;
    assert_oauth_error(again, Status::Unauthorized, "invalid_token").await;
    // The new password logs in; the old one does not.
    let denied = login_response(&app, "alice", PASSWORD).await;
    assert_oauth_error(denied, Status::BadRequest, "invalid_grant").await;
    let fresh = login(&app, "alice", NEW_PASSWORD).await;
    assert_eq!(admin_status(&app, &fresh.access).await, Status::Ok);
    assert!(active(&app, &gateway, &fresh.access).await);

    let events = audited(&app, "users.password_change").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, format!("user:{}", alice.id));
    assert_eq!(events[0].target.as_deref(), Some(alice.id.as_str()));
    assert!(audited(&app, "users.password_reset").await.is_empty());
    assert_audit_keeps_secrets(&app, &[PASSWORD, NEW_PASSWORD]).await;
}

#[rocket::async_test]
async fn a_wrong_current_password_is_invalid_grant_and_is_throttled_like_a_login() {
    // An untracked client: no device cookie from the first login exempts the later one.
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let tokens = login(&app, "alice", PASSWORD).await;

    let wrong = change(
        &app,
        &tokens.access,
        &change_body("not my password", NEW_PASSWORD),
    )
    .await;
    assert_oauth_error(wrong, Status::BadRequest, "invalid_grant").await;
    // Nothing changed: the session lives on, the password is the old one, nothing is audited.
    let (status, _) = refresh(&app, &tokens.refresh).await;
    assert_eq!(status, Status::Ok);
    assert!(audited(&app, "users.password_change").await.is_empty());

    // Repeated guesses run into the login throttle (5 free failures by default)...
    let mut throttled = None;
    for _ in 0..10 {
        let guess = change(
            &app,
            &tokens.access,
            &change_body("still not it", NEW_PASSWORD),
        )
        .await;
        if guess.status() == Status::TooManyRequests {
            throttled = Some(guess);
            break;
        }
        assert_oauth_error(guess, Status::BadRequest, "invalid_grant").await;
    }
    let throttled = throttled.expect("repeated wrong passwords are throttled");
    assert!(throttled.headers().get_one("Retry-After").is_some());
    assert_oauth_error(throttled, Status::TooManyRequests, "slow_down").await;
    // ...which is the same throttle as the password grant's: logins of the account without a
    // device cookie of it wait too.
    let login = login_response(&app, "alice", PASSWORD).await;
    assert_eq!(login.status(), Status::TooManyRequests);
    assert!(audited(&app, "users.password_change").await.is_empty());
}

#[rocket::async_test]
async fn a_weak_new_password_is_refused_naming_the_rule() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let tokens = login(&app, "alice", PASSWORD).await;

    let short = change(&app, &tokens.access, &change_body(PASSWORD, "short")).await;
    let body = assert_oauth_error(short, Status::BadRequest, "invalid_request").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("at least 8"), "{description}");
    let long = "x".repeat(2000);
    let long = change(&app, &tokens.access, &change_body(PASSWORD, &long)).await;
    let body = assert_oauth_error(long, Status::BadRequest, "invalid_request").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("at most 1024"), "{description}");

    // Nothing changed.
    let (status, _) = refresh(&app, &tokens.refresh).await;
    assert_eq!(status, Status::Ok);
    assert!(audited(&app, "users.password_change").await.is_empty());
}

#[rocket::async_test]
async fn a_password_change_needs_a_user_s_live_token_and_a_json_body() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let tokens = login(&app, "alice", PASSWORD).await;
    let body = change_body(PASSWORD, NEW_PASSWORD);

    // A service client's own token has no account.
    let secret = add_client(&app, "svc", &[]).await;
    let response = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}",
            urlencode(&secret)
        ))
        .await;
    assert_eq!(response.status(), Status::Ok);
    let json: Value = response.into_json().await.unwrap();
    let client_token = json["access_token"].as_str().unwrap();
    let refused = change(&app, client_token, &body).await;
    assert_oauth_error(refused, Status::Forbidden, "insufficient_scope").await;

    // No token, or a forged one.
    let anonymous = app
        .client
        .post("/account/password")
        .header(ContentType::JSON)
        .body(body.clone())
        .dispatch()
        .await;
    assert_eq!(anonymous.status(), Status::Unauthorized);
    let forged = change(&app, "not.a.token", &body).await;
    assert_oauth_error(forged, Status::Unauthorized, "invalid_token").await;

    // Malformed JSON, wrong fields, wrong content type.
    let malformed = change(&app, &tokens.access, "{").await;
    assert_oauth_error(malformed, Status::BadRequest, "invalid_request").await;
    let missing = change(&app, &tokens.access, r#"{"new_password":"long enough!"}"#).await;
    assert_oauth_error(missing, Status::UnprocessableEntity, "invalid_request").await;
    let wrong_type = change(
        &app,
        &tokens.access,
        r#"{"current_password":1,"new_password":"long enough!"}"#,
    )
    .await;
    assert_oauth_error(wrong_type, Status::UnprocessableEntity, "invalid_request").await;
    let form = app
        .client
        .post("/account/password")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", tokens.access),
        ))
        .header(ContentType::Form)
        .body("current_password=x&new_password=y")
        .dispatch()
        .await;
    assert_oauth_error(form, Status::UnsupportedMediaType, "invalid_request").await;

    // None of it changed anything.
    let (status, _) = refresh(&app, &tokens.refresh).await;
    assert_eq!(status, Status::Ok);
    assert!(audited(&app, "users.password_change").await.is_empty());
}

#[rocket::async_test]
async fn an_admin_resets_a_password_and_every_session_of_the_user_ends() {
    let app = TestApp::spawn().await;
    let root = app.add_user("root", PASSWORD, &["admin"]).await;
    let root_token = app.login("root", PASSWORD).await;
    let alice = app.add_user("alice", PASSWORD, &["admin"]).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let old = login(&app, "alice", PASSWORD).await;
    assert_eq!(admin_status(&app, &old.access).await, Status::Ok);

    let response = reset(&app, &root_token, &alice.id, NEW_PASSWORD).await;
    assert_eq!(response.status(), Status::NoContent);
    assert_eq!(
        response.headers().get_one("Cache-Control"),
        Some("no-store")
    );

    assert_sessions_ended(&app, &gateway, &old).await;
    let denied = login_response(&app, "alice", PASSWORD).await;
    assert_oauth_error(denied, Status::BadRequest, "invalid_grant").await;
    let fresh = login(&app, "alice", NEW_PASSWORD).await;
    assert_eq!(admin_status(&app, &fresh.access).await, Status::Ok);
    // The admin's own session is untouched.
    assert_eq!(admin_status(&app, &root_token).await, Status::Ok);

    let events = audited(&app, "users.password_reset").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, format!("user:{}", root.id));
    assert_eq!(events[0].target.as_deref(), Some(alice.id.as_str()));
    assert!(audited(&app, "users.password_change").await.is_empty());
    assert_audit_keeps_secrets(&app, &[PASSWORD, NEW_PASSWORD]).await;
}

#[rocket::async_test]
async fn a_password_reset_needs_an_admin_a_known_user_and_a_policy_password() {
    let app = TestApp::spawn().await;
    let root_token = app.admin_token().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    let alice_tokens = login(&app, "alice", PASSWORD).await;

    // A user who is not an admin, even for their own account.
    let own = reset(&app, &alice_tokens.access, &alice.id, NEW_PASSWORD).await;
    assert_oauth_error(own, Status::Forbidden, "insufficient_scope").await;
    let weak = reset(&app, &root_token, &alice.id, "short").await;
    let body = assert_oauth_error(weak, Status::BadRequest, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("at least 8")
    );
    let unknown = reset(&app, &root_token, "no-such-id", NEW_PASSWORD).await;
    assert_oauth_error(unknown, Status::NotFound, "not_found").await;
    let missing = app
        .admin_call(
            Method::Post,
            &format!("/admin/users/{}/password", alice.id),
            &root_token,
            Some(r#"{"passwd":"long enough!"}"#),
        )
        .await;
    assert_oauth_error(missing, Status::UnprocessableEntity, "invalid_request").await;
    let form = app
        .client
        .post(format!("/admin/users/{}/password", alice.id))
        .header(Header::new("Authorization", format!("Bearer {root_token}")))
        .header(ContentType::Form)
        .body("password=long+enough")
        .dispatch()
        .await;
    assert_oauth_error(form, Status::UnsupportedMediaType, "invalid_request").await;

    // None of it changed anything.
    let (status, _) = refresh(&app, &alice_tokens.refresh).await;
    assert_eq!(status, Status::Ok);
    assert!(audited(&app, "users.password_reset").await.is_empty());
}

#[rocket::async_test]
async fn the_cli_resets_a_password_ending_every_session_with_one_audit_event() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &["admin"]).await;
    let gateway = add_client(&app, "gateway", &[]).await;
    let old = login(&app, "alice", PASSWORD).await;

    let out = run_stamp(
        app.dir.path(),
        &["users", "passwd", "Alice", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("alice"), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains(NEW_PASSWORD));

    assert_sessions_ended(&app, &gateway, &old).await;
    let denied = login_response(&app, "alice", PASSWORD).await;
    assert_oauth_error(denied, Status::BadRequest, "invalid_grant").await;
    login(&app, "alice", NEW_PASSWORD).await;

    let events = audited(&app, "users.password_reset").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, "cli");
    assert_audit_keeps_secrets(&app, &[PASSWORD, NEW_PASSWORD]).await;

    // A weak password and an unknown user are refused, and change nothing.
    let weak = run_stamp(
        app.dir.path(),
        &["users", "passwd", "alice", "--password-stdin"],
        "short\n",
        &[],
    );
    assert!(!weak.status.success());
    assert!(
        text(&weak.stderr).contains("at least 8"),
        "{}",
        text(&weak.stderr)
    );
    let nobody = run_stamp(
        app.dir.path(),
        &["users", "passwd", "nobody", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
        &[],
    );
    assert!(!nobody.status.success());
    assert!(
        text(&nobody.stderr).contains("no user nobody"),
        "{}",
        text(&nobody.stderr)
    );
    // Without a terminal and without --password-stdin there is nobody to prompt.
    let no_tty = run_stamp(app.dir.path(), &["users", "passwd", "alice"], "", &[]);
    assert!(!no_tty.status.success());
    assert!(text(&no_tty.stderr).contains("--password-stdin"));
    assert_eq!(audited(&app, "users.password_reset").await.len(), 1);
    login(&app, "alice", NEW_PASSWORD).await;
}
