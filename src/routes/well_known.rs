//! `/.well-known/jwks.json` and the discovery documents (RFC 8414, OpenID Connect Discovery).
//!
//! The JWKS path takes no lock and touches no database: it clones an `Arc` to bytes serialised
//! once per key-set change.

use std::io::Cursor;
use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket::http::{ContentType, Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{State, get, routes};

use crate::App;

/// The JWKS and the discovery documents.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("well-known", |rocket| async {
        rocket.mount(
            "/",
            routes![jwks, openid_configuration, oauth_authorization_server],
        )
    })
}

/// The `If-None-Match` request header, if any.
pub struct IfNoneMatch<'r>(Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IfNoneMatch<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(IfNoneMatch(req.headers().get_one("If-None-Match")))
    }
}

impl IfNoneMatch<'_> {
    /// Whether the client already holds the representation tagged `etag`.
    pub fn matches(&self, etag: &str) -> bool {
        self.0.is_some_and(|h| etag_matches(h, etag))
    }
}

/// RFC 9110 §13.1.2: `If-None-Match` uses the weak comparison, so `W/"x"` matches `"x"`; `*`
/// matches any current representation.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A cacheable, pre-serialised JSON document, or `304` when the client already has it.
pub struct Cached {
    body: Option<Arc<[u8]>>,
    etag: Option<String>,
    cache_control: Arc<str>,
}

impl<'r> Responder<'r, 'static> for Cached {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response
            .header(Header::new("Cache-Control", self.cache_control.to_string()))
            .header(Header::new("Access-Control-Allow-Origin", "*"));
        if let Some(etag) = self.etag {
            response.header(Header::new("ETag", etag));
        }
        match self.body {
            Some(body) => response
                .header(ContentType::JSON)
                .sized_body(body.len(), Cursor::new(body)),
            None => response.status(Status::NotModified),
        };
        response.ok()
    }
}

#[get("/.well-known/jwks.json")]
fn jwks(app: &State<App>, if_none_match: IfNoneMatch<'_>) -> Cached {
    let keys = app.keys.snapshot();
    let etag = keys.etag();
    let fresh = if_none_match.matches(etag);
    app.metrics.jwks(fresh);
    // With the rotation schedule on, max-age is shortened so no cache outlives the next
    // promotion; otherwise the pre-formatted header is reused.
    let cache_control = if app.config.keys.lifecycle.rotate_every > 0 {
        format!("public, max-age={}", app.keys.jwks_max_age(app.clock.now())).into()
    } else {
        app.jwks_cache_control.clone()
    };
    Cached {
        body: (!fresh).then(|| keys.jwks().clone()),
        etag: Some(etag.to_string()),
        cache_control,
    }
}

#[get("/.well-known/openid-configuration")]
fn openid_configuration(app: &State<App>) -> Cached {
    Cached {
        body: Some(app.discovery.clone()),
        etag: None,
        cache_control: app.jwks_cache_control.clone(),
    }
}

#[get("/.well-known/oauth-authorization-server")]
fn oauth_authorization_server(app: &State<App>) -> Cached {
    openid_configuration(app)
}

/// The discovery document (RFC 8414 and OpenID Connect Discovery 1.0), serialised once at
/// start. It states what this issuer does: the authorization-code grant with PKCE `S256` only,
/// ID tokens signed with the algorithms of its keys, `sub` the same for every client (`public`),
/// the `iss` authorization-response parameter (RFC 9207), and no request objects.
/// `scopes_supported` lists `openid` and `scopes` (the configured user scopes and the scopes of
/// the clients known at start; RFC 8414 §2 lets a server leave some out, and a user's roles,
/// which are scopes too, are not advertised). The same document answers at both paths.
///
/// `issuer` is given exactly as configured (a trailing slash included); endpoint URLs are
/// formed from it without doubling the slash (OpenID Connect Discovery §4.1).
pub fn discovery_document(issuer: &str, scopes: &[String]) -> Vec<u8> {
    let base = issuer.trim_end_matches('/');
    let algs: Vec<&str> = crate::keys::Alg::ALL.iter().map(|a| a.as_str()).collect();
    let mut scopes = scopes.to_vec();
    scopes.push("openid".into());
    scopes.sort();
    scopes.dedup();
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "end_session_endpoint": format!("{base}/end-session"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "grant_types_supported": [
            "password", "refresh_token", "client_credentials", "authorization_code"
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": scopes,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
            "preferred_username", "email"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "access_token_signing_alg_values_supported": algs,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
        assert!(!etag_matches("abc", "\"abc\""));
    }
}
