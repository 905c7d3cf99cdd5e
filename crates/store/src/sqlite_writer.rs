//! The SQLite store's request-path writer: one connection on a thread of
//! its own that makes every write a revocation needs (insert, claim, lease,
//! outcomes, finish), committing whatever has queued up together.
//!
//! SQLite takes one writer at a time, so these writes queue anyway; the
//! question is what each costs. Through sqlx every statement is a round
//! trip to the connection's own thread (two thread hand-offs), and every
//! write its own transaction, whose commit appends each page it touched to
//! the WAL. Here a write is a closure run on the writer's thread, its
//! statements plain calls to SQLite with cached prepared statements, and
//! the writes waiting when the writer gets to them share one `BEGIN
//! IMMEDIATE … COMMIT` (a group commit): under load, dozens of requests'
//! rows land in the same pages and one commit. Nothing waits to fill a
//! batch: a lone write is committed at once.
//!
//! A write that fails rolls its whole batch back; the batch is then run
//! again one write per transaction, so each caller gets exactly the
//! answer (and the effects) it would have had alone.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use sever_core::admin::{AuditEvent, GENESIS_HASH};
use sever_core::{ConnectorResult, Lease, NewRequest, RequestId, RequestStatus, StoreError};
use tokio::sync::oneshot;

use crate::sql::admin::{chained, INSERT_AUDIT, SELECT_AUDIT_HEAD};
use crate::sql::codec::Ts;
use crate::sql::*;

/// At most this many writes share a transaction.
const MAX_BATCH: usize = 256;

/// One queued write: run it (again, after a failed batch), then answer.
trait Job: Send {
    fn run(&mut self, w: &Tx<'_>) -> Result<(), StoreError>;
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Task<T, F> {
    write: F,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnMut(&Tx<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, w: &Tx<'_>) -> Result<(), StoreError> {
        self.out = Some((self.write)(w)?);
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let Task { out, reply, .. } = *self;
        let answer = committed.and_then(|()| {
            out.ok_or_else(|| StoreError::Other("a write was committed without running".into()))
        });
        // The caller may have stopped waiting; the write stands.
        let _ = reply.send(answer);
    }
}

/// The handle the store's clones share; the thread ends when the last
/// clone is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    target: String,
}

impl Writer {
    /// Open the writer's connection to the (existing, migrated) database
    /// at `path` and start its thread.
    pub(crate) fn start(path: &Path, target: &str, synchronous: &str) -> Result<Self, StoreError> {
        let unavailable = |e: rusqlite::Error| map(target, e);
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(unavailable)?;
        // The WAL is checkpointed beside the writes (see `SqliteStore`),
        // never inside a commit here, which would stall every write behind it.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;"
        ))
        .map_err(unavailable)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let name = target.to_string();
        std::thread::Builder::new()
            .name("sever-sqlite-writer".into())
            .spawn(move || serve(conn, &name, queue))
            .map_err(|e| {
                StoreError::Unavailable(format!("{target}: cannot start the writer: {e}"))
            })?;
        Ok(Self {
            jobs,
            target: target.to_string(),
        })
    }

    /// Run `write` in the writer's next transaction and wait for its commit.
    /// It may run twice (see the module's notes): it must only write
    /// through the [`Tx`] it is given.
    pub(crate) async fn call<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let stopped =
            || StoreError::Unavailable(format!("{}: the writer has stopped", self.target));
        self.jobs
            .send(Box::new(Task {
                write,
                out: None,
                reply,
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn serve(conn: Connection, target: &str, queue: mpsc::Receiver<Box<dyn Job>>) {
    let w = Tx {
        conn: &conn,
        target,
    };
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            let together = w.transaction(|| batch.iter_mut().try_for_each(|job| job.run(&w)));
            if together.is_ok() {
                for job in batch {
                    job.answer(Ok(()));
                }
                continue;
            }
        }
        for mut job in batch {
            let alone = w.transaction(|| job.run(&w));
            job.answer(alone);
        }
    }
}

fn map(target: &str, e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let message = format!("{target}: {}", message.as_deref().unwrap_or(&f.to_string()));
            // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE.
            if matches!(f.extended_code, 1555 | 2067) {
                return StoreError::Conflict(message);
            }
            // BUSY, LOCKED, IOERR, CANTOPEN, READONLY; CORRUPT, NOTADB.
            match f.extended_code & 0xff {
                5 | 6 | 8 | 10 | 14 => StoreError::Unavailable(message),
                11 | 26 => StoreError::Corrupt(message),
                _ => StoreError::Other(message),
            }
        }
        _ => StoreError::Other(format!("{target}: {e}")),
    }
}

