//! The HTTP service end to end: the real server on 127.0.0.1:0 in this
//! process, a temp SQLite database, the provider simulators, and a tenant,
//! key and connectors made the way an operator makes them (library calls
//! for the tenant and first key, the API for everything else).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_connectors::HttpClient;
use sever_core::admin::{AuditQuery, Scope};
use sever_core::policy::{Policy, PolicyResolver};
use sever_core::{
    Channel, Database, EngineSettings, Reason, RetryPolicy, RevocationInput, SystemClock, TenantId,
    Username,
};
use sever_server::{Actor, AppState, ServerConfig};
use sever_sim::{demo, Directory, Provider, SimHandle, SimOptions, Sims, Step};
use sever_store::XChaChaSealer;

pub struct Server {
    pub sims: Sims,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub db: Arc<dyn Database>,
    pub state: AppState,
    pub tenant: TenantId,
    /// A key with every scope.
    pub key: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A parsed answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_full(configure, Arc::new(SystemClock)).await
    }

    /// [`Server::start_with`], the server reading the time from `clock`.
    pub async fn start_full(
        configure: impl FnOnce(&mut ServerConfig),
        clock: Arc<dyn sever_core::Clock>,
    ) -> Self {
        let sims = Sims::start(Directory::demo(), SimOptions::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = sever_store::open(&format!(
            "sqlite://{}",
            dir.path().join("sever.db").display()
        ))
        .await
        .unwrap();
        let sealer = Arc::new(XChaChaSealer::from_bytes(&[7u8; 32]).unwrap());
        let engine = EngineSettings {
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                attempt_timeout: Duration::from_secs(5),
            },
            request_deadline: Duration::from_secs(20),
            lease_ttl: Duration::from_secs(30),
            max_parallel_connectors: 0,
        };
        let mut config = ServerConfig {
            worker_interval: Duration::from_millis(200),
            policy: Arc::new(PolicyResolver::new(
                None,
                "server default without limits (tests)",
                unlimited_server_default(),
            )),
            ..ServerConfig::default()
        };
        configure(&mut config);
        let state = AppState::new(
            db.clone(),
            sealer,
            clock,
            HttpClient::new().unwrap(),
            engine,
            config,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sever_server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let cli = Actor::cli(TenantId::DEFAULT, "cli:test");
        let tenant = sever_server::create_tenant(&*db, &SystemClock, None, "Acme", &cli)
            .await
            .unwrap();
        let key = sever_server::create_api_key(
            &*db,
            &SystemClock,
            tenant.id,
            "test-admin",
            &Scope::ALL,
            &cli,
        )
        .await
        .unwrap();
        let s = Server {
            sims,
            dir,
            base,
            db,
            state,
            tenant: tenant.id,
            key: key.plaintext,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            stop: Some(tx),
        };
        for c in s.connector_configs() {
            let a = s.call(Method::POST, "/api/v1/connectors", Some(c)).await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        }
        let a = s
            .call(
                Method::PUT,
                "/api/v1/settings",
                Some(json!({"revocation_enabled": true})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        s
    }

    pub fn sim(&self) -> SimHandle {
        self.sims.handle()
    }

    /// The five demo connectors, pointing at the simulators.
    pub fn connector_configs(&self) -> Vec<Value> {
        let b = |p| self.sims.base_url(p);
        vec![
            json!({"provider": "okta", "base_url": b(Provider::Okta), "api_token": demo::OKTA_API_TOKEN, "oauth_tokens": true}),
            json!({
                "provider": "entra",
                "base_url": format!("{}/v1.0", b(Provider::Entra)),
                "token_url": format!("{}/{}/oauth2/v2.0/token", b(Provider::Entra), demo::ENTRA_TENANT_ID),
                "tenant_id": demo::ENTRA_TENANT_ID,
                "client_id": demo::ENTRA_CLIENT_ID,
                "client_secret": demo::ENTRA_CLIENT_SECRET,
            }),
            json!({
                "provider": "google_workspace",
                "base_url": b(Provider::Google),
                "token_url": format!("{}/token", b(Provider::Google)),
                "service_account_json": demo::GOOGLE_SERVICE_ACCOUNT_JSON,
                "admin_subject": demo::GOOGLE_ADMIN_SUBJECT,
            }),
            json!({"provider": "slack_enterprise", "base_url": format!("{}/api", b(Provider::Slack)), "token": demo::SLACK_USER_TOKEN}),
            json!({"provider": "miro", "base_url": b(Provider::Miro), "token": demo::MIRO_TOKEN}),
        ]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A call with the all-scopes key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(&self.key, method, path, body, &[]).await
    }

    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut rb = self.http.request(method, self.url(path));
        if !key.is_empty() {
            rb = rb.bearer_auth(key);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        answer(rb.send().await.unwrap()).await
    }

    /// A key of this tenant with `scopes`.
    pub async fn key_with(&self, scopes: &[&str]) -> (String, String) {
        let a = self
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(json!({"name": format!("k-{}", scopes.join("+")), "scopes": scopes})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        (
            a.body["key"].as_str().unwrap().to_string(),
            a.body["id"].as_str().unwrap().to_string(),
        )
    }

    pub async fn audit(&self) -> Vec<Value> {
        let records = self
            .db
            .list_audit(&AuditQuery {
                tenant_id: Some(self.tenant),
                after_seq: None,
                limit: 10_000,
            })
            .await
            .unwrap();
        records
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    pub fn db_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.to_string_lossy().contains("sever.db") {
                all.extend(std::fs::read(p).unwrap());
            }
        }
        all
    }
}

/// The policy of the in-process test server (unless a test sets its own,
/// as policy.rs does): the server's built-in default — what each action
/// needs, what is denied — without its rate limits, cooldown and
/// blast-radius caps, which tests of other features would trip (they
/// revoke one person several times a minute). Stored policies still
/// apply. `sever serve` children run under the real default.
pub fn unlimited_server_default() -> Policy {
    let mut doc = Policy::server_default().to_value();
    let d = doc.as_object_mut().unwrap();
    d.remove("blast_radius");
    for (_, tool) in d["tools"].as_object_mut().unwrap() {
        let t = tool.as_object_mut().unwrap();
        t.remove("limits");
        t.remove("cooldown");
    }
    Policy::from_value(doc).unwrap()
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

pub fn outcome<'a>(req: &'a Value, instance: &str) -> &'a str {
    req["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == instance)
        .unwrap_or_else(|| panic!("no result for {instance} in {req:#}"))["outcome"]
        .as_str()
        .unwrap_or("pending")
}

/// Every error answer has the one shape, and its request id is the header's.
pub fn assert_error_shape(a: &Answer) {
    let id = a.header("x-request-id").expect("X-Request-Id header");
    assert_eq!(a.body["error"]["request_id"], id, "{}", a.body);
    assert!(!a.error_code().is_empty(), "{}", a.body);
    assert!(!a.error_message().is_empty(), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_over_the_api_ends_sessions_everywhere_and_is_recorded_and_counted() {
    let s = Server::start().await;
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "reason": "account takeover"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.header("x-request-id").is_some());
    let req = &a.body;
    assert_eq!(req["status"], "completed", "{req:#}");
    assert_eq!(req["channel"], "api");
    assert_eq!(outcome(req, "okta"), "tokens_revoked");
    for name in ["entra", "google_workspace", "slack_enterprise", "miro"] {
        assert_eq!(outcome(req, name), "revoked", "{name}: {req:#}");
    }
    for p in Provider::ALL {
        assert_eq!(s.sim().revoked(p), vec!["alice@example.com".to_string()]);
    }
    let id = req["id"].as_str().unwrap();
    assert_eq!(
        a.header("location"),
        Some(format!("/api/v1/revocations/{id}").as_str())
    );

    // The stored record says the same, attempts included.
    let got = s
        .call(Method::GET, &format!("/api/v1/revocations/{id}"), None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body, req);
    assert!(!got.body["results"][0]["attempts"]
        .as_array()
        .unwrap()
        .is_empty());

    // A failed request is listed but not counted as usage.
    sever_sim::demo_faults(&s.sim());
    let carol = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "carol@example.com", "integration_targets": ["entra"]})),
        )
        .await;
    assert_eq!(carol.body["status"], "failed", "{}", carol.body);
    let list = s
        .call(Method::GET, "/api/v1/revocations?limit=1", None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["username"], "carol@example.com");
    let next = list.body["next_before"].as_str().unwrap();
    let page2 = s
        .call(
            Method::GET,
            &format!("/api/v1/revocations?limit=1&before={next}"),
            None,
        )
        .await;
    assert_eq!(page2.body["items"][0]["id"], id);
    let failed = s
        .call(Method::GET, "/api/v1/revocations?status=failed", None)
        .await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 1);
    let by_connector = s
        .call(Method::GET, "/api/v1/revocations?connector=miro", None)
        .await;
    assert_eq!(by_connector.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_connector.body["items"][0]["id"], id);
    let future = s
        .call(
            Method::GET,
            "/api/v1/revocations?since=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(future.body["items"], json!([]));
    let past = s
        .call(
            Method::GET,
            "/api/v1/revocations?until=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(past.body["items"], json!([]));
    let bad = s
        .call(Method::GET, "/api/v1/revocations?limit=0", None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.error_message().starts_with("limit"), "{}", bad.body);

    let usage = s.call(Method::GET, "/api/v1/usage", None).await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(usage.body["completed_revocations"], 1, "{}", usage.body);

    // The audit trail names the key, the channel and the request.
    let audit = s.audit().await;
    let rec = audit
        .iter()
        .find(|r| r["action"] == "revoke_sessions" && r["request_id"] == id)
        .unwrap_or_else(|| panic!("no audit record for {id}: {audit:#?}"));
    assert_eq!(rec["decision"], "allowed");
    assert_eq!(rec["channel"], "api");
    assert!(rec["actor"].as_str().unwrap().starts_with("key:"));
    assert_eq!(rec["client_ip"], "127.0.0.1");
    assert_eq!(rec["reason"], "account takeover");
    assert_eq!(rec["target"], "alice@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_looks_the_person_up_everywhere_and_revokes_nothing() {
    let s = Server::start().await;
    s.sim().reset_calls();
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations/preview",
            Some(json!({"username": "bob@example.com"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let result = |name: &str| {
        a.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(result("okta")["found"], true);
    assert!(result("okta")["subject_id"].as_str().is_some());
    assert_eq!(result("slack_enterprise")["found"], false);
    assert_eq!(result("slack_enterprise")["result"], "user_not_found");
    let calls = s.sim().calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.step != Step::Revoke),
        "a preview must not revoke: {calls:#?}"
    );
    for p in Provider::ALL {
        assert!(s.sim().revoked(p).is_empty());
    }
    // Nothing was recorded as a revocation either.
    let list = s.call(Method::GET, "/api/v1/revocations", None).await;
    assert_eq!(list.body["items"], json!([]));
    assert!(s
        .audit()
        .await
        .iter()
        .any(|r| r["action"] == "preview" && r["target"] == "bob@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_secrets_are_write_only_and_a_blank_secret_keeps_the_stored_one() {
    let s = Server::start().await;
    let canary = "xoxp-CANARY-5310000000001-never-shown";
    // A second Slack instance: several instances of one provider are allowed.
    let create = s
        .call(
            Method::POST,
            "/api/v1/connectors",
            Some(json!({
                "name": "slack-emea",
                "provider": "slack_enterprise",
                "base_url": format!("{}/api", s.sims.base_url(Provider::Slack)),
                "token": canary,
            })),
        )
        .await;
    assert_eq!(create.status, StatusCode::CREATED, "{}", create.body);
    assert_eq!(create.body["secrets_set"], json!(["token"]));
    let mut seen = vec![create.body.to_string()];
    let list = s.call(Method::GET, "/api/v1/connectors", None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 6);
    seen.push(list.body.to_string());
    let one = s
        .call(Method::GET, "/api/v1/connectors/slack-emea", None)
        .await;
    seen.push(one.body.to_string());

    // The canary token is wrong for the simulator: the test says so.
    let test = s
        .call(Method::POST, "/api/v1/connectors/slack-emea/test", None)
        .await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.body);
    assert_eq!(test.body["ok"], false, "{}", test.body);
    seen.push(test.body.to_string());

    // Put the real token in, then save with a blank token: it is kept.
    let fix = s
        .call(
            Method::PATCH,
            "/api/v1/connectors/slack-emea",
            Some(json!({"token": demo::SLACK_USER_TOKEN})),
        )
        .await;
    assert_eq!(fix.status, StatusCode::OK, "{}", fix.body);
    let blank = s
        .call(
            Method::PATCH,
            "/api/v1/connectors/slack-emea",
            Some(json!({"token": "", "mobile_only": true})),
        )
        .await;
    assert_eq!(blank.status, StatusCode::OK, "{}", blank.body);
    assert_eq!(blank.body["mobile_only"], true);
    assert_eq!(blank.body["secrets_set"], json!(["token"]));
    let test = s
        .call(Method::POST, "/api/v1/connectors/slack-emea/test", None)
        .await;
    assert_eq!(test.body["ok"], true, "{}", test.body);
    let one = s
        .call(Method::GET, "/api/v1/connectors/slack-emea", None)
        .await;
    assert_eq!(one.body["last_test"]["ok"], true, "{}", one.body);
    seen.push(one.body.to_string());

    // Disable it: targeting it is refused, naming the field.
    let off = s
        .call(
            Method::PATCH,
            "/api/v1/connectors/slack-emea",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(off.body["enabled"], false);
    let refused = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "integration_targets": ["slack-emea"]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.error_message().starts_with("integration_targets:"),
        "{}",
        refused.body
    );

    // Invalid configuration is refused with the field named, and nothing changes.
    let bad = s
        .call(
            Method::PATCH,
            "/api/v1/connectors/slack-emea",
            Some(json!({"base_url": "ftp://nope"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.error_message().starts_with("base_url:"), "{}", bad.body);
    assert_error_shape(&bad);
    let wrong_field = s
        .call(
            Method::POST,
            "/api/v1/connectors",
            Some(json!({"name": "okta-2", "provider": "okta", "base_url": "https://x.okta.com", "api_token": canary, "client_secret": canary})),
        )
        .await;
    assert_eq!(wrong_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong_field.error_message().starts_with("client_secret:"),
        "{}",
        wrong_field.body
    );
    seen.push(wrong_field.body.to_string());
    let missing = s
        .call(
            Method::POST,
            "/api/v1/connectors",
            Some(json!({"name": "okta-3", "provider": "okta", "base_url": "https://x.okta.com"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let dup = s
        .call(
            Method::POST,
            "/api/v1/connectors",
            Some(json!({"provider": "miro", "token": "x"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);

    // No answer, audit record or database byte ever holds the secret.
    for text in &seen {
        assert!(!text.contains(canary), "secret leaked: {text}");
        assert!(
            !text.contains(demo::SLACK_USER_TOKEN),
            "secret leaked: {text}"
        );
    }
    let audit = serde_json::to_string(&s.audit().await).unwrap();
    assert!(!audit.contains(canary) && !audit.contains(demo::SLACK_USER_TOKEN));
    assert!(audit.contains("connector.update"));
    let bytes = s.db_bytes();
    for secret in [canary, demo::SLACK_USER_TOKEN, demo::OKTA_API_TOKEN] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in the database file in the clear"
        );
    }

    let del = s
        .call(Method::DELETE, "/api/v1/connectors/slack-emea", None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = s
        .call(Method::GET, "/api/v1/connectors/slack-emea", None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_error_shape(&gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scopes_and_switches_refuse_with_clear_errors_that_are_audited() {
    let s = Server::start().await;
    let revoke = |key: String| {
        let s = &s;
        async move {
            s.call_as(
                &key,
                Method::POST,
                "/api/v1/revocations",
                Some(json!({"username": "alice@example.com"})),
                &[],
            )
            .await
        }
    };
    let none = revoke(String::new()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&none);
    let bogus = revoke("sk_not-a-real-key".into()).await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);

    let (reader, reader_id) = s.key_with(&["sessions:read"]).await;
    let a = revoke(reader.clone()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.error_message().contains("sessions:revoke"), "{}", a.body);
    assert_error_shape(&a);
    let a = s
        .call_as(&reader, Method::GET, "/api/v1/connectors", None, &[])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.error_message().contains("'admin'"), "{}", a.body);

    // The key list shows the reader by prefix, never the key; its last use is recorded.
    let keys = s.call(Method::GET, "/api/v1/api-keys", None).await;
    assert!(!keys.body.to_string().contains(&reader));
    let listed = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == reader_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["prefix"], &reader[..11]);
    assert!(listed["last_used_at"].is_string(), "{listed}");

    // Revoked keys stop working at once.
    let del = s
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{reader_id}"),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.body);
    let a = s
        .call_as(&reader, Method::GET, "/api/v1/revocations", None, &[])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.error_message().contains("revoked"), "{}", a.body);

    // The master switch off refuses every revocation.
    let off = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"revocation_enabled": false})),
        )
        .await;
    assert_eq!(off.body["revocation_enabled"], false);
    let a = revoke(s.key.clone()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_code(), "revocation_disabled");
    assert_eq!(
        a.error_message(),
        "Session revocation is disabled for this tenant"
    );
    assert!(s.sim().revoked(Provider::Okta).is_empty());

    let bad = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"revocation_enabld": true})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.error_message().starts_with("revocation_enabld:"),
        "{}",
        bad.body
    );

    let audit = s.audit().await;
    let denied: Vec<_> = audit.iter().filter(|r| r["decision"] == "denied").collect();
    assert!(
        denied.iter().any(|r| r["action"] == "revoke_sessions"
            && r["actor"] == format!("key:{reader_id}")
            && r["result"].as_str().unwrap().contains("sessions:revoke")),
        "{denied:#?}"
    );
    assert!(denied.iter().any(
        |r| r["action"] == "authenticate" && r["result"].as_str().unwrap().contains("revoked")
    ));
    assert!(denied.iter().any(|r| r["action"] == "revoke_sessions"
        && r["result"]
            .as_str()
            .unwrap()
            .contains("revocation_disabled")));
    let settings = audit
        .iter()
        .find(|r| r["action"] == "settings.update" && r["decision"] == "allowed")
        .unwrap();
    assert_eq!(settings["detail"]["after"]["revocation_enabled"], true);

    // The audit endpoint pages, and streams JSON lines.
    let page = s.call(Method::GET, "/api/v1/audit?limit=2", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let after = page.body["next_after_seq"].as_i64().unwrap();
    let rest = s
        .call(
            Method::GET,
            &format!("/api/v1/audit?after_seq={after}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(
        rest.body["items"].as_array().unwrap().len() + 2,
        s.audit().await.len()
    );
    let lines = s
        .http
        .get(s.url("/api/v1/audit?format=jsonl"))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lines.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = lines.text().await.unwrap();
    assert_eq!(text.lines().count(), s.audit().await.len());
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert!(v["hash"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let s = Server::start().await;
    let body = json!({"username": "alice@example.com", "integration_targets": ["okta"]});
    let key = [("Idempotency-Key", "incident-42")];
    let first = s
        .call_as(
            &s.key,
            Method::POST,
            "/api/v1/revocations",
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = s
        .call_as(
            &s.key,
            Method::POST,
            "/api/v1/revocations",
            Some(body),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = s
        .call_as(
            &s.key,
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "bob@example.com"})),
            &key,
        )
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.error_code(), "idempotency_conflict");
    let okta_revokes = s
        .sim()
        .calls_to(Provider::Okta)
        .into_iter()
        .filter(|c| c.step == Step::Revoke)
        .count();
    assert_eq!(okta_revokes, 1, "revoked twice");

    // A created key is replayed too (it was sealed while stored).
    let kb = json!({"name": "soar", "scopes": ["sessions:revoke"]});
    let k1 = s
        .call_as(
            &s.key,
            Method::POST,
            "/api/v1/api-keys",
            Some(kb.clone()),
            &[("Idempotency-Key", "mk-1")],
        )
        .await;
    let k2 = s
        .call_as(
            &s.key,
            Method::POST,
            "/api/v1/api-keys",
            Some(kb),
            &[("Idempotency-Key", "mk-1")],
        )
        .await;
    assert_eq!(k1.status, StatusCode::CREATED);
    assert_eq!(k2.status, StatusCode::CREATED);
    assert_eq!(k1.body["key"], k2.body["key"]);
    let plaintext = k1.body["key"].as_str().unwrap();
    let bytes = s.db_bytes();
    assert!(!bytes
        .windows(plaintext.len())
        .any(|w| w == plaintext.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_answer_in_the_one_error_shape() {
    let s = Server::start().await;
    let a = s.call(Method::GET, "/api/v1/nope", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_error_shape(&a);
    let a = s.call(Method::DELETE, "/api/v1/revocations", None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(&a);
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "integration_target": ["okta"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.error_message().starts_with("integration_target:"),
        "{}",
        a.body
    );
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "not an email@x"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error_message().starts_with("username:"), "{}", a.body);
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "integration_targets": ["salesforce"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error_message().contains("salesforce"), "{}", a.body);
    let big = json!({"username": "alice@example.com", "reason": "x".repeat(70 * 1024)});
    let a = s.call(Method::POST, "/api/v1/revocations", Some(big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&a);
    let a = s
        .call(Method::GET, "/api/v1/revocations/not-a-uuid", None)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = s
        .call(
            Method::GET,
            &format!("/api/v1/revocations/{}", sever_core::RequestId::new()),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(s.sim().calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_finishes_requests_that_were_queued_but_never_run() {
    let s = Server::start().await;
    // As if a replica wrote the request and died before running it.
    let engine = s.state.engine(s.tenant).await.unwrap();
    let queued = engine
        .submit(RevocationInput {
            tenant_id: s.tenant,
            username: Username::parse("alice@example.com").unwrap(),
            reason: Reason::parse("left behind").unwrap(),
            channel: Channel::Api,
            requested_by: "test".into(),
            targets: Some(vec!["okta".into()]),
            source: None,
            client_ip: None,
        })
        .await
        .unwrap();
    let path = format!("/api/v1/revocations/{}", queued.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a = s.call(Method::GET, &path, None).await;
        if a.body["status"] == "completed" {
            assert_eq!(outcome(&a.body, "okta"), "tokens_revoked");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_description_is_the_checked_in_snapshot() {
    let s = Server::start().await;
    let r = s.http.get(s.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let served: Value = r.json().await.unwrap();
    let snapshot: Value =
        serde_json::from_str(include_str!("../../../server/tests/snapshots/openapi.json")).unwrap();
    assert_eq!(served, snapshot);
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"]["/api/v1/session-revocation/webhook"]["post"].is_object());
}
