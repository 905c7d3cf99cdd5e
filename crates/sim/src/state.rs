//! The state all five simulators share: directory, faults, rate windows, issued tokens,
//! revocations and the call log.
//!
//! One `Arc<Shared>` sits behind every server and every [`SimHandle`], so a test drives and
//! observes the whole fleet from one place (or over HTTP through `/_sim/…`). Locks are plain
//! `std` mutexes held for a few lines and never across an await.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::directory::Index;
use crate::{CallRecord, Directory, Fault, FaultKind, Provider, RateLimit, SimOptions, Step};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Epoch seconds rounded up, so "reset at" is never earlier than the real moment.
pub(crate) fn epoch_ceil(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// What a call is about, as decided by the provider module before answering it.
pub(crate) struct Class {
    pub step: Step,
    /// The user key as the client sent it (email, login, id), decoded.
    pub subject: Option<String>,
    /// The person that key resolves to in this provider.
    pub person: Option<usize>,
    /// Rate-limit bucket (Slack: the method; others: the API or the token endpoint).
    pub bucket: String,
}

impl Class {
    pub fn new(step: Step, bucket: &str) -> Class {
        Class {
            step,
            subject: None,
            person: None,
            bucket: bucket.to_string(),
        }
    }

    pub fn about(mut self, subject: &str, person: Option<usize>) -> Class {
        self.subject = Some(subject.to_string());
        self.person = person;
        self
    }
}

/// Where a rate window stands after a call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub limit: u32,
    pub remaining: u32,
    /// When the window frees a slot (epoch seconds).
    pub reset: u64,
    /// How long until then.
    pub wait: Duration,
}

/// An access token a simulated token endpoint issued.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub provider: Provider,
    /// OAuth scopes (Okta, Google) or application roles (Entra).
    pub scopes: Vec<String>,
    /// The impersonated person (Google delegation subject).
    pub subject: Option<usize>,
    pub expires: Instant,
}

impl Issued {
    pub fn expired(&self) -> bool {
        Instant::now() >= self.expires
    }

    pub fn has_any(&self, wanted: &[&str]) -> bool {
        self.scopes.iter().any(|s| wanted.contains(&s.as_str()))
    }
}

struct FaultEntry {
    provider: Provider,
    key: String,
    person: Option<usize>,
    fault: Fault,
    used: u32,
}

pub(crate) struct Shared {
    pub index: Index,
    pub opts: SimOptions,
    /// Monotonic and wall-clock time at start; call times are reported relative to them.
    pub epoch: Instant,
    pub wall_start: SystemTime,
    latency_us: AtomicU64,
    faults: Mutex<Vec<FaultEntry>>,
    calls: Mutex<Vec<CallRecord>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    count_429: AtomicUsize,
    revoked: Mutex<Vec<(Provider, usize, SystemTime)>>,
    tokens: Mutex<HashMap<String, Issued>>,
    seen_jti: Mutex<HashSet<String>>,
    windows: Mutex<HashMap<(Provider, String), VecDeque<Instant>>>,
}

