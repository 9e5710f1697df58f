//! Typed settings, read from `Rocket.toml` and `ROCKET_*` variables through Rocket's figment.
//!
//! Every setting is declared once, in the `settings!` list below: its name (which is also its
//! key in `Rocket.toml` and, upper-cased, its `ROCKET_*` variable: a public contract), its type,
//! its default, its documentation and the rule its value must follow on its own. The macro
//! derives from that one list the raw [`Settings`] struct (serde, `#[serde(default)]`), its
//! `Default`, the list of known names [`Settings::NAMES`] and the per-setting checks, so adding a
//! setting is one entry, not four edits that must agree.
//!
//! [`Config::from_figment`] then:
//! 1. refuses a `ROCKET_CONFIG` that names a missing file (Rocket itself would silently run on
//!    defaults);
//! 2. refuses any key that is neither one of ours nor one of Rocket's own
//!    ([`rocket::Config::PARAMETERS`] plus `profile`, `config` and its deprecated names), naming
//!    its origin (e.g. the variable `ROCKET_SIGNNG_ALG`) and the closest known name. The check is
//!    on the merged figment rather than on `deny_unknown_fields`, because Rocket's keys share the
//!    same table and a misspelling in `Rocket.toml` deserves the same answer;
//! 3. extracts [`Settings`], runs every declared per-setting check, then the rules between
//!    settings, and parses the result into [`Config`], grouped by concern (keys, refresh policy,
//!    throttle policy, cookies). The key-encryption key is parsed here, once.
//!
//! Secrets (the key-encryption key, the database URL, which may carry a password) are
//! [`secrecy`] values: never serialised, `[REDACTED]` in `Debug`. [`DatabaseUrl`]'s `Debug`
//! shows the URL with its password replaced, so logs still say which database is meant.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use rocket::figment::Figment;
use rocket::figment::value::Dict;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::auth::{PasswordPolicy, ThrottlePolicy};
use crate::keys::{Alg, Kek, KekError, Lifecycle};
use crate::listener::ConnectionLimits;
use crate::logging::LogFormat;
use crate::store::PoolSettings;
use crate::tokens::refresh::RefreshPolicy;

