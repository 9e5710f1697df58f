//! The scale-out key store: PostgreSQL, shared by every replica. Private keys are encrypted at
//! rest with AES-256-GCM under a key-encryption key (KEK) the operator provides, with the `kid`
//! as associated data, so a ciphertext moved to another row does not decrypt. A commit is one
//! transaction that locks the manifest row, checks its generation, writes the new keys and the
//! manifest, and sends `NOTIFY stamp_keys` for replicas that listen ([`KeyChanges`] receives
//! them; reloading the [`super::KeyManager`] on a change is the keys layer's `follow_changes`).
//!
//! This module owns the key tables' migrations (`migrations/postgres/keys`); they share sqlx's
//! migration history with the store's (see `store/postgres.rs`), so each migrator ignores the
//! other's versions.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::error::Unspecified;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::store::{KeyStore, KeyStoreError, Manifest, StoredKey};

/// The key-encryption keys: one or more keys of 32 bytes, never logged. The first encrypts;
/// every one decrypts (as Ory Hydra's `secrets.system`), so a new KEK can be put first while
/// keys written under the old one are still read, until `stamp keys rewrap` has re-encrypted
/// them. Parsed once (at configuration); clones share the keys.
#[derive(Clone)]
pub struct Kek(Arc<Vec<LessSafeKey>>);

/// Why a key-encryption key cannot be used. The messages never show the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The text is not standard base64.
    #[error("the key-encryption key is not base64")]
    NotBase64(#[source] base64::DecodeError),
    /// The decoded key is not 32 bytes long.
    #[error("the key-encryption key has {len} bytes, not 32")]
    WrongLength {
        /// Its length in bytes.
        len: usize,
    },
    /// AES-256-GCM refused the key.
    #[error("the key-encryption key was refused by AES-256-GCM")]
    Refused(#[source] aws_lc_rs::error::Unspecified),
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() == 1 {
            return f.write_str("Kek(<hidden>)");
        }
        write!(f, "Kek(<{} keys hidden>)", self.0.len())
    }
}

impl Kek {
    /// From standard base64 of exactly 32 random bytes (`openssl rand -base64 32`), or a list
    /// of them separated by commas or white space, the encrypting key first.
    pub fn from_base64(text: &str) -> Result<Kek, KekError> {
        let mut keys = Vec::new();
        for item in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
        {
            keys.push(Kek::one(item)?);
        }
        if keys.is_empty() {
            return Err(KekError::WrongLength { len: 0 });
        }
        Ok(Kek(Arc::new(keys)))
    }

    fn one(text: &str) -> Result<LessSafeKey, KekError> {
        let bytes = Zeroizing::new(STANDARD.decode(text).map_err(KekError::NotBase64)?);
        if bytes.len() != 32 {
            return Err(KekError::WrongLength { len: bytes.len() });
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(KekError::Refused)?;
        Ok(LessSafeKey::new(key))
    }

    /// How many keys the list holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a list has at least one key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encrypts under the first key.
    fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), Unspecified> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)?;
        let mut data = plaintext.to_vec();
        self.0[0].seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut data,
        )?;
        Ok((nonce, data))
    }

    /// Decrypts with whichever key of the list encrypted it; returns the PEM and the position of
    /// that key (0: the encrypting key).
    fn open(
        &self,
        kid: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<(Zeroizing<String>, usize), String> {
        for (position, key) in self.0.iter().enumerate() {
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
            let mut data = Zeroizing::new(ciphertext.to_vec());
            let Ok(plain) = key.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data) else {
                continue;
            };
            return String::from_utf8(plain.to_vec())
                .map(|pem| (Zeroizing::new(pem), position))
                .map_err(|_| "decrypted key is not UTF-8 PEM".to_string());
        }
        Err(format!(
            "none of the {} key-encryption key(s) configured decrypts it: the KEK it was written \
             under is missing from the setting `key_encryption_key` (or \
             `key_encryption_key_file`), or the row was tampered with",
            self.0.len()
        ))
    }
}

/// What `stamp keys rewrap` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrapped {
    /// Keys re-encrypted under the first KEK now.
    pub rewrapped: Vec<String>,
    /// Keys that were already encrypted under it.
    pub current: usize,
}

