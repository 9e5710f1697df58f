//! [`AdminService`]: performs each administrative change and writes its audit entry.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{
    AuthError, Authenticator, CONSOLE_CLIENT_ID, ClientSecret, Password, PasswordError,
    PasswordHasher,
};
use crate::clock::Clock;
use crate::keys::{Alg, ChangedBy, KeyError, KeyManager, KeySet, RotateOptions};
use crate::store::{
    AuditEvent, AuditFilter, AuditNote, AuditPage, Client, ClientChange, ClientId, Consent, Email,
    GrantType, NewClient, NewUser, RedirectUri, Role, Scope, Store, StoreError, User, UserChange,
    Username,
};

use super::actor::Actor;

/// What to do when a key-set change is committed but its audit entry cannot be written. (User
/// and client changes write their entry in the change's own transaction: both or neither.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFailure {
    /// Log it and report the change as done (the server: the caller's change is committed, and
    /// an error would invite a retry of something that already happened).
    Log,
    /// Report it as [`AdminError::Audit`] (the CLI: the operator sees it and the exit status
    /// says so).
    Fail,
}

/// Why an administrative action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No user has this name.
    #[error("no user {username}")]
    NoSuchUser { username: String },
    /// The published `next` key may not be promoted yet; `retry_after` seconds from now it may.
    #[error("{source}")]
    RotationTooEarly {
        retry_after: u64,
        #[source]
        source: KeyError,
    },
    /// Any other key-set failure (unknown kid, a concurrent change, storage).
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The user or client store failed, or a record exists already or is missing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new password could not be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The current password was wrong ([`AuthError::InvalidGrant`], counted as a failed
    /// login), or could not be checked now (throttled, hashing queue full).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The client is the built-in admin console ([`crate::auth::CONSOLE_CLIENT_ID`]): resolved
    /// in code, it cannot be changed, disabled, deleted or given a secret.
    #[error("client {id} is the built-in admin console and cannot be changed")]
    BuiltInClient { id: String },
    /// A public client has no secret to rotate.
    #[error("client {id} is public and has no secret")]
    PublicClient { id: String },
    /// A secret overlap longer than [`MAX_SECRET_OVERLAP`].
    #[error("the overlap may be at most {max} seconds")]
    OverlapTooLong { max: u64 },
    /// The change is committed but its audit entry could not be written
    /// ([`AuditFailure::Fail`] only).
    #[error("{action} was done, but writing its audit entry failed: {source}")]
    Audit {
        action: &'static str,
        #[source]
        source: StoreError,
    },
}

/// A user to create: name, roles (duplicates are dropped) and password.
pub struct NewAccount {
    pub username: Username,
    pub roles: Vec<Role>,
    pub password: Password,
}

/// A client to create: confidential (its secret is generated) or public (no secret).
pub struct NewServiceClient {
    pub id: ClientId,
    /// Scopes it may ask for (duplicates are dropped).
    pub scopes: Vec<Scope>,
    /// The algorithm its tokens are signed with; `None` for the configured one.
    pub alg: Option<Alg>,
    /// A public client (a browser or native app): no secret.
    pub public: bool,
    /// The grants it may use; empty for the defaults ([`GrantType::defaults`]).
    pub grants: Vec<GrantType>,
    /// Redirection URIs, for the authorization-code grant.
    pub redirect_uris: Vec<RedirectUri>,
    /// First-party (no consent screen; the default) or third-party.
    pub first_party: bool,
    /// Where RP-initiated logout may send the browser back.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
}

/// The longest a rotated-out client secret may stay valid: 7 days.
pub const MAX_SECRET_OVERLAP: u64 = 7 * 24 * 3600;

