//! One policy at every door. The same policy file — the seed document's
//! example (revocation rate-capped at 10 a minute per grant, everything
//! else denied) with the action named `revoke_sessions`, plus a protected
//! account, a watch list that needs a second person's approval, and the
//! admin actions a deployment needs — is loaded by `sever` (CLI and
//! `sever serve`, from `policy_file` in the configuration) and by an
//! in-process server, and refuses the same calls on the CLI, the REST API,
//! the signed webhook and MCP (the official Python SDK): a protected
//! account everywhere, the 11th revocation in a minute by one grant
//! everywhere. A held revocation waits until an admin other than the
//! requester approves it, then runs; a denied one is `rejected`, an
//! unanswered one `expired`, and neither ever reaches a provider.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_core::admin::AuditQuery;
use sever_core::policy::PolicyResolver;
use sever_core::{Clock, TenantId};
use sever_server::signature::sign_plain;
use sever_sim::Provider;

use crate::helpers::{connector_configs, tenant_and_admin_key, wait_for, Api, Harness};
use crate::mcp::{http_session, tool_text};
use crate::server::{answer, Answer, Server};

/// The policy every door applies in these tests.
const POLICY: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "revoke_sessions": {
      "limits": [
        {"counter": "revoke_sessions_rate", "window": "minute", "max": 10, "scope": "grant"}
      ],
      "require_approval": {"target_on_watch_list": true}
    },
    "get_revocation_status": {},
    "list_connectors": {},
    "approve_request": {},
    "manage_connectors": {},
    "manage_settings": {},
    "manage_keys": {}
  },
  "protected_accounts": [
    {"accounts": ["admin@example.com", "breakglass-*@example.com"], "action": "refuse"}
  ],
  "watch_list": ["erin@example.com", "bob@example.com", "o'neil@example.com"],
  "approvals": {"expire_after": "1m"}
}"#;

const PROTECTED: &str = "admin@example.com (matches admin@example.com) is a protected account";
const WEBHOOK: &str = "/api/v1/session-revocation/webhook";
const SIGNATURE: &str = "X-Session-Revocation-Signature";

/// The in-process server's clock: the real time, shifted by an offset the
/// test moves forward.
struct TestClock(AtomicI64);

impl TestClock {
    /// One second into a fresh minute, so a whole minute's window holds
    /// what the test does next.
    fn at_a_fresh_minute() -> Arc<Self> {
        let now = Utc::now();
        let start = now.with_second(0).unwrap().with_nanosecond(0).unwrap();
        let target = start + Duration::seconds(61);
        Arc::new(TestClock(AtomicI64::new((target - now).num_milliseconds())))
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.0.load(Ordering::SeqCst))
    }
}

fn write_policy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("policy.json");
    std::fs::write(&path, POLICY).unwrap();
    path
}

/// A server under [`POLICY`] (loaded from a file, as `sever serve` loads
/// it), with the webhook and MCP channels on; returns the webhook secret.
async fn policy_server(clock: Arc<TestClock>) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(dir.path());
    let policy = sever_cli::policy_cmds::load_policy_file(&path)
        .unwrap_or_else(|_| panic!("the test policy is valid"));
    let resolver = Arc::new(PolicyResolver::for_server(Some((
        path.display().to_string(),
        policy,
    ))));
    let s = Server::start_full(|c| c.policy = resolver, clock).await;
    let a = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"webhook_enabled": true, "mcp_enabled": true})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let secret = a.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    (s, secret)
}

/// A harness whose `sever.toml` names the policy file.
async fn policy_harness() -> Harness {
    let h = Harness::start().await;
    write_policy(h.dir.path());
    // A top-level key: before the first [table] of the file.
    h.edit_config(|t| format!("policy_file = \"policy.json\"\n{t}"));
    h
}

async fn revoke_rest(s: &Server, key: &str, username: &str) -> Answer {
    s.call_as(
        key,
        Method::POST,
        "/api/v1/revocations",
        Some(json!({"username": username, "reason": "account takeover"})),
        &[],
    )
    .await
}

