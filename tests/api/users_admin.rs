//! Issue 11 item 4, user management: the admin API (paged listing by name with a cursor and a
//! prefix, create, show, change roles and state, delete) and the `stamp users` commands, each
//! action audited once with its actor; usernames normalised (NFKC, lower case) everywhere.

use std::io::Read;
use std::process::Stdio;

use rocket::http::{Method, Status};
use serde_json::Value;

use crate::helpers::{
    PASSWORD, TestApp, assert_oauth_error, run_stamp, stamp_command, text, urlencode,
};

/// A password login's access and refresh tokens.
async fn login_pair(app: &TestApp, user: &str) -> (String, String) {
    let body = format!(
        "grant_type=password&username={}&password={}",
        urlencode(user),
        urlencode(PASSWORD)
    );
    let response = app.token_form(&body).await;
    assert_eq!(response.status(), Status::Ok, "login of {user}");
    let body: Value = response.into_json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// Sends an admin call and returns its status and JSON body (`null` if none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (Status, Value) {
    app.admin_json(method, path, token, body).await
}

/// Whether the gateway client's introspection finds `token` active.
async fn active(app: &TestApp, secret: &str, token: &str) -> bool {
    app.gateway_sees_active(secret, token).await
}

fn names(page: &Value) -> Vec<&str> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect()
}

#[rocket::async_test]
async fn users_are_listed_by_name_in_pages_with_a_cursor_and_a_prefix() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for name in ["ann", "amy", "al_x", "alx", "bob"] {
        app.add_user(name, PASSWORD, &[]).await;
    }
    let (status, first) = call(&app, Method::Get, "/admin/users?limit=2", &token, None).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(names(&first), ["al_x", "alx"]);
    assert_eq!(first["next"], "alx");
    let user = &first["users"][0];
    assert!(user.get("password_hash").is_none(), "{user}");
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(user["created_at_unix"].is_i64());
    assert_eq!(user["token_version"], 0);

    let (_, second) = call(
        &app,
        Method::Get,
        "/admin/users?limit=2&after=alx",
        &token,
        None,
    )
    .await;
    assert_eq!(names(&second), ["amy", "ann"]);
    let (_, last) = call(
        &app,
        Method::Get,
        "/admin/users?limit=2&after=ann",
        &token,
        None,
    )
    .await;
    assert_eq!(names(&last), ["bob", "root"]);
    assert_eq!(last["next"], Value::Null, "no page after the last");

    // The prefix is normalised like a name, and `_` is a plain character, not a wildcard.
    let (_, a) = call(&app, Method::Get, "/admin/users?prefix=A", &token, None).await;
    assert_eq!(names(&a), ["al_x", "alx", "amy", "ann"]);
    assert_eq!(a["next"], Value::Null);
    let (_, under) = call(&app, Method::Get, "/admin/users?prefix=al_", &token, None).await;
    assert_eq!(names(&under), ["al_x"]);

    for bad in ["0", "201", "x"] {
        let path = format!("/admin/users?limit={bad}");
        let response = app.admin_call(Method::Get, &path, &token, None).await;
        assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    }
}

#[rocket::async_test]
async fn users_are_created_and_shown_and_taken_names_and_unknown_ids_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let body = format!(r#"{{"username":"Carol","password":"{PASSWORD}","roles":["ops"]}}"#);
    let (status, carol) = call(&app, Method::Post, "/admin/users", &token, Some(&body)).await;
    assert_eq!(status, Status::Created);
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["roles"], serde_json::json!(["ops"]));
    assert_eq!(carol["disabled"], false);
    assert!(carol.get("password_hash").is_none());
    login_pair(&app, "carol").await;

    let taken = format!(r#"{{"username":"CAROL","password":"{PASSWORD}"}}"#);
    let response = app
        .admin_call(Method::Post, "/admin/users", &token, Some(&taken))
        .await;
    assert_oauth_error(response, Status::Conflict, "invalid_request").await;

    let path = format!("/admin/users/{}", carol["id"].as_str().unwrap());
    let (status, shown) = call(&app, Method::Get, &path, &token, None).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(shown, carol);
    for method in [Method::Get, Method::Delete] {
        let response = app
            .admin_call(method, "/admin/users/nope", &token, None)
            .await;
        assert_oauth_error(response, Status::NotFound, "not_found").await;
    }
    let response = app
        .admin_call(Method::Patch, "/admin/users/nope", &token, Some("{}"))
        .await;
    assert_oauth_error(response, Status::NotFound, "not_found").await;
}

