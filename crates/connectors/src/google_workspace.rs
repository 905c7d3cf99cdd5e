//! Google Workspace through the Admin SDK Directory API: get the user by
//! primary email and call `users.signOut`, as an admin impersonated through
//! a service account's domain-wide delegation (providers.md §4).

use async_trait::async_trait;
use reqwest::header::CONTENT_LENGTH;
use serde::Deserialize;
use sever_core::{
    CallContext, Connector, ConnectorKey, Directory, DirectoryPage, ErrorClass, Failure,
    InstanceName, Lookup, Outcome, Selection, Step, Subject, TestReport, Username,
};

use crate::http::{check, enc, Api, ApiError, Auth, Expect};

pub(crate) struct Google {
    pub name: InstanceName,
    pub base: String,
    pub admin_subject: String,
    pub api: Api,
    /// A token with `admin.directory.group.member.readonly` alone, fetched
    /// only when a bulk job lists a group: asking for that scope with the
    /// others would break every call of a delegation that lacks it.
    pub group_auth: Auth,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    #[serde(default)]
    primary_email: Option<String>,
}

pub(crate) fn explain(e: &ApiError) -> Option<(ErrorClass, String)> {
    let said = e.said();
    let desc = e.message.as_deref().unwrap_or("");
    Some(match (e.step, e.code()) {
        (_, "userRateLimitExceeded" | "quotaExceeded" | "rateLimitExceeded") => (
            ErrorClass::RateLimited,
            format!("Google's Directory API quota is exhausted ({}){said}", e.code()),
        ),
        (Step::Token, "unauthorized_client") => (
            ErrorClass::Forbidden,
            "domain-wide delegation is not set up for these scopes: in the Admin console (Security > API controls > Domain-wide delegation) authorize the service account's client ID for admin.directory.user.readonly and admin.directory.user.security".into(),
        ),
        (Step::Token, "invalid_grant") if desc.contains("Invalid email or User ID") => (
            ErrorClass::BadConfig,
            format!("Google does not know admin_subject{said}; set it to an existing admin's primary email"),
        ),
        (Step::Token, "invalid_grant") if desc.contains("short-lived") || desc.contains("timeframe") => (
            ErrorClass::BadConfig,
            format!("Google rejected the token request's time window{said}; check this host's clock"),
        ),
        (Step::Token, "invalid_grant" | "invalid_client") => (
            ErrorClass::Unauthorized,
            format!("Google rejected the service account key{said}; the key may have been deleted; create a new one and update service_account_json"),
        ),
        (_, _) if e.status == 401 => (
            ErrorClass::Unauthorized,
            format!("Google rejected the access token{said}"),
        ),
        (step, _) if e.status == 403 => (
            ErrorClass::Forbidden,
            format!(
                "Google refused{said} (admin_subject needs the admin privilege to {} users in this user's organizational unit)",
                if step == Step::Revoke { "manage security of" } else { "read" }
            ),
        ),
        _ => return None,
    })
}

#[async_trait]
impl Connector for Google {
    fn instance(&self) -> &InstanceName {
        &self.name
    }

