//! The part of the SQL stores both backends share: the statements, the row
//! mapping, the error mapping and the [`Store`](sever_core::Store) and
//! [`AdminStore`](sever_core::admin::AdminStore) implementations themselves
//! (the latter in [`admin`]), stamped onto each backend's type by
//! [`impl_sql_store!`].
//!
//! Why a macro rather than a function generic over `sqlx::Database`: a
//! generic version needs a dozen higher-ranked `Executor`/`Encode`/`Decode`
//! bounds repeated on every function, which buries the logic. The macro is
//! expanded against one concrete pool type at a time, so the body reads like
//! plain sqlx code. What differs between the backends lives outside it: the
//! column encodings in [`codec`], and the connection setup in `sqlite.rs`
//! and `postgres.rs`. Statements use `$n` placeholders, which both drivers
//! accept, and only SQL both dialects understand; where the dialects must
//! differ (claiming the next request, locking the audit chain) each backend
//! supplies its statement as an associated const.

pub(crate) mod admin;
pub(crate) mod bulk;
pub(crate) mod codec;
pub(crate) mod oauth;
pub(crate) mod policy;
pub(crate) mod rows;
pub(crate) mod sessions;

use sever_core::StoreError;

/// The outcome label that counts as a failure in listings; pinned to
/// `Outcome::label` by a test.
pub(crate) const FAILED: &str = "failed";

/// Listing page size when none is asked for, and the largest allowed.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 1000;

macro_rules! insert_requests {
    () => {
        "INSERT INTO revocation_requests \
        (id, tenant_id, username, reason, channel, requested_by, status, created_at) "
    };
}

pub(crate) const INSERT_REQUEST: &str = concat!(
    insert_requests!(),
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);

/// [`INSERT_REQUEST`] for many requests: followed by one `VALUES` row each.
pub(crate) const INSERT_REQUESTS: &str = insert_requests!();

pub(crate) const INSERT_RESULT: &str = "INSERT INTO revocation_results \
    (request_id, instance, provider, position) VALUES ($1, $2, $3, $4)";

/// [`INSERT_RESULT`] for many targets: followed by one `VALUES` row each.
pub(crate) const INSERT_RESULTS: &str =
    "INSERT INTO revocation_results (request_id, instance, provider, position) ";

pub(crate) const SELECT_REQUEST: &str = "SELECT id, tenant_id, username, reason, channel, \
    requested_by, status, created_at, started_at, finished_at \
    FROM revocation_requests WHERE id = $1";

pub(crate) const SELECT_RESULTS: &str = "SELECT instance, provider, outcome, outcome_detail, \
    subject_id, finished_at FROM revocation_results WHERE request_id = $1 ORDER BY position";

pub(crate) const SELECT_ATTEMPTS: &str = "SELECT instance, step, number, started_at, \
    duration_ms, http_status, provider_code, provider_request_id, error_class \
    FROM revocation_attempts WHERE request_id = $1 ORDER BY instance, seq";

/// One conditional UPDATE, so two claimers can never both win: the row
/// lock (PostgreSQL) or the write lock (SQLite) serializes them and the
/// loser's WHERE no longer matches.
/// Binds: id, now, owner, expires_at, steal_from, running, queued.
pub(crate) const CLAIM_REQUEST: &str = "UPDATE revocation_requests SET \
    status = $6, started_at = COALESCE(started_at, $2), \
    lease_owner = $3, lease_expires_at = $4, claim_count = claim_count + 1 \
    WHERE id = $1 AND status IN ($6, $7) \
    AND (lease_owner IS NULL OR lease_expires_at < $2 OR lease_owner = $3 OR lease_owner = $5)";

pub(crate) const RENEW_LEASE: &str = "UPDATE revocation_requests SET lease_expires_at = $3 \
    WHERE id = $1 AND lease_owner = $2";

