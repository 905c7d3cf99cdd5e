//! The connectors against the real simulators over HTTP: every provider's
//! success, not-found, refusal, bad credential, throttling, server error,
//! timeout and exhaustion paths, plus each provider's quirks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};
use sever_core::{
    AccessToken, Attempt, CallContext, Connector, ErrorClass, Failure, Lookup, Outcome,
    RetryPolicy, RiskLevel, Selection, Step, TokenCache, Username,
};
use sever_sim::{demo, Directory, Fault, FaultKind, Provider, SimHandle, SimOptions, Sims};

use crate::{build, ConnectorConfig, HttpClient, MemoryTokenCache};

const ALICE: &str = "alice@example.com";
const NOBODY: &str = "nobody@example.com";

struct Env {
    sims: Sims,
    sim: SimHandle,
    http: HttpClient,
    cache: Arc<MemoryTokenCache>,
}

async fn env_with(opts: SimOptions) -> Env {
    let sims = Sims::start(Directory::demo(), opts).await.unwrap();
    Env {
        sim: sims.handle(),
        sims,
        http: HttpClient::new().unwrap(),
        cache: Arc::new(MemoryTokenCache::new()),
    }
}

async fn env() -> Env {
    env_with(SimOptions::default()).await
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        attempt_timeout: Duration::from_millis(300),
    }
}

fn cx() -> CallContext {
    CallContext::new(Instant::now() + Duration::from_secs(10), policy(3))
}

/// The configuration of `p` pointing at the simulator, with the demo credentials.
fn config(env: &Env, p: Provider) -> Value {
    let base = env.sims.base_url(p);
    match p {
        Provider::Okta => {
            json!({"provider": "okta", "base_url": base, "api_token": demo::OKTA_API_TOKEN})
        }
        Provider::Entra => json!({
            "provider": "entra", "base_url": format!("{base}/v1.0"),
            "token_url": format!("{base}/{}/oauth2/v2.0/token", demo::ENTRA_TENANT_ID),
            "tenant_id": demo::ENTRA_TENANT_ID, "client_id": demo::ENTRA_CLIENT_ID,
            "client_secret": demo::ENTRA_CLIENT_SECRET,
        }),
        Provider::Google => json!({
            "provider": "google_workspace", "base_url": base, "token_url": format!("{base}/token"),
            "service_account_json": demo::GOOGLE_SERVICE_ACCOUNT_JSON,
            "admin_subject": demo::GOOGLE_ADMIN_SUBJECT,
        }),
        Provider::Slack => {
            json!({"provider": "slack_enterprise", "base_url": format!("{base}/api"), "token": demo::SLACK_USER_TOKEN})
        }
        Provider::Miro => json!({"provider": "miro", "base_url": base, "token": demo::MIRO_TOKEN}),
    }
}

/// The same configuration with a wrong credential.
fn bad_credential(env: &Env, p: Provider, canary: &str) -> Value {
    let mut v = config(env, p);
    match p {
        Provider::Okta => v["api_token"] = json!(canary),
        Provider::Entra => v["client_secret"] = json!(canary),
        Provider::Google => {
            // A well-formed key the service account does not hold.
            let mut key: Value = serde_json::from_str(demo::GOOGLE_SERVICE_ACCOUNT_JSON).unwrap();
            key["private_key"] = json!(demo::OKTA_PRIVATE_KEY_PEM);
            key["canary"] = json!(canary);
            v["service_account_json"] = json!(key.to_string());
        }
        Provider::Slack | Provider::Miro => v["token"] = json!(format!("xoxp-{canary}")),
    }
    v
}

fn parse(v: Value) -> ConnectorConfig {
    serde_json::from_value(v).unwrap()
}

fn connector(env: &Env, v: Value) -> Arc<dyn Connector> {
    build(&parse(v), &env.http, env.cache.clone()).unwrap()
}

/// Lookup, then revoke, as the engine does.
async fn run(c: &dyn Connector, cx: &CallContext, user: &str) -> Outcome {
    let user = Username::parse(user).unwrap();
    match c.lookup(cx, &user).await {
        Ok(Lookup::Settled(o)) => o,
        Ok(Lookup::Found(s)) => c.revoke(cx, &s).await.unwrap_or_else(Outcome::Failed),
        Err(f) => Outcome::Failed(f),
    }
}

