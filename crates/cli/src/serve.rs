//! `sever serve`: the composition of the HTTP service. It opens the
//! configured database and master key, guards a SQLite file against a second
//! server, makes sure the default tenant exists on embedded defaults, binds
//! the listener, and runs [`sever_server::serve`] until Ctrl-C or SIGTERM.
//!
//! The server works from what is stored per tenant (connectors, keys,
//! switches), never from the `[[connectors]]` of `sever.toml`: those remain
//! the one-shot CLI's connectors for the default tenant. Several replicas on
//! PostgreSQL must agree on their connectors, and only the database is
//! shared between them.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use sever_connectors::HttpClient;
use sever_core::policy::PolicyResolver;
use sever_core::{Database, SystemClock, TenantId};
use sever_server::{Actor, AdminError, AppState};

use crate::config::Config;
use crate::{app, lockfile, os_user, CliError};

/// A server ready to run: its state, its bound listener, and (on SQLite)
/// the lock that keeps a second server off the database file.
pub struct Prepared {
    pub state: AppState,
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    _lock: Option<lockfile::DbLock>,
}

/// Everything `sever serve` does before serving: the master key, the
/// database (locked on SQLite, with the default tenant), the listener on
/// the first of `binds` that works (else `[server] bind`), and the state.
pub async fn prepare(config: &Config, binds: &[SocketAddr]) -> Result<Prepared, CliError> {
    // A bad policy file stops the server before it opens anything.
    let policy = PolicyResolver::for_server(app::load_policy(config)?);
    let sealer = app::load_sealer(config)?;
    let db = app::open_database(config).await?;
    // Held for the server's lifetime (as long as `Prepared` lives).
    let lock = match sever_store::sqlite_path(&config.database_url) {
        Some(path) => Some(lock_for_server(&path)?),
        None => None,
    };
    if sever_store::is_sqlite(&config.database_url) {
        ensure_default_tenant(db.as_ref()).await?;
    }
    if !config.connectors.is_empty() {
        tracing::warn!(
            count = config.connectors.len(),
            "sever serve uses the connectors stored per tenant (manage them with the API); \
             the [[connectors]] of the configuration file serve the one-shot CLI commands only"
        );
    }

    let mut server = config.server.clone();
    server.policy = Arc::new(policy);
    let candidates = if binds.is_empty() {
        vec![server.bind]
    } else {
        binds.to_vec()
    };
    let mut bound = Err(CliError::Runtime("no address to listen on".into()));
    for b in candidates {
        bound = tokio::net::TcpListener::bind(b)
            .await
            .map_err(|e| CliError::Runtime(format!("cannot listen on {b}: {e}")));
        if bound.is_ok() {
            break;
        }
    }
    let listener = bound?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Runtime(format!("cannot read the listening address: {e}")))?;
    server.bind = addr;
    let http = HttpClient::new().map_err(|e| CliError::Runtime(e.to_string()))?;
    let state = AppState::new(
        db,
        Arc::new(sealer),
        Arc::new(SystemClock),
        http,
        config.engine,
        server,
    );
    Ok(Prepared {
        state,
        listener,
        addr,
        _lock: lock,
    })
}

pub async fn run(config: &Config, bind: Option<SocketAddr>) -> Result<ExitCode, CliError> {
    let binds: Vec<SocketAddr> = bind.into_iter().collect();
    let Prepared {
        state,
        listener,
        addr,
        _lock,
    } = prepare(config, &binds).await?;

    // The first line of stdout, for people and for whoever started us on port 0.
    println!("listening on http://{addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%addr, database = %app::redact_url(&config.database_url), "sever serve started");

    sever_server::serve(listener, state, shutdown_signal())
        .await
        .map_err(|e| CliError::Runtime(format!("the server stopped: {e}")))?;
    tracing::info!("sever serve stopped");
    Ok(ExitCode::SUCCESS)
}

/// The server's lock on the SQLite file at `path`, or the message a second
/// server gets.
fn lock_for_server(path: &std::path::Path) -> Result<lockfile::DbLock, CliError> {
    lockfile::acquire(path).map_err(|e| match e {
        lockfile::LockError::Held { db, pid } => CliError::Runtime(format!(
            "another sever serve is using {}{}; stop it or use PostgreSQL for several replicas",
            db.display(),
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        )),
        other => CliError::Runtime(other.to_string()),
    })
}

/// The tenant the CLI works in, created (and audited) when missing.
pub async fn ensure_default_tenant(db: &dyn Database) -> Result<(), CliError> {
    let exists = db
        .get_tenant(TenantId::DEFAULT)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?
        .is_some();
    if exists {
        return Ok(());
    }
    let actor = Actor::cli(TenantId::DEFAULT, format!("cli:{}", os_user()));
    match sever_server::create_tenant(db, &SystemClock, Some(TenantId::DEFAULT), "default", &actor)
        .await
    {
        Ok(_) => {
            tracing::info!(tenant = %TenantId::DEFAULT, "created the default tenant");
            Ok(())
        }
        // Another process created it at the same moment.
        Err(AdminError::Conflict(_)) => Ok(()),
        Err(e) => Err(CliError::Runtime(format!(
            "cannot create the default tenant: {e}"
        ))),
    }
}

/// Completes on Ctrl-C or SIGTERM: stop accepting, finish what is in flight.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: no new requests; finishing what is in flight");
}
