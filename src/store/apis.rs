//! Registered APIs (resource servers): each is an audience of this issuer. A client names one
//! with an RFC 8707 resource indicator (`resource=`), and the token's `aud` is its identifier.
//! One implementation for SQLite and PostgreSQL ([`SqlStore`]), like the rest of the store, so
//! replicas sharing a PostgreSQL database share the registry.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql::{Dialect, SqlStore, commit_audited, sql_impl};
use super::{Audit, ClientId, Scope, StoreError, insert_error};

/// A registered API: the audience its tokens carry and the scopes it defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Api {
    /// A short name for paths and the CLI (`orders`), with the client-id rules.
    pub id: String,
    /// The audience (RFC 8707 resource indicator): an absolute URI without a fragment.
    pub identifier: String,
    /// A display name.
    pub name: String,
    /// The scopes the API defines: a token for it carries only these.
    pub scopes: Vec<String>,
    pub created_at: i64,
}

/// An API to register.
pub struct NewApi {
    pub id: ClientId,
    pub identifier: ResourceId,
    pub name: ApiName,
    pub scopes: Vec<Scope>,
}

/// A change to an API: each `Some` replaces the stored value. The identifier never changes:
/// tokens already carry it.
#[derive(Clone, Debug, Default)]
pub struct ApiChange {
    pub name: Option<ApiName>,
    pub scopes: Option<Vec<Scope>>,
}

/// A checked resource indicator (RFC 8707 §2): an absolute URI without a fragment, at most
/// 2,000 characters. Compared exactly as given (no normalisation), as `aud` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn parse(raw: &str) -> Result<ResourceId, String> {
        if raw.is_empty() || raw.len() > 2000 {
            return Err("a resource indicator has 1 to 2000 characters".into());
        }
        if raw.trim() != raw || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "invalid resource indicator {raw:?}: it must not contain spaces"
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| {
            format!("invalid resource indicator {raw:?}: not an absolute URI ({e})")
        })?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(format!(
                "invalid resource indicator {raw:?}: it must not have a fragment (RFC 8707 §2)"
            ));
        }
        Ok(ResourceId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked display name: 1 to 200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiName(String);

impl ApiName {
    pub fn parse(raw: &str) -> Result<ApiName, String> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err("a name has 1 to 200 characters and no control characters".into());
        }
        Ok(ApiName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The registry of APIs.
#[async_trait]
pub trait ApiStore: Send + Sync + 'static {
    /// Registers an API; [`StoreError::Conflict`] if its id or identifier is taken.
    async fn create_api(
        &self,
        api: NewApi,
        now: i64,
        audit: Audit<'_, '_, Api>,
    ) -> Result<Api, StoreError>;
    /// The API with this id.
    async fn api_by_id(&self, id: &str) -> Result<Option<Api>, StoreError>;
    /// The API with this identifier (audience), compared exactly.
    async fn api_by_identifier(&self, identifier: &str) -> Result<Option<Api>, StoreError>;
    /// Every API, by id in byte order.
    async fn list_apis(&self) -> Result<Vec<Api>, StoreError>;
    /// Changes what is `Some` in `change` ([`StoreError::NotFound`] if no such API).
    async fn update_api(
        &self,
        id: &str,
        change: &ApiChange,
        now: i64,
        audit: Audit<'_, '_, Api>,
    ) -> Result<Api, StoreError>;
    /// Deletes an API ([`StoreError::NotFound`] if none). Its tokens stop being accepted by
    /// the issuer's own checks (introspection), and its refresh families cannot refresh.
    async fn delete_api(&self, id: &str, audit: Audit<'_, '_, Api>) -> Result<Api, StoreError>;
}

const API_COLUMNS: &str = "id, identifier, name, scopes, created_at";

fn scope_strings(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_string()).collect()
}

