//! The key lifecycle admin API: list, rotate, revoke; and the audit log. The changes are made
//! and audited by [`crate::admin::AdminService`].

use rocket::data::{Data, ToByteUnit};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{FromForm, State, get, post, routes};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::admin::Admin;
use crate::error::ApiError;
use crate::keys::{Alg, KeyManager, KeySet, KeyState, RotateOptions};
use crate::metrics::{KeyChange, Origin};
use crate::routes::guards::IdempotencyKey;
use crate::store::{AuditFilter, AuditPage};

/// The key and audit admin API, and `Cache-Control: no-store` on every `/admin/` answer.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin: keys and audit", |rocket| async {
        rocket
            .mount("/", routes![list_keys, rotate, revoke, audit_log])
            .attach(no_store())
    })
}

/// Admin answers describe live state (users, keys, the audit log) and are meant for one caller
/// only: no cache, shared or private, may keep them (RFC 9111 §5.2.2.5). A fairing rather than a
/// wrapper per route, so that admin routes added later and the guard's errors get it too.
fn no_store() -> AdHoc {
    AdHoc::on_response("admin: no-store", |req, res| {
        Box::pin(async move {
            if req.uri().path().starts_with("/admin/") {
                res.set_raw_header("Cache-Control", "no-store");
            }
        })
    })
}

/// One key as the admin API shows it: states and times, never key material.
#[derive(Serialize)]
pub struct KeyView {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    pub published: bool,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    /// When a retired key leaves the JWKS (its last token has expired by then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// The key set as the admin API shows it, with what a timeline of it needs: the time of the
/// answer, the JWKS cache window and, per algorithm, when a rotation is allowed and scheduled.
#[derive(Serialize)]
pub struct KeyList {
    pub generation: u64,
    pub keys: Vec<KeyView>,
    /// The server's time of this answer (Unix seconds), to draw the other times against.
    pub now: i64,
    /// The configured JWKS `max-age` (seconds): how long verifiers may cache the key set.
    pub jwks_max_age: i64,
    /// The `max-age` the JWKS is served with now: the configured one, shortened so that no
    /// cache outlives the next scheduled promotion.
    pub jwks_max_age_now: i64,
    /// Clock-skew and propagation margin added to the lifecycle's waits (seconds).
    pub leeway: i64,
    /// The longest access-token lifetime: how long a retired key stays published (seconds).
    pub max_token_ttl: i64,
    /// The scheduled rotation period (seconds); 0 when the schedule is off.
    pub rotate_every: i64,
    /// Per algorithm with an active or next key: when the next rotation is allowed without
    /// `force`, and when the schedule will make it.
    pub schedule: Vec<AlgSchedule>,
}

/// Rotation times of one algorithm.
#[derive(Serialize)]
pub struct AlgSchedule {
    pub alg: Alg,
    /// When the published `next` key has been cached long enough to be promoted without
    /// `force` (its creation + JWKS max-age + leeway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_allowed_at: Option<i64>,
    /// When the built-in schedule will rotate (none when the schedule is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<i64>,
}

impl KeyList {
    /// `set` (the manager's current set, or the one a change just produced) described at `now`.
    pub fn of(set: &KeySet, manager: &KeyManager, now: i64) -> KeyList {
        let mut keys: Vec<KeyView> = set
            .manifest()
            .keys
            .iter()
            .map(|k| KeyView {
                kid: k.kid.clone(),
                alg: k.alg,
                state: k.state,
                published: k.state.is_published(),
                created_at: k.created_at,
                activated_at: k.activated_at,
                retired_at: k.retired_at,
                removal_at: k.remove_after,
                removed_at: k.removed_at,
                revoked_at: k.revoked_at,
            })
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.kid.cmp(&b.kid)));
        let lifecycle = manager.lifecycle();
        let schedule = Alg::ALL
            .into_iter()
            .filter(|alg| {
                keys.iter()
                    .any(|k| k.alg == *alg && matches!(k.state, KeyState::Active | KeyState::Next))
            })
            .map(|alg| AlgSchedule {
                alg,
                rotation_allowed_at: set
                    .manifest()
                    .keys
                    .iter()
                    .find(|k| k.alg == alg && k.state == KeyState::Next)
                    .map(|next| manager.promotion_allowed_at(next)),
                next_rotation_at: manager.next_scheduled_rotation(alg),
            })
            .collect();
        KeyList {
            generation: set.manifest().generation,
            keys,
            now,
            jwks_max_age: lifecycle.jwks_max_age,
            jwks_max_age_now: manager.jwks_max_age(now),
            leeway: lifecycle.leeway,
            max_token_ttl: lifecycle.max_token_ttl,
            rotate_every: lifecycle.rotate_every,
            schedule,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    alg: Option<String>,
    #[serde(default)]
    force: bool,
}

/// Reads an optional small JSON body: empty means defaults.
async fn optional_json<T: Default + for<'de> Deserialize<'de>>(
    data: Data<'_>,
) -> Result<T, ApiError> {
    let body = data
        .open(4.kibibytes())
        .into_string()
        .await
        .map_err(|e| ApiError::invalid_request(format!("could not read the body: {e}")))?;
    if !body.is_complete() {
        return Err(ApiError::new(
            Status::PayloadTooLarge,
            "invalid_request",
            "the request body is too large",
        ));
    }
    if body.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(&body).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            ApiError::new(
                Status::UnprocessableEntity,
                "invalid_request",
                format!("unexpected JSON: {e}"),
            )
        } else {
            ApiError::invalid_request(format!("malformed JSON: {e}"))
        }
    })
}

