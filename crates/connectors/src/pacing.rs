//! Provider-aware pacing (issue 7): per connector instance, a rate budget
//! per rate bucket (Slack counts per method, the others per API, the token
//! endpoint apart), learned from what the provider says, plus a cap on how
//! many bulk calls are in flight at once.
//!
//! * A configured `rate_limit` (calls per `rate_window_secs`) is where the
//!   budget starts; Okta's `X-Rate-Limit-Limit/-Remaining/-Reset` and Miro's
//!   `X-RateLimit-*` (credits; a Level 3 call costs 500) replace it with
//!   what the provider reports, and their `Remaining` holds bulk calls back
//!   until `Reset` when the window is about to run out.
//! * A 429 (or Google's rate-limit 403) blocks the bucket's bulk calls
//!   until `Retry-After` (a second when absent) and lowers the budget by a
//!   tenth: the budget converges just under the limit.
//! * Bulk calls are spaced evenly at [`HEADROOM`] of the budget (a
//!   generic cell rate algorithm, so no window ever sees more than the
//!   limit); urgent calls (single revocations, anything not run inside a
//!   bulk job) never wait: they go at once and the spacing of the bulk
//!   calls behind them absorbs what they used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The share of a provider's limit bulk calls aim for.
pub const HEADROOM: f64 = 0.96;

/// How many bulk calls of one connector are in flight at once, by default.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;

/// Credits a Miro Level 3 call costs.
const MIRO_CREDITS_PER_CALL: f64 = 500.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingConfig {
    /// Bulk calls in flight at once (urgent calls are not counted).
    pub max_concurrency: usize,
    /// The starting budget: at most this many calls per `window`; `None`
    /// until the provider says (or never, for a provider that never does).
    pub rate_limit: Option<u32>,
    pub window: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            rate_limit: None,
            window: Duration::from_secs(60),
        }
    }
}

/// How a provider states its budget on a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `X-Rate-Limit-Limit/-Remaining/-Reset` (calls, epoch seconds).
    Okta,
    /// `X-RateLimit-Limit/-Remaining/-Reset` (credits, epoch seconds).
    Miro,
    /// Only `Retry-After` on a 429 (Graph, Slack, Google).
    RetryAfterOnly,
}

/// How `provider` states its budget.
pub fn dialect(provider: sever_core::ConnectorKey) -> Dialect {
    use sever_core::ConnectorKey as K;
    match provider {
        K::Okta => Dialect::Okta,
        K::Miro => Dialect::Miro,
        _ => Dialect::RetryAfterOnly,
    }
}

#[derive(Debug)]
struct Bucket {
    /// Calls per window; `None` while unknown (bulk calls are then not spaced).
    limit: Option<f64>,
    /// Theoretical arrival time of the next call (GCRA).
    tat: Instant,
    blocked_until: Option<Instant>,
    /// The provider's last `Remaining` (in calls) and when its window resets.
    remaining: Option<(f64, Instant)>,
    in_flight: u32,
}

pub struct Pacer {
    config: PacingConfig,
    dialect: Dialect,
    buckets: Mutex<HashMap<&'static str, Bucket>>,
    bulk_slots: Semaphore,
}

/// Held while a call is in flight.
pub struct Grant<'a> {
    pacer: &'a Pacer,
    bucket: &'static str,
    _slot: Option<SemaphorePermit<'a>>,
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut buckets = self.pacer.lock();
        if let Some(b) = buckets.get_mut(self.bucket) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}

