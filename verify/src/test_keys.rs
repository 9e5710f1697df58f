//! Key pairs for the unit tests: a private key for jsonwebtoken's signer and the public JWK the
//! verifier parses. Generated the way the issuer does (`p256`, `rsa`).

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use p256::elliptic_curve::Generate as _;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::EncodePrivateKey as _;
use rand::rngs::SysRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::json;

use crate::Alg;

/// A generated key pair with a unique `kid`.
pub(crate) struct TestKey {
    pub kid: String,
    pub alg: Alg,
    pub jwk: serde_json::Value,
    pub encoding: EncodingKey,
}

impl TestKey {
    pub fn generate(alg: Alg) -> TestKey {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let kid = format!("test-key-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (jwk, encoding) = match alg {
            Alg::Es256 => {
                let key = p256::SecretKey::try_generate_from_rng(&mut SysRng).unwrap();
                let point = key.public_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                let jwk = json!({"kty":"EC","use":"sig","alg":"ES256","kid":kid,"crv":"P-256",
                    "x": b64(&bytes[1..33]), "y": b64(&bytes[33..65])});
                let der = key.to_pkcs8_der().unwrap();
                (jwk, EncodingKey::from_ec_der(der.as_bytes()))
            }
            Alg::Rs256 => {
                let key = rsa::PrivateKey::new(&mut SysRng, 2048).unwrap();
                let jwk = json!({"kty":"RSA","use":"sig","alg":"RS256","kid":kid,
                    "n": b64(&key.n_bytes()), "e": b64(&key.e_bytes())});
                let der = key.to_pkcs1_der().unwrap();
                (jwk, EncodingKey::from_rsa_der(der.as_bytes()))
            }
        };
        TestKey {
            kid,
            alg,
            jwk,
            encoding,
        }
    }
}

/// The issuer of the framework tests' tokens.
#[cfg(any(feature = "axum", feature = "rocket"))]
pub(crate) const ISSUER: &str = "https://id.test";

/// One ES256 key and tokens of [`ISSUER`] for audience `api`, verified against a fixed key set:
/// what the framework integration tests need.
#[cfg(any(feature = "axum", feature = "rocket"))]
pub(crate) struct Fixture {
    key: TestKey,
}

#[cfg(any(feature = "axum", feature = "rocket"))]
impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            key: TestKey::generate(Alg::Es256),
        }
    }

    pub fn verifier(&self) -> crate::Verifier<crate::VerifyingKeys> {
        let jwks = serde_json::to_vec(&json!({ "keys": [self.key.jwk] })).unwrap();
        crate::Verifier::new(
            crate::VerifierConfig::new(ISSUER, "api"),
            crate::VerifyingKeys::parse(&jwks).unwrap(),
        )
    }

    /// Claims issued `offset` seconds from now, valid for a minute.
    pub fn claims_at(&self, offset: i64, scope: &str, roles: &[&str]) -> serde_json::Value {
        let now = crate::unix_now() + offset;
        json!({"iss": ISSUER, "sub": "user-1", "aud": "api", "exp": now + 60, "iat": now,
               "jti": "j", "client_id": "c", "scope": scope, "roles": roles})
    }

    pub fn token(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.key.alg.jwt());
        header.kid = Some(self.key.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.key.encoding).unwrap()
    }
}
