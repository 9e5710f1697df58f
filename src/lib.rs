//! `stamp`: an asymmetric-key JWT access-token issuer. This crate builds the Rocket server (see
//! [`build`]) and is also the library a Rust service uses to work with the issuer's tokens.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod oidc;
pub mod routes;
pub mod store;
pub mod tokens;
pub mod web;
/// Offline verification of access tokens: the `stamp-verify` crate, re-exported so that
/// `stamp::verify::…` paths keep working. A resource server can depend on `stamp-verify` alone.
pub use stamp_verify as verify;

use std::sync::Arc;

use rocket::figment::Figment;
use rocket::{Build, Rocket};
use secrecy::ExposeSecret;

use crate::admin::{AdminService, AuditFailure};
use crate::auth::{Authenticator, PasswordError, PasswordHasher};
use crate::config::{Config, ConfigError};
use crate::keys::{FileKeyStore, KeyError, KeyManager, KeyStore, KeyStoreError, PgKeyStore};
use crate::store::{PgStore, Store, StoreError};

/// Everything the handlers share, built once at start.
pub struct App {
    pub config: Config,
    /// Where every handler and background job reads the time (manual in tests).
    pub clock: clock::Clock,
    pub keys: Arc<KeyManager>,
    pub store: Arc<dyn Store>,
    pub passwords: PasswordHasher,
    pub auth: Authenticator,
    /// Every admin action, performed and audited once.
    pub admin: AdminService,
    /// The discovery document, serialised once.
    pub discovery: Arc<[u8]>,
    /// `public, max-age=N` for the JWKS and discovery.
    pub jwks_cache_control: Arc<str>,
    /// The PostgreSQL pool of the shared key store (`key_store = "database"`): the key upkeep
    /// listens on it for other replicas' key-set changes.
    pub key_events: Option<sqlx::PgPool>,
    /// Counters for `/metrics` (shared with the background jobs).
    pub metrics: Arc<metrics::Metrics>,
}

/// Why the issuer could not start. Each variant prints as one line naming what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The `default_client_id` setting is not a valid client id.
    #[error("invalid setting `default_client_id`: {reason}")]
    DefaultClientId { reason: String },
}

impl App {
    /// Opens the database and the key store (creating keys on first start) for `config`.
    pub async fn open(config: Config, clock: clock::Clock) -> Result<App, StartError> {
        let now = clock.now();
        let (store, key_store, key_events) = open_stores(&config).await?;
        let default_client = store::ClientId::parse(&config.default_client_id)
            .map_err(|reason| StartError::DefaultClientId { reason })?;
        auth::ensure_default_client(store.as_ref(), &default_client, now).await?;
        // Read once: the clients' algorithms are enabled, their scopes are advertised.
        let clients = store.list_clients().await?;
        let algs = enabled_algs(&config, &clients);
        let keys = Arc::new(
            KeyManager::open_for(
                key_store,
                &algs,
                config.keys.lifecycle,
                now,
                &config.instance_name,
            )
            .await?,
        );
        if let Some(active_from) = keys.activation_pending(config.keys.signing_alg) {
            rocket::warn!(
                "signing_alg {} is new to this key set: its first key is published and signs \
                 from {active_from} (unix time) on; until then tokens are signed as before",
                config.keys.signing_alg
            );
        }
        let passwords =
            PasswordHasher::bounded(config.password_concurrency, config.password_queue).await?;
        let auth = Authenticator::new(
            &config,
            store.clone(),
            keys.clone(),
            passwords.clone(),
            clock.clone(),
        );
        let admin = AdminService::new(store.clone(), clock.clone(), AuditFailure::Log);
        let mut scopes = config.user_scopes.clone();
        for client in clients.into_iter().filter(|c| !c.disabled) {
            scopes.extend(client.scopes);
        }
        let discovery = routes::well_known::discovery_document(&config.issuer, &scopes).into();
        let jwks_cache_control = format!("public, max-age={}", config.jwks_max_age).into();
        let has_listener = key_events.is_some();
        Ok(App {
            config,
            clock,
            keys,
            store,
            passwords,
            auth,
            admin,
            discovery,
            jwks_cache_control,
            key_events,
            metrics: Arc::new(metrics::Metrics::new(has_listener)),
        })
    }
}

