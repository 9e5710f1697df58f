//! Session endpoints: `POST /logout`, RFC 7009 `POST /oauth/revoke`, RFC 7662
//! `POST /oauth/introspect`; the session cookies; client authentication from the request.

use rocket::fairing::AdHoc;
use rocket::form::{self, Form, FromForm};
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::{self, Json};
use rocket::time::Duration;
use rocket::{Route, State, post, routes};
use secrecy::ExposeSecret;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::App;
use crate::auth::{ClientCredentials, Introspection, Session, TokenHint};
use crate::clock;
use crate::error::ApiError;
use crate::store::Client;

use super::guards::bearer_token;
use super::{TokenResponse, form_error, json_error};

/// The access-token cookie: sent with every request to the issuer's site (`Path=/`).
pub const ACCESS_COOKIE: &str = "stamp_access";
/// The refresh-token cookie, sent only to the token endpoint.
pub const REFRESH_COOKIE: &str = "stamp_refresh";
/// The same refresh token, sent only to the logout endpoint. A cookie has one `Path`, so the
/// two endpoints get one cookie each rather than one cookie scoped to `/`.
pub const LOGOUT_COOKIE: &str = "stamp_logout";

const TOKEN_PATH: &str = "/oauth/token";
const LOGOUT_PATH: &str = "/logout";

fn session_cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(Duration::seconds(max_age))
        .build()
}

/// Answers a grant: in cookie mode the tokens go into `HttpOnly` cookies (`Max-Age` = their
/// lifetimes in seconds) and are left out of the body; otherwise the usual JSON.
pub fn respond(
    app: &App,
    jar: &CookieJar<'_>,
    session: Session,
    cookie_mode: bool,
) -> TokenResponse {
    if !cookie_mode {
        return session.into();
    }
    let secure = app.config.cookies.secure;
    jar.add(session_cookie(
        ACCESS_COOKIE,
        session.access.access_token.expose_secret().to_string(),
        "/",
        session.access.expires_in,
        secure,
    ));
    if let Some(refresh) = &session.refresh {
        for (name, path) in [(REFRESH_COOKIE, TOKEN_PATH), (LOGOUT_COOKIE, LOGOUT_PATH)] {
            jar.add(session_cookie(
                name,
                refresh.token.expose().to_string(),
                path,
                refresh.expires_in,
                secure,
            ));
        }
    }
    TokenResponse {
        access_token: None,
        refresh_token: None,
        ..session.into()
    }
}

/// Expires every session cookie.
pub fn clear_cookies(app: &App, jar: &CookieJar<'_>) {
    let secure = app.config.cookies.secure;
    for (name, path) in [
        (ACCESS_COOKIE, "/"),
        (REFRESH_COOKIE, TOKEN_PATH),
        (LOGOUT_COOKIE, LOGOUT_PATH),
    ] {
        jar.remove(
            Cookie::build(name)
                .path(path)
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Strict),
        );
    }
}

/// The raw `Authorization` header, if its scheme is Basic (client authentication).
pub struct BasicAuth<'r>(pub Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BasicAuth<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let header = req.headers().get_one("Authorization").filter(|h| {
            h.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
        });
        Outcome::Success(BasicAuth(header))
    }
}

/// Picks the one client authentication method used (RFC 6749 §2.3: never more than one):
/// `client_secret_basic` from the header or `client_secret_post` from the form.
pub fn client_credentials(
    basic: &BasicAuth<'_>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<ClientCredentials, ApiError> {
    if let Some(header) = basic.0 {
        if form_secret.is_some() {
            return Err(ApiError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ));
        }
        let credentials = match ClientCredentials::from_basic(header) {
            Some(parsed) => parsed?,
            None => return Err(ApiError::invalid_client("malformed Basic credentials")),
        };
        if form_id.is_some_and(|id| id != credentials.client_id) {
            return Err(ApiError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        return Ok(credentials);
    }
    match (form_id, form_secret) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(ClientCredentials {
            client_id: id.to_string(),
            secret: Zeroizing::new(secret.to_string()),
        }),
        _ => Err(ApiError::invalid_client(
            "client authentication is required",
        )),
    }
}

/// Authenticates the calling client.
pub async fn authenticate(
    app: &App,
    basic: &BasicAuth<'_>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Client, ApiError> {
    let credentials = client_credentials(basic, form_id, form_secret)?;
    Ok(app.auth.authenticate_client(&credentials).await?)
}

#[derive(FromForm, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    refresh_token: Option<String>,
}

