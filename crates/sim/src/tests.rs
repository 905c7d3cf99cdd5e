//! End-to-end checks over real sockets, as a connector would see the simulators.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

use crate::jwt::testing::sign;
use crate::{
    demo, demo_faults, Directory, Fault, FaultKind, Provider, RateLimit, SimOptions, Sims, Step,
};

async fn start() -> Sims {
    start_with(SimOptions::default()).await
}

async fn start_with(opts: SimOptions) -> Sims {
    Sims::start(Directory::demo(), opts)
        .await
        .expect("sims start")
}

fn client() -> Client {
    Client::new()
}

async fn json(resp: Response) -> Value {
    resp.json().await.expect("json body")
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn okta(sims: &Sims, path: &str) -> String {
    format!("{}{path}", sims.base_url(Provider::Okta))
}

async fn okta_token(sims: &Sims, scope: &str) -> Response {
    let url = okta(sims, "/oauth2/v1/token");
    let assertion = sign(
        &json!({"iss": demo::OKTA_CLIENT_ID, "sub": demo::OKTA_CLIENT_ID, "aud": url,
                "iat": now(), "exp": now() + 300, "jti": uuid::Uuid::new_v4().to_string()}),
        demo::OKTA_KEY_ID,
        demo::OKTA_PRIVATE_KEY_PEM,
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", scope),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    client()
        .post(url)
        .form(&form)
        .send()
        .await
        .expect("okta token call")
}

async fn entra_token(sims: &Sims) -> String {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        sims.base_url(Provider::Entra),
        demo::ENTRA_TENANT_ID
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", demo::ENTRA_CLIENT_ID),
        ("client_secret", demo::ENTRA_CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let resp = client()
        .post(url)
        .form(&form)
        .send()
        .await
        .expect("entra token call");
    assert_eq!(resp.status(), 200);
    json(resp).await["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

async fn graph_get(sims: &Sims, token: &str, path_and_query: &str) -> Response {
    let url = format!("{}/v1.0{path_and_query}", sims.base_url(Provider::Entra));
    client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("graph call")
}

const READONLY: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const SECURITY: &str = "https://www.googleapis.com/auth/admin.directory.user.security";

fn google_assertion(sims: &Sims, scope: &str, key_pem: &str) -> String {
    let sa: Value = serde_json::from_str(demo::GOOGLE_SERVICE_ACCOUNT_JSON).expect("sa json");
    sign(
        &json!({"iss": sa["client_email"], "sub": demo::GOOGLE_ADMIN_SUBJECT, "scope": scope,
                "aud": format!("{}/token", sims.base_url(Provider::Google)),
                "iat": now(), "exp": now() + 3600}),
        sa["private_key_id"].as_str().expect("kid"),
        key_pem,
    )
}

async fn google_token_call(sims: &Sims, assertion: &str) -> Response {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion),
    ];
    let url = format!("{}/token", sims.base_url(Provider::Google));
    client()
        .post(url)
        .form(&form)
        .send()
        .await
        .expect("google token call")
}

fn slack(sims: &Sims, method: &str) -> String {
    format!("{}/api/{method}", sims.base_url(Provider::Slack))
}

#[test]
fn service_account_json_carries_the_demo_key() {
    let sa: Value = serde_json::from_str(demo::GOOGLE_SERVICE_ACCOUNT_JSON).expect("valid json");
    assert_eq!(sa["type"], "service_account");
    assert_eq!(
        sa["private_key"],
        include_str!("../keys/google-demo-sa.pem")
    );
    assert_eq!(sa["client_email"], demo::GOOGLE_CLIENT_EMAIL);
    assert_eq!(sa["private_key_id"], demo::GOOGLE_PRIVATE_KEY_ID);
    assert_eq!(
        Provider::from_key("google_workspace"),
        Some(Provider::Google)
    );
}

#[tokio::test]
async fn okta_lookup_by_login_answers_the_user_and_unknown_is_e0000007_with_rate_headers() {
    let sims = start().await;
    let ssws = format!("SSWS {}", demo::OKTA_API_TOKEN);
    let resp = client()
        .get(okta(&sims, "/api/v1/users/alice%40example.com"))
        .header("authorization", &ssws)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 200);
    for h in [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
        "x-okta-request-id",
    ] {
        assert!(header(&resp, h).is_some(), "missing {h}");
    }
    let user = json(resp).await;
    assert!(user["id"].as_str().expect("id").starts_with("00u"));
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(user["profile"]["login"], "alice@example.com");

    let resp = client()
        .get(okta(&sims, "/api/v1/users/nobody%40example.com"))
        .header("authorization", &ssws)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 404);
    let body = json(resp).await;
    assert_eq!(body["errorCode"], "E0000007");
    assert_eq!(
        body["errorSummary"],
        "Not found: Resource not found: nobody@example.com (User)"
    );
    assert_eq!(body["errorCauses"], json!([]));

    let resp = client()
        .get(okta(&sims, "/api/v1/users/alice%40example.com"))
        .header("authorization", "SSWS wrong")
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["errorCode"], "E0000011");
    let calls = sims.handle().calls_to(Provider::Okta);
    assert_eq!(calls[0].path, "/api/v1/users/alice%40example.com");
    assert_eq!(calls[0].auth_scheme.as_deref(), Some("SSWS"));
    assert_eq!(calls[0].step, Step::Lookup);
}

