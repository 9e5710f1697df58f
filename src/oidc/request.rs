//! The authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1): its parameters,
//! the rules that decide whether it can be answered, and where its errors go. Pure functions of
//! the parameters and the client record, tested at the bottom.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Client, GrantType, split_scope};

/// The raw parameters of an authorization request, from the query or a form body.
#[derive(Clone, Debug, Default)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// RFC 8707 resource indicators (at most one is accepted).
    pub resource: Vec<String>,
}

/// OpenID Connect `prompt` (Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: answer without any page, or fail.
    pub none: bool,
    /// `login`: ask for the password even with a session.
    pub login: bool,
    /// `consent`: ask for consent even if it was given before.
    pub consent: bool,
}

impl Prompt {
    /// Parses the space-separated values; `none` cannot be combined with another.
    pub fn parse(raw: Option<&str>) -> Result<Prompt, String> {
        let mut prompt = Prompt::default();
        let Some(raw) = raw else {
            return Ok(prompt);
        };
        let values = split_scope(raw);
        for value in &values {
            match value.as_str() {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // One account per browser session: nothing to select.
                "select_account" => {}
                other => return Err(format!("unsupported prompt value {other:?}")),
            }
        }
        if prompt.none && values.len() > 1 {
            return Err("prompt=none cannot be combined with other values".into());
        }
        Ok(prompt)
    }

