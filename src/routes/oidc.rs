//! The OpenID Connect provider's endpoints: `GET|POST /authorize`, the hosted forms
//! (`POST /authorize/login`, `POST /authorize/consent`), `GET|POST /userinfo`,
//! `GET|POST /end-session`, the user's consents (`GET /account/consents`,
//! `DELETE /account/consents/{client_id}`, and for administrators
//! `GET /admin/users/{id}/consents`, `DELETE /admin/users/{id}/consents/{client_id}`) and the
//! pages' stylesheet. The rules are in
//! [`crate::oidc`]; this file moves cookies and renders pages.
//!
//! Pages are sent with a strict Content-Security-Policy: nothing but the stylesheet may load,
//! no framing, and `form-action` names this site plus the origin the form's answer redirects to
//! (Chromium applies `form-action` to the redirect that follows a form post).

use std::net::IpAddr;

use rocket::fairing::AdHoc;
use rocket::form::{Form, FromForm, Lenient};
use rocket::http::{ContentType, Cookie, CookieJar, Header, SameSite, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::time::Duration;
use rocket::{State, delete, get, post, routes};

use crate::App;
use crate::admin::{Actor, Admin, UserRef};
use crate::auth::{Audience, Password, TokenOwner};
use crate::error::ApiError;
use crate::oidc::{
    self, AuthorizeParams, EndSessionParams, Failure, LoginForm, LoginProblem, NewSession,
    Provider, Step,
};
use crate::store::{Consent, User};
use crate::tokens::AccessClaims;
use crate::web::{Pages, STYLESHEET};

use super::cookies;
use super::guards::{AccountHolder, live_token};

/// The OpenID Connect endpoints; the page templates are parsed here, once.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("openid connect", |rocket| async {
        let built = rocket
            .state::<App>()
            .map(|app| Pages::new(&app.config.issuer));
        let pages = match built {
            Some(Ok(pages)) => pages,
            Some(Err(e)) => {
                rocket::error!("{e}");
                return Err(rocket);
            }
            None => return Err(rocket),
        };
        Ok(rocket.manage(pages).mount(
            "/",
            routes![
                authorize_get,
                authorize_post,
                login,
                consent,
                stylesheet,
                userinfo_get,
                userinfo_post,
                end_session_get,
                end_session_post,
                list_consents,
                revoke_consent,
                admin_list_consents,
                admin_revoke_consent
            ],
        ))
    })
}

/// The browser session cookie (`__Host-` prefixed when cookies are `Secure`).
fn session_cookie_name(app: &App) -> &'static str {
    if app.config.cookies.secure {
        "__Host-stamp_session"
    } else {
        "stamp_session"
    }
}

/// The pre-login cookie that binds a login or consent form to this browser.
fn browser_cookie_name(app: &App) -> &'static str {
    if app.config.cookies.secure {
        "__Host-stamp_authorize"
    } else {
        "stamp_authorize"
    }
}

fn cookie_value(jar: &CookieJar<'_>, name: &str) -> Option<String> {
    jar.get(name).map(|c| c.value().to_string())
}

fn set_cookie(app: &App, jar: &CookieJar<'_>, name: &'static str, value: String, max_age: i64) {
    jar.add(
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(app.config.cookies.secure)
            .same_site(SameSite::Lax)
            .max_age(Duration::seconds(max_age))
            .build(),
    );
}

fn remove_cookie(app: &App, jar: &CookieJar<'_>, name: &'static str) {
    let mut removal = Cookie::build((name, ""))
        .path("/")
        .http_only(true)
        .secure(app.config.cookies.secure)
        .same_site(SameSite::Lax)
        .build();
    removal.make_removal();
    jar.add(removal);
}

