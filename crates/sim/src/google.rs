//! Google Workspace: the OAuth token endpoint for service accounts with domain-wide delegation,
//! and the Admin SDK Directory API's users get, list and signOut.
//!
//! Faithful points a connector must get right: the JWT assertion is verified (key id,
//! signature, issuer, audience, one-hour lifetime, delegated scopes, an impersonated admin);
//! scopes are enforced per call; a user outside the customer's domain is 403, not 404;
//! `signOut` answers 204 with an empty body; 429 comes without `Retry-After`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::demo;
use crate::jwt::{self, JwtError};
use crate::server::{Api, Cx, Throttle};
use crate::state::{Class, Issued};
use crate::wire::{self, param, Reply, Req};
use crate::{Provider, Step};

pub(crate) struct Google;

const JSON: &str = "application/json; charset=UTF-8";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const READONLY: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const SECURITY: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
const GROUP_MEMBER_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
/// Scopes that may list a group's members.
const GROUP_READ: [&str; 4] = [
    GROUP_MEMBER_READONLY,
    "https://www.googleapis.com/auth/admin.directory.group.member",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group",
];
/// Scopes the demo service account's client id is delegated in the Admin console.
const DELEGATED: [&str; 3] = [READONLY, SECURITY, GROUP_MEMBER_READONLY];
const SHORT_LIVED: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
     reasonable timeframe. Check your iat and exp values in the JWT claim.";

fn error(code: u16, message: &str, reason: &str, status: Option<&str>) -> Reply {
    let mut body = json!({"error": {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
    }});
    if let Some(status) = status {
        body["error"]["status"] = json!(status);
    }
    Reply::json(code, JSON, &body)
}

fn auth_error() -> Reply {
    let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                   login cookie or other valid authentication credential. See \
                   https://developers.google.com/identity/sign-in/web/devconsole-project.";
    let body = json!({"error": {
        "code": 401,
        "message": message,
        "errors": [{
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        }],
        "status": "UNAUTHENTICATED",
    }});
    Reply::json(401, JSON, &body).with(
        "www-authenticate",
        "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
    )
}

fn forbidden() -> Reply {
    error(
        403,
        "Not Authorized to access this resource/api",
        "forbidden",
        None,
    )
}

fn not_found() -> Reply {
    error(404, "Resource Not Found: userKey", "notFound", None)
}

fn html(status: u16, title: &str, text: &str) -> Reply {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error {status} ({title})!!1</title>\n  \
         <p><b>{status}.</b> <ins>That’s an error.</ins>\n  <p>{text}  <ins>That’s all we know.</ins>\n"
    );
    Reply::text(status, "text/html; charset=UTF-8", body)
}

fn oauth_error(status: u16, code: &str, description: &str) -> Reply {
    Reply::json(
        status,
        JSON,
        &json!({"error": code, "error_description": description}),
    )
}

