//! Okta: the management API's user and session endpoints, and the org authorization server's
//! token endpoint (client credentials with `private_key_jwt`).
//!
//! Faithful points a connector must get right: the login goes URL-encoded in the path, the
//! session revoke takes the `00u…` id only (a login there is a 404), answers 204 with no body,
//! and rate limits are signalled by `X-Rate-Limit-Reset` alone — never `Retry-After`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::demo;
use crate::jwt::{self, JwtError};
use crate::server::{Api, Cx, Throttle};
use crate::state::{Budget, Class, Issued};
use crate::wire::{self, param, Reply, Req};
use crate::{Provider, Step};

pub(crate) struct Okta;

const JSON: &str = "application/json";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Scopes granted to the demo service app.
const GRANTED: [&str; 2] = ["okta.users.read", "okta.users.manage"];
const READ: [&str; 2] = ["okta.users.read", "okta.users.manage"];
const MANAGE: [&str; 1] = ["okta.users.manage"];

fn error(status: u16, code: &str, summary: &str) -> Reply {
    error_with_causes(status, code, summary, &[])
}

fn error_with_causes(status: u16, code: &str, summary: &str, causes: &[String]) -> Reply {
    let causes: Vec<Value> = causes.iter().map(|c| json!({"errorSummary": c})).collect();
    let body = json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": format!("oae{}", wire::random_alnum(19)),
        "errorCauses": causes,
    });
    Reply::json(status, JSON, &body)
}

fn not_found(key: &str) -> Reply {
    error(
        404,
        "E0000007",
        &format!("Not found: Resource not found: {key} (User)"),
    )
}

fn forbidden() -> Reply {
    error(
        403,
        "E0000006",
        "You do not have permission to perform the requested action",
    )
}

fn invalid_token() -> Reply {
    error(401, "E0000011", "Invalid token provided")
}

fn rate_limited() -> Reply {
    error(
        429,
        "E0000047",
        "API call exceeded rate limit due to too many requests.",
    )
}

