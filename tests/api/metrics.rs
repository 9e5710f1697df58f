//! `/metrics`: Prometheus counters move with the requests they count.

use rocket::http::{Header, Status};

use crate::helpers::{PASSWORD, TestApp, urlencode};

fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
        .parse()
        .unwrap()
}

/// `GET /metrics`: `200` with Prometheus text.
pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = app.client.get("/metrics").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type().unwrap().sub(), "plain");
    response.into_string().await.unwrap()
}

#[rocket::async_test]
async fn counters_follow_grants_and_jwks_answers() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    assert_eq!(
        value(&before, r#"stamp_tokens_issued_total{grant="password"}"#),
        0
    );
    assert_eq!(
        value(&before, r#"stamp_keys{alg="ES256",state="active"}"#),
        1
    );
    assert_eq!(value(&before, r#"stamp_keys{alg="ES256",state="next"}"#), 1);
    assert_eq!(value(&before, "stamp_key_set_generation"), 1);

    app.add_user("alice", PASSWORD, &[]).await;
    app.login("alice", PASSWORD).await;
    let wrong = app
        .token_form("grant_type=password&username=alice&password=nope")
        .await;
    assert_eq!(wrong.status(), Status::BadRequest);
    let body = format!(
        "grant_type=password&username=alice&password={}",
        urlencode(PASSWORD)
    );
    assert_eq!(app.token_form(&body).await.status(), Status::Ok);

    let first = app.client.get("/.well-known/jwks.json").dispatch().await;
    let etag = first.headers().get_one("ETag").unwrap().to_string();
    let cached = app
        .client
        .get("/.well-known/jwks.json")
        .header(Header::new("If-None-Match", etag))
        .dispatch()
        .await;
    assert_eq!(cached.status(), Status::NotModified);

    let after = scrape(&app).await;
    assert_eq!(
        value(&after, r#"stamp_tokens_issued_total{grant="password"}"#),
        2
    );
    assert_eq!(
        value(&after, r#"stamp_grants_refused_total{grant="password"}"#),
        1
    );
    assert_eq!(value(&after, "stamp_jwks_served_total"), 1);
    assert_eq!(value(&after, "stamp_jwks_not_modified_total"), 1);
    assert!(!after.contains(PASSWORD));
}

#[rocket::async_test]
async fn fleet_metrics_show_routes_statuses_key_changes_and_the_build() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let rotated = app
        .admin_call(
            rocket::http::Method::Post,
            "/admin/keys/rotate",
            &token,
            Some(r#"{"force":true}"#),
        )
        .await
        .status();
    assert_eq!(rotated, Status::Ok);
    let missing = app.client.get("/no/such/path").dispatch().await.status();
    assert_eq!(missing, Status::NotFound);

    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            r#"stamp_key_changes_total{change="rotate",origin="api"}"#
        ),
        1
    );
    assert_eq!(
        value(
            &text,
            r#"stamp_key_changes_total{change="rotate",origin="schedule"}"#
        ),
        0
    );
    assert!(
        text.contains(&format!(
            "stamp_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    // Two logins (admin_token) and the rotation were answered 2xx, the unknown path 4xx.
    assert!(value(&text, r#"stamp_http_responses_total{class="2xx"}"#) >= 2);
    assert!(value(&text, r#"stamp_http_responses_total{class="4xx"}"#) >= 1);
    assert_eq!(
        value(&text, r#"stamp_http_responses_total{class="5xx"}"#),
        0
    );
    assert!(
        value(
            &text,
            r#"stamp_http_request_duration_seconds_count{route="POST /oauth/token"}"#
        ) >= 1,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"stamp_http_request_duration_seconds_bucket{route="POST /admin/keys/rotate",le="+Inf"}"#
        ),
        1
    );
    assert!(
        value(
            &text,
            r#"stamp_http_request_duration_seconds_count{route="unmatched"}"#
        ) >= 1
    );
    // The file key store has no change listener; no database outage was seen.
    assert!(text.contains("stamp_key_listener_connected -1"), "{text}");
    assert_eq!(value(&text, "stamp_database_unavailable_total"), 0);
}
