//! Bulk revocations: many people at once under one incident id (issue 7).
//!
//! A bulk job is a row plus one item per input row. Input is streamed
//! ([`UserCsv`] over any `Read`) and written in batches, so a file of a
//! million rows never sits in memory. Each valid item becomes one ordinary
//! revocation request when the runner reaches it (the item records the
//! request id *before* the request is written, so a crash in between can
//! never create a second request for the same person), and the engine's
//! per-request machinery (leases, one outcome per connector) guarantees no
//! finished provider call is repeated. A restart resumes: input from the
//! first row not yet stored, requests from the first item not yet final.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::*;
use crate::engine::{Engine, EngineError, RevocationInput};
use crate::ports::StoreError;

/// Items written per store transaction while ingesting.
pub const INGEST_BATCH: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BulkJobId(pub Uuid);

impl BulkJobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| InvalidInput::new("bulk_job_id", "not a UUID"))
    }
}

impl Default for BulkJobId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for BulkJobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Lifecycle of a bulk job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkState {
    /// Input is still being read and stored.
    Ingesting,
    /// More people than the approval threshold: nothing runs until approved.
    PendingApproval,
    Running,
    /// Every item reached a final state.
    Completed,
    Cancelled,
}

impl BulkState {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkState::Ingesting => "ingesting",
            BulkState::PendingApproval => "pending_approval",
            BulkState::Running => "running",
            BulkState::Completed => "completed",
            BulkState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        [
            BulkState::Ingesting,
            BulkState::PendingApproval,
            BulkState::Running,
            BulkState::Completed,
            BulkState::Cancelled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| InvalidInput::new("bulk_state", format!("unknown state '{s}'")))
    }

    pub fn is_final(self) -> bool {
        matches!(self, BulkState::Completed | BulkState::Cancelled)
    }
}

/// One bulk job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkJob {
    pub id: BulkJobId,
    pub tenant_id: TenantId,
    pub incident_id: String,
    pub reason: Reason,
    pub channel: Channel,
    pub requested_by: String,
    /// Connector instances named by the caller; `None`: every enabled one.
    pub targets: Option<Vec<String>>,
    /// Where the people came from: `csv:PATH`, `api`, ... A `csv:` source is
    /// re-read from the first row not stored when ingestion is resumed.
    pub source: String,
    pub state: BulkState,
    /// Data rows read and stored so far (valid or not).
    pub rows: u64,
    /// Rows that named nobody valid.
    pub invalid: u64,
    /// True once the whole input is stored.
    pub input_done: bool,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Where one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Valid, no request yet.
    Pending,
    /// A request id is assigned (the request may not be written yet after a crash).
    Submitted,
    /// A protected account: no request, outcome `skipped`.
    Skipped,
    /// The row named nobody valid.
    Invalid,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Submitted => "submitted",
            ItemState::Skipped => "skipped",
            ItemState::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        [
            ItemState::Pending,
            ItemState::Submitted,
            ItemState::Skipped,
            ItemState::Invalid,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| InvalidInput::new("item_state", format!("unknown state '{s}'")))
    }
}

/// One person (or bad row) of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkItem {
    /// 0-based index of the data row in the input.
    pub seq: u64,
    /// Line number in the input file (1-based, header included); 0 when not from a file.
    pub line: u64,
    pub username: String,
    pub state: ItemState,
    pub request_id: Option<RequestId>,
    /// Why it is invalid or skipped.
    pub note: Option<String>,
    /// The status of its request, when one was written (read joined).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_status: Option<RequestStatus>,
}

/// Durable bulk jobs. Implementations: the SQL stores.
#[async_trait]
pub trait BulkStore: Send + Sync {
    async fn create_bulk_job(&self, job: &BulkJob) -> Result<(), StoreError>;

    async fn get_bulk_job(&self, id: BulkJobId) -> Result<Option<BulkJob>, StoreError>;

    /// Newest first; only jobs not final when `unfinished_only`.
    async fn list_bulk_jobs(&self, unfinished_only: bool) -> Result<Vec<BulkJob>, StoreError>;

    /// Store items (an item whose `seq` is already stored is left as it
    /// was), move the job's `rows`/`invalid` counters to cover them, and
    /// mark the input complete when `input_done`: one transaction.
    async fn append_bulk_items(
        &self,
        id: BulkJobId,
        items: &[BulkItem],
        input_done: bool,
    ) -> Result<(), StoreError>;