fn not_allowed(allow: &str) -> Reply {
    error(
        405,
        "E0000022",
        "The endpoint does not support the provided HTTP method",
    )
    .with("allow", allow)
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

enum Caller {
    /// An SSWS admin API token: every permission.
    Admin,
    App(Issued),
}

fn authorize(cx: &Cx, req: &Req, needed: &[&str]) -> Result<Caller, Reply> {
    let caller = match req.auth() {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("SSWS") && token == demo::OKTA_API_TOKEN =>
        {
            Caller::Admin
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("Bearer") => {
            match cx.shared.token(Provider::Okta, token) {
                Some(t) if !t.expired() => Caller::App(t),
                _ => return Err(invalid_token()),
            }
        }
        _ => return Err(invalid_token()),
    };
    if let Caller::App(t) = &caller {
        if !t.has_any(needed) {
            let challenge = format!(
                "Bearer authorization_uri=\"{}/oauth2/v1/authorize\", realm=\"IdpMyAccountAPI\", \
                 scope=\"{}\", error=\"insufficient_scope\", error_description=\"The access token \
                 provided does not contain the required scopes.\", resource=\"{}\"",
                req.base(),
                needed.join(" "),
                req.path
            );
            return Err(forbidden().with("www-authenticate", challenge));
        }
    }
    Ok(caller)
}

fn user_json(cx: &Cx, req: &Req, i: usize) -> Value {
    let p = &cx.shared.index.people[i];
    let id = &cx.shared.index.ids[i].okta;
    let (first, last) = p.names();
    let created = timestamp(cx.shared.created(i));
    let href = |suffix: &str| format!("{}/api/v1/users/{id}{suffix}", req.base());
    json!({
        "id": id,
        "status": "ACTIVE",
        "created": created,
        "activated": created,
        "statusChanged": created,
        "lastLogin": timestamp(cx.shared.last_login(i)),
        "lastUpdated": created,
        "passwordChanged": created,
        "type": {"id": "oty1simdefaulttype001"},
        "profile": {
            "firstName": first,
            "lastName": last,
            "mobilePhone": null,
            "secondEmail": null,
            "login": p.login(),
            "email": p.email,
        },
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {
            "self": {"href": href("")},
            "suspend": {"href": href("/lifecycle/suspend"), "method": "POST"},
            "resetPassword": {"href": href("/lifecycle/reset_password"), "method": "POST"},
            "deactivate": {"href": href("/lifecycle/deactivate"), "method": "POST"},
            "type": {"href": format!("{}/api/v1/meta/types/user/oty1simdefaulttype001", req.base())},
        },
    })
}

fn get_user(cx: &Cx, req: &Req, key: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &READ) {
        return r;
    }
    match cx.shared.index.find(Provider::Okta, key) {
        Some(i) => {
            let etag = format!("\"{}\"", cx.shared.index.ids[i].okta);
            Reply::json(200, JSON, &user_json(cx, req, i)).with("etag", etag)
        }
        None => not_found(key),
    }
}

fn me(cx: &Cx, req: &Req) -> Reply {
    match authorize(cx, req, &READ) {
        Err(r) => r,
        // A service app acts for no user.
        Ok(Caller::App(_)) => not_found("me"),
        Ok(Caller::Admin) => {
            let members = cx.shared.index.members(Provider::Okta);
            let admin = members
                .iter()
                .copied()
                .find(|&i| cx.shared.index.people[i].admin)
                .or(members.first().copied());
            match admin {
                Some(i) => Reply::json(200, JSON, &user_json(cx, req, i)),
                None => not_found("me"),
            }
        }
    }
}

/// `filter`/`search` expressions: `field eq "value"` clauses joined with ` or `.
fn matches_expression(cx: &Cx, i: usize, expr: &str) -> Option<bool> {
    let p = &cx.shared.index.people[i];
    let mut any = false;
    for clause in expr.split(" or ") {
        let (field, value) = clause.trim().split_once(" eq ")?;
        let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        let actual = match field.trim() {
            "profile.login" => p.login(),
            "profile.email" => p.email.as_str(),
            "id" => cx.shared.index.ids[i].okta.as_str(),
            "status" => "ACTIVE",
            _ => return None,
        };
        any |= actual.eq_ignore_ascii_case(value);
    }
    Some(any)
}

fn list_users(cx: &Cx, req: &Req) -> Reply {
    if let Err(r) = authorize(cx, req, &READ) {
        return r;
    }
    let q = req.query_params();
    let limit = match param(&q, "limit").map(str::parse::<usize>) {
        None => 200,
        Some(Ok(n)) => n.clamp(1, 200),
        Some(Err(_)) => return error(400, "E0000001", "Api validation failed: limit"),
    };
    let mut people = cx.shared.index.members(Provider::Okta);
    if let Some(expr) = param(&q, "filter").or(param(&q, "search")) {
        let mut kept = Vec::new();
        for i in people {
            match matches_expression(cx, i, expr) {
                Some(true) => kept.push(i),
                Some(false) => {}
                None => return error(400, "E0000031", "Invalid search criteria."),
            }
        }
        people = kept;
    }
    if let Some(after) = param(&q, "after") {
        let ids = &cx.shared.index.ids;
        if let Some(pos) = people.iter().position(|&i| ids[i].okta == after) {
            people.drain(..=pos);
        }
    }
    let more = people.len() > limit;
    people.truncate(limit);
    let users: Vec<Value> = people.iter().map(|&i| user_json(cx, req, i)).collect();
    let base = format!("{}/api/v1/users", req.base());
    let mut reply = Reply::json(200, JSON, &Value::Array(users))
        .with("link", format!("<{base}?limit={limit}>; rel=\"self\""));
    if let (true, Some(&last)) = (more, people.last()) {
        let after = &cx.shared.index.ids[last].okta;
        reply.set(
            "link",
            format!("<{base}?after={after}&limit={limit}>; rel=\"next\""),
        );
    }
    reply
}

/// `GET /api/v1/groups/{groupId}/users`: the group's users, paged like the user list
/// (`limit` up to 1000, `after` the last id, `Link: <…>; rel="next"`).
fn group_users(cx: &Cx, req: &Req, group_id: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &READ) {
        return r;
    }
    let Some(group) = cx.shared.index.group(Provider::Okta, group_id) else {
        return error(
            404,
            "E0000007",
            &format!("Not found: Resource not found: {group_id} (UserGroup)"),
        );
    };
    let q = req.query_params();
    let limit = match param(&q, "limit").map(str::parse::<usize>) {
        None => 1000,
        Some(Ok(n)) => n.clamp(1, 1000),
        Some(Err(_)) => return error(400, "E0000001", "Api validation failed: limit"),
    };
    let mut people = cx.shared.index.group_members(Provider::Okta, &group);
    if let Some(after) = param(&q, "after") {
        let ids = &cx.shared.index.ids;
        if let Some(pos) = people.iter().position(|&i| ids[i].okta == after) {
            people.drain(..=pos);
        }
    }
    let more = people.len() > limit;
    people.truncate(limit);
    let users: Vec<Value> = people.iter().map(|&i| user_json(cx, req, i)).collect();
    let base = format!("{}/api/v1/groups/{group_id}/users", req.base());
    let mut reply = Reply::json(200, JSON, &Value::Array(users))
        .with("link", format!("<{base}?limit={limit}>; rel=\"self\""));
    if let (true, Some(&last)) = (more, people.last()) {
        let after = &cx.shared.index.ids[last].okta;
        reply.set(
            "link",
            format!("<{base}?after={after}&limit={limit}>; rel=\"next\""),
        );
    }
    reply
}

