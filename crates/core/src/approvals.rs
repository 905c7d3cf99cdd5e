//! Two-person approval of revocations a policy holds back.
//!
//! A request the policy sends to approval is written in `pending_approval`
//! together with its [`Approval`] (one transaction), and nothing runs it:
//! the stores only ever claim `queued` or `running` requests. An owner or
//! admin other than the requester then approves it (the request becomes
//! `queued` and the worker runs it) or denies it (`rejected`), with a
//! reason; if nobody does before `expires_at` it becomes `expired`. Every
//! transition is one conditional write in the store — "still pending and
//! not yet expired" for a decision, "still pending and past its expiry" for
//! an expiry — so a late approval can never revive an expired request, and
//! an approval and a denial racing each other cannot both win.
//!
//! The state machine itself is pure ([`Approval::settle`]), so its rules are
//! property-tested without a database; the store adapters are held to the
//! same rules by the conformance suite.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::admin::{AuditEvent, Role, Scope};
use crate::domain::*;
use crate::engine::{Engine, EngineError, RevocationInput};
use crate::policy::{merge_detail, Authorization, Caller, Decision};
use crate::ports::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalState {
    pub const ALL: [ApprovalState; 4] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Denied,
        ApprovalState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
        }
    }

    /// The request's status once an approval is in this state.
    pub fn request_status(self) -> RequestStatus {
        match self {
            ApprovalState::Pending => RequestStatus::PendingApproval,
            ApprovalState::Approved => RequestStatus::Queued,
            ApprovalState::Denied => RequestStatus::Rejected,
            ApprovalState::Expired => RequestStatus::Expired,
        }
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalState {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApprovalState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(
                    "state",
                    format!("\"{s}\" is not one of pending, approved, denied, expired"),
                )
            })
    }
}

/// A request waiting for (or past) a second person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub request_id: RequestId,
    pub tenant_id: TenantId,
    /// `revoke_sessions` or `bulk_revoke`.
    pub action: String,
    pub username: String,
    /// The requester's reason for the revocation.
    pub request_reason: String,
    pub channel: Channel,
    /// The requester's grant (`key:…`, `mcp:…`, `user:…`, `cli:…`, `webhook`).
    pub requested_by: String,
    /// The person behind the request, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester_person: Option<String>,
    /// Why the policy wants approval.
    pub reasons: Vec<String>,
    pub state: ApprovalState,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
}

/// A second person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Approve,
    Deny,
}

/// A transition to write: to `state`, by whom, when, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub request_id: RequestId,
    /// `Approved`, `Denied` or `Expired`.
    pub state: ApprovalState,
    pub by: Option<String>,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ApprovalQuery {
    pub tenant_id: Option<TenantId>,
    pub state: Option<ApprovalState>,
    /// 0: the default page (50); at most 1000.
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("request {0} has no approval (it never needed one, or does not exist)")]
    NotFound(RequestId),
    #[error("the approval of request {id} is already {state}")]
    NotPending { id: RequestId, state: ApprovalState },
    #[error("the approval of request {id} expired at {at}; ask for a new revocation")]
    Expired { id: RequestId, at: DateTime<Utc> },
    #[error("{0} asked for this revocation and cannot approve or deny it: a second person must (two-person rule)")]
    SelfApproval(String),
    #[error("{0} may not approve requests: only an owner or admin (or an admin-scope key) may")]
    NotAnApprover(String),
    #[error("reason: approving or denying needs a reason")]
    ReasonRequired,
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `caller` may decide approvals at all: an owner or admin, or a
/// machine caller holding the `admin` scope. A person's role decides for
/// people (an analyst's key scopes do not make them an admin).
pub fn may_approve(caller: &Caller) -> bool {
    match caller.role {
        Some(r) => matches!(r, Role::Owner | Role::Admin),
        None => caller.scopes.contains(&Scope::Admin),
    }
}

