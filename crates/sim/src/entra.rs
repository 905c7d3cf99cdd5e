//! Microsoft Entra ID: the v2.0 token endpoint (client credentials with a secret) and the
//! Microsoft Graph v1.0 user, revoke and risky-user endpoints.
//!
//! Faithful points a connector must get right: `$filter` string literals double their quotes
//! (`O''Neil`) and guest UPNs need `#` sent as `%23` (an unencoded `#` starts the URL fragment,
//! which never reaches the server); no match is `200 value: []`, not 404; several users can
//! match one `or` filter; `revokeSignInSessions` answers 200 `{"value":true}` although
//! documented as 204; permissions are the token's `roles`; `userType` and `accountEnabled` are
//! returned only when `$select`ed; 429 carries `Retry-After`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::demo;
use crate::jwt;
use crate::odata::{filter_people, parse_filter};
use crate::server::{Api, Cx, Throttle};
use crate::state::{Budget, Class};
use crate::wire::{self, param, Reply, Req};
use crate::{Provider, Step};

pub(crate) struct Entra;

const JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const TOKEN_JSON: &str = "application/json; charset=utf-8";
const METADATA: &str = "https://graph.microsoft.com/v1.0/$metadata";
const READ: [&str; 4] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const REVOKE: [&str; 3] = [
    "User.RevokeSessions.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const RISK_READ: [&str; 2] = [
    "IdentityRiskyUser.Read.All",
    "IdentityRiskyUser.ReadWrite.All",
];
const GROUP_READ: [&str; 4] = [
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const USER_PROPS: [&str; 15] = [
    "id",
    "displayName",
    "givenName",
    "surname",
    "userPrincipalName",
    "mail",
    "userType",
    "accountEnabled",
    "signInSessionsValidFromDateTime",
    "createdDateTime",
    "businessPhones",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
];
/// What Graph returns for a user when no `$select` is given.
const DEFAULT_PROPS: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

fn graph_time(t: std::time::SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn client_request_id(cx: &Cx, req: &Req) -> String {
    req.header("client-request-id")
        .map_or_else(|| cx.request_id.clone(), str::to_string)
}

fn graph_error(cx: &Cx, req: &Req, status: u16, code: &str, message: &str) -> Reply {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": cx.request_id,
            "client-request-id": client_request_id(cx, req),
        },
    }});
    Reply::json(status, JSON, &body)
}

fn not_found(cx: &Cx, req: &Req, key: &str) -> Reply {
    let message = format!(
        "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
    );
    graph_error(cx, req, 404, "Request_ResourceNotFound", &message)
}

fn bad_request(cx: &Cx, req: &Req, code: &str, message: &str) -> Reply {
    graph_error(cx, req, 400, code, message)
}

/// An error from the login endpoint, shaped like Entra's (`AADSTS…` codes).
fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    let timestamp = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace.to_string(),
        "correlation_id": correlation.to_string(),
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    Reply::json(status, TOKEN_JSON, &body)
}

fn known_tenant(cx: &Cx, tenant: &str) -> bool {
    let domain = &cx.shared.index.domain;
    let initial = format!(
        "{}.onmicrosoft.com",
        domain.split('.').next().unwrap_or(domain)
    );
    [demo::ENTRA_TENANT_ID, domain.as_str(), initial.as_str()]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tenant))
}

