//! OpenID Connect interop: real relying-party libraries drive the authorization code flow against
//! the real `stamp` binary on a loopback port: `openid-client` (npm) for a confidential
//! third-party client (login and consent forms) on an ES256 issuer, Authlib (Python, with
//! requests) for a public client on an RS256 issuer. Each
//! finds the endpoints through discovery, signs the user in through the hosted login form (the
//! scripts post it as a browser would, CSRF field and pre-login cookie included, and capture the
//! redirect to a redirect URI nothing listens on), exchanges the code with PKCE, validates the ID
//! token with the library's own checks and the discovered JWKS, and calls userinfo.
//!
//! Also the tools and set-up of the browser test (`browser.rs`): the libraries and
//! `playwright-core` are installed by the tests under `target/interop/` (next to the access-token
//! verifiers of `interop.rs`), once; an installation failure fails the test, never skips it.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::interop::{
    Issuer, PASSWORD, direct_to_loopback, free_port, locked_interop_dir, npm_packages, python_venv,
    scripts_dir,
};

/// The user every end-to-end test signs in as.
pub(crate) const USER: &str = "alice";

#[test]
fn openid_client_signs_in_a_third_party_client_and_validates_the_id_token() {
    // Arrange: the library, an ES256 issuer, a user, a confidential third-party client (its
    // users see a consent screen).
    let tools = oidc_tools().unwrap_or_else(|e| panic!("cannot install the OIDC tools: {e}"));
    let mut issuer = Issuer::new("ES256");
    issuer.add_user(USER);
    let base = format!("http://127.0.0.1:{}", free_port());
    let client = register_client(&issuer, "node-rp", &base, Kind::ThirdParty);
    issuer.serve();
    issuer.wait_ready();

    // Act: the whole flow, twice from the same cookie jar.
    let report = tools.run_node(
        "rp_openid_client.mjs",
        &client.script_config(&issuer, &base),
    );

    // Assert: the login form and the consent form posted, the ID token as openid-client
    // validated it, userinfo.
    assert_eq!(report["server"], issuer.url.as_str());
    let trail = report["first_trail"].to_string();
    assert_eq!(report["first_forms"], 2, "{report}");
    // (the login answers with the consent page itself)
    assert!(trail.contains("POST /authorize/login -> 200"), "{trail}");
    assert!(trail.contains("POST /authorize/consent -> 303"), "{trail}");
    assert_id_token(&report, &issuer, "node-rp", "ES256");
    assert_eq!(
        report["token_type"].as_str().map(str::to_lowercase),
        Some("bearer".into())
    );
    assert_eq!(report["has_refresh_token"], true);
    // Single sign-on, consent remembered: the second request of the same jar posts no form...
    assert_eq!(report["second_forms"], 0, "{report}");
    // ...and openid-client refuses an answer whose ID token carries another nonce, which shows
    // that the checks above could fail.
    let wrong = report["wrong_nonce"].as_str().unwrap();
    assert!(
        wrong.contains("claim nonce"),
        "wrong nonce not refused for its nonce: {wrong}"
    );
}

#[test]
fn authlib_signs_in_a_public_client_and_validates_the_id_token() {
    // Arrange: the library, an RS256 issuer, a user, a public client (PKCE, no secret).
    let tools = oidc_tools().unwrap_or_else(|e| panic!("cannot install the OIDC tools: {e}"));
    let mut issuer = Issuer::new("RS256");
    issuer.add_user(USER);
    let base = format!("http://127.0.0.1:{}", free_port());
    let client = register_client(&issuer, "python-rp", &base, Kind::Public);
    issuer.serve();
    issuer.wait_ready();

    // Act.
    let report = tools.run_python("rp_authlib.py", &client.script_config(&issuer, &base));

    // Assert: one form, the validated ID token, userinfo; a forged signature is refused.
    assert_eq!(report["forms"], 1, "{report}");
    assert_id_token(&report, &issuer, "python-rp", "RS256");
    assert_eq!(report["has_refresh_token"], true);
    let forged = report["forged"].as_str().unwrap();
    assert!(
        forged.contains("BadSignature"),
        "forged ID token not refused for its signature: {forged}"
    );
}

/// The ID token claims and header and the userinfo answer of a relying-party report.
fn assert_id_token(report: &Value, issuer: &Issuer, client_id: &str, alg: &str) {
    let header = &report["id_token_header"];
    assert_eq!(header["alg"], alg, "{report}");
    assert_eq!(header["typ"], "JWT", "{report}");
    let claims = &report["claims"];
    assert_eq!(claims["iss"], issuer.url.as_str(), "{report}");
    assert_eq!(claims["aud"], client_id, "{report}");
    let sub = claims["sub"].as_str().unwrap();
    assert!(!sub.is_empty());
    for claim in ["exp", "iat", "auth_time"] {
        assert!(claims[claim].is_i64(), "{claim} missing: {report}");
    }
    assert!(claims["nonce"].is_string(), "{report}");
    let userinfo = &report["userinfo"];
    assert_eq!(userinfo["sub"], sub, "{report}");
    assert_eq!(userinfo["preferred_username"], USER, "{report}");
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// A client with a secret (authenticates with Basic), the same marked third-party (consent
/// screen), or a public one (PKCE alone).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Confidential,
    ThirdParty,
    Public,
}

