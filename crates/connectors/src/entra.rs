//! Microsoft Entra ID through Microsoft Graph: find the person by UPN or mail
//! with a `$filter` query and call `revokeSignInSessions`, with an app-only
//! token from the client-credentials flow (providers.md §3).
//!
//! Guests are settled as not applicable: their sessions live in their home
//! tenant, and revoking here would report success for nothing.

use async_trait::async_trait;
use reqwest::header::CONTENT_LENGTH;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sever_core::{
    CallContext, Connector, ConnectorKey, Directory, DirectoryPage, ErrorClass, Failure,
    InstanceName, Lookup, Outcome, Selection, Step, Subject, TestReport, Username,
};

use crate::http::{absent_user, check, enc, next_link, Api, ApiError, Auth, Expect};
use crate::token::jwt_claims;

pub(crate) struct Entra {
    pub name: InstanceName,
    pub base: String,
    pub api: Api,
}

#[derive(Deserialize)]
struct Users {
    value: Vec<User>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
}

/// Application permissions that allow the lookup, and the revoke.
const READ_ROLES: [&str; 4] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const REVOKE_ROLES: [&str; 3] = [
    "User.RevokeSessions.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
/// Roles that work but grant far more than Sever needs.
const BROAD_ROLES: [&str; 2] = ["User.ReadWrite.All", "Directory.ReadWrite.All"];

pub(crate) fn explain(e: &ApiError) -> Option<(ErrorClass, String)> {
    let said = e.said();
    let msg = e.message.as_deref().unwrap_or("").trim_end_matches('.');
    Some(match (e.step, e.code()) {
        (_, "AADSTS7000215") => (
            ErrorClass::Unauthorized,
            "Entra rejected the client secret (AADSTS7000215): create a new secret and update client_secret".into(),
        ),
        (_, "AADSTS7000222") => (
            ErrorClass::Unauthorized,
            "the Entra client secret has expired (AADSTS7000222): create a new secret and update client_secret".into(),
        ),
        (_, "AADSTS700016") => (
            ErrorClass::BadConfig,
            "Entra has no application with this client_id in the tenant (AADSTS700016): check client_id and tenant_id, and that an admin consented to the app there".into(),
        ),
        (_, "AADSTS90002" | "AADSTS900023") => (
            ErrorClass::BadConfig,
            format!("Entra does not know this tenant ({}): check tenant_id", e.code()),
        ),
        (Step::Token, "invalid_client" | "unauthorized_client") => (
            ErrorClass::Unauthorized,
            format!("Entra rejected the app credentials{said}"),
        ),
        (step, "Authorization_RequestDenied") => (
            ErrorClass::Forbidden,
            if step == Step::Revoke {
                format!("Entra refused: {msg} (grant the app User.RevokeSessions.All; targets holding admin roles also need a privileged role)")
            } else {
                format!("Entra refused: {msg} (grant the app User.Read.All)")
            },
        ),
        (_, _) if e.status == 401 => (
            ErrorClass::Unauthorized,
            format!("Graph rejected the access token{said}"),
        ),
        _ => return None,
    })
}

#[async_trait]
impl Connector for Entra {
    fn instance(&self) -> &InstanceName {
        &self.name
    }

    fn provider(&self) -> ConnectorKey {
        ConnectorKey::Entra
    }

    async fn lookup(&self, cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        // OData string literals escape a quote by doubling it (O''Neil).
        let v = user.as_str().replace('\'', "''");
        let filter = format!("userPrincipalName eq '{v}' or mail eq '{v}'");
        let url = format!(
            "{}/users?$filter={}&$select=id,userPrincipalName,mail,userType,accountEnabled",
            self.base,
            enc(&filter)
        );
        let resp = self
            .api
            .call(cx, Step::Lookup, &[], |c| c.get(&url))
            .await?;
        let mut users = self.api.json::<Users>(&resp)?.value;
        if users.len() > 1 {
            let upns: Vec<_> = users
                .iter()
                .map(|u| u.user_principal_name.as_deref().unwrap_or(&u.id))
                .collect();
            let mut f = Failure::new(
                ErrorClass::AmbiguousMatch,
                format!(
                    "{} Entra users match '{user}' by UPN or mail: {}; revoke by the exact UPN",
                    users.len(),
                    upns.join(", ")
                ),
            );
            f.http_status = Some(resp.status);
            f.provider_request_id = resp.request_id.clone();
            return Err(f);
        }
        let Some(u) = users.pop() else {
            return Ok(Lookup::Settled(Outcome::UserNotFound));
        };
        let upn = u.user_principal_name.unwrap_or_else(|| user.to_string());
        if u.user_type.as_deref() == Some("Guest") || upn.to_ascii_uppercase().contains("#EXT#") {
            return Ok(Lookup::Settled(Outcome::NotApplicable {
                message: "guest account: its sessions live in its home tenant; revoke there".into(),
            }));
        }
        Ok(Lookup::Found(Subject {
            id: u.id,
            display: upn,
        }))
    }

    async fn revoke(&self, cx: &CallContext, subject: &Subject) -> Result<Outcome, Failure> {
        let url = format!(
            "{}/users/{}/revokeSignInSessions",
            self.base,
            enc(&subject.id)
        );
        let resp = self
            .api
            .call(
                cx,
                Step::Revoke,
                &[Expect::Code("Request_ResourceNotFound")],
                |c| c.post(&url).header(CONTENT_LENGTH, "0"),
            )
            .await?;
        // Documented as 204, answered as 200 {"value":true}: any 2xx will do.
        Ok(if resp.error.is_some() {
            Outcome::UserNotFound
        } else {
            Outcome::Revoked
        })
    }

    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }

    async fn test(&self, cx: &CallContext) -> TestReport {
        let mut checks = Vec::new();
        if let Auth::OAuth(tokens) = &self.api.auth {
            match tokens.get(cx, &self.api).await {
                Err(f) => checks.push(check("credentials", Err(f))),
                Ok((token, _)) => {
                    checks.push(check(
                        "credentials",
                        Ok("the app obtained a Graph token".into()),
                    ));
                    let roles: Vec<String> = jwt_claims(token.expose_secret())
                        .and_then(|c| serde_json::from_value(c["roles"].clone()).ok())
                        .unwrap_or_default();
                    let has = |set: &[&str]| roles.iter().any(|r| set.contains(&r.as_str()));
                    let mut missing = Vec::new();
                    if !has(&READ_ROLES) {
                        missing.push("User.Read.All");
                    }
                    if !has(&REVOKE_ROLES) {
                        missing.push("User.RevokeSessions.All");
                    }
                    checks.push(check(
                        "permissions",
                        if missing.is_empty() {
                            Ok(format!("application permissions: {}", roles.join(", ")))
                        } else {
                            Err(Failure::new(
                                ErrorClass::Forbidden,
                                format!("the app lacks {} (grant them as application permissions and give admin consent)", missing.join(" and ")),
                            ))
                        },
                    ));
                    let broad: Vec<_> = roles
                        .iter()
                        .filter(|r| BROAD_ROLES.contains(&r.as_str()))
                        .map(String::as_str)
                        .collect();
                    checks.push(check(
                        "least privilege",
                        if broad.is_empty() {
                            Ok("no broader-than-needed permissions".into())
                        } else {
                            Err(Failure::new(
                                ErrorClass::Forbidden,
                                format!("the app holds {}, which is more than Sever needs; use User.Read.All and User.RevokeSessions.All instead", broad.join(", ")),
                            ))
                        },
                    ));
                }
            }
        }
        let lookup = match absent_user() {
            Ok(u) => self.lookup(cx, &u).await,
            Err(f) => Err(f),
        };
        checks.push(check(
            "lookup",
            lookup.map(|_| "a user lookup by UPN/mail works".into()),
        ));
        TestReport { checks }
    }
}

