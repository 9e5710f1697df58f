//! Bearer-token authentication for HTTP services, independent of any framework: the
//! `Authorization: Bearer` header parsed (RFC 6750 §2.1), the token verified, and each refusal
//! turned into its RFC 6750 §3 answer (status, `WWW-Authenticate` challenge, JSON body). The
//! `axum` and `rocket` integrations are thin adapters over [`BearerAuth`]; another framework
//! needs the same few calls.
//!
//! ```
//! use stamp_verify::{BearerAuth, Refusal, Verifier, VerifierConfig, VerifyingKeys};
//!
//! let keys = VerifyingKeys::parse(br#"{"keys":[]}"#).expect("a JWK set");
//! let auth = BearerAuth::new(Verifier::new(VerifierConfig::new("https://id.example.com", "orders"), keys))
//!     .with_realm("orders");
//! let refusal = Refusal::MissingToken;
//! assert_eq!(refusal.status(), 401);
//! assert_eq!(auth.challenge(&refusal).as_deref(), Some("Bearer realm=\"orders\""));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Claims, KeySource, Verifier, VerifyError, unix_now};

/// The verified claims of a request's bearer token: what the `axum` extractor and the `rocket`
/// request guard yield.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub Claims);

/// A scope a route requires, named by a type so that a handler's signature states it
/// (`Scoped<OrdersRead>`). Declare one with [`scope!`](crate::scope).
pub trait Scope: Send + Sync + 'static {
    /// The scope token (`orders:read`).
    const NAME: &'static str;
}

/// A role a route requires (RFC 9068 §7.2.1.1 `roles`), named by a type. Declare one with
/// [`role!`](crate::role).
pub trait Role: Send + Sync + 'static {
    /// The role (`admin`).
    const NAME: &'static str;
}

/// Declares a [`Scope`] type: `stamp_verify::scope!(pub OrdersRead = "orders:read");`.
#[macro_export]
macro_rules! scope {
    ($vis:vis $name:ident = $value:literal) => {
        #[doc = concat!("The scope `", $value, "`.")]
        $vis struct $name;
        impl $crate::Scope for $name {
            const NAME: &'static str = $value;
        }
    };
}

/// Declares a [`Role`] type: `stamp_verify::role!(pub Admin = "admin");`.
#[macro_export]
macro_rules! role {
    ($vis:vis $name:ident = $value:literal) => {
        #[doc = concat!("The role `", $value, "`.")]
        $vis struct $name;
        impl $crate::Role for $name {
            const NAME: &'static str = $value;
        }
    };
}

/// Why a request was refused, with its RFC 6750 §3.1 meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No bearer token (no `Authorization` header, or another scheme): `401` with a bare
    /// challenge, no error code (§3.1).
    MissingToken,
    /// A malformed `Authorization: Bearer` header: `400 invalid_request`.
    InvalidRequest,
    /// The token failed a check: `401 invalid_token`. The challenge carries only
    /// [`VerifyError::summary`], never details such as the expected issuer.
    InvalidToken(VerifyError),
    /// The token is valid but lacks this scope: `403 insufficient_scope` with `scope`.
    InsufficientScope(String),
    /// The token is valid but lacks this role: `403 insufficient_scope` (roles have no
    /// challenge attribute of their own).
    InsufficientRole(String),
    /// The token cannot be judged now (the issuer's keys are unavailable, or its `kid` is
    /// unknown during the refetch cooldown): `503`, with `Retry-After` when known. Not the
    /// client's fault, so no challenge that would make it discard the token.
    Unavailable {
        /// Seconds after which a retry may succeed.
        retry_after: Option<u64>,
        /// Why, for logs.
        cause: VerifyError,
    },
}

impl Refusal {
    /// The refusal for a verification error: [`Refusal::Unavailable`] for key problems and the
    /// unknown-`kid` cooldown, [`Refusal::InvalidToken`] for the rest.
    pub fn from_error(error: VerifyError) -> Refusal {
        match error {
            VerifyError::Keys(_) => Refusal::Unavailable {
                retry_after: None,
                cause: error,
            },
            VerifyError::UnknownKidCooldown { retry_after, .. } => Refusal::Unavailable {
                retry_after: Some(retry_after),
                cause: error,
            },
            other => Refusal::InvalidToken(other),
        }
    }

