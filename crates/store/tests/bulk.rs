//! Bulk jobs (issue 7) against real databases: a CSV with bad rows and a
//! protected account runs to one request per person and an export; a job
//! interrupted at every stage (input half stored, an item's request id
//! assigned but its request never written, a request left running by a
//! dead process) resumes with no person skipped and no connector called
//! twice; two PostgreSQL replicas running one job never double up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use sever_core::bulk::{self, BulkRunner, BulkSettings, BulkState, ItemState, UserCsv};
use sever_core::{
    CallContext, Channel, ConnectorKey, Database, Engine, EngineSettings, Failure, InstanceName,
    Lease, Lookup, Outcome, Reason, RequestStatus, Subject, SystemClock, TenantId, TestReport,
    Username,
};
use sever_store::{PgStore, SqliteStore};

struct Counting {
    name: InstanceName,
    calls: Arc<Mutex<HashMap<String, u32>>>,
}

#[async_trait]
impl sever_core::Connector for Counting {
    fn instance(&self) -> &InstanceName {
        &self.name
    }
    fn provider(&self) -> ConnectorKey {
        ConnectorKey::Okta
    }
    async fn lookup(&self, _cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        if user.as_str().starts_with("ghost") {
            return Ok(Lookup::Settled(Outcome::UserNotFound));
        }
        Ok(Lookup::Found(Subject {
            id: user.to_string(),
            display: user.to_string(),
        }))
    }
    async fn revoke(&self, _cx: &CallContext, s: &Subject) -> Result<Outcome, Failure> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(format!("{}/{}", self.name, s.id))
            .or_default() += 1;
        if s.id.starts_with("broken") {
            return Err(Failure::new(
                sever_core::ErrorClass::Forbidden,
                "=HYPERLINK(\"evil\")",
            ));
        }
        Ok(Outcome::Revoked)
    }
    async fn test(&self, _cx: &CallContext) -> TestReport {
        TestReport { checks: vec![] }
    }
}

type Calls = Arc<Mutex<HashMap<String, u32>>>;

fn engine(db: Arc<dyn Database>, calls: &Calls) -> Arc<Engine> {
    let mut e = Engine::new(db, Arc::new(SystemClock), EngineSettings::default());
    for n in ["okta", "slack"] {
        e = e.with_connector(
            Arc::new(Counting {
                name: InstanceName::parse(n).unwrap(),
                calls: calls.clone(),
            }),
            true,
        );
    }
    Arc::new(e)
}

fn runner(db: &Arc<dyn Database>, calls: &Calls) -> BulkRunner {
    BulkRunner::new(
        engine(db.clone(), calls),
        db.clone(),
        BulkSettings {
            concurrency: 8,
            protected: vec!["*-admin@example.com".into()],
        },
    )
}

async fn new_job(r: &BulkRunner) -> bulk::BulkJob {
    r.create(bulk::NewBulkJob {
        tenant_id: TenantId::DEFAULT,
        incident_id: "INC-42".into(),
        reason: Reason::parse("breach").unwrap(),
        channel: Channel::Cli,
        requested_by: "cli:test".into(),
        targets: None,
        source: "csv:test".into(),
    })
    .await
    .unwrap()
}

const CSV: &str = "UserPrincipalName,Dept\r\nalice@example.com,IT\r\n,IT\r\nit-admin@example.com,IT\r\nbad user@x,IT\r\nbroken@example.com,IT\r\nghost@example.com,IT\r\n";

