//! The policy engine's part of the SQL stores: the shared counters, sets
//! and cooldowns behind [`CounterStore`](sever_core::policy::CounterStore),
//! tenants' stored policies, and approvals, stamped onto each backend by
//! [`impl_sql_policy_store!`] (which `impl_sql_store!` invokes) for the
//! same reason as the other halves.
//!
//! Why no count can pass its maximum, on either backend and across
//! replicas: each claim is one `INSERT … ON CONFLICT … DO UPDATE … WHERE
//! count + amount <= max RETURNING` statement. PostgreSQL locks the row and
//! re-evaluates the `WHERE` on its latest committed version, so concurrent
//! claimers are serialized on the row; SQLite runs the whole transaction
//! under its write lock (`BEGIN IMMEDIATE`). A call's claims run in one
//! transaction and roll back together when one is refused; they run in key
//! order, so two transactions never wait on each other's rows in a cycle.

use sever_core::approvals::{Approval, ApprovalState};
use sever_core::policy::StoredPolicy;
use sever_core::{Channel, RequestId, StoreError, TenantId};

use super::codec::{DbUuid, JsonText, Ts};
use super::rows::corrupt;

/// Add `$3` to the count of key `$1` in the window starting `$2`, unless
/// that passes `$4`; a count of an older window restarts. Returns the new
/// count, or no row when refused (the caller checks `amount <= max` first,
/// so a fresh insert never passes the maximum either).
pub(crate) const CLAIM_COUNT: &str = "INSERT INTO policy_counters AS c \
    (key, window_start, count) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET \
    count = CASE WHEN c.window_start < excluded.window_start \
        THEN excluded.count ELSE c.count + excluded.count END, \
    window_start = CASE WHEN c.window_start < excluded.window_start \
        THEN excluded.window_start ELSE c.window_start END \
    WHERE c.window_start < excluded.window_start OR c.count + excluded.count <= $4 \
    RETURNING count";

pub(crate) const SELECT_COUNT: &str =
    "SELECT window_start, count FROM policy_counters WHERE key = $1";

/// One affected row when the member is new to the window's set.
pub(crate) const INSERT_MEMBER: &str = "INSERT INTO policy_distinct (key, window_start, member) \
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

pub(crate) const MEMBER_EXISTS: &str = "SELECT COUNT(*) FROM policy_distinct \
    WHERE key = $1 AND window_start = $2 AND member = $3";

/// Block `$1` until `$2` unless it is blocked past `$3` (now); no row when refused.
pub(crate) const CLAIM_COOLDOWN: &str = "INSERT INTO policy_cooldowns AS c (key, until) \
    VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET until = excluded.until \
    WHERE c.until <= $3 RETURNING key";

pub(crate) const SELECT_COOLDOWN: &str = "SELECT until FROM policy_cooldowns WHERE key = $1";

pub(crate) const PURGE_COUNTS: &str = "DELETE FROM policy_counters WHERE window_start < $1";
pub(crate) const PURGE_MEMBERS: &str = "DELETE FROM policy_distinct WHERE window_start < $1";
pub(crate) const PURGE_COOLDOWNS: &str = "DELETE FROM policy_cooldowns WHERE until < $1";

pub(crate) const SELECT_POLICY: &str = "SELECT tenant_id, document, revision, updated_at, \
    updated_by FROM tenant_policies WHERE tenant_id = $1";
/// The first stored policy of a tenant; no row affected when one exists.
pub(crate) const INSERT_POLICY: &str = "INSERT INTO tenant_policies \
    (tenant_id, document, revision, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (tenant_id) DO NOTHING";
/// Only over the revision the writer read.
pub(crate) const UPDATE_POLICY: &str = "UPDATE tenant_policies SET document = $2, \
    revision = $3, updated_at = $4, updated_by = $5 WHERE tenant_id = $1 AND revision = $6";
pub(crate) const DELETE_POLICY: &str =
    "DELETE FROM tenant_policies WHERE tenant_id = $1 AND revision = $2";
pub(crate) const POLICY_EXISTS: &str = "SELECT COUNT(*) FROM tenant_policies WHERE tenant_id = $1";

macro_rules! select_approval {
    () => {
        "SELECT request_id, tenant_id, action, username, request_reason, channel, \
         requested_by, requester_person, reasons, state, created_at, expires_at, decided_by, \
         decided_at, decision_reason FROM approvals"
    };
}

pub(crate) const INSERT_APPROVAL: &str = "INSERT INTO approvals (request_id, tenant_id, \
    action, username, request_reason, channel, requested_by, requester_person, reasons, state, \
    created_at, expires_at, decided_by, decided_at, decision_reason) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
