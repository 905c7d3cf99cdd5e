//! The [`OAuthStore`](sever_core::oauth::OAuthStore) part of the SQL stores:
//! MCP clients registered over OAuth, their authorization codes and tokens,
//! stamped onto each backend by [`impl_sql_oauth_store!`] (which
//! `impl_sql_store!` invokes) for the same reason as the other halves.
//!
//! Taking a code and rotating a refresh token are single conditional
//! statements, so two concurrent uses of one code or one refresh token can
//! never both succeed, on either backend and across replicas.

use sever_core::admin::Scope;
use sever_core::oauth::{OAuthClient, OAuthCode, OAuthToken, TokenKind};
use sever_core::{StoreError, TenantId};

use super::codec::{DbUuid, Ts};
use super::rows::corrupt;

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO oauth_clients (id, name, redirect_uris, \
    metadata, tenant_id, approved_by, approved_at, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

macro_rules! select_client {
    () => {
        "SELECT id, name, redirect_uris, metadata, tenant_id, approved_by, approved_at, \
         created_at FROM oauth_clients"
    };
}

pub(crate) const SELECT_CLIENT: &str = concat!(select_client!(), " WHERE id = $1");
pub(crate) const LIST_CLIENTS: &str = concat!(
    select_client!(),
    " WHERE tenant_id = $1 ORDER BY created_at, id"
);
/// Only a pending client can be approved, and only once.
pub(crate) const APPROVE_CLIENT: &str = "UPDATE oauth_clients SET tenant_id = $2, \
    approved_by = $3, approved_at = $4 WHERE id = $1 AND tenant_id IS NULL";
pub(crate) const DELETE_CLIENT_CODES: &str = "DELETE FROM oauth_codes WHERE client_id = $1";
pub(crate) const DELETE_CLIENT_TOKENS: &str = "DELETE FROM oauth_tokens WHERE client_id = $1";
pub(crate) const DELETE_CLIENT: &str = "DELETE FROM oauth_clients WHERE id = $1 AND tenant_id = $2";
pub(crate) const CLIENT_IN_TENANT: &str =
    "SELECT COUNT(*) FROM oauth_clients WHERE id = $1 AND tenant_id = $2";
pub(crate) const COUNT_PENDING: &str = "SELECT COUNT(*) FROM oauth_clients WHERE tenant_id IS NULL";
/// Binds: limit.
pub(crate) const LIST_PENDING: &str = concat!(
    select_client!(),
    " WHERE tenant_id IS NULL ORDER BY created_at DESC, id LIMIT $1"
);
pub(crate) const PURGE_PENDING_CODES: &str = "DELETE FROM oauth_codes WHERE client_id IN \
    (SELECT id FROM oauth_clients WHERE tenant_id IS NULL AND created_at < $1)";
pub(crate) const PURGE_PENDING_TOKENS: &str = "DELETE FROM oauth_tokens WHERE client_id IN \
    (SELECT id FROM oauth_clients WHERE tenant_id IS NULL AND created_at < $1)";
pub(crate) const PURGE_PENDING: &str =
    "DELETE FROM oauth_clients WHERE tenant_id IS NULL AND created_at < $1";
pub(crate) const PURGE_CODES: &str = "DELETE FROM oauth_codes WHERE expires_at < $1";
pub(crate) const PURGE_TOKENS: &str = "DELETE FROM oauth_tokens WHERE expires_at < $1";

pub(crate) const INSERT_CODE: &str = "INSERT INTO oauth_codes (digest, client_id, tenant_id, \
    user_id, scopes, redirect_uri, code_challenge, resource, expires_at, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
/// Delete and return in one statement: whoever deletes the row has the code.
pub(crate) const TAKE_CODE: &str = "DELETE FROM oauth_codes WHERE digest = $1 RETURNING \
    digest, client_id, tenant_id, user_id, scopes, redirect_uri, code_challenge, resource, \
    expires_at, created_at";

pub(crate) const INSERT_TOKEN: &str = "INSERT INTO oauth_tokens (digest, kind, client_id, \
    tenant_id, user_id, scopes, expires_at, created_at, revoked_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const SELECT_TOKEN: &str = "SELECT digest, kind, client_id, tenant_id, user_id, \
    scopes, expires_at, created_at, revoked_at FROM oauth_tokens WHERE digest = $1";
/// The conditional update that makes a refresh token single-use.
pub(crate) const USE_REFRESH_TOKEN: &str = "UPDATE oauth_tokens SET revoked_at = $2 \
    WHERE digest = $1 AND kind = 'refresh' AND revoked_at IS NULL AND expires_at > $2";
pub(crate) const REVOKE_TOKEN: &str = "UPDATE oauth_tokens SET revoked_at = $3 \
    WHERE digest = $2 AND client_id = $1 AND revoked_at IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    id: String,
    name: String,
    redirect_uris: String,
    metadata: String,
    tenant_id: Option<DbUuid>,
    approved_by: Option<String>,
    approved_at: Option<Ts>,
    created_at: Ts,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CodeRow {
    digest: Vec<u8>,
    client_id: String,
    tenant_id: DbUuid,
    user_id: DbUuid,
    scopes: String,
    redirect_uri: String,
    code_challenge: String,
    resource: Option<String>,
    expires_at: Ts,
    created_at: Ts,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    digest: Vec<u8>,
    kind: String,
    client_id: String,
    tenant_id: DbUuid,
    user_id: DbUuid,
    scopes: String,
    expires_at: Ts,
    created_at: Ts,
    revoked_at: Option<Ts>,
}

fn scopes(text: &str) -> Result<Vec<Scope>, StoreError> {
    text.split_whitespace()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|_| corrupt("scopes", format!("unknown value '{s}'")))
        })
        .collect()
}

