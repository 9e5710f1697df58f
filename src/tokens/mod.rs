//! Access tokens (RFC 9068 JWT profile): claims, signing with the active key, unverified decoding.

pub mod dangerous;
pub mod refresh;

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use stamp_verify::{Claims, Verifier, VerifierConfig, VerifyError};

use crate::config::Config;
use crate::keys::{Alg, KeySet};

/// RFC 9068 §2.1: the media type of JWT access tokens, in the `typ` header (defined by the
/// verifier crate, which requires it).
pub use stamp_verify::ACCESS_TOKEN_TYP;

/// The claims of an access token. `sub` is a stable identifier, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// Always set in this issuer's tokens; optional in what it verifies, as RFC 9068 allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The user's token version when the token was issued (absent in client tokens): the
    /// online checks refuse a user's token whose version is not the user's current one, so
    /// "log out everywhere", disabling and a password change reach live access tokens
    /// (see [`crate::auth::Authenticator::check_online`]). Offline verifiers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
}

/// Who a token is for and what it may do.
#[derive(Clone, Debug)]
pub struct Subject {
    pub sub: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub roles: Vec<String>,
    /// The user's token version ([`AccessClaims::ver`]); `None` for a client's own token.
    pub ver: Option<i64>,
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

/// Builds and signs access tokens, and verifies them for the issuer's own online checks.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    issuer: String,
    audience: String,
    ttl: i64,
    alg: Alg,
    /// The rules of [`TokenIssuer::verify`]: a resource server's defaults for this issuer and
    /// audience. The keys come with each call, from the current snapshot.
    verifier: Verifier<()>,
}

impl TokenIssuer {
    /// The issuer of `config`'s tokens.
    pub fn new(config: &Config) -> TokenIssuer {
        TokenIssuer::with(
            config.issuer.clone(),
            config.audience.clone(),
            config.access_token_ttl,
            config.keys.signing_alg,
        )
    }

