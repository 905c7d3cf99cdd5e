//! Each rule allows what it should and refuses what it should; the seed's
//! example behaves as the seed says; the built-in defaults parse; stored
//! policies are audited and cannot lock their author out.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::TimeZone;

use super::*;
use crate::approvals::{Approval, ApprovalQuery, ApprovalState, Settlement};
use crate::domain::NewRequest;

pub(super) fn t(s: i64) -> DateTime<Utc> {
    // A Tuesday, 10:00 UTC.
    Utc.with_ymd_and_hms(2025, 3, 4, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

pub(super) fn caller(grant: &str, scopes: &[Scope], channel: Channel) -> Caller {
    Caller {
        tenant_id: TenantId::DEFAULT,
        grant: grant.into(),
        person: None,
        role: None,
        scopes: scopes.to_vec(),
        channel,
    }
}

pub(super) fn revoker(grant: &str) -> Caller {
    caller(
        grant,
        &[Scope::SessionsRevoke, Scope::SessionsRead],
        Channel::Api,
    )
}

pub(super) fn revoke(caller: Caller, users: &[&str]) -> RequestContext {
    RequestContext {
        caller,
        action: Action::RevokeSessions,
        args: ActionArgs {
            usernames: users.iter().map(|u| Username::parse(u).unwrap()).collect(),
            integration_targets: None,
            connectors: vec!["okta".into(), "entra".into()],
            reason: Some("account takeover, INC-1".into()),
        },
    }
}

fn act(caller: Caller, action: Action) -> RequestContext {
    RequestContext {
        caller,
        action,
        args: ActionArgs::default(),
    }
}

async fn decide(p: &Policy, ctx: &RequestContext, counters: &MemoryCounters, at: i64) -> Decision {
    p.evaluate(ctx, counters, t(at)).await.unwrap().decision
}

fn is_deny(d: &Decision, needle: &str) -> bool {
    matches!(d, Decision::Deny { reasons } if reasons.iter().any(|r| r.contains(needle)))
}

fn is_approval(d: &Decision, needle: &str) -> bool {
    matches!(d, Decision::RequireApproval { reasons } if reasons.iter().any(|r| r.contains(needle)))
}

pub(super) const SEED: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "revoke_sessions": {
      "limits": [
        {
          "counter": "revoke_sessions_rate",
          "window": "minute",
          "max": 10,
          "scope": "grant"
        }
      ]
    }
  }
}"#;

#[tokio::test]
async fn the_seed_example_allows_ten_revocations_a_minute_per_grant_and_denies_everything_else() {
    let p = Policy::from_json(SEED).unwrap();
    let c = MemoryCounters::new();
    let agent = revoke(revoker("mcp:agent-1"), &["bob@example.com"]);
    for i in 0..10 {
        assert_eq!(decide(&p, &agent, &c, i).await, Decision::Allow, "call {i}");
    }
    let eleventh = p.evaluate(&agent, &c, t(30)).await.unwrap();
    assert!(
        is_deny(
            &eleventh.decision,
            "at most 10 per minute per grant mcp:agent-1"
        ),
        "{eleventh:?}"
    );
    assert_eq!(eleventh.retry_at, Some(t(60)));
    // Another grant has its own budget; the next minute starts afresh.
    let other = revoke(revoker("key:2"), &["bob@example.com"]);
    assert_eq!(decide(&p, &other, &c, 30).await, Decision::Allow);
    assert_eq!(decide(&p, &agent, &c, 60).await, Decision::Allow);
    // Everything else is denied, whatever the scope.
    let admin = caller("key:admin", &Scope::ALL, Channel::Api);
    for action in Action::ALL
        .iter()
        .copied()
        .filter(|a| *a != Action::RevokeSessions)
    {
        let d = decide(&p, &act(admin.clone(), action), &c, 61).await;
        assert!(is_deny(&d, "the default is deny"), "{action}: {d:?}");
    }
}