fn failure(o: Outcome) -> Failure {
    match o {
        Outcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn of_step(cx: &CallContext, step: Step) -> Vec<Attempt> {
    cx.attempts()
        .into_iter()
        .filter(|a| a.step == step)
        .collect()
}

fn statuses(cx: &CallContext, step: Step) -> Vec<Option<u16>> {
    of_step(cx, step).iter().map(|a| a.http_status).collect()
}

fn token_calls(sim: &SimHandle, p: Provider) -> usize {
    sim.calls_to(p)
        .iter()
        .filter(|c| c.step == sever_sim::Step::Token)
        .count()
}

const ALL: [Provider; 5] = Provider::ALL;

fn ok_status(p: Provider) -> u16 {
    match p {
        Provider::Okta | Provider::Google => 204,
        _ => 200,
    }
}

// ---- the matrix: every scenario for every provider ----

#[tokio::test]
async fn every_connector_revokes_a_known_user_and_records_its_attempts() {
    let env = env().await;
    for p in ALL {
        let c = connector(&env, config(&env, p));
        let cx = cx();
        assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked, "{p}");
        let revoke = of_step(&cx, Step::Revoke);
        assert_eq!(revoke.len(), 1, "{p}");
        assert_eq!(revoke[0].http_status, Some(ok_status(p)), "{p}");
        assert_eq!(revoke[0].error_class, None, "{p}");
        assert_eq!(revoke[0].number, 1, "{p}");
        assert!(env.sim.revoked(p).contains(&ALICE.to_string()), "{p}");
        assert!(!of_step(&cx, Step::Lookup).is_empty(), "{p}");
    }
}

#[tokio::test]
async fn every_connector_reports_an_unknown_user_as_not_found() {
    let env = env().await;
    for p in ALL {
        let c = connector(&env, config(&env, p));
        let cx = cx();
        assert_eq!(
            run(c.as_ref(), &cx, NOBODY).await,
            Outcome::UserNotFound,
            "{p}"
        );
        assert!(cx.attempts().iter().all(|a| a.error_class.is_none()), "{p}");
    }
}

#[tokio::test]
async fn every_connector_reports_a_refusal_as_forbidden_without_retrying() {
    let env = env().await;
    for p in ALL {
        env.sim.set_fault(
            p,
            ALICE,
            Fault::new(FaultKind::Status(403), sever_sim::Step::Revoke),
        );
        let c = connector(&env, config(&env, p));
        let cx = cx();
        let f = failure(run(c.as_ref(), &cx, ALICE).await);
        assert_eq!(f.class, ErrorClass::Forbidden, "{p}: {f:?}");
        assert_eq!(f.attempts, 1, "{p}");
        assert!(f.provider_code.is_some(), "{p}: {f:?}");
        assert!(!f.message.is_empty() && !f.message.contains('\n'), "{p}");
        assert_eq!(of_step(&cx, Step::Revoke).len(), 1, "{p}");
    }
}

#[tokio::test]
async fn every_connector_reports_a_wrong_credential_as_unauthorized_and_never_echoes_it() {
    let env = env().await;
    for p in ALL {
        let canary = "CANARY0sekret0value0123456789";
        let cfg = parse(bad_credential(&env, p, canary));
        assert!(
            !format!("{cfg:?}").contains(canary),
            "{p}: Debug shows the secret"
        );
        let c = build(&cfg, &env.http, env.cache.clone()).unwrap();
        let cx = cx();
        let o = run(c.as_ref(), &cx, ALICE).await;
        assert!(!format!("{o:?}").contains(canary), "{p}");
        let f = failure(o);
        assert_eq!(f.class, ErrorClass::Unauthorized, "{p}: {f:?}");
        assert!(!f.message.contains(canary));
        assert!(!format!("{:?}", cx.attempts()).contains(canary));
    }
}

#[tokio::test]
async fn every_connector_waits_out_a_429_and_then_succeeds() {
    let env = env().await;
    for p in ALL {
        let fault = FaultKind::RateLimited {
            retry_after_secs: 1,
            http_date: false,
        };
        env.sim
            .set_fault(p, ALICE, Fault::first(fault, sever_sim::Step::Revoke, 1));
        let c = connector(&env, config(&env, p));
        let cx = cx();
        assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked, "{p}");
        let revoke = of_step(&cx, Step::Revoke);
        assert_eq!(
            statuses(&cx, Step::Revoke),
            [Some(429), Some(ok_status(p))],
            "{p}"
        );
        assert_eq!(revoke[0].error_class, Some(ErrorClass::RateLimited), "{p}");
        assert_eq!((revoke[0].number, revoke[1].number), (1, 2));
        let waited = revoke[1].started_at - revoke[0].started_at;
        assert!(
            waited.num_milliseconds() >= 900,
            "{p}: retried after {waited}"
        );
    }
}

#[tokio::test]
async fn every_connector_retries_a_server_error() {
    let env = env().await;
    for p in ALL {
        env.sim.set_fault(
            p,
            ALICE,
            Fault::first(FaultKind::Status(503), sever_sim::Step::Revoke, 1),
        );
        let c = connector(&env, config(&env, p));
        let cx = cx();
        assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked, "{p}");
        assert_eq!(
            statuses(&cx, Step::Revoke),
            [Some(503), Some(ok_status(p))],
            "{p}"
        );
        assert_eq!(
            of_step(&cx, Step::Revoke)[0].error_class,
            Some(ErrorClass::ProviderError)
        );
    }
}

#[tokio::test]
async fn every_connector_times_out_a_slow_provider_per_attempt() {
    let env = env().await;
    for p in ALL {
        env.sim.set_fault(
            p,
            ALICE,
            Fault::new(
                FaultKind::Slow(Duration::from_millis(700)),
                sever_sim::Step::Revoke,
            ),
        );
        let c = connector(&env, config(&env, p));
        let cx = CallContext::new(Instant::now() + Duration::from_secs(10), policy(2));
        let t0 = Instant::now();
        let f = failure(run(c.as_ref(), &cx, ALICE).await);
        assert_eq!(f.class, ErrorClass::Timeout, "{p}: {f:?}");
        assert_eq!(f.attempts, 2, "{p}");
        assert!(t0.elapsed() < Duration::from_millis(1400), "{p}");
        let revoke = of_step(&cx, Step::Revoke);
        assert!(revoke
            .iter()
            .all(|a| a.error_class == Some(ErrorClass::Timeout) && a.http_status.is_none()));
        assert!(
            revoke.iter().all(|a| (290..600).contains(&a.duration_ms)),
            "{revoke:?}"
        );
    }
}

#[tokio::test]
async fn every_connector_gives_up_after_max_attempts_of_server_errors() {
    let env = env().await;
    for p in ALL {
        env.sim.set_fault(
            p,
            ALICE,
            Fault::new(FaultKind::Status(503), sever_sim::Step::Revoke),
        );
        let c = connector(&env, config(&env, p));
        let cx = cx();
        let f = failure(run(c.as_ref(), &cx, ALICE).await);
        assert_eq!(f.class, ErrorClass::ProviderError, "{p}: {f:?}");
        assert_eq!(f.attempts, 3, "{p}");
        assert_eq!(f.http_status, Some(503));
        assert!(
            f.message.contains("gave up after 3 attempts"),
            "{}",
            f.message
        );
        assert_eq!(statuses(&cx, Step::Revoke), [Some(503); 3], "{p}");
        let numbers: Vec<u32> = of_step(&cx, Step::Revoke)
            .iter()
            .map(|a| a.number)
            .collect();
        assert_eq!(numbers, [1, 2, 3]);
    }
}

