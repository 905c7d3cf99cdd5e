//! One `sever serve` per SQLite file. SQLite lets several processes share a
//! file, but two servers would each run a worker over the same queue with
//! nothing to tell them apart but leases, and a SQLite deployment is meant to
//! be one process: the second one is refused with a message that says who
//! holds the file and what to do instead (PostgreSQL for several replicas).
//!
//! The guard is an exclusive advisory lock (`flock`) on `<db>.lock`, held for
//! the server's lifetime and released by the kernel however the process ends,
//! `kill -9` included, so a stale lock file never blocks a restart. The file
//! holds the holder's pid, for the message. One-shot CLI commands (`revoke`,
//! `status`, ...) never take it; `sever keys rotate` does, because a running
//! server keeps the old master key in memory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while a server (or a key rotation) uses the database file.
#[derive(Debug)]
pub struct DbLock {
    // Dropping the file releases the lock.
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the database {} is in use by another process{}", db.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { db: PathBuf, pid: Option<u32> },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file of the SQLite database at `db`: `<db>.lock` beside it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

/// The database path made absolute, through symlinks when it exists, so two
/// spellings of one file share one lock.
pub fn canonical_db_path(db: &Path) -> PathBuf {
    std::fs::canonicalize(db)
        .or_else(|_| std::path::absolute(db))
        .unwrap_or_else(|_| db.to_path_buf())
}

/// Take the exclusive lock of the SQLite database at `db` without waiting,
/// and write our pid into the lock file.
pub fn acquire(db: &Path) -> Result<DbLock, LockError> {
    let db = canonical_db_path(db);
    let path = lock_path(&db);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                db,
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(DbLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sever.db");
        std::fs::write(&db, b"").unwrap();
        let first = acquire(&db).unwrap();
        assert_eq!(first.path, lock_path(&canonical_db_path(&db)));
        assert_eq!(
            std::fs::read_to_string(&first.path).unwrap().trim(),
            std::process::id().to_string()
        );
        // Another spelling of the same file meets the same lock.
        let other_spelling = dir.path().join(".").join("sever.db");
        match acquire(&other_spelling) {
            Err(LockError::Held { db: held, pid }) => {
                assert_eq!(held, canonical_db_path(&db));
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        acquire(&db).unwrap();
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(
            lock_path(Path::new("/var/lib/sever/sever.db")),
            PathBuf::from("/var/lib/sever/sever.db.lock")
        );
    }
}
