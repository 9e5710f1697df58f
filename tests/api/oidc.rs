//! Issue 12: the OpenID Connect provider. The authorization endpoint (PKCE, exact redirect URIs,
//! errors back with `state` and `iss`), the hosted login and consent forms (CSRF, CSP), single
//! sign-on through the issuer session, the `authorization_code` grant (single use, replay
//! revocation, expiry, client binding) with ID tokens verified against the JWKS, userinfo,
//! RP-initiated logout, and the session's end with a password change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rocket::http::{ContentType, Header, Method, Status};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stamp::admin::{Actor, NewServiceClient};
use stamp::store::{ClientId, GrantType, RedirectUri};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, text, urlencode};

/// RFC 7636 Appendix B's verifier and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The registered redirect URI of client `id`.
pub fn redirect_of(id: &str) -> String {
    format!("https://{id}.example/cb")
}

/// The registered post-logout redirect URI of client `id`.
pub fn bye_of(id: &str) -> String {
    format!("https://{id}.example/bye")
}

/// Registers an app for the authorization-code grant (and refresh), through the admin service
/// as `stamp clients add` does; returns its secret if confidential.
pub async fn register(app: &TestApp, id: &str, public: bool, first_party: bool) -> Option<String> {
    let new = NewServiceClient {
        id: ClientId::parse(id).unwrap(),
        scopes: Vec::new(),
        alg: None,
        public,
        grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![RedirectUri::parse(&redirect_of(id)).unwrap()],
        first_party,
        post_logout_redirect_uris: vec![RedirectUri::parse(&bye_of(id)).unwrap()],
    };
    let state = app.app();
    let (_, secret) = state
        .admin
        .add_client(&Actor::Cli, &state.keys, new)
        .await
        .unwrap();
    secret.map(|s| s.expose().to_string())
}

