//! Service clients: generated secrets, client authentication (`client_secret_basic` and
//! `client_secret_post`, RFC 6749 §2.3.1) and the `client_credentials` grant (§4.4).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::store::{Client, split_scope};
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

/// A fixed hash compared against when the client id is unknown, so both cases do the same work.
const NO_CLIENT: TokenHash = TokenHash([0u8; 32]);

impl Authenticator {
    /// Authenticates a client by id and secret, comparing hashes in constant time. Unknown
    /// client, wrong secret and disabled client fail alike.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Client, AuthError> {
        let client = match self.clients.get(&credentials.client_id) {
            Some(client) => Some(client),
            None => {
                let client = self.store.client_by_id(&credentials.client_id).await?;
                if let Some(found) = &client {
                    self.clients.put(found);
                }
                client
            }
        };
        let presented = TokenHash::of(&credentials.secret);
        let expected = client.as_ref().map_or(NO_CLIENT, |c| c.secret_hash);
        let matches: bool = presented.0.ct_eq(&expected.0).into();
        match client {
            Some(client) if matches && !client.disabled => Ok(client),
            _ => Err(AuthError::InvalidClient(
                "client authentication failed".into(),
            )),
        }
    }

    /// `grant_type=client_credentials`: an access token for the client itself (`sub` and
    /// `client_id` are its id), scope limited to what it may have (none asked: all of it),
    /// signed with the client's algorithm if it names one (whose keys `clients add` published;
    /// none are made here). No refresh token (RFC 6749 §4.4.3).
    pub async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, AuthError> {
        let scope = match scope.map(split_scope) {
            None => client.scopes.clone(),
            Some(requested) if requested.is_empty() => client.scopes.clone(),
            Some(requested) => {
                if let Some(extra) = requested.iter().find(|s| !client.scopes.contains(s)) {
                    return Err(AuthError::InvalidScope(extra.clone()));
                }
                requested
            }
        };
        let subject = Subject {
            sub: client.id.clone(),
            client_id: client.id.clone(),
            scope,
            roles: Vec::new(),
        };
        match client.alg {
            Some(alg) => self.sign_with(subject, alg, now),
            None => self.sign(subject, now),
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
