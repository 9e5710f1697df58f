//! Password login through `/oauth/token` and `/login`: the token's shape, every failure, and the
//! error contract for malformed input.

use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Status};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error};

/// Verifies `token` the way a resource server would: with the JWK from the JWKS named by `kid`.
async fn verify_with_jwks(app: &TestApp, token: &str) -> (jsonwebtoken::Header, Value) {
    app.verified_with_jwks(token).await.expect("token verifies")
}

fn active_kid(app: &TestApp, alg: stamp::keys::Alg) -> String {
    app.app()
        .keys
        .current()
        .active(alg)
        .unwrap()
        .meta
        .kid
        .clone()
}

#[rocket::async_test]
async fn password_grant_issues_an_rfc9068_access_token() {
    let app = TestApp::spawn().await;
    let user = app.add_user("alice", PASSWORD, &["admin"]).await;

    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            crate::helpers::urlencode(PASSWORD)
        ))
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.headers().get_one("Cache-Control"),
        Some("no-store")
    );
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();

    let (header, claims) = verify_with_jwks(&app, token).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(
        header.kid.as_deref(),
        Some(active_kid(&app, stamp::keys::Alg::Es256).as_str())
    );
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["iss"], "http://127.0.0.1:8000");
    assert_eq!(claims["aud"], "stamp");
    assert_eq!(claims["client_id"], "stamp");
    assert_eq!(claims["roles"], json!(["admin"]));
    let (iat, exp, nbf) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
    assert_eq!(nbf, iat);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(base64_len(jti), 16, "128-bit jti");
    let text = claims.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "no secret in the payload"
    );
}

fn base64_len(s: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
        .len()
}

#[rocket::async_test]
async fn each_login_gets_a_fresh_jti() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let a = app.login("alice", PASSWORD).await;
    let b = app.login("alice", PASSWORD).await;
    let (_, ca) = verify_with_jwks(&app, &a).await;
    let (_, cb) = verify_with_jwks(&app, &b).await;
    assert_ne!(ca["jti"], cb["jti"]);
}

#[rocket::async_test]
async fn rs256_issuer_signs_with_its_rsa_key() {
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("signing_alg", "RS256"))).await;
    app.add_user("bob", PASSWORD, &[]).await;
    let token = app.login("bob", PASSWORD).await;
    let (header, claims) = verify_with_jwks(&app, &token).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(
        header.kid.as_deref(),
        Some(active_kid(&app, stamp::keys::Alg::Rs256).as_str())
    );
    assert!(claims.get("roles").is_none(), "no roles, no claim");
}

#[rocket::async_test]
async fn json_login_answers_like_the_token_endpoint() {
    let app = TestApp::spawn().await;
    let user = app.add_user("carol", PASSWORD, &[]).await;
    let response = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({ "username": "Carol", "password": PASSWORD }).to_string())
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    let (_, claims) = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        claims["sub"],
        user.id.as_str(),
        "usernames are case-insensitive"
    );
}

#[rocket::async_test]
async fn wrong_password_unknown_user_and_disabled_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.add_user("dave", PASSWORD, &[]).await;
    app.add_user("erin", PASSWORD, &[]).await;
    app.app()
        .store
        .set_disabled("erin", true, stamp::clock::now())
        .await
        .unwrap();

    let mut bodies = Vec::new();
    for (user, password) in [
        ("dave", "wrong password!"),
        ("nobody", PASSWORD),
        ("erin", PASSWORD),
    ] {
        let response = app
            .token_form(&format!(
                "grant_type=password&username={user}&password={}",
                crate::helpers::urlencode(password)
            ))
            .await;
        bodies.push(assert_oauth_error(response, Status::BadRequest, "invalid_grant").await);
    }
    assert_eq!(bodies[0], bodies[1], "unknown user is indistinguishable");
    assert_eq!(bodies[0], bodies[2], "disabled user is indistinguishable");
}

#[rocket::async_test]
async fn scope_is_limited_to_allowed_scopes_and_roles() {
    let app = TestApp::spawn().await;
    app.add_user("frank", PASSWORD, &["admin"]).await;
    app.add_user("grace", PASSWORD, &[]).await;
    let pw = crate::helpers::urlencode(PASSWORD);

    let ok = app
        .token_form(&format!(
            "grant_type=password&username=frank&password={pw}&scope=openid+admin"
        ))
        .await;
    assert_eq!(ok.status(), Status::Ok);
    let body: Value = ok.into_json().await.unwrap();
    assert_eq!(body["scope"], "openid admin");
    let (_, claims) = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["scope"], "openid admin");

    let refused = app
        .token_form(&format!(
            "grant_type=password&username=grace&password={pw}&scope=admin"
        ))
        .await;
    assert_oauth_error(refused, Status::BadRequest, "invalid_scope").await;
}

