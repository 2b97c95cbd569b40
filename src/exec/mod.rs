//! berth's built-in executor: creates container processes from an OCI runtime spec (what `runc
//! create`/`start`/`exec` do), for the per-pod shim.
//!
//! The caller never forks. It spawns `<berth-shim> init` (a fresh, single-threaded process) and
//! drives it over a sync socket; the helper enters the namespaces, forks the container process
//! once and exits. The container process (re-parented to the caller, a child subreaper) sets up
//! its root filesystem and credentials, reports ready, waits for start and executes the program.
//! `docs/executor.md` describes the process tree, the protocol and the order of the steps.

mod caller;
mod caps;
mod cgroupfs;
mod child;
mod devices;
mod error;
mod idmap;
mod init;
mod mount_options;
mod mounts;
mod namespaces;
mod paths;
mod process;
mod protocol;
mod resolve;
mod rootfs;
mod seccomp;
mod stdio;
mod target;
mod validate;

use std::os::fd::OwnedFd;

pub use caller::{Created, Executor};
pub use error::{ExecError, ProtocolError};
pub use init::init_main;
pub use target::ContainerProcess;

/// The container process's standard streams.
#[derive(Debug)]
pub struct Stdio {
    /// Descriptor 0; `None` gives the process `/dev/null`.
    pub stdin: Option<OwnedFd>,
    /// Descriptor 1.
    pub stdout: OwnedFd,
    /// Descriptor 2.
    pub stderr: OwnedFd,
    tty: bool,
}

impl Stdio {
    /// Separate streams (pipes, files, sockets).
    pub fn pipes(stdin: Option<OwnedFd>, stdout: OwnedFd, stderr: OwnedFd) -> Stdio {
        Stdio {
            stdin,
            stdout,
            stderr,
            tty: false,
        }
    }

    /// A terminal: the pty slave becomes descriptors 0, 1 and 2 and the controlling terminal of
    /// the process (which leads a new session).
    pub fn tty(slave: OwnedFd) -> Result<Stdio, ExecError> {
        let dup = |what| {
            slave
                .try_clone()
                .map_err(|e| ExecError::sys(format!("duplicate pty {what}"), io_errno(&e)))
        };
        Ok(Stdio {
            stdin: Some(dup("stdin")?),
            stdout: dup("stdout")?,
            stderr: slave,
            tty: true,
        })
    }

    /// Whether this is a terminal.
    pub fn is_tty(&self) -> bool {
        self.tty
    }
}

fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Makes the calling process a child subreaper (`PR_SET_CHILD_SUBREAPER`), so that container
/// processes, orphaned when their init helper exits, are re-parented to it and it can `waitpid`
/// them. Call it once, early, before creating containers.
pub fn set_child_subreaper() -> Result<(), ExecError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| ExecError::sys("set child subreaper", e))
}
