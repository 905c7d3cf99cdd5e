//! Slack Enterprise Grid: the Web API methods Sever calls (`users.lookupByEmail`,
//! `admin.users.session.reset`/`resetBulk`, `auth.test`, `users.list`).
//!
//! Faithful points a connector must get right: failures are HTTP 200 with `ok:false` and an
//! error code (so the status alone says nothing); arguments may come as a query, a form or a
//! JSON body; the primary owner and bots cannot be reset; `admin.*` needs Grid; rate limits are
//! per method and answered with HTTP 429, `Retry-After` and `error: ratelimited`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::demo;
use crate::server::{Api, Cx, Throttle};
use crate::state::{epoch_secs, Class};
use crate::wire::{self, param, Reply, Req};
use crate::{Provider, Step};

pub(crate) struct Slack;

const JSON: &str = "application/json; charset=utf-8";
const TEAM_ID: &str = "T0SIMTEAM1";
const ENTERPRISE_ID: &str = "E0SIMENT01";
const ENTERPRISE_NAME: &str = "Example Corp";
const INSTALLER_ID: &str = "W0SIMADMIN";
const SCOPES: &str = "users:read,users:read.email,admin.users:read,admin.users:write";

fn ok(extra: Value) -> Reply {
    let mut body = json!({"ok": true});
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    Reply::json(200, JSON, &body)
}

fn fail(code: &str) -> Reply {
    Reply::json(200, JSON, &json!({"ok": false, "error": code}))
}

fn invalid_arguments(message: &str) -> Reply {
    let body = json!({
        "ok": false,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [format!("[ERROR] {message}")]},
    });
    Reply::json(200, JSON, &body)
}

/// Arguments from the query string and a form or JSON body, merged as Slack does.
fn args(req: &Req) -> Result<Vec<(String, String)>, Reply> {
    let mut out = req.query_params();
    if req.is_json() {
        let Some(Value::Object(map)) = req.json_body() else {
            return Err(fail("invalid_json"));
        };
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Array(items) => items
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            out.push((k, s));
        }
    } else if !req.body.is_empty() {
        out.extend(req.form());
    }
    Ok(out)
}

fn authenticate(req: &Req, args: &[(String, String)]) -> Result<(), Reply> {
    // A JSON body cannot carry the token; only the header can.
    let in_args = if req.is_json() {
        None
    } else {
        param(args, "token")
    };
    match req.bearer().or(in_args) {
        None => Err(fail("not_authed")),
        Some(t) if t == demo::SLACK_USER_TOKEN => Ok(()),
        Some(_) => Err(fail("invalid_auth")),
    }
}

fn flag(args: &[(String, String)], name: &str) -> Result<bool, Reply> {
    match param(args, name) {
        None | Some("false") | Some("0") | Some("") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(invalid_arguments(&format!(
            "invalid boolean value '{other}' for field: {name}"
        ))),
    }
}

fn user_json(cx: &Cx, i: usize) -> Value {
    let p = &cx.shared.index.people[i];
    let id = &cx.shared.index.ids[i].slack;
    let name = p.email.split('@').next().unwrap_or(&p.email);
    let owner = p.slack_primary_owner;
    let admin = p.admin || owner;
    let mut user = json!({
        "id": id,
        "team_id": TEAM_ID,
        "name": name,
        "deleted": false,
        "color": "9f69e7",
        "real_name": p.display_name,
        "tz": "America/Los_Angeles",
        "tz_label": "Pacific Daylight Time",
        "tz_offset": -25200,
        "profile": {
            "real_name": p.display_name,
            "display_name": name,
            "email": p.email,
            "team": TEAM_ID,
        },
        "is_admin": admin,
        "is_owner": owner,
        "is_primary_owner": owner,
        "is_restricted": false,
        "is_ultra_restricted": false,
        "is_bot": p.slack_bot,
        "is_app_user": false,
        "updated": epoch_secs(cx.shared.created(i)),
        "is_email_confirmed": !p.slack_bot,
    });
    if cx.shared.opts.slack_grid {
        user["enterprise_user"] = json!({
            "id": id,
            "enterprise_id": ENTERPRISE_ID,
            "enterprise_name": ENTERPRISE_NAME,
            "is_admin": admin,
            "is_owner": owner,
            "is_primary_owner": owner,
            "teams": [TEAM_ID],
        });
    }
    user
}

/// A Slack user id as `admin.*` methods take it: exactly an id, never an email.
fn by_id(cx: &Cx, id: &str) -> Option<usize> {
    cx.shared
        .index
        .find(Provider::Slack, id)
        .filter(|&i| cx.shared.index.ids[i].slack == id)
}

