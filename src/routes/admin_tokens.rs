//! `POST /admin/tokens/inspect`: the token inspector of the admin console. Takes a token in a
//! JSON body (never in the URL, so it stays out of access logs), answers its header and claims
//! and every check the issuer applies ([`crate::auth::Authenticator::inspect`]). The token is
//! never logged.

use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{self, Json};
use rocket::{State, post, routes};
use serde::Deserialize;

use crate::App;
use crate::admin::Admin;
use crate::auth::{InspectError, Inspection};
use crate::error::ApiError;

use super::json_error;

/// The token inspector.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: token inspector", |rocket| async {
        rocket.mount("/", routes![inspect, inspect_wrong_type])
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectBody {
    token: String,
}

/// `200` with the inspection (whether or not the token is valid); `400` for something that is
/// not a JWT whose header and claims can be read.
#[post("/admin/tokens/inspect", format = "json", data = "<body>")]
async fn inspect(
    app: &State<App>,
    _admin: Admin,
    body: Result<Json<InspectBody>, json::Error<'_>>,
) -> Result<Json<Inspection>, ApiError> {
    let body = body.map_err(json_error)?.into_inner();
    match app.auth.inspect(&body.token, app.clock.now()).await {
        Ok(inspection) => Ok(Json(inspection)),
        Err(InspectError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::new(
            Status::BadRequest,
            "invalid_request",
            format!("not a readable JWT: {e}"),
        )),
    }
}

/// Any other content type: 415 (after the admin check).
#[post("/admin/tokens/inspect", rank = 2)]
fn inspect_wrong_type(_admin: Admin) -> ApiError {
    ApiError::unsupported_media_type("application/json")
}
