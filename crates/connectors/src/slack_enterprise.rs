//! Slack Enterprise Grid: find the person with `users.lookupByEmail` and end
//! their sessions with `admin.users.session.reset`, using a user token from an
//! org-wide install (providers.md §5).
//!
//! Inside a bulk job ([`sever_core::bulk::in_bulk`]) the reset goes through
//! [`Batcher`]: the looked-up user ids of the people being revoked at the same
//! time are sent together in one `admin.users.session.resetBulk` (up to 1,000
//! ids), and each person's revoke gets that call's outcome and attempts as its
//! own (docs/bulk.md, "Slack: resetBulk").
//!
//! Slack answers almost every error as HTTP 200 `{"ok":false,"error":…}`; the
//! shared HTTP layer turns those into errors, and this module says which of
//! them are outcomes (not found, protected, not entitled) rather than failures.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use sever_core::{
    Attempt, CallContext, Connector, ConnectorKey, Directory, DirectoryPage, ErrorClass, Failure,
    InstanceName, Lookup, Outcome, RetryPolicy, Selection, Step, Subject, TestReport, Username,
};
use tokio::sync::{oneshot, Notify};

use crate::http::{check, enc, Api, ApiError, Expect};

pub(crate) struct Slack {
    pub name: InstanceName,
    pub base: String,
    pub api: Api,
    pub mobile_only: bool,
    pub web_only: bool,
    /// Bulk-mode batching of resets into `admin.users.session.resetBulk`.
    pub batch: Batcher,
}

/// At most this many user ids go in one `admin.users.session.resetBulk` (Slack's limit).
pub(crate) const BULK_MAX: usize = 1000;
/// How long the first person of a batch waits for others to join it.
pub(crate) const BULK_WINDOW: Duration = Duration::from_millis(300);
/// `resetBulk` is counted apart from `admin.users.session.reset` (Slack limits per method).
const BULK_BUCKET: &str = "admin.users.session.resetBulk";
/// The note on the attempt of a person whose reset went in a `resetBulk` Slack accepted:
/// `ok:true` there means the reset job was enqueued, not that it has run.
pub(crate) const ENQUEUED: &str = "resetBulk_enqueued";

/// What one person gets back from a `resetBulk`.
#[derive(Debug, Clone)]
enum Batched {
    /// Slack accepted (enqueued) the reset of this id.
    Enqueued,
    /// Slack named this id as failed, or failed some without saying which:
    /// reset it alone, which answers why (primary owner, bot, not found).
    Single,
    /// Settled for every id of the call (`feature_not_enabled`).
    Settled(Outcome),
    /// The call itself failed (after its retries).
    Failed(Failure),
}

struct Delivery {
    result: Batched,
    attempts: Vec<Attempt>,
}

struct Waiter {
    id: String,
    deadline: Instant,
    retry: RetryPolicy,
    tx: oneshot::Sender<Delivery>,
}

#[derive(Default)]
struct Cell {
    waiters: Mutex<Vec<Waiter>>,
    full: Notify,
}

/// Collects the user ids of concurrent bulk revocations for [`BULK_WINDOW`]
/// (or until [`BULK_MAX`]); the first person of a batch sends it.
#[derive(Default)]
pub(crate) struct Batcher {
    open: Mutex<Option<Arc<Cell>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seals the leader's batch if its future is dropped before sending: the
/// waiters' channels close and each of them resets its person alone.
struct Leading<'a> {
    batch: &'a Batcher,
    cell: Arc<Cell>,
}

impl Leading<'_> {
    fn seal(&self) -> Vec<Waiter> {
        let mut open = lock(&self.batch.open);
        if open.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.cell)) {
            *open = None;
        }
        drop(open);
        std::mem::take(&mut *lock(&self.cell.waiters))
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        drop(self.seal());
    }
}

