//! `TestApp`: the real issuer on a fresh SQLite file and key folder, with request helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::Value;
use stamp::App;
use stamp::auth::Password;
use stamp::store::{NewUser, Role, Username};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// A running issuer (in process) and the folder that holds its state.
pub struct TestApp {
    pub client: Client,
    pub dir: TempDir,
}

/// The figment a test app starts from: the real `Rocket.toml` and environment, with the state
/// moved into `dir` and logging off.
pub fn figment_in(dir: &Path) -> Figment {
    stamp::config::figment()
        .merge(Serialized::global("keys_dir", dir.join("keys")))
        .merge(Serialized::global(
            "database_url",
            format!("sqlite://{}", dir.join("stamp.db").display()),
        ))
        .merge(Serialized::global("log_level", "off"))
}

impl TestApp {
    /// An ES256 issuer with default settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|f| f).await
    }

    /// An issuer whose figment `tweak` adjusts (e.g. `signing_alg = RS256`).
    pub async fn spawn_with(tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = TestApp::start(dir.path(), tweak).await;
        TestApp { client, dir }
    }

    /// An issuer whose time is `clock` (tests move a manual clock instead of sleeping).
    pub async fn spawn_on_clock(
        clock: &stamp::clock::Clock,
        tweak: impl FnOnce(Figment) -> Figment,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let rocket = stamp::build_with_clock(tweak(figment_in(dir.path())), clock.clone())
            .await
            .expect("issuer builds");
        let client = Client::tracked(rocket).await.expect("valid rocket");
        TestApp { client, dir }
    }

    /// A confidential service client (`client_credentials`, for introspection and revocation
    /// too) written straight to the store, optionally with its own algorithm; returns its secret.
    pub async fn add_service_client(
        &self,
        id: &str,
        scopes: &[&str],
        alg: Option<stamp::keys::Alg>,
    ) -> String {
        use stamp::store::{ClientId, GrantType, NewClient, Scope};

        let secret = stamp::auth::ClientSecret::generate();
        let client = NewClient {
            id: ClientId::parse(id).expect("client id"),
            secret_hash: Some(secret.hash()),
            scopes: scopes
                .iter()
                .map(|s| Scope::parse(s).expect("scope"))
                .collect(),
            alg,
            grants: GrantType::defaults(false),
            redirect_uris: Vec::new(),
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
        };
        self.app()
            .store
            .create_client(client, stamp::clock::now(), None)
            .await
            .expect("create client");
        secret.expose().to_string()
    }

    /// Starts an issuer on existing state (a restart).
    pub async fn start(dir: &Path, tweak: impl FnOnce(Figment) -> Figment) -> Client {
        let rocket = stamp::build(tweak(figment_in(dir)))
            .await
            .expect("issuer builds");
        Client::tracked(rocket).await.expect("valid rocket")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn app(&self) -> &App {
        self.client.rocket().state::<App>().expect("App is managed")
    }

    /// Creates a user straight through the store (the CLI does the same).
    pub async fn add_user(&self, name: &str, password: &str, roles: &[&str]) -> stamp::store::User {
        let app = self.app();
        let hash = app
            .passwords
            .hash(Password::new_checked(password.to_string()).expect("policy"))
            .await
            .expect("hash");
        let user = NewUser {
            username: Username::parse(name).expect("username"),
            password_hash: hash,
            roles: roles
                .iter()
                .map(|r| Role::parse(r).expect("role"))
                .collect(),
        };
        app.store
            .create_user(user, stamp::clock::now(), None)
            .await
            .expect("create user")
    }

    /// `POST /oauth/token` with a form body.
    pub async fn token_form(&self, body: &str) -> LocalResponse<'_> {
        self.client
            .post("/oauth/token")
            .header(ContentType::Form)
            .body(body)
            .dispatch()
            .await
    }

    /// A password-grant access token for `user`.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let body = format!(
            "grant_type=password&username={}&password={}",
            urlencode(user),
            urlencode(password)
        );
        let response = self.token_form(&body).await;
        assert_eq!(response.status(), Status::Ok, "login of {user} failed");
        let json: Value = response.into_json().await.expect("json");
        json["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn get_json(&self, path: &str) -> (Status, Value) {
        let response = self.client.get(path.to_string()).dispatch().await;
        let status = response.status();
        (status, response.into_json().await.unwrap_or(Value::Null))
    }
}