#[tokio::test]
async fn okta_revoke_takes_the_user_id_validates_booleans_and_answers_204() {
    let sims = start().await;
    let ssws = format!("SSWS {}", demo::OKTA_API_TOKEN);
    let user = json(
        client()
            .get(okta(&sims, "/api/v1/users/bob%40example.com"))
            .header("authorization", &ssws)
            .send()
            .await
            .expect("call"),
    )
    .await;
    let id = user["id"].as_str().expect("id");
    let delete = |path: String| {
        client()
            .delete(okta(&sims, &path))
            .header("authorization", &ssws)
            .send()
    };

    let by_login = delete("/api/v1/users/bob%40example.com/sessions".into())
        .await
        .expect("call");
    assert_eq!(by_login.status(), 404);
    let bad_flag = delete(format!("/api/v1/users/{id}/sessions?oauthTokens=yes"))
        .await
        .expect("call");
    assert_eq!(bad_flag.status(), 400);
    assert_eq!(json(bad_flag).await["errorCode"], "E0000001");
    let ok = delete(format!(
        "/api/v1/users/{id}/sessions?oauthTokens=true&forgetDevices=false"
    ))
    .await
    .expect("call");
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.text().await.expect("body"), "");
    assert_eq!(
        sims.handle().revoked(Provider::Okta),
        vec!["bob@example.com"]
    );
}

#[tokio::test]
async fn okta_private_key_jwt_token_is_scoped() {
    let sims = start().await;
    let resp = okta_token(&sims, "okta.users.read").await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "okta.users.read");
    let token = body["access_token"].as_str().expect("token");

    let get = client()
        .get(okta(&sims, "/api/v1/users/alice%40example.com"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(get.status(), 200);
    let id = json(get).await["id"].as_str().expect("id").to_string();
    let delete = client()
        .delete(okta(&sims, &format!("/api/v1/users/{id}/sessions")))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(delete.status(), 403);
    assert_eq!(json(delete).await["errorCode"], "E0000006");

    let bad_scope = okta_token(&sims, "okta.apps.manage").await;
    assert_eq!(bad_scope.status(), 400);
    assert_eq!(json(bad_scope).await["error"], "invalid_scope");
    let calls = sims.handle().calls_to(Provider::Okta);
    assert_eq!(calls[0].step, Step::Token);
    assert!(calls[0]
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("x-www-form-urlencoded")));
}

#[tokio::test]
async fn okta_rate_limit_fault_sends_reset_and_no_retry_after() {
    let sims = start().await;
    let h = sims.handle();
    let kind = FaultKind::RateLimited {
        retry_after_secs: 5,
        http_date: false,
    };
    h.set_fault(
        Provider::Okta,
        "alice@example.com",
        Fault::first(kind, Step::Lookup, 1),
    );
    let resp = client()
        .get(okta(&sims, "/api/v1/users/alice%40example.com"))
        .header("authorization", format!("SSWS {}", demo::OKTA_API_TOKEN))
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_none());
    assert_eq!(
        header(&resp, "x-rate-limit-remaining").as_deref(),
        Some("0")
    );
    let reset: i64 = header(&resp, "x-rate-limit-reset")
        .expect("reset")
        .parse()
        .expect("number");
    assert!((now() + 4..=now() + 6).contains(&reset));
    assert_eq!(json(resp).await["errorCode"], "E0000047");
    assert_eq!(h.count_429(), 1);
}

#[tokio::test]
async fn graph_filter_undoubles_quotes_and_finds_guests_by_encoded_ext_upn() {
    let sims = start().await;
    let token = entra_token(&sims).await;
    let select = "$select=id,userPrincipalName,mail,userType,accountEnabled";
    let resp = graph_get(
        &sims,
        &token,
        &format!(
            "/users?$filter=userPrincipalName%20eq%20%27o%27%27neil%40example.com%27&{select}"
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "request-id").is_some());
    let body = json(resp).await;
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(id,userPrincipalName,mail,userType,accountEnabled)"
    );
    assert_eq!(body["value"][0]["userPrincipalName"], "o'neil@example.com");
    assert_eq!(body["value"][0]["accountEnabled"], true);

    let guest = "userPrincipalName eq 'dave_partner.com%23EXT%23@example.onmicrosoft.com'";
    let body =
        json(graph_get(&sims, &token, &format!("/users?$filter={guest}&{select}")).await).await;
    assert_eq!(body["value"][0]["userType"], "Guest");
    assert_eq!(body["value"][0]["mail"], "dave@partner.com");

    let unquoted = graph_get(
        &sims,
        &token,
        "/users?$filter=userPrincipalName eq 'o'neil@example.com'",
    )
    .await;
    assert_eq!(unquoted.status(), 400);
    assert_eq!(json(unquoted).await["error"]["code"], "BadRequest");

    let none =
        json(graph_get(&sims, &token, "/users?$filter=mail eq 'ghost@example.com'").await).await;
    assert_eq!(none["value"], json!([]));
}

