//! The `stamp` binary: user management, token decoding, and start-up errors as one line.

use std::io::Write;
use std::process::{Output, Stdio};

use tempfile::TempDir;

use crate::helpers::{run_stamp, stamp_command};

pub use crate::helpers::text;

/// Runs `stamp ARGS` with its state in `dir`, feeding `stdin`.
pub fn stamp(dir: &TempDir, args: &[&str], stdin: &str, extra_env: &[(&str, &str)]) -> Output {
    run_stamp(dir.path(), args, stdin, extra_env)
}

#[test]
fn users_add_list_and_disable() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let add = stamp(
        &dir,
        &[
            "users",
            "add",
            "Alice",
            "--admin",
            "--role",
            "ops",
            "--password-stdin",
        ],
        "a long password\n",
        &[],
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    assert!(text(&add.stdout).contains("created user alice"));

    let again = stamp(
        &dir,
        &["users", "add", "alice", "--password-stdin"],
        "a long password\n",
        &[],
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let short = stamp(
        &dir,
        &["users", "add", "bob", "--password-stdin"],
        "short\n",
        &[],
    );
    assert!(!short.status.success());
    assert!(text(&short.stderr).contains("at least"));

    let list = stamp(&dir, &["users", "list"], "", &[]);
    let listing = text(&list.stdout);
    assert!(
        listing.contains("alice") && listing.contains("enabled") && listing.contains("ops,admin"),
        "{listing}"
    );
    assert!(!listing.contains("argon2"), "no hashes in listings");

    let disable = stamp(&dir, &["users", "disable", "alice"], "", &[]);
    assert!(disable.status.success(), "{}", text(&disable.stderr));
    assert!(text(&stamp(&dir, &["users", "list"], "", &[]).stdout).contains("disabled"));

    let missing = stamp(&dir, &["users", "disable", "nobody"], "", &[]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("not found"));
}

#[test]
fn users_add_without_a_terminal_asks_for_password_stdin() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let out = stamp(&dir, &["users", "add", "alice"], "", &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--password-stdin"));
}

#[test]
fn token_decode_prints_claims_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    // {"alg":"ES256","typ":"at+jwt"} . {"sub":"u1","aud":"stamp"} . signature
    let token = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ1MSIsImF1ZCI6InN0YW1wIn0.c2ln";
    let out = stamp(&dir, &["token", "decode", token], "", &[]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\"at+jwt\"") && stdout.contains("\"u1\""),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("WITHOUT verifying"));

    let bad = stamp(&dir, &["token", "decode", "not-a-jwt"], "", &[]);
    assert!(!bad.status.success());

    // `-` reads the token from standard input (out of the shell history and `ps`).
    let piped = stamp(&dir, &["token", "decode", "-"], &format!("{token}\n"), &[]);
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(piped.stdout, out.stdout);
    let empty = stamp(&dir, &["token", "decode", "-"], "", &[]);
    assert!(!empty.status.success());
    assert!(text(&empty.stderr).contains("no token on standard input"));
}

#[test]
fn serve_with_an_invalid_setting_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = stamp(&dir, &["serve"], "", &[("ROCKET_SIGNING_ALG", "HS256")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("`signing_alg`") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let out = stamp(&dir, &["serve"], "", &[("ROCKET_RSA_BITS", "1024")]);
    assert!(text(&out.stderr).contains("`rsa_bits`"));
}

#[test]
fn rocket_settings_are_checked_naming_the_setting_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, setting) in [
        ("ROCKET_PORT", "99999", "`port`"),
        ("ROCKET_ADDRESS", "not-an-address", "`address`"),
        ("ROCKET_LIMITS", "{json=\"lots\"}", "`limits.json`"),
    ] {
        for command in [&["serve"][..], &["users", "list"][..]] {
            let out = stamp(&dir, command, "", &[(name, value)]);
            assert!(!out.status.success());
            let stderr = text(&out.stderr);
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
            assert!(stderr.contains(setting), "{stderr}");
            assert!(
                stderr.contains(name.trim_start_matches("ROCKET_")),
                "{stderr}"
            );
        }
    }
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(created.is_empty(), "nothing is created: {created:?}");
}

