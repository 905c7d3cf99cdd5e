//! Configuration: `sever.toml`, overridden by `SEVER_*` environment variables,
//! with `*_file` / `*_FILE` indirection so secrets can come from mounted files.
//!
//! Every error names the file (or variable), the key and the problem, and a
//! secret value never appears in one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sever_connectors::ConnectorConfig;
use sever_core::{EngineSettings, RetryPolicy};

/// A configuration problem, with where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct ConfigError {
    pub origin: String,
    pub problem: String,
}

fn err(origin: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        origin: origin.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    /// PostgreSQL only: the schema holding Sever's tables (default: the
    /// connection's `search_path`).
    database_schema: Option<String>,
    master_key: Option<String>,
    master_key_file: Option<PathBuf>,
    /// An older master key that still opens what it sealed, while `sever keys
    /// rotate` re-seals everything under `master_key` (inline keys only).
    previous_master_key: Option<String>,
    request_deadline_secs: Option<u64>,
    /// How long a request's lease lives without renewal: a replica that dies
    /// mid-run has its work taken over this long after its last renewal.
    lease_ttl_secs: Option<u64>,
    /// Connectors of one request run at once (0 = all; 1 = one after another).
    max_parallel_connectors: Option<usize>,
    /// SQLite only: `full` (sync every commit; the default) or `normal`.
    sqlite_synchronous: Option<String>,
    /// A policy document (docs/policy.md) that applies to every call of
    /// every tenant, on the CLI and on `sever serve`.
    policy_file: Option<PathBuf>,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    mcp: RawMcp,
    #[serde(default)]
    connectors: Vec<toml::Value>,
}

/// `[mcp]`: the API key `sever mcp` acts as (`SEVER_API_KEY` wins).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMcp {
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
}

/// `[server]`: how `sever serve` listens and runs work.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: Option<String>,
    webhook_wait_secs: Option<u64>,
    api_wait_secs: Option<u64>,
    trust_proxy: Option<bool>,
    worker_interval_ms: Option<u64>,
    worker_concurrency: Option<usize>,
    /// How long the MCP revoke_sessions tool waits for a result.
    mcp_wait_secs: Option<u64>,
    /// Host headers /mcp and the OAuth endpoints accept (default: loopback).
    allowed_hosts: Option<Vec<String>>,
    /// The URL clients reach the server at, for OAuth metadata.
    public_url: Option<String>,
    /// `json` or `text` (default: json unless stderr is a terminal).
    log_format: Option<String>,
    /// How long running revocations get to finish on shutdown.
    shutdown_grace_secs: Option<u64>,
    /// Largest body of `POST /api/v1/bulk-revocations`, in bytes.
    bulk_body_limit: Option<usize>,
    /// Bulk jobs with more people than this wait for approval.
    bulk_approval_threshold: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<u32>,
    base_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    attempt_timeout_ms: Option<u64>,
}

/// Where the master key that seals secrets at rest comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `SEVER_MASTER_KEY` / `master_key`: base64 of 32 bytes.
    Inline(secrecy::SecretString),
    /// A key file, created with mode 0600 when missing.
    File(PathBuf),
}

#[derive(Debug)]
pub struct Config {
    /// The file the configuration came from, if any.
    pub source: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// PostgreSQL schema holding the tables, if not the default `search_path`.
    pub database_schema: Option<String>,
    /// SQLite's commit durability (`sqlite_synchronous`).
    pub sqlite_synchronous: sever_store::SqliteSync,
    pub master_key: MasterKeySource,
    /// An older inline key still accepted for opening, during a rotation.
    pub previous_master_key: Option<secrecy::SecretString>,
    pub engine: EngineSettings,
    /// `[server]`, for `sever serve`.
    pub server: sever_server::ServerConfig,
    /// `[mcp] api_key` (or `api_key_file`), for `sever mcp`.
    pub mcp_api_key: Option<secrecy::SecretString>,
    /// `[server] log_format`; `None`: decided by whether stderr is a terminal.
    pub log_format: Option<crate::logging::LogFormat>,
    pub connectors: Vec<ConnectorConfig>,
    /// `policy_file` (`SEVER_POLICY_FILE`), relative to the configuration
    /// file: the policy of every call, read when a command needs it
    /// ([`crate::app::load_policy`]).
    pub policy_file: Option<PathBuf>,
}