    /// The HTTP status: 400, 401, 403 or 503.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::InvalidRequest => 400,
            Refusal::MissingToken | Refusal::InvalidToken(_) => 401,
            Refusal::InsufficientScope(_) | Refusal::InsufficientRole(_) => 403,
            Refusal::Unavailable { .. } => 503,
        }
    }

    /// The OAuth error code (`invalid_token`…); `None` for a missing token (RFC 6750 §3.1).
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Refusal::MissingToken => None,
            Refusal::InvalidRequest => Some("invalid_request"),
            Refusal::InvalidToken(_) => Some("invalid_token"),
            Refusal::InsufficientScope(_) | Refusal::InsufficientRole(_) => {
                Some("insufficient_scope")
            }
            Refusal::Unavailable { .. } => Some("temporarily_unavailable"),
        }
    }

    /// A fixed description, safe to send: no quotes, backslashes or internals.
    pub fn description(&self) -> &'static str {
        match self {
            Refusal::MissingToken => "a bearer token is required",
            Refusal::InvalidRequest => "the Authorization header is not a single bearer token",
            Refusal::InvalidToken(error) => error.summary(),
            Refusal::InsufficientScope(_) => "the token lacks a required scope",
            Refusal::InsufficientRole(_) => "the token lacks a required role",
            Refusal::Unavailable { .. } => "the token cannot be checked now, retry later",
        }
    }

    /// `Retry-After` seconds, for [`Refusal::Unavailable`] when known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The JSON body: `{"error": …, "error_description": …}` (`invalid_request` for a missing
    /// token, whose challenge has no error code).
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": self.error_code().unwrap_or("invalid_request"),
            "error_description": self.description(),
        })
        .to_string()
    }
}

/// A type-erased verifier, so that the integrations need no key-source type parameter.
trait DynVerify: Send + Sync {
    fn verify<'a>(
        &'a self,
        token: &'a str,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Claims, VerifyError>> + Send + 'a>>;
}

impl<K: KeySource + Send + Sync + 'static> DynVerify for Verifier<K> {
    fn verify<'a>(
        &'a self,
        token: &'a str,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Claims, VerifyError>> + Send + 'a>> {
        Box::pin(Verifier::verify(self, token, now))
    }
}

/// A verifier and the realm of its challenges: what a protected service holds. Cheap to clone.
#[derive(Clone)]
pub struct BearerAuth {
    verifier: Arc<dyn DynVerify>,
    realm: Option<Arc<str>>,
}

impl BearerAuth {
    /// Authentication with `verifier` (any key source: the JWKS client, a fixed set…).
    pub fn new<K: KeySource + Send + Sync + 'static>(verifier: Verifier<K>) -> BearerAuth {
        BearerAuth {
            verifier: Arc::new(verifier),
            realm: None,
        }
    }

    /// Names the realm in every challenge (`Bearer realm="orders"`). Quotes and backslashes
    /// are dropped from it.
    pub fn with_realm(mut self, realm: &str) -> BearerAuth {
        self.realm = Some(quotable(realm).into());
        self
    }

    /// The claims of the bearer token in `authorization` (the header's raw value, if any),
    /// verified now, or why not.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Claims, Refusal> {
        let token = bearer_token(authorization)?;
        self.verifier
            .verify(token, unix_now())
            .await
            .map_err(|error| {
                tracing::debug!(%error, "bearer token refused");
                Refusal::from_error(error)
            })
    }

    /// The `WWW-Authenticate` value for `refusal` (RFC 6750 §3), `None` for
    /// [`Refusal::Unavailable`].
    pub fn challenge(&self, refusal: &Refusal) -> Option<String> {
        if matches!(refusal, Refusal::Unavailable { .. }) {
            return None;
        }
        let mut params = Vec::new();
        if let Some(realm) = &self.realm {
            params.push(format!("realm=\"{realm}\""));
        }
        if let Some(code) = refusal.error_code() {
            params.push(format!("error=\"{code}\""));
            params.push(format!(
                "error_description=\"{}\"",
                quotable(refusal.description())
            ));
        }
        if let Refusal::InsufficientScope(scope) = refusal {
            params.push(format!("scope=\"{}\"", quotable(scope)));
        }
        Some(if params.is_empty() {
            "Bearer".to_string()
        } else {
            format!("Bearer {}", params.join(", "))
        })
    }
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// `Ok` when `claims` has `scope`, else the `403 insufficient_scope` refusal naming it.
pub fn require_scope(claims: &Claims, scope: &str) -> Result<(), Refusal> {
    if claims.has_scope(scope) {
        Ok(())
    } else {
        Err(Refusal::InsufficientScope(scope.to_string()))
    }
}

