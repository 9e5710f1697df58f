//! The OpenID Connect provider (issue 12): the authorization endpoint with its hosted login and
//! consent forms, issuer browser sessions (single sign-on), authorization codes and their
//! redemption with ID tokens, userinfo and RP-initiated logout. HTTP lives in
//! `routes/oidc.rs` and the pages in [`crate::web`]; the rules live here.
//!
//! - A request whose client or redirect URI cannot be trusted is answered with a page, never a
//!   redirect; every later error goes back to the redirect URI with `state` and `iss`
//!   (RFC 6749 §4.1.2.1, RFC 9207).
//! - Form posts carry the id of a request kept server-side and a CSRF token; both are bound to
//!   a short-lived pre-login cookie. The form's hidden fields are never trusted for anything
//!   else.
//! - The browser session's record holds the user's token version: revoke-all, a password change
//!   and disabling bump it and so end every session.
//! - Codes: 256 random bits, stored hashed, 60 seconds, consumed once in one transaction that
//!   also stores the refresh family; a replay revokes that family and denylists the access
//!   token (RFC 6749 §4.1.2).

pub mod id_token;
pub mod request;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use subtle::ConstantTimeEq;

use crate::App;
use crate::auth::{AuthError, Password, PasswordAttempt, Session, single_resource};
use crate::store::{
    Api, AuthCode, BrowserSession, Client, GrantType, PendingRequest, RedeemOutcome, Redemption,
    StoreError, User, random_id,
};
use crate::tokens::AccessClaims;
use crate::tokens::refresh::TokenHash;

pub use id_token::{IdClaims, IdTokenError, at_hash};
pub use request::{AuthorizeParams, Prompt, RequestError, ValidRequest};

/// How long an issuer browser session lasts after the password was entered.
pub const SESSION_TTL: i64 = 12 * 3600;
/// How long a login or consent form may be answered.
pub const REQUEST_TTL: i64 = 600;
/// How long an authorization code may be redeemed (seconds).
pub const CODE_TTL: i64 = 60;

/// What the browser is shown or where it is sent next.
#[derive(Debug)]
pub enum Step {
    /// To the client's redirect URI (a code, or an error), with `303 See Other`.
    Redirect(String),
    /// The login form.
    Login(LoginPage),
    /// The consent form of a third-party client.
    Consent(ConsentPage),
}

/// The values a form must send back, and the pre-login cookie to (re)set.
#[derive(Clone, Debug)]
pub struct FormTicket {
    pub request_id: String,
    pub csrf: String,
    /// The pre-login cookie's value.
    pub browser: String,
    /// Where the form's result will redirect (for the page's CSP `form-action`).
    pub redirect_uri: String,
}

/// The login form's contents.
#[derive(Debug)]
pub struct LoginPage {
    pub ticket: FormTicket,
    pub client_id: String,
    /// The name to prefill (`login_hint`, or what was typed).
    pub username: Option<String>,
    pub problem: Option<LoginProblem>,
}

/// Why the login form is shown again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginProblem {
    /// Wrong name or password (or a disabled user: the same answer).
    WrongPassword,
    /// Too many failures: try again in that many seconds.
    Throttled { retry_after: i64 },
    /// The password checker is at capacity.
    Busy { retry_after: i64 },
    /// Something missing from the form.
    Invalid(String),
}

/// The consent form's contents.
#[derive(Debug)]
pub struct ConsentPage {
    pub ticket: FormTicket,
    pub client_id: String,
    pub scope: Vec<String>,
}

/// A browser session just begun: its cookie secret.
#[derive(Debug)]
pub struct NewSession {
    pub secret: String,
    pub max_age: i64,
}

/// A browser request that cannot go on: a page with this message (`400`), or the server's
/// failure (`500`, logged).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Page(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Internal(e.to_string())
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Failure {
        Failure::Internal(crate::error::error_chain(&e))
    }
}

/// Why a code could not be redeemed at the token endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// RFC 6749 §5.2 `invalid_grant`, with the reason.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// RFC 6749 §5.2 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
}