#[tokio::test]
async fn graph_or_filter_on_dup_matches_two_users() {
    let sims = start().await;
    let token = entra_token(&sims).await;
    let filter = "userPrincipalName eq 'dup@example.com' or mail eq 'dup@example.com'";
    let body = json(graph_get(&sims, &token, &format!("/users?$filter={filter}")).await).await;
    let ids: Vec<&str> = body["value"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn graph_revoke_answers_200_true_and_carol_is_denied_in_the_demo() {
    let sims = start().await;
    demo_faults(&sims.handle());
    let token = entra_token(&sims).await;
    let base = sims.base_url(Provider::Entra);
    let alice = json(graph_get(&sims, &token, "/users/alice@example.com").await).await;
    let revoke = |id: String| {
        client()
            .post(format!("{base}/v1.0/users/{id}/revokeSignInSessions"))
            .bearer_auth(&token)
            .send()
    };
    let resp = revoke(alice["id"].as_str().expect("id").to_string())
        .await
        .expect("call");
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["value"], true);

    let carol = json(graph_get(&sims, &token, "/users/carol@example.com").await).await;
    let resp = revoke(carol["id"].as_str().expect("id").to_string())
        .await
        .expect("call");
    assert_eq!(resp.status(), 403);
    assert_eq!(
        json(resp).await["error"]["code"],
        "Authorization_RequestDenied"
    );

    let missing = graph_get(&sims, &token, "/users/ghost@example.com").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        json(missing).await["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(
        sims.handle().revoked(Provider::Entra),
        vec!["alice@example.com"]
    );
}

#[tokio::test]
async fn entra_token_errors_and_expired_tokens_look_like_entra() {
    let sims = start_with(SimOptions {
        token_lifetime_secs: 0,
        ..SimOptions::default()
    })
    .await;
    let base = sims.base_url(Provider::Entra);
    let form = |secret: &str, scope: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", demo::ENTRA_CLIENT_ID.to_string()),
            ("client_secret", secret.to_string()),
            ("scope", scope.to_string()),
        ]
    };
    let url = format!("{base}/{}/oauth2/v2.0/token", demo::ENTRA_TENANT_ID);
    let bad = client()
        .post(&url)
        .form(&form("nope", "https://graph.microsoft.com/.default"))
        .send()
        .await
        .expect("call");
    assert_eq!(bad.status(), 401);
    let body = json(bad).await;
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    let scope = client()
        .post(&url)
        .form(&form(demo::ENTRA_CLIENT_SECRET, "User.Read.All"))
        .send()
        .await
        .expect("call");
    assert_eq!(json(scope).await["error_codes"], json!([1002012]));
    let tenant = format!("{base}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token");
    let unknown = client()
        .post(tenant)
        .form(&form(demo::ENTRA_CLIENT_SECRET, "x/.default"))
        .send()
        .await
        .expect("call");
    assert_eq!(unknown.status(), 400);
    assert_eq!(json(unknown).await["error_codes"], json!([90002]));

    let token = entra_token(&sims).await;
    let expired = graph_get(&sims, &token, "/users/alice@example.com").await;
    assert_eq!(expired.status(), 401);
    let body = json(expired).await;
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
}