/// Redirect URIs as stored: a JSON array of strings.
pub(crate) fn uris_text(uris: &[String]) -> String {
    serde_json::to_string(uris).unwrap_or_else(|_| "[]".into())
}

impl TryFrom<ClientRow> for OAuthClient {
    type Error = StoreError;
    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(OAuthClient {
            id: row.id,
            name: row.name,
            redirect_uris: serde_json::from_str(&row.redirect_uris)
                .map_err(|e| corrupt("redirect_uris", e))?,
            metadata: serde_json::from_str(&row.metadata).map_err(|e| corrupt("metadata", e))?,
            tenant_id: row.tenant_id.map(|t| TenantId(t.0)),
            approved_by: row.approved_by,
            approved_at: row.approved_at.map(|t| t.0),
            created_at: row.created_at.0,
        })
    }
}

impl TryFrom<CodeRow> for OAuthCode {
    type Error = StoreError;
    fn try_from(row: CodeRow) -> Result<Self, StoreError> {
        Ok(OAuthCode {
            digest: row.digest,
            client_id: row.client_id,
            tenant_id: TenantId(row.tenant_id.0),
            user_id: row.user_id.0,
            scopes: scopes(&row.scopes)?,
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            resource: row.resource,
            expires_at: row.expires_at.0,
            created_at: row.created_at.0,
        })
    }
}

impl TryFrom<TokenRow> for OAuthToken {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(OAuthToken {
            digest: row.digest,
            kind: TokenKind::parse(&row.kind)
                .ok_or_else(|| corrupt("kind", format!("unknown value '{}'", row.kind)))?,
            client_id: row.client_id,
            tenant_id: TenantId(row.tenant_id.0),
            user_id: row.user_id.0,
            scopes: scopes(&row.scopes)?,
            expires_at: row.expires_at.0,
            created_at: row.created_at.0,
            revoked_at: row.revoked_at.map(|t| t.0),
        })
    }
}