fn token(cx: &Cx, req: &Req, tenant: &str) -> Reply {
    if !known_tenant(cx, tenant) {
        let d = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are \
             signing into the correct cloud. Check with your subscription administrator, this may \
             happen if there are no active subscriptions for the tenant."
        );
        return aad_error(400, "invalid_request", 90002, &d);
    }
    let form = req.form();
    let grant = param(&form, "grant_type").unwrap_or("");
    if grant != "client_credentials" {
        let d = format!("The app requested an unsupported grant type '{grant}'.");
        return aad_error(400, "unsupported_grant_type", 70003, &d);
    }
    let client = param(&form, "client_id").unwrap_or("");
    if !client.eq_ignore_ascii_case(demo::ENTRA_CLIENT_ID) {
        let d = format!(
            "Application with identifier '{client}' was not found in the directory '{tenant}'. This \
             can happen if the application has not been installed by the administrator of the \
             tenant or consented to by any user in the tenant. You may have sent your \
             authentication request to the wrong tenant."
        );
        return aad_error(400, "unauthorized_client", 700016, &d);
    }
    match param(&form, "client_secret") {
        None => {
            let d = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
            return aad_error(401, "invalid_client", 7000216, d);
        }
        Some(secret) if secret != demo::ENTRA_CLIENT_SECRET => {
            let d = format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the \
                 client secret value, not the client secret ID, for a secret added to app '{client}'."
            );
            return aad_error(401, "invalid_client", 7000215, &d);
        }
        Some(_) => {}
    }
    let scope = match param(&form, "scope") {
        Some(s) if !s.trim().is_empty() => s.trim(),
        _ => {
            let d = "The request body must contain the following parameter: 'scope'.";
            return aad_error(400, "invalid_request", 900144, d);
        }
    };
    if !scope.ends_with("/.default") || scope.contains(' ') {
        let d = format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a \
             scope value with /.default suffixed to the resource identifier (application ID URI)."
        );
        return aad_error(400, "invalid_scope", 1002012, &d);
    }
    let roles = cx.shared.opts.entra_roles.clone();
    let now = jwt::now();
    let lifetime = i64::try_from(cx.shared.opts.token_lifetime_secs).unwrap_or(i64::MAX);
    let access_token = jwt::mint(
        &json!({"typ": "JWT", "alg": "RS256", "kid": "sim-entra-signing-key"}),
        &json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", demo::ENTRA_TENANT_ID),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(lifetime),
            "appid": demo::ENTRA_CLIENT_ID,
            "idtyp": "app",
            "oid": "5c8e3d1a-2b4f-4e6a-9c7d-0a1b2c3d4e5f",
            "roles": roles,
            "tid": demo::ENTRA_TENANT_ID,
            "ver": "1.0",
        }),
    );
    let expires_in = cx
        .shared
        .issue_token(Provider::Entra, roles, None, access_token.clone());
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    });
    Reply::json(200, TOKEN_JSON, &body)
}

