//! Typed settings, read from `Rocket.toml` and `ROCKET_*` variables through Rocket's figment.

use std::fmt;
use std::path::PathBuf;

use rocket::figment::Figment;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::{Alg, Kek};

/// Every setting of the issuer. Defaults match `Rocket.toml`'s `[default]` table so that a figment
/// without that file still yields a working (embedded, SQLite) configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// `iss` of every token and the base of every URL in discovery.
    pub issuer: String,
    /// `aud` of every access token.
    pub audience: String,
    /// Algorithm of the primary signing key: `ES256` or `RS256`.
    pub signing_alg: String,
    /// Modulus size for generated RSA keys: 2048, 3072 or 4096.
    pub rsa_bits: usize,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: i64,
    /// Folder of the file key store.
    pub keys_dir: PathBuf,
    /// `sqlite://PATH` (created if missing) or `postgres://…` (the scale-out deployment).
    pub database_url: String,
    /// Where the signing keys live: `file` (`keys_dir`) or `database` (PostgreSQL only,
    /// encrypted under the key-encryption key).
    pub key_store: String,
    /// Standard base64 of the 32-byte key-encryption key of `key_store = "database"`; normally
    /// given as `ROCKET_KEY_ENCRYPTION_KEY`. Never serialised, hidden from `Debug`.
    #[serde(skip_serializing)]
    pub key_encryption_key: Option<Secret>,
    /// A file holding that base64 text instead (e.g. a mounted secret).
    pub key_encryption_key_file: Option<PathBuf>,
    /// `Cache-Control: max-age` of the JWKS, in seconds.
    pub jwks_max_age: u64,
    /// Scopes any user may ask for with the password grant (besides their own roles).
    pub user_scopes: Vec<String>,
    /// `client_id` claim of tokens issued to first-party logins that name no client.
    pub default_client_id: String,
    /// Upper bound of concurrent argon2 computations (0: the number of cores).
    pub password_concurrency: usize,
    /// Seconds a service client's record is cached for `client_credentials` (0: off).
    pub client_cache_ttl: u64,
    /// Scheduled key rotation period in seconds; 0 (default) turns it off.
    pub rotate_every: i64,
    /// Margin in seconds added to the JWKS max-age before a next key may sign, and to the token
    /// lifetime before a retired key is removed (clock skew, propagation to replicas).
    pub rotation_leeway: i64,
    /// How often, in seconds, the background task checks the schedule, removes expired retired
    /// keys and picks up key-set changes made by other processes.
    pub key_poll_interval: u64,
    /// Lifetime of one refresh token in seconds (each refresh issues a new one).
    pub refresh_token_ttl: i64,
    /// Absolute lifetime of a login's refresh-token family in seconds: no refresh extends it.
    pub refresh_family_ttl: i64,
    /// Seconds after a refresh token is spent during which presenting it once more is answered
    /// without revoking its family (racing tabs, retries). 0 (default) is strict reuse detection.
    pub refresh_reuse_grace: i64,
    /// Cookie mode for every `/login` (otherwise only when the request asks for it).
    pub cookie_mode: bool,
    /// The `Secure` cookie attribute. Turn off only for local development over plain HTTP.
    pub cookie_secure: bool,
    /// Failed logins per username or client address before they are throttled.
    pub login_throttle_failures: u32,
    /// Longest `Retry-After` of the login throttle, in seconds.
    pub login_throttle_max_delay: i64,
    /// Most usernames and addresses the login throttle remembers (bounds its memory).
    pub login_throttle_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            issuer: "http://127.0.0.1:8000".into(),
            audience: "stamp".into(),
            signing_alg: "ES256".into(),
            rsa_bits: 2048,
            access_token_ttl: 900,
            keys_dir: PathBuf::from("keys"),
            database_url: "sqlite://stamp.db".into(),
            key_store: "file".into(),
            key_encryption_key: None,
            key_encryption_key_file: None,
            jwks_max_age: 300,
            user_scopes: vec!["openid".into(), "profile".into(), "email".into()],
            default_client_id: "stamp".into(),
            password_concurrency: 0,
            client_cache_ttl: 1,
            rotate_every: 0,
            rotation_leeway: 60,
            key_poll_interval: 5,
            refresh_token_ttl: 14 * 86_400,
            refresh_family_ttl: 90 * 86_400,
            refresh_reuse_grace: 0,
            cookie_mode: false,
            cookie_secure: true,
            login_throttle_failures: 5,
            login_throttle_max_delay: 900,
            login_throttle_capacity: 10_000,
        }
    }
}

