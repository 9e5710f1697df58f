//! Registered APIs (resource servers, RFC 8707 audiences): register, list, read, change and
//! delete, each change audited in its own transaction (`apis.add`, `apis.update`,
//! `apis.delete`).

use crate::store::{Api, ApiChange, ApiName, ClientId, NewApi, ResourceId, Scope, StoreError};

use super::actor::Actor;
use super::service::{AdminError, AdminService, dedup};
use crate::store::AuditNote;

/// An API to register.
pub struct NewResourceServer {
    /// Its short name, for paths and the CLI.
    pub id: ClientId,
    /// The audience its tokens carry (an absolute URI).
    pub identifier: ResourceId,
    pub name: ApiName,
    /// The scopes it defines (duplicates are dropped).
    pub scopes: Vec<Scope>,
}

/// A change to an API: each `Some` replaces the current value.
#[derive(Default)]
pub struct ApiUpdate {
    pub name: Option<ApiName>,
    /// The scopes it defines (duplicates are dropped).
    pub scopes: Option<Vec<Scope>>,
}

impl AdminService {
    /// Registers an API (`apis.add`). Its identifier may not be `default_audience` (tokens
    /// without `resource` already carry that): [`StoreError::Conflict`], as for a taken id or
    /// identifier.
    pub async fn add_api(
        &self,
        actor: &Actor,
        api: NewResourceServer,
        default_audience: &str,
    ) -> Result<Api, AdminError> {
        if api.identifier.as_str() == default_audience {
            return Err(
                StoreError::Conflict(format!("the default audience {default_audience}")).into(),
            );
        }
        let now = self.clock.now();
        let new = NewApi {
            id: api.id,
            identifier: api.identifier,
            name: api.name,
            scopes: dedup(api.scopes),
        };
        let note = AuditNote::new(actor, "apis.add", now, |api: &Api| {
            let detail = format!(
                "identifier={} scopes={}",
                api.identifier,
                api.scopes.join(" ")
            );
            (Some(api.id.clone()), Some(detail))
        });
        Ok(self.store.create_api(new, now, Some(&note)).await?)
    }

    /// Every API, by id.
    pub async fn list_apis(&self) -> Result<Vec<Api>, AdminError> {
        Ok(self.store.list_apis().await?)
    }

    /// The API with this id ([`StoreError::NotFound`] if none).
    pub async fn api(&self, id: &str) -> Result<Api, AdminError> {
        match self.store.api_by_id(id).await? {
            Some(api) => Ok(api),
            None => Err(StoreError::NotFound(format!("api {id}")).into()),
        }
    }

    /// Changes an API's name or scopes (`apis.update`, naming the fields changed). Tokens
    /// issued before keep their scope until they expire; refreshes are limited to the new
    /// scopes.
    pub async fn update_api(
        &self,
        actor: &Actor,
        id: &str,
        update: ApiUpdate,
    ) -> Result<Api, AdminError> {
        let mut fields = Vec::new();
        if update.name.is_some() {
            fields.push("name");
        }
        if update.scopes.is_some() {
            fields.push("scopes");
        }
        let change = ApiChange {
            name: update.name,
            scopes: update.scopes.map(dedup),
        };
        let now = self.clock.now();
        let detail = format!("fields={}", fields.join(","));
        let note = AuditNote::new(actor, "apis.update", now, |api: &Api| {
            (Some(api.id.clone()), Some(detail.clone()))
        });
        Ok(self.store.update_api(id, &change, now, Some(&note)).await?)
    }

    /// Deletes an API (`apis.delete`): `resource=` naming it is refused from now on, its
    /// refresh families cannot refresh, and introspection calls its access tokens inactive.
    pub async fn delete_api(&self, actor: &Actor, id: &str) -> Result<Api, AdminError> {
        let now = self.clock.now();
        let note = AuditNote::new(actor, "apis.delete", now, |api: &Api| {
            (
                Some(api.id.clone()),
                Some(format!("identifier={}", api.identifier)),
            )
        });
        Ok(self.store.delete_api(id, Some(&note)).await?)
    }
}
