//! Approvals (requests the policy held for a second person) and the Policy
//! editor. Both go through the policy engine's own functions, as the REST
//! handlers of [`crate::api::policy`] do: `policy::authorize` guards each
//! action (`approve_request`, `manage_policy`), `approvals::decide` settles
//! an approval (refusing the requester's own), `policy::store_policy`
//! validates and stores a document.
//!
//! The policy in force is the server's ([`AppState::policy`]): the policy
//! file, else the tenant's stored policy, else the built-in default.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sever_core::approvals::{self, ApprovalQuery, ApprovalState, Resolution};
use sever_core::policy::{self, Action, PolicyChangeError, PolicyOrigin};
use sever_core::RequestId;

use super::requests::provider_name;
use super::{render, when, Layout, Posted, UiError, WebUser};
use crate::api::policy::approval_error;
use crate::api::revocations::{audited, Attempt};
use crate::audit::Decision;
use crate::error::ApiError;
use crate::AppState;

/// Why the policy refuses `action` to `user` now, if it does.
async fn refused(st: &AppState, user: &WebUser, action: Action) -> Option<String> {
    crate::api::policy::require(st, user.policy_caller(), action)
        .await
        .err()
        .map(|e| e.message)
}

// ------------------------------------------------------------ approvals

pub(crate) struct ApprovalRow {
    pub id: String,
    pub username: String,
    pub asked_by: String,
    pub reason: String,
    pub channel: &'static str,
    pub reasons: Vec<String>,
    pub touches: Vec<String>,
    pub created: String,
    pub expires: String,
    pub state: &'static str,
    pub decided: Option<String>,
    pub own: bool,
}

#[derive(Template)]
#[template(path = "ui/approvals.html")]
struct ApprovalsPage {
    layout: Layout,
    rows: Vec<ApprovalRow>,
    can_decide: bool,
    why_not: Option<String>,
    show_all: bool,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApprovalsQuery {
    state: Option<String>,
    done: Option<String>,
}

async fn draw_approvals(
    st: &AppState,
    user: &WebUser,
    status: StatusCode,
    show_all: bool,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, UiError> {
    let within = |e: sever_core::StoreError| UiError::from(e).within(user);
    approvals::expire_due(st.db().as_ref(), st.clock().now())
        .await
        .map_err(within)?;
    let list = st
        .db()
        .list_approvals(&ApprovalQuery {
            tenant_id: Some(user.tenant()),
            state: (!show_all).then_some(ApprovalState::Pending),
            limit: 200,
        })
        .await
        .map_err(within)?;
    let mut rows = Vec::new();
    for a in list {
        let touches = match st.db().get_request(a.request_id).await.map_err(within)? {
            Some(req) => req
                .results
                .iter()
                .map(|c| format!("{} ({})", c.instance, provider_name(c.provider)))
                .collect(),
            None => Vec::new(),
        };
        let own = a
            .requester_person
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(&user.user.email))
            || a.requested_by == format!("user:{}", user.user.email);
        rows.push(ApprovalRow {
            id: a.request_id.to_string(),
            username: a.username.clone(),
            asked_by: match &a.requester_person {
                Some(p) if !a.requested_by.ends_with(p.as_str()) => {
                    format!("{} ({p})", a.requested_by)
                }
                _ => a.requested_by.clone(),
            },
            reason: a.request_reason.clone(),
            channel: a.channel.as_str(),
            reasons: a.reasons.clone(),
            touches,
            created: when(a.created_at),
            expires: when(a.expires_at),
            state: a.state.as_str(),
            decided: a.decided_by.as_ref().map(|by| {
                format!(
                    "{} by {by}{}",
                    a.decided_at.map(when).unwrap_or_default(),
                    a.decision_reason
                        .as_deref()
                        .map(|r| format!(": “{r}”"))
                        .unwrap_or_default()
                )
            }),
            own,
        });
    }
    let why_not = refused(st, user, Action::ApproveRequest).await;
    Ok(render(
        status,
        &ApprovalsPage {
            layout: user.layout("Approvals", "approvals"),
            can_decide: why_not.is_none(),
            why_not,
            rows,
            show_all,
            notice,
            error,
        },
    ))
}

pub(crate) async fn approvals_page(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<ApprovalsQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("approved") => Some("Approved: the request is queued and runs now.".to_string()),
        Some("denied") => Some("Denied: the request will not run.".to_string()),
        _ => None,
    };
    draw_approvals(
        &st,
        &user,
        StatusCode::OK,
        q.state.as_deref() == Some("all"),
        notice,
        None,
    )
    .await
}