/// Only a pending result takes an outcome: this is what guarantees no
/// finished provider call is recorded twice.
/// Binds: id, owner, running, queued.
pub(crate) const RELEASE_LEASE: &str = "UPDATE revocation_requests SET \
    lease_owner = NULL, lease_expires_at = NULL \
    WHERE id = $1 AND lease_owner = $2 AND status IN ($3, $4)";

pub(crate) const APPLIED_MIGRATIONS: &str =
    "SELECT version FROM _sqlx_migrations WHERE success = TRUE";

/// Record a batch of outcomes in one statement: followed by one `VALUES`
/// row (instance, outcome, detail, subject id, finished at) per result,
/// [`RECORD_OUTCOMES_WHERE`], the request id and
/// [`RECORD_OUTCOMES_RETURNING`]. Returns the instances written.
pub(crate) const RECORD_OUTCOMES: &str = "UPDATE revocation_results SET \
    outcome = v.column2, outcome_detail = v.column3, subject_id = v.column4, \
    finished_at = v.column5 FROM (";

pub(crate) const RECORD_OUTCOMES_WHERE: &str = ") AS v \
    WHERE revocation_results.instance = v.column1 AND revocation_results.outcome IS NULL \
    AND revocation_results.request_id = ";

pub(crate) const RECORD_OUTCOMES_RETURNING: &str = " RETURNING revocation_results.instance";

pub(crate) const RESULT_EXISTS: &str =
    "SELECT COUNT(*) FROM revocation_results WHERE request_id = $1 AND instance = $2";

/// Followed by one `VALUES` row per attempt.
pub(crate) const INSERT_ATTEMPTS: &str = "INSERT INTO revocation_attempts \
    (request_id, instance, seq, step, number, started_at, duration_ms, http_status, \
    provider_code, provider_request_id, error_class) ";

pub(crate) const FINISH_REQUEST: &str = "UPDATE revocation_requests SET \
    status = $2, finished_at = $3, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1";

pub(crate) const SELECT_UNFINISHED: &str = "SELECT id, status, lease_owner, lease_expires_at \
    FROM revocation_requests WHERE status IN ($1, $2) ORDER BY id";

/// The listing's fixed part; filters, order and limit are appended.
pub(crate) const LIST_SELECT: &str = "SELECT r.id, r.tenant_id, r.username, r.status, \
    r.channel, r.created_at, r.finished_at, \
    (SELECT COUNT(*) FROM revocation_results c WHERE c.request_id = r.id) AS connectors, \
    (SELECT COUNT(*) FROM revocation_results c WHERE c.request_id = r.id AND c.outcome = ";

pub(crate) const LIST_FROM: &str = ") AS failed FROM revocation_requests r WHERE 1 = 1";

pub(crate) const SELECT_TOKEN: &str =
    "SELECT key_id, blob, expires_at FROM token_cache WHERE key = $1";

pub(crate) const UPSERT_TOKEN: &str = "INSERT INTO token_cache (key, key_id, blob, expires_at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET \
    key_id = excluded.key_id, blob = excluded.blob, expires_at = excluded.expires_at";

pub(crate) const DELETE_TOKENS_OF_OTHER_KEYS: &str = "DELETE FROM token_cache WHERE key_id <> $1";

/// The oldest request nobody holds, claimed in one statement so two
/// claimers never both get it; `$lock` is the backend's locking clause for
/// the subquery. Binds: now, owner, expires_at, running, queued.
macro_rules! claim_next_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE revocation_requests SET ",
            "status = $4, started_at = COALESCE(started_at, $1), ",
            "lease_owner = $2, lease_expires_at = $3, claim_count = claim_count + 1 ",
            "WHERE id = (SELECT id FROM revocation_requests WHERE status IN ($4, $5) ",
            "AND (lease_owner IS NULL OR lease_expires_at < $1) ORDER BY id LIMIT 1",
            $lock,
            ") RETURNING id"
        )
    };
}

/// SQLite: the UPDATE takes the database's write lock before its subquery
/// reads, so a second claimer waits and then sees the first one's lease.
pub(crate) const CLAIM_NEXT_SQLITE: &str = claim_next_sql!("");