/// Percent-encodes a form value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts an OAuth JSON error body and returns it.
pub async fn assert_oauth_error(response: LocalResponse<'_>, status: Status, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    let body: Value = response.into_json().await.expect("JSON error body");
    assert_eq!(body["error"], error, "body: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "error_description missing: {body}"
    );
    body
}

impl TestApp {
    /// An access token for a new user with the `admin` role.
    pub async fn admin_token(&self) -> String {
        self.add_user("root", PASSWORD, &["admin"]).await;
        self.login("root", PASSWORD).await
    }

    /// Whether RFC 7662 introspection by the confidential client `gateway` (with `secret`) finds
    /// `token` active.
    pub async fn gateway_sees_active(&self, secret: &str, token: &str) -> bool {
        let response = self
            .client
            .post("/oauth/introspect")
            .header(ContentType::Form)
            .body(format!(
                "token={}&client_id=gateway&client_secret={}",
                urlencode(token),
                urlencode(secret)
            ))
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Ok, "introspection answers 200");
        let body: Value = response.into_json().await.expect("json");
        body["active"].as_bool().expect("active is a bool")
    }

    /// The status of `GET /admin/keys` with `token`: whether the admin API accepts it.
    pub async fn admin_status(&self, token: &str) -> Status {
        self.admin_call(rocket::http::Method::Get, "/admin/keys", token, None)
            .await
            .status()
    }

    /// [`TestApp::admin_call`], answered as its status and JSON body (`null` if none).
    pub async fn admin_json(
        &self,
        method: rocket::http::Method,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> (Status, Value) {
        let response = self.admin_call(method, path, token, body).await;
        let status = response.status();
        (status, response.into_json().await.unwrap_or(Value::Null))
    }

    /// Sends `method path` with a bearer token and an optional JSON body.
    pub async fn admin_call(
        &self,
        method: rocket::http::Method,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> LocalResponse<'_> {
        let mut request =
            self.client
                .req(method, path.to_string())
                .header(rocket::http::Header::new(
                    "Authorization",
                    format!("Bearer {token}"),
                ));
        if let Some(body) = body {
            request = request.header(ContentType::JSON).body(body);
        }
        request.dispatch().await
    }

    /// The stored user named `name` (it must exist).
    pub async fn user(&self, name: &str) -> stamp::store::User {
        let found = self.app().store.user_by_username(name).await;
        found
            .expect("store")
            .unwrap_or_else(|| panic!("no user {name}"))
    }

    /// The administrative entries of the audit log, oldest first, as (action, actor, target):
    /// without logins (`login.*`) and the start-up's own entry (the built-in client, by
    /// `system`), which every app has.
    pub async fn admin_audit(&self) -> Vec<(String, String, Option<String>)> {
        let mut events = self
            .app()
            .store
            .recent_audit(1000)
            .await
            .expect("audit log");
        events.reverse();
        events
            .into_iter()
            .filter(|e| !e.action.starts_with("login.") && e.actor != "system")
            .map(|e| (e.action, e.actor, e.target))
            .collect()
    }

    /// `GET path` is a conditional GET (RFC 9110 §13.1.2): a matching `If-None-Match` (the
    /// `ETag` itself, its weak form, or in a list) gets `304` with the `ETag`, `Cache-Control`
    /// and no body; another tag gets `200`. Returns the `ETag` and the full body.
    pub async fn assert_conditional_get(&self, path: &str) -> (String, String) {
        let first = self.client.get(path.to_string()).dispatch().await;
        let etag = first.headers().get_one("ETag").expect("ETag").to_string();
        let body = first.into_string().await.expect("body");
        for header in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
        ] {
            let response = self
                .client
                .get(path.to_string())
                .header(rocket::http::Header::new("If-None-Match", header.clone()))
                .dispatch()
                .await;
            assert_eq!(
                response.status(),
                Status::NotModified,
                "If-None-Match: {header}"
            );
            assert_eq!(response.headers().get_one("ETag"), Some(etag.as_str()));
            assert!(response.headers().get_one("Cache-Control").is_some());
            assert!(response.into_bytes().await.unwrap_or_default().is_empty());
        }
        let stale = self
            .client
            .get(path.to_string())
            .header(rocket::http::Header::new("If-None-Match", "\"stale\""))
            .dispatch()
            .await;
        assert_eq!(stale.status(), Status::Ok);
        (etag, body)
    }

    /// The kids the JWKS publishes now.
    pub async fn published_kids(&self) -> Vec<String> {
        let (_, jwks) = self.get_json("/.well-known/jwks.json").await;
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_string())
            .collect()
    }

    /// The kid of the active key of `alg`.
    pub fn active_kid(&self, alg: stamp::keys::Alg) -> String {
        self.app()
            .keys
            .current()
            .active(alg)
            .expect("active key")
            .meta
            .kid
            .clone()
    }

    /// Verifies `token` as a resource server would: JWK looked up by `kid` in the JWKS.
    pub async fn verify_with_jwks(&self, token: &str) -> Result<Value, String> {
        self.verified_with_jwks(token)
            .await
            .map(|(_, claims)| claims)
    }

    /// [`TestApp::verify_with_jwks`], keeping the header too.
    pub async fn verified_with_jwks(
        &self,
        token: &str,
    ) -> Result<(jsonwebtoken::Header, Value), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let (_, jwks) = self.get_json("/.well-known/jwks.json").await;
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(jwks).map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = set
            .find(&kid)
            .ok_or_else(|| format!("kid {kid} is not published"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&["http://127.0.0.1:8000"]);
        validation.set_audience(&["stamp"]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|d| (d.header, d.claims))
            .map_err(|e| e.to_string())
    }
}

