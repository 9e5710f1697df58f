//! The one HTTP error type: OAuth 2.0 JSON errors (`{"error","error_description"}`, RFC 6749
//! §5.2) with the right status, and JSON catchers so that no path answers with HTML. Domain errors
//! (auth, admin, keys, store) map to it here; 5xx log their cause chain and answer an opaque body.

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{Catcher, catch, catchers};
use serde::Serialize;

use crate::admin::AdminError;
use crate::auth::{AuthError, PasswordError};
use crate::keys::{KeyError, KeyStoreError};
use crate::store::StoreError;
use crate::tokens::TokenError;

/// An error answer. 4xx explain what was wrong; 5xx log the cause and say nothing more.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: Status,
    pub error: &'static str,
    pub description: String,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
    /// Answered because the database could not be reached (counted in the metrics).
    pub database_outage: bool,
}

/// `Retry-After` seconds of a database outage answer: long enough not to hammer a recovering
/// database, short enough that clients come back soon after it does.
pub const DATABASE_RETRY_AFTER: u64 = 5;

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    pub fn new(status: Status, error: &'static str, description: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
            database_outage: false,
        }
    }

    /// `503` with `Retry-After` for a request that needs the database while it cannot be
    /// reached (down, restarting, no free connection within `database_acquire_timeout`). The
    /// cause goes to the log; the caller learns that a retry may succeed.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> ApiError {
        rocket::warn!("database unavailable: {cause}");
        let mut err = ApiError::new(
            Status::ServiceUnavailable,
            "temporarily_unavailable",
            "the service cannot reach its database; retry shortly",
        );
        err.retry_after = Some(DATABASE_RETRY_AFTER);
        err.database_outage = true;
        err
    }

    pub fn invalid_request(description: impl Into<String>) -> ApiError {
        ApiError::new(Status::BadRequest, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> ApiError {
        ApiError::new(Status::BadRequest, "invalid_grant", description)
    }

    pub fn unsupported_grant_type(grant: &str) -> ApiError {
        ApiError::new(
            Status::BadRequest,
            "unsupported_grant_type",
            format!("grant_type {grant:?} is not supported"),
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> ApiError {
        ApiError::new(Status::BadRequest, "invalid_scope", description)
    }

    /// RFC 8707 §2: a `resource` that is malformed, unknown, or not allowed here.
    pub fn invalid_target(description: impl Into<String>) -> ApiError {
        ApiError::new(Status::BadRequest, "invalid_target", description)
    }

    /// RFC 6749 §5.2: failed client authentication, 401 with a Basic challenge (the method the
    /// client may retry with).
    pub fn invalid_client(description: impl Into<String>) -> ApiError {
        let mut err = ApiError::new(Status::Unauthorized, "invalid_client", description);
        err.www_authenticate = Some(r#"Basic realm="stamp""#.into());
        err
    }

    /// RFC 6749 §5.2: an authenticated (or public) client that may not use this grant.
    pub fn unauthorized_client(description: impl Into<String>) -> ApiError {
        ApiError::new(Status::BadRequest, "unauthorized_client", description)
    }

    /// 429 with `Retry-After` (login throttling).
    pub fn too_many_requests(description: impl Into<String>, retry_after: i64) -> ApiError {
        let mut err = ApiError::new(Status::TooManyRequests, "slow_down", description);
        err.retry_after = Some(retry_after.max(1) as u64);
        err
    }

    pub fn unsupported_media_type(expected: &str) -> ApiError {
        ApiError::new(
            Status::UnsupportedMediaType,
            "invalid_request",
            format!("the body must be {expected}"),
        )
    }

    /// The JSON body: `{"error": …, "error_description": …}`.
    pub fn json(&self) -> String {
        serde_json::to_string(&Body {
            error: self.error,
            error_description: &self.description,
        })
        .unwrap_or_else(|_| r#"{"error":"server_error"}"#.to_string())
    }

    /// A failure that is the server's, not the client's: the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        rocket::error!("internal error: {cause}");
        ApiError::new(
            Status::InternalServerError,
            "server_error",
            "the server could not complete the request",
        )
    }

    /// The body for a bare status (catchers, and the listener's own answers).
    pub fn for_status(status: Status) -> ApiError {
        let (error, description) = match status.code {
            400 => ("invalid_request", "the request is malformed"),
            401 => ("invalid_token", "authentication is required"),
            403 => ("insufficient_scope", "the token does not allow this"),
            404 => ("not_found", "no such resource"),
            405 => ("invalid_request", "method not allowed"),
            413 => ("invalid_request", "the request body is too large"),
            415 => ("invalid_request", "unsupported content type"),
            422 => (
                "invalid_request",
                "the request body does not have the expected fields",
            ),
            429 => ("slow_down", "too many requests"),
            503 => ("temporarily_unavailable", "the server is not ready"),
            code if code >= 500 => ("server_error", "the server could not complete the request"),
            _ => ("invalid_request", "the request cannot be served"),
        };
        let mut err = ApiError::new(status, error, description);
        if status.code == 401 {
            err.www_authenticate = Some("Bearer".into());
        }
        err
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        crate::routes::request_log::note_error(req, self.error);
        if self.database_outage
            && let Some(app) = req.rocket().state::<crate::App>()
        {
            app.metrics.database_unavailable();
        }
        let body = self.json();
        let mut response = Response::build();
        response
            .status(self.status)
            .header(ContentType::JSON)
            .sized_body(body.len(), std::io::Cursor::new(body))
            .header(Header::new("Cache-Control", "no-store"));
        if let Some(challenge) = self.www_authenticate {
            response.header(Header::new("WWW-Authenticate", challenge));
        }
        if let Some(seconds) = self.retry_after {
            response.header(Header::new("Retry-After", seconds.to_string()));
        }
        response.ok()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::InvalidGrant => ApiError::invalid_grant("invalid username or password"),
            AuthError::InvalidScope(scope) => {
                ApiError::invalid_scope(format!("scope {scope:?} is not allowed"))
            }
            AuthError::InvalidRequest(msg) => ApiError::invalid_request(msg),
            AuthError::InvalidTarget(msg) => ApiError::invalid_target(msg),
            AuthError::Store(e) => e.into(),
            AuthError::Token(e) => e.into(),
            AuthError::Throttled { retry_after } => {
                ApiError::too_many_requests("too many failed logins; try again later", retry_after)
            }
            AuthError::Busy { retry_after } => {
                let mut err = ApiError::new(
                    Status::ServiceUnavailable,
                    "temporarily_unavailable",
                    "too many logins at once; try again shortly",
                );
                err.retry_after = Some(retry_after.max(1) as u64);
                err
            }
            AuthError::Refresh(why) => {
                if why == crate::tokens::refresh::Rejection::Reused {
                    rocket::warn!("refresh token reuse detected; its family is revoked");
                }
                ApiError::invalid_grant(why.to_string())
            }
            AuthError::InvalidClient(msg) => ApiError::invalid_client(msg),
            e @ AuthError::UnauthorizedClient { .. } => {
                ApiError::unauthorized_client(e.to_string())
            }
            e @ AuthError::WrongClient => ApiError::invalid_grant(e.to_string()),
            // A newly enabled algorithm's first key is still being pre-published (docs/keys.md,
            // "Keys"): a retry after the promotion succeeds. The log names the key.
            AuthError::Keys {
                source: e @ KeyError::NotYetActive { retry_after, .. },
                ..
            } => {
                rocket::warn!("token refused for now: {e}");
                let mut err = ApiError::new(
                    Status::ServiceUnavailable,
                    "temporarily_unavailable",
                    "the signing key for this client is not in use yet; retry later",
                );
                err.retry_after = Some(retry_after);
                err
            }
            // The cause goes to the log; the caller learns only that the server failed.
            e @ AuthError::Keys { .. } => ApiError::internal(error_chain(&e)),
        }
    }
}

impl From<crate::oidc::CodeError> for ApiError {
    fn from(e: crate::oidc::CodeError) -> ApiError {
        use crate::oidc::CodeError;
        match e {
            CodeError::InvalidGrant(why) => ApiError::invalid_grant(why),
            CodeError::InvalidRequest(why) => ApiError::invalid_request(why),
            CodeError::Auth(e) => e.into(),
            CodeError::Store(e) => e.into(),
            e @ CodeError::IdToken(_) => ApiError::internal(error_chain(&e)),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::NoSuchUser { username } => ApiError::new(
                Status::NotFound,
                "not_found",
                format!("user {username} not found"),
            ),
            AdminError::RotationTooEarly {
                retry_after,
                source,
            } => {
                let mut err =
                    ApiError::new(Status::Conflict, "rotation_too_early", source.to_string());
                err.retry_after = Some(retry_after);
                err
            }
            e @ AdminError::BuiltInClient { .. } => {
                ApiError::new(Status::Forbidden, "access_denied", e.to_string())
            }
            e @ (AdminError::PublicClient { .. } | AdminError::OverlapTooLong { .. }) => {
                ApiError::invalid_request(e.to_string())
            }
            AdminError::Keys(e) => e.into(),
            AdminError::Store(e) => e.into(),
            AdminError::Auth(AuthError::InvalidGrant) => {
                ApiError::invalid_grant("the current password is wrong")
            }
            AdminError::Auth(e) => e.into(),
            AdminError::Password(
                e @ (PasswordError::TooShort { .. }
                | PasswordError::TooLong { .. }
                | PasswordError::TooGuessable { .. }),
            ) => ApiError::invalid_request(e.to_string()),
            other => ApiError::internal(error_chain(&other)),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> ApiError {
        match e {
            KeyError::UnknownKid(kid) => ApiError::new(
                Status::NotFound,
                "not_found",
                format!("no key with kid {kid}"),
            ),
            KeyError::NotPublished { .. } => {
                ApiError::new(Status::Conflict, "invalid_request", e.to_string())
            }
            // Normally mapped from `AdminError::RotationTooEarly`, which knows the `Retry-After`.
            KeyError::TooEarly { .. } => {
                ApiError::new(Status::Conflict, "rotation_too_early", e.to_string())
            }
            // Another replica (or `stamp keys`) committed a change in between: nothing was
            // applied here; the caller may look at the new key set and retry.
            KeyError::Store(KeyStoreError::Stale { .. }) => {
                let mut err = ApiError::new(
                    Status::Conflict,
                    "key_set_changed",
                    "the key set was changed concurrently (another replica or the CLI); nothing was applied, retry",
                );
                err.retry_after = Some(1);
                err
            }
            KeyError::Store(KeyStoreError::Database { ref source, .. })
                if crate::store::is_unavailable(source) =>
            {
                ApiError::database_unavailable(error_chain(&e))
            }
            other => ApiError::internal(error_chain(&other)),
        }
    }
}

/// An error and its causes on one line (`outer: inner: innermost`), for the log and the CLI.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // `#[error(transparent)]` and `{source}` messages already end with their cause.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if e.is_unavailable() {
            return ApiError::database_unavailable(error_chain(&e));
        }
        match e {
            StoreError::Conflict(what) => ApiError::new(
                Status::Conflict,
                "invalid_request",
                format!("{what} already exists"),
            ),
            StoreError::NotFound(what) => {
                ApiError::new(Status::NotFound, "not_found", format!("{what} not found"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        ApiError::internal(e)
    }
}

/// The error a request guard failed with, kept for the catcher: a guard's `Outcome::Error`
/// carries only a status to the catcher, and the answer should say what was wrong.
pub struct GuardFailure(Option<ApiError>);

impl ApiError {
    /// Fails a request guard with this error: the catcher answers with it.
    pub fn fail_guard<T>(self, req: &Request<'_>) -> rocket::request::Outcome<T, ApiError> {
        let status = self.status;
        req.local_cache(|| GuardFailure(Some(self.clone())));
        rocket::request::Outcome::Error((status, self))
    }
}

#[catch(default)]
fn default_catcher(status: Status, req: &Request<'_>) -> ApiError {
    match &req.local_cache(|| GuardFailure(None)).0 {
        Some(err) if err.status == status => err.clone(),
        _ => ApiError::for_status(status),
    }
}

/// JSON catchers for every status.
pub fn catchers() -> Vec<Catcher> {
    catchers![default_catcher]
}
