//! The shim's shared state and the plumbing every operation uses: the container table, the
//! exit broadcast, the executor run on a blocking thread under the reaper's gate, and the
//! shutdown flag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::{Notify, broadcast, watch};

use super::error::ContainerError;
use super::pins::Pins;
use super::state::Table;
use crate::cgroup::{Cgroup, CgroupError, Hierarchy};
use crate::exec::Executor;
use crate::shimapi::ExitEvent;

/// How many exits a slow Events subscriber may fall behind before it gets a fresh replay.
const EVENT_BACKLOG: usize = 64;

/// Everything the shim's operations share. Held in an `Arc`; its locks are never held across an
/// `.await`.
pub(crate) struct Supervisor {
    pub pod_id: String,
    pub executor: Executor,
    table: Mutex<Table>,
    /// Held (shared) by every executor call; the reaper's wait-for-any-child sweep takes it
    /// exclusively, so it cannot reap a process an executor call is about to wait for.
    gate: RwLock<()>,
    /// Asks the reaper to look again (after an executor call, when the sweep may have been
    /// skipped).
    pub reap_now: Notify,
    pub events: broadcast::Sender<ExitEvent>,
    pins: Mutex<Pins>,
    namespaces: BTreeMap<String, PathBuf>,
    pause: Option<i32>,
    /// Becomes true when the pause process has been reaped.
    pause_gone: watch::Sender<bool>,
    hierarchy: Mutex<Option<Hierarchy>>,
    /// Becomes true when Shutdown has done its work and the process should exit.
    exit: watch::Sender<bool>,
}

impl Supervisor {
    pub fn new(pod_id: String, executor: Executor, pins: Pins) -> Supervisor {
        Supervisor {
            pod_id,
            executor,
            table: Mutex::new(Table::default()),
            gate: RwLock::new(()),
            reap_now: Notify::new(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            namespaces: pins.map(),
            pause: pins.pause_pid(),
            pins: Mutex::new(pins),
            pause_gone: watch::channel(false).0,
            hierarchy: Mutex::new(None),
            exit: watch::channel(false).0,
        }
    }

    /// The container table.
    pub fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Pinned namespace files by kind.
    pub fn namespaces(&self) -> &BTreeMap<String, PathBuf> {
        &self.namespaces
    }

    /// Runs `f` (an executor call and whatever must happen before the reaper may sweep again)
    /// on a blocking thread with the gate held, then wakes the reaper.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Supervisor) -> T + Send + 'static,
    ) -> Result<T, ContainerError> {
        let sup = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _gate = sup.gate.read().unwrap_or_else(|p| p.into_inner());
            f(&sup)
        })
        .await;
        self.reap_now.notify_one();
        result.map_err(|e| ContainerError::Internal(format!("executor task: {e}")))
    }

    /// Runs `sweep` unless an executor call is in flight; returns whether it ran.
    pub fn try_sweep(&self, sweep: impl FnOnce()) -> bool {
        match self.gate.try_write() {
            Ok(_gate) => {
                sweep();
                true
            }
            Err(_) => false,
        }
    }

    /// The cgroup at `path` (the hierarchy is detected once).
    pub fn cgroup(&self, path: &str) -> Result<Cgroup, CgroupError> {
        let mut hierarchy = lock(&self.hierarchy);
        if hierarchy.is_none() {
            *hierarchy = Some(Hierarchy::detect()?);
        }
        let h = hierarchy.as_ref().expect("just detected");
        Cgroup::open(h, path)
    }

    /// The pause process, if the pod has its own PID namespace.
    pub fn pause_pid(&self) -> Option<i32> {
        self.pause
    }

    /// Called by the reaper when the pause process was reaped.
    pub fn pause_reaped(&self) {
        self.pause_gone.send_replace(true);
    }

    /// Waits until the pause process has been reaped (at once when there is none).
    pub async fn pause_exited(&self) {
        if self.pause.is_some() {
            let _ = self.pause_gone.subscribe().wait_for(|gone| *gone).await;
        }
    }

    /// Kills the pause process and removes the pins.
    pub fn remove_pins(&self) -> Result<(), super::error::StartupError> {
        lock(&self.pins).remove()
    }

    /// Asks the serving loop to stop and the process to exit.
    pub fn request_exit(&self) {
        self.exit.send_replace(true);
    }

    /// Completes once the process should exit.
    pub async fn exit_requested(&self) {
        let _ = self.exit.subscribe().wait_for(|exit| *exit).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