#[tokio::test]
async fn every_connector_passes_its_own_test_with_the_demo_credentials() {
    let env = env().await;
    for p in ALL {
        let c = connector(&env, config(&env, p));
        let report = c.test(&cx()).await;
        assert!(report.ok(), "{p}: {report:?}");
        assert!(report.checks.len() >= 2, "{p}: {report:?}");
    }
}

// ---- transport behaviour ----

#[tokio::test]
async fn a_dropped_connection_is_a_network_error_that_is_retried() {
    let env = env().await;
    env.sim.set_fault(
        Provider::Slack,
        ALICE,
        Fault::first(FaultKind::Drop, sever_sim::Step::Revoke, 1),
    );
    let c = connector(&env, config(&env, Provider::Slack));
    let cx = cx();
    assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked);
    let revoke = of_step(&cx, Step::Revoke);
    assert_eq!(revoke[0].error_class, Some(ErrorClass::Network));
    assert_eq!(revoke[1].http_status, Some(200));
}

#[tokio::test]
async fn a_retry_after_http_date_is_honoured() {
    let env = env().await;
    let fault = FaultKind::RateLimited {
        retry_after_secs: 1,
        http_date: true,
    };
    env.sim.set_fault(
        Provider::Entra,
        ALICE,
        Fault::first(fault, sever_sim::Step::Revoke, 1),
    );
    let c = connector(&env, config(&env, Provider::Entra));
    let cx = cx();
    assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked);
    let revoke = of_step(&cx, Step::Revoke);
    assert_eq!(statuses(&cx, Step::Revoke), [Some(429), Some(200)]);
    assert!((revoke[1].started_at - revoke[0].started_at).num_milliseconds() >= 500);
}

#[tokio::test]
async fn a_wait_that_would_pass_the_deadline_fails_at_once_as_rate_limited() {
    let env = env().await;
    let fault = FaultKind::RateLimited {
        retry_after_secs: 30,
        http_date: false,
    };
    env.sim.set_fault(
        Provider::Slack,
        ALICE,
        Fault::new(fault, sever_sim::Step::Revoke),
    );
    let c = connector(&env, config(&env, Provider::Slack));
    let cx = CallContext::new(Instant::now() + Duration::from_secs(3), policy(3));
    let t0 = Instant::now();
    let f = failure(run(c.as_ref(), &cx, ALICE).await);
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(f.class, ErrorClass::RateLimited);
    assert_eq!(f.attempts, 1);
    assert!(f.message.contains("deadline"), "{}", f.message);
}

// ---- Okta ----

#[tokio::test]
async fn okta_revokes_oauth_tokens_when_asked_and_says_so_in_the_query() {
    let env = env().await;
    let mut v = config(&env, Provider::Okta);
    v["oauth_tokens"] = json!(true);
    let c = connector(&env, v);
    assert_eq!(run(c.as_ref(), &cx(), ALICE).await, Outcome::TokensRevoked);
    let calls = env.sim.calls_to(Provider::Okta);
    let del = calls.iter().find(|c| c.method == "DELETE").unwrap();
    assert!(del.path.starts_with("/api/v1/users/00u") && del.path.ends_with("/sessions"));
    assert_eq!(
        del.query.as_deref(),
        Some("oauthTokens=true&forgetDevices=false")
    );
    let get = calls.iter().find(|c| c.method == "GET").unwrap();
    assert_eq!(get.path, "/api/v1/users/alice%40example.com");
    assert_eq!(get.auth_scheme.as_deref(), Some("SSWS"));
}

#[tokio::test]
async fn okta_service_app_signs_a_client_assertion_and_uses_the_bearer_token() {
    let env = env().await;
    let base = env.sims.base_url(Provider::Okta);
    let c = connector(
        &env,
        json!({"provider": "okta", "base_url": base, "client_id": demo::OKTA_CLIENT_ID,
               "private_key": demo::OKTA_PRIVATE_KEY_PEM, "key_id": demo::OKTA_KEY_ID}),
    );
    let cx = cx();
    assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked);
    assert_eq!(statuses(&cx, Step::Token), [Some(200)]);
    let calls = env.sim.calls_to(Provider::Okta);
    assert!(calls
        .iter()
        .skip(1)
        .all(|c| c.auth_scheme.as_deref() == Some("Bearer")));
    let report = c.test(&cx).await;
    assert!(report.ok(), "{report:?}");
}

#[tokio::test]
async fn okta_rate_limits_are_waited_out_from_the_reset_header() {
    let env = env().await;
    let fault = FaultKind::RateLimited {
        retry_after_secs: 1,
        http_date: false,
    };
    env.sim.set_fault(
        Provider::Okta,
        ALICE,
        Fault::first(fault, sever_sim::Step::Lookup, 1),
    );
    let c = connector(&env, config(&env, Provider::Okta));
    let cx = cx();
    assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked);
    let lookup = of_step(&cx, Step::Lookup);
    assert_eq!(lookup[0].provider_code.as_deref(), Some("E0000047"));
    assert!(lookup[0].provider_request_id.is_some());
    assert!((lookup[1].started_at - lookup[0].started_at).num_milliseconds() >= 500);
}

// ---- Entra ----

#[tokio::test]
async fn entra_settles_guests_as_not_applicable_and_encodes_ext_upns() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Entra));
    for user in [
        "dave_partner.com#EXT#@example.onmicrosoft.com",
        "dave@partner.com",
    ] {
        match run(c.as_ref(), &cx(), user).await {
            Outcome::NotApplicable { message } => assert!(message.contains("home tenant")),
            other => panic!("{user}: {other:?}"),
        }
    }
    let q = env
        .sim
        .calls_to(Provider::Entra)
        .into_iter()
        .filter_map(|c| c.query)
        .find(|q| q.contains("EXT"))
        .unwrap();
    assert!(
        q.contains("dave_partner.com%23EXT%23%40example.onmicrosoft.com"),
        "{q}"
    );
    assert!(q.starts_with("$filter=userPrincipalName%20eq%20%27"), "{q}");
    assert!(
        q.ends_with("&$select=id,userPrincipalName,mail,userType,accountEnabled"),
        "{q}"
    );
    assert!(env.sim.revoked(Provider::Entra).is_empty());
}