/// Declares every setting once; see the module documentation. Each entry is
/// `doc; name: Type = default` with an optional `, check = RULE` where `RULE` is a
/// `Fn(&'static str, &Type) -> Result<(), ConfigError>` (see `within`, `one_of`).
macro_rules! settings {
    ($(
        $(#[$meta:meta])*
        $name:ident : $ty:ty = $default:expr $(, check = $check:expr)? ;
    )*) => {
        /// Every setting of the issuer, as read (before validation). Defaults match
        /// `Rocket.toml`'s `[default]` table, so a figment without that file still yields a
        /// working (embedded, SQLite) configuration.
        #[derive(Debug, Deserialize)]
        #[serde(default)]
        pub struct Settings {
            $( $(#[$meta])* pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $name: $default, )* }
            }
        }

        impl Settings {
            /// The name of every setting, as written in `Rocket.toml` (and, upper-cased after
            /// `ROCKET_`, as an environment variable).
            pub const NAMES: &'static [&'static str] = &[$( stringify!($name) ),*];

            /// Runs each setting's own rule, in declaration order.
            fn check_each(&self) -> Result<(), ConfigError> {
                $( $( ($check)(stringify!($name), &self.$name)?; )? )*
                Ok(())
            }
        }
    };
}

settings! {
    /// `iss` of every token and the base of every URL in discovery.
    issuer: String = "http://127.0.0.1:8000".into(), check = http_url;
    /// `aud` of every access token.
    audience: String = "stamp".into(), check = not_blank;
    /// Algorithm of the primary signing key: `ES256` or `RS256`.
    signing_alg: String = "ES256".into();
    /// Modulus size for generated RSA keys: 2048, 3072 or 4096.
    rsa_bits: usize = 2048, check = one_of(&[2048, 3072, 4096], "2048, 3072 or 4096");
    /// Access-token lifetime in seconds. RFC 9068 tokens are meant to be short-lived; a day is a
    /// generous ceiling.
    access_token_ttl: i64 = 900, check = within(1..=86_400, SECONDS);
    /// Folder of the file key store.
    keys_dir: PathBuf = PathBuf::from("keys"), check = not_empty_path;
    /// `sqlite://PATH` (created if missing) or `postgres://…` (the scale-out deployment). Secret:
    /// it may carry a password.
    database_url: SecretString = SecretString::from("sqlite://stamp.db"), check = supported_database;
    /// Most connections each process holds to the database. PostgreSQL allows 100 in all by
    /// default: 10 per replica leaves room for eight replicas, their key-change listeners and
    /// the CLI. SQLite uses at most 8.
    database_max_connections: u32 = 10, check = within(1..=1_000, " connections");
    /// Seconds a request waits for a database connection; past it the request is answered `503`
    /// with `Retry-After`. During an outage this is the longest a caller waits.
    database_acquire_timeout: u64 = 2, check = within(1..=60, SECONDS);
    /// Where the signing keys live: `file` (`keys_dir`) or `database` (PostgreSQL only,
    /// encrypted under the key-encryption key).
    key_store: String = "file".into();
    /// Standard base64 of the 32-byte key-encryption key of `key_store = "database"`; normally
    /// given as `ROCKET_KEY_ENCRYPTION_KEY`.
    key_encryption_key: Option<SecretString> = None;
    /// A file holding that base64 text instead (e.g. a mounted secret).
    key_encryption_key_file: Option<PathBuf> = None;
    /// `Cache-Control: max-age` of the JWKS, in seconds.
    jwks_max_age: u64 = 300, check = within(0..=86_400, SECONDS);
    /// Scopes any user may ask for with the password grant (besides their own roles).
    user_scopes: Vec<String> = vec!["openid".into(), "profile".into(), "email".into()];
    /// `client_id` claim of tokens issued to first-party logins that name no client.
    default_client_id: String = "stamp".into();
    /// Upper bound of concurrent argon2 computations (0: the number of cores).
    password_concurrency: usize = 0;
    /// Fewest bytes in a new password (NIST SP 800-63B: at least 8).
    password_min_length: usize = 8, check = within(1..=1_024, " bytes");
    /// Most bytes in a new password; login refuses anything over 1024 bytes, so that is the
    /// ceiling.
    password_max_length: usize = 1_024, check = within(8..=1_024, " bytes");
    /// Lowest `zxcvbn` strength (0 to 4) of a new password: common, leaked and guessable
    /// passwords (and ones derived from the username) score low. 0 turns the check off.
    password_min_score: u8 = 3, check = within(0..=4, "");
    /// `POST /signup`: anyone may create an account (throttled per address like login).
    signup: bool = false;
    /// Login password checks that may wait for an argon2 permit; beyond them a login is answered
    /// `503` with `Retry-After` at once.
    password_queue: usize = 32, check = within(0..=100_000, " requests");
    /// Seconds a service client's record is cached for `client_credentials` (0: off).
    client_cache_ttl: u64 = 1, check = within(0..=60, SECONDS);
    /// Scheduled key rotation period in seconds; 0 (default) turns it off.
    rotate_every: i64 = 0, check = not_negative;
    /// Margin in seconds added to the JWKS max-age before a next key may sign, and to the token
    /// lifetime before a retired key is removed (clock skew, propagation to replicas).
    rotation_leeway: i64 = 60, check = within(0..=86_400, SECONDS);
    /// How often, in seconds, the background task checks the schedule, removes expired retired
    /// keys and picks up key-set changes made by other processes.
    key_poll_interval: u64 = 5, check = within(1..=3_600, SECONDS);
    /// Lifetime of one refresh token in seconds (each refresh issues a new one).
    refresh_token_ttl: i64 = 14 * 86_400, check = within(60..=366 * 86_400, SECONDS);
    /// Absolute lifetime of a login's refresh-token family in seconds: no refresh extends it.
    /// At least `refresh_token_ttl`, at most about three years.
    refresh_family_ttl: i64 = 90 * 86_400, check = within(60..=3 * 366 * 86_400, SECONDS);
    /// Seconds after a refresh token is spent during which presenting it once more is answered
    /// without revoking its family (racing tabs, retries). 0 (default) is strict reuse
    /// detection; a long window turns reuse detection off in practice, so a minute is the most.
    refresh_reuse_grace: i64 = 0, check = within(0..=60, SECONDS);
    /// Cookie mode for every `/login` (otherwise only when the request asks for it).
    cookie_mode: bool = false;
    /// The `Secure` cookie attribute. Turn off only for local development over plain HTTP.
    cookie_secure: bool = true;
    /// Failed logins per username or client address before they are throttled.
    login_throttle_failures: u32 = 5, check = within(1..=1_000, "");
    /// Longest `Retry-After` of the login throttle, in seconds.
    login_throttle_max_delay: i64 = 900, check = within(1..=86_400, SECONDS);
    /// Longest delay that failures from elsewhere impose on a login for the same username from
    /// an address with no recent failures and no device cookie, in seconds.
    login_throttle_fresh_max_delay: i64 = 60, check = within(1..=86_400, SECONDS);
    /// Most usernames and addresses the login throttle remembers (bounds its memory).
    login_throttle_capacity: usize = 10_000, check = within(16..=10_000_000, " entries");
    /// Client connections open at once; beyond them a new connection is answered `503` and
    /// closed (see docs/slow-clients.md).
    max_connections: usize = 1_024, check = within(1..=1_000_000, " connections");
    /// Seconds a client has to send a request's head (request line and headers), counted from
    /// the connection's start or the end of the previous response; its body must follow within
    /// as many seconds again (else `408`).
    header_read_timeout: u64 = 10, check = within(1..=300, SECONDS);
    /// This process's name in the audit log's key-set changes (which replica rotated): by
    /// default the host name (`HOSTNAME`, else `/etc/hostname`, else `stamp`).
    instance_name: String = host_name(), check = not_blank;
    /// How log lines are written: `text` (Rocket's lines, `key=value` fields) or `json` (one
    /// object per line, for log shippers). See `docs/logging.md`.
    log_format: LogFormat = LogFormat::Text;
}

/// Keys of Rocket's own configuration besides [`rocket::Config::PARAMETERS`]: the profile, the
/// `ROCKET_CONFIG` variable (which Rocket's figment also reads as a key), and the deprecated
/// names Rocket itself warns about.
const ROCKET_EXTRA_KEYS: &[&str] = &[
    "profile",
    "config",
    "env",
    "log",
    "read_timeout",
    "write_timeout",
];

/// Unit suffix of settings in seconds, for [`within`].
const SECONDS: &str = " seconds";

/// Settings after validation: the only form the rest of the crate sees. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct Config {
    /// `iss` of every token, without a trailing `/`.
    pub issuer: String,
    /// `aud` of every access token.
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: i64,
    /// Scopes any user may ask for with the password grant.
    pub user_scopes: Vec<String>,
    /// `client_id` claim for first-party logins that name no client.
    pub default_client_id: String,
    /// The store's database.
    pub database_url: DatabaseUrl,
    /// Its connection pool.
    pub database_pool: PoolSettings,
    /// `Cache-Control: max-age` of the JWKS and discovery, in seconds.
    pub jwks_max_age: u64,
    /// Concurrent argon2 computations (0 in the settings is resolved to the number of cores).
    pub password_concurrency: usize,
    /// Login password checks that may wait for an argon2 permit.
    pub password_queue: usize,
    /// What a new password must meet.
    pub password_policy: PasswordPolicy,
    /// Whether `POST /signup` is open.
    pub signup: bool,
    /// This process's name in the audit log's key-set changes.
    pub instance_name: String,
    /// Seconds a service client's record is cached (0: off).
    pub client_cache_ttl: u64,
    /// Signing keys: algorithm, store and lifecycle.
    pub keys: KeyConfig,
    /// Refresh-token lifetimes and reuse grace.
    pub refresh: RefreshPolicy,
    /// Login throttling.
    pub throttle: ThrottlePolicy,
    /// Session cookies.
    pub cookies: CookiePolicy,
    /// Bounds on client connections (`stamp serve`).
    pub connections: ConnectionLimits,
}