sql_impl! {
    #[async_trait]
    impl ApiStore for SqlStore {
        async fn create_api(
            &self,
            api: NewApi,
            now: i64,
            audit: Audit<'_, '_, Api>,
        ) -> Result<Api, StoreError> {
            let scopes = scope_strings(&api.scopes);
            let mut tx = DB::begin_write(self.pool()).await?;
            sqlx::query(
                "INSERT INTO apis (id, identifier, name, scopes, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(api.id.as_str())
            .bind(api.identifier.as_str())
            .bind(api.name.as_str())
            .bind(DB::to_list(&scopes, "apis.scopes")?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                insert_error(e, || {
                    format!("api {} or identifier {}", api.id.as_str(), api.identifier.as_str())
                })
            })?;
            let created = Api {
                id: api.id.as_str().to_string(),
                identifier: api.identifier.as_str().to_string(),
                name: api.name.as_str().to_string(),
                scopes,
                created_at: now,
            };
            commit_audited(tx, audit, created).await
        }

        async fn api_by_id(&self, id: &str) -> Result<Option<Api>, StoreError> {
            let sql = format!("SELECT {API_COLUMNS} FROM apis WHERE id = $1");
            self.find(&sql, id, api_from_row::<DB>).await
        }

        async fn api_by_identifier(&self, identifier: &str) -> Result<Option<Api>, StoreError> {
            let sql = format!("SELECT {API_COLUMNS} FROM apis WHERE identifier = $1");
            self.find(&sql, identifier, api_from_row::<DB>).await
        }

        async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
            let order = DB::BYTE_ORDER;
            let sql = format!("SELECT {API_COLUMNS} FROM apis ORDER BY id{order}");
            self.all(&sql, api_from_row::<DB>).await
        }

        async fn update_api(
            &self,
            id: &str,
            change: &ApiChange,
            now: i64,
            audit: Audit<'_, '_, Api>,
        ) -> Result<Api, StoreError> {
            let scopes = change
                .scopes
                .as_deref()
                .map(|scopes| DB::to_list(&scope_strings(scopes), "apis.scopes"))
                .transpose()?;
            let tx = DB::begin_write(self.pool()).await?;
            let sql = format!(
                "UPDATE apis SET name = COALESCE($1, name), scopes = COALESCE($2, scopes),
                     updated_at = $3
                 WHERE id = $4 RETURNING {API_COLUMNS}"
            );
            let query = sqlx::query(&sql)
                .bind(change.name.as_ref().map(ApiName::as_str))
                .bind(scopes)
                .bind(now)
                .bind(id);
            self.change_one(tx, query, api_from_row::<DB>, format!("api {id}"), audit)
                .await
        }

        async fn delete_api(&self, id: &str, audit: Audit<'_, '_, Api>) -> Result<Api, StoreError> {
            let tx = DB::begin_write(self.pool()).await?;
            let sql = format!("DELETE FROM apis WHERE id = $1 RETURNING {API_COLUMNS}");
            let query = sqlx::query(&sql).bind(id);
            self.change_one(tx, query, api_from_row::<DB>, format!("api {id}"), audit)
                .await
        }
    }
}

fn api_from_row<DB>(row: &DB::Row) -> Result<Api, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(Api {
        id: row.try_get("id")?,
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        scopes: DB::from_list(row.try_get("scopes")?, "apis.scopes")?,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_indicators_are_absolute_uris_without_fragments() {
        assert!(ResourceId::parse("https://orders.example.com").is_ok());
        assert!(ResourceId::parse("https://api.example.com/v1?x=1").is_ok());
        assert!(ResourceId::parse("urn:example:orders").is_ok());
        for bad in [
            "",
            "orders",
            "/orders",
            "https://orders.example.com#x",
            " https://orders.example.com",
            "https://orders.example.com/a b",
        ] {
            assert!(ResourceId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ResourceId::parse(&format!("https://a.example/{}", "x".repeat(2000))).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ApiName::parse(" Orders ").unwrap().as_str(), "Orders");
        assert!(ApiName::parse("").is_err());
        assert!(ApiName::parse("a\nb").is_err());
        assert!(ApiName::parse(&"x".repeat(201)).is_err());
    }
}
