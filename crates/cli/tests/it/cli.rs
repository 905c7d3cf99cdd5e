//! `sever revoke`, `status`, `requests` and `connectors` as a user runs them.

use std::time::Duration;

use sever_sim::{Fault, FaultKind, Provider, SimOptions, Step};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_person_present_everywhere_ends_sessions_in_all_five_apps() {
    let h = Harness::start().await;
    let (run, req) = h
        .revoke_json("alice@example.com", &["--reason", "account takeover"])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(req["status"], "completed");
    assert_eq!(req["reason"], "account takeover");
    assert_eq!(outcome(&req, "okta")["outcome"], "tokens_revoked");
    for name in ["entra", "google_workspace", "slack_enterprise", "miro"] {
        assert_eq!(outcome(&req, name)["outcome"], "revoked", "{name}: {req:#}");
    }
    for p in Provider::ALL {
        assert_eq!(
            h.sim().revoked(p),
            vec!["alice@example.com".to_string()],
            "{p:?}"
        );
    }
    // The durable record says the same thing as the command did.
    let id = req["id"].as_str().unwrap();
    let status = h.sever(&["status", id, "--json"]).await;
    assert_eq!(status.code(), 0);
    let stored: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(stored, req);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_missing_from_some_apps_is_not_a_failure() {
    let h = Harness::start().await;
    let (run, req) = h.revoke_json("bob@example.com", &[]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(req["status"], "completed");
    assert_eq!(
        outcome(&req, "slack_enterprise")["outcome"],
        "user_not_found"
    );
    assert_eq!(outcome(&req, "miro")["outcome"], "user_not_found");
    assert_eq!(outcome(&req, "okta")["outcome"], "tokens_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_one_app_fails_the_request_and_says_why() {
    let h = Harness::start().await;
    sever_sim::demo_faults(&h.sim());
    let (run, req) = h.revoke_json("carol@example.com", &[]).await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_eq!(req["status"], "failed");
    let entra = outcome(&req, "entra");
    assert_eq!(entra["outcome"], "failed");
    assert_eq!(entra["class"], "forbidden");
    assert_eq!(entra["http_status"], 403);
    assert_eq!(entra["provider_code"], "Authorization_RequestDenied");
    assert!(entra["provider_request_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(entra["message"]
        .as_str()
        .unwrap()
        .contains("User.RevokeSessions.All"));
    assert_eq!(outcome(&req, "slack_enterprise")["outcome"], "protected");
    assert_eq!(outcome(&req, "okta")["outcome"], "tokens_revoked");

    // The human table shows the same, one row per connector.
    let id = req["id"].as_str().unwrap();
    let table = h.sever(&["status", id]).await.stdout();
    assert!(
        table.contains("failed") && table.contains("forbidden"),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.starts_with("entra ")).count(),
        1,
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_limit_the_run_to_the_named_connectors() {
    let h = Harness::start().await;
    let (run, req) = h
        .revoke_json("alice@example.com", &["--targets", "okta,miro"])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let names: Vec<_> = req["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instance"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["okta", "miro"]);
    assert!(h.sim().calls_to(Provider::Slack).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_called_concurrently() {
    let h = Harness::with(SimOptions {
        latency: Duration::from_millis(150),
        ..SimOptions::default()
    })
    .await;
    let (run, _) = h.revoke_json("alice@example.com", &[]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    // Overlap is read from the simulators' own records of when each call was
    // in flight, not from wall time: every provider's work overlapped another's.
    let calls = h.sim().calls();
    assert_eq!(calls.iter().filter(|c| c.step == Step::Revoke).count(), 5);
    for p in Provider::ALL {
        let overlaps = calls.iter().filter(|a| a.provider == p).any(|a| {
            calls
                .iter()
                .any(|b| b.provider != p && a.started < b.finished && b.started < a.finished)
        });
        assert!(overlaps, "{p:?} ran alone");
    }
    assert!(
        h.sim().peak_in_flight() >= 4,
        "peak {}",
        h.sim().peak_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_connectors_and_malformed_usernames_are_usage_errors_that_write_nothing() {
    let h = Harness::start().await;
    let run = h
        .sever(&[
            "revoke",
            "alice@example.com",
            "--yes",
            "--targets",
            "okta,salesforce",
        ])
        .await;
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("unknown connector 'salesforce'"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("okta"),
        "lists the known ones: {}",
        run.stderr()
    );

    let run = h
        .sever(&["revoke", "alice smith@example.com", "--yes"])
        .await;
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("username"), "{}", run.stderr());

    let run = h.sever(&["status", "not-a-uuid"]).await;
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("request id"), "{}", run.stderr());

    assert!(h.sim().calls().is_empty(), "no provider was called");
    let list = h.sever(&["requests", "--json"]).await;
    assert_eq!(list.stdout().trim(), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_configuration_names_the_file_and_key() {
    let h = Harness::start().await;
    h.edit_config(|t| t.replace("oauth_tokens = true", "oauth_tokens = \"sometimes\""));
    let run = h.sever(&["requests"]).await;
    assert_eq!(run.code(), 2);
    let err = run.stderr();
    assert!(
        err.contains("sever.toml") && err.contains("connectors[0] (okta)"),
        "{err}"
    );

    let run = h
        .sever(&["--config", "/nonexistent/sever.toml", "requests"])
        .await;
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("/nonexistent/sever.toml"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_fails_with_a_network_error_and_a_complete_record() {
    let h = Harness::start().await;
    let miro = h.sims.base_url(Provider::Miro);
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    h.edit_config(|t| t.replace(&miro, &dead));
    let (run, req) = h.revoke_json("alice@example.com", &[]).await;
    assert_eq!(run.code(), 1);
    let m = outcome(&req, "miro");
    assert_eq!(m["class"], "network");
    assert_eq!(m["attempt_count"], 3, "retried up to max_attempts: {m:#}");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(outcome(&req, "okta")["outcome"], "tokens_revoked");
    // Every connector has a final outcome; nothing is left half-written.
    let pending = count_rows(
        &h.db_path(),
        "SELECT COUNT(*) FROM revocation_results WHERE outcome IS NULL",
    )
    .await;
    assert_eq!(pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_output_errors_or_the_database() {
    let h = Harness::start().await;
    let canary = "canary-Zq8rT1-secret";
    h.edit_config(|t| {
        t.replace(sever_sim::demo::ENTRA_CLIENT_SECRET, canary)
            .replace(sever_sim::demo::SLACK_USER_TOKEN, &format!("xoxp-{canary}"))
    });
    let run = h
        .sever(&["-vv", "revoke", "alice@example.com", "--json", "--yes"])
        .await;
    assert_eq!(run.code(), 1, "wrong credentials fail the request");
    let req: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(outcome(&req, "entra")["class"], "unauthorized");
    assert_eq!(outcome(&req, "slack_enterprise")["class"], "unauthorized");
    for text in [run.stdout(), run.stderr()] {
        assert!(!text.contains(canary), "canary leaked:\n{text}");
    }
    let table = h.sever(&["status", req["id"].as_str().unwrap()]).await;
    assert!(!table.stdout().contains(canary));
    let test = h.sever(&["connectors", "test", "entra", "--json"]).await;
    assert_eq!(test.code(), 1);
    assert!(!test.stdout().contains(canary) && !test.stderr().contains(canary));
    let db = std::fs::read(h.db_path()).unwrap();
    let wal = std::fs::read(h.dir.path().join("sever.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(canary.len()).any(|w| w == canary.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_is_retried_after_the_providers_delay() {
    let h = Harness::start().await;
    h.sim().set_fault(
        Provider::Slack,
        "alice@example.com",
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
                http_date: false,
            },
            step: Step::Revoke,
            times: Some(1),
        },
    );
    let (run, req) = h
        .revoke_json("alice@example.com", &["--targets", "slack_enterprise"])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let s = outcome(&req, "slack_enterprise");
    assert_eq!(s["outcome"], "revoked");
    let statuses: Vec<_> = s["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["step"] == "revoke")
        .map(|a| a["http_status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [429, 200]);
    let calls = h.sim().calls_to(Provider::Slack);
    let revokes: Vec<_> = calls.iter().filter(|c| c.step == Step::Revoke).collect();
    let gap = revokes[1].started - revokes[0].finished;
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?} for Retry-After: 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_lists_newest_first_and_filters_by_status() {
    let h = Harness::start().await;
    sever_sim::demo_faults(&h.sim());
    h.revoke_json("alice@example.com", &[]).await;
    h.revoke_json("carol@example.com", &[]).await;
    let list = h.sever(&["requests", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&list.stdout()).unwrap();
    let users: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["username"].clone())
        .collect();
    assert_eq!(users, ["carol@example.com", "alice@example.com"]);
    let failed = h.sever(&["requests", "--status", "failed", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&failed.stdout()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let bad = h.sever(&["requests", "--status", "done"]).await;
    assert_eq!(bad.code(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_list_and_test_report_each_instance() {
    let h = Harness::start().await;
    let list = h.sever(&["connectors", "list", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&list.stdout()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
    for name in [
        "okta",
        "entra",
        "google_workspace",
        "slack_enterprise",
        "miro",
    ] {
        let run = h.sever(&["connectors", "test", name, "--json"]).await;
        let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
        assert_eq!(report["ok"], true, "{name}: {report:#}");
        assert_eq!(run.code(), 0);
    }
    let run = h.sever(&["connectors", "test", "workday"]).await;
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("unknown connector 'workday'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_cached_sealed_across_runs_until_they_expire() {
    let h = Harness::start().await;
    for _ in 0..2 {
        let (run, _) = h
            .revoke_json(
                "alice@example.com",
                &["--targets", "entra,google_workspace"],
            )
            .await;
        assert_eq!(run.code(), 0, "{}", run.stderr());
    }
    for p in [Provider::Entra, Provider::Google] {
        let token_calls = h
            .sim()
            .calls_to(p)
            .iter()
            .filter(|c| c.step == Step::Token)
            .count();
        assert_eq!(
            token_calls, 1,
            "{p:?}: the second process reused the sealed token"
        );
    }
    let rows = count_rows(&h.db_path(), "SELECT COUNT(*) FROM token_cache").await;
    assert_eq!(rows, 2);
}
