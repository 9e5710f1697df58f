//! Client authentication from the request (RFC 6749 §2.3.1): `client_secret_basic` or
//! `client_secret_post`, for the token, revocation and introspection endpoints, and the client
//! a grant request names (RFC 6749 §3.2.1).

use rocket::request::{FromRequest, Outcome, Request};
use zeroize::Zeroizing;

use crate::App;
use crate::auth::{ClientCredentials, PresentedClient};
use crate::error::ApiError;
use crate::store::Client;

/// The raw `Authorization` header, if its scheme is Basic (client authentication).
pub struct BasicAuth<'r>(pub Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BasicAuth<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(BasicAuth::from_header(
            req.headers().get_one("Authorization"),
        ))
    }
}

impl<'r> BasicAuth<'r> {
    /// The `Authorization` header value if its scheme is Basic (any other scheme is ignored).
    pub fn from_header(header: Option<&'r str>) -> BasicAuth<'r> {
        BasicAuth(header.filter(|h| {
            h.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
        }))
    }
}

/// Picks the one client authentication method used (RFC 6749 §2.3: never more than one):
/// `client_secret_basic` from the header or `client_secret_post` from the form.
pub fn client_credentials(
    basic: &BasicAuth<'_>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<ClientCredentials, ApiError> {
    if let Some(header) = basic.0 {
        if form_secret.is_some() {
            return Err(ApiError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ));
        }
        let credentials = match ClientCredentials::from_basic(header) {
            Some(parsed) => parsed?,
            None => return Err(ApiError::invalid_client("malformed Basic credentials")),
        };
        if form_id.is_some_and(|id| id != credentials.client_id) {
            return Err(ApiError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        return Ok(credentials);
    }
    match (form_id, form_secret) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(ClientCredentials {
            client_id: id.to_string(),
            secret: Zeroizing::new(secret.to_string()),
        }),
        _ => Err(ApiError::invalid_client(
            "client authentication is required",
        )),
    }
}

/// The client a grant request names: credentials by one method, a bare `client_id` (a public
/// client), or nothing (the default client). Both Basic and `client_secret` is `invalid_request`.
pub fn presented_client(
    basic: &BasicAuth<'_>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<PresentedClient, ApiError> {
    let form_id = form_id.filter(|id| !id.is_empty());
    if basic.0.is_some() || form_secret.is_some() {
        return Ok(PresentedClient::Authenticated(client_credentials(
            basic,
            form_id,
            form_secret,
        )?));
    }
    Ok(match form_id {
        Some(id) => PresentedClient::Public(id.to_string()),
        None => PresentedClient::Default,
    })
}

/// The client a request names, for the log: the form's `client_id`, else the id of readable
/// Basic credentials. Nothing is authenticated here.
pub fn named_client_id(basic: &BasicAuth<'_>, form_id: Option<&str>) -> Option<String> {
    match form_id.filter(|id| !id.is_empty()) {
        Some(id) => Some(id.to_string()),
        None => basic
            .0
            .and_then(ClientCredentials::from_basic)
            .and_then(Result::ok)
            .map(|credentials| credentials.client_id),
    }
}

/// Authenticates the calling client.
pub async fn authenticate(
    app: &App,
    basic: &BasicAuth<'_>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Client, ApiError> {
    let credentials = client_credentials(basic, form_id, form_secret)?;
    Ok(app.auth.authenticate_client(&credentials).await?)
}
