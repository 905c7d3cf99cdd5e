//! Ports: the small traits through which the core reaches the outside world
//! (storage, providers, time, encryption). Adapters live in other crates; the
//! composition root in the CLI wires them together.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::admin::{AdminStore, AuditEvent};
use crate::domain::*;
use crate::oauth::OAuthStore;
use crate::web::WebSessionStore;

/// Errors a store adapter maps its driver errors into.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} was not found")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(String),
}

/// Durable storage of requests, their outcomes and attempts, and cached tokens.
///
/// Every method is one transaction. Implementations: SQLite (embedded default)
/// and PostgreSQL (several replicas), held to the same conformance suite.
#[async_trait]
pub trait Store: Send + Sync {
    /// Write a new request, one pending result row per target and the
    /// request's audit record, atomically: all of them or none.
    async fn insert_request(&self, req: &NewRequest, audit: &AuditEvent) -> Result<(), StoreError>;

    async fn get_request(&self, id: RequestId) -> Result<Option<RevocationRequest>, StoreError>;

    async fn list_requests(&self, query: &RequestQuery) -> Result<Vec<RequestSummary>, StoreError>;

    /// Take the lease on a `queued` or `running` request and mark it `running`.
    /// Succeeds when the request has no lease, its lease expired before `now`,
    /// the lease is already ours, or it is held by `steal_from` (an owner known
    /// to be dead). Returns false when someone else holds it or it is final.
    async fn claim_request(
        &self,
        id: RequestId,
        lease: &Lease,
        now: DateTime<Utc>,
        steal_from: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Claim the oldest `queued` or `running` request that nobody holds (no
    /// lease, or one that expired before `now`), as [`Store::claim_request`]
    /// would, and return its id; `None` when there is none. A request whose
    /// lease is live is skipped even when it is ours. Concurrent callers,
    /// in this process or other replicas, never get the same request.
    async fn claim_next(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestId>, StoreError>;

    /// Extend our lease; false when we lost it.
    async fn renew_lease(&self, id: RequestId, lease: &Lease) -> Result<bool, StoreError>;

    /// Give up `owner`'s lease on an unfinished request it will not finish
    /// (a graceful shutdown), so another process claims it at once rather
    /// than when the lease expires. Status and outcomes stay as they are;
    /// false when `owner` did not hold it.
    async fn release_lease(&self, id: RequestId, owner: &str) -> Result<bool, StoreError>;

    /// A cheap readiness check: the database answers, and every migration
    /// this version of Sever knows has been applied.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Record one connector's final outcome and all its attempts, atomically.
    /// A result that already has an outcome is left as it was (returns false).
    async fn record_result(
        &self,
        id: RequestId,
        result: &ConnectorResult,
    ) -> Result<bool, StoreError>;

    /// [`Store::record_result`] for several connectors of one request, in
    /// one transaction (all or none): what the engine writes when several
    /// outcomes land while it is writing another. One flag per result.
    async fn record_results(
        &self,
        id: RequestId,
        results: &[ConnectorResult],
    ) -> Result<Vec<bool>, StoreError> {
        let mut recorded = Vec::with_capacity(results.len());
        for r in results {
            recorded.push(self.record_result(id, r).await?);
        }
        Ok(recorded)
    }

    /// Set the final status and release the lease.
    async fn finish_request(
        &self,
        id: RequestId,
        status: RequestStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Requests left `queued` or `running`, oldest first.
    async fn unfinished_requests(&self) -> Result<Vec<UnfinishedRequest>, StoreError>;

    /// A sealed cached provider token, if one is stored under `key`.
    async fn get_token(&self, key: &str) -> Result<Option<CachedSealedToken>, StoreError>;

    async fn put_token(&self, key: &str, token: &CachedSealedToken) -> Result<(), StoreError>;

    /// Delete every cached token not sealed with `key_id`, returning how many
    /// went: after a master key rotation they could no longer be opened.
    async fn clear_tokens_not_sealed_with(&self, key_id: &str) -> Result<u64, StoreError>;
}

/// Everything the server keeps: requests and their outcomes ([`Store`]),
/// tenants, people, keys, settings and the audit trail ([`AdminStore`]),
/// the OAuth clients and tokens of MCP clients ([`OAuthStore`]), the web
/// UI's sessions ([`WebSessionStore`]), and the policy engine's counters,
/// approvals and stored policies ([`PolicyStore`](crate::policy::PolicyStore)).
/// One database implements them all; code that needs only one part takes
/// an `Arc<dyn Store>` (an `Arc<dyn Database>` upcasts to it).
pub trait Database:
    Store
    + AdminStore
    + OAuthStore
    + WebSessionStore
    + crate::policy::PolicyStore
    + crate::bulk::BulkStore
{
}

impl<T> Database for T where
    T: Store
        + AdminStore
        + OAuthStore
        + WebSessionStore
        + crate::policy::PolicyStore
        + crate::bulk::BulkStore
        + ?Sized
{
}

/// Ciphertext produced by a [`Sealer`], tagged with the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// nonce || ciphertext+tag
    pub blob: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedSealedToken {
    pub sealed: Sealed,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot unseal: the data was sealed with key '{0}', which is not loaded")]
    UnknownKey(String),
    #[error("cannot unseal: the data is corrupt or was sealed with another key")]
    Corrupt,
}

/// Authenticated encryption of secrets at rest. `aad` binds a ciphertext to
/// where it is stored, so a sealed value cannot be moved to another row.
pub trait Sealer: Send + Sync {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed;
    fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, SealError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// An access token obtained from a provider's token endpoint.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Where connectors keep tokens between runs (sealed in the store, in practice).
#[async_trait]
pub trait TokenCache: Send + Sync {
    async fn get(&self, key: &str) -> Option<AccessToken>;
    async fn put(&self, key: &str, token: &AccessToken);
}

/// Bounds on retrying one provider call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Timeout of one HTTP attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff: uniform in [0, min(max, base * 2^(n-1))].
    /// `unit` is a random number in [0, 1).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        exp.min(self.max_delay).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// What a connector's calls for one request share: the deadline, the retry
/// policy, and the record of every attempt.
#[derive(Debug)]
pub struct CallContext {
    pub deadline: Instant,
    pub retry: RetryPolicy,
    attempts: Mutex<Vec<Attempt>>,
}

impl CallContext {
    pub fn new(deadline: Instant, retry: RetryPolicy) -> Self {
        Self {
            deadline,
            retry,
            attempts: Mutex::new(Vec::new()),
        }
    }

    pub fn record(&self, attempt: Attempt) {
        if let Ok(mut a) = self.attempts.lock() {
            a.push(attempt);
        }
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The person as a provider knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The provider's id (Okta `00u…`, Graph object id, Slack `W…`, or the email where the
    /// provider keys on it).
    pub id: String,
    pub display: String,
}

/// Result of looking a person up in one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Subject),
    /// The lookup alone settles the outcome (not found, guest, bot, ...).
    Settled(Outcome),
}

/// One check made by `connectors test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub checks: Vec<Check>,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// One configured provider instance.
#[async_trait]
pub trait Connector: Send + Sync {
    fn instance(&self) -> &InstanceName;
    fn provider(&self) -> ConnectorKey;
    async fn lookup(&self, cx: &CallContext, user: &Username) -> Result<Lookup, Failure>;
    async fn revoke(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure>;
    /// Credentials valid, lookup works, permissions as least-privilege as the provider allows.
    async fn test(&self, cx: &CallContext) -> TestReport;
    /// The provider's directory, for bulk jobs over its people (issue 7);
    /// `None` when this connector cannot list them.
    fn directory(&self) -> Option<&dyn Directory> {
        None
    }
}

/// An Entra ID Protection risk level, as `--risky` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High]
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                InvalidInput::new("risk_level", format!("'{s}' is not low, medium or high"))
            })
    }
}

/// Which people of a directory a bulk job takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Everyone.
    All,
    /// People the provider rates at this risk level.
    Risky(RiskLevel),
    /// The user members of a group (id or key as the provider takes it).
    Group(String),
}

impl Selection {
    /// Why `provider` (connector `instance`) cannot list this selection:
    /// the sentence [`Directory::supports`] answers for what it lacks.
    pub fn unsupported(&self, provider: &str, instance: &str) -> String {
        match self {
            Selection::Risky(_) => format!(
                "--risky works only with an Entra connector: {provider} ({instance}) has no user risk level Sever can read"
            ),
            Selection::Group(_) => {
                format!("--group: {provider} ({instance}) has no groups Sever can read")
            }
            Selection::All => format!("--all: {provider} ({instance}) cannot list its people"),
        }
    }

