//! `POST /account/password`: a user changes their own password. The change is made and audited
//! by [`crate::admin::AdminService::change_own_password`].

use std::net::IpAddr;

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{self, Json};
use rocket::{State, post, routes};
use serde::Deserialize;

use crate::App;
use crate::admin::PasswordChange;
use crate::auth::Password;
use crate::error::ApiError;

use super::guards::AccountHolder;
use super::json_error;

/// A user's own account endpoints.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("account", |rocket| async {
        rocket.mount("/", routes![change_password, change_password_wrong_type])
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    current_password: String,
    new_password: String,
}

/// `204` once the password is changed. Every session of the user ends with it, the bearer
/// token of this request included: the token version is bumped.
#[post("/account/password", format = "json", data = "<body>")]
async fn change_password(
    app: &State<App>,
    holder: AccountHolder,
    address: Option<IpAddr>,
    body: Result<Json<ChangeBody>, json::Error<'_>>,
) -> Result<Status, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let new = app
        .config
        .password_policy
        .check(body.new_password, &[holder.user.username.as_str()])
        .await
        .map_err(|e| ApiError::invalid_request(format!("new_password: {e}")))?;
    let current = Password::for_login(body.current_password)
        .map_err(|e| ApiError::invalid_request(format!("current_password: {e}")))?;
    let change = PasswordChange {
        user: holder.user,
        current,
        new,
        address,
    };
    app.admin
        .change_own_password(&app.auth, &app.passwords, change)
        .await?;
    Ok(Status::NoContent)
}

/// Any other content type: 415 (after the token check), not a 404 for a route that exists.
#[post("/account/password", rank = 2)]
fn change_password_wrong_type(_holder: AccountHolder) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}
