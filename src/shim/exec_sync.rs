//! CRI ExecSync: runs a command in a running container with the container's own process
//! settings (env, cwd, user, capabilities, no_new_privs, rlimits) and its cgroup, collects its
//! output (at most [`EXEC_OUTPUT_LIMIT`] bytes per stream) and its exit status from the reaper,
//! and SIGKILLs it when the timeout passes.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};

use super::error::ContainerError;
use super::io::Source;
use super::runner::Target;
use super::state::Phase;
use super::supervisor::Supervisor;
use crate::exec::Stdio;
use crate::shimapi::{EXEC_OUTPUT_LIMIT, EXEC_TIMEOUT_EXIT_CODE, ExecOutput};

/// How long output is still read after the process exited (a child it left behind may hold
/// the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Runs `args` in container `id`; `timeout` zero means none.
pub(crate) async fn exec_sync(
    sup: &Arc<Supervisor>,
    id: &str,
    args: Vec<String>,
    timeout: Duration,
) -> Result<ExecOutput, ContainerError> {
    let pipe_err = |source| ContainerError::Io {
        id: id.to_string(),
        action: "create exec pipes".into(),
        source,
    };
    let (out_r, out_w) = std::io::pipe().map_err(pipe_err)?;
    let (err_r, err_w) = std::io::pipe().map_err(pipe_err)?;
    let stdio = Stdio::pipes(None, out_w.into(), err_w.into());
    let (pid, status_rx, _) = spawn_exec(sup, id, args, stdio).await?;
    Ok(finish(sup, pid, [out_r.into(), err_r.into()], status_rx, timeout).await)
}

/// The one way the shim starts a process in a running container (ExecSync, Exec): `args`
/// with the container's own process settings (env, cwd, user, capabilities, no_new_privs,
/// rlimits), in its namespaces and cgroup, on `stdio` (a terminal when `stdio` is a tty).
/// Returns its pid, where the reaper sends its wait status, and the master side of its terminal
/// when the runtime made the terminal itself (then `stdio`'s is unused).
pub(crate) async fn spawn_exec(
    sup: &Arc<Supervisor>,
    id: &str,
    args: Vec<String>,
    stdio: Stdio,
) -> Result<(i32, oneshot::Receiver<WaitStatus>, Option<OwnedFd>), ContainerError> {
    if args.is_empty() {
        let message = "exec: no command given".to_string();
        return Err(ContainerError::InvalidArgument(message));
    }
    let (container_process, bundle, runner, mut process, seccomp, cgroup, exact_env) = {
        let table = sup.table();
        if table.closing {
            return Err(ContainerError::ShuttingDown);
        }
        let container = table.get(id)?;
        if !matches!(container.phase, Phase::Running) {
            return Err(container.wrong_state("exec in"));
        }
        let process = container.process.clone();
        let runner = container.runner.clone();
        let bundle = container.bundle.clone();
        let seccomp = container.seccomp.clone();
        let cgroup = container.cgroup.clone();
        let exact_env = container.exact_env.clone();
        let init = container
            .init
            .as_ref()
            .ok_or_else(|| container.wrong_state("exec in"))?;
        let init = init.try_clone().map_err(|e| ContainerError::Exec {
            id: id.to_string(),
            source: crate::exec::ExecError::sys(
                "duplicate the container's pidfd",
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            ),
        })?;
        (init, bundle, runner, process, seccomp, cgroup, exact_env)
    };
    process.set_args(Some(args));
    process.set_terminal(Some(stdio.is_tty()));
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    process.set_console_size(None);

    let (status_tx, status_rx) = oneshot::channel();
    let owned_id = id.to_string();
    let (pid, terminal) = sup
        .blocking(move |sup| {
            let target = Target {
                process: &container_process,
                bundle: &bundle,
                cgroup: cgroup.as_ref(),
                seccomp: seccomp.as_ref(),
                exact_env: exact_env.as_deref(),
            };
            let (pid, terminal) = runner.exec(&owned_id, target, &process, stdio)?;
            // Registered before the gate opens: the reaper routes its status here.
            sup.table().await_exec(pid, status_tx);
            Ok::<_, ContainerError>((pid, terminal))
        })
        .await??;
    Ok((pid, status_rx, terminal))
}

/// Collects the output of a started exec and waits for its status (killing it on timeout).
async fn finish(
    sup: &Supervisor,
    pid: i32,
    [out, err]: [OwnedFd; 2],
    status_rx: oneshot::Receiver<WaitStatus>,
    timeout: Duration,
) -> ExecOutput {
    let mut guard = KillOnDrop {
        sup,
        pid,
        armed: true,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stdout = tokio::spawn(collect(out, stop_rx.clone()));
    let stderr = tokio::spawn(collect(err, stop_rx));
    let (status, timed_out) = wait(sup, pid, status_rx, timeout).await;
    guard.armed = false;
    let output = async {
        (
            stdout.await.unwrap_or_default(),
            stderr.await.unwrap_or_default(),
        )
    };
    let stopper = async {
        tokio::time::sleep(OUTPUT_GRACE).await;
        stop_tx.send_replace(true);
    };
    tokio::pin!(output);
    let (stdout, stderr) = tokio::select! {
        out = &mut output => out,
        () = stopper => output.await,
    };
    let exit_code = match (timed_out, status) {
        (false, Some(WaitStatus::Exited(_, code))) => code,
        (false, Some(WaitStatus::Signaled(_, signal, _))) => 128 + signal as i32,
        // Timed out, or the status was lost (cannot happen while the reaper runs).
        _ => EXEC_TIMEOUT_EXIT_CODE,
    };
    ExecOutput {
        stdout,
        stderr,
        exit_code,
        timed_out,
    }
}

/// Kills the exec'd process when the RPC is dropped (the caller went away) before it exited.
struct KillOnDrop<'a> {
    sup: &'a Supervisor,
    pid: i32,
    armed: bool,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            kill_if_pending(self.sup, self.pid);
        }
    }
}

/// SIGKILLs an exec'd process, only while the reaper has not taken it: the pid is still ours.
pub(crate) fn kill_if_pending(sup: &Supervisor, pid: i32) {
    let table = sup.table();
    if table.exec_pending(pid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Waits for the reaper to hand over the exec's status; SIGKILLs the process once `timeout`
/// (when not zero) passes. Returns the status and whether it timed out.
async fn wait(
    sup: &Supervisor,
    pid: i32,
    mut status: oneshot::Receiver<WaitStatus>,
    timeout: Duration,
) -> (Option<WaitStatus>, bool) {
    if timeout.is_zero() {
        return (status.await.ok(), false);
    }
    match tokio::time::timeout(timeout, &mut status).await {
        Ok(result) => (result.ok(), false),
        Err(_) => {
            kill_if_pending(sup, pid);
            (status.await.ok(), true)
        }
    }
}

/// Reads a stream to its end, or until `stop` once nothing more is ready. Keeps the first
/// [`EXEC_OUTPUT_LIMIT`] bytes and drops the rest.
async fn collect(fd: OwnedFd, mut stop: watch::Receiver<bool>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Ok(mut source) = Source::pipe(fd) else {
        return kept;
    };
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        tokio::select! {
            biased;
            read = source.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = EXEC_OUTPUT_LIMIT - kept.len();
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    kept
}
