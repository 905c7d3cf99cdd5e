//! Requests: the searchable list, one request with every attempt, and the
//! result panel (also the Responder's live progress), which htmx re-fetches
//! every half second until the request is final.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use sever_core::policy::Action;
use sever_core::{
    ConnectorKey, ErrorClass, Outcome, RequestId, RequestQuery, RequestStatus, RevocationRequest,
};

use super::{render, when, Layout, UiError, WebUser};
use crate::api::views::RevocationView;
use crate::usecases::load_request;
use crate::AppState;

/// The CSS badge of a request status.
pub(crate) fn status_badge(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Completed => "ok",
        RequestStatus::Failed | RequestStatus::Rejected => "bad",
        RequestStatus::Queued | RequestStatus::Running => "live",
        RequestStatus::PendingApproval | RequestStatus::Expired => "warn",
    }
}

/// The CSS badge of an outcome label (`pending` while unknown).
pub(crate) fn outcome_badge(label: &str) -> &'static str {
    match label {
        "revoked" | "tokens_revoked" | "found" => "ok",
        "failed" => "bad",
        "not_entitled" | "protected" => "warn",
        "pending" => "live",
        _ => "info",
    }
}

/// What a responder can do about a failure of this class.
pub(crate) fn hint(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Unauthorized => {
            "The provider rejected Sever's credentials: they may have expired or been revoked. \
             Enter new ones under Integrations."
        }
        ErrorClass::Forbidden => {
            "The credentials work but lack a permission (named above). Grant it to Sever's \
             app or token, then revoke again."
        }
        ErrorClass::RateLimited => {
            "The provider is rate-limiting Sever. Revoke again in a minute; nothing was done twice."
        }
        ErrorClass::Timeout | ErrorClass::Network => {
            "The provider could not be reached in time. Revoke again; if it persists, check the \
             connector's base URL and the provider's status page."
        }
        ErrorClass::ProviderError => {
            "The provider failed. Revoke again; if it persists, give its support the request id."
        }
        ErrorClass::BadConfig => "The connector is misconfigured: fix it under Integrations.",
        ErrorClass::AmbiguousMatch => {
            "Several accounts match this name. Revoke using the exact login or email of one."
        }
    }
}

/// One connector's row of a result.
pub(crate) struct OutcomeRow {
    pub instance: String,
    pub provider: &'static str,
    pub outcome: String,
    pub badge: &'static str,
    pub message: Option<String>,
    pub class: Option<String>,
    pub hint: Option<&'static str>,
    pub http_status: Option<u16>,
    pub provider_code: Option<String>,
    pub provider_request_id: Option<String>,
    pub subject_id: Option<String>,
    pub attempts: usize,
    pub took: Option<String>,
    pub attempt_rows: Vec<AttemptRow>,
}

pub(crate) struct AttemptRow {
    pub step: &'static str,
    pub number: u32,
    pub started: String,
    pub duration_ms: u64,
    pub http_status: Option<u16>,
    pub provider_code: Option<String>,
    pub provider_request_id: Option<String>,
    pub error_class: Option<&'static str>,
}

/// A request as the result panel shows it.
pub(crate) struct ResultPanel {
    pub id: String,
    pub username: String,
    pub reason: String,
    pub channel: &'static str,
    pub requested_by: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub is_final: bool,
    /// Still moving on its own: the page follows it. A request waiting for
    /// approval moves only when someone decides, so it is not polled.
    pub polling: bool,
    pub awaiting_approval: bool,
    pub created: String,
    pub finished: Option<String>,
    pub rows: Vec<OutcomeRow>,
    pub done: usize,
    pub json: String,
}

fn millis(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

pub(crate) fn provider_name(p: ConnectorKey) -> &'static str {
    p.display_name()
}

