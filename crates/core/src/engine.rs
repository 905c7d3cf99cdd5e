//! The revocation engine: write the request, fan out to every target
//! connector concurrently (lookup, then revoke, within each), record each
//! outcome as it lands, and finish the request. Every entry point calls this,
//! so durability and crash recovery are solved once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::admin::AuditEvent;
use crate::domain::*;
use crate::ports::*;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("request {0} was not found")]
    NotFound(RequestId),
    #[error("no connector is enabled; configure one in sever.toml")]
    NoConnectors,
}

#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    pub retry: RetryPolicy,
    /// Time budget of one request, all retries included.
    pub request_deadline: Duration,
    /// How long a lease lives without renewal; a dead holder's work is taken over after this.
    pub lease_ttl: Duration,
    /// How many connectors of one request run at once; 0 means all of them.
    pub max_parallel_connectors: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            request_deadline: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(30),
            max_parallel_connectors: 0,
        }
    }
}

struct Slot {
    connector: Arc<dyn Connector>,
    enabled: bool,
}

/// What the caller asks for; parsed values only.
#[derive(Debug, Clone)]
pub struct RevocationInput {
    pub tenant_id: TenantId,
    pub username: Username,
    pub reason: Reason,
    pub channel: Channel,
    pub requested_by: String,
    /// `None`: every enabled connector.
    pub targets: Option<Vec<String>>,
    /// What sent it, for the audit trail: the SOAR's `source`, an MCP client name.
    pub source: Option<String>,
    /// The caller's address, for the audit trail; `None` on the CLI.
    pub client_ip: Option<String>,
}

/// Told what the engine records, as it records it (the server's metrics).
/// Called on the engine's task: keep it quick and never block.
pub trait EngineObserver: Send + Sync {
    /// One connector's outcome and attempts were durably recorded.
    fn connector_recorded(&self, _result: &ConnectorResult) {}
    /// A request reached its final status.
    fn request_finished(&self, _status: RequestStatus) {}
}

pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    slots: BTreeMap<InstanceName, Slot>,
    settings: EngineSettings,
    owner: String,
    observer: Option<Arc<dyn EngineObserver>>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: EngineSettings) -> Self {
        Self {
            store,
            clock,
            slots: BTreeMap::new(),
            settings,
            owner: PROCESS_OWNER.clone(),
            observer: None,
        }
    }

    /// Tell `observer` about every outcome recorded and request finished.
    pub fn with_observer(mut self, observer: Arc<dyn EngineObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn with_connector(mut self, connector: Arc<dyn Connector>, enabled: bool) -> Self {
        self.slots
            .insert(connector.instance().clone(), Slot { connector, enabled });
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// This process's lease identity (`host/pid/nonce`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn connectors(&self) -> impl Iterator<Item = (&Arc<dyn Connector>, bool)> {
        self.slots.values().map(|s| (&s.connector, s.enabled))
    }

    pub fn connector(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        InstanceName::parse(name)
            .ok()
            .and_then(|n| self.slots.get(&n))
            .map(|s| &s.connector)
    }

    /// Resolve target names to enabled instances; unknown or disabled names are an error
    /// that lists what is available.
    pub fn plan(
        &self,
        targets: Option<&[String]>,
    ) -> Result<Vec<(InstanceName, ConnectorKey)>, EngineError> {
        let enabled: Vec<_> = self
            .slots
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(n, s)| (n.clone(), s.connector.provider()))
            .collect();
        let Some(names) = targets else {
            if enabled.is_empty() {
                return Err(EngineError::NoConnectors);
            }
            return Ok(enabled);
        };
        if names.is_empty() {
            return Err(InvalidInput::new(
                "integration_targets",
                "must name at least one connector",
            )
            .into());
        }
        let known = || {
            enabled
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out: Vec<(InstanceName, ConnectorKey)> = Vec::new();
        for raw in names {
            let name = InstanceName::parse(raw).map_err(|_| {
                InvalidInput::new(
                    "integration_targets",
                    format!("unknown connector '{raw}' (enabled: {})", known()),
                )
            })?;
            match self.slots.get(&name) {
                Some(s) if s.enabled => {
                    if !out.iter().any(|(n, _)| n == &name) {
                        out.push((name, s.connector.provider()));
                    }
                }
                Some(_) => {
                    return Err(InvalidInput::new(
                        "integration_targets",
                        format!("connector '{name}' is disabled"),
                    )
                    .into())
                }
                None => {
                    return Err(InvalidInput::new(
                        "integration_targets",
                        format!("unknown connector '{name}' (enabled: {})", known()),
                    )
                    .into())
                }
            }
        }
        Ok(out)
    }

    /// Validate and durably write a request (status `queued`) before any provider is called.
    pub async fn submit(&self, input: RevocationInput) -> Result<NewRequest, EngineError> {
        let (req, audit) = self.prepare(input, RequestStatus::Queued)?;
        self.store.insert_request(&req, &audit).await?;
        info!(request_id = %req.id, user = %req.username, "request queued");
        Ok(req)
    }

    /// Validate a request and build it, in `status`, with its audit record,
    /// writing nothing. `submit` writes it `queued`; approvals write it
    /// `pending_approval` together with its approval
    /// (`approvals::submit_revocation`), which no claim ever takes.
    pub fn prepare(
        &self,
        input: RevocationInput,
        status: RequestStatus,
    ) -> Result<(NewRequest, AuditEvent), EngineError> {
        let targets = self.plan(input.targets.as_deref())?;
        let req = NewRequest {
            id: RequestId::new(),
            tenant_id: input.tenant_id,
            username: input.username,
            reason: input.reason,
            channel: input.channel,
            requested_by: input.requested_by,
            status,
            targets,
            created_at: self.clock.now(),
        };
        let audit = AuditEvent {
            tenant_id: req.tenant_id,
            at: req.created_at,
            actor: req.requested_by.clone(),
            role: None,
            channel: req.channel,
            source: input.source,
            client_ip: input.client_ip,
            action: "revoke_sessions".into(),
            target: Some(req.username.to_string()),
            reason: Some(req.reason.as_str().to_string()),
            decision: "allowed".into(),
            result: Some(req.status.as_str().to_string()),
            request_id: Some(req.id),
            detail: serde_json::json!({
                "targets": req.targets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            }),
        };
        Ok((req, audit))
    }

    /// Submit and run to the end.
    pub async fn revoke(&self, input: RevocationInput) -> Result<RevocationRequest, EngineError> {
        let req = self.submit(input).await?;
        self.execute(req.id, None).await
    }

    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            expires_at: self.clock.now()
                + chrono::Duration::from_std(self.settings.lease_ttl)
                    .unwrap_or(chrono::Duration::seconds(30)),
        }
    }

    /// Run every connector of a request that has no outcome yet, then finish it.
    /// If another live process holds the request, returns its current state.
    pub async fn execute(
        &self,
        id: RequestId,
        steal_from: Option<&str>,
    ) -> Result<RevocationRequest, EngineError> {
        self.run(id, steal_from).await?;
        self.store
            .get_request(id)
            .await?
            .ok_or(EngineError::NotFound(id))
    }

    /// [`Engine::execute`] without reading the request back: the final
    /// status when this call finished it, `None` when it did not run it
    /// (another live process holds it, it was final already, or a run of
    /// it in this process was under way and this call waited for it).
    pub async fn run(
        &self,
        id: RequestId,
        steal_from: Option<&str>,
    ) -> Result<Option<RequestStatus>, EngineError> {
        self.run_from(id, steal_from, None).await
    }

    /// [`Engine::run`] of the request `new` that [`Engine::submit`] just
    /// wrote: once claimed, it is known (every result pending) without
    /// reading it back. Should another run have recorded an outcome
    /// meanwhile, the store keeps that one and the status is read from it.
    pub async fn run_new(&self, new: &NewRequest) -> Result<Option<RequestStatus>, EngineError> {
        self.run_from(new.id, None, Some(new)).await
    }

    async fn run_from(
        &self,
        id: RequestId,
        steal_from: Option<&str>,
        new: Option<&NewRequest>,
    ) -> Result<Option<RequestStatus>, EngineError> {
        // One run per request per process: a second caller (a resume racing a
        // new revocation, say) waits for the run in progress instead of
        // starting another, because the lease alone cannot tell them apart.
        let _running = match Inflight::enter(id) {
            Ok(guard) => guard,
            Err(mut done) => {
                let _ = done.wait_for(|finished| *finished).await;
                return Ok(None);
            }
        };
        let claimed = self
            .store
            .claim_request(id, &self.lease(), self.clock.now(), steal_from)
            .await?;
        if !claimed {
            return Ok(None);
        }
        let current = match new {
            Some(new) => RevocationRequest::as_submitted(new),
            None => self
                .store
                .get_request(id)
                .await?
                .ok_or(EngineError::NotFound(id))?,
        };
        let deadline = Instant::now() + self.settings.request_deadline;
        let pending: Vec<_> = current
            .results
            .iter()
            .filter(|r| r.outcome.is_none())
            .map(|r| (r.instance.clone(), r.provider))
            .collect();
        let parallel = match self.settings.max_parallel_connectors {
            0 => pending.len().max(1),
            n => n,
        };
        let pending_count = pending.len();
        // Connectors run concurrently and hand each result to the recorder
        // the moment it is known; the recorder writes what has arrived in
        // one transaction (a group commit: it waits at most
        // GROUP_COMMIT_WINDOW for outcomes landing together, and while it
        // writes, later ones queue for the next write). Each outcome is
        // durable within milliseconds of being known and before the request
        // can finish, so a crash later never repeats a finished provider call.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ConnectorResult>();
        let username = current.username.clone();
        // The closure owns the sender: when the last connector is done, the
        // stream and the closure go, and the recorder sees the channel close.
        let work = stream::iter(pending.into_iter().map(move |(instance, provider)| {
            let username = username.clone();
            let tx = tx.clone();
            async move {
                let result = self.run_one(&instance, provider, &username, deadline).await;
                let _ = tx.send(result);
            }
        }))
        .buffer_unordered(parallel)
        .collect::<Vec<()>>();
        let expected = pending_count;
        let record = async {
            let mut ours: Vec<Option<Outcome>> = Vec::new();
            while let Some(first) = rx.recv().await {
                // Outcomes of connectors started together land within a few
                // milliseconds of each other: wait that long for the rest
                // (never longer), so they share one transaction.
                let mut batch = vec![first];
                let window = tokio::time::Instant::now() + GROUP_COMMIT_WINDOW;
                while parallel > 1 && ours.len() + batch.len() < expected {
                    match tokio::time::timeout_at(window, rx.recv()).await {
                        Ok(Some(more)) => batch.push(more),
                        Ok(None) | Err(_) => break,
                    }
                }
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let recorded = match self.store.record_results(id, &batch).await {
                    Ok(r) => r,
                    Err(e) => {
                        let names: Vec<_> = batch.iter().map(|r| r.instance.as_str()).collect();
                        warn!(request_id = %id, connectors = ?names, error = %e, "could not record results");
                        return Err(e);
                    }
                };
                for (result, recorded) in batch.into_iter().zip(recorded) {
                    if let (true, Some(o)) = (recorded, &self.observer) {
                        o.connector_recorded(&result);
                    }
                    // `None`: another run recorded this one first.
                    ours.push(recorded.then_some(result.outcome).flatten());
                }
            }
            Ok(ours)
        };
        let renew = async {
            let mut tick = tokio::time::interval(self.settings.lease_ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.store.renew_lease(id, &self.lease()).await {
                    Ok(true) => {}
                    Ok(false) => warn!(request_id = %id, "lease lost while running"),
                    Err(e) => warn!(request_id = %id, error = %e, "lease renewal failed"),
                }
            }
        };
        let ours = tokio::select! {
            (_, ours) = futures::future::join(work, record) => ours?,
            // `renew` never finishes; it is dropped as soon as the work is done.
            _ = renew => Vec::new(),
        };
        // Every outcome is the one read at the claim or one this run
        // recorded; only when another run recorded one first is the store
        // asked again.
        let status = if ours.iter().all(Option::is_some) {
            RequestStatus::from_outcomes(
                current
                    .results
                    .iter()
                    .filter_map(|r| r.outcome.as_ref())
                    .chain(ours.iter().flatten()),
            )
        } else {
            let done = self
                .store
                .get_request(id)
                .await?
                .ok_or(EngineError::NotFound(id))?;
            RequestStatus::from_outcomes(done.results.iter().filter_map(|r| r.outcome.as_ref()))
        };
        self.store
            .finish_request(id, status, self.clock.now())
            .await?;
        if let Some(o) = &self.observer {
            o.request_finished(status);
        }
        info!(request_id = %id, %status, "request finished");
        Ok(Some(status))
    }

    async fn run_one(
        &self,
        instance: &InstanceName,
        provider: ConnectorKey,
        username: &Username,
        deadline: Instant,
    ) -> ConnectorResult {
        let cx = CallContext::new(deadline, self.settings.retry);
        let mut subject_id = None;
        let outcome = match self.slots.get(instance) {
            None => Outcome::Failed(Failure::new(
                ErrorClass::BadConfig,
                format!("connector '{instance}' is no longer configured"),
            )),
            Some(slot) => match slot.connector.lookup(&cx, username).await {
                Ok(Lookup::Settled(o)) => o,
                Ok(Lookup::Found(subject)) => {
                    subject_id = Some(subject.id.clone());
                    match slot.connector.revoke(&cx, &subject).await {
                        Ok(o) => o,
                        Err(f) => Outcome::Failed(f),
                    }
                }
                Err(f) => Outcome::Failed(f),
            },
        };
        let attempts = cx.attempts();
        let outcome = match outcome {
            Outcome::Failed(mut f) => {
                f.attempts = attempts.len() as u32;
                Outcome::Failed(f)
            }
            o => o,
        };
        ConnectorResult {
            instance: instance.clone(),
            provider,
            outcome: Some(outcome),
            subject_id,
            finished_at: Some(self.clock.now()),
            attempts,
        }
    }

    /// Finish every request left `queued` or `running` by a process that is gone
    /// (its lease expired, or it was this host's and its pid no longer exists).
    pub async fn resume_unfinished(&self) -> Result<Vec<RevocationRequest>, EngineError> {
        let mut done = Vec::new();
        for u in self.store.unfinished_requests().await? {
            let dead_owner = u.lease_owner.as_deref().filter(|o| owner_is_dead(o));
            let free = u.lease_owner.is_none()
                || dead_owner.is_some()
                || u.lease_expires_at.is_some_and(|t| t < self.clock.now());
            if !free {
                continue;
            }
            info!(request_id = %u.id, "resuming unfinished request");
            let r = self.execute(u.id, dead_owner).await?;
            if r.status.is_final() {
                done.push(r);
            }
        }
        Ok(done)
    }
}

