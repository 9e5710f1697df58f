//! Sessions after login: the refresh grant (rotation, reuse detection), logout, RFC 7009
//! revocation and RFC 7662 introspection.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::store::{Client, GrantType, RefreshOutcome, split_scope};
use crate::tokens::refresh::{RefreshToken, Rejection, TokenHash, is_active};
use crate::tokens::{AccessClaims, Subject};

use super::PresentedClient;
use super::login::{AuthError, Authenticator, IssuedRefresh, Session};
use super::online::{Audience, OnlineError};

/// A refresh-token request, parsed from the form (or cookie). `Debug` hides the token.
#[derive(Debug)]
pub struct RefreshRequest<'a> {
    pub refresh_token: SecretString,
    /// RFC 6749 §6: a narrower scope than the original grant, if asked.
    pub scope: Option<&'a str>,
    /// The client refreshing: the token must have been issued to it (RFC 6749 §6).
    pub client: PresentedClient,
    /// RFC 8707 `resource`, if given: it must be the one the family was issued for.
    pub resource: Option<&'a str>,
}

/// Which kind of token a revocation or introspection request hints at (RFC 7009 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

/// RFC 7662 §2.2 introspection response. Inactive tokens are `{"active": false}` and nothing
/// else, so the answer does not say why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Introspection {
    fn inactive() -> Introspection {
        Introspection::default()
    }

    fn of_access(claims: AccessClaims) -> Introspection {
        Introspection {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            token_type: Some("Bearer"),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: claims.nbf,
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
            roles: claims.roles,
        }
    }
}

/// A JWT has three dot-separated parts; a refresh token is base64url without dots.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl Authenticator {
    /// `grant_type=refresh_token`: spends the presented token and issues its successor in the
    /// same family, with a fresh access token. The client must be allowed the grant and be the
    /// one the token was issued to. The store decides races and reuse atomically.
    pub async fn refresh_grant(
        &self,
        request: RefreshRequest<'_>,
        now: i64,
    ) -> Result<Session, AuthError> {
        let client = self
            .client_for_grant(request.client, GrantType::RefreshToken)
            .await?;
        let presented = TokenHash::of(request.refresh_token.expose_secret());
        // Client binding and scope never change within a family, so they can be checked before
        // the deciding transaction, without spending a token on a request that must fail.
        let Some(record) = self.store.refresh_record(&presented).await? else {
            return Err(Rejection::Unknown.into());
        };
        if client.id != record.family.client_id {
            return Err(AuthError::WrongClient);
        }
        let api = self.family_target(&record.family, request.resource).await?;
        let requested = request.scope.map(split_scope);
        if let Some(requested) = &requested
            && let Some(extra) = requested.iter().find(|s| !record.family.scope.contains(s))
        {
            return Err(AuthError::InvalidScope(extra.clone()));
        }
        let successor = RefreshToken::generate();
        let outcome = self
            .store
            .refresh(&presented, &successor.hash(), &self.refresh, now)
            .await?;
        let (family, user, expires_at) = match outcome {
            RefreshOutcome::Issued {
                family,
                user,
                expires_at,
                ..
            } => (family, user, expires_at),
            RefreshOutcome::Rejected(why) => return Err(why.into()),
        };
        // Roles (and the API's scopes) are read afresh; a scope that came from a role the user
        // has since lost is dropped.
        let scope = requested
            .unwrap_or(family.scope)
            .into_iter()
            .filter(|s| self.user_scope_allowed(&user.roles, &client, api.as_ref(), s))
            .collect();
        let subject = Subject {
            sub: user.id,
            client_id: family.client_id,
            scope,
            roles: user.roles,
            ver: Some(user.token_version),
        };
        let audience = api.as_ref().map(|api| api.identifier.as_str());
        let access = self.sign(subject, audience, now)?;
        Ok(Session {
            access,
            refresh: Some(IssuedRefresh {
                token: successor,
                expires_in: expires_at - now,
            }),
        })
    }

    /// `POST /logout`: revokes the refresh token's family and denylists the access token until
    /// it expires, if the online check finds it live. Unknown, expired or already revoked tokens are not an error: logging out
    /// twice succeeds twice.
    pub async fn logout(
        &self,
        refresh_token: Option<&str>,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<(), AuthError> {
        if let Some(token) = refresh_token {
            self.store
                .revoke_family_of(&TokenHash::of(token), "logout", now)
                .await?;
        }
        // Only a live token needs a denylist entry: one the online check refuses (expired,
        // revoked with its user's tokens, of a disabled user) is dead already.
        if let Some(token) = access_token {
            match self.check_online_for(token, Audience::AnyApi, now).await {
                Ok(live) => {
                    self.store
                        .deny_access_token(&live.claims.jti, live.claims.exp, now)
                        .await?;
                }
                Err(OnlineError::Store(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// RFC 7009: revokes `token` if it was issued to `client`. Tokens that are invalid, unknown
    /// or another client's are answered the same way, with success and no effect (§2.2), so the
    /// endpoint reveals nothing about tokens the caller does not own.
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        hint: Option<TokenHint>,
        now: i64,
    ) -> Result<(), AuthError> {
        // The two kinds cannot be confused (a JWT has dots, a refresh token none), so the hint is
        // not needed to find the token; RFC 7009 §2.1 requires looking beyond it anyway.
        let _ = hint;
        if looks_like_jwt(token) {
            if let Ok(claims) = self.verify_for(token, Audience::AnyApi, now).await
                && claims.client_id == client.id
            {
                self.store
                    .deny_access_token(&claims.jti, claims.exp, now)
                    .await?;
            }
            return Ok(());
        }
        let hash = TokenHash::of(token);
        if let Some(record) = self.store.refresh_record(&hash).await?
            && record.family.client_id == client.id
        {
            self.store.revoke_family_of(&hash, "revoked", now).await?;
        }
        Ok(())
    }

    /// RFC 7662: whether `token` is active now, and its claims if it is. Access tokens go
    /// through [`Authenticator::check_online`]: expired, denylisted, malformed and foreign-signed
    /// tokens, tokens of disabled or deleted users and clients, and tokens issued before their
    /// user's last revocation are all just inactive.
    pub async fn introspect(&self, token: &str, now: i64) -> Result<Introspection, AuthError> {
        if looks_like_jwt(token) {
            return match self.check_online_for(token, Audience::AnyApi, now).await {
                Ok(live) => Ok(Introspection::of_access(live.claims)),
                Err(OnlineError::Store(e)) => Err(e.into()),
                Err(_) => Ok(Introspection::inactive()),
            };
        }
        let Some(record) = self.store.refresh_record(&TokenHash::of(token)).await? else {
            return Ok(Introspection::inactive());
        };
        if !is_active(&record.state, now) {
            return Ok(Introspection::inactive());
        }
        let family = record.family;
        Ok(Introspection {
            active: true,
            scope: (!family.scope.is_empty()).then(|| family.scope.join(" ")),
            client_id: Some(family.client_id),
            token_type: Some("refresh_token"),
            exp: Some(record.state.expires_at),
            iat: Some(record.issued_at),
            sub: Some(family.user_id),
            // The audience of the access tokens it refreshes into.
            aud: Some(
                family
                    .resource
                    .unwrap_or_else(|| self.tokens.audience().to_string()),
            ),
            ..Introspection::default()
        })
    }
}