/// An HTML page or a redirect, with the headers every answer of these endpoints carries.
pub enum Answer {
    Page {
        status: Status,
        html: String,
        /// Extra `form-action` source (the origin the form's answer redirects to).
        form_target: Option<String>,
        retry_after: Option<i64>,
    },
    Redirect(String),
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Referrer-Policy", "no-referrer"));
        match self {
            Answer::Redirect(location) => {
                response
                    .status(Status::SeeOther)
                    .header(Header::new("Location", location));
            }
            Answer::Page {
                status,
                html,
                form_target,
                retry_after,
            } => {
                let form_action = match form_target {
                    Some(origin) => format!("'self' {origin}"),
                    None => "'self'".to_string(),
                };
                let csp = format!(
                    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                     frame-ancestors 'none'; form-action {form_action}"
                );
                response
                    .status(status)
                    .header(ContentType::HTML)
                    .header(Header::new("Content-Security-Policy", csp))
                    .header(Header::new("X-Frame-Options", "DENY"))
                    .sized_body(html.len(), std::io::Cursor::new(html));
                if let Some(seconds) = retry_after {
                    response.header(Header::new("Retry-After", seconds.max(1).to_string()));
                }
            }
        }
        response.ok()
    }
}

/// Renders a step: the login or consent form (setting the pre-login cookie), or a redirect.
fn answer(app: &App, pages: &Pages, jar: &CookieJar<'_>, step: Step) -> Answer {
    let (rendered, ticket, status, retry_after) = match &step {
        Step::Redirect(location) => return Answer::Redirect(location.clone()),
        Step::Login(page) => {
            let (status, retry_after) = match &page.problem {
                None => (Status::Ok, None),
                Some(LoginProblem::WrongPassword | LoginProblem::Invalid(_)) => {
                    (Status::BadRequest, None)
                }
                Some(LoginProblem::Throttled { retry_after }) => {
                    (Status::TooManyRequests, Some(*retry_after))
                }
                Some(LoginProblem::Busy { retry_after }) => {
                    (Status::ServiceUnavailable, Some(*retry_after))
                }
            };
            (pages.login(page), &page.ticket, status, retry_after)
        }
        Step::Consent(page) => (pages.consent(page), &page.ticket, Status::Ok, None),
    };
    let html = match rendered {
        Ok(html) => html,
        Err(e) => return failure_page(pages, Failure::Internal(e.to_string())),
    };
    set_cookie(
        app,
        jar,
        browser_cookie_name(app),
        ticket.browser.clone(),
        oidc::REQUEST_TTL,
    );
    Answer::Page {
        status,
        html,
        form_target: oidc::request::csp_source(&ticket.redirect_uri),
        retry_after,
    }
}

/// The page for a request that cannot go on: `400` with the reason, or `500` (logged).
fn failure_page(pages: &Pages, failure: Failure) -> Answer {
    let (status, heading, message) = match &failure {
        Failure::Page(message) => (Status::BadRequest, "Sign-in problem", message.as_str()),
        Failure::Internal(cause) => {
            rocket::error!("authorization endpoint: {cause}");
            (
                Status::InternalServerError,
                "Something went wrong",
                "The sign-in service could not complete the request. Try again later.",
            )
        }
    };
    let html = pages
        .message(heading, message, true)
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".into());
    Answer::Page {
        status,
        html,
        form_target: None,
        retry_after: None,
    }
}

/// The authorization request's parameters (OpenID Connect Core §3.1.2.1); unknown ones are
/// ignored.
#[derive(FromForm, Default)]
struct AuthorizeForm {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
    resource: Vec<String>,
}

impl From<AuthorizeForm> for AuthorizeParams {
    fn from(f: AuthorizeForm) -> AuthorizeParams {
        AuthorizeParams {
            response_type: f.response_type,
            client_id: f.client_id,
            redirect_uri: f.redirect_uri,
            scope: f.scope,
            state: f.state,
            nonce: f.nonce,
            code_challenge: f.code_challenge,
            code_challenge_method: f.code_challenge_method,
            prompt: f.prompt,
            max_age: f.max_age,
            login_hint: f.login_hint,
            request: f.request,
            request_uri: f.request_uri,
            resource: f.resource,
        }
    }
}

