//! The policy document as written (JSON, in the shape of the seed document:
//! `version`, `default`, `tools.{action}.limits[{counter, window, max,
//! scope}]`, plus Sever's extensions), and its compilation into the checked
//! form the evaluator uses.
//!
//! Errors name the field by its path (`tools.revoke_sessions.limits[0].window`)
//! and say what is wrong, because the people who write policies read them in
//! a terminal or an HTTP answer, not in a debugger. Parsing stops at the
//! first type error (serde's limit); the checks after parsing report every
//! problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{FixedOffset, NaiveTime};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{Channel, InstanceName, Reason};

/// Enums written as one lowercase word in the document. Parsing an unknown
/// word fails with `"fortnight" is not one of second, minute, hour, day`.
macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(format!(
                        "\"{}\" is not one of {}",
                        s.escape_debug(),
                        [$($word),+].join(", ")
                    )),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(D::Error::custom)
            }
        }
    };
}

word_enum! {
    /// Something a caller can ask Sever to do; the keys of `tools`.
    Action {
        RevokeSessions = "revoke_sessions",
        PreviewRevocation = "preview_revocation",
        GetRevocationStatus = "get_revocation_status",
        ListConnectors = "list_connectors",
        BulkRevoke = "bulk_revoke",
        ManageConnectors = "manage_connectors",
        ManageSettings = "manage_settings",
        ManageKeys = "manage_keys",
        ManagePolicy = "manage_policy",
        ApproveRequest = "approve_request",
        ReadAudit = "read_audit",
    }
}

impl Action {
    /// The scope a caller must hold before any policy is consulted. Scopes
    /// are not overridable by a policy: a policy only narrows.
    pub fn required_scope(self) -> crate::admin::Scope {
        use crate::admin::Scope;
        match self {
            Action::RevokeSessions | Action::BulkRevoke => Scope::SessionsRevoke,
            Action::PreviewRevocation | Action::GetRevocationStatus | Action::ListConnectors => {
                Scope::SessionsRead
            }
            Action::ManageConnectors
            | Action::ManageSettings
            | Action::ManageKeys
            | Action::ManagePolicy
            | Action::ApproveRequest
            | Action::ReadAudit => Scope::Admin,
        }
    }

    /// Ends sessions: what blast-radius caps, cooldowns and approvals are about.
    pub fn revokes(self) -> bool {
        matches!(self, Action::RevokeSessions | Action::BulkRevoke)
    }

    /// Names one or more people (so `target` counters, protected accounts
    /// and username rules apply).
    pub fn names_people(self) -> bool {
        matches!(
            self,
            Action::RevokeSessions | Action::BulkRevoke | Action::PreviewRevocation
        )
    }

    fn list() -> String {
        Action::ALL
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

word_enum! {
    /// What happens to an action no tool entry names.
    DefaultRule { Allow = "allow", Deny = "deny" }
}

word_enum! {
    /// What a tool entry does with its action before its other rules.
    ToolAction { Allow = "allow", Deny = "deny", RequireApproval = "require_approval" }
}

word_enum! {
    /// The fixed, clock-aligned (UTC) window a counter counts in.
    Window { Second = "second", Minute = "minute", Hour = "hour", Day = "day" }
}

word_enum! {
    /// Whose calls share one counter.
    CounterScope {
        /// One API key, MCP client, signed-in person or CLI user.
        Grant = "grant",
        /// Every caller of the tenant.
        Tenant = "tenant",
        /// Every caller of every tenant.
        Global = "global",
        /// One person being revoked (each named person counts once).
        Target = "target",
        /// One connector instance (each connector of the run counts once).
        Connector = "connector",
    }
}

word_enum! {
    /// What a protected-account rule does when it matches.
    ProtectedAction { Refuse = "refuse", RequireApproval = "require_approval" }
}

word_enum! {
    Weekday {
        Mon = "mon", Tue = "tue", Wed = "wed", Thu = "thu", Fri = "fri", Sat = "sat", Sun = "sun",
    }
}

impl Window {
    pub fn seconds(self) -> i64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86_400,
        }
    }

    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds())
    }

    /// The start of the window `now` falls in (windows are aligned on the
    /// Unix epoch, so every replica computes the same one).
    pub fn start(self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let t = now.timestamp();
        chrono::DateTime::from_timestamp(t - t.rem_euclid(self.seconds()), 0).unwrap_or(now)
    }
}

