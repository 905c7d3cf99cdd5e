//! Conformance behaviours of the policy engine's storage (issue 5): the
//! shared counters, distinct sets and cooldowns
//! ([`CounterStore`](sever_core::policy::CounterStore)), tenants' stored
//! policies, and approvals. Counters are what keep a runaway caller within
//! its limits across replicas, so their atomicity is tested under
//! concurrency on each backend; approvals are what keep a held request from
//! running, so every transition is tested for "exactly once, only when due".

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sever_core::approvals::{Approval, ApprovalQuery, ApprovalState, Settlement};
use sever_core::policy::{distinct_counter, Claim, ClaimUsage, StoredPolicy};
use sever_core::{Database, Outcome, RequestId, RequestStatus, StoreError, TenantId};
use uuid::Uuid;

use super::{
    actions, assert_chain_intact, at, event, get, lease, new_tenant, refused, request, tenant, TWO,
};

/// A key no other behaviour (or earlier run on a shared store) uses.
fn key(kind: &str) -> String {
    format!("test/{kind}/{}", Uuid::new_v4().simple())
}

/// The start of a minute window, `n` minutes after 2025-03-04T05:06:00Z.
fn minute(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 0).unwrap() + Duration::minutes(n)
}

fn count(key: &str, window: DateTime<Utc>, max: u64) -> Claim {
    Claim::Count {
        key: key.into(),
        window_start: window,
        max,
        amount: 1,
    }
}

fn people(key: &str, window: DateTime<Utc>, members: &[&str], max: u64) -> Claim {
    Claim::Distinct {
        key: key.into(),
        window_start: window,
        members: members.iter().map(|m| m.to_string()).collect(),
        max,
    }
}

async fn consume(store: &dyn Database, claims: &[Claim], now: DateTime<Utc>) -> Option<usize> {
    store.consume(claims, now).await.unwrap()
}

async fn peek(store: &dyn Database, claims: &[Claim], now: DateTime<Utc>) -> Vec<ClaimUsage> {
    store.peek(claims, now).await.unwrap()
}

pub async fn policy_counts_stop_at_their_max_and_restart_in_the_next_window(store: &dyn Database) {
    let k = key("count");
    for i in 0..3 {
        assert_eq!(
            consume(store, &[count(&k, minute(0), 3)], minute(0)).await,
            None,
            "{i}"
        );
    }
    // The last instant of the window is still in it.
    let edge = minute(1) - Duration::microseconds(1);
    assert_eq!(
        consume(store, &[count(&k, minute(0), 3)], edge).await,
        Some(0)
    );
    assert_eq!(
        peek(store, &[count(&k, minute(0), 3)], edge).await,
        [ClaimUsage::Count(3)]
    );
    // The first instant of the next window starts afresh.
    assert_eq!(
        consume(store, &[count(&k, minute(1), 3)], minute(1)).await,
        None
    );
    assert_eq!(
        peek(store, &[count(&k, minute(1), 3)], minute(1)).await,
        [ClaimUsage::Count(1)]
    );
    // A caller whose clock is behind counts in the stored, newer window.
    assert_eq!(
        consume(store, &[count(&k, minute(0), 2)], minute(1)).await,
        None
    );
    assert_eq!(
        consume(store, &[count(&k, minute(0), 2)], minute(1)).await,
        Some(0)
    );
    assert_eq!(
        peek(store, &[count(&k, minute(1), 3)], minute(1)).await,
        [ClaimUsage::Count(2)]
    );
    // A maximum of zero refuses everything; an unknown key counts zero.
    let z = key("zero");
    assert_eq!(
        consume(store, &[count(&z, minute(0), 0)], minute(0)).await,
        Some(0)
    );
    assert_eq!(
        peek(store, &[count(&z, minute(0), 0)], minute(0)).await,
        [ClaimUsage::Count(0)]
    );
    assert!(store.try_consume(&z, minute(0), 1).await.unwrap());
    assert!(!store.try_consume(&z, minute(0), 1).await.unwrap());
}

