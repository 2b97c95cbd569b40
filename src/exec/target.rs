//! A container's process held by a pidfd, so that an exec joins exactly that process: a pid
//! alone may, once the process has exited and been reaped, name another process (a recycled
//! pid). The pidfd is opened while the process cannot have been reaped yet (it is the caller's
//! unreaped child), and the exec's helper joins its namespaces through it (`setns` with a pidfd,
//! Linux 5.8+), or fails because it has exited.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::ExecError;

/// A container's init process (or any process whose namespaces an exec joins).
#[derive(Debug)]
pub struct ContainerProcess {
    pid: i32,
    pidfd: OwnedFd,
}

impl ContainerProcess {
    /// Holds process `pid`. Call it only while `pid` is certainly that process: the caller's
    /// child (or re-parented to it) that it has not reaped.
    pub fn open(pid: i32) -> Result<ContainerProcess, ExecError> {
        let raw = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| ExecError::InvalidSpec(format!("pid {pid} is not a process id")))?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .map_err(|e| {
                let errno = nix::errno::Errno::from_raw(e.raw_os_error());
                ExecError::sys(format!("open a pidfd for process {pid}"), errno)
            })?;
        Ok(ContainerProcess { pid, pidfd })
    }

    /// Its pid (in the caller's PID namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pidfd.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// A second handle on the same process.
    pub fn try_clone(&self) -> std::io::Result<ContainerProcess> {
        Ok(ContainerProcess {
            pid: self.pid,
            pidfd: self.pidfd.try_clone()?,
        })
    }

    /// Whether the process has exited (a zombie counts: its namespaces are gone).
    pub fn has_exited(&self) -> bool {
        exited(self.pidfd.as_fd())
    }
}

/// Whether the process of `pidfd` has exited: a pidfd polls readable once it has.
pub(crate) fn exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) => n > 0 && fds[0].revents().is_some_and(|r| !r.is_empty()),
        Err(_) => false,
    }
}
