//! The JSON the API answers with, as typed structs the OpenAPI description
//! is generated from. Core types stay free of HTTP concerns, so each view
//! here is converted from one; a test holds the revocation views to exactly
//! the JSON the CLI prints for the same request (`sever status --json`), so a
//! script can consume either.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sever_core::admin::{ApiKey, AuditRecord, Scope};
use sever_core::{
    Attempt, Channel, ConnectorKey, ConnectorResult, ErrorClass, Outcome, RequestId, RequestStatus,
    RequestSummary, RevocationRequest, Step, TenantId,
};
use utoipa::ToSchema;
use uuid::Uuid;

/// Lifecycle of a request.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RequestStatus, rename_all = "snake_case")]
pub enum RequestStatusSchema {
    PendingApproval,
    Queued,
    Running,
    Completed,
    Failed,
    Rejected,
    Expired,
}

/// How a request entered Sever.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Channel, rename_all = "snake_case")]
pub enum ChannelSchema {
    Cli,
    Api,
    Webhook,
    Mcp,
    Ui,
}

/// The provider of a connector instance.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Provider, rename_all = "snake_case")]
pub enum ProviderSchema {
    Okta,
    Entra,
    GoogleWorkspace,
    SlackEnterprise,
    Miro,
}

/// What happened in one connector.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Outcome, rename_all = "snake_case")]
pub enum OutcomeSchema {
    Revoked,
    TokensRevoked,
    UserNotFound,
    NotApplicable,
    NotEntitled,
    Protected,
    Skipped,
    Failed,
}

/// Why a provider call failed.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ErrorClass, rename_all = "snake_case")]
pub enum ErrorClassSchema {
    Unauthorized,
    Forbidden,
    RateLimited,
    Timeout,
    Network,
    ProviderError,
    BadConfig,
    AmbiguousMatch,
}

/// Which part of a connector's work an attempt belongs to.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Step, rename_all = "snake_case")]
pub enum StepSchema {
    Token,
    Lookup,
    Revoke,
    Test,
}

/// What an API key may do.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Scope)]
pub enum ScopeSchema {
    #[schema(rename = "sessions:revoke")]
    SessionsRevoke,
    #[schema(rename = "sessions:read")]
    SessionsRead,
    #[schema(rename = "admin")]
    Admin,
}

/// One HTTP exchange with a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    #[schema(value_type = StepSchema)]
    pub step: Step,
    /// 1-based attempt number within the step.
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_request_id: Option<String>,
    /// Set when the attempt did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorClassSchema>)]
    pub error_class: Option<ErrorClass>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            step: a.step,
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            http_status: a.http_status,
            provider_code: a.provider_code.clone(),
            provider_request_id: a.provider_request_id.clone(),
            error_class: a.error_class,
        }
    }
}

/// One connector's part of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorResultView {
    /// The connector instance name.
    pub instance: String,
    #[schema(value_type = ProviderSchema)]
    pub provider: ConnectorKey,
    /// Absent while the connector has not finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<OutcomeSchema>)]
    pub outcome: Option<String>,
    /// Why, for `not_applicable`, `not_entitled`, `protected`, `skipped` and `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `failed`: the error class.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorClassSchema>)]
    pub class: Option<ErrorClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The provider's own error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    /// The provider's request id, for its support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_request_id: Option<String>,
    /// For `failed`: how many calls were made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<u32>,
    /// The provider's id for the person, once looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
}

impl From<&ConnectorResult> for ConnectorResultView {
    fn from(r: &ConnectorResult) -> Self {
        let mut v = Self {
            instance: r.instance.to_string(),
            provider: r.provider,
            outcome: r.outcome.as_ref().map(|o| o.label().to_string()),
            message: None,
            class: None,
            http_status: None,
            provider_code: None,
            provider_request_id: None,
            attempt_count: None,
            subject_id: r.subject_id.clone(),
            finished_at: r.finished_at,
            attempts: r.attempts.iter().map(AttemptView::from).collect(),
        };
        match &r.outcome {
            Some(
                Outcome::NotApplicable { message }
                | Outcome::NotEntitled { message }
                | Outcome::Protected { message }
                | Outcome::Skipped { message },
            ) => v.message = Some(message.clone()),
            Some(Outcome::Failed(f)) => {
                v.message = Some(f.message.clone());
                v.class = Some(f.class);
                v.http_status = f.http_status;
                v.provider_code = f.provider_code.clone();
                v.provider_request_id = f.provider_request_id.clone();
                v.attempt_count = Some(f.attempts);
            }
            _ => {}
        }
        v
    }
}

