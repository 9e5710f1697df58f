//! Opaque refresh tokens: generation, hashing, and the rules that decide what a presented token
//! gets (rotation, the reuse grace window, reuse detection per RFC 9700 §4.14.2).
//!
//! The rules are a pure function ([`judge`]) of the stored state and `now`; a store applies the
//! verdict inside one transaction, so two racing refreshes cannot both win.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A refresh token as handed to the client: 256 random bits, base64url. Hidden from `Debug`.
pub struct RefreshToken(Zeroizing<String>);

impl RefreshToken {
    /// A fresh random token.
    pub fn generate() -> RefreshToken {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        RefreshToken(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    /// The string the client stores.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<hidden>)")
    }
}

/// SHA-256 of a presented secret (refresh token or client secret). A fast hash is enough: these
/// are 256-bit random values, not guessable passwords.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(secret: &str) -> TokenHash {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads a stored hash; `None` unless it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<TokenHash> {
        bytes.try_into().ok().map(TokenHash)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Lifetimes and the reuse grace window, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Lifetime of one refresh token.
    pub ttl: i64,
    /// Absolute lifetime of a family (a login): rotation never extends past it.
    pub family_ttl: i64,
    /// How long after a token is spent it may be presented once more without revoking its
    /// family (0: never). See docs/sessions.md for the trade-off.
    pub reuse_grace: i64,
}

impl RefreshPolicy {
    /// When a token issued at `now` in a family that ends at `family_expires_at` expires.
    pub fn token_expiry(&self, now: i64, family_expires_at: i64) -> i64 {
        // Saturating: the fuzz target `refresh_token` drives this with any clock and policy.
        now.saturating_add(self.ttl).min(family_expires_at)
    }
}

/// Everything the rules need to know about a presented token, read in the deciding transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshState {
    pub spent_at: Option<i64>,
    pub grace_used: bool,
    pub expires_at: i64,
    pub token_version: i64,
    pub family_revoked: bool,
    pub family_expires_at: i64,
    /// The owner's current token version, `None` if the user no longer exists.
    pub user_version: Option<i64>,
    pub user_disabled: bool,
}

/// Why a refresh token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the refresh token is not known")]
    Unknown,
    #[error("the refresh token has expired")]
    Expired,
    #[error("the refresh token has been revoked")]
    Revoked,
    #[error("the refresh token was already used; its session has been revoked")]
    Reused,
    #[error("the user's tokens have been revoked")]
    Stale,
}

impl Rejection {
    /// The reason a revoked family records.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Unknown => "unknown",
            Rejection::Expired => "expired",
            Rejection::Revoked => "revoked",
            Rejection::Reused => "reuse",
            Rejection::Stale => "token_version",
        }
    }
}

/// What to do with a presented refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Spend it and issue its successor.
    Rotate,
    /// Spent a moment ago and inside the grace window: issue one more token in the family
    /// without revoking it, and mark the grace as used.
    Grace,
    /// Refuse, and leave the family as it is.
    Reject(Rejection),
    /// Refuse and revoke the whole family.
    RevokeFamily(Rejection),
}

/// The rules, in order: a revoked family stays dead; a spent token is reuse (revoke the family)
/// unless it is inside the one-time grace window; expiry; then the user's token version and
/// state. Reuse is checked before expiry on purpose: an expired token presented after it was
/// spent is still evidence that it leaked.
pub fn judge(state: &RefreshState, now: i64, policy: &RefreshPolicy) -> Verdict {
    if state.family_revoked {
        return Verdict::Reject(Rejection::Revoked);
    }
    let expired = state.expires_at <= now || state.family_expires_at <= now;
    let user_current = state.user_version == Some(state.token_version) && !state.user_disabled;
    if let Some(spent_at) = state.spent_at {
        let in_grace = policy.reuse_grace > 0
            && !state.grace_used
            && now.saturating_sub(spent_at) <= policy.reuse_grace;
        if in_grace && !expired && user_current {
            return Verdict::Grace;
        }
        return Verdict::RevokeFamily(Rejection::Reused);
    }
    if expired {
        return Verdict::Reject(Rejection::Expired);
    }
    if !user_current {
        return Verdict::RevokeFamily(Rejection::Stale);
    }
    Verdict::Rotate
}

