//! Why a token was refused, and why the issuer's keys could not be had. Each variant names the
//! check that failed, so a resource server can log it and answer `invalid_token` precisely.

use crate::keys::Alg;

/// A token that did not pass one of the verifier's checks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS with a JSON header and payload; says which part.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header's `typ` is not `at+jwt` (RFC 9068 §4), so it may be an ID token or another
    /// kind of JWT signed by the same key.
    #[error("typ is {found:?}, expected \"at+jwt\"")]
    WrongType { found: Option<String> },
    /// The header's `alg` is outside the allowlist (`none`, HMAC, or an algorithm not enabled).
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// The header has a `crit` member: extensions this verifier does not understand must make it
    /// refuse the token (RFC 7515 §4.1.11).
    #[error("the header names critical extensions, which are not supported")]
    CriticalHeader,
    /// No published key has this `kid`, even after a refetch (or a refetch was not allowed yet).
    #[error("no published key has kid {0:?}")]
    UnknownKid(String),
    /// The token has no `kid` and the key set has not exactly one key for its algorithm.
    #[error("the token has no kid and the key set has no single {0} key")]
    MissingKid(Alg),
    /// The key named by `kid` is of another algorithm than the header says (algorithm confusion).
    #[error("key {kid:?} is an {key} key, but the token says {header}")]
    KeyAlgorithmMismatch { kid: String, key: Alg, header: Alg },
    /// The signature does not verify with the published key.
    #[error("the signature does not verify")]
    BadSignature,
    /// A claim the rules require is absent (or not of the right JSON type).
    #[error("required claim `{0}` is missing")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("issuer is {found:?}, expected {expected:?}")]
    WrongIssuer { found: String, expected: String },
    /// `aud` does not contain any accepted audience.
    #[error("audience {found:?} does not include {expected:?}")]
    WrongAudience {
        found: Vec<String>,
        expected: Vec<String>,
    },
    /// `exp` is in the past, beyond the leeway.
    #[error("the token expired at {exp} (now {now}, leeway {leeway} s)")]
    Expired { exp: i64, now: i64, leeway: u64 },
    /// `nbf` is in the future, beyond the leeway.
    #[error("the token is not valid before {nbf} (now {now}, leeway {leeway} s)")]
    NotYetValid { nbf: i64, now: i64, leeway: u64 },
    /// The issuer's keys could not be obtained (and no usable cached set exists).
    #[error("cannot get the issuer's keys: {0}")]
    Keys(#[from] JwksError),
}

/// Why a key set could not be fetched or used. `Clone`, so that callers who waited on a shared
/// fetch all receive its outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The URL could not be reached (connection refused, timeout, TLS…).
    #[error("fetching {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an unexpected status.
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    /// The body is not a JWK set, or is larger than the limit.
    #[error("{url} is not a usable JWK set: {reason}")]
    Invalid { url: String, reason: String },
    /// The discovery document is unusable (no `jwks_uri`, or an `issuer` that differs from the
    /// one asked for: OpenID Connect Discovery §4.3).
    #[error("discovery at {url}: {reason}")]
    Discovery { url: String, reason: String },
    /// The last good key set is older than the allowed staleness and the issuer cannot be
    /// reached: verifying with it any longer could accept tokens of a revoked key.
    #[error(
        "the cached key set is {age} s old (limit {max_stale} s) and refreshing failed: {last_error}"
    )]
    TooStale {
        age: i64,
        max_stale: u64,
        last_error: Box<JwksError>,
    },
    /// The configured URL is not http(s).
    #[error("not an http(s) URL: {0}")]
    BadUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}
