//! The key manager: owns the current [`KeySet`] snapshot, bootstraps an empty store, and applies
//! the lifecycle (DESIGN.md, "Key lifecycle"): `next` → `active` → `retired` → `removed`, and
//! `revoked`. Every change is read-modify-commit against the store under one lock, and the store
//! refuses a commit on a stale generation, so concurrent writers (another process, a replica)
//! cannot lose each other's changes.

use std::sync::Arc;

use arc_swap::ArcSwap;
use zeroize::Zeroizing;

use super::{
    Alg, ChangeRecord, KeyMeta, KeySet, KeyState, KeyStore, KeyStoreError, Manifest, MaterialError,
    PrivateKey, thumbprint,
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
    /// The cryptographic library could not make a key.
    #[error("generating an {alg} key failed")]
    Generate {
        alg: Alg,
        #[source]
        source: MaterialError,
    },
    /// A freshly made key could not be written as PKCS#8 PEM.
    #[error("encoding key {kid} as PKCS#8 failed")]
    Encode {
        kid: String,
        #[source]
        source: MaterialError,
    },
    /// A blocking task (key generation, key-set parsing) panicked or was cancelled.
    #[error("a key worker task failed")]
    Worker(#[source] tokio::task::JoinError),
    #[error("no key with kid {0}")]
    UnknownKid(String),
    #[error("no {0} key is active")]
    NoActiveKey(Alg),
    /// `alg` was enabled on an existing key set: its first key is published but may not sign
    /// before `active_from` (unix time), when caches have had max-age plus leeway to learn it.
    #[error(
        "the first {alg} key is published but signs only from {active_from} (unix time) on, \
         {retry_after} s from now, once JWKS caches have learned it"
    )]
    NotYetActive {
        alg: Alg,
        active_from: i64,
        retry_after: u64,
    },
    /// The `next` key has not been published long enough for caches to have it.
    #[error(
        "the next {alg} key has been published for less than the JWKS max-age plus leeway; \
         rotation is allowed from {allowed_at} (unix time), or pass force"
    )]
    TooEarly { alg: Alg, allowed_at: i64 },
    #[error("key {kid} is already {state}")]
    NotPublished { kid: String, state: KeyState },
}

/// Timing rules of the lifecycle, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Lifecycle {
    /// RSA modulus size for generated keys.
    pub rsa_bits: usize,
    /// The JWKS `max-age`: a `next` key must be published at least this long (plus leeway)
    /// before it signs.
    pub jwks_max_age: i64,
    /// The longest access-token lifetime: a retired key stays published this long (plus leeway).
    pub max_token_ttl: i64,
    /// Clock skew and propagation margin added to both waits.
    pub leeway: i64,
    /// Scheduled rotation period in seconds; 0 turns the schedule off.
    pub rotate_every: i64,
}

/// What a rotation asks for.
#[derive(Clone, Copy, Debug)]
pub struct RotateOptions {
    pub alg: Alg,
    /// Promote the published `next` key even if it is younger than max-age plus leeway.
    pub force: bool,
}

/// Who asks for a key-set change: the actor its [`ChangeRecord`] (and so its audit entry)
/// names, and the caller's idempotency key, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedBy {
    /// `cli`, `user:<id>`, `client:<id>`, `schedule` or `system`.
    pub actor: String,
    /// A retried request's key: a rotation by the same actor with a key already recorded in the
    /// manifest is answered with the current set instead of rotating again.
    pub idempotency_key: Option<String>,
}

impl ChangedBy {
    /// A change asked for by `actor`, without an idempotency key.
    pub fn actor(actor: impl std::fmt::Display) -> ChangedBy {
        ChangedBy {
            actor: actor.to_string(),
            idempotency_key: None,
        }
    }

    /// The issuer's own doing: keys published at start-up or for a new client's algorithm.
    pub fn system() -> ChangedBy {
        ChangedBy::actor("system")
    }

    /// The upkeep job: scheduled rotations and removals of expired keys.
    pub fn schedule() -> ChangedBy {
        ChangedBy::actor("schedule")
    }
}

/// A change about to be committed, before the commit gives it its generation.
struct Pending {
    at: i64,
    by: ChangedBy,
    action: &'static str,
    target: Vec<String>,
    detail: Option<String>,
}

