//! What a key store keeps (a manifest of key states and times, one private key per entry) and the
//! trait every store (file today, SQL for scale-out) implements.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Alg;

/// Where a key is in its life (DESIGN.md, "Key lifecycle").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, signs nothing yet: caches learn it before its first token appears.
    Next,
    /// Signs new tokens.
    Active,
    /// Signs nothing, stays published until every token it signed has expired.
    Retired,
    /// Past its last token's expiry: unpublished, private key deleted.
    Removed,
    /// Compromised: unpublished at once.
    Revoked,
}

impl KeyState {
    /// Whether the JWKS lists keys in this state.
    pub fn is_published(self) -> bool {
        matches!(self, KeyState::Next | KeyState::Active | KeyState::Retired)
    }

    /// The lowercase name used in the manifest and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
            KeyState::Revoked => "revoked",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: honours width and alignment (`stamp keys list` columns).
        f.pad(self.as_str())
    }
}

/// One manifest entry: everything about a key except its private bytes. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    /// Computed when the key is retired: its retirement plus the longest access-token lifetime
    /// then in force plus leeway. After it, no token the key signed is live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// The whole key set's state: replaced as one unit, so a reader sees the old or the new set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this document.
    pub format: u32,
    /// Incremented by every committed change.
    pub generation: u64,
    pub keys: Vec<KeyMeta>,
    /// What made the latest generations, newest last (at most [`Manifest::MAX_CHANGES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeRecord>,
}

impl Manifest {
    pub const FORMAT: u32 = 1;
    /// How many change records a manifest keeps: enough for the audit log to catch up after
    /// writers died between their commit and their audit entry, and to recognise a retried
    /// rotation by its idempotency key.
    pub const MAX_CHANGES: usize = 32;

    /// Appends `change` (for the generation about to be committed), dropping the oldest
    /// records beyond [`Manifest::MAX_CHANGES`].
    pub fn record(&mut self, change: ChangeRecord) {
        self.changes.push(change);
        let excess = self.changes.len().saturating_sub(Manifest::MAX_CHANGES);
        self.changes.drain(..excess);
    }
}

impl ChangeRecord {
    /// The audit entry's detail: the change's own detail, the instance and the generation.
    pub fn audit_detail(&self) -> String {
        let own = self.detail.as_deref().unwrap_or_default();
        let sep = if own.is_empty() { "" } else { " " };
        format!(
            "{own}{sep}instance={} generation={}",
            self.instance, self.generation
        )
    }
}

/// What made one generation of the key set: who, what, where, when. Kept in the manifest and
/// so committed atomically with the change itself (written in the same file rename, or the same
/// database transaction); the audit log is written from these records (an outbox): a committed
/// change always gets its audit entry, also when the process that made it dies before writing
/// it (the next upkeep round of any process writes it), and never two (`id` is unique there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Random, unique: the audit log's key for this change.
    pub id: String,
    /// The generation this change produced.
    pub generation: u64,
    /// Unix seconds.
    pub at: i64,
    /// `cli`, `user:<id>`, `client:<id>`, `schedule` (rotations and removals of the upkeep
    /// job), `system` (keys published at start-up or for a new client algorithm).
    pub actor: String,
    /// `keys.rotate`, `keys.revoke`, `keys.publish`, `keys.remove`.
    pub action: String,
    /// The kid (or kids, space-separated) the change is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The process that made it (setting `instance_name`, by default the host name).
    pub instance: String,
    /// The caller's `Idempotency-Key`, for a rotation requested over the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A key read back from a store: its manifest entry and its PKCS#8 PEM.
pub struct StoredKey {
    pub meta: KeyMeta,
    pub pem: Zeroizing<String>,
    /// Where it came from (a file path, a table row), for error messages.
    pub origin: String,
}

/// A key store failure, naming the file or record at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// Reading or writing the named file failed.
    #[error("{origin}: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    /// The manifest could not be serialised for the named file or row.
    #[error("{origin}: cannot encode the manifest")]
    Encode {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    /// A blocking key-store task (file I/O runs off the async runtime) panicked or was cancelled.
    #[error("key store worker on {origin} failed")]
    Worker {
        origin: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A statement on the named table or row of the database key store failed.
    #[error("{origin}: {source}")]
    Database {
        origin: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database key store's tables could not be brought up to date.
    #[error("key store migration failed: {source}")]
    Migrate {
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A private key could not be encrypted under the key-encryption key.
    #[error("cannot encrypt key {kid}: {source}")]
    Encrypt {
        kid: String,
        #[source]
        source: aws_lc_rs::error::Unspecified,
    },
    /// The named file or record does not hold what the store wrote.
    #[error("{origin} is corrupt: {reason}")]
    Corrupt { origin: String, reason: String },
    /// `keys_dir` cannot be used.
    #[error("invalid setting `keys_dir`: {path} is not a writable directory: {reason}")]
    Unwritable { path: String, reason: String },
    /// Someone else (another process, a replica) changed the key set since it was read.
    #[error("the key set changed concurrently (stored generation {stored}, expected {expected})")]
    Stale { stored: u64, expected: u64 },
    /// The store holds private keys but no manifest names them (e.g. `manifest.json` was
    /// deleted). Starting anyway would make a new key set and orphan these keys, and every token
    /// they signed would stop verifying, so the store refuses until an operator decides.
    #[error(
        "{manifest} is missing, but the key store still holds {}; refusing to start a new key \
         set over them. Restore {manifest} from a backup, or, to give these keys up (tokens they \
         signed stop verifying), move them out of the key store",
        name_list(.keys)
    )]
    Orphaned {
        /// Where the manifest should be.
        manifest: String,
        /// The keys left without it (file paths, table rows).
        keys: Vec<String>,
    },
}

/// `a, b, c and 4 more`: enough names to find the files, not a page of them.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut list = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        list.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    list
}

/// Persistent storage for the key set. Implementations make [`KeyStore::commit`] atomic: after a
/// crash the store holds either the previous manifest or the new one, and every key the manifest
/// names is readable.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The manifest and the private keys of every published key; `None` for an empty store.
    async fn load(&self) -> Result<Option<(Manifest, Vec<StoredKey>)>, KeyStoreError>;

    /// The generation of the stored manifest (0 for an empty store): a cheap change check.
    async fn generation(&self) -> Result<u64, KeyStoreError>;

    /// Stores the PEMs of `new_keys` (kid, PEM) durably, then replaces the manifest, provided the
    /// stored generation is still `manifest.generation - 1` (else [`KeyStoreError::Stale`]): an
    /// optimistic lock that also holds across processes. Private keys of keys the manifest marks
    /// removed or revoked are deleted afterwards.
    async fn commit(
        &self,
        manifest: &Manifest,
        new_keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError>;

    /// Removes what interrupted commits left behind: temporary files, and private keys that were
    /// written before a manifest that never came to name them (or to delete them). Never touches
    /// a key the stored manifest publishes. Returns what it removed, for the log. Stores whose
    /// commits are transactions have nothing to remove.
    async fn remove_leftovers(&self) -> Result<Vec<String>, KeyStoreError> {
        Ok(Vec::new())
    }

    /// A short description for logs (`file store at keys/`).
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::KeyState;

    #[test]
    fn key_state_honours_column_width() {
        assert_eq!(format!("{:<7}|", KeyState::Next), "next   |");
        assert_eq!(format!("{:<7}|", KeyState::Active), "active |");
    }
}