fn authorize(cx: &Cx, req: &Req, needed: &[&str]) -> Result<(), Reply> {
    let unauthorized = |message: &str| {
        graph_error(cx, req, 401, "InvalidAuthenticationToken", message).with(
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", \
             client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    };
    let token = match req.bearer() {
        Some(t) if !t.is_empty() => t,
        _ => return Err(unauthorized("Access token is empty.")),
    };
    let issued = match cx.shared.token(Provider::Entra, token) {
        Some(t) => t,
        None if token.matches('.').count() != 2 => {
            return Err(unauthorized(
                "IDX14100: JWT is not well formed, there are no dots (.).",
            ))
        }
        None => return Err(unauthorized("Access token validation failure.")),
    };
    if issued.expired() {
        return Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if !issued.has_any(needed) {
        return Err(graph_error(
            cx,
            req,
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    Ok(())
}

fn user_value(cx: &Cx, i: usize, prop: &str) -> Option<Value> {
    let p = &cx.shared.index.people[i];
    let (given, surname) = p.names();
    let v = match prop {
        "id" => json!(cx.shared.index.ids[i].graph),
        "displayName" => json!(p.display_name),
        "givenName" => json!(given),
        "surname" => json!(surname),
        "userPrincipalName" => json!(p.upn()),
        "mail" => json!(p.mail()),
        "userType" => json!(if p.entra_guest { "Guest" } else { "Member" }),
        "accountEnabled" => json!(true),
        "createdDateTime" => json!(graph_time(cx.shared.created(i))),
        "signInSessionsValidFromDateTime" => {
            let at = cx.shared.last_revoked(Provider::Entra, i);
            json!(graph_time(at.unwrap_or_else(|| cx.shared.created(i))))
        }
        "businessPhones" => json!([]),
        "jobTitle" | "mobilePhone" | "officeLocation" | "preferredLanguage" => Value::Null,
        _ => return None,
    };
    Some(v)
}

fn user_json(cx: &Cx, i: usize, select: &[&str]) -> Value {
    let props: &[&str] = if select.is_empty() {
        &DEFAULT_PROPS
    } else {
        select
    };
    let obj: Map<String, Value> = props
        .iter()
        .filter_map(|prop| user_value(cx, i, prop).map(|v| (prop.to_string(), v)))
        .collect();
    Value::Object(obj)
}

/// Canonical property names from `$select`; `Err` carries the unknown one.
fn parse_select(req: &Req) -> Result<Vec<&'static str>, String> {
    let Some(select) = req.query_param("$select") else {
        return Ok(Vec::new());
    };
    select
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            USER_PROPS
                .iter()
                .find(|p| p.eq_ignore_ascii_case(s))
                .copied()
                .ok_or_else(|| s.to_string())
        })
        .collect()
}

fn users_context(select: &[&str], entity: bool) -> String {
    let projection = if select.is_empty() {
        String::new()
    } else {
        format!("({})", select.join(","))
    };
    let suffix = if entity { "/$entity" } else { "" };
    format!("{METADATA}#users{projection}{suffix}")
}

fn select_or_reply(cx: &Cx, req: &Req) -> Result<Vec<&'static str>, Reply> {
    parse_select(req).map_err(|prop| {
        let m = format!("Could not find a property named '{prop}' on type 'microsoft.graph.user'.");
        bad_request(cx, req, "BadRequest", &m)
    })
}

fn list_users(cx: &Cx, req: &Req) -> Reply {
    if let Err(r) = authorize(cx, req, &READ) {
        return r;
    }
    let select = match select_or_reply(cx, req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = req.query_params();
    let top = match param(&q, "$top") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => n,
            _ => {
                let m = format!(
                    "Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive."
                );
                return bad_request(cx, req, "Request_BadRequest", &m);
            }
        },
    };
    let skip = match param(&q, "$skiptoken") {
        None => 0,
        Some(t) => match decode_skiptoken(t) {
            Some(n) => n,
            None => {
                return bad_request(
                    cx,
                    req,
                    "Request_BadRequest",
                    "Invalid paging token specified.",
                )
            }
        },
    };
    let mut people = cx.shared.index.members(Provider::Entra);
    let filter = param(&q, "$filter");
    if let Some(filter) = filter {
        let clauses = match parse_filter(filter) {
            Ok(c) => c,
            Err(m) => {
                return bad_request(
                    cx,
                    req,
                    "BadRequest",
                    &format!("Invalid filter clause: {m}"),
                )
            }
        };
        let value_of = |i: usize, field: &str| {
            let canonical = ["userPrincipalName", "mail", "id", "userType", "displayName"]
                .into_iter()
                .find(|f| f.eq_ignore_ascii_case(field))?;
            user_value(cx, i, canonical).and_then(|v| v.as_str().map(str::to_string))
        };
        people = match filter_people(&people, &clauses, value_of) {
            Ok(p) => p,
            Err(field) => {
                let m = format!(
                    "Unsupported or invalid query filter clause specified for property '{field}' of resource 'User'."
                );
                return bad_request(cx, req, "Request_UnsupportedQuery", &m);
            }
        };
    }
    let page: Vec<Value> = people
        .iter()
        .skip(skip)
        .take(top)
        .map(|&i| user_json(cx, i, &select))
        .collect();
    let mut body = json!({
        "@odata.context": users_context(&select, false),
        "value": page,
    });
    if people.len() > skip + top {
        let mut link = format!(
            "{}/v1.0/users?$top={top}&$skiptoken={}",
            req.base(),
            encode_skiptoken(skip + top)
        );
        if !select.is_empty() {
            link.push_str(&format!("&$select={}", select.join(",")));
        }
        if let Some(f) = filter {
            link.push_str(&format!(
                "&$filter={}",
                utf8_percent_encode(f, NON_ALPHANUMERIC)
            ));
        }
        body["@odata.nextLink"] = json!(link);
    }
    Reply::json(200, JSON, &body)
}

fn encode_skiptoken(offset: usize) -> String {
    format!(
        "RFNwdAIAAQAAA{}",
        URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
    )
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix("RFNwdAIAAQAAA")?)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

fn get_user(cx: &Cx, req: &Req, key: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &READ) {
        return r;
    }
    let select = match select_or_reply(cx, req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match cx.shared.index.find(Provider::Entra, key) {
        Some(i) => {
            let mut body = user_json(cx, i, &select);
            body["@odata.context"] = json!(users_context(&select, true));
            Reply::json(200, JSON, &body)
        }
        None => not_found(cx, req, key),
    }
}

fn revoke(cx: &Cx, req: &Req, key: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &REVOKE) {
        return r;
    }
    match cx.shared.index.find(Provider::Entra, key) {
        Some(i) => {
            cx.shared.mark_revoked(Provider::Entra, i);
            let body = json!({"@odata.context": format!("{METADATA}#Edm.Boolean"), "value": true});
            Reply::json(200, JSON, &body)
        }
        None => not_found(cx, req, key),
    }
}

