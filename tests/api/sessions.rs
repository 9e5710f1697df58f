//! Sessions: refresh-token rotation and reuse detection (both orders, the race, the grace
//! window), revoke-all, disabled users, logout, introspection of every token state, cookie mode,
//! login throttling, and state that survives a restart.

use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Cookie, Header, Method, SameSite, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::time::Duration;
use secrecy::ExposeSecret;
use serde_json::Value;

use stamp::tokens::Subject;

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, urlencode};

/// Tokens of one login or refresh.
#[derive(Clone, Debug)]
struct Tokens {
    access: String,
    refresh: String,
}

async fn tokens_of(response: LocalResponse<'_>) -> Tokens {
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
    }
}

async fn login(app: &TestApp, user: &str) -> Tokens {
    let body = format!(
        "grant_type=password&username={user}&password={}",
        urlencode(PASSWORD)
    );
    tokens_of(app.token_form(&body).await).await
}

async fn refresh<'a>(app: &'a TestApp, refresh_token: &str) -> LocalResponse<'a> {
    app.token_form(&format!(
        "grant_type=refresh_token&refresh_token={}",
        urlencode(refresh_token)
    ))
    .await
}

async fn assert_refresh_fails(app: &TestApp, refresh_token: &str) {
    assert_oauth_error(
        refresh(app, refresh_token).await,
        Status::BadRequest,
        "invalid_grant",
    )
    .await;
}

/// A service client (for introspection and revocation) and its secret.
async fn add_client(app: &TestApp, id: &str, scopes: &[&str]) -> String {
    app.add_service_client(id, scopes, None).await
}

async fn introspect(app: &TestApp, client: (&str, &str), token: &str) -> Value {
    let response = app
        .client
        .post("/oauth/introspect")
        .header(ContentType::Form)
        .body(format!(
            "token={}&client_id={}&client_secret={}",
            urlencode(token),
            client.0,
            urlencode(client.1)
        ))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        response.headers().get_one("Cache-Control"),
        Some("no-store")
    );
    response.into_json().await.unwrap()
}

async fn logout<'a>(
    app: &'a TestApp,
    refresh: Option<&str>,
    access: Option<&str>,
) -> LocalResponse<'a> {
    let mut request = app.client.post("/logout").header(ContentType::Form);
    if let Some(token) = access {
        request = request.header(Header::new("Authorization", format!("Bearer {token}")));
    }
    let body = refresh.map_or(String::new(), |t| format!("refresh_token={}", urlencode(t)));
    request.body(body).dispatch().await
}

#[rocket::async_test]
async fn password_logins_return_a_256_bit_refresh_token() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;

    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["refresh_expires_in"], 14 * 86_400);
    let raw = body["refresh_token"].as_str().unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .unwrap();
    assert_eq!(bytes.len(), 32);

    let response = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#))
        .dispatch()
        .await;
    let from_login = tokens_of(response).await;
    assert_ne!(from_login.refresh, raw);
    assert_eq!(
        refresh(&app, &from_login.refresh).await.status(),
        Status::Ok
    );
}

#[rocket::async_test]
async fn refresh_may_narrow_the_scope_but_not_widen_it() {
    let app = TestApp::spawn().await;
    app.add_user("bob", PASSWORD, &[]).await;
    let body = format!(
        "grant_type=password&username=bob&password={}&scope=openid%20profile",
        urlencode(PASSWORD)
    );
    let bob = tokens_of(app.token_form(&body).await).await;
    let widened = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}&scope=openid%20email",
            urlencode(&bob.refresh)
        ))
        .await;
    assert_oauth_error(widened, Status::BadRequest, "invalid_scope").await;

    // A refused scope does not spend the token.
    let narrowed = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}&scope=openid",
            urlencode(&bob.refresh)
        ))
        .await;
    let narrowed = tokens_of(narrowed).await;
    let claims = app.verify_with_jwks(&narrowed.access).await.unwrap();
    assert_eq!(claims["scope"], "openid");
    // Without `scope`, the login's scope carries on.
    let next = tokens_of(refresh(&app, &narrowed.refresh).await).await;
    let claims = app.verify_with_jwks(&next.access).await.unwrap();
    assert_eq!(claims["scope"], "openid profile");
}