/// Everything about the signing keys.
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// Algorithm of the primary signing key.
    pub signing_alg: Alg,
    /// Where the keys live (with the parsed key-encryption key for the database store).
    pub store: KeyStoreKind,
    /// Folder of the file key store.
    pub dir: PathBuf,
    /// Timings of rotation and removal.
    pub lifecycle: Lifecycle,
    /// Seconds between background key upkeep rounds.
    pub poll_interval: u64,
}

/// Where the signing keys live.
#[derive(Clone, Debug)]
pub enum KeyStoreKind {
    /// The file key store in `keys_dir` (the embedded default).
    File,
    /// The PostgreSQL key store of `database_url`, private keys encrypted under `kek`.
    Database {
        /// The key-encryption key, parsed once at start.
        kek: Kek,
    },
}

impl KeyStoreKind {
    /// The key-encryption key (`None` for the file store).
    pub fn kek(&self) -> Option<&Kek> {
        match self {
            KeyStoreKind::File => None,
            KeyStoreKind::Database { kek } => Some(kek),
        }
    }
}

/// The session-cookie settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookiePolicy {
    /// Cookie mode for every `/login`, not only when the request asks.
    pub mode: bool,
    /// The `Secure` attribute.
    pub secure: bool,
}

/// A database URL. It may carry a password (`postgres://user:pw@host/db`, `?password=`), so it
/// is a secret: read it with [`ExposeSecret::expose_secret`]; its `Debug` shows the URL with
/// every password replaced by `***`.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(SecretString::from(url.into()))
    }

    /// Whether this names a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        crate::store::is_postgres(self.0.expose_secret())
    }

    /// The URL with the user-info password and any `password` query parameter replaced by
    /// `***`: safe to log.
    pub fn redacted(&self) -> String {
        redact_url(self.0.expose_secret())
    }
}

impl ExposeSecret<str> for DatabaseUrl {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

/// Why the settings cannot be used. Each variant prints as one line naming what to fix, and
/// never echoes a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `ROCKET_CONFIG` names a file that does not exist (Rocket would run on defaults).
    #[error("ROCKET_CONFIG names `{}`, which does not exist", path.display())]
    MissingConfigFile {
        /// The path as given.
        path: PathBuf,
    },
    /// A key that is neither one of our settings nor one of Rocket's: usually a misspelling.
    #[error(
        "unknown setting `{key}` (from {origin}){}",
        suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
    )]
    UnknownSetting {
        /// The key as the figment holds it (lower case).
        key: String,
        /// Where it came from, e.g. "environment variable `ROCKET_SIGNNG_ALG`".
        origin: String,
        /// The closest known name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A value of the wrong type or shape (e.g. text for a number). The source says what and
    /// where it came from.
    #[error("invalid setting `{setting}`")]
    Extract {
        /// The setting, or `configuration` when figment names none of ours.
        setting: &'static str,
        /// Figment's error.
        #[source]
        source: Box<rocket::figment::Error>,
    },
    /// One of Rocket's own settings (`port`, `address`, `limits`, …) that Rocket would refuse
    /// at launch: caught before the store or the key set is opened, so nothing is created.
    #[error("invalid setting `{setting}`")]
    RocketSetting {
        /// The setting's path (`port`, `limits.json`), as figment names it.
        setting: String,
        /// Figment's error.
        #[source]
        source: Box<rocket::figment::Error>,
    },
    /// A number outside the range the setting allows.
    #[error("invalid setting `{setting}`: {value} is out of range ({min} to {max}{unit})")]
    OutOfRange {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: i128,
        /// The smallest allowed value.
        min: i128,
        /// The largest allowed value.
        max: i128,
        /// The unit, with a leading space (or empty).
        unit: &'static str,
    },
    /// A value naming something this issuer does not support.
    #[error("invalid setting `{setting}`: `{value}` is not supported (use {supported})")]
    Unsupported {
        /// The setting.
        setting: &'static str,
        /// The value given (never a secret setting's).
        value: String,
        /// What may be used instead.
        supported: &'static str,
    },
    /// A value that breaks a rule, alone or together with other settings.
    #[error("invalid setting `{setting}`: {rule}")]
    Rule {
        /// The setting to change.
        setting: &'static str,
        /// The rule, in words.
        rule: &'static str,
    },
    /// The key-encryption key cannot be used.
    #[error("invalid setting `{setting}`: {source}")]
    Kek {
        /// `key_encryption_key` or `key_encryption_key_file`.
        setting: &'static str,
        /// What is wrong with it.
        #[source]
        source: KekError,
    },
    /// A file a setting names cannot be read.
    #[error("invalid setting `{setting}`: cannot read `{}`: {source}", path.display())]
    ReadFile {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The setting to fix, when one is to blame.
    pub fn setting(&self) -> Option<&str> {
        match self {
            ConfigError::MissingConfigFile { .. } => None,
            ConfigError::UnknownSetting { key, .. } => Some(key),
            ConfigError::RocketSetting { setting, .. } => Some(setting),
            ConfigError::Extract { setting, .. }
            | ConfigError::OutOfRange { setting, .. }
            | ConfigError::Unsupported { setting, .. }
            | ConfigError::Rule { setting, .. }
            | ConfigError::Kek { setting, .. }
            | ConfigError::ReadFile { setting, .. } => Some(setting),
        }
    }
}

/// The figment the server and the CLI both read: Rocket's defaults, then this issuer's safe
/// defaults for Rocket's own settings ([`secure_defaults`]), then `Rocket.toml` (or the file
/// `ROCKET_CONFIG` names) and `ROCKET_*` variables, as [`rocket::Config::figment`] layers them.
/// A deployment configured by environment variables only, without the shipped `Rocket.toml`,
/// thus gets the same safe behaviour.
pub fn figment() -> Figment {
    use rocket::figment::Profile;
    use rocket::figment::providers::{Env, Format, Toml};

    Figment::from(rocket::Config::default())
        .merge(secure_defaults())
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(Profile::from_env_or(
            "ROCKET_PROFILE",
            rocket::Config::DEFAULT_PROFILE,
        ))
}

/// Rocket settings whose own defaults are unsafe for this server, with the values the issuer
/// needs: the client address is the peer's (Rocket trusts `X-Real-IP` by default, which lets a
/// client choose the address the login throttle sees), no `Server: Rocket` header, 16 KiB
/// request bodies (Rocket accepts up to 1 MiB of JSON and 32 KiB forms), and the `normal` log
/// level in every profile (one line per request, see `logging.rs`; never `debug`, which would
/// log request data).
pub fn secure_defaults() -> impl rocket::figment::Provider {
    use rocket::figment::providers::Serialized;
    use rocket::serde::json::json;

    let limit = "16 KiB";
    Serialized::defaults(json!({
        "ip_header": false,
        "ident": false,
        "limits": {
            "form": limit,
            "json": limit,
            "data-form": limit,
            "string": limit,
            "bytes": limit,
            "file": limit,
        },
        "cookie_secure": true,
        "log_level": "normal",
    }))
}

impl Config {
    /// Checks the figment (config file, unknown keys), extracts and validates the settings; the
    /// first problem is reported by name.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
        check_config_file(figment)?;
        check_known_keys(figment)?;
        // Rocket's own settings, as Rocket will read them at launch (its defaults under them,
        // as `rocket::Config::figment` puts them).
        let rocket_view = figment.clone().join(rocket::Config::default());
        rocket::Config::try_from(rocket_view).map_err(|e| ConfigError::RocketSetting {
            setting: e.path.join("."),
            source: Box::new(e),
        })?;
        let raw: Settings = figment.extract().map_err(|e| {
            let setting = e
                .path
                .last()
                .and_then(|name| Settings::NAMES.iter().find(|known| *known == name))
                .copied()
                .unwrap_or("configuration");
            ConfigError::Extract {
                setting,
                source: Box::new(e),
            }
        })?;
        let mut config = raw.validate()?;
        if let Some(dir) = config_dir(figment) {
            config.resolve_paths(&dir);
        }
        Ok(config)
    }

    /// Makes the relative `keys_dir` and SQLite path relative to `dir`, the folder of the
    /// configuration file that was read. Rocket finds `Rocket.toml` in the current folder or any
    /// parent; resolving against the current folder instead would let a command run one folder
    /// lower or higher than the server use another database and key set without a word.
    fn resolve_paths(&mut self, dir: &Path) {
        if self.keys.dir.is_relative() {
            self.keys.dir = dir.join(&self.keys.dir);
        }
        if let Some(url) = resolve_sqlite_path(self.database_url.expose_secret(), dir) {
            self.database_url = DatabaseUrl(SecretString::from(url));
        }
    }
}

