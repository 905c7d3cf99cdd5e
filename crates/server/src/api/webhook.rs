//! The SOAR entry point (DESIGN.md §2, seed 004): `POST
//! /api/v1/session-revocation/webhook`, authenticated by an HMAC signature of
//! the raw body with the tenant's `sr_…` secret, and the poll `GET
//! /api/v1/session-revocation/requests/{id}`.
//!
//! The order of checks is part of the contract (docs/api.md): a request
//! without a signature header is refused (401) before anything is looked up,
//! so an unsigned caller learns nothing, not even whether a tenant exists;
//! with a signature, an unknown tenant is 404; then the channel switch
//! (403), the signature itself (401), the master switch (403), the
//! idempotency key (replay or 409), the body (422), and the tenant's policy
//! (403 `policy_denied`, 429 `rate_limited`; the webhook is one grant,
//! `webhook`, per tenant). Every refusal after the tenant is known goes to
//! the audit trail. A revocation the policy holds for approval is answered
//! 202 with `job_status: "pending_approval"`; the poll then shows
//! `queued`/`running`/`completed` once approved, `rejected` if denied,
//! `expired` if nobody decided in time.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sever_core::admin::{Scope, TenantSettings};
use sever_core::approvals::Submission;
use sever_core::policy::{Action, ActionArgs, RequestContext};
use sever_core::{
    Channel, Reason, RequestStatus, RevocationInput, RevocationRequest, TenantId, Username,
};
use utoipa::ToSchema;

use super::policy::{authorize, require, webhook_caller};
use super::revocations::{audited, load, replayed_request, Attempt};
use super::views::{RequestStatusSchema, RevocationView};
use super::{json_response, parse_json, raw_body};
use crate::admin::webhook_secret;
use crate::audit::Actor;
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, Ctx, ErrorBody};
use crate::idempotency::{self, Begin};
use crate::signature::{self, Signature};
use crate::worker::{run_new_and_wait, submit_authorized};
use crate::AppState;

pub const WEBHOOK_PATH: &str = "/api/v1/session-revocation/webhook";

/// A revocation asked for by a SOAR.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    #[schema(value_type = Uuid)]
    pub tenant_id: String,
    /// Must be `revoke_sessions`.
    #[schema(example = "revoke_sessions")]
    pub action: String,
    /// The person: an email, a UPN or a login.
    #[schema(example = "alice@example.com")]
    pub username: String,
    #[serde(default)]
    #[schema(example = "SOAR containment")]
    pub reason: Option<String>,
    /// Connector instance names; every enabled connector when absent.
    #[serde(default)]
    #[schema(example = json!(["okta", "google_workspace"]))]
    pub integration_targets: Option<Vec<String>>,
    /// What sent it (a playbook name), kept in the audit trail.
    #[serde(default)]
    #[schema(example = "tines-playbook")]
    pub source: Option<String>,
}

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    #[schema(value_type = Uuid)]
    pub request_id: String,
    #[schema(value_type = RequestStatusSchema)]
    pub job_status: RequestStatus,
}

/// The poll's answer: the webhook's two fields and the whole request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PollAnswer {
    #[schema(value_type = Uuid)]
    pub request_id: String,
    #[schema(value_type = RequestStatusSchema)]
    pub job_status: RequestStatus,
    #[serde(flatten)]
    pub request: RevocationView,
}

fn answer(req: &RevocationRequest) -> Response {
    let status = if req.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = json!({"request_id": req.id.to_string(), "job_status": req.status});
    let mut r = json_response(status, &body);
    let poll = format!(
        "/api/v1/session-revocation/requests/{}?tenant_id={}",
        req.id, req.tenant_id
    );
    if let Ok(v) = HeaderValue::from_str(&poll) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn missing_signature() -> ApiError {
    ApiError::unauthorized(
        "missing X-Session-Revocation-Signature header: sign the raw body with HMAC-SHA256 and the tenant's sr_… secret",
    )
}

/// The tenant's secret, or 403 while the channel is off.
fn secret_of(st: &AppState, settings: &TenantSettings) -> Result<Vec<u8>, ApiError> {
    if !settings.webhook_enabled {
        return Err(ApiError::channel_disabled("webhook"));
    }
    webhook_secret(st.sealer().as_ref(), settings)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::channel_disabled("webhook"))
}