    /// The stored form of what matters after the login form (`login`, `consent`).
    pub fn stored(self) -> Option<String> {
        let mut parts = Vec::new();
        if self.login {
            parts.push("login");
        }
        if self.consent {
            parts.push("consent");
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// A request whose client and redirect URI are valid: from here on, errors go back to the
/// client's redirect URI.
#[derive(Clone, Debug)]
pub struct ValidRequest {
    pub client: Client,
    pub redirect_uri: String,
    /// Requested scope, each part allowed for the client (not yet narrowed to the user).
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// The S256 challenge, if any.
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// Why an authorization request cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The client or the redirect URI cannot be trusted: shown to the user as a page, never
    /// redirected (RFC 6749 §4.1.2.1).
    Page(String),
    /// Sent back to the client's redirect URI as `error`, `error_description`, `state`, `iss`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl RequestError {
    fn back(
        request: &AuthorizeParams,
        redirect_uri: &str,
        error: &'static str,
        description: impl Into<String>,
    ) -> RequestError {
        RequestError::Redirect {
            redirect_uri: redirect_uri.to_string(),
            state: request.state.clone(),
            error,
            description: description.into(),
        }
    }
}

/// Longest accepted `state` and `nonce` (they are stored and echoed).
const MAX_ECHOED: usize = 1024;

/// Checks a request against its client (already looked up: `None` if unknown or disabled).
/// `extra_scopes` are the scopes any user may ask for (the `user_scopes` setting).
pub fn validate(
    params: &AuthorizeParams,
    client: Option<Client>,
    extra_scopes: &[String],
) -> Result<ValidRequest, RequestError> {
    let Some(client) = client.filter(|c| !c.disabled) else {
        return Err(RequestError::Page(match &params.client_id {
            Some(_) => "The application that sent you here is not registered with this sign-in \
                        service, or it is disabled."
                .into(),
            None => "The application that sent you here did not say who it is (client_id is \
                     missing)."
                .into(),
        }));
    };
    // OpenID Connect requires redirect_uri; an exact match with a registered one, no patterns.
    let Some(redirect_uri) = params
        .redirect_uri
        .as_deref()
        .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
    else {
        return Err(RequestError::Page(
            "The application asked to send you back to an address it has not registered \
             (redirect_uri is missing or does not match)."
                .into(),
        ));
    };
    let back = |error, description: String| {
        Err(RequestError::back(params, redirect_uri, error, description))
    };
    if params.request.is_some() || params.request_uri.is_some() {
        let error = if params.request.is_some() {
            "request_not_supported"
        } else {
            "request_uri_not_supported"
        };
        return back(error, "request objects are not supported".into());
    }
    match params.response_type.as_deref() {
        Some("code") => {}
        None | Some("") => return back("invalid_request", "response_type is missing".into()),
        Some(other) => {
            return back(
                "unsupported_response_type",
                format!("response_type {other:?} is not supported; use code"),
            );
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return back(
            "unauthorized_client",
            format!(
                "client {} may not use the authorization code grant",
                client.id
            ),
        );
    }
    if params.state.as_ref().is_some_and(|s| s.len() > MAX_ECHOED)
        || params.nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHOED)
    {
        return back(
            "invalid_request",
            format!("state and nonce may have at most {MAX_ECHOED} characters"),
        );
    }
    let code_challenge = match (
        params.code_challenge.as_deref().filter(|c| !c.is_empty()),
        params.code_challenge_method.as_deref(),
    ) {
        (None, None) if client.public => {
            return back(
                "invalid_request",
                "a public client must use PKCE (code_challenge with code_challenge_method=S256)"
                    .into(),
            );
        }
        (None, None) => None,
        (None, Some(_)) => {
            return back("invalid_request", "code_challenge is missing".into());
        }
        (Some(challenge), Some("S256")) => {
            if !is_pkce_value(challenge) {
                return back(
                    "invalid_request",
                    "code_challenge must be 43 to 128 characters of base64url".into(),
                );
            }
            Some(challenge.to_string())
        }
        (Some(_), None) | (Some(_), Some("plain")) => {
            return back(
                "invalid_request",
                "the plain PKCE method is not accepted; use code_challenge_method=S256".into(),
            );
        }
        (Some(_), Some(other)) => {
            return back(
                "invalid_request",
                format!("code_challenge_method {other:?} is not supported; use S256"),
            );
        }
    };
    let prompt = match Prompt::parse(params.prompt.as_deref()) {
        Ok(prompt) => prompt,
        Err(e) => return back("invalid_request", e),
    };
    let max_age = match params.max_age.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(secs) if secs >= 0 => Some(secs),
            _ => {
                return back(
                    "invalid_request",
                    "max_age must be a number of seconds".into(),
                );
            }
        },
    };
    let scope = split_scope(params.scope.as_deref().unwrap_or(""));
    if let Some(unknown) = scope.iter().find(|s| {
        !(s.as_str() == "openid"
            || s.as_str() == "offline_access"
            || extra_scopes.contains(s)
            || client.scopes.contains(s))
    }) {
        return back("invalid_scope", format!("scope {unknown:?} is not allowed"));
    }
    Ok(ValidRequest {
        redirect_uri: redirect_uri.to_string(),
        scope,
        state: params.state.clone(),
        nonce: params.nonce.clone().filter(|n| !n.is_empty()),
        code_challenge,
        prompt,
        max_age,
        login_hint: params
            .login_hint
            .clone()
            .filter(|h| !h.is_empty() && h.len() <= 256),
        client,
    })
}

/// RFC 7636 §4.1/§4.2: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~` (a verifier, and an S256
/// challenge, which is 43 characters of base64url).
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.6: whether `verifier` hashes (S256) to `challenge`, compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    if !is_pkce_value(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// `redirect_uri` with `params` appended to its query (RFC 6749 §4.1.2: the registered URI's
/// own query is kept).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        // Registered URIs were checked as absolute when registered; keep the text otherwise.
        Err(_) => {
            let mut out = redirect_uri.to_string();
            let mut sep = if out.contains('?') { '&' } else { '?' };
            for (name, value) in params {
                out.push(sep);
                out.extend(form_urlencoded::byte_serialize(name.as_bytes()));
                out.push('=');
                out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
                sep = '&';
            }
            out
        }
    }
}