/// Whether a refresh token in `state` would be accepted at `now` (introspection).
pub fn is_active(state: &RefreshState, now: i64) -> bool {
    let strict = RefreshPolicy {
        ttl: 0,
        family_ttl: 0,
        reuse_grace: 0,
    };
    judge(state, now, &strict) == Verdict::Rotate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> RefreshState {
        RefreshState {
            spent_at: None,
            grace_used: false,
            expires_at: 1_000,
            token_version: 3,
            family_revoked: false,
            family_expires_at: 5_000,
            user_version: Some(3),
            user_disabled: false,
        }
    }

    fn policy(grace: i64) -> RefreshPolicy {
        RefreshPolicy {
            ttl: 100,
            family_ttl: 1_000,
            reuse_grace: grace,
        }
    }

    /// Regression (fuzz target `refresh_token`): times at the ends of `i64` neither overflow
    /// nor panic, and a spent token at such times is still reuse.
    #[test]
    fn extreme_times_neither_overflow_nor_rotate_a_spent_token() {
        let extreme = RefreshPolicy {
            ttl: i64::MAX,
            family_ttl: i64::MAX,
            reuse_grace: 60,
        };
        assert_eq!(extreme.token_expiry(i64::MAX, i64::MAX), i64::MAX);
        assert_eq!(extreme.token_expiry(1, 50), 50);
        let spent = RefreshState {
            spent_at: Some(i64::MIN),
            expires_at: i64::MAX,
            family_expires_at: i64::MAX,
            ..fresh()
        };
        assert_eq!(
            judge(&spent, i64::MAX, &extreme),
            Verdict::RevokeFamily(Rejection::Reused)
        );
    }

    #[test]
    fn tokens_are_256_bit_base64url_and_hashed() {
        let token = RefreshToken::generate();
        let raw = URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(token.expose(), RefreshToken::generate().expose());
        assert_eq!(token.hash(), TokenHash::of(token.expose()));
        assert_eq!(format!("{token:?}"), "RefreshToken(<hidden>)");
    }

    #[test]
    fn an_unspent_current_token_rotates() {
        assert_eq!(judge(&fresh(), 500, &policy(0)), Verdict::Rotate);
        assert!(is_active(&fresh(), 500));
    }

    #[test]
    fn a_spent_token_revokes_its_family_without_grace() {
        let state = RefreshState {
            spent_at: Some(499),
            ..fresh()
        };
        assert_eq!(
            judge(&state, 500, &policy(0)),
            Verdict::RevokeFamily(Rejection::Reused)
        );
        assert!(!is_active(&state, 500));
    }

    #[test]
    fn grace_is_once_and_only_inside_the_window() {
        let spent = RefreshState {
            spent_at: Some(495),
            ..fresh()
        };
        assert_eq!(judge(&spent, 500, &policy(5)), Verdict::Grace);
        assert_eq!(
            judge(&spent, 501, &policy(5)),
            Verdict::RevokeFamily(Rejection::Reused)
        );
        let revoked_meanwhile = RefreshState {
            user_version: Some(4),
            ..spent.clone()
        };
        assert_eq!(
            judge(&revoked_meanwhile, 500, &policy(5)),
            Verdict::RevokeFamily(Rejection::Reused),
            "no grace after a token-version bump"
        );
        let used = RefreshState {
            grace_used: true,
            ..spent
        };
        assert_eq!(
            judge(&used, 500, &policy(5)),
            Verdict::RevokeFamily(Rejection::Reused)
        );
    }

    #[test]
    fn expiry_of_token_or_family_rejects_without_revoking() {
        assert_eq!(
            judge(&fresh(), 1_000, &policy(0)),
            Verdict::Reject(Rejection::Expired)
        );
        let family_over = RefreshState {
            family_expires_at: 400,
            ..fresh()
        };
        assert_eq!(
            judge(&family_over, 500, &policy(0)),
            Verdict::Reject(Rejection::Expired)
        );
    }

    #[test]
    fn version_bump_disabled_or_deleted_user_revokes() {
        for state in [
            RefreshState {
                user_version: Some(4),
                ..fresh()
            },
            RefreshState {
                user_disabled: true,
                ..fresh()
            },
            RefreshState {
                user_version: None,
                ..fresh()
            },
        ] {
            assert_eq!(
                judge(&state, 500, &policy(0)),
                Verdict::RevokeFamily(Rejection::Stale)
            );
        }
    }

    #[test]
    fn a_revoked_family_stays_revoked() {
        let state = RefreshState {
            family_revoked: true,
            ..fresh()
        };
        assert_eq!(
            judge(&state, 500, &policy(5)),
            Verdict::Reject(Rejection::Revoked)
        );
    }

    #[test]
    fn successors_never_outlive_the_family() {
        let p = policy(0);
        assert_eq!(p.token_expiry(0, 1_000), 100);
        assert_eq!(p.token_expiry(950, 1_000), 1_000);
    }
}
