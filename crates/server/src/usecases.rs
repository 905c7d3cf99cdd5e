//! The use cases every network entry point shares: revoke a person's
//! sessions, preview who would be affected, read a request. The REST API and
//! the MCP tools both call these functions, so the order of checks (master
//! switch, idempotency, input, policy), the durable write before any
//! provider call, the bounded wait and the audit records are the same
//! whichever door a caller came in by. Authentication, scopes and channel
//! switches stay with each entry point: they differ by door.
//!
//! The policy ([`sever_core::policy::authorize`]) decides every revocation
//! and preview here, for the [`Caller`] the entry point names: a refusal is
//! 403 `policy_denied` (429 `rate_limited` for a limit) and writes nothing;
//! a revocation that needs approval is written `pending_approval` and
//! answered at once, without waiting (a second person approves it over the
//! API, the CLI or the UI; the worker then runs it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sever_core::approvals::{Approval, Submission};
use sever_core::policy::{Action, ActionArgs, Caller, RequestContext};
use sever_core::{
    CallContext, Channel, ConnectorKey, Engine, ErrorClass, Lookup, Reason, RequestId,
    RevocationInput, RevocationRequest, TenantId, Username,
};
use utoipa::ToSchema;

use crate::api::policy::{caller_of, webhook_caller};
use crate::api::revocations::{replayed_request, Attempt};
use crate::api::views::{ErrorClassSchema, ProviderSchema};
use crate::audit::{Actor, Decision};
use crate::error::ApiError;
use crate::idempotency::{self, Begin};
use crate::worker::{run_and_wait, submit_authorized};
use crate::AppState;

/// A revocation as an entry point hands it over: raw strings, parsed here.
#[derive(Debug, Clone)]
pub struct RevokeCommand {
    pub tenant: TenantId,
    pub username: String,
    pub reason: Option<String>,
    /// Connector instance names; every enabled connector when `None`.
    pub targets: Option<Vec<String>>,
    /// What sent it (a playbook, an MCP client's name), for the audit trail.
    pub source: Option<String>,
    pub channel: Channel,
    /// The caller as the audit trail names it (`key:<id>`, `oauth:<client>`).
    pub requested_by: String,
    pub client_ip: Option<String>,
    /// An idempotency key and the digest of the request it was sent with.
    pub idempotency: Option<(String, Vec<u8>)>,
    /// How long to wait for the result before answering with what is known.
    pub wait: Duration,
}

/// A revocation's answer: the request as it stands after the wait.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub request: RevocationRequest,
    /// The idempotency key had been used with this request before: nothing
    /// new was run, this is the first request as it stands now.
    pub replayed: bool,
    /// The policy held the request for approval (its status is
    /// `pending_approval`): who may approve it until when. `None` on a replay.
    pub approval: Option<Approval>,
}

/// The policy's view of a caller named the way requests and the audit
/// trail name them (`key:<id>`, `user:<email>`, `webhook`), looked up in
/// the store: a key's scopes and creator, a person's role. A name it cannot
/// place gets no scopes, so the policy refuses it (fail closed). Entry
/// points that know their caller build the [`Caller`] themselves
/// ([`crate::api::policy::caller_of`], ...).
pub async fn policy_caller(
    st: &AppState,
    tenant: TenantId,
    name: &str,
    channel: Channel,
) -> Result<Caller, ApiError> {
    if name == "webhook" {
        return Ok(webhook_caller(tenant));
    }
    if let Some(id) = name.strip_prefix("key:") {
        let key = st
            .db()
            .list_api_keys(tenant)
            .await?
            .into_iter()
            .find(|k| k.id.to_string() == id && k.revoked_at.is_none());
        if let Some(k) = key {
            return Ok(caller_of(&k, channel));
        }
    }
    if let Some(email) = name.strip_prefix("user:") {
        if let Some(u) = st.db().find_user(tenant, email).await? {
            if !u.disabled {
                return Ok(Caller {
                    tenant_id: tenant,
                    grant: format!("user:{}", u.email),
                    person: Some(u.email.clone()),
                    role: Some(u.role),
                    scopes: Vec::new(),
                    channel,
                });
            }
        }
    }
    Ok(Caller {
        tenant_id: tenant,
        grant: name.to_string(),
        person: None,
        role: None,
        scopes: Vec::new(),
        channel,
    })
}

