//! `/api/v1/policy` (the tenant's stored policy: read, replace, reset,
//! explain) and `/api/v1/approvals` (requests a policy held back: list,
//! read, approve, deny), for admin-scope keys and, later, the UI.
//!
//! A router fragment ([`routes`]) the application merges into its API; it
//! carries the [`PolicyResolver`] (policy file, stored, or built-in) as an
//! extension. Each handler is itself guarded by the policy
//! (`manage_policy`, `approve_request`), like every other entry point, and
//! refusals are audited. [`policy_error`], [`caller_of`] and
//! [`approval_error`] are what the other handlers need to apply the policy
//! the same way.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sever_core::admin::{ApiKey, Scope};
use sever_core::approvals::{
    self, Approval, ApprovalError, ApprovalQuery, ApprovalState, Resolution,
};
use sever_core::policy::{
    self, Action, ActionArgs, Authorization, Caller, PolicyChangeError, PolicyOrigin,
    PolicyResolver, RequestContext,
};
use sever_core::{Channel, RequestId, TenantId, Username};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::revocations::{audited, query_error, Attempt};
use super::{json_response, parse_json, raw_body};
use crate::audit::Decision;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// The routes of this module, with `resolver` for their handlers. Merge
/// into the API router: `api_routes().merge(api::policy::routes(resolver))`.
pub fn routes(resolver: Arc<PolicyResolver>) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, put_policy, delete_policy))
        .routes(routes!(explain))
        .routes(routes!(list_approvals))
        .routes(routes!(get_approval))
        .routes(routes!(approve))
        .routes(routes!(deny))
        .layer(Extension(resolver))
}

/// The policy's view of an API-key caller: its grant, scopes, and the
/// person who created it (for "the caller's own account" and the
/// two-person rule).
pub fn caller_of(key: &ApiKey, channel: Channel) -> Caller {
    Caller {
        tenant_id: key.tenant_id,
        grant: format!("key:{}", key.id),
        person: key.created_by.strip_prefix("user:").map(str::to_string),
        role: None,
        scopes: key.scopes.clone(),
        channel,
    }
}

/// The HTTP answer to a refusal by the policy: 429 `rate_limited` when a
/// limit, cooldown or cap refused (it lifts at `retry_at`), otherwise 403
/// `policy_denied`; the message lists the policy's reasons. A decision that
/// needs approval is not an error (the caller answers 202).
pub fn policy_error(auth: &Authorization) -> ApiError {
    // A limit's reason already says when it lifts ("try again after …").
    let e = match auth.evaluation.retry_at {
        Some(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            auth.message(),
        ),
        None => ApiError::new(StatusCode::FORBIDDEN, "policy_denied", auth.message()),
    };
    // The refusal's audit record carries the decision and its rules.
    e.with_audit_detail(auth.audit_detail())
}

/// The policy's view of the signed webhook: one grant per tenant
/// (`webhook`), holding the session scopes (its signature is its only
/// credential).
pub fn webhook_caller(tenant: TenantId) -> Caller {
    Caller {
        tenant_id: tenant,
        grant: "webhook".into(),
        person: None,
        role: None,
        scopes: vec![Scope::SessionsRevoke, Scope::SessionsRead],
        channel: Channel::Webhook,
    }
}

/// Decide `ctx` with the server's policy and count it: `Ok` when allowed
/// or held for approval (a revocation; the caller writes it
/// `pending_approval`), the refusal ([`policy_error`], carrying the
/// decision for the audit record) otherwise.
pub async fn authorize(st: &AppState, ctx: &RequestContext) -> Result<Authorization, ApiError> {
    let auth = policy::authorize(st.policy(), st.db().as_ref(), ctx, st.clock().now()).await?;
    match auth.decision() {
        policy::Decision::Deny { .. } => Err(policy_error(&auth)),
        _ => Ok(auth),
    }
}

