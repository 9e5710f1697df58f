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
    /// The registered API (its identifier) the family's access tokens are for; `None` for the
    /// configured default `audience`. Fixed for the family's life.
    pub resource: Option<String>,
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

/// A registered client (RFC 6749 §2): a confidential service client with a secret, or a public
/// client (a browser or native app) without one. Every grant names one, or the configured
/// `default_client_id`.
#[derive(Clone, Serialize)]
pub struct Client {
    pub id: String,
    /// SHA-256 of the secret; `None` for a public client, which has no secret.
    #[serde(skip)]
    pub secret_hash: Option<TokenHash>,
    pub scopes: Vec<String>,
    /// The algorithm its tokens are signed with; `None` for the configured one.
    pub alg: Option<Alg>,
    pub disabled: bool,
    /// A public client (RFC 6749 §2.1): it cannot keep a secret, so it never authenticates.
    pub public: bool,
    /// The grants it may use; any other is `unauthorized_client` (RFC 6749 §5.2).
    pub grants: Vec<GrantType>,
    /// Where the authorization endpoint may send it back (RFC 6749 §3.1.2), stored for the
    /// authorization-code grant.
    pub redirect_uris: Vec<String>,
    /// A first-party client (the issuer's owner's own app) skips the consent screen; a
    /// third-party one asks the user once per scope set.
    pub first_party: bool,
    /// Where RP-initiated logout may send the browser back (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    pub created_at: i64,
    /// The secret replaced by the latest rotation and until when it is still accepted (Unix
    /// seconds); `None` without an overlap.
    #[serde(skip)]
    pub previous_secret: Option<(TokenHash, i64)>,
}

impl Client {
    /// Whether it may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .field("alg", &self.alg)
            .field("disabled", &self.disabled)
            .field("public", &self.public)
            .field("grants", &self.grants)
            .field("redirect_uris", &self.redirect_uris)
            .field("first_party", &self.first_party)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .finish_non_exhaustive()
    }
}

/// A client to create.
pub struct NewClient {
    pub id: ClientId,
    /// SHA-256 of its secret; `None` makes a public client.
    pub secret_hash: Option<TokenHash>,
    pub scopes: Vec<Scope>,
    pub alg: Option<Alg>,
    /// The grants it may use (see [`GrantType::defaults`]).
    pub grants: Vec<GrantType>,
    pub redirect_uris: Vec<RedirectUri>,
    /// First-party (no consent screen) or third-party.
    pub first_party: bool,
    /// Registered `post_logout_redirect_uri` values.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
}

/// An OAuth 2.0 grant a client may be allowed (RFC 6749 §4, §6), stored by its `grant_type`
/// name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantType {
    Password,
    RefreshToken,
    ClientCredentials,
    /// The authorization-code grant (RFC 6749 §4.1) of the OpenID Connect provider.
    AuthorizationCode,
}

impl GrantType {
    /// Every grant, in the order they are listed.
    pub const ALL: [GrantType; 4] = [
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::AuthorizationCode,
    ];

    /// The grants a new client gets when none are named: a public client logs users in and
    /// refreshes; a confidential (service) client gets tokens for itself.
    pub fn defaults(public: bool) -> Vec<GrantType> {
        if public {
            vec![GrantType::Password, GrantType::RefreshToken]
        } else {
            vec![GrantType::ClientCredentials]
        }
    }

    /// The `grant_type` value (RFC 6749 §4).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
        }
    }

    /// The grant named `raw`.
    pub fn parse(raw: &str) -> Result<GrantType, String> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == raw.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
                format!("unknown grant {raw:?}: use one of {}", known.join(", "))
            })
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A checked redirection URI (RFC 6749 §3.1.2): absolute, without a fragment, at most 2,000
/// characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(raw: &str) -> Result<RedirectUri, String> {
        let raw = raw.trim();
        if raw.len() > 2000 {
            return Err("invalid redirect URI: longer than 2000 characters".into());
        }
        let url = url::Url::parse(raw)
            .map_err(|e| format!("invalid redirect URI {raw:?}: not an absolute URI ({e})"))?;
        if url.fragment().is_some() {
            return Err(format!(
                "invalid redirect URI {raw:?}: it must not have a fragment (RFC 6749 §3.1.2)"
            ));
        }
        Ok(RedirectUri(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
    fn grant_types_parse_by_their_rfc_names() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Ok(grant));
        }
        assert!(GrantType::parse("implicit").is_err());
        assert_eq!(
            GrantType::defaults(false),
            vec![GrantType::ClientCredentials]
        );
    }

    #[test]
    fn redirect_uris_are_absolute_without_fragment() {
        assert!(RedirectUri::parse("https://app.example/cb?x=1").is_ok());
        assert!(RedirectUri::parse("com.example.app:/oauth").is_ok());
        assert!(RedirectUri::parse("/cb").is_err());
        assert!(RedirectUri::parse("https://app.example/cb#frag").is_err());
    }

    #[test]
    fn scope_strings_split_without_duplicates() {
        assert_eq!(split_scope(" a  b a "), vec!["a", "b"]);
        assert!(split_scope("").is_empty());
    }
}
