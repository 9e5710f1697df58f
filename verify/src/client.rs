//! The JWKS client: fetches the issuer's key set (directly or through discovery), caches it for
//! the lifetime its `Cache-Control` gives (clamped), revalidates with `If-None-Match`, and keeps
//! requests off the network while it has usable keys: a set nearing or past its lifetime is
//! refreshed in the background (stale-while-revalidate) and served meanwhile, for a bounded time
//! while the issuer is unreachable. Only a token whose `kid` is not in the set waits for a fetch
//! (rate-limited, concurrent callers sharing one), and every fetch is bounded by the timeout.
//!
//! The hot path (a fresh set that has the key) is one atomic load and a short scan: no lock, no
//! allocation. Every method that decides about freshness takes `now` (seconds since the epoch).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::header::{ACCEPT, AGE, CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};
use serde::Deserialize;
use tracing::Instrument;

use crate::{Alg, JwksError, KeySource, VerifyError, VerifyingKey, VerifyingKeys};

/// How the client caches and refetches. Durations in whole seconds, like `Cache-Control`.
///
/// See the README's "Choosing the cache settings" for the trade-offs.
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
    /// (`stale-if-error`, RFC 5861). After that, verification fails closed
    /// ([`JwksError::TooStale`]).
    pub max_stale: u64,
    /// Smallest interval between two fetch attempts caused by an unknown `kid` or following a
    /// failed fetch: a flood of tokens with made-up `kid`s costs the issuer one request per
    /// interval. An unknown `kid` within it is refused with [`VerifyError::UnknownKidCooldown`].
    pub refetch_interval: u64,
    /// How many seconds before the set's lifetime ends a background refresh starts (capped at
    /// half the lifetime), so that a healthy issuer's set is renewed before it ever goes stale.
    pub refresh_ahead: u64,
    /// Bound of each fetch attempt (discovery, connection, headers and body), applied to the
    /// built-in client and to a caller-supplied [`JwksConfig::http`] alike.
    pub timeout: Duration,
    /// Largest accepted JWKS or discovery body, in bytes.
    pub max_body: usize,
    /// The HTTP client to use (proxies, extra root certificates…); a default one when `None`.
    /// [`JwksConfig::timeout`] still bounds every fetch made with it.
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
            refresh_ahead: 60,
            timeout: Duration::from_secs(5),
            max_body: 256 * 1024,
            http: None,
        }
    }
}

/// What the cache holds and how fresh it is: for health checks and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStatus {
    /// Whether a key set was ever fetched.
    pub loaded: bool,
    /// Usable keys in the cached set.
    pub keys: usize,
    /// Seconds since the set was last fetched or revalidated.
    pub age: Option<i64>,
    /// Seconds the set is past its cache lifetime (0 while fresh): non-zero means it is being
    /// served stale because refreshing failed or is in progress.
    pub stale_for: i64,
    /// The error of the last fetch attempt, if it failed.
    pub last_error: Option<JwksError>,
    /// JWKS requests made so far (discovery not counted); also in [`JwksCounters::fetches`].
    pub fetches: u64,
    /// Whether a background refresh is scheduled or running.
    pub refreshing: bool,
}

/// Monotonic counters of the client's work since it was created, for a service to export (as
/// Prometheus counters, for instance). Read with [`JwksClient::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksCounters {
    /// JWKS requests sent (discovery requests not counted).
    pub fetches: u64,
    /// Of those, answered `304 Not Modified` (the cached set was revalidated).
    pub not_modified: u64,
    /// Fetch attempts that failed (unreachable, timeout, bad status, unusable body).
    pub failures: u64,
    /// Fetches caused by a token whose `kid` was not in the cached set.
    pub unknown_kid_refetches: u64,
    /// Tokens refused with [`VerifyError::UnknownKidCooldown`]: unknown `kid` within the
    /// refetch interval.
    pub unknown_kid_cooldowns: u64,
    /// Background refreshes started (stale-while-revalidate).
    pub background_refreshes: u64,
    /// Key look-ups answered from a set past its lifetime (while a refresh runs or fails).
    pub stale_served: u64,
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
    /// A background refresh is scheduled or running: at most one at a time.
    refreshing: AtomicBool,
    counters: Counters,
    /// Held for the duration of a fetch: the single flight.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    not_modified: AtomicU64,
    failures: AtomicU64,
    unknown_kid_refetches: AtomicU64,
    unknown_kid_cooldowns: AtomicU64,
    background_refreshes: AtomicU64,
    stale_served: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One key set and its cache metadata.
