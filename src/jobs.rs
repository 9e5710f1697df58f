//! The issuer's background jobs, all in one place: key upkeep, the key-change listener and
//! session pruning.
//!
//! They live together rather than in each feature's stage because they are not tied to routes
//! (the key jobs serve every endpoint that signs or publishes keys), because they share one
//! shape (start at liftoff, run on the app's [`crate::clock::Clock`], stop with the server), and
//! because one list is what an operator reads to learn what the process does on its own. Only
//! this module and `routes/` touch Rocket's fairings; the work itself is a call into `keys` or
//! `store`.

use std::future::Future;
use std::time::Duration;

use rocket::Shutdown;
use rocket::fairing::AdHoc;

use crate::App;

/// How often expired sessions and denylist entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Every background job, started at liftoff.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("background jobs", |rocket| async {
        rocket
            .attach(key_upkeep())
            .attach(key_events())
            .attach(session_pruning())
    })
}

/// Key upkeep (DESIGN.md, "Key lifecycle"): every `key_poll_interval` seconds, pick up key-set
/// changes made elsewhere, remove retired keys whose tokens have expired, and run the rotation
/// schedule.
fn key_upkeep() -> AdHoc {
    AdHoc::on_liftoff("key upkeep", |rocket| {
        Box::pin(async move {
            let Some(app) = rocket.state::<App>() else {
                return;
            };
            let keys = app.keys.clone();
            let clock = app.clock.clone();
            let period = Duration::from_secs(app.config.keys.poll_interval);
            every(period, rocket.shutdown(), move || {
                let keys = keys.clone();
                let now = clock.now();
                async move {
                    if let Err(e) = keys.tick(now).await {
                        rocket::error!("key upkeep failed: {e}");
                    }
                }
            });
        })
    })
}

/// Replicas on the database key store: `LISTEN stamp_keys` and reload as soon as another replica
/// commits a key-set change (DESIGN.md, "Replicas"). Notifications missed while the connection
/// is down are covered by the polling of [`key_upkeep`].
fn key_events() -> AdHoc {
    AdHoc::on_liftoff("key change listener", |rocket| {
        Box::pin(async move {
            let Some(app) = rocket.state::<App>() else {
                return;
            };
            let Some(pool) = app.key_events.clone() else {
                return;
            };
            let keys = app.keys.clone();
            let mut shutdown = rocket.shutdown();
            tokio::spawn(async move {
                tokio::select! {
                    _ = &mut shutdown => {}
                    _ = crate::keys::follow_changes(&keys, &pool) => {}
                }
            });
        })
    })
}

/// Session pruning: once an hour, delete expired refresh tokens, families past their absolute
/// lifetime and expired denylist entries, so the tables stay as large as the live sessions.
fn session_pruning() -> AdHoc {
    AdHoc::on_liftoff("session pruning", |rocket| {
        Box::pin(async move {
            let Some(app) = rocket.state::<App>() else {
                return;
            };
            let store = app.store.clone();
            let clock = app.clock.clone();
            every(PRUNE_EVERY, rocket.shutdown(), move || {
                let store = store.clone();
                let now = clock.now();
                async move {
                    if let Err(e) = store.prune_expired(now).await {
                        rocket::error!("session pruning failed: {e}");
                    }
                }
            });
        })
    })
}

/// Runs `work` at once and then every `period` (a late tick delays the next rather than
/// bunching), until the server shuts down.
fn every<F, W>(period: Duration, mut shutdown: Shutdown, mut work: F)
where
    F: FnMut() -> W + Send + 'static,
    W: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = interval.tick() => work().await,
            }
        }
    });
}
