//! Bulk revocations over the REST API (issue 7): a JSON list with bad
//! entries reported by index, progress and the CSV export, the policy's
//! approval threshold and protected accounts, tenant isolation, the larger
//! body limit of this one route, and the worker resuming an unfinished job.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_core::admin::Scope;
use sever_core::bulk::{BulkItem, BulkJob, BulkJobId, BulkState, ItemState};
use sever_core::policy::{Policy, PolicyResolver};
use sever_core::{Channel, Reason, SystemClock};
use sever_server::Actor;
use sever_sim::{Provider, Step};

use crate::helpers::wait_for;
use crate::server::{unlimited_server_default, Server};

const PATH: &str = "/api/v1/bulk-revocations";

/// Wait until the job is final and return it.
async fn finished(s: &Server, id: &str) -> Value {
    let mut last = Value::Null;
    wait_for("the bulk job to complete", 30, async || {
        let a = s.call(Method::GET, &format!("{PATH}/{id}"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        last = a.body;
        last["state"] == "completed"
    })
    .await;
    last
}

fn revokes_naming(s: &Server, p: Provider, who: &str) -> usize {
    s.sim()
        .calls_to(p)
        .iter()
        .filter(|c| c.step == Step::Revoke)
        .filter(|c| {
            let all = format!("{} {} {}", c.path, c.query.as_deref().unwrap_or(""), c.body);
            all.contains(who)
        })
        .count()
}

fn calls_naming(s: &Server, who: &str) -> usize {
    Provider::ALL
        .iter()
        .flat_map(|p| s.sim().calls_to(*p))
        .filter(|c| {
            format!("{} {} {}", c.path, c.query.as_deref().unwrap_or(""), c.body).contains(who)
        })
        .count()
}

fn revoke_count(s: &Server) -> usize {
    Provider::ALL
        .iter()
        .flat_map(|p| s.sim().calls_to(*p))
        .filter(|c| c.step == Step::Revoke)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_list_is_revoked_in_bulk_with_bad_entries_reported_by_index_and_exported() {
    let s = Server::start().await;
    let body = json!({
        "usernames": ["alice@example.com", "not an address@@", 5, "carol@example.com",
                      "=cmd|' /C calc'!A0@example.com", "nobody-here@example.com"],
        "reason": "token theft",
        "incident_id": "INC-77",
        "integration_targets": ["okta", "miro"],
    });
    let a = s
        .call_as(
            &s.key,
            Method::POST,
            PATH,
            Some(body.clone()),
            &[("Idempotency-Key", "bulk-1")],
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(a.header("location"), Some(format!("{PATH}/{id}").as_str()));
    let invalid: Vec<&str> = a.body["invalid_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(invalid.len(), 3, "{}", a.body);
    assert!(invalid[0].starts_with("usernames[1]: "), "{invalid:?}");
    assert!(invalid[1].starts_with("usernames[2]: "), "{invalid:?}");
    assert!(invalid[2].starts_with("usernames[4]: "), "{invalid:?}");
    assert_eq!(a.body["incident_id"], "INC-77");

    let job = finished(&s, &id).await;
    assert_eq!(job["counts"]["total"], 6, "{job}");
    assert_eq!(job["counts"]["done"], 6, "{job}");
    assert_eq!(job["counts"]["completed"], 3, "{job}");
    assert_eq!(job["counts"]["invalid"], 3, "{job}");
    assert_eq!(job["counts"]["pending"], 0, "{job}");
    assert_eq!(job["percent"], 100, "{job}");
    assert!(job["finished_at"].is_string(), "{job}");
    assert_eq!(revokes_naming(&s, Provider::Miro, "alice"), 1);
    assert_eq!(revokes_naming(&s, Provider::Miro, "carol"), 1);

    // A retry with the same key is the same job; nothing runs twice.
    let before = revoke_count(&s);
    let again = s
        .call_as(
            &s.key,
            Method::POST,
            PATH,
            Some(body.clone()),
            &[("Idempotency-Key", "bulk-1")],
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(revoke_count(&s), before);
    // The same key with another body is a conflict.
    let other = s
        .call_as(
            &s.key,
            Method::POST,
            PATH,
            Some(json!({"usernames": ["bob@example.com"], "reason": "x"})),
            &[("Idempotency-Key", "bulk-1")],
        )
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.body);

    // The list shows it.
    let list = s.call(Method::GET, PATH, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["id"], id.as_str());

    // The export: one row per entry, formulas neutralised.
    let r = s
        .http
        .get(s.url(&format!("{PATH}/{id}/results.csv")))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(lines[0], "line,username,status,error,request_id,okta,miro");
    assert!(
        lines[1].starts_with("0,alice@example.com,completed,,"),
        "{text}"
    );
    assert!(lines[1].ends_with(",tokens_revoked,revoked"), "{text}");
    assert!(
        lines[2].contains(",invalid,") && lines[2].contains("usernames[1]: "),
        "{text}"
    );
    assert!(lines[5].starts_with("0,'=cmd"), "{text}");
    assert!(
        lines[6].starts_with("0,nobody-here@example.com,completed"),
        "{text}"
    );

    // Every person's request carries the job and the incident in its audit record.
    let audit = s.audit().await;
    assert!(audit.iter().any(|r| r["action"] == "bulk_revoke"
        && r["decision"] == "allowed"
        && r["target"] == format!("bulk:{id}")));
    assert!(audit
        .iter()
        .any(|r| r["detail"]["bulk_job"] == id.as_str() && r["detail"]["incident_id"] == "INC-77"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_422_naming_the_field_and_changes_nothing() {
    let s = Server::start().await;
    let cases = [
        (json!({"reason": "x"}), "usernames"),
        (json!({"usernames": [], "reason": "x"}), "usernames"),
        (
            json!({"usernames": ["not an address@@"], "reason": "x"}),
            "usernames",
        ),
        (json!({"usernames": ["alice@example.com"]}), "reason"),
        (
            json!({"usernames": ["alice@example.com"], "reason": "x\u{7}y"}),
            "reason",
        ),
        (
            json!({"usernames": ["alice@example.com"], "reason": "x", "integration_targets": ["nope"]}),
            "integration_targets",
        ),
        (
            json!({"usernames": ["alice@example.com"], "reason": "x", "surprise": 1}),
            "surprise",
        ),
    ];
    for (body, field) in cases {
        let a = s.call(Method::POST, PATH, Some(body.clone())).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            a.body
        );
        assert!(
            a.error_message().starts_with(&format!("{field}:")),
            "{body}: {}",
            a.body
        );
    }
    let list = s.call(Method::GET, PATH, None).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.body);
    assert_eq!(revoke_count(&s), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_route_takes_a_larger_body_than_the_rest_up_to_its_own_limit() {
    let s = Server::start_with(|c| c.bulk_body_limit = 256 * 1024).await;
    // ~100 KiB: over the 64 KiB of every other route, under this one's.
    let mut names: Vec<Value> = (0..4000)
        .map(|i| json!(format!("bad entry number {i}@@")))
        .collect();
    names.push(json!("alice@example.com"));
    let body = json!({"usernames": names, "reason": "breach", "integration_targets": ["miro"]});
    assert!(body.to_string().len() > 64 * 1024);
    let a = s.call(Method::POST, PATH, Some(body)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let job = finished(&s, &id).await;
    assert_eq!(job["counts"]["invalid"], 4000);
    assert_eq!(job["counts"]["completed"], 1);
    // Another route still refuses it.
    let big = json!({"username": "x".repeat(70 * 1024)});
    let a = s.call(Method::POST, "/api/v1/revocations", Some(big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    // And over its own limit, this one does too, changing nothing.
    let names: Vec<Value> = (0..20_000)
        .map(|i| json!(format!("user{i}@example.com")))
        .collect();
    let a = s
        .call(
            Method::POST,
            PATH,
            Some(json!({"usernames": names, "reason": "breach"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_eq!(a.error_code(), "payload_too_large");
    let list = s.call(Method::GET, PATH, None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_job_runs_only_once_a_second_person_approves_it() {
    let s = Server::start_with(|c| c.bulk_approval_threshold = 1).await;
    let a = s
        .call(
            Method::POST,
            PATH,
            Some(json!({"usernames": ["alice@example.com", "carol@example.com"], "reason": "breach", "integration_targets": ["miro"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["state"], "pending_approval", "{}", a.body);
    let reasons = a.body["approval_reasons"].to_string();
    assert!(reasons.contains("approval threshold of 1"), "{reasons}");
    let id = a.body["id"].as_str().unwrap().to_string();

    // Nothing runs while it waits, whatever the worker does meanwhile.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(revoke_count(&s), 0);
    let job = s.call(Method::GET, &format!("{PATH}/{id}"), None).await;
    assert_eq!(job.body["state"], "pending_approval");

    // The requester cannot approve it; nor can a key without admin.
    let approve = format!("{PATH}/{id}/approve");
    let me = s
        .call(Method::POST, &approve, Some(json!({"reason": "ok"})))
        .await;
    assert_eq!(me.status, StatusCode::FORBIDDEN, "{}", me.body);
    assert_eq!(me.error_code(), "self_approval");
    let (reader, _) = s.key_with(&["sessions:read", "sessions:revoke"]).await;
    let a = s
        .call_as(
            &reader,
            Method::POST,
            &approve,
            Some(json!({"reason": "ok"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(revoke_count(&s), 0);

    // A second admin does, with a reason.
    let (admin, _) = s.key_with(&["admin", "sessions:read"]).await;
    let a = s
        .call_as(&admin, Method::POST, &approve, Some(json!({})), &[])
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    let a = s
        .call_as(
            &admin,
            Method::POST,
            &approve,
            Some(json!({"reason": "confirmed with the CISO"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let job = finished(&s, &id).await;
    assert_eq!(job["counts"]["completed"], 2, "{job}");
    assert_eq!(revokes_naming(&s, Provider::Miro, "alice"), 1);
    // Approving twice is a conflict.
    let a = s
        .call_as(
            &admin,
            Method::POST,
            &approve,
            Some(json!({"reason": "again"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    let audit = s.audit().await;
    assert!(audit
        .iter()
        .any(|r| r["action"] == "bulk.approve" && r["decision"] == "allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_the_policy_protects_are_skipped_and_never_called() {
    let mut doc = unlimited_server_default().to_value();
    doc["protected_accounts"] = json!([{"accounts": ["bob@*"], "action": "refuse"}]);
    let policy = Policy::from_value(doc).unwrap();
    let s = Server::start_with(|c| {
        c.policy = Arc::new(PolicyResolver::new(None, "test", policy));
    })
    .await;
    let a = s
        .call(
            Method::POST,
            PATH,
            Some(
                json!({"usernames": ["alice@example.com", "bob@example.com"], "reason": "breach"}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let job = finished(&s, &id).await;
    assert_eq!(job["counts"]["completed"], 1, "{job}");
    assert_eq!(job["counts"]["skipped"], 1, "{job}");
    assert_eq!(
        calls_naming(&s, "bob"),
        0,
        "bob was never looked up nor revoked"
    );
    assert_eq!(revokes_naming(&s, Provider::Miro, "alice"), 1);
    let text = s
        .http
        .get(s.url(&format!("{PATH}/{id}/results.csv")))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("0,bob@example.com,skipped,protected")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_neither_sees_nor_approves_a_bulk_job_and_a_denied_one_never_runs() {
    let s = Server::start_with(|c| c.bulk_approval_threshold = 0).await;
    let a = s
        .call(
            Method::POST,
            PATH,
            Some(json!({"usernames": ["alice@example.com"], "reason": "breach"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let cli = Actor::cli(sever_core::TenantId::DEFAULT, "cli:test");
    let other = sever_server::create_tenant(&*s.db, &SystemClock, None, "Globex", &cli)
        .await
        .unwrap();
    let key = sever_server::create_api_key(&*s.db, &SystemClock, other.id, "g", &Scope::ALL, &cli)
        .await
        .unwrap()
        .plaintext;
    for path in [format!("{PATH}/{id}"), format!("{PATH}/{id}/results.csv")] {
        let a = s.call_as(&key, Method::GET, &path, None, &[]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
    }
    let a = s
        .call_as(
            &key,
            Method::POST,
            &format!("{PATH}/{id}/approve"),
            Some(json!({"reason": "not mine"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let list = s.call_as(&key, Method::GET, PATH, None, &[]).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.body);
    let job = s.call(Method::GET, &format!("{PATH}/{id}"), None).await;
    assert_eq!(job.body["state"], "pending_approval");

    // A second admin of this tenant denies it: cancelled, never run.
    let (admin, _) = s.key_with(&["admin"]).await;
    let a = s
        .call_as(
            &admin,
            Method::POST,
            &format!("{PATH}/{id}/deny"),
            Some(json!({"reason": "not this one"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["state"], "cancelled");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(revoke_count(&s), 0);
    let a = s
        .call_as(
            &admin,
            Method::POST,
            &format!("{PATH}/{id}/approve"),
            Some(json!({"reason": "changed my mind"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_resumes_an_unfinished_job_left_by_a_dead_process() {
    let s = Server::start().await;
    // As a process that died mid-job leaves it: running, the first person
    // done, the others not yet.
    let id = BulkJobId::new();
    let job = BulkJob {
        id,
        tenant_id: s.tenant,
        incident_id: "INC-9".into(),
        reason: Reason::parse("breach").unwrap(),
        channel: Channel::Api,
        requested_by: "key:someone".into(),
        targets: Some(vec!["miro".into()]),
        source: "api".into(),
        state: BulkState::Ingesting,
        rows: 0,
        invalid: 0,
        input_done: false,
        created_at: chrono::Utc::now(),
        finished_at: None,
    };
    s.db.create_bulk_job(&job).await.unwrap();
    let items: Vec<BulkItem> = ["alice@example.com", "carol@example.com"]
        .iter()
        .enumerate()
        .map(|(i, u)| BulkItem {
            seq: i as u64,
            line: 0,
            username: u.to_string(),
            state: ItemState::Pending,
            request_id: None,
            note: None,
            request_status: None,
        })
        .collect();
    s.db.append_bulk_items(id, &items, true).await.unwrap();
    s.db.set_bulk_state(id, BulkState::Running, chrono::Utc::now())
        .await
        .unwrap();
    let job = finished(&s, &id.to_string()).await;
    assert_eq!(job["counts"]["completed"], 2, "{job}");
    for who in ["alice", "carol"] {
        assert_eq!(revokes_naming(&s, Provider::Miro, who), 1, "{who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sever_serve_killed_mid_job_resumes_it_on_the_next_start_without_repeating_anyone() {
    use crate::helpers::{connector_configs, tenant_and_admin_key, Api, Harness};
    let h = Harness::start().await;
    // Short leases, so the restarted server takes over the killed one's
    // request in flight quickly.
    h.edit_config(|t| format!("lease_ttl_secs = 2\n{t}"));
    let (_tenant, key) = tenant_and_admin_key(&h, "Acme").await;
    let mut first = h.serve().await;
    let api = Api::new(&first.url(""), &key);
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
    // Miro holds carol's revocation long enough to kill the server mid-job.
    h.sim().set_fault(
        Provider::Miro,
        "carol@example.com",
        sever_sim::Fault {
            kind: sever_sim::FaultKind::Slow(Duration::from_secs(30)),
            step: Step::Revoke,
            times: Some(1),
        },
    );
    let people = [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dup@example.com",
    ];
    let a = api
        .call(
            Method::POST,
            PATH,
            Some(json!({"usernames": people, "reason": "breach", "integration_targets": ["miro"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let miro_calls = |step: Step, who: &str| {
        h.sim()
            .calls_to(Provider::Miro)
            .iter()
            .filter(|c| c.step == step && c.query.as_deref().unwrap_or("").contains(who))
            .count()
    };
    // Miro looks everyone up first; bob and dup are not there (nothing to revoke).
    wait_for("everyone but carol is done", 20, async || {
        let a = api.call(Method::GET, &format!("{PATH}/{id}"), None).await;
        a.body["counts"]["completed"] == 3
    })
    .await;
    first.kill(); // SIGKILL, mid-job
    let job = h.sever(&["bulk", "status", &id, "--json"]).await;
    let job: Value = serde_json::from_str(&job.stdout()).unwrap();
    assert_eq!(job["job"]["state"], "running", "{job}");

    let again = h.serve().await;
    let api = Api::new(&again.url(""), &key);
    let mut last = Value::Null;
    wait_for("the restarted server finishes the job", 40, async || {
        let a = api.call(Method::GET, &format!("{PATH}/{id}"), None).await;
        last = a.body;
        last["state"] == "completed"
    })
    .await;
    assert_eq!(last["counts"]["completed"], 4, "{last}");
    // Nobody finished was looked up or revoked again; carol's interrupted
    // call was made again, once.
    for who in ["alice", "bob", "dup"] {
        assert_eq!(miro_calls(Step::Lookup, who), 1, "{who}");
    }
    assert_eq!(miro_calls(Step::Revoke, "alice"), 1);
    let carol_ok = h
        .sim()
        .calls_to(Provider::Miro)
        .iter()
        .filter(|c| {
            c.step == Step::Revoke
                && c.query.as_deref().unwrap_or("").contains("carol")
                && (200..300).contains(&c.status)
        })
        .count();
    assert_eq!(carol_ok, 1);
    drop(again);
}