async fn logout(
    app: &App,
    req_bearer: Option<&str>,
    jar: &CookieJar<'_>,
    body: LogoutBody,
) -> Result<Status, ApiError> {
    let refresh = body
        .refresh_token
        .filter(|t| !t.is_empty())
        .or_else(|| jar.get(LOGOUT_COOKIE).map(|c| c.value().to_string()))
        .or_else(|| jar.get(REFRESH_COOKIE).map(|c| c.value().to_string()));
    let access = req_bearer
        .map(str::to_string)
        .or_else(|| jar.get(ACCESS_COOKIE).map(|c| c.value().to_string()));
    if refresh.is_none() && access.is_none() {
        return Err(ApiError::invalid_request(
            "send the refresh token (body or cookie) and/or the access token (Bearer)",
        ));
    }
    app.auth
        .logout(refresh.as_deref(), access.as_deref(), clock::now())
        .await?;
    clear_cookies(app, jar);
    Ok(Status::NoContent)
}

/// The bearer token of the request, if any.
pub struct Bearer<'r>(Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Bearer<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Bearer(bearer_token(req)))
    }
}

#[post("/logout", format = "form", data = "<form>")]
async fn logout_form(
    app: &State<App>,
    bearer: Bearer<'_>,
    jar: &CookieJar<'_>,
    form: Result<Form<LogoutBody>, form::Errors<'_>>,
) -> Result<Status, ApiError> {
    let body = form.map_err(form_error)?.into_inner();
    logout(app, bearer.0, jar, body).await
}

#[post("/logout", format = "json", data = "<body>", rank = 2)]
async fn logout_json(
    app: &State<App>,
    bearer: Bearer<'_>,
    jar: &CookieJar<'_>,
    body: Result<Json<LogoutBody>, json::Error<'_>>,
) -> Result<Status, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    logout(app, bearer.0, jar, body).await
}

/// No body (or one of another type, ignored): the cookie and the bearer token only.
#[post("/logout", rank = 3)]
async fn logout_bare(
    app: &State<App>,
    bearer: Bearer<'_>,
    jar: &CookieJar<'_>,
) -> Result<Status, ApiError> {
    logout(
        app,
        bearer.0,
        jar,
        LogoutBody {
            refresh_token: None,
        },
    )
    .await
}

/// The parameters of revocation and introspection requests (RFC 7009 §2.1, RFC 7662 §2.1).
#[derive(FromForm)]
struct TokenForm {
    token: Option<String>,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_param(form: &TokenForm) -> Result<&str, ApiError> {
    form.token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid_request("missing parameter `token`"))
}

/// Hints are only hints (RFC 7009 §2.1): an unknown one is ignored.
fn hint(form: &TokenForm) -> Option<TokenHint> {
    match form.token_type_hint.as_deref() {
        Some("access_token") => Some(TokenHint::AccessToken),
        Some("refresh_token") => Some(TokenHint::RefreshToken),
        _ => None,
    }
}

#[post("/oauth/revoke", data = "<form>")]
async fn revoke(
    app: &State<App>,
    basic: BasicAuth<'_>,
    form: Result<Form<TokenForm>, form::Errors<'_>>,
) -> Result<Status, ApiError> {
    let form = form.map_err(form_error)?.into_inner();
    let client = authenticate(
        app,
        &basic,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    )
    .await?;
    let token = token_param(&form)?;
    app.auth
        .revoke(&client, token, hint(&form), clock::now())
        .await?;
    Ok(Status::Ok)
}

#[post("/oauth/introspect", data = "<form>")]
async fn introspect(
    app: &State<App>,
    basic: BasicAuth<'_>,
    form: Result<Form<TokenForm>, form::Errors<'_>>,
) -> Result<NoStore<Json<Introspection>>, ApiError> {
    let form = form.map_err(form_error)?.into_inner();
    authenticate(
        app,
        &basic,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    )
    .await?;
    let token = token_param(&form)?;
    Ok(NoStore(Json(
        app.auth.introspect(token, clock::now()).await?,
    )))
}

/// Wraps a response with `Cache-Control: no-store` (RFC 7662 answers describe live state).
pub struct NoStore<R>(pub R);

impl<'r, R: rocket::response::Responder<'r, 'static>> rocket::response::Responder<'r, 'static>
    for NoStore<R>
{
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        rocket::Response::build_from(self.0.respond_to(req)?)
            .raw_header("Cache-Control", "no-store")
            .ok()
    }
}

/// Background pruning: once an hour, delete expired refresh tokens, families past their
/// absolute lifetime and expired denylist entries, so the tables stay as large as the live
/// sessions. Stops with the server.
pub fn upkeep() -> AdHoc {
    AdHoc::on_liftoff("session upkeep", |rocket| {
        Box::pin(async move {
            let Some(app) = rocket.state::<App>() else {
                return;
            };
            let store = app.store.clone();
            let mut shutdown = rocket.shutdown();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = interval.tick() => {
                            if let Err(e) = store.prune_expired(clock::now()).await {
                                rocket::error!("session pruning failed: {e}");
                            }
                        }
                    }
                }
            });
        })
    })
}

pub fn routes() -> Vec<Route> {
    routes![logout_form, logout_json, logout_bare, revoke, introspect]
}