/// PostgreSQL: `SKIP LOCKED` makes a second claimer pass over the row the
/// first has locked and take the next, instead of queueing behind it; a row
/// whose lease a committed claimer just took is re-checked and skipped.
pub(crate) const CLAIM_NEXT_POSTGRES: &str = claim_next_sql!(" FOR UPDATE SKIP LOCKED");

/// The page size actually used for a requested limit.
pub(crate) fn page_size(limit: u32) -> i64 {
    i64::from(match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    })
}

/// Lossless for every realistic value; saturates rather than fails.
pub(crate) fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// The attempts of the results `written` (the rest had an outcome already),
/// each with its 0-based place in its connector's list: the rows of
/// [`INSERT_ATTEMPTS`].
pub(crate) fn written_attempts<'a>(
    results: &'a [sever_core::ConnectorResult],
    written: &[bool],
) -> Vec<(&'a str, usize, &'a sever_core::Attempt)> {
    results
        .iter()
        .zip(written)
        .filter(|(_, w)| **w)
        .flat_map(|(r, _)| {
            r.attempts
                .iter()
                .enumerate()
                .map(move |(seq, a)| (r.instance.as_str(), seq, a))
        })
        .collect()
}

/// Map a driver error to the domain's. `target` names the database (host
/// and database, or file path) and never carries a password.
pub(crate) fn map_error(target: &str, err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match err {
        E::Io(e) => StoreError::Unavailable(format!("{target}: {e}")),
        E::Tls(e) => StoreError::Unavailable(format!("{target}: TLS: {e}")),
        E::PoolTimedOut => {
            StoreError::Unavailable(format!("{target}: timed out waiting for a connection"))
        }
        E::PoolClosed => StoreError::Unavailable(format!("{target}: the pool is closed")),
        E::WorkerCrashed => {
            StoreError::Unavailable(format!("{target}: the connection worker crashed"))
        }
        E::Database(e) => {
            let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("{target}: {}", e.message());
            if e.is_unique_violation() {
                StoreError::Conflict(message)
            } else if is_unavailable_code(&code) {
                StoreError::Unavailable(message)
            } else if is_corrupt_code(&code) {
                StoreError::Corrupt(message)
            } else {
                StoreError::Other(message)
            }
        }
        E::ColumnDecode { index, source } => {
            StoreError::Corrupt(format!("{target}: column {index}: {source}"))
        }
        e @ (E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. }) => {
            StoreError::Corrupt(format!("{target}: {e}"))
        }
        E::Migrate(e) => map_migrate_error(target, *e),
        e => StoreError::Other(format!("{target}: {e}")),
    }
}

pub(crate) fn map_migrate_error(target: &str, err: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError as M;
    match err {
        M::Execute(e) => map_error(target, e),
        e @ (M::VersionMissing(_) | M::VersionTooNew(..)) => StoreError::Other(format!(
            "{target}: the database schema is newer than this version of Sever ({e}); \
             upgrade Sever or point it at another database"
        )),
        e => StoreError::Other(format!("{target}: migrating the schema: {e}")),
    }
}

/// PostgreSQL classes 08 (connection), 28 (authorization), 3D (no such
/// database), 53300 (too many connections), 57P0x (shutdown); SQLite BUSY,
/// LOCKED, CANTOPEN, READONLY and IOERR (primary codes 5, 6, 14, 8, 10).
fn is_unavailable_code(code: &str) -> bool {
    if code.starts_with("08")
        || code.starts_with("28")
        || code.starts_with("3D")
        || code.starts_with("57P0")
        || code == "53300"
    {
        return true;
    }
    matches!(
        code.parse::<i32>().map(|c| c & 0xff),
        Ok(5 | 6 | 8 | 10 | 14)
    )
}

