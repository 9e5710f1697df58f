//! The password grant: check the credentials (throttled), decide the scope, issue an access
//! token and the first refresh token of a new family.

use std::net::IpAddr;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::keys::{Alg, KeyError, KeyManager};
use crate::store::{
    Api, AuditEvent, Client, Family, GrantType, NewRefreshToken, Store, StoreError, User, Username,
    random_id,
};
use crate::tokens::refresh::{RefreshPolicy, RefreshToken, Rejection};
use crate::tokens::{IssuedToken, Subject, TokenError, TokenIssuer};

use super::throttle::{Attempt, Reservation, Throttle};
use super::{Admitted, ClientCache, DeviceCookies, Password, PasswordHasher, PresentedClient};

/// A login attempt, already parsed from the form or JSON body.
#[derive(Debug)]
pub struct LoginRequest {
    pub username: String,
    pub password: Password,
    /// Space-separated requested scope (RFC 6749 §3.3); `None` for the default.
    pub scope: Option<String>,
    /// The client the user logs in through (RFC 6749 §4.3.2): checked before the password.
    pub client: PresentedClient,
    /// The caller's address, for throttling.
    pub address: Option<IpAddr>,
    /// The device cookie the caller presented, if any (throttling).
    pub device: Option<String>,
    /// The RFC 8707 resource indicator: a registered API the token is for; `None` for the
    /// configured default audience.
    pub resource: Option<String>,
}

/// Who tries a password, for throttling and the audit log: the name as typed, the caller's
/// address and device cookie, and the client the login is for.
#[derive(Clone, Copy, Debug)]
pub struct PasswordAttempt<'a> {
    pub username: &'a str,
    pub address: Option<IpAddr>,
    pub device: Option<&'a str>,
    pub client_id: &'a str,
}

/// What a grant hands out: an access token, and for user grants a refresh token.
#[derive(Debug)]
pub struct Session {
    pub access: IssuedToken,
    pub refresh: Option<IssuedRefresh>,
}

/// A new refresh-token family: its record, its first token's record, and the token to hand out.
#[derive(Debug)]
pub struct NewFamily {
    pub family: Family,
    pub first: NewRefreshToken,
    pub issued: IssuedRefresh,
}

/// A refresh token as issued, with its lifetime in seconds.
#[derive(Debug)]
pub struct IssuedRefresh {
    pub token: RefreshToken,
    pub expires_in: i64,
}

/// Why a grant, a client authentication or a session call failed. Every credential failure
/// is the one `InvalidGrant`, by design.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong password, unknown user or disabled user (RFC 6749 §5.2 `invalid_grant`).
    #[error("invalid username or password")]
    InvalidGrant,
    /// A requested scope the caller may not have (RFC 6749 §5.2 `invalid_scope`).
    #[error("scope {0:?} is not allowed")]
    InvalidScope(String),
    /// A `resource` that is malformed, not a registered API, more than one, or not the one the
    /// grant is bound to (RFC 8707 §2 `invalid_target`); the text says which.
    #[error("{0}")]
    InvalidTarget(String),
    /// A malformed request; the text says what is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token could not be signed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Too many failed logins: try again in `retry_after` seconds.
    #[error("too many failed logins; retry in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    /// Password hashing is at capacity (admission control): try again in `retry_after` seconds.
    #[error("too many logins at once; retry in {retry_after} seconds")]
    Busy { retry_after: i64 },
    /// A refresh token that cannot be used (RFC 6749 §5.2 `invalid_grant`).
    #[error(transparent)]
    Refresh(#[from] Rejection),
    /// Client authentication failed, or the named client is unknown, disabled or confidential
    /// without its secret (RFC 6749 §5.2 `invalid_client`).
    #[error("{0}")]
    InvalidClient(String),
    /// The client is not allowed this grant (RFC 6749 §5.2 `unauthorized_client`).
    #[error("client {client_id} is not allowed the {grant} grant")]
    UnauthorizedClient { client_id: String, grant: GrantType },
    /// A refresh token presented by a client other than the one it was issued to (RFC 6749
    /// §6, `invalid_grant`).
    #[error("the refresh token was issued to another client")]
    WrongClient,
    /// The key set could not provide a signing key for `alg` (a failure of the issuer's own
    /// machinery, not of the request).
    #[error("no signing key for {alg}: {source}")]
    Keys {
        alg: Alg,
        #[source]
        source: KeyError,
    },
}

