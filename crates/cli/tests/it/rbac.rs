//! Who may do what, exhaustively: every API key scope combination against
//! every route of the OpenAPI description, every role against every web UI
//! route, and two tenants that must not see or touch each other's anything.
//!
//! The route tables are the test: adding a route is one line here, and the
//! API table is checked against the served OpenAPI description, so a new
//! endpoint without a row fails until someone says who may call it.

use std::collections::BTreeSet;

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_core::admin::{Role, Scope};
use sever_core::{SystemClock, TenantId};
use sever_server::signature::sign_plain;
use sever_server::Actor;

use crate::server::{Answer, Server};

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Scope(Scope),
    /// The webhook: a signature, never an API key.
    Signature,
}

/// One API route: method, OpenAPI path template, the concrete path called
/// (`$REQ` is an existing request of the caller's tenant; `$USER` a person
/// no other call names, so the policy's per-person cooldown never answers
/// instead of the scope check), the body, and
/// what it needs. Bodies are chosen so an allowed call changes nothing that
/// later rows depend on (unknown names and ids, empty updates).
const API: &[(&str, &str, &str, Option<&str>, Need)] = {
    use Need::Scope as S;
    use Scope::{Admin, SessionsRead as Read, SessionsRevoke as Revoke};
    &[
        (
            "POST",
            "/api/v1/revocations",
            "/api/v1/revocations",
            Some(r#"{"username": "$USER", "integration_targets": ["okta"]}"#),
            S(Revoke),
        ),
        (
            "GET",
            "/api/v1/revocations",
            "/api/v1/revocations",
            None,
            S(Read),
        ),
        (
            "GET",
            "/api/v1/revocations/{id}",
            "/api/v1/revocations/$REQ",
            None,
            S(Read),
        ),
        (
            "POST",
            "/api/v1/revocations/preview",
            "/api/v1/revocations/preview",
            Some(r#"{"username": "alice@example.com", "integration_targets": ["okta"]}"#),
            S(Read),
        ),
        (
            "POST",
            "/api/v1/bulk-revocations",
            "/api/v1/bulk-revocations",
            Some(
                r#"{"usernames": ["$USER"], "reason": "rbac matrix", "integration_targets": ["no-such-connector"]}"#,
            ),
            S(Revoke),
        ),
        (
            "GET",
            "/api/v1/bulk-revocations",
            "/api/v1/bulk-revocations",
            None,
            S(Read),
        ),
        (
            "GET",
            "/api/v1/bulk-revocations/{id}",
            "/api/v1/bulk-revocations/00000000-0000-4000-8000-00000000dead",
            None,
            S(Read),
        ),
        (
            "GET",
            "/api/v1/bulk-revocations/{id}/results.csv",
            "/api/v1/bulk-revocations/00000000-0000-4000-8000-00000000dead/results.csv",
            None,
            S(Read),
        ),
        (
            "POST",
            "/api/v1/bulk-revocations/{id}/approve",
            "/api/v1/bulk-revocations/00000000-0000-4000-8000-00000000dead/approve",
            Some(r#"{"reason": "rbac matrix"}"#),
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/bulk-revocations/{id}/deny",
            "/api/v1/bulk-revocations/00000000-0000-4000-8000-00000000dead/deny",
            Some(r#"{"reason": "rbac matrix"}"#),
            S(Admin),
        ),
        ("GET", "/api/v1/usage", "/api/v1/usage", None, S(Read)),
        (
            "GET",
            "/api/v1/session-revocation/requests/{request_id}",
            "/api/v1/session-revocation/requests/$REQ",
            None,
            S(Read),
        ),
        (
            "POST",
            "/api/v1/session-revocation/webhook",
            "/api/v1/session-revocation/webhook",
            Some(
                r#"{"tenant_id": "$TENANT", "action": "revoke_sessions", "username": "alice@example.com"}"#,
            ),
            Need::Signature,
        ),
        (
            "GET",
            "/api/v1/connectors",
            "/api/v1/connectors",
            None,
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/connectors",
            "/api/v1/connectors",
            Some(r#"{"provider": "okta", "name": "okta-incomplete"}"#),
            S(Admin),
        ),
        (
            "GET",
            "/api/v1/connectors/{name}",
            "/api/v1/connectors/okta",
            None,
            S(Admin),
        ),
        (
            "PATCH",
            "/api/v1/connectors/{name}",
            "/api/v1/connectors/no-such-connector",
            Some(r#"{"enabled": false}"#),
            S(Admin),
        ),
        (
            "DELETE",
            "/api/v1/connectors/{name}",
            "/api/v1/connectors/no-such-connector",
            None,
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/connectors/{name}/test",
            "/api/v1/connectors/okta/test",
            None,
            S(Admin),
        ),
        (
            "GET",
            "/api/v1/settings",
            "/api/v1/settings",
            None,
            S(Admin),
        ),
        (
            "PUT",
            "/api/v1/settings",
            "/api/v1/settings",
            Some("{}"),
            S(Admin),
        ),
        (
            "GET",
            "/api/v1/api-keys",
            "/api/v1/api-keys",
            None,
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/api-keys",
            "/api/v1/api-keys",
            Some(r#"{"name": "made-in-the-matrix", "scopes": ["sessions:read"]}"#),
            S(Admin),
        ),
        (
            "DELETE",
            "/api/v1/api-keys/{id}",
            "/api/v1/api-keys/00000000-0000-4000-8000-00000000dead",
            None,
            S(Admin),
        ),
        ("GET", "/api/v1/audit", "/api/v1/audit", None, S(Admin)),
        (
            "GET",
            "/api/v1/oauth/clients",
            "/api/v1/oauth/clients",
            None,
            S(Admin),
        ),
        (
            "GET",
            "/api/v1/oauth/clients/{id}",
            "/api/v1/oauth/clients/no-such-client",
            None,
            S(Admin),
        ),
        (
            "DELETE",
            "/api/v1/oauth/clients/{id}",
            "/api/v1/oauth/clients/no-such-client",
            None,
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/oauth/clients/{id}/approve",
            "/api/v1/oauth/clients/no-such-client/approve",
            Some("{}"),
            S(Admin),
        ),
        ("GET", "/api/v1/policy", "/api/v1/policy", None, S(Admin)),
        (
            "PUT",
            "/api/v1/policy",
            "/api/v1/policy",
            Some("{}"),
            S(Admin),
        ),
        ("DELETE", "/api/v1/policy", "/api/v1/policy", None, S(Admin)),
        (
            "POST",
            "/api/v1/policy/explain",
            "/api/v1/policy/explain",
            Some("{}"),
            S(Admin),
        ),
        (
            "GET",
            "/api/v1/approvals",
            "/api/v1/approvals",
            None,
            S(Admin),
        ),
        (
            "GET",
            "/api/v1/approvals/{id}",
            "/api/v1/approvals/00000000-0000-4000-8000-00000000dead",
            None,
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/approvals/{id}/approve",
            "/api/v1/approvals/00000000-0000-4000-8000-00000000dead/approve",
            Some("{}"),
            S(Admin),
        ),
        (
            "POST",
            "/api/v1/approvals/{id}/deny",
            "/api/v1/approvals/00000000-0000-4000-8000-00000000dead/deny",
            Some("{}"),
            S(Admin),
        ),
    ]
};

/// Every non-empty combination of the three scopes.
fn scope_sets() -> Vec<Vec<Scope>> {
    (1u8..8)
        .map(|bits| {
            Scope::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, s)| *s)
                .collect()
        })
        .collect()
}

fn method(m: &str) -> Method {
    m.parse().unwrap()
}

async fn raw_call(
    s: &Server,
    key: &str,
    m: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, String)],
) -> Answer {
    let mut rb = s.http.request(method(m), s.url(path));
    if !key.is_empty() {
        rb = rb.bearer_auth(key);
    }
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    crate::server::answer(rb.send().await.unwrap()).await
}

/// A request of `s`'s tenant, made with the all-scopes key.
async fn a_request(s: &Server) -> String {
    let a = s
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "integration_targets": ["okta"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_combination_is_allowed_or_refused_on_every_api_route_and_refusals_are_audited()
{
    let s = Server::start().await;

    // The table covers exactly the documented routes, with their documented scopes.
    let doc = serde_json::to_value(sever_server::api::openapi()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (m, op) in ops.as_object().unwrap() {
            let m = m.to_ascii_uppercase();
            let row = API.iter().find(|r| r.0 == m && r.1 == path);
            let Some(row) = row else {
                panic!("{m} {path} has no row in the RBAC table of tests/it/rbac.rs: add one saying who may call it");
            };
            let declared: Vec<String> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|req| {
                    req.as_object()
                        .unwrap()
                        .iter()
                        .flat_map(|(scheme, scopes)| {
                            let scopes: Vec<String> = scopes
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap().to_string())
                                .collect();
                            if scopes.is_empty() {
                                vec![scheme.clone()]
                            } else {
                                scopes
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let expected = match row.4 {
                Need::Scope(sc) => sc.to_string(),
                Need::Signature => "webhook_signature".into(),
            };
            assert!(
                declared.contains(&expected),
                "{m} {path}: the OpenAPI description declares {declared:?}, the table {expected}"
            );
            documented.insert((m, path.clone()));
        }
    }
    for r in API {
        assert!(
            documented.contains(&(r.0.to_string(), r.1.to_string())),
            "{} {} is in the table but not served",
            r.0,
            r.1
        );
    }

    let req = a_request(&s).await;
    let tenant = s.tenant.to_string();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let concrete = |p: &str| {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        p.replace("$REQ", &req)
            .replace("$TENANT", &tenant)
            .replace("$USER", &format!("nobody-{n}@example.com"))
    };

    let mut keys = Vec::new();
    for set in scope_sets() {
        let names: Vec<String> = set.iter().map(|sc| sc.to_string()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (key, id) = s.key_with(&names).await;
        keys.push((set, key, id));
    }

    let mut checked = 0;
    for (set, key, id) in &keys {
        let mut refused = 0;
        for (m, template, path, body, need) in API {
            let path = concrete(path);
            let body = body.map(concrete);
            let a = raw_call(&s, key, m, &path, body.as_deref(), &[]).await;
            let who = format!("{m} {template} with a key holding {set:?}");
            match need {
                Need::Scope(sc) if set.contains(sc) => {
                    assert!(
                        !matches!(a.status.as_u16(), 401 | 403) && !a.status.is_server_error(),
                        "{who}: allowed, but answered {} {}",
                        a.status,
                        a.body
                    );
                }
                Need::Scope(sc) => {
                    assert_eq!(a.status, StatusCode::FORBIDDEN, "{who}: {}", a.body);
                    // The policy routes answer a missing scope as the policy's refusal.
                    assert!(
                        ["forbidden", "policy_denied"].contains(&a.error_code()),
                        "{who}: {}",
                        a.body
                    );
                    assert!(
                        a.error_message().contains(&format!("'{sc}'")),
                        "{who}: the refusal names the scope: {}",
                        a.body
                    );
                    refused += 1;
                }
                Need::Signature => {
                    assert_eq!(
                        a.status,
                        StatusCode::UNAUTHORIZED,
                        "{who}: a key is no signature: {}",
                        a.body
                    );
                }
            }
            checked += 1;
        }
        // Every refusal of this (authenticated) key is in the audit trail.
        let denied = s
            .audit()
            .await
            .into_iter()
            .filter(|r| {
                let result = r["result"].as_str().unwrap_or("");
                r["actor"] == format!("key:{id}")
                    && r["decision"] == "denied"
                    && (result.starts_with("forbidden") || result.starts_with("policy_denied"))
            })
            .count();
        assert_eq!(denied, refused, "refusals audited for the key with {set:?}");
    }
    assert_eq!(checked, API.len() * 7);

    // No key, a made-up key, a revoked key: 401 on every key route.
    let (revoked, revoked_id) = s
        .key_with(&["admin", "sessions:read", "sessions:revoke"])
        .await;
    let del = s
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    for key in ["", "sk_made-up-key", &revoked] {
        for (m, template, path, body, _) in API {
            let a = raw_call(
                &s,
                key,
                m,
                &concrete(path),
                body.map(concrete).as_deref(),
                &[],
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{m} {template} with key {key:?}: {}",
                a.body
            );
        }
    }
    // One revocation per key with sessions:revoke ran (of people Okta does
    // not know); no refused call reached a provider.
    let requests = s
        .call(Method::GET, "/api/v1/revocations?limit=200", None)
        .await;
    let items = requests.body["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1 + 4,
        "the first request and one per revoking key"
    );
    assert_eq!(s.sim().revoked(sever_sim::Provider::Okta).len(), 1);
}

// ------------------------------------------------------------------ web UI

/// The UI routes: method, path, form fields, and the scope a person's role
/// must grant. Ids and names are unknown ones, so allowed posts change
/// nothing; forms are checked for the role before anything else.
/// (method, path, form fields, scope the page action needs)
type UiRoute = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Scope,
);

const UI: &[UiRoute] = {
    use Scope::{Admin, SessionsRead as Read, SessionsRevoke as Revoke};
    &[
        ("GET", "/ui/responder", &[], Read),
        (
            "POST",
            "/ui/responder/preview",
            &[("username", "alice@example.com"), ("targets", "okta")],
            Read,
        ),
        (
            "POST",
            "/ui/responder/revoke",
            &[("username", ""), ("targets", "okta")],
            Revoke,
        ),
        ("GET", "/ui/requests", &[], Read),
        ("GET", "/ui/requests/$REQ", &[], Read),
        ("GET", "/ui/requests/$REQ/progress", &[], Read),
        ("GET", "/ui/dashboard", &[], Read),
        ("GET", "/ui/bulk", &[], Read),
        ("GET", "/ui/bulk/rows", &[], Read),
        (
            "POST",
            "/ui/bulk",
            &[("usernames", ""), ("reason", "rbac matrix")],
            Revoke,
        ),
        (
            "POST",
            "/ui/bulk/00000000-0000-4000-8000-00000000dead/decision",
            &[("decision", "approve"), ("reason", "rbac matrix")],
            Admin,
        ),
        (
            "GET",
            "/ui/bulk/00000000-0000-4000-8000-00000000dead/results.csv",
            &[],
            Read,
        ),
        ("GET", "/ui/approvals", &[], Read),
        ("GET", "/ui/integrations", &[], Admin),
        (
            "POST",
            "/ui/integrations/mcp-clients/no-such-client/approve",
            &[],
            Admin,
        ),
        (
            "POST",
            "/ui/integrations/switches",
            &[("switch", "revocation"), ("value", "neither")],
            Admin,
        ),
        (
            "POST",
            "/ui/integrations/connectors",
            &[("provider", "salesforce"), ("name", "x")],
            Admin,
        ),
        (
            "POST",
            "/ui/integrations/connectors/no-such-connector",
            &[("base_url", "https://x.example")],
            Admin,
        ),
        (
            "POST",
            "/ui/integrations/connectors/no-such-connector/test",
            &[],
            Admin,
        ),
        (
            "POST",
            "/ui/integrations/connectors/no-such-connector/delete",
            &[],
            Admin,
        ),
        ("GET", "/ui/api-keys", &[], Admin),
        (
            "POST",
            "/ui/api-keys",
            &[("name", ""), ("scopes", "admin")],
            Admin,
        ),
        (
            "POST",
            "/ui/api-keys/00000000-0000-4000-8000-00000000dead/revoke",
            &[],
            Admin,
        ),
        ("GET", "/ui/users", &[], Admin),
        (
            "POST",
            "/ui/users",
            &[("email", ""), ("role", "viewer"), ("password", "")],
            Admin,
        ),
        (
            "POST",
            "/ui/users/00000000-0000-4000-8000-00000000dead",
            &[("role", "viewer")],
            Admin,
        ),
        ("GET", "/ui/audit", &[], Admin),
        ("GET", "/ui/audit/export", &[], Admin),
        ("GET", "/ui/policy", &[], Admin),
    ]
};

const PASSWORD: &str = "correct horse battery staple";

fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let at = html.find(marker).expect("a form with a CSRF token");
    let rest = &html[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A signed-in person: their session cookie and CSRF token.
struct Person {
    http: reqwest::Client,
    base: String,
    session: String,
    csrf: String,
}

impl Person {
    async fn sign_in(base: &str, email: &str) -> Person {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http.get(format!("{base}/ui/login")).send().await.unwrap();
        let pre = cookie_of(&page, "sever_signin").unwrap();
        let token = csrf_in(&page.text().await.unwrap());
        let r = http
            .post(format!("{base}/ui/login"))
            .header(COOKIE, format!("sever_signin={pre}"))
            .form(&[
                ("_csrf", token.as_str()),
                ("email", email),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{email} signs in");
        let session = cookie_of(&r, "sever_session").unwrap();
        let page = http
            .get(format!("{base}/ui/requests"))
            .header(COOKIE, format!("sever_session={session}"))
            .send()
            .await
            .unwrap();
        let html = page.text().await.unwrap();
        Person {
            http,
            base: base.to_string(),
            session,
            csrf: csrf_in(&html),
        }
    }

    async fn call(&self, m: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let mut rb = self
            .http
            .request(method(m), format!("{}{path}", self.base))
            .header(COOKIE, format!("sever_session={}", self.session));
        if m == "POST" {
            let mut fields: Vec<(&str, &str)> = vec![("_csrf", &self.csrf)];
            fields.extend_from_slice(form);
            rb = rb.form(&fields);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        (status, r.text().await.unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_is_allowed_or_refused_on_every_ui_route_by_the_server() {
    let s = Server::start().await;
    let req = a_request(&s).await;
    let cli = Actor::cli(TenantId::DEFAULT, "cli:test");
    let mut people = Vec::new();
    for role in Role::ALL {
        let email = format!("{role}@acme.test");
        sever_server::create_user(&*s.db, &SystemClock, s.tenant, &email, role, PASSWORD, &cli)
            .await
            .unwrap();
        people.push((role, email));
    }
    for (role, email) in &people {
        let p = Person::sign_in(&s.base, email).await;
        let mut refused = 0;
        for (m, path, form, scope) in UI {
            let path = path.replace("$REQ", &req);
            let (status, body) = p.call(m, &path, form).await;
            let who = format!("{m} {path} as {role}");
            if role.scopes().contains(scope) {
                assert!(
                    status != StatusCode::FORBIDDEN
                        && status != StatusCode::UNAUTHORIZED
                        && !status.is_server_error(),
                    "{who}: allowed, but answered {status}: {}",
                    &body[..body.len().min(400)]
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{who}");
                refused += 1;
            }
        }
        let denied = s
            .audit()
            .await
            .into_iter()
            .filter(|r| {
                r["actor"] == format!("user:{email}")
                    && r["decision"] == "denied"
                    && r["result"].as_str().unwrap_or("").starts_with("forbidden")
            })
            .count();
        assert_eq!(denied, refused, "refusals audited for the {role}");
        let expected = match role {
            Role::Owner | Role::Admin => 0,
            Role::Analyst => 17,
            Role::Viewer => 19,
        };
        assert_eq!(refused, expected, "{role}");
    }
    // Making an owner needs an owner.
    let admin = Person::sign_in(&s.base, "admin@acme.test").await;
    let (status, _) = admin
        .call(
            "POST",
            "/ui/users",
            &[
                ("email", "eve@acme.test"),
                ("role", "owner"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let owner = Person::sign_in(&s.base, "owner@acme.test").await;
    let (status, _) = owner
        .call(
            "POST",
            "/ui/users",
            &[
                ("email", "olga@acme.test"),
                ("role", "owner"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    assert!(
        s.sim().revoked(sever_sim::Provider::Okta).len() == 1,
        "no UI row revoked anyone"
    );
}

// ---------------------------------------------------------- tenant isolation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_one_tenant_is_visible_or_changeable_with_another_tenants_credentials() {
    let s = Server::start().await;
    let a_key = s.key.clone();
    let cli = Actor::cli(TenantId::DEFAULT, "cli:test");
    let b = sever_server::create_tenant(&*s.db, &SystemClock, None, "Globex", &cli)
        .await
        .unwrap();
    let b_key =
        sever_server::create_api_key(&*s.db, &SystemClock, b.id, "b-admin", &Scope::ALL, &cli)
            .await
            .unwrap()
            .plaintext;
    let as_b = |m: Method, path: String, body: Option<Value>| {
        let s = &s;
        let k = b_key.clone();
        async move { s.call_as(&k, m, &path, body, &[]).await }
    };
    // B gets connectors and switches of its own, with the same names as A's.
    for c in s.connector_configs() {
        let r = as_b(Method::POST, "/api/v1/connectors".into(), Some(c)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = as_b(
        Method::PUT,
        "/api/v1/settings".into(),
        Some(json!({"revocation_enabled": true, "webhook_enabled": true})),
    )
    .await;
    let b_secret = r.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();

    // A's things: a request, a connector only A has, a key, the webhook.
    let a_req = a_request(&s).await;
    let mut only_a = s.connector_configs()[0].clone();
    only_a["name"] = json!("okta-a-only");
    let r = s
        .call(Method::POST, "/api/v1/connectors", Some(only_a))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (a_reader, a_reader_id) = s.key_with(&["sessions:read"]).await;
    let r = s
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"webhook_enabled": true})),
        )
        .await;
    let a_secret = r.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let a_settings = s.call(Method::GET, "/api/v1/settings", None).await.body;

    // Requests: not readable, not listed, not polled, not counted.
    for path in [
        format!("/api/v1/revocations/{a_req}"),
        format!("/api/v1/session-revocation/requests/{a_req}"),
        format!(
            "/api/v1/session-revocation/requests/{a_req}?tenant_id={}",
            b.id
        ),
        format!(
            "/api/v1/session-revocation/requests/{a_req}?tenant_id={}",
            s.tenant
        ),
    ] {
        let r = as_b(Method::GET, path.clone(), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    let list = as_b(Method::GET, "/api/v1/revocations".into(), None).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.body);
    let usage = as_b(Method::GET, "/api/v1/usage".into(), None).await;
    assert!(!usage.body.to_string().contains(&a_req));
    assert_eq!(usage.body["completed_revocations"], 0, "{}", usage.body);
    // Signed polls: B's secret does not open A's tenant, nor A's request in B's.
    for (tenant, secret) in [(s.tenant, &b_secret), (b.id, &b_secret)] {
        let path = format!("/api/v1/session-revocation/requests/{a_req}?tenant_id={tenant}");
        let r = raw_call(
            &s,
            "",
            "GET",
            &path,
            None,
            &[(
                "X-Session-Revocation-Signature",
                sign_plain(secret.as_bytes(), path.as_bytes()),
            )],
        )
        .await;
        assert!(
            matches!(r.status.as_u16(), 401 | 404),
            "{path}: {} {}",
            r.status,
            r.body
        );
    }
    // A's own signature polls A's request: the request is there to find.
    let path = format!(
        "/api/v1/session-revocation/requests/{a_req}?tenant_id={}",
        s.tenant
    );
    let r = raw_call(
        &s,
        "",
        "GET",
        &path,
        None,
        &[(
            "X-Session-Revocation-Signature",
            sign_plain(a_secret.as_bytes(), path.as_bytes()),
        )],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The webhook: a body naming A, signed with B's secret, is refused.
    let body = json!({"tenant_id": s.tenant.to_string(), "action": "revoke_sessions", "username": "carol@example.com"});
    let raw = serde_json::to_vec(&body).unwrap();
    let r = raw_call(
        &s,
        "",
        "POST",
        "/api/v1/session-revocation/webhook",
        Some(std::str::from_utf8(&raw).unwrap()),
        &[(
            "X-Session-Revocation-Signature",
            sign_plain(b_secret.as_bytes(), &raw),
        )],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // Connectors: A's own instance is unknown to B, whatever B tries.
    for (m, path, body) in [
        (Method::GET, "/api/v1/connectors/okta-a-only", None),
        (
            Method::PATCH,
            "/api/v1/connectors/okta-a-only",
            Some(json!({"enabled": false})),
        ),
        (Method::POST, "/api/v1/connectors/okta-a-only/test", None),
        (Method::DELETE, "/api/v1/connectors/okta-a-only", None),
    ] {
        let r = as_b(m.clone(), path.into(), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.body);
    }
    let listed = as_b(Method::GET, "/api/v1/connectors".into(), None).await;
    assert!(!listed.body.to_string().contains("okta-a-only"));
    let r = as_b(
        Method::POST,
        "/api/v1/revocations".into(),
        Some(json!({"username": "carol@example.com", "integration_targets": ["okta-a-only"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = as_b(
        Method::PATCH,
        "/api/v1/connectors/okta".into(),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "B changes its own okta");
    let a_okta = s.call(Method::GET, "/api/v1/connectors/okta", None).await;
    assert_eq!(a_okta.body["enabled"], true, "A's okta is untouched");
    let a_only = s
        .call(Method::GET, "/api/v1/connectors/okta-a-only", None)
        .await;
    assert_eq!(a_only.status, StatusCode::OK);

    // Keys: A's are neither listed for B nor revocable by B; A's still work.
    let keys = as_b(Method::GET, "/api/v1/api-keys".into(), None).await;
    assert!(
        !keys.body.to_string().contains(&a_reader_id),
        "{}",
        keys.body
    );
    let r = as_b(
        Method::DELETE,
        format!("/api/v1/api-keys/{a_reader_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = s
        .call_as(&a_reader, Method::GET, "/api/v1/revocations", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Settings: B's switches are B's.
    let r = as_b(
        Method::PUT,
        "/api/v1/settings".into(),
        Some(json!({"revocation_enabled": false, "webhook_enabled": false})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let after = s.call(Method::GET, "/api/v1/settings", None).await.body;
    assert_eq!(after, a_settings, "A's settings are untouched");

    // Audit: B's trail holds only B's records.
    let audit = as_b(Method::GET, "/api/v1/audit?limit=1000".into(), None).await;
    let items = audit.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|r| r["tenant_id"] == b.id.to_string()),
        "{}",
        audit.body
    );
    // B's trail has B's refused attempts at A's things, and nothing of A's own.
    for r in items {
        let text = r.to_string();
        let mentions_a =
            text.contains(&a_req) || text.contains(&a_reader_id) || text.contains("okta-a-only");
        assert!(!mentions_a || r["decision"] == "denied", "{r}");
    }
    let jsonl = s
        .http
        .get(s.url("/api/v1/audit?format=jsonl"))
        .bearer_auth(&b_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in jsonl.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["tenant_id"], b.id.to_string(), "{line}");
    }

    // And the other way round: A's key sees nothing of B either.
    let b_list = s.call(Method::GET, "/api/v1/revocations", None).await;
    assert_eq!(b_list.body["items"].as_array().unwrap().len(), 1);
    let _ = a_key;
}
