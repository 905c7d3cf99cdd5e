//! `/api/v1/connectors`: the tenant's connector instances (admin scope).
//! Several instances of one provider may exist under different names.
//! Credentials go in and never come out: answers list which secret fields
//! are set, never their values.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sever_core::admin::{Scope, StoredConnector};
use sever_core::{CallContext, Check, ConnectorKey, InstanceName, TenantId};
use utoipa::ToSchema;

use super::revocations::{audited, Attempt};
use super::views::ProviderSchema;
use super::{json_response, parse_json, raw_body, replay_response};
use crate::audit::{Actor, Decision};
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Begin};
use crate::secrets;
use crate::AppState;

/// The non-secret fields of a connector configuration.
pub const SETTING_FIELDS: &[&str] = &[
    "base_url",
    "token_url",
    "client_id",
    "key_id",
    "oauth_tokens",
    "forget_devices",
    "tenant_id",
    "admin_subject",
    "mobile_only",
    "web_only",
    "org_id",
    "max_concurrency",
    "rate_limit",
    "rate_window_secs",
];

/// Non-secret settings; which apply depends on the provider (see docs/connectors.md).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ConnectorSettings {
    /// API base URL (required for Okta: your org URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Token endpoint (Okta OAuth, Entra, Google).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Okta service app or Entra app registration client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Okta: `kid` of the service app's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Okta: also revoke OAuth/OIDC tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_tokens: Option<bool>,
    /// Okta: also forget remembered devices and factors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_devices: Option<bool>,
    /// Entra: directory (tenant) id or domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Google: the admin to impersonate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_subject: Option<String>,
    /// Slack: end only mobile sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_only: Option<bool>,
    /// Slack: end only web sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_only: Option<bool>,
    /// Miro organization id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

/// A connector configuration to create or change: the fields of a
/// `[[connectors]]` table. On update, a field set to `null` or `""` is
/// removed, a secret left absent or blank keeps its stored value, and
/// `clear_secrets` removes secrets.
#[allow(dead_code)]
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectorWrite {
    /// Instance name; defaults to the provider key on create; cannot change.
    pub name: Option<String>,
    /// Required on create; cannot change.
    #[schema(value_type = Option<ProviderSchema>)]
    pub provider: Option<String>,
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub settings: ConnectorSettings,
    /// Okta API token (secret).
    pub api_token: Option<String>,
    /// Okta service app private key, PEM (secret).
    pub private_key: Option<String>,
    /// Entra client secret (secret).
    pub client_secret: Option<String>,
    /// Google service account key: the key file's JSON, as text (or as the object itself) (secret).
    #[schema(value_type = Option<String>)]
    pub service_account_json: Option<Value>,
    /// Slack user token or Miro access token (secret).
    pub token: Option<String>,
    /// Secret fields to delete.
    pub clear_secrets: Option<Vec<String>>,
}

/// The last `POST …/test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastTest {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub detail: Option<String>,
}

/// A connector instance, without its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorView {
    pub name: String,
    #[schema(value_type = ProviderSchema)]
    pub provider: ConnectorKey,
    pub enabled: bool,
    #[serde(flatten)]
    pub settings: ConnectorSettings,
    /// Which secret fields hold a value (never the values).
    #[schema(example = json!(["api_token"]))]
    pub secrets_set: Vec<String>,
    /// Set when the stored credentials cannot be opened (e.g. sealed with a
    /// master key no longer loaded): save them again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub last_test: Option<LastTest>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) fn view(st: &AppState, c: &StoredConnector) -> ConnectorView {
    let (secrets_set, problem) = match secrets::open_secrets(st.sealer().as_ref(), c) {
        Ok(s) => (s.keys().cloned().collect(), None),
        Err(e) => (
            Vec::new(),
            Some(format!(
                "the stored credentials cannot be opened ({e}); save them again"
            )),
        ),
    };
    ConnectorView {
        name: c.name.to_string(),
        provider: c.provider,
        enabled: c.enabled,
        settings: serde_json::from_value(c.settings.clone()).unwrap_or_default(),
        secrets_set,
        problem,
        last_test: c.last_test_at.map(|at| LastTest {
            at,
            ok: c.last_test_ok.unwrap_or(false),
            detail: c.last_test_detail.clone(),
        }),
        updated_at: c.updated_at,
    }
}

