//! Sever's storage adapters: the durable record of every revocation and of
//! who may do what (tenants, people, keys, settings, connectors, the audit
//! chain), in SQLite (the embedded default) or PostgreSQL (several
//! replicas), behind the core's [`Store`](sever_core::Store) and
//! [`AdminStore`](sever_core::admin::AdminStore) ports; the
//! [`XChaChaSealer`] that encrypts secrets at rest; and the
//! [`SealedTokenCache`] that keeps provider tokens sealed in the store.
//!
//! Both databases are held to one behaviour by the `conformance` suite
//! (compiled for tests, or with the `conformance` feature), and share their
//! SQL and row mapping (`sql`): only connection setup, column encodings
//! and two locking statements (claiming the next request, appending to the
//! audit chain) differ.

mod audit;
mod dsn;
pub mod postgres;
pub mod sealer;
mod sql;
pub mod sqlite;
mod sqlite_writer;
pub mod token_cache;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::sync::Arc;

use sever_core::{Database, StoreError};

pub use audit::{read_audit_chain, verify_audit};
pub use dsn::redact;
pub use postgres::PgStore;
pub use sealer::{KeyError, XChaChaSealer};
pub use sqlite::{SqliteStore, SqliteSync};
pub use token_cache::SealedTokenCache;

/// Open the database at `location` and bring its schema up to date:
/// `postgres://…` or `postgresql://…` for PostgreSQL; `sqlite://PATH`,
/// `sqlite:PATH` or a plain file path for SQLite (created if missing).
/// Errors name the database but never contain a password from the URL.
/// Code that needs only requests takes the result as an `Arc<dyn Store>`.
pub async fn open(location: &str) -> Result<Arc<dyn Database>, StoreError> {
    match dsn::backend(location).map_err(StoreError::Other)? {
        dsn::Backend::Postgres => Ok(Arc::new(PgStore::connect(location).await?)),
        dsn::Backend::Sqlite => Ok(Arc::new(SqliteStore::open(location).await?)),
    }
}

/// [`open`], with PostgreSQL's tables in `schema` (created if missing)
/// instead of the connection's default `search_path`: one database can hold
/// several independent Sever deployments. A schema is refused for SQLite,
/// where it means nothing.
pub async fn open_in_schema(
    location: &str,
    schema: Option<&str>,
) -> Result<Arc<dyn Database>, StoreError> {
    match (dsn::backend(location).map_err(StoreError::Other)?, schema) {
        (_, None) => open(location).await,
        (dsn::Backend::Postgres, Some(schema)) => Ok(Arc::new(
            PgStore::connect_in_schema(location, schema).await?,
        )),
        (dsn::Backend::Sqlite, Some(_)) => Err(StoreError::Other(
            "a database schema applies to PostgreSQL only, not to SQLite".into(),
        )),
    }
}

/// [`open_in_schema`], with SQLite's commit durability chosen (PostgreSQL
/// ignores it: its durability is the server's `synchronous_commit`).
pub async fn open_with(
    location: &str,
    schema: Option<&str>,
    sqlite_sync: SqliteSync,
) -> Result<Arc<dyn Database>, StoreError> {
    match dsn::backend(location).map_err(StoreError::Other)? {
        dsn::Backend::Sqlite if schema.is_none() => Ok(Arc::new(
            SqliteStore::open_with(location, sqlite_sync).await?,
        )),
        _ => open_in_schema(location, schema).await,
    }
}

/// True when `location` names a SQLite database (a path or `sqlite:` URL).
pub fn is_sqlite(location: &str) -> bool {
    matches!(dsn::backend(location), Ok(dsn::Backend::Sqlite))
}

/// The file a SQLite `location` names (`sqlite://PATH`, `sqlite:PATH` or a
/// path); `None` for PostgreSQL.
pub fn sqlite_path(location: &str) -> Option<std::path::PathBuf> {
    is_sqlite(location).then(|| std::path::PathBuf::from(sqlite::strip_scheme(location)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_dispatches_on_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.db");
        open(&format!("sqlite://{}", path.display())).await.unwrap();
        assert!(path.exists());
        let plain = dir.path().join("plain.db");
        open(plain.to_str().unwrap()).await.unwrap();
        assert!(plain.exists());

        let err = open("mysql://root:pw@localhost/db").await.err().unwrap();
        assert!(err.to_string().contains("'mysql'"), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");

        let err = open("postgresql://u:topsecret@127.0.0.1:1/x")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
