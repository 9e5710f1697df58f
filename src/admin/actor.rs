//! Who acts: the [`Actor`] an audit entry names, and who may call the admin API (a person whose
//! token carries the `admin` role, or a service client whose client-credentials token carries
//! the `admin` scope) and still may, now.

use std::fmt;

use crate::auth::TokenOwner;
use crate::store::{Client, User};
use crate::tokens::AccessClaims;

/// The role, or scope, that grants the admin API.
pub const ADMIN: &str = "admin";

/// Who performed an administrative action, as the audit log names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The `stamp` command on the server's machine (`cli`).
    Cli,
    /// A person, by user id (`user:<id>`).
    User { id: String },
    /// A service client, by client id (`client:<id>`).
    Client { id: String },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Cli => f.write_str("cli"),
            Actor::User { id } => write!(f, "user:{id}"),
            Actor::Client { id } => write!(f, "client:{id}"),
        }
    }
}

/// An authenticated administrator of the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// The user or client the token speaks for.
    pub actor: Actor,
}

/// A verified token that does not grant the admin API.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the token grants neither the admin role nor the admin scope")]
pub struct NotAdmin;

impl Admin {
    /// Decides from verified claims. A client-credentials token (its `sub` is its own
    /// `client_id`) needs the `admin` scope; a user's token needs the `admin` role. A user's
    /// token with `admin` in its scope but not in its roles is refused: scope alone is what a
    /// client asked for, the role is what the identity team granted.
    pub fn authorize(claims: &AccessClaims) -> Result<Admin, NotAdmin> {
        if claims.roles.iter().any(|r| r == ADMIN) {
            return Ok(Admin {
                actor: Actor::User {
                    id: claims.sub.clone(),
                },
            });
        }
        let is_client = claims.sub == claims.client_id;
        let has_scope = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|p| p == ADMIN));
        if is_client && has_scope {
            return Ok(Admin {
                actor: Actor::Client {
                    id: claims.client_id.clone(),
                },
            });
        }
        Err(NotAdmin)
    }
}

/// The still-admin rule, applied to the owner of a token that passed the online check (which
/// has already refused disabled, deleted and superseded owners): the owner as read now still
/// holds the right.
pub fn still_admin(owner: &TokenOwner) -> bool {
    match owner {
        TokenOwner::User(user) => user_still_admin(Some(user)),
        TokenOwner::Client(client) => client_still_admin(Some(client)),
    }
}

/// The still-admin rule for a person: the account (as read now) exists, is enabled and still
/// holds the `admin` role. A token outlives changes to its account; the admin API, being
/// online, does not let it.
pub fn user_still_admin(user: Option<&User>) -> bool {
    user.is_some_and(|u| !u.disabled && u.roles.iter().any(|r| r == ADMIN))
}

/// The still-admin rule for a service client: it exists, is enabled and may still have the
/// `admin` scope.
pub fn client_still_admin(client: Option<&Client>) -> bool {
    client.is_some_and(|c| !c.disabled && c.scopes.iter().any(|s| s == ADMIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::refresh::TokenHash;

    fn claims(sub: &str, client_id: &str, scope: Option<&str>, roles: &[&str]) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: "a".into(),
            exp: 0,
            iat: 0,
            nbf: Some(0),
            jti: "j".into(),
            client_id: client_id.into(),
            scope: scope.map(String::from),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ver: None,
        }
    }

    fn user(roles: &[&str], disabled: bool) -> User {
        User {
            id: "u1".into(),
            username: "root".into(),
            password_hash: String::new(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            disabled,
            token_version: 0,
            created_at: 0,
            email: None,
        }
    }

    fn client(scopes: &[&str], disabled: bool) -> Client {
        Client {
            id: "cron".into(),
            secret_hash: Some(TokenHash([0; 32])),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            alg: None,
            disabled,
            public: false,
            grants: vec![crate::store::GrantType::ClientCredentials],
            redirect_uris: Vec::new(),
            first_party: true,
            post_logout_redirect_uris: Vec::new(),
            created_at: 0,
            previous_secret: None,
        }
    }

    #[test]
    fn admin_role_or_client_admin_scope() {
        assert_eq!(
            Admin::authorize(&claims("u1", "stamp", None, &["admin"])),
            Ok(Admin {
                actor: Actor::User { id: "u1".into() }
            })
        );
        assert_eq!(
            Admin::authorize(&claims("cron", "cron", Some("keys admin"), &[])),
            Ok(Admin {
                actor: Actor::Client { id: "cron".into() }
            })
        );
        assert_eq!(
            Admin::authorize(&claims("u1", "stamp", Some("admin"), &[])),
            Err(NotAdmin)
        );
        assert_eq!(
            Admin::authorize(&claims("cron", "cron", Some("administrator"), &[])),
            Err(NotAdmin)
        );
        assert_eq!(
            Admin::authorize(&claims("u1", "stamp", None, &["ops"])),
            Err(NotAdmin)
        );
    }

    #[test]
    fn actors_print_as_the_audit_log_names_them() {
        assert_eq!(Actor::Cli.to_string(), "cli");
        assert_eq!(Actor::User { id: "u1".into() }.to_string(), "user:u1");
        assert_eq!(
            Actor::Client { id: "cron".into() }.to_string(),
            "client:cron"
        );
    }

    #[test]
    fn a_user_stays_admin_only_while_enabled_and_holding_the_role() {
        assert!(user_still_admin(Some(&user(&["ops", "admin"], false))));
        assert!(!user_still_admin(Some(&user(&["admin"], true))), "disabled");
        assert!(
            !user_still_admin(Some(&user(&["ops"], false))),
            "role taken away"
        );
        assert!(!user_still_admin(None), "deleted");
    }

    #[test]
    fn a_client_stays_admin_only_while_enabled_and_holding_the_scope() {
        assert!(client_still_admin(Some(&client(&["admin"], false))));
        assert!(
            !client_still_admin(Some(&client(&["admin"], true))),
            "disabled"
        );
        assert!(
            !client_still_admin(Some(&client(&["read"], false))),
            "scope taken away"
        );
        assert!(!client_still_admin(None), "deleted");
    }
}
