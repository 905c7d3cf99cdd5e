//! The signed webhook as a SOAR calls it: the seed document's Python example
//! run unchanged (but for its three settings and a `username`), both
//! signature forms, every refusal, idempotency, and the poll.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_server::signature::{sign_plain, sign_timestamped};
use sever_sim::{Provider, Step};

use crate::server::{answer, assert_error_shape, outcome, Answer, Server};

const PATH: &str = "/api/v1/session-revocation/webhook";

/// The example of seed document 004, verbatim except for the three settings
/// and the `username` the example leaves out.
const SEED_EXAMPLE: &str = r#"import hashlib
import hmac
import json
import urllib.request

WEBHOOK_SECRET = "sr_your_signing_secret_here"
BASE_URL = "https://challenge.veraproof.io"
TENANT_ID = "your-tenant-uuid"

payload = {
    "tenant_id": TENANT_ID,
    "action": "revoke_sessions",
    "username": "alice@example.com",
    "reason": "SOAR containment",
    "integration_targets": ["okta", "google_workspace"],
    "source": "tines-playbook",
}

body = json.dumps(payload, separators=(",", ":")).encode()
sig = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()

req = urllib.request.Request(
    f"{BASE_URL}/api/v1/session-revocation/webhook",
    data=body,
    headers={
        "Content-Type": "application/json",
        "X-Session-Revocation-Signature": sig,
    },
    method="POST",
)

with urllib.request.urlopen(req) as resp:
    result = json.loads(resp.read())

print(result)
# {'request_id': '...', 'job_status': 'completed'}
"#;

