//! The admin console (`/console/`): its files and headers, its built-in client
//! (`stamp-console`, which the admin API may not create or change), sign-in through the code
//! flow with PKCE and an admin API that takes the resulting token, the key listing's timeline
//! fields, the token inspector (`POST /admin/tokens/inspect`), and the whole console end to end
//! in Debian's Chromium through `playwright-core`.

use std::path::Path;

use rocket::http::{Header, Method, Status};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::browser::CHROMIUM;
use crate::helpers::{PASSWORD, TestApp, b64url, urlencode};
use crate::interop::{Issuer, PASSWORD as ISSUER_PASSWORD, flip_signature_char};
use crate::oidc::{authorize, query, submit_login};
use crate::rp_interop::oidc_tools;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

/// How long the browser script may run in all.
const DEADLINE_MS: u64 = 120_000;

#[rocket::async_test]
async fn the_console_is_served_with_a_strict_csp_and_revalidated_by_etag() {
    let app = TestApp::spawn().await;

    let page = app.client.get("/console/").dispatch().await;
    assert_eq!(page.status(), Status::Ok);
    let headers = page.headers().clone();
    assert_eq!(headers.get_one("Content-Security-Policy"), Some(CSP));
    assert_eq!(headers.get_one("X-Frame-Options"), Some("DENY"));
    assert_eq!(headers.get_one("Referrer-Policy"), Some("no-referrer"));
    assert_eq!(headers.get_one("Cache-Control"), Some("no-cache"));
    assert!(
        headers
            .get_one("Content-Type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    let etag = headers.get_one("ETag").expect("an ETag").to_string();
    let html = page.into_string().await.unwrap();
    // No inline script or style: every <script> has a src, no element has a style or on…
    // attribute (the CSP would block them, so they would be dead code, or worse, a habit).
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("style="), "inline style");
    assert!(
        !html.contains(" onclick") && !html.contains(" onload"),
        "inline handler"
    );

    let again = app
        .client
        .get("/console/")
        .header(Header::new("If-None-Match", etag.clone()))
        .dispatch()
        .await;
    assert_eq!(again.status(), Status::NotModified);
    assert_eq!(again.headers().get_one("ETag"), Some(etag.as_str()));

    for (path, kind) in [
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let file = app.client.get(path).dispatch().await;
        assert_eq!(file.status(), Status::Ok, "{path}");
        let content_type = file.headers().get_one("Content-Type").unwrap_or_default();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert_eq!(file.headers().get_one("Content-Security-Policy"), Some(CSP));
        let other_etag = file.headers().get_one("ETag").unwrap().to_string();
        assert_ne!(other_etag, etag, "each file has its own tag");
    }
    let redirect = app.client.get("/console").dispatch().await;
    assert_eq!(redirect.status(), Status::PermanentRedirect);
    assert_eq!(redirect.headers().get_one("Location"), Some("/console/"));
    assert_eq!(
        app.client.get("/console/nope.js").dispatch().await.status(),
        Status::NotFound
    );
}

#[rocket::async_test]
async fn the_console_client_is_built_in_and_the_admin_api_cannot_create_or_change_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    let (status, body) = app
        .admin_json(
            Method::Post,
            "/admin/clients",
            &admin,
            Some(r#"{"id":"stamp-console","public":true}"#),
        )
        .await;
    assert_eq!(status, Status::Conflict, "{body}");
    for (method, path, body) in [
        (
            Method::Patch,
            "/admin/clients/stamp-console",
            Some(r#"{"enabled":false}"#),
        ),
        (
            Method::Patch,
            "/admin/clients/stamp-console",
            Some(r#"{"redirect_uris":["https://evil.example/cb"]}"#),
        ),
        (Method::Delete, "/admin/clients/stamp-console", None),
        (
            Method::Post,
            "/admin/clients/stamp-console/secret",
            Some("{}"),
        ),
    ] {
        let (status, answer) = app.admin_json(method, path, &admin, body).await;
        assert_eq!(status, Status::Forbidden, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "access_denied");
    }
    // Nothing was stored under its id, and the client still signs in (below).
    assert!(
        app.app()
            .store
            .client_by_id("stamp-console")
            .await
            .unwrap()
            .is_none()
    );
}

/// The console's redirect URI for the test app's issuer.
fn console_uri(app: &TestApp) -> String {
    format!("{}/console/", app.app().config.issuer.trim_end_matches('/'))
}

/// Signs `user` in as the console does: `/authorize` with PKCE, the login form (asked for with
/// `prompt=login`, whoever is signed in already), the code redeemed at the token endpoint.
/// Returns the token response.
async fn console_sign_in(app: &TestApp, user: &str) -> (Status, Value) {
    let verifier = "console-verifier-0123456789-0123456789-0123456789";
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    let redirect = console_uri(app);
    let page = authorize(
        app,
        &query(
            "stamp-console",
            &[
                ("redirect_uri", &redirect),
                ("code_challenge", &challenge),
                ("prompt", "login"),
            ],
        ),
    )
    .await;
    assert_eq!(page.status, Status::Ok, "login page: {}", page.body);
    let back = submit_login(app, &page, user, PASSWORD).await;
    assert_eq!(back.status, Status::SeeOther, "{}", back.body);
    let location = back.location.clone().unwrap();
    assert!(location.starts_with(&redirect), "{location}");
    let code = back.param("code").expect("a code");
    let response = app
        .token_form(&format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id=stamp-console\
             &code_verifier={verifier}",
            urlencode(&code),
            urlencode(&redirect)
        ))
        .await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

#[rocket::async_test]
async fn an_admin_signs_in_to_the_console_with_pkce_and_its_token_opens_the_admin_api() {
    let app = TestApp::spawn().await;
    app.add_user("root", PASSWORD, &["admin"]).await;
    app.add_user("bob", PASSWORD, &[]).await;

    let (status, tokens) = console_sign_in(&app, "root").await;
    assert_eq!(status, Status::Ok, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(app.admin_status(access).await, Status::Ok);

    // A user without the admin role signs in too, but the admin API refuses the token.
    let (status, tokens) = console_sign_in(&app, "bob").await;
    assert_eq!(status, Status::Ok, "{tokens}");
    let bobs = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.admin_status(bobs).await, Status::Forbidden);

    // The console may not use other grants.
    let response = app
        .token_form(&format!(
            "grant_type=password&client_id=stamp-console&username=root&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    assert_eq!(response.status(), Status::BadRequest);
}

#[rocket::async_test]
async fn the_key_listing_tells_a_timeline_what_it_needs() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    let (status, list) = app
        .admin_json(Method::Get, "/admin/keys", &admin, None)
        .await;
    assert_eq!(status, Status::Ok, "{list}");
    let config = &app.app().config;
    assert_eq!(list["jwks_max_age"], json!(config.jwks_max_age));
    assert!(list["jwks_max_age_now"].as_i64().unwrap() <= config.jwks_max_age as i64);
    assert!(list["now"].as_i64().unwrap() > 1_700_000_000);
    let schedule = list["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 1, "{list}");
    assert_eq!(schedule[0]["alg"], "ES256");
    let next = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "next")
        .unwrap();
    let lifecycle = app.app().keys.lifecycle();
    assert_eq!(
        schedule[0]["rotation_allowed_at"].as_i64().unwrap(),
        next["created_at"].as_i64().unwrap() + lifecycle.jwks_max_age + lifecycle.leeway
    );
    // The rotation answer has the same shape.
    let (status, rotated) = app
        .admin_json(
            Method::Post,
            "/admin/keys/rotate",
            &admin,
            Some(r#"{"force":true}"#),
        )
        .await;
    assert_eq!(status, Status::Ok, "{rotated}");
    assert!(rotated["schedule"].is_array() && rotated["now"].is_i64());
}

/// `POST /admin/tokens/inspect` with `token`.
async fn inspect(app: &TestApp, admin: &str, token: &str) -> (Status, Value) {
    let body = json!({ "token": token }).to_string();
    app.admin_json(Method::Post, "/admin/tokens/inspect", admin, Some(&body))
        .await
}

/// The checks of an inspection that failed (`ok: false`), and those that did not run.
fn failed(inspection: &Value) -> (Vec<String>, Vec<String>) {
    let checks = inspection["checks"].as_array().unwrap();
    let names = |ok: Value| {
        checks
            .iter()
            .filter(|c| c["ok"] == ok)
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    (names(json!(false)), names(Value::Null))
}

#[rocket::async_test]
async fn the_inspector_runs_every_check_and_names_the_one_that_fails() {
    let clock = stamp::clock::Clock::manual(stamp::clock::now());
    let app = TestApp::spawn_on_clock(&clock, |f| f).await;
    let admin = app.admin_token().await;
    app.add_user("alice", PASSWORD, &[]).await;

    // A fresh token: every check passes, the header and claims are shown, the signature not.
    let token = app.login("alice", PASSWORD).await;
    let (status, fresh) = inspect(&app, &admin, &token).await;
    assert_eq!(status, Status::Ok, "{fresh}");
    assert_eq!(fresh["valid"], true, "{fresh}");
    assert_eq!(failed(&fresh), (vec![], vec![]));
    let names: Vec<&str> = fresh["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "alg",
        "kid",
        "signature",
        "iss",
        "aud",
        "exp",
        "nbf",
        "revoked",
    ] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    assert_eq!(fresh["header"]["typ"], "at+jwt");
    assert_eq!(fresh["claims"]["sub"], app.user("alice").await.id);
    let signature = token.rsplit('.').next().unwrap();
    assert!(!fresh.to_string().contains(signature), "signature echoed");

    // A tampered signature.
    let (_, tampered) = inspect(&app, &admin, &flip_signature_char(&token)).await;
    assert_eq!(tampered["valid"], false);
    assert_eq!(failed(&tampered).0, ["signature"], "{tampered}");

    // Another audience, signed with the live key.
    let mut claims = fresh["claims"].clone();
    claims["aud"] = json!("https://other.example");
    let foreign = app.sign_raw(&fresh["header"], &claims);
    let (_, wrong_aud) = inspect(&app, &admin, &foreign).await;
    assert_eq!(failed(&wrong_aud).0, ["aud"], "{wrong_aud}");

    // Logged out: the jti is on the denylist; only the online check fails.
    let logout = app
        .admin_call(Method::Post, "/logout", &token, None)
        .await
        .status();
    assert!(logout.code < 300, "logout: {logout}");
    let (_, revoked) = inspect(&app, &admin, &token).await;
    assert_eq!(failed(&revoked).0, ["revoked"], "{revoked}");

    // Expired: an hour later (the admin's own token is renewed: it expired too).
    clock.advance(3600);
    let admin = app.login("root", PASSWORD).await;
    let (_, late) = inspect(&app, &admin, &app.login("alice", PASSWORD).await).await;
    assert_eq!(late["valid"], true, "{late}");
    let (_, expired) = inspect(&app, &admin, &flip_signature_char(&token)).await;
    assert!(failed(&expired).0.contains(&"exp".to_string()), "{expired}");

    // A key that left the JWKS: revoked, its kid is unknown and the signature is not checked.
    let old = app.login("alice", PASSWORD).await;
    let kid = fresh_kid(&old);
    let (status, _) = app
        .admin_json(
            Method::Post,
            &format!("/admin/keys/{kid}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, Status::Ok);
    let admin = app.login("root", PASSWORD).await;
    let (_, unknown) = inspect(&app, &admin, &old).await;
    assert_eq!(
        failed(&unknown),
        (vec!["kid".to_string()], vec!["signature".to_string()]),
        "{unknown}"
    );
}

fn fresh_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

#[rocket::async_test]
async fn the_inspector_refuses_what_is_not_a_jwt_and_non_admins() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for junk in ["", "abc", "a.b", "!!.e30.c2ln", "e30.W10.c2ln"] {
        let (status, body) = inspect(&app, &admin, junk).await;
        assert_eq!(status, Status::BadRequest, "{junk:?}: {body}");
        assert_eq!(body["error"], "invalid_request");
    }
    let (status, _) = app
        .admin_json(
            Method::Post,
            "/admin/tokens/inspect",
            &admin,
            Some(r#"{"jwt":"x"}"#),
        )
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    app.add_user("bob", PASSWORD, &[]).await;
    let bob = app.login("bob", PASSWORD).await;
    let (status, _) = inspect(&app, &bob, &bob).await;
    assert_eq!(status, Status::Forbidden);
    let (status, _) = app
        .admin_json(Method::Post, "/admin/tokens/inspect", "nope", Some("{}"))
        .await;
    assert_eq!(status, Status::Unauthorized);
}

#[test]
fn the_console_signs_in_rotates_with_force_and_inspects_tokens_in_chromium() {
    // Arrange: the browser and its driver, the real binary with an admin made by the CLI, a
    // fresh token and a tampered copy.
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)"
    );
    let tools = oidc_tools().unwrap_or_else(|e| panic!("cannot install the OIDC tools: {e}"));
    let mut issuer = Issuer::new("ES256");
    issuer.add_user_with("root", &["--admin"]);
    issuer.add_user("alice");
    issuer.serve();
    issuer.wait_ready();
    let token = issuer.login("alice");
    let tampered = flip_signature_char(&token);
    // The README's picture is refreshed on request only: a test run leaves the tree as it was.
    let screenshot = if std::env::var_os("STAMP_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png")
    };
    let _ = std::fs::remove_file(&screenshot);

    // Act: the browser walks through the console (tests/interop/console_browser.mjs).
    let out = tools.node_output(
        "console_browser.mjs",
        &json!({
            "chromium": CHROMIUM,
            "issuer": issuer.url,
            "username": "root",
            "password": ISSUER_PASSWORD,
            "token": token,
            "tampered": tampered,
            "newUser": "carol",
            "newPassword": "a long enough password for carol",
            "screenshot": screenshot,
            "deadlineMs": DEADLINE_MS,
        }),
    );
    assert!(
        out.status.success(),
        "the browser run failed ({}): {}\n--- issuer:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        issuer.stderr()
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("browser report: {report:#}");

    // Assert: nothing left loopback, no script error, no CSP violation.
    assert_eq!(report["blocked"], json!([]), "{report}");
    assert_eq!(report["console_errors"], json!([]), "{report}");
    assert_eq!(report["csp_violations"], 0, "{report}");
    let steps = &report["steps"];

    // Signed in through the issuer's own login page, as the built-in client, with PKCE; only
    // the pending sign-in was ever in sessionStorage, and it is gone.
    let sign_in = &steps["sign_in"];
    assert_eq!(sign_in["login_page"], format!("{}/authorize", issuer.url));
    assert_eq!(sign_in["client_id"], "stamp-console");
    assert_eq!(sign_in["code_challenge_method"], "S256");
    assert_eq!(sign_in["url"], format!("{}/console/#keys", issuer.url));
    assert_eq!(sign_in["who"], "signed in as root");
    assert_eq!(sign_in["session_storage"], json!([]));

    // The forced rotation: warned first, then a new active key, the old one retired, in the
    // table and in the timeline.
    let rotate = &steps["rotate"];
    let warning = rotate["warning"].as_str().unwrap();
    assert!(warning.contains("cached the key set"), "{warning}");
    assert!(warning.contains("unknown kid"), "{warning}");
    assert_eq!(rotate["dialog_closed"], true);
    let (before, after) = (
        rotate["before"].as_str().unwrap(),
        rotate["after"].as_str().unwrap(),
    );
    assert_ne!(before, after);
    assert_eq!(rotate["states"][before], "retired", "{rotate}");
    assert_eq!(rotate["states"][after], "active", "{rotate}");
    let timeline = rotate["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 3, "next, active, retired: {rotate}");
    let spans = |kid: &str| {
        let row = timeline.iter().find(|r| r["kid"] == kid).unwrap();
        row["spans"].as_array().unwrap().clone()
    };
    // The first key was made active at once (a `next` span of no length is not drawn).
    assert_eq!(
        spans(before)[spans(before).len() - 2..],
        [json!("active"), json!("retired")]
    );
    assert_eq!(spans(after), [json!("next"), json!("active")]);
    let newest = timeline.iter().find(|r| r["state"] == "next").unwrap();
    assert_eq!(newest["spans"], json!(["next"]));
    assert!(screenshot.exists());

    // The inspector: the fresh token passes every check; the tampered one fails only on its
    // signature.
    let fresh = &steps["inspect_fresh"];
    assert!(
        fresh["verdict"].as_str().unwrap().starts_with("Valid"),
        "{fresh}"
    );
    assert_eq!(fresh["checks"]["signature"], "true");
    assert_eq!(fresh["checks"]["revoked"], "true");
    let bad = &steps["inspect_tampered"];
    assert!(
        bad["verdict"].as_str().unwrap().contains("signature"),
        "{bad}"
    );
    for (check, ok) in bad["checks"].as_object().unwrap() {
        let expected = if check == "signature" {
            "false"
        } else {
            "true"
        };
        assert_eq!(ok, expected, "{check}: {bad}");
    }

    // The user made in the console exists, and the rotation is in the audit log under the
    // admin's name.
    assert!(
        steps["users"]["row"].as_str().unwrap().starts_with("carol"),
        "{report}"
    );
    let listed = issuer
        .command()
        .args(["users", "list", "--json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"carol\""));
    let audit = steps["audit"].as_array().unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e["actor"].as_str().unwrap().starts_with("user:") && e["target"] == after),
        "{report}"
    );

    // Signed out through end-session, back at the console.
    assert_eq!(steps["sign_out"]["signed_out"], true, "{report}");
}