/// A revocation request with every connector's outcome and attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationView {
    #[schema(value_type = Uuid)]
    pub id: RequestId,
    #[schema(value_type = Uuid)]
    pub tenant_id: TenantId,
    pub username: String,
    pub reason: String,
    #[schema(value_type = ChannelSchema)]
    pub channel: Channel,
    /// `key:<id>`, `webhook`, `cli:<user>`, ...
    pub requested_by: String,
    #[schema(value_type = RequestStatusSchema)]
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub results: Vec<ConnectorResultView>,
}

impl From<&RevocationRequest> for RevocationView {
    fn from(r: &RevocationRequest) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            username: r.username.to_string(),
            reason: r.reason.as_str().to_string(),
            channel: r.channel,
            requested_by: r.requested_by.clone(),
            status: r.status,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            results: r.results.iter().map(ConnectorResultView::from).collect(),
        }
    }
}

/// One row of a request listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationSummaryView {
    #[schema(value_type = Uuid)]
    pub id: RequestId,
    pub username: String,
    #[schema(value_type = RequestStatusSchema)]
    pub status: RequestStatus,
    #[schema(value_type = ChannelSchema)]
    pub channel: Channel,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Connectors targeted.
    pub connectors: u32,
    /// Connectors that failed.
    pub failed: u32,
}

impl From<&RequestSummary> for RevocationSummaryView {
    fn from(s: &RequestSummary) -> Self {
        Self {
            id: s.id,
            username: s.username.to_string(),
            status: s.status,
            channel: s.channel,
            created_at: s.created_at,
            finished_at: s.finished_at,
            connectors: s.connectors,
            failed: s.failed,
        }
    }
}

