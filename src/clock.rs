//! The one place that reads the time. Everything else gets a [`Clock`] (from the app state) or a
//! `now` parameter, so tests move time instead of sleeping. `clippy.toml` forbids
//! `SystemTime::now` and `Instant::now` everywhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where "now" comes from: the system clock in production, a manual clock in tests.
///
/// Cloning is cheap; clones of a manual clock share its time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds since the Unix epoch, when the clock is manual.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `start` (seconds since the epoch) until moved with
    /// [`Clock::advance`] or [`Clock::set`].
    pub fn manual(start: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start.saturating_mul(1000)))),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Milliseconds since the Unix epoch, for intervals shorter than a second.
    pub fn now_millis(&self) -> i64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => system_millis(),
        }
    }

    /// Whether this is a manual (test) clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock forward by `secs` (backward if negative). The system clock cannot be
    /// moved: there it does nothing.
    pub fn advance(&self, secs: i64) {
        if let Some(ms) = &self.manual {
            ms.fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
        }
    }

    /// Sets a manual clock to `secs` since the epoch; does nothing on the system clock.
    pub fn set(&self, secs: i64) {
        if let Some(ms) = &self.manual {
            ms.store(secs.saturating_mul(1000), Ordering::SeqCst);
        }
    }
}

/// Seconds since the Unix epoch on the system clock, for the process edges that have no app
/// state (the CLI, examples, benches). Library code takes a [`Clock`] or a `now` instead.
pub fn now() -> i64 {
    system_millis().div_euclid(1000)
}

#[allow(clippy::disallowed_methods)] // the one allowed reading of the wall clock
fn system_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A monotonic instant, for measuring how long something took (latency, deadlines in tests).
#[allow(clippy::disallowed_methods)] // the one allowed reading of the monotonic clock
pub fn instant() -> std::time::Instant {
    std::time::Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now(), 1_000);
        shared.advance(61);
        assert_eq!(clock.now(), 1_061);
        assert_eq!(clock.now_millis(), 1_061_000);
        clock.set(5);
        assert_eq!(shared.now(), 5);
    }

    #[test]
    fn the_system_clock_is_after_2020_and_cannot_be_moved() {
        let clock = Clock::system();
        let before = clock.now();
        assert!(before > 1_577_836_800);
        clock.advance(-1_000_000);
        assert!(clock.now() >= before);
    }
}
