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

/// An audit entry as the checks compare it: actor, action, target.
type Entry = (String, &'static str, Option<String>);

fn entry(actor: &str, action: &'static str, target: Option<&str>) -> Entry {
    (actor.to_string(), action, target.map(str::to_string))
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
    let root = app
        .app()
        .store
        .user_by_username("root")
        .await
        .unwrap()
        .unwrap();
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

    // Sign-up: the new user creates themselves and is logged in.
    let signup = app
        .client
        .post("/signup")
        .header(ContentType::JSON)
        .body(json!({"username": "sam", "password": PASSWORD}).to_string())
        .dispatch()
        .await;
    assert_eq!(signup.status(), Status::Created);
    let sam = app
        .app()
        .store
        .user_by_username("sam")
        .await
        .unwrap()
        .unwrap();
    let sam_actor = format!("user:{}", sam.id);
    expected.push(entry(&sam_actor, "users.signup", Some(&sam.id)));
    expected.push(entry(&sam_actor, "login.success", Some(&sam.id)));

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
            let action = expected
                .iter()
                .find(|(_, a, _)| *a == e.action)
                .map_or("unexpected", |(_, a, _)| *a);
            (e.actor.clone(), action, e.target.clone())
        })
        .collect();
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
    let mut expected = Vec::new();

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
            let action = expected
                .iter()
                .find(|(_, a, _)| e["action"] == *a)
                .map_or("unexpected", |(_, a, _)| *a);
            let target = e["target"].as_str().map(str::to_string);
            (
                e["actor"].as_str().unwrap_or("?").to_string(),
                action,
                target,
            )
        })
        .collect();
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