/// An authorization request's query for `client`: code, `openid profile`, state `st-1`, nonce
/// `n-1`, the PKCE challenge; `extra` pairs are added, and a pair with an empty value removes
/// that parameter.
pub fn query(client: &str, extra: &[(&str, &str)]) -> String {
    let redirect = redirect_of(client);
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", &redirect),
        ("scope", "openid profile"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        if !value.is_empty() {
            pairs.push((name, value));
        }
    }
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An answer of the browser endpoints: status, `Location`, `Content-Security-Policy`, body.
pub struct Answer {
    pub status: Status,
    pub location: Option<String>,
    pub csp: Option<String>,
    pub body: String,
}

impl Answer {
    /// A query parameter of the redirect.
    pub fn param(&self, name: &str) -> Option<String> {
        let location = self.location.as_deref()?;
        let url = url::Url::parse(location).ok()?;
        url.query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The value of the hidden form field `name` on the page.
    pub fn field(&self, name: &str) -> String {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} on the page: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }
}

async fn answer(response: rocket::local::asynchronous::LocalResponse<'_>) -> Answer {
    Answer {
        status: response.status(),
        location: response.headers().get_one("Location").map(str::to_string),
        csp: response
            .headers()
            .get_one("Content-Security-Policy")
            .map(str::to_string),
        body: response.into_string().await.unwrap_or_default(),
    }
}

/// `GET /authorize?query`.
pub async fn authorize(app: &TestApp, query: &str) -> Answer {
    answer(
        app.client
            .get(format!("/authorize?{query}"))
            .dispatch()
            .await,
    )
    .await
}

/// Posts a form to `path`.
pub async fn post_form(app: &TestApp, path: &str, body: &str) -> Answer {
    answer(
        app.client
            .post(path.to_string())
            .header(ContentType::Form)
            .body(body)
            .dispatch()
            .await,
    )
    .await
}

/// Fills in the login form `page` with `user`'s name and `password`.
pub async fn submit_login(app: &TestApp, page: &Answer, user: &str, password: &str) -> Answer {
    let body = format!(
        "request_id={}&csrf={}&username={}&password={}",
        urlencode(&page.field("request_id")),
        urlencode(&page.field("csrf")),
        urlencode(user),
        urlencode(password)
    );
    post_form(app, "/authorize/login", &body).await
}

/// The whole browser part for `client` and `user` (who must not be signed in yet): the login
/// page, the password, the redirect; returns the code.
pub async fn sign_in(app: &TestApp, client: &str, user: &str) -> String {
    let page = authorize(app, &query(client, &[])).await;
    assert_eq!(page.status, Status::Ok, "login page: {}", page.body);
    let back = submit_login(app, &page, user, PASSWORD).await;
    assert_eq!(back.status, Status::SeeOther, "{}", back.body);
    back.param("code").expect("a code")
}

/// `grant_type=authorization_code` for `client` (with `secret` if confidential).
pub async fn redeem(
    app: &TestApp,
    client: &str,
    secret: Option<&str>,
    code: &str,
    verifier: Option<&str>,
) -> (Status, Value) {
    let mut body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={client}",
        urlencode(code),
        urlencode(&redirect_of(client))
    );
    if let Some(secret) = secret {
        body.push_str(&format!("&client_secret={}", urlencode(secret)));
    }
    if let Some(verifier) = verifier {
        body.push_str(&format!("&code_verifier={verifier}"));
    }
    let response = app.token_form(&body).await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

/// Verifies an ID token with the published JWKS (as a relying party would): `typ` JWT, the
/// issuer, audience `client`, expiry.
pub async fn verify_id_token(app: &TestApp, token: &str, client: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&["http://127.0.0.1:8000"]);
    validation.set_audience(&[client]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("ID token verifies with the JWKS")
        .claims
}

async fn userinfo(app: &TestApp, token: &str) -> (Status, Value) {
    let response = app
        .client
        .get("/userinfo")
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .dispatch()
        .await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

async fn refresh(app: &TestApp, client: &str, token: &str) -> Status {
    app.token_form(&format!(
        "grant_type=refresh_token&refresh_token={}&client_id={client}",
        urlencode(token)
    ))
    .await
    .status()
}

#[rocket::async_test]
async fn discovery_describes_the_openid_provider() {
    let app = TestApp::spawn().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, doc) = app.get_json(path).await;
        assert_eq!(status, Status::Ok);
        let base = "http://127.0.0.1:8000";
        assert_eq!(doc["authorization_endpoint"], format!("{base}/authorize"));
        assert_eq!(doc["userinfo_endpoint"], format!("{base}/userinfo"));
        assert_eq!(doc["end_session_endpoint"], format!("{base}/end-session"));
        assert_eq!(doc["token_endpoint"], format!("{base}/oauth/token"));
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["request_uri_parameter_supported"], false);
        let algs = doc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        assert!(algs.iter().any(|a| a == "ES256"));
        let scopes = doc["scopes_supported"].as_array().unwrap();
        assert!(scopes.iter().any(|s| s == "openid"));
        let claims = doc["claims_supported"].as_array().unwrap();
        for claim in [
            "sub",
            "auth_time",
            "nonce",
            "at_hash",
            "sid",
            "preferred_username",
        ] {
            assert!(claims.iter().any(|c| c == claim), "{claim}");
        }
        let grants = doc["grant_types_supported"].as_array().unwrap();
        assert!(grants.iter().any(|g| g == "authorization_code"));
    }
}

#[rocket::async_test]
async fn the_code_flow_signs_in_and_issues_tokens_with_a_verifiable_id_token() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;

    let page = authorize(&app, &query("bank", &[("login_hint", "alice")])).await;
    assert_eq!(page.status, Status::Ok);
    let csp = page.csp.clone().expect("a CSP");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' https://bank.example"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!page.body.contains("<script"), "no JavaScript");
    assert!(page.body.contains(r#"<label for="password">"#));
    assert!(
        page.body.contains(r#"value="alice""#),
        "login_hint prefills"
    );
    let css = app.client.get("/assets/stamp.css").dispatch().await;
    assert_eq!(css.status(), Status::Ok);
    assert_eq!(css.content_type(), Some(ContentType::CSS));

    let back = submit_login(&app, &page, "alice", PASSWORD).await;
    assert_eq!(back.status, Status::SeeOther);
    assert!(
        back.location
            .as_deref()
            .unwrap()
            .starts_with("https://bank.example/cb?")
    );
    assert_eq!(back.param("state").as_deref(), Some("st-1"));
    assert_eq!(back.param("iss").as_deref(), Some("http://127.0.0.1:8000"));
    let code = back.param("code").unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&code).unwrap().len(),
        32,
        "256-bit codes"
    );

    let (status, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let claims = app.verify_with_jwks(access).await.unwrap();
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["client_id"], "bank");
    assert_eq!(claims["scope"], "openid profile");
    assert!(tokens["refresh_token"].is_string());

    let id = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), "bank").await;
    assert_eq!(id["sub"], alice.id);
    assert_eq!(id["aud"], "bank");
    assert_eq!(id["nonce"], "n-1");
    assert!(id["auth_time"].as_i64().unwrap() > 0);
    assert!(id["sid"].is_string());
    let digest = Sha256::digest(access.as_bytes());
    assert_eq!(id["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    // An ID token is not an access token: the issuer's own endpoints refuse it.
    let (status, _) = userinfo(&app, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(status, Status::Unauthorized);

    let (status, info) = userinfo(&app, access).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(info["sub"], alice.id);
    assert_eq!(info["preferred_username"], "alice");
    let post = app
        .client
        .post("/userinfo")
        .header(Header::new("Authorization", format!("Bearer {access}")))
        .dispatch()
        .await;
    assert_eq!(post.status(), Status::Ok);

    // The refresh token rotates as any other.
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, "bank", refresh_token).await, Status::Ok);
}