#[tokio::test]
async fn entra_doubles_quotes_inside_the_filter_literal() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Entra));
    assert_eq!(
        run(c.as_ref(), &cx(), "o'neil@example.com").await,
        Outcome::Revoked
    );
    let q = env
        .sim
        .calls_to(Provider::Entra)
        .into_iter()
        .filter_map(|c| c.query)
        .find(|q| q.contains("filter"))
        .unwrap();
    assert!(q.contains("%27o%27%27neil%40example.com%27"), "{q}");
}

#[tokio::test]
async fn entra_refuses_to_guess_between_two_matching_users() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Entra));
    let f = failure(run(c.as_ref(), &cx(), "dup@example.com").await);
    assert_eq!(f.class, ErrorClass::AmbiguousMatch);
    assert!(
        f.message.contains("dup@example.com") && f.message.contains("dup.contractor@example.com"),
        "{}",
        f.message
    );
    assert!(env.sim.revoked(Provider::Entra).is_empty());
}

#[tokio::test]
async fn entra_explains_a_refused_revoke_with_the_permission_to_grant() {
    let env = env().await;
    sever_sim::demo_faults(&env.sim);
    let c = connector(&env, config(&env, Provider::Entra));
    let f = failure(run(c.as_ref(), &cx(), "carol@example.com").await);
    assert_eq!(f.class, ErrorClass::Forbidden);
    assert_eq!(
        f.provider_code.as_deref(),
        Some("Authorization_RequestDenied")
    );
    assert!(
        f.message.contains("User.RevokeSessions.All"),
        "{}",
        f.message
    );
    assert!(f.provider_request_id.is_some());
}

#[tokio::test]
async fn entra_explains_a_rejected_client_secret() {
    let env = env().await;
    let c = connector(
        &env,
        bad_credential(&env, Provider::Entra, "wrong-secret-value"),
    );
    let f = failure(run(c.as_ref(), &cx(), ALICE).await);
    assert_eq!(f.class, ErrorClass::Unauthorized);
    assert_eq!(f.provider_code.as_deref(), Some("AADSTS7000215"));
    assert!(f.message.contains("update client_secret"), "{}", f.message);
}

#[tokio::test]
async fn entra_test_flags_broader_than_needed_permissions() {
    let opts = SimOptions {
        entra_roles: vec!["User.Read.All".into(), "Directory.ReadWrite.All".into()],
        ..SimOptions::default()
    };
    let env = env_with(opts).await;
    let c = connector(&env, config(&env, Provider::Entra));
    let report = c.test(&cx()).await;
    let lp = report
        .checks
        .iter()
        .find(|c| c.name == "least privilege")
        .unwrap();
    assert!(
        !lp.ok && lp.detail.contains("Directory.ReadWrite.All"),
        "{report:?}"
    );
    let perms = report
        .checks
        .iter()
        .find(|c| c.name == "permissions")
        .unwrap();
    assert!(perms.ok, "{report:?}");
}

// ---- tokens ----

#[tokio::test]
async fn oauth_tokens_are_fetched_once_across_revocations_and_again_after_expiry() {
    let opts = SimOptions {
        token_lifetime_secs: 62,
        ..SimOptions::default()
    };
    let env = env_with(opts).await;
    for p in [Provider::Entra, Provider::Google] {
        let c = connector(&env, config(&env, p));
        assert_eq!(run(c.as_ref(), &cx(), ALICE).await, Outcome::Revoked, "{p}");
        assert_eq!(
            run(c.as_ref(), &cx(), "erin@example.com").await,
            Outcome::Revoked,
            "{p}"
        );
        assert_eq!(token_calls(&env.sim, p), 1, "{p}");
    }
    // 62 s tokens are refreshed once less than 60 s remain.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for p in [Provider::Entra, Provider::Google] {
        let c = connector(&env, config(&env, p));
        let cx = cx();
        assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked, "{p}");
        assert_eq!(token_calls(&env.sim, p), 2, "{p}");
        assert_eq!(statuses(&cx, Step::Token), [Some(200)], "{p}");
    }
}

#[tokio::test]
async fn concurrent_calls_share_one_token_fetch() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Entra));
    let (cx1, cx2) = (cx(), cx());
    let (a, b) = tokio::join!(
        run(c.as_ref(), &cx1, ALICE),
        run(c.as_ref(), &cx2, "bob@example.com")
    );
    assert_eq!((a, b), (Outcome::Revoked, Outcome::Revoked));
    assert_eq!(token_calls(&env.sim, Provider::Entra), 1);
}

#[tokio::test]
async fn a_cached_token_the_api_rejects_is_dropped_and_fetched_again() {
    let env = env().await;
    for p in [Provider::Entra, Provider::Google] {
        let c = connector(&env, config(&env, p));
        assert_eq!(run(c.as_ref(), &cx(), ALICE).await, Outcome::Revoked);
    }
    // Another replica left tokens the providers no longer accept.
    let stale = AccessToken {
        value: SecretString::from("stale-token"),
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    };
    for key in env.cache.keys() {
        env.cache.put(&key, &stale).await;
    }
    for p in [Provider::Entra, Provider::Google] {
        let c = connector(&env, config(&env, p));
        let cx = cx();
        assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked, "{p}");
        assert_eq!(statuses(&cx, Step::Lookup), [Some(401), Some(200)], "{p}");
        assert_eq!(token_calls(&env.sim, p), 2, "{p}");
        assert_eq!(of_step(&cx, Step::Lookup)[1].number, 2);
    }
}

#[tokio::test]
async fn token_endpoint_outages_are_retried_and_recorded_as_token_attempts() {
    let env = env().await;
    env.sim.set_fault(
        Provider::Google,
        ALICE,
        Fault::first(FaultKind::Status(503), sever_sim::Step::Token, 1),
    );
    let c = connector(&env, config(&env, Provider::Google));
    let cx = cx();
    assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked);
    assert_eq!(statuses(&cx, Step::Token), [Some(503), Some(200)]);
}

