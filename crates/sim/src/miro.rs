//! Miro Enterprise: `POST /v2/sessions/reset_all`, organization members and the token info.
//!
//! Faithful points a connector must get right: the email goes in the query string, success is
//! 200 with an empty body, a user outside the organization is 404, errors share one
//! `{status, code, message, type:"error"}` shape, and the budget is reported in credits
//! (500 per Level-3 call) through `X-RateLimit-*` headers on every answer.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::demo;
use crate::server::{Api, Cx, Throttle};
use crate::state::{Budget, Class};
use crate::wire::{param, Reply, Req};
use crate::{Provider, Step};

pub(crate) struct Miro;

const JSON: &str = "application/json";
/// Credits one Level-3 call costs.
const CREDITS_PER_CALL: u32 = 500;

fn error(status: u16, code: &str, message: &str) -> Reply {
    let body = json!({"status": status, "code": code, "message": message, "type": "error"});
    Reply::json(status, JSON, &body)
}

fn timestamp(t: std::time::SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn authorize(req: &Req) -> Result<(), Reply> {
    match req.bearer() {
        None | Some("") => Err(error(
            401,
            "tokenNotProvided",
            "No authorization token was found",
        )),
        Some(t) if t == demo::MIRO_TOKEN => Ok(()),
        Some(_) => Err(error(401, "tokenNotFound", "Token not found")),
    }
}

fn member_json(cx: &Cx, i: usize) -> Value {
    let p = &cx.shared.index.people[i];
    let role = if p.admin {
        "organization_internal_admin"
    } else {
        "organization_internal_user"
    };
    json!({
        "id": cx.shared.index.ids[i].miro,
        "email": p.email,
        "active": true,
        "role": role,
        "license": "full",
        "lastActivityAt": timestamp(cx.shared.last_login(i)),
        "licenseAssignedAt": timestamp(cx.shared.created(i)),
        "type": "organization-member",
    })
}

fn reset_all(cx: &Cx, req: &Req) -> Reply {
    if let Err(r) = authorize(req) {
        return r;
    }
    let Some(email) = req.query_param("email").filter(|e| !e.trim().is_empty()) else {
        return error(
            400,
            "invalidParameters",
            "Required request parameter 'email' is not present",
        );
    };
    match cx.shared.index.find(Provider::Miro, email.trim()) {
        Some(i) => {
            cx.shared.mark_revoked(Provider::Miro, i);
            Reply::empty(200)
        }
        None => error(404, "notFound", "User not found"),
    }
}

fn members(cx: &Cx, req: &Req, org: &str) -> Reply {
    if let Err(r) = authorize(req) {
        return r;
    }
    if org != demo::MIRO_ORG_ID {
        return error(404, "notFound", "Organization not found");
    }
    let q = req.query_params();
    if let Some(emails) = param(&q, "emails") {
        let emails: Vec<&str> = emails
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if emails.len() > 10 {
            return error(400, "invalidParameters", "Maximum emails size is 10");
        }
        let found: Vec<Value> = emails
            .iter()
            .filter_map(|e| cx.shared.index.find(Provider::Miro, e))
            .map(|i| member_json(cx, i))
            .collect();
        return Reply::json(200, JSON, &Value::Array(found));
    }
    let limit = match param(&q, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return error(400, "invalidParameters", "limit must be between 1 and 100"),
    };
    let all = cx.shared.index.members(Provider::Miro);
    let start = match param(&q, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(cursor) => match all
            .iter()
            .position(|&i| cx.shared.index.ids[i].miro == cursor)
        {
            Some(pos) => pos + 1,
            None => return error(400, "invalidParameters", "Invalid cursor"),
        },
    };
    let page: Vec<usize> = all.iter().skip(start).take(limit).copied().collect();
    let mut body = json!({
        "limit": limit,
        "size": page.len(),
        "data": page.iter().map(|&i| member_json(cx, i)).collect::<Vec<_>>(),
        "type": "cursor-list",
    });
    if start + page.len() < all.len() {
        if let Some(&last) = page.last() {
            body["cursor"] = json!(cx.shared.index.ids[last].miro);
        }
    }
    Reply::json(200, JSON, &body)
}

fn token_info(req: &Req) -> Reply {
    if let Err(r) = authorize(req) {
        return r;
    }
    let body = json!({
        "type": "oauth-token",
        "createdBy": {"type": "user", "name": "Sever Installer", "id": "3458764500000000001"},
        "organization": {"type": "organization", "name": "Example Corp", "id": demo::MIRO_ORG_ID},
        "scopes": ["boards:read", "organizations:read", "organizations:teams:read", "sessions:delete"],
        "team": {"type": "team", "name": "Example Corp", "id": "3458764500000000100"},
        "user": {"type": "user", "name": "Sever Installer", "id": "3458764500000000001"},
    });
    Reply::json(200, JSON, &body)
}

impl Api for Miro {
    fn classify(&self, cx: &Cx, req: &Req) -> Class {
        let about = |step: Step, key: &str| {
            let value = req.query_param(key).unwrap_or_default();
            let subject = value.split(',').next().unwrap_or("").trim().to_string();
            let person = cx.shared.index.find(Provider::Miro, &subject);
            Class::new(step, "api").about(&subject, person)
        };
        match req.segs().as_slice() {
            ["v2", "sessions", "reset_all"] => about(Step::Revoke, "email"),
            ["v2", "orgs", _, "members"] => about(Step::Lookup, "emails"),
            _ => Class::new(Step::Any, "api"),
        }
    }

    fn handle(&self, cx: &Cx, req: &Req) -> Reply {
        let method = req.method.as_str();
        let not_allowed = || {
            let m = format!("Request method '{method}' is not supported");
            error(405, "methodNotAllowed", &m)
        };
        match (method, req.segs().as_slice()) {
            ("POST", ["v2", "sessions", "reset_all"]) => reset_all(cx, req),
            ("GET", ["v2", "orgs", org, "members"]) => members(cx, req, org),
            ("GET", ["v1", "oauth-token"]) => token_info(req),
            (
                _,
                ["v2", "sessions", "reset_all"]
                | ["v2", "orgs", _, "members"]
                | ["v1", "oauth-token"],
            ) => not_allowed(),
            _ => error(404, "notFound", "Not Found"),
        }
    }

    fn status_fault(&self, _cx: &Cx, _req: &Req, _class: &Class, status: u16) -> Reply {
        match status {
            400 => error(400, "invalidParameters", "Invalid parameters"),
            401 => error(401, "tokenNotFound", "Token not found"),
            403 => error(
                403,
                "forbiddenAccess",
                "Access is forbidden: the user is not a Company Admin",
            ),
            404 => error(404, "notFound", "User not found"),
            429 => too_many(),
            503 => error(503, "serviceUnavailable", "Service unavailable"),
            other => error(other, "internalError", "Internal server error"),
        }
    }

    fn throttled(&self, _cx: &Cx, _req: &Req, _class: &Class, t: &Throttle) -> Reply {
        if t.injected {
            too_many().with("retry-after", t.retry_after())
        } else {
            too_many()
        }
    }

    fn decorate(&self, _cx: &Cx, _req: &Req, reply: &mut Reply, budget: &Budget) {
        let credits = |calls: u32| calls.saturating_mul(CREDITS_PER_CALL).to_string();
        reply.set("x-ratelimit-limit", credits(budget.limit));
        reply.set("x-ratelimit-remaining", credits(budget.remaining));
        reply.set("x-ratelimit-reset", budget.reset.to_string());
    }
}

fn too_many() -> Reply {
    let body = json!({
        "status": 429,
        "code": "tooManyRequests",
        "message": "Request rate limit exceed",
        "context": null,
        "type": "error",
    });
    Reply::json(429, JSON, &body)
}
