//! Counters for operators, rendered as Prometheus text at `/metrics`. Lock-free atomics: the
//! hot paths pay one relaxed increment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::auth::AuthError;
use crate::keys::{Alg, KeySet, KeyState};
use crate::tokens::refresh::Rejection;

/// The token endpoint's grants, as metric labels.
#[derive(Clone, Copy, Debug)]
pub enum Grant {
    Password,
    RefreshToken,
    ClientCredentials,
    AuthorizationCode,
}

impl Grant {
    const ALL: [Grant; 4] = [
        Grant::Password,
        Grant::RefreshToken,
        Grant::ClientCredentials,
        Grant::AuthorizationCode,
    ];

    fn label(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode => "authorization_code",
        }
    }
}

/// Who started a key-set change, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The rotation schedule of this replica.
    Schedule,
    /// The admin API of this replica.
    Api,
}

/// What a key-set change did, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    Rotate,
    Revoke,
}

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A Prometheus histogram of durations: one counter per bucket, a count and a sum (in
/// microseconds, so it stays an integer).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|upper| secs <= *upper) {
            inc(&self.buckets[i]);
        }
        inc(&self.count);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// `name_bucket`, `name_sum` and `name_count` lines with `labels` (`a="b",` or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, upper) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{upper}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            some => format!("{{{some}}}"),
        };
        let _ = writeln!(
            out,
            "{name}_sum{labels} {sum}\n{name}_count{labels} {count}"
        );
    }
}

/// Process-wide counters (each replica counts its own).
#[derive(Default)]
pub struct Metrics {
    issued: [AtomicU64; 4],
    refused: [AtomicU64; 4],
    unavailable: [AtomicU64; 4],
    throttled: AtomicU64,
    refresh_reuse: AtomicU64,
    jwks_served: AtomicU64,
    jwks_not_modified: AtomicU64,
    /// Requests answered 503 because the database could not be reached.
    database_unavailable: AtomicU64,
    /// Failed database pings of the health watch.
    database_ping_failures: AtomicU64,
    /// 1 when the last database ping answered, 0 when it failed, -1 before the first.
    database_up: AtomicI64,
    database_ping: Histogram,
    /// Responses by status class (1xx..5xx, index 0..4).
    responses: [AtomicU64; 5],
    /// `[schedule, api]` × `[rotate, revoke]`.
    key_changes: [[AtomicU64; 2]; 2],
    /// Key-set changes made elsewhere (another replica, the CLI) picked up by this replica.
    key_reloads: AtomicU64,
    /// 1 when the key-change listener is connected, 0 when not, -1 without a listener.
    key_listener: AtomicI64,
    /// Request latency by route (`METHOD /path/<param>`).
    routes: RwLock<BTreeMap<String, Arc<Histogram>>>,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Metrics for a process whose database and listener states are still unknown.
    pub fn new(has_key_listener: bool) -> Metrics {
        let metrics = Metrics::default();
        metrics.database_up.store(-1, Ordering::Relaxed);
        metrics
            .key_listener
            .store(if has_key_listener { 0 } else { -1 }, Ordering::Relaxed);
        metrics
    }

    /// Counts a request answered 503 because the database could not be reached.
    pub fn database_unavailable(&self) {
        inc(&self.database_unavailable);
    }

