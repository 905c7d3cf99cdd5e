//! `POST /oauth/token` (authorization code with PKCE, refresh token) and
//! `POST /oauth/revoke` (RFC 7009).
//!
//! A code is taken out of the store before it is checked, so a code is
//! burned by its first use whatever happens next: a stolen code replayed
//! with a wrong verifier cannot be retried. Refresh tokens rotate: each use
//! marks the old one used and issues a new pair in one transaction, so two
//! racing refreshes cannot both succeed.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use sever_core::admin::{AuditEvent, Scope, User};
use sever_core::oauth::{OAuthClient, OAuthToken, TokenKind};
use sever_core::{Channel, TenantId};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::register::{error, OAuthError};
use super::{
    parse_scopes, resource_matches, resource_url, scope_text, ACCESS_TOKEN_PREFIX, ACCESS_TTL,
    REFRESH_TOKEN_PREFIX, REFRESH_TTL,
};
use crate::audit::{Actor, Decision};
use crate::auth::{key_digest, random_token};
use crate::error::Ctx;
use crate::AppState;

type Params = HashMap<String, String>;

fn param<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn invalid_request(why: impl Into<String>) -> OAuthError {
    error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

fn invalid_grant(why: impl Into<String>) -> OAuthError {
    error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

fn invalid_client(why: impl Into<String>) -> OAuthError {
    error(StatusCode::UNAUTHORIZED, "invalid_client", why)
}

fn unavailable(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "OAuth token endpoint: database error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the database is unavailable; retry shortly",
    )
}

/// base64url(SHA-256(verifier)) == challenge, for a verifier of RFC 7636's
/// shape (43-128 unreserved characters).
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let shaped = (43..=128).contains(&verifier.len())
        && verifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
    shaped && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// The approved client `client_id` names, or `invalid_client`.
async fn client_of(st: &AppState, p: &Params) -> Result<OAuthClient, OAuthError> {
    let Some(id) = param(p, "client_id") else {
        return Err(invalid_client("client_id is required"));
    };
    match st.db().get_oauth_client(id).await {
        Ok(Some(c)) if c.is_approved() => Ok(c),
        Ok(Some(_)) => Err(invalid_client(
            "this client is waiting for an owner or admin to approve it",
        )),
        Ok(None) => Err(invalid_client("unknown client_id")),
        Err(e) => Err(unavailable(e)),
    }
}

/// The person a grant is for, still present and enabled in the tenant.
async fn person(st: &AppState, tenant: TenantId, id: Uuid) -> Result<User, OAuthError> {
    match st.db().get_user(id).await {
        Ok(Some(u)) if u.tenant_id == tenant && !u.disabled => Ok(u),
        Ok(_) => Err(invalid_grant(
            "the person who authorized this grant no longer has access",
        )),
        Err(e) => Err(unavailable(e)),
    }
}

struct Issued {
    access: String,
    refresh: String,
    records: [OAuthToken; 2],
}

fn issue(
    st: &AppState,
    client: &OAuthClient,
    tenant: TenantId,
    user: &User,
    scopes: &[Scope],
) -> Issued {
    let now = st.clock().now();
    let access = random_token(ACCESS_TOKEN_PREFIX);
    let refresh = random_token(REFRESH_TOKEN_PREFIX);
    let record = |token: &str, kind, ttl| OAuthToken {
        digest: key_digest(token),
        kind,
        client_id: client.id.clone(),
        tenant_id: tenant,
        user_id: user.id,
        scopes: scopes.to_vec(),
        expires_at: now + ttl,
        created_at: now,
        revoked_at: None,
    };
    Issued {
        records: [
            record(&access, TokenKind::Access, ACCESS_TTL),
            record(&refresh, TokenKind::Refresh, REFRESH_TTL),
        ],
        access,
        refresh,
    }
}

fn answer(issued: &Issued, scopes: &[Scope]) -> Response {
    let mut r = axum::Json(json!({
        "access_token": issued.access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL.num_seconds(),
        "refresh_token": issued.refresh,
        "scope": scope_text(scopes),
    }))
    .into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn audit(
    st: &AppState,
    ctx: &Ctx,
    client: &OAuthClient,
    tenant: TenantId,
    user: &User,
    action: &str,
    scopes: &[Scope],
) -> AuditEvent {
    Actor {
        tenant_id: tenant,
        name: format!("oauth:{}", client.id),
        role: None,
        channel: Channel::Mcp,
        source: Some(client.name.clone()),
        client_ip: ctx.client_ip.clone(),
        http_request_id: Some(ctx.request_id.clone()),
        detail: json!({"on_behalf_of": format!("user:{}", user.email)}),
    }
    .event(st.clock().as_ref(), action, Decision::Allowed)
    .target(Some(&client.id))
    .result(format!("issued tokens for {}", scope_text(scopes)))
    .build()
}

/// `POST /oauth/token`.
pub async fn token(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    match grant(&st, &ctx, &headers, form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn grant(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Ok(Form(p)) = form else {
        return Err(invalid_request(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    };
    if let Some(r) = param(&p, "resource") {
        let ours = resource_url(st, headers);
        if !resource_matches(r, &ours) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                format!("this server issues tokens for {ours} only"),
            ));
        }
    }
    match param(&p, "grant_type") {
        Some("authorization_code") => authorization_code(st, ctx, &p).await,
        Some("refresh_token") => refresh(st, ctx, &p).await,
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type '{}' is not supported (authorization_code, refresh_token)",
                other.escape_debug()
            ),
        )),
        None => Err(invalid_request("grant_type is required")),
    }
}

