//! axum 0.8 and tower integration (feature `axum`): [`BearerLayer`] verifies the bearer token
//! of every request it wraps and answers refusals with RFC 6750 challenges; the extractors
//! [`Authenticated`], [`Scoped`] and [`WithRole`] hand the verified claims to handlers.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use stamp_verify::axum::{BearerLayer, Scoped};
//! use stamp_verify::{Authenticated, BearerAuth, Claims, Verifier};
//!
//! stamp_verify::scope!(OrdersRead = "orders:read");
//!
//! async fn me(Authenticated(claims): Authenticated) -> Json<Claims> {
//!     Json(claims)
//! }
//!
//! async fn orders(scoped: Scoped<OrdersRead>) -> String {
//!     format!("orders of {}", scoped.claims.sub)
//! }
//!
//! # fn app() -> Result<Router, stamp_verify::VerifyError> {
//! let verifier = Verifier::for_issuer("https://id.example.com", "orders-api")?;
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .route("/orders", get(orders))
//!     .layer(BearerLayer::new(BearerAuth::new(verifier).with_realm("orders")));
//! # Ok(app) }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::axum::body::Body;
use ::axum::extract::FromRequestParts;
use ::axum::http::header::AUTHORIZATION;
use ::axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use ::axum::http::{HeaderValue, Request, StatusCode, request::Parts};
use ::axum::response::{IntoResponse, Response};

use crate::bearer::{require_role, require_scope};
use crate::{Authenticated, BearerAuth, Claims, Refusal, Role, Scope};

/// A tower layer that lets through only requests with a valid bearer token, and puts its
/// [`Authenticated`] claims in the request's extensions. Refusals are answered here: `401`/`400`
/// with an RFC 6750 challenge, `503` (with `Retry-After` when known) if the token cannot be
/// checked now.
#[derive(Clone, Debug)]
pub struct BearerLayer {
    auth: BearerAuth,
}

impl BearerLayer {
    /// A layer that authenticates with `auth`.
    pub fn new(auth: BearerAuth) -> BearerLayer {
        BearerLayer { auth }
    }
}

impl<S> tower_layer::Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> BearerService<S> {
        BearerService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`BearerLayer`] wraps around an inner one.
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    auth: BearerAuth,
}

impl<S, B> tower_service::Service<Request<B>> for BearerService<S>
where
    S: tower_service::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's usual dance).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let auth = self.auth.clone();
        Box::pin(async move {
            let header = request
                .headers()
                .get(AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            match auth.authenticate(header).await {
                Ok(claims) => {
                    request.extensions_mut().insert(Authenticated(claims));
                    request.extensions_mut().insert(auth);
                    inner.call(request).await
                }
                Err(refusal) => Ok(respond(&auth, &refusal)),
            }
        })
    }
}

/// The RFC 6750 answer to `refusal`: status, `WWW-Authenticate`, `Retry-After`, JSON body.
pub fn respond(auth: &BearerAuth, refusal: &Refusal) -> Response {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(refusal.body()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = auth
        .challenge(refusal)
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    if let Some(seconds) = refusal.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The claims and authentication put there by [`BearerLayer`].
fn claims_of(parts: &Parts) -> Option<(&Claims, &BearerAuth)> {
    let Authenticated(claims) = parts.extensions.get::<Authenticated>()?;
    Some((claims, parts.extensions.get::<BearerAuth>()?))
}

/// A route that extracts claims outside a [`BearerLayer`]: a programming error, answered `500`.
fn outside_layer() -> Response {
    tracing::error!("a route extracts Authenticated but is not behind a BearerLayer");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let (claims, _) = claims_of(parts).ok_or_else(outside_layer)?;
        Ok(Authenticated(claims.clone()))
    }
}

/// Verified claims that include the scope `S`; otherwise `403 insufficient_scope` naming it.
#[derive(Debug)]
pub struct Scoped<S: Scope> {
    /// The token's claims.
    pub claims: Claims,
    scope: PhantomData<S>,
}

impl<T: Send + Sync, S: Scope> FromRequestParts<T> for Scoped<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &T) -> Result<Self, Response> {
        let (claims, auth) = claims_of(parts).ok_or_else(outside_layer)?;
        require_scope(claims, S::NAME).map_err(|refusal| respond(auth, &refusal))?;
        Ok(Scoped {
            claims: claims.clone(),
            scope: PhantomData,
        })
    }
}

