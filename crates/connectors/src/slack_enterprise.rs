//! Slack Enterprise Grid: find the person with `users.lookupByEmail` and end
//! their sessions with `admin.users.session.reset`, using a user token from an
//! org-wide install (providers.md §5).
//!
//! Slack answers almost every error as HTTP 200 `{"ok":false,"error":…}`; the
//! shared HTTP layer turns those into errors, and this module says which of
//! them are outcomes (not found, protected, not entitled) rather than failures.

use async_trait::async_trait;
use serde::Deserialize;
use sever_core::{
    CallContext, Connector, ConnectorKey, Directory, DirectoryPage, ErrorClass, Failure,
    InstanceName, Lookup, Outcome, Selection, Step, Subject, TestReport, Username,
};

use crate::http::{check, enc, Api, ApiError, Expect};

pub(crate) struct Slack {
    pub name: InstanceName,
    pub base: String,
    pub api: Api,
    pub mobile_only: bool,
    pub web_only: bool,
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

    async fn test(&self, cx: &CallContext) -> TestReport {
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
            Selection::Risky(_) => Err(format!(
                "--risky works only with an Entra connector: Slack ({}) has no user risk level Sever can read",
                self.name
            )),
            Selection::Group(_) => Err(format!(
                "--group: Slack ({}) has no groups Sever can read",
                self.name
            )),
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
