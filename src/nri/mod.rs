//! berth as an NRI runtime (the Node Resource Interface: plugins that watch and adjust pods and
//! containers over a ttrpc socket). Not finished: only the connection multiplexer of NRI's
//! plugin socket (`mux`) exists; `nri.enable: true` is refused at startup until the runtime side
//! (registration, synchronization, lifecycle events, adjustments) is in. See docs/nri.md.

pub mod mux;
