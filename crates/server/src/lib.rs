//! Sever's HTTP service: the REST API under `/api/v1` (API keys with
//! scopes), the signed SOAR webhook, the OpenAPI description, and the
//! background worker that finishes queued work — including work a dead
//! replica left behind.
//!
//! Every entry point here goes through the same steps: authenticate, check
//! the scope and the tenant's switches, audit the attempt (allowed or
//! refused), and call the core [`Engine`] of the caller's tenant. The crate
//! knows no concrete store or sealer: the composition root (the CLI's `sever
//! serve`, or a test) hands it an [`AppState`] made of ports.
//!
//! The library functions the CLI's admin commands need ([`create_tenant`],
//! [`create_user`], [`create_api_key`], ...) live in [`admin`] and write
//! the same audit records as the API does.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bulk_jobs;
pub mod error;
pub mod executions;
pub mod idempotency;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod provision;
pub mod registry;
pub mod secrets;
pub mod signature;
pub mod ui;
pub mod usecases;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sever_connectors::HttpClient;
use sever_core::policy::PolicyResolver;
use sever_core::{Clock, Database, Engine, EngineSettings, Sealer, Store, TenantId};
use sever_store::SealedTokenCache;

pub use admin::{
    create_api_key, create_tenant, create_user, revoke_api_key, update_settings, AdminError,
    NewApiKey, SettingsChange,
};
pub use api::router;
pub use audit::Actor;
pub use auth::{hash_password, verify_password};
pub use error::ApiError;
pub use secrets::{connector_aad, webhook_secret_aad};
pub use worker::run_worker;

/// How the server behaves; the CLI fills it from `sever.toml`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where `sever serve` listens (the caller binds; [`serve`] takes a listener).
    pub bind: SocketAddr,
    /// How long the webhook waits for a revocation to finish before answering 202.
    pub webhook_wait: Duration,
    /// How long `POST /api/v1/revocations` waits before answering 202.
    pub api_wait: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy you run).
    pub trust_proxy: bool,
    /// Largest accepted request body, in bytes (64 KiB).
    pub body_limit: usize,
    /// Largest accepted body of `POST /api/v1/bulk-revocations` (4 MiB):
    /// a list of people is larger than any other call.
    pub bulk_body_limit: usize,
    /// Bulk jobs with more people than this wait for a second person's
    /// approval, whatever the policy allows (1,000).
    pub bulk_approval_threshold: u64,
    /// How often the worker looks for unclaimed work when nothing wakes it.
    pub worker_interval: Duration,
    /// Requests the worker runs at once.
    pub worker_concurrency: usize,
    /// How long the MCP `revoke_sessions` tool waits for a result before
    /// answering with the request's current status.
    pub mcp_wait: Duration,
    /// `Host` headers accepted by `/mcp`, the OAuth endpoints and their
    /// metadata (`host` or `host:port`; `"*"` accepts any). The MCP SDK
    /// refuses unknown hosts to stop DNS rebinding; add the names clients
    /// use to reach a deployment that is not on loopback.
    pub allowed_hosts: Vec<String>,
    /// The URL clients reach this server at (`https://sever.example.com`),
    /// used in OAuth metadata and `WWW-Authenticate`; when unset, it is made
    /// from the request's (allowed) `Host` header.
    pub public_url: Option<String>,
    /// On shutdown, how long running revocations get to finish before they
    /// are cancelled and their leases released for another process.
    pub shutdown_grace: Duration,
    /// Which policy guards every call (docs/policy.md): the configured
    /// policy file, else each tenant's stored policy, else the server's
    /// built-in default.
    pub policy: Arc<PolicyResolver>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            webhook_wait: Duration::from_secs(10),
            api_wait: Duration::from_secs(10),
            trust_proxy: false,
            body_limit: 64 * 1024,
            bulk_body_limit: 4 * 1024 * 1024,
            bulk_approval_threshold: 1000,
            worker_interval: Duration::from_secs(1),
            worker_concurrency: 8,
            mcp_wait: Duration::from_secs(15),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            public_url: None,
            shutdown_grace: Duration::from_secs(10),
            policy: Arc::new(PolicyResolver::for_server(None)),
        }
    }
}

struct Inner {
    db: Arc<dyn Database>,
    sealer: Arc<dyn Sealer>,
    clock: Arc<dyn Clock>,
    config: ServerConfig,
    registry: registry::Registry,
    wake_worker: tokio::sync::Notify,
    locks: idempotency::Locks,
    metrics: Arc<metrics::Metrics>,
    executions: executions::Executions,
    bulk_tasks: bulk_jobs::BulkTasks,
    /// Tenants seen to exist (tenants are never deleted), so the webhook's
    /// tenant check reads the database once per tenant, not per call.
    known_tenants: std::sync::RwLock<std::collections::HashSet<TenantId>>,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(
        db: Arc<dyn Database>,
        sealer: Arc<dyn Sealer>,
        clock: Arc<dyn Clock>,
        http: HttpClient,
        engine: EngineSettings,
        config: ServerConfig,
    ) -> Self {
        let store: Arc<dyn Store> = db.clone();
        let tokens = Arc::new(
            SealedTokenCache::new(store.clone(), sealer.clone()).with_clock(clock.clone()),
        );
        let metrics = Arc::new(metrics::Metrics::new());
        let process_owner = Engine::new(store.clone(), clock.clone(), engine)
            .owner()
            .to_string();
        let executions = executions::Executions::new(metrics.clone(), process_owner);
        let registry =
            registry::Registry::new(store, sealer.clone(), clock.clone(), http, tokens, engine)
                .with_observer(metrics.clone());
        Self(Arc::new(Inner {
            db,
            sealer,
            clock,
            config,
            registry,
            wake_worker: tokio::sync::Notify::new(),
            locks: idempotency::Locks::default(),
            metrics,
            executions,
            bulk_tasks: Default::default(),
            known_tenants: Default::default(),
        }))
    }

