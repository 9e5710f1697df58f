//! The complete audit trail (issue 11 §6): every state change performed once through the admin
//! API and once through the CLI, each found exactly once in the audit log, in order, with the
//! right actor and target; logins (successful and failed) with the caller's address and never a
//! password.

use std::path::Path;

use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Method, Status};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, run_stamp, text};

const NEW_PASSWORD: &str = "plum violin orbit quartz 42";
const OWN_PASSWORD: &str = "ferry lantern meadow copper 77";

/// Every action the audit log knows (docs/accounts.md, "Audit").
const ACTIONS: &[&str] = &[
    "users.add",
    "users.signup",
    "users.roles",
    "users.disable",
    "users.enable",
    "users.update",
    "users.delete",
    "users.password_reset",
    "users.password_change",
    "users.revoke_tokens",
    "clients.add",
    "clients.update",
    "clients.enable",
    "clients.disable",
    "clients.rotate_secret",
    "clients.delete",
    "keys.publish",
    "keys.rotate",
    "keys.revoke",
    "keys.remove",
    "login.success",
    "login.failure",
];

/// `action` as one of [`ACTIONS`], or `unknown`.
fn action_name(action: &str) -> &'static str {
    ACTIONS
        .iter()
        .find(|a| **a == action)
        .copied()
        .unwrap_or("unknown")
}

/// An audit entry as the checks compare it: actor, action, target.
type Entry = (String, &'static str, Option<String>);

fn entry(actor: &str, action: &'static str, target: Option<&str>) -> Entry {
    (actor.to_string(), action, target.map(str::to_string))
}

/// `found` without the publication of the first keys, checked here: one entry by `system`
/// naming two keys (an active and a next one). It is made at start-up and reaches the log with
/// the key store's commit (PostgreSQL) or with the first key change after it (the file store),
/// so its place in the order depends on the store.
fn without_first_publication(found: Vec<Entry>) -> Vec<Entry> {
    let (published, rest): (Vec<Entry>, Vec<Entry>) = found
        .into_iter()
        .partition(|(_, action, _)| *action == "keys.publish");
    assert_eq!(published.len(), 1, "one publication: {published:?}");
    let (actor, _, target) = &published[0];
    assert_eq!(actor, "system");
    let kids = target.as_deref().unwrap_or_default().split(' ').count();
    assert_eq!(kids, 2, "an active and a next key: {target:?}");
    rest
}

/// `method path` with the admin's token and an optional JSON body; it must succeed.
async fn admin_ok(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> Value {
    let body = (!body.is_null()).then(|| body.to_string());
    let (status, json) = app.admin_json(method, path, token, body.as_deref()).await;
    assert!(status.code < 300, "{method} {path}: {status} {json}");
    json
}

/// The kid of the first key of `keys` (a `GET /admin/keys` or `stamp keys list --json` answer)
/// in `state`.
fn kid_in(keys: &Value, state: &str) -> String {
    let list = keys.get("keys").unwrap_or(keys);
    list.as_array()
        .expect("a key list")
        .iter()
        .find(|k| k["state"] == state)
        .unwrap_or_else(|| panic!("no {state} key in {keys}"))["kid"]
        .as_str()
        .expect("kid")
        .to_string()
}

#[rocket::async_test]
async fn every_api_action_and_login_is_audited_once_with_its_actor() {
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("signup", true))).await;
    every_api_action_is_audited_once(&app).await;
}

