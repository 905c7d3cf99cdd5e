//! Sever's provider adapters: one [`Connector`](sever_core::Connector) per
//! identity provider or SaaS app, built from typed configuration.
//!
//! The five connectors share one HTTP client, one retry/classification loop
//! ([`http`]) and one token machinery ([`token`]), so that timeouts,
//! `Retry-After`, error classes, attempt records and secret hygiene behave the
//! same everywhere and each provider module only states what is peculiar to
//! that provider's API.

mod config;
mod entra;
mod google_workspace;
mod http;
mod miro;
mod okta;
pub mod pacing;
mod slack_enterprise;
mod token;

pub use config::{build, ConfigError, ConnectorConfig};
pub use http::HttpClient;
pub use token::MemoryTokenCache;

#[cfg(test)]
mod tests;
