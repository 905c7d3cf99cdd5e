//! Sever as the OAuth 2.1 authorization server of its own MCP endpoint, so
//! MCP clients that speak OAuth (Claude, Cursor, VS Code, the Inspector)
//! connect with a person's consent instead of a long-lived API key.
//!
//! * Discovery: `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728)
//!   names this server as the authorization server of `/mcp`;
//!   `/.well-known/oauth-authorization-server` (RFC 8414) lists the
//!   endpoints below.
//! * `POST /oauth/register` (RFC 7591): anyone may register a public client
//!   (PKCE, no secret); it stays pending until an owner or admin approves it
//!   with `POST /api/v1/oauth/clients/{id}/approve`, which binds it to their
//!   tenant. Approval is needed once per client, not per person.
//! * `GET|POST /oauth/authorize`: the authorization code flow with PKCE
//!   (S256 only). The person signs in with the email and password of a
//!   local user of the client's tenant; the token gets the requested
//!   session scopes their role holds, never `admin`.
//! * `POST /oauth/token`: `authorization_code` and `refresh_token` grants;
//!   refresh tokens rotate and are single-use. `POST /oauth/revoke`
//!   (RFC 7009) revokes one token.
//!
//! Codes and tokens are random strings kept only as SHA-256 digests, like
//! API keys. Deleting a client (`DELETE /api/v1/oauth/clients/{id}`)
//! deletes its tokens, so it is refused at its next call.

pub mod authorize;
pub mod clients;
pub mod metadata;
pub mod register;
pub mod token;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sever_core::admin::{Scope, User};
use sever_core::oauth::{OAuthClient, TokenKind};
use sever_core::TenantId;

use crate::auth::key_digest;
use crate::error::ApiError;
use crate::AppState;

/// Access tokens: `sat_` + 32 random bytes, base64url.
pub const ACCESS_TOKEN_PREFIX: &str = "sat_";
/// Refresh tokens: `srt_` + 32 random bytes.
pub const REFRESH_TOKEN_PREFIX: &str = "srt_";
/// Authorization codes: `sac_` + 32 random bytes.
pub const CODE_PREFIX: &str = "sac_";
/// Client ids: `mcp_` + 32 random bytes.
pub const CLIENT_ID_PREFIX: &str = "mcp_";

/// How long an access token lives: short, since a refresh is cheap.
pub const ACCESS_TTL: chrono::Duration = chrono::Duration::hours(1);
/// How long a refresh token lives (each use replaces it with a new one).
pub const REFRESH_TTL: chrono::Duration = chrono::Duration::days(30);
/// How long an authorization code lives.
pub const CODE_TTL: chrono::Duration = chrono::Duration::minutes(5);
/// How long a registered client waits for approval before it is forgotten.
pub const PENDING_TTL: chrono::Duration = chrono::Duration::days(7);

/// The scopes an OAuth client may be granted: the session scopes. `admin`
/// stays with API keys and people.
pub const GRANTABLE: [Scope; 2] = [Scope::SessionsRevoke, Scope::SessionsRead];

/// The path of the protected resource.
pub const MCP_PATH: &str = "/mcp";

/// The routes of the authorization server and the resource metadata.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(metadata::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(metadata::protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route(
            "/.well-known/oauth-authorization-server/mcp",
            get(metadata::authorization_server),
        )
        .route("/oauth/register", post(register::register))
        .route(
            "/oauth/authorize",
            get(authorize::show).post(authorize::submit),
        )
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(token::revoke))
}

/// Refuse requests whose `Host` is not in `allowed_hosts` before they are
/// served: URLs in OAuth metadata are made from it, and a rebound DNS name
/// must not reach a loopback-only server.
pub async fn check_host(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match host_allowed(
        st.config().allowed_hosts.as_slice(),
        req.uri(),
        req.headers(),
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The request's authority: the `Host` header, else the URI's.
fn authority(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
}

fn split_host(authority: &str) -> (String, Option<u16>) {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').unwrap_or((rest, ""));
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host.to_ascii_lowercase(), port);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_ascii_lowercase(), p.parse().ok()),
        _ => (a.to_ascii_lowercase(), None),
    }
}

/// `Ok` when the request's host is allowed: an entry `host` allows any
/// port, `host:port` that port only, `*` anything (as the MCP SDK does).
pub fn host_allowed(allowed: &[String], uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    if allowed.is_empty() || allowed.iter().any(|a| a.trim() == "*") {
        return Ok(());
    }
    let Some(auth) = authority(uri, headers) else {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "missing Host header",
        ));
    };
    let (host, port) = split_host(&auth);
    let ok = allowed.iter().any(|a| {
        let (h, p) = split_host(a);
        h == host && p.is_none_or(|p| Some(p) == port)
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "the Host '{}' is not allowed here; add it to [server] allowed_hosts",
            auth.escape_debug()
        )))
    }
}