#[rocket::async_test]
async fn a_refresh_token_is_bound_to_its_client() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let session = login(&app, "alice").await;
    let other_client = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}&client_id=someone-else",
            urlencode(&session.refresh)
        ))
        .await;
    // An unregistered client is refused before the token is looked at (issue 10); a registered
    // other client gets invalid_grant (tests/api/trust_clients.rs).
    assert_oauth_error(other_client, Status::Unauthorized, "invalid_client").await;
    let same_client = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}&client_id=stamp",
            urlencode(&session.refresh)
        ))
        .await;
    assert_eq!(same_client.status(), Status::Ok);
    let missing = app.token_form("grant_type=refresh_token").await;
    assert_oauth_error(missing, Status::BadRequest, "invalid_request").await;
}

#[rocket::async_test]
async fn each_refresh_spends_the_old_token_and_issues_a_new_one() {
    let app = TestApp::spawn().await;
    let user = app.add_user("alice", PASSWORD, &["ops"]).await;
    let r0 = login(&app, "alice").await;

    let r1 = tokens_of(refresh(&app, &r0.refresh).await).await;
    assert_ne!(r1.refresh, r0.refresh);
    assert_ne!(r1.access, r0.access);
    let claims = app.verify_with_jwks(&r1.access).await.unwrap();
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["roles"], serde_json::json!(["ops"]));

    let r2 = tokens_of(refresh(&app, &r1.refresh).await).await;
    assert_ne!(r2.refresh, r1.refresh);
    assert_refresh_fails(&app, "not-a-token-we-issued").await;
}

#[rocket::async_test]
async fn reuse_when_the_attacker_refreshes_first_revokes_the_family() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let stolen = login(&app, "alice").await;

    let attacker = tokens_of(refresh(&app, &stolen.refresh).await).await;
    // The victim presents the (now spent) token: reuse.
    assert_refresh_fails(&app, &stolen.refresh).await;
    // The attacker's branch is dead too.
    assert_refresh_fails(&app, &attacker.refresh).await;
    // Other logins of the same user are untouched.
    let other = login(&app, "alice").await;
    assert_eq!(refresh(&app, &other.refresh).await.status(), Status::Ok);
}

#[rocket::async_test]
async fn reuse_when_the_victim_refreshes_first_revokes_the_family() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let stolen = login(&app, "alice").await;

    let victim = tokens_of(refresh(&app, &stolen.refresh).await).await;
    assert_refresh_fails(&app, &stolen.refresh).await;
    // The legitimate holder's newest token stops working as well: the family is revoked.
    assert_refresh_fails(&app, &victim.refresh).await;
}

#[rocket::async_test]
async fn two_concurrent_refreshes_with_one_token_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    for _ in 0..5 {
        let session = login(&app, "alice").await;
        let body = format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&session.refresh)
        );
        let a = app
            .client
            .post("/oauth/token")
            .header(ContentType::Form)
            .body(body.clone())
            .dispatch();
        let b = app
            .client
            .post("/oauth/token")
            .header(ContentType::Form)
            .body(body)
            .dispatch();
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status().code, b.status().code];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "exactly one refresh wins");
    }
}

#[rocket::async_test]
async fn concurrent_refreshes_at_the_store_have_exactly_one_winner() {
    use stamp::tokens::refresh::{RefreshToken, TokenHash};
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let session = login(&app, "alice").await;
    let store = app.app().store.clone();
    let policy = app.app().config.refresh;
    let presented = TokenHash::of(&session.refresh);
    let now = stamp::clock::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let successor = RefreshToken::generate().hash();
            store
                .refresh(&presented, &successor, &policy, now)
                .await
                .unwrap()
        }));
    }
    let mut issued = 0;
    for task in tasks {
        if matches!(
            task.await.unwrap(),
            stamp::store::RefreshOutcome::Issued { .. }
        ) {
            issued += 1;
        }
    }
    assert_eq!(issued, 1);
}

#[rocket::async_test]
async fn inside_the_grace_window_a_just_spent_token_is_answered_once() {
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("refresh_reuse_grace", 30))).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let r0 = login(&app, "alice").await;

    let tab_a = tokens_of(refresh(&app, &r0.refresh).await).await;
    // The second tab, a moment later, with the same token: answered, family kept.
    let tab_b = tokens_of(refresh(&app, &r0.refresh).await).await;
    assert_ne!(tab_a.refresh, tab_b.refresh);
    assert_eq!(refresh(&app, &tab_a.refresh).await.status(), Status::Ok);
    // A third presentation is reuse: the family goes.
    assert_refresh_fails(&app, &r0.refresh).await;
    assert_refresh_fails(&app, &tab_b.refresh).await;
}