// ---- Google ----

#[tokio::test]
async fn google_settles_non_emails_without_calling() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Google));
    assert!(matches!(
        run(c.as_ref(), &cx(), "alice").await,
        Outcome::NotApplicable { .. }
    ));
    assert!(env.sim.calls_to(Provider::Google).is_empty());
}

// ---- Slack ----

#[tokio::test]
async fn slack_sends_a_form_with_mobile_only_and_protects_the_primary_owner_and_bots() {
    let env = env().await;
    let mut v = config(&env, Provider::Slack);
    v["mobile_only"] = json!(true);
    let c = connector(&env, v);
    assert_eq!(run(c.as_ref(), &cx(), ALICE).await, Outcome::Revoked);
    let calls = env.sim.calls_to(Provider::Slack);
    let reset = calls
        .iter()
        .find(|c| c.path == "/api/admin.users.session.reset")
        .unwrap();
    assert_eq!(reset.method, "POST");
    assert!(reset
        .content_type
        .as_deref()
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    assert!(reset.body.starts_with("user_id=W"), "{}", reset.body);
    assert!(
        reset.body.ends_with("&mobile_only=true&web_only=false"),
        "{}",
        reset.body
    );
    assert!(matches!(
        run(c.as_ref(), &cx(), "carol@example.com").await,
        Outcome::Protected { .. }
    ));
    assert_eq!(
        run(c.as_ref(), &cx(), "bot@example.com").await,
        Outcome::Protected {
            message: "bot user".into()
        }
    );
    assert!(matches!(
        run(c.as_ref(), &cx(), "alice").await,
        Outcome::NotApplicable { .. }
    ));
}

#[tokio::test]
async fn slack_without_enterprise_grid_is_not_entitled() {
    let env = env_with(SimOptions {
        slack_grid: false,
        ..SimOptions::default()
    })
    .await;
    let c = connector(&env, config(&env, Provider::Slack));
    assert_eq!(
        run(c.as_ref(), &cx(), ALICE).await,
        Outcome::NotEntitled {
            message: "Slack session reset needs Enterprise Grid".into()
        }
    );
}

/// Look everyone up, then revoke them all at once inside a bulk job (so
/// Slack's revocations are batched into `resetBulk`).
async fn revoke_in_bulk(c: &Arc<dyn Connector>, users: &[String]) -> Vec<(Outcome, Vec<Attempt>)> {
    let mut subjects = Vec::new();
    for u in users {
        match c.lookup(&cx(), &Username::parse(u).unwrap()).await.unwrap() {
            Lookup::Found(s) => subjects.push(s),
            Lookup::Settled(o) => panic!("{u}: {o:?}"),
        }
    }
    // Spawned in order on the test's single thread: the first is the batch's leader.
    let tasks: Vec<_> = subjects
        .into_iter()
        .map(|s| {
            let c = c.clone();
            tokio::spawn(sever_core::bulk::BULK_CONTEXT.scope((), async move {
                let cx = cx();
                let o = c.revoke(&cx, &s).await.unwrap_or_else(Outcome::Failed);
                (o, of_step(&cx, Step::Revoke))
            }))
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn env_generated(n: usize) -> Env {
    let sims = Sims::start(
        Directory::generated(n, "example.com"),
        SimOptions::default(),
    )
    .await
    .unwrap();
    Env {
        sim: sims.handle(),
        sims,
        http: HttpClient::new().unwrap(),
        cache: Arc::new(MemoryTokenCache::new()),
    }
}

const U1: &str = "user00001@example.com";
const U2: &str = "user00002@example.com";

fn bulk_calls(sim: &SimHandle) -> Vec<sever_sim::CallRecord> {
    sim.calls_to(Provider::Slack)
        .into_iter()
        .filter(|c| c.path == "/api/admin.users.session.resetBulk")
        .collect()
}

#[tokio::test]
async fn slack_in_bulk_resets_concurrent_people_in_one_reset_bulk_and_records_each() {
    let env = env_generated(3).await;
    let mut v = config(&env, Provider::Slack);
    v["web_only"] = json!(true);
    let c = connector(&env, v);
    let users = [U1.to_string(), U2.to_string()];
    let results = revoke_in_bulk(&c, &users).await;
    let calls = bulk_calls(&env.sim);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let body: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(body["user_ids"].as_array().unwrap().len(), 2);
    assert_eq!(body["web_only"], true);
    assert_eq!(body["mobile_only"], false);
    assert!(calls[0]
        .content_type
        .as_deref()
        .unwrap()
        .starts_with("application/json"));
    assert!(env
        .sim
        .calls_to(Provider::Slack)
        .iter()
        .all(|c| c.path != "/api/admin.users.session.reset"));
    for (o, attempts) in results {
        assert_eq!(o, Outcome::Revoked);
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].http_status, Some(200));
        assert_eq!(
            attempts[0].provider_code.as_deref(),
            Some("resetBulk_enqueued")
        );
    }
    let mut revoked = env.sim.revoked(Provider::Slack);
    revoked.sort();
    assert_eq!(revoked, [U1, U2]);
    // Outside a bulk job a revocation is urgent and alone.
    assert_eq!(run(c.as_ref(), &cx(), U1).await, Outcome::Revoked);
    assert_eq!(bulk_calls(&env.sim).len(), 1);
}

#[tokio::test]
async fn slack_in_bulk_splits_more_than_a_thousand_people_into_calls_of_at_most_a_thousand() {
    let env = env_generated(1005).await;
    let c = connector(&env, config(&env, Provider::Slack));
    let users: Vec<String> = (1..=1005)
        .map(|i| format!("user{i:05}@example.com"))
        .collect();
    let results = revoke_in_bulk(&c, &users).await;
    let mut sizes: Vec<usize> = bulk_calls(&env.sim)
        .iter()
        .map(|c| {
            let body: Value = serde_json::from_str(&c.body).unwrap();
            body["user_ids"].as_array().unwrap().len()
        })
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes.iter().sum::<usize>(), 1005, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 1000), "{sizes:?}");
    assert!(sizes.len() <= 3, "{sizes:?}");
    assert!(results.iter().all(|(o, _)| *o == Outcome::Revoked));
    assert_eq!(env.sim.revoked(Provider::Slack).len(), 1005);
}

