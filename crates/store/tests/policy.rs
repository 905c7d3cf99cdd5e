//! The policy engine against real databases: counters survive a restart
//! (SQLite) and are shared by two replicas (PostgreSQL); property runs on
//! SQLite show that no sequence of calls passes a limit (deciding exactly
//! as the in-memory counters do), and that a request needing approval,
//! driven through `authorize`, `submit_revocation`, `decide`, expiry
//! sweeps and the real engine, never runs before a timely approval by a
//! second person, nor after a denial or expiry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use sever_core::admin::{Role, Scope};
use sever_core::approvals::{self, ApprovalState, Resolution, Submission};
use sever_core::policy::{
    authorize, Action, ActionArgs, Caller, Decision, MemoryCounters, Policy, PolicyResolver,
    RequestContext,
};
use sever_core::{
    CallContext, Channel, Clock, Connector, ConnectorKey, Database, Engine, EngineSettings,
    Failure, InstanceName, Lookup, Outcome, Reason, RequestStatus, RevocationInput, Subject,
    TenantId, TestReport, Username,
};
use sever_store::{PgStore, SqliteStore};

const SEED: &str = r#"{"version": "1", "default": "deny", "tools": {"revoke_sessions": {"limits": [
    {"counter": "revoke_sessions_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}"#;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 10, 0, 0).unwrap() + Duration::seconds(s)
}

fn revoke_as(grant: &str, tenant: TenantId, user: &str) -> RequestContext {
    RequestContext {
        caller: Caller {
            tenant_id: tenant,
            grant: grant.into(),
            person: None,
            role: None,
            scopes: vec![Scope::SessionsRevoke],
            channel: Channel::Mcp,
        },
        action: Action::RevokeSessions,
        args: ActionArgs {
            usernames: vec![Username::parse(user).unwrap()],
            ..ActionArgs::default()
        },
    }
}

fn seed_resolver() -> PolicyResolver {
    PolicyResolver::for_server(Some(("seed.json".into(), Policy::from_json(SEED).unwrap())))
}

#[tokio::test]
async fn counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sever.db");
    let r = seed_resolver();
    let tenant = TenantId(uuid::Uuid::new_v4());
    let ctx = revoke_as("mcp:agent", tenant, "bob@example.com");
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    for i in 0..10 {
        assert!(
            authorize(&r, &store, &ctx, t(i))
                .await
                .unwrap()
                .is_allowed(),
            "{i}"
        );
    }
    store.close().await;
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    let a = authorize(&r, &store, &ctx, t(30)).await.unwrap();
    assert!(
        matches!(a.decision(), Decision::Deny { .. }),
        "the count survived: {a:?}"
    );
    assert!(
        authorize(&r, &store, &ctx, t(60))
            .await
            .unwrap()
            .is_allowed(),
        "next minute"
    );
    store.close().await;
}

#[tokio::test]
async fn two_postgres_replicas_share_one_limit() {
    let url = std::env::var("SEVER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("sever_test_{}", uuid::Uuid::new_v4().simple());
    let connect = || async {
        PgStore::connect_in_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs PostgreSQL (set SEVER_TEST_DATABASE_URL; tried {}): {e}",
                    sever_store::redact(&url)
                )
            })
    };
    let (one, two) = (Arc::new(connect().await), Arc::new(connect().await));
    let r = Arc::new(seed_resolver());
    let tenant = TenantId(uuid::Uuid::new_v4());
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let store: Arc<PgStore> = if i % 2 == 0 { one.clone() } else { two.clone() };
            let r = r.clone();
            tokio::spawn(async move {
                let ctx = revoke_as("mcp:agent", tenant, &format!("p{i}@example.com"));
                authorize(&r, store.as_ref(), &ctx, t(1))
                    .await
                    .unwrap()
                    .is_allowed()
            })
        })
        .collect();
    let mut allowed = 0;
    for c in calls {
        if c.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 10,
        "the two replicas together let exactly 10 through"
    );
    // A restart of one replica changes nothing.
    one.close().await;
    let three = connect().await;
    let ctx = revoke_as("mcp:agent", tenant, "late@example.com");
    assert!(!authorize(&r, &three, &ctx, t(2))
        .await
        .unwrap()
        .is_allowed());
    two.close().await;
    three.close().await;
    sqlx_drop_schema(&url, &schema).await;
}