#[rocket::async_test]
async fn admin_revoke_tokens_ends_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    let laptop = login(&app, "alice").await;
    let phone = login(&app, "alice").await;

    let path = format!("/admin/users/{}/revoke-tokens", alice.id);
    let response = app.admin_call(Method::Post, &path, &admin, None).await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["token_version"], 1);

    assert_refresh_fails(&app, &laptop.refresh).await;
    assert_refresh_fails(&app, &phone.refresh).await;
    let fresh = login(&app, "alice").await;
    assert_eq!(refresh(&app, &fresh.refresh).await.status(), Status::Ok);

    let audit = app.app().store.recent_audit(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "users.revoke_tokens"
                && e.target.as_deref() == Some(alice.id.as_str())),
        "{audit:?}"
    );
}

#[rocket::async_test]
async fn admin_revoke_tokens_needs_an_admin_and_a_known_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    let path = format!("/admin/users/{}/revoke-tokens", alice.id);

    let anonymous = app.client.post(path.clone()).dispatch().await;
    assert_oauth_error(anonymous, Status::Unauthorized, "invalid_request").await;
    let alice_token = login(&app, "alice").await.access;
    let not_admin = app
        .admin_call(Method::Post, &path, &alice_token, None)
        .await;
    assert_oauth_error(not_admin, Status::Forbidden, "insufficient_scope").await;
    let unknown = app
        .admin_call(
            Method::Post,
            "/admin/users/nobody/revoke-tokens",
            &admin,
            None,
        )
        .await;
    assert_oauth_error(unknown, Status::NotFound, "not_found").await;
}

#[rocket::async_test]
async fn disabled_users_and_password_changes_end_sessions() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    app.add_user("bob", PASSWORD, &[]).await;
    let alice_session = login(&app, "alice").await;
    let bob_session = login(&app, "bob").await;
    let store = &app.app().store;
    let now = stamp::clock::now();

    store.set_disabled("alice", true, now, None).await.unwrap();
    assert_refresh_fails(&app, &alice_session.refresh).await;
    // Re-enabling does not bring old sessions back.
    store.set_disabled("alice", false, now, None).await.unwrap();
    assert_refresh_fails(&app, &alice_session.refresh).await;
    let _ = alice;

    let bob = store.user_by_username("bob").await.unwrap().unwrap();
    let new_hash = bob.password_hash.clone();
    store
        .set_password_hash(&bob.id, &new_hash, now, None)
        .await
        .unwrap();
    assert_refresh_fails(&app, &bob_session.refresh).await;
}

#[rocket::async_test]
async fn logout_revokes_the_family_and_denylists_the_access_token() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let secret = add_client(&app, "api", &[]).await;
    let session = login(&app, "alice").await;
    assert_eq!(
        introspect(&app, ("api", &secret), &session.access).await["active"],
        true
    );

    let response = logout(&app, Some(&session.refresh), Some(&session.access)).await;
    assert_eq!(response.status(), Status::NoContent);

    assert_refresh_fails(&app, &session.refresh).await;
    assert_eq!(
        introspect(&app, ("api", &secret), &session.access).await,
        serde_json::json!({"active": false})
    );
    // Twice is not an error, nor a JSON body.
    let again = logout(&app, Some(&session.refresh), Some(&session.access)).await;
    assert_eq!(again.status(), Status::NoContent);
    let json = app
        .client
        .post("/logout")
        .header(ContentType::JSON)
        .body(format!(r#"{{"refresh_token":"{}"}}"#, session.refresh))
        .dispatch()
        .await;
    assert_eq!(json.status(), Status::NoContent);
    // Nothing to log out with is a bad request.
    assert_oauth_error(
        logout(&app, None, None).await,
        Status::BadRequest,
        "invalid_request",
    )
    .await;
}

#[rocket::async_test]
async fn logout_with_only_the_access_token_denylists_it() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let secret = add_client(&app, "api", &[]).await;
    let session = login(&app, "alice").await;

    assert_eq!(
        logout(&app, None, Some(&session.access)).await.status(),
        Status::NoContent
    );
    assert_eq!(
        introspect(&app, ("api", &secret), &session.access).await["active"],
        false
    );
    // The refresh token was not sent, so its family lives on.
    assert_eq!(refresh(&app, &session.refresh).await.status(), Status::Ok);
}

