//! The JWKS contract: public members only, thumbprint kids, caching headers, ETag and 304.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rocket::figment::providers::Serialized;
use rocket::http::{Header, Status};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RFC 7638 thumbprint computed here, from the published JSON only, independently of the
/// issuer's code: required members, sorted (BTreeMap), no white space.
fn independent_thumbprint(jwk: &Value) -> String {
    let required: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        other => panic!("unexpected kty {other:?}"),
    };
    let canonical: BTreeMap<&str, &str> = required
        .iter()
        .map(|m| (*m, jwk[*m].as_str().expect("string member")))
        .collect();
    let json = serde_json::to_string(&canonical).unwrap();
    URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes()))
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, Status::Ok);
    body["keys"].as_array().expect("keys array").clone()
}

#[rocket::async_test]
async fn ec_jwks_has_public_members_and_thumbprint_kids() {
    let app = TestApp::spawn().await;
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 2, "active and pre-published next key");
    for jwk in &keys {
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["crv"], "P-256");
        for coordinate in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), 32, "{coordinate} is left-padded to 32 bytes");
        }
        for private in PRIVATE_MEMBERS {
            assert!(
                jwk.get(private).is_none(),
                "private member {private} published"
            );
        }
        assert_eq!(jwk["kid"].as_str().unwrap(), independent_thumbprint(jwk));
    }
    assert_ne!(keys[0]["kid"], keys[1]["kid"]);
}

#[rocket::async_test]
async fn rsa_jwks_has_modulus_and_exponent_only() {
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("signing_alg", "RS256"))).await;
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 2);
    for jwk in &keys {
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256, "2048-bit modulus without a leading zero");
        for private in PRIVATE_MEMBERS {
            assert!(
                jwk.get(private).is_none(),
                "private member {private} published"
            );
        }
        assert_eq!(jwk["kid"].as_str().unwrap(), independent_thumbprint(jwk));
    }
}

#[rocket::async_test]
async fn jwks_is_cacheable_with_a_strong_etag() {
    let app = TestApp::spawn_with(|f| f.merge(Serialized::global("jwks_max_age", 120))).await;
    let response = app.client.get("/.well-known/jwks.json").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let headers = response.headers();
    assert_eq!(
        headers.get_one("Cache-Control"),
        Some("public, max-age=120")
    );
    assert_eq!(headers.get_one("Access-Control-Allow-Origin"), Some("*"));
    let etag = headers.get_one("ETag").expect("ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "strong ETag: {etag}"
    );
    assert_eq!(
        response.content_type(),
        Some(rocket::http::ContentType::JSON)
    );

    let again = app.client.get("/.well-known/jwks.json").dispatch().await;
    assert_eq!(
        again.headers().get_one("ETag"),
        Some(etag.as_str()),
        "stable while keys are"
    );
}

#[rocket::async_test]
async fn matching_if_none_match_gets_304_without_body() {
    let app = TestApp::spawn().await;
    app.assert_conditional_get("/.well-known/jwks.json").await;
}

#[rocket::async_test]
async fn etag_changes_when_the_key_set_changes() {
    let app = TestApp::spawn().await;
    let before = app.client.get("/.well-known/jwks.json").dispatch().await;
    let etag = before.headers().get_one("ETag").unwrap().to_string();

    app.app()
        .keys
        .rotate(
            stamp::keys::RotateOptions {
                alg: stamp::keys::Alg::Es256,
                force: true,
            },
            stamp::clock::now(),
        )
        .await
        .unwrap();

    let response = app
        .client
        .get("/.well-known/jwks.json")
        .header(Header::new("If-None-Match", etag.clone()))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok, "old ETag no longer matches");
    assert_ne!(response.headers().get_one("ETag"), Some(etag.as_str()));
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(
        body["keys"].as_array().unwrap().len(),
        3,
        "next, active, retired"
    );
}

#[rocket::async_test]
async fn discovery_documents_name_the_endpoints() {
    let app =
        TestApp::spawn_with(|f| f.merge(Serialized::global("issuer", "https://id.example.test/")))
            .await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, doc) = app.get_json(path).await;
        assert_eq!(status, Status::Ok, "{path}");
        assert_eq!(
            doc["issuer"], "https://id.example.test/",
            "exactly as configured (RFC 8414 §3.3)"
        );
        assert_eq!(
            doc["jwks_uri"],
            "https://id.example.test/.well-known/jwks.json"
        );
        assert_eq!(doc["token_endpoint"], "https://id.example.test/oauth/token");
        let grants = doc["grant_types_supported"].as_array().unwrap();
        assert!(grants.iter().any(|g| g == "password"));
        let algs = doc["access_token_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        assert!(algs.iter().any(|a| a == "ES256") && algs.iter().any(|a| a == "RS256"));
        assert!(
            !algs
                .iter()
                .any(|a| a == "none" || a.as_str().unwrap().starts_with("HS"))
        );
    }
}
