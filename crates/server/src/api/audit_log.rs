//! `/api/v1/audit`: the tenant's audit records (admin scope), a page at a
//! time as JSON, or every record after a point as JSON lines for a SIEM.
//! Reading the trail is not itself recorded (a reader paging to the end
//! would otherwise never reach it); refused reads are.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sever_core::admin::{AuditQuery, Scope};
use sever_core::TenantId;
use utoipa::{IntoParams, ToSchema};

use super::json_response;
use super::revocations::{audited, query_error, Attempt};
use super::views::AuditRecordView;
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only records after this sequence number (the `next_after_seq` of the previous page).
    pub after_seq: Option<i64>,
    /// Page size, 1-1000 (default 100); with `format=jsonl`, the most records to stream (default: all).
    pub limit: Option<u32>,
    /// `json` (default) or `jsonl` (one record per line, streamed).
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecordView>,
    /// Pass as `after_seq` for the next page; `null` when this page is the last.
    pub next_after_seq: Option<i64>,
}

/// The tenant's audit records, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of records (or JSON lines with format=jsonl)",
         content((AuditPage = "application/json"), (AuditRecordView = "application/x-ndjson"))),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["admin"]))
)]
pub async fn list(
    State(st): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::Admin)?;
        super::policy::require_key(&st, &caller, sever_core::policy::Action::ReadAudit).await?;
        let Query(q) = q.map_err(query_error)?;
        let tenant = caller.key.tenant_id;
        match q.format.as_deref() {
            None | Some("json") => {
                let limit = q.limit.unwrap_or(100);
                if !(1..=1000).contains(&limit) {
                    return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
                }
                let records = st
                    .db()
                    .list_audit(&AuditQuery {
                        tenant_id: Some(tenant),
                        after_seq: q.after_seq,
                        limit,
                    })
                    .await?;
                let next = if records.len() == limit as usize {
                    records.last().map(|r| r.seq)
                } else {
                    None
                };
                let page = AuditPage {
                    items: records.iter().map(AuditRecordView::from).collect(),
                    next_after_seq: next,
                };
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::to_value(page).unwrap_or_default(),
                ))
            }
            Some("jsonl") => Ok(stream_jsonl(st.clone(), tenant, q.after_seq, q.limit)),
            Some(other) => Err(ApiError::invalid(
                "format",
                format!("'{other}' is not json or jsonl"),
            )),
        }
    }
    .await;
    audited(&st, &caller.actor(), "audit.read", Attempt::default(), r).await
}

struct Cursor {
    st: AppState,
    tenant: TenantId,
    after: Option<i64>,
    left: Option<u64>,
    done: bool,
}

/// Stream records page by page, so an export of the whole trail never sits
/// in memory at once.
pub(crate) fn stream_jsonl(
    st: AppState,
    tenant: TenantId,
    after: Option<i64>,
    limit: Option<u32>,
) -> Response {
    const PAGE: u32 = 500;
    let cursor = Cursor {
        st,
        tenant,
        after,
        left: limit.map(u64::from),
        done: false,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        if c.done || c.left == Some(0) {
            return None;
        }
        let want = c.left.map_or(PAGE, |l| {
            u32::try_from(l.min(u64::from(PAGE))).unwrap_or(PAGE)
        });
        let page =
            c.st.db()
                .list_audit(&AuditQuery {
                    tenant_id: Some(c.tenant),
                    after_seq: c.after,
                    limit: want,
                })
                .await;
        match page {
            Ok(records) => {
                if records.len() < want as usize {
                    c.done = true;
                }
                if records.is_empty() {
                    return None;
                }
                c.after = records.last().map(|r| r.seq);
                if let Some(l) = &mut c.left {
                    *l = l.saturating_sub(records.len() as u64);
                }
                let mut out = String::new();
                for r in &records {
                    if let Ok(line) = serde_json::to_string(&AuditRecordView::from(r)) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                Some((Ok::<_, std::io::Error>(out), c))
            }
            Err(e) => {
                tracing::error!(error = %e, "audit export stopped");
                c.done = true;
                Some((Err(std::io::Error::other(e.to_string())), c))
            }
        }
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(stream),
    )
        .into_response()
}
