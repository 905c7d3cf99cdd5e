//! The policy on the command line. The CLI's own calls go through the same
//! guard as every other entry point (`sever_core::policy::authorize`), as
//! the operator `cli:<os user>` with the owner role (they hold the database
//! and the configuration), over channel `cli`. Without a `policy_file` the
//! embedded CLI's built-in policy allows everything; with one, the file
//! holds the CLI to the same rules as the server.
//!
//! A refusal is exit code 1 with the policy's reasons on stderr, and is
//! recorded in the audit trail with the decision and its rules. A
//! revocation the policy holds for approval is written `pending_approval`
//! and the command exits 3, printing the request id and how to approve it.

use std::process::ExitCode;

use sever_core::admin::{AuditEvent, Role};
use sever_core::approvals::{self, Submission, SubmitError};
use sever_core::policy::{
    self, Action, ActionArgs, Authorization, Caller, Decision, PolicyResolver, RequestContext,
};
use sever_core::{Channel, Clock, Database, RevocationInput, SystemClock, TenantId};

use crate::{app, exit_for, os_user, output, CliError};

/// Exit code of a revocation held for approval: written, not run.
pub const EXIT_PENDING_APPROVAL: u8 = 3;

/// The policy's view of the operator at this terminal.
pub fn cli_caller(tenant: TenantId) -> Caller {
    Caller {
        tenant_id: tenant,
        grant: format!("cli:{}", os_user()),
        person: None,
        role: Some(Role::Owner),
        scopes: Vec::new(),
        channel: Channel::Cli,
    }
}

/// Record a refusal by the policy: who, what, and the decision's rules.
async fn audit_refusal(
    db: &dyn Database,
    ctx: &RequestContext,
    auth: &Authorization,
    audit_action: &str,
    target: Option<String>,
) {
    let ev = AuditEvent {
        tenant_id: ctx.caller.tenant_id,
        at: SystemClock.now(),
        actor: ctx.caller.grant.clone(),
        role: ctx.caller.role.map(|r| r.as_str().to_string()),
        channel: Channel::Cli,
        source: None,
        client_ip: None,
        action: audit_action.to_string(),
        target,
        reason: ctx.args.reason.clone(),
        decision: "denied".into(),
        result: Some(auth.message()),
        request_id: None,
        detail: auth.audit_detail(),
    };
    if let Err(e) = db.append_audit(&ev).await {
        tracing::error!(error = %e, "could not record a refusal in the audit trail");
    }
}

/// Decide `ctx` and count it; a refusal is audited (as `audit_action`) and
/// returned as exit code 1 with the reasons.
async fn authorize(
    resolver: &PolicyResolver,
    db: &dyn Database,
    ctx: &RequestContext,
    audit_action: &str,
    target: Option<String>,
) -> Result<Authorization, CliError> {
    let auth = policy::authorize(resolver, db, ctx, SystemClock.now())
        .await
        .map_err(|e| CliError::Runtime(format!("cannot apply the policy: {e}")))?;
    if let Decision::Deny { .. } = auth.decision() {
        audit_refusal(db, ctx, &auth, audit_action, target).await;
        return Err(CliError::Runtime(refusal_message(&auth)));
    }
    Ok(auth)
}

/// The policy's reasons (a limit's say when it lifts).
fn refusal_message(auth: &Authorization) -> String {
    auth.message()
}

/// Authorize a read or an admin action of the operator (it names nobody
/// and cannot wait): `Ok` only when the policy allows it.
pub async fn require(app: &app::App, action: Action, audit_action: &str) -> Result<(), CliError> {
    let ctx = RequestContext {
        caller: cli_caller(TenantId::DEFAULT),
        action,
        args: ActionArgs::default(),
    };
    authorize(&app.cli_policy(), app.db.as_ref(), &ctx, audit_action, None).await?;
    Ok(())
}

/// The policy's question for this revocation.
pub fn revocation_context(input: &RevocationInput, connectors: Vec<String>) -> RequestContext {
    RequestContext {
        caller: cli_caller(input.tenant_id),
        action: Action::RevokeSessions,
        args: ActionArgs {
            usernames: vec![input.username.clone()],
            integration_targets: input.targets.clone(),
            connectors,
            reason: Some(input.reason.as_str().to_string()),
        },
    }
}

/// What the policy would decide now, counting nothing: lets `sever revoke`
/// refuse before asking for confirmation.
pub async fn precheck(app: &app::App, ctx: &RequestContext) -> Result<(), CliError> {
    let auth = policy::explain(&app.cli_policy(), app.db.as_ref(), ctx, SystemClock.now())
        .await
        .map_err(|e| CliError::Runtime(format!("cannot apply the policy: {e}")))?;
    if let Decision::Deny { .. } = auth.decision() {
        audit_refusal(
            app.db.as_ref(),
            ctx,
            &auth,
            "revoke_sessions",
            Some(ctx.args.usernames[0].to_string()),
        )
        .await;
        return Err(CliError::Runtime(refusal_message(&auth)));
    }
    Ok(())
}

