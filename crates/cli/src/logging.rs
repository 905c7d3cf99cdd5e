//! Logs of `sever serve`: JSON lines (one object per event, with the HTTP
//! request's id from its `http` span) for a log collector, or text for a
//! person at a terminal. `[server] log_format` chooses; by default JSON
//! unless the log stream (stderr) is a terminal. `SEVER_LOG` (an
//! `EnvFilter`, e.g. `info,sever::http=warn`) overrides the level, which is
//! `info` (`debug` with `-v`).
//!
//! What is logged never includes a secret: handlers log ids, names and
//! error messages, the access log has no query strings or headers, and
//! every secret type in Sever (`SecretString`, sealed values) prints as
//! redacted.

use std::io::IsTerminal;

/// How `sever serve` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => None,
        }
    }

    /// `configured`, else JSON unless stderr is a terminal.
    pub fn resolve(configured: Option<LogFormat>) -> LogFormat {
        configured.unwrap_or_else(|| {
            if std::io::stderr().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            }
        })
    }
}

/// Install the global subscriber for a long-running service.
pub fn init_service(format: LogFormat, verbose: u8) {
    let default = if verbose == 0 { "info" } else { "debug" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
    // Already installed (a test calling twice): keep the first.
    let _ = installed;
}
