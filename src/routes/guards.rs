//! Request guards: the bearer token of a request, and bearer-token authentication of the admin
//! API.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use crate::App;
use crate::admin::Admin;
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

/// The bearer token of the request, if any.
pub struct Bearer<'r>(pub Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Bearer<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Bearer(bearer_token(req)))
    }
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
            .verify(&app.keys.snapshot(), token, app.clock.now())
        {
            Ok(claims) => claims,
            // The summary names the failed check without echoing anything from the token into
            // the WWW-Authenticate header.
            Err(e) => {
                return challenge(Status::Unauthorized, "invalid_token", e.summary())
                    .fail_guard(req);
            }
        };
        // The admin API is online, so it also sees what offline verifiers cannot: a logged-out
        // (denylisted) token, and an account disabled or stripped of `admin` since the token was
        // issued.
        match app.store.is_access_token_denied(&claims.jti).await {
            Ok(false) => {}
            Ok(true) => {
                return challenge(
                    Status::Unauthorized,
                    "invalid_token",
                    "the token has been revoked",
                )
                .fail_guard(req);
            }
            Err(e) => return ApiError::internal(e).fail_guard(req),
        }
        match Admin::authorize(&claims) {
            Ok(admin) => match app.admin.still_admin(&admin).await {
                Ok(true) => Outcome::Success(admin),
                Ok(false) => challenge(
                    Status::Unauthorized,
                    "invalid_token",
                    "the account is disabled or no longer an administrator",
                )
                .fail_guard(req),
                Err(e) => ApiError::internal(e).fail_guard(req),
            },
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