#[derive(Deserialize)]
struct LookupAnswer {
    user: User,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct AuthTest {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    is_enterprise_install: bool,
}

/// Scopes Sever needs.
const NEEDED: [&str; 2] = ["users:read.email", "admin.users:write"];
/// Admin scopes that are fine to hold: `admin.users:read` only reads, and is what
/// `admin.users.session.list` (verifying a reset) needs. Any other `admin.*`
/// scope is more than Sever should hold.
const TOLERATED: [&str; 1] = ["admin.users:read"];

pub(crate) fn explain(e: &ApiError) -> Option<(ErrorClass, String)> {
    let code = e.code();
    Some(match code {
        "missing_scope" => (
            ErrorClass::Forbidden,
            format!(
                "the Slack token lacks the {} scope: add it to the app and reinstall it org-wide",
                e.needed.as_deref().unwrap_or("needed")
            ),
        ),
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => (
            ErrorClass::Unauthorized,
            format!(
                "Slack rejected the token ({code}): reinstall the app org-wide and update token"
            ),
        ),
        "not_allowed_token_type" => (
            ErrorClass::BadConfig,
            "admin.* methods need a user token (xoxp-) from an org-wide install".into(),
        ),
        "not_an_admin" | "no_permission" => (
            ErrorClass::Forbidden,
            format!("Slack refused ({code}): the token must belong to an Org Owner or Org Admin"),
        ),
        "ratelimited" => (
            ErrorClass::RateLimited,
            "Slack is rate limiting Sever (ratelimited)".into(),
        ),
        _ if (200..300).contains(&e.status) => (
            ErrorClass::ProviderError,
            format!("Slack refused the call ({code}){}", e.said()),
        ),
        _ => return None,
    })
}

#[async_trait]
impl Connector for Slack {
    fn instance(&self) -> &InstanceName {
        &self.name
    }

    fn provider(&self) -> ConnectorKey {
        ConnectorKey::SlackEnterprise
    }

    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }

    async fn lookup(&self, cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        if !user.is_email() {
            return Ok(Lookup::Settled(Outcome::NotApplicable {
                message: format!("Slack finds people by email; '{user}' is not one"),
            }));
        }
        let url = format!(
            "{}/users.lookupByEmail?email={}",
            self.base,
            enc(user.as_str())
        );
        let resp = self
            .api
            .call(cx, Step::Lookup, &[Expect::Code("users_not_found")], |c| {
                c.get(&url)
            })
            .await?;
        if resp.error.is_some() {
            return Ok(Lookup::Settled(Outcome::UserNotFound));
        }
        let u = self.api.json::<LookupAnswer>(&resp)?.user;
        if u.is_bot {
            return Ok(Lookup::Settled(Outcome::Protected {
                message: "bot user".into(),
            }));
        }
        if u.deleted {
            return Ok(Lookup::Settled(Outcome::NotApplicable {
                message: "the Slack account is deactivated, so it has no sessions".into(),
            }));
        }
        Ok(Lookup::Found(Subject {
            display: u.name.unwrap_or_else(|| user.to_string()),
            id: u.id,
        }))
    }

    async fn revoke(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure> {
        if sever_core::bulk::in_bulk() {
            return self.revoke_batched(cx, subject).await;
        }
        self.reset(cx, subject).await
    }

    async fn test(&self, cx: &CallContext) -> TestReport {
        self.test_token(cx).await
    }
}

impl Slack {
    /// One `admin.users.session.reset`.
    async fn reset(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure> {
        let url = format!("{}/admin.users.session.reset", self.base);
        let form = [
            ("user_id", subject.id.as_str()),
            (
                "mobile_only",
                if self.mobile_only { "true" } else { "false" },
            ),
            ("web_only", if self.web_only { "true" } else { "false" }),
        ];
        let settled = [
            Expect::Code("cannot_reset_primary_owner"),
            Expect::Code("cannot_reset_bot"),
            Expect::Code("feature_not_enabled"),
            Expect::Code("user_not_found"),
        ];
        let resp = self
            .api
            .call(cx, Step::Revoke, &settled, |c| c.post(&url).form(&form))
            .await?;
        Ok(match resp.code() {
            None => Outcome::Revoked,
            Some("cannot_reset_primary_owner") => Outcome::Protected {
                message: "Slack does not allow resetting the Org Primary Owner's sessions".into(),
            },
            Some("cannot_reset_bot") => Outcome::Protected {
                message: "bot user".into(),
            },
            Some("feature_not_enabled") => Outcome::NotEntitled {
                message: "Slack session reset needs Enterprise Grid".into(),
            },
            Some(_) => Outcome::UserNotFound,
        })
    }

    /// Reset `subject` in a `resetBulk` shared with the people being revoked
    /// at the same time; the call's attempts are recorded in `cx` as this
    /// person's own.
    async fn revoke_batched(
        &self,
        cx: &CallContext,
        subject: &Subject,
    ) -> Result<Outcome, Failure> {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            id: subject.id.clone(),
            deadline: cx.deadline,
            retry: cx.retry,
            tx,
        };
        let leading = {
            let mut open = lock(&self.batch.open);
            match open.as_ref() {
                Some(cell) => {
                    let mut waiters = lock(&cell.waiters);
                    waiters.push(waiter);
                    if waiters.len() >= BULK_MAX {
                        cell.full.notify_one();
                        drop(waiters);
                        *open = None;
                    }
                    None
                }
                None => {
                    let cell = Arc::new(Cell::default());
                    lock(&cell.waiters).push(waiter);
                    *open = Some(cell.clone());
                    Some(Leading {
                        batch: &self.batch,
                        cell,
                    })
                }
            }
        };
        if let Some(leading) = leading {
            tokio::select! {
                () = tokio::time::sleep(BULK_WINDOW) => {}
                () = leading.cell.full.notified() => {}
            }
            let waiters = leading.seal();
            self.send_bulk(waiters).await;
        }
        let delivery = match rx.await {
            Ok(d) => d,
            // The batch's sender went away before answering: reset alone.
            Err(_) => return self.reset(cx, subject).await,
        };
        for a in delivery.attempts {
            cx.record(a);
        }
        match delivery.result {
            Batched::Enqueued => Ok(Outcome::Revoked),
            Batched::Single => self.reset(cx, subject).await,
            Batched::Settled(o) => Ok(o),
            Batched::Failed(f) => Err(f),
        }
    }

