//! `POST /oauth/token` (RFC 6749 §3.2), form-encoded.

use rocket::form::{self, Form, FromForm};
use rocket::{Route, State, post, routes};

use crate::App;
use crate::auth::{LoginRequest, Password};
use crate::clock;
use crate::error::ApiError;

use super::{TokenResponse, form_error};

/// Every parameter any grant takes; each grant checks the ones it needs.
#[derive(FromForm)]
struct TokenForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::invalid_request(format!(
            "missing parameter `{name}`"
        ))),
    }
}

#[post("/oauth/token", data = "<form>")]
async fn token(
    app: &State<App>,
    form: Result<Form<TokenForm>, form::Errors<'_>>,
) -> Result<TokenResponse, ApiError> {
    let form = form.map_err(form_error)?.into_inner();
    let grant_type = required(form.grant_type, "grant_type")?;
    match grant_type.as_str() {
        "password" => {
            let request = LoginRequest {
                username: required(form.username, "username")?,
                password: Password::for_login(required(form.password, "password")?),
                scope: form.scope,
                client_id: form.client_id,
            };
            Ok(app.auth.password_grant(request, clock::now()).await?.into())
        }
        other => Err(ApiError::unsupported_grant_type(other)),
    }
}

pub fn routes() -> Vec<Route> {
    routes![token]
}
