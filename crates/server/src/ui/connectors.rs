//! Integrations: the tenant's switches (the master switch, the MCP and
//! webhook channels), a panel per connector instance (enable it, enter
//! credentials, set its options, Save and Test), and the MCP clients.
//!
//! Secrets are write-only here as everywhere: a credential field is always
//! drawn blank, says only whether a value is stored, and a blank field on
//! save keeps the stored value (the merge in [`crate::secrets`], which the
//! REST API uses too). The webhook signing secret is shown once, in the
//! answer to the request that turned the channel on, and never again.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use sever_core::admin::StoredConnector;
use sever_core::policy::Action;
use sever_core::ConnectorKey;

use super::requests::provider_name;
use super::session::Fields;
use super::{render, when, Layout, Posted, UiError, WebUser};
use crate::admin::{update_settings, SettingsChange};
use crate::api::connectors::{self as shared, TestView};
use crate::api::revocations::{audited, Attempt};
use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Url,
    Secret,
    SecretArea,
    Check,
}

/// One field of a provider's panel.
pub(crate) struct Spec {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub kind: Kind,
}

const fn spec(name: &'static str, label: &'static str, hint: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        label,
        hint,
        kind,
    }
}

const OKTA: &[Spec] = &[
    spec(
        "base_url",
        "Okta domain",
        "https://your-org.okta.com",
        Kind::Url,
    ),
    spec(
        "api_token",
        "API token",
        "Security → API → Tokens; or use a service app below",
        Kind::Secret,
    ),
    spec(
        "client_id",
        "Service app client id",
        "OAuth service app instead of an API token",
        Kind::Text,
    ),
    spec(
        "key_id",
        "Key id (kid)",
        "Of the service app's public key",
        Kind::Text,
    ),
    spec(
        "private_key",
        "Service app private key (PEM)",
        "",
        Kind::SecretArea,
    ),
    spec(
        "token_url",
        "Token URL",
        "Defaults to the org's /oauth2/v1/token",
        Kind::Url,
    ),
    spec(
        "oauth_tokens",
        "Revoke OAuth/OIDC tokens",
        "oauthTokens=true: also revokes refresh and access tokens",
        Kind::Check,
    ),
    spec(
        "forget_devices",
        "Forget remembered devices",
        "forgetDevices=true: every device must verify factors again",
        Kind::Check,
    ),
];
const ENTRA: &[Spec] = &[
    spec(
        "tenant_id",
        "Directory (tenant) id",
        "Or the tenant's domain",
        Kind::Text,
    ),
    spec(
        "client_id",
        "Application (client) id",
        "App registration with User.Read.All and User.RevokeSessions.All",
        Kind::Text,
    ),
    spec("client_secret", "Client secret", "", Kind::Secret),
    spec(
        "base_url",
        "Graph base URL",
        "Defaults to https://graph.microsoft.com/v1.0",
        Kind::Url,
    ),
    spec(
        "token_url",
        "Token URL",
        "Defaults to login.microsoftonline.com for the tenant",
        Kind::Url,
    ),
];
const GOOGLE: &[Spec] = &[
    spec(
        "admin_subject",
        "Admin to impersonate",
        "An admin who may sign users out (domain-wide delegation)",
        Kind::Text,
    ),
    spec(
        "service_account_json",
        "Service account key (JSON)",
        "The whole key file",
        Kind::SecretArea,
    ),
    spec(
        "base_url",
        "Admin SDK base URL",
        "Defaults to https://admin.googleapis.com",
        Kind::Url,
    ),
    spec(
        "token_url",
        "Token URL",
        "Defaults to the key's token_uri",
        Kind::Url,
    ),
];
const SLACK: &[Spec] = &[
    spec(
        "token",
        "Slack user token",
        "xoxp-… with users:read.email and admin.users:write (Enterprise Grid)",
        Kind::Secret,
    ),
    spec(
        "base_url",
        "API base URL",
        "Defaults to https://slack.com/api",
        Kind::Url,
    ),
];
const MIRO: &[Spec] = &[
    spec(
        "token",
        "Miro API access token",
        "Enterprise token allowed to reset sessions",
        Kind::Secret,
    ),
    spec(
        "org_id",
        "Organization id",
        "Found from the token when blank",
        Kind::Text,
    ),
    spec(
        "base_url",
        "API base URL",
        "Defaults to https://api.miro.com",
        Kind::Url,
    ),
];