    /// Send one `resetBulk` for `waiters` (at most [`BULK_MAX`]) and hand
    /// each its result.
    async fn send_bulk(&self, waiters: Vec<Waiter>) {
        let Some(first) = waiters.first() else {
            return;
        };
        let deadline = waiters
            .iter()
            .map(|w| w.deadline)
            .min()
            .unwrap_or(first.deadline);
        let bcx = CallContext::new(deadline, first.retry);
        let url = format!("{}/admin.users.session.resetBulk", self.base);
        let body = json!({
            "user_ids": waiters.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
            "mobile_only": self.mobile_only,
            "web_only": self.web_only,
        });
        let expect = [
            Expect::Code("failed_for_some_users"),
            Expect::Code("cannot_reset_primary_owner"),
            Expect::Code("cannot_reset_bot"),
            Expect::Code("user_not_found"),
            Expect::Code("feature_not_enabled"),
        ];
        let answer = self
            .api
            .call_in(
                &self.api.auth,
                &bcx,
                Step::Revoke,
                BULK_BUCKET,
                &expect,
                |c| c.post(&url).json(&body),
            )
            .await;
        let attempts = bcx.attempts();
        // Which ids Slack named as failed; all of them when it named none it was sent.
        let named: Option<HashSet<String>> = match &answer {
            Ok(resp) if resp.code() == Some("failed_for_some_users") => {
                let text = String::from_utf8_lossy(&resp.body);
                let words: HashSet<String> = text
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect();
                let named: HashSet<String> = waiters
                    .iter()
                    .filter(|w| words.contains(&w.id))
                    .map(|w| w.id.clone())
                    .collect();
                Some(if named.is_empty() {
                    waiters.iter().map(|w| w.id.clone()).collect()
                } else {
                    named
                })
            }
            _ => None,
        };
        for w in waiters {
            let result = match &answer {
                Ok(resp) => match resp.code() {
                    None => Batched::Enqueued,
                    Some("failed_for_some_users") => {
                        if named.as_ref().is_some_and(|n| n.contains(&w.id)) {
                            Batched::Single
                        } else {
                            Batched::Enqueued
                        }
                    }
                    Some("feature_not_enabled") => Batched::Settled(Outcome::NotEntitled {
                        message: "Slack session reset needs Enterprise Grid".into(),
                    }),
                    // The whole call refused over one id: find out one by one.
                    Some(_) => Batched::Single,
                },
                Err(f) => Batched::Failed(f.clone()),
            };
            let mut mine = attempts.clone();
            if matches!(result, Batched::Enqueued) {
                if let Some(last) = mine.last_mut().filter(|a| a.provider_code.is_none()) {
                    last.provider_code = Some(ENQUEUED.into());
                }
            }
            // The person may have stopped waiting (its job was cancelled).
            let _ = w.tx.send(Delivery {
                result,
                attempts: mine,
            });
        }
    }

