//! Domain vocabulary shared by every entry point and adapter (DESIGN.md §2).
//!
//! Values here are parsed once at the edge ("parse, don't validate"): once a
//! `Username` or `InstanceName` exists it is known to be well-formed, so the
//! engine, connectors and stores never re-check it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A rejected input, with a message that names the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// The person to revoke: an email, an Entra UPN (guests carry `#EXT#`) or an Okta login.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 320;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(InvalidInput::new("username", "must not be empty"));
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "username",
                format!("is longer than {} characters", Self::MAX_LEN),
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidInput::new(
                "username",
                format!(
                    "'{}' contains a space or control character ({c:?})",
                    s.escape_debug()
                ),
            ));
        }
        if s.contains('/') || s.contains('\\') {
            return Err(InvalidInput::new(
                "username",
                format!("'{s}' contains a slash; expected an email, UPN or login"),
            ));
        }
        if let Some((local, domain)) = s.rsplit_once('@') {
            if local.is_empty() || domain.is_empty() || !domain.contains('.') {
                return Err(InvalidInput::new(
                    "username",
                    format!("'{s}' is not a valid email or UPN (expected name@domain.tld)"),
                ));
            }
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this looks like an email address or UPN (providers that look
    /// people up by email cannot resolve a bare login).
    pub fn is_email(&self) -> bool {
        self.0.contains('@')
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

/// Why a revocation was asked for; stored with the request and in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    pub const MAX_LEN: usize = 1000;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = raw.trim();
        if s.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "reason",
                format!("is longer than {} characters", Self::MAX_LEN),
            ));
        }
        if s.chars().any(|c| c.is_control() && c != '\t') {
            return Err(InvalidInput::new("reason", "contains control characters"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Reason> for String {
    fn from(value: Reason) -> Self {
        value.0
    }
}

/// A tenant. The CLI on embedded defaults works in [`TenantId::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl TenantId {
    pub const DEFAULT: TenantId =
        TenantId(Uuid::from_u128(0x5e7e_0000_0000_4000_8000_0000_0000_0001));

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Uuid::parse_str(raw.trim())
            .map(TenantId)
            .map_err(|_| InvalidInput::new("tenant_id", format!("'{raw}' is not a UUID")))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One revocation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub Uuid);

impl RequestId {
    /// Time-ordered, so ids sort by creation.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Uuid::parse_str(raw.trim()).map(RequestId).map_err(|_| {
            InvalidInput::new(
                "request_id",
                format!("'{raw}' is not a request id (a UUID)"),
            )
        })
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The provider a connector speaks to (the "integration key" of the seed docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKey {
    Okta,
    Entra,
    GoogleWorkspace,
    SlackEnterprise,
    Miro,
}

impl ConnectorKey {
    pub const ALL: [ConnectorKey; 5] = [
        ConnectorKey::Okta,
        ConnectorKey::Entra,
        ConnectorKey::GoogleWorkspace,
        ConnectorKey::SlackEnterprise,
        ConnectorKey::Miro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKey::Okta => "okta",
            ConnectorKey::Entra => "entra",
            ConnectorKey::GoogleWorkspace => "google_workspace",
            ConnectorKey::SlackEnterprise => "slack_enterprise",
            ConnectorKey::Miro => "miro",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            ConnectorKey::Okta => "Okta",
            ConnectorKey::Entra => "Microsoft Entra ID",
            ConnectorKey::GoogleWorkspace => "Google Workspace",
            ConnectorKey::SlackEnterprise => "Slack Enterprise Grid",
            ConnectorKey::Miro => "Miro",
        }
    }
}

impl fmt::Display for ConnectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectorKey {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectorKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(
                    "provider",
                    format!(
                        "unknown provider '{s}' (known: {})",
                        ConnectorKey::ALL.map(|k| k.as_str()).join(", ")
                    ),
                )
            })
    }
}

/// The name of one configured connector instance ("okta", "okta-emea", ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceName(String);

impl InstanceName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = raw.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidInput::new(
                "connector name",
                format!(
                    "'{s}' must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InstanceName {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<InstanceName> for String {
    fn from(value: InstanceName) -> Self {
        value.0
    }
}

/// Why a provider call failed, in terms a responder can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Unauthorized,
    Forbidden,
    RateLimited,
    Timeout,
    Network,
    ProviderError,
    BadConfig,
    AmbiguousMatch,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Network => "network",
            ErrorClass::ProviderError => "provider_error",
            ErrorClass::BadConfig => "bad_config",
            ErrorClass::AmbiguousMatch => "ambiguous_match",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The detail of a `failed` outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub class: ErrorClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_request_id: Option<String>,
    /// How many calls were made (the result's `attempts` list has each one).
    #[serde(rename = "attempt_count")]
    pub attempts: u32,
    pub message: String,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            http_status: None,
            provider_code: None,
            provider_request_id: None,
            attempts: 0,
            message: message.into(),
        }
    }
}

