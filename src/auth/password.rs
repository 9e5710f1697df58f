//! argon2id password hashing on a bounded pool of blocking threads, so that a login flood neither
//! stalls the async runtime nor grows memory without limit (each hash holds 19 MiB).
//!
//! Verification reuses pre-allocated argon2 work areas, one per permit at most: a fresh 19 MiB
//! allocation per check fragmented glibc's heap to hundreds of MiB under a login flood (measured
//! with `bench/load.sh`), while reused areas keep it at `password_concurrency` × 19 MiB.
//!
//! Login checks go through admission control ([`PasswordHasher::admit`]): besides the requests
//! hashing, at most `password_queue` may wait for a permit; any more are refused at once
//! ([`PasswordError::Busy`], answered `503` with `Retry-After`) instead of queueing without bound.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

/// A password in memory: zeroised on drop, hidden from `Debug`.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Minimum and maximum accepted lengths in bytes. The maximum keeps a hostile request from
    /// buying a long hash computation with a megabyte-sized "password".
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 1024;

    /// A password as typed at login: any length up to the maximum is checked against the hash.
    /// A longer one is refused here, before any hashing ([`PasswordError::TooLong`]; the
    /// endpoints answer 400): no stored password can be that long, so it cannot be right.
    pub fn for_login(raw: String) -> Result<Password, PasswordError> {
        let raw = Zeroizing::new(raw);
        if raw.len() > Self::MAX_LEN {
            return Err(PasswordError::TooLong { max: Self::MAX_LEN });
        }
        Ok(Password(raw))
    }

    /// A new password checked against the default length bounds only (tests, fixtures); new
    /// passwords from people go through [`PasswordPolicy::check`].
    pub fn new_checked(raw: String) -> Result<Password, PasswordError> {
        let len = raw.len();
        if len < Self::MIN_LEN {
            return Err(PasswordError::TooShort { min: Self::MIN_LEN });
        }
        if len > Self::MAX_LEN {
            return Err(PasswordError::TooLong { max: Self::MAX_LEN });
        }
        Ok(Password(Zeroizing::new(raw)))
    }

    /// Whether nothing was typed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// The rules a new password must meet (settings `password_min_length`, `password_max_length`,
/// `password_min_score`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest bytes.
    pub min_length: usize,
    /// Most bytes; at most [`Password::MAX_LEN`], which login enforces.
    pub max_length: usize,
    /// Lowest `zxcvbn` score (0 to 4) accepted; 0 turns the check off.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> PasswordPolicy {
        PasswordPolicy {
            min_length: Password::MIN_LEN,
            max_length: Password::MAX_LEN,
            min_score: 3,
        }
    }
}

impl PasswordPolicy {
    /// `raw` as a new password if it meets the policy: the length first (cheap), then the
    /// `zxcvbn` score on the blocking pool, with `user_inputs` (the username) counted as known
    /// to an attacker. The refusal names the rule broken.
    pub async fn check(
        &self,
        raw: String,
        user_inputs: &[&str],
    ) -> Result<Password, PasswordError> {
        let raw = Zeroizing::new(raw);
        let len = raw.len();
        if len < self.min_length {
            return Err(PasswordError::TooShort {
                min: self.min_length,
            });
        }
        if len > self.max_length {
            return Err(PasswordError::TooLong {
                max: self.max_length,
            });
        }
        if self.min_score == 0 {
            return Ok(Password(raw));
        }
        let inputs: Vec<String> = user_inputs.iter().map(|s| s.to_string()).collect();
        let min = self.min_score;
        tokio::task::spawn_blocking(move || {
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let entropy = zxcvbn::zxcvbn(&raw, &inputs);
            let score = u8::from(entropy.score());
            if score < min {
                let warning = entropy
                    .feedback()
                    .and_then(|f| f.warning())
                    .map(|w| w.to_string());
                return Err(PasswordError::TooGuessable {
                    score,
                    min,
                    warning,
                });
            }
            Ok(Password(raw))
        })
        .await
        .map_err(PasswordError::Task)?
    }
}