#[tokio::test]
async fn google_jwt_exchange_then_get_and_sign_out() {
    let sims = start().await;
    let assertion = google_assertion(
        &sims,
        &format!("{READONLY} {SECURITY}"),
        include_str!("../keys/google-demo-sa.pem"),
    );
    let resp = google_token_call(&sims, &assertion).await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().expect("token");

    let dir = format!("{}/admin/directory/v1", sims.base_url(Provider::Google));
    let user = client()
        .get(format!("{dir}/users/alice@example.com"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(user.status(), 200);
    assert_eq!(json(user).await["kind"], "admin#directory#user");
    let out = client()
        .post(format!("{dir}/users/alice@example.com/signOut"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(out.status(), 204);
    let missing = client()
        .get(format!("{dir}/users/ghost@example.com"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        json(missing).await["error"]["errors"][0]["reason"],
        "notFound"
    );
    assert_eq!(
        sims.handle().revoked(Provider::Google),
        vec!["alice@example.com"]
    );
}

#[tokio::test]
async fn google_rejects_a_bad_signature_undelegated_scopes_and_missing_scope_grants() {
    let sims = start().await;
    let forged = google_assertion(&sims, READONLY, demo::OKTA_PRIVATE_KEY_PEM);
    let resp = google_token_call(&sims, &forged).await;
    assert_eq!(resp.status(), 400);
    let body = json(resp).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    let pem = include_str!("../keys/google-demo-sa.pem");
    let wide = google_assertion(
        &sims,
        "https://www.googleapis.com/auth/admin.directory.user",
        pem,
    );
    let resp = google_token_call(&sims, &wide).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["error"], "unauthorized_client");

    let readonly =
        json(google_token_call(&sims, &google_assertion(&sims, READONLY, pem)).await).await;
    let token = readonly["access_token"].as_str().expect("token");
    let url = format!(
        "{}/admin/directory/v1/users/alice@example.com/signOut",
        sims.base_url(Provider::Google)
    );
    let resp = client()
        .post(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 403);
    assert_eq!(
        json(resp).await["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
}

#[tokio::test]
async fn slack_refuses_the_primary_owner_and_bots_with_http_200() {
    let sims = start().await;
    let lookup = |email: &str| {
        client()
            .get(slack(&sims, "users.lookupByEmail"))
            .query(&[("email", email)])
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .send()
    };
    let carol = lookup("carol@example.com").await.expect("call");
    assert!(header(&carol, "x-oauth-scopes").is_some());
    let carol = json(carol).await;
    assert_eq!(carol["user"]["is_primary_owner"], true);
    let carol_id = carol["user"]["id"].as_str().expect("id").to_string();
    let bot = json(lookup("bot@example.com").await.expect("call")).await;
    let bot_id = bot["user"]["id"].as_str().expect("id").to_string();
    let alice = json(lookup("alice@example.com").await.expect("call")).await;
    let alice_id = alice["user"]["id"].as_str().expect("id").to_string();
    let bob = json(lookup("bob@example.com").await.expect("call")).await;
    assert_eq!(bob, json!({"ok": false, "error": "users_not_found"}));

    let reset = |id: String| {
        client()
            .post(slack(&sims, "admin.users.session.reset"))
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .form(&[
                ("user_id", id.as_str()),
                ("mobile_only", "false"),
                ("web_only", "true"),
            ])
            .send()
    };
    let resp = reset(carol_id).await.expect("call");
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["error"], "cannot_reset_primary_owner");
    assert_eq!(
        json(reset(bot_id).await.expect("call")).await["error"],
        "cannot_reset_bot"
    );
    assert_eq!(
        json(reset(alice_id.clone()).await.expect("call")).await,
        json!({"ok": true})
    );

    let json_body = client()
        .post(slack(&sims, "admin.users.session.reset"))
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .json(&json!({"user_id": alice_id, "mobile_only": true}))
        .send()
        .await
        .expect("call");
    assert_eq!(json(json_body).await["ok"], true);
    let unauthed = client()
        .post(slack(&sims, "auth.test"))
        .send()
        .await
        .expect("call");
    assert_eq!(unauthed.status(), 200);
    assert_eq!(json(unauthed).await["error"], "not_authed");

    let h = sims.handle();
    assert_eq!(
        h.revoked(Provider::Slack),
        vec!["alice@example.com", "alice@example.com"]
    );
    let resets: Vec<_> = h
        .calls_to(Provider::Slack)
        .into_iter()
        .filter(|c| c.path == "/api/admin.users.session.reset")
        .collect();
    assert!(resets[0].body.contains("web_only=true"));
    assert_eq!(resets[0].step, Step::Revoke);
}

#[tokio::test]
async fn slack_admin_methods_need_grid() {
    let sims = start_with(SimOptions {
        slack_grid: false,
        ..SimOptions::default()
    })
    .await;
    let resp = client()
        .post(slack(&sims, "admin.users.session.reset"))
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .form(&[("user_id", "W0ANY")])
        .send()
        .await
        .expect("call");
    assert_eq!(json(resp).await["error"], "feature_not_enabled");
}

#[tokio::test]
async fn miro_resets_members_and_404s_strangers() {
    let sims = start().await;
    let url = |email: &str| {
        format!(
            "{}/v2/sessions/reset_all?email={email}",
            sims.base_url(Provider::Miro)
        )
    };
    let resp = client()
        .post(url("alice@example.com"))
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "x-ratelimit-remaining").is_some());
    assert_eq!(resp.text().await.expect("body"), "");

    let resp = client()
        .post(url("bob@example.com"))
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 404);
    let body = json(resp).await;
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "error");

    let resp = client()
        .post(url("alice@example.com"))
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["code"], "tokenNotProvided");
    let members = format!(
        "{}/v2/orgs/{}/members?emails=alice@example.com,bob@example.com",
        sims.base_url(Provider::Miro),
        demo::MIRO_ORG_ID
    );
    let found = json(
        client()
            .get(members)
            .bearer_auth(demo::MIRO_TOKEN)
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn rate_limited_fault_with_retry_after_then_normal_answer() {
    let sims = start().await;
    let h = sims.handle();
    let kind = FaultKind::RateLimited {
        retry_after_secs: 2,
        http_date: false,
    };
    h.set_fault(
        Provider::Slack,
        "alice@example.com",
        Fault::first(kind, Step::Lookup, 1),
    );
    let call = || {
        client()
            .get(slack(&sims, "users.lookupByEmail"))
            .query(&[("email", "alice@example.com")])
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .send()
    };
    let first = call().await.expect("call");
    assert_eq!(first.status(), 429);
    assert_eq!(header(&first, "retry-after").as_deref(), Some("2"));
    assert_eq!(json(first).await["error"], "ratelimited");
    let second = call().await.expect("call");
    assert_eq!(second.status(), 200);
    assert_eq!(json(second).await["ok"], true);

    let kind = FaultKind::RateLimited {
        retry_after_secs: 3,
        http_date: true,
    };
    h.set_fault(
        Provider::Miro,
        "alice@example.com",
        Fault::first(kind, Step::Revoke, 1),
    );
    let url = format!(
        "{}/v2/sessions/reset_all?email=alice@example.com",
        sims.base_url(Provider::Miro)
    );
    let resp = client()
        .post(url)
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 429);
    let date = header(&resp, "retry-after").expect("retry-after");
    let at = httpdate::parse_http_date(&date).expect("an HTTP-date");
    assert!(at > std::time::SystemTime::now());
    assert_eq!(h.count_429(), 2);
}

#[tokio::test]
async fn status_faults_use_each_providers_error_shape() {
    let sims = start().await;
    let h = sims.handle();
    h.set_fault(
        Provider::Slack,
        "alice@example.com",
        Fault::new(FaultKind::Status(403), Step::Any),
    );
    h.set_fault(
        Provider::Slack,
        "bob@example.com",
        Fault::new(FaultKind::Status(503), Step::Lookup),
    );
    let lookup = |email: &str| {
        client()
            .get(slack(&sims, "users.lookupByEmail"))
            .query(&[("email", email)])
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .send()
    };
    let resp = lookup("alice@example.com").await.expect("call");
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["error"], "no_permission");
    assert_eq!(lookup("bob@example.com").await.expect("call").status(), 503);

    h.set_fault(
        Provider::Google,
        "carol@example.com",
        Fault::new(FaultKind::Status(403), Step::Revoke),
    );
    let pem = include_str!("../keys/google-demo-sa.pem");
    let token = json(google_token_call(&sims, &google_assertion(&sims, SECURITY, pem)).await).await;
    let url = format!(
        "{}/admin/directory/v1/users/carol@example.com/signOut",
        sims.base_url(Provider::Google)
    );
    let resp = client()
        .post(url)
        .bearer_auth(token["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 403);
    assert_eq!(
        json(resp).await["error"]["errors"][0]["reason"],
        "forbidden"
    );
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_an_answer() {
    let sims = start().await;
    let h = sims.handle();
    h.set_fault(
        Provider::Miro,
        "alice@example.com",
        Fault::first(FaultKind::Drop, Step::Revoke, 1),
    );
    let url = format!(
        "{}/v2/sessions/reset_all?email=alice@example.com",
        sims.base_url(Provider::Miro)
    );
    let err = client()
        .post(&url)
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await;
    assert!(err.is_err(), "expected a transport error, got {err:?}");
    let again = client()
        .post(&url)
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(again.status(), 200);
    let statuses: Vec<u16> = h
        .calls_to(Provider::Miro)
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, vec![0, 200]);
}

#[tokio::test]
async fn slow_fault_delays_the_answer() {
    let sims = start().await;
    let h = sims.handle();
    let slow = FaultKind::Slow(Duration::from_millis(300));
    h.set_fault(
        Provider::Miro,
        "alice@example.com",
        Fault::new(slow, Step::Revoke),
    );
    let url = format!(
        "{}/v2/sessions/reset_all?email=alice@example.com",
        sims.base_url(Provider::Miro)
    );
    let quick = Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    assert!(quick
        .post(&url)
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn configured_rate_limit_answers_429_per_slack_method() {
    let limit = RateLimit {
        max: 2,
        per: Duration::from_secs(30),
    };
    let sims = start_with(SimOptions {
        rate_limits: HashMap::from([(Provider::Slack, limit)]),
        ..SimOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = client()
            .get(slack(&sims, "users.lookupByEmail"))
            .query(&[("email", "alice@example.com")])
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .send()
            .await
            .expect("call");
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let secs: u64 = header(&resp, "retry-after")
                .expect("retry-after")
                .parse()
                .expect("secs");
            assert!((1..=30).contains(&secs));
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let other_method = client()
        .post(slack(&sims, "auth.test"))
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(other_method.status(), 200);
    assert_eq!(sims.handle().count_429(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_in_flight_counts_concurrent_calls_across_servers() {
    let sims = start_with(SimOptions {
        latency: Duration::from_millis(400),
        ..SimOptions::default()
    })
    .await;
    let h = sims.handle();
    let calls = (0..6).map(|i| {
        let url = if i % 2 == 0 {
            slack(&sims, "auth.test")
        } else {
            okta(&sims, "/api/v1/users/me")
        };
        client().get(url).send()
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(h.peak_in_flight(), 6);
    h.reset_calls();
    assert_eq!(h.peak_in_flight(), 0);
    assert!(h.calls().is_empty());
}

#[tokio::test]
async fn control_surface_sets_faults_and_lists_calls_over_http() {
    let sims = start().await;
    let base = sims.base_url(Provider::Entra);
    let fault = json!({"provider": "miro", "email": "alice@example.com", "kind": {"status": 403},
                       "step": "revoke", "times": 1});
    let resp = client()
        .post(format!("{base}/_sim/faults"))
        .json(&fault)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 204);
    let url = format!(
        "{}/v2/sessions/reset_all?email=alice@example.com",
        sims.base_url(Provider::Miro)
    );
    let first = client()
        .post(&url)
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(first.status(), 403);
    assert_eq!(json(first).await["code"], "forbiddenAccess");
    let second = client()
        .post(&url)
        .bearer_auth(demo::MIRO_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(second.status(), 200);

    let calls = json(
        client()
            .get(format!("{base}/_sim/calls"))
            .send()
            .await
            .expect("call"),
    )
    .await;
    let calls = calls.as_array().expect("array");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["provider"], "miro");
    assert_eq!(calls[0]["step"], "revoke");
    assert_eq!(calls[0]["query"], "email=alice@example.com");
    assert!(calls[0]["started_ms"].as_u64().is_some());
    let stats = json(
        client()
            .get(format!("{base}/_sim/stats"))
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(stats["revoked"]["miro"], json!(["alice@example.com"]));

    let drop = json!({"provider": "okta", "email": "bob@example.com", "kind": "drop"});
    let resp = client()
        .post(format!("{base}/_sim/faults"))
        .json(&drop)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 204);
    let resp = client()
        .delete(format!("{base}/_sim/calls"))
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 204);
    assert!(sims.handle().calls().is_empty());
    sims.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_each_vendors_not_found_shape() {
    let sims = start().await;
    let get = |p: Provider, path: &str| client().get(format!("{}{path}", sims.base_url(p))).send();
    let okta = get(Provider::Okta, "/api/v1/nothing").await.expect("call");
    assert_eq!(okta.status(), 404);
    let google = get(Provider::Google, "/nothing").await.expect("call");
    assert_eq!(google.status(), 404);
    assert!(header(&google, "content-type").is_some_and(|c| c.starts_with("text/html")));
    let slack = get(Provider::Slack, "/api/nothing.here")
        .await
        .expect("call");
    assert_eq!(slack.status(), 404);
    assert_eq!(json(slack).await["error"], "unknown_method");
    let miro = get(Provider::Miro, "/v2/nothing").await.expect("call");
    assert_eq!(json(miro).await["code"], "notFound");
    assert_eq!(sims.handle().calls().len(), 4);
}

#[tokio::test]
async fn generated_directory_pages_through_every_list_api() {
    let sims = Sims::start(
        Directory::generated(5, "example.com"),
        SimOptions::default(),
    )
    .await
    .expect("sims start");

    let mut url = okta(&sims, "/api/v1/users?limit=2");
    let mut okta_users = 0;
    for _ in 0..10 {
        let resp = client()
            .get(&url)
            .header("authorization", format!("SSWS {}", demo::OKTA_API_TOKEN))
            .send()
            .await
            .expect("call");
        let next = resp
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| {
                l.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
        okta_users += json(resp).await.as_array().map_or(0, Vec::len);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert_eq!(okta_users, 6, "five users and the admin");

    let token = entra_token(&sims).await;
    let first =
        json(graph_get(&sims, &token, "/users?$top=3&$select=id,userPrincipalName").await).await;
    assert_eq!(first["value"].as_array().map(Vec::len), Some(3));
    let next = first["@odata.nextLink"].as_str().expect("next link");
    let second = json(
        client()
            .get(next)
            .bearer_auth(&token)
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(second["value"].as_array().map(Vec::len), Some(2));
    assert!(second.get("@odata.nextLink").is_none());

    let mut cursor = String::new();
    let mut slack_users = 0;
    for _ in 0..10 {
        let body = json(
            client()
                .get(slack(&sims, "users.list"))
                .query(&[("limit", "2"), ("cursor", cursor.as_str())])
                .bearer_auth(demo::SLACK_USER_TOKEN)
                .send()
                .await
                .expect("call"),
        )
        .await;
        slack_users += body["members"].as_array().map_or(0, Vec::len);
        cursor = body["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(slack_users, 5);

    let members = format!(
        "{}/v2/orgs/{}/members?limit=4",
        sims.base_url(Provider::Miro),
        demo::MIRO_ORG_ID
    );
    let page = json(
        client()
            .get(&members)
            .bearer_auth(demo::MIRO_TOKEN)
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(page["size"], 4);
    let cursor = page["cursor"].as_str().expect("cursor");
    let rest = json(
        client()
            .get(format!("{members}&cursor={cursor}"))
            .bearer_auth(demo::MIRO_TOKEN)
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(rest["size"], 1);

    let bulk = client()
        .post(slack(&sims, "admin.users.session.resetBulk"))
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .json(&json!({"user_ids": ["W0NOTREAL", "W0NOTREAL2"]}))
        .send()
        .await
        .expect("call");
    let body = json(bulk).await;
    assert_eq!(body["error"], "failed_for_some_users");
    assert_eq!(
        body["response_metadata"]["messages"][1],
        "[ERROR] W0NOTREAL2: user_not_found"
    );
}

async fn slack_id(sims: &Sims, email: &str) -> String {
    let body = json(
        client()
            .get(format!(
                "{}?email={email}",
                slack(sims, "users.lookupByEmail")
            ))
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .send()
            .await
            .expect("call"),
    )
    .await;
    body["user"]["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn slack_reset_bulk_takes_a_form_or_json_enqueues_and_names_the_users_it_cannot_reset() {
    let sims = Sims::start(
        Directory::generated(2, "example.com"),
        SimOptions::default(),
    )
    .await
    .expect("sims start");
    let h = sims.handle();
    let alice = slack_id(&sims, "user00001@example.com").await;
    let bob = slack_id(&sims, "user00002@example.com").await;
    let url = slack(&sims, "admin.users.session.resetBulk");
    // A form with a comma-separated list.
    let r = client()
        .post(&url)
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .form(&[
            ("user_ids", format!("{alice},{bob}").as_str()),
            ("mobile_only", "true"),
        ])
        .send()
        .await
        .expect("call");
    assert_eq!(json(r).await, json!({"ok": true}));
    let mut revoked = h.revoked(Provider::Slack);
    revoked.sort();
    assert_eq!(revoked, ["user00001@example.com", "user00002@example.com"]);
    // A form with a JSON array as a string.
    let r = client()
        .post(&url)
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .form(&[("user_ids", format!("[\"{alice}\"]").as_str())])
        .send()
        .await
        .expect("call");
    assert_eq!(json(r).await["ok"], true);
    assert_eq!(h.revoked(Provider::Slack).len(), 3);
    // More than 1,000 ids, or none, is refused before anything is reset.
    let many: Vec<String> = (0..1001).map(|_| alice.clone()).collect();
    let r = client()
        .post(&url)
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .json(&json!({"user_ids": many}))
        .send()
        .await
        .expect("call");
    assert_eq!(json(r).await["error"], "invalid_arguments");
    let r = client()
        .post(&url)
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .json(&json!({"user_ids": []}))
        .send()
        .await
        .expect("call");
    assert_eq!(json(r).await["error"], "invalid_arguments");
    assert_eq!(h.revoked(Provider::Slack).len(), 3);
    // Without the token, nothing.
    let r = client()
        .post(&url)
        .json(&json!({"user_ids": [bob]}))
        .send()
        .await
        .expect("call");
    assert_eq!(json(r).await["error"], "not_authed");
    let calls = h.calls_to(Provider::Slack);
    let last = calls.last().expect("a call");
    assert_eq!(last.step, Step::Revoke);
    assert!(last.path.ends_with("/admin.users.session.resetBulk"));
}

#[tokio::test]
async fn slack_reset_bulk_has_its_own_rate_limit_answered_with_retry_after() {
    let mut limits = std::collections::HashMap::new();
    limits.insert(
        Provider::Slack,
        RateLimit {
            max: 1,
            per: Duration::from_secs(30),
        },
    );
    let sims = start_with(SimOptions {
        rate_limits: limits,
        ..SimOptions::default()
    })
    .await;
    let url = slack(&sims, "admin.users.session.resetBulk");
    let send = || {
        client()
            .post(&url)
            .bearer_auth(demo::SLACK_USER_TOKEN)
            .json(&json!({"user_ids": ["W0NOTREAL"]}))
            .send()
    };
    assert_eq!(send().await.expect("call").status(), 200);
    let r = send().await.expect("call");
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(json(r).await, json!({"ok": false, "error": "ratelimited"}));
    // Another method has its own window.
    let r = client()
        .get(format!(
            "{}?email=alice@example.com",
            slack(&sims, "users.lookupByEmail")
        ))
        .bearer_auth(demo::SLACK_USER_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn graph_reports_sign_in_sessions_valid_from_after_revoke() {
    let sims = start().await;
    let token = entra_token(&sims).await;
    let path = "/users/bob@example.com?$select=id,signInSessionsValidFromDateTime";
    let before = json(graph_get(&sims, &token, path).await).await;
    let id = before["id"].as_str().expect("id");
    let url = format!(
        "{}/v1.0/users/{id}/revokeSignInSessions",
        sims.base_url(Provider::Entra)
    );
    let resp = client()
        .post(url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 200);
    let after = json(graph_get(&sims, &token, path).await).await;
    assert!(
        after["signInSessionsValidFromDateTime"].as_str()
            > before["signInSessionsValidFromDateTime"].as_str()
    );
    let risky = graph_get(
        &sims,
        &token,
        "/identityProtection/riskyUsers?$filter=riskLevel eq 'high'",
    )
    .await;
    assert_eq!(
        risky.status(),
        403,
        "the default roles lack IdentityRiskyUser.Read.All"
    );
}

#[tokio::test]
async fn risky_users_lists_high_risk_people_when_the_app_may_read_them() {
    let mut roles = SimOptions::default().entra_roles;
    roles.push("IdentityRiskyUser.Read.All".to_string());
    let sims = start_with(SimOptions {
        entra_roles: roles,
        ..SimOptions::default()
    })
    .await;
    let token = entra_token(&sims).await;
    let body = json(
        graph_get(
            &sims,
            &token,
            "/identityProtection/riskyUsers?$filter=riskLevel eq 'high'",
        )
        .await,
    )
    .await;
    let upns: Vec<&str> = body["value"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str())
        .collect();
    assert_eq!(upns, vec!["erin@example.com"]);
}

// ---- groups and risk levels (bulk --group / --risky) ----

const GROUP_MEMBER_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly";

#[tokio::test]
async fn okta_group_users_page_by_link_and_an_unknown_group_is_e0000007() {
    let dir = Directory::generated(30, "example.com");
    let eng = dir.group_key(Provider::Okta, "eng");
    assert!(eng.starts_with("00g") && eng.len() == 20, "{eng}");
    let sims = Sims::start(dir, SimOptions::default()).await.expect("sims");
    let auth = format!("SSWS {}", demo::OKTA_API_TOKEN);
    let mut url = okta(&sims, &format!("/api/v1/groups/{eng}/users?limit=4"));
    let mut logins = Vec::new();
    let mut pages = 0;
    loop {
        let resp = client()
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .expect("call");
        assert_eq!(resp.status(), 200);
        assert!(header(&resp, "x-rate-limit-remaining").is_some());
        let next = resp
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.ends_with("rel=\"next\""))
            .map(|v| {
                v.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
        pages += 1;
        for u in json(resp).await.as_array().expect("array") {
            logins.push(u["profile"]["login"].as_str().expect("login").to_string());
        }
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    let want: Vec<String> = (1..=30)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("user{i:05}@example.com"))
        .collect();
    assert_eq!(logins, want);
    assert_eq!(pages, 3);

    let resp = client()
        .get(okta(&sims, "/api/v1/groups/00gnosuchgroup000000/users"))
        .header("authorization", &auth)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["errorCode"], "E0000007");
}

#[tokio::test]
async fn graph_group_members_are_polymorphic_and_need_group_member_read() {
    let dir = Directory::demo();
    let eng = dir.group_key(Provider::Entra, "eng");
    let sims = start().await;
    let token = entra_token(&sims).await;
    let resp = graph_get(&sims, &token, &format!("/groups/{eng}/members")).await;
    assert_eq!(
        resp.status(),
        403,
        "the default roles lack GroupMember.Read.All"
    );
    assert_eq!(
        json(resp).await["error"]["code"],
        "Authorization_RequestDenied"
    );

    let mut roles = SimOptions::default().entra_roles;
    roles.push("GroupMember.Read.All".to_string());
    let sims = start_with(SimOptions {
        entra_roles: roles,
        ..SimOptions::default()
    })
    .await;
    let token = entra_token(&sims).await;
    let page1 =
        json(graph_get(&sims, &token, &format!("/groups/{eng}/members?$top=2")).await).await;
    let next = page1["@odata.nextLink"].as_str().expect("next link");
    assert!(next.contains("$skiptoken="), "{next}");
    let page2 = json(
        client()
            .get(next)
            .bearer_auth(&token)
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert!(page2.get("@odata.nextLink").is_none(), "{page2}");
    let members: Vec<(String, Option<String>)> = page1["value"]
        .as_array()
        .into_iter()
        .chain(page2["value"].as_array())
        .flatten()
        .map(|m| {
            (
                m["@odata.type"].as_str().unwrap_or("").to_string(),
                m["userPrincipalName"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![
            (
                "#microsoft.graph.user".into(),
                Some("alice@example.com".into())
            ),
            (
                "#microsoft.graph.user".into(),
                Some("bob@example.com".into())
            ),
            ("#microsoft.graph.group".into(), None),
        ]
    );
    let resp = graph_get(&sims, &token, "/groups/no-such-group/members").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        json(resp).await["error"]["code"],
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn risky_users_page_by_next_link_keeping_the_filter() {
    let mut roles = SimOptions::default().entra_roles;
    roles.push("IdentityRiskyUser.Read.All".to_string());
    let sims = Sims::start(
        Directory::generated(200, "example.com"),
        SimOptions {
            entra_roles: roles,
            ..SimOptions::default()
        },
    )
    .await
    .expect("sims");
    let token = entra_token(&sims).await;
    let page1 = json(
        graph_get(
            &sims,
            &token,
            "/identityProtection/riskyUsers?$filter=riskLevel%20eq%20%27high%27&$top=6",
        )
        .await,
    )
    .await;
    assert_eq!(page1["value"].as_array().expect("value").len(), 6);
    let next = page1["@odata.nextLink"].as_str().expect("next link");
    let page2 = json(
        client()
            .get(next)
            .bearer_auth(&token)
            .send()
            .await
            .expect("call"),
    )
    .await;
    let levels: Vec<&str> = page2["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|u| u["riskLevel"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(levels, vec!["high"; 4], "the filter carries over: {page2}");
    assert!(page2.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn google_members_list_pages_users_and_groups_with_its_own_scope() {
    let sims = start().await;
    let pem = include_str!("../keys/google-demo-sa.pem");
    let readonly =
        json(google_token_call(&sims, &google_assertion(&sims, READONLY, pem)).await).await;
    let url = |q: &str| {
        format!(
            "{}/admin/directory/v1/groups/eng%40example.com/members{q}",
            sims.base_url(Provider::Google)
        )
    };
    let get = |u: String, token: String| async move {
        client()
            .get(u)
            .bearer_auth(token)
            .send()
            .await
            .expect("call")
    };
    let token = readonly["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let resp = get(url(""), token).await;
    assert_eq!(resp.status(), 403, "user scopes do not read groups");

    let grant =
        json(google_token_call(&sims, &google_assertion(&sims, GROUP_MEMBER_READONLY, pem)).await)
            .await;
    let token = grant["access_token"].as_str().expect("token").to_string();
    let page1 = json(get(url("?maxResults=2"), token.clone()).await).await;
    let next = page1["nextPageToken"].as_str().expect("next page");
    let page2 = json(
        get(
            url(&format!("?maxResults=2&pageToken={next}")),
            token.clone(),
        )
        .await,
    )
    .await;
    assert!(page2.get("nextPageToken").is_none());
    let members: Vec<(String, String)> = page1["members"]
        .as_array()
        .into_iter()
        .chain(page2["members"].as_array())
        .flatten()
        .map(|m| {
            (
                m["type"].as_str().unwrap_or("").to_string(),
                m["email"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![
            ("USER".to_string(), "alice@example.com".to_string()),
            ("USER".to_string(), "bob@example.com".to_string()),
            ("GROUP".to_string(), "eng-oncall@example.com".to_string()),
        ]
    );
    let resp = get(
        format!(
            "{}/admin/directory/v1/groups/nope%40example.com/members",
            sims.base_url(Provider::Google)
        ),
        token.clone(),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["errors"][0]["reason"], "notFound");
    let resp = get(url("?maxResults=0"), token).await;
    assert_eq!(resp.status(), 400);
}