/// [`revoke_sessions_as`] for the caller `cmd.requested_by` names
/// ([`policy_caller`]).
pub(crate) async fn revoke_sessions(
    st: &AppState,
    cmd: RevokeCommand,
    attempt: &mut Attempt,
) -> Result<Revoked, ApiError> {
    let caller = policy_caller(st, cmd.tenant, &cmd.requested_by, cmd.channel).await?;
    revoke_sessions_as(st, cmd, &caller, attempt).await
}

/// Revoke every session of a person: refuse while the tenant's master switch
/// is off, replay an idempotent retry, validate the input, ask the policy
/// for `caller`, write the request (and its audit record, with the
/// policy's decision) before any provider is called, run it apart from the
/// caller and wait up to `cmd.wait` for it — or, when the policy wants a
/// second person's approval, write it `pending_approval` and answer at
/// once. Invalid input and refusals change nothing. `attempt` learns the
/// target and whether the request was accepted, for the caller's refusal
/// record (a policy refusal's error carries the decision for that record).
pub(crate) async fn revoke_sessions_as(
    st: &AppState,
    cmd: RevokeCommand,
    caller: &Caller,
    attempt: &mut Attempt,
) -> Result<Revoked, ApiError> {
    attempt.target = Some(cmd.username.trim().chars().take(320).collect());
    let (key, digest) = match cmd.idempotency {
        Some((k, d)) => (Some(k), d),
        None => (None, Vec::new()),
    };
    let pending = match idempotency::begin(st, cmd.tenant, key.as_deref(), digest).await? {
        Begin::Replay { body, .. } => {
            attempt.accepted = true;
            let request = replayed_request(st, cmd.tenant, &body, cmd.wait).await?;
            return Ok(Revoked {
                request,
                replayed: true,
                approval: None,
            });
        }
        Begin::Fresh(p) => Some(p),
        Begin::NoKey => None,
    };
    let settings = st.db().get_settings(cmd.tenant).await?;
    if !settings.revocation_enabled {
        return Err(ApiError::revocation_disabled());
    }
    let input = RevocationInput {
        tenant_id: cmd.tenant,
        username: Username::parse(&cmd.username)?,
        reason: Reason::parse(cmd.reason.as_deref().unwrap_or(""))?,
        channel: cmd.channel,
        requested_by: cmd.requested_by,
        targets: cmd.targets,
        source: cmd.source,
        client_ip: cmd.client_ip,
    };
    let engine = st.engine(cmd.tenant).await?;
    // The instances the run will reach: what `connector` limits and
    // `integration_targets` rules check.
    let plan = engine.plan(input.targets.as_deref())?;
    let ctx = RequestContext {
        caller: caller.clone(),
        action: Action::RevokeSessions,
        args: ActionArgs {
            usernames: vec![input.username.clone()],
            integration_targets: input.targets.clone(),
            connectors: plan.iter().map(|(n, _)| n.to_string()).collect(),
            reason: Some(input.reason.as_str().to_string()),
        },
    };
    let auth = crate::api::policy::authorize(st, &ctx).await?;
    let person = caller.person.clone();
    let submission = submit_authorized(st, engine.clone(), input, auth, person, pending).await?;
    attempt.accepted = true;
    match submission {
        Submission::Queued(new) => {
            let request = run_and_wait(st, engine, new.id, cmd.wait).await?;
            Ok(Revoked {
                request,
                replayed: false,
                approval: None,
            })
        }
        Submission::PendingApproval(new, approval) => {
            let request = load_request(st, cmd.tenant, &new.id.to_string()).await?;
            Ok(Revoked {
                request,
                replayed: false,
                approval: Some(*approval),
            })
        }
    }
}

/// A request of `tenant`, or 404 (also for another tenant's request).
pub async fn load_request(
    st: &AppState,
    tenant: TenantId,
    raw_id: &str,
) -> Result<RevocationRequest, ApiError> {
    let id = RequestId::parse(raw_id)?;
    st.db()
        .get_request(id)
        .await?
        .filter(|r| r.tenant_id == tenant)
        .ok_or_else(|| ApiError::not_found(format!("request {id} was not found")))
}

