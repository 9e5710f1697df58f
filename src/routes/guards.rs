//! Request guards: the bearer token of a request, and bearer-token authentication of the admin
//! API.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use crate::App;
use crate::admin::{Admin, still_admin};
use crate::auth::OnlineError;
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

    /// Checks the bearer token online ([`crate::auth::Authenticator::check_online`]), then
    /// requires the admin role or scope: 401 without a live token, 403 with a live token that
    /// lacks the right, 401 again if its owner has lost the right since.
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
        // The online check: the verifier's rules, then what offline verifiers cannot see (a
        // logged-out token, a disabled or deleted owner, a revocation of the user's tokens).
        let live = match app.auth.check_online(token, app.clock.now()).await {
            Ok(live) => live,
            Err(OnlineError::Store(e)) => return ApiError::internal(e).fail_guard(req),
            // The description is fixed text per refusal: nothing from the token is echoed into
            // the WWW-Authenticate header.
            Err(e) => {
                return challenge(Status::Unauthorized, "invalid_token", &e.to_string())
                    .fail_guard(req);
            }
        };
        match Admin::authorize(&live.claims) {
            Ok(admin) if still_admin(&live.owner) => Outcome::Success(admin),
            Ok(_) => challenge(
                Status::Unauthorized,
                "invalid_token",
                "the account is no longer an administrator",
            )
            .fail_guard(req),
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
