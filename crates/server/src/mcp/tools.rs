//! The four MCP tools: their descriptions and JSON schemas (what an agent
//! reads to decide what to call), and what each call does.
//!
//! Each call checks, in order: the tenant's MCP channel switch, the scope
//! the tool needs, the arguments; then it calls the same use case as the
//! REST API ([`crate::usecases`]). Every refusal an agent can act on comes
//! back as a tool result with `isError: true` and one sentence saying what
//! to do, never as a protocol error, and a refused revocation has written
//! nothing. Every call, allowed or refused, lands in the audit trail with
//! channel `mcp`, the caller's identity, the reason and the decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sever_core::admin::Scope;
use sever_core::policy::Action;
use sever_core::{Channel, Outcome, RequestId, RequestStatus, RevocationRequest};

use super::identity::McpCaller;
use crate::api::policy::require;
use crate::api::revocations::Attempt;
use crate::audit::{Actor, Decision};
use crate::error::ApiError;
use crate::idempotency;
use crate::usecases::{self, PreviewView, RevokeCommand};
use crate::AppState;

pub const REVOKE: &str = "revoke_sessions";
pub const PREVIEW: &str = "preview_revocation";
pub const STATUS: &str = "get_revocation_status";
pub const LIST: &str = "list_connectors";

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

fn username_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 320,
        "description": "The person: their email address, UPN or login, as the identity providers know them (e.g. alice@example.com).",
    })
}

fn targets_schema() -> Value {
    json!({
        "type": "array",
        "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"},
        "minItems": 1,
        "uniqueItems": true,
        "description": "Connector names to act in (see list_connectors, e.g. [\"okta\", \"google_workspace\"]). Omit to use every enabled connector.",
    })
}

/// Every tool, as `tools/list` shows it.
pub fn all() -> Vec<Tool> {
    vec![
        Tool::new(
            REVOKE,
            "End every session of one person in every enabled identity provider and SaaS app connected to Sever (Okta, Microsoft Entra ID, Google Workspace, Slack, Miro, ...), or only in `integration_targets`. Destructive and not reversible: the person is signed out everywhere and must sign in again. Sever writes the request durably, with your `reason`, before calling any provider; then it waits a bounded time for the outcome. The result has the `request_id`, the request's `status` (`completed`, `failed`, or `queued`/`running` while it goes on, or `pending_approval`) and one outcome per connector (`revoked`, `tokens_revoked`, `user_not_found`, `not_applicable`, `not_entitled`, `protected`, `skipped`, `failed` with the provider's error). A person absent from an app is not a failure. When the status is not final, poll get_revocation_status with the request_id; do not call this tool again for the same person. If unsure the username is right, call preview_revocation first. Send an `idempotency_key` if you may retry: a retry with the same key and arguments returns the first request instead of revoking twice. Needs the sessions:revoke scope.",
            schema(json!({
                "type": "object",
                "properties": {
                    "username": username_schema(),
                    "reason": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 1000,
                        "description": "Why this person's sessions are being revoked (e.g. \"account takeover, incident INC-1234\"). Required; stored with the request and in the audit trail.",
                    },
                    "integration_targets": targets_schema(),
                    "idempotency_key": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "description": "Any unique string (e.g. the incident id and the username). A retry with the same key and arguments returns the first request instead of revoking again; the same key with other arguments is refused.",
                    },
                },
                "required": ["username", "reason"],
                "additionalProperties": false,
            })),
        )
        .with_title("Revoke a person's sessions everywhere")
        .with_annotations(
            ToolAnnotations::with_title("Revoke a person's sessions everywhere")
                .read_only(false)
                .destructive(true)
                .idempotent(false)
                .open_world(true),
        ),
        Tool::new(
            PREVIEW,
            "Look one person up in every enabled connector (or only in `integration_targets`) and say what a revocation would touch, without changing anything. For each connector: `found` (with the provider's id and display name for the person), or what a revocation would record instead (`user_not_found`, `not_applicable`, `protected`, ...), or `failed` with why the lookup failed (credentials, permissions, rate limit). Use it to check a username before revoke_sessions. Needs the sessions:read scope.",
            schema(json!({
                "type": "object",
                "properties": {
                    "username": username_schema(),
                    "integration_targets": targets_schema(),
                },
                "required": ["username"],
                "additionalProperties": false,
            })),
        )
        .with_title("Preview a revocation")
        .with_annotations(
            ToolAnnotations::with_title("Preview a revocation")
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(true),
        ),
        Tool::new(
            STATUS,
            "Read one revocation request by its request_id: its status (`queued`, `running`, `completed`, `failed`, `pending_approval`, ...) and every connector's outcome, with the provider's error class, HTTP status, error code and request id for failures. Use it to follow a request revoke_sessions returned before it finished. Needs the sessions:read scope.",
            schema(json!({
                "type": "object",
                "properties": {
                    "request_id": {
                        "type": "string",
                        "format": "uuid",
                        "description": "The request_id revoke_sessions returned.",
                    },
                },
                "required": ["request_id"],
                "additionalProperties": false,
            })),
        )
        .with_title("Get a revocation's status")
        .with_annotations(
            ToolAnnotations::with_title("Get a revocation's status")
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
        ),
        Tool::new(
            LIST,
            "List the connectors of this Sever tenant: each one's name (what integration_targets takes), provider, whether it is enabled (revocations use every enabled connector by default), and the result of its last connection test. Needs the sessions:read scope.",
            schema(json!({
                "type": "object",
                "properties": {},
                "additionalProperties": false,
            })),
        )
        .with_title("List connectors")
        .with_annotations(
            ToolAnnotations::with_title("List connectors")
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
        ),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeArgs {
    username: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    integration_targets: Option<Vec<String>>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewArgs {
    username: String,
    #[serde(default)]
    integration_targets: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusArgs {
    request_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {}

fn parse_args<T: DeserializeOwned>(args: JsonObject) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let field = if let Some(rest) = msg.strip_prefix("missing field `") {
            rest.split('`').next().unwrap_or("arguments").to_string()
        } else if let Some(rest) = msg.strip_prefix("unknown field `") {
            rest.split('`').next().unwrap_or("arguments").to_string()
        } else if path == "." || path.is_empty() {
            "arguments".to_string()
        } else {
            path
        };
        ApiError::invalid(&field, msg)
    })
}

