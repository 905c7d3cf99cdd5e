//! The Responder: type a person, see where they exist (Preview, a lookup
//! that changes nothing), press Revoke, and watch each app report back.
//!
//! Both actions call the shared use cases the REST API and MCP call
//! ([`crate::usecases::preview`], [`crate::usecases::revoke_sessions`]).
//! A revocation is written before any provider is called and run apart
//! from the page, so the answer is immediate and the page follows its
//! progress; every form carries an idempotency key made when the page was
//! drawn, so a double click or a resubmitted form does not revoke twice.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use sever_core::admin::Scope;
use sever_core::Channel;

use super::requests::{outcome_badge, provider_name, ResultPanel};
use super::session::Fields;
use super::{is_htmx, render, Layout, Posted, UiError, WebUser};
use crate::api::revocations::{audited, Attempt};
use crate::auth::random_token;
use crate::error::ApiError;
use crate::idempotency::request_digest;
use crate::usecases::{self, load_request, RevokeCommand};
use crate::AppState;

pub(crate) struct ConnectorChoice {
    pub name: String,
    pub provider: &'static str,
    pub enabled: bool,
    pub checked: bool,
}

pub(crate) struct PreviewRow {
    pub instance: String,
    pub provider: &'static str,
    pub result: String,
    pub badge: &'static str,
    pub display: Option<String>,
    pub subject_id: Option<String>,
    pub message: Option<String>,
    pub hint: Option<&'static str>,
}

pub(crate) struct PreviewPanel {
    pub username: String,
    pub rows: Vec<PreviewRow>,
    pub found: usize,
    pub error: Option<String>,
}

/// What the form holds, to draw it again as it was sent.
#[derive(Default)]
pub(crate) struct FormState {
    pub username: String,
    pub reason: String,
    /// `None`: nothing was sent, tick every enabled connector.
    pub targets: Option<Vec<String>>,
}

