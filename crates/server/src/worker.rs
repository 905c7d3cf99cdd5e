//! Running revocations apart from the HTTP requests that asked for them.
//!
//! A request is written (queued) before any provider is called, then run in
//! a spawned task, so a client that disconnects does not cancel it; the
//! handler only waits, for a bounded time, to answer with the result.
//!
//! The worker loop is what makes that durable: every second, and whenever
//! woken, it claims the oldest queued or running request whose lease is free
//! (`Store::claim_next`) and runs it. That finishes work queued before a
//! restart, work whose spawned task failed, and work of another replica that
//! died holding a lease (once the lease expires). Requests held for approval
//! are never claimed: once approved they are `queued` like any other. On
//! each tick the worker also expires approvals nobody decided in time, and
//! now and then purges the policy's spent counters.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sever_core::approvals::{self, Submission, SubmitError};
use sever_core::policy::{self, Authorization};
use sever_core::{Engine, Lease, RequestId, RequestStatus, RevocationInput, RevocationRequest};

use crate::error::ApiError;
use crate::idempotency::{self, Pending};
use crate::AppState;

/// Write a revocation the policy decided on (`approvals::submit_revocation`)
/// — `queued` when allowed, or `pending_approval` with its approval when it
/// must wait for a second person — and store its idempotent answer, in a
/// task of its own, so a client that disconnects mid-way cannot leave a
/// written request without its idempotency record (a retry would then
/// revoke twice). A refusal writes nothing and is the policy's error
/// (`api::policy::policy_error`). Every entry point writes revocations
/// through here (or `submit_revocation`): none bypasses the policy.
pub async fn submit_authorized(
    state: &AppState,
    engine: Arc<Engine>,
    input: RevocationInput,
    auth: Authorization,
    requester_person: Option<String>,
    pending: Option<Pending>,
) -> Result<Submission, ApiError> {
    let state = state.clone();
    tokio::spawn(async move {
        let db = state.db().clone();
        let sub =
            approvals::submit_revocation(&engine, db.as_ref(), input, &auth, requester_person)
                .await
                .map_err(|e| match e {
                    SubmitError::Denied(_) => crate::api::policy::policy_error(&auth),
                    SubmitError::Engine(e) => ApiError::from(e),
                    SubmitError::Store(e) => ApiError::from(e),
                })?;
        if let Some(p) = pending {
            let body = json!({"request_id": sub.request().id});
            idempotency::finish(&state, p, 202, &body, false).await;
        }
        Ok::<_, ApiError>(sub)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Run `id` on `engine` in its own task and wait up to `wait` for it to
/// finish. Returns the request as it stands then (final or not).
pub async fn run_and_wait(
    state: &AppState,
    engine: Arc<Engine>,
    id: RequestId,
    wait: Duration,
) -> Result<RevocationRequest, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let Some(task) = state
        .executions()
        .spawn(id, None, async move { engine.run(id, None).await })
    else {
        // Shutting down: it stays queued for the next start.
        return wait_for_final(state, id, deadline).await;
    };
    match tokio::time::timeout_at(deadline, task).await {
        // Finished here, or someone else holds it: read it once, or wait
        // for the store to say it is done.
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => {
            tracing::warn!(request_id = %id, error = %e, "running the request failed; the worker will retry");
            state.wake_worker();
        }
        Ok(Err(e)) if e.is_cancelled() => {}
        Ok(Err(e)) => {
            tracing::warn!(request_id = %id, error = %e, "the request's task died; the worker will retry");
            state.wake_worker();
        }
        // Still running; it goes on without us.
        Err(_) => {}
    }
    wait_for_final(state, id, deadline).await
}

/// [`run_and_wait`] for the request `new` just written. With no time to
/// wait at all (`webhook_wait_secs = 0`: a SOAR that polls), the answer is
/// the request as written, `queued`, without reading it back: the fast path
/// that lets the webhook accept in one transaction.
pub async fn run_new_and_wait(
    state: &AppState,
    engine: Arc<Engine>,
    new: &sever_core::NewRequest,
    wait: Duration,
) -> Result<RevocationRequest, ApiError> {
    if !wait.is_zero() {
        return run_and_wait(state, engine, new.id, wait).await;
    }
    let id = new.id;
    let st = state.clone();
    let submitted = new.clone();
    // `None`: shutting down; it stays queued for the next start.
    let _ = state.executions().spawn(id, None, async move {
        if let Err(e) = engine.run_new(&submitted).await {
            tracing::warn!(request_id = %id, error = %e, "running the request failed; the worker will retry");
            st.wake_worker();
        }
    });
    Ok(RevocationRequest::as_submitted(new))
}

/// Poll the store until `id` is final or `deadline` passes (or the server
/// has stopped running work, at shutdown).
pub async fn wait_for_final(
    state: &AppState,
    id: RequestId,
    deadline: tokio::time::Instant,
) -> Result<RevocationRequest, ApiError> {
    loop {
        let req = state
            .db()
            .get_request(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("request {id} was not found")))?;
        // Nothing runs a request held for approval: waiting cannot change it.
        if req.status.is_final()
            || req.status == RequestStatus::PendingApproval
            || tokio::time::Instant::now() >= deadline
            || state.executions().is_drained()
        {
            return Ok(req);
        }
        tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
        )
        .await;
    }
}