/// One sentence an agent can act on, from an error; `after` says what it
/// means for the call ("nothing was revoked").
fn sentence(e: &ApiError, after: Option<&str>) -> String {
    let base = match e.code {
        "invalid_input" => format!("Invalid {}", e.message),
        "internal" => {
            "Sever hit an internal error (the server log has the detail); retry later".into()
        }
        _ => {
            let mut c = e.message.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => e.code.to_string(),
            }
        }
    };
    let base = base.trim_end_matches('.').to_string();
    match after {
        Some(a) => format!("{base}; {a}."),
        None => format!("{base}."),
    }
}

/// A tool error: `isError`, one sentence, and the same as JSON.
pub fn tool_error(e: &ApiError, after: Option<&str>) -> CallToolResult {
    let text = sentence(e, after);
    let mut r = CallToolResult::error(vec![ContentBlock::text(text.clone())]);
    r.structured_content = Some(json!({"error": {"code": e.code, "message": text}}));
    r
}

fn tool_result(summary: String, data: Value, is_error: bool) -> CallToolResult {
    let mut data = data;
    if let Value::Object(m) = &mut data {
        m.insert("summary".into(), json!(summary));
    }
    let mut r = if is_error {
        CallToolResult::error(vec![ContentBlock::text(summary)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(summary)])
    };
    r.content.push(ContentBlock::text(
        serde_json::to_string_pretty(&data).unwrap_or_default(),
    ));
    r.structured_content = Some(data);
    r
}

/// One connector's part of a request, without the per-attempt log.
#[derive(Debug, Serialize)]
struct ResultView {
    connector: String,
    provider: String,
    /// The outcome, or `pending` while the connector runs.
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_request_id: Option<String>,
}

