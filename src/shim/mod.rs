//! The per-pod shim (`berth-shim serve`) and its client.
//!
//! One shim runs per pod. It detaches from berthd, pins the pod's namespaces (it lives in the
//! network, IPC and UTS ones itself; a pod-shared PID namespace gets a pause process as init),
//! creates the pod's containers with the built-in executor, reaps them as a child subreaper,
//! writes their output to CRI log files and their exits to `<bundle>/exit`, and serves berthd the
//! protocol in `proto/berth/shim/v1/shim.proto` on `<pod dir>/shim.sock`. It keeps running, and
//! the containers with it, while berthd is down. `docs/shim.md` describes it in full.
//!
//! The daemon side is [`client::ShimClient`].

pub(crate) mod adapter;
mod args;
mod attach;
pub mod client;
mod confine;
mod containers;
mod convert;
mod daemon;
mod error;
mod exec_stream;
mod exec_sync;
pub mod exit_file;
mod io;
mod logs;
mod pause;
mod pins;
pub mod placement;
mod reaper;
mod runner;
mod serve;
mod service;
mod shutdown;
mod state;
mod supervisor;
mod types;
mod userns;

pub use args::{Cli, Command, ServeArgs};
pub use client::{ShimClient, ShimError};
pub use daemon::serve_main;
pub use error::{ContainerError, StartupError};
pub use pause::pause_main;
pub use types::{
    ContainerState, ContainerStatus, CreateContainer, EXEC_OUTPUT_LIMIT, EXEC_TIMEOUT_EXIT_CODE,
    ExecOutput, Exit, ExitEvent, START_ERROR_EXIT_CODE, ShimInfo, ShimOptions, StreamInput,
    StreamOutput, StreamStart, TermSize,
};

/// The generated protocol types, client and server (`proto/berth/shim/v1/shim.proto`).
pub mod proto {
    tonic::include_proto!("berth.shim.v1");
}

/// The shim's socket in the pod directory.
pub const SOCKET: &str = "shim.sock";
/// The shim's pid, written before it reports ready.
pub const PID_FILE: &str = "shim.pid";
/// The shim's own log (its stdout and stderr).
pub const LOG: &str = "shim.log";
/// The directory of namespace pins in the pod directory.
pub const NS_DIR: &str = "ns";