/// What a redeemed code gives: the access and refresh tokens, and an ID token for `openid`.
#[derive(Debug)]
pub struct CodeTokens {
    pub session: Session,
    pub id_token: Option<String>,
}

/// The parameters of RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2).
#[derive(Clone, Debug, Default)]
pub struct EndSessionParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
}

/// A login form post.
pub struct LoginForm {
    pub request_id: String,
    pub csrf: String,
    pub username: String,
    pub password: Option<Password>,
}

/// A request being answered, from the query or from the stored form request.
struct Pending {
    client: Client,
    redirect_uri: String,
    scope: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Prompt,
    login_hint: Option<String>,
    /// The registered API the request asked for (RFC 8707 `resource`); `None` for the default.
    api: Option<Api>,
    /// The stored request and its form values, once a form was shown.
    form: Option<FormTicket>,
}

/// Scopes of OpenID Connect itself (ID token, userinfo), allowed next to an API's own scopes.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The registered API of an authorization request (RFC 8707 `resource`, already looked up as
/// `target`): `invalid_target` if it is malformed, unknown or more than one, `invalid_scope` for
/// a requested scope the API does not define (the OpenID Connect scopes aside). Those go back
/// to the client as `Err(Ok((error, description)))`; a failure of the server is `Err(Err(_))`.
fn target_of(
    target: Result<Option<Api>, AuthError>,
    valid: &ValidRequest,
) -> Result<Option<Api>, Result<(&'static str, String), Failure>> {
    let api = match target {
        Ok(api) => api,
        Err(AuthError::InvalidTarget(why)) => return Err(Ok(("invalid_target", why))),
        Err(e) => return Err(Err(e.into())),
    };
    if let Some(api) = &api
        && let Some(unknown) = valid
            .scope
            .iter()
            .find(|s| !OIDC_SCOPES.contains(&s.as_str()) && !api.scopes.contains(s))
    {
        let why = format!("scope {unknown:?} is not defined by the requested resource");
        return Err(Ok(("invalid_scope", why)));
    }
    Ok(api)
}

/// 256 random bits, base64url: session secrets, codes, CSRF tokens, pre-login cookies.
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider, on the app's store, keys and authenticator.
pub struct Provider<'a> {
    app: &'a App,
}

