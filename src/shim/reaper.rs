//! The shim reaps every child: container processes, exec'd processes, the pause process and
//! orphans re-parented to it (it is a child subreaper). On SIGCHLD (or when an executor call
//! ends) it waits, without blocking:
//!
//! 1. for each pid no executor call owns (Created/Running containers, awaited execs) by pid;
//! 2. for any child (`waitpid(-1)`) — but only when no executor call is in flight. The
//!    executor waits for its own init helper (and, on failure, the container process) by pid;
//!    a sweep could steal that status. The executor calls hold the supervisor's gate shared, the
//!    sweep tries it exclusively and skips when it cannot, and every call wakes the reaper as it
//!    ends, so nothing stays a zombie for long.
//!
//! A container's exit is recorded (exit file, then state, then the Events broadcast); an
//! exec'd process's status goes to whoever awaits it; anything else is just reaped.

use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::Signal;

use super::state::{Container, Table};
use super::supervisor::Supervisor;
use crate::shimapi::exit_file;
use crate::shimapi::{Exit, unix_nanos_now};

/// Reaps until the process exits. `sigchld` is installed before the first child is started.
pub(crate) async fn run(sup: Arc<Supervisor>, mut sigchld: Signal) {
    loop {
        reap(&sup);
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = sup.reap_now.notified() => {}
        }
    }
}

/// One round: known pids first, then a sweep for everything else when allowed. The table stays
/// locked throughout, so nobody can signal a pid between its reaping and the record of it.
pub(crate) fn reap(sup: &Supervisor) {
    let mut table = sup.table();
    for pid in table.reapable_pids() {
        loop {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::EINTR) => continue,
                Ok(status) => route(sup, &mut table, status),
                Err(e) => tracing::debug!(pid, "waitpid: {e}"),
            }
            break;
        }
    }
    sup.try_sweep(|| {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => {}
                Ok(status) => route(sup, &mut table, status),
                Err(e) => {
                    tracing::warn!("waitpid: {e}");
                    return;
                }
            }
        }
    });
}

/// Hands one reaped child to whoever cares about it.
fn route(sup: &Supervisor, table: &mut Table, status: WaitStatus) {
    let (pid, code, signal) = match status {
        WaitStatus::Exited(pid, code) => (pid.as_raw(), Some(code), None),
        WaitStatus::Signaled(pid, signal, _) => (pid.as_raw(), None, Some(signal as i32)),
        _ => return,
    };
    let Some(status) = table.finish_exec(status) else {
        return;
    };
    if let Some(container) = table.by_pid_mut(pid) {
        let mut exit = Exit::from_status(pid.unsigned_abs(), code, signal, unix_nanos_now());
        if let Some(cgroup) = &container.cgroup {
            exit.oom_killed = cgroup.oom_killed().unwrap_or_else(|e| {
                tracing::warn!(container_id = container.id, "read oom kills: {e}");
                false
            });
        }
        record_exit(sup, container, exit);
    } else if Some(pid) == sup.pause_pid() {
        tracing::info!(pid, ?status, "pause process exited");
        sup.pause_reaped();
    } else {
        tracing::debug!(pid, ?status, "reaped a process");
    }
}

/// Makes a container's exit durable and known: the exit file, then its state, then the Events
/// broadcast (nobody listening is fine: subscribers replay exits from the table).
pub(crate) fn record_exit(sup: &Supervisor, container: &mut Container, exit: Exit) {
    // Its cgroup has been read: systemd may collect the scope once the processes are gone.
    container.hold = None;
    if let Err(e) = exit_file::write(&container.bundle, &exit) {
        tracing::error!(
            container_id = container.id,
            "write exit file in {}: {e}",
            container.bundle.display()
        );
    }
    tracing::info!(
        container_id = container.id,
        pid = exit.pid,
        exit_code = exit.exit_code,
        oom_killed = exit.oom_killed,
        "container exited"
    );
    if let Some(event) = container.record_exit(exit) {
        let _ = sup.events.send(event);
    }
}