    async fn set_bulk_state(
        &self,
        id: BulkJobId,
        state: BulkState,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Move the job to `to` only if it is in `from` (one conditional
    /// write): true when it moved. An approval and a denial of a held job
    /// racing each other cannot both win. The default reads then writes;
    /// the SQL stores override it with one conditional update.
    async fn transition_bulk_state(
        &self,
        id: BulkJobId,
        from: BulkState,
        to: BulkState,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self.get_bulk_job(id).await? {
            Some(j) if j.state == from => {
                self.set_bulk_state(id, to, at).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Items with `seq` greater than `after` (all when `None`), in `seq`
    /// order, at most `limit`, each with its request's status.
    async fn bulk_items(
        &self,
        id: BulkJobId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<BulkItem>, StoreError>;

    /// Give a `pending` item its request id (it becomes `submitted`);
    /// false when it already had one.
    async fn assign_bulk_request(
        &self,
        id: BulkJobId,
        seq: u64,
        request: RequestId,
    ) -> Result<bool, StoreError>;

    /// Mark a `pending` item `skipped`.
    async fn skip_bulk_item(&self, id: BulkJobId, seq: u64, note: &str) -> Result<(), StoreError>;

    /// How many of the job's items are in each (item state, request
    /// status) pair. The default pages through the items; the SQL stores
    /// answer with one aggregate query (progress is read every second
    /// while a job runs).
    async fn count_bulk_items(
        &self,
        id: BulkJobId,
    ) -> Result<Vec<(ItemState, Option<RequestStatus>, u64)>, StoreError> {
        let mut counts: Vec<(ItemState, Option<RequestStatus>, u64)> = Vec::new();
        let mut after = None;
        loop {
            let page = self.bulk_items(id, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            for item in &page {
                match counts
                    .iter_mut()
                    .find(|(s, r, _)| *s == item.state && *r == item.request_status)
                {
                    Some(c) => c.2 += 1,
                    None => counts.push((item.state, item.request_status, 1)),
                }
            }
        }
        Ok(counts)
    }
}

// ---------------------------------------------------------------- CSV input

/// The column names that hold the person, in order of preference
/// (compared case-insensitively).
pub const USER_COLUMNS: [&str; 3] = ["userprincipalname", "email", "username"];

#[derive(Debug, thiserror::Error)]
pub enum CsvInputError {
    #[error("the CSV has no header row")]
    NoHeader,
    #[error("the CSV has no column named UserPrincipalName, email or username (found: {0})")]
    NoUserColumn(String),
    #[error("reading the CSV: {0}")]
    Read(String),
}

/// One data row of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsvRow {
    Valid {
        seq: u64,
        line: u64,
        username: Username,
    },
    Bad {
        seq: u64,
        line: u64,
        raw: String,
        problem: String,
    },
}

impl CsvRow {
    pub fn into_item(self) -> BulkItem {
        match self {
            CsvRow::Valid {
                seq,
                line,
                username,
            } => BulkItem {
                seq,
                line,
                username: username.as_str().to_string(),
                state: ItemState::Pending,
                request_id: None,
                note: None,
                request_status: None,
            },
            CsvRow::Bad {
                seq,
                line,
                raw,
                problem,
            } => BulkItem {
                seq,
                line,
                username: raw,
                state: ItemState::Invalid,
                request_id: None,
                note: Some(problem),
                request_status: None,
            },
        }
    }
}

/// The people of a CSV file, one row at a time: a column `UserPrincipalName`,
/// `email` or `username` (any case; a UTF-8 byte order mark is ignored).
/// Rows that name nobody valid come back as [`CsvRow::Bad`] with their line
/// number; reading goes on.
pub struct UserCsv<R: Read> {
    reader: csv::Reader<R>,
    column: usize,
    record: csv::StringRecord,
    seq: u64,
}

impl<R: Read> UserCsv<R> {
    pub fn new(input: R) -> Result<Self, CsvInputError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            // `\n` alone ends a row (a `\r` before it is trimmed off the
            // last field): with the default, CRLF files report each row's
            // line number one too low.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(input);
        let headers = reader
            .headers()
            .map_err(|e| CsvInputError::Read(e.to_string()))?
            .clone();
        if headers.is_empty() {
            return Err(CsvInputError::NoHeader);
        }
        let names: Vec<String> = headers
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
            .collect();
        let column = USER_COLUMNS
            .iter()
            .find_map(|want| names.iter().position(|n| n == want))
            .ok_or_else(|| {
                CsvInputError::NoUserColumn(headers.iter().collect::<Vec<_>>().join(", "))
            })?;
        Ok(Self {
            reader,
            column,
            record: csv::StringRecord::new(),
            seq: 0,
        })
    }

    /// Skip the first `n` data rows (already stored by an earlier run).
    pub fn skip_rows(&mut self, n: u64) -> Result<(), CsvInputError> {
        let mut bytes = csv::ByteRecord::new();
        while self.seq < n {
            match self.reader.read_byte_record(&mut bytes) {
                Ok(true) => self.seq += 1,
                Ok(false) => break,
                Err(e) if e.is_io_error() => return Err(CsvInputError::Read(e.to_string())),
                Err(_) => self.seq += 1,
            }
        }
        Ok(())
    }
}

impl<R: Read> Iterator for UserCsv<R> {
    type Item = Result<CsvRow, CsvInputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut seq = self.seq;
        let mut read = self.reader.read_record(&mut self.record);
        // A blank line is not a person, nor an error (it keeps its seq, so
        // re-reading after a crash numbers rows the same).
        while matches!(read, Ok(true)) && self.record.iter().all(str::is_empty) {
            self.seq += 1;
            seq = self.seq;
            read = self.reader.read_record(&mut self.record);
        }
        match read {
            Ok(false) => None,
            Ok(true) => {
                self.seq += 1;
                let line = self.record.position().map_or(0, |p| p.line());
                let raw = self.record.get(self.column).unwrap_or("").to_string();
                Some(Ok(if raw.is_empty() {
                    CsvRow::Bad {
                        seq,
                        line,
                        raw,
                        problem: "the user column is empty".into(),
                    }
                } else {
                    match Username::parse(&raw) {
                        Ok(username) => CsvRow::Valid {
                            seq,
                            line,
                            username,
                        },
                        Err(e) => CsvRow::Bad {
                            seq,
                            line,
                            raw: raw.chars().take(200).collect(),
                            problem: e.to_string(),
                        },
                    }
                }))
            }
            Err(e) if e.is_io_error() => Some(Err(CsvInputError::Read(e.to_string()))),
            Err(e) => {
                // Malformed row (invalid UTF-8, say): report it, go on.
                self.seq += 1;
                let line = e.position().map_or(0, |p| p.line());
                Some(Ok(CsvRow::Bad {
                    seq,
                    line,
                    raw: String::new(),
                    problem: e.to_string(),
                }))
            }
        }
    }
}

/// What ingesting stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
}

/// What [`ingest_directory`] reads: a provider's directory, which of its
/// people, and the call context (deadline, retry policy) of each page.
pub struct Listing<'a> {
    pub directory: &'a dyn crate::ports::Directory,
    pub selection: &'a crate::ports::Selection,
    pub new_cx: &'a dyn Fn() -> crate::ports::CallContext,
}

/// Store the people `directory` lists for `selection` as items of `job`,
/// page by page as the provider answers (numbered on from the job's stored
/// rows, [`INGEST_BATCH`] per transaction), and mark the input done.
///
/// `seen` holds the usernames (lowercased) already stored when a listing
/// that stopped half-way is read again from its start; they are skipped.
/// A fresh listing passes `None` and keeps no per-person state, so a
/// directory of any size streams through in flat memory. `new_cx` makes the
/// call context (deadline, retry policy) of each page; calls are paced as
/// bulk calls. A listing that fails leaves the job `ingesting` with what
/// was stored so far.
pub async fn ingest_directory(
    store: &dyn BulkStore,
    job: &BulkJob,
    listing: Listing<'_>,
    mut seen: Option<std::collections::HashSet<String>>,
    mut on_bad: impl FnMut(&BulkItem),
    mut on_batch: impl FnMut(&IngestReport),
) -> Result<IngestReport, BulkError> {
    let Listing {
        directory,
        selection,
        new_cx,
    } = listing;
    let mut report = IngestReport::default();
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    let mut cursor: Option<String> = None;
    let mut pages = 0u64;
    loop {
        let cx = new_cx();
        let page = BULK_CONTEXT
            .scope((), directory.page(&cx, selection, cursor.as_deref()))
            .await
            .map_err(|f| {
                BulkError::Directory(format!(
                    "listing the people of {} failed after {} stored ({}: {}); run `sever bulk resume {}` to read it again",
                    job.source, job.rows + report.rows, f.class, f.message, job.id
                ))
            })?;
        pages += 1;
        for raw in page.users {
            let raw = raw.trim().to_string();
            if let Some(seen) = seen.as_mut() {
                if !seen.insert(raw.to_lowercase()) {
                    continue;
                }
            }
            let seq = job.rows + report.rows;
            let item = match Username::parse(&raw) {
                Ok(u) => CsvRow::Valid {
                    seq,
                    line: 0,
                    username: u,
                },
                Err(e) => CsvRow::Bad {
                    seq,
                    line: 0,
                    raw: raw.chars().take(200).collect(),
                    problem: e.to_string(),
                },
            }
            .into_item();
            report.rows += 1;
            if item.state == ItemState::Invalid {
                report.invalid += 1;
                on_bad(&item);
            } else {
                report.valid += 1;
            }
            batch.push(item);
            if batch.len() == INGEST_BATCH {
                store.append_bulk_items(job.id, &batch, false).await?;
                batch.clear();
                on_batch(&report);
            }
        }
        match page.next {
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            Some(_) => {
                return Err(BulkError::Directory(format!(
                    "{} answered the same page cursor twice after {pages} pages; stopping rather than looping",
                    job.source
                )))
            }
            None => break,
        }
    }
    store.append_bulk_items(job.id, &batch, true).await?;
    on_batch(&report);
    Ok(report)
}

/// Store every row of `rows` as items of `job`, [`INGEST_BATCH`] per
/// transaction, calling `on_bad` for each bad row; marks the input done.
/// Memory stays flat whatever the input's size.
pub async fn ingest<I>(
    store: &dyn BulkStore,
    job: BulkJobId,
    rows: I,
    mut on_bad: impl FnMut(&BulkItem),
    mut on_batch: impl FnMut(&IngestReport),
) -> Result<IngestReport, BulkError>
where
    I: IntoIterator<Item = Result<CsvRow, CsvInputError>>,
{
    let mut report = IngestReport::default();
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    for row in rows {
        let item = row?.into_item();
        report.rows += 1;
        if item.state == ItemState::Invalid {
            report.invalid += 1;
            on_bad(&item);
        } else {
            report.valid += 1;
        }
        batch.push(item);
        if batch.len() == INGEST_BATCH {
            store.append_bulk_items(job, &batch, false).await?;
            batch.clear();
            on_batch(&report);
        }
    }
    store.append_bulk_items(job, &batch, true).await?;
    on_batch(&report);
    Ok(report)
}

// ---------------------------------------------------------------- list input

/// The items of a JSON list of people (the API's `usernames`): one per
/// entry, in order (`seq` is the index, `line` 0). An entry that names
/// nobody valid is an `invalid` item whose note names its index
/// (`usernames[3]: ...`); the rest goes on.
pub fn items_from_list(field: &str, entries: &[serde_json::Value]) -> Vec<BulkItem> {
    entries
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let seq = i as u64;
            let bad = |raw: String, problem: String| BulkItem {
                seq,
                line: 0,
                username: raw.chars().take(200).collect(),
                state: ItemState::Invalid,
                request_id: None,
                note: Some(format!("{field}[{i}]: {problem}")),
                request_status: None,
            };
            match v.as_str() {
                None => bad(String::new(), format!("expected a string, got {v}")),
                Some(raw) if raw.trim().is_empty() => bad(String::new(), "is empty".into()),
                Some(raw) => match Username::parse(raw) {
                    Ok(u) => BulkItem {
                        seq,
                        line: 0,
                        username: u.as_str().to_string(),
                        state: ItemState::Pending,
                        request_id: None,
                        note: None,
                        request_status: None,
                    },
                    Err(e) => bad(raw.to_string(), e.problem),
                },
            }
        })
        .collect()
}

