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
use std::sync::Arc;
use std::time::Duration;

use sever_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::sql::{impl_sql_store, map_error, map_migrate_error, CLAIM_NEXT_SQLITE};

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

/// The runtime of the thread that runs request-path writes
/// ([`SqliteStore::exclusive`]): one per process, started on first use;
/// `None` if the thread could not be started (the writes then run where
/// they are called).
fn writer_thread() -> Option<&'static tokio::runtime::Handle> {
    static WRITER: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    WRITER
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name("sever-sqlite-writer".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Copy the WAL into the database file every second without waiting for
/// anyone (`PASSIVE`), until the store is dropped or closed. SQLite's
/// automatic checkpoint would do it inside a writer's commit instead.
async fn checkpoint_beside_writes(pool: SqlitePool, open: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if open.upgrade().is_none() || pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "WAL checkpoint failed; retrying in a second");
        }
    }
}

/// A [`sever_core::Store`] in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads, and writes other than the request path's and `begin_write`'s.
    pub(crate) pool: SqlitePool,
    /// One connection that makes the writes of [`Self::begin_write`] and
    /// of the request path: SQLite takes one writer at a time, and waiting
    /// in line here is a queue, where two connections racing for the write
    /// lock would sleep in SQLite's busy handler (1, 2, 5, 10 … ms).
    writer: SqlitePool,
    /// While a clone of the store lives, its WAL is checkpointed.
    _open: Arc<()>,
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
        // The writer never checkpoints the WAL on commit (a checkpoint
        // there would stall every write behind it while the database file
        // is synced); a reader connection does it beside the writes.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.pragma("wal_autocheckpoint", "0"))
            .await
            .map_err(|e| map_error(&target, e))?;
        let open = Arc::new(());
        if let Some(rt) = writer_thread() {
            rt.spawn(checkpoint_beside_writes(
                pool.clone(),
                Arc::downgrade(&open),
            ));
        }
        Ok(Self {
            pool,
            writer,
            target,
            path,
            _open: open,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close every connection (checkpointing the WAL).
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

    /// Run a request-path write (a whole transaction) on the writer thread.
    ///
    /// Each statement is a round trip to SQLite's own thread. Polled by
    /// the server's busy runtime, a transaction would also wait for its
    /// task's next turn after every statement, holding the only write
    /// lock meanwhile; under load those waits, not SQLite, would decide
    /// how many revocations a second the server records. The writer
    /// thread runs nothing but these writes, so it picks each one up
    /// again at once. The write runs to its end even if the caller stops
    /// waiting.
    async fn exclusive<T: Send + 'static>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(writer) = writer_thread() else {
            return write.await;
        };
        match writer.spawn(write).await {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Other(format!("{}: {e}", self.target))),
        }
    }

    /// Where the request path's writes go: the one writer connection.
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The migrations this version applies, for the readiness check.
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    const CLAIM_NEXT: &'static str = CLAIM_NEXT_SQLITE;
    /// `begin_write` already holds the only write lock.
    const LOCK_AUDIT: Option<&'static str> = None;
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);

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
