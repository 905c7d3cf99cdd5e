//! The [`AdminStore`](sever_core::admin::AdminStore) half of the SQL stores:
//! tenants, their settings, people, API keys, connector instances, the
//! idempotency cache and the audit chain, stamped onto each backend by
//! [`impl_sql_admin_store!`] (which `impl_sql_store!` invokes) for the same
//! reason the `Store` half is a macro.
//!
//! Every mutation that is audited writes its row and its audit record in one
//! write transaction: the mutation first, then the record, so the audit lock
//! is only ever taken last and held briefly. The chain is one sequence
//! across all tenants; appending reads its head and writes the next record
//! while no other appender can (PostgreSQL: an exclusive table lock; SQLite:
//! the write lock `BEGIN IMMEDIATE` takes), so no two records share a `seq`
//! or a `prev_hash`.

use sever_core::{StoreError, TenantId};

use super::map_error;

/// Statements that select one entity's columns, with a filter appended by
/// `concat!`.
macro_rules! select {
    (tenant) => {
        "SELECT id, name, created_at FROM tenants"
    };
    (settings) => {
        "SELECT tenant_id, revocation_enabled, webhook_enabled, mcp_enabled, \
         webhook_require_timestamp, webhook_secret_key_id, webhook_secret_blob, updated_at \
         FROM tenant_settings"
    };
    (user) => {
        "SELECT id, tenant_id, email, role, password_hash, created_at, disabled FROM users"
    };
    (api_key) => {
        "SELECT id, tenant_id, name, prefix, digest, scopes, created_by, created_at, \
         last_used_at, revoked_at FROM api_keys"
    };
    (connector) => {
        "SELECT tenant_id, name, provider, enabled, settings, secrets_key_id, secrets_blob, \
         last_test_at, last_test_ok, last_test_detail, updated_at FROM connector_instances"
    };
}

pub(crate) const INSERT_TENANT: &str =
    "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
pub(crate) const SELECT_TENANT: &str = concat!(select!(tenant), " WHERE id = $1");
pub(crate) const LIST_TENANTS: &str = concat!(select!(tenant), " ORDER BY created_at, id");

pub(crate) const SELECT_SETTINGS: &str = concat!(select!(settings), " WHERE tenant_id = $1");
pub(crate) const ALL_SETTINGS: &str = concat!(select!(settings), " ORDER BY tenant_id");
pub(crate) const UPSERT_SETTINGS: &str = "INSERT INTO tenant_settings (tenant_id, \
    revocation_enabled, webhook_enabled, mcp_enabled, webhook_require_timestamp, \
    webhook_secret_key_id, webhook_secret_blob, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id) DO UPDATE SET \
    revocation_enabled = excluded.revocation_enabled, \
    webhook_enabled = excluded.webhook_enabled, mcp_enabled = excluded.mcp_enabled, \
    webhook_require_timestamp = excluded.webhook_require_timestamp, \
    webhook_secret_key_id = excluded.webhook_secret_key_id, \
    webhook_secret_blob = excluded.webhook_secret_blob, updated_at = excluded.updated_at";

pub(crate) const INSERT_USER: &str = "INSERT INTO users \
    (id, tenant_id, email, role, password_hash, created_at, disabled) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const SELECT_USER: &str = concat!(select!(user), " WHERE id = $1");
/// The unique index is on `lower(email)`, so this is the one way to match.
pub(crate) const FIND_USER: &str = concat!(
    select!(user),
    " WHERE tenant_id = $1 AND lower(email) = lower($2)"
);
pub(crate) const LIST_USERS: &str = concat!(
    select!(user),
    " WHERE tenant_id = $1 ORDER BY lower(email), id"
);
/// The id, tenant and creation time are fixed; everything else may change.
pub(crate) const UPDATE_USER: &str = "UPDATE users SET \
    email = $3, role = $4, password_hash = $5, disabled = $6 WHERE id = $1 AND tenant_id = $2";

pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, tenant_id, name, prefix, \
    digest, scopes, created_by, created_at, last_used_at, revoked_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const FIND_API_KEY: &str = concat!(select!(api_key), " WHERE digest = $1");
pub(crate) const LIST_API_KEYS: &str = concat!(
    select!(api_key),
    " WHERE tenant_id = $1 ORDER BY created_at, id"
);
/// Never moves `last_used_at` back, whatever order concurrent uses land in.
pub(crate) const TOUCH_API_KEY: &str = "UPDATE api_keys SET last_used_at = CASE \
    WHEN last_used_at IS NULL OR last_used_at < $2 THEN $2 ELSE last_used_at END WHERE id = $1";