/// [`KeyStore`] on PostgreSQL.
pub struct PgKeyStore {
    pool: PgPool,
    kek: Kek,
    /// Set once the key tables' migrations have run on `pool`.
    migrated: OnceCell<()>,
}

/// The row or table `origin` does not hold what the store wrote.
fn corrupt(origin: &str, reason: &str) -> KeyStoreError {
    KeyStoreError::Corrupt {
        origin: origin.to_string(),
        reason: reason.to_string(),
    }
}

/// A failed statement on the row or table `origin`.
fn db(origin: &str, source: sqlx::Error) -> KeyStoreError {
    KeyStoreError::Database {
        origin: origin.to_string(),
        source,
    }
}

impl PgKeyStore {
    /// A store on `pool`. Its tables are created or migrated on first use (or by
    /// [`PgKeyStore::migrate`]).
    pub fn new(pool: PgPool, kek: Kek) -> PgKeyStore {
        PgKeyStore {
            pool,
            kek,
            migrated: OnceCell::new(),
        }
    }

    /// Brings the key tables on `pool` up to date (concurrent replicas are serialised by sqlx's
    /// advisory lock); the store's versions in the same history are left to it.
    pub async fn migrate(pool: &PgPool) -> Result<(), KeyStoreError> {
        let mut migrator = sqlx::migrate!("./migrations/postgres/keys");
        migrator.set_ignore_missing(true);
        migrator
            .run(pool)
            .await
            .map_err(|source| KeyStoreError::Migrate { source })
    }

    /// Re-encrypts every stored private key under the first KEK of the list (`stamp keys
    /// rewrap`). One transaction, under the manifest row's lock (key-set commits wait for it):
    /// either every key is rewrapped or none is, and running it again (after an interruption, or
    /// to check) only touches keys not yet under the first KEK. Replicas keep working
    /// throughout, provided each has both the old and the new KEK in its list.
    pub async fn rewrap(&self) -> Result<Rewrapped, KeyStoreError> {
        self.ready().await?;
        let mut tx = self.pool.begin().await.map_err(|e| db("key_manifest", e))?;
        sqlx::query("SELECT generation FROM key_manifest FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("key_manifest", e))?;
        let rows = sqlx::query("SELECT kid, nonce, ciphertext FROM signing_keys ORDER BY kid")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db("signing_keys", e))?;
        let mut done = Rewrapped::default();
        for row in rows {
            let kid: String = row.try_get("kid").map_err(|e| db("signing_keys", e))?;
            let origin = format!("signing_keys row {kid}");
            let nonce: Vec<u8> = row.try_get("nonce").map_err(|e| db(&origin, e))?;
            let ciphertext: Vec<u8> = row.try_get("ciphertext").map_err(|e| db(&origin, e))?;
            let (pem, position) = self
                .kek
                .open(&kid, &nonce, &ciphertext)
                .map_err(|reason| corrupt(&origin, &reason))?;
            if position == 0 {
                done.current += 1;
                continue;
            }
            let (nonce, ciphertext) =
                self.kek
                    .seal(&kid, pem.as_bytes())
                    .map_err(|source| KeyStoreError::Encrypt {
                        kid: kid.clone(),
                        source,
                    })?;
            sqlx::query("UPDATE signing_keys SET nonce = $2, ciphertext = $3 WHERE kid = $1")
                .bind(&kid)
                .bind(&nonce[..])
                .bind(&ciphertext)
                .execute(&mut *tx)
                .await
                .map_err(|e| db(&origin, e))?;
            done.rewrapped.push(kid);
        }
        tx.commit().await.map_err(|e| db("signing_keys", e))?;
        Ok(done)
    }

