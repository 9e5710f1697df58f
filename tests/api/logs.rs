//! Issue 13 item 3: structured logs. The real binary with `log_format = "json"` at the `normal`
//! level runs a scripted scenario (CLI user, password logins by form and JSON, refresh,
//! client_credentials, the authorization-code flow, admin user creation, password reset,
//! client secret rotation, a failing login, a caller's request id and none). Then every line it
//! wrote must be one JSON object; every request has exactly one line with its id (the one echoed
//! in `X-Request-Id`), method, route template, status and latency; token grants carry their grant
//! type, client and outcome; and no password, token, client secret, code or cookie issued or
//! presented appears anywhere in the output. The text format keeps one line per request too.

use base64::Engine;
use serde_json::Value;

use crate::helpers::{PASSWORD, ServedStamp, WireAnswer, text, urlencode};
use crate::oidc::{VERIFIER, query, redirect_of};

/// The new password of the reset, and the one the admin gives a new user.
const RESET_PASSWORD: &str = "quiet meadow lantern orbit";
const NEW_USER_PASSWORD: &str = "amber falcon ridge tundra";

/// `stamp serve` with `log_format` and the `normal` level (the release default).
fn serve(log_format: &str) -> ServedStamp {
    ServedStamp::start(|cmd| {
        cmd.env("ROCKET_LOG_FORMAT", log_format)
            .env("ROCKET_LOG_LEVEL", "normal");
    })
}

/// The value of response header `name` (case-insensitive).
fn header(answer: &WireAnswer, name: &str) -> Option<String> {
    answer.head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The `Cookie` header that sends back every cookie `answer` set.
fn cookies_of(answer: &WireAnswer) -> (String, Vec<String>) {
    let pairs: Vec<String> = answer
        .head
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case("set-cookie").then(|| {
                value
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
        })
        .collect();
    let values = pairs
        .iter()
        .filter_map(|p| p.split_once('=').map(|(_, v)| v.to_string()))
        // Long enough to be a secret rather than a flag.
        .filter(|v| v.len() >= 16)
        .collect();
    (format!("Cookie: {}\r\n", pairs.join("; ")), values)
}

/// The hidden form field `name` of an HTML page.
fn form_field(body: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}: {body}"))
        + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_string()
}