/// A secret setting: readable once through [`Secret::expose`], `<hidden>` in `Debug`, wiped on
/// drop.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Where the signing keys live.
#[derive(Clone, Debug)]
pub enum KeyStoreKind {
    /// The file key store in `keys_dir` (the embedded default).
    File,
    /// The PostgreSQL key store of `database_url`, private keys encrypted under `kek` (checked
    /// base64 of 32 bytes).
    Database { kek: Secret },
}

impl KeyStoreKind {
    /// The key-encryption key, parsed (`None` for the file store).
    pub fn kek(&self) -> Result<Option<Kek>, ConfigError> {
        match self {
            KeyStoreKind::File => Ok(None),
            KeyStoreKind::Database { kek } => Kek::from_base64(kek.expose())
                .map(Some)
                .map_err(|reason| ConfigError::new("key_encryption_key", reason)),
        }
    }
}

/// A setting that cannot be used, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &'static str, reason: impl fmt::Display) -> Self {
        ConfigError {
            setting,
            reason: reason.to_string(),
        }
    }
}

/// Settings after validation: the only form the rest of the crate sees.
#[derive(Clone, Debug)]
pub struct Config {
    pub issuer: String,
    pub audience: String,
    pub signing_alg: Alg,
    pub rsa_bits: usize,
    pub access_token_ttl: i64,
    pub keys_dir: PathBuf,
    pub database_url: String,
    pub key_store: KeyStoreKind,
    pub jwks_max_age: u64,
    pub user_scopes: Vec<String>,
    pub default_client_id: String,
    pub password_concurrency: usize,
    pub client_cache_ttl: u64,
    pub rotate_every: i64,
    pub rotation_leeway: i64,
    pub key_poll_interval: u64,
    pub refresh: crate::tokens::refresh::RefreshPolicy,
    pub cookie_mode: bool,
    pub cookie_secure: bool,
    pub throttle: crate::auth::ThrottlePolicy,
}

/// The figment the server and the CLI both read: `Rocket.toml` plus `ROCKET_*` variables.
pub fn figment() -> Figment {
    rocket::Config::figment()
}

impl Config {
    /// The key lifecycle timings these settings imply.
    pub fn lifecycle(&self) -> crate::keys::Lifecycle {
        crate::keys::Lifecycle {
            rsa_bits: self.rsa_bits,
            jwks_max_age: self.jwks_max_age as i64,
            max_token_ttl: self.access_token_ttl,
            leeway: self.rotation_leeway,
            rotate_every: self.rotate_every,
        }
    }

    /// Extracts and validates the settings; the first invalid one is reported by name.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
        let raw: Settings = figment.extract().map_err(|e| {
            let setting = e
                .path
                .last()
                .map(|s| leak_setting_name(s))
                .unwrap_or("configuration");
            ConfigError::new(setting, e.kind)
        })?;
        raw.validate()
    }
}

/// Names a setting from figment's error path. Only known names are returned, so that the
/// `'static` lifetime of [`ConfigError::setting`] needs no allocation.
fn leak_setting_name(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "issuer",
        "audience",
        "signing_alg",
        "rsa_bits",
        "access_token_ttl",
        "keys_dir",
        "database_url",
        "key_store",
        "key_encryption_key",
        "key_encryption_key_file",
        "jwks_max_age",
        "user_scopes",
        "default_client_id",
        "password_concurrency",
        "client_cache_ttl",
        "rotate_every",
        "rotation_leeway",
        "key_poll_interval",
        "refresh_token_ttl",
        "refresh_family_ttl",
        "refresh_reuse_grace",
        "cookie_mode",
        "cookie_secure",
        "login_throttle_failures",
        "login_throttle_max_delay",
        "login_throttle_capacity",
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("configuration")
}

