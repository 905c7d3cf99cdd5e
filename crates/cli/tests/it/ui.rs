//! The web UI end to end: the real server on 127.0.0.1:0 with the
//! simulators (as in `server.rs`), people made the way an operator makes
//! them, and Debian's Chromium driven by `tests/ui/browser.cjs` through
//! playwright-core. Checks a browser cannot make (hand-crafted requests,
//! headers, lockout) use plain HTTP.
//!
//! `SEVER_SCREENSHOTS=1` saves the main pages to `docs/screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_core::admin::{AuditQuery, Role};
use sever_core::approvals::{Approval, ApprovalState};
use sever_core::oauth::OAuthClient;
use sever_core::{
    Channel, Reason, RequestId, RequestQuery, RequestStatus, RevocationInput, SystemClock,
    TenantId, Username,
};
use sever_server::Actor;
use sever_sim::{Fault, FaultKind, Provider, Step};

use crate::server::Server;

const PASSWORD: &str = "correct horse battery staple";
const ADMIN: &str = "ada.admin@acme.test";
const SECOND_ADMIN: &str = "bea.admin@acme.test";
const VIEWER: &str = "vic.viewer@acme.test";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The server of `server.rs` (tenant, connectors, revocation on) with an
/// admin and a viewer who sign in with [`PASSWORD`].
async fn start() -> Server {
    let s = Server::start().await;
    let cli = Actor::cli(TenantId::DEFAULT, "cli:test");
    for (email, role) in [
        (ADMIN, Role::Admin),
        (SECOND_ADMIN, Role::Admin),
        (VIEWER, Role::Viewer),
    ] {
        sever_server::create_user(&*s.db, &SystemClock, s.tenant, email, role, PASSWORD, &cli)
            .await
            .unwrap();
    }
    s
}

/// Run one scenario of `browser.cjs` against `s`; its last line of output.
async fn browser(s: &Server, scenario: &str) -> Value {
    let root = workspace();
    let pw = root.join(".ci/node_modules/playwright-core");
    assert!(
        pw.exists(),
        "the browser tests need playwright-core: run `npm ci --prefix .ci` (see .ci/run)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium: apt-get install -y chromium chromium-driver"
    );
    let mut cmd = std::process::Command::new("node");
    cmd.arg(root.join("crates/cli/tests/ui/browser.cjs"))
        .arg(scenario)
        .env("PLAYWRIGHT_CORE", &pw)
        .env("SEVER_URL", &s.base)
        .env("ADMIN_EMAIL", ADMIN)
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("SECOND_ADMIN_EMAIL", SECOND_ADMIN)
        .env("VIEWER_EMAIL", VIEWER)
        .env("VIEWER_PASSWORD", PASSWORD)
        .env("MIRO_URL", s.sims.base_url(Provider::Miro))
        .env("MIRO_TOKEN", sever_sim::demo::MIRO_TOKEN)
        .env("MIRO_ORG_ID", sever_sim::demo::MIRO_ORG_ID)
        .env("MCP_CLIENT_ID", "mcp_uitestclient0001");
    if std::env::var("SEVER_SCREENSHOTS").is_ok_and(|v| v == "1") {
        cmd.env("SCREENSHOT_DIR", root.join("docs/screenshots"));
    }
    // Off the async runtime, so the in-process server and simulators keep
    // serving; the script stops itself after 150 s whatever happens.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser scenario {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("scenario {scenario} printed no result ({e}):\n{stdout}"))
}

/// A person's browser without a browser: a session cookie and the CSRF
/// token of its pages.
struct WebClient {
    base: String,
    http: reqwest::Client,
    session: String,
    csrf: String,
}

fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &html[at + "name=\"_csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The answer to a sign-in attempt.
async fn try_sign_in(base: &str, email: &str, password: &str) -> reqwest::Response {
    let http = no_redirects();
    let page = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let pre = cookie_of(&page, "sever_signin").expect("the sign-in form sets its token cookie");
    let token = csrf_in(&page.text().await.unwrap());
    http.post(format!("{base}/ui/login"))
        .header(COOKIE, format!("sever_signin={pre}"))
        .form(&[
            ("_csrf", token.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

impl WebClient {
    async fn sign_in(base: &str, email: &str, password: &str) -> Self {
        let r = try_sign_in(base, email, password).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{email} signs in");
        let session = cookie_of(&r, "sever_session").expect("a session cookie");
        let mut c = WebClient {
            base: base.to_string(),
            http: no_redirects(),
            session,
            csrf: String::new(),
        };
        let page = c.get("/ui/dashboard").await;
        assert_eq!(page.status(), StatusCode::OK);
        c.csrf = csrf_in(&page.text().await.unwrap());
        c
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("sever_session={}", self.session))
            .send()
            .await
            .unwrap()
    }

    /// A form post as a script would send it: no browser headers.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(path, form, &[]).await
    }

    async fn post_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("sever_session={}", self.session))
            .form(form);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }
}

async fn requests_of(s: &Server) -> usize {
    s.db.list_requests(&RequestQuery {
        tenant_id: Some(s.tenant),
        status: None,
        username: None,
        limit: 1000,
        before: None,
    })
    .await
    .unwrap()
    .len()
}

async fn audit_of(s: &Server) -> Vec<Value> {
    s.db.list_audit(&AuditQuery {
        tenant_id: Some(s.tenant),
        after_seq: None,
        limit: 10_000,
    })
    .await
    .unwrap()
    .iter()
    .map(|r| serde_json::to_value(r).unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_previews_and_revokes_in_the_browser_and_watches_each_app_report() {
    let s = start().await;
    // Google answers alice slowly, so the page shows the request running;
    // Entra refuses carol (403), so the page shows a failure's detail.
    s.sim().set_fault(
        Provider::Google,
        "alice@example.com",
        Fault::new(FaultKind::Slow(Duration::from_millis(1500)), Step::Revoke),
    );
    sever_sim::demo_faults(&s.sim());

    let out = browser(&s, "responder").await;
    assert_eq!(out["requests"], 2);

    // What the page showed is what was done and recorded.
    for p in Provider::ALL {
        assert!(s
            .sim()
            .revoked(p)
            .contains(&"alice@example.com".to_string()));
    }
    let audit = audit_of(&s).await;
    let revokes: Vec<_> = audit
        .iter()
        .filter(|r| r["action"] == "revoke_sessions" && r["decision"] == "allowed")
        .collect();
    assert_eq!(revokes.len(), 2, "{revokes:#?}");
    for r in &revokes {
        assert_eq!(r["channel"], "ui");
        assert_eq!(r["actor"], format!("user:{ADMIN}"));
    }
    assert!(audit
        .iter()
        .any(|r| r["action"] == "preview" && r["channel"] == "ui"));
    assert!(audit.iter().any(|r| r["action"] == "ui.sign_in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_configures_a_connector_whose_secret_never_comes_back_and_sees_the_webhook_secret_once(
) {
    let s = start().await;
    // An MCP client registered itself (as POST /oauth/register does).
    let client = OAuthClient {
        id: "mcp_uitestclient0001".into(),
        name: "Claude Desktop".into(),
        redirect_uris: vec!["http://127.0.0.1:33418/callback".into()],
        metadata: json!({}),
        tenant_id: None,
        approved_by: None,
        approved_at: None,
        created_at: chrono::Utc::now(),
    };
    s.db.create_oauth_client(&client).await.unwrap();
    let out = browser(&s, "integrations").await;
    let approved = s.db.get_oauth_client(&client.id).await.unwrap().unwrap();
    assert_eq!(approved.tenant_id, Some(s.tenant));
    assert_eq!(
        approved.approved_by.as_deref(),
        Some(format!("user:{ADMIN}").as_str())
    );
    let secret = out["webhook_secret"].as_str().unwrap();

    // The stored connector works and its secret is nowhere in the API's answer either.
    let c = s
        .call(Method::GET, "/api/v1/connectors/miro_eu", None)
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(c.body["secrets_set"], json!(["token"]));
    assert_eq!(c.body["org_id"], sever_sim::demo::MIRO_ORG_ID);
    assert_eq!(
        c.body["base_url"],
        s.sims.base_url(Provider::Miro),
        "the refused save changed nothing"
    );
    assert_eq!(c.body["last_test"]["ok"], true);
    assert!(!c.body.to_string().contains(sever_sim::demo::MIRO_TOKEN));

    // The secret the dialog showed is the one the webhook checks.
    let body = json!({
        "tenant_id": s.tenant,
        "action": "revoke_sessions",
        "username": "bob@example.com",
        "reason": "SOAR containment",
        "integration_targets": ["okta"],
    })
    .to_string();
    let sig = sever_server::signature::sign_plain(secret.as_bytes(), body.as_bytes());
    let r = s
        .http
        .post(s.url("/api/v1/session-revocation/webhook"))
        .header("content-type", "application/json")
        .header("x-session-revocation-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"completed\""), "{text}");
    let audit = audit_of(&s).await;
    assert!(audit.iter().any(|r| r["action"] == "connector.create"
        && r["channel"] == "ui"
        && r["target"] == "miro_eu"));
    assert!(
        !serde_json::to_string(&audit).unwrap().contains(secret),
        "no secret in the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_the_pages_but_the_server_refuses_their_revocation_even_by_hand() {
    let s = start().await;
    browser(&s, "viewer").await;
    assert_eq!(
        requests_of(&s).await,
        0,
        "the tampered form revoked nothing"
    );

    // A hand-made POST with the viewer's valid session and CSRF token.
    let viewer = WebClient::sign_in(&s.base, VIEWER, PASSWORD).await;
    let r = viewer
        .post(
            "/ui/responder/revoke",
            &[
                ("_csrf", &viewer.csrf),
                ("username", "alice@example.com"),
                ("targets", "okta"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("may not run revocations"));
    for path in ["/ui/integrations/switches", "/ui/api-keys", "/ui/users"] {
        let r = viewer
            .post(
                path,
                &[
                    ("_csrf", &viewer.csrf),
                    ("switch", "revocation"),
                    ("value", "off"),
                    ("name", "mine"),
                    ("scopes", "admin"),
                    ("email", "eve@acme.test"),
                    ("role", "owner"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(requests_of(&s).await, 0);
    assert!(
        s.db.get_settings(s.tenant)
            .await
            .unwrap()
            .revocation_enabled
    );
    assert!(s.sim().revoked(Provider::Okta).is_empty());
    let audit = audit_of(&s).await;
    let refused = audit
        .iter()
        .filter(|r| {
            r["action"] == "revoke_sessions"
                && r["decision"] == "denied"
                && r["actor"] == format!("user:{VIEWER}")
        })
        .count();
    assert_eq!(
        refused, 2,
        "the tampered page and the hand-made post are both recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_api_keys_users_and_reads_the_verified_audit_trail() {
    let s = start().await;
    let out = browser(&s, "administration").await;
    // The key shown once was real, and is revoked now.
    let key = out["api_key"].as_str().unwrap();
    let a = s
        .call_as(key, Method::GET, "/api/v1/revocations", None, &[])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(a.error_message().contains("revoked"), "{}", a.body);
    // The disabled user cannot sign in.
    let r = try_sign_in(&s.base, "ana.analyst@acme.test", "a long enough passphrase").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let ana =
        s.db.find_user(s.tenant, "ana.analyst@acme.test")
            .await
            .unwrap()
            .unwrap();
    assert_eq!((ana.role, ana.disabled), (Role::Viewer, true));
}

/// A request held for approval, as the policy holds one: asked for by
/// [`ADMIN`] in the UI.
async fn held(s: &Server, username: &str, targets: &[&str]) -> RequestId {
    let engine = s.state.engine(s.tenant).await.unwrap();
    let input = RevocationInput {
        tenant_id: s.tenant,
        username: Username::parse(username).unwrap(),
        reason: Reason::parse("impossible travel").unwrap(),
        channel: Channel::Ui,
        requested_by: format!("user:{ADMIN}"),
        targets: Some(targets.iter().map(|t| t.to_string()).collect()),
        source: None,
        client_ip: None,
    };
    let (req, audit) = engine
        .prepare(input, RequestStatus::PendingApproval)
        .unwrap();
    let approval = Approval {
        request_id: req.id,
        tenant_id: s.tenant,
        action: audit.action.clone(),
        username: username.to_string(),
        request_reason: "impossible travel".into(),
        channel: Channel::Ui,
        requested_by: req.requested_by.clone(),
        requester_person: Some(ADMIN.to_string()),
        reasons: vec!["revoking a watched account needs a second person".into()],
        state: ApprovalState::Pending,
        created_at: req.created_at,
        expires_at: req.created_at + chrono::Duration::hours(1),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    };
    s.db.insert_pending_request(&req, &approval, &audit)
        .await
        .unwrap();
    req.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_admin_approves_a_held_request_which_then_runs_and_its_requester_cannot() {
    let s = start().await;
    let erin = held(&s, "erin@example.com", &["okta", "slack_enterprise"]).await;
    let bob = held(&s, "bob@example.com", &["okta"]).await;

    // The requester's own hand-made approval is refused.
    let ada = WebClient::sign_in(&s.base, ADMIN, PASSWORD).await;
    let r = ada
        .post(
            &format!("/ui/approvals/{erin}"),
            &[
                ("_csrf", &ada.csrf),
                ("decision", "approve"),
                ("reason", "me"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("request"));

    let out = browser(&s, "approvals").await;
    assert_eq!(out["approved"], erin.to_string());
    let done = s.db.get_request(erin).await.unwrap().unwrap();
    assert_eq!(done.status, RequestStatus::Completed);
    let denied = s.db.get_request(bob).await.unwrap().unwrap();
    assert_eq!(denied.status, RequestStatus::Rejected);
    assert!(s
        .sim()
        .revoked(Provider::Okta)
        .contains(&"erin@example.com".to_string()));
    assert!(!s
        .sim()
        .revoked(Provider::Okta)
        .contains(&"bob@example.com".to_string()));
    // The UI revocation the policy held, approved in the UI, ran too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s
        .sim()
        .revoked(Provider::Okta)
        .contains(&"alice@example.com".to_string())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "alice was never revoked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = s.db.get_approval(erin).await.unwrap().unwrap();
    assert_eq!(
        a.decided_by.as_deref(),
        Some(format!("user:{SECOND_ADMIN}").as_str())
    );
    assert_eq!(
        a.decision_reason.as_deref(),
        Some("confirmed with Erin's manager by phone")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_session_csrf_token_and_our_own_origin() {
    let s = start().await;
    let admin = WebClient::sign_in(&s.base, ADMIN, PASSWORD).await;
    let form = |csrf: &str| {
        vec![
            ("_csrf", csrf.to_string()),
            ("switch", "revocation".to_string()),
            ("value", "off".to_string()),
        ]
    };
    // No token, a wrong token: refused.
    for bad in [form(""), form("forged")] {
        let f: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = admin.post("/ui/integrations/switches", &f).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // The right token from another site's page: refused.
    let owned = form(&admin.csrf);
    let good: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        let r = admin
            .post_with("/ui/integrations/switches", &good, &headers)
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert!(
        s.db.get_settings(s.tenant)
            .await
            .unwrap()
            .revocation_enabled
    );
    // From our own page it goes through.
    let host = s.base.trim_start_matches("http://").to_string();
    let r = admin
        .post_with(
            "/ui/integrations/switches",
            &good,
            &[
                ("origin", &format!("http://{host}")),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        !s.db
            .get_settings(s.tenant)
            .await
            .unwrap()
            .revocation_enabled
    );
    // Without a session: to the sign-in page.
    let r = no_redirects()
        .get(format!("{}/ui/responder", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION].to_str().unwrap(),
        "/ui/login?next=%2Fui%2Fresponder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_sign_ins_lock_the_email_for_fifteen_minutes_and_sign_out_everywhere_ends_every_session(
) {
    let s = start().await;
    for i in 1..=5 {
        let r = try_sign_in(&s.base, ADMIN, "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        let text = r.text().await.unwrap();
        assert!(text.contains("Email or password is incorrect"), "{text}");
        if i == 5 {
            assert!(text.contains("locked for 15 minutes"), "{text}");
        }
    }
    // Now even the right password is refused, with the same answer for a
    // case variant of the email.
    let r = try_sign_in(&s.base, &ADMIN.to_uppercase(), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("Try again in 15 minutes"));
    // An unknown email answers like a wrong password.
    let r = try_sign_in(&s.base, "nobody@acme.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let denied = audit_of(&s)
        .await
        .iter()
        .filter(|r| r["action"] == "ui.sign_in" && r["decision"] == "denied")
        .count();
    assert_eq!(
        denied, 6,
        "each refused sign-in of the tenant's user is recorded"
    );

    // Sign out everywhere ends the viewer's other sessions too.
    let one = WebClient::sign_in(&s.base, VIEWER, PASSWORD).await;
    let two = WebClient::sign_in(&s.base, VIEWER, PASSWORD).await;
    let r = one
        .post("/ui/logout-everywhere", &[("_csrf", &one.csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(cookie_of(&r, "sever_session").is_some_and(|v| v.is_empty()));
    for c in [&one, &two] {
        let r = c.get("/ui/dashboard").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed out");
    }
    // Signing out here ends only this session.
    let three = WebClient::sign_in(&s.base, VIEWER, PASSWORD).await;
    let four = WebClient::sign_in(&s.base, VIEWER, PASSWORD).await;
    three.post("/ui/logout", &[("_csrf", &three.csrf)]).await;
    assert_eq!(
        three.get("/ui/dashboard").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(four.get("/ui/dashboard").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ui_answer_carries_strict_security_headers_and_a_locked_down_cookie() {
    let s = start().await;
    let r = try_sign_in(&s.base, ADMIN, PASSWORD).await;
    let cookie = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("sever_session="))
        .unwrap();
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("; Path=/ui"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: a Secure cookie would never come back"
    );
    let admin = WebClient::sign_in(&s.base, ADMIN, PASSWORD).await;
    for path in [
        "/ui/login",
        "/ui/responder",
        "/ui/dashboard",
        "/ui/requests",
        "/ui/approvals",
        "/ui/integrations",
        "/ui/policy",
        "/ui/api-keys",
        "/ui/users",
        "/ui/audit",
        "/ui/nowhere",
    ] {
        let r = admin.get(path).await;
        assert!(
            r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status()
        );
        let h = r.headers();
        assert_eq!(
            h["content-security-policy"],
            sever_server::ui::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(sever_server::ui::CONTENT_SECURITY_POLICY.starts_with(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'"
        ));
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "{path}: nothing inline"
        );
    }
    let js = admin.get("/ui/static/htmx.min.js").await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_watches_an_api_bulk_job_complete_and_an_admin_starts_one_on_the_page() {
    let s = start().await;
    // Miro answers alice slowly, so the job is still running when the page opens.
    s.sim().set_fault(
        Provider::Miro,
        "alice@example.com",
        Fault::new(FaultKind::Slow(Duration::from_secs(5)), Step::Revoke),
    );
    let a = s
        .call(
            Method::POST,
            "/api/v1/bulk-revocations",
            Some(json!({
                "usernames": ["carol@example.com", "alice@example.com", "not a person@@"],
                "reason": "token theft",
                "incident_id": "INC-UI",
                "integration_targets": ["miro"],
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let out = browser(&s, "bulk").await;
    assert_eq!(out["after"]["max"], 3, "{out}");
    assert_eq!(out["after"]["value"], 3, "{out}");
    assert!(out["during"]["value"].as_u64().unwrap() < 3, "{out}");
    assert_eq!(out["csv_lines"], 4, "{out}");
    // The admin's job, started on the page, is an ordinary job of the tenant.
    let list = s.call(Method::GET, "/api/v1/bulk-revocations", None).await;
    let ui_job = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["incident_id"] == "INC-UI-2")
        .cloned()
        .unwrap_or_else(|| panic!("{}", list.body));
    assert_eq!(ui_job["channel"], "ui");
    assert_eq!(ui_job["requested_by"], format!("user:{ADMIN}"));
    assert_eq!(ui_job["counts"]["completed"], 1);
    assert_eq!(ui_job["counts"]["invalid"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_admin_approves_a_held_bulk_job_on_the_bulk_page_and_the_requester_cannot() {
    let s = Server::start_with(|c| c.bulk_approval_threshold = 0).await;
    let cli = Actor::cli(TenantId::DEFAULT, "cli:test");
    for (email, role) in [(ADMIN, Role::Admin), (SECOND_ADMIN, Role::Admin)] {
        sever_server::create_user(&*s.db, &SystemClock, s.tenant, email, role, PASSWORD, &cli)
            .await
            .unwrap();
    }
    // ADMIN starts a job on the page; the policy holds it (threshold 0).
    let ada = WebClient::sign_in(&s.base, ADMIN, PASSWORD).await;
    let r = ada
        .post(
            "/ui/bulk",
            &[
                ("_csrf", &ada.csrf),
                ("usernames", "alice@example.com\ncarol@example.com"),
                ("reason", "phishing wave"),
                ("targets", "miro"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list = s.call(Method::GET, "/api/v1/bulk-revocations", None).await;
    let job = list.body["items"][0].clone();
    assert_eq!(job["state"], "pending_approval", "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let html = ada.get("/ui/bulk").await.text().await.unwrap();
    assert!(
        html.contains(&format!("data-bulk-decision=\"{id}\"")),
        "{html}"
    );

    // The requester may not decide it.
    let path = format!("/ui/bulk/{id}/decision");
    let r = ada
        .post(
            &path,
            &[
                ("_csrf", &ada.csrf),
                ("decision", "approve"),
                ("reason", "mine"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("two-person rule"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.sim()
            .calls_to(Provider::Miro)
            .iter()
            .filter(|c| c.step == Step::Revoke)
            .count(),
        0
    );

    // A second admin approves; the job runs.
    let bea = WebClient::sign_in(&s.base, SECOND_ADMIN, PASSWORD).await;
    let r = bea
        .post(
            &path,
            &[
                ("_csrf", &bea.csrf),
                ("decision", "approve"),
                ("reason", "confirmed with the CISO"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let mut state = Value::Null;
    for _ in 0..100 {
        let a = s
            .call(Method::GET, &format!("/api/v1/bulk-revocations/{id}"), None)
            .await;
        state = a.body["state"].clone();
        if state == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "completed");
    let audit = s.audit().await;
    assert!(audit.iter().any(|r| r["action"] == "bulk.approve"
        && r["decision"] == "allowed"
        && r["actor"] == format!("user:{SECOND_ADMIN}")));
    assert!(audit.iter().any(|r| r["action"] == "bulk.approve"
        && r["decision"] == "denied"
        && r["actor"] == format!("user:{ADMIN}")));
}