impl Weekday {
    fn from_chrono(d: chrono::Weekday) -> Self {
        match d {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }
}

/// The document's `version`: only `"1"` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("1")
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::String(s) if s == "1" => Ok(Version),
            serde_json::Value::Number(n) if n.as_u64() == Some(1) => Ok(Version),
            other => Err(D::Error::custom(format!(
                "{other} is not a supported version (this Sever reads version \"1\")"
            ))),
        }
    }
}

fn default_deny() -> DefaultRule {
    DefaultRule::Deny
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// A policy as written. See `docs/policy.md` for every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    pub version: Version,
    /// For actions no `tools` entry names. Absent means `deny`.
    #[serde(default = "default_deny")]
    pub default: DefaultRule,
    #[serde(default)]
    pub tools: BTreeMap<String, ToolRules>,
    /// Accounts that are refused, or need approval, whoever asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_accounts: Vec<ProtectedAccounts>,
    /// Caps on distinct people revoked per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadius>,
    /// People whose revocation needs approval where a tool says
    /// `"target_on_watch_list": true`. Emails or globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalSettings>,
}

// `word_enum!` derives no `Default`; these three have one.
#[allow(clippy::derivable_impls)]
impl Default for ToolAction {
    fn default() -> Self {
        ToolAction::Allow
    }
}

// `word_enum!` derives no `Default`; these three have one.
#[allow(clippy::derivable_impls)]
impl Default for CounterScope {
    fn default() -> Self {
        CounterScope::Grant
    }
}

// `word_enum!` derives no `Default`; these three have one.
#[allow(clippy::derivable_impls)]
impl Default for ProtectedAction {
    fn default() -> Self {
        ProtectedAction::Refuse
    }
}

/// The rules of one action. Naming an action here allows it (unless
/// `action` says otherwise), subject to the rest.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRules {
    #[serde(default, skip_serializing_if = "is_default")]
    pub action: ToolAction,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<ApprovalConditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<ArgumentRules>,
    /// How long after a revocation the same person cannot be revoked
    /// again: `30s`, `15m`, `2h`, `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
}

/// At most `max` calls per `window` per `scope`. Limits with the same
/// `counter`, `window` and `scope` share one count, even across actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub counter: String,
    pub window: Window,
    pub max: u64,
    #[serde(default)]
    pub scope: CounterScope,
}

/// When a call must wait for a second person. Any condition that holds is
/// enough.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConditions {
    #[serde(default, skip_serializing_if = "is_default")]
    pub always: bool,
    /// Calls arriving on one of these channels (`cli`, `api`, `webhook`, `mcp`, `ui`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Calls naming more than this many people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_than_people: Option<u32>,
    /// Calls naming someone on the policy's `watch_list`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_on_watch_list: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_working_hours: Option<WorkingHours>,
}

fn default_days() -> Vec<Weekday> {
    vec![
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]
}

fn default_offset() -> String {
    "+00:00".into()
}