/// The password-grant service.
pub struct Authenticator {
    pub(super) store: Arc<dyn Store>,
    pub(super) keys: Arc<KeyManager>,
    passwords: PasswordHasher,
    pub(super) tokens: TokenIssuer,
    user_scopes: Vec<String>,
    pub(super) default_client_id: String,
    pub(super) refresh: RefreshPolicy,
    throttle: Throttle,
    /// Device cookies of users' devices that logged in before (throttling).
    devices: DeviceCookies,
    /// Service-client records, kept for `client_cache_ttl` seconds.
    pub(super) clients: ClientCache,
    /// The app's clock (until when a rotated-out client secret is accepted).
    pub(super) clock: Clock,
    /// The admin console's built-in client ([`super::clients::console_client`]).
    pub(super) console: Client,
}

impl Authenticator {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyManager>,
        passwords: PasswordHasher,
        clock: Clock,
    ) -> Self {
        Authenticator {
            store,
            keys,
            passwords,
            tokens: TokenIssuer::new(config),
            user_scopes: config.user_scopes.clone(),
            default_client_id: config.default_client_id.clone(),
            refresh: config.refresh,
            throttle: Throttle::new(config.throttle),
            devices: DeviceCookies::new(),
            clients: ClientCache::new(config.client_cache_ttl, clock.clone()),
            clock,
            console: super::clients::console_client(&config.issuer),
        }
    }

    /// The client-record cache (to forget a client changed in this process).
    pub fn client_cache(&self) -> &ClientCache {
        &self.clients
    }

    /// The token issuer, for other grants.
    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// A new device cookie value for `username`, to set after a successful login (`None` for a
    /// name that is not a valid username).
    pub fn device_cookie(&self, username: &str) -> Option<String> {
        let name = Username::parse(username).ok()?;
        Some(self.devices.issue(name.as_str()))
    }

    /// Checks the password and issues an access token and the first refresh token of a new
    /// family, for a client allowed the password grant ([`Authenticator::client_for_grant`]).
    /// A wrong password, an unknown user and a disabled user all run one argon2
    /// verification and fail with the same error. The attempt is reserved with the throttle
    /// before any hashing (refused with [`AuthError::Throttled`]), then admitted to the hashing
    /// queue (refused with [`AuthError::Busy`] when it is full).
    pub async fn password_grant(
        &self,
        request: LoginRequest,
        now: i64,
    ) -> Result<Session, AuthError> {
        if request.password.is_empty() {
            return Err(AuthError::InvalidRequest(
                "password must not be empty".into(),
            ));
        }
        let client = self
            .client_for_grant(request.client, GrantType::Password)
            .await?;
        // Before the password: a bad target costs no hashing and no throttle budget.
        let api = self.target(request.resource.as_deref()).await?;
        let attempt = PasswordAttempt {
            username: &request.username,
            address: request.address,
            device: request.device.as_deref(),
            client_id: &client.id,
        };
        let user = self.check_password(attempt, request.password, now).await?;
        self.start_session(&user, client, request.scope.as_deref(), api.as_ref(), now)
            .await
    }

    /// The user whose name and password these are, checked with the password grant's rules:
    /// reserved with the throttle before any hashing ([`AuthError::Throttled`]), admitted to the
    /// hashing queue ([`AuthError::Busy`]), one argon2 verification whether or not the user
    /// exists, and the same [`AuthError::InvalidGrant`] for a wrong password, an unknown user
    /// and a disabled one. The hosted login page of the OpenID Connect provider uses it too.
    /// Every checked attempt is audited: `login.success` (the user as actor) or `login.failure`
    /// (actor `anonymous`, the user if the name exists, and why), with the client and the
    /// address, never the password.
    pub async fn check_password(
        &self,
        attempt: PasswordAttempt<'_>,
        password: Password,
        now: i64,
    ) -> Result<User, AuthError> {
        let PasswordAttempt {
            username,
            address,
            device,
            client_id,
        } = attempt;
        if password.is_empty() {
            return Err(AuthError::InvalidRequest(
                "password must not be empty".into(),
            ));
        }
        let username = Username::parse(username).ok();
        let device = match (&username, device) {
            (Some(name), Some(cookie)) => self.devices.verify(name.as_str(), cookie),
            _ => None,
        };
        let attempt = Attempt {
            username: username.as_ref().map(|n| n.as_str().to_string()),
            address,
            device,
        };
        let (reservation, admitted) = self.reserve_and_admit(&attempt, now)?;
        let user = match &username {
            Some(name) => match self.store.user_by_username(name.as_str()).await {
                Ok(user) => user,
                Err(e) => {
                    self.throttle.cancel(reservation);
                    return Err(e.into());
                }
            },
            None => None,
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = admitted.verify(password, hash).await;
        let user = match user {
            Some(user) if verified && !user.disabled => user,
            // The reservation stays counted: that was the failure.
            other => {
                let reason = match &other {
                    None => "unknown_user",
                    Some(user) if user.disabled => "disabled",
                    Some(_) => "wrong_password",
                };
                let target = other.map(|user| user.id);
                let detail = login_detail(client_id, address, Some(reason));
                self.audit_login("anonymous".into(), "login.failure", target, detail, now)
                    .await;
                return Err(AuthError::InvalidGrant);
            }
        };
        self.throttle.succeeded(reservation);
        let detail = login_detail(client_id, address, None);
        let actor = format!("user:{}", user.id);
        self.audit_login(actor, "login.success", Some(user.id.clone()), detail, now)
            .await;
        Ok(user)
    }

    /// Writes the audit entry of a login attempt (`login.success` or `login.failure`): who (the
    /// user, or `anonymous` while nobody has proved who they are), the user if the name is
    /// known, and `detail` (client, address, reason; never the password). The attempt is
    /// decided already, so a failure to write is logged, not answered.
    async fn audit_login(
        &self,
        actor: String,
        action: &'static str,
        target: Option<String>,
        detail: String,
        now: i64,
    ) {
        let event = AuditEvent {
            at: now,
            actor,
            action: action.into(),
            target,
            detail: Some(detail),
        };
        if let Err(e) = self.store.record_audit(&event).await {
            log::error!("audit log write failed for {action}: {e}");
        }
    }

    /// Counts a sign-up against its client address with the login throttle, before anything
    /// else is done: refused with [`AuthError::Throttled`] while the address is held back.
    /// Every counted sign-up stays counted, the successful ones too, so one address gets
    /// `4 × login_throttle_failures` sign-ups (and failed logins) before it is slowed down.
    pub fn reserve_signup(&self, address: Option<IpAddr>, now: i64) -> Result<(), AuthError> {
        let attempt = Attempt {
            username: None,
            address,
            device: None,
        };
        // Dropped: the sign-up stays counted.
        drop(self.reserve(&attempt, now)?);
        Ok(())
    }

    /// Reserves `attempt` with the throttle (it counts as a failure until
    /// [`Throttle::succeeded`]), refused with [`AuthError::Throttled`].
    fn reserve(&self, attempt: &Attempt, now: i64) -> Result<Reservation, AuthError> {
        self.throttle
            .reserve(attempt, now)
            .map_err(|t| AuthError::Throttled {
                retry_after: t.retry_after,
            })
    }

    /// [`Authenticator::reserve`], then a place in the password-hashing queue. Until the
    /// password is checked the attempt counts as a failure; one refused a place in the queue
    /// ([`AuthError::Busy`]) is never checked, so it is given back.
    fn reserve_and_admit(
        &self,
        attempt: &Attempt,
        now: i64,
    ) -> Result<(Reservation, Admitted), AuthError> {
        let reservation = self.reserve(attempt, now)?;
        match self.passwords.admit() {
            Ok(admitted) => Ok((reservation, admitted)),
            Err(_) => {
                self.throttle.cancel(reservation);
                Err(AuthError::Busy { retry_after: 1 })
            }
        }
    }

    /// Logs in a user who has just signed up (their password was set a moment ago): an access
    /// token and the first refresh token of a new family, for a client allowed the password
    /// grant, exactly as [`Authenticator::password_grant`] issues them.
    pub async fn signup_session(
        &self,
        user: &User,
        client: PresentedClient,
        now: i64,
    ) -> Result<Session, AuthError> {
        let client = self.client_for_grant(client, GrantType::Password).await?;
        self.start_session(user, client, None, None, now).await
    }

    /// The tokens of a new login: the access token and the first refresh token of a new family,
    /// for the registered API `api` (or the default audience).
    async fn start_session(
        &self,
        user: &User,
        client: Client,
        requested_scope: Option<&str>,
        api: Option<&Api>,
        now: i64,
    ) -> Result<Session, AuthError> {
        let scope = self.grant_scope(&user.roles, &client, api, requested_scope)?;
        let resource = api.map(|api| api.identifier.as_str());
        let access = self.user_access_token(user, &client.id, scope.clone(), resource, now)?;
        let family = self.new_family(user, &client.id, scope, resource, now);
        self.store
            .create_refresh_family(&family.family, &family.first)
            .await?;
        Ok(Session {
            access,
            refresh: Some(family.issued),
        })
    }

    /// A new refresh-token family (one login of `user` through `client_id`, for the registered
    /// API `resource` or the default audience) and its first token, not stored yet: the
    /// password grant stores it alone, the authorization-code grant with the code's consumption.
    pub fn new_family(
        &self,
        user: &User,
        client_id: &str,
        scope: Vec<String>,
        resource: Option<&str>,
        now: i64,
    ) -> NewFamily {
        let family = Family {
            id: random_id(),
            user_id: user.id.clone(),
            client_id: client_id.to_string(),
            scope,
            created_at: now,
            expires_at: now + self.refresh.family_ttl,
            revoked_at: None,
            resource: resource.map(str::to_string),
        };
        let token = RefreshToken::generate();
        let expires_at = self.refresh.token_expiry(now, family.expires_at);
        let first = NewRefreshToken {
            hash: token.hash(),
            family_id: family.id.clone(),
            token_version: user.token_version,
            issued_at: now,
            expires_at,
        };
        NewFamily {
            family,
            first,
            issued: IssuedRefresh {
                token,
                expires_in: expires_at - now,
            },
        }
    }

    /// Confirms that `password` is `user`'s current password before a change to the account
    /// (a password change by its owner), throttled exactly like the password grant: the attempt
    /// is reserved against the username and `address` before any hashing
    /// ([`AuthError::Throttled`]), admitted to the hashing queue ([`AuthError::Busy`]), and a
    /// wrong password stays counted as a failed login ([`AuthError::InvalidGrant`]).
    pub async fn confirm_password(
        &self,
        user: &User,
        password: Password,
        address: Option<IpAddr>,
        now: i64,
    ) -> Result<(), AuthError> {
        let attempt = Attempt {
            username: Some(user.username.clone()),
            address,
            device: None,
        };
        let (reservation, admitted) = self.reserve_and_admit(&attempt, now)?;
        if !admitted
            .verify(password, Some(user.password_hash.clone()))
            .await
        {
            // The reservation stays counted: that was the failure.
            let detail = format!(
                "address={} reason=wrong_current_password",
                display_address(address)
            );
            let target = Some(user.id.clone());
            self.audit_login("anonymous".into(), "login.failure", target, detail, now)
                .await;
            return Err(AuthError::InvalidGrant);
        }
        self.throttle.succeeded(reservation);
        Ok(())
    }

    /// An access token for `user` through `client_id` with `scope` (already decided), for the
    /// registered API `resource` (or the default audience), signed as the password grant's are
    /// (the authorization-code grant).
    pub fn user_access_token(
        &self,
        user: &User,
        client_id: &str,
        scope: Vec<String>,
        resource: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, AuthError> {
        let subject = Subject {
            sub: user.id.clone(),
            client_id: client_id.to_string(),
            scope,
            roles: user.roles.clone(),
            ver: Some(user.token_version),
        };
        self.sign(subject, resource, now)
    }

    /// The record of client `id` if it is registered (enabled or not), from the cache if fresh.
    pub async fn client(&self, id: &str) -> Result<Option<Client>, AuthError> {
        match crate::store::ClientId::parse(id) {
            Ok(parsed) if parsed.as_str() == id => self.client_record(id).await,
            _ => Ok(None),
        }
    }

    /// The scopes a user may have now: the configured user scopes and the user's roles.
    pub fn user_may_have(&self, roles: &[String], scope: &str) -> bool {
        self.user_scopes.iter().any(|s| s == scope) || roles.iter().any(|r| r == scope)
    }

    /// RFC 6749 §3.3: the granted scope is what was asked, if every part is allowed: the
    /// configured user scopes and the user's own roles (for a registered API, see
    /// [`Authenticator::user_scope_allowed`]).
    fn grant_scope(
        &self,
        roles: &[String],
        client: &Client,
        api: Option<&Api>,
        requested: Option<&str>,
    ) -> Result<Vec<String>, AuthError> {
        let Some(requested) = requested else {
            return Ok(Vec::new());
        };
        let mut granted: Vec<String> = Vec::new();
        for part in requested.split(' ').filter(|p| !p.is_empty()) {
            if !self.user_scope_allowed(roles, client, api, part) {
                return Err(AuthError::InvalidScope(part.to_string()));
            }
            if !granted.iter().any(|g| g == part) {
                granted.push(part.to_string());
            }
        }
        Ok(granted)
    }
}

/// The detail of a login's audit entry: the client, the caller's address and, for a failure,
/// why.
fn login_detail(client_id: &str, address: Option<IpAddr>, reason: Option<&str>) -> String {
    let address = display_address(address);
    match reason {
        Some(reason) => format!("client={client_id} address={address} reason={reason}"),
        None => format!("client={client_id} address={address}"),
    }
}

/// An address as the audit log shows it.
fn display_address(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "unknown".into(), |a| a.to_string())
}