#[tokio::test]
async fn slack_in_bulk_resets_alone_the_people_reset_bulk_names_as_failed() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Slack));
    let users = [ALICE.to_string(), "carol@example.com".to_string()];
    let results = revoke_in_bulk(&c, &users).await;
    assert_eq!(bulk_calls(&env.sim).len(), 1);
    let singles: Vec<_> = env
        .sim
        .calls_to(Provider::Slack)
        .into_iter()
        .filter(|c| c.path == "/api/admin.users.session.reset")
        .collect();
    assert_eq!(singles.len(), 1, "only carol is reset alone");
    let (alice, carol) = (&results[0], &results[1]);
    assert_eq!(alice.0, Outcome::Revoked);
    assert_eq!(alice.1.len(), 1);
    assert_eq!(
        alice.1[0].provider_code.as_deref(),
        Some("failed_for_some_users")
    );
    assert!(
        matches!(carol.0, Outcome::Protected { .. }),
        "{:?}",
        carol.0
    );
    let codes: Vec<_> = carol.1.iter().map(|a| a.provider_code.clone()).collect();
    assert_eq!(
        codes,
        [
            Some("failed_for_some_users".to_string()),
            Some("cannot_reset_primary_owner".to_string())
        ]
    );
    assert_eq!((carol.1[0].number, carol.1[1].number), (1, 2));
}

#[tokio::test]
async fn slack_in_bulk_waits_out_a_429_on_reset_bulk_for_everyone_in_it() {
    let env = env_generated(3).await;
    let fault = FaultKind::RateLimited {
        retry_after_secs: 1,
        http_date: false,
    };
    env.sim.set_fault(
        Provider::Slack,
        U1,
        Fault::first(fault, sever_sim::Step::Revoke, 1),
    );
    let c = connector(&env, config(&env, Provider::Slack));
    let users = [U1.to_string(), U2.to_string()];
    let results = revoke_in_bulk(&c, &users).await;
    let calls = bulk_calls(&env.sim);
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let waited = calls[1].started - calls[0].started;
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    for (o, attempts) in results {
        assert_eq!(o, Outcome::Revoked);
        assert_eq!(
            attempts.iter().map(|a| a.http_status).collect::<Vec<_>>(),
            [Some(429), Some(200)]
        );
        assert_eq!(attempts[0].error_class, Some(ErrorClass::RateLimited));
    }
}

// ---- Miro ----

#[tokio::test]
async fn miro_finds_the_org_once_looks_the_member_up_and_resets_by_email() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Miro));
    let cx = cx();
    assert_eq!(run(c.as_ref(), &cx, ALICE).await, Outcome::Revoked);
    assert_eq!(run(c.as_ref(), &cx, NOBODY).await, Outcome::UserNotFound);
    let calls = env.sim.calls_to(Provider::Miro);
    let paths: Vec<_> = calls.iter().map(|c| c.path.as_str()).collect();
    let members = format!("/v2/orgs/{}/members", demo::MIRO_ORG_ID);
    assert_eq!(
        paths,
        [
            "/v1/oauth-token",
            members.as_str(),
            "/v2/sessions/reset_all",
            members.as_str()
        ],
        "the org id is discovered once; a non-member is never reset"
    );
    assert_eq!(
        calls[1].query.as_deref(),
        Some("emails=alice%40example.com")
    );
    assert_eq!(calls[2].query.as_deref(), Some("email=alice%40example.com"));
}

#[tokio::test]
async fn miro_with_a_configured_org_id_skips_the_token_info_call() {
    let env = env().await;
    let mut cfg = config(&env, Provider::Miro);
    cfg["org_id"] = json!(demo::MIRO_ORG_ID);
    let c = connector(&env, cfg);
    assert_eq!(run(c.as_ref(), &cx(), ALICE).await, Outcome::Revoked);
    assert!(env
        .sim
        .calls_to(Provider::Miro)
        .iter()
        .all(|c| c.path != "/v1/oauth-token"));
}

// ---- configuration ----