/// The shared SQL binds `$1`, `$2` …; SQLite reads `?1`, `?2` … the same.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

/// `n` rows of `width` anonymous parameters: `(?, ?), (?, ?)`.
fn rows(n: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; n].join(", ")
}

/// The writer's connection, inside a write transaction.
pub(crate) struct Tx<'a> {
    conn: &'a Connection,
    target: &'a str,
}

impl Tx<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| map(self.target, e)
    }

    fn transaction(&self, f: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err())?;
        let done = f().and_then(|()| self.conn.execute_batch("COMMIT").map_err(self.err()));
        if done.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map_err(self.err())
    }

    /// A new request, its pending results and its audit record.
    pub(crate) fn insert_request(
        &self,
        req: &NewRequest,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let conflict = |e: StoreError, what: String| match e {
            StoreError::Conflict(_) => StoreError::Conflict(what),
            other => other,
        };
        let id = req.id.0.hyphenated().to_string();
        self.execute(
            &numbered(INSERT_REQUEST),
            rusqlite::params![
                id,
                req.tenant_id.0.hyphenated().to_string(),
                req.username.as_str(),
                req.reason.as_str(),
                req.channel.as_str(),
                req.requested_by.as_str(),
                req.status.as_str(),
                Ts(req.created_at).sqlite_text(),
            ],
        )
        .map_err(|e| conflict(e, format!("request {}", req.id)))?;
        if !req.targets.is_empty() {
            let sql = format!("{INSERT_RESULTS} VALUES {}", rows(req.targets.len(), 4));
            let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(req.targets.len() * 4);
            for (position, (instance, provider)) in req.targets.iter().enumerate() {
                values.push(id.clone().into());
                values.push(instance.as_str().to_string().into());
                values.push(provider.as_str().to_string().into());
                values.push(int(position).into());
            }
            self.execute(&sql, rusqlite::params_from_iter(values))
                .map_err(|e| conflict(e, format!("a connector in request {}", req.id)))?;
        }
        self.append_audit(audit)
    }

    /// Append `event` to the audit chain, after its last record (the write
    /// lock is held, so nobody moves the head meanwhile).
    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let head: Option<(i64, String)> = self
            .conn
            .prepare_cached(SELECT_AUDIT_HEAD)
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(self.err())?;
        let (seq, prev_hash) = match head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS_HASH.to_string()),
        };
        let (event, hash, detail) = chained(&prev_hash, seq, event)?;
        self.execute(
            &numbered(INSERT_AUDIT),
            rusqlite::params![
                seq,
                event.tenant_id.0.hyphenated().to_string(),
                Ts(event.at).sqlite_text(),
                event.actor.as_str(),
                event.role.as_deref(),
                event.channel.as_str(),
                event.source.as_deref(),
                event.client_ip.as_deref(),
                event.action.as_str(),
                event.target.as_deref(),
                event.reason.as_deref(),
                event.decision.as_str(),
                event.result.as_deref(),
                event.request_id.map(|id| id.0.hyphenated().to_string()),
                detail,
                prev_hash,
                hash,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn claim_request(
        &self,
        id: RequestId,
        lease: &Lease,
        now: chrono::DateTime<chrono::Utc>,
        steal_from: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = self.execute(
            &numbered(CLAIM_REQUEST),
            rusqlite::params![
                id.0.hyphenated().to_string(),
                Ts(now).sqlite_text(),
                lease.owner.as_str(),
                Ts(lease.expires_at).sqlite_text(),
                steal_from,
                RequestStatus::Running.as_str(),
                RequestStatus::Queued.as_str(),
            ],
        )?;
        Ok(done == 1)
    }

    pub(crate) fn claim_next(
        &self,
        lease: &Lease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<RequestId>, StoreError> {
        let claimed: Option<String> = self
            .conn
            .prepare_cached(&numbered(CLAIM_NEXT_SQLITE))
            .and_then(|mut s| {
                s.query_row(
                    rusqlite::params![
                        Ts(now).sqlite_text(),
                        lease.owner.as_str(),
                        Ts(lease.expires_at).sqlite_text(),
                        RequestStatus::Running.as_str(),
                        RequestStatus::Queued.as_str(),
                    ],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(self.err())?;
        claimed
            .map(|id| {
                uuid::Uuid::parse_str(&id).map(RequestId).map_err(|e| {
                    StoreError::Corrupt(format!("{}: request id '{id}': {e}", self.target))
                })
            })
            .transpose()
    }

    pub(crate) fn renew_lease(&self, id: RequestId, lease: &Lease) -> Result<bool, StoreError> {
        let done = self.execute(
            &numbered(RENEW_LEASE),
            rusqlite::params![
                id.0.hyphenated().to_string(),
                lease.owner.as_str(),
                Ts(lease.expires_at).sqlite_text(),
            ],
        )?;
        Ok(done == 1)
    }

    pub(crate) fn release_lease(&self, id: RequestId, owner: &str) -> Result<bool, StoreError> {
        let done = self.execute(
            &numbered(RELEASE_LEASE),
            rusqlite::params![
                id.0.hyphenated().to_string(),
                owner,
                RequestStatus::Running.as_str(),
                RequestStatus::Queued.as_str(),
            ],
        )?;
        Ok(done == 1)
    }

    /// Record `results`: one conditional update of all their outcomes, then
    /// the attempts of those written. A result that already had an outcome
    /// is left as it was (false); one the request does not have is an error.
    pub(crate) fn record_results(
        &self,
        id: RequestId,
        results: &[ConnectorResult],
    ) -> Result<Vec<bool>, StoreError> {
        use rusqlite::types::Value;
        let rid = id.0.hyphenated().to_string();
        let mut values: Vec<Value> = Vec::with_capacity(results.len() * 5 + 1);
        for result in results {
            let Some(outcome) = &result.outcome else {
                return Err(StoreError::Other(format!(
                    "cannot record connector '{}' of request {id} without an outcome",
                    result.instance
                )));
            };
            let detail = serde_json::to_string(outcome)
                .map_err(|e| StoreError::Other(format!("an outcome is not JSON: {e}")))?;
            values.push(result.instance.as_str().to_string().into());
            values.push(outcome.label().to_string().into());
            values.push(detail.into());
            values.push(result.subject_id.clone().into());
            values.push(result.finished_at.map(|t| Ts(t).sqlite_text()).into());
        }
        if results.is_empty() {
            return Ok(Vec::new());
        }
        values.push(rid.clone().into());
        let sql = format!(
            "{RECORD_OUTCOMES}VALUES {}{RECORD_OUTCOMES_WHERE}?{RECORD_OUTCOMES_RETURNING}",
            rows(results.len(), 5)
        );
        let updated: Vec<String> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(rusqlite::params_from_iter(values), |r| r.get(0))?
                    .collect()
            })
            .map_err(self.err())?;
        let mut written = Vec::with_capacity(results.len());
        for result in results {
            let instance = result.instance.as_str();
            let done = updated.iter().any(|u| u == instance);
            if !done {
                let exists: i64 = self
                    .conn
                    .prepare_cached(&numbered(RESULT_EXISTS))
                    .and_then(|mut s| s.query_row(rusqlite::params![rid, instance], |r| r.get(0)))
                    .map_err(self.err())?;
                if exists == 0 {
                    return Err(StoreError::NotFound(format!(
                        "connector '{instance}' of request {id}"
                    )));
                }
            }
            written.push(done);
        }
        let attempts = written_attempts(results, &written);
        if !attempts.is_empty() {
            let sql = format!("{INSERT_ATTEMPTS} VALUES {}", rows(attempts.len(), 11));
            let mut values: Vec<Value> = Vec::with_capacity(attempts.len() * 11);
            for (instance, seq, a) in attempts {
                values.extend([
                    rid.clone().into(),
                    instance.to_string().into(),
                    int(seq + 1).into(),
                    a.step.as_str().to_string().into(),
                    int(a.number).into(),
                    Ts(a.started_at).sqlite_text().into(),
                    int(a.duration_ms).into(),
                    a.http_status.map(i64::from).into(),
                    a.provider_code.clone().into(),
                    a.provider_request_id.clone().into(),
                    a.error_class.map(|c| c.as_str().to_string()).into(),
                ]);
            }
            self.execute(&sql, rusqlite::params_from_iter(values))?;
        }
        Ok(written)
    }

    pub(crate) fn finish_request(
        &self,
        id: RequestId,
        status: RequestStatus,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        if !status.is_final() {
            return Err(StoreError::Other(format!(
                "cannot finish request {id} as '{status}': not a final status"
            )));
        }
        let done = self.execute(
            &numbered(FINISH_REQUEST),
            rusqlite::params![
                id.0.hyphenated().to_string(),
                status.as_str(),
                Ts(at).sqlite_text()
            ],
        )?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("request {id}")));
        }
        Ok(())
    }
}