    pub fn db(&self) -> &Arc<dyn Database> {
        &self.0.db
    }

    pub fn sealer(&self) -> &Arc<dyn Sealer> {
        &self.0.sealer
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The policy every entry point applies ([`ServerConfig::policy`]).
    pub fn policy(&self) -> &Arc<PolicyResolver> {
        &self.0.config.policy
    }

    pub fn registry(&self) -> &registry::Registry {
        &self.0.registry
    }

    /// What `/metrics` reports.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// Whether `tenant` exists; a tenant once found is remembered.
    pub async fn tenant_exists(&self, tenant: TenantId) -> Result<bool, ApiError> {
        let known = self
            .0
            .known_tenants
            .read()
            .map(|k| k.contains(&tenant))
            .unwrap_or(false);
        if known {
            return Ok(true);
        }
        let exists = self.db().get_tenant(tenant).await?.is_some();
        if exists {
            if let Ok(mut k) = self.0.known_tenants.write() {
                k.insert(tenant);
            }
        }
        Ok(exists)
    }

    /// The revocations this process is running.
    pub fn executions(&self) -> &executions::Executions {
        &self.0.executions
    }

    /// The bulk jobs this process runs.
    pub fn bulk_tasks(&self) -> &bulk_jobs::BulkTasks {
        &self.0.bulk_tasks
    }

    pub(crate) fn idempotency_locks(&self) -> &idempotency::Locks {
        &self.0.locks
    }

    /// The tenant's engine over its currently stored connectors.
    pub async fn engine(&self, tenant: TenantId) -> Result<Arc<Engine>, ApiError> {
        let connectors = self.db().list_connectors(tenant).await?;
        self.registry().engine(tenant, connectors).await
    }

    /// Make the worker look for work now rather than at its next tick.
    pub fn wake_worker(&self) {
        self.0.wake_worker.notify_one();
    }

    pub(crate) async fn worker_woken(&self) {
        self.0.wake_worker.notified().await
    }
}

/// Read every request body whole (up to the configured limit) before any
/// route sees it. A guard that refuses a request without reading its body
/// (a 401 on `/mcp`, say) would otherwise leave hyper to close a kept-alive
/// connection that the client is already reusing, and the client's next
/// request fails with "server disconnected without sending a response".
/// A body over the limit (or one that fails to arrive) goes on as it came,
/// so the route refuses it with its own answer.
async fn read_body_first(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use futures::StreamExt;
    use http_body_util::BodyExt;
    // A list of people has its own, larger limit.
    let limit = if req.uri().path() == api::bulk::PATH {
        st.config().bulk_body_limit
    } else {
        st.config().body_limit
    };
    let (parts, mut body) = req.into_parts();
    let mut read: Vec<axum::body::Bytes> = Vec::new();
    let mut total = 0;
    let failed = loop {
        match body.frame().await {
            None => {
                let whole = match read.len() {
                    0 => axum::body::Body::empty(),
                    1 => read.remove(0).into(),
                    _ => read.concat().into(),
                };
                return next
                    .run(axum::extract::Request::from_parts(parts, whole))
                    .await;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    read.push(data);
                    if total > limit {
                        break None;
                    }
                }
            }
            Some(Err(e)) => break Some(e),
        }
    };
    let rest = match failed {
        None => StreamExt::boxed(body.into_data_stream()),
        Some(e) => StreamExt::boxed(futures::stream::once(async { Err(e) })),
    };
    let again = futures::stream::iter(read.into_iter().map(Ok)).chain(rest);
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from_stream(again),
    ))
    .await
}

/// Serve the API on `listener` and run the worker beside it, until
/// `shutdown` completes; then stop accepting, give running revocations
/// `shutdown_grace` to finish, release the leases of those that did not (so
/// another process takes them over at once), finish in-flight HTTP
/// requests, and stop the worker.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use std::future::IntoFuture;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // Err: the sender is gone, which also means stop.
        let _ = rx.wait_for(|s| *s).await;
    };
    let worker = tokio::spawn(run_worker(state.clone(), stopped(rx.clone())));
    let app = router(state.clone())
        .merge(ui::router(state.clone()))
        .merge(ops::router(state.clone()))
        // The UI's handlers read the policy resolver from here.
        .layer(axum::Extension(state.policy().clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body_first,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut http = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(rx.clone()))
            .into_future(),
    );
    let early = tokio::select! {
        r = &mut http => Some(r),
        _ = stopped(rx) => None,
    };
    // No new connections from here on; running work gets its grace period.
    ops::finish_or_release(&state).await;
    let served = match early {
        Some(r) => r,
        None => http.await,
    };
    if let Err(e) = worker.await {
        tracing::warn!(error = %e, "the worker stopped abnormally");
    }
    served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}