/// Approve or deny a held request, with a reason. The policy decides who
/// may, and the requester never approves their own.
pub(crate) async fn decide(
    State(st): State<AppState>,
    Path(id): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    let resolution = match p.form.get("decision") {
        Some("approve") => Resolution::Approve,
        Some("deny") => Resolution::Deny,
        _ => {
            return Err(UiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "decision: approve or deny",
            )
            .within(&p.user))
        }
    };
    let action = match resolution {
        Resolution::Approve => "approval.approve",
        Resolution::Deny => "approval.deny",
    };
    p.user
        .require_policy(&st, Action::ApproveRequest, action, Some(&id))
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let res = async {
        let rid = RequestId::parse(&id)?;
        let a = approvals::decide(
            st.db().as_ref(),
            rid,
            &p.user.policy_caller(),
            resolution,
            p.form.get("reason").unwrap_or(""),
            p.user.ctx.client_ip.as_deref(),
            st.clock().now(),
        )
        .await
        .map_err(approval_error)?;
        if a.state == ApprovalState::Approved {
            st.wake_worker();
        }
        Ok::<_, ApiError>(a)
    }
    .await;
    match audited(&st, &actor, action, attempt, res).await {
        Ok(a) => Ok(Redirect::to(&format!(
            "/ui/approvals?done={}",
            if a.state == ApprovalState::Approved {
                "approved"
            } else {
                "denied"
            }
        ))
        .into_response()),
        Err(e) => draw_approvals(&st, &p.user, e.status, false, None, Some(e.message)).await,
    }
}

// ------------------------------------------------------------ policy

#[derive(Template)]
#[template(path = "ui/policy.html")]
struct PolicyPage {
    layout: Layout,
    origin: String,
    revision: String,
    document: String,
    editable: bool,
    problems: Vec<String>,
    notice: Option<String>,
}

fn origin_text(o: &PolicyOrigin) -> (String, Option<i64>, bool) {
    match o {
        PolicyOrigin::File { path } => (
            format!(
                "the policy file {path} named in the configuration (change the file to change it)"
            ),
            None,
            false,
        ),
        PolicyOrigin::Stored {
            revision,
            updated_at,
            updated_by,
        } => (
            format!(
                "stored for this tenant, revision {revision}, by {updated_by} on {}",
                when(*updated_at)
            ),
            Some(*revision),
            true,
        ),
        PolicyOrigin::BuiltIn { name } => (
            format!("the built-in {name} (no policy stored for this tenant yet)"),
            None,
            true,
        ),
    }
}

async fn draw_policy(
    st: &AppState,
    user: &WebUser,
    status: StatusCode,
    typed: Option<String>,
    problems: Vec<String>,
    notice: Option<String>,
) -> Result<Response, UiError> {
    let (p, origin) = st
        .policy()
        .for_tenant(st.db().as_ref(), user.tenant())
        .await
        .map_err(|e| UiError::from(e).within(user))?;
    let (origin, revision, editable) = origin_text(&origin);
    Ok(render(
        status,
        &PolicyPage {
            layout: user.layout("Policy", "policy"),
            origin,
            revision: revision.map(|r| r.to_string()).unwrap_or_default(),
            document: typed
                .unwrap_or_else(|| serde_json::to_string_pretty(&p.to_value()).unwrap_or_default()),
            editable,
            problems,
            notice,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PolicyQuery {
    saved: Option<String>,
}

pub(crate) async fn policy_page(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<PolicyQuery>,
) -> Result<Response, UiError> {
    user.require_policy(&st, Action::ManagePolicy, "policy.read", None)
        .await?;
    let notice = q
        .saved
        .map(|_| "Saved: the new policy applies from now on.".to_string());
    draw_policy(&st, &user, StatusCode::OK, None, Vec::new(), notice).await
}

/// Store an edited policy; what is wrong with it is listed in place, one
/// problem per line naming where it is, and nothing changes.
pub(crate) async fn save_policy(
    State(st): State<AppState>,
    p: Posted,
) -> Result<Response, UiError> {
    p.user
        .require_policy(&st, Action::ManagePolicy, "policy.update", None)
        .await?;
    let text = p.form.get("document").unwrap_or("").to_string();
    let expected = p.form.text("revision").parse::<i64>().ok();
    let actor = p.user.actor();
    let mut problems = Vec::new();
    let res = async {
        let document: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            problems.push(format!("(document): not valid JSON: {e}"));
            ApiError::invalid("document", "is not valid JSON")
        })?;
        let audit = actor
            .event(st.clock().as_ref(), "policy.update", Decision::Allowed)
            .target(Some(&p.user.tenant().to_string()))
            .build();
        policy::store_policy(
            st.policy(),
            st.db().as_ref(),
            &p.user.policy_caller(),
            document,
            expected,
            audit,
            st.clock().now(),
        )
        .await
        .map_err(|e| {
            let status = match &e {
                PolicyChangeError::Invalid(inv) => {
                    problems.extend(inv.problems.iter().map(ToString::to_string));
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                PolicyChangeError::LocksOut(_) => StatusCode::UNPROCESSABLE_ENTITY,
                PolicyChangeError::ManagedByFile(_) | PolicyChangeError::Conflict(_) => {
                    StatusCode::CONFLICT
                }
                PolicyChangeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError::new(status, "invalid_policy", e.to_string())
        })
    }
    .await;
    match audited(&st, &actor, "policy.update", Attempt::default(), res).await {
        Ok(_) => Ok(Redirect::to("/ui/policy?saved=1").into_response()),
        Err(e) => {
            if problems.is_empty() {
                problems.push(e.message);
            }
            draw_policy(&st, &p.user, e.status, Some(text), problems, None).await
        }
    }
}