/// The CSP source of a redirect URI: its origin for http(s), its scheme for a native app's.
pub fn csp_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.scheme() {
        "http" | "https" => {
            let origin = url.origin().ascii_serialization();
            (origin != "null").then_some(origin)
        }
        scheme => Some(format!("{scheme}:")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(public: bool) -> Client {
        Client {
            id: "app".into(),
            secret_hash: None,
            scopes: vec!["orders:read".into()],
            alg: None,
            disabled: false,
            public,
            grants: vec![GrantType::AuthorizationCode],
            redirect_uris: vec!["https://app.example/cb".into()],
            first_party: true,
            post_logout_redirect_uris: vec![],
            created_at: 0,
            previous_secret: None,
        }
    }

    fn params() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            redirect_uri: Some("https://app.example/cb".into()),
            scope: Some("openid profile".into()),
            state: Some("xyz".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..AuthorizeParams::default()
        }
    }

    fn error_of(result: Result<ValidRequest, RequestError>) -> (&'static str, Option<String>) {
        match result {
            Err(RequestError::Redirect { error, state, .. }) => (error, state),
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    const SCOPES: &[String] = &[];

    #[test]
    fn a_good_request_is_valid() {
        let scopes = vec!["profile".to_string()];
        let valid = validate(&params(), Some(client(true)), &scopes).unwrap();
        assert_eq!(valid.scope, vec!["openid", "profile"]);
        assert_eq!(valid.state.as_deref(), Some("xyz"));
    }

    #[test]
    fn unknown_clients_and_unregistered_redirects_never_redirect() {
        assert!(matches!(
            validate(&params(), None, SCOPES),
            Err(RequestError::Page(_))
        ));
        let mut p = params();
        p.redirect_uri = Some("https://evil.example/cb".into());
        assert!(matches!(
            validate(&p, Some(client(true)), SCOPES),
            Err(RequestError::Page(_))
        ));
        p.redirect_uri = None;
        assert!(matches!(
            validate(&p, Some(client(true)), SCOPES),
            Err(RequestError::Page(_))
        ));
        let mut disabled = client(true);
        disabled.disabled = true;
        assert!(matches!(
            validate(&params(), Some(disabled), SCOPES),
            Err(RequestError::Page(_))
        ));
    }

    #[test]
    fn pkce_rules() {
        let mut p = params();
        p.scope = Some("openid".into());
        p.code_challenge = None;
        p.code_challenge_method = None;
        assert_eq!(
            error_of(validate(&p, Some(client(true)), SCOPES)).0,
            "invalid_request"
        );
        assert!(
            validate(&p, Some(client(false)), SCOPES).is_ok(),
            "optional when confidential"
        );
        let mut p = params();
        p.code_challenge_method = Some("plain".into());
        assert_eq!(
            error_of(validate(&p, Some(client(false)), SCOPES)).0,
            "invalid_request"
        );
        p.code_challenge_method = None;
        assert_eq!(
            error_of(validate(&p, Some(client(false)), SCOPES)).0,
            "invalid_request"
        );
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn other_errors_go_back_with_state() {
        let mut p = params();
        p.response_type = Some("token".into());
        assert_eq!(
            error_of(validate(&p, Some(client(true)), SCOPES)),
            ("unsupported_response_type", Some("xyz".into()))
        );
        let mut p = params();
        p.scope = Some("openid admin".into());
        assert_eq!(
            error_of(validate(&p, Some(client(true)), SCOPES)).0,
            "invalid_scope"
        );
        let mut p = params();
        p.prompt = Some("none login".into());
        assert_eq!(
            error_of(validate(&p, Some(client(true)), SCOPES)).0,
            "invalid_request"
        );
        let mut p = params();
        p.max_age = Some("-1".into());
        assert_eq!(
            error_of(validate(&p, Some(client(true)), SCOPES)).0,
            "invalid_request"
        );
        let mut no_grant = client(true);
        no_grant.grants = vec![GrantType::Password];
        assert_eq!(
            error_of(validate(&params(), Some(no_grant), SCOPES)).0,
            "unauthorized_client"
        );
    }

    #[test]
    fn redirects_keep_the_registered_query_and_csp_names_the_origin() {
        assert_eq!(
            redirect_with(
                "https://app.example/cb?x=1",
                &[("code", "a b"), ("state", "s&t")]
            ),
            "https://app.example/cb?x=1&code=a+b&state=s%26t"
        );
        assert_eq!(
            csp_source("https://app.example:8443/cb").as_deref(),
            Some("https://app.example:8443")
        );
        assert_eq!(
            csp_source("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
    }
}
