//! The password grant: check the credentials, decide the scope, issue an access token.

use std::sync::Arc;

use crate::config::Config;
use crate::keys::KeyManager;
use crate::store::{Store, StoreError, Username};
use crate::tokens::{IssuedToken, Subject, TokenError, TokenIssuer};

use super::{Password, PasswordHasher};

/// A login attempt, already parsed from the form or JSON body.
#[derive(Debug)]
pub struct LoginRequest {
    pub username: String,
    pub password: Password,
    /// Space-separated requested scope (RFC 6749 §3.3); `None` for the default.
    pub scope: Option<String>,
    /// The client the user logs in through, if it says.
    pub client_id: Option<String>,
}

/// Why a login failed. Every credential failure is the one `InvalidGrant`, by design.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid username or password")]
    InvalidGrant,
    #[error("scope {0:?} is not allowed")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// The password-grant service.
pub struct Authenticator {
    store: Arc<dyn Store>,
    keys: Arc<KeyManager>,
    passwords: PasswordHasher,
    tokens: TokenIssuer,
    user_scopes: Vec<String>,
    default_client_id: String,
}

impl Authenticator {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyManager>,
        passwords: PasswordHasher,
    ) -> Self {
        Authenticator {
            store,
            keys,
            passwords,
            tokens: TokenIssuer::new(config),
            user_scopes: config.user_scopes.clone(),
            default_client_id: config.default_client_id.clone(),
        }
    }

    /// The token issuer, for other grants.
    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// Checks the password and issues an access token. A wrong password, an unknown user and a
    /// disabled user all run one argon2 verification and fail with the same error.
    pub async fn password_grant(
        &self,
        request: LoginRequest,
        now: i64,
    ) -> Result<IssuedToken, AuthError> {
        if request.password.is_empty() {
            return Err(AuthError::InvalidRequest(
                "password must not be empty".into(),
            ));
        }
        let user = match Username::parse(&request.username) {
            Ok(name) => self.store.user_by_username(name.as_str()).await?,
            Err(_) => None,
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(request.password, hash).await;
        let user = match user {
            Some(user) if verified && !user.disabled => user,
            _ => return Err(AuthError::InvalidGrant),
        };
        let scope = self.grant_scope(&user.roles, request.scope.as_deref())?;
        let subject = Subject {
            sub: user.id.clone(),
            client_id: request
                .client_id
                .unwrap_or_else(|| self.default_client_id.clone()),
            scope,
            roles: user.roles.clone(),
        };
        let keys = self.keys.snapshot();
        Ok(self.tokens.issue(&keys, subject, now)?)
    }

    /// RFC 6749 §3.3: the granted scope is what was asked, if every part is allowed: the
    /// configured user scopes and the user's own roles.
    fn grant_scope(
        &self,
        roles: &[String],
        requested: Option<&str>,
    ) -> Result<Vec<String>, AuthError> {
        let Some(requested) = requested else {
            return Ok(Vec::new());
        };
        let mut granted: Vec<String> = Vec::new();
        for part in requested.split(' ').filter(|p| !p.is_empty()) {
            let allowed =
                self.user_scopes.iter().any(|s| s == part) || roles.iter().any(|r| r == part);
            if !allowed {
                return Err(AuthError::InvalidScope(part.to_string()));
            }
            if !granted.iter().any(|g| g == part) {
                granted.push(part.to_string());
            }
        }
        Ok(granted)
    }
}