    /// Records a database health ping: how long it took, or that it failed.
    pub fn database_ping(&self, outcome: Result<Duration, ()>) {
        match outcome {
            Ok(took) => {
                self.database_ping.observe(took);
                self.database_up.store(1, Ordering::Relaxed);
            }
            Err(()) => {
                inc(&self.database_ping_failures);
                self.database_up.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Counts a key-set change this replica made.
    pub fn key_change(&self, change: KeyChange, origin: Origin) {
        inc(&self.key_changes[origin as usize][change as usize]);
    }

    /// Counts a key-set change made elsewhere and picked up here.
    pub fn key_reload(&self) {
        inc(&self.key_reloads);
    }

    /// The key-change listener's connection state.
    pub fn key_listener_connected(&self, connected: bool) {
        self.key_listener
            .store(i64::from(connected), Ordering::Relaxed);
    }

    /// Counts one response: its status, and its latency under `route`.
    pub fn response(&self, route: &str, status: u16, took: Duration) {
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            inc(&self.responses[usize::from(class)]);
        }
        let known = self
            .routes
            .read()
            .ok()
            .and_then(|routes| routes.get(route).cloned());
        let histogram = match known {
            Some(histogram) => histogram,
            None => match self.routes.write() {
                Ok(mut routes) => routes.entry(route.to_string()).or_default().clone(),
                Err(_) => return,
            },
        };
        histogram.observe(took);
    }

    /// Counts a grant refused because the database could not be reached (`e` says whether it
    /// was), whatever step it failed at.
    pub fn outage(&self, grant: Grant, e: &AuthError) {
        if let AuthError::Store(store) = e
            && store.is_unavailable()
        {
            inc(&self.unavailable[grant as usize]);
        }
    }

    /// Counts one grant's outcome.
    pub fn grant<T>(&self, grant: Grant, outcome: &Result<T, AuthError>) {
        let i = grant as usize;
        match outcome {
            Ok(_) => inc(&self.issued[i]),
            Err(e) => {
                inc(&self.refused[i]);
                self.outage(grant, e);
                match e {
                    AuthError::Throttled { .. } => inc(&self.throttled),
                    AuthError::Refresh(Rejection::Reused) => inc(&self.refresh_reuse),
                    _ => {}
                }
            }
        }
    }

    /// Counts one grant's outcome where the error is not an [`AuthError`] (the
    /// authorization-code grant).
    pub fn grant_outcome(&self, grant: Grant, issued: bool) {
        let i = grant as usize;
        inc(if issued {
            &self.issued[i]
        } else {
            &self.refused[i]
        });
    }

    /// Counts one JWKS answer.
    pub fn jwks(&self, not_modified: bool) {
        inc(if not_modified {
            &self.jwks_not_modified
        } else {
            &self.jwks_served
        });
    }

    /// Prometheus text exposition (version 0.0.4) of the counters and the key set at `now`.
    pub fn render(&self, keys: &KeySet, now: i64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            "stamp_tokens_issued_total",
            "counter",
            "Access tokens issued, by grant.",
        );
        family(
            "stamp_grants_refused_total",
            "counter",
            "Token requests refused, by grant.",
        );
        family(
            "stamp_grants_unavailable_total",
            "counter",
            "Token requests refused with 503 because the database could not be reached, by grant.",
        );
        let mut lines = String::new();
        for grant in Grant::ALL {
            let i = grant as usize;
            let label = grant.label();
            let _ = writeln!(
                lines,
                "stamp_tokens_issued_total{{grant=\"{label}\"}} {}",
                get(&self.issued[i])
            );
            let _ = writeln!(
                lines,
                "stamp_grants_refused_total{{grant=\"{label}\"}} {}",
                get(&self.refused[i])
            );
            let _ = writeln!(
                lines,
                "stamp_grants_unavailable_total{{grant=\"{label}\"}} {}",
                get(&self.unavailable[i])
            );
        }
        out.push_str(&lines);
        let scalars = [
            (
                "stamp_logins_throttled_total",
                "Logins answered 429 by the throttle.",
                get(&self.throttled),
            ),
            (
                "stamp_refresh_reuse_total",
                "Spent refresh tokens presented again (families revoked).",
                get(&self.refresh_reuse),
            ),
            (
                "stamp_jwks_served_total",
                "JWKS answers with a body.",
                get(&self.jwks_served),
            ),
            (
                "stamp_jwks_not_modified_total",
                "JWKS answers 304 Not Modified.",
                get(&self.jwks_not_modified),
            ),
            (
                "stamp_database_unavailable_total",
                "Requests answered 503 because the database could not be reached.",
                get(&self.database_unavailable),
            ),
            (
                "stamp_database_ping_failures_total",
                "Failed database pings of the health watch.",
                get(&self.database_ping_failures),
            ),
            (
                "stamp_key_set_reloads_total",
                "Key-set changes made by another replica or the CLI and picked up here.",
                get(&self.key_reloads),
            ),
        ];
        for (name, help, value) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        self.render_operations(&mut out);
        let _ = writeln!(
            out,
            "# HELP stamp_key_set_generation Generation of the key set in use.\n# TYPE stamp_key_set_generation gauge\nstamp_key_set_generation {}",
            keys.manifest().generation
        );
        let _ = writeln!(
            out,
            "# HELP stamp_keys Keys in the manifest, by algorithm and state.\n# TYPE stamp_keys gauge"
        );
        for alg in Alg::ALL {
            for state in [
                KeyState::Next,
                KeyState::Active,
                KeyState::Retired,
                KeyState::Removed,
                KeyState::Revoked,
            ] {
                let n = keys
                    .manifest()
                    .keys
                    .iter()
                    .filter(|k| k.alg == alg && k.state == state)
                    .count();
                let _ = writeln!(out, "stamp_keys{{alg=\"{alg}\",state=\"{state}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP stamp_active_key_age_seconds Seconds since the active key of each algorithm began signing.\n# TYPE stamp_active_key_age_seconds gauge"
        );
        for alg in Alg::ALL {
            if let Some(key) = keys.active(alg) {
                let since = key.meta.activated_at.unwrap_or(key.meta.created_at);
                let _ = writeln!(
                    out,
                    "stamp_active_key_age_seconds{{alg=\"{alg}\"}} {}",
                    (now - since).max(0)
                );
            }
        }
        out
    }

    /// The fleet-operation families: build, database, listener, key changes, HTTP.
    fn render_operations(&self, out: &mut String) {
        let get = |c: &AtomicI64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP stamp_build_info The running build.\n# TYPE stamp_build_info gauge\n\
             stamp_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP stamp_database_up Whether the last database ping answered (1), failed (0), or none ran yet (-1).\n\
             # TYPE stamp_database_up gauge\nstamp_database_up {}",
            get(&self.database_up)
        );
        let _ = writeln!(
            out,
            "# HELP stamp_database_ping_seconds Round trip of the database health ping.\n\
             # TYPE stamp_database_ping_seconds histogram"
        );
        self.database_ping
            .render(out, "stamp_database_ping_seconds", "");
        let _ = writeln!(
            out,
            "# HELP stamp_key_listener_connected Whether the key-change listener (LISTEN stamp_keys) is connected (1), reconnecting (0), or not used (-1).\n\
             # TYPE stamp_key_listener_connected gauge\nstamp_key_listener_connected {}",
            get(&self.key_listener)
        );
        let _ = writeln!(
            out,
            "# HELP stamp_key_changes_total Key rotations and revocations made by this replica, by origin (changes by the CLI or other replicas count in stamp_key_set_reloads_total).\n\
             # TYPE stamp_key_changes_total counter"
        );
        for (o, origin) in ["schedule", "api"].iter().enumerate() {
            for (c, change) in ["rotate", "revoke"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "stamp_key_changes_total{{change=\"{change}\",origin=\"{origin}\"}} {}",
                    self.key_changes[o][c].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP stamp_http_responses_total HTTP responses by status class.\n\
             # TYPE stamp_http_responses_total counter"
        );
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let _ = writeln!(
                out,
                "stamp_http_responses_total{{class=\"{class}\"}} {}",
                self.responses[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP stamp_http_request_duration_seconds Request latency by route.\n\
             # TYPE stamp_http_request_duration_seconds histogram"
        );
        if let Ok(routes) = self.routes.read() {
            for (route, histogram) in routes.iter() {
                let labels = format!("route=\"{route}\",");
                histogram.render(out, "stamp_http_request_duration_seconds", &labels);
            }
        }
    }
}
