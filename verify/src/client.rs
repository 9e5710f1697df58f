//! The JWKS client: fetches the issuer's key set (directly or through discovery), caches it for
//! the lifetime its `Cache-Control` gives (clamped), revalidates with `If-None-Match`, serves the
//! last good set for a bounded time while the issuer is unreachable, and refetches on an unknown
//! `kid` at most once per interval, with concurrent callers sharing one fetch.
//!
//! The hot path (a fresh set that has the key) is one atomic load and a short scan: no lock, no
//! allocation. Every method that decides about freshness takes `now` (seconds since the epoch).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::header::{ACCEPT, AGE, CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};
use serde::Deserialize;

use crate::{Alg, JwksError, KeySource, VerifyError, VerifyingKey, VerifyingKeys};

/// How the client caches and refetches. Durations in whole seconds, like `Cache-Control`.
#[derive(Clone, Debug)]
pub struct JwksConfig {
    /// Floor of the cache lifetime: a smaller `max-age` (or `no-cache`, `no-store`) is raised to
    /// it, so an issuer that forbids caching cannot make every request a fetch.
    pub min_ttl: u64,
    /// Ceiling of the cache lifetime, so a removed or revoked key stops verifying in bounded time.
    pub max_ttl: u64,
    /// Lifetime when the response has no `max-age`.
    pub default_ttl: u64,
    /// How long past its lifetime the last good set may still be used while refreshing fails
    /// (`stale-if-error`, RFC 5861). After that, verification fails closed.
    pub max_stale: u64,
    /// Smallest interval between two fetch attempts caused by an unknown `kid` or following a
    /// failed fetch: a flood of tokens with made-up `kid`s costs the issuer one request per
    /// interval.
    pub refetch_interval: u64,
    /// Timeout of each HTTP request.
    pub timeout: Duration,
    /// Largest accepted JWKS or discovery body, in bytes.
    pub max_body: usize,
    /// The HTTP client to use (proxies, extra root certificates…); a default one when `None`.
    pub http: Option<reqwest::Client>,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            min_ttl: 30,
            max_ttl: 3600,
            default_ttl: 300,
            max_stale: 3600,
            refetch_interval: 30,
            timeout: Duration::from_secs(5),
            max_body: 256 * 1024,
            http: None,
        }
    }
}

/// What the cache holds and how fresh it is: for health checks and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStatus {
    /// Whether a key set was ever fetched.
    pub loaded: bool,
    /// Usable keys in the cached set.
    pub keys: usize,
    /// Seconds since the set was last fetched or revalidated.
    pub age: Option<i64>,
    /// Seconds the set is past its cache lifetime (0 while fresh): non-zero means it is being
    /// served stale because refreshing failed.
    pub stale_for: i64,
    /// The error of the last fetch attempt, if it failed.
    pub last_error: Option<JwksError>,
    /// JWKS requests made so far (discovery not counted).
    pub fetches: u64,
}

/// A caching JWKS client. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct JwksClient {
    inner: Arc<Inner>,
}

enum Source {
    JwksUri(String),
    Issuer(String),
}

struct Inner {
    source: Source,
    config: JwksConfig,
    http: reqwest::Client,
    current: ArcSwapOption<Snapshot>,
    last_error: ArcSwapOption<JwksError>,
    /// Time of the last fetch attempt (`i64::MIN`: never), read without the lock to turn away
    /// rate-limited refetches cheaply.
    last_attempt: AtomicI64,
    /// Completed fetch attempts: a caller that waited on the lock sees whether one happened.
    attempts: AtomicU64,
    fetches: AtomicU64,
    /// Held for the duration of a fetch: the single flight.
    fetch: tokio::sync::Mutex<FetchState>,
}

/// One key set and its cache metadata.
struct Snapshot {
    keys: Arc<VerifyingKeys>,
    etag: Option<String>,
    checked_at: i64,
    fresh_until: i64,
}

struct FetchState {
    /// The JWKS URL, once known (given, or discovered once).
    jwks_uri: Option<String>,
    last_outcome: Result<(), JwksError>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Expired,
    UnknownKid,
    Forced,
}

impl JwksClient {
    /// A client of the key set at `jwks_uri`.
    pub fn new(jwks_uri: impl Into<String>, config: JwksConfig) -> Result<JwksClient, JwksError> {
        let uri = jwks_uri.into();
        check_url(&uri)?;
        JwksClient::with_source(Source::JwksUri(uri), config)
    }

