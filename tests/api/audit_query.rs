//! Querying the audit log: `GET /admin/audit` filters (`actor`, `action`, `subject`, `since`,
//! `until`) and cursor paging (`limit`, `before`, `X-Next-Cursor`), and `stamp audit`.

use rocket::http::{Method, Status};
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, text};

/// An app with an admin and seven recorded events: `at` 1000..=1006, actors alternating
/// `cli`/`user:x`, actions `users.add` for even `at`, `keys.rotate` for odd, target `t<at>`.
/// (The app's own events, the built-in client and the admin's login, are at the present time:
/// the queries below end at `until=2000`.)
async fn app_with_events() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for at in 1000..=1006 {
        let event = crate::helpers::sample_audit_event(at);
        app.app().store.record_audit(&event).await.unwrap();
    }
    (app, token)
}

/// `GET path` as the admin: the status, the events, and the `X-Next-Cursor` header.
async fn get(app: &TestApp, token: &str, path: &str) -> (Status, Value, Option<String>) {
    let response = app.admin_call(Method::Get, path, token, None).await;
    let status = response.status();
    let next = response
        .headers()
        .get_one("X-Next-Cursor")
        .map(String::from);
    let body = response.into_json().await.unwrap_or(Value::Null);
    (status, body, next)
}

fn ats(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_i64().unwrap())
        .collect()
}

#[rocket::async_test]
async fn each_filter_narrows_the_audit_log() {
    let (app, token) = app_with_events().await;
    let (status, all, next) = get(&app, &token, "/admin/audit?since=0&until=2000").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(ats(&all), [1006, 1005, 1004, 1003, 1002, 1001, 1000]);
    assert_eq!(next, None);

    let (_, by_actor, _) = get(&app, &token, "/admin/audit?actor=user:x").await;
    assert_eq!(ats(&by_actor), [1005, 1003, 1001]);
    let (_, by_action, _) = get(&app, &token, "/admin/audit?action=users.add&since=0").await;
    assert_eq!(ats(&by_action), [1006, 1004, 1002, 1000]);
    let (_, by_subject, _) = get(&app, &token, "/admin/audit?subject=t1003").await;
    assert_eq!(ats(&by_subject), [1003]);
    let (_, window, _) = get(&app, &token, "/admin/audit?since=1002&until=1005").await;
    assert_eq!(ats(&window), [1004, 1003, 1002]);
    let (_, combined, _) = get(
        &app,
        &token,
        "/admin/audit?actor=cli&action=users.add&since=1001&until=1006",
    )
    .await;
    assert_eq!(ats(&combined), [1004, 1002]);
    let (_, none, _) = get(&app, &token, "/admin/audit?action=nothing.such").await;
    assert_eq!(ats(&none), Vec::<i64>::new());
}

#[rocket::async_test]
async fn paging_returns_every_event_exactly_once() {
    let (app, token) = app_with_events().await;
    let mut seen = Vec::new();
    let mut path = "/admin/audit?since=1000&until=2000&limit=3".to_string();
    let mut pages = 0;
    loop {
        let (status, page, next) = get(&app, &token, &path).await;
        assert_eq!(status, Status::Ok);
        pages += 1;
        let page = ats(&page);
        assert!(page.len() <= 3);
        seen.extend(page);
        match next {
            Some(cursor) => {
                path = format!("/admin/audit?since=1000&until=2000&limit=3&before={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, [1006, 1005, 1004, 1003, 1002, 1001, 1000]);

    // A page that ends exactly at the last event says there is no next page.
    let (_, page, next) = get(&app, &token, "/admin/audit?action=keys.rotate&limit=3").await;
    assert_eq!(ats(&page), [1005, 1003, 1001]);
    assert_eq!(next, None);
}

#[rocket::async_test]
async fn bad_limits_times_and_cursors_are_refused() {
    let (app, token) = app_with_events().await;
    for query in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "since=yesterday",
        "until=1.5",
        "before=abc",
    ] {
        let response = app
            .admin_call(Method::Get, &format!("/admin/audit?{query}"), &token, None)
            .await;
        assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    }
    let (status, page, _) = get(&app, &token, "/admin/audit?limit=500").await;
    assert_eq!(status, Status::Ok);
    assert!(ats(&page).len() >= 7);
}

#[rocket::async_test]
async fn a_non_admin_cannot_query_the_audit_log() {
    let (app, _) = app_with_events().await;
    app.add_user("mallory", PASSWORD, &[]).await;
    let token = app.login("mallory", PASSWORD).await;
    let response = app
        .admin_call(Method::Get, "/admin/audit?action=users.add", &token, None)
        .await;
    assert_eq!(response.status(), Status::Forbidden);
}

#[test]
fn stamp_audit_shows_the_cli_created_user_as_json_and_as_a_table() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let add = run_stamp(
        dir.path(),
        &["users", "add", "alice", "--password-stdin"],
        "a long password\n",
        &[],
    );
    assert!(add.status.success(), "{}", text(&add.stderr));

    let out = run_stamp(
        dir.path(),
        &["audit", "--action", "users.add", "--json"],
        "",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "cli");
    assert_eq!(events[0]["action"], "users.add");
    assert!(
        events[0]["target"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    let table = run_stamp(
        dir.path(),
        &["audit", "--actor", "cli", "--since", "2000-01-01T00:00:00Z"],
        "",
        &[],
    );
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("time"), "{table}");
    assert_eq!(lines.len(), 2, "{table}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(
        cells[0].starts_with("20") && cells[0].ends_with('Z'),
        "{table}"
    );
    assert_eq!(cells[1..3], ["cli", "users.add"], "{table}");
    // Columns are aligned: each header name starts where its cells do.
    assert_eq!(lines[0].find("actor"), lines[1].find("cli"), "{table}");

    let bad = run_stamp(
        dir.path(),
        &["audit", "--since", "2000-02-30T00:00:00Z"],
        "",
        &[],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("invalid time"),
        "{}",
        text(&bad.stderr)
    );
    let future = run_stamp(
        dir.path(),
        &["audit", "--since", "4000000000", "--json"],
        "",
        &[],
    );
    assert!(future.status.success());
    assert_eq!(text(&future.stdout).trim(), "[]");
}