async fn a_csv_runs_to_one_request_per_person_and_exports(db: Arc<dyn Database>) {
    let calls = Calls::default();
    let r = runner(&db, &calls);
    let job = new_job(&r).await;
    let mut bad = vec![];
    let report = bulk::ingest(
        db.as_ref(),
        job.id,
        UserCsv::new(CSV.as_bytes()).unwrap(),
        |i| bad.push(i.line),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((report.rows, report.valid, report.invalid), (6, 4, 2));
    assert_eq!(bad, vec![3, 5]);
    let stored = db.get_bulk_job(job.id).await.unwrap().unwrap();
    assert!(stored.input_done);
    assert_eq!((stored.rows, stored.invalid), (6, 2));

    let mut seen = vec![];
    let p = r.run(job.id, |p| seen.push(p.done())).await.unwrap();
    assert_eq!(
        (p.completed, p.failed, p.skipped, p.invalid),
        (2, 1, 1, 2),
        "{p:?}"
    );
    assert_eq!(seen.last(), Some(&6));
    assert_eq!(
        db.get_bulk_job(job.id).await.unwrap().unwrap().state,
        BulkState::Completed
    );
    // Counted afterwards by the store's aggregate: the same as the run saw.
    let counted = r.count(job.id).await.unwrap();
    assert_eq!(counted, p, "{counted:?}");
    let total: u64 = db
        .count_bulk_items(job.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.2)
        .sum();
    assert_eq!(total, 6);
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.get("okta/alice@example.com"), Some(&1));
        assert!(!calls.keys().any(|k| k.contains("admin")), "{calls:?}");
    }

    let mut out = Vec::new();
    assert_eq!(r.export_csv(job.id, &mut out).await.unwrap(), 6);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "line,username,status,error,request_id,okta,slack");
    assert!(
        lines[1].starts_with("2,alice@example.com,completed,,"),
        "{text}"
    );
    assert!(lines[1].ends_with(",revoked,revoked"), "{text}");
    assert!(
        lines[2].starts_with("3,,invalid,the user column is empty"),
        "{text}"
    );
    assert!(lines[3].contains("skipped,protected account"), "{text}");
    assert!(lines[3].ends_with(",skipped,skipped"), "{text}");
    assert!(lines[5].contains(",failed,"), "{text}");
    // The provider's message starts with `=`: neutralised inside the error cell.
    assert!(
        !lines[5].contains(",=") && !lines[5].contains(",\"="),
        "{text}"
    );
    assert!(
        lines[6].ends_with(",user_not_found,user_not_found"),
        "{text}"
    );
}

async fn an_interrupted_job_resumes_without_skipping_or_repeating(db: Arc<dyn Database>) {
    let calls = Calls::default();
    let r = runner(&db, &calls);
    let job = new_job(&r).await;
    let input: String = std::iter::once("email\n".to_string())
        .chain((0..40).map(|i| format!("p{i}@example.com\n")))
        .collect();

    // 1. The process died after storing the first 25 rows.
    let first: Vec<_> = UserCsv::new(input.as_bytes()).unwrap().take(25).collect();
    db.append_bulk_items(
        job.id,
        &first
            .into_iter()
            .map(|r| r.unwrap().into_item())
            .collect::<Vec<_>>(),
        false,
    )
    .await
    .unwrap();
    let stored = db.get_bulk_job(job.id).await.unwrap().unwrap();
    assert_eq!((stored.rows, stored.input_done), (25, false));

    // 2. ... after finishing p0, assigning p1 a request id it never
    //    wrote, and leaving p2's request running under a dead owner.
    let eng = engine(db.clone(), &calls);
    let items = db.bulk_items(job.id, None, 3).await.unwrap();
    let rid1 = sever_core::RequestId::new();
    assert!(db.assign_bulk_request(job.id, 1, rid1).await.unwrap());
    assert!(!db.assign_bulk_request(job.id, 1, rid1).await.unwrap());
    for (seq, item) in [(0u64, &items[0]), (2, &items[2])] {
        let input = sever_core::RevocationInput {
            tenant_id: TenantId::DEFAULT,
            username: Username::parse(&item.username).unwrap(),
            reason: Reason::parse("breach").unwrap(),
            channel: Channel::Cli,
            requested_by: "cli:test".into(),
            targets: None,
            source: None,
            client_ip: None,
        };
        let (req, audit) = eng.prepare(input, RequestStatus::Queued).unwrap();
        assert!(db.assign_bulk_request(job.id, seq, req.id).await.unwrap());
        db.insert_request(&req, &audit).await.unwrap();
        if seq == 0 {
            eng.execute(req.id, None).await.unwrap();
        } else {
            let dead = Lease {
                owner: "gone-host/999999/x".into(),
                expires_at: Utc::now() - chrono::Duration::seconds(1),
            };
            assert!(db
                .claim_request(req.id, &dead, Utc::now(), None)
                .await
                .unwrap());
        }
    }

    // The restart: the rest of the input from row 25, then the run.
    let mut csv = UserCsv::new(input.as_bytes()).unwrap();
    csv.skip_rows(stored.rows).unwrap();
    bulk::ingest(db.as_ref(), job.id, csv, |_| {}, |_| {})
        .await
        .unwrap();
    let p = r.run(job.id, |_| {}).await.unwrap();
    assert_eq!((p.total, p.completed), (40, 40), "{p:?}");
    let calls = calls.lock().unwrap().clone();
    for i in 0..40 {
        for c in ["okta", "slack"] {
            assert_eq!(
                calls.get(&format!("{c}/p{i}@example.com")),
                Some(&1),
                "{c} p{i}"
            );
        }
    }
    let all = db.bulk_items(job.id, None, 1000).await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all
        .iter()
        .all(|i| i.state == ItemState::Submitted
            && i.request_status == Some(RequestStatus::Completed)));
    assert_eq!(all[1].request_id, Some(rid1));
}