/// A new password that breaks the policy, or a hashing failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than the policy's minimum.
    #[error("password too short: a password needs at least {min} characters")]
    TooShort { min: usize },
    /// Longer than the policy's maximum (or [`Password::MAX_LEN`]) in bytes.
    #[error("password too long: a password has at most {max} bytes")]
    TooLong { max: usize },
    /// Common or guessable: `zxcvbn` scored it below the policy's minimum.
    #[error(
        "password too easy to guess (strength {score} of 4, at least {min} needed){}",
        warning.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
    )]
    TooGuessable {
        score: u8,
        min: u8,
        warning: Option<String>,
    },
    /// argon2 refused to hash.
    #[error("password hashing failed: {0}")]
    Hash(#[source] argon2::password_hash::Error),
    /// The blocking task that hashed panicked or was cancelled.
    #[error("password hashing failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The hasher's permits were closed (the hasher is shutting down).
    #[error("password hashing failed: {0}")]
    Closed(#[source] tokio::sync::AcquireError),
    /// Every permit is busy and the waiting queue is full: try again shortly.
    #[error("password hashing is at capacity ({hashing} running, {waiting} waiting)")]
    Busy { hashing: usize, waiting: usize },
}

/// Hashes and verifies passwords with argon2id, at most `limit` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verifying an unknown user against it costs the same
    /// time as a wrong password, so timing does not reveal which usernames exist.
    dummy_hash: Arc<str>,
    /// Free argon2 work areas. Allocated on first use (an idle issuer stays small) and never more
    /// than the permits, since only a permit holder takes one.
    arenas: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Admission slots (permits plus the waiting queue) for [`PasswordHasher::admit`]; `None`
    /// for a hasher without admission control (the CLI).
    admission: Option<Admission>,
    /// Password checks that ran argon2 (tests, metrics).
    checks: Arc<AtomicU64>,
}

/// The admission slots of a hasher and their sizes (for the error message).
#[derive(Clone)]
struct Admission {
    slots: Arc<Semaphore>,
    hashing: usize,
    waiting: usize,
}

/// A place among the password checks running or waiting, granted by [`PasswordHasher::admit`];
/// given back when dropped.
pub struct Admitted {
    hasher: PasswordHasher,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Admitted {
    /// Runs the check this place was granted for; see [`PasswordHasher::verify`].
    pub async fn verify(self, password: Password, hash: Option<String>) -> bool {
        self.hasher.verify(password, hash).await
    }
}

/// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    // These constants are within argon2's documented bounds, so `Params::new` cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(PasswordError::Hash)
}

