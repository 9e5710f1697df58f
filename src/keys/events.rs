//! Replicas follow each other's key-set changes: the loop that reloads the [`KeyManager`]
//! whenever the database key store reports a commit ([`KeyChanges`]).

use sqlx::PgPool;

use super::KeyManager;
use super::pg_store::{KeyChange, KeyChanges};

/// Reloads `keys` as soon as any replica commits a key-set change (`LISTEN stamp_keys`), and
/// after every (re)connection of the listener, since notifications sent meanwhile are gone. Runs
/// until dropped; the polling upkeep remains the fallback.
pub async fn follow_changes(keys: &KeyManager, pool: &PgPool) {
    let mut changes = KeyChanges::new(pool);
    loop {
        let change = changes.next().await;
        match keys.reload_if_changed().await {
            Ok(true) if change == KeyChange::Committed => {
                log::info!("key set reloaded after a change by another replica")
            }
            Ok(true) => log::info!("key set reloaded after (re)connecting the change listener"),
            Ok(false) => {}
            Err(e) => log::warn!("key change listener: reload failed: {e}"),
        }
    }
}
