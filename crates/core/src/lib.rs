//! Sever's core: the domain, the ports adapters implement, and the engine that
//! every entry point (CLI, REST, webhook, MCP, UI) calls, so that validation,
//! durability and recovery are enforced in one place.

pub mod admin;
pub mod approvals;
pub mod bulk;
pub mod domain;
pub mod engine;
pub mod oauth;
pub mod policy;
pub mod ports;
pub mod web;

pub use domain::*;
pub use engine::{Engine, EngineError, EngineSettings, RevocationInput};
pub use ports::*;
