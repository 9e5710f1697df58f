//! Login throttling: attempts are reserved before the password is checked, counted per client
//! address, per username and per trusted device, and refused (429, `Retry-After`) for a delay
//! that doubles with every failure beyond a free allowance.
//!
//! The policy (docs/sessions.md, "Login throttling"):
//! - An attempt that presents a valid device cookie for its username (a device that logged in as
//!   that user before, OWASP's device-cookie pattern) is counted against that device only. The
//!   username's and the address's counters neither block nor count it, so nobody who knows only
//!   the username can stop the owner's devices.
//! - Any other attempt is counted against its address (four times the allowance: NAT) and its
//!   username. An address with recent failures is also held to the username's counter (delays up
//!   to `max_delay`). An address with no recent failures is held instead to the username's
//!   *fresh-address* counter, which only failures from such addresses feed and whose delay is
//!   capped at `fresh_max_delay`: failures from addresses that have already failed cannot block
//!   a first login from elsewhere, and an attacker who wants to must spend a new address per
//!   failure, each of which still slows the account.
//! - The attempt is counted when it is reserved, before any hashing, under one lock, so a burst
//!   of concurrent guesses gets no more checks than a sequence. A success releases its
//!   reservation: it clears the username's (or the device's) counters and gives the address its
//!   attempt back. An attempt that was never checked (hashing queue full, store error) is given
//!   back entirely.
//!
//! In memory and per process: each replica throttles on its own. The map is capped, so an
//! attacker spraying usernames or addresses cannot grow it without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Throttle settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures for one username or device before attempts are delayed. A client address gets
    /// four times as many, since many honest users may share one (NAT, proxies).
    pub free_failures: u32,
    /// The longest delay, in seconds; also the quiet spell after which failures are forgiven.
    pub max_delay: i64,
    /// The longest delay the username's fresh-address counter imposes, in seconds: how long
    /// failures from elsewhere can hold up a first login from an address with no failures.
    pub fresh_max_delay: i64,
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
    /// Attempts without a device cookie for this username.
    User(String),
    /// Attempts for this username from addresses with no recent failures.
    FreshUser(String),
    /// Attempts from this client address without a device cookie.
    Address(IpAddr),
    /// Attempts that present this device cookie (its identifier, not its secret).
    Device(String),
}

/// One login attempt, as the throttle sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    /// The canonical username, if it is a valid one.
    pub username: Option<String>,
    /// The client address, if known.
    pub address: Option<IpAddr>,
    /// The identifier of a valid device cookie for `username`.
    pub device: Option<String>,
}

/// An attempt counted ahead of its password check. Dropping it leaves it counted as a failure;
/// [`Throttle::succeeded`] and [`Throttle::cancel`] give it back.
#[derive(Debug)]
#[must_use = "a reservation is settled by succeeded, cancel, or dropped as a failure"]
pub struct Reservation {
    counted: Vec<ThrottleKey>,
    now: i64,
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