#[tokio::test]
async fn scopes_come_first_and_no_policy_grants_a_missing_one() {
    let p = Policy::permissive();
    let c = MemoryCounters::new();
    let viewer = caller("key:v", &[Scope::SessionsRead], Channel::Api);
    let d = decide(&p, &revoke(viewer.clone(), &["bob@example.com"]), &c, 0).await;
    assert!(is_deny(&d, "needs the 'sessions:revoke' scope"), "{d:?}");
    assert_eq!(
        decide(&p, &act(viewer, Action::GetRevocationStatus), &c, 0).await,
        Decision::Allow
    );
    let person = Caller {
        role: Some(Role::Viewer),
        scopes: vec![],
        ..caller("user:v@example.com", &[], Channel::Ui)
    };
    assert!(is_deny(
        &decide(&p, &act(person, Action::ApproveRequest), &c, 0).await,
        "'admin'"
    ));
    let analyst = Caller {
        role: Some(Role::Analyst),
        ..caller("user:a@example.com", &[], Channel::Ui)
    };
    assert_eq!(
        decide(&p, &revoke(analyst, &["bob@example.com"]), &c, 0).await,
        Decision::Allow
    );
}

#[tokio::test]
async fn a_tool_can_be_denied_or_always_need_approval_under_a_permissive_default() {
    let p = Policy::from_json(
        r#"{"version": "1", "default": "allow", "tools": {
            "bulk_revoke": {"action": "deny"},
            "revoke_sessions": {"action": "require_approval"}}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    let d = decide(&p, &act(revoker("k"), Action::BulkRevoke), &c, 0).await;
    assert!(is_deny(&d, "bulk_revoke is denied by the policy"), "{d:?}");
    let d = decide(&p, &revoke(revoker("k"), &["bob@example.com"]), &c, 0).await;
    assert!(is_approval(&d, "always needs approval"), "{d:?}");
    assert_eq!(
        decide(&p, &act(revoker("k"), Action::ListConnectors), &c, 0).await,
        Decision::Allow
    );
}

#[tokio::test]
async fn every_counter_scope_counts_what_it_names() {
    let p = Policy::from_json(
        r#"{"version": "1", "default": "deny", "tools": {"revoke_sessions": {"limits": [
            {"counter": "t", "window": "hour", "max": 2, "scope": "tenant"},
            {"counter": "p", "window": "hour", "max": 1, "scope": "target"},
            {"counter": "c", "window": "hour", "max": 3, "scope": "connector"}]}}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    assert_eq!(
        decide(&p, &revoke(revoker("a"), &["x@example.com"]), &c, 0).await,
        Decision::Allow
    );
    // Same person again: the target counter refuses (and nothing is counted).
    let d = decide(&p, &revoke(revoker("b"), &["X@example.com"]), &c, 1).await;
    assert!(is_deny(&d, "per target x@example.com"), "{d:?}");
    assert_eq!(
        decide(&p, &revoke(revoker("b"), &["y@example.com"]), &c, 2).await,
        Decision::Allow
    );
    // The tenant's budget of 2 is used up, whoever calls.
    let d = decide(&p, &revoke(revoker("c"), &["z@example.com"]), &c, 3).await;
    assert!(is_deny(&d, "per tenant"), "{d:?}");
    // Connectors: okta and entra have been reached twice each; a third tenant
    // is unaffected by this tenant's counts.
    let mut other = revoke(revoker("a"), &["x@example.com"]);
    other.caller.tenant_id = TenantId(uuid::Uuid::new_v4());
    assert_eq!(decide(&p, &other, &c, 4).await, Decision::Allow);

    let g = Policy::from_json(
        r#"{"version": "1", "tools": {"preview_revocation": {"limits": [
            {"counter": "g", "window": "second", "max": 1, "scope": "global"}]}}}"#,
    )
    .unwrap();
    let mut ctx = act(revoker("a"), Action::PreviewRevocation);
    assert_eq!(decide(&g, &ctx, &c, 10).await, Decision::Allow);
    ctx.caller.tenant_id = TenantId(uuid::Uuid::new_v4());
    assert!(is_deny(&decide(&g, &ctx, &c, 10).await, "per global"));
    assert_eq!(
        decide(&g, &ctx, &c, 11).await,
        Decision::Allow,
        "the next second"
    );
}

