//! Operating the service: `GET /healthz` (the process answers), `GET
//! /readyz` (the database answers, its schema is current, and the server is
//! not shutting down), `GET /metrics` (see [`crate::metrics`]); the
//! middleware that gives every HTTP request an id, a tracing span carrying
//! it, an access-log line and its count; and the graceful shutdown of
//! running work ([`finish_or_release`]).
//!
//! None of these routes needs a key: they say nothing about any tenant,
//! person or secret. Put them behind your proxy's rules if even their
//! existence should stay internal.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tracing::Instrument;

use crate::error::HttpRequestId;
use crate::AppState;

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";

/// How long `/readyz` waits for the database before calling it unavailable.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The operational routes, merged beside the API by [`crate::serve`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .with_state(state)
}

fn status_json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The process is up and serving HTTP.
async fn healthz() -> Response {
    status_json(StatusCode::OK, json!({"status": "ok"}))
}

/// Ready for traffic: the database answers, every migration of this version
/// is applied, and no shutdown is under way.
async fn readyz(State(st): State<AppState>) -> Response {
    if st.executions().is_stopping() {
        return status_json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "stopping", "problem": "the server is shutting down"}),
        );
    }
    let problem = match tokio::time::timeout(READY_TIMEOUT, st.db().check_ready()).await {
        Ok(Ok(())) => return status_json(StatusCode::OK, json!({"status": "ready"})),
        Ok(Err(sever_core::StoreError::Unavailable(detail))) => {
            tracing::warn!(error = %detail, "not ready: the database is unavailable");
            "the database is unavailable"
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database check failed");
            "the database schema is not up to date or cannot be read"
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 2 s");
            "the database did not answer in time"
        }
    };
    status_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "problem": problem}),
    )
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        st.metrics().render(),
    )
        .into_response()
}

/// Wraps every route: gives the request its id (the one the API's answers
/// carry in `X-Request-Id`) and a tracing span `http` with it, so every log
/// line written while serving it names it; counts the answer; and writes one
/// access-log line (method, route, path, status, duration — never a query
/// string or a header, which may carry credentials).
pub async fn observe(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::now_v7().to_string();
    req.extensions_mut().insert(HttpRequestId(id.clone()));
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("http", request_id = %id, %method, %route);
    let mut resp = next.run(req).instrument(span.clone()).await;
    if !resp.headers().contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    st.metrics()
        .http_answered(&method, &route, status, elapsed.as_secs_f64());
    // Probes and scrapes every few seconds would drown the log.
    if route != HEALTHZ && route != READYZ && route != METRICS {
        span.in_scope(|| {
            tracing::info!(
                target: "sever::http",
                %path,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "answered"
            )
        });
    }
    resp
}

/// The graceful end of running work: wait up to `shutdown_grace` for the
/// revocations in flight, then cancel what is left and release its leases
/// so another replica (or the next start) takes it over at once.
pub async fn finish_or_release(st: &AppState) {
    let grace = st.config().shutdown_grace;
    let running = st.executions().len();
    if running > 0 {
        tracing::info!(
            running,
            grace_secs = grace.as_secs_f64(),
            "waiting for running revocations to finish"
        );
    }
    for (id, owners) in st.executions().drain(grace).await {
        let mut released = false;
        for owner in &owners {
            match st.db().release_lease(id, owner).await {
                Ok(r) => released |= r,
                Err(e) => {
                    tracing::warn!(request_id = %id, error = %e, "could not release the lease; it will be taken over when it expires")
                }
            }
        }
        if released {
            st.metrics().lease_released();
            tracing::warn!(
                request_id = %id,
                "not finished within the shutdown grace period: released for another process to finish"
            );
        }
    }
}
