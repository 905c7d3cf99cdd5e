//! The state policies keep between calls — rate-limit counters, the sets of
//! people revoked per window (blast radius) and per-person cooldowns — behind
//! one port, [`CounterStore`], so every replica shares it through the
//! database and it survives restarts.
//!
//! The port's one writing method applies a whole list of [`Claim`]s
//! atomically, all or none: a call that passes its per-minute limit but
//! fails its per-hour one counts against neither, and no interleaving of
//! concurrent calls, in one process or across replicas, ever lets a count
//! past its maximum. [`MemoryCounters`] implements the same semantics in
//! memory (tests, and `sever policy explain` without a database).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::StoreError;

/// One bounded use of shared policy state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Add `amount` to the count of `key` in the window starting at
    /// `window_start`, unless that would take it past `max`. A count kept
    /// for an older window starts again from zero; a caller whose clock is
    /// behind (its window is older than the stored one) counts in the
    /// stored, newer window.
    Count {
        key: String,
        window_start: DateTime<Utc>,
        max: u64,
        amount: u64,
    },
    /// Add `members` to the set of `key` for the window, unless the set
    /// would then hold more than `max` members. Members already in the set
    /// cost nothing.
    Distinct {
        key: String,
        window_start: DateTime<Utc>,
        members: Vec<String>,
        max: u64,
    },
    /// Block `key` until `until`, unless it is already blocked past `now`.
    Cooldown { key: String, until: DateTime<Utc> },
}

impl Claim {
    pub fn key(&self) -> &str {
        match self {
            Claim::Count { key, .. }
            | Claim::Distinct { key, .. }
            | Claim::Cooldown { key, .. } => key,
        }
    }

    /// Whether the claim would be granted given its `usage` (from
    /// [`CounterStore::peek`]) at `now`.
    pub fn admits(&self, usage: &ClaimUsage, now: DateTime<Utc>) -> bool {
        match (self, usage) {
            (Claim::Count { max, amount, .. }, ClaimUsage::Count(n)) => {
                n.saturating_add(*amount) <= *max
            }
            (Claim::Distinct { max, .. }, ClaimUsage::Distinct { count, new_members }) => {
                *new_members == 0 || count.saturating_add(*new_members) <= *max
            }
            (Claim::Cooldown { .. }, ClaimUsage::Cooldown(until)) => until.is_none_or(|u| u <= now),
            _ => false,
        }
    }

    /// The distinct-set members, deduplicated and in a stable order.
    fn members(members: &[String]) -> BTreeSet<&str> {
        members.iter().map(String::as_str).collect()
    }
}

/// What a claim's state is now (see [`CounterStore::peek`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimUsage {
    /// The count in the claim's window.
    Count(u64),
    /// The set's size in the claim's window, and how many of the claim's
    /// members it does not hold yet.
    Distinct { count: u64, new_members: u64 },
    /// Blocked until this time, if ever set.
    Cooldown(Option<DateTime<Utc>>),
}

