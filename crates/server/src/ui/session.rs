//! Who is using the UI: sign-in with a local user, the session cookie, and
//! the checks every state-changing request passes.
//!
//! * The cookie holds a random 256-bit id; the store keeps its SHA-256, so
//!   a copy of the database signs nobody in. It is `HttpOnly` (no script
//!   reads it), `SameSite=Strict` (no other site's page sends it), scoped to
//!   `/ui`, and `Secure` when the request came over HTTPS. A session ends
//!   after 12 hours, or 2 hours without activity.
//! * Every POST passes [`Posted`]: the request must come from our own pages
//!   (the `Origin` header, or for form posts, which browsers send with
//!   `Origin: null` under `Referrer-Policy: no-referrer`, the browser's own
//!   `Sec-Fetch-Site` verdict), and carry the session's CSRF token
//!   (synchronizer pattern). The sign-in form, which has no session yet,
//!   carries a token matched against a short-lived cookie (double submit).
//! * Five failed sign-ins for one email within 15 minutes lock it for 15
//!   minutes, counted in the store so every replica sees the same count.
//!   Unknown emails are counted too and cost the same Argon2 time, so the
//!   answer does not tell which emails exist.
//! * Sign out ends this session; "sign out everywhere" ends every session of
//!   the person.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use serde::Deserialize;
use serde_json::json;
use sever_core::admin::{Role, Scope, User};
use sever_core::policy::{Action, Caller};
use sever_core::web::{FailurePolicy, WebSession};
use sever_core::{Channel, TenantId};

use super::{render, role_can, Layout, LayoutSeed, UiError};
use crate::audit::{Actor, Decision};
use crate::auth::{key_digest, random_token, verify_password};
use crate::error::{ApiError, Ctx};
use crate::AppState;

pub(crate) const SESSION_COOKIE: &str = "sever_session";
const SIGNIN_COOKIE: &str = "sever_signin";
/// A session ends this long after sign-in, whatever its activity.
const SESSION_TTL: Duration = Duration::hours(12);
/// ... or after this long without a request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::hours(2);
/// How often `last_seen_at` is written: on every request would turn reads into writes.
const TOUCH_EVERY: Duration = Duration::seconds(60);
/// Failed sign-ins within [`FAILURE_WINDOW`] that lock an email.
pub(crate) const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::minutes(15);
pub(crate) const LOCKOUT: Duration = Duration::minutes(15);

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// Whether the browser reached us over HTTPS (directly, or through a proxy
/// we trust to say so).
fn is_https(headers: &HeaderMap, trust_proxy: bool) -> bool {
    trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Equal in time independent of where the inputs differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a state-changing request comes from one of our own pages.
///
/// Browsers send `Sec-Fetch-Site` on every request; when present it must be
/// `same-origin`. `Origin`, when it names an origin, must be ours (the
/// `Host` the request was sent to). `Origin: null` (a form post under
/// `Referrer-Policy: no-referrer`) is accepted only with the browser's
/// `Sec-Fetch-Site: same-origin`. A request with neither header is not from
/// a browser page, so a cross-site forgery is not possible; it still needs
/// the session cookie and the CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""));
    if site.is_some_and(|s| s != "same-origin") {
        return false;
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    match origin {
        None => true,
        Some("null") => site.is_some(),
        Some(o) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let authority = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .unwrap_or("");
            !host.is_empty() && authority.eq_ignore_ascii_case(host)
        }
    }
}

/// A person using the UI, as the audit trail names them (`user:<email>`).
fn person(tenant: TenantId, email: &str, role: Option<Role>, ctx: &Ctx) -> Actor {
    Actor {
        tenant_id: tenant,
        name: format!("user:{email}"),
        role: role.map(|r| r.as_str().to_string()),
        channel: Channel::Ui,
        source: None,
        client_ip: ctx.client_ip.clone(),
        http_request_id: Some(ctx.request_id.clone()),
        detail: json!({}),
    }
}

/// A signed-in person, checked on every request: a live session of an
/// enabled user in the session's tenant.
#[derive(Debug, Clone)]
pub(crate) struct WebUser {
    pub user: User,
    pub session: WebSession,
    pub tenant_name: String,
    pub ctx: Ctx,
}