fn view_json(st: &AppState, c: &StoredConnector) -> Value {
    serde_json::to_value(view(st, c)).unwrap_or_default()
}

pub(crate) async fn load(
    st: &AppState,
    tenant: TenantId,
    name: &str,
) -> Result<StoredConnector, ApiError> {
    let n = InstanceName::parse(name)?;
    st.db()
        .get_connector(tenant, &n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("connector '{n}' does not exist")))
}

/// The connectors of the tenant.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "connectors",
    responses(
        (status = 200, body = Vec<ConnectorView>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope admin", body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn list(State(st): State<AppState>, caller: ApiCaller) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageConnectors)
            .await?;
        let all = st.db().list_connectors(caller.key.tenant_id).await?;
        let views: Vec<Value> = all.iter().map(|c| view_json(&st, c)).collect();
        Ok(json_response(StatusCode::OK, &Value::Array(views)))
    }
    .await;
    audited(
        &st,
        &caller.actor(),
        "connector.list",
        Attempt::default(),
        r,
    )
    .await
}

/// One connector.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{name}",
    tag = "connectors",
    params(("name" = String, Path, description = "Instance name")),
    responses(
        (status = 200, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn get_one(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageConnectors)
            .await?;
        let c = load(&st, caller.key.tenant_id, &name).await?;
        Ok(json_response(StatusCode::OK, &view_json(&st, &c)))
    }
    .await;
    audited(&st, &caller.actor(), "connector.read", attempt, r).await
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    parse_json::<Map<String, Value>>(body)
}

/// Validate and save `update` merged over `existing` (or over nothing),
/// with its audit record. Shared by the REST API and the web UI.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn save(
    st: &AppState,
    actor: &Actor,
    tenant: TenantId,
    existing: Option<&StoredConnector>,
    provider: ConnectorKey,
    name: &InstanceName,
    update: &Map<String, Value>,
    action: &str,
) -> Result<StoredConnector, ApiError> {
    let (settings, stored_secrets, enabled) = match existing {
        Some(c) => (
            secrets::settings_of(c),
            // Unreadable secrets count as absent: validation then asks for them.
            secrets::open_secrets(st.sealer().as_ref(), c).unwrap_or_default(),
            c.enabled,
        ),
        None => (Map::new(), Map::new(), true),
    };
    let merged = secrets::merge(&settings, &stored_secrets, enabled, update)?;
    let full = secrets::full_config(
        provider.as_str(),
        name,
        merged.enabled,
        &merged.settings,
        &merged.secrets,
    );
    secrets::parse_config(&full)?;
    let stored = StoredConnector {
        tenant_id: tenant,
        name: name.clone(),
        provider,
        enabled: merged.enabled,
        settings: Value::Object(merged.settings.clone()),
        secrets: secrets::seal_secrets(st.sealer().as_ref(), tenant, name, &merged.secrets),
        last_test_at: existing.and_then(|c| c.last_test_at),
        last_test_ok: existing.and_then(|c| c.last_test_ok),
        last_test_detail: existing.and_then(|c| c.last_test_detail.clone()),
        updated_at: st.clock().now(),
    };
    let ev = actor
        .event(st.clock().as_ref(), action, Decision::Allowed)
        .target(Some(name.as_str()))
        .result("saved")
        .detail(json!({
            "provider": provider,
            "enabled": merged.enabled,
            "changed": merged.changed,
            "secrets_set": merged.secrets.keys().collect::<Vec<_>>(),
        }))
        .build();
    st.db().put_connector(&stored, &ev).await?;
    Ok(stored)
}

/// An update may repeat a connector's provider and name, never change them.
pub(crate) fn check_identity(
    existing: &StoredConnector,
    update: &Map<String, Value>,
) -> Result<(), ApiError> {
    if let Some(p) = update.get("provider").filter(|v| !v.is_null()) {
        if p.as_str() != Some(existing.provider.as_str()) {
            return Err(ApiError::invalid(
                "provider",
                "cannot change; delete the connector and create it again",
            ));
        }
    }
    if let Some(n) = update.get("name").filter(|v| !v.is_null()) {
        if n.as_str() != Some(existing.name.as_str()) {
            return Err(ApiError::invalid("name", "cannot change"));
        }
    }
    Ok(())
}