/// Shared, durable policy state. Implementations: SQLite and PostgreSQL
/// (`sever-store`), [`MemoryCounters`].
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Apply every claim, or none: `Ok(None)` when all were granted,
    /// `Ok(Some(i))` when claim `i` was refused (and nothing changed).
    /// Atomic against every concurrent caller sharing the store.
    async fn consume(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Option<usize>, StoreError>;

    /// The state of each claim, in order, changing nothing.
    async fn peek(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimUsage>, StoreError>;

    /// Forget counts and sets of windows that started before `before`, and
    /// cooldowns that ended before it. Returns how many entries went.
    async fn purge_policy_state(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// One counter: add one unless that passes `max`; true when counted.
    async fn try_consume(
        &self,
        key: &str,
        window_start: DateTime<Utc>,
        max: u64,
    ) -> Result<bool, StoreError> {
        let claim = Claim::Count {
            key: key.to_string(),
            window_start,
            max,
            amount: 1,
        };
        Ok(self.consume(&[claim], window_start).await?.is_none())
    }

    /// One distinct set: add `member` unless the set would pass `max`;
    /// returns whether it was admitted and the set's size afterwards.
    async fn record_distinct(
        &self,
        key: &str,
        window_start: DateTime<Utc>,
        member: &str,
        max: u64,
    ) -> Result<(bool, u64), StoreError> {
        let claim = Claim::Distinct {
            key: key.to_string(),
            window_start,
            members: vec![member.to_string()],
            max,
        };
        let admitted = self
            .consume(std::slice::from_ref(&claim), window_start)
            .await?
            .is_none();
        let count = match self.peek(&[claim], window_start).await?.first() {
            Some(ClaimUsage::Distinct { count, .. }) => *count,
            _ => 0,
        };
        Ok((admitted, count))
    }
}

/// Purge what no window can still need: a day (the longest window) ago.
pub async fn purge_expired(
    counters: &dyn CounterStore,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    counters
        .purge_policy_state(now - chrono::Duration::days(1) - chrono::Duration::seconds(1))
        .await
}

#[derive(Debug, Default)]
struct State {
    /// key -> (window_start, count)
    counts: HashMap<String, (DateTime<Utc>, u64)>,
    /// (key, window_start) -> members
    sets: HashMap<(String, DateTime<Utc>), BTreeSet<String>>,
    cooldowns: HashMap<String, DateTime<Utc>>,
}

impl State {
    fn count_in(&self, key: &str, window_start: DateTime<Utc>) -> u64 {
        match self.counts.get(key) {
            Some((start, n)) if *start >= window_start => *n,
            _ => 0,
        }
    }

    fn usage(&self, claim: &Claim) -> ClaimUsage {
        match claim {
            Claim::Count {
                key, window_start, ..
            } => ClaimUsage::Count(self.count_in(key, *window_start)),
            Claim::Distinct {
                key,
                window_start,
                members,
                ..
            } => {
                let set = self.sets.get(&(key.clone(), *window_start));
                let new = Claim::members(members)
                    .into_iter()
                    .filter(|m| !set.is_some_and(|s| s.contains(*m)))
                    .count() as u64;
                ClaimUsage::Distinct {
                    count: self.count_in(&distinct_counter(key), *window_start),
                    new_members: new,
                }
            }
            Claim::Cooldown { key, .. } => ClaimUsage::Cooldown(self.cooldowns.get(key).copied()),
        }
    }

    fn add(&mut self, key: &str, window_start: DateTime<Utc>, amount: u64) {
        let entry = self
            .counts
            .entry(key.to_string())
            .or_insert((window_start, 0));
        if entry.0 < window_start {
            *entry = (window_start, amount);
        } else {
            entry.1 += amount;
        }
    }

    fn apply(&mut self, claim: &Claim) {
        match claim {
            Claim::Count {
                key,
                window_start,
                amount,
                ..
            } => self.add(key, *window_start, *amount),
            Claim::Distinct {
                key,
                window_start,
                members,
                ..
            } => {
                let set = self.sets.entry((key.clone(), *window_start)).or_default();
                let mut new = 0;
                for m in Claim::members(members) {
                    if set.insert(m.to_string()) {
                        new += 1;
                    }
                }
                if new > 0 {
                    self.add(&distinct_counter(key), *window_start, new);
                }
            }
            Claim::Cooldown { key, until } => {
                self.cooldowns.insert(key.clone(), *until);
            }
        }
    }
}

/// The counter that holds a distinct set's size (the SQL stores use the
/// same key, in the same table as plain counters).
pub fn distinct_counter(key: &str) -> String {
    format!("{key}#size")
}

/// [`CounterStore`] in one process's memory, under one lock.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    state: Mutex<State>,
}

impl MemoryCounters {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CounterStore for MemoryCounters {
    async fn consume(
        &self,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Option<usize>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Check against the state as each earlier claim of the list would
        // leave it, then apply all or none.
        let mut scratch = State {
            counts: state.counts.clone(),
            sets: state.sets.clone(),
            cooldowns: state.cooldowns.clone(),
        };
        for (i, claim) in claims.iter().enumerate() {
            if !claim.admits(&scratch.usage(claim), now) {
                return Ok(Some(i));
            }
            scratch.apply(claim);
        }
        *state = scratch;
        Ok(None)
    }

    async fn peek(
        &self,
        claims: &[Claim],
        _now: DateTime<Utc>,
    ) -> Result<Vec<ClaimUsage>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(claims.iter().map(|c| state.usage(c)).collect())
    }

    async fn purge_policy_state(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let n = state.counts.len() + state.sets.len() + state.cooldowns.len();
        state.counts.retain(|_, (start, _)| *start >= before);
        state.sets.retain(|(_, start), _| *start >= before);
        state.cooldowns.retain(|_, until| *until >= before);
        let left = state.counts.len() + state.sets.len() + state.cooldowns.len();
        Ok((n - left) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, 5, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn count(key: &str, start: i64, max: u64) -> Claim {
        Claim::Count {
            key: key.into(),
            window_start: t(start),
            max,
            amount: 1,
        }
    }

    #[tokio::test]
    async fn a_count_stops_at_its_max_and_starts_again_in_the_next_window() {
        let m = MemoryCounters::new();
        for _ in 0..3 {
            assert_eq!(m.consume(&[count("k", 0, 3)], t(1)).await.unwrap(), None);
        }
        assert_eq!(m.consume(&[count("k", 0, 3)], t(2)).await.unwrap(), Some(0));
        assert_eq!(m.consume(&[count("k", 60, 3)], t(60)).await.unwrap(), None);
        // A late caller (older window) counts in the newer window.
        assert_eq!(
            m.peek(&[count("k", 0, 3)], t(61)).await.unwrap(),
            [ClaimUsage::Count(1)]
        );
    }

    #[tokio::test]
    async fn a_refused_claim_leaves_every_other_claim_of_the_call_uncounted() {
        let m = MemoryCounters::new();
        assert_eq!(m.consume(&[count("b", 0, 1)], t(0)).await.unwrap(), None);
        let both = [count("a", 0, 5), count("b", 0, 1)];
        assert_eq!(m.consume(&both, t(0)).await.unwrap(), Some(1));
        assert_eq!(
            m.peek(&both, t(0)).await.unwrap(),
            [ClaimUsage::Count(0), ClaimUsage::Count(1)]
        );
    }

    #[tokio::test]
    async fn distinct_sets_count_people_once_and_cooldowns_block_until_they_end() {
        let m = MemoryCounters::new();
        let people = |ms: &[&str]| Claim::Distinct {
            key: "br".into(),
            window_start: t(0),
            members: ms.iter().map(|s| s.to_string()).collect(),
            max: 2,
        };
        assert_eq!(m.consume(&[people(&["a", "a"])], t(0)).await.unwrap(), None);
        assert_eq!(m.consume(&[people(&["a", "b"])], t(0)).await.unwrap(), None);
        assert_eq!(
            m.consume(&[people(&["a"])], t(0)).await.unwrap(),
            None,
            "a again is free"
        );
        assert_eq!(m.consume(&[people(&["c"])], t(0)).await.unwrap(), Some(0));
        assert_eq!(
            m.record_distinct("br", t(0), "b", 2).await.unwrap(),
            (true, 2)
        );
        let cd = |until| Claim::Cooldown {
            key: "cd".into(),
            until: t(until),
        };
        assert_eq!(m.consume(&[cd(60)], t(0)).await.unwrap(), None);
        assert_eq!(m.consume(&[cd(120)], t(59)).await.unwrap(), Some(0));
        assert_eq!(m.consume(&[cd(120)], t(60)).await.unwrap(), None);
        // The set, its size counter and the cooldown.
        assert_eq!(m.purge_policy_state(t(3600)).await.unwrap(), 3);
    }
}
