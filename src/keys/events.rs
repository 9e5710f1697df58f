//! Replicas follow each other's key-set changes: the loop that reloads the [`KeyManager`]
//! whenever the database key store reports a commit ([`KeyChanges`]).

use sqlx::PgPool;

use super::KeyManager;
use super::pg_store::{KeyChange, KeyChanges};

/// Reloads `keys` as soon as any replica commits a key-set change (`LISTEN stamp_keys`), and
/// after every (re)connection of the listener, since notifications sent meanwhile are gone. Runs
/// until dropped; the polling upkeep remains the fallback.
pub async fn follow_changes(keys: &KeyManager, pool: &PgPool) {
    follow_changes_observed(keys, pool, |_| {}).await
}

/// What [`follow_changes_observed`] reports, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Followed {
    /// The listener connected (`true`) or lost its connection (`false`).
    Listening(bool),
    /// A change made elsewhere was loaded.
    Reloaded,
}

/// [`follow_changes`], telling `observe` about the listener's state and every reload.
pub async fn follow_changes_observed(
    keys: &KeyManager,
    pool: &PgPool,
    observe: impl Fn(Followed) + Send + Sync + Clone + 'static,
) {
    let on_state = observe.clone();
    let mut changes = KeyChanges::observed(pool, move |listening| {
        on_state(Followed::Listening(listening))
    });
    loop {
        let change = changes.next().await;
        let reloaded = keys.reload_if_changed().await;
        if matches!(reloaded, Ok(true)) {
            observe(Followed::Reloaded);
        }
        match reloaded {
            Ok(true) if change == KeyChange::Committed => {
                log::info!("key set reloaded after a change by another replica")
            }
            Ok(true) => log::info!("key set reloaded after (re)connecting the change listener"),
            Ok(false) => {}
            Err(e) => log::warn!("key change listener: reload failed: {e}"),
        }
    }
}