#[rocket::async_test]
async fn introspection_reports_every_token_state() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &["ops"]).await;
    let secret = add_client(&app, "api", &[]).await;
    let client = ("api", secret.as_str());
    let session = login(&app, "alice").await;

    // Active access token: its claims.
    let active = introspect(&app, client, &session.access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], alice.id.as_str());
    assert_eq!(active["client_id"], "stamp");
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["roles"], serde_json::json!(["ops"]));
    assert!(active["exp"].as_i64().unwrap() > stamp::clock::now());

    // Active refresh token.
    let refresh_info = introspect(&app, client, &session.refresh).await;
    assert_eq!(refresh_info["active"], true);
    assert_eq!(refresh_info["token_type"], "refresh_token");
    assert_eq!(refresh_info["sub"], alice.id.as_str());

    // Expired access token (signed by the real key two hours ago).
    let subject = Subject {
        sub: alice.id.clone(),
        client_id: "stamp".into(),
        scope: vec![],
        roles: vec![],

        ver: None,
    };
    let keys = app.app().keys.current();
    let expired = app
        .app()
        .auth
        .tokens()
        .issue(&keys, subject.clone(), stamp::clock::now() - 7200)
        .unwrap()
        .access_token;
    // Foreign-signed: same claims, another issuer's key.
    let other = TestApp::spawn().await;
    let foreign = other
        .app()
        .auth
        .tokens()
        .issue(&other.app().keys.current(), subject, stamp::clock::now())
        .unwrap()
        .access_token;
    // Spent refresh token, and its successor after reuse revoked the family.
    let next = tokens_of(refresh(&app, &session.refresh).await).await;
    let spent = session.refresh.clone();
    let inactive = serde_json::json!({"active": false});
    for (what, token) in [
        ("expired", expired.expose_secret()),
        ("foreign", foreign.expose_secret()),
        ("malformed", "garbage"),
        ("malformed jwt", "a.b.c"),
        ("spent refresh", spent.as_str()),
    ] {
        assert_eq!(introspect(&app, client, token).await, inactive, "{what}");
    }
    assert_eq!(
        introspect(&app, client, &next.refresh).await["active"],
        true
    );
    assert_refresh_fails(&app, &spent).await;
    assert_eq!(
        introspect(&app, client, &next.refresh).await,
        inactive,
        "revoked family"
    );

    // Denylisted (logged out) access token.
    let other_session = login(&app, "alice").await;
    logout(&app, None, Some(&other_session.access)).await;
    assert_eq!(
        introspect(&app, client, &other_session.access).await,
        inactive,
        "denylisted"
    );
}

#[rocket::async_test]
async fn introspection_and_revocation_need_client_authentication() {
    let app = TestApp::spawn().await;
    let secret = add_client(&app, "api", &[]).await;
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let anonymous = app
            .client
            .post(path)
            .header(ContentType::Form)
            .body("token=abc")
            .dispatch()
            .await;
        assert_eq!(
            anonymous.headers().get_one("WWW-Authenticate"),
            Some(r#"Basic realm="stamp""#)
        );
        assert_oauth_error(anonymous, Status::Unauthorized, "invalid_client").await;
        let wrong = app
            .client
            .post(path)
            .header(ContentType::Form)
            .body(format!(
                "token=abc&client_id=api&client_secret={}x",
                urlencode(&secret)
            ))
            .dispatch()
            .await;
        assert_oauth_error(wrong, Status::Unauthorized, "invalid_client").await;
        let no_token = app
            .client
            .post(path)
            .header(ContentType::Form)
            .body(format!(
                "client_id=api&client_secret={}",
                urlencode(&secret)
            ))
            .dispatch()
            .await;
        assert_oauth_error(no_token, Status::BadRequest, "invalid_request").await;
    }
}

