//! Operating Sever: health, readiness and metrics after real work; JSON logs
//! with request ids and no secret anywhere (responses, log lines, database
//! bytes); a graceful shutdown that finishes quick work and hands the rest
//! to the next server; and `sever demo` handing out working credentials.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_core::RequestId;
use sever_server::signature::{sign_plain, sign_timestamped};
use sever_sim::{Fault, FaultKind, Provider, Step};

use crate::helpers::{connector_configs, tenant_and_admin_key, wait_for, Api, Harness};
use crate::server::{answer, Answer, Server};

const WEBHOOK: &str = "/api/v1/session-revocation/webhook";

/// Samples of an exposition: (name, labels) -> value.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels, value.parse().unwrap())
        })
        .collect()
}

/// The value of `name` whose labels include `want` (0 when absent).
fn metric(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

async fn get(s: &Server, path: &str) -> (StatusCode, String, Option<String>) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, r.text().await.unwrap(), ct)
}

async fn post_webhook(s: &Server, body: &[u8], headers: &[(&str, String)]) -> Answer {
    let mut rb = s
        .http
        .post(s.url(WEBHOOK))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    answer(rb.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_report_revocations_retries_and_webhook_rejections() {
    let s = Server::start().await;
    let (status, body, _) = get(&s, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );
    let (status, body, _) = get(&s, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"ready"}"#)
    );

    // One revocation everywhere; Okta's lookup fails once and is retried.
    s.sim().set_fault(
        Provider::Okta,
        "alice@example.com",
        Fault::first(FaultKind::Status(503), Step::Lookup, 1),
    );
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "reason": "metrics"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "completed");

    // The webhook: one accepted call and one of each refusal.
    let on = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"webhook_enabled": true})),
        )
        .await;
    let secret = on.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let body = |user: &str| {
        serde_json::to_vec(&json!({
            "tenant_id": s.tenant.to_string(), "action": "revoke_sessions",
            "username": user, "integration_targets": ["okta"],
        }))
        .unwrap()
    };
    let sig = |b: &[u8]| {
        vec![(
            "X-Session-Revocation-Signature",
            sign_plain(secret.as_bytes(), b),
        )]
    };
    let good = body("bob@example.com");
    let mut keyed = sig(&good);
    keyed.push(("Idempotency-Key", "incident-1".into()));
    let ok = post_webhook(&s, &good, &keyed).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let replay = post_webhook(&s, &good, &keyed).await;
    assert_eq!(replay.status, StatusCode::OK, "a replay is no rejection");
    let other = body("carol@example.com");
    let mut conflict = sig(&other);
    conflict.push(("Idempotency-Key", "incident-1".into()));
    assert_eq!(
        post_webhook(&s, &other, &conflict).await.status,
        StatusCode::CONFLICT
    );
    // Tampered: signed over one body, another sent.
    let tampered = post_webhook(&s, &body("carol@example.com"), &sig(&good)).await;
    assert_eq!(
        tampered.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        tampered.body
    );
    assert!(tampered.error_message().contains("invalid signature"));
    let wrong = post_webhook(
        &s,
        &good,
        &[(
            "X-Session-Revocation-Signature",
            sign_plain(b"sr_wrong", &good),
        )],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post_webhook(&s, &good, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let stale_at = chrono::Utc::now().timestamp() - 600;
    let stale = post_webhook(
        &s,
        &good,
        &[(
            "X-Session-Revocation-Signature",
            sign_timestamped(secret.as_bytes(), &good, stale_at),
        )],
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let big = serde_json::to_vec(&json!({
        "tenant_id": s.tenant.to_string(), "action": "revoke_sessions",
        "username": "bob@example.com", "reason": "x".repeat(70 * 1024),
    }))
    .unwrap();
    assert_eq!(
        post_webhook(&s, &big, &sig(&big)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let ghost = serde_json::to_vec(&json!({
        "tenant_id": "00000000-0000-4000-8000-0000000000aa", "action": "revoke_sessions",
        "username": "bob@example.com",
    }))
    .unwrap();
    assert_eq!(
        post_webhook(&s, &ghost, &sig(&ghost)).await.status,
        StatusCode::NOT_FOUND
    );
    s.call(
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"webhook_enabled": false})),
    )
    .await;
    let off = post_webhook(&s, &good, &sig(&good)).await;
    assert_eq!(off.error_code(), "channel_disabled");

    let (status, text, ct) = get(&s, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.unwrap().starts_with("application/openmetrics-text"));
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let m = |name: &str, labels: &[(&str, &str)]| metric(&text, name, labels);
    for (provider, outcome, n) in [
        ("okta", "tokens_revoked", 2.0),
        ("entra", "revoked", 1.0),
        ("google_workspace", "revoked", 1.0),
        ("slack_enterprise", "revoked", 1.0),
        ("miro", "revoked", 1.0),
    ] {
        assert_eq!(
            m(
                "sever_connector_outcomes_total",
                &[("provider", provider), ("outcome", outcome)]
            ),
            n,
            "{provider} {outcome}\n{text}"
        );
        assert!(
            m(
                "sever_provider_call_duration_seconds_count",
                &[("provider", provider), ("step", "revoke")]
            ) >= 1.0,
            "{provider} revoke latency\n{text}"
        );
    }
    assert_eq!(
        m(
            "sever_provider_retries_total",
            &[("provider", "okta"), ("step", "lookup")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        m(
            "sever_provider_call_duration_seconds_count",
            &[("provider", "okta"), ("step", "lookup")]
        ),
        3.0,
        "two lookups for alice (one retried), one for bob"
    );
    assert_eq!(
        m(
            "sever_revocations_finished_total",
            &[("status", "completed")]
        ),
        2.0
    );
    for (reason, n) in [
        ("bad_signature", 2.0),
        ("missing_signature", 1.0),
        ("stale_timestamp", 1.0),
        ("payload_too_large", 1.0),
        ("idempotency_conflict", 1.0),
        ("unknown_tenant", 1.0),
        ("channel_disabled", 1.0),
    ] {
        assert_eq!(
            m("sever_webhook_rejections_total", &[("reason", reason)]),
            n,
            "{reason}\n{text}"
        );
    }
    assert_eq!(
        m(
            "sever_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/v1/revocations"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        m(
            "sever_http_requests_total",
            &[("method", "POST"), ("route", WEBHOOK), ("status", "401")]
        ),
        4.0
    );
    assert_eq!(m("sever_executions_in_flight", &[]), 0.0);
    assert!(!text.contains("alice@example.com") && !text.contains(&secret));

    // Readiness follows the schema: a migration missing is "not ready",
    // while the process stays healthy.
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", s.dir.path().join("sever.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (status, body, _) = get(&s, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"status\":\"unavailable\""), "{body}");
    assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
}

// ------------------------------------------------------- logs and secrets

/// Calls to a `sever serve` child, keeping every answer's body.
struct Recorder {
    api: Api,
    bodies: Vec<String>,
}

impl Recorder {
    async fn call(&mut self, m: Method, path: &str, body: Option<Value>) -> Answer {
        let a = self.api.call(m, path, body).await;
        self.bodies.push(a.body.to_string());
        a
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_logs_are_json_lines_with_request_ids_and_no_canary_secret_appears_anywhere() {
    let h = Harness::start().await;
    h.edit_config(|t| format!("{t}\n[server]\nlog_format = \"json\"\n"));
    let canary = format!("canary{}", uuid::Uuid::new_v4().simple());
    let okta_token = format!("{canary}okta");
    let entra_secret = format!("{canary}entra");
    let password = format!("{canary}password");

    let (tenant, key) = tenant_and_admin_key(&h, "Acme").await;
    let run = h
        .sever_with_stdin(
            &[
                "users",
                "create",
                "--tenant",
                &tenant,
                "--email",
                "owner@acme.test",
                "--role",
                "owner",
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let mut cmd = h.command();
    cmd.env("SEVER_LOG", "debug");
    let server = crate::helpers::Served::start(cmd).await;
    let mut rec = Recorder {
        api: Api::new(&server.base, &key),
        bodies: Vec::new(),
    };

    // Connectors with canary credentials: Okta's token and Entra's secret
    // are wrong, so their calls fail, and the failures are logged.
    for mut c in connector_configs(&h.sims) {
        match c["provider"].as_str().unwrap() {
            "okta" => c["api_token"] = json!(okta_token),
            "entra" => c["client_secret"] = json!(entra_secret),
            _ => {}
        }
        let a = rec.call(Method::POST, "/api/v1/connectors", Some(c)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let on = rec
        .api
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"revocation_enabled": true, "webhook_enabled": true})),
        )
        .await;
    // The one answer that shows the webhook secret, once.
    let webhook_secret = on.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();

    let revoked = rec
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "reason": "canary"})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["status"], "failed", "okta and entra fail");
    let http_request_id = revoked.header("x-request-id").unwrap().to_string();
    for path in [
        "/api/v1/connectors/okta/test",
        "/api/v1/connectors/entra/test",
    ] {
        rec.call(Method::POST, path, None).await;
    }
    rec.call(
        Method::POST,
        "/api/v1/revocations/preview",
        Some(json!({"username": "bob@example.com"})),
    )
    .await;
    for path in [
        "/api/v1/connectors",
        "/api/v1/connectors/okta",
        "/api/v1/settings",
        "/api/v1/api-keys",
        "/api/v1/audit?limit=1000",
        "/api/v1/revocations",
    ] {
        rec.call(Method::GET, path, None).await;
    }
    let raw = serde_json::to_vec(&json!({
        "tenant_id": tenant, "action": "revoke_sessions", "username": "bob@example.com",
        "integration_targets": ["google_workspace"],
    }))
    .unwrap();
    let hook = answer(
        rec.api
            .http
            .post(format!("{}{WEBHOOK}", server.base))
            .header(
                "X-Session-Revocation-Signature",
                sign_plain(webhook_secret.as_bytes(), &raw),
            )
            .body(raw.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(hook.status, StatusCode::OK, "{}", hook.body);
    rec.bodies.push(hook.body.to_string());
    let audit_export = h.sever(&["audit", "export", "--tenant", &tenant]).await;
    rec.bodies.push(audit_export.stdout());

    // Give the last log lines a moment to land, then look everywhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.stderr();
    let db = {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(h.dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.to_string_lossy().contains("sever.db") {
                all.extend(std::fs::read(p).unwrap());
            }
        }
        all
    };
    let db = String::from_utf8_lossy(&db);
    for (what, secret) in [
        ("the Okta token", okta_token.as_str()),
        ("the Entra secret", entra_secret.as_str()),
        ("the owner's password", password.as_str()),
        ("the API key", key.as_str()),
        ("the webhook secret", webhook_secret.as_str()),
        ("the canary", canary.as_str()),
    ] {
        for body in &rec.bodies {
            assert!(!body.contains(secret), "{what} in an answer: {body}");
        }
        assert!(!logs.contains(secret), "{what} in the log");
        assert!(!db.contains(secret), "{what} in the database file");
    }

    // Every line is a JSON object; lines written while serving an HTTP
    // request carry its id, the one its answer had in X-Request-Id.
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{logs}");
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == http_request_id.as_str())
        .collect();
    assert!(
        of_request.iter().any(|l| l["message"] == "answered"
            && l["status"] == 200
            && l["span"]["route"] == "/api/v1/revocations"),
        "the access log line of the revocation: {of_request:#?}"
    );
    assert!(
        of_request
            .iter()
            .any(|l| l["message"] == "request finished"),
        "the engine's lines carry the HTTP request id: {of_request:#?}"
    );
    drop(server);
}

// ------------------------------------------------------- graceful shutdown

fn revoke_calls(h: &Harness, p: Provider) -> Vec<sever_sim::CallRecord> {
    h.sim()
        .calls_to(p)
        .into_iter()
        .filter(|c| c.step == Step::Revoke)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_quick_work_finish_and_hands_the_rest_to_the_next_server_at_once() {
    let h = Harness::start().await;
    // A minute-long lease: the next server can only take the request over
    // quickly if the first one gave it back.
    h.edit_config(|t| {
        format!(
            "lease_ttl_secs = 60\n{t}\n[server]\napi_wait_secs = 0\nshutdown_grace_secs = 2\nworker_interval_ms = 200\n"
        )
    });
    let (_tenant, key) = tenant_and_admin_key(&h, "Acme").await;
    let mut first = h.serve().await;
    let api = Api::new(&first.base, &key);
    for c in connector_configs(&h.sims) {
        let a = api.call(Method::POST, "/api/v1/connectors", Some(c)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    api.call(
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"revocation_enabled": true})),
    )
    .await;

    // Alice's Slack revoke hangs; Bob's Okta revoke takes a second.
    h.sim().set_fault(
        Provider::Slack,
        "alice@example.com",
        Fault::first(FaultKind::Slow(Duration::from_secs(30)), Step::Revoke, 1),
    );
    h.sim().set_fault(
        Provider::Okta,
        "bob@example.com",
        Fault::first(
            FaultKind::Slow(Duration::from_millis(1200)),
            Step::Revoke,
            1,
        ),
    );
    let mut ids = Vec::new();
    for user in ["alice@example.com", "bob@example.com"] {
        let a = api
            .call(
                Method::POST,
                "/api/v1/revocations",
                Some(json!({"username": user})),
            )
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        ids.push(RequestId::parse(a.body["id"].as_str().unwrap()).unwrap());
    }
    let (alice, bob) = (ids[0], ids[1]);
    let store = sever_store::open(&format!("sqlite://{}", h.db_path().display()))
        .await
        .unwrap();
    let recorded = |id| {
        let store = store.clone();
        async move {
            let r = store.get_request(id).await.unwrap().unwrap();
            r.results.iter().filter(|r| r.outcome.is_some()).count()
        }
    };
    wait_for("alice and bob have four outcomes each", 20, async || {
        recorded(alice).await == 4 && recorded(bob).await == 4
    })
    .await;

    let stopping = Instant::now();
    let status = first.terminate().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}\n{}", first.stderr());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "waited for the grace period, not for the hung call: {took:?}"
    );
    let bob_now = store.get_request(bob).await.unwrap().unwrap();
    assert_eq!(
        bob_now.status.as_str(),
        "completed",
        "finished within the grace period"
    );
    let alice_now = store.get_request(alice).await.unwrap().unwrap();
    assert_eq!(alice_now.status.as_str(), "running");
    let lease = store
        .unfinished_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.id == alice)
        .unwrap();
    assert_eq!(
        (lease.lease_owner, lease.lease_expires_at),
        (None, None),
        "released"
    );
    assert!(
        first
            .stderr()
            .contains("released for another process to finish"),
        "{}",
        first.stderr()
    );

    let restarted = Instant::now();
    let second = h.serve().await;
    let api = Api::new(&second.base, &key);
    let mut finished = Value::Null;
    wait_for("the next server finishes alice's request", 15, async || {
        let a = api
            .call(Method::GET, &format!("/api/v1/revocations/{alice}"), None)
            .await;
        finished = a.body;
        finished["status"] == "completed"
    })
    .await;
    assert!(
        restarted.elapsed() < Duration::from_secs(15),
        "long before the 60 s lease would have expired"
    );
    assert_eq!(
        crate::server::outcome(&finished, "slack_enterprise"),
        "revoked"
    );
    // Finished calls were not repeated: one revoke per person and app
    // (Bob is in neither Slack nor Miro), and only Alice's interrupted
    // Slack revoke was made again.
    for (p, n) in [
        (Provider::Okta, 2),
        (Provider::Entra, 2),
        (Provider::Google, 2),
        (Provider::Miro, 1),
    ] {
        assert_eq!(revoke_calls(&h, p).len(), n, "{p:?}");
    }
    let slack = revoke_calls(&h, Provider::Slack);
    assert_eq!(
        slack.iter().filter(|c| c.status == 200).count(),
        1,
        "{slack:?}"
    );
    assert!(slack.len() <= 2, "{slack:?}");
}

