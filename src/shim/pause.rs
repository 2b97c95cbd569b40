//! `berth-shim pause`: PID 1 of a pod-shared PID namespace. It reaps the orphans the kernel
//! re-parents to it and exits on SIGTERM or SIGINT (its exit makes the kernel kill everything
//! left in the namespace). PID 1 only receives signals it handles, so it blocks the ones it
//! wants and takes them with `sigwait` instead: a blocked signal is queued, not discarded.
//! It dies with the shim that started it (parent-death signal SIGKILL): a shim that was killed
//! leaves no pod PID namespace behind, with whatever still ran in it.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

/// Entry point of `berth-shim pause`; never returns.
pub fn pause_main() -> ! {
    // The shim forked it from its main thread, which lives as long as the shim does.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        eprintln!("berth-shim pause: set the parent-death signal: {e}");
        std::process::exit(1);
    }
    let mut set = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(sig);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("berth-shim pause: block signals: {e}");
        std::process::exit(1);
    }
    loop {
        reap_all();
        match set.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT) => std::process::exit(0),
            Ok(_) => {}
            Err(e) => {
                eprintln!("berth-shim pause: wait for signals: {e}");
                std::process::exit(1);
            }
        }
    }
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