async fn authorization_code(st: &AppState, ctx: &Ctx, p: &Params) -> Result<Response, OAuthError> {
    let (Some(code), Some(verifier)) = (param(p, "code"), param(p, "code_verifier")) else {
        return Err(invalid_request("code and code_verifier are required"));
    };
    let client = client_of(st, p).await?;
    let grant = st
        .db()
        .take_oauth_code(&key_digest(code))
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            invalid_grant("the authorization code is unknown, expired or already used")
        })?;
    if grant.client_id != client.id || client.tenant_id != Some(grant.tenant_id) {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if grant.expires_at <= st.clock().now() {
        return Err(invalid_grant(
            "the authorization code expired; authorize again",
        ));
    }
    if param(p, "redirect_uri").is_some_and(|u| u != grant.redirect_uri) {
        return Err(invalid_grant(
            "redirect_uri differs from the one the code was issued for",
        ));
    }
    if !pkce_s256_matches(verifier, &grant.code_challenge) {
        return Err(invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    let user = person(st, grant.tenant_id, grant.user_id).await?;
    let issued = issue(st, &client, grant.tenant_id, &user, &grant.scopes);
    let ev = audit(
        st,
        ctx,
        &client,
        grant.tenant_id,
        &user,
        "oauth.token",
        &grant.scopes,
    );
    st.db()
        .put_oauth_tokens(&issued.records, &ev)
        .await
        .map_err(unavailable)?;
    Ok(answer(&issued, &grant.scopes))
}

async fn refresh(st: &AppState, ctx: &Ctx, p: &Params) -> Result<Response, OAuthError> {
    let Some(presented) = param(p, "refresh_token") else {
        return Err(invalid_request("refresh_token is required"));
    };
    let client = client_of(st, p).await?;
    let digest = key_digest(presented);
    let old = st
        .db()
        .find_oauth_token(&digest)
        .await
        .map_err(unavailable)?
        .filter(|t| t.kind == TokenKind::Refresh && t.client_id == client.id)
        .ok_or_else(|| invalid_grant("unknown refresh token"))?;
    if !old.is_live(st.clock().now()) {
        return Err(invalid_grant(
            "the refresh token expired or was already used; authorize again",
        ));
    }
    let scopes = match param(p, "scope") {
        Some(s) => match parse_scopes(Some(s)) {
            Ok(asked) if asked.iter().all(|s| old.scopes.contains(s)) => asked,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!(
                        "a refresh may only narrow the grant ({})",
                        scope_text(&old.scopes)
                    ),
                ))
            }
        },
        None => old.scopes.clone(),
    };
    let user = person(st, old.tenant_id, old.user_id).await?;
    let issued = issue(st, &client, old.tenant_id, &user, &scopes);
    let ev = audit(
        st,
        ctx,
        &client,
        old.tenant_id,
        &user,
        "oauth.refresh",
        &scopes,
    );
    let rotated = st
        .db()
        .rotate_oauth_refresh_token(&digest, st.clock().now(), &issued.records, &ev)
        .await
        .map_err(unavailable)?;
    if !rotated {
        return Err(invalid_grant(
            "the refresh token was already used; authorize again",
        ));
    }
    Ok(answer(&issued, &scopes))
}

/// `POST /oauth/revoke`: revoke an access or refresh token of the client.
/// Answers 200 whether or not the token existed (RFC 7009 §2.2).
pub async fn revoke(
    State(st): State<AppState>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let Ok(Form(p)) = form else {
        return invalid_request("send the parameters as application/x-www-form-urlencoded")
            .into_response();
    };
    let (Some(token), Some(client_id)) = (param(&p, "token"), param(&p, "client_id")) else {
        return invalid_request("token and client_id are required").into_response();
    };
    match st
        .db()
        .revoke_oauth_token(client_id, &key_digest(token), st.clock().now())
        .await
    {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_s256_matches("short", challenge));
        assert!(!pkce_s256_matches(&format!("{verifier}!"), challenge));
    }
}
