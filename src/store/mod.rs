//! Persistent state: users, refresh-token families and the access-token denylist, service
//! clients, registered APIs (audiences), and the audit log. One trait per concern
//! ([`UserStore`], [`SessionStore`], [`ClientStore`], [`ApiStore`], [`AuditStore`],
//! [`HealthCheck`]), gathered in [`Store`], which the app holds as
//! `Arc<dyn Store>`. Both backends are one implementation, [`SqlStore`] (see `sql.rs`), with the
//! SQL that must differ in a [`Dialect`] per database.

mod apis;
mod error;
mod oidc;
mod postgres;
mod sessions;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

pub use apis::{Api, ApiChange, ApiName, ApiStore, NewApi, ResourceId};
use error::insert_error;
pub use error::{StoreError, is_unavailable};
pub use oidc::{
    AuthCode, BrowserSession, Consent, OidcStore, PendingRequest, RedeemOutcome, Redemption,
};
pub use postgres::{PgStore, redact as redact_url};
pub use sessions::{
    Client, ClientId, Family, GrantType, NewClient, NewRefreshToken, RedirectUri, RefreshOutcome,
    RefreshRecord, Scope, split_scope,
};
pub use sql::{Dialect, SqlStore};
pub use sqlite::SqliteStore;

use crate::keys::ChangeRecord;
use crate::tokens::refresh::{RefreshPolicy, TokenHash};

/// A user as stored. `password_hash` is an argon2id PHC string.
#[derive(Clone, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub token_version: i64,
    pub created_at: i64,
    /// An e-mail address for OpenID Connect's `email` scope, if an administrator set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A user to create.
pub struct NewUser {
    pub username: Username,
    pub password_hash: String,
    pub roles: Vec<Role>,
}

