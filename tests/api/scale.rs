//! Scale-out operations against PostgreSQL (issue 15, items 1, 5 and 8; issue 14, item 4):
//! replicas that start together on an empty database, concurrent first use of a second
//! algorithm, and a database outage under running replicas (a private cluster, stopped and
//! started again), with the 503 timing, the split readiness and recovery without a restart.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::task::Poll;
use std::time::Duration;

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use serde_json::Value;
use stamp::admin::{Actor, NewServiceClient};
use stamp::keys::Alg;
use stamp::store::ClientId;

use crate::helpers::{PASSWORD, TestApp, free_port, urlencode};
use crate::postgres::{database_url_for_tests, replica, replica_figment, start_error};

/// An empty database of its own on the test server (`CREATE DATABASE`), dropped by
/// [`FreshDatabase::drop_now`]; left-overs of failed runs older than an hour are dropped at the
/// next creation.
struct FreshDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    async fn create() -> Option<FreshDatabase> {
        let server_url = database_url_for_tests()?;
        let now = stamp::clock::now();
        let name = format!(
            "stamp_scale_{now}_{}",
            stamp::store::random_id()
                .to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        let admin = sqlx::PgPool::connect(&server_url).await.unwrap();
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname ~ '^stamp_scale_[0-9]{10}_'",
        )
        .fetch_all(&admin)
        .await
        .unwrap_or_default();
        for db in old {
            let created: i64 = db[12..22].parse().unwrap_or(now);
            if created < now - 3_600 {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
            }
        }
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = with_database(&server_url, &name);
        Some(FreshDatabase {
            server_url,
            name,
            url,
        })
    }

    async fn drop_now(self) {
        let admin = sqlx::PgPool::connect(&self.server_url).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}

/// `url` naming the database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Builds `n` replicas at the same moment on `url`; every one must come up.
async fn start_together(url: &str, n: usize) -> Vec<TestApp> {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let builds = dirs
        .iter()
        .map(|dir| stamp::build(replica_figment(dir.path(), url)));
    let built = futures_join_all(builds).await;
    let mut apps = Vec::new();
    for (result, dir) in built.into_iter().zip(dirs) {
        let rocket = match result {
            Ok(rocket) => rocket,
            Err(e) => panic!("a replica started together with others failed: {e}"),
        };
        let client = Client::tracked(rocket).await.unwrap();
        apps.push(TestApp { client, dir });
    }
    apps
}

/// Runs the futures concurrently (on this task) and collects their outputs in order.
async fn futures_join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = slot
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *out = Some(value);
                *slot = None;
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter()
        .map(|out| out.expect("every future finished"))
        .collect()
}

#[rocket::async_test]
async fn three_replicas_started_at_once_on_an_empty_database_all_come_up() {
    for trial in 0..5 {
        let Some(db) = FreshDatabase::create().await else {
            return;
        };
        let apps = start_together(&db.url, 3).await;
        // One key set, the same on every replica.
        let generations: Vec<u64> = apps
            .iter()
            .map(|a| a.app().keys.current().manifest().generation)
            .collect();
        for app in &apps {
            app.app().keys.reload_if_changed().await.unwrap();
        }
        let kids: Vec<String> = apps.iter().map(|a| a.active_kid(Alg::Es256)).collect();
        assert!(
            kids.iter().all(|k| *k == kids[0]),
            "trial {trial}: replicas disagree on the active key: {kids:?} (generations {generations:?})"
        );
        let stored = apps[0].app().keys.current().manifest().clone();
        assert_eq!(
            stored.generation, 1,
            "trial {trial}: one bootstrap, not several"
        );
        drop(apps);
        db.drop_now().await;
    }
}

/// `client_credentials` for `id` on `app`: the status, and the error code if any.
pub(crate) async fn service_token(app: &TestApp, id: &str, secret: &str) -> (Status, Value) {
    let response = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id={id}&client_secret={}",
            urlencode(secret)
        ))
        .await;
    let status = response.status();
    (status, response.into_json().await.unwrap_or(Value::Null))
}