fn config_error(v: Value) -> String {
    match serde_json::from_value::<ConnectorConfig>(v) {
        Err(e) => e.to_string(),
        Ok(cfg) => cfg.validate().unwrap_err().to_string(),
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let e = config_error(json!({"provider": "okta", "base_url": "ftp://x", "api_token": "t"}));
    assert_eq!(
        e,
        "connectors[okta].base_url: 'ftp://x' is not an http(s) URL"
    );
    let e = config_error(json!({"provider": "okta", "base_url": "https://a.okta.com"}));
    assert_eq!(
        e,
        "connectors[okta]: okta needs api_token, or client_id + private_key + key_id"
    );
    let e = config_error(
        json!({"provider": "okta", "base_url": "https://a.okta.com", "client_id": "x", "key_id": "k"}),
    );
    assert!(
        e.contains("okta needs api_token, or client_id + private_key + key_id"),
        "{e}"
    );
    let e = config_error(
        json!({"provider": "okta", "base_url": "https://a.okta.com", "api_tokn": "t"}),
    );
    assert!(e.contains("unknown field `api_tokn`"), "{e}");
    let e = config_error(
        json!({"provider": "miro", "name": "miro-eu", "token": "t", "tenant_id": "x"}),
    );
    assert_eq!(
        e,
        "connectors[miro-eu].tenant_id: is not a miro setting (it belongs to entra)"
    );
    let e = config_error(
        json!({"provider": "slack_enterprise", "token": "xoxp-1", "mobile_only": true, "web_only": true}),
    );
    assert!(
        e.starts_with("connectors[slack_enterprise]: mobile_only and web_only"),
        "{e}"
    );
    let e = config_error(json!({"provider": "slack_enterprise", "token": "xoxb-1"}));
    assert!(e.contains("user token (xoxp-)"), "{e}");
    let e = config_error(json!({"provider": "entra", "tenant_id": "t", "client_id": "c"}));
    assert_eq!(e, "connectors[entra].client_secret: is required for entra");
    let e = config_error(
        json!({"provider": "google_workspace", "service_account_json": "{\"client_email\": 5}", "admin_subject": "a@b.c"}),
    );
    assert!(e.starts_with("connectors[google_workspace].service_account_json: is not a Google service account key"), "{e}");
    let e = config_error(json!({"provider": "okta", "name": "Okta", "api_token": "t"}));
    assert!(e.contains("connector name"), "{e}");
    let e = config_error(json!({"provider": "salesforce"}));
    assert!(e.contains("unknown variant `salesforce`"), "{e}");
}

#[test]
fn defaults_point_at_the_vendors_and_keep_the_narrow_options() {
    let cfg: ConnectorConfig = serde_json::from_value(json!({
        "provider": "entra", "tenant_id": "contoso.onmicrosoft.com", "client_id": "c", "client_secret": "s"
    }))
    .unwrap();
    assert!(cfg.enabled);
    assert_eq!(cfg.instance_name().unwrap().as_str(), "entra");
    let parsed = cfg.parse().unwrap();
    assert_eq!(parsed.base, "https://graph.microsoft.com/v1.0");
    match parsed.kind {
        crate::config::Kind::Entra { token_url, .. } => assert_eq!(
            token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        ),
        _ => panic!("not entra"),
    }
    let google: ConnectorConfig = serde_json::from_value(json!({
        "provider": "google_workspace", "service_account_json": demo::GOOGLE_SERVICE_ACCOUNT_JSON,
        "admin_subject": "admin@example.com"
    }))
    .unwrap();
    assert_eq!(google.parse().unwrap().base, "https://admin.googleapis.com");
    for (p, base) in [
        ("slack_enterprise", "https://slack.com/api"),
        ("miro", "https://api.miro.com"),
    ] {
        let cfg: ConnectorConfig =
            serde_json::from_value(json!({"provider": p, "token": "xoxp-t", "enabled": false}))
                .unwrap();
        assert!(!cfg.enabled);
        assert_eq!(cfg.parse().unwrap().base, base);
    }
    let okta: ConnectorConfig = serde_json::from_value(
        json!({"provider": "okta", "base_url": "https://acme.okta.com/", "api_token": "SECRETVALUE"}),
    )
    .unwrap();
    match okta.parse().unwrap().kind {
        crate::config::Kind::Okta {
            oauth_tokens,
            forget_devices,
            ..
        } => {
            assert!(!oauth_tokens && !forget_devices)
        }
        _ => panic!("not okta"),
    }
    assert!(!format!("{okta:?}").contains("SECRETVALUE"));
}

#[test]
fn google_quota_refusals_are_rate_limits_not_permission_problems() {
    let e = crate::http::ApiError {
        step: Step::Revoke,
        status: 403,
        code: Some("userRateLimitExceeded".into()),
        message: Some("User Rate Limit Exceeded".into()),
        needed: None,
    };
    let (class, message) = crate::google_workspace::explain(&e).unwrap();
    assert_eq!(class, ErrorClass::RateLimited);
    assert!(message.contains("quota"), "{message}");
}

// ---- directories (bulk --all, --risky, --group) ----

async fn env_of(dir: Directory, opts: SimOptions) -> Env {
    let sims = Sims::start(dir, opts).await.unwrap();
    Env {
        sim: sims.handle(),
        sims,
        http: HttpClient::new().unwrap(),
        cache: Arc::new(MemoryTokenCache::new()),
    }
}

/// Every page of `selection`, in order, and how many pages there were.
async fn list(c: &dyn Connector, selection: &Selection) -> Result<(Vec<String>, usize), Failure> {
    let dir = c.directory().expect("a directory");
    let mut users = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = dir.page(&cx(), selection, cursor.as_deref()).await?;
        pages += 1;
        users.extend(page.users);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok((users, pages)),
        }
        assert!(pages < 100, "the listing never ends");
    }
}

fn entra_roles(extra: &[&str]) -> SimOptions {
    let mut roles = SimOptions::default().entra_roles;
    roles.extend(extra.iter().map(|r| r.to_string()));
    SimOptions {
        entra_roles: roles,
        ..SimOptions::default()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn generated_emails(n: usize, keep: impl Fn(usize) -> bool) -> Vec<String> {
    (1..=n)
        .filter(|&i| keep(i))
        .map(|i| format!("user{i:05}@example.com"))
        .collect()
}

#[tokio::test]
async fn every_directory_lists_everyone_across_several_pages() {
    let n = 2100;
    let env = env_of(
        Directory::generated(n, "example.com"),
        SimOptions::default(),
    )
    .await;
    let everyone = generated_emails(n, |_| true);
    for p in ALL {
        let c = connector(&env, config(&env, p));
        env.sim.reset_calls();
        let (users, pages) = list(c.as_ref(), &Selection::All).await.unwrap();
        let mut want = everyone.clone();
        // The delegation admin is in Okta and Google only.
        if matches!(p, Provider::Okta | Provider::Google) {
            want.push("admin@example.com".into());
        }
        assert_eq!(sorted(users), sorted(want), "{p}");
        let (min_pages, path) = match p {
            Provider::Okta => (11, "/api/v1/users"),
            Provider::Entra => (3, "/v1.0/users"),
            Provider::Google => (5, "/admin/directory/v1/users"),
            Provider::Slack => (11, "/api/users.list"),
            Provider::Miro => (21, "/v2/orgs/"),
        };
        assert!(pages >= min_pages, "{p}: {pages} pages");
        let listed: Vec<_> = env
            .sim
            .calls_to(p)
            .into_iter()
            .filter(|c| c.path.starts_with(path) && c.status == 200)
            .collect();
        assert!(listed.len() >= pages, "{p}: {} list calls", listed.len());
        let first = listed[0].query.clone().unwrap_or_default();
        let want_query = match p {
            Provider::Okta => "limit=200",
            Provider::Entra => "$select=id,userPrincipalName,mail&$top=999",
            Provider::Google => "customer=my_customer&maxResults=500",
            Provider::Slack => "limit=200",
            Provider::Miro => "limit=100",
        };
        assert_eq!(first, want_query, "{p}");
    }
}

#[tokio::test]
async fn slack_listing_leaves_out_bots() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Slack));
    let (users, _) = list(c.as_ref(), &Selection::All).await.unwrap();
    assert!(users.contains(&ALICE.to_string()), "{users:?}");
    assert!(!users.iter().any(|u| u == "bot@example.com"), "{users:?}");
}

