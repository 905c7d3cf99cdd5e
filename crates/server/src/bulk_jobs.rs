//! Bulk jobs run by the server (issue 7): a job started over the API (or
//! the UI) runs in a task of this process, and the worker picks up every
//! unfinished job that is `running` and not already running here — after a
//! restart, or a job another replica was running when it died. Two
//! replicas running one job never double up: each item gets its request id
//! through a conditional write (`BulkStore::assign_bulk_request`), and the
//! loser waits for the winner's request; finished provider calls are never
//! repeated (the engine records each connector's outcome once).
//!
//! Jobs started on the command line are left to `sever bulk resume`: their
//! `--protect` patterns live with the operator's invocation, not the job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::Serialize;
use sever_core::bulk::{
    BulkError, BulkJob, BulkJobId, BulkProgress, BulkRunner, BulkSettings, BulkState, BulkStore,
};
use sever_core::Channel;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

/// People of one job in flight at once on the server (each provider is
/// still paced to its own budget by its connector).
pub const SERVER_BULK_CONCURRENCY: usize = 32;

/// The bulk jobs this process is running.
#[derive(Default)]
pub struct BulkTasks {
    running: Mutex<HashMap<BulkJobId, tokio::sync::watch::Sender<bool>>>,
}

impl BulkTasks {
    /// Stop every job this process runs (at shutdown). Their requests in
    /// flight keep their leases until they expire, then whoever runs the
    /// job next takes them over.
    pub fn abort_all(&self) {
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (_, stop) in map.drain() {
            let _ = stop.send(true);
        }
    }

    pub fn is_running(&self, id: BulkJobId) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }
}

/// A runner over the tenant's engine and the server's store. It never
/// resumes other requests itself: the worker does, each with its tenant's
/// engine.
pub async fn runner(st: &AppState, job: &BulkJob) -> Result<BulkRunner, ApiError> {
    let engine = st.engine(job.tenant_id).await?;
    Ok(runner_for(st, engine))
}

/// How long one person's request of a bulk job may take, waits for each
/// provider's budget included (a single revocation keeps the configured
/// deadline: it never waits behind bulk calls).
pub const BULK_REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// [`runner`] over the connectors of `engine` (the tenant's), with the
/// bulk request deadline.
pub fn runner_for(st: &AppState, engine: Arc<sever_core::Engine>) -> BulkRunner {
    let store: Arc<dyn BulkStore> = st.db().clone();
    let mut settings = *engine.settings();
    settings.request_deadline = settings.request_deadline.max(BULK_REQUEST_DEADLINE);
    let mut bulk = sever_core::Engine::new(st.db().clone(), st.clock().clone(), settings);
    for (c, enabled) in engine.connectors() {
        bulk = bulk.with_connector(c.clone(), enabled);
    }
    BulkRunner::new(
        Arc::new(bulk),
        store,
        BulkSettings {
            concurrency: SERVER_BULK_CONCURRENCY,
            protected: Vec::new(),
        },
    )
    .without_request_resume()
}

/// Run `job` on a thread of its own (driven by this runtime) unless this
/// process already runs it. A thread rather than a task: the runner's
/// future is not provably `Send` to `tokio::spawn` (its page stream borrows
/// the runner), and a job is long-lived, so a thread per job costs nothing.
pub fn spawn(st: &AppState, job: BulkJob) {
    let tasks = st.bulk_tasks();
    // Held while starting, so the thread's own removal (which takes this
    // lock) always comes after the insertion.
    let mut map = tasks.running.lock().unwrap_or_else(|p| p.into_inner());
    if map.contains_key(&job.id) {
        return;
    }
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let state = st.clone();
    let handle = tokio::runtime::Handle::current();
    let id = job.id;
    let started = std::thread::Builder::new()
        .name(format!("bulk-{id}"))
        .spawn(move || {
            let r = handle.block_on(async {
                let run = async {
                    let runner = runner(&state, &job).await?;
                    runner.run(job.id, |_| {}).await.map_err(bulk_error)
                };
                tokio::select! {
                    r = run => Some(r),
                    _ = stopped.wait_for(|s| *s) => None,
                }
            });
            match r {
                Some(Ok(p)) => tracing::info!(
                    bulk_job = %job.id,
                    completed = p.completed,
                    failed = p.failed,
                    skipped = p.skipped,
                    invalid = p.invalid,
                    "bulk job finished"
                ),
                Some(Err(e)) => {
                    tracing::warn!(bulk_job = %job.id, error = %e, "bulk job stopped; the worker will resume it")
                }
                None => tracing::info!(bulk_job = %job.id, "bulk job stopped with the server"),
            }
            state
                .bulk_tasks()
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&job.id);
        });
    match started {
        Ok(_) => {
            map.insert(id, stop);
        }
        Err(e) => tracing::warn!(bulk_job = %id, error = %e, "could not start a bulk job"),
    }
}

/// The worker's share: start every unfinished `running` job (not started
/// on the command line) that this process does not run yet.
pub async fn resume(st: &AppState) {
    let jobs = match st.db().list_bulk_jobs(true).await {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for unfinished bulk jobs");
            return;
        }
    };
    for job in jobs.into_iter().rev() {
        if job.state == BulkState::Running
            && job.channel != Channel::Cli
            && !st.bulk_tasks().is_running(job.id)
        {
            tracing::info!(bulk_job = %job.id, "resuming bulk job");
            spawn(st, job);
        }
    }
}