/// Performs every audited action through the API on `app` (with sign-up on, nothing else done
/// yet) and checks the audit log: each action once, in order, with its actor and target.
pub async fn every_api_action_is_audited_once(app: &TestApp) {
    let default_client = app.app().config.default_client_id.clone();
    // The built-in client, made at start-up, is the system's doing.
    let mut expected = vec![entry("system", "clients.add", Some(&default_client))];

    let token = app.admin_token().await;
    let root = app.user("root").await;
    let admin = format!("user:{}", root.id);
    expected.push(entry(&admin, "login.success", Some(&root.id)));

    // Users.
    let ann = admin_ok(
        app,
        &token,
        Method::Post,
        "/admin/users",
        json!({"username": "ann", "password": PASSWORD, "roles": ["ops"]}),
    )
    .await;
    let ann = ann["id"].as_str().expect("id").to_string();
    let path = format!("/admin/users/{ann}");
    expected.push(entry(&admin, "users.add", Some(&ann)));
    for (change, action) in [
        (json!({"roles": ["ops", "audit"]}), "users.roles"),
        (json!({"disabled": true}), "users.disable"),
        (json!({"disabled": false}), "users.enable"),
        (json!({"roles": [], "disabled": true}), "users.update"),
        (json!({"disabled": false}), "users.enable"),
    ] {
        admin_ok(app, &token, Method::Patch, &path, change).await;
        expected.push(entry(&admin, action, Some(&ann)));
    }
    let reset = json!({ "password": NEW_PASSWORD });
    admin_ok(
        app,
        &token,
        Method::Post,
        &format!("{path}/password"),
        reset,
    )
    .await;
    expected.push(entry(&admin, "users.password_reset", Some(&ann)));
    let revoke = format!("{path}/revoke-tokens");
    admin_ok(app, &token, Method::Post, &revoke, Value::Null).await;
    expected.push(entry(&admin, "users.revoke_tokens", Some(&ann)));

    // Logins: a wrong password (the user is named, the actor is nobody yet), an unknown user,
    // then the right password.
    let failed = app
        .token_form("grant_type=password&username=ann&password=not-the-password")
        .await;
    assert_eq!(failed.status(), Status::BadRequest);
    expected.push(entry("anonymous", "login.failure", Some(&ann)));
    let unknown = app
        .token_form("grant_type=password&username=nobody&password=whatever-it-is")
        .await;
    assert_eq!(unknown.status(), Status::BadRequest);
    expected.push(entry("anonymous", "login.failure", None));
    let ann_token = app.login("ann", NEW_PASSWORD).await;
    let ann_actor = format!("user:{ann}");
    expected.push(entry(&ann_actor, "login.success", Some(&ann)));

    // The user changes their own password.
    let change = json!({"current_password": NEW_PASSWORD, "new_password": OWN_PASSWORD});
    admin_ok(app, &ann_token, Method::Post, "/account/password", change).await;
    expected.push(entry(&ann_actor, "users.password_change", Some(&ann)));
    admin_ok(app, &token, Method::Delete, &path, Value::Null).await;
    expected.push(entry(&admin, "users.delete", Some(&ann)));

    // Sign-up: the new user creates themselves (and is logged in without a password check).
    let signup = app
        .client
        .post("/signup")
        .header(ContentType::JSON)
        .body(json!({"username": "sam", "password": PASSWORD}).to_string())
        .dispatch()
        .await;
    assert_eq!(signup.status(), Status::Created);
    let sam = app.user("sam").await;
    let sam_actor = format!("user:{}", sam.id);
    expected.push(entry(&sam_actor, "users.signup", Some(&sam.id)));

    // Clients.
    let create = json!({"id": "svc", "scopes": ["read"]});
    admin_ok(app, &token, Method::Post, "/admin/clients", create).await;
    expected.push(entry(&admin, "clients.add", Some("svc")));
    for change in [
        json!({"scopes": ["read", "write"]}),
        json!({"enabled": false}),
    ] {
        admin_ok(app, &token, Method::Patch, "/admin/clients/svc", change).await;
        expected.push(entry(&admin, "clients.update", Some("svc")));
    }
    let overlap = json!({"overlap_secs": 60});
    admin_ok(
        app,
        &token,
        Method::Post,
        "/admin/clients/svc/secret",
        overlap,
    )
    .await;
    expected.push(entry(&admin, "clients.rotate_secret", Some("svc")));
    admin_ok(
        app,
        &token,
        Method::Delete,
        "/admin/clients/svc",
        Value::Null,
    )
    .await;
    expected.push(entry(&admin, "clients.delete", Some("svc")));

    // Keys: a forced rotation names the new active key; the retired one is then revoked.
    let force = json!({"force": true});
    let keys = admin_ok(app, &token, Method::Post, "/admin/keys/rotate", force).await;
    expected.push(entry(&admin, "keys.rotate", Some(&kid_in(&keys, "active"))));
    let retired = kid_in(&keys, "retired");
    let revoke = format!("/admin/keys/{retired}/revoke");
    admin_ok(app, &token, Method::Post, &revoke, Value::Null).await;
    expected.push(entry(&admin, "keys.revoke", Some(&retired)));

    let events = app.app().store.recent_audit(1_000).await.unwrap();
    let found: Vec<Entry> = events
        .iter()
        .rev()
        .map(|e| {
            let action = action_name(&e.action);
            (e.actor.clone(), action, e.target.clone())
        })
        .collect();
    let found = without_first_publication(found);
    assert_eq!(found, expected, "every action once, in order: {events:#?}");

    // Logins carry the client and the address, never a password.
    let logins: Vec<_> = events
        .iter()
        .filter(|e| e.action.starts_with("login."))
        .collect();
    for login in &logins {
        let detail = login.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("client="), "{detail}");
        assert!(detail.contains("address="), "{detail}");
    }
    let reasons: Vec<_> = logins
        .iter()
        .filter_map(|e| e.detail.as_deref())
        .filter_map(|d| d.split("reason=").nth(1))
        .collect();
    assert_eq!(reasons, ["unknown_user", "wrong_password"], "newest first");
    let all = serde_json::to_string(&events).unwrap();
    for secret in [PASSWORD, NEW_PASSWORD, OWN_PASSWORD, "not-the-password"] {
        assert!(!all.contains(secret), "a password in the audit log");
    }
}