async fn authorize(
    app: &App,
    pages: &Pages,
    jar: &CookieJar<'_>,
    params: AuthorizeParams,
) -> Answer {
    let session = cookie_value(jar, session_cookie_name(app));
    let browser = cookie_value(jar, browser_cookie_name(app));
    let step = Provider::new(app)
        .authorize(
            &params,
            session.as_deref(),
            browser.as_deref(),
            app.clock.now(),
        )
        .await;
    match step {
        Ok(step) => answer(app, pages, jar, step),
        Err(failure) => failure_page(pages, failure),
    }
}

#[get("/authorize?<params..>")]
async fn authorize_get(
    app: &State<App>,
    pages: &State<Pages>,
    jar: &CookieJar<'_>,
    params: AuthorizeForm,
) -> Answer {
    authorize(app, pages, jar, params.into()).await
}

/// OpenID Connect Core §3.1.2.1: the authorization endpoint accepts a form post too.
#[post("/authorize", data = "<params>")]
async fn authorize_post(
    app: &State<App>,
    pages: &State<Pages>,
    jar: &CookieJar<'_>,
    params: Option<Form<Lenient<AuthorizeForm>>>,
) -> Answer {
    let params = params
        .map(|f| f.into_inner().into_inner())
        .unwrap_or_default();
    authorize(app, pages, jar, params.into()).await
}

#[derive(FromForm)]
struct LoginFields {
    request_id: Option<String>,
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[post("/authorize/login", data = "<form>")]
async fn login(
    app: &State<App>,
    pages: &State<Pages>,
    jar: &CookieJar<'_>,
    address: Option<IpAddr>,
    form: Option<Form<Lenient<LoginFields>>>,
) -> Answer {
    let Some(fields) = form.map(|f| f.into_inner().into_inner()) else {
        return failure_page(
            pages,
            Failure::Page("The sign-in form was incomplete.".into()),
        );
    };
    let username = fields.username.unwrap_or_default();
    let form = LoginForm {
        request_id: fields.request_id.unwrap_or_default(),
        csrf: fields.csrf.unwrap_or_default(),
        password: fields
            .password
            .filter(|p| !p.is_empty())
            .and_then(|p| Password::for_login(p).ok()),
        username: username.clone(),
    };
    let browser = cookie_value(jar, browser_cookie_name(app));
    let session = cookie_value(jar, session_cookie_name(app));
    let device = cookies::device(jar);
    let result = Provider::new(app)
        .login(
            form,
            browser.as_deref(),
            session.as_deref(),
            address,
            device.as_deref(),
            app.clock.now(),
        )
        .await;
    match result {
        Ok((new_session, step)) => {
            if let Some(NewSession { secret, max_age }) = new_session {
                set_cookie(app, jar, session_cookie_name(app), secret, max_age);
                cookies::set_device(app, jar, &username);
            }
            if matches!(step, Step::Redirect(_)) {
                remove_cookie(app, jar, browser_cookie_name(app));
            }
            answer(app, pages, jar, step)
        }
        Err(failure) => failure_page(pages, failure),
    }
}

#[derive(FromForm)]
struct ConsentFields {
    request_id: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

#[post("/authorize/consent", data = "<form>")]
async fn consent(
    app: &State<App>,
    pages: &State<Pages>,
    jar: &CookieJar<'_>,
    form: Option<Form<Lenient<ConsentFields>>>,
) -> Answer {
    let Some(fields) = form.map(|f| f.into_inner().into_inner()) else {
        return failure_page(
            pages,
            Failure::Page("The consent form was incomplete.".into()),
        );
    };
    let allow = match fields.decision.as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return failure_page(pages, Failure::Page("Choose Allow or Deny.".into()));
        }
    };
    let browser = cookie_value(jar, browser_cookie_name(app));
    let session = cookie_value(jar, session_cookie_name(app));
    let step = Provider::new(app)
        .consent(
            fields.request_id.as_deref().unwrap_or_default(),
            fields.csrf.as_deref().unwrap_or_default(),
            allow,
            browser.as_deref(),
            session.as_deref(),
            app.clock.now(),
        )
        .await;
    match step {
        Ok(step) => {
            remove_cookie(app, jar, browser_cookie_name(app));
            answer(app, pages, jar, step)
        }
        Err(failure) => failure_page(pages, failure),
    }
}