impl WebUser {
    pub fn tenant(&self) -> TenantId {
        self.user.tenant_id
    }

    pub fn can(&self, scope: Scope) -> bool {
        role_can(self.user.role, scope)
    }

    /// The person as the audit trail names them.
    pub fn actor(&self) -> Actor {
        person(
            self.user.tenant_id,
            &self.user.email,
            Some(self.user.role),
            &self.ctx,
        )
    }

    pub fn seed(&self) -> LayoutSeed {
        LayoutSeed {
            email: self.user.email.clone(),
            role: self.user.role,
            tenant: self.tenant_name.clone(),
            csrf: self.session.csrf_token.clone(),
        }
    }

    pub fn layout(&self, title: &str, active: &'static str) -> Layout {
        self.seed().layout(title, active)
    }

    /// The policy's view of this person.
    pub fn policy_caller(&self) -> Caller {
        Caller {
            tenant_id: self.user.tenant_id,
            grant: format!("user:{}", self.user.email),
            person: Some(self.user.email.clone()),
            role: Some(self.user.role),
            scopes: Vec::new(),
            channel: Channel::Ui,
        }
    }

    /// [`WebUser::require`] the scope `action` needs, then ask the server's
    /// policy, as the REST handlers do for the same action; a refusal is
    /// audited as `audit_action`. (Revocations and previews are decided by
    /// their use cases, which consult the policy themselves.)
    pub async fn require_policy(
        &self,
        st: &AppState,
        action: Action,
        audit_action: &str,
        target: Option<&str>,
    ) -> Result<(), UiError> {
        self.require(st, action.required_scope(), audit_action, target)
            .await?;
        match crate::api::policy::require(st, self.policy_caller(), action).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.actor().deny(st, audit_action, target, &e).await;
                Err(UiError::from(e).within(self))
            }
        }
    }

    /// Refuse (and audit the refusal of) `action` unless the person's role
    /// holds `scope`. The page hides what a role may not do; this is what
    /// actually stops it.
    pub async fn require(
        &self,
        st: &AppState,
        scope: Scope,
        action: &str,
        target: Option<&str>,
    ) -> Result<(), UiError> {
        if self.can(scope) {
            return Ok(());
        }
        let what = match scope {
            Scope::SessionsRevoke => "run revocations",
            Scope::SessionsRead => "read requests",
            Scope::Admin => "change the configuration",
        };
        let e = ApiError::forbidden(format!(
            "your role ({}) may not {what}; ask an owner or admin",
            self.user.role
        ));
        self.actor().deny(st, action, target, &e).await;
        Err(UiError::forbidden(e.message).within(self))
    }
}

/// Where an unauthenticated request is sent: the sign-in page (coming back
/// afterwards), or for htmx, a header telling it to go there.
fn sign_in_first(parts: &Parts) -> Response {
    if super::is_htmx(&parts.headers) {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert("hx-redirect", HeaderValue::from_static("/ui/login"));
        return r;
    }
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| parts.method == axum::http::Method::GET && safe_next(p))
        .map(|p| format!("?next={}", urlencode(p)))
        .unwrap_or_default();
    Redirect::to(&format!("/ui/login{next}")).into_response()
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only our own pages are places to come back to after signing in.
fn safe_next(p: &str) -> bool {
    p.starts_with("/ui/")
        && !p.starts_with("/ui/login")
        && !p.contains("//")
        && !p.contains('\\')
        && p.chars().all(|c| c.is_ascii_graphic())
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let ctx = Ctx::from_request_parts(parts, st)
            .await
            .map_err(|e| UiError::from(e).into_response())?;
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(sign_in_first(parts));
        };
        let digest = key_digest(&id);
        let err = |e: sever_core::StoreError| UiError::from(e).into_response();
        let Some(session) = st.db().get_web_session(&digest).await.map_err(err)? else {
            return Err(sign_in_first(parts));
        };
        let now = st.clock().now();
        if !session.is_live(now, IDLE_TIMEOUT) {
            return Err(sign_in_first(parts));
        }
        let user = match st.db().get_user(session.user_id).await.map_err(err)? {
            Some(u) if !u.disabled && u.tenant_id == session.tenant_id => u,
            _ => return Err(sign_in_first(parts)),
        };
        if now - session.last_seen_at >= TOUCH_EVERY {
            if let Err(e) = st.db().touch_web_session(&digest, now).await {
                tracing::warn!(error = %e, "could not record a web session's activity");
            }
        }
        let tenant_name = st
            .db()
            .get_tenant(user.tenant_id)
            .await
            .map_err(err)?
            .map(|t| t.name)
            .unwrap_or_default();
        Ok(WebUser {
            user,
            session,
            tenant_name,
            ctx,
        })
    }
}

