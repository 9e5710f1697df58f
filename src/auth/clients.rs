//! Clients: generated secrets, client authentication (`client_secret_basic` and
//! `client_secret_post`, RFC 6749 §2.3.1), the client of every grant (registered, enabled,
//! allowed the grant, authenticated if confidential) and the `client_credentials` grant (§4.4).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::store::{
    Api, AuditNote, Client, ClientId, GrantType, NewClient, Store, StoreError, split_scope,
};
use crate::tokens::refresh::TokenHash;
use crate::tokens::{IssuedToken, Subject};

use super::login::{AuthError, Authenticator};

/// A client secret: 256 random bits, base64url. It is shown once, when the client is created;
/// the store keeps only its SHA-256. Not a human password, so a fast hash is enough and keeps
/// client authentication cheap.
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    pub fn generate() -> ClientSecret {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        ClientSecret(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<hidden>)")
    }
}

/// Credentials a client presented, by one method.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Zeroizing<String>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Parses `Authorization: Basic …` (RFC 6749 §2.3.1: id and secret are form-urlencoded,
    /// joined by `:`, base64). `None` if the header is not Basic; an error if it is but broken.
    pub fn from_basic(header: &str) -> Option<Result<ClientCredentials, AuthError>> {
        let (scheme, value) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let broken = || AuthError::InvalidClient("malformed Basic credentials".into());
        Some((|| {
            let decoded = Zeroizing::new(STANDARD.decode(value.trim()).map_err(|_| broken())?);
            let text = std::str::from_utf8(&decoded).map_err(|_| broken())?;
            let (id, secret) = text.split_once(':').ok_or_else(broken)?;
            Ok(ClientCredentials {
                client_id: form_decode(id).ok_or_else(broken)?,
                secret: Zeroizing::new(form_decode(secret).ok_or_else(broken)?),
            })
        })())
    }
}

/// How a grant request identifies its client (RFC 6749 §2.3, §3.2.1).
#[derive(Debug)]
pub enum PresentedClient {
    /// No client named: the built-in first-party public client (`default_client_id`).
    Default,
    /// A `client_id` without a secret: it must be a public client.
    Public(String),
    /// Credentials, by Basic or in the form: it must be a confidential client with that secret.
    Authenticated(ClientCredentials),
}

/// The client id of the admin console (`/console/`): a built-in public client resolved in code,
/// never stored, so the admin API cannot delete, disable or alter it (it refuses the id).
pub const CONSOLE_CLIENT_ID: &str = "stamp-console";

/// The console's path under the issuer; also its redirect and post-logout redirect URI.
pub const CONSOLE_PATH: &str = "/console/";

/// The admin console's client record for `issuer`: public (PKCE S256 required, as for every
/// public client), first-party (no consent screen), the authorization-code grant only (no
/// refresh tokens: the access token lives in the page's memory and a new sign-in is one redirect
/// through the issuer session), sent back to `{issuer}/console/` after sign-in and sign-out.
pub fn console_client(issuer: &str) -> Client {
    let console = format!("{}{CONSOLE_PATH}", issuer.trim_end_matches('/'));
    Client {
        id: CONSOLE_CLIENT_ID.to_string(),
        secret_hash: None,
        scopes: Vec::new(),
        alg: None,
        disabled: false,
        public: true,
        grants: vec![GrantType::AuthorizationCode],
        redirect_uris: vec![console.clone()],
        first_party: true,
        post_logout_redirect_uris: vec![console],
        created_at: 0,
        previous_secret: None,
    }
}