/// Turn the webhook channel on and return its signing secret.
async fn enable_webhook(s: &Server, extra: Value) -> String {
    let mut body = json!({"webhook_enabled": true});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let a = s.call(Method::PUT, "/api/v1/settings", Some(body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let secret = a.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("sr_"), "{secret}");
    secret
}

fn payload(s: &Server, username: &str) -> Value {
    json!({
        "tenant_id": s.tenant.to_string(),
        "action": "revoke_sessions",
        "username": username,
        "reason": "SOAR containment",
        "integration_targets": ["okta", "google_workspace"],
        "source": "tines-playbook",
    })
}

/// POST raw `body` with the given headers.
async fn post(s: &Server, body: &[u8], headers: &[(&str, String)]) -> Answer {
    let mut rb = s
        .http
        .post(s.url(PATH))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    answer(rb.send().await.unwrap()).await
}

async fn signed(s: &Server, secret: &str, body: &Value, extra: &[(&str, String)]) -> Answer {
    let raw = serde_json::to_vec(body).unwrap();
    let mut headers = vec![(
        "X-Session-Revocation-Signature",
        sign_plain(secret.as_bytes(), &raw),
    )];
    headers.extend(extra.iter().cloned());
    post(s, &raw, &headers).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_documents_python_example_revokes_and_answers_completed() {
    let s = Server::start().await;
    let secret = enable_webhook(&s, json!({})).await;
    let script = SEED_EXAMPLE
        .replace("sr_your_signing_secret_here", &secret)
        .replace("https://challenge.veraproof.io", &s.base)
        .replace("your-tenant-uuid", &s.tenant.to_string());
    let path = s.dir.path().join("soar.py");
    std::fs::write(&path, script).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(&path)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .env("no_proxy", "127.0.0.1,localhost")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("'job_status': 'completed'"), "{stdout}");
    let id = stdout
        .split("'request_id': '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap()
        .to_string();
    assert_eq!(
        s.sim().revoked(Provider::Okta),
        vec!["alice@example.com".to_string()]
    );
    assert_eq!(
        s.sim().revoked(Provider::Google),
        vec!["alice@example.com".to_string()]
    );
    assert!(s.sim().revoked(Provider::Slack).is_empty(), "not a target");

    // Poll with an API key.
    let poll = format!(
        "/api/v1/session-revocation/requests/{id}?tenant_id={}",
        s.tenant
    );
    let a = s.call(Method::GET, &poll, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["request_id"], id.as_str());
    assert_eq!(a.body["job_status"], "completed");
    assert_eq!(a.body["channel"], "webhook");
    assert_eq!(outcome(&a.body, "okta"), "tokens_revoked");
    assert_eq!(outcome(&a.body, "google_workspace"), "revoked");

    // The audit record carries the SOAR's source and the caller's address.
    let audit = s.audit().await;
    let rec = audit
        .iter()
        .find(|r| r["action"] == "revoke_sessions" && r["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(rec["actor"], "webhook");
    assert_eq!(rec["channel"], "webhook");
    assert_eq!(rec["source"], "tines-playbook");
    assert_eq!(rec["client_ip"], "127.0.0.1");
    assert_eq!(rec["reason"], "SOAR containment");
    assert_eq!(rec["decision"], "allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_in_both_forms_with_a_five_minute_window() {
    let s = Server::start().await;
    let secret = enable_webhook(&s, json!({})).await;
    let body = serde_json::to_vec(&payload(&s, "bob@example.com")).unwrap();
    let ts = |t: i64| {
        vec![(
            "X-Session-Revocation-Signature",
            sign_timestamped(secret.as_bytes(), &body, t),
        )]
    };

    let a = post(&s, &body, &ts(now() - 60)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["job_status"], "completed");

    let stale = post(&s, &body, &ts(now() - 301)).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert!(
        stale.error_message().contains("5 minutes"),
        "{}",
        stale.body
    );
    let future = post(&s, &body, &ts(now() + 400)).await;
    assert_eq!(future.status, StatusCode::UNAUTHORIZED);

    let wrong = post(
        &s,
        &body,
        &[(
            "X-Session-Revocation-Signature",
            sign_plain(b"sr_wrong", &body),
        )],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&wrong);
    assert!(
        wrong.error_message().contains("invalid signature"),
        "{}",
        wrong.body
    );
    let garbage = post(
        &s,
        &body,
        &[("X-Session-Revocation-Signature", "md5=abc".into())],
    )
    .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);

    // A tenant may require the timestamped form.
    let a = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"webhook_require_timestamp": true})),
        )
        .await;
    assert_eq!(a.body["webhook_require_timestamp"], true);
    assert!(
        a.body.get("webhook_signing_secret").is_none(),
        "shown once only"
    );
    let plain = post(
        &s,
        &body,
        &[(
            "X-Session-Revocation-Signature",
            sign_plain(secret.as_bytes(), &body),
        )],
    )
    .await;
    assert_eq!(plain.status, StatusCode::UNAUTHORIZED);
    assert!(
        plain.error_message().contains("t=<unix seconds>"),
        "{}",
        plain.body
    );
    let a = post(&s, &body, &ts(now())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // Each refusal is in the audit trail.
    let denied: Vec<_> = s
        .audit()
        .await
        .into_iter()
        .filter(|r| r["decision"] == "denied" && r["channel"] == "webhook")
        .collect();
    assert_eq!(denied.len(), 5, "{denied:#?}");
    assert!(denied.iter().all(|r| r["actor"] == "webhook"
        && r["target"] == "bob@example.com"
        && r["result"].as_str().unwrap().starts_with("unauthorized")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_calls_learn_nothing_and_unknown_tenants_and_switches_are_refused() {
    let s = Server::start().await;
    let before = s.audit().await.len();
    // Without a signature: 401, even for a tenant that does not exist.
    let mut ghost = payload(&s, "alice@example.com");
    ghost["tenant_id"] = json!("00000000-0000-4000-8000-000000000099");
    let raw = serde_json::to_vec(&ghost).unwrap();
    let a = post(&s, &raw, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&a);
    // Signed, for an unknown tenant: 404.
    let a = post(
        &s,
        &raw,
        &[("X-Session-Revocation-Signature", sign_plain(b"sr_x", &raw))],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.audit().await.len(),
        before,
        "nothing to attribute them to"
    );

    // The channel is off until turned on.
    let a = signed(&s, "sr_guess", &payload(&s, "alice@example.com"), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_code(), "channel_disabled");
    assert_eq!(
        a.error_message(),
        "The webhook channel is disabled for this tenant"
    );

    // On, but the master switch off: refused after the signature is checked.
    let secret = enable_webhook(&s, json!({"revocation_enabled": false})).await;
    let a = signed(&s, &secret, &payload(&s, "alice@example.com"), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.error_message(),
        "Session revocation is disabled for this tenant"
    );
    assert!(s.sim().revoked(Provider::Okta).is_empty());

    // Off and on again rotates the secret: the old one stops working.
    let off = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"webhook_enabled": false, "revocation_enabled": true})),
        )
        .await;
    assert_eq!(off.body["webhook_secret_set"], false);
    let rotated = enable_webhook(&s, json!({})).await;
    assert_ne!(rotated, secret);
    let a = signed(&s, &secret, &payload(&s, "alice@example.com"), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = signed(&s, &rotated, &payload(&s, "alice@example.com"), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let denied: Vec<_> = s
        .audit()
        .await
        .into_iter()
        .filter(|r| r["decision"] == "denied")
        .collect();
    assert!(denied.iter().any(|r| r["result"]
        .as_str()
        .unwrap()
        .starts_with("channel_disabled")));
    assert!(denied.iter().any(|r| r["result"]
        .as_str()
        .unwrap()
        .starts_with("revocation_disabled")));
    // The secret never reaches the audit trail.
    let all = serde_json::to_string(&s.audit().await).unwrap();
    assert!(!all.contains(&secret) && !all.contains(&rotated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_an_idempotency_key_replay_and_bad_bodies_are_refused_by_field() {
    let s = Server::start().await;
    let secret = enable_webhook(&s, json!({})).await;
    let key = [("Idempotency-Key", "soar-run-7".to_string())];
    let body = payload(&s, "alice@example.com");
    let first = signed(&s, &secret, &body, &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = signed(&s, &secret, &body, &key).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let revokes = s
        .sim()
        .calls_to(Provider::Okta)
        .into_iter()
        .filter(|c| c.step == Step::Revoke)
        .count();
    assert_eq!(revokes, 1, "revoked twice");
    let other = signed(&s, &secret, &payload(&s, "bob@example.com"), &key).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.error_code(), "idempotency_conflict");

    let mut b = payload(&s, "alice@example.com");
    b["action"] = json!("delete_user");
    let a = signed(&s, &secret, &b, &[]).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error_message().starts_with("action:"), "{}", a.body);
    let a = signed(&s, &secret, &payload(&s, "a b@example.com"), &[]).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error_message().starts_with("username:"), "{}", a.body);
    let mut b = payload(&s, "alice@example.com");
    b["integration_targets"] = json!(["okta", "salesforce"]);
    let a = signed(&s, &secret, &b, &[]).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.error_message().starts_with("integration_targets:"),
        "{}",
        a.body
    );
    let mut b = payload(&s, "alice@example.com");
    b["integration_target"] = json!(["okta"]);
    let a = signed(&s, &secret, &b, &[]).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.error_message().starts_with("integration_target:"),
        "{}",
        a.body
    );

    let mut b = payload(&s, "alice@example.com");
    b["reason"] = json!("x".repeat(65 * 1024));
    let a = signed(&s, &secret, &b, &[]).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&a);
    assert_eq!(s.sim().revoked(Provider::Okta).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_polled_with_a_signature_over_the_path_and_query() {
    let s = Server::start().await;
    let secret = enable_webhook(&s, json!({})).await;
    let a = signed(&s, &secret, &payload(&s, "bob@example.com"), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let id = a.body["request_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/session-revocation/requests/{id}");
    let query = format!("tenant_id={}", s.tenant);
    let message = format!("{path}?{query}");
    assert_eq!(
        a.header("location"),
        Some(message.as_str()),
        "the answer says where to poll"
    );
    let get = |sig: String| {
        let s = &s;
        let url = s.url(&message);
        async move {
            answer(
                s.http
                    .get(url)
                    .header("X-Session-Revocation-Signature", sig)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let ok = get(sign_plain(secret.as_bytes(), message.as_bytes())).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["job_status"], "completed");
    assert_eq!(outcome(&ok.body, "okta"), "tokens_revoked");
    let ok = get(sign_timestamped(
        secret.as_bytes(),
        message.as_bytes(),
        now(),
    ))
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let bad = get(sign_plain(secret.as_bytes(), path.as_bytes())).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let none = answer(s.http.get(s.url(&message)).send().await.unwrap()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&none);

    // A key without sessions:read cannot poll.
    let (revoker, _) = s.key_with(&["sessions:revoke"]).await;
    let a = s.call_as(&revoker, Method::GET, &message, None, &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.error_message().contains("sessions:read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_is_answered_202_and_its_retry_reports_it_finished() {
    let s = Server::start_with(|c| c.webhook_wait = std::time::Duration::ZERO).await;
    s.sim().set_latency(std::time::Duration::from_millis(300));
    let secret = enable_webhook(&s, json!({})).await;
    let key = [("Idempotency-Key", "slow-1".to_string())];
    let body = payload(&s, "alice@example.com");
    let first = signed(&s, &secret, &body, &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert!(
        ["queued", "running"].contains(&first.body["job_status"].as_str().unwrap()),
        "{}",
        first.body
    );
    let poll = first.header("location").unwrap().to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let a = s.call(Method::GET, &poll, None).await;
        if a.body["job_status"] == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", a.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The client went away long ago; the work finished anyway, once.
    let again = signed(&s, &secret, &body, &key).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["request_id"], first.body["request_id"]);
    assert_eq!(again.body["job_status"], "completed");
    assert_eq!(s.sim().revoked(Provider::Okta).len(), 1);
}