fn lookup_by_email(cx: &Cx, args: &[(String, String)]) -> Reply {
    let Some(email) = param(args, "email").filter(|e| !e.is_empty()) else {
        return invalid_arguments("missing required field: email");
    };
    match cx.shared.index.find(Provider::Slack, email) {
        Some(i) => ok(json!({"user": user_json(cx, i)})),
        None => fail("users_not_found"),
    }
}

fn session_reset(cx: &Cx, args: &[(String, String)]) -> Reply {
    if !cx.shared.opts.slack_grid {
        return fail("feature_not_enabled");
    }
    let Some(user_id) = param(args, "user_id").filter(|u| !u.is_empty()) else {
        return invalid_arguments("missing required field: user_id");
    };
    if let Err(r) = flag(args, "mobile_only").and(flag(args, "web_only")) {
        return r;
    }
    let Some(i) = by_id(cx, user_id) else {
        return fail("user_not_found");
    };
    let p = &cx.shared.index.people[i];
    if p.slack_primary_owner {
        fail("cannot_reset_primary_owner")
    } else if p.slack_bot {
        fail("cannot_reset_bot")
    } else {
        cx.shared.mark_revoked(Provider::Slack, i);
        ok(json!({}))
    }
}

/// `user_ids` as Slack takes it: a JSON array in a JSON body (joined with commas by [`args`]),
/// or in a form either comma-separated or a JSON array as a string.
fn user_ids(raw: &str) -> Result<Vec<String>, Reply> {
    let raw = raw.trim();
    let ids: Vec<String> = if raw.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(raw) {
            Ok(v) => v,
            Err(_) => return Err(invalid_arguments("invalid array for field: user_ids")),
        }
    } else {
        raw.split(',').map(str::to_string).collect()
    };
    Ok(ids
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// `admin.users.session.resetBulk`: asynchronous at Slack, so `ok:true` only says the job was
/// enqueued (the simulator marks the users revoked at once). When some ids cannot be reset
/// (primary owner, bot, no such user) the others are still reset and the answer is
/// `failed_for_some_users`, naming each failed id with its reason in
/// `response_metadata.messages` (Slack says "details in extended comments").
fn session_reset_bulk(cx: &Cx, args: &[(String, String)]) -> Reply {
    if !cx.shared.opts.slack_grid {
        return fail("feature_not_enabled");
    }
    let Some(raw) = param(args, "user_ids") else {
        return invalid_arguments("missing required field: user_ids");
    };
    let ids = match user_ids(raw) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    if ids.is_empty() {
        return invalid_arguments("missing required field: user_ids");
    }
    if ids.len() > 1000 {
        return invalid_arguments(&format!(
            "too many items in field: user_ids ({} given, at most 1000)",
            ids.len()
        ));
    }
    if let Err(r) = flag(args, "mobile_only").and(flag(args, "web_only")) {
        return r;
    }
    let mut failed = Vec::new();
    for id in &ids {
        match by_id(cx, id) {
            None => failed.push(format!("[ERROR] {id}: user_not_found")),
            Some(i) => {
                let p = &cx.shared.index.people[i];
                if p.slack_primary_owner {
                    failed.push(format!("[ERROR] {id}: cannot_reset_primary_owner"));
                } else if p.slack_bot {
                    failed.push(format!("[ERROR] {id}: cannot_reset_bot"));
                } else {
                    cx.shared.mark_revoked(Provider::Slack, i);
                }
            }
        }
    }
    if failed.is_empty() {
        ok(json!({}))
    } else {
        let body = json!({
            "ok": false,
            "error": "failed_for_some_users",
            "response_metadata": {"messages": failed},
        });
        Reply::json(200, JSON, &body)
    }
}

fn users_list(cx: &Cx, args: &[(String, String)]) -> Reply {
    let limit = match param(args, "limit").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n.min(1000),
        Some(Err(_)) => return invalid_arguments("invalid value for field: limit"),
    };
    let members = cx.shared.index.members(Provider::Slack);
    let start = match param(args, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(cursor) => {
            let id = STANDARD
                .decode(cursor)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|s| s.strip_prefix("user:").map(str::to_string));
            let pos = id.and_then(|id| {
                members
                    .iter()
                    .position(|&i| cx.shared.index.ids[i].slack == id)
            });
            match pos {
                Some(p) => p,
                None => return fail("invalid_cursor"),
            }
        }
    };
    let take = if limit == 0 { usize::MAX } else { limit };
    let page: Vec<Value> = members
        .iter()
        .skip(start)
        .take(take)
        .map(|&i| user_json(cx, i))
        .collect();
    let next = members
        .get(start.saturating_add(take))
        .map(|&i| STANDARD.encode(format!("user:{}", cx.shared.index.ids[i].slack)))
        .unwrap_or_default();
    ok(json!({
        "members": page,
        "cache_ts": epoch_secs(std::time::SystemTime::now()),
        "response_metadata": {"next_cursor": next},
    }))
}