#[tokio::test]
async fn limits_sharing_a_counter_share_one_count_across_actions() {
    let p = Policy::from_json(
        r#"{"version": "1", "tools": {
            "revoke_sessions": {"limits": [{"counter": "revocations", "window": "minute", "max": 2}]},
            "bulk_revoke": {"limits": [{"counter": "revocations", "window": "minute", "max": 2}]}}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    assert_eq!(
        decide(&p, &revoke(revoker("a"), &["x@example.com"]), &c, 0).await,
        Decision::Allow
    );
    let mut bulk = revoke(revoker("a"), &["y@example.com", "z@example.com"]);
    bulk.action = Action::BulkRevoke;
    assert_eq!(decide(&p, &bulk, &c, 1).await, Decision::Allow);
    assert!(is_deny(
        &decide(&p, &revoke(revoker("a"), &["w@example.com"]), &c, 2).await,
        "revocations"
    ));
}

#[tokio::test]
async fn argument_rules_check_domains_targets_and_reasons() {
    let p = Policy::from_json(
        r#"{"version": "1", "tools": {"revoke_sessions": {"arguments": {
            "username_domains": ["example.com", "*.example.org"],
            "integration_targets": ["okta", "entra"],
            "reason": {"required": true, "min_length": 10}}}}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    let ok = revoke(revoker("a"), &["bob@example.com", "eve@eu.example.org"]);
    assert_eq!(decide(&p, &ok, &c, 0).await, Decision::Allow);
    for (users, needle) in [
        (
            &["bob@evil.com"][..],
            "bob@evil.com is not an email in an allowed domain",
        ),
        (&["bob"][..], "bob is not an email"),
        (&["eve@example.org"][..], "eve@example.org is not"),
    ] {
        assert!(
            is_deny(
                &decide(&p, &revoke(revoker("a"), users), &c, 0).await,
                needle
            ),
            "{users:?}"
        );
    }
    let mut slack = ok.clone();
    slack.args.connectors = vec!["okta".into(), "slack_enterprise".into()];
    assert!(is_deny(
        &decide(&p, &slack, &c, 0).await,
        "connector slack_enterprise may not be targeted"
    ));
    let mut unknown = ok.clone();
    unknown.args.connectors.clear();
    assert!(is_deny(
        &decide(&p, &unknown, &c, 0).await,
        "integration_targets must be named"
    ));
    unknown.args.integration_targets = Some(vec!["okta".into()]);
    assert_eq!(
        decide(&p, &unknown, &c, 0).await,
        Decision::Allow,
        "named targets suffice"
    );
    let mut short = ok.clone();
    short.args.reason = Some("  oops ".into());
    assert!(is_deny(
        &decide(&p, &short, &c, 0).await,
        "at least 10 characters (it has 4)"
    ));
    short.args.reason = None;
    assert!(is_deny(
        &decide(&p, &short, &c, 0).await,
        "a reason is required"
    ));
    // Every problem is reported, not only the first.
    let mut all = revoke(revoker("a"), &["x@evil.com"]);
    all.args.reason = None;
    all.args.connectors = vec!["miro".into()];
    match decide(&p, &all, &c, 0).await {
        Decision::Deny { reasons } => assert_eq!(reasons.len(), 3, "{reasons:?}"),
        d => panic!("{d:?}"),
    }
}

