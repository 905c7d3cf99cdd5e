//! `/api/v1/bulk-revocations`: revoke many people under one incident id
//! (issue 7), follow the job's progress, download its results as CSV, and
//! approve a job the policy held.
//!
//! The list arrives as JSON (its own, larger body limit:
//! `[server] bulk_body_limit`). Entries that name nobody valid are kept as
//! `invalid` items, reported by their index (`usernames[3]: ...`), and the
//! rest goes on; an empty list, a bad reason or unknown targets change
//! nothing. The policy decides the run as the action `bulk_revoke`
//! (`sever_core::bulk::authorize_people`): protected accounts are skipped
//! and never called, and more people than `[server]
//! bulk_approval_threshold` (or the policy's own rules) hold the job until
//! a second person approves it. The job runs in the background
//! ([`crate::bulk_jobs`]); a restart resumes it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sever_core::admin::Scope;
use sever_core::approvals::may_approve;
use sever_core::bulk::{self, BulkState, ItemState, NewBulkJob};
use sever_core::policy::{Action, Decision};
use sever_core::{Channel, Reason, Username};
use utoipa::ToSchema;

use super::policy::{caller_of, policy_error, require_key};
use super::revocations::{audited, Attempt};
use super::{json_response, parse_json, replay_response};
use crate::audit::Decision as AuditDecision;
use crate::auth::{check_scope, ApiCaller};
use crate::bulk_jobs::{self, BulkJobView};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Begin};
use crate::AppState;

pub const PATH: &str = "/api/v1/bulk-revocations";

/// Many people to revoke under one incident.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The people: emails, UPNs or logins. Entries that name nobody valid
    /// are reported by index and skipped; the rest goes on.
    #[schema(value_type = Vec<String>, example = json!(["alice@example.com", "bob@example.com"]))]
    #[serde(default)]
    pub usernames: Option<Vec<serde_json::Value>>,
    /// Why; kept with every request and in the audit trail (required).
    #[schema(example = "token theft")]
    #[serde(default)]
    pub reason: Option<String>,
    /// The incident the job belongs to (default: one made up from the job id).
    #[serde(default)]
    #[schema(example = "INC-2031")]
    pub incident_id: Option<String>,
    /// Connector instance names; every enabled connector when absent.
    #[serde(default)]
    pub integration_targets: Option<Vec<String>>,
}

/// The tenant's bulk jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkPage {
    pub items: Vec<BulkJobView>,
}

/// A second person's approval of a held job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkApproveBody {
    /// Why (required).
    #[serde(default)]
    pub reason: Option<String>,
}

fn with_location(mut r: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("{PATH}/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The body, whole, up to `limit` bytes (413 over it).
async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        let too_large =
            std::iter::successors(Some(inner.as_ref() as &dyn std::error::Error), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::too_large(limit)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", inner.to_string())
        }
    })
}

/// Start a bulk revocation.
///
/// Checks the input, asks the policy (`bulk_revoke`), writes the job and
/// its items, and answers 202 at once; the job runs in the background
/// (follow it with `GET /api/v1/bulk-revocations/{id}`). Entries that name
/// nobody valid are listed in `invalid_items` by index and become
/// `invalid` rows of the results. Accounts the policy protects are
/// `skipped` and never called. A job the policy holds (more people than
/// the server's `bulk_approval_threshold`, default 1,000, or the policy's
/// own approval rules) is `pending_approval` until an owner or admin other
/// than the requester approves it.
#[utoipa::path(
    post,
    path = "/api/v1/bulk-revocations",
    tag = "bulk",
    request_body = BulkBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body get the first job; another body is 409.")),
    responses(
        (status = 202, description = "Accepted: running, or waiting for approval (`pending_approval`)", body = BulkJobView),
        (status = 401, description = "Missing or bad API key", body = ErrorBody),
        (status = 403, description = "Missing scope sessions:revoke, revocation disabled for the tenant, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body over the server's bulk_body_limit (4 MiB by default)", body = ErrorBody),
        (status = 422, description = "Invalid input (names the field): no people, no valid person, a bad reason, incident id or target", body = ErrorBody),
        (status = 429, description = "Refused by a rate limit, cooldown or blast-radius cap of the policy (`rate_limited`)", body = ErrorBody),
    ),
    security(("api_key" = ["sessions:revoke"]))
)]
pub async fn create(
    State(st): State<AppState>,
    caller: ApiCaller,
    body: Body,
) -> Result<Response, ApiError> {
    let mut attempt = Attempt::default();
    let r = create_inner(&st, &caller, body, &mut attempt).await;
    audited(&st, &caller.actor(), "bulk_revoke", attempt, r).await
}

