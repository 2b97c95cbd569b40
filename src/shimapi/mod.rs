//! The protocol between berthd and a pod's shim, shared by both sides and depending on neither:
//! the generated gRPC types (`proto/berth/shim/v1/shim.proto`), the domain types both sides
//! speak, the translations between them, the `berth-shim serve` command line and the exit file.
//!
//! The shim process is [`crate::shim`]; the daemon's side is [`crate::shimclient`]. Neither
//! imports the other, nor does this module import either (`boundaries` in `crate::shim` checks).

pub mod args;
pub(crate) mod convert;
pub mod exit_file;
mod types;

pub use args::{Cli, Command, ServeArgs};
pub use types::{
    ContainerState, ContainerStatus, CreateContainer, EXEC_OUTPUT_LIMIT, EXEC_TIMEOUT_EXIT_CODE,
    ExecOutput, Exit, ExitEvent, START_ERROR_EXIT_CODE, ShimInfo, ShimOptions, StreamInput,
    StreamOutput, StreamStart, TermSize, unix_nanos_now,
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
