//! The online check of an access token: the one place that decides whether a token is live for
//! the issuer's own endpoints (the admin API, logout, introspection, and any later one).
//!
//! It applies the offline verifier's rules (the same code, [`crate::tokens::TokenIssuer::verify`]),
//! then what only the issuer knows now: the denylist (logout, RFC 7009), and the owner as stored
//! at this moment. A user's token is live only while the user exists, is enabled and still has
//! the token version the token carries (`ver`): "log out everywhere", disabling and a password
//! change bump the version, so every access token issued before reaches its end here at once,
//! on every replica (the version is read from the shared store). A client's own token is live
//! only while the client exists and is enabled. Offline verifiers see none of this and accept
//! the token until `exp`.

use stamp_verify::VerifyError;

use crate::store::{Client, StoreError, User};
use crate::tokens::{AccessClaims, claimed_audience};

use super::Authenticator;

/// A token that passed the online check, with its owner as read now.
#[derive(Debug)]
pub struct LiveToken {
    pub claims: AccessClaims,
    pub owner: TokenOwner,
}

/// Whom a live token speaks for.
#[derive(Debug)]
pub enum TokenOwner {
    /// A person (password or refresh grant).
    User(User),
    /// A service client's own token (client_credentials: `sub` equals `client_id`).
    Client(Client),
}

/// Which audiences an online check accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Only the configured default `audience`: the issuer's own API (admin, account). A token
    /// minted for a registered API never opens it.
    Issuer,
    /// The default audience or any registered API (introspection, userinfo, logout,
    /// revocation): endpoints that serve every resource server.
    AnyApi,
}

/// Why the online check refused a token, or could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnlineError {
    /// The offline rules refuse it (signature, `typ`, `crit`, `iss`, `aud`, `exp`, …).
    #[error("{}", .0.summary())]
    Invalid(#[source] VerifyError),
    /// Its `jti` is on the denylist (logout, RFC 7009 revocation).
    #[error("the token has been revoked")]
    Denylisted,
    /// Its user or client no longer exists, or is disabled.
    #[error("the token's user or client is disabled or gone")]
    OwnerDisabled,
    /// It was issued before its user's tokens were revoked ("log out everywhere", disabling or a
    /// password change since).
    #[error("the token was revoked with every token of its user")]
    Superseded,
    /// The store failed: nothing was decided.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Authenticator {
    /// Whether `token` is one of this issuer's access tokens and live at `now`: the verifier's
    /// rules, the denylist, and its owner's current state (see the module docs). Every online
    /// check calls this and nothing else.
    /// Only tokens for the default audience pass ([`Audience::Issuer`]).
    pub async fn check_online(&self, token: &str, now: i64) -> Result<LiveToken, OnlineError> {
        self.check_online_for(token, Audience::Issuer, now).await
    }

    /// [`Authenticator::check_online`] accepting the audiences `audience` names.
    pub async fn check_online_for(
        &self,
        token: &str,
        audience: Audience,
        now: i64,
    ) -> Result<LiveToken, OnlineError> {
        let claims = self.verify_for(token, audience, now).await?;
        let owner = self.live_owner(&claims).await?;
        Ok(LiveToken { claims, owner })
    }

    /// The online part of [`Authenticator::check_online`], for claims already verified (or,
    /// in the token inspector, only decoded): the denylist, then the owner as stored now.
    pub async fn live_owner(&self, claims: &AccessClaims) -> Result<TokenOwner, OnlineError> {
        if self.store.is_access_token_denied(&claims.jti).await? {
            return Err(OnlineError::Denylisted);
        }
        if claims.sub == claims.client_id {
            let client = self.store.client_by_id(&claims.client_id).await?;
            return match client {
                Some(client) if !client.disabled => Ok(TokenOwner::Client(client)),
                _ => Err(OnlineError::OwnerDisabled),
            };
        }
        let Some(user) = self.store.user_by_id(&claims.sub).await? else {
            return Err(OnlineError::OwnerDisabled);
        };
        if user.disabled {
            return Err(OnlineError::OwnerDisabled);
        }
        if !version_is_current(claims.ver, user.token_version) {
            return Err(OnlineError::Superseded);
        }
        Ok(TokenOwner::User(user))
    }
}

impl Authenticator {
    /// The offline rules for one of this issuer's tokens, for `audience`. With
    /// [`Audience::AnyApi`], a token claiming another audience than the default is verified for
    /// that audience (signature first), and then that audience must be a registered API: a
    /// forged token never reaches the store, and a deleted API's tokens are refused.
    pub(super) async fn verify_for(
        &self,
        token: &str,
        audience: Audience,
        now: i64,
    ) -> Result<AccessClaims, OnlineError> {
        let keys = self.keys.snapshot();
        let default = self.tokens.audience();
        let claimed = match (audience, claimed_audience(token)) {
            (Audience::AnyApi, Some(claimed)) if claimed != default => claimed,
            _ => {
                return self
                    .tokens
                    .verify(&keys, token, now)
                    .map_err(OnlineError::Invalid);
            }
        };
        let claims = self
            .tokens
            .verify_for(&keys, token, &claimed, now)
            .map_err(OnlineError::Invalid)?;
        if self.store.api_by_identifier(&claimed).await?.is_none() {
            return Err(OnlineError::Invalid(VerifyError::WrongAudience {
                found: vec![claimed],
                expected: vec![default.to_string()],
            }));
        }
        Ok(claims)
    }
}

/// The token-version rule. Versions only grow, and a token carries the version its user had
/// when it was issued, so any other version means a revocation since. A token without `ver` was
/// issued before tokens carried it: it is taken as version 0, which is exact for users who never
/// had their tokens revoked and refuses (the safe side) the tokens of those who did.
fn version_is_current(token: Option<i64>, user: i64) -> bool {
    token.unwrap_or(0) == user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_token_version_is_live() {
        assert!(version_is_current(Some(3), 3));
        assert!(!version_is_current(Some(2), 3), "revoked since");
        assert!(!version_is_current(Some(4), 3), "never issued: refused too");
        assert!(version_is_current(None, 0), "older token, never revoked");
        assert!(!version_is_current(None, 1), "older token, revoked since");
    }
}
