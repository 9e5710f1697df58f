//! Login throttling: after repeated failures for one username or one client address, further
//! attempts are refused (429, `Retry-After`) for a delay that doubles with every failure.
//!
//! In memory and per process: each replica throttles on its own (docs/sessions.md). The map is
//! capped, so an attacker spraying usernames or addresses cannot grow it without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Throttle settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures for one username before attempts are delayed. A client address gets four times
    /// as many, since many honest users may share one (NAT, proxies).
    pub free_failures: u32,
    /// The longest delay, in seconds.
    pub max_delay: i64,
    /// Most entries remembered.
    pub capacity: usize,
}

/// Attempts are refused until `retry_after` more seconds have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: i64,
}

/// What a login attempt is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    User(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    blocked_until: i64,
    last_failure: i64,
}

/// The failure counters.
pub struct Throttle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<ThrottleKey, Entry>>,
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy) -> Throttle {
        Throttle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses if any of `keys` is blocked at `now`, with the longest remaining delay.
    pub fn check(&self, keys: &[ThrottleKey], now: i64) -> Result<(), Throttled> {
        let entries = self.lock();
        let wait = keys
            .iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.blocked_until - now)
            .max()
            .unwrap_or(0);
        if wait > 0 {
            return Err(Throttled { retry_after: wait });
        }
        Ok(())
    }

    /// Counts a failed attempt against every key.
    pub fn record_failure(&self, keys: &[ThrottleKey], now: i64) {
        let mut entries = self.lock();
        for key in keys {
            if !entries.contains_key(key) && entries.len() >= self.policy.capacity {
                self.evict(&mut entries, now);
            }
            let free = self.free_failures(key);
            let forget_after = self.policy.max_delay;
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                blocked_until: 0,
                last_failure: now,
            });
            // A quiet spell as long as the longest delay forgives old failures.
            if self.is_stale(entry, now, forget_after) {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            // `now` is in whole seconds: a failure at second `now` may have happened at its very
            // end, so the block runs to the end of second `now + delay`, never shorter than the
            // delay (the `Retry-After` answered in the same second is `delay + 1`).
            let wait = delay(entry.failures, free, self.policy.max_delay);
            entry.blocked_until = if wait > 0 { now + wait + 1 } else { now };
        }
    }

    /// A successful login clears the username's counter. The address counter is left to decay:
    /// clearing it would let one valid account reset the limit on spraying other usernames.
    pub fn record_success(&self, user: &ThrottleKey) {
        self.lock().remove(user);
    }

    /// How many entries are held (tests, metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn free_failures(&self, key: &ThrottleKey) -> u32 {
        match key {
            ThrottleKey::User(_) => self.policy.free_failures,
            ThrottleKey::Address(_) => self.policy.free_failures.saturating_mul(4),
        }
    }

    fn is_stale(&self, entry: &Entry, now: i64, forget_after: i64) -> bool {
        now >= entry.blocked_until && now - entry.last_failure > forget_after
    }

    /// Makes room: drops forgiven entries, then, if still full, the oldest tenth.
    fn evict(&self, entries: &mut HashMap<ThrottleKey, Entry>, now: i64) {
        let forget_after = self.policy.max_delay;
        entries.retain(|_, e| !self.is_stale(e, now, forget_after));
        if entries.len() < self.policy.capacity {
            return;
        }
        let mut ages: Vec<i64> = entries.values().map(|e| e.last_failure).collect();
        let cut = (ages.len() / 10).max(1).min(ages.len() - 1);
        let (_, threshold, _) = ages.select_nth_unstable(cut);
        let threshold = *threshold;
        entries.retain(|_, e| e.last_failure > threshold);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ThrottleKey, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // plain field write), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Seconds to wait after the `failures`-th failure: none within the free allowance, then 1, 2,
/// 4, … seconds, capped.
fn delay(failures: u32, free: u32, max: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let exponent = (failures - free).min(30);
    (1_i64 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: 3,
            max_delay: 60,
            capacity: 100,
        }
    }

    fn user(name: &str) -> ThrottleKey {
        ThrottleKey::User(name.into())
    }

    #[test]
    fn delays_double_after_the_free_failures_and_are_capped() {
        assert_eq!(delay(1, 3, 60), 0);
        assert_eq!(delay(2, 3, 60), 0);
        assert_eq!(delay(3, 3, 60), 1);
        assert_eq!(delay(4, 3, 60), 2);
        assert_eq!(delay(6, 3, 60), 8);
        assert_eq!(delay(40, 3, 60), 60);
        assert_eq!(delay(u32::MAX, 3, 60), 60);
    }

    #[test]
    fn retry_after_grows_with_failures_and_never_undercuts_the_delay() {
        let throttle = Throttle::new(policy());
        let keys = [user("alice")];
        let mut now = 1_000;
        for _ in 0..2 {
            throttle.record_failure(&keys, now);
        }
        assert_eq!(throttle.check(&keys, now), Ok(()));
        for expected_delay in [1, 2, 4, 8] {
            throttle.record_failure(&keys, now);
            assert_eq!(
                throttle.check(&keys, now),
                Err(Throttled {
                    retry_after: expected_delay + 1
                })
            );
            // A full `delay` seconds later (whatever the sub-second timing was) it still holds.
            assert_eq!(
                throttle.check(&keys, now + expected_delay),
                Err(Throttled { retry_after: 1 })
            );
            now += expected_delay + 1;
            assert_eq!(throttle.check(&keys, now), Ok(()));
        }
    }

    #[test]
    fn success_resets_the_user_but_not_the_address() {
        let throttle = Throttle::new(ThrottlePolicy {
            free_failures: 1,
            ..policy()
        });
        let addr = ThrottleKey::Address("10.0.0.1".parse().unwrap());
        let keys = [user("alice"), addr.clone()];
        for _ in 0..4 {
            throttle.record_failure(&keys, 0);
        }
        throttle.record_success(&user("alice"));
        assert_eq!(throttle.check(&[user("alice")], 0), Ok(()));
        assert_eq!(
            throttle.check(&[addr], 0),
            Err(Throttled { retry_after: 2 })
        );
    }

    #[test]
    fn addresses_get_four_times_the_allowance() {
        let throttle = Throttle::new(policy());
        let addr = [ThrottleKey::Address("::1".parse().unwrap())];
        for _ in 0..11 {
            throttle.record_failure(&addr, 0);
        }
        assert_eq!(throttle.check(&addr, 0), Ok(()));
        throttle.record_failure(&addr, 0);
        assert!(throttle.check(&addr, 0).is_err());
    }

    #[test]
    fn old_failures_are_forgiven() {
        let throttle = Throttle::new(policy());
        let keys = [user("alice")];
        for _ in 0..3 {
            throttle.record_failure(&keys, 0);
        }
        throttle.record_failure(&keys, 1_000);
        assert_eq!(
            throttle.check(&keys, 1_000),
            Ok(()),
            "counter restarted at 1"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_spray() {
        let throttle = Throttle::new(policy());
        for i in 0..10_000 {
            throttle.record_failure(&[user(&format!("u{i}"))], i64::from(i));
        }
        assert!(throttle.len() <= 100, "{} entries", throttle.len());
        // The newest entries survive eviction.
        assert!(throttle.lock().contains_key(&user("u9999")));
    }
}
