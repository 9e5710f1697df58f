//! Invalid settings stop start-up with an error naming the setting.

use rocket::figment::providers::Serialized;

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