/// Verified claims whose `roles` include `R`; otherwise `403 insufficient_scope`.
#[derive(Debug)]
pub struct WithRole<R: Role> {
    /// The token's claims.
    pub claims: Claims,
    role: PhantomData<R>,
}

impl<T: Send + Sync, R: Role> FromRequestParts<T> for WithRole<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &T) -> Result<Self, Response> {
        let (claims, auth) = claims_of(parts).ok_or_else(outside_layer)?;
        require_role(claims, R::NAME).map_err(|refusal| respond(auth, &refusal))?;
        Ok(WithRole {
            claims: claims.clone(),
            role: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use ::axum::Router;
    use ::axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::test_keys::{Fixture, ISSUER};

    crate::scope!(OrdersRead = "orders:read");
    crate::role!(Admin = "admin");

    fn app(fixture: &Fixture) -> Router {
        async fn me(Authenticated(claims): Authenticated) -> String {
            claims.sub
        }
        async fn orders(scoped: Scoped<OrdersRead>) -> String {
            format!("orders of {}", scoped.claims.sub)
        }
        async fn admin(_: WithRole<Admin>) -> &'static str {
            "admin"
        }
        Router::new()
            .route("/me", get(me))
            .route("/orders", get(orders))
            .route("/admin", get(admin))
            .layer(BearerLayer::new(
                BearerAuth::new(fixture.verifier()).with_realm("orders"),
            ))
    }

    async fn call(app: &Router, path: &str, token: Option<&str>) -> (u16, String, String) {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = response.status().as_u16();
        let body = ::axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_layer_and_extractors_answer_with_exact_challenges() {
        let f = Fixture::new();
        let app = app(&f);

        let (status, challenge, _) = call(&app, "/me", None).await;
        assert_eq!(
            (status, challenge.as_str()),
            (401, "Bearer realm=\"orders\"")
        );

        let expired = f.token(&f.claims_at(-3600, "profile", &[]));
        let (status, challenge, body) = call(&app, "/me", Some(&expired)).await;
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
        let (status, challenge, _) = call(&app, "/me", Some(&f.token(&foreign))).await;
        assert_eq!(status, 401);
        assert!(!challenge.contains(ISSUER), "no internals: {challenge}");
        assert!(challenge.ends_with("error_description=\"wrong issuer\""));

        let profile = f.token(&f.claims_at(0, "profile", &[]));
        let (status, _, body) = call(&app, "/me", Some(&profile)).await;
        assert_eq!((status, body.as_str()), (200, "user-1"));
        let (status, challenge, _) = call(&app, "/orders", Some(&profile)).await;
        assert_eq!(status, 403);
        assert_eq!(
            challenge,
            "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"orders:read\""
        );
        let (status, challenge, _) = call(&app, "/admin", Some(&profile)).await;
        assert_eq!(status, 403);
        assert_eq!(
            challenge,
            "Bearer realm=\"orders\", error=\"insufficient_scope\", error_description=\"the token lacks a required role\""
        );

        let scoped = f.token(&f.claims_at(0, "orders:read", &["admin"]));
        assert_eq!(call(&app, "/orders", Some(&scoped)).await.0, 200);
        assert_eq!(call(&app, "/admin", Some(&scoped)).await.0, 200);

        let (status, challenge, _) = call(&app, "/me", Some("a\"b")).await;
        assert_eq!(status, 400);
        assert!(challenge.contains("error=\"invalid_request\""));
    }
}