/// The algorithms that need keys: the configured `signing_alg`, then those that registered
/// clients name.
fn enabled_algs(config: &Config, clients: &[store::Client]) -> Vec<keys::Alg> {
    let mut algs = vec![config.keys.signing_alg];
    for alg in clients.iter().filter_map(|c| c.alg) {
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    algs
}

/// The store and the key store that `config` names: SQLite (or PostgreSQL) and the file key
/// store, or PostgreSQL for both on one pool (`key_store = "database"`), which is then also
/// returned for key-change notifications.
pub async fn open_stores(
    config: &Config,
) -> Result<(Arc<dyn Store>, Arc<dyn KeyStore>, Option<sqlx::PgPool>), StartError> {
    let Some(kek) = config.keys.store.kek() else {
        let store =
            store::open_with(config.database_url.expose_secret(), &config.database_pool).await?;
        return Ok((store, Arc::new(FileKeyStore::open(&config.keys.dir)?), None));
    };
    let store =
        PgStore::open_with(config.database_url.expose_secret(), &config.database_pool).await?;
    let pool = store.pool().clone();
    let key_store = Arc::new(PgKeyStore::new(pool.clone(), kek.clone()));
    Ok((Arc::new(store), key_store, Some(pool)))
}

/// The key store alone, as the `stamp keys` commands use it: the file store, or the database
/// key store on a pool of its own.
pub async fn open_key_store(config: &Config) -> Result<Arc<dyn KeyStore>, StartError> {
    let Some(kek) = config.keys.store.kek() else {
        return Ok(Arc::new(FileKeyStore::open(&config.keys.dir)?));
    };
    let store =
        PgStore::open_with(config.database_url.expose_secret(), &config.database_pool).await?;
    Ok(Arc::new(PgKeyStore::new(store.pool().clone(), kek.clone())))
}

/// Builds the issuer from a figment (normally [`config::figment`]): validates the settings, opens
/// the stores, loads or creates keys, and attaches one stage per feature (each mounts its
/// routes) and the background jobs ([`jobs`]). Errors come back as values, so the
/// binary prints one line and library users decide for themselves.
pub async fn build(figment: Figment) -> Result<Rocket<Build>, StartError> {
    build_with_clock(figment, clock::Clock::system()).await
}

/// [`build`] with the clock the app reads its time from: tests pass [`clock::Clock::manual`] and
/// move time instead of sleeping.
pub async fn build_with_clock(
    figment: Figment,
    clock: clock::Clock,
) -> Result<Rocket<Build>, StartError> {
    logging::init(&figment);
    let config = Config::from_figment(&figment)?;
    let app = App::open(config, clock).await?;
    rocket::info!("keys: {}", app.keys.describe_store());
    // Rocket's default Shield adds three headers to every response, two of them for HTML pages
    // (X-Frame-Options, Permissions-Policy). This server answers JSON only: keep `nosniff`, which
    // matters for JSON, and save the per-response header work on the token and JWKS hot paths.
    // The OpenID Connect pages set their own CSP and `X-Frame-Options` (routes/oidc.rs).
    let shield = rocket::shield::Shield::new().enable(rocket::shield::NoSniff::default());
    Ok(rocket::custom(figment)
        .attach(routes::request_log::RequestLogger)
        .attach(shield)
        .manage(app)
        .attach(routes::well_known::stage())
        .attach(routes::oauth::stage())
        .attach(routes::login::stage())
        .attach(routes::signup::stage())
        .attach(routes::session::stage())
        .attach(routes::health::stage())
        .attach(routes::admin::stage())
        .attach(routes::admin_clients::stage())
        .attach(routes::admin_apis::stage())
        .attach(routes::admin_users::stage())
        .attach(routes::admin_tokens::stage())
        .attach(routes::account::stage())
        .attach(routes::oidc::stage())
        .attach(routes::openapi::stage())
        .attach(routes::console::stage())
        .attach(jobs::stage())
        .register("/", error::catchers()))
}
