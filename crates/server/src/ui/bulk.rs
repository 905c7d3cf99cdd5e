//! Bulk jobs (issue 7): every job of the tenant with a progress bar, its
//! counts and ETA — re-fetched by htmx every second while one is moving —
//! and a link to its per-person results as CSV. Everyone who may read
//! revocations sees the page; jobs are started over the API or the CLI.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sever_core::policy::Action;

use super::{render, when, Layout, UiError, WebUser};
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
    let polling = rows
        .iter()
        .any(|r| r.state == "running" || r.state == "ingesting");
    Ok(Rows { rows, polling })
}

pub(crate) async fn page(State(st): State<AppState>, user: WebUser) -> Result<Response, UiError> {
    user.require_policy(&st, Action::GetRevocationStatus, "bulk.list", None)
        .await?;
    let t = rows(&st, &user).await?;
    Ok(render(
        StatusCode::OK,
        &Page {
            layout: user.layout("Bulk", "bulk"),
            t,
        },
    ))
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
