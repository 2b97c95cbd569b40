//! The shim's record of its containers and of the exec'd processes whose exit someone awaits.
//!
//! ```text
//!   CreateContainer                 StartContainer
//!  ────────────────> Created ──────────────────────> Starting ──ok──> Running
//!                       │                               │                │
//!                       │ reaped (killed before start)  │ exec failed    │ reaped
//!                       v                               v                v
//!                    Exited <─────────────────────── Exited(128)      Exited
//!
//!   DeleteContainer: from any phase but Starting; a live process is SIGKILLed and reaped first.
//! ```
//!
//! `Starting` is the only phase in which an executor call owns the container's process: the
//! reaper leaves such a pid alone (see `reaper.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use nix::sys::wait::WaitStatus;
use oci_spec::runtime::{LinuxSeccomp, Process};
use tokio::sync::{oneshot, watch};

use super::error::ContainerError;
use super::io::ContainerIo;
use super::runner::{Launched, Runner};
use crate::cgroup::Cgroup;
use crate::shimapi::{ContainerState, ContainerStatus, Exit, ExitEvent};

/// Where a container is; see the diagram at the top of the file.
pub(crate) enum Phase {
    Created(Box<dyn Launched>),
    Starting,
    Running,
    Exited(Exit),
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Created(_) => "created",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Exited(_) => "exited",
        }
    }

    /// Whether its process may still be alive.
    pub fn alive(&self) -> bool {
        !matches!(self, Phase::Exited(_))
    }
}

/// One container.
pub(crate) struct Container {
    pub id: String,
    pub bundle: PathBuf,
    /// Host pid of its init process.
    pub pid: i32,
    /// Its init process held by a pidfd (opened at creation): execs join it, or fail once it
    /// has exited, even when its pid has been given to another process since.
    pub init: Option<crate::exec::ContainerProcess>,
    pub phase: Phase,
    /// Unix nanoseconds; 0 until started.
    pub started_at: i64,
    pub cgroup: Option<Cgroup>,
    /// `process` of its config.json, the template of its execs.
    pub process: Process,
    /// `linux.seccomp` of its config.json: its execs run under the same filter.
    pub seccomp: Option<LinuxSeccomp>,
    /// The exact environment when `process.env` holds entries that are not UTF-8
    /// (`spec::raw_env`): its execs get it too.
    pub exact_env: Option<Vec<Vec<u8>>>,
    pub io: Option<ContainerIo>,
    /// Becomes `Some` when the reaper records its exit.
    pub exit_tx: watch::Sender<Option<Exit>>,
    /// What created its process and runs its execs.
    pub runner: std::sync::Arc<dyn Runner>,
    /// Keeps its systemd scope (and `memory.events`) until its exit is recorded (`hold.rs`).
    pub hold: Option<super::hold::Hold>,
}

impl Container {
    pub fn state(&self) -> ContainerState {
        // Starting counts as Created until the exec is confirmed.
        let (status, exit) = match &self.phase {
            Phase::Created(_) | Phase::Starting => (ContainerStatus::Created, None),
            Phase::Running => (ContainerStatus::Running, None),
            Phase::Exited(exit) => (ContainerStatus::Exited, Some(*exit)),
        };
        ContainerState {
            id: self.id.clone(),
            pid: self.pid.unsigned_abs(),
            status,
            started_at: self.started_at,
            exit,
        }
    }

    /// Records the exit; returns the event to broadcast (`None` when it was already recorded).
    pub fn record_exit(&mut self, exit: Exit) -> Option<ExitEvent> {
        match std::mem::replace(&mut self.phase, Phase::Exited(exit)) {
            Phase::Exited(earlier) => {
                self.phase = Phase::Exited(earlier);
                return None;
            }
            // The reaper has its status: the handle must not wait for the pid again.
            Phase::Created(created) => created.reaped(),
            Phase::Starting | Phase::Running => {}
        }
        self.exit_tx.send_replace(Some(exit));
        Some(ExitEvent {
            id: self.id.clone(),
            exit,
        })
    }