/// The configuration file `figment` read (`Rocket.toml`, or the file `ROCKET_CONFIG` names),
/// if it read one.
pub fn config_file(figment: &Figment) -> Option<PathBuf> {
    figment
        .metadata()
        .find_map(|metadata| match &metadata.source {
            Some(rocket::figment::Source::File(path)) => Some(path.clone()),
            _ => None,
        })
}

/// The folder of [`config_file`], absolute.
fn config_dir(figment: &Figment) -> Option<PathBuf> {
    std::path::absolute(config_file(figment)?.parent()?).ok()
}

/// `url` (`sqlite://PATH` or `sqlite:PATH`, perhaps with `?options`) with a relative `PATH`
/// joined to `dir`; `None` for absolute paths, in-memory databases and other databases.
fn resolve_sqlite_path(url: &str, dir: &Path) -> Option<String> {
    let path = crate::store::sqlite_path(url)?;
    if path.is_absolute() {
        return None;
    }
    let joined = dir.join(path);
    Some(match url.split_once('?') {
        Some((_, query)) => format!("sqlite://{}?{query}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    })
}

impl Settings {
    /// Checks every setting and parses them into their typed, grouped form.
    pub fn validate(self) -> Result<Config, ConfigError> {
        self.check_each()?;
        let signing_alg: Alg = self
            .signing_alg
            .parse()
            .map_err(|_| ConfigError::Unsupported {
                setting: "signing_alg",
                value: self.signing_alg.clone(),
                supported: "ES256 or RS256",
            })?;
        let store = self.key_store_kind()?;
        let jwks_max_age = i64::try_from(self.jwks_max_age).unwrap_or(i64::MAX);
        if self.rotate_every > 0 && self.rotate_every < jwks_max_age + self.rotation_leeway {
            return Err(ConfigError::Rule {
                setting: "rotate_every",
                rule: "must be at least jwks_max_age + rotation_leeway, so a next key is cached \
                       before it signs",
            });
        }
        // Replicas learn of a key another replica published within `key_poll_interval` at worst
        // (when a change notification was lost); the leeway must cover that, or a scheduled key
        // could sign on one replica before another replica's JWKS lists it.
        if matches!(store, KeyStoreKind::Database { .. })
            && self.rotate_every > 0
            && self.rotation_leeway < i64::try_from(self.key_poll_interval).unwrap_or(i64::MAX)
        {
            return Err(ConfigError::Rule {
                setting: "rotation_leeway",
                rule: "must be at least key_poll_interval with scheduled rotation on the database \
                       key store, so every replica lists a next key before any replica signs \
                       with it",
            });
        }
        if self.refresh_family_ttl < self.refresh_token_ttl {
            return Err(ConfigError::Rule {
                setting: "refresh_family_ttl",
                rule: "must be at least refresh_token_ttl",
            });
        }
        if self.password_min_length > self.password_max_length {
            return Err(ConfigError::Rule {
                setting: "password_min_length",
                rule: "must be at most password_max_length",
            });
        }
        let password_concurrency = match self.password_concurrency {
            // One argon2 computation per core: two on one core run slower per CPU-second and use
            // twice the memory (measured with bench/load.sh).
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Ok(Config {
            // Exactly as configured: `iss` is compared exactly (RFC 8414 §3.3, OpenID Connect
            // Discovery §4.3), so a trailing slash is part of the identifier.
            issuer: self.issuer,
            audience: self.audience,
            access_token_ttl: self.access_token_ttl,
            user_scopes: self.user_scopes,
            default_client_id: self.default_client_id,
            database_url: DatabaseUrl(self.database_url),
            database_pool: PoolSettings {
                max_connections: self.database_max_connections,
                acquire_timeout: std::time::Duration::from_secs(self.database_acquire_timeout),
            },
            jwks_max_age: self.jwks_max_age,
            password_concurrency,
            password_queue: self.password_queue,
            password_policy: PasswordPolicy {
                min_length: self.password_min_length,
                max_length: self.password_max_length,
                min_score: self.password_min_score,
            },
            signup: self.signup,
            instance_name: self.instance_name,
            client_cache_ttl: self.client_cache_ttl,
            keys: KeyConfig {
                signing_alg,
                store,
                dir: self.keys_dir,
                lifecycle: Lifecycle {
                    rsa_bits: self.rsa_bits,
                    jwks_max_age,
                    max_token_ttl: self.access_token_ttl,
                    leeway: self.rotation_leeway,
                    rotate_every: self.rotate_every,
                },
                poll_interval: self.key_poll_interval,
            },
            refresh: RefreshPolicy {
                ttl: self.refresh_token_ttl,
                family_ttl: self.refresh_family_ttl,
                reuse_grace: self.refresh_reuse_grace,
            },
            throttle: ThrottlePolicy {
                free_failures: self.login_throttle_failures,
                max_delay: self.login_throttle_max_delay,
                fresh_max_delay: self.login_throttle_fresh_max_delay,
                capacity: self.login_throttle_capacity,
            },
            cookies: CookiePolicy {
                mode: self.cookie_mode,
                secure: self.cookie_secure,
            },
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout),
            },
        })
    }

    /// `key_store` with its key-encryption key, read and parsed (never echoed in an error).
    fn key_store_kind(&self) -> Result<KeyStoreKind, ConfigError> {
        match self.key_store.as_str() {
            "file" => return Ok(KeyStoreKind::File),
            "database" => {}
            other => {
                return Err(ConfigError::Unsupported {
                    setting: "key_store",
                    value: other.to_string(),
                    supported: "\"file\" or \"database\"",
                });
            }
        }
        if !crate::store::is_postgres(self.database_url.expose_secret()) {
            return Err(ConfigError::Rule {
                setting: "key_store",
                rule: "`database` keeps the keys in PostgreSQL: it needs a postgres:// \
                       database_url, not SQLite (or use key_store = \"file\")",
            });
        }
        // An empty value (e.g. `ROCKET_KEY_ENCRYPTION_KEY_FILE=`) counts as not set.
        let text = self
            .key_encryption_key
            .as_ref()
            .filter(|k| !k.expose_secret().trim().is_empty());
        let file = self
            .key_encryption_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty());
        let kek = match (text, file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Rule {
                    setting: "key_encryption_key",
                    rule: "set either key_encryption_key or key_encryption_key_file, not both",
                });
            }
            (Some(text), None) => {
                Kek::from_base64(text.expose_secret()).map_err(|source| ConfigError::Kek {
                    setting: "key_encryption_key",
                    source,
                })?
            }
            (None, Some(path)) => read_kek_file(path)?,
            (None, None) => {
                return Err(ConfigError::Rule {
                    setting: "key_encryption_key",
                    rule: "is required with key_store = \"database\": set \
                           ROCKET_KEY_ENCRYPTION_KEY to the output of `openssl rand -base64 32`, \
                           or key_encryption_key_file",
                });
            }
        };
        Ok(KeyStoreKind::Database { kek })
    }
}