#[test]
fn keys_list_shows_states_without_private_material() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let out = stamp(&dir, &["keys", "list"], "", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("active") && stdout.contains("next") && stdout.contains("ES256"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"));
    // Times are RFC 3339 (UTC), not unix seconds.
    let first = stdout.lines().nth(1).unwrap();
    assert!(first.contains('T') && first.contains('Z'), "{first}");

    let out = stamp(&dir, &["keys", "list", "--json"], "", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let keys = keys.as_array().expect("an array of keys");
    assert_eq!(keys.len(), 2, "an active and a next key");
    let states: Vec<&str> = keys.iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert!(
        states.contains(&"active") && states.contains(&"next"),
        "{states:?}"
    );
    for key in keys {
        assert_eq!(
            key["kid"].as_str().unwrap().len(),
            43,
            "an RFC 7638 thumbprint"
        );
        assert!(key["created_at"].is_i64());
        for private in ["d", "p", "q", "pem"] {
            assert!(key.get(private).is_none(), "no {private} in {key}");
        }
    }
}

#[test]
fn processes_writing_a_fresh_database_at_once_all_succeed() {
    // Each round: a new deployment, four CLI processes started together, all writing to it.
    // (Processes that create one together, `serve` and `init`, are the replicas' start race of
    // the scale-out tests.)
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        crate::helpers::init_state(dir.path());
        let children: Vec<_> = ["ann", "ben", "cat", "dan"]
            .iter()
            .map(|name| {
                let mut child = stamp_command(dir.path())
                    .args(["users", "add", name, "--password-stdin"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"a long password\n")
                    .unwrap();
                child
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let listing = text(&stamp(&dir, &["users", "list"], "", &[]).stdout);
        for name in ["ann", "ben", "cat", "dan"] {
            assert!(listing.contains(name), "{listing}");
        }
    }
}

#[test]
fn relative_paths_are_the_config_files_whichever_folder_a_command_runs_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Rocket.toml"),
        "[default]\nkeys_dir = \"keys\"\ndatabase_url = \"sqlite://stamp.db\"\n",
    )
    .unwrap();
    let deeper = dir.path().join("ops/scripts");
    std::fs::create_dir_all(&deeper).unwrap();
    // Rocket finds Rocket.toml in a parent folder; the state must be the one beside it.
    let run = |cwd: &std::path::Path, args: &[&str], stdin: &str| {
        let mut cmd = crate::helpers::stamp_command(dir.path());
        cmd.env_remove("ROCKET_DATABASE_URL")
            .env_remove("ROCKET_KEYS_DIR")
            .current_dir(cwd)
            .args(args);
        crate::helpers::run_with_stdin(cmd, stdin)
    };
    let init = run(&deeper, &["init"], "");
    assert!(init.status.success(), "{}", text(&init.stderr));
    let add = run(
        &deeper,
        &["users", "add", "ann", "--password-stdin"],
        "correct horse battery staple\n",
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    assert!(dir.path().join("stamp.db").exists(), "beside Rocket.toml");
    assert!(
        !deeper.join("stamp.db").exists(),
        "not in the current folder"
    );
    let list = run(dir.path(), &["users", "list", "--json"], "");
    assert!(
        text(&list.stdout).contains("\"ann\""),
        "{}",
        text(&list.stderr)
    );
    let keys = run(&deeper, &["keys", "list", "--json"], "");
    assert!(keys.status.success(), "{}", text(&keys.stderr));
    assert!(dir.path().join("keys/manifest.json").exists());
    assert!(!deeper.join("keys").exists());
}

#[test]
fn commands_other_than_serve_and_init_never_create_a_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stamp.db");
    for args in [
        &["users", "list"][..],
        &["users", "add", "ann", "--password-stdin"][..],
        &["clients", "add", "svc"][..],
        &["keys", "list"][..],
        &["keys", "rotate"][..],
        &["audit"][..],
    ] {
        let out = stamp(&dir, args, "a long password\n", &[]);
        assert!(!out.status.success(), "{args:?} succeeded on nothing");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("no database at {}", db.display())),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("stamp init"), "{stderr}");
    }
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(created.is_empty(), "nothing was created: {created:?}");

    // `stamp init` makes it, says so, and keeps what is there when run again.
    let first = stamp(&dir, &["init"], "", &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).starts_with("deployment created"));
    assert!(db.exists() && dir.path().join("keys/manifest.json").exists());
    let again = stamp(&dir, &["init"], "", &[]);
    assert!(text(&again.stdout).starts_with("deployment already there"));
    assert!(stamp(&dir, &["users", "list"], "", &[]).status.success());

    // Key files without their database: the key set is there, the database is not.
    std::fs::remove_file(&db).unwrap();
    let out = stamp(&dir, &["users", "list"], "", &[]);
    assert!(text(&out.stderr).contains("no database at"));
}

#[test]
fn keys_list_never_writes_and_verbose_names_what_a_command_uses() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let manifest = dir.path().join("keys/manifest.json");
    let before = std::fs::read(&manifest).unwrap();
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let keys_before = files();
    // A newly configured algorithm would be published by `serve`; listing does not do it.
    let out = stamp(
        &dir,
        &["keys", "list"],
        "",
        &[("ROCKET_SIGNING_ALG", "RS256")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("RS256"));
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        before,
        "the manifest is unchanged"
    );
    assert_eq!(files(), keys_before, "no key file written");

    let out = stamp(&dir, &["--verbose", "users", "list"], "", &[]);
    let stderr = text(&out.stderr);
    let db = dir.path().join("stamp.db");
    assert!(
        stderr.contains(&format!("database:      sqlite://{}", db.display())),
        "{stderr}"
    );
    let keys = dir.path().join("keys");
    assert!(
        stderr.contains(&format!("key store:     {}", keys.display())),
        "{stderr}"
    );
    assert!(stderr.contains("configuration: "), "{stderr}");
}

#[test]
fn a_kid_that_begins_with_a_hyphen_is_taken_as_a_kid() {
    // base64url kids begin with `-` one time in 64: `stamp keys revoke -xw…` must not read
    // it as an option.
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let out = stamp(&dir, &["keys", "revoke", "-not-a-published-kid"], "", &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("-not-a-published-kid"), "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}
