//! Offline verification of access tokens for resource servers: a caching JWKS client and a
//! verifier with an explicit algorithm allowlist and the RFC 9068 claim checks.
//!
//! ```no_run
//! # async fn run() -> Result<(), stamp::verify::VerifyError> {
//! use stamp::verify::{JwksClient, JwksConfig, Verifier, VerifierConfig};
//!
//! let keys = JwksClient::discover("https://id.example.com", JwksConfig::default())?;
//! let verifier = Verifier::new(VerifierConfig::new("https://id.example.com", "orders-api"), keys);
//! let claims = verifier.verify("eyJ…", stamp::clock::now()).await?;
//! println!("{} may {}", claims.sub, claims.scope.as_deref().unwrap_or(""));
//! # Ok(()) }
//! ```

mod claims;
mod client;
mod error;
mod jwks;
mod verifier;

pub use claims::{Audience, Claims};
pub use client::{CacheStatus, JwksClient, JwksConfig};
pub use error::{JwksError, VerifyError};
pub use jwks::{IgnoredKey, VerifyingKey, VerifyingKeys};
pub use verifier::{Verifier, VerifierConfig};