/// The key-encryption key from `key_encryption_key_file`; the text read is wiped.
fn read_kek_file(path: &Path) -> Result<Kek, ConfigError> {
    const SETTING: &str = "key_encryption_key_file";
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                setting: SETTING,
                path: path.to_path_buf(),
                source,
            })?,
        );
    Kek::from_base64(text.trim()).map_err(|source| ConfigError::Kek {
        setting: SETTING,
        source,
    })
}

/// Refuses a `ROCKET_CONFIG` (the figment's `config` key) that names no file. Rocket looks for a
/// relative path in the working directory and its ancestors, and so does this check.
fn check_config_file(figment: &Figment) -> Result<(), ConfigError> {
    let Ok(value) = figment.find_value("config") else {
        return Ok(());
    };
    let Some(text) = value.as_str() else {
        return Ok(());
    };
    let path = PathBuf::from(text);
    let found = if path.is_absolute() {
        path.exists()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.ancestors().any(|dir| dir.join(&path).exists()))
            .unwrap_or(false)
    };
    if found {
        return Ok(());
    }
    Err(ConfigError::MissingConfigFile { path })
}

/// Refuses the first key of the merged figment (the selected profile over `[default]` and
/// `[global]`) that neither we nor Rocket know.
fn check_known_keys(figment: &Figment) -> Result<(), ConfigError> {
    let values: Dict = figment.extract().map_err(|e| ConfigError::Extract {
        setting: "configuration",
        source: Box::new(e),
    })?;
    let unknown = values.keys().find(|key| !is_known(key));
    let Some(key) = unknown else {
        return Ok(());
    };
    Err(ConfigError::UnknownSetting {
        key: key.clone(),
        origin: origin(figment, key),
        suggestion: closest_name(key),
    })
}

/// Whether `key` is one of our settings or one of Rocket's.
fn is_known(key: &str) -> bool {
    known_names().any(|known| known == key)
}

/// Every key the figment may hold: ours, then Rocket's.
fn known_names() -> impl Iterator<Item = &'static str> {
    Settings::NAMES
        .iter()
        .chain(rocket::Config::PARAMETERS)
        .chain(ROCKET_EXTRA_KEYS)
        .copied()
}