/// `stamp ARGS` on the state in `dir` with the settings `env`; it must succeed. Returns its
/// standard output.
fn cli_ok(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> String {
    let out = run_stamp(dir, args, stdin, env);
    assert!(
        out.status.success(),
        "stamp {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn every_cli_action_is_audited_once_as_cli() {
    let dir = tempfile::tempdir().unwrap();
    every_cli_action_is_audited_once(dir.path(), &[]);
}

/// Performs every audited action with the `stamp` commands on the state in `dir` (`env`: the
/// settings of another store) and checks the audit log as `stamp audit --json` shows it.
pub fn every_cli_action_is_audited_once(dir: &Path, env: &[(&str, &str)]) {
    let run = |args: &[&str], stdin: &str| cli_ok(dir, env, args, stdin);
    let run_json =
        |args: &[&str]| -> Value { serde_json::from_str(&run(args, "")).expect("JSON output") };
    // A fresh deployment: the built-in client is the system's doing.
    run(&["init"], "");
    let mut expected = vec![entry("system", "clients.add", Some("stamp"))];

    let stdin = format!("{PASSWORD}\n");
    run(
        &["users", "add", "ann", "--role", "ops", "--password-stdin"],
        &stdin,
    );
    let ann = run_json(&["users", "show", "ann", "--json"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    expected.push(entry("cli", "users.add", Some(&ann)));
    for (args, action) in [
        (
            &["users", "roles", "ann", "ops", "audit"][..],
            "users.roles",
        ),
        (&["users", "disable", "ann"][..], "users.disable"),
        (&["users", "enable", "ann"][..], "users.enable"),
        (
            &["users", "revoke-tokens", "ann"][..],
            "users.revoke_tokens",
        ),
    ] {
        run(args, "");
        expected.push(entry("cli", action, Some(&ann)));
    }
    let stdin = format!("{NEW_PASSWORD}\n");
    run(&["users", "passwd", "ann", "--password-stdin"], &stdin);
    expected.push(entry("cli", "users.password_reset", Some(&ann)));
    run(&["users", "delete", "ann", "--yes"], "");
    expected.push(entry("cli", "users.delete", Some(&ann)));

    run(&["clients", "add", "svc", "--scope", "read"], "");
    expected.push(entry("cli", "clients.add", Some("svc")));
    for (args, action) in [
        (&["clients", "disable", "svc"][..], "clients.disable"),
        (&["clients", "enable", "svc"][..], "clients.enable"),
        (
            &["clients", "rotate-secret", "svc", "--overlap", "60"][..],
            "clients.rotate_secret",
        ),
        (&["clients", "delete", "svc", "--yes"][..], "clients.delete"),
    ] {
        run(args, "");
        expected.push(entry("cli", action, Some("svc")));
    }

    run(&["keys", "rotate", "--force"], "");
    let keys = run_json(&["keys", "list", "--json"]);
    expected.push(entry("cli", "keys.rotate", Some(&kid_in(&keys, "active"))));
    let retired = kid_in(&keys, "retired");
    run(&["keys", "revoke", &retired], "");
    expected.push(entry("cli", "keys.revoke", Some(&retired)));

    let events = run_json(&["audit", "--json", "--limit", "500"]);
    let found: Vec<Entry> = events
        .as_array()
        .expect("an array")
        .iter()
        .rev()
        .map(|e| {
            let action = action_name(e["action"].as_str().unwrap_or_default());
            let target = e["target"].as_str().map(str::to_string);
            (
                e["actor"].as_str().unwrap_or("?").to_string(),
                action,
                target,
            )
        })
        .collect();
    let found = without_first_publication(found);
    assert_eq!(found, expected, "every command once, in order: {events:#}");
    for secret in [PASSWORD, NEW_PASSWORD] {
        assert!(!events.to_string().contains(secret));
    }
}

#[rocket::async_test]
async fn a_change_whose_audit_entry_cannot_be_written_is_not_made() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let ann = app.add_user("ann", PASSWORD, &["ops"]).await;
    // Break the audit log under the running app: its next insert fails.
    let url = format!("sqlite://{}", app.dir.path().join("stamp.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away")
        .execute(&db)
        .await
        .unwrap();

    let path = format!("/admin/users/{}", ann.id);
    let change = json!({"roles": ["ops", "audit"], "disabled": true}).to_string();
    let (status, body) = app
        .admin_json(Method::Patch, &path, &token, Some(&change))
        .await;
    assert_eq!(status, Status::InternalServerError, "{body}");
    let create = json!({"id": "svc", "scopes": ["read"]}).to_string();
    let (status, _) = app
        .admin_json(Method::Post, "/admin/clients", &token, Some(&create))
        .await;
    assert_eq!(status, Status::InternalServerError);

    let after = app.app().store.user_by_id(&ann.id).await.unwrap().unwrap();
    assert_eq!(after.roles, ["ops"], "the roles did not change");
    assert!(!after.disabled, "nor the state");
    assert_eq!(after.token_version, ann.token_version);
    assert!(app.app().store.client_by_id("svc").await.unwrap().is_none());
    db.close().await;
}

/// The key-set changes in the audit log, oldest first, as (actor, action, target).
async fn key_entries(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let mut events = app.app().store.recent_audit(1_000).await.unwrap();
    events.reverse();
    events
        .into_iter()
        .filter(|e| e.action.starts_with("keys.") && e.action != "keys.publish")
        .map(|e| (e.actor, e.action, e.target))
        .collect()
}

/// Waits (bounded) until `app`'s audit log holds `count` key changes besides the first
/// publication; returns them.
async fn wait_for_key_entries(
    app: &TestApp,
    count: usize,
) -> Vec<(String, String, Option<String>)> {
    for _ in 0..100 {
        let entries = key_entries(app).await;
        if entries.len() >= count {
            return entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    key_entries(app).await
}

#[rocket::async_test]
async fn a_key_change_committed_without_its_audit_entry_is_recorded_by_the_upkeep_once() {
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("key_poll_interval", 1))).await;
    // A rotation committed by a process that died before it wrote the audit entry: the change
    // record is in the manifest only.
    let keys = &app.app().keys;
    let options = stamp::keys::RotateOptions {
        alg: stamp::keys::Alg::Es256,
        force: true,
    };
    let by = stamp::keys::ChangedBy::actor("cli");
    let set = keys
        .rotate_by(options, stamp::clock::now(), by)
        .await
        .unwrap();
    let active = set
        .active(stamp::keys::Alg::Es256)
        .unwrap()
        .meta
        .kid
        .clone();
    assert!(key_entries(&app).await.is_empty(), "not written yet");

    let entries = wait_for_key_entries(&app, 1).await;
    let rotated = ("cli".to_string(), "keys.rotate".to_string(), Some(active));
    assert_eq!(
        entries,
        std::slice::from_ref(&rotated),
        "recorded by the upkeep job"
    );
    // Offered again (every process copies the records it sees), it stays one entry.
    let store = &app.app().store;
    let current = keys.current();
    let changes = &current.manifest().changes;
    assert_eq!(store.record_key_changes(changes).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(key_entries(&app).await, [rotated]);
}

#[rocket::async_test]
async fn scheduled_rotations_and_removals_are_audited_as_the_schedule_with_the_instance() {
    let clock = stamp::clock::Clock::manual(1_800_000_000);
    let app = TestApp::spawn_on_clock(&clock, |f| {
        f.merge(Serialized::global("key_poll_interval", 1))
            .merge(Serialized::global("rotate_every", 3_600))
            .merge(Serialized::global("instance_name", "replica-7"))
    })
    .await;
    let first = app.active_kid(stamp::keys::Alg::Es256);
    clock.advance(3_600 + 1);
    let entries = wait_for_key_entries(&app, 1).await;
    let second = app.active_kid(stamp::keys::Alg::Es256);
    assert_ne!(first, second, "the schedule rotated");
    assert_eq!(
        entries,
        [("schedule".into(), "keys.rotate".into(), Some(second))]
    );
    // The retired key's tokens expire: the schedule removes it.
    clock.advance(3_600);
    let entries = wait_for_key_entries(&app, 2).await;
    let removal = entries
        .iter()
        .find(|(_, action, _)| action == "keys.remove")
        .expect("the removal is audited");
    assert_eq!(removal.0, "schedule");
    assert_eq!(removal.2.as_deref(), Some(first.as_str()));
    let events = app.app().store.recent_audit(100).await.unwrap();
    for event in events.iter().filter(|e| e.action.starts_with("keys.")) {
        let detail = event.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("instance=replica-7"), "{detail}");
    }
}

#[rocket::async_test]
async fn a_retried_rotation_with_the_same_idempotency_key_rotates_once() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let rotate = |key: &'static str| {
        app.client
            .post("/admin/keys/rotate")
            .header(rocket::http::Header::new(
                "Authorization",
                format!("Bearer {token}"),
            ))
            .header(rocket::http::Header::new("Idempotency-Key", key))
            .header(ContentType::JSON)
            .body(r#"{"force": true}"#)
            .dispatch()
    };
    let first: Value = rotate("rotation-2026-11-30")
        .await
        .into_json()
        .await
        .unwrap();
    let again = rotate("rotation-2026-11-30").await;
    assert_eq!(again.status(), Status::Ok);
    let again: Value = again.into_json().await.unwrap();
    assert_eq!(
        kid_in(&again, "active"),
        kid_in(&first, "active"),
        "no second rotation"
    );
    // The same key set (`now` and the served max-age are of the moment of each answer).
    assert_eq!(again["generation"], first["generation"]);
    assert_eq!(again["keys"], first["keys"], "the same key set");
    let other: Value = rotate("another-rotation").await.into_json().await.unwrap();
    assert_ne!(kid_in(&other, "active"), kid_in(&first, "active"));
    let rotations: Vec<_> = key_entries(&app)
        .await
        .into_iter()
        .filter(|(_, action, _)| action == "keys.rotate")
        .collect();
    assert_eq!(rotations.len(), 2, "one per idempotency key: {rotations:?}");

    let bad = rotate("with space").await;
    assert_eq!(bad.status(), Status::BadRequest);
    let body: Value = bad.into_json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}
