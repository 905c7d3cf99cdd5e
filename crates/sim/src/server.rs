//! One loopback HTTP/1 server per provider, and the pipeline every request goes through.
//!
//! The pipeline gives the five simulators the same behaviour around each provider's own answer:
//! latency, the call log, the in-flight count, injected faults and rate windows. hyper is driven
//! directly rather than through `axum::serve` because a `Drop` fault has to close the
//! connection that carries one particular request, which needs a handle on that connection.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::state::{epoch_ceil, Budget, Class, Shared};
use crate::wire::{Reply, Req};
use crate::{control, entra, google, miro, okta, slack};
use crate::{CallRecord, Directory, FaultKind, Provider, SimHandle, SimOptions};

const MAX_BODY: usize = 8 * 1024 * 1024;

/// What a provider module sees of the call besides the request itself.
pub(crate) struct Cx<'a> {
    pub shared: &'a Shared,
    /// Fresh per call; providers echo it in their request-id headers and error bodies.
    pub request_id: String,
}

/// A 429 to answer, from a full rate window or an injected fault.
pub(crate) struct Throttle {
    pub retry_after_secs: u64,
    pub http_date: bool,
    /// Injected by a fault (Google sends `Retry-After` only then).
    pub injected: bool,
}

impl Throttle {
    /// The `Retry-After` value: delta-seconds, or an HTTP-date never earlier than the delay.
    pub fn retry_after(&self) -> String {
        if self.http_date {
            let at = SystemTime::now() + Duration::from_secs(self.retry_after_secs);
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(epoch_ceil(at)))
        } else {
            self.retry_after_secs.to_string()
        }
    }
}

/// One provider's API: how to classify a call and how that provider answers.
pub(crate) trait Api: Sync {
    /// Step, subject and rate bucket of the call, before anything is answered.
    fn classify(&self, cx: &Cx, req: &Req) -> Class;
    /// The normal answer.
    fn handle(&self, cx: &Cx, req: &Req) -> Reply;
    /// The provider's real answer for an injected status.
    fn status_fault(&self, cx: &Cx, req: &Req, class: &Class, status: u16) -> Reply;
    /// The provider's rate-limit answer.
    fn throttled(&self, cx: &Cx, req: &Req, class: &Class, t: &Throttle) -> Reply;
    /// Headers the provider puts on every answer.
    fn decorate(&self, _cx: &Cx, _req: &Req, _reply: &mut Reply, _budget: &Budget) {}
}

fn api(p: Provider) -> &'static dyn Api {
    match p {
        Provider::Okta => &okta::Okta,
        Provider::Entra => &entra::Entra,
        Provider::Google => &google::Google,
        Provider::Slack => &slack::Slack,
        Provider::Miro => &miro::Miro,
    }
}

/// The five running simulators. Dropping it stops them too; [`Sims::shutdown`] also waits.
pub struct Sims {
    handle: SimHandle,
    bases: Vec<(Provider, String)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sims {
    /// Binds one server per provider on 127.0.0.1 (ports from `opts.ports`, else ephemeral).
    pub async fn start(dir: Directory, opts: SimOptions) -> io::Result<Sims> {
        let shared = Arc::new(Shared::new(dir, opts));
        let mut sims = Sims {
            handle: SimHandle {
                shared: shared.clone(),
            },
            bases: Vec::new(),
            tasks: Vec::new(),
        };
        for p in Provider::ALL {
            let port = shared.opts.ports.get(&p).copied().unwrap_or(0);
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            let addr = listener.local_addr()?;
            sims.bases.push((p, format!("http://{addr}")));
            sims.tasks
                .push(tokio::spawn(accept_loop(listener, p, shared.clone())));
        }
        Ok(sims)
    }

    /// `http://127.0.0.1:PORT` of a provider's server. Connector URLs derive from it: Entra
    /// Graph is `base/v1.0` and its token URL `base/{tenant}/oauth2/v2.0/token`; Google's
    /// token URL is `base/token`; Slack's methods are under `base/api`.
    pub fn base_url(&self, p: Provider) -> String {
        self.bases
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }

    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Every provider with its base URL, in [`Provider::ALL`] order.
    pub fn describe(&self) -> Vec<(Provider, String)> {
        self.bases.clone()
    }

    /// Stops accepting, closes every connection and waits for the servers to end.
    pub async fn shutdown(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Sims {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, provider: Provider, shared: Arc<Shared>) {
    // Aborting this task drops the set, which aborts every connection task with it.
    let mut conns = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                while conns.try_join_next().is_some() {}
                conns.spawn(connection(stream, provider, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(provider = provider.key(), error = %e, "sim accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, provider: Provider, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let svc_kill = kill.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let kill = svc_kill.clone();
        async move { Ok::<_, Infallible>(respond(provider, shared, kill, req).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    // A Drop fault fires `kill`: dropping the connection future closes the socket mid-request.
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
    }
}

async fn respond(
    provider: Provider,
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .unwrap_or_default();
    let req = Req::new(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    if req.segments.first().is_some_and(|s| s == "_sim") {
        return control::handle(&shared, &req).into_response();
    }
    let _in_flight = shared.enter();
    let api = api(provider);
    let cx = Cx {
        shared: &shared,
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let class = api.classify(&cx, &req);
    let log = LogOnDrop {
        shared: &shared,
        record: Some(call_record(provider, &req, &class, started)),
    };
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = shared.take_fault(provider, &class);
    match fault {
        Some(FaultKind::Drop) => {
            // Log (status 0) before the socket closes, so the log keeps the client's order.
            drop(log);
            kill.notify_one();
            return std::future::pending().await;
        }
        Some(FaultKind::Slow(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let (allowed, mut budget) = shared.admit(provider, &class.bucket);
    let mut reply = match fault {
        Some(FaultKind::Status(status)) => api.status_fault(&cx, &req, &class, status),
        Some(FaultKind::RateLimited {
            retry_after_secs,
            http_date,
        }) => {
            let wait = Duration::from_secs(retry_after_secs);
            budget = Budget {
                remaining: 0,
                reset: epoch_ceil(SystemTime::now() + wait),
                wait,
                ..budget
            };
            let t = Throttle {
                retry_after_secs,
                http_date,
                injected: true,
            };
            api.throttled(&cx, &req, &class, &t)
        }
        _ if !allowed => {
            let secs = budget.wait.as_secs() + u64::from(budget.wait.subsec_nanos() > 0);
            let t = Throttle {
                retry_after_secs: secs.max(1),
                http_date: false,
                injected: false,
            };
            api.throttled(&cx, &req, &class, &t)
        }
        _ => api.handle(&cx, &req),
    };
    api.decorate(&cx, &req, &mut reply, &budget);
    log.answered(reply.status);
    reply.into_response()
}

/// Logs the call however the request ends: answered, or abandoned with status 0 (a `Drop`
/// fault, or a client that gave up while the sim was still slow).
struct LogOnDrop<'a> {
    shared: &'a Shared,
    record: Option<CallRecord>,
}

impl LogOnDrop<'_> {
    fn answered(mut self, status: u16) {
        if let Some(r) = self.record.as_mut() {
            r.status = status;
        }
    }
}

impl Drop for LogOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.finished = Instant::now();
            self.shared.record(r);
        }
    }
}

fn call_record(provider: Provider, req: &Req, class: &Class, started: Instant) -> CallRecord {
    CallRecord {
        provider,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        auth_scheme: req.auth_scheme(),
        content_type: req.content_type().map(str::to_string),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: 0,
        step: class.step,
        started,
        finished: Instant::now(),
    }
}
