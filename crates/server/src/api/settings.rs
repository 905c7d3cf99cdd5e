//! `/api/v1/settings`: the tenant's switches (admin scope). Turning the
//! webhook channel on answers with its signing secret, once.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sever_core::admin::{Scope, TenantSettings};
use utoipa::ToSchema;

use super::revocations::{audited, Attempt};
use super::{json_response, parse_json, raw_body, replay_response};
use crate::admin::{update_settings, SettingsChange};
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Begin};
use crate::AppState;

/// The tenant's switches.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// Master switch: off refuses every revocation, whatever the channel.
    pub revocation_enabled: bool,
    /// Accept signed webhook calls.
    pub webhook_enabled: bool,
    /// Accept MCP clients.
    pub mcp_enabled: bool,
    /// Refuse the plain `sha256=` webhook signature; require `t=…,v1=…`.
    pub webhook_require_timestamp: bool,
    /// Whether a webhook signing secret exists (it is never shown again).
    pub webhook_secret_set: bool,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer that turned the webhook on: the `sr_…` signing
    /// secret. Store it now; it cannot be shown again (turn the webhook off
    /// and on to rotate it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_signing_secret: Option<String>,
}

fn view(s: &TenantSettings, secret: Option<String>) -> SettingsView {
    SettingsView {
        revocation_enabled: s.revocation_enabled,
        webhook_enabled: s.webhook_enabled,
        mcp_enabled: s.mcp_enabled,
        webhook_require_timestamp: s.webhook_require_timestamp,
        webhook_secret_set: s.webhook_secret.is_some(),
        updated_at: s.updated_at,
        webhook_signing_secret: secret,
    }
}

/// A change of switches; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    pub revocation_enabled: Option<bool>,
    pub webhook_enabled: Option<bool>,
    pub mcp_enabled: Option<bool>,
    pub webhook_require_timestamp: Option<bool>,
}

/// The tenant's switches.
#[utoipa::path(
    get,
    path = "/api/v1/settings",
    tag = "settings",
    responses(
        (status = 200, body = SettingsView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn get_settings(
    State(st): State<AppState>,
    caller: ApiCaller,
) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageSettings)
            .await?;
        let s = st.db().get_settings(caller.key.tenant_id).await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(view(&s, None)).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "settings.read", Attempt::default(), r).await
}

/// Change the tenant's switches.
///
/// Turning `webhook_enabled` on generates the webhook signing secret and
/// returns it once as `webhook_signing_secret`; turning it off deletes it.
#[utoipa::path(
    put,
    path = "/api/v1/settings",
    tag = "settings",
    request_body = SettingsUpdate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer (including a generated secret).")),
    responses(
        (status = 200, body = SettingsView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn put_settings(
    State(st): State<AppState>,
    caller: ApiCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageSettings)
            .await?;
        let tenant = caller.key.tenant_id;
        let body = raw_body(body, st.config().body_limit)?;
        let u: SettingsUpdate = parse_json(&body)?;
        let digest = idempotency::request_digest("PUT", "/api/v1/settings", &body);
        let pending =
            match idempotency::begin(&st, tenant, caller.ctx.idempotency_key()?, digest).await? {
                Begin::Replay { status, body } => return Ok(replay_response(status, body)),
                Begin::Fresh(p) => Some(p),
                Begin::NoKey => None,
            };
        let change = SettingsChange {
            revocation_enabled: u.revocation_enabled,
            webhook_enabled: u.webhook_enabled,
            mcp_enabled: u.mcp_enabled,
            webhook_require_timestamp: u.webhook_require_timestamp,
        };
        let (after, secret) = update_settings(
            st.db().as_ref(),
            st.sealer().as_ref(),
            st.clock().as_ref(),
            tenant,
            &change,
            &actor,
        )
        .await?;
        let sensitive = secret.is_some();
        let v = serde_json::to_value(view(&after, secret)).unwrap_or_default();
        if let Some(p) = pending {
            idempotency::finish(&st, p, 200, &v, sensitive).await;
        }
        Ok(json_response(StatusCode::OK, &v))
    }
    .await;
    audited(
        &st,
        &actor,
        "settings.update",
        Attempt {
            target: Some(caller.key.tenant_id.to_string()),
            accepted: false,
        },
        r,
    )
    .await
}