#[rocket::async_test]
async fn a_wrong_or_missing_verifier_is_refused() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let code = sign_in(&app, "bank", "alice").await;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
    let (status, body) = redeem(&app, "bank", None, &code, Some(wrong)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::BadRequest, Some("invalid_grant"))
    );
    let (status, body) = redeem(&app, "bank", None, &code, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::BadRequest, Some("invalid_grant"))
    );
    // A wrong verifier does not spend the code: the right one still works once.
    let (status, _) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok);
}

#[rocket::async_test]
async fn a_replayed_code_is_refused_and_revokes_what_it_produced() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    let code = sign_in(&app, "bank", "alice").await;
    let (status, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok);
    let access = tokens["access_token"].as_str().unwrap();
    assert!(app.gateway_sees_active(&gateway, access).await);

    let (status, body) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        !app.gateway_sees_active(&gateway, access).await,
        "access token denylisted"
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh(&app, "bank", refresh_token).await,
        Status::BadRequest
    );
    let metrics = app.client.get("/metrics").dispatch().await;
    let text = metrics.into_string().await.unwrap();
    assert!(text.contains("stamp_tokens_issued_total{grant=\"authorization_code\"} 1"));
    assert!(text.contains("stamp_grants_refused_total{grant=\"authorization_code\"} 1"));
}

#[rocket::async_test]
async fn unknown_clients_and_unregistered_redirect_uris_get_a_page_never_a_redirect() {
    let app = TestApp::spawn().await;
    register(&app, "bank", true, true).await;
    for q in [
        query("bank", &[("redirect_uri", "https://evil.example/cb")]),
        query("bank", &[("redirect_uri", "https://bank.example/cb/../x")]),
        query("bank", &[("redirect_uri", "")]),
        query("nobody", &[]),
        query("bank", &[("client_id", "")]),
    ] {
        let page = authorize(&app, &q).await;
        assert_eq!(page.status, Status::BadRequest, "{q}");
        assert!(page.location.is_none(), "never redirected: {q}");
        assert!(page.body.contains(r#"role="alert""#));
        assert!(!page.body.contains("evil.example"));
    }
}

#[rocket::async_test]
async fn pkce_is_required_for_public_clients_and_plain_is_refused() {
    let app = TestApp::spawn().await;
    register(&app, "bank", true, true).await;
    let secret = register(&app, "server", false, true).await.unwrap();
    for q in [
        query(
            "bank",
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ),
        query("bank", &[("code_challenge_method", "plain")]),
        query("server", &[("code_challenge_method", "plain")]),
        query("bank", &[("response_type", "token")]),
        query("bank", &[("scope", "openid admin")]),
    ] {
        let back = authorize(&app, &q).await;
        assert_eq!(back.status, Status::SeeOther, "{q}");
        assert!(back.param("error").is_some(), "{q}");
        assert_eq!(back.param("state").as_deref(), Some("st-1"));
        assert_eq!(back.param("iss").as_deref(), Some("http://127.0.0.1:8000"));
        assert!(back.param("code").is_none());
    }
    let back = authorize(&app, &query("bank", &[("code_challenge_method", "plain")])).await;
    assert_eq!(back.param("error").as_deref(), Some("invalid_request"));
    let back = authorize(&app, &query("bank", &[("response_type", "token")])).await;
    assert_eq!(
        back.param("error").as_deref(),
        Some("unsupported_response_type")
    );

    // A confidential client may leave PKCE out; it authenticates at the token endpoint.
    app.add_user("alice", PASSWORD, &[]).await;
    let page = authorize(
        &app,
        &query(
            "server",
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ),
    )
    .await;
    let back = submit_login(&app, &page, "alice", PASSWORD).await;
    let code = back.param("code").unwrap();
    let (status, _) = redeem(&app, "server", Some("wrong"), &code, None).await;
    assert_eq!(status, Status::Unauthorized);
    let (status, body) = redeem(&app, "server", Some(&secret), &code, None).await;
    assert_eq!(status, Status::Ok, "{body}");
}

#[rocket::async_test]
async fn a_code_is_bound_to_its_client() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    register(&app, "retirement", true, true).await;
    let code = sign_in(&app, "bank", "alice").await;
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id=retirement&code_verifier={VERIFIER}",
        urlencode(&code),
        urlencode(&redirect_of("bank"))
    );
    assert_oauth_error(
        app.token_form(&body).await,
        Status::BadRequest,
        "invalid_grant",
    )
    .await;
    // Without a client at all: invalid_request.
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
        urlencode(&code),
        urlencode(&redirect_of("bank"))
    );
    assert_oauth_error(
        app.token_form(&body).await,
        Status::BadRequest,
        "invalid_request",
    )
    .await;
    // Another redirect URI than the request's.
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id=bank&code_verifier={VERIFIER}",
        urlencode(&code),
        urlencode("https://bank.example/other")
    );
    assert_oauth_error(
        app.token_form(&body).await,
        Status::BadRequest,
        "invalid_grant",
    )
    .await;
}

