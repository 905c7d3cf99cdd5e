//! `GET|POST /oauth/authorize`: the authorization code flow with PKCE.
//!
//! The page asks the person for the email and password of a local user of
//! the tenant the client was approved into (the users `sever users create`
//! makes, Argon2id-hashed). This is the one place Sever accepts a password:
//! the web UI signs in the same way, and no API key ever goes through a
//! browser. The code is granted the requested session scopes the person's
//! role holds: a viewer's token can read, an analyst's can also revoke.
//!
//! Errors follow RFC 6749 §4.1.2.1: a bad `client_id` or `redirect_uri` is
//! shown on the page (never redirected, so the server is no open
//! redirector); every other error is sent back to the client's redirect URI.

use std::collections::HashMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use sever_core::admin::{Scope, User};
use sever_core::oauth::{OAuthClient, OAuthCode};
use sever_core::Channel;

use super::{
    base_url, enc, esc, parse_scopes, resource_matches, resource_url, scope_text, CODE_PREFIX,
    CODE_TTL,
};
use crate::audit::{Actor, Decision};
use crate::auth::{key_digest, random_token, verify_password};
use crate::AppState;

type Params = HashMap<String, String>;

/// A request that passed every check that does not need the person.
struct Valid {
    client: OAuthClient,
    redirect_uri: String,
    scopes: Vec<Scope>,
    state: Option<String>,
    code_challenge: String,
    resource: Option<String>,
}

/// Why a request cannot go on.
enum Refusal {
    /// Shown to the person: the redirect URI cannot be trusted (or the
    /// client is not approved yet).
    Page(StatusCode, String, String),
    /// Sent back to the client.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

fn param<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// `redirect_uri` with the query parameters added.
fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = redirect_uri.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&enc(v));
        sep = '&';
    }
    url
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sever — {title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; background: #f4f4f5; color: #18181b; margin: 0; }}
main {{ max-width: 34rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 3px #0002; }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
code {{ background: #f4f4f5; padding: 0 .25rem; border-radius: 3px; word-break: break-all; }}
label {{ display: block; margin: .75rem 0; }}
input {{ display: block; width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; margin-top: .25rem; }}
button {{ font: inherit; padding: .5rem 1.25rem; margin-right: .5rem; cursor: pointer; }}
.error {{ background: #fef2f2; color: #991b1b; padding: .5rem .75rem; border-radius: 4px; }}
.muted {{ color: #52525b; font-size: .9rem; }}
</style></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>"#,
        title = esc(title),
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn refuse(r: Refusal) -> Response {
    match r {
        Refusal::Page(status, title, body) => page(status, &title, &body),
        Refusal::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => {
            let mut pairs = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                pairs.push(("state", s.as_str()));
            }
            redirect(&with_query(&redirect_uri, &pairs))
        }
    }
}

async fn validate(st: &AppState, headers: &HeaderMap, p: &Params) -> Result<Valid, Refusal> {
    let Some(client_id) = param(p, "client_id") else {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "Missing client".into(),
            "<p>The request names no <code>client_id</code>. Start again from your MCP client.</p>"
                .into(),
        ));
    };
    let client = match st.db().get_oauth_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Refusal::Page(
                StatusCode::BAD_REQUEST,
                "Unknown client".into(),
                format!(
                    "<p>No MCP client <code>{}</code> is registered here (it may have been deleted, or never approved within 7 days). Remove the server from your MCP client and add it again to register anew.</p>",
                    esc(client_id)
                ),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read an OAuth client");
            return Err(Refusal::Page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again".into(),
                "<p>The database is unavailable; retry shortly.</p>".into(),
            ));
        }
    };
    let redirect_uri = match param(p, "redirect_uri") {
        Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_string(),
        Some(u) => {
            return Err(Refusal::Page(
                StatusCode::BAD_REQUEST,
                "Unregistered redirect URI".into(),
                format!(
                    "<p>The redirect URI <code>{}</code> is not one the client <strong>{}</strong> registered.</p>",
                    esc(u),
                    esc(&client.name)
                ),
            ))
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(Refusal::Page(
                StatusCode::BAD_REQUEST,
                "Missing redirect URI".into(),
                "<p>The client registered several redirect URIs; the request must name one.</p>".into(),
            ))
        }
    };
    if !client.is_approved() {
        let base = base_url(st, headers);
        return Err(Refusal::Page(
            StatusCode::FORBIDDEN,
            "Waiting for approval".into(),
            format!(
                "<p>The MCP client <strong>{name}</strong> registered with Sever, but an owner or admin must approve it once before it can connect.</p>\
                 <p>Give them its client id:</p><p><code>{id}</code></p>\
                 <p class=\"muted\">They approve it with an admin API key:<br><code>curl -X POST -H 'Authorization: Bearer sk_…' {base}/api/v1/oauth/clients/{id}/approve</code></p>\
                 <p>Then connect again from your MCP client.</p>",
                name = esc(&client.name),
                id = esc(&client.id),
                base = esc(&base),
            ),
        ));
    }
    let state = param(p, "state").map(str::to_string);
    let back = |error: &'static str, description: String| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description,
        state: state.clone(),
    };
    if param(p, "response_type") != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    let Some(challenge) = param(p, "code_challenge") else {
        return Err(back(
            "invalid_request",
            "PKCE is required: send code_challenge and code_challenge_method=S256".into(),
        ));
    };
    if param(p, "code_challenge_method") != Some("S256") {
        return Err(back(
            "invalid_request",
            "code_challenge_method must be S256".into(),
        ));
    }
    if challenge.len() != 43
        || !challenge
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(back(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)"
                .into(),
        ));
    }
    let scopes = parse_scopes(param(p, "scope")).map_err(|why| back("invalid_scope", why))?;
    let resource = param(p, "resource").map(str::to_string);
    if let Some(r) = &resource {
        if !resource_matches(r, &resource_url(st, headers)) {
            return Err(back(
                "invalid_target",
                format!(
                    "this server issues tokens for {} only",
                    resource_url(st, headers)
                ),
            ));
        }
    }
    Ok(Valid {
        client,
        redirect_uri,
        scopes,
        state,
        code_challenge: challenge.to_string(),
        resource,
    })
}

fn scope_line(s: Scope) -> &'static str {
    match s {
        Scope::SessionsRevoke => "<li><code>sessions:revoke</code> — end a person's sessions in every connected app</li>",
        Scope::SessionsRead => "<li><code>sessions:read</code> — preview revocations, read their status, list connectors</li>",
        Scope::Admin => "",
    }
}

