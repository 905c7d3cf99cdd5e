//! Tenants, people, keys, channel switches, stored connectors and the audit
//! trail: what the server needs to decide who may do what, and to prove
//! afterwards what was done. The `AdminStore` port keeps each mutation and its
//! audit record in one transaction.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::*;
use crate::ports::{Sealed, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Analyst,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Analyst, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
        }
    }

    /// The scopes a person with this role holds.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Owner | Role::Admin => {
                &[Scope::SessionsRevoke, Scope::SessionsRead, Scope::Admin]
            }
            Role::Analyst => &[Scope::SessionsRevoke, Scope::SessionsRead],
            Role::Viewer => &[Scope::SessionsRead],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(
                    "role",
                    format!("unknown role '{s}' (owner, admin, analyst, viewer)"),
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "sessions:revoke")]
    SessionsRevoke,
    #[serde(rename = "sessions:read")]
    SessionsRead,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::SessionsRevoke, Scope::SessionsRead, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SessionsRevoke => "sessions:revoke",
            Scope::SessionsRead => "sessions:read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(
                    "scopes",
                    format!("unknown scope '{s}' (sessions:revoke, sessions:read, admin)"),
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Per-tenant switches. Every entry point checks `revocation_enabled`; the
/// webhook and MCP channels also need their own switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    pub tenant_id: TenantId,
    pub revocation_enabled: bool,
    pub webhook_enabled: bool,
    pub mcp_enabled: bool,
    /// Refuse the plain `sha256=` signature; accept only `t=…,v1=…`.
    pub webhook_require_timestamp: bool,
    /// The webhook signing secret (`sr_…`), sealed; present while the channel is on.
    pub webhook_secret: Option<Sealed>,
    pub updated_at: DateTime<Utc>,
}

