//! The Dashboard: how many revocations today and this period, how they
//! ended, how each app performs, the last activity, usage as billing counts
//! it (completed requests created this month), and the connectors that need
//! someone's attention before the next incident finds out.
//!
//! Everything is read from the store on each view, newest first and within
//! bounds (the last 5,000 requests; per-app figures from the last 300 of the
//! period), so the page stays quick on a busy tenant.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use sever_core::policy::Action;
use sever_core::{ErrorClass, Outcome, RequestId, RequestQuery, RequestStatus, RequestSummary};

use super::chart::{revocations_svg, Day};
use super::requests::{provider_name, status_badge};
use super::{render, when, Layout, UiError, WebUser};
use crate::secrets;
use crate::AppState;

/// Requests read at most for the counts and the chart.
const MAX_SCAN: usize = 5000;
/// Requests read in full at most for the per-app figures.
const MAX_DETAILED: usize = 300;
const CHART_DAYS: i64 = 14;

pub(crate) struct ConnectorStat {
    pub name: String,
    pub provider: &'static str,
    pub runs: usize,
    pub failed: usize,
    pub success_rate: String,
    pub median: String,
}

pub(crate) struct FeedItem {
    pub id: String,
    pub username: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub channel: &'static str,
    pub requested_by: String,
    pub at: String,
    pub connectors: u32,
    pub failed: u32,
}

pub(crate) struct Attention {
    pub name: String,
    pub provider: &'static str,
    pub problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "ui/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    period: String,
    today: u64,
    this_period: u64,
    completed: u64,
    failed: u64,
    in_flight: u64,
    success_rate: String,
    chart: String,
    days: Vec<Day>,
    connectors: Vec<ConnectorStat>,
    feed: Vec<FeedItem>,
    attention: Vec<Attention>,
    revocation_enabled: bool,
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

fn median_ms(mut v: Vec<i64>) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    let ms = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2
    } else {
        v[mid]
    };
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

fn day_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&now.date_naive().and_time(chrono::NaiveTime::MIN))
}

/// The tenant's requests created at or after `since`, newest first.
async fn recent(
    st: &AppState,
    user: &WebUser,
    since: DateTime<Utc>,
) -> Result<Vec<RequestSummary>, UiError> {
    let mut out = Vec::new();
    let mut before: Option<RequestId> = None;
    loop {
        let page = st
            .db()
            .list_requests(&RequestQuery {
                tenant_id: Some(user.tenant()),
                status: None,
                username: None,
                limit: 500,
                before,
            })
            .await
            .map_err(|e| UiError::from(e).within(user))?;
        let n = page.len();
        for r in page {
            before = Some(r.id);
            if r.created_at < since || out.len() >= MAX_SCAN {
                return Ok(out);
            }
            out.push(r);
        }
        if n < 500 {
            return Ok(out);
        }
    }
}

