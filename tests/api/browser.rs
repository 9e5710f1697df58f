//! End to end in a real browser: Debian's Chromium, driven by `playwright-core`, signs in to the
//! example app `bank` with the password, then opens the example app `retirement` and lands signed
//! in without a password prompt (single sign-on through the issuer's session), then logs out at
//! the bank and finds the retirement app and the issuer signed out too.
//!
//! Everything is real and on loopback: the `stamp` binary with its state in a temporary folder,
//! the two example binaries (`cargo test` builds them; `cargo build --examples` does too), and the
//! browser, which may reach only those three origins. Chromium missing fails the test (CI
//! installs it: `.ci/run`); so does a missing example binary.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::interop::{Issuer, PASSWORD, direct_to_loopback, free_port, http};
use crate::rp_interop::{Kind, USER, oidc_tools, register_client};

/// Debian's Chromium behind its wrapper script (TESTING.md: the wrapper's shell warning confuses
/// drivers).
pub(crate) const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// How long the browser script may run in all.
const DEADLINE_MS: u64 = 120_000;

#[test]
fn one_login_at_the_bank_signs_the_browser_in_to_retirement_and_one_logout_ends_both() {
    // Arrange: the browser and its driver, the issuer with a user and two clients (the bank
    // confidential, the retirement app public), and the two apps.
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)"
    );
    let tools = oidc_tools().unwrap_or_else(|e| panic!("cannot install the OIDC tools: {e}"));
    let mut issuer = Issuer::new("ES256");
    issuer.add_user(USER);
    let bank_port = free_port();
    let retirement_port = free_port();
    let bank_url = format!("http://127.0.0.1:{bank_port}");
    let retirement_url = format!("http://127.0.0.1:{retirement_port}");
    let bank = register_client(&issuer, "bank", &bank_url, Kind::Confidential);
    register_client(&issuer, "retirement", &retirement_url, Kind::Public);
    issuer.serve();
    issuer.wait_ready();
    let apps = [
        ExampleApp::start("bank", bank_port, &issuer, bank.secret.as_deref()),
        ExampleApp::start("retirement", retirement_port, &issuer, None),
    ];

    // Act: the browser walks through both apps (see tests/interop/sso_browser.mjs).
    let out = tools.node_output(
        "sso_browser.mjs",
        &json!({
            "chromium": CHROMIUM,
            "issuer": issuer.url,
            "bank": bank_url,
            "retirement": retirement_url,
            "username": USER,
            "password": PASSWORD,
            "deadlineMs": DEADLINE_MS,
        }),
    );
    let logs = || {
        apps.iter()
            .map(ExampleApp::log)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        out.status.success(),
        "the browser run failed ({}): {}\n--- app logs:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("browser report: {report:#}");

    // Assert: nothing left loopback; the password was typed once, on the issuer's login page.
    assert_eq!(report["blocked"], json!([]), "{report}");
    assert_eq!(report["passwords_typed"], 1);
    let steps = &report["steps"];
    let sign_in = &steps["bank_sign_in"];
    assert_eq!(sign_in["login_page"], format!("{}/authorize", issuer.url));
    assert_eq!(sign_in["user"], USER);

    // The retirement app: signed in, and every answer of the issuer on the way was a redirect
    // (no login page, no consent page); the list is not empty, so the issuer was asked.
    let sso = &steps["retirement_sso"];
    assert_eq!(sso["user"], USER, "{report}");
    assert_eq!(sso["password_fields"], 0);
    let issuer_answers = sso["issuer_documents"].as_array().unwrap();
    assert!(!issuer_answers.is_empty(), "{report}");
    for answer in issuer_answers {
        let status = answer["status"].as_u64().unwrap();
        assert!(
            (300..400).contains(&status),
            "the issuer showed a page during single sign-on: {answer}"
        );
    }

    // Logging out at the bank went through the issuer and back.
    let log_out = &steps["bank_log_out"];
    assert_eq!(log_out["signed_out"], 1, "{report}");
    assert!(
        log_out["issuer_documents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["url"].as_str().unwrap().contains("/end-session")),
        "{report}"
    );

    // ...and ended the login for the retirement app and at the issuer.
    let after = &steps["retirement_after_log_out"];
    assert_eq!(after["user_shown"], 0, "{report}\n{}", logs());
    assert_eq!(after["signed_out"], 1, "{report}");
    assert_eq!(after["issuer_asks_password"], true, "{report}");
}

/// An example app binary (`target/<profile>/examples/NAME`) serving on a loopback port; killed
/// on drop.
struct ExampleApp {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl ExampleApp {
    /// Starts the example `name` as a client of `issuer` (with `secret` if confidential) and
    /// waits until it answers. It checks its session with the issuer on every page view
    /// (`RECHECK_SECS=0`), so a logout elsewhere shows at once.
    fn start(name: &'static str, port: u16, issuer: &Issuer, secret: Option<&str>) -> ExampleApp {
        let binary = example_binary(name);
        let prefix = name.to_uppercase();
        let log = issuer.dir.path().join(format!("{name}.log"));
        let mut cmd = Command::new(&binary);
        direct_to_loopback(&mut cmd);
        cmd.current_dir(issuer.dir.path())
            .env("STAMP_ISSUER", &issuer.url)
            .env(format!("{prefix}_PORT"), port.to_string())
            .env(format!("{prefix}_RECHECK_SECS"), "0")
            .env(format!("{prefix}_CLIENT_SECRET"), secret.unwrap_or(""))
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(log.with_extension("stderr")).unwrap());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut app = ExampleApp { child, name, log };
        app.wait_ready(port);
        app
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = stamp::clock::instant() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("example {} exited ({status}): {}", self.name, self.log());
            }
            if let Ok((200, _)) = http(port, "GET", "/", None, "") {
                return;
            }
            assert!(
                stamp::clock::instant() < deadline,
                "example {} did not answer within 30 s: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the app printed (its own lines and Rocket's).
    fn log(&self) -> String {
        let out = fs::read_to_string(&self.log).unwrap_or_default();
        let err = fs::read_to_string(self.log.with_extension("stderr")).unwrap_or_default();
        format!("[{}]\n{out}{err}", self.name)
    }
}

impl Drop for ExampleApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/examples/NAME`, next to the `deps/` folder this test binary runs from.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: build the examples first (`cargo test` does, or `cargo build --examples`)",
        binary.display()
    );
    binary
}
