//! `POST /oauth/token` (RFC 6749 §3.2): the password, refresh_token, client_credentials and
//! authorization_code grants, form-encoded.

use std::net::IpAddr;

use rocket::fairing::AdHoc;
use rocket::form::{self, Form, FromForm};
use rocket::http::CookieJar;
use rocket::{State, post, routes};
use secrecy::SecretString;

use crate::App;
use crate::auth::{LoginRequest, Password, PresentedClient, RefreshRequest, single_resource};
use crate::error::ApiError;
use crate::metrics::Grant;
use crate::oidc::Provider;
use crate::store::GrantType;

use super::client_auth::{BasicAuth, client_credentials, named_client_id, presented_client};
use super::cookies::{self, REFRESH_COOKIE};
use super::request_log::LogEntry;
use super::{TokenResponse, form_error};

/// The token endpoint.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("token endpoint", |rocket| async {
        rocket.mount("/", routes![token])
    })
}

/// Every parameter any grant takes; each grant checks the ones it needs.
#[derive(FromForm)]
struct TokenForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    /// The authorization-code grant's parameters (RFC 6749 §4.1.3, RFC 7636 §4.5).
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    /// Cookie mode for this response (browser apps): `cookie=true`.
    cookie: Option<bool>,
    /// RFC 8707 resource indicators: the registered API the token is for (at most one).
    resource: Vec<String>,
}

/// Parses a token request body and `Authorization` header as the endpoint does (Rocket's form
/// parser, then the one client authentication method the grant takes) without running the grant:
/// the entry point of the `token_form` fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn parse_token_request(
    body: &str,
    authorization: Option<&str>,
) -> Result<PresentedClient, ApiError> {
    let form = Form::<TokenForm>::parse(body).map_err(form_error)?;
    let basic = BasicAuth::from_header(authorization);
    let (form_id, form_secret) = (form.client_id.as_deref(), form.client_secret.as_deref());
    match required(form.grant_type, "grant_type")?.as_str() {
        "client_credentials" => {
            client_credentials(&basic, form_id, form_secret).map(PresentedClient::Authenticated)
        }
        _ => presented_client(&basic, form_id, form_secret),
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::invalid_request(format!(
            "missing parameter `{name}`"
        ))),
    }
}

#[post("/oauth/token", data = "<form>")]
async fn token(
    app: &State<App>,
    jar: &CookieJar<'_>,
    basic: BasicAuth<'_>,
    address: Option<IpAddr>,
    log: LogEntry<'_>,
    form: Result<Form<TokenForm>, form::Errors<'_>>,
) -> Result<TokenResponse, ApiError> {
    let form = form.map_err(form_error)?.into_inner();
    let grant_type = required(form.grant_type, "grant_type")?;
    let cookie_flag = form.cookie.unwrap_or(false);
    let now = app.clock.now();
    let (form_id, form_secret) = (form.client_id.as_deref(), form.client_secret.as_deref());
    // No client named is the default client, except for client_credentials (which needs one).
    let client_id = named_client_id(&basic, form_id).or_else(|| {
        (grant_type != "client_credentials").then(|| app.config.default_client_id.clone())
    });
    log.grant(&grant_type, client_id.as_deref());
    let resource = single_resource(form.resource)?;
    match grant_type.as_str() {
        "password" => {
            let username = required(form.username, "username")?;
            let request = LoginRequest {
                username: username.clone(),
                password: Password::for_login(required(form.password, "password")?)
                    .map_err(|e| ApiError::invalid_request(e.to_string()))?,
                scope: form.scope,
                client: presented_client(&basic, form_id, form_secret)?,
                address,
                device: cookies::device(jar),
                resource,
            };
            let session = app.auth.password_grant(request, now).await;
            app.metrics.grant(Grant::Password, &session);
            let session = session?;
            cookies::set_device(app, jar, &username);
            Ok(cookies::respond(app, jar, session, cookie_flag))
        }
        "refresh_token" => {
            // From the form, or else from the cookie set in cookie mode (which then stays on).
            let (refresh_token, from_cookie) = match form.refresh_token.filter(|t| !t.is_empty()) {
                Some(token) => (token, false),
                None => match jar.get(REFRESH_COOKIE) {
                    Some(cookie) => (cookie.value().to_string(), true),
                    None => {
                        return Err(ApiError::invalid_request(
                            "missing parameter `refresh_token`",
                        ));
                    }
                },
            };
            let request = RefreshRequest {
                refresh_token: SecretString::from(refresh_token),
                scope: form.scope.as_deref(),
                client: presented_client(&basic, form_id, form_secret)?,
                resource: resource.as_deref(),
            };
            let session = app.auth.refresh_grant(request, now).await;
            app.metrics.grant(Grant::RefreshToken, &session);
            let session = match session {
                Ok(session) => session,
                Err(e) => {
                    // A cookie that can no longer refresh is of no use to the browser.
                    if from_cookie {
                        cookies::clear(app, jar);
                    }
                    return Err(e.into());
                }
            };
            Ok(cookies::respond(
                app,
                jar,
                session,
                cookie_flag || from_cookie,
            ))
        }
        "client_credentials" => {
            // Only a confidential client can use this grant: credentials are required.
            let credentials = client_credentials(&basic, form_id, form_secret)?;
            let client = app
                .auth
                .client_for_grant(
                    PresentedClient::Authenticated(credentials),
                    GrantType::ClientCredentials,
                )
                .await
                .inspect_err(|e| app.metrics.outage(Grant::ClientCredentials, e))?;
            let api = app.auth.target(resource.as_deref()).await?;
            let token = app
                .auth
                .client_credentials_grant(&client, form.scope.as_deref(), api.as_ref(), now)
                .await;
            app.metrics.grant(Grant::ClientCredentials, &token);
            Ok(token?.into())
        }
        "authorization_code" => {
            let client = match presented_client(&basic, form_id, form_secret)? {
                PresentedClient::Default => {
                    return Err(ApiError::invalid_request(
                        "client_id is required with the authorization_code grant",
                    ));
                }
                presented => {
                    app.auth
                        .client_for_grant(presented, GrantType::AuthorizationCode)
                        .await?
                }
            };
            let code = required(form.code, "code")?;
            let tokens = Provider::new(app)
                .redeem(
                    &client,
                    &code,
                    form.redirect_uri.as_deref(),
                    form.code_verifier.as_deref(),
                    resource.as_deref(),
                    now,
                )
                .await;
            app.metrics
                .grant_outcome(Grant::AuthorizationCode, tokens.is_ok());
            let tokens = tokens?;
            Ok(TokenResponse {
                id_token: tokens.id_token.map(SecretString::from),
                ..tokens.session.into()
            })
        }
        other => Err(ApiError::unsupported_grant_type(other)),
    }
}
