//! The shim process's errors: [`StartupError`] before it serves (sent to the waiting parent and
//! from there to `ShimClient::spawn`), [`ContainerError`] for a refused or failed request (made a
//! gRPC status by `crate::error::to_status`).

use std::path::PathBuf;

use nix::errno::Errno;

use crate::cgroup::CgroupError;
use crate::error::{Classify, Kind};
use crate::exec::ExecError;

/// Why the shim could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A system call of the startup sequence failed.
    #[error("{action}: {source}")]
    Sys {
        /// What was being done, with the object: `unshare net namespace`.
        action: String,
        /// The error number.
        source: Errno,
    },
    /// A file of the pod directory could not be written or read.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another shim already serves this pod directory.
    #[error("{}: another shim is serving this pod", socket.display())]
    AlreadyServing {
        /// The socket a live process answers on.
        socket: PathBuf,
    },
    /// A namespace pin of an earlier shim is still there.
    #[error("{}: a namespace pin already exists (unmount and remove it first)", path.display())]
    StalePin {
        /// The pin file.
        path: PathBuf,
    },
    /// The shim could not become a child subreaper.
    #[error(transparent)]
    Subreaper(#[from] ExecError),
    /// The SIGCHLD handler could not be installed.
    #[error("install the SIGCHLD handler: {0}")]
    Sigchld(std::io::Error),
    /// The tokio runtime could not be built.
    #[error("build the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The pod's user namespace could not be created (forking or running its helper).
    #[error("create the pod user namespace: {0}")]
    UserNamespace(String),
    /// The pause process could not be started or could not confine itself.
    #[error("start the pause process: {0}")]
    Pause(String),
}

impl StartupError {
    pub(crate) fn sys(action: impl Into<String>, source: Errno) -> StartupError {
        StartupError::Sys {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StartupError {
        let path = path.into();
        move |source| StartupError::Io {
            action,
            path,
            source,
        }
    }
}

/// Why a container request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container has this id.
    #[error("container {0}: not found")]
    NotFound(String),
    /// A container with this id exists already.
    #[error("container {0}: already exists")]
    AlreadyExists(String),
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The container is not in a state that allows the request.
    #[error("container {id}: cannot {action} a container that is {state}")]
    WrongState {
        /// The container.
        id: String,
        /// What was asked: `start`, `exec in`, `delete`.
        action: &'static str,
        /// Where it is: `created`, `starting`, `running`, `exited`.
        state: &'static str,
    },
    /// The bundle's `config.json` could not be read or parsed.
    #[error("container {id}: read {}: {message}", path.display())]
    Spec {
        /// The container.
        id: String,
        /// The config file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The built-in executor failed.
    #[error("container {id}: {source}")]
    Exec {
        /// The container.
        id: String,
        /// Its error.
        source: ExecError,
    },
    /// The external OCI runtime (runc, crun) failed; its message names the container.
    #[error("{source}")]
    Runtime {
        /// The container.
        id: String,
        /// The runtime's error, with its own message.
        source: crate::oci::OciError,
    },
    /// Joining, reading or signalling the container's cgroup failed.
    #[error("container {id}: {source}")]
    Cgroup {
        /// The container.
        id: String,
        /// Its error.
        source: CgroupError,
    },
    /// Setting up the container's stdio or log failed.
    #[error("container {id}: {action}: {source}")]
    Io {
        /// The container.
        id: String,
        /// What was being done: `open log /var/log/pods/...`.
        action: String,
        /// Why.
        source: std::io::Error,
    },
    /// Signalling a process failed.
    #[error("container {id}: send signal {signal} to pid {pid}: {source}")]
    Signal {
        /// The container.
        id: String,
        /// The signal number.
        signal: i32,
        /// The process.
        pid: i32,
        /// The error number.
        source: Errno,
    },
    /// A process did not exit in time after SIGKILL.
    #[error("container {id}: pid {pid} did not exit within {seconds}s of SIGKILL")]
    KillTimeout {
        /// The container.
        id: String,
        /// The process.
        pid: i32,
        /// How long the shim waited.
        seconds: u64,
    },
    /// Shutdown could not remove a namespace pin or kill the pause process.
    #[error("remove the pod's namespace pins: {0}")]
    Pins(#[source] StartupError),
    /// The shim is shutting down and takes no new work.
    #[error("the shim is shutting down")]
    ShuttingDown,
    /// A blocking task of the shim died (a bug).
    #[error("internal: {0}")]
    Internal(String),
}

impl Classify for ContainerError {
    fn kind(&self) -> Kind {
        match self {
            ContainerError::NotFound(_) => Kind::NotFound,
            ContainerError::AlreadyExists(_) => Kind::AlreadyExists,
            ContainerError::InvalidArgument(_) => Kind::InvalidArgument,
            ContainerError::WrongState { .. } | ContainerError::ShuttingDown => {
                Kind::FailedPrecondition
            }
            ContainerError::Spec { .. } => Kind::InvalidArgument,
            ContainerError::Exec { source, .. } => exec_kind(source),
            ContainerError::Cgroup { source, .. } => source.kind(),
            ContainerError::Runtime { source, .. } => source.kind(),
            ContainerError::KillTimeout { .. } => Kind::DeadlineExceeded,
            ContainerError::Io { .. }
            | ContainerError::Signal { .. }
            | ContainerError::Pins(_)
            | ContainerError::Internal(_) => Kind::Internal,
        }
    }
}

impl From<crate::oci::OciError> for ContainerError {
    fn from(source: crate::oci::OciError) -> ContainerError {
        ContainerError::Runtime {
            id: source.id.clone(),
            source,
        }
    }
}

/// The executor's errors by what the caller can do about them.
fn exec_kind(e: &ExecError) -> Kind {
    match e {
        ExecError::InvalidSpec(_) => Kind::InvalidArgument,
        ExecError::Unsupported(_) => Kind::Unimplemented,
        ExecError::ContainerExited(_) | ExecError::IdmapUnsupported { .. } => {
            Kind::FailedPrecondition
        }
        _ => Kind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::to_status;

    #[test]
    fn codes_say_what_happened() {
        let code = |e: ContainerError| to_status(&e).code();
        assert_eq!(
            code(ContainerError::NotFound("c".into())),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(ContainerError::AlreadyExists("c".into())),
            tonic::Code::AlreadyExists
        );
        let wrong = ContainerError::WrongState {
            id: "c".into(),
            action: "start",
            state: "running",
        };
        assert_eq!(
            wrong.to_string(),
            "container c: cannot start a container that is running"
        );
        assert_eq!(code(wrong), tonic::Code::FailedPrecondition);
        let unsupported = ContainerError::Exec {
            id: "c".into(),
            source: ExecError::Unsupported("seccomp".into()),
        };
        assert_eq!(code(unsupported), tonic::Code::Unimplemented);
    }
}
