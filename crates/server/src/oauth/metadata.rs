//! Discovery documents: the protected resource metadata of `/mcp` (RFC 9728)
//! and the authorization server metadata (RFC 8414). MCP clients fetch the
//! first from the `resource_metadata` of a 401's `WWW-Authenticate`, and
//! follow it to the second.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{base_url, resource_url, GRANTABLE};
use crate::AppState;

fn document(body: serde_json::Value) -> Response {
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn protected_resource(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&st, &headers);
    document(json!({
        "resource": resource_url(&st, &headers),
        "authorization_servers": [base],
        "scopes_supported": GRANTABLE.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": "Sever",
        "resource_documentation": format!("{base}/api/openapi.json"),
    }))
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn authorization_server(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&st, &headers);
    document(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "registration_endpoint": format!("{base}/oauth/register"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "scopes_supported": GRANTABLE.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "service_documentation": format!("{base}/api/openapi.json"),
    }))
}