    /// Writes a whole key set into an empty key store inside the caller's transaction `tx`
    /// (`stamp migrate`): the manifest as generation 1 and every published key's PEM, encrypted
    /// under the first KEK. Refused if the store holds a manifest or a key.
    pub async fn import(
        &self,
        tx: &mut sqlx::PgConnection,
        manifest: &Manifest,
        keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError> {
        self.ready().await?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM key_manifest) + (SELECT count(*) FROM signing_keys)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db("key_manifest", e))?;
        if existing != 0 {
            return Err(KeyStoreError::Stale {
                stored: 1,
                expected: 0,
            });
        }
        let manifest = Manifest {
            generation: 1,
            ..manifest.clone()
        };
        self.insert_keys(&mut *tx, &manifest, keys).await?;
        let json = serde_json::to_value(&manifest).map_err(|source| KeyStoreError::Encode {
            origin: "key_manifest".into(),
            source,
        })?;
        sqlx::query(
            "INSERT INTO key_manifest (singleton, generation, manifest) VALUES (TRUE, 1, $1)",
        )
        .bind(json)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("key_manifest", e))?;
        Ok(())
    }

    /// Stores the PEMs of `keys` (kid, PEM), each encrypted under the first KEK with its kid
    /// as associated data, on `tx`; every kid must be in `manifest`.
    async fn insert_keys(
        &self,
        tx: &mut sqlx::PgConnection,
        manifest: &Manifest,
        keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError> {
        for (kid, pem) in keys {
            let meta = manifest
                .keys
                .iter()
                .find(|m| &m.kid == kid)
                .ok_or_else(|| corrupt(kid, "not in the manifest"))?;
            let (nonce, ciphertext) =
                self.kek
                    .seal(kid, pem.as_bytes())
                    .map_err(|source| KeyStoreError::Encrypt {
                        kid: kid.clone(),
                        source,
                    })?;
            sqlx::query("INSERT INTO signing_keys (kid, alg, nonce, ciphertext, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(kid)
                .bind(meta.alg.as_str())
                .bind(&nonce[..])
                .bind(&ciphertext)
                .bind(meta.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| db(kid, e))?;
        }
        Ok(())
    }

    /// Runs [`PgKeyStore::migrate`] once per store, before the first statement.
    async fn ready(&self) -> Result<(), KeyStoreError> {
        self.migrated
            .get_or_try_init(|| PgKeyStore::migrate(&self.pool))
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl KeyStore for PgKeyStore {
    async fn load(&self) -> Result<Option<(Manifest, Vec<StoredKey>)>, KeyStoreError> {
        self.ready().await?;
        let mut tx = self.pool.begin().await.map_err(|e| db("key_manifest", e))?;
        // One snapshot for the manifest and its keys.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .map_err(|e| db("key_manifest", e))?;
        let row = sqlx::query("SELECT manifest FROM key_manifest")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("key_manifest", e))?;
        let Some(row) = row else {
            // Keys without a manifest: the manifest row was deleted, not a crash (a commit is one
            // transaction). Refuse rather than start a new key set over them.
            let orphans: Vec<String> =
                sqlx::query_scalar("SELECT kid FROM signing_keys ORDER BY kid")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| db("signing_keys", e))?;
            if !orphans.is_empty() {
                return Err(KeyStoreError::Orphaned {
                    manifest: "the key_manifest row".into(),
                    keys: orphans
                        .into_iter()
                        .map(|kid| format!("signing_keys row {kid}"))
                        .collect(),
                });
            }
            return Ok(None);
        };
        let json: serde_json::Value = row.try_get("manifest").map_err(|e| db("key_manifest", e))?;
        let manifest: Manifest =
            serde_json::from_value(json).map_err(|e| KeyStoreError::Corrupt {
                origin: "key_manifest".into(),
                reason: e.to_string(),
            })?;
        let mut keys = Vec::new();
        for meta in manifest.keys.iter().filter(|m| m.state.is_published()) {
            let origin = format!("signing_keys row {}", meta.kid);
            let row = sqlx::query("SELECT nonce, ciphertext FROM signing_keys WHERE kid = $1")
                .bind(&meta.kid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db(&origin, e))?
                .ok_or_else(|| corrupt(&origin, "missing"))?;
            let nonce: Vec<u8> = row.try_get("nonce").map_err(|e| db(&origin, e))?;
            let ciphertext: Vec<u8> = row.try_get("ciphertext").map_err(|e| db(&origin, e))?;
            let (pem, _) = self
                .kek
                .open(&meta.kid, &nonce, &ciphertext)
                .map_err(|reason| KeyStoreError::Corrupt {
                    origin: origin.clone(),
                    reason,
                })?;
            keys.push(StoredKey {
                meta: meta.clone(),
                pem,
                origin,
            });
        }
        tx.commit().await.map_err(|e| db("key_manifest", e))?;
        Ok(Some((manifest, keys)))
    }

    async fn generation(&self) -> Result<u64, KeyStoreError> {
        self.ready().await?;
        let row = sqlx::query("SELECT generation FROM key_manifest")
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("key_manifest", e))?;
        match row {
            Some(row) => Ok(row
                .try_get::<i64, _>("generation")
                .map_err(|e| db("key_manifest", e))? as u64),
            None => Ok(0),
        }
    }

    async fn commit(
        &self,
        manifest: &Manifest,
        new_keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError> {
        self.ready().await?;
        let mut tx = self.pool.begin().await.map_err(|e| db("key_manifest", e))?;
        // The manifest row lock serialises writers across replicas; an empty store is serialised
        // by the primary key of the first insert.
        let stored = sqlx::query("SELECT generation FROM key_manifest FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("key_manifest", e))?
            .map(|row| row.try_get::<i64, _>("generation"))
            .transpose()
            .map_err(|e| db("key_manifest", e))?
            .unwrap_or(0) as u64;
        let expected = manifest.generation.saturating_sub(1);
        if stored != expected {
            return Err(KeyStoreError::Stale { stored, expected });
        }
        self.insert_keys(&mut tx, manifest, new_keys).await?;
        let json = serde_json::to_value(manifest).map_err(|source| KeyStoreError::Encode {
            origin: "key_manifest".into(),
            source,
        })?;
        let written = sqlx::query(
            "INSERT INTO key_manifest (singleton, generation, manifest) VALUES (TRUE, $1, $2)
             ON CONFLICT (singleton) DO UPDATE SET generation = EXCLUDED.generation, manifest = EXCLUDED.manifest
             WHERE key_manifest.generation = $3",
        )
        .bind(manifest.generation as i64)
        .bind(json)
        .bind(expected as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => KeyStoreError::Stale { stored: expected + 1, expected },
            _ => db("key_manifest", e),
        })?;
        if written.rows_affected() != 1 {
            return Err(KeyStoreError::Stale {
                stored: expected + 1,
                expected,
            });
        }
        // The private bytes of keys that can no longer sign or verify anything have no use left.
        let gone: Vec<String> = manifest
            .keys
            .iter()
            .filter(|m| !m.state.is_published())
            .map(|m| m.kid.clone())
            .collect();
        if !gone.is_empty() {
            sqlx::query("DELETE FROM signing_keys WHERE kid = ANY($1)")
                .bind(&gone)
                .execute(&mut *tx)
                .await
                .map_err(|e| db("signing_keys", e))?;
        }
        // The change's audit entry, in the change's own transaction. The audit log is the
        // store's table in the same database (its migrations run before any key store opens);
        // the manifest's change records cover any process that commits without it, and the id
        // keeps the entry single (the store's `record_key_changes` runs the same insert).
        if let Some(change) = manifest
            .changes
            .last()
            .filter(|c| c.generation == manifest.generation)
        {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, target, detail, key_change_id)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_change_id) DO NOTHING",
            )
            .bind(change.at)
            .bind(&change.actor)
            .bind(&change.action)
            .bind(change.target.as_deref())
            .bind(change.audit_detail())
            .bind(&change.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("audit_log", e))?;
        }
        sqlx::query("SELECT pg_notify('stamp_keys', $1)")
            .bind(manifest.generation.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("key_manifest", e))?;
        tx.commit().await.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => KeyStoreError::Stale {
                stored: expected + 1,
                expected,
            },
            _ => db("key_manifest", e),
        })
    }

    fn describe(&self) -> String {
        "PostgreSQL key store (AES-256-GCM at rest)".into()
    }
}

