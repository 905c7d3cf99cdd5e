//! Faithful HTTP simulators of the identity-provider APIs that Sever calls.
//!
//! Sever's connectors, its integration tests, the demo and the benchmarks all need the five
//! provider APIs (Okta, Microsoft Entra via Graph, Google Workspace, Slack Enterprise Grid and
//! Miro) without reaching the internet. This crate starts one loopback HTTP server per provider,
//! all sharing one [`SimHandle`] state: a seeded [`Directory`] of people, the credentials in
//! [`demo`], injectable [`Fault`]s, per-provider [`RateLimit`]s and a log of every call.
//!
//! Fidelity is the point: paths, status codes, error bodies and rate-limit headers follow
//! `shared/providers.md`, so a connector that works against the simulator has a fair chance of
//! working against the real thing, and one that mishandles a real quirk (Slack's HTTP 200
//! errors, Graph's 200 from `revokeSignInSessions`, Okta's reset-only rate-limit header) fails
//! here first.
//!
//! Tests in this process drive the simulators through [`SimHandle`]; a test in another process
//! (the CLI's, say) uses the same state over HTTP: every server also answers `GET /_sim/calls`,
//! `DELETE /_sim/calls`, `POST /_sim/faults`, `DELETE /_sim/faults`, `POST /_sim/latency` and
//! `GET /_sim/stats`.

mod control;
pub mod demo;
mod directory;
mod entra;
mod google;
mod jwt;
mod miro;
mod odata;
mod okta;
mod server;
mod slack;
mod state;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use directory::{Directory, Person};
pub use server::Sims;
pub use state::SimHandle;

/// The simulated providers. Serialized with the connector keys Sever uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Provider {
    #[serde(rename = "okta")]
    Okta,
    #[serde(rename = "entra")]
    Entra,
    #[serde(rename = "google_workspace")]
    Google,
    #[serde(rename = "slack_enterprise")]
    Slack,
    #[serde(rename = "miro")]
    Miro,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Okta,
        Provider::Entra,
        Provider::Google,
        Provider::Slack,
        Provider::Miro,
    ];

    /// Sever's connector key for this provider.
    pub fn key(&self) -> &'static str {
        match self {
            Provider::Okta => "okta",
            Provider::Entra => "entra",
            Provider::Google => "google_workspace",
            Provider::Slack => "slack_enterprise",
            Provider::Miro => "miro",
        }
    }

    /// The inverse of [`Provider::key`].
    pub fn from_key(key: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.key() == key)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What a call does, as far as faults and the call log are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A token-endpoint call (OAuth client credentials, JWT bearer).
    Token,
    /// Finding the user (get by key, filter, lookup by email, members by email).
    Lookup,
    /// Ending the user's sessions.
    Revoke,
    /// In a [`Fault`]: every step. In a [`CallRecord`]: any other call.
    Any,
}

/// How an injected fault answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The provider's real answer for this status (Slack: its HTTP 200 `ok:false` equivalent
    /// for 4xx, a real HTTP 5xx otherwise).
    Status(u16),
    /// The provider's 429 with `Retry-After` (seconds, or an HTTP-date); Okta sends only
    /// `X-Rate-Limit-Reset` = now + `retry_after_secs`.
    RateLimited {
        retry_after_secs: u64,
        http_date: bool,
    },
    /// Sleep, then answer normally.
    Slow(Duration),
    /// Close the connection without sending a response.
    Drop,
}

/// A fault injected for one person's calls at one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub step: Step,
    /// `None`: every matching call; `Some(n)`: the first `n` matching calls, then normal.
    pub times: Option<u32>,
}

impl Fault {
    /// A fault that applies to every matching call.
    pub fn new(kind: FaultKind, step: Step) -> Fault {
        Fault {
            kind,
            step,
            times: None,
        }
    }

    /// A fault that applies to the first `n` matching calls only.
    pub fn first(kind: FaultKind, step: Step, n: u32) -> Fault {
        Fault {
            kind,
            step,
            times: Some(n),
        }
    }
}

/// At most `max` calls in any sliding window of `per` (Slack: per method; others: per API,
/// with the token endpoint counted apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub per: Duration,
}

/// How the simulators behave.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Added to every call.
    pub latency: Duration,
    pub rate_limits: HashMap<Provider, RateLimit>,
    /// Lifetime of the access tokens the token endpoints issue.
    pub token_lifetime_secs: u64,
    /// Port per provider; 0 or absent means an ephemeral port.
    pub ports: HashMap<Provider, u16>,
    /// Application permissions (`roles` claim) granted to the demo Entra app.
    pub entra_roles: Vec<String>,
    /// `false` makes Slack's `admin.*` methods answer `feature_not_enabled` (not Grid).
    pub slack_grid: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            latency: Duration::ZERO,
            rate_limits: HashMap::new(),
            token_lifetime_secs: 3599,
            ports: HashMap::new(),
            entra_roles: vec![
                "User.Read.All".to_string(),
                "User.RevokeSessions.All".to_string(),
            ],
            slack_grid: true,
        }
    }
}

/// One call received by a simulator, as the client sent it.
#[derive(Clone, Debug)]
pub struct CallRecord {
    pub provider: Provider,
    pub method: String,
    /// Raw, still percent-encoded as received.
    pub path: String,
    /// Raw query string, without the `?`.
    pub query: Option<String>,
    /// The scheme of the `Authorization` header (`SSWS`, `Bearer`, ...), never the credential.
    pub auth_scheme: Option<String>,
    pub content_type: Option<String>,
    /// The request body (lossy UTF-8).
    pub body: String,
    /// The status answered; 0 when no answer was sent (a `Drop` fault closed the connection,
    /// or the client gave up first).
    pub status: u16,
    pub step: Step,
    pub started: Instant,
    pub finished: Instant,
}

/// Installs the demo's persistent faults: carol holds an admin role in Entra, so revoking her
/// sessions answers 403 `Authorization_RequestDenied` (the demo app has no privileged role).
pub fn demo_faults(handle: &SimHandle) {
    handle.set_fault(
        Provider::Entra,
        "carol@example.com",
        Fault::new(FaultKind::Status(403), Step::Revoke),
    );
}
