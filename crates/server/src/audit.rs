//! Who did what, for the audit trail. Every entry point turns its caller into
//! an [`Actor`] once, and every attempt, allowed or refused, becomes an
//! [`AuditEvent`] made from it, so the records of the REST API, the webhook
//! and the CLI's admin commands carry the same fields.

use serde_json::{json, Value};
use sever_core::admin::{ApiKey, AuditEvent};
use sever_core::{Channel, Clock, RequestId, TenantId};

use crate::error::{ApiError, Ctx};
use crate::AppState;

/// The caller of one action.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant_id: TenantId,
    /// `key:<id>`, `oauth:<client id>`, `webhook`, `cli:<os user>`, `user:<email>`.
    pub name: String,
    /// A person's role; machine callers (keys, the webhook) have none: their
    /// scopes are in the record's detail instead.
    pub role: Option<String>,
    pub channel: Channel,
    /// What the caller says sent it (a SOAR playbook's `source`).
    pub source: Option<String>,
    pub client_ip: Option<String>,
    /// The HTTP request id (`X-Request-Id`), when there is one.
    pub http_request_id: Option<String>,
    /// Extra facts about the caller (a key's scopes) put in every record's detail.
    pub detail: Value,
}

impl Actor {
    /// An operator on the command line.
    pub fn cli(tenant_id: TenantId, name: impl Into<String>) -> Self {
        Self {
            tenant_id,
            name: name.into(),
            role: None,
            channel: Channel::Cli,
            source: None,
            client_ip: None,
            http_request_id: None,
            detail: json!({}),
        }
    }

    pub fn api_key(key: &ApiKey, ctx: &Ctx) -> Self {
        Self {
            tenant_id: key.tenant_id,
            name: format!("key:{}", key.id),
            role: None,
            channel: Channel::Api,
            source: None,
            client_ip: ctx.client_ip.clone(),
            http_request_id: Some(ctx.request_id.clone()),
            detail: json!({"scopes": key.scopes}),
        }
    }

    /// An MCP client: `name` is `key:<id>` (an API key) or `oauth:<client
    /// id>` (an OAuth client acting for a person); `detail` says more (the
    /// scopes, the person, the client's name).
    pub fn mcp(
        tenant_id: TenantId,
        name: String,
        source: Option<String>,
        client_ip: Option<String>,
        http_request_id: Option<String>,
        detail: Value,
    ) -> Self {
        Self {
            tenant_id,
            name,
            role: None,
            channel: Channel::Mcp,
            source,
            client_ip,
            http_request_id,
            detail,
        }
    }

    pub fn webhook(tenant_id: TenantId, ctx: &Ctx, source: Option<String>) -> Self {
        Self {
            tenant_id,
            name: "webhook".into(),
            role: None,
            channel: Channel::Webhook,
            source,
            client_ip: ctx.client_ip.clone(),
            http_request_id: Some(ctx.request_id.clone()),
            detail: json!({}),
        }
    }

    /// An audit event for `action` by this actor. `detail` is merged over the
    /// actor's own; it must never hold a secret.
    pub fn event(&self, clock: &dyn Clock, action: &str, decision: Decision) -> EventBuilder {
        EventBuilder {
            event: AuditEvent {
                tenant_id: self.tenant_id,
                at: clock.now(),
                actor: self.name.clone(),
                role: self.role.clone(),
                channel: self.channel,
                source: self.source.clone(),
                client_ip: self.client_ip.clone(),
                action: action.to_string(),
                target: None,
                reason: None,
                decision: decision.as_str().into(),
                result: None,
                request_id: None,
                detail: self.base_detail(),
            },
        }
    }

    fn base_detail(&self) -> Value {
        let mut d = self.detail.clone();
        if let (Some(id), Value::Object(m)) = (&self.http_request_id, &mut d) {
            m.insert("http_request_id".into(), json!(id));
        }
        d
    }

    /// Record a refusal. Failing to record it is logged, never turned into
    /// another error: the caller is refused either way.
    pub async fn deny(&self, state: &AppState, action: &str, target: Option<&str>, e: &ApiError) {
        let ev = self
            .event(state.clock().as_ref(), action, Decision::Denied)
            .target(target)
            .result(format!("{}: {}", e.code, e.message))
            .detail(json!({"http_status": e.status.as_u16()}))
            .detail(e.audit_detail.clone().unwrap_or_else(|| json!({})))
            .build();
        if let Err(err) = state.db().append_audit(&ev).await {
            tracing::error!(error = %err, action, "could not record a refusal in the audit trail");
        }
    }

    /// Record an allowed action that has no mutation of its own to ride with.
    pub async fn allow(&self, state: &AppState, ev: AuditEvent) {
        if let Err(err) = state.db().append_audit(&ev).await {
            tracing::error!(error = %err, action = %ev.action, "could not record an action in the audit trail");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
        }
    }
}

/// Fills in the optional fields of an [`AuditEvent`].
pub struct EventBuilder {
    event: AuditEvent,
}

impl EventBuilder {
    pub fn target(mut self, target: Option<&str>) -> Self {
        self.event.target = target.map(str::to_string);
        self
    }

    pub fn reason(mut self, reason: Option<&str>) -> Self {
        self.event.reason = reason.map(str::to_string);
        self
    }

    pub fn result(mut self, result: impl Into<String>) -> Self {
        self.event.result = Some(result.into());
        self
    }

    pub fn request_id(mut self, id: RequestId) -> Self {
        self.event.request_id = Some(id);
        self
    }

    /// Merge `extra` (an object) into the detail.
    pub fn detail(mut self, extra: Value) -> Self {
        if let (Value::Object(d), Value::Object(e)) = (&mut self.event.detail, extra) {
            d.extend(e);
        }
        self
    }

    pub fn build(self) -> AuditEvent {
        self.event
    }
}
