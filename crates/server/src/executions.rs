//! The revocations this process is running, so a graceful shutdown can let
//! them finish, and give back the leases of those that do not.
//!
//! Every run goes through [`Executions::spawn`] (the handlers' runs in
//! [`crate::worker::run_and_wait`] and the worker's claims). On shutdown
//! [`Executions::drain`] waits up to the grace period for them; whatever is
//! still running then is cancelled and its lease released
//! ([`Store::release_lease`](sever_core::Store::release_lease)), so another
//! replica, or this server's next start, claims it at once instead of when
//! the lease expires. A cancelled run loses at most the provider calls in
//! flight at that moment: every finished connector's outcome is already
//! recorded, and the next run does only the rest.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sever_core::RequestId;
use tokio::task::{AbortHandle, JoinHandle};
use tracing::Instrument;

use crate::metrics::Metrics;

struct Entry {
    id: RequestId,
    /// Lease owners the run may hold the request under (the engine's, and
    /// the worker's claim before the engine takes it over).
    owners: Vec<String>,
    abort: Option<AbortHandle>,
}

#[derive(Default)]
struct Shared {
    running: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    stopping: AtomicBool,
    drained: AtomicBool,
}

/// The runs in flight; one per [`crate::AppState`].
pub struct Executions {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    /// The lease owner every engine of this process claims under.
    process_owner: String,
}

/// Removes its entry when the run ends, however it ends (even cancelled).
struct Registered {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    key: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        self.metrics.execution_ended();
    }
}

impl Executions {
    pub(crate) fn new(metrics: Arc<Metrics>, process_owner: String) -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            metrics,
            process_owner,
        }
    }

    /// Run `work` for request `id` in a task of its own (in the caller's
    /// tracing span), tracked until it ends; `claimed_as` is the lease owner
    /// the worker claimed it under, if it did. `None` once the shutdown has
    /// drained: the request stays queued, without a lease, for the next
    /// process to claim.
    pub fn spawn<T: Send + 'static>(
        &self,
        id: RequestId,
        claimed_as: Option<&str>,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<JoinHandle<T>> {
        let owners = std::iter::once(self.process_owner.clone())
            .chain(claimed_as.map(str::to_string))
            .collect();
        if self.shared.drained.load(Ordering::SeqCst) {
            tracing::info!(request_id = %id, "shutting down: left queued for the next start");
            return None;
        }
        let key = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.insert(
            key,
            Entry {
                id,
                owners,
                abort: None,
            },
        );
        self.metrics.execution_started();
        let guard = Registered {
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
            key,
        };
        let handle = tokio::spawn(
            async move {
                let _guard = guard;
                work.await
            }
            .in_current_span(),
        );
        if let Some(e) = running.get_mut(&key) {
            e.abort = Some(handle.abort_handle());
        }
        Some(handle)
    }

    /// The lease owner every engine of this process claims under; the worker
    /// claims under it too, so a request it claims and a handler's run of the
    /// same request are one run (the engine's in-process guard), never a
    /// claim nobody runs until it expires.
    pub fn process_owner(&self) -> &str {
        &self.process_owner
    }

    /// How many runs are in flight.
    pub fn len(&self) -> usize {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shutdown has begun: readiness fails from now on.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// The shutdown has drained: nothing new runs, and waiting handlers
    /// answer with what they have.
    pub fn is_drained(&self) -> bool {
        self.shared.drained.load(Ordering::SeqCst)
    }

    pub(crate) fn begin_stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
    }

    /// Wait up to `grace` for the runs in flight, then cancel the rest.
    /// Returns each cancelled run's request and the lease owners it may
    /// hold it under, for the caller to release.
    pub(crate) async fn drain(&self, grace: Duration) -> Vec<(RequestId, Vec<String>)> {
        self.begin_stop();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.drained.store(true, Ordering::SeqCst);
        let cancelled: Vec<(RequestId, Vec<String>)> = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| {
                if let Some(a) = &e.abort {
                    a.abort();
                }
                (e.id, e.owners.clone())
            })
            .collect();
        // A cancelled task ends at its next await; wait for them to go so
        // no write of theirs lands after the lease is given back.
        let settle = tokio::time::Instant::now() + Duration::from_secs(2);
        while !self.is_empty() && tokio::time::Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_are_tracked_until_they_end_and_the_slow_ones_are_cancelled_at_the_deadline() {
        let ex = Executions::new(Arc::new(Metrics::new()), "me".into());
        let quick = RequestId::new();
        let slow = RequestId::new();
        let h = ex.spawn(quick, None, async { 7 }).unwrap();
        assert_eq!(h.await.unwrap(), 7);
        assert!(ex.is_empty());
        let _ = ex.spawn(slow, Some("worker"), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let _ = ex.spawn(RequestId::new(), None, async {
            tokio::time::sleep(Duration::from_millis(30)).await;
        });
        assert_eq!(ex.len(), 2);
        let cancelled = ex.drain(Duration::from_millis(300)).await;
        assert_eq!(cancelled, vec![(slow, vec!["me".into(), "worker".into()])]);
        assert!(ex.is_empty() && ex.is_drained() && ex.is_stopping());
        assert!(ex.spawn(RequestId::new(), None, async {}).is_none());
    }
}
