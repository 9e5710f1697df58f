//! Session endpoints: `POST /logout`, RFC 7009 `POST /oauth/revoke`, RFC 7662
//! `POST /oauth/introspect`.

use rocket::fairing::AdHoc;
use rocket::form::{self, Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::serde::json::{self, Json};
use rocket::{State, post, routes};
use serde::Deserialize;

use crate::App;
use crate::auth::{Introspection, TokenHint};
use crate::error::ApiError;

use super::client_auth::{BasicAuth, authenticate};
use super::cookies::{self, ACCESS_COOKIE, LOGOUT_COOKIE, REFRESH_COOKIE};
use super::guards::Bearer;
use super::{NoStore, form_error, json_error};

/// The session endpoints (sessions are pruned by [`crate::jobs`]).
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("sessions", |rocket| async {
        rocket.mount(
            "/",
            routes![logout_form, logout_json, logout_bare, revoke, introspect],
        )
    })
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
        .logout(refresh.as_deref(), access.as_deref(), app.clock.now())
        .await?;
    cookies::clear(app, jar);
    Ok(Status::NoContent)
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
        .revoke(&client, token, hint(&form), app.clock.now())
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
        app.auth.introspect(token, app.clock.now()).await?,
    )))
}