/// A page of requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationPage {
    pub items: Vec<RevocationSummaryView>,
    /// Pass as `before` for the next page; `null` on the last one.
    #[schema(value_type = Option<Uuid>)]
    pub next_before: Option<RequestId>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters (`sk_ab12cd34`), to recognise it.
    pub prefix: String,
    #[schema(value_type = Vec<ScopeSchema>)]
    pub scopes: Vec<Scope>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scopes.clone(),
            created_by: k.created_by.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// One audit record, chained to the one before it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordView {
    pub seq: i64,
    #[schema(value_type = Uuid)]
    pub tenant_id: TenantId,
    pub at: DateTime<Utc>,
    /// `key:<id>`, `webhook`, `cli:<user>`, `user:<email>`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[schema(value_type = ChannelSchema)]
    pub channel: Channel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `allowed` or `denied`.
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The revocation request concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub request_id: Option<RequestId>,
    /// More facts (the HTTP request id, a key's scopes, before/after of a change).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&AuditRecord> for AuditRecordView {
    fn from(r: &AuditRecord) -> Self {
        let e = &r.event;
        Self {
            seq: r.seq,
            tenant_id: e.tenant_id,
            at: e.at,
            actor: e.actor.clone(),
            role: e.role.clone(),
            channel: e.channel,
            source: e.source.clone(),
            client_ip: e.client_ip.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            reason: e.reason.clone(),
            decision: e.decision.clone(),
            result: e.result.clone(),
            request_id: e.request_id,
            detail: e.detail.clone(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sever_core::{Failure, InstanceName, Reason, Username};

    fn sample() -> RevocationRequest {
        let at = Utc::now();
        let attempt = Attempt {
            step: Step::Revoke,
            number: 1,
            started_at: at,
            duration_ms: 12,
            http_status: Some(403),
            provider_code: Some("Authorization_RequestDenied".into()),
            provider_request_id: Some("req-1".into()),
            error_class: Some(ErrorClass::Forbidden),
        };
        let mut failure = Failure::new(ErrorClass::Forbidden, "needs a role");
        failure.http_status = Some(403);
        failure.provider_code = Some("Authorization_RequestDenied".into());
        failure.attempts = 1;
        let result = |name: &str, provider, outcome| ConnectorResult {
            instance: InstanceName::parse(name).unwrap(),
            provider,
            outcome,
            subject_id: Some("00u1".into()),
            finished_at: Some(at),
            attempts: vec![attempt.clone()],
        };
        RevocationRequest {
            id: RequestId::new(),
            tenant_id: TenantId::DEFAULT,
            username: Username::parse("carol@example.com").unwrap(),
            reason: Reason::parse("takeover").unwrap(),
            channel: Channel::Webhook,
            requested_by: "webhook".into(),
            status: RequestStatus::Failed,
            created_at: at,
            started_at: Some(at),
            finished_at: None,
            results: vec![
                result("entra", ConnectorKey::Entra, Some(Outcome::Failed(failure))),
                result("okta", ConnectorKey::Okta, Some(Outcome::TokensRevoked)),
                result(
                    "slack_enterprise",
                    ConnectorKey::SlackEnterprise,
                    Some(Outcome::Protected {
                        message: "primary owner".into(),
                    }),
                ),
                result("miro", ConnectorKey::Miro, None),
            ],
        }
    }

    #[test]
    fn a_revocation_view_is_exactly_the_json_the_cli_prints() {
        let req = sample();
        assert_eq!(
            serde_json::to_value(RevocationView::from(&req)).unwrap(),
            serde_json::to_value(&req).unwrap()
        );
    }

    #[test]
    fn schema_enums_list_every_value_the_domain_serializes() {
        use utoipa::PartialSchema;
        fn names<T: PartialSchema>() -> Vec<String> {
            let v = serde_json::to_value(T::schema()).unwrap();
            v["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        }
        let s = |v: serde_json::Value| v.as_str().unwrap().to_string();
        let status: Vec<_> = RequestStatus::ALL
            .iter()
            .map(|x| x.as_str().to_string())
            .collect();
        assert_eq!(names::<RequestStatusSchema>(), status);
        let providers: Vec<_> = ConnectorKey::ALL
            .iter()
            .map(|x| x.as_str().to_string())
            .collect();
        assert_eq!(names::<ProviderSchema>(), providers);
        let scopes: Vec<_> = Scope::ALL.iter().map(|x| x.as_str().to_string()).collect();
        assert_eq!(names::<ScopeSchema>(), scopes);
        for c in [
            Channel::Cli,
            Channel::Api,
            Channel::Webhook,
            Channel::Mcp,
            Channel::Ui,
        ] {
            assert!(names::<ChannelSchema>().contains(&s(serde_json::to_value(c).unwrap())));
        }
        for st in [Step::Token, Step::Lookup, Step::Revoke, Step::Test] {
            assert!(names::<StepSchema>().contains(&s(serde_json::to_value(st).unwrap())));
        }
        for e in [
            ErrorClass::Unauthorized,
            ErrorClass::Forbidden,
            ErrorClass::RateLimited,
            ErrorClass::Timeout,
            ErrorClass::Network,
            ErrorClass::ProviderError,
            ErrorClass::BadConfig,
            ErrorClass::AmbiguousMatch,
        ] {
            assert!(names::<ErrorClassSchema>().contains(&e.as_str().to_string()));
        }
        for o in [
            Outcome::Revoked,
            Outcome::TokensRevoked,
            Outcome::UserNotFound,
            Outcome::NotApplicable {
                message: String::new(),
            },
            Outcome::NotEntitled {
                message: String::new(),
            },
            Outcome::Protected {
                message: String::new(),
            },
            Outcome::Skipped {
                message: String::new(),
            },
            Outcome::Failed(Failure::new(ErrorClass::Timeout, "")),
        ] {
            assert!(names::<OutcomeSchema>().contains(&o.label().to_string()));
        }
    }
}