#[tokio::test]
async fn approval_conditions_each_hold_back_what_they_name() {
    let p = Policy::from_json(
        r#"{"version": "1",
            "watch_list": ["ceo@example.com", "*@board.example.com"],
            "tools": {
              "revoke_sessions": {"require_approval": {
                "channels": ["mcp"], "target_on_watch_list": true,
                "outside_working_hours": {"start": "08:00", "end": "18:00", "utc_offset": "+01:00"}}},
              "bulk_revoke": {"require_approval": {"more_than_people": 2}}}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    // Tuesday 10:00 UTC is 11:00 at +01:00: working hours.
    let api = revoke(revoker("a"), &["bob@example.com"]);
    assert_eq!(decide(&p, &api, &c, 0).await, Decision::Allow);
    let mcp = revoke(
        caller("mcp:agent", &[Scope::SessionsRevoke], Channel::Mcp),
        &["bob@example.com"],
    );
    assert!(is_approval(
        &decide(&p, &mcp, &c, 0).await,
        "calls over mcp need approval"
    ));
    let vip = revoke(revoker("a"), &["Ann@Board.example.com"]);
    assert!(is_approval(
        &decide(&p, &vip, &c, 0).await,
        "ann@board.example.com is on the watch list"
    ));
    // 18:00 at +01:00 is outside.
    assert!(is_approval(
        &decide(&p, &api, &c, 7 * 3600).await,
        "outside working hours"
    ));
    let mut bulk = revoke(revoker("a"), &["a@example.com", "b@example.com"]);
    bulk.action = Action::BulkRevoke;
    assert_eq!(decide(&p, &bulk, &c, 0).await, Decision::Allow);
    bulk.args
        .usernames
        .push(Username::parse("c@example.com").unwrap());
    assert!(is_approval(
        &decide(&p, &bulk, &c, 0).await,
        "3 people in one run is more than 2"
    ));
}

#[tokio::test]
async fn protected_accounts_are_refused_or_held_for_approval_and_the_callers_own_account_too() {
    let p = Policy::from_json(
        r#"{"version": "1", "default": "allow", "protected_accounts": [
            {"accounts": ["breakglass-*@example.com", "svc-okta@example.com"], "action": "refuse"},
            {"callers_own_account": true, "action": "require_approval"}]}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    let d = decide(
        &p,
        &revoke(revoker("a"), &["BreakGlass-2@example.com"]),
        &c,
        0,
    )
    .await;
    assert!(
        is_deny(
            &d,
            "breakglass-2@example.com (matches breakglass-*@example.com) is a protected account"
        ),
        "{d:?}"
    );
    assert!(is_deny(
        &decide(&p, &revoke(revoker("a"), &["svc-okta@example.com"]), &c, 0).await,
        "protected"
    ));
    let me = Caller {
        person: Some("alice@example.com".into()),
        ..revoker("key:alice")
    };
    let d = decide(&p, &revoke(me.clone(), &["alice@example.com"]), &c, 0).await;
    assert!(is_approval(&d, "the caller's own account"), "{d:?}");
    let signed_in = revoker("user:alice@example.com");
    assert!(is_approval(
        &decide(&p, &revoke(signed_in, &["alice@example.com"]), &c, 0).await,
        "own account"
    ));
    assert_eq!(
        decide(&p, &revoke(me, &["bob@example.com"]), &c, 0).await,
        Decision::Allow
    );
    // Previews of a protected account are not revocations.
    let mut preview = revoke(revoker("a"), &["breakglass-1@example.com"]);
    preview.action = Action::PreviewRevocation;
    assert_eq!(decide(&p, &preview, &c, 0).await, Decision::Allow);
}

