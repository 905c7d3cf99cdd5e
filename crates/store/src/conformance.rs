//! The behaviour every [`Database`] ([`Store`](sever_core::Store) and
//! [`AdminStore`](sever_core::admin::AdminStore)) must
//! have, written once and run against each implementation, so SQLite and
//! PostgreSQL cannot drift apart and the engine's and the server's
//! guarantees (no double claim, no outcome recorded twice, nothing
//! half-written, no mutation without its audit record, an unbroken audit
//! chain) hold whichever database a deployment uses.
//!
//! Each behaviour is a `pub async fn` that panics with a message on failure,
//! so a failing test names the behaviour. Each uses its own random tenants,
//! ids, usernames and cache keys, so behaviours can also share one store
//! ([`run_all`]); the `claim_next` behaviours first claim whatever earlier
//! behaviours left claimable, and the audit behaviours check the whole
//! chain, which every behaviour's records extend. Other crates get this module with the `conformance`
//! feature; [`store_conformance_tests!`](crate::store_conformance_tests)
//! turns it into one `#[tokio::test]` per behaviour.

// A test suite: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sever_core::admin::{
    verify_chain, ApiKey, AuditEvent, AuditQuery, AuditRecord, IdempotentResponse, Role, Scope,
    StoredConnector, Tenant, TenantSettings, User,
};
use sever_core::oauth::{OAuthClient, OAuthCode, OAuthToken, TokenKind};
use sever_core::{
    Attempt, CachedSealedToken, Channel, ConnectorKey, ConnectorResult, Database, ErrorClass,
    Failure, InstanceName, Lease, NewRequest, Outcome, Reason, RequestId, RequestQuery,
    RequestStatus, RequestSummary, RevocationRequest, Sealed, Step, StoreError, TenantId,
    UnfinishedRequest, Username,
};
use uuid::Uuid;

mod web;
pub use web::*;

// Graceful shutdown and readiness (issue 3, operations).
mod ops;
pub use ops::*;

// Policy counters, stored policies and approvals (issue 5).
mod policy;
pub use policy::*;

/// The list of behaviours, written once: expanded into [`BEHAVIOURS`] and
/// [`run_all`] here, and into tests by `store_conformance_tests!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __sever_store_behaviours {
    ($mode:ident $($args:tt)*) => {
        $crate::__sever_store_expand! { $mode [$($args)*]
            a_request_round_trips_with_every_outcome_kind,
            a_duplicate_insert_conflicts_and_writes_nothing,
            concurrent_writes_each_get_their_own_answer,
            claiming_marks_a_request_running_and_sets_started_at_once,
            a_second_claimer_loses_while_the_lease_is_live,
            an_expired_lease_can_be_taken_over,
            a_dead_owners_lease_can_be_stolen,
            only_the_lease_holder_can_renew,
            final_pending_or_unknown_requests_cannot_be_claimed,
            recording_a_result_twice_keeps_the_first,
            recording_an_unknown_or_empty_result_is_an_error,
            finishing_releases_the_lease_and_leaves_the_unfinished_list,
            // Graceful shutdown and readiness (issue 3, operations).
            a_released_lease_lets_another_claimer_in_at_once,
            a_migrated_store_is_ready,
            recording_several_results_at_once_writes_each_once_or_nothing,
            unfinished_requests_are_queued_or_running_oldest_first,
            listing_is_newest_first_with_connector_and_failure_counts,
            listing_filters_by_tenant_status_and_exact_username,
            listing_pages_by_keyset_with_a_default_limit,
            cached_tokens_are_put_got_and_overwritten,
            tokens_sealed_with_other_keys_are_cleared,
            timestamps_round_trip_at_microsecond_precision,
            claim_next_takes_the_oldest_free_request_and_skips_live_leases,
            concurrent_claim_next_callers_never_get_the_same_request,
            a_request_and_its_audit_record_are_written_together_or_not_at_all,
            tenants_are_created_got_and_listed_once_each,
            settings_default_to_all_off_and_round_trip_with_a_sealed_secret,
            user_emails_are_unique_per_tenant_whatever_their_case,
            api_keys_are_found_by_digest_touched_and_revoked,
            connectors_are_put_got_listed_and_deleted_with_sealed_secrets,
            the_audit_chain_links_every_record_and_verifies_when_read_back,
            concurrent_audit_appends_never_share_a_place_in_the_chain,
            audit_listing_filters_by_tenant_and_pages_after_a_seq,
            a_mutation_whose_audit_record_is_refused_writes_nothing,
            idempotency_keys_keep_the_first_answer,
            web_sessions_are_created_got_touched_and_ended_with_their_audit_records,
            signing_out_everywhere_ends_only_that_users_sessions,
            failed_sign_ins_lock_the_key_at_the_limit_and_a_new_window_starts_over,
            concurrent_failed_sign_ins_are_each_counted,
            pending_oauth_clients_are_listed_newest_first_until_approved,
            oauth_clients_stay_pending_until_approved_once_into_one_tenant,
            an_authorization_code_can_be_taken_only_once,
            a_refresh_token_rotates_once_and_tokens_can_be_revoked,
            deleting_an_oauth_client_removes_its_codes_and_tokens_and_is_audited,
            stale_pending_clients_and_expired_codes_and_tokens_are_purged,
            // Policy counters, stored policies and approvals (issue 5).
            policy_counts_stop_at_their_max_and_restart_in_the_next_window,
            a_refused_claim_rolls_back_every_claim_of_its_call,
            distinct_sets_count_each_person_once_per_window,
            cooldowns_block_a_key_until_they_end,
            concurrent_claims_never_pass_a_maximum,
            concurrent_distinct_claims_never_pass_a_cap,
            purging_forgets_only_old_windows_and_ended_cooldowns,
            a_policy_is_stored_once_then_changed_only_over_the_revision_read,
            deleting_a_policy_needs_the_current_revision,
            a_pending_request_waits_with_its_approval_and_is_never_claimed,
            an_approval_queues_its_request_once_and_a_denial_rejects_it_with_skipped_results,
            an_expired_approval_cannot_be_approved_and_expires_its_request,
            concurrent_approve_and_deny_never_both_win,
            approvals_are_listed_newest_first_by_tenant_and_state,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __sever_store_expand {
    (list [] $($name:ident),* $(,)?) => {
        /// Every behaviour, in the order [`run_all`] runs them.
        pub const BEHAVIOURS: &[&str] = &[$(stringify!($name)),*];

        /// Run every behaviour, one after another, against one database.
        pub async fn run_all(store: &dyn Database) {
            $( $name(store).await; )*
        }
    };
    (tests [$fixture:path] $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = $fixture().await;
                $crate::conformance::$name(fixture.store()).await;
                fixture.teardown().await;
            }
        )*
    };
}

/// One `#[tokio::test]` per behaviour. `$fixture` is an async fn returning
/// a value with `fn store(&self) -> &dyn Database` and `async fn
/// teardown(self)`; each test gets a fresh one. Needs `tokio` (macros) in
/// the calling crate.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fixture:path) => {
        $crate::__sever_store_behaviours!(tests $fixture);
    };
}

crate::__sever_store_behaviours!(list);

// ---------------------------------------------------------------- helpers

/// 2025-03-04T05:06:07.123456Z plus `secs`: microseconds on purpose.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap()
        + Duration::microseconds(123_456)
        + Duration::seconds(secs)
}

fn micros(t: DateTime<Utc>, us: i64) -> DateTime<Utc> {
    t + Duration::microseconds(us)
}

fn tenant() -> TenantId {
    TenantId(Uuid::new_v4())
}

fn name(s: &str) -> InstanceName {
    InstanceName::parse(s).unwrap()
}

