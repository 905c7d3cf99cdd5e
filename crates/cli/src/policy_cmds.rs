//! `sever policy check|explain|show` and `sever approvals list|approve|deny`.
//!
//! `check` needs nothing but the file: it is what a CI job or an editor runs
//! on a policy before it is deployed, and its errors name each field at
//! fault. `explain` shows what the policy in force would decide for one
//! call, as someone (a key, a person, the CLI, an MCP client), and every
//! rule that led there, without counting anything. The approvals commands
//! are the terminal's side of the two-person rule: the CLI operator acts as
//! `cli:<os user>` with the owner role, or as a stored person (`--as`).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use sever_core::admin::{AuditEvent, Role, Scope};
use sever_core::approvals::{
    self, Approval, ApprovalError, ApprovalQuery, ApprovalState, Resolution,
};
use sever_core::policy::{
    self, Action, ActionArgs, Authorization, Caller, Decision, Policy, PolicyOrigin,
    PolicyResolver, RequestContext, Verdict,
};
use sever_core::{Channel, Clock, Database, Engine, RequestId, SystemClock, TenantId, Username};

use crate::{output, CliError};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; every problem is reported with its field (exit 2 if any).
    Check {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// What the policy in force would decide for one call, and why (counts nothing).
    Explain {
        /// The action: revoke_sessions, preview_revocation, get_revocation_status,
        /// list_connectors, bulk_revoke, manage_connectors, manage_settings,
        /// manage_keys, manage_policy, approve_request, read_audit.
        #[arg(long)]
        action: String,
        /// The person the call names (repeat for bulk_revoke).
        #[arg(long = "user")]
        users: Vec<String>,
        /// Who calls: an API key id (or its `sk_…` prefix), a person's email,
        /// `cli`, `mcp:<client id>` or `webhook`.
        #[arg(long = "as", default_value = "cli")]
        as_: String,
        /// The channel (default: the caller's own: cli, api for keys, ui for
        /// people, mcp, webhook).
        #[arg(long)]
        channel: Option<String>,
        /// The tenant (id, name or `default`; default: the caller's).
        #[arg(long)]
        tenant: Option<String>,
        /// Comma-separated connector instances the call names.
        #[arg(long, value_delimiter = ',')]
        targets: Option<Vec<String>>,
        #[arg(long)]
        reason: Option<String>,
        /// Scopes of an `mcp:` or `webhook` caller (default: sessions:revoke,sessions:read).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        #[arg(long)]
        json: bool,
    },
    /// The policy in force for a tenant, and where it comes from.
    Show {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// For `sever serve` callers (the default) or for the CLI itself.
        #[arg(long)]
        cli: bool,
    },
}

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// Requests waiting for approval (expired ones are expired first).
    List {
        /// Only this tenant (id, name or `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// pending (default), approved, denied, expired, or all.
        #[arg(long, default_value = "pending")]
        state: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Approve a held request: it is queued and runs (here, for the default
    /// tenant; otherwise on the server's worker).
    Approve {
        request_id: String,
        #[arg(long)]
        reason: String,
        /// Decide as this stored person (owner or admin) instead of `cli:<os user>`.
        #[arg(long = "as")]
        as_: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deny a held request: it becomes `rejected` and never runs.
    Deny {
        request_id: String,
        #[arg(long)]
        reason: String,
        #[arg(long = "as")]
        as_: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// What the policy and approvals commands need from the composition root.
pub struct PolicyEnv {
    pub db: Arc<dyn Database>,
    /// For calls made by the CLI itself: `PolicyResolver::for_cli(file)`.
    pub cli: PolicyResolver,
    /// For calls made to `sever serve`: `PolicyResolver::for_server(file)`.
    pub server: PolicyResolver,
    /// Runs a request approved here when it belongs to the default tenant
    /// (the embedded CLI's); `None` leaves every approved request to the
    /// server's worker.
    pub engine: Option<Arc<Engine>>,
    pub clock: Arc<dyn Clock>,
}

impl PolicyEnv {
    pub fn new(
        db: Arc<dyn Database>,
        file: Option<(String, Policy)>,
        engine: Option<Arc<Engine>>,
    ) -> Self {
        Self {
            db,
            cli: PolicyResolver::for_cli(file.clone()),
            server: PolicyResolver::for_server(file),
            engine,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Read and check a policy file: `Ok` with the policy, or the problems
/// (each `path: what is wrong`), prefixed with the file's name.
pub fn load_policy_file(path: &std::path::Path) -> Result<Policy, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{}: cannot read the policy: {e}", path.display())))?;
    Policy::from_json(&text).map_err(|e| {
        let lines: Vec<String> = e
            .problems
            .iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect();
        CliError::Usage(lines.join("\n"))
    })
}

fn store_err(e: sever_core::StoreError) -> CliError {
    CliError::Runtime(e.to_string())
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// `sever policy …`. `env` may be `None` for `check`, which needs no database.
pub async fn run_policy(
    command: PolicyCommand,
    env: Option<&PolicyEnv>,
) -> Result<ExitCode, CliError> {
    match command {
        PolicyCommand::Check { file, json } => check(&file, json),
        PolicyCommand::Explain {
            action,
            users,
            as_,
            channel,
            tenant,
            targets,
            reason,
            scopes,
            json,
        } => {
            let env = env.ok_or_else(|| {
                CliError::Usage("explain needs the configuration's database".into())
            })?;
            let action: Action = action
                .parse()
                .map_err(|e: String| CliError::Usage(format!("--action: {e}")))?;
            let tenant = match tenant {
                Some(t) => Some(resolve_tenant(env.db.as_ref(), &t).await?),
                None => None,
            };
            let mut caller = resolve_caller(env.db.as_ref(), &as_, tenant, scopes).await?;
            if let Some(ch) = channel {
                caller.channel = ch.parse::<Channel>().map_err(|_| {
                    CliError::Usage(format!(
                        "--channel: \"{ch}\" is not one of cli, api, webhook, mcp, ui"
                    ))
                })?;
            }
            let usernames = users
                .iter()
                .map(|u| Username::parse(u).map_err(|e| CliError::Usage(format!("--user: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if action.names_people() && usernames.is_empty() {
                return Err(CliError::Usage(format!(
                    "--user: {action} names a person; give --user EMAIL"
                )));
            }
            let ctx = RequestContext {
                caller,
                action,
                args: ActionArgs {
                    usernames,
                    integration_targets: targets.clone(),
                    connectors: targets.unwrap_or_default(),
                    reason,
                },
            };
            let resolver = if ctx.caller.channel == Channel::Cli {
                &env.cli
            } else {
                &env.server
            };
            let auth = policy::explain(resolver, env.db.as_ref(), &ctx, env.clock.now())
                .await
                .map_err(store_err)?;
            print_explanation(&ctx, &auth, json);
            Ok(if auth.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        PolicyCommand::Show { tenant, cli } => {
            let env = env
                .ok_or_else(|| CliError::Usage("show needs the configuration's database".into()))?;
            let tenant = resolve_tenant(env.db.as_ref(), &tenant).await?;
            let resolver = if cli { &env.cli } else { &env.server };
            let (p, origin) = resolver
                .for_tenant(env.db.as_ref(), tenant)
                .await
                .map_err(store_err)?;
            eprintln!("{}", origin_line(&origin));
            output::print_json(&p.to_value());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(file: &std::path::Path, json: bool) -> Result<ExitCode, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("{}: cannot read the policy: {e}", file.display())))?;
    match Policy::from_json(&text) {
        Ok(p) => {
            if json {
                output::print_json(
                    &serde_json::json!({"valid": true, "problems": [], "policy": p.to_value()}),
                );
            } else {
                let d = p.document();
                let tools: Vec<&str> = d.tools.keys().map(String::as_str).collect();
                println!(
                    "{}: valid (default {}; rules for {})",
                    file.display(),
                    d.default,
                    if tools.is_empty() {
                        "no action".to_string()
                    } else {
                        tools.join(", ")
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                output::print_json(&serde_json::json!({"valid": false, "problems": e.problems}));
            } else {
                for p in &e.problems {
                    eprintln!("{}: {p}", file.display());
                }
                eprintln!(
                    "{} problem{} found",
                    e.problems.len(),
                    if e.problems.len() == 1 { "" } else { "s" }
                );
            }
            // An invalid policy is a configuration error, as when a server loads it.
            Ok(ExitCode::from(2))
        }
    }
}

fn origin_line(origin: &PolicyOrigin) -> String {
    match origin {
        PolicyOrigin::File { path } => format!("Policy: the file {path} (from the configuration)"),
        PolicyOrigin::Stored {
            revision,
            updated_at,
            updated_by,
        } => format!(
            "Policy: stored for the tenant, revision {revision}, changed {} by {updated_by}",
            updated_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        PolicyOrigin::BuiltIn { name } => {
            format!("Policy: built-in ({name}); no policy file or stored policy")
        }
    }
}

fn print_explanation(ctx: &RequestContext, auth: &Authorization, json: bool) {
    if json {
        output::print_json(&serde_json::json!({"request": ctx, "authorization": auth}));
        return;
    }
    let e = &auth.evaluation;
    println!(
        "{} {} as {} over {}: {}",
        ctx.action,
        ctx.args
            .usernames
            .iter()
            .map(Username::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        ctx.caller.grant,
        ctx.caller.channel.as_str(),
        match &e.decision {
            Decision::Allow => "ALLOW".to_string(),
            Decision::Deny { .. } => "DENY".to_string(),
            Decision::RequireApproval { .. } => "REQUIRES APPROVAL".to_string(),
        }
    );
    for r in e.decision.reasons() {
        println!("  - {r}");
    }
    if let Some(at) = e.retry_at {
        println!("  retry after {}", at.to_rfc3339());
    }
    println!("{}", origin_line(&auth.origin));
    let rows: Vec<Vec<String>> = e
        .trace
        .iter()
        .map(|s| {
            let v = match s.verdict {
                Verdict::Pass => "pass",
                Verdict::Deny => "DENY",
                Verdict::RequireApproval => "APPROVAL",
                Verdict::Skip => "skip",
            };
            vec![v.to_string(), s.rule.clone(), s.detail.clone()]
        })
        .collect();
    print!("{}", output::table(&["VERDICT", "RULE", "DETAIL"], &rows));
}

/// `default`, a tenant id, or the name of exactly one tenant.
async fn resolve_tenant(db: &dyn Database, raw: &str) -> Result<TenantId, CliError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("default") {
        return Ok(TenantId::DEFAULT);
    }
    if let Ok(id) = TenantId::parse(raw) {
        return Ok(id);
    }
    let named: Vec<TenantId> = db
        .list_tenants()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|t| t.name == raw)
        .map(|t| t.id)
        .collect();
    match named.as_slice() {
        [id] => Ok(*id),
        [] => Err(CliError::Usage(format!(
            "--tenant: no tenant has the id or name '{raw}'"
        ))),
        _ => Err(CliError::Usage(format!(
            "--tenant: several tenants are named '{raw}'; give the id"
        ))),
    }
}

fn parse_scopes(raw: Option<Vec<String>>) -> Result<Vec<Scope>, CliError> {
    match raw {
        None => Ok(vec![Scope::SessionsRevoke, Scope::SessionsRead]),
        Some(list) => list
            .iter()
            .map(|s| {
                s.trim()
                    .parse::<Scope>()
                    .map_err(|e| CliError::Usage(format!("--scopes: {e}")))
            })
            .collect(),
    }
}

/// The caller `--as` names.
async fn resolve_caller(
    db: &dyn Database,
    raw: &str,
    tenant: Option<TenantId>,
    scopes: Option<Vec<String>>,
) -> Result<Caller, CliError> {
    let raw = raw.trim();
    let tenants = match tenant {
        Some(t) => vec![t],
        None => {
            let mut all: Vec<TenantId> = db
                .list_tenants()
                .await
                .map_err(store_err)?
                .into_iter()
                .map(|t| t.id)
                .collect();
            if !all.contains(&TenantId::DEFAULT) {
                all.insert(0, TenantId::DEFAULT);
            }
            all
        }
    };
    let home = tenant.unwrap_or(TenantId::DEFAULT);
    if raw == "cli" || raw.starts_with("cli:") {
        let name = raw
            .strip_prefix("cli:")
            .map_or_else(os_user, str::to_string);
        return Ok(Caller {
            tenant_id: home,
            grant: format!("cli:{name}"),
            person: None,
            role: Some(Role::Owner),
            scopes: vec![],
            channel: Channel::Cli,
        });
    }
    if raw == "webhook" || raw.starts_with("mcp:") {
        return Ok(Caller {
            tenant_id: home,
            grant: raw.to_string(),
            person: None,
            role: None,
            scopes: parse_scopes(scopes)?,
            channel: if raw == "webhook" {
                Channel::Webhook
            } else {
                Channel::Mcp
            },
        });
    }
    if raw.contains('@') {
        let email = raw.strip_prefix("user:").unwrap_or(raw);
        for t in &tenants {
            if let Some(u) = db.find_user(*t, email).await.map_err(store_err)? {
                if u.disabled {
                    return Err(CliError::Usage(format!("--as: {email} is disabled")));
                }
                return Ok(Caller {
                    tenant_id: u.tenant_id,
                    grant: format!("user:{}", u.email),
                    person: Some(u.email.clone()),
                    role: Some(u.role),
                    scopes: vec![],
                    channel: Channel::Ui,
                });
            }
        }
        return Err(CliError::Usage(format!(
            "--as: no user {email} (see `sever users list`)"
        )));
    }
    let wanted = raw.strip_prefix("key:").unwrap_or(raw);
    for t in &tenants {
        for k in db.list_api_keys(*t).await.map_err(store_err)? {
            if k.id.to_string() == wanted
                || (wanted.starts_with("sk_") && k.prefix.starts_with(wanted))
            {
                if k.revoked_at.is_some() {
                    return Err(CliError::Usage(format!(
                        "--as: API key {} is revoked",
                        k.id
                    )));
                }
                return Ok(Caller {
                    tenant_id: k.tenant_id,
                    grant: format!("key:{}", k.id),
                    person: k.created_by.strip_prefix("user:").map(str::to_string),
                    role: None,
                    scopes: k.scopes.clone(),
                    channel: Channel::Api,
                });
            }
        }
    }
    Err(CliError::Usage(format!(
        "--as: '{raw}' is not `cli`, `webhook`, `mcp:<id>`, a user's email or an API key id (see `sever keys list`)"
    )))
}

/// `sever approvals …`.
pub async fn run_approvals(
    command: ApprovalsCommand,
    env: &PolicyEnv,
) -> Result<ExitCode, CliError> {
    let now = env.clock.now();
    approvals::expire_due(env.db.as_ref(), now)
        .await
        .map_err(store_err)?;
    match command {
        ApprovalsCommand::List {
            tenant,
            state,
            limit,
            json,
        } => {
            let state = match state.as_str() {
                "all" => None,
                s => Some(
                    s.parse::<ApprovalState>()
                        .map_err(|e| CliError::Usage(format!("--state: {}", e.problem)))?,
                ),
            };
            if limit == 0 || limit > 1000 {
                return Err(CliError::Usage("--limit must be between 1 and 1000".into()));
            }
            let tenant_id = match tenant {
                Some(t) => Some(resolve_tenant(env.db.as_ref(), &t).await?),
                None => None,
            };
            let list = env
                .db
                .list_approvals(&ApprovalQuery {
                    tenant_id,
                    state,
                    limit,
                })
                .await
                .map_err(store_err)?;
            print_approvals(&list, json);
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve {
            request_id,
            reason,
            as_,
            json,
        } => {
            decide(
                env,
                &request_id,
                Resolution::Approve,
                &reason,
                as_.as_deref(),
                json,
            )
            .await
        }
        ApprovalsCommand::Deny {
            request_id,
            reason,
            as_,
            json,
        } => {
            decide(
                env,
                &request_id,
                Resolution::Deny,
                &reason,
                as_.as_deref(),
                json,
            )
            .await
        }
    }
}

async fn decide(
    env: &PolicyEnv,
    raw_id: &str,
    resolution: Resolution,
    reason: &str,
    as_: Option<&str>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let id = RequestId::parse(raw_id).map_err(|e| CliError::Usage(e.to_string()))?;
    let db = env.db.as_ref();
    let approval = db
        .get_approval(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "request {id} has no approval (it never needed one, or does not exist)"
            ))
        })?;
    let approver = match as_ {
        Some(email) => {
            let c = resolve_caller(db, email, Some(approval.tenant_id), None).await?;
            Caller {
                channel: Channel::Cli,
                ..c
            }
        }
        None => Caller {
            tenant_id: approval.tenant_id,
            grant: format!("cli:{}", os_user()),
            person: None,
            role: Some(Role::Owner),
            scopes: vec![],
            channel: Channel::Cli,
        },
    };
    let now = env.clock.now();
    let decided = approvals::decide(db, id, &approver, resolution, reason, None, now).await;
    let a = match decided {
        Ok(a) => a,
        Err(e) => {
            refusal(db, &approval, &approver, resolution, &e, now).await;
            return Err(match e {
                ApprovalError::Store(s) => store_err(s),
                other => CliError::Usage(other.to_string()),
            });
        }
    };
    if a.state == ApprovalState::Approved {
        if let (Some(engine), true) = (&env.engine, a.tenant_id == TenantId::DEFAULT) {
            let req = engine.execute(id, None).await?;
            output::print_request(&req, json);
            return Ok(crate::exit_for(req.status));
        }
    }
    if json {
        output::print_json(&a);
    } else {
        match a.state {
            ApprovalState::Approved => println!(
                "Approved request {id} ({} of {}); it is queued and the server's worker will run it.",
                a.action, a.username
            ),
            _ => println!("Denied request {id} ({} of {}); it will not run.", a.action, a.username),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A refused approve/deny is worth a record: it may be the requester
/// trying to approve their own request.
async fn refusal(
    db: &dyn Database,
    a: &Approval,
    approver: &Caller,
    resolution: Resolution,
    e: &ApprovalError,
    now: chrono::DateTime<chrono::Utc>,
) {
    let ev = AuditEvent {
        tenant_id: a.tenant_id,
        at: now,
        actor: approver.grant.clone(),
        role: approver.role.map(|r| r.as_str().to_string()),
        channel: Channel::Cli,
        source: None,
        client_ip: None,
        action: match resolution {
            Resolution::Approve => "approval.approve".into(),
            Resolution::Deny => "approval.deny".into(),
        },
        target: Some(a.username.clone()),
        reason: None,
        decision: "denied".into(),
        result: Some(e.to_string()),
        request_id: Some(a.request_id),
        detail: serde_json::json!({"requested_by": a.requested_by}),
    };
    if let Err(err) = db.append_audit(&ev).await {
        tracing::error!(error = %err, "could not record a refused approval in the audit trail");
    }
}

fn print_approvals(list: &[Approval], json: bool) {
    if json {
        output::print_json(list);
        return;
    }
    if list.is_empty() {
        println!("No approvals.");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.request_id.to_string(),
                a.state.to_string(),
                a.username.clone(),
                a.requested_by.clone(),
                a.channel.as_str().to_string(),
                a.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                a.reasons.join("; "),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "REQUEST",
                "STATE",
                "USER",
                "REQUESTED BY",
                "CHANNEL",
                "EXPIRES",
                "WHY"
            ],
            &rows
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_every_problem_with_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"version": "1", "default": "deny", "tools": {"revoke_sessions": {"limits": [
                {"counter": "revoke_sessions_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}"#,
        )
        .unwrap();
        assert_eq!(check(&good, false).unwrap(), ExitCode::SUCCESS);
        assert!(load_policy_file(&good).is_ok());
        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"version": "1", "tools": {"revoke_sessions": {"limits": [
                {"counter": "c", "window": "fortnight", "max": 10}]}}}"#,
        )
        .unwrap();
        assert_eq!(check(&bad, true).unwrap(), ExitCode::from(2));
        match load_policy_file(&bad) {
            Err(CliError::Usage(m)) => assert!(
                m.ends_with("bad.json: tools.revoke_sessions.limits[0].window: \"fortnight\" is not one of second, minute, hour, day"),
                "{m}"
            ),
            _ => panic!("not refused"),
        }
        assert!(matches!(
            check(&dir.path().join("missing.json"), false),
            Err(CliError::Usage(_))
        ));
    }

    fn explain(action: &str, users: &[&str], as_: &str, channel: Option<&str>) -> PolicyCommand {
        PolicyCommand::Explain {
            action: action.into(),
            users: users.iter().map(|u| u.to_string()).collect(),
            as_: as_.into(),
            channel: channel.map(str::to_string),
            tenant: None,
            targets: None,
            reason: None,
            scopes: None,
            json: false,
        }
    }

    #[tokio::test]
    async fn explain_decides_as_the_named_caller_and_approvals_follow_the_two_person_rule() {
        let dir = tempfile::tempdir().unwrap();
        let db = sever_store::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        let seed = Policy::from_json(
            r#"{"version": "1", "default": "deny", "tools": {"revoke_sessions": {"limits": [
                {"counter": "revoke_sessions_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}"#,
        )
        .unwrap();
        let env = PolicyEnv::new(db.clone(), Some(("seed.json".into(), seed)), None);
        let ok = run_policy(
            explain(
                "revoke_sessions",
                &["bob@example.com"],
                "mcp:agent",
                Some("mcp"),
            ),
            Some(&env),
        );
        assert_eq!(ok.await.unwrap(), ExitCode::SUCCESS);
        let no = run_policy(explain("list_connectors", &[], "cli", None), Some(&env));
        assert_eq!(no.await.unwrap(), ExitCode::from(1));
        let bad = run_policy(explain("revoke_sessions", &[], "cli", None), Some(&env)).await;
        assert!(matches!(bad, Err(CliError::Usage(m)) if m.contains("--user")));
        let bad = run_policy(
            explain("revoke_sessions", &["b@example.com"], "nobody", None),
            Some(&env),
        )
        .await;
        assert!(matches!(bad, Err(CliError::Usage(m)) if m.starts_with("--as")));

        // A held request: the requester may not decide it; another operator may.
        let mut req = sever_core::NewRequest {
            id: RequestId::new(),
            tenant_id: TenantId(uuid::Uuid::new_v4()),
            username: Username::parse("bob@example.com").unwrap(),
            reason: sever_core::Reason::parse("phished").unwrap(),
            channel: Channel::Mcp,
            requested_by: format!("cli:{}", os_user()),
            status: sever_core::RequestStatus::PendingApproval,
            targets: vec![],
            created_at: chrono::Utc::now(),
        };
        let approval = |req: &sever_core::NewRequest| Approval {
            request_id: req.id,
            tenant_id: req.tenant_id,
            action: "revoke_sessions".into(),
            username: req.username.to_string(),
            request_reason: "phished".into(),
            channel: req.channel,
            requested_by: req.requested_by.clone(),
            requester_person: None,
            reasons: vec!["calls over mcp need approval".into()],
            state: ApprovalState::Pending,
            created_at: req.created_at,
            expires_at: req.created_at + chrono::Duration::minutes(30),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        };
        let audit = |req: &sever_core::NewRequest| AuditEvent {
            tenant_id: req.tenant_id,
            at: req.created_at,
            actor: req.requested_by.clone(),
            role: None,
            channel: req.channel,
            source: None,
            client_ip: None,
            action: "revoke_sessions".into(),
            target: None,
            reason: None,
            decision: "allowed".into(),
            result: Some("pending_approval".into()),
            request_id: Some(req.id),
            detail: serde_json::json!({}),
        };
        db.insert_pending_request(&req, &approval(&req), &audit(&req))
            .await
            .unwrap();
        let approve = |id: RequestId| ApprovalsCommand::Approve {
            request_id: id.to_string(),
            reason: "verified".into(),
            as_: None,
            json: false,
        };
        let mine = run_approvals(approve(req.id), &env).await;
        assert!(
            matches!(mine, Err(CliError::Usage(m)) if m.contains("two-person rule")),
            "self-approval"
        );
        let audit_trail = db
            .list_audit(&sever_core::admin::AuditQuery {
                tenant_id: Some(req.tenant_id),
                after_seq: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(audit_trail.last().unwrap().event.decision, "denied");

        req.id = RequestId::new();
        req.requested_by = "mcp:agent".into();
        db.insert_pending_request(&req, &approval(&req), &audit(&req))
            .await
            .unwrap();
        assert_eq!(
            run_approvals(approve(req.id), &env).await.unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(
            db.get_request(req.id).await.unwrap().unwrap().status,
            sever_core::RequestStatus::Queued
        );
        let again = ApprovalsCommand::Deny {
            request_id: req.id.to_string(),
            reason: "no".into(),
            as_: None,
            json: false,
        };
        assert!(
            matches!(run_approvals(again, &env).await, Err(CliError::Usage(m)) if m.contains("already approved"))
        );
        let list = ApprovalsCommand::List {
            tenant: None,
            state: "all".into(),
            limit: 10,
            json: true,
        };
        assert_eq!(run_approvals(list, &env).await.unwrap(), ExitCode::SUCCESS);
    }
}