#[tokio::test]
async fn blast_radius_caps_distinct_people_per_grant_and_per_tenant() {
    let p = Policy::from_json(
        r#"{"version": "1", "default": "allow", "blast_radius": {"per_grant": 2, "per_tenant": 3}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    let a = |u: &str| revoke(revoker("a"), &[u]);
    assert_eq!(
        decide(&p, &a("p1@example.com"), &c, 0).await,
        Decision::Allow
    );
    assert_eq!(
        decide(&p, &a("p2@example.com"), &c, 1).await,
        Decision::Allow
    );
    assert_eq!(
        decide(&p, &a("p1@example.com"), &c, 2).await,
        Decision::Allow,
        "p1 again is not new"
    );
    let d = decide(&p, &a("p3@example.com"), &c, 3).await;
    assert!(
        is_deny(&d, "at most 2 distinct people per hour for a"),
        "{d:?}"
    );
    let b = |u: &str| revoke(revoker("b"), &[u]);
    assert_eq!(
        decide(&p, &b("p3@example.com"), &c, 4).await,
        Decision::Allow
    );
    assert!(is_deny(
        &decide(&p, &b("p4@example.com"), &c, 5).await,
        "in the tenant"
    ));
    assert_eq!(
        decide(&p, &b("p4@example.com"), &c, 3600).await,
        Decision::Allow,
        "next hour"
    );
    // A bulk run that would pass the cap is refused whole.
    let mut bulk = revoke(
        revoker("c"),
        &[
            "q1@example.com",
            "q2@example.com",
            "q3@example.com",
            "q4@example.com",
        ],
    );
    bulk.action = Action::BulkRevoke;
    assert!(is_deny(
        &decide(&p, &bulk, &c, 3601).await,
        "distinct people"
    ));
    let still = p.explain(&b("q1@example.com"), &c, t(3602)).await.unwrap();
    assert_eq!(still.decision, Decision::Allow, "{still:?}");
}

#[tokio::test]
async fn a_cooldown_keeps_the_same_person_from_being_revoked_again_too_soon() {
    let p =
        Policy::from_json(r#"{"version": "1", "tools": {"revoke_sessions": {"cooldown": "10m"}}}"#)
            .unwrap();
    let c = MemoryCounters::new();
    let bob = revoke(revoker("a"), &["bob@example.com"]);
    assert_eq!(decide(&p, &bob, &c, 0).await, Decision::Allow);
    let again = p
        .evaluate(&revoke(revoker("b"), &["BOB@example.com"]), &c, t(599))
        .await
        .unwrap();
    assert!(
        is_deny(
            &again.decision,
            "bob@example.com may be revoked once per 10m"
        ),
        "{again:?}"
    );
    assert_eq!(again.retry_at, Some(t(599 + 600)));
    assert_eq!(
        decide(&p, &revoke(revoker("a"), &["eve@example.com"]), &c, 1).await,
        Decision::Allow
    );
    assert_eq!(decide(&p, &bob, &c, 600).await, Decision::Allow);
}

#[tokio::test]
async fn a_refused_call_uses_no_budget_and_explain_changes_nothing() {
    let p = Policy::from_json(
        r#"{"version": "1", "tools": {"revoke_sessions": {
            "limits": [{"counter": "r", "window": "minute", "max": 1}],
            "arguments": {"username_domains": ["example.com"]}}}}"#,
    )
    .unwrap();
    let c = MemoryCounters::new();
    let bad = revoke(revoker("a"), &["x@evil.com"]);
    let e = p.evaluate(&bad, &c, t(0)).await.unwrap();
    assert!(is_deny(&e.decision, "evil.com"));
    assert!(e
        .trace
        .iter()
        .any(|s| s.verdict == Verdict::Skip && s.detail.contains("not counted")));
    let good = revoke(revoker("a"), &["x@example.com"]);
    for _ in 0..3 {
        let x = p.explain(&good, &c, t(1)).await.unwrap();
        assert_eq!(x.decision, Decision::Allow);
        assert!(
            x.trace.iter().any(|s| s.detail.contains("0 of 1 used")),
            "{x:#?}"
        );
    }
    assert_eq!(decide(&p, &good, &c, 2).await, Decision::Allow);
    let x = p.explain(&good, &c, t(3)).await.unwrap();
    assert!(is_deny(&x.decision, "limit reached"), "{x:?}");
    assert!(
        x.trace.iter().any(|s| s.detail.contains("1 of 1 used")),
        "{x:#?}"
    );
}