impl Approval {
    /// Identities that name the requester, lowercased (see [`Caller::identities`]).
    pub fn requester_identities(&self) -> Vec<String> {
        Caller {
            tenant_id: self.tenant_id,
            grant: self.requested_by.clone(),
            person: self.requester_person.clone(),
            role: None,
            scopes: vec![],
            channel: self.channel,
        }
        .identities()
    }

    /// Whether `caller` is the requester under any of their names.
    pub fn is_requested_by(&self, caller: &Caller) -> bool {
        let mine = self.requester_identities();
        caller.identities().iter().any(|i| mine.contains(i))
    }

    /// Pending, but past its expiry at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == ApprovalState::Pending && now >= self.expires_at
    }

    /// The state machine: what `resolution` by `approver` at `now` does,
    /// or why it is refused. Pure: nothing is written.
    pub fn settle(
        &self,
        approver: &Caller,
        resolution: Resolution,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Settlement, ApprovalError> {
        let id = self.request_id;
        if approver.tenant_id != self.tenant_id {
            return Err(ApprovalError::NotFound(id));
        }
        if !may_approve(approver) {
            return Err(ApprovalError::NotAnApprover(approver.grant.clone()));
        }
        if self.is_requested_by(approver) {
            return Err(ApprovalError::SelfApproval(approver.grant.clone()));
        }
        if self.state != ApprovalState::Pending {
            return Err(ApprovalError::NotPending {
                id,
                state: self.state,
            });
        }
        if self.is_due(now) {
            return Err(ApprovalError::Expired {
                id,
                at: self.expires_at,
            });
        }
        let reason = Reason::parse(reason)?;
        if reason.as_str().is_empty() {
            return Err(ApprovalError::ReasonRequired);
        }
        Ok(Settlement {
            request_id: id,
            state: match resolution {
                Resolution::Approve => ApprovalState::Approved,
                Resolution::Deny => ApprovalState::Denied,
            },
            by: Some(approver.grant.clone()),
            at: now,
            reason: Some(reason.as_str().to_string()),
        })
    }

    /// The expiry transition, when due at `now`.
    pub fn expiry(&self, now: DateTime<Utc>) -> Option<Settlement> {
        self.is_due(now).then(|| Settlement {
            request_id: self.request_id,
            state: ApprovalState::Expired,
            by: None,
            at: now,
            reason: Some(format!("not approved by {}", self.expires_at.to_rfc3339())),
        })
    }

    /// This approval after `s` was written.
    pub fn after(&self, s: &Settlement) -> Approval {
        Approval {
            state: s.state,
            decided_by: s.by.clone(),
            decided_at: Some(s.at),
            decision_reason: s.reason.clone(),
            ..self.clone()
        }
    }
}