fn risky_users(cx: &Cx, req: &Req) -> Reply {
    if let Err(r) = authorize(cx, req, &RISK_READ) {
        return r;
    }
    let at_risk: Vec<usize> = cx
        .shared
        .index
        .members(Provider::Entra)
        .into_iter()
        .filter(|&i| cx.shared.index.people[i].risk_level != "none")
        .collect();
    let risk_state = |i: usize| {
        if cx.shared.last_revoked(Provider::Entra, i).is_some() {
            "remediated"
        } else {
            "atRisk"
        }
    };
    let value_of = |i: usize, field: &str| {
        let p = &cx.shared.index.people[i];
        match field {
            "riskLevel" => Some(p.risk_level.clone()),
            "riskState" => Some(risk_state(i).to_string()),
            "userPrincipalName" => Some(p.upn().to_string()),
            "id" => Some(cx.shared.index.ids[i].graph.clone()),
            _ => None,
        }
    };
    let people = match req.query_param("$filter") {
        None => at_risk,
        Some(filter) => {
            let clauses = match parse_filter(&filter) {
                Ok(c) => c,
                Err(m) => {
                    return bad_request(
                        cx,
                        req,
                        "BadRequest",
                        &format!("Invalid filter clause: {m}"),
                    )
                }
            };
            match filter_people(&at_risk, &clauses, value_of) {
                Ok(p) => p,
                Err(field) => {
                    let m = format!("Could not find a property named '{field}' on type 'microsoft.graph.riskyUser'.");
                    return bad_request(cx, req, "BadRequest", &m);
                }
            }
        }
    };
    let (top, skip) = match page_params(cx, req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let more = people.len() > skip + top;
    let value: Vec<Value> = people
        .iter()
        .skip(skip)
        .take(top)
        .map(|&i| {
            let p = &cx.shared.index.people[i];
            json!({
                "id": cx.shared.index.ids[i].graph,
                "isDeleted": false,
                "isProcessing": false,
                "riskLastUpdatedDateTime": graph_time(cx.shared.last_login(i)),
                "riskLevel": p.risk_level,
                "riskState": risk_state(i),
                "riskDetail": "none",
                "userDisplayName": p.display_name,
                "userPrincipalName": p.upn(),
            })
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{METADATA}#identityProtection/riskyUsers"),
        "value": value,
    });
    if more {
        body["@odata.nextLink"] = json!(next_link(
            req,
            "identityProtection/riskyUsers",
            top,
            skip + top
        ));
    }
    Reply::json(200, JSON, &body)
}

/// `$top` (1..=999, default 100) and the offset a `$skiptoken` carries.
fn page_params(cx: &Cx, req: &Req) -> Result<(usize, usize), Reply> {
    let q = req.query_params();
    let top = match param(&q, "$top") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => n,
            _ => {
                let m = format!(
                    "Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive."
                );
                return Err(bad_request(cx, req, "Request_BadRequest", &m));
            }
        },
    };
    let skip = match param(&q, "$skiptoken") {
        None => 0,
        Some(t) => decode_skiptoken(t).ok_or_else(|| {
            bad_request(
                cx,
                req,
                "Request_BadRequest",
                "Invalid paging token specified.",
            )
        })?,
    };
    Ok((top, skip))
}

