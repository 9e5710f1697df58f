//! Issue 11, item 5: client management over the admin API (`/admin/clients…`) and the CLI
//! (`stamp clients show|enable|delete|rotate-secret`, `list --json`). Secret rotation with and
//! without an overlap (on a manual clock, past the client cache's TTL), the effect of a deletion
//! on the client's grants and tokens, and one audit event per action naming its actor.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rocket::http::{ContentType, Header, Method, Status};
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, stamp_command, text};

/// `client_credentials` for `id` with `secret` (HTTP Basic): the response status.
async fn grant_status(app: &TestApp, id: &str, secret: &str) -> Status {
    let raw = format!("{id}:{secret}");
    app.client
        .post("/oauth/token")
        .header(ContentType::Form)
        .header(Header::new(
            "Authorization",
            format!("Basic {}", STANDARD.encode(raw)),
        ))
        .body("grant_type=client_credentials")
        .dispatch()
        .await
        .status()
}

/// An access token of `id` by `client_credentials`.
async fn client_token(app: &TestApp, id: &str, secret: &str) -> String {
    let response = app
        .client
        .post("/oauth/token")
        .header(ContentType::Form)
        .body(format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Whether the gateway client's introspection finds `token` active.
async fn active(app: &TestApp, secret: &str, token: &str) -> bool {
    app.gateway_sees_active(secret, token).await
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (Status, Value) {
    app.admin_json(method, path, token, body).await
}

#[rocket::async_test]
async fn the_admin_api_creates_lists_shows_changes_and_deletes_clients() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = app
        .app()
        .store
        .user_by_username("root")
        .await
        .unwrap()
        .unwrap()
        .id;
    let body = r#"{"id":"billing","scopes":["orders:read","orders:read"],"alg":"ES256"}"#;
    let (status, created) = call(&app, Method::Post, "/admin/clients", &root, Some(body)).await;
    assert_eq!(status, Status::Created);
    assert_eq!(created["id"], "billing");
    assert_eq!(created["scopes"], serde_json::json!(["orders:read"]));
    assert_eq!(created["alg"], "ES256");
    assert_eq!(created["grants"], serde_json::json!(["client_credentials"]));
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert!(created.get("secret_hash").is_none());
    assert_eq!(grant_status(&app, "billing", &secret).await, Status::Ok);

    let public = r#"{"id":"mobile","public":true,"redirect_uris":["com.example.app:/cb"]}"#;
    let (status, mobile) = call(&app, Method::Post, "/admin/clients", &root, Some(public)).await;
    assert_eq!(status, Status::Created);
    assert!(mobile.get("client_secret").is_none(), "{mobile}");
    assert_eq!(mobile["public"], true);

    let taken = app
        .admin_call(Method::Post, "/admin/clients", &root, Some(body))
        .await;
    assert_oauth_error(taken, Status::Conflict, "invalid_request").await;
    for bad in [
        r#"{"id":"x","grants":["implicit"]}"#,
        r#"{"id":"bad id!"}"#,
        r#"{"id":"x","alg":"HS256"}"#,
        r#"{"id":"x","redirect_uris":["not a uri"]}"#,
    ] {
        let response = app
            .admin_call(Method::Post, "/admin/clients", &root, Some(bad))
            .await;
        assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    }
    let unknown_field = app
        .admin_call(
            Method::Post,
            "/admin/clients",
            &root,
            Some(r#"{"id":"x","secret":"s"}"#),
        )
        .await;
    assert_eq!(unknown_field.status(), Status::UnprocessableEntity);

    let (status, list) = call(&app, Method::Get, "/admin/clients", &root, None).await;
    assert_eq!(status, Status::Ok);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"billing") && ids.contains(&"mobile"),
        "{ids:?}"
    );
    assert!(!list.to_string().contains("secret"), "{list}");

    let (status, shown) = call(&app, Method::Get, "/admin/clients/billing", &root, None).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(shown["scopes"], serde_json::json!(["orders:read"]));
    let missing = app
        .admin_call(Method::Get, "/admin/clients/nobody", &root, None)
        .await;
    assert_eq!(missing.status(), Status::NotFound);

    let patch = r#"{"scopes":["orders:write"],"enabled":false}"#;
    let (status, patched) = call(
        &app,
        Method::Patch,
        "/admin/clients/billing",
        &root,
        Some(patch),
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(patched["scopes"], serde_json::json!(["orders:write"]));
    assert_eq!(patched["disabled"], true);
    assert_eq!(
        grant_status(&app, "billing", &secret).await,
        Status::Unauthorized,
        "disabled at once in this process"
    );
    let (status, _) = call(
        &app,
        Method::Patch,
        "/admin/clients/billing",
        &root,
        Some(r#"{"enabled":true}"#),
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(grant_status(&app, "billing", &secret).await, Status::Ok);
    for bad in [r#"{"grants":["implicit"]}"#, "{}"] {
        let response = app
            .admin_call(Method::Patch, "/admin/clients/billing", &root, Some(bad))
            .await;
        assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    }
    let missing = app
        .admin_call(
            Method::Patch,
            "/admin/clients/nobody",
            &root,
            Some(r#"{"enabled":true}"#),
        )
        .await;
    assert_eq!(missing.status(), Status::NotFound);

    let public_rotation = app
        .admin_call(Method::Post, "/admin/clients/mobile/secret", &root, None)
        .await;
    assert_oauth_error(public_rotation, Status::BadRequest, "invalid_request").await;
    let too_long = app
        .admin_call(
            Method::Post,
            "/admin/clients/billing/secret",
            &root,
            Some(r#"{"overlap_secs":604801}"#),
        )
        .await;
    assert_oauth_error(too_long, Status::BadRequest, "invalid_request").await;
    let missing = app
        .admin_call(Method::Post, "/admin/clients/nobody/secret", &root, None)
        .await;
    assert_eq!(missing.status(), Status::NotFound);

    let deleted = app
        .admin_call(Method::Delete, "/admin/clients/mobile", &root, None)
        .await;
    assert_eq!(deleted.status(), Status::NoContent);
    let again = app
        .admin_call(Method::Delete, "/admin/clients/mobile", &root, None)
        .await;
    assert_eq!(again.status(), Status::NotFound);

    // A user without the admin role is refused everywhere.
    app.add_user("bob", PASSWORD, &[]).await;
    let bob = app.login("bob", PASSWORD).await;
    for (method, path, body) in [
        (Method::Get, "/admin/clients", None),
        (Method::Post, "/admin/clients", Some(r#"{"id":"evil"}"#)),
        (Method::Get, "/admin/clients/billing", None),
        (
            Method::Patch,
            "/admin/clients/billing",
            Some(r#"{"enabled":false}"#),
        ),
        (Method::Delete, "/admin/clients/billing", None),
        (Method::Post, "/admin/clients/billing/secret", None),
    ] {
        let response = app.admin_call(method, path, &bob, body).await;
        assert_eq!(response.status(), Status::Forbidden, "{path}");
    }

    let actor = format!("user:{root_id}");
    let log: Vec<(String, String, Option<String>)> = app
        .admin_audit()
        .await
        .into_iter()
        .filter(|(action, _, _)| action.starts_with("clients."))
        .collect();
    let expected: Vec<(String, String, Option<String>)> = [
        ("clients.add", "billing"),
        ("clients.add", "mobile"),
        ("clients.update", "billing"),
        ("clients.update", "billing"),
        ("clients.delete", "mobile"),
    ]
    .iter()
    .map(|(a, t)| (a.to_string(), actor.clone(), Some(t.to_string())))
    .collect();
    assert_eq!(log, expected, "one event per change, none for refusals");
}

#[rocket::async_test]
async fn rotating_a_secret_without_overlap_ends_the_old_one_at_once() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let old = app.add_service_client("cron", &["jobs"], None).await;
    assert_eq!(
        grant_status(&app, "cron", &old).await,
        Status::Ok,
        "now cached"
    );
    let (status, body) = call(
        &app,
        Method::Post,
        "/admin/clients/cron/secret",
        &root,
        None,
    )
    .await;
    assert_eq!(status, Status::Ok);
    let new = body["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(body.get("secret_hash").is_none());
    assert_eq!(grant_status(&app, "cron", &old).await, Status::Unauthorized);
    assert_eq!(grant_status(&app, "cron", &new).await, Status::Ok);
    let events = app.admin_audit().await;
    let last = events.last().unwrap();
    assert_eq!(last.0, "clients.rotate_secret");
    assert!(last.1.starts_with("user:"));
    let detail = app.app().store.recent_audit(1).await.unwrap()[0]
        .detail
        .clone();
    assert_eq!(detail.as_deref(), Some("overlap_secs=0"));
    assert!(!detail.unwrap().contains(&new));
}

#[rocket::async_test]
async fn with_an_overlap_the_old_secret_works_until_the_overlap_ends() {
    let clock = stamp::clock::Clock::manual(stamp::clock::now());
    let app = TestApp::spawn_on_clock(&clock, |f| f).await;
    let root = app.admin_token().await;
    let old = app.add_service_client("cron", &["jobs"], None).await;
    let (status, body) = call(
        &app,
        Method::Post,
        "/admin/clients/cron/secret",
        &root,
        Some(r#"{"overlap_secs":60}"#),
    )
    .await;
    assert_eq!(status, Status::Ok);
    let new = body["client_secret"].as_str().unwrap().to_string();
    assert_eq!(grant_status(&app, "cron", &old).await, Status::Ok);
    assert_eq!(grant_status(&app, "cron", &new).await, Status::Ok);
    clock.advance(59);
    assert_eq!(grant_status(&app, "cron", &old).await, Status::Ok);
    // Past the overlap and the client cache's TTL (1 s by default).
    clock.advance(2);
    let refused = grant_status(&app, "cron", &old).await;
    assert_eq!(refused, Status::Unauthorized);
    assert_eq!(grant_status(&app, "cron", &new).await, Status::Ok);
    let detail = app.app().store.recent_audit(1).await.unwrap()[0]
        .detail
        .clone();
    assert_eq!(detail.as_deref(), Some("overlap_secs=60"));
}

#[rocket::async_test]
async fn a_deleted_client_cannot_get_tokens_and_its_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    let secret = app.add_service_client("cron", &["jobs"], None).await;
    let token = client_token(&app, "cron", &secret).await;
    assert!(active(&app, &gateway, &token).await);
    let deleted = app
        .admin_call(Method::Delete, "/admin/clients/cron", &root, None)
        .await;
    assert_eq!(deleted.status(), Status::NoContent);
    let response = app
        .client
        .post("/oauth/token")
        .header(ContentType::Form)
        .body(format!(
            "grant_type=client_credentials&client_id=cron&client_secret={secret}"
        ))
        .dispatch()
        .await;
    assert_oauth_error(response, Status::Unauthorized, "invalid_client").await;
    assert!(!active(&app, &gateway, &token).await);
}

#[rocket::async_test]
async fn the_cli_shows_enables_deletes_and_rotates_clients() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let stamp = |args: &[&str]| run_stamp(dir.path(), args, "", &[]);
    let add = stamp(&["clients", "add", "billing", "--scope", "orders:read"]);
    assert!(add.status.success(), "{}", text(&add.stderr));
    let old = text(&add.stdout).trim().to_string();
    assert!(
        stamp(&["clients", "add", "mobile", "--public"])
            .status
            .success()
    );

    let show = stamp(&["clients", "show", "billing"]);
    assert!(show.status.success());
    let shown = text(&show.stdout);
    assert!(
        shown.contains("billing") && shown.contains("orders:read"),
        "{shown}"
    );
    assert!(shown.contains("confidential") && shown.contains('T') && shown.contains('Z'));
    let json: Value =
        serde_json::from_slice(&stamp(&["clients", "show", "billing", "--json"]).stdout).unwrap();
    assert_eq!(json["id"], "billing");
    assert!(json.get("secret_hash").is_none());
    let list: Value =
        serde_json::from_slice(&stamp(&["clients", "list", "--json"]).stdout).unwrap();
    // The two added and the built-in client `stamp init` made.
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let table = text(&stamp(&["clients", "list"]).stdout);
    let header = table.lines().next().unwrap();
    let row = table.lines().find(|l| l.starts_with("billing")).unwrap();
    assert_eq!(
        header.find("state"),
        row.find("enabled"),
        "aligned:\n{table}"
    );
    assert!(!stamp(&["clients", "show", "nobody"]).status.success());

    assert!(stamp(&["clients", "disable", "billing"]).status.success());
    assert!(stamp(&["clients", "enable", "billing"]).status.success());
    assert!(text(&stamp(&["clients", "show", "billing"]).stdout).contains("enabled"));

    let rotate = stamp(&["clients", "rotate-secret", "billing", "--overlap", "3600"]);
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    let new = text(&rotate.stdout);
    assert_eq!(new.lines().count(), 1);
    let new = new.trim().to_string();
    assert_ne!(new, old);
    assert!(text(&rotate.stderr).contains("3600 seconds"));
    assert!(
        text(&stamp(&["clients", "show", "billing"]).stdout).contains("old secret valid until")
    );
    let public = stamp(&["clients", "rotate-secret", "mobile"]);
    assert!(!public.status.success());
    assert!(text(&public.stderr).contains("public"));

    let unconfirmed = stamp(&["clients", "delete", "mobile"]);
    assert!(!unconfirmed.status.success());
    assert!(text(&unconfirmed.stderr).contains("--yes"));
    assert!(
        stamp(&["clients", "delete", "mobile", "--yes"])
            .status
            .success()
    );
    assert!(!stamp(&["clients", "show", "mobile"]).status.success());

    // A closed stdout pipe ends the listing quietly.
    let mut cmd = stamp_command(dir.path());
    cmd.args(["clients", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        !text(&output.stderr).contains("panicked"),
        "{}",
        text(&output.stderr)
    );

    let client = TestApp::start(dir.path(), |f| f).await;
    let app = TestApp { client, dir };
    assert_eq!(grant_status(&app, "billing", &new).await, Status::Ok);
    assert_eq!(
        grant_status(&app, "billing", &old).await,
        Status::Ok,
        "within the overlap"
    );
    let log: Vec<(String, String)> = app
        .admin_audit()
        .await
        .into_iter()
        .map(|(action, actor, _)| (action, actor))
        .collect();
    let expected: Vec<(String, String)> = [
        "clients.add",
        "clients.add",
        "clients.disable",
        "clients.enable",
        "clients.rotate_secret",
        "clients.delete",
    ]
    .iter()
    .map(|a| (a.to_string(), "cli".to_string()))
    .collect();
    assert_eq!(log, expected);
}