fn revoke_sessions(cx: &Cx, req: &Req, id: &str) -> Reply {
    if let Err(r) = authorize(cx, req, &MANAGE) {
        return r;
    }
    for (name, value) in req.query_params() {
        if (name == "oauthTokens" || name == "forgetDevices") && value != "true" && value != "false"
        {
            return error_with_causes(
                400,
                "E0000001",
                &format!("Api validation failed: {name}"),
                &[format!("{name}: '{value}' is not a valid boolean")],
            );
        }
    }
    // Only the immutable id works here; a login in its place is simply not found.
    let person = cx
        .shared
        .index
        .find(Provider::Okta, id)
        .filter(|&i| cx.shared.index.ids[i].okta == id);
    match person {
        Some(i) => {
            cx.shared.mark_revoked(Provider::Okta, i);
            Reply::empty(204)
        }
        None => not_found(id),
    }
}

fn token(cx: &Cx, req: &Req) -> Reply {
    let form = req.form();
    if param(&form, "grant_type") != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server. \
             Configured grant types: [client_credentials].",
        );
    }
    let client_auth_failed = || {
        oauth_error(
            401,
            "invalid_client",
            "Client authentication failed. Either the client or the client credentials are invalid.",
        )
    };
    let assertion = match (
        param(&form, "client_assertion_type"),
        param(&form, "client_assertion"),
    ) {
        (Some(JWT_BEARER), Some(a)) => a,
        _ => return client_auth_failed(),
    };
    if param(&form, "client_id").is_some_and(|c| c != demo::OKTA_CLIENT_ID) {
        return client_auth_failed();
    }
    let invalid = |d: &str| oauth_error(401, "invalid_client", d);
    let claims = match jwt::verify_rs256(assertion, demo::OKTA_PUBLIC_KEY_PEM) {
        Ok((header, _))
            if header
                .kid
                .as_deref()
                .is_some_and(|k| k != demo::OKTA_KEY_ID) =>
        {
            return invalid("The client_assertion token has an invalid kid.");
        }
        Ok((_, claims)) => claims,
        Err(JwtError::Signature) => return invalid("The client_assertion signature is invalid."),
        Err(JwtError::Algorithm) => {
            return invalid("The client_assertion token has an unsupported signing algorithm.")
        }
        Err(JwtError::Malformed) => return invalid("The client_assertion token is malformed."),
    };
    let client = Some(demo::OKTA_CLIENT_ID);
    if jwt::str_claim(&claims, "iss") != client || jwt::str_claim(&claims, "sub") != client {
        return invalid(
            "The 'iss' and 'sub' claims of the client_assertion must be the client_id.",
        );
    }
    if !jwt::str_claim(&claims, "aud").is_some_and(|a| a.ends_with("/oauth2/v1/token")) {
        return invalid(
            "The audience claim for client_assertion must be the endpoint invoked for the request.",
        );
    }
    let now = jwt::now();
    match jwt::time_claim(&claims, "exp") {
        Some(exp) if exp <= now => return invalid("The client_assertion token is expired."),
        Some(exp) if exp > now + 3600 + 60 => {
            return invalid("The client_assertion token has an expiration too far into the future.")
        }
        Some(_) => {}
        None => return invalid("The client_assertion token must contain an 'exp' claim."),
    }
    if let Some(jti) = jwt::str_claim(&claims, "jti") {
        if !cx.shared.first_use_of_jti(jti) {
            return invalid("The client_assertion token has already been used.");
        }
    }
    let scopes: Vec<String> = param(&form, "scope")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return oauth_error(
            400,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    if scopes.iter().any(|s| !GRANTED.contains(&s.as_str())) {
        return oauth_error(
            400,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    }
    let lifetime = i64::try_from(cx.shared.opts.token_lifetime_secs).unwrap_or(i64::MAX);
    let access_token = jwt::mint(
        &json!({"kid": "sim-okta-org-as", "alg": "RS256"}),
        &json!({
            "ver": 1,
            "jti": format!("AT.{}", wire::random_alnum(43)),
            "iss": req.base(),
            "aud": req.base(),
            "iat": now,
            "exp": now.saturating_add(lifetime),
            "cid": demo::OKTA_CLIENT_ID,
            "scp": scopes,
            "sub": demo::OKTA_CLIENT_ID,
        }),
    );
    let scope = scopes.join(" ");
    let expires_in = cx
        .shared
        .issue_token(Provider::Okta, scopes, None, access_token.clone());
    Reply::json(
        200,
        JSON,
        &json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_token": access_token,
            "scope": scope,
        }),
    )
    .with("cache-control", "no-cache, no-store")
    .with("pragma", "no-cache")
}