#[rocket::async_test]
async fn a_code_expires_after_sixty_seconds() {
    let clock = stamp::clock::Clock::manual(stamp::clock::now());
    let app = TestApp::spawn_on_clock(&clock, |f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let code = sign_in(&app, "bank", "alice").await;
    clock.advance(61);
    let (status, body) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::BadRequest, Some("invalid_grant"))
    );
    let code = sign_in_again(&app, "bank").await;
    clock.advance(59);
    let (status, _) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok);
}

/// A code for `client` from the browser's live session (no form).
async fn sign_in_again(app: &TestApp, client: &str) -> String {
    let back = authorize(app, &query(client, &[])).await;
    assert_eq!(back.status, Status::SeeOther, "{}", back.body);
    back.param("code").expect("a code without a password")
}

#[rocket::async_test]
async fn the_login_form_needs_its_csrf_token_and_request() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let page = authorize(&app, &query("bank", &[])).await;
    let request_id = page.field("request_id");
    for body in [
        format!(
            "request_id={request_id}&username=alice&password={}",
            urlencode(PASSWORD)
        ),
        format!(
            "request_id={request_id}&csrf=forged&username=alice&password={}",
            urlencode(PASSWORD)
        ),
        format!(
            "request_id=nope&csrf={}&username=alice&password=x",
            page.field("csrf")
        ),
    ] {
        let answer = post_form(&app, "/authorize/login", &body).await;
        assert_eq!(answer.status, Status::BadRequest, "{body}");
        assert!(answer.location.is_none());
    }
    // The untouched form still works: the failures above spent nothing.
    let answer = submit_login(&app, &page, "alice", PASSWORD).await;
    assert_eq!(answer.status, Status::SeeOther);
}