fn timestamp(t: std::time::SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn token(cx: &Cx, req: &Req) -> Reply {
    let form = req.form();
    let grant = param(&form, "grant_type").unwrap_or("");
    if grant != JWT_GRANT {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let Some(assertion) = param(&form, "assertion") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let invalid_grant = |d: &str| oauth_error(400, "invalid_grant", d);
    let claims = match jwt::verify_rs256(assertion, demo::GOOGLE_PUBLIC_KEY_PEM) {
        Ok((header, _))
            if header
                .kid
                .as_deref()
                .is_some_and(|k| k != demo::GOOGLE_PRIVATE_KEY_ID) =>
        {
            return invalid_grant("Invalid JWT Signature.");
        }
        Ok((_, claims)) => claims,
        Err(JwtError::Signature | JwtError::Algorithm) => {
            return invalid_grant("Invalid JWT Signature.")
        }
        Err(JwtError::Malformed) => return invalid_grant("Invalid JWT: Malformed token."),
    };
    if jwt::str_claim(&claims, "iss") != Some(demo::GOOGLE_CLIENT_EMAIL) {
        return invalid_grant("Invalid grant: account not found");
    }
    if !jwt::str_claim(&claims, "aud").is_some_and(|a| a.ends_with("/token")) {
        return invalid_grant(
            "Invalid JWT: Failed audience check. The expected value was https://oauth2.googleapis.com/token",
        );
    }
    let now = jwt::now();
    match (
        jwt::time_claim(&claims, "iat"),
        jwt::time_claim(&claims, "exp"),
    ) {
        (Some(iat), Some(exp)) if exp > now && exp - iat <= 3600 && iat <= now + 60 => {}
        _ => return invalid_grant(SHORT_LIVED),
    }
    let scopes: Vec<String> = jwt::str_claim(&claims, "scope")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return oauth_error(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    if scopes.iter().any(|s| !DELEGATED.contains(&s.as_str())) {
        return oauth_error(
            401,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not \
             authorized for any of the scopes requested.",
        );
    }
    let subject = match jwt::str_claim(&claims, "sub") {
        None => None,
        Some(sub) => match cx.shared.index.find(Provider::Google, sub) {
            Some(i) => Some(i),
            None => return invalid_grant("Invalid email or User ID"),
        },
    };
    let access_token = format!("ya29.c.{}", wire::random_alnum(120));
    let expires_in = cx
        .shared
        .issue_token(Provider::Google, scopes, subject, access_token.clone());
    let body =
        json!({"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"});
    Reply::json(200, JSON, &body)
}

/// Token, then scopes, then the impersonated admin's privilege, in Google's order.
fn authorize(cx: &Cx, req: &Req, needed: &[&str]) -> Result<Issued, Reply> {
    let issued = req
        .bearer()
        .and_then(|t| cx.shared.token(Provider::Google, t))
        .filter(|t| !t.expired())
        .ok_or_else(auth_error)?;
    if !issued.has_any(needed) {
        let challenge = format!(
            "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\", scope=\"{}\"",
            needed.join(" ")
        );
        let body = json!({"error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}],
            "status": "PERMISSION_DENIED",
        }});
        return Err(Reply::json(403, JSON, &body).with("www-authenticate", challenge));
    }
    let is_admin = issued
        .subject
        .is_some_and(|i| cx.shared.index.people[i].admin);
    if !is_admin {
        return Err(forbidden());
    }
    Ok(issued)
}

/// The user a `userKey` names; users of other domains are not the customer's to see.
fn resolve(cx: &Cx, key: &str) -> Result<usize, Reply> {
    if let Some(i) = cx.shared.index.find(Provider::Google, key) {
        return Ok(i);
    }
    match key.rsplit_once('@') {
        Some((_, domain)) if !domain.eq_ignore_ascii_case(&cx.shared.index.domain) => {
            Err(forbidden())
        }
        _ => Err(not_found()),
    }
}

fn user_json(cx: &Cx, i: usize) -> Value {
    let p = &cx.shared.index.people[i];
    let id = &cx.shared.index.ids[i].google;
    let (given, family) = p.names();
    json!({
        "kind": "admin#directory#user",
        "id": id,
        "etag": format!("\"sim-{id}\""),
        "primaryEmail": p.email,
        "name": {"givenName": given, "familyName": family, "fullName": p.display_name},
        "isAdmin": p.admin,
        "isDelegatedAdmin": false,
        "lastLoginTime": timestamp(cx.shared.last_login(i)),
        "creationTime": timestamp(cx.shared.created(i)),
        "agreedToTerms": true,
        "suspended": false,
        "archived": false,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "emails": [{"address": p.email, "primary": true}],
        "customerId": "C03sim0demo",
        "orgUnitPath": "/",
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": false,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": true,
    })
}

fn get_user(cx: &Cx, req: &Req, key: &str) -> Reply {
    let found = authorize(cx, req, &[READONLY, SECURITY, USER]).and_then(|_| resolve(cx, key));
    match found {
        Ok(i) => Reply::json(200, JSON, &user_json(cx, i)),
        Err(r) => r,
    }
}

fn sign_out(cx: &Cx, req: &Req, key: &str) -> Reply {
    match authorize(cx, req, &[SECURITY]).and_then(|_| resolve(cx, key)) {
        Ok(i) => {
            cx.shared.mark_revoked(Provider::Google, i);
            Reply::empty(204)
        }
        Err(r) => r,
    }
}

fn list_users(cx: &Cx, req: &Req) -> Reply {
    if let Err(r) = authorize(cx, req, &[READONLY, SECURITY, USER]) {
        return r;
    }
    let q = req.query_params();
    let customer_ok = param(&q, "customer")
        .is_some_and(|c| c == "my_customer" || c == "C03sim0demo")
        || param(&q, "domain").is_some_and(|d| d.eq_ignore_ascii_case(&cx.shared.index.domain));
    if !customer_ok {
        return error(400, "Bad Request", "badRequest", None);
    }
    let max = match param(&q, "maxResults") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                let m = format!("Invalid value '{v}'. Values must be within the range: [1, 500]");
                return error(400, &m, "invalid", None);
            }
        },
    };
    let offset = match param(&q, "pageToken") {
        None => 0,
        Some(t) => match decode_page_token(t) {
            Some(n) => n,
            None => return error(400, "Invalid Input: pageToken", "invalid", None),
        },
    };
    let mut people = cx.shared.index.members(Provider::Google);
    if let Some(query) = param(&q, "query") {
        let wanted = query
            .trim()
            .strip_prefix("email:")
            .map(|e| e.trim_matches('\'').to_lowercase());
        if let Some(wanted) = wanted {
            people.retain(|&i| cx.shared.index.people[i].email.to_lowercase() == wanted);
        }
    }
    let page: Vec<Value> = people
        .iter()
        .skip(offset)
        .take(max)
        .map(|&i| user_json(cx, i))
        .collect();
    let mut body = json!({"kind": "admin#directory#users", "etag": "\"sim-users\""});
    if !page.is_empty() {
        body["users"] = Value::Array(page);
    }
    if people.len() > offset + max {
        body["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(format!("o{}", offset + max)));
    }
    Reply::json(200, JSON, &body)
}

