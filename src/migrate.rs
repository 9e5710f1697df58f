//! `stamp migrate`: moves an embedded deployment (SQLite store and file key store) to the
//! scale-out one (PostgreSQL for both), in one PostgreSQL transaction: users, clients,
//! sessions (refresh-token families and tokens, the access-token denylist), the audit log and
//! the signing keys, re-encrypted under the key-encryption key. A target that holds anything is
//! refused, so a second run cannot mix two deployments.
//!
//! Tables are copied generically: every table both schemas have, in foreign-key order for the
//! known ones, each column converted from SQLite's storage (integers for booleans, JSON text for
//! lists) to the PostgreSQL column's type. A table added later by a migration on both sides is
//! moved without a change here, as long as its columns use these types.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::{PgConnection, Row, SqlitePool};

use crate::keys::{FileKeyStore, Kek, KeyStore, KeyStoreError, PgKeyStore};
use crate::store::{PgStore, PoolSettings, SqliteStore, StoreError};

/// Tables in an order that satisfies their foreign keys; any other table both sides have
/// follows, by name.
const ORDER: &[&str] = &[
    "users",
    "clients",
    "refresh_families",
    "refresh_tokens",
    "access_denylist",
    "audit_log",
];

/// Tables that are bookkeeping, never moved.
const SKIPPED: &[&str] = &["_sqlx_migrations", "key_manifest", "signing_keys"];

/// Why a migration failed; nothing was written to the target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// `--from` is not SQLite or `--to` is not PostgreSQL.
    #[error("{0}")]
    Usage(&'static str),
    /// Opening either database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the file key store or writing the database key store failed.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// The target already holds data.
    #[error(
        "the target database is not empty (table {table} holds {rows} row(s)); stamp migrate \
         only fills an empty database"
    )]
    NotEmpty { table: String, rows: i64 },
    /// A statement failed on the named table.
    #[error("moving table {table} failed: {source}")]
    Copy {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// A value does not convert to the target column's type.
    #[error("table {table}, column {column}: {reason}")]
    Convert {
        table: String,
        column: String,
        reason: String,
    },
}

/// What was moved: rows per table and the number of private keys.
#[derive(Debug, Default)]
pub struct Moved {
    pub rows: BTreeMap<String, u64>,
    pub keys: usize,
}

/// Moves the SQLite store at `from` and the file key store in `keys_dir` into the empty
/// PostgreSQL database at `to`, encrypting the private keys under `kek`.
pub async fn sqlite_to_postgres(
    from: &str,
    to: &str,
    keys_dir: &Path,
    kek: &Kek,
    pool: &PoolSettings,
) -> Result<Moved, MigrateError> {
    if !from.starts_with("sqlite:") {
        return Err(MigrateError::Usage("--from must be a sqlite:// URL"));
    }
    if !crate::store::is_postgres(to) {
        return Err(MigrateError::Usage("--to must be a postgres:// URL"));
    }
    let path = from
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if !Path::new(path).is_file() {
        return Err(MigrateError::Usage(
            "--from names no SQLite file (nothing to move)",
        ));
    }
    let source = SqliteStore::open_with(from, pool).await?;
    let target = PgStore::open_with(to, pool).await?;
    PgKeyStore::migrate(target.pool()).await?;
    let key_store = PgKeyStore::new(target.pool().clone(), kek.clone());
    let copy = |table: &str| {
        let table = table.to_string();
        move |source| MigrateError::Copy { table, source }
    };
    let mut tx = target.pool().begin().await.map_err(copy("(begin)"))?;
    let tables = tables(source.pool(), &mut tx).await?;
    for table in &tables {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .map_err(copy(table))?;
        if rows != 0 {
            return Err(MigrateError::NotEmpty {
                table: table.clone(),
                rows,
            });
        }
    }
    let mut moved = Moved::default();
    for table in &tables {
        let rows = copy_table(source.pool(), &mut tx, table).await?;
        moved.rows.insert(table.clone(), rows);
    }
    let file_keys = FileKeyStore::open(keys_dir)?;
    if let Some((manifest, stored)) = file_keys.load().await? {
        let pems: Vec<_> = stored
            .into_iter()
            .map(|key| (key.meta.kid, key.pem))
            .collect();
        moved.keys = pems.len();
        key_store
            .import(&mut tx, &manifest, &pems)
            .await
            .map_err(|e| match e {
                KeyStoreError::Stale { .. } => MigrateError::NotEmpty {
                    table: "key_manifest".into(),
                    rows: 1,
                },
                other => other.into(),
            })?;
    }
    tx.commit().await.map_err(copy("(commit)"))?;
    Ok(moved)
}

