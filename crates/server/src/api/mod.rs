//! The HTTP surface: the REST API under `/api/v1`, the signed webhook, and
//! `GET /api/openapi.json`. Routes are registered through `utoipa-axum`, so
//! the OpenAPI description is generated from the same handler annotations
//! that define the routes and cannot drift from them.

pub mod audit_log;
pub mod bulk;
pub mod connectors;
pub mod keys;
pub mod policy;
pub mod revocations;
pub mod settings;
pub mod usage;
pub mod views;
pub mod webhook;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use sever_core::policy::PolicyResolver;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{request_context, ApiError, ErrorBody, ErrorDetail};
use crate::oauth::clients as oauth_clients;
use crate::AppState;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_…")
                    .description(Some(
                        "An API key (`sk_` + 43 characters), sent as `Authorization: Bearer sk_…`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "webhook_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Session-Revocation-Signature",
                "`sha256=<hex HMAC-SHA256 of the raw body>` or `t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">`, keyed with the tenant's `sr_…` webhook signing secret. For the poll endpoint the message is `<path>?<query>`.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sever API",
        description = "End a person's sessions in every connected identity provider, and keep one audited record of what happened. Errors always have the shape `{\"error\": {\"code\", \"message\", \"request_id\"}}`; every answer carries `X-Request-Id`. POST, PUT, PATCH and DELETE accept an `Idempotency-Key` header.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "revocations", description = "Revoke a person's sessions and read the results"),
        (name = "bulk", description = "Revoke many people under one incident id, follow the job, download its results"),
        (name = "webhook", description = "The signed SOAR entry point"),
        (name = "connectors", description = "Connector instances of the tenant (admin)"),
        (name = "settings", description = "The tenant's switches (admin)"),
        (name = "api-keys", description = "API keys of the tenant (admin)"),
        (name = "usage", description = "Completed revocations, for billing"),
        (name = "audit", description = "The audit trail (admin)"),
        (name = "oauth-clients", description = "MCP clients registered over OAuth, approved once by an owner or admin (admin)"),
        (name = "policy", description = "The tenant's policy: what each caller may do, rate limits, protected accounts, approvals (admin)"),
        (name = "approvals", description = "Revocations a policy held for a second person's approval (admin; two-person rule)"),
    )
)]
struct ApiDoc;

/// Every route, the policy's and approvals' with `resolver`.
fn api_routes(resolver: Arc<PolicyResolver>) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(revocations::create, revocations::list))
        .routes(routes!(revocations::get_one))
        .routes(routes!(revocations::preview))
        .routes(routes!(bulk::create, bulk::list))
        .routes(routes!(bulk::get_one))
        .routes(routes!(bulk::results_csv))
        .routes(routes!(bulk::approve))
        .routes(routes!(bulk::deny))
        .routes(routes!(connectors::list, connectors::create))
        .routes(routes!(
            connectors::get_one,
            connectors::update,
            connectors::delete
        ))
        .routes(routes!(connectors::test))
        .routes(routes!(settings::get_settings, settings::put_settings))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::delete))
        .routes(routes!(usage::usage))
        .routes(routes!(audit_log::list))
        .routes(routes!(webhook::webhook))
        .routes(routes!(webhook::poll))
        .routes(routes!(oauth_clients::list))
        .routes(routes!(oauth_clients::get_one, oauth_clients::delete))
        .routes(routes!(oauth_clients::approve))
        .merge(policy::routes(resolver))
}

/// The OpenAPI 3.1 description of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes(Arc::new(PolicyResolver::for_server(None))).into_openapi()
}

/// The OpenAPI description as served: pretty JSON.
pub fn openapi_json() -> String {
    openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The whole HTTP application over `state`.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api_routes(state.policy().clone()).split_for_parts();
    let doc = doc.to_pretty_json().unwrap_or_else(|_| "{}".into());
    let limit = state.config().body_limit;
    routes
        .route(
            "/api/openapi.json",
            get(move || async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    doc,
                )
            }),
        )
        .merge(crate::mcp::router(&state))
        .merge(
            crate::oauth::router().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::oauth::check_host,
            )),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
}

/// The raw body, or 413 when it is over the limit.
pub(crate) fn raw_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::new(e.status(), "bad_request", e.body_text())
        }
    })
}

/// Parse a JSON body; errors name the field at fault.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "is empty; send a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid("body", format!("is not valid JSON ({msg})"));
        }
        let field = if let Some(rest) = msg.strip_prefix("unknown field `") {
            rest.split('`').next().unwrap_or("body").to_string()
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            rest.split('`').next().unwrap_or("body").to_string()
        } else if path == "." || path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(&field, msg)
    })?;
    de.end()
        .map_err(|_| ApiError::invalid("body", "has trailing characters after the JSON"))?;
    Ok(value)
}

/// A JSON answer with `status`.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Answer a replayed idempotent request the way it was answered first.
pub(crate) fn replay_response(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut r = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        json_response(status, &body)
    };
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        username: String,
        targets: Option<Vec<String>>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"username": 5}"#).unwrap_err();
        assert!(e.message.starts_with("username:"), "{e}");
        let e = parse_json::<Body>(br#"{"username": "a", "targets": ["x", 3]}"#).unwrap_err();
        assert!(e.message.starts_with("targets[1]:"), "{e}");
        let e = parse_json::<Body>(br#"{"username": "a", "target": []}"#).unwrap_err();
        assert!(e.message.starts_with("target:"), "{e}");
        let e = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert!(e.message.starts_with("username:"), "{e}");
        let e = parse_json::<Body>(br#"{"username": "#).unwrap_err();
        assert!(e.message.starts_with("body:"), "{e}");
        let e = parse_json::<Body>(b"").unwrap_err();
        assert!(e.message.starts_with("body:"), "{e}");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_openapi_description_matches_the_checked_in_snapshot() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");
        let actual = openapi_json();
        if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
            std::fs::write(path, format!("{actual}\n")).unwrap();
        }
        let expected = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            expected.trim_end() == actual.trim_end(),
            "the OpenAPI description changed; review it and rerun with UPDATE_SNAPSHOTS=1 to accept ({path})"
        );
        let v: serde_json::Value = serde_json::from_str(&actual).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
    }
}
