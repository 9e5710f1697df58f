//! One issuer, many APIs (issue 16, item 7): registered APIs are audiences; RFC 8707
//! `resource=` picks one for a token; each API's verifier accepts only its own tokens; the
//! default audience keeps working; introspection and userinfo accept API tokens, the admin API
//! does not; the registry is managed through the admin API and the CLI.

use rocket::http::{ContentType, Header, Method, Status};
use serde_json::{Value, json};
use stamp::verify::{Verifier, VerifierConfig, VerifyError, VerifyingKeys};

use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, run_stamp, text, urlencode};
use crate::oidc::{VERIFIER, authorize, query, redeem, register, submit_login};

const ISSUER: &str = "http://127.0.0.1:8000";
const ORDERS: &str = "https://orders.example.com";
const BILLING: &str = "https://billing.example.com/api";

/// Registers the two APIs through the admin API (`orders` defines `orders:read` and
/// `orders:write`, `billing` defines `billing:read`); returns the admin token.
async fn two_apis(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    for body in [
        json!({"id": "orders", "identifier": ORDERS, "name": "Orders",
               "scopes": ["orders:read", "orders:write"]}),
        json!({"id": "billing", "identifier": BILLING, "scopes": ["billing:read"]}),
    ] {
        let (status, created) = app
            .admin_json(Method::Post, "/admin/apis", &admin, Some(&body.to_string()))
            .await;
        assert_eq!(status, Status::Created, "{created}");
    }
    admin
}

/// `POST /oauth/token` with `body`: status and JSON.
async fn token(app: &TestApp, body: &str) -> (Status, Value) {
    let response = app.token_form(body).await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

/// A client_credentials token of `svc` (secret `secret`) with extra form pairs.
async fn service_token(app: &TestApp, secret: &str, extra: &str) -> Value {
    let (status, body) = token(
        app,
        &format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}{extra}",
            urlencode(secret)
        ),
    )
    .await;
    assert_eq!(status, Status::Ok, "{body}");
    body
}

/// A password-grant response for `user` with extra form pairs.
async fn user_token(app: &TestApp, user: &str, extra: &str) -> (Status, Value) {
    token(
        app,
        &format!(
            "grant_type=password&username={user}&password={}{extra}",
            urlencode(PASSWORD)
        ),
    )
    .await
}

/// The unverified claims of an access token.
fn claims(token: &str) -> Value {
    stamp::tokens::dangerous::decode_unverified(token)
        .unwrap()
        .claims
}

/// A resource server's verifier for `audience`, with the issuer's published keys.
async fn verifier_for(app: &TestApp, audience: &str) -> (Verifier<()>, VerifyingKeys) {
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let keys = VerifyingKeys::parse(&serde_json::to_vec(&jwks).unwrap()).unwrap();
    (
        Verifier::new(VerifierConfig::new(ISSUER, audience), ()),
        keys,
    )
}

fn access(body: &Value) -> String {
    body["access_token"].as_str().expect("access_token").into()
}

fn resource(identifier: &str) -> String {
    format!("&resource={}", urlencode(identifier))
}