async fn create_inner(
    st: &AppState,
    caller: &ApiCaller,
    body: Body,
    attempt: &mut Attempt,
) -> Result<Response, ApiError> {
    check_scope(&caller.key.scopes, Scope::SessionsRevoke)?;
    let tenant = caller.key.tenant_id;
    let body = read_limited(body, st.config().bulk_body_limit).await?;
    let parsed: BulkBody = parse_json(&body)?;
    let key = caller.ctx.idempotency_key()?;
    let digest = idempotency::request_digest("POST", PATH, &body);
    let pending = match idempotency::begin(st, tenant, key, digest).await? {
        Begin::Replay { status, body } => {
            attempt.accepted = true;
            let id = body["bulk_job_id"].as_str().unwrap_or_default().to_string();
            let job = bulk_jobs::load(st, tenant, &id).await?;
            let view = bulk_jobs::view(st, &job).await?;
            return Ok(with_location(
                replay_response(status, serde_json::to_value(view).unwrap_or_default()),
                &id,
            ));
        }
        Begin::Fresh(p) => Some(p),
        Begin::NoKey => None,
    };
    let view = start(
        st,
        StartBulk {
            tenant,
            caller: caller_of(&caller.key, Channel::Api),
            actor: caller.actor(),
            requested_by: format!("key:{}", caller.key.id),
            usernames: parsed.usernames,
            reason: parsed.reason,
            incident_id: parsed.incident_id,
            targets: parsed.integration_targets,
            pending,
        },
        attempt,
    )
    .await?;
    let id = view.id.clone();
    Ok(with_location(
        json_response(
            StatusCode::ACCEPTED,
            &serde_json::to_value(view).unwrap_or_default(),
        ),
        &id,
    ))
}

/// A bulk run as an entry point hands it over: raw input, checked here.
pub(crate) struct StartBulk {
    pub tenant: sever_core::TenantId,
    /// The policy's view of the caller (its channel is the job's).
    pub caller: sever_core::policy::Caller,
    pub actor: crate::audit::Actor,
    /// The caller as requests and the audit trail name it.
    pub requested_by: String,
    pub usernames: Option<Vec<serde_json::Value>>,
    pub reason: Option<String>,
    pub incident_id: Option<String>,
    pub targets: Option<Vec<String>>,
    /// An idempotency key being answered.
    pub pending: Option<idempotency::Pending>,
}

