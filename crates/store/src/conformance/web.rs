//! Conformance behaviours of the web UI's sessions and sign-in counters
//! ([`WebSessionStore`](sever_core::web::WebSessionStore)).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use sever_core::admin::Role;
use sever_core::web::{FailurePolicy, LoginThrottle, WebSession};
use sever_core::{Database, TenantId};
use uuid::Uuid;

use super::{actions, assert_chain_intact, at, event, new_tenant, oauth_client, refused, user};

fn session(tenant_id: TenantId, user_id: Uuid) -> WebSession {
    WebSession {
        digest: [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat(),
        user_id,
        tenant_id,
        csrf_token: Uuid::new_v4().simple().to_string(),
        created_at: at(10),
        last_seen_at: at(10),
        expires_at: at(10 + 12 * 3600),
        client_ip: Some("198.51.100.4".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) — \"quoted\"".into()),
    }
}

/// A tenant and a user of it, both stored.
async fn tenant_and_user(store: &dyn Database) -> (TenantId, Uuid) {
    let t = new_tenant(store).await;
    let u = user(
        t,
        &format!("{}@example.com", Uuid::new_v4().simple()),
        Role::Analyst,
    );
    store
        .create_user(&u, &event(t, "user.create"))
        .await
        .unwrap();
    (t, u.id)
}

/// A key no other behaviour (or earlier run on a shared store) uses.
fn throttle_key() -> String {
    format!("{}@example.com", Uuid::new_v4().simple())
}

fn policy(now: DateTime<Utc>) -> FailurePolicy {
    FailurePolicy {
        at: now,
        window_start: now - Duration::minutes(15),
        max: 5,
        lock_until: now + Duration::minutes(15),
    }
}

pub async fn web_sessions_are_created_got_touched_and_ended_with_their_audit_records(
    store: &dyn Database,
) {
    let (t, u) = tenant_and_user(store).await;
    let s = session(t, u);
    assert!(store.create_web_session(&s, &refused(t)).await.is_err());
    assert_eq!(store.get_web_session(&s.digest).await.unwrap(), None);
    store
        .create_web_session(&s, &event(t, "ui.sign_in"))
        .await
        .unwrap();
    assert_eq!(
        store.get_web_session(&s.digest).await.unwrap(),
        Some(s.clone())
    );
    assert!(
        store
            .create_web_session(&s, &event(t, "ui.sign_in"))
            .await
            .is_err(),
        "a session id is unique"
    );

    assert!(store.touch_web_session(&s.digest, at(70)).await.unwrap());
    assert!(store.touch_web_session(&s.digest, at(40)).await.unwrap());
    let got = store.get_web_session(&s.digest).await.unwrap().unwrap();
    assert_eq!(got.last_seen_at, at(70), "last_seen_at never moves back");
    assert_eq!(got.created_at, s.created_at);

    assert!(store
        .delete_web_session(&s.digest, &refused(t))
        .await
        .is_err());
    assert!(store.get_web_session(&s.digest).await.unwrap().is_some());
    assert!(store
        .delete_web_session(&s.digest, &event(t, "ui.sign_out"))
        .await
        .unwrap());
    assert_eq!(store.get_web_session(&s.digest).await.unwrap(), None);
    assert!(!store.touch_web_session(&s.digest, at(80)).await.unwrap());
    assert!(!store
        .delete_web_session(&s.digest, &event(t, "ui.sign_out"))
        .await
        .unwrap());

    let unknown = session(t, Uuid::new_v4());
    assert!(
        store
            .create_web_session(&unknown, &event(t, "ui.sign_in"))
            .await
            .is_err(),
        "a session belongs to a stored user"
    );

    assert_eq!(
        actions(store, t).await,
        ["tenant.create", "user.create", "ui.sign_in", "ui.sign_out"]
    );
    assert_chain_intact(store).await;
}

pub async fn signing_out_everywhere_ends_only_that_users_sessions(store: &dyn Database) {
    let (t, alice) = tenant_and_user(store).await;
    let bob = user(
        t,
        &format!("bob-{}@example.com", Uuid::new_v4().simple()),
        Role::Viewer,
    );
    store
        .create_user(&bob, &event(t, "user.create"))
        .await
        .unwrap();
    let mine = [session(t, alice), session(t, alice), session(t, alice)];
    let theirs = session(t, bob.id);
    for s in mine.iter().chain([&theirs]) {
        store
            .create_web_session(s, &event(t, "ui.sign_in"))
            .await
            .unwrap();
    }
    assert!(store
        .delete_user_web_sessions(alice, &refused(t))
        .await
        .is_err());
    assert!(store
        .get_web_session(&mine[0].digest)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .delete_user_web_sessions(alice, &event(t, "ui.sign_out_everywhere"))
            .await
            .unwrap(),
        3
    );
    for s in &mine {
        assert_eq!(store.get_web_session(&s.digest).await.unwrap(), None);
    }
    assert_eq!(
        store.get_web_session(&theirs.digest).await.unwrap(),
        Some(theirs.clone())
    );
    assert_eq!(
        store
            .delete_user_web_sessions(alice, &event(t, "ui.sign_out_everywhere"))
            .await
            .unwrap(),
        0
    );

    // Purging forgets only sessions that expired before the given time.
    let mut old = session(t, bob.id);
    old.expires_at = at(-5);
    store
        .create_web_session(&old, &event(t, "ui.sign_in"))
        .await
        .unwrap();
    assert!(store.purge_web_sessions(at(0)).await.unwrap() >= 1);
    assert_eq!(store.get_web_session(&old.digest).await.unwrap(), None);
    assert!(store
        .get_web_session(&theirs.digest)
        .await
        .unwrap()
        .is_some());
}