/// A bulk error as an HTTP answer.
pub fn bulk_error(e: BulkError) -> ApiError {
    match e {
        BulkError::Engine(e) => e.into(),
        BulkError::Store(e) => e.into(),
        BulkError::NotFound(id) => ApiError::not_found(format!("bulk job {id} was not found")),
        BulkError::NeedsApproval(id) => {
            ApiError::conflict(format!("bulk job {id} waits for approval"))
        }
        BulkError::Csv(e) => ApiError::invalid("body", e),
        BulkError::Invalid(m) => ApiError::invalid("body", m),
        // The API takes a list, never a connector's directory.
        BulkError::Directory(m) => {
            ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "provider_error", m)
        }
    }
}

/// A job of `tenant`, or 404 (also for another tenant's job).
pub async fn load(
    st: &AppState,
    tenant: sever_core::TenantId,
    raw_id: &str,
) -> Result<BulkJob, ApiError> {
    let id = BulkJobId::parse(raw_id)?;
    st.db()
        .get_bulk_job(id)
        .await?
        .filter(|j| j.tenant_id == tenant)
        .ok_or_else(|| ApiError::not_found(format!("bulk job {id} was not found")))
}

/// Where a job's people stand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkCounts {
    /// Entries of the input (valid or not).
    pub total: u64,
    /// Entries that reached a final state.
    pub done: u64,
    pub completed: u64,
    pub failed: u64,
    /// Protected accounts: never called.
    pub skipped: u64,
    pub invalid: u64,
    /// Not final yet.
    pub pending: u64,
}

impl From<&BulkProgress> for BulkCounts {
    fn from(p: &BulkProgress) -> Self {
        Self {
            total: p.total,
            done: p.done(),
            completed: p.completed,
            failed: p.failed,
            skipped: p.skipped,
            invalid: p.invalid,
            pending: p.total.saturating_sub(p.done()),
        }
    }
}

/// A bulk job as the API and the UI show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkJobView {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    pub incident_id: String,
    pub reason: String,
    /// `ingesting`, `pending_approval`, `running`, `completed` or `cancelled`.
    pub state: String,
    /// Where it was started: `api`, `ui`, `cli`.
    pub channel: String,
    pub requested_by: String,
    /// Connector instances named; every enabled one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_targets: Option<Vec<String>>,
    pub counts: BulkCounts,
    /// Percent of entries done (0-100).
    pub percent: u8,
    pub started_at: chrono::DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<chrono::DateTime<Utc>>,
    /// Estimated seconds left while running, from the pace so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// The per-person results as CSV.
    pub results_csv: String,
    /// Entries that name nobody valid, by index (`usernames[3]: ...`); only
    /// in the answer that created the job.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_items: Vec<String>,
    /// Why the policy holds the job for approval; only in the answer that
    /// created the job.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approval_reasons: Vec<String>,
}

/// The view of `job`, its items counted now.
pub async fn view(st: &AppState, job: &BulkJob) -> Result<BulkJobView, ApiError> {
    let r = runner(st, job).await?;
    let p = r.count(job.id).await.map_err(bulk_error)?;
    let counts = BulkCounts::from(&p);
    let now = st.clock().now();
    let eta_seconds = (job.state == BulkState::Running && counts.done > 0 && counts.pending > 0)
        .then(|| {
            let secs = (now - job.created_at).num_milliseconds().max(1) as f64 / 1000.0;
            let rate = counts.done as f64 / secs;
            (counts.pending as f64 / rate.max(1e-6)).ceil() as u64
        });
    let percent = match (counts.done * 100).checked_div(counts.total) {
        Some(p) => p.min(100) as u8,
        None if job.state.is_final() => 100,
        None => 0,
    };
    Ok(BulkJobView {
        id: job.id.to_string(),
        incident_id: job.incident_id.clone(),
        reason: job.reason.as_str().to_string(),
        state: job.state.as_str().to_string(),
        channel: job.channel.as_str().to_string(),
        requested_by: job.requested_by.clone(),
        integration_targets: job.targets.clone(),
        counts,
        percent,
        started_at: job.created_at,
        finished_at: job.finished_at,
        eta_seconds,
        results_csv: format!("/api/v1/bulk-revocations/{}/results.csv", job.id),
        invalid_items: Vec::new(),
        approval_reasons: Vec::new(),
    })
}

/// The tenant's jobs, newest first (at most `limit`).
pub async fn list(
    st: &AppState,
    tenant: sever_core::TenantId,
    limit: usize,
) -> Result<Vec<BulkJob>, ApiError> {
    Ok(st
        .db()
        .list_bulk_jobs(false)
        .await?
        .into_iter()
        .filter(|j| j.tenant_id == tenant)
        .take(limit)
        .collect())
}

/// The job's per-person results as CSV (the same export as `sever bulk export`).
pub async fn export(st: &AppState, job: &BulkJob) -> Result<Vec<u8>, ApiError> {
    let r = runner(st, job).await?;
    let mut out = Vec::new();
    r.export_csv(job.id, &mut out).await.map_err(bulk_error)?;
    Ok(out)
}