/// The provider and instance name of a new connector's configuration (the
/// name defaults to the provider key).
pub(crate) fn identity(
    update: &Map<String, Value>,
) -> Result<(ConnectorKey, InstanceName), ApiError> {
    let provider: ConnectorKey = match update.get("provider") {
        Some(Value::String(p)) => p.parse()?,
        _ => {
            return Err(ApiError::invalid(
                "provider",
                format!(
                    "is required (one of {})",
                    ConnectorKey::ALL.map(|k| k.as_str()).join(", ")
                ),
            ))
        }
    };
    let name = match update.get("name") {
        None | Some(Value::Null) => InstanceName::parse(provider.as_str())?,
        Some(Value::String(n)) => InstanceName::parse(n)?,
        Some(_) => return Err(ApiError::invalid("name", "must be a string")),
    };
    Ok((provider, name))
}

/// Create a connector unless one of that name exists. Shared by the REST
/// API (after its idempotency check) and the web UI.
pub(crate) async fn create_new(
    st: &AppState,
    actor: &Actor,
    tenant: TenantId,
    provider: ConnectorKey,
    name: &InstanceName,
    update: &Map<String, Value>,
) -> Result<StoredConnector, ApiError> {
    if st.db().get_connector(tenant, name).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "connector '{name}' already exists; change it with PATCH /api/v1/connectors/{name}"
        )));
    }
    save(
        st,
        actor,
        tenant,
        None,
        provider,
        name,
        update,
        "connector.create",
    )
    .await
}

/// Create a connector instance.
#[utoipa::path(
    post,
    path = "/api/v1/connectors",
    tag = "connectors",
    request_body = ConnectorWrite,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer.")),
    responses(
        (status = 201, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "A connector of that name exists", body = ErrorBody),
        (status = 422, description = "Invalid configuration (names the field)", body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn create(
    State(st): State<AppState>,
    caller: ApiCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut attempt = Attempt::default();
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageConnectors)
            .await?;
        let tenant = caller.key.tenant_id;
        let body = raw_body(body, st.config().body_limit)?;
        let update = body_object(&body)?;
        let (provider, name) = identity(&update)?;
        attempt.target = Some(name.to_string());
        let digest = idempotency::request_digest("POST", "/api/v1/connectors", &body);
        let pending =
            match idempotency::begin(&st, tenant, caller.ctx.idempotency_key()?, digest).await? {
                Begin::Replay { status, body } => return Ok(replay_response(status, body)),
                Begin::Fresh(p) => Some(p),
                Begin::NoKey => None,
            };
        let stored = create_new(&st, &caller.actor(), tenant, provider, &name, &update).await?;
        let v = view_json(&st, &stored);
        if let Some(p) = pending {
            idempotency::finish(&st, p, 201, &v, false).await;
        }
        Ok(json_response(StatusCode::CREATED, &v))
    }
    .await;
    audited(&st, &caller.actor(), "connector.create", attempt, r).await
}

/// Change a connector: settings, credentials, or `enabled`.
#[utoipa::path(
    patch,
    path = "/api/v1/connectors/{name}",
    tag = "connectors",
    params(
        ("name" = String, Path, description = "Instance name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer."),
    ),
    request_body = ConnectorWrite,
    responses(
        (status = 200, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn update(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageConnectors)
            .await?;
        let tenant = caller.key.tenant_id;
        let body = raw_body(body, st.config().body_limit)?;
        let update = body_object(&body)?;
        let existing = load(&st, tenant, &name).await?;
        check_identity(&existing, &update)?;
        let path = format!("/api/v1/connectors/{}", existing.name);
        let digest = idempotency::request_digest("PATCH", &path, &body);
        let pending =
            match idempotency::begin(&st, tenant, caller.ctx.idempotency_key()?, digest).await? {
                Begin::Replay { status, body } => return Ok(replay_response(status, body)),
                Begin::Fresh(p) => Some(p),
                Begin::NoKey => None,
            };
        let stored = save(
            &st,
            &caller.actor(),
            tenant,
            Some(&existing),
            existing.provider,
            &existing.name,
            &update,
            "connector.update",
        )
        .await?;
        let v = view_json(&st, &stored);
        if let Some(p) = pending {
            idempotency::finish(&st, p, 200, &v, false).await;
        }
        Ok(json_response(StatusCode::OK, &v))
    }
    .await;
    audited(&st, &caller.actor(), "connector.update", attempt, r).await
}