const CONFIG_ENV: &str = "SEVER_CONFIG";

impl Config {
    /// Load from `explicit`, else `$SEVER_CONFIG`, else `./sever.toml` if present,
    /// else embedded defaults (no connectors).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = match (explicit, env(CONFIG_ENV)) {
            (Some(p), _) => Some(p.to_path_buf()),
            (None, Some(p)) => Some(PathBuf::from(p)),
            (None, None) => Some(PathBuf::from("sever.toml")).filter(|p| p.exists()),
        };
        let table = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    err(
                        p.display().to_string(),
                        format!("cannot read the configuration file: {e}"),
                    )
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| err(p.display().to_string(), toml_problem(&e)))?
            }
            None => toml::Table::new(),
        };
        let env_vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("SEVER_") && k != CONFIG_ENV)
            .collect();
        Self::from_parts(path, table, &env_vars)
    }

    fn from_parts(
        path: Option<PathBuf>,
        mut table: toml::Table,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "configuration".into());
        let base_dir = path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        apply_env(&mut table, env)?;
        resolve_files(&mut table, &file, "", &base_dir)?;
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| err(&file, toml_problem(&e)))?;

        let data_dir = match raw.data_dir {
            Some(d) => relative_to(&base_dir, d),
            None if path.is_some() => base_dir.clone(),
            None => default_data_dir(),
        };
        let database_url = raw
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("sever.db").display()));
        let master_key = match (raw.master_key, raw.master_key_file) {
            (Some(k), _) => MasterKeySource::Inline(k.into()),
            (None, Some(f)) => MasterKeySource::File(relative_to(&base_dir, f)),
            (None, None) => MasterKeySource::File(data_dir.join("master.key")),
        };

        let defaults = EngineSettings::default();
        let d = defaults.retry;
        let ms = Duration::from_millis;
        let retry = RetryPolicy {
            max_attempts: raw.retry.max_attempts.unwrap_or(d.max_attempts),
            base_delay: raw.retry.base_delay_ms.map(ms).unwrap_or(d.base_delay),
            max_delay: raw.retry.max_delay_ms.map(ms).unwrap_or(d.max_delay),
            attempt_timeout: raw
                .retry
                .attempt_timeout_ms
                .map(ms)
                .unwrap_or(d.attempt_timeout),
        };
        if retry.max_attempts == 0 || retry.max_attempts > 20 {
            return Err(err(&file, "retry.max_attempts: must be between 1 and 20"));
        }
        if retry.attempt_timeout.is_zero() {
            return Err(err(
                &file,
                "retry.attempt_timeout_ms: must be greater than 0",
            ));
        }
        let request_deadline = match raw.request_deadline_secs {
            Some(0) => return Err(err(&file, "request_deadline_secs: must be greater than 0")),
            Some(s) => Duration::from_secs(s),
            None => defaults.request_deadline,
        };
        let lease_ttl = match raw.lease_ttl_secs {
            Some(0) => return Err(err(&file, "lease_ttl_secs: must be greater than 0")),
            Some(s) => Duration::from_secs(s),
            None => defaults.lease_ttl,
        };
        if raw.database_schema.is_some() && !database_url_is_postgres(&database_url) {
            return Err(err(
                &file,
                "database_schema: applies to PostgreSQL only; database_url names SQLite",
            ));
        }
        let log_format = match raw.server.log_format.as_deref() {
            None => None,
            Some(f) => Some(crate::logging::LogFormat::parse(f).ok_or_else(|| {
                err(
                    &file,
                    format!("server.log_format: '{f}' is not \"json\" or \"text\""),
                )
            })?),
        };
        let sqlite_synchronous = match raw.sqlite_synchronous.as_deref() {
            None => sever_store::SqliteSync::default(),
            Some(v) => sever_store::SqliteSync::parse(v).ok_or_else(|| {
                err(
                    &file,
                    format!("sqlite_synchronous: '{v}' is not \"full\" or \"normal\""),
                )
            })?,
        };
        let server = server_config(raw.server, &file)?;
        let mcp_api_key = match (raw.mcp.api_key, raw.mcp.api_key_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    &file,
                    "mcp: set either api_key or api_key_file, not both",
                ))
            }
            (Some(k), None) => Some(k.trim().to_string().into()),
            (None, Some(f)) => {
                let path = relative_to(&base_dir, f);
                let k = std::fs::read_to_string(&path).map_err(|e| {
                    err(
                        &file,
                        format!("mcp.api_key_file: cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(k.trim().to_string().into())
            }
            (None, None) => None,
        };

        let mut connectors = Vec::new();
        for (i, value) in raw.connectors.into_iter().enumerate() {
            let label = connector_label(i, &value);
            let cfg: ConnectorConfig = value.try_into().map_err(|e: toml::de::Error| {
                err(&file, format!("{label}: {}", toml_problem(&e)))
            })?;
            cfg.validate()
                .map_err(|e| err(&file, format!("{label}: {e}")))?;
            connectors.push(cfg);
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &connectors {
            let name = c.instance_name().map_err(|e| err(&file, e.to_string()))?;
            if !seen.insert(name.clone()) {
                return Err(err(
                    &file,
                    format!("connectors: two connectors are named '{name}'; give each instance a distinct `name`"),
                ));
            }
        }

        Ok(Config {
            source: path,
            data_dir,
            database_url,
            database_schema: raw.database_schema,
            sqlite_synchronous,
            master_key,
            previous_master_key: raw.previous_master_key.map(Into::into),
            engine: EngineSettings {
                retry,
                request_deadline,
                lease_ttl,
                max_parallel_connectors: raw.max_parallel_connectors.unwrap_or(0),
            },
            server,
            mcp_api_key,
            log_format,
            connectors,
            policy_file: raw.policy_file.map(|p| relative_to(&base_dir, p)),
        })
    }
}

fn database_url_is_postgres(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

fn server_config(raw: RawServer, file: &str) -> Result<sever_server::ServerConfig, ConfigError> {
    let d = sever_server::ServerConfig::default();
    let bind = match raw.bind {
        Some(b) => b.trim().parse().map_err(|_| {
            err(
                file,
                format!("server.bind: '{b}' is not an address with a port (e.g. 127.0.0.1:8080)"),
            )
        })?,
        None => d.bind,
    };
    if raw.worker_interval_ms == Some(0) {
        return Err(err(
            file,
            "server.worker_interval_ms: must be greater than 0",
        ));
    }
    if raw.worker_concurrency == Some(0) {
        return Err(err(
            file,
            "server.worker_concurrency: must be greater than 0",
        ));
    }
    Ok(sever_server::ServerConfig {
        bind,
        webhook_wait: raw
            .webhook_wait_secs
            .map(Duration::from_secs)
            .unwrap_or(d.webhook_wait),
        api_wait: raw
            .api_wait_secs
            .map(Duration::from_secs)
            .unwrap_or(d.api_wait),
        trust_proxy: raw.trust_proxy.unwrap_or(d.trust_proxy),
        worker_interval: raw
            .worker_interval_ms
            .map(Duration::from_millis)
            .unwrap_or(d.worker_interval),
        worker_concurrency: raw.worker_concurrency.unwrap_or(d.worker_concurrency),
        mcp_wait: raw
            .mcp_wait_secs
            .map(Duration::from_secs)
            .unwrap_or(d.mcp_wait),
        allowed_hosts: raw.allowed_hosts.unwrap_or(d.allowed_hosts),
        public_url: raw
            .public_url
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty()),
        shutdown_grace: raw
            .shutdown_grace_secs
            .map(Duration::from_secs)
            .unwrap_or(d.shutdown_grace),
        bulk_body_limit: raw.bulk_body_limit.unwrap_or(d.bulk_body_limit),
        bulk_approval_threshold: raw
            .bulk_approval_threshold
            .unwrap_or(d.bulk_approval_threshold),
        ..d
    })
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("sever"))
        .unwrap_or_else(|| PathBuf::from(".sever"))
}

fn relative_to(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

fn connector_label(i: usize, value: &toml::Value) -> String {
    let name = value
        .get("name")
        .or_else(|| value.get("provider"))
        .and_then(|v| v.as_str());
    match name {
        Some(n) => format!("connectors[{i}] ({n})"),
        None => format!("connectors[{i}]"),
    }
}

/// toml's messages carry a source excerpt; keep the first line and the key path,
/// which is what a reader needs, and never the value (it may be a secret).
fn toml_problem(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("{msg} (at byte {})", span.start),
        None => msg,
    }
}

/// Settings of a `[section]` the environment can set as
/// `SEVER_<SECTION>_<KEY>`, with each key's kind.
const SECTIONS: [(&str, &[(&str, Kind)]); 3] = [
    (
        "server",
        &[
            ("bind", Kind::Text),
            ("mcp_wait_secs", Kind::Number),
            ("allowed_hosts", Kind::List),
            ("public_url", Kind::Text),
            ("webhook_wait_secs", Kind::Number),
            ("api_wait_secs", Kind::Number),
            ("trust_proxy", Kind::Bool),
            ("worker_interval_ms", Kind::Number),
            ("worker_concurrency", Kind::Number),
            ("log_format", Kind::Text),
            ("shutdown_grace_secs", Kind::Number),
            ("bulk_body_limit", Kind::Number),
            ("bulk_approval_threshold", Kind::Number),
        ],
    ),
    (
        "mcp",
        &[("api_key", Kind::Text), ("api_key_file", Kind::Text)],
    ),
    (
        "retry",
        &[
            ("max_attempts", Kind::Number),
            ("base_delay_ms", Kind::Number),
            ("max_delay_ms", Kind::Number),
            ("attempt_timeout_ms", Kind::Number),
        ],
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    /// Comma-separated.
    List,
}

fn env_value(var: &str, value: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    match kind {
        Kind::Text => Ok(toml::Value::String(value.to_string())),
        Kind::List => Ok(toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| toml::Value::String(v.to_string()))
                .collect(),
        )),
        Kind::Number => value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| err(var, "must be a whole number")),
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(err(var, "must be true or false")),
        },
    }
}