/// The channel a commit notifies, with the new generation as payload.
const CHANNEL: &str = "stamp_keys";

/// How long to wait before listening again after a failure.
const PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// What [`KeyChanges::next`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// A replica committed a key-set change.
    Committed,
    /// The listener (re)connected: changes committed meanwhile were not notified, so the caller
    /// must check the store itself.
    Resync,
}

/// The key store's change notifications (`LISTEN stamp_keys`) from every replica's commits. A
/// lost connection is re-established (after a pause, with a warning), and reported as
/// [`KeyChange::Resync`] because notifications sent meanwhile are gone.
pub struct KeyChanges {
    pool: PgPool,
    listener: Option<PgListener>,
    /// Told `true` when listening (again), `false` when the connection is lost.
    on_state: Box<dyn Fn(bool) + Send + Sync>,
}

impl KeyChanges {
    /// Changes committed to the key store on `pool`; listening starts with the first
    /// [`KeyChanges::next`], which reports [`KeyChange::Resync`].
    pub fn new(pool: &PgPool) -> KeyChanges {
        KeyChanges::observed(pool, |_| {})
    }

    /// [`KeyChanges::new`], telling `on_state` whenever the listener connects (`true`) or
    /// loses its connection (`false`), for the metrics.
    pub fn observed(pool: &PgPool, on_state: impl Fn(bool) + Send + Sync + 'static) -> KeyChanges {
        KeyChanges {
            pool: pool.clone(),
            listener: None,
            on_state: Box::new(on_state),
        }
    }

