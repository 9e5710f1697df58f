//! The file key store as an operator sees it: restart keeps kids, broken files stop start-up.

use std::os::unix::fs::PermissionsExt;

use rocket::figment::providers::Serialized;
use serde_json::Value;

use crate::helpers::{TestApp, figment_in};

fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    kids.sort();
    kids
}

fn manifest(app: &TestApp) -> Value {
    let text = std::fs::read_to_string(app.keys_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn active_kid(app: &TestApp) -> String {
    manifest(app)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[rocket::async_test]
async fn first_start_writes_private_key_files_and_a_manifest() {
    let app = TestApp::spawn().await;
    let manifest = manifest(&app);
    let keys = manifest["keys"].as_array().unwrap();
    let states: Vec<&str> = keys.iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert!(
        states.contains(&"active") && states.contains(&"next"),
        "{states:?}"
    );
    for key in keys {
        let path = app
            .keys_dir()
            .join(format!("{}.pem", key["kid"].as_str().unwrap()));
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(
            pem.starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----")),
            "PKCS#8 PEM"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(app.keys_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[rocket::async_test]
async fn restart_keeps_the_same_kids() {
    let app = TestApp::spawn().await;
    let (_, before) = app.get_json("/.well-known/jwks.json").await;
    let dir = app.dir.path().to_path_buf();
    let restarted = TestApp::start(&dir, |f| f).await;
    let after: Value = restarted
        .get("/.well-known/jwks.json")
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    assert_eq!(kids(&before), kids(&after));
}

#[rocket::async_test]
async fn a_corrupt_key_file_stops_start_up_and_is_not_replaced() {
    let app = TestApp::spawn().await;
    let kid = active_kid(&app);
    let path = app.keys_dir().join(format!("{kid}.pem"));
    std::fs::write(
        &path,
        concat!(
            "-----BEGIN ",
            "PRIVATE KEY-----\ngarbage\n-----END ",
            "PRIVATE KEY-----\n"
        ),
    )
    .unwrap();

    let err = stamp::build(figment_in(app.dir.path()))
        .await
        .expect_err("start-up must fail");
    let message = err.to_string();
    assert!(
        message.contains(&format!("{kid}.pem")),
        "names the file: {message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    let still = std::fs::read_to_string(&path).unwrap();
    assert!(
        still.contains("garbage"),
        "the broken file is left for the operator"
    );
    assert_eq!(active_kid(&app), kid, "no replacement key was made");
}

#[rocket::async_test]
async fn a_missing_key_file_stops_start_up() {
    let app = TestApp::spawn().await;
    let kid = active_kid(&app);
    std::fs::remove_file(app.keys_dir().join(format!("{kid}.pem"))).unwrap();
    let err = stamp::build(figment_in(app.dir.path()))
        .await
        .expect_err("start-up must fail");
    assert!(err.to_string().contains(&format!("{kid}.pem")), "{err}");
}

#[rocket::async_test]
async fn a_key_swapped_under_another_kid_stops_start_up() {
    let app = TestApp::spawn().await;
    let manifest = manifest(&app);
    let kids: Vec<&str> = manifest["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    let dir = app.keys_dir();
    let other = std::fs::read(dir.join(format!("{}.pem", kids[1]))).unwrap();
    std::fs::write(dir.join(format!("{}.pem", kids[0])), other).unwrap();
    let err = stamp::build(figment_in(app.dir.path()))
        .await
        .expect_err("start-up must fail");
    assert!(err.to_string().contains("does not match kid"), "{err}");
}

#[rocket::async_test]
async fn a_corrupt_manifest_stops_start_up() {
    let app = TestApp::spawn().await;
    std::fs::write(app.keys_dir().join("manifest.json"), "{ not json").unwrap();
    let err = stamp::build(figment_in(app.dir.path()))
        .await
        .expect_err("start-up must fail");
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[rocket::async_test]
async fn switching_algorithm_adds_keys_and_keeps_the_old_ones_published() {
    let app = TestApp::spawn().await;
    let (_, before) = app.get_json("/.well-known/jwks.json").await;
    let rsa = TestApp::start(app.dir.path(), |f| {
        f.merge(Serialized::global("signing_alg", "RS256"))
    })
    .await;
    let after: Value = rsa
        .get("/.well-known/jwks.json")
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    let after_kids = kids(&after);
    for kid in kids(&before) {
        assert!(after_kids.contains(&kid), "ES256 key {kid} still published");
    }
    let algs: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    // An existing key set gets only a next RS256 key: it signs after promotion (trust_keys.rs).
    assert_eq!(algs.iter().filter(|a| **a == "RS256").count(), 1);
}
