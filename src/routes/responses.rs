//! Response shapes shared by the token endpoint and `/login`, and body-parsing error mapping.

use rocket::form;
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};

use crate::auth::Session;
use crate::error::ApiError;
use crate::tokens::IssuedToken;

/// RFC 6749 §5.1 successful token response, sent with `Cache-Control: no-store`. In cookie mode
/// the tokens travel only in `HttpOnly` cookies and are left out of the body. The tokens are
/// secrets: `Debug` hides them, and only the JSON body (where they are meant to go) shows them.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_exposed"
    )]
    pub access_token: Option<SecretString>,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_exposed"
    )]
    pub refresh_token: Option<SecretString>,
    /// Seconds until the refresh token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The OpenID Connect ID token (authorization-code grant with the `openid` scope).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_exposed"
    )]
    pub id_token: Option<SecretString>,
}

impl From<IssuedToken> for TokenResponse {
    fn from(token: IssuedToken) -> TokenResponse {
        TokenResponse {
            access_token: Some(token.access_token),
            token_type: "Bearer",
            expires_in: token.expires_in,
            refresh_token: None,
            refresh_expires_in: None,
            scope: token.claims.scope,
            id_token: None,
        }
    }
}

impl From<Session> for TokenResponse {
    fn from(session: Session) -> TokenResponse {
        let (refresh_token, refresh_expires_in) = match session.refresh {
            Some(r) => (
                Some(SecretString::from(r.token.expose())),
                Some(r.expires_in),
            ),
            None => (None, None),
        };
        TokenResponse {
            refresh_token,
            refresh_expires_in,
            ..session.access.into()
        }
    }
}

impl<'r> Responder<'r, 'static> for TokenResponse {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        Response::build_from(json::Json(self).respond_to(req)?)
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Pragma", "no-cache"))
            .ok()
    }
}

/// Wraps a response with `Cache-Control: no-store` (RFC 7662 answers describe live state).
pub struct NoStore<R>(pub R);

impl<'r, R: rocket::response::Responder<'r, 'static>> rocket::response::Responder<'r, 'static>
    for NoStore<R>
{
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        rocket::Response::build_from(self.0.respond_to(req)?)
            .raw_header("Cache-Control", "no-store")
            .ok()
    }
}

/// Writes a secret token into the response body: the one place its text is meant to appear.
fn serialize_exposed<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

/// Maps a form-parsing failure to 413 (too large) or 400 with the first problem named.
pub fn form_error(errors: form::Errors<'_>) -> ApiError {
    if errors.status() == Status::PayloadTooLarge {
        return ApiError::new(
            Status::PayloadTooLarge,
            "invalid_request",
            "the request body is too large",
        );
    }
    let detail = errors.iter().next().map(|e| match e.name.as_ref() {
        Some(name) => format!("parameter `{name}`: {e}"),
        None => e.to_string(),
    });
    ApiError::invalid_request(detail.unwrap_or_else(|| "malformed form body".into()))
}

/// Maps a JSON-parsing failure to 413 (too large), 422 (well-formed, wrong fields) or 400.
pub fn json_error(error: json::Error<'_>) -> ApiError {
    match error {
        json::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => ApiError::new(
            Status::PayloadTooLarge,
            "invalid_request",
            "the request body is too large",
        ),
        json::Error::Io(e) => ApiError::invalid_request(format!("could not read the body: {e}")),
        json::Error::Parse(_, e) if e.classify() == serde_json::error::Category::Data => {
            ApiError::new(
                Status::UnprocessableEntity,
                "invalid_request",
                format!("unexpected JSON fields: {e}"),
            )
        }
        json::Error::Parse(_, e) => ApiError::invalid_request(format!("malformed JSON: {e}")),
    }
}
