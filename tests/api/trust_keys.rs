//! Key safety edges (issue 10, point 8): a key never signs before it has been published, keys are
//! made at start or by `clients add` and never on a request, a lost manifest stops start-up, an
//! emergency revocation from the CLI reaches a running server at once, and what interrupted
//! commits leave behind is removed at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::Value;
use stamp::clock::Clock;
use stamp::keys::{Alg, FileKeyStore, KeyManager, KeyState, RotateOptions};

use crate::cli::stamp;
use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, figment_in, no_waits};

/// The defaults' pre-publication wait: `jwks_max_age` (300) plus `rotation_leeway` (60).
const PUBLISHED_LONG_ENOUGH: i64 = 300 + 60;

/// The issuer on `dir`'s state, reading the time from `clock`.
async fn start_with_clock(
    dir: &Path,
    clock: &Clock,
    tweak: impl FnOnce(Figment) -> Figment,
) -> Client {
    let rocket = stamp::build_with_clock(tweak(figment_in(dir)), clock.clone())
        .await
        .expect("issuer builds");
    Client::tracked(rocket).await.expect("valid rocket")
}

/// The kid of `alg`'s key in `state`, if the current key set has one.
fn kid_in_state(app: &TestApp, alg: Alg, state: KeyState) -> Option<String> {
    app.app()
        .keys
        .current()
        .manifest()
        .keys
        .iter()
        .find(|k| k.alg == alg && k.state == state)
        .map(|k| k.kid.clone())
}

/// The generation of the manifest on disk.
fn stored_generation(app: &TestApp) -> u64 {
    let text = std::fs::read_to_string(app.keys_dir().join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["generation"].as_u64().unwrap()
}

/// Output of the CLI as text.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `grant_type=client_credentials` with Basic authentication.
async fn client_token<'a>(app: &'a TestApp, id: &str, secret: &str) -> LocalResponse<'a> {
    let basic = STANDARD.encode(format!("{id}:{secret}"));
    app.client
        .post("/oauth/token")
        .header(ContentType::Form)
        .header(Header::new("Authorization", format!("Basic {basic}")))
        .body("grant_type=client_credentials")
        .dispatch()
        .await
}

fn header_of(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).unwrap()
}

#[rocket::async_test]
async fn a_changed_signing_alg_publishes_a_next_key_that_signs_only_after_promotion() {
    let es = TestApp::spawn().await;
    es.add_user("alice", PASSWORD, &[]).await;
    let es_active = es.active_kid(Alg::Es256);
    let TestApp { client, dir } = es;
    drop(client);

    let clock = Clock::manual(stamp::clock::now());
    let client = start_with_clock(dir.path(), &clock, |f| {
        f.merge(Serialized::global("signing_alg", "RS256"))
    })
    .await;
    let app = TestApp { client, dir };
    assert!(
        kid_in_state(&app, Alg::Rs256, KeyState::Active).is_none(),
        "no RS256 key may sign before caches have had max-age to learn it"
    );
    let rs_next = kid_in_state(&app, Alg::Rs256, KeyState::Next).expect("an RS256 next key");
    assert!(app.published_kids().await.contains(&rs_next));

    // Meanwhile the algorithm that has been signing keeps signing: no login is refused.
    let token = app.login("alice", PASSWORD).await;
    assert_eq!(header_of(&token).alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header_of(&token).kid.as_deref(), Some(es_active.as_str()));
    assert!(app.verify_with_jwks(&token).await.is_ok());

    clock.advance(PUBLISHED_LONG_ENOUGH - 1);
    app.app().keys.tick(clock.now()).await.unwrap();
    assert!(kid_in_state(&app, Alg::Rs256, KeyState::Active).is_none());

    // Published long enough: the upkeep promotes it (schedule off: enabling asked for it).
    clock.advance(1);
    app.app().keys.tick(clock.now()).await.unwrap();
    assert_eq!(app.active_kid(Alg::Rs256), rs_next);
    let token = app.login("alice", PASSWORD).await;
    assert_eq!(header_of(&token).alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header_of(&token).kid.as_deref(), Some(rs_next.as_str()));
    assert!(app.verify_with_jwks(&token).await.is_ok());
}