fn request_json(req: &RevocationRequest, replayed: bool) -> Value {
    let results: Vec<ResultView> = req
        .results
        .iter()
        .map(|r| {
            let mut v = ResultView {
                connector: r.instance.to_string(),
                provider: r.provider.as_str().to_string(),
                outcome: r
                    .outcome
                    .as_ref()
                    .map_or("pending", Outcome::label)
                    .to_string(),
                message: None,
                error_class: None,
                http_status: None,
                provider_code: None,
                provider_request_id: None,
            };
            match &r.outcome {
                Some(Outcome::Failed(f)) => {
                    v.message = Some(f.message.clone());
                    v.error_class = Some(f.class.as_str().to_string());
                    v.http_status = f.http_status;
                    v.provider_code = f.provider_code.clone();
                    v.provider_request_id = f.provider_request_id.clone();
                }
                Some(
                    o @ (Outcome::NotApplicable { .. }
                    | Outcome::NotEntitled { .. }
                    | Outcome::Protected { .. }
                    | Outcome::Skipped { .. }),
                ) => v.message = Some(o.detail()),
                _ => {}
            }
            v
        })
        .collect();
    let mut v = json!({
        "request_id": req.id,
        "status": req.status,
        "final": req.status.is_final(),
        "username": req.username.as_str(),
        "reason": req.reason.as_str(),
        "channel": req.channel,
        "requested_by": req.requested_by,
        "created_at": req.created_at,
        "finished_at": req.finished_at,
        "results": results,
    });
    if replayed {
        v["replayed"] = json!(true);
    }
    v
}

fn phrase(label: &str) -> &'static str {
    match label {
        "revoked" => "revoked in",
        "tokens_revoked" => "revoked with OAuth tokens in",
        "user_not_found" => "not found in",
        "not_applicable" => "not applicable in",
        "not_entitled" => "not available on the plan of",
        "protected" => "refused as a protected account by",
        "skipped" => "skipped in",
        "failed" => "failed in",
        _ => "still running in",
    }
}

/// One sentence saying how a request stands.
fn summarize(req: &RevocationRequest, replayed: bool) -> String {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in &req.results {
        let label = r.outcome.as_ref().map_or("pending", Outcome::label);
        let name = match &r.outcome {
            Some(Outcome::Failed(f)) => {
                let status = f
                    .http_status
                    .map(|s| format!(", HTTP {s}"))
                    .unwrap_or_default();
                format!(
                    "{} ({}{status}: {})",
                    r.instance,
                    f.class.as_str(),
                    f.message
                )
            }
            _ => r.instance.to_string(),
        };
        groups.entry(label).or_default().push(name);
    }
    let order = [
        "failed",
        "revoked",
        "tokens_revoked",
        "user_not_found",
        "not_applicable",
        "not_entitled",
        "protected",
        "skipped",
        "pending",
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|l| {
            groups
                .get(l)
                .map(|names| format!("{} {}", phrase(l), names.join(", ")))
        })
        .collect();
    let parts = parts.join("; ");
    let again = if replayed {
        " (the first request with this idempotency_key; nothing new was run)"
    } else {
        ""
    };
    let (id, user) = (req.id, req.username.as_str());
    match req.status {
        RequestStatus::Completed => {
            format!("Revocation {id} for {user} completed{again}: {parts}.")
        }
        RequestStatus::Failed => format!(
            "Revocation {id} for {user} failed{again}: {parts}. Fix the cause and call revoke_sessions again with integration_targets set to the failed connectors."
        ),
        RequestStatus::Queued | RequestStatus::Running => format!(
            "Revocation {id} for {user} is still {}{again}: {parts}. Poll get_revocation_status with request_id {id}.",
            req.status
        ),
        RequestStatus::PendingApproval => format!(
            "Revocation {id} for {user} is waiting for approval{again}; nothing was revoked yet. Poll get_revocation_status with request_id {id}."
        ),
        RequestStatus::Rejected => {
            format!("Revocation {id} for {user} was rejected{again}; nothing was revoked.")
        }
        RequestStatus::Expired => format!(
            "Revocation {id} for {user} expired before it was approved{again}; nothing was revoked."
        ),
    }
}

fn request_result(req: &RevocationRequest, replayed: bool) -> CallToolResult {
    let failed = matches!(
        req.status,
        RequestStatus::Failed | RequestStatus::Rejected | RequestStatus::Expired
    );
    tool_result(
        summarize(req, replayed),
        request_json(req, replayed),
        failed,
    )
}