/// The JSON body of `answer`, which must have `status`.
fn json(answer: &WireAnswer, status: u16) -> Value {
    assert_eq!(answer.status, status, "{}{}", answer.head, answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

/// What a scenario did: every secret it saw, and each request whose log line is checked, with
/// the id echoed to it and what its line must say.
#[derive(Default)]
struct Scenario {
    secrets: Vec<String>,
    requests: Vec<Expected>,
}

/// One request's expected log line.
struct Expected {
    request_id: String,
    method: &'static str,
    route: &'static str,
    status: u16,
    grant: Option<(&'static str, &'static str, &'static str)>,
}

impl Scenario {
    fn secret(&mut self, value: &str) {
        assert!(value.len() >= 8, "a secret worth searching for: {value:?}");
        self.secrets.push(value.to_string());
    }

    /// `POST /oauth/token` with `extra_headers` and `body`, recorded as a `grant` (type, client,
    /// outcome).
    fn token(
        &mut self,
        served: &ServedStamp,
        extra_headers: &str,
        body: &str,
        grant: (&'static str, &'static str, &'static str),
    ) -> WireAnswer {
        let answer = served.post_form("/oauth/token", extra_headers, body);
        self.expect(answer, "POST", "/oauth/token", Some(grant))
    }

    /// The JSON body of a `200` token answer, its tokens `names` noted as secrets.
    fn issued(&mut self, answer: &WireAnswer, names: &[&str]) -> Value {
        let body = json(answer, 200);
        for name in names {
            let token = body[name].as_str();
            self.secret(token.unwrap_or_else(|| panic!("no {name}: {body}")));
        }
        body
    }

    /// Records `answer` to `method route` for the log check; returns it.
    fn expect(
        &mut self,
        answer: WireAnswer,
        method: &'static str,
        route: &'static str,
        grant: Option<(&'static str, &'static str, &'static str)>,
    ) -> WireAnswer {
        let request_id = header(&answer, "X-Request-Id")
            .unwrap_or_else(|| panic!("no X-Request-Id echoed: {}", answer.head));
        self.requests.push(Expected {
            request_id,
            method,
            route,
            status: answer.status,
            grant,
        });
        answer
    }
}

/// The scripted traffic, against a server whose log format does not matter to it.
fn run_scenario(served: &ServedStamp) -> Scenario {
    let mut seen = Scenario::default();
    for password in [PASSWORD, RESET_PASSWORD, NEW_USER_PASSWORD] {
        seen.secret(password);
        seen.secret(&urlencode(password));
        seen.secret(&password.replace(' ', "+"));
    }
    let out = served.run(
        &["users", "add", "root", "--admin", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A password login by form, and its refresh.
    let login_form = format!(
        "grant_type=password&username=root&password={}",
        urlencode(PASSWORD)
    );
    let login = seen.token(served, "", &login_form, ("password", "stamp", "issued"));
    let tokens = seen.issued(&login, &["access_token", "refresh_token"]);
    let admin = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let refreshed = seen.token(
        served,
        "",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        ("refresh_token", "stamp", "issued"),
    );
    seen.issued(&refreshed, &["access_token", "refresh_token"]);
    let bearer = format!("Authorization: Bearer {admin}\r\n");
    let admin_json = |method: &str, path: &str, body: &str| {
        served.exchange(
            &format!("{method} {path} HTTP/1.0\r\n{bearer}Content-Type: application/json\r\n"),
            body,
        )
    };

    // The admin creates a user with a password, resets it, and the user logs in by JSON.
    let created = admin_json(
        "POST",
        "/admin/users",
        &format!(r#"{{"username":"alice","password":"{NEW_USER_PASSWORD}"}}"#),
    );
    let created = seen.expect(created, "POST", "/admin/users", None);
    let alice = json(&created, 201)["id"].as_str().unwrap().to_string();
    let reset = admin_json(
        "POST",
        &format!("/admin/users/{alice}/password"),
        &format!(r#"{{"password":"{RESET_PASSWORD}"}}"#),
    );
    let reset = seen.expect(reset, "POST", "/admin/users/<id>/password", None);
    assert_eq!(reset.status, 204, "{}", reset.body);
    let json_login = served.exchange(
        "POST /login HTTP/1.0\r\nContent-Type: application/json\r\n",
        &format!(r#"{{"username":"alice","password":"{RESET_PASSWORD}"}}"#),
    );
    let json_login = seen.expect(
        json_login,
        "POST",
        "/login",
        Some(("password", "stamp", "issued")),
    );
    seen.issued(&json_login, &["access_token", "refresh_token"]);

    // A failing login: the old password.
    let failed = seen.token(
        served,
        "",
        &format!(
            "grant_type=password&username=alice&password={}",
            urlencode(NEW_USER_PASSWORD)
        ),
        ("password", "stamp", "invalid_grant"),
    );
    assert_eq!(json(&failed, 400)["error"], "invalid_grant");
    let truncated = served.exchange(
        "POST /login HTTP/1.0\r\nContent-Type: application/json\r\n",
        &format!(r#"{{"username":"alice","password":"{RESET_PASSWORD}""#),
    );
    let truncated = seen.expect(
        truncated,
        "POST",
        "/login",
        Some(("password", "stamp", "invalid_request")),
    );
    assert_eq!(json(&truncated, 400)["error"], "invalid_request");

    // A service client: created by the admin API, client_credentials with Basic and with the
    // form, then its secret rotated and the new one used.
    let client = admin_json(
        "POST",
        "/admin/clients",
        r#"{"id":"billing","scopes":["orders:read"]}"#,
    );
    let client = seen.expect(client, "POST", "/admin/clients", None);
    let secret = json(&client, 201)["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    seen.secret(&secret);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("billing:{secret}"));
    seen.secret(&basic);
    let service = seen.token(
        served,
        &format!("Authorization: Basic {basic}\r\n"),
        "grant_type=client_credentials",
        ("client_credentials", "billing", "issued"),
    );
    seen.issued(&service, &["access_token"]);
    let rotated = admin_json("POST", "/admin/clients/billing/secret", "");
    let rotated = seen.expect(rotated, "POST", "/admin/clients/<id>/secret", None);
    let new_secret = json(&rotated, 200)["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    seen.secret(&new_secret);
    let service = seen.token(
        served,
        "",
        &format!("grant_type=client_credentials&client_id=billing&client_secret={new_secret}"),
        ("client_credentials", "billing", "issued"),
    );
    seen.issued(&service, &["access_token"]);
    let stale = seen.token(
        served,
        &format!("Authorization: Basic {basic}\r\n"),
        "grant_type=client_credentials",
        ("client_credentials", "billing", "invalid_client"),
    );
    assert_eq!(stale.status, 401, "the rotated-out secret is refused");

    // The authorization-code flow of a confidential first-party app, by a browser.
    let app = admin_json(
        "POST",
        "/admin/clients",
        &format!(
            r#"{{"id":"webapp","grants":["authorization_code","refresh_token"],"redirect_uris":["{}"]}}"#,
            redirect_of("webapp")
        ),
    );
    let app_secret = json(&app, 201)["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    seen.secret(&app_secret);
    let page = served.exchange(
        &format!("GET /authorize?{} HTTP/1.0\r\n", query("webapp", &[])),
        "",
    );
    let page = seen.expect(page, "GET", "/authorize", None);
    assert_eq!(page.status, 200, "{}", page.body);
    let (cookie, values) = cookies_of(&page);
    for value in &values {
        seen.secret(value);
    }
    let csrf = form_field(&page.body, "csrf");
    seen.secret(&csrf);
    let signed_in = served.post_form(
        "/authorize/login",
        &cookie,
        &format!(
            "request_id={}&csrf={}&username=alice&password={}",
            urlencode(&form_field(&page.body, "request_id")),
            urlencode(&csrf),
            urlencode(RESET_PASSWORD)
        ),
    );
    let signed_in = seen.expect(signed_in, "POST", "/authorize/login", None);
    let location = header(&signed_in, "Location")
        .unwrap_or_else(|| panic!("no redirect: {}{}", signed_in.head, signed_in.body));
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    seen.secret(&code);
    for value in cookies_of(&signed_in).1 {
        seen.secret(&value);
    }
    let app_basic =
        base64::engine::general_purpose::STANDARD.encode(format!("webapp:{app_secret}"));
    let redeemed = seen.token(
        served,
        &format!("Authorization: Basic {app_basic}\r\n"),
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
            urlencode(&redirect_of("webapp"))
        ),
        ("authorization_code", "webapp", "issued"),
    );
    seen.issued(&redeemed, &["access_token", "refresh_token", "id_token"]);
    seen.secret(VERIFIER);

    // A caller's request id is kept and echoed; an insane one is replaced; none gets one.
    let given = served.exchange(
        "GET /.well-known/jwks.json HTTP/1.0\r\nX-Request-Id: trace-42.abc\r\n",
        "",
    );
    assert_eq!(
        header(&given, "X-Request-Id").as_deref(),
        Some("trace-42.abc")
    );
    seen.expect(given, "GET", "/.well-known/jwks.json", None);
    let insane = served.exchange(
        "GET /health/ready HTTP/1.0\r\nX-Request-Id: no spaces\"allowed\r\n",
        "",
    );
    let echoed = header(&insane, "X-Request-Id").unwrap();
    assert!(
        !echoed.contains("allowed") && echoed.len() == 22,
        "{echoed}"
    );
    seen.expect(insane, "GET", "/health/ready", None);
    let none = served.exchange("GET /admin/keys HTTP/1.0\r\n", "");
    seen.expect(none, "GET", "/admin/keys", None);
    // A query string never reaches the log, not even through a 404.
    let secret_query = served.exchange(
        &format!(
            "GET /nowhere?password={} HTTP/1.0\r\n",
            urlencode(NEW_USER_PASSWORD)
        ),
        "",
    );
    assert_eq!(secret_query.status, 404);
    seen
}

#[test]
fn json_logs_have_one_parsable_line_per_request_and_no_secrets() {
    let mut served = serve("json");
    let seen = run_scenario(&served);
    served.stop();
    let log = served.log();

    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    for line in &lines {
        for field in ["time", "level", "target", "message"] {
            assert!(line[field].is_string(), "no {field}: {line}");
        }
    }
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|line| line["target"] == "stamp::request")
        .collect();
    for request in &requests {
        assert_eq!(request["level"], "INFO", "{request}");
        assert!(
            request["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{request}"
        );
        assert_eq!(request["client_ip"], "127.0.0.1", "{request}");
        let route = request["route"].as_str().unwrap_or_default();
        assert!(!route.contains('?'), "a query string in the log: {request}");
    }
    for expected in &seen.requests {
        let matching: Vec<&&Value> = requests
            .iter()
            .filter(|line| line["request_id"] == expected.request_id.as_str())
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "one line for {}: {log}",
            expected.request_id
        );
        let line = matching[0];
        assert_eq!(line["method"], expected.method, "{line}");
        assert_eq!(line["route"], expected.route, "{line}");
        assert_eq!(line["status"], expected.status, "{line}");
        match expected.grant {
            Some((grant_type, client_id, outcome)) => {
                assert_eq!(line["grant_type"], grant_type, "{line}");
                assert_eq!(line["client_id"], client_id, "{line}");
                assert_eq!(line["outcome"], outcome, "{line}");
            }
            None => assert!(line.get("grant_type").is_none(), "{line}"),
        }
    }
    // The 404 has its line, without its query; Rocket's own request lines are gone.
    assert!(
        requests
            .iter()
            .any(|line| line["status"] == 404 && line["route"].is_null()),
        "{log}"
    );
    for chatter in [
        "Matched:",
        "Outcome:",
        "Response succeeded",
        "No matching routes",
        "Request guard",
    ] {
        assert!(
            !log.contains(chatter),
            "Rocket's chatter at normal: {chatter}"
        );
    }
    // The start-up summary is JSON too.
    assert!(
        lines
            .iter()
            .any(|line| line["listening_on"] == format!("http://127.0.0.1:{}", served.port)),
        "{log}"
    );

    for secret in &seen.secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log shows a secret ({}…): {log}",
            &secret[..6]
        );
    }
}

#[test]
fn text_logs_have_one_line_per_request() {
    let mut served = serve("text");
    let before = served.log().lines().count();
    let answer = served.exchange(
        "GET /.well-known/jwks.json?x=1 HTTP/1.0\r\nX-Request-Id: text-check-1\r\n",
        "",
    );
    assert_eq!(answer.status, 200);
    let failed = served.post_form(
        "/oauth/token",
        "",
        &format!(
            "grant_type=password&username=nobody&password={}",
            urlencode(PASSWORD)
        ),
    );
    assert_eq!(failed.status, 400);
    served.stop();
    let log = served.log();
    let new: Vec<&str> = log.lines().skip(before).collect();
    let jwks: Vec<&&str> = new.iter().filter(|l| l.contains("text-check-1")).collect();
    assert_eq!(jwks.len(), 1, "{log}");
    for part in [
        "request ",
        "method=GET",
        "route=/.well-known/jwks.json",
        "status=200",
        "latency_ms=",
    ] {
        assert!(jwks[0].contains(part), "{part}: {}", jwks[0]);
    }
    let grant: Vec<&&str> = new
        .iter()
        .filter(|l| l.contains("route=/oauth/token"))
        .collect();
    assert_eq!(grant.len(), 1, "{log}");
    for part in ["status=400", "grant_type=password", "outcome=invalid_grant"] {
        assert!(grant[0].contains(part), "{part}: {}", grant[0]);
    }
    assert!(
        new.iter()
            .all(|l| !l.contains("?x=1") && !l.contains("Matched:")),
        "{log}"
    );
    assert!(!log.contains("correct horse"), "{log}");
}