/// Authorize `action` (a read or an admin action: it names nobody and
/// cannot wait for approval) for `caller`: `Ok` only when allowed.
pub async fn require(
    st: &AppState,
    caller: Caller,
    action: Action,
) -> Result<Authorization, ApiError> {
    let ctx = RequestContext {
        caller,
        action,
        args: ActionArgs::default(),
    };
    let auth = authorize(st, &ctx).await?;
    if auth.is_allowed() {
        Ok(auth)
    } else {
        Err(policy_error(&auth))
    }
}

/// [`require`] for an API-key caller of the REST API.
pub async fn require_key(
    st: &AppState,
    caller: &ApiCaller,
    action: Action,
) -> Result<Authorization, ApiError> {
    require(st, caller_of(&caller.key, Channel::Api), action).await
}

/// An approval refusal as an HTTP answer.
pub fn approval_error(e: ApprovalError) -> ApiError {
    match e {
        ApprovalError::NotFound(_) => ApiError::not_found(e.to_string()),
        ApprovalError::NotPending { .. } => ApiError::conflict(e.to_string()),
        ApprovalError::Expired { .. } => {
            ApiError::new(StatusCode::CONFLICT, "approval_expired", e.to_string())
        }
        ApprovalError::SelfApproval(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "self_approval", e.to_string())
        }
        ApprovalError::NotAnApprover(_) => ApiError::forbidden(e.to_string()),
        ApprovalError::ReasonRequired => ApiError::invalid("reason", "must not be empty"),
        ApprovalError::Invalid(i) => i.into(),
        ApprovalError::Store(s) => s.into(),
    }
}

fn change_error(e: PolicyChangeError) -> ApiError {
    match e {
        PolicyChangeError::Invalid(p) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            p.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        PolicyChangeError::ManagedByFile(_) => ApiError::new(
            StatusCode::CONFLICT,
            "policy_managed_by_file",
            e.to_string(),
        ),
        PolicyChangeError::LocksOut(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy_locks_out",
            e.to_string(),
        ),
        PolicyChangeError::Conflict(_) => ApiError::conflict(e.to_string()),
        PolicyChangeError::Store(s) => s.into(),
    }
}

/// Authorize `action` for the key's caller; a refusal becomes its error.
async fn guard(
    st: &AppState,
    resolver: &PolicyResolver,
    caller: &ApiCaller,
    action: Action,
) -> Result<Authorization, ApiError> {
    let ctx = RequestContext {
        caller: caller_of(&caller.key, Channel::Api),
        action,
        args: ActionArgs::default(),
    };
    let auth = policy::authorize(resolver, st.db().as_ref(), &ctx, st.clock().now()).await?;
    if auth.is_allowed() {
        Ok(auth)
    } else {
        Err(policy_error(&auth))
    }
}

/// The policy in force for the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// `file` (from the configuration; read-only here), `stored` or `built_in`.
    pub origin: String,
    /// The file's path, or the built-in default's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Of a stored policy; send it back in `If-Match` to change it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// The document (see docs/policy.md).
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

fn policy_view(document: serde_json::Value, origin: &PolicyOrigin) -> PolicyView {
    let mut v = PolicyView {
        origin: String::new(),
        source: None,
        revision: None,
        updated_at: None,
        updated_by: None,
        document,
    };
    match origin {
        PolicyOrigin::File { path } => {
            v.origin = "file".into();
            v.source = Some(path.clone());
        }
        PolicyOrigin::Stored {
            revision,
            updated_at,
            updated_by,
        } => {
            v.origin = "stored".into();
            v.revision = Some(*revision);
            v.updated_at = Some(*updated_at);
            v.updated_by = Some(updated_by.clone());
        }
        PolicyOrigin::BuiltIn { name } => {
            v.origin = "built_in".into();
            v.source = Some(name.clone());
        }
    }
    v
}

fn ok_json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    json_response(status, &serde_json::to_value(v).unwrap_or_default())
}

