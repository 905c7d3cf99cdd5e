//! The [`BulkStore`](sever_core::bulk::BulkStore) part of the SQL stores:
//! bulk jobs and their items, stamped onto each backend by
//! [`impl_sql_bulk_store!`] (which `impl_sql_store!` invokes) for the same
//! reason as the other halves.
//!
//! Items are appended in multi-row inserts that leave an already stored
//! `(job, seq)` alone, so re-reading input after a crash is harmless; the
//! job's counters move to the highest row stored in the same transaction.

use sever_core::bulk::{BulkItem, BulkJob, BulkJobId, BulkState, ItemState};
use sever_core::{Channel, Reason, RequestId, RequestStatus, StoreError, TenantId};

use super::codec::{DbUuid, Ts};
use super::rows::corrupt;

pub(crate) const INSERT_JOB: &str = "INSERT INTO bulk_jobs (id, tenant_id, incident_id, \
    reason, channel, requested_by, targets, source, state, row_count, invalid_rows, \
    input_done, created_at, finished_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub(crate) const SELECT_JOB: &str = "SELECT id, tenant_id, incident_id, reason, channel, \
    requested_by, targets, source, state, row_count, invalid_rows, input_done, created_at, \
    finished_at FROM bulk_jobs";
/// Binds: id, input_done.
pub(crate) const UPDATE_COUNTS: &str = "UPDATE bulk_jobs SET \
    row_count = (SELECT COUNT(*) FROM bulk_items WHERE job_id = $1), \
    invalid_rows = (SELECT COUNT(*) FROM bulk_items WHERE job_id = $1 AND state = 'invalid'), \
    input_done = $2 WHERE id = $1";
/// Binds: id, state, at, final.
pub(crate) const SET_STATE: &str = "UPDATE bulk_jobs SET state = $2, \
    finished_at = CASE WHEN $4 THEN $3 ELSE NULL END WHERE id = $1";
pub(crate) const TRANSITION_STATE: &str = "UPDATE bulk_jobs SET state = $2, \
    finished_at = CASE WHEN $4 THEN $3 ELSE NULL END WHERE id = $1 AND state = $5";
pub(crate) const COUNT_ITEMS: &str = "SELECT i.state, r.status, COUNT(*) FROM bulk_items i \
    LEFT JOIN revocation_requests r ON r.id = i.request_id \
    WHERE i.job_id = $1 GROUP BY i.state, r.status";
pub(crate) const INSERT_ITEMS: &str =
    "INSERT INTO bulk_items (job_id, seq, line, username, state, request_id, note) ";
pub(crate) const SELECT_ITEMS: &str = "SELECT i.seq, i.line, i.username, i.state, \
    i.request_id, i.note, r.status FROM bulk_items i \
    LEFT JOIN revocation_requests r ON r.id = i.request_id \
    WHERE i.job_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3";
pub(crate) const ASSIGN_REQUEST: &str = "UPDATE bulk_items SET state = 'submitted', \
    request_id = $3 WHERE job_id = $1 AND seq = $2 AND request_id IS NULL AND state = 'pending'";
