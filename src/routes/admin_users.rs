//! The user admin API: list (paged by username), create, show, change (roles, disabled) and
//! delete users; `POST /admin/users/{id}/revoke-tokens` ("log out everywhere" for one user) and
//! `POST /admin/users/{id}/password` (a password reset).

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{self, Json};
use rocket::{State, delete, get, patch, post, routes};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::admin::{Admin, NewAccount, UserRef, UserUpdate, UserView};
use crate::error::ApiError;
use crate::store::{Email, Role, Username};

use super::json_error;

/// The user admin API.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: users", |rocket| async {
        rocket.mount(
            "/",
            routes![
                list_users,
                create_user,
                create_user_wrong_type,
                show_user,
                update_user,
                update_user_wrong_type,
                delete_user,
                revoke_tokens,
                reset_password,
                reset_password_wrong_type
            ],
        )
    })
}

/// The page size of `GET /admin/users` without `limit`, and the largest allowed.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// One page of users, and the cursor of the next (`null` on the last page).
#[derive(Serialize)]
struct UserPage {
    users: Vec<UserView>,
    next: Option<String>,
}

/// Users by username: `limit` (1 to 200, default 50) of them, after the cursor `after` (the
/// last username of the previous page), whose names start with `prefix`.
#[get("/admin/users?<limit>&<after>&<prefix>")]
async fn list_users(
    app: &State<App>,
    _admin: Admin,
    limit: Option<&str>,
    after: Option<&str>,
    prefix: Option<&str>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "limit: an integer from 1 to {MAX_PAGE}"
                )));
            }
        },
    };
    // One more than asked tells whether there is a next page.
    let mut users = app
        .admin
        .list_users_page(prefix.unwrap_or(""), after, limit + 1)
        .await?;
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let next = more
        .then(|| users.last().map(|u| u.username.clone()))
        .flatten();
    Ok(Json(UserPage {
        users: users.into_iter().map(UserView::from).collect(),
        next,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Creates a user: `201` with the user; `409` if the name is taken.
#[post("/admin/users", format = "json", data = "<body>")]
async fn create_user(
    app: &State<App>,
    admin: Admin,
    body: Result<Json<CreateBody>, json::Error<'_>>,
) -> Result<(Status, Json<UserView>), ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let username = Username::parse(&body.username)
        .map_err(|e| ApiError::invalid_request(format!("username: {e}")))?;
    let roles = parse_roles(&body.roles)?;
    let password = app
        .config
        .password_policy
        .check(body.password, &[username.as_str()])
        .await
        .map_err(|e| ApiError::invalid_request(format!("password: {e}")))?;
    let account = NewAccount {
        username,
        roles,
        password,
    };
    let user = app
        .admin
        .create_user(&admin.actor, &app.passwords, account)
        .await?;
    Ok((Status::Created, Json(user.into())))
}

/// Any other content type: 415 (after the admin check).
#[post("/admin/users", rank = 2)]
fn create_user_wrong_type(_admin: Admin) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}

/// The user with this id; `404` if none.
#[get("/admin/users/<id>")]
async fn show_user(app: &State<App>, _admin: Admin, id: &str) -> Result<Json<UserView>, ApiError> {
    Ok(Json(app.admin.user(UserRef::Id(id)).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
    /// An address to set, or `null` to clear it; absent leaves it as it is.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

/// A field that is present (`Some`), possibly `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Sets the user's roles and/or disables (bumping the token version) or enables them.
#[patch("/admin/users/<id>", format = "json", data = "<body>")]
async fn update_user(
    app: &State<App>,
    admin: Admin,
    id: &str,
    body: Result<Json<UpdateBody>, json::Error<'_>>,
) -> Result<Json<UserView>, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    let email = body
        .email
        .map(|email| email.as_deref().map(Email::parse).transpose())
        .transpose()
        .map_err(|e| ApiError::invalid_request(format!("email: {e}")))?;
    let update = UserUpdate {
        roles: body.roles.as_deref().map(parse_roles).transpose()?,
        disabled: body.disabled,
    };
    let mut user = app
        .admin
        .update_user(&admin.actor, UserRef::Id(id), update)
        .await?;
    if let Some(email) = email {
        user = app
            .admin
            .set_user_email(&admin.actor, UserRef::Id(id), email)
            .await?;
    }
    Ok(Json(user.into()))
}

/// Any other content type: 415 (after the admin check).
#[patch("/admin/users/<_id>", rank = 2)]
fn update_user_wrong_type(_admin: Admin, _id: &str) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}

/// Deletes the user with every refresh family they hold (`204`); their access tokens fail the
/// online checks from now on.
#[delete("/admin/users/<id>")]
async fn delete_user(app: &State<App>, admin: Admin, id: &str) -> Result<Status, ApiError> {
    app.admin.delete_user(&admin.actor, UserRef::Id(id)).await?;
    Ok(Status::NoContent)
}

/// Roles from a JSON body, each checked.
fn parse_roles(raw: &[String]) -> Result<Vec<Role>, ApiError> {
    raw.iter()
        .map(|r| Role::parse(r).map_err(|e| ApiError::invalid_request(format!("roles: {e}"))))
        .collect()
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