/// `SEVER_SERVER_BIND=…` sets `bind` in `[server]`; false when `rest` names no section.
fn apply_section_env(
    table: &mut toml::Table,
    var: &str,
    rest: &str,
    value: &str,
) -> Result<bool, ConfigError> {
    let lower = rest.to_ascii_lowercase();
    for (section, keys) in SECTIONS {
        let Some(key) = lower.strip_prefix(&format!("{section}_")) else {
            continue;
        };
        let Some((key, kind)) = keys.iter().find(|(k, _)| *k == key) else {
            let known: Vec<String> = keys
                .iter()
                .map(|(k, _)| format!("SEVER_{}_{}", section, k).to_ascii_uppercase())
                .collect();
            return Err(err(
                var,
                format!("unknown setting (known: {})", known.join(", ")),
            ));
        };
        let v = env_value(var, value, *kind)?;
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(t) = entry.as_table_mut() else {
            return Err(err(var, format!("[{section}] in the file is not a table")));
        };
        t.insert(key.to_string(), v);
        return Ok(true);
    }
    Ok(false)
}

/// `SEVER_DATABASE_URL=…` sets `database_url`; `SEVER_SERVER_BIND=…` sets
/// `bind` in `[server]` (likewise `[retry]`); `SEVER_CONNECTOR_OKTA_API_TOKEN=…`
/// sets `api_token` on the connector named `okta` (name upper-cased, `-` as `_`).
/// A `_FILE` suffix on a top-level or connector setting reads the value from that file.
fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    const READ_ELSEWHERE: [&str; 7] = [
        "log",
        "api_key",
        "bulk_concurrency",
        "bulk_approval_threshold",
        "bulk_protected",
        "shared_dir",
        "prism",
    ];
    const TOP: [&str; 11] = [
        "data_dir",
        "database_url",
        "database_schema",
        "master_key",
        "master_key_file",
        "previous_master_key",
        "request_deadline_secs",
        "lease_ttl_secs",
        "max_parallel_connectors",
        "policy_file",
        "sqlite_synchronous",
    ];
    const NUMERIC: [&str; 3] = [
        "request_deadline_secs",
        "lease_ttl_secs",
        "max_parallel_connectors",
    ];
    for (var, value) in env {
        let rest = &var["SEVER_".len()..];
        if apply_section_env(table, var, rest, value)? {
            continue;
        }
        if let Some(conn) = rest.strip_prefix("CONNECTOR_") {
            let Some(connectors) = table.get_mut("connectors").and_then(|v| v.as_array_mut())
            else {
                return Err(err(
                    var,
                    "there are no connectors in the configuration file to apply this to",
                ));
            };
            let mut applied = false;
            for c in connectors.iter_mut() {
                let Some(t) = c.as_table_mut() else { continue };
                let name = t
                    .get("name")
                    .or_else(|| t.get("provider"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_ascii_uppercase()
                    .replace('-', "_");
                if let Some(field) = conn.strip_prefix(&format!("{name}_")) {
                    let field = field.to_ascii_lowercase();
                    let base = field.strip_suffix("_file").unwrap_or(&field);
                    t.remove(base);
                    t.remove(&format!("{base}_file"));
                    t.insert(field.clone(), toml::Value::String(value.clone()));
                    applied = true;
                    break;
                }
            }
            if !applied {
                return Err(err(
                    var,
                    "names no configured connector (expected SEVER_CONNECTOR_<NAME>_<FIELD>)",
                ));
            }
            continue;
        }
        let key = rest.to_ascii_lowercase();
        // Read elsewhere: the log filter, `sever mcp`'s key, `sever bulk`'s
        // options, and the test and benchmark tooling's own variables.
        if READ_ELSEWHERE.contains(&key.as_str())
            || key.starts_with("test_")
            || key.starts_with("bench_")
        {
            continue;
        }
        // `policy_file` is a setting of its own (a path), not `policy` read from a file.
        let base = if key == "policy_file" {
            key.as_str()
        } else {
            key.strip_suffix("_file").unwrap_or(&key)
        };
        if !TOP.contains(&base) {
            return Err(err(
                var,
                format!(
                    "unknown setting (known: SEVER_{})",
                    TOP.map(str::to_ascii_uppercase).join(", SEVER_")
                ),
            ));
        }
        let v = if NUMERIC.contains(&base) && key == base {
            value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| err(var, "must be a whole number"))?
        } else {
            toml::Value::String(value.clone())
        };
        // The environment wins over the file: drop the file's form of the same key.
        table.remove(base);
        table.remove(&format!("{base}_file"));
        table.insert(key, v);
    }
    Ok(())
}

