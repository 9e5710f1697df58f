//! The token inspector behind `POST /admin/tokens/inspect`: a token's header and claims, and
//! every check the issuer applies to it, each on its own: the verifier's rules (the same code
//! as [`crate::tokens::TokenIssuer::verify`], through [`stamp_verify::Verifier::diagnose_with`])
//! against the live key set, then the online state ([`Authenticator::live_owner`]: denylist,
//! owner disabled or gone, token version). The answer never contains the signature.

use serde::Serialize;
use stamp_verify::{Check, VerifyError};

use crate::tokens::dangerous::{self, DecodeError};
use crate::tokens::{AccessClaims, claimed_audience};

use super::{Authenticator, OnlineError};

/// What the inspector found.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The protected header, as sent.
    pub header: serde_json::Value,
    /// The claims, as sent (not to be trusted unless `valid`).
    pub claims: serde_json::Value,
    /// Every check, in order.
    pub checks: Vec<CheckResult>,
    /// Whether the issuer accepts the token now: every check ran and passed.
    pub valid: bool,
}

/// One check: `ok` is `null` when the check could not run because an earlier one failed.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub ok: Option<bool>,
    pub detail: String,
}

/// Why a string cannot be inspected: it is not a JWT whose header and claims can be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Malformed(#[from] VerifyError),
    /// The store failed during the online check: nothing was decided.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The name of the online check.
const REVOKED: &str = "revoked";

impl Authenticator {
    /// Inspects `token` at `now` against the live key set and store (see the module docs).
    pub async fn inspect(&self, token: &str, now: i64) -> Result<Inspection, InspectError> {
        let token = token.trim();
        let decoded = dangerous::decode_unverified(token)?;
        let keys = self.keys.current();
        // A token for a registered API (RFC 8707) is checked for that API's audience, as
        // introspection does; any other `aud` against the configured one.
        let audience = match claimed_audience(token) {
            Some(claimed) if self.store.api_by_identifier(&claimed).await?.is_some() => claimed,
            _ => self.tokens.audience().to_string(),
        };
        let mut checks: Vec<CheckResult> = self
            .tokens
            .diagnose(&keys, token, &audience, now)?
            .into_iter()
            .map(|d| {
                let (ok, detail) = match d.outcome {
                    Some(Ok(())) => (
                        Some(true),
                        passed(d.check, &decoded.header, &keys, &audience),
                    ),
                    Some(Err(e)) => (Some(false), e.to_string()),
                    None => (None, "not checked: an earlier check failed".to_string()),
                };
                CheckResult {
                    name: d.check.name(),
                    ok,
                    detail,
                }
            })
            .collect();
        checks.push(self.online_check(&decoded.claims).await?);
        let valid = checks.iter().all(|c| c.ok == Some(true));
        Ok(Inspection {
            header: decoded.header,
            claims: decoded.claims,
            checks,
            valid,
        })
    }

    /// The denylist and the owner's state now, for claims of this issuer's shape.
    async fn online_check(&self, claims: &serde_json::Value) -> Result<CheckResult, InspectError> {
        let Ok(claims) = serde_json::from_value::<AccessClaims>(claims.clone()) else {
            return Ok(CheckResult {
                name: REVOKED,
                ok: None,
                detail: "not checked: the claims are not this issuer's access-token claims".into(),
            });
        };
        let (ok, detail) = match self.live_owner(&claims).await {
            Ok(_) => (
                true,
                "not revoked: the jti is not denylisted, its owner is enabled and the token \
                 version is current"
                    .to_string(),
            ),
            Err(OnlineError::Store(e)) => return Err(e.into()),
            Err(e) => (false, e.to_string()),
        };
        Ok(CheckResult {
            name: REVOKED,
            ok: Some(ok),
            detail,
        })
    }
}

/// What a passed check established, in words.
fn passed(
    check: Check,
    header: &serde_json::Value,
    keys: &crate::keys::KeySet,
    audience: &str,
) -> String {
    match check {
        Check::Type => "typ is at+jwt (an access token)".into(),
        Check::Critical => "no critical header extensions".into(),
        Check::Algorithm => format!("{} is allowed", header["alg"].as_str().unwrap_or("?")),
        Check::Key => match header["kid"].as_str().and_then(|kid| keys.find(kid)) {
            Some(key) => format!("published key, now {}", key.meta.state),
            None => "published key".into(),
        },
        Check::Signature => "the signature verifies with the published key".into(),
        Check::Issuer => "this issuer".into(),
        Check::Profile => "iat, jti and client_id are present (RFC 9068)".into(),
        Check::Audience => format!("aud is {audience}"),
        Check::Expiry => "not expired".into(),
        Check::NotBefore => "valid now (nbf)".into(),
        _ => "passed".into(),
    }
}
