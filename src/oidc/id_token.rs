//! ID tokens (OpenID Connect Core §2, §3.1.3.6): claims, `at_hash`, signing with the key that
//! signed the access token (`typ: JWT`), and reading one back as an `id_token_hint`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::KeySet;

/// The `typ` of an ID token (not `at+jwt`: an ID token must never pass as an access token).
pub const ID_TOKEN_TYP: &str = "JWT";

/// The claims of an ID token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    /// The client the token is for.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The issuer browser session (OpenID Connect Front-Channel Logout §3 `sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// §3.1.3.6: base64url of the left half of the SHA-256 of the access token's ASCII text (the
/// hash of ES256 and RS256 alike).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Why an ID token could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// The key that signed the access token is no longer in the set (a rotation in between).
    #[error("signing key {0} is not in the key set")]
    NoKey(String),
    #[error("signing the ID token failed: {0}")]
    Sign(String),
    /// A hint that is not one of this issuer's ID tokens.
    #[error("the id_token_hint is not an ID token of this issuer")]
    Invalid,
}

/// Signs `claims` with the key `kid` of `keys` (the one that signed the access token).
pub fn sign(keys: &KeySet, kid: &str, claims: &IdClaims) -> Result<String, IdTokenError> {
    let key = keys
        .find(kid)
        .ok_or_else(|| IdTokenError::NoKey(kid.to_string()))?;
    let mut header = Header::new(key.meta.alg.jwt());
    header.typ = Some(ID_TOKEN_TYP.to_string());
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key.encoding)
        .map_err(|e| IdTokenError::Sign(e.to_string()))
}

/// Reads an `id_token_hint` (RP-initiated logout §2): one of this issuer's ID tokens, signed by
/// a published key, with `typ: JWT`. Expiry is not checked: a hint may be old.
pub fn read_hint(keys: &KeySet, issuer: &str, token: &str) -> Result<IdClaims, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Invalid)?;
    if header.typ.as_deref() != Some(ID_TOKEN_TYP) {
        return Err(IdTokenError::Invalid);
    }
    let kid = header.kid.ok_or(IdTokenError::Invalid)?;
    let key = keys.find(&kid).ok_or(IdTokenError::Invalid)?;
    if key.meta.alg.jwt() != header.alg {
        return Err(IdTokenError::Invalid);
    }
    let decoding = key
        .public
        .decoding_key()
        .map_err(|_| IdTokenError::Invalid)?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    jsonwebtoken::decode::<IdClaims>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|_| IdTokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_follows_the_openid_example() {
        // OpenID Connect Core, Appendix A.3's access token and at_hash (RS256 = SHA-256).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
