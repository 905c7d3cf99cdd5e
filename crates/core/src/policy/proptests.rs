//! Properties that must hold for every policy and every sequence of calls:
//! no sequence of calls, sequential or concurrent, gets more calls through
//! than a limit allows; a caller without `sessions:revoke` (a viewer) never
//! gets a revocation allowed or sent to approval, whatever the policy.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::tests::{caller, revoke, t};
use super::*;

#[derive(Debug, Clone)]
struct Call {
    grant: usize,
    target: usize,
    /// Seconds after the previous call.
    after: i64,
}

fn call() -> impl Strategy<Value = Call> {
    (0usize..3, 0usize..4, 0i64..40).prop_map(|(grant, target, after)| Call {
        grant,
        target,
        after,
    })
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        Just(Window::Second),
        Just(Window::Minute),
        Just(Window::Hour)
    ]
}

fn scope() -> impl Strategy<Value = CounterScope> {
    prop_oneof![
        Just(CounterScope::Grant),
        Just(CounterScope::Tenant),
        Just(CounterScope::Global),
        Just(CounterScope::Target),
    ]
}

fn policy_with(max: u64, window: Window, scope: CounterScope) -> Policy {
    Policy::from_json(&format!(
        r#"{{"version": "1", "default": "deny", "tools": {{"revoke_sessions": {{"limits": [
            {{"counter": "c", "window": "{window}", "max": {max}, "scope": "{scope}"}}]}}}}}}"#
    ))
    .unwrap()
}

/// The value a call's counter is kept under, for the model.
fn scope_value(scope: CounterScope, c: &Call) -> usize {
    match scope {
        CounterScope::Grant => c.grant,
        CounterScope::Target => c.target,
        _ => 0,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Sequential calls: within every window, per scope value, at most `max`
    /// calls are allowed, and a call is refused only when the window is full.
    #[test]
    fn no_sequence_of_calls_exceeds_a_limit(
        max in 0u64..5, window in window(), scope in scope(),
        calls in proptest::collection::vec(call(), 1..60),
    ) {
        let p = policy_with(max, window, scope);
        let counters = MemoryCounters::new();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut now = t(0);
        let mut allowed: HashMap<(usize, DateTime<Utc>), u64> = HashMap::new();
        for c in &calls {
            now += chrono::Duration::seconds(c.after);
            let ctx = revoke(
                caller(&format!("key:{}", c.grant), &[Scope::SessionsRevoke], Channel::Api),
                &[&format!("p{}@example.com", c.target)],
            );
            let d = rt.block_on(p.evaluate(&ctx, &counters, now)).unwrap().decision;
            let slot = allowed.entry((scope_value(scope, c), window.start(now))).or_default();
            match d {
                Decision::Allow => *slot += 1,
                Decision::Deny { .. } => prop_assert_eq!(*slot, max, "refused before the window was full"),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            prop_assert!(*slot <= max);
        }
    }

    /// Concurrent calls (many tasks on several threads, all at once):
    /// exactly `min(calls, max)` get through.
    #[test]
    fn concurrent_calls_never_exceed_a_limit(max in 0u64..8, n in 1usize..24) {
        let p = Arc::new(policy_with(max, Window::Minute, CounterScope::Tenant));
        let counters = Arc::new(MemoryCounters::new());
        let rt = runtime();
        let allowed = rt.block_on(async {
            let tasks: Vec<_> = (0..n).map(|i| {
                let (p, counters) = (p.clone(), counters.clone());
                tokio::spawn(async move {
                    let ctx = revoke(
                        caller(&format!("key:{i}"), &[Scope::SessionsRevoke], Channel::Api),
                        &["bob@example.com"],
                    );
                    p.evaluate(&ctx, counters.as_ref(), t(1)).await.unwrap().decision == Decision::Allow
                })
            }).collect();
            let mut allowed = 0u64;
            for task in tasks {
                if task.await.unwrap() { allowed += 1; }
            }
            allowed
        });
        prop_assert_eq!(allowed, max.min(n as u64));
    }
}

/// Any policy document this generator can write: default, tools with
/// actions, limits, approval conditions, protected accounts, blast radius.
fn any_policy() -> impl Strategy<Value = Policy> {
    let tool = (
        prop_oneof![Just("allow"), Just("deny"), Just("require_approval")],
        0u64..5,
        any::<bool>(),
        any::<bool>(),
    );
    (
        any::<bool>(),
        proptest::collection::vec((0usize..Action::ALL.len(), tool), 0..6),
        any::<bool>(),
        proptest::option::of(1u64..10),
    )
        .prop_map(|(allow, tools, protect_self, cap)| {
            let mut doc = serde_json::json!({
                "version": "1",
                "default": if allow { "allow" } else { "deny" },
                "tools": {},
            });
            for (i, (action, max, approval, limit)) in tools {
                let a = Action::ALL[i];
                let mut rules = serde_json::json!({});
                if a.revokes() {
                    rules["action"] = serde_json::json!(action);
                    if approval {
                        rules["require_approval"] = serde_json::json!({"always": true});
                    }
                } else if action == "deny" {
                    rules["action"] = serde_json::json!("deny");
                }
                if limit {
                    rules["limits"] = serde_json::json!([{"counter": "c", "window": "minute", "max": max}]);
                }
                doc["tools"][a.as_str()] = rules;
            }
            if protect_self {
                doc["protected_accounts"] =
                    serde_json::json!([{"callers_own_account": true, "action": "require_approval"}]);
            }
            if let Some(cap) = cap {
                doc["blast_radius"] = serde_json::json!({"per_grant": cap});
            }
            Policy::from_value(doc).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the policy, the channel or the target, a viewer (a person
    /// with the viewer role, or a key with only `sessions:read`) never gets
    /// a revocation allowed nor queued for approval.
    #[test]
    fn a_viewer_can_never_cause_a_revocation(
        policy in any_policy(),
        as_key in any::<bool>(),
        channel in prop_oneof![Just(Channel::Cli), Just(Channel::Api), Just(Channel::Webhook), Just(Channel::Mcp), Just(Channel::Ui)],
        bulk in any::<bool>(),
        target in "[a-z]{1,8}",
    ) {
        let viewer = if as_key {
            caller("key:viewer", &[Scope::SessionsRead], channel)
        } else {
            Caller { role: Some(Role::Viewer), person: Some("v@example.com".into()), ..caller("user:v@example.com", &[], channel) }
        };
        let mut ctx = revoke(viewer, &[&format!("{target}@example.com"), "v@example.com"]);
        if bulk { ctx.action = Action::BulkRevoke; }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let counters = MemoryCounters::new();
        for i in 0..3 {
            let e = rt.block_on(policy.evaluate(&ctx, &counters, t(i))).unwrap();
            prop_assert!(matches!(e.decision, Decision::Deny { .. }), "{:?}", e);
            prop_assert!(e.trace.iter().any(|s| s.rule == "scope" && s.verdict == Verdict::Deny));
        }
        // And it used nobody's budget.
        let revoker = revoke(caller("key:r", &[Scope::SessionsRevoke], channel), &["x@example.com"]);
        let x = rt.block_on(policy.explain(&revoker, &counters, t(3))).unwrap();
        prop_assert!(x.trace.iter().all(|s| !s.detail.contains("1 of")), "{:?}", x.trace);
    }
}