/// One connector's lookup.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewResult {
    pub instance: String,
    #[schema(value_type = ProviderSchema)]
    pub provider: ConnectorKey,
    /// The person exists there and a revocation would end their sessions.
    pub found: bool,
    /// `found`, or what a revocation would record without revoking
    /// (`user_not_found`, `not_applicable`, ...), or `failed`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorClassSchema>)]
    pub error_class: Option<ErrorClass>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    pub username: String,
    pub results: Vec<PreviewResult>,
}

async fn lookup_all(
    engine: Arc<Engine>,
    user: &Username,
    targets: Option<&[String]>,
) -> Result<Vec<PreviewResult>, ApiError> {
    let plan = engine.plan(targets)?;
    let settings = *engine.settings();
    let lookups = plan.into_iter().map(|(name, provider)| {
        let engine = engine.clone();
        async move {
            let mut r = PreviewResult {
                instance: name.to_string(),
                provider,
                found: false,
                result: String::new(),
                subject_id: None,
                display: None,
                message: None,
                error_class: None,
            };
            let Some(conn) = engine.connector(name.as_str()) else {
                r.result = "failed".into();
                r.message = Some("the connector is no longer configured".into());
                return r;
            };
            let cx = CallContext::new(Instant::now() + settings.request_deadline, settings.retry);
            match conn.lookup(&cx, user).await {
                Ok(Lookup::Found(s)) => {
                    r.found = true;
                    r.result = "found".into();
                    r.subject_id = Some(s.id);
                    r.display = Some(s.display);
                }
                Ok(Lookup::Settled(o)) => {
                    r.result = o.label().into();
                    if !matches!(o, sever_core::Outcome::UserNotFound) {
                        r.message = Some(o.detail());
                    }
                }
                Err(f) => {
                    r.result = "failed".into();
                    r.error_class = Some(f.class);
                    r.message = Some(f.message);
                }
            }
            r
        }
    });
    Ok(futures::future::join_all(lookups).await)
}

/// [`preview_as`] for the caller `actor` names ([`policy_caller`]).
pub(crate) async fn preview(
    st: &AppState,
    actor: &Actor,
    username: &str,
    targets: Option<&[String]>,
    attempt: &mut Attempt,
) -> Result<PreviewView, ApiError> {
    let caller = policy_caller(st, actor.tenant_id, &actor.name, actor.channel).await?;
    preview_as(st, actor, &caller, username, targets, attempt).await
}

/// Look the person up in each target connector and change nothing, if the
/// policy lets `caller` preview them; the lookup is recorded in the audit
/// trail as `preview`. `attempt` learns the target, for the caller's
/// refusal record.
pub(crate) async fn preview_as(
    st: &AppState,
    actor: &Actor,
    caller: &Caller,
    username: &str,
    targets: Option<&[String]>,
    attempt: &mut Attempt,
) -> Result<PreviewView, ApiError> {
    attempt.target = Some(username.trim().chars().take(320).collect());
    let user = Username::parse(username)?;
    let engine = st.engine(actor.tenant_id).await?;
    let plan = engine.plan(targets)?;
    let ctx = RequestContext {
        caller: caller.clone(),
        action: Action::PreviewRevocation,
        args: ActionArgs {
            usernames: vec![user.clone()],
            integration_targets: targets.map(<[String]>::to_vec),
            connectors: plan.iter().map(|(n, _)| n.to_string()).collect(),
            reason: None,
        },
    };
    let auth = crate::api::policy::authorize(st, &ctx).await?;
    if !auth.is_allowed() {
        return Err(crate::api::policy::policy_error(&auth));
    }
    let results = lookup_all(engine, &user, targets).await?;
    let found: Vec<_> = results
        .iter()
        .filter(|r| r.found)
        .map(|r| r.instance.clone())
        .collect();
    let ev = actor
        .event(st.clock().as_ref(), "preview", Decision::Allowed)
        .target(Some(user.as_str()))
        .result(format!("found in {} of {}", found.len(), results.len()))
        .detail(json!({"found_in": found}))
        .build();
    actor.allow(st, ev).await;
    Ok(PreviewView {
        username: user.to_string(),
        results,
    })
}