/// Record one tool call in the audit trail.
#[allow(clippy::too_many_arguments)]
async fn record(
    st: &AppState,
    actor: &Actor,
    action: &str,
    decision: Decision,
    target: Option<&str>,
    reason: Option<&str>,
    result: String,
    request_id: Option<RequestId>,
) {
    let mut b = actor
        .event(st.clock().as_ref(), action, decision)
        .target(target)
        .reason(reason)
        .result(result);
    if let Some(id) = request_id {
        b = b.request_id(id);
    }
    actor.allow(st, b.build()).await;
}

async fn refused(
    st: &AppState,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    reason: Option<&str>,
    e: &ApiError,
) {
    // The policy's decision and rules, when it refused.
    let ev = actor
        .event(st.clock().as_ref(), action, Decision::Denied)
        .target(target)
        .reason(reason)
        .result(format!("{}: {}", e.code, e.message))
        .detail(e.audit_detail.clone().unwrap_or_else(|| json!({})))
        .build();
    actor.allow(st, ev).await;
}

async fn channel_open(st: &AppState, caller: &McpCaller) -> Result<(), ApiError> {
    let settings = st.db().get_settings(caller.tenant_id).await?;
    if settings.mcp_enabled {
        Ok(())
    } else {
        Err(ApiError::channel_disabled("MCP"))
    }
}

/// Run one tool call for `caller`. `Err` only for a tool that does not
/// exist (a protocol error, as MCP asks).
pub async fn call(
    st: &AppState,
    caller: &McpCaller,
    client_name: Option<String>,
    name: &str,
    args: JsonObject,
) -> Result<CallToolResult, String> {
    let actor = caller.actor(client_name);
    match name {
        REVOKE => Ok(revoke(st, caller, &actor, args).await),
        PREVIEW => Ok(preview(st, caller, &actor, args).await),
        STATUS => Ok(status(st, caller, &actor, args).await),
        LIST => Ok(list(st, caller, &actor, args).await),
        other => {
            let e = ApiError::not_found(format!("unknown tool '{other}'"));
            refused(st, &actor, "mcp.tools_call", Some(other), None, &e).await;
            Err(format!(
                "unknown tool '{other}'; the tools are {REVOKE}, {PREVIEW}, {STATUS} and {LIST}"
            ))
        }
    }
}

async fn revoke(
    st: &AppState,
    caller: &McpCaller,
    actor: &Actor,
    args: JsonObject,
) -> CallToolResult {
    let mut attempt = Attempt::default();
    let mut reason: Option<String> = args
        .get("reason")
        .and_then(Value::as_str)
        .map(|r| r.trim().chars().take(1000).collect());
    attempt.target = args
        .get("username")
        .and_then(Value::as_str)
        .map(|u| u.trim().chars().take(320).collect());
    let r = async {
        channel_open(st, caller).await?;
        caller.require(Scope::SessionsRevoke)?;
        let a: RevokeArgs = parse_args(args)?;
        let why = a
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "reason",
                    "is required: say why this person's sessions are being revoked",
                )
            })?
            .to_string();
        reason = Some(why.clone());
        let idempotency = match a.idempotency_key.as_deref().map(str::trim) {
            None => None,
            Some(k)
                if !k.is_empty()
                    && k.len() <= 255
                    && k.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
            {
                let canonical = json!({
                    "username": a.username.trim(),
                    "reason": why,
                    "integration_targets": a.integration_targets,
                });
                Some((
                    k.to_string(),
                    idempotency::request_digest(
                        "MCP",
                        "tools/call revoke_sessions",
                        canonical.to_string().as_bytes(),
                    ),
                ))
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "idempotency_key",
                    "must be 1-255 printable ASCII characters",
                ))
            }
        };
        usecases::revoke_sessions_as(
            st,
            RevokeCommand {
                tenant: caller.tenant_id,
                username: a.username,
                reason: Some(why),
                targets: a.integration_targets,
                source: actor.source.clone(),
                channel: Channel::Mcp,
                requested_by: caller.name(),
                client_ip: caller.client_ip.clone(),
                idempotency,
                wait: st.config().mcp_wait,
            },
            &caller.policy_caller(),
            &mut attempt,
        )
        .await
    }
    .await;
    match r {
        Ok(revoked) => {
            if revoked.replayed {
                record(
                    st,
                    actor,
                    "revoke_sessions.replay",
                    Decision::Allowed,
                    Some(revoked.request.username.as_str()),
                    reason.as_deref(),
                    format!("replayed: {}", revoked.request.status),
                    Some(revoked.request.id),
                )
                .await;
            }
            let mut r = request_result(&revoked.request, revoked.replayed);
            if let (Some(a), Some(Value::Object(m))) =
                (&revoked.approval, &mut r.structured_content)
            {
                m.insert(
                    "approval".into(),
                    json!({"reasons": a.reasons, "expires_at": a.expires_at}),
                );
            }
            r
        }
        Err(e) => {
            if attempt.accepted {
                return tool_error(
                    &e,
                    Some(
                        "the request was recorded and goes on; find it with get_revocation_status",
                    ),
                );
            }
            refused(
                st,
                actor,
                REVOKE,
                attempt.target.as_deref(),
                reason.as_deref(),
                &e,
            )
            .await;
            tool_error(&e, Some("nothing was revoked"))
        }
    }
}