impl Api for Okta {
    fn classify(&self, cx: &Cx, req: &Req) -> Class {
        let find = |key: &str| cx.shared.index.find(Provider::Okta, key);
        match req.segs().as_slice() {
            ["oauth2", "v1", "token"] => Class::new(Step::Token, "token"),
            ["api", "v1", "users", "me"] => Class::new(Step::Lookup, "api"),
            ["api", "v1", "users", key] => Class::new(Step::Lookup, "api").about(key, find(key)),
            ["api", "v1", "users", id, "sessions"] => {
                Class::new(Step::Revoke, "api").about(id, find(id))
            }
            _ => Class::new(Step::Any, "api"),
        }
    }

    fn handle(&self, cx: &Cx, req: &Req) -> Reply {
        let method = req.method.as_str();
        match (method, req.segs().as_slice()) {
            ("POST", ["oauth2", "v1", "token"]) => token(cx, req),
            (_, ["oauth2", "v1", "token"]) => not_allowed("POST"),
            ("GET", ["api", "v1", "users"]) => list_users(cx, req),
            ("GET", ["api", "v1", "groups", group, "users"]) => group_users(cx, req, group),
            ("GET", ["api", "v1", "users", "me"]) => me(cx, req),
            ("GET", ["api", "v1", "users", key]) => get_user(cx, req, key),
            ("DELETE", ["api", "v1", "users", id, "sessions"]) => revoke_sessions(cx, req, id),
            (_, ["api", "v1", "users", ..]) if req.segments.len() <= 5 => {
                not_allowed("GET, DELETE")
            }
            _ => error(
                404,
                "E0000007",
                &format!("Not found: Resource not found: {} (Resource)", req.path),
            ),
        }
    }

    fn status_fault(&self, _cx: &Cx, _req: &Req, class: &Class, status: u16) -> Reply {
        if class.step == Step::Token {
            let (code, description) = wire::oauth_error_for(status);
            return oauth_error(status, code, description);
        }
        match status {
            400 => error(400, "E0000001", "Api validation failed"),
            401 => invalid_token(),
            403 => forbidden(),
            404 => not_found(class.subject.as_deref().unwrap_or("")),
            429 => rate_limited(),
            _ => error(status, "E0000009", "Internal Server Error"),
        }
    }

    fn throttled(&self, _cx: &Cx, _req: &Req, _class: &Class, _t: &Throttle) -> Reply {
        rate_limited()
    }

    fn decorate(&self, _cx: &Cx, _req: &Req, reply: &mut Reply, budget: &Budget) {
        reply.set("x-rate-limit-limit", budget.limit.to_string());
        reply.set("x-rate-limit-remaining", budget.remaining.to_string());
        reply.set("x-rate-limit-reset", budget.reset.to_string());
        reply.set("x-okta-request-id", wire::random_alnum(26));
    }
}