fn auth_test() -> Reply {
    ok(json!({
        "url": "https://example-corp.enterprise.slack.com/",
        "team": ENTERPRISE_NAME,
        "user": "sever-installer",
        "team_id": ENTERPRISE_ID,
        "user_id": INSTALLER_ID,
        "enterprise_id": ENTERPRISE_ID,
        "is_enterprise_install": true,
    }))
}

fn method_of(req: &Req) -> Option<&str> {
    match req.segs().as_slice() {
        ["api", method] => Some(method),
        _ => None,
    }
}

impl Api for Slack {
    fn classify(&self, cx: &Cx, req: &Req) -> Class {
        let Some(method) = method_of(req) else {
            return Class::new(Step::Any, "");
        };
        let args = args(req).unwrap_or_default();
        let class = |step: Step, key: &str| {
            let subject = param(&args, key)
                .and_then(|v| v.split(',').next())
                .unwrap_or("");
            let person = cx.shared.index.find(Provider::Slack, subject);
            Class::new(step, method).about(subject, person)
        };
        match method {
            "users.lookupByEmail" => class(Step::Lookup, "email"),
            "admin.users.session.reset" => class(Step::Revoke, "user_id"),
            "admin.users.session.resetBulk" => class(Step::Revoke, "user_ids"),
            _ => Class::new(Step::Any, method),
        }
    }

    fn handle(&self, cx: &Cx, req: &Req) -> Reply {
        let method = method_of(req).unwrap_or("");
        let known = [
            "users.lookupByEmail",
            "admin.users.session.reset",
            "admin.users.session.resetBulk",
            "auth.test",
            "users.list",
        ];
        if !known.contains(&method) {
            let body = json!({"ok": false, "error": "unknown_method", "req_method": method});
            return Reply::json(404, JSON, &body);
        }
        let args = match args(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if let Err(r) = authenticate(req, &args) {
            return r;
        }
        match method {
            "users.lookupByEmail" => lookup_by_email(cx, &args),
            "admin.users.session.reset" => session_reset(cx, &args),
            "admin.users.session.resetBulk" => session_reset_bulk(cx, &args),
            "users.list" => users_list(cx, &args),
            _ => auth_test(),
        }
    }

    fn status_fault(&self, _cx: &Cx, _req: &Req, class: &Class, status: u16) -> Reply {
        match status {
            400 => invalid_arguments("invalid arguments"),
            401 => fail("invalid_auth"),
            403 => fail("no_permission"),
            404 if class.step == Step::Lookup => fail("users_not_found"),
            404 => fail("user_not_found"),
            429 => Reply::json(429, JSON, &json!({"ok": false, "error": "ratelimited"})),
            500 => Reply::json(500, JSON, &json!({"ok": false, "error": "fatal_error"})),
            503 => Reply::json(
                503,
                JSON,
                &json!({"ok": false, "error": "service_unavailable"}),
            ),
            other => Reply::json(
                other,
                JSON,
                &json!({"ok": false, "error": "internal_error"}),
            ),
        }
    }

    fn throttled(&self, _cx: &Cx, _req: &Req, _class: &Class, t: &Throttle) -> Reply {
        Reply::json(429, JSON, &json!({"ok": false, "error": "ratelimited"}))
            .with("retry-after", t.retry_after())
    }

    fn decorate(&self, _cx: &Cx, req: &Req, reply: &mut Reply, _budget: &crate::state::Budget) {
        reply.set("x-slack-req-id", wire::random_alnum(32).to_lowercase());
        let accepted = match method_of(req) {
            Some("users.lookupByEmail") => "users:read.email",
            Some("admin.users.session.reset" | "admin.users.session.resetBulk") => {
                "admin.users:write"
            }
            Some("users.list") => "users:read",
            _ => "",
        };
        reply.set("x-accepted-oauth-scopes", accepted);
        if req.bearer() == Some(demo::SLACK_USER_TOKEN) {
            reply.set("x-oauth-scopes", SCOPES);
        }
    }
}