impl<'a> Provider<'a> {
    pub fn new(app: &'a App) -> Provider<'a> {
        Provider { app }
    }

    /// `GET /authorize`: validates the request, then answers at once from a live browser
    /// session (single sign-on), or shows the login (or consent) form.
    pub async fn authorize(
        &self,
        params: &AuthorizeParams,
        session_cookie: Option<&str>,
        browser_cookie: Option<&str>,
        now: i64,
    ) -> Result<Step, Failure> {
        let client = match params.client_id.as_deref() {
            Some(id) => self.app.auth.client(id).await?,
            None => None,
        };
        // The API a `resource` names defines scopes the request may ask for too; whether the
        // resource is valid is answered after the client and redirect URI are (as a redirect).
        let target = match single_resource(params.resource.clone()) {
            Ok(resource) => self.app.auth.target(resource.as_deref()).await,
            Err(e) => Err(e),
        };
        let mut allowed = self.app.config.user_scopes.clone();
        if let Ok(Some(api)) = &target {
            allowed.extend(api.scopes.iter().cloned());
        }
        let valid = match request::validate(params, client, &allowed) {
            Ok(valid) => valid,
            Err(RequestError::Page(message)) => return Err(Failure::Page(message)),
            Err(RequestError::Redirect {
                redirect_uri,
                state,
                error,
                description,
            }) => {
                // A scope refused because its resource is: name the resource.
                let (error, description) = match &target {
                    Err(AuthError::InvalidTarget(why)) if error == "invalid_scope" => {
                        ("invalid_target", why.clone())
                    }
                    _ => (error, description),
                };
                return Ok(Step::Redirect(self.error_redirect(
                    &redirect_uri,
                    state.as_deref(),
                    error,
                    &description,
                )));
            }
        };
        let max_age = valid.max_age;
        let api = match target_of(target, &valid) {
            Ok(api) => api,
            Err(Ok((error, description))) => {
                return Ok(Step::Redirect(self.error_redirect(
                    &valid.redirect_uri,
                    valid.state.as_deref(),
                    error,
                    &description,
                )));
            }
            Err(Err(failure)) => return Err(failure),
        };
        let pending = Pending {
            client: valid.client,
            redirect_uri: valid.redirect_uri,
            scope: valid.scope,
            state: valid.state,
            nonce: valid.nonce,
            code_challenge: valid.code_challenge,
            prompt: valid.prompt,
            login_hint: valid.login_hint,
            api,
            form: None,
        };
        let live = self.live_session(session_cookie, now).await?;
        match live {
            Some((session, user))
                if !pending.prompt.login
                    // Core §3.1.2.1: max_age=0 is prompt=login.
                    && max_age.is_none_or(|max| max > 0 && now - session.auth_time <= max) =>
            {
                self.signed_in(pending, &session, &user, browser_cookie, now)
                    .await
            }
            _ if pending.prompt.none => Ok(Step::Redirect(self.error_redirect(
                &pending.redirect_uri,
                pending.state.as_deref(),
                "login_required",
                "the user is not signed in",
            ))),
            _ => {
                let ticket = self.store_request(&pending, browser_cookie, now).await?;
                Ok(Step::Login(LoginPage {
                    ticket,
                    client_id: pending.client.id.clone(),
                    username: pending.login_hint.clone(),
                    problem: None,
                }))
            }
        }
    }

    /// `POST /authorize/login`: checks the form's binding, then the password (throttled like
    /// the password grant). On success a new browser session begins (replacing the one the
    /// browser had) and the request goes on.
    pub async fn login(
        &self,
        form: LoginForm,
        browser_cookie: Option<&str>,
        old_session_cookie: Option<&str>,
        address: Option<IpAddr>,
        device: Option<&str>,
        now: i64,
    ) -> Result<(Option<NewSession>, Step), Failure> {
        let pending = self
            .form_request(&form.request_id, &form.csrf, browser_cookie, now)
            .await?;
        let show_again = |problem: LoginProblem, pending: &Pending| {
            let ticket = pending.form.clone();
            ticket.map(|ticket| {
                Step::Login(LoginPage {
                    ticket,
                    client_id: pending.client.id.clone(),
                    username: Some(form.username.clone()),
                    problem: Some(problem),
                })
            })
        };
        let Some(password) = form.password.filter(|_| !form.username.trim().is_empty()) else {
            let problem = LoginProblem::Invalid("Enter your username and password.".into());
            return Ok((None, show_again(problem, &pending).ok_or_else(lost)?));
        };
        let checked = self
            .app
            .auth
            .check_password(
                PasswordAttempt {
                    username: &form.username,
                    address,
                    device,
                    client_id: &pending.client.id,
                },
                password,
                now,
            )
            .await;
        let user = match checked {
            Ok(user) => user,
            Err(e) => {
                let problem = match e {
                    AuthError::InvalidGrant => LoginProblem::WrongPassword,
                    AuthError::Throttled { retry_after } => LoginProblem::Throttled { retry_after },
                    AuthError::Busy { retry_after } => LoginProblem::Busy { retry_after },
                    AuthError::InvalidRequest(msg) => LoginProblem::Invalid(msg),
                    other => return Err(other.into()),
                };
                return Ok((None, show_again(problem, &pending).ok_or_else(lost)?));
            }
        };
        if let Some((old, _)) = self.live_session(old_session_cookie, now).await? {
            self.app.store.end_browser_session(&old.id, now).await?;
        }
        let secret = secret();
        let session = BrowserSession {
            id: random_id(),
            user_id: user.id.clone(),
            token_version: user.token_version,
            auth_time: now,
            created_at: now,
            expires_at: now + SESSION_TTL,
        };
        self.app
            .store
            .create_browser_session(&session, &TokenHash::of(&secret))
            .await?;
        let step = self
            .signed_in(pending, &session, &user, browser_cookie, now)
            .await?;
        Ok((
            Some(NewSession {
                secret,
                max_age: SESSION_TTL,
            }),
            step,
        ))
    }

    /// `POST /authorize/consent`: the user's answer to a third-party client's consent form. A
    /// live browser session is required; consent is remembered for the granted scopes.
    pub async fn consent(
        &self,
        request_id: &str,
        csrf: &str,
        allow: bool,
        browser_cookie: Option<&str>,
        session_cookie: Option<&str>,
        now: i64,
    ) -> Result<Step, Failure> {
        let pending = self
            .form_request(request_id, csrf, browser_cookie, now)
            .await?;
        let Some((session, user)) = self.live_session(session_cookie, now).await? else {
            return Err(Failure::Page(
                "Your sign-in session has ended. Go back to the application and start again."
                    .into(),
            ));
        };
        self.app.store.delete_request(request_id).await?;
        if !allow {
            return Ok(Step::Redirect(self.error_redirect(
                &pending.redirect_uri,
                pending.state.as_deref(),
                "access_denied",
                "the user declined",
            )));
        }
        let granted = self.granted_scope(&pending, &user);
        self.app
            .store
            .grant_consent(&user.id, &pending.client.id, &granted, now)
            .await?;
        let url = self
            .issue_code(&pending, &session, &user, granted, now)
            .await?;
        Ok(Step::Redirect(url))
    }

    /// A signed-in user's request: consent if needed, else a code.
    async fn signed_in(
        &self,
        pending: Pending,
        session: &BrowserSession,
        user: &User,
        browser_cookie: Option<&str>,
        now: i64,
    ) -> Result<Step, Failure> {
        let granted = self.granted_scope(&pending, user);
        if !pending.client.first_party {
            let consented = match self.app.store.consent(&user.id, &pending.client.id).await? {
                Some(consent) => granted.iter().all(|s| consent.scope.contains(s)),
                None => false,
            };
            if pending.prompt.consent || !consented {
                if pending.prompt.none {
                    return Ok(Step::Redirect(self.error_redirect(
                        &pending.redirect_uri,
                        pending.state.as_deref(),
                        "consent_required",
                        "the user has not consented to this application",
                    )));
                }
                let ticket = match &pending.form {
                    Some(ticket) => ticket.clone(),
                    None => self.store_request(&pending, browser_cookie, now).await?,
                };
                return Ok(Step::Consent(ConsentPage {
                    ticket,
                    client_id: pending.client.id.clone(),
                    scope: granted,
                }));
            }
        }
        if let Some(ticket) = &pending.form {
            self.app.store.delete_request(&ticket.request_id).await?;
        }
        let url = self
            .issue_code(&pending, session, user, granted, now)
            .await?;
        Ok(Step::Redirect(url))
    }

    /// A fresh code for `pending`, stored by its hash; the redirect that delivers it.
    async fn issue_code(
        &self,
        pending: &Pending,
        session: &BrowserSession,
        user: &User,
        scope: Vec<String>,
        now: i64,
    ) -> Result<String, Failure> {
        let code = secret();
        let record = AuthCode {
            hash: TokenHash::of(&code),
            client_id: pending.client.id.clone(),
            user_id: user.id.clone(),
            session_id: session.id.clone(),
            token_version: user.token_version,
            redirect_uri: pending.redirect_uri.clone(),
            scope,
            nonce: pending.nonce.clone(),
            code_challenge: pending.code_challenge.clone(),
            auth_time: session.auth_time,
            created_at: now,
            expires_at: now + CODE_TTL,
            consumed_at: None,
            resource: pending.api.as_ref().map(|api| api.identifier.clone()),
        };
        self.app.store.create_code(&record).await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &pending.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.app.config.issuer));
        Ok(request::redirect_with(&pending.redirect_uri, &params))
    }

    /// The scope a user gets of what was asked: `openid`, the configured user scopes and the
    /// user's own roles; anything else (a client scope the user lacks) is left out. For a
    /// registered API, see [`crate::auth::Authenticator::user_scope_allowed`]; the OpenID
    /// Connect scopes are kept by the rule above.
    fn granted_scope(&self, pending: &Pending, user: &User) -> Vec<String> {
        let auth = &self.app.auth;
        let (client, api) = (&pending.client, pending.api.as_ref());
        pending
            .scope
            .iter()
            .filter(|s| {
                s.as_str() == "openid"
                    || auth.user_scope_allowed(&user.roles, client, api, s)
                    || (OIDC_SCOPES.contains(&s.as_str()) && auth.user_may_have(&user.roles, s))
            })
            .cloned()
            .collect()
    }

    /// Stores `pending` for a form: a new id and CSRF token, bound to the browser's pre-login
    /// cookie (kept if the browser has one, so several tabs can sign in at once).
    async fn store_request(
        &self,
        pending: &Pending,
        browser_cookie: Option<&str>,
        now: i64,
    ) -> Result<FormTicket, Failure> {
        let browser = browser_cookie
            .filter(|b| b.len() == 43)
            .map_or_else(secret, str::to_string);
        let csrf = secret();
        let request = PendingRequest {
            id: random_id(),
            browser_hash: TokenHash::of(&browser),
            csrf_hash: TokenHash::of(&csrf),
            client_id: pending.client.id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            scope: pending.scope.clone(),
            state: pending.state.clone(),
            nonce: pending.nonce.clone(),
            code_challenge: pending.code_challenge.clone(),
            prompt: pending.prompt.stored(),
            login_hint: pending.login_hint.clone(),
            created_at: now,
            expires_at: now + REQUEST_TTL,
            resource: pending.api.as_ref().map(|api| api.identifier.clone()),
        };
        self.app.store.save_request(&request).await?;
        Ok(FormTicket {
            request_id: request.id,
            csrf,
            browser,
            redirect_uri: pending.redirect_uri.clone(),
        })
    }

    /// The stored request a form post names, if the post carries its CSRF token and comes from
    /// the browser it was shown to (the pre-login cookie), in time; else an error page. The
    /// client is read again: it may have been disabled or lost the redirect URI meanwhile.
    async fn form_request(
        &self,
        request_id: &str,
        csrf: &str,
        browser_cookie: Option<&str>,
        now: i64,
    ) -> Result<Pending, Failure> {
        let expired = || {
            Failure::Page(
                "This sign-in form has expired or was not sent from this browser. Go back to the \
                 application and start again."
                    .into(),
            )
        };
        if request_id.is_empty() || request_id.len() > 64 {
            return Err(expired());
        }
        let Some(stored) = self.app.store.pending_request(request_id).await? else {
            return Err(expired());
        };
        let browser_ok: bool = match browser_cookie {
            Some(cookie) => TokenHash::of(cookie).0.ct_eq(&stored.browser_hash.0).into(),
            None => false,
        };
        let csrf_ok: bool = TokenHash::of(csrf).0.ct_eq(&stored.csrf_hash.0).into();
        if !(browser_ok && csrf_ok) || stored.expires_at <= now {
            return Err(expired());
        }
        let client = self
            .app
            .auth
            .client(&stored.client_id)
            .await?
            .filter(|c| !c.disabled && c.redirect_uris.contains(&stored.redirect_uri))
            .ok_or_else(|| Failure::Page("The application is no longer registered.".into()))?;
        let prompt = Prompt::parse(stored.prompt.as_deref()).unwrap_or_default();
        let api = match &stored.resource {
            Some(resource) => Some(
                self.app
                    .store
                    .api_by_identifier(resource)
                    .await?
                    .ok_or_else(|| {
                        Failure::Page("The API this sign-in is for is no longer registered.".into())
                    })?,
            ),
            None => None,
        };
        Ok(Pending {
            client,
            api,
            form: Some(FormTicket {
                request_id: stored.id,
                csrf: csrf.to_string(),
                browser: browser_cookie.unwrap_or_default().to_string(),
                redirect_uri: stored.redirect_uri.clone(),
            }),
            redirect_uri: stored.redirect_uri,
            scope: stored.scope,
            state: stored.state,
            nonce: stored.nonce,
            code_challenge: stored.code_challenge,
            prompt,
            login_hint: stored.login_hint,
        })
    }

    /// The browser session the cookie names, with its user, if it is live now: not expired,
    /// its user enabled and still at the session's token version.
    pub async fn live_session(
        &self,
        cookie: Option<&str>,
        now: i64,
    ) -> Result<Option<(BrowserSession, User)>, StoreError> {
        let Some(cookie) = cookie.filter(|c| !c.is_empty() && c.len() <= 64) else {
            return Ok(None);
        };
        let Some(session) = self
            .app
            .store
            .browser_session(&TokenHash::of(cookie))
            .await?
        else {
            return Ok(None);
        };
        if session.expires_at <= now {
            return Ok(None);
        }
        let Some(user) = self.app.store.user_by_id(&session.user_id).await? else {
            return Ok(None);
        };
        if user.disabled || user.token_version != session.token_version {
            return Ok(None);
        }
        Ok(Some((session, user)))
    }

    /// An error sent back to the client (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> String {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", &self.app.config.issuer));
        request::redirect_with(redirect_uri, &params)
    }

    /// `grant_type=authorization_code` for `client` (already authenticated, or public):
    /// checks the code's binding (client, redirect URI, PKCE verifier), its user's state, then
    /// consumes it once with what it produces. A replayed code revokes what its first use
    /// produced.
    pub async fn redeem(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        resource: Option<&str>,
        now: i64,
    ) -> Result<CodeTokens, CodeError> {
        let hash = TokenHash::of(code);
        let Some(record) = self.app.store.code(&hash).await? else {
            return Err(CodeError::InvalidGrant("unknown authorization code"));
        };
        if record.consumed_at.is_some() {
            let dummy = Redemption {
                family: None,
                access_jti: String::new(),
                access_exp: 0,
            };
            self.app
                .store
                .redeem_code(&hash, &dummy, &record.session_id, now)
                .await?;
            log::warn!("authorization code replayed; the tokens it produced are revoked");
            return Err(CodeError::InvalidGrant(
                "the authorization code was already used; the tokens it produced are revoked",
            ));
        }
        if record.expires_at <= now {
            return Err(CodeError::InvalidGrant(
                "the authorization code has expired",
            ));
        }
        if record.client_id != client.id {
            return Err(CodeError::InvalidGrant(
                "the authorization code was issued to another client",
            ));
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(CodeError::InvalidGrant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        // RFC 8707 §2.2: the token request may repeat the code's resource, not change it; and
        // the API must still be registered.
        let bound = record.resource.as_deref();
        if resource.is_some_and(|r| r != bound.unwrap_or(self.app.auth.tokens().audience())) {
            return Err(AuthError::InvalidTarget(
                "resource differs from the authorization request's".into(),
            )
            .into());
        }
        self.app.auth.target(bound).await?;
        match (&record.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) if request::pkce_matches(verifier, challenge) => {}
            (Some(_), _) => {
                return Err(CodeError::InvalidGrant(
                    "code_verifier is missing or does not match the code_challenge",
                ));
            }
            // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
            (None, Some(_)) => {
                return Err(CodeError::InvalidGrant(
                    "code_verifier given, but the authorization request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        let user = match self.app.store.user_by_id(&record.user_id).await? {
            Some(user) if !user.disabled && user.token_version == record.token_version => user,
            _ => {
                return Err(CodeError::InvalidGrant(
                    "the user's sessions have ended since the code was issued",
                ));
            }
        };
        let access =
            self.app
                .auth
                .user_access_token(&user, &client.id, record.scope.clone(), bound, now)?;
        let refresh = client.allows(GrantType::RefreshToken).then(|| {
            self.app
                .auth
                .new_family(&user, &client.id, record.scope.clone(), bound, now)
        });
        let redemption = Redemption {
            family: refresh
                .as_ref()
                .map(|new| (new.family.clone(), new.first.clone())),
            access_jti: access.claims.jti.clone(),
            access_exp: access.claims.exp,
        };
        match self
            .app
            .store
            .redeem_code(&hash, &redemption, &record.session_id, now)
            .await?
        {
            RedeemOutcome::Redeemed => {}
            RedeemOutcome::Replayed => {
                return Err(CodeError::InvalidGrant(
                    "the authorization code was already used; the tokens it produced are revoked",
                ));
            }
            RedeemOutcome::Refused => {
                return Err(CodeError::InvalidGrant(
                    "the authorization code has expired",
                ));
            }
        }
        let id_token = if record.scope.iter().any(|s| s == "openid") {
            use secrecy::ExposeSecret;
            let claims = IdClaims {
                iss: self.app.config.issuer.clone(),
                sub: user.id.clone(),
                aud: client.id.clone(),
                exp: now + self.app.config.access_token_ttl,
                iat: now,
                auth_time: record.auth_time,
                nonce: record.nonce.clone(),
                at_hash: Some(at_hash(access.access_token.expose_secret())),
                sid: Some(record.session_id.clone()),
            };
            Some(id_token::sign(
                &self.app.keys.snapshot(),
                &access.kid,
                &claims,
            )?)
        } else {
            None
        };
        Ok(CodeTokens {
            session: Session {
                access,
                refresh: refresh.map(|new| new.issued),
            },
            id_token,
        })
    }

    /// RP-initiated logout: checks the hint and the post-logout redirect URI (exact match with
    /// the client's registered list), then ends the browser's session (and the one the hint
    /// names) with the refresh families produced under it. Returns where to send the browser,
    /// if anywhere.
    pub async fn end_session(
        &self,
        params: &EndSessionParams,
        session_cookie: Option<&str>,
        now: i64,
    ) -> Result<Option<String>, Failure> {
        let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            Some(token) => Some(
                id_token::read_hint(&self.app.keys.snapshot(), &self.app.config.issuer, token)
                    .map_err(|e| Failure::Page(format!("Sign-out refused: {e}.")))?,
            ),
            None => None,
        };
        let client_id = match (
            hint.as_ref().map(|h| h.aud.as_str()),
            params.client_id.as_deref(),
        ) {
            (Some(aud), Some(named)) if aud != named => {
                return Err(Failure::Page(
                    "Sign-out refused: client_id differs from the id_token_hint's audience.".into(),
                ));
            }
            (Some(aud), _) => Some(aud.to_string()),
            (None, named) => named.map(str::to_string),
        };
        let redirect = match params
            .post_logout_redirect_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            None => None,
            Some(uri) => {
                let client = match &client_id {
                    Some(id) => self.app.auth.client(id).await?,
                    None => None,
                };
                match client {
                    Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => {
                        Some(uri.to_string())
                    }
                    _ => {
                        return Err(Failure::Page(
                            "Sign-out refused: the application asked to send you back to an \
                             address it has not registered."
                                .into(),
                        ));
                    }
                }
            }
        };
        if let Some((session, _)) = self.live_session(session_cookie, now).await? {
            self.app.store.end_browser_session(&session.id, now).await?;
        }
        if let Some(sid) = hint.as_ref().and_then(|h| h.sid.as_deref()) {
            self.app.store.end_browser_session(sid, now).await?;
        }
        Ok(redirect.map(|uri| match params.state.as_deref() {
            Some(state) => request::redirect_with(&uri, &[("state", state)]),
            None => uri,
        }))
    }
}

/// The OpenID Connect userinfo response (Core §5.3) for a live access token of `user`: `sub`,
/// `preferred_username` with `profile`, and `email` with `email` when the user has one. `None`
/// without the `openid` scope.
pub fn userinfo(claims: &AccessClaims, user: &User) -> Option<serde_json::Value> {
    let scope = crate::store::split_scope(claims.scope.as_deref().unwrap_or(""));
    if !scope.iter().any(|s| s == "openid") {
        return None;
    }
    let mut info = serde_json::json!({ "sub": user.id });
    if scope.iter().any(|s| s == "profile") {
        info["preferred_username"] = serde_json::json!(user.username);
    }
    if let Some(email) = &user.email
        && scope.iter().any(|s| s == "email")
    {
        info["email"] = serde_json::json!(email);
    }
    Some(info)
}

/// A stored request whose form values are gone (cannot happen: a stored request has them).
fn lost() -> Failure {
    Failure::Internal("a form request without its form values".into())
}
