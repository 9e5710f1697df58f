//! RFC 8707 resource indicators: which registered API (audience) a token is for, and which
//! scopes a user's token for it may carry. Without `resource` every grant issues for the
//! configured default `audience`, as before APIs could be registered.

use crate::store::{Api, Client, Family, ResourceId};

use super::login::{AuthError, Authenticator};

/// The one `resource` of a request (RFC 8707 §2 allows several; this issuer issues a token for
/// one audience, so more than one is `invalid_target`). Empty values count as absent.
pub fn single_resource(values: Vec<String>) -> Result<Option<String>, AuthError> {
    let mut values = values.into_iter().filter(|v| !v.is_empty());
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::InvalidTarget(
            "only one resource may be requested per token".into(),
        ));
    }
    Ok(first)
}

impl Authenticator {
    /// The registered API `resource` names: `None` without a resource, or when it names the
    /// configured default audience. A malformed indicator (not an absolute URI, or with a
    /// fragment) or one that is not registered is [`AuthError::InvalidTarget`].
    pub async fn target(&self, resource: Option<&str>) -> Result<Option<Api>, AuthError> {
        let Some(resource) = resource else {
            return Ok(None);
        };
        if resource == self.tokens.audience() {
            return Ok(None);
        }
        let resource = ResourceId::parse(resource).map_err(AuthError::InvalidTarget)?;
        match self.store.api_by_identifier(resource.as_str()).await? {
            Some(api) => Ok(Some(api)),
            None => Err(AuthError::InvalidTarget(format!(
                "resource {:?} is not a registered API",
                resource.as_str()
            ))),
        }
    }

    /// The API a refresh-token family is bound to, checked against the `resource` of the
    /// refresh request if it names one: a family never changes its audience, and one whose API
    /// has been deleted cannot refresh (both [`AuthError::InvalidTarget`]).
    pub(super) async fn family_target(
        &self,
        family: &Family,
        requested: Option<&str>,
    ) -> Result<Option<Api>, AuthError> {
        let bound = family.resource.as_deref().unwrap_or(self.tokens.audience());
        if requested.is_some_and(|r| r != bound) {
            return Err(AuthError::InvalidTarget(
                "the refresh token was issued for another resource".into(),
            ));
        }
        let Some(resource) = &family.resource else {
            return Ok(None);
        };
        match self.store.api_by_identifier(resource).await? {
            Some(api) => Ok(Some(api)),
            None => Err(AuthError::InvalidTarget(
                "the refresh token's API is no longer registered".into(),
            )),
        }
    }

    /// Whether a user's token through `client` may carry `scope`. For the default audience: a
    /// configured user scope or one of the user's roles. For a registered API: a scope the API
    /// defines that the user may have (as above) or the client is allowed (its `scopes`).
    pub fn user_scope_allowed(
        &self,
        roles: &[String],
        client: &Client,
        api: Option<&Api>,
        scope: &str,
    ) -> bool {
        match api {
            None => self.user_may_have(roles, scope),
            Some(api) => {
                api.scopes.iter().any(|s| s == scope)
                    && (self.user_may_have(roles, scope)
                        || client.scopes.iter().any(|s| s == scope))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_resource_at_most() {
        assert_eq!(single_resource(vec![]).unwrap(), None);
        assert_eq!(single_resource(vec![String::new()]).unwrap(), None);
        assert_eq!(
            single_resource(vec!["https://a.example".into()]).unwrap(),
            Some("https://a.example".into())
        );
        assert!(matches!(
            single_resource(vec!["https://a.example".into(), "https://b.example".into()]),
            Err(AuthError::InvalidTarget(_))
        ));
    }
}