pub async fn failed_sign_ins_lock_the_key_at_the_limit_and_a_new_window_starts_over(
    store: &dyn Database,
) {
    let key = throttle_key();
    assert_eq!(store.get_login_throttle(&key).await.unwrap(), None);
    let t0 = at(0);
    for n in 1..=4u32 {
        let now = t0 + Duration::minutes(i64::from(n));
        let th = store
            .record_login_failure(&key, &policy(now))
            .await
            .unwrap();
        assert_eq!(
            th,
            LoginThrottle {
                key: key.clone(),
                failures: n,
                first_failed_at: t0 + Duration::minutes(1),
                locked_until: None,
            }
        );
        assert!(!th.is_locked(now));
    }
    let fifth = t0 + Duration::minutes(5);
    let th = store
        .record_login_failure(&key, &policy(fifth))
        .await
        .unwrap();
    assert_eq!(th.failures, 5);
    assert_eq!(th.locked_until, Some(fifth + Duration::minutes(15)));
    assert!(th.is_locked(fifth + Duration::minutes(14)));
    assert!(!th.is_locked(fifth + Duration::minutes(15)));
    assert_eq!(
        store.get_login_throttle(&key).await.unwrap(),
        Some(th.clone())
    );

    // Long after the window, a failure starts a new count.
    let later = t0 + Duration::hours(2);
    let th = store
        .record_login_failure(&key, &policy(later))
        .await
        .unwrap();
    assert_eq!((th.failures, th.first_failed_at), (1, later));
    assert!(!th.is_locked(later));

    // A success forgets every failure.
    store.clear_login_failures(&key).await.unwrap();
    assert_eq!(store.get_login_throttle(&key).await.unwrap(), None);
    store.clear_login_failures(&key).await.unwrap();
}

pub async fn concurrent_failed_sign_ins_are_each_counted(store: &dyn Database) {
    let key = throttle_key();
    let now = at(0);
    let fail = || async { store.record_login_failure(&key, &policy(now)).await };
    let (a, b, c, d) = tokio::join!(fail(), fail(), fail(), fail());
    let (e, f, g, h) = tokio::join!(fail(), fail(), fail(), fail());
    let counts: BTreeSet<u32> = [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|r| r.unwrap().failures)
        .collect();
    assert_eq!(
        counts,
        (1..=8).collect(),
        "no two failures got the same count"
    );
    let th = store.get_login_throttle(&key).await.unwrap().unwrap();
    assert_eq!(th.failures, 8);
    assert_eq!(th.locked_until, Some(now + Duration::minutes(15)));
}

/// The Integrations page lists MCP clients waiting for approval.
pub async fn pending_oauth_clients_are_listed_newest_first_until_approved(store: &dyn Database) {
    let t = new_tenant(store).await;
    let older = oauth_client(at(7200));
    let newer = oauth_client(at(7260));
    for c in [&older, &newer] {
        store.create_oauth_client(c).await.unwrap();
    }
    let mine = |list: Vec<sever_core::oauth::OAuthClient>| -> Vec<String> {
        list.into_iter()
            .map(|c| c.id)
            .filter(|id| *id == older.id || *id == newer.id)
            .collect()
    };
    let pending = store.list_pending_oauth_clients(10_000).await.unwrap();
    assert!(pending.iter().all(|c| !c.is_approved()));
    assert_eq!(mine(pending), [newer.id.clone(), older.id.clone()]);
    assert!(store.list_pending_oauth_clients(1).await.unwrap().len() <= 1);
    assert!(store
        .approve_oauth_client(
            &older.id,
            t,
            "user:admin@example.com",
            at(7300),
            &event(t, "oauth_client.approve")
        )
        .await
        .unwrap());
    assert_eq!(
        mine(store.list_pending_oauth_clients(10_000).await.unwrap()),
        [newer.id],
        "an approved client is no longer pending"
    );
}
