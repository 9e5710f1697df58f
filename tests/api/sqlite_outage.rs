//! The SQLite half of the database-outage checks (issue 14, item 4): a database file that
//! becomes read-only and a disk that fills up under a running issuer. The expectations are the
//! PostgreSQL outage's (`scale.rs`): the JWKS and discovery are served from memory,
//! `/health/ready` answers `503`, grants that must write answer `503` `temporarily_unavailable`
//! with `Retry-After` at once, and everything recovers without a restart once the file can be
//! written again, with nothing half-written.
//!
//! The tests run as root, so file modes alone would not stop a write. Two faithful simulations
//! work for root too, on the files a running process already holds open:
//! - read-only: the immutable attribute (`chattr +i`, ext4 and most Linux file systems) on the
//!   database file, its write-ahead log and its folder: every `write(2)` fails with `EPERM`;
//! - full disk: the state on a small tmpfs of its own (`mount -t tmpfs -o size=…`) filled up by
//!   another file: every write that needs a new block fails with `ENOSPC`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{Method, Status};
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, urlencode};
use crate::scale::{
    alice_login, assert_keys_served_and_not_ready, assert_refused_fast, outage_settings, run,
    service_token, status_of, wait_for_recovery,
};

/// What the tests hold on to across the outage: the app and credentials made before it.
struct Before {
    app: TestApp,
    billing_secret: String,
    refresh: String,
    admin: String,
}