impl Pacer {
    pub fn new(config: PacingConfig, dialect: Dialect) -> Self {
        Self {
            config,
            dialect,
            buckets: Mutex::new(HashMap::new()),
            bulk_slots: Semaphore::new(config.max_concurrency.max(1)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn interval(&self, b: &Bucket) -> Option<Duration> {
        b.limit
            .filter(|l| *l > 0.0)
            .map(|l| self.config.window.div_f64(l * HEADROOM))
    }

    /// Wait for a bulk call's turn in `bucket`; urgent calls go at once.
    pub async fn acquire(&self, bucket: &'static str, urgent: bool) -> Grant<'_> {
        let slot = if urgent {
            None
        } else {
            self.bulk_slots.acquire().await.ok()
        };
        loop {
            let wait = {
                let mut buckets = self.lock();
                let now = Instant::now();
                let b = buckets.entry(bucket).or_insert_with(|| Bucket {
                    limit: self.config.rate_limit.map(f64::from),
                    tat: now,
                    blocked_until: None,
                    remaining: None,
                    in_flight: 0,
                });
                let interval = self.interval(b);
                let mut at = now;
                if !urgent {
                    if let Some(t) = b.blocked_until.filter(|t| *t > now) {
                        at = at.max(t);
                    }
                    if interval.is_some() {
                        at = at.max(b.tat);
                    }
                    if let Some((left, reset)) = b.remaining.filter(|(_, r)| *r > now) {
                        if left < f64::from(b.in_flight) + 1.0 {
                            at = at.max(reset);
                        }
                    }
                }
                if at <= now {
                    if let Some(i) = interval {
                        // A bulk call woken a little late (timer and
                        // scheduling jitter, under one interval) keeps the
                        // schedule: otherwise every wake-up's lateness is
                        // lost for good, a few per cent of the budget.
                        // Grants then stay within one interval of an
                        // evenly spaced schedule at HEADROOM of the limit,
                        // so no window sees more than limit·HEADROOM + 2.
                        b.tat = if !urgent && now < b.tat + i {
                            b.tat + i
                        } else {
                            b.tat.max(now) + i
                        };
                    }
                    if let Some((left, _)) = &mut b.remaining {
                        *left -= 1.0;
                    }
                    b.in_flight += 1;
                    None
                } else {
                    Some(at - now)
                }
            };
            match wait {
                None => {
                    return Grant {
                        pacer: self,
                        bucket,
                        _slot: slot,
                    }
                }
                // Re-check at least every 100 ms: an urgent call or an
                // answer may have moved the budget meanwhile.
                Some(w) => tokio::time::sleep(w.min(Duration::from_millis(100))).await,
            }
        }
    }

    /// Learn from an answer: the provider's budget headers, a 429.
    pub fn observe(
        &self,
        bucket: &'static str,
        status: u16,
        headers: &HeaderMap,
        rate_limited: bool,
    ) {
        let now = Instant::now();
        let mut buckets = self.lock();
        let Some(b) = buckets.get_mut(bucket) else {
            return;
        };
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
        };
        let reset_in = |name: &str| {
            let epoch = num(name)?;
            let server_now = headers
                .get("date")
                .and_then(|v| v.to_str().ok())
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .unwrap_or_else(SystemTime::now);
            let reset = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(epoch.max(0.0));
            Some(reset.duration_since(server_now).unwrap_or(Duration::ZERO))
        };
        let (limit, remaining, reset) = match self.dialect {
            Dialect::Okta => (
                num("x-rate-limit-limit"),
                num("x-rate-limit-remaining"),
                reset_in("x-rate-limit-reset"),
            ),
            Dialect::Miro => (
                num("x-ratelimit-limit").map(|c| c / MIRO_CREDITS_PER_CALL),
                num("x-ratelimit-remaining").map(|c| c / MIRO_CREDITS_PER_CALL),
                reset_in("x-ratelimit-reset"),
            ),
            Dialect::RetryAfterOnly => (None, None, None),
        };
        if let Some(l) = limit.filter(|l| *l >= 1.0) {
            // A limit the provider states replaces a configured one.
            b.limit = Some(l);
        }
        if let (Some(left), Some(reset)) = (remaining, reset) {
            // Responses to calls still in flight are not in this figure yet.
            b.remaining = Some((left, now + reset));
        }
        if status == 429 || rate_limited {
            let wait = retry_after(headers)
                .or(reset)
                .unwrap_or(Duration::from_secs(1));
            b.blocked_until = Some(now + wait);
            if limit.is_none() {
                // Only a 429 says where the limit is: come down under it.
                let spent = b.limit.unwrap_or_else(|| {
                    // Unknown so far: start from what went through.
                    f64::from(self.config.max_concurrency.max(1) as u32)
                        * self.config.window.as_secs_f64()
                });
                b.limit = Some((spent * 0.9).max(1.0));
            }
            b.tat = b.tat.max(now + wait);
        }
    }

    #[cfg(test)]
    fn limit(&self, bucket: &'static str) -> Option<f64> {
        self.lock().get(bucket).and_then(|b| b.limit)
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    httpdate::parse_http_date(v)
        .ok()?
        .duration_since(SystemTime::now())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn cfg(limit: u32, window_ms: u64) -> PacingConfig {
        PacingConfig {
            max_concurrency: 64,
            rate_limit: Some(limit),
            window: Duration::from_millis(window_ms),
        }
    }

    #[tokio::test]
    async fn bulk_calls_are_spaced_to_just_under_the_budget() {
        let p = Pacer::new(cfg(100, 1000), Dialect::RetryAfterOnly);
        let t0 = Instant::now();
        for _ in 0..50 {
            drop(p.acquire("api", false).await);
        }
        let took = t0.elapsed();
        // 50 calls at 96 per second: about half a second, never faster.
        assert!(took >= Duration::from_millis(480), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
    }

    #[tokio::test]
    async fn urgent_calls_never_wait_behind_bulk_ones() {
        let p = std::sync::Arc::new(Pacer::new(cfg(10, 1000), Dialect::RetryAfterOnly));
        // A bulk backlog: the bucket's next free slot is seconds away.
        for _ in 0..20 {
            let mut b = p.lock();
            let now = Instant::now();
            let e = b.entry("api").or_insert_with(|| Bucket {
                limit: Some(10.0),
                tat: now,
                blocked_until: None,
                remaining: None,
                in_flight: 0,
            });
            e.tat += Duration::from_millis(100);
        }
        let t0 = Instant::now();
        let g = p.acquire("api", true).await;
        assert!(t0.elapsed() < Duration::from_millis(20));
        drop(g);
        let bulk = tokio::time::timeout(Duration::from_millis(200), p.acquire("api", false)).await;
        assert!(bulk.is_err(), "a bulk call must wait its turn");
    }

    #[tokio::test]
    async fn a_429_blocks_bulk_calls_until_retry_after_and_lowers_the_budget() {
        let p = Pacer::new(cfg(100, 1000), Dialect::RetryAfterOnly);
        drop(p.acquire("api", false).await);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1"));
        p.observe("api", 429, &h, false);
        assert_eq!(p.limit("api"), Some(90.0));
        let t0 = Instant::now();
        drop(p.acquire("api", false).await);
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn oktas_headers_set_the_budget_and_an_empty_window_waits_for_reset() {
        let p = Pacer::new(PacingConfig::default(), Dialect::Okta);
        drop(p.acquire("api", false).await);
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from_static("600"));
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
        let reset = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 2;
        h.insert(
            "x-rate-limit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        p.observe("api", 200, &h, false);
        assert_eq!(p.limit("api"), Some(600.0));
        let waited =
            tokio::time::timeout(Duration::from_millis(300), p.acquire("api", false)).await;
        assert!(waited.is_err(), "no budget left until the reset");
        let urgent = tokio::time::timeout(Duration::from_millis(50), p.acquire("api", true)).await;
        assert!(urgent.is_ok());
    }

    #[tokio::test]
    async fn concurrency_caps_bulk_calls_in_flight() {
        let p = Pacer::new(
            PacingConfig {
                max_concurrency: 2,
                ..PacingConfig::default()
            },
            Dialect::RetryAfterOnly,
        );
        let a = p.acquire("api", false).await;
        let _b = p.acquire("api", false).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(100), p.acquire("api", false))
                .await
                .is_err()
        );
        let _u = p.acquire("api", true).await;
        drop(a);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), p.acquire("api", false))
                .await
                .is_ok()
        );
    }
}
