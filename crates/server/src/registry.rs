//! One [`Engine`] per tenant, built from the tenant's stored connectors.
//!
//! Connectors are configured over the API, so the set an engine holds can
//! change while the server runs. Each lookup compares a fingerprint of the
//! stored connectors (names, enabled flags, `updated_at`) with the one the
//! cached engine was built from and rebuilds on a difference; requests
//! already running keep the engine they started with. Provider tokens are
//! cached per tenant (keys prefixed with the tenant id), so two tenants that
//! happen to share an instance name never share a token.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sever_connectors::HttpClient;
use sever_core::admin::StoredConnector;
use sever_core::engine::EngineObserver;
use sever_core::{
    AccessToken, CallContext, Check, Clock, Connector, ConnectorKey, Engine, EngineSettings,
    ErrorClass, Failure, InstanceName, Lookup, Outcome, Sealer, Store, Subject, TenantId,
    TestReport, TokenCache, Username,
};

use crate::error::ApiError;
use crate::secrets;

/// A token cache that keeps one tenant's tokens apart from every other's.
struct TenantTokens {
    prefix: String,
    inner: Arc<dyn TokenCache>,
}

#[async_trait]
impl TokenCache for TenantTokens {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        self.inner.get(&format!("{}{key}", self.prefix)).await
    }

    async fn put(&self, key: &str, token: &AccessToken) {
        self.inner
            .put(&format!("{}{key}", self.prefix), token)
            .await
    }
}

/// A stored connector that could not be built (its secrets cannot be opened,
/// or its configuration no longer validates). It stays in the engine so a
/// request that targets it fails with the reason, instead of silently
/// skipping an app.
struct Broken {
    name: InstanceName,
    provider: ConnectorKey,
    problem: String,
}

impl Broken {
    fn failure(&self) -> Failure {
        Failure::new(
            ErrorClass::BadConfig,
            format!("connector '{}' cannot be used: {}", self.name, self.problem),
        )
    }
}

#[async_trait]
impl Connector for Broken {
    fn instance(&self) -> &InstanceName {
        &self.name
    }
    fn provider(&self) -> ConnectorKey {
        self.provider
    }
    async fn lookup(&self, _cx: &CallContext, _user: &Username) -> Result<Lookup, Failure> {
        Err(self.failure())
    }
    async fn revoke(&self, _cx: &CallContext, _subject: &Subject) -> Result<Outcome, Failure> {
        Err(self.failure())
    }
    async fn test(&self, _cx: &CallContext) -> TestReport {
        TestReport {
            checks: vec![Check {
                name: "configuration".into(),
                ok: false,
                detail: self.failure().message,
            }],
        }
    }
}

struct Cached {
    fingerprint: String,
    engine: Arc<Engine>,
}

/// What building engines needs.
pub struct Registry {
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    tokens: Arc<dyn TokenCache>,
    settings: EngineSettings,
    cache: tokio::sync::Mutex<HashMap<TenantId, Cached>>,
    /// Told of every outcome each engine records (the metrics).
    observer: Option<Arc<dyn EngineObserver>>,
}

fn fingerprint(connectors: &[StoredConnector]) -> String {
    connectors
        .iter()
        .map(|c| {
            format!(
                "{}:{}:{}",
                c.name,
                c.enabled,
                c.updated_at.timestamp_micros()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Registry {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<dyn Sealer>,
        clock: Arc<dyn Clock>,
        http: HttpClient,
        tokens: Arc<dyn TokenCache>,
        settings: EngineSettings,
    ) -> Self {
        Self {
            store,
            sealer,
            clock,
            http,
            tokens,
            settings,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            observer: None,
        }
    }

    /// Give every engine built from now on `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn EngineObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn engine_settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Build one stored connector, or a [`Broken`] stand-in saying why not.
    pub fn build(&self, c: &StoredConnector) -> Arc<dyn Connector> {
        let broken = |problem: String| -> Arc<dyn Connector> {
            Arc::new(Broken {
                name: c.name.clone(),
                provider: c.provider,
                problem,
            })
        };
        let secrets = match secrets::open_secrets(self.sealer.as_ref(), c) {
            Ok(s) => s,
            Err(e) => return broken(format!("its credentials cannot be opened ({e})")),
        };
        let full = secrets::full_config(
            c.provider.as_str(),
            &c.name,
            c.enabled,
            &secrets::settings_of(c),
            &secrets,
        );
        let cfg = match secrets::parse_config(&full) {
            Ok(cfg) => cfg,
            Err(e) => return broken(e.message),
        };
        let tokens = Arc::new(TenantTokens {
            prefix: format!("tenant:{}:", c.tenant_id),
            inner: self.tokens.clone(),
        });
        match sever_connectors::build(&cfg, &self.http, tokens) {
            Ok(conn) => conn,
            Err(e) => broken(secrets::config_error(e).message),
        }
    }

    /// The tenant's engine, rebuilt when its connectors changed.
    pub async fn engine(
        &self,
        tenant: TenantId,
        connectors: Vec<StoredConnector>,
    ) -> Result<Arc<Engine>, ApiError> {
        let fp = fingerprint(&connectors);
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(&tenant) {
            if c.fingerprint == fp {
                return Ok(c.engine.clone());
            }
        }
        let mut engine = Engine::new(self.store.clone(), self.clock.clone(), self.settings);
        if let Some(o) = &self.observer {
            engine = engine.with_observer(o.clone());
        }
        for c in &connectors {
            engine = engine.with_connector(self.build(c), c.enabled);
        }
        let engine = Arc::new(engine);
        cache.insert(
            tenant,
            Cached {
                fingerprint: fp,
                engine: engine.clone(),
            },
        );
        Ok(engine)
    }
}