/// SQLite CORRUPT and NOTADB (primary codes 11 and 26); PostgreSQL XX001/XX002.
fn is_corrupt_code(code: &str) -> bool {
    code == "XX001"
        || code == "XX002"
        || matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(11 | 26))
}

/// Implements `sever_core::Store` and `sever_core::admin::AdminStore` for a
/// type with fields `pool: sqlx::Pool<$db>` and `target: String`, inherent
/// methods
/// * `async fn begin_read(&self) -> Result<sqlx::Transaction<'_, $db>, StoreError>`,
///   a transaction whose reads see one snapshot, and
/// * `async fn begin_write(&self) -> Result<sqlx::Transaction<'_, $db>, StoreError>`,
///   one that writes (see [`admin::impl_sql_admin_store!`]),
///
/// `fn migrator() -> &'static sqlx::migrate::Migrator` (its migrations),
/// the request path's writes (`insert_request_now` and the others
/// [`impl_sqlx_request_writes!`] lists) and the associated const
/// `LOCK_AUDIT`.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        $crate::sql::admin::impl_sql_admin_store!($store, $db);
        $crate::sql::oauth::impl_sql_oauth_store!($store, $db);
        $crate::sql::sessions::impl_sql_session_store!($store, $db);
        $crate::sql::policy::impl_sql_policy_store!($store, $db);
        $crate::sql::bulk::impl_sql_bulk_store!($store, $db);

        #[async_trait::async_trait]
        impl sever_core::Store for $store {
            async fn insert_request(
                &self,
                req: &sever_core::NewRequest,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                self.insert_request_now(req, audit).await
            }

            async fn get_request(
                &self,
                id: sever_core::RequestId,
            ) -> Result<Option<sever_core::RevocationRequest>, sever_core::StoreError> {
                use $crate::sql::{codec::*, rows::*, *};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_read().await?;
                let Some(request) = sqlx::query_as::<_, RequestRow>(SELECT_REQUEST)
                    .bind(DbUuid(id.0))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?
                else {
                    return Ok(None);
                };
                let results = sqlx::query_as::<_, ResultRow>(SELECT_RESULTS)
                    .bind(DbUuid(id.0))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?;
                let attempts = sqlx::query_as::<_, AttemptRow>(SELECT_ATTEMPTS)
                    .bind(DbUuid(id.0))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)?;
                request.into_request(results, attempts).map(Some)
            }

            async fn list_requests(
                &self,
                query: &sever_core::RequestQuery,
            ) -> Result<Vec<sever_core::RequestSummary>, sever_core::StoreError> {
                use $crate::sql::{codec::*, rows::*, *};
                let mut qb = sqlx::QueryBuilder::new(LIST_SELECT);
                qb.push_bind(FAILED).push(LIST_FROM);
                if let Some(tenant) = query.tenant_id {
                    qb.push(" AND r.tenant_id = ").push_bind(DbUuid(tenant.0));
                }
                if let Some(status) = query.status {
                    qb.push(" AND r.status = ").push_bind(status.as_str());
                }
                if let Some(username) = &query.username {
                    qb.push(" AND lower(r.username) = lower(")
                        .push_bind(username.trim().to_string())
                        .push(")");
                }
                if let Some(before) = query.before {
                    qb.push(" AND r.id < ").push_bind(DbUuid(before.0));
                }
                qb.push(" ORDER BY r.id DESC LIMIT ")
                    .push_bind(page_size(query.limit));
                qb.build_query_as::<SummaryRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(sever_core::RequestSummary::try_from)
                    .collect()
            }

            async fn claim_request(
                &self,
                id: sever_core::RequestId,
                lease: &sever_core::Lease,
                now: chrono::DateTime<chrono::Utc>,
                steal_from: Option<&str>,
            ) -> Result<bool, sever_core::StoreError> {
                self.claim_request_now(id, lease, now, steal_from).await
            }

            async fn claim_next(
                &self,
                lease: &sever_core::Lease,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<sever_core::RequestId>, sever_core::StoreError> {
                self.claim_next_now(lease, now).await
            }

            async fn renew_lease(
                &self,
                id: sever_core::RequestId,
                lease: &sever_core::Lease,
            ) -> Result<bool, sever_core::StoreError> {
                self.renew_lease_now(id, lease).await
            }

            async fn release_lease(
                &self,
                id: sever_core::RequestId,
                owner: &str,
            ) -> Result<bool, sever_core::StoreError> {
                self.release_lease_now(id, owner).await
            }

            async fn check_ready(&self) -> Result<(), sever_core::StoreError> {
                use $crate::sql::*;
                let applied: Vec<i64> = sqlx::query_scalar(APPLIED_MIGRATIONS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                let missing: Vec<i64> = Self::migrator()
                    .iter()
                    .filter(|m| !m.migration_type.is_down_migration())
                    .map(|m| m.version)
                    .filter(|v| !applied.contains(v))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(sever_core::StoreError::Other(format!(
                        "{}: migrations not applied: {missing:?}",
                        self.target
                    )))
                }
            }

            async fn record_result(
                &self,
                id: sever_core::RequestId,
                result: &sever_core::ConnectorResult,
            ) -> Result<bool, sever_core::StoreError> {
                let recorded = self
                    .record_results(id, std::slice::from_ref(result))
                    .await?;
                Ok(recorded.first().copied().unwrap_or(false))
            }

            async fn record_results(
                &self,
                id: sever_core::RequestId,
                results: &[sever_core::ConnectorResult],
            ) -> Result<Vec<bool>, sever_core::StoreError> {
                self.record_results_now(id, results).await
            }

            async fn finish_request(
                &self,
                id: sever_core::RequestId,
                status: sever_core::RequestStatus,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), sever_core::StoreError> {
                self.finish_request_now(id, status, at).await
            }

            async fn unfinished_requests(
                &self,
            ) -> Result<Vec<sever_core::UnfinishedRequest>, sever_core::StoreError> {
                use sever_core::RequestStatus;
                use $crate::sql::{rows::*, *};
                sqlx::query_as::<_, UnfinishedRow>(SELECT_UNFINISHED)
                    .bind(RequestStatus::Queued.as_str())
                    .bind(RequestStatus::Running.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(sever_core::UnfinishedRequest::try_from)
                    .collect()
            }

            async fn get_token(
                &self,
                key: &str,
            ) -> Result<Option<sever_core::CachedSealedToken>, sever_core::StoreError> {
                use $crate::sql::{rows::*, *};
                let row = sqlx::query_as::<_, TokenRow>(SELECT_TOKEN)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(row.map(Into::into))
            }

            async fn put_token(
                &self,
                key: &str,
                token: &sever_core::CachedSealedToken,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{codec::*, *};
                sqlx::query(UPSERT_TOKEN)
                    .bind(key)
                    .bind(token.sealed.key_id.as_str())
                    .bind(token.sealed.blob.as_slice())
                    .bind(Ts(token.expires_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(())
            }

            async fn clear_tokens_not_sealed_with(
                &self,
                key_id: &str,
            ) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::*;
                let done = sqlx::query(DELETE_TOKENS_OF_OTHER_KEYS)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_sql_store;

/// The request path's writes over sqlx, for a backend whose connections
/// take several writers at once (PostgreSQL): the inherent methods
/// `insert_request_one` (the backend's `insert_request_now` batches them), `claim_request_now`, `claim_next_now`,
/// `renew_lease_now`, `release_lease_now`, `record_results_now` and
/// `finish_request_now` that [`impl_sql_store!`]'s `Store` methods call.
/// SQLite makes the same writes on a thread of its own
/// (`crate::sqlite_writer`). Needs what [`impl_sql_store!`] needs, plus
/// `fn writer(&self) -> &sqlx::Pool<$db>` and `CLAIM_NEXT: &str`.
macro_rules! impl_sqlx_request_writes {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Record `results` in `tx`: one conditional update of all their
            /// outcomes (on SQLite it takes the write lock before anything is
            /// read, so the transaction never has to upgrade a read
            /// snapshot), then the attempts of all those written in one
            /// statement. A result that already had an outcome is left as it
            /// was (false); one the request does not have is an error.
            async fn record_in(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                id: sever_core::RequestId,
                results: &[sever_core::ConnectorResult],
            ) -> Result<Vec<bool>, sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{codec::*, *};
                let err = |e| map_error(&self.target, e);
                let rid = DbUuid(id.0);
                let mut rows = Vec::with_capacity(results.len());
                for result in results {
                    let Some(outcome) = &result.outcome else {
                        return Err(StoreError::Other(format!(
                            "cannot record connector '{}' of request {id} without an outcome",
                            result.instance
                        )));
                    };
                    rows.push((result, outcome));
                }
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                // One statement for the whole batch: each statement is a
                // round trip to the database, and the writer is busy for
                // all of them.
                let mut qb = sqlx::QueryBuilder::<$db>::new(RECORD_OUTCOMES);
                qb.push_values(rows, |mut b, (result, outcome)| {
                    b.push_bind(result.instance.as_str())
                        .push_bind(outcome.label())
                        .push_bind(sqlx::types::Json(outcome))
                        .push_bind(result.subject_id.as_deref())
                        .push_bind(result.finished_at.map(Ts));
                });
                qb.push(RECORD_OUTCOMES_WHERE)
                    .push_bind(rid)
                    .push(RECORD_OUTCOMES_RETURNING);
                let updated: Vec<String> = qb
                    .build_query_scalar()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(err)?;
                let mut written = Vec::with_capacity(results.len());
                for result in results {
                    let instance = result.instance.as_str();
                    let done = updated.iter().any(|u| u == instance);
                    if !done {
                        let exists: i64 = sqlx::query_scalar(RESULT_EXISTS)
                            .bind(rid)
                            .bind(instance)
                            .fetch_one(&mut **tx)
                            .await
                            .map_err(err)?;
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
                    let mut qb = sqlx::QueryBuilder::<$db>::new(INSERT_ATTEMPTS);
                    qb.push_values(attempts, |mut b, (instance, seq, a)| {
                        b.push_bind(rid)
                            .push_bind(instance)
                            .push_bind(int(seq + 1))
                            .push_bind(a.step.as_str())
                            .push_bind(int(a.number))
                            .push_bind(Ts(a.started_at))
                            .push_bind(int(a.duration_ms))
                            .push_bind(a.http_status.map(i32::from))
                            .push_bind(a.provider_code.as_deref())
                            .push_bind(a.provider_request_id.as_deref())
                            .push_bind(a.error_class.map(|c| c.as_str()));
                    });
                    qb.build().execute(&mut **tx).await.map_err(err)?;
                }
                Ok(written)
            }

            async fn insert_request_one(
                &self,
                req: &sever_core::NewRequest,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{codec::*, *};
                let err = |e| map_error(&self.target, e);
                let conflict = |e: sqlx::Error, what: String| match map_error(&self.target, e) {
                    StoreError::Conflict(_) => StoreError::Conflict(what),
                    other => other,
                };
                let id = DbUuid(req.id.0);
                let mut tx = self.begin_write().await?;
                sqlx::query(INSERT_REQUEST)
                    .bind(id)
                    .bind(DbUuid(req.tenant_id.0))
                    .bind(req.username.as_str())
                    .bind(req.reason.as_str())
                    .bind(req.channel.as_str())
                    .bind(req.requested_by.as_str())
                    .bind(req.status.as_str())
                    .bind(Ts(req.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict(e, format!("request {}", req.id)))?;
                if !req.targets.is_empty() {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(INSERT_RESULTS);
                    qb.push_values(
                        req.targets.iter().enumerate(),
                        |mut b, (position, (instance, provider))| {
                            b.push_bind(id)
                                .push_bind(instance.as_str())
                                .push_bind(provider.as_str())
                                .push_bind(int(position));
                        },
                    );
                    qb.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| conflict(e, format!("a connector in request {}", req.id)))?;
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }
            async fn claim_request_now(
                &self,
                id: sever_core::RequestId,
                lease: &sever_core::Lease,
                now: chrono::DateTime<chrono::Utc>,
                steal_from: Option<&str>,
            ) -> Result<bool, sever_core::StoreError> {
                use sever_core::RequestStatus;
                use $crate::sql::{codec::*, *};
                let done = sqlx::query(CLAIM_REQUEST)
                    .bind(DbUuid(id.0))
                    .bind(Ts(now))
                    .bind(lease.owner.as_str())
                    .bind(Ts(lease.expires_at))
                    .bind(steal_from)
                    .bind(RequestStatus::Running.as_str())
                    .bind(RequestStatus::Queued.as_str())
                    .execute(self.writer())
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }
            async fn record_results_now(
                &self,
                id: sever_core::RequestId,
                results: &[sever_core::ConnectorResult],
            ) -> Result<Vec<bool>, sever_core::StoreError> {
                use $crate::sql::map_error;
                let err = |e| map_error(&self.target, e);
                let mut tx = self.writer().begin().await.map_err(err)?;
                let recorded = self.record_in(&mut tx, id, results).await?;
                tx.commit().await.map_err(err)?;
                Ok(recorded)
            }
            async fn finish_request_now(
                &self,
                id: sever_core::RequestId,
                status: sever_core::RequestStatus,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{codec::*, *};
                if !status.is_final() {
                    return Err(StoreError::Other(format!(
                        "cannot finish request {id} as '{status}': not a final status"
                    )));
                }
                let done = sqlx::query(FINISH_REQUEST)
                    .bind(DbUuid(id.0))
                    .bind(status.as_str())
                    .bind(Ts(at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("request {id}")));
                }
                Ok(())
            }
            async fn claim_next_now(
                &self,
                lease: &sever_core::Lease,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<sever_core::RequestId>, sever_core::StoreError> {
                use sever_core::{RequestId, RequestStatus};
                use $crate::sql::{codec::*, *};
                let claimed: Option<DbUuid> = sqlx::query_scalar(Self::CLAIM_NEXT)
                    .bind(Ts(now))
                    .bind(lease.owner.as_str())
                    .bind(Ts(lease.expires_at))
                    .bind(RequestStatus::Running.as_str())
                    .bind(RequestStatus::Queued.as_str())
                    .fetch_optional(self.writer())
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(claimed.map(|id| RequestId(id.0)))
            }
            async fn renew_lease_now(
                &self,
                id: sever_core::RequestId,
                lease: &sever_core::Lease,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{codec::*, *};
                let done = sqlx::query(RENEW_LEASE)
                    .bind(DbUuid(id.0))
                    .bind(lease.owner.as_str())
                    .bind(Ts(lease.expires_at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }
            async fn release_lease_now(
                &self,
                id: sever_core::RequestId,
                owner: &str,
            ) -> Result<bool, sever_core::StoreError> {
                use sever_core::RequestStatus;
                use $crate::sql::{codec::*, *};
                let done = sqlx::query(RELEASE_LEASE)
                    .bind(DbUuid(id.0))
                    .bind(owner)
                    .bind(RequestStatus::Running.as_str())
                    .bind(RequestStatus::Queued.as_str())
                    .execute(self.writer())
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_sqlx_request_writes;

#[cfg(test)]
mod tests {
    use super::*;
    use sever_core::{ErrorClass, Failure, Outcome};

    #[test]
    fn the_failed_label_matches_the_domain() {
        let failed = Outcome::Failed(Failure::new(ErrorClass::Timeout, "t"));
        assert_eq!(FAILED, failed.label());
    }

    #[test]
    fn page_size_defaults_to_50_and_is_capped_at_1000() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(5000), 1000);
    }
}