/// Start a bulk run (the API's and the UI's): refuse while the master
/// switch is off, check the input (422 naming the field, nothing written),
/// ask the policy (`bulk_revoke`; protected accounts skipped), write the
/// job, its items and its state with the audit record and idempotent
/// answer, and start it unless it is held for approval.
pub(crate) async fn start(
    st: &AppState,
    cmd: StartBulk,
    attempt: &mut Attempt,
) -> Result<BulkJobView, ApiError> {
    let StartBulk {
        tenant,
        caller: policy_caller,
        actor,
        requested_by,
        usernames,
        reason,
        incident_id,
        targets,
        pending,
    } = cmd;
    let channel = policy_caller.channel;
    let settings = st.db().get_settings(tenant).await?;
    if !settings.revocation_enabled {
        return Err(ApiError::revocation_disabled());
    }
    let entries = match usernames {
        Some(v) if !v.is_empty() => v,
        _ => {
            return Err(ApiError::invalid(
                "usernames",
                "must list at least one person",
            ))
        }
    };
    let reason = Reason::parse(reason.as_deref().unwrap_or(""))?;
    if reason.as_str().is_empty() {
        return Err(ApiError::invalid("reason", "is required for a bulk run"));
    }
    let incident = incident_id.unwrap_or_default();
    let incident = incident.trim();
    if incident.chars().count() > 200 || incident.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "incident_id",
            "must be at most 200 printable characters",
        ));
    }
    let incident = incident.to_string();
    let engine = st.engine(tenant).await?;
    let plan = engine.plan(targets.as_deref())?;
    let mut items = bulk::items_from_list("usernames", &entries);
    let invalid_items: Vec<String> = items
        .iter()
        .filter(|i| i.state == ItemState::Invalid)
        .filter_map(|i| i.note.clone())
        .collect();
    let people: Vec<Username> = items
        .iter()
        .filter(|i| i.state == ItemState::Pending)
        .filter_map(|i| Username::parse(&i.username).ok())
        .collect();
    if people.is_empty() {
        return Err(ApiError::invalid(
            "usernames",
            format!(
                "names nobody valid ({})",
                invalid_items
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    attempt.target = Some(format!("{} people", people.len()));
    let decided = bulk::authorize_people(
        st.policy(),
        st.db().as_ref(),
        &policy_caller,
        people,
        targets.clone(),
        plan.iter().map(|(n, _)| n.to_string()).collect(),
        &reason,
        st.config().bulk_approval_threshold,
        st.clock().now(),
    )
    .await?;
    let reasons = match decided.auth.decision() {
        Decision::Deny { .. } => return Err(policy_error(&decided.auth)),
        Decision::RequireApproval { reasons } => reasons.clone(),
        Decision::Allow => Vec::new(),
    };
    for item in items.iter_mut() {
        if item.state == ItemState::Pending
            && decided.protected.contains(&item.username.to_lowercase())
        {
            item.state = ItemState::Skipped;
            item.note = Some(bulk::PROTECTED_NOTE.to_string());
        }
    }
    // The job, its items, its state and the idempotent answer are written
    // in a task of their own: a client that disconnects cannot leave a job
    // without its idempotency record (a retry would start a second one).
    let state = st.clone();
    let held = !reasons.is_empty();
    let audit_detail = decided.auth.audit_detail();
    let skipped = decided.protected.len();
    let job = tokio::spawn(async move {
        let runner = bulk_jobs::runner_for(&state, engine);
        let job = runner
            .create(NewBulkJob {
                tenant_id: tenant,
                incident_id: incident,
                reason,
                channel,
                requested_by,
                targets,
                source: "api".into(),
            })
            .await
            .map_err(bulk_jobs::bulk_error)?;
        state.db().append_bulk_items(job.id, &items, true).await?;
        let to = if held {
            BulkState::PendingApproval
        } else {
            BulkState::Running
        };
        state
            .db()
            .set_bulk_state(job.id, to, state.clock().now())
            .await?;
        let ev = actor
            .event(
                state.clock().as_ref(),
                "bulk_revoke",
                AuditDecision::Allowed,
            )
            .target(Some(&format!("bulk:{}", job.id)))
            .reason(Some(job.reason.as_str()))
            .result(if held {
                "pending_approval".to_string()
            } else {
                "running".to_string()
            })
            .detail(json!({
                "bulk_job": job.id,
                "incident_id": job.incident_id,
                "entries": items.len(),
                "skipped_protected": skipped,
            }))
            .detail(audit_detail)
            .build();
        actor.allow(&state, ev).await;
        if let Some(p) = pending {
            idempotency::finish(&state, p, 202, &json!({"bulk_job_id": job.id}), false).await;
        }
        let job = state
            .db()
            .get_bulk_job(job.id)
            .await?
            .ok_or_else(|| ApiError::internal("the bulk job vanished"))?;
        Ok::<_, ApiError>(job)
    })
    .await
    .map_err(ApiError::internal)??;
    attempt.accepted = true;
    if !held {
        bulk_jobs::spawn(st, job.clone());
    }
    let mut view = bulk_jobs::view(st, &job).await?;
    view.invalid_items = invalid_items;
    view.approval_reasons = reasons;
    Ok(view)
}

/// The tenant's bulk jobs, newest first (the latest 100), with their counts.
#[utoipa::path(
    get,
    path = "/api/v1/bulk-revocations",
    tag = "bulk",
    responses(
        (status = 200, description = "The jobs", body = BulkPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read, or refused by the policy (`policy_denied`)", body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn list(State(st): State<AppState>, caller: ApiCaller) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        require_key(&st, &caller, Action::GetRevocationStatus).await?;
        let mut items = Vec::new();
        for job in bulk_jobs::list(&st, caller.key.tenant_id, 100).await? {
            items.push(bulk_jobs::view(&st, &job).await?);
        }
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(BulkPage { items }).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "bulk.list", Attempt::default(), r).await
}

/// One bulk job: its state, counts (done, total, by status), start and ETA.
#[utoipa::path(
    get,
    path = "/api/v1/bulk-revocations/{id}",
    tag = "bulk",
    params(("id" = Uuid, Path, description = "The bulk job id")),
    responses(
        (status = 200, description = "The job", body = BulkJobView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn get_one(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(format!("bulk:{id}")),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        require_key(&st, &caller, Action::GetRevocationStatus).await?;
        let job = bulk_jobs::load(&st, caller.key.tenant_id, &id).await?;
        let view = bulk_jobs::view(&st, &job).await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(view).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "bulk.read", attempt, r).await
}

/// The job's per-person results as CSV: `line, username, status, error,
/// request_id`, then one column per connector with its outcome. Cells a
/// spreadsheet would read as a formula get a leading `'`.
#[utoipa::path(
    get,
    path = "/api/v1/bulk-revocations/{id}/results.csv",
    tag = "bulk",
    params(("id" = Uuid, Path, description = "The bulk job id")),
    responses(
        (status = 200, description = "One row per entry", content_type = "text/csv", body = String),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read, or refused by the policy (`policy_denied`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn results_csv(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(format!("bulk:{id}")),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        require_key(&st, &caller, Action::GetRevocationStatus).await?;
        let job = bulk_jobs::load(&st, caller.key.tenant_id, &id).await?;
        let csv = bulk_jobs::export(&st, &job).await?;
        Ok(csv_response(&job.id.to_string(), csv))
    }
    .await;
    audited(&st, &caller.actor(), "bulk.export", attempt, r).await
}

/// A CSV download of a job's results.
pub(crate) fn csv_response(id: &str, csv: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, csv).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"bulk-{id}.csv\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Approve a job the policy held: it runs at once.
///
/// Two-person rule: an owner or admin (or an `admin`-scope key) other than
/// the requester — under any of their names, the key or the person who
/// created it — approves, with a reason.
#[utoipa::path(
    post,
    path = "/api/v1/bulk-revocations/{id}/approve",
    tag = "bulk",
    params(("id" = Uuid, Path, description = "The bulk job id")),
    request_body = BulkApproveBody,
    responses(
        (status = 200, description = "Approved; the job runs", body = BulkJobView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an approver, or the requester (`self_approval`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not waiting for approval", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn approve(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    decide_over_api(st, caller, id, body, true).await
}

/// Deny a job the policy held: it is `cancelled` and never runs.
///
/// The same two-person rule as approving.
#[utoipa::path(
    post,
    path = "/api/v1/bulk-revocations/{id}/deny",
    tag = "bulk",
    params(("id" = Uuid, Path, description = "The bulk job id")),
    request_body = BulkApproveBody,
    responses(
        (status = 200, description = "Denied; the job is cancelled", body = BulkJobView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an approver, or the requester (`self_approval`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not waiting for approval", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn deny(
    State(st): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    decide_over_api(st, caller, id, body, false).await
}

/// [`approve`] (`approve`) or [`deny`] (not), audited.
async fn decide_over_api(
    st: AppState,
    caller: ApiCaller,
    id: String,
    body: Body,
    approve: bool,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        target: Some(format!("bulk:{id}")),
        accepted: false,
    };
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        require_key(&st, &caller, Action::ApproveRequest).await?;
        let body = read_limited(body, st.config().body_limit).await?;
        let parsed: BulkApproveBody = parse_json(&body)?;
        let job = bulk_jobs::load(&st, caller.key.tenant_id, &id).await?;
        let approver = caller_of(&caller.key, Channel::Api);
        decide_job(
            &st,
            &caller.actor(),
            &approver,
            job,
            parsed.reason.as_deref(),
            approve,
        )
        .await
    }
    .await;
    let action = if approve { "bulk.approve" } else { "bulk.deny" };
    audited(&st, &caller.actor(), action, attempt, r).await
}

/// A held job approved (it starts) or denied (`cancelled`, never runs) by
/// `approver`, under the two-person rule, audited.
pub(crate) async fn decide_job(
    st: &AppState,
    actor: &crate::audit::Actor,
    approver: &sever_core::policy::Caller,
    job: bulk::BulkJob,
    reason: Option<&str>,
    approve: bool,
) -> Result<Response, ApiError> {
    if !may_approve(approver) {
        return Err(ApiError::forbidden(format!(
            "{} may not approve or deny bulk jobs: only an owner or admin (or an admin-scope key) may",
            approver.grant
        )));
    }
    let requester =
        crate::usecases::policy_caller(st, job.tenant_id, &job.requested_by, job.channel).await?;
    let mine = requester.identities();
    if approver.identities().iter().any(|i| mine.contains(i)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "self_approval",
            format!(
                "{} asked for this bulk job and cannot approve or deny it: a second person must (two-person rule)",
                approver.grant
            ),
        ));
    }
    if job.state != BulkState::PendingApproval {
        return Err(ApiError::conflict(format!(
            "bulk job {} is {}, not waiting for approval",
            job.id,
            job.state.as_str()
        )));
    }
    let reason = Reason::parse(reason.unwrap_or(""))?;
    if reason.as_str().is_empty() {
        return Err(ApiError::invalid("reason", "must not be empty"));
    }
    let (to, action, result) = if approve {
        (BulkState::Running, "bulk.approve", "approved")
    } else {
        (BulkState::Cancelled, "bulk.deny", "denied")
    };
    // One conditional write: of two decisions racing, one wins; the other
    // is told the job is no longer held.
    let moved = st
        .db()
        .transition_bulk_state(job.id, BulkState::PendingApproval, to, st.clock().now())
        .await?;
    if !moved {
        return Err(ApiError::conflict(format!(
            "bulk job {} is no longer waiting for approval",
            job.id
        )));
    }
    let ev = actor
        .event(st.clock().as_ref(), action, AuditDecision::Allowed)
        .target(Some(&format!("bulk:{}", job.id)))
        .reason(Some(reason.as_str()))
        .result(result)
        .detail(json!({"bulk_job": job.id, "incident_id": job.incident_id, "requested_by": job.requested_by}))
        .build();
    actor.allow(st, ev).await;
    let job = bulk_jobs::load(st, job.tenant_id, &job.id.to_string()).await?;
    if approve {
        bulk_jobs::spawn(st, job.clone());
    }
    let view = bulk_jobs::view(st, &job).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::to_value(view).unwrap_or_default(),
    ))
}
