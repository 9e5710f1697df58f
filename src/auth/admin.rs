//! Who may call the admin API: a person whose token carries the `admin` role, or a service
//! client whose client-credentials token carries the `admin` scope.

use crate::tokens::AccessClaims;

/// The role, or scope, that grants the admin API.
pub const ADMIN: &str = "admin";

/// An authenticated administrator, as the audit log names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// `user:<sub>` or `client:<client_id>`.
    pub actor: String,
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
                actor: format!("user:{}", claims.sub),
            });
        }
        let is_client = claims.sub == claims.client_id;
        let has_scope = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|p| p == ADMIN));
        if is_client && has_scope {
            return Ok(Admin {
                actor: format!("client:{}", claims.client_id),
            });
        }
        Err(NotAdmin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, client_id: &str, scope: Option<&str>, roles: &[&str]) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: "a".into(),
            exp: 0,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            client_id: client_id.into(),
            scope: scope.map(String::from),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn admin_role_or_client_admin_scope() {
        assert_eq!(
            Admin::authorize(&claims("u1", "stamp", None, &["admin"])),
            Ok(Admin {
                actor: "user:u1".into()
            })
        );
        assert_eq!(
            Admin::authorize(&claims("cron", "cron", Some("keys admin"), &[])),
            Ok(Admin {
                actor: "client:cron".into()
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
}