/// What happened in one connector for one request (DESIGN.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Revoked,
    TokensRevoked,
    UserNotFound,
    NotApplicable { message: String },
    NotEntitled { message: String },
    Protected { message: String },
    Skipped { message: String },
    Failed(Failure),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Revoked => "revoked",
            Outcome::TokensRevoked => "tokens_revoked",
            Outcome::UserNotFound => "user_not_found",
            Outcome::NotApplicable { .. } => "not_applicable",
            Outcome::NotEntitled { .. } => "not_entitled",
            Outcome::Protected { .. } => "protected",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }

    /// One line a responder can read next to the outcome.
    pub fn detail(&self) -> String {
        match self {
            Outcome::Revoked => "all sessions ended".into(),
            Outcome::TokensRevoked => "sessions and OAuth tokens revoked".into(),
            Outcome::UserNotFound => "no such user in this app".into(),
            Outcome::NotApplicable { message }
            | Outcome::NotEntitled { message }
            | Outcome::Protected { message }
            | Outcome::Skipped { message } => message.clone(),
            Outcome::Failed(f) => {
                let mut s = format!("{}: {}", f.class, f.message);
                if let Some(code) = &f.provider_code {
                    s.push_str(&format!(" [{code}]"));
                }
                s
            }
        }
    }
}

/// Lifecycle of a request (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    PendingApproval,
    Queued,
    Running,
    Completed,
    Failed,
    Rejected,
    Expired,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 7] = [
        RequestStatus::PendingApproval,
        RequestStatus::Queued,
        RequestStatus::Running,
        RequestStatus::Completed,
        RequestStatus::Failed,
        RequestStatus::Rejected,
        RequestStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::PendingApproval => "pending_approval",
            RequestStatus::Queued => "queued",
            RequestStatus::Running => "running",
            RequestStatus::Completed => "completed",
            RequestStatus::Failed => "failed",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Expired => "expired",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestStatus::Completed
                | RequestStatus::Failed
                | RequestStatus::Rejected
                | RequestStatus::Expired
        )
    }

    /// `completed` when no connector failed; `user_not_found` is not a failure.
    pub fn from_outcomes<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Self {
        if outcomes.into_iter().any(Outcome::is_failure) {
            RequestStatus::Failed
        } else {
            RequestStatus::Completed
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidInput::new("status", format!("unknown request status '{s}'")))
    }
}

/// Which part of a connector's work an attempt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Token,
    Lookup,
    Revoke,
    Test,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Token => "token",
            Step::Lookup => "lookup",
            Step::Revoke => "revoke",
            Step::Test => "test",
        }
    }
}

impl FromStr for Step {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Step::Token, Step::Lookup, Step::Revoke, Step::Test]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidInput::new("step", format!("unknown step '{s}'")))
    }
}

/// One HTTP exchange with a provider, recorded whether it succeeded or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
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
    pub error_class: Option<ErrorClass>,
}

/// The per-connector part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorResult {
    pub instance: InstanceName,
    pub provider: ConnectorKey,
    /// `None` while the connector has not finished.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The provider's id for the person, once looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: Vec<Attempt>,
}

/// How a request entered Sever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Cli,
    Api,
    Webhook,
    Mcp,
    Ui,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cli => "cli",
            Channel::Api => "api",
            Channel::Webhook => "webhook",
            Channel::Mcp => "mcp",
            Channel::Ui => "ui",
        }
    }
}

impl FromStr for Channel {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Channel::Cli,
            Channel::Api,
            Channel::Webhook,
            Channel::Mcp,
            Channel::Ui,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| InvalidInput::new("channel", format!("unknown channel '{s}'")))
    }
}

/// A request as first written, before any provider is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRequest {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub username: Username,
    pub reason: Reason,
    pub channel: Channel,
    /// Who asked: a user, an API key or MCP client id, or the OS user on the CLI.
    pub requested_by: String,
    pub status: RequestStatus,
    pub targets: Vec<(InstanceName, ConnectorKey)>,
    pub created_at: DateTime<Utc>,
}

/// A request with every connector's result: the durable record of what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRequest {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub username: Username,
    pub reason: Reason,
    pub channel: Channel,
    pub requested_by: String,
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub results: Vec<ConnectorResult>,
}