/// The `@odata.nextLink` of `path`: the request's own query (but its
/// `$skiptoken`) plus the next page's token, as Graph builds it.
fn next_link(req: &Req, path: &str, top: usize, offset: usize) -> String {
    let mut link = format!("{}/v1.0/{path}?", req.base());
    for (name, value) in req.query_params() {
        if name == "$skiptoken" || name == "$top" {
            continue;
        }
        link.push_str(&format!(
            "{name}={}&",
            utf8_percent_encode(&value, NON_ALPHANUMERIC)
        ));
    }
    link.push_str(&format!(
        "$top={top}&$skiptoken={}",
        encode_skiptoken(offset)
    ));
    link
}

/// `GET /groups/{id}/members`: directory objects of several types; users
/// carry `@odata.type: #microsoft.graph.user`, nested groups
/// `#microsoft.graph.group`. Needs `GroupMember.Read.All` (or broader).
fn group_members(cx: &Cx, req: &Req, group_id: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &GROUP_READ) {
        return r;
    }
    let Some(group) = cx.shared.index.group(Provider::Entra, group_id) else {
        return not_found(cx, req, group_id);
    };
    let (top, skip) = match page_params(cx, req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut members: Vec<Value> = cx
        .shared
        .index
        .group_members(Provider::Entra, &group)
        .into_iter()
        .map(|i| {
            let p = &cx.shared.index.people[i];
            json!({
                "@odata.type": "#microsoft.graph.user",
                "id": cx.shared.index.ids[i].graph,
                "displayName": p.display_name,
                "userPrincipalName": p.upn(),
                "mail": p.mail(),
            })
        })
        .collect();
    for child in cx.shared.index.subgroups_of(&group) {
        members.push(json!({
            "@odata.type": "#microsoft.graph.group",
            "id": crate::directory::group_key(Provider::Entra, child, &cx.shared.index.domain),
            "displayName": child,
            "mail": null,
        }));
    }
    let more = members.len() > skip + top;
    let value: Vec<Value> = members.into_iter().skip(skip).take(top).collect();
    let mut body = json!({
        "@odata.context": format!("{METADATA}#directoryObjects"),
        "value": value,
    });
    if more {
        body["@odata.nextLink"] = json!(next_link(
            req,
            &format!("groups/{group_id}/members"),
            top,
            skip + top
        ));
    }
    Reply::json(200, JSON, &body)
}

/// The person a `$filter` is about: the first literal, as a UPN, id or mail.
fn filter_subject(cx: &Cx, req: &Req) -> Option<(String, Option<usize>)> {
    let clauses = parse_filter(&req.query_param("$filter")?).ok()?;
    let (_, value) = clauses.into_iter().next()?;
    let person = cx
        .shared
        .index
        .find(Provider::Entra, &value)
        .or_else(|| cx.shared.index.by_mail(&value).first().copied());
    Some((value, person))
}