/// Decrements the in-flight count when a request ends, however it ends.
pub(crate) struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(dir: Directory, opts: SimOptions) -> Shared {
        Shared {
            index: Index::new(dir),
            latency_us: AtomicU64::new(micros(opts.latency)),
            opts,
            epoch: Instant::now(),
            wall_start: SystemTime::now(),
            faults: Mutex::default(),
            calls: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            count_429: AtomicUsize::new(0),
            revoked: Mutex::default(),
            tokens: Mutex::default(),
            seen_jti: Mutex::default(),
            windows: Mutex::default(),
        }
    }

    pub fn enter(self: &Arc<Self>) -> InFlight {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self.clone())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    pub fn record(&self, rec: CallRecord) {
        if rec.status == 429 {
            self.count_429.fetch_add(1, Ordering::SeqCst);
        }
        lock(&self.calls).push(rec);
    }

    /// The fault that applies to this call, if any; counts it against `times`.
    pub fn take_fault(&self, provider: Provider, class: &Class) -> Option<FaultKind> {
        let subject = class.subject.as_deref().map(str::to_lowercase);
        let mut faults = lock(&self.faults);
        let entry = faults.iter_mut().find(|e| {
            let about_person = (e.person.is_some() && e.person == class.person)
                || subject.as_deref() == Some(e.key.as_str());
            let step_matches = match (e.fault.step, class.step) {
                (Step::Token, Step::Token) => true,
                (Step::Any, _) => about_person,
                (s, c) => s == c && about_person,
            };
            e.provider == provider && step_matches && e.fault.times.is_none_or(|n| e.used < n)
        })?;
        entry.used += 1;
        Some(entry.fault.kind.clone())
    }

    /// Counts a call against its rate window; `false` when the window is full.
    pub fn admit(&self, provider: Provider, bucket: &str) -> (bool, Budget) {
        let configured = self.opts.rate_limits.get(&provider).copied();
        // Unconfigured windows are never enforced, so their headers report a budget too large
        // to run out: a client that paces itself on `Remaining` must not stall.
        let limit = configured.unwrap_or(RateLimit {
            max: 10_000,
            per: Duration::from_secs(60),
        });
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        let log = windows.entry((provider, bucket.to_string())).or_default();
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.per)
        {
            log.pop_front();
        }
        let allowed = configured.is_none() || log.len() < limit.max as usize;
        if allowed {
            log.push_back(now);
            // Unenforced default windows only feed the headers; keep them bounded.
            if log.len() > limit.max as usize {
                log.pop_front();
            }
        }
        let wait = log.front().map_or(limit.per, |t| {
            (*t + limit.per).saturating_duration_since(now)
        });
        let used = u32::try_from(log.len()).unwrap_or(u32::MAX);
        let reset = epoch_ceil(SystemTime::now() + wait);
        let budget = Budget {
            limit: limit.max,
            remaining: limit.max.saturating_sub(used),
            reset,
            wait,
        };
        (allowed, budget)
    }

    pub fn issue_token(
        &self,
        provider: Provider,
        scopes: Vec<String>,
        subject: Option<usize>,
        token: String,
    ) -> u64 {
        let lifetime = self.opts.token_lifetime_secs;
        let issued = Issued {
            provider,
            scopes,
            subject,
            expires: Instant::now() + Duration::from_secs(lifetime),
        };
        lock(&self.tokens).insert(token, issued);
        lifetime
    }

    /// A token this provider's token endpoint issued (possibly expired).
    pub fn token(&self, provider: Provider, token: &str) -> Option<Issued> {
        lock(&self.tokens)
            .get(token)
            .filter(|t| t.provider == provider)
            .cloned()
    }

    /// Records a client-assertion `jti`; `false` if it was seen before (a replay).
    pub fn first_use_of_jti(&self, jti: &str) -> bool {
        lock(&self.seen_jti).insert(jti.to_string())
    }

    pub fn mark_revoked(&self, provider: Provider, person: usize) {
        lock(&self.revoked).push((provider, person, SystemTime::now()));
    }

    pub fn last_revoked(&self, provider: Provider, person: usize) -> Option<SystemTime> {
        lock(&self.revoked)
            .iter()
            .rev()
            .find(|(p, i, _)| *p == provider && *i == person)
            .map(|(_, _, t)| *t)
    }

    /// A plausible last sign-in: a few hours before the simulators started.
    pub fn last_login(&self, person: usize) -> SystemTime {
        self.wall_start - Duration::from_secs(3600 * (1 + (person as u64 % 48)))
    }

    /// When the account was created: a fixed date, staggered per person.
    pub fn created(&self, person: usize) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_672_531_200 + 86_400 * (person as u64 % 365))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Drives and observes running simulators; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl SimHandle {
    /// Injects `fault` for calls about the person known by `key` (email, Okta login or id,
    /// UPN, Graph id, Slack id). Token-step faults apply to every token call of `p`.
    /// Replaces an earlier fault for the same provider, person and step.
    pub fn set_fault(&self, p: Provider, key: &str, fault: Fault) {
        let person = self.shared.index.resolve(key);
        let key = key.to_lowercase();
        let mut faults = lock(&self.shared.faults);
        faults.retain(|e| !(e.provider == p && e.key == key && e.fault.step == fault.step));
        faults.push(FaultEntry {
            provider: p,
            key,
            person,
            fault,
            used: 0,
        });
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Changes the latency added to every call from now on.
    pub fn set_latency(&self, d: Duration) {
        self.shared.latency_us.store(micros(d), Ordering::Relaxed);
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.shared.calls).clone()
    }

    pub fn calls_to(&self, p: Provider) -> Vec<CallRecord> {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.provider == p)
            .cloned()
            .collect()
    }

    /// Forgets the call log, the 429 count and the in-flight peak.
    pub fn reset_calls(&self) {
        lock(&self.shared.calls).clear();
        self.shared.count_429.store(0, Ordering::SeqCst);
        let now = self.shared.in_flight.load(Ordering::SeqCst);
        self.shared.peak.store(now, Ordering::SeqCst);
    }

    /// Most requests in flight at once, across all five servers, since the last reset.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// Emails whose sessions `p` revoked, one entry per successful revoke, in order.
    pub fn revoked(&self, p: Provider) -> Vec<String> {
        lock(&self.shared.revoked)
            .iter()
            .filter(|(prov, _, _)| *prov == p)
            .filter_map(|(_, i, _)| self.shared.index.people.get(*i))
            .map(|person| person.email.clone())
            .collect()
    }

    /// Answers with status 429 since the last reset.
    pub fn count_429(&self) -> usize {
        self.shared.count_429.load(Ordering::SeqCst)
    }
}
