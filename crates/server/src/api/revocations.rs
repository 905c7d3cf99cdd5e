//! `/api/v1/revocations`: revoke a person's sessions, read one request or a
//! page of them, and preview who would be affected without changing
//! anything.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sever_core::admin::Scope;
use sever_core::policy::Action;
use sever_core::{Channel, RequestId, RequestQuery, RequestStatus, RevocationRequest, TenantId};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::policy::{caller_of, require_key};
use super::views::{RequestStatusSchema, RevocationPage, RevocationSummaryView, RevocationView};
use super::{json_response, parse_json, raw_body, replay_response};
use crate::audit::Actor;
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency;
use crate::usecases::{self, PreviewView, RevokeCommand};
use crate::worker::wait_for_final;
use crate::AppState;

/// What a handler learnt before it failed, for the refusal's audit record.
#[derive(Default)]
pub(crate) struct Attempt {
    pub target: Option<String>,
    /// The request was accepted (and audited by the engine): a later error
    /// is not a refusal.
    pub accepted: bool,
}

/// Audit `r` as a refusal unless it succeeded or the action was accepted.
pub(crate) async fn audited<T>(
    st: &AppState,
    actor: &Actor,
    action: &str,
    attempt: Attempt,
    r: Result<T, ApiError>,
) -> Result<T, ApiError> {
    if let Err(e) = &r {
        if !attempt.accepted {
            actor.deny(st, action, attempt.target.as_deref(), e).await;
        }
    }
    r
}

/// A revocation to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationBody {
    /// The person: an email, a UPN or a login.
    #[schema(example = "alice@example.com")]
    pub username: String,
    /// Why; kept with the request and in the audit trail.
    #[serde(default)]
    #[schema(example = "account takeover")]
    pub reason: Option<String>,
    /// Connector instance names; every enabled connector when absent.
    #[serde(default)]
    pub integration_targets: Option<Vec<String>>,
    /// What sent it (a playbook name), for the audit trail.
    #[serde(default)]
    pub source: Option<String>,
}

/// The answer for a request: 200 when final, 202 while it still runs.
pub(crate) fn request_response(req: &RevocationRequest) -> (StatusCode, serde_json::Value) {
    let status = if req.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        serde_json::to_value(RevocationView::from(req)).unwrap_or_default(),
    )
}

fn with_location(mut r: Response, id: RequestId) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/revocations/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The request a stored idempotent answer names, as it stands now.
pub(crate) async fn replayed_request(
    st: &AppState,
    tenant: TenantId,
    stored: &serde_json::Value,
    wait: Duration,
) -> Result<RevocationRequest, ApiError> {
    let id = stored["request_id"]
        .as_str()
        .and_then(|s| RequestId::parse(s).ok())
        .ok_or_else(|| ApiError::internal("stored idempotent answer has no request_id"))?;
    let req = wait_for_final(st, id, tokio::time::Instant::now() + wait).await?;
    if req.tenant_id != tenant {
        return Err(ApiError::not_found(format!("request {id} was not found")));
    }
    Ok(req)
}

/// Revoke every session of a person.
///
/// Writes the request (and its audit record) before any provider is called,
/// runs it apart from this HTTP request (a client that disconnects does not
/// cancel it), and waits up to a bounded time for the result: 200 when it
/// finished, 202 while it still runs (poll `GET /api/v1/revocations/{id}`).
///
/// The tenant's policy decides first (docs/policy.md): a refusal is 403
/// `policy_denied`, or 429 `rate_limited` when a limit, cooldown or cap
/// refused, and writes nothing. A revocation the policy holds for a second
/// person's approval is answered at once with 202 and status
/// `pending_approval`; it runs once an owner or admin other than the
/// requester approves it (`POST /api/v1/approvals/{id}/approve`), and
/// becomes `rejected` or `expired` otherwise.
#[utoipa::path(
    post,
    path = "/api/v1/revocations",
    tag = "revocations",
    request_body = RevocationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first answer; another body is 409.")),
    responses(
        (status = 200, description = "Finished (completed or failed)", body = RevocationView),
        (status = 202, description = "Accepted and still running, or waiting for approval (`pending_approval`)", body = RevocationView),
        (status = 401, description = "Missing or bad API key", body = ErrorBody),
        (status = 403, description = "Missing scope sessions:revoke, revocation disabled for the tenant, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Invalid input (names the field)", body = ErrorBody),
        (status = 429, description = "Refused by a rate limit, cooldown or blast-radius cap of the policy (`rate_limited`; the message says when it lifts)", body = ErrorBody),
    ),
    security(("api_key" = ["sessions:revoke"]))
)]
pub async fn create(
    State(st): State<AppState>,
    caller: ApiCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut attempt = Attempt::default();
    let r = create_inner(&st, &caller, body, &mut attempt).await;
    audited(&st, &caller.actor(), "revoke_sessions", attempt, r).await
}

