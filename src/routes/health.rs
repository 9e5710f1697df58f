//! Liveness and readiness probes, `/metrics`, and the fairing that times every request.

use rocket::fairing::AdHoc;
use rocket::serde::json::{Json, Value, json};
use rocket::{State, get, routes};

use crate::App;
use crate::error::ApiError;

/// The probes and `/metrics`, and per-route latency and status counting.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("health", |rocket| async {
        rocket
            .mount("/", routes![live, ready, metrics])
            .attach(AdHoc::on_request("request timer", |req, _| {
                Box::pin(async move {
                    req.local_cache(|| RequestStart(crate::clock::instant()));
                })
            }))
            .attach(AdHoc::on_response("request metrics", |req, res| {
                Box::pin(async move {
                    let Some(app) = req.rocket().state::<App>() else {
                        return;
                    };
                    let start = req.local_cache(|| RequestStart(crate::clock::instant()));
                    let route = match req.route() {
                        Some(route) => format!("{} {}", route.method, route.uri),
                        None => "unmatched".to_string(),
                    };
                    app.metrics
                        .response(&route, res.status().code, start.0.elapsed());
                })
            }))
    })
}

/// When the request arrived (request-local state of the timing fairing).
struct RequestStart(std::time::Instant);

/// What `/health/ready` checks, picked with `?scope=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rocket::FromFormField)]
enum Scope {
    /// Everything a token request needs: the database and an active signing key (default).
    Tokens,
    /// What resource servers need (JWKS and discovery, served from memory): a loaded key set.
    /// A replica that lost its database stays in the load balancer's pool for these paths.
    Keys,
}

#[get("/health/live")]
fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and a signing key is loaded (`scope=tokens`, the default),
/// or, with `scope=keys`, when a key set is loaded: the JWKS and discovery are served from
/// memory and do not need the database (docs/scale-out.md, "Scale-out operations").
#[get("/health/ready?<scope>")]
async fn ready(app: &State<App>, scope: Option<Scope>) -> Result<Json<Value>, ApiError> {
    let unavailable = |what: String| {
        let mut err = ApiError::new(
            rocket::http::Status::ServiceUnavailable,
            "temporarily_unavailable",
            what,
        );
        err.retry_after = Some(crate::error::DATABASE_RETRY_AFTER);
        err
    };
    let scope = scope.unwrap_or(Scope::Tokens);
    let keys = app.keys.snapshot();
    if scope == Scope::Keys {
        if keys.keys().is_empty() {
            return Err(unavailable("no key set is loaded".into()));
        }
        return Ok(Json(
            json!({ "status": "ready", "scope": "keys", "keys": keys.keys().len() }),
        ));
    }
    // The database's error text can name hosts, users and schema: it goes to the log, and the
    // anonymous caller gets a fixed message.
    if let Err(e) = app.store.ping().await {
        rocket::error!("readiness: database: {e}");
        return Err(unavailable("the database is unavailable".into()));
    }
    if keys.active(app.config.keys.signing_alg).is_none() {
        return Err(unavailable(format!(
            "no active {} key",
            app.config.keys.signing_alg
        )));
    }
    Ok(Json(
        json!({ "status": "ready", "scope": "tokens", "keys": keys.keys().len() }),
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