#[rocket::async_test]
async fn revocation_affects_only_the_callers_own_tokens() {
    let app = TestApp::spawn().await;
    let api_secret = add_client(&app, "api", &["orders"]).await;
    let other_secret = add_client(&app, "other", &["orders"]).await;
    let token_of = |id: &'static str, secret: String| {
        let app = &app;
        async move {
            let response = app
                .token_form(&format!(
                    "grant_type=client_credentials&client_id={id}&client_secret={}",
                    urlencode(&secret)
                ))
                .await;
            assert_eq!(response.status(), Status::Ok);
            let body: Value = response.into_json().await.unwrap();
            body["access_token"].as_str().unwrap().to_string()
        }
    };
    let api_token = token_of("api", api_secret.clone()).await;
    let other_token = token_of("other", other_secret.clone()).await;

    let revoke = |token: String| {
        let app = &app;
        let secret = api_secret.clone();
        async move {
            app.client
                .post("/oauth/revoke")
                .header(ContentType::Form)
                .body(format!(
                    "token={}&token_type_hint=access_token&client_id=api&client_secret={}",
                    urlencode(&token),
                    urlencode(&secret)
                ))
                .dispatch()
                .await
                .status()
        }
    };
    assert_eq!(revoke(other_token.clone()).await, Status::Ok);
    assert_eq!(revoke(api_token.clone()).await, Status::Ok);
    assert_eq!(revoke("unknown".into()).await, Status::Ok, "RFC 7009 §2.2");

    let client = ("api", api_secret.as_str());
    assert_eq!(introspect(&app, client, &api_token).await["active"], false);
    assert_eq!(introspect(&app, client, &other_token).await["active"], true);
}

/// `Set-Cookie` headers of a response, parsed.
fn set_cookies(response: &LocalResponse<'_>) -> Vec<Cookie<'static>> {
    response
        .headers()
        .get("Set-Cookie")
        .map(|h| Cookie::parse(h.to_string()).unwrap())
        .collect()
}

fn find<'a>(cookies: &'a [Cookie<'static>], name: &str) -> &'a Cookie<'static> {
    cookies
        .iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

#[rocket::async_test]
async fn cookie_mode_sets_scoped_http_only_cookies_and_refreshes_from_them() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let response = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(format!(
            r#"{{"username":"alice","password":"{PASSWORD}","cookie":true}}"#
        ))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    let cookies = set_cookies(&response);
    let body: Value = response.into_json().await.unwrap();
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
    assert_eq!(body["expires_in"], 900);

    for (name, path, max_age) in [
        ("stamp_access", "/", 900),
        ("stamp_refresh", "/oauth/token", 14 * 86_400),
        ("stamp_logout", "/logout", 14 * 86_400),
    ] {
        let c = find(&cookies, name);
        assert_eq!(c.http_only(), Some(true), "{name}");
        assert_eq!(c.secure(), Some(true), "{name}");
        assert_eq!(c.same_site(), Some(SameSite::Strict), "{name}");
        assert_eq!(c.path(), Some(path), "{name}");
        assert_eq!(c.max_age(), Some(Duration::seconds(max_age)), "{name}");
    }
    let first_refresh = find(&cookies, "stamp_refresh").value().to_string();
    let access = find(&cookies, "stamp_access").value().to_string();
    assert!(app.verify_with_jwks(&access).await.is_ok());

    // Refresh with the cookie only (the tracked client sends it): rotated, new cookies.
    let response = app.token_form("grant_type=refresh_token").await;
    assert_eq!(response.status(), Status::Ok);
    let rotated = set_cookies(&response);
    let second_refresh = find(&rotated, "stamp_refresh").value().to_string();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(find(&rotated, "stamp_logout").value(), second_refresh);

    // Logout with the cookie only: cookies cleared, the family revoked.
    let response = app.client.post("/logout").dispatch().await;
    assert_eq!(response.status(), Status::NoContent);
    let cleared = set_cookies(&response);
    for name in ["stamp_access", "stamp_refresh", "stamp_logout"] {
        assert_eq!(
            find(&cleared, name).max_age(),
            Some(Duration::ZERO),
            "{name}"
        );
    }
    assert_refresh_fails(&app, &second_refresh).await;
}

#[rocket::async_test]
async fn a_cookie_that_can_no_longer_refresh_is_cleared() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let response = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(format!(
            r#"{{"username":"alice","password":"{PASSWORD}","cookie":true}}"#
        ))
        .dispatch()
        .await;
    let cookies = set_cookies(&response);
    let stolen = find(&cookies, "stamp_refresh").value().to_string();
    // Someone else spends the token first; the browser's cookie refresh is then reuse.
    assert_eq!(refresh(&app, &stolen).await.status(), Status::Ok);
    let response = app.token_form("grant_type=refresh_token").await;
    let cleared = set_cookies(&response);
    assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
    for name in ["stamp_access", "stamp_refresh", "stamp_logout"] {
        assert_eq!(
            find(&cleared, name).max_age(),
            Some(Duration::ZERO),
            "{name}"
        );
    }
}

