//! berth as an NRI runtime (the Node Resource Interface: plugins that watch and adjust pods and
//! containers over a ttrpc socket). The plugin socket's connection multiplexer (`mux`), the
//! protocol compiled from NRI's proto (`api`, `api_ttrpc`), one plugin's registration,
//! configuration and synchronization (`plugin`), the listener and plugin set (`adaptation`), the
//! lifecycle events (`hooks`, the runtime's `NriHooks` seam), adjustments applied to the OCI
//! spec (`adjust`) and the conversions of berth's records (`convert`). See docs/nri.md.

pub mod adaptation;
mod adjust;
mod checks;
mod convert;
mod error;
mod hooks;
pub mod mux;
pub mod plugin;

pub use adaptation::Adaptation;
pub use error::NriError;

/// NRI's messages (proto/nri/api.proto, rust-protobuf).
#[allow(warnings, clippy::all, clippy::pedantic)]
pub mod api {
    include!(concat!(env!("OUT_DIR"), "/nri/api.rs"));
}

/// NRI's ttrpc services: `Runtime` (berth serves it), `Plugin` (plugins serve it).
#[allow(warnings, clippy::all, clippy::pedantic)]
pub mod api_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/nri/api_ttrpc.rs"));
}