pub(crate) const SKIP_ITEM: &str = "UPDATE bulk_items SET state = 'skipped', note = $3 \
    WHERE job_id = $1 AND seq = $2 AND state = 'pending'";

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: DbUuid,
    tenant_id: DbUuid,
    incident_id: String,
    reason: String,
    channel: String,
    requested_by: String,
    targets: Option<String>,
    source: String,
    state: String,
    row_count: i64,
    invalid_rows: i64,
    input_done: bool,
    created_at: Ts,
    finished_at: Option<Ts>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<BulkJob, StoreError> {
        Ok(BulkJob {
            id: BulkJobId(self.id.0),
            tenant_id: TenantId(self.tenant_id.0),
            incident_id: self.incident_id,
            reason: Reason::parse(&self.reason).map_err(|e| corrupt("reason", e))?,
            channel: self
                .channel
                .parse::<Channel>()
                .map_err(|e| corrupt("channel", e))?,
            requested_by: self.requested_by,
            targets: self
                .targets
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| corrupt("targets", e))?,
            source: self.source,
            state: BulkState::parse(&self.state).map_err(|e| corrupt("state", e))?,
            rows: u64::try_from(self.row_count).unwrap_or(0),
            invalid: u64::try_from(self.invalid_rows).unwrap_or(0),
            input_done: self.input_done,
            created_at: self.created_at.0,
            finished_at: self.finished_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    seq: i64,
    line: i64,
    username: String,
    state: String,
    request_id: Option<DbUuid>,
    note: Option<String>,
    status: Option<String>,
}

impl ItemRow {
    pub(crate) fn into_item(self) -> Result<BulkItem, StoreError> {
        Ok(BulkItem {
            seq: u64::try_from(self.seq).map_err(|e| corrupt("seq", e))?,
            line: u64::try_from(self.line).unwrap_or(0),
            username: self.username,
            state: ItemState::parse(&self.state).map_err(|e| corrupt("state", e))?,
            request_id: self.request_id.map(|u| RequestId(u.0)),
            note: self.note,
            request_status: self
                .status
                .map(|s| s.parse::<RequestStatus>())
                .transpose()
                .map_err(|e| corrupt("status", e))?,
        })
    }
}

pub(crate) fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn targets_json(t: &Option<Vec<String>>) -> Option<String> {
    t.as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "[]".into()))
}

