//! `sever bulk`: revoke many people under one incident id (issue 7).
//!
//! `bulk revoke --csv users.csv` streams the file into a durable bulk job
//! (bad rows reported with their line numbers); `--all`, `--risky LEVEL`
//! and `--group GROUP` with `--connector NAME` stream a connector's
//! directory into it page by page instead. It then checks the job against policy
//! (the action `bulk_revoke`: above `--approval-threshold` people it waits
//! for `sever bulk approve`), then runs it with a progress bar (plain lines
//! when stderr is not a terminal). `bulk resume` picks up every unfinished
//! job after a crash: the rest of the input, then every person not yet done.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use sever_core::bulk::{
    self, BulkError, BulkJob, BulkJobId, BulkProgress, BulkRunner, BulkSettings, BulkState, UserCsv,
};
use sever_core::{Channel, Reason, RiskLevel, Selection, TenantId};

use crate::{app::App, output, CliError};

/// More people than this need approval unless `--approval-threshold` says otherwise.
pub const DEFAULT_APPROVAL_THRESHOLD: u64 = 1000;

#[derive(Subcommand)]
pub enum BulkCommand {
    /// Revoke every session of every person in a CSV file (a column
    /// UserPrincipalName, email or username), or of the people a
    /// connector's directory lists (--all, --risky LEVEL, --group GROUP
    /// with --connector NAME).
    Revoke {
        /// The CSV file (streamed; any size).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Everyone in the directory of --connector.
        #[arg(long)]
        all: bool,
        /// Everyone Entra ID Protection rates at this risk level (low, medium, high); Entra only.
        #[arg(long, value_name = "LEVEL")]
        risky: Option<String>,
        /// The user members of a group of --connector (Okta group id, Entra group object id, Google group email).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// The connector instance whose directory --all, --risky or --group reads.
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        /// Why (stored with every request).
        #[arg(long)]
        reason: String,
        /// The incident this job belongs to (default: one made up from the job id).
        #[arg(long, default_value = "")]
        incident: String,
        /// Comma-separated connector names (default: every enabled connector).
        #[arg(long, value_delimiter = ',')]
        targets: Option<Vec<String>>,
        /// Write one row per person with the outcome in every connector.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Resume every unfinished bulk job (or just JOB) after a crash or restart.
    Resume {
        job: Option<String>,
        #[arg(long)]
        export: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Approve a job held for approval, and run it.
    Approve {
        job: String,
        #[arg(long)]
        export: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Show a job's counts.
    Status {
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a job's per-person results as CSV.
    Export {
        job: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// List bulk jobs, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// People in flight at once (each provider is still paced to its own limit).
    #[arg(long, default_value_t = 64, env = "SEVER_BULK_CONCURRENCY")]
    pub concurrency: usize,
    /// Jobs with more people than this wait for `sever bulk approve`.
    #[arg(long, default_value_t = DEFAULT_APPROVAL_THRESHOLD, env = "SEVER_BULK_APPROVAL_THRESHOLD")]
    pub approval_threshold: u64,
    /// Accounts never revoked in bulk (`*` wildcards); repeat or comma-separate.
    #[arg(long, value_delimiter = ',', env = "SEVER_BULK_PROTECTED")]
    pub protect: Vec<String>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress_bar: bool,
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

impl From<BulkError> for CliError {
    fn from(e: BulkError) -> Self {
        match e {
            BulkError::Csv(_) | BulkError::Invalid(_) | BulkError::NotFound(_) => usage(e),
            BulkError::Engine(e) => e.into(),
            _ => CliError::Runtime(e.to_string()),
        }
    }
}

/// The engine of a bulk run: the app's connectors, with a request deadline
/// long enough for a person's calls to wait their turn in each provider's
/// budget (an urgent single revocation keeps the configured one).
fn bulk_engine(app: &App) -> std::sync::Arc<sever_core::Engine> {
    let mut settings = *app.engine.settings();
    settings.request_deadline = settings.request_deadline.max(BULK_REQUEST_DEADLINE);
    let mut engine = sever_core::Engine::new(
        app.store.clone(),
        std::sync::Arc::new(sever_core::SystemClock),
        settings,
    );
    for (c, enabled) in app.engine.connectors() {
        engine = engine.with_connector(c.clone(), enabled);
    }
    std::sync::Arc::new(engine)
}

/// How long one person's request of a bulk job may take, paced waits included.
const BULK_REQUEST_DEADLINE: Duration = Duration::from_secs(30 * 60);

fn runner(app: &App, run: &RunArgs) -> BulkRunner {
    BulkRunner::new(
        bulk_engine(app),
        app.db.clone(),
        BulkSettings {
            concurrency: run.concurrency.max(1),
            protected: run.protect.clone(),
        },
    )
}

pub async fn run(app: &App, command: BulkCommand) -> Result<ExitCode, CliError> {
    match command {
        BulkCommand::Revoke {
            csv,
            all,
            risky,
            group,
            connector,
            reason,
            incident,
            targets,
            export,
            yes,
            run,
        } => {
            let input = input_of(app, csv, all, risky, group, connector)?;
            let reason = Reason::parse(&reason).map_err(usage)?;
            let csv = match &input {
                Input::Csv(csv) => Some(csv.clone()),
                Input::Directory { .. } => None,
            };
            let rows = match &csv {
                Some(csv) => {
                    let file = std::fs::File::open(csv)
                        .map_err(|e| usage(format!("cannot open {}: {e}", csv.display())))?;
                    Some(
                        UserCsv::new(std::io::BufReader::with_capacity(1 << 16, file))
                            .map_err(usage)?,
                    )
                }
                None => None,
            };
            let plan = app.engine.plan(targets.as_deref())?;
            if !yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                let names: Vec<_> = plan.iter().map(|(n, _)| n.as_str()).collect();
                eprint!(
                    "Revoke every session of every person in {} in {}? [y/N] ",
                    input.describe(),
                    names.join(", ")
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).ok();
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("Cancelled; nothing was revoked.");
                    return Ok(ExitCode::from(1));
                }
            }
            let r = runner(app, &run);
            let source = match &input {
                Input::Csv(csv) => {
                    let path = std::fs::canonicalize(csv).unwrap_or(csv.clone());
                    format!("csv:{}", path.display())
                }
                Input::Directory {
                    connector,
                    selection,
                } => format!("{}:{}", connector.instance(), selection.label()),
            };
            let job = r
                .create(bulk::NewBulkJob {
                    tenant_id: TenantId::DEFAULT,
                    incident_id: incident,
                    reason,
                    channel: Channel::Cli,
                    requested_by: format!("cli:{}", crate::os_user()),
                    targets,
                    source,
                })
                .await?;
            eprintln!(
                "Bulk job {} (incident {}): reading {}",
                job.id,
                job.incident_id,
                input.describe()
            );
            match (&input, rows) {
                (
                    Input::Directory {
                        connector,
                        selection,
                    },
                    _,
                ) => {
                    ingest_directory(app, &r, &job, connector.as_ref(), selection, None).await?;
                }
                (Input::Csv(_), Some(rows)) => {
                    ingest(&r, &job, rows).await?;
                }
                (Input::Csv(_), None) => {}
            }
            drive(app, &r, job.id, &run, export.as_deref()).await
        }
        BulkCommand::Resume { job, export, run } => {
            let r = runner(app, &run);
            let jobs = match job {
                Some(j) => vec![r.job(BulkJobId::parse(&j).map_err(usage)?).await?],
                None => r.store().list_bulk_jobs(true).await.map_err(rt)?,
            };
            let mut code = ExitCode::SUCCESS;
            let mut any = false;
            for job in jobs.into_iter().rev() {
                if job.state == BulkState::PendingApproval {
                    eprintln!(
                        "Bulk job {} waits for approval: sever bulk approve {}",
                        job.id, job.id
                    );
                    continue;
                }
                any = true;
                eprintln!(
                    "Resuming bulk job {} (incident {})",
                    job.id, job.incident_id
                );
                if !job.input_done {
                    resume_input(app, &r, &job).await?;
                }
                let c = drive(app, &r, job.id, &run, export.as_deref()).await?;
                if c != ExitCode::SUCCESS {
                    code = c;
                }
            }
            if !any {
                eprintln!("No bulk job to resume.");
            }
            Ok(code)
        }
        BulkCommand::Approve { job, export, run } => {
            let r = runner(app, &run);
            let job = r.job(BulkJobId::parse(&job).map_err(usage)?).await?;
            if job.state != BulkState::PendingApproval {
                return Err(usage(format!(
                    "bulk job {} is {}, not pending approval",
                    job.id,
                    job.state.as_str()
                )));
            }
            // The operator at this terminal holds the database and is the
            // owner (docs/policy.md): the CLI's approval is theirs, audited.
            // Over the API a second person approves (two-person rule).
            let moved = r
                .store()
                .transition_bulk_state(
                    job.id,
                    BulkState::PendingApproval,
                    BulkState::Running,
                    chrono::Utc::now(),
                )
                .await
                .map_err(rt)?;
            if !moved {
                return Err(usage(format!(
                    "bulk job {} was decided meanwhile; it no longer waits for approval",
                    job.id
                )));
            }
            let ev = sever_core::admin::AuditEvent {
                tenant_id: job.tenant_id,
                at: chrono::Utc::now(),
                actor: format!("cli:{}", crate::os_user()),
                role: Some("owner".into()),
                channel: Channel::Cli,
                source: None,
                client_ip: None,
                action: "bulk.approve".into(),
                target: Some(format!("bulk:{}", job.id)),
                reason: None,
                decision: "allowed".into(),
                result: Some(format!("{} rows", job.rows)),
                request_id: None,
                detail: serde_json::json!({"bulk_job": job.id, "incident_id": job.incident_id}),
            };
            if let Err(e) = app.db.append_audit(&ev).await {
                tracing::warn!(error = %e, "could not record the approval in the audit trail");
            }
            eprintln!("Bulk job {} approved by cli:{}", job.id, crate::os_user());
            let run = RunArgs {
                approval_threshold: u64::MAX,
                ..run
            };
            drive(app, &r, job.id, &run, export.as_deref()).await
        }
        BulkCommand::Status { job, json } => {
            let r = runner(app, &RunArgs::default_args());
            let job = r.job(BulkJobId::parse(&job).map_err(usage)?).await?;
            let counts = r.count(job.id).await?;
            if json {
                output::print_json(&serde_json::json!({"job": job, "progress": counts}));
            } else {
                print_job(&job, &counts);
            }
            Ok(ExitCode::SUCCESS)
        }
        BulkCommand::Export { job, out } => {
            let r = runner(app, &RunArgs::default_args());
            let id = BulkJobId::parse(&job).map_err(usage)?;
            export_to(&r, id, &out).await?;
            Ok(ExitCode::SUCCESS)
        }
        BulkCommand::List { json } => {
            let jobs = app.db.list_bulk_jobs(false).await.map_err(rt)?;
            if json {
                output::print_json(&jobs);
            } else {
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.incident_id.clone(),
                            j.state.as_str().into(),
                            j.rows.to_string(),
                            j.invalid.to_string(),
                            j.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    output::table(
                        &["JOB", "INCIDENT", "STATE", "ROWS", "INVALID", "CREATED"],
                        &rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl RunArgs {
    fn default_args() -> Self {
        RunArgs {
            concurrency: 64,
            approval_threshold: DEFAULT_APPROVAL_THRESHOLD,
            protect: vec![],
            no_progress_bar: true,
        }
    }
}

fn rt(e: impl std::fmt::Display) -> CliError {
    CliError::Runtime(e.to_string())
}

fn print_job(job: &BulkJob, p: &BulkProgress) {
    println!(
        "Bulk job {}  incident {}  {}\n  rows {}  completed {}  failed {}  skipped {}  invalid {}  remaining {}",
        job.id,
        job.incident_id,
        job.state.as_str(),
        p.total,
        p.completed,
        p.failed,
        p.skipped,
        p.invalid,
        p.total.saturating_sub(p.done())
    );
}

/// Store the input, reporting bad rows with their line numbers.
async fn ingest<R: std::io::Read>(
    r: &BulkRunner,
    job: &BulkJob,
    rows: UserCsv<R>,
) -> Result<bulk::IngestReport, CliError> {
    let mut shown = 0u32;
    let started = Instant::now();
    let mut last = Instant::now();
    let report = bulk::ingest(
        r.store().as_ref(),
        job.id,
        rows,
        |bad| {
            shown += 1;
            if shown <= 100 {
                eprintln!(
                    "line {}: skipped: {}{}",
                    bad.line,
                    bad.note.as_deref().unwrap_or("invalid"),
                    if bad.username.is_empty() {
                        String::new()
                    } else {
                        format!(" ({:?})", bad.username)
                    }
                );
            } else if shown == 101 {
                eprintln!("(more bad rows: see the export)");
            }
        },
        |p| {
            if last.elapsed() >= Duration::from_secs(2) {
                last = Instant::now();
                eprintln!("  read {} rows ({} invalid)", p.rows, p.invalid);
            }
        },
    )
    .await?;
    eprintln!(
        "Read {} rows in {:.1}s: {} people, {} invalid",
        report.rows,
        started.elapsed().as_secs_f64(),
        report.valid,
        report.invalid
    );
    Ok(report)
}

/// Where the people of a `bulk revoke` come from.
enum Input {
    Csv(PathBuf),
    Directory {
        connector: std::sync::Arc<dyn sever_core::Connector>,
        selection: Selection,
    },
}

impl Input {
    fn describe(&self) -> String {
        match self {
            Input::Csv(p) => p.display().to_string(),
            Input::Directory {
                connector,
                selection,
            } => match selection {
                Selection::All => format!("the directory of {}", connector.instance()),
                Selection::Risky(l) => {
                    format!("{} (people at {} risk)", connector.instance(), l.as_str())
                }
                Selection::Group(g) => format!("{} group {g}", connector.instance()),
            },
        }
    }
}

/// Exactly one of --csv, --all, --risky and --group; --connector with (and
/// only with) the last three, naming a connector that can list them.
/// Checked before a job exists, so a bad combination changes nothing.
fn input_of(
    app: &App,
    csv: Option<PathBuf>,
    all: bool,
    risky: Option<String>,
    group: Option<String>,
    connector: Option<String>,
) -> Result<Input, CliError> {
    let mut chosen = Vec::new();
    if csv.is_some() {
        chosen.push("--csv");
    }
    if all {
        chosen.push("--all");
    }
    if risky.is_some() {
        chosen.push("--risky");
    }
    if group.is_some() {
        chosen.push("--group");
    }
    if chosen.len() != 1 {
        return Err(usage(format!(
            "name the people with exactly one of --csv FILE, --all, --risky LEVEL or --group GROUP{}",
            if chosen.is_empty() {
                String::new()
            } else {
                format!(" (got {})", chosen.join(" and "))
            }
        )));
    }
    let selection = match (csv, risky, group) {
        (Some(csv), _, _) => {
            if connector.is_some() {
                return Err(usage(
                    "--connector goes with --all, --risky or --group, not with --csv (use --targets to choose where to revoke)",
                ));
            }
            return Ok(Input::Csv(csv));
        }
        (None, Some(level), _) => Selection::Risky(
            RiskLevel::parse(&level)
                .map_err(|_| usage(format!("--risky takes low, medium or high, not {level:?}")))?,
        ),
        (None, None, Some(g)) if g.trim().is_empty() => {
            return Err(usage("--group needs a group id or email"))
        }
        (None, None, Some(g)) => Selection::Group(g.trim().to_string()),
        (None, None, None) => Selection::All,
    };
    let flag = selection.flag();
    let Some(name) = connector else {
        return Err(usage(format!(
            "{flag} needs --connector NAME: the connector whose directory to read"
        )));
    };
    let Some(connector) = app.engine.connector(&name).cloned() else {
        let known: Vec<String> = app
            .engine
            .connectors()
            .map(|(c, _)| c.instance().to_string())
            .collect();
        return Err(usage(format!(
            "{flag}: no connector named {name:?} (configured: {})",
            known.join(", ")
        )));
    };
    if !app
        .engine
        .connectors()
        .any(|(c, enabled)| enabled && c.instance() == connector.instance())
    {
        return Err(usage(format!(
            "{flag}: connector {name} is disabled; enable it to read its directory"
        )));
    }
    let Some(directory) = connector.directory() else {
        return Err(usage(format!(
            "{flag}: {} ({}) cannot list its people",
            name,
            connector.provider()
        )));
    };
    directory.supports(&selection).map_err(usage)?;
    Ok(Input::Directory {
        connector,
        selection,
    })
}

/// Store the people a connector's directory lists, page by page.
async fn ingest_directory(
    app: &App,
    r: &BulkRunner,
    job: &BulkJob,
    connector: &dyn sever_core::Connector,
    selection: &Selection,
    seen: Option<HashSet<String>>,
) -> Result<bulk::IngestReport, CliError> {
    let Some(directory) = connector.directory() else {
        return Err(rt(format!(
            "{} cannot list its people",
            connector.instance()
        )));
    };
    let settings = *app.engine.settings();
    let deadline = settings.request_deadline.max(LIST_PAGE_DEADLINE);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut shown = 0u32;
    let report = bulk::ingest_directory(
        r.store().as_ref(),
        job,
        bulk::Listing {
            directory,
            selection,
            new_cx: &|| sever_core::CallContext::new(Instant::now() + deadline, settings.retry),
        },
        seen,
        |bad| {
            shown += 1;
            if shown <= 100 {
                eprintln!(
                    "skipped: {} ({:?})",
                    bad.note.as_deref().unwrap_or("invalid"),
                    bad.username
                );
            }
        },
        |p| {
            if last.elapsed() >= Duration::from_secs(2) {
                last = Instant::now();
                eprintln!("  listed {} people", p.rows);
            }
        },
    )
    .await
    .map_err(|e| match e {
        BulkError::Directory(m) => CliError::Runtime(m),
        other => other.into(),
    })?;
    eprintln!(
        "Listed {} people in {:.1}s ({} invalid)",
        report.rows,
        started.elapsed().as_secs_f64(),
        report.invalid
    );
    Ok(report)
}

/// How long one page of a directory listing may take, paced waits and retries included.
const LIST_PAGE_DEADLINE: Duration = Duration::from_secs(5 * 60);

/// A crash came while reading the input: read the rest of it.
async fn resume_input(app: &App, r: &BulkRunner, job: &BulkJob) -> Result<(), CliError> {
    if !job.source.starts_with("csv:") {
        return resume_directory(app, r, job).await;
    }
    let Some(path) = job.source.strip_prefix("csv:") else {
        return Err(CliError::Runtime(format!(
            "bulk job {} stopped while reading its input ({}), which cannot be read again",
            job.id, job.source
        )));
    };
    let file = std::fs::File::open(path)
        .map_err(|e| rt(format!("cannot reopen {path} to finish reading it: {e}")))?;
    let mut rows = UserCsv::new(std::io::BufReader::with_capacity(1 << 16, file)).map_err(usage)?;
    rows.skip_rows(job.rows).map_err(usage)?;
    ingest(r, job, rows).await?;
    Ok(())
}

/// The one place the CLI decides whether a bulk job may run now: the
/// policy engine, for the action `bulk_revoke` (`policy_guard`): protected
/// accounts end `skipped`, more people than `threshold` (or the policy's own
/// approval rules) hold the job for `sever bulk approve`, a refusal cancels
/// it (exit 1; an error applying the policy leaves it for `bulk resume`).
async fn authorize_bulk(
    app: &App,
    r: &BulkRunner,
    job: &BulkJob,
    threshold: u64,
) -> Result<crate::policy_guard::BulkVerdict, CliError> {
    use crate::policy_guard::BulkVerdict;
    match crate::policy_guard::authorize_bulk_job(app, r.store().as_ref(), job, threshold).await? {
        BulkVerdict::Refused(message) => {
            r.store()
                .set_bulk_state(job.id, BulkState::Cancelled, chrono::Utc::now())
                .await
                .map_err(rt)?;
            Err(CliError::Runtime(message))
        }
        verdict => Ok(verdict),
    }
}

async fn drive(
    app: &App,
    r: &BulkRunner,
    id: BulkJobId,
    run: &RunArgs,
    export: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let job = r.job(id).await?;
    if job.state == BulkState::Ingesting {
        if let crate::policy_guard::BulkVerdict::Held(reasons) =
            authorize_bulk(app, r, &job, run.approval_threshold).await?
        {
            r.store()
                .set_bulk_state(id, BulkState::PendingApproval, chrono::Utc::now())
                .await
                .map_err(rt)?;
            eprintln!(
                "Bulk job {id} waits for approval ({}): nothing was revoked.\n\
                 Approve it with: sever bulk approve {id}",
                reasons.join("; ")
            );
            return Ok(ExitCode::from(3));
        }
    }
    let total = job.rows;
    let started = Instant::now();
    let bar = (!run.no_progress_bar && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} people  {msg}  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut last = Instant::now();
    let progress = r
        .run(id, |p| {
            let msg = format!(
                "ok {}  failed {}  skipped {}  invalid {}",
                p.completed, p.failed, p.skipped, p.invalid
            );
            if let Some(b) = &bar {
                b.set_position(p.done());
                b.set_message(msg);
            } else if last.elapsed() >= Duration::from_secs(2) || p.done() == p.total {
                last = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                let rate = p.done() as f64 / secs.max(0.001);
                let eta = p.total.saturating_sub(p.done()) as f64 / rate.max(0.001);
                eprintln!(
                    "  {}/{} people  {msg}  {rate:.0}/s  ETA {eta:.0}s",
                    p.done(),
                    p.total
                );
            }
        })
        .await?;
    if let Some(b) = bar {
        b.finish();
    }
    eprintln!(
        "Bulk job {id} done in {:.1}s: {} completed, {} failed, {} skipped, {} invalid",
        started.elapsed().as_secs_f64(),
        progress.completed,
        progress.failed,
        progress.skipped,
        progress.invalid
    );
    if let Some(path) = export {
        export_to(r, id, path).await?;
    }
    Ok(if progress.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn export_to(r: &BulkRunner, id: BulkJobId, path: &Path) -> Result<(), CliError> {
    let file = std::fs::File::create(path)
        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
    let n = r.export_csv(id, std::io::BufWriter::new(file)).await?;
    eprintln!("Wrote {n} rows to {}", path.display());
    Ok(())
}

/// A crash came while listing a directory: list it again from the start
/// and store only the people not stored yet (providers' cursors expire and
/// a directory changes, so the listing is not resumed from a saved page).
/// The usernames already stored are held in memory for the while.
async fn resume_directory(app: &App, r: &BulkRunner, job: &BulkJob) -> Result<(), CliError> {
    let cannot = |why: String| {
        CliError::Runtime(format!(
            "bulk job {} stopped while reading its input ({}), which cannot be read again: {why}",
            job.id, job.source
        ))
    };
    let (instance, label) = job
        .source
        .split_once(':')
        .ok_or_else(|| cannot("unknown source".into()))?;
    let selection = Selection::parse_label(label).ok_or_else(|| cannot("unknown source".into()))?;
    let connector = app
        .engine
        .connector(instance)
        .cloned()
        .ok_or_else(|| cannot(format!("no connector named {instance} is configured")))?;
    let mut seen = HashSet::new();
    let mut after = None;
    loop {
        let page = r
            .store()
            .bulk_items(job.id, after, 5000)
            .await
            .map_err(rt)?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        seen.extend(page.into_iter().map(|i| i.username.to_lowercase()));
    }
    eprintln!(
        "Listing {} again; skipping the {} people already stored",
        job.source,
        seen.len()
    );
    ingest_directory(app, r, job, connector.as_ref(), &selection, Some(seen)).await?;
    Ok(())
}
