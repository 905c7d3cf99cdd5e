//! Rows as both backends return them, and their conversion into domain
//! types. Written once: `FromRow` is derived generically, and every stored
//! label is parsed back through the domain's own parsers, so a value the
//! domain would reject surfaces as [`StoreError::Corrupt`] naming the column.

use std::collections::HashMap;

use serde::de::{DeserializeOwned, IntoDeserializer};
use sever_core::admin::{
    ApiKey, AuditEvent, AuditRecord, IdempotentResponse, Role, Scope, StoredConnector, Tenant,
    TenantSettings, User,
};
use sever_core::{
    Attempt, CachedSealedToken, ConnectorKey, ConnectorResult, InstanceName, Outcome, Reason,
    RequestId, RequestStatus, RequestSummary, RevocationRequest, Sealed, StoreError, TenantId,
    UnfinishedRequest, Username,
};
use sqlx::types::Json;

use super::codec::{DbUuid, JsonText, Ts};

#[derive(sqlx::FromRow)]
pub(crate) struct RequestRow {
    id: DbUuid,
    tenant_id: DbUuid,
    username: String,
    reason: String,
    channel: String,
    requested_by: String,
    status: String,
    created_at: Ts,
    started_at: Option<Ts>,
    finished_at: Option<Ts>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ResultRow {
    instance: String,
    provider: String,
    outcome: Option<String>,
    outcome_detail: Option<Json<Outcome>>,
    subject_id: Option<String>,
    finished_at: Option<Ts>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    instance: String,
    step: String,
    number: i64,
    started_at: Ts,
    duration_ms: i64,
    http_status: Option<i32>,
    provider_code: Option<String>,
    provider_request_id: Option<String>,
    error_class: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: DbUuid,
    tenant_id: DbUuid,
    username: String,
    status: String,
    channel: String,
    created_at: Ts,
    finished_at: Option<Ts>,
    connectors: i64,
    failed: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UnfinishedRow {
    id: DbUuid,
    status: String,
    lease_owner: Option<String>,
    lease_expires_at: Option<Ts>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    key_id: String,
    blob: Vec<u8>,
    expires_at: Ts,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: DbUuid,
    name: String,
    created_at: Ts,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SettingsRow {
    tenant_id: DbUuid,
    revocation_enabled: bool,
    webhook_enabled: bool,
    mcp_enabled: bool,
    webhook_require_timestamp: bool,
    webhook_secret_key_id: Option<String>,
    webhook_secret_blob: Option<Vec<u8>>,
    updated_at: Ts,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: DbUuid,
    tenant_id: DbUuid,
    email: String,
    role: String,
    password_hash: String,
    created_at: Ts,
    disabled: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: DbUuid,
    tenant_id: DbUuid,
    name: String,
    prefix: String,
    digest: Vec<u8>,
    scopes: String,
    created_by: String,
    created_at: Ts,
    last_used_at: Option<Ts>,
    revoked_at: Option<Ts>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectorRow {
    tenant_id: DbUuid,
    name: String,
    provider: String,
    enabled: bool,
    settings: Json<serde_json::Value>,
    secrets_key_id: Option<String>,
    secrets_blob: Option<Vec<u8>>,
    last_test_at: Option<Ts>,
    last_test_ok: Option<bool>,
    last_test_detail: Option<String>,
    updated_at: Ts,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    tenant_id: DbUuid,
    at: Ts,
    actor: String,
    role: Option<String>,
    channel: String,
    source: Option<String>,
    client_ip: Option<String>,
    action: String,
    target: Option<String>,
    reason: Option<String>,
    decision: String,
    result: Option<String>,
    request_id: Option<DbUuid>,
    detail: JsonText,
    prev_hash: String,
    hash: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotentRow {
    tenant_id: DbUuid,
    key: String,
    body_digest: Vec<u8>,
    status: i32,
    response: Json<serde_json::Value>,
    created_at: Ts,
}

pub(crate) fn corrupt(column: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {problem}"))
}

/// Parse a stored label (`"okta"`, `"rate_limited"`, ...) through the domain
/// type's serde names, which are the names the store writes.
fn label<T: DeserializeOwned>(column: &str, value: &str) -> Result<T, StoreError> {
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(value))
        .map_err(|_| corrupt(column, format!("unknown value '{value}'")))
}

fn count(column: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(column, format!("{value} is out of range")))
}

fn status(value: &str) -> Result<RequestStatus, StoreError> {
    value
        .parse()
        .map_err(|_| corrupt("status", format!("unknown value '{value}'")))
}

impl RequestRow {
    pub(crate) fn into_request(
        self,
        results: Vec<ResultRow>,
        attempts: Vec<AttemptRow>,
    ) -> Result<RevocationRequest, StoreError> {
        let mut by_instance: HashMap<String, Vec<Attempt>> = HashMap::new();
        for row in attempts {
            let (instance, attempt) = row.into_attempt()?;
            by_instance.entry(instance).or_default().push(attempt);
        }
        let results = results
            .into_iter()
            .map(|r| {
                let attempts = by_instance.remove(&r.instance).unwrap_or_default();
                r.into_result(attempts)
            })
            .collect::<Result<_, _>>()?;
        Ok(RevocationRequest {
            id: RequestId(self.id.0),
            tenant_id: TenantId(self.tenant_id.0),
            username: Username::parse(&self.username).map_err(|e| corrupt("username", e))?,
            reason: Reason::parse(&self.reason).map_err(|e| corrupt("reason", e))?,
            channel: label("channel", &self.channel)?,
            requested_by: self.requested_by,
            status: status(&self.status)?,
            created_at: self.created_at.0,
            started_at: self.started_at.map(|t| t.0),
            finished_at: self.finished_at.map(|t| t.0),
            results,
        })
    }
}

impl ResultRow {
    fn into_result(self, attempts: Vec<Attempt>) -> Result<ConnectorResult, StoreError> {
        let outcome = match (self.outcome, self.outcome_detail) {
            (None, _) => None,
            (Some(_), Some(Json(detail))) => Some(detail),
            (Some(l), None) => {
                return Err(corrupt(
                    "outcome_detail",
                    format!("missing for outcome '{l}' of connector '{}'", self.instance),
                ))
            }
        };
        Ok(ConnectorResult {
            instance: InstanceName::parse(&self.instance).map_err(|e| corrupt("instance", e))?,
            provider: label::<ConnectorKey>("provider", &self.provider)?,
            outcome,
            subject_id: self.subject_id,
            finished_at: self.finished_at.map(|t| t.0),
            attempts,
        })
    }
}

impl AttemptRow {
    fn into_attempt(self) -> Result<(String, Attempt), StoreError> {
        let attempt = Attempt {
            step: label("step", &self.step)?,
            number: count("number", self.number)?,
            started_at: self.started_at.0,
            duration_ms: u64::try_from(self.duration_ms)
                .map_err(|_| corrupt("duration_ms", "is negative"))?,
            http_status: self
                .http_status
                .map(|s| u16::try_from(s).map_err(|_| corrupt("http_status", s)))
                .transpose()?,
            provider_code: self.provider_code,
            provider_request_id: self.provider_request_id,
            error_class: self
                .error_class
                .map(|c| label("error_class", &c))
                .transpose()?,
        };
        Ok((self.instance, attempt))
    }
}

impl TryFrom<SummaryRow> for RequestSummary {
    type Error = StoreError;
    fn try_from(row: SummaryRow) -> Result<Self, StoreError> {
        Ok(RequestSummary {
            id: RequestId(row.id.0),
            tenant_id: TenantId(row.tenant_id.0),
            username: Username::parse(&row.username).map_err(|e| corrupt("username", e))?,
            status: status(&row.status)?,
            channel: label("channel", &row.channel)?,
            created_at: row.created_at.0,
            finished_at: row.finished_at.map(|t| t.0),
            connectors: count("connectors", row.connectors)?,
            failed: count("failed", row.failed)?,
        })
    }
}

impl TryFrom<UnfinishedRow> for UnfinishedRequest {
    type Error = StoreError;
    fn try_from(row: UnfinishedRow) -> Result<Self, StoreError> {
        Ok(UnfinishedRequest {
            id: RequestId(row.id.0),
            status: status(&row.status)?,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at.map(|t| t.0),
        })
    }
}

impl From<TokenRow> for CachedSealedToken {
    fn from(row: TokenRow) -> Self {
        CachedSealedToken {
            sealed: Sealed {
                key_id: row.key_id,
                blob: row.blob,
            },
            expires_at: row.expires_at.0,
        }
    }
}

/// A sealed value kept as two nullable columns: both or neither.
fn sealed(
    column: &str,
    key_id: Option<String>,
    blob: Option<Vec<u8>>,
) -> Result<Option<Sealed>, StoreError> {
    match (key_id, blob) {
        (Some(key_id), Some(blob)) => Ok(Some(Sealed { key_id, blob })),
        (None, None) => Ok(None),
        _ => Err(corrupt(
            column,
            "has a key id without a blob, or a blob without a key id",
        )),
    }
}

/// Scopes as stored: space-separated names.
pub(crate) fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        Tenant {
            id: TenantId(row.id.0),
            name: row.name,
            created_at: row.created_at.0,
        }
    }
}

impl TryFrom<SettingsRow> for TenantSettings {
    type Error = StoreError;
    fn try_from(row: SettingsRow) -> Result<Self, StoreError> {
        Ok(TenantSettings {
            tenant_id: TenantId(row.tenant_id.0),
            revocation_enabled: row.revocation_enabled,
            webhook_enabled: row.webhook_enabled,
            mcp_enabled: row.mcp_enabled,
            webhook_require_timestamp: row.webhook_require_timestamp,
            webhook_secret: sealed(
                "webhook_secret",
                row.webhook_secret_key_id,
                row.webhook_secret_blob,
            )?,
            updated_at: row.updated_at.0,
        })
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: row.id.0,
            tenant_id: TenantId(row.tenant_id.0),
            email: row.email,
            role: row
                .role
                .parse::<Role>()
                .map_err(|_| corrupt("role", format!("unknown value '{}'", row.role)))?,
            password_hash: row.password_hash,
            created_at: row.created_at.0,
            disabled: row.disabled,
        })
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let scopes = row
            .scopes
            .split_whitespace()
            .map(|s| {
                s.parse::<Scope>()
                    .map_err(|_| corrupt("scopes", format!("unknown value '{s}'")))
            })
            .collect::<Result<_, _>>()?;
        Ok(ApiKey {
            id: row.id.0,
            tenant_id: TenantId(row.tenant_id.0),
            name: row.name,
            prefix: row.prefix,
            digest: row.digest,
            scopes,
            created_by: row.created_by,
            created_at: row.created_at.0,
            last_used_at: row.last_used_at.map(|t| t.0),
            revoked_at: row.revoked_at.map(|t| t.0),
        })
    }
}

