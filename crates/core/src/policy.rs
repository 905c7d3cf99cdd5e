//! One policy engine for every entry point (CLI, REST, webhook, MCP, UI).
//!
//! A kill switch in the hands of scripts and AI agents must not become an
//! attacker's tool or a runaway loop, so every call goes through
//! [`authorize`] before it does anything: the caller's scope (not
//! overridable), then the tenant's policy — default allow or deny, per-action
//! rate limits whose counters live in the store (shared by replicas,
//! surviving restarts), argument rules, protected accounts, blast-radius caps
//! on distinct people, per-person cooldowns, and conditions that make a call
//! wait for a second person's approval ([`crate::approvals`]).
//!
//! The document format is the seed's (`version`, `default`,
//! `tools.{action}.limits[{counter, window, max, scope}]`) plus extensions,
//! described in `docs/policy.md`. Every evaluation yields a [`Decision`] and
//! a trace of every rule consulted, which `sever policy explain` prints and
//! entry points put in the audit record.
//!
//! Which policy applies ([`PolicyResolver`]): a policy file named in the
//! configuration, for every tenant; else the tenant's stored policy
//! (changed over the API, audited with before and after); else a built-in
//! default — [`Policy::permissive`] for the embedded single-user CLI,
//! [`Policy::server_default`] for `sever serve`.

mod counters;
mod document;
mod eval;

#[cfg(test)]
mod proptests;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::admin::{AuditEvent, Role, Scope};
use crate::approvals::ApprovalStore;
use crate::domain::{Channel, TenantId, Username};
use crate::ports::StoreError;

pub use counters::{
    distinct_counter, purge_expired, Claim, ClaimUsage, CounterStore, MemoryCounters,
};
pub use document::{
    parse_document, parse_duration, Action, ApprovalConditions, ApprovalSettings, ArgumentRules,
    BlastRadius, CounterScope, DefaultRule, Glob, Limit, PolicyDocument, PolicyError, Problem,
    ProtectedAccounts, ProtectedAction, ReasonRule, ToolAction, ToolRules, Version, Weekday,
    Window, WorkingHours, DEFAULT_APPROVAL_TTL_MINUTES,
};

/// A checked policy, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    document: PolicyDocument,
    compiled: document::Compiled,
}

impl Policy {
    /// Parse and check a JSON document; errors name each field at fault.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        Self::from_document(parse_document(text)?)
    }

    /// Check a document (from a JSON value: the API's body, a stored row).
    pub fn from_value(value: serde_json::Value) -> Result<Self, PolicyError> {
        Self::from_json(&value.to_string())
    }

    pub fn from_document(document: PolicyDocument) -> Result<Self, PolicyError> {
        let compiled = document::compile(&document)?;
        Ok(Self { document, compiled })
    }

    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// The document as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(&self.document).unwrap_or_default()
    }

    /// How long a request waits for approval before it expires.
    pub fn approval_ttl(&self) -> chrono::Duration {
        self.compiled.approval_ttl
    }

    /// The embedded CLI's default when no policy is configured: one person
    /// at their own terminal, holding the database, is the owner; a policy
    /// would only be in their way (and they could edit it). Every action is
    /// allowed, with no limits.
    pub fn permissive() -> Self {
        Self::built_in(PERMISSIVE)
    }

    /// `sever serve`'s default when no policy is configured: callers that
    /// hold the right scope may revoke (10 a minute per key or client, 100
    /// an hour per tenant, at most 50 distinct people an hour per key and
    /// 200 per tenant, no person twice within a minute), preview (60 a
    /// minute), read statuses and list connectors; admin actions are allowed
    /// to admin-scope callers; everything else is denied.
    pub fn server_default() -> Self {
        Self::built_in(SERVER_DEFAULT)
    }

    fn built_in(text: &str) -> Self {
        match Self::from_json(text) {
            Ok(p) => p,
            // Unreachable: a unit test parses both built-ins. Fail closed.
            Err(e) => {
                tracing::error!(error = %e, "a built-in policy does not parse; denying everything");
                Self::deny_all()
            }
        }
    }

    /// Denies everything but what the document of `{"version": "1"}` allows: nothing.
    pub fn deny_all() -> Self {
        let document = PolicyDocument {
            version: Version,
            default: DefaultRule::Deny,
            tools: BTreeMap::new(),
            protected_accounts: vec![],
            blast_radius: None,
            watch_list: vec![],
            approvals: None,
        };
        let compiled = document::Compiled {
            default: DefaultRule::Deny,
            tools: BTreeMap::new(),
            protected: vec![],
            blast_radius: None,
            watch_list: vec![],
            approval_ttl: chrono::Duration::minutes(DEFAULT_APPROVAL_TTL_MINUTES),
        };
        Self { document, compiled }
    }

    /// Whether the policy's `protected_accounts` name `username` (any
    /// action: refuse or approval). `own` is the caller's own accounts
    /// ([`Caller::own_accounts`]). A bulk run skips such people rather than
    /// refusing or holding the whole run for them.
    pub fn protects(&self, own: &[String], username: &str) -> bool {
        let name = username.trim().to_lowercase();
        self.compiled.protected.iter().any(|p| {
            p.accounts.iter().any(|(_, g)| g.matches(&name)) || (p.own && own.contains(&name))
        })
    }

    /// Decide `ctx` and count it: the counters, people and cooldowns it
    /// uses are consumed when (and only when) the decision is not a denial.
    pub async fn evaluate(
        &self,
        ctx: &RequestContext,
        counters: &dyn CounterStore,
        now: DateTime<Utc>,
    ) -> Result<Evaluation, StoreError> {
        eval::run(self, ctx, counters, now, eval::Mode::Apply).await
    }

    /// Decide `ctx` as [`Policy::evaluate`] would now, changing nothing.
    pub async fn explain(
        &self,
        ctx: &RequestContext,
        counters: &dyn CounterStore,
        now: DateTime<Utc>,
    ) -> Result<Evaluation, StoreError> {
        eval::run(self, ctx, counters, now, eval::Mode::DryRun).await
    }
}