/// Implements `sever_core::oauth::OAuthStore` for a type shaped as
/// `impl_sql_store!` requires (its `append_audit_in` comes from
/// `impl_sql_admin_store!`).
macro_rules! impl_sql_oauth_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn insert_oauth_tokens_in(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                tokens: &[sever_core::oauth::OAuthToken],
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::admin::map_write_error;
                use $crate::sql::{codec::*, oauth::*, rows::scopes_text};
                for t in tokens {
                    sqlx::query(INSERT_TOKEN)
                        .bind(t.digest.as_slice())
                        .bind(t.kind.as_str())
                        .bind(t.client_id.as_str())
                        .bind(DbUuid(t.tenant_id.0))
                        .bind(DbUuid(t.user_id))
                        .bind(scopes_text(&t.scopes))
                        .bind(Ts(t.expires_at))
                        .bind(Ts(t.created_at))
                        .bind(t.revoked_at.map(Ts))
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| {
                            map_write_error(&self.target, e, t.tenant_id, || {
                                format!("an OAuth token of client {}", t.client_id)
                            })
                        })?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl sever_core::oauth::OAuthStore for $store {
            async fn create_oauth_client(
                &self,
                client: &sever_core::oauth::OAuthClient,
            ) -> Result<(), sever_core::StoreError> {
                use sever_core::StoreError;
                use $crate::sql::{codec::*, map_error, oauth::*};
                let metadata = serde_json::to_string(&client.metadata)
                    .map_err(|e| StoreError::Other(format!("client metadata is not JSON: {e}")))?;
                sqlx::query(INSERT_CLIENT)
                    .bind(client.id.as_str())
                    .bind(client.name.as_str())
                    .bind(uris_text(&client.redirect_uris))
                    .bind(metadata)
                    .bind(client.tenant_id.map(|t| DbUuid(t.0)))
                    .bind(client.approved_by.as_deref())
                    .bind(client.approved_at.map(Ts))
                    .bind(Ts(client.created_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match map_error(&self.target, e) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("OAuth client {}", client.id))
                        }
                        other => other,
                    })?;
                Ok(())
            }

            async fn get_oauth_client(
                &self,
                id: &str,
            ) -> Result<Option<sever_core::oauth::OAuthClient>, sever_core::StoreError> {
                use $crate::sql::{map_error, oauth::*};
                sqlx::query_as::<_, ClientRow>(SELECT_CLIENT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn list_oauth_clients(
                &self,
                tenant: sever_core::TenantId,
            ) -> Result<Vec<sever_core::oauth::OAuthClient>, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, oauth::*};
                sqlx::query_as::<_, ClientRow>(LIST_CLIENTS)
                    .bind(DbUuid(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn approve_oauth_client(
                &self,
                id: &str,
                tenant: sever_core::TenantId,
                approved_by: &str,
                at: chrono::DateTime<chrono::Utc>,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::admin::map_write_error;
                use $crate::sql::{codec::*, map_error, oauth::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(APPROVE_CLIENT)
                    .bind(id)
                    .bind(DbUuid(tenant.0))
                    .bind(approved_by)
                    .bind(Ts(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, tenant, || format!("OAuth client {id}"))
                    })?;
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }

            async fn delete_oauth_client(
                &self,
                tenant: sever_core::TenantId,
                id: &str,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, oauth::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let (owned,): (i64,) = sqlx::query_as(CLIENT_IN_TENANT)
                    .bind(id)
                    .bind(DbUuid(tenant.0))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                if owned == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                for sql in [DELETE_CLIENT_CODES, DELETE_CLIENT_TOKENS] {
                    sqlx::query(sql)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                sqlx::query(DELETE_CLIENT)
                    .bind(id)
                    .bind(DbUuid(tenant.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }

            async fn count_pending_oauth_clients(&self) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::{map_error, oauth::*};
                let (n,): (i64,) = sqlx::query_as(COUNT_PENDING)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn list_pending_oauth_clients(
                &self,
                limit: u32,
            ) -> Result<Vec<sever_core::oauth::OAuthClient>, sever_core::StoreError> {
                use $crate::sql::{map_error, oauth::*};
                sqlx::query_as::<_, ClientRow>(LIST_PENDING)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn purge_stale_oauth(
                &self,
                pending_before: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, oauth::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let mut gone = 0;
                for (sql, at) in [
                    (PURGE_PENDING_CODES, pending_before),
                    (PURGE_PENDING_TOKENS, pending_before),
                    (PURGE_PENDING, pending_before),
                    (PURGE_CODES, now),
                    (PURGE_TOKENS, now),
                ] {
                    gone += sqlx::query(sql)
                        .bind(Ts(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?
                        .rows_affected();
                }
                tx.commit().await.map_err(err)?;
                Ok(gone)
            }

            async fn put_oauth_code(
                &self,
                code: &sever_core::oauth::OAuthCode,
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::admin::map_write_error;
                use $crate::sql::{codec::*, map_error, oauth::*, rows::scopes_text};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                sqlx::query(INSERT_CODE)
                    .bind(code.digest.as_slice())
                    .bind(code.client_id.as_str())
                    .bind(DbUuid(code.tenant_id.0))
                    .bind(DbUuid(code.user_id))
                    .bind(scopes_text(&code.scopes))
                    .bind(code.redirect_uri.as_str())
                    .bind(code.code_challenge.as_str())
                    .bind(code.resource.as_deref())
                    .bind(Ts(code.expires_at))
                    .bind(Ts(code.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        map_write_error(&self.target, e, code.tenant_id, || {
                            format!("an authorization code of client {}", code.client_id)
                        })
                    })?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn take_oauth_code(
                &self,
                digest: &[u8],
            ) -> Result<Option<sever_core::oauth::OAuthCode>, sever_core::StoreError> {
                use $crate::sql::{map_error, oauth::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let row = sqlx::query_as::<_, CodeRow>(TAKE_CODE)
                    .bind(digest)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn put_oauth_tokens(
                &self,
                tokens: &[sever_core::oauth::OAuthToken],
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<(), sever_core::StoreError> {
                use $crate::sql::map_error;
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                self.insert_oauth_tokens_in(&mut tx, tokens).await?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)
            }

            async fn find_oauth_token(
                &self,
                digest: &[u8],
            ) -> Result<Option<sever_core::oauth::OAuthToken>, sever_core::StoreError> {
                use $crate::sql::{map_error, oauth::*};
                sqlx::query_as::<_, TokenRow>(SELECT_TOKEN)
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?
                    .map(TryInto::try_into)
                    .transpose()
            }

            async fn rotate_oauth_refresh_token(
                &self,
                digest: &[u8],
                at: chrono::DateTime<chrono::Utc>,
                issued: &[sever_core::oauth::OAuthToken],
                audit: &sever_core::admin::AuditEvent,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, oauth::*};
                let err = |e| map_error(&self.target, e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(USE_REFRESH_TOKEN)
                    .bind(digest)
                    .bind(Ts(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(err)?;
                    return Ok(false);
                }
                self.insert_oauth_tokens_in(&mut tx, issued).await?;
                self.append_audit_in(&mut tx, audit).await?;
                tx.commit().await.map_err(err)?;
                Ok(true)
            }

            async fn revoke_oauth_token(
                &self,
                client_id: &str,
                digest: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, sever_core::StoreError> {
                use $crate::sql::{codec::*, map_error, oauth::*};
                let done = sqlx::query(REVOKE_TOKEN)
                    .bind(client_id)
                    .bind(digest)
                    .bind(Ts(at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&self.target, e))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_sql_oauth_store;