    /// Waits for the next change (or reconnection). Never fails: the polling upkeep remains the
    /// fallback while the database cannot be reached.
    pub async fn next(&mut self) -> KeyChange {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                match listen(&self.pool).await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        (self.on_state)(true);
                        return KeyChange::Resync;
                    }
                    Err(e) => {
                        (self.on_state)(false);
                        log::warn!("key change listener: cannot listen: {e}");
                        tokio::time::sleep(PAUSE).await;
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(_)) => return KeyChange::Committed,
                // The connection was lost; the next try_recv reconnects and listens again.
                Ok(None) => {
                    (self.on_state)(false);
                    tokio::time::sleep(PAUSE).await;
                    return KeyChange::Resync;
                }
                Err(e) => {
                    (self.on_state)(false);
                    log::warn!("key change listener: {e}");
                    tokio::time::sleep(PAUSE).await;
                    self.listener = None;
                }
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn sealed_keys_open_only_under_their_kid() {
        let (nonce, ciphertext) = kek()
            .seal(
                "kid-a",
                concat!("-----BEGIN ", "PRIVATE KEY-----").as_bytes(),
            )
            .unwrap();
        assert!(!ciphertext.windows(5).any(|w| w == b"BEGIN"), "encrypted");
        assert_eq!(
            kek().open("kid-a", &nonce, &ciphertext).unwrap().0.as_str(),
            concat!("-----BEGIN ", "PRIVATE KEY-----")
        );
        assert!(
            kek().open("kid-b", &nonce, &ciphertext).is_err(),
            "kid is bound as AAD"
        );
        let other = Kek::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open("kid-a", &nonce, &ciphertext).is_err());
    }

    #[test]
    fn the_first_kek_encrypts_and_every_kek_decrypts() {
        let old = STANDARD.encode([7u8; 32]);
        let new = STANDARD.encode([9u8; 32]);
        let (nonce, ciphertext) = kek().seal("kid-a", b"pem").unwrap();
        let ring = Kek::from_base64(&format!("{new}, {old}")).unwrap();
        assert_eq!(ring.len(), 2);
        let (pem, position) = ring.open("kid-a", &nonce, &ciphertext).unwrap();
        assert_eq!(
            (pem.as_str(), position),
            ("pem", 1),
            "the old KEK still decrypts"
        );
        let (nonce, ciphertext) = ring.seal("kid-a", b"pem").unwrap();
        assert_eq!(ring.open("kid-a", &nonce, &ciphertext).unwrap().1, 0);
        let new_only = Kek::from_base64(&new).unwrap();
        assert!(
            new_only.open("kid-a", &nonce, &ciphertext).is_ok(),
            "sealed under the first"
        );
        let err = kek().open("kid-a", &nonce, &ciphertext).unwrap_err();
        assert!(err.contains("key_encryption_key"), "{err}");
        assert_eq!(format!("{ring:?}"), "Kek(<2 keys hidden>)");
        assert!(Kek::from_base64(&format!("{new},not-base64")).is_err());
        assert!(Kek::from_base64(" , ").is_err());
    }

    #[test]
    fn kek_must_be_32_bytes_of_base64() {
        assert!(Kek::from_base64("not base64!").is_err());
        assert!(Kek::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert_eq!(format!("{:?}", kek()), "Kek(<hidden>)");
    }
}
