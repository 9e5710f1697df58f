//! `POST /admin/users/{id}/revoke-tokens`: "log out everywhere" for one user.

use rocket::fairing::AdHoc;
use rocket::serde::json::Json;
use rocket::{State, post, routes};
use serde::Serialize;

use crate::App;
use crate::admin::{Admin, UserRef};
use crate::error::ApiError;

/// The user admin API.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: users", |rocket| async {
        rocket.mount("/", routes![revoke_tokens])
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