impl Api for Entra {
    fn classify(&self, cx: &Cx, req: &Req) -> Class {
        let find = |key: &str| cx.shared.index.find(Provider::Entra, key);
        match req.segs().as_slice() {
            [_, "oauth2", "v2.0", "token"] => Class::new(Step::Token, "token"),
            ["v1.0", "users"] => match filter_subject(cx, req) {
                Some((subject, person)) => {
                    Class::new(Step::Lookup, "graph").about(&subject, person)
                }
                None => Class::new(Step::Any, "graph"),
            },
            ["v1.0", "users", key] => Class::new(Step::Lookup, "graph").about(key, find(key)),
            ["v1.0", "users", key, "revokeSignInSessions"] => {
                Class::new(Step::Revoke, "graph").about(key, find(key))
            }
            _ => Class::new(Step::Any, "graph"),
        }
    }

    fn handle(&self, cx: &Cx, req: &Req) -> Reply {
        let method = req.method.as_str();
        let not_allowed = || {
            graph_error(
                cx,
                req,
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request uri.",
            )
        };
        match (method, req.segs().as_slice()) {
            ("POST", [tenant, "oauth2", "v2.0", "token"]) => token(cx, req, tenant),
            (_, [_, "oauth2", "v2.0", "token"]) => not_allowed(),
            ("GET", ["v1.0", "users"]) => list_users(cx, req),
            ("GET", ["v1.0", "users", key]) => get_user(cx, req, key),
            ("POST", ["v1.0", "users", key, "revokeSignInSessions"]) => revoke(cx, req, key),
            (_, ["v1.0", "users", _, "revokeSignInSessions"]) => not_allowed(),
            ("GET", ["v1.0", "identityProtection", "riskyUsers"]) => risky_users(cx, req),
            ("GET", ["v1.0", "groups", id, "members"]) => group_members(cx, req, id),
            // Graph names the first segment it cannot resolve, with a 400.
            (_, ["v1.0", rest @ ..]) => {
                let segment = rest.last().copied().unwrap_or("");
                let m = format!("Resource not found for the segment '{segment}'.");
                bad_request(cx, req, "BadRequest", &m)
            }
            _ => graph_error(cx, req, 400, "BadRequest", "Invalid version."),
        }
    }

    fn status_fault(&self, cx: &Cx, req: &Req, class: &Class, status: u16) -> Reply {
        if class.step == Step::Token {
            return match status {
                400 => aad_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.",
                ),
                401 => aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided.",
                ),
                _ => {
                    let (error, _) = wire::oauth_error_for(status);
                    aad_error(
                        status,
                        error,
                        50000,
                        "There was an error issuing a token or an issue with our sign-in service.",
                    )
                }
            };
        }
        let (code, message) = match status {
            400 => ("BadRequest", "Invalid request."),
            401 => (
                "InvalidAuthenticationToken",
                "Access token validation failure.",
            ),
            403 => (
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            404 => return not_found(cx, req, class.subject.as_deref().unwrap_or("")),
            429 => ("TooManyRequests", "Too many requests."),
            500 => ("generalException", "General exception while processing."),
            502 => ("BadGateway", "Bad gateway."),
            503 => (
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504 => ("GatewayTimeout", "Gateway timeout."),
            _ => ("UnknownError", ""),
        };
        graph_error(cx, req, status, code, message)
    }

    fn throttled(&self, cx: &Cx, req: &Req, _class: &Class, t: &Throttle) -> Reply {
        graph_error(cx, req, 429, "TooManyRequests", "Too many requests.")
            .with("retry-after", t.retry_after())
    }

    fn decorate(&self, cx: &Cx, req: &Req, reply: &mut Reply, _budget: &Budget) {
        if req.segments.first().is_some_and(|s| s == "v1.0") {
            reply.set("request-id", cx.request_id.clone());
            reply.set("client-request-id", client_request_id(cx, req));
        } else {
            reply.set("x-ms-request-id", cx.request_id.clone());
        }
    }
}