/// An issuer whose state is in `dir` (`figment` adjusts it) with `alice`, the confidential
/// client `billing`, a refresh token of `alice` and an administrator's access token.
async fn issuer_in(dir: tempfile::TempDir, figment: impl FnOnce(Figment) -> Figment) -> Before {
    let client = TestApp::start(dir.path(), |f| outage_settings(figment(f))).await;
    let app = TestApp { client, dir };
    let admin = app.admin_token().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let billing_secret = app.add_service_client("billing", &[], None).await;
    let login: Value = app
        .token_form(&alice_login())
        .await
        .into_json()
        .await
        .unwrap();
    let refresh = login["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(status_of(&app, "/health/ready").await, Status::Ok);
    Before {
        app,
        billing_secret,
        refresh,
        admin,
    }
}

/// `POST /admin/users` creating `bob`, by the administrator of `before`.
async fn add_bob(before: &Before) -> (Status, Value) {
    before
        .app
        .admin_json(
            Method::Post,
            "/admin/users",
            &before.admin,
            Some(r#"{"username":"bob","password":"another horse battery","roles":[]}"#),
        )
        .await
}

fn refresh_form(token: &str) -> String {
    format!(
        "grant_type=refresh_token&refresh_token={}",
        urlencode(token)
    )
}

/// The outage as the issuer's clients see it, then (after `restore`) the recovery.
async fn outage_and_recovery(before: &Before, db: &Path, restore: impl FnOnce()) {
    let app = &before.app;
    assert_keys_served_and_not_ready(app).await;
    // Grants that write (a login stores a session, a refresh spends the token) are refused.
    assert_refused_fast(app, &alice_login()).await;
    assert_refused_fast(app, &refresh_form(&before.refresh)).await;
    // What needs no write may still work (a connection opened before the outage serves it),
    // or is refused the same way (no usable connection): client_credentials and admin reads.
    let (status, body) = service_token(app, "billing", &before.billing_secret).await;
    assert_read_answer(status, &body);
    let (status, body) = app
        .admin_json(Method::Get, "/admin/users", &before.admin, None)
        .await;
    assert_read_answer(status, &body);
    // An admin change is refused the same way as a grant, not with a 500.
    let (status, body) = add_bob(before).await;
    assert_eq!(status, Status::ServiceUnavailable, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let metrics = crate::metrics::scrape(app).await;
    assert!(
        metrics.contains("stamp_database_unavailable_total "),
        "{metrics}"
    );

    restore();

    wait_for_recovery(app, &alice_login()).await;
    // Nothing was half-written: the refresh refused during the outage did not spend the token,
    // the refused user does not exist, and the file is intact.
    let refreshed = app.token_form(&refresh_form(&before.refresh)).await;
    assert_eq!(
        refreshed.status(),
        Status::Ok,
        "a session from before the outage"
    );
    let (status, body) = add_bob(before).await;
    assert_eq!(status, Status::Created, "{body}");
    let check = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&check)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    check.close().await;
}

/// A read during the outage: served, or `503 temporarily_unavailable`; nothing else.
fn assert_read_answer(status: Status, body: &Value) {
    match status {
        Status::Ok => {}
        Status::ServiceUnavailable => {
            assert_eq!(body["error"], "temporarily_unavailable", "{body}")
        }
        _ => panic!("a read during the outage answered {status}: {body}"),
    }
}

// ---- Read-only ---------------------------------------------------------------------------------

/// Files made immutable (`chattr +i`): not even root may write them, also through descriptors
/// opened before. Made mutable again by [`Immutable::lift`] or on drop (also when a test fails,
/// so the temporary folder can be removed).
struct Immutable {
    paths: Vec<PathBuf>,
}

impl Immutable {
    fn set(paths: Vec<PathBuf>) -> Immutable {
        chattr("+i", &paths);
        Immutable { paths }
    }

    fn lift(&mut self) {
        chattr("-i", &self.paths);
        self.paths.clear();
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        if !self.paths.is_empty() {
            let _ = Command::new("chattr").arg("-i").args(&self.paths).status();
        }
    }
}

/// `chattr FLAG PATHS` (e2fsprogs; needs root, or `CAP_LINUX_IMMUTABLE`, and a file system with
/// the immutable attribute).
fn chattr(flag: &str, paths: &[PathBuf]) {
    run(Command::new("chattr").arg(flag).args(paths));
}

#[rocket::async_test]
async fn a_read_only_sqlite_file_answers_503_keeps_the_jwks_and_recovers_without_a_restart() {
    let before = issuer_in(tempfile::tempdir().unwrap(), |f| f).await;
    let dir = before.app.dir.path().to_path_buf();
    let db = dir.join("stamp.db");
    // The database, its log and its folder (so no journal or other file can be created in it).
    // The `-shm` index stays writable: it is shared memory, and SQLite maps it.
    let mut read_only = Immutable::set(vec![db.clone(), dir.join("stamp.db-wal"), dir.clone()]);

    outage_and_recovery(&before, &db, || read_only.lift()).await;
}

// ---- Full disk ---------------------------------------------------------------------------------

/// A tmpfs of `size` mounted at `at`, lazily unmounted on drop (also when a test fails).
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        // Needs root or CAP_SYS_ADMIN.
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at));
        SmallDisk {
            at: at.to_path_buf(),
        }
    }

    /// Fills the disk with `filler` (written until `ENOSPC`).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.at.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Partial blocks, then the last bytes: nothing is left.
        while file.write(&[0u8]).is_ok_and(|n| n == 1) {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

#[rocket::async_test]
async fn a_full_disk_answers_503_keeps_the_jwks_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("disk");
    let disk = SmallDisk::mount(&state, "16m");
    // The keys and the database on the small disk, as they would share a real one.
    let db = state.join("stamp.db");
    let url = format!("sqlite://{}", db.display());
    let keys = state.join("keys");
    let before = issuer_in(dir, |f| {
        f.merge(Serialized::global("database_url", &url))
            .merge(Serialized::global("keys_dir", &keys))
    })
    .await;
    let filler = disk.fill();

    outage_and_recovery(&before, &db, || std::fs::remove_file(&filler).unwrap()).await;
    // Unmounted (lazily: the issuer may still hold its files) before the folder is removed.
    drop(disk);
    drop(before);
}