/// One page of a Graph collection: users, risky users or group members.
#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    value: Vec<ListedUser>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct ListedUser {
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(rename = "userPrincipalName", default)]
    user_principal_name: Option<String>,
}

/// Graph lists people with `GET /users`, risky users with
/// `GET /identityProtection/riskyUsers?$filter=riskLevel eq '…'` and a
/// group's members with `GET /groups/{id}/members` (users only), each paged
/// by `@odata.nextLink`.
#[async_trait]
impl Directory for Entra {
    fn supports(&self, _selection: &Selection) -> Result<(), String> {
        Ok(())
    }

    async fn page(
        &self,
        cx: &CallContext,
        selection: &Selection,
        cursor: Option<&str>,
    ) -> Result<DirectoryPage, Failure> {
        let url = match (cursor, selection) {
            (Some(next), _) => next_link(&self.api, &self.base, next)?,
            (None, Selection::All) => format!(
                "{}/users?$select=id,userPrincipalName,mail&$top=999",
                self.base
            ),
            (None, Selection::Risky(level)) => format!(
                "{}/identityProtection/riskyUsers?$filter={}",
                self.base,
                enc(&format!("riskLevel eq '{}'", level.as_str()))
            ),
            (None, Selection::Group(g)) => format!(
                "{}/groups/{}/members?$select=id,userPrincipalName&$top=999",
                self.base,
                enc(g)
            ),
        };
        let resp = self
            .api
            .call(cx, Step::Lookup, &[Expect::Status(404)], |c| c.get(&url))
            .await
            .map_err(|mut f| {
                if f.class == ErrorClass::Forbidden {
                    let perm = match selection {
                        Selection::All => "User.Read.All",
                        Selection::Risky(_) => {
                            "IdentityRiskyUser.Read.All (an Entra ID P2 feature)"
                        }
                        Selection::Group(_) => "GroupMember.Read.All",
                    };
                    f.message = format!(
                        "Entra refused to list {}: grant the app {perm}",
                        selection.label()
                    );
                }
                f
            })?;
        if resp.error.is_some() {
            let mut f = self.api.failure(&resp);
            f.class = ErrorClass::BadConfig;
            f.message = match selection {
                Selection::Group(g) => format!(
                    "Entra has no group with the id {g:?} (--group takes the group's object id)"
                ),
                _ => format!("Entra answered 404 listing {}", selection.label()),
            };
            return Err(f);
        }
        let page: Listed = self.api.json(&resp)?;
        let users = page
            .value
            .into_iter()
            .filter(|u| match selection {
                // Members may be groups, devices or service principals.
                Selection::Group(_) => u.odata_type.as_deref() == Some("#microsoft.graph.user"),
                _ => true,
            })
            .filter_map(|u| u.user_principal_name)
            .filter(|u| !u.is_empty())
            .collect();
        Ok(DirectoryPage {
            users,
            next: page.next_link,
        })
    }
}
