//! berth as an NRI runtime (the Node Resource Interface: plugins that watch and adjust pods and
//! containers over a ttrpc socket). Not finished: the plugin socket's connection multiplexer
//! (`mux`), the protocol compiled from NRI's proto (`api`, `api_ttrpc`) and one plugin's
//! registration, configuration and synchronization handshake (`plugin`) exist; the listener,
//! lifecycle events and adjustments do not, so `nri.enable: true` is refused at startup. See
//! docs/nri.md.

pub mod mux;
pub mod plugin;

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
