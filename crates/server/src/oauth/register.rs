//! `POST /oauth/register`: dynamic client registration (RFC 7591).
//!
//! Open to anyone, because MCP clients register themselves the first time
//! they connect, and harmless because a registered client can do nothing
//! until an owner or admin approves it. Only public clients are registered
//! (`token_endpoint_auth_method: none`): they prove themselves with PKCE,
//! so no client secret exists to leak. Pending clients are forgotten after
//! [`PENDING_TTL`](super::PENDING_TTL).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sever_core::oauth::OAuthClient;

use super::{base_url, parse_scopes, scope_text, CLIENT_ID_PREFIX, PENDING_TTL};
use crate::auth::random_token;
use crate::AppState;

/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;

/// Most clients waiting for approval at once: registration is anonymous,
/// so what it may store is bounded (pending clients expire after
/// [`PENDING_TTL`]).
pub const MAX_PENDING: u64 = 10_000;

/// An OAuth error answer (RFC 6749 §5.2, RFC 7591 §3.2.2):
/// `{"error", "error_description"}`, never cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"error": self.code, "error_description": self.description})),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

pub(crate) fn error(
    status: StatusCode,
    code: &'static str,
    description: impl Into<String>,
) -> OAuthError {
    OAuthError {
        status,
        code,
        description: description.into(),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h == "::1" || h.starts_with("127.")
}

/// A redirect URI a client may register: absolute, no fragment; `https`,
/// `http` on loopback only (native apps listening locally, RFC 8252), or a
/// private-use scheme of a desktop app (`cursor://…`, `vscode://…`).
pub fn check_redirect_uri(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let bad = |why: &str| Err(format!("redirect URI '{}' {why}", s.escape_debug()));
    if s.is_empty() || s.len() > 2000 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("is empty, too long or contains spaces");
    }
    if s.contains('#') {
        return bad("must not contain a fragment");
    }
    let Ok(uri) = s.parse::<Uri>() else {
        return bad("is not an absolute URI");
    };
    let Some(scheme) = uri.scheme_str().map(str::to_ascii_lowercase) else {
        return bad("is not an absolute URI");
    };
    match scheme.as_str() {
        "http" if !uri.host().is_some_and(is_loopback) => {
            return bad("uses http on a host other than localhost, 127.0.0.1 or [::1]; use https");
        }
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss" => {
            return bad("uses a scheme that cannot receive an authorization code");
        }
        _ => {}
    }
    Ok(s.to_string())
}

/// Register a client. The answer is RFC 7591's, with the client pending.
pub async fn register(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match registered(&st, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn registered(
    st: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let bad = |code, why: String| error(StatusCode::BAD_REQUEST, code, why);
    let body = body.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_client_metadata",
            "the registration request is too large",
        )
    })?;
    let Ok(Value::Object(meta)) = serde_json::from_slice::<Value>(&body) else {
        return Err(bad(
            "invalid_client_metadata",
            "send the client metadata as a JSON object".into(),
        ));
    };
    let uris = match meta.get("redirect_uris") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_REDIRECT_URIS => a,
        _ => {
            return Err(bad(
                "invalid_redirect_uri",
                format!("redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"),
            ))
        }
    };
    let redirect_uris = uris
        .iter()
        .map(|u| match u.as_str() {
            Some(u) => check_redirect_uri(u),
            None => Err("redirect_uris must be strings".into()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| bad("invalid_redirect_uri", why))?;
    let list = |field: &str, allowed: &[&str], default: &[&str]| match meta.get(field) {
        None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if allowed.contains(&s) => Ok(s.to_string()),
                _ => Err(format!("{field} may only contain {}", allowed.join(", "))),
            })
            .collect::<Result<Vec<String>, String>>(),
        Some(_) => Err(format!("{field} must be an array")),
    };
    let grant_types = list(
        "grant_types",
        &["authorization_code", "refresh_token"],
        &["authorization_code", "refresh_token"],
    )
    .map_err(|why| bad("invalid_client_metadata", why))?;
    let response_types = list("response_types", &["code"], &["code"])
        .map_err(|why| bad("invalid_client_metadata", why))?;
    let scope = meta
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| parse_scopes(Some(s)).map(|scopes| scope_text(&scopes)))
        .transpose()
        .map_err(|why| bad("invalid_client_metadata", why))?;
    let name: String = meta
        .get("client_name")
        .and_then(Value::as_str)
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unnamed MCP client".into());

    // What is kept besides the fields above: descriptive metadata, bounded.
    let mut kept = Map::new();
    for field in [
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "software_id",
        "software_version",
    ] {
        if let Some(Value::String(v)) = meta.get(field) {
            kept.insert(field.into(), json!(v.chars().take(500).collect::<String>()));
        }
    }
    kept.insert("grant_types".into(), json!(grant_types));
    kept.insert("response_types".into(), json!(response_types));
    if let Some(s) = &scope {
        kept.insert("scope".into(), json!(s));
    }

    let now = st.clock().now();
    if let Err(e) = st.db().purge_stale_oauth(now - PENDING_TTL, now).await {
        tracing::warn!(error = %e, "could not purge stale OAuth clients and tokens");
    }
    let pending = st.db().count_pending_oauth_clients().await.map_err(|e| {
        tracing::error!(error = %e, "could not count pending OAuth clients");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the client could not be registered; retry shortly",
        )
    })?;
    if pending >= MAX_PENDING {
        tracing::warn!(
            pending,
            "OAuth registration refused: too many clients await approval"
        );
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many clients are waiting for approval; ask an admin to approve or let pending registrations expire",
        ));
    }
    let client = OAuthClient {
        id: random_token(CLIENT_ID_PREFIX),
        name,
        redirect_uris,
        metadata: Value::Object(kept.clone()),
        tenant_id: None,
        approved_by: None,
        approved_at: None,
        created_at: now,
    };
    st.db().create_oauth_client(&client).await.map_err(|e| {
        tracing::error!(error = %e, "could not register an OAuth client");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the client could not be registered; retry shortly",
        )
    })?;
    tracing::info!(client_id = %client.id, name = %client.name, "OAuth client registered, pending approval");
    let base = base_url(st, headers);
    let mut answer = json!({
        "client_id": client.id,
        "client_id_issued_at": now.timestamp(),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": "none",
        "sever_status": "pending_approval",
        "sever_approval": format!(
            "An owner or admin must approve this client once: POST {base}/api/v1/oauth/clients/{}/approve with an admin API key.",
            client.id
        ),
    });
    if let (Value::Object(a), Value::Object(k)) = (&mut answer, Value::Object(kept)) {
        for (field, v) in k {
            a.entry(field).or_insert(v);
        }
    }
    let mut r = (StatusCode::CREATED, axum::Json(answer)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_http_or_an_app_scheme() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]:8080/cb",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "vscode://vscode.github-authentication/did-authenticate",
        ] {
            assert_eq!(check_redirect_uri(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "https://x.example/cb#frag",
            "javascript:alert(1)",
            "/relative/path",
            "",
            "https://a b.example/",
            "data:text/html,hi",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