const PERMISSIVE: &str = r#"{"version": "1", "default": "allow"}"#;

const SERVER_DEFAULT: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "revoke_sessions": {
      "limits": [
        {"counter": "revocations", "window": "minute", "max": 10, "scope": "grant"},
        {"counter": "revocations", "window": "hour", "max": 100, "scope": "tenant"}
      ],
      "cooldown": "1m"
    },
    "bulk_revoke": {
      "limits": [{"counter": "bulk_revocations", "window": "hour", "max": 5, "scope": "grant"}],
      "cooldown": "1m"
    },
    "preview_revocation": {
      "limits": [{"counter": "previews", "window": "minute", "max": 60, "scope": "grant"}]
    },
    "get_revocation_status": {},
    "list_connectors": {},
    "manage_connectors": {},
    "manage_settings": {},
    "manage_keys": {},
    "manage_policy": {},
    "approve_request": {},
    "read_audit": {}
  },
  "blast_radius": {"per_grant": 50, "per_tenant": 200, "window": "hour"}
}"#;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub tenant_id: TenantId,
    /// The grant the call is made under, which `grant`-scoped counters
    /// count: `key:<id>`, `mcp:<client id>`, `user:<email>`, `cli:<os
    /// user>`, `webhook`.
    pub grant: String,
    /// The email of the person behind the call, when known (a signed-in
    /// user; the creator of a key). Used for "the caller's own account" and
    /// the two-person rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// A person's role; machine callers have scopes instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A key's or MCP client's scopes. When empty, the role's scopes apply.
    pub scopes: Vec<Scope>,
    pub channel: Channel,
}

impl Caller {
    /// The scopes the call may use: the explicit scopes, else the role's.
    pub fn effective_scopes(&self) -> Vec<Scope> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        self.role.map(|r| r.scopes().to_vec()).unwrap_or_default()
    }

    /// Identities that name this caller, lowercased: the grant, the
    /// person's email, and `user:<email>` for it.
    pub fn identities(&self) -> Vec<String> {
        let mut ids = vec![self.grant.trim().to_lowercase()];
        if let Some(p) = &self.person {
            let p = p.trim().to_lowercase();
            let p = p.strip_prefix("user:").unwrap_or(&p).to_string();
            ids.push(format!("user:{p}"));
            ids.push(p);
        }
        if let Some(email) = self.grant.trim().to_lowercase().strip_prefix("user:") {
            ids.push(email.to_string());
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// The caller's own accounts (for `callers_own_account`).
    pub fn own_accounts(&self) -> Vec<String> {
        self.identities()
            .into_iter()
            .filter(|i| i.contains('@') && !i.contains(':'))
            .collect()
    }
}

/// What the call asks for, as far as policies care.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionArgs {
    /// The people the call names (one for `revoke_sessions`).
    pub usernames: Vec<Username>,
    /// The connector instances the caller named; `None`: every enabled one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_targets: Option<Vec<String>>,
    /// The instances the call will reach (the engine's plan), when known:
    /// what `connector`-scoped counters and `integration_targets` rules check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One call to decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestContext {
    pub caller: Caller,
    pub action: Action,
    pub args: ActionArgs,
}