async fn sqlx_drop_schema(url: &str, schema: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
struct Call {
    grant: u8,
    user: u8,
    after: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// SQLite decides every call exactly as the in-memory counters do, and
    /// neither lets more than the limits through in any window.
    #[test]
    fn no_sequence_of_calls_exceeds_a_limit_on_sqlite(
        per_grant in 1u64..4, per_tenant in 1u64..6, cap in 1u64..4,
        calls in proptest::collection::vec(
            (0u8..3, 0u8..5, 0i64..45).prop_map(|(grant, user, after)| Call { grant, user, after }),
            1..40,
        ),
    ) {
        let policy = Policy::from_json(&format!(r#"{{"version": "1", "tools": {{"revoke_sessions": {{
            "limits": [{{"counter": "g", "window": "minute", "max": {per_grant}, "scope": "grant"}},
                       {{"counter": "t", "window": "hour", "max": {per_tenant}, "scope": "tenant"}}],
            "cooldown": "30s"}}}},
            "blast_radius": {{"per_grant": {cap}, "window": "minute"}}}}"#)).unwrap();
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("p.db").to_str().unwrap()).await.unwrap();
            let model = MemoryCounters::new();
            let tenant = TenantId(uuid::Uuid::new_v4());
            let mut now = t(0);
            let mut allowed: Vec<(u8, DateTime<Utc>)> = vec![];
            for c in &calls {
                now += Duration::seconds(c.after);
                let ctx = revoke_as(&format!("key:{}", c.grant), tenant, &format!("u{}@example.com", c.user));
                let real = policy.evaluate(&ctx, &store, now).await.unwrap().decision;
                let expected = policy.evaluate(&ctx, &model, now).await.unwrap().decision;
                assert_eq!(&real, &expected);
                if real == Decision::Allow {
                    allowed.push((c.grant, now));
                }
            }
            for (g, at) in &allowed {
                let minute = |x: &DateTime<Utc>| x.timestamp() / 60;
                let hour = |x: &DateTime<Utc>| x.timestamp() / 3600;
                let same_minute = allowed.iter().filter(|(g2, a2)| g2 == g && minute(a2) == minute(at)).count();
                assert!(same_minute as u64 <= per_grant);
                let same_hour = allowed.iter().filter(|(_, a2)| hour(a2) == hour(at)).count();
                assert!(same_hour as u64 <= per_tenant);
            }
            store.close().await;
        });
    }
}

// ------------------------------------------------- approvals, end to end

struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A connector that finds everyone and revokes them, counting its calls.
struct Counting {
    name: InstanceName,
    revoked: Arc<Mutex<u32>>,
}

#[async_trait]
impl Connector for Counting {
    fn instance(&self) -> &InstanceName {
        &self.name
    }
    fn provider(&self) -> ConnectorKey {
        ConnectorKey::Okta
    }
    async fn lookup(&self, _cx: &CallContext, user: &Username) -> Result<Lookup, Failure> {
        Ok(Lookup::Found(Subject {
            id: user.to_string(),
            display: user.to_string(),
        }))
    }
    async fn revoke(&self, _cx: &CallContext, _s: &Subject) -> Result<Outcome, Failure> {
        *self.revoked.lock().unwrap() += 1;
        Ok(Outcome::Revoked)
    }
    async fn test(&self, _cx: &CallContext) -> TestReport {
        TestReport { checks: vec![] }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// 0: the requester, 1: an admin, 2: an analyst, 3: the requester's own key.
    Decide {
        who: usize,
        approve: bool,
    },
    Advance(i64),
    Sweep,
    /// The worker's attempt: claim whatever is claimable and run it.
    Work,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4, any::<bool>()).prop_map(|(who, approve)| Op::Decide { who, approve }),
        (1i64..900).prop_map(Op::Advance),
        Just(Op::Sweep),
        Just(Op::Work),
    ]
}