/// Replace every `x_file = "path"` by `x = <file contents>`, at the top level
/// and in each connector. `master_key_file` (a key file that may not exist
/// yet) and `policy_file` (read when needed) are real settings and are left
/// alone.
fn resolve_files(
    table: &mut toml::Table,
    file: &str,
    prefix: &str,
    base_dir: &Path,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = table
        .keys()
        .filter(|k| {
            k.ends_with("_file") && k.as_str() != "master_key_file" && k.as_str() != "policy_file"
        })
        .cloned()
        .collect();
    for k in keys {
        let field = &k[..k.len() - "_file".len()];
        let origin = format!("{file}: {prefix}{k}");
        if table.contains_key(field) {
            return Err(err(origin, format!("set either {field} or {k}, not both")));
        }
        let Some(path) = table.get(&k).and_then(|v| v.as_str()).map(PathBuf::from) else {
            return Err(err(origin, "must be a file path"));
        };
        let path = relative_to(base_dir, path);
        let content = std::fs::read_to_string(&path)
            .map_err(|e| err(&origin, format!("cannot read {}: {e}", path.display())))?;
        table.remove(&k);
        table.insert(
            field.to_string(),
            toml::Value::String(content.trim_end_matches(['\n', '\r']).to_string()),
        );
    }
    if let Some(toml::Value::Array(connectors)) = table.get_mut("connectors") {
        for (i, c) in connectors.iter_mut().enumerate() {
            if let toml::Value::Table(t) = c {
                resolve_files(t, file, &format!("connectors[{i}]."), base_dir)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_parts(Some(PathBuf::from("/etc/sever/sever.toml")), table, &env)
    }

    #[test]
    fn the_policy_file_is_a_path_beside_the_configuration_that_the_environment_can_set() {
        let c = load("policy_file = \"policy.json\"\n", &[]).unwrap();
        assert_eq!(c.policy_file, Some(PathBuf::from("/etc/sever/policy.json")));
        // A path, not `policy` read from a file: it is read when a command needs it.
        let c = load("", &[("SEVER_POLICY_FILE", "/srv/sever/policy.json")]).unwrap();
        assert_eq!(c.policy_file, Some(PathBuf::from("/srv/sever/policy.json")));
        assert!(load("", &[]).unwrap().policy_file.is_none());
    }

    #[test]
    fn defaults_put_the_database_and_key_beside_the_config_file() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.database_url, "sqlite:///etc/sever/sever.db");
        assert!(
            matches!(c.master_key, MasterKeySource::File(ref p) if p == Path::new("/etc/sever/master.key"))
        );
        assert!(c.connectors.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "database_url = \"sqlite://a.db\"",
            &[
                ("SEVER_DATABASE_URL", "postgres://x@h/db"),
                ("SEVER_REQUEST_DEADLINE_SECS", "5"),
            ],
        )
        .unwrap();
        assert_eq!(c.database_url, "postgres://x@h/db");
        assert_eq!(c.engine.request_deadline, Duration::from_secs(5));
    }

    #[test]
    fn unknown_keys_and_variables_are_named() {
        let e = load("databse_url = \"x\"", &[]).unwrap_err();
        assert!(e.to_string().contains("databse_url"), "{e}");
        assert!(e.to_string().starts_with("/etc/sever/sever.toml"), "{e}");
        let e = load("", &[("SEVER_DATABSE_URL", "x")]).unwrap_err();
        assert!(e.to_string().contains("SEVER_DATABSE_URL"), "{e}");
        // Variables other parts of Sever (and its tooling) read are no typo.
        for var in [
            "SEVER_BULK_CONCURRENCY",
            "SEVER_TEST_DATABASE_URL",
            "SEVER_SHARED_DIR",
        ] {
            assert!(load("", &[(var, "1")]).is_ok(), "{var}");
        }
    }

    #[test]
    fn file_indirection_reads_secrets_and_reports_missing_files_without_values() {
        let dir = std::env::temp_dir().join(format!("sever-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("okta-token");
        std::fs::write(&secret, "canary-secret-123\n").unwrap();
        let text = format!(
            "[[connectors]]\nprovider = \"okta\"\nbase_url = \"https://acme.okta.com\"\napi_token_file = \"{}\"\n",
            secret.display()
        );
        let c = load(&text, &[]).unwrap();
        assert_eq!(c.connectors.len(), 1);
        assert!(!format!("{c:?}").contains("canary-secret-123"));

        let text = "[[connectors]]\nprovider = \"okta\"\nbase_url = \"https://acme.okta.com\"\napi_token_file = \"/nonexistent/t\"\n";
        let e = load(text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("connectors[0].api_token_file") && e.contains("/nonexistent/t"),
            "{e}"
        );

        let e = load(
            "[[connectors]]\nprovider = \"okta\"\nbase_url = \"https://acme.okta.com\"\napi_token = \"canary-secret-123\"\n",
            &[("SEVER_CONNECTOR_OKTA_API_TOKEN_FILE", "/nonexistent/u")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/u") && !e.contains("canary-secret-123"),
            "{e}"
        );
    }

    #[test]
    fn server_settings_come_from_their_section_or_the_environment() {
        let c = load(
            "lease_ttl_secs = 2\n[server]\nbind = \"0.0.0.0:9000\"\nworker_concurrency = 3\n",
            &[
                ("SEVER_SERVER_WEBHOOK_WAIT_SECS", "3"),
                ("SEVER_SERVER_TRUST_PROXY", "true"),
                ("SEVER_RETRY_MAX_ATTEMPTS", "2"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.server.worker_concurrency, 3);
        assert_eq!(c.server.webhook_wait, Duration::from_secs(3));
        assert!(c.server.trust_proxy);
        assert_eq!(c.engine.lease_ttl, Duration::from_secs(2));
        assert_eq!(c.engine.retry.max_attempts, 2);
        let d = load("", &[]).unwrap();
        assert_eq!(d.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(d.engine.lease_ttl, EngineSettings::default().lease_ttl);

        let e = load("[server]\nbind = \"localhost\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.bind"), "{e}");
        let e = load("", &[("SEVER_SERVER_BINDD", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SEVER_SERVER_BINDD") && e.contains("SEVER_SERVER_BIND,"),
            "{e}"
        );
        let e = load("", &[("SEVER_SERVER_TRUST_PROXY", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = load("lease_ttl_secs = 0", &[]).unwrap_err().to_string();
        assert!(e.contains("lease_ttl_secs"), "{e}");

        let c = load(
            "[server]\nlog_format = \"text\"\n",
            &[("SEVER_SERVER_SHUTDOWN_GRACE_SECS", "3")],
        )
        .unwrap();
        assert_eq!(c.log_format, Some(crate::logging::LogFormat::Text));
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(3));
        assert_eq!(d.log_format, None);
        let e = load("[server]\nlog_format = \"xml\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.log_format"), "{e}");
    }

    #[test]
    fn a_database_schema_needs_postgresql() {
        let e = load("database_schema = \"sever\"", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("database_schema"), "{e}");
        let c = load(
            "database_url = \"postgres://u@h/db\"\ndatabase_schema = \"sever\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.database_schema.as_deref(), Some("sever"));
        let c = load(
            "",
            &[
                ("SEVER_DATABASE_URL", "postgres://u@h/db"),
                ("SEVER_DATABASE_SCHEMA", "s1"),
                ("SEVER_PREVIOUS_MASTER_KEY", "abc"),
            ],
        )
        .unwrap();
        assert_eq!(c.database_schema.as_deref(), Some("s1"));
        assert!(c.previous_master_key.is_some());
        assert_eq!(c.sqlite_synchronous, sever_store::SqliteSync::Full);
        let c = load("sqlite_synchronous = \"normal\"", &[]).unwrap();
        assert_eq!(c.sqlite_synchronous, sever_store::SqliteSync::Normal);
        let e = load("", &[("SEVER_SQLITE_SYNCHRONOUS", "off")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sqlite_synchronous"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load("[retry]\nmax_attempts = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("retry.max_attempts"), "{e}");
        let e = load("[[connectors]]\nprovider = \"salesforce\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("connectors[0] (salesforce)"), "{e}");
    }
}
