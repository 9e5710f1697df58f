//! The admin API: authentication (401/403), key listing, rotation, revocation, audit.

use rocket::http::{Method, Status};
use secrecy::ExposeSecret;
use serde_json::Value;
use stamp::keys::Alg;
use stamp::tokens::Subject;

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, no_waits};

#[rocket::async_test]
async fn admin_api_needs_a_bearer_token() {
    let app = TestApp::spawn().await;
    let response = app.client.get("/admin/keys").dispatch().await;
    let challenge = response
        .headers()
        .get_one("WWW-Authenticate")
        .map(String::from);
    assert_oauth_error(response, Status::Unauthorized, "invalid_request").await;
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));

    let garbage = app
        .admin_call(Method::Get, "/admin/keys", "not.a.token", None)
        .await;
    let challenge = garbage
        .headers()
        .get_one("WWW-Authenticate")
        .unwrap()
        .to_string();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_oauth_error(garbage, Status::Unauthorized, "invalid_token").await;
}

#[rocket::async_test]
async fn a_valid_token_without_the_admin_role_gets_403() {
    let app = TestApp::spawn().await;
    app.add_user("user", PASSWORD, &["ops"]).await;
    let token = app.login("user", PASSWORD).await;
    for (method, path) in [
        (Method::Get, "/admin/keys"),
        (Method::Post, "/admin/keys/rotate"),
    ] {
        let response = app.admin_call(method, path, &token, None).await;
        let challenge = response
            .headers()
            .get_one("WWW-Authenticate")
            .unwrap()
            .to_string();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        assert_oauth_error(response, Status::Forbidden, "insufficient_scope").await;
    }
}

#[rocket::async_test]
async fn expired_and_foreign_tokens_get_401() {
    let app = TestApp::spawn().await;
    let subject = Subject {
        sub: "u".into(),
        client_id: "stamp".into(),
        scope: vec![],
        roles: vec!["admin".into()],

        ver: None,
    };
    let keys = app.app().keys.current();
    let old = app
        .app()
        .auth
        .tokens()
        .issue(&keys, subject.clone(), stamp::clock::now() - 7200)
        .unwrap();
    let expired = app
        .admin_call(
            Method::Get,
            "/admin/keys",
            old.access_token.expose_secret(),
            None,
        )
        .await;
    assert_oauth_error(expired, Status::Unauthorized, "invalid_token").await;

    let other = TestApp::spawn().await;
    let foreign = other
        .app()
        .auth
        .tokens()
        .issue(&other.app().keys.current(), subject, stamp::clock::now())
        .unwrap();
    let response = app
        .admin_call(
            Method::Get,
            "/admin/keys",
            foreign.access_token.expose_secret(),
            None,
        )
        .await;
    assert_oauth_error(response, Status::Unauthorized, "invalid_token").await;
}

#[rocket::async_test]
async fn key_list_shows_states_and_times_but_no_key_material() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let response = app
        .admin_call(Method::Get, "/admin/keys", &token, None)
        .await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let states: Vec<&str> = keys.iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"active") && states.contains(&"next"));
    for key in keys {
        assert!(key["kid"].is_string() && key["alg"] == "ES256" && key["created_at"].is_i64());
        for private in ["d", "pem", "private", "x", "n"] {
            assert!(key.get(private).is_none(), "{private} in {key}");
        }
    }
}

#[rocket::async_test]
async fn rotation_before_the_next_key_is_cached_everywhere_is_refused_unless_forced() {
    let app = TestApp::spawn().await; // jwks_max_age 300 + leeway 60
    let token = app.admin_token().await;
    let next = app
        .app()
        .keys
        .current()
        .manifest()
        .keys
        .iter()
        .find(|k| k.state == stamp::keys::KeyState::Next)
        .unwrap()
        .kid
        .clone();

    let early = app
        .admin_call(Method::Post, "/admin/keys/rotate", &token, None)
        .await;
    let retry_after: i64 = early
        .headers()
        .get_one("Retry-After")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (300..=360).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let body = assert_oauth_error(early, Status::Conflict, "rotation_too_early").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("force")
    );

    let forced = app
        .admin_call(
            Method::Post,
            "/admin/keys/rotate",
            &token,
            Some(r#"{"force":true}"#),
        )
        .await;
    assert_eq!(forced.status(), Status::Ok);
    assert_eq!(
        app.active_kid(Alg::Es256),
        next,
        "the pre-published key was promoted"
    );
}

