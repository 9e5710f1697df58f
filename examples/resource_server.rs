//! An example resource server (Rocket) that accepts the issuer's access tokens offline with
//! `stamp-verify`'s Rocket integration (feature `rocket`): request guards yield the verified
//! claims, a route needs a scope, another a role, and the catchers answer refusals per RFC 6750
//! §3: `401` with `WWW-Authenticate: Bearer …, error="invalid_token"`, `403` with
//! `error="insufficient_scope"`, and a bare challenge when no token was sent. The axum version
//! is `verify/examples/axum_service.rs`.
//!
//! ```sh
//! stamp serve &                                   # the issuer on :8000
//! STAMP_ISSUER=http://127.0.0.1:8000 STAMP_AUDIENCE=stamp cargo run --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/me
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/orders   # needs orders:read
//! ```

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::serde::json::{Json, Value, json};
use rocket::{Build, Rocket, get, routes};
use stamp_verify::rocket::{Scoped, WithRole, catchers};
use stamp_verify::{Authenticated, BearerAuth, Claims, Verifier};

stamp_verify::scope!(pub OrdersRead = "orders:read");
stamp_verify::role!(pub Admin = "admin");

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
                        if let Err(e) = verifier.keys().refresh(stamp_verify::unix_now()).await {
                            rocket::warn!("issuer keys not loaded yet: {e}");
                        }
                        Ok(rocket.manage(BearerAuth::new(verifier).with_realm("orders")))
                    }
                    Err(e) => {
                        rocket::error!("cannot verify tokens of {issuer}: {e}");
                        Err(rocket)
                    }
                }
            },
        ))
        .mount("/", routes![public, me, orders, admin])
        .register("/", catchers())
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

/// A valid token with the `admin` role.
#[get("/admin")]
fn admin(auth: WithRole<Admin>) -> Json<Value> {
    Json(json!({ "admin": auth.claims.sub }))
}