fn verify(
    st: &AppState,
    header: &str,
    secret: &[u8],
    message: &[u8],
    settings: &TenantSettings,
) -> Result<(), ApiError> {
    Signature::parse(header)
        .and_then(|s| {
            s.verify(
                secret,
                message,
                st.clock().now().timestamp(),
                settings.webhook_require_timestamp,
            )
        })
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// Revoke a person's sessions from a SOAR, authenticated by signature.
///
/// Waits briefly for the result: 200 with the final `job_status`, or 202
/// while it still runs (poll the URL in `Location`).
#[utoipa::path(
    post,
    path = "/api/v1/session-revocation/webhook",
    tag = "webhook",
    request_body = WebhookBody,
    params(
        ("X-Session-Revocation-Signature" = String, Header, description = "`sha256=<hex>` of the raw body, or `t=<unix>,v1=<hex>` of `\"<t>.<raw body>\"` (refused beyond ±5 minutes)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer; another body is 409."),
    ),
    responses(
        (status = 200, description = "Finished", body = WebhookAnswer),
        (status = 202, description = "Accepted and still running, or waiting for approval (`pending_approval`)", body = WebhookAnswer),
        (status = 401, description = "Missing, malformed, stale or wrong signature", body = ErrorBody),
        (status = 403, description = "Webhook channel or session revocation disabled for the tenant, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 404, description = "Unknown tenant (only when signed)", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Invalid body (names the field)", body = ErrorBody),
        (status = 429, description = "Refused by a rate limit, cooldown or blast-radius cap of the policy (`rate_limited`)", body = ErrorBody),
    ),
    security(("webhook_signature" = []))
)]
pub async fn webhook(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r = receive(&st, ctx, headers, body).await;
    if let Err(e) = &r {
        st.metrics().webhook_rejected(rejection_reason(e));
    }
    r
}

/// The `reason` label of a refusal in `sever_webhook_rejections_total`.
fn rejection_reason(e: &ApiError) -> &'static str {
    if e.status == StatusCode::UNAUTHORIZED {
        use crate::signature::SignatureError as S;
        for (kind, reason) in [
            (S::Mismatch, "bad_signature"),
            (S::Stale, "stale_timestamp"),
            (S::Malformed, "malformed_signature"),
            (S::TimestampRequired, "timestamp_required"),
        ] {
            if e.message == kind.to_string() {
                return reason;
            }
        }
        return "missing_signature";
    }
    match e.code {
        "not_found" => "unknown_tenant",
        code => code,
    }
}

async fn receive(
    st: &AppState,
    ctx: Ctx,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let st = st.clone();
    let sig = headers
        .get(signature::HEADER)
        .ok_or_else(missing_signature)?
        .to_str()
        .unwrap_or("")
        .to_string();
    let body = raw_body(body, st.config().body_limit)?;
    let value: Value = parse_json(&body)?;
    let tenant = match value.get("tenant_id") {
        Some(Value::String(s)) => TenantId::parse(s)?,
        None | Some(Value::Null) => return Err(ApiError::invalid("tenant_id", "is required")),
        Some(_) => return Err(ApiError::invalid("tenant_id", "must be a UUID string")),
    };
    if !st.tenant_exists(tenant).await? {
        return Err(ApiError::not_found(format!("unknown tenant {tenant}")));
    }
    let source = value
        .get("source")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(200).collect::<String>());
    let actor = Actor::webhook(tenant, &ctx, source);
    let mut attempt = Attempt {
        target: value
            .get("username")
            .and_then(Value::as_str)
            .map(|s| s.trim().chars().take(320).collect()),
        accepted: false,
    };
    let r = revoke(&st, &ctx, tenant, &sig, &body, &mut attempt).await;
    audited(&st, &actor, "revoke_sessions", attempt, r).await
}

async fn revoke(
    st: &AppState,
    ctx: &Ctx,
    tenant: TenantId,
    sig: &str,
    body: &[u8],
    attempt: &mut Attempt,
) -> Result<Response, ApiError> {
    let settings = st.db().get_settings(tenant).await?;
    let secret = secret_of(st, &settings)?;
    verify(st, sig, &secret, body, &settings)?;
    if !settings.revocation_enabled {
        return Err(ApiError::revocation_disabled());
    }
    let digest = idempotency::request_digest("POST", WEBHOOK_PATH, body);
    let pending = match idempotency::begin(st, tenant, ctx.idempotency_key()?, digest).await? {
        Begin::Replay { body, .. } => {
            attempt.accepted = true;
            let req = replayed_request(st, tenant, &body, st.config().webhook_wait).await?;
            let mut r = answer(&req);
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(r);
        }
        Begin::Fresh(p) => Some(p),
        Begin::NoKey => None,
    };
    let parsed: WebhookBody = parse_json(body)?;
    if parsed.action != "revoke_sessions" {
        return Err(ApiError::invalid(
            "action",
            format!(
                "'{}' is not supported; the only action is \"revoke_sessions\"",
                parsed.action.escape_debug()
            ),
        ));
    }
    let input = RevocationInput {
        tenant_id: tenant,
        username: Username::parse(&parsed.username)?,
        reason: Reason::parse(parsed.reason.as_deref().unwrap_or(""))?,
        channel: Channel::Webhook,
        requested_by: "webhook".into(),
        targets: parsed.integration_targets,
        source: parsed.source,
        client_ip: ctx.client_ip.clone(),
    };
    let engine = st.engine(tenant).await?;
    let plan = engine.plan(input.targets.as_deref())?;
    let ctx = RequestContext {
        caller: webhook_caller(tenant),
        action: Action::RevokeSessions,
        args: ActionArgs {
            usernames: vec![input.username.clone()],
            integration_targets: input.targets.clone(),
            connectors: plan.iter().map(|(n, _)| n.to_string()).collect(),
            reason: Some(input.reason.as_str().to_string()),
        },
    };
    let auth = authorize(st, &ctx).await?;
    let submission = submit_authorized(st, engine.clone(), input, auth, None, pending).await?;
    attempt.accepted = true;
    let req = match submission {
        Submission::Queued(new) => {
            run_new_and_wait(st, engine, &new, st.config().webhook_wait).await?
        }
        // Held for a second person: answer 202 `pending_approval` at once;
        // the poll shows the final status once it is decided or expires.
        Submission::PendingApproval(new, _) => load(st, tenant, &new.id.to_string()).await?,
    };
    Ok(answer(&req))
}

