//! The key lifecycle end to end: tokens survive rotations until they expire, keys are published
//! before they sign, ETags follow the key set, concurrent and interrupted rotations stay
//! consistent, the schedule runs, and key generation never stalls the JWKS.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rocket::figment::providers::Serialized;
use rocket::http::{Header, Method, Status};
use serde_json::Value;
use stamp::keys::{Alg, FileKeyStore, KeyManager, KeyState, RotateOptions};

use crate::helpers::{PASSWORD, TestApp, join_all, no_waits, stamp_command};

async fn etag(app: &TestApp) -> String {
    let response = app.client.get("/.well-known/jwks.json").dispatch().await;
    response.headers().get_one("ETag").unwrap().to_string()
}

#[rocket::async_test]
async fn tokens_signed_before_each_rotation_verify_until_they_expire() {
    let app = TestApp::spawn_with(no_waits).await;
    let token = app.admin_token().await;
    let mut issued = Vec::new();
    for _ in 0..3 {
        let before = app.published_kids().await;
        issued.push(app.login("root", PASSWORD).await);
        let response = app
            .admin_call(Method::Post, "/admin/keys/rotate", &token, None)
            .await;
        assert_eq!(response.status(), Status::Ok);
        let active = app.active_kid(Alg::Es256);
        assert!(
            before.contains(&active),
            "the key that became active was published before it signed"
        );
    }
    for (i, old) in issued.iter().enumerate() {
        assert!(
            app.verify_with_jwks(old).await.is_ok(),
            "token {i} still verifies after rotations"
        );
    }

    // Once the longest token lifetime has passed since retirement, retired keys leave the JWKS.
    let etag_before = etag(&app).await;
    let later = stamp::clock::now() + 900 + 1;
    assert!(app.app().keys.sweep(later).await.unwrap());
    assert_ne!(etag(&app).await, etag_before, "JWKS changed");
    let set = app.app().keys.current();
    let states: Vec<KeyState> = set.manifest().keys.iter().map(|k| k.state).collect();
    assert_eq!(
        states.iter().filter(|s| **s == KeyState::Removed).count(),
        3,
        "{states:?}"
    );
    assert_eq!(app.published_kids().await.len(), 2, "active and next only");
    assert!(
        app.verify_with_jwks(&issued[0]).await.is_err(),
        "its key is gone"
    );
}

#[rocket::async_test]
async fn retired_keys_stay_until_computed_removal_time() {
    let app =
        TestApp::spawn_with(|f| no_waits(f).merge(Serialized::global("rotation_leeway", 30))).await;
    let now = stamp::clock::now();
    let old = app.active_kid(Alg::Es256);
    app.app()
        .keys
        .rotate(
            RotateOptions {
                alg: Alg::Es256,
                force: true,
            },
            now,
        )
        .await
        .unwrap();
    let set = app.app().keys.current();
    let retired = set.manifest().keys.iter().find(|k| k.kid == old).unwrap();
    assert_eq!(retired.state, KeyState::Retired);
    assert_eq!(
        retired.remove_after,
        Some(now + 900 + 30),
        "retired_at + ttl + leeway"
    );
    assert!(
        !app.app().keys.sweep(now + 929).await.unwrap(),
        "a token may still be live"
    );
    assert!(app.published_kids().await.contains(&old));
    assert!(app.app().keys.sweep(now + 930).await.unwrap());
    assert!(!app.published_kids().await.contains(&old));
}

#[rocket::async_test]
async fn etag_changes_on_every_key_set_change_and_only_then() {
    let app = TestApp::spawn_with(no_waits).await;
    let first = etag(&app).await;
    let now = stamp::clock::now();
    app.app().keys.tick(now).await.unwrap();
    assert!(!app.app().keys.sweep(now).await.unwrap());
    assert_eq!(etag(&app).await, first, "no change, same ETag");

    let mut seen = HashSet::from([first]);
    app.app()
        .keys
        .rotate(
            RotateOptions {
                alg: Alg::Es256,
                force: false,
            },
            now,
        )
        .await
        .unwrap();
    assert!(seen.insert(etag(&app).await), "rotation");
    let kid = app.active_kid(Alg::Es256);
    app.app().keys.revoke(&kid, now).await.unwrap();
    assert!(seen.insert(etag(&app).await), "revocation");
    app.app().keys.sweep(now + 10_000).await.unwrap();
    assert!(seen.insert(etag(&app).await), "removal");
}