struct Snapshot {
    keys: Arc<VerifyingKeys>,
    etag: Option<String>,
    checked_at: i64,
    /// From here on, a look-up starts a background refresh (and still uses this set).
    refresh_from: i64,
    fresh_until: i64,
}

impl Snapshot {
    /// Last second at which this set may be used at all: its lifetime plus `max_stale`.
    fn usable_until(&self, max_stale: u64) -> i64 {
        self.fresh_until
            .saturating_add(i64::try_from(max_stale).unwrap_or(i64::MAX))
    }
}

struct FetchState {
    /// The JWKS URL, once known (given, or discovered once).
    jwks_uri: Option<String>,
    last_outcome: Result<(), JwksError>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Why {
    /// No usable set: the caller waits.
    Expired,
    /// Stale-while-revalidate: nobody waits.
    Background,
    /// A token's `kid` is not in the set: that caller waits.
    UnknownKid,
    /// [`JwksClient::refresh`].
    Forced,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Expired => "expired",
            Why::Background => "background",
            Why::UnknownKid => "unknown_kid",
            Why::Forced => "forced",
        }
    }
}

/// What [`JwksClient::refresh_shared`] did.
enum Attempt {
    /// A fetch ran (this caller's or a concurrent one's), or was not needed: its outcome.
    Done(Result<(), JwksError>),
    /// Refused by the refetch interval: the next attempt is allowed at this time.
    Limited { next_at: i64 },
}

impl JwksClient {
    /// A client of the key set at `jwks_uri`.
    pub fn new(jwks_uri: impl Into<String>, config: JwksConfig) -> Result<JwksClient, JwksError> {
        let uri = jwks_uri.into();
        check_url(&uri)?;
        JwksClient::with_source(Source::JwksUri(uri), config)
    }

