//! The container operations: create, start, signal, delete, reopen the log, and kill them all
//! for Shutdown. The phases they move through are drawn in `state.rs`.

use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use tokio::sync::watch;

use super::error::ContainerError;
use super::io;
use super::reaper::record_exit;
use super::runner;
use super::state::{Container, Phase};
use super::supervisor::Supervisor;
use crate::shimapi::{CreateContainer, Exit, START_ERROR_EXIT_CODE, unix_nanos_now};

/// How long a SIGKILLed container may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long a deleted container's log tasks may take to log what is left in its pipes.
const LOG_DRAIN: Duration = Duration::from_secs(1);

/// Creates a container process from `<bundle>/config.json`, stopped before exec. Returns its pid.
pub(crate) async fn create(
    sup: &Arc<Supervisor>,
    req: CreateContainer,
) -> Result<u32, ContainerError> {
    check_id(&req.id)?;
    sup.table().reserve(&req.id)?;
    let reservation = Reservation {
        sup: sup.clone(),
        id: req.id.clone(),
    };
    create_reserved(sup, req, reservation).await
}

/// An id reserved for a create in flight. Released when dropped: by the blocking task once it
/// has inserted the container (or failed), even when the RPC itself was cancelled meanwhile.
struct Reservation {
    sup: Arc<Supervisor>,
    id: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.sup.table().release(&self.id);
    }
}

async fn create_reserved(
    sup: &Arc<Supervisor>,
    req: CreateContainer,
    reservation: Reservation,
) -> Result<u32, ContainerError> {
    let id = req.id.clone();
    let config = req.bundle.join("config.json");
    let spec = Spec::load(&config).map_err(|e| ContainerError::Spec {
        id: id.clone(),
        path: config.clone(),
        message: e.to_string(),
    })?;
    let process = spec.process().clone().ok_or_else(|| ContainerError::Spec {
        id: id.clone(),
        path: config,
        message: "process is missing".into(),
    })?;
    let cgroup = match req.cgroup.as_deref() {
        Some(path) => Some(sup.cgroup(path).map_err(|source| ContainerError::Cgroup {
            id: id.clone(),
            source,
        })?),
        None => None,
    };
    let (stdio, mut pending) = io::prepare(req.log_path.as_deref(), req.stdin, req.tty)
        .map_err(|source| io_error(&id, "set up stdio and log", source))?;
    let (exit_tx, _) = watch::channel(None);
    let runner = runner::for_request(&sup.executor, req.runtime.clone());
    let mut container = Container {
        id: id.clone(),
        bundle: req.bundle.clone(),
        pid: 0,
        init: None,
        phase: Phase::Starting,
        started_at: 0,
        cgroup,
        process,
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        exact_env: spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(crate::spec::raw_env::ANNOTATION))
            .and_then(|v| crate::spec::raw_env::decode(v)),
        io: None,
        exit_tx,
        runner: runner.clone(),
        hold: None,
    };
    sup.blocking(move |sup| {
        // The container enters the table before the gate opens, so the reaper knows its pid.
        let mut created =
            runner.create(&id, &req.bundle, &spec, stdio, container.cgroup.as_ref())?;
        if let Some(master) = created.take_terminal() {
            pending
                .use_terminal(master)
                .map_err(|source| io_error(&id, "take the runtime's terminal", source))?;
        }
        // Dropping `created` on failure ends the process.
        let mut io = pending
            .start(&id)
            .map_err(|source| io_error(&id, "start log forwarding", source))?;
        io.stdin_once = req.stdin_once;
        let pid = created.pid();
        // Not reaped yet: the reaper only learns of it from the table.
        let init =
            crate::exec::ContainerProcess::open(pid).map_err(|source| ContainerError::Exec {
                id: id.clone(),
                source,
            })?;
        container.hold = hold_scope(&id, container.cgroup.as_ref());
        container.pid = pid;
        container.init = Some(init);
        container.phase = Phase::Created(created);
        container.io = Some(io);
        sup.table().insert(container);
        drop(reservation);
        tracing::info!(container_id = id, pid, "container created");
        Ok(pid.unsigned_abs())
    })
    .await?
}

/// A hold on the container's cgroup when systemd would remove it as soon as the container's
/// processes are gone (`hold.rs`). Without one the container still runs; only an OOM kill may
/// then go unreported, so a failure is logged, not returned.
fn hold_scope(id: &str, cgroup: Option<&crate::cgroup::Cgroup>) -> Option<super::hold::Hold> {
    let cgroup = cgroup.filter(|c| c.removed_when_empty())?;
    match super::hold::spawn(cgroup) {
        Ok(hold) => {
            tracing::debug!(container_id = id, pid = hold.pid(), "holding the scope");
            Some(hold)
        }
        Err(e) => {
            tracing::warn!(
                container_id = id,
                "no hold on {}: an OOM kill may be reported as Error: {e}",
                cgroup.path()
            );
            None
        }
    }
}

/// Lets a created container execute its program.
pub(crate) async fn start(sup: &Arc<Supervisor>, id: &str) -> Result<(), ContainerError> {
    let created = {
        let mut table = sup.table();
        if table.closing {
            return Err(ContainerError::ShuttingDown);
        }
        let container = table.get_mut(id)?;
        match std::mem::replace(&mut container.phase, Phase::Starting) {
            Phase::Created(created) => created,
            other => {
                container.phase = other;
                return Err(container.wrong_state("start"));
            }
        }
    };
    let owned_id = id.to_string();
    let result = sup
        .blocking(move |sup| {
            let pid = created.pid();
            let result = created.start();
            let mut table = sup.table();
            let Ok(container) = table.get_mut(&owned_id) else {
                return result;
            };
            match &result {
                Ok(()) if matches!(container.phase, Phase::Starting) => {
                    container.phase = Phase::Running;
                    container.started_at = unix_nanos_now();
                }
                Ok(()) => {}
                // The executor reaped the process; record the start error as its exit.
                Err(_) => {
                    let exit = Exit {
                        exit_code: START_ERROR_EXIT_CODE,
                        signal: 0,
                        finished_at: unix_nanos_now(),
                        oom_killed: false,
                        pid: pid.unsigned_abs(),
                    };
                    record_exit(sup, container, exit);
                }
            }
            result
        })
        .await?;
    result?;
    tracing::info!(container_id = id, "container started");
    Ok(())
}