impl FormState {
    fn from_fields(f: &Fields) -> Self {
        FormState {
            username: f.text("username"),
            reason: f.text("reason"),
            targets: Some(f.all("targets")),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/responder.html")]
struct ResponderPage {
    layout: Layout,
    connectors: Vec<ConnectorChoice>,
    username: String,
    reason: String,
    idem: String,
    revocation_enabled: bool,
    error: Option<String>,
    preview: Option<PreviewPanel>,
    result: Option<ResultPanel>,
}

#[derive(Template)]
#[template(path = "ui/preview.html")]
struct PreviewFragment {
    preview: PreviewPanel,
}

#[derive(Template)]
#[template(path = "ui/responder_confirm.html")]
struct ConfirmPage {
    layout: Layout,
    username: String,
    reason: String,
    targets: Vec<String>,
    idem: String,
}

async fn draw(
    st: &AppState,
    user: &WebUser,
    status: StatusCode,
    form: FormState,
    error: Option<String>,
    preview: Option<PreviewPanel>,
    result: Option<ResultPanel>,
) -> Result<Response, UiError> {
    let within = |e: sever_core::StoreError| UiError::from(e).within(user);
    let stored = st
        .db()
        .list_connectors(user.tenant())
        .await
        .map_err(within)?;
    let connectors = stored
        .iter()
        .map(|c| ConnectorChoice {
            name: c.name.to_string(),
            provider: provider_name(c.provider),
            enabled: c.enabled,
            checked: c.enabled
                && form
                    .targets
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|n| n == c.name.as_str())),
        })
        .collect();
    let settings = st.db().get_settings(user.tenant()).await.map_err(within)?;
    Ok(render(
        status,
        &ResponderPage {
            layout: user.layout("Responder", "responder"),
            connectors,
            username: form.username,
            reason: form.reason,
            idem: random_token(""),
            revocation_enabled: settings.revocation_enabled,
            error,
            preview,
            result,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    request: Option<String>,
    user: Option<String>,
}

/// The Responder, with the result of `?request=<id>` when given.
pub(crate) async fn page(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, UiError> {
    let result = match q.request.as_deref().filter(|r| !r.is_empty()) {
        Some(id) => Some(ResultPanel::of(
            &load_request(&st, user.tenant(), id)
                .await
                .map_err(|e| UiError::from(e).within(&user))?,
        )),
        None => None,
    };
    let form = FormState {
        username: q.user.unwrap_or_default(),
        ..FormState::default()
    };
    draw(&st, &user, StatusCode::OK, form, None, None, result).await
}

fn preview_panel(username: &str, r: Result<usecases::PreviewView, ApiError>) -> PreviewPanel {
    match r {
        Ok(v) => PreviewPanel {
            username: v.username,
            found: v.results.iter().filter(|r| r.found).count(),
            rows: v
                .results
                .into_iter()
                .map(|r| PreviewRow {
                    badge: outcome_badge(&r.result),
                    hint: r.error_class.map(super::requests::hint),
                    instance: r.instance,
                    provider: provider_name(r.provider),
                    result: r.result,
                    display: r.display,
                    subject_id: r.subject_id,
                    message: r.message,
                })
                .collect(),
            error: None,
        },
        Err(e) => PreviewPanel {
            username: username.to_string(),
            rows: Vec::new(),
            found: 0,
            error: Some(friendly(&e)),
        },
    }
}

/// An API error as a sentence for the Responder.
fn friendly(e: &ApiError) -> String {
    if e.message
        .starts_with("integration_targets: must name at least one")
    {
        return "Tick at least one app.".into();
    }
    if e.code == "revocation_disabled" {
        return "Session revocation is disabled for this tenant. An owner or admin can turn it \
                on under Integrations."
            .into();
    }
    e.message.clone()
}

/// Look the person up in the ticked apps; nothing changes. Answers the
/// preview panel alone to htmx, the whole page otherwise.
pub(crate) async fn preview(State(st): State<AppState>, p: Posted) -> Result<Response, UiError> {
    let form = FormState::from_fields(&p.form);
    p.user
        .require(&st, Scope::SessionsRead, "preview", Some(&form.username))
        .await?;
    let actor = p.user.actor();
    let mut attempt = Attempt::default();
    let targets = form.targets.clone().unwrap_or_default();
    let r = usecases::preview(&st, &actor, &form.username, Some(&targets), &mut attempt).await;
    let r = audited(&st, &actor, "preview", attempt, r).await;
    let panel = preview_panel(&form.username, r);
    if is_htmx(&p.headers) {
        // htmx swaps only successful answers; the panel itself shows errors.
        return Ok(render(StatusCode::OK, &PreviewFragment { preview: panel }));
    }
    let status = if panel.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    draw(&st, &p.user, status, form, None, Some(panel), None).await
}

/// Revoke every session of the person in the ticked apps, then show the
/// Responder following the request. Without the page's script the person
/// confirms on a page of its own first.
pub(crate) async fn revoke(State(st): State<AppState>, p: Posted) -> Result<Response, UiError> {
    let form = FormState::from_fields(&p.form);
    p.user
        .require(
            &st,
            Scope::SessionsRevoke,
            "revoke_sessions",
            Some(&form.username),
        )
        .await?;
    let targets = form.targets.clone().unwrap_or_default();
    if form.username.is_empty() || targets.is_empty() {
        let error = if form.username.is_empty() {
            "Enter the person's email, UPN or login."
        } else {
            "Tick at least one app."
        };
        return draw(
            &st,
            &p.user,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            Some(error.into()),
            None,
            None,
        )
        .await;
    }
    let idem = p.form.text("_idem");
    if p.form.get("confirm") != Some("yes") {
        return Ok(render(
            StatusCode::OK,
            &ConfirmPage {
                layout: p.user.layout("Confirm revocation", "responder"),
                username: form.username,
                reason: form.reason,
                targets,
                idem,
            },
        ));
    }
    // The same page's form sent twice is one revocation.
    let idempotency = (!idem.is_empty()).then(|| {
        let what = json!({"username": form.username, "reason": form.reason, "targets": targets});
        (
            format!("ui:{idem}"),
            request_digest("POST", "/ui/responder/revoke", what.to_string().as_bytes()),
        )
    });
    let actor = p.user.actor();
    let cmd = RevokeCommand {
        tenant: p.user.tenant(),
        username: form.username.clone(),
        reason: Some(form.reason.clone()),
        targets: Some(targets),
        source: None,
        channel: Channel::Ui,
        requested_by: actor.name.clone(),
        client_ip: p.user.ctx.client_ip.clone(),
        idempotency,
        wait: std::time::Duration::ZERO,
    };
    let mut attempt = Attempt::default();
    let r = usecases::revoke_sessions(&st, cmd, &mut attempt).await;
    match audited(&st, &actor, "revoke_sessions", attempt, r).await {
        Ok(done) => {
            Ok(Redirect::to(&format!("/ui/responder?request={}", done.request.id)).into_response())
        }
        Err(e) => {
            let status = e.status;
            draw(&st, &p.user, status, form, Some(friendly(&e)), None, None).await
        }
    }
}
