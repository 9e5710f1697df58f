//! A short-lived cache of client records, read on every grant.
//!
//! Reading the client from the database on every token request was 31% of the issuer's CPU in
//! the load test (`bench/load.sh`); caching records for a second raised ES256 client_credentials
//! throughput by about 50%. Only clients that exist are cached (unknown ids cannot fill it), the
//! map is bounded, and a change made elsewhere (the CLI in another process, another replica)
//! takes effect within the TTL. The secret is still checked on every request, against the cached
//! SHA-256 hash, in constant time.
//!
//! Ages are measured on the app's [`Clock`] (milliseconds), so tests move time instead of
//! sleeping.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clock::Clock;
use crate::store::Client;

/// Most cached clients; past that, expired entries are dropped and new ones not cached.
const CAPACITY: usize = 4096;

/// Client records by id, each kept for `ttl_ms` milliseconds after it was read.
pub struct ClientCache {
    ttl_ms: i64,
    clock: Clock,
    /// Each record with the time it was read, in milliseconds of `clock`.
    entries: RwLock<HashMap<String, (Client, i64)>>,
}

impl ClientCache {
    /// A cache keeping records for `ttl_secs` seconds of `clock`; 0 turns it off.
    pub fn new(ttl_secs: u64, clock: Clock) -> ClientCache {
        ClientCache {
            ttl_ms: i64::try_from(ttl_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
            clock,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cached record of `id`, if fresh.
    pub fn get(&self, id: &str) -> Option<Client> {
        if self.ttl_ms == 0 {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let (client, at) = entries.get(id)?;
        self.is_fresh(*at, self.clock.now_millis())
            .then(|| client.clone())
    }

    /// Remembers a record read from the store.
    pub fn put(&self, client: &Client) {
        if self.ttl_ms == 0 {
            return;
        }
        let now = self.clock.now_millis();
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= CAPACITY && !entries.contains_key(&client.id) {
            entries.retain(|_, (_, at)| self.is_fresh(*at, now));
            if entries.len() >= CAPACITY {
                return;
            }
        }
        entries.insert(client.id.clone(), (client.clone(), now));
    }

    /// Whether a record read at `at` is still fresh at `now` (a clock set back counts as fresh).
    fn is_fresh(&self, at: i64, now: i64) -> bool {
        now.saturating_sub(at) < self.ttl_ms
    }

    /// Forgets `id` (after a change made in this process).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::refresh::TokenHash;

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            secret_hash: Some(TokenHash([1; 32])),
            scopes: vec![],
            alg: None,
            disabled: false,
            public: false,
            grants: vec![crate::store::GrantType::ClientCredentials],
            redirect_uris: Vec::new(),
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
            created_at: 0,
            previous_secret: None,
        }
    }

    #[test]
    fn records_expire_and_can_be_forgotten() {
        let clock = Clock::manual(1_000);
        let cache = ClientCache::new(1, clock.clone());
        cache.put(&client("a"));
        assert_eq!(cache.get("a").map(|c| c.id), Some("a".into()));
        cache.forget("a");
        assert!(cache.get("a").is_none());
        cache.put(&client("b"));
        assert!(cache.get("b").is_some(), "fresh within the TTL");
        clock.advance(1);
        assert!(cache.get("b").is_none(), "expired after the TTL");
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = ClientCache::new(0, Clock::manual(0));
        cache.put(&client("a"));
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn the_map_is_bounded() {
        let cache = ClientCache::new(60, Clock::manual(0));
        for i in 0..CAPACITY + 10 {
            cache.put(&client(&format!("c{i}")));
        }
        assert_eq!(cache.entries.read().unwrap().len(), CAPACITY);
        assert!(cache.get("c0").is_some(), "older entries stay while fresh");
    }
}