/// Delete a connector (its credentials go with it).
#[utoipa::path(
    delete,
    path = "/api/v1/connectors/{name}",
    tag = "connectors",
    params(
        ("name" = String, Path, description = "Instance name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer."),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn delete(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageConnectors)
            .await?;
        let tenant = caller.key.tenant_id;
        let n = InstanceName::parse(&name)?;
        let path = format!("/api/v1/connectors/{n}");
        let digest = idempotency::request_digest("DELETE", &path, b"");
        let pending =
            match idempotency::begin(&st, tenant, caller.ctx.idempotency_key()?, digest).await? {
                Begin::Replay { status, body } => return Ok(replay_response(status, body)),
                Begin::Fresh(p) => Some(p),
                Begin::NoKey => None,
            };
        remove(&st, &caller.actor(), tenant, &n).await?;
        if let Some(p) = pending {
            idempotency::finish(&st, p, 204, &Value::Null, false).await;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    audited(&st, &caller.actor(), "connector.delete", attempt, r).await
}

/// Delete a connector and its credentials, with the audit record. Shared
/// by the REST API and the web UI.
pub(crate) async fn remove(
    st: &AppState,
    actor: &Actor,
    tenant: TenantId,
    n: &InstanceName,
) -> Result<(), ApiError> {
    let ev = actor
        .event(st.clock().as_ref(), "connector.delete", Decision::Allowed)
        .target(Some(n.as_str()))
        .result("deleted")
        .build();
    if !st.db().delete_connector(tenant, n, &ev).await? {
        return Err(ApiError::not_found(format!(
            "connector '{n}' does not exist"
        )));
    }
    Ok(())
}

/// The result of a connector test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    pub name: String,
    pub ok: bool,
    pub checks: Vec<CheckView>,
    pub tested_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl From<&Check> for CheckView {
    fn from(c: &Check) -> Self {
        Self {
            name: c.name.clone(),
            ok: c.ok,
            detail: c.detail.clone(),
        }
    }
}

/// Check credentials, lookup and permissions against the provider; the
/// result is kept as the connector's `last_test`.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{name}/test",
    tag = "connectors",
    params(("name" = String, Path, description = "Instance name")),
    responses(
        (status = 200, body = TestView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn test(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ManageConnectors)
            .await?;
        let v = run_test(&st, &caller.actor(), caller.key.tenant_id, &name).await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(v).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "connector.test", attempt, r).await
}

/// Check a connector's credentials, lookup and permissions against its
/// provider and keep the result as its `last_test`, with the audit record.
/// Shared by the REST API and the web UI.
pub(crate) async fn run_test(
    st: &AppState,
    actor: &Actor,
    tenant: TenantId,
    name: &str,
) -> Result<TestView, ApiError> {
    let mut c = load(st, tenant, name).await?;
    let connector = st.registry().build(&c);
    let settings = st.registry().engine_settings();
    let cx = CallContext::new(Instant::now() + settings.request_deadline, settings.retry);
    let report = connector.test(&cx).await;
    let at = st.clock().now();
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.ok).collect();
    let detail = if failed.is_empty() {
        format!("{} checks passed", report.checks.len())
    } else {
        failed
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    };
    c.last_test_at = Some(at);
    c.last_test_ok = Some(report.ok());
    c.last_test_detail = Some(detail.clone());
    let ev = actor
        .event(st.clock().as_ref(), "connector.test", Decision::Allowed)
        .target(Some(c.name.as_str()))
        .result(if report.ok() { "passed" } else { "failed" })
        .detail(json!({"detail": detail}))
        .build();
    st.db().put_connector(&c, &ev).await?;
    Ok(TestView {
        name: c.name.to_string(),
        ok: report.ok(),
        checks: report.checks.iter().map(CheckView::from).collect(),
        tested_at: at,
    })
}
