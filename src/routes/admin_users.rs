//! `POST /admin/users/{id}/revoke-tokens`: "log out everywhere" for one user.

use rocket::serde::json::Json;
use rocket::{Route, State, post, routes};
use serde::Serialize;

use crate::App;
use crate::auth::Admin;
use crate::clock;
use crate::error::ApiError;
use crate::store::AuditEvent;

#[derive(Serialize)]
struct Revoked {
    id: String,
    username: String,
    token_version: i64,
}

/// Bumps the user's token version: every refresh token they hold stops working at once.
/// Access tokens already issued stay valid offline until they expire (docs/sessions.md).
#[post("/admin/users/<id>/revoke-tokens")]
async fn revoke_tokens(
    app: &State<App>,
    admin: Admin,
    id: &str,
) -> Result<Json<Revoked>, ApiError> {
    let now = clock::now();
    let user = app.store.revoke_user_tokens(id, now).await?;
    let event = AuditEvent {
        at: now,
        actor: admin.actor,
        action: "users.revoke_tokens".into(),
        target: Some(user.id.clone()),
        detail: Some(format!("token_version={}", user.token_version)),
    };
    // The revocation is committed; a failed audit write is logged, not reported as failure.
    if let Err(e) = app.store.record_audit(&event).await {
        rocket::error!("audit log write failed for users.revoke_tokens: {e}");
    }
    Ok(Json(Revoked {
        id: user.id,
        username: user.username,
        token_version: user.token_version,
    }))
}

pub fn routes() -> Vec<Route> {
    routes![revoke_tokens]
}
