//! Evaluating a policy for one call.
//!
//! Order: the caller's scope; the action's tool entry (or the default);
//! argument rules; approval conditions; protected accounts; then the rules
//! that use shared state — limits, cooldowns, blast-radius caps — which are
//! only consulted when nothing else refused, and are all consumed in one
//! atomic step, so a refused call never uses up anyone's budget. A denial
//! wins over a required approval, which wins over an allowance; every
//! denial and approval reason found is reported, not only the first.

use chrono::{DateTime, Utc};

use super::counters::{Claim, ClaimUsage, CounterStore};
use super::document::{CounterScope, DefaultRule, ProtectedAction, ToolAction};
use super::{Decision, Evaluation, Policy, RequestContext, TraceStep, Verdict};
use crate::ports::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Apply,
    DryRun,
}

/// A claim with what explains it.
struct Planned {
    claim: Claim,
    rule: String,
    /// "at most 10 per minute per grant key:…"
    what: String,
    /// When a refusal of this claim lifts.
    retry_at: DateTime<Utc>,
}

struct Plan {
    trace: Vec<TraceStep>,
    denials: Vec<String>,
    approvals: Vec<String>,
    claims: Vec<Planned>,
}

impl Plan {
    fn step(&mut self, rule: impl Into<String>, verdict: Verdict, detail: impl Into<String>) {
        self.trace.push(TraceStep {
            rule: rule.into(),
            verdict,
            detail: detail.into(),
        });
    }

    fn deny(&mut self, rule: impl Into<String>, reason: impl Into<String>) {
        let reason = reason.into();
        self.denials.push(reason.clone());
        self.step(rule, Verdict::Deny, reason);
    }

    fn approve(&mut self, rule: impl Into<String>, reason: impl Into<String>) {
        let reason = reason.into();
        self.approvals.push(reason.clone());
        self.step(rule, Verdict::RequireApproval, reason);
    }
}

