//! Issue 10, point 1 (and the wrong-client refresh of point 9): clients are registered
//! identities on every grant. Unknown, over-long, disabled and unauthenticated confidential
//! clients are refused; a confidential client authenticates on every grant; a refresh token
//! serves only the client it was issued to; each client uses only the grants it is allowed.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::Value;
use stamp::admin::{Actor, NewServiceClient};
use stamp::store::{ClientId, GrantType, RedirectUri};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, text, urlencode};

/// Registers a client through the admin service (as `stamp clients add` does); returns its
/// secret, if confidential.
async fn add_client(app: &TestApp, id: &str, public: bool, grants: &[GrantType]) -> Option<String> {
    let new = NewServiceClient {
        id: ClientId::parse(id).unwrap(),
        scopes: Vec::new(),
        alg: None,
        public,
        grants: grants.to_vec(),
        redirect_uris: Vec::new(),
        first_party: true,
        post_logout_redirect_uris: Vec::new(),
    };
    let app_state = app.app();
    let (_, secret) = app_state
        .admin
        .add_client(&Actor::Cli, &app_state.keys, new)
        .await
        .unwrap();
    secret.map(|s| s.expose().to_string())
}

fn basic(id: &str, secret: &str) -> Header<'static> {
    let raw = format!("{}:{}", urlencode(id), urlencode(secret));
    Header::new("Authorization", format!("Basic {}", STANDARD.encode(raw)))
}

fn password_form(extra: &str) -> String {
    format!(
        "grant_type=password&username=alice&password={}{extra}",
        urlencode(PASSWORD)
    )
}

async fn token_with_basic<'a>(
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

/// The JSON body of a successful token response.
async fn granted(response: LocalResponse<'_>) -> Value {
    assert_eq!(response.status(), Status::Ok);
    response.into_json().await.unwrap()
}

/// The claims of an access token (already verified by the issuer that just signed it).
fn claims(body: &Value) -> Value {
    let token = body["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Asserts `401 invalid_client` with a Basic challenge (RFC 6749 §5.2).
async fn assert_invalid_client(response: LocalResponse<'_>) -> Value {
    let challenge = response
        .headers()
        .get_one("WWW-Authenticate")
        .map(str::to_string);
    let body = assert_oauth_error(response, Status::Unauthorized, "invalid_client").await;
    assert!(
        challenge.is_some_and(|c| c.starts_with("Basic")),
        "a Basic challenge is required"
    );
    body
}

#[rocket::async_test]
async fn a_made_up_client_id_is_refused_on_the_password_grant() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let response = app.token_form(&password_form("&client_id=made-up")).await;
    assert_invalid_client(response).await;
}

#[rocket::async_test]
async fn an_over_long_client_id_is_refused() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let long = "a".repeat(5000);
    let response = app
        .token_form(&password_form(&format!("&client_id={long}")))
        .await;
    let body = assert_invalid_client(response).await;
    assert!(
        !body.to_string().contains(&long),
        "the name is not echoed back"
    );
}

#[rocket::async_test]
async fn a_confidential_client_id_without_its_secret_is_refused_on_the_password_grant() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    add_client(&app, "billing", false, &[]).await;
    let response = app.token_form(&password_form("&client_id=billing")).await;
    assert_invalid_client(response).await;
}

#[rocket::async_test]
async fn a_wrong_basic_secret_is_refused_on_the_password_and_refresh_grants() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let grants = [GrantType::Password, GrantType::RefreshToken];
    let secret = add_client(&app, "portal", false, &grants).await.unwrap();

    let wrong = token_with_basic(&app, "portal", "not-the-secret", &password_form("")).await;
    assert_invalid_client(wrong).await;

    let body = granted(token_with_basic(&app, "portal", &secret, &password_form("")).await).await;
    assert_eq!(claims(&body)["client_id"], "portal");
    let refresh = format!(
        "grant_type=refresh_token&refresh_token={}",
        urlencode(body["refresh_token"].as_str().unwrap())
    );
    let wrong = token_with_basic(&app, "portal", "not-the-secret", &refresh).await;
    assert_invalid_client(wrong).await;
    let unauthenticated = app.token_form(&format!("{refresh}&client_id=portal")).await;
    assert_invalid_client(unauthenticated).await;

    let renewed = granted(token_with_basic(&app, "portal", &secret, &refresh).await).await;
    assert_eq!(claims(&renewed)["client_id"], "portal");
}

#[rocket::async_test]
async fn basic_and_a_posted_secret_together_are_an_invalid_request() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let grants = [GrantType::Password];
    let secret = add_client(&app, "portal", false, &grants).await.unwrap();
    let body = password_form(&format!("&client_secret={}", urlencode(&secret)));
    let response = token_with_basic(&app, "portal", &secret, &body).await;
    assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
}

#[rocket::async_test]
async fn a_refresh_by_another_client_is_invalid_grant_saying_so() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    add_client(&app, "spa", true, &[]).await;
    // Issued to the default client (none named).
    let body = granted(app.token_form(&password_form("")).await).await;
    let refresh = format!(
        "grant_type=refresh_token&refresh_token={}",
        urlencode(body["refresh_token"].as_str().unwrap())
    );

    let other = app.token_form(&format!("{refresh}&client_id=spa")).await;
    let error = assert_oauth_error(other, Status::BadRequest, "invalid_grant").await;
    let description = error["error_description"].as_str().unwrap();
    assert!(
        description.contains("another client"),
        "says why: {description}"
    );
    assert!(!description.contains("password"), "{description}");

    let own = app.token_form(&refresh).await;
    assert_eq!(own.status(), Status::Ok, "the token was not spent");
}