/// Shared owner of the key set.
pub struct KeyManager {
    current: ArcSwap<KeySet>,
    store: Arc<dyn KeyStore>,
    /// Serialises key-set changes within this process.
    write: tokio::sync::Mutex<()>,
    lifecycle: Lifecycle,
    /// This process's name in the change records (setting `instance_name`).
    instance: String,
}

impl KeyManager {
    /// [`KeyManager::open_for`] the one algorithm `signing_alg`.
    pub async fn open(
        store: Arc<dyn KeyStore>,
        signing_alg: Alg,
        lifecycle: Lifecycle,
        now: i64,
    ) -> Result<KeyManager, KeyError> {
        KeyManager::open_for(store, &[signing_alg], lifecycle, now, "stamp").await
    }

    /// Opens the key set for the enabled algorithms `algs` (the configured one and those of
    /// registered clients): removes what interrupted commits left in the store, loads the set,
    /// and publishes the keys `algs` lack ([`KeyManager::publish_keys`]). A key that cannot be
    /// read stops here: it is never replaced; nor is a store that lost its manifest. `instance`
    /// names this process in the records of the changes it makes.
    pub async fn open_for(
        store: Arc<dyn KeyStore>,
        algs: &[Alg],
        lifecycle: Lifecycle,
        now: i64,
        instance: &str,
    ) -> Result<KeyManager, KeyError> {
        let removed = store.remove_leftovers().await?;
        if !removed.is_empty() {
            log::warn!(
                "removed {} leftover file(s) of interrupted key-set changes: {}",
                removed.len(),
                removed.join(", ")
            );
        }
        let set = load_set(store.as_ref()).await?;
        let manager = KeyManager {
            current: ArcSwap::from_pointee(set),
            store,
            write: tokio::sync::Mutex::new(()),
            lifecycle,
            instance: instance.to_string(),
        };
        manager.publish_keys(algs, now).await?;
        Ok(manager)
    }

    /// The stored key set as it is, for reading only (`stamp keys list`): nothing is published,
    /// cleaned up or otherwise written. An empty store is [`KeyError::NoActiveKey`] for `alg`.
    pub async fn open_existing(
        store: Arc<dyn KeyStore>,
        alg: Alg,
        lifecycle: Lifecycle,
        instance: &str,
    ) -> Result<KeyManager, KeyError> {
        let set = load_set(store.as_ref()).await?;
        if set.manifest().keys.is_empty() {
            return Err(KeyError::NoActiveKey(alg));
        }
        Ok(KeyManager {
            current: ArcSwap::from_pointee(set),
            store,
            write: tokio::sync::Mutex::new(()),
            lifecycle,
            instance: instance.to_string(),
        })
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

    /// The lifecycle timings in force.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Re-reads the store if another writer changed it; returns whether the snapshot changed.
    pub async fn reload_if_changed(&self) -> Result<bool, KeyError> {
        let stored = self.store.generation().await?;
        if stored == self.current().manifest().generation {
            return Ok(false);
        }
        let _guard = self.write.lock().await;
        self.reload_locked().await
    }

    async fn reload_locked(&self) -> Result<bool, KeyError> {
        let stored = self.store.generation().await?;
        if stored == self.current().manifest().generation {
            return Ok(false);
        }
        let set = load_set(self.store.as_ref()).await?;
        self.current.store(Arc::new(set));
        Ok(true)
    }

    /// Makes sure every algorithm in `algs` has keys, without ever letting a key sign before it
    /// has been published (DESIGN.md, "Key lifecycle"). An empty key set (first start: no token
    /// and no cached JWKS exists yet) gets an active and a next key per algorithm at once. On an
    /// existing set, an algorithm only ever gets a missing `next` key here; a newly enabled
    /// algorithm's first key becomes active through rotation once it has been published for
    /// max-age plus leeway ([`KeyManager::tick`] does it on its own). Called at start and by
    /// `clients add`, never on a token request.
    pub async fn publish_keys(&self, algs: &[Alg], now: i64) -> Result<Arc<KeySet>, KeyError> {
        let _guard = self.write.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.reload_locked().await?;
            let set = self.current();
            let wanted = keys_to_publish(set.manifest(), algs);
            if wanted.is_empty() {
                return Ok(set);
            }
            let mut manifest = set.manifest().clone();
            let mut fresh = Vec::new();
            let mut published = Vec::new();
            for (alg, state) in wanted {
                let (meta, key) = self.generate(alg, now).await?;
                let meta = KeyMeta {
                    state,
                    activated_at: (state == KeyState::Active).then_some(now),
                    ..meta
                };
                manifest.keys.push(meta.clone());
                published.push(format!("{}={}", meta.kid, meta.state));
                fresh.push((meta, Arc::new(key)));
            }
            let change = Pending {
                at: now,
                by: ChangedBy::system(),
                action: "keys.publish",
                target: fresh.iter().map(|(m, _)| m.kid.clone()).collect(),
                detail: Some(published.join(" ")),
            };
            // Replicas that start together on an empty store all try to make the first key set;
            // the losers re-read the winner's and decide again (usually: nothing left to do).
            match self.commit(manifest, fresh, change).await {
                Err(e) if is_stale(&e) && attempt < STALE_RETRIES => {
                    log::info!(
                        "key set changed by another writer while publishing keys; re-reading"
                    );
                }
                result => return result,
            }
        }
    }