/// Claim and run unclaimed work until `shutdown` completes. Started by
/// [`crate::serve`], which then lets the work in flight finish or releases
/// it ([`crate::ops::finish_or_release`]); a process that serves no HTTP may
/// run it alone.
pub async fn run_worker(state: AppState, shutdown: impl Future<Output = ()> + Send) {
    // The engines' own owner: a claim of ours is then one the engine may run
    // (or, when a handler runs the same request in this process, waits for).
    let owner = state.executions().process_owner().to_string();
    let slots = state.config().worker_concurrency.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(slots));
    let interval = state.config().worker_interval;
    tokio::pin!(shutdown);
    tracing::info!(%owner, "worker started");
    let mut last_purge: Option<chrono::DateTime<chrono::Utc>> = None;
    loop {
        housekeeping(&state, &mut last_purge).await;
        crate::bulk_jobs::resume(&state).await;
        // Take everything that is free now, as far as our slots allow.
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => return stopped(&state),
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            match claim(&state, &owner).await {
                Ok(Some(id)) => {
                    let st = state.clone();
                    let claimed_as = owner.clone();
                    // Dropped with the run, however it ends, freeing the slot.
                    let run = async move {
                        run_claimed(&st, id, &claimed_as).await;
                        drop(permit);
                    };
                    if state.executions().spawn(id, Some(&owner), run).is_none() {
                        // Shutting down: give the claim back at once.
                        if let Err(e) = state.db().release_lease(id, &owner).await {
                            tracing::warn!(request_id = %id, error = %e, "could not release a claim");
                        }
                        return stopped(&state);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for queued work");
                    break;
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return stopped(&state),
            _ = state.worker_woken() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn stopped(state: &AppState) {
    // Bulk jobs stop with the worker; the next start (or another replica)
    // resumes them where they stand.
    state.bulk_tasks().abort_all();
    tracing::info!("worker stopped claiming work");
}

/// How often the policy's expired counters are purged.
const PURGE_EVERY: chrono::Duration = chrono::Duration::minutes(10);

/// The policy engine's upkeep, on every tick: approvals past their expiry
/// become `expired` (and never run), so the requester's channel sees the
/// outcome; now and then, counters no window still needs are deleted.
/// Approved requests are `queued` and claimed like any other.
async fn housekeeping(state: &AppState, last_purge: &mut Option<chrono::DateTime<chrono::Utc>>) {
    let now = state.clock().now();
    match approvals::expire_due(state.db().as_ref(), now).await {
        Ok(done) if !done.is_empty() => {
            tracing::info!(count = done.len(), "approvals expired");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not expire due approvals"),
    }
    if last_purge.is_none_or(|t| now - t >= PURGE_EVERY) {
        *last_purge = Some(now);
        match policy::purge_expired(state.db().as_ref(), now).await {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "purged expired policy counters"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge expired policy counters"),
        }
    }
}

async fn claim(state: &AppState, owner: &str) -> Result<Option<RequestId>, sever_core::StoreError> {
    let now = state.clock().now();
    let ttl = state.registry().engine_settings().lease_ttl;
    let lease = Lease {
        owner: owner.to_string(),
        expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30)),
    };
    state.db().claim_next(&lease, now).await
}

async fn run_claimed(state: &AppState, id: RequestId, owner: &str) {
    let result = async {
        let req = state
            .db()
            .get_request(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("request {id}")))?;
        let engine = state.engine(req.tenant_id).await?;
        // The claim is ours under the worker's name; the engine takes it over.
        engine.run(id, Some(owner)).await.map_err(ApiError::from)
    }
    .await;
    match result {
        Ok(Some(status)) => tracing::info!(request_id = %id, %status, "worker finished a request"),
        Ok(None) => tracing::debug!(request_id = %id, "another run had the request"),
        Err(e) => {
            tracing::warn!(request_id = %id, error = %e, "worker could not finish a request; it will be retried when its lease expires")
        }
    }
}