fn people(ctx: &RequestContext) -> Vec<String> {
    let mut v: Vec<String> = ctx
        .args
        .usernames
        .iter()
        .map(|u| u.as_str().to_lowercase())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The connectors the call reaches: the plan, else what was named.
fn connectors(ctx: &RequestContext) -> Vec<String> {
    if !ctx.args.connectors.is_empty() {
        return ctx.args.connectors.clone();
    }
    ctx.args.integration_targets.clone().unwrap_or_default()
}

fn plan(policy: &Policy, ctx: &RequestContext, now: DateTime<Utc>) -> Plan {
    let c = &policy.compiled;
    let action = ctx.action;
    let tenant = ctx.caller.tenant_id;
    let mut p = Plan {
        trace: Vec::new(),
        denials: Vec::new(),
        approvals: Vec::new(),
        claims: Vec::new(),
    };

    // 1. Scope: not a policy matter, and no policy can grant it.
    let needed = action.required_scope();
    let held = ctx.caller.effective_scopes();
    if held.contains(&needed) {
        p.step(
            "scope",
            Verdict::Pass,
            format!("{} holds {needed}", ctx.caller.grant),
        );
    } else {
        p.deny(
            "scope",
            format!(
                "{action} needs the '{needed}' scope, which {} does not hold",
                ctx.caller.grant
            ),
        );
    }

    // 2. The action's entry, or the default.
    let tool = c.tools.get(&action);
    let tp = format!("tools.{action}");
    match tool {
        None => match c.default {
            DefaultRule::Allow => p.step(
                "default",
                Verdict::Pass,
                format!("no entry for {action}; the default is allow"),
            ),
            DefaultRule::Deny => p.deny(
                "default",
                format!(
                    "{action} is not allowed by the policy (no entry for it; the default is deny)"
                ),
            ),
        },
        Some(t) => match t.action {
            ToolAction::Allow => p.step(&tp, Verdict::Pass, format!("{action} is allowed")),
            ToolAction::Deny => p.deny(
                format!("{tp}.action"),
                format!("{action} is denied by the policy"),
            ),
            ToolAction::RequireApproval => p.approve(
                format!("{tp}.action"),
                format!("{action} always needs approval"),
            ),
        },
    }

    let names = people(ctx);

    // 3. Arguments.
    if let Some(args) = tool.and_then(|t| t.arguments.as_ref()) {
        let ap = format!("{tp}.arguments");
        if !args.domains.is_empty() {
            let allowed: Vec<&str> = args.domains.iter().map(|(s, _)| s.as_str()).collect();
            let bad: Vec<&String> = names
                .iter()
                .filter(|n| {
                    let domain = n.rsplit_once('@').map(|(_, d)| d);
                    !domain.is_some_and(|d| args.domains.iter().any(|(_, g)| g.matches(d)))
                })
                .collect();
            if bad.is_empty() {
                p.step(
                    format!("{ap}.username_domains"),
                    Verdict::Pass,
                    format!("every username is in {}", allowed.join(", ")),
                );
            } else {
                let bad: Vec<&str> = bad.iter().map(|s| s.as_str()).collect();
                p.deny(
                    format!("{ap}.username_domains"),
                    format!(
                        "{} is not an email in an allowed domain ({})",
                        bad.join(", "),
                        allowed.join(", ")
                    ),
                );
            }
        }
        if !args.targets.is_empty() {
            let reached = connectors(ctx);
            let rule = format!("{ap}.integration_targets");
            if reached.is_empty() {
                p.deny(
                    rule,
                    format!(
                        "integration_targets must be named, and only {} may be",
                        args.targets.join(", ")
                    ),
                );
            } else {
                let bad: Vec<&str> = reached
                    .iter()
                    .filter(|r| !args.targets.contains(r))
                    .map(String::as_str)
                    .collect();
                if bad.is_empty() {
                    p.step(
                        rule,
                        Verdict::Pass,
                        format!("{} within {}", reached.join(", "), args.targets.join(", ")),
                    );
                } else {
                    p.deny(
                        rule,
                        format!(
                            "connector {} may not be targeted (allowed: {})",
                            bad.join(", "),
                            args.targets.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(r) = &args.reason {
            let rule = format!("{ap}.reason");
            let given = ctx.args.reason.as_deref().unwrap_or("").trim();
            let len = given.chars().count();
            if r.required && len == 0 {
                p.deny(rule, "a reason is required");
            } else if len > 0 && len < r.min_length as usize {
                p.deny(
                    rule,
                    format!(
                        "the reason must be at least {} characters (it has {len})",
                        r.min_length
                    ),
                );
            } else {
                p.step(rule, Verdict::Pass, "the reason is acceptable");
            }
        }
    }

    // 4. Approval conditions.
    if let Some(cond) = tool.and_then(|t| t.approval.as_ref()) {
        let ap = format!("{tp}.require_approval");
        if cond.always {
            p.approve(
                format!("{ap}.always"),
                format!("{action} always needs approval"),
            );
        }
        if !cond.channels.is_empty() {
            let rule = format!("{ap}.channels");
            if cond.channels.contains(&ctx.caller.channel) {
                p.approve(
                    rule,
                    format!("calls over {} need approval", ctx.caller.channel.as_str()),
                );
            } else {
                p.step(
                    rule,
                    Verdict::Pass,
                    format!("channel {} needs none", ctx.caller.channel.as_str()),
                );
            }
        }
        if let Some(n) = cond.more_than_people {
            let rule = format!("{ap}.more_than_people");
            if names.len() as u64 > u64::from(n) {
                p.approve(
                    rule,
                    format!("{} people in one run is more than {n}", names.len()),
                );
            } else {
                p.step(
                    rule,
                    Verdict::Pass,
                    format!("{} people, at most {n}", names.len()),
                );
            }
        }
        if cond.watch_list {
            let rule = format!("{ap}.target_on_watch_list");
            let watched: Vec<&str> = names
                .iter()
                .filter(|n| c.watch_list.iter().any(|(_, g)| g.matches(n)))
                .map(String::as_str)
                .collect();
            if watched.is_empty() {
                p.step(rule, Verdict::Pass, "nobody named is on the watch list");
            } else {
                p.approve(rule, format!("{} is on the watch list", watched.join(", ")));
            }
        }
        if let Some(h) = &cond.hours {
            let rule = format!("{ap}.outside_working_hours");
            let local = now.with_timezone(&h.offset).format("%a %H:%M %:z");
            if h.contains(now) {
                p.step(
                    rule,
                    Verdict::Pass,
                    format!("{local} is within working hours"),
                );
            } else {
                p.approve(rule, format!("{local} is outside working hours"));
            }
        }
    }

    // 5. Protected accounts.
    if action.names_people() && action.revokes() {
        let own = ctx.caller.own_accounts();
        for (i, pr) in c.protected.iter().enumerate() {
            let rule = format!("protected_accounts[{i}]");
            let mut hit: Vec<String> = Vec::new();
            for n in &names {
                if let Some((pat, _)) = pr.accounts.iter().find(|(_, g)| g.matches(n)) {
                    hit.push(format!("{n} (matches {pat})"));
                } else if pr.own && own.contains(n) {
                    hit.push(format!("{n} (the caller's own account)"));
                }
            }
            if hit.is_empty() {
                p.step(rule, Verdict::Pass, "no protected account named");
                continue;
            }
            let what = format!("{} is a protected account", hit.join(", "));
            match pr.action {
                ProtectedAction::Refuse => p.deny(rule, what),
                ProtectedAction::RequireApproval => {
                    p.approve(rule, format!("{what}; revoking it needs approval"))
                }
            }
        }
    }

    // 6. Shared state: limits, cooldowns, blast radius.
    if let Some(t) = tool {
        for (i, l) in t.limits.iter().enumerate() {
            let rule = format!("{tp}.limits[{i}]");
            let window_start = l.window.start(now);
            let values: Vec<String> = match l.scope {
                CounterScope::Grant => vec![ctx.caller.grant.clone()],
                CounterScope::Tenant => vec![tenant.to_string()],
                CounterScope::Global => vec!["*".into()],
                CounterScope::Target => names.clone(),
                CounterScope::Connector => {
                    let cs = connectors(ctx);
                    if cs.is_empty() {
                        // Unknown: count once against "every connector".
                        vec!["*".into()]
                    } else {
                        cs
                    }
                }
            };
            for v in values {
                let key = match l.scope {
                    CounterScope::Global => {
                        format!("lim/global/{}/{}", l.counter, l.window)
                    }
                    s => format!("lim/{tenant}/{}/{}/{s}={v}", l.counter, l.window),
                };
                p.claims.push(Planned {
                    claim: Claim::Count {
                        key,
                        window_start,
                        max: l.max,
                        amount: 1,
                    },
                    rule: rule.clone(),
                    what: format!(
                        "counter {}: at most {} per {} per {} {v}",
                        l.counter, l.max, l.window, l.scope
                    ),
                    retry_at: window_start + l.window.duration(),
                });
            }
        }
        if let Some(cd) = t.cooldown {
            for n in &names {
                p.claims.push(Planned {
                    claim: Claim::Cooldown {
                        key: format!("cd/{tenant}/{n}"),
                        until: now + cd,
                    },
                    rule: format!("{tp}.cooldown"),
                    what: format!("{n} may be revoked once per {}", human(cd)),
                    retry_at: now + cd,
                });
            }
        }
    }
    if let (Some(b), true) = (&c.blast_radius, action.revokes()) {
        let window_start = b.window.start(now);
        let caps = [
            (
                "per_grant",
                b.per_grant,
                format!("grant={}", ctx.caller.grant),
            ),
            ("per_tenant", b.per_tenant, "tenant".to_string()),
        ];
        for (field, max, who) in caps {
            let Some(max) = max else { continue };
            p.claims.push(Planned {
                claim: Claim::Distinct {
                    key: format!("br/{tenant}/{who}/{}", b.window),
                    window_start,
                    members: names.clone(),
                    max,
                },
                rule: format!("blast_radius.{field}"),
                what: format!(
                    "at most {max} distinct people per {} {}",
                    b.window,
                    if field == "per_grant" {
                        format!("for {}", ctx.caller.grant)
                    } else {
                        "in the tenant".into()
                    }
                ),
                retry_at: window_start + b.window.duration(),
            });
        }
    }
    p
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn usage_text(claim: &Claim, usage: &ClaimUsage, now: DateTime<Utc>) -> String {
    match (claim, usage) {
        (Claim::Count { max, .. }, ClaimUsage::Count(n)) => format!("{n} of {max} used"),
        (Claim::Distinct { max, .. }, ClaimUsage::Distinct { count, new_members }) => {
            format!("{count} of {max} people so far, {new_members} new in this call")
        }
        (Claim::Cooldown { .. }, ClaimUsage::Cooldown(Some(u))) if *u > now => {
            format!("on cooldown until {}", u.to_rfc3339())
        }
        (Claim::Cooldown { .. }, _) => "not on cooldown".into(),
        _ => String::new(),
    }
}

fn refusal(pl: &Planned) -> String {
    match &pl.claim {
        Claim::Cooldown { .. } => format!(
            "{} ({}); try again after {}",
            pl.what,
            pl.rule,
            pl.retry_at.to_rfc3339()
        ),
        _ => format!(
            "limit reached: {} ({}); try again after {}",
            pl.what,
            pl.rule,
            pl.retry_at.to_rfc3339()
        ),
    }
}

pub(super) async fn run(
    policy: &Policy,
    ctx: &RequestContext,
    counters: &dyn CounterStore,
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<Evaluation, StoreError> {
    let mut p = plan(policy, ctx, now);
    let claims: Vec<Claim> = p.claims.iter().map(|c| c.claim.clone()).collect();
    let mut retry_at = None;
    if !p.denials.is_empty() {
        for pl in &p.claims {
            p.trace.push(TraceStep {
                rule: pl.rule.clone(),
                verdict: Verdict::Skip,
                detail: format!("{}: not counted, the call is refused", pl.what),
            });
        }
    } else if !claims.is_empty() {
        match mode {
            Mode::DryRun => {
                let usage = counters.peek(&claims, now).await?;
                let planned = std::mem::take(&mut p.claims);
                for (pl, u) in planned.iter().zip(usage.iter()) {
                    let state = usage_text(&pl.claim, u, now);
                    if pl.claim.admits(u, now) {
                        p.step(&pl.rule, Verdict::Pass, format!("{}: {state}", pl.what));
                    } else {
                        retry_at = retry_at.max(Some(pl.retry_at));
                        let reason = refusal(pl);
                        p.denials.push(reason.clone());
                        p.step(&pl.rule, Verdict::Deny, format!("{reason} [{state}]"));
                    }
                }
            }
            Mode::Apply => {
                let refused = counters.consume(&claims, now).await?;
                let planned = std::mem::take(&mut p.claims);
                for (i, pl) in planned.iter().enumerate() {
                    match refused {
                        None => p.step(&pl.rule, Verdict::Pass, format!("{}: counted", pl.what)),
                        Some(r) if r == i => {
                            retry_at = Some(pl.retry_at);
                            let reason = refusal(pl);
                            p.denials.push(reason.clone());
                            p.step(&pl.rule, Verdict::Deny, reason);
                        }
                        Some(_) => p.step(
                            &pl.rule,
                            Verdict::Skip,
                            format!("{}: not counted, the call is refused", pl.what),
                        ),
                    }
                }
            }
        }
    }
    let decision = if !p.denials.is_empty() {
        Decision::Deny { reasons: p.denials }
    } else if !p.approvals.is_empty() {
        Decision::RequireApproval {
            reasons: p.approvals,
        }
    } else {
        Decision::Allow
    };
    Ok(Evaluation {
        decision,
        retry_at,
        trace: p.trace,
    })
}