/// Where approvals are kept, beside the requests they hold back.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Write a `pending_approval` request, its pending results, its approval
    /// and its audit record, atomically.
    async fn insert_pending_request(
        &self,
        req: &NewRequest,
        approval: &Approval,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    async fn get_approval(&self, id: RequestId) -> Result<Option<Approval>, StoreError>;

    /// Newest first.
    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError>;

    /// Pending approvals whose expiry is at or before `now`, oldest first.
    async fn due_approvals(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Approval>, StoreError>;

    /// Write `s` and its audit record in one transaction, if the approval
    /// is still pending and — for `Approved`/`Denied` — not expired at
    /// `s.at`, or — for `Expired` — expired at `s.at`. The request moves to
    /// `queued`, `rejected` or `expired` (the last two final, their pending
    /// results recorded as `skipped`). Returns false, changing nothing,
    /// when the condition does not hold.
    async fn settle_approval(&self, s: &Settlement, audit: &AuditEvent)
        -> Result<bool, StoreError>;
}

/// What [`submit_revocation`] did.
#[derive(Debug, Clone)]
pub enum Submission {
    /// Written as `queued`: run it (`Engine::execute`) or let the worker.
    Queued(NewRequest),
    /// Written as `pending_approval`; nothing runs until a second person approves.
    PendingApproval(NewRequest, Box<Approval>),
}

impl Submission {
    pub fn request(&self) -> &NewRequest {
        match self {
            Submission::Queued(r) | Submission::PendingApproval(r, _) => r,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The policy refused; the message lists its reasons.
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Write a revocation the policy decided on: `queued` when allowed,
/// `pending_approval` (with its approval, expiring after the policy's
/// approval time) when it needs approval, nothing when denied. The
/// request's audit record carries the decision (`auth.audit_detail()`).
/// `requester_person`: the email of the person behind the call, if known.
pub async fn submit_revocation(
    engine: &Engine,
    approvals: &dyn ApprovalStore,
    input: RevocationInput,
    auth: &Authorization,
    requester_person: Option<String>,
) -> Result<Submission, SubmitError> {
    match auth.decision() {
        Decision::Deny { .. } => Err(SubmitError::Denied(auth.message())),
        Decision::Allow => {
            let (req, mut audit) = engine.prepare(input, RequestStatus::Queued)?;
            merge_detail(&mut audit.detail, auth.audit_detail());
            engine.store().insert_request(&req, &audit).await?;
            Ok(Submission::Queued(req))
        }
        Decision::RequireApproval { reasons } => {
            let (req, mut audit) = engine.prepare(input, RequestStatus::PendingApproval)?;
            merge_detail(&mut audit.detail, auth.audit_detail());
            let approval = Approval {
                request_id: req.id,
                tenant_id: req.tenant_id,
                action: audit.action.clone(),
                username: req.username.to_string(),
                request_reason: req.reason.as_str().to_string(),
                channel: req.channel,
                requested_by: req.requested_by.clone(),
                requester_person,
                reasons: reasons.clone(),
                state: ApprovalState::Pending,
                created_at: req.created_at,
                expires_at: req.created_at + auth.approval_ttl,
                decided_by: None,
                decided_at: None,
                decision_reason: None,
            };
            approvals
                .insert_pending_request(&req, &approval, &audit)
                .await?;
            tracing::info!(request_id = %req.id, user = %req.username, "request waits for approval");
            Ok(Submission::PendingApproval(req, Box::new(approval)))
        }
    }
}

fn settlement_event(
    a: &Approval,
    s: &Settlement,
    actor: &Caller,
    client_ip: Option<&str>,
) -> AuditEvent {
    let action = match s.state {
        ApprovalState::Approved => "approval.approve",
        ApprovalState::Denied => "approval.deny",
        _ => "approval.expire",
    };
    AuditEvent {
        tenant_id: a.tenant_id,
        at: s.at,
        actor: actor.grant.clone(),
        role: actor.role.map(|r| r.as_str().to_string()),
        channel: actor.channel,
        source: None,
        client_ip: client_ip.map(str::to_string),
        action: action.into(),
        target: Some(a.username.clone()),
        reason: s.reason.clone(),
        decision: "allowed".into(),
        result: Some(s.state.request_status().as_str().to_string()),
        request_id: Some(a.request_id),
        detail: serde_json::json!({
            "requested_by": a.requested_by,
            "approval_reasons": a.reasons,
            "expires_at": a.expires_at,
        }),
    }
}

/// Approve or deny request `id` as `approver`, with `reason`. Enforces the
/// two-person rule and the expiry; on approval the request is `queued`
/// (the caller runs it, or wakes the worker). An approval found past its
/// expiry is expired on the spot.
pub async fn decide(
    store: &dyn ApprovalStore,
    id: RequestId,
    approver: &Caller,
    resolution: Resolution,
    reason: &str,
    client_ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    let a = store
        .get_approval(id)
        .await?
        .filter(|a| a.tenant_id == approver.tenant_id)
        .ok_or(ApprovalError::NotFound(id))?;
    let s = match a.settle(approver, resolution, reason, now) {
        Ok(s) => s,
        Err(ApprovalError::Expired { id, at }) => {
            expire_one(store, &a, now).await?;
            return Err(ApprovalError::Expired { id, at });
        }
        Err(e) => return Err(e),
    };
    let audit = settlement_event(&a, &s, approver, client_ip);
    if store.settle_approval(&s, &audit).await? {
        return Ok(a.after(&s));
    }
    // Someone else settled it between our read and our write: say how.
    let now_a = store
        .get_approval(id)
        .await?
        .ok_or(ApprovalError::NotFound(id))?;
    if now_a.state == ApprovalState::Pending {
        Err(ApprovalError::Expired {
            id,
            at: now_a.expires_at,
        })
    } else {
        Err(ApprovalError::NotPending {
            id,
            state: now_a.state,
        })
    }
}

async fn expire_one(
    store: &dyn ApprovalStore,
    a: &Approval,
    now: DateTime<Utc>,
) -> Result<Option<Approval>, StoreError> {
    let Some(s) = a.expiry(now) else {
        return Ok(None);
    };
    let system = Caller {
        tenant_id: a.tenant_id,
        grant: "system:approvals".into(),
        person: None,
        role: None,
        scopes: vec![],
        channel: a.channel,
    };
    let audit = settlement_event(a, &s, &system, None);
    Ok(store
        .settle_approval(&s, &audit)
        .await?
        .then(|| a.after(&s)))
}

/// Expire every approval past its expiry at `now`; returns those expired.
/// The server's worker calls this periodically; listings call it first.
pub async fn expire_due(
    store: &dyn ApprovalStore,
    now: DateTime<Utc>,
) -> Result<Vec<Approval>, StoreError> {
    let mut done = Vec::new();
    loop {
        let due = store.due_approvals(now, 100).await?;
        let n = due.len();
        for a in &due {
            if let Some(x) = expire_one(store, a, now).await? {
                done.push(x);
            }
        }
        if n < 100 {
            return Ok(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, 5, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn approval() -> Approval {
        Approval {
            request_id: RequestId::new(),
            tenant_id: TenantId::DEFAULT,
            action: "revoke_sessions".into(),
            username: "bob@example.com".into(),
            request_reason: "phished".into(),
            channel: Channel::Mcp,
            requested_by: "mcp:agent-1".into(),
            requester_person: Some("alice@example.com".into()),
            reasons: vec!["calls over mcp need approval".into()],
            state: ApprovalState::Pending,
            created_at: t(0),
            expires_at: t(1800),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        }
    }

    fn person(email: &str, role: Role) -> Caller {
        Caller {
            tenant_id: TenantId::DEFAULT,
            grant: format!("user:{email}"),
            person: Some(email.into()),
            role: Some(role),
            scopes: vec![],
            channel: Channel::Ui,
        }
    }

    #[test]
    fn an_admin_other_than_the_requester_approves_with_a_reason() {
        let a = approval();
        let s = a
            .settle(
                &person("carol@example.com", Role::Admin),
                Resolution::Approve,
                "verified by phone",
                t(60),
            )
            .unwrap();
        assert_eq!(s.state, ApprovalState::Approved);
        assert_eq!(s.state.request_status(), RequestStatus::Queued);
        let after = a.after(&s);
        assert_eq!(after.decided_by.as_deref(), Some("user:carol@example.com"));
        assert!(matches!(
            after.settle(
                &person("dan@example.com", Role::Owner),
                Resolution::Deny,
                "no",
                t(61)
            ),
            Err(ApprovalError::NotPending {
                state: ApprovalState::Approved,
                ..
            })
        ));
    }

    #[test]
    fn the_requester_analysts_viewers_late_and_reasonless_approvals_are_refused() {
        let a = approval();
        let me = person("alice@example.com", Role::Owner);
        assert!(matches!(
            a.settle(&me, Resolution::Approve, "ok", t(1)),
            Err(ApprovalError::SelfApproval(_))
        ));
        let my_key = Caller {
            grant: "key:123".into(),
            person: Some("user:ALICE@example.com".into()),
            role: None,
            scopes: vec![Scope::Admin],
            ..me.clone()
        };
        assert!(matches!(
            a.settle(&my_key, Resolution::Deny, "ok", t(1)),
            Err(ApprovalError::SelfApproval(_))
        ));
        let same_grant = Caller {
            grant: "mcp:agent-1".into(),
            person: None,
            role: None,
            scopes: vec![Scope::Admin],
            ..me.clone()
        };
        assert!(matches!(
            a.settle(&same_grant, Resolution::Approve, "ok", t(1)),
            Err(ApprovalError::SelfApproval(_))
        ));
        for role in [Role::Analyst, Role::Viewer] {
            assert!(matches!(
                a.settle(
                    &person("x@example.com", role),
                    Resolution::Approve,
                    "ok",
                    t(1)
                ),
                Err(ApprovalError::NotAnApprover(_))
            ));
        }
        let admin = person("carol@example.com", Role::Admin);
        assert!(matches!(
            a.settle(&admin, Resolution::Approve, "  ", t(1)),
            Err(ApprovalError::ReasonRequired)
        ));
        assert!(matches!(
            a.settle(&admin, Resolution::Approve, "ok", t(1800)),
            Err(ApprovalError::Expired { .. })
        ));
        let other_tenant = Caller {
            tenant_id: TenantId(uuid::Uuid::new_v4()),
            ..admin
        };
        assert!(matches!(
            a.settle(&other_tenant, Resolution::Approve, "ok", t(1)),
            Err(ApprovalError::NotFound(_))
        ));
        assert_eq!(a.expiry(t(1799)), None);
        assert_eq!(a.expiry(t(1800)).unwrap().state, ApprovalState::Expired);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Decide { who: usize, approve: bool },
        Advance(i64),
        Sweep,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..5, any::<bool>()).prop_map(|(who, approve)| Op::Decide { who, approve }),
            (1i64..1200).prop_map(Op::Advance),
            Just(Op::Sweep),
        ]
    }

    proptest! {
        /// Drive the state machine with any sequence of decisions by anyone,
        /// time passing and expiry sweeps. The request may run (its status is
        /// `queued`) only if a non-requester owner/admin approved it before
        /// its expiry, and nothing after a denial or expiry ever changes it.
        #[test]
        fn a_request_runs_only_after_a_timely_approval_by_someone_else(ops in proptest::collection::vec(op(), 0..24)) {
            let callers = [
                person("alice@example.com", Role::Owner),   // the requester
                person("carol@example.com", Role::Admin),
                person("dave@example.com", Role::Analyst),
                person("erin@example.com", Role::Viewer),
                Caller { grant: "mcp:agent-1".into(), person: None, role: None, scopes: vec![Scope::Admin], ..person("x@example.com", Role::Owner) },
            ];
            let mut a = approval();
            let mut now = t(0);
            let mut history: Vec<(ApprovalState, usize, DateTime<Utc>)> = vec![];
            for o in ops {
                let before = a.state;
                match o {
                    Op::Decide { who, approve } => {
                        let r = if approve { Resolution::Approve } else { Resolution::Deny };
                        if let Ok(s) = a.settle(&callers[who], r, "because", now) {
                            prop_assert!(who == 1, "only carol may decide; {} did", callers[who].grant);
                            prop_assert!(now < a.expires_at);
                            a = a.after(&s);
                            history.push((a.state, who, now));
                        }
                    }
                    Op::Advance(s) => now += chrono::Duration::seconds(s),
                    Op::Sweep => if let Some(s) = a.expiry(now) {
                        a = a.after(&s);
                        history.push((a.state, usize::MAX, now));
                    },
                }
                if before != ApprovalState::Pending {
                    prop_assert_eq!(a.state, before, "a settled approval never changes");
                }
            }
            prop_assert!(history.len() <= 1);
            if a.state.request_status() == RequestStatus::Queued {
                let (_, who, at) = history[0];
                prop_assert_eq!(who, 1);
                prop_assert!(at < a.expires_at);
            }
        }
    }
}
