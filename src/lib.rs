//! berth: a Kubernetes node container runtime speaking CRI v1.
//!
//! The crate is laid out as `docs/architecture.md` describes; the binaries in `src/bin/` are thin
//! wrappers over [`server`] (berthd), the shim and the operator CLI.
//!
//! `unsafe` is denied everywhere (`unsafe_code` in Cargo.toml's lints, for every target) but in
//! `sys`, the one module of thin system-call wrappers.

pub(crate) mod admin;
pub mod build;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod config;
pub mod cri;
pub mod cri_api;
pub mod devices;
pub mod error;
pub mod exec;
pub mod image;
pub mod logging;
pub mod network;
pub mod nri;
pub(crate) mod oci;
pub mod runtime;
pub mod server;
pub mod shim;
pub mod shimapi;
pub mod shimclient;
pub(crate) mod snapshot;
pub mod spec;
pub mod store;
pub mod streaming;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub mod telemetry;

/// The name berth reports in `Version`.
pub const RUNTIME_NAME: &str = "berth";

/// The name of the built-in executor's runtime handler. kubelet sends "" for the default handler;
/// both select the built-in executor.
pub const DEFAULT_HANDLER: &str = "berth";
