//! Miro (Enterprise plan): `POST /v2/sessions/reset_all?email=` ends every
//! session of the org member with that email (providers.md §6).
//!
//! The reset is keyed on the email, but Sever first looks the person up in the
//! organization (`GET /v2/orgs/{org_id}/members?emails=`), so someone who is
//! not a member is reported as `user_not_found` without a destructive call and
//! a preview can tell. The org id comes from the config or, once per process,
//! from `GET /v1/oauth-token`.

use async_trait::async_trait;
use reqwest::header::CONTENT_LENGTH;
use serde::Deserialize;
use sever_core::{
    CallContext, Connector, ConnectorKey, Directory, DirectoryPage, ErrorClass, Failure,
    InstanceName, Lookup, Outcome, Selection, Step, Subject, TestReport, Username,
};

use crate::http::{check, enc, Api, ApiError, Expect};

pub(crate) struct Miro {
    pub name: InstanceName,
    pub base: String,
    pub api: Api,
    pub org_id: tokio::sync::OnceCell<String>,
}

#[derive(Deserialize)]
struct TokenInfo {
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    organization: Option<Organization>,
}

#[derive(Deserialize)]
struct Organization {
    id: String,
}

/// With `emails=` Miro answers a bare array; its spec also allows the paged
/// `{data: [...]}` shape of the listing, so both are accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Members {
    List(Vec<Member>),
    Page { data: Vec<Member> },
}

#[derive(Deserialize)]
struct Member {
    email: String,
    #[serde(default)]
    id: String,
}

impl Miro {
    async fn token_info(&self, cx: &CallContext, step: Step) -> Result<TokenInfo, Failure> {
        let url = format!("{}/v1/oauth-token", self.base);
        let resp = self.api.call(cx, step, &[], |c| c.get(&url)).await?;
        self.api.json::<TokenInfo>(&resp)
    }

    async fn org_id(&self, cx: &CallContext) -> Result<&str, Failure> {
        self.org_id
            .get_or_try_init(|| async {
                self.token_info(cx, Step::Lookup)
                    .await?
                    .organization
                    .map(|o| o.id)
                    .ok_or_else(|| {
                        Failure::new(
                            ErrorClass::BadConfig,
                            "Miro's token info names no organization; set org_id (an Enterprise org) in the connector",
                        )
                    })
            })
            .await
            .map(String::as_str)
    }
}

pub(crate) fn explain(e: &ApiError) -> Option<(ErrorClass, String)> {
    let said = e.said();
    Some(match e.status {
        401 => (
            ErrorClass::Unauthorized,
            format!("Miro rejected the token{said}; it may have expired or been revoked; issue a new one and update token"),
        ),
        403 => (
            ErrorClass::Forbidden,
            format!("Miro refused{said}; session reset needs a Company Admin token with sessions:delete on an Enterprise plan"),
        ),
        _ => return None,
    })
}

#[async_trait]
impl Connector for Miro {
    fn instance(&self) -> &InstanceName {
        &self.name
    }

    fn provider(&self) -> ConnectorKey {
        ConnectorKey::Miro
    }

    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }

    async fn lookup(&self, cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        if !user.is_email() {
            return Ok(Lookup::Settled(Outcome::NotApplicable {
                message: format!("Miro finds people by email; '{user}' is not one"),
            }));
        }
        let org = self.org_id(cx).await?;
        let url = format!(
            "{}/v2/orgs/{}/members?emails={}",
            self.base,
            enc(org),
            enc(user.as_str())
        );
        let resp = self
            .api
            .call(cx, Step::Lookup, &[], |c| c.get(&url))
            .await?;
        let members = match self.api.json::<Members>(&resp)? {
            Members::List(m) | Members::Page { data: m } => m,
        };
        Ok(
            match members
                .into_iter()
                .find(|m| m.email.eq_ignore_ascii_case(user.as_str()))
            {
                // The reset is keyed on the email.
                Some(m) => Lookup::Found(Subject {
                    id: m.email,
                    display: m.id,
                }),
                None => Lookup::Settled(Outcome::UserNotFound),
            },
        )
    }

    async fn revoke(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure> {
        let url = format!(
            "{}/v2/sessions/reset_all?email={}",
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
        let info = self.token_info(cx, Step::Test).await;
        let ok = info.is_ok();
        let mut checks = vec![check(
            "credentials",
            info.as_ref()
                .map(|_| "the token is valid".to_string())
                .map_err(Clone::clone),
        )];
        if let (true, Ok(info)) = (ok, info) {
            checks.push(check(
                "scopes",
                if ["organizations:read", "sessions:delete"]
                    .iter()
                    .all(|need| info.scopes.iter().any(|s| s == need))
                {
                    Ok(format!("token scopes: {}", info.scopes.join(" ")))
                } else {
                    Err(Failure::new(
                        ErrorClass::Forbidden,
                        format!(
                            "the token needs organizations:read and sessions:delete (it has: {}); reinstall the app with those scopes as a Company Admin",
                            info.scopes.join(" ")
                        ),
                    ))
                },
            ));
        }
        TestReport { checks }
    }
}

#[derive(Deserialize)]
struct MemberPage {
    #[serde(default)]
    data: Vec<Member>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Miro lists the organization's members with
/// `GET /v2/orgs/{org_id}/members?limit=100&cursor=` (an empty or absent
/// `cursor` ends it). Miro has no groups or risk levels Sever can read.
#[async_trait]
impl Directory for Miro {
    fn supports(&self, selection: &Selection) -> Result<(), String> {
        match selection {
            Selection::All => Ok(()),
            other => Err(other.unsupported("Miro", self.name.as_str())),
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
        let org = self.org_id(cx).await?;
        let mut url = format!("{}/v2/orgs/{}/members?limit=100", self.base, enc(org));
        if let Some(c) = cursor {
            url.push_str(&format!("&cursor={}", enc(c)));
        }
        let resp = self
            .api
            .call(cx, Step::Lookup, &[], |c| c.get(&url))
            .await?;
        let page: MemberPage = self.api.json(&resp)?;
        Ok(DirectoryPage {
            users: page.data.into_iter().map(|m| m.email).collect(),
            next: page.cursor.filter(|c| !c.is_empty()),
        })
    }
}
