//! Sever's one integration-test binary: real `sever` processes, a real
//! database file, and the provider simulators over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod bulk;
mod bulk_api;
mod cli;
mod helpers;
mod mcp;
mod ops;
mod policy;
mod rbac;
mod recovery;
mod replicas;
mod server;
mod ui;
mod vendor_specs;
mod webhook;