#[rocket::async_test]
async fn a_wrong_password_shows_the_form_again_with_an_announced_error() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let page = authorize(&app, &query("bank", &[])).await;
    let again = submit_login(&app, &page, "alice", "wrong password").await;
    assert_eq!(again.status, Status::BadRequest);
    assert!(again.location.is_none());
    assert!(again.body.contains(r#"role="alert""#));
    assert!(again.body.contains("Wrong username or password"));
    // The same form may be sent again, with the right password.
    let back = submit_login(&app, &again, "alice", PASSWORD).await;
    assert_eq!(back.status, Status::SeeOther);
    assert!(back.param("code").is_some());
}

#[rocket::async_test]
async fn prompt_none_without_a_session_is_login_required() {
    let app = TestApp::spawn().await;
    register(&app, "bank", true, true).await;
    let back = authorize(&app, &query("bank", &[("prompt", "none")])).await;
    assert_eq!(back.status, Status::SeeOther);
    assert_eq!(back.param("error").as_deref(), Some("login_required"));
    assert_eq!(back.param("state").as_deref(), Some("st-1"));
    assert_eq!(back.param("iss").as_deref(), Some("http://127.0.0.1:8000"));
}

#[rocket::async_test]
async fn a_second_app_signs_in_without_a_password_unless_login_is_asked() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    register(&app, "retirement", true, true).await;
    let code = sign_in(&app, "bank", "alice").await;
    let (_, bank) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    let code = sign_in_again(&app, "retirement").await;
    let (status, retirement) = redeem(&app, "retirement", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok);
    let a = verify_id_token(&app, bank["id_token"].as_str().unwrap(), "bank").await;
    let b = verify_id_token(&app, retirement["id_token"].as_str().unwrap(), "retirement").await;
    assert_eq!(a["sub"], b["sub"]);
    assert_eq!(a["sid"], b["sid"], "one browser session");
    assert_eq!(a["auth_time"], b["auth_time"]);
    // prompt=none works with the session; prompt=login and max_age=0 ask for the password.
    let back = authorize(&app, &query("retirement", &[("prompt", "none")])).await;
    assert!(back.param("code").is_some());
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let page = authorize(&app, &query("retirement", &[extra])).await;
        assert_eq!(page.status, Status::Ok, "{extra:?}");
        assert!(page.body.contains("password"));
    }
}

#[rocket::async_test]
async fn rp_initiated_logout_ends_the_session_and_its_refresh_tokens() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let code = sign_in(&app, "bank", "alice").await;
    let (_, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    let id_token = tokens["id_token"].as_str().unwrap();

    // An unregistered post-logout URI is refused with a page, and nothing ends.
    let refused = answer(
        app.client
            .get(format!(
                "/end-session?id_token_hint={id_token}&post_logout_redirect_uri={}",
                urlencode("https://evil.example/")
            ))
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(refused.status, Status::BadRequest);
    assert!(refused.location.is_none());
    assert_eq!(
        authorize(&app, &query("bank", &[])).await.status,
        Status::SeeOther
    );

    let out = answer(
        app.client
            .get(format!(
                "/end-session?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye-1",
                urlencode(&bye_of("bank"))
            ))
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(out.status, Status::SeeOther);
    assert_eq!(
        out.location.as_deref(),
        Some("https://bank.example/bye?state=bye-1")
    );
    let page = authorize(&app, &query("bank", &[])).await;
    assert_eq!(page.status, Status::Ok, "the login form again");
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh(&app, "bank", refresh_token).await,
        Status::BadRequest
    );
    // Without a hint or redirect: a signed-out page.
    let out = answer(app.client.post("/end-session").dispatch().await).await;
    assert_eq!(out.status, Status::Ok);
    assert!(out.body.contains("Signed out"));
}

#[rocket::async_test]
async fn a_password_change_ends_the_browser_session() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let code = sign_in(&app, "bank", "alice").await;
    let (_, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(
        authorize(&app, &query("bank", &[])).await.status,
        Status::SeeOther
    );
    let change = app
        .client
        .post("/account/password")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        ))
        .header(ContentType::JSON)
        .body(
            serde_json::json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})
                .to_string(),
        )
        .dispatch()
        .await;
    assert_eq!(change.status(), Status::NoContent);
    let page = authorize(&app, &query("bank", &[])).await;
    assert_eq!(page.status, Status::Ok, "signed out: the login form");
    let back = authorize(&app, &query("bank", &[("prompt", "none")])).await;
    assert_eq!(back.param("error").as_deref(), Some("login_required"));
}

#[rocket::async_test]
async fn revoking_all_tokens_or_disabling_the_user_ends_the_session() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    let root = app.admin_token().await;
    register(&app, "bank", true, true).await;
    sign_in(&app, "bank", "alice").await;
    let (status, _) = app
        .admin_json(
            Method::Post,
            &format!("/admin/users/{}/revoke-tokens", alice.id),
            &root,
            None,
        )
        .await;
    assert_eq!(status, Status::Ok);
    let back = authorize(&app, &query("bank", &[("prompt", "none")])).await;
    assert_eq!(back.param("error").as_deref(), Some("login_required"));
}

