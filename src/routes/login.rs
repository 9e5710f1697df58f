//! `POST /login`: JSON `{username, password}` login for first-party apps, optionally in cookie
//! mode (`"cookie": true`, or the `cookie_mode` setting).

use std::net::IpAddr;

use rocket::fairing::AdHoc;
use rocket::http::CookieJar;
use rocket::serde::json::{self, Json};
use rocket::{State, post, routes};
use serde::Deserialize;

use crate::App;
use crate::auth::{LoginRequest, Password};
use crate::error::ApiError;

use super::client_auth::{BasicAuth, named_client_id, presented_client};
use super::request_log::LogEntry;
use super::{TokenResponse, cookies, json_error};

/// The JSON login endpoint.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("login", |rocket| async {
        rocket.mount("/", routes![login, login_wrong_type])
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    scope: Option<String>,
    /// The client logging the user in (a public client; a confidential one adds Basic
    /// credentials); none names the default client.
    #[serde(default)]
    client_id: Option<String>,
    /// Set the tokens as `HttpOnly` cookies instead of returning them in the body.
    #[serde(default)]
    cookie: bool,
}

#[post("/login", format = "json", data = "<body>")]
async fn login(
    app: &State<App>,
    jar: &CookieJar<'_>,
    basic: BasicAuth<'_>,
    address: Option<IpAddr>,
    log: LogEntry<'_>,
    body: Result<Json<LoginBody>, json::Error<'_>>,
) -> Result<TokenResponse, ApiError> {
    // Noted before the body is checked, so a malformed login is a refused grant too.
    let named = body.as_ref().ok().and_then(|b| b.client_id.as_deref());
    let client_id = named_client_id(&basic, named);
    log.grant(
        "password",
        Some(
            client_id
                .as_deref()
                .unwrap_or(&app.config.default_client_id),
        ),
    );
    let body = body.map_err(json_error)?.into_inner();
    if body.username.is_empty() {
        return Err(ApiError::invalid_request("missing field `username`"));
    }
    let username = body.username.clone();
    let request = LoginRequest {
        username: body.username,
        password: Password::for_login(body.password)
            .map_err(|e| ApiError::invalid_request(e.to_string()))?,
        scope: body.scope,
        client: presented_client(&basic, body.client_id.as_deref(), None)?,
        address,
        device: cookies::device(jar),
        resource: None,
    };
    let session = app.auth.password_grant(request, app.clock.now()).await;
    app.metrics.grant(crate::metrics::Grant::Password, &session);
    let session = session?;
    cookies::set_device(app, jar, &username);
    let cookie_mode = body.cookie || app.config.cookies.mode;
    Ok(cookies::respond(app, jar, session, cookie_mode))
}

/// Any other content type: 415, not a 404 for a route that exists.
#[post("/login", rank = 2)]
fn login_wrong_type() -> ApiError {
    ApiError::unsupported_media_type("application/json")
}