pub async fn a_refused_claim_rolls_back_every_claim_of_its_call(store: &dyn Database) {
    let (a, b, set, cd) = (key("a"), key("b"), key("set"), key("cd"));
    assert_eq!(
        consume(store, &[count(&b, minute(0), 1)], minute(0)).await,
        None
    );
    let call = [
        count(&a, minute(0), 5),
        people(&set, minute(0), &["x@example.com"], 5),
        Claim::Cooldown {
            key: cd.clone(),
            until: minute(10),
        },
        count(&b, minute(0), 1),
    ];
    assert_eq!(
        consume(store, &call, minute(0)).await,
        Some(3),
        "the refused claim is named"
    );
    assert_eq!(
        peek(store, &call, minute(0)).await,
        [
            ClaimUsage::Count(0),
            ClaimUsage::Distinct {
                count: 0,
                new_members: 1
            },
            ClaimUsage::Cooldown(None),
            ClaimUsage::Count(1),
        ],
        "nothing of the refused call was kept"
    );
    assert_eq!(consume(store, &call[..3], minute(0)).await, None);
    assert_eq!(consume(store, &[], minute(0)).await, None);
}

pub async fn distinct_sets_count_each_person_once_per_window(store: &dyn Database) {
    let k = key("br");
    let w = minute(0);
    assert_eq!(
        consume(store, &[people(&k, w, &["a", "b", "a"], 3)], w).await,
        None
    );
    assert_eq!(
        consume(store, &[people(&k, w, &["b", "a"], 3)], w).await,
        None,
        "known people are free"
    );
    assert_eq!(
        peek(store, &[people(&k, w, &["a", "c", "d"], 3)], w).await,
        [ClaimUsage::Distinct {
            count: 2,
            new_members: 2
        }]
    );
    assert_eq!(
        consume(store, &[people(&k, w, &["c", "d"], 3)], w).await,
        Some(0),
        "whole or nothing"
    );
    assert_eq!(
        store.record_distinct(&k, w, "c", 3).await.unwrap(),
        (true, 3)
    );
    assert_eq!(
        store.record_distinct(&k, w, "d", 3).await.unwrap(),
        (false, 3)
    );
    assert_eq!(
        store.record_distinct(&k, w, "a", 3).await.unwrap(),
        (true, 3)
    );
    // The next window starts with nobody.
    let w2 = minute(60);
    assert_eq!(
        consume(store, &[people(&k, w2, &["d", "e", "f"], 3)], w2).await,
        None
    );
    assert_eq!(
        peek(store, &[count(&distinct_counter(&k), w2, 3)], w2).await,
        [ClaimUsage::Count(3)]
    );
}

pub async fn cooldowns_block_a_key_until_they_end(store: &dyn Database) {
    let k = key("cooldown");
    let cd = |until| Claim::Cooldown {
        key: k.clone(),
        until,
    };
    assert_eq!(consume(store, &[cd(minute(10))], minute(0)).await, None);
    let just_before = minute(10) - Duration::microseconds(1);
    assert_eq!(
        consume(store, &[cd(minute(20))], just_before).await,
        Some(0)
    );
    assert_eq!(
        peek(store, &[cd(minute(20))], minute(5)).await,
        [ClaimUsage::Cooldown(Some(minute(10)))]
    );
    assert_eq!(
        consume(store, &[cd(minute(20))], minute(10)).await,
        None,
        "ended at its instant"
    );
    assert_eq!(
        peek(store, &[cd(minute(30))], minute(10)).await,
        [ClaimUsage::Cooldown(Some(minute(20)))]
    );
}

