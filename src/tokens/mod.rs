//! Access tokens (RFC 9068 JWT profile): claims, signing with the active key, unverified decoding.

pub mod dangerous;
pub mod refresh;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use secrecy::SecretString;
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

/// A signed token and what the token response reports about it. `Debug` hides the token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub access_token: SecretString,
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
            alg: config.keys.signing_alg,
        }
    }

    /// Signs an access token for `subject` with the active key of the configured algorithm.
    pub fn issue(
        &self,
        keys: &KeySet,
        subject: Subject,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        self.issue_with_alg(keys, subject, self.alg, now)
    }

    /// The configured signing algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Signs an access token for `subject` with the active key of `alg` (a service client that
    /// names its algorithm).
    pub fn issue_with_alg(
        &self,
        keys: &KeySet,
        subject: Subject,
        alg: Alg,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        let key = keys.active(alg).ok_or(TokenError::NoActiveKey(alg))?;
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
        // The key's signer holds the key pair parsed once and the pre-encoded header.
        let access_token = key
            .signer
            .sign(&claims)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok(IssuedToken {
            access_token: SecretString::from(access_token),
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

/// Why one of this issuer's own access tokens was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("typ must be at+jwt")]
    WrongType,
    #[error("algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("the signing key is not published (unknown, removed or revoked kid)")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds (RFC 8725 §3.10 leaves it to the verifier).
pub const LEEWAY: u64 = 5;

impl TokenIssuer {
    /// Verifies one of this issuer's access tokens with the rules a resource server applies: the
    /// `typ`, an allowlisted algorithm that matches the published key named by `kid`, the
    /// signature, `iss`, `aud`, `exp` and `nbf` (at `now`). Used by the admin guard and
    /// introspection.
    pub fn verify(
        &self,
        keys: &KeySet,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, VerifyError> {
        use jsonwebtoken::errors::ErrorKind;

        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(VerifyError::WrongType);
        }
        let alg = Alg::ALL
            .into_iter()
            .find(|a| a.jwt() == header.alg)
            .ok_or_else(|| VerifyError::Algorithm(format!("{:?}", header.alg)))?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = keys.find(kid).ok_or(VerifyError::UnknownKey)?;
        if key.meta.alg != alg {
            return Err(VerifyError::Algorithm(format!(
                "{alg} header on a {} key",
                key.meta.alg
            )));
        }
        let mut validation = jsonwebtoken::Validation::new(alg.jwt());
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // jsonwebtoken reads the wall clock for exp/nbf; the explicit `now` check below keeps
        // this function's answer a function of its inputs.
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => VerifyError::Signature,
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
                ErrorKind::InvalidIssuer => VerifyError::Issuer,
                ErrorKind::InvalidAudience => VerifyError::Audience,
                _ => VerifyError::Malformed,
            })?;
        let claims = data.claims;
        let leeway = LEEWAY as i64;
        if claims.exp + leeway <= now {
            return Err(VerifyError::Expired);
        }
        if claims.nbf - leeway > now {
            return Err(VerifyError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use std::sync::Arc;

    use jsonwebtoken::Header;

    use super::*;
    use crate::keys::{KeyMeta, KeyState, Manifest, PrivateKey, thumbprint};

    fn key_set(alg: Alg) -> KeySet {
        let key = PrivateKey::generate(alg, 2048).unwrap();
        let meta = KeyMeta {
            kid: thumbprint(&key.public_jwk()),
            alg,
            state: KeyState::Active,
            created_at: 0,
            activated_at: Some(0),
            retired_at: None,
            remove_after: None,
            removed_at: None,
            revoked_at: None,
        };
        let manifest = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta.clone()],
        };
        KeySet::build(manifest, vec![(meta, Arc::new(key), "test".into())]).unwrap()
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer {
            issuer: "https://id.test".into(),
            audience: "api".into(),
            ttl: 60,
            alg: Alg::Es256,
        }
    }

    fn subject() -> Subject {
        Subject {
            sub: "u1".into(),
            client_id: "c".into(),
            scope: vec!["admin".into()],
            roles: vec![],
        }
    }

    #[test]
    fn own_tokens_verify_until_they_expire() {
        let keys = key_set(Alg::Es256);
        let now = clock_now();
        let token = issuer().issue(&keys, subject(), now).unwrap();
        let claims = issuer()
            .verify(&keys, token.access_token.expose_secret(), now)
            .unwrap();
        assert_eq!(claims.scope.as_deref(), Some("admin"));
        assert_eq!(
            issuer().verify(
                &keys,
                token.access_token.expose_secret(),
                now + 60 + LEEWAY as i64
            ),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            issuer().verify(&keys, token.access_token.expose_secret(), now - 10),
            Err(VerifyError::NotYetValid)
        );
    }

    #[test]
    fn other_issuers_and_audiences_are_refused() {
        let keys = key_set(Alg::Es256);
        let now = clock_now();
        let token = issuer()
            .issue(&keys, subject(), now)
            .unwrap()
            .access_token
            .expose_secret()
            .to_string();
        let other_iss = TokenIssuer {
            issuer: "https://evil.test".into(),
            ..issuer()
        };
        assert_eq!(
            other_iss.verify(&keys, &token, now),
            Err(VerifyError::Issuer)
        );
        let other_aud = TokenIssuer {
            audience: "other".into(),
            ..issuer()
        };
        assert_eq!(
            other_aud.verify(&keys, &token, now),
            Err(VerifyError::Audience)
        );
    }

    #[test]
    fn tokens_from_unpublished_keys_are_refused() {
        let now = clock_now();
        let token = issuer()
            .issue(&key_set(Alg::Es256), subject(), now)
            .unwrap()
            .access_token
            .expose_secret()
            .to_string();
        assert_eq!(
            issuer().verify(&key_set(Alg::Es256), &token, now),
            Err(VerifyError::UnknownKey)
        );
    }

    #[test]
    fn forged_and_confused_tokens_are_refused() {
        let keys = key_set(Alg::Es256);
        let now = clock_now();
        let token = issuer()
            .issue(&keys, subject(), now)
            .unwrap()
            .access_token
            .expose_secret()
            .to_string();
        let kid = keys.keys()[0].meta.kid.clone();
        // alg "none"
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#)),
            token.split('.').nth(1).unwrap()
        );
        assert!(issuer().verify(&keys, &none, now).is_err());
        // HS256 "signed" with the public key bytes (the classic RS/HS confusion)
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(kid.clone());
        let claims = issuer().verify(&keys, &token, now).unwrap();
        let hs = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(keys.jwks()),
        )
        .unwrap();
        assert!(matches!(
            issuer().verify(&keys, &hs, now),
            Err(VerifyError::Algorithm(_))
        ));
        // RS256 header on an EC key
        let mut rs = Header::new(jsonwebtoken::Algorithm::RS256);
        rs.typ = Some(ACCESS_TOKEN_TYP.into());
        rs.kid = Some(kid);
        let forged = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&rs).unwrap()),
            token.split('.').nth(1).unwrap(),
            token.split('.').nth(2).unwrap()
        );
        assert!(matches!(
            issuer().verify(&keys, &forged, now),
            Err(VerifyError::Algorithm(_))
        ));
        // one changed character in the middle of the signature (the last one may carry only
        // padding bits)
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut sig: Vec<char> = signature.chars().collect();
        let mid = sig.len() / 2;
        sig[mid] = if sig[mid] == 'A' { 'B' } else { 'A' };
        let bad = format!("{signed}.{}", sig.into_iter().collect::<String>());
        assert_eq!(
            issuer().verify(&keys, &bad, now),
            Err(VerifyError::Signature)
        );
        // wrong typ
        let mut jwt = Header::new(jsonwebtoken::Algorithm::ES256);
        jwt.kid = keys.keys()[0].meta.kid.clone().into();
        let plain = jsonwebtoken::encode(&jwt, &claims, &keys.keys()[0].encoding).unwrap();
        assert_eq!(
            issuer().verify(&keys, &plain, now),
            Err(VerifyError::WrongType)
        );
    }

    fn clock_now() -> i64 {
        crate::clock::now()
    }
}
