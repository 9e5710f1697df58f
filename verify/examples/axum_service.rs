//! An example resource server (axum 0.8) that accepts an issuer's access tokens offline with
//! `stamp-verify`'s tower layer (feature `axum`): the layer verifies every request under it and
//! answers refusals per RFC 6750 §3, extractors hand the claims to handlers, one route needs a
//! scope, another a role. The Rocket version is `examples/resource_server.rs` at the root.
//!
//! ```sh
//! stamp serve &                                   # the issuer on :8000
//! STAMP_ISSUER=http://127.0.0.1:8000 STAMP_AUDIENCE=stamp \
//!   cargo run -p stamp-verify --features axum --example axum_service
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8002/me
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8002/orders   # needs orders:read
//! curl http://127.0.0.1:8002/health                                    # cache status, counters
//! ```

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use stamp_verify::axum::{BearerLayer, Scoped, WithRole};
use stamp_verify::{Authenticated, BearerAuth, Claims, JwksClient, Verifier};

stamp_verify::scope!(OrdersRead = "orders:read");
stamp_verify::role!(Admin = "admin");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("STAMP_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let audience = std::env::var("STAMP_AUDIENCE").unwrap_or_else(|_| "stamp".into());
    let verifier = Verifier::for_issuer(&issuer, &audience)?;
    // Warm the cache; an issuer that is not up yet is not fatal: the first request fetches.
    if let Err(e) = verifier.keys().refresh(stamp_verify::unix_now()).await {
        eprintln!("issuer keys not loaded yet: {e}");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8002").await?;
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}

/// The service: `/health` is public, the rest sits behind the bearer layer.
pub fn app(verifier: Verifier) -> Router {
    let keys = verifier.keys().clone();
    let protected = Router::new()
        .route("/me", get(me))
        .route("/orders", get(orders))
        .route("/admin", get(admin))
        .layer(BearerLayer::new(
            BearerAuth::new(verifier).with_realm("orders"),
        ));
    Router::new()
        .route("/health", get(move || health(keys.clone())))
        .merge(protected)
}

/// Any valid token.
async fn me(Authenticated(claims): Authenticated) -> Json<Claims> {
    Json(claims)
}

/// A valid token with the `orders:read` scope.
async fn orders(scoped: Scoped<OrdersRead>) -> Json<Value> {
    Json(json!({ "owner": scoped.claims.sub, "orders": [] }))
}

/// A valid token with the `admin` role.
async fn admin(auth: WithRole<Admin>) -> Json<Value> {
    Json(json!({ "admin": auth.claims.sub }))
}

/// The key cache and the counters a service would export as metrics.
async fn health(keys: JwksClient) -> Json<Value> {
    let status = keys.status(stamp_verify::unix_now());
    let c = keys.counters();
    Json(json!({
        "keys_loaded": status.loaded,
        "stale_for": status.stale_for,
        "last_error": status.last_error.map(|e| e.to_string()),
        "fetches": c.fetches,
        "not_modified": c.not_modified,
        "failures": c.failures,
        "unknown_kid_refetches": c.unknown_kid_refetches,
        "stale_served": c.stale_served,
    }))
}