#[tokio::test]
async fn the_trace_lists_every_rule_consulted_in_order() {
    let p = Policy::from_json(
        r#"{"version": "1", "default": "deny",
            "protected_accounts": [{"accounts": ["root@example.com"]}],
            "blast_radius": {"per_tenant": 10},
            "tools": {"revoke_sessions": {
              "limits": [{"counter": "r", "window": "minute", "max": 10, "scope": "grant"}],
              "require_approval": {"channels": ["mcp"]},
              "arguments": {"reason": {"min_length": 3}},
              "cooldown": "1m"}}}"#,
    )
    .unwrap();
    let e = p
        .explain(
            &revoke(revoker("key:1"), &["bob@example.com"]),
            &MemoryCounters::new(),
            t(0),
        )
        .await
        .unwrap();
    let rules: Vec<&str> = e.trace.iter().map(|s| s.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "scope",
            "tools.revoke_sessions",
            "tools.revoke_sessions.arguments.reason",
            "tools.revoke_sessions.require_approval.channels",
            "protected_accounts[0]",
            "tools.revoke_sessions.limits[0]",
            "tools.revoke_sessions.cooldown",
            "blast_radius.per_tenant",
        ]
    );
    assert!(e.trace.iter().all(|s| s.verdict == Verdict::Pass), "{e:#?}");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["decision"], "allow");
    assert_eq!(json["trace"][0]["verdict"], "pass");
}

#[test]
fn both_built_in_defaults_parse_and_the_server_default_keeps_admin_actions_open() {
    assert_eq!(Policy::permissive().document().default, DefaultRule::Allow);
    let s = Policy::server_default();
    assert_eq!(s.document().default, DefaultRule::Deny);
    for a in Action::ALL {
        assert!(
            s.document().tools.contains_key(a.as_str()),
            "{a} is not in the server default"
        );
    }
    assert_eq!(s.approval_ttl(), chrono::Duration::minutes(30));
    assert_eq!(Policy::deny_all().document().default, DefaultRule::Deny);
}

#[tokio::test]
async fn the_server_default_rate_limits_revocations_per_key() {
    let p = Policy::server_default();
    let c = MemoryCounters::new();
    for i in 0..10 {
        let ctx = revoke(revoker("key:1"), &[&format!("p{i}@example.com")]);
        assert_eq!(decide(&p, &ctx, &c, i).await, Decision::Allow, "{i}");
    }
    let ctx = revoke(revoker("key:1"), &["p10@example.com"]);
    assert!(is_deny(
        &decide(&p, &ctx, &c, 11).await,
        "per minute per grant key:1"
    ));
    // The same person twice within a minute is refused by the cooldown.
    let ctx = revoke(revoker("key:2"), &["p0@example.com"]);
    assert!(is_deny(&decide(&p, &ctx, &c, 12).await, "once per 1m"));
}

// ------------------------------------------------- authorize, stored policies

/// A [`PolicyStore`] in memory, enough to drive `authorize` and the stored
/// policy use cases.
#[derive(Default)]
pub(super) struct MemoryPolicyStore {
    pub counters: MemoryCounters,
    pub policies: Mutex<HashMap<TenantId, StoredPolicy>>,
    pub audit: Mutex<Vec<AuditEvent>>,
    pub approvals: Mutex<HashMap<crate::domain::RequestId, Approval>>,
}

