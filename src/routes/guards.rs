//! Request guards: the bearer token of a request, and bearer-token authentication of the admin
//! API and of a user's own account endpoints.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use crate::App;
use crate::admin::{Admin, still_admin};
use crate::auth::{Audience, LiveToken, OnlineError, TokenOwner};
use crate::error::ApiError;
use crate::store::User;

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

/// The `Idempotency-Key` header of a request, if any (checked by [`IdempotencyKey::parse`]).
pub struct IdempotencyKey<'r>(Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IdempotencyKey<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(IdempotencyKey(req.headers().get_one("Idempotency-Key")))
    }
}

impl IdempotencyKey<'_> {
    /// The key: 1 to 255 visible ASCII characters, or `400 invalid_request`.
    pub fn parse(&self) -> Result<Option<String>, ApiError> {
        let Some(key) = self.0 else {
            return Ok(None);
        };
        let visible = key.bytes().all(|b| b.is_ascii_graphic());
        if key.is_empty() || key.len() > 255 || !visible {
            return Err(ApiError::invalid_request(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Some(key.to_string()))
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

/// The person a live bearer access token speaks for: the guard of a user's own account
/// endpoints (`/account/…`). The token passes the same online check as the admin guard; a
/// service client's own token (client_credentials) has no account and gets 403.
pub struct AccountHolder {
    /// The user as read by the online check, now.
    pub user: User,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AccountHolder {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let live = match live_token(req, Audience::Issuer).await {
            Ok(live) => live,
            Err(err) => return err.fail_guard(req),
        };
        match live.owner {
            TokenOwner::User(user) => Outcome::Success(AccountHolder { user }),
            TokenOwner::Client(_) => challenge(
                Status::Forbidden,
                "insufficient_scope",
                "a client's own token has no user account",
            )
            .fail_guard(req),
        }
    }
}

/// The request's bearer token after the online check
/// ([`crate::auth::Authenticator::check_online`]) for `audience`: 401 without a live token.
pub(super) async fn live_token(
    req: &Request<'_>,
    audience: Audience,
) -> Result<LiveToken, ApiError> {
    let Some(app) = req.rocket().state::<App>() else {
        return Err(ApiError::internal("App state missing"));
    };
    let Some(token) = bearer_token(req) else {
        return Err(challenge(
            Status::Unauthorized,
            "invalid_request",
            "a bearer access token is required",
        ));
    };
    // The online check: the verifier's rules, then what offline verifiers cannot see (a
    // logged-out token, a disabled or deleted owner, a revocation of the user's tokens).
    match app
        .auth
        .check_online_for(token, audience, app.clock.now())
        .await
    {
        Ok(live) => Ok(live),
        // A database outage is `503` with `Retry-After` (the From impl tells), not a `500`.
        Err(OnlineError::Store(e)) => Err(e.into()),
        // The description is fixed text per refusal: nothing from the token is echoed into
        // the WWW-Authenticate header.
        Err(e) => Err(challenge(
            Status::Unauthorized,
            "invalid_token",
            &e.to_string(),
        )),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = ApiError;

    /// Checks the bearer token online ([`crate::auth::Authenticator::check_online`]), then
    /// requires the admin role or scope: 401 without a live token, 403 with a live token that
    /// lacks the right, 401 again if its owner has lost the right since.
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        // Only the issuer's own audience: a token minted for a registered API is for that
        // API, never for the admin API.
        let live = match live_token(req, Audience::Issuer).await {
            Ok(live) => live,
            Err(err) => return err.fail_guard(req),
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
