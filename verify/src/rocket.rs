//! Rocket 0.5 integration (feature `rocket`): request guards [`Authenticated`], [`Scoped`] and
//! [`WithRole`] verify the bearer token with the [`BearerAuth`] the application manages, and
//! [`catchers`] answer their refusals with RFC 6750 challenges.
//!
//! ```no_run
//! use rocket::{get, routes};
//! use stamp_verify::rocket::{Scoped, catchers};
//! use stamp_verify::{Authenticated, BearerAuth, Verifier};
//!
//! stamp_verify::scope!(OrdersRead = "orders:read");
//!
//! #[get("/me")]
//! fn me(auth: Authenticated) -> String {
//!     auth.0.sub
//! }
//!
//! #[get("/orders")]
//! fn orders(scoped: Scoped<OrdersRead>) -> String {
//!     format!("orders of {}", scoped.claims.sub)
//! }
//!
//! # fn app() -> Result<rocket::Rocket<rocket::Build>, stamp_verify::VerifyError> {
//! let verifier = Verifier::for_issuer("https://id.example.com", "orders-api")?;
//! let rocket = rocket::build()
//!     .manage(BearerAuth::new(verifier).with_realm("orders"))
//!     .mount("/", routes![me, orders])
//!     .register("/", catchers());
//! # Ok(rocket) }
//! ```

use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::Mutex;

use ::rocket::http::{ContentType, Header, Status};
use ::rocket::request::{FromRequest, Outcome, Request};
use ::rocket::response::{self, Responder, Response};
use ::rocket::{Catcher, catch};

use crate::bearer::{require_role, require_scope};
use crate::{Authenticated, BearerAuth, Claims, JwksError, Refusal, Role, Scope, VerifyError};

/// The refusal of this request, kept for the catcher that writes its challenge.
struct Pending(Mutex<Option<Refusal>>);

fn refuse<T>(req: &Request<'_>, refusal: Refusal) -> Outcome<T, Refusal> {
    let status = Status::new(refusal.status());
    let pending = req.local_cache(|| Pending(Mutex::new(None)));
    if let Ok(mut slot) = pending.0.lock() {
        *slot = Some(refusal.clone());
    }
    Outcome::Error((status, refusal))
}

/// The request's authentication, verified once however many guards ask.
async fn authenticate<'r>(req: &'r Request<'_>) -> &'r Result<Claims, Refusal> {
    req.local_cache_async(async {
        let Some(auth) = req.rocket().state::<BearerAuth>() else {
            ::rocket::error!("stamp_verify::rocket guards need a managed BearerAuth");
            return Err(Refusal::Unavailable {
                retry_after: None,
                cause: VerifyError::Keys(JwksError::Client("no BearerAuth is managed".into())),
            });
        };
        let header = req.headers().get_one("Authorization").map(str::as_bytes);
        auth.authenticate(header).await
    })
    .await
}

#[::rocket::async_trait]
impl<'r> FromRequest<'r> for Authenticated {
    type Error = Refusal;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Refusal> {
        match authenticate(req).await {
            Ok(claims) => Outcome::Success(Authenticated(claims.clone())),
            Err(refusal) => refuse(req, refusal.clone()),
        }
    }
}

/// Verified claims that include the scope `S`; otherwise `403 insufficient_scope` naming it.
#[derive(Debug)]
pub struct Scoped<S: Scope> {
    /// The token's claims.
    pub claims: Claims,
    scope: PhantomData<S>,
}

#[::rocket::async_trait]
impl<'r, S: Scope> FromRequest<'r> for Scoped<S> {
    type Error = Refusal;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Refusal> {
        let claims = match authenticate(req).await {
            Ok(claims) => claims,
            Err(refusal) => return refuse(req, refusal.clone()),
        };
        match require_scope(claims, S::NAME) {
            Ok(()) => Outcome::Success(Scoped {
                claims: claims.clone(),
                scope: PhantomData,
            }),
            Err(refusal) => refuse(req, refusal),
        }
    }
}

/// Verified claims whose `roles` include `R`; otherwise `403 insufficient_scope`.
#[derive(Debug)]
pub struct WithRole<R: Role> {
    /// The token's claims.
    pub claims: Claims,
    role: PhantomData<R>,
}

#[::rocket::async_trait]
impl<'r, R: Role> FromRequest<'r> for WithRole<R> {
    type Error = Refusal;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Refusal> {
        let claims = match authenticate(req).await {
            Ok(claims) => claims,
            Err(refusal) => return refuse(req, refusal.clone()),
        };
        match require_role(claims, R::NAME) {
            Ok(()) => Outcome::Success(WithRole {
                claims: claims.clone(),
                role: PhantomData,
            }),
            Err(refusal) => refuse(req, refusal),
        }
    }
}

/// The RFC 6750 answer to a refusal: status, `WWW-Authenticate`, `Retry-After`, JSON body.
#[derive(Debug)]
pub struct Challenge(pub Refusal);

