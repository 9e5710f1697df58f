//! The client admin API: list, create, read, change and delete clients, and rotate a
//! confidential client's secret (`/admin/clients…`). Each change goes through the admin
//! service (one audit entry) and makes this process forget its cached record of the client;
//! other processes see it within `client_cache_ttl` seconds.

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::response::status::Created;
use rocket::serde::json::{self, Json};
use rocket::{State, delete, get, patch, post, routes};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::admin::{Admin, ClientUpdate, NewServiceClient};
use crate::error::ApiError;
use crate::keys::Alg;
use crate::store::{Client, ClientId, GrantType, RedirectUri, Scope};

use super::json_error;

/// The client admin API.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: clients", |rocket| async {
        rocket.mount(
            "/",
            routes![
                list,
                create,
                create_wrong_type,
                show,
                update,
                update_wrong_type,
                remove,
                rotate_secret
            ],
        )
    })
}

/// A client as created: its record and, for a confidential client, its secret (shown once).
#[derive(Serialize)]
struct WithSecret {
    #[serde(flatten)]
    client: Client,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// Every client, by id (never a secret or its hash).
#[get("/admin/clients")]
async fn list(app: &State<App>, _admin: Admin) -> Result<Json<Vec<Client>>, ApiError> {
    Ok(Json(app.admin.list_clients().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    alg: Option<String>,
    /// Third-party clients get a consent screen; default first-party.
    #[serde(default = "yes")]
    first_party: bool,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Creates a client with the rules of `stamp clients add`: `201` with the client and, for a
/// confidential one, its secret; `409` if the id is taken; `400` for a bad value.
#[post("/admin/clients", format = "json", data = "<body>")]
async fn create(
    app: &State<App>,
    admin: Admin,
    body: Result<Json<CreateBody>, json::Error<'_>>,
) -> Result<Created<Json<WithSecret>>, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let id = ClientId::parse(&body.id).map_err(|e| invalid("id", e))?;
    let alg = body
        .alg
        .map(|a| a.parse::<Alg>())
        .transpose()
        .map_err(|e| invalid("alg", format!("{e} (use ES256 or RS256)")))?;
    let new = NewServiceClient {
        id,
        scopes: parse_all(&body.scopes, Scope::parse, "scopes")?,
        alg,
        public: body.public,
        grants: parse_all(&body.grants, GrantType::parse, "grants")?,
        redirect_uris: parse_all(&body.redirect_uris, RedirectUri::parse, "redirect_uris")?,
        first_party: body.first_party,
        post_logout_redirect_uris: parse_all(
            &body.post_logout_redirect_uris,
            RedirectUri::parse,
            "post_logout_redirect_uris",
        )?,
    };
    let (client, secret) = app.admin.add_client(&admin.actor, &app.keys, new).await?;
    app.auth.client_cache().forget(&client.id);
    let location = format!("/admin/clients/{}", client.id);
    let body = WithSecret {
        client,
        client_secret: secret.map(|s| s.expose().to_string()),
    };
    Ok(Created::new(location).body(Json(body)))
}

/// Any other content type: 415 (after the admin check).
#[post("/admin/clients", rank = 2)]
fn create_wrong_type(_admin: Admin) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}

/// One client (`404` if unknown).
#[get("/admin/clients/<id>")]
async fn show(app: &State<App>, _admin: Admin, id: &str) -> Result<Json<Client>, ApiError> {
    Ok(Json(app.admin.client(id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    scopes: Option<Vec<String>>,
    grants: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    enabled: Option<bool>,
    first_party: Option<bool>,
    post_logout_redirect_uris: Option<Vec<String>>,
}

/// Changes what the body names (checked as at creation); `404` if unknown.
#[patch("/admin/clients/<id>", format = "json", data = "<body>")]
async fn update(
    app: &State<App>,
    admin: Admin,
    id: &str,
    body: Result<Json<UpdateBody>, json::Error<'_>>,
) -> Result<Json<Client>, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let update = ClientUpdate {
        scopes: body
            .scopes
            .map(|s| parse_all(&s, Scope::parse, "scopes"))
            .transpose()?,
        grants: body
            .grants
            .map(|g| parse_all(&g, GrantType::parse, "grants"))
            .transpose()?,
        redirect_uris: body
            .redirect_uris
            .map(|u| parse_all(&u, RedirectUri::parse, "redirect_uris"))
            .transpose()?,
        enabled: body.enabled,
        first_party: body.first_party,
        post_logout_redirect_uris: body
            .post_logout_redirect_uris
            .map(|u| parse_all(&u, RedirectUri::parse, "post_logout_redirect_uris"))
            .transpose()?,
    };
    if update.scopes.is_none()
        && update.grants.is_none()
        && update.redirect_uris.is_none()
        && update.enabled.is_none()
        && update.first_party.is_none()
        && update.post_logout_redirect_uris.is_none()
    {
        return Err(ApiError::invalid_request(
            "nothing to change: give scopes, grants, redirect_uris, enabled, first_party or \
             post_logout_redirect_uris",
        ));
    }
    let client = app.admin.update_client(&admin.actor, id, update).await?;
    app.auth.client_cache().forget(id);
    Ok(Json(client))
}

/// Any other content type: 415 (after the admin check).
#[patch("/admin/clients/<_id>", rank = 2)]
fn update_wrong_type(_admin: Admin, _id: &str) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}

/// Deletes a client (`204`): its refresh-token families are revoked and its own tokens fail
/// every online check.
#[delete("/admin/clients/<id>")]
async fn remove(app: &State<App>, admin: Admin, id: &str) -> Result<Status, ApiError> {
    app.admin.delete_client(&admin.actor, id).await?;
    app.auth.client_cache().forget(id);
    Ok(Status::NoContent)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    overlap_secs: Option<u64>,
}

/// Gives a confidential client a new secret, shown once. An optional JSON body
/// `{"overlap_secs": N}` keeps the old secret valid for N seconds (at most 7 days); without it
/// the old secret stops working at once. A public client is `400`.
#[post("/admin/clients/<id>/secret", data = "<body>")]
async fn rotate_secret(
    app: &State<App>,
    admin: Admin,
    id: &str,
    body: String,
) -> Result<Json<WithSecret>, ApiError> {
    let body: RotateBody = if body.trim().is_empty() {
        RotateBody::default()
    } else {
        serde_json::from_str(&body).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::new(
                    Status::UnprocessableEntity,
                    "invalid_request",
                    format!("unexpected JSON fields: {e}"),
                )
            } else {
                ApiError::invalid_request(format!("malformed JSON: {e}"))
            }
        })?
    };
    let (client, secret) = app
        .admin
        .rotate_client_secret(&admin.actor, id, body.overlap_secs)
        .await?;
    app.auth.client_cache().forget(id);
    Ok(Json(WithSecret {
        client,
        client_secret: Some(secret.expose().to_string()),
    }))
}

/// Parses each value, naming `field` in the error.
pub(super) fn parse_all<T>(
    values: &[String],
    parse: fn(&str) -> Result<T, String>,
    field: &str,
) -> Result<Vec<T>, ApiError> {
    values
        .iter()
        .map(|v| parse(v).map_err(|e| invalid(field, e)))
        .collect()
}

/// A `400 invalid_request` naming the field.
pub(super) fn invalid(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(format!("{field}: {error}"))
}
