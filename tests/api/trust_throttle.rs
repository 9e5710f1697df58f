//! Issue 10, points 3 and 4: login throttling holds under concurrency and cannot be turned
//! against the real user (device cookies, fresh addresses), password hashing refuses at once when
//! its queue is full, and the files at rest are private whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Cookie, SameSite, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use stamp::clock::Clock;

use crate::helpers::{PASSWORD, TestApp, figment_in, join_all, urlencode};

/// An issuer on a manual clock (moved with `app.app().clock.advance`), with an untracked client:
/// every request carries exactly the cookies the test gives it, so the attacker's requests never
/// pick up the owner's device cookie.
pub async fn spawn_manual(tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::manual(stamp::clock::now());
    let rocket = stamp::build_with_clock(tweak(figment_in(dir.path())), clock)
        .await
        .expect("issuer builds");
    let client = Client::untracked(rocket).await.expect("valid rocket");
    TestApp { client, dir }
}

/// A password grant for `user` from `address`, with a device cookie if given.
async fn attempt<'a>(
    app: &'a TestApp,
    user: &str,
    password: &str,
    address: &str,
    device: Option<&str>,
) -> LocalResponse<'a> {
    let mut request = app
        .client
        .post("/oauth/token")
        .header(ContentType::Form)
        .remote(std::net::SocketAddr::new(address.parse().unwrap(), 40000))
        .body(format!(
            "grant_type=password&username={user}&password={}",
            urlencode(password)
        ));
    if let Some(device) = device {
        request = request.cookie(Cookie::new("stamp_device", device.to_string()));
    }
    request.dispatch().await
}

fn retry_after(response: &LocalResponse<'_>) -> i64 {
    response
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap()
}

/// The device cookie a successful login set.
fn device_cookie(response: &LocalResponse<'_>) -> Cookie<'static> {
    response
        .headers()
        .get("Set-Cookie")
        .map(|h| Cookie::parse(h.to_string()).unwrap())
        .find(|c| c.name().contains("device"))
        .expect("a device cookie")
}

#[rocket::async_test]
async fn a_burst_of_concurrent_guesses_from_one_address_gets_only_the_free_checks() {
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let before = app.app().passwords.checks();
    // Forty guesses dispatched together: every one is past the route's parsing before the
    // first password check finishes.
    let responses =
        join_all((0..40).map(|_| attempt(&app, "alice", "a guess", "10.1.0.1", None))).await;
    let statuses: Vec<Status> = responses.iter().map(|r| r.status()).collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == Status::BadRequest)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == Status::TooManyRequests)
        .count();
    assert!(checked <= 5, "{checked} guesses checked: {statuses:?}");
    assert_eq!(checked + throttled, 40, "{statuses:?}");
    let hashed = app.app().passwords.checks() - before;
    assert!(hashed <= 5, "{hashed} argon2 checks for one address");
}

#[rocket::async_test]
async fn an_attacker_elsewhere_cannot_stop_the_owner_s_device() {
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let login = attempt(&app, "alice", PASSWORD, "10.2.0.1", None).await;
    assert_eq!(login.status(), Status::Ok);
    let device = device_cookie(&login);
    assert!(device.name().contains("device"));
    assert_eq!(device.http_only(), Some(true));
    assert_eq!(
        device.secure(),
        Some(true),
        "cookie_secure defaults to true"
    );
    assert_eq!(device.same_site(), Some(SameSite::Strict));
    assert_eq!(device.path(), Some("/"));
    assert!(device.max_age().is_some_and(|a| a.whole_days() >= 30));
    let device = device.value().to_string();

    // The attacker knows the username and keeps failing, from several addresses, for an hour.
    for round in 0..60 {
        for i in 1..=3 {
            let _ = attempt(&app, "alice", "guess", &format!("10.2.1.{i}"), None).await;
        }
        if round < 59 {
            app.app().clock.advance(60);
        }
    }
    let stranger = attempt(&app, "alice", PASSWORD, "10.2.1.1", None).await;
    assert_eq!(
        stranger.status(),
        Status::TooManyRequests,
        "without the device cookie, the account is slowed"
    );
    // The owner's device logs in at once, from home or even from the attacker's own address.
    for address in ["10.2.0.1", "10.2.1.1"] {
        let owner = attempt(&app, "alice", PASSWORD, address, Some(&device)).await;
        assert_eq!(owner.status(), Status::Ok, "device login from {address}");
    }
    // A device cookie vouches for its username only, and a forged one for none.
    app.add_user("bob", PASSWORD, &[]).await;
    for _ in 0..5 {
        let _ = attempt(&app, "bob", "guess", "10.2.1.1", None).await;
    }
    let borrowed = attempt(&app, "bob", PASSWORD, "10.2.1.1", Some(&device)).await;
    assert_eq!(borrowed.status(), Status::TooManyRequests);
    let forged = format!("x{device}");
    let forged = attempt(&app, "alice", PASSWORD, "10.2.1.1", Some(&forged)).await;
    assert_eq!(forged.status(), Status::TooManyRequests);
}