    /// When the first key of `alg` may sign, if `alg` has a published `next` key but no active
    /// key yet (an algorithm newly enabled on an existing key set); `None` otherwise.
    pub fn activation_pending(&self, alg: Alg) -> Option<i64> {
        let set = self.current();
        let keys = &set.manifest().keys;
        if keys
            .iter()
            .any(|k| k.alg == alg && k.state == KeyState::Active)
        {
            return None;
        }
        keys.iter()
            .find(|k| k.alg == alg && k.state == KeyState::Next)
            .map(|next| self.promotion_allowed_at(next))
    }

    /// Rotation for `alg`: the published `next` key becomes `active`, the old active key is
    /// `retired`, a fresh `next` key is published. Refused with [`KeyError::TooEarly`] while the
    /// next key is younger than max-age plus leeway, unless `force`. For an algorithm with no
    /// next key yet, only publishes one.
    pub async fn rotate(&self, options: RotateOptions, now: i64) -> Result<Arc<KeySet>, KeyError> {
        self.rotate_by(options, now, ChangedBy::system()).await
    }

    /// [`KeyManager::rotate`] asked for by `by`. A retried request (the same actor and
    /// idempotency key as a change still recorded in the manifest) is answered with the current
    /// set, unrotated.
    pub async fn rotate_by(
        &self,
        options: RotateOptions,
        now: i64,
        by: ChangedBy,
    ) -> Result<Arc<KeySet>, KeyError> {
        if self.already_done(&by) {
            return Ok(self.current());
        }
        self.rotate_from(options, None, now, by).await
    }

