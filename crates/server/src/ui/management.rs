//! Administration pages for owners and admins: API keys (a new key is shown
//! once), users and roles, and the audit trail (with the chain's
//! verification, filters, and a JSON-lines export). Every change calls the
//! function the CLI and the REST API call ([`crate::admin`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sever_core::admin::{AuditQuery, Role, Scope};
use sever_core::policy::Action;
use uuid::Uuid;

use super::{render, when, Layout, Posted, UiError, WebUser};
use crate::admin::{self, AdminError, UserChange};
use crate::api::revocations::{audited, Attempt};
use crate::error::ApiError;
use crate::AppState;

// ------------------------------------------------------------ API keys

pub(crate) struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created: String,
    pub created_by: String,
    pub last_used: String,
    pub revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/keys.html")]
struct KeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    new_key: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    name: String,
}

async fn draw_keys(
    st: &AppState,
    user: &WebUser,
    status: StatusCode,
    new_key: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    name: String,
) -> Result<Response, UiError> {
    let keys = st
        .db()
        .list_api_keys(user.tenant())
        .await
        .map_err(|e| UiError::from(e).within(user))?
        .into_iter()
        .rev()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            scopes: k
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created: when(k.created_at),
            created_by: k.created_by,
            last_used: k.last_used_at.map_or_else(|| "never".into(), when),
            revoked: k.revoked_at.map(when),
        })
        .collect();
    Ok(render(
        status,
        &KeysPage {
            layout: user.layout("API keys", "keys"),
            keys,
            new_key,
            notice,
            error,
            name,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Notice {
    revoked: Option<String>,
    saved: Option<String>,
}

pub(crate) async fn keys(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<Notice>,
) -> Result<Response, UiError> {
    user.require_policy(&st, Action::ManageKeys, "api_key.list", None)
        .await?;
    let notice = q
        .revoked
        .map(|_| "The key is revoked: calls made with it are refused.".to_string());
    draw_keys(
        &st,
        &user,
        StatusCode::OK,
        None,
        notice,
        None,
        String::new(),
    )
    .await
}

/// Create a key and show it once.
pub(crate) async fn create_key(State(st): State<AppState>, p: Posted) -> Result<Response, UiError> {
    let name = p.form.text("name");
    p.user
        .require_policy(&st, Action::ManageKeys, "api_key.create", Some(&name))
        .await?;
    let mut scopes = Vec::new();
    for raw in p.form.all("scopes") {
        match raw.parse::<Scope>() {
            Ok(s) => scopes.push(s),
            Err(e) => {
                return Err(UiError::from(ApiError::from(e)).within(&p.user));
            }
        }
    }
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = admin::create_api_key(
        st.db().as_ref(),
        st.clock().as_ref(),
        p.user.tenant(),
        &name,
        &scopes,
        &actor,
    )
    .await
    .map_err(ApiError::from);
    match audited(&st, &actor, "api_key.create", attempt, r).await {
        Ok(new) => {
            draw_keys(
                &st,
                &p.user,
                StatusCode::OK,
                Some(new.plaintext),
                Some(format!("Created the key {}.", new.key.name)),
                None,
                String::new(),
            )
            .await
        }
        Err(e) => draw_keys(&st, &p.user, e.status, None, None, Some(e.message), name).await,
    }
}

pub(crate) async fn revoke_key(
    State(st): State<AppState>,
    Path(id): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    p.user
        .require_policy(&st, Action::ManageKeys, "api_key.revoke", Some(&id))
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = async {
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| ApiError::invalid("id", format!("'{id}' is not a key id (a UUID)")))?;
        admin::revoke_api_key(
            st.db().as_ref(),
            st.clock().as_ref(),
            p.user.tenant(),
            id,
            &actor,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    audited(&st, &actor, "api_key.revoke", attempt, r)
        .await
        .map_err(|e| UiError::from(e).within(&p.user))?;
    Ok(Redirect::to("/ui/api-keys?revoked=1").into_response())
}

// ------------------------------------------------------------ users

pub(crate) struct RoleChoice {
    pub value: &'static str,
    pub selected: bool,
}

pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub choices: Vec<RoleChoice>,
    pub disabled: bool,
    pub created: String,
    pub is_me: bool,
}

/// The roles `grantable` offers, `current` selected (and offered even if
/// the person may not grant it, so the form shows the truth).
fn role_choices(grantable: &[Role], current: Role) -> Vec<RoleChoice> {
    Role::ALL
        .into_iter()
        .filter(|r| grantable.contains(r) || *r == current)
        .map(|r| RoleChoice {
            value: r.as_str(),
            selected: r == current,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "ui/users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    new_roles: Vec<RoleChoice>,
    notice: Option<String>,
    error: Option<String>,
    email: String,
    min_password: usize,
}

async fn draw_users(
    st: &AppState,
    user: &WebUser,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    email: String,
) -> Result<Response, UiError> {
    // Only an owner hands out the owner role.
    let grantable: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Owner || user.user.role == Role::Owner)
        .collect();
    let users = st
        .db()
        .list_users(user.tenant())
        .await
        .map_err(|e| UiError::from(e).within(user))?
        .into_iter()
        .map(|u| UserRow {
            is_me: u.id == user.user.id,
            id: u.id.to_string(),
            choices: role_choices(&grantable, u.role),
            email: u.email,
            role: u.role,
            disabled: u.disabled,
            created: when(u.created_at),
        })
        .collect();
    Ok(render(
        status,
        &UsersPage {
            layout: user.layout("Users and roles", "users"),
            users,
            new_roles: role_choices(&grantable, Role::Analyst),
            notice,
            error,
            email,
            min_password: admin::MIN_PASSWORD_LEN,
        },
    ))
}

pub(crate) async fn users(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<Notice>,
) -> Result<Response, UiError> {
    user.require(&st, Scope::Admin, "user.list", None).await?;
    let notice = q.saved.map(|_| "Saved.".to_string());
    draw_users(&st, &user, StatusCode::OK, notice, None, String::new()).await
}

fn role_field(raw: &str) -> Result<Role, ApiError> {
    raw.parse::<Role>().map_err(ApiError::from)
}

pub(crate) async fn create_user(
    State(st): State<AppState>,
    p: Posted,
) -> Result<Response, UiError> {
    let email = p.form.text("email");
    p.user
        .require(&st, Scope::Admin, "user.create", Some(&email))
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(email.clone()),
        accepted: false,
    };
    let r = async {
        let role = role_field(&p.form.text("role"))?;
        if role == Role::Owner && p.user.user.role != Role::Owner {
            return Err(ApiError::forbidden("only an owner may make another owner"));
        }
        admin::create_user(
            st.db().as_ref(),
            st.clock().as_ref(),
            p.user.tenant(),
            &email,
            role,
            p.form.get("password").unwrap_or(""),
            &actor,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    match audited(&st, &actor, "user.create", attempt, r).await {
        Ok(u) => {
            draw_users(
                &st,
                &p.user,
                StatusCode::OK,
                Some(format!("Created {} ({}).", u.email, u.role)),
                None,
                String::new(),
            )
            .await
        }
        Err(e) => draw_users(&st, &p.user, e.status, None, Some(e.message), email).await,
    }
}

/// Change a user's role, or disable or enable them. People cannot change
/// their own role or disable themselves (someone else must), and only an
/// owner may touch the owner role.
pub(crate) async fn update_user(
    State(st): State<AppState>,
    Path(id): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    p.user
        .require(&st, Scope::Admin, "user.update", Some(&id))
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = async {
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| ApiError::invalid("id", format!("'{id}' is not a user id")))?;
        if id == p.user.user.id {
            return Err(ApiError::forbidden(
                "you cannot change your own role or disable yourself; ask another owner or admin",
            ));
        }
        let change = UserChange {
            role: match p.form.get("role") {
                Some(r) if !r.is_empty() => Some(role_field(r)?),
                _ => None,
            },
            disabled: match p.form.get("disabled") {
                Some("yes") => Some(true),
                Some("no") => Some(false),
                _ => None,
            },
        };
        if p.user.user.role != Role::Owner {
            let target = st
                .db()
                .get_user(id)
                .await?
                .filter(|u| u.tenant_id == p.user.tenant());
            let touches_owner =
                change.role == Some(Role::Owner) || target.is_some_and(|u| u.role == Role::Owner);
            if touches_owner {
                return Err(ApiError::forbidden(
                    "only an owner may change an owner or make one",
                ));
            }
        }
        admin::update_user(
            st.db().as_ref(),
            st.clock().as_ref(),
            p.user.tenant(),
            id,
            &change,
            &actor,
        )
        .await
        .map_err(|e: AdminError| ApiError::from(e))
    }
    .await;
    match audited(&st, &actor, "user.update", attempt, r).await {
        Ok(_) => Ok(Redirect::to("/ui/users?saved=1").into_response()),
        Err(e) => draw_users(&st, &p.user, e.status, None, Some(e.message), String::new()).await,
    }
}

// ------------------------------------------------------------ audit

pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub channel: &'static str,
    pub action: String,
    pub target: String,
    pub decision: String,
    pub result: String,
    pub request_id: Option<String>,
    pub client_ip: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage {
    layout: Layout,
    chain: String,
    chain_ok: bool,
    rows: Vec<AuditRow>,
    action: String,
    actor: String,
    decision: String,
    shown: usize,
    matched: usize,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditFilters {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    decision: String,
}

/// Records shown at most, newest first.
const AUDIT_SHOWN: usize = 200;
/// Records read at most to find them.
const AUDIT_SCAN: usize = 50_000;

pub(crate) async fn audit(
    State(st): State<AppState>,
    user: WebUser,
    Query(f): Query<AuditFilters>,
) -> Result<Response, UiError> {
    user.require_policy(&st, Action::ReadAudit, "audit.read", None)
        .await?;
    let within = |e: sever_core::StoreError| UiError::from(e).within(&user);
    let (chain, chain_ok) = match sever_store::verify_audit(st.db().as_ref())
        .await
        .map_err(within)?
    {
        Ok(n) => (
            format!(
                "Intact: all {n} records of the chain verify (every tenant's, linked by hash)."
            ),
            true,
        ),
        Err(b) => (format!("Broken: {b}."), false),
    };
    let action = f.action.trim().to_lowercase();
    let actor = f.actor.trim().to_lowercase();
    let decision = f.decision.trim().to_string();
    // The trail is read oldest first; keep the newest matches.
    let mut kept = std::collections::VecDeque::with_capacity(AUDIT_SHOWN);
    let mut matched = 0;
    let mut after = None;
    let mut scanned = 0;
    loop {
        let page = st
            .db()
            .list_audit(&AuditQuery {
                tenant_id: Some(user.tenant()),
                after_seq: after,
                limit: 1000,
            })
            .await
            .map_err(within)?;
        let n = page.len();
        for r in page {
            after = Some(r.seq);
            scanned += 1;
            let e = &r.event;
            if (!action.is_empty() && !e.action.to_lowercase().contains(&action))
                || (!actor.is_empty() && !e.actor.to_lowercase().contains(&actor))
                || (!decision.is_empty() && e.decision != decision)
            {
                continue;
            }
            matched += 1;
            if kept.len() == AUDIT_SHOWN {
                kept.pop_front();
            }
            kept.push_back(r);
        }
        if n < 1000 || scanned >= AUDIT_SCAN {
            break;
        }
    }
    let rows: Vec<AuditRow> = kept
        .into_iter()
        .rev()
        .map(|r| AuditRow {
            seq: r.seq,
            at: when(r.event.at),
            actor: r.event.actor,
            role: r.event.role.unwrap_or_default(),
            channel: r.event.channel.as_str(),
            action: r.event.action,
            target: r.event.target.unwrap_or_default(),
            decision: r.event.decision,
            result: r.event.result.unwrap_or_default(),
            request_id: r.event.request_id.map(|i| i.to_string()),
            client_ip: r.event.client_ip.unwrap_or_default(),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            layout: user.layout("Audit", "audit"),
            chain,
            chain_ok,
            shown: rows.len(),
            rows,
            action: f.action,
            actor: f.actor,
            decision,
            matched,
        },
    ))
}

/// The tenant's whole trail as JSON lines, as `GET /api/v1/audit?format=jsonl` gives it.
pub(crate) async fn audit_export(
    State(st): State<AppState>,
    user: WebUser,
) -> Result<Response, UiError> {
    user.require_policy(&st, Action::ReadAudit, "audit.export", None)
        .await?;
    let mut r = crate::api::audit_log::stream_jsonl(st.clone(), user.tenant(), None, None);
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"sever-audit.jsonl\""),
    );
    Ok(r)
}