/// Sends `signal` to the container's init process, or with `all` to every process of its cgroup
/// (the init only, when it has no cgroup). An exited container is not an error.
pub(crate) async fn signal(
    sup: &Supervisor,
    id: &str,
    signal: i32,
    all: bool,
) -> Result<(), ContainerError> {
    let sig = match signal {
        0 => None,
        n => Some(Signal::try_from(n).map_err(|_| {
            ContainerError::InvalidArgument(format!("signal {n} is not a valid signal number"))
        })?),
    };
    let cgroup = {
        // The reaper records exits under this lock, so a live pid here is still ours.
        let table = sup.table();
        let container = table.get(id)?;
        if !container.phase.alive() {
            return Ok(());
        }
        match (all, &container.cgroup, sig) {
            (true, Some(cgroup), Some(sig)) => (cgroup.clone(), sig),
            _ => {
                return match kill(Pid::from_raw(container.pid), sig) {
                    Ok(()) | Err(Errno::ESRCH) => Ok(()),
                    Err(source) => Err(ContainerError::Signal {
                        id: id.to_string(),
                        signal,
                        pid: container.pid,
                        source,
                    }),
                };
            }
        }
    };
    let (cgroup, sig) = cgroup;
    // kill_all may freeze the cgroup for a while: not on the runtime thread.
    tokio::task::spawn_blocking(move || cgroup.kill_all(sig))
        .await
        .map_err(|e| ContainerError::Internal(format!("signal task: {e}")))?
        .map_err(|source| ContainerError::Cgroup {
            id: id.to_string(),
            source,
        })
}

/// Forgets a container: SIGKILLs it and waits for the reaper when it is still alive, then closes
/// its stdio (after logging what is left in the pipes).
pub(crate) async fn delete(sup: &Arc<Supervisor>, id: &str) -> Result<(), ContainerError> {
    {
        let table = sup.table();
        let container = table.get(id)?;
        if matches!(container.phase, Phase::Starting) {
            return Err(container.wrong_state("delete"));
        }
    }
    kill_and_wait(sup, id).await?;
    delete_in_runner(sup, id).await?;
    let container = sup.table().remove(id);
    if let Some(io) = container.and_then(|c| c.io) {
        io.close(LOG_DRAIN).await;
    }
    tracing::info!(container_id = id, "container deleted");
    Ok(())
}

/// Lets the container's runner forget it (an external runtime's state and cgroup); its process
/// must be gone. Under the reaper's gate: the runtime's CLI is a child the shim waits for.
pub(crate) async fn delete_in_runner(
    sup: &Arc<Supervisor>,
    id: &str,
) -> Result<(), ContainerError> {
    let runner = sup.table().get(id)?.runner.clone();
    let owned_id = id.to_string();
    sup.blocking(move |_| runner.delete(&owned_id)).await?
}

/// SIGKILLs a live container (every process of its cgroup too) and waits until it is reaped.
pub(crate) async fn kill_and_wait(sup: &Supervisor, id: &str) -> Result<(), ContainerError> {
    let (mut exited, pid, cgroup) = {
        let table = sup.table();
        let container = table.get(id)?;
        if !container.phase.alive() {
            return Ok(());
        }
        match kill(Pid::from_raw(container.pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => {
                return Err(ContainerError::Signal {
                    id: id.to_string(),
                    signal: Signal::SIGKILL as i32,
                    pid: container.pid,
                    source,
                });
            }
        }
        let exited = container.exit_tx.subscribe();
        (exited, container.pid, container.cgroup.clone())
    };
    if let Some(cgroup) = cgroup {
        let killed = tokio::task::spawn_blocking(move || cgroup.kill_all(Signal::SIGKILL)).await;
        if let Ok(Err(e)) = killed {
            tracing::warn!(container_id = id, "kill the container's cgroup: {e}");
        }
    }
    let reaped = tokio::time::timeout(KILL_WAIT, exited.wait_for(Option::is_some)).await;
    match reaped {
        Ok(_) => Ok(()),
        Err(_) => Err(ContainerError::KillTimeout {
            id: id.to_string(),
            pid,
            seconds: KILL_WAIT.as_secs(),
        }),
    }
}

/// Reopens the container's log file.
pub(crate) fn reopen_log(sup: &Supervisor, id: &str) -> Result<(), ContainerError> {
    let log = {
        let table = sup.table();
        let container = table.get(id)?;
        container.io.as_ref().map(|io| io.log.clone())
    };
    let Some(log) = log else {
        return Ok(());
    };
    log.reopen().map_err(|source| {
        let path = log
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        io_error(id, &format!("reopen log {path}"), source)
    })
}

fn check_id(id: &str) -> Result<(), ContainerError> {
    if id.is_empty() || id.contains('/') || id.chars().any(char::is_control) {
        return Err(ContainerError::InvalidArgument(format!(
            "invalid container id {id:?}"
        )));
    }
    Ok(())
}

fn io_error(id: &str, action: &str, source: std::io::Error) -> ContainerError {
    ContainerError::Io {
        id: id.to_string(),
        action: action.to_string(),
        source,
    }
}