#[get("/admin/keys")]
fn list_keys(app: &State<App>, _admin: Admin) -> Json<KeyList> {
    Json(KeyList::of(
        &app.admin.list_keys(&app.keys),
        &app.keys,
        app.clock.now(),
    ))
}

/// A rotation; a client retrying after a lost answer sends the same `Idempotency-Key` and
/// gets the current key set instead of a second rotation.
#[post("/admin/keys/rotate", data = "<data>")]
async fn rotate(
    app: &State<App>,
    admin: Admin,
    idempotency: IdempotencyKey<'_>,
    data: Data<'_>,
) -> Result<Json<KeyList>, ApiError> {
    let idempotency_key = idempotency.parse()?;
    let body: RotateBody = optional_json(data).await?;
    let alg = match body.alg.as_deref() {
        None => app.config.keys.signing_alg,
        Some(name) => name.parse::<Alg>().map_err(|e| {
            ApiError::new(
                Status::UnprocessableEntity,
                "invalid_request",
                format!("{e} (use ES256 or RS256)"),
            )
        })?,
    };
    let options = RotateOptions {
        alg,
        force: body.force,
    };
    let set = app
        .admin
        .rotate_keys(&admin.actor, &app.keys, options, idempotency_key)
        .await?;
    app.metrics.key_change(KeyChange::Rotate, Origin::Api);
    Ok(Json(KeyList::of(&set, &app.keys, app.clock.now())))
}

#[post("/admin/keys/<kid>/revoke")]
async fn revoke(app: &State<App>, admin: Admin, kid: &str) -> Result<Json<KeyList>, ApiError> {
    let set = app.admin.revoke_key(&admin.actor, &app.keys, kid).await?;
    app.metrics.key_change(KeyChange::Revoke, Origin::Api);
    Ok(Json(KeyList::of(&set, &app.keys, app.clock.now())))
}

/// The filters and paging of `GET /admin/audit`, as given (validated by [`audit_log`]).
#[derive(Debug, FromForm)]
struct AuditQuery<'r> {
    actor: Option<&'r str>,
    action: Option<&'r str>,
    subject: Option<&'r str>,
    since: Option<&'r str>,
    until: Option<&'r str>,
    limit: Option<&'r str>,
    before: Option<&'r str>,
}

/// Audit events, newest first, as a JSON array (the original shape); when older events remain,
/// the cursor of the next page is in the `X-Next-Cursor` header (pass it as `before`).
struct AuditAnswer(AuditPage);

impl<'r> Responder<'r, 'static> for AuditAnswer {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Json(self.0.events).respond_to(request)?;
        if let Some(next) = self.0.next {
            response.set_raw_header("X-Next-Cursor", next.to_string());
        }
        Ok(response)
    }
}

#[get("/admin/audit?<query..>")]
async fn audit_log(
    app: &State<App>,
    _admin: Admin,
    query: AuditQuery<'_>,
) -> Result<AuditAnswer, ApiError> {
    let limit = match query.limit {
        None => 100,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request("`limit` must be a whole number from 1 to 500")
            })?,
    };
    let filter = AuditFilter {
        actor: query.actor.map(str::to_string),
        action: query.action.map(str::to_string),
        subject: query.subject.map(str::to_string),
        since: unix_param("since", query.since)?,
        until: unix_param("until", query.until)?,
    };
    let before = unix_param("before", query.before)?;
    Ok(AuditAnswer(
        app.admin.query_audit(&filter, limit, before).await?,
    ))
}

/// An optional whole-number query parameter (unix seconds, or a cursor); anything else is a 400.
fn unix_param(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| {
        raw.parse::<i64>()
            .map_err(|_| ApiError::invalid_request(format!("`{name}` must be a whole number")))
    })
    .transpose()
}