pub(crate) async fn page(State(st): State<AppState>, user: WebUser) -> Result<Response, UiError> {
    user.require_policy(&st, Action::GetRevocationStatus, "dashboard.read", None)
        .await?;
    let within = |e: sever_core::StoreError| UiError::from(e).within(&user);
    let now = st.clock().now();
    let today = day_start(now);
    let period_start = month_start(now);
    let chart_start = today - Duration::days(CHART_DAYS - 1);
    let rows = recent(&st, &user, period_start.min(chart_start)).await?;

    let mut days: BTreeMap<NaiveDate, Day> = (0..CHART_DAYS)
        .map(|i| {
            let date = (chart_start + Duration::days(i)).date_naive();
            (
                date,
                Day {
                    date,
                    completed: 0,
                    failed: 0,
                },
            )
        })
        .collect();
    let (mut n_today, mut n_period, mut completed, mut failed, mut in_flight) = (0, 0, 0, 0, 0);
    for r in &rows {
        if r.created_at >= today {
            n_today += 1;
        }
        if r.created_at >= period_start {
            n_period += 1;
            match r.status {
                RequestStatus::Completed => completed += 1,
                RequestStatus::Failed => failed += 1,
                s if !s.is_final() => in_flight += 1,
                _ => {}
            }
        }
        if let Some(d) = days.get_mut(&r.created_at.date_naive()) {
            match r.status {
                RequestStatus::Completed => d.completed += 1,
                RequestStatus::Failed => d.failed += 1,
                _ => {}
            }
        }
    }
    let days: Vec<Day> = days.into_values().collect();

    // Per app: what the last requests of the period did there.
    #[derive(Default)]
    struct Acc {
        provider: Option<sever_core::ConnectorKey>,
        runs: usize,
        failed: usize,
        times: Vec<i64>,
        rejected_recently: Option<String>,
    }
    let mut per: BTreeMap<String, Acc> = BTreeMap::new();
    let mut feed = Vec::new();
    let week_ago = now - Duration::days(7);
    for (i, r) in rows.iter().take(MAX_DETAILED).enumerate() {
        // Newest first: past the feed and the period, nothing more is needed.
        if i >= 10 && r.created_at < period_start {
            break;
        }
        let Some(full) = st.db().get_request(r.id).await.map_err(within)? else {
            continue;
        };
        if i < 10 {
            feed.push(FeedItem {
                id: full.id.to_string(),
                username: full.username.to_string(),
                status: full.status.as_str(),
                badge: status_badge(full.status),
                channel: full.channel.as_str(),
                requested_by: full.requested_by.clone(),
                at: when(full.created_at),
                connectors: r.connectors,
                failed: r.failed,
            });
        }
        if full.created_at < period_start {
            continue;
        }
        for c in &full.results {
            let Some(outcome) = &c.outcome else { continue };
            let acc = per.entry(c.instance.to_string()).or_default();
            acc.provider = Some(c.provider);
            acc.runs += 1;
            if let Outcome::Failed(f) = outcome {
                acc.failed += 1;
                if full.created_at >= week_ago
                    && matches!(f.class, ErrorClass::Unauthorized | ErrorClass::Forbidden)
                    && acc.rejected_recently.is_none()
                {
                    acc.rejected_recently = Some(format!(
                        "{} on {}: {}",
                        f.class.as_str(),
                        when(full.created_at),
                        f.message
                    ));
                }
            }
            if let (Some(done), Some(started)) = (c.finished_at, full.started_at) {
                acc.times.push((done - started).num_milliseconds().max(0));
            }
        }
    }

    let stored = st
        .db()
        .list_connectors(user.tenant())
        .await
        .map_err(within)?;
    let mut attention = Vec::new();
    for c in &stored {
        let mut problems = Vec::new();
        if let Err(e) = secrets::open_secrets(st.sealer().as_ref(), c) {
            problems.push(format!(
                "its credentials cannot be opened ({e}); enter them again"
            ));
        }
        match (c.last_test_at, c.last_test_ok) {
            (Some(at), Some(false)) => problems.push(format!(
                "the last test failed ({}): {}",
                when(at),
                c.last_test_detail.clone().unwrap_or_default()
            )),
            (None, _) => problems.push("never tested: press Test under Integrations".into()),
            (Some(at), _) if now - at > Duration::days(30) => problems.push(format!(
                "last tested {}; credentials may have expired since (Okta API tokens expire after 30 days unused)",
                when(at)
            )),
            _ => {}
        }
        if let Some(r) = per
            .get(c.name.as_str())
            .and_then(|a| a.rejected_recently.clone())
        {
            problems.push(format!("credentials refused recently: {r}"));
        }
        if c.enabled && !problems.is_empty() {
            attention.push(Attention {
                name: c.name.to_string(),
                provider: provider_name(c.provider),
                problems,
            });
        }
    }

    let connectors = per
        .into_iter()
        .map(|(name, a)| ConnectorStat {
            provider: a.provider.map_or("", provider_name),
            success_rate: percent(a.runs - a.failed, a.runs),
            median: median_ms(a.times),
            runs: a.runs,
            failed: a.failed,
            name,
        })
        .collect();
    let settings = st.db().get_settings(user.tenant()).await.map_err(within)?;
    Ok(render(
        StatusCode::OK,
        &DashboardPage {
            layout: user.layout("Dashboard", "dashboard"),
            period: format!("since {}", period_start.format("%B %-d, %Y")),
            today: n_today,
            this_period: n_period,
            completed,
            failed,
            in_flight,
            success_rate: percent(
                usize::try_from(completed).unwrap_or(0),
                usize::try_from(completed + failed).unwrap_or(0),
            ),
            chart: revocations_svg(&days),
            days,
            connectors,
            feed,
            attention,
            revocation_enabled: settings.revocation_enabled,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_rates_read_well() {
        assert_eq!(median_ms(vec![]), "—");
        assert_eq!(median_ms(vec![300, 100, 200]), "200 ms");
        assert_eq!(median_ms(vec![1000, 3000]), "2.0 s");
        assert_eq!(percent(0, 0), "—");
        assert_eq!(percent(2, 3), "67%");
    }

    #[test]
    fn periods_start_at_midnight_utc() {
        let t = Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26).unwrap();
        assert_eq!(
            month_start(t),
            Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            day_start(t),
            Utc.with_ymd_and_hms(2025, 3, 14, 0, 0, 0).unwrap()
        );
    }
}
