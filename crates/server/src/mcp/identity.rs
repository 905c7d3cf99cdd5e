//! Who an MCP caller is: an API key of a tenant, or an OAuth client acting
//! for a person of the tenant. Both become an [`McpCaller`] with the scopes
//! that gate each tool and the identity the audit trail records.

use serde_json::json;
use sever_core::admin::Scope;
use sever_core::policy::Caller;
use sever_core::{Channel, TenantId};
use uuid::Uuid;

use crate::audit::Actor;
use crate::auth::{lookup_api_key, API_KEY_PREFIX};
use crate::error::ApiError;
use crate::oauth::{resolve_access_token, ACCESS_TOKEN_PREFIX};
use crate::AppState;

/// The credential an MCP caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        id: Uuid,
        name: String,
    },
    OAuth {
        client_id: String,
        client_name: String,
        /// The person who authorized the client (`alice@example.com`).
        user: String,
    },
}

/// An authenticated MCP caller.
#[derive(Debug, Clone)]
pub struct McpCaller {
    pub tenant_id: TenantId,
    pub scopes: Vec<Scope>,
    pub credential: Credential,
    pub client_ip: Option<String>,
    /// The HTTP request id, over HTTP.
    pub http_request_id: Option<String>,
    /// The person behind the credential: the creator of the API key, or
    /// the person who authorized the OAuth client (for the policy's "the
    /// caller's own account" and the two-person rule).
    pub person: Option<String>,
}

impl McpCaller {
    /// How the audit trail and requests name the caller: `key:<id>` or
    /// `oauth:<client id>`.
    pub fn name(&self) -> String {
        match &self.credential {
            Credential::ApiKey { id, .. } => format!("key:{id}"),
            Credential::OAuth { client_id, .. } => format!("oauth:{client_id}"),
        }
    }

    /// The policy's view of this caller: grant `key:<id>` for an API key
    /// (as over REST, so one key has one budget whichever door it uses) or
    /// `mcp:<client id>` for an OAuth client, with its scopes, over `mcp`.
    pub fn policy_caller(&self) -> Caller {
        let grant = match &self.credential {
            Credential::ApiKey { id, .. } => format!("key:{id}"),
            Credential::OAuth { client_id, .. } => format!("mcp:{client_id}"),
        };
        Caller {
            tenant_id: self.tenant_id,
            grant,
            person: self.person.clone(),
            role: None,
            scopes: self.scopes.clone(),
            channel: Channel::Mcp,
        }
    }

    /// "API key" or "OAuth grant", for messages.
    pub fn credential_kind(&self) -> &'static str {
        match self.credential {
            Credential::ApiKey { .. } => "API key",
            Credential::OAuth { .. } => "OAuth grant",
        }
    }

    /// The audit actor; `client_name` is what the MCP client called itself
    /// at initialization, when known.
    pub fn actor(&self, client_name: Option<String>) -> Actor {
        let (source, detail) = match &self.credential {
            Credential::ApiKey { name, .. } => (
                client_name,
                json!({"scopes": self.scopes, "credential": "api_key", "key_name": name}),
            ),
            Credential::OAuth {
                client_id,
                client_name: registered,
                user,
            } => (
                client_name.or_else(|| Some(registered.clone())),
                json!({
                    "scopes": self.scopes,
                    "credential": "oauth",
                    "client_id": client_id,
                    "client_name": registered,
                    "on_behalf_of": format!("user:{user}"),
                }),
            ),
        };
        Actor::mcp(
            self.tenant_id,
            self.name(),
            source.map(|s| s.chars().take(200).collect()),
            self.client_ip.clone(),
            self.http_request_id.clone(),
            detail,
        )
    }

    /// Refuse, in one sentence, unless the caller holds `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this {} lacks the '{needed}' scope; ask an owner or admin for one that has it",
                self.credential_kind()
            )))
        }
    }
}

/// Authenticate a bearer token: an API key (`sk_…`) or an OAuth access
/// token (`sat_…`). 401 (with a reason) otherwise.
pub async fn authenticate(
    st: &AppState,
    token: &str,
    client_ip: Option<String>,
    http_request_id: Option<String>,
) -> Result<McpCaller, ApiError> {
    let token = token.trim();
    if token.starts_with(API_KEY_PREFIX) {
        let deny_ip = client_ip.clone();
        let deny_id = http_request_id.clone();
        let key = lookup_api_key(st, token, |k| {
            McpCaller {
                tenant_id: k.tenant_id,
                scopes: k.scopes.clone(),
                credential: Credential::ApiKey {
                    id: k.id,
                    name: k.name.clone(),
                },
                client_ip: deny_ip,
                http_request_id: deny_id,
                person: None,
            }
            .actor(None)
        })
        .await?;
        return Ok(McpCaller {
            tenant_id: key.tenant_id,
            scopes: key.scopes,
            person: key.created_by.strip_prefix("user:").map(str::to_string),
            credential: Credential::ApiKey {
                id: key.id,
                name: key.name,
            },
            client_ip,
            http_request_id,
        });
    }
    if token.starts_with(ACCESS_TOKEN_PREFIX) {
        let grant = resolve_access_token(st, token).await?;
        return Ok(McpCaller {
            tenant_id: grant.tenant_id,
            scopes: grant.scopes,
            person: Some(grant.user.email.clone()),
            credential: Credential::OAuth {
                client_id: grant.client.id,
                client_name: grant.client.name,
                user: grant.user.email,
            },
            client_ip,
            http_request_id,
        });
    }
    Err(ApiError::unauthorized(
        "unknown credential: send an API key (sk_…) or an OAuth access token",
    ))
}