/// The tables both databases have, in [`ORDER`] first.
async fn tables(
    source: &SqlitePool,
    target: &mut PgConnection,
) -> Result<Vec<String>, MigrateError> {
    let err = |source| MigrateError::Copy {
        table: "(catalog)".into(),
        source,
    };
    let from: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(source)
    .await
    .map_err(err)?;
    let to: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut *target)
    .await
    .map_err(err)?;
    let both = |name: &String| to.contains(name) && !SKIPPED.contains(&name.as_str());
    let mut tables: Vec<String> = ORDER
        .iter()
        .map(|t| t.to_string())
        .filter(|t| from.contains(t) && both(t))
        .collect();
    let mut rest: Vec<String> = from
        .iter()
        .filter(|t| both(t) && !ORDER.contains(&t.as_str()))
        .cloned()
        .collect();
    rest.sort();
    tables.extend(rest);
    Ok(tables)
}

/// A value on its way from SQLite to PostgreSQL.
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    List(Option<Vec<String>>),
    Json(Option<serde_json::Value>),
}

/// Copies every row of `table` (ordered by rowid, so the audit log keeps its order); identity
/// columns are left to PostgreSQL.
async fn copy_table(
    source: &SqlitePool,
    target: &mut PgConnection,
    table: &str,
) -> Result<u64, MigrateError> {
    let err = |source| MigrateError::Copy {
        table: table.to_string(),
        source,
    };
    let source_columns: Vec<String> =
        sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(source)
            .await
            .map_err(err)?;
    let target_columns: Vec<(String, String)> = sqlx::query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'NO'
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *target)
    .await
    .map_err(err)?
    .into_iter()
    .map(|row| (row.get::<String, _>(0), row.get::<String, _>(1)))
    .filter(|(name, _)| source_columns.contains(name))
    .collect();
    if target_columns.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = target_columns.iter().map(|(n, _)| n.as_str()).collect();
    let select = format!("SELECT {} FROM {table} ORDER BY rowid", names.join(", "));
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    );
    let rows = sqlx::query(&select).fetch_all(source).await.map_err(err)?;
    let mut count = 0;
    for row in &rows {
        let mut query = sqlx::query(&insert);
        for (i, (column, kind)) in target_columns.iter().enumerate() {
            let convert = |reason: String| MigrateError::Convert {
                table: table.to_string(),
                column: column.clone(),
                reason,
            };
            let value = match kind.as_str() {
                "bigint" | "integer" | "smallint" => {
                    Value::Int(row.try_get(i).map_err(|e| convert(e.to_string()))?)
                }
                "boolean" => Value::Bool(
                    row.try_get::<Option<i64>, _>(i)
                        .map_err(|e| convert(e.to_string()))?
                        .map(|v| v != 0),
                ),
                "bytea" => Value::Bytes(row.try_get(i).map_err(|e| convert(e.to_string()))?),
                "ARRAY" => {
                    let text: Option<String> =
                        row.try_get(i).map_err(|e| convert(e.to_string()))?;
                    Value::List(
                        text.map(|t| serde_json::from_str(&t))
                            .transpose()
                            .map_err(|e| convert(format!("not a JSON list: {e}")))?,
                    )
                }
                "jsonb" | "json" => {
                    let text: Option<String> =
                        row.try_get(i).map_err(|e| convert(e.to_string()))?;
                    Value::Json(
                        text.map(|t| serde_json::from_str(&t))
                            .transpose()
                            .map_err(|e| convert(format!("not JSON: {e}")))?,
                    )
                }
                _ => Value::Text(row.try_get(i).map_err(|e| convert(e.to_string()))?),
            };
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
                Value::List(v) => query.bind(v),
                Value::Json(v) => query.bind(v),
            };
        }
        query.execute(&mut *target).await.map_err(err)?;
        count += 1;
    }
    Ok(count)
}
