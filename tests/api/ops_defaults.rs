//! Production behaviour of the real binary without the shipped `Rocket.toml` (a container
//! configured by environment variables only): the safe defaults live in the code; and no secret
//! reaches the log at any level (issue 15, items 2 and 3).

use base64::Engine;
use serde_json::Value;

use crate::helpers::{PASSWORD, ServedStamp, text};

/// `stamp serve` in a folder with no `Rocket.toml` above it, configured by variables only.
fn serve_without_rocket_toml(extra: &[(&str, &str)]) -> ServedStamp {
    let served = ServedStamp::start(|cmd| {
        cmd.envs(extra.iter().copied());
    });
    let found = served
        .dir
        .path()
        .ancestors()
        .any(|dir| dir.join("Rocket.toml").exists());
    assert!(
        !found,
        "the test needs a folder without Rocket.toml above it"
    );
    served
}

fn add_user(served: &ServedStamp, name: &str) {
    let out = served.run(
        &["users", "add", name, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn login_form(user: &str, password: &str) -> String {
    format!(
        "grant_type=password&username={user}&password={}",
        password.replace(' ', "+")
    )
}

#[test]
fn without_rocket_toml_the_secure_defaults_still_hold() {
    // 2 free failures per username; an address gets four times that.
    let served = serve_without_rocket_toml(&[("ROCKET_LOGIN_THROTTLE_FAILURES", "2")]);
    add_user(&served, "alice");

    // Session cookies are `Secure` by default.
    let login = served.exchange(
        "POST /login HTTP/1.0\r\nContent-Type: application/json\r\n",
        &format!(r#"{{"username":"alice","password":"{PASSWORD}","cookie":true}}"#),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let cookies: Vec<&str> = login
        .head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .collect();
    assert!(!cookies.is_empty(), "{}", login.head);
    assert!(cookies.iter().all(|c| c.contains("Secure")), "{cookies:?}");

    // No `Server: Rocket` header.
    let live = served.exchange("GET /health/live HTTP/1.0\r\n", "");
    assert_eq!(live.status, 200);
    assert!(
        !live.head.to_ascii_lowercase().contains("server:"),
        "{}",
        live.head
    );

    // X-Real-IP is not trusted: failed logins from "many addresses" are one address (the peer),
    // which the throttle stops after 8.
    let mut throttled = false;
    for i in 0..12 {
        let answer = served.post_form(
            "/oauth/token",
            &format!("X-Real-IP: 203.0.113.{i}\r\n"),
            &login_form(&format!("nobody{i}"), "wrong password"),
        );
        assert!(
            answer.status == 400 || answer.status == 429,
            "{}",
            answer.status
        );
        throttled |= answer.status == 429;
    }
    assert!(
        throttled,
        "a spoofed X-Real-IP escaped the address throttle"
    );

    // 16 KiB body limits: a 20 KiB form and a 20 KiB JSON body are refused with 413 and JSON.
    let big = format!(
        "grant_type=password&username=a&password={}",
        "x".repeat(20 * 1024)
    );
    let form = served.post_form("/oauth/token", "", &big);
    assert_eq!(form.status, 413, "{}", form.body);
    let json: Value = serde_json::from_str(&form.body).unwrap();
    assert_eq!(json["error"], "invalid_request");
    let big_json = format!(
        r#"{{"username":"a","password":"{}"}}"#,
        "x".repeat(20 * 1024)
    );
    let answer = served.exchange(
        "POST /login HTTP/1.0\r\nContent-Type: application/json\r\n",
        &big_json,
    );
    assert_eq!(answer.status, 413, "{}", answer.body);
}

/// Every secret one session of traffic uses, and the log of a server at `level` that saw it.
fn traffic_at(level: &str) -> (Vec<String>, String) {
    let mut served = serve_without_rocket_toml(&[("ROCKET_LOG_LEVEL", level)]);
    add_user(&served, "alice");
    let out = served.run(&["clients", "add", "billing", "--scope", "orders:read"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let client_secret = text(&out.stdout).trim().to_string();

    let login = served.post_form("/oauth/token", "", &login_form("alice", PASSWORD));
    assert_eq!(login.status, 200, "{}", login.body);
    let tokens: Value = serde_json::from_str(&login.body).unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    let refreshed = served.post_form(
        "/oauth/token",
        "",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let json_login = served.exchange(
        "POST /login HTTP/1.0\r\nContent-Type: application/json\r\n",
        &format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#),
    );
    assert_eq!(json_login.status, 200);

    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("billing:{client_secret}"));
    let service = served.post_form(
        "/oauth/token",
        &format!("Authorization: Basic {basic}\r\n"),
        "grant_type=client_credentials",
    );
    assert_eq!(service.status, 200, "{}", service.body);
    // The secret in the form too, and in a query string.
    let in_form = served.post_form(
        &format!("/oauth/token?client_secret={client_secret}"),
        "",
        &format!("grant_type=client_credentials&client_id=billing&client_secret={client_secret}"),
    );
    assert!(in_form.status < 500, "{}", in_form.body);
    let bearer = served.exchange(
        &format!("GET /userinfo HTTP/1.0\r\nAuthorization: Bearer {access}\r\n"),
        "",
    );
    assert!(bearer.status < 500);
    let bearer = served.exchange(
        &format!("GET /admin/keys HTTP/1.0\r\nAuthorization: Bearer {access}\r\n"),
        "",
    );
    assert!(bearer.status < 500);
    served.stop();
    let secrets = vec![
        PASSWORD.to_string(),
        PASSWORD.replace(' ', "+"),
        client_secret,
        basic,
        access,
        refresh,
    ];
    (secrets, served.log())
}

#[test]
fn no_secret_reaches_the_log_at_any_level() {
    for level in ["debug", "normal", "critical", "off"] {
        let (secrets, log) = traffic_at(level);
        if level == "debug" {
            assert!(
                log.contains("/oauth/token"),
                "debug logging is on and shows requests: {log}"
            );
        }
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "level {level}: the log shows a secret ({}…): {log}",
                &secret[..6]
            );
        }
    }
}

#[test]
fn a_database_url_password_is_never_printed_at_start() {
    for level in ["debug", "normal", "critical", "off"] {
        for url in [
            "postgres://stamp:hunter2@127.0.0.1:1/stamp",
            "postgres://stamp@127.0.0.1:1/stamp?sslmode=disable&password=hunter2",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let out = crate::helpers::run_stamp(
                dir.path(),
                &["serve"],
                "",
                &[("ROCKET_DATABASE_URL", url), ("ROCKET_LOG_LEVEL", level)],
            );
            assert!(!out.status.success());
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(!shown.contains("hunter2"), "{level}: {shown}");
            assert!(
                shown.contains("cannot reach the database at 127.0.0.1:1"),
                "{level}: {shown}"
            );
        }
    }
}