/// Settings that let a test rotate without waiting: no cache time, no leeway.
pub fn no_waits(figment: Figment) -> Figment {
    figment
        .merge(Serialized::global("jwks_max_age", 0))
        .merge(Serialized::global("rotation_leeway", 0))
}

/// The real `stamp` binary.
pub const STAMP: &str = env!("CARGO_BIN_EXE_stamp");

/// The one way tests start the real `stamp` binary: its state (SQLite file and key folder) in
/// `dir`, logging off, and no `ROCKET_*` variable of the test's own environment leaking in. Add
/// arguments and further `ROCKET_*` settings to the returned command.
pub fn stamp_command(dir: &Path) -> std::process::Command {
    configure_stamp(std::process::Command::new(STAMP), dir)
}

/// [`stamp_command`] run by `sh` under `umask MASK` (a test of file modes must not depend on
/// the umask of the shell that runs the tests; the crate forbids the `unsafe` a direct
/// `umask(2)` call would need).
pub fn stamp_command_under_umask(dir: &Path, mask: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(r#"umask {mask}; exec "$0" "$@""#))
        .arg(STAMP);
    configure_stamp(cmd, dir)
}

fn configure_stamp(mut cmd: std::process::Command, dir: &Path) -> std::process::Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ROCKET_") {
            cmd.env_remove(name);
        }
    }
    cmd.env(
        "ROCKET_DATABASE_URL",
        format!("sqlite://{}", dir.join("stamp.db").display()),
    )
    .env("ROCKET_KEYS_DIR", dir.join("keys"))
    .env("ROCKET_LOG_LEVEL", "off");
    cmd
}

/// `stamp init` on the state in `dir`: a fresh deployment, as an operator makes one before
/// the other commands (which refuse to create one).
pub fn init_state(dir: &Path) {
    let out = run_stamp(dir, &["init"], "", &[]);
    assert!(out.status.success(), "stamp init: {}", text(&out.stderr));
}

/// Runs `stamp ARGS` on the state in `dir`, feeding `stdin`, with `extra_env` settings.
pub fn run_stamp(
    dir: &Path,
    args: &[&str],
    stdin: &str,
    extra_env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = stamp_command(dir);
    cmd.args(args).envs(extra_env.iter().copied());
    run_with_stdin(cmd, stdin)
}

