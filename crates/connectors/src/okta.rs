//! Okta: look the person up by login (`GET /api/v1/users/{login}`) and end
//! every Okta session (`DELETE /api/v1/users/{id}/sessions`), optionally with
//! their OAuth tokens. Authenticates with an SSWS API token or an OAuth
//! service app (private_key_jwt), per providers.md §2.

use async_trait::async_trait;
use serde::Deserialize;
use sever_core::{
    CallContext, Connector, ConnectorKey, Directory, DirectoryPage, ErrorClass, Failure,
    InstanceName, Lookup, Outcome, Selection, Step, Subject, TestReport, Username,
};

use crate::http::{absent_user, check, enc, link_rel_next, next_link, Api, ApiError, Auth, Expect};

pub(crate) struct Okta {
    pub name: InstanceName,
    pub base: String,
    pub api: Api,
    pub oauth_tokens: bool,
    pub forget_devices: bool,
}

const NOT_FOUND: Expect = Expect::Code("E0000007");

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    profile: Profile,
}

#[derive(Deserialize, Default)]
struct Profile {
    #[serde(default)]
    login: String,
}

pub(crate) fn explain(e: &ApiError) -> Option<(ErrorClass, String)> {
    let said = e.said();
    Some(match (e.step, e.status, e.code()) {
        (Step::Token, _, "invalid_client") => (
            ErrorClass::Unauthorized,
            format!("Okta rejected the client assertion{said}; check client_id and key_id, and that the service app holds the matching public key"),
        ),
        (Step::Token, _, "invalid_scope") => (
            ErrorClass::Forbidden,
            format!("Okta refused the scopes{said}; grant the service app okta.users.read and okta.users.manage"),
        ),
        (Step::Token, _, "invalid_dpop_proof" | "use_dpop_nonce") => (
            ErrorClass::BadConfig,
            "the Okta service app requires DPoP, which Sever does not send: turn off 'Require Demonstrating Proof of Possession' for it".into(),
        ),
        (_, 401, _) => (
            ErrorClass::Unauthorized,
            format!("Okta rejected the credentials{said}; the API token may be revoked or expired (unused tokens expire after 30 days); create one and update api_token"),
        ),
        (step, 403, _) => (
            ErrorClass::Forbidden,
            format!(
                "Okta refused{said} (the admin behind the token needs {} over this user; Super Admin targets need a Super Admin)",
                if step == Step::Revoke { "okta.users.manage" } else { "okta.users.read" }
            ),
        ),
        _ => return None,
    })
}

impl Okta {
    fn user_url(&self, key: &str) -> String {
        format!("{}/api/v1/users/{}", self.base, enc(key))
    }
}

#[async_trait]
impl Connector for Okta {
    fn instance(&self) -> &InstanceName {
        &self.name
    }

    fn provider(&self) -> ConnectorKey {
        ConnectorKey::Okta
    }

    async fn lookup(&self, cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        let url = self.user_url(user.as_str());
        let resp = self
            .api
            .call(cx, Step::Lookup, &[NOT_FOUND], |c| c.get(&url))
            .await?;
        if resp.error.is_some() {
            return Ok(Lookup::Settled(Outcome::UserNotFound));
        }
        let u: User = self.api.json(&resp)?;
        Ok(Lookup::Found(Subject {
            display: if u.profile.login.is_empty() {
                user.to_string()
            } else {
                u.profile.login
            },
            id: u.id,
        }))
    }

    async fn revoke(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure> {
        let url = format!(
            "{}/sessions?oauthTokens={}&forgetDevices={}",
            self.user_url(&subject.id),
            self.oauth_tokens,
            self.forget_devices
        );
        let resp = self
            .api
            .call(cx, Step::Revoke, &[NOT_FOUND], |c| c.delete(&url))
            .await?;
        Ok(match (resp.error.is_some(), self.oauth_tokens) {
            (true, _) => Outcome::UserNotFound,
            (false, true) => Outcome::TokensRevoked,
            (false, false) => Outcome::Revoked,
        })
    }

    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }

    async fn test(&self, cx: &CallContext) -> TestReport {
        let mut checks = Vec::new();
        match &self.api.auth {
            Auth::OAuth(tokens) => {
                let got = tokens.get(cx, &self.api).await;
                let ok = got.is_ok();
                checks.push(check(
                    "credentials",
                    got.map(|_| "the service app obtained an access token".into()),
                ));
                if let (true, Some(scope)) = (ok, tokens.granted_scope().await) {
                    let extra: Vec<_> = scope
                        .split_whitespace()
                        .filter(|s| !["okta.users.read", "okta.users.manage"].contains(s))
                        .collect();
                    checks.push(check(
                        "least privilege",
                        if extra.is_empty() {
                            Ok("token scopes: okta.users.read okta.users.manage".into())
                        } else {
                            Err(Failure::new(
                                ErrorClass::Forbidden,
                                format!("the token also grants {}; Sever needs only okta.users.read and okta.users.manage", extra.join(" ")),
                            ))
                        },
                    ));
                }
            }
            Auth::Header(_) => {
                let url = format!("{}/api/v1/users/me", self.base);
                let me = self.api.call(cx, Step::Test, &[], |c| c.get(&url)).await;
                checks.push(check(
                    "credentials",
                    me.and_then(|r| self.api.json::<User>(&r)).map(|u| {
                        format!("the API token acts as {} (its admin role bounds what Sever can do; prefer a role limited to user sessions)", u.profile.login)
                    }),
                ));
            }
        }
        let lookup = match absent_user() {
            Ok(u) => self.lookup(cx, &u).await,
            Err(f) => Err(f),
        };
        checks.push(check(
            "lookup",
            lookup.map(|_| "looking up an absent user answers 404 (read permission works)".into()),
        ));
        TestReport { checks }
    }
}

/// Okta lists people with `GET /api/v1/users` and a group's with
/// `GET /api/v1/groups/{groupId}/users`, both paged by `Link: <…>; rel="next"`.
#[async_trait]
impl Directory for Okta {
    fn supports(&self, selection: &Selection) -> Result<(), String> {
        match selection {
            Selection::All | Selection::Group(_) => Ok(()),
            other => Err(other.unsupported("Okta", self.name.as_str())),
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
        let url = match (cursor, selection) {
            (Some(next), _) => next_link(&self.api, &self.base, next)?,
            (None, Selection::Group(g)) => {
                format!("{}/api/v1/groups/{}/users?limit=200", self.base, enc(g))
            }
            (None, _) => format!("{}/api/v1/users?limit=200", self.base),
        };
        let resp = self
            .api
            .call(cx, Step::Lookup, &[NOT_FOUND], |c| c.get(&url))
            .await?;
        if resp.error.is_some() {
            let mut f = self.api.failure(&resp);
            f.class = ErrorClass::BadConfig;
            f.message = format!(
                "Okta has no group with the id {:?} (--group takes the group id, 00g…)",
                match selection {
                    Selection::Group(g) => g.as_str(),
                    _ => "",
                }
            );
            return Err(f);
        }
        let users: Vec<User> = self.api.json(&resp)?;
        Ok(DirectoryPage {
            users: users
                .into_iter()
                .map(|u| u.profile.login)
                .filter(|l| !l.is_empty())
                .collect(),
            next: link_rel_next(&resp.headers),
        })
    }
}