#[rocket::async_test]
async fn token_endpoint_rejects_malformed_requests_with_oauth_errors() {
    let app = TestApp::spawn().await;
    let cases: &[(&str, Status, &str)] = &[
        ("", Status::BadRequest, "invalid_request"),
        (
            "username=a&password=b",
            Status::BadRequest,
            "invalid_request",
        ),
        (
            "grant_type=password&password=b",
            Status::BadRequest,
            "invalid_request",
        ),
        (
            "grant_type=password&username=a",
            Status::BadRequest,
            "invalid_request",
        ),
        (
            "grant_type=implicit&code=x",
            Status::BadRequest,
            "unsupported_grant_type",
        ),
        // The authorization-code grant names its client.
        (
            "grant_type=authorization_code&code=x",
            Status::BadRequest,
            "invalid_request",
        ),
        // Invalid percent-escapes are decoded leniently: an unknown user, not a server error.
        (
            "grant_type=password&username=%zz&password=%FF",
            Status::BadRequest,
            "invalid_grant",
        ),
        (
            "grant_type=password&username=a&password=b&grant_type=x",
            Status::BadRequest,
            "invalid_request",
        ),
    ];
    for (body, status, error) in cases {
        let response = app.token_form(body).await;
        let got = response.status();
        assert_eq!(got, *status, "body {body:?}");
        assert_oauth_error(response, *status, error).await;
    }
}

#[rocket::async_test]
async fn wrong_content_types_get_415() {
    let app = TestApp::spawn().await;
    let json_to_token = app
        .client
        .post("/oauth/token")
        .header(ContentType::JSON)
        .body(r#"{"grant_type":"password"}"#)
        .dispatch()
        .await;
    assert_oauth_error(
        json_to_token,
        Status::UnsupportedMediaType,
        "invalid_request",
    )
    .await;

    let form_to_login = app
        .client
        .post("/login")
        .header(ContentType::Form)
        .body("username=a&password=b")
        .dispatch()
        .await;
    assert_oauth_error(
        form_to_login,
        Status::UnsupportedMediaType,
        "invalid_request",
    )
    .await;
}

#[rocket::async_test]
async fn oversized_bodies_get_413() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(64 * 1024);
    let form = app
        .token_form(&format!("grant_type=password&username=a&password={big}"))
        .await;
    assert_oauth_error(form, Status::PayloadTooLarge, "invalid_request").await;

    let json = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({ "username": "a", "password": big }).to_string())
        .dispatch()
        .await;
    assert_oauth_error(json, Status::PayloadTooLarge, "invalid_request").await;
}

#[rocket::async_test]
async fn malformed_json_logins_are_client_errors() {
    let app = TestApp::spawn().await;
    let cases: &[(&str, Status)] = &[
        ("{not json", Status::BadRequest),
        (r#"{"username":"a"}"#, Status::UnprocessableEntity),
        (
            r#"{"username":"a","password":7}"#,
            Status::UnprocessableEntity,
        ),
        (
            r#"{"username":"a","password":"b","is_admin":true}"#,
            Status::UnprocessableEntity,
        ),
        (r#"{"username":"","password":"b"}"#, Status::BadRequest),
        (r#"{"username":"a","password":""}"#, Status::BadRequest),
    ];
    for (body, status) in cases {
        let response = app
            .client
            .post("/login")
            .header(ContentType::JSON)
            .body(*body)
            .dispatch()
            .await;
        assert_eq!(response.status(), *status, "body {body}");
        assert_oauth_error(response, *status, "invalid_request").await;
    }
}

#[rocket::async_test]
async fn unknown_paths_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let missing = app.client.get("/nope").dispatch().await;
    assert_oauth_error(missing, Status::NotFound, "not_found").await;
    let get_token = app.client.get("/oauth/token").dispatch().await;
    assert_eq!(get_token.content_type(), Some(ContentType::JSON));
    assert!(get_token.status().code >= 400 && get_token.status().code < 500);
}

#[rocket::async_test]
async fn health_endpoints_report_ready() {
    let app = TestApp::spawn().await;
    let (live, _) = app.get_json("/health/live").await;
    assert_eq!(live, Status::Ok);
    let (ready, body) = app.get_json("/health/ready").await;
    assert_eq!(ready, Status::Ok);
    assert_eq!(body["status"], "ready");
}