/// Where `key` came from, in the operator's words: the environment variable's full name, or
/// the provider and its file.
fn origin(figment: &Figment, key: &str) -> String {
    let Some(metadata) = figment.find_metadata(key) else {
        return "the configuration".into();
    };
    let name = metadata.interpolate(figment.profile(), &[key]);
    // Figment's `Env` provider is named "`ROCKET_` environment variable(s)" and interpolates the
    // key without its prefix.
    if metadata.name.contains("environment variable") {
        let prefix = metadata.name.split('`').nth(1).unwrap_or_default();
        return format!("environment variable `{prefix}{name}`");
    }
    match &metadata.source {
        Some(source) => format!("{} `{source}`", metadata.name),
        None => metadata.name.to_string(),
    }
}

/// The known name closest to `key`, if it is at most a few edits away.
fn closest_name(key: &str) -> Option<&'static str> {
    known_names()
        .map(|known| (edit_distance(key, known), known))
        .filter(|(distance, known)| *distance <= 3 && *distance < known.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance between two short ASCII-ish strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A rule for a number setting: it lies in `range` (`unit` is shown after the bounds).
fn within<T>(
    range: RangeInclusive<T>,
    unit: &'static str,
) -> impl Fn(&'static str, &T) -> Result<(), ConfigError>
where
    T: PartialOrd + Copy + TryInto<i128>,
{
    move |setting, value| {
        if range.contains(value) {
            return Ok(());
        }
        Err(ConfigError::OutOfRange {
            setting,
            value: wide(*value),
            min: wide(*range.start()),
            max: wide(*range.end()),
            unit,
        })
    }
}

/// `value` as an `i128`, which holds every integer type used by settings.
fn wide<T: TryInto<i128>>(value: T) -> i128 {
    value.try_into().unwrap_or(i128::MAX)
}

/// A rule for a number setting: it is one of `allowed` (`supported` says so in words).
fn one_of<T>(
    allowed: &'static [T],
    supported: &'static str,
) -> impl Fn(&'static str, &T) -> Result<(), ConfigError>
where
    T: PartialEq + fmt::Display,
{
    move |setting, value| {
        if allowed.contains(value) {
            return Ok(());
        }
        Err(ConfigError::Unsupported {
            setting,
            value: value.to_string(),
            supported,
        })
    }
}

/// `issuer` must be an http(s) URL.
fn http_url(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        return Ok(());
    }
    Err(ConfigError::Rule {
        setting,
        rule: "must be an http(s) URL",
    })
}

/// A text setting that must say something.
/// The host's name: `HOSTNAME`, else `/etc/hostname`, else `stamp`.
fn host_name() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_file = || std::fs::read_to_string("/etc/hostname").ok();
    from_env
        .or_else(from_file)
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "stamp".into())
}

fn not_blank(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if !value.trim().is_empty() {
        return Ok(());
    }
    Err(ConfigError::Rule {
        setting,
        rule: "must not be empty",
    })
}

/// A period that is 0 (off) or a number of seconds.
fn not_negative(setting: &'static str, value: &i64) -> Result<(), ConfigError> {
    if *value >= 0 {
        return Ok(());
    }
    Err(ConfigError::Rule {
        setting,
        rule: "must be 0 (off) or a number of seconds",
    })
}

/// A path setting that must name something.
fn not_empty_path(setting: &'static str, value: &Path) -> Result<(), ConfigError> {
    if !value.as_os_str().is_empty() {
        return Ok(());
    }
    Err(ConfigError::Rule {
        setting,
        rule: "must not be empty",
    })
}

/// `database_url` must name SQLite or PostgreSQL (the URL is not echoed: it may hold a password).
fn supported_database(setting: &'static str, value: &SecretString) -> Result<(), ConfigError> {
    let url = value.expose_secret();
    if url.starts_with("sqlite:") || crate::store::is_postgres(url) {
        return Ok(());
    }
    Err(ConfigError::Rule {
        setting,
        rule: "is not supported (use sqlite://PATH or postgres://USER@HOST/DATABASE)",
    })
}