#[rocket::async_test]
async fn a_client_not_allowed_a_grant_is_unauthorized_client() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    // A service client (client_credentials only) logging a user in with its own secret.
    let secret = add_client(&app, "billing", false, &[]).await.unwrap();
    let response = token_with_basic(&app, "billing", &secret, &password_form("")).await;
    assert_oauth_error(response, Status::BadRequest, "unauthorized_client").await;

    // A public client allowed only the password grant cannot refresh.
    add_client(&app, "kiosk", true, &[GrantType::Password]).await;
    let body = granted(app.token_form(&password_form("&client_id=kiosk")).await).await;
    let refresh = format!(
        "grant_type=refresh_token&client_id=kiosk&refresh_token={}",
        urlencode(body["refresh_token"].as_str().unwrap())
    );
    let response = app.token_form(&refresh).await;
    assert_oauth_error(response, Status::BadRequest, "unauthorized_client").await;

    // A confidential client allowed only the password grant cannot use client_credentials.
    let secret = add_client(&app, "portal", false, &[GrantType::Password])
        .await
        .unwrap();
    let response = token_with_basic(&app, "portal", &secret, "grant_type=client_credentials").await;
    assert_oauth_error(response, Status::BadRequest, "unauthorized_client").await;
}

#[rocket::async_test]
async fn a_public_client_presenting_a_secret_is_refused() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    add_client(&app, "spa", true, &[]).await;
    let response = token_with_basic(&app, "spa", "anything", &password_form("")).await;
    assert_invalid_client(response).await;
}

#[rocket::async_test]
async fn a_disabled_client_is_refused() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    add_client(&app, "spa", true, &[]).await;
    app.app()
        .admin
        .disable_client(&Actor::Cli, "spa")
        .await
        .unwrap();
    let response = app.token_form(&password_form("&client_id=spa")).await;
    assert_invalid_client(response).await;
}

#[rocket::async_test]
async fn a_request_naming_no_client_is_the_registered_default_client() {
    let app =
        TestApp::spawn_with(|f| f.merge(Serialized::global("default_client_id", "web"))).await;
    app.add_user("alice", PASSWORD, &[]).await;

    let stored = app.app().store.client_by_id("web").await.unwrap();
    let stored = stored.expect("the default client is registered at start");
    assert!(stored.public && stored.secret_hash.is_none());
    assert_eq!(
        stored.grants,
        [GrantType::Password, GrantType::RefreshToken]
    );

    let body = granted(app.token_form(&password_form("")).await).await;
    assert_eq!(claims(&body)["client_id"], "web");
    let login = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(serde_json::json!({"username": "alice", "password": PASSWORD}).to_string())
        .dispatch()
        .await;
    assert_eq!(claims(&granted(login).await)["client_id"], "web");

    // A restart (or a second replica) finds it and keeps it.
    let again = TestApp::start(app.dir.path(), |f| {
        f.merge(Serialized::global("default_client_id", "web"))
    })
    .await;
    drop(again);
    assert_eq!(app.app().store.list_clients().await.unwrap().len(), 1);
}

#[rocket::async_test]
async fn the_json_login_follows_the_same_client_rules() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    add_client(&app, "billing", false, &[]).await;
    let login = |client_id: String| {
        app.client
            .post("/login")
            .header(ContentType::JSON)
            .body(
                serde_json::json!({"username": "alice", "password": PASSWORD, "client_id": client_id})
                    .to_string(),
            )
            .dispatch()
    };
    assert_invalid_client(login("made-up".into()).await).await;
    assert_invalid_client(login("b".repeat(5000)).await).await;
    assert_invalid_client(login("billing".into()).await).await;
    add_client(&app, "spa", true, &[]).await;
    assert_eq!(
        claims(&granted(login("spa".into()).await).await)["client_id"],
        "spa"
    );
}

#[rocket::async_test]
async fn cli_clients_add_public_with_a_grant_and_redirect_uri_logs_users_in() {
    let dir = tempfile::tempdir().unwrap();
    let add = run_stamp(
        dir.path(),
        &[
            "clients",
            "add",
            "mobile",
            "--public",
            "--grant",
            "password",
            "--redirect-uri",
            "com.example.app:/oauth",
        ],
        "",
        &[],
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    assert!(text(&add.stdout).contains("public"), "no secret is printed");

    let fragment = [
        "clients",
        "add",
        "x",
        "--redirect-uri",
        "https://a.example/#f",
    ];
    let refused = run_stamp(dir.path(), &fragment, "", &[]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("fragment"));
    let refused = run_stamp(
        dir.path(),
        &["clients", "add", "x", "--grant", "implicit"],
        "",
        &[],
    );
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("implicit"));

    let list = text(&run_stamp(dir.path(), &["clients", "list"], "", &[]).stdout);
    let row = list.lines().find(|l| l.starts_with("mobile")).unwrap();
    assert!(row.contains("public") && row.contains("password"), "{row}");
    assert!(row.contains("com.example.app:/oauth") && !row.contains("refresh_token"));

    let client = TestApp::start(dir.path(), |f| f).await;
    let app = TestApp { client, dir };
    app.add_user("alice", PASSWORD, &[]).await;
    let body = granted(app.token_form(&password_form("&client_id=mobile")).await).await;
    assert_eq!(claims(&body)["client_id"], "mobile");
    let stored = app
        .app()
        .store
        .client_by_id("mobile")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.redirect_uris, ["com.example.app:/oauth"]);
    assert!(RedirectUri::parse(&stored.redirect_uris[0]).is_ok());
}
