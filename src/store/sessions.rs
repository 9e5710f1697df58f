//! Stored shapes of sessions: refresh-token families, service clients, and what a refresh
//! attempt comes to. Backend-neutral: every store implements the same rules.

use serde::Serialize;

use crate::keys::Alg;
use crate::tokens::refresh::{RefreshState, Rejection, TokenHash};

use super::User;

/// A login's family of refresh tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A refresh token to store (its hash only).
#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    pub hash: TokenHash,
    pub family_id: String,
    pub token_version: i64,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// A stored refresh token with its family and owner's state (introspection).
#[derive(Clone, Debug)]
pub struct RefreshRecord {
    pub state: RefreshState,
    pub issued_at: i64,
    pub family: Family,
}

/// What one refresh attempt came to, decided and applied in one transaction.
#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value once per refresh request, never stored in bulk"
)]
pub enum RefreshOutcome {
    /// The presented token is spent (or its grace used) and the successor is stored.
    Issued {
        family: Family,
        user: User,
        /// When the successor expires.
        expires_at: i64,
        /// Issued inside the reuse grace window rather than by a normal rotation.
        grace: bool,
    },
    /// Refused; for [`Rejection::Reused`] and [`Rejection::Stale`] the family is now revoked.
    Rejected(Rejection),
}

/// A service client of the `client_credentials` grant.
#[derive(Clone, Serialize)]
pub struct Client {
    pub id: String,
    #[serde(skip)]
    pub secret_hash: TokenHash,
    pub scopes: Vec<String>,
    /// The algorithm its tokens are signed with; `None` for the configured one.
    pub alg: Option<Alg>,
    pub disabled: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .field("alg", &self.alg)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A client to create.
pub struct NewClient {
    pub id: ClientId,
    pub secret_hash: TokenHash,
    pub scopes: Vec<Scope>,
    pub alg: Option<Alg>,
}

/// A checked client id: 1 to 64 characters of `a-z 0-9 . _ : -`. It becomes `sub` and
/// `client_id` of the client's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<ClientId, String> {
        let id = raw.trim();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(token_char) {
            return Err(format!(
                "invalid client id {id:?}: use 1 to 64 of a-z 0-9 . _ : -"
            ));
        }
        Ok(ClientId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked scope token: 1 to 64 characters of `a-z 0-9 . _ : -` (a subset of RFC 6749 §3.3
/// `scope-token` that needs no escaping anywhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    pub fn parse(raw: &str) -> Result<Scope, String> {
        let scope = raw.trim();
        if scope.is_empty() || scope.len() > 64 || !scope.bytes().all(token_char) {
            return Err(format!(
                "invalid scope {scope:?}: use 1 to 64 of a-z 0-9 . _ : -"
            ));
        }
        Ok(Scope(scope.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn token_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:-".contains(&b)
}

/// Splits a stored or requested space-separated scope string.
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for part in scope.split(' ').filter(|p| !p.is_empty()) {
        if !parts.iter().any(|p| p == part) {
            parts.push(part.to_string());
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_and_scopes_are_checked() {
        assert_eq!(ClientId::parse(" billing ").unwrap().as_str(), "billing");
        assert!(ClientId::parse("Billing").is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("").is_err());
        assert!(Scope::parse("orders:read").is_ok());
        assert!(Scope::parse("orders read").is_err());
    }

    #[test]
    fn scope_strings_split_without_duplicates() {
        assert_eq!(split_scope(" a  b a "), vec!["a", "b"]);
        assert!(split_scope("").is_empty());
    }
}