/// How long the engine waits for outcomes landing together before writing
/// the first of them, so they share one transaction.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(3);

/// Requests this process is running, so a second `execute` of one waits.
static INFLIGHT: LazyLock<Mutex<HashMap<RequestId, watch::Receiver<bool>>>> =
    LazyLock::new(Default::default);

/// Every engine in a process holds leases under one owner id.
static PROCESS_OWNER: LazyLock<String> = LazyLock::new(lease_owner_id);

struct Inflight {
    id: RequestId,
    done: watch::Sender<bool>,
}

impl Inflight {
    /// The guard of a new run, or a receiver that turns true when the run in progress ends.
    fn enter(id: RequestId) -> Result<Inflight, watch::Receiver<bool>> {
        let mut map = INFLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(&id) {
            return Err(rx.clone());
        }
        let (done, rx) = watch::channel(false);
        map.insert(id, rx);
        Ok(Inflight { id, done })
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        INFLIGHT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.done.send_replace(true);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// `host/pid/nonce`: the nonce tells two processes apart if a pid is reused.
pub fn lease_owner_id() -> String {
    format!(
        "{}/{}/{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// True when `owner` names a process on this host that no longer exists.
/// Owners on other hosts are never presumed dead: their leases expire instead.
pub fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid != std::process::id() => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_local_pid_is_recognised_and_remote_owners_are_not_presumed_dead() {
        let me = lease_owner_id();
        assert!(!owner_is_dead(&me));
        assert!(owner_is_dead(&format!("{}/4194999/00000000", hostname())));
        assert!(!owner_is_dead("some-other-host/1/00000000"));
        assert!(!owner_is_dead("garbage"));
    }
}
