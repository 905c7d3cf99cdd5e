//! The [`WebSessionStore`](sever_core::web::WebSessionStore) part of the SQL
//! stores: the admin web UI's sessions and failed sign-in counters, stamped
//! onto each backend by [`impl_sql_session_store!`] (which
//! `impl_sql_store!` invokes) for the same reason as the other halves.
//!
//! Counting a failed sign-in is one upsert whose arithmetic runs in the
//! database, so failures arriving at once (on one replica or several) are
//! each counted and the one that reaches the limit sets the lock.

use sever_core::web::{LoginThrottle, WebSession};
use sever_core::{StoreError, TenantId};

use super::codec::{DbUuid, Ts};
use super::rows::corrupt;

pub(crate) const INSERT_SESSION: &str = "INSERT INTO ui_sessions (digest, user_id, tenant_id, \
    csrf_token, created_at, last_seen_at, expires_at, client_ip, user_agent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const SELECT_SESSION: &str = "SELECT digest, user_id, tenant_id, csrf_token, \
    created_at, last_seen_at, expires_at, client_ip, user_agent FROM ui_sessions \
    WHERE digest = $1";
/// Never moves `last_seen_at` back, whatever order concurrent requests land in.
pub(crate) const TOUCH_SESSION: &str = "UPDATE ui_sessions SET last_seen_at = CASE \
    WHEN last_seen_at < $2 THEN $2 ELSE last_seen_at END WHERE digest = $1";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM ui_sessions WHERE digest = $1";
pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM ui_sessions WHERE user_id = $1";
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM ui_sessions WHERE expires_at < $1";

pub(crate) const SELECT_THROTTLE: &str = "SELECT key, failures, first_failed_at, locked_until \
    FROM ui_login_failures WHERE key = $1";
/// Binds: key, at, window_start, max, lock_until. A counter whose window
/// started before `window_start` starts again at 1; the failure that brings
/// it to `max` sets the lock.
pub(crate) const RECORD_FAILURE: &str = "INSERT INTO ui_login_failures AS f \
    (key, failures, first_failed_at, locked_until) \
    VALUES ($1, 1, $2, CASE WHEN 1 >= $4 THEN $5 ELSE NULL END) \
    ON CONFLICT (key) DO UPDATE SET \
    failures = CASE WHEN f.first_failed_at < $3 THEN 1 ELSE f.failures + 1 END, \
    first_failed_at = CASE WHEN f.first_failed_at < $3 THEN $2 ELSE f.first_failed_at END, \
    locked_until = CASE \
    WHEN (CASE WHEN f.first_failed_at < $3 THEN 1 ELSE f.failures + 1 END) >= $4 THEN $5 \
    ELSE f.locked_until END \
    RETURNING key, failures, first_failed_at, locked_until";
pub(crate) const CLEAR_FAILURES: &str = "DELETE FROM ui_login_failures WHERE key = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    digest: Vec<u8>,
    user_id: DbUuid,
    tenant_id: DbUuid,
    csrf_token: String,
    created_at: Ts,
    last_seen_at: Ts,
    expires_at: Ts,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ThrottleRow {
    key: String,
    failures: i32,
    first_failed_at: Ts,
    locked_until: Option<Ts>,
}

impl From<SessionRow> for WebSession {
    fn from(row: SessionRow) -> Self {
        WebSession {
            digest: row.digest,
            user_id: row.user_id.0,
            tenant_id: TenantId(row.tenant_id.0),
            csrf_token: row.csrf_token,
            created_at: row.created_at.0,
            last_seen_at: row.last_seen_at.0,
            expires_at: row.expires_at.0,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
        }
    }
}

impl TryFrom<ThrottleRow> for LoginThrottle {
    type Error = StoreError;
    fn try_from(row: ThrottleRow) -> Result<Self, StoreError> {
        Ok(LoginThrottle {
            key: row.key,
            failures: u32::try_from(row.failures)
                .map_err(|_| corrupt("failures", format!("{} is negative", row.failures)))?,
            first_failed_at: row.first_failed_at.0,
            locked_until: row.locked_until.map(|t| t.0),
        })
    }
}

/// Implements `sever_core::web::WebSessionStore` for a type shaped as
/// `impl_sql_store!` requires (its `append_audit_in` comes from
/// `impl_sql_admin_store!`).
macro_rules! impl_sql_session_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl sever_core::web::WebSessionStore for $store {
            async fn create_web_session(
                &self,
                s: &sever_core::web::WebSession,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::admin::map_write_error;
                use $crate::sql::{codec::*, map_error, sessions::*};
                let mut tx = self.begin_write().await?;
                sqlx::query(INSERT_SESSION)
                    .bind(s.digest.as_slice())
                    .bind(DbUuid(s.user_id))
                    .bind(DbUuid(s.tenant_id.0))
                    .bind(s.csrf_token.as_str())
                    .bind(Ts(s.created_at))
                    .bind(Ts(s.last_seen_at))
                    .bind(Ts(s.expires_at))
                    .bind(s.client_ip.as_deref())
                    .bind(s.user_agent.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, s.tenant_id, || {
                            "a web session with that id".to_string()
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(|e| map_error(&self.target, e))
            }

            async fn get_web_session(
                &self,
                digest: &[u8],
            ) -> Result<Option<sever_core::web::WebSession>, sever_core::StoreError> {
                use $crate::sql::{map_error, sessions::*};
                Ok(sqlx::query_as::<_, SessionRow>(SELECT_SESSION)
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(Into::into))
            }

            async fn touch_web_session(
                &self,
                digest: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, sessions::*};
                let done = sqlx::query(TOUCH_SESSION)
                    .bind(digest)
                    .bind(Ts(at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_web_session(
                &self,
                digest: &[u8],
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{map_error, sessions::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(DELETE_SESSION)
                    .bind(digest)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }

            async fn delete_user_web_sessions(
                &self,
                user: uuid::Uuid,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, sessions::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(DELETE_USER_SESSIONS)
                    .bind(DbUuid(user))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(done.rows_affected())
            }

            async fn purge_web_sessions(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, sessions::*};
                let done = sqlx::query(PURGE_SESSIONS)
                    .bind(Ts(before))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected())
            }

            async fn get_login_throttle(
                &self,
                key: &str,
            ) -> Result<Option<sever_core::web::LoginThrottle>, sever_core::StoreError> {
                use $crate::sql::{map_error, sessions::*};
                sqlx::query_as::<_, ThrottleRow>(SELECT_THROTTLE)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn record_login_failure(
                &self,
                key: &str,
                policy: &sever_core::web::FailurePolicy,
            ) -> Result<sever_core::web::LoginThrottle, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, sessions::*};
                let max = i32::try_from(policy.max).unwrap_or(i32::MAX);
                sqlx::query_as::<_, ThrottleRow>(RECORD_FAILURE)
                    .bind(key)
                    .bind(Ts(policy.at))
                    .bind(Ts(policy.window_start))
                    .bind(max)
                    .bind(Ts(policy.lock_until))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .try_into()
            }

            async fn clear_login_failures(&self, key: &str) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{map_error, sessions::*};
                sqlx::query(CLEAR_FAILURES)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_session_store;