    async fn test_token(&self, cx: &CallContext) -> TestReport {
        let url = format!("{}/auth.test", self.base);
        let resp = match self.api.call(cx, Step::Test, &[], |c| c.get(&url)).await {
            Ok(r) => r,
            Err(f) => {
                return TestReport {
                    checks: vec![check("credentials", Err(f))],
                }
            }
        };
        let mut checks = Vec::new();
        let who = self.api.json::<AuthTest>(&resp);
        let enterprise = who.as_ref().is_ok_and(|w| w.is_enterprise_install);
        checks.push(check(
            "credentials",
            who.map(|w| format!("the token acts as {}", w.user.unwrap_or_default())),
        ));
        checks.push(check(
            "org-wide install",
            if enterprise {
                Ok("the app is installed on the Enterprise Grid org".into())
            } else {
                Err(Failure::new(
                    ErrorClass::BadConfig,
                    "the app is installed on a workspace, not org-wide: admin.* methods need an org-wide install by an Org Owner or Admin",
                ))
            },
        ));
        let scopes: Vec<&str> = resp
            .header("x-oauth-scopes")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let missing: Vec<_> = NEEDED
            .iter()
            .filter(|n| !scopes.contains(n))
            .copied()
            .collect();
        checks.push(check(
            "scopes",
            if missing.is_empty() {
                Ok(format!("the token holds {}", NEEDED.join(" and ")))
            } else {
                Err(Failure::new(
                    ErrorClass::Forbidden,
                    format!(
                        "the token lacks {}: add it to the app and reinstall it org-wide",
                        missing.join(" and ")
                    ),
                ))
            },
        ));
        let extra: Vec<_> = scopes
            .iter()
            .filter(|s| s.starts_with("admin") && !NEEDED.contains(s) && !TOLERATED.contains(s))
            .copied()
            .collect();
        checks.push(check(
            "least privilege",
            if extra.is_empty() {
                Ok("no admin scopes beyond admin.users:write".into())
            } else {
                Err(Failure::new(
                    ErrorClass::Forbidden,
                    format!(
                        "the token also holds {}, which Sever does not need",
                        extra.join(", ")
                    ),
                ))
            },
        ));
        TestReport { checks }
    }
}

#[derive(Deserialize)]
struct UsersList {
    #[serde(default)]
    members: Vec<Listed>,
    #[serde(default)]
    response_metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    id: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    profile: Option<ListedProfile>,
}

#[derive(Deserialize)]
struct ListedProfile {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    next_cursor: Option<String>,
}

/// Slack lists people with `users.list` (`cursor` /
/// `response_metadata.next_cursor`): the method providers.md and Slack's
/// published spec document; `admin.users.list` is in neither. Bots, Slackbot,
/// deactivated accounts and people without a visible email are left out:
/// Sever finds Slack users by email and bots have no sessions to end.
/// Slack's user groups are not documented there either, so `--group` is
/// refused.
#[async_trait]
impl Directory for Slack {
    fn supports(&self, selection: &Selection) -> Result<(), String> {
        match selection {
            Selection::All => Ok(()),
            other => Err(other.unsupported("Slack", self.name.as_str())),
        }
    }

    async fn page(
        &self,
        cx: &CallContext,
        selection: &Selection,
        cursor: Option<&str>,
    ) -> Result<DirectoryPage, Failure> {
        self.supports(selection)
            .map_err(|m| Failure::new(ErrorClass::BadConfig, m))?;
        let url = match cursor {
            Some(c) => format!("{}/users.list?limit=200&cursor={}", self.base, enc(c)),
            None => format!("{}/users.list?limit=200", self.base),
        };
        let resp = self
            .api
            .call(cx, Step::Lookup, &[], |c| c.get(&url))
            .await?;
        let page: UsersList = self.api.json(&resp)?;
        Ok(DirectoryPage {
            users: page
                .members
                .into_iter()
                .filter(|m| !m.deleted && !m.is_bot && m.id != "USLACKBOT")
                .filter_map(|m| m.profile.and_then(|p| p.email))
                .filter(|e| !e.is_empty())
                .collect(),
            next: page
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.is_empty()),
        })
    }
}