/// The stylesheet with its cache header.
#[derive(rocket::Responder)]
#[response(content_type = "text/css")]
struct Css {
    body: &'static str,
    cache: Header<'static>,
}

/// The pages' stylesheet (the only asset).
#[get("/assets/stamp.css")]
fn stylesheet() -> Css {
    Css {
        body: STYLESHEET,
        cache: Header::new("Cache-Control", "public, max-age=86400"),
    }
}

/// A live access token of a user, with its claims (userinfo needs the scope).
pub struct UserToken {
    claims: AccessClaims,
    user: User,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for UserToken {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        // Userinfo serves every API's user tokens (RFC 8707 audiences) as well as the default.
        match live_token(req, Audience::AnyApi).await {
            Ok(live) => match live.owner {
                TokenOwner::User(user) => Outcome::Success(UserToken {
                    claims: live.claims,
                    user,
                }),
                TokenOwner::Client(_) => insufficient_scope().fail_guard(req),
            },
            Err(err) => err.fail_guard(req),
        }
    }
}

fn insufficient_scope() -> ApiError {
    let mut err = ApiError::new(
        Status::Forbidden,
        "insufficient_scope",
        "userinfo needs a user's access token with the openid scope",
    );
    err.www_authenticate =
        Some(r#"Bearer realm="stamp", error="insufficient_scope", scope="openid""#.into());
    err
}

fn userinfo(token: UserToken) -> Result<super::NoStore<Json<serde_json::Value>>, ApiError> {
    match oidc::userinfo(&token.claims, &token.user) {
        Some(info) => Ok(super::NoStore(Json(info))),
        None => Err(insufficient_scope()),
    }
}

/// OpenID Connect Core §5.3: the claims of the user the bearer token speaks for.
#[get("/userinfo")]
fn userinfo_get(token: UserToken) -> Result<super::NoStore<Json<serde_json::Value>>, ApiError> {
    userinfo(token)
}

#[post("/userinfo")]
fn userinfo_post(token: UserToken) -> Result<super::NoStore<Json<serde_json::Value>>, ApiError> {
    userinfo(token)
}

#[derive(FromForm, Default)]
struct EndSessionForm {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// The confirmation of the sign-out page ([`logout_confirmation`]).
    confirm: Option<String>,
}

/// What the sign-out confirmation form carries: derived from the browser's session cookie, which
/// another site can neither read nor send along a cross-site POST (SameSite=Lax).
fn logout_confirmation(session_cookie: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"stamp end-session confirmation\0")
        .chain_update(session_cookie.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

async fn end_session(
    app: &App,
    pages: &Pages,
    jar: &CookieJar<'_>,
    form: EndSessionForm,
) -> Answer {
    // RP-Initiated Logout 1.0 §2: without an `id_token_hint` nothing shows that the user's own
    // application asked, so the user confirms first (otherwise any site could sign its visitors
    // out with a link).
    let hinted = form.id_token_hint.as_deref().is_some_and(|h| !h.is_empty());
    if !hinted && let Some(session) = cookie_value(jar, session_cookie_name(app)) {
        let expected = logout_confirmation(&session);
        let confirmed = form.confirm.as_deref().is_some_and(|given| {
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
        });
        if !confirmed {
            let target = form
                .post_logout_redirect_uri
                .as_deref()
                .and_then(oidc::request::csp_source);
            let html = pages
                .confirm_logout(
                    &expected,
                    form.client_id.as_deref(),
                    form.post_logout_redirect_uri.as_deref(),
                    form.state.as_deref(),
                )
                .unwrap_or_default();
            return Answer::Page {
                status: Status::Ok,
                html,
                form_target: target,
                retry_after: None,
            };
        }
    }
    let params = EndSessionParams {
        id_token_hint: form.id_token_hint,
        post_logout_redirect_uri: form.post_logout_redirect_uri,
        state: form.state,
        client_id: form.client_id,
    };
    let session = cookie_value(jar, session_cookie_name(app));
    let ended = Provider::new(app)
        .end_session(&params, session.as_deref(), app.clock.now())
        .await;
    match ended {
        Ok(redirect) => {
            remove_cookie(app, jar, session_cookie_name(app));
            match redirect {
                Some(location) => Answer::Redirect(location),
                None => {
                    let html = pages
                        .message(
                            "Signed out",
                            "You are signed out of this sign-in service.",
                            false,
                        )
                        .unwrap_or_default();
                    Answer::Page {
                        status: Status::Ok,
                        html,
                        form_target: None,
                        retry_after: None,
                    }
                }
            }
        }
        Err(failure) => failure_page(pages, failure),
    }
}

/// OpenID Connect RP-Initiated Logout 1.0 (`end_session_endpoint`).
#[get("/end-session?<params..>")]
async fn end_session_get(
    app: &State<App>,
    pages: &State<Pages>,
    jar: &CookieJar<'_>,
    params: EndSessionForm,
) -> Answer {
    end_session(app, pages, jar, params).await
}

#[post("/end-session", data = "<form>")]
async fn end_session_post(
    app: &State<App>,
    pages: &State<Pages>,
    jar: &CookieJar<'_>,
    form: Option<Form<Lenient<EndSessionForm>>>,
) -> Answer {
    let form = form
        .map(|f| f.into_inner().into_inner())
        .unwrap_or_default();
    end_session(app, pages, jar, form).await
}

/// The third-party clients the bearer's user has consented to.
#[get("/account/consents")]
async fn list_consents(
    app: &State<App>,
    holder: AccountHolder,
) -> Result<super::NoStore<Json<Vec<Consent>>>, ApiError> {
    Ok(super::NoStore(Json(
        app.store.list_consents(&holder.user.id).await?,
    )))
}

/// Withdraws a consent (`204`; `404` if there was none): the next sign-in asks again, and the
/// refresh tokens the user holds with that client are revoked. Audited, the user as actor.
#[delete("/account/consents/<client_id>")]
async fn revoke_consent(
    app: &State<App>,
    holder: AccountHolder,
    client_id: &str,
) -> Result<Status, ApiError> {
    let actor = Actor::User {
        id: holder.user.id.clone(),
    };
    app.admin
        .revoke_consent(&actor, UserRef::Id(&holder.user.id), client_id)
        .await?;
    Ok(Status::NoContent)
}

/// A user's consents, for an administrator.
#[get("/admin/users/<id>/consents")]
async fn admin_list_consents(
    app: &State<App>,
    _admin: Admin,
    id: &str,
) -> Result<super::NoStore<Json<Vec<Consent>>>, ApiError> {
    Ok(super::NoStore(Json(
        app.admin.consents(UserRef::Id(id)).await?,
    )))
}

/// Withdraws a user's consent to a client, as an administrator (`204`, `404` if none).
#[delete("/admin/users/<id>/consents/<client_id>")]
async fn admin_revoke_consent(
    app: &State<App>,
    admin: Admin,
    id: &str,
    client_id: &str,
) -> Result<Status, ApiError> {
    app.admin
        .revoke_consent(&admin.actor, UserRef::Id(id), client_id)
        .await?;
    Ok(Status::NoContent)
}