/// The URL clients reach this server at: `public_url` when configured,
/// else made from the (allowed) `Host` header, `https` when a trusted
/// proxy says so.
pub fn base_url(st: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &st.config().public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let https = st.config().trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// The MCP endpoint's URL, the `resource` tokens are for (RFC 8707).
pub fn resource_url(st: &AppState, headers: &HeaderMap) -> String {
    format!("{}{MCP_PATH}", base_url(st, headers))
}

/// True when `asked` names this server's MCP resource (or the server
/// itself), ignoring a trailing slash.
pub fn resource_matches(asked: &str, resource: &str) -> bool {
    let asked = asked.trim().trim_end_matches('/');
    let base = resource.trim_end_matches(MCP_PATH);
    asked == resource || asked == base
}

/// Parse a space-separated scope list into grantable scopes (both session
/// scopes when none is named); the error names the first scope that is
/// unknown or not grantable.
pub fn parse_scopes(raw: Option<&str>) -> Result<Vec<Scope>, String> {
    let mut out = Vec::new();
    for s in raw.unwrap_or("").split_whitespace() {
        match s.parse::<Scope>() {
            Ok(scope) if GRANTABLE.contains(&scope) => {
                if !out.contains(&scope) {
                    out.push(scope);
                }
            }
            _ => {
                return Err(format!(
                    "scope '{s}' is not available to OAuth clients (sessions:revoke, sessions:read)"
                ))
            }
        }
    }
    if out.is_empty() {
        out = GRANTABLE.to_vec();
    }
    out.sort();
    Ok(out)
}

pub fn scope_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a live access token lets its client do, and for whom.
#[derive(Debug, Clone)]
pub struct OAuthGrant {
    pub tenant_id: TenantId,
    pub client: OAuthClient,
    pub user: User,
    /// The token's scopes that the person's role still holds.
    pub scopes: Vec<Scope>,
}

/// The grant behind a presented access token, or 401 saying why not.
pub async fn resolve_access_token(st: &AppState, token: &str) -> Result<OAuthGrant, ApiError> {
    let t = st
        .db()
        .find_oauth_token(&key_digest(token))
        .await?
        .filter(|t| t.kind == TokenKind::Access)
        .ok_or_else(|| ApiError::unauthorized("unknown access token"))?;
    if t.revoked_at.is_some() {
        return Err(ApiError::unauthorized("this access token was revoked"));
    }
    if t.expires_at <= st.clock().now() {
        return Err(ApiError::unauthorized(
            "this access token expired; use the refresh token",
        ));
    }
    let client = st
        .db()
        .get_oauth_client(&t.client_id)
        .await?
        .filter(|c| c.is_approved() && c.tenant_id == Some(t.tenant_id))
        .ok_or_else(|| ApiError::unauthorized("the OAuth client of this token was deleted"))?;
    let user = st
        .db()
        .get_user(t.user_id)
        .await?
        .filter(|u| u.tenant_id == t.tenant_id && !u.disabled)
        .ok_or_else(|| {
            ApiError::unauthorized("the person who authorized this token no longer has access")
        })?;
    let scopes = t
        .scopes
        .iter()
        .copied()
        .filter(|s| user.role.scopes().contains(s))
        .collect();
    Ok(OAuthGrant {
        tenant_id: t.tenant_id,
        client,
        user,
        scopes,
    })
}

/// Escape text for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode a query value.
pub(crate) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn hosts_match_by_name_and_optionally_port_like_the_mcp_sdk() {
        let allowed: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let uri = Uri::from_static("/mcp");
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:5",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(host_allowed(&allowed, &uri, &headers(ok)).is_ok(), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.2:80", "localhost.evil.example"] {
            let e = host_allowed(&allowed, &uri, &headers(bad)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
            assert!(e.message.contains("allowed_hosts"), "{e}");
        }
        let pinned = vec!["sever.example.com:443".to_string()];
        assert!(host_allowed(&pinned, &uri, &headers("sever.example.com:443")).is_ok());
        assert!(host_allowed(&pinned, &uri, &headers("sever.example.com:8443")).is_err());
        assert!(host_allowed(&["*".into()], &uri, &headers("anything")).is_ok());
    }

    #[test]
    fn only_session_scopes_are_grantable_and_none_asked_means_both() {
        assert_eq!(parse_scopes(None).unwrap(), GRANTABLE.to_vec());
        assert_eq!(
            parse_scopes(Some("sessions:read sessions:read")).unwrap(),
            [Scope::SessionsRead]
        );
        assert!(parse_scopes(Some("admin")).unwrap_err().contains("'admin'"));
        assert!(parse_scopes(Some("openid")).is_err());
        assert_eq!(scope_text(&GRANTABLE), "sessions:revoke sessions:read");
    }

    #[test]
    fn resources_match_the_mcp_url_or_the_server() {
        let r = "http://127.0.0.1:9/mcp";
        assert!(resource_matches("http://127.0.0.1:9/mcp", r));
        assert!(resource_matches("http://127.0.0.1:9/mcp/", r));
        assert!(resource_matches("http://127.0.0.1:9", r));
        assert!(!resource_matches("http://127.0.0.1:10/mcp", r));
        assert!(!resource_matches("https://other.example/mcp", r));
    }

    #[test]
    fn html_and_query_values_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(enc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(enc("sac_x-y.z~"), "sac_x-y.z~");
    }
}