#[rocket::async_test]
async fn secure_can_be_turned_off_for_local_development_and_cookie_mode_set_globally() {
    let app = TestApp::spawn_with(|f| {
        f.merge(Serialized::global("cookie_secure", false))
            .merge(Serialized::global("cookie_mode", true))
    })
    .await;
    app.add_user("alice", PASSWORD, &[]).await;
    let response = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    let cookies = set_cookies(&response);
    // The three session cookies and the device cookie of the login throttle.
    assert_eq!(cookies.len(), 4, "{cookies:?}");
    find(&cookies, "stamp_device");
    assert!(cookies.iter().all(|c| c.secure() != Some(true)));
    assert!(cookies.iter().all(|c| c.http_only() == Some(true)));
}

async fn attempt<'a>(
    app: &'a TestApp,
    user: &str,
    password: &str,
    address: &str,
) -> LocalResponse<'a> {
    app.client
        .post("/oauth/token")
        .header(ContentType::Form)
        .remote(std::net::SocketAddr::new(address.parse().unwrap(), 40000))
        .body(format!(
            "grant_type=password&username={user}&password={}",
            urlencode(password)
        ))
        .dispatch()
        .await
}

fn retry_after(response: &LocalResponse<'_>) -> i64 {
    response
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap()
}

#[rocket::async_test]
async fn failed_logins_are_throttled_with_growing_retry_after() {
    // A manual clock: the waits are `advance`d, not slept.
    let app = crate::trust_throttle::spawn_manual(|f| f).await;
    let clock = app.app().clock.clone();
    app.add_user("alice", PASSWORD, &[]).await;
    for i in 0..5 {
        let response = attempt(&app, "alice", "wrong password", &format!("10.0.0.{i}")).await;
        assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
    }
    // Now even the right password waits (and costs no argon2 run). The first delay is 1 s;
    // Retry-After rounds up to whole seconds, so it says 1 or 2.
    let blocked = attempt(&app, "alice", PASSWORD, "10.0.1.1").await;
    let first = retry_after(&blocked);
    assert!((1..=2).contains(&first), "Retry-After {first}");
    assert_oauth_error(blocked, Status::TooManyRequests, "slow_down").await;

    clock.advance(first);
    let failed = attempt(&app, "alice", "wrong again", "10.0.1.2").await;
    assert_eq!(failed.status(), Status::BadRequest);
    let blocked = attempt(&app, "alice", PASSWORD, "10.0.1.3").await;
    assert_eq!(blocked.status(), Status::TooManyRequests);
    let second = retry_after(&blocked);
    assert!(
        (2..=3).contains(&second) && second >= first,
        "the delay doubles: {first} then {second}"
    );
    // A full `delay` later (whatever the sub-second timing was) it still holds.
    clock.advance(second - 1);
    let blocked = attempt(&app, "alice", PASSWORD, "10.0.1.6").await;
    assert_eq!(blocked.status(), Status::TooManyRequests);

    // After the wait, success resets the username's counter.
    clock.advance(1);
    assert_eq!(
        attempt(&app, "alice", PASSWORD, "10.0.1.4").await.status(),
        Status::Ok
    );
    let after = attempt(&app, "alice", "wrong", "10.0.1.5").await;
    assert_eq!(after.status(), Status::BadRequest, "counter restarted");
}

