//! The user admin API: `POST /admin/users/{id}/revoke-tokens` ("log out everywhere" for one
//! user) and `POST /admin/users/{id}/password` (a password reset).

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{self, Json};
use rocket::{State, post, routes};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::admin::{Admin, UserRef};
use crate::error::ApiError;

use super::json_error;

/// The user admin API.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: users", |rocket| async {
        rocket.mount(
            "/",
            routes![revoke_tokens, reset_password, reset_password_wrong_type],
        )
    })
}

#[derive(Serialize)]
struct Revoked {
    id: String,
    username: String,
    token_version: i64,
}

/// Bumps the user's token version: every refresh token they hold stops working at once, and so
/// do their access tokens on every online check (admin API, logout, introspection). Offline
/// verifiers accept those until they expire.
#[post("/admin/users/<id>/revoke-tokens")]
async fn revoke_tokens(
    app: &State<App>,
    admin: Admin,
    id: &str,
) -> Result<Json<Revoked>, ApiError> {
    let user = app
        .admin
        .revoke_user_tokens(&admin.actor, UserRef::Id(id))
        .await?;
    Ok(Json(Revoked {
        id: user.id,
        username: user.username,
        token_version: user.token_version,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    password: String,
}

/// Sets the user's password (`204`); like [`revoke_tokens`], every session of the user ends.
#[post("/admin/users/<id>/password", format = "json", data = "<body>")]
async fn reset_password(
    app: &State<App>,
    admin: Admin,
    id: &str,
    body: Result<Json<ResetBody>, json::Error<'_>>,
) -> Result<Status, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let password = app
        .config
        .password_policy
        .check(body.password, &[])
        .await
        .map_err(|e| ApiError::invalid_request(format!("password: {e}")))?;
    app.admin
        .reset_password(&admin.actor, &app.passwords, UserRef::Id(id), password)
        .await?;
    Ok(Status::NoContent)
}

/// Any other content type: 415 (after the admin check), not a 404 for a route that exists.
#[post("/admin/users/<_id>/password", rank = 2)]
fn reset_password_wrong_type(_admin: Admin, _id: &str) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}