/// Twelve simultaneous `client_credentials` requests for `id`, spread over three replicas.
async fn round(apps: &[TestApp], id: &str, secret: &str) -> Vec<(Status, Value)> {
    futures_join_all((0..12).map(|i| service_token(&apps[i % 3], id, secret))).await
}

#[rocket::async_test]
async fn concurrent_first_use_of_a_second_algorithm_across_replicas_never_answers_500() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let apps = start_together(&db.url, 3).await;
    // The client (and its RS256 keys) is added on one replica while the others serve.
    let (client, secret) = apps[0]
        .app()
        .admin
        .add_client(
            &Actor::Cli,
            &apps[0].app().keys,
            NewServiceClient {
                id: ClientId::parse("reports").unwrap(),
                scopes: Vec::new(),
                alg: Some(Alg::Rs256),
                public: false,
                grants: Vec::new(),
                redirect_uris: Vec::new(),
                first_party: true,
                post_logout_redirect_uris: Vec::new(),
            },
        )
        .await
        .unwrap();
    let secret = secret.unwrap().expose().to_string();
    let id = client.id.as_str().to_string();
    for (status, body) in round(&apps, &id, &secret).await {
        assert!(
            status == Status::Ok || status == Status::ServiceUnavailable,
            "first use of RS256 answered {status}: {body}"
        );
    }
    // Every replica's upkeep promotes the first RS256 key at once (no waits in these tests):
    // one wins, the others find it done.
    let now = stamp::clock::now();
    let ticks = futures_join_all(apps.iter().map(|a| a.app().keys.tick(now))).await;
    let rotated: usize = ticks.into_iter().map(|t| t.unwrap()).sum();
    assert_eq!(
        rotated, 1,
        "exactly one replica promotes the first RS256 key"
    );
    for (status, body) in round(&apps, &id, &secret).await {
        assert_eq!(status, Status::Ok, "{body}");
    }
    drop(apps);
    db.drop_now().await;
}

// ---- A database outage under running replicas ------------------------------------------------