// ---------------------------------------------------------------- policy

/// What the policy says about a bulk run.
#[derive(Debug, Clone)]
pub struct BulkAuthorization {
    /// The decision for the people the run would revoke (protected accounts
    /// left out), with the approval threshold applied.
    pub auth: crate::policy::Authorization,
    /// People the policy protects (lowercased): their items end `skipped`
    /// and no provider is ever called for them.
    pub protected: std::collections::HashSet<String>,
    /// Distinct people the run would revoke.
    pub people: u64,
}

/// The note of an item skipped because the policy protects the account.
pub const PROTECTED_NOTE: &str = "protected account (policy): not revoked in bulk";

/// The policy's decision on a bulk run (the action `bulk_revoke`) of
/// `people` by `caller`: accounts the tenant's policy protects are taken out
/// (they are skipped, never called, instead of refusing the whole run);
/// the rest is decided and counted like any call ([`crate::policy::authorize`]).
/// More than `approval_threshold` distinct people hold an allowed run for
/// approval (a step `bulk_approval_threshold` in the trace).
#[allow(clippy::too_many_arguments)]
pub async fn authorize_people(
    resolver: &crate::policy::PolicyResolver,
    store: &dyn crate::policy::PolicyStore,
    caller: &crate::policy::Caller,
    people: Vec<Username>,
    targets: Option<Vec<String>>,
    connectors: Vec<String>,
    reason: &Reason,
    approval_threshold: u64,
    now: DateTime<Utc>,
) -> Result<BulkAuthorization, StoreError> {
    use crate::policy::{Action, ActionArgs, Decision, RequestContext, TraceStep, Verdict};
    let (policy, _) = resolver.for_tenant(store, caller.tenant_id).await?;
    let own = caller.own_accounts();
    let mut protected = std::collections::HashSet::new();
    let mut revoked = Vec::with_capacity(people.len());
    // Distinct by a 64-bit digest of the lower-cased name, not the name: a
    // million-person job must not hold every name twice.
    let mut seen = std::collections::HashSet::new();
    for u in people {
        let lower = u.as_str().to_lowercase();
        if policy.protects(&own, &lower) {
            protected.insert(lower);
        } else if seen.insert(name_digest(&lower)) {
            revoked.push(u);
        }
    }
    drop(seen);
    let count = revoked.len() as u64;
    let ctx = RequestContext {
        caller: caller.clone(),
        action: Action::BulkRevoke,
        args: ActionArgs {
            usernames: revoked,
            integration_targets: targets,
            connectors,
            reason: Some(reason.as_str().to_string()),
        },
    };
    let mut auth = crate::policy::authorize(resolver, store, &ctx, now).await?;
    if count > approval_threshold {
        let why = format!(
            "{count} people in one bulk run is more than the approval threshold of {approval_threshold}"
        );
        let ev = &mut auth.evaluation;
        match &mut ev.decision {
            Decision::Deny { .. } => {}
            Decision::Allow => {
                ev.decision = Decision::RequireApproval {
                    reasons: vec![why.clone()],
                }
            }
            Decision::RequireApproval { reasons } => reasons.push(why.clone()),
        }
        ev.trace.push(TraceStep {
            rule: "bulk_approval_threshold".into(),
            verdict: Verdict::RequireApproval,
            detail: why,
        });
    }
    Ok(BulkAuthorization {
        auth,
        protected,
        people: count,
    })
}