/// `Ok` when `value` lies in `range`, else the error naming `setting`.
fn in_range<T: PartialOrd>(
    setting: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    reason: &str,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(setting, reason))
    }
}

impl Settings {
    /// Parses every setting into its checked form.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let issuer = self.issuer.trim_end_matches('/').to_string();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ConfigError::new("issuer", "must be an http(s) URL"));
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::new("audience", "must not be empty"));
        }
        let signing_alg: Alg = self.signing_alg.parse().map_err(|_| {
            ConfigError::new(
                "signing_alg",
                format!(
                    "`{}` is not supported (use ES256 or RS256)",
                    self.signing_alg
                ),
            )
        })?;
        if ![2048, 3072, 4096].contains(&self.rsa_bits) {
            return Err(ConfigError::new(
                "rsa_bits",
                format!("{} is not allowed (use 2048, 3072 or 4096)", self.rsa_bits),
            ));
        }
        // RFC 9068 tokens are meant to be short-lived; a day is a generous ceiling.
        if !(1..=86_400).contains(&self.access_token_ttl) {
            return Err(ConfigError::new(
                "access_token_ttl",
                format!(
                    "{} is out of range (1 to 86400 seconds)",
                    self.access_token_ttl
                ),
            ));
        }
        if self.jwks_max_age > 86_400 {
            return Err(ConfigError::new(
                "jwks_max_age",
                "must be at most 86400 seconds",
            ));
        }
        if !self.database_url.starts_with("sqlite:")
            && !crate::store::is_postgres(&self.database_url)
        {
            return Err(ConfigError::new(
                "database_url",
                "is not supported (use sqlite://PATH or postgres://USER@HOST/DATABASE)",
            ));
        }
        let key_store = self.key_store_kind()?;
        if self.keys_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("keys_dir", "must not be empty"));
        }
        if self.rotate_every < 0 {
            return Err(ConfigError::new(
                "rotate_every",
                "must be 0 (off) or a number of seconds",
            ));
        }
        if self.rotate_every > 0
            && self.rotate_every < self.jwks_max_age as i64 + self.rotation_leeway
        {
            return Err(ConfigError::new(
                "rotate_every",
                "must be at least jwks_max_age + rotation_leeway, so a next key is cached before it signs",
            ));
        }
        in_range(
            "rotation_leeway",
            self.rotation_leeway,
            0..=86_400,
            "must be 0 to 86400 seconds",
        )?;
        in_range(
            "key_poll_interval",
            self.key_poll_interval,
            1..=3_600,
            "must be 1 to 3600 seconds",
        )?;
        in_range(
            "refresh_token_ttl",
            self.refresh_token_ttl,
            60..=366 * 86_400,
            "must be 60 seconds to 366 days (in seconds)",
        )?;
        if self.refresh_family_ttl < self.refresh_token_ttl
            || self.refresh_family_ttl > 3 * 366 * 86_400
        {
            return Err(ConfigError::new(
                "refresh_family_ttl",
                "must be at least refresh_token_ttl and at most about 3 years (in seconds)",
            ));
        }
        // A long grace window turns reuse detection off in practice; a few seconds is the point.
        in_range(
            "refresh_reuse_grace",
            self.refresh_reuse_grace,
            0..=60,
            "must be 0 (off) to 60 seconds",
        )?;
        in_range(
            "login_throttle_failures",
            self.login_throttle_failures,
            1..=1_000,
            "must be 1 to 1000",
        )?;
        in_range(
            "login_throttle_max_delay",
            self.login_throttle_max_delay,
            1..=86_400,
            "must be 1 to 86400 seconds",
        )?;
        in_range(
            "login_throttle_capacity",
            self.login_throttle_capacity,
            16..=10_000_000,
            "must be 16 to 10000000 entries",
        )?;
        in_range(
            "client_cache_ttl",
            self.client_cache_ttl,
            0..=60,
            "must be 0 (off) to 60 seconds",
        )?;
        let password_concurrency = match self.password_concurrency {
            // One argon2 computation per core: two on one core run slower per CPU-second and use
            // twice the memory (measured with bench/load.sh).
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Ok(Config {
            issuer,
            audience: self.audience,
            signing_alg,
            rsa_bits: self.rsa_bits,
            access_token_ttl: self.access_token_ttl,
            keys_dir: self.keys_dir,
            database_url: self.database_url,
            key_store,
            jwks_max_age: self.jwks_max_age,
            user_scopes: self.user_scopes,
            default_client_id: self.default_client_id,
            password_concurrency,
            client_cache_ttl: self.client_cache_ttl,
            rotate_every: self.rotate_every,
            rotation_leeway: self.rotation_leeway,
            key_poll_interval: self.key_poll_interval,
            refresh: crate::tokens::refresh::RefreshPolicy {
                ttl: self.refresh_token_ttl,
                family_ttl: self.refresh_family_ttl,
                reuse_grace: self.refresh_reuse_grace,
            },
            cookie_mode: self.cookie_mode,
            cookie_secure: self.cookie_secure,
            throttle: crate::auth::ThrottlePolicy {
                free_failures: self.login_throttle_failures,
                max_delay: self.login_throttle_max_delay,
                capacity: self.login_throttle_capacity,
            },
        })
    }
}

