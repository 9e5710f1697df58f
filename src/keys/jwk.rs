//! Public JWKs (RFC 7517/7518) and their RFC 7638 thumbprints, which serve as `kid`s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Alg;

/// The public members of a signing key. There is no field for a private member, so no code path
/// can put `d`, `p`, `q`… into the JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicJwk {
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// P-256 affine coordinates, each exactly 32 bytes (RFC 7518 §6.2.1.2).
    Ec { x: [u8; 32], y: [u8; 32] },
}

/// The JSON form of one published key.
#[derive(Serialize)]
struct JwkJson<'a> {
    kty: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl PublicJwk {
    /// The algorithm family this key belongs to.
    pub fn alg(&self) -> Alg {
        match self {
            PublicJwk::Rsa { .. } => Alg::Rs256,
            PublicJwk::Ec { .. } => Alg::Es256,
        }
    }

    /// The canonical JSON of RFC 7638 §3.2: required members only, in lexicographic order, no
    /// white space. Written by hand because member order is part of the hash input and
    /// serde_json does not promise an order for maps.
    pub fn canonical_json(&self) -> String {
        match self {
            PublicJwk::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
            PublicJwk::Ec { x, y } => {
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(x),
                    b64(y)
                )
            }
        }
    }

    /// The JWKS entry: `kty`, `use`, `alg`, `kid` and the public parameters.
    pub fn to_json_value(&self, kid: &str) -> serde_json::Value {
        let jwk = match self {
            PublicJwk::Rsa { n, e } => JwkJson {
                kty: "RSA",
                use_: "sig",
                alg: "RS256",
                kid,
                n: Some(b64(n)),
                e: Some(b64(e)),
                crv: None,
                x: None,
                y: None,
            },
            PublicJwk::Ec { x, y } => JwkJson {
                kty: "EC",
                use_: "sig",
                alg: "ES256",
                kid,
                n: None,
                e: None,
                crv: Some("P-256"),
                x: Some(b64(x)),
                y: Some(b64(y)),
            },
        };
        // Serialising a struct of strings cannot fail.
        serde_json::to_value(jwk).unwrap_or(serde_json::Value::Null)
    }

    /// A verification key for jsonwebtoken.
    pub fn decoding_key(&self) -> Result<jsonwebtoken::DecodingKey, jsonwebtoken::errors::Error> {
        match self {
            PublicJwk::Rsa { n, e } => {
                jsonwebtoken::DecodingKey::from_rsa_components(&b64(n), &b64(e))
            }
            PublicJwk::Ec { x, y } => {
                jsonwebtoken::DecodingKey::from_ec_components(&b64(x), &b64(y))
            }
        }
    }
}

/// RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)). Anyone holding the public key can
/// recompute it, which is why it is the `kid`.
pub fn thumbprint(jwk: &PublicJwk) -> String {
    b64(&Sha256::digest(jwk.canonical_json().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and its published thumbprint.
    #[test]
    fn rfc7638_example_thumbprint() {
        let n = URL_SAFE_NO_PAD
            .decode(concat!(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP",
                "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY",
                "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f",
                "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
            ))
            .unwrap();
        let e = URL_SAFE_NO_PAD.decode("AQAB").unwrap();
        let jwk = PublicJwk::Rsa { n, e };
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn ec_jwk_has_public_members_only() {
        let jwk = PublicJwk::Ec {
            x: [1; 32],
            y: [2; 32],
        };
        let value = jwk.to_json_value("kid-1");
        let obj = value.as_object().unwrap();
        let mut names: Vec<_> = obj.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(
            obj["x"].as_str().unwrap().len(),
            43,
            "32 bytes, unpadded base64url"
        );
    }
}