#[rocket::async_test]
async fn a_client_cannot_pick_its_own_address_with_a_header() {
    // `ip_header = false` in Rocket.toml: X-Real-IP from a client directly connected is ignored.
    let app =
        TestApp::spawn_with(|f| f.merge(Serialized::global("login_throttle_failures", 2))).await;
    app.add_user("alice", PASSWORD, &[]).await;
    for i in 0..8 {
        let response = app
            .client
            .post("/oauth/token")
            .header(ContentType::Form)
            .header(Header::new("X-Real-IP", format!("198.51.100.{i}")))
            .remote("192.0.2.9:40000".parse().unwrap())
            .body(format!(
                "grant_type=password&username=user{i}&password=guess"
            ))
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::BadRequest);
    }
    let blocked = attempt(&app, "alice", PASSWORD, "192.0.2.9").await;
    assert_eq!(
        blocked.status(),
        Status::TooManyRequests,
        "one peer, however many headers"
    );
}

#[rocket::async_test]
async fn one_address_spraying_usernames_is_throttled() {
    let app =
        TestApp::spawn_with(|f| f.merge(Serialized::global("login_throttle_failures", 2))).await;
    app.add_user("alice", PASSWORD, &[]).await;
    // An address gets four times the per-user allowance: 8 failures.
    for i in 0..8 {
        let response = attempt(&app, &format!("user{i}"), "guess", "192.0.2.7").await;
        assert_eq!(response.status(), Status::BadRequest);
    }
    let blocked = attempt(&app, "alice", PASSWORD, "192.0.2.7").await;
    assert_eq!(blocked.status(), Status::TooManyRequests);
    assert!(retry_after(&blocked) >= 1);
    // Another address is not affected.
    assert_eq!(
        attempt(&app, "alice", PASSWORD, "192.0.2.8").await.status(),
        Status::Ok
    );
}

#[rocket::async_test]
async fn sessions_survive_a_restart() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    app.add_user("bob", PASSWORD, &[]).await;
    let secret = add_client(&app, "api", &[]).await;
    let r0 = login(&app, "alice").await;
    let r1 = tokens_of(refresh(&app, &r0.refresh).await).await;
    let logged_out = login(&app, "alice").await;
    logout(&app, Some(&logged_out.refresh), Some(&logged_out.access)).await;
    let bob = login(&app, "bob").await;
    let bob_user = app
        .app()
        .store
        .user_by_username("bob")
        .await
        .unwrap()
        .unwrap();
    app.app()
        .store
        .revoke_user_tokens(&bob_user.id, stamp::clock::now(), None)
        .await
        .unwrap();

    let TestApp { client, dir } = app;
    drop(client);
    let app = TestApp {
        client: TestApp::start(dir.path(), |f| f).await,
        dir,
    };

    // The live token still rotates; the spent one is still reuse; the logout still holds.
    let client = ("api", secret.as_str());
    assert_eq!(
        introspect(&app, client, &r1.refresh).await["sub"],
        alice.id.as_str()
    );
    assert_eq!(
        introspect(&app, client, &logged_out.access).await["active"],
        false
    );
    assert_refresh_fails(&app, &logged_out.refresh).await;
    assert_refresh_fails(&app, &bob.refresh).await;
    let r2 = tokens_of(refresh(&app, &r1.refresh).await).await;
    assert_refresh_fails(&app, &r0.refresh).await;
    assert_refresh_fails(&app, &r2.refresh).await;
}

#[rocket::async_test]
async fn tokens_of_disabled_users_and_clients_introspect_inactive() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let secret = add_client(&app, "api", &["orders"]).await;
    let cron_secret = add_client(&app, "cron", &["orders"]).await;
    let session = login(&app, "alice").await;
    let response = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id=cron&client_secret={}",
            urlencode(&cron_secret)
        ))
        .await;
    let body: Value = response.into_json().await.unwrap();
    let cron_token = body["access_token"].as_str().unwrap().to_string();
    let client = ("api", secret.as_str());
    assert_eq!(
        introspect(&app, client, &session.access).await["active"],
        true
    );
    assert_eq!(introspect(&app, client, &cron_token).await["active"], true);

    let store = &app.app().store;
    let now = stamp::clock::now();
    store.set_disabled("alice", true, now, None).await.unwrap();
    store
        .set_client_disabled("cron", true, now, None)
        .await
        .unwrap();
    assert_eq!(
        introspect(&app, client, &session.access).await["active"],
        false
    );
    assert_eq!(
        introspect(&app, client, &session.refresh).await["active"],
        false
    );
    assert_eq!(introspect(&app, client, &cron_token).await["active"], false);
}

