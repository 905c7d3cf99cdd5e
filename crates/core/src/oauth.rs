//! OAuth 2.1 for MCP clients: the clients that registered themselves, the
//! authorization codes handed to them, and the access and refresh tokens
//! they hold. Sever is its own authorization server so an AI agent's MCP
//! client can connect with a person's consent instead of a long-lived key.
//!
//! A client registers itself (RFC 7591) with no tenant and stays pending
//! until an owner or admin approves it, which binds it to the approver's
//! tenant; only then may it get codes and tokens. Codes and tokens are
//! random strings of which the store keeps only the SHA-256, like API keys.
//! Deleting a client deletes its codes and tokens with it, so every token it
//! held stops working at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::{AuditEvent, Scope};
use crate::domain::TenantId;
use crate::ports::StoreError;

/// A client registered through `POST /oauth/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthClient {
    /// The `client_id` (`mcp_` + random characters).
    pub id: String,
    /// The `client_name` it registered with (untrusted: shown, never believed).
    pub name: String,
    /// Exact redirect URIs; an authorization request must use one of them.
    pub redirect_uris: Vec<String>,
    /// The rest of the registration metadata, as registered (never a secret:
    /// clients are public and authenticate with PKCE).
    pub metadata: serde_json::Value,
    /// The tenant whose owner or admin approved it; `None` while pending.
    pub tenant_id: Option<TenantId>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl OAuthClient {
    /// Approved clients belong to a tenant and may get tokens.
    pub fn is_approved(&self) -> bool {
        self.tenant_id.is_some() && self.approved_at.is_some()
    }
}

/// An authorization code: single use, short-lived, bound to the client, the
/// redirect URI and the PKCE challenge it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCode {
    /// SHA-256 of the code.
    pub digest: Vec<u8>,
    pub client_id: String,
    pub tenant_id: TenantId,
    /// The person who consented.
    pub user_id: Uuid,
    pub scopes: Vec<Scope>,
    pub redirect_uri: String,
    /// base64url(SHA-256(code_verifier)), S256 being the only method.
    pub code_challenge: String,
    /// The RFC 8707 resource the client asked for, if it named one.
    pub resource: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// An access or refresh token issued to a client on a person's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// SHA-256 of the token.
    pub digest: Vec<u8>,
    pub kind: TokenKind,
    pub client_id: String,
    pub tenant_id: TenantId,
    pub user_id: Uuid,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Set when a refresh token was used (rotated) or a token was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl OAuthToken {
    /// Usable at `now`: not revoked and not expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Storage of OAuth clients, codes and tokens. Every method is one
/// transaction; those that take an audit event write it in the same one.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// A new pending client. Not audited: registration is anonymous and
    /// belongs to no tenant yet; its approval is what is audited.
    async fn create_oauth_client(&self, client: &OAuthClient) -> Result<(), StoreError>;
    async fn get_oauth_client(&self, id: &str) -> Result<Option<OAuthClient>, StoreError>;
    /// The tenant's approved clients, oldest first.
    async fn list_oauth_clients(&self, tenant: TenantId) -> Result<Vec<OAuthClient>, StoreError>;
    /// Bind a pending client to `tenant`. False (and nothing written) when
    /// there is no such client or it was already approved.
    async fn approve_oauth_client(
        &self,
        id: &str,
        tenant: TenantId,
        approved_by: &str,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Delete a client of `tenant` and every code and token it holds. False
    /// (and nothing written) when the tenant has no such client.
    async fn delete_oauth_client(
        &self,
        tenant: TenantId,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// How many clients are waiting for approval, across tenants.
    async fn count_pending_oauth_clients(&self) -> Result<u64, StoreError>;
    /// Clients waiting for approval, newest first, at most `limit`. They
    /// belong to no tenant until approved, so every tenant's admins see them.
    async fn list_pending_oauth_clients(&self, limit: u32) -> Result<Vec<OAuthClient>, StoreError>;
    /// Forget pending clients registered before `pending_before`, and codes
    /// and tokens that expired before `now`; returns how many rows went.
    async fn purge_stale_oauth(
        &self,
        pending_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    async fn put_oauth_code(&self, code: &OAuthCode, audit: &AuditEvent) -> Result<(), StoreError>;
    /// Remove and return the code: a code can be taken once, whatever
    /// happens next.
    async fn take_oauth_code(&self, digest: &[u8]) -> Result<Option<OAuthCode>, StoreError>;

    /// Store newly issued tokens.
    async fn put_oauth_tokens(
        &self,
        tokens: &[OAuthToken],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    async fn find_oauth_token(&self, digest: &[u8]) -> Result<Option<OAuthToken>, StoreError>;
    /// Use a live refresh token once: mark it revoked at `at` and store
    /// `issued` in its place. False (and nothing written) when the token is
    /// unknown, not a refresh token, expired or already used, so two
    /// concurrent refreshes never both succeed.
    async fn rotate_oauth_refresh_token(
        &self,
        digest: &[u8],
        at: DateTime<Utc>,
        issued: &[OAuthToken],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Revoke one token of `client_id` (RFC 7009). False when there was no
    /// such live token.
    async fn revoke_oauth_token(
        &self,
        client_id: &str,
        digest: &[u8],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