    fn with(issuer: String, audience: String, ttl: i64, alg: Alg) -> TokenIssuer {
        let verifier = Verifier::new(VerifierConfig::new(&issuer, &audience), ());
        TokenIssuer {
            issuer,
            audience,
            ttl,
            alg,
            verifier,
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

    /// The configured default audience (`aud` of tokens requested without `resource`).
    pub fn audience(&self) -> &str {
        &self.audience
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
        self.issue_to(keys, subject, alg, None, now)
    }

    /// [`TokenIssuer::issue_with_alg`] for the registered API `audience` (its identifier, an
    /// RFC 8707 resource indicator); `None` for the configured default audience.
    pub fn issue_to(
        &self,
        keys: &KeySet,
        subject: Subject,
        alg: Alg,
        audience: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        let key = keys.active(alg).ok_or(TokenError::NoActiveKey(alg))?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.sub,
            aud: audience.unwrap_or(&self.audience).to_string(),
            exp: now + self.ttl,
            iat: now,
            nbf: Some(now),
            jti: new_jti(),
            client_id: subject.client_id,
            scope: (!subject.scope.is_empty()).then(|| subject.scope.join(" ")),
            roles: subject.roles,
            ver: subject.ver,
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

impl TokenIssuer {
    /// Verifies one of this issuer's access tokens at `now` with the rules a resource server
    /// applies, by the same code ([`stamp_verify::Verifier`]): `typ`, no `crit`, an allowlisted
    /// algorithm that matches the published key named by `kid`, the signature, `iss`, `aud`,
    /// `exp` and `nbf` with the same leeway. The keys are the snapshot's published keys, parsed
    /// once per key-set change. Used by the online checks and revocation, which also need this
    /// issuer's own claims (`jti`, `iat`, `client_id`, `ver`).
    pub fn verify(
        &self,
        keys: &KeySet,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, VerifyError> {
        own_claims(&self.verifier, keys, token, now)
    }

    /// [`TokenIssuer::verify`] for a token whose `aud` must be `audience` (a registered API's
    /// identifier) instead of the configured default; every other rule is the same.
    pub fn verify_for(
        &self,
        keys: &KeySet,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<AccessClaims, VerifyError> {
        own_claims(&self.verifier_for(audience), keys, token, now)
    }

    /// The verifier with this issuer's rules for tokens whose `aud` is `audience`.
    fn verifier_for(&self, audience: &str) -> Cow<'_, Verifier<()>> {
        if audience == self.audience {
            return Cow::Borrowed(&self.verifier);
        }
        let mut config = self.verifier.config().clone();
        config.audiences = vec![audience.to_string()];
        Cow::Owned(Verifier::new(config, ()))
    }
}

/// The claims of one of this issuer's tokens that `verifier` accepts.
fn own_claims(
    verifier: &Verifier<()>,
    keys: &KeySet,
    token: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let claims = verifier.verify_with(keys.verifying_keys(), token, now)?;
    let mut claims = AccessClaims::try_from(claims)?;
    claims.ver = token_version(token)?;
    Ok(claims)
}

/// The single `aud` a token claims, read without verifying anything (to pick which audience to
/// verify it for; the verification that follows decides). `None` if there is no single one.
pub fn claimed_audience(token: &str) -> Option<String> {
    let claims = dangerous::decode_unverified(token).ok()?.claims;
    match claims.get("aud")? {
        serde_json::Value::String(aud) => Some(aud.clone()),
        serde_json::Value::Array(auds) if auds.len() == 1 => auds[0].as_str().map(str::to_string),
        _ => None,
    }
}

impl TokenIssuer {
    /// Each rule of [`TokenIssuer::verify`] on its own (the verifier's
    /// [`Verifier::diagnose_with`]), for the admin token inspector. An error only for a token
    /// that is not a compact JWS with a JSON header naming `alg`.
    /// The `aud` checked is `audience` (the default or a registered API's identifier).
    pub fn diagnose(
        &self,
        keys: &KeySet,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<Vec<stamp_verify::Diagnosis>, VerifyError> {
        self.verifier_for(audience)
            .diagnose_with(keys.verifying_keys(), token, now)
    }
}

/// `ver`, this issuer's own claim, from a token the verifier has accepted (so its payload is
/// base64url JSON). The verifier crate knows only registered claims; reading this one again
/// here keeps it out of what resource servers depend on.
fn token_version(token: &str) -> Result<Option<i64>, VerifyError> {
    #[derive(Deserialize)]
    struct Issuer {
        #[serde(default)]
        ver: Option<i64>,
    }
    let payload = token
        .split('.')
        .nth(1)
        .ok_or(VerifyError::Malformed("not three dot-separated parts"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
    let claims: Issuer =
        serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed("ver"))?;
    Ok(claims.ver)
}

impl TryFrom<Claims> for AccessClaims {
    type Error = VerifyError;

    /// The claims every token of this issuer carries; a verified token without them was not
    /// made here.
    fn try_from(claims: Claims) -> Result<AccessClaims, VerifyError> {
        let [aud] = <[String; 1]>::try_from(claims.aud.0)
            .map_err(|_| VerifyError::Malformed("aud is not a single audience"))?;
        Ok(AccessClaims {
            iss: claims.iss,
            sub: claims.sub,
            aud,
            exp: claims.exp,
            iat: claims.iat.ok_or(VerifyError::MissingClaim("iat"))?,
            nbf: claims.nbf,
            jti: claims.jti.ok_or(VerifyError::MissingClaim("jti"))?,
            client_id: claims
                .client_id
                .ok_or(VerifyError::MissingClaim("client_id"))?,
            scope: claims.scope,
            roles: claims.roles,
            ver: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jsonwebtoken::Header;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::keys::{KeyMeta, KeyState, Manifest, PrivateKey, thumbprint};

    const NOW: i64 = 1_800_000_000;

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
            changes: Vec::new(),
        };
        KeySet::build(manifest, vec![(meta, Arc::new(key), "test".into())]).unwrap()
    }

    fn issuer_of(iss: &str, aud: &str) -> TokenIssuer {
        TokenIssuer::with(iss.into(), aud.into(), 60, Alg::Es256)
    }

    fn issuer() -> TokenIssuer {
        issuer_of("https://id.test", "api")
    }

    fn subject() -> Subject {
        Subject {
            sub: "u1".into(),
            client_id: "c".into(),
            scope: vec!["admin".into()],
            roles: vec![],
            ver: Some(3),
        }
    }

    fn b64_json(value: &impl Serialize) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn own_tokens_verify_until_they_expire() {
        let keys = key_set(Alg::Es256);
        let token = issuer().issue(&keys, subject(), NOW).unwrap();
        let claims = issuer()
            .verify(&keys, token.access_token.expose_secret(), NOW)
            .unwrap();
        assert_eq!(claims, token.claims);
        assert_eq!(claims.scope.as_deref(), Some("admin"));
        let leeway = VerifierConfig::new("i", "a").leeway as i64;
        assert!(
            issuer()
                .verify(
                    &keys,
                    token.access_token.expose_secret(),
                    NOW + 60 + leeway - 1
                )
                .is_ok(),
            "within the leeway"
        );
        assert!(matches!(
            issuer().verify(&keys, token.access_token.expose_secret(), NOW + 60 + leeway),
            Err(VerifyError::Expired { .. })
        ));
        assert!(matches!(
            issuer().verify(&keys, token.access_token.expose_secret(), NOW - 10),
            Err(VerifyError::NotYetValid { .. })
        ));
    }

    #[test]
    fn rsa_tokens_verify_too() {
        let keys = key_set(Alg::Rs256);
        let token = issuer()
            .issue_with_alg(&keys, subject(), Alg::Rs256, NOW)
            .unwrap();
        assert!(
            issuer()
                .verify(&keys, token.access_token.expose_secret(), NOW)
                .is_ok()
        );
    }

    #[test]
    fn other_issuers_and_audiences_are_refused() {
        let keys = key_set(Alg::Es256);
        let token = issuer()
            .issue(&keys, subject(), NOW)
            .unwrap()
            .access_token
            .expose_secret()
            .to_string();
        assert!(matches!(
            issuer_of("https://evil.test", "api").verify(&keys, &token, NOW),
            Err(VerifyError::WrongIssuer { .. })
        ));
        assert!(matches!(
            issuer_of("https://id.test", "other").verify(&keys, &token, NOW),
            Err(VerifyError::WrongAudience { .. })
        ));
    }

    #[test]
    fn tokens_from_unpublished_keys_are_refused() {
        let token = issuer()
            .issue(&key_set(Alg::Es256), subject(), NOW)
            .unwrap();
        assert_eq!(
            issuer().verify(
                &key_set(Alg::Es256),
                token.access_token.expose_secret(),
                NOW
            ),
            Err(VerifyError::UnknownKid(token.kid))
        );
    }

    #[test]
    fn forged_and_confused_tokens_are_refused() {
        let keys = key_set(Alg::Es256);
        let token = issuer()
            .issue(&keys, subject(), NOW)
            .unwrap()
            .access_token
            .expose_secret()
            .to_string();
        let kid = keys.keys()[0].meta.kid.clone();
        let payload = token.split('.').nth(1).unwrap();
        let signature = token.rsplit('.').next().unwrap();
        // alg "none"
        let none = format!(
            "{}.{payload}.",
            b64_json(&serde_json::json!({"alg":"none","typ":"at+jwt","kid":kid}))
        );
        assert_eq!(
            issuer().verify(&keys, &none, NOW),
            Err(VerifyError::AlgorithmNotAllowed("none".into()))
        );
        // HS256 "signed" with the public key bytes (the classic RS/HS confusion)
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(kid.clone());
        let claims = issuer().verify(&keys, &token, NOW).unwrap();
        let hs = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(keys.jwks()),
        )
        .unwrap();
        assert_eq!(
            issuer().verify(&keys, &hs, NOW),
            Err(VerifyError::AlgorithmNotAllowed("HS256".into()))
        );
        // RS256 header on an EC key
        let mut rs = Header::new(jsonwebtoken::Algorithm::RS256);
        rs.typ = Some(ACCESS_TOKEN_TYP.into());
        rs.kid = Some(kid.clone());
        let forged = format!("{}.{payload}.{signature}", b64_json(&rs));
        assert!(matches!(
            issuer().verify(&keys, &forged, NOW),
            Err(VerifyError::KeyAlgorithmMismatch {
                key: Alg::Es256,
                header: Alg::Rs256,
                ..
            })
        ));
        // critical extensions this verifier does not understand (RFC 7515 §4.1.11)
        let crit = format!(
            "{}.{payload}.{signature}",
            b64_json(&serde_json::json!({"alg":"ES256","typ":"at+jwt","kid":kid,"crit":["x"]}))
        );
        assert_eq!(
            issuer().verify(&keys, &crit, NOW),
            Err(VerifyError::CriticalHeader)
        );
        // one changed character in the middle of the signature (the last one may carry only
        // padding bits)
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut sig: Vec<char> = signature.chars().collect();
        let mid = sig.len() / 2;
        sig[mid] = if sig[mid] == 'A' { 'B' } else { 'A' };
        let bad = format!("{signed}.{}", sig.into_iter().collect::<String>());
        assert_eq!(
            issuer().verify(&keys, &bad, NOW),
            Err(VerifyError::BadSignature)
        );
        // wrong typ: a plain JWT signed by the same key
        let mut jwt = Header::new(jsonwebtoken::Algorithm::ES256);
        jwt.kid = Some(kid);
        let plain = jsonwebtoken::encode(&jwt, &claims, &keys.keys()[0].encoding).unwrap();
        assert_eq!(
            issuer().verify(&keys, &plain, NOW),
            Err(VerifyError::WrongType {
                found: Some("JWT".into())
            })
        );
    }

    #[test]
    fn verified_tokens_without_this_issuers_claims_are_refused() {
        let keys = key_set(Alg::Es256);
        let key = &keys.keys()[0];
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(key.meta.kid.clone());
        let claims = serde_json::json!({"iss":"https://id.test","sub":"u1","aud":"api",
            "exp":NOW + 60,"nbf":NOW,"iat":NOW,"client_id":"c"});
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
        assert_eq!(
            issuer().verify(&keys, &token, NOW),
            Err(VerifyError::MissingClaim("jti"))
        );
    }
}