/// A username no other behaviour uses, so listings by username are exact.
fn unique_user(local: &str) -> String {
    format!(
        "{local}.{}@example.com",
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

fn request(tenant_id: TenantId, username: &str, targets: &[(&str, ConnectorKey)]) -> NewRequest {
    NewRequest {
        id: RequestId::new(),
        tenant_id,
        username: Username::parse(username).unwrap(),
        reason: Reason::parse("laptop stolen in Zürich — ticket INC-42").unwrap(),
        channel: Channel::Webhook,
        requested_by: "soar:tines".into(),
        status: RequestStatus::Queued,
        targets: targets.iter().map(|(n, k)| (name(n), *k)).collect(),
        created_at: at(0),
    }
}

const TWO: &[(&str, ConnectorKey)] =
    &[("okta", ConnectorKey::Okta), ("entra", ConnectorKey::Entra)];

async fn insert(store: &dyn Database, req: &NewRequest) {
    store
        .insert_request(req, &request_audit(req))
        .await
        .unwrap_or_else(|e| panic!("inserting request {}: {e}", req.id));
}

async fn get(store: &dyn Database, id: RequestId) -> RevocationRequest {
    store
        .get_request(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("request {id} is missing"))
}

fn lease(owner: &str, expires_at: DateTime<Utc>) -> Lease {
    Lease {
        owner: owner.into(),
        expires_at,
    }
}

/// The record of a request as just inserted: every result pending.
fn pending(req: &NewRequest) -> RevocationRequest {
    RevocationRequest {
        id: req.id,
        tenant_id: req.tenant_id,
        username: req.username.clone(),
        reason: req.reason.clone(),
        channel: req.channel,
        requested_by: req.requested_by.clone(),
        status: req.status,
        created_at: req.created_at,
        started_at: None,
        finished_at: None,
        results: req
            .targets
            .iter()
            .map(|(instance, provider)| ConnectorResult {
                instance: instance.clone(),
                provider: *provider,
                outcome: None,
                subject_id: None,
                finished_at: None,
                attempts: vec![],
            })
            .collect(),
    }
}

fn attempt(step: Step, number: u32, started_at: DateTime<Utc>) -> Attempt {
    Attempt {
        step,
        number,
        started_at,
        duration_ms: 120,
        http_status: Some(200),
        provider_code: None,
        provider_request_id: None,
        error_class: None,
    }
}

fn done(instance: &str, provider: ConnectorKey, outcome: Outcome) -> ConnectorResult {
    ConnectorResult {
        instance: name(instance),
        provider,
        outcome: Some(outcome),
        subject_id: Some(format!("subject-of-{instance}")),
        finished_at: Some(at(10)),
        attempts: vec![attempt(Step::Lookup, 1, at(5))],
    }
}

fn failed(message: &str) -> Outcome {
    Outcome::Failed(Failure::new(ErrorClass::ProviderError, message))
}

async fn unfinished(store: &dyn Database, id: RequestId) -> Option<UnfinishedRequest> {
    store
        .unfinished_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.id == id)
}

async fn list(store: &dyn Database, query: RequestQuery) -> Vec<RequestId> {
    store
        .list_requests(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// The audit record the engine writes with a request.
fn request_audit(req: &NewRequest) -> AuditEvent {
    AuditEvent {
        tenant_id: req.tenant_id,
        at: req.created_at,
        actor: req.requested_by.clone(),
        role: None,
        channel: req.channel,
        source: Some("tines".into()),
        client_ip: Some("203.0.113.9".into()),
        action: "revoke_sessions".into(),
        target: Some(req.username.to_string()),
        reason: Some(req.reason.as_str().to_string()),
        decision: "allowed".into(),
        result: Some("queued".into()),
        request_id: Some(req.id),
        detail: json!({"targets": req.targets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()}),
    }
}

/// An administrator's action on `tenant_id`.
fn event(tenant_id: TenantId, action: &str) -> AuditEvent {
    AuditEvent {
        tenant_id,
        at: at(0),
        actor: "user:admin@example.com".into(),
        role: Some("admin".into()),
        channel: Channel::Api,
        source: None,
        client_ip: Some("192.0.2.7".into()),
        action: action.into(),
        target: None,
        reason: None,
        decision: "allowed".into(),
        result: None,
        request_id: None,
        detail: json!({}),
    }
}

/// An audit event the database refuses to store (a decision is `allowed`
/// or `denied`), to make the audit half of a mutation fail.
fn refused(tenant_id: TenantId) -> AuditEvent {
    let mut e = event(tenant_id, "refused");
    e.decision = "maybe".into();
    e
}

/// `at` as the stores keep it.
fn stored(mut e: AuditEvent) -> AuditEvent {
    use chrono::SubsecRound;
    e.at = e.at.trunc_subsecs(6);
    e
}

/// Every audit record of `tenant`, oldest first.
async fn audit_of(store: &dyn Database, tenant: TenantId) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditQuery {
            tenant_id: Some(tenant),
            after_seq: None,
            limit: 10_000,
        })
        .await
        .unwrap()
}

/// The actions recorded for `tenant`, oldest first.
async fn actions(store: &dyn Database, tenant: TenantId) -> Vec<String> {
    audit_of(store, tenant)
        .await
        .into_iter()
        .map(|r| r.event.action)
        .collect()
}

/// The whole chain, read back and checked.
async fn assert_chain_intact(store: &dyn Database) -> Vec<AuditRecord> {
    let all = crate::read_audit_chain(store).await.unwrap();
    assert_eq!(verify_chain(&all), Ok(all.len()), "the chain read back");
    assert_eq!(
        crate::verify_audit(store).await.unwrap(),
        Ok(all.len()),
        "the chain checked page by page"
    );
    all
}

/// A new tenant, created with its audit record.
async fn new_tenant(store: &dyn Database) -> TenantId {
    let id = tenant();
    let t = Tenant {
        id,
        name: format!("Acme {}", &id.0.simple().to_string()[..8]),
        created_at: at(0),
    };
    store
        .create_tenant(&t, &event(id, "tenant.create"))
        .await
        .unwrap_or_else(|e| panic!("creating tenant {id}: {e}"));
    id
}

fn user(tenant_id: TenantId, email: &str, role: Role) -> User {
    User {
        id: Uuid::new_v4(),
        tenant_id,
        email: email.into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        created_at: at(1),
        disabled: false,
    }
}

fn api_key(tenant_id: TenantId, scopes: &[Scope]) -> ApiKey {
    let id = Uuid::new_v4();
    ApiKey {
        id,
        tenant_id,
        name: "tines".into(),
        prefix: format!("sk_{}", &id.simple().to_string()[..4]),
        digest: [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat(),
        scopes: scopes.to_vec(),
        created_by: "user:admin@example.com".into(),
        created_at: at(2),
        last_used_at: None,
        revoked_at: None,
    }
}

fn sealed(key_id: &str, fill: u8) -> Sealed {
    Sealed {
        key_id: key_id.into(),
        blob: std::iter::repeat_n(fill, 24).chain(0..=255u8).collect(),
    }
}

fn connector(tenant_id: TenantId, instance: &str, provider: ConnectorKey) -> StoredConnector {
    StoredConnector {
        tenant_id,
        name: name(instance),
        provider,
        enabled: true,
        settings: json!({
            "base_url": "https://acme.okta.com",
            "options": {"oauth_tokens": true, "forget_devices": false, "max": 3.5},
            "note": "Zürich — \"quoted\"",
        }),
        secrets: Some(sealed("0a1b2c3d", 7)),
        last_test_at: Some(micros(at(3), 1)),
        last_test_ok: Some(true),
        last_test_detail: Some("3 checks passed".into()),
        updated_at: at(4),
    }
}

/// A new lease on requests other behaviours left claimable at or before
/// `until`, so that `claim_next` afterwards sees only this behaviour's own.
/// A no-op on a fresh store.
async fn drain(store: &dyn Database, until: DateTime<Utc>) {
    let hold = lease("drained", at(1_000_000));
    while store.claim_next(&hold, until).await.unwrap().is_some() {}
}

// ------------------------------------------------------------- behaviours

pub async fn a_request_round_trips_with_every_outcome_kind(store: &dyn Database) {
    use ConnectorKey::*;
    let mut req = request(
        tenant(),
        "dave_partner.com#EXT#@example.onmicrosoft.com",
        &[
            ("slack_enterprise", SlackEnterprise),
            ("okta", Okta),
            ("okta-emea", Okta),
            ("entra", Entra),
            ("entra-guests", Entra),
            ("google_workspace", GoogleWorkspace),
            ("miro", Miro),
            ("miro-eu", Miro),
        ],
    );
    req.channel = Channel::Mcp;
    req.requested_by = "o'neil \"ops\"; DROP TABLE x; --".into();
    insert(store, &req).await;
    let mut expected = pending(&req);
    assert_eq!(get(store, req.id).await, expected, "freshly inserted");
    assert!(store.get_request(RequestId::new()).await.unwrap().is_none());

    let failure = Failure {
        class: ErrorClass::RateLimited,
        http_status: Some(429),
        provider_code: Some("E0000047".into()),
        provider_request_id: Some("XyZ-req-123".into()),
        attempts: 3,
        message: "rate limited by Okta; retried 3 times over 9 s".into(),
    };
    let mut with_every_field = done("okta", Okta, Outcome::Failed(failure));
    with_every_field.attempts = vec![
        Attempt {
            step: Step::Token,
            number: 1,
            started_at: at(1),
            duration_ms: 0,
            http_status: None,
            provider_code: None,
            provider_request_id: None,
            error_class: Some(ErrorClass::Timeout),
        },
        Attempt {
            step: Step::Revoke,
            number: 2,
            started_at: micros(at(2), 1),
            duration_ms: u64::from(u32::MAX) + 7,
            http_status: Some(429),
            provider_code: Some("E0000047".into()),
            provider_request_id: Some("XyZ-req-123".into()),
            error_class: Some(ErrorClass::RateLimited),
        },
        attempt(Step::Test, 3, at(3)),
    ];
    let msg = |m: &str| m.to_string();
    let mut results = vec![
        done("slack_enterprise", SlackEnterprise, Outcome::TokensRevoked),
        with_every_field,
        done("okta-emea", Okta, Outcome::Revoked),
        done("entra", Entra, Outcome::UserNotFound),
        done(
            "entra-guests",
            Entra,
            Outcome::NotApplicable {
                message: msg("guest: sessions live in the home tenant"),
            },
        ),
        done(
            "google_workspace",
            GoogleWorkspace,
            Outcome::NotEntitled {
                message: msg("plan lacks the API"),
            },
        ),
        done(
            "miro",
            Miro,
            Outcome::Protected {
                message: msg("primary owner"),
            },
        ),
        done(
            "miro-eu",
            Miro,
            Outcome::Skipped {
                message: msg("protected account list"),
            },
        ),
    ];
    results[3].subject_id = None;
    results[3].attempts = vec![];
    // Record in an order unlike the targets': results still come back in target order.
    for r in results.iter().rev() {
        assert!(
            store.record_result(req.id, r).await.unwrap(),
            "{}",
            r.instance
        );
    }
    expected.results = results;
    assert_eq!(get(store, req.id).await, expected);
}

pub async fn a_duplicate_insert_conflicts_and_writes_nothing(store: &dyn Database) {
    let t = tenant();
    let first = request(t, "alice@example.com", TWO);
    insert(store, &first).await;
    let mut again = request(t, "mallory@example.com", &[("miro", ConnectorKey::Miro)]);
    again.id = first.id;
    match store.insert_request(&again, &request_audit(&again)).await {
        Err(StoreError::Conflict(what)) => {
            assert!(what.contains(&first.id.to_string()), "{what}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(get(store, first.id).await, pending(&first));

    // A failure part-way (the second result row) leaves no trace either.
    let broken = request(
        t,
        "bob@example.com",
        &[("okta", ConnectorKey::Okta), ("okta", ConnectorKey::Okta)],
    );
    assert!(matches!(
        store.insert_request(&broken, &request_audit(&broken)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_request(broken.id).await.unwrap().is_none());
    let all = RequestQuery {
        tenant_id: Some(t),
        ..Default::default()
    };
    assert_eq!(list(store, all).await, vec![first.id]);
}

/// Many revocations written at once (a SOAR's burst): each caller gets the
/// answer its own write deserves, whatever the store does to make them
/// together. The one duplicate conflicts and changes nothing; every other
/// request, its claim, outcomes and finish land; the audit chain stays whole.
pub async fn concurrent_writes_each_get_their_own_answer(store: &dyn Database) {
    let t = tenant();
    let reqs: Vec<NewRequest> = (0..40)
        .map(|i| request(t, &unique_user(&format!("burst{i}")), TWO))
        .collect();
    let mut dup = request(t, "mallory@example.com", TWO);
    dup.id = reqs[10].id;
    let inserts = reqs
        .iter()
        .chain(std::iter::once(&dup))
        .map(|r| async move { store.insert_request(r, &request_audit(r)).await });
    let answers = futures::future::join_all(inserts).await;
    for (i, a) in answers.iter().enumerate() {
        match (i, a) {
            (40, Err(StoreError::Conflict(_))) => {}
            (40, other) => panic!("the duplicate: expected a conflict, got {other:?}"),
            (_, Ok(())) => {}
            (i, Err(e)) => panic!("request {i}: {e}"),
        }
    }
    // A burst with nothing wrong in it.
    let clean: Vec<NewRequest> = (0..20)
        .map(|i| request(t, &unique_user(&format!("clean{i}")), TWO))
        .collect();
    let inserts = clean
        .iter()
        .map(|r| async move { store.insert_request(r, &request_audit(r)).await });
    for done in futures::future::join_all(inserts).await {
        done.unwrap();
    }
    for r in &clean {
        assert_eq!(get(store, r.id).await, pending(r));
    }
    let owner = lease("replica-a", at(60));
    let claims = reqs
        .iter()
        .map(|r| store.claim_request(r.id, &owner, at(1), None));
    assert!(futures::future::join_all(claims)
        .await
        .into_iter()
        .all(|c| c.unwrap()));
    let records = reqs.iter().map(|r| async move {
        let results: Vec<ConnectorResult> = ["okta", "entra"]
            .iter()
            .map(|n| ConnectorResult {
                instance: name(n),
                provider: ConnectorKey::Okta,
                outcome: Some(Outcome::Revoked),
                subject_id: Some(format!("{n}-subject")),
                finished_at: Some(at(2)),
                attempts: Vec::new(),
            })
            .collect();
        let written = store.record_results(r.id, &results).await?;
        store
            .finish_request(r.id, RequestStatus::Completed, at(3))
            .await?;
        Ok::<_, StoreError>(written)
    });
    for written in futures::future::join_all(records).await {
        assert_eq!(written.unwrap(), vec![true, true]);
    }
    for r in &reqs {
        let got = get(store, r.id).await;
        assert_eq!(got.username, r.username, "{}", r.id);
        assert_eq!(got.status, RequestStatus::Completed);
        assert!(got
            .results
            .iter()
            .all(|x| x.outcome == Some(Outcome::Revoked)));
    }
    let audit = audit_of(store, t).await;
    assert_eq!(audit.len(), 60, "one audit record per request written");
    assert!(!audit
        .iter()
        .any(|a| a.event.target.as_deref() == Some("mallory@example.com")));
    assert!(matches!(crate::verify_audit(store).await, Ok(Ok(_))));
}

pub async fn claiming_marks_a_request_running_and_sets_started_at_once(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(store
        .claim_request(req.id, &lease("a", at(30)), at(1), None)
        .await
        .unwrap());
    let r = get(store, req.id).await;
    assert_eq!(r.status, RequestStatus::Running);
    assert_eq!(r.started_at, Some(at(1)));
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!(u.lease_owner.as_deref(), Some("a"));
    assert_eq!(u.lease_expires_at, Some(at(30)));

    // Claiming again (our own lease) extends it; the start time stays the first.
    assert!(store
        .claim_request(req.id, &lease("a", at(40)), at(5), None)
        .await
        .unwrap());
    let r = get(store, req.id).await;
    assert_eq!(
        (r.status, r.started_at),
        (RequestStatus::Running, Some(at(1)))
    );
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!(u.lease_expires_at, Some(at(40)));
}

pub async fn a_second_claimer_loses_while_the_lease_is_live(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(store
        .claim_request(req.id, &lease("a", at(30)), at(1), None)
        .await
        .unwrap());
    for now in [at(2), at(29), at(30)] {
        assert!(
            !store
                .claim_request(req.id, &lease("b", at(60)), now, None)
                .await
                .unwrap(),
            "b must not take a live lease at {now}"
        );
    }
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!(
        (u.lease_owner.as_deref(), u.lease_expires_at),
        (Some("a"), Some(at(30)))
    );

    // Racing claimers on a free request: exactly one wins.
    let free = request(tenant(), "bob@example.com", TWO);
    insert(store, &free).await;
    let id = free.id;
    let claim = |owner: &'static str| async move {
        store
            .claim_request(id, &lease(owner, at(30)), at(1), None)
            .await
            .unwrap()
    };
    let (w, x, y, z) = tokio::join!(claim("w"), claim("x"), claim("y"), claim("z"));
    assert_eq!([w, x, y, z].iter().filter(|won| **won).count(), 1);
}

pub async fn an_expired_lease_can_be_taken_over(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(store
        .claim_request(req.id, &lease("a", at(10)), at(0), None)
        .await
        .unwrap());
    assert!(store
        .claim_request(req.id, &lease("b", at(40)), micros(at(10), 1), None)
        .await
        .unwrap());
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!(u.lease_owner.as_deref(), Some("b"));
    assert_eq!(get(store, req.id).await.started_at, Some(at(0)));
    assert!(
        !store
            .renew_lease(req.id, &lease("a", at(50)))
            .await
            .unwrap(),
        "the old holder lost it"
    );
}

pub async fn a_dead_owners_lease_can_be_stolen(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(store
        .claim_request(req.id, &lease("host/1/dead", at(100)), at(0), None)
        .await
        .unwrap());
    assert!(
        !store
            .claim_request(req.id, &lease("b", at(60)), at(1), Some("host/2/other"))
            .await
            .unwrap(),
        "stealing names the holder, not just anyone"
    );
    assert!(store
        .claim_request(req.id, &lease("b", at(60)), at(1), Some("host/1/dead"))
        .await
        .unwrap());
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!(
        (u.lease_owner.as_deref(), u.lease_expires_at),
        (Some("b"), Some(at(60)))
    );
}

pub async fn only_the_lease_holder_can_renew(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(
        !store
            .renew_lease(req.id, &lease("a", at(50)))
            .await
            .unwrap(),
        "nobody holds it yet"
    );
    assert!(store
        .claim_request(req.id, &lease("a", at(10)), at(0), None)
        .await
        .unwrap());
    assert!(store
        .renew_lease(req.id, &lease("a", at(50)))
        .await
        .unwrap());
    assert!(!store
        .renew_lease(req.id, &lease("b", at(90)))
        .await
        .unwrap());
    let u = unfinished(store, req.id).await.unwrap();
    assert_eq!(
        (u.lease_owner.as_deref(), u.lease_expires_at),
        (Some("a"), Some(at(50)))
    );
    store
        .finish_request(req.id, RequestStatus::Completed, at(20))
        .await
        .unwrap();
    assert!(!store
        .renew_lease(req.id, &lease("a", at(60)))
        .await
        .unwrap());
    assert!(!store
        .renew_lease(RequestId::new(), &lease("a", at(60)))
        .await
        .unwrap());
}

pub async fn final_pending_or_unknown_requests_cannot_be_claimed(store: &dyn Database) {
    let claim = |id| async move {
        store
            .claim_request(id, &lease("a", at(30)), at(1), None)
            .await
            .unwrap()
    };
    assert!(!claim(RequestId::new()).await, "unknown");

    let mut awaiting = request(tenant(), "alice@example.com", TWO);
    awaiting.status = RequestStatus::PendingApproval;
    insert(store, &awaiting).await;
    assert!(!claim(awaiting.id).await, "pending approval");
    assert_eq!(get(store, awaiting.id).await, pending(&awaiting));

    for status in [
        RequestStatus::Completed,
        RequestStatus::Failed,
        RequestStatus::Rejected,
        RequestStatus::Expired,
    ] {
        let req = request(tenant(), "alice@example.com", TWO);
        insert(store, &req).await;
        store.finish_request(req.id, status, at(2)).await.unwrap();
        assert!(!claim(req.id).await, "{status}");
        let r = get(store, req.id).await;
        assert_eq!((r.status, r.started_at), (status, None));
    }
}

pub async fn recording_a_result_twice_keeps_the_first(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    let mut first = done("okta", ConnectorKey::Okta, Outcome::Revoked);
    first.attempts.push(attempt(Step::Revoke, 1, at(6)));
    assert!(store.record_result(req.id, &first).await.unwrap());
    let mut second = done("okta", ConnectorKey::Okta, failed("late duplicate"));
    second.subject_id = Some("someone-else".into());
    second.finished_at = Some(at(99));
    assert!(!store.record_result(req.id, &second).await.unwrap());
    let r = get(store, req.id).await;
    assert_eq!(r.results[0], first, "the first outcome and attempts stay");
    assert_eq!(r.results[1].outcome, None);
    assert!(r.results[1].attempts.is_empty());
}

pub async fn recording_an_unknown_or_empty_result_is_an_error(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    let stranger = done("miro", ConnectorKey::Miro, Outcome::Revoked);
    assert!(matches!(
        store.record_result(req.id, &stranger).await,
        Err(StoreError::NotFound(_))
    ));
    let okta = done("okta", ConnectorKey::Okta, Outcome::Revoked);
    assert!(matches!(
        store.record_result(RequestId::new(), &okta).await,
        Err(StoreError::NotFound(_))
    ));
    let mut empty = okta.clone();
    empty.outcome = None;
    assert!(store.record_result(req.id, &empty).await.is_err());
    assert_eq!(get(store, req.id).await, pending(&req), "nothing written");
}

pub async fn finishing_releases_the_lease_and_leaves_the_unfinished_list(store: &dyn Database) {
    let req = request(tenant(), "alice@example.com", TWO);
    insert(store, &req).await;
    assert!(store
        .claim_request(req.id, &lease("a", at(30)), at(1), None)
        .await
        .unwrap());
    assert!(unfinished(store, req.id).await.is_some());
    store
        .finish_request(req.id, RequestStatus::Failed, at(20))
        .await
        .unwrap();
    let r = get(store, req.id).await;
    assert_eq!(
        (r.status, r.started_at, r.finished_at),
        (RequestStatus::Failed, Some(at(1)), Some(at(20)))
    );
    assert!(unfinished(store, req.id).await.is_none());
    assert!(!store
        .renew_lease(req.id, &lease("a", at(40)))
        .await
        .unwrap());
    for owner in ["a", "b"] {
        assert!(!store
            .claim_request(req.id, &lease(owner, at(40)), at(2), None)
            .await
            .unwrap());
    }
    assert!(matches!(
        store
            .finish_request(RequestId::new(), RequestStatus::Completed, at(3))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let other = request(tenant(), "bob@example.com", TWO);
    insert(store, &other).await;
    assert!(
        store
            .finish_request(other.id, RequestStatus::Running, at(3))
            .await
            .is_err(),
        "running is not a final status"
    );
    assert_eq!(get(store, other.id).await, pending(&other));
}

pub async fn unfinished_requests_are_queued_or_running_oldest_first(store: &dyn Database) {
    let t = tenant();
    let queued = request(t, "a@example.com", TWO);
    let running = request(t, "b@example.com", TWO);
    let mut awaiting = request(t, "c@example.com", TWO);
    awaiting.status = RequestStatus::PendingApproval;
    let finished = request(t, "d@example.com", TWO);
    let last = request(t, "e@example.com", TWO);
    for r in [&queued, &running, &awaiting, &finished, &last] {
        insert(store, r).await;
    }
    assert!(store
        .claim_request(running.id, &lease("a", at(30)), at(1), None)
        .await
        .unwrap());
    store
        .finish_request(finished.id, RequestStatus::Completed, at(2))
        .await
        .unwrap();
    let ours: Vec<UnfinishedRequest> = store
        .unfinished_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| [queued.id, running.id, awaiting.id, finished.id, last.id].contains(&u.id))
        .collect();
    assert_eq!(
        ours,
        vec![
            UnfinishedRequest {
                id: queued.id,
                status: RequestStatus::Queued,
                lease_owner: None,
                lease_expires_at: None,
            },
            UnfinishedRequest {
                id: running.id,
                status: RequestStatus::Running,
                lease_owner: Some("a".into()),
                lease_expires_at: Some(at(30)),
            },
            UnfinishedRequest {
                id: last.id,
                status: RequestStatus::Queued,
                lease_owner: None,
                lease_expires_at: None,
            },
        ]
    );
}

pub async fn listing_is_newest_first_with_connector_and_failure_counts(store: &dyn Database) {
    use ConnectorKey::*;
    let t = tenant();
    let three = &[("okta", Okta), ("entra", Entra), ("miro", Miro)];
    let older = request(t, "a@example.com", three);
    let mut middle = request(t, "b@example.com", TWO);
    middle.created_at = at(1);
    let mut newest = request(t, "c@example.com", &[]);
    newest.created_at = at(2);
    for r in [&older, &middle, &newest] {
        insert(store, r).await;
    }
    for (req, r) in [
        (&older, done("okta", Okta, failed("x"))),
        (&older, done("entra", Entra, Outcome::UserNotFound)),
        (&middle, done("okta", Okta, failed("x"))),
        (&middle, done("entra", Entra, failed("y"))),
    ] {
        assert!(store.record_result(req.id, &r).await.unwrap());
    }
    store
        .finish_request(middle.id, RequestStatus::Failed, at(9))
        .await
        .unwrap();
    let summaries = store
        .list_requests(&RequestQuery {
            tenant_id: Some(t),
            ..Default::default()
        })
        .await
        .unwrap();
    let summary = |r: &NewRequest, status, finished_at, connectors, failed| RequestSummary {
        id: r.id,
        tenant_id: t,
        username: r.username.clone(),
        status,
        channel: r.channel,
        created_at: r.created_at,
        finished_at,
        connectors,
        failed,
    };
    assert_eq!(
        summaries,
        vec![
            summary(&newest, RequestStatus::Queued, None, 0, 0),
            summary(&middle, RequestStatus::Failed, Some(at(9)), 2, 2),
            summary(&older, RequestStatus::Queued, None, 3, 1),
        ]
    );
}

pub async fn listing_filters_by_tenant_status_and_exact_username(store: &dyn Database) {
    let (t1, t2) = (tenant(), tenant());
    let alice = unique_user("alice");
    let bob = unique_user("bob");
    let a1 = request(t1, &alice, TWO);
    let a2 = request(t1, &alice.to_uppercase(), TWO);
    let b1 = request(t1, &bob, TWO);
    let a3 = request(t2, &alice, TWO);
    for r in [&a1, &a2, &b1, &a3] {
        insert(store, r).await;
    }
    store
        .finish_request(a2.id, RequestStatus::Completed, at(5))
        .await
        .unwrap();
    let q = |tenant_id, status, username: Option<&str>| RequestQuery {
        tenant_id,
        status,
        username: username.map(str::to_string),
        ..Default::default()
    };
    let queued = Some(RequestStatus::Queued);
    let completed = Some(RequestStatus::Completed);
    assert_eq!(
        list(store, q(Some(t1), None, None)).await,
        [b1.id, a2.id, a1.id]
    );
    assert_eq!(list(store, q(Some(t2), None, None)).await, [a3.id]);
    assert_eq!(list(store, q(Some(t1), queued, None)).await, [b1.id, a1.id]);
    assert_eq!(list(store, q(Some(t1), completed, None)).await, [a2.id]);
    let shouted = alice.to_uppercase();
    assert_eq!(
        list(store, q(Some(t1), None, Some(&shouted))).await,
        [a2.id, a1.id],
        "usernames match case-insensitively"
    );
    assert_eq!(
        list(store, q(None, None, Some(&alice))).await,
        [a3.id, a2.id, a1.id],
        "no tenant filter: every tenant"
    );
    assert_eq!(list(store, q(None, completed, Some(&alice))).await, [a2.id]);
    let prefix = &alice[..alice.find('@').unwrap()];
    assert!(
        list(store, q(None, None, Some(prefix))).await.is_empty(),
        "exact match, not a substring"
    );
}

pub async fn listing_pages_by_keyset_with_a_default_limit(store: &dyn Database) {
    let t = tenant();
    let mut ids = Vec::new();
    for i in 0..55 {
        let mut r = request(t, "alice@example.com", &[("okta", ConnectorKey::Okta)]);
        r.created_at = at(i);
        insert(store, &r).await;
        ids.push(r.id);
    }
    let newest_first: Vec<RequestId> = ids.iter().rev().copied().collect();
    let page = |limit, before| RequestQuery {
        tenant_id: Some(t),
        limit,
        before,
        ..Default::default()
    };
    assert_eq!(
        list(store, page(0, None)).await,
        newest_first[..50],
        "default 50"
    );
    assert_eq!(
        list(store, page(5000, None)).await,
        newest_first,
        "capped, not refused"
    );
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let got = list(store, page(20, before)).await;
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 20);
        before = got.last().copied();
        seen.extend(got);
    }
    assert_eq!(seen, newest_first, "pages cover everything once, in order");
    assert_eq!(
        list(store, page(3, Some(ids[10]))).await,
        [ids[9], ids[8], ids[7]]
    );
}

pub async fn cached_tokens_are_put_got_and_overwritten(store: &dyn Database) {
    let key = format!("okta-{}:token", Uuid::new_v4().simple());
    assert_eq!(store.get_token(&key).await.unwrap(), None);
    let first = CachedSealedToken {
        sealed: Sealed {
            key_id: "0a1b2c3d".into(),
            blob: (0..=255u8).collect(),
        },
        expires_at: at(3600),
    };
    store.put_token(&key, &first).await.unwrap();
    assert_eq!(store.get_token(&key).await.unwrap(), Some(first));
    let second = CachedSealedToken {
        sealed: Sealed {
            key_id: "ffffffff".into(),
            blob: vec![0, 0, 1],
        },
        expires_at: micros(at(7200), 1),
    };
    store.put_token(&key, &second).await.unwrap();
    assert_eq!(store.get_token(&key).await.unwrap(), Some(second));
    assert_eq!(
        store.get_token(&format!("{key}-other")).await.unwrap(),
        None
    );
}

pub async fn tokens_sealed_with_other_keys_are_cleared(store: &dyn Database) {
    let id = Uuid::new_v4().simple().to_string();
    let (kept_key, gone_key) = (format!("kept-{id}"), format!("gone-{id}"));
    let token = |key_id: &str| CachedSealedToken {
        sealed: Sealed {
            key_id: key_id.into(),
            blob: vec![1, 2, 3],
        },
        expires_at: at(3600),
    };
    let current = &id[..8];
    store.put_token(&kept_key, &token(current)).await.unwrap();
    store
        .put_token(&gone_key, &token("0ld0ld00"))
        .await
        .unwrap();
    let cleared = store.clear_tokens_not_sealed_with(current).await.unwrap();
    assert!(cleared >= 1, "the token under the old key is counted");
    assert_eq!(store.get_token(&gone_key).await.unwrap(), None);
    assert_eq!(
        store.get_token(&kept_key).await.unwrap(),
        Some(token(current)),
        "a token sealed with the current key stays"
    );
}

pub async fn timestamps_round_trip_at_microsecond_precision(store: &dyn Database) {
    let created = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()
        + Duration::nanoseconds(999_999_999);
    let mut req = request(tenant(), "alice@example.com", TWO);
    req.created_at = created;
    insert(store, &req).await;
    let truncated = micros(
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
        999_999,
    );
    assert_eq!(
        get(store, req.id).await.created_at,
        truncated,
        "nanoseconds truncated"
    );

    // Lease expiry is compared at microsecond precision.
    let expiry = micros(at(10), 5);
    assert!(store
        .claim_request(req.id, &lease("a", expiry), micros(at(0), 1), None)
        .await
        .unwrap());
    assert!(!store
        .claim_request(req.id, &lease("b", at(60)), expiry, None)
        .await
        .unwrap());
    assert!(store
        .claim_request(req.id, &lease("b", at(60)), micros(expiry, 1), None)
        .await
        .unwrap());

    let mut r = done("okta", ConnectorKey::Okta, Outcome::Revoked);
    r.finished_at = Some(micros(at(20), 7));
    r.attempts = vec![attempt(Step::Lookup, 1, micros(at(15), 999_999))];
    assert!(store.record_result(req.id, &r).await.unwrap());
    store
        .finish_request(req.id, RequestStatus::Completed, micros(at(21), 1))
        .await
        .unwrap();
    let got = get(store, req.id).await;
    assert_eq!(got.started_at, Some(micros(at(0), 1)));
    assert_eq!(got.finished_at, Some(micros(at(21), 1)));
    assert_eq!(got.results[0].finished_at, Some(micros(at(20), 7)));
    assert_eq!(
        got.results[0].attempts[0].started_at,
        micros(at(15), 999_999)
    );
    let listed = store
        .list_requests(&RequestQuery {
            tenant_id: Some(req.tenant_id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].created_at, truncated);
    assert_eq!(listed[0].finished_at, Some(micros(at(21), 1)));
}

pub async fn claim_next_takes_the_oldest_free_request_and_skips_live_leases(store: &dyn Database) {
    let now = at(4000);
    drain(store, at(5000)).await;
    let t = tenant();
    let held = request(t, "a@example.com", TWO);
    let mut awaiting = request(t, "b@example.com", TWO);
    awaiting.status = RequestStatus::PendingApproval;
    let finished = request(t, "c@example.com", TWO);
    let old = request(t, "d@example.com", TWO);
    let young = request(t, "e@example.com", TWO);
    for r in [&held, &awaiting, &finished, &old, &young] {
        insert(store, r).await;
    }
    store
        .finish_request(finished.id, RequestStatus::Completed, now)
        .await
        .unwrap();
    assert!(store
        .claim_request(held.id, &lease("h", at(4500)), now, None)
        .await
        .unwrap());

    let a = lease("a", at(4500));
    assert_eq!(
        store.claim_next(&a, now).await.unwrap(),
        Some(old.id),
        "the oldest request nobody holds; a live lease, a pending approval and a final status are skipped"
    );
    let r = get(store, old.id).await;
    assert_eq!(
        (r.status, r.started_at),
        (RequestStatus::Running, Some(now))
    );
    let u = unfinished(store, old.id).await.unwrap();
    assert_eq!(
        (u.lease_owner.as_deref(), u.lease_expires_at),
        (Some("a"), Some(at(4500)))
    );
    assert_eq!(
        store.claim_next(&a, now).await.unwrap(),
        Some(young.id),
        "our own live lease is skipped too"
    );
    assert_eq!(store.claim_next(&a, now).await.unwrap(), None);
    assert_eq!(
        store.claim_next(&a, at(4500)).await.unwrap(),
        None,
        "a lease is live up to and including its expiry"
    );

    // Past the expiry, the leases are free again: oldest first, start time kept.
    let later = micros(at(4500), 1);
    let b = lease("b", at(4900));
    for id in [held.id, old.id, young.id] {
        assert_eq!(store.claim_next(&b, later).await.unwrap(), Some(id));
        assert_eq!(get(store, id).await.started_at, Some(now));
        let u = unfinished(store, id).await.unwrap();
        assert_eq!(u.lease_owner.as_deref(), Some("b"));
    }
    assert_eq!(store.claim_next(&b, later).await.unwrap(), None);
    assert_eq!(get(store, awaiting.id).await, pending(&awaiting));
    for id in [held.id, old.id, young.id] {
        store
            .finish_request(id, RequestStatus::Completed, later)
            .await
            .unwrap();
    }
}

pub async fn concurrent_claim_next_callers_never_get_the_same_request(store: &dyn Database) {
    let now = at(4000);
    drain(store, at(5000)).await;
    let t = tenant();
    let mut ids = BTreeSet::new();
    for i in 0..12 {
        let r = request(t, &format!("user{i}@example.com"), TWO);
        insert(store, &r).await;
        ids.insert(r.id);
    }
    let claim = |owner: String| async move {
        let got = store
            .claim_next(&lease(&owner, at(4500)), now)
            .await
            .unwrap();
        got.map(|id| (owner, id))
    };
    // Three rounds of six racing claimers: twelve requests, eighteen tries.
    let mut got: Vec<(String, RequestId)> = Vec::new();
    for round in 0..3 {
        let c = |i: u32| claim(format!("replica-{round}-{i}"));
        let (a, b, c_, d, e, f) = tokio::join!(c(1), c(2), c(3), c(4), c(5), c(6));
        got.extend([a, b, c_, d, e, f].into_iter().flatten());
    }
    let claimed: BTreeSet<RequestId> = got.iter().map(|(_, id)| *id).collect();
    assert_eq!(got.len(), 12, "twelve requests, twelve winners: {got:?}");
    assert_eq!(claimed, ids, "each request claimed exactly once");
    for (owner, id) in got {
        let u = unfinished(store, id).await.unwrap();
        assert_eq!(u.lease_owner.as_deref(), Some(owner.as_str()), "{id}");
        store
            .finish_request(id, RequestStatus::Completed, now)
            .await
            .unwrap();
    }
}

pub async fn a_request_and_its_audit_record_are_written_together_or_not_at_all(
    store: &dyn Database,
) {
    let t = tenant();
    let mut req = request(t, "alice@example.com", TWO);
    req.created_at = Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap() + Duration::nanoseconds(1);
    let ev = request_audit(&req);
    store.insert_request(&req, &ev).await.unwrap();
    let records = audit_of(store, t).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event, stored(ev), "at kept to the microsecond");
    assert_eq!(records[0].event.request_id, Some(req.id));

    // A duplicate request id conflicts and records nothing.
    let mut again = request(t, "mallory@example.com", TWO);
    again.id = req.id;
    assert!(matches!(
        store.insert_request(&again, &request_audit(&again)).await,
        Err(StoreError::Conflict(_))
    ));
    // A request whose audit record is refused is not written either.
    let lost = request(t, "bob@example.com", TWO);
    assert!(store.insert_request(&lost, &refused(t)).await.is_err());
    assert!(store.get_request(lost.id).await.unwrap().is_none());
    assert_eq!(audit_of(store, t).await, records, "nothing else recorded");
    let mut first = pending(&req);
    first.created_at = at(0) - Duration::microseconds(123_456);
    assert_eq!(get(store, req.id).await, first);
}

pub async fn tenants_are_created_got_and_listed_once_each(store: &dyn Database) {
    let id = tenant();
    let t = Tenant {
        id,
        name: "Acme, Inc. — Zürich".into(),
        created_at: micros(at(0), 7),
    };
    assert_eq!(store.get_tenant(id).await.unwrap(), None);
    store
        .create_tenant(&t, &event(id, "tenant.create"))
        .await
        .unwrap();
    assert_eq!(store.get_tenant(id).await.unwrap(), Some(t.clone()));
    let other = new_tenant(store).await;
    let listed = store.list_tenants().await.unwrap();
    assert_eq!(
        listed.iter().filter(|x| x.id == id).collect::<Vec<_>>(),
        [&t]
    );
    assert!(listed.iter().any(|x| x.id == other));

    let mut twin = t.clone();
    twin.name = "Impostor".into();
    match store
        .create_tenant(&twin, &event(id, "tenant.create"))
        .await
    {
        Err(StoreError::Conflict(what)) => assert!(what.contains(&id.to_string()), "{what}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get_tenant(id).await.unwrap(), Some(t));
    assert_eq!(actions(store, id).await, ["tenant.create"]);
}

pub async fn settings_default_to_all_off_and_round_trip_with_a_sealed_secret(store: &dyn Database) {
    let t = new_tenant(store).await;
    let default = store.get_settings(t).await.unwrap();
    assert_eq!(default.tenant_id, t);
    assert!(
        !default.revocation_enabled
            && !default.webhook_enabled
            && !default.mcp_enabled
            && !default.webhook_require_timestamp,
        "never saved: every switch off"
    );
    assert_eq!(default.webhook_secret, None);
    let unknown = tenant();
    assert_eq!(
        store.get_settings(unknown).await.unwrap().tenant_id,
        unknown
    );

    let on = TenantSettings {
        tenant_id: t,
        revocation_enabled: true,
        webhook_enabled: true,
        mcp_enabled: true,
        webhook_require_timestamp: true,
        webhook_secret: Some(sealed("k-2025", 1)),
        updated_at: micros(at(10), 3),
    };
    store
        .put_settings(&on, &event(t, "settings.update"))
        .await
        .unwrap();
    assert_eq!(store.get_settings(t).await.unwrap(), on);

    let off = TenantSettings {
        webhook_enabled: false,
        webhook_require_timestamp: false,
        webhook_secret: None,
        updated_at: at(11),
        ..on.clone()
    };
    store
        .put_settings(&off, &event(t, "settings.update"))
        .await
        .unwrap();
    assert_eq!(store.get_settings(t).await.unwrap(), off);
    let all = store.all_settings().await.unwrap();
    assert_eq!(
        all.iter().filter(|s| s.tenant_id == t).collect::<Vec<_>>(),
        [&off]
    );

    let stray = TenantSettings::new(unknown, at(12));
    assert!(
        matches!(
            store
                .put_settings(&stray, &event(unknown, "settings.update"))
                .await,
            Err(StoreError::NotFound(_))
        ),
        "settings of a tenant that does not exist"
    );
    assert_eq!(
        actions(store, t).await,
        ["tenant.create", "settings.update", "settings.update"]
    );
    assert!(audit_of(store, unknown).await.is_empty());
}

pub async fn user_emails_are_unique_per_tenant_whatever_their_case(store: &dyn Database) {
    let t = new_tenant(store).await;
    let t2 = new_tenant(store).await;
    let alice = user(t, "Alice.O'Neil@Example.com", Role::Admin);
    store
        .create_user(&alice, &event(t, "user.create"))
        .await
        .unwrap();
    assert_eq!(store.get_user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(
        store
            .find_user(t, "alice.o'neil@EXAMPLE.COM")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.find_user(t2, &alice.email).await.unwrap(), None);
    assert_eq!(store.find_user(t, "alice").await.unwrap(), None);
    assert_eq!(store.get_user(Uuid::new_v4()).await.unwrap(), None);

    let shouting = user(t, "ALICE.O'NEIL@example.COM", Role::Viewer);
    assert!(matches!(
        store.create_user(&shouting, &event(t, "user.create")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_user(shouting.id).await.unwrap(), None);
    let elsewhere = user(t2, &alice.email, Role::Owner);
    store
        .create_user(&elsewhere, &event(t2, "user.create"))
        .await
        .unwrap();
    let bob = user(t, "bob@example.com", Role::Analyst);
    store
        .create_user(&bob, &event(t, "user.create"))
        .await
        .unwrap();
    assert_eq!(
        store.list_users(t).await.unwrap(),
        [alice.clone(), bob.clone()]
    );
    assert_eq!(store.list_users(t2).await.unwrap(), [elsewhere]);

    let mut demoted = alice.clone();
    demoted.role = Role::Viewer;
    demoted.disabled = true;
    demoted.password_hash = "$argon2id$v=19$new".into();
    demoted.email = "alice@example.com".into();
    store
        .update_user(&demoted, &event(t, "user.update"))
        .await
        .unwrap();
    assert_eq!(
        store.get_user(alice.id).await.unwrap(),
        Some(demoted.clone())
    );

    let mut clash = bob.clone();
    clash.email = "ALICE@example.com".into();
    assert!(matches!(
        store.update_user(&clash, &event(t, "user.update")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob.clone()));
    let ghost = user(t, "ghost@example.com", Role::Viewer);
    assert!(matches!(
        store.update_user(&ghost, &event(t, "user.update")).await,
        Err(StoreError::NotFound(_))
    ));
    let mut moved = bob.clone();
    moved.tenant_id = t2;
    assert!(
        matches!(
            store.update_user(&moved, &event(t2, "user.update")).await,
            Err(StoreError::NotFound(_))
        ),
        "a user never moves to another tenant"
    );
    let stray = user(tenant(), "carol@example.com", Role::Viewer);
    assert!(matches!(
        store
            .create_user(&stray, &event(stray.tenant_id, "user.create"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        actions(store, t).await,
        ["tenant.create", "user.create", "user.create", "user.update"]
    );
}

pub async fn api_keys_are_found_by_digest_touched_and_revoked(store: &dyn Database) {
    let t = new_tenant(store).await;
    let t2 = new_tenant(store).await;
    let key = api_key(t, &[Scope::SessionsRead, Scope::SessionsRevoke]);
    store
        .create_api_key(&key, &event(t, "api_key.create"))
        .await
        .unwrap();
    assert_eq!(
        store.find_api_key(&key.digest).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.find_api_key(&[0u8; 32]).await.unwrap(), None);
    let mut admin = api_key(t, &[Scope::Admin]);
    admin.created_at = at(3);
    let mut bare = api_key(t, &[]);
    bare.created_at = micros(at(3), 1);
    for k in [&admin, &bare] {
        store
            .create_api_key(k, &event(t, "api_key.create"))
            .await
            .unwrap();
    }
    assert_eq!(
        store.list_api_keys(t).await.unwrap(),
        [key.clone(), admin.clone(), bare.clone()]
    );
    assert!(store.list_api_keys(t2).await.unwrap().is_empty());

    let mut twin = api_key(t2, &[Scope::Admin]);
    twin.digest = key.digest.clone();
    assert!(
        matches!(
            store
                .create_api_key(&twin, &event(t2, "api_key.create"))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "digests are unique across tenants"
    );

    store.touch_api_key(key.id, micros(at(5), 1)).await.unwrap();
    store.touch_api_key(key.id, at(3)).await.unwrap();
    let found = store.find_api_key(&key.digest).await.unwrap().unwrap();
    assert_eq!(
        found.last_used_at,
        Some(micros(at(5), 1)),
        "a late, older touch does not move last use back"
    );
    assert!(matches!(
        store.touch_api_key(Uuid::new_v4(), at(5)).await,
        Err(StoreError::NotFound(_))
    ));

    let revoke = |tenant, id, when| async move {
        store
            .revoke_api_key(tenant, id, when, &event(tenant, "api_key.revoke"))
            .await
            .unwrap()
    };
    assert!(!revoke(t2, key.id, at(6)).await, "another tenant's key");
    assert!(revoke(t, key.id, at(7)).await);
    assert!(!revoke(t, key.id, at(8)).await, "already revoked");
    assert!(!revoke(t, Uuid::new_v4(), at(8)).await, "unknown");
    let revoked = store.find_api_key(&key.digest).await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(at(7)),
        "still found, marked revoked"
    );
    assert_eq!(revoked.last_used_at, Some(micros(at(5), 1)));
    assert_eq!(store.list_api_keys(t).await.unwrap()[0], revoked);

    let stray = api_key(tenant(), &[Scope::SessionsRead]);
    assert!(matches!(
        store
            .create_api_key(&stray, &event(stray.tenant_id, "api_key.create"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        actions(store, t).await,
        [
            "tenant.create",
            "api_key.create",
            "api_key.create",
            "api_key.create",
            "api_key.revoke"
        ],
        "a revocation that changed nothing records nothing"
    );
    assert_eq!(actions(store, t2).await, ["tenant.create"]);
}

pub async fn connectors_are_put_got_listed_and_deleted_with_sealed_secrets(store: &dyn Database) {
    let t = new_tenant(store).await;
    let okta = connector(t, "okta", ConnectorKey::Okta);
    let mut guests = connector(t, "entra-guests", ConnectorKey::Entra);
    guests.secrets = None;
    guests.last_test_at = None;
    guests.last_test_ok = None;
    guests.last_test_detail = None;
    guests.settings = json!({});
    for c in [&okta, &guests] {
        store
            .put_connector(c, &event(t, "connector.put"))
            .await
            .unwrap();
    }
    assert_eq!(
        store.get_connector(t, &okta.name).await.unwrap(),
        Some(okta.clone())
    );
    assert_eq!(
        store.get_connector(t, &guests.name).await.unwrap(),
        Some(guests.clone())
    );
    assert_eq!(store.get_connector(t, &name("miro")).await.unwrap(), None);
    assert_eq!(
        store.list_connectors(t).await.unwrap(),
        [guests.clone(), okta.clone()],
        "by name"
    );

    let mut changed = okta.clone();
    changed.enabled = false;
    changed.settings = json!({"base_url": "https://acme-emea.okta.com"});
    changed.secrets = Some(sealed("ffffffff", 9));
    changed.last_test_ok = Some(false);
    changed.last_test_detail = Some("401 from /api/v1/users/me".into());
    changed.updated_at = at(20);
    store
        .put_connector(&changed, &event(t, "connector.put"))
        .await
        .unwrap();
    assert_eq!(
        store.get_connector(t, &okta.name).await.unwrap(),
        Some(changed.clone())
    );
    let all = store.all_connectors().await.unwrap();
    assert_eq!(
        all.iter().filter(|c| c.tenant_id == t).collect::<Vec<_>>(),
        [&guests, &changed]
    );

    let delete = |n: &'static str| async move {
        store
            .delete_connector(t, &name(n), &event(t, "connector.delete"))
            .await
            .unwrap()
    };
    assert!(delete("entra-guests").await);
    assert!(!delete("entra-guests").await);
    assert_eq!(store.get_connector(t, &guests.name).await.unwrap(), None);
    assert_eq!(store.list_connectors(t).await.unwrap(), [changed]);

    let stray = connector(tenant(), "okta", ConnectorKey::Okta);
    assert!(matches!(
        store
            .put_connector(&stray, &event(stray.tenant_id, "connector.put"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        actions(store, t).await,
        [
            "tenant.create",
            "connector.put",
            "connector.put",
            "connector.put",
            "connector.delete"
        ]
    );
}

pub async fn the_audit_chain_links_every_record_and_verifies_when_read_back(store: &dyn Database) {
    let t = tenant();
    let mut events = Vec::new();
    for i in 0..5i64 {
        let mut e = event(t, &format!("action.{i}"));
        e.at = Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap()
            + Duration::nanoseconds(i * 1_000_001);
        events.push(e);
    }
    events[1].decision = "denied".into();
    events[1].reason = Some("missing scope sessions:revoke — «ticket» 'x'; DROP TABLE y".into());
    events[2].request_id = Some(RequestId::new());
    events[2].source = Some("tines".into());
    events[2].target = Some("bob@example.com".into());
    events[2].result = Some("completed".into());
    events[3].channel = Channel::Mcp;
    events[3].role = None;
    events[3].client_ip = None;
    events[4].detail = json!({
        "zeta": 1, "alpha": [1.5, -0.0, 1e300, null, true], "before": {"b": "x", "a": "y"},
        "big": 18446744073709551615u64, "neg": -9007199254740993i64, "unicode": "Zürich 🚀",
    });

    let mut written = Vec::new();
    for e in &events {
        written.push(store.append_audit(e).await.unwrap());
    }
    for (w, e) in written.iter().zip(&events) {
        assert_eq!(w.event, stored(e.clone()));
    }
    for pair in written.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "numbered without gaps");
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "each links to the one before"
        );
    }
    assert_eq!(
        audit_of(store, t).await,
        written,
        "read back exactly as written"
    );
    let all = assert_chain_intact(store).await;
    assert_eq!(all.last(), written.last());
    assert_eq!(all[0].prev_hash, sever_core::admin::GENESIS_HASH);
}

pub async fn concurrent_audit_appends_never_share_a_place_in_the_chain(store: &dyn Database) {
    let t = tenant();
    let append = |i: u32| async move {
        store
            .append_audit(&event(t, &format!("race.{i}")))
            .await
            .unwrap()
    };
    let (a, b, c, d) = tokio::join!(append(1), append(2), append(3), append(4));
    let (e, f, g, h) = tokio::join!(append(5), append(6), append(7), append(8));
    let seqs: BTreeSet<i64> = [&a, &b, &c, &d, &e, &f, &g, &h]
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs.len(), 8, "eight appends, eight places");
    let prevs: BTreeSet<&str> = [&a, &b, &c, &d, &e, &f, &g, &h]
        .iter()
        .map(|r| r.prev_hash.as_str())
        .collect();
    assert_eq!(prevs.len(), 8, "no two records follow the same one");
    assert_eq!(audit_of(store, t).await.len(), 8);
    assert_chain_intact(store).await;
}

pub async fn audit_listing_filters_by_tenant_and_pages_after_a_seq(store: &dyn Database) {
    let (t1, t2) = (tenant(), tenant());
    for i in 0..105 {
        let t = if i % 7 == 3 { t2 } else { t1 };
        store
            .append_audit(&event(t, &format!("page.{i}")))
            .await
            .unwrap();
    }
    let query = |tenant_id, after_seq, limit| AuditQuery {
        tenant_id,
        after_seq,
        limit,
    };
    let mine = store
        .list_audit(&query(Some(t1), None, 10_000))
        .await
        .unwrap();
    assert_eq!(mine.len(), 90);
    assert!(mine.iter().all(|r| r.event.tenant_id == t1));
    assert!(mine.windows(2).all(|p| p[0].seq < p[1].seq), "ascending");
    let theirs = store.list_audit(&query(Some(t2), None, 0)).await.unwrap();
    assert_eq!(theirs.len(), 15);

    let first = mine[0].seq;
    let everyone = store
        .list_audit(&query(None, Some(first - 1), 0))
        .await
        .unwrap();
    assert_eq!(everyone.len(), 100, "default page");
    assert_eq!(everyone[0], mine[0]);
    let after = store
        .list_audit(&query(Some(t1), Some(mine[9].seq), 5))
        .await
        .unwrap();
    assert_eq!(after, mine[10..15]);
    let rest = store
        .list_audit(&query(None, Some(everyone[99].seq), 0))
        .await
        .unwrap();
    assert!(rest.len() >= 5);
    assert_eq!(rest[0].seq, everyone[99].seq + 1);
}

pub async fn a_mutation_whose_audit_record_is_refused_writes_nothing(store: &dyn Database) {
    let t = new_tenant(store).await;
    let bad = refused(t);
    let before = audit_of(store, t).await;
    let chain = crate::read_audit_chain(store).await.unwrap().len();

    let newcomer = Tenant {
        id: tenant(),
        name: "Never".into(),
        created_at: at(0),
    };
    assert!(store.create_tenant(&newcomer, &bad).await.is_err());
    assert_eq!(store.get_tenant(newcomer.id).await.unwrap(), None);

    let mut on = TenantSettings::new(t, at(1));
    on.revocation_enabled = true;
    on.webhook_secret = Some(sealed("k", 1));
    assert!(store.put_settings(&on, &bad).await.is_err());
    assert!(!store.get_settings(t).await.unwrap().revocation_enabled);

    let alice = user(t, "alice@example.com", Role::Admin);
    assert!(store.create_user(&alice, &bad).await.is_err());
    assert_eq!(store.get_user(alice.id).await.unwrap(), None);
    store
        .create_user(&alice, &event(t, "user.create"))
        .await
        .unwrap();
    let mut demoted = alice.clone();
    demoted.role = Role::Viewer;
    assert!(store.update_user(&demoted, &bad).await.is_err());
    assert_eq!(store.get_user(alice.id).await.unwrap(), Some(alice));

    let key = api_key(t, &[Scope::Admin]);
    assert!(store.create_api_key(&key, &bad).await.is_err());
    assert_eq!(store.find_api_key(&key.digest).await.unwrap(), None);
    store
        .create_api_key(&key, &event(t, "api_key.create"))
        .await
        .unwrap();
    assert!(store.revoke_api_key(t, key.id, at(3), &bad).await.is_err());
    assert_eq!(store.find_api_key(&key.digest).await.unwrap(), Some(key));

    let okta = connector(t, "okta", ConnectorKey::Okta);
    assert!(store.put_connector(&okta, &bad).await.is_err());
    assert_eq!(store.get_connector(t, &okta.name).await.unwrap(), None);
    store
        .put_connector(&okta, &event(t, "connector.put"))
        .await
        .unwrap();
    let mut changed = okta.clone();
    changed.enabled = false;
    assert!(store.put_connector(&changed, &bad).await.is_err());
    assert!(store.delete_connector(t, &okta.name, &bad).await.is_err());
    assert_eq!(
        store.get_connector(t, &okta.name).await.unwrap(),
        Some(okta)
    );

    let req = request(t, "bob@example.com", TWO);
    assert!(store.insert_request(&req, &bad).await.is_err());
    assert!(store.get_request(req.id).await.unwrap().is_none());
    assert!(store.append_audit(&bad).await.is_err());

    let after = audit_of(store, t).await;
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(
        after[before.len()..]
            .iter()
            .map(|r| r.event.action.as_str())
            .collect::<Vec<_>>(),
        ["user.create", "api_key.create", "connector.put"],
        "only the mutations that succeeded were recorded"
    );
    let all = assert_chain_intact(store).await;
    assert_eq!(all.len(), chain + 3);
}

pub async fn idempotency_keys_keep_the_first_answer(store: &dyn Database) {
    let t = new_tenant(store).await;
    let t2 = new_tenant(store).await;
    let key = format!("idem-{}", Uuid::new_v4());
    assert_eq!(store.get_idempotent(t, &key).await.unwrap(), None);
    let first = IdempotentResponse {
        tenant_id: t,
        key: key.clone(),
        body_digest: vec![0xab; 32],
        status: 202,
        response: json!({"request_id": RequestId::new(), "job_status": "running"}),
        created_at: micros(at(0), 9),
    };
    assert!(store.put_idempotent(&first).await.unwrap());
    let retry = IdempotentResponse {
        body_digest: vec![0xcd; 32],
        status: 200,
        response: json!({"request_id": RequestId::new(), "job_status": "completed"}),
        created_at: at(5),
        ..first.clone()
    };
    assert!(!store.put_idempotent(&retry).await.unwrap(), "key taken");
    assert_eq!(
        store.get_idempotent(t, &key).await.unwrap(),
        Some(first.clone())
    );

    let elsewhere = IdempotentResponse {
        tenant_id: t2,
        ..retry.clone()
    };
    assert!(
        store.put_idempotent(&elsewhere).await.unwrap(),
        "keys are per tenant"
    );
    assert_eq!(
        store.get_idempotent(t2, &key).await.unwrap(),
        Some(elsewhere)
    );
    assert_eq!(store.get_idempotent(t, &key).await.unwrap(), Some(first));
    let stray = IdempotentResponse {
        tenant_id: tenant(),
        ..retry
    };
    assert!(matches!(
        store.put_idempotent(&stray).await,
        Err(StoreError::NotFound(_))
    ));
}

// ------------------------------------------------------------------ OAuth

fn oauth_client(created_at: DateTime<Utc>) -> OAuthClient {
    OAuthClient {
        id: format!("mcp_{}", Uuid::new_v4().simple()),
        name: "Claude — \"desktop\"".into(),
        redirect_uris: vec![
            "http://127.0.0.1:33418/callback".into(),
            "cursor://anysphere.cursor-mcp/oauth/callback".into(),
        ],
        metadata: json!({"grant_types": ["authorization_code", "refresh_token"], "software_id": "x"}),
        tenant_id: None,
        approved_by: None,
        approved_at: None,
        created_at,
    }
}

fn digest() -> Vec<u8> {
    [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat()
}

fn oauth_code(client: &OAuthClient, tenant_id: TenantId) -> OAuthCode {
    OAuthCode {
        digest: digest(),
        client_id: client.id.clone(),
        tenant_id,
        user_id: Uuid::new_v4(),
        scopes: vec![Scope::SessionsRevoke, Scope::SessionsRead],
        redirect_uri: client.redirect_uris[0].clone(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        resource: Some("http://127.0.0.1:8080/mcp".into()),
        expires_at: at(60),
        created_at: micros(at(0), 7),
    }
}

fn oauth_token(client: &OAuthClient, tenant_id: TenantId, kind: TokenKind) -> OAuthToken {
    OAuthToken {
        digest: digest(),
        kind,
        client_id: client.id.clone(),
        tenant_id,
        user_id: Uuid::new_v4(),
        scopes: vec![Scope::SessionsRead],
        expires_at: at(3600),
        created_at: micros(at(1), 3),
        revoked_at: None,
    }
}

/// A client registered and approved into `tenant`.
async fn approved_client(store: &dyn Database, tenant: TenantId) -> OAuthClient {
    let mut c = oauth_client(at(0));
    store.create_oauth_client(&c).await.unwrap();
    assert!(store
        .approve_oauth_client(
            &c.id,
            tenant,
            "key:admin",
            at(1),
            &event(tenant, "oauth_client.approve")
        )
        .await
        .unwrap());
    c.tenant_id = Some(tenant);
    c.approved_by = Some("key:admin".into());
    c.approved_at = Some(at(1));
    c
}

pub async fn oauth_clients_stay_pending_until_approved_once_into_one_tenant(store: &dyn Database) {
    let t = new_tenant(store).await;
    let t2 = new_tenant(store).await;
    let pending_before = store.count_pending_oauth_clients().await.unwrap();
    let client = oauth_client(micros(at(0), 1));
    store.create_oauth_client(&client).await.unwrap();
    assert_eq!(
        store.count_pending_oauth_clients().await.unwrap(),
        pending_before + 1
    );
    let got = store.get_oauth_client(&client.id).await.unwrap().unwrap();
    assert_eq!(got, client, "registration metadata round-trips");
    assert!(!got.is_approved());
    assert!(matches!(
        store.create_oauth_client(&client).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store
        .get_oauth_client("mcp_nobody")
        .await
        .unwrap()
        .is_none());
    assert!(
        store.list_oauth_clients(t).await.unwrap().is_empty(),
        "a pending client belongs to no tenant"
    );

    let approve = |tenant, id: String| async move {
        store
            .approve_oauth_client(
                &id,
                tenant,
                "key:admin",
                at(2),
                &event(tenant, "oauth_client.approve"),
            )
            .await
            .unwrap()
    };
    assert!(approve(t, client.id.clone()).await);
    assert_eq!(
        store.count_pending_oauth_clients().await.unwrap(),
        pending_before,
        "approved clients are not pending"
    );
    assert!(
        !approve(t2, client.id.clone()).await,
        "approved once, into one tenant"
    );
    assert!(!approve(t, client.id.clone()).await);
    assert!(!approve(t, "mcp_nobody".into()).await);
    let approved = store.get_oauth_client(&client.id).await.unwrap().unwrap();
    assert!(approved.is_approved());
    assert_eq!(approved.tenant_id, Some(t));
    assert_eq!(approved.approved_by.as_deref(), Some("key:admin"));
    assert_eq!(approved.approved_at, Some(at(2)));
    assert_eq!(store.list_oauth_clients(t).await.unwrap(), [approved]);
    assert!(store.list_oauth_clients(t2).await.unwrap().is_empty());
    assert_eq!(
        actions(store, t).await,
        ["tenant.create", "oauth_client.approve"]
    );
    assert_eq!(
        actions(store, t2).await,
        ["tenant.create"],
        "refusals write nothing"
    );

    let stray = oauth_client(at(0));
    store.create_oauth_client(&stray).await.unwrap();
    assert!(
        matches!(
            store
                .approve_oauth_client(
                    &stray.id,
                    tenant(),
                    "key:x",
                    at(2),
                    &event(t, "oauth_client.approve")
                )
                .await,
            Err(StoreError::NotFound(_))
        ),
        "approving into an unknown tenant"
    );
    assert!(!store
        .get_oauth_client(&stray.id)
        .await
        .unwrap()
        .unwrap()
        .is_approved());
}

pub async fn an_authorization_code_can_be_taken_only_once(store: &dyn Database) {
    let t = new_tenant(store).await;
    let client = approved_client(store, t).await;
    let code = oauth_code(&client, t);
    store
        .put_oauth_code(&code, &event(t, "oauth.authorize"))
        .await
        .unwrap();
    let mut other = oauth_code(&client, t);
    other.resource = None;
    store
        .put_oauth_code(&other, &event(t, "oauth.authorize"))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.take_oauth_code(&code.digest),
        store.take_oauth_code(&code.digest)
    );
    let taken: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(
        taken,
        std::slice::from_ref(&code),
        "exactly one of two concurrent takers gets it"
    );
    assert_eq!(store.take_oauth_code(&code.digest).await.unwrap(), None);
    assert_eq!(
        store.take_oauth_code(&other.digest).await.unwrap(),
        Some(other)
    );
    assert_eq!(store.take_oauth_code(&digest()).await.unwrap(), None);
    assert!(store.put_oauth_code(&code, &refused(t)).await.is_err());
    assert_eq!(
        store.take_oauth_code(&code.digest).await.unwrap(),
        None,
        "a code whose audit record is refused is not stored"
    );
    assert_eq!(
        actions(store, t).await,
        [
            "tenant.create",
            "oauth_client.approve",
            "oauth.authorize",
            "oauth.authorize"
        ]
    );
}

pub async fn a_refresh_token_rotates_once_and_tokens_can_be_revoked(store: &dyn Database) {
    let t = new_tenant(store).await;
    let client = approved_client(store, t).await;
    let access = oauth_token(&client, t, TokenKind::Access);
    let refresh = oauth_token(&client, t, TokenKind::Refresh);
    store
        .put_oauth_tokens(&[access.clone(), refresh.clone()], &event(t, "oauth.token"))
        .await
        .unwrap();
    assert_eq!(
        store.find_oauth_token(&access.digest).await.unwrap(),
        Some(access.clone())
    );
    assert!(access.is_live(at(5)));
    assert!(!access.is_live(at(3600)));
    assert_eq!(store.find_oauth_token(&digest()).await.unwrap(), None);

    let next = [
        oauth_token(&client, t, TokenKind::Access),
        oauth_token(&client, t, TokenKind::Refresh),
    ];
    let rotate = |d: Vec<u8>, when, issued: Vec<OAuthToken>| async move {
        store
            .rotate_oauth_refresh_token(&d, when, &issued, &event(t, "oauth.refresh"))
            .await
            .unwrap()
    };
    assert!(
        !rotate(access.digest.clone(), at(10), vec![]).await,
        "an access token does not refresh"
    );
    assert!(
        !rotate(refresh.digest.clone(), at(3600), vec![]).await,
        "an expired refresh token"
    );
    let other = [
        oauth_token(&client, t, TokenKind::Access),
        oauth_token(&client, t, TokenKind::Refresh),
    ];
    let (a, b) = tokio::join!(
        rotate(refresh.digest.clone(), at(10), next.to_vec()),
        rotate(refresh.digest.clone(), at(10), other.to_vec())
    );
    assert!(a ^ b, "exactly one of two concurrent refreshes wins");
    let (won, lost) = if a { (&next, &other) } else { (&other, &next) };
    for tok in won {
        assert_eq!(
            store.find_oauth_token(&tok.digest).await.unwrap().as_ref(),
            Some(tok)
        );
    }
    for tok in lost {
        assert_eq!(
            store.find_oauth_token(&tok.digest).await.unwrap(),
            None,
            "the loser stored nothing"
        );
    }
    let used = store
        .find_oauth_token(&refresh.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.revoked_at, Some(at(10)));
    assert!(
        !rotate(refresh.digest.clone(), at(11), vec![]).await,
        "used once"
    );

    assert!(
        !store
            .revoke_oauth_token("mcp_other", &access.digest, at(12))
            .await
            .unwrap(),
        "another client's token"
    );
    assert!(store
        .revoke_oauth_token(&client.id, &access.digest, at(12))
        .await
        .unwrap());
    assert!(!store
        .revoke_oauth_token(&client.id, &access.digest, at(13))
        .await
        .unwrap());
    let revoked = store
        .find_oauth_token(&access.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(12)));
    assert!(!revoked.is_live(at(12)));
    assert_eq!(
        actions(store, t).await,
        [
            "tenant.create",
            "oauth_client.approve",
            "oauth.token",
            "oauth.refresh"
        ]
    );
}

pub async fn deleting_an_oauth_client_removes_its_codes_and_tokens_and_is_audited(
    store: &dyn Database,
) {
    let t = new_tenant(store).await;
    let t2 = new_tenant(store).await;
    let client = approved_client(store, t).await;
    let keep = approved_client(store, t).await;
    let code = oauth_code(&client, t);
    store
        .put_oauth_code(&code, &event(t, "oauth.authorize"))
        .await
        .unwrap();
    let tokens = [
        oauth_token(&client, t, TokenKind::Access),
        oauth_token(&client, t, TokenKind::Refresh),
    ];
    store
        .put_oauth_tokens(&tokens, &event(t, "oauth.token"))
        .await
        .unwrap();
    let kept = oauth_token(&keep, t, TokenKind::Access);
    store
        .put_oauth_tokens(std::slice::from_ref(&kept), &event(t, "oauth.token"))
        .await
        .unwrap();

    let delete = |tenant, id: String| async move {
        store
            .delete_oauth_client(tenant, &id, &event(tenant, "oauth_client.delete"))
            .await
            .unwrap()
    };
    assert!(
        !delete(t2, client.id.clone()).await,
        "another tenant's client"
    );
    assert!(store
        .find_oauth_token(&tokens[0].digest)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .delete_oauth_client(t, &client.id, &refused(t))
        .await
        .is_err());
    assert!(
        store
            .find_oauth_token(&tokens[0].digest)
            .await
            .unwrap()
            .is_some(),
        "a delete whose audit record is refused deletes nothing"
    );
    assert!(delete(t, client.id.clone()).await);
    assert!(!delete(t, client.id.clone()).await);
    assert!(store.get_oauth_client(&client.id).await.unwrap().is_none());
    for tok in &tokens {
        assert_eq!(store.find_oauth_token(&tok.digest).await.unwrap(), None);
    }
    assert_eq!(store.take_oauth_code(&code.digest).await.unwrap(), None);
    assert_eq!(
        store.find_oauth_token(&kept.digest).await.unwrap(),
        Some(kept)
    );
    assert_eq!(store.list_oauth_clients(t).await.unwrap(), [keep]);
    assert_eq!(
        actions(store, t).await.last().map(String::as_str),
        Some("oauth_client.delete")
    );
    let pending = oauth_client(at(0));
    store.create_oauth_client(&pending).await.unwrap();
    assert!(
        !delete(t, pending.id.clone()).await,
        "a pending client is no tenant's to delete"
    );
}

pub async fn stale_pending_clients_and_expired_codes_and_tokens_are_purged(store: &dyn Database) {
    let t = new_tenant(store).await;
    // Far before every other behaviour's rows, so a shared store keeps them.
    let long_ago = at(-10_000_000);
    let stale = oauth_client(long_ago);
    let fresh = oauth_client(micros(long_ago, 2_000_000));
    for c in [&stale, &fresh] {
        store.create_oauth_client(c).await.unwrap();
    }
    let client = approved_client(store, t).await;
    let mut expired = oauth_token(&client, t, TokenKind::Access);
    expired.expires_at = long_ago;
    let live = oauth_token(&client, t, TokenKind::Refresh);
    let mut old_code = oauth_code(&client, t);
    old_code.expires_at = long_ago;
    store
        .put_oauth_tokens(&[expired.clone(), live.clone()], &event(t, "oauth.token"))
        .await
        .unwrap();
    store
        .put_oauth_code(&old_code, &event(t, "oauth.authorize"))
        .await
        .unwrap();

    let gone = store
        .purge_stale_oauth(micros(long_ago, 1_000_000), micros(long_ago, 1))
        .await
        .unwrap();
    assert_eq!(
        gone, 3,
        "the stale pending client, the expired token and the expired code"
    );
    assert!(store.get_oauth_client(&stale.id).await.unwrap().is_none());
    assert!(store.get_oauth_client(&fresh.id).await.unwrap().is_some());
    assert!(
        store.get_oauth_client(&client.id).await.unwrap().is_some(),
        "approved clients stay"
    );
    assert_eq!(store.find_oauth_token(&expired.digest).await.unwrap(), None);
    assert_eq!(
        store.find_oauth_token(&live.digest).await.unwrap(),
        Some(live)
    );
    assert_eq!(store.take_oauth_code(&old_code.digest).await.unwrap(), None);
}

/// Two records appended, for the backend tests that then try to change them.
#[cfg(test)]
async fn two_records(store: &dyn Database) -> Vec<AuditRecord> {
    let t = tenant();
    for action in ["first", "second"] {
        store.append_audit(&event(t, action)).await.unwrap();
    }
    assert_chain_intact(store).await
}

#[cfg(test)]
mod on_sqlite {
    use crate::SqliteStore;
    use sever_core::Database;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: SqliteStore,
    }

    impl Fixture {
        fn store(&self) -> &dyn Database {
            &self.store
        }
        async fn teardown(self) {
            self.store.close().await;
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("sever.db").to_str().unwrap())
            .await
            .expect("opening a fresh SQLite store");
        Fixture { _dir: dir, store }
    }

    crate::store_conformance_tests!(fixture);

    #[tokio::test]
    async fn every_behaviour_also_holds_on_one_shared_store() {
        let fx = fixture().await;
        super::run_all(fx.store()).await;
        super::run_all(fx.store()).await;
        fx.teardown().await;
    }

    #[test]
    fn the_behaviour_list_names_every_behaviour_once() {
        let mut names = super::BEHAVIOURS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), super::BEHAVIOURS.len());
        assert!(names.len() >= 30);
    }

    #[tokio::test]
    async fn the_database_refuses_to_change_or_remove_audit_records() {
        let fx = fixture().await;
        let before = super::two_records(fx.store()).await;
        for sql in [
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
            "UPDATE audit_log SET seq = seq + 100",
            "DELETE FROM audit_log WHERE seq = 2",
            "DELETE FROM audit_log",
        ] {
            let err = sqlx::query(sql).execute(&fx.store.pool).await.unwrap_err();
            assert!(
                err.to_string().contains("audit_log is append-only"),
                "{sql}: {err}"
            );
        }
        assert_eq!(super::assert_chain_intact(fx.store()).await, before);
        fx.teardown().await;
    }

    #[tokio::test]
    async fn verification_finds_a_record_edited_behind_the_triggers_back() {
        let fx = fixture().await;
        super::two_records(fx.store()).await;
        let pool = &fx.store.pool;
        sqlx::query("DROP TRIGGER audit_log_no_update")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET decision = 'denied' WHERE seq = 1")
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(
            crate::verify_audit(fx.store()).await.unwrap(),
            Err(sever_core::admin::ChainBreak::Edited { seq: 1 })
        );
        sqlx::query("DROP TRIGGER audit_log_no_delete")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_log WHERE seq = 1")
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(
            crate::verify_audit(fx.store()).await.unwrap(),
            Err(sever_core::admin::ChainBreak::Gap { after: 0, seq: 2 })
        );
        fx.teardown().await;
    }
}

#[cfg(test)]
mod on_postgres {
    use crate::PgStore;
    use sever_core::Database;

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    struct Fixture {
        store: PgStore,
        schema: String,
    }

    impl Fixture {
        fn store(&self) -> &dyn Database {
            &self.store
        }
        /// Drop the test's schema; a failed test leaves it for inspection.
        async fn teardown(self) {
            sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
                .execute(&self.store.pool)
                .await
                .expect("dropping the test schema");
            self.store.close().await;
        }
    }

    /// A fresh schema in the test database. Never skipped: without a server
    /// the tests fail and say how to point them at one.
    async fn fixture() -> Fixture {
        let url =
            std::env::var("SEVER_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let schema = format!("sever_test_{}", uuid::Uuid::new_v4().simple());
        match PgStore::connect_in_schema(&url, &schema).await {
            Ok(store) => Fixture { store, schema },
            Err(e) => panic!(
                "the PostgreSQL store tests need a PostgreSQL server where this user may \
                 create schemas. Tried {} ({e}). Start one, or set SEVER_TEST_DATABASE_URL \
                 to postgres://USER[:PASSWORD]@HOST:PORT/DB (default {DEFAULT_URL}).",
                crate::redact(&url)
            ),
        }
    }

    crate::store_conformance_tests!(fixture);

    #[tokio::test]
    async fn every_behaviour_also_holds_on_one_shared_store() {
        let fx = fixture().await;
        super::run_all(fx.store()).await;
        super::run_all(fx.store()).await;
        fx.teardown().await;
    }

    #[tokio::test]
    async fn the_database_refuses_to_change_or_remove_audit_records() {
        let fx = fixture().await;
        let before = super::two_records(fx.store()).await;
        for sql in [
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
            "UPDATE audit_log SET seq = seq + 100",
            "DELETE FROM audit_log WHERE seq = 2",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            // Refused even when it would touch nothing.
            "DELETE FROM audit_log WHERE seq < 0",
        ] {
            let err = sqlx::query(sql).execute(&fx.store.pool).await.unwrap_err();
            assert!(
                err.to_string().contains("audit_log is append-only"),
                "{sql}: {err}"
            );
        }
        assert_eq!(super::assert_chain_intact(fx.store()).await, before);
        fx.teardown().await;
    }
}