/// Implements `sever_core::bulk::BulkStore` for a type shaped as
/// `impl_sql_store!` requires.
macro_rules! impl_sql_bulk_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl sever_core::bulk::BulkStore for $store {
            async fn create_bulk_job(
                &self,
                job: &sever_core::bulk::BulkJob,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                sqlx::query(INSERT_JOB)
                    .bind(DbUuid(job.id.0))
                    .bind(DbUuid(job.tenant_id.0))
                    .bind(job.incident_id.as_str())
                    .bind(job.reason.as_str())
                    .bind(job.channel.as_str())
                    .bind(job.requested_by.as_str())
                    .bind(targets_json(&job.targets))
                    .bind(job.source.as_str())
                    .bind(job.state.as_str())
                    .bind(seq(job.rows))
                    .bind(seq(job.invalid))
                    .bind(job.input_done)
                    .bind(Ts(job.created_at))
                    .bind(job.finished_at.map(Ts))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(())
            }

            async fn get_bulk_job(
                &self,
                id: sever_core::bulk::BulkJobId,
            ) -> Result<Option<sever_core::bulk::BulkJob>, sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                sqlx::query_as::<_, JobRow>(&format!("{SELECT_JOB} WHERE id = $1"))
                    .bind(DbUuid(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(JobRow::into_job)
                    .transpose()
            }

            async fn list_bulk_jobs(
                &self,
                unfinished_only: bool,
            ) -> Result<Vec<sever_core::bulk::BulkJob>, sever_core::StoreError> {
                use $crate::sql::{bulk::*, map_error};
                let sql = if unfinished_only {
                    format!(
                        "{SELECT_JOB} WHERE state NOT IN ('completed', 'cancelled') \
                         ORDER BY id DESC LIMIT 1000"
                    )
                } else {
                    format!("{SELECT_JOB} ORDER BY id DESC LIMIT 1000")
                };
                sqlx::query_as::<_, JobRow>(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(JobRow::into_job)
                    .collect()
            }

            async fn append_bulk_items(
                &self,
                id: sever_core::bulk::BulkJobId,
                items: &[sever_core::bulk::BulkItem],
                input_done: bool,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                for chunk in items.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(INSERT_ITEMS);
                    qb.push_values(chunk, |mut b, item| {
                        b.push_bind(DbUuid(id.0))
                            .push_bind(seq(item.seq))
                            .push_bind(seq(item.line))
                            .push_bind(item.username.clone())
                            .push_bind(item.state.as_str())
                            .push_bind(item.request_id.map(|r| DbUuid(r.0)))
                            .push_bind(item.note.clone());
                    });
                    qb.push(" ON CONFLICT (job_id, seq) DO NOTHING");
                    qb.build().execute(&mut *tx).await.map_err(err)?;
                }
                if input_done {
                    sqlx::query(UPDATE_COUNTS)
                        .bind(DbUuid(id.0))
                        .bind(true)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                } else if let Some(last) = items.last() {
                    // Cheap counters while reading: the highest row stored.
                    let invalid = items
                        .iter()
                        .filter(|i| i.state == sever_core::bulk::ItemState::Invalid)
                        .count();
                    sqlx::query(
                        "UPDATE bulk_jobs SET row_count = $2, \
                         invalid_rows = invalid_rows + $3 WHERE id = $1 AND row_count < $2",
                    )
                    .bind(DbUuid(id.0))
                    .bind(seq(last.seq + 1))
                    .bind(seq(invalid as u64))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }

            async fn set_bulk_state(
                &self,
                id: sever_core::bulk::BulkJobId,
                state: sever_core::bulk::BulkState,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                sqlx::query(SET_STATE)
                    .bind(DbUuid(id.0))
                    .bind(state.as_str())
                    .bind(Ts(at))
                    .bind(state.is_final())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(())
            }

            async fn count_bulk_items(
                &self,
                id: sever_core::bulk::BulkJobId,
            ) -> Result<
                Vec<(
                    sever_core::bulk::ItemState,
                    Option<sever_core::RequestStatus>,
                    u64,
                )>,
                sever_core::StoreError,
            > {
                use $crate::sql::{bulk::*, codec::*, map_error};
                let rows = sqlx::query_as::<_, (String, Option<String>, i64)>(COUNT_ITEMS)
                    .bind(DbUuid(id.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                rows.into_iter()
                    .map(|(state, status, n)| {
                        let state = sever_core::bulk::ItemState::parse(&state)
                            .map_err(|e| sever_core::StoreError::Corrupt(e.to_string()))?;
                        let status = status
                            .map(|s| s.parse::<sever_core::RequestStatus>())
                            .transpose()
                            .map_err(|e| sever_core::StoreError::Corrupt(e.to_string()))?;
                        Ok((state, status, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect()
            }

            async fn transition_bulk_state(
                &self,
                id: sever_core::bulk::BulkJobId,
                from: sever_core::bulk::BulkState,
                to: sever_core::bulk::BulkState,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                let done = sqlx::query(TRANSITION_STATE)
                    .bind(DbUuid(id.0))
                    .bind(to.as_str())
                    .bind(Ts(at))
                    .bind(to.is_final())
                    .bind(from.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn bulk_items(
                &self,
                id: sever_core::bulk::BulkJobId,
                after: Option<u64>,
                limit: u32,
            ) -> Result<Vec<sever_core::bulk::BulkItem>, sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                sqlx::query_as::<_, ItemRow>(SELECT_ITEMS)
                    .bind(DbUuid(id.0))
                    .bind(after.map_or(-1, seq))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(ItemRow::into_item)
                    .collect()
            }

            async fn assign_bulk_request(
                &self,
                id: sever_core::bulk::BulkJobId,
                item: u64,
                request: sever_core::RequestId,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                let done = sqlx::query(ASSIGN_REQUEST)
                    .bind(DbUuid(id.0))
                    .bind(seq(item))
                    .bind(DbUuid(request.0))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn skip_bulk_item(
                &self,
                id: sever_core::bulk::BulkJobId,
                item: u64,
                note: &str,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{bulk::*, codec::*, map_error};
                sqlx::query(SKIP_ITEM)
                    .bind(DbUuid(id.0))
                    .bind(seq(item))
                    .bind(note)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_bulk_store;