/// The fields of a posted form, in order; a name may repeat (checkboxes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Fields(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; "" when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_string()
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A ticked checkbox.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty() && v != "off")
    }
}

/// A state-changing request of a signed-in person that passed the origin
/// and CSRF checks, with its form.
pub(crate) struct Posted {
    pub user: WebUser,
    pub form: Fields,
    pub headers: HeaderMap,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = WebUser::from_request_parts(&mut parts, st).await?;
        if !same_origin(&parts.headers) {
            let e = ApiError::forbidden("cross-site request refused");
            user.actor().deny(st, "ui.origin_check", None, &e).await;
            return Err(UiError::forbidden(
                "This form was not sent from a Sever page, so it was refused.",
            )
            .within(&user)
            .into_response());
        }
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), st)
            .await
            .map_err(|e| {
                UiError::new(e.status(), "The form could not be read (is it too large?).")
                    .within(&user)
                    .into_response()
            })?;
        let form = Fields::parse(&bytes);
        let token = form.get("_csrf").unwrap_or("");
        if !same_secret(token, &user.session.csrf_token) {
            let e = ApiError::forbidden("missing or wrong CSRF token");
            user.actor().deny(st, "ui.csrf_check", None, &e).await;
            return Err(UiError::forbidden(
                "This form has expired. Reload the page and try again.",
            )
            .within(&user)
            .into_response());
        }
        Ok(Posted {
            user,
            form,
            headers,
        })
    }
}

// ------------------------------------------------------------ sign-in

#[derive(askama::Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    assets: &'static str,
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

fn login_form(
    status: StatusCode,
    secure: bool,
    email: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let csrf = random_token("");
    let page = LoginPage {
        assets: super::assets::version(),
        csrf: csrf.clone(),
        email,
        next,
        error,
        notice,
    };
    let mut r = render(status, &page);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &csrf, "/ui/login", 3600, secure),
    );
    r
}

pub(crate) async fn login_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = q.next.filter(|n| safe_next(n)).unwrap_or_default();
    let notice = match q.signed_out.as_deref() {
        Some("everywhere") => Some("You were signed out on every device.".to_string()),
        Some(_) => Some("You are signed out.".to_string()),
        None => None,
    };
    login_form(
        StatusCode::OK,
        is_https(&headers, st.config().trust_proxy),
        String::new(),
        next,
        None,
        notice,
    )
}

/// An Argon2id hash of a random password, checked against when the email
/// is unknown so that the answer takes as long as for a known one.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| crate::auth::hash_password(&random_token("")).unwrap_or_default());