fn preview_summary(v: &PreviewView) -> String {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in &v.results {
        let name = match (&r.result[..], &r.message) {
            ("failed", Some(m)) => format!(
                "{} ({}: {m})",
                r.instance,
                r.error_class.map_or("error", |c| c.as_str())
            ),
            _ => r.instance.clone(),
        };
        groups.entry(r.result.as_str()).or_default().push(name);
    }
    let found = groups.remove("found").unwrap_or_default();
    let mut parts = Vec::new();
    if !found.is_empty() {
        parts.push(format!(
            "found in {} (a revocation would end their sessions there)",
            found.join(", ")
        ));
    }
    if let Some(f) = groups.remove("failed") {
        parts.push(format!("lookup failed in {}", f.join(", ")));
    }
    for (label, names) in groups {
        parts.push(format!("{} {}", phrase(label), names.join(", ")));
    }
    format!(
        "Preview for {} (nothing was changed): {}.",
        v.username,
        if parts.is_empty() {
            "no connector to look in".to_string()
        } else {
            parts.join("; ")
        }
    )
}

async fn preview(
    st: &AppState,
    caller: &McpCaller,
    actor: &Actor,
    args: JsonObject,
) -> CallToolResult {
    let mut attempt = Attempt::default();
    let r = async {
        channel_open(st, caller).await?;
        caller.require(Scope::SessionsRead)?;
        let a: PreviewArgs = parse_args(args)?;
        usecases::preview_as(
            st,
            actor,
            &caller.policy_caller(),
            &a.username,
            a.integration_targets.as_deref(),
            &mut attempt,
        )
        .await
    }
    .await;
    match r {
        Ok(view) => tool_result(
            preview_summary(&view),
            serde_json::to_value(&view).unwrap_or_default(),
            false,
        ),
        Err(e) => {
            refused(st, actor, "preview", attempt.target.as_deref(), None, &e).await;
            tool_error(&e, None)
        }
    }
}

async fn status(
    st: &AppState,
    caller: &McpCaller,
    actor: &Actor,
    args: JsonObject,
) -> CallToolResult {
    let target = args
        .get("request_id")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(64).collect::<String>());
    let r = async {
        channel_open(st, caller).await?;
        caller.require(Scope::SessionsRead)?;
        let a: StatusArgs = parse_args(args)?;
        require(st, caller.policy_caller(), Action::GetRevocationStatus).await?;
        usecases::load_request(st, caller.tenant_id, &a.request_id).await
    }
    .await;
    match r {
        Ok(req) => {
            record(
                st,
                actor,
                "revocation.read",
                Decision::Allowed,
                Some(&req.id.to_string()),
                None,
                req.status.to_string(),
                Some(req.id),
            )
            .await;
            request_result(&req, false)
        }
        Err(e) => {
            refused(st, actor, "revocation.read", target.as_deref(), None, &e).await;
            let e = if e.code == "not_found" {
                ApiError::not_found(format!(
                    "{} in this tenant; check the request_id revoke_sessions returned",
                    e.message
                ))
            } else {
                e
            };
            tool_error(&e, None)
        }
    }
}