    /// Refuses the attempt if a counter that applies to it is blocked at `now` (with the longest
    /// remaining delay); otherwise counts it as a failure against its counters, atomically, and
    /// returns the reservation to settle once the password has been checked.
    pub fn reserve(&self, attempt: &Attempt, now: i64) -> Result<Reservation, Throttled> {
        let mut entries = self.lock();
        let (checked, counted) = self.keys_of(&entries, attempt, now);
        let wait = checked
            .iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.blocked_until - now)
            .max()
            .unwrap_or(0);
        if wait > 0 {
            return Err(Throttled { retry_after: wait });
        }
        for key in &counted {
            self.count(&mut entries, key, now);
        }
        Ok(Reservation { counted, now })
    }

    /// The password was right: the username's (or device's) counters are cleared and the
    /// address gets its attempt back. The address counter is not cleared: that would let one
    /// valid account reset the limit on spraying other usernames.
    pub fn succeeded(&self, reservation: Reservation) {
        let mut entries = self.lock();
        for key in &reservation.counted {
            match key {
                ThrottleKey::Address(_) => self.uncount(&mut entries, key, reservation.now),
                _ => {
                    entries.remove(key);
                }
            }
        }
    }

    /// The password was never checked (the hashing queue was full, the store failed): every
    /// counter gets the attempt back.
    pub fn cancel(&self, reservation: Reservation) {
        let mut entries = self.lock();
        for key in &reservation.counted {
            self.uncount(&mut entries, key, reservation.now);
        }
    }

    /// How many entries are held (tests, metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters that may block `attempt`, and those it is counted against.
    fn keys_of(
        &self,
        entries: &HashMap<ThrottleKey, Entry>,
        attempt: &Attempt,
        now: i64,
    ) -> (Vec<ThrottleKey>, Vec<ThrottleKey>) {
        if let Some(device) = &attempt.device {
            let key = ThrottleKey::Device(device.clone());
            return (vec![key.clone()], vec![key]);
        }
        let mut checked = Vec::with_capacity(2);
        let mut counted = Vec::with_capacity(3);
        // An unknown address (no peer) is treated as one with failures: the strict side.
        let fresh = attempt.address.is_some_and(|address| {
            entries
                .get(&ThrottleKey::Address(address))
                .is_none_or(|e| e.failures == 0 || self.is_stale(e, now))
        });
        if let Some(address) = attempt.address {
            checked.push(ThrottleKey::Address(address));
            counted.push(ThrottleKey::Address(address));
        }
        if let Some(name) = &attempt.username {
            let user = ThrottleKey::User(name.clone());
            if fresh {
                let fresh_user = ThrottleKey::FreshUser(name.clone());
                checked.push(fresh_user.clone());
                counted.push(fresh_user);
            } else {
                checked.push(user.clone());
            }
            counted.push(user);
        }
        (checked, counted)
    }

    /// Counts one failure against `key`.
    fn count(&self, entries: &mut HashMap<ThrottleKey, Entry>, key: &ThrottleKey, now: i64) {
        if !entries.contains_key(key) && entries.len() >= self.policy.capacity {
            self.evict(entries, now);
        }
        let (free, max) = self.limits(key);
        let entry = entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            blocked_until: 0,
            last_failure: now,
        });
        // A quiet spell as long as the longest delay forgives old failures.
        if self.is_stale(entry, now) {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        // `now` is in whole seconds: a failure at second `now` may have happened at its very
        // end, so the block runs to the end of second `now + delay`, never shorter than the
        // delay (the `Retry-After` answered in the same second is `delay + 1`).
        let wait = delay(entry.failures, free, max);
        entry.blocked_until = if wait > 0 { now + wait + 1 } else { now };
    }

    /// Gives one counted attempt back to `key`: the block shrinks to what the remaining failures
    /// call for.
    fn uncount(&self, entries: &mut HashMap<ThrottleKey, Entry>, key: &ThrottleKey, now: i64) {
        let (free, max) = self.limits(key);
        let Some(entry) = entries.get_mut(key) else {
            return;
        };
        entry.failures = entry.failures.saturating_sub(1);
        if entry.failures == 0 {
            entries.remove(key);
            return;
        }
        let wait = delay(entry.failures, free, max);
        let due = if wait > 0 {
            entry.last_failure + wait + 1
        } else {
            now
        };
        entry.blocked_until = entry.blocked_until.min(due);
    }

    /// The free failures and the longest delay of `key`'s counter.
    fn limits(&self, key: &ThrottleKey) -> (u32, i64) {
        let ThrottlePolicy {
            free_failures,
            max_delay,
            fresh_max_delay,
            ..
        } = self.policy;
        match key {
            ThrottleKey::User(_) | ThrottleKey::Device(_) => (free_failures, max_delay),
            ThrottleKey::FreshUser(_) => (free_failures, fresh_max_delay.min(max_delay)),
            ThrottleKey::Address(_) => (free_failures.saturating_mul(4), max_delay),
        }
    }

    fn is_stale(&self, entry: &Entry, now: i64) -> bool {
        now >= entry.blocked_until && now - entry.last_failure > self.policy.max_delay
    }

    /// Makes room: drops forgiven entries, then, if still full, the oldest tenth.
    fn evict(&self, entries: &mut HashMap<ThrottleKey, Entry>, now: i64) {
        entries.retain(|_, e| !self.is_stale(e, now));
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
            fresh_max_delay: 4,
            capacity: 100,
        }
    }

    fn user(name: &str) -> ThrottleKey {
        ThrottleKey::User(name.into())
    }

    fn attempt(name: &str, address: Option<&str>) -> Attempt {
        Attempt {
            username: Some(name.into()),
            address: address.map(|a| a.parse().unwrap()),
            device: None,
        }
    }

    fn fail(throttle: &Throttle, attempt: &Attempt, now: i64) -> Result<(), Throttled> {
        throttle.reserve(attempt, now).map(drop)
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
        let alice = attempt("alice", None);
        let mut now = 1_000;
        for _ in 0..3 {
            fail(&throttle, &alice, now).unwrap();
        }
        for expected_delay in [1, 2, 4, 8] {
            assert_eq!(
                fail(&throttle, &alice, now),
                Err(Throttled {
                    retry_after: expected_delay + 1
                })
            );
            // A full `delay` seconds later (whatever the sub-second timing was) it still holds.
            assert_eq!(
                fail(&throttle, &alice, now + expected_delay),
                Err(Throttled { retry_after: 1 })
            );
            now += expected_delay + 1;
            fail(&throttle, &alice, now).unwrap();
        }
    }

    #[test]
    fn concurrent_reservations_get_no_more_checks_than_a_sequence() {
        let throttle = Throttle::new(policy());
        let guess = attempt("alice", Some("10.0.0.1"));
        let held: Vec<_> = (0..40)
            .filter_map(|_| throttle.reserve(&guess, 0).ok())
            .collect();
        assert_eq!(held.len(), 3, "only the free failures are let through");
    }

    #[test]
    fn success_resets_the_user_and_gives_the_address_its_attempt_back() {
        let throttle = Throttle::new(ThrottlePolicy {
            free_failures: 1,
            ..policy()
        });
        let addr = ThrottleKey::Address("10.0.0.1".parse().unwrap());
        let guess = attempt("alice", Some("10.0.0.1"));
        fail(&throttle, &guess, 0).unwrap();
        assert!(fail(&throttle, &guess, 0).is_err());
        let later = throttle.reserve(&guess, 10).unwrap();
        throttle.succeeded(later);
        assert!(!throttle.lock().contains_key(&user("alice")));
        assert_eq!(
            throttle.lock()[&addr].failures,
            1,
            "the earlier failure stays"
        );
    }

    #[test]
    fn a_cancelled_attempt_is_given_back() {
        let throttle = Throttle::new(policy());
        let guess = attempt("alice", Some("10.0.0.1"));
        let reservation = throttle.reserve(&guess, 0).unwrap();
        throttle.cancel(reservation);
        assert!(throttle.is_empty());
    }

    #[test]
    fn addresses_get_four_times_the_allowance() {
        let throttle = Throttle::new(policy());
        for i in 0..11 {
            fail(&throttle, &attempt(&format!("u{i}"), Some("::1")), 0).unwrap();
        }
        fail(&throttle, &attempt("u11", Some("::1")), 0).unwrap();
        assert!(fail(&throttle, &attempt("u12", Some("::1")), 0).is_err());
    }

    #[test]
    fn a_device_is_held_only_to_its_own_failures() {
        let throttle = Throttle::new(policy());
        for _ in 0..10 {
            let _ = fail(&throttle, &attempt("alice", Some("10.0.0.1")), 0);
        }
        let owner = Attempt {
            device: Some("d1".into()),
            ..attempt("alice", Some("10.0.0.1"))
        };
        for _ in 0..3 {
            fail(&throttle, &owner, 0).unwrap();
        }
        assert!(
            fail(&throttle, &owner, 0).is_err(),
            "its own failures count"
        );
        let other_device = Attempt {
            device: Some("d2".into()),
            ..owner
        };
        fail(&throttle, &other_device, 0).unwrap();
    }

    #[test]
    fn failures_from_failing_addresses_do_not_block_a_fresh_address() {
        let throttle = Throttle::new(policy());
        for _ in 0..10 {
            let _ = fail(&throttle, &attempt("alice", Some("10.0.0.1")), 0);
            let _ = fail(&throttle, &attempt("alice", Some("10.0.0.2")), 0);
        }
        assert!(fail(&throttle, &attempt("alice", Some("10.0.0.1")), 0).is_err());
        let fresh = throttle.reserve(&attempt("alice", Some("10.0.0.3")), 0);
        throttle.succeeded(fresh.unwrap());
    }

    #[test]
    fn failures_from_many_fresh_addresses_are_slowed_within_the_fresh_cap() {
        let throttle = Throttle::new(policy());
        for i in 0..3 {
            fail(
                &throttle,
                &attempt("alice", Some(&format!("10.0.1.{i}"))),
                0,
            )
            .unwrap();
        }
        let blocked = fail(&throttle, &attempt("alice", Some("10.0.1.9")), 0);
        assert_eq!(blocked, Err(Throttled { retry_after: 2 }));
        let mut now = 0;
        for i in 10..20 {
            now += 10;
            fail(
                &throttle,
                &attempt("alice", Some(&format!("10.0.1.{i}"))),
                now,
            )
            .unwrap();
            let wait = fail(&throttle, &attempt("alice", Some("10.0.2.1")), now)
                .unwrap_err()
                .retry_after;
            assert!(wait <= 5, "capped at fresh_max_delay + 1: {wait}");
        }
    }

    #[test]
    fn old_failures_are_forgiven() {
        let throttle = Throttle::new(policy());
        let alice = attempt("alice", None);
        for _ in 0..3 {
            fail(&throttle, &alice, 0).unwrap();
        }
        fail(&throttle, &alice, 1_000).unwrap();
        assert_eq!(
            throttle.lock()[&user("alice")].failures,
            1,
            "counter restarted"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_spray() {
        let throttle = Throttle::new(policy());
        for i in 0..10_000 {
            fail(&throttle, &attempt(&format!("u{i}"), None), i64::from(i)).unwrap();
        }
        assert!(throttle.len() <= 100, "{} entries", throttle.len());
        // The newest entries survive eviction.
        assert!(throttle.lock().contains_key(&user("u9999")));
    }
}