/// Working hours in a fixed UTC offset: `start` inclusive, `end`
/// exclusive; an `end` before `start` spans midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    #[serde(default = "default_days")]
    pub days: Vec<Weekday>,
    /// `HH:MM`
    pub start: String,
    /// `HH:MM`
    pub end: String,
    /// `+HH:MM` or `-HH:MM`; `+00:00` when absent.
    #[serde(default = "default_offset")]
    pub utc_offset: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentRules {
    /// Usernames must be emails in one of these domains (globs allowed:
    /// `*.example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub username_domains: Vec<String>,
    /// Only these connector instances may be targeted; a call that names
    /// none (meaning every enabled connector) must resolve to a subset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integration_targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonRule>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRule {
    #[serde(default = "yes")]
    pub required: bool,
    /// In characters, after trimming.
    #[serde(default)]
    pub min_length: u32,
}

/// One group of protected accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedAccounts {
    /// Emails or globs (`breakglass-*@example.com`), case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// The caller's own account (a person revoking themself).
    #[serde(default, skip_serializing_if = "is_default")]
    pub callers_own_account: bool,
    /// `refuse` (the default) or `require_approval`.
    #[serde(default)]
    pub action: ProtectedAction,
}

fn default_hour() -> Window {
    Window::Hour
}

/// At most this many distinct people revoked per window (per grant, per
/// tenant). Someone revoked twice in a window counts once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_grant: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_tenant: Option<u64>,
    #[serde(default = "default_hour")]
    pub window: Window,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// How long a request waits for approval before it expires (`30m`).
    pub expire_after: String,
}

/// One thing wrong with a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `tools.revoke_sessions.limits[0].window`; `(document)` for the whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A document that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub problems: Vec<Problem>,
}

impl PolicyError {
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.problems.iter().map(Problem::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Parse a JSON document. Type errors name the field's path.
pub fn parse_document(text: &str) -> Result<PolicyDocument, PolicyError> {
    if text.trim().is_empty() {
        return Err(PolicyError::one(
            "(document)",
            "is empty; a policy is a JSON object such as {\"version\": \"1\", \"default\": \"deny\"}",
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let doc: PolicyDocument = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let full = inner.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full.clone(),
        };
        let syntax = inner.is_syntax() || inner.is_eof();
        let message = if syntax {
            format!(
                "is not valid JSON: {message} (line {}, column {})",
                inner.line(),
                inner.column()
            )
        } else {
            message
        };
        let path = if syntax || path.is_empty() || path == "." {
            "(document)".to_string()
        } else {
            path
        };
        PolicyError::one(path, message)
    })?;
    de.end().map_err(|_| {
        PolicyError::one(
            "(document)",
            "has trailing characters after the JSON object",
        )
    })?;
    Ok(doc)
}

/// A case-insensitive glob: `*` is any run of characters, `?` any one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err("must not be empty".into());
        }
        if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "\"{}\" contains a space or control character",
                p.escape_debug()
            ));
        }
        Ok(Self(p.to_lowercase().chars().collect()))
    }

    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.trim().to_lowercase().chars().collect();
        let p = &self.0;
        // Iterative matching with one backtrack point: linear in practice,
        // never exponential whatever the pattern.
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == '*' {
            pi += 1;
        }
        pi == p.len()
    }
}

/// `30s`, `15m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "\"{}\" is not a duration (a whole number and a unit: 30s, 15m, 2h, 1d)",
            t.escape_debug()
        )
    };
    let unit = t.chars().last().ok_or_else(bad)?;
    let n: i64 = t[..t.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(format!("\"{t}\" must be longer than zero"));
    }
    n.checked_mul(secs)
        .filter(|s| *s <= 366 * 86_400)
        .map(chrono::Duration::seconds)
        .ok_or_else(|| format!("\"{t}\" is longer than a year"))
}

fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| {
        format!(
            "\"{}\" is not a time of day (HH:MM, 24-hour)",
            text.escape_debug()
        )
    })
}

