//! The admin web UI under `/ui`: server-rendered pages (askama templates in
//! `templates/ui/`) with a little htmx for live parts, for the people who
//! answer incidents (Responder, Requests, Dashboard) and those who wire Sever
//! up (Integrations, Policy, API keys, Users, Audit).
//!
//! The UI is one more entry point and owns no business rules: every action
//! calls the function the REST API calls ([`crate::usecases`],
//! [`crate::admin`], the connector functions of [`crate::api::connectors`]),
//! so switches, validation, policy and audit are the same whichever door a
//! person uses. What is the UI's own is how people prove who they are:
//! sign-in with a local user, a session cookie, CSRF tokens, an origin
//! check and sign-in lockout ([`session`]), and strict response headers
//! ([`security_headers`]): no script or style but our own files, no framing.
//!
//! Roles decide what a person sees and may do, and the server decides it on
//! every request, not the page: a viewer who crafts a POST by hand is
//! refused and the refusal is audited.

mod assets;
mod bulk;
mod chart;
mod connectors;
mod dashboard;
mod management;
mod pages;
mod policy;
mod requests;
mod responder;
mod session;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use sever_core::admin::{Role, Scope};

use crate::error::{ApiError, HttpRequestId};
use crate::AppState;

pub(crate) use session::{Posted, WebUser};

/// The Content-Security-Policy of every UI answer: our own scripts and
/// styles only (no inline ones, so injected markup cannot run or restyle),
/// images from ourselves or data: URLs, no framing, forms only to ourselves.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; \
    base-uri 'none'; object-src 'none'";

/// The web UI's routes; merged beside the API by [`crate::serve`].
pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit;
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::home))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/logout-everywhere", post(session::logout_everywhere))
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui/responder", get(responder::page))
        .route("/ui/responder/preview", post(responder::preview))
        .route("/ui/responder/revoke", post(responder::revoke))
        .route("/ui/requests", get(requests::list))
        .route("/ui/requests/{id}", get(requests::detail))
        .route("/ui/requests/{id}/progress", get(requests::progress))
        .route("/ui/dashboard", get(dashboard::page))
        .route("/ui/bulk", get(bulk::page).post(bulk::start))
        .route("/ui/bulk/rows", get(bulk::table))
        .route("/ui/bulk/{id}/decision", post(bulk::decide))
        .route("/ui/bulk/{id}/results.csv", get(bulk::results_csv))
        .route("/ui/approvals", get(policy::approvals_page))
        .route("/ui/approvals/{id}", post(policy::decide))
        .route("/ui/integrations", get(connectors::page))
        .route("/ui/integrations/switches", post(connectors::switches))
        .route("/ui/integrations/connectors", post(connectors::create))
        .route("/ui/integrations/connectors/{name}", post(connectors::save))
        .route(
            "/ui/integrations/connectors/{name}/test",
            post(connectors::test),
        )
        .route(
            "/ui/integrations/connectors/{name}/delete",
            post(connectors::delete),
        )
        .route(
            "/ui/integrations/mcp-clients/{id}/{action}",
            post(connectors::mcp_client),
        )
        .route(
            "/ui/policy",
            get(policy::policy_page).post(policy::save_policy),
        )
        .route(
            "/ui/api-keys",
            get(management::keys).post(management::create_key),
        )
        .route("/ui/api-keys/{id}/revoke", post(management::revoke_key))
        .route(
            "/ui/users",
            get(management::users).post(management::create_user),
        )
        .route("/ui/users/{id}", post(management::update_user))
        .route("/ui/audit", get(management::audit))
        .route("/ui/audit/export", get(management::audit_export))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers on every UI answer: the CSP, no framing, no referrer, no MIME
