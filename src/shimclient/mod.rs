//! The daemon's side of a pod's shim: the seam the runtime drives ([`PodShim`],
//! [`ShimLauncher`]), its real implementation over the shim's socket ([`ShimClient`],
//! [`Launcher`]) and the shims' cgroup placement. The runtime imports shims only from here; the
//! protocol types it re-exports come from [`crate::shimapi`], and the shim process
//! ([`crate::shim`]) is never imported.

mod client;
mod launcher;
pub mod placement;
mod seam;

pub use crate::shimapi::{
    ContainerState as ShimContainer, ContainerStatus, CreateContainer, ExecOutput, Exit, ExitEvent,
    ShimInfo, ShimOptions, StreamInput, StreamOutput, StreamStart, TermSize, exit_file,
};
pub use client::{EventStream, ShimClient, ShimError, StreamInputs, StreamOutputs};
pub use launcher::Launcher;
pub use seam::{PodShim, ShimLauncher, ShimResult};
