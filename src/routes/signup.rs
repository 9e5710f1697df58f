//! `POST /signup`: anyone creates an account (setting `signup`, off by default), then is logged
//! in as by `/login` through the default client, cookie mode included.
//!
//! Each sign-up is counted against its address by the login throttle before anything else
//! ([`crate::auth::Authenticator::reserve_signup`]); the new password must meet the
//! configured [`crate::auth::PasswordPolicy`].

use std::net::IpAddr;

use rocket::fairing::AdHoc;
use rocket::http::{CookieJar, Status};
use rocket::serde::json::{self, Json};
use rocket::{State, post, routes};
use serde::Deserialize;

use crate::App;
use crate::admin::AdminError;
use crate::auth::PresentedClient;
use crate::error::ApiError;
use crate::store::{StoreError, Username};

use super::{TokenResponse, cookies, json_error};

/// The sign-up endpoint (answers 404 while `signup` is off).
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("signup", |rocket| async {
        rocket.mount("/", routes![signup, signup_wrong_type])
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    username: String,
    password: String,
    /// Set the tokens as `HttpOnly` cookies instead of returning them in the body.
    #[serde(default)]
    cookie: bool,
}

/// `201 Created` with the tokens of `/login`; `409` if the username is taken, `400` naming the
/// password rule broken, `429` when the address has signed up (or failed to log in) too often.
#[post("/signup", format = "json", data = "<body>")]
async fn signup(
    app: &State<App>,
    jar: &CookieJar<'_>,
    address: Option<IpAddr>,
    body: Result<Json<SignupBody>, json::Error<'_>>,
) -> Result<(Status, TokenResponse), ApiError> {
    if !app.config.signup {
        return Err(not_found());
    }
    let body = body.map_err(json_error)?.into_inner();
    let username = Username::parse(&body.username)
        .map_err(|e| ApiError::invalid_request(format!("username: {e}")))?;
    app.auth.reserve_signup(address, app.clock.now())?;
    let password = app
        .config
        .password_policy
        .check(body.password, &[username.as_str()])
        .await
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let user = app
        .admin
        .sign_up(&app.passwords, username, password)
        .await
        .map_err(|e| match e {
            AdminError::Store(StoreError::Conflict(_)) => {
                ApiError::new(Status::Conflict, "invalid_request", "username taken")
            }
            other => other.into(),
        })?;
    let session = app
        .auth
        .signup_session(&user, PresentedClient::Default, app.clock.now())
        .await;
    app.metrics.grant(crate::metrics::Grant::Password, &session);
    let session = session?;
    cookies::set_device(app, jar, &user.username);
    let cookie_mode = body.cookie || app.config.cookies.mode;
    Ok((
        Status::Created,
        cookies::respond(app, jar, session, cookie_mode),
    ))
}

/// Any other content type: 415 (404 while sign-up is off), not a 404 for a route that exists.
#[post("/signup", rank = 2)]
fn signup_wrong_type(app: &State<App>) -> ApiError {
    if !app.config.signup {
        return not_found();
    }
    ApiError::unsupported_media_type("application/json")
}

/// The catchers' body for a path that does not exist.
fn not_found() -> ApiError {
    ApiError::new(Status::NotFound, "not_found", "no such resource")
}