/// Creates the built-in first-party public client `id` (allowed `password` and
/// `refresh_token`) unless it exists. Replicas starting together may race: a concurrent
/// creator's unique violation counts as success.
pub async fn ensure_default_client(
    store: &dyn Store,
    id: &ClientId,
    now: i64,
) -> Result<(), StoreError> {
    if store.client_by_id(id.as_str()).await?.is_some() {
        return Ok(());
    }
    let client = NewClient {
        id: id.clone(),
        secret_hash: None,
        scopes: Vec::new(),
        alg: None,
        grants: GrantType::defaults(true),
        redirect_uris: Vec::new(),
        first_party: true,
        post_logout_redirect_uris: Vec::new(),
    };
    let note = AuditNote::new("system", "clients.add", now, |client: &Client| {
        (
            Some(client.id.clone()),
            Some("built-in default client".into()),
        )
    });
    match store.create_client(client, now, Some(&note)).await {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `application/x-www-form-urlencoded` decoding of one value (RFC 6749 §2.3.1, Appendix B:
/// `+` is a space, `%XX` a byte, the result UTF-8), by the `form_urlencoded` crate.
///
/// That crate is lenient as browsers are: it keeps a broken escape (`%zz`) literally and replaces
/// invalid UTF-8. Credentials must be exactly what the client meant, so both are refused here.
fn form_decode(raw: &str) -> Option<String> {
    let escapes_ok = raw.split('%').skip(1).all(|rest| {
        rest.as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return None;
    }
    // One `name=value` pair: a literal `&` in the value (not a separator here) is escaped first.
    let pair = format!("v={}", raw.replace('&', "%26"));
    let (_, value) = form_urlencoded::parse(pair.as_bytes()).next()?;
    if value.contains(char::REPLACEMENT_CHARACTER) && !raw.contains(char::REPLACEMENT_CHARACTER) {
        return None;
    }
    Some(value.into_owned())
}

/// A fixed hash compared against when the client id is unknown or public, so every case does
/// the same work.
const NO_CLIENT: TokenHash = TokenHash([0u8; 32]);

impl Authenticator {
    /// The client of a `grant` request: the default client if none is named; else a registered,
    /// enabled client that authenticated if it is confidential (a public client presents no
    /// secret). It must be allowed `grant` (RFC 6749 §5.2 `unauthorized_client`).
    pub async fn client_for_grant(
        &self,
        presented: PresentedClient,
        grant: GrantType,
    ) -> Result<Client, AuthError> {
        let client = match presented {
            PresentedClient::Default => self.public_client(&self.default_client_id).await?,
            PresentedClient::Public(id) => self.public_client(&id).await?,
            PresentedClient::Authenticated(credentials) => {
                self.authenticate_client(&credentials).await?
            }
        };
        if !client.allows(grant) {
            return Err(AuthError::UnauthorizedClient {
                client_id: client.id,
                grant,
            });
        }
        Ok(client)
    }

    /// The public client `id`, if it is registered and enabled. A confidential client named
    /// without its secret is `invalid_client` too: it must authenticate.
    async fn public_client(&self, id: &str) -> Result<Client, AuthError> {
        // Not a valid client id (a 5,000-character name, say): not worth a database read.
        let client = match ClientId::parse(id) {
            Ok(parsed) if parsed.as_str() == id => self.client_record(id).await?,
            _ => None,
        };
        match client {
            Some(client) if client.public && !client.disabled => Ok(client),
            Some(client) if !client.public => Err(AuthError::InvalidClient(
                "client authentication is required for this client".into(),
            )),
            _ => Err(AuthError::InvalidClient(
                "unknown or disabled client".into(),
            )),
        }
    }

    /// The stored record of client `id`, from the cache if fresh.
    pub(super) async fn client_record(&self, id: &str) -> Result<Option<Client>, AuthError> {
        if id == CONSOLE_CLIENT_ID {
            return Ok(Some(self.console.clone()));
        }
        if let Some(client) = self.clients.get(id) {
            return Ok(Some(client));
        }
        let client = self.store.client_by_id(id).await?;
        if let Some(found) = &client {
            self.clients.put(found);
        }
        Ok(client)
    }

    /// Authenticates a confidential client by id and secret, comparing hashes in constant
    /// time. Unknown client, public client, wrong secret and disabled client fail alike. The
    /// secret replaced by a rotation with an overlap is accepted until the overlap ends.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Client, AuthError> {
        let client = if ClientId::parse(&credentials.client_id)
            .is_ok_and(|id| id.as_str() == credentials.client_id)
        {
            self.client_record(&credentials.client_id).await?
        } else {
            None
        };
        let presented = TokenHash::of(&credentials.secret);
        let expected = client
            .as_ref()
            .and_then(|c| c.secret_hash)
            .unwrap_or(NO_CLIENT);
        let current: bool = presented.0.ct_eq(&expected.0).into();
        // The secret replaced by a rotation with an overlap, until the overlap ends; compared
        // always (against a dummy if there is none), so timing tells nothing.
        let (previous, until) = client
            .as_ref()
            .and_then(|c| c.previous_secret)
            .unwrap_or((NO_CLIENT, i64::MIN));
        let previous: bool = presented.0.ct_eq(&previous.0).into();
        let matches = current || (previous && self.clock.now() < until);
        match client {
            Some(client) if matches && !client.public && !client.disabled => Ok(client),
            _ => Err(AuthError::InvalidClient(
                "client authentication failed".into(),
            )),
        }
    }

    /// `grant_type=client_credentials`: an access token for the client itself (`sub` and
    /// `client_id` are its id), scope limited to what it may have (none asked: all of it),
    /// signed with the client's algorithm if it names one (whose keys `clients add` published;
    /// none are made here). No refresh token (RFC 6749 §4.4.3). For a registered API (`api`,
    /// RFC 8707) the token's `aud` is the API's identifier and its scope is further limited to
    /// what the API defines.
    pub async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: Option<&str>,
        api: Option<&Api>,
        now: i64,
    ) -> Result<IssuedToken, AuthError> {
        let allowed =
            |s: &String| client.scopes.contains(s) && api.is_none_or(|api| api.scopes.contains(s));
        let scope = match scope.map(split_scope) {
            Some(requested) if !requested.is_empty() => {
                if let Some(extra) = requested.iter().find(|s| !allowed(s)) {
                    return Err(AuthError::InvalidScope(extra.clone()));
                }
                requested
            }
            _ => client
                .scopes
                .iter()
                .filter(|s| allowed(s))
                .cloned()
                .collect(),
        };
        let audience = api.map(|api| api.identifier.as_str());
        let subject = Subject {
            sub: client.id.clone(),
            client_id: client.id.clone(),
            scope,
            roles: Vec::new(),
            ver: None,
        };
        match client.alg {
            Some(alg) => {
                // The client may have been added (its keys published) or its key promoted by
                // another replica a moment ago: look at the store before refusing.
                if self.keys.snapshot().active(alg).is_none()
                    && let Err(e) = self.keys.reload_if_changed().await
                {
                    log::warn!("reloading the key set for a {alg} client failed: {e}");
                }
                self.sign_with(subject, alg, audience, now)
            }
            None => self.sign(subject, audience, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn secrets_have_256_bits_and_hide_from_debug() {
        let secret = ClientSecret::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(secret.expose()).unwrap().len(), 32);
        assert_eq!(format!("{secret:?}"), "ClientSecret(<hidden>)");
        assert_eq!(secret.hash(), TokenHash::of(secret.expose()));
    }

    #[test]
    fn the_console_is_a_public_first_party_code_client_of_its_issuer() {
        let console = console_client("https://id.example.com/");
        assert!(console.public && console.first_party && !console.disabled);
        assert!(console.secret_hash.is_none());
        assert_eq!(console.grants, [GrantType::AuthorizationCode]);
        assert_eq!(console.redirect_uris, ["https://id.example.com/console/"]);
        assert_eq!(
            console.post_logout_redirect_uris,
            ["https://id.example.com/console/"]
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let creds = ClientCredentials::from_basic(&basic("my%3Aclient:s%2Bp+x"))
            .unwrap()
            .unwrap();
        assert_eq!(creds.client_id, "my:client");
        assert_eq!(creds.secret.as_str(), "s+p x");
        assert!(!format!("{creds:?}").contains("s+p"));
    }

    #[test]
    fn other_schemes_are_not_basic_and_broken_basic_is_an_error() {
        assert!(ClientCredentials::from_basic("Bearer abc").is_none());
        assert!(ClientCredentials::from_basic("Basic !!!").unwrap().is_err());
        assert!(
            ClientCredentials::from_basic(&basic("no-colon"))
                .unwrap()
                .is_err()
        );
        assert!(
            ClientCredentials::from_basic(&basic("id:%zz"))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn form_decoding_follows_rfc_6749_and_refuses_what_is_not_exact() {
        assert_eq!(form_decode("a+b%20c%2B").as_deref(), Some("a b c+"));
        assert_eq!(form_decode("x=y&z").as_deref(), Some("x=y&z"));
        assert_eq!(form_decode("%C3%A9t%C3%A9").as_deref(), Some("été"));
        assert_eq!(form_decode(""), Some(String::new()));
        assert_eq!(form_decode("50%"), None, "truncated escape");
        assert_eq!(form_decode("%4"), None, "truncated escape");
        assert_eq!(form_decode("%FF"), None, "not UTF-8");
    }
}
