//! Where a verifier finds the key named by a token: the JWKS client, a fixed key set, or the
//! caller's own source (the issuer's in-memory key set, a file, a secret store…).

use std::future::Future;
use std::sync::Arc;

use crate::{Alg, VerifyError, VerifyingKey, VerifyingKeys};

/// A source of verifying keys for [`Verifier::verify`](crate::Verifier::verify).
///
/// An implementation returns the key with this `kid`, or for a token without one the only key of
/// `alg`, and answers [`VerifyError::UnknownKid`] or [`VerifyError::MissingKid`] otherwise. It
/// decides nothing else: the verifier checks the key's algorithm, the signature and the claims.
pub trait KeySource {
    /// The key that may have signed a token with this `kid` and `alg`, at `now` (seconds since
    /// the epoch, for sources that cache).
    fn key(
        &self,
        kid: Option<&str>,
        alg: Alg,
        now: i64,
    ) -> impl Future<Output = Result<Arc<VerifyingKey>, VerifyError>> + Send;
}

/// A fixed key set: the lookup is synchronous.
impl KeySource for VerifyingKeys {
    fn key(
        &self,
        kid: Option<&str>,
        alg: Alg,
        _now: i64,
    ) -> impl Future<Output = Result<Arc<VerifyingKey>, VerifyError>> + Send {
        std::future::ready(self.lookup(kid, alg).cloned())
    }
}

/// A shared fixed key set, for a source that swaps in a new `Arc` when the keys change.
impl KeySource for Arc<VerifyingKeys> {
    fn key(
        &self,
        kid: Option<&str>,
        alg: Alg,
        now: i64,
    ) -> impl Future<Output = Result<Arc<VerifyingKey>, VerifyError>> + Send {
        self.as_ref().key(kid, alg, now)
    }
}