fn person(tenant: TenantId, email: &str, role: Role) -> Caller {
    Caller {
        tenant_id: tenant,
        grant: format!("user:{email}"),
        person: Some(email.into()),
        role: Some(role),
        scopes: vec![],
        channel: Channel::Ui,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_request_needing_approval_runs_only_after_a_timely_approval_by_someone_else(
        ops in proptest::collection::vec(op(), 1..16),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<SqliteStore> =
                Arc::new(SqliteStore::open(dir.path().join("a.db").to_str().unwrap()).await.unwrap());
            let db: Arc<dyn Database> = store.clone();
            let clock = Arc::new(TestClock(Mutex::new(t(0))));
            let revoked = Arc::new(Mutex::new(0u32));
            let engine = Engine::new(db.clone(), clock.clone(), EngineSettings::default())
                .with_connector(Arc::new(Counting { name: InstanceName::parse("okta").unwrap(), revoked: revoked.clone() }), true);
            let tenant = TenantId(uuid::Uuid::new_v4());
            let resolver = PolicyResolver::for_server(Some(("p.json".into(), Policy::from_json(
                r#"{"version": "1", "tools": {"revoke_sessions": {"require_approval": {"channels": ["mcp"]}}},
                    "approvals": {"expire_after": "30m"}}"#).unwrap())));
            let requester = Caller {
                tenant_id: tenant,
                grant: "mcp:agent-1".into(),
                person: Some("alice@example.com".into()),
                role: None,
                scopes: vec![Scope::SessionsRevoke],
                channel: Channel::Mcp,
            };
            let ctx = RequestContext {
                caller: requester.clone(),
                action: Action::RevokeSessions,
                args: ActionArgs { usernames: vec![Username::parse("bob@example.com").unwrap()], ..ActionArgs::default() },
            };
            let auth = authorize(&resolver, db.as_ref(), &ctx, t(0)).await.unwrap();
            assert!(matches!(auth.decision(), Decision::RequireApproval { .. }));
            let input = RevocationInput {
                tenant_id: tenant,
                username: Username::parse("bob@example.com").unwrap(),
                reason: Reason::parse("phished").unwrap(),
                channel: Channel::Mcp,
                requested_by: requester.grant.clone(),
                targets: None,
                source: None,
                client_ip: None,
            };
            let sub = approvals::submit_revocation(&engine, db.as_ref(), input, &auth, requester.person.clone()).await.unwrap();
            let Submission::PendingApproval(req, approval) = sub else { panic!("not held") };
            assert_eq!(approval.expires_at, t(1800));
            let deciders = [
                person(tenant, "alice@example.com", Role::Owner),
                person(tenant, "carol@example.com", Role::Admin),
                person(tenant, "dave@example.com", Role::Analyst),
                Caller { grant: "key:alice".into(), person: Some("user:alice@example.com".into()), role: None, scopes: vec![Scope::Admin], ..requester.clone() },
            ];
            let mut approved_at: Option<DateTime<Utc>> = None;
            let mut settled = false;
            for o in ops {
                let now = clock.now();
                match o {
                    Op::Decide { who, approve } => {
                        let r = if approve { Resolution::Approve } else { Resolution::Deny };
                        let d = approvals::decide(db.as_ref(), req.id, &deciders[who], r, "checked", None, now).await;
                        if let Ok(a) = d {
                                assert_eq!(who, 1, "only the admin who is not the requester decides");
                                assert!(!settled && now < approval.expires_at);
                                settled = true;
                                if a.state == ApprovalState::Approved { approved_at = Some(now); }
                        }
                    }
                    Op::Advance(s) => *clock.0.lock().unwrap() = now + Duration::seconds(s),
                    Op::Sweep => {
                        let gone = approvals::expire_due(db.as_ref(), now).await.unwrap();
                        if gone.iter().any(|a| a.request_id == req.id) {
                            assert!(!settled && now >= approval.expires_at);
                            settled = true;
                        }
                    }
                    Op::Work => {
                        let _ = engine.execute(req.id, None).await.unwrap();
                        let _ = engine.resume_unfinished().await.unwrap();
                    }
                }
                let status = db.get_request(req.id).await.unwrap().unwrap().status;
                let ran = *revoked.lock().unwrap();
                if ran > 0 {
                    assert!(approved_at.is_some(), "ran without approval ({status})");
                }
                assert!(ran <= 1);
                if matches!(status, RequestStatus::Rejected | RequestStatus::Expired) {
                    assert_eq!(ran, 0, "ran after {status}");
                }
            }
            // And an approved request does run, once.
            if approved_at.is_some() {
                let done = engine.execute(req.id, None).await.unwrap();
                assert_eq!(done.status, RequestStatus::Completed);
                assert_eq!(*revoked.lock().unwrap(), 1);
            }
            store.close().await;
        });
    }
}