async fn verify_off_thread(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

fn minutes_left(until: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> i64 {
    ((until - now).num_seconds() + 59) / 60
}

/// Why a sign-in was refused: the status and a message for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignInRefused {
    pub status: StatusCode,
    pub message: String,
}

/// Check a person's email and password, with the lockout: refuse while the
/// email is locked, count each failure (locking it at the limit), forget
/// the failures on success, and audit every attempt. Every tenant may have
/// a user with the email; the first whose password matches signs in.
/// Usable by any page where people sign in.
pub(crate) async fn authenticate(
    st: &AppState,
    email: &str,
    password: &str,
    ctx: &Ctx,
) -> Result<User, SignInRefused> {
    let refused = |status: StatusCode, message: String| SignInRefused { status, message };
    let internal = |e: sever_core::StoreError| {
        let e = ApiError::from(e);
        refused(e.status, e.message)
    };
    let email = email.trim();
    if email.is_empty() || password.is_empty() {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your email and password.".into(),
        ));
    }
    let key = email.to_lowercase();
    let now = st.clock().now();
    let mut candidates = Vec::new();
    for t in st.db().list_tenants().await.map_err(internal)? {
        if let Some(u) = st.db().find_user(t.id, email).await.map_err(internal)? {
            candidates.push(u);
        }
    }
    // Refusals are recorded in the tenant of a user with this email, if any.
    let audit_tenant = candidates
        .first()
        .map_or(TenantId::DEFAULT, |u| u.tenant_id);

    let throttle = st.db().get_login_throttle(&key).await.map_err(internal)?;
    if let Some(until) = throttle
        .filter(|t| t.is_locked(now))
        .and_then(|t| t.locked_until)
    {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            "sign-in locked after repeated failures",
        );
        person(audit_tenant, email, None, ctx)
            .deny(st, "ui.sign_in", Some(&key), &e)
            .await;
        return Err(refused(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins for this email. Try again in {} minutes.",
                minutes_left(until, now)
            ),
        ));
    }

    if candidates.is_empty() {
        verify_off_thread(password.to_string(), DUMMY_HASH.clone()).await;
    }
    let mut matched = None;
    for u in candidates {
        if verify_off_thread(password.to_string(), u.password_hash.clone()).await {
            matched = Some(u);
            break;
        }
    }
    let Some(user) = matched.filter(|u| !u.disabled) else {
        let policy = FailurePolicy {
            at: now,
            window_start: now - FAILURE_WINDOW,
            max: MAX_FAILURES,
            lock_until: now + LOCKOUT,
        };
        let locked = match st.db().record_login_failure(&key, &policy).await {
            Ok(t) => t.is_locked(now),
            Err(e) => {
                tracing::error!(error = %e, "could not count a failed sign-in");
                false
            }
        };
        let e = ApiError::unauthorized(if locked {
            "wrong email or password; the email is now locked for 15 minutes"
        } else {
            "wrong email or password"
        });
        person(audit_tenant, email, None, ctx)
            .deny(st, "ui.sign_in", Some(&key), &e)
            .await;
        let message = if locked {
            format!(
                "Email or password is incorrect. After {MAX_FAILURES} failed attempts, sign-in \
                 for this email is locked for {} minutes.",
                LOCKOUT.num_minutes()
            )
        } else {
            "Email or password is incorrect.".to_string()
        };
        return Err(refused(StatusCode::UNAUTHORIZED, message));
    };
    if let Err(e) = st.db().clear_login_failures(&key).await {
        tracing::warn!(error = %e, "could not clear failed sign-ins");
    }
    Ok(user)
}

pub(crate) async fn login(State(st): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let secure = is_https(&parts.headers, st.config().trust_proxy);
    let ctx = match Ctx::from_request_parts(&mut parts, &st).await {
        Ok(c) => c,
        Err(e) => return UiError::from(e).into_response(),
    };
    let signin_cookie = cookie(&parts.headers, SIGNIN_COOKIE);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect::<String>());
    let origin_ok = same_origin(&parts.headers);
    let Ok(bytes) = Bytes::from_request(Request::from_parts(parts, body), &st).await else {
        return UiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
            .into_response();
    };
    let form = Fields::parse(&bytes);
    let email = form.text("email");
    let next = form
        .get("next")
        .filter(|n| safe_next(n))
        .unwrap_or("")
        .to_string();
    let token_ok = signin_cookie
        .as_deref()
        .is_some_and(|c| same_secret(c, form.get("_csrf").unwrap_or("")));
    let fail = |status: StatusCode, message: String| {
        login_form(
            status,
            secure,
            email.clone(),
            next.clone(),
            Some(message),
            None,
        )
    };
    if !origin_ok || !token_ok {
        return fail(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or was not sent from this page. Try again.".into(),
        );
    }
    let user = match authenticate(&st, &email, form.get("password").unwrap_or(""), &ctx).await {
        Ok(u) => u,
        Err(r) => return fail(r.status, r.message),
    };
    let now = st.clock().now();
    if let Err(e) = st.db().purge_web_sessions(now).await {
        tracing::warn!(error = %e, "could not purge expired web sessions");
    }
    let id = random_token("");
    let session = WebSession {
        digest: key_digest(&id),
        user_id: user.id,
        tenant_id: user.tenant_id,
        csrf_token: random_token(""),
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_TTL,
        client_ip: ctx.client_ip.clone(),
        user_agent,
    };
    let actor = person(user.tenant_id, &user.email, Some(user.role), &ctx);
    let ev = actor
        .event(st.clock().as_ref(), "ui.sign_in", Decision::Allowed)
        .target(Some(&user.email))
        .result("signed in")
        .build();
    if let Err(e) = st.db().create_web_session(&session, &ev).await {
        return UiError::from(e).into_response();
    }
    let to = if next.is_empty() { "/ui/" } else { &next };
    let mut r = Redirect::to(to).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &id,
            "/ui",
            SESSION_TTL.num_seconds(),
            secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, "", "/ui/login", 0, secure),
    );
    r
}