/// A checked username: 1 to 64 characters of `a-z 0-9 . _ @ + -` after normalisation (Unicode
/// NFKC, then lower case), so that `Alice`, `ALICE` and the fullwidth `ａｌｉｃｅ` are one account
/// on every backend. The one entry point for names: login, sign-up, the CLI and the admin API.
/// Stored names were always ASCII lower case, which this normalisation leaves unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, String> {
        let name = Username::normalise(raw);
        if name.is_empty() || name.len() > 64 {
            return Err("a username has 1 to 64 characters".into());
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
        {
            return Err("a username may contain only letters, digits and . _ @ + -".into());
        }
        Ok(Username(name))
    }

    /// `raw` normalised as names are, unchecked: for a prefix to search by.
    pub fn normalise(raw: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let name = raw.trim().nfkc().collect::<String>().to_lowercase();
        name.trim().to_string()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked e-mail address: at most 254 characters, one `@` with something on both sides, no
/// spaces or control characters. Only its shape is checked; nobody proves they own it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let email = raw.trim();
        let shaped = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !shaped {
            return Err(format!("invalid e-mail address {email:?}"));
        }
        Ok(Email(email.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked role name: 1 to 64 characters of `a-z 0-9 . _ : -`. Roles end up in tokens and in
/// `scope`, so they are kept to characters that need no escaping anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role(String);

impl Role {
    pub fn parse(raw: &str) -> Result<Role, String> {
        let role = raw.trim();
        if role.is_empty()
            || role.len() > 64
            || !role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:-".contains(&b))
        {
            return Err(format!(
                "invalid role {role:?}: use 1 to 64 of a-z 0-9 . _ : -"
            ));
        }
        Ok(Role(role.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One administrative action, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Unix seconds.
    pub at: i64,
    /// Who: `user:<id>` or `client:<id>` (from the admin token), or `cli`.
    pub actor: String,
    /// What: `keys.rotate`, `keys.revoke`, …
    pub action: String,
    /// To what: a kid, a user id.
    pub target: Option<String>,
    /// Anything else worth keeping (never secrets).
    pub detail: Option<String>,
}

/// The audit entry a change writes in the change's own transaction, so that a change is never
/// committed without its entry (nor an entry without its change): who and what, with the target
/// and detail read from the changed record.
pub struct AuditNote<'a, T> {
    /// Unix seconds.
    pub at: i64,
    /// What (see [`AuditEvent::action`]).
    pub action: &'static str,
    /// Who (see [`AuditEvent::actor`]): given, or read from the changed record.
    actor: NoteActor<'a, T>,
    /// The entry's target and detail, from the record as changed.
    describe: Box<Describe<'a, T>>,
}

/// How an [`AuditNote`] reads the target and detail of its entry from the changed record.
type Describe<'a, T> = dyn Fn(&T) -> (Option<String>, Option<String>) + Send + Sync + 'a;

/// Who an [`AuditNote`] names as the actor.
enum NoteActor<'a, T> {
    Given(String),
    /// Read from the record: a new user who signs up is the actor of their own creation, and
    /// their id is known only once the record is written.
    Record(Box<dyn Fn(&T) -> String + Send + Sync + 'a>),
}

impl<'a, T> AuditNote<'a, T> {
    /// A note of `action` by `actor` at `at`; `describe` gives the entry's target and detail
    /// from the changed record.
    pub fn new(
        actor: impl std::fmt::Display,
        action: &'static str,
        at: i64,
        describe: impl Fn(&T) -> (Option<String>, Option<String>) + Send + Sync + 'a,
    ) -> AuditNote<'a, T> {
        AuditNote {
            at,
            action,
            actor: NoteActor::Given(actor.to_string()),
            describe: Box::new(describe),
        }
    }

    /// A note of `action` at `at` whose actor, like its target and detail, is read from the
    /// changed record.
    pub fn by_record(
        action: &'static str,
        at: i64,
        actor: impl Fn(&T) -> String + Send + Sync + 'a,
        describe: impl Fn(&T) -> (Option<String>, Option<String>) + Send + Sync + 'a,
    ) -> AuditNote<'a, T> {
        AuditNote {
            at,
            action,
            actor: NoteActor::Record(Box::new(actor)),
            describe: Box::new(describe),
        }
    }

    /// The entry for `record`, the record as changed.
    pub fn event(&self, record: &T) -> AuditEvent {
        let (target, detail) = (self.describe)(record);
        let actor = match &self.actor {
            NoteActor::Given(actor) => actor.clone(),
            NoteActor::Record(actor) => actor(record),
        };
        AuditEvent {
            at: self.at,
            actor,
            action: self.action.into(),
            target,
            detail,
        }
    }
}

/// The audit entry of a change, or `None` for a change made without one (tests, and tools that
/// are not administrative actions).
pub type Audit<'n, 'a, T> = Option<&'n AuditNote<'a, T>>;

/// Which audit events [`AuditStore::query_audit`] returns; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this actor (`cli`, `user:<id>`, `client:<id>`).
    pub actor: Option<String>,
    /// Exactly this action (`users.add`, `keys.rotate`, …).
    pub action: Option<String>,
    /// Exactly this target (a kid, a user id, a client id).
    pub subject: Option<String>,
    /// Events at or after this unix second.
    pub since: Option<i64>,
    /// Events before this unix second.
    pub until: Option<i64>,
}

/// One page of audit events, newest first, and the cursor of the next (older) page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    /// At most `limit` events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` to get the next page; `None` when this page is the last.
    pub next: Option<i64>,
}

/// Everything the issuer needs from its database: each concern's trait, for one value that the
/// app shares as `Arc<dyn Store>`. Implemented for every type that implements them all.
pub trait Store:
    UserStore + SessionStore + ClientStore + AuditStore + HealthCheck + OidcStore + ApiStore
{
}

impl<T> Store for T where
    T: UserStore + SessionStore + ClientStore + AuditStore + HealthCheck + OidcStore + ApiStore
{
}

/// Users of the password grant and their token versions.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user (token version 0); [`StoreError::Conflict`] if the name is taken.
    async fn create_user(
        &self,
        user: NewUser,
        now: i64,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
    /// The user with this (normalised) username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Every user, by username in byte order.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Disables (or re-enables) a user; disabling also bumps the token version.
    async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: i64,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// Up to `limit` users whose name starts with `prefix` and sorts after `after` (byte order),
    /// by username.
    async fn list_users_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError>;
    /// Changes what is `Some` in `change` for the user with this id, in one transaction
    /// ([`StoreError::NotFound`] if there is none).
    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange,
        now: i64,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
    /// Deletes the user with this id, with every refresh family (and token) they hold; returns
    /// the deleted user.
    async fn delete_user(
        &self,
        user_id: &str,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
    /// "Log out everywhere": increments the user's token version, so every refresh token the
    /// user holds stops working at once.
    async fn revoke_user_tokens(
        &self,
        user_id: &str,
        now: i64,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
    /// Sets (or, with `None`, clears) the user's e-mail address.
    async fn set_email(
        &self,
        user_id: &str,
        email: Option<&Email>,
        now: i64,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
    /// Replaces the password hash; also bumps the token version (a password change ends every
    /// session).
    async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: &str,
        now: i64,
        audit: Audit<'_, '_, User>,
    ) -> Result<User, StoreError>;
}

/// Sessions: refresh-token families and their rotation, and the access-token denylist.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new family (one login) with its first refresh token, atomically.
    async fn create_refresh_family(
        &self,
        family: &Family,
        first: &NewRefreshToken,
    ) -> Result<(), StoreError>;
    /// Presents a refresh token: judges it with [`crate::tokens::refresh::judge`] and applies
    /// the verdict in one transaction. Of two concurrent calls with the same token, exactly one
    /// spends it; the database decides (a conditional update checked by its row count).
    async fn refresh(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        policy: &RefreshPolicy,
        now: i64,
    ) -> Result<RefreshOutcome, StoreError>;
    /// A stored refresh token with its family and owner state, for introspection.
    async fn refresh_record(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>, StoreError>;
    /// Revokes the family `hash` belongs to (logout, RFC 7009). Returns the family, if the token
    /// is known; revoking a revoked family is not an error.
    async fn revoke_family_of(
        &self,
        hash: &TokenHash,
        reason: &str,
        now: i64,
    ) -> Result<Option<Family>, StoreError>;
    /// Denylists an access token's `jti` until `expires_at`; prunes expired entries.
    async fn deny_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Deletes what can no longer matter at `now`: expired refresh tokens, families past their
    /// absolute lifetime (with their tokens), and expired denylist entries. Returns the number of
    /// rows removed.
    async fn prune_expired(&self, now: i64) -> Result<u64, StoreError>;
    /// Whether `jti` is on the denylist.
    async fn is_access_token_denied(&self, jti: &str) -> Result<bool, StoreError>;
}

/// Registered clients: confidential service clients and public apps.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    /// Stores a new client; [`StoreError::Conflict`] if the id is taken.
    async fn create_client(
        &self,
        client: NewClient,
        now: i64,
        audit: Audit<'_, '_, Client>,
    ) -> Result<Client, StoreError>;
    /// The client with this id.
    async fn client_by_id(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// Every client, by id in byte order.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Disables (or re-enables) a client.
    async fn set_client_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
        audit: Audit<'_, '_, Client>,
    ) -> Result<Client, StoreError>;
    /// Changes what is `Some` in `change` ([`StoreError::NotFound`] if no such client).
    async fn update_client(
        &self,
        id: &str,
        change: &ClientChange,
        now: i64,
        audit: Audit<'_, '_, Client>,
    ) -> Result<Client, StoreError>;
    /// Replaces the secret hash; `previous` keeps the old secret valid until the given time.
    /// [`StoreError::NotFound`] if no confidential client has this id.
    async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &TokenHash,
        previous: Option<(TokenHash, i64)>,
        now: i64,
        audit: Audit<'_, '_, Client>,
    ) -> Result<Client, StoreError>;
    /// Deletes a client and revokes its refresh-token families in one transaction
    /// ([`StoreError::NotFound`] if no such client).
    async fn delete_client(
        &self,
        id: &str,
        now: i64,
        audit: Audit<'_, '_, Client>,
    ) -> Result<Client, StoreError>;
}

/// A change to a user's record: each `Some` replaces the stored value. Disabling bumps the
/// token version; enabling does not bring old tokens back.
#[derive(Clone, Debug, Default)]
pub struct UserChange {
    pub roles: Option<Vec<Role>>,
    pub disabled: Option<bool>,
}

/// A change to a client's record: each `Some` replaces the stored value.
#[derive(Clone, Debug, Default)]
pub struct ClientChange {
    pub scopes: Option<Vec<String>>,
    pub grants: Option<Vec<GrantType>>,
    pub redirect_uris: Option<Vec<String>>,
    pub disabled: Option<bool>,
    pub first_party: Option<bool>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
}

/// The append-only log of administrative actions.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the audit log.
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Copies key-set change records (from the key manifest) into the audit log, each at most
    /// once however often it is offered (by its id); returns how many were new.
    async fn record_key_changes(&self, changes: &[ChangeRecord]) -> Result<u64, StoreError>;
    /// The newest `limit` audit entries, newest first.
    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
    /// Up to `limit` audit entries matching `filter`, newest first, older than the cursor
    /// `before` (from a previous page's [`AuditPage::next`]) when given.
    async fn query_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<AuditPage, StoreError>;
}

