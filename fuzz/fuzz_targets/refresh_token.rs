//! The refresh-token format and rules: any presented string hashes (no length or charset makes
//! it panic), and `judge` never lets a revoked, expired or stale token rotate, whatever the
//! stored state and clock (arbitrary integers, including the extremes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stamp::tokens::refresh::{RefreshPolicy, RefreshState, TokenHash, Verdict, is_active, judge};

fn i64_at(data: &[u8], i: usize) -> i64 {
    let mut bytes = [0u8; 8];
    for (j, b) in bytes.iter_mut().enumerate() {
        *b = data.get(i * 8 + j).copied().unwrap_or(0);
    }
    i64::from_le_bytes(bytes)
}

fuzz_target!(|data: &[u8]| {
    let presented = String::from_utf8_lossy(data);
    let hash = TokenHash::of(&presented);
    assert_eq!(TokenHash::from_slice(hash.as_bytes()), Some(hash));

    let flags = data.first().copied().unwrap_or(0);
    let state = RefreshState {
        spent_at: (flags & 1 != 0).then(|| i64_at(data, 1)),
        grace_used: flags & 2 != 0,
        expires_at: i64_at(data, 2),
        token_version: i64_at(data, 3) & 3,
        family_revoked: flags & 4 != 0,
        family_expires_at: i64_at(data, 4),
        user_version: (flags & 8 != 0).then(|| i64_at(data, 5) & 3),
        user_disabled: flags & 16 != 0,
    };
    let now = i64_at(data, 6);
    let policy = RefreshPolicy {
        ttl: i64_at(data, 7),
        family_ttl: i64_at(data, 8),
        reuse_grace: i64_at(data, 9),
    };
    let verdict = judge(&state, now, &policy);
    if matches!(verdict, Verdict::Rotate | Verdict::Grace) {
        assert!(!state.family_revoked);
        assert!(state.expires_at > now && state.family_expires_at > now);
        assert_eq!(state.user_version, Some(state.token_version));
        assert!(!state.user_disabled);
    }
    if verdict == Verdict::Grace {
        assert!(!state.grace_used && state.spent_at.is_some());
    }
    if state.spent_at.is_some() {
        assert_ne!(verdict, Verdict::Rotate, "a spent token rotated again");
    }
    if is_active(&state, now) {
        assert_eq!(verdict, Verdict::Rotate);
    }
    let _ = policy.token_expiry(now, state.family_expires_at);
});
