//! The PostgreSQL store, for deployments that run several Sever replicas
//! against one database: leases and the conditional writes in
//! [`crate::sql`] keep replicas from running or recording the same work
//! twice.
//!
//! The tables live in the connection's `search_path`, so one database can
//! hold several independent Sever schemas; tests rely on that to run in
//! parallel, each in a schema of its own ([`PgStore::connect_in_schema`]).

use std::str::FromStr;
use std::time::Duration;

use sever_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::dsn::redact;
use crate::sql::admin::LOCK_AUDIT_POSTGRES;
use crate::sql::{
    impl_sql_store, impl_sqlx_request_writes, map_error, map_migrate_error, CLAIM_NEXT_POSTGRES,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`sever_core::Store`] in PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Names the database in errors: "PostgreSQL at host:port/db", never the password.
    target: String,
}

impl PgStore {
    /// Connect to `url` (`postgres://` or `postgresql://`) and migrate the
    /// schema in its default `search_path`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, None).await
    }

    /// Connect with every pooled connection's `search_path` set to `schema`,
    /// creating the schema if missing, and migrate it. `schema` must be a
    /// plain lowercase identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::Other(format!(
                "'{schema}' is not a valid schema name (use a-z, 0-9 and '_')"
            )));
        }
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            // The parser's message never echoes the URL, but be certain.
            StoreError::Other(format!(
                "invalid PostgreSQL URL '{}': {}",
                redact(url),
                scrub(&e.to_string(), url)
            ))
        })?;
        let target = describe(&options);
        let err = |e| scrub_error(map_error(&target, e), url);
        // One direct connection first: it fails at once with the real cause,
        // where the pool would retry a refused connection until its timeout.
        let mut conn = options.connect().await.map_err(err)?;
        if let Some(schema) = schema {
            conn.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
                .await
                .map_err(err)?;
        }
        conn.close().await.map_err(err)?;
        let options = match schema {
            Some(schema) => options.options([("search_path", schema)]),
            None => options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| scrub_error(map_migrate_error(&target, e), url))?;
        tracing::debug!(database = %target, "opened the PostgreSQL store");
        Ok(Self { pool, target })
    }

    /// Close every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A repeatable-read transaction, so the reads of one `get_request` see
    /// one snapshot (PostgreSQL's default gives each statement its own).
    async fn begin_read(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
        let err = |e| map_error(&self.target, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(err)?;
        Ok(tx)
    }

    /// A read-committed transaction; writers that must see the latest
    /// committed state lock what they read (see `LOCK_AUDIT`).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
        self.pool
            .begin()
            .await
            .map_err(|e| map_error(&self.target, e))
    }

    /// Where the request path's writes go: the pool (PostgreSQL locks rows,
    /// not the database).
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// The migrations this version applies, for the readiness check.
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    const CLAIM_NEXT: &'static str = CLAIM_NEXT_POSTGRES;
    const LOCK_AUDIT: Option<&'static str> = Some(LOCK_AUDIT_POSTGRES);
}

impl_sql_store!(PgStore, sqlx::Postgres);
impl_sqlx_request_writes!(PgStore, sqlx::Postgres);

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PgStore").field(&self.target).finish()
    }
}

/// "PostgreSQL at host:port/db as user" (or the socket path).
fn describe(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!(
        "PostgreSQL at {place}/{} as {}",
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    )
}

/// The password from `url`, if any, as written there.
fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_string())
}

/// Belt and braces: no driver message should contain the password, but a
/// message that does has it replaced.
fn scrub(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(p) => message.replace(&p, "***"),
        None => message.to_string(),
    }
}

fn scrub_error(err: StoreError, url: &str) -> StoreError {
    match err {
        StoreError::Unavailable(m) => StoreError::Unavailable(scrub(&m, url)),
        StoreError::Conflict(m) => StoreError::Conflict(scrub(&m, url)),
        StoreError::NotFound(m) => StoreError::NotFound(scrub(&m, url)),
        StoreError::Corrupt(m) => StoreError::Corrupt(scrub(&m, url)),
        StoreError::Other(m) => StoreError::Other(scrub(&m, url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_names_the_host_and_hides_the_password() {
        let url = "postgres://sever:hunter2@127.0.0.1:1/sever";
        let err = PgStore::connect(url).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(msg.contains("127.0.0.1:1/sever"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[tokio::test]
    async fn debug_output_names_the_database_without_the_password() {
        let options =
            PgConnectOptions::from_str("postgres://u:hunter2@db.internal:6543/sever").unwrap();
        let pool = PgPoolOptions::new().connect_lazy_with(options.clone());
        let store = PgStore {
            pool,
            target: describe(&options),
        };
        let shown = format!("{store:?}");
        assert!(shown.contains("db.internal:6543/sever as u"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn schema_names_must_be_plain_identifiers() {
        for bad in ["", "Public", "a-b", "x\"; DROP TABLE y; --", "1abc"] {
            let err = PgStore::connect_in_schema("postgres://h/d", bad)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("schema name"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_password_is_scrubbed_from_any_message() {
        let url = "postgres://u:p%40ss@h/d";
        assert_eq!(scrub("failed for p%40ss", url), "failed for ***");
        assert_eq!(scrub("nothing here", "postgres://u@h/d"), "nothing here");
    }
}
