//! `berth-shim pause`: PID 1 of a pod-shared PID namespace. It reaps the orphans the kernel
//! re-parents to it and exits on SIGTERM or SIGINT (its exit makes the kernel kill everything
//! left in the namespace). PID 1 only receives signals it handles, so it blocks the ones it
//! wants and takes them with `sigwait` instead: a blocked signal is queued, not discarded.
//! Its stdin is a pipe the shim holds the other end of: when the shim dies, however, the pipe
//! hangs up and the pause process exits, so a killed shim leaves no pod PID namespace behind,
//! with whatever still ran in it.

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

/// Entry point of `berth-shim pause`; never returns.
pub fn pause_main() -> ! {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(sig);
    }
    if let Err(e) = set.thread_block() {
        fail("block signals", e);
    }
    let signals = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => fail("create a signalfd", e),
    };
    let lifeline = std::io::stdin();
    loop {
        reap_all();
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(lifeline.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => fail("poll", e),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            // The shim is gone (or wrote, which it never does).
            std::process::exit(0);
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            match signals.read_signal() {
                Ok(Some(info))
                    if [Signal::SIGTERM as u32, Signal::SIGINT as u32]
                        .contains(&info.ssi_signo) =>
                {
                    std::process::exit(0)
                }
                Ok(_) => {}
                Err(e) => fail("read the signalfd", e),
            }
        }
    }
}

fn fail(what: &str, e: nix::errno::Errno) -> ! {
    eprintln!("berth-shim pause: {what}: {e}");
    std::process::exit(1);
}

/// Reaps every exited child without blocking.
fn reap_all() {
    loop {
        match waitpid(None::<nix::unistd::Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("berth-shim pause: waitpid: {e}");
                return;
            }
        }
    }
}