#[rocket::async_test]
async fn rotate_rejects_bad_bodies() {
    let app = TestApp::spawn_with(no_waits).await;
    let token = app.admin_token().await;
    let cases: &[(&str, Status)] = &[
        (r#"{"alg":"HS256"}"#, Status::UnprocessableEntity),
        (r#"{"alg":"none"}"#, Status::UnprocessableEntity),
        (r#"{"force":"yes"}"#, Status::UnprocessableEntity),
        (r#"{"unknown":1}"#, Status::UnprocessableEntity),
        ("{nope", Status::BadRequest),
    ];
    let before = app.app().keys.current().manifest().generation;
    for (body, status) in cases {
        let response = app
            .admin_call(Method::Post, "/admin/keys/rotate", &token, Some(body))
            .await;
        assert_eq!(response.status(), *status, "{body}");
        assert_oauth_error(response, *status, "invalid_request").await;
    }
    let big = format!(r#"{{"alg":"{}"}}"#, "x".repeat(8192));
    let response = app
        .admin_call(Method::Post, "/admin/keys/rotate", &token, Some(&big))
        .await;
    assert_oauth_error(response, Status::PayloadTooLarge, "invalid_request").await;
    assert_eq!(
        app.app().keys.current().manifest().generation,
        before,
        "nothing changed"
    );
}

#[rocket::async_test]
async fn revoking_a_compromised_key_unpublishes_it_and_hands_over_at_once() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let compromised = app.active_kid(Alg::Es256);
    app.add_user("user", PASSWORD, &[]).await;
    let victim_token = app.login("user", PASSWORD).await;
    assert!(app.verify_with_jwks(&victim_token).await.is_ok());

    let path = format!("/admin/keys/{compromised}/revoke");
    let response = app.admin_call(Method::Post, &path, &token, None).await;
    assert_eq!(response.status(), Status::Ok);

    assert!(
        !app.published_kids().await.contains(&compromised),
        "out of the JWKS at once"
    );
    let err = app.verify_with_jwks(&victim_token).await.unwrap_err();
    assert!(err.contains("not published"), "{err}");
    let new_active = app.active_kid(Alg::Es256);
    assert_ne!(new_active, compromised);
    let fresh = app.login("user", PASSWORD).await;
    assert!(app.verify_with_jwks(&fresh).await.is_ok());
    assert_eq!(
        app.app().keys.current().keys().len(),
        2,
        "new active and a fresh next"
    );

    // The admin's own token was signed by the revoked key too: it no longer works.
    let again = app.admin_call(Method::Post, &path, &token, None).await;
    assert_oauth_error(again, Status::Unauthorized, "invalid_token").await;
    let token = app.login("root", PASSWORD).await;
    let again = app.admin_call(Method::Post, &path, &token, None).await;
    assert_oauth_error(again, Status::Conflict, "invalid_request").await;
    let unknown = app
        .admin_call(Method::Post, "/admin/keys/AAAA/revoke", &token, None)
        .await;
    assert_oauth_error(unknown, Status::NotFound, "not_found").await;
    assert!(
        !std::fs::exists(app.keys_dir().join(format!("{compromised}.pem"))).unwrap(),
        "private key deleted"
    );
}

#[rocket::async_test]
async fn a_new_algorithm_is_published_before_it_signs() {
    // The upkeep would activate the published key on its own once it may (no wait here); an
    // hour between rounds leaves that to the second call.
    let app = TestApp::spawn_with(|f| {
        no_waits(f).merge(rocket::figment::providers::Serialized::global(
            "key_poll_interval",
            3600,
        ))
    })
    .await;
    let token = app.admin_token().await;
    let first = app
        .admin_call(
            Method::Post,
            "/admin/keys/rotate",
            &token,
            Some(r#"{"alg":"RS256"}"#),
        )
        .await;
    assert_eq!(first.status(), Status::Ok);
    let set = app.app().keys.current();
    assert!(set.active(Alg::Rs256).is_none(), "published only");
    let rsa_next = set
        .manifest()
        .keys
        .iter()
        .find(|k| k.alg == Alg::Rs256)
        .unwrap()
        .kid
        .clone();
    assert!(app.published_kids().await.contains(&rsa_next));

    let second = app
        .admin_call(
            Method::Post,
            "/admin/keys/rotate",
            &token,
            Some(r#"{"alg":"RS256"}"#),
        )
        .await;
    assert_eq!(second.status(), Status::Ok);
    assert_eq!(app.active_kid(Alg::Rs256), rsa_next);
    assert!(
        app.app().keys.current().active(Alg::Es256).is_some(),
        "ES256 keeps its active key"
    );
}

#[rocket::async_test]
async fn admin_actions_are_audited() {
    let app = TestApp::spawn_with(no_waits).await;
    let root = app.add_user("root", PASSWORD, &["admin"]).await;
    let token = app.login("root", PASSWORD).await;
    let rotated = app
        .admin_call(Method::Post, "/admin/keys/rotate", &token, None)
        .await;
    assert_eq!(rotated.status(), Status::Ok);
    let active = app.active_kid(Alg::Es256);
    let response = app
        .admin_call(Method::Get, "/admin/audit", &token, None)
        .await;
    assert_eq!(response.status(), Status::Ok);
    let events: Value = response.into_json().await.unwrap();
    let event = &events[0];
    assert_eq!(event["actor"], format!("user:{}", root.id));
    assert_eq!(event["action"], "keys.rotate");
    assert_eq!(event["target"], active);
    assert!(event["at"].as_i64().unwrap() > 0);

    for bad in ["-1", "0", "abc", "1001"] {
        let response = app
            .admin_call(
                Method::Get,
                &format!("/admin/audit?limit={bad}"),
                &token,
                None,
            )
            .await;
        assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    }
    let one = app
        .admin_call(Method::Get, "/admin/audit?limit=1", &token, None)
        .await;
    let events: Value = one.into_json().await.unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1);
}

#[rocket::async_test]
async fn a_logged_out_or_disabled_admin_loses_the_admin_api_at_once() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let ok = app
        .admin_call(Method::Get, "/admin/keys", &token, None)
        .await;
    assert_eq!(ok.status(), Status::Ok);

    // Denylisted (what logout does): offline verifiers still accept it until exp; the admin API
    // does not.
    let claims = app.verify_with_jwks(&token).await.unwrap();
    let now = stamp::clock::now();
    app.app()
        .store
        .deny_access_token(
            claims["jti"].as_str().unwrap(),
            claims["exp"].as_i64().unwrap(),
            now,
        )
        .await
        .unwrap();
    let denied = app
        .admin_call(Method::Get, "/admin/keys", &token, None)
        .await;
    let body = assert_oauth_error(denied, Status::Unauthorized, "invalid_token").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );

    let fresh = app.login("root", PASSWORD).await;
    app.app()
        .store
        .set_disabled("root", true, now)
        .await
        .unwrap();
    let disabled = app
        .admin_call(Method::Get, "/admin/keys", &fresh, None)
        .await;
    assert_oauth_error(disabled, Status::Unauthorized, "invalid_token").await;
}

#[rocket::async_test]
async fn a_service_client_with_the_admin_scope_can_rotate() {
    use stamp::auth::ClientSecret;
    use stamp::store::{ClientId, NewClient, Scope};

    let app = TestApp::spawn_with(no_waits).await;
    let add = |id: &'static str, scopes: &'static [&'static str]| {
        let secret = ClientSecret::generate();
        let client = NewClient {
            id: ClientId::parse(id).unwrap(),
            secret_hash: Some(secret.hash()),
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            alg: None,
            grants: stamp::store::GrantType::defaults(false),
            redirect_uris: Vec::new(),
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
        };
        (client, secret)
    };
    let mut tokens = Vec::new();
    for (id, scopes) in [("cron", &["admin"][..]), ("reporting", &["read"][..])] {
        let (client, secret) = add(id, scopes);
        app.app()
            .store
            .create_client(client, stamp::clock::now())
            .await
            .unwrap();
        let response = app
            .token_form(&format!(
                "grant_type=client_credentials&client_id={id}&client_secret={}",
                crate::helpers::urlencode(secret.expose())
            ))
            .await;
        assert_eq!(response.status(), Status::Ok, "client {id}");
        let body: Value = response.into_json().await.unwrap();
        tokens.push(body["access_token"].as_str().unwrap().to_string());
    }
    let rotated = app
        .admin_call(Method::Post, "/admin/keys/rotate", &tokens[0], None)
        .await;
    assert_eq!(rotated.status(), Status::Ok);
    let audit = app.app().store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].actor, "client:cron");

    let refused = app
        .admin_call(Method::Post, "/admin/keys/rotate", &tokens[1], None)
        .await;
    assert_oauth_error(refused, Status::Forbidden, "insufficient_scope").await;

    app.app()
        .store
        .set_client_disabled("cron", true, stamp::clock::now())
        .await
        .unwrap();
    let disabled = app
        .admin_call(Method::Get, "/admin/keys", &tokens[0], None)
        .await;
    assert_oauth_error(disabled, Status::Unauthorized, "invalid_token").await;
}