    /// A client that finds the key set through `{issuer}/.well-known/openid-configuration`
    /// (fetched on first use; a trailing `/` of `issuer` is not doubled, OpenID Connect
    /// Discovery §4.1), whose `issuer` must equal `issuer` exactly: `https://id.example` and
    /// `https://id.example/` are different issuers (§4.3, RFC 8414 §3.3).
    pub fn discover(
        issuer: impl Into<String>,
        config: JwksConfig,
    ) -> Result<JwksClient, JwksError> {
        let issuer = issuer.into();
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
                refreshing: AtomicBool::new(false),
                counters: Counters::default(),
                fetch: tokio::sync::Mutex::new(FetchState {
                    jwks_uri,
                    last_outcome: Ok(()),
                }),
            }),
        })
    }

    /// The key that verifies a token with this `kid` (or, without one, the only key of `alg`).
    ///
    /// While the cached set is usable this never waits for the network (see
    /// [`JwksClient::keys`]). A `kid` missing from the set causes one refetch (the issuer may
    /// have rotated since the last fetch), at most once per
    /// [`refetch_interval`](JwksConfig::refetch_interval) and shared by concurrent callers;
    /// within the interval the answer is [`VerifyError::UnknownKidCooldown`] (retry later), after
    /// a refetch that does not have it [`VerifyError::UnknownKid`].
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
        match self.refresh_shared(now, Why::UnknownKid).await {
            Attempt::Limited { next_at } => {
                return Err(match kid {
                    Some(kid) => {
                        bump(&self.inner.counters.unknown_kid_cooldowns);
                        VerifyError::UnknownKidCooldown {
                            kid: kid.to_string(),
                            retry_after: u64::try_from(next_at.saturating_sub(now))
                                .unwrap_or(0)
                                .max(1),
                        }
                    }
                    None => VerifyError::MissingKid(alg),
                });
            }
            // The issuer may have rotated and be down now: not the token's fault.
            Attempt::Done(Err(error)) => return Err(VerifyError::Keys(error)),
            Attempt::Done(Ok(())) => {}
        }
        let keys = self.inner.current.load_full().map(|s| s.keys.clone());
        match keys {
            Some(keys) => keys.lookup(kid, alg).cloned(),
            None => Err(match kid {
                Some(kid) => VerifyError::UnknownKid(kid.to_string()),
                None => VerifyError::MissingKid(alg),
            }),
        }
    }

    /// The current key set. While the cached set is usable it is returned at once: fresh; or
    /// within [`refresh_ahead`](JwksConfig::refresh_ahead) of its lifetime's end, or past it by
    /// at most [`max_stale`](JwksConfig::max_stale), with a refresh started in the background
    /// (stale-while-revalidate). Only without a usable set does the caller wait for a fetch,
    /// bounded by the timeout; past the stale limit the error is [`JwksError::TooStale`].
    pub async fn keys(&self, now: i64) -> Result<Arc<VerifyingKeys>, JwksError> {
        let max_stale = self.inner.config.max_stale;
        if let Some(snap) = self.inner.current.load().as_ref() {
            if now < snap.refresh_from {
                return Ok(snap.keys.clone());
            }
            if now <= snap.usable_until(max_stale) {
                if now >= snap.fresh_until {
                    bump(&self.inner.counters.stale_served);
                }
                self.refresh_in_background(now);
                return Ok(snap.keys.clone());
            }
        }
        let outcome = match self.refresh_shared(now, Why::Expired).await {
            Attempt::Done(outcome) => outcome,
            Attempt::Limited { .. } => self.last_outcome(),
        };
        let Some(snap) = self.inner.current.load_full() else {
            return Err(outcome.err().unwrap_or_else(|| JwksError::Invalid {
                url: self.describe_source(),
                reason: "no key set was stored".into(),
            }));
        };
        if now <= snap.usable_until(max_stale) {
            return Ok(snap.keys.clone());
        }
        let last_error = outcome.err().unwrap_or_else(|| JwksError::Invalid {
            url: self.describe_source(),
            reason: "no key set was stored".into(),
        });
        Err(JwksError::TooStale {
            age: now - snap.checked_at,
            stale_for: now - snap.fresh_until,
            max_stale,
            cutoff: snap.usable_until(max_stale),
            last_error: Box::new(last_error),
        })
    }

    /// Fetches now (single-flight with any fetch in progress), ignoring freshness and the refetch
    /// interval: for start-up warm-up and operators.
    pub async fn refresh(&self, now: i64) -> Result<Arc<VerifyingKeys>, JwksError> {
        if let Attempt::Done(Err(e)) = self.refresh_shared(now, Why::Forced).await {
            return Err(e);
        }
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
            fetches: self.inner.counters.fetches.load(Ordering::Relaxed),
            refreshing: self.inner.refreshing.load(Ordering::Acquire),
        }
    }

    /// The counters since this client (and its clones) was created.
    pub fn counters(&self) -> JwksCounters {
        let c = &self.inner.counters;
        let read = |a: &AtomicU64| a.load(Ordering::Relaxed);
        JwksCounters {
            fetches: read(&c.fetches),
            not_modified: read(&c.not_modified),
            failures: read(&c.failures),
            unknown_kid_refetches: read(&c.unknown_kid_refetches),
            unknown_kid_cooldowns: read(&c.unknown_kid_cooldowns),
            background_refreshes: read(&c.background_refreshes),
            stale_served: read(&c.stale_served),
        }
    }

    fn last_outcome(&self) -> Result<(), JwksError> {
        match self.inner.last_error.load_full() {
            Some(e) => Err((*e).clone()),
            None => Ok(()),
        }
    }

    /// Whether the last attempt was within the refetch interval before `now`.
    fn attempted_recently(&self, now: i64) -> bool {
        let last = self.inner.last_attempt.load(Ordering::Acquire);
        last != i64::MIN && now.saturating_sub(last) < self.inner.config.refetch_interval as i64
    }

    /// Starts a refresh on the current Tokio runtime unless one is running or the issuer failed
    /// within the refetch interval (a down issuer is asked once per interval, not per request).
    fn refresh_in_background(&self, now: i64) {
        let inner = &self.inner;
        if inner.refreshing.load(Ordering::Acquire)
            || (inner.last_error.load().is_some() && self.attempted_recently(now))
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        bump(&inner.counters.background_refreshes);
        let client = self.clone();
        runtime.spawn(async move {
            // Cleared even if the task is cancelled (runtime shut down).
            let _done = ClearOnDrop(&client.inner.refreshing);
            let _ = client.refresh_shared(now, Why::Background).await;
        });
    }

    /// One fetch for everyone who needs one: callers that arrive while a fetch is in progress
    /// wait for it and share its outcome instead of starting their own.
    async fn refresh_shared(&self, now: i64, why: Why) -> Attempt {
        let inner = &self.inner;
        let interval = inner.config.refetch_interval as i64;
        let next_at = |last: i64| last.saturating_add(interval);
        // Cheap refusal without the lock for the case an attacker can drive: unknown kids. A
        // fetch in progress is waited for instead: it may bring the key.
        if why == Why::UnknownKid
            && self.attempted_recently(now)
            && !inner.refreshing.load(Ordering::Acquire)
            && inner.fetch.try_lock().is_ok()
        {
            return Attempt::Limited {
                next_at: next_at(inner.last_attempt.load(Ordering::Acquire)),
            };
        }
        let seen = inner.attempts.load(Ordering::Acquire);
        let mut state = inner.fetch.lock().await;
        if inner.attempts.load(Ordering::Acquire) != seen {
            return Attempt::Done(state.last_outcome.clone());
        }
        // Someone may have refreshed between our look at the cache and our turn at the lock.
        if matches!(why, Why::Expired | Why::Background)
            && inner
                .current
                .load()
                .as_ref()
                .is_some_and(|s| now < s.refresh_from)
        {
            return Attempt::Done(Ok(()));
        }
        let last = inner.last_attempt.load(Ordering::Acquire);
        let limited = match why {
            Why::Forced => false,
            Why::UnknownKid => self.attempted_recently(now),
            // An expired set is refreshed at once, unless the last attempt failed recently: a
            // down issuer is asked once per interval, not once per request.
            Why::Expired | Why::Background => {
                state.last_outcome.is_err() && self.attempted_recently(now)
            }
        };
        if limited {
            return match why {
                Why::UnknownKid => Attempt::Limited {
                    next_at: next_at(last),
                },
                _ => Attempt::Done(state.last_outcome.clone()),
            };
        }
        inner.last_attempt.store(now, Ordering::Release);
        if why == Why::UnknownKid {
            bump(&inner.counters.unknown_kid_refetches);
        }
        let span = tracing::info_span!(
            "jwks_fetch",
            source = %self.describe_source(),
            reason = why.as_str(),
        );
        let timeout = inner.config.timeout;
        let outcome = async {
            // The bound holds whatever client is used: a caller's client may have no timeout.
            let bounded = tokio::time::timeout(timeout, self.fetch(&mut state, now)).await;
            let outcome = match bounded {
                Ok(outcome) => outcome,
                Err(_) => Err(JwksError::Unreachable {
                    url: state
                        .jwks_uri
                        .clone()
                        .unwrap_or_else(|| self.describe_source()),
                    reason: format!("no complete answer within {} ms", timeout.as_millis()),
                }),
            };
            match &outcome {
                Ok(()) => tracing::debug!("key set fetched"),
                Err(e) => {
                    bump(&inner.counters.failures);
                    tracing::warn!(error = %e, "fetching the key set failed");
                }
            }
            outcome
        }
        .instrument(span)
        .await;
        match &outcome {
            Ok(()) => inner.last_error.store(None),
            Err(e) => inner.last_error.store(Some(Arc::new(e.clone()))),
        }
        state.last_outcome = outcome.clone();
        inner.attempts.fetch_add(1, Ordering::AcqRel);
        Attempt::Done(outcome)
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
        bump(&inner.counters.fetches);
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
                bump(&inner.counters.not_modified);
                let etag = etag.or_else(|| previous.etag.clone());
                self.store(previous.keys.clone(), etag, now, ttl);
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
                    tracing::warn!(kid = ?ignored.kid, reason = %ignored.reason, "JWKS key not used");
                }
                self.store(Arc::new(keys), etag, now, ttl);
                Ok(())
            }
            status => Err(JwksError::Status { url, status }),
        }
    }

    /// Swaps in a set fetched or revalidated at `now`, cacheable for `ttl` seconds.
    fn store(&self, keys: Arc<VerifyingKeys>, etag: Option<String>, now: i64, ttl: i64) {
        let ahead = i64::try_from(self.inner.config.refresh_ahead)
            .unwrap_or(i64::MAX)
            .min(ttl / 2);
        let fresh_until = now.saturating_add(ttl);
        self.inner.current.store(Some(Arc::new(Snapshot {
            keys,
            etag,
            checked_at: now,
            refresh_from: fresh_until.saturating_sub(ahead),
            fresh_until,
        })));
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
        let url = discovery_url(issuer);
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
        // for, exactly (no normalisation), or a look-alike could substitute its own keys.
        let found = doc.issuer.as_deref();
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

/// Clears a flag when dropped: the background refresh's "running" mark.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
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

/// Where `issuer` publishes its discovery document: the path appended after removing a
/// terminating `/` (OpenID Connect Discovery §4.1).
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.strip_suffix('/').unwrap_or(issuer)
    )
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

    /// A discovery and JWKS server on 127.0.0.1 whose document names the issuer
    /// `http://127.0.0.1:PORT{suffix}`. Answers `connections` requests, recording their paths.
    fn discovery_server(
        suffix: &'static str,
        connections: usize,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = format!("{base}{suffix}");
        let handle = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for stream in listener.incoming().take(connections) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                while reader.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
                let body = if path.ends_with("/openid-configuration") {
                    format!(
                        r#"{{"issuer":"{issuer}","jwks_uri":"{}/jwks"}}"#,
                        &issuer[..issuer.len() - suffix.len()]
                    )
                } else {
                    r#"{"keys":[]}"#.to_string()
                };
                paths.push(path);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).unwrap();
            }
            paths
        });
        (base, handle)
    }

    #[tokio::test]
    async fn the_discovered_issuer_must_equal_the_configured_one_exactly() {
        // (configured suffix, discovered suffix): a trailing slash makes another issuer.
        for (asked, published) in [("", ""), ("/", "/"), ("", "/"), ("/", "")] {
            let matches = asked == published;
            let (base, server) = discovery_server(published, if matches { 2 } else { 1 });
            let client =
                JwksClient::discover(format!("{base}{asked}"), JwksConfig::default()).unwrap();
            let keys = client.keys(0).await;
            assert_eq!(
                keys.is_ok(),
                matches,
                "asked {asked:?}, published {published:?}: {keys:?}"
            );
            let paths = server.join().unwrap();
            assert_eq!(
                paths[0], "/.well-known/openid-configuration",
                "the slash is not doubled"
            );
        }
    }

    /// A server on 127.0.0.1 that accepts connections and never answers (a hung issuer).
    fn silent_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        url
    }

    #[tokio::test]
    async fn the_timeout_bounds_every_fetch_also_with_a_callers_client() {
        for http in [None, Some(reqwest::Client::new())] {
            let custom = http.is_some();
            let client = JwksClient::new(
                silent_server(),
                JwksConfig {
                    timeout: Duration::from_millis(300),
                    http,
                    ..JwksConfig::default()
                },
            )
            .unwrap();
            #[allow(clippy::disallowed_methods)]
            let start = std::time::Instant::now();
            let outcome = client.keys(0).await;
            let took = start.elapsed();
            assert!(
                matches!(outcome, Err(JwksError::Unreachable { .. })),
                "custom client {custom}: {outcome:?}"
            );
            assert!(
                took < Duration::from_secs(2),
                "custom client {custom}: waited {took:?}"
            );
            assert_eq!(client.counters().failures, 1);
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(JwksClient::new("ftp://x/jwks", JwksConfig::default()).is_err());
        assert!(JwksClient::discover("file:///etc", JwksConfig::default()).is_err());
        assert!(JwksClient::new("https://x/jwks", JwksConfig::default()).is_ok());
    }
}