// ----------------------------------------------------------------- demo

fn demo_command(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sever"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(home)
        .stdin(Stdio::null());
    c
}

fn read_credentials(path: &std::path::Path) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the credentials file is private");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for field in [
        "base_url",
        "tenant_id",
        "api_key",
        "webhook_secret",
        "owner_email",
        "owner_password",
    ] {
        assert!(
            v[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {v}"
        );
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sever_demo_writes_credentials_that_work_against_the_running_demo() {
    let home = tempfile::tempdir().unwrap();

    // --once: the showcase, the credentials file, exit 0.
    let once_file = home.path().join("once.json");
    let mut c = demo_command(home.path());
    c.args(["demo", "--once", "--addr", "127.0.0.1:0", "--dir", "once"])
        .arg("--credentials-out")
        .arg(&once_file);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("$ sever revoke carol@example.com"),
        "{stdout}"
    );
    let once = read_credentials(&once_file);
    assert!(
        !stdout.contains(once["api_key"].as_str().unwrap()),
        "written, not printed"
    );
    assert!(!stdout.contains(once["owner_password"].as_str().unwrap()));

    // Serving: the credentials work while it runs.
    let file = home.path().join("creds.json");
    let mut c = demo_command(home.path());
    c.args(["demo", "--addr", "127.0.0.1:0", "--dir", "served"])
        .arg("--credentials-out")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let path = file.clone();
    wait_for("the demo writes its credentials", 120, async || {
        path.exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let creds = read_credentials(&file);
    let base = creds["base_url"].as_str().unwrap().to_string();
    let tenant = creds["tenant_id"].as_str().unwrap().to_string();
    let api = Api::new(&base, creds["api_key"].as_str().unwrap());

    let ready = api.http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let connectors = api.call(Method::GET, "/api/v1/connectors", None).await;
    let list = connectors
        .body
        .as_array()
        .unwrap_or_else(|| panic!("{}", connectors.body));
    assert_eq!(list.len(), 5, "{}", connectors.body);
    assert!(list
        .iter()
        .all(|c| c["enabled"] == true && !c["secrets_set"].as_array().unwrap().is_empty()));
    let a = api
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "bob@example.com"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "completed");

    let raw = serde_json::to_vec(&json!({
        "tenant_id": tenant, "action": "revoke_sessions", "username": "alice@example.com",
        "integration_targets": ["okta"],
    }))
    .unwrap();
    let secret = creds["webhook_secret"].as_str().unwrap();
    let hook = answer(
        api.http
            .post(format!("{base}{WEBHOOK}"))
            .header(
                "X-Session-Revocation-Signature",
                sign_plain(secret.as_bytes(), &raw),
            )
            .body(raw)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(hook.status, StatusCode::OK, "{}", hook.body);
    assert_eq!(hook.body["job_status"], "completed");

    // The owner signs in to the web UI.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let pre = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("sever_signin="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();
    let html = page.text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let token = html[at..at + html[at..].find('"').unwrap()].to_string();
    let signed_in = http
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("sever_signin={pre}"))
        .form(&[
            ("_csrf", token.as_str()),
            ("email", creds["owner_email"].as_str().unwrap()),
            ("password", creds["owner_password"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);

    // The demo is the server of its database: a second one is refused.
    let mut c = demo_command(home.path());
    c.args(["serve", "--bind", "127.0.0.1:0"])
        .env("SEVER_CONFIG", home.path().join("served/sever.toml"));
    let second = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another sever serve is using"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // The first demo's key belongs to another directory's database.
    let stale = Api::new(&base, once["api_key"].as_str().unwrap())
        .call(Method::GET, "/api/v1/connectors", None)
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "{s:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sever demo did not stop on Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
