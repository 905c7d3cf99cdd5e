//! `sever mcp`: the MCP server over stdio, for MCP clients that launch a
//! local process (Claude Desktop, Cursor, VS Code). It acts as one API key of
//! one tenant, from `SEVER_API_KEY` or `[mcp] api_key` / `api_key_file`, on
//! the same database, master key and stored connectors as `sever serve`.
//! Stdout carries the MCP protocol only; logs go to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use secrecy::ExposeSecret;
use sever_connectors::HttpClient;
use sever_core::policy::PolicyResolver;
use sever_core::SystemClock;
use sever_server::mcp::StdioError;
use sever_server::AppState;

use crate::config::Config;
use crate::{app, CliError};

/// The environment variable `sever mcp` reads its API key from first.
pub const API_KEY_ENV: &str = "SEVER_API_KEY";

pub async fn run(config: &Config) -> Result<ExitCode, CliError> {
    let key = match std::env::var(API_KEY_ENV)
        .ok()
        .filter(|k| !k.trim().is_empty())
    {
        Some(k) => k,
        None => config
            .mcp_api_key
            .as_ref()
            .map(|k| k.expose_secret().to_string())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "sever mcp needs an API key with the sessions scopes: set {API_KEY_ENV}, \
                     or api_key (or api_key_file) in [mcp] of the configuration"
                ))
            })?,
    };
    let policy = PolicyResolver::for_server(app::load_policy(config)?);
    let sealer = app::load_sealer(config)?;
    let db = app::open_database(config).await?;
    let http = HttpClient::new().map_err(|e| CliError::Runtime(e.to_string()))?;
    let mut server = config.server.clone();
    server.policy = Arc::new(policy);
    let state = AppState::new(
        db,
        Arc::new(sealer),
        Arc::new(SystemClock),
        http,
        config.engine,
        server,
    );
    sever_server::mcp::serve_stdio(state, &key)
        .await
        .map_err(|e| match e {
            StdioError::Credential(m) => CliError::Usage(m),
            StdioError::Transport(m) => CliError::Runtime(m),
        })?;
    Ok(ExitCode::SUCCESS)
}