pub(crate) const SELECT_APPROVAL: &str = concat!(select_approval!(), " WHERE request_id = $1");
/// The listing's fixed part; filters, order and limit are appended.
pub(crate) const LIST_APPROVALS: &str = concat!(select_approval!(), " WHERE 1 = 1");
pub(crate) const DUE_APPROVALS: &str = concat!(
    select_approval!(),
    " WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at, request_id LIMIT $2"
);
/// A decision: only while pending and before the expiry.
pub(crate) const SETTLE_DECISION: &str = "UPDATE approvals SET state = $2, decided_by = $3, \
    decided_at = $4, decision_reason = $5 \
    WHERE request_id = $1 AND state = 'pending' AND expires_at > $4";
/// An expiry: only while pending and at or after the expiry.
pub(crate) const SETTLE_EXPIRY: &str = "UPDATE approvals SET state = $2, decided_by = $3, \
    decided_at = $4, decision_reason = $5 \
    WHERE request_id = $1 AND state = 'pending' AND expires_at <= $4";
/// Move the held request on: only from `pending_approval` (`$4`).
pub(crate) const MOVE_REQUEST: &str = "UPDATE revocation_requests SET status = $2, \
    finished_at = $3 WHERE id = $1 AND status = $4";
/// A request that will never run records why in each pending result.
pub(crate) const SKIP_PENDING_RESULTS: &str = "UPDATE revocation_results SET outcome = $2, \
    outcome_detail = $3, finished_at = $4 WHERE request_id = $1 AND outcome IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct PolicyRow {
    tenant_id: DbUuid,
    document: JsonText,
    revision: i64,
    updated_at: Ts,
    updated_by: String,
}