#[rocket::async_test]
async fn callers_without_the_admin_role_are_refused() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &["ops"]).await;
    let (token, _) = login_pair(&app, "alice").await;
    let path = format!("/admin/users/{}", alice.id);
    let body = format!(r#"{{"username":"x","password":"{PASSWORD}"}}"#);
    for (method, path, body) in [
        (Method::Get, "/admin/users", None),
        (Method::Post, "/admin/users", Some(body.as_str())),
        (Method::Get, path.as_str(), None),
        (Method::Patch, path.as_str(), Some(r#"{"roles":["admin"]}"#)),
        (Method::Delete, path.as_str(), None),
    ] {
        let response = app.admin_call(method, path, &token, body).await;
        assert_eq!(response.status(), Status::Forbidden, "{method} {path}");
    }
    assert!(app.admin_audit().await.is_empty());
    let stored = app
        .app()
        .store
        .user_by_id(&alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.roles, ["ops"]);
}

#[rocket::async_test]
async fn patch_sets_roles_and_disabling_ends_tokens_while_enabling_allows_logins_again() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    let alice = app.add_user("alice", PASSWORD, &["ops"]).await;
    let (access, refresh) = login_pair(&app, "alice").await;
    let path = format!("/admin/users/{}", alice.id);

    let (status, user) = call(
        &app,
        Method::Patch,
        &path,
        &token,
        Some(r#"{"roles":["admin","ops","admin"]}"#),
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(user["roles"], serde_json::json!(["admin", "ops"]));
    assert_eq!(user["token_version"], 0, "a role change ends no session");
    assert!(active(&app, &gateway, &access).await);

    let (_, user) = call(
        &app,
        Method::Patch,
        &path,
        &token,
        Some(r#"{"disabled":true}"#),
    )
    .await;
    assert_eq!(user["disabled"], true);
    assert_eq!(user["token_version"], 1);
    assert!(!active(&app, &gateway, &access).await);
    let response = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&refresh)
        ))
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
    let response = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    assert_eq!(
        response.status(),
        Status::BadRequest,
        "a disabled user cannot log in"
    );

    let (_, user) = call(
        &app,
        Method::Patch,
        &path,
        &token,
        Some(r#"{"disabled":false}"#),
    )
    .await;
    assert_eq!(user["disabled"], false);
    assert_eq!(user["token_version"], 1);
    assert!(
        !active(&app, &gateway, &access).await,
        "old tokens stay dead"
    );
    let (fresh, _) = login_pair(&app, "alice").await;
    let (status, _) = call(&app, Method::Get, "/admin/users", &fresh, None).await;
    assert_eq!(status, Status::Ok, "the new role admits her");

    let response = app
        .admin_call(
            Method::Patch,
            &path,
            &token,
            Some(r#"{"roles":["Bad Role"]}"#),
        )
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    let response = app
        .admin_call(Method::Patch, &path, &token, Some(r#"{"password":"x"}"#))
        .await;
    assert!(response.status().code >= 400);

    let root = app.user("root").await;
    let actor = format!("user:{}", root.id);
    let expected: Vec<(String, String, Option<String>)> =
        ["users.roles", "users.disable", "users.enable"]
            .into_iter()
            .map(|a| (a.to_string(), actor.clone(), Some(alice.id.clone())))
            .collect();
    assert_eq!(app.admin_audit().await, expected, "one event per action");
}

#[rocket::async_test]
async fn deleting_a_user_ends_their_refresh_and_access_tokens() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    let bob = app.add_user("bob", PASSWORD, &["admin"]).await;
    let (access, refresh) = login_pair(&app, "bob").await;
    assert!(active(&app, &gateway, &access).await);

    let path = format!("/admin/users/{}", bob.id);
    let response = app.admin_call(Method::Delete, &path, &token, None).await;
    assert_eq!(response.status(), Status::NoContent);

    let response = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&refresh)
        ))
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_grant").await;
    assert!(!active(&app, &gateway, &access).await);
    let (status, _) = call(&app, Method::Get, "/admin/users", &access, None).await;
    assert_eq!(
        status,
        Status::Unauthorized,
        "the admin API refuses a deleted user"
    );
    let (status, _) = call(&app, Method::Get, &path, &token, None).await;
    assert_eq!(status, Status::NotFound);
    let response = app.admin_call(Method::Delete, &path, &token, None).await;
    assert_eq!(response.status(), Status::NotFound);

    let root = app.user("root").await;
    assert_eq!(
        app.admin_audit().await,
        [(
            "users.delete".to_string(),
            format!("user:{}", root.id),
            Some(bob.id)
        )]
    );
}

#[rocket::async_test]
async fn usernames_are_normalised_so_upper_case_and_fullwidth_names_log_in_as_the_same_user() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    for name in ["ALICE", "ａｌｉｃｅ", " Alice "] {
        let (access, _) = login_pair(&app, name).await;
        let claims = app.verify_with_jwks(&access).await.unwrap();
        assert_eq!(claims["sub"], alice.id, "{name}");
    }
    let token = app.admin_token().await;
    let body = format!(r#"{{"username":"ＡＬＩＣＥ","password":"{PASSWORD}"}}"#);
    let response = app
        .admin_call(Method::Post, "/admin/users", &token, Some(&body))
        .await;
    assert_eq!(response.status(), Status::Conflict);
}

fn stamp(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    let out = run_stamp(dir.path(), args, &format!("{PASSWORD}\n"), &[]);
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    out
}

fn ok(dir: &tempfile::TempDir, args: &[&str]) -> String {
    let out = stamp(dir, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn json(dir: &tempfile::TempDir, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).unwrap()
}

#[test]
fn the_users_commands_show_enable_set_roles_revoke_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    ok(
        &dir,
        &[
            "users",
            "add",
            "ＢＯＢ",
            "--role",
            "ops",
            "--password-stdin",
        ],
    );
    ok(&dir, &["users", "add", "alice", "--password-stdin"]);

    let list = json(&dir, &["users", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let table = ok(&dir, &["users", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3);
    let column = lines[0].find("id").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[column..].starts_with(|c: char| c != ' ')),
        "{table}"
    );
    assert!(
        table.contains("T") && table.contains("Z"),
        "RFC 3339 times: {table}"
    );

    let bob = json(&dir, &["users", "show", "Bob", "--json"]);
    assert_eq!(bob["roles"], serde_json::json!(["ops"]));
    assert!(bob.get("password_hash").is_none());
    assert!(ok(&dir, &["users", "show", "bob"]).contains("token version: 0"));

    ok(&dir, &["users", "roles", "bob", "admin", "ops"]);
    assert_eq!(
        json(&dir, &["users", "show", "bob", "--json"])["roles"],
        serde_json::json!(["admin", "ops"])
    );
    ok(&dir, &["users", "roles", "bob", "--clear"]);
    assert_eq!(
        json(&dir, &["users", "show", "bob", "--json"])["roles"],
        serde_json::json!([])
    );
    assert!(
        !stamp(&dir, &["users", "roles", "bob"]).status.success(),
        "roles or --clear"
    );

    ok(&dir, &["users", "disable", "bob"]);
    assert_eq!(
        json(&dir, &["users", "show", "bob", "--json"])["disabled"],
        true
    );
    ok(&dir, &["users", "enable", "bob"]);
    let shown = json(&dir, &["users", "show", "bob", "--json"]);
    assert_eq!(shown["disabled"], false);
    assert_eq!(shown["token_version"], 1);
    ok(&dir, &["users", "revoke-tokens", "bob"]);
    assert_eq!(
        json(&dir, &["users", "show", "bob", "--json"])["token_version"],
        2
    );
    ok(&dir, &["users", "passwd", "bob", "--password-stdin"]);

    let refused = stamp(&dir, &["users", "delete", "bob"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--yes"));
    ok(&dir, &["users", "delete", "BOB", "--yes"]);
    let gone = stamp(&dir, &["users", "show", "bob"]);
    assert!(!gone.status.success());
    assert!(
        text(&gone.stderr).contains("no user bob"),
        "{}",
        text(&gone.stderr)
    );
    assert!(
        !stamp(&dir, &["users", "delete", "bob", "--yes"])
            .status
            .success()
    );

    // One audit entry per change, by the CLI; reads are not audited.
    let log = json_audit(&dir);
    assert_eq!(
        log,
        [
            "users.add",
            "users.add",
            "users.roles",
            "users.roles",
            "users.disable",
            "users.enable",
            "users.revoke_tokens",
            "users.password_reset",
            "users.delete",
        ]
    );
}

/// The audit actions in `dir`'s database, oldest first, all by `cli` (but `stamp init`'s).
fn json_audit(dir: &tempfile::TempDir) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("stamp.db").display());
        let store = stamp::store::open(&url).await.unwrap();
        let mut log = store.recent_audit(100).await.unwrap();
        log.reverse();
        // Besides what `stamp init` made (the built-in client, by `system`).
        log.retain(|e| e.actor != "system");
        assert!(log.iter().all(|e| e.actor == "cli"));
        log.into_iter().map(|e| e.action).collect()
    })
}

#[test]
fn listing_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    for name in ["alice", "bob"] {
        ok(&dir, &["users", "add", name, "--password-stdin"]);
    }
    for args in [
        &["users", "list"][..],
        &["users", "list", "--json"],
        &["users", "show", "bob"],
    ] {
        let mut child = stamp_command(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command writes (it opens the database first).
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(status.success(), "{args:?}: {status} {stderr}");
    }
}