/// Runs `cmd` to completion, feeding it `stdin` and capturing its output.
pub fn run_with_stdin(mut cmd: std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stamp starts");
    if let Some(mut input) = child.stdin.take() {
        // A command that exits without reading its input closes the pipe: not an error here.
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("stamp runs")
}

/// Output bytes as text, for assertions and failure messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An audit event for the audit-query tests: even times by `cli` adding a user, odd times by
/// `user:x` rotating keys, targeted at `t<at>`.
pub fn sample_audit_event(at: i64) -> stamp::store::AuditEvent {
    let (actor, action) = if at % 2 == 0 {
        ("cli", "users.add")
    } else {
        ("user:x", "keys.rotate")
    };
    stamp::store::AuditEvent {
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        target: Some(format!("t{at}")),
        detail: None,
    }
}

/// Polls every future together on this task until all are done (the local client's futures are
/// not `Send`, and no `futures` crate is needed): a burst released at once.
pub async fn join_all<F: std::future::Future>(
    calls: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<_> = calls.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (fut, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none()
                && let std::task::Poll::Ready(value) = fut.as_mut().poll(cx)
            {
                *out = Some(value);
            }
        }
        if done.iter().all(Option::is_some) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

impl TestApp {
    /// Signs `claims` under `header` (both JSON objects) with the issuer's active ES256 key.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let keys = self.app().keys.snapshot();
        let key = keys.active(stamp::keys::Alg::Es256).unwrap();
        let b64 = |v: &Value| b64url(&serde_json::to_vec(v).unwrap());
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &key.encoding,
            jsonwebtoken::Algorithm::ES256,
        )
        .unwrap();
        format!("{message}.{signature}")
    }
}

/// Unpadded base64url (JWS segments).
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A port that was free a moment ago (the OS picks it; the listener is closed before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// An answer read off the wire: status, head (status line and headers) and body.
pub struct WireAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One HTTP/1.0 exchange on loopback (the server closes the connection after the answer, and
/// never uses chunked encoding): `head` is the request line plus header lines, each ending in
/// `\r\n`; `Host` and `Content-Length` are added.
pub fn wire_exchange(port: u16, head: &str, body: &[u8]) -> std::io::Result<WireAnswer> {
    use std::io::{Read, Write};

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let request = format!(
        "{head}Host: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or((response.clone(), String::new()));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    Ok(WireAnswer { status, head, body })
}

/// `stamp serve` (the real binary) on a loopback port, with its state and working directory in
/// a temporary folder and its stdout and stderr in `serve.log` there; killed on drop. No
/// `Rocket.toml` is read unless the caller sets `ROCKET_CONFIG`: the temporary folder and its
/// ancestors hold none.
pub struct ServedStamp {
    child: std::process::Child,
    pub dir: TempDir,
    pub port: u16,
}

impl ServedStamp {
    /// Starts the server with `configure` adding settings (`ROCKET_*` variables) and waits until
    /// `/health/live` answers (panics with the log if it exits or takes a minute).
    pub fn start(configure: impl FnOnce(&mut std::process::Command)) -> ServedStamp {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let mut cmd = stamp_command(dir.path());
        cmd.current_dir(dir.path())
            .arg("serve")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_PASSWORD_CONCURRENCY", "2")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        configure(&mut cmd);
        let child = cmd.spawn().expect("stamp serve starts");
        let mut served = ServedStamp { child, dir, port };
        served.wait_live();
        served
    }

    fn wait_live(&mut self) {
        let deadline = stamp::clock::instant() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("stamp serve exited ({status}): {}", self.log());
            }
            if let Ok(answer) = wire_exchange(self.port, "GET /health/live HTTP/1.0\r\n", b"")
                && answer.status == 200
            {
                return;
            }
            assert!(
                stamp::clock::instant() < deadline,
                "stamp serve was not live within 60 s: {}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Everything the server wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// One exchange with the server (see [`wire_exchange`]).
    pub fn exchange(&self, head: &str, body: &str) -> WireAnswer {
        wire_exchange(self.port, head, body.as_bytes()).expect("exchange")
    }

    /// `POST PATH` with a form body and extra header lines (each ending in `\r\n`).
    pub fn post_form(&self, path: &str, extra_headers: &str, body: &str) -> WireAnswer {
        self.exchange(
            &format!(
                "POST {path} HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra_headers}"
            ),
            body,
        )
    }

    /// `stamp ARGS` on this server's state (e.g. `users add`), with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut cmd = stamp_command(self.dir.path());
        cmd.current_dir(self.dir.path()).args(args);
        run_with_stdin(cmd, stdin)
    }

    /// Stops the server and waits for it (flushes its log).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServedStamp {
    fn drop(&mut self) {
        self.stop();
    }
}