impl TenantSettings {
    pub fn new(tenant_id: TenantId, at: DateTime<Utc>) -> Self {
        Self {
            tenant_id,
            revocation_enabled: false,
            webhook_enabled: false,
            mcp_enabled: false,
            webhook_require_timestamp: false,
            webhook_secret: None,
            updated_at: at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    /// Argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    /// The first characters of the key, to recognise it in lists (`sk_ab12…`).
    pub prefix: String,
    #[serde(skip)]
    /// SHA-256 of the whole key; the key itself is shown once and never stored.
    pub digest: Vec<u8>,
    pub scopes: Vec<Scope>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A connector instance stored per tenant. Non-secret settings are plain
/// JSON; the secret fields are one sealed JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnector {
    pub tenant_id: TenantId,
    pub name: InstanceName,
    pub provider: ConnectorKey,
    pub enabled: bool,
    pub settings: serde_json::Value,
    pub secrets: Option<Sealed>,
    pub last_test_at: Option<DateTime<Utc>>,
    pub last_test_ok: Option<bool>,
    pub last_test_detail: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What a caller did or tried to do, allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub tenant_id: TenantId,
    pub at: DateTime<Utc>,
    /// `user:alice@example.com`, `key:<id>`, `cli:root`, `webhook`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub channel: Channel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `allowed` or `denied`.
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Anything else worth keeping (before/after of a settings change); never a secret.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// An audit event as stored: numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hex SHA-256 of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and the canonical JSON of `event` and `seq`.
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant_id: Option<TenantId>,
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// The first answer given to an `Idempotency-Key`, replayed on retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    pub tenant_id: TenantId,
    pub key: String,
    /// SHA-256 of the request body: the same key with another body is a conflict.
    pub body_digest: Vec<u8>,
    pub status: u16,
    pub response: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    async fn create_tenant(&self, tenant: &Tenant, audit: &AuditEvent) -> Result<(), StoreError>;
    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;

    /// The tenant's switches; defaults (all off) when never set.
    async fn get_settings(&self, tenant: TenantId) -> Result<TenantSettings, StoreError>;
    async fn put_settings(
        &self,
        settings: &TenantSettings,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    async fn create_user(&self, user: &User, audit: &AuditEvent) -> Result<(), StoreError>;
    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Email match is case-insensitive; emails are unique per tenant.
    async fn find_user(&self, tenant: TenantId, email: &str) -> Result<Option<User>, StoreError>;
    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>, StoreError>;
    async fn update_user(&self, user: &User, audit: &AuditEvent) -> Result<(), StoreError>;

    async fn create_api_key(&self, key: &ApiKey, audit: &AuditEvent) -> Result<(), StoreError>;
    async fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKey>, StoreError>;
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>, StoreError>;
    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Returns false when there is no such live key in the tenant.
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    async fn put_connector(
        &self,
        c: &StoredConnector,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    async fn get_connector(
        &self,
        tenant: TenantId,
        name: &InstanceName,
    ) -> Result<Option<StoredConnector>, StoreError>;
    async fn list_connectors(&self, tenant: TenantId) -> Result<Vec<StoredConnector>, StoreError>;
    async fn delete_connector(
        &self,
        tenant: TenantId,
        name: &InstanceName,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Every sealed value (connector secrets, webhook secrets), for `sever keys rotate`.
    async fn all_connectors(&self) -> Result<Vec<StoredConnector>, StoreError>;
    async fn all_settings(&self) -> Result<Vec<TenantSettings>, StoreError>;

    /// Append to the chain (computing `prev_hash`/`hash` inside the transaction).
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StoreError>;
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    async fn get_idempotent(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError>;
    /// Returns false (and stores nothing) when the key is already taken.
    async fn put_idempotent(&self, r: &IdempotentResponse) -> Result<bool, StoreError>;
}

/// The hash of the first record's predecessor.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex SHA-256 of `prev_hash`, `seq` and the canonical JSON of `event`, with
/// `at` cut to microseconds (what both stores keep), so a record read back
/// hashes to what was written.
pub fn audit_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    use chrono::SubsecRound;
    use sha2::{Digest, Sha256};
    let mut e = event.clone();
    e.at = e.at.trunc_subsecs(6);
    let json = serde_json::to_string(&e).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(json.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq} was edited: its hash does not match its content")]
    Edited { seq: i64 },
    #[error("the record before {seq} is missing or was changed: prev_hash does not match")]
    Broken { seq: i64 },
    #[error("records are missing between {after} and {seq}")]
    Gap { after: i64, seq: i64 },
}

/// Check a whole chain, in `seq` order, from the first record.
pub fn verify_chain(records: &[AuditRecord]) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS_HASH.to_string();
    let mut last_seq = 0;
    for r in records {
        if r.seq != last_seq + 1 {
            return Err(ChainBreak::Gap {
                after: last_seq,
                seq: r.seq,
            });
        }
        if r.prev_hash != prev {
            return Err(ChainBreak::Broken { seq: r.seq });
        }
        if audit_hash(&r.prev_hash, r.seq, &r.event) != r.hash {
            return Err(ChainBreak::Edited { seq: r.seq });
        }
        prev = r.hash.clone();
        last_seq = r.seq;
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            tenant_id: TenantId::DEFAULT,
            at: Utc::now(),
            actor: "user:a@example.com".into(),
            role: Some("admin".into()),
            channel: Channel::Api,
            source: None,
            client_ip: Some("127.0.0.1".into()),
            action: action.into(),
            target: Some("bob@example.com".into()),
            reason: None,
            decision: "allowed".into(),
            result: None,
            request_id: None,
            detail: serde_json::json!({}),
        }
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n as i64)
            .map(|seq| {
                let e = event(&format!("action{seq}"));
                let hash = audit_hash(&prev, seq, &e);
                let r = AuditRecord {
                    seq,
                    event: e,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_any_edit_removal_or_reorder_is_found() {
        let c = chain(4);
        assert_eq!(verify_chain(&c), Ok(4));
        let mut edited = c.clone();
        edited[1].event.decision = "denied".into();
        assert_eq!(verify_chain(&edited), Err(ChainBreak::Edited { seq: 2 }));
        let mut removed = c.clone();
        removed.remove(2);
        assert_eq!(
            verify_chain(&removed),
            Err(ChainBreak::Gap { after: 2, seq: 4 })
        );
        let mut renumbered = c.clone();
        renumbered.remove(2);
        renumbered[2].seq = 3;
        assert_eq!(
            verify_chain(&renumbered),
            Err(ChainBreak::Broken { seq: 3 })
        );
    }

    #[test]
    fn roles_grant_scopes_and_parse_from_their_names() {
        assert!(Role::Viewer.scopes() == [Scope::SessionsRead]);
        assert!(Role::Analyst.scopes().contains(&Scope::SessionsRevoke));
        assert!(!Role::Analyst.scopes().contains(&Scope::Admin));
        assert_eq!("owner".parse::<Role>().unwrap(), Role::Owner);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(
            serde_json::to_string(&Scope::SessionsRevoke).unwrap(),
            "\"sessions:revoke\""
        );
    }
}
