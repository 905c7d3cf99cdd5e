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

use sever_core::admin::AuditEvent;
use sever_core::{NewRequest, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

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
    /// Where new requests queue to be written together (see [`PgStore::insert_batch`]);
    /// `None` in the batcher's own copy, which writes them.
    inserts: Option<mpsc::UnboundedSender<QueuedInsert>>,
}

/// A new request waiting for the insert batcher.
struct QueuedInsert {
    req: NewRequest,
    audit: AuditEvent,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// At most this many new requests share a transaction.
const MAX_INSERT_BATCH: usize = 256;

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
        let writer = Self {
            pool,
            target,
            inserts: None,
        };
        let (inserts, queue) = mpsc::unbounded_channel();
        tokio::spawn(writer.clone().batch_inserts(queue));
        Ok(Self {
            inserts: Some(inserts),
            ..writer
        })
    }

    /// A new request, its results and its audit record. Every insert
    /// appends to the audit chain, whose lock (`LOCK_AUDIT_POSTGRES`) makes
    /// them one at a time, each holding the lock through its commit; so
    /// the inserts waiting when the batcher gets to them are written in
    /// one transaction, one lock and one commit for all of them. A lone
    /// insert is written at once, as before.
    async fn insert_request_now(
        &self,
        req: &NewRequest,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let Some(inserts) = &self.inserts else {
            return self.insert_request_one(req, audit).await;
        };
        let (reply, answer) = oneshot::channel();
        let queued = QueuedInsert {
            req: req.clone(),
            audit: audit.clone(),
            reply,
        };
        if inserts.send(queued).is_err() {
            // The runtime that opened the store is gone, and its batcher with it.
            return self.insert_request_one(req, audit).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "{}: the insert batcher stopped",
                self.target
            )))
        })
    }

    async fn batch_inserts(self, mut queue: mpsc::UnboundedReceiver<QueuedInsert>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_INSERT_BATCH {
                match queue.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if batch.len() > 1 && self.insert_batch(&batch).await.is_ok() {
                for queued in batch {
                    let _ = queued.reply.send(Ok(()));
                }
                continue;
            }
            // One insert, or a batch that failed (a duplicate id, say): each
            // alone, so every caller gets its own answer and nobody else's.
            for queued in batch {
                let done = self.insert_request_one(&queued.req, &queued.audit).await;
                let _ = queued.reply.send(done);
            }
        }
    }

    /// Write `batch` in one transaction: one multi-row insert each of the
    /// requests, their results and their audit records, chained in order.
    async fn insert_batch(&self, batch: &[QueuedInsert]) -> Result<(), StoreError> {
        use crate::sql::admin::{chained, INSERT_AUDITS, SELECT_AUDIT_HEAD};
        use crate::sql::codec::{DbUuid, JsonText, Ts};
        use crate::sql::{int, INSERT_REQUESTS, INSERT_RESULTS};
        use sever_core::admin::GENESIS_HASH;
        let err = |e| map_error(&self.target, e);
        let mut tx = self.begin_write().await?;
        let mut requests = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT_REQUESTS);
        requests.push_values(batch, |mut b, q| {
            b.push_bind(DbUuid(q.req.id.0))
                .push_bind(DbUuid(q.req.tenant_id.0))
                .push_bind(q.req.username.as_str())
                .push_bind(q.req.reason.as_str())
                .push_bind(q.req.channel.as_str())
                .push_bind(q.req.requested_by.as_str())
                .push_bind(q.req.status.as_str())
                .push_bind(Ts(q.req.created_at));
        });
        requests.build().execute(&mut *tx).await.map_err(err)?;
        let results: Vec<_> = batch
            .iter()
            .flat_map(|q| {
                q.req
                    .targets
                    .iter()
                    .enumerate()
                    .map(move |(position, target)| (q.req.id, position, target))
            })
            .collect();
        if !results.is_empty() {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT_RESULTS);
            qb.push_values(results, |mut b, (id, position, (instance, provider))| {
                b.push_bind(DbUuid(id.0))
                    .push_bind(instance.as_str())
                    .push_bind(provider.as_str())
                    .push_bind(int(position));
            });
            qb.build().execute(&mut *tx).await.map_err(err)?;
        }
        sqlx::query(LOCK_AUDIT_POSTGRES)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let head: Option<(i64, String)> = sqlx::query_as(SELECT_AUDIT_HEAD)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        let (mut seq, mut prev_hash) = head.unwrap_or((0, GENESIS_HASH.to_string()));
        let mut records = Vec::with_capacity(batch.len());
        for q in batch {
            seq += 1;
            let (event, hash, detail) = chained(&prev_hash, seq, &q.audit)?;
            records.push((
                seq,
                event,
                detail,
                std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            ));
        }
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT_AUDITS);
        qb.push_values(records, |mut b, (seq, event, detail, prev, hash)| {
            b.push_bind(seq)
                .push_bind(DbUuid(event.tenant_id.0))
                .push_bind(Ts(event.at))
                .push_bind(event.actor)
                .push_bind(event.role)
                .push_bind(event.channel.as_str())
                .push_bind(event.source)
                .push_bind(event.client_ip)
                .push_bind(event.action)
                .push_bind(event.target)
                .push_bind(event.reason)
                .push_bind(event.decision)
                .push_bind(event.result)
                .push_bind(event.request_id.map(|id| DbUuid(id.0)))
                .push_bind(JsonText(detail))
                .push_bind(prev)
                .push_bind(hash);
        });
        qb.build().execute(&mut *tx).await.map_err(err)?;
        tx.commit().await.map_err(err)
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
            inserts: None,
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