pub async fn concurrent_claims_never_pass_a_maximum(store: &dyn Database) {
    let k = key("race");
    let set = key("race-set");
    let calls = (0..24).map(|i| {
        let (k, set) = (k.clone(), set.clone());
        async move {
            let claims = [
                count(&k, minute(0), 7),
                people(&set, minute(0), &[&format!("p{}", i % 12)], 100),
            ];
            store.consume(&claims, minute(0)).await
        }
    });
    let results = futures_join_all(calls).await;
    let granted = results.iter().filter(|r| matches!(r, Ok(None))).count();
    for r in &results {
        assert!(matches!(r, Ok(None) | Ok(Some(0))), "{r:?}");
    }
    assert_eq!(granted, 7, "exactly the maximum got through");
    assert_eq!(
        peek(store, &[count(&k, minute(0), 7)], minute(0)).await,
        [ClaimUsage::Count(7)]
    );
    let admitted = (0..12).map(|i| format!("p{i}")).collect::<Vec<_>>();
    let admitted: Vec<&str> = admitted.iter().map(String::as_str).collect();
    match &peek(store, &[people(&set, minute(0), &admitted, 100)], minute(0)).await[..] {
        [ClaimUsage::Distinct { count, new_members }] => {
            assert_eq!(
                *count + *new_members,
                12,
                "the set's size matches its members"
            );
            assert!(*count <= 7);
        }
        other => panic!("{other:?}"),
    }
}