#[rocket::async_test]
async fn a_device_is_slowed_by_its_own_failures_and_kept_by_logout() {
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let login = attempt(&app, "alice", PASSWORD, "10.5.0.1", None).await;
    let device = device_cookie(&login).value().to_string();
    let body: serde_json::Value = login.into_json().await.unwrap();
    for _ in 0..5 {
        let failed = attempt(&app, "alice", "typo", "10.5.0.1", Some(&device)).await;
        assert_eq!(failed.status(), Status::BadRequest);
    }
    let blocked = attempt(&app, "alice", PASSWORD, "10.5.0.1", Some(&device)).await;
    assert_eq!(blocked.status(), Status::TooManyRequests);
    app.app().clock.advance(retry_after(&blocked));
    let ok = attempt(&app, "alice", PASSWORD, "10.5.0.1", Some(&device)).await;
    assert_eq!(ok.status(), Status::Ok);

    // `/logout` leaves the device cookie alone.
    let logout = app
        .client
        .post("/logout")
        .header(ContentType::Form)
        .cookie(Cookie::new("stamp_device", device.clone()))
        .body(format!(
            "refresh_token={}",
            urlencode(body["refresh_token"].as_str().unwrap())
        ))
        .dispatch()
        .await;
    assert!(logout.status().code < 300, "{}", logout.status());
    assert!(
        logout
            .headers()
            .get("Set-Cookie")
            .all(|c| !c.starts_with("stamp_device=")),
        "logout must not expire the device cookie"
    );
}

#[rocket::async_test]
async fn failures_from_other_addresses_do_not_block_a_first_login_from_a_fresh_one() {
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    // Three addresses guess twenty times in all: the account is slowed for them.
    for i in 0..20 {
        let _ = attempt(&app, "alice", "guess", &format!("10.3.1.{}", i % 3), None).await;
    }
    let again = attempt(&app, "alice", PASSWORD, "10.3.1.0", None).await;
    assert_eq!(again.status(), Status::TooManyRequests);
    // The owner, on a new device from an address with no failures, is not held up.
    let owner = attempt(&app, "alice", PASSWORD, "10.3.0.1", None).await;
    assert_eq!(owner.status(), Status::Ok);
}

#[rocket::async_test]
async fn an_attacker_spending_fresh_addresses_delays_a_fresh_login_only_within_the_bound() {
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    // A new address for every guess, one guess a second, for five minutes.
    for i in 0..300 {
        let address = format!("10.4.{}.{}", i / 250, i % 250 + 1);
        let _ = attempt(&app, "alice", "guess", &address, None).await;
        app.app().clock.advance(1);
    }
    let owner = attempt(&app, "alice", PASSWORD, "10.4.9.1", None).await;
    if owner.status() == Status::TooManyRequests {
        // login_throttle_fresh_max_delay = 60 (+1 for whole seconds) is the most it waits.
        let wait = retry_after(&owner);
        assert!(wait <= 61, "Retry-After {wait}");
        app.app().clock.advance(wait);
        let owner = attempt(&app, "alice", PASSWORD, "10.4.9.1", None).await;
        assert_eq!(owner.status(), Status::Ok);
    }
}