/// A 64-bit digest of a lower-cased name, to tell people apart without
/// keeping their names.
fn name_digest(lower: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(lower)
}

/// [`authorize_people`] for a stored job (its `pending` items), then, unless
/// refused, mark the protected people's items `skipped`. The job's state is
/// the caller's to set from the decision.
#[allow(clippy::too_many_arguments)]
pub async fn authorize_job(
    resolver: &crate::policy::PolicyResolver,
    policy_store: &dyn crate::policy::PolicyStore,
    store: &dyn BulkStore,
    job: &BulkJob,
    caller: &crate::policy::Caller,
    connectors: Vec<String>,
    approval_threshold: u64,
    now: DateTime<Utc>,
) -> Result<BulkAuthorization, BulkError> {
    // Each pending person once (the names only, not their items): the
    // items of a million-person job are read page by page, and only the
    // line numbers of the protected ones are kept to skip them later.
    let (policy, _) = resolver.for_tenant(policy_store, caller.tenant_id).await?;
    let own = caller.own_accounts();
    let mut people = Vec::new();
    let mut pending_protected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = store.bulk_items(job.id, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for item in page {
            if item.state != ItemState::Pending {
                continue;
            }
            let lower = item.username.to_lowercase();
            if policy.protects(&own, &lower) {
                pending_protected.push((item.seq, lower.clone()));
            }
            if seen.insert(name_digest(&lower)) {
                if let Ok(u) = Username::parse(&item.username) {
                    people.push(u);
                }
            }
        }
    }
    drop(seen);
    drop(policy);
    let decided = authorize_people(
        resolver,
        policy_store,
        caller,
        people,
        job.targets.clone(),
        connectors,
        &job.reason,
        approval_threshold,
        now,
    )
    .await?;
    if !matches!(
        decided.auth.decision(),
        crate::policy::Decision::Deny { .. }
    ) {
        for (seq, name) in pending_protected {
            if decided.protected.contains(&name) {
                store.skip_bulk_item(job.id, seq, PROTECTED_NOTE).await?;
            }
        }
    }
    Ok(decided)
}

// ---------------------------------------------------------------- running

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Csv(#[from] CsvInputError),
    #[error("bulk job {0} was not found")]
    NotFound(BulkJobId),
    #[error("bulk job {0} needs approval before it runs")]
    NeedsApproval(BulkJobId),
    #[error("{0}")]
    Invalid(String),
    /// Listing a provider's directory failed (after the connector's retries).
    #[error("{0}")]
    Directory(String),
}

/// How a job runs.
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// People in flight at once (each fans out to its connectors; the
    /// connectors' pacers keep every provider under its limit).
    pub concurrency: usize,
    /// Accounts never revoked in bulk (`*` matches any run of characters,
    /// case-insensitive): their items end `skipped`.
    pub protected: Vec<String>,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            protected: Vec::new(),
        }
    }
}

/// Counts of a job's items, as the runner sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkProgress {
    /// Items to account for (valid + invalid rows stored).
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub invalid: u64,
}

impl BulkProgress {
    pub fn done(&self) -> u64 {
        self.completed + self.failed + self.skipped + self.invalid
    }

    fn count(&mut self, item: &ItemOutcome) {
        match item {
            ItemOutcome::Completed => self.completed += 1,
            ItemOutcome::Failed => self.failed += 1,
            ItemOutcome::Skipped => self.skipped += 1,
            ItemOutcome::Invalid => self.invalid += 1,
        }
    }
}