async fn revoke_webhook(s: &Server, secret: &str, username: &str) -> Answer {
    let body = serde_json::to_vec(&json!({
        "tenant_id": s.tenant.to_string(),
        "action": "revoke_sessions",
        "username": username,
        "reason": "SOAR containment",
        "source": "tines-playbook",
    }))
    .unwrap();
    let r = s
        .http
        .post(s.url(WEBHOOK))
        .header("content-type", "application/json")
        .header(SIGNATURE, sign_plain(secret.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    answer(r).await
}

/// The SOAR's poll of a request, signed like the webhook.
async fn poll(s: &Server, secret: &str, id: &str) -> Answer {
    let message = format!(
        "/api/v1/session-revocation/requests/{id}?tenant_id={}",
        s.tenant
    );
    let r = s
        .http
        .get(s.url(&message))
        .header(SIGNATURE, sign_plain(secret.as_bytes(), message.as_bytes()))
        .send()
        .await
        .unwrap();
    answer(r).await
}

async fn decide(s: &Server, key: &str, id: &str, what: &str, reason: &str) -> Answer {
    s.call_as(
        key,
        Method::POST,
        &format!("/api/v1/approvals/{id}/{what}"),
        Some(json!({"reason": reason})),
        &[],
    )
    .await
}

fn revoke_call(username: &str) -> Value {
    json!({"tool": "revoke_sessions", "arguments": {"username": username, "reason": "agent saw a phishing login"}})
}

/// Everyone a provider revoked, over every provider.
fn revoked_anywhere(s: &sever_sim::SimHandle) -> Vec<String> {
    Provider::ALL.iter().flat_map(|p| s.revoked(*p)).collect()
}

/// Audit records of refusals by the policy, as JSON.
async fn policy_refusals(db: &dyn sever_core::Database, tenant: TenantId) -> Vec<Value> {
    db.list_audit(&AuditQuery {
        tenant_id: Some(tenant),
        after_seq: None,
        limit: 10_000,
    })
    .await
    .unwrap()
    .iter()
    .map(|r| serde_json::to_value(&r.event).unwrap())
    .filter(|e| e["decision"] == "denied" && e["detail"]["policy"]["decision"] == "deny")
    .collect()
}

/// Wait, if needed, for a minute with at least `secs` seconds left in it
/// (the CLI runs on the real clock; the limit's window is the minute).
async fn fresh_minute(secs: u32) {
    let s = Utc::now().second();
    if s + secs > 59 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - s))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_policy_file_refuses_the_same_calls_on_the_cli_rest_webhook_and_mcp() {
    // The CLI, with the policy file in its configuration.
    let h = policy_harness().await;
    let run = h
        .sever(&[
            "revoke",
            "admin@example.com",
            "--yes",
            "--reason",
            "phished",
        ])
        .await;
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stderr()
            .contains(&format!("error: refused by policy: {PROTECTED}")),
        "{}",
        run.stderr()
    );
    let run = h
        .sever(&["revoke", "breakglass-2@example.com", "--yes"])
        .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("is a protected account"));
    assert!(revoked_anywhere(&h.sim()).is_empty());
    let db = sever_store::open(&format!("sqlite://{}", h.db_path().display()))
        .await
        .unwrap();
    let cli_refusals = policy_refusals(db.as_ref(), TenantId::DEFAULT).await;
    assert_eq!(cli_refusals.len(), 2, "{cli_refusals:#?}");
    assert_eq!(cli_refusals[0]["channel"], "cli");
    assert_eq!(cli_refusals[0]["action"], "revoke_sessions");
    assert_eq!(cli_refusals[0]["target"], "admin@example.com");
    assert_eq!(
        cli_refusals[0]["detail"]["policy"]["rules"][0]["rule"],
        "protected_accounts[0]"
    );
    assert_eq!(
        cli_refusals[0]["detail"]["policy"]["origin"]["origin"],
        "file"
    );

    // `sever serve` on the same configuration.
    let served = h.serve().await;
    let (_, key) = tenant_and_admin_key(&h, "acme").await;
    let api = Api::new(&served.base, &key);
    for c in connector_configs(&h.sims) {
        let a = api.call(Method::POST, "/api/v1/connectors", Some(c)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let a = api
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"revocation_enabled": true})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let p = api.call(Method::GET, "/api/v1/policy", None).await;
    // manage_policy is not in the policy: even reading it is refused.
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let a = api
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "admin@example.com", "reason": "phished"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.error_code(), "policy_denied");
    assert_eq!(a.error_message(), format!("refused by policy: {PROTECTED}"));
    drop(served);
    assert!(revoked_anywhere(&h.sim()).is_empty());

    // The in-process server under the same file: REST, webhook, MCP.
    let (s, secret) = policy_server(TestClock::at_a_fresh_minute()).await;
    let (agent, _) = s.key_with(&["sessions:revoke", "sessions:read"]).await;
    let a = revoke_rest(&s, &s.key, "admin@example.com").await;
    assert_eq!(
        (a.status, a.error_code()),
        (StatusCode::FORBIDDEN, "policy_denied"),
        "{}",
        a.body
    );
    let w = revoke_webhook(&s, &secret, "admin@example.com").await;
    assert_eq!(
        (w.status, w.error_code()),
        (StatusCode::FORBIDDEN, "policy_denied"),
        "{}",
        w.body
    );
    assert_eq!(w.error_message(), a.error_message());
    // Every other action is denied: a preview, on REST and over MCP.
    let p = s
        .call(
            Method::POST,
            "/api/v1/revocations/preview",
            Some(json!({"username": "bob@example.com"})),
        )
        .await;
    assert_eq!(
        (p.status, p.error_code()),
        (StatusCode::FORBIDDEN, "policy_denied"),
        "{}",
        p.body
    );
    let out = http_session(
        &s,
        &agent,
        false,
        json!([
            revoke_call("admin@example.com"),
            {"tool": "preview_revocation", "arguments": {"username": "bob@example.com"}},
            {"tool": "list_connectors"},
        ]),
    )
    .await;
    let r = &out["results"];
    assert_eq!(r[0]["is_error"], true, "{out:#}");
    assert_eq!(
        tool_text(&r[0]),
        format!("Refused by policy: {PROTECTED}; nothing was revoked.")
    );
    assert_eq!(r[0]["structured"]["error"]["code"], "policy_denied");
    assert_eq!(r[1]["is_error"], true, "{}", r[1]);
    assert!(
        tool_text(&r[1]).starts_with("Refused by policy: preview_revocation is not allowed"),
        "{}",
        tool_text(&r[1])
    );
    assert_eq!(r[2]["is_error"], false, "{}", r[2]);
    assert!(revoked_anywhere(&s.sim()).is_empty());

    // Every refusal is audited with the decision and the rule that made it.
    let refusals = policy_refusals(s.db.as_ref(), s.tenant).await;
    for channel in ["api", "webhook", "mcp"] {
        let r = refusals
            .iter()
            .find(|e| e["channel"] == channel && e["action"] == "revoke_sessions")
            .unwrap_or_else(|| panic!("no {channel} refusal in {refusals:#?}"));
        assert_eq!(r["target"], "admin@example.com");
        assert_eq!(
            r["detail"]["policy"]["rules"][0]["rule"], "protected_accounts[0]",
            "{r:#}"
        );
    }
    assert!(refusals
        .iter()
        .any(|e| e["action"] == "preview" && e["channel"] == "mcp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_eleventh_revocation_in_a_minute_by_one_grant_is_refused_at_every_door() {
    let (s, secret) = policy_server(TestClock::at_a_fresh_minute()).await;
    let (agent, _) = s.key_with(&["sessions:revoke", "sessions:read"]).await;

    // REST: ten by this key, then 429; another key still has its ten.
    for i in 0..10 {
        let a = revoke_rest(&s, &s.key, "alice@example.com").await;
        assert_eq!(a.status, StatusCode::OK, "call {i}: {}", a.body);
    }
    let a = revoke_rest(&s, &s.key, "alice@example.com").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.error_code(), "rate_limited");
    assert!(
        a.error_message().starts_with(
            "refused by policy: limit reached: counter revoke_sessions_rate: at most 10 per minute"
        ) && a.error_message().contains("; try again after "),
        "{}",
        a.error_message()
    );

    // The webhook: one grant for the tenant.
    for i in 0..10 {
        let w = revoke_webhook(&s, &secret, "alice@example.com").await;
        assert_eq!(w.status, StatusCode::OK, "call {i}: {}", w.body);
    }
    let w = revoke_webhook(&s, &secret, "alice@example.com").await;
    assert_eq!(
        (w.status, w.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        w.body
    );

    // MCP: an agent's key.
    let calls: Vec<Value> = (0..11).map(|_| revoke_call("alice@example.com")).collect();
    let out = http_session(&s, &agent, false, json!(calls)).await;
    let r = out["results"].as_array().unwrap();
    for (i, x) in r.iter().take(10).enumerate() {
        assert_eq!(x["is_error"], false, "call {i}: {x}");
        assert_eq!(x["structured"]["status"], "completed", "call {i}: {x}");
    }
    assert_eq!(r[10]["is_error"], true, "{}", r[10]);
    assert!(
        tool_text(&r[10]).starts_with("Refused by policy: limit reached")
            && tool_text(&r[10]).ends_with("; nothing was revoked."),
        "{}",
        tool_text(&r[10])
    );
    assert_eq!(r[10]["structured"]["error"]["code"], "rate_limited");

    // 30 revocations ran; the refused ones were never written.
    let list = s
        .call(Method::GET, "/api/v1/revocations?limit=200", None)
        .await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        30,
        "{}",
        list.body
    );
    let refusals = policy_refusals(s.db.as_ref(), s.tenant).await;
    assert_eq!(refusals.len(), 3, "{refusals:#?}");
    for r in &refusals {
        assert_eq!(
            r["detail"]["policy"]["rules"][0]["rule"],
            "tools.revoke_sessions.limits[0]"
        );
    }

    // The CLI, on the real clock: its own grant, cli:<os user>.
    let h = policy_harness().await;
    fresh_minute(40).await;
    for i in 0..10 {
        let (run, v) = h
            .revoke_json("alice@example.com", &["--reason", "phished"])
            .await;
        assert_eq!(run.code(), 0, "call {i}: {}", run.stderr());
        assert_eq!(v["status"], "completed");
    }
    let run = h
        .sever(&[
            "revoke",
            "alice@example.com",
            "--yes",
            "--reason",
            "phished",
        ])
        .await;
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stderr()
            .starts_with("error: refused by policy: limit reached"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_revocation_runs_only_after_another_admin_approves_and_never_after_a_denial_or_expiry(
) {
    let clock = TestClock::at_a_fresh_minute();
    let (s, secret) = policy_server(clock.clone()).await;
    let (approver, approver_id) = s
        .key_with(&["admin", "sessions:revoke", "sessions:read"])
        .await;
    let (agent, _) = s.key_with(&["sessions:revoke", "sessions:read"]).await;

    // REST: erin is on the watch list; the request waits, nothing runs.
    let a = revoke_rest(&s, &s.key, "erin@example.com").await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["status"], "pending_approval", "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let p = poll(&s, &secret, &id).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["job_status"], "pending_approval");
    // The requester cannot approve their own request.
    let mine = decide(&s, &s.key, &id, "approve", "it is me, trust me").await;
    assert_eq!(
        (mine.status, mine.error_code()),
        (StatusCode::FORBIDDEN, "self_approval"),
        "{}",
        mine.body
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(revoked_anywhere(&s.sim()).is_empty());
    // Another admin approves; the worker runs it; the poll sees it complete.
    let ok = decide(
        &s,
        &approver,
        &id,
        "approve",
        "confirmed with erin by phone",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["state"], "approved");
    assert_eq!(ok.body["decided_by"], format!("key:{approver_id}"));
    wait_for("the approved request completes", 20, async || {
        poll(&s, &secret, &id).await.body["job_status"] == "completed"
    })
    .await;
    for p in Provider::ALL {
        assert_eq!(
            s.sim().revoked(p),
            vec!["erin@example.com".to_string()],
            "{p:?}"
        );
    }

    // MCP: the agent's revocation of bob waits; an admin denies it; the
    // status tool then says rejected, and bob was never revoked.
    let out = http_session(&s, &agent, false, json!([revoke_call("bob@example.com")])).await;
    let r = &out["results"][0];
    assert_eq!(r["is_error"], false, "{out:#}");
    assert_eq!(r["structured"]["status"], "pending_approval", "{r:#}");
    assert!(
        tool_text(r).contains("is waiting for approval"),
        "{}",
        tool_text(r)
    );
    assert!(
        r["structured"]["approval"]["expires_at"].is_string(),
        "{r:#}"
    );
    let bob = r["structured"]["request_id"].as_str().unwrap().to_string();
    let no = decide(&s, &approver, &bob, "deny", "bob is fine, false positive").await;
    assert_eq!(
        (no.status, no.body["state"].as_str()),
        (StatusCode::OK, Some("denied")),
        "{}",
        no.body
    );
    let out = http_session(
        &s,
        &agent,
        false,
        json!([{"tool": "get_revocation_status", "arguments": {"request_id": bob}}]),
    )
    .await;
    let r = &out["results"][0];
    assert_eq!(r["structured"]["status"], "rejected", "{out:#}");
    assert!(
        tool_text(r).contains("was rejected") && tool_text(r).contains("nothing was revoked"),
        "{}",
        tool_text(r)
    );
    let late = decide(&s, &approver, &bob, "approve", "changed my mind").await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);

    // The webhook: o'neil's revocation waits, nobody decides, it expires.
    let w = revoke_webhook(&s, &secret, "o'neil@example.com").await;
    assert_eq!(w.status, StatusCode::ACCEPTED, "{}", w.body);
    assert_eq!(w.body["job_status"], "pending_approval");
    let oneil = w.body["request_id"].as_str().unwrap().to_string();
    clock.advance(Duration::minutes(2));
    wait_for("the worker expires the approval", 20, async || {
        poll(&s, &secret, &oneil).await.body["job_status"] == "expired"
    })
    .await;
    let late = decide(&s, &approver, &oneil, "approve", "sorry, I was away").await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let everyone = revoked_anywhere(&s.sim());
    assert!(
        !everyone
            .iter()
            .any(|u| u == "bob@example.com" || u == "o'neil@example.com"),
        "{everyone:?}"
    );
    let p = poll(&s, &secret, &oneil).await;
    for r in p.body["results"].as_array().unwrap() {
        assert_eq!(r["outcome"], "skipped", "{}", p.body);
    }

    // The trail: held (with the policy's reasons), approved, denied, expired.
    let trail: Vec<Value> = s
        .audit()
        .await
        .into_iter()
        .filter(|e| e["request_id"].is_string())
        .collect();
    let held: Vec<&Value> = trail
        .iter()
        .filter(|e| {
            e["action"] == "revoke_sessions"
                && e["detail"]["policy"]["decision"] == "require_approval"
        })
        .collect();
    assert_eq!(held.len(), 3, "{held:#?}");
    for action in ["approval.approve", "approval.deny", "approval.expire"] {
        assert!(
            trail
                .iter()
                .any(|e| e["action"] == action && e["decision"] == "allowed"),
            "{action}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_checks_explains_holds_and_approves_under_the_policy_file() {
    let h = policy_harness().await;

    // check: a bad file names the field and says what is wrong.
    let bad = h.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        POLICY.replace(r#""window": "minute""#, r#""window": "fortnight""#),
    )
    .unwrap();
    let run = h.sever(&["policy", "check", bad.to_str().unwrap()]).await;
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains(
            "bad.json: tools.revoke_sessions.limits[0].window: \"fortnight\" is not one of second, minute, hour, day"
        ),
        "{}",
        run.stderr()
    );
    let run = h.sever(&["policy", "check", "policy.json"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stdout().contains("valid (default deny"),
        "{}",
        run.stdout()
    );
    // A configuration naming a bad policy file refuses to run at all.
    let broken = h.dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(h.config())
            .unwrap()
            .replace("policy.json", "bad.json"),
    )
    .unwrap();
    let run = h
        .sever(&[
            "--config",
            broken.to_str().unwrap(),
            "revoke",
            "bob@example.com",
            "--yes",
        ])
        .await;
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("tools.revoke_sessions.limits[0].window"),
        "{}",
        run.stderr()
    );

    // explain: the decision and every rule that led to it.
    let run = h
        .sever(&[
            "policy",
            "explain",
            "--action",
            "revoke_sessions",
            "--user",
            "erin@example.com",
        ])
        .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let out = run.stdout();
    assert!(
        out.contains("revoke_sessions erin@example.com as cli:"),
        "{out}"
    );
    assert!(out.contains("REQUIRES APPROVAL"), "{out}");
    assert!(
        out.contains("erin@example.com is on the watch list"),
        "{out}"
    );
    assert!(
        out.contains("tools.revoke_sessions.require_approval.target_on_watch_list"),
        "{out}"
    );
    assert!(out.contains("tools.revoke_sessions.limits[0]"), "{out}");
    assert!(out.contains("Policy: the file"), "{out}");
    let run = h
        .sever(&[
            "policy",
            "explain",
            "--action",
            "revoke_sessions",
            "--user",
            "admin@example.com",
            "--as",
            "mcp:agent-7",
            "--json",
        ])
        .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let v: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["authorization"]["decision"], "deny", "{v:#}");
    assert!(v["authorization"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["rule"] == "protected_accounts[0]" && s["verdict"] == "deny"));
    let run = h
        .sever(&["policy", "explain", "--action", "get_revocation_status"])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stdout());
    assert!(run.stdout().contains("ALLOW"), "{}", run.stdout());

    // revoke: erin waits for approval (exit 3) and nothing runs.
    let run = h
        .sever(&[
            "revoke",
            "erin@example.com",
            "--yes",
            "--json",
            "--reason",
            "phished",
        ])
        .await;
    assert_eq!(run.code(), 3, "{}\n{}", run.stdout(), run.stderr());
    let v: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["status"], "pending_approval");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        run.stderr().contains(&format!(
            "is waiting for approval (erin@example.com is on the watch list): run `sever approvals approve {id} --reason"
        )),
        "{}",
        run.stderr()
    );
    assert!(revoked_anywhere(&h.sim()).is_empty());
    let run = h.sever(&["approvals", "list", "--json"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let list: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(list[0]["request_id"], id.as_str(), "{list:#}");
    assert_eq!(list[0]["state"], "pending");

    // The requester (this operator) cannot approve it; another admin can.
    let run = h
        .sever(&["approvals", "approve", &id, "--reason", "it is fine"])
        .await;
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("two-person rule"), "{}", run.stderr());
    let run = h
        .sever_with_stdin(
            &[
                "users",
                "create",
                "--tenant",
                "default",
                "--email",
                "carol.admin@example.com",
                "--role",
                "admin",
                "--password-stdin",
            ],
            "correct horse battery staple\n",
        )
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let run = h
        .sever(&[
            "approvals",
            "approve",
            &id,
            "--reason",
            "confirmed with erin by phone",
            "--as",
            "carol.admin@example.com",
            "--json",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let v: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["status"], "completed", "{v:#}");
    for p in Provider::ALL {
        assert_eq!(
            h.sim().revoked(p),
            vec!["erin@example.com".to_string()],
            "{p:?}"
        );
    }
    let run = h.sever(&["status", &id]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().contains("completed"), "{}", run.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_file_sever_serve_applies_its_built_in_default_and_the_cli_allows() {
    let h = Harness::start().await;
    let served = h.serve().await;
    let (_, key) = tenant_and_admin_key(&h, "acme").await;
    let api = Api::new(&served.base, &key);
    for c in connector_configs(&h.sims) {
        let a = api.call(Method::POST, "/api/v1/connectors", Some(c)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let a = api
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"revocation_enabled": true})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let p = api.call(Method::GET, "/api/v1/policy", None).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(
        (p.body["origin"].as_str(), p.body["source"].as_str()),
        (Some("built_in"), Some("server default")),
        "{}",
        p.body
    );
    let revoke = json!({"username": "bob@example.com", "reason": "phished"});
    let a = api
        .call(Method::POST, "/api/v1/revocations", Some(revoke.clone()))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // The default's cooldown: nobody twice within a minute.
    let again = api
        .call(Method::POST, "/api/v1/revocations", Some(revoke))
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        again.body
    );
    assert!(
        again
            .error_message()
            .contains("bob@example.com may be revoked once per 1m"),
        "{}",
        again.error_message()
    );
    drop(served);
    assert_eq!(h.sim().revoked(Provider::Okta).len(), 1);

    // The embedded CLI without a policy file allows everything.
    let (run, v) = h
        .revoke_json("bob@example.com", &["--reason", "again"])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(v["status"], "completed");
}