impl RevocationRequest {
    /// The record of `new` as written, before anything ran: every result pending.
    pub fn as_submitted(new: &NewRequest) -> Self {
        Self {
            id: new.id,
            tenant_id: new.tenant_id,
            username: new.username.clone(),
            reason: new.reason.clone(),
            channel: new.channel,
            requested_by: new.requested_by.clone(),
            status: new.status,
            created_at: new.created_at,
            started_at: None,
            finished_at: None,
            results: new
                .targets
                .iter()
                .map(|(instance, provider)| ConnectorResult {
                    instance: instance.clone(),
                    provider: *provider,
                    outcome: None,
                    subject_id: None,
                    finished_at: None,
                    attempts: Vec::new(),
                })
                .collect(),
        }
    }
}

/// One row of a request listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub username: Username,
    pub status: RequestStatus,
    pub channel: Channel,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub connectors: u32,
    pub failed: u32,
}

/// Filter for listing requests; newest first.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    pub tenant_id: Option<TenantId>,
    pub status: Option<RequestStatus>,
    pub username: Option<String>,
    pub limit: u32,
    /// Only requests created strictly before this id (keyset pagination).
    pub before: Option<RequestId>,
}

/// Who holds a request while it runs, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

/// An unfinished request and its lease, for resumption after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedRequest {
    pub id: RequestId,
    pub status: RequestStatus,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_accept_emails_upns_with_ext_and_logins() {
        for ok in [
            "alice@example.com",
            "dave_partner.com#EXT#@example.onmicrosoft.com",
            "o'neil@example.com",
            "alice",
            "  bob@example.com  ",
        ] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            Username::parse(" bob@example.com ").unwrap().as_str(),
            "bob@example.com"
        );
    }

    #[test]
    fn usernames_reject_empty_spaces_slashes_and_broken_emails() {
        for bad in [
            "",
            "   ",
            "a b@example.com",
            "a/b",
            "@example.com",
            "a@",
            "a@localhost",
            "x\u{0}y",
        ] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, "username", "{bad}");
        }
    }

    #[test]
    fn instance_names_are_lowercase_identifiers() {
        assert!(InstanceName::parse("okta-emea_2").is_ok());
        assert!(InstanceName::parse("Okta").is_err());
        assert!(InstanceName::parse("1okta").is_err());
        assert!(InstanceName::parse("").is_err());
    }

    #[test]
    fn a_request_fails_only_when_some_connector_failed() {
        let ok = [Outcome::Revoked, Outcome::UserNotFound];
        assert_eq!(RequestStatus::from_outcomes(&ok), RequestStatus::Completed);
        let bad = [
            Outcome::Revoked,
            Outcome::Failed(Failure::new(ErrorClass::Timeout, "t")),
        ];
        assert_eq!(RequestStatus::from_outcomes(&bad), RequestStatus::Failed);
    }

    #[test]
    fn outcomes_serialize_with_an_outcome_tag_and_error_detail() {
        let mut f = Failure::new(ErrorClass::Forbidden, "missing User.RevokeSessions.All");
        f.http_status = Some(403);
        let v = serde_json::to_value(Outcome::Failed(f)).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["class"], "forbidden");
        assert_eq!(v["http_status"], 403);
        let back: Outcome = serde_json::from_value(v).unwrap();
        assert!(back.is_failure());
        let v = serde_json::to_value(Outcome::Revoked).unwrap();
        assert_eq!(v, serde_json::json!({"outcome": "revoked"}));
    }

    #[test]
    fn connector_results_round_trip_with_and_without_an_outcome() {
        let mut r = ConnectorResult {
            instance: InstanceName::parse("okta").unwrap(),
            provider: ConnectorKey::Okta,
            outcome: Some(Outcome::Protected {
                message: "primary owner".into(),
            }),
            subject_id: Some("00u1".into()),
            finished_at: None,
            attempts: vec![],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], "protected");
        assert_eq!(serde_json::from_value::<ConnectorResult>(v).unwrap(), r);
        r.outcome = None;
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("outcome").is_none());
        assert_eq!(serde_json::from_value::<ConnectorResult>(v).unwrap(), r);
    }

    #[test]
    fn connector_keys_round_trip_and_unknown_names_list_the_known_ones() {
        for k in ConnectorKey::ALL {
            assert_eq!(k.as_str().parse::<ConnectorKey>().unwrap(), k);
        }
        let err = "salesforce".parse::<ConnectorKey>().unwrap_err();
        assert!(err.problem.contains("okta, entra"), "{err}");
    }
}