/// The outcome of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny { reasons: Vec<String> },
    RequireApproval { reasons: Vec<String> },
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny { .. } => "deny",
            Decision::RequireApproval { .. } => "require_approval",
        }
    }

    pub fn reasons(&self) -> &[String] {
        match self {
            Decision::Allow => &[],
            Decision::Deny { reasons } | Decision::RequireApproval { reasons } => reasons,
        }
    }
}

/// What one rule said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The rule was checked and lets the call through.
    Pass,
    Deny,
    RequireApproval,
    /// The rule does not concern this call, or was not reached.
    Skip,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Deny => "deny",
            Verdict::RequireApproval => "require_approval",
            Verdict::Skip => "skip",
        }
    }
}

/// One line of an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// Where the rule is: `scope`, `tools.revoke_sessions.limits[0]`,
    /// `protected_accounts[1]`, `default`, ...
    pub rule: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// A decision and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub decision: Decision,
    /// When a refusal by a limit, cooldown or cap lifts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    pub trace: Vec<TraceStep>,
}

// ----------------------------------------------------------- stored policies

/// A tenant's policy as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPolicy {
    pub tenant_id: TenantId,
    /// The document, as JSON.
    pub document: serde_json::Value,
    /// 1 for the first stored version, +1 on every change.
    pub revision: i64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// Where tenants' policies are kept.
#[async_trait]
pub trait PolicyDocumentStore: Send + Sync {
    async fn get_policy(&self, tenant: TenantId) -> Result<Option<StoredPolicy>, StoreError>;

    /// Store `policy` (with its audit record, in one transaction) if the
    /// stored revision is `expected` (`None`: nothing stored yet); otherwise
    /// `StoreError::Conflict`. `policy.revision` must be `expected + 1`.
    async fn put_policy(
        &self,
        policy: &StoredPolicy,
        expected: Option<i64>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Remove the stored policy (the tenant falls back to the default) if
    /// its revision is `expected`; false when nothing was stored, Conflict
    /// when another revision is.
    async fn delete_policy(
        &self,
        tenant: TenantId,
        expected: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// Everything the policy engine keeps in the database.
pub trait PolicyStore: CounterStore + ApprovalStore + PolicyDocumentStore {}

impl<T: CounterStore + ApprovalStore + PolicyDocumentStore + ?Sized> PolicyStore for T {}

/// Where the policy in force came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum PolicyOrigin {
    /// The configuration's policy file; it applies to every tenant and
    /// cannot be changed over the API.
    File { path: String },
    Stored {
        revision: i64,
        updated_at: DateTime<Utc>,
        updated_by: String,
    },
    /// No policy configured or stored: the built-in default.
    BuiltIn { name: String },
}

/// Picks each tenant's policy: the configured file, else the tenant's
/// stored policy, else the built-in default.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    file: Option<(String, Arc<Policy>)>,
    fallback: (String, Arc<Policy>),
}

impl PolicyResolver {
    /// `file`: the policy file named in the configuration (its path, for
    /// messages, and the policy). `fallback`: the built-in default.
    pub fn new(file: Option<(String, Policy)>, fallback_name: &str, fallback: Policy) -> Self {
        Self {
            file: file.map(|(p, pol)| (p, Arc::new(pol))),
            fallback: (fallback_name.to_string(), Arc::new(fallback)),
        }
    }

    /// For the embedded CLI: `file`, else [`Policy::permissive`].
    pub fn for_cli(file: Option<(String, Policy)>) -> Self {
        Self::new(file, "permissive (embedded CLI)", Policy::permissive())
    }

    /// For `sever serve`: `file`, else stored, else [`Policy::server_default`].
    pub fn for_server(file: Option<(String, Policy)>) -> Self {
        Self::new(file, "server default", Policy::server_default())
    }

    /// The policy file's path, when one is configured.
    pub fn file_path(&self) -> Option<&str> {
        self.file.as_ref().map(|(p, _)| p.as_str())
    }