#[rocket::async_test]
async fn twenty_concurrent_rotations_leave_a_consistent_key_set() {
    let app = TestApp::spawn_with(no_waits).await;
    let token = app.admin_token().await;
    let calls = (0..20).map(|_| app.admin_call(Method::Post, "/admin/keys/rotate", &token, None));
    let statuses: Vec<Status> = join_all(calls).await.iter().map(|r| r.status()).collect();
    assert!(statuses.iter().all(|s| *s == Status::Ok), "{statuses:?}");

    let set = app.app().keys.current();
    let count = |state| {
        set.manifest()
            .keys
            .iter()
            .filter(|k| k.state == state)
            .count()
    };
    assert_eq!(count(KeyState::Active), 1);
    assert_eq!(count(KeyState::Next), 1);
    assert_eq!(count(KeyState::Retired), 20);
    assert_eq!(
        set.manifest().generation,
        21,
        "one bootstrap and twenty rotations"
    );
    let kids: HashSet<_> = set.manifest().keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids.len(), 22, "no duplicate entries");
    for kid in &kids {
        assert!(app.keys_dir().join(format!("{kid}.pem")).exists());
    }
    // And the stored set loads again, identical.
    let restarted = TestApp::start(app.dir.path(), no_waits).await;
    let reloaded = restarted
        .rocket()
        .state::<stamp::App>()
        .unwrap()
        .keys
        .current();
    assert_eq!(reloaded.manifest(), set.manifest());
}

#[rocket::async_test]
async fn an_interrupted_rotation_leaves_the_previous_loadable_key_set() {
    let app = TestApp::spawn_with(no_waits).await;
    let before = app.app().keys.current().manifest().clone();
    let lifecycle = app.app().keys.lifecycle();
    // Crash before the new key file, and between the key file and the manifest.
    for writes in [0, 1] {
        let store = Arc::new(
            FileKeyStore::open(app.keys_dir())
                .unwrap()
                .fail_after_writes(writes),
        );
        let manager = KeyManager::open(store, Alg::Es256, lifecycle, stamp::clock::now())
            .await
            .unwrap();
        let result = manager
            .rotate(
                RotateOptions {
                    alg: Alg::Es256,
                    force: true,
                },
                stamp::clock::now(),
            )
            .await;
        assert!(result.is_err(), "fault injected after {writes} writes");

        let clean = Arc::new(FileKeyStore::open(app.keys_dir()).unwrap());
        let reopened = KeyManager::open(clean, Alg::Es256, lifecycle, stamp::clock::now())
            .await
            .unwrap();
        assert_eq!(
            reopened.current().manifest(),
            &before,
            "the old key set, loadable"
        );
    }
}