    /// `all`, `risky:high` or `group:KEY`: how a job's source names it
    /// (after the connector instance: `okta:all`).
    pub fn label(&self) -> String {
        match self {
            Selection::All => "all".into(),
            Selection::Risky(l) => format!("risky:{}", l.as_str()),
            Selection::Group(g) => format!("group:{g}"),
        }
    }

    /// The inverse of [`Selection::label`].
    pub fn parse_label(s: &str) -> Option<Self> {
        if s == "all" {
            return Some(Selection::All);
        }
        if let Some(level) = s.strip_prefix("risky:") {
            return RiskLevel::parse(level).ok().map(Selection::Risky);
        }
        s.strip_prefix("group:")
            .filter(|g| !g.is_empty())
            .map(|g| Selection::Group(g.to_string()))
    }

    /// The command-line flag that asks for it, for messages.
    pub fn flag(&self) -> &'static str {
        match self {
            Selection::All => "--all",
            Selection::Risky(_) => "--risky",
            Selection::Group(_) => "--group",
        }
    }
}

/// One page of a directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryPage {
    /// The people on this page, as the provider's usernames (login, UPN, email).
    pub users: Vec<String>,
    /// Where the next page starts (a next link, page token or cursor); `None` on the last page.
    pub next: Option<String>,
}

/// A provider's people, listed page by page so that a directory of any
/// size streams through a bulk job rather than sitting in memory. Calls go
/// through the connector's own HTTP machinery (retries, pacing, errors).
#[async_trait]
pub trait Directory: Send + Sync {
    /// Whether `selection` can be listed here; `Err` is a sentence naming
    /// the flag and the provider.
    fn supports(&self, selection: &Selection) -> Result<(), String>;

    /// The page at `cursor` (`None`: the first one).
    async fn page(
        &self,
        cx: &CallContext,
        selection: &Selection,
        cursor: Option<&str>,
    ) -> Result<DirectoryPage, Failure>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_label_reads_back_as_the_same_selection() {
        for s in [
            Selection::All,
            Selection::Risky(RiskLevel::High),
            Selection::Risky(RiskLevel::Low),
            Selection::Group("eng@example.com".into()),
            Selection::Group("00g1:odd".into()),
        ] {
            assert_eq!(Selection::parse_label(&s.label()), Some(s.clone()), "{s:?}");
        }
        assert_eq!(Selection::parse_label("risky:extreme"), None);
        assert_eq!(Selection::parse_label("group:"), None);
        assert_eq!(Selection::parse_label("everyone"), None);
        assert_eq!(RiskLevel::parse(" HIGH "), Ok(RiskLevel::High));
        assert!(RiskLevel::parse("none").is_err());
    }

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.backoff(9, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(40, 0.5), Duration::from_millis(500));
    }
}