#[rocket::async_test]
async fn expired_sessions_and_denylist_entries_are_pruned() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let kept = login(&app, "alice").await;
    let logged_out = login(&app, "alice").await;
    logout(&app, Some(&logged_out.refresh), Some(&logged_out.access)).await;
    let store = &app.app().store;
    let now = stamp::clock::now();

    assert_eq!(
        store.prune_expired(now).await.unwrap(),
        0,
        "nothing has expired yet"
    );
    // 91 days on: every family is past its absolute lifetime, every access token expired.
    let removed = store.prune_expired(now + 91 * 86_400).await.unwrap();
    assert_eq!(
        removed,
        2 + 2 + 1,
        "two tokens, two families, one denylist entry"
    );
    assert_refresh_fails(&app, &kept.refresh).await;
}

#[rocket::async_test]
async fn bad_input_to_session_endpoints_is_a_json_client_error() {
    let app = TestApp::spawn().await;
    let secret = add_client(&app, "api", &[]).await;
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let json = app
            .client
            .post(path)
            .header(ContentType::JSON)
            .body(r#"{"token":"x"}"#)
            .dispatch()
            .await;
        assert_oauth_error(json, Status::UnsupportedMediaType, "invalid_request").await;
        let big = app
            .client
            .post(path)
            .header(ContentType::Form)
            .body(format!(
                "client_id=api&client_secret={}&token={}",
                urlencode(&secret),
                "x".repeat(64 * 1024)
            ))
            .dispatch()
            .await;
        assert_oauth_error(big, Status::PayloadTooLarge, "invalid_request").await;
    }
    let cases: &[(&str, Status)] = &[
        ("{not json", Status::BadRequest),
        (r#"{"refresh_token":7}"#, Status::UnprocessableEntity),
        (r#"{"other":"x"}"#, Status::UnprocessableEntity),
    ];
    for (body, status) in cases {
        let response = app
            .client
            .post("/logout")
            .header(ContentType::JSON)
            .body(*body)
            .dispatch()
            .await;
        assert_oauth_error(response, *status, "invalid_request").await;
    }
    let bad_grant = app
        .token_form("grant_type=refresh_token&refresh_token=%ZZ")
        .await;
    assert_eq!(bad_grant.status(), Status::BadRequest);
    let plain = app
        .client
        .post("/logout")
        .header(ContentType::Plain)
        .body("refresh_token=x")
        .dispatch()
        .await;
    assert_oauth_error(plain, Status::BadRequest, "invalid_request").await;
}

#[rocket::async_test]
async fn refresh_tokens_expire_and_no_refresh_outlives_the_family() {
    use stamp::store::RefreshOutcome;
    use stamp::tokens::refresh::{RefreshToken, Rejection, TokenHash};

    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let session = login(&app, "alice").await;
    let store = &app.app().store;
    let policy = app.app().config.refresh;
    let start = stamp::clock::now();
    let day = 86_400;

    // A token unused for longer than refresh_token_ttl is expired (and nothing is revoked).
    let late = store
        .refresh(
            &TokenHash::of(&session.refresh),
            &RefreshToken::generate().hash(),
            &policy,
            start + 15 * day,
        )
        .await
        .unwrap();
    assert!(
        matches!(late, RefreshOutcome::Rejected(Rejection::Expired)),
        "{late:?}"
    );

    // Refreshing every 13 days keeps going, but never past the family's 90 days.
    let mut current = RefreshToken::generate();
    let mut presented = TokenHash::of(&session.refresh);
    let mut now = start;
    let mut last_expiry = 0;
    loop {
        now += 13 * day;
        match store
            .refresh(&presented, &current.hash(), &policy, now)
            .await
            .unwrap()
        {
            RefreshOutcome::Issued {
                expires_at, family, ..
            } => {
                assert!(expires_at <= family.expires_at);
                assert_eq!(family.expires_at, family.created_at + 90 * day);
                last_expiry = expires_at;
                presented = current.hash();
                current = RefreshToken::generate();
            }
            RefreshOutcome::Rejected(why) => {
                assert_eq!(why, Rejection::Expired);
                break;
            }
        }
    }
    assert!(now >= start + 90 * day && last_expiry <= start + 90 * day);
}