impl Settings {
    /// `key_store` with its key-encryption key, read and checked (never echoed in an error).
    fn key_store_kind(&self) -> Result<KeyStoreKind, ConfigError> {
        match self.key_store.as_str() {
            "file" => return Ok(KeyStoreKind::File),
            "database" => {}
            other => {
                return Err(ConfigError::new(
                    "key_store",
                    format!("`{other}` is not supported (use \"file\" or \"database\")"),
                ));
            }
        }
        if !crate::store::is_postgres(&self.database_url) {
            return Err(ConfigError::new(
                "key_store",
                "`database` keeps the keys in PostgreSQL: it needs a postgres:// database_url, \
                 not SQLite (or use key_store = \"file\")",
            ));
        }
        // An empty value (e.g. `ROCKET_KEY_ENCRYPTION_KEY_FILE=`) counts as not set.
        let text = self
            .key_encryption_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty());
        let file = self
            .key_encryption_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty());
        let kek = match (text, file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "key_encryption_key",
                    "set either key_encryption_key or key_encryption_key_file, not both",
                ));
            }
            (Some(kek), None) => {
                Kek::from_base64(kek.expose())
                    .map_err(|reason| ConfigError::new("key_encryption_key", reason))?;
                kek.clone()
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "key_encryption_key_file",
                        format!("{}: {e}", path.display()),
                    )
                })?;
                let kek = Secret::new(text.trim().to_string());
                drop(Zeroizing::new(text));
                Kek::from_base64(kek.expose()).map_err(|reason| {
                    ConfigError::new(
                        "key_encryption_key_file",
                        format!("{}: {reason}", path.display()),
                    )
                })?;
                kek
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "key_encryption_key",
                    "is required with key_store = \"database\": set ROCKET_KEY_ENCRYPTION_KEY to \
                     the output of `openssl rand -base64 32`, or key_encryption_key_file",
                ));
            }
        };
        Ok(KeyStoreKind::Database { kek })
    }
}

#[cfg(test)]
mod tests {
    use rocket::figment::providers::Serialized;

    use super::*;