#[rocket::async_test]
async fn guessing_one_account_from_many_addresses_is_still_slowed() {
    let app = spawn_manual(|f| f).await;
    app.add_user("alice", PASSWORD, &[]).await;
    let before = app.app().passwords.checks();
    // Ten minutes of one guess a second, each from a new address (and a second guess from
    // each address later, which its failure holds to the username's own counter).
    let mut checked = 0;
    for i in 0..600 {
        let address = format!("10.6.{}.{}", i / 250, i % 250 + 1);
        let first = attempt(&app, "alice", "guess", &address, None).await;
        let second = attempt(&app, "alice", "guess 2", &address, None).await;
        checked += [first.status(), second.status()]
            .iter()
            .filter(|s| **s == Status::BadRequest)
            .count();
        app.app().clock.advance(1);
    }
    let hashed = app.app().passwords.checks() - before;
    assert_eq!(hashed as usize, checked);
    // Unthrottled that is 1200 checks; the fresh-address counter allows about one a minute.
    assert!(checked <= 30, "{checked} guesses checked in ten minutes");
}

#[rocket::async_test]
async fn a_full_password_queue_answers_503_at_once() {
    let app = spawn_manual(|f| {
        f.merge(Serialized::global("password_concurrency", 1))
            .merge(Serialized::global("password_queue", 0))
    })
    .await;
    let before = app.app().passwords.checks();
    let app = &app;
    // Different users from different addresses: the throttle lets every one through.
    let responses = join_all((0..8).map(|i| {
        let (user, address) = (format!("user{i}"), format!("10.7.0.{}", i + 1));
        async move {
            let response = attempt(app, &user, "guess", &address, None).await;
            let status = response.status();
            let retry = response
                .headers()
                .get_one("Retry-After")
                .map(str::to_string);
            (status, retry)
        }
    }))
    .await;
    let busy: Vec<_> = responses
        .iter()
        .filter(|(s, _)| *s == Status::ServiceUnavailable)
        .collect();
    assert_eq!(busy.len(), 7, "{responses:?}");
    assert!(busy.iter().all(|(_, r)| r.as_deref() == Some("1")));
    assert_eq!(app.app().passwords.checks() - before, 1);
    // The refused attempts were not counted as failures: user1 may fail freely from its address.
    for _ in 0..4 {
        let response = attempt(app, "user1", "guess", "10.7.0.2", None).await;
        assert_eq!(response.status(), Status::BadRequest);
    }
}

/// The real binary under `umask 022`, with its state in `dir`.
fn stamp_under_umask(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = crate::helpers::stamp_command_under_umask(dir, "022");
    cmd.args(args);
    crate::helpers::run_with_stdin(cmd, stdin)
}

/// `stamp init` and `stamp users add alice`, both under umask 022, in a fresh folder.
fn deployment_with_alice_under_umask_022() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (args, stdin) in [
        (&["init"][..], String::new()),
        (
            &["users", "add", "alice", "--password-stdin"][..],
            format!("{PASSWORD}\n"),
        ),
    ] {
        let out = stamp_under_umask(dir.path(), args, &stdin);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir` (not below) that starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(&dir.join("keys")), 0o700, "keys directory");
    let keys = files_starting(&dir.join("keys"), "");
    assert!(!keys.is_empty());
    for file in keys {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    let db_files = files_starting(dir, "stamp.db");
    assert!(db_files.len() >= 2, "{db_files:?}");
    for file in db_files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn keys_and_database_files_are_private_under_umask_022() {
    let dir = deployment_with_alice_under_umask_022();
    let keys = stamp_under_umask(dir.path(), &["keys", "list"], "");
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    assert_private(dir.path());
}

#[test]
fn looser_modes_left_by_an_older_version_are_tightened_at_open() {
    let dir = deployment_with_alice_under_umask_022();
    assert!(
        stamp_under_umask(dir.path(), &["keys", "list"], "")
            .status
            .success()
    );
    let loosen = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    loosen(&dir.path().join("keys"), 0o755);
    for file in files_starting(dir.path(), "stamp.db") {
        loosen(&file, 0o644);
    }
    let list = stamp_under_umask(dir.path(), &["users", "list"], "");
    assert!(list.status.success());
    let keys = stamp_under_umask(dir.path(), &["keys", "list"], "");
    assert!(keys.status.success());
    assert_private(dir.path());
}
