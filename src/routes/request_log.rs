//! The request log: a request id for every request (the caller's `X-Request-Id` if it is sane,
//! else a fresh one), echoed in the response, and one `info` event per request when it is
//! answered: id, method, route template, status, latency, client address, the OAuth error code
//! of an error answer and, for token grants, the grant type, client and outcome.
//!
//! Handlers add to their request's entry through the [`LogEntry`] guard; [`ApiError`]s note
//! their error code themselves (`error.rs`). The event goes through `logging.rs` like every
//! other, so it is redacted and written in the configured format.
//!
//! [`ApiError`]: crate::error::ApiError

use std::sync::OnceLock;
use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{Data, Response};

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// Longest request id taken from a caller (a UUID is 36 characters, a W3C trace id 32).
const MAX_REQUEST_ID: usize = 128;

/// The fairing that assigns request ids and writes the request log.
pub struct RequestLogger;

/// What the log knows about one request, kept in Rocket's request-local cache.
struct RequestState {
    id: String,
    start: Instant,
    grant: OnceLock<Grant>,
    error: OnceLock<&'static str>,
}

/// A token grant, as the request named it.
struct Grant {
    grant_type: &'static str,
    client_id: Option<String>,
}

impl RequestState {
    fn of<'r>(req: &'r Request<'_>) -> &'r RequestState {
        req.local_cache(|| RequestState {
            id: request_id(req.headers().get_one(REQUEST_ID_HEADER)),
            start: crate::clock::instant(),
            grant: OnceLock::new(),
            error: OnceLock::new(),
        })
    }
}

#[rocket::async_trait]
impl Fairing for RequestLogger {
    fn info(&self) -> Info {
        Info {
            name: "request log",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        RequestState::of(req);
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let state = RequestState::of(req);
        res.set_raw_header(REQUEST_ID_HEADER, state.id.clone());
        let status = res.status();
        let latency_ms = (state.start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let route = req.route().map(|r| r.uri.origin.path().as_str());
        let client_ip = req.client_ip().map(|ip| ip.to_string());
        let error = state.error.get().copied();
        let grant = state.grant.get();
        let outcome = grant.map(|_| match error {
            Some(code) if status.code >= 400 => code,
            _ if status.code >= 400 => "error",
            _ => "issued",
        });
        tracing::info!(
            target: "stamp::request",
            request_id = state.id.as_str(),
            method = req.method().as_str(),
            route,
            status = status.code,
            latency_ms,
            client_ip = client_ip.as_deref(),
            error,
            grant_type = grant.map(|g| g.grant_type),
            client_id = grant.and_then(|g| g.client_id.as_deref()),
            outcome,
            "request"
        );
    }
}

/// The request's log entry, for handlers that add to it.
pub struct LogEntry<'r>(&'r RequestState);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LogEntry<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(LogEntry(RequestState::of(req)))
    }
}

impl LogEntry<'_> {
    /// Notes a token grant: its type (one of the grants the issuer knows, else `unsupported`:
    /// the value is the caller's) and the client it names, if any. The first note counts.
    pub fn grant(&self, grant_type: &str, client_id: Option<&str>) {
        let grant_type = match grant_type {
            "password" => "password",
            "refresh_token" => "refresh_token",
            "client_credentials" => "client_credentials",
            "authorization_code" => "authorization_code",
            _ => "unsupported",
        };
        let _ = self.0.grant.set(Grant {
            grant_type,
            client_id: client_id.map(str::to_string),
        });
    }
}

/// Notes the OAuth error code `req` is answered with (the first one counts: a guard's error is
/// answered again by the catcher).
pub fn note_error(req: &Request<'_>, error: &'static str) {
    let _ = RequestState::of(req).error.set(error);
}

/// The caller's request id if it is sane (1 to 128 visible ASCII characters from the token set
/// below, so it cannot break a log line or a header), else a fresh random one.
fn request_id(given: Option<&str>) -> String {
    match given.map(str::trim) {
        Some(id) if sane_request_id(id) => id.to_string(),
        _ => crate::store::random_id(),
    }
}

fn sane_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:~+/=@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_is_kept() {
        for id in [
            "abc",
            "3f2a9c1e-7b4d-4e2a-9f1c-0a1b2c3d4e5f",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "req_42.a:b~c+d/e=f@g",
            &"x".repeat(MAX_REQUEST_ID),
        ] {
            assert_eq!(request_id(Some(id)), id);
        }
        assert_eq!(request_id(Some("  padded  ")), "padded");
    }

    #[test]
    fn an_insane_request_id_is_replaced_by_a_fresh_one() {
        let long = "x".repeat(MAX_REQUEST_ID + 1);
        for id in [
            "",
            "   ",
            "two words",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "{\"json\":1}",
            "semi;colon",
            "ünïcode",
            "tab\there",
            &long,
        ] {
            let fresh = request_id(Some(id));
            assert_ne!(fresh, id);
            assert!(sane_request_id(&fresh), "{fresh}");
            assert_eq!(fresh.len(), 22, "128 random bits, base64url");
        }
        let (a, b) = (request_id(None), request_id(None));
        assert_ne!(a, b, "generated ids are fresh each time");
    }
}