#[rocket::async_test]
async fn each_apis_verifier_accepts_only_its_own_tokens() {
    let app = TestApp::spawn().await;
    two_apis(&app).await;
    let secret = app
        .add_service_client("svc", &["orders:read", "billing:read", "reports"], None)
        .await;
    app.add_user("bob", PASSWORD, &["orders:read"]).await;

    // client_credentials: the audience is the API, the scope what both allow.
    let orders_cc = service_token(&app, &secret, &resource(ORDERS)).await;
    let billing_cc = service_token(&app, &secret, &resource(BILLING)).await;
    assert_eq!(claims(&access(&orders_cc))["aud"], ORDERS);
    assert_eq!(claims(&access(&orders_cc))["scope"], "orders:read");
    assert_eq!(orders_cc["scope"], "orders:read");
    assert_eq!(claims(&access(&billing_cc))["aud"], BILLING);
    assert_eq!(claims(&access(&billing_cc))["scope"], "billing:read");

    // password grant.
    let (status, orders_pw) = user_token(
        &app,
        "bob",
        &format!("&scope=orders:read{}", resource(ORDERS)),
    )
    .await;
    assert_eq!(status, Status::Ok, "{orders_pw}");
    assert_eq!(claims(&access(&orders_pw))["aud"], ORDERS);
    assert_eq!(claims(&access(&orders_pw))["scope"], "orders:read");

    // The default audience, as before: no resource (or the default audience named).
    let default_cc = service_token(&app, &secret, "").await;
    let default_named = service_token(&app, &secret, "&resource=stamp").await;
    let (_, default_pw) = user_token(&app, "bob", "").await;
    for body in [&default_cc, &default_named, &default_pw] {
        assert_eq!(claims(&access(body))["aud"], "stamp");
    }
    assert_eq!(
        claims(&access(&default_cc))["scope"],
        "orders:read billing:read reports",
        "without a resource a client gets all of its scopes, as before"
    );

    let now = stamp::clock::now();
    let (orders, keys) = verifier_for(&app, ORDERS).await;
    let (billing, _) = verifier_for(&app, BILLING).await;
    let (default, _) = verifier_for(&app, "stamp").await;
    for token in [access(&orders_cc), access(&orders_pw)] {
        assert!(orders.verify_with(&keys, &token, now).is_ok());
        assert!(matches!(
            billing.verify_with(&keys, &token, now),
            Err(VerifyError::WrongAudience { .. })
        ));
        assert!(matches!(
            default.verify_with(&keys, &token, now),
            Err(VerifyError::WrongAudience { .. })
        ));
    }
    let billing_token = access(&billing_cc);
    assert!(billing.verify_with(&keys, &billing_token, now).is_ok());
    assert!(matches!(
        orders.verify_with(&keys, &billing_token, now),
        Err(VerifyError::WrongAudience { .. })
    ));
    for body in [&default_cc, &default_pw] {
        assert!(default.verify_with(&keys, &access(body), now).is_ok());
        assert!(orders.verify_with(&keys, &access(body), now).is_err());
    }
}

#[rocket::async_test]
async fn unknown_malformed_or_several_resources_are_invalid_target() {
    let app = TestApp::spawn().await;
    two_apis(&app).await;
    let secret = app
        .add_service_client("svc", &["orders:read", "billing:read"], None)
        .await;
    app.add_user("bob", PASSWORD, &["orders:read", "billing:read"])
        .await;
    let cc = |extra: String| {
        format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}{extra}",
            urlencode(&secret)
        )
    };

    for bad in [
        resource("https://unknown.example.com"),
        resource("orders"),
        resource("https://orders.example.com#frag"),
        resource("https://orders.example.com/"),
        format!("{}{}", resource(ORDERS), resource(BILLING)),
    ] {
        let response = app.token_form(&cc(bad.clone())).await;
        assert_oauth_error(response, Status::BadRequest, "invalid_target").await;
        let (status, body) = user_token(&app, "bob", &bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (Status::BadRequest, Some("invalid_target")),
            "{bad}"
        );
    }

    // A scope the client and the user may have but the API does not define (billing:read),
    // and one the API defines but neither may have (orders:write).
    for scope in ["billing:read", "orders:write"] {
        let extra = format!("&scope={scope}{}", resource(ORDERS));
        let response = app.token_form(&cc(extra.clone())).await;
        assert_oauth_error(response, Status::BadRequest, "invalid_scope").await;
        let (status, body) = user_token(&app, "bob", &extra).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (Status::BadRequest, Some("invalid_scope")),
            "{scope}"
        );
    }
}

#[rocket::async_test]
async fn a_refresh_family_keeps_its_api_and_cannot_switch() {
    let app = TestApp::spawn().await;
    let admin = two_apis(&app).await;
    app.add_user("bob", PASSWORD, &["orders:read"]).await;
    let (_, first) = user_token(
        &app,
        "bob",
        &format!("&scope=orders:read{}", resource(ORDERS)),
    )
    .await;
    let refresh = |token: &Value, extra: String| {
        format!(
            "grant_type=refresh_token&refresh_token={}{extra}",
            urlencode(token["refresh_token"].as_str().unwrap())
        )
    };

    let (status, second) = token(&app, &refresh(&first, String::new())).await;
    assert_eq!(status, Status::Ok, "{second}");
    assert_eq!(claims(&access(&second))["aud"], ORDERS);
    assert_eq!(claims(&access(&second))["scope"], "orders:read");

    for other in [resource(BILLING), "&resource=stamp".to_string()] {
        let response = app.token_form(&refresh(&second, other)).await;
        assert_oauth_error(response, Status::BadRequest, "invalid_target").await;
    }
    let (status, third) = token(&app, &refresh(&second, resource(ORDERS))).await;
    assert_eq!(
        status,
        Status::Ok,
        "repeating the family's resource is fine: {third}"
    );
    assert_eq!(claims(&access(&third))["aud"], ORDERS);

    // A default-audience family may not switch to an API either.
    let (_, plain) = user_token(&app, "bob", "").await;
    let response = app.token_form(&refresh(&plain, resource(ORDERS))).await;
    assert_oauth_error(response, Status::BadRequest, "invalid_target").await;

    // Once the API is deleted, its families cannot refresh.
    let (status, _) = app
        .admin_json(Method::Delete, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::NoContent);
    let response = app.token_form(&refresh(&third, String::new())).await;
    assert_oauth_error(response, Status::BadRequest, "invalid_target").await;
}