/// A PostgreSQL cluster of the test's own on a spare port, which the test may stop and start
/// (TESTING.md). Stopped and removed on drop, also when the test fails.
struct PrivateCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl PrivateCluster {
    /// `None` when no PostgreSQL server binaries are installed (then the test cannot run; CI
    /// machines have them).
    fn start() -> Option<PrivateCluster> {
        database_url_for_tests()?;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())?;
        let dir = std::env::temp_dir().join(format!(
            "stamp-pg-{}-{}",
            std::process::id(),
            stamp::store::random_id().replace(|c: char| !c.is_ascii_alphanumeric(), "")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = PrivateCluster {
            dir,
            port: free_port(),
            bin,
        };
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(&cluster.dir));
        cluster.as_postgres("initdb", &["-D", ".", "-A", "trust", "-U", "postgres"]);
        cluster.pg_ctl_start();
        run(Command::new("createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "stamp",
        ]));
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/stamp", self.port)
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(&self.dir);
        run(&mut cmd);
    }

    fn pg_ctl_start(&self) {
        let options = format!("-p {} -k {}", self.port, self.dir.display());
        let log = self.dir.join("log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                ".",
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "start",
                "-w",
            ],
        );
    }

    fn stop(&self) {
        self.as_postgres("pg_ctl", &["-D", ".", "stop", "-m", "fast", "-w"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", ".", "stop", "-m", "immediate", "-w"])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` to completion; it must succeed (its output is the failure message).
pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The acquire timeout the outage test runs with, in seconds.
pub(crate) const ACQUIRE_TIMEOUT: u64 = 1;

pub(crate) fn outage_settings(figment: Figment) -> Figment {
    figment.merge(Serialized::global(
        "database_acquire_timeout",
        ACQUIRE_TIMEOUT,
    ))
}

pub(crate) async fn status_of(app: &TestApp, path: &str) -> Status {
    app.client.get(path).dispatch().await.status()
}

/// What an issuer whose database is out answers without it (issue 14, item 4), whatever the
/// database: the JWKS, discovery and `/health/ready?scope=keys` from memory, and `/health/ready`
/// `503` with `Retry-After`.
pub(crate) async fn assert_keys_served_and_not_ready(app: &TestApp) {
    assert_eq!(status_of(app, "/.well-known/jwks.json").await, Status::Ok);
    assert_eq!(
        status_of(app, "/.well-known/openid-configuration").await,
        Status::Ok
    );
    assert_eq!(status_of(app, "/health/ready?scope=keys").await, Status::Ok);
    let ready = app.client.get("/health/ready").dispatch().await;
    assert_eq!(ready.status(), Status::ServiceUnavailable);
    assert!(ready.headers().get_one("Retry-After").is_some());
}

/// The token request `form` during an outage: refused honestly (`503`
/// `temporarily_unavailable` with `Retry-After`) and fast.
pub(crate) async fn assert_refused_fast(app: &TestApp, form: &str) {
    let started = stamp::clock::instant();
    let response = app.token_form(form).await;
    let took = started.elapsed();
    assert_eq!(response.status(), Status::ServiceUnavailable, "{form}");
    assert!(response.headers().get_one("Retry-After").is_some());
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        took < Duration::from_millis(ACQUIRE_TIMEOUT * 1000 + 1500),
        "a grant during the outage took {took:?}"
    );
}

/// The password grant's form for `alice`.
pub(crate) fn alice_login() -> String {
    format!(
        "grant_type=password&username=alice&password={}",
        urlencode(PASSWORD)
    )
}

/// Waits (30 s at most) until the token request `form` and `/health/ready` answer `200` again
/// on `app`, which is not restarted.
pub(crate) async fn wait_for_recovery(app: &TestApp, form: &str) {
    let deadline = stamp::clock::instant() + Duration::from_secs(30);
    loop {
        if app.token_form(form).await.status() == Status::Ok
            && status_of(app, "/health/ready").await == Status::Ok
        {
            return;
        }
        assert!(
            stamp::clock::instant() < deadline,
            "no recovery 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[rocket::async_test]
async fn a_database_outage_answers_503_fast_keeps_the_jwks_and_recovers_without_a_restart() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.url();
    let a = replica(&url, outage_settings).await;
    let b = replica(&url, outage_settings).await;
    a.add_user("alice", PASSWORD, &[]).await;
    let secret = a
        .add_service_client("billing", &["orders:read"], None)
        .await;
    let login = a
        .token_form(&alice_login())
        .await
        .into_json::<Value>()
        .await
        .unwrap();
    let refresh = login["refresh_token"].as_str().unwrap().to_string();
    for app in [&a, &b] {
        assert_eq!(service_token(app, "billing", &secret).await.0, Status::Ok);
        assert_eq!(status_of(app, "/health/ready").await, Status::Ok);
    }

    cluster.stop();

    for app in [&a, &b] {
        assert_keys_served_and_not_ready(app).await;
        assert_refused_fast(
            app,
            "grant_type=client_credentials&client_id=billing&client_secret=x",
        )
        .await;
        assert_refused_fast(app, &alice_login()).await;
    }
    let metrics = crate::metrics::scrape(&a).await;
    assert!(
        metrics.contains("stamp_grants_unavailable_total{grant=\"client_credentials\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stamp_database_unavailable_total "),
        "{metrics}"
    );

    // A replica started while the database is down says where it could not connect.
    let message =
        start_error(|f| outage_settings(f.merge(Serialized::global("database_url", url.as_str()))))
            .await;
    assert!(
        message.contains(&format!(
            "cannot reach the database at 127.0.0.1:{}",
            cluster.port
        )),
        "{message}"
    );

    cluster.pg_ctl_start();

    // Recovery without a restart: token traffic comes back within a few seconds.
    let billing = format!(
        "grant_type=client_credentials&client_id=billing&client_secret={}",
        urlencode(&secret)
    );
    for app in [&a, &b] {
        wait_for_recovery(app, &billing).await;
    }
    let refreshed = b
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&refresh)
        ))
        .await;
    assert_eq!(
        refreshed.status(),
        Status::Ok,
        "a session from before the outage"
    );
    // Key-set changes flow between replicas again.
    let token = a.admin_token().await;
    let rotated = a
        .client
        .post("/admin/keys/rotate")
        .header(ContentType::JSON)
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .body(r#"{"force":true}"#)
        .dispatch()
        .await;
    assert_eq!(rotated.status(), Status::Ok);
    let deadline = stamp::clock::instant() + Duration::from_secs(30);
    while b.active_kid(Alg::Es256) != a.active_kid(Alg::Es256) {
        assert!(
            stamp::clock::instant() < deadline,
            "the other replica did not learn of a rotation after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---- Key-encryption-key rotation -------------------------------------------------------------

/// A second KEK (the first is [`crate::postgres::KEK_B64`]).
const NEW_KEK: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn with_kek(kek: &str) -> impl FnOnce(Figment) -> Figment + '_ {
    move |f| f.merge(Serialized::global("key_encryption_key", kek))
}

#[rocket::async_test]
async fn a_kek_is_rotated_by_rewrap_under_concurrent_traffic() {
    let Some((pool, url)) = crate::postgres::fresh_schema_with_url().await else {
        return;
    };
    let old = crate::postgres::KEK_B64;
    let ring = format!("{NEW_KEK},{old}");
    let a = replica(&url, with_kek(old)).await;
    let before = a.admin_token().await;
    // Replicas with both KEKs, the new one first, serve while the keys are rewrapped.
    let b = replica(&url, with_kek(&ring)).await;
    let c = replica(&url, with_kek(&ring)).await;
    let secret = b.add_service_client("billing", &[], None).await;
    let store =
        stamp::keys::PgKeyStore::new(pool.clone(), stamp::keys::Kek::from_base64(&ring).unwrap());
    let traffic = futures_join_all(
        (0..12).map(|i| service_token(if i % 2 == 0 { &b } else { &c }, "billing", &secret)),
    );
    let (rewrapped, answers) = tokio::join!(store.rewrap(), traffic);
    let rewrapped = rewrapped.unwrap();
    assert!(!rewrapped.rewrapped.is_empty(), "{rewrapped:?}");
    for (status, body) in answers {
        assert_eq!(status, Status::Ok, "{body}");
    }
    // Running it again finds nothing left to do (an interrupted run is simply run again).
    let again = store.rewrap().await.unwrap();
    assert!(again.rewrapped.is_empty(), "{again:?}");
    assert_eq!(again.current, rewrapped.rewrapped.len() + rewrapped.current);

    // The old KEK can now be dropped: a replica with only the new one starts and accepts tokens
    // issued before the rotation.
    let d = replica(&url, with_kek(NEW_KEK)).await;
    d.verify_with_jwks(&before).await.unwrap();
    assert_eq!(
        d.admin_call(rocket::http::Method::Get, "/admin/keys", &before, None)
            .await
            .status(),
        Status::Ok
    );
    // A replica with only the old KEK says which key it cannot decrypt and which setting.
    let message = start_error(|f| {
        f.merge(Serialized::global("database_url", url.as_str()))
            .merge(Serialized::global("key_store", "database"))
            .merge(Serialized::global("key_encryption_key", old))
    })
    .await;
    assert!(message.contains("signing_keys row "), "{message}");
    assert!(message.contains("`key_encryption_key`"), "{message}");
}

// ---- Migration from the embedded deployment, backup and restore ------------------------------

/// `client_credentials` status for `billing` on `app`.
async fn billing_status(app: &TestApp, secret: &str) -> Status {
    service_token(app, "billing", secret).await.0
}

#[rocket::async_test]
async fn migrate_moves_an_embedded_deployment_and_tokens_from_before_keep_working() {
    let Some(target) = FreshDatabase::create().await else {
        return;
    };
    // A populated embedded deployment: users, a service client, sessions, audit, rotated keys.
    let embedded = TestApp::spawn().await;
    let admin = embedded.admin_token().await;
    embedded.add_user("alice", PASSWORD, &[]).await;
    let login: Value = embedded
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await
        .into_json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_string();
    let refresh = login["refresh_token"].as_str().unwrap().to_string();
    let secret = embedded.add_service_client("billing", &[], None).await;
    let rotated = embedded
        .admin_call(
            rocket::http::Method::Post,
            "/admin/keys/rotate",
            &admin,
            Some(r#"{"force":true}"#),
        )
        .await
        .status();
    assert_eq!(rotated, Status::Ok);
    let audit_before = embedded.app().store.recent_audit(1000).await.unwrap().len();
    assert!(audit_before > 0);
    let kids_before = embedded.published_kids().await;
    let TestApp { client, dir } = embedded;
    drop(client);

    let sqlite = format!("sqlite://{}", dir.path().join("stamp.db").display());
    let migrate = || {
        crate::helpers::run_stamp(
            dir.path(),
            &["migrate", "--from", &sqlite, "--to", &target.url],
            "",
            &[("ROCKET_KEY_ENCRYPTION_KEY", crate::postgres::KEK_B64)],
        )
    };
    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        crate::helpers::text(&out.stderr)
    );
    let report = crate::helpers::text(&out.stdout);
    assert!(report.contains("users: 2 row(s)"), "{report}");

    let scaled = replica(&target.url, |f| f).await;
    assert_eq!(scaled.published_kids().await, kids_before);
    scaled.verify_with_jwks(&access).await.unwrap();
    assert_eq!(
        scaled
            .admin_call(rocket::http::Method::Get, "/admin/keys", &admin, None)
            .await
            .status(),
        Status::Ok,
        "an admin token from before the move is accepted online"
    );
    let refreshed = scaled
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&refresh)
        ))
        .await
        .status();
    assert_eq!(
        refreshed,
        Status::Ok,
        "a refresh token from before the move"
    );
    assert_eq!(billing_status(&scaled, &secret).await, Status::Ok);
    let audit_after = scaled.app().store.recent_audit(1000).await.unwrap().len();
    assert!(
        audit_after >= audit_before,
        "{audit_after} < {audit_before}"
    );

    // A second run is refused: the target is no longer empty.
    let again = migrate();
    assert!(!again.status.success());
    assert!(
        crate::helpers::text(&again.stderr).contains("not empty"),
        "{}",
        crate::helpers::text(&again.stderr)
    );

    // Backup and restore (docs/scale-out.md, "Backup and restore"): pg_dump of the deployment
    // holds the keys encrypted; restored into another database with the same KEK, it serves the
    // same keys.
    let dump = dir.path().join("backup.sql");
    run(Command::new("pg_dump").args([
        "--no-owner",
        "--file",
        &dump.display().to_string(),
        &target.url,
    ]));
    let dumped = std::fs::read_to_string(&dump).unwrap();
    assert!(dumped.contains("signing_keys"));
    assert!(
        !dumped.contains("PRIVATE KEY"),
        "keys stay encrypted in the dump"
    );
    let Some(restored) = FreshDatabase::create().await else {
        return;
    };
    run(Command::new("psql").args([
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--file",
        &dump.display().to_string(),
        &restored.url,
    ]));
    let back = replica(&restored.url, |f| f).await;
    assert_eq!(back.published_kids().await, kids_before);
    back.verify_with_jwks(&access).await.unwrap();
    assert_eq!(billing_status(&back, &secret).await, Status::Ok);
    target.drop_now().await;
    restored.drop_now().await;
}
