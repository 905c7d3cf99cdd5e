//! `/api/v1/oauth/clients`: the MCP clients registered over OAuth (admin
//! scope). An owner or admin approves a pending client once, which binds it
//! to their tenant; deleting a client deletes every token it holds, so its
//! next call is refused.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sever_core::admin::Scope;
use sever_core::oauth::OAuthClient;
use utoipa::ToSchema;

use crate::api::json_response;
use crate::api::revocations::{audited, Attempt};
use crate::audit::{Actor, Decision};
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// A client registered through `POST /oauth/register`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientView {
    /// The `client_id` (`mcp_…`).
    pub client_id: String,
    /// The name the client registered with (self-declared).
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// `pending_approval` or `approved`.
    #[schema(example = "approved")]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Other registration metadata (`software_id`, `client_uri`, ...).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<&OAuthClient> for OAuthClientView {
    fn from(c: &OAuthClient) -> Self {
        Self {
            client_id: c.id.clone(),
            client_name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            status: if c.is_approved() {
                "approved"
            } else {
                "pending_approval"
            }
            .into(),
            approved_by: c.approved_by.clone(),
            approved_at: c.approved_at,
            created_at: c.created_at,
            metadata: c.metadata.clone(),
        }
    }
}

fn view(c: &OAuthClient) -> serde_json::Value {
    serde_json::to_value(OAuthClientView::from(c)).unwrap_or_default()
}

/// The client if the caller's tenant may see it: its own, or a pending one
/// (which belongs to no tenant until approved).
async fn visible(
    st: &AppState,
    tenant: sever_core::TenantId,
    id: &str,
) -> Result<OAuthClient, ApiError> {
    st.db()
        .get_oauth_client(id.trim())
        .await?
        .filter(|c| c.tenant_id.is_none_or(|t| t == tenant))
        .ok_or_else(|| ApiError::not_found(format!("OAuth client '{}' was not found", id.trim())))
}

/// The tenant's approved MCP clients.
#[utoipa::path(
    get,
    path = "/api/v1/oauth/clients",
    tag = "oauth-clients",
    responses(
        (status = 200, body = Vec<OAuthClientView>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope admin", body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn list(State(st): State<AppState>, caller: ApiCaller) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        crate::api::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys)
            .await?;
        let all = st.db().list_oauth_clients(caller.key.tenant_id).await?;
        let views: Vec<_> = all.iter().map(view).collect();
        Ok(json_response(
            StatusCode::OK,
            &serde_json::Value::Array(views),
        ))
    }
    .await;
    audited(
        &st,
        &caller.actor(),
        "oauth_client.list",
        Attempt::default(),
        r,
    )
    .await
}

/// One client: the tenant's, or a pending one awaiting approval.
#[utoipa::path(
    get,
    path = "/api/v1/oauth/clients/{id}",
    tag = "oauth-clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, body = OAuthClientView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn get_one(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        crate::api::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys)
            .await?;
        let c = visible(&st, caller.key.tenant_id, &id).await?;
        Ok(json_response(StatusCode::OK, &view(&c)))
    }
    .await;
    audited(&st, &caller.actor(), "oauth_client.read", attempt, r).await
}

/// Approve a pending client into the caller's tenant, once. People of the
/// tenant may then authorize it; approving it again is a no-op.
#[utoipa::path(
    post,
    path = "/api/v1/oauth/clients/{id}/approve",
    tag = "oauth-clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "Approved (now or before)", body = OAuthClientView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope admin", body = ErrorBody),
        (status = 404, description = "No such pending client, or another tenant's", body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn approve(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        crate::api::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys)
            .await?;
        let approved = approve_client(&st, &actor, caller.key.tenant_id, &id).await?;
        Ok(json_response(StatusCode::OK, &view(&approved)))
    }
    .await;
    audited(&st, &actor, "oauth_client.approve", attempt, r).await
}

/// Approve a pending client into `tenant` (a no-op for one approved
/// already), with its audit record. Shared by the REST API and the web UI.
pub(crate) async fn approve_client(
    st: &AppState,
    actor: &Actor,
    tenant: sever_core::TenantId,
    id: &str,
) -> Result<OAuthClient, ApiError> {
    let c = visible(st, tenant, id).await?;
    if c.is_approved() {
        return Ok(c);
    }
    let now = st.clock().now();
    let ev = actor
        .event(
            st.clock().as_ref(),
            "oauth_client.approve",
            Decision::Allowed,
        )
        .target(Some(&c.id))
        .result("approved")
        .detail(json!({"client_name": c.name, "redirect_uris": c.redirect_uris}))
        .build();
    if !st
        .db()
        .approve_oauth_client(&c.id, tenant, &actor.name, now, &ev)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "OAuth client '{}' is no longer pending",
            c.id
        )));
    }
    visible(st, tenant, &c.id).await
}

/// Delete a client of the tenant and every token it holds: its next call
/// is refused.
#[utoipa::path(
    delete,
    path = "/api/v1/oauth/clients/{id}",
    tag = "oauth-clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 204, description = "Deleted, with its tokens"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn delete(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        crate::api::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys)
            .await?;
        remove_client(&st, &actor, caller.key.tenant_id, &id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    audited(&st, &actor, "oauth_client.delete", attempt, r).await
}

/// Delete a client of `tenant` and every token it holds, with its audit
/// record. Shared by the REST API and the web UI.
pub(crate) async fn remove_client(
    st: &AppState,
    actor: &Actor,
    tenant: sever_core::TenantId,
    id: &str,
) -> Result<(), ApiError> {
    let id = id.trim();
    let ev = actor
        .event(
            st.clock().as_ref(),
            "oauth_client.delete",
            Decision::Allowed,
        )
        .target(Some(id))
        .result("deleted with its tokens")
        .build();
    if st.db().delete_oauth_client(tenant, id, &ev).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "OAuth client '{id}' was not found in this tenant"
        )))
    }
}