/// Readiness of the database.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `database_url` (`sqlite://PATH`, `postgres://…`), creating and
/// migrating it as needed, with the default pool settings.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(database_url, &PoolSettings::default()).await
}

/// [`open`] with the pool settings `pool` (the `database_*` settings).
pub async fn open_with(
    database_url: &str,
    pool: &PoolSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::open_with(database_url, pool).await?));
    }
    if is_postgres(database_url) {
        return Ok(Arc::new(PgStore::open_with(database_url, pool).await?));
    }
    Err(StoreError::UnsupportedDatabase {
        url: postgres::redact(database_url),
    })
}

/// The connection pool of a store: how many connections it may hold, and how long a request
/// waits for one before it is answered `503` (during an outage, this wait is what callers see).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections per process (PostgreSQL allows 100 by default for everyone).
    pub max_connections: u32,
    /// Longest wait for a connection.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    /// The `database_max_connections` and `database_acquire_timeout` defaults.
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(2),
        }
    }
}

/// Whether `database_url` names a PostgreSQL database.
/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL, without its `?options`; `None` for
/// other databases and in-memory ones.
pub fn sqlite_path(database_url: &str) -> Option<std::path::PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (!path.is_empty() && !path.starts_with(':')).then(|| path.into())
}

pub fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// A new random identifier: 128 bits, base64url.
pub fn random_id() -> String {
    use base64::Engine;
    use rand::Rng;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("robert'); drop table users;--").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
        assert_eq!(Username::parse("ALICE").unwrap().as_str(), "alice");
        assert_eq!(Username::parse("ａｌｉｃｅ").unwrap().as_str(), "alice");
        assert!(
            Username::parse("ålice").is_err(),
            "only ASCII after normalisation"
        );
    }

    #[test]
    fn email_addresses_are_shaped_like_addresses() {
        assert_eq!(
            Email::parse(" a@b.example ").unwrap().as_str(),
            "a@b.example"
        );
        for bad in ["", "a", "@b", "a@", "a b@c", "a@b@c", "a@b\u{7}"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_are_checked() {
        assert!(Role::parse("admin").is_ok());
        assert!(Role::parse("Admin").is_err());
        assert!(Role::parse("a b").is_err());
    }
}
