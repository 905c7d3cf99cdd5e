//! The embedded default store: one SQLite file, so a single `sever` binary
//! keeps a durable record with nothing else to run.
//!
//! Durability over speed by default: WAL with `synchronous=FULL` (a
//! committed outcome survives power loss; [`SqliteSync::Normal`] trades that
//! for throughput, keeping commits safe from a killed process), foreign keys on, and a 5 s busy timeout so several
//! processes sharing the file wait for each other instead of failing. The
//! file is created owner-only (0600), since it holds sealed secrets and the
//! record of who was revoked.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sever_core::admin::AuditEvent;
use sever_core::{ConnectorResult, Lease, NewRequest, RequestId, RequestStatus, StoreError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::sql::{impl_sql_store, map_error, map_migrate_error};
use crate::sqlite_writer::Writer;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How hard SQLite works to keep a commit: `Full` (the default) syncs the
/// log to disk at every commit, so a committed outcome survives a power
/// loss; `Normal` syncs only at checkpoints (in WAL mode): a commit still
/// survives the process being killed, but the last ones may be lost if the
/// machine loses power or the kernel crashes. `Normal` is many times
/// faster on disks where a sync costs milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

impl SqliteSync {
    /// `full` or `normal`.
    pub fn parse(s: &str) -> Option<SqliteSync> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Some(SqliteSync::Full),
            "normal" => Some(SqliteSync::Normal),
            _ => None,
        }
    }
}

/// Copy the WAL into the database file every second without waiting for
/// anyone (`PASSIVE`), on a thread and connection of its own, until every
/// clone of the store is gone (`open` disconnects). The writer never
/// checkpoints inside a commit, where it would stall every write behind it
/// while the database file is synced.
fn checkpoint_beside_writes(path: &Path, target: &str) -> Result<mpsc::Sender<()>, StoreError> {
    let conn = rusqlite::Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("{target}: {e}")))?;
    let (open, closed) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sever-sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                closed.recv_timeout(Duration::from_secs(1))
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "WAL checkpoint failed; retrying in a second");
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("{target}: cannot start checkpoints: {e}")))?;
    Ok(open)
}