/// `Ok` when `claims` has `role`, else the `403` refusal naming it.
pub fn require_role(claims: &Claims, role: &str) -> Result<(), Refusal> {
    if claims.has_role(role) {
        Ok(())
    } else {
        Err(Refusal::InsufficientRole(role.to_string()))
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1: the scheme is
/// case-insensitive, the token is a `b64token`). No header or another scheme is a missing token.
pub fn bearer_token(authorization: Option<&[u8]>) -> Result<&str, Refusal> {
    let Some(value) = authorization else {
        return Err(Refusal::MissingToken);
    };
    let value = std::str::from_utf8(value).map_err(|_| Refusal::InvalidRequest)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::MissingToken);
    }
    let token = rest.trim_matches(' ');
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(Refusal::InvalidRequest);
    }
    Ok(token)
}

/// A quoted-string value without `"` or `\` (RFC 6750 §3 forbids them in its attributes).
fn quotable(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JwksError, VerifierConfig, VerifyingKeys};

    fn auth() -> BearerAuth {
        let verifier = Verifier::new(
            VerifierConfig::new("https://id.test", "api"),
            VerifyingKeys::default(),
        );
        BearerAuth::new(verifier).with_realm("orders")
    }

    #[test]
    fn the_header_is_parsed_per_rfc_6750() {
        assert_eq!(bearer_token(None), Err(Refusal::MissingToken));
        assert_eq!(bearer_token(Some(b"Basic abc")), Err(Refusal::MissingToken));
        assert_eq!(bearer_token(Some(b"bearer a.b-c_d")), Ok("a.b-c_d"));
        assert_eq!(bearer_token(Some(b"Bearer")), Err(Refusal::InvalidRequest));
        assert_eq!(
            bearer_token(Some(b"Bearer a b")),
            Err(Refusal::InvalidRequest)
        );
        assert_eq!(
            bearer_token(Some(b"Bearer a\"b")),
            Err(Refusal::InvalidRequest)
        );
        assert_eq!(bearer_token(Some(&[0xff])), Err(Refusal::InvalidRequest));
    }

    #[test]
    fn challenges_carry_codes_and_fixed_descriptions_only() {
        let auth = auth();
        let expected_issuer = VerifyError::WrongIssuer {
            found: "https://evil\"".into(),
            expected: "https://id.test".into(),
        };
        assert_eq!(
            auth.challenge(&Refusal::from_error(expected_issuer))
                .unwrap(),
            "Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"wrong issuer\""
        );
        assert_eq!(
            auth.challenge(&Refusal::InsufficientScope("orders:read".into()))
                .unwrap(),
            "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"orders:read\""
        );
        assert_eq!(
            BearerAuth::new(Verifier::new(
                VerifierConfig::new("i", "a"),
                VerifyingKeys::default()
            ))
            .challenge(&Refusal::MissingToken)
            .unwrap(),
            "Bearer"
        );
        let cooldown = Refusal::from_error(VerifyError::UnknownKidCooldown {
            kid: "k".into(),
            retry_after: 12,
        });
        assert_eq!((cooldown.status(), cooldown.retry_after()), (503, Some(12)));
        assert_eq!(auth.challenge(&cooldown), None);
        let down = Refusal::from_error(VerifyError::Keys(JwksError::BadUrl("x".into())));
        assert_eq!(down.status(), 503);
        // Every summary is fit for a quoted-string.
        for refusal in [
            Refusal::InvalidRequest,
            Refusal::InvalidToken(VerifyError::BadSignature),
            cooldown,
        ] {
            assert!(!refusal.description().contains(['"', '\\']));
            let body: serde_json::Value = serde_json::from_str(&refusal.body()).unwrap();
            assert_eq!(body["error"], refusal.error_code().unwrap());
        }
    }
}