    /// The policy of `tenant` and where it came from. A stored document
    /// that no longer parses is an error (the caller refuses: fail closed).
    pub async fn for_tenant(
        &self,
        store: &dyn PolicyDocumentStore,
        tenant: TenantId,
    ) -> Result<(Arc<Policy>, PolicyOrigin), StoreError> {
        if let Some((path, p)) = &self.file {
            return Ok((p.clone(), PolicyOrigin::File { path: path.clone() }));
        }
        match store.get_policy(tenant).await? {
            Some(s) => {
                let policy = Policy::from_value(s.document.clone()).map_err(|e| {
                    StoreError::Corrupt(format!("the stored policy of tenant {tenant}: {e}"))
                })?;
                Ok((
                    Arc::new(policy),
                    PolicyOrigin::Stored {
                        revision: s.revision,
                        updated_at: s.updated_at,
                        updated_by: s.updated_by,
                    },
                ))
            }
            None => Ok((
                self.fallback.1.clone(),
                PolicyOrigin::BuiltIn {
                    name: self.fallback.0.clone(),
                },
            )),
        }
    }
}

/// A decision for one call, ready for the entry point to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorization {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    #[serde(flatten)]
    pub origin: PolicyOrigin,
    /// How long a request this decision sends to approval may wait.
    #[serde(skip)]
    pub approval_ttl: chrono::Duration,
}

impl Authorization {
    pub fn decision(&self) -> &Decision {
        &self.evaluation.decision
    }

    pub fn is_allowed(&self) -> bool {
        self.evaluation.decision == Decision::Allow
    }

    /// What to merge into the call's audit record's `detail` under
    /// `"policy"`: the decision, its reasons, the rules that decided, and
    /// the policy's origin.
    pub fn audit_detail(&self) -> serde_json::Value {
        let decisive: Vec<_> = self
            .evaluation
            .trace
            .iter()
            .filter(|s| s.verdict != Verdict::Pass && s.verdict != Verdict::Skip)
            .map(|s| serde_json::json!({"rule": s.rule, "verdict": s.verdict, "detail": s.detail}))
            .collect();
        serde_json::json!({
            "policy": {
                "decision": self.evaluation.decision.as_str(),
                "reasons": self.evaluation.decision.reasons(),
                "rules": decisive,
                "origin": self.origin,
            }
        })
    }

    /// One line for an error message: the decision's reasons.
    pub fn message(&self) -> String {
        match &self.evaluation.decision {
            Decision::Allow => "allowed by policy".into(),
            Decision::Deny { reasons } => format!("refused by policy: {}", reasons.join("; ")),
            Decision::RequireApproval { reasons } => {
                format!("needs approval: {}", reasons.join("; "))
            }
        }
    }
}