impl TryFrom<PolicyRow> for StoredPolicy {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> Result<Self, StoreError> {
        Ok(StoredPolicy {
            tenant_id: TenantId(r.tenant_id.0),
            document: serde_json::from_str(&r.document.0)
                .map_err(|e| corrupt("tenant_policies.document", e))?,
            revision: r.revision,
            updated_at: r.updated_at.0,
            updated_by: r.updated_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApprovalRow {
    request_id: DbUuid,
    tenant_id: DbUuid,
    action: String,
    username: String,
    request_reason: String,
    channel: String,
    requested_by: String,
    requester_person: Option<String>,
    reasons: JsonText,
    state: String,
    created_at: Ts,
    expires_at: Ts,
    decided_by: Option<String>,
    decided_at: Option<Ts>,
    decision_reason: Option<String>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;
    fn try_from(r: ApprovalRow) -> Result<Self, StoreError> {
        Ok(Approval {
            request_id: RequestId(r.request_id.0),
            tenant_id: TenantId(r.tenant_id.0),
            action: r.action,
            username: r.username,
            request_reason: r.request_reason,
            channel: r
                .channel
                .parse::<Channel>()
                .map_err(|e| corrupt("approvals.channel", e))?,
            requested_by: r.requested_by,
            requester_person: r.requester_person,
            reasons: serde_json::from_str(&r.reasons.0)
                .map_err(|e| corrupt("approvals.reasons", e))?,
            state: r
                .state
                .parse::<ApprovalState>()
                .map_err(|e| corrupt("approvals.state", e))?,
            created_at: r.created_at.0,
            expires_at: r.expires_at.0,
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(|t| t.0),
            decision_reason: r.decision_reason,
        })
    }
}

/// JSON text of a value the domain made (never fails for these types).
pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> Result<JsonText, StoreError> {
    serde_json::to_string(v)
        .map(JsonText)
        .map_err(|e| StoreError::Other(format!("not JSON: {e}")))
}

/// Claims in the order they take their rows: by table, then key.
pub(crate) fn lock_order(claims: &[sever_core::policy::Claim]) -> Vec<usize> {
    use sever_core::policy::Claim;
    let rank = |c: &Claim| match c {
        Claim::Distinct { .. } => 0,
        Claim::Count { .. } => 1,
        Claim::Cooldown { .. } => 2,
    };
    let mut order: Vec<usize> = (0..claims.len()).collect();
    order.sort_by(|&a, &b| {
        (rank(&claims[a]), claims[a].key()).cmp(&(rank(&claims[b]), claims[b].key()))
    });
    order
}

/// Implements `CounterStore`, `PolicyDocumentStore` and `ApprovalStore`
/// (`sever_core::policy`, `sever_core::approvals`) for a type with `pool`,
/// `target`, `begin_write()` and `append_audit_in` (see
/// `impl_sql_admin_store!`).
macro_rules! impl_sql_policy_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Apply one claim inside `tx`; false when refused.
            async fn claim_in(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                claim: &sever_core::policy::Claim,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, sever_core::StoreError> {
                use sever_core::policy::{distinct_counter, Claim};
                use $crate::sql::{codec::*, int, map_error, policy::*};
                let err = |e| map_error(&self.target, e);
                match claim {
                    Claim::Count {
                        key,
                        window_start,
                        max,
                        amount,
                    } => {
                        if amount > max {
                            return Ok(false);
                        }
                        let counted: Option<i64> = sqlx::query_scalar(CLAIM_COUNT)
                            .bind(key.as_str())
                            .bind(Ts(*window_start))
                            .bind(int(*amount))
                            .bind(int(*max))
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(err)?;
                        Ok(counted.is_some())
                    }
                    Claim::Distinct {
                        key,
                        window_start,
                        members,
                        max,
                    } => {
                        let members: std::collections::BTreeSet<&str> =
                            members.iter().map(String::as_str).collect();
                        let mut new = 0u64;
                        for m in members {
                            let done = sqlx::query(INSERT_MEMBER)
                                .bind(key.as_str())
                                .bind(Ts(*window_start))
                                .bind(m)
                                .execute(&mut **tx)
                                .await
                                .map_err(err)?;
                            new += done.rows_affected();
                        }
                        if new == 0 {
                            return Ok(true);
                        }
                        if new > *max {
                            return Ok(false);
                        }
                        let counted: Option<i64> = sqlx::query_scalar(CLAIM_COUNT)
                            .bind(distinct_counter(key))
                            .bind(Ts(*window_start))
                            .bind(int(new))
                            .bind(int(*max))
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(err)?;
                        Ok(counted.is_some())
                    }
                    Claim::Cooldown { key, until } => {
                        let claimed: Option<String> = sqlx::query_scalar(CLAIM_COOLDOWN)
                            .bind(key.as_str())
                            .bind(Ts(*until))
                            .bind(Ts(now))
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(err)?;
                        Ok(claimed.is_some())
                    }
                }
            }

            /// The count of `key` as a claim in the window `window_start` sees it.
            async fn count_of(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                key: &str,
                window_start: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, policy::*};
                let row: Option<(Ts, i64)> = sqlx::query_as(SELECT_COUNT)
                    .bind(key)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(match row {
                    Some((start, n)) if start.0 >= Ts(window_start).stored() => {
                        u64::try_from(n).unwrap_or(0)
                    }
                    _ => 0,
                })
            }
        }

        #[async_trait::async_trait]
        impl sever_core::policy::CounterStore for $store {
            async fn consume(
                &self,
                claims: &[sever_core::policy::Claim],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<usize>, sever_core::StoreError> {
                use $crate::sql::{map_error, policy::lock_order};
                if claims.is_empty() {
                    return Ok(None);
                }
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                // On a refusal, go on checking the rest (all rolled back
                // anyway) so the refusal reported is the first in the
                // caller's order, whatever order the rows were taken in.
                let mut refused: Option<usize> = None;
                for i in lock_order(claims) {
                    if !self.claim_in(&mut tx, &claims[i], now).await? {
                        refused = Some(refused.map_or(i, |r| r.min(i)));
                    }
                }
                if refused.is_some() {
                    tx.rollback().await.map_err(err)?;
                    return Ok(refused);
                }
                tx.commit().await.map_err(err)?;
                Ok(None)
            }

            async fn peek(
                &self,
                claims: &[sever_core::policy::Claim],
                _now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<sever_core::policy::ClaimUsage>, sever_core::StoreError> {
                use sever_core::policy::{distinct_counter, Claim, ClaimUsage};
                use $crate::sql::{codec::*, map_error, policy::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.pool.begin().await.map_err(err)?;
                let mut out = Vec::with_capacity(claims.len());
                for claim in claims {
                    out.push(match claim {
                        Claim::Count {
                            key, window_start, ..
                        } => ClaimUsage::Count(self.count_of(&mut tx, key, *window_start).await?),
                        Claim::Distinct {
                            key,
                            window_start,
                            members,
                            ..
                        } => {
                            let members: std::collections::BTreeSet<&str> =
                                members.iter().map(String::as_str).collect();
                            let mut new = 0u64;
                            for m in members {
                                let n: i64 = sqlx::query_scalar(MEMBER_EXISTS)
                                    .bind(key.as_str())
                                    .bind(Ts(*window_start))
                                    .bind(m)
                                    .fetch_one(&mut *tx)
                                    .await
                                    .map_err(err)?;
                                if n == 0 {
                                    new += 1;
                                }
                            }
                            ClaimUsage::Distinct {
                                count: self
                                    .count_of(&mut tx, &distinct_counter(key), *window_start)
                                    .await?,
                                new_members: new,
                            }
                        }
                        Claim::Cooldown { key, .. } => {
                            let until: Option<Ts> = sqlx::query_scalar(SELECT_COOLDOWN)
                                .bind(key.as_str())
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(err)?;
                            ClaimUsage::Cooldown(until.map(|t| t.0))
                        }
                    });
                }
                tx.commit().await.map_err(err)?;
                Ok(out)
            }

            async fn purge_policy_state(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, policy::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let mut n = 0;
                for sql in [PURGE_COUNTS, PURGE_MEMBERS, PURGE_COOLDOWNS] {
                    n += sqlx::query(sql)
                        .bind(Ts(before))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?
                        .rows_affected();
                }
                tx.commit().await.map_err(err)?;
                Ok(n)
            }
        }

        #[async_trait::async_trait]
        impl sever_core::policy::PolicyDocumentStore for $store {
            async fn get_policy(
                &self,
                tenant: sever_core::TenantId,
            ) -> Result<Option<sever_core::policy::StoredPolicy>, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, policy::*};
                sqlx::query_as::<_, PolicyRow>(SELECT_POLICY)
                    .bind(DbUuid(tenant.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn put_policy(
                &self,
                policy: &sever_core::policy::StoredPolicy,
                expected: Option<i64>,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{admin::map_write_error, codec::*, map_error, policy::*};
                let err = |e| map_error(&self.target, e);
                let tenant = policy.tenant_id;
                let write_err = |e| {
                    map_write_error(&self.target, e, tenant, || {
                        format!("policy of tenant {tenant}")
                    })
                };
                let document = json_text(&policy.document)?;
                let mut tx = self.begin_write().await?;
                let done = match expected {
                    None => sqlx::query(INSERT_POLICY)
                        .bind(DbUuid(tenant.0))
                        .bind(document)
                        .bind(policy.revision)
                        .bind(Ts(policy.updated_at))
                        .bind(policy.updated_by.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(write_err)?,
                    Some(rev) => sqlx::query(UPDATE_POLICY)
                        .bind(DbUuid(tenant.0))
                        .bind(document)
                        .bind(policy.revision)
                        .bind(Ts(policy.updated_at))
                        .bind(policy.updated_by.as_str())
                        .bind(rev)
                        .execute(&mut *tx)
                        .await
                        .map_err(write_err)?,
                };
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Err(StoreError::Conflict(format!(
                        "another revision of the policy of tenant {tenant}"
                    )));
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn delete_policy(
                &self,
                tenant: sever_core::TenantId,
                expected: i64,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{codec::*, map_error, policy::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(DELETE_POLICY)
                    .bind(DbUuid(tenant.0))
                    .bind(expected)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    let exists: i64 = sqlx::query_scalar(POLICY_EXISTS)
                        .bind(DbUuid(tenant.0))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.rollback().await.map_err(err)?;
                    return if exists > 0 {
                        Err(StoreError::Conflict(format!(
                            "another revision of the policy of tenant {tenant}"
                        )))
                    } else {
                        Ok(false)
                    };
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }
        }

        #[async_trait::async_trait]
        impl sever_core::approvals::ApprovalStore for $store {
            async fn insert_pending_request(
                &self,
                req: &sever_core::NewRequest,
                approval: &sever_core::approvals::Approval,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::{RequestStatus, StoreError};
                use $crate::sql::{
                    codec::*, int, map_error, policy::*, INSERT_REQUEST, INSERT_RESULT,
                };
                let err = |e| map_error(&self.target, e);
                let conflict = |e: sqlx::Error, what: String| match map_error(&self.target, e) {
                    StoreError::Conflict(_) => StoreError::Conflict(what),
                    other => other,
                };
                if req.status != RequestStatus::PendingApproval || approval.request_id != req.id {
                    return Err(StoreError::Other(format!(
                        "request {} must be pending_approval and match its approval",
                        req.id
                    )));
                }
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
                for (position, (instance, provider)) in req.targets.iter().enumerate() {
                    sqlx::query(INSERT_RESULT)
                        .bind(id)
                        .bind(instance.as_str())
                        .bind(provider.as_str())
                        .bind(int(position))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            conflict(e, format!("connector '{instance}' in request {}", req.id))
                        })?;
                }
                let a = approval;
                sqlx::query(INSERT_APPROVAL)
                    .bind(id)
                    .bind(DbUuid(a.tenant_id.0))
                    .bind(a.action.as_str())
                    .bind(a.username.as_str())
                    .bind(a.request_reason.as_str())
                    .bind(a.channel.as_str())
                    .bind(a.requested_by.as_str())
                    .bind(a.requester_person.as_deref())
                    .bind(json_text(&a.reasons)?)
                    .bind(a.state.as_str())
                    .bind(Ts(a.created_at))
                    .bind(Ts(a.expires_at))
                    .bind(a.decided_by.as_deref())
                    .bind(a.decided_at.map(Ts))
                    .bind(a.decision_reason.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict(e, format!("approval of request {}", req.id)))?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn get_approval(
                &self,
                id: sever_core::RequestId,
            ) -> Result<Option<sever_core::approvals::Approval>, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, policy::*};
                sqlx::query_as::<_, ApprovalRow>(SELECT_APPROVAL)
                    .bind(DbUuid(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn list_approvals(
                &self,
                query: &sever_core::approvals::ApprovalQuery,
            ) -> Result<Vec<sever_core::approvals::Approval>, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, page_size, policy::*};
                let mut qb = sqlx::QueryBuilder::new(LIST_APPROVALS);
                if let Some(tenant) = query.tenant_id {
                    qb.push(" AND tenant_id = ").push_bind(DbUuid(tenant.0));
                }
                if let Some(state) = query.state {
                    qb.push(" AND state = ").push_bind(state.as_str());
                }
                qb.push(" ORDER BY created_at DESC, request_id DESC LIMIT ")
                    .push_bind(page_size(query.limit));
                qb.build_query_as::<ApprovalRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn due_approvals(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<sever_core::approvals::Approval>, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, page_size, policy::*};
                sqlx::query_as::<_, ApprovalRow>(DUE_APPROVALS)
                    .bind(Ts(now))
                    .bind(page_size(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn settle_approval(
                &self,
                s: &sever_core::approvals::Settlement,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use sever_core::approvals::ApprovalState;
                use sever_core::{Outcome, RequestStatus, StoreError};
                use $crate::sql::{codec::*, map_error, policy::*};
                let err = |e| map_error(&self.target, e);
                let sql = match s.state {
                    ApprovalState::Approved | ApprovalState::Denied => SETTLE_DECISION,
                    ApprovalState::Expired => SETTLE_EXPIRY,
                    ApprovalState::Pending => {
                        return Err(StoreError::Other(format!(
                            "cannot settle the approval of request {} as pending",
                            s.request_id
                        )))
                    }
                };
                let id = DbUuid(s.request_id.0);
                // The conditional write comes first (see `record_result`).
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(sql)
                    .bind(id)
                    .bind(s.state.as_str())
                    .bind(s.by.as_deref())
                    .bind(Ts(s.at))
                    .bind(s.reason.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                let status = s.state.request_status();
                let finished = status.is_final().then_some(Ts(s.at));
                let moved = sqlx::query(MOVE_REQUEST)
                    .bind(id)
                    .bind(status.as_str())
                    .bind(finished)
                    .bind(RequestStatus::PendingApproval.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if moved.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Err(StoreError::Corrupt(format!(
                        "request {} has a pending approval but is not pending_approval",
                        s.request_id
                    )));
                }
                if status.is_final() {
                    let why = match s.state {
                        ApprovalState::Denied => format!(
                            "not run: approval denied by {}: {}",
                            s.by.as_deref().unwrap_or("an approver"),
                            s.reason.as_deref().unwrap_or("")
                        ),
                        _ => "not run: the approval expired".to_string(),
                    };
                    let outcome = Outcome::Skipped { message: why };
                    sqlx::query(SKIP_PENDING_RESULTS)
                        .bind(id)
                        .bind(outcome.label())
                        .bind(sqlx::types::Json(&outcome))
                        .bind(Ts(s.at))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_sql_policy_store;

#[cfg(test)]
mod tests {
    use super::*;
    use sever_core::policy::Claim;

    #[test]
    fn claims_take_their_rows_in_one_order_whatever_the_call_order() {
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let count = |k: &str| Claim::Count {
            key: k.into(),
            window_start: at,
            max: 1,
            amount: 1,
        };
        let a = [
            count("b"),
            count("a"),
            Claim::Cooldown {
                key: "a".into(),
                until: at,
            },
        ];
        assert_eq!(lock_order(&a), [1, 0, 2]);
        assert!(DUE_APPROVALS.ends_with("LIMIT $2"));
    }
}