/// A change to a client: each `Some` replaces the current value (checked as at creation).
#[derive(Default)]
pub struct ClientUpdate {
    /// Scopes it may ask for (duplicates are dropped).
    pub scopes: Option<Vec<Scope>>,
    /// The grants it may use (duplicates are dropped; empty for the defaults).
    pub grants: Option<Vec<GrantType>>,
    /// Redirection URIs (duplicates are dropped).
    pub redirect_uris: Option<Vec<RedirectUri>>,
    /// Enable (`true`) or disable (`false`) it.
    pub enabled: Option<bool>,
    /// First-party (`true`) or third-party (`false`).
    pub first_party: Option<bool>,
    /// Post-logout redirection URIs (duplicates are dropped).
    pub post_logout_redirect_uris: Option<Vec<RedirectUri>>,
}

/// A password change by the account's owner: the user as the online check read them, the
/// password they say is current, and the new one (already checked against the policy).
pub struct PasswordChange {
    pub user: User,
    pub current: Password,
    pub new: Password,
    /// The caller's address, for login throttling.
    pub address: Option<IpAddr>,
}

/// A change of a user's roles and state; `None` leaves it as it is.
#[derive(Debug, Default)]
pub struct UserUpdate {
    /// The new roles (duplicates are dropped); empty for none.
    pub roles: Option<Vec<Role>>,
    /// Disable (`true`) or enable (`false`) the user.
    pub disabled: Option<bool>,
}