    fn provider(&self) -> ConnectorKey {
        ConnectorKey::GoogleWorkspace
    }

    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }

    async fn lookup(&self, cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        if !user.is_email() {
            return Ok(Lookup::Settled(Outcome::NotApplicable {
                message: format!("Google Workspace finds people by email; '{user}' is not one"),
            }));
        }
        let url = format!(
            "{}/admin/directory/v1/users/{}",
            self.base,
            enc(user.as_str())
        );
        let resp = self
            .api
            .call(
                cx,
                Step::Lookup,
                &[Expect::Status(404), Expect::Status(400)],
                |c| c.get(&url),
            )
            .await?;
        match resp.status {
            404 => return Ok(Lookup::Settled(Outcome::UserNotFound)),
            400 => {
                let msg = resp
                    .error
                    .as_ref()
                    .and_then(|e| e.message.as_deref())
                    .unwrap_or("");
                return if msg.contains("Type not supported") {
                    Ok(Lookup::Settled(Outcome::NotApplicable {
                        message: format!(
                            "'{user}' is a group address, not a user: only users have sessions"
                        ),
                    }))
                } else {
                    Err(self.api.failure(&resp))
                };
            }
            _ => {}
        }
        let u: User = self.api.json(&resp)?;
        Ok(Lookup::Found(Subject {
            display: u.primary_email.unwrap_or_else(|| user.to_string()),
            id: u.id,
        }))
    }

    async fn revoke(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure> {
        let url = format!(
            "{}/admin/directory/v1/users/{}/signOut",
            self.base,
            enc(&subject.id)
        );
        let resp = self
            .api
            .call(cx, Step::Revoke, &[Expect::Status(404)], |c| {
                c.post(&url).header(CONTENT_LENGTH, "0")
            })
            .await?;
        Ok(if resp.error.is_some() {
            Outcome::UserNotFound
        } else {
            Outcome::Revoked
        })
    }

    async fn test(&self, cx: &CallContext) -> TestReport {
        let mut checks = Vec::new();
        if let Auth::OAuth(tokens) = &self.api.auth {
            checks.push(check(
                "delegation",
                tokens.get(cx, &self.api).await.map(|_| {
                    "domain-wide delegation grants exactly admin.directory.user.readonly and admin.directory.user.security".into()
                }),
            ));
        }
        let admin = Username::parse(&self.admin_subject)
            .map_err(|e| Failure::new(ErrorClass::BadConfig, e.to_string()));
        let lookup = match admin {
            Ok(u) => self.lookup(cx, &u).await,
            Err(f) => Err(f),
        };
        checks.push(check(
            "lookup",
            match lookup {
                Ok(Lookup::Found(s)) => Ok(format!("looked up admin_subject {}", s.display)),
                Ok(Lookup::Settled(o)) => Err(Failure::new(
                    ErrorClass::BadConfig,
                    format!(
                        "looking up admin_subject gave {}: {}",
                        o.label(),
                        o.detail()
                    ),
                )),
                Err(f) => Err(f),
            },
        ));
        TestReport { checks }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserList {
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    #[serde(default)]
    email: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// The Directory API lists the customer's users with
/// `GET /users?customer=my_customer` and a group's members with
/// `GET /groups/{groupKey}/members` (type `USER` only), paged by
/// `pageToken`/`nextPageToken`.
#[async_trait]
impl Directory for Google {
    fn supports(&self, selection: &Selection) -> Result<(), String> {
        match selection {
            Selection::All | Selection::Group(_) => Ok(()),
            other => Err(other.unsupported("Google Workspace", self.name.as_str())),
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
        let token = cursor
            .map(|t| format!("&pageToken={}", enc(t)))
            .unwrap_or_default();
        let Selection::Group(group) = selection else {
            let url = format!(
                "{}/admin/directory/v1/users?customer=my_customer&maxResults=500{token}",
                self.base
            );
            let resp = self
                .api
                .call(cx, Step::Lookup, &[], |c| c.get(&url))
                .await?;
            let page: UserList = self.api.json(&resp)?;
            return Ok(DirectoryPage {
                users: page
                    .users
                    .into_iter()
                    .filter_map(|u| u.primary_email)
                    .collect(),
                next: page.next_page_token.filter(|t| !t.is_empty()),
            });
        };
        let url = format!(
            "{}/admin/directory/v1/groups/{}/members?maxResults=200{token}",
            self.base,
            enc(group)
        );
        let resp = self
            .api
            .call_as(&self.group_auth, cx, Step::Lookup, &[Expect::Status(404)], |c| {
                c.get(&url)
            })
            .await
            .map_err(|mut f| {
                if f.class == ErrorClass::Forbidden {
                    f.message = format!(
                        "Google refused to list the members of {group} ({}); authorize the service account's client ID for admin.directory.group.member.readonly in domain-wide delegation",
                        f.message
                    );
                }
                f
            })?;
        if resp.error.is_some() {
            let mut f = self.api.failure(&resp);
            f.class = ErrorClass::BadConfig;
            f.message = format!("Google Workspace has no group {group:?}");
            return Err(f);
        }
        let page: MemberList = self.api.json(&resp)?;
        Ok(DirectoryPage {
            users: page
                .members
                .into_iter()
                .filter(|m| m.kind.as_deref() == Some("USER"))
                .filter_map(|m| m.email)
                .collect(),
            next: page.next_page_token.filter(|t| !t.is_empty()),
        })
    }
}