/// A client registered with the CLI.
pub(crate) struct Registered {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
}

impl Registered {
    /// The JSON configuration the relying-party scripts read.
    fn script_config(&self, issuer: &Issuer, base: &str) -> Value {
        json!({
            "issuer": issuer.url,
            "clientId": self.id,
            "clientSecret": self.secret,
            "redirectUri": format!("{base}/callback"),
            "username": USER,
            "password": PASSWORD,
        })
    }
}

/// `stamp clients add ID` for the authorization code flow, as an operator would: redirect URI
/// `{base}/callback`, back after logout to `{base}/`.
pub(crate) fn register_client(issuer: &Issuer, id: &str, base: &str, kind: Kind) -> Registered {
    let mut cmd = issuer.command();
    cmd.args(["clients", "add", id])
        .args(["--grant", "authorization_code", "--grant", "refresh_token"])
        .args(["--scope", "openid", "--scope", "profile"])
        .args(["--redirect-uri", &format!("{base}/callback")])
        .args(["--post-logout-redirect-uri", &format!("{base}/")]);
    match kind {
        Kind::Confidential => {}
        Kind::ThirdParty => {
            cmd.arg("--third-party");
        }
        Kind::Public => {
            cmd.arg("--public");
        }
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stamp clients add {id} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = (kind != Kind::Public).then(|| {
        let secret = stdout.trim().to_string();
        assert!(
            !secret.is_empty() && !secret.contains(' '),
            "no secret: {stdout}"
        );
        secret
    });
    Registered {
        id: id.to_string(),
        secret,
    }
}

// ---------------------------------------------------------------------------------------------
// The tools.

/// `playwright-core` and `openid-client` in an npm folder, Authlib in a Python venv.
pub(crate) struct OidcTools {
    node_dir: PathBuf,
    python: PathBuf,
    scripts: PathBuf,
}

impl OidcTools {
    /// Runs `node SCRIPT CONFIG` (the script copied next to `node_modules`) and returns the JSON
    /// report it prints; a failure shows its stderr.
    pub(crate) fn run_node(&self, script: &str, config: &Value) -> Value {
        let mut cmd = Command::new("node");
        cmd.current_dir(&self.node_dir)
            .arg(self.node_dir.join(script));
        report(script, run_script(cmd, config))
    }

    /// Runs `python SCRIPT CONFIG` in the venv and returns its JSON report.
    pub(crate) fn run_python(&self, script: &str, config: &Value) -> Value {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.scripts.join(script));
        report(script, run_script(cmd, config))
    }

    /// [`OidcTools::run_node`] without judging the outcome.
    pub(crate) fn node_output(&self, script: &str, config: &Value) -> Output {
        let mut cmd = Command::new("node");
        cmd.current_dir(&self.node_dir)
            .arg(self.node_dir.join(script));
        run_script(cmd, config)
    }
}

fn run_script(mut cmd: Command, config: &Value) -> Output {
    direct_to_loopback(&mut cmd);
    cmd.arg(config.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn report(script: &str, out: Output) -> Value {
    assert!(
        out.status.success(),
        "{script} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Installs (first run) or reuses the tools under `target/interop/`, once per process and, under
/// the lock `interop.rs` also takes, once across processes.
pub(crate) fn oidc_tools() -> Result<&'static OidcTools, String> {
    static TOOLS: OnceLock<Result<OidcTools, String>> = OnceLock::new();
    TOOLS.get_or_init(install).as_ref().map_err(Clone::clone)
}

fn install() -> Result<OidcTools, String> {
    let (root, _lock) = locked_interop_dir()?;
    let scripts = scripts_dir();

    // Node: the scripts are copied next to node_modules (ES modules ignore NODE_PATH).
    let node_dir = root.join("oidc-node");
    npm_packages(
        &node_dir,
        &[
            ("playwright-core", "playwright-core@1"),
            ("openid-client", "openid-client@6"),
        ],
    )?;
    for script in [
        "signin.mjs",
        "rp_openid_client.mjs",
        "sso_browser.mjs",
        "console_browser.mjs",
        "chromium.mjs",
    ] {
        fs::copy(scripts.join(script), node_dir.join(script))
            .map_err(|e| format!("copy {script}: {e}"))?;
    }

    // Python: Authlib and requests in their own venv.
    let python = python_venv(
        &root.join("oidc-venv"),
        "authlib, requests, cryptography",
        &["authlib>=1.3,<2", "requests>=2.31,<3", "cryptography"],
    )?;
    Ok(OidcTools {
        node_dir,
        python,
        scripts,
    })
}