#[rocket::async_test]
async fn userinfo_shows_what_the_scopes_allow() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let page = authorize(&app, &query("bank", &[("scope", "openid")])).await;
    let code = submit_login(&app, &page, "alice", PASSWORD)
        .await
        .param("code")
        .unwrap();
    let (_, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    let (status, info) = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(info, serde_json::json!({ "sub": alice.id }));
    // A token without `openid` (the password grant) is not for userinfo.
    let token = app.login("alice", PASSWORD).await;
    let (status, body) = userinfo(&app, &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (Status::Forbidden, Some("insufficient_scope"))
    );
    let (status, _) = userinfo(&app, "not-a-token").await;
    assert_eq!(status, Status::Unauthorized);
}

#[rocket::async_test]
async fn third_party_clients_ask_for_consent_once_until_it_is_withdrawn() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "shop", true, false).await;
    let page = authorize(&app, &query("shop", &[])).await;
    let consent = submit_login(&app, &page, "alice", PASSWORD).await;
    assert_eq!(consent.status, Status::Ok, "the consent form");
    assert!(consent.body.contains("<li>profile</li>"));
    assert!(
        consent
            .csp
            .as_deref()
            .unwrap()
            .contains("https://shop.example")
    );

    // prompt=none cannot show it.
    let back = authorize(&app, &query("shop", &[("prompt", "none")])).await;
    assert_eq!(back.param("error").as_deref(), Some("consent_required"));

    let deny = format!(
        "request_id={}&csrf={}&decision=deny",
        consent.field("request_id"),
        consent.field("csrf")
    );
    let back = post_form(&app, "/authorize/consent", &deny).await;
    assert_eq!(back.param("error").as_deref(), Some("access_denied"));
    assert_eq!(back.param("state").as_deref(), Some("st-1"));

    let consent = authorize(&app, &query("shop", &[])).await;
    assert_eq!(consent.status, Status::Ok);
    let forged = format!(
        "request_id={}&csrf=x&decision=allow",
        consent.field("request_id")
    );
    assert_eq!(
        post_form(&app, "/authorize/consent", &forged).await.status,
        Status::BadRequest
    );
    let allow = format!(
        "request_id={}&csrf={}&decision=allow",
        consent.field("request_id"),
        consent.field("csrf")
    );
    let back = post_form(&app, "/authorize/consent", &allow).await;
    let code = back.param("code").expect("a code after consent");
    let (status, tokens) = redeem(&app, "shop", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok);
    // Remembered: no form the second time.
    sign_in_again(&app, "shop").await;

    let token = tokens["access_token"].as_str().unwrap();
    let (status, list) = app
        .admin_json(Method::Get, "/account/consents", token, None)
        .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(list[0]["client_id"], "shop");
    assert_eq!(list[0]["scope"], serde_json::json!(["openid", "profile"]));
    let root = app.admin_token().await;
    let alice = app
        .app()
        .store
        .user_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let admin_path = format!("/admin/users/{}/consents", alice.id);
    let (status, seen) = app.admin_json(Method::Get, &admin_path, &root, None).await;
    assert_eq!(
        (status, seen[0]["client_id"].as_str()),
        (Status::Ok, Some("shop"))
    );
    let (status, _) = app.admin_json(Method::Get, &admin_path, token, None).await;
    assert_eq!(status, Status::Forbidden, "only for administrators");
    let (status, _) = app
        .admin_json(Method::Delete, "/account/consents/shop", token, None)
        .await;
    assert_eq!(status, Status::NoContent);
    let events = app.app().store.recent_audit(5).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "users.consent_revoke" && e.actor == format!("user:{}", alice.id))
    );
    let (status, _) = app
        .admin_json(Method::Delete, &format!("{admin_path}/shop"), &root, None)
        .await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = app
        .admin_json(Method::Delete, "/account/consents/shop", token, None)
        .await;
    assert_eq!(status, Status::NotFound);
    assert_eq!(
        authorize(&app, &query("shop", &[])).await.status,
        Status::Ok,
        "asked again"
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh(&app, "shop", refresh_token).await,
        Status::BadRequest
    );
}

