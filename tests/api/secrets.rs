//! Secrets cannot print: the `Debug` of every value that holds a live token, a password or the
//! key-encryption key hides it, while the token response still carries the tokens on the wire.

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use secrecy::{ExposeSecret, SecretString};
use stamp::auth::RefreshRequest;
use stamp::config::Config;
use stamp::routes::TokenResponse;
use stamp::tokens::Subject;

use crate::helpers::TestApp;

const REFRESH: &str = "a-refresh-token-that-must-never-print";
const DB_PASSWORD: &str = "hunter2-db-password";
const QUERY_PASSWORD: &str = "swordfish-query-password";
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[rocket::async_test]
async fn tokens_do_not_print_but_still_reach_the_wire() {
    let app = TestApp::spawn().await;
    let subject = Subject {
        sub: "u".into(),
        client_id: "stamp".into(),
        scope: vec![],
        roles: vec![],

        ver: None,
    };
    let issued = app
        .app()
        .auth
        .tokens()
        .issue(&app.app().keys.current(), subject, stamp::clock::now())
        .unwrap();
    let access = issued.access_token.expose_secret().to_string();
    let signature = access.rsplit('.').next().unwrap().to_string();
    let request = RefreshRequest {
        refresh_token: SecretString::from(REFRESH),
        scope: Some("openid"),
        client: stamp::auth::PresentedClient::Public("stamp".into()),
        resource: None,
    };
    let response = TokenResponse {
        refresh_token: Some(SecretString::from(REFRESH)),
        refresh_expires_in: Some(60),
        ..TokenResponse::from(issued.clone())
    };

    for shown in [
        format!("{issued:?}"),
        format!("{request:?}"),
        format!("{response:?}"),
    ] {
        assert!(!shown.contains(&signature), "access token printed: {shown}");
        assert!(!shown.contains(REFRESH), "refresh token printed: {shown}");
    }
    let body = serde_json::to_value(&response).unwrap();
    assert_eq!(body["access_token"], access.as_str());
    assert_eq!(body["refresh_token"], REFRESH);
    assert_eq!(body["token_type"], "Bearer");
}

#[test]
fn the_config_does_not_print_the_database_password_or_the_kek() {
    let figment = Figment::new()
        .merge(Serialized::global(
            "database_url",
            format!("postgres://stamp:{DB_PASSWORD}@db/stamp?password={QUERY_PASSWORD}"),
        ))
        .merge(Serialized::global("key_store", "database"))
        .merge(Serialized::global("key_encryption_key", KEK));
    let config = Config::from_figment(&figment).unwrap();

    let shown = format!("{config:?}");
    assert!(!shown.contains(DB_PASSWORD), "{shown}");
    assert!(!shown.contains(QUERY_PASSWORD), "{shown}");
    assert!(!shown.contains(KEK), "{shown}");
    assert!(shown.contains("postgres://stamp:***@db/stamp"), "{shown}");
}
