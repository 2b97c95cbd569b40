//! The per-pod shim process (`berth-shim serve`).
//!
//! One shim runs per pod. It detaches from berthd, pins the pod's namespaces (it lives in the
//! network, IPC and UTS ones itself; a pod-shared PID namespace gets a pause process as init),
//! creates the pod's containers with the built-in executor, reaps them as a child subreaper,
//! writes their output to CRI log files and their exits to `<bundle>/exit`, and serves berthd the
//! protocol in `proto/berth/shim/v1/shim.proto` on `<pod dir>/shim.sock`. It keeps running, and
//! the containers with it, while berthd is down. `docs/shim.md` describes it in full.
//!
//! Only the binary's entry points are public: the daemon's side is [`crate::shimclient`], the
//! protocol both speak is [`crate::shimapi`], and this module imports neither the runtime nor the
//! client (`boundaries` checks).

mod attach;
#[cfg(test)]
mod boundaries;
mod confine;
mod containers;
mod daemon;
mod error;
mod exec_stream;
mod exec_sync;
mod hold;
mod io;
mod logs;
mod pause;
mod pins;
mod reaper;
mod runner;
mod serve;
mod service;
mod shutdown;
mod state;
mod supervisor;
mod userns;

pub use crate::shimapi::{Cli, Command, ServeArgs};
pub use daemon::serve_main;
pub use error::{ContainerError, StartupError};
pub use hold::hold_main;
pub use pause::pause_main;