fn parse_offset(text: &str) -> Result<FixedOffset, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "\"{}\" is not a UTC offset (+HH:MM or -HH:MM, e.g. +01:00)",
            t.escape_debug()
        )
    };
    if t == "Z" {
        return FixedOffset::east_opt(0).ok_or_else(bad);
    }
    let (sign, rest) = match t.chars().next() {
        Some('+') => (1, &t[1..]),
        Some('-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

// ------------------------------------------------------------ compiled form

/// Working hours, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hours {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub offset: FixedOffset,
}

impl Hours {
    pub fn contains(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let local = now.with_timezone(&self.offset);
        let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second())
            .unwrap_or(NaiveTime::MIN);
        let day = Weekday::from_chrono(local.weekday());
        if self.start <= self.end {
            self.days.contains(&day) && self.start <= t && t < self.end
        } else {
            // Spans midnight: the part after midnight belongs to the day before.
            let before_midnight = t >= self.start && self.days.contains(&day);
            let prev = Weekday::from_chrono(local.weekday().pred());
            let after_midnight = t < self.end && self.days.contains(&prev);
            before_midnight || after_midnight
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conditions {
    pub always: bool,
    pub channels: Vec<Channel>,
    pub more_than_people: Option<u32>,
    pub watch_list: bool,
    pub hours: Option<Hours>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Arguments {
    pub domains: Vec<(String, Glob)>,
    pub targets: Vec<String>,
    pub reason: Option<ReasonRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tool {
    pub action: ToolAction,
    pub limits: Vec<Limit>,
    pub approval: Option<Conditions>,
    pub arguments: Option<Arguments>,
    pub cooldown: Option<chrono::Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Protected {
    pub accounts: Vec<(String, Glob)>,
    pub own: bool,
    pub action: ProtectedAction,
}

/// Everything the evaluator needs, checked once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compiled {
    pub default: DefaultRule,
    pub tools: BTreeMap<Action, Tool>,
    pub protected: Vec<Protected>,
    pub blast_radius: Option<BlastRadius>,
    pub watch_list: Vec<(String, Glob)>,
    pub approval_ttl: chrono::Duration,
}

/// How long a request waits for approval when the policy does not say.
pub const DEFAULT_APPROVAL_TTL_MINUTES: i64 = 30;

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn globs(&mut self, path: &str, patterns: &[String]) -> Vec<(String, Glob)> {
        let mut out = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match Glob::new(p) {
                Ok(g) => out.push((p.trim().to_string(), g)),
                Err(e) => self.problem(format!("{path}[{i}]"), e),
            }
        }
        out
    }
}

fn suggest(name: &str) -> String {
    let lower = name.to_lowercase();
    let hint = if lower.contains("revoke") && lower.contains("session") {
        " (did you mean revoke_sessions? Sever has one action for every identity provider)"
    } else {
        ""
    };
    format!(
        "is not a known action{hint}; known actions: {}",
        Action::list()
    )
}

/// Check a parsed document and compile it; every problem is reported.
pub(crate) fn compile(doc: &PolicyDocument) -> Result<Compiled, PolicyError> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let watch_list = c.globs("watch_list", &doc.watch_list);
    let mut tools = BTreeMap::new();
    for (name, rules) in &doc.tools {
        let path = format!("tools.{name}");
        let action = match name.parse::<Action>() {
            Ok(a) => a,
            Err(_) => {
                c.problem(&path, suggest(name));
                continue;
            }
        };
        tools.insert(action, compile_tool(&mut c, &path, action, rules, doc));
    }
    let mut protected = Vec::new();
    for (i, p) in doc.protected_accounts.iter().enumerate() {
        let path = format!("protected_accounts[{i}]");
        if p.accounts.is_empty() && !p.callers_own_account {
            c.problem(
                &path,
                "names no account: give \"accounts\" or \"callers_own_account\": true",
            );
        }
        protected.push(Protected {
            accounts: c.globs(&format!("{path}.accounts"), &p.accounts),
            own: p.callers_own_account,
            action: p.action,
        });
    }
    if let Some(b) = &doc.blast_radius {
        if b.per_grant.is_none() && b.per_tenant.is_none() {
            c.problem(
                "blast_radius",
                "sets no cap: give \"per_grant\", \"per_tenant\" or both",
            );
        }
        for (field, v) in [("per_grant", b.per_grant), ("per_tenant", b.per_tenant)] {
            if v == Some(0) {
                c.problem(
                    format!("blast_radius.{field}"),
                    "must be at least 1 (to refuse every revocation, deny the action instead)",
                );
            }
        }
    }
    let mut approval_ttl = chrono::Duration::minutes(DEFAULT_APPROVAL_TTL_MINUTES);
    if let Some(a) = &doc.approvals {
        match parse_duration(&a.expire_after) {
            Ok(d) if d < chrono::Duration::minutes(1) || d > chrono::Duration::days(30) => c
                .problem(
                    "approvals.expire_after",
                    "must be between 1 minute (1m) and 30 days (30d)",
                ),
            Ok(d) => approval_ttl = d,
            Err(e) => c.problem("approvals.expire_after", e),
        }
    }
    if c.problems.is_empty() {
        Ok(Compiled {
            default: doc.default,
            tools,
            protected,
            blast_radius: doc.blast_radius.clone(),
            watch_list,
            approval_ttl,
        })
    } else {
        Err(PolicyError {
            problems: c.problems,
        })
    }
}

const COUNTER_NAME_MAX: usize = 64;

fn compile_tool(
    c: &mut Checker,
    path: &str,
    action: Action,
    rules: &ToolRules,
    doc: &PolicyDocument,
) -> Tool {
    let only_revocations = "only revoke_sessions and bulk_revoke can wait for approval";
    if rules.action == ToolAction::RequireApproval && !action.revokes() {
        c.problem(format!("{path}.action"), only_revocations);
    }
    for (i, l) in rules.limits.iter().enumerate() {
        let lp = format!("{path}.limits[{i}]");
        let name_ok = !l.counter.is_empty()
            && l.counter.len() <= COUNTER_NAME_MAX
            && l.counter
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.' | ':'));
        if !name_ok {
            c.problem(
                format!("{lp}.counter"),
                format!(
                    "\"{}\" must be 1-{COUNTER_NAME_MAX} characters of a-z, A-Z, 0-9, '_', '-', '.' or ':'",
                    l.counter.escape_debug()
                ),
            );
        }
        match l.scope {
            CounterScope::Target | CounterScope::Connector if !action.names_people() => c.problem(
                format!("{lp}.scope"),
                format!(
                    "\"{}\" needs an action that names people and connectors (revoke_sessions, bulk_revoke, preview_revocation)",
                    l.scope
                ),
            ),
            _ => {}
        }
    }
    let approval = rules.require_approval.as_ref().map(|r| {
        let ap = format!("{path}.require_approval");
        if !action.revokes() {
            c.problem(&ap, only_revocations);
        }
        let mut channels = Vec::new();
        for (i, ch) in r.channels.iter().enumerate() {
            match ch.parse::<Channel>() {
                Ok(x) => channels.push(x),
                Err(_) => c.problem(
                    format!("{ap}.channels[{i}]"),
                    format!(
                        "\"{}\" is not one of cli, api, webhook, mcp, ui",
                        ch.escape_debug()
                    ),
                ),
            }
        }
        if r.target_on_watch_list && doc.watch_list.is_empty() {
            c.problem(
                format!("{ap}.target_on_watch_list"),
                "the policy has no watch_list; add \"watch_list\": [\"vip@example.com\", ...]",
            );
        }
        let hours = r.outside_working_hours.as_ref().and_then(|h| {
            let hp = format!("{ap}.outside_working_hours");
            if h.days.is_empty() {
                c.problem(format!("{hp}.days"), "must name at least one day");
            }
            let start = parse_time(&h.start).map_err(|e| c.problem(format!("{hp}.start"), e));
            let end = parse_time(&h.end).map_err(|e| c.problem(format!("{hp}.end"), e));
            let offset =
                parse_offset(&h.utc_offset).map_err(|e| c.problem(format!("{hp}.utc_offset"), e));
            let (start, end, offset) = (start.ok()?, end.ok()?, offset.ok()?);
            if start == end {
                c.problem(
                    format!("{hp}.end"),
                    "equals start; working hours must have a length",
                );
            }
            Some(Hours {
                days: h.days.clone(),
                start,
                end,
                offset,
            })
        });
        let any = r.always
            || !r.channels.is_empty()
            || r.more_than_people.is_some()
            || r.target_on_watch_list
            || r.outside_working_hours.is_some();
        if !any {
            c.problem(
                &ap,
                "names no condition: give \"always\": true, \"channels\", \"more_than_people\", \"target_on_watch_list\" or \"outside_working_hours\"",
            );
        }
        Conditions {
            always: r.always,
            channels,
            more_than_people: r.more_than_people,
            watch_list: r.target_on_watch_list,
            hours,
        }
    });
    let arguments = rules.arguments.as_ref().map(|a| {
        let ap = format!("{path}.arguments");
        if !a.username_domains.is_empty() && !action.names_people() {
            c.problem(
                format!("{ap}.username_domains"),
                format!("{action} names no person"),
            );
        }
        if !a.integration_targets.is_empty() && !action.names_people() {
            c.problem(
                format!("{ap}.integration_targets"),
                format!("{action} targets no connector"),
            );
        }
        let mut targets = Vec::new();
        for (i, t) in a.integration_targets.iter().enumerate() {
            match InstanceName::parse(t) {
                Ok(n) => targets.push(n.to_string()),
                Err(e) => c.problem(format!("{ap}.integration_targets[{i}]"), e.problem),
            }
        }
        if let Some(r) = &a.reason {
            if !action.revokes() {
                c.problem(format!("{ap}.reason"), format!("{action} takes no reason"));
            }
            if r.min_length as usize > Reason::MAX_LEN {
                c.problem(
                    format!("{ap}.reason.min_length"),
                    format!("must be at most {} (the longest reason)", Reason::MAX_LEN),
                );
            }
        }
        Arguments {
            domains: c.globs(&format!("{ap}.username_domains"), &a.username_domains),
            targets,
            reason: a.reason.clone(),
        }
    });
    let cooldown = rules.cooldown.as_ref().and_then(|d| {
        let cp = format!("{path}.cooldown");
        if !action.revokes() {
            c.problem(&cp, "only revoke_sessions and bulk_revoke have a cooldown");
        }
        parse_duration(d).map_err(|e| c.problem(&cp, e)).ok()
    });
    Tool {
        action: rules.action,
        limits: rules.limits.clone(),
        approval,
        arguments,
        cooldown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse_document(text).and_then(|d| compile(&d).map(|_| ())) {
            Ok(()) => vec![],
            Err(e) => e.problems.iter().map(Problem::to_string).collect(),
        }
    }

    #[test]
    fn an_unknown_window_names_its_path_and_the_allowed_words() {
        let p = problems(
            r#"{"version": "1", "default": "deny", "tools": {"revoke_sessions": {"limits": [
                {"counter": "c", "window": "fortnight", "max": 10, "scope": "grant"}]}}}"#,
        );
        assert_eq!(
            p,
            ["tools.revoke_sessions.limits[0].window: \"fortnight\" is not one of second, minute, hour, day"]
        );
    }

    #[test]
    fn type_errors_missing_and_unknown_fields_name_their_path() {
        let p = problems(
            r#"{"version": "1", "tools": {"revoke_sessions": {"limits": [{"counter": "c", "window": "minute", "max": -1}]}}}"#,
        );
        assert!(
            p[0].starts_with("tools.revoke_sessions.limits[0].max: invalid value"),
            "{p:?}"
        );
        let p = problems(
            r#"{"version": "1", "tools": {"revoke_sessions": {"limits": [{"counter": "c", "window": "minute"}]}}}"#,
        );
        assert_eq!(p, ["tools.revoke_sessions.limits[0]: missing field `max`"]);
        let p = problems(r#"{"version": "1", "tools": {"revoke_sessions": {"limts": []}}}"#);
        assert!(
            p[0].starts_with("tools.revoke_sessions.limts: unknown field `limts`"),
            "{p:?}"
        );
        let p = problems(r#"{"version": "2"}"#);
        assert!(
            p[0].starts_with("version: \"2\" is not a supported version"),
            "{p:?}"
        );
        let p = problems(r#"{"version": "1", "default": "maybe"}"#);
        assert_eq!(p, ["default: \"maybe\" is not one of allow, deny"]);
        let p = problems("{\"version\": \"1\",\n \"default\": }");
        assert!(p[0].starts_with("(document): is not valid JSON"), "{p:?}");
        assert!(p[0].contains("line 2"), "{p:?}");
        assert!(problems("")[0].starts_with("(document): is empty"));
        assert!(problems("{\"version\": \"1\"} x")[0].contains("trailing"));
    }

    #[test]
    fn semantic_problems_are_all_reported_with_their_paths() {
        let p = problems(
            r#"{"version": "1",
                "tools": {
                  "revoke_entra_sessions": {},
                  "list_connectors": {"require_approval": {"always": true}, "cooldown": "5m"},
                  "revoke_sessions": {
                    "limits": [{"counter": "bad name", "window": "minute", "max": 1}],
                    "require_approval": {"channels": ["fax"], "target_on_watch_list": true,
                      "outside_working_hours": {"start": "9am", "end": "17:00", "utc_offset": "CET"}},
                    "arguments": {"integration_targets": ["Okta"], "reason": {"min_length": 5000}},
                    "cooldown": "soon"
                  },
                  "get_revocation_status": {"limits": [{"counter": "c", "window": "minute", "max": 1, "scope": "target"}]}
                },
                "protected_accounts": [{"action": "refuse"}],
                "blast_radius": {"per_grant": 0},
                "approvals": {"expire_after": "10s"}
            }"#,
        );
        let expect = [
            "tools.get_revocation_status.limits[0].scope: \"target\" needs an action",
            "tools.list_connectors.require_approval: only revoke_sessions and bulk_revoke",
            "tools.list_connectors.cooldown: only revoke_sessions and bulk_revoke have a cooldown",
            "tools.revoke_entra_sessions: is not a known action (did you mean revoke_sessions?",
            "tools.revoke_sessions.limits[0].counter: \"bad name\" must be",
            "tools.revoke_sessions.require_approval.channels[0]: \"fax\" is not one of cli, api, webhook, mcp, ui",
            "tools.revoke_sessions.require_approval.target_on_watch_list: the policy has no watch_list",
            "tools.revoke_sessions.require_approval.outside_working_hours.start: \"9am\" is not a time of day",
            "tools.revoke_sessions.require_approval.outside_working_hours.utc_offset: \"CET\" is not a UTC offset",
            "tools.revoke_sessions.arguments.integration_targets[0]: 'Okta' must be",
            "tools.revoke_sessions.arguments.reason.min_length: must be at most 1000",
            "tools.revoke_sessions.cooldown: \"soon\" is not a duration",
            "protected_accounts[0]: names no account",
            "blast_radius.per_grant: must be at least 1",
            "approvals.expire_after: must be between 1 minute",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn globs_match_case_insensitively_with_stars_and_question_marks() {
        let g = Glob::new("breakglass-*@Example.com").unwrap();
        assert!(g.matches("breakglass-1@example.com"));
        assert!(g.matches("BREAKGLASS-@EXAMPLE.COM"));
        assert!(!g.matches("breakglass@example.com"));
        assert!(!g.matches("xbreakglass-1@example.com"));
        let g = Glob::new("a?c*d").unwrap();
        assert!(g.matches("abcd") && g.matches("abcxxd") && !g.matches("acd"));
        assert!(Glob::new("*").unwrap().matches(""));
        assert!(Glob::new("a b").is_err() && Glob::new(" ").is_err());
        // Pathological patterns stay fast.
        let g = Glob::new(&"*a".repeat(30)).unwrap();
        assert!(!g.matches(&"a".repeat(29)));
    }

    #[test]
    fn durations_times_and_offsets_parse_or_explain() {
        assert_eq!(
            parse_duration("15m").unwrap(),
            chrono::Duration::minutes(15)
        );
        assert_eq!(parse_duration("2h").unwrap(), chrono::Duration::hours(2));
        assert_eq!(parse_duration("1d").unwrap(), chrono::Duration::days(1));
        for bad in ["", "m", "15", "15 m", "0s", "-1h", "1w", "999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_offset("+01:30").unwrap().local_minus_utc(), 5400);
        assert_eq!(parse_offset("-05:00").unwrap().local_minus_utc(), -18000);
        assert!(parse_offset("+1").is_err() && parse_offset("01:00").is_err());
        assert!(parse_time("08:30").is_ok() && parse_time("25:00").is_err());
    }

    #[test]
    fn working_hours_honour_the_offset_the_days_and_midnight() {
        use chrono::TimeZone;
        let h = Hours {
            days: default_days(),
            start: parse_time("09:00").unwrap(),
            end: parse_time("17:00").unwrap(),
            offset: parse_offset("+02:00").unwrap(),
        };
        // Monday 2025-03-03.
        let utc = |d, hh, mm| chrono::Utc.with_ymd_and_hms(2025, 3, d, hh, mm, 0).unwrap();
        assert!(h.contains(utc(3, 7, 0)), "09:00 local is inside");
        assert!(!h.contains(utc(3, 6, 59)), "08:59 local is outside");
        assert!(!h.contains(utc(3, 15, 0)), "17:00 local is outside");
        assert!(!h.contains(utc(8, 10, 0)), "Saturday is outside");
        let night = Hours {
            days: vec![Weekday::Fri],
            start: parse_time("22:00").unwrap(),
            end: parse_time("06:00").unwrap(),
            offset: parse_offset("+00:00").unwrap(),
        };
        assert!(night.contains(utc(7, 23, 0)), "Friday 23:00");
        assert!(
            night.contains(utc(8, 5, 0)),
            "Saturday 05:00 belongs to Friday's shift"
        );
        assert!(!night.contains(utc(8, 23, 0)), "Saturday 23:00");
    }

    #[test]
    fn windows_align_on_the_epoch() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(
            Window::Minute.start(t),
            chrono::Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 0).unwrap()
        );
        assert_eq!(
            Window::Hour.start(t),
            chrono::Utc.with_ymd_and_hms(2025, 3, 4, 5, 0, 0).unwrap()
        );
        assert_eq!(
            Window::Day.start(t),
            chrono::Utc.with_ymd_and_hms(2025, 3, 4, 0, 0, 0).unwrap()
        );
        assert_eq!(Window::Second.start(t), t);
    }

    #[test]
    fn a_document_round_trips_through_json() {
        let text = r#"{"version": "1", "default": "deny", "tools": {"revoke_sessions": {
            "limits": [{"counter": "r", "window": "minute", "max": 10, "scope": "grant"}],
            "require_approval": {"channels": ["mcp"]}, "cooldown": "10m"}},
            "blast_radius": {"per_tenant": 20}}"#;
        let doc = parse_document(text).unwrap();
        let again = parse_document(&serde_json::to_string(&doc).unwrap()).unwrap();
        assert_eq!(doc, again);
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["version"], "1");
        assert_eq!(v["blast_radius"]["window"], "hour");
    }
}