/// Poll a request started by the webhook (or any other channel).
///
/// Authenticate with an API key holding `sessions:read`, or sign
/// `"<path>?<query>"` (e.g. `/api/v1/session-revocation/requests/<id>?tenant_id=<uuid>`)
/// the way the webhook body is signed.
#[utoipa::path(
    get,
    path = "/api/v1/session-revocation/requests/{request_id}",
    tag = "webhook",
    params(
        ("request_id" = Uuid, Path, description = "The webhook's request_id"),
        ("tenant_id" = Option<Uuid>, Query, description = "The tenant; required with a signature"),
        ("X-Session-Revocation-Signature" = Option<String>, Header, description = "Signature of `<path>?<query>` (or `<t>.<path>?<query>`), when no API key is sent"),
    ),
    responses(
        (status = 200, description = "The request with every connector's outcome", body = PollAnswer),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]), ("webhook_signature" = []))
)]
pub async fn poll(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    uri: Uri,
    Path(request_id): Path<String>,
    caller: Result<ApiCaller, ApiError>,
) -> Result<Response, ApiError> {
    let query_tenant = query_tenant(&uri)?;
    let req = if headers.contains_key(header::AUTHORIZATION) {
        let caller = caller?;
        let attempt = Attempt {
            target: Some(request_id.clone()),
            accepted: false,
        };
        let r = async {
            check_scope(&caller.key.scopes, Scope::SessionsRead)?;
            if query_tenant.is_some_and(|t| t != caller.key.tenant_id) {
                return Err(ApiError::not_found(format!(
                    "request {request_id} was not found"
                )));
            }
            super::policy::require_key(&st, &caller, Action::GetRevocationStatus).await?;
            load(&st, caller.key.tenant_id, &request_id).await
        }
        .await;
        audited(&st, &caller.actor(), "revocation.read", attempt, r).await?
    } else {
        let sig = headers
            .get(signature::HEADER)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "send an API key with sessions:read (Authorization: Bearer sk_…) or sign '<path>?<query>' in X-Session-Revocation-Signature",
                )
            })?
            .to_str()
            .unwrap_or("")
            .to_string();
        let tenant = query_tenant.ok_or_else(|| {
            ApiError::invalid(
                "tenant_id",
                "is required in the query when polling with a signature",
            )
        })?;
        if !st.tenant_exists(tenant).await? {
            return Err(ApiError::not_found(format!("unknown tenant {tenant}")));
        }
        let actor = Actor::webhook(tenant, &ctx, None);
        let attempt = Attempt {
            target: Some(request_id.clone()),
            accepted: false,
        };
        let r = async {
            let settings = st.db().get_settings(tenant).await?;
            let secret = secret_of(&st, &settings)?;
            let message = format!("{}?{}", uri.path(), uri.query().unwrap_or(""));
            verify(&st, &sig, &secret, message.as_bytes(), &settings)?;
            require(&st, webhook_caller(tenant), Action::GetRevocationStatus).await?;
            load(&st, tenant, &request_id).await
        }
        .await;
        audited(&st, &actor, "revocation.read", attempt, r).await?
    };
    let a = PollAnswer {
        request_id: req.id.to_string(),
        job_status: req.status,
        request: RevocationView::from(&req),
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::to_value(a).unwrap_or_default(),
    ))
}

/// `tenant_id` from the raw query, if present.
fn query_tenant(uri: &Uri) -> Result<Option<TenantId>, ApiError> {
    let Some(q) = uri.query() else {
        return Ok(None);
    };
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "tenant_id" {
            return TenantId::parse(v).map(Some).map_err(ApiError::from);
        }
    }
    Ok(None)
}