async fn create_inner(
    st: &AppState,
    caller: &ApiCaller,
    body: Result<Bytes, BytesRejection>,
    attempt: &mut Attempt,
) -> Result<Response, ApiError> {
    check_scope(&caller.key.scopes, Scope::SessionsRevoke)?;
    let body = raw_body(body, st.config().body_limit)?;
    let parsed: RevocationBody = parse_json(&body)?;
    attempt.target = Some(parsed.username.trim().to_string());
    let idempotency = caller.ctx.idempotency_key()?.map(|k| {
        (
            k.to_string(),
            idempotency::request_digest("POST", "/api/v1/revocations", &body),
        )
    });
    let revoked = usecases::revoke_sessions_as(
        st,
        RevokeCommand {
            tenant: caller.key.tenant_id,
            username: parsed.username,
            reason: parsed.reason,
            targets: parsed.integration_targets,
            source: parsed.source,
            channel: Channel::Api,
            requested_by: format!("key:{}", caller.key.id),
            client_ip: caller.ctx.client_ip.clone(),
            idempotency,
            wait: st.config().api_wait,
        },
        &caller_of(&caller.key, Channel::Api),
        attempt,
    )
    .await?;
    let (status, view) = request_response(&revoked.request);
    let response = if revoked.replayed {
        replay_response(status.as_u16(), view)
    } else {
        json_response(status, &view)
    };
    Ok(with_location(response, revoked.request.id))
}

/// One request with every connector's outcome and attempts.
#[utoipa::path(
    get,
    path = "/api/v1/revocations/{id}",
    tag = "revocations",
    params(("id" = Uuid, Path, description = "The request id")),
    responses(
        (status = 200, description = "The request", body = RevocationView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
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
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        require_key(&st, &caller, Action::GetRevocationStatus).await?;
        let req = load(&st, caller.key.tenant_id, &id).await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(RevocationView::from(&req)).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "revocation.read", attempt, r).await
}

/// A request of `tenant`, or 404 (also for another tenant's request).
pub(crate) async fn load(
    st: &AppState,
    tenant: TenantId,
    raw_id: &str,
) -> Result<RevocationRequest, ApiError> {
    usecases::load_request(st, tenant, raw_id).await
}

/// Filters of the request listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only requests in this status.
    #[param(value_type = Option<RequestStatusSchema>)]
    pub status: Option<String>,
    /// Only requests for this person (case-insensitive).
    pub user: Option<String>,
    /// Only requests that targeted this connector instance (or provider key).
    pub connector: Option<String>,
    /// Only requests created at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only requests created at or before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// The `next_before` of the previous page.
    pub before: Option<Uuid>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
}

/// The smallest UUIDv7 of millisecond `ms`: every request id made at or
/// before `ms - 1` sorts below it.
fn v7_floor(ms: i64) -> RequestId {
    let ms = u128::try_from(ms.max(0)).unwrap_or(0) & ((1u128 << 48) - 1);
    RequestId(Uuid::from_u128(
        (ms << 80) | (0x7u128 << 76) | (0x2u128 << 62),
    ))
}

/// How many rows one listing call may scan when filters the store cannot
/// apply (connector, time window) leave most of them out.
const MAX_SCAN: usize = 2000;

