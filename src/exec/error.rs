//! The executor's errors: [`ExecError`] for callers, [`StepError`] for a failed setup step inside
//! the init helper or the container process (sent back to the caller as text).

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitStatus;

use nix::errno::Errno;

/// Everything [`Executor`](super::Executor) and [`Created`](super::Created) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec asks for something that is contradictory or malformed.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The spec asks for a feature the built-in executor does not implement yet.
    #[error("not supported by the built-in executor yet: {0}")]
    Unsupported(String),
    /// The caller would not be able to reap the container process.
    #[error("the calling process is not a child subreaper: call exec::set_child_subreaper() first")]
    NotSubreaper,
    /// A system call made by the caller itself failed.
    #[error("{action}: {source}")]
    Sys {
        /// What was being done.
        action: String,
        /// The error number.
        source: Errno,
    },
    /// An id-mapped bind mount of a filesystem that cannot be id-mapped (`mount_setattr` answers
    /// `EINVAL`: NFS and most network filesystems, or a kernel too old for this one).
    #[error(
        "mount {}: {} is on {filesystem}, which does not support id-mapped mounts on this kernel",
        destination.display(),
        path.display()
    )]
    IdmapUnsupported {
        /// The mount's destination in the container.
        destination: PathBuf,
        /// Its source on the host.
        path: PathBuf,
        /// The source's filesystem type.
        filesystem: String,
    },
    /// The init helper could not be started.
    #[error("start init helper {}: {source}", binary.display())]
    SpawnInit {
        /// The binary that was run as `<binary> init`.
        binary: PathBuf,
        /// Why it could not be run.
        source: std::io::Error,
    },
    /// Talking to the init helper or the container process failed.
    #[error("sync with the container process: {0}")]
    Protocol(#[from] ProtocolError),
    /// The init helper exited without reporting the container's pid.
    #[error("init helper exited with {0} before reporting the container pid")]
    InitDied(ExitStatus),
    /// The container process exited during setup without reporting why.
    #[error("container process {0} exited during setup without reporting an error")]
    ContainerDied(i32),
    /// A setup step in the init helper or the container process failed, e.g.
    /// `mount proc on /proc: EPERM: Operation not permitted`.
    #[error("create container: {0}")]
    Setup(String),
    /// The container process could not execute its program.
    #[error("start container: {0}")]
    Start(String),
    /// The process an exec was to join has exited (its pid may name another process by now).
    #[error("exec in container process {0}: it has exited")]
    ContainerExited(i32),
    /// The caller's `on_pid` hook failed; the process was killed.
    #[error("prepare container process {pid}: {message}")]
    Hook {
        /// The container process that was killed.
        pid: i32,
        /// The hook's error.
        message: String,
    },
}

impl ExecError {
    pub(crate) fn sys(action: impl Into<String>, source: Errno) -> ExecError {
        ExecError::Sys {
            action: action.into(),
            source,
        }
    }
}

/// The sync channel broke or carried something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading or writing the socket failed.
    #[error("socket i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Passing descriptors failed.
    #[error("pass file descriptors: {0}")]
    Fds(Errno),
    /// A message could not be encoded or decoded.
    #[error("message encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// A frame announced a length over the limit.
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The peer sent a message that does not fit the current step.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// The peer closed the channel before the expected message.
    #[error("peer closed the channel")]
    Closed,
}

/// One failed setup step, with what was being done: `mount proc on /proc: EPERM: ...`.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {cause}")]
pub struct StepError {
    context: String,
    cause: String,
}

impl StepError {
    /// A step error whose cause is described in words.
    pub fn new(context: impl Into<String>, cause: impl Display) -> StepError {
        StepError {
            context: context.into(),
            cause: cause.to_string(),
        }
    }
}

/// Attaches what was being done to an error.
pub trait Context<T> {
    /// Wraps the error with the context `f()` builds.
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T, StepError>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T, StepError> {
        self.map_err(|e| StepError::new(f(), e))
    }
}
