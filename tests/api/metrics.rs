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

async fn scrape(app: &TestApp) -> String {
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