/// `members.list`: a group's direct members (`type` `USER` or `GROUP`), at most 200 a
/// page, paged by `pageToken`/`nextPageToken`.
fn group_members(cx: &Cx, req: &Req, key: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &GROUP_READ) {
        return r;
    }
    let Some(group) = cx.shared.index.group(Provider::Google, key) else {
        return error(404, "Resource Not Found: groupKey", "notFound", None);
    };
    let q = req.query_params();
    let max = match param(&q, "maxResults") {
        None => 200,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(200),
            _ => {
                let m = format!("Invalid value '{v}'. Values must be within the range: [1, 200]");
                return error(400, &m, "invalid", None);
            }
        },
    };
    let offset = match param(&q, "pageToken") {
        None => 0,
        Some(t) => match decode_page_token(t) {
            Some(n) => n,
            None => return error(400, "Invalid Input: pageToken", "invalid", None),
        },
    };
    let ix = &cx.shared.index;
    let mut members: Vec<Value> = ix
        .group_members(Provider::Google, &group)
        .into_iter()
        .map(|i| {
            json!({
                "kind": "admin#directory#member",
                "etag": "\"sim-member\"",
                "id": ix.ids[i].google,
                "email": ix.people[i].email,
                "role": "MEMBER",
                "type": "USER",
                "status": "ACTIVE",
            })
        })
        .collect();
    for child in ix.subgroups_of(&group) {
        members.push(json!({
            "kind": "admin#directory#member",
            "etag": "\"sim-member\"",
            "id": format!("0{}", child.len()),
            "email": crate::directory::group_key(Provider::Google, child, &ix.domain),
            "role": "MEMBER",
            "type": "GROUP",
        }));
    }
    let total = members.len();
    let page: Vec<Value> = members.into_iter().skip(offset).take(max).collect();
    let mut body = json!({"kind": "admin#directory#members", "etag": "\"sim-members\""});
    if !page.is_empty() {
        body["members"] = Value::Array(page);
    }
    if total > offset + max {
        body["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(format!("o{}", offset + max)));
    }
    Reply::json(200, JSON, &body)
}

fn decode_page_token(token: &str) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    raw.strip_prefix('o')?.parse().ok()
}

impl Api for Google {
    fn classify(&self, cx: &Cx, req: &Req) -> Class {
        let find = |key: &str| cx.shared.index.find(Provider::Google, key);
        match req.segs().as_slice() {
            ["token"] => Class::new(Step::Token, "token"),
            ["admin", "directory", "v1", "users", key] => {
                Class::new(Step::Lookup, "directory").about(key, find(key))
            }
            ["admin", "directory", "v1", "users", key, "signOut"] => {
                Class::new(Step::Revoke, "directory").about(key, find(key))
            }
            _ => Class::new(Step::Any, "directory"),
        }
    }

    fn handle(&self, cx: &Cx, req: &Req) -> Reply {
        match (req.method.as_str(), req.segs().as_slice()) {
            ("POST", ["token"]) => token(cx, req),
            ("GET", ["admin", "directory", "v1", "users"]) => list_users(cx, req),
            ("GET", ["admin", "directory", "v1", "groups", key, "members"]) => {
                group_members(cx, req, key)
            }
            ("GET", ["admin", "directory", "v1", "users", key]) => get_user(cx, req, key),
            ("POST", ["admin", "directory", "v1", "users", key, "signOut"]) => {
                sign_out(cx, req, key)
            }
            // Google's front end answers unknown URLs and methods with an HTML page.
            _ => html(
                404,
                "Not Found",
                &format!(
                    "The requested URL <code>{}</code> was not found on this server.",
                    req.path
                ),
            ),
        }
    }

    fn status_fault(&self, _cx: &Cx, _req: &Req, class: &Class, status: u16) -> Reply {
        if class.step == Step::Token {
            let (code, description) = match status {
                400 => ("invalid_grant", "Bad Request"),
                other => wire::oauth_error_for(other),
            };
            return oauth_error(status, code, description);
        }
        match status {
            400 => error(400, "Bad Request", "badRequest", None),
            401 => auth_error(),
            403 => forbidden(),
            404 => not_found(),
            429 => rate_limited(),
            500 => error(500, "Internal error encountered.", "backendError", Some("INTERNAL")),
            502 => html(502, "Server Error", "The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds."),
            503 => error(503, "The service is currently unavailable.", "backendError", Some("UNAVAILABLE")),
            _ => error(status, "Backend Error", "backendError", None),
        }
    }

    fn throttled(&self, _cx: &Cx, _req: &Req, _class: &Class, t: &Throttle) -> Reply {
        let reply = rate_limited();
        if t.injected {
            reply.with("retry-after", t.retry_after())
        } else {
            reply
        }
    }
}

fn rate_limited() -> Reply {
    error(
        429,
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of \
         service 'admin.googleapis.com' for consumer 'project_number:104729385617'.",
        "rateLimitExceeded",
        Some("RESOURCE_EXHAUSTED"),
    )
}
