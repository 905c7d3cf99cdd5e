//! Conformance behaviours of operations: giving a lease back on a graceful
//! shutdown, and the readiness check.

use sever_core::{Database, RequestId, RequestStatus};

use super::{at, get, insert, lease, request, tenant, unfinished, TWO};

pub async fn a_released_lease_lets_another_claimer_in_at_once(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(store
        .claim_request(req.id, &lease("a", at(1_000)), at(1), None)
        .await
        .unwrap());
    assert!(
        !store
            .claim_request(req.id, &lease("b", at(2_000)), at(2), None)
            .await
            .unwrap(),
        "the lease is live"
    );
    assert!(
        !store.release_lease(req.id, "b").await.unwrap(),
        "only the holder gives a lease back"
    );
    assert!(store.release_lease(req.id, "a").await.unwrap());
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!((u.lease_owner, u.lease_expires_at), (None, None));
    let r = get(store, req.id).await;
    assert_eq!(
        (r.status, r.started_at),
        (RequestStatus::Running, Some(at(1))),
        "a released request keeps its status and start"
    );
    assert!(
        store
            .claim_request(req.id, &lease("b", at(2_000)), at(2), None)
            .await
            .unwrap(),
        "free long before the old lease would have expired"
    );
    store
        .finish_request(req.id, RequestStatus::Completed, at(3))
        .await
        .unwrap();
    assert!(
        !store.release_lease(req.id, "b").await.unwrap(),
        "a finished request holds no lease"
    );
    assert!(!store.release_lease(RequestId::new(), "b").await.unwrap());
}

pub async fn a_migrated_store_is_ready(store: &dyn Database) {
    store
        .check_ready()
        .await
        .unwrap_or_else(|e| panic!("a freshly migrated store is not ready: {e}"));
}

pub async fn recording_several_results_at_once_writes_each_once_or_nothing(store: &dyn Database) {
    use sever_core::{ConnectorKey, Outcome, StoreError};

    use super::{attempt, done, failed};
    let three = &[
        ("okta", ConnectorKey::Okta),
        ("entra", ConnectorKey::Entra),
        ("google_workspace", ConnectorKey::GoogleWorkspace),
    ];
    let req = request(tenant(), "alice@example.com", three);
    insert(store, &req).await;
    let mut first = done("okta", ConnectorKey::Okta, Outcome::Revoked);
    first
        .attempts
        .push(attempt(sever_core::Step::Revoke, 1, at(6)));
    assert!(store.record_result(req.id, &first).await.unwrap());

    // A batch naming a connector the request does not have writes nothing.
    let entra = done("entra", ConnectorKey::Entra, Outcome::Revoked);
    let stranger = done(
        "slack_enterprise",
        ConnectorKey::SlackEnterprise,
        Outcome::Revoked,
    );
    let e = store
        .record_results(req.id, &[entra.clone(), stranger])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    assert_eq!(
        get(store, req.id).await.results[1].outcome,
        None,
        "all or nothing"
    );

    let late = done("okta", ConnectorKey::Okta, failed("late duplicate"));
    let mut google = done(
        "google_workspace",
        ConnectorKey::GoogleWorkspace,
        failed("quota"),
    );
    google
        .attempts
        .push(attempt(sever_core::Step::Revoke, 1, at(7)));
    google
        .attempts
        .push(attempt(sever_core::Step::Revoke, 2, at(8)));
    let recorded = store
        .record_results(req.id, &[late, entra.clone(), google.clone()])
        .await
        .unwrap();
    assert_eq!(recorded, vec![false, true, true]);
    let r = get(store, req.id).await;
    assert_eq!(
        r.results[0], first,
        "the first outcome and its attempts stay"
    );
    assert_eq!(r.results[1], entra);
    assert_eq!(r.results[2], google, "every attempt, in order");
    assert_eq!(
        store.record_results(req.id, &[]).await.unwrap(),
        Vec::<bool>::new()
    );
}
