//! The MCP server driven by a client nobody here wrote: the official Python
//! SDK (`mcp` on PyPI, pinned in `tests/mcp_client/requirements.txt` and
//! installed by `.ci/run`), over both transports: streamable HTTP against
//! the real server on 127.0.0.1:0, and stdio against the real `sever mcp`
//! binary. `tests/mcp_client/client.py` runs a scenario and reports what it
//! saw as JSON; the assertions are here.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_core::admin::Role;
use sever_core::SystemClock;
use sever_server::Actor;
use sever_sim::{Provider, Step};

use crate::server::Server;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client/client.py");
const TOOLS_SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../server/tests/snapshots/mcp_tools.json"
);

/// The master key the in-process server seals with (`[7u8; 32]`), for a
/// `sever mcp` process that shares its database.
const MASTER_KEY_B64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn python() -> String {
    std::env::var("SEVER_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Run one scenario of the Python client and return what it saw.
async fn client(spec: Value) -> Value {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python())
            .arg(CLIENT)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named 'mcp'") {
            panic!(
                "the MCP tests need the official Python MCP SDK: \
                 python3 -m pip install -r crates/cli/tests/mcp_client/requirements.txt"
            );
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "the MCP client printed no JSON ({e}):\n{}\nstderr:\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        if let Some(crash) = v.get("crash") {
            panic!(
                "the MCP client crashed: {crash}\n{}\nstderr:\n{stderr}",
                v["traceback"].as_str().unwrap_or_default()
            );
        }
        v
    })
    .await
    .unwrap()
}

/// A session over streamable HTTP with `token`.
pub(crate) async fn http_session(s: &Server, token: &str, list_tools: bool, calls: Value) -> Value {
    client(json!({
        "scenario": "session",
        "transport": "http",
        "url": s.url("/mcp"),
        "token": token,
        "list_tools": list_tools,
        "calls": calls,
    }))
    .await
}

async fn switches(s: &Server, settings: Value) {
    let a = s
        .call(Method::PUT, "/api/v1/settings", Some(settings))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// A server with the MCP channel on.
async fn mcp_server() -> Server {
    let s = Server::start().await;
    switches(&s, json!({"mcp_enabled": true})).await;
    s
}

pub(crate) fn tool_text(r: &Value) -> &str {
    r["text"][0].as_str().unwrap_or_default()
}

/// The tools/list answer matches the checked-in snapshot (an external
/// contract: agents and their prompts depend on it).
fn assert_tools_snapshot(tools: &Value) {
    let actual = serde_json::to_string_pretty(tools).unwrap();
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(TOOLS_SNAPSHOT, format!("{actual}\n")).unwrap();
    }
    let expected = std::fs::read_to_string(TOOLS_SNAPSHOT).unwrap_or_default();
    assert!(
        expected.trim_end() == actual.trim_end(),
        "the MCP tools/list answer changed; review it and rerun with UPDATE_SNAPSHOTS=1 to accept ({TOOLS_SNAPSHOT})\n{actual}"
    );
}