#[tokio::test]
async fn entra_lists_exactly_the_people_at_a_risk_level_across_pages() {
    let n = 2100;
    let env = env_of(
        Directory::generated(n, "example.com"),
        entra_roles(&["IdentityRiskyUser.Read.All"]),
    )
    .await;
    let c = connector(&env, config(&env, Provider::Entra));
    let (high, pages) = list(c.as_ref(), &Selection::Risky(RiskLevel::High))
        .await
        .unwrap();
    assert_eq!(sorted(high), generated_emails(n, |i| i % 20 == 7));
    assert!(pages >= 2, "{pages} pages");
    let (medium, _) = list(c.as_ref(), &Selection::Risky(RiskLevel::Medium))
        .await
        .unwrap();
    assert_eq!(sorted(medium), generated_emails(n, |i| i % 20 == 13));
    let (low, _) = list(c.as_ref(), &Selection::Risky(RiskLevel::Low))
        .await
        .unwrap();
    assert!(low.is_empty(), "{low:?}");
    let risky = env
        .sim
        .calls_to(Provider::Entra)
        .into_iter()
        .find(|c| c.path == "/v1.0/identityProtection/riskyUsers")
        .unwrap();
    assert_eq!(
        risky.query.as_deref(),
        Some("$filter=riskLevel%20eq%20%27high%27")
    );
}

#[tokio::test]
async fn entra_names_the_permission_a_risky_listing_needs() {
    let env = env().await;
    let c = connector(&env, config(&env, Provider::Entra));
    let f = list(c.as_ref(), &Selection::Risky(RiskLevel::High))
        .await
        .unwrap_err();
    assert_eq!(f.class, ErrorClass::Forbidden);
    assert!(
        f.message.contains("IdentityRiskyUser.Read.All"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn group_members_are_listed_across_pages_users_only() {
    let n = 3000;
    let dir = Directory::generated(n, "example.com");
    let keys: Vec<(Provider, String)> = [Provider::Okta, Provider::Entra, Provider::Google]
        .into_iter()
        .map(|p| (p, dir.group_key(p, "eng")))
        .collect();
    let env = env_of(dir, entra_roles(&["GroupMember.Read.All"])).await;
    let eng = generated_emails(n, |i| i % 3 == 0);
    for (p, key) in keys {
        let c = connector(&env, config(&env, p));
        let (users, pages) = list(c.as_ref(), &Selection::Group(key.clone()))
            .await
            .unwrap();
        // The nested group eng-oncall is a member in Entra and Google; it is no person.
        assert_eq!(sorted(users), eng, "{p}");
        assert!(pages >= 2, "{p}: {pages} pages");
    }
    let google = env
        .sim
        .calls_to(Provider::Google)
        .into_iter()
        .find(|c| c.path.starts_with("/admin/directory/v1/groups/"))
        .unwrap();
    assert_eq!(
        google.path,
        "/admin/directory/v1/groups/eng%40example.com/members"
    );
}

#[tokio::test]
async fn an_unknown_group_is_a_clear_configuration_error() {
    let env = env_of(Directory::demo(), entra_roles(&["GroupMember.Read.All"])).await;
    for p in [Provider::Okta, Provider::Entra, Provider::Google] {
        let c = connector(&env, config(&env, p));
        let f = list(c.as_ref(), &Selection::Group("no-such-group".into()))
            .await
            .unwrap_err();
        assert_eq!(f.class, ErrorClass::BadConfig, "{p}: {f:?}");
        assert!(f.message.contains("no-such-group"), "{p}: {}", f.message);
    }
}

#[tokio::test]
async fn providers_without_groups_or_risk_levels_say_so() {
    let env = env().await;
    for p in ALL {
        let c = connector(&env, config(&env, p));
        let dir = c.directory().unwrap();
        assert_eq!(dir.supports(&Selection::All), Ok(()), "{p}");
        let risky = dir.supports(&Selection::Risky(RiskLevel::High));
        let group = dir.supports(&Selection::Group("eng".into()));
        match p {
            Provider::Entra => {
                assert_eq!((risky, group), (Ok(()), Ok(())));
            }
            _ => {
                let m = risky.unwrap_err();
                assert!(
                    m.contains("--risky") && m.contains(c.instance().as_str()),
                    "{m}"
                );
                if matches!(p, Provider::Slack | Provider::Miro) {
                    let m = group.unwrap_err();
                    assert!(m.contains("has no groups Sever can read"), "{m}");
                } else {
                    assert_eq!(group, Ok(()), "{p}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_listing_waits_out_a_rate_limit_like_any_other_call() {
    let mut rate_limits = std::collections::HashMap::new();
    rate_limits.insert(
        Provider::Okta,
        sever_sim::RateLimit {
            max: 2,
            per: Duration::from_secs(1),
        },
    );
    let env = env_of(
        Directory::generated(700, "example.com"),
        SimOptions {
            rate_limits,
            ..SimOptions::default()
        },
    )
    .await;
    let c = connector(&env, config(&env, Provider::Okta));
    let (users, pages) = list(c.as_ref(), &Selection::All).await.unwrap();
    assert_eq!(users.len(), 701);
    assert_eq!(pages, 4);
    assert!(env.sim.count_429() >= 1, "the budget was never exceeded");
}