impl ResultPanel {
    pub fn of(req: &RevocationRequest) -> Self {
        let rows: Vec<OutcomeRow> = req
            .results
            .iter()
            .map(|r| {
                let label = r.outcome.as_ref().map_or("pending", Outcome::label);
                let mut row = OutcomeRow {
                    instance: r.instance.to_string(),
                    provider: provider_name(r.provider),
                    outcome: label.to_string(),
                    badge: outcome_badge(label),
                    message: None,
                    class: None,
                    hint: None,
                    http_status: None,
                    provider_code: None,
                    provider_request_id: None,
                    subject_id: r.subject_id.clone(),
                    attempts: r.attempts.len(),
                    took: r
                        .finished_at
                        .zip(req.started_at)
                        .map(|(f, s)| millis(f - s)),
                    attempt_rows: r
                        .attempts
                        .iter()
                        .map(|a| AttemptRow {
                            step: a.step.as_str(),
                            number: a.number,
                            started: when(a.started_at),
                            duration_ms: a.duration_ms,
                            http_status: a.http_status,
                            provider_code: a.provider_code.clone(),
                            provider_request_id: a.provider_request_id.clone(),
                            error_class: a.error_class.map(ErrorClass::as_str),
                        })
                        .collect(),
                };
                match &r.outcome {
                    Some(Outcome::Failed(f)) => {
                        row.message = Some(f.message.clone());
                        row.class = Some(f.class.as_str().to_string());
                        row.hint = Some(hint(f.class));
                        row.http_status = f.http_status;
                        row.provider_code = f.provider_code.clone();
                        row.provider_request_id = f.provider_request_id.clone();
                        row.attempts = row.attempts.max(f.attempts as usize);
                    }
                    Some(
                        o @ (Outcome::NotApplicable { .. }
                        | Outcome::NotEntitled { .. }
                        | Outcome::Protected { .. }
                        | Outcome::Skipped { .. }),
                    ) => row.message = Some(o.detail()),
                    _ => {}
                }
                row
            })
            .collect();
        ResultPanel {
            id: req.id.to_string(),
            username: req.username.to_string(),
            reason: req.reason.as_str().to_string(),
            channel: req.channel.as_str(),
            requested_by: req.requested_by.clone(),
            status: req.status.as_str(),
            badge: status_badge(req.status),
            is_final: req.status.is_final(),
            polling: matches!(req.status, RequestStatus::Queued | RequestStatus::Running),
            awaiting_approval: req.status == RequestStatus::PendingApproval,
            created: when(req.created_at),
            finished: req.finished_at.map(when),
            done: req.results.iter().filter(|r| r.outcome.is_some()).count(),
            rows,
            json: serde_json::to_string_pretty(&RevocationView::from(req)).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/progress.html")]
struct Progress {
    panel: ResultPanel,
}

/// The result panel alone, for htmx to swap in while it polls.
pub(crate) async fn progress(
    State(st): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    user.require_policy(
        &st,
        Action::GetRevocationStatus,
        "revocation.read",
        Some(&id),
    )
    .await?;
    let req = load_request(&st, user.tenant(), &id)
        .await
        .map_err(|e| UiError::from(e).within(&user))?;
    Ok(render(
        StatusCode::OK,
        &Progress {
            panel: ResultPanel::of(&req),
        },
    ))
}

#[derive(Template)]
#[template(path = "ui/request.html")]
struct DetailPage {
    layout: Layout,
    panel: ResultPanel,
    started: Option<String>,
}

pub(crate) async fn detail(
    State(st): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    user.require_policy(
        &st,
        Action::GetRevocationStatus,
        "revocation.read",
        Some(&id),
    )
    .await?;
    let req = load_request(&st, user.tenant(), &id)
        .await
        .map_err(|e| UiError::from(e).within(&user))?;
    Ok(render(
        StatusCode::OK,
        &DetailPage {
            layout: user.layout(&format!("Request for {}", req.username), "requests"),
            started: req.started_at.map(when),
            panel: ResultPanel::of(&req),
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListFilters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    connector: String,
    #[serde(default)]
    before: String,
}

pub(crate) struct ListRow {
    id: String,
    username: String,
    status: &'static str,
    badge: &'static str,
    channel: &'static str,
    created: String,
    connectors: u32,
    failed: u32,
}

pub(crate) struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "ui/requests.html")]
struct ListPage {
    layout: Layout,
    q: String,
    statuses: Vec<Choice>,
    channels: Vec<Choice>,
    connectors: Vec<Choice>,
    rows: Vec<ListRow>,
    next: Option<String>,
}

/// Rows one listing may read from the store while filtering (the store
/// filters by status itself; the rest is matched here).
const MAX_SCAN: usize = 2000;
const PAGE: usize = 50;

fn choices(options: &[(&str, &str)], selected: &str) -> Vec<Choice> {
    std::iter::once(("", "Any"))
        .chain(options.iter().copied())
        .map(|(v, l)| Choice {
            value: v.to_string(),
            label: l.to_string(),
            selected: v == selected,
        })
        .collect()
}

/// Requests of the tenant, newest first: a person's name (any part of it,
/// any case), status, channel and connector narrow the list.
pub(crate) async fn list(
    State(st): State<AppState>,
    user: WebUser,
    Query(f): Query<ListFilters>,
) -> Result<Response, UiError> {
    let within = |e: UiError| e.within(&user);
    user.require_policy(&st, Action::GetRevocationStatus, "revocation.list", None)
        .await?;
    let status = match f.status.as_str() {
        "" => None,
        s => Some(
            s.parse::<RequestStatus>()
                .map_err(|e| within(crate::error::ApiError::from(e).into()))?,
        ),
    };
    let needle = f.q.trim().to_lowercase();
    let mut cursor = match f.before.trim() {
        "" => None,
        b => Some(RequestId::parse(b).map_err(|e| within(crate::error::ApiError::from(e).into()))?),
    };
    let mut rows = Vec::new();
    let mut scanned = 0usize;
    let mut next = None;
    let mut exhausted = false;
    'scan: while scanned < MAX_SCAN {
        let page = st
            .db()
            .list_requests(&RequestQuery {
                tenant_id: Some(user.tenant()),
                status,
                username: None,
                limit: 200,
                before: cursor,
            })
            .await
            .map_err(|e| within(e.into()))?;
        exhausted = page.len() < 200;
        for r in page {
            scanned += 1;
            cursor = Some(r.id);
            if !needle.is_empty() && !r.username.as_str().to_lowercase().contains(&needle) {
                continue;
            }
            if !f.channel.is_empty() && r.channel.as_str() != f.channel {
                continue;
            }
            if !f.connector.is_empty() {
                let full = st
                    .db()
                    .get_request(r.id)
                    .await
                    .map_err(|e| within(e.into()))?;
                if !full.is_some_and(|full| {
                    full.results.iter().any(|c| {
                        c.instance.as_str() == f.connector || c.provider.as_str() == f.connector
                    })
                }) {
                    continue;
                }
            }
            rows.push(ListRow {
                id: r.id.to_string(),
                username: r.username.to_string(),
                status: r.status.as_str(),
                badge: status_badge(r.status),
                channel: r.channel.as_str(),
                created: when(r.created_at),
                connectors: r.connectors,
                failed: r.failed,
            });
            if rows.len() == PAGE {
                next = Some(r.id.to_string());
                break 'scan;
            }
        }
        if exhausted {
            break;
        }
    }
    if next.is_none() && !exhausted {
        next = cursor.map(|c| c.to_string());
    }
    let statuses: Vec<(&str, &str)> = RequestStatus::ALL
        .iter()
        .map(|s| (s.as_str(), s.as_str()))
        .collect();
    let channels = [
        ("ui", "ui"),
        ("api", "api"),
        ("webhook", "webhook"),
        ("mcp", "mcp"),
        ("cli", "cli"),
    ];
    let stored = st
        .db()
        .list_connectors(user.tenant())
        .await
        .map_err(|e| within(e.into()))?;
    let names: Vec<(String, String)> = stored
        .iter()
        .map(|c| (c.name.to_string(), c.name.to_string()))
        .collect();
    let names: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Ok(render(
        StatusCode::OK,
        &ListPage {
            layout: user.layout("Requests", "requests"),
            q: f.q.clone(),
            statuses: choices(&statuses, &f.status),
            channels: choices(&channels, &f.channel),
            connectors: choices(&names, &f.connector),
            rows,
            next,
        },
    ))
}

impl ListPage {
    /// The query string of the next page: these filters, older requests.
    fn next_query(&self, before: &str) -> String {
        let pick = |c: &[Choice]| {
            c.iter()
                .find(|c| c.selected)
                .map(|c| c.value.clone())
                .unwrap_or_default()
        };
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &self.q)
            .append_pair("status", &pick(&self.statuses))
            .append_pair("channel", &pick(&self.channels))
            .append_pair("connector", &pick(&self.connectors))
            .append_pair("before", before)
            .finish()
    }
}