    /// [`KeyManager::rotate_by`]; `seen` is the active kid the caller decided on (the schedule
    /// decides on its snapshot, which another replica may have changed since), else the active
    /// kid first read under the lock.
    async fn rotate_from(
        &self,
        options: RotateOptions,
        seen: Option<Option<String>>,
        now: i64,
        by: ChangedBy,
    ) -> Result<Arc<KeySet>, KeyError> {
        // Generate before taking the lock: an RSA-4096 key takes seconds and must not hold up
        // other key-set changes (the JWKS never waits on this lock anyway).
        let (fresh_meta, fresh_key) = self.generate(options.alg, now).await?;
        let fresh_key = Arc::new(fresh_key);
        let _guard = self.write.lock().await;
        // The active key this rotation retires, as first read. Another writer's change to
        // something else (another algorithm's keys, a sweep) is re-read and the rotation
        // re-decided; another writer's rotation of this algorithm ends it (see below).
        let mut retiring = seen;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.reload_locked().await?;
            if self.already_done(&by) {
                return Ok(self.current());
            }
            let manifest = self.current().manifest().clone();
            let active = active_kid(&manifest, options.alg);
            match &retiring {
                None => retiring = Some(active),
                Some(first) if *first != active => {
                    // Another writer rotated this algorithm first: what was asked has happened.
                    // Rotating again would retire a key that has only just begun to sign (and,
                    // for a retried request, rotate twice), so the change is refused as stale:
                    // the schedule counts it as done, the API answers 409 `key_set_changed`.
                    return Err(KeyError::Store(KeyStoreError::Stale {
                        stored: manifest.generation,
                        expected: manifest.generation.saturating_sub(1),
                    }));
                }
                Some(_) => {}
            }
            let result = self
                .rotate_manifest(manifest, options, (&fresh_meta, &fresh_key), now, &by)
                .await;
            match result {
                Err(e) if is_stale(&e) && attempt < STALE_RETRIES => {
                    log::info!("key set changed by another writer during a rotation; re-reading");
                }
                result => return result,
            }
        }
    }

    /// One attempt of [`KeyManager::rotate`] on the freshly read `manifest`. Caller holds `write`.
    async fn rotate_manifest(
        &self,
        mut manifest: Manifest,
        options: RotateOptions,
        (fresh_meta, fresh_key): (&KeyMeta, &Arc<PrivateKey>),
        now: i64,
        by: &ChangedBy,
    ) -> Result<Arc<KeySet>, KeyError> {
        let alg = options.alg;
        let detail = format!("alg={alg} force={}", options.force);
        let Some(next) = manifest
            .keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Next)
        else {
            // Nothing published to promote (a new algorithm): publish a next key only. It signs
            // after the next rotation, once caches have had time to learn it.
            manifest.keys.push(fresh_meta.clone());
            sweep(&mut manifest, now);
            let change = Pending {
                at: now,
                by: by.clone(),
                action: "keys.rotate",
                target: vec![fresh_meta.kid.clone()],
                detail: Some(format!("{detail} published_next_only=true")),
            };
            return self
                .commit(
                    manifest,
                    vec![(fresh_meta.clone(), fresh_key.clone())],
                    change,
                )
                .await;
        };
        let allowed_at = self.promotion_allowed_at(next);
        if !options.force && now < allowed_at {
            return Err(KeyError::TooEarly { alg, allowed_at });
        }
        let remove_after = now + self.lifecycle.max_token_ttl + self.lifecycle.leeway;
        let mut promoted = None;
        for entry in manifest.keys.iter_mut().filter(|k| k.alg == alg) {
            match entry.state {
                KeyState::Active => {
                    entry.state = KeyState::Retired;
                    entry.retired_at = Some(now);
                    entry.remove_after = Some(remove_after);
                }
                KeyState::Next if promoted.is_none() => {
                    entry.state = KeyState::Active;
                    entry.activated_at = Some(now);
                    promoted = Some(entry.kid.clone());
                }
                _ => {}
            }
        }
        manifest.keys.push(fresh_meta.clone());
        sweep(&mut manifest, now);
        let change = Pending {
            at: now,
            by: by.clone(),
            action: "keys.rotate",
            target: promoted.into_iter().collect(),
            detail: Some(format!("{detail} next={}", fresh_meta.kid)),
        };
        self.commit(
            manifest,
            vec![(fresh_meta.clone(), fresh_key.clone())],
            change,
        )
        .await
    }

    /// Whether `by`'s idempotency key names a change already recorded in the manifest.
    fn already_done(&self, by: &ChangedBy) -> bool {
        let Some(key) = &by.idempotency_key else {
            return false;
        };
        self.current()
            .manifest()
            .changes
            .iter()
            .any(|c| c.idempotency_key.as_ref() == Some(key) && c.actor == by.actor)
    }

    /// Emergency revocation of a compromised key: it leaves the JWKS at once, and if it was the
    /// active key the already-published next key takes over; a fresh next key is generated in
    /// either case where one is missing.
    pub async fn revoke(&self, kid: &str, now: i64) -> Result<Arc<KeySet>, KeyError> {
        self.revoke_by(kid, now, ChangedBy::system()).await
    }

    /// [`KeyManager::revoke`] asked for by `by`.
    pub async fn revoke_by(
        &self,
        kid: &str,
        now: i64,
        by: ChangedBy,
    ) -> Result<Arc<KeySet>, KeyError> {
        let alg = self
            .current()
            .manifest()
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.alg);
        let Some(alg) = alg else {
            return Err(KeyError::UnknownKid(kid.to_string()));
        };
        // Revocation is rare and urgent: the replacement key (only needed when an active or next
        // key is revoked) is generated under the lock, so revoking a retired key, or one already
        // revoked, costs no key generation.
        let _guard = self.write.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.reload_locked().await?;
            let manifest = self.current().manifest().clone();
            match self.revoke_manifest(manifest, kid, alg, now, &by).await {
                Err(e) if is_stale(&e) && attempt < STALE_RETRIES => {
                    log::info!("key set changed by another writer during a revocation; re-reading");
                }
                result => return result,
            }
        }
    }

    /// One attempt of [`KeyManager::revoke`] on the freshly read `manifest`. Caller holds `write`.
    async fn revoke_manifest(
        &self,
        mut manifest: Manifest,
        kid: &str,
        alg: Alg,
        now: i64,
        by: &ChangedBy,
    ) -> Result<Arc<KeySet>, KeyError> {
        let Some(entry) = manifest.keys.iter_mut().find(|k| k.kid == kid) else {
            return Err(KeyError::UnknownKid(kid.to_string()));
        };
        if !entry.state.is_published() {
            return Err(KeyError::NotPublished {
                kid: kid.to_string(),
                state: entry.state,
            });
        }
        let was = entry.state;
        entry.state = KeyState::Revoked;
        entry.revoked_at = Some(now);
        let change = Pending {
            at: now,
            by: by.clone(),
            action: "keys.revoke",
            target: vec![kid.to_string()],
            detail: Some(format!("alg={alg} was={was}")),
        };
        if was == KeyState::Retired {
            return self.commit(manifest, Vec::new(), change).await;
        }
        if was == KeyState::Active
            && let Some(next) = manifest
                .keys
                .iter_mut()
                .find(|k| k.alg == alg && k.state == KeyState::Next)
        {
            next.state = KeyState::Active;
            next.activated_at = Some(now);
        }
        let has_active = manifest
            .keys
            .iter()
            .any(|k| k.alg == alg && k.state == KeyState::Active);
        let (fresh_meta, fresh_key) = self.generate(alg, now).await?;
        let meta = if has_active {
            fresh_meta
        } else {
            KeyMeta {
                state: KeyState::Active,
                activated_at: Some(now),
                ..fresh_meta
            }
        };
        manifest.keys.push(meta.clone());
        let change = Pending {
            detail: Some(format!(
                "{} replacement={}",
                change.detail.unwrap_or_default(),
                meta.kid
            )),
            ..change
        };
        let fresh = vec![(meta, Arc::new(fresh_key))];
        self.commit(manifest, fresh, change).await
    }

    /// Moves retired keys whose last token has expired to `removed`, and forgets removed or
    /// revoked keys older than the history window. Returns whether anything changed.
    pub async fn sweep(&self, now: i64) -> Result<bool, KeyError> {
        let due = |m: &Manifest| {
            m.keys.iter().any(|k| {
                (k.state == KeyState::Retired && k.remove_after.is_some_and(|t| t <= now))
                    || history_expired(k, now)
            })
        };
        if !due(self.current().manifest()) {
            return Ok(false);
        }
        let _guard = self.write.lock().await;
        self.reload_locked().await?;
        let before = self.current().manifest().clone();
        let mut manifest = before.clone();
        if !sweep(&mut manifest, now) {
            return Ok(false);
        }
        let removed: Vec<String> = manifest
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Removed && k.removed_at == Some(now))
            .map(|k| k.kid.clone())
            .collect();
        let forgotten = before.keys.len() - manifest.keys.len();
        let change = Pending {
            at: now,
            by: ChangedBy::schedule(),
            action: "keys.remove",
            target: removed,
            detail: Some(format!("forgotten={forgotten}")),
        };
        match self.commit(manifest, Vec::new(), change).await {
            Ok(_) => Ok(true),
            // Another replica swept (or changed the set) first; its set is picked up on reload.
            Err(KeyError::Store(KeyStoreError::Stale { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The scheduled rotation, if one is due for `alg` at `now`: the active key is older than
    /// `rotate_every` and the next key has been published long enough. Returns whether it rotated.
    pub async fn rotate_if_due(&self, alg: Alg, now: i64) -> Result<bool, KeyError> {
        match self.next_scheduled_rotation(alg) {
            Some(at) if at <= now => {
                let seen = active_kid(self.current().manifest(), alg);
                let options = RotateOptions { alg, force: false };
                let by = ChangedBy::schedule();
                match self.rotate_from(options, Some(seen), now, by).await {
                    Ok(_) => Ok(true),
                    // Another writer (a replica, the CLI) rotated first: nothing left to do.
                    Err(KeyError::TooEarly { .. })
                    | Err(KeyError::Store(KeyStoreError::Stale { .. })) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(false),
        }
    }

    /// When the schedule will next promote a key of `alg`: the first key of a newly enabled
    /// algorithm as soon as it has been published long enough (whether or not the schedule is
    /// on: enabling the algorithm asked for it), any other only if the schedule is on.
    pub fn next_scheduled_rotation(&self, alg: Alg) -> Option<i64> {
        if let Some(at) = self.activation_pending(alg) {
            return Some(at);
        }
        if self.lifecycle.rotate_every <= 0 {
            return None;
        }
        let set = self.current();
        let keys = &set.manifest().keys;
        let active = keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Active)?;
        let due = active.activated_at.unwrap_or(active.created_at) + self.lifecycle.rotate_every;
        let ready = keys
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Next)
            .map_or(due, |next| self.promotion_allowed_at(next));
        Some(due.max(ready))
    }

    /// The `max-age` the JWKS may be cached for at `now`: the configured value, shortened so that
    /// no cache outlives the next scheduled promotion of any algorithm.
    pub fn jwks_max_age(&self, now: i64) -> i64 {
        Alg::ALL
            .iter()
            .filter_map(|alg| self.next_scheduled_rotation(*alg))
            .map(|at| (at - now).max(0))
            .fold(self.lifecycle.jwks_max_age, i64::min)
    }

    /// One round of background upkeep: pick up other writers' changes, remove retired keys
    /// whose tokens have all expired, run scheduled rotations that are due, and activate the
    /// first key of a newly enabled algorithm once it has been published long enough.
    /// Returns how many scheduled rotations this replica made.
    pub async fn tick(&self, now: i64) -> Result<usize, KeyError> {
        self.reload_if_changed().await?;
        self.sweep(now).await?;
        let mut rotated = 0;
        for alg in Alg::ALL {
            if self.rotate_if_due(alg, now).await? {
                rotated += 1;
            }
        }
        Ok(rotated)
    }

    /// A next key may sign once it has been published for max-age plus leeway.
    pub fn promotion_allowed_at(&self, next: &KeyMeta) -> i64 {
        next.created_at + self.lifecycle.jwks_max_age + self.lifecycle.leeway
    }

    /// Generates a key off the async runtime and describes it.
    async fn generate(&self, alg: Alg, now: i64) -> Result<(KeyMeta, PrivateKey), KeyError> {
        let bits = self.lifecycle.rsa_bits;
        let key = tokio::task::spawn_blocking(move || PrivateKey::generate(alg, bits))
            .await
            .map_err(KeyError::Worker)?
            .map_err(|source| KeyError::Generate { alg, source })?;
        let meta = KeyMeta {
            kid: thumbprint(&key.public_jwk()),
            alg,
            state: KeyState::Next,
            created_at: now,
            activated_at: None,
            retired_at: None,
            remove_after: None,
            removed_at: None,
            revoked_at: None,
        };
        Ok((meta, key))
    }

    /// Stores `manifest` with the new keys and the record of `change`, then publishes the new
    /// snapshot. Caller holds `write`.
    async fn commit(
        &self,
        mut manifest: Manifest,
        fresh: Vec<(KeyMeta, Arc<PrivateKey>)>,
        change: Pending,
    ) -> Result<Arc<KeySet>, KeyError> {
        manifest.generation += 1;
        manifest.record(ChangeRecord {
            id: change_id(),
            generation: manifest.generation,
            at: change.at,
            actor: change.by.actor,
            action: change.action.into(),
            target: (!change.target.is_empty()).then(|| change.target.join(" ")),
            detail: change.detail,
            instance: self.instance.clone(),
            idempotency_key: change.by.idempotency_key,
        });
        let mut pems: Vec<(String, Zeroizing<String>)> = Vec::with_capacity(fresh.len());
        for (meta, key) in &fresh {
            let pem = key.to_pkcs8_pem().map_err(|source| KeyError::Encode {
                kid: meta.kid.clone(),
                source,
            })?;
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
            .map_err(KeyError::Worker)??;
        self.store.commit(&manifest, &pems).await?;
        let set = Arc::new(set);
        self.current.store(set.clone());
        Ok(set)
    }
}

/// A random id for a [`ChangeRecord`]: 128 bits, base64url.
fn change_id() -> String {
    use base64::Engine;
    use rand::Rng;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How often a key-set change is re-read and re-decided when another writer committed first.
/// Each retry follows a commit that did succeed elsewhere, so a handful is plenty.
const STALE_RETRIES: usize = 5;

/// Whether `e` means another writer committed first (nothing of this change was stored).
fn is_stale(e: &KeyError) -> bool {
    matches!(e, KeyError::Store(KeyStoreError::Stale { .. }))
}

/// The kid of `alg`'s active key in `manifest`.
fn active_kid(manifest: &Manifest, alg: Alg) -> Option<String> {
    manifest
        .keys
        .iter()
        .find(|k| k.alg == alg && k.state == KeyState::Active)
        .map(|k| k.kid.clone())
}

/// Which keys (algorithm, state) [`KeyManager::publish_keys`] makes for `algs`: with nothing
/// published yet, an active and a next key each; otherwise only missing next keys.
fn keys_to_publish(manifest: &Manifest, algs: &[Alg]) -> Vec<(Alg, KeyState)> {
    let empty = !manifest.keys.iter().any(|k| k.state.is_published());
    let mut wanted = Vec::new();
    for alg in Alg::ALL.into_iter().filter(|alg| algs.contains(alg)) {
        let has = |state| {
            manifest
                .keys
                .iter()
                .any(|k| k.alg == alg && k.state == state)
        };
        if empty {
            wanted.push((alg, KeyState::Active));
        }
        if !has(KeyState::Next) {
            wanted.push((alg, KeyState::Next));
        }
    }
    wanted
}

/// How long a `removed` or `revoked` key stays listed in the manifest (and so in `/admin/keys`
/// and the metrics) after it left the JWKS: 30 days. Past that its entry is dropped, so the
/// manifest does not grow with every rotation; the audit log keeps the history.
pub const KEY_HISTORY_SECS: i64 = 30 * 24 * 3600;

/// Marks retired keys past their `remove_after` as removed, and drops removed or revoked keys
/// that left the JWKS more than [`KEY_HISTORY_SECS`] ago; returns whether anything changed.
fn sweep(manifest: &mut Manifest, now: i64) -> bool {
    let mut changed = false;
    for key in manifest.keys.iter_mut() {
        if key.state == KeyState::Retired && key.remove_after.is_some_and(|t| t <= now) {
            key.state = KeyState::Removed;
            key.removed_at = Some(now);
            changed = true;
        }
    }
    let before = manifest.keys.len();
    manifest.keys.retain(|key| !history_expired(key, now));
    changed || manifest.keys.len() != before
}

/// Whether `key` left the JWKS longer than the history window ago.
fn history_expired(key: &KeyMeta, now: i64) -> bool {
    let left_at = match key.state {
        KeyState::Removed => key.removed_at,
        KeyState::Revoked => key.revoked_at,
        _ => return false,
    };
    left_at.is_some_and(|t| t.saturating_add(KEY_HISTORY_SECS) <= now)
}

/// Reads and parses the stored key set (an empty set for an empty store): what
/// [`KeyManager::open_for`] does before publishing missing keys, without writing anything (also
/// the entry point of the `manifest_load` fuzz target).
pub async fn load_set(store: &dyn KeyStore) -> Result<KeySet, KeyError> {
    let (manifest, stored) = store.load().await?.unwrap_or_else(|| {
        (
            Manifest {
                format: Manifest::FORMAT,
                generation: 0,
                keys: Vec::new(),
                changes: Vec::new(),
            },
            Vec::new(),
        )
    });
    let mut parsed = Vec::with_capacity(stored.len());
    for key in stored {
        let private =
            PrivateKey::from_pkcs8_pem(key.meta.alg, &key.pem).map_err(|e| KeyError::Corrupt {
                origin: key.origin.clone(),
                reason: e.to_string(),
            })?;
        parsed.push((key.meta, Arc::new(private), key.origin));
    }
    tokio::task::spawn_blocking(move || KeySet::build(manifest, parsed))
        .await
        .map_err(KeyError::Worker)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kid: &str, state: KeyState, remove_after: Option<i64>) -> KeyMeta {
        KeyMeta {
            kid: kid.into(),
            alg: Alg::Es256,
            state,
            created_at: 0,
            activated_at: None,
            retired_at: None,
            remove_after,
            removed_at: None,
            revoked_at: None,
        }
    }

    fn manifest(keys: Vec<KeyMeta>) -> Manifest {
        Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys,
            changes: Vec::new(),
        }
    }

    #[test]
    fn an_empty_key_set_gets_an_active_and_a_next_key_for_each_algorithm() {
        let wanted = keys_to_publish(&manifest(Vec::new()), &[Alg::Rs256, Alg::Es256, Alg::Rs256]);
        assert_eq!(
            wanted,
            [
                (Alg::Es256, KeyState::Active),
                (Alg::Es256, KeyState::Next),
                (Alg::Rs256, KeyState::Active),
                (Alg::Rs256, KeyState::Next),
            ]
        );
    }

    #[test]
    fn an_algorithm_enabled_on_an_existing_key_set_gets_only_a_next_key() {
        let existing = manifest(vec![
            meta("es-active", KeyState::Active, None),
            meta("es-next", KeyState::Next, None),
        ]);
        assert_eq!(
            keys_to_publish(&existing, &[Alg::Es256, Alg::Rs256]),
            [(Alg::Rs256, KeyState::Next)]
        );
        let retired_only = manifest(vec![meta("old", KeyState::Retired, Some(100))]);
        assert_eq!(
            keys_to_publish(&retired_only, &[Alg::Es256]),
            [(Alg::Es256, KeyState::Next)],
            "a published key means tokens may exist: nothing signs unpublished"
        );
        let mut rs_next = meta("rs-next", KeyState::Next, None);
        rs_next.alg = Alg::Rs256;
        let pending = manifest(vec![
            meta("es-active", KeyState::Active, None),
            meta("es-next", KeyState::Next, None),
            rs_next,
        ]);
        assert!(
            keys_to_publish(&pending, &[Alg::Es256, Alg::Rs256]).is_empty(),
            "a pending next key is promoted by rotation, not replaced"
        );
    }

    #[test]
    fn sweep_removes_only_retired_keys_past_their_last_token() {
        let mut manifest = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![
                meta("due", KeyState::Retired, Some(100)),
                meta("live", KeyState::Retired, Some(101)),
                meta("active", KeyState::Active, None),
            ],
            changes: Vec::new(),
        };
        assert!(sweep(&mut manifest, 100));
        assert_eq!(manifest.keys[0].state, KeyState::Removed);
        assert_eq!(manifest.keys[0].removed_at, Some(100));
        assert_eq!(manifest.keys[1].state, KeyState::Retired);
        assert_eq!(manifest.keys[2].state, KeyState::Active);
        assert!(!sweep(&mut manifest, 100), "nothing more to do");
    }

    #[test]
    fn removed_and_revoked_keys_are_forgotten_after_the_history_window() {
        let mut revoked = meta("revoked", KeyState::Revoked, None);
        revoked.revoked_at = Some(50);
        let mut manifest = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![
                meta("due", KeyState::Retired, Some(100)),
                revoked,
                meta("active", KeyState::Active, None),
            ],
            changes: Vec::new(),
        };
        assert!(sweep(&mut manifest, 100));
        assert_eq!(manifest.keys.len(), 3, "still within the history window");
        assert!(!sweep(&mut manifest, 50 + KEY_HISTORY_SECS - 1));
        assert!(sweep(&mut manifest, 50 + KEY_HISTORY_SECS));
        let kids: Vec<&str> = manifest.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(
            kids,
            ["due", "active"],
            "the revoked key is forgotten first"
        );
        assert!(sweep(&mut manifest, 100 + KEY_HISTORY_SECS));
        let kids: Vec<&str> = manifest.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["active"]);
    }
}