/// A [`sever_core::Store`] in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads, and writes other than the request path's and `begin_write`'s.
    pub(crate) pool: SqlitePool,
    /// One connection that makes the writes of [`Self::begin_write`]
    /// (administration): waiting in line for it is a queue, where
    /// connections racing for the write lock would sleep in SQLite's busy
    /// handler (1, 2, 5, 10 … ms).
    writer: SqlitePool,
    /// The request path's writes (`crate::sqlite_writer`).
    writes: Writer,
    /// While a clone of the store lives, its WAL is checkpointed.
    _checkpoints: mpsc::Sender<()>,
    /// Names the database in errors: "SQLite database /path/to/file".
    target: String,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating it and its parent directory if missing) the database
    /// at `location`: a path, or a `sqlite://path` / `sqlite:path` URL. The
    /// schema is migrated to the current version.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_with(location, SqliteSync::Full).await
    }

    /// [`SqliteStore::open`] with the given commit durability.
    pub async fn open_with(location: &str, sync: SqliteSync) -> Result<Self, StoreError> {
        let path = PathBuf::from(strip_scheme(location));
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return Err(StoreError::Other(format!(
                "'{location}' is not a database file path (in-memory databases are not durable)"
            )));
        }
        let target = format!("SQLite database {}", path.display());
        create_private_file(&path).map_err(|e| {
            StoreError::Unavailable(format!("{target}: cannot create the file: {e}"))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| map_error(&target, e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| map_migrate_error(&target, e))?;
        tracing::debug!(path = %path.display(), "opened the SQLite store");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| map_error(&target, e))?;
        let synchronous = match sync {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        let writes = Writer::start(&path, &target, synchronous)?;
        let checkpoints = checkpoint_beside_writes(&path, &target)?;
        Ok(Self {
            pool,
            writer,
            writes,
            target,
            path,
            _checkpoints: checkpoints,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close the pooled connections (checkpointing the WAL); the writer's
    /// and the checkpointer's close with the last clone of the store.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// A deferred transaction: SQLite gives its reads one snapshot.
    async fn begin_read(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin()
            .await
            .map_err(|e| map_error(&self.target, e))
    }

    /// `BEGIN IMMEDIATE`: the write lock from the first statement on (waiting
    /// up to the busy timeout for it), so a transaction that reads before it
    /// writes, as appending to the audit chain does, never reads a head
    /// another writer is about to move, nor fails to upgrade its snapshot.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| map_error(&self.target, e))
    }

    /// The migrations this version applies, for the readiness check.
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// `begin_write` already holds the only write lock.
    const LOCK_AUDIT: Option<&'static str> = None;
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);

/// The request path's writes, made by the writer thread.
impl SqliteStore {
    async fn insert_request_now(
        &self,
        req: &NewRequest,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (req, audit) = (req.clone(), audit.clone());
        self.writes
            .call(move |w| w.insert_request(&req, &audit))
            .await
    }

    async fn claim_request_now(
        &self,
        id: RequestId,
        lease: &Lease,
        now: DateTime<Utc>,
        steal_from: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (lease, steal_from) = (lease.clone(), steal_from.map(str::to_owned));
        self.writes
            .call(move |w| w.claim_request(id, &lease, now, steal_from.as_deref()))
            .await
    }

    async fn claim_next_now(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestId>, StoreError> {
        let lease = lease.clone();
        self.writes.call(move |w| w.claim_next(&lease, now)).await
    }

    async fn renew_lease_now(&self, id: RequestId, lease: &Lease) -> Result<bool, StoreError> {
        let lease = lease.clone();
        self.writes.call(move |w| w.renew_lease(id, &lease)).await
    }

    async fn release_lease_now(&self, id: RequestId, owner: &str) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        self.writes.call(move |w| w.release_lease(id, &owner)).await
    }

    async fn record_results_now(
        &self,
        id: RequestId,
        results: &[ConnectorResult],
    ) -> Result<Vec<bool>, StoreError> {
        let results = results.to_vec();
        self.writes
            .call(move |w| w.record_results(id, &results))
            .await
    }

    async fn finish_request_now(
        &self,
        id: RequestId,
        status: RequestStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.writes
            .call(move |w| w.finish_request(id, status, at))
            .await
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SqliteStore").field(&self.target).finish()
    }
}

/// `sqlite://path`, `sqlite:path` or a plain path, to the path.
pub(crate) fn strip_scheme(location: &str) -> &str {
    location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location)
}

/// Create the file (and missing parent directories, owner-only) so SQLite
/// opens a file that already has the right mode; its `-wal` and `-shm`
/// files copy that mode. An existing file is left as it is.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    match file.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_accept_urls_and_plain_paths() {
        assert_eq!(
            strip_scheme("sqlite:///var/lib/sever.db"),
            "/var/lib/sever.db"
        );
        assert_eq!(strip_scheme("sqlite://data/sever.db"), "data/sever.db");
        assert_eq!(strip_scheme("sqlite:sever.db"), "sever.db");
        assert_eq!(strip_scheme("/tmp/x.db"), "/tmp/x.db");
    }

    #[tokio::test]
    async fn opening_creates_a_private_file_in_a_new_directory_with_durable_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/sever.db");
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::open(&url).await.unwrap();
        assert_eq!(store.path(), path);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut conn = store.pool.acquire().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        for (pragma, expected) in [
            ("synchronous", 2),
            ("foreign_keys", 1),
            ("busy_timeout", 5000),
        ] {
            let value: i64 = sqlx::query_scalar(&format!("PRAGMA {pragma}"))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(value, expected, "PRAGMA {pragma}");
        }
        drop(conn);
        store.close().await;
        // Reopening an existing database works and keeps the data's schema.
        SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    }

    /// Writes queued behind a busy writer share one transaction; when one
    /// of them fails, the others still land and the failing one alone
    /// changes nothing.
    #[tokio::test]
    async fn a_failing_write_in_a_shared_transaction_costs_the_others_nothing() {
        use sever_core::{Channel, ConnectorKey, InstanceName, Reason, Username};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        let tenant = sever_core::TenantId(uuid::Uuid::new_v4());
        let new = |user: &str| NewRequest {
            id: RequestId::new(),
            tenant_id: tenant,
            username: Username::parse(user).unwrap(),
            reason: Reason::parse("test").unwrap(),
            channel: Channel::Api,
            requested_by: "key:test".into(),
            status: RequestStatus::Queued,
            targets: vec![(InstanceName::parse("okta").unwrap(), ConnectorKey::Okta)],
            created_at: Utc::now(),
        };
        let audit = |r: &NewRequest| AuditEvent {
            tenant_id: tenant,
            at: r.created_at,
            actor: r.requested_by.clone(),
            role: None,
            channel: r.channel,
            source: None,
            client_ip: None,
            action: "revoke_sessions".into(),
            target: Some(r.username.to_string()),
            reason: None,
            decision: "allowed".into(),
            result: Some("queued".into()),
            request_id: Some(r.id),
            detail: serde_json::json!({}),
        };
        let (a, c) = (new("a@example.com"), new("c@example.com"));
        let mut dup = new("mallory@example.com");
        dup.id = a.id;
        // Keep the writer busy so the three inserts queue up behind it.
        let busy = store.writes.call(|_| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        let (aa, adup, ac) = (audit(&a), audit(&dup), audit(&c));
        let (busy, ra, rdup, rc) = tokio::join!(
            busy,
            store.insert_request_now(&a, &aa),
            store.insert_request_now(&dup, &adup),
            store.insert_request_now(&c, &ac),
        );
        busy.unwrap();
        ra.unwrap();
        assert!(matches!(rdup, Err(StoreError::Conflict(_))), "{rdup:?}");
        rc.unwrap();
        use sever_core::Store;
        assert_eq!(
            store.get_request(a.id).await.unwrap().unwrap().username,
            a.username
        );
        assert!(store.get_request(c.id).await.unwrap().is_some());
        let chain = crate::verify_audit(&store).await.unwrap();
        assert_eq!(chain.unwrap(), 2, "the duplicate left no audit record");
    }

    #[tokio::test]
    async fn an_unusable_path_is_unavailable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let path = blocker.join("sever.db");
        let err = SqliteStore::open(path.to_str().unwrap()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }
}