/// `url` with the password of its user info (`scheme://user:PASSWORD@host`) and the value of
/// every query parameter whose name contains `password` replaced by `***`.
fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_string(),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use rocket::figment::providers::Serialized;

    use super::*;

    const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn with(key: &str, value: impl serde::Serialize) -> Result<Config, ConfigError> {
        let figment = Figment::new().merge(Serialized::global(key, value));
        Config::from_figment(&figment)
    }

    #[test]
    fn relative_paths_resolve_against_the_folder_of_the_config_file() {
        use rocket::figment::providers::{Format, Toml};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Rocket.toml");
        std::fs::write(
            &file,
            "[default]\nkeys_dir = \"state/keys\"\ndatabase_url = \"sqlite://state/stamp.db?mode=rwc\"\n",
        )
        .unwrap();
        let figment = Figment::from(Toml::file(&file).nested());
        let config = Config::from_figment(&figment).unwrap();
        let base = std::path::absolute(dir.path()).unwrap();
        assert_eq!(config.keys.dir, base.join("state/keys"));
        assert_eq!(
            config.database_url.expose_secret(),
            format!(
                "sqlite://{}?mode=rwc",
                base.join("state/stamp.db").display()
            )
        );

        // Absolute paths stay; without a file, nothing is resolved.
        let absolute = figment.merge(Serialized::global("keys_dir", "/srv/keys"));
        assert_eq!(
            Config::from_figment(&absolute).unwrap().keys.dir,
            PathBuf::from("/srv/keys")
        );
        assert_eq!(
            with("audience", "x").unwrap().keys.dir,
            PathBuf::from("keys")
        );
        assert_eq!(resolve_sqlite_path("sqlite::memory:", &base), None);
        assert_eq!(resolve_sqlite_path("postgres://h/db", &base), None);
        assert_eq!(
            resolve_sqlite_path("sqlite:db.sqlite", Path::new("/etc/stamp")).as_deref(),
            Some("sqlite:///etc/stamp/db.sqlite")
        );
    }

    fn setting_of(result: Result<Config, ConfigError>) -> String {
        match result {
            Ok(_) => panic!("should have been refused"),
            Err(e) => e.setting().unwrap_or("none").to_string(),
        }
    }

    fn database_with(entries: &[(&str, serde_json::Value)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::new()
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

    #[test]
    fn defaults_are_valid() {
        let config = Settings::default().validate().unwrap();
        assert_eq!(config.keys.signing_alg, Alg::Es256);
        assert_eq!(config.access_token_ttl, 900);
        assert_eq!(config.keys.lifecycle.jwks_max_age, 300);
        assert!(matches!(config.keys.store, KeyStoreKind::File));
    }

    #[test]
    fn rockets_own_default_figment_is_accepted() {
        let figment = rocket::Config::figment().merge(Serialized::global("log_level", "off"));
        let keys: Dict = figment.extract().unwrap();
        assert!(keys.keys().all(|key| is_known(key)), "{keys:?}");
    }

    #[test]
    fn rocket_toml_repeats_the_declared_defaults() {
        use rocket::figment::providers::{Format, Toml};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Rocket.toml");
        let shipped: Settings = Figment::from(Toml::file(path).nested()).extract().unwrap();
        let declared = Settings::default();
        assert_eq!(format!("{shipped:?}"), format!("{declared:?}"));
        assert_eq!(
            shipped.database_url.expose_secret(),
            declared.database_url.expose_secret()
        );
    }

    #[test]
    fn every_setting_is_named_once() {
        let mut names = Settings::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Settings::NAMES.len());
        assert_eq!(Settings::NAMES.len(), 38);
        assert!(
            Settings::NAMES
                .iter()
                .all(|name| !rocket::Config::PARAMETERS.contains(name))
        );
    }

    #[test]
    fn a_leeway_below_the_poll_interval_is_refused_for_scheduled_replicas() {
        let scheduled = |leeway: i64| {
            database_with(&[
                ("key_encryption_key", KEK.into()),
                ("rotate_every", 86_400.into()),
                ("rotation_leeway", leeway.into()),
                ("key_poll_interval", 10.into()),
            ])
        };
        let err = scheduled(5).unwrap_err();
        assert_eq!(err.setting(), Some("rotation_leeway"));
        assert!(err.to_string().contains("key_poll_interval"), "{err}");
        assert!(scheduled(10).is_ok());
        // Without a schedule, or with one process on the file store, nothing contradicts.
        assert!(
            database_with(&[
                ("key_encryption_key", KEK.into()),
                ("rotation_leeway", 0.into()),
            ])
            .is_ok()
        );
    }

    #[test]
    fn the_database_pool_is_configurable_with_bounded_values() {
        let config = Settings::default().validate().unwrap();
        assert_eq!(config.database_pool, PoolSettings::default());
        assert_eq!(config.database_pool.max_connections, 10);
        assert_eq!(
            config.database_pool.acquire_timeout,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(
            setting_of(with("database_acquire_timeout", 0)),
            "database_acquire_timeout"
        );
        assert_eq!(
            setting_of(with("database_max_connections", 0)),
            "database_max_connections"
        );
        let tuned = with("database_max_connections", 4).unwrap();
        assert_eq!(tuned.database_pool.max_connections, 4);
    }

    #[test]
    fn rockets_unsafe_defaults_are_replaced_in_code() {
        let plain: rocket::Config = Figment::from(rocket::Config::default()).extract().unwrap();
        let ours: rocket::Config = Figment::from(rocket::Config::default())
            .merge(secure_defaults())
            .extract()
            .unwrap();
        assert!(
            plain.ip_header.is_some(),
            "Rocket trusts X-Real-IP by default"
        );
        assert!(ours.ip_header.is_none());
        assert!(ours.ident.as_str().is_none(), "no Server header");
        let limit = rocket::data::ByteUnit::Kibibyte(16);
        for name in ["form", "json", "data-form", "string", "bytes", "file"] {
            assert_eq!(ours.limits.get(name), Some(limit), "{name}");
        }
        assert!(
            ours.log_level != rocket::config::LogLevel::Debug,
            "debug logging is never a default"
        );
        // Release builds too log one line per request (Rocket's release default is `critical`).
        let release: rocket::Config = Figment::from(rocket::Config::release_default())
            .merge(secure_defaults())
            .extract()
            .unwrap();
        assert_eq!(release.log_level, rocket::config::LogLevel::Normal);
    }

    #[test]
    fn unknown_algorithm_names_the_setting() {
        let err = with("signing_alg", "HS256").unwrap_err();
        assert_eq!(err.setting(), Some("signing_alg"));
        assert!(err.to_string().contains("HS256"));
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        assert!(with("log_format", "json").is_ok());
        assert!(with("log_format", "text").is_ok());
        let err = with("log_format", "yaml").unwrap_err();
        assert_eq!(err.setting(), Some("log_format"));
        let shown = crate::error::error_chain(&err);
        assert!(shown.contains("yaml"), "{shown}");
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        assert_eq!(setting_of(with("rsa_bits", 1024)), "rsa_bits");
        assert!(with("rsa_bits", 3072).is_ok());
    }

    #[test]
    fn zero_ttl_is_refused() {
        let err = with("access_token_ttl", 0).unwrap_err();
        assert_eq!(err.setting(), Some("access_token_ttl"));
        assert!(
            err.to_string().contains("1 to 86400 seconds"),
            "the range is stated: {err}"
        );
    }

    #[test]
    fn session_settings_are_checked() {
        let config = Settings::default().validate().unwrap();
        assert_eq!(config.refresh.ttl, 14 * 86_400);
        assert_eq!(config.refresh.reuse_grace, 0);
        assert!(config.cookies.secure);
        assert!(!config.cookies.mode);
        assert_eq!(
            setting_of(with("refresh_token_ttl", 0)),
            "refresh_token_ttl"
        );
        assert_eq!(
            setting_of(with("refresh_family_ttl", 60)),
            "refresh_family_ttl"
        );
        assert_eq!(
            setting_of(with("refresh_reuse_grace", 3600)),
            "refresh_reuse_grace"
        );
        assert!(with("refresh_reuse_grace", 5).is_ok());
        assert_eq!(
            setting_of(with("login_throttle_capacity", 0)),
            "login_throttle_capacity"
        );
    }

    #[test]
    fn a_rotation_faster_than_the_jwks_cache_is_refused() {
        assert_eq!(setting_of(with("rotate_every", 100)), "rotate_every");
        assert_eq!(setting_of(with("rotate_every", -1)), "rotate_every");
        assert!(with("rotate_every", 3600).is_ok());
    }

    #[test]
    fn postgres_urls_are_accepted() {
        let config = with("database_url", "postgresql://stamp@db/stamp").unwrap();
        assert!(matches!(config.keys.store, KeyStoreKind::File));
        assert!(config.database_url.is_postgres());
        assert_eq!(
            setting_of(with("database_url", "mysql://x")),
            "database_url"
        );
    }

    #[test]
    fn an_unsupported_database_url_is_not_echoed() {
        let err = with("database_url", "mysql://u:hunter2@x/db").unwrap_err();
        assert_eq!(err.setting(), Some("database_url"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn database_key_store_needs_postgres_and_a_kek() {
        let config = database_with(&[("key_encryption_key", KEK.into())]).unwrap();
        assert!(config.keys.store.kek().is_some());
        let shown = format!("{config:?}");
        assert!(!shown.contains(KEK), "the KEK is never printed: {shown}");

        let sqlite = database_with(&[
            ("key_encryption_key", KEK.into()),
            ("database_url", "sqlite://stamp.db".into()),
        ]);
        assert_eq!(setting_of(sqlite), "key_store");

        assert_eq!(setting_of(database_with(&[])), "key_encryption_key");
        let short = database_with(&[("key_encryption_key", "AAECAwQFBgcICQoLDA0ODw==".into())])
            .unwrap_err();
        assert_eq!(short.setting(), Some("key_encryption_key"));
        assert!(short.to_string().contains("16 bytes"), "{short}");
        assert!(matches!(
            short,
            ConfigError::Kek {
                source: KekError::WrongLength { len: 16 },
                ..
            }
        ));
        let garbage = database_with(&[("key_encryption_key", "not base64!".into())]).unwrap_err();
        assert!(matches!(
            garbage,
            ConfigError::Kek {
                source: KekError::NotBase64(_),
                ..
            }
        ));
        assert_eq!(setting_of(with("key_store", "vault")), "key_store");
    }

    #[test]
    fn the_kek_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, format!("{KEK}\n")).unwrap();
        let config =
            database_with(&[("key_encryption_key_file", path.display().to_string().into())])
                .unwrap();
        assert!(config.keys.store.kek().is_some());
        let absent = database_with(&[(
            "key_encryption_key_file",
            dir.path().join("nope").display().to_string().into(),
        )])
        .unwrap_err();
        assert_eq!(absent.setting(), Some("key_encryption_key_file"));
        assert!(matches!(absent, ConfigError::ReadFile { .. }));
        let empty_file = database_with(&[
            ("key_encryption_key", KEK.into()),
            ("key_encryption_key_file", "".into()),
        ]);
        assert!(empty_file.is_ok(), "an empty setting counts as unset");
        let both = database_with(&[
            ("key_encryption_key", KEK.into()),
            ("key_encryption_key_file", path.display().to_string().into()),
        ]);
        assert_eq!(setting_of(both), "key_encryption_key");
    }

    #[test]
    fn settings_debug_hides_the_kek_and_the_database_url() {
        let settings = Settings {
            key_encryption_key: Some(SecretString::from(KEK)),
            database_url: SecretString::from("postgres://u:hunter2@h/db"),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains(KEK), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn config_debug_redacts_database_passwords() {
        let config = with(
            "database_url",
            "postgres://stamp:hunter2@db/stamp?sslmode=require&password=swordfish",
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("swordfish"), "{shown}");
        assert!(
            shown.contains("postgres://stamp:***@db/stamp?sslmode=require&password=***"),
            "the rest of the URL stays readable: {shown}"
        );
        assert_eq!(
            config.database_url.expose_secret(),
            "postgres://stamp:hunter2@db/stamp?sslmode=require&password=swordfish"
        );
    }

    #[test]
    fn urls_without_passwords_are_shown_as_they_are() {
        assert_eq!(redact_url("sqlite://stamp.db"), "sqlite://stamp.db");
        assert_eq!(
            redact_url("postgres://stamp@db/stamp"),
            "postgres://stamp@db/stamp"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@db/x"),
            "postgres://u:***@db/x"
        );
    }

    #[test]
    fn wrongly_typed_value_names_the_setting() {
        let err = with("rsa_bits", "lots").unwrap_err();
        assert_eq!(err.setting(), Some("rsa_bits"));
        assert!(matches!(err, ConfigError::Extract { .. }));
    }

    #[test]
    fn a_misspelled_setting_is_refused_with_a_suggestion() {
        let err = with("signng_alg", "RS256").unwrap_err();
        assert!(
            matches!(
                &err,
                ConfigError::UnknownSetting {
                    key,
                    suggestion: Some("signing_alg"),
                    ..
                } if key == "signng_alg"
            ),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(shown.contains("did you mean `signing_alg`?"), "{shown}");
    }

    #[test]
    fn rockets_own_settings_are_not_unknown() {
        for key in ["port", "address", "log_level", "limits", "ident", "profile"] {
            let figment = Figment::new().merge(Serialized::global(key, "x"));
            assert!(check_known_keys(&figment).is_ok(), "{key}");
        }
    }

    #[test]
    fn a_missing_config_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("Missing.toml");
        let err = with("config", missing.display().to_string()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::MissingConfigFile { path } if *path == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("ROCKET_CONFIG"), "{err}");

        let present = dir.path().join("Present.toml");
        std::fs::write(&present, "[default]\n").unwrap();
        assert!(with("config", present.display().to_string()).is_ok());
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("signing_alg", "signing_alg"), 0);
        assert_eq!(edit_distance("signng_alg", "signing_alg"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest_name("zzzzzzzzzzzz"), None);
    }
}