fn mcp_records<'a>(audit: &'a [Value], action: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|r| r["channel"] == "mcp" && r["action"] == action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_streamable_http_previews_revokes_and_follows_a_revocation() {
    let s = mcp_server().await;
    let (key, key_id) = s.key_with(&["sessions:revoke", "sessions:read"]).await;
    s.sim().reset_calls();
    let out = http_session(
        &s,
        &key,
        true,
        json!([
            {"tool": "list_connectors"},
            {"tool": "preview_revocation", "arguments": {"username": "bob@example.com"}},
            {"tool": "revoke_sessions", "arguments": {
                "username": "alice@example.com",
                "reason": "account takeover, INC-42",
                "idempotency_key": "INC-42/alice"}},
            {"tool": "get_revocation_status", "arguments": {"request_id": "$request_id"}},
            {"tool": "revoke_sessions", "arguments": {
                "username": "alice@example.com",
                "reason": "account takeover, INC-42",
                "idempotency_key": "INC-42/alice"}},
            {"tool": "revoke_sessions", "arguments": {
                "username": "alice@example.com", "reason": "x", "integration_targets": ["nope"]}},
            {"tool": "revoke_sessions", "arguments": {"username": "  ", "reason": "x"}},
            {"tool": "revoke_sessions", "arguments": {"username": "carol@example.com"}},
            {"tool": "get_revocation_status", "arguments": {"request_id": "0190c0de-0000-7000-8000-000000000000"}},
            {"tool": "no_such_tool"},
        ]),
    )
    .await;
    assert!(out.get("connect_error").is_none(), "{out:#}");
    assert_eq!(out["server_info"]["name"], "sever");
    assert!(out["instructions"]
        .as_str()
        .unwrap()
        .contains("revoke_sessions"));
    assert_tools_snapshot(&out["tools"]);
    let tools = out["tools"].as_array().unwrap();
    let revoke_tool = tools
        .iter()
        .find(|t| t["name"] == "revoke_sessions")
        .unwrap();
    assert_eq!(revoke_tool["annotations"]["destructiveHint"], true);
    assert_eq!(
        revoke_tool["inputSchema"]["required"],
        json!(["username", "reason"])
    );
    for t in tools.iter().filter(|t| t["name"] != "revoke_sessions") {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
    }

    let r = &out["results"];
    // list_connectors
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    let names: Vec<_> = r[0]["structured"]["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "entra",
            "google_workspace",
            "miro",
            "okta",
            "slack_enterprise"
        ]
    );
    // preview: found where bob exists, and nothing revoked
    assert_eq!(r[1]["is_error"], false, "{}", r[1]);
    let found = |name: &str| {
        r[1]["structured"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["instance"] == name)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(found("okta"), "found");
    assert_eq!(found("slack_enterprise"), "user_not_found");
    assert!(tool_text(&r[1]).starts_with("Preview for bob@example.com (nothing was changed)"));
    // revoke: completed everywhere, with the request id
    assert_eq!(r[2]["is_error"], false, "{}", r[2]);
    let req = &r[2]["structured"];
    assert_eq!(req["status"], "completed", "{req:#}");
    assert_eq!(req["final"], true);
    assert_eq!(req["reason"], "account takeover, INC-42");
    assert_eq!(req["channel"], "mcp");
    assert_eq!(req["requested_by"], format!("key:{key_id}"));
    let id = req["request_id"].as_str().unwrap().to_string();
    let outcome = |v: &Value, c: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["connector"] == c)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome(req, "okta"), "tokens_revoked");
    for c in ["entra", "google_workspace", "slack_enterprise", "miro"] {
        assert_eq!(outcome(req, c), "revoked", "{c}");
    }
    assert!(
        tool_text(&r[2]).starts_with(&format!("Revocation {id} for alice@example.com completed")),
        "{}",
        tool_text(&r[2])
    );
    // status: the same request
    assert_eq!(r[3]["is_error"], false, "{}", r[3]);
    assert_eq!(r[3]["structured"]["request_id"], id.as_str());
    assert_eq!(r[3]["structured"]["status"], "completed");
    // the retry with the same idempotency key revoked nothing new
    assert_eq!(r[4]["structured"]["request_id"], id.as_str(), "{}", r[4]);
    assert_eq!(r[4]["structured"]["replayed"], true);
    for p in Provider::ALL {
        assert_eq!(
            s.sim().revoked(p),
            vec!["alice@example.com".to_string()],
            "{p:?}: once for alice, never for bob"
        );
    }
    // errors an agent can act on, in one sentence
    assert_eq!(r[5]["is_error"], true);
    assert!(
        tool_text(&r[5]).starts_with("Invalid integration_targets: unknown connector 'nope'")
            && tool_text(&r[5]).ends_with("; nothing was revoked."),
        "{}",
        tool_text(&r[5])
    );
    assert_eq!(r[5]["structured"]["error"]["code"], "invalid_input");
    assert_eq!(r[6]["is_error"], true);
    assert!(
        tool_text(&r[6]).starts_with("Invalid username"),
        "{}",
        tool_text(&r[6])
    );
    assert_eq!(r[7]["is_error"], true);
    assert!(
        tool_text(&r[7]).starts_with("Invalid reason: is required"),
        "{}",
        tool_text(&r[7])
    );
    assert_eq!(r[8]["is_error"], true);
    assert!(
        tool_text(&r[8]).contains("was not found in this tenant"),
        "{}",
        tool_text(&r[8])
    );
    assert!(
        r[9]["protocol_error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown tool 'no_such_tool'")),
        "an unknown tool is a protocol error: {}",
        r[9]
    );
    // only alice's request was written
    let list = s.call(Method::GET, "/api/v1/revocations", None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );

    // every call is in the audit trail: channel mcp, the key, reason, decision
    let audit = s.audit().await;
    let actor = format!("key:{key_id}");
    let revoked = mcp_records(&audit, "revoke_sessions");
    let allowed: Vec<_> = revoked
        .iter()
        .filter(|r| r["decision"] == "allowed")
        .collect();
    assert_eq!(allowed.len(), 1, "{revoked:#?}");
    assert_eq!(allowed[0]["actor"], actor.as_str());
    assert_eq!(allowed[0]["reason"], "account takeover, INC-42");
    assert_eq!(allowed[0]["request_id"], id.as_str());
    let denied: Vec<_> = revoked
        .iter()
        .filter(|r| r["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 3, "{revoked:#?}");
    assert!(denied.iter().any(|d| d["reason"] == "x"));
    assert_eq!(mcp_records(&audit, "revoke_sessions.replay").len(), 1);
    for action in ["connector.list", "preview"] {
        let recs = mcp_records(&audit, action);
        assert_eq!(recs.len(), 1, "{action}: {recs:#?}");
        assert_eq!(recs[0]["decision"], "allowed");
        assert_eq!(recs[0]["actor"], actor.as_str());
        assert_eq!(recs[0]["detail"]["credential"], "api_key");
    }
    let reads = mcp_records(&audit, "revocation.read");
    assert_eq!(reads.len(), 2, "{reads:#?}");
    assert!(reads.iter().any(|r| r["decision"] == "denied"));
    assert_eq!(
        mcp_records(&audit, "mcp.tools_call")[0]["target"],
        "no_such_tool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_tool_errors_that_change_nothing_and_are_audited() {
    let s = mcp_server().await;
    let (key, _) = s.key_with(&["sessions:revoke", "sessions:read"]).await;
    let (reader, reader_id) = s.key_with(&["sessions:read"]).await;
    s.sim().reset_calls();
    let revoke = json!({"tool": "revoke_sessions", "arguments": {
        "username": "alice@example.com", "reason": "compromised laptop"}});

    // No key: the HTTP transport refuses with a challenge for OAuth clients.
    let out = http_session(&s, "", false, json!([])).await;
    assert_eq!(out["http_status"], 401, "{out:#}");
    let raw = s
        .http
        .post(s.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);
    let challenge = raw.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let metadata = s.url("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata}\"")
    );
    let prm: Value = s
        .http
        .get(&metadata)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], s.url("/mcp"));
    assert_eq!(prm["authorization_servers"], json!([s.base]));
    // A wrong key is refused the same way, saying the token is invalid.
    let bad = http_session(&s, "sk_not-a-key", false, json!([])).await;
    assert_eq!(bad["http_status"], 401, "{bad:#}");

    // A read-only key cannot revoke, but can read.
    let out = http_session(
        &s,
        &reader,
        false,
        json!([revoke, {"tool": "list_connectors"}]),
    )
    .await;
    let r = &out["results"];
    assert_eq!(r[0]["is_error"], true, "{}", r[0]);
    assert_eq!(
        tool_text(&r[0]),
        "This API key lacks the 'sessions:revoke' scope; ask an owner or admin for one that has it; nothing was revoked."
    );
    assert_eq!(r[1]["is_error"], false);

    // The MCP channel switched off: every tool refuses.
    switches(&s, json!({"mcp_enabled": false})).await;
    let out = http_session(
        &s,
        &key,
        false,
        json!([revoke, {"tool": "list_connectors"}]),
    )
    .await;
    for x in out["results"].as_array().unwrap() {
        assert_eq!(x["is_error"], true, "{x}");
        assert!(
            tool_text(x).starts_with("The MCP channel is disabled for this tenant"),
            "{x}"
        );
    }

    // The master switch off: revocation refuses, reads still work.
    switches(
        &s,
        json!({"mcp_enabled": true, "revocation_enabled": false}),
    )
    .await;
    let out = http_session(
        &s,
        &key,
        false,
        json!([revoke, {"tool": "preview_revocation", "arguments": {"username": "alice@example.com"}}]),
    )
    .await;
    let r = &out["results"];
    assert_eq!(r[0]["is_error"], true);
    assert_eq!(
        tool_text(&r[0]),
        "Session revocation is disabled for this tenant; nothing was revoked."
    );
    assert_eq!(r[0]["structured"]["error"]["code"], "revocation_disabled");
    assert_eq!(r[1]["is_error"], false, "{}", r[1]);

    // Nothing was revoked or even written.
    assert!(s.sim().calls().iter().all(|c| c.step != Step::Revoke));
    let list = s.call(Method::GET, "/api/v1/revocations", None).await;
    assert_eq!(list.body["items"], json!([]));
    let audit = s.audit().await;
    let denied = mcp_records(&audit, "revoke_sessions");
    assert_eq!(denied.len(), 3, "{denied:#?}");
    for d in &denied {
        assert_eq!(d["decision"], "denied");
        assert_eq!(d["reason"], "compromised laptop");
        assert_eq!(d["target"], "alice@example.com");
    }
    assert_eq!(denied[0]["actor"], format!("key:{reader_id}"));
    assert!(denied[1]["result"]
        .as_str()
        .unwrap()
        .starts_with("channel_disabled"));
    assert!(denied[2]["result"]
        .as_str()
        .unwrap()
        .starts_with("revocation_disabled"));

    // Unknown Host headers are refused (DNS rebinding), in the one error shape.
    let rebound = s
        .http
        .post(s.url("/mcp"))
        .header("host", "evil.example")
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let body: Value = rebound.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_hosts"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_stdio_drives_the_sever_mcp_binary_with_a_key_from_the_environment() {
    let s = mcp_server().await;
    let (key, key_id) = s.key_with(&["sessions:revoke", "sessions:read"]).await;
    let config = s.dir.path().join("mcp.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nmaster_key = \"{}\"\n",
            s.dir.path().join("sever.db").display(),
            MASTER_KEY_B64,
        ),
    )
    .unwrap();
    let env = json!({
        "PATH": std::env::var("PATH").unwrap_or_default(),
        "HOME": s.dir.path(),
        "SEVER_CONFIG": config,
        "SEVER_API_KEY": key,
    });
    let out = client(json!({
        "scenario": "session",
        "transport": "stdio",
        "command": env!("CARGO_BIN_EXE_sever"),
        "args": ["mcp"],
        "env": env,
        "list_tools": true,
        "calls": [
            {"tool": "preview_revocation", "arguments": {"username": "bob@example.com", "integration_targets": ["okta"]}},
            {"tool": "revoke_sessions", "arguments": {"username": "bob@example.com", "reason": "phished", "integration_targets": ["okta", "entra"]}},
            {"tool": "get_revocation_status", "arguments": {"request_id": "$request_id"}},
        ],
    }))
    .await;
    assert!(out.get("connect_error").is_none(), "{out:#}");
    assert_tools_snapshot(&out["tools"]);
    let r = &out["results"];
    assert_eq!(
        r[0]["structured"]["results"][0]["result"], "found",
        "{}",
        r[0]
    );
    assert_eq!(r[1]["structured"]["status"], "completed", "{}", r[1]);
    assert_eq!(r[1]["structured"]["requested_by"], format!("key:{key_id}"));
    let id = r[1]["structured"]["request_id"].as_str().unwrap();
    assert_eq!(r[2]["structured"]["request_id"], id);
    assert_eq!(s.sim().revoked(Provider::Okta), ["bob@example.com"]);
    assert_eq!(s.sim().revoked(Provider::Entra), ["bob@example.com"]);
    assert!(s.sim().revoked(Provider::Miro).is_empty());
    let audit = s.audit().await;
    let rec = mcp_records(&audit, "revoke_sessions");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0]["actor"], format!("key:{key_id}"));
    assert_eq!(rec[0]["reason"], "phished");
    assert_eq!(
        rec[0]["source"], "mcp",
        "the client's own name, from initialize"
    );

    // A wrong key fails at start, with a message, before any tool call.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sever"));
    cmd.arg("mcp")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.dir.path())
        .env("SEVER_CONFIG", &config)
        .env("SEVER_API_KEY", "sk_wrong")
        .stdin(Stdio::null());
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unknown API key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_client_registers_is_approved_once_authorizes_with_pkce_and_is_cut_off_when_deleted(
) {
    let s = mcp_server().await;
    let cli = Actor::cli(s.tenant, "cli:test");
    sever_server::create_user(
        &*s.db,
        &SystemClock,
        s.tenant,
        "ana@example.com",
        Role::Analyst,
        "correct horse battery staple",
        &cli,
    )
    .await
    .unwrap();
    let out = client(json!({
        "scenario": "oauth",
        "url": s.url("/mcp"),
        "admin_key": s.key,
        "email": "ana@example.com",
        "password": "correct horse battery staple",
        "calls": [
            {"tool": "list_connectors"},
            {"tool": "revoke_sessions", "arguments": {
                "username": "alice@example.com", "reason": "OAuth agent", "integration_targets": ["miro"]}},
        ],
    }))
    .await;
    let step = |name: &str| {
        out["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {out:#}"))
            .clone()
    };
    let client_id = out["client_id"].as_str().unwrap().to_string();
    assert!(client_id.starts_with("mcp_"));
    assert!(out["authorize_params"]
        .as_array()
        .unwrap()
        .contains(&json!("code_challenge")));
    assert_eq!(out["registered_auth_method"], "none");

    let before = step("authorize_before_approval");
    assert_eq!(before["status"], 403);
    assert_eq!(before["waiting"], true);
    assert_eq!(before["shows_id"], true);
    let early = step("token_before_approval");
    assert_eq!(early["status"], 401);
    assert_eq!(early["body"]["error"], "invalid_client");
    assert_eq!(step("client_pending")["body"]["status"], "pending_approval");
    let approve = step("approve");
    assert_eq!(approve["status"], 200);
    assert_eq!(approve["body"]["status"], "approved");
    let page = step("authorize_page");
    assert_eq!(page["status"], 200);
    assert_eq!(page["has_form"], true);
    assert_eq!(page["frame_options"], "DENY");
    let wrong = step("wrong_password");
    assert_eq!(wrong["status"], 401);
    assert_eq!(wrong["says"], true);
    let pkce = step("pkce_wrong_verifier");
    assert_eq!(pkce["status"], 400);
    assert_eq!(pkce["body"]["error"], "invalid_grant");
    assert_eq!(
        pkce["then_right_verifier"], 400,
        "a code is burned by its first use"
    );
    let plain = step("plain_pkce");
    assert_eq!(plain["status"], 302);
    assert!(plain["location"]
        .as_str()
        .unwrap()
        .contains("error=invalid_request"));
    let authorized = step("authorized");
    assert_eq!(authorized["status"], 302);
    assert_eq!(authorized["has_code"], true);
    assert_eq!(authorized["iss"], s.base.as_str());

    // The SDK's own OAuth flow got a token and called the tools with it.
    let session = &out["session"];
    assert!(session.get("connect_error").is_none(), "{session:#}");
    assert_eq!(out["token_scope"], "sessions:revoke sessions:read");
    assert_eq!(session["results"][0]["is_error"], false, "{session:#}");
    let req = &session["results"][1]["structured"];
    assert_eq!(req["status"], "completed", "{session:#}");
    assert_eq!(req["requested_by"], format!("oauth:{client_id}"));
    assert_eq!(s.sim().revoked(Provider::Miro), ["alice@example.com"]);

    // Refresh tokens rotate and are single-use.
    let refresh = step("refresh");
    assert_eq!(refresh["status"], 200);
    assert_eq!(refresh["has_access"], true);
    assert_eq!(refresh["cache"], "no-store");
    assert_eq!(step("refresh_reused")["body"]["error"], "invalid_grant");
    assert_eq!(step("new_access_token_works")["status"], 200);

    // Deleting the client revoked every token it held.
    assert_eq!(step("delete_client")["status"], 204);
    for name in ["old_access", "new_access"] {
        let refused = step(&format!("call_after_delete_{name}"));
        assert_eq!(refused["status"], 401, "{name}");
        assert!(
            refused["www_authenticate"]
                .as_str()
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{refused}"
        );
    }
    assert_eq!(
        step("refresh_after_delete")["body"]["error"],
        "invalid_client"
    );

    // The trail: approval, authorization, tokens, the tool calls as the
    // OAuth client on behalf of the person, and the deletion.
    let audit = s.audit().await;
    let find = |action: &str| {
        audit
            .iter()
            .filter(|r| r["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find("oauth_client.approve")[0]["target"],
        client_id.as_str()
    );
    let authorizations = find("oauth.authorize");
    assert!(authorizations
        .iter()
        .any(|r| r["decision"] == "denied" && r["actor"] == "user:ana@example.com"));
    assert!(authorizations
        .iter()
        .any(|r| r["decision"] == "allowed" && r["role"] == "analyst"));
    assert!(!find("oauth.token").is_empty());
    assert!(!find("oauth.refresh").is_empty());
    let revoke = mcp_records(&audit, "revoke_sessions");
    assert_eq!(revoke[0]["actor"], format!("oauth:{client_id}"));
    assert_eq!(revoke[0]["reason"], "OAuth agent");
    let listed = mcp_records(&audit, "connector.list");
    assert_eq!(listed[0]["detail"]["on_behalf_of"], "user:ana@example.com");
    assert_eq!(find("oauth_client.delete")[0]["target"], client_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_discovery_registration_and_grants_follow_the_rfcs_and_roles() {
    let s = mcp_server().await;
    let get = |path: &str| {
        let url = s.url(path);
        let http = s.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let asm: Value = get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], s.base.as_str());
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["registration_endpoint"], s.url("/oauth/register"));
    assert_eq!(
        asm["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    let prm: Value = get("/.well-known/oauth-protected-resource")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        prm["scopes_supported"],
        json!(["sessions:revoke", "sessions:read"])
    );

    // Registration refuses redirect URIs that could leak a code.
    let bad = s
        .http
        .post(s.url("/oauth/register"))
        .json(&json!({"redirect_uris": ["http://evil.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_redirect_uri");

    // A viewer's consent grants read only: the requested revoke scope is dropped.
    let reg: Value = s
        .http
        .post(s.url("/oauth/register"))
        .json(&json!({"client_name": "Viewer's agent", "redirect_uris": ["http://127.0.0.1:9/cb"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = reg["client_id"].as_str().unwrap();
    assert_eq!(reg["sever_status"], "pending_approval");
    let a = s
        .call(
            Method::POST,
            &format!("/api/v1/oauth/clients/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let list = s.call(Method::GET, "/api/v1/oauth/clients", None).await;
    assert_eq!(list.body[0]["client_id"], id);
    let (reader, _) = s.key_with(&["sessions:read"]).await;
    let refused = s
        .call_as(&reader, Method::GET, "/api/v1/oauth/clients", None, &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let cli = Actor::cli(s.tenant, "cli:test");
    sever_server::create_user(
        &*s.db,
        &SystemClock,
        s.tenant,
        "vic@example.com",
        Role::Viewer,
        "viewer password 123",
        &cli,
    )
    .await
    .unwrap();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(s.url("/oauth/authorize"))
        .form(&[
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("scope", "sessions:revoke sessions:read"),
            ("state", "st"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("email", "vic@example.com"),
            ("password", "viewer password 123"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?code=sac_"),
        "{location}"
    );
    assert!(location.contains("&state=st&iss="), "{location}");
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let tokens: Value = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("client_id", id),
            ("code_verifier", verifier),
            ("resource", &s.url("/mcp")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["scope"], "sessions:read", "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(access.starts_with("sat_"));
    let out = http_session(
        &s,
        access,
        false,
        json!([
            {"tool": "list_connectors"},
            {"tool": "revoke_sessions", "arguments": {"username": "alice@example.com", "reason": "r"}},
        ]),
    )
    .await;
    assert_eq!(out["results"][0]["is_error"], false, "{out:#}");
    assert_eq!(
        tool_text(&out["results"][1]),
        "This OAuth grant lacks the 'sessions:revoke' scope; ask an owner or admin for one that has it; nothing was revoked."
    );
}

/// A refused call whose body arrives after its headers leaves the kept-alive
/// connection usable: the next request on it is answered (the Python SDK's
/// pooled connection once failed with "server disconnected" here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_keeps_the_connection_usable_for_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = mcp_server().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer sk_not_a_key\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    conn.write_all(body.as_bytes()).await.unwrap();
    let second = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    conn.write_all(second.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.matches("HTTP/1.1 ").count() < 2 {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(Err(e)) => panic!("read failed: {e}\n{seen}"),
        }
    }
    assert!(seen.starts_with("HTTP/1.1 401"), "{seen}");
    assert!(
        seen.contains("HTTP/1.1 200"),
        "the connection closed after the refusal instead of answering the next request:\n{seen}"
    );
}
