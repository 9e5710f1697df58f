//! Why a token was refused, and why the issuer's keys could not be had. Each variant names the
//! check that failed, so a resource server can log it and answer `invalid_token` precisely.

use crate::Alg;

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
    WrongType {
        /// The header's `typ`, if any.
        found: Option<String>,
    },
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
    /// No key in the cached set has this `kid`, and the set was fetched less than the refetch
    /// interval ago, so it is not fetched again yet. The token may be signed by a key the issuer
    /// has just published: a client should retry after `retry_after` seconds rather than
    /// discard it (the framework integrations answer `503` with `Retry-After`).
    #[error(
        "no key with kid {kid:?} is known yet; the key set may be refetched in {retry_after} s"
    )]
    UnknownKidCooldown {
        /// The token's `kid`.
        kid: String,
        /// Seconds until the key set may be fetched again (at least 1).
        retry_after: u64,
    },
    /// The token has no `kid` and the key set has not exactly one key for its algorithm.
    #[error("the token has no kid and the key set has no single {0} key")]
    MissingKid(Alg),
    /// The key named by `kid` is of another algorithm than the header says (algorithm confusion).
    #[error("key {kid:?} is an {key} key, but the token says {header}")]
    KeyAlgorithmMismatch {
        /// The key's `kid` (empty when it has none).
        kid: String,
        /// The algorithm of the key.
        key: Alg,
        /// The algorithm the header names.
        header: Alg,
    },
    /// The signature does not verify with the published key.
    #[error("the signature does not verify")]
    BadSignature,
    /// A claim the rules require is absent (or not of the right JSON type).
    #[error("required claim `{0}` is missing")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("issuer is {found:?}, expected {expected:?}")]
    WrongIssuer {
        /// The token's `iss`.
        found: String,
        /// The configured issuer.
        expected: String,
    },
    /// `aud` does not contain any accepted audience.
    #[error("audience {found:?} does not include {expected:?}")]
    WrongAudience {
        /// The token's audiences.
        found: Vec<String>,
        /// The accepted audiences.
        expected: Vec<String>,
    },
    /// `exp` is in the past, beyond the leeway.
    #[error("the token expired at {exp} (now {now}, leeway {leeway} s)")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time of the check.
        now: i64,
        /// The leeway applied, in seconds.
        leeway: u64,
    },
    /// `nbf` is in the future, beyond the leeway.
    #[error("the token is not valid before {nbf} (now {now}, leeway {leeway} s)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The time of the check.
        now: i64,
        /// The leeway applied, in seconds.
        leeway: u64,
    },
    /// The issuer's keys could not be obtained (and no usable cached set exists).
    #[error("cannot get the issuer's keys: {0}")]
    Keys(#[from] JwksError),
}

impl VerifyError {
    /// A short, fixed description of the failed check, without anything read from the token: fit
    /// for an RFC 6750 `error_description` (no `"` or `\`, nothing an attacker chose), while the
    /// `Display` form, with details, is for logs.
    pub fn summary(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "the token is malformed",
            VerifyError::WrongType { .. } => "typ must be at+jwt",
            VerifyError::AlgorithmNotAllowed(_) => "the algorithm is not allowed",
            VerifyError::CriticalHeader => "critical header extensions are not supported",
            VerifyError::UnknownKid(_) | VerifyError::MissingKid(_) => {
                "the signing key is not published (unknown, removed or revoked kid)"
            }
            VerifyError::UnknownKidCooldown { .. } => {
                "the signing key is not known yet, retry later"
            }
            VerifyError::KeyAlgorithmMismatch { .. } => "the algorithm does not match the key",
            VerifyError::BadSignature => "the signature does not verify",
            VerifyError::MissingClaim(_) => "a required claim is missing",
            VerifyError::WrongIssuer { .. } => "wrong issuer",
            VerifyError::WrongAudience { .. } => "wrong audience",
            VerifyError::Expired { .. } => "the token has expired",
            VerifyError::NotYetValid { .. } => "the token is not valid yet",
            VerifyError::Keys(_) => "the issuer's keys are unavailable",
        }
    }
}

/// Why a key set could not be fetched or used. `Clone`, so that callers who waited on a shared
/// fetch all receive its outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The URL could not be reached (connection refused, timeout, TLS…).
    #[error("fetching {url}: {reason}")]
    Unreachable {
        /// The URL fetched.
        url: String,
        /// The HTTP client's error with its causes.
        reason: String,
    },
    /// The server answered with an unexpected status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The body is not a JWK set, or is larger than the limit.
    #[error("{url} is not a usable JWK set: {reason}")]
    Invalid {
        /// The URL fetched.
        url: String,
        /// What is wrong with the body.
        reason: String,
    },
    /// The discovery document is unusable (no `jwks_uri`, or an `issuer` that differs from the
    /// one asked for: OpenID Connect Discovery §4.3).
    #[error("discovery at {url}: {reason}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What is wrong with the document or its fetch.
        reason: String,
    },
    /// The last good key set is past its lifetime by more than the allowed staleness and the
    /// issuer cannot be reached: verifying with it any longer could accept tokens of a revoked
    /// key. The cut-off is the set's lifetime plus `max_stale`, not its age.
    #[error(
        "the cached key set expired {stale_for} s ago and could be used until {cutoff} (Unix time: its lifetime plus max_stale {max_stale} s); it was fetched {age} s ago and refreshing failed: {last_error}"
    )]
    TooStale {
        /// Seconds since the cached set was fetched or revalidated.
        age: i64,
        /// Seconds since the cached set's lifetime ended.
        stale_for: i64,
        /// The configured limit past the cache lifetime, in seconds.
        max_stale: u64,
        /// When the set stopped being usable (seconds since the epoch): its lifetime's end plus
        /// `max_stale`.
        cutoff: i64,
        /// Why the last refresh failed.
        last_error: Box<JwksError>,
    },
    /// The configured URL is not http(s).
    #[error("not an http(s) URL: {0}")]
    BadUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}