#[rocket::async_test]
async fn introspection_answers_the_audience_and_the_admin_api_refuses_api_tokens() {
    let app = TestApp::spawn().await;
    let admin = two_apis(&app).await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    app.add_user("carol", PASSWORD, &["admin"]).await;

    let (status, api_admin) = user_token(&app, "carol", &resource(ORDERS)).await;
    assert_eq!(status, Status::Ok, "{api_admin}");
    let api_admin = access(&api_admin);
    assert_eq!(claims(&api_admin)["roles"], json!(["admin"]));

    let introspect = |token: String| {
        format!(
            "token={}&client_id=gateway&client_secret={}",
            urlencode(&token),
            urlencode(&gateway)
        )
    };
    let response = app
        .client
        .post("/oauth/introspect")
        .header(ContentType::Form)
        .body(introspect(api_admin.clone()))
        .dispatch()
        .await;
    let answer: Value = response.into_json().await.unwrap();
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], ORDERS);

    // An admin's token for the orders API does not open the admin API; the default one does.
    assert_eq!(app.admin_status(&api_admin).await, Status::Unauthorized);
    assert_eq!(app.admin_status(&admin).await, Status::Ok);
    let (status, _) = app
        .admin_json(Method::Get, "/admin/apis", &api_admin, None)
        .await;
    assert_eq!(status, Status::Unauthorized);
    let response = app
        .client
        .post("/oauth/introspect")
        .header(ContentType::Form)
        .body(introspect(admin.clone()))
        .dispatch()
        .await;
    let answer: Value = response.into_json().await.unwrap();
    assert_eq!(answer["aud"], "stamp");

    // RFC 7009: a client revokes its own token for an API; introspection sees it.
    let svc = app.add_service_client("svc", &["billing:read"], None).await;
    let billing = access(&service_token(&app, &svc, &resource(BILLING)).await);
    assert!(app.gateway_sees_active(&gateway, &billing).await);
    let response = app
        .client
        .post("/oauth/revoke")
        .header(ContentType::Form)
        .body(format!(
            "token={}&client_id=svc&client_secret={}",
            urlencode(&billing),
            urlencode(&svc)
        ))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    assert!(!app.gateway_sees_active(&gateway, &billing).await);

    // A deleted API's tokens are no longer active.
    let (status, _) = app
        .admin_json(Method::Delete, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::NoContent);
    assert!(!app.gateway_sees_active(&gateway, &api_admin).await);
}

#[rocket::async_test]
async fn the_code_flow_binds_the_resource_to_the_code() {
    let app = TestApp::spawn().await;
    two_apis(&app).await;
    app.add_user("alice", PASSWORD, &["orders:read"]).await;
    register(&app, "bank", true, true).await;
    let scope = [("scope", "openid orders:read")];

    // An unknown resource goes back to the client as invalid_target.
    let back = authorize(
        &app,
        &query("bank", &[scope[0], ("resource", "https://unknown.example")]),
    )
    .await;
    assert_eq!(back.status, Status::SeeOther, "{}", back.body);
    assert_eq!(back.param("error").as_deref(), Some("invalid_target"));
    assert_eq!(back.param("state").as_deref(), Some("st-1"));
    // A scope the API does not define is invalid_scope.
    let back = authorize(
        &app,
        &query(
            "bank",
            &[("scope", "openid billing:read"), ("resource", ORDERS)],
        ),
    )
    .await;
    assert_eq!(back.param("error").as_deref(), Some("invalid_scope"));

    let page = authorize(&app, &query("bank", &[scope[0], ("resource", ORDERS)])).await;
    assert_eq!(page.status, Status::Ok, "{}", page.body);
    let back = submit_login(&app, &page, "alice", PASSWORD).await;
    let code = back.param("code").expect("a code");

    // The token request may repeat the resource, not change it (the code stays usable).
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id=bank&code_verifier={VERIFIER}{}",
        urlencode(&code),
        urlencode("https://bank.example/cb"),
        resource(BILLING)
    );
    let response = app.token_form(&body).await;
    assert_oauth_error(response, Status::BadRequest, "invalid_target").await;

    let (status, tokens) = redeem(&app, "bank", None, &code, Some(VERIFIER)).await;
    assert_eq!(status, Status::Ok, "{tokens}");
    let token = access(&tokens);
    assert_eq!(claims(&token)["aud"], ORDERS);
    assert_eq!(claims(&token)["scope"], "openid orders:read");
    assert!(tokens["id_token"].is_string());

    // The orders API's verifier accepts it; userinfo (which serves every API) does too.
    let (orders, keys) = verifier_for(&app, ORDERS).await;
    assert!(
        orders
            .verify_with(&keys, &token, stamp::clock::now())
            .is_ok()
    );
    let response = app
        .client
        .get("/userinfo")
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);

    // Its refresh token stays with the orders API.
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let (status, next) = token_refresh(&app, refresh).await;
    assert_eq!(status, Status::Ok, "{next}");
    assert_eq!(claims(&access(&next))["aud"], ORDERS);
}

