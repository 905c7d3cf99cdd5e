//! `sever`: the command line. Parses arguments into domain types, builds the
//! app from configuration, calls the core, and prints results for people
//! (tables) or programs (`--json`). Exit codes: 0 success, 1 a request or
//! check failed or the policy refused, 2 bad usage or configuration, 3 the
//! revocation waits for a second person's approval (`sever approvals`).
//!
//! A library so the integration tests can reuse the composition root and the
//! demo configuration writer; `main.rs` only parses and maps the exit code.

pub mod admin_cmds;
pub mod app;
pub mod bench_cmd;
pub mod bulk_cmd;
pub mod config;
pub mod demo;
pub mod lockfile;
pub mod logging;
pub mod mcp_cmd;
pub mod output;
pub mod policy_cmds;
pub mod policy_guard;
pub mod rotate;
pub mod serve;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sever_core::policy::Action;
use sever_core::{
    CallContext, Channel, EngineError, Reason, RequestId, RequestQuery, RequestStatus,
    RevocationInput, TenantId, Username,
};

#[derive(Parser)]
#[command(
    name = "sever",
    version,
    about = "End a person's sessions in every connected identity provider and SaaS app, and keep one durable record of what happened."
)]
pub struct Cli {
    /// Configuration file (default: $SEVER_CONFIG, else ./sever.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log progress to stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Revoke every session of one person in every enabled connector (or --targets).
    Revoke {
        /// Email, UPN or login of the person.
        username: String,
        /// Comma-separated connector names (default: every enabled connector).
        #[arg(long, value_delimiter = ',')]
        targets: Option<Vec<String>>,
        /// Why (stored with the request).
        #[arg(long, default_value = "")]
        reason: String,
        /// Print the full request record as JSON.
        #[arg(long)]
        json: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Revoke many people at once under one incident id (CSV input), resume, export.
    Bulk {
        #[command(subcommand)]
        command: bulk_cmd::BulkCommand,
    },
    /// Show one request with every connector's outcome and attempts.
    Status {
        request_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List recent requests, newest first.
    Requests {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only requests in this status.
        #[arg(long)]
        status: Option<String>,
        /// Only requests for this person.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Finish requests left queued or running by a process that stopped.
    Resume {
        #[arg(long)]
        json: bool,
    },
    /// Configured connectors.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// Serve the provider simulators on loopback and print their addresses.
    Sim {
        /// Latency added to every simulated call, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Write a sever.toml pointing at the simulators to this path.
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
    /// Start the simulators with a demo directory, revoke the demo people, and keep serving.
    Demo {
        /// Where to write the demo configuration, database and key.
        #[arg(long, default_value = "sever-demo")]
        dir: PathBuf,
        /// Exit after the showcase instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
        /// Listen address (default 127.0.0.1:8080, else any free port).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Write the demo credentials as JSON to this file (mode 0600)
        /// instead of printing them.
        #[arg(long)]
        credentials_out: Option<PathBuf>,
    },
    /// Run the HTTP service (REST API, signed webhook, worker) until Ctrl-C or SIGTERM.
    Serve {
        /// Listen address (default: [server] bind, else 127.0.0.1:8080; port 0 picks one).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// Tenants of the service.
    Tenants {
        #[command(subcommand)]
        command: admin_cmds::TenantsCommand,
    },
    /// Local users (people who log in) of a tenant.
    Users {
        #[command(subcommand)]
        command: admin_cmds::UsersCommand,
    },
    /// API keys of a tenant, and rotation of the master key that seals secrets.
    Keys {
        #[command(subcommand)]
        command: admin_cmds::KeysCommand,
    },
    /// Verify or export the audit trail.
    Audit {
        #[command(subcommand)]
        command: admin_cmds::AuditCommand,
    },
    /// Serve MCP over stdio for an AI agent's client, as the API key in
    /// SEVER_API_KEY (or [mcp] api_key).
    Mcp,
    /// Check a policy file, explain a decision, show the policy in force.
    Policy {
        #[command(subcommand)]
        command: policy_cmds::PolicyCommand,
    },
    /// Revocations held for a second person's approval: list, approve, deny.
    Approvals {
        #[command(subcommand)]
        command: policy_cmds::ApprovalsCommand,
    },
    /// The webhook throughput benchmark (bench/webhook_load.sh).
    #[command(hide = true)]
    BenchWebhook(bench_cmd::BenchArgs),
}

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// List configured connector instances.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check credentials, lookup and permissions of one connector.
    Test {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// A failure of the command itself, with the exit code it maps to.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Runtime(String),
}

impl From<config::ConfigError> for CliError {
    fn from(e: config::ConfigError) -> Self {
        CliError::Usage(format!("configuration error: {e}"))
    }
}

impl From<app::AppError> for CliError {
    fn from(e: app::AppError) -> Self {
        match e {
            app::AppError::Connector { .. }
            | app::AppError::MasterKey(_)
            | app::AppError::Policy(_) => CliError::Usage(format!("configuration error: {e}")),
            app::AppError::Store { .. } => CliError::Runtime(e.to_string()),
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(_) | EngineError::NoConnectors => CliError::Usage(e.to_string()),
            _ => CliError::Runtime(e.to_string()),
        }
    }
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not in a log file or journal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Sim {
            latency_ms,
            write_config,
        } => demo::serve_sims(Duration::from_millis(latency_ms), write_config).await,
        Command::Demo {
            dir,
            once,
            addr,
            credentials_out,
        } => demo::run(&dir, once, addr, credentials_out.as_deref()).await,
        Command::Serve { bind } => {
            let config = config::Config::load(cli.config.as_deref())?;
            logging::init_service(logging::LogFormat::resolve(config.log_format), cli.verbose);
            serve::run(&config, bind).await
        }
        Command::Tenants { command } => {
            let config = config::Config::load(cli.config.as_deref())?;
            admin_cmds::tenants(app::open_database(&config).await?.as_ref(), command).await
        }
        Command::Users { command } => {
            let config = config::Config::load(cli.config.as_deref())?;
            admin_cmds::users(app::open_database(&config).await?.as_ref(), command).await
        }
        Command::Keys { command } => {
            let config = config::Config::load(cli.config.as_deref())?;
            let db = app::open_database(&config).await?;
            admin_cmds::keys(&config, db.as_ref(), command).await
        }
        Command::Audit { command } => {
            let config = config::Config::load(cli.config.as_deref())?;
            admin_cmds::audit(app::open_database(&config).await?.as_ref(), command).await
        }
        Command::Mcp => {
            let config = config::Config::load(cli.config.as_deref())?;
            mcp_cmd::run(&config).await
        }
        Command::BenchWebhook(args) => bench_cmd::run(args).await,
        // Checking a file needs no configuration, database or key.
        Command::Policy {
            command: command @ policy_cmds::PolicyCommand::Check { .. },
        } => policy_cmds::run_policy(command, None).await,
        Command::Policy { command } => {
            let config = config::Config::load(cli.config.as_deref())?;
            let app = app::build(&config).await?;
            let env = policy_cmds::PolicyEnv::new(
                app.db.clone(),
                app.policy_file.clone(),
                Some(app.engine.clone()),
            );
            policy_cmds::run_policy(command, Some(&env)).await
        }
        Command::Approvals { command } => {
            let config = config::Config::load(cli.config.as_deref())?;
            let app = app::build(&config).await?;
            let env = policy_cmds::PolicyEnv::new(
                app.db.clone(),
                app.policy_file.clone(),
                Some(app.engine.clone()),
            );
            policy_cmds::run_approvals(command, &env).await
        }
        command => {
            let config = config::Config::load(cli.config.as_deref())?;
            let app = app::build(&config).await?;
            run_with(app, command).await
        }
    }
}

pub(crate) fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub async fn run_with(app: app::App, command: Command) -> Result<ExitCode, CliError> {
    let engine = &app.engine;
    match command {
        Command::Revoke {
            username,
            targets,
            reason,
            json,
            yes,
        } => {
            let username =
                Username::parse(&username).map_err(|e| CliError::Usage(e.to_string()))?;
            let reason = Reason::parse(&reason).map_err(|e| CliError::Usage(e.to_string()))?;
            let plan = engine.plan(targets.as_deref())?;
            let input = RevocationInput {
                tenant_id: TenantId::DEFAULT,
                username,
                reason,
                channel: Channel::Cli,
                requested_by: format!("cli:{}", os_user()),
                targets,
                source: None,
                client_ip: None,
            };
            let ctx = policy_guard::revocation_context(
                &input,
                plan.iter().map(|(n, _)| n.to_string()).collect(),
            );
            // A call the policy refuses is refused before asking anything.
            policy_guard::precheck(&app, &ctx).await?;
            let username = &input.username;
            if !yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                let names: Vec<_> = plan.iter().map(|(n, _)| n.as_str()).collect();
                eprint!(
                    "Revoke every session of {username} in {}? [y/N] ",
                    names.join(", ")
                );
                std::io::stderr().flush().ok();
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).ok();
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("Cancelled; nothing was revoked.");
                    return Ok(ExitCode::from(1));
                }
            }
            policy_guard::revoke(&app, &ctx, input, json).await
        }
        Command::Bulk { command } => bulk_cmd::run(&app, command).await,
        Command::Status { request_id, json } => {
            let id = RequestId::parse(&request_id).map_err(|e| CliError::Usage(e.to_string()))?;
            policy_guard::require(&app, Action::GetRevocationStatus, "revocation.read").await?;
            let req = app
                .store
                .get_request(id)
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?
                .ok_or_else(|| CliError::Usage(format!("request {id} was not found")))?;
            output::print_request(&req, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Requests {
            limit,
            status,
            user,
            json,
        } => {
            let status = status
                .map(|s| s.parse::<RequestStatus>())
                .transpose()
                .map_err(|e| CliError::Usage(e.to_string()))?;
            if limit == 0 || limit > 1000 {
                return Err(CliError::Usage("--limit must be between 1 and 1000".into()));
            }
            policy_guard::require(&app, Action::GetRevocationStatus, "revocation.list").await?;
            let list = app
                .store
                .list_requests(&RequestQuery {
                    tenant_id: None,
                    status,
                    username: user,
                    limit,
                    before: None,
                })
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            output::print_requests(&list, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume { json } => {
            let done = engine.resume_unfinished().await?;
            if json {
                output::print_json(&done);
            } else if done.is_empty() {
                println!("Nothing to resume.");
            } else {
                for r in &done {
                    output::print_request(r, false);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Connectors { command } => match command {
            ConnectorsCommand::List { json } => {
                policy_guard::require(&app, Action::ListConnectors, "connector.list").await?;
                output::print_connectors(engine, json);
                Ok(ExitCode::SUCCESS)
            }
            ConnectorsCommand::Test { name, json } => {
                policy_guard::require(&app, Action::ManageConnectors, "connector.test").await?;
                let connector = engine.connector(&name).ok_or_else(|| {
                    let known: Vec<_> = engine
                        .connectors()
                        .map(|(c, _)| c.instance().to_string())
                        .collect();
                    CliError::Usage(format!(
                        "unknown connector '{name}' (configured: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?;
                let settings = engine.settings();
                let cx = CallContext::new(
                    std::time::Instant::now() + settings.request_deadline,
                    settings.retry,
                );
                let report = connector.test(&cx).await;
                output::print_test(connector.instance().as_str(), &report, json);
                Ok(if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        },
        Command::Sim { .. }
        | Command::Demo { .. }
        | Command::Serve { .. }
        | Command::Tenants { .. }
        | Command::Users { .. }
        | Command::Keys { .. }
        | Command::Audit { .. }
        | Command::Mcp
        | Command::Policy { .. }
        | Command::Approvals { .. }
        | Command::BenchWebhook(_) => Err(CliError::Usage(
            "this command does not run on the CLI's engine".into(),
        )),
    }
}

pub fn exit_for(status: RequestStatus) -> ExitCode {
    if status == RequestStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
