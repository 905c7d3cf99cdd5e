//! The composition root: the only place that knows every concrete type. It
//! turns a [`Config`] into a store, a sealer, a token cache, the configured
//! connectors and the engine.

use std::sync::Arc;

use sever_connectors::HttpClient;
use sever_core::policy::{Policy, PolicyResolver};
use sever_core::{Database, Engine, Sealer, Store, SystemClock};
use sever_store::{SealedTokenCache, XChaChaSealer};

use crate::config::{Config, MasterKeySource};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database {url}: {source}")]
    Store {
        url: String,
        source: sever_core::StoreError,
    },
    #[error("connector {name}: {problem}")]
    Connector { name: String, problem: String },
    /// The configured policy file cannot be read or is invalid (each
    /// problem names the file and the field).
    #[error("{0}")]
    Policy(String),
}

pub struct App {
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    /// The same database, with its admin side (tenants, keys, audit).
    pub db: Arc<dyn Database>,
    pub sealer: Arc<dyn Sealer>,
    /// The configured policy file (its path, for messages, and the policy).
    pub policy_file: Option<(String, Policy)>,
}

impl App {
    /// The policy of the CLI's own calls: the policy file, else
    /// [`Policy::permissive`] (docs/policy.md).
    pub fn cli_policy(&self) -> PolicyResolver {
        PolicyResolver::for_cli(self.policy_file.clone())
    }
}

/// The configured `policy_file`, read and checked: `None` when there is none.
pub fn load_policy(config: &Config) -> Result<Option<(String, Policy)>, AppError> {
    let Some(path) = &config.policy_file else {
        return Ok(None);
    };
    match crate::policy_cmds::load_policy_file(path) {
        Ok(p) => Ok(Some((path.display().to_string(), p))),
        Err(crate::CliError::Usage(m) | crate::CliError::Runtime(m)) => {
            Err(AppError::Policy(format!("policy_file: {m}")))
        }
    }
}

/// The sealer of the configured master key (plus the previous key, while a
/// rotation of an inline key is under way).
pub fn load_sealer(config: &Config) -> Result<XChaChaSealer, AppError> {
    let sealer = match &config.master_key {
        MasterKeySource::Inline(k) => {
            XChaChaSealer::from_base64(secrecy::ExposeSecret::expose_secret(k))
                .map_err(|e| AppError::MasterKey(format!("SEVER_MASTER_KEY / master_key: {e}")))?
        }
        MasterKeySource::File(path) => XChaChaSealer::load_or_create_key_file(path)
            .map_err(|e| AppError::MasterKey(e.to_string()))?,
    };
    match &config.previous_master_key {
        Some(k) => sealer
            .with_older_key_base64(secrecy::ExposeSecret::expose_secret(k))
            .map_err(|e| {
                AppError::MasterKey(format!(
                    "SEVER_PREVIOUS_MASTER_KEY / previous_master_key: {e}"
                ))
            }),
        None => Ok(sealer),
    }
}

/// Open (creating and migrating as needed) the configured database.
pub async fn open_database(config: &Config) -> Result<Arc<dyn Database>, AppError> {
    if sever_store::is_sqlite(&config.database_url) {
        std::fs::create_dir_all(&config.data_dir).ok();
    }
    sever_store::open_with(
        &config.database_url,
        config.database_schema.as_deref(),
        config.sqlite_synchronous,
    )
    .await
    .map_err(|source| AppError::Store {
        url: redact_url(&config.database_url),
        source,
    })
}

pub async fn build(config: &Config) -> Result<App, AppError> {
    let policy_file = load_policy(config)?;
    let sealer: Arc<dyn Sealer> = Arc::new(load_sealer(config)?);
    let db = open_database(config).await?;
    let store: Arc<dyn Store> = db.clone();
    let tokens = Arc::new(SealedTokenCache::new(store.clone(), sealer.clone()));
    let http = HttpClient::new().map_err(|e| AppError::Connector {
        name: "http".into(),
        problem: e.to_string(),
    })?;
    let mut engine = Engine::new(store.clone(), Arc::new(SystemClock), config.engine);
    for c in &config.connectors {
        let connector =
            sever_connectors::build(c, &http, tokens.clone()).map_err(|e| AppError::Connector {
                name: c
                    .instance_name()
                    .map_or_else(|_| c.provider.to_string(), |n| n.to_string()),
                problem: e.to_string(),
            })?;
        engine = engine.with_connector(connector, c.enabled);
    }
    Ok(App {
        engine: Arc::new(engine),
        store,
        db,
        sealer,
        policy_file,
    })
}

/// A database URL fit for messages: the password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:hunter2@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(super::redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
