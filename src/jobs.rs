//! The issuer's background jobs, all in one place: key upkeep, the key-store watch, the
//! key-change listener and session pruning.
//!
//! They live together rather than in each feature's stage because they are not tied to routes
//! (the key jobs serve every endpoint that signs or publishes keys), because they share one
//! shape (start at liftoff, run on the app's [`crate::clock::Clock`], stop with the server), and
//! because one list is what an operator reads to learn what the process does on its own. Only
//! this module and `routes/` touch Rocket's fairings; the work itself is a call into `keys` or
//! `store`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::Shutdown;
use rocket::fairing::AdHoc;

use crate::App;

/// How often expired sessions and denylist entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the file key store is checked for changes made by another process.
const KEY_WATCH_EVERY: Duration = Duration::from_millis(250);

/// Every background job, started at liftoff.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("background jobs", |rocket| async {
        rocket
            .attach(key_upkeep())
            .attach(key_watch())
            .attach(key_events())
            .attach(session_pruning())
    })
}

/// Key upkeep (DESIGN.md, "Key lifecycle"): every `key_poll_interval` seconds, pick up key-set
/// changes made elsewhere, remove retired keys whose tokens have expired, run the rotation
/// schedule, and activate a newly enabled algorithm's first key once it has been published long
/// enough.
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

/// The file key store has no change notification: every quarter second, read the manifest's
/// generation and reload the key set if another process (`stamp keys revoke`, `stamp keys
/// rotate`, `stamp clients add`) committed a change. An emergency revocation from the CLI thus
/// stops signing and leaves the JWKS within a second, not after `key_poll_interval`. Reading a
/// manifest of a few kilobytes costs about what a `stat` of it would, and unlike a comparison
/// of mtime and size it cannot miss a change. The database key store announces changes instead
/// ([`key_events`]).
fn key_watch() -> AdHoc {
    AdHoc::on_liftoff("key store watch", |rocket| {
        Box::pin(async move {
            let Some(app) = rocket.state::<App>() else {
                return;
            };
            if app.key_events.is_some() {
                return;
            }
            let keys = app.keys.clone();
            // A failing read is logged once, not four times a second.
            let failing = Arc::new(AtomicBool::new(false));
            every(KEY_WATCH_EVERY, rocket.shutdown(), move || {
                let keys = keys.clone();
                let failing = failing.clone();
                async move {
                    match keys.reload_if_changed().await {
                        Ok(reloaded) => {
                            if reloaded {
                                rocket::info!("key set reloaded after a change by another process");
                            }
                            failing.store(false, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if !failing.swap(true, Ordering::Relaxed) {
                                rocket::warn!("key store watch: reload failed: {e}");
                            }
                        }
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
                    // Browser sessions, waiting authorization requests and codes of the
                    // OpenID Connect provider.
                    if let Err(e) = store.prune_oidc(now).await {
                        rocket::error!("OpenID Connect pruning failed: {e}");
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
