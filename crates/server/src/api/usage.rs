//! `/api/v1/usage`: completed revocations in a period, what billing counts
//! (seed 004: failed revocations are not billed). A request counts in the
//! period it was created in.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sever_core::admin::Scope;
use sever_core::{RequestId, RequestQuery, RequestStatus};
use utoipa::{IntoParams, ToSchema};

use super::json_response;
use super::revocations::{audited, query_error, Attempt};
use crate::auth::{check_scope, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start (inclusive): RFC 3339 or `YYYY-MM-DD`; default: the first day of this month (UTC).
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 or `YYYY-MM-DD`; default: now.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    pub completed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Completed revocation requests created in `[from, to)`.
    pub completed_revocations: u64,
    /// Days with at least one completed request.
    pub by_day: Vec<UsageDay>,
}

fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("'{raw}' is not an RFC 3339 time or a YYYY-MM-DD date"),
            )
        })
}

/// Completed revocations per period.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, body = UsageView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Missing scope sessions:read", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn usage(
    State(st): State<AppState>,
    caller: ApiCaller,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let r = async {
        check_scope(&caller.key.scopes, Scope::SessionsRead)?;
        super::policy::require_key(
            &st,
            &caller,
            sever_core::policy::Action::GetRevocationStatus,
        )
        .await?;
        let Query(q) = q.map_err(query_error)?;
        let now = st.clock().now();
        let from = match &q.from {
            Some(f) => parse_time("from", f)?,
            None => Utc
                .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                .single()
                .unwrap_or(now),
        };
        let to = match &q.to {
            Some(t) => parse_time("to", t)?,
            None => now,
        };
        if to <= from {
            return Err(ApiError::invalid("to", "must be after from"));
        }
        let mut by_day: BTreeMap<NaiveDate, u64> = BTreeMap::new();
        let mut total = 0u64;
        let mut before: Option<RequestId> = None;
        let page = 500u32;
        'scan: loop {
            let rows = st
                .db()
                .list_requests(&RequestQuery {
                    tenant_id: Some(caller.key.tenant_id),
                    status: Some(RequestStatus::Completed),
                    username: None,
                    limit: page,
                    before,
                })
                .await?;
            let n = rows.len();
            for row in rows {
                before = Some(row.id);
                if row.created_at < from {
                    break 'scan;
                }
                if row.created_at >= to {
                    continue;
                }
                total += 1;
                *by_day.entry(row.created_at.date_naive()).or_default() += 1;
            }
            if n < page as usize {
                break;
            }
        }
        let v = UsageView {
            from,
            to,
            completed_revocations: total,
            by_day: by_day
                .into_iter()
                .map(|(day, completed)| UsageDay { day, completed })
                .collect(),
        };
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(v).unwrap_or_default(),
        ))
    }
    .await;
    audited(&st, &caller.actor(), "usage.read", Attempt::default(), r).await
}