pub(crate) fn query_error(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    let text = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text)
        .to_string();
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("query");
        return ApiError::invalid(field, "is not a known parameter");
    }
    match text.split_once(": ") {
        Some((field, problem))
            if !field.is_empty()
                && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            ApiError::invalid(field, problem)
        }
        _ => ApiError::invalid("query", text),
    }
}

/// Requests of the tenant, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/revocations",
    tag = "revocations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of requests", body = RevocationPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn list(
    State(st): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        let Query(q) = q.map_err(query_error)?;
        require_key(&st, &caller, Action::GetRevocationStatus).await?;
        let page = list_page(&st, caller.key.tenant_id, q).await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(page).unwrap_or_default(),
        ))
    }
    .await;
    audited(
        &st,
        &caller.actor(),
        "revocation.list",
        Attempt::default(),
        r,
    )
    .await
}

async fn list_page(
    st: &AppState,
    tenant: TenantId,
    q: ListQuery,
) -> Result<RevocationPage, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let status = q
        .status
        .as_deref()
        .map(str::parse::<RequestStatus>)
        .transpose()?;
    let mut cursor = q.before.map(RequestId);
    if let Some(until) = q.until {
        let bound = v7_floor(until.timestamp_millis() + 1);
        cursor = Some(cursor.map_or(bound, |c| c.min(bound)));
    }
    let page_size: u32 = 200;
    let mut items = Vec::new();
    let mut scanned = 0usize;
    let mut next_before = None;
    'scan: loop {
        let rows = st
            .db()
            .list_requests(&RequestQuery {
                tenant_id: Some(tenant),
                status,
                username: q.user.clone(),
                limit: page_size,
                before: cursor,
            })
            .await?;
        let exhausted = rows.len() < page_size as usize;
        for row in rows {
            scanned += 1;
            cursor = Some(row.id);
            if q.since.is_some_and(|s| row.created_at < s) {
                break 'scan;
            }
            if q.until.is_some_and(|u| row.created_at > u) {
                continue;
            }
            if let Some(c) = &q.connector {
                let Some(full) = st.db().get_request(row.id).await? else {
                    continue;
                };
                if !full
                    .results
                    .iter()
                    .any(|r| r.instance.as_str() == c || r.provider.as_str() == c)
                {
                    continue;
                }
            }
            items.push(RevocationSummaryView::from(&row));
            if items.len() == limit as usize {
                next_before = Some(row.id);
                break 'scan;
            }
            if scanned >= MAX_SCAN {
                next_before = cursor;
                break 'scan;
            }
        }
        if exhausted {
            break;
        }
        if scanned >= MAX_SCAN {
            next_before = cursor;
            break;
        }
    }
    Ok(RevocationPage { items, next_before })
}

/// Who would be affected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    #[schema(example = "alice@example.com")]
    pub username: String,
    /// Connector instance names; every enabled connector when absent.
    #[serde(default)]
    pub integration_targets: Option<Vec<String>>,
}

/// Look the person up in each connector and change nothing.
#[utoipa::path(
    post,
    path = "/api/v1/revocations/preview",
    tag = "revocations",
    request_body = PreviewBody,
    responses(
        (status = 200, description = "Per-connector lookups", body = PreviewView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Refused by a rate limit of the policy (`rate_limited`)", body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn preview(
    State(st): State<AppState>,
    caller: ApiCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut attempt = Attempt::default();
    let actor = caller.actor();
    let r = async {
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        let body = raw_body(body, st.config().body_limit)?;
        let parsed: PreviewBody = parse_json(&body)?;
        let view = usecases::preview_as(
            &st,
            &actor,
            &caller_of(&caller.key, Channel::Api),
            &parsed.username,
            parsed.integration_targets.as_deref(),
            &mut attempt,
        )
        .await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(view).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &actor, "preview", attempt, r).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v7_floor_of_a_millisecond_sorts_below_every_id_made_in_it_and_above_earlier_ones() {
        let now = Utc::now().timestamp_millis();
        let id = RequestId::new();
        let made = i64::try_from(id.0.as_u128() >> 80).unwrap();
        assert!(made >= now - 1000);
        assert!(v7_floor(made) <= id);
        assert!(v7_floor(made + 1) > id);
    }
}