async fn list(
    st: &AppState,
    caller: &McpCaller,
    actor: &Actor,
    args: JsonObject,
) -> CallToolResult {
    let r = async {
        channel_open(st, caller).await?;
        caller.require(Scope::SessionsRead)?;
        let _: ListArgs = parse_args(args)?;
        require(st, caller.policy_caller(), Action::ListConnectors).await?;
        Ok(st.db().list_connectors(caller.tenant_id).await?)
    }
    .await;
    match r {
        Ok(all) => {
            let connectors: Vec<Value> = all
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name.as_str(),
                        "provider": c.provider.as_str(),
                        "enabled": c.enabled,
                        "last_test": c.last_test_at.map(|at| json!({
                            "at": at,
                            "ok": c.last_test_ok.unwrap_or(false),
                            "detail": c.last_test_detail,
                        })),
                    })
                })
                .collect();
            let enabled: Vec<&str> = all
                .iter()
                .filter(|c| c.enabled)
                .map(|c| c.name.as_str())
                .collect();
            record(
                st,
                actor,
                "connector.list",
                Decision::Allowed,
                None,
                None,
                format!("{} connectors", all.len()),
                None,
            )
            .await;
            let summary = if all.is_empty() {
                "This tenant has no connector yet; an admin adds them in Sever.".to_string()
            } else {
                format!(
                    "{} connectors, {} enabled: {}.",
                    all.len(),
                    enabled.len(),
                    if enabled.is_empty() {
                        "none".to_string()
                    } else {
                        enabled.join(", ")
                    }
                )
            };
            tool_result(summary, json!({"connectors": connectors}), false)
        }
        Err(e) => {
            refused(st, actor, "connector.list", None, None, &e).await;
            tool_error(&e, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_that_names_what_its_arguments_accept() {
        let tools = all();
        let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, [REVOKE, PREVIEW, STATUS, LIST]);
        for t in &tools {
            assert_eq!(t.input_schema["type"], "object", "{}", t.name);
            assert_eq!(t.input_schema["additionalProperties"], false, "{}", t.name);
            assert!(
                t.description.as_ref().is_some_and(|d| d.len() > 100),
                "{}",
                t.name
            );
        }
        let revoke = &tools[0];
        let ann = revoke.annotations.as_ref().unwrap();
        assert_eq!(ann.destructive_hint, Some(true));
        assert_eq!(ann.read_only_hint, Some(false));
        for t in &tools[1..] {
            assert_eq!(
                t.annotations.as_ref().unwrap().read_only_hint,
                Some(true),
                "{}",
                t.name
            );
        }
        // The schemas and the argument types accept the same fields.
        let fields = |t: &Tool| {
            let mut f: Vec<String> = t.input_schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            f.sort();
            f
        };
        assert_eq!(
            fields(revoke),
            [
                "idempotency_key",
                "integration_targets",
                "reason",
                "username"
            ]
        );
        let full = json!({"username": "a@b.co", "reason": "r", "integration_targets": ["okta"], "idempotency_key": "k"});
        assert!(parse_args::<RevokeArgs>(full.as_object().unwrap().clone()).is_ok());
        assert_eq!(fields(&tools[1]), ["integration_targets", "username"]);
        assert_eq!(fields(&tools[2]), ["request_id"]);
        assert!(fields(&tools[3]).is_empty());
    }

    #[test]
    fn bad_arguments_name_the_field_in_one_sentence() {
        let e = parse_args::<RevokeArgs>(json!({"reason": "x"}).as_object().unwrap().clone())
            .unwrap_err();
        assert_eq!(
            sentence(&e, Some("nothing was revoked")),
            "Invalid username: missing field `username`; nothing was revoked."
        );
        let e = parse_args::<PreviewArgs>(json!({"username": 5}).as_object().unwrap().clone())
            .unwrap_err();
        assert!(
            sentence(&e, None).starts_with("Invalid username: invalid type"),
            "{e}"
        );
        let e = parse_args::<ListArgs>(json!({"x": 1}).as_object().unwrap().clone()).unwrap_err();
        assert!(
            sentence(&e, None).starts_with("Invalid x: unknown field"),
            "{e}"
        );
        let e = ApiError::revocation_disabled();
        assert_eq!(
            sentence(&e, Some("nothing was revoked")),
            "Session revocation is disabled for this tenant; nothing was revoked."
        );
    }
}
