//! An example resource server (Rocket) that accepts the issuer's access tokens offline with
//! `stamp::verify`: a request guard yields the verified claims, a route needs a scope, and
//! refusals follow RFC 6750 §3: `401` with `WWW-Authenticate: Bearer …, error="invalid_token"`,
//! `403` with `error="insufficient_scope"`, and a bare challenge when no token was sent.
//!
//! ```sh
//! stamp serve &                                   # the issuer on :8000
//! STAMP_ISSUER=http://127.0.0.1:8000 STAMP_AUDIENCE=stamp cargo run --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/me
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/orders   # needs orders:read
//! ```

use std::marker::PhantomData;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder};
use rocket::serde::json::{Json, Value, json};
use rocket::{Build, Rocket, catch, catchers, get, routes};
use stamp::verify::{Claims, Verifier, VerifyError};

/// Realm named in every challenge.
const REALM: &str = "orders";

#[rocket::main]
async fn main() -> Result<(), String> {
    let issuer = std::env::var("STAMP_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let audience = std::env::var("STAMP_AUDIENCE").unwrap_or_else(|_| "stamp".into());
    let figment = rocket::Config::figment().merge(("port", 8001));
    let _ = build(figment, issuer, audience)
        .launch()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The service: verifies tokens of `issuer` meant for `audience` (keys through discovery).
pub fn build(figment: Figment, issuer: String, audience: String) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AdHoc::try_on_ignite(
            "token verifier",
            |rocket| async move {
                match Verifier::for_issuer(&issuer, &audience) {
                    Ok(verifier) => {
                        // Warm the cache; an issuer that is not up yet is not fatal: the first
                        // request fetches again.
                        if let Err(e) = verifier.keys().refresh(stamp::clock::now()).await {
                            rocket::warn!("issuer keys not loaded yet: {e}");
                        }
                        Ok(rocket.manage(verifier))
                    }
                    Err(e) => {
                        rocket::error!("cannot verify tokens of {issuer}: {e}");
                        Err(rocket)
                    }
                }
            },
        ))
        .mount("/", routes![public, me, orders])
        .register("/", catchers![unauthorized, forbidden, unavailable])
}

#[get("/public")]
fn public() -> Json<Value> {
    Json(json!({ "hello": "anyone" }))
}

/// Any valid token.
#[get("/me")]
fn me(auth: Authenticated) -> Json<Claims> {
    Json(auth.0)
}

/// A valid token with the `orders:read` scope.
#[get("/orders")]
fn orders(auth: Scoped<OrdersRead>) -> Json<Value> {
    Json(json!({ "owner": auth.claims.sub, "orders": [] }))
}

// ---------------------------------------------------------------------------------------------
// Guards.

/// The verified claims of the request's bearer token.
pub struct Authenticated(pub Claims);

/// A scope a route can require.
pub trait Scope {
    const NAME: &'static str;
}

pub struct OrdersRead;

impl Scope for OrdersRead {
    const NAME: &'static str = "orders:read";
}

/// Verified claims that include the scope `S`.
pub struct Scoped<S: Scope> {
    pub claims: Claims,
    scope: PhantomData<S>,
}

/// Why a request was refused; kept in the request's local cache for the catcher, which writes
/// the challenge.
#[derive(Clone, Debug)]
pub enum Refusal {
    /// No bearer token: a bare challenge, no error code (RFC 6750 §3.1).
    NoToken,
    /// The token failed a check.
    InvalidToken(String),
    /// The token is valid but lacks the scope.
    InsufficientScope(&'static str),
    /// The issuer's keys cannot be had: not the client's fault.
    KeysUnavailable,
}

impl Refusal {
    fn status(&self) -> Status {
        match self {
            Refusal::NoToken | Refusal::InvalidToken(_) => Status::Unauthorized,
            Refusal::InsufficientScope(_) => Status::Forbidden,
            Refusal::KeysUnavailable => Status::ServiceUnavailable,
        }
    }

    fn refuse<T>(self, req: &Request<'_>) -> Outcome<T, Refusal> {
        let status = self.status();
        req.local_cache(|| Some(self.clone()));
        Outcome::Error((status, self))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Authenticated {
    type Error = Refusal;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Refusal> {
        let Some(verifier) = req.rocket().state::<Verifier>() else {
            return Refusal::KeysUnavailable.refuse(req);
        };
        let token = req.headers().get_one("Authorization").and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(token) = token else {
            return Refusal::NoToken.refuse(req);
        };
        match verifier.verify(token, stamp::clock::now()).await {
            Ok(claims) => Outcome::Success(Authenticated(claims)),
            Err(VerifyError::Keys(e)) => {
                rocket::error!("token keys unavailable: {e}");
                Refusal::KeysUnavailable.refuse(req)
            }
            Err(e) => Refusal::InvalidToken(e.to_string()).refuse(req),
        }
    }
}

#[rocket::async_trait]
impl<'r, S: Scope> FromRequest<'r> for Scoped<S> {
    type Error = Refusal;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Refusal> {
        match req.guard::<Authenticated>().await {
            Outcome::Success(Authenticated(claims)) if claims.has_scope(S::NAME) => {
                Outcome::Success(Scoped {
                    claims,
                    scope: PhantomData,
                })
            }
            Outcome::Success(_) => Refusal::InsufficientScope(S::NAME).refuse(req),
            Outcome::Error(e) => Outcome::Error(e),
            Outcome::Forward(s) => Outcome::Forward(s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Challenges.

/// The RFC 6750 answer for a refusal: status, `WWW-Authenticate` and an OAuth JSON body.
struct Challenge(Refusal);

impl<'r> Responder<'r, 'static> for Challenge {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let (challenge, error, description) = match &self.0 {
            Refusal::NoToken => (
                format!("Bearer realm=\"{REALM}\""),
                "invalid_request",
                "a bearer token is required".to_string(),
            ),
            Refusal::InvalidToken(why) => (
                format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                    quotable(why)
                ),
                "invalid_token",
                why.clone(),
            ),
            Refusal::InsufficientScope(scope) => (
                format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
                ),
                "insufficient_scope",
                format!("the token lacks the scope {scope}"),
            ),
            Refusal::KeysUnavailable => (
                String::new(),
                "temporarily_unavailable",
                "the issuer's keys cannot be fetched".to_string(),
            ),
        };
        let body = Json(json!({ "error": error, "error_description": description }));
        let mut response = body.respond_to(req)?;
        response.set_status(self.0.status());
        if !challenge.is_empty() {
            response.set_header(Header::new("WWW-Authenticate", challenge));
        }
        Ok(response)
    }
}

/// An RFC 6750 `error_description` may not contain `"` or `\`.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .collect()
}

fn challenge_for(req: &Request<'_>, fallback: Refusal) -> Challenge {
    let cached: &Option<Refusal> = req.local_cache(|| None);
    Challenge(cached.clone().unwrap_or(fallback))
}

#[catch(401)]
fn unauthorized(req: &Request<'_>) -> Challenge {
    challenge_for(req, Refusal::NoToken)
}

#[catch(403)]
fn forbidden(req: &Request<'_>) -> Challenge {
    challenge_for(req, Refusal::InsufficientScope("unknown"))
}

#[catch(503)]
fn unavailable(req: &Request<'_>) -> Challenge {
    challenge_for(req, Refusal::KeysUnavailable)
}