pub(crate) const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = $3 \
    WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL";

pub(crate) const UPSERT_CONNECTOR: &str = "INSERT INTO connector_instances (tenant_id, name, \
    provider, enabled, settings, secrets_key_id, secrets_blob, last_test_at, last_test_ok, \
    last_test_detail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
    ON CONFLICT (tenant_id, name) DO UPDATE SET provider = excluded.provider, \
    enabled = excluded.enabled, settings = excluded.settings, \
    secrets_key_id = excluded.secrets_key_id, secrets_blob = excluded.secrets_blob, \
    last_test_at = excluded.last_test_at, last_test_ok = excluded.last_test_ok, \
    last_test_detail = excluded.last_test_detail, updated_at = excluded.updated_at";
pub(crate) const SELECT_CONNECTOR: &str =
    concat!(select!(connector), " WHERE tenant_id = $1 AND name = $2");
pub(crate) const LIST_CONNECTORS: &str =
    concat!(select!(connector), " WHERE tenant_id = $1 ORDER BY name");
pub(crate) const ALL_CONNECTORS: &str = concat!(select!(connector), " ORDER BY tenant_id, name");
pub(crate) const DELETE_CONNECTOR: &str =
    "DELETE FROM connector_instances WHERE tenant_id = $1 AND name = $2";

/// The last record of the chain, read by an appender that holds the audit
/// lock (PostgreSQL) or the write lock (SQLite) until it commits.
pub(crate) const SELECT_AUDIT_HEAD: &str =
    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

/// Blocks other appenders (not readers) until commit. A table lock stays
/// inside the connection's schema, where an advisory lock would be shared
/// by every Sever schema of the database.
pub(crate) const LOCK_AUDIT_POSTGRES: &str = "LOCK TABLE audit_log IN EXCLUSIVE MODE";

macro_rules! insert_audit {
    () => {
        "INSERT INTO audit_log (seq, tenant_id, at, actor, role, channel, source, client_ip, \
        action, target, reason, decision, result, request_id, detail, prev_hash, hash) "
    };
}

pub(crate) const INSERT_AUDIT: &str = concat!(
    insert_audit!(),
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);

/// [`INSERT_AUDIT`] for many records: followed by one `VALUES` row each.
pub(crate) const INSERT_AUDITS: &str = insert_audit!();

/// The audit listing's fixed part; filters, order and limit are appended.
pub(crate) const AUDIT_SELECT: &str = "SELECT seq, tenant_id, at, actor, role, channel, \
    source, client_ip, action, target, reason, decision, result, request_id, detail, \
    prev_hash, hash FROM audit_log WHERE 1 = 1";

/// Audit page size when none is asked for, and the largest allowed.
pub(crate) const AUDIT_DEFAULT_LIMIT: u32 = 100;
pub(crate) const AUDIT_MAX_LIMIT: u32 = 10_000;

pub(crate) const SELECT_IDEMPOTENT: &str = "SELECT tenant_id, key, body_digest, status, \
    response, created_at FROM idempotency_keys WHERE tenant_id = $1 AND key = $2";
/// The first writer of a key wins; later ones change nothing.
pub(crate) const INSERT_IDEMPOTENT: &str = "INSERT INTO idempotency_keys \
    (tenant_id, key, body_digest, status, response, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, key) DO NOTHING";

/// The audit page size actually used for a requested limit.
pub(crate) fn audit_page_size(limit: u32) -> i64 {
    i64::from(match limit {
        0 => AUDIT_DEFAULT_LIMIT,
        n => n.min(AUDIT_MAX_LIMIT),
    })
}

/// Map the error of a write into a tenant's rows: a missing tenant (the
/// foreign key) is `NotFound`, a duplicate is a `Conflict` naming `what`.
pub(crate) fn map_write_error(
    target: &str,
    err: sqlx::Error,
    tenant: TenantId,
    what: impl FnOnce() -> String,
) -> StoreError {
    if let sqlx::Error::Database(e) = &err {
        if e.is_foreign_key_violation() {
            return StoreError::NotFound(format!("tenant {tenant}"));
        }
        if e.is_unique_violation() {
            return StoreError::Conflict(what());
        }
    }
    map_error(target, err)
}