async fn consent(
    st: &AppState,
    v: &Valid,
    p: &Params,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let tenant = match v.client.tenant_id {
        Some(t) => st
            .db()
            .get_tenant(t)
            .await
            .ok()
            .flatten()
            .map_or_else(|| t.to_string(), |t| t.name),
        None => String::new(),
    };
    let hidden: String = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "resource",
    ]
    .iter()
    .filter_map(|k| {
        param(p, k).map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)))
    })
    .collect();
    let email = param(p, "email").unwrap_or("");
    let body = format!(
        "<p><strong>{name}</strong> asks to act for you in Sever (tenant <strong>{tenant}</strong>) with:</p>\
         <ul>{scopes}</ul>\
         <p class=\"muted\">Your role limits what it gets. It returns to <code>{redirect}</code>.</p>\
         {error}\
         <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
         <label>Email<input name=\"email\" type=\"email\" autocomplete=\"username\" value=\"{email}\" required autofocus></label>\
         <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button>\
         </form>",
        name = esc(&v.client.name),
        tenant = esc(&tenant),
        scopes = v.scopes.iter().map(|s| scope_line(*s)).collect::<String>(),
        redirect = esc(&v.redirect_uri),
        error = error
            .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
            .unwrap_or_default(),
        email = esc(email),
    );
    page(status, "Authorize an MCP client", &body)
}

fn bad_request(e: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("<p>{}</p>", esc(e)),
    )
}

/// `GET /oauth/authorize`: check the request and show the sign-in page.
pub async fn show(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Params>, QueryRejection>,
) -> Response {
    let p = match q {
        Ok(Query(p)) => p,
        Err(e) => return bad_request(&e.body_text()),
    };
    match validate(&st, &headers, &p).await {
        Ok(v) => consent(&st, &v, &p, StatusCode::OK, None).await,
        Err(r) => refuse(r),
    }
}

/// The person behind `email` and `password` in the client's tenant, if the
/// password is right and the account enabled.
async fn sign_in(st: &AppState, v: &Valid, email: &str, password: &str) -> Option<User> {
    let tenant = v.client.tenant_id?;
    let user = st.db().find_user(tenant, email.trim()).await.ok().flatten();
    // Hash even for an unknown email, so timing does not tell who exists.
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(dummy_hash);
        verify_password(&password, &phc) && known
    })
    .await
    .unwrap_or(false);
    user.filter(|u| ok && !u.disabled)
}

/// An Argon2id hash of a random string, made once, verified against when
/// the email is unknown.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| crate::auth::hash_password(&random_token("")).unwrap_or_default())
        .clone()
}

fn actor(v: &Valid, who: String, role: Option<String>, ip: Option<String>) -> Option<Actor> {
    let tenant_id = v.client.tenant_id?;
    Some(Actor {
        tenant_id,
        name: who,
        role,
        channel: Channel::Mcp,
        source: Some(v.client.name.clone()),
        client_ip: ip,
        http_request_id: None,
        detail: json!({"client_id": v.client.id, "scopes_requested": scope_text(&v.scopes)}),
    })
}

