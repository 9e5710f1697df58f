//! The key manager: owns the current [`KeySet`] snapshot, bootstraps an empty store, and applies
//! key-set changes through the store, one at a time.

use std::sync::Arc;

use arc_swap::ArcSwap;
use zeroize::Zeroizing;

use super::{
    Alg, KeyMeta, KeySet, KeyState, KeyStore, KeyStoreError, Manifest, PrivateKey, thumbprint,
};

/// A key-set failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    #[error("{origin} is corrupt: {reason}")]
    Corrupt { origin: String, reason: String },
    #[error("{origin} failed its sign-then-verify self-test: {reason}")]
    SelfTest { origin: String, reason: String },
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("no key with kid {0}")]
    UnknownKid(String),
    #[error("no {0} key is active")]
    NoActiveKey(Alg),
}

/// Shared owner of the key set.
pub struct KeyManager {
    current: ArcSwap<KeySet>,
    store: Arc<dyn KeyStore>,
    /// Serialises key-set changes: read-modify-commit must not interleave.
    write: tokio::sync::Mutex<()>,
    rsa_bits: usize,
}

impl KeyManager {
    /// Loads the stored key set, or creates one, so that `signing_alg` has an active key and a
    /// pre-published next key. A key that cannot be read stops here: it is never replaced.
    pub async fn open(
        store: Arc<dyn KeyStore>,
        signing_alg: Alg,
        rsa_bits: usize,
        now: i64,
    ) -> Result<KeyManager, KeyError> {
        let (manifest, stored) = store.load().await?.unwrap_or_else(|| {
            (
                Manifest {
                    format: Manifest::FORMAT,
                    generation: 0,
                    keys: Vec::new(),
                },
                Vec::new(),
            )
        });
        let mut parsed = Vec::with_capacity(stored.len());
        for key in stored {
            let private = PrivateKey::from_pkcs8_pem(key.meta.alg, &key.pem).map_err(|e| {
                KeyError::Corrupt {
                    origin: key.origin.clone(),
                    reason: e.to_string(),
                }
            })?;
            parsed.push((key.meta, Arc::new(private), key.origin));
        }
        let set = tokio::task::spawn_blocking(move || KeySet::build(manifest, parsed))
            .await
            .map_err(|e| KeyError::Generate(e.to_string()))??;
        let manager = KeyManager {
            current: ArcSwap::from_pointee(set),
            store,
            write: tokio::sync::Mutex::new(()),
            rsa_bits,
        };
        manager.ensure_keys(signing_alg, now).await?;
        Ok(manager)
    }

    /// The current snapshot. Lock-free; cheap enough for every request.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// A guard on the current snapshot without touching the reference count (hot paths).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Where the keys are kept.
    pub fn describe_store(&self) -> String {
        self.store.describe()
    }

    /// Makes sure `alg` has an active and a next key, generating what is missing.
    pub async fn ensure_keys(&self, alg: Alg, now: i64) -> Result<Arc<KeySet>, KeyError> {
        let _guard = self.write.lock().await;
        let set = self.current();
        let has = |state| {
            set.manifest()
                .keys
                .iter()
                .any(|k| k.alg == alg && k.state == state)
        };
        let mut wanted = Vec::new();
        if !has(KeyState::Active) {
            wanted.push(KeyState::Active);
        }
        if !has(KeyState::Next) {
            wanted.push(KeyState::Next);
        }
        if wanted.is_empty() {
            return Ok(set);
        }
        let mut manifest = set.manifest().clone();
        let mut fresh = Vec::new();
        for state in wanted {
            let (meta, key) = self.generate(alg, now).await?;
            let meta = KeyMeta {
                state,
                activated_at: (state == KeyState::Active).then_some(now),
                ..meta
            };
            manifest.keys.push(meta.clone());
            fresh.push((meta, Arc::new(key)));
        }
        self.commit(manifest, fresh).await
    }

    /// Routine rotation for `alg`: next → active, active → retired, a fresh next.
    pub async fn rotate(&self, alg: Alg, now: i64) -> Result<Arc<KeySet>, KeyError> {
        let _guard = self.write.lock().await;
        let set = self.current();
        let mut manifest = set.manifest().clone();
        let (meta, key) = self.generate(alg, now).await?;
        let mut promoted = false;
        for entry in manifest.keys.iter_mut().filter(|k| k.alg == alg) {
            match entry.state {
                KeyState::Active => {
                    entry.state = KeyState::Retired;
                    entry.retired_at = Some(now);
                }
                KeyState::Next if !promoted => {
                    entry.state = KeyState::Active;
                    entry.activated_at = Some(now);
                    promoted = true;
                }
                _ => {}
            }
        }
        let mut meta = KeyMeta {
            state: KeyState::Next,
            ..meta
        };
        if !promoted {
            // No pre-published key to promote (should not happen): the fresh key must sign.
            meta.state = KeyState::Active;
            meta.activated_at = Some(now);
        }
        manifest.keys.push(meta.clone());
        self.commit(manifest, vec![(meta, Arc::new(key))]).await
    }

    /// Generates a key off the async runtime and describes it.
    async fn generate(&self, alg: Alg, now: i64) -> Result<(KeyMeta, PrivateKey), KeyError> {
        let bits = self.rsa_bits;
        let key = tokio::task::spawn_blocking(move || PrivateKey::generate(alg, bits))
            .await
            .map_err(|e| KeyError::Generate(e.to_string()))?
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let meta = KeyMeta {
            kid: thumbprint(&key.public_jwk()),
            alg,
            state: KeyState::Next,
            created_at: now,
            activated_at: None,
            retired_at: None,
            removed_at: None,
            revoked_at: None,
        };
        Ok((meta, key))
    }

    /// Stores `manifest` with the new keys, then publishes the new snapshot. Caller holds `write`.
    async fn commit(
        &self,
        mut manifest: Manifest,
        fresh: Vec<(KeyMeta, Arc<PrivateKey>)>,
    ) -> Result<Arc<KeySet>, KeyError> {
        manifest.generation += 1;
        let mut pems: Vec<(String, Zeroizing<String>)> = Vec::with_capacity(fresh.len());
        for (meta, key) in &fresh {
            let pem = key
                .to_pkcs8_pem()
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            pems.push((meta.kid.clone(), pem));
        }
        // Build the snapshot before committing: a key set that fails its self-test is never stored.
        let old = self.current();
        let mut keys = Vec::new();
        for meta in manifest.keys.iter().filter(|m| m.state.is_published()) {
            let private = match fresh.iter().find(|(m, _)| m.kid == meta.kid) {
                Some((_, key)) => key.clone(),
                None => old
                    .find(&meta.kid)
                    .map(|k| k.private.clone())
                    .ok_or_else(|| KeyError::UnknownKid(meta.kid.clone()))?,
            };
            keys.push((meta.clone(), private, meta.kid.clone()));
        }
        let snapshot_manifest = manifest.clone();
        let set = tokio::task::spawn_blocking(move || KeySet::build(snapshot_manifest, keys))
            .await
            .map_err(|e| KeyError::Generate(e.to_string()))??;
        self.store.commit(&manifest, &pems).await?;
        let set = Arc::new(set);
        self.current.store(set.clone());
        Ok(set)
    }
}
