//! Liveness and readiness probes.

use rocket::fairing::AdHoc;
use rocket::serde::json::{Json, Value, json};
use rocket::{State, get, routes};

use crate::App;
use crate::error::ApiError;

/// The probes and `/metrics`.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("health", |rocket| async {
        rocket.mount("/", routes![live, ready, metrics])
    })
}

#[get("/health/live")]
fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and a signing key is loaded.
#[get("/health/ready")]
async fn ready(app: &State<App>) -> Result<Json<Value>, ApiError> {
    let unavailable = |what: String| {
        ApiError::new(
            rocket::http::Status::ServiceUnavailable,
            "temporarily_unavailable",
            what,
        )
    };
    // The database's error text can name hosts, users and schema: it goes to the log, and the
    // anonymous caller gets a fixed message.
    if let Err(e) = app.store.ping().await {
        rocket::error!("readiness: database: {e}");
        return Err(unavailable("the database is unavailable".into()));
    }
    let keys = app.keys.snapshot();
    if keys.active(app.config.keys.signing_alg).is_none() {
        return Err(unavailable(format!(
            "no active {} key",
            app.config.keys.signing_alg
        )));
    }
    Ok(Json(
        json!({ "status": "ready", "keys": keys.keys().len() }),
    ))
}

/// Prometheus text: grant counters, JWKS answers, key-set state. Holds no secrets; restrict it
/// at the network level like any metrics endpoint.
#[get("/metrics")]
fn metrics(app: &State<App>) -> (rocket::http::ContentType, String) {
    let text = app.metrics.render(&app.keys.snapshot(), app.clock.now());
    let content_type =
        rocket::http::ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    (content_type, text)
}