#[async_trait]
impl CounterStore for MemoryPolicyStore {
    async fn consume(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Option<usize>, StoreError> {
        self.counters.consume(claims, now).await
    }
    async fn peek(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimUsage>, StoreError> {
        self.counters.peek(claims, now).await
    }
    async fn purge_policy_state(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.counters.purge_policy_state(before).await
    }
}

#[async_trait]
impl PolicyDocumentStore for MemoryPolicyStore {
    async fn get_policy(&self, tenant: TenantId) -> Result<Option<StoredPolicy>, StoreError> {
        Ok(self.policies.lock().unwrap().get(&tenant).cloned())
    }
    async fn put_policy(
        &self,
        p: &StoredPolicy,
        expected: Option<i64>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut all = self.policies.lock().unwrap();
        if all.get(&p.tenant_id).map(|x| x.revision) != expected {
            return Err(StoreError::Conflict("policy".into()));
        }
        all.insert(p.tenant_id, p.clone());
        self.audit.lock().unwrap().push(audit.clone());
        Ok(())
    }
    async fn delete_policy(
        &self,
        tenant: TenantId,
        expected: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut all = self.policies.lock().unwrap();
        match all.get(&tenant).map(|x| x.revision) {
            None => Ok(false),
            Some(r) if r != expected => Err(StoreError::Conflict("policy".into())),
            Some(_) => {
                all.remove(&tenant);
                self.audit.lock().unwrap().push(audit.clone());
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl ApprovalStore for MemoryPolicyStore {
    async fn insert_pending_request(
        &self,
        _req: &NewRequest,
        a: &Approval,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.approvals
            .lock()
            .unwrap()
            .insert(a.request_id, a.clone());
        self.audit.lock().unwrap().push(audit.clone());
        Ok(())
    }
    async fn get_approval(
        &self,
        id: crate::domain::RequestId,
    ) -> Result<Option<Approval>, StoreError> {
        Ok(self.approvals.lock().unwrap().get(&id).cloned())
    }
    async fn list_approvals(&self, q: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        Ok(self
            .approvals
            .lock()
            .unwrap()
            .values()
            .filter(|a| q.state.is_none_or(|s| s == a.state))
            .cloned()
            .collect())
    }
    async fn due_approvals(
        &self,
        now: DateTime<Utc>,
        _limit: u32,
    ) -> Result<Vec<Approval>, StoreError> {
        Ok(self
            .approvals
            .lock()
            .unwrap()
            .values()
            .filter(|a| a.is_due(now))
            .cloned()
            .collect())
    }
    async fn settle_approval(
        &self,
        s: &Settlement,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut all = self.approvals.lock().unwrap();
        let Some(a) = all.get(&s.request_id) else {
            return Ok(false);
        };
        let ok = a.state == ApprovalState::Pending
            && match s.state {
                ApprovalState::Expired => s.at >= a.expires_at,
                _ => s.at < a.expires_at,
            };
        if ok {
            let after = a.after(s);
            all.insert(s.request_id, after);
            self.audit.lock().unwrap().push(audit.clone());
        }
        Ok(ok)
    }
}

fn base_audit() -> AuditEvent {
    AuditEvent {
        tenant_id: TenantId::DEFAULT,
        at: t(0),
        actor: "key:admin".into(),
        role: None,
        channel: Channel::Api,
        source: None,
        client_ip: None,
        action: String::new(),
        target: None,
        reason: None,
        decision: String::new(),
        result: None,
        request_id: None,
        detail: serde_json::json!({"http_request_id": "r1"}),
    }
}

#[tokio::test]
async fn authorize_uses_the_file_else_the_stored_policy_else_the_default() {
    let store = MemoryPolicyStore::default();
    let admin = caller("key:admin", &Scope::ALL, Channel::Api);
    let server = PolicyResolver::for_server(None);
    let a = authorize(
        &server,
        &store,
        &act(admin.clone(), Action::ReadAudit),
        t(0),
    )
    .await
    .unwrap();
    assert!(a.is_allowed());
    assert_eq!(
        a.origin,
        PolicyOrigin::BuiltIn {
            name: "server default".into()
        }
    );

    let stored = store_policy(
        &server,
        &store,
        &admin,
        serde_json::from_str(r#"{"version": "1", "tools": {"manage_policy": {}}}"#).unwrap(),
        None,
        base_audit(),
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(stored.revision, 1);
    let a = authorize(
        &server,
        &store,
        &act(admin.clone(), Action::ReadAudit),
        t(2),
    )
    .await
    .unwrap();
    assert!(matches!(a.origin, PolicyOrigin::Stored { revision: 1, .. }));
    assert!(!a.is_allowed(), "the stored policy denies read_audit");
    assert_eq!(a.audit_detail()["policy"]["decision"], "deny");
    assert_eq!(a.audit_detail()["policy"]["rules"][0]["rule"], "default");

    let file = PolicyResolver::for_server(Some((
        "/etc/sever/policy.json".into(),
        Policy::from_json(SEED).unwrap(),
    )));
    let a = authorize(
        &file,
        &store,
        &act(admin.clone(), Action::ManagePolicy),
        t(3),
    )
    .await
    .unwrap();
    assert!(!a.is_allowed(), "the file wins over the stored policy");
    assert!(matches!(
        store_policy(&file, &store, &admin, serde_json::json!({"version": "1"}), None, base_audit(), t(4)).await,
        Err(PolicyChangeError::ManagedByFile(p)) if p == "/etc/sever/policy.json"
    ));
}

#[tokio::test]
async fn authorize_passes_a_needed_approval_on_with_the_policys_expiry() {
    let store = MemoryPolicyStore::default();
    let p = Policy::from_json(r#"{"version": "1", "default": "allow", "protected_accounts": [{"callers_own_account": true, "action": "require_approval"}]}"#).unwrap();
    let r = PolicyResolver::new(Some(("p.json".into(), p)), "x", Policy::deny_all());
    let me = Caller {
        person: Some("alice@example.com".into()),
        ..revoker("key:a")
    };
    let a = authorize(
        &r,
        &store,
        &revoke(me.clone(), &["alice@example.com"]),
        t(0),
    )
    .await
    .unwrap();
    assert!(matches!(a.decision(), Decision::RequireApproval { .. }));
    assert_eq!(a.approval_ttl, chrono::Duration::minutes(30));
    assert!(
        a.message().starts_with("needs approval: alice@example.com"),
        "{}",
        a.message()
    );
}

#[tokio::test]
async fn storing_a_policy_is_audited_with_before_and_after_and_refuses_lockouts_and_stale_writes() {
    let store = MemoryPolicyStore::default();
    let r = PolicyResolver::for_server(None);
    let admin = caller("key:admin", &Scope::ALL, Channel::Api);
    let v1 = serde_json::json!({"version": "1", "default": "allow"});
    store_policy(&r, &store, &admin, v1, None, base_audit(), t(0))
        .await
        .unwrap();
    let seed: serde_json::Value = serde_json::from_str(SEED).unwrap();
    let e = store_policy(&r, &store, &admin, seed, Some(1), base_audit(), t(1))
        .await
        .unwrap_err();
    assert!(matches!(e, PolicyChangeError::LocksOut(_)), "{e}");
    assert!(e.to_string().contains("manage_policy"), "{e}");
    let bad = serde_json::json!({"version": "1", "tools": {"revoke_sessions": {"limits": [{"counter": "c", "window": "fortnight", "max": 1}]}}});
    let e = store_policy(&r, &store, &admin, bad, Some(1), base_audit(), t(1))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("tools.revoke_sessions.limits[0].window: \"fortnight\""),
        "{e}"
    );
    let v2 =
        serde_json::json!({"version": "1", "default": "allow", "blast_radius": {"per_tenant": 5}});
    let e = store_policy(&r, &store, &admin, v2.clone(), Some(7), base_audit(), t(2))
        .await
        .unwrap_err();
    assert!(matches!(e, PolicyChangeError::Conflict(1)), "{e}");
    let s = store_policy(&r, &store, &admin, v2, Some(1), base_audit(), t(2))
        .await
        .unwrap();
    assert_eq!(s.revision, 2);
    let audit = store.audit.lock().unwrap().clone();
    assert_eq!(audit.len(), 2);
    let last = &audit[1];
    assert_eq!(last.action, "policy.update");
    assert_eq!(last.detail["before"]["default"], "allow");
    assert_eq!(last.detail["before_revision"], 1);
    assert_eq!(last.detail["after"]["blast_radius"]["per_tenant"], 5);
    assert_eq!(
        last.detail["http_request_id"], "r1",
        "the caller's detail is kept"
    );
    assert!(reset_policy(&r, &store, TenantId::DEFAULT, base_audit())
        .await
        .unwrap());
    assert!(!reset_policy(&r, &store, TenantId::DEFAULT, base_audit())
        .await
        .unwrap());
    let audit = store.audit.lock().unwrap().clone();
    assert_eq!(audit[2].action, "policy.reset");
    assert_eq!(audit[2].detail["before_revision"], 2);
}