async fn token_refresh(app: &TestApp, refresh: &str) -> (Status, Value) {
    token(
        app,
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id=bank",
            urlencode(refresh)
        ),
    )
    .await
}

#[rocket::async_test]
async fn apis_are_managed_through_the_admin_api_with_audit_entries() {
    let app = TestApp::spawn().await;
    let admin = two_apis(&app).await;

    let (status, list) = app
        .admin_json(Method::Get, "/admin/apis", &admin, None)
        .await;
    assert_eq!(status, Status::Ok);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["billing", "orders"]);
    let (status, orders) = app
        .admin_json(Method::Get, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(orders["identifier"], ORDERS);
    assert_eq!(orders["name"], "Orders");
    assert_eq!(orders["scopes"], json!(["orders:read", "orders:write"]));
    assert!(orders["created_at"].is_i64());

    // Duplicates: 409 for a taken id or a taken identifier.
    for body in [
        json!({"id": "orders", "identifier": "https://other.example.com"}),
        json!({"id": "orders2", "identifier": ORDERS}),
    ] {
        let response = app
            .admin_call(Method::Post, "/admin/apis", &admin, Some(&body.to_string()))
            .await;
        assert_oauth_error(response, Status::Conflict, "invalid_request").await;
    }
    // Bad values: 400.
    for body in [
        json!({"id": "x", "identifier": "orders"}),
        json!({"id": "x", "identifier": "https://x.example#frag"}),
        json!({"id": "Bad Id", "identifier": "https://x.example"}),
        json!({"id": "x", "identifier": "https://x.example", "scopes": ["a b"]}),
    ] {
        let response = app
            .admin_call(Method::Post, "/admin/apis", &admin, Some(&body.to_string()))
            .await;
        assert_oauth_error(response, Status::BadRequest, "invalid_request").await;
    }
    let response = app
        .admin_call(Method::Post, "/admin/apis", &admin, Some(r#"{"id":"x"}"#))
        .await;
    assert!(response.status().code >= 400 && response.status().code < 500);

    // PATCH the scopes; the token endpoint follows at once.
    let (status, patched) = app
        .admin_json(
            Method::Patch,
            "/admin/apis/billing",
            &admin,
            Some(r#"{"scopes": ["billing:read", "billing:write"], "name": "Billing"}"#),
        )
        .await;
    assert_eq!(status, Status::Ok, "{patched}");
    assert_eq!(patched["scopes"], json!(["billing:read", "billing:write"]));
    assert_eq!(patched["identifier"], BILLING);
    let secret = app
        .add_service_client("svc", &["billing:write"], None)
        .await;
    let body = service_token(
        &app,
        &secret,
        &format!("&scope=billing:write{}", resource(BILLING)),
    )
    .await;
    assert_eq!(claims(&access(&body))["aud"], BILLING);

    // Unknown: 404 for read, change and delete.
    let (status, _) = app
        .admin_json(Method::Get, "/admin/apis/nope", &admin, None)
        .await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = app
        .admin_json(
            Method::Patch,
            "/admin/apis/nope",
            &admin,
            Some(r#"{"name":"n"}"#),
        )
        .await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = app
        .admin_json(Method::Delete, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::NoContent);
    let (status, _) = app
        .admin_json(Method::Delete, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::NotFound);
    let response = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}{}",
            urlencode(&secret),
            resource(ORDERS)
        ))
        .await;
    assert_oauth_error(response, Status::BadRequest, "invalid_target").await;

    let audit: Vec<(String, Option<String>)> = app
        .admin_audit()
        .await
        .into_iter()
        .filter(|(action, _, _)| action.starts_with("apis."))
        .map(|(action, _, target)| (action, target))
        .collect();
    let expected = [
        ("apis.add", "orders"),
        ("apis.add", "billing"),
        ("apis.update", "billing"),
        ("apis.delete", "orders"),
    ]
    .map(|(a, t)| (a.to_string(), Some(t.to_string())));
    assert_eq!(audit, expected);

    // Without an admin token: 401.
    let (status, _) = app.get_json("/admin/apis").await;
    assert_eq!(status, Status::Unauthorized);
}

#[rocket::async_test]
async fn the_cli_manages_the_same_registry_as_the_running_issuer() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let dir = app.dir.path();
    let stamp = |args: &[&str]| run_stamp(dir, args, "", &[]);

    let out = stamp(&[
        "apis",
        "add",
        "inventory",
        "--identifier",
        "https://inventory.example.com",
        "--name",
        "Inventory",
        "--scope",
        "inventory:read",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("registered api inventory"));

    // The running issuer sees it at once (the registry is in the database).
    let (status, shown) = app
        .admin_json(Method::Get, "/admin/apis/inventory", &admin, None)
        .await;
    assert_eq!(status, Status::Ok);
    assert_eq!(shown["identifier"], "https://inventory.example.com");
    let secret = app
        .add_service_client("svc", &["inventory:read"], None)
        .await;
    let body = service_token(&app, &secret, &resource("https://inventory.example.com")).await;
    assert_eq!(
        claims(&access(&body))["aud"],
        "https://inventory.example.com"
    );

    let out = stamp(&["apis", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], "inventory");
    assert_eq!(listed[0]["scopes"], json!(["inventory:read"]));
    let out = stamp(&["apis", "list"]);
    assert!(text(&out.stdout).contains("https://inventory.example.com"));
    let out = stamp(&["apis", "show", "inventory", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["name"], "Inventory");

    // Bad input and duplicates fail with a message and a failure status.
    for args in [
        &["apis", "add", "x", "--identifier", "not a uri"][..],
        &[
            "apis",
            "add",
            "inventory",
            "--identifier",
            "https://i2.example",
        ][..],
        &["apis", "show", "nope"][..],
        &["apis", "delete", "inventory"][..],
    ] {
        let out = stamp(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!text(&out.stderr).is_empty());
    }

    let out = stamp(&["apis", "update", "inventory", "--scope", "inventory:write"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, shown) = app
        .admin_json(Method::Get, "/admin/apis/inventory", &admin, None)
        .await;
    assert_eq!(shown["scopes"], json!(["inventory:write"]));
    assert_eq!(shown["name"], "Inventory", "unchanged");
    assert!(!stamp(&["apis", "update", "inventory"]).status.success());

    let out = stamp(&["apis", "delete", "inventory", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, _) = app
        .admin_json(Method::Get, "/admin/apis/inventory", &admin, None)
        .await;
    assert_eq!(status, Status::NotFound);
    let audit = app.admin_audit().await;
    assert!(
        audit
            .iter()
            .any(|(action, actor, _)| action == "apis.add" && actor == "cli")
    );
}

#[rocket::async_test]
async fn the_token_inspector_checks_an_api_token_for_its_api_audience() {
    let app = TestApp::spawn().await;
    let admin = two_apis(&app).await;
    app.add_user("carol", PASSWORD, &[]).await;
    let (status, body) = user_token(&app, "carol", &resource(ORDERS)).await;
    assert_eq!(status, Status::Ok, "{body}");
    let orders_token = access(&body);

    let inspect = |token: String| {
        let body = json!({ "token": token }).to_string();
        let (app, admin) = (&app, &admin);
        async move {
            app.admin_json(Method::Post, "/admin/tokens/inspect", admin, Some(&body))
                .await
        }
    };
    let aud_check = |inspection: &Value| {
        inspection["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "aud")
            .cloned()
            .unwrap()
    };
    // A registered API's token is checked against that API, as introspection does.
    let (status, inspection) = inspect(orders_token.clone()).await;
    assert_eq!(status, Status::Ok, "{inspection}");
    assert_eq!(inspection["valid"], true, "{inspection}");
    assert_eq!(aud_check(&inspection)["detail"], format!("aud is {ORDERS}"));

    // Once the API is deleted, its tokens fail the audience check.
    let (status, _) = app
        .admin_json(Method::Delete, "/admin/apis/orders", &admin, None)
        .await;
    assert_eq!(status, Status::NoContent);
    let (_, inspection) = inspect(orders_token).await;
    assert_eq!(inspection["valid"], false, "{inspection}");
    assert_eq!(aud_check(&inspection)["ok"], false, "{inspection}");
}