/// `POST /oauth/authorize`: sign the person in and send the client a code.
pub async fn submit(
    State(st): State<AppState>,
    ctx: crate::error::Ctx,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let p = match form {
        Ok(Form(p)) => p,
        Err(e) => return bad_request(&e.body_text()),
    };
    let v = match validate(&st, &headers, &p).await {
        Ok(v) => v,
        Err(r) => return refuse(r),
    };
    if param(&p, "decision") == Some("deny") {
        return refuse(Refusal::Redirect {
            redirect_uri: v.redirect_uri,
            error: "access_denied",
            description: "the person declined".into(),
            state: v.state,
        });
    }
    let email = param(&p, "email").unwrap_or("").trim().to_string();
    let password = param(&p, "password").unwrap_or("");
    let clock = st.clock().clone();
    let Some(user) = sign_in(&st, &v, &email, password).await else {
        if let Some(a) = actor(&v, format!("user:{email}"), None, ctx.client_ip.clone()) {
            let ev = a
                .event(clock.as_ref(), "oauth.authorize", Decision::Denied)
                .target(Some(&v.client.id))
                .result("wrong email or password, or the account is disabled")
                .build();
            a.allow(&st, ev).await;
        }
        return consent(
            &st,
            &v,
            &p,
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
        )
        .await;
    };
    let Some(a) = actor(
        &v,
        format!("user:{}", user.email),
        Some(user.role.as_str().to_string()),
        ctx.client_ip.clone(),
    ) else {
        return refuse(Refusal::Redirect {
            redirect_uri: v.redirect_uri,
            error: "server_error",
            description: "the client has no tenant".into(),
            state: v.state,
        });
    };
    let granted: Vec<Scope> = v
        .scopes
        .iter()
        .copied()
        .filter(|s| user.role.scopes().contains(s))
        .collect();
    if granted.is_empty() {
        let ev = a
            .event(clock.as_ref(), "oauth.authorize", Decision::Denied)
            .target(Some(&v.client.id))
            .result(format!(
                "role {} holds none of the requested scopes",
                user.role
            ))
            .build();
        a.allow(&st, ev).await;
        return refuse(Refusal::Redirect {
            redirect_uri: v.redirect_uri,
            error: "access_denied",
            description: format!(
                "the role {} holds none of the requested scopes ({})",
                user.role,
                scope_text(&v.scopes)
            ),
            state: v.state,
        });
    }
    let code = random_token(CODE_PREFIX);
    let now = clock.now();
    let Some(tenant_id) = v.client.tenant_id else {
        return refuse(Refusal::Redirect {
            redirect_uri: v.redirect_uri,
            error: "server_error",
            description: "the client has no tenant".into(),
            state: v.state,
        });
    };
    let record = OAuthCode {
        digest: key_digest(&code),
        client_id: v.client.id.clone(),
        tenant_id,
        user_id: user.id,
        scopes: granted.clone(),
        redirect_uri: v.redirect_uri.clone(),
        code_challenge: v.code_challenge.clone(),
        resource: v.resource.clone(),
        expires_at: now + CODE_TTL,
        created_at: now,
    };
    let ev = a
        .event(clock.as_ref(), "oauth.authorize", Decision::Allowed)
        .target(Some(&v.client.id))
        .result(format!("code issued for {}", scope_text(&granted)))
        .build();
    if let Err(e) = st.db().put_oauth_code(&record, &ev).await {
        tracing::error!(error = %e, "could not store an authorization code");
        return refuse(Refusal::Redirect {
            redirect_uri: v.redirect_uri,
            error: "temporarily_unavailable",
            description: "the database is unavailable; retry shortly".into(),
            state: v.state,
        });
    }
    let issuer = base_url(&st, &headers);
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &v.state {
        pairs.push(("state", s.as_str()));
    }
    pairs.push(("iss", issuer.as_str()));
    redirect(&with_query(&v.redirect_uri, &pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_appended_encoded() {
        assert_eq!(
            with_query("https://a.example/cb", &[("code", "x y"), ("state", "s&t")]),
            "https://a.example/cb?code=x%20y&state=s%26t"
        );
        assert_eq!(
            with_query("http://127.0.0.1:5/cb?keep=1", &[("code", "c")]),
            "http://127.0.0.1:5/cb?keep=1&code=c"
        );
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_so_unknown_emails_cost_the_same() {
        let h = dummy_hash();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!verify_password("", &h));
        assert_eq!(dummy_hash(), h, "made once");
    }
}
