//! Access tokens (RFC 9068 JWT profile): claims, signing with the active key, unverified decoding.

pub mod dangerous;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::keys::{Alg, KeySet};

/// RFC 9068 §2.1: the media type of JWT access tokens, in the `typ` header.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token. `sub` is a stable identifier, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Who a token is for and what it may do.
#[derive(Clone, Debug)]
pub struct Subject {
    pub sub: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub roles: Vec<String>,
}

/// A signed token and what the token response reports about it.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub claims: AccessClaims,
    pub kid: String,
}

/// A signing failure: the issuer's fault, never the client's.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no active {0} key")]
    NoActiveKey(Alg),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Builds and signs access tokens.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    issuer: String,
    audience: String,
    ttl: i64,
    alg: Alg,
}

impl TokenIssuer {
    pub fn new(config: &Config) -> TokenIssuer {
        TokenIssuer {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_token_ttl,
            alg: config.signing_alg,
        }
    }

    /// Signs an access token for `subject` with the active key of the configured algorithm.
    pub fn issue(
        &self,
        keys: &KeySet,
        subject: Subject,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        let key = keys
            .active(self.alg)
            .ok_or(TokenError::NoActiveKey(self.alg))?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.sub,
            aud: self.audience.clone(),
            exp: now + self.ttl,
            iat: now,
            nbf: now,
            jti: new_jti(),
            client_id: subject.client_id,
            scope: (!subject.scope.is_empty()).then(|| subject.scope.join(" ")),
            roles: subject.roles,
        };
        let mut header = Header::new(self.alg.jwt());
        header.typ = Some(ACCESS_TOKEN_TYP.to_string());
        header.kid = Some(key.meta.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.ttl,
            claims,
            kid: key.meta.kid.clone(),
        })
    }
}

/// 128 random bits, base64url (RFC 9068 §2.2 `jti`).
fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