/// Verifies in `arena` when the stored hash uses this issuer's parameters (the usual case), else
/// falls back to argon2's own allocation (hashes made with older parameters keep verifying).
fn verify_in_arena(password: &[u8], hash: &str, arena: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let standard = argon2();
    let ours = standard.params();
    let same_params = Params::try_from(&parsed).is_ok_and(|p| {
        p.m_cost() == ours.m_cost() && p.t_cost() == ours.t_cost() && p.p_cost() == ours.p_cost()
    });
    let is_argon2id = parsed.algorithm == Algorithm::Argon2id.ident();
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if !(same_params && is_argon2id && parsed.version == Some(Version::V0x13 as u32)) {
        return verify_blocking(password, hash);
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let Ok(params) = Params::new(
        ours.m_cost(),
        ours.t_cost(),
        ours.p_cost(),
        Some(expected.len()),
    ) else {
        return false;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    arena.resize(ours.block_count(), Block::default());
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    if argon2
        .hash_password_into_with_memory(password, salt, &mut out, &mut arena[..])
        .is_err()
    {
        return false;
    }
    expected.as_bytes().ct_eq(&out).into()
}

fn verify_blocking(password: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        // The parameters come from the stored hash, so older hashes keep verifying.
        Ok(parsed) => argon2().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

impl PasswordHasher {
    /// A hasher running at most `limit` argon2 computations at once, without admission
    /// control (every caller waits its turn: the CLI).
    pub async fn new(limit: usize) -> Result<PasswordHasher, PasswordError> {
        let dummy = super::super::store::random_id();
        let dummy_hash = tokio::task::spawn_blocking(move || hash_blocking(dummy.as_bytes()))
            .await
            .map_err(PasswordError::Task)??;
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            dummy_hash: dummy_hash.into(),
            arenas: Arc::new(Mutex::new(Vec::new())),
            admission: None,
            checks: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A hasher running at most `limit` argon2 computations at once, with at most `queue` more
    /// admitted checks waiting for one (the server).
    pub async fn bounded(limit: usize, queue: usize) -> Result<PasswordHasher, PasswordError> {
        let mut hasher = PasswordHasher::new(limit).await?;
        let hashing = limit.max(1);
        let waiting = queue.min(Semaphore::MAX_PERMITS.saturating_sub(hashing));
        hasher.admission = Some(Admission {
            slots: Arc::new(Semaphore::new(hashing + waiting)),
            hashing,
            waiting,
        });
        Ok(hasher)
    }

    /// A place for one password check, or [`PasswordError::Busy`] at once when every permit is
    /// taken and the waiting queue is full.
    pub fn admit(&self) -> Result<Admitted, PasswordError> {
        let slot = match &self.admission {
            None => None,
            Some(admission) => Some(admission.slots.clone().try_acquire_owned().map_err(|_| {
                PasswordError::Busy {
                    hashing: admission.hashing,
                    waiting: admission.waiting,
                }
            })?),
        };
        Ok(Admitted {
            hasher: self.clone(),
            _slot: slot,
        })
    }

    /// How many password checks have run argon2 so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Hashes a new password (argon2id, random salt), off the async runtime.
    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(PasswordError::Closed)?;
        tokio::task::spawn_blocking(move || hash_blocking(password.bytes()))
            .await
            .map_err(PasswordError::Task)?
    }

    /// Checks `password` against `hash`, or against the dummy hash when there is no user, so
    /// both cases take the same time. Returns `false` for a missing hash.
    pub async fn verify(&self, password: Password, hash: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        self.checks.fetch_add(1, Ordering::Relaxed);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let arenas = self.arenas.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let mut arena = arenas
                .lock()
                .map(|mut free| free.pop())
                .ok()
                .flatten()
                .unwrap_or_default();
            let ok = verify_in_arena(password.bytes(), &hash, &mut arena);
            if let Ok(mut free) = arenas.lock() {
                free.push(arena);
            }
            ok
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let hash = hash_blocking(b"correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_blocking(b"correct horse", &hash));
        assert!(!verify_blocking(b"wrong horse", &hash));
        assert!(!verify_blocking(b"correct horse", "not a hash"));
    }

    #[test]
    fn arena_verification_agrees_with_argon2() {
        let hash = hash_blocking(b"correct horse").unwrap();
        let mut arena = Vec::new();
        assert!(verify_in_arena(b"correct horse", &hash, &mut arena));
        assert_eq!(arena.len(), 19 * 1024, "one 19 MiB area, kept for reuse");
        assert!(!verify_in_arena(b"correct horsf", &hash, &mut arena));
        assert!(
            verify_in_arena(b"correct horse", &hash, &mut arena),
            "reused area"
        );
        assert!(!verify_in_arena(
            b"correct horse",
            "$argon2id$v=19$garbage",
            &mut arena
        ));
        // A hash with other parameters (an older policy) still verifies, through the fallback.
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old policy", &salt)
            .unwrap()
            .to_string();
        assert!(verify_in_arena(b"old policy", &old, &mut arena));
        assert!(!verify_in_arena(b"old polisy", &old, &mut arena));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_areas_never_outnumber_the_permits() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        let hash = hash_blocking(b"correct horse").unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, hash) = (hasher.clone(), hash.clone());
                tokio::spawn(async move {
                    hasher
                        .verify(
                            Password::for_login("correct horse".into()).unwrap(),
                            Some(hash),
                        )
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap());
        }
        let areas = hasher.arenas.lock().unwrap().len();
        assert!((1..=2).contains(&areas), "{areas} work areas for 2 permits");
    }

    #[test]
    fn password_policy() {
        assert!(Password::new_checked("short".into()).is_err());
        assert!(Password::new_checked("x".repeat(1025)).is_err());
        assert!(Password::new_checked("long enough".into()).is_ok());
        assert!(Password::for_login("x".repeat(1024)).is_ok());
        assert!(matches!(
            Password::for_login("x".repeat(1025)),
            Err(PasswordError::TooLong { max: 1024 })
        ));
        assert_eq!(
            format!("{:?}", Password::for_login("secret".into()).unwrap()),
            "Password(<hidden>)"
        );
    }

    #[tokio::test]
    async fn the_policy_refuses_short_long_common_and_username_derived_passwords() {
        let policy = PasswordPolicy::default();
        let refused = |r: Result<Password, PasswordError>| r.err().map(|e| e.to_string());
        let short = refused(policy.check("short".into(), &[]).await).unwrap();
        assert!(short.contains("too short"), "{short}");
        let long = refused(policy.check("x".repeat(1025), &[]).await).unwrap();
        assert!(long.contains("too long"), "{long}");
        for common in ["password1234", "qwertyuiop"] {
            let err = refused(policy.check(common.into(), &[]).await).unwrap();
            assert!(err.contains("too easy to guess"), "{common}: {err}");
        }
        assert!(policy.check("alice123".into(), &["alice"]).await.is_err());
        assert!(
            policy
                .check("correct horse battery staple".into(), &["alice"])
                .await
                .is_ok()
        );
        let lax = PasswordPolicy {
            min_score: 0,
            ..policy
        };
        assert!(lax.check("password1234".into(), &[]).await.is_ok());
    }

    #[tokio::test]
    async fn admission_refuses_beyond_the_permits_and_the_queue() {
        let hasher = PasswordHasher::bounded(1, 1).await.unwrap();
        let first = hasher.admit().unwrap();
        let second = hasher.admit().unwrap();
        assert!(matches!(
            hasher.admit(),
            Err(PasswordError::Busy {
                hashing: 1,
                waiting: 1
            })
        ));
        drop(first);
        let third = hasher.admit().unwrap();
        drop((second, third));
        // Without admission control every caller is let in to wait.
        let unbounded = PasswordHasher::new(1).await.unwrap();
        let places: Vec<_> = (0..100).map(|_| unbounded.admit().unwrap()).collect();
        assert_eq!(places.len(), 100);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        assert!(
            !hasher
                .verify(Password::for_login("anything".into()).unwrap(), None)
                .await
        );
    }
}