    /// The error for a request that does not fit the current phase.
    pub fn wrong_state(&self, action: &'static str) -> ContainerError {
        ContainerError::WrongState {
            id: self.id.clone(),
            action,
            state: self.phase.name(),
        }
    }
}

/// Every container of the pod, and who waits for which exec'd process.
#[derive(Default)]
pub(crate) struct Table {
    containers: BTreeMap<String, Container>,
    exec_waiters: HashMap<i32, oneshot::Sender<WaitStatus>>,
    /// Ids whose CreateContainer is in flight.
    creating: BTreeSet<String>,
    /// Set by Shutdown: no new containers or execs.
    pub closing: bool,
}

impl Table {
    pub fn get(&self, id: &str) -> Result<&Container, ContainerError> {
        self.containers
            .get(id)
            .ok_or_else(|| ContainerError::NotFound(id.to_string()))
    }

    pub fn get_mut(&mut self, id: &str) -> Result<&mut Container, ContainerError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| ContainerError::NotFound(id.to_string()))
    }

    /// Reserves `id` for a CreateContainer in flight.
    pub fn reserve(&mut self, id: &str) -> Result<(), ContainerError> {
        if self.closing {
            return Err(ContainerError::ShuttingDown);
        }
        if self.containers.contains_key(id) || !self.creating.insert(id.to_string()) {
            return Err(ContainerError::AlreadyExists(id.to_string()));
        }
        Ok(())
    }

    /// Ends a reservation, with the container created or not.
    pub fn release(&mut self, id: &str) {
        self.creating.remove(id);
    }

    pub fn insert(&mut self, container: Container) {
        self.containers.insert(container.id.clone(), container);
    }

    pub fn remove(&mut self, id: &str) -> Option<Container> {
        self.containers.remove(id)
    }

    pub fn states(&self) -> Vec<ContainerState> {
        self.containers.values().map(Container::state).collect()
    }

    /// The exits of every container not yet deleted, for a new Events subscriber.
    pub fn exits(&self) -> Vec<ExitEvent> {
        self.containers
            .values()
            .filter_map(|c| match c.phase {
                Phase::Exited(exit) => Some(ExitEvent {
                    id: c.id.clone(),
                    exit,
                }),
                _ => None,
            })
            .collect()
    }

    pub fn ids(&self) -> Vec<String> {
        self.containers.keys().cloned().collect()
    }

    /// The live container whose init process is `pid`.
    pub fn by_pid_mut(&mut self, pid: i32) -> Option<&mut Container> {
        self.containers
            .values_mut()
            .find(|c| c.pid == pid && c.phase.alive())
    }

    /// Pids the reaper may wait for individually at any time: container processes no executor
    /// call owns (Created or Running) and exec'd processes someone awaits.
    pub fn reapable_pids(&self) -> Vec<i32> {
        let containers = self
            .containers
            .values()
            .filter(|c| matches!(c.phase, Phase::Created(_) | Phase::Running))
            .map(|c| c.pid);
        containers
            .chain(self.exec_waiters.keys().copied())
            .collect()
    }

    pub fn await_exec(&mut self, pid: i32, tx: oneshot::Sender<WaitStatus>) {
        self.exec_waiters.insert(pid, tx);
    }

    /// Whether `pid` is an exec'd process not reaped yet (safe to signal).
    pub fn exec_pending(&self, pid: i32) -> bool {
        self.exec_waiters.contains_key(&pid)
    }

    /// Hands an exec'd process's status to its waiter; gives it back when nobody waits for it.
    pub fn finish_exec(&mut self, status: WaitStatus) -> Option<WaitStatus> {
        let pid = status.pid()?.as_raw();
        match self.exec_waiters.remove(&pid) {
            Some(tx) => {
                let _ = tx.send(status);
                None
            }
            None => Some(status),
        }
    }
}