/// sniffing, and no caching of pages (they show who was revoked). Also
/// gives each request an id for the audit trail, as the API's middleware does.
pub async fn security_headers(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    req.extensions_mut().insert(HttpRequestId(id.clone()));
    let is_static = req.uri().path().starts_with("/ui/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    resp
}

/// One entry of the main navigation.
pub(crate) struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every signed-in page shares: who is signed in, what they may do,
/// the CSRF token its forms carry, and where in the navigation it is.
pub(crate) struct Layout {
    pub title: String,
    pub active: &'static str,
    pub email: String,
    pub role: Role,
    pub tenant: String,
    pub csrf: String,
    pub can_revoke: bool,
    pub is_admin: bool,
    pub assets: &'static str,
}

impl Layout {
    pub fn nav(&self) -> Vec<NavItem> {
        let mut items = vec![
            ("/ui/responder", "Responder", "responder"),
            ("/ui/dashboard", "Dashboard", "dashboard"),
            ("/ui/requests", "Requests", "requests"),
            ("/ui/bulk", "Bulk", "bulk"),
            ("/ui/approvals", "Approvals", "approvals"),
        ];
        if self.is_admin {
            items.extend([
                ("/ui/integrations", "Integrations", "integrations"),
                ("/ui/policy", "Policy", "policy"),
                ("/ui/api-keys", "API keys", "keys"),
                ("/ui/users", "Users", "users"),
                ("/ui/audit", "Audit", "audit"),
            ]);
        }
        items
            .into_iter()
            .map(|(href, label, key)| NavItem {
                href,
                label,
                current: key == self.active,
            })
            .collect()
    }
}

/// What a role may do, as the pages ask it.
pub(crate) fn role_can(role: Role, scope: Scope) -> bool {
    role.scopes().contains(&scope)
}

/// A page or fragment rendered to HTML, or a 500 when the template fails.
pub(crate) fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a UI template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>The page could not be shown; the server log says why.</p>".to_string()),
            )
                .into_response()
        }
    }
}

/// True for requests htmx made (they want a fragment, not a page).
pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
}

#[derive(Template)]
#[template(path = "ui/error_bare.html")]
struct BareErrorPage {
    assets: &'static str,
    heading: String,
    message: String,
}

/// A refused or failed UI request, shown as a page (within the signed-in
/// layout when there is one).
#[derive(Debug)]
pub(crate) struct UiError {
    pub status: StatusCode,
    pub message: String,
    pub layout: Option<Box<LayoutSeed>>,
}

/// What [`UiError`] needs to draw the navigation around its message.
#[derive(Debug, Clone)]
pub(crate) struct LayoutSeed {
    pub email: String,
    pub role: Role,
    pub tenant: String,
    pub csrf: String,
}

impl LayoutSeed {
    pub fn layout(&self, title: &str, active: &'static str) -> Layout {
        Layout {
            title: title.to_string(),
            active,
            email: self.email.clone(),
            role: self.role,
            tenant: self.tenant.clone(),
            csrf: self.csrf.clone(),
            can_revoke: role_can(self.role, Scope::SessionsRevoke),
            is_admin: role_can(self.role, Scope::Admin),
            assets: assets::version(),
        }
    }
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            layout: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Draw the error inside `user`'s layout.
    pub fn within(mut self, user: &WebUser) -> Self {
        self.layout = Some(Box::new(user.seed()));
        self
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        // Internal errors were logged where they were made; the message is generic.
        Self::new(e.status, e.message)
    }
}

impl From<sever_core::StoreError> for UiError {
    fn from(e: sever_core::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

fn heading(status: StatusCode) -> &'static str {
    match status.as_u16() {
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        413 => "Too large",
        422 => "Check the input",
        429 => "Too many attempts",
        s if s >= 500 => "Something went wrong",
        _ => "Request refused",
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let heading = heading(self.status).to_string();
        match self.layout {
            Some(seed) => render(
                self.status,
                &ErrorPage {
                    layout: seed.layout(&heading, ""),
                    heading,
                    message: self.message,
                },
            ),
            None => render(
                self.status,
                &BareErrorPage {
                    assets: assets::version(),
                    heading,
                    message: self.message,
                },
            ),
        }
    }
}

/// Local dates and times are the server's UTC: one clock for everyone in an
/// incident channel.
pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