/// The tenant's policy in force, and where it comes from.
#[utoipa::path(
    get,
    path = "/api/v1/policy",
    tag = "policy",
    responses(
        (status = 200, body = PolicyView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn get_policy(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
) -> Result<Response, ApiError> {
    let r = async {
        guard(&st, &resolver, &caller, Action::ManagePolicy).await?;
        let (p, origin) = resolver
            .for_tenant(st.db().as_ref(), caller.key.tenant_id)
            .await?;
        Ok(ok_json(StatusCode::OK, &policy_view(p.to_value(), &origin)))
    }
    .await;
    audited(&st, &caller.actor(), "policy.read", Attempt::default(), r).await
}

/// The revision an `If-Match` header names (`3` or `"3"`).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim().trim_matches('"');
    s.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::invalid("If-Match", "must be the policy's revision (a number)"))
}

/// Replace the tenant's policy.
///
/// The body is a policy document (docs/policy.md); errors name the field at
/// fault. Refused when the policy comes from a file, when the document
/// would refuse `manage_policy` to this key (a lock-out), or when
/// `If-Match` names a revision that is no longer current. Audited with the
/// document before and after.
#[utoipa::path(
    put,
    path = "/api/v1/policy",
    tag = "policy",
    request_body(content = Object, description = "A policy document"),
    params(("If-Match" = Option<String>, Header, description = "The revision read; refused with 409 if another was stored since.")),
    responses(
        (status = 200, body = PolicyView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Managed by a file, or changed meanwhile", body = ErrorBody),
        (status = 422, description = "Invalid, or would lock this key out", body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn put_policy(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let r = async {
        guard(&st, &resolver, &caller, Action::ManagePolicy).await?;
        let body = raw_body(body, st.config().body_limit)?;
        let document: serde_json::Value = parse_json(&body)?;
        let expected = if_match(&headers)?;
        let audit = actor
            .event(st.clock().as_ref(), "policy.update", Decision::Allowed)
            .target(Some(&caller.key.tenant_id.to_string()))
            .build();
        let stored = policy::store_policy(
            &resolver,
            st.db().as_ref(),
            &caller_of(&caller.key, Channel::Api),
            document,
            expected,
            audit,
            st.clock().now(),
        )
        .await
        .map_err(change_error)?;
        let origin = PolicyOrigin::Stored {
            revision: stored.revision,
            updated_at: stored.updated_at,
            updated_by: stored.updated_by.clone(),
        };
        Ok(ok_json(
            StatusCode::OK,
            &policy_view(stored.document, &origin),
        ))
    }
    .await;
    audited(&st, &actor, "policy.update", Attempt::default(), r).await
}

/// Remove the tenant's stored policy: the built-in default applies again.
#[utoipa::path(
    delete,
    path = "/api/v1/policy",
    tag = "policy",
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No stored policy", body = ErrorBody),
        (status = 409, description = "Managed by a file", body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn delete_policy(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let r = async {
        guard(&st, &resolver, &caller, Action::ManagePolicy).await?;
        let audit = actor
            .event(st.clock().as_ref(), "policy.reset", Decision::Allowed)
            .target(Some(&caller.key.tenant_id.to_string()))
            .build();
        let removed =
            policy::reset_policy(&resolver, st.db().as_ref(), caller.key.tenant_id, audit)
                .await
                .map_err(change_error)?;
        if removed {
            Ok(axum::response::IntoResponse::into_response(
                StatusCode::NO_CONTENT,
            ))
        } else {
            Err(ApiError::not_found("the tenant has no stored policy"))
        }
    }
    .await;
    audited(&st, &actor, "policy.reset", Attempt::default(), r).await
}

/// A call to explain.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    /// `revoke_sessions`, `preview_revocation`, `get_revocation_status`,
    /// `list_connectors`, `bulk_revoke`, or an admin action.
    #[schema(example = "revoke_sessions")]
    pub action: String,
    #[serde(default)]
    pub usernames: Vec<String>,
    #[serde(default)]
    pub integration_targets: Option<Vec<String>>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Another API key of the tenant to explain for (default: this key).
    #[serde(default)]
    pub as_key: Option<Uuid>,
    /// `cli`, `api`, `webhook`, `mcp` or `ui` (default `api`).
    #[serde(default)]
    pub channel: Option<String>,
}

/// What the policy would decide for a call now, with every rule consulted.
/// Counts nothing.
#[utoipa::path(
    post,
    path = "/api/v1/policy/explain",
    tag = "policy",
    request_body = ExplainBody,
    responses(
        (status = 200, description = "`decision`, `reasons`, `retry_at`, `trace` and `origin`", body = Object),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn explain(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r = async {
        guard(&st, &resolver, &caller, Action::ManagePolicy).await?;
        let body = raw_body(body, st.config().body_limit)?;
        let b: ExplainBody = parse_json(&body)?;
        let action: Action = b
            .action
            .parse()
            .map_err(|e: String| ApiError::invalid("action", e))?;
        let channel = match &b.channel {
            Some(c) => c.parse::<Channel>()?,
            None => Channel::Api,
        };
        let key = match b.as_key {
            None => caller.key.clone(),
            Some(id) => st
                .db()
                .list_api_keys(caller.key.tenant_id)
                .await?
                .into_iter()
                .find(|k| k.id == id)
                .ok_or_else(|| ApiError::not_found(format!("API key {id} was not found")))?,
        };
        let usernames = b
            .usernames
            .iter()
            .map(|u| Username::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = RequestContext {
            caller: caller_of(&key, channel),
            action,
            args: ActionArgs {
                usernames,
                connectors: b.integration_targets.clone().unwrap_or_default(),
                integration_targets: b.integration_targets,
                reason: b.reason,
            },
        };
        let auth = policy::explain(&resolver, st.db().as_ref(), &ctx, st.clock().now()).await?;
        Ok(ok_json(StatusCode::OK, &auth))
    }
    .await;
    audited(
        &st,
        &caller.actor(),
        "policy.explain",
        Attempt::default(),
        r,
    )
    .await
}

/// A request waiting for (or past) a second person's decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub request_id: Uuid,
    /// `pending`, `approved`, `denied` or `expired`.
    pub state: String,
    pub action: String,
    pub username: String,
    /// The requester's reason.
    pub request_reason: String,
    pub channel: String,
    pub requested_by: String,
    /// Why the policy wants approval.
    pub reasons: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        Self {
            request_id: a.request_id.0,
            state: a.state.as_str().into(),
            action: a.action.clone(),
            username: a.username.clone(),
            request_reason: a.request_reason.clone(),
            channel: a.channel.as_str().into(),
            requested_by: a.requested_by.clone(),
            reasons: a.reasons.clone(),
            created_at: a.created_at,
            expires_at: a.expires_at,
            decided_by: a.decided_by.clone(),
            decided_at: a.decided_at,
            decision_reason: a.decision_reason.clone(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalListQuery {
    /// `pending` (default), `approved`, `denied`, `expired` or `all`.
    pub state: Option<String>,
    /// 1-200 (default 50).
    pub limit: Option<u32>,
}

/// The tenant's approvals, newest first (past-due ones are expired first).
#[utoipa::path(
    get,
    path = "/api/v1/approvals",
    tag = "approvals",
    params(ApprovalListQuery),
    responses(
        (status = 200, body = Vec<ApprovalView>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn list_approvals(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
    q: Result<Query<ApprovalListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let r = async {
        guard(&st, &resolver, &caller, Action::ApproveRequest).await?;
        let Query(q) = q.map_err(query_error)?;
        let state = match q.state.as_deref() {
            None => Some(ApprovalState::Pending),
            Some("all") => None,
            Some(s) => Some(s.parse::<ApprovalState>()?),
        };
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 200"));
        }
        approvals::expire_due(st.db().as_ref(), st.clock().now()).await?;
        let list = st
            .db()
            .list_approvals(&ApprovalQuery {
                tenant_id: Some(caller.key.tenant_id),
                state,
                limit,
            })
            .await?;
        let views: Vec<ApprovalView> = list.iter().map(ApprovalView::from).collect();
        Ok(ok_json(StatusCode::OK, &views))
    }
    .await;
    audited(&st, &caller.actor(), "approval.list", Attempt::default(), r).await
}

async fn load_approval(st: &AppState, caller: &ApiCaller, raw: &str) -> Result<Approval, ApiError> {
    let id = RequestId::parse(raw)?;
    approvals::expire_due(st.db().as_ref(), st.clock().now()).await?;
    st.db()
        .get_approval(id)
        .await?
        .filter(|a| a.tenant_id == caller.key.tenant_id)
        .ok_or_else(|| ApiError::not_found(format!("request {id} has no approval")))
}

/// One approval.
#[utoipa::path(
    get,
    path = "/api/v1/approvals/{id}",
    tag = "approvals",
    params(("id" = Uuid, Path, description = "The request id")),
    responses(
        (status = 200, body = ApprovalView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn get_approval(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = async {
        guard(&st, &resolver, &caller, Action::ApproveRequest).await?;
        let a = load_approval(&st, &caller, &id).await?;
        Ok(ok_json(StatusCode::OK, &ApprovalView::from(&a)))
    }
    .await;
    audited(&st, &caller.actor(), "approval.read", attempt, r).await
}

/// An approver's reason.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[schema(example = "confirmed with the user by phone")]
    pub reason: String,
}

async fn decide(
    st: &AppState,
    resolver: &PolicyResolver,
    caller: &ApiCaller,
    raw_id: &str,
    resolution: Resolution,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    guard(st, resolver, caller, Action::ApproveRequest).await?;
    let body = raw_body(body, st.config().body_limit)?;
    let b: DecisionBody = parse_json(&body)?;
    let id = RequestId::parse(raw_id)?;
    let approver = Caller {
        role: None,
        ..caller_of(&caller.key, Channel::Api)
    };
    let a = approvals::decide(
        st.db().as_ref(),
        id,
        &approver,
        resolution,
        &b.reason,
        caller.ctx.client_ip.as_deref(),
        st.clock().now(),
    )
    .await
    .map_err(approval_error)?;
    if a.state == ApprovalState::Approved {
        st.wake_worker();
    }
    Ok(ok_json(StatusCode::OK, &ApprovalView::from(&a)))
}

/// Approve a held request (two-person rule: not by its requester). It is
/// queued and the worker runs it; poll the request for its outcome.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/approve",
    tag = "approvals",
    params(("id" = Uuid, Path, description = "The request id")),
    request_body = DecisionBody,
    responses(
        (status = 200, body = ApprovalView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an approver, or the requester (`self_approval`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already decided, or expired (`approval_expired`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn approve(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = decide(&st, &resolver, &caller, &id, Resolution::Approve, body).await;
    audited(&st, &caller.actor(), "approval.approve", attempt, r).await
}

/// Deny a held request: it becomes `rejected` and never runs.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/deny",
    tag = "approvals",
    params(("id" = Uuid, Path, description = "The request id")),
    request_body = DecisionBody,
    responses(
        (status = 200, body = ApprovalView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn deny(
    State(st): State<AppState>,
    Extension(resolver): Extension<Arc<PolicyResolver>>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = decide(&st, &resolver, &caller, &id, Resolution::Deny, body).await;
    audited(&st, &caller.actor(), "approval.deny", attempt, r).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use sever_core::admin::{AuditEvent, AuditQuery, Scope};
    use sever_core::{
        Database, EngineSettings, NewRequest, Reason, RequestStatus, SystemClock, TenantId,
    };
    use tower::ServiceExt;

    struct Fixture {
        _dir: tempfile::TempDir,
        db: Arc<dyn Database>,
        app: axum::Router,
        tenant: TenantId,
        a: ApiKey,
        b: ApiKey,
        a_token: String,
        b_token: String,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = sever_store::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        let sealer = Arc::new(sever_store::XChaChaSealer::from_bytes(&[7u8; 32]).unwrap());
        let state = AppState::new(
            db.clone(),
            sealer,
            Arc::new(SystemClock),
            sever_connectors::HttpClient::new().unwrap(),
            EngineSettings::default(),
            crate::ServerConfig::default(),
        );
        let cli = crate::Actor::cli(TenantId::DEFAULT, "cli:test");
        let tenant = crate::create_tenant(&*db, &SystemClock, None, "Acme", &cli)
            .await
            .unwrap();
        let a = crate::create_api_key(&*db, &SystemClock, tenant.id, "a", &Scope::ALL, &cli)
            .await
            .unwrap();
        let b = crate::create_api_key(&*db, &SystemClock, tenant.id, "b", &Scope::ALL, &cli)
            .await
            .unwrap();
        let (router, _) = routes(Arc::new(PolicyResolver::for_server(None))).split_for_parts();
        let app = router
            .layer(axum::middleware::from_fn(crate::error::request_context))
            .with_state(state);
        Fixture {
            _dir: dir,
            db,
            app,
            tenant: tenant.id,
            a: a.key,
            b: b.key,
            a_token: a.plaintext,
            b_token: b.plaintext,
        }
    }

    async fn call(
        f: &Fixture,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let resp = f
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn the_stored_policy_is_read_replaced_explained_and_reset_over_the_api() {
        let f = fixture().await;
        let (s, v) = call(&f, &f.a_token, "GET", "/api/v1/policy", None, None).await;
        assert_eq!(
            (s, v["origin"].as_str()),
            (StatusCode::OK, Some("built_in"))
        );
        let seed = serde_json::json!({"version": "1", "default": "deny", "tools": {"revoke_sessions": {
            "limits": [{"counter": "revoke_sessions_rate", "window": "minute", "max": 10, "scope": "grant"}]}}});
        let (s, v) = call(&f, &f.a_token, "PUT", "/api/v1/policy", Some(seed), None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("policy_locks_out")),
            "{v}"
        );
        let bad = serde_json::json!({"version": "1", "tools": {"revoke_sessions": {"limits": [
            {"counter": "c", "window": "fortnight", "max": 1}]}}});
        let (s, v) = call(&f, &f.a_token, "PUT", "/api/v1/policy", Some(bad), None).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tools.revoke_sessions.limits[0].window: \"fortnight\" is not one of"),
            "{v}"
        );
        let good = serde_json::json!({"version": "1", "default": "deny", "tools": {
            "manage_policy": {}, "approve_request": {},
            "revoke_sessions": {"require_approval": {"channels": ["mcp"]}}}});
        let (s, v) = call(
            &f,
            &f.a_token,
            "PUT",
            "/api/v1/policy",
            Some(good.clone()),
            None,
        )
        .await;
        assert_eq!(
            (s, v["revision"].as_i64()),
            (StatusCode::OK, Some(1)),
            "{v}"
        );
        let (s, _) = call(
            &f,
            &f.a_token,
            "PUT",
            "/api/v1/policy",
            Some(good.clone()),
            Some("\"7\""),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, v) = call(
            &f,
            &f.a_token,
            "PUT",
            "/api/v1/policy",
            Some(good),
            Some("1"),
        )
        .await;
        assert_eq!((s, v["revision"].as_i64()), (StatusCode::OK, Some(2)));
        let ask = serde_json::json!({"action": "revoke_sessions", "usernames": ["bob@example.com"], "channel": "mcp"});
        let (s, v) = call(
            &f,
            &f.a_token,
            "POST",
            "/api/v1/policy/explain",
            Some(ask),
            None,
        )
        .await;
        assert_eq!(
            (s, v["decision"].as_str()),
            (StatusCode::OK, Some("require_approval")),
            "{v}"
        );
        assert_eq!(v["origin"], "stored");
        let ask = serde_json::json!({"action": "read_audit"});
        let (_, v) = call(
            &f,
            &f.a_token,
            "POST",
            "/api/v1/policy/explain",
            Some(ask),
            None,
        )
        .await;
        assert_eq!(v["decision"], "deny");
        let audit =
            f.db.list_audit(&AuditQuery {
                tenant_id: Some(f.tenant),
                after_seq: None,
                limit: 100,
            })
            .await
            .unwrap();
        let updates: Vec<&AuditEvent> = audit
            .iter()
            .map(|r| &r.event)
            .filter(|e| e.action == "policy.update")
            .collect();
        assert!(
            updates.iter().any(|e| e.decision == "denied"),
            "the refused changes are audited"
        );
        let last = updates
            .iter()
            .rev()
            .find(|e| e.decision == "allowed")
            .unwrap();
        assert_eq!(last.detail["before_revision"], 1);
        assert_eq!(
            last.detail["after"]["tools"]["revoke_sessions"]["require_approval"]["channels"][0],
            "mcp"
        );
        let (s, _) = call(&f, &f.a_token, "DELETE", "/api/v1/policy", None, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call(&f, &f.a_token, "DELETE", "/api/v1/policy", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_held_request_is_approved_by_another_admin_key_and_never_by_its_requester() {
        let f = fixture().await;
        let req = NewRequest {
            id: RequestId::new(),
            tenant_id: f.tenant,
            username: Username::parse("bob@example.com").unwrap(),
            reason: Reason::parse("phished").unwrap(),
            channel: Channel::Api,
            requested_by: format!("key:{}", f.a.id),
            status: RequestStatus::PendingApproval,
            targets: vec![],
            created_at: Utc::now(),
        };
        let approval = Approval {
            request_id: req.id,
            tenant_id: f.tenant,
            action: "revoke_sessions".into(),
            username: "bob@example.com".into(),
            request_reason: "phished".into(),
            channel: Channel::Api,
            requested_by: req.requested_by.clone(),
            requester_person: None,
            reasons: vec!["revoke_sessions always needs approval".into()],
            state: ApprovalState::Pending,
            created_at: req.created_at,
            expires_at: req.created_at + chrono::Duration::minutes(30),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        };
        let audit = AuditEvent {
            tenant_id: f.tenant,
            at: req.created_at,
            actor: req.requested_by.clone(),
            role: None,
            channel: Channel::Api,
            source: None,
            client_ip: None,
            action: "revoke_sessions".into(),
            target: None,
            reason: None,
            decision: "allowed".into(),
            result: Some("pending_approval".into()),
            request_id: Some(req.id),
            detail: serde_json::json!({}),
        };
        f.db.insert_pending_request(&req, &approval, &audit)
            .await
            .unwrap();
        let path = |what: &str| format!("/api/v1/approvals/{}{what}", req.id);
        let reason = serde_json::json!({"reason": "called bob"});
        let (s, v) = call(
            &f,
            &f.a_token,
            "POST",
            &path("/approve"),
            Some(reason.clone()),
            None,
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("self_approval")),
            "{v}"
        );
        let (s, v) = call(
            &f,
            &f.b_token,
            "POST",
            &path("/approve"),
            Some(serde_json::json!({"reason": " "})),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let (s, v) = call(&f, &f.a_token, "GET", "/api/v1/approvals", None, None).await;
        assert_eq!((s, v.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
        let (s, v) = call(
            &f,
            &f.b_token,
            "POST",
            &path("/approve"),
            Some(reason.clone()),
            None,
        )
        .await;
        assert_eq!(
            (s, v["state"].as_str()),
            (StatusCode::OK, Some("approved")),
            "{v}"
        );
        assert_eq!(
            f.db.get_request(req.id).await.unwrap().unwrap().status,
            RequestStatus::Queued
        );
        let (s, _) = call(&f, &f.b_token, "POST", &path("/deny"), Some(reason), None).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, v) = call(&f, &f.a_token, "GET", &path(""), None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["decided_by"], format!("key:{}", f.b.id));
        assert_eq!(v["decision_reason"], "called bob");
        let (_, v) = call(
            &f,
            &f.a_token,
            "GET",
            "/api/v1/approvals?state=pending",
            None,
            None,
        )
        .await;
        assert_eq!(v.as_array().map(Vec::len), Some(0));
        let (s, _) = call(
            &f,
            &f.a_token,
            "GET",
            "/api/v1/approvals?state=maybe",
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let trail =
            f.db.list_audit(&AuditQuery {
                tenant_id: Some(f.tenant),
                after_seq: None,
                limit: 100,
            })
            .await
            .unwrap();
        assert!(
            trail.iter().any(|r| r.event.action == "approval.approve"
                && r.event.decision == "denied"
                && r.event.actor == format!("key:{}", f.a.id)),
            "the self-approval attempt is audited"
        );
        assert!(trail
            .iter()
            .any(|r| r.event.action == "approval.approve" && r.event.decision == "allowed"));
    }
}
