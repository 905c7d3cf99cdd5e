//! One error shape for every HTTP answer that is not a success:
//! `{"error": {"code", "message", "request_id"}}`, with the same request id in
//! the `X-Request-Id` header.
//!
//! Handlers return [`ApiError`]; it cannot know the request id, so it leaves
//! its code and message in the response's extensions and the
//! [`request_context`] middleware, which made the id, renders the body. The
//! middleware also rewrites the bodies axum produces on its own (unknown
//! route, wrong method, oversized body) so that clients never see another
//! shape.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sever_core::{EngineError, InvalidInput, StoreError};
use utoipa::ToSchema;

use crate::AppState;

/// A refused or failed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Facts for the refusal's audit record only (merged into its
    /// `detail`; never sent to the client): the policy's decision and the
    /// rules that made it, for a refusal by the policy.
    pub audit_detail: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            audit_detail: None,
        }
    }

    /// Attach `detail` (an object) for the refusal's audit record.
    pub fn with_audit_detail(mut self, detail: serde_json::Value) -> Self {
        self.audit_detail = Some(detail);
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {} KiB", limit / 1024),
        )
    }

    /// 422 naming the field at fault.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {problem}"),
        )
    }

    /// The master switch is off.
    pub fn revocation_disabled() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "revocation_disabled",
            "Session revocation is disabled for this tenant",
        )
    }

    /// A channel switch is off.
    pub fn channel_disabled(channel: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "channel_disabled",
            format!("The {channel} channel is disabled for this tenant"),
        )
    }

    /// Something went wrong on our side; the detail goes to the log, not the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id identifies it in the server log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::invalid(e.field, e.problem)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry shortly",
                )
            }
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} was not found")),
            other => ApiError::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(i) => i.into(),
            EngineError::Store(s) => s.into(),
            EngineError::NotFound(id) => ApiError::not_found(format!("request {id} was not found")),
            EngineError::NoConnectors => ApiError::invalid(
                "integration_targets",
                "no connector is enabled for this tenant; add one with POST /api/v1/connectors",
            ),
        }
    }
}

/// What [`ApiError::into_response`] leaves for the middleware to render.
#[derive(Debug, Clone)]
struct PendingError {
    code: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(PendingError {
            code: self.code,
            message: self.message,
        });
        r
    }
}

/// The error body, as documented in the OpenAPI description.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `revocation_disabled`,
    /// `channel_disabled`, `not_found`, `conflict`, `idempotency_conflict`,
    /// `payload_too_large`, `invalid_input`, `internal`, `unavailable`, ...
    pub code: String,
    /// One line a person can act on; names the field or scope at fault.
    pub message: String,
    /// The id of this HTTP request, also in the `X-Request-Id` header.
    pub request_id: String,
}

/// The id of one HTTP request (not a revocation request).
#[derive(Debug, Clone)]
pub struct HttpRequestId(pub String);

fn default_error(status: StatusCode) -> (&'static str, String) {
    match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".into()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not accept that method".into(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than the limit".into(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as application/json".into(),
        ),
        s if s.is_server_error() => ("internal", "internal error".into()),
        s => (
            "bad_request",
            s.canonical_reason().unwrap_or("bad request").to_string(),
        ),
    }
}

fn render(
    mut parts: axum::http::response::Parts,
    code: &str,
    message: String,
    id: &str,
) -> Response {
    let body = serde_json::json!({
        "error": {"code": code, "message": message, "request_id": id}
    });
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// Gives every request an id, echoes it in `X-Request-Id`, and renders every
/// error answer in the one JSON shape.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    // The id `ops::observe` gave the request (and its log span), if it ran.
    let id = match req.extensions().get::<HttpRequestId>() {
        Some(r) => r.0.clone(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    req.extensions_mut().insert(HttpRequestId(id.clone()));
    let resp = next.run(req).await;
    let status = resp.status();
    let (mut parts, body) = resp.into_parts();
    let mut resp = if let Some(e) = parts.extensions.remove::<PendingError>() {
        render(parts, e.code, e.message, &id)
    } else if (status.is_client_error() || status.is_server_error())
        && !parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            // Pages for people (the OAuth sign-in page) keep their HTML.
            .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"))
    {
        let (code, message) = default_error(status);
        render(parts, code, message, &id)
    } else {
        Response::from_parts(parts, body)
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// What every handler knows about the HTTP request it serves.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub request_id: String,
    /// The socket's peer address, or the nearest `X-Forwarded-For` hop when
    /// `trust_proxy` is on.
    pub client_ip: Option<String>,
    /// The raw `Idempotency-Key` header; checked by [`Ctx::idempotency_key`]
    /// when a handler gets that far, so a malformed one never pre-empts an
    /// authentication error.
    pub raw_idempotency_key: Option<String>,
}

impl Ctx {
    /// The `Idempotency-Key`, if sent: 1-255 printable ASCII characters.
    pub fn idempotency_key(&self) -> Result<Option<&str>, ApiError> {
        match self.raw_idempotency_key.as_deref() {
            None => Ok(None),
            Some(k)
                if !k.is_empty()
                    && k.len() <= 255
                    && k.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
            {
                Ok(Some(k))
            }
            Some(_) => Err(ApiError::invalid(
                "Idempotency-Key",
                "must be 1-255 printable ASCII characters",
            )),
        }
    }
}

/// The client address: the socket peer, unless a trusted proxy forwarded the
/// request, in which case the last `X-Forwarded-For` entry (the one the proxy
/// itself appended; entries left of it are whatever the client claimed).
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trust_proxy: bool,
) -> Option<String> {
    if trust_proxy {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty());
        if let Some(ip) = forwarded {
            return Some(ip.to_string());
        }
    }
    peer.map(|p| p.ip().to_string())
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request_id = parts
            .extensions
            .get::<HttpRequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let idempotency_key = parts
            .headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_string());
        Ok(Ctx {
            request_id,
            client_ip: client_ip(peer, &parts.headers, state.config().trust_proxy),
            raw_idempotency_key: idempotency_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_honoured_only_behind_a_trusted_proxy_and_takes_the_last_hop() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &h, false).as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            client_ip(Some(peer), &h, true).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            client_ip(Some(peer), &HeaderMap::new(), true).as_deref(),
            Some("10.0.0.5")
        );
    }

    #[test]
    fn engine_errors_map_to_422_naming_the_field() {
        let e: ApiError = EngineError::Invalid(InvalidInput::new("username", "bad")).into();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.message, "username: bad");
        let e: ApiError = EngineError::NoConnectors.into();
        assert!(e.message.starts_with("integration_targets:"), "{e}");
    }
}