#[test]
fn killing_the_process_mid_rotation_never_loses_a_published_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut command = stamp_command(dir.path());
        command
            .args(args)
            .env("ROCKET_SIGNING_ALG", "RS256")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    assert!(run(&["init"]).status().unwrap().success());
    let manifest_kids = || -> (Vec<(String, String)>, u64) {
        let text = std::fs::read_to_string(dir.path().join("keys/manifest.json")).unwrap();
        let m: Value = serde_json::from_str(&text).unwrap();
        let keys = m["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["kid"].as_str().unwrap().to_string(),
                    k["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (keys, m["generation"].as_u64().unwrap())
    };
    for delay_ms in [5u64, 20, 40, 80, 120, 200, 300, 500] {
        let (published_before, _) = manifest_kids();
        let mut child = run(&["keys", "rotate", "--force"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever the moment, the set loads and every key published before is still there
        // (rotation only adds keys or retires them; removal needs their tokens to have expired).
        let status = run(&["keys", "list"]).status().unwrap();
        assert!(
            status.success(),
            "key set unloadable after a kill at {delay_ms} ms"
        );
        let (after, _) = manifest_kids();
        for (kid, state) in published_before
            .iter()
            .filter(|(_, s)| s != "removed" && s != "revoked")
        {
            assert!(
                after
                    .iter()
                    .any(|(k, s)| k == kid && s != "removed" && s != "revoked"),
                "{kid} ({state}) vanished after a kill at {delay_ms} ms"
            );
            assert!(dir.path().join(format!("keys/{kid}.pem")).exists());
        }
        assert_eq!(after.iter().filter(|(_, s)| s == "active").count(), 1);
    }
}

#[rocket::async_test]
async fn the_schedule_rotates_only_when_due_and_caps_max_age() {
    let app = TestApp::spawn_with(|f| {
        f.merge(Serialized::global("rotate_every", 3600))
            .merge(Serialized::global("jwks_max_age", 300))
            .merge(Serialized::global("rotation_leeway", 60))
    })
    .await;
    let keys = &app.app().keys;
    let start = keys.current().manifest().keys[0].created_at;
    let first = app.active_kid(Alg::Es256);
    assert_eq!(keys.next_scheduled_rotation(Alg::Es256), Some(start + 3600));

    keys.tick(start + 3599).await.unwrap();
    assert_eq!(app.active_kid(Alg::Es256), first, "not due yet");
    assert_eq!(
        keys.jwks_max_age(start + 3500),
        100,
        "max-age never reaches past the promotion"
    );
    assert_eq!(keys.jwks_max_age(start), 300);

    keys.tick(start + 3600).await.unwrap();
    assert_ne!(app.active_kid(Alg::Es256), first, "rotated on schedule");
    keys.tick(start + 3601).await.unwrap();
    assert_eq!(
        keys.current().manifest().generation,
        2,
        "once, not on every tick"
    );
}

#[rocket::async_test]
async fn the_background_task_runs_the_schedule() {
    let app = TestApp::spawn_with(|f| {
        f.merge(Serialized::global("rotate_every", 2))
            .merge(Serialized::global("jwks_max_age", 1))
            .merge(Serialized::global("rotation_leeway", 0))
            .merge(Serialized::global("key_poll_interval", 1))
    })
    .await;
    let first = app.active_kid(Alg::Es256);
    let response = app.client.get("/.well-known/jwks.json").dispatch().await;
    let cc = response
        .headers()
        .get_one("Cache-Control")
        .unwrap()
        .to_string();
    let max_age: i64 = cc.trim_start_matches("public, max-age=").parse().unwrap();
    assert!(max_age <= 1, "{cc}");
    let deadline = stamp::clock::instant() + std::time::Duration::from_secs(15);
    while app.active_kid(Alg::Es256) == first {
        assert!(
            stamp::clock::instant() < deadline,
            "no scheduled rotation within 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[rocket::async_test]
async fn the_server_picks_up_a_rotation_made_by_the_cli() {
    let app = TestApp::spawn_with(no_waits).await;
    let before = app.active_kid(Alg::Es256);
    let out = stamp_command(app.dir.path())
        .args(["keys", "rotate"])
        .env("ROCKET_JWKS_MAX_AGE", "0")
        .env("ROCKET_ROTATION_LEEWAY", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(app.app().keys.reload_if_changed().await.unwrap());
    let after = app.active_kid(Alg::Es256);
    assert_ne!(after, before);
    // A change made here afterwards is based on the CLI's generation, not lost over it.
    app.app()
        .keys
        .rotate(
            RotateOptions {
                alg: Alg::Es256,
                force: true,
            },
            stamp::clock::now(),
        )
        .await
        .unwrap();
    assert_eq!(app.app().keys.current().manifest().generation, 3);
}

#[rocket::async_test]
async fn jwks_keeps_answering_while_an_rsa_4096_key_is_generated() {
    let app =
        TestApp::spawn_with(|f| no_waits(f).merge(Serialized::global("rsa_bits", 4096))).await;
    let token = app.admin_token().await;
    let done = AtomicBool::new(false);
    let rotation = async {
        let response = app
            .admin_call(
                Method::Post,
                "/admin/keys/rotate",
                &token,
                Some(r#"{"alg":"RS256"}"#),
            )
            .await;
        done.store(true, Ordering::SeqCst);
        response.status()
    };
    let etag = etag(&app).await;
    let reads = async {
        let mut served_meanwhile = 0;
        for _ in 0..50 {
            let response = app
                .client
                .get("/.well-known/jwks.json")
                .header(Header::new("If-None-Match", etag.clone()))
                .dispatch()
                .await;
            assert!(response.status() == Status::NotModified || response.status() == Status::Ok);
            if !done.load(Ordering::SeqCst) {
                served_meanwhile += 1;
            }
            tokio::task::yield_now().await;
        }
        served_meanwhile
    };
    let (status, served) = tokio::join!(rotation, reads);
    assert_eq!(status, Status::Ok);
    assert!(
        served >= 40,
        "only {served} JWKS requests answered during RSA-4096 generation"
    );
}

#[rocket::async_test]
async fn revoking_a_retired_key_only_unpublishes_it() {
    let app = TestApp::spawn_with(no_waits).await;
    let now = stamp::clock::now();
    let retired = app.active_kid(Alg::Es256);
    let keys = &app.app().keys;
    keys.rotate(
        RotateOptions {
            alg: Alg::Es256,
            force: false,
        },
        now,
    )
    .await
    .unwrap();
    let active = app.active_kid(Alg::Es256);
    let before = keys.current().manifest().keys.len();

    keys.revoke(&retired, now).await.unwrap();
    let manifest = keys.current().manifest().clone();
    assert_eq!(
        manifest.keys.len(),
        before,
        "no replacement key for a key that signs nothing"
    );
    let entry = manifest.keys.iter().find(|k| k.kid == retired).unwrap();
    assert_eq!(entry.state, KeyState::Revoked);
    assert_eq!(
        app.active_kid(Alg::Es256),
        active,
        "the active key is untouched"
    );
    assert!(!app.published_kids().await.contains(&retired));
}
