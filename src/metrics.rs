//! Counters for operators, rendered as Prometheus text at `/metrics`. Lock-free atomics: the
//! hot paths pay one relaxed increment.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Process-wide counters (each replica counts its own).
#[derive(Default)]
pub struct Metrics {
    issued: [AtomicU64; 4],
    refused: [AtomicU64; 4],
    throttled: AtomicU64,
    refresh_reuse: AtomicU64,
    jwks_served: AtomicU64,
    jwks_not_modified: AtomicU64,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one grant's outcome.
    pub fn grant<T>(&self, grant: Grant, outcome: &Result<T, AuthError>) {
        let i = grant as usize;
        match outcome {
            Ok(_) => inc(&self.issued[i]),
            Err(e) => {
                inc(&self.refused[i]);
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
        ];
        for (name, help, value) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
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
}