    fn with(key: &str, value: impl serde::Serialize) -> Result<Config, ConfigError> {
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Serialized::global(key, value));
        Config::from_figment(&figment)
    }

    #[test]
    fn defaults_are_valid() {
        let config = Settings::default().validate().unwrap();
        assert_eq!(config.signing_alg, Alg::Es256);
        assert_eq!(config.access_token_ttl, 900);
    }

    #[test]
    fn unknown_algorithm_names_the_setting() {
        let err = with("signing_alg", "HS256").unwrap_err();
        assert_eq!(err.setting, "signing_alg");
        assert!(err.to_string().contains("HS256"));
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        assert_eq!(with("rsa_bits", 1024).unwrap_err().setting, "rsa_bits");
        assert!(with("rsa_bits", 3072).is_ok());
    }

    #[test]
    fn zero_ttl_is_refused() {
        assert_eq!(
            with("access_token_ttl", 0).unwrap_err().setting,
            "access_token_ttl"
        );
    }

    #[test]
    fn session_settings_are_checked() {
        let config = Settings::default().validate().unwrap();
        assert_eq!(config.refresh.ttl, 14 * 86_400);
        assert_eq!(config.refresh.reuse_grace, 0);
        assert!(config.cookie_secure);
        assert_eq!(
            with("refresh_token_ttl", 0).unwrap_err().setting,
            "refresh_token_ttl"
        );
        assert_eq!(
            with("refresh_family_ttl", 60).unwrap_err().setting,
            "refresh_family_ttl"
        );
        assert_eq!(
            with("refresh_reuse_grace", 3600).unwrap_err().setting,
            "refresh_reuse_grace"
        );
        assert!(with("refresh_reuse_grace", 5).is_ok());
        assert_eq!(
            with("login_throttle_capacity", 0).unwrap_err().setting,
            "login_throttle_capacity"
        );
    }

    fn database_with(entries: &[(&str, serde_json::Value)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Serialized::global("key_store", "database"))
            .merge(Serialized::global(
                "database_url",
                "postgres://stamp@db.internal/stamp",
            ));
        for (key, value) in entries {
            figment = figment.merge(Serialized::global(key, value));
        }
        Config::from_figment(&figment)
    }

    const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn postgres_urls_are_accepted() {
        let config = with("database_url", "postgresql://stamp@db/stamp").unwrap();
        assert!(matches!(config.key_store, KeyStoreKind::File));
        assert_eq!(
            with("database_url", "mysql://x").unwrap_err().setting,
            "database_url"
        );
    }

    #[test]
    fn database_key_store_needs_postgres_and_a_kek() {
        let config = database_with(&[("key_encryption_key", KEK.into())]).unwrap();
        assert!(config.key_store.kek().unwrap().is_some());
        let shown = format!("{config:?}");
        assert!(!shown.contains(KEK), "the KEK is never printed: {shown}");

        let sqlite = database_with(&[
            ("key_encryption_key", KEK.into()),
            ("database_url", "sqlite://stamp.db".into()),
        ])
        .unwrap_err();
        assert_eq!(sqlite.setting, "key_store");

        let missing = database_with(&[]).unwrap_err();
        assert_eq!(missing.setting, "key_encryption_key");
        let short = database_with(&[("key_encryption_key", "AAECAwQFBgcICQoLDA0ODw==".into())])
            .unwrap_err();
        assert_eq!(short.setting, "key_encryption_key");
        assert!(short.to_string().contains("16 bytes"), "{short}");
        assert_eq!(with("key_store", "vault").unwrap_err().setting, "key_store");
    }

    #[test]
    fn the_kek_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, format!("{KEK}\n")).unwrap();
        let config =
            database_with(&[("key_encryption_key_file", path.display().to_string().into())])
                .unwrap();
        assert!(config.key_store.kek().unwrap().is_some());
        let absent = database_with(&[(
            "key_encryption_key_file",
            dir.path().join("nope").display().to_string().into(),
        )])
        .unwrap_err();
        assert_eq!(absent.setting, "key_encryption_key_file");
        let empty_file = database_with(&[
            ("key_encryption_key", KEK.into()),
            ("key_encryption_key_file", "".into()),
        ]);
        assert!(empty_file.is_ok(), "an empty setting counts as unset");
        let both = database_with(&[
            ("key_encryption_key", KEK.into()),
            ("key_encryption_key_file", path.display().to_string().into()),
        ])
        .unwrap_err();
        assert_eq!(both.setting, "key_encryption_key");
    }

    #[test]
    fn settings_debug_hides_the_kek() {
        let settings = Settings {
            key_encryption_key: Some(Secret::new(KEK.into())),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains(KEK));
    }

    #[test]
    fn wrongly_typed_value_names_the_setting() {
        let err = with("rsa_bits", "lots").unwrap_err();
        assert_eq!(err.setting, "rsa_bits");
    }
}