#[rocket::async_test]
async fn clients_add_publishes_the_key_of_its_algorithm_and_token_requests_make_none() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(stamp::clock::now());
    let client = start_with_clock(dir.path(), &clock, |f| f).await;
    let app = TestApp { client, dir };

    let add = stamp(
        &app.dir,
        &["clients", "add", "legacy", "--alg", "RS256"],
        "",
        &[],
    );
    assert!(add.status.success(), "{}", lossy(&add.stderr));
    let secret = lossy(&add.stdout).trim().to_string();
    app.app().keys.reload_if_changed().await.unwrap();
    let rs_next =
        kid_in_state(&app, Alg::Rs256, KeyState::Next).expect("clients add published an RS256 key");
    assert!(kid_in_state(&app, Alg::Rs256, KeyState::Active).is_none());
    assert!(app.published_kids().await.contains(&rs_next));

    // A token request does not make a key: it is refused until the published key may sign.
    let generation = stored_generation(&app);
    let early = client_token(&app, "legacy", &secret).await;
    let retry_after: i64 = early
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(
        (1..=PUBLISHED_LONG_ENOUGH + 60).contains(&retry_after),
        "{retry_after}"
    );
    assert_oauth_error(early, Status::ServiceUnavailable, "temporarily_unavailable").await;
    assert_eq!(stored_generation(&app), generation, "no key was made");
    assert_eq!(app.app().keys.current().manifest().generation, generation);

    clock.advance(retry_after);
    app.app().keys.tick(clock.now()).await.unwrap();
    assert_eq!(app.active_kid(Alg::Rs256), rs_next);
    let generation = stored_generation(&app);
    let response = client_token(&app, "legacy", &secret).await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(header_of(token).alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header_of(token).kid.as_deref(), Some(rs_next.as_str()));
    assert!(app.verify_with_jwks(token).await.is_ok());
    assert_eq!(stored_generation(&app), generation, "no key was made");
}

#[rocket::async_test]
async fn start_is_refused_when_the_manifest_is_gone_but_key_files_remain() {
    let app = TestApp::spawn().await;
    let kid = app.active_kid(Alg::Es256);
    let TestApp { client, dir } = app;
    drop(client);
    let keys = dir.path().join("keys");
    std::fs::remove_file(keys.join("manifest.json")).unwrap();

    let err = stamp::build(figment_in(dir.path()))
        .await
        .expect_err("start-up must be refused");
    let message = err.to_string();
    assert!(message.contains(&format!("{kid}.pem")), "{message}");
    assert!(message.contains("manifest.json"), "{message}");
    let list = stamp(&dir, &["keys", "list"], "", &[]);
    assert!(!list.status.success(), "the CLI refuses too");
    assert!(lossy(&list.stderr).contains(&format!("{kid}.pem")));

    assert!(
        keys.join(format!("{kid}.pem")).exists(),
        "the old key is kept"
    );
    assert!(
        !keys.join("manifest.json").exists(),
        "no new key set was started over it"
    );
}

#[rocket::async_test]
async fn a_cli_revocation_reaches_the_running_server_within_a_second() {
    // The upkeep's polling would take an hour: only the store watch can be this quick.
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("key_poll_interval", 3600))).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let compromised = app.active_kid(Alg::Es256);

    let revoke = stamp(&app.dir, &["keys", "revoke", &compromised], "", &[]);
    assert!(revoke.status.success(), "{}", lossy(&revoke.stderr));
    let started = stamp::clock::instant();
    while app.published_kids().await.contains(&compromised) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the server still publishes the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(app.active_kid(Alg::Es256), compromised);
    let token = app.login("alice", PASSWORD).await;
    assert_ne!(
        header_of(&token).kid.as_deref(),
        Some(compromised.as_str()),
        "the revoked key signs nothing more"
    );
    assert!(app.verify_with_jwks(&token).await.is_ok());
}

#[rocket::async_test]
async fn leftovers_of_interrupted_commits_are_removed_at_start() {
    let app = TestApp::spawn_with(no_waits).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let keys = app.keys_dir();
    let before = app.app().keys.current().manifest().clone();
    let named: Vec<String> = before
        .keys
        .iter()
        .map(|k| format!("{}.pem", k.kid))
        .collect();

    // A rotation that crashes after writing its new key file, before the manifest names it.
    let store = Arc::new(FileKeyStore::open(&keys).unwrap().fail_after_writes(1));
    let lifecycle = app.app().keys.lifecycle();
    let crashing = KeyManager::open(store, Alg::Es256, lifecycle, stamp::clock::now())
        .await
        .unwrap();
    let options = RotateOptions {
        alg: Alg::Es256,
        force: true,
    };
    assert!(crashing.rotate(options, stamp::clock::now()).await.is_err());
    let files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let orphan = files()
        .into_iter()
        .find(|name| name.ends_with(".pem") && !named.contains(name))
        .expect("the crash left an unpublished private key");
    // A crash inside a write leaves its temporary file.
    let temp_key = format!(".{orphan}.tmp-999999");
    std::fs::write(keys.join(&temp_key), "partial").unwrap();
    std::fs::write(keys.join(".manifest.json.tmp-999999"), "{").unwrap();
    std::fs::write(keys.join("backup.pem"), "the operator's, not the store's").unwrap();

    drop(crashing);
    let TestApp { client, dir } = app;
    drop(client);
    let app = TestApp {
        client: TestApp::start(dir.path(), no_waits).await,
        dir,
    };
    let left = files();
    for gone in [&orphan, &temp_key, &".manifest.json.tmp-999999".to_string()] {
        assert!(!left.contains(gone), "{gone} is still there: {left:?}");
    }
    for kept in named.iter().chain([&"backup.pem".to_string()]) {
        assert!(left.contains(kept), "{kept} was removed: {left:?}");
    }
    assert_eq!(app.app().keys.current().manifest(), &before);
    let token = app.login("alice", PASSWORD).await;
    assert!(app.verify_with_jwks(&token).await.is_ok());
}
