//! Offline verification of JWT access tokens (RFC 9068) for resource servers: a caching JWKS
//! client and a verifier with an explicit algorithm allowlist, the RFC 9068 `typ`, no `crit`
//! extensions, and the `iss`, `aud`, `exp` and `nbf` checks at a time the caller gives.
//!
//! The `stamp` issuer verifies its own tokens (admin API, logout, introspection) with the same
//! rules, through [`Verifier::verify_with`] and its in-memory key set, so one place decides what a
//! valid token is.
//!
//! With the default `http` feature, keys come from the issuer's JWKS, found through discovery:
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # async fn run() -> Result<(), stamp_verify::VerifyError> {
//! use stamp_verify::{JwksClient, JwksConfig, Verifier, VerifierConfig};
//!
//! let keys = JwksClient::discover("https://id.example.com", JwksConfig::default())?;
//! let verifier = Verifier::new(VerifierConfig::new("https://id.example.com", "orders-api"), keys);
//! let claims = verifier.verify("eyJ…", stamp_verify::unix_now()).await?;
//! println!("{} may {}", claims.sub, claims.scope.as_deref().unwrap_or(""));
//! # Ok(()) }
//! ```
//!
//! Without it (`default-features = false`), no HTTP client is compiled in: parse a JWK set you
//! obtained yourself and verify against it.
//!
//! ```
//! use stamp_verify::{Verifier, VerifierConfig, VerifyError, VerifyingKeys};
//!
//! let keys = VerifyingKeys::parse(br#"{"keys":[]}"#).expect("a JWK set");
//! let verifier = Verifier::new(VerifierConfig::new("https://id.example.com", "orders-api"), ());
//! let refused = verifier.verify_with(&keys, "not.a.token", 1_800_000_000);
//! assert!(matches!(refused, Err(VerifyError::Malformed(_))));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod alg;
mod claims;
#[cfg(feature = "http")]
mod client;
mod error;
mod jwks;
mod source;
#[cfg(test)]
mod test_keys;
mod verifier;

pub use alg::{Alg, UnsupportedAlg};
pub use claims::{Audience, Claims};
#[cfg(feature = "http")]
pub use client::{CacheStatus, JwksClient, JwksConfig};
pub use error::{JwksError, VerifyError};
pub use jwks::{IgnoredKey, VerifyingKey, VerifyingKeys};
pub use source::KeySource;
pub use verifier::{MAX_LEEWAY, Verifier, VerifierConfig};

/// RFC 9068 §2.1: the media type of JWT access tokens, in the `typ` header. The issuer signs
/// with it and the verifier requires it by default.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Seconds since the Unix epoch by the system clock: the `now` to pass to
/// [`Verifier::verify`] in production. The only place in this crate that reads the clock; tests
/// pass their own `now` instead.
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