/// The one guard every entry point calls before acting: resolve the
/// tenant's policy, check the caller's scope, evaluate every rule, and count
/// the call against the shared counters unless it is refused.
///
/// A `RequireApproval` for an action that cannot wait (anything but
/// `revoke_sessions` and `bulk_revoke`) comes back as a `Deny` saying so.
/// Writing the audit record is the entry point's job (it knows the rest of
/// the record); [`Authorization::audit_detail`] is what to put in it.
pub async fn authorize(
    resolver: &PolicyResolver,
    store: &dyn PolicyStore,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Authorization, StoreError> {
    let (policy, origin) = resolver.for_tenant(store, ctx.caller.tenant_id).await?;
    let mut evaluation = policy.evaluate(ctx, store, now).await?;
    if let Decision::RequireApproval { reasons } = &evaluation.decision {
        if !ctx.action.revokes() {
            let r = format!(
                "{} cannot wait for approval ({})",
                ctx.action,
                reasons.join("; ")
            );
            evaluation.decision = Decision::Deny { reasons: vec![r] };
        }
    }
    Ok(Authorization {
        evaluation,
        origin,
        approval_ttl: policy.approval_ttl(),
    })
}

/// [`authorize`] without counting anything: what would happen now.
pub async fn explain(
    resolver: &PolicyResolver,
    store: &dyn PolicyStore,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Authorization, StoreError> {
    let (policy, origin) = resolver.for_tenant(store, ctx.caller.tenant_id).await?;
    let evaluation = policy.explain(ctx, store, now).await?;
    Ok(Authorization {
        evaluation,
        origin,
        approval_ttl: policy.approval_ttl(),
    })
}

/// Why a policy change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError {
    #[error("{0}")]
    Invalid(PolicyError),
    #[error("the policy comes from the file {0} named in the configuration; change the file")]
    ManagedByFile(String),
    #[error("this policy would refuse manage_policy to you ({0}); add \"manage_policy\" to its tools so you can change it again")]
    LocksOut(String),
    #[error("the policy was changed by someone else meanwhile (now at revision {0}); read it again and retry")]
    Conflict(i64),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PolicyChangeError {
    fn from(e: StoreError) -> Self {
        PolicyChangeError::Store(e)
    }
}

/// Store `document` as the tenant's policy, audited with the document
/// before and after. Refused when a policy file is configured, when the
/// document is invalid, or when it would refuse `manage_policy` to the
/// caller making the change (who could then never undo it over the API).
/// `expected_revision`: the revision the caller read (`None` to take
/// whatever is stored now).
pub async fn store_policy(
    resolver: &PolicyResolver,
    store: &dyn PolicyStore,
    caller: &Caller,
    document: serde_json::Value,
    expected_revision: Option<i64>,
    audit: AuditEvent,
    now: DateTime<Utc>,
) -> Result<StoredPolicy, PolicyChangeError> {
    if let Some(path) = resolver.file_path() {
        return Err(PolicyChangeError::ManagedByFile(path.to_string()));
    }
    let policy = Policy::from_value(document).map_err(PolicyChangeError::Invalid)?;
    let ctx = RequestContext {
        caller: caller.clone(),
        action: Action::ManagePolicy,
        args: ActionArgs::default(),
    };
    let check = policy.explain(&ctx, &MemoryCounters::new(), now).await?;
    if let Decision::Deny { reasons } = check.decision {
        return Err(PolicyChangeError::LocksOut(reasons.join("; ")));
    }
    let before = store.get_policy(caller.tenant_id).await?;
    let current = before.as_ref().map(|b| b.revision);
    if expected_revision.is_some() && expected_revision != current {
        return Err(PolicyChangeError::Conflict(current.unwrap_or(0)));
    }
    let stored = StoredPolicy {
        tenant_id: caller.tenant_id,
        document: policy.to_value(),
        revision: current.unwrap_or(0) + 1,
        updated_at: now,
        updated_by: caller.grant.clone(),
    };
    let mut audit = audit;
    audit.action = "policy.update".into();
    audit.decision = "allowed".into();
    audit.result = Some(format!("revision {}", stored.revision));
    merge_detail(
        &mut audit.detail,
        serde_json::json!({
            "before": before.as_ref().map(|b| &b.document),
            "before_revision": current,
            "after": stored.document,
            "after_revision": stored.revision,
        }),
    );
    match store.put_policy(&stored, current, &audit).await {
        Ok(()) => Ok(stored),
        Err(StoreError::Conflict(_)) => {
            let now_at = store
                .get_policy(caller.tenant_id)
                .await?
                .map_or(0, |p| p.revision);
            Err(PolicyChangeError::Conflict(now_at))
        }
        Err(e) => Err(e.into()),
    }
}

/// Remove the tenant's stored policy (back to the built-in default),
/// audited with the document removed. Returns false when none was stored.
pub async fn reset_policy(
    resolver: &PolicyResolver,
    store: &dyn PolicyStore,
    tenant: TenantId,
    audit: AuditEvent,
) -> Result<bool, PolicyChangeError> {
    if let Some(path) = resolver.file_path() {
        return Err(PolicyChangeError::ManagedByFile(path.to_string()));
    }
    let Some(before) = store.get_policy(tenant).await? else {
        return Ok(false);
    };
    let mut audit = audit;
    audit.action = "policy.reset".into();
    audit.decision = "allowed".into();
    audit.result = Some("back to the built-in default".into());
    merge_detail(
        &mut audit.detail,
        serde_json::json!({"before": before.document, "before_revision": before.revision, "after": null}),
    );
    match store.delete_policy(tenant, before.revision, &audit).await {
        Ok(done) => Ok(done),
        Err(StoreError::Conflict(_)) => {
            let now_at = store.get_policy(tenant).await?.map_or(0, |p| p.revision);
            Err(PolicyChangeError::Conflict(now_at))
        }
        Err(e) => Err(e.into()),
    }
}

/// Merge the object `extra` into the object `detail` (replacing a
/// non-object `detail`).
pub fn merge_detail(detail: &mut serde_json::Value, extra: serde_json::Value) {
    if !detail.is_object() {
        *detail = serde_json::json!({});
    }
    if let (serde_json::Value::Object(d), serde_json::Value::Object(e)) = (detail, extra) {
        d.extend(e);
    }
}

#[cfg(test)]
mod tests;
