//! `/api/v1/api-keys`: the tenant's API keys (admin scope). A key is shown
//! once, in the answer that created it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sever_core::admin::Scope;
use utoipa::ToSchema;
use uuid::Uuid;

use super::revocations::{audited, Attempt};
use super::views::{ApiKeyView, ScopeSchema};
use super::{json_response, parse_json, raw_body, replay_response};
use crate::admin::{create_api_key, revoke_api_key};
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Begin};
use crate::AppState;

/// The tenant's keys, revoked ones included.
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    responses(
        (status = 200, body = Vec<ApiKeyView>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn list(State(st): State<AppState>, caller: ApiCaller) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys).await?;
        let keys = st.db().list_api_keys(caller.key.tenant_id).await?;
        let views: Vec<ApiKeyView> = keys.iter().map(ApiKeyView::from).collect();
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(views).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "api_key.list", Attempt::default(), r).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// What the key is for (`tines-prod`).
    pub name: String,
    #[schema(value_type = Vec<ScopeSchema>)]
    pub scopes: Vec<Scope>,
}

/// A new key: the only answer that ever contains it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// `sk_…`: store it now; it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub view: ApiKeyView,
}

/// Create a key.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    request_body = NewKeyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer (including the key).")),
    responses(
        (status = 201, body = CreatedKey),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn create(
    State(st): State<AppState>,
    caller: ApiCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let mut attempt = Attempt::default();
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys).await?;
        let tenant = caller.key.tenant_id;
        let body = raw_body(body, st.config().body_limit)?;
        let b: NewKeyBody = parse_json(&body)?;
        attempt.target = Some(b.name.clone());
        let digest = idempotency::request_digest("POST", "/api/v1/api-keys", &body);
        let pending =
            match idempotency::begin(&st, tenant, caller.ctx.idempotency_key()?, digest).await? {
                Begin::Replay { status, body } => return Ok(replay_response(status, body)),
                Begin::Fresh(p) => Some(p),
                Begin::NoKey => None,
            };
        let new = create_api_key(
            st.db().as_ref(),
            st.clock().as_ref(),
            tenant,
            &b.name,
            &b.scopes,
            &actor,
        )
        .await?;
        let v = serde_json::to_value(CreatedKey {
            key: new.plaintext,
            view: ApiKeyView::from(&new.key),
        })
        .unwrap_or_default();
        if let Some(p) = pending {
            idempotency::finish(&st, p, 201, &v, true).await;
        }
        Ok(json_response(StatusCode::CREATED, &v))
    }
    .await;
    audited(&st, &actor, "api_key.create", attempt, r).await
}

/// Revoke a key; calls made with it are refused from now on.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    tag = "api-keys",
    params(
        ("id" = Uuid, Path, description = "The key's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer."),
    ),
    responses(
        (status = 204, description = "Revoked"),
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
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageKeys).await?;
        let tenant = caller.key.tenant_id;
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| ApiError::invalid("id", format!("'{id}' is not a key id (a UUID)")))?;
        let digest = idempotency::request_digest("DELETE", &format!("/api/v1/api-keys/{id}"), b"");
        let pending =
            match idempotency::begin(&st, tenant, caller.ctx.idempotency_key()?, digest).await? {
                Begin::Replay { status, body } => return Ok(replay_response(status, body)),
                Begin::Fresh(p) => Some(p),
                Begin::NoKey => None,
            };
        revoke_api_key(st.db().as_ref(), st.clock().as_ref(), tenant, id, &actor).await?;
        if let Some(p) = pending {
            idempotency::finish(&st, p, 204, &Value::Null, false).await;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    audited(&st, &actor, "api_key.revoke", attempt, r).await
}
