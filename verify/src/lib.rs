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
//!
//! # Features
//!
//! - `http` (default): [`JwksClient`] and [`Verifier::for_issuer`]. The cache never makes a
//!   request wait while it holds usable keys: sets are refreshed in the background
//!   (stale-while-revalidate), and only a token with an unknown `kid` may wait, bounded by
//!   [`JwksConfig::timeout`]. [`JwksClient::counters`] exposes counters to export; fetches run
//!   in `tracing` spans.
//! - `axum`: a tower layer and axum 0.8 extractors (`stamp_verify::axum`).
//! - `rocket`: Rocket 0.5 request guards and catchers (`stamp_verify::rocket`).
//!
//! Both integrations are adapters over [`BearerAuth`], which answers RFC 6750 challenges
//! ([`Refusal`]); [`scope!`] and [`role!`] declare the types `Scoped<S>` and `WithRole<R>` take.
//!
//! # Checks, in order
//!
//! `typ`, `crit` and the `alg` allowlist, then `iss` (so a foreign issuer's token never causes a
//! key lookup or fetch), then the key named by `kid`, the key's algorithm, the signature, `aud`,
//! `exp`, `nbf` and the RFC 9068 claims.
//!
//! # Semver
//!
//! Cargo's semver rules: at 0.x a breaking change bumps the minor version. [`VerifyError`],
//! [`JwksError`] and [`Refusal`] are `#[non_exhaustive]`, so new variants are not breaking
//! changes; raising `rust-version` is a minor-version change. The README's "Semver promise" has
//! the details, and "Choosing the cache settings" the trade-offs of [`JwksConfig`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod alg;
#[cfg(feature = "axum")]
pub mod axum;
mod bearer;
mod claims;
#[cfg(feature = "http")]
mod client;
mod error;
mod jwks;
#[cfg(feature = "rocket")]
pub mod rocket;
mod source;
#[cfg(test)]
mod test_keys;
mod verifier;

pub use alg::{Alg, UnsupportedAlg};
pub use bearer::{
    Authenticated, BearerAuth, Refusal, Role, Scope, bearer_token, require_role, require_scope,
};
pub use claims::{Audience, Claims};
#[cfg(feature = "http")]
pub use client::{CacheStatus, JwksClient, JwksConfig, JwksCounters};
pub use error::{JwksError, VerifyError};
pub use jwks::{IgnoredKey, VerifyingKey, VerifyingKeys};
/// The HTTP client crate of [`JwksConfig::http`], re-exported so that a caller can build a client
/// (proxy, extra root certificates) of the very version this crate uses.
#[cfg(feature = "http")]
pub use reqwest;
pub use source::KeySource;
pub use verifier::{Check, Diagnosis, MAX_LEEWAY, Verifier, VerifierConfig};

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