    /// A client that finds the key set through `{issuer}/.well-known/openid-configuration`
    /// (fetched on first use), whose `issuer` must equal `issuer`.
    pub fn discover(
        issuer: impl Into<String>,
        config: JwksConfig,
    ) -> Result<JwksClient, JwksError> {
        let issuer = issuer.into().trim_end_matches('/').to_string();
        check_url(&issuer)?;
        JwksClient::with_source(Source::Issuer(issuer), config)
    }

    fn with_source(source: Source, config: JwksConfig) -> Result<JwksClient, JwksError> {
        let http = match &config.http {
            Some(client) => client.clone(),
            None => reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout)
                .user_agent(concat!("stamp-verify/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| JwksError::Client(e.to_string()))?,
        };
        let jwks_uri = match &source {
            Source::JwksUri(uri) => Some(uri.clone()),
            Source::Issuer(_) => None,
        };
        Ok(JwksClient {
            inner: Arc::new(Inner {
                source,
                config,
                http,
                current: ArcSwapOption::empty(),
                last_error: ArcSwapOption::empty(),
                last_attempt: AtomicI64::new(i64::MIN),
                attempts: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                fetch: tokio::sync::Mutex::new(FetchState {
                    jwks_uri,
                    last_outcome: Ok(()),
                }),
            }),
        })
    }

    /// The key that verifies a token with this `kid` (or, without one, the only key of `alg`).
    /// Fetches when the cache is empty or expired, and once more (rate-limited) when the key is
    /// not in the set: the issuer may have rotated since the last fetch.
    pub async fn key(
        &self,
        kid: Option<&str>,
        alg: Alg,
        now: i64,
    ) -> Result<Arc<VerifyingKey>, VerifyError> {
        let keys = self.keys(now).await?;
        if let Ok(key) = keys.lookup(kid, alg) {
            return Ok(key.clone());
        }
        // Whatever the outcome, look again: another caller may have fetched meanwhile.
        let _ = self.refresh_shared(now, Why::UnknownKid).await;
        let keys = self.inner.current.load_full().map(|s| s.keys.clone());
        match keys {
            Some(keys) => keys.lookup(kid, alg).cloned(),
            None => Err(match kid {
                Some(kid) => VerifyError::UnknownKid(kid.to_string()),
                None => VerifyError::MissingKid(alg),
            }),
        }
    }

    /// The current key set: the cached one while fresh; otherwise refreshed, or the last good one
    /// if refreshing fails and it is within `max_stale` past its lifetime.
    pub async fn keys(&self, now: i64) -> Result<Arc<VerifyingKeys>, JwksError> {
        if let Some(snap) = self.inner.current.load().as_ref()
            && now < snap.fresh_until
        {
            return Ok(snap.keys.clone());
        }
        let outcome = self.refresh_shared(now, Why::Expired).await;
        let Some(snap) = self.inner.current.load_full() else {
            return Err(outcome.err().unwrap_or_else(|| JwksError::Invalid {
                url: self.describe_source(),
                reason: "no key set was stored".into(),
            }));
        };
        if now < snap.fresh_until {
            return Ok(snap.keys.clone());
        }
        let stale_for = now - snap.fresh_until;
        let Err(error) = outcome else {
            return Ok(snap.keys.clone());
        };
        if stale_for <= self.inner.config.max_stale as i64 {
            log::warn!(
                "JWKS refresh failed ({error}); using the key set fetched {} s ago",
                now - snap.checked_at
            );
            Ok(snap.keys.clone())
        } else {
            Err(JwksError::TooStale {
                age: now - snap.checked_at,
                max_stale: self.inner.config.max_stale,
                last_error: Box::new(error),
            })
        }
    }

    /// Fetches now (single-flight with any fetch in progress), ignoring freshness and the refetch
    /// interval: for start-up warm-up and operators.
    pub async fn refresh(&self, now: i64) -> Result<Arc<VerifyingKeys>, JwksError> {
        self.refresh_shared(now, Why::Forced).await?;
        self.inner
            .current
            .load_full()
            .map(|s| s.keys.clone())
            .ok_or_else(|| JwksError::Invalid {
                url: self.describe_source(),
                reason: "no key set was stored".into(),
            })
    }

    /// The cache's state at `now`.
    pub fn status(&self, now: i64) -> CacheStatus {
        let snap = self.inner.current.load_full();
        CacheStatus {
            loaded: snap.is_some(),
            keys: snap.as_ref().map_or(0, |s| s.keys.keys().len()),
            age: snap.as_ref().map(|s| now - s.checked_at),
            stale_for: snap.as_ref().map_or(0, |s| (now - s.fresh_until).max(0)),
            last_error: self.inner.last_error.load_full().map(|e| (*e).clone()),
            fetches: self.inner.fetches.load(Ordering::Relaxed),
        }
    }

    /// One fetch for everyone who needs one: callers that arrive while a fetch is in progress
    /// wait for it and share its outcome instead of starting their own.
    async fn refresh_shared(&self, now: i64, why: Why) -> Result<(), JwksError> {
        let inner = &self.inner;
        let interval = inner.config.refetch_interval as i64;
        let recently = |last: i64| last != i64::MIN && now.saturating_sub(last) < interval;
        // Cheap refusal without the lock for the case an attacker can drive: unknown kids.
        if why == Why::UnknownKid && recently(inner.last_attempt.load(Ordering::Acquire)) {
            return Ok(());
        }
        let seen = inner.attempts.load(Ordering::Acquire);
        let mut state = inner.fetch.lock().await;
        if inner.attempts.load(Ordering::Acquire) != seen {
            return state.last_outcome.clone();
        }
        // Someone may have refreshed between our look at the cache and our turn at the lock.
        if why == Why::Expired
            && inner
                .current
                .load()
                .as_ref()
                .is_some_and(|s| now < s.fresh_until)
        {
            return Ok(());
        }
        let last = inner.last_attempt.load(Ordering::Acquire);
        let limited = match why {
            Why::Forced => false,
            Why::UnknownKid => recently(last),
            // An expired set is refreshed at once, unless the last attempt failed recently: a
            // down issuer is asked once per interval, not once per request.
            Why::Expired => state.last_outcome.is_err() && recently(last),
        };
        if limited {
            return state.last_outcome.clone();
        }
        inner.last_attempt.store(now, Ordering::Release);
        let outcome = self.fetch(&mut state, now).await;
        match &outcome {
            Ok(()) => inner.last_error.store(None),
            Err(e) => inner.last_error.store(Some(Arc::new(e.clone()))),
        }
        state.last_outcome = outcome.clone();
        inner.attempts.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// One conditional GET of the key set (after discovery, the first time).
    async fn fetch(&self, state: &mut FetchState, now: i64) -> Result<(), JwksError> {
        let inner = &self.inner;
        let url = match &state.jwks_uri {
            Some(url) => url.clone(),
            None => {
                let url = self.discover_jwks_uri().await?;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let previous = inner.current.load_full();
        let mut request = inner
            .http
            .get(&url)
            .header(ACCEPT, "application/jwk-set+json, application/json");
        if let Some(etag) = previous.as_ref().and_then(|p| p.etag.as_deref()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| JwksError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        let ttl = cache_lifetime(response.headers(), &inner.config) as i64;
        let etag = header_str(response.headers(), &ETAG).map(String::from);
        match response.status().as_u16() {
            304 => {
                let Some(previous) = previous else {
                    return Err(JwksError::Status { url, status: 304 });
                };
                inner.current.store(Some(Arc::new(Snapshot {
                    keys: previous.keys.clone(),
                    etag: etag.or_else(|| previous.etag.clone()),
                    checked_at: now,
                    fresh_until: now.saturating_add(ttl),
                })));
                Ok(())
            }
            200 => {
                let body = read_limited(response, inner.config.max_body)
                    .await
                    .map_err(|reason| JwksError::Invalid {
                        url: url.clone(),
                        reason,
                    })?;
                let keys = VerifyingKeys::parse(&body)
                    .map_err(|reason| JwksError::Invalid { url, reason })?;
                for ignored in keys.ignored() {
                    log::warn!("JWKS key {:?} not used: {}", ignored.kid, ignored.reason);
                }
                inner.current.store(Some(Arc::new(Snapshot {
                    keys: Arc::new(keys),
                    etag,
                    checked_at: now,
                    fresh_until: now.saturating_add(ttl),
                })));
                Ok(())
            }
            status => Err(JwksError::Status { url, status }),
        }
    }

    /// Reads `jwks_uri` from the issuer's discovery document.
    async fn discover_jwks_uri(&self) -> Result<String, JwksError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let Source::Issuer(issuer) = &self.inner.source else {
            return Err(JwksError::Discovery {
                url: self.describe_source(),
                reason: "no issuer to discover".into(),
            });
        };
        let url = format!("{issuer}/.well-known/openid-configuration");
        let fail = |reason: String| JwksError::Discovery {
            url: url.clone(),
            reason,
        };
        let response = self
            .inner
            .http
            .get(&url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        if response.status().as_u16() != 200 {
            return Err(fail(format!("HTTP {}", response.status().as_u16())));
        }
        let body = read_limited(response, self.inner.config.max_body)
            .await
            .map_err(&fail)?;
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))?;
        // OpenID Connect Discovery §4.3: the document must be about the issuer that was asked
        // for, or a look-alike host could substitute its own keys.
        let found = doc.issuer.as_deref().map(|i| i.trim_end_matches('/'));
        if found != Some(issuer.as_str()) {
            return Err(fail(format!("issuer is {found:?}, expected {issuer:?}")));
        }
        let jwks_uri = doc.jwks_uri.ok_or_else(|| fail("no jwks_uri".into()))?;
        check_url(&jwks_uri).map_err(|e| fail(e.to_string()))?;
        Ok(jwks_uri)
    }

    fn describe_source(&self) -> String {
        match &self.inner.source {
            Source::JwksUri(uri) => uri.clone(),
            Source::Issuer(issuer) => issuer.clone(),
        }
    }
}

/// The issuer's published keys, fetched and cached as [`JwksClient::key`] describes.
impl KeySource for JwksClient {
    fn key(
        &self,
        kid: Option<&str>,
        alg: Alg,
        now: i64,
    ) -> impl Future<Output = Result<Arc<VerifyingKey>, VerifyError>> + Send {
        JwksClient::key(self, kid, alg, now)
    }
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("source", &self.describe_source())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn check_url(url: &str) -> Result<(), JwksError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(JwksError::BadUrl(url.to_string()))
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &reqwest::header::HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Seconds to cache a response: its `max-age` less its `Age` (RFC 9111 §4.2.1), the default
/// without one, the floor for `no-cache`/`no-store`, all clamped to `[min_ttl, max_ttl]`.
fn cache_lifetime(headers: &HeaderMap, config: &JwksConfig) -> u64 {
    let mut max_age = None;
    let mut no_cache = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                no_cache = true;
            } else if let Some(seconds) = lower.strip_prefix("max-age=") {
                max_age = seconds.trim_matches('"').parse::<u64>().ok().or(max_age);
            }
        }
    }
    let age = header_str(headers, &AGE)
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let lifetime = match (no_cache, max_age) {
        (true, _) => 0,
        (false, Some(max_age)) => max_age.saturating_sub(age),
        (false, None) => config.default_ttl,
    };
    lifetime.clamp(config.min_ttl, config.max_ttl.max(config.min_ttl))
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(format!("body larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("body larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn max_age_is_honoured_within_floor_and_ceiling() {
        let config = JwksConfig {
            min_ttl: 30,
            max_ttl: 600,
            default_ttl: 120,
            ..JwksConfig::default()
        };
        let ttl = |pairs: &[(&reqwest::header::HeaderName, &str)]| {
            cache_lifetime(&headers(pairs), &config)
        };
        assert_eq!(ttl(&[(&CACHE_CONTROL, "public, max-age=300")]), 300);
        assert_eq!(ttl(&[(&CACHE_CONTROL, "max-age=5")]), 30, "floor");
        assert_eq!(ttl(&[(&CACHE_CONTROL, "max-age=86400")]), 600, "ceiling");
        assert_eq!(ttl(&[(&CACHE_CONTROL, "no-store")]), 30, "no-store: floor");
        assert_eq!(ttl(&[]), 120, "default without max-age");
        assert_eq!(
            ttl(&[(&CACHE_CONTROL, "max-age=300"), (&AGE, "100")]),
            200,
            "Age is subtracted"
        );
        assert_eq!(ttl(&[(&CACHE_CONTROL, "MAX-AGE=\"90\"")]), 90);
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(JwksClient::new("ftp://x/jwks", JwksConfig::default()).is_err());
        assert!(JwksClient::discover("file:///etc", JwksConfig::default()).is_err());
        assert!(JwksClient::new("https://x/jwks", JwksConfig::default()).is_ok());
    }
}