/// A held job's decision is one conditional write: of an approval and a
/// denial, only the first moves it.
async fn a_held_job_moves_once(db: Arc<dyn Database>) {
    let calls = Calls::default();
    let r = runner(&db, &calls);
    let job = new_job(&r).await;
    let now = chrono::Utc::now();
    db.set_bulk_state(job.id, bulk::BulkState::PendingApproval, now)
        .await
        .unwrap();
    let pending = bulk::BulkState::PendingApproval;
    assert!(db
        .transition_bulk_state(job.id, pending, bulk::BulkState::Cancelled, now)
        .await
        .unwrap());
    assert!(!db
        .transition_bulk_state(job.id, pending, bulk::BulkState::Running, now)
        .await
        .unwrap());
    let got = db.get_bulk_job(job.id).await.unwrap().unwrap();
    assert_eq!(got.state, bulk::BulkState::Cancelled);
    assert!(got.finished_at.is_some());
}

#[tokio::test]
async fn sqlite_held_job_moves_once() {
    let (_d, db) = sqlite().await;
    a_held_job_moves_once(db).await;
}

#[tokio::test]
async fn postgres_held_job_moves_once() {
    a_held_job_moves_once(pg().await).await;
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Database>) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteStore::open(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    (dir, Arc::new(db))
}

#[tokio::test]
async fn sqlite_bulk_job_runs_and_exports() {
    let (_d, db) = sqlite().await;
    a_csv_runs_to_one_request_per_person_and_exports(db).await;
}

#[tokio::test]
async fn sqlite_bulk_job_resumes() {
    let (_d, db) = sqlite().await;
    an_interrupted_job_resumes_without_skipping_or_repeating(db).await;
}

async fn pg() -> Arc<dyn Database> {
    let url = std::env::var("SEVER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("sever_test_{}", uuid::Uuid::new_v4().simple());
    Arc::new(
        PgStore::connect_in_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL: {e}")),
    )
}

#[tokio::test]
async fn postgres_bulk_job_runs_and_exports() {
    a_csv_runs_to_one_request_per_person_and_exports(pg().await).await;
}

#[tokio::test]
async fn postgres_bulk_job_resumes() {
    an_interrupted_job_resumes_without_skipping_or_repeating(pg().await).await;
}

#[tokio::test]
async fn two_postgres_replicas_run_one_job_once() {
    let url = std::env::var("SEVER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("sever_test_{}", uuid::Uuid::new_v4().simple());
    let one: Arc<dyn Database> = Arc::new(PgStore::connect_in_schema(&url, &schema).await.unwrap());
    let two: Arc<dyn Database> = Arc::new(PgStore::connect_in_schema(&url, &schema).await.unwrap());
    let calls = Calls::default();
    let (r1, r2) = (runner(&one, &calls), runner(&two, &calls));
    let job = new_job(&r1).await;
    let input: String = std::iter::once("email\n".to_string())
        .chain((0..60).map(|i| format!("p{i}@example.com\n")))
        .collect();
    bulk::ingest(
        one.as_ref(),
        job.id,
        UserCsv::new(input.as_bytes()).unwrap(),
        |_| {},
        |_| {},
    )
    .await
    .unwrap();
    let (a, b) = tokio::join!(r1.run(job.id, |_| {}), r2.run(job.id, |_| {}));
    assert_eq!(a.unwrap().completed, 60);
    assert_eq!(b.unwrap().completed, 60);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 120);
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
}
