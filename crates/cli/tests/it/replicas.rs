//! Several `sever serve` processes: on PostgreSQL they share the work (one
//! claim per request, a dead replica's work finished by another once its
//! lease expires); on SQLite a second server is refused.
//!
//! The PostgreSQL tests need a server at `SEVER_TEST_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/test) and fail when it is unreachable.
//! Each uses a schema of its own, dropped at the end.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sever_core::admin::AuditEvent;
use sever_core::{
    Channel, ConnectorKey, Database, InstanceName, NewRequest, Reason, RequestId, RequestStatus,
    TenantId, Username,
};
use sever_sim::{Fault, FaultKind, Provider, SimOptions, Step};

use crate::helpers::*;

fn pg_url() -> String {
    std::env::var("SEVER_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema in the test PostgreSQL database.
struct PgSchema {
    url: String,
    schema: String,
    store: Arc<dyn Database>,
}

impl PgSchema {
    async fn fresh() -> PgSchema {
        let url = pg_url();
        let schema = format!("sever_it_{}", uuid::Uuid::new_v4().simple());
        let store = sever_store::open_in_schema(&url, Some(&schema))
            .await
            .unwrap_or_else(|e| {
                panic!("these tests need PostgreSQL at {url} (set SEVER_TEST_DATABASE_URL): {e}")
            });
        PgSchema { url, schema, store }
    }

    /// A sever.toml for a replica on this schema, with short leases.
    fn config(&self, extra_server: &str) -> String {
        format!(
            r#"database_url = "{url}"
database_schema = "{schema}"
lease_ttl_secs = 2

[retry]
max_attempts = 3
base_delay_ms = 20
attempt_timeout_ms = 60000

[server]
worker_interval_ms = 100
api_wait_secs = 0
{extra_server}
"#,
            url = self.url,
            schema = self.schema
        )
    }

    async fn scalar(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(&format!("SET search_path TO {}", self.schema))
            .execute(&mut conn)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
        n
    }

    async fn drop_schema(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Register `connectors` and turn revocation on, through `api`.
async fn configure(api: &Api, connectors: Vec<serde_json::Value>) {
    for c in connectors {
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
}

fn revokes(h: &Harness, p: Provider) -> Vec<sever_sim::CallRecord> {
    h.sim()
        .calls_to(p)
        .into_iter()
        .filter(|c| c.step == Step::Revoke)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_has_its_request_finished_by_another_without_repeating_finished_calls(
) {
    let h = Harness::start().await;
    let pg = PgSchema::fresh().await;
    h.edit_config(|_| pg.config(""));
    let (_tenant, key) = tenant_and_admin_key(&h, "Acme").await;
    let mut a = h.serve().await;
    let mut b = h.serve().await;
    let api = Api::new(&a.base, &key);
    configure(&api, connector_configs(&h.sims)).await;

    // Four connectors finish; Slack's revoke hangs in the simulator.
    h.sim().set_fault(
        Provider::Slack,
        "alice@example.com",
        Fault::first(FaultKind::Slow(Duration::from_secs(30)), Step::Revoke, 1),
    );
    let posted = api
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com", "reason": "replica test"})),
        )
        .await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{}", posted.body);
    let id = RequestId::parse(posted.body["id"].as_str().unwrap()).unwrap();

    wait_for("four outcomes are recorded", 20, async || {
        let req = pg.store.get_request(id).await.unwrap().unwrap();
        req.results.iter().filter(|r| r.outcome.is_some()).count() == 4
    })
    .await;
    wait_for("slack's lookup is done", 10, async || {
        h.sim()
            .calls_to(Provider::Slack)
            .iter()
            .any(|c| c.step == Step::Lookup)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Kill whichever replica holds the request (the one that took the API
    // call, unless the other's worker happened to claim it first).
    let owner = pg
        .store
        .unfinished_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.id == id)
        .and_then(|u| u.lease_owner)
        .expect("the running request has a lease");
    let holder: u32 = owner.split('/').nth(1).unwrap().parse().unwrap();
    assert!(
        holder == a.pid || holder == b.pid,
        "lease owner {owner} is one of the replicas ({}, {})",
        a.pid,
        b.pid
    );
    let (victim, survivor) = if holder == a.pid {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    victim.kill(); // SIGKILL
    let killed_at = std::time::Instant::now();

    let survivor_api = Api::new(&survivor.base, &key);
    let mut finished = serde_json::Value::Null;
    wait_for(
        "the surviving replica finishes the request",
        20,
        async || {
            let got = survivor_api
                .call(Method::GET, &format!("/api/v1/revocations/{id}"), None)
                .await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.body);
            let done = got.body["status"] != "running" && got.body["status"] != "queued";
            finished = got.body;
            done
        },
    )
    .await;
    assert!(
        killed_at.elapsed() >= Duration::from_millis(500),
        "taken over only once the lease ran out"
    );
    assert_eq!(finished["status"], "completed", "{finished:#}");
    assert_eq!(
        crate::server::outcome(&finished, "slack_enterprise"),
        "revoked"
    );

    // No finished provider call was repeated: one revoke each, and Slack's
    // interrupted call is the only one made twice.
    for p in [
        Provider::Okta,
        Provider::Entra,
        Provider::Google,
        Provider::Miro,
    ] {
        assert_eq!(revokes(&h, p).len(), 1, "{p:?} revoked once");
    }
    let slack = revokes(&h, Provider::Slack);
    assert_eq!(
        slack.iter().filter(|c| c.status == 200).count(),
        1,
        "one Slack revoke answered: {slack:?}"
    );
    assert!(slack.len() <= 2, "{slack:?}");
    drop(survivor_api);
    drop((a, b));
    pg.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_are_shared_by_two_live_replicas_and_none_runs_twice() {
    let h = Harness::with(SimOptions {
        latency: Duration::from_millis(40),
        ..SimOptions::default()
    })
    .await;
    let pg = PgSchema::fresh().await;
    h.edit_config(|_| pg.config("worker_concurrency = 2"));
    let (tenant, key) = tenant_and_admin_key(&h, "Acme").await;
    let tenant = TenantId::parse(&tenant).unwrap();
    let verbose = || {
        let mut c = h.command();
        c.env("SEVER_LOG", "info")
            .env("SEVER_SERVER_LOG_FORMAT", "text");
        c
    };
    let a = Served::start(verbose()).await;
    let b = Served::start(verbose()).await;
    let okta = connector_configs(&h.sims).remove(0);
    configure(&Api::new(&a.base, &key), vec![okta]).await;

    // Queued straight into the database, as a replica that died right after
    // accepting them would leave them: only the workers can run them.
    const N: usize = 24;
    let mut ids = BTreeSet::new();
    for i in 0..N {
        let req = NewRequest {
            id: RequestId::new(),
            tenant_id: tenant,
            username: Username::parse("alice@example.com").unwrap(),
            reason: Reason::parse(&format!("queued {i}")).unwrap(),
            channel: Channel::Api,
            requested_by: "test".into(),
            status: RequestStatus::Queued,
            targets: vec![(InstanceName::parse("okta").unwrap(), ConnectorKey::Okta)],
            created_at: chrono::Utc::now(),
        };
        let audit = AuditEvent {
            tenant_id: tenant,
            at: req.created_at,
            actor: "test".into(),
            role: None,
            channel: Channel::Api,
            source: None,
            client_ip: None,
            action: "revoke_sessions".into(),
            target: Some("alice@example.com".into()),
            reason: None,
            decision: "allowed".into(),
            result: Some("queued".into()),
            request_id: Some(req.id),
            detail: json!({}),
        };
        pg.store.insert_request(&req, &audit).await.unwrap();
        ids.insert(req.id.to_string());
    }

    wait_for("every queued request is finished", 30, async || {
        pg.scalar("SELECT COUNT(*) FROM revocation_requests WHERE status IN ('queued', 'running')")
            .await
            == 0
    })
    .await;
    assert_eq!(
        pg.scalar("SELECT COUNT(*) FROM revocation_requests WHERE status = 'completed'")
            .await,
        N as i64
    );
    assert_eq!(
        revokes(&h, Provider::Okta).len(),
        N,
        "one revoke per request"
    );

    // Each replica's log names the requests its worker finished.
    let finished = |s: &Served| -> BTreeSet<String> {
        s.stderr()
            .lines()
            .filter(|l| l.contains("worker finished a request"))
            .filter_map(|l| l.split("request_id=").nth(1))
            .filter_map(|r| r.split_whitespace().next())
            .map(str::to_string)
            .collect()
    };
    let (by_a, by_b) = (finished(&a), finished(&b));
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "both replicas took work: {} and {}",
        by_a.len(),
        by_b.len()
    );
    assert!(by_a.is_disjoint(&by_b), "no request ran on both replicas");
    assert_eq!(
        by_a.union(&by_b).cloned().collect::<BTreeSet<_>>(),
        ids,
        "together they ran every request"
    );
    drop((a, b));
    pg.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_file_is_refused_and_one_shot_commands_still_run() {
    let h = Harness::start().await;
    let mut first = h.serve().await;

    let second = h.sever(&["serve", "--bind", "127.0.0.1:0"]).await;
    assert_eq!(second.code(), 1, "{}", second.stderr());
    let db = std::fs::canonicalize(h.db_path()).unwrap();
    assert!(
        second.stderr().contains(&format!(
            "another sever serve is using {} (pid {}); stop it or use PostgreSQL for several replicas",
            db.display(),
            first.pid
        )),
        "{}",
        second.stderr()
    );
    assert!(second.stdout().is_empty(), "{}", second.stdout());

    // The CLI's one-shot commands share the file with the server.
    let (run, req) = h.revoke_json("alice@example.com", &[]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(req["status"], "completed");
    let status = h.sever(&["status", req["id"].as_str().unwrap()]).await;
    assert_eq!(status.code(), 0, "{}", status.stderr());

    // A graceful stop releases the file; so would a crash (the kernel drops the lock).
    assert!(first.terminate().await.success(), "{}", first.stderr());
    let mut again = h.serve().await;
    again.kill();
    let after_crash = h.serve().await;
    drop(after_crash);
}
