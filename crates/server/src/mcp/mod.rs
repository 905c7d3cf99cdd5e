//! The MCP server: AI agents revoke sessions through scoped, audited tools,
//! without holding any provider credential themselves.
//!
//! Built on the official Rust SDK (`rmcp`) and served two ways:
//! * streamable HTTP at `/mcp` on `sever serve`. Every request carries a
//!   Bearer credential (an API key, or an access token from Sever's own
//!   OAuth server, see [`crate::oauth`]), checked here before the SDK sees
//!   the request; a missing or bad one is a 401 whose `WWW-Authenticate`
//!   points OAuth-capable clients at the protected resource metadata. The
//!   server is stateless (no `Mcp-Session-Id`): any replica answers any
//!   request, and each request is authenticated on its own.
//! * stdio (`sever mcp`), for clients that launch a local process, with an
//!   API key from the environment or configuration, checked again on every
//!   call so a revoked key stops working at once.
//!
//! Both call [`tools::call`], which checks the channel switch and scopes and
//! then the same use cases as the REST API, under the same policy (the
//! caller is `key:<id>` for an API key, `mcp:<client id>` for an OAuth
//! client, over channel `mcp`).

pub mod identity;
pub mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

pub use identity::{authenticate, Credential, McpCaller};

use crate::auth::API_KEY_PREFIX;
use crate::error::{ApiError, Ctx};
use crate::oauth::{base_url, host_allowed};
use crate::AppState;

const INSTRUCTIONS: &str = "Sever ends a person's sessions in every identity provider and SaaS app it is connected to, for incident response. Use list_connectors to see where it acts, preview_revocation to check that a username resolves to the right person, revoke_sessions (always with a reason) to sign them out everywhere, and get_revocation_status to follow a request that was still running. Refusals (missing scope, channel or revocation switched off, the tenant's policy: rate limits, protected accounts, denied actions; bad input) come back as tool errors that say what to do; do not retry a refusal by the policy before the time it names. A revocation the policy holds for a person's approval comes back with status pending_approval: nothing runs until an owner or admin approves it; follow it with get_revocation_status.";

/// The MCP server of one transport.
#[derive(Clone)]
pub struct SeverMcp {
    state: AppState,
    /// Over stdio: the API key the process was started with.
    stdio_key: Option<Arc<str>>,
}

impl SeverMcp {
    /// For HTTP: each request's caller is in its extensions.
    pub fn http(state: AppState) -> Self {
        Self {
            state,
            stdio_key: None,
        }
    }

    async fn caller(&self, context: &RequestContext<RoleServer>) -> Result<McpCaller, ApiError> {
        match &self.stdio_key {
            Some(key) => authenticate(&self.state, key, None, None).await,
            None => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.extensions.get::<McpCaller>())
                .cloned()
                .ok_or_else(|| ApiError::unauthorized("this request carries no credentials")),
        }
    }
}

impl ServerHandler for SeverMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("sever", env!("CARGO_PKG_VERSION"))
                    .with_title("Sever")
                    .with_description(
                        "Revoke a compromised person's sessions in every identity provider, with an audit trail.",
                    ),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::all()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = match self.caller(&context).await {
            Ok(c) => c,
            Err(e) => return Ok(tools::tool_error(&e, None).into()),
        };
        let client_name = context
            .peer
            .peer_info()
            .map(|i| i.client_info.name.clone())
            .filter(|n| !n.trim().is_empty());
        let args = request.arguments.unwrap_or_default();
        match tools::call(&self.state, &caller, client_name, &request.name, args).await {
            Ok(r) => Ok(r.into()),
            Err(msg) => Err(ErrorData::invalid_params(msg, None)),
        }
    }
}

/// Why `sever mcp` cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{0}")]
    Credential(String),
    #[error("the MCP session failed: {0}")]
    Transport(String),
}

/// Serve MCP over stdin/stdout for the tenant of `api_key` until the client
/// closes stdin. The key is checked first, so a wrong one fails at start
/// with a message instead of at the first tool call.
pub async fn serve_stdio(state: AppState, api_key: &str) -> Result<(), StdioError> {
    let key = api_key.trim();
    if !key.starts_with(API_KEY_PREFIX) {
        return Err(StdioError::Credential(
            "the MCP API key must be a Sever API key (sk_…); create one with `sever keys create`"
                .into(),
        ));
    }
    let caller = authenticate(&state, key, None, None).await.map_err(|e| {
        StdioError::Credential(format!("the MCP API key was refused: {}", e.message))
    })?;
    tracing::info!(caller = %caller.name(), tenant = %caller.tenant_id, "serving MCP over stdio");
    let server = SeverMcp {
        state,
        stdio_key: Some(Arc::from(key)),
    };
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| StdioError::Transport(e.to_string()))?;
    Ok(())
}

/// `/mcp`: the SDK's streamable HTTP service behind Sever's authentication.
pub fn router(state: &AppState) -> Router<AppState> {
    let cfg = state.config();
    let mut http = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(cfg.body_limit);
    http = if cfg.allowed_hosts.iter().any(|h| h.trim() == "*") {
        http.disable_allowed_hosts()
    } else {
        http.with_allowed_hosts(cfg.allowed_hosts.clone())
    };
    let st = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(SeverMcp::http(st.clone())),
        Arc::new(NeverSessionManager::default()),
        http,
    );
    Router::new()
        .route_service(crate::oauth::MCP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate_http,
        ))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = h.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// 401 with `WWW-Authenticate` pointing at the protected resource metadata
/// (RFC 9728 §5.1), so an OAuth-capable client can find the authorization
/// server; `invalid` adds RFC 6750's `error="invalid_token"`.
fn challenge(st: &AppState, headers: &HeaderMap, e: ApiError, invalid: bool) -> Response {
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource{}",
        base_url(st, headers),
        crate::oauth::MCP_PATH
    );
    let value = if invalid {
        let description: String = e
            .message
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .collect();
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{metadata}\""
        )
    } else {
        format!("Bearer resource_metadata=\"{metadata}\"")
    };
    let mut r = e.into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Authenticate a request to `/mcp` and hand the caller to the MCP server.
async fn authenticate_http(
    State(st): State<AppState>,
    ctx: Ctx,
    mut req: Request,
    next: Next,
) -> Response {
    if let Err(e) = host_allowed(&st.config().allowed_hosts, req.uri(), req.headers()) {
        return e.into_response();
    }
    let Some(token) = bearer(req.headers()) else {
        let e = ApiError::unauthorized(
            "missing credentials: send 'Authorization: Bearer' with a Sever API key (sk_…) or an OAuth access token",
        );
        return challenge(&st, req.headers(), e, false);
    };
    match authenticate(
        &st,
        token,
        ctx.client_ip.clone(),
        Some(ctx.request_id.clone()),
    )
    .await
    {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            plain_errors_as_json(next.run(req).await).await
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => challenge(&st, req.headers(), e, true),
        Err(e) => e.into_response(),
    }
}

/// The SDK answers transport errors (wrong `Accept`, bad JSON, a method it
/// does not serve) in plain text; give them Sever's one error shape,
/// keeping the SDK's message.
async fn plain_errors_as_json(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 8 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut r = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            r.headers_mut().insert(name.clone(), value.clone());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_case() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer sk_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("sk_abc"));
        h.insert(header::AUTHORIZATION, "bearer  sat_x ".parse().unwrap());
        assert_eq!(bearer(&h), Some("sat_x"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
