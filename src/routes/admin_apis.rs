//! The API registry's admin API (`/admin/apis…`): register resource servers (RFC 8707
//! audiences) with the scopes they define, list, read, change and delete them. An API is
//! addressed by its short `id` (`/admin/apis/orders`); its `identifier` (the audience, a URI) is
//! a field, so no URI ever has to be escaped into a path. Each change goes through the admin
//! service (one audit entry in the change's transaction).

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::response::status::Created;
use rocket::serde::json::{self, Json};
use rocket::{State, delete, get, patch, post, routes};
use serde::Deserialize;

use crate::App;
use crate::admin::{Admin, ApiUpdate, NewResourceServer};
use crate::error::ApiError;
use crate::store::{Api, ApiName, ClientId, ResourceId, Scope};

use super::admin_clients::{invalid, parse_all};
use super::json_error;

/// The API registry's admin API.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: apis", |rocket| async {
        rocket.mount(
            "/",
            routes![
                list,
                create,
                create_wrong_type,
                show,
                update,
                update_wrong_type,
                remove
            ],
        )
    })
}

/// Every registered API, by id.
#[get("/admin/apis")]
async fn list(app: &State<App>, _admin: Admin) -> Result<Json<Vec<Api>>, ApiError> {
    Ok(Json(app.admin.list_apis().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    identifier: String,
    /// Defaults to the id.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Registers an API: `201` with it; `409` if the id or identifier is taken (or is the default
/// audience); `400` for a bad value (an identifier that is not an absolute URI, say).
#[post("/admin/apis", format = "json", data = "<body>")]
async fn create(
    app: &State<App>,
    admin: Admin,
    body: Result<Json<CreateBody>, json::Error<'_>>,
) -> Result<Created<Json<Api>>, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let id = ClientId::parse(&body.id).map_err(|e| invalid("id", e))?;
    let name = body.name.as_deref().unwrap_or(id.as_str());
    let new = NewResourceServer {
        identifier: ResourceId::parse(&body.identifier).map_err(|e| invalid("identifier", e))?,
        name: ApiName::parse(name).map_err(|e| invalid("name", e))?,
        scopes: parse_all(&body.scopes, Scope::parse, "scopes")?,
        id,
    };
    let api = app
        .admin
        .add_api(&admin.actor, new, &app.config.audience)
        .await?;
    let location = format!("/admin/apis/{}", api.id);
    Ok(Created::new(location).body(Json(api)))
}

/// Any other content type: 415 (after the admin check).
#[post("/admin/apis", rank = 2)]
fn create_wrong_type(_admin: Admin) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}

/// One API (`404` if unknown).
#[get("/admin/apis/<id>")]
async fn show(app: &State<App>, _admin: Admin, id: &str) -> Result<Json<Api>, ApiError> {
    Ok(Json(app.admin.api(id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
}

/// Changes the name or the scopes (the identifier never changes: tokens carry it); `404` if
/// unknown.
#[patch("/admin/apis/<id>", format = "json", data = "<body>")]
async fn update(
    app: &State<App>,
    admin: Admin,
    id: &str,
    body: Result<Json<UpdateBody>, json::Error<'_>>,
) -> Result<Json<Api>, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let update = ApiUpdate {
        name: body
            .name
            .map(|n| ApiName::parse(&n).map_err(|e| invalid("name", e)))
            .transpose()?,
        scopes: body
            .scopes
            .map(|s| parse_all(&s, Scope::parse, "scopes"))
            .transpose()?,
    };
    if update.name.is_none() && update.scopes.is_none() {
        return Err(ApiError::invalid_request(
            "nothing to change: give name or scopes",
        ));
    }
    Ok(Json(app.admin.update_api(&admin.actor, id, update).await?))
}

/// Any other content type: 415 (after the admin check).
#[patch("/admin/apis/<_id>", rank = 2)]
fn update_wrong_type(_admin: Admin, _id: &str) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}

/// Deletes an API (`204`): its tokens are no longer accepted by introspection and its refresh
/// families cannot refresh.
#[delete("/admin/apis/<id>")]
async fn remove(app: &State<App>, admin: Admin, id: &str) -> Result<Status, ApiError> {
    app.admin.delete_api(&admin.actor, id).await?;
    Ok(Status::NoContent)
}
