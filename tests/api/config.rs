//! Invalid settings stop start-up with an error naming the setting; so do misspelled settings
//! and a `ROCKET_CONFIG` that names a missing file.

use rocket::figment::providers::Serialized;

use crate::cli::{stamp, text};
use crate::helpers::figment_in;

async fn start_error(key: &str, value: serde_json::Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let figment = figment_in(dir.path()).merge(Serialized::global(key, value));
    match stamp::build(figment).await {
        Ok(_) => panic!("{key} should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[rocket::async_test]
async fn invalid_settings_are_named() {
    let cases = [
        ("signing_alg", serde_json::json!("HS256")),
        ("signing_alg", serde_json::json!("none")),
        ("rsa_bits", serde_json::json!(1024)),
        ("access_token_ttl", serde_json::json!(0)),
        ("access_token_ttl", serde_json::json!(-5)),
        ("database_url", serde_json::json!("mysql://x")),
        ("issuer", serde_json::json!("not a url")),
    ];
    for (key, value) in cases {
        let message = start_error(key, value.clone()).await;
        assert!(
            message.contains(&format!("`{key}`")),
            "{key}={value}: {message}"
        );
        assert!(!message.contains('\n'));
    }
}

#[rocket::async_test]
async fn an_unwritable_keys_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let figment = figment_in(dir.path()).merge(Serialized::global("keys_dir", file.join("keys")));
    let message = stamp::build(figment)
        .await
        .expect_err("refused")
        .to_string();
    assert!(message.contains("`keys_dir`"), "{message}");
}

#[rocket::async_test]
async fn a_misspelled_setting_stops_start_up_with_a_suggestion() {
    let message = start_error("signng_alg", serde_json::json!("RS256")).await;
    assert!(
        message.contains("unknown setting `signng_alg`"),
        "{message}"
    );
    assert!(message.contains("did you mean `signing_alg`?"), "{message}");
}

#[rocket::async_test]
async fn a_missing_config_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("Missing.toml");
    let message = start_error("config", serde_json::json!(missing)).await;
    assert!(message.contains("ROCKET_CONFIG"), "{message}");
    assert!(message.contains("Missing.toml"), "{message}");
}

#[test]
fn a_misspelled_rocket_variable_is_named_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = stamp(&dir, &["serve"], "", &[("ROCKET_SIGNNG_ALG", "RS256")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("environment variable `ROCKET_SIGNNG_ALG`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `signing_alg`?"), "{stderr}");
}

#[test]
fn rockets_own_variables_are_accepted_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::init_state(dir.path());
    let out = stamp(
        &dir,
        &["users", "list"],
        "",
        &[
            ("ROCKET_PROFILE", "release"),
            ("ROCKET_PORT", "8123"),
            ("ROCKET_CLI_COLORS", "false"),
            ("ROCKET_WORKERS", "2"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_missing_rocket_config_file_is_named_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("Nowhere.toml");
    let out = stamp(
        &dir,
        &["users", "list"],
        "",
        &[("ROCKET_CONFIG", missing.to_str().unwrap())],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ROCKET_CONFIG") && stderr.contains("Nowhere.toml"),
        "{stderr}"
    );
}
