//! Request guards: bearer-token authentication of the admin API.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use crate::App;
use crate::auth::Admin;
use crate::clock;
use crate::error::ApiError;

/// The bearer token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is
/// case-insensitive).
pub fn bearer_token<'r>(req: &'r Request<'_>) -> Option<&'r str> {
    let value = req.headers().get_one("Authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn challenge(status: Status, error: &'static str, description: &str) -> ApiError {
    let mut err = ApiError::new(status, error, description);
    err.www_authenticate = Some(if error == "invalid_request" {
        r#"Bearer realm="stamp""#.to_string()
    } else {
        format!(r#"Bearer realm="stamp", error="{error}", error_description="{description}""#)
    });
    err
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = ApiError;

    /// Verifies the bearer token with the rules a resource server uses, then requires the admin
    /// role or scope: 401 without a valid token, 403 with a valid token that lacks the right.
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(app) = req.rocket().state::<App>() else {
            return ApiError::internal("App state missing").fail_guard(req);
        };
        let Some(token) = bearer_token(req) else {
            return challenge(
                Status::Unauthorized,
                "invalid_request",
                "a bearer access token is required",
            )
            .fail_guard(req);
        };
        let claims = match app
            .auth
            .tokens()
            .verify(&app.keys.snapshot(), token, clock::now())
        {
            Ok(claims) => claims,
            Err(e) => {
                return challenge(Status::Unauthorized, "invalid_token", &e.to_string())
                    .fail_guard(req);
            }
        };
        match Admin::authorize(&claims) {
            Ok(admin) => Outcome::Success(admin),
            Err(e) => {
                let mut err = challenge(Status::Forbidden, "insufficient_scope", &e.to_string());
                err.www_authenticate = Some(
                    r#"Bearer realm="stamp", error="insufficient_scope", scope="admin""#
                        .to_string(),
                );
                err.fail_guard(req)
            }
        }
    }
}
