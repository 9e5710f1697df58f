//! Interop: the real `stamp` binary on a loopback port, its access tokens verified by two
//! independent libraries that fetch the JWKS themselves (PyJWT with `cryptography` and its
//! `PyJWKClient`; the `jose` npm package's `createRemoteJWKSet`), for ES256 and RS256.
//!
//! The verifiers are installed by this test into `target/interop/` (a Python venv and an npm
//! folder), once, and reused by later runs. An installation failure fails the test: it never
//! skips. All traffic stays on 127.0.0.1.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub(crate) const PASSWORD: &str = "interop horse battery staple";
const AUDIENCE: &str = "interop-api";

#[test]
fn es256_access_token_verifies_with_pyjwt_and_jose() {
    access_token_verifies_with_independent_libraries("ES256");
}

#[test]
fn rs256_access_token_verifies_with_pyjwt_and_jose() {
    access_token_verifies_with_independent_libraries("RS256");
}

fn access_token_verifies_with_independent_libraries(alg: &str) {
    // Arrange: the verifiers, the issuer and a user.
    let tools = match verifiers() {
        Ok(tools) => tools,
        Err(e) => panic!("cannot install the third-party verifiers: {e}"),
    };
    // The user is added before the server starts: two processes opening a fresh SQLite file at
    // once would race to run its migrations.
    let mut issuer = Issuer::new(alg);
    issuer.add_user("alice");
    issuer.serve();
    issuer.wait_ready();

    // Act: log in over HTTP.
    let token = issuer.login("alice");

    // Assert: both libraries accept the token and read the same claims...
    let jwks_uri = format!("{}/.well-known/jwks.json", issuer.url);
    for verifier in tools.all() {
        let out = verifier.run(&jwks_uri, &issuer.url, AUDIENCE, alg, &token);
        assert!(
            out.status.success(),
            "{} rejected a valid {alg} token: {}",
            verifier.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(verified["header"]["alg"], alg, "{}", verifier.name);
        assert_eq!(verified["header"]["typ"], "at+jwt", "{}", verifier.name);
        assert_eq!(verified["claims"]["iss"], issuer.url.as_str());
        assert_eq!(verified["claims"]["aud"], AUDIENCE);
        assert!(
            verified["claims"]["sub"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
    }

    // ...and both reject it once one character of the signature is changed, for that reason,
    // which proves the checks above could have failed.
    let forged = flip_signature_char(&token);
    for verifier in tools.all() {
        let out = verifier.run(&jwks_uri, &issuer.url, AUDIENCE, alg, &forged);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} accepted a forged {alg} token",
            verifier.name
        );
        assert!(
            stderr.contains(verifier.bad_signature),
            "{} rejected the forged token for another reason: {stderr}",
            verifier.name
        );
    }

    // ...and so does `stamp token verify` (stamp::verify through discovery), telling why.
    let cli = issuer.verify_cli(&token, AUDIENCE);
    assert!(
        cli.status.success(),
        "stamp token verify rejected a valid {alg} token: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    // The token from standard input, the issuer and audience from the settings.
    let mut from_stdin = issuer.command();
    from_stdin.args(["token", "verify", "-"]);
    let stdin_cli = crate::helpers::run_with_stdin(from_stdin, &format!("{token}\n"));
    assert!(
        stdin_cli.status.success(),
        "stamp token verify - failed: {}",
        String::from_utf8_lossy(&stdin_cli.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&stdin_cli.stdout).unwrap(),
        printed
    );
    assert_eq!(printed["aud"], AUDIENCE);
    let cli = issuer.verify_cli(&forged, AUDIENCE);
    assert!(
        !cli.status.success(),
        "stamp token verify accepted a forged token"
    );
    assert!(String::from_utf8_lossy(&cli.stderr).contains("signature"));
    let cli = issuer.verify_cli(&token, "another-api");
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("audience"));

    // ...and both reject the genuine token for an audience it was not issued to.
    for verifier in tools.all() {
        let out = verifier.run(&jwks_uri, &issuer.url, "another-api", alg, &token);
        assert!(
            !out.status.success(),
            "{} accepted a token for the wrong audience",
            verifier.name
        );
    }

    // Across a key rotation (`stamp keys rotate --force` from the shell while the server runs):
    // the server picks the new key up, signs with it, and both the new token and the one signed
    // before the rotation verify with both libraries and with `stamp token verify`.
    let old_kid = kid_of(&token);
    issuer.rotate();
    let rotated = issuer.login_until_kid_changes("alice", &old_kid);
    assert_ne!(kid_of(&rotated), old_kid);
    for verifier in tools.all() {
        for (which, t) in [("pre-rotation", &token), ("post-rotation", &rotated)] {
            let out = verifier.run(&jwks_uri, &issuer.url, AUDIENCE, alg, t);
            assert!(
                out.status.success(),
                "{} rejected the {which} {alg} token: {}",
                verifier.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for t in [&token, &rotated] {
        let cli = issuer.verify_cli(t, AUDIENCE);
        assert!(
            cli.status.success(),
            "stamp token verify after rotation: {}",
            String::from_utf8_lossy(&cli.stderr)
        );
    }
}

/// The `kid` of a token's header.
fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// Changes one character in the middle of the signature (the last character of a base64url
/// string may carry only padding bits, so changing it might not change the bytes).
pub(crate) fn flip_signature_char(token: &str) -> String {
    let sig_start = token.rfind('.').unwrap() + 1;
    let at = sig_start + 10;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(bytes).unwrap();
    assert_ne!(forged, token);
    forged
}

// ---------------------------------------------------------------------------------------------
// The issuer process.

/// The real `stamp serve` on a loopback port with its state in a temporary folder; killed on drop.
/// Also the issuer of the OpenID Connect end-to-end tests (`browser.rs`, `rp_interop.rs`).
pub(crate) struct Issuer {
    pub(crate) child: Option<Child>,
    pub(crate) dir: TempDir,
    pub(crate) port: u16,
    pub(crate) url: String,
    alg: String,
}

impl Issuer {
    /// The settings and a fresh state folder; nothing runs yet.
    pub(crate) fn new(alg: &str) -> Issuer {
        let port = free_port();
        let issuer = Issuer {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port,
            url: format!("http://127.0.0.1:{port}"),
            alg: alg.to_string(),
        };
        // A fresh deployment, as an operator makes it before adding users.
        let init = issuer
            .command()
            .arg("init")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "stamp init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        issuer
    }

    /// Starts `stamp serve`; its stderr goes to a file that [`Issuer::wait_ready`] shows on failure.
    pub(crate) fn serve(&mut self) {
        let stderr = File::create(self.dir.path().join("serve.stderr")).unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `stamp` with this issuer's settings. The shipped `Rocket.toml` is read (ROCKET_CONFIG
    /// points at the repository's file), so the test runs the real configuration; every setting
    /// that holds state or addresses is overridden by a `ROCKET_*` variable, and the current
    /// directory is the temporary folder, so nothing is written into the repository.
    pub(crate) fn command(&self) -> Command {
        let dir = self.dir.path();
        let mut cmd = crate::helpers::stamp_command(dir);
        cmd.current_dir(dir)
            .env(
                "ROCKET_CONFIG",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("Rocket.toml"),
            )
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_PORT", self.port.to_string())
            .env("ROCKET_ISSUER", &self.url)
            .env("ROCKET_AUDIENCE", AUDIENCE)
            .env("ROCKET_SIGNING_ALG", &self.alg)
            .env("ROCKET_KEY_POLL_INTERVAL", "1")
            // Two argon2 computations are plenty for one login and keep memory low.
            .env("ROCKET_PASSWORD_CONCURRENCY", "2");
        cmd
    }

    /// `stamp users add NAME --password-stdin`, as an operator would.
    pub(crate) fn add_user(&self, name: &str) {
        self.add_user_with(name, &[]);
    }

    /// `stamp users add NAME --password-stdin` with more arguments (`--admin`).
    pub(crate) fn add_user_with(&self, name: &str, extra: &[&str]) {
        let mut child = self
            .command()
            .args(["users", "add", name, "--password-stdin"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "stamp users add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `stamp keys rotate --force`, as an operator would while the server runs.
    fn rotate(&self) {
        let out = self
            .command()
            .args(["keys", "rotate", "--force"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "stamp keys rotate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Logs in until the token is signed by another key than `old_kid` (the server polls the
    /// key store every `key_poll_interval` = 1 s here).
    fn login_until_kid_changes(&self, name: &str, old_kid: &str) -> String {
        let deadline = stamp::clock::instant() + Duration::from_secs(30);
        loop {
            let token = self.login(name);
            if kid_of(&token) != old_kid {
                return token;
            }
            assert!(
                stamp::clock::instant() < deadline,
                "the server still signs with {old_kid} 30 s after the rotation"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `stamp token verify --issuer URL --audience AUD TOKEN`.
    fn verify_cli(&self, token: &str, audience: &str) -> Output {
        self.command()
            .args([
                "token",
                "verify",
                "--issuer",
                &self.url,
                "--audience",
                audience,
                token,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// What `stamp serve` has written to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("serve.stderr")).unwrap_or_default()
    }

    /// Polls `/health/ready` until it answers 200; fails with the server's stderr if it exits.
    pub(crate) fn wait_ready(&mut self) {
        let deadline = stamp::clock::instant() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "stamp serve exited ({status}): {}",
                    fs::read_to_string(self.dir.path().join("serve.stderr")).unwrap_or_default()
                );
            }
            if let Ok((200, _)) = http(self.port, "GET", "/health/ready", None, "") {
                return;
            }
            assert!(
                stamp::clock::instant() < deadline,
                "stamp serve was not ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `POST /oauth/token` with the password grant, form-encoded.
    pub(crate) fn login(&self, name: &str) -> String {
        let body = format!(
            "grant_type=password&username={name}&password={}",
            PASSWORD.replace(' ', "+")
        );
        let (status, body) = http(
            self.port,
            "POST",
            "/oauth/token",
            Some("application/x-www-form-urlencoded"),
            &body,
        )
        .unwrap();
        assert_eq!(status, 200, "login failed: {body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        json["access_token"].as_str().unwrap().to_string()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) use crate::helpers::free_port;

/// A minimal HTTP/1.0 exchange on loopback: HTTP/1.0 makes the server close the connection after
/// the response and never use chunked encoding, so reading to the end yields the whole body.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(ct) = content_type {
        request.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// The third-party verifiers.

/// One installed third-party library: how to run its verifier and signer scripts, and how it
/// words a bad signature.
pub struct Verifier {
    pub name: &'static str,
    program: PathBuf,
    script: PathBuf,
    sign_script: PathBuf,
    /// A fragment of its rejection message for a signature that does not verify.
    bad_signature: &'static str,
}

impl Verifier {
    fn run(&self, jwks_uri: &str, issuer: &str, audience: &str, alg: &str, token: &str) -> Output {
        self.command(&self.script)
            .args([jwks_uri, issuer, audience, alg, token])
            .output()
            .unwrap()
    }

    /// A token signed by this library with a key it generated, and the JWKS that publishes the
    /// key: `{"jwks": {...}, "token": "..."}`.
    pub fn sign(&self, alg: &str, issuer: &str, audience: &str) -> Value {
        let out = self
            .command(&self.sign_script)
            .args([alg, issuer, audience])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} could not sign: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn command(&self, script: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        direct_to_loopback(&mut cmd);
        cmd.arg(script).stdin(Stdio::null());
        cmd
    }
}

/// Third-party code run by a test must reach the loopback servers directly, never through a proxy.
pub(crate) fn direct_to_loopback(cmd: &mut Command) {
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost");
}

pub struct Verifiers {
    pub python: Verifier,
    pub node: Verifier,
}

impl Verifiers {
    pub fn all(&self) -> [&Verifier; 2] {
        [&self.python, &self.node]
    }
}

/// Installs (first run) or reuses (later runs) PyJWT and jose under `target/interop/`. Tests run
/// on parallel threads, so the work is done once per process (`OnceLock`) and once across
/// processes (an exclusive lock on `target/interop/.lock`).
pub fn verifiers() -> Result<&'static Verifiers, String> {
    static VERIFIERS: OnceLock<Result<Verifiers, String>> = OnceLock::new();
    VERIFIERS
        .get_or_init(install)
        .as_ref()
        .map_err(Clone::clone)
}

fn install() -> Result<Verifiers, String> {
    let (root, _lock) = locked_interop_dir()?;
    let scripts = scripts_dir();

    // Python: a venv with PyJWT and cryptography (PyJWKClient needs the latter for EC and RSA).
    let python = python_venv(
        &root.join("venv"),
        "jwt, cryptography",
        &["pyjwt>=2.8,<3", "cryptography"],
    )?;

    // Node: jose in its own npm folder; the script is copied next to node_modules so that its
    // `import 'jose'` resolves there (ES modules ignore NODE_PATH).
    let node_dir = root.join("node");
    npm_packages(&node_dir, &[("jose", "jose@6")])?;
    for script in ["verify.mjs", "sign.mjs"] {
        fs::copy(scripts.join(script), node_dir.join(script))
            .map_err(|e| format!("copy {script}: {e}"))?;
    }

    Ok(Verifiers {
        python: Verifier {
            name: "PyJWT",
            program: python,
            script: scripts.join("verify.py"),
            sign_script: scripts.join("sign.py"),
            bad_signature: "InvalidSignatureError",
        },
        node: Verifier {
            name: "jose",
            program: PathBuf::from("node"),
            script: node_dir.join("verify.mjs"),
            sign_script: node_dir.join("sign.mjs"),
            bad_signature: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        },
    })
}

/// `target/interop`, created, and the exclusive lock on its `.lock` file that serialises the
/// installers of parallel test processes (held until the returned file is dropped).
pub(crate) fn locked_interop_dir() -> Result<(PathBuf, File), String> {
    let root = interop_dir();
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let lock = File::create(root.join(".lock")).map_err(|e| format!("lock file: {e}"))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", root.display()))?;
    Ok((root, lock))
}

/// `tests/interop/`: the third-party scripts.
pub(crate) fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// The python of a venv at `venv` in which `import IMPORTS` works, made with pip installing
/// `packages` unless it already works.
pub(crate) fn python_venv(
    venv: &Path,
    imports: &str,
    packages: &[&str],
) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {imports}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages))?;
        if !ready() {
            return Err(format!(
                "{packages:?} installed but `import {imports}` fails"
            ));
        }
    }
    Ok(python)
}

/// npm packages in `dir/node_modules`, each `(name, spec)`, installed unless all are there.
pub(crate) fn npm_packages(dir: &Path, packages: &[(&str, &str)]) -> Result<(), String> {
    let installed = || {
        packages.iter().all(|(name, _)| {
            dir.join("node_modules")
                .join(name)
                .join("package.json")
                .exists()
        })
    };
    if installed() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    run(Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .args(packages.iter().map(|(_, spec)| spec)))?;
    if !installed() {
        return Err(format!(
            "npm install succeeded but {packages:?} are missing"
        ));
    }
    Ok(())
}

/// `target/interop`, next to the `target/tmp` cargo gives integration tests.
fn interop_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("interop")
}

/// Runs an installer command, turning any failure into a message with its output.
fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown}: cannot start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// `kill -9` during a stream of refresh grants loses no acknowledged rotation: every refresh
/// token the server answered with `200` is in the database after the crash (SQLite with
/// `synchronous = FULL`), and the restarted server answers it with a grant or, if an
/// unacknowledged later refresh had already spent it, with reuse detection (never a 5xx).
#[test]
fn kill_9_during_refresh_grants_loses_no_acknowledged_rotation() {
    let mut issuer = Issuer::new("ES256");
    issuer.add_user("alice");
    for delay_ms in [150u64, 400, 900] {
        issuer.serve();
        issuer.wait_ready();
        let body = format!(
            "grant_type=password&username=alice&password={}",
            PASSWORD.replace(' ', "+")
        );
        let form = Some("application/x-www-form-urlencoded");
        let (status, login) = http(issuer.port, "POST", "/oauth/token", form, &body).unwrap();
        assert_eq!(status, 200, "{login}");
        let first: Value = serde_json::from_str(&login).unwrap();
        let port = issuer.port;
        let mut token = first["refresh_token"].as_str().unwrap().to_string();
        let refresher = std::thread::spawn(move || {
            let mut acknowledged = 0;
            // Bounded: stops at the first failed exchange (the kill) or after 100 000 grants.
            for _ in 0..100_000 {
                let body = format!("grant_type=refresh_token&refresh_token={token}");
                match http(port, "POST", "/oauth/token", form, &body) {
                    Ok((200, answer)) => {
                        let json: Value = serde_json::from_str(&answer).unwrap();
                        token = json["refresh_token"].as_str().unwrap().to_string();
                        acknowledged += 1;
                    }
                    Ok((status, answer)) => panic!("refresh answered {status}: {answer}"),
                    Err(_) => break,
                }
            }
            (token, acknowledged)
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        let mut child = issuer.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (last, acknowledged) = refresher.join().unwrap();
        assert!(
            acknowledged > 0,
            "no refresh completed within {delay_ms} ms"
        );

        let db = format!("sqlite://{}", issuer.dir.path().join("stamp.db").display());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let record = runtime.block_on(async {
            let store = stamp::store::open(&db).await.unwrap();
            store
                .refresh_record(&stamp::tokens::refresh::TokenHash::of(&last))
                .await
                .unwrap()
        });
        assert!(
            record.is_some(),
            "the last acknowledged refresh token ({acknowledged} grants in) was lost"
        );

        issuer.serve();
        issuer.wait_ready();
        let (status, answer) = http(
            issuer.port,
            "POST",
            "/oauth/token",
            form,
            &format!("grant_type=refresh_token&refresh_token={last}"),
        )
        .unwrap();
        assert!(
            status == 200 || (status == 400 && answer.contains("invalid_grant")),
            "after restart: {status} {answer}"
        );
        let mut child = issuer.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