impl<'r> Responder<'r, 'static> for Challenge {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let refusal = self.0;
        let body = refusal.body();
        let mut response = Response::build();
        response
            .status(Status::new(refusal.status()))
            .header(ContentType::JSON)
            .header(Header::new("Cache-Control", "no-store"))
            .sized_body(body.len(), Cursor::new(body));
        let challenge = req
            .rocket()
            .state::<BearerAuth>()
            .and_then(|auth| auth.challenge(&refusal));
        if let Some(challenge) = challenge {
            response.header(Header::new("WWW-Authenticate", challenge));
        }
        if let Some(seconds) = refusal.retry_after() {
            response.header(Header::new("Retry-After", seconds.to_string()));
        }
        response.ok()
    }
}

/// The guard's refusal for this request, or `fallback` when the error came from elsewhere.
fn challenge_for(req: &Request<'_>, fallback: Refusal) -> Challenge {
    let pending = req.local_cache(|| Pending(Mutex::new(None)));
    let refusal = pending.0.lock().ok().and_then(|mut slot| slot.take());
    Challenge(refusal.unwrap_or(fallback))
}

#[catch(400)]
fn bad_request(req: &Request<'_>) -> Challenge {
    challenge_for(req, Refusal::InvalidRequest)
}

#[catch(401)]
fn unauthorized(req: &Request<'_>) -> Challenge {
    challenge_for(req, Refusal::MissingToken)
}

#[catch(403)]
fn forbidden(req: &Request<'_>) -> Challenge {
    challenge_for(req, Refusal::InsufficientScope(String::new()))
}

#[catch(503)]
fn unavailable(req: &Request<'_>) -> Challenge {
    let cause = VerifyError::Keys(JwksError::Client("service unavailable".into()));
    challenge_for(
        req,
        Refusal::Unavailable {
            retry_after: None,
            cause,
        },
    )
}

/// Catchers for 400, 401, 403 and 503 that answer the guards' refusals with their RFC 6750
/// challenge (register them where the guarded routes are mounted).
pub fn catchers() -> Vec<Catcher> {
    ::rocket::catchers![bad_request, unauthorized, forbidden, unavailable]
}

#[cfg(test)]
mod tests {
    use ::rocket::local::asynchronous::Client;
    use ::rocket::{get, routes};

    use super::*;
    use crate::test_keys::{Fixture, ISSUER};

    crate::scope!(OrdersRead = "orders:read");
    crate::role!(Admin = "admin");

    #[get("/me")]
    fn me(auth: Authenticated) -> String {
        auth.0.sub
    }

    #[get("/orders")]
    fn orders(scoped: Scoped<OrdersRead>) -> String {
        format!("orders of {}", scoped.claims.sub)
    }

    #[get("/admin")]
    fn admin(_role: WithRole<Admin>) -> &'static str {
        "admin"
    }

    async fn call(client: &Client, path: &str, token: Option<&str>) -> (u16, String, String) {
        let mut request = client.get(path);
        if let Some(token) = token {
            request = request.header(Header::new("Authorization", format!("Bearer {token}")));
        }
        let response = request.dispatch().await;
        let challenge = response
            .headers()
            .get_one("WWW-Authenticate")
            .unwrap_or_default()
            .to_string();
        let status = response.status().code;
        (
            status,
            challenge,
            response.into_string().await.unwrap_or_default(),
        )
    }

    #[::rocket::async_test]
    async fn the_guards_answer_with_exact_challenges() {
        let f = Fixture::new();
        let figment = ::rocket::Config::figment().merge(("log_level", "off"));
        let rocket = ::rocket::custom(figment)
            .manage(BearerAuth::new(f.verifier()).with_realm("orders"))
            .mount("/", routes![me, orders, admin])
            .register("/", catchers());
        let client = Client::tracked(rocket).await.unwrap();

        let (status, challenge, _) = call(&client, "/me", None).await;
        assert_eq!(
            (status, challenge.as_str()),
            (401, "Bearer realm=\"orders\"")
        );

        let expired = f.token(&f.claims_at(-3600, "profile", &[]));
        let (status, challenge, body) = call(&client, "/me", Some(&expired)).await;
        assert_eq!(status, 401);
        assert_eq!(
            challenge,
            "Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        assert_eq!(
            body,
            r#"{"error":"invalid_token","error_description":"the token has expired"}"#
        );

        let mut foreign = f.claims_at(0, "orders:read", &[]);
        foreign["iss"] = "https://evil.test".into();
        let (status, challenge, _) = call(&client, "/me", Some(&f.token(&foreign))).await;
        assert_eq!(status, 401);
        assert!(!challenge.contains(ISSUER), "no internals: {challenge}");

        let profile = f.token(&f.claims_at(0, "profile", &[]));
        let (status, _, body) = call(&client, "/me", Some(&profile)).await;
        assert_eq!((status, body.as_str()), (200, "user-1"));
        let (status, challenge, _) = call(&client, "/orders", Some(&profile)).await;
        assert_eq!(status, 403);
        assert_eq!(
            challenge,
            "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"orders:read\""
        );
        let (status, challenge, _) = call(&client, "/admin", Some(&profile)).await;
        assert_eq!(status, 403);
        assert_eq!(
            challenge,
            "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"the token lacks a required role\""
        );

        let scoped = f.token(&f.claims_at(0, "orders:read", &["admin"]));
        assert_eq!(call(&client, "/orders", Some(&scoped)).await.0, 200);
        assert_eq!(call(&client, "/admin", Some(&scoped)).await.0, 200);
    }
}