/// `sever revoke` once confirmed: authorize (and count) the revocation,
/// write it (`queued`, or `pending_approval` when the policy wants a second
/// person), and run it — alongside work a crashed run left behind — unless
/// it waits for approval (exit 3).
pub async fn revoke(
    app: &app::App,
    ctx: &RequestContext,
    input: RevocationInput,
    json: bool,
) -> Result<ExitCode, CliError> {
    let engine = &app.engine;
    let target = Some(input.username.to_string());
    let auth = authorize(
        &app.cli_policy(),
        app.db.as_ref(),
        ctx,
        "revoke_sessions",
        target,
    )
    .await?;
    let submitted = approvals::submit_revocation(engine, app.db.as_ref(), input, &auth, None).await;
    let submission = match submitted {
        Ok(s) => s,
        Err(SubmitError::Denied(m)) => return Err(CliError::Runtime(m)),
        Err(SubmitError::Engine(e)) => return Err(e.into()),
        Err(SubmitError::Store(e)) => return Err(CliError::Runtime(e.to_string())),
    };
    match submission {
        Submission::Queued(new) => {
            // Work a crashed run left behind is finished alongside, never ahead of, this request.
            let (resumed, result) =
                tokio::join!(engine.resume_unfinished(), engine.execute(new.id, None));
            if let Err(e) = resumed {
                tracing::warn!(error = %e, "could not resume unfinished requests");
            }
            let req = result?;
            output::print_request(&req, json);
            Ok(exit_for(req.status))
        }
        Submission::PendingApproval(new, approval) => {
            let req = app
                .store
                .get_request(new.id)
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?
                .ok_or_else(|| CliError::Runtime(format!("request {} vanished", new.id)))?;
            output::print_request(&req, json);
            let hint = format!(
                "Request {id} is waiting for approval ({why}): run `sever approvals approve {id} --reason \"…\"` as another owner or admin before {at}.",
                id = new.id,
                why = approval.reasons.join("; "),
                at = approval.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
            );
            if json {
                eprintln!("{hint}");
            } else {
                println!("{hint}");
            }
            Ok(ExitCode::from(EXIT_PENDING_APPROVAL))
        }
    }
}

/// What the policy lets a bulk job do now.
pub enum BulkVerdict {
    /// Run it.
    Run,
    /// Hold it for `sever bulk approve`: the policy's reasons.
    Held(Vec<String>),
    /// The policy refuses it (audited): the message to show.
    Refused(String),
}

/// Decide a bulk job (the action `bulk_revoke`) for the operator at this
/// terminal with the CLI's policy (`sever_core::bulk::authorize_job`): the
/// accounts the policy protects are marked `skipped` (never called), more
/// than `threshold` people hold the job for approval, and a refusal is
/// audited and returned with the reasons. An error applying the policy (the
/// database, say) is an `Err`: nothing was decided.
pub async fn authorize_bulk_job(
    app: &app::App,
    store: &dyn sever_core::bulk::BulkStore,
    job: &sever_core::bulk::BulkJob,
    threshold: u64,
) -> Result<BulkVerdict, CliError> {
    let plan = app.engine.plan(job.targets.as_deref())?;
    let caller = cli_caller(job.tenant_id);
    let decided = sever_core::bulk::authorize_job(
        &app.cli_policy(),
        app.db.as_ref(),
        store,
        job,
        &caller,
        plan.iter().map(|(n, _)| n.to_string()).collect(),
        threshold,
        SystemClock.now(),
    )
    .await
    .map_err(|e| CliError::Runtime(format!("cannot apply the policy: {e}")))?;
    let auth = &decided.auth;
    match auth.decision() {
        Decision::Allow => Ok(BulkVerdict::Run),
        Decision::RequireApproval { reasons } => Ok(BulkVerdict::Held(reasons.clone())),
        Decision::Deny { .. } => {
            let ctx = RequestContext {
                caller,
                action: Action::BulkRevoke,
                args: ActionArgs {
                    reason: Some(job.reason.as_str().to_string()),
                    ..ActionArgs::default()
                },
            };
            audit_refusal(
                app.db.as_ref(),
                &ctx,
                auth,
                "bulk_revoke",
                Some(format!("bulk:{}", job.id)),
            )
            .await;
            Ok(BulkVerdict::Refused(refusal_message(auth)))
        }
    }
}