fn signed_out(to: &str, secure: bool) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/ui", 0, secure),
    );
    r
}

pub(crate) async fn logout(State(st): State<AppState>, p: Posted) -> Response {
    let actor = p.user.actor();
    let ev = actor
        .event(st.clock().as_ref(), "ui.sign_out", Decision::Allowed)
        .target(Some(&p.user.user.email))
        .result("signed out")
        .build();
    if let Err(e) = st
        .db()
        .delete_web_session(&p.user.session.digest, &ev)
        .await
    {
        return UiError::from(e).within(&p.user).into_response();
    }
    signed_out(
        "/ui/login?signed_out=here",
        is_https(&p.headers, st.config().trust_proxy),
    )
}

pub(crate) async fn logout_everywhere(State(st): State<AppState>, p: Posted) -> Response {
    let actor = p.user.actor();
    let ev = actor
        .event(
            st.clock().as_ref(),
            "ui.sign_out_everywhere",
            Decision::Allowed,
        )
        .target(Some(&p.user.user.email))
        .result("every session ended")
        .build();
    if let Err(e) = st.db().delete_user_web_sessions(p.user.user.id, &ev).await {
        return UiError::from(e).within(&p.user).into_response();
    }
    signed_out(
        "/ui/login?signed_out=everywhere",
        is_https(&p.headers, st.config().trust_proxy),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookies_are_found_by_exact_name_among_several_headers() {
        let h = headers(&[
            ("cookie", "a=1; sever_session_x=no"),
            ("cookie", "sever_session=abc ; b=2"),
        ]);
        assert_eq!(cookie(&h, "sever_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn only_requests_from_our_own_pages_pass_the_origin_check() {
        let host = ("host", "127.0.0.1:8080");
        assert!(
            same_origin(&headers(&[host])),
            "no browser headers: not a page"
        );
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080.evil")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn only_local_ui_paths_are_places_to_return_to() {
        assert!(safe_next("/ui/requests?status=failed"));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/ui//evil.example",
            "/api/v1/settings",
            "/ui/login",
            "/ui/\\evil",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_when_asked() {
        let c = set_cookie(SESSION_COOKIE, "v", "/ui", 60, false);
        assert_eq!(
            c.to_str().unwrap(),
            "sever_session=v; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let c = set_cookie(SESSION_COOKIE, "v", "/ui", 60, true);
        assert!(c.to_str().unwrap().ends_with("; Secure"));
        assert!(is_https(&headers(&[("x-forwarded-proto", "https")]), true));
        assert!(!is_https(
            &headers(&[("x-forwarded-proto", "https")]),
            false
        ));
    }

    #[test]
    fn repeated_form_fields_are_all_kept() {
        let f = Fields::parse(b"targets=okta&targets=entra&username=+a%40b.c+&x=on");
        assert_eq!(f.all("targets"), ["okta", "entra"]);
        assert_eq!(f.text("username"), "a@b.c");
        assert!(f.checked("x"));
        assert!(!f.checked("y"));
    }
}