/// The fields each provider's panel shows, in order (docs/connectors.md and
/// the admin guide name them).
fn specs(p: ConnectorKey) -> &'static [Spec] {
    match p {
        ConnectorKey::Okta => OKTA,
        ConnectorKey::Entra => ENTRA,
        ConnectorKey::GoogleWorkspace => GOOGLE,
        ConnectorKey::SlackEnterprise => SLACK,
        ConnectorKey::Miro => MIRO,
    }
}

/// A field as drawn: secrets never carry a value.
pub(crate) struct FieldView {
    pub id: String,
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    /// For secrets: whether a value is stored.
    pub is_set: bool,
}

pub(crate) struct CheckRow {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

pub(crate) struct Panel {
    pub name: String,
    pub provider: &'static str,
    pub provider_label: &'static str,
    pub is_new: bool,
    pub enabled: bool,
    pub fields: Vec<FieldView>,
    /// Slack: `all`, `web` or `mobile` sessions.
    pub slack_mode: Option<&'static str>,
    pub last_test: Option<String>,
    pub last_test_ok: bool,
    pub problem: Option<String>,
    pub open: bool,
    pub error: Option<String>,
    pub checks: Vec<CheckRow>,
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Text => "text",
        Kind::Url => "url",
        Kind::Secret => "secret",
        Kind::SecretArea => "secret_area",
        Kind::Check => "check",
    }
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A panel for a stored connector (or a new one of `provider`), showing
/// `typed` (what was just submitted, secrets excepted) over what is stored.
fn panel(
    st: &AppState,
    provider: ConnectorKey,
    stored: Option<&StoredConnector>,
    name: &str,
    typed: Option<&Fields>,
) -> Panel {
    let settings = stored.map(crate::secrets::settings_of).unwrap_or_default();
    let (secrets_set, problem) = match stored {
        Some(c) => {
            let v = shared::view(st, c);
            (v.secrets_set, v.problem)
        }
        None => (Vec::new(), None),
    };
    let prefix = if stored.is_some() {
        name.to_string()
    } else {
        format!("new-{}", provider.as_str())
    };
    let fields = specs(provider)
        .iter()
        .map(|s| {
            let is_secret = matches!(s.kind, Kind::Secret | Kind::SecretArea);
            let value = if is_secret {
                String::new()
            } else {
                match typed {
                    Some(f) => f.text(s.name),
                    None => text_of(settings.get(s.name)),
                }
            };
            let checked = match typed {
                Some(f) => f.checked(s.name),
                None => settings.get(s.name) == Some(&Value::Bool(true)),
            };
            FieldView {
                id: format!("{prefix}-{}", s.name),
                name: s.name,
                label: s.label,
                hint: s.hint,
                kind: kind_name(s.kind),
                value,
                checked,
                is_set: secrets_set.iter().any(|n| n == s.name),
            }
        })
        .collect();
    let slack_mode = (provider == ConnectorKey::SlackEnterprise).then(|| {
        let pick = |web: bool, mobile: bool| match (web, mobile) {
            (true, false) => "web",
            (false, true) => "mobile",
            _ => "all",
        };
        match typed {
            Some(f) => match f.get("sessions") {
                Some("web") => "web",
                Some("mobile") => "mobile",
                _ => "all",
            },
            None => pick(
                settings.get("web_only") == Some(&Value::Bool(true)),
                settings.get("mobile_only") == Some(&Value::Bool(true)),
            ),
        }
    });
    Panel {
        name: name.to_string(),
        provider: provider.as_str(),
        provider_label: provider_name(provider),
        is_new: stored.is_none(),
        enabled: match typed {
            Some(f) => f.checked("enabled"),
            None => stored.is_none_or(|c| c.enabled),
        },
        fields,
        slack_mode,
        last_test: stored.and_then(|c| {
            c.last_test_at.map(|at| {
                format!(
                    "{} — {}",
                    when(at),
                    c.last_test_detail.clone().unwrap_or_default()
                )
            })
        }),
        last_test_ok: stored.and_then(|c| c.last_test_ok).unwrap_or(false),
        problem,
        open: stored.is_none(),
        error: None,
        checks: Vec::new(),
    }
}

/// The configuration update a panel's form means: its fields only (a
/// provider rejects another's), blank text removes a setting, a blank
/// secret keeps the stored one, unticked options are false.
fn update_from(provider: ConnectorKey, f: &Fields) -> Map<String, Value> {
    let mut u = Map::new();
    u.insert("enabled".into(), Value::Bool(f.checked("enabled")));
    for s in specs(provider) {
        match s.kind {
            Kind::Check => {
                u.insert(s.name.into(), Value::Bool(f.checked(s.name)));
            }
            Kind::Secret | Kind::SecretArea => {
                let v = f.get(s.name).unwrap_or("");
                if !v.trim().is_empty() {
                    u.insert(s.name.into(), Value::String(v.trim().to_string()));
                }
            }
            Kind::Text | Kind::Url => {
                u.insert(s.name.into(), Value::String(f.text(s.name)));
            }
        }
    }
    if provider == ConnectorKey::SlackEnterprise {
        let mode = f.get("sessions").unwrap_or("all");
        u.insert("web_only".into(), Value::Bool(mode == "web"));
        u.insert("mobile_only".into(), Value::Bool(mode == "mobile"));
    }
    u
}

pub(crate) struct Switch {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub on: bool,
    pub confirm_off: Option<&'static str>,
}

pub(crate) struct AddLink {
    pub provider: &'static str,
    pub label: &'static str,
}

pub(crate) struct ClientRow {
    pub id: String,
    pub name: String,
    pub redirect_uris: String,
    pub approved: String,
}

#[derive(Template)]
#[template(path = "ui/integrations.html")]
struct IntegrationsPage {
    layout: Layout,
    switches: Vec<Switch>,
    webhook_secret_set: bool,
    webhook_secret: Option<String>,
    panels: Vec<Panel>,
    new_panel: Option<Panel>,
    add: Vec<AddLink>,
    notice: Option<String>,
    error: Option<String>,
    clients: Vec<ClientRow>,
    pending: Vec<ClientRow>,
}

struct Draw {
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    webhook_secret: Option<String>,
    /// A panel to draw instead of the stored state (after a failed save or a test).
    replace: Option<Panel>,
    new_panel: Option<Panel>,
    /// The panel to draw open (the one just saved).
    open: Option<String>,
}

impl Draw {
    fn ok() -> Self {
        Draw {
            status: StatusCode::OK,
            notice: None,
            error: None,
            webhook_secret: None,
            replace: None,
            new_panel: None,
            open: None,
        }
    }
}

async fn draw(st: &AppState, user: &WebUser, d: Draw) -> Result<Response, UiError> {
    let within = |e: sever_core::StoreError| UiError::from(e).within(user);
    let tenant = user.tenant();
    let settings = st.db().get_settings(tenant).await.map_err(within)?;
    let stored = st.db().list_connectors(tenant).await.map_err(within)?;
    let mut replace = d.replace;
    let panels = stored
        .iter()
        .map(
            |c| match replace.take_if(|p| p.name == c.name.as_str() && !p.is_new) {
                Some(p) => p,
                None => {
                    let mut p = panel(st, c.provider, Some(c), c.name.as_str(), None);
                    p.open = d.open.as_deref() == Some(c.name.as_str());
                    p
                }
            },
        )
        .collect();
    let clients = st
        .db()
        .list_oauth_clients(tenant)
        .await
        .map_err(within)?
        .into_iter()
        .map(|c| ClientRow {
            approved: format!(
                "approved {} by {}",
                c.approved_at.map(when).unwrap_or_default(),
                c.approved_by.clone().unwrap_or_default()
            ),
            redirect_uris: c.redirect_uris.join(", "),
            name: c.name,
            id: c.id,
        })
        .collect();
    let pending = st
        .db()
        .list_pending_oauth_clients(50)
        .await
        .map_err(within)?
        .into_iter()
        .map(|c| ClientRow {
            approved: format!("registered {}", when(c.created_at)),
            redirect_uris: c.redirect_uris.join(", "),
            name: c.name,
            id: c.id,
        })
        .collect();
    let switches = vec![
        Switch {
            key: "revocation",
            label: "Session revocation",
            help: "The master switch: while it is off, every entry point (Responder, API, webhook, MCP) refuses to revoke.",
            on: settings.revocation_enabled,
            confirm_off: Some("Turn session revocation off? Every entry point will refuse revocations until it is turned on again."),
        },
        Switch {
            key: "mcp",
            label: "Allow revoke via MCP integration",
            help: "MCP clients also need the sessions:revoke scope.",
            on: settings.mcp_enabled,
            confirm_off: None,
        },
        Switch {
            key: "webhook",
            label: "Allow revoke via Webhook integration",
            help: "Accepts signed POSTs to /api/v1/session-revocation/webhook. Turning it on makes a signing secret, shown once; off and on again rotates it.",
            on: settings.webhook_enabled,
            confirm_off: Some("Turn the webhook off? Its signing secret is deleted; turning it on again makes a new one."),
        },
        Switch {
            key: "require_timestamp",
            label: "Require timestamped webhook signatures",
            help: "Refuse the plain sha256= form; accept only t=…,v1=… within 5 minutes.",
            on: settings.webhook_require_timestamp,
            confirm_off: None,
        },
    ];
    let add = ConnectorKey::ALL
        .iter()
        .map(|k| AddLink {
            provider: k.as_str(),
            label: k.display_name(),
        })
        .collect();
    Ok(render(
        d.status,
        &IntegrationsPage {
            layout: user.layout("Integrations", "integrations"),
            switches,
            webhook_secret_set: settings.webhook_secret.is_some(),
            webhook_secret: d.webhook_secret,
            panels,
            new_panel: d.new_panel,
            add,
            notice: d.notice,
            error: d.error,
            clients,
            pending,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    add: Option<String>,
    saved: Option<String>,
    deleted: Option<String>,
    switched: Option<String>,
}

pub(crate) async fn page(
    State(st): State<AppState>,
    user: WebUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, UiError> {
    user.require_policy(&st, Action::ManageConnectors, "integrations.read", None)
        .await?;
    let mut d = Draw::ok();
    // Notices name only what the query says in a fixed sentence, and only
    // instance names (letters, digits, '_' and '-').
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(n) = q.saved.filter(|n| plain(n)) {
        d.notice = Some(format!(
            "Saved {n}. Its credentials are stored sealed and are never shown again."
        ));
        d.open = Some(n);
    } else if let Some(n) = q.deleted.filter(|n| plain(n)) {
        d.notice = Some(format!("Deleted {n} and its credentials."));
    } else if q.switched.is_some() {
        d.notice = Some("Switches saved.".into());
    }
    if let Some(p) = q.add.and_then(|p| p.parse::<ConnectorKey>().ok()) {
        d.new_panel = Some(panel(&st, p, None, p.as_str(), None));
    }
    draw(&st, &user, d).await
}

/// Turn one switch on or off. Turning the webhook on answers with its new
/// signing secret in a dialog, this once; nothing else ever shows it.
pub(crate) async fn switches(State(st): State<AppState>, p: Posted) -> Result<Response, UiError> {
    let which = p.form.text("switch");
    p.user
        .require_policy(&st, Action::ManageSettings, "settings.update", Some(&which))
        .await?;
    let on = match p.form.get("value") {
        Some("on") => true,
        Some("off") => false,
        _ => {
            return Err(
                UiError::new(StatusCode::UNPROCESSABLE_ENTITY, "value: must be on or off")
                    .within(&p.user),
            )
        }
    };
    let mut change = SettingsChange::default();
    match which.as_str() {
        "revocation" => change.revocation_enabled = Some(on),
        "mcp" => change.mcp_enabled = Some(on),
        "webhook" => change.webhook_enabled = Some(on),
        "require_timestamp" => change.webhook_require_timestamp = Some(on),
        _ => {
            return Err(
                UiError::new(StatusCode::UNPROCESSABLE_ENTITY, "switch: unknown switch")
                    .within(&p.user),
            )
        }
    }
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(p.user.tenant().to_string()),
        accepted: false,
    };
    let r = update_settings(
        st.db().as_ref(),
        st.sealer().as_ref(),
        st.clock().as_ref(),
        p.user.tenant(),
        &change,
        &actor,
    )
    .await
    .map_err(ApiError::from);
    let (_, secret) = audited(&st, &actor, "settings.update", attempt, r)
        .await
        .map_err(|e| UiError::from(e).within(&p.user))?;
    match secret {
        Some(secret) => {
            let mut d = Draw::ok();
            d.notice = Some("The webhook channel is on.".into());
            d.webhook_secret = Some(secret);
            draw(&st, &p.user, d).await
        }
        None => Ok(Redirect::to("/ui/integrations?switched=1").into_response()),
    }
}

fn saved(name: &str) -> Response {
    Redirect::to(&format!("/ui/integrations?saved={name}#connector-{name}")).into_response()
}

/// Save a connector's panel.
pub(crate) async fn save(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    p.user
        .require_policy(
            &st,
            Action::ManageConnectors,
            "connector.update",
            Some(&name),
        )
        .await?;
    let actor = p.user.actor();
    let tenant = p.user.tenant();
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let existing = shared::load(&st, tenant, &name)
        .await
        .map_err(|e| UiError::from(e).within(&p.user))?;
    let update = update_from(existing.provider, &p.form);
    let r = shared::save(
        &st,
        &actor,
        tenant,
        Some(&existing),
        existing.provider,
        &existing.name,
        &update,
        "connector.update",
    )
    .await;
    match audited(&st, &actor, "connector.update", attempt, r).await {
        Ok(c) => Ok(saved(c.name.as_str())),
        Err(e) => {
            let mut failed = panel(
                &st,
                existing.provider,
                Some(&existing),
                &name,
                Some(&p.form),
            );
            failed.open = true;
            failed.error = Some(e.message);
            let mut d = Draw::ok();
            d.status = StatusCode::UNPROCESSABLE_ENTITY;
            d.replace = Some(failed);
            draw(&st, &p.user, d).await
        }
    }
}

/// Create a connector from the "add" panel.
pub(crate) async fn create(State(st): State<AppState>, p: Posted) -> Result<Response, UiError> {
    let provider_raw = p.form.text("provider");
    let name = p.form.text("name");
    p.user
        .require_policy(
            &st,
            Action::ManageConnectors,
            "connector.create",
            Some(&name),
        )
        .await?;
    let provider = provider_raw
        .parse::<ConnectorKey>()
        .map_err(|e| UiError::from(ApiError::from(e)).within(&p.user))?;
    let actor = p.user.actor();
    let mut update = update_from(provider, &p.form);
    update.insert("provider".into(), Value::String(provider.as_str().into()));
    if !name.is_empty() {
        update.insert("name".into(), Value::String(name.clone()));
    }
    let attempt = Attempt {
        target: Some(if name.is_empty() {
            provider_raw.clone()
        } else {
            name.clone()
        }),
        accepted: false,
    };
    let r = async {
        let (provider, n) = shared::identity(&update)?;
        shared::create_new(&st, &actor, p.user.tenant(), provider, &n, &update).await
    }
    .await;
    match audited(&st, &actor, "connector.create", attempt, r).await {
        Ok(c) => Ok(saved(c.name.as_str())),
        Err(e) => {
            let shown = if name.is_empty() {
                provider.as_str()
            } else {
                &name
            };
            let mut failed = panel(&st, provider, None, shown, Some(&p.form));
            failed.error = Some(e.message);
            let mut d = Draw::ok();
            d.status = e.status;
            d.new_panel = Some(failed);
            draw(&st, &p.user, d).await
        }
    }
}

/// Test a connector against its provider; the panel shows every check.
pub(crate) async fn test(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    p.user
        .require_policy(&st, Action::ManageConnectors, "connector.test", Some(&name))
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = shared::run_test(&st, &actor, p.user.tenant(), &name).await;
    let report: TestView = audited(&st, &actor, "connector.test", attempt, r)
        .await
        .map_err(|e| UiError::from(e).within(&p.user))?;
    let c = shared::load(&st, p.user.tenant(), &name)
        .await
        .map_err(|e| UiError::from(e).within(&p.user))?;
    let mut tested = panel(&st, c.provider, Some(&c), &name, None);
    tested.open = true;
    tested.checks = report
        .checks
        .into_iter()
        .map(|c| CheckRow {
            name: c.name,
            ok: c.ok,
            detail: c.detail,
        })
        .collect();
    let mut d = Draw::ok();
    d.replace = Some(tested);
    d.notice = Some(if report.ok {
        format!("{name}: every check passed.")
    } else {
        format!("{name}: some checks failed; see its panel.")
    });
    draw(&st, &p.user, d).await
}

/// Delete a connector and its credentials.
pub(crate) async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Posted,
) -> Result<Response, UiError> {
    p.user
        .require_policy(
            &st,
            Action::ManageConnectors,
            "connector.delete",
            Some(&name),
        )
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(name.clone()),
        accepted: false,
    };
    let r = async {
        let n = sever_core::InstanceName::parse(&name)?;
        shared::remove(&st, &actor, p.user.tenant(), &n).await?;
        Ok::<_, ApiError>(n)
    }
    .await;
    let n = audited(&st, &actor, "connector.delete", attempt, r)
        .await
        .map_err(|e| UiError::from(e).within(&p.user))?;
    Ok(Redirect::to(&format!("/ui/integrations?deleted={n}")).into_response())
}

/// Approve an MCP client that registered itself, binding it to this tenant
/// (its people may then authorize it), or remove an approved one with
/// every token it holds.
pub(crate) async fn mcp_client(
    State(st): State<AppState>,
    Path((id, what)): Path<(String, String)>,
    p: Posted,
) -> Result<Response, UiError> {
    let action = match what.as_str() {
        "approve" => "oauth_client.approve",
        "delete" => "oauth_client.delete",
        _ => return Err(UiError::not_found("There is no such page.").within(&p.user)),
    };
    p.user
        .require_policy(&st, Action::ManageKeys, action, Some(&id))
        .await?;
    let actor = p.user.actor();
    let attempt = Attempt {
        target: Some(id.clone()),
        accepted: false,
    };
    let r = if what == "approve" {
        crate::oauth::clients::approve_client(&st, &actor, p.user.tenant(), &id)
            .await
            .map(|c| {
                format!(
                    "Approved the MCP client {}: people of this tenant may now authorize it.",
                    c.name
                )
            })
    } else {
        crate::oauth::clients::remove_client(&st, &actor, p.user.tenant(), &id)
            .await
            .map(|()| "Removed the MCP client and every token it held.".to_string())
    };
    let mut d = Draw::ok();
    match audited(&st, &actor, action, attempt, r).await {
        Ok(n) => d.notice = Some(n),
        Err(e) => {
            d.status = e.status;
            d.error = Some(e.message);
        }
    }
    draw(&st, &p.user, d).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_form_becomes_an_update_that_keeps_blank_secrets() {
        let f = Fields::parse(
            b"enabled=on&base_url=https%3A%2F%2Facme.okta.com&api_token=&client_id=&oauth_tokens=on",
        );
        let u = update_from(ConnectorKey::Okta, &f);
        assert_eq!(u["enabled"], Value::Bool(true));
        assert_eq!(u["base_url"], "https://acme.okta.com");
        assert!(
            !u.contains_key("api_token"),
            "a blank secret keeps the stored one"
        );
        assert!(!u.contains_key("private_key"));
        assert_eq!(u["client_id"], "", "a blank setting is removed");
        assert_eq!(u["oauth_tokens"], Value::Bool(true));
        assert_eq!(u["forget_devices"], Value::Bool(false));
        assert!(
            !u.contains_key("web_only"),
            "only the provider's own fields"
        );

        let f = Fields::parse(b"token=xoxp-1&sessions=web");
        let u = update_from(ConnectorKey::SlackEnterprise, &f);
        assert_eq!(u["enabled"], Value::Bool(false));
        assert_eq!(u["token"], "xoxp-1");
        assert_eq!(u["web_only"], Value::Bool(true));
        assert_eq!(u["mobile_only"], Value::Bool(false));
    }

    #[test]
    fn every_panel_field_is_a_field_the_api_knows() {
        for p in ConnectorKey::ALL {
            for s in specs(p) {
                assert!(
                    crate::api::connectors::SETTING_FIELDS.contains(&s.name)
                        || crate::secrets::is_secret(s.name),
                    "{}: {}",
                    p.as_str(),
                    s.name
                );
                assert_eq!(
                    matches!(s.kind, Kind::Secret | Kind::SecretArea),
                    crate::secrets::is_secret(s.name),
                    "{}",
                    s.name
                );
            }
        }
    }
}