/// `event` as the audit record numbered `seq` after the one hashed
/// `prev_hash` stores it: `at` cut to microseconds, its hash, and its detail
/// as JSON text. Every appender (one at a time, or a batch in order) uses it.
pub(crate) fn chained(
    prev_hash: &str,
    seq: i64,
    event: &sever_core::admin::AuditEvent,
) -> Result<(sever_core::admin::AuditEvent, String, String), StoreError> {
    let mut event = event.clone();
    event.at = super::codec::Ts(event.at).stored();
    let hash = sever_core::admin::audit_hash(prev_hash, seq, &event);
    let detail = serde_json::to_string(&event.detail)
        .map_err(|e| StoreError::Other(format!("audit detail is not JSON: {e}")))?;
    Ok((event, hash, detail))
}

/// Implements `sever_core::admin::AdminStore`, plus the inherent
/// `append_audit_in` that `impl_sql_store!`'s `insert_request` uses, for a
/// type with `pool`, `target`, the inherent `begin_write()` (a transaction
/// that writes; on SQLite it must hold the write lock from its start) and
/// the associated const `LOCK_AUDIT: Option<&str>` (what to run before
/// reading the chain's head, if `begin_write` alone does not serialize
/// appenders). `$db` is the backend's `sqlx::Database`.
macro_rules! impl_sql_admin_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Append `event` to the audit chain inside `tx`: number it after
            /// the chain's last record and hash it onto that record's hash.
            /// The returned record is what reading it back gives (`at` cut
            /// to microseconds).
            async fn append_audit_in(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &sever_core::admin::AuditEvent,
            ) -> Result<sever_core::admin::AuditRecord, sever_core::StoreError> {
                use sever_core::admin::{AuditRecord, GENESIS_HASH};
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                if let Some(lock) = Self::LOCK_AUDIT {
                    sqlx::query(lock).execute(&mut **tx).await.map_err(err)?;
                }
                let head: Option<(i64, String)> = sqlx::query_as(SELECT_AUDIT_HEAD)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(err)?;
                let (seq, prev_hash) = match head {
                    Some((seq, hash)) => (seq + 1, hash),
                    None => (1, GENESIS_HASH.to_string()),
                };
                let (event, hash, detail) = chained(&prev_hash, seq, event)?;
                sqlx::query(INSERT_AUDIT)
                    .bind(seq)
                    .bind(DbUuid(event.tenant_id.0))
                    .bind(Ts(event.at))
                    .bind(event.actor.as_str())
                    .bind(event.role.as_deref())
                    .bind(event.channel.as_str())
                    .bind(event.source.as_deref())
                    .bind(event.client_ip.as_deref())
                    .bind(event.action.as_str())
                    .bind(event.target.as_deref())
                    .bind(event.reason.as_deref())
                    .bind(event.decision.as_str())
                    .bind(event.result.as_deref())
                    .bind(event.request_id.map(|id| DbUuid(id.0)))
                    .bind(JsonText(detail))
                    .bind(prev_hash.as_str())
                    .bind(hash.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(err)?;
                Ok(AuditRecord {
                    seq,
                    event,
                    prev_hash,
                    hash,
                })
            }
        }

        #[async_trait::async_trait]
        impl sever_core::admin::AdminStore for $store {
            async fn create_tenant(
                &self,
                tenant: &sever_core::admin::Tenant,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                sqlx::query(INSERT_TENANT)
                    .bind(DbUuid(tenant.id.0))
                    .bind(tenant.name.as_str())
                    .bind(Ts(tenant.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, tenant.id, || {
                            format!("tenant {}", tenant.id)
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn get_tenant(
                &self,
                id: sever_core::TenantId,
            ) -> Result<Option<sever_core::admin::Tenant>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                let row = sqlx::query_as::<_, TenantRow>(SELECT_TENANT)
                    .bind(DbUuid(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(row.map(Into::into))
            }

            async fn list_tenants(
                &self,
            ) -> Result<Vec<sever_core::admin::Tenant>, sever_core::StoreError> {
                use $crate::sql::{admin::*, map_error, rows::*};
                let rows = sqlx::query_as::<_, TenantRow>(LIST_TENANTS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get_settings(
                &self,
                tenant: sever_core::TenantId,
            ) -> Result<sever_core::admin::TenantSettings, sever_core::StoreError> {
                use sever_core::admin::TenantSettings;
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                let row = sqlx::query_as::<_, SettingsRow>(SELECT_SETTINGS)
                    .bind(DbUuid(tenant.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                match row {
                    Some(row) => TenantSettings::try_from(row),
                    // Never saved: every switch off, "updated" at the epoch.
                    None => Ok(TenantSettings::new(
                        tenant,
                        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                    )),
                }
            }

            async fn put_settings(
                &self,
                settings: &sever_core::admin::TenantSettings,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let secret = settings.webhook_secret.as_ref();
                let mut tx = self.begin_write().await?;
                sqlx::query(UPSERT_SETTINGS)
                    .bind(DbUuid(settings.tenant_id.0))
                    .bind(settings.revocation_enabled)
                    .bind(settings.webhook_enabled)
                    .bind(settings.mcp_enabled)
                    .bind(settings.webhook_require_timestamp)
                    .bind(secret.map(|s| s.key_id.as_str()))
                    .bind(secret.map(|s| s.blob.as_slice()))
                    .bind(Ts(settings.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, settings.tenant_id, || {
                            format!("settings of tenant {}", settings.tenant_id)
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn create_user(
                &self,
                user: &sever_core::admin::User,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                sqlx::query(INSERT_USER)
                    .bind(DbUuid(user.id))
                    .bind(DbUuid(user.tenant_id.0))
                    .bind(user.email.as_str())
                    .bind(user.role.as_str())
                    .bind(user.password_hash.as_str())
                    .bind(Ts(user.created_at))
                    .bind(user.disabled)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, user.tenant_id, || {
                            format!(
                                "user '{}' (or id {}) in tenant {}",
                                user.email, user.id, user.tenant_id
                            )
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn get_user(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<sever_core::admin::User>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, UserRow>(SELECT_USER)
                    .bind(DbUuid(id))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn find_user(
                &self,
                tenant: sever_core::TenantId,
                email: &str,
            ) -> Result<Option<sever_core::admin::User>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, UserRow>(FIND_USER)
                    .bind(DbUuid(tenant.0))
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn list_users(
                &self,
                tenant: sever_core::TenantId,
            ) -> Result<Vec<sever_core::admin::User>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, UserRow>(LIST_USERS)
                    .bind(DbUuid(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn update_user(
                &self,
                user: &sever_core::admin::User,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(UPDATE_USER)
                    .bind(DbUuid(user.id))
                    .bind(DbUuid(user.tenant_id.0))
                    .bind(user.email.as_str())
                    .bind(user.role.as_str())
                    .bind(user.password_hash.as_str())
                    .bind(user.disabled)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, user.tenant_id, || {
                            format!("user '{}' in tenant {}", user.email, user.tenant_id)
                        })
                    })?;
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Err(StoreError::NotFound(format!(
                        "user {} in tenant {}",
                        user.id, user.tenant_id
                    )));
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn create_api_key(
                &self,
                key: &sever_core::admin::ApiKey,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::scopes_text};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                sqlx::query(INSERT_API_KEY)
                    .bind(DbUuid(key.id))
                    .bind(DbUuid(key.tenant_id.0))
                    .bind(key.name.as_str())
                    .bind(key.prefix.as_str())
                    .bind(key.digest.as_slice())
                    .bind(scopes_text(&key.scopes))
                    .bind(key.created_by.as_str())
                    .bind(Ts(key.created_at))
                    .bind(key.last_used_at.map(Ts))
                    .bind(key.revoked_at.map(Ts))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, key.tenant_id, || {
                            format!("API key {} (or one with the same digest)", key.id)
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn find_api_key(
                &self,
                digest: &[u8],
            ) -> Result<Option<sever_core::admin::ApiKey>, sever_core::StoreError> {
                use $crate::sql::{admin::*, map_error, rows::*};
                sqlx::query_as::<_, ApiKeyRow>(FIND_API_KEY)
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn list_api_keys(
                &self,
                tenant: sever_core::TenantId,
            ) -> Result<Vec<sever_core::admin::ApiKey>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, ApiKeyRow>(LIST_API_KEYS)
                    .bind(DbUuid(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn touch_api_key(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{admin::*, codec::*, map_error};
                let done = sqlx::query(TOUCH_API_KEY)
                    .bind(DbUuid(id))
                    .bind(Ts(at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("API key {id}")));
                }
                Ok(())
            }

            async fn revoke_api_key(
                &self,
                tenant: sever_core::TenantId,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(REVOKE_API_KEY)
                    .bind(DbUuid(tenant.0))
                    .bind(DbUuid(id))
                    .bind(Ts(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    // Nothing changed, so nothing is recorded as done.
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }

            async fn put_connector(
                &self,
                c: &sever_core::admin::StoredConnector,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let secrets = c.secrets.as_ref();
                let mut tx = self.begin_write().await?;
                sqlx::query(UPSERT_CONNECTOR)
                    .bind(DbUuid(c.tenant_id.0))
                    .bind(c.name.as_str())
                    .bind(c.provider.as_str())
                    .bind(c.enabled)
                    .bind(sqlx::types::Json(&c.settings))
                    .bind(secrets.map(|s| s.key_id.as_str()))
                    .bind(secrets.map(|s| s.blob.as_slice()))
                    .bind(c.last_test_at.map(Ts))
                    .bind(c.last_test_ok)
                    .bind(c.last_test_detail.as_deref())
                    .bind(Ts(c.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, c.tenant_id, || {
                            format!("connector '{}' in tenant {}", c.name, c.tenant_id)
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn get_connector(
                &self,
                tenant: sever_core::TenantId,
                name: &sever_core::InstanceName,
            ) -> Result<Option<sever_core::admin::StoredConnector>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, ConnectorRow>(SELECT_CONNECTOR)
                    .bind(DbUuid(tenant.0))
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn list_connectors(
                &self,
                tenant: sever_core::TenantId,
            ) -> Result<Vec<sever_core::admin::StoredConnector>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, ConnectorRow>(LIST_CONNECTORS)
                    .bind(DbUuid(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn delete_connector(
                &self,
                tenant: sever_core::TenantId,
                name: &sever_core::InstanceName,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(DELETE_CONNECTOR)
                    .bind(DbUuid(tenant.0))
                    .bind(name.as_str())
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

            async fn all_connectors(
                &self,
            ) -> Result<Vec<sever_core::admin::StoredConnector>, sever_core::StoreError> {
                use $crate::sql::{admin::*, map_error, rows::*};
                sqlx::query_as::<_, ConnectorRow>(ALL_CONNECTORS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn all_settings(
                &self,
            ) -> Result<Vec<sever_core::admin::TenantSettings>, sever_core::StoreError> {
                use $crate::sql::{admin::*, map_error, rows::*};
                sqlx::query_as::<_, SettingsRow>(ALL_SETTINGS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn append_audit(
                &self,
                event: &sever_core::admin::AuditEvent,
            ) -> Result<sever_core::admin::AuditRecord, sever_core::StoreError> {
                use $crate::sql::map_error;
                let mut tx = self.begin_write().await?;
                let record = self.append_audit_in(&mut tx, event).await?;
                tx.commit().await.map_err(|e| map_error(&self.target, e))?;
                Ok(record)
            }

            async fn list_audit(
                &self,
                query: &sever_core::admin::AuditQuery,
            ) -> Result<Vec<sever_core::admin::AuditRecord>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                let mut qb = sqlx::QueryBuilder::new(AUDIT_SELECT);
                if let Some(tenant) = query.tenant_id {
                    qb.push(" AND tenant_id = ").push_bind(DbUuid(tenant.0));
                }
                if let Some(after) = query.after_seq {
                    qb.push(" AND seq > ").push_bind(after);
                }
                qb.push(" ORDER BY seq LIMIT ")
                    .push_bind(audit_page_size(query.limit));
                qb.build_query_as::<AuditRow>()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn get_idempotent(
                &self,
                tenant: sever_core::TenantId,
                key: &str,
            ) -> Result<Option<sever_core::admin::IdempotentResponse>, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*, map_error, rows::*};
                sqlx::query_as::<_, IdempotentRow>(SELECT_IDEMPOTENT)
                    .bind(DbUuid(tenant.0))
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn put_idempotent(
                &self,
                r: &sever_core::admin::IdempotentResponse,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{admin::*, codec::*};
                let done = sqlx::query(INSERT_IDEMPOTENT)
                    .bind(DbUuid(r.tenant_id.0))
                    .bind(r.key.as_str())
                    .bind(r.body_digest.as_slice())
                    .bind(i32::from(r.status))
                    .bind(sqlx::types::Json(&r.response))
                    .bind(Ts(r.created_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, r.tenant_id, || {
                            format!("idempotency key '{}' in tenant {}", r.key, r.tenant_id)
                        })
                    })?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_sql_admin_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_pages_default_to_100_and_are_capped_at_10000() {
        assert_eq!(audit_page_size(0), 100);
        assert_eq!(audit_page_size(7), 7);
        assert_eq!(audit_page_size(10_000), 10_000);
        assert_eq!(audit_page_size(u32::MAX), 10_000);
    }

    #[test]
    fn selects_end_with_their_filter() {
        assert!(FIND_USER.starts_with("SELECT id, tenant_id, email"));
        assert!(FIND_USER.ends_with("lower(email) = lower($2)"));
        assert!(SELECT_CONNECTOR.contains("FROM connector_instances WHERE tenant_id = $1"));
    }
}