enum ItemOutcome {
    Completed,
    Failed,
    Skipped,
    Invalid,
}

fn outcome_of(status: RequestStatus) -> ItemOutcome {
    if status == RequestStatus::Completed {
        ItemOutcome::Completed
    } else {
        ItemOutcome::Failed
    }
}

/// True when `username` matches one of the `patterns` (`*` wildcards, any case).
pub fn is_protected(patterns: &[String], username: &str) -> bool {
    let name = username.to_ascii_lowercase();
    patterns
        .iter()
        .any(|p| glob_match(&p.trim().to_ascii_lowercase(), &name))
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

tokio::task_local! {
    /// Set while a bulk job's request runs, so the connectors' pacers put
    /// its provider calls behind urgent (single) revocations.
    pub static BULK_CONTEXT: ();
}

/// True when called from inside a bulk job's request.
pub fn in_bulk() -> bool {
    BULK_CONTEXT.try_with(|_| ()).is_ok()
}

/// What a caller asks for when starting a bulk job.
#[derive(Debug, Clone)]
pub struct NewBulkJob {
    pub tenant_id: TenantId,
    /// Empty: one is made up from the job id.
    pub incident_id: String,
    pub reason: Reason,
    pub channel: Channel,
    pub requested_by: String,
    pub targets: Option<Vec<String>>,
    pub source: String,
}

/// Runs bulk jobs on an engine.
pub struct BulkRunner {
    engine: Arc<Engine>,
    store: Arc<dyn BulkStore>,
    settings: BulkSettings,
    /// Finish every unfinished request of the store before running
    /// (the CLI's engine serves one tenant; a server's worker resumes
    /// requests itself, each with its own tenant's engine).
    resume_requests: bool,
}

/// Items read per page while running or exporting.
const PAGE: u32 = 500;

impl BulkRunner {
    pub fn new(engine: Arc<Engine>, store: Arc<dyn BulkStore>, settings: BulkSettings) -> Self {
        Self {
            engine,
            store,
            settings,
            resume_requests: true,
        }
    }

    /// Do not resume the store's other unfinished requests before running
    /// (a multi-tenant server's worker does that, with the right engine).
    pub fn without_request_resume(mut self) -> Self {
        self.resume_requests = false;
        self
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn store(&self) -> &Arc<dyn BulkStore> {
        &self.store
    }

    /// Validate the job's parameters against the engine and write it, `ingesting`.
    pub async fn create(&self, new: NewBulkJob) -> Result<BulkJob, BulkError> {
        let NewBulkJob {
            tenant_id,
            incident_id,
            reason,
            channel,
            requested_by,
            targets,
            source,
        } = new;
        self.engine.plan(targets.as_deref())?;
        let incident_id = incident_id.trim();
        if incident_id.len() > 200 || incident_id.chars().any(char::is_control) {
            return Err(BulkError::Invalid(
                "the incident id must be at most 200 printable characters".into(),
            ));
        }
        let id = BulkJobId::new();
        let job = BulkJob {
            id,
            tenant_id,
            incident_id: if incident_id.is_empty() {
                format!("bulk-{id}")
            } else {
                incident_id.to_string()
            },
            reason,
            channel,
            requested_by,
            targets,
            source,
            state: BulkState::Ingesting,
            rows: 0,
            invalid: 0,
            input_done: false,
            created_at: Utc::now(),
            finished_at: None,
        };
        self.store.create_bulk_job(&job).await?;
        Ok(job)
    }

    pub async fn job(&self, id: BulkJobId) -> Result<BulkJob, BulkError> {
        self.store
            .get_bulk_job(id)
            .await?
            .ok_or(BulkError::NotFound(id))
    }

    /// Where the job stands, counted from its items.
    pub async fn count(&self, id: BulkJobId) -> Result<BulkProgress, BulkError> {
        let job = self.job(id).await?;
        let mut p = BulkProgress {
            total: job.rows,
            ..Default::default()
        };
        for (state, status, n) in self.store.count_bulk_items(id).await? {
            match (state, status) {
                (ItemState::Invalid, _) => p.invalid += n,
                (ItemState::Skipped, _) => p.skipped += n,
                (_, Some(RequestStatus::Completed)) => p.completed += n,
                (_, Some(s)) if s.is_final() => p.failed += n,
                _ => {}
            }
        }
        Ok(p)
    }

    /// Run every item of the job not yet final, `concurrency` people at a
    /// time, calling `on_progress` as each one finishes; then mark the job
    /// `completed`. Items already final (an earlier run's) are counted, not
    /// run again.
    pub async fn run(
        &self,
        id: BulkJobId,
        mut on_progress: impl FnMut(&BulkProgress),
    ) -> Result<BulkProgress, BulkError> {
        let job = self.job(id).await?;
        match job.state {
            BulkState::PendingApproval => return Err(BulkError::NeedsApproval(id)),
            BulkState::Ingesting if !job.input_done => {
                return Err(BulkError::Invalid(format!(
                    "bulk job {id} is still reading its input"
                )))
            }
            s if s.is_final() => {}
            _ => {
                self.store
                    .set_bulk_state(id, BulkState::Running, Utc::now())
                    .await?
            }
        }
        let job = Arc::new(job);
        let mut progress = BulkProgress {
            total: job.rows,
            ..Default::default()
        };
        // Requests of this job a crashed process left running are
        // finished first (their leases are taken from the dead owner).
        if self.resume_requests {
            self.engine.resume_unfinished().await?;
        }
        on_progress(&progress);

        let pages = stream::unfold(Some(None::<u64>), |cursor| {
            let store = self.store.clone();
            async move {
                let after = cursor?;
                match store.bulk_items(id, after, PAGE).await {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let next = page.last().map(|i| i.seq);
                        Some((Ok(page), Some(next)))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        });
        let items = pages.flat_map(|page| match page {
            Ok(items) => stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => stream::iter(vec![Err(e)]),
        });
        let results = items
            .map(|item| {
                let job = job.clone();
                async move { self.run_item(&job, item?).await }
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        let mut results = std::pin::pin!(results);
        let mut first_error = None;
        while let Some(r) = results.next().await {
            match r {
                Ok(outcome) => {
                    progress.count(&outcome);
                    on_progress(&progress);
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "bulk item failed to run");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if !job.state.is_final() {
            self.store
                .set_bulk_state(id, BulkState::Completed, Utc::now())
                .await?;
        }
        Ok(progress)
    }

    async fn run_item(&self, job: &BulkJob, item: BulkItem) -> Result<ItemOutcome, BulkError> {
        match item.state {
            ItemState::Invalid => return Ok(ItemOutcome::Invalid),
            ItemState::Skipped => return Ok(ItemOutcome::Skipped),
            ItemState::Submitted | ItemState::Pending => {}
        }
        if let Some(status) = item.request_status.filter(|s| s.is_final()) {
            return Ok(outcome_of(status));
        }
        if item.state == ItemState::Pending
            && is_protected(&self.settings.protected, &item.username)
        {
            self.store
                .skip_bulk_item(job.id, item.seq, "protected account: not revoked in bulk")
                .await?;
            return Ok(ItemOutcome::Skipped);
        }
        let request_id = match (item.request_id, item.request_status) {
            (Some(rid), Some(_)) => rid,
            (existing, None) => {
                let username = Username::parse(&item.username).map_err(EngineError::from)?;
                let input = RevocationInput {
                    tenant_id: job.tenant_id,
                    username,
                    reason: job.reason.clone(),
                    channel: job.channel,
                    requested_by: job.requested_by.clone(),
                    targets: job.targets.clone(),
                    source: Some(format!("bulk:{}", job.id)),
                    client_ip: None,
                };
                let (mut req, mut audit) = self.engine.prepare(input, RequestStatus::Queued)?;
                if let Some(rid) = existing {
                    // A crash came between assigning the id and writing the request.
                    req.id = rid;
                    audit.request_id = Some(rid);
                } else if !self
                    .store
                    .assign_bulk_request(job.id, item.seq, req.id)
                    .await?
                {
                    // Another runner got there first; it runs that request.
                    return self.wait_item(job.id, item.seq).await;
                }
                if let serde_json::Value::Object(m) = &mut audit.detail {
                    m.insert("bulk_job".into(), job.id.to_string().into());
                    m.insert("incident_id".into(), job.incident_id.clone().into());
                }
                match self.engine.store().insert_request(&req, &audit).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                req.id
            }
            (None, Some(_)) => {
                return Err(BulkError::Invalid(
                    "an item has a status but no request".into(),
                ))
            }
        };
        let req = BULK_CONTEXT
            .scope((), self.engine.execute(request_id, None))
            .await?;
        if req.status.is_final() {
            return Ok(outcome_of(req.status));
        }
        self.wait_request(request_id).await
    }

    /// Another process holds the request: wait until it is final.
    async fn wait_request(&self, id: RequestId) -> Result<ItemOutcome, BulkError> {
        loop {
            let r = self
                .engine
                .store()
                .get_request(id)
                .await?
                .ok_or(EngineError::NotFound(id))?;
            if r.status.is_final() {
                return Ok(outcome_of(r.status));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_item(&self, job: BulkJobId, seq: u64) -> Result<ItemOutcome, BulkError> {
        loop {
            let item = self
                .store
                .bulk_items(job, seq.checked_sub(1), 1)
                .await?
                .into_iter()
                .next();
            match item {
                Some(BulkItem {
                    state: ItemState::Skipped,
                    ..
                }) => return Ok(ItemOutcome::Skipped),
                Some(BulkItem {
                    request_id: Some(rid),
                    request_status: Some(_),
                    ..
                }) => return self.wait_request(rid).await,
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Write one row per person: line, user, overall status, error, and one
    /// column per connector of the job's plan. Cells that a spreadsheet
    /// would read as a formula are neutralised.
    pub async fn export_csv<W: Write>(&self, id: BulkJobId, out: W) -> Result<u64, BulkError> {
        let job = self.job(id).await?;
        let plan = self.engine.plan(job.targets.as_deref())?;
        let columns: Vec<String> = plan.iter().map(|(n, _)| n.as_str().to_string()).collect();
        let mut w = csv::Writer::from_writer(out);
        let io = |e: csv::Error| BulkError::Invalid(format!("writing the export: {e}"));
        let mut header = vec![
            "line".to_string(),
            "username".into(),
            "status".into(),
            "error".into(),
            "request_id".into(),
        ];
        header.extend(columns.iter().cloned());
        w.write_record(&header).map_err(io)?;
        let mut after = None;
        let mut written = 0;
        loop {
            let page = self.store.bulk_items(id, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            for item in page {
                let mut cells: BTreeMap<String, String> = BTreeMap::new();
                let (status, error, rid) = match item.state {
                    ItemState::Invalid => ("invalid".to_string(), item.note.clone(), None),
                    ItemState::Skipped => ("skipped".to_string(), item.note.clone(), None),
                    _ => match item.request_id {
                        None => ("pending".to_string(), None, None),
                        Some(rid) => match self.engine.store().get_request(rid).await? {
                            None => ("pending".to_string(), None, Some(rid)),
                            Some(req) => {
                                let errors: Vec<String> = req
                                    .results
                                    .iter()
                                    .filter(|r| r.outcome.as_ref().is_some_and(Outcome::is_failure))
                                    .map(|r| {
                                        format!(
                                            "{}: {}",
                                            r.instance,
                                            r.outcome
                                                .as_ref()
                                                .map(Outcome::detail)
                                                .unwrap_or_default()
                                        )
                                    })
                                    .collect();
                                for r in &req.results {
                                    cells.insert(
                                        r.instance.as_str().to_string(),
                                        r.outcome
                                            .as_ref()
                                            .map_or("pending", Outcome::label)
                                            .to_string(),
                                    );
                                }
                                (
                                    req.status.as_str().to_string(),
                                    (!errors.is_empty()).then(|| errors.join("; ")),
                                    Some(rid),
                                )
                            }
                        },
                    },
                };
                let skipped_cell = matches!(item.state, ItemState::Skipped).then_some("skipped");
                let mut row = vec![
                    item.line.to_string(),
                    neutralise(&item.username),
                    status,
                    neutralise(error.as_deref().unwrap_or("")),
                    rid.map(|r| r.to_string()).unwrap_or_default(),
                ];
                for c in &columns {
                    row.push(neutralise(
                        cells
                            .get(c)
                            .map(String::as_str)
                            .or(skipped_cell)
                            .unwrap_or(""),
                    ));
                }
                w.write_record(&row).map_err(io)?;
                written += 1;
            }
        }
        w.flush()
            .map_err(|e| BulkError::Invalid(format!("writing the export: {e}")))?;
        Ok(written)
    }
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, or a tab or
/// carriage return first) gets a leading `'`, so it reads as text.
pub fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(input: &str) -> Vec<CsvRow> {
        UserCsv::new(input.as_bytes())
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn the_seeds_csv_reads_as_is_and_bad_rows_carry_line_numbers() {
        let got = rows("\u{feff}UserPrincipalName\r\nalice@example.com\r\n\"bob@example.com\"\r\n,IT\r\n\r\nnot an email@@\r\ncarol@example.com\r\n");
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(
            matches!(&got[0], CsvRow::Valid { seq: 0, line: 2, username } if username.as_str() == "alice@example.com")
        );
        assert!(matches!(
            &got[1],
            CsvRow::Valid {
                seq: 1,
                line: 3,
                ..
            }
        ));
        assert!(matches!(
            &got[2],
            CsvRow::Bad {
                seq: 2,
                line: 4,
                ..
            }
        ));
        // Line 5 is blank: neither a person nor an error.
        assert!(
            matches!(
                &got[3],
                CsvRow::Bad {
                    seq: 4,
                    line: 6,
                    ..
                }
            ),
            "{:?}",
            got[3]
        );
        assert!(matches!(
            &got[4],
            CsvRow::Valid {
                seq: 5,
                line: 7,
                ..
            }
        ));
    }

    #[test]
    fn the_header_is_found_in_any_case_and_any_position() {
        let got = rows("Name,EMAIL,Dept\nAlice,alice@example.com,IT\n");
        assert!(
            matches!(&got[0], CsvRow::Valid { username, .. } if username.as_str() == "alice@example.com")
        );
        let got = rows("id,Username\n1,alice\n");
        assert!(matches!(&got[0], CsvRow::Valid { username, .. } if username.as_str() == "alice"));
        // UserPrincipalName wins over email when both are present.
        let got = rows("email,userPrincipalName\na@example.com,b@example.com\n");
        assert!(
            matches!(&got[0], CsvRow::Valid { username, .. } if username.as_str() == "b@example.com")
        );
        let err = UserCsv::new("name,dept\nx,y\n".as_bytes()).err().unwrap();
        assert!(err.to_string().contains("name, dept"), "{err}");
    }

    #[test]
    fn short_rows_and_invalid_utf8_are_bad_rows_not_the_end() {
        let mut input = b"dept,email\nIT\nIT,\xff\xfe@x.com\nIT,ok@example.com\n".to_vec();
        input.extend_from_slice(b"");
        let got: Vec<_> = UserCsv::new(input.as_slice())
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], CsvRow::Bad { line: 2, .. }));
        assert!(
            matches!(&got[1], CsvRow::Bad { line: 3, .. }),
            "{:?}",
            got[1]
        );
        assert!(matches!(
            &got[2],
            CsvRow::Valid {
                line: 4,
                seq: 2,
                ..
            }
        ));
    }

    #[test]
    fn skipping_resumes_at_the_right_row() {
        let mut csv = UserCsv::new("email\na@x.com\nb@x.com\nc@x.com\n".as_bytes()).unwrap();
        csv.skip_rows(2).unwrap();
        let rest: Vec<_> = csv.map(|r| r.unwrap()).collect();
        assert_eq!(rest.len(), 1);
        assert!(matches!(
            &rest[0],
            CsvRow::Valid {
                seq: 2,
                line: 4,
                ..
            }
        ));
    }

    #[test]
    fn a_json_list_keeps_its_order_and_names_bad_entries_by_index() {
        let entries: Vec<serde_json::Value> = serde_json::from_str(
            r#"["alice@example.com", 5, "  ", "a b@x.com", "bob@example.com"]"#,
        )
        .unwrap();
        let items = items_from_list("usernames", &entries);
        assert_eq!(items.len(), 5);
        assert_eq!(
            items.iter().map(|i| i.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let states: Vec<ItemState> = items.iter().map(|i| i.state).collect();
        use ItemState::*;
        assert_eq!(states, [Pending, Invalid, Invalid, Invalid, Pending]);
        assert!(items[1]
            .note
            .as_deref()
            .unwrap()
            .starts_with("usernames[1]: "));
        assert!(items[3]
            .note
            .as_deref()
            .unwrap()
            .starts_with("usernames[3]: "));
        assert_eq!(items[4].username, "bob@example.com");
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=cmd()", "+1", "-2", "@SUM(A1)", "\tx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad}");
        }
        assert_eq!(neutralise("alice@example.com"), "alice@example.com");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn protected_patterns_match_with_wildcards_in_any_case() {
        let p = vec!["*-admin@example.com".to_string(), "CEO@example.com".into()];
        assert!(is_protected(&p, "it-admin@example.com"));
        assert!(is_protected(&p, "ceo@Example.com"));
        assert!(!is_protected(&p, "alice@example.com"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    /// Items kept in memory, to test ingestion alone.
    #[derive(Default)]
    struct Items {
        batches: std::sync::Mutex<Vec<(Vec<BulkItem>, bool)>>,
    }

    #[async_trait]
    impl BulkStore for Items {
        async fn create_bulk_job(&self, _: &BulkJob) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get_bulk_job(&self, _: BulkJobId) -> Result<Option<BulkJob>, StoreError> {
            Ok(None)
        }
        async fn list_bulk_jobs(&self, _: bool) -> Result<Vec<BulkJob>, StoreError> {
            Ok(vec![])
        }
        async fn append_bulk_items(
            &self,
            _: BulkJobId,
            items: &[BulkItem],
            input_done: bool,
        ) -> Result<(), StoreError> {
            self.batches
                .lock()
                .unwrap()
                .push((items.to_vec(), input_done));
            Ok(())
        }
        async fn set_bulk_state(
            &self,
            _: BulkJobId,
            _: BulkState,
            _: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn bulk_items(
            &self,
            _: BulkJobId,
            _: Option<u64>,
            _: u32,
        ) -> Result<Vec<BulkItem>, StoreError> {
            Ok(vec![])
        }
        async fn assign_bulk_request(
            &self,
            _: BulkJobId,
            _: u64,
            _: RequestId,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn skip_bulk_item(&self, _: BulkJobId, _: u64, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// `pages` pages of `per_page` people `uN@x.com`; page cursors are
    /// page numbers, or always "1" when `stuck`.
    struct Pages {
        pages: usize,
        per_page: usize,
        stuck: bool,
    }

    #[async_trait]
    impl crate::ports::Directory for Pages {
        fn supports(&self, _: &crate::ports::Selection) -> Result<(), String> {
            Ok(())
        }
        async fn page(
            &self,
            _: &crate::ports::CallContext,
            _: &crate::ports::Selection,
            cursor: Option<&str>,
        ) -> Result<crate::ports::DirectoryPage, crate::domain::Failure> {
            let n: usize = cursor.map_or(0, |c| c.parse().unwrap());
            Ok(crate::ports::DirectoryPage {
                users: (0..self.per_page)
                    .map(|i| {
                        if n == 1 && i == 0 {
                            "not an address".to_string()
                        } else {
                            format!("u{}@x.com", n * self.per_page + i)
                        }
                    })
                    .collect(),
                next: (self.stuck || n + 1 < self.pages).then(|| {
                    if self.stuck {
                        "1".into()
                    } else {
                        (n + 1).to_string()
                    }
                }),
            })
        }
    }

    fn job(rows: u64) -> BulkJob {
        BulkJob {
            id: BulkJobId::new(),
            tenant_id: TenantId::DEFAULT,
            incident_id: "INC".into(),
            reason: Reason::parse("test").unwrap(),
            channel: Channel::Cli,
            requested_by: "test".into(),
            targets: None,
            source: "okta:all".into(),
            state: BulkState::Ingesting,
            rows,
            invalid: 0,
            input_done: false,
            created_at: Utc::now(),
            finished_at: None,
        }
    }

    async fn list_into(
        store: &Items,
        job: &BulkJob,
        dir: &Pages,
        seen: Option<std::collections::HashSet<String>>,
    ) -> Result<IngestReport, BulkError> {
        let new_cx = || {
            crate::ports::CallContext::new(
                std::time::Instant::now() + Duration::from_secs(5),
                crate::ports::RetryPolicy::default(),
            )
        };
        ingest_directory(
            store,
            job,
            Listing {
                directory: dir,
                selection: &crate::ports::Selection::All,
                new_cx: &new_cx,
            },
            seen,
            |_| {},
            |_| {},
        )
        .await
    }

    #[tokio::test]
    async fn a_directory_is_stored_a_thousand_at_a_time_across_its_pages() {
        let store = Items::default();
        let dir = Pages {
            pages: 7,
            per_page: 300,
            stuck: false,
        };
        let report = list_into(&store, &job(0), &dir, None).await.unwrap();
        assert_eq!((report.rows, report.valid, report.invalid), (2100, 2099, 1));
        let batches = store.batches.lock().unwrap();
        let sizes: Vec<(usize, bool)> = batches.iter().map(|(b, d)| (b.len(), *d)).collect();
        assert_eq!(sizes, [(1000, false), (1000, false), (100, true)]);
        let items: Vec<&BulkItem> = batches.iter().flat_map(|(b, _)| b).collect();
        assert!(items.iter().enumerate().all(|(i, it)| it.seq == i as u64));
        assert_eq!(items[300].state, ItemState::Invalid);
        assert_eq!(items[2099].username, "u2099@x.com");
    }

    #[tokio::test]
    async fn a_listing_read_again_stores_only_the_people_not_stored_numbered_on() {
        let store = Items::default();
        let dir = Pages {
            pages: 3,
            per_page: 10,
            stuck: false,
        };
        let seen: std::collections::HashSet<String> = (0..10)
            .map(|i| format!("U{i}@X.COM").to_lowercase())
            .collect();
        let report = list_into(&store, &job(10), &dir, Some(seen)).await.unwrap();
        assert_eq!(report.rows, 20);
        let batches = store.batches.lock().unwrap();
        let items = &batches[0].0;
        assert_eq!(items[0].seq, 10);
        assert_eq!(items[0].username, "not an address");
        assert_eq!(items[19].username, "u29@x.com");
    }

    #[tokio::test]
    async fn a_provider_that_repeats_its_cursor_stops_the_listing() {
        let store = Items::default();
        let dir = Pages {
            pages: 0,
            per_page: 2,
            stuck: true,
        };
        let err = list_into(&store, &job(0), &dir, None).await.unwrap_err();
        assert!(err.to_string().contains("same page cursor twice"), "{err}");
        assert!(store.batches.lock().unwrap().iter().all(|(_, done)| !done));
    }
}