#[rocket::async_test]
async fn clients_are_registered_for_sign_in_through_the_api_and_the_cli() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let body = serde_json::json!({
        "id": "shop",
        "public": true,
        "grants": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://shop.example/cb"],
        "post_logout_redirect_uris": ["https://shop.example/bye"],
        "first_party": false,
    });
    let (status, client) = app
        .admin_json(
            Method::Post,
            "/admin/clients",
            &root,
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, Status::Created, "{client}");
    assert_eq!(client["first_party"], false);
    assert_eq!(
        client["post_logout_redirect_uris"],
        serde_json::json!(["https://shop.example/bye"])
    );
    let (status, client) = app
        .admin_json(
            Method::Patch,
            "/admin/clients/shop",
            &root,
            Some(r#"{"first_party": true, "post_logout_redirect_uris": []}"#),
        )
        .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(client["first_party"], true);
    assert_eq!(client["post_logout_redirect_uris"], serde_json::json!([]));
    let (status, _) = app
        .admin_json(
            Method::Patch,
            "/admin/clients/shop",
            &root,
            Some(r#"{"post_logout_redirect_uris": ["/relative"]}"#),
        )
        .await;
    assert_eq!(status, Status::BadRequest);

    let dir = tempfile::tempdir().unwrap();
    let out = run_stamp(
        dir.path(),
        &[
            "clients",
            "add",
            "retirement",
            "--public",
            "--third-party",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://retirement.example/cb",
            "--post-logout-redirect-uri",
            "https://retirement.example/bye",
        ],
        "",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_stamp(
        dir.path(),
        &["clients", "show", "retirement", "--json"],
        "",
        &[],
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["first_party"], false);
    assert_eq!(shown["grants"], serde_json::json!(["authorization_code"]));
    assert_eq!(
        shown["post_logout_redirect_uris"],
        serde_json::json!(["https://retirement.example/bye"])
    );
}

#[rocket::async_test]
async fn userinfo_returns_the_email_an_admin_set_with_the_email_scope() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let path = format!("/admin/users/{}", alice.id);
    let (status, _) = app
        .admin_json(
            Method::Patch,
            &path,
            &root,
            Some(r#"{"email": "not an address"}"#),
        )
        .await;
    assert_eq!(status, Status::BadRequest);
    let (status, view) = app
        .admin_json(
            Method::Patch,
            &path,
            &root,
            Some(r#"{"email": "alice@bank.example"}"#),
        )
        .await;
    assert_eq!(status, Status::Ok, "{view}");
    assert_eq!(view["email"], "alice@bank.example");

    let page = authorize(&app, &query("bank", &[("scope", "openid email")])).await;
    let code = submit_login(&app, &page, "alice", PASSWORD)
        .await
        .param("code")
        .unwrap();
    let (_, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (_, info) = userinfo(&app, access).await;
    assert_eq!(
        info,
        serde_json::json!({"sub": alice.id, "email": "alice@bank.example"})
    );

    let (status, view) = app
        .admin_json(Method::Patch, &path, &root, Some(r#"{"email": null}"#))
        .await;
    assert_eq!(status, Status::Ok);
    assert!(view.get("email").is_none(), "{view}");
    let (_, info) = userinfo(&app, access).await;
    assert_eq!(info, serde_json::json!({"sub": alice.id}));
}

#[rocket::async_test]
async fn the_login_form_is_throttled_like_the_password_grant() {
    let app = TestApp::spawn_with(|f| {
        f.merge(rocket::figment::providers::Serialized::global(
            "login_throttle_failures",
            1,
        ))
    })
    .await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let page = authorize(&app, &query("bank", &[])).await;
    let mut last = submit_login(&app, &page, "alice", "wrong password").await;
    for _ in 0..3 {
        if last.status == Status::TooManyRequests {
            break;
        }
        last = submit_login(&app, &page, "alice", "wrong password").await;
    }
    assert_eq!(last.status, Status::TooManyRequests, "{}", last.body);
    assert!(last.body.contains("Too many failed sign-ins"));
    assert!(last.location.is_none());
    // The password grant sees the same throttle: the failures above count there too.
    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    assert_eq!(response.status(), Status::TooManyRequests);
}

#[rocket::async_test]
async fn the_authorization_endpoint_accepts_a_form_post() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    register(&app, "bank", true, true).await;
    let page = post_form(
        &app,
        "/authorize",
        &query("bank", &[("unknown", "ignored")]),
    )
    .await;
    assert_eq!(page.status, Status::Ok, "{}", page.body);
    let back = submit_login(&app, &page, "alice", PASSWORD).await;
    assert_eq!(back.param("state").as_deref(), Some("st-1"));
    assert!(back.param("code").is_some());
}
