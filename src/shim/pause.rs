//! `berth-shim pause`: PID 1 of a pod-shared PID namespace. It reaps the orphans the kernel
//! re-parents to it and exits on SIGTERM or SIGINT (its exit makes the kernel kill everything
//! left in the namespace). PID 1 only receives signals it handles, so it blocks the ones it
//! wants and takes them with `sigwait` instead: a blocked signal is queued, not discarded.
//! Its stdin is a pipe the shim holds the other end of: when the shim dies, however, the pipe
//! hangs up and the pause process exits, so a killed shim leaves no pod PID namespace behind,
//! with whatever still ran in it.
//!
//! Before it reports ready (on its stdout, a pipe to whoever spawned it: `ok` or an error) it
//! closes every inherited descriptor and confines itself (`confine.rs`): an empty root of its own,
//! no privileges, not dumpable. Then it closes stdout and stderr too: it holds only its lifeline
//! and a signalfd, so nothing of the host is reachable through its `/proc/<pid>/fd`.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

/// Entry point of `berth-shim pause`; never returns.
pub fn pause_main() -> ! {
    if let Err(e) = crate::sys::fd::close_range(3, u32::MAX) {
        fail("close inherited descriptors", e);
    }
    if let Err(message) = super::confine::confine() {
        println!("{message}");
        std::process::exit(1);
    }
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
    let reported = std::io::stdout().write_all(b"ok\n");
    if let Err(e) = reported.and_then(|()| std::io::stdout().flush()) {
        eprintln!("berth-shim pause: report ready: {e}");
        std::process::exit(1);
    }
    // std's stdout and stderr treat a closed descriptor (EBADF) as a sink.
    if let Err(e) = crate::sys::fd::close_range(1, 2) {
        fail("close stdout and stderr", e);
    }
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

/// Spawns `berth-shim pause` from the calling process (which has arranged that its next child
/// starts a new PID namespace), with `lifeline` as its stdin, and waits until it has confined
/// itself. Returns its pid, or its error (the process is then reaped).
pub(crate) fn spawn(lifeline: std::io::PipeReader) -> Result<u32, String> {
    let (mut report, report_w) =
        std::io::pipe().map_err(|e| format!("create the pause report pipe: {e}"))?;
    let report_w2 = report_w
        .try_clone()
        .map_err(|e| format!("create the pause report pipe: {e}"))?;
    // The command (and with it our copies of the pipe's write end) is gone once spawned.
    let mut child = std::process::Command::new("/proc/self/exe")
        .arg0("berth-shim")
        .arg("pause")
        .stdin(lifeline)
        .stdout(report_w)
        .stderr(report_w2)
        .spawn()
        .map_err(|e| format!("spawn the pause process: {e}"))?;
    let mut text = String::new();
    let read = report.read_to_string(&mut text);
    if read.is_ok() && text == "ok\n" {
        return Ok(child.id());
    }
    let _ = child.kill();
    let _ = child.wait();
    match read {
        Ok(_) => Err(format!("the pause process failed: {}", text.trim())),
        Err(e) => Err(format!("read the pause process's report: {e}")),
    }
}