impl TryFrom<ConnectorRow> for StoredConnector {
    type Error = StoreError;
    fn try_from(row: ConnectorRow) -> Result<Self, StoreError> {
        Ok(StoredConnector {
            tenant_id: TenantId(row.tenant_id.0),
            name: InstanceName::parse(&row.name).map_err(|e| corrupt("name", e))?,
            provider: label::<ConnectorKey>("provider", &row.provider)?,
            enabled: row.enabled,
            settings: row.settings.0,
            secrets: sealed("secrets", row.secrets_key_id, row.secrets_blob)?,
            last_test_at: row.last_test_at.map(|t| t.0),
            last_test_ok: row.last_test_ok,
            last_test_detail: row.last_test_detail,
            updated_at: row.updated_at.0,
        })
    }
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let detail = serde_json::from_str(&row.detail.0).map_err(|e| corrupt("detail", e))?;
        Ok(AuditRecord {
            seq: row.seq,
            event: AuditEvent {
                tenant_id: TenantId(row.tenant_id.0),
                at: row.at.0,
                actor: row.actor,
                role: row.role,
                channel: label("channel", &row.channel)?,
                source: row.source,
                client_ip: row.client_ip,
                action: row.action,
                target: row.target,
                reason: row.reason,
                decision: row.decision,
                result: row.result,
                request_id: row.request_id.map(|id| RequestId(id.0)),
                detail,
            },
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

impl TryFrom<IdempotentRow> for IdempotentResponse {
    type Error = StoreError;
    fn try_from(row: IdempotentRow) -> Result<Self, StoreError> {
        Ok(IdempotentResponse {
            tenant_id: TenantId(row.tenant_id.0),
            key: row.key,
            body_digest: row.body_digest,
            status: u16::try_from(row.status).map_err(|_| corrupt("status", row.status))?,
            response: row.response.0,
            created_at: row.created_at.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sever_core::{Channel, ErrorClass, Step};

    #[test]
    fn stored_labels_parse_through_the_domain_names() {
        assert_eq!(
            label::<ErrorClass>("c", "rate_limited").unwrap(),
            ErrorClass::RateLimited
        );
        assert_eq!(label::<Step>("s", "revoke").unwrap(), Step::Revoke);
        assert_eq!(label::<Channel>("ch", "mcp").unwrap(), Channel::Mcp);
        assert_eq!(
            label::<ConnectorKey>("p", "google_workspace").unwrap(),
            ConnectorKey::GoogleWorkspace
        );
        let err = label::<Step>("step", "dance").unwrap_err();
        assert!(
            err.to_string().contains("step: unknown value 'dance'"),
            "{err}"
        );
    }
}