pub async fn concurrent_distinct_claims_never_pass_a_cap(store: &dyn Database) {
    let k = key("cap");
    let calls = (0..16).map(|i| {
        let k = k.clone();
        async move {
            store
                .consume(
                    &[people(&k, minute(0), &[&format!("person{}", i % 8)], 4)],
                    minute(0),
                )
                .await
        }
    });
    let results = futures_join_all(calls).await;
    let members: Vec<String> = (0..8).map(|i| format!("person{i}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    match &peek(store, &[people(&k, minute(0), &members, 4)], minute(0)).await[..] {
        [ClaimUsage::Distinct { count, new_members }] => {
            assert_eq!(*count, 4, "the cap is reached and not passed");
            assert_eq!(*new_members, 4);
        }
        other => panic!("{other:?}"),
    }
    // Everyone admitted was admitted every time they asked.
    assert!(
        results.iter().all(|r| matches!(r, Ok(None) | Ok(Some(0)))),
        "{results:?}"
    );
}

pub async fn purging_forgets_only_old_windows_and_ended_cooldowns(store: &dyn Database) {
    let old = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
    let (c, s, d, keep) = (key("old-count"), key("old-set"), key("old-cd"), key("kept"));
    let claims = [
        count(&c, old, 5),
        people(&s, old, &["a"], 5),
        Claim::Cooldown {
            key: d.clone(),
            until: old + Duration::minutes(1),
        },
        count(&keep, old + Duration::days(2), 5),
    ];
    assert_eq!(consume(store, &claims, old).await, None);
    let purged = store
        .purge_policy_state(old + Duration::days(1))
        .await
        .unwrap();
    assert!(
        purged >= 4,
        "the count, the set's member and size, the cooldown: {purged}"
    );
    assert_eq!(
        peek(store, &claims, old).await,
        [
            ClaimUsage::Count(0),
            ClaimUsage::Distinct {
                count: 0,
                new_members: 1
            },
            ClaimUsage::Cooldown(None),
            ClaimUsage::Count(1),
        ]
    );
}

// ------------------------------------------------------------ stored policies

fn stored(tenant_id: TenantId, revision: i64, document: serde_json::Value) -> StoredPolicy {
    StoredPolicy {
        tenant_id,
        document,
        revision,
        updated_at: at(revision),
        updated_by: "key:admin".into(),
    }
}

pub async fn a_policy_is_stored_once_then_changed_only_over_the_revision_read(
    store: &dyn Database,
) {
    let t = new_tenant(store).await;
    assert_eq!(store.get_policy(t).await.unwrap(), None);
    // Key order and numbers are kept as written.
    let v1 = json!({"version": "1", "default": "deny", "tools": {"revoke_sessions": {"limits": [
        {"counter": "r", "window": "minute", "max": 10, "scope": "grant"}]}}});
    assert!(store
        .put_policy(&stored(t, 1, v1.clone()), None, &refused(t))
        .await
        .is_err());
    assert_eq!(
        store.get_policy(t).await.unwrap(),
        None,
        "nothing without its audit record"
    );
    store
        .put_policy(&stored(t, 1, v1.clone()), None, &event(t, "policy.update"))
        .await
        .unwrap();
    assert_eq!(
        store.get_policy(t).await.unwrap(),
        Some(stored(t, 1, v1.clone()))
    );
    let v2 = json!({"version": "1", "default": "allow"});
    for expected in [None, Some(0), Some(2)] {
        let e = store
            .put_policy(
                &stored(t, 2, v2.clone()),
                expected,
                &event(t, "policy.update"),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{expected:?}: {e:?}");
    }
    store
        .put_policy(
            &stored(t, 2, v2.clone()),
            Some(1),
            &event(t, "policy.update"),
        )
        .await
        .unwrap();
    assert_eq!(store.get_policy(t).await.unwrap(), Some(stored(t, 2, v2)));
    assert_eq!(
        actions(store, t).await,
        ["tenant.create", "policy.update", "policy.update"]
    );
    let e = store
        .put_policy(&stored(tenant(), 1, v1), None, &event(t, "policy.update"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound(_)),
        "an unknown tenant: {e:?}"
    );
    assert_chain_intact(store).await;
}

pub async fn deleting_a_policy_needs_the_current_revision(store: &dyn Database) {
    let t = new_tenant(store).await;
    let reset = event(t, "policy.reset");
    assert!(
        !store.delete_policy(t, 1, &reset).await.unwrap(),
        "nothing stored"
    );
    store
        .put_policy(
            &stored(t, 1, json!({"version": "1"})),
            None,
            &event(t, "policy.update"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store.delete_policy(t, 7, &reset).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.delete_policy(t, 1, &refused(t)).await.is_err());
    assert!(store.get_policy(t).await.unwrap().is_some());
    assert!(store.delete_policy(t, 1, &reset).await.unwrap());
    assert_eq!(store.get_policy(t).await.unwrap(), None);
    assert_eq!(
        actions(store, t).await,
        ["tenant.create", "policy.update", "policy.reset"]
    );
}

// ------------------------------------------------------------------ approvals

/// A request held for approval, and its approval, expiring at `at(1800)`.
fn held(tenant_id: TenantId) -> (sever_core::NewRequest, Approval) {
    let mut req = request(
        tenant_id,
        &format!("{}@example.com", Uuid::new_v4().simple()),
        TWO,
    );
    req.status = RequestStatus::PendingApproval;
    req.requested_by = "mcp:agent-1".into();
    let a = Approval {
        request_id: req.id,
        tenant_id,
        action: "revoke_sessions".into(),
        username: req.username.to_string(),
        request_reason: req.reason.as_str().to_string(),
        channel: req.channel,
        requested_by: req.requested_by.clone(),
        requester_person: Some("alice@example.com".into()),
        reasons: vec![
            "calls over mcp need approval".into(),
            "Zürich — \"quoted\"".into(),
        ],
        state: ApprovalState::Pending,
        created_at: req.created_at,
        expires_at: at(1800),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    };
    (req, a)
}

async fn hold(store: &dyn Database, tenant_id: TenantId) -> (sever_core::NewRequest, Approval) {
    let (req, a) = held(tenant_id);
    let mut audit = event(tenant_id, "revoke_sessions");
    audit.request_id = Some(req.id);
    audit.result = Some("pending_approval".into());
    store
        .insert_pending_request(&req, &a, &audit)
        .await
        .unwrap();
    (req, a)
}

fn settle(a: &Approval, state: ApprovalState, when: DateTime<Utc>) -> Settlement {
    Settlement {
        request_id: a.request_id,
        state,
        by: (state != ApprovalState::Expired).then(|| "user:carol@example.com".to_string()),
        at: when,
        reason: Some("checked with the user".into()),
    }
}

fn settle_event(a: &Approval, action: &str) -> sever_core::admin::AuditEvent {
    let mut e = event(a.tenant_id, action);
    e.request_id = Some(a.request_id);
    e
}

pub async fn a_pending_request_waits_with_its_approval_and_is_never_claimed(store: &dyn Database) {
    let t = tenant();
    let (req, a) = held(t);
    assert!(store
        .insert_pending_request(&req, &a, &refused(t))
        .await
        .is_err());
    assert!(
        store.get_request(req.id).await.unwrap().is_none(),
        "all or nothing"
    );
    assert!(store.get_approval(req.id).await.unwrap().is_none());
    let mut queued = req.clone();
    queued.status = RequestStatus::Queued;
    assert!(store
        .insert_pending_request(&queued, &a, &event(t, "x"))
        .await
        .is_err());

    let (req, a) = hold(store, t).await;
    assert_eq!(store.get_approval(req.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        get(store, req.id).await.status,
        RequestStatus::PendingApproval
    );
    assert!(!store
        .claim_request(req.id, &lease("w", at(60)), at(1), None)
        .await
        .unwrap());
    let hold_all = lease("drainer", at(1_000_000));
    while let Some(id) = store.claim_next(&hold_all, at(10_000)).await.unwrap() {
        assert_ne!(id, req.id, "claim_next took a request awaiting approval");
    }
    assert!(store
        .unfinished_requests()
        .await
        .unwrap()
        .iter()
        .all(|u| u.id != req.id));
    assert_eq!(
        get(store, req.id).await.status,
        RequestStatus::PendingApproval
    );
    assert!(matches!(
        store.insert_pending_request(&req, &a, &event(t, "x")).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn an_approval_queues_its_request_once_and_a_denial_rejects_it_with_skipped_results(
    store: &dyn Database,
) {
    let t = tenant();
    let (req, a) = hold(store, t).await;
    let ok = settle(&a, ApprovalState::Approved, at(60));
    assert!(
        store.settle_approval(&ok, &refused(t)).await.is_err(),
        "not without its audit record"
    );
    assert_eq!(
        get(store, req.id).await.status,
        RequestStatus::PendingApproval
    );
    assert!(store
        .settle_approval(&ok, &settle_event(&a, "approval.approve"))
        .await
        .unwrap());
    assert_eq!(
        store.get_approval(req.id).await.unwrap(),
        Some(a.after(&ok))
    );
    assert_eq!(get(store, req.id).await.status, RequestStatus::Queued);
    for again in [
        ApprovalState::Approved,
        ApprovalState::Denied,
        ApprovalState::Expired,
    ] {
        let s = settle(&a, again, at(3600));
        assert!(
            !store
                .settle_approval(&s, &settle_event(&a, "x"))
                .await
                .unwrap(),
            "{again}"
        );
    }
    // Now claimable, like any queued request.
    assert!(store
        .claim_request(req.id, &lease("w", at(120)), at(61), None)
        .await
        .unwrap());

    let (req, a) = hold(store, t).await;
    let no = settle(&a, ApprovalState::Denied, at(60));
    assert!(store
        .settle_approval(&no, &settle_event(&a, "approval.deny"))
        .await
        .unwrap());
    let r = get(store, req.id).await;
    assert_eq!(
        (r.status, r.finished_at),
        (RequestStatus::Rejected, Some(at(60)))
    );
    for result in &r.results {
        match &result.outcome {
            Some(Outcome::Skipped { message }) => {
                assert!(
                    message.contains("approval denied by user:carol@example.com"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!store
        .claim_request(req.id, &lease("w", at(120)), at(61), None)
        .await
        .unwrap());
    assert!(!store
        .settle_approval(&ok, &settle_event(&a, "x"))
        .await
        .unwrap());
    let decided: Vec<String> = actions(store, t).await;
    assert_eq!(
        decided,
        [
            "revoke_sessions",
            "approval.approve",
            "revoke_sessions",
            "approval.deny"
        ]
    );
    assert_chain_intact(store).await;
}

pub async fn an_expired_approval_cannot_be_approved_and_expires_its_request(store: &dyn Database) {
    let t = tenant();
    let (req, a) = hold(store, t).await;
    let early = settle(
        &a,
        ApprovalState::Expired,
        at(1800) - Duration::microseconds(1),
    );
    assert!(
        !store
            .settle_approval(&early, &settle_event(&a, "x"))
            .await
            .unwrap(),
        "not yet due"
    );
    let late = settle(&a, ApprovalState::Approved, at(1800));
    assert!(
        !store
            .settle_approval(&late, &settle_event(&a, "x"))
            .await
            .unwrap(),
        "too late"
    );
    assert_eq!(
        get(store, req.id).await.status,
        RequestStatus::PendingApproval
    );
    let due = store.due_approvals(at(1800), 1000).await.unwrap();
    assert!(due.iter().any(|d| d.request_id == req.id));
    assert!(store
        .due_approvals(at(1799), 1000)
        .await
        .unwrap()
        .iter()
        .all(|d| d.request_id != req.id));
    let expire = settle(&a, ApprovalState::Expired, at(1800));
    assert!(store
        .settle_approval(&expire, &settle_event(&a, "approval.expire"))
        .await
        .unwrap());
    let r = get(store, req.id).await;
    assert_eq!(r.status, RequestStatus::Expired);
    assert!(r.results.iter().all(
        |x| matches!(&x.outcome, Some(Outcome::Skipped { message }) if message.contains("expired"))
    ));
    assert_eq!(
        store.get_approval(req.id).await.unwrap().unwrap().state,
        ApprovalState::Expired
    );
    assert!(store
        .due_approvals(at(5000), 1000)
        .await
        .unwrap()
        .iter()
        .all(|d| d.request_id != req.id));
    assert!(!store
        .claim_request(req.id, &lease("w", at(9000)), at(8000), None)
        .await
        .unwrap());
}

pub async fn concurrent_approve_and_deny_never_both_win(store: &dyn Database) {
    let t = tenant();
    for _ in 0..3 {
        let (req, a) = hold(store, t).await;
        let attempts = [
            settle(&a, ApprovalState::Approved, at(60)),
            settle(&a, ApprovalState::Denied, at(60)),
            settle(&a, ApprovalState::Approved, at(61)),
            settle(&a, ApprovalState::Expired, at(2000)),
        ];
        let a = &a;
        let results = futures_join_all(attempts.iter().map(|s| async move {
            store
                .settle_approval(s, &settle_event(a, "approval.x"))
                .await
                .unwrap()
        }))
        .await;
        assert_eq!(results.iter().filter(|w| **w).count(), 1, "{results:?}");
        let winner = attempts[results.iter().position(|w| *w).unwrap()].state;
        assert_eq!(get(store, req.id).await.status, winner.request_status());
    }
}

pub async fn approvals_are_listed_newest_first_by_tenant_and_state(store: &dyn Database) {
    let t = tenant();
    let (_, first) = hold(store, t).await;
    let (_, second) = hold(store, t).await;
    let (_, other) = hold(store, tenant()).await;
    let s = settle(&second, ApprovalState::Denied, at(5));
    assert!(store
        .settle_approval(&s, &settle_event(&second, "approval.deny"))
        .await
        .unwrap());
    let ids = |v: Vec<Approval>| {
        v.into_iter()
            .map(|a| a.request_id)
            .collect::<Vec<RequestId>>()
    };
    let all = store
        .list_approvals(&ApprovalQuery {
            tenant_id: Some(t),
            state: None,
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(ids(all), [second.request_id, first.request_id]);
    let pending = store
        .list_approvals(&ApprovalQuery {
            tenant_id: Some(t),
            state: Some(ApprovalState::Pending),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(pending, std::slice::from_ref(&first));
    let one = store
        .list_approvals(&ApprovalQuery {
            tenant_id: Some(t),
            state: None,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(ids(one), [second.request_id]);
    let everyone = store
        .list_approvals(&ApprovalQuery {
            tenant_id: None,
            state: None,
            limit: 1000,
        })
        .await
        .unwrap();
    assert!(everyone.iter().any(|a| a.request_id == other.request_id));
}

/// `futures::future::join_all` without the dependency: run them all at once.
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
