//! Bulk jobs (issue 7): every job of the tenant with a progress bar, its
//! counts and ETA — re-fetched by htmx every second while one is moving —
//! and a link to its per-person results as CSV. Everyone who may read
//! revocations sees the page; people who may revoke start a job from a
//! pasted list, through the same use case as the API
//! ([`crate::api::bulk::start`]: input checks, policy, audit).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sever_core::admin::Scope;
use sever_core::policy::Action;

use super::{render, when, Layout, Posted, UiError, WebUser};
use crate::api::bulk::StartBulk;
use crate::api::revocations::{audited, Attempt};
use crate::bulk_jobs::{self, BulkJobView};
use crate::AppState;

/// One job as the table shows it.
pub(crate) struct JobRow {
    pub id: String,
    pub incident_id: String,
    pub state: String,
    pub badge: &'static str,
    pub channel: String,
    pub requested_by: String,
    pub started: String,
    pub total: u64,
    pub done: u64,
    pub percent: u8,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub invalid: u64,
    pub eta: Option<String>,
}

fn badge(state: &str) -> &'static str {
    match state {
        "completed" => "ok",
        "cancelled" => "bad",
        "pending_approval" => "warn",
        _ => "live",
    }
}

fn eta(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

impl From<BulkJobView> for JobRow {
    fn from(v: BulkJobView) -> Self {
        Self {
            badge: badge(&v.state),
            id: v.id,
            incident_id: v.incident_id,
            state: v.state,
            channel: v.channel,
            requested_by: v.requested_by,
            started: when(v.started_at),
            total: v.counts.total,
            done: v.counts.done,
            percent: v.percent,
            completed: v.counts.completed,
            failed: v.counts.failed,
            skipped: v.counts.skipped,
            invalid: v.counts.invalid,
            eta: v.eta_seconds.map(eta),
        }
    }
}

/// The jobs' table.
pub(crate) struct Rows {
    pub rows: Vec<JobRow>,
    /// Some job is still moving on its own: keep refreshing.
    pub polling: bool,
    /// The viewer may approve or deny held jobs (owner, admin).
    pub can_decide: bool,
    pub csrf: String,
}

/// The table alone: what htmx swaps in.
#[derive(Template)]
#[template(path = "ui/bulk_rows.html")]
struct Fragment {
    t: Rows,
}

#[derive(Template)]
#[template(path = "ui/bulk.html")]
struct Page {
    layout: Layout,
    t: Rows,
    notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    decided: Option<String>,
}

async fn rows(st: &AppState, user: &WebUser) -> Result<Rows, UiError> {
    let mut rows = Vec::new();
    for job in bulk_jobs::list(st, user.tenant(), 50)
        .await
        .map_err(|e| UiError::from(e).within(user))?
    {
        let view = bulk_jobs::view(st, &job)
            .await
            .map_err(|e| UiError::from(e).within(user))?;
        rows.push(JobRow::from(view));
    }
    // Only a running job moves on its own (one left `ingesting` by a crash
    // waits for `sever bulk resume`; a held one for a decision).
    let polling = rows.iter().any(|r| r.state == "running");
    Ok(Rows {
        rows,
        polling,
        can_decide: user.can(Scope::Admin),
        csrf: user.session.csrf_token.clone(),
    })
}

pub(crate) async fn page(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, UiError> {
    user.require_policy(&st, Action::GetRevocationStatus, "bulk.list", None)
        .await?;
    let t = rows(&st, &user).await?;
    let decided = q.decided.map(|d| match d.as_str() {
        "approved" => "Approved: the bulk job runs now.".to_string(),
        _ => "Denied: the bulk job was cancelled and will not run.".to_string(),
    });
    let notice = q.started.map(|id| {
        let held = t
            .rows
            .iter()
            .any(|r| r.id == id && r.state == "pending_approval");
        if held {
            format!("Bulk job {id} waits for a second person's approval: nothing was revoked yet.")
        } else {
            format!("Bulk job {id} started.")
        }
    });
    let notice = notice.or(decided);
    Ok(render(
        StatusCode::OK,
        &Page {
            layout: user.layout("Bulk", "bulk"),
            t,
            notice,
        },
    ))
}

/// Start a bulk job from the pasted list (one person per line, or commas).
pub(crate) async fn start(State(st): State<AppState>, p: Posted) -> Result<Response, UiError> {
    let user = &p.user;
    user.require(&st, Scope::SessionsRevoke, "bulk_revoke", None)
        .await?;
    let entries: Vec<serde_json::Value> = p
        .form
        .get("usernames")
        .unwrap_or("")
        .split(['\n', ',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| serde_json::Value::String(s.to_string()))
        .collect();
    let text = |name: &str| {
        p.form
            .get(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let targets = text("targets").map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let mut attempt = Attempt::default();
    let r = crate::api::bulk::start(
        &st,
        StartBulk {
            tenant: user.tenant(),
            caller: user.policy_caller(),
            actor: user.actor(),
            requested_by: format!("user:{}", user.user.email),
            usernames: Some(entries),
            reason: text("reason"),
            incident_id: text("incident_id"),
            targets,
            pending: None,
        },
        &mut attempt,
    )
    .await;
    match audited(&st, &user.actor(), "bulk_revoke", attempt, r).await {
        Ok(view) => Ok(Redirect::to(&format!("/ui/bulk?started={}", view.id)).into_response()),
        Err(e) => Err(UiError::from(e).within(user)),
    }
}

/// The table alone, for the page's live refresh.
pub(crate) async fn table(State(st): State<AppState>, user: WebUser) -> Result<Response, UiError> {
    user.require_policy(&st, Action::GetRevocationStatus, "bulk.list", None)
        .await?;
    Ok(render(
        StatusCode::OK,
        &Fragment {
            t: rows(&st, &user).await?,
        },
    ))
}

/// The job's per-person results as CSV (the API's and `sever bulk export`'s).
pub(crate) async fn results_csv(
    State(st): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    user.require_policy(
        &st,
        Action::GetRevocationStatus,
        "bulk.export",
        Some(&format!("bulk:{id}")),
    )
    .await?;
    let within = |e: crate::error::ApiError| UiError::from(e).within(&user);
    let job = bulk_jobs::load(&st, user.tenant(), &id)
        .await
        .map_err(within)?;
    let csv = bulk_jobs::export(&st, &job).await.map_err(within)?;
    Ok(crate::api::bulk::csv_response(&job.id.to_string(), csv))
}

/// Approve or deny a held job, with a reason: an owner or admin other than
/// the requester (the API's two-person rule).
pub(crate) async fn decide(
    State(st): State<AppState>,
    Path(id): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    let user = &p.user;
    let target = format!("bulk:{id}");
    let approve = match p.form.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Err(UiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "decision: approve or deny",
            )
            .within(user))
        }
    };
    let action = if approve { "bulk.approve" } else { "bulk.deny" };
    user.require_policy(&st, Action::ApproveRequest, action, Some(&target))
        .await?;
    let r = async {
        let job = bulk_jobs::load(&st, user.tenant(), &id).await?;
        crate::api::bulk::decide_job(
            &st,
            &user.actor(),
            &user.policy_caller(),
            job,
            p.form.get("reason"),
            approve,
        )
        .await
    }
    .await;
    let attempt = Attempt {
        target: Some(target),
        accepted: false,
    };
    match audited(&st, &user.actor(), action, attempt, r).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/ui/bulk?decided={}",
            if approve { "approved" } else { "denied" }
        ))
        .into_response()),
        Err(e) => Err(UiError::from(e).within(user)),
    }
}