/// A user named by id (the HTTP API) or by name (the CLI).
#[derive(Clone, Copy, Debug)]
pub enum UserRef<'a> {
    Id(&'a str),
    Name(&'a Username),
}

/// Every admin action, audited once. The key set and the password hasher are passed to the
/// actions that need them, so the CLI's user and client commands neither open (and perhaps
/// create) the key set nor pay for a hasher.
pub struct AdminService {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Clock,
    audit_failure: AuditFailure,
}

impl AdminService {
    /// A service writing to `store`, reading the time from `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Clock, audit_failure: AuditFailure) -> AdminService {
        AdminService {
            store,
            clock,
            audit_failure,
        }
    }

    /// Creates a user with a hashed password (`users.add`).
    pub async fn create_user(
        &self,
        actor: &Actor,
        passwords: &PasswordHasher,
        account: NewAccount,
    ) -> Result<User, AdminError> {
        let password_hash = passwords.hash(account.password).await?;
        let user = NewUser {
            username: account.username,
            password_hash,
            roles: dedup(account.roles),
        };
        let now = self.clock.now();
        let note = AuditNote::new(actor, "users.add", now, |user: &User| {
            (
                Some(user.id.clone()),
                Some(format!("roles={}", user.roles.join(","))),
            )
        });
        Ok(self.store.create_user(user, now, Some(&note)).await?)
    }

    /// Someone signs up (`POST /signup`): a user without roles is created with a hashed
    /// password, audited as `users.signup` with the new user as actor.
    pub async fn sign_up(
        &self,
        passwords: &PasswordHasher,
        username: Username,
        password: Password,
    ) -> Result<User, AdminError> {
        let password_hash = passwords.hash(password).await?;
        let user = NewUser {
            username,
            password_hash,
            roles: Vec::new(),
        };
        let now = self.clock.now();
        // The actor is the new user, whose id the store assigns.
        let note = AuditNote::by_record(
            "users.signup",
            now,
            |user: &User| {
                Actor::User {
                    id: user.id.clone(),
                }
                .to_string()
            },
            |user| (Some(user.id.clone()), None),
        );
        let user = self.store.create_user(user, now, Some(&note)).await?;
        Ok(user)
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<User>, AdminError> {
        Ok(self.store.list_users().await?)
    }

    /// Disables a user: logins fail and every token version they hold is bumped
    /// (`users.disable`).
    pub async fn disable_user(
        &self,
        actor: &Actor,
        username: &Username,
    ) -> Result<User, AdminError> {
        let now = self.clock.now();
        let note = AuditNote::new(actor, "users.disable", now, version_detail);
        let name = username.as_str();
        Ok(self
            .store
            .set_disabled(name, true, now, Some(&note))
            .await?)
    }

    /// "Log out everywhere": bumps the user's token version, so every refresh token they hold
    /// stops working at once, and their access tokens fail every online check
    /// (`users.revoke_tokens`).
    pub async fn revoke_user_tokens(
        &self,
        actor: &Actor,
        user: UserRef<'_>,
    ) -> Result<User, AdminError> {
        let now = self.clock.now();
        let id = self.user_id(user).await?;
        let note = AuditNote::new(actor, "users.revoke_tokens", now, version_detail);
        Ok(self.store.revoke_user_tokens(&id, now, Some(&note)).await?)
    }

    /// The user `user` names.
    pub async fn user(&self, user: UserRef<'_>) -> Result<User, AdminError> {
        self.resolve(user).await
    }

    /// Up to `limit` users whose name starts with `prefix` (normalised as names are) and sorts
    /// after `after`, by username: one page of a listing.
    pub async fn list_users_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, AdminError> {
        let prefix = Username::normalise(prefix);
        Ok(self.store.list_users_page(&prefix, after, limit).await?)
    }

    /// Changes a user's roles and/or state, audited once: `users.roles` for roles alone,
    /// `users.disable` or `users.enable` for the state alone, `users.update` for both.
    /// Disabling bumps the token version (as [`AdminService::disable_user`]); enabling does not
    /// bring old tokens back.
    pub async fn update_user(
        &self,
        actor: &Actor,
        user: UserRef<'_>,
        update: UserUpdate,
    ) -> Result<User, AdminError> {
        let user = self.resolve(user).await?;
        let now = self.clock.now();
        let action = match (&update.roles, update.disabled) {
            (None, None) => return Ok(user),
            (Some(_), None) => "users.roles",
            (None, Some(true)) => "users.disable",
            (None, Some(false)) => "users.enable",
            (Some(_), Some(_)) => "users.update",
        };
        let change = UserChange {
            roles: update.roles.map(dedup),
            disabled: update.disabled,
        };
        let note = AuditNote::new(actor, action, now, |user: &User| {
            let detail = format!(
                "roles={} disabled={} token_version={}",
                user.roles.join(","),
                user.disabled,
                user.token_version
            );
            (Some(user.id.clone()), Some(detail))
        });
        Ok(self
            .store
            .update_user(&user.id, &change, now, Some(&note))
            .await?)
    }

    /// Sets or clears a user's e-mail address (`users.email`), which OpenID Connect userinfo
    /// returns with the `email` scope.
    pub async fn set_user_email(
        &self,
        actor: &Actor,
        user: UserRef<'_>,
        email: Option<Email>,
    ) -> Result<User, AdminError> {
        let id = self.user_id(user).await?;
        let now = self.clock.now();
        let note = AuditNote::new(actor, "users.email", now, |user: &User| {
            let detail = format!("set={}", user.email.is_some());
            (Some(user.id.clone()), Some(detail))
        });
        Ok(self
            .store
            .set_email(&id, email.as_ref(), now, Some(&note))
            .await?)
    }

    /// The third-party clients a user has consented to (OpenID Connect).
    pub async fn consents(&self, user: UserRef<'_>) -> Result<Vec<Consent>, AdminError> {
        let id = self.user_id(user).await?;
        Ok(self.store.list_consents(&id).await?)
    }

    /// Withdraws a user's consent to a client (`users.consent_revoke`), revoking the refresh
    /// tokens the user holds with it; [`StoreError::NotFound`] if there was none.
    pub async fn revoke_consent(
        &self,
        actor: &Actor,
        user: UserRef<'_>,
        client_id: &str,
    ) -> Result<(), AdminError> {
        let id = self.user_id(user).await?;
        let now = self.clock.now();
        let event = AuditEvent {
            at: now,
            actor: actor.to_string(),
            action: "users.consent_revoke".into(),
            target: Some(id.clone()),
            detail: Some(format!("client={client_id}")),
        };
        let withdrawn = self
            .store
            .revoke_consent(&id, client_id, now, Some(&event))
            .await?;
        if !withdrawn {
            return Err(StoreError::NotFound(format!("consent to client {client_id}")).into());
        }
        Ok(())
    }

    /// Deletes a user (`users.delete`): every refresh family they hold goes with them, and
    /// their access tokens fail every online check, which finds no such user.
    pub async fn delete_user(&self, actor: &Actor, user: UserRef<'_>) -> Result<User, AdminError> {
        let id = self.user_id(user).await?;
        let now = self.clock.now();
        let note = AuditNote::new(actor, "users.delete", now, |user: &User| {
            let detail = format!("username={}", user.username);
            (Some(user.id.clone()), Some(detail))
        });
        Ok(self.store.delete_user(&id, Some(&note)).await?)
    }

    /// A user changes their own password (`users.password_change`, the user as actor): the
    /// current password is confirmed first, throttled like a login
    /// ([`Authenticator::confirm_password`]); then the new one is hashed on the bounded pool
    /// and stored, which bumps the token version: every refresh token of the user dies and
    /// every access token issued before fails the online checks, the caller's own included.
    pub async fn change_own_password(
        &self,
        auth: &Authenticator,
        passwords: &PasswordHasher,
        change: PasswordChange,
    ) -> Result<User, AdminError> {
        let PasswordChange {
            user,
            current,
            new,
            address,
        } = change;
        auth.confirm_password(&user, current, address, self.clock.now())
            .await?;
        let password_hash = passwords.hash(new).await?;
        let now = self.clock.now();
        let actor = Actor::User {
            id: user.id.clone(),
        };
        let note = AuditNote::new(actor, "users.password_change", now, version_detail);
        Ok(self
            .store
            .set_password_hash(&user.id, &password_hash, now, Some(&note))
            .await?)
    }

    /// An administrator sets a user's password (`users.password_reset`): hashed on the bounded
    /// pool and stored with a token-version bump, so every session of the user ends as with
    /// [`AdminService::revoke_user_tokens`].
    pub async fn reset_password(
        &self,
        actor: &Actor,
        passwords: &PasswordHasher,
        user: UserRef<'_>,
        password: Password,
    ) -> Result<User, AdminError> {
        let id = self.user_id(user).await?;
        let password_hash = passwords.hash(password).await?;
        let now = self.clock.now();
        let note = AuditNote::new(actor, "users.password_reset", now, version_detail);
        Ok(self
            .store
            .set_password_hash(&id, &password_hash, now, Some(&note))
            .await?)
    }

    /// Creates a client (`clients.add`): a confidential one with a fresh secret, returned once
    /// (the store keeps only its hash), or a public one without (`None`). Keys for the client's
    /// algorithm are published first (no token request ever makes a key), or the client is not
    /// created.
    pub async fn add_client(
        &self,
        actor: &Actor,
        keys: &KeyManager,
        client: NewServiceClient,
    ) -> Result<(Client, Option<ClientSecret>), AdminError> {
        if client.id.as_str() == CONSOLE_CLIENT_ID {
            return Err(StoreError::Conflict(format!(
                "client {CONSOLE_CLIENT_ID} (the built-in admin console)"
            ))
            .into());
        }
        let secret = (!client.public).then(ClientSecret::generate);
        let now = self.clock.now();
        let grants = if client.grants.is_empty() {
            GrantType::defaults(client.public)
        } else {
            dedup(client.grants)
        };
        if let Some(alg) = client.alg {
            keys.publish_keys(&[alg], now).await?;
        }
        let new = NewClient {
            id: client.id,
            secret_hash: secret.as_ref().map(ClientSecret::hash),
            scopes: dedup(client.scopes),
            alg: client.alg,
            grants,
            redirect_uris: dedup(client.redirect_uris),
            first_party: client.first_party,
            post_logout_redirect_uris: dedup(client.post_logout_redirect_uris),
        };
        let note = AuditNote::new(actor, "clients.add", now, |client: &Client| {
            let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
            let detail = format!(
                "scopes={} public={} grants={} redirect_uris={} first_party={} \
                 post_logout_redirect_uris={}",
                client.scopes.join(" "),
                client.public,
                grants.join(" "),
                client.redirect_uris.join(" "),
                client.first_party,
                client.post_logout_redirect_uris.join(" ")
            );
            (Some(client.id.clone()), Some(detail))
        });
        let client = self.store.create_client(new, now, Some(&note)).await?;
        Ok((client, secret))
    }

    /// Every client.
    pub async fn list_clients(&self) -> Result<Vec<Client>, AdminError> {
        Ok(self.store.list_clients().await?)
    }

    /// Disables a client: it cannot authenticate from now on (`clients.disable`).
    pub async fn disable_client(&self, actor: &Actor, id: &str) -> Result<Client, AdminError> {
        changeable(id)?;
        let now = self.clock.now();
        let note = AuditNote::new(actor, "clients.disable", now, client_target);
        Ok(self
            .store
            .set_client_disabled(id, true, now, Some(&note))
            .await?)
    }

    /// The client with this id ([`StoreError::NotFound`] if none).
    pub async fn client(&self, id: &str) -> Result<Client, AdminError> {
        match self.store.client_by_id(id).await? {
            Some(client) => Ok(client),
            None => Err(StoreError::NotFound(format!("client {id}")).into()),
        }
    }

    /// Re-enables a client (`clients.enable`).
    pub async fn enable_client(&self, actor: &Actor, id: &str) -> Result<Client, AdminError> {
        changeable(id)?;
        let now = self.clock.now();
        let note = AuditNote::new(actor, "clients.enable", now, client_target);
        Ok(self
            .store
            .set_client_disabled(id, false, now, Some(&note))
            .await?)
    }

    /// Changes a client's scopes, grants, redirection URIs or state (`clients.update`, naming
    /// the fields changed).
    pub async fn update_client(
        &self,
        actor: &Actor,
        id: &str,
        update: ClientUpdate,
    ) -> Result<Client, AdminError> {
        changeable(id)?;
        let mut fields = Vec::new();
        let scopes = update.scopes.map(|scopes| {
            fields.push("scopes");
            dedup(scopes)
                .iter()
                .map(|s| s.as_str().to_string())
                .collect()
        });
        let grants = match update.grants {
            Some(grants) if grants.is_empty() => {
                fields.push("grants");
                Some(GrantType::defaults(self.client(id).await?.public))
            }
            Some(grants) => {
                fields.push("grants");
                Some(dedup(grants))
            }
            None => None,
        };
        let redirect_uris = update.redirect_uris.map(|uris| {
            fields.push("redirect_uris");
            dedup(uris).iter().map(|u| u.as_str().to_string()).collect()
        });
        if update.enabled.is_some() {
            fields.push("enabled");
        }
        if update.first_party.is_some() {
            fields.push("first_party");
        }
        let post_logout_redirect_uris = update.post_logout_redirect_uris.map(|uris| {
            fields.push("post_logout_redirect_uris");
            dedup(uris).iter().map(|u| u.as_str().to_string()).collect()
        });
        let change = ClientChange {
            scopes,
            grants,
            redirect_uris,
            disabled: update.enabled.map(|enabled| !enabled),
            first_party: update.first_party,
            post_logout_redirect_uris,
        };
        let now = self.clock.now();
        let detail = format!("fields={}", fields.join(","));
        let note = AuditNote::new(actor, "clients.update", now, |client: &Client| {
            (Some(client.id.clone()), Some(detail.clone()))
        });
        Ok(self
            .store
            .update_client(id, &change, now, Some(&note))
            .await?)
    }

    /// Deletes a client (`clients.delete`): its refresh-token families are revoked, and its
    /// own access tokens fail every online check, as its record is gone.
    pub async fn delete_client(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        changeable(id)?;
        let now = self.clock.now();
        let note = AuditNote::new(actor, "clients.delete", now, client_target);
        self.store.delete_client(id, now, Some(&note)).await?;
        Ok(())
    }

    /// Gives a confidential client a fresh secret, returned once (`clients.rotate_secret`).
    /// With `overlap` seconds (at most [`MAX_SECRET_OVERLAP`]) the old secret stays valid that
    /// long; without, it dies at once. A public client is [`AdminError::PublicClient`].
    pub async fn rotate_client_secret(
        &self,
        actor: &Actor,
        id: &str,
        overlap: Option<u64>,
    ) -> Result<(Client, ClientSecret), AdminError> {
        changeable(id)?;
        if overlap.is_some_and(|secs| secs > MAX_SECRET_OVERLAP) {
            return Err(AdminError::OverlapTooLong {
                max: MAX_SECRET_OVERLAP,
            });
        }
        let current = self.client(id).await?;
        let Some(old_hash) = current.secret_hash else {
            return Err(AdminError::PublicClient { id: id.to_string() });
        };
        let now = self.clock.now();
        let secs = overlap.unwrap_or(0);
        let previous = (secs > 0).then(|| (old_hash, now.saturating_add_unsigned(secs)));
        let secret = ClientSecret::generate();
        let note = AuditNote::new(actor, "clients.rotate_secret", now, |client: &Client| {
            (
                Some(client.id.clone()),
                Some(format!("overlap_secs={secs}")),
            )
        });
        let client = self
            .store
            .set_client_secret(id, &secret.hash(), previous, now, Some(&note))
            .await?;
        Ok((client, secret))
    }

    /// The current key set.
    pub fn list_keys(&self, keys: &KeyManager) -> Arc<KeySet> {
        keys.current()
    }

    /// Rotates `options.alg` (`keys.rotate`, naming the newly active key). A retried request
    /// with the same `idempotency_key` (by the same actor) does not rotate again.
    pub async fn rotate_keys(
        &self,
        actor: &Actor,
        keys: &KeyManager,
        options: RotateOptions,
        idempotency_key: Option<String>,
    ) -> Result<Arc<KeySet>, AdminError> {
        let now = self.clock.now();
        let by = ChangedBy {
            actor: actor.to_string(),
            idempotency_key,
        };
        let set = match keys.rotate_by(options, now, by).await {
            Ok(set) => set,
            Err(source @ KeyError::TooEarly { allowed_at, .. }) => {
                return Err(AdminError::RotationTooEarly {
                    retry_after: u64::try_from(allowed_at - now).unwrap_or(0).max(1),
                    source,
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.record_key_changes(&set, "keys.rotate").await?;
        Ok(set)
    }

    /// Emergency revocation of a key: unpublished at once (`keys.revoke`).
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        keys: &KeyManager,
        kid: &str,
    ) -> Result<Arc<KeySet>, AdminError> {
        let now = self.clock.now();
        let set = keys.revoke_by(kid, now, ChangedBy::actor(actor)).await?;
        self.record_key_changes(&set, "keys.revoke").await?;
        Ok(set)
    }

    /// Copies the key set's change records into the audit log (each once: the PostgreSQL key
    /// store has already written the newest in its commit; the upkeep job copies any a process
    /// left behind). The change is committed: a failure is handled as [`AuditFailure`] says.
    pub async fn record_key_changes(
        &self,
        set: &KeySet,
        action: &'static str,
    ) -> Result<(), AdminError> {
        let Err(source) = self.store.record_key_changes(&set.manifest().changes).await else {
            return Ok(());
        };
        log::error!("audit log write failed for {action}: {source}");
        match self.audit_failure {
            AuditFailure::Log => Ok(()),
            AuditFailure::Fail => Err(AdminError::Audit { action, source }),
        }
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, AdminError> {
        Ok(self.store.recent_audit(limit).await?)
    }

    /// Up to `limit` audit entries matching `filter`, newest first, older than the cursor
    /// `before`; the page says where the next one starts.
    pub async fn query_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<AuditPage, AdminError> {
        Ok(self.store.query_audit(filter, limit, before).await?)
    }

    /// The id of the user `user` names; an unknown name is [`AdminError::NoSuchUser`] (an
    /// unknown id is found missing by the store, as `not found`).
    async fn user_id(&self, user: UserRef<'_>) -> Result<String, AdminError> {
        match user {
            UserRef::Id(id) => Ok(id.to_string()),
            UserRef::Name(name) => match self.store.user_by_username(name.as_str()).await? {
                Some(user) => Ok(user.id),
                None => Err(AdminError::NoSuchUser {
                    username: name.as_str().to_string(),
                }),
            },
        }
    }

    /// The user `user` names; an unknown name is [`AdminError::NoSuchUser`], an unknown id a
    /// store `not found`.
    async fn resolve(&self, user: UserRef<'_>) -> Result<User, AdminError> {
        let found = match user {
            UserRef::Id(id) => self.store.user_by_id(id).await?,
            UserRef::Name(name) => self.store.user_by_username(name.as_str()).await?,
        };
        found.ok_or_else(|| match user {
            UserRef::Id(id) => StoreError::NotFound(format!("user {id}")).into(),
            UserRef::Name(name) => AdminError::NoSuchUser {
                username: name.as_str().to_string(),
            },
        })
    }
}

/// An entry naming the user, with the token version the change left.
fn version_detail(user: &User) -> (Option<String>, Option<String>) {
    let detail = format!("token_version={}", user.token_version);
    (Some(user.id.clone()), Some(detail))
}

/// An entry naming the client.
/// Refuses changes to the built-in console client ([`AdminError::BuiltInClient`]).
fn changeable(id: &str) -> Result<(), AdminError> {
    if id == CONSOLE_CLIENT_ID {
        return Err(AdminError::BuiltInClient { id: id.to_string() });
    }
    Ok(())
}

fn client_target(client: &Client) -> (Option<String>, Option<String>) {
    (Some(client.id.clone()), None)
}

/// Keeps the first of each value, in order.
pub(super) fn dedup<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(values.len());
    for value in values {
        if !kept.contains(&value) {
            kept.push(value);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{FileKeyStore, Lifecycle};
    use crate::store::SqliteStore;

    const START: i64 = 1_700_000_000;

    struct Fixture {
        _dir: tempfile::TempDir,
        clock: Clock,
        admin: AdminService,
        keys: KeyManager,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("stamp.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let key_store = Arc::new(FileKeyStore::open(dir.path().join("keys")).unwrap());
        let lifecycle = Lifecycle {
            rsa_bits: 2048,
            jwks_max_age: 300,
            max_token_ttl: 900,
            leeway: 60,
            rotate_every: 0,
        };
        let keys = KeyManager::open(key_store, Alg::Es256, lifecycle, START)
            .await
            .unwrap();
        let clock = Clock::manual(START);
        let admin = AdminService::new(store, clock.clone(), AuditFailure::Fail);
        Fixture {
            _dir: dir,
            clock,
            admin,
            keys,
        }
    }

    #[tokio::test]
    async fn every_change_is_audited_once_with_its_actor_and_time() {
        let f = fixture().await;
        let cli = Actor::Cli;
        let alice = f
            .admin
            .create_user(
                &cli,
                &PasswordHasher::new(1).await.unwrap(),
                NewAccount {
                    username: Username::parse("alice").unwrap(),
                    roles: vec![Role::parse("ops").unwrap(), Role::parse("ops").unwrap()],
                    password: Password::new_checked("a long password".into()).unwrap(),
                },
            )
            .await
            .unwrap();
        assert_eq!(alice.roles, ["ops"], "duplicate roles are dropped");
        f.clock.advance(10);
        let root = Actor::User { id: "u1".into() };
        f.admin
            .revoke_user_tokens(&root, UserRef::Id(&alice.id))
            .await
            .unwrap();
        let name = Username::parse("alice").unwrap();
        f.admin.disable_user(&cli, &name).await.unwrap();
        let (client, secret) = f
            .admin
            .add_client(
                &cli,
                &f.keys,
                NewServiceClient {
                    id: ClientId::parse("cron").unwrap(),
                    scopes: vec![Scope::parse("admin").unwrap()],
                    alg: None,
                    public: false,
                    grants: Vec::new(),
                    redirect_uris: Vec::new(),
                    first_party: true,
                    post_logout_redirect_uris: Vec::new(),
                },
            )
            .await
            .unwrap();
        assert_eq!(client.secret_hash, secret.map(|s| s.hash()));
        assert_eq!(
            client.grants,
            [GrantType::ClientCredentials],
            "the default for services"
        );
        let cron = Actor::Client { id: "cron".into() };
        f.admin.disable_client(&cron, "cron").await.unwrap();
        let options = RotateOptions {
            alg: Alg::Es256,
            force: true,
        };
        let set = f
            .admin
            .rotate_keys(&cron, &f.keys, options, None)
            .await
            .unwrap();
        let active = set.active(Alg::Es256).unwrap().meta.kid.clone();
        let retired = f
            .admin
            .list_keys(&f.keys)
            .manifest()
            .keys
            .iter()
            .find(|k| k.kid != active && k.state.is_published())
            .map(|k| k.kid.clone())
            .unwrap();
        f.admin.revoke_key(&cli, &f.keys, &retired).await.unwrap();

        let mut log = f.admin.recent_audit(100).await.unwrap();
        log.reverse();
        let seen: Vec<(&str, String, i64)> = log
            .iter()
            .map(|e| (e.action.as_str(), e.actor.clone(), e.at))
            .collect();
        assert_eq!(
            seen,
            [
                ("users.add", "cli".to_string(), START),
                ("users.revoke_tokens", "user:u1".into(), START + 10),
                ("users.disable", "cli".into(), START + 10),
                ("clients.add", "cli".into(), START + 10),
                ("clients.disable", "client:cron".into(), START + 10),
                // The key set's publication at start-up, copied with the first key change.
                ("keys.publish", "system".into(), START),
                ("keys.rotate", "client:cron".into(), START + 10),
                ("keys.revoke", "cli".into(), START + 10),
            ]
        );
        assert_eq!(log[1].detail.as_deref(), Some("token_version=1"));
        assert_eq!(log[6].target.as_deref(), Some(active.as_str()));
        let detail = log[6].detail.as_deref().unwrap();
        assert!(detail.starts_with("alg=ES256 force=true next="), "{detail}");
        assert!(detail.ends_with(" instance=stamp generation=2"), "{detail}");
        assert_eq!(log[7].target.as_deref(), Some(retired.as_str()));
    }

    #[tokio::test]
    async fn an_early_rotation_says_how_long_to_wait_and_is_not_audited() {
        let f = fixture().await;
        f.clock.advance(100);
        let options = RotateOptions {
            alg: Alg::Es256,
            force: false,
        };
        let Err(err) = f
            .admin
            .rotate_keys(&Actor::Cli, &f.keys, options, None)
            .await
        else {
            panic!("a rotation right after start is too early");
        };
        let AdminError::RotationTooEarly {
            retry_after,
            source: KeyError::TooEarly { allowed_at, .. },
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!(
            retry_after,
            u64::try_from(allowed_at - START - 100).unwrap()
        );
        assert!(f.admin.recent_audit(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn revoking_the_tokens_of_an_unknown_name_names_it() {
        let f = fixture().await;
        let nobody = Username::parse("nobody").unwrap();
        let err = f
            .admin
            .revoke_user_tokens(&Actor::Cli, UserRef::Name(&nobody))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no user nobody");
    }

    #[tokio::test]
    async fn resetting_the_password_of_an_unknown_name_names_it_and_audits_nothing() {
        let f = fixture().await;
        let nobody = Username::parse("nobody").unwrap();
        let err = f
            .admin
            .reset_password(
                &Actor::Cli,
                &PasswordHasher::new(1).await.unwrap(),
                UserRef::Name(&nobody),
                Password::new_checked("a long password".into()).unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no user nobody");
        assert!(f.admin.recent_audit(10).await.unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_dropped_and_order_is_kept() {
        assert_eq!(
            dedup(vec!["ops", "admin", "ops", "x", "admin"]),
            ["ops", "admin", "x"]
        );
        assert!(dedup(Vec::<u8>::new()).is_empty());
    }
}
