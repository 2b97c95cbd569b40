//! Container exits: following each shim's exit stream and recording exits, also those of
//! containers whose shim died.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;

use super::events::EventKind;
use super::records::{ContainerRecord, ContainerState, Exit, SandboxState, now_ns};
use super::{Runtime, RuntimeError};
use crate::shimclient::ExitEvent;
use crate::store::StoreError;

impl Runtime {
    /// Follows the exits of a sandbox's shim until its stream ends.
    pub(super) fn watch_exits(self: &Arc<Self>, sandbox_id: String) {
        let runtime = self.clone();
        tokio::spawn(async move {
            let Ok(shim) = runtime.shim(&sandbox_id) else {
                return;
            };
            match shim.exits().await {
                Ok(mut stream) => {
                    while let Some(event) = stream.next().await {
                        match event {
                            Ok(event) => runtime.record_exit(&event),
                            Err(e) => {
                                tracing::debug!(pod_id = %sandbox_id, error = %e, "exit stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(pod_id = %sandbox_id, error = %e, "cannot follow exits"),
            }
            runtime.shim_gone(&sandbox_id);
        });
    }

    /// Records a container's exit (once) and tells waiters.
    pub(super) fn record_exit(&self, event: &ExitEvent) {
        let exit = Exit {
            code: event.exit.exit_code,
            finished_at: event.exit.finished_at,
            reason: Exit::reason_for(event.exit.exit_code, event.exit.oom_killed).to_string(),
            message: String::new(),
        };
        self.record_exit_as(&event.id, exit);
    }

    /// Records `exit` as container `id`'s, unless an exit is recorded already.
    fn record_exit_as(&self, id: &str, exit: Exit) {
        let code = exit.code;
        let mut changed = false;
        match self.update_container(id, |c| changed = c.exit(exit)) {
            Ok(c) => {
                if changed {
                    tracing::info!(container_id = %c.id, code, "container exited");
                    self.emit(&c.id, &c.sandbox_id, EventKind::Stopped);
                    if let Ok(pod) = self.sandbox(&c.sandbox_id) {
                        let nri = self.nri.clone();
                        let c = c.clone();
                        tokio::spawn(async move { nri.stop_container(&pod, &c).await });
                    }
                }
                // No waiter is fine.
                let _ = self.exited.send(c.id);
            }
            Err(RuntimeError::Store(StoreError::Missing { .. })) => {
                tracing::debug!(container_id = %id, "exit of a container no longer recorded")
            }
            Err(e) => {
                tracing::warn!(container_id = %id, error = %e, "record a container's exit")
            }
        }
    }

    /// A shim's exit stream ended. If the pod was not being stopped, the shim died: the pod is
    /// NotReady and its live containers exited (with their exit file's status when there is one).
    fn shim_gone(&self, sandbox_id: &str) {
        let Ok(sandbox) = self.sandbox(sandbox_id) else {
            return;
        };
        let still_registered = self
            .shims
            .lock()
            .expect("shims lock")
            .remove(sandbox_id)
            .is_some();
        if !still_registered || sandbox.state != SandboxState::Ready {
            return;
        }
        tracing::warn!(pod_id = %sandbox_id, "pod shim died");
        if let Err(e) = self.update_sandbox(sandbox_id, |s| {
            s.stop();
        }) {
            tracing::warn!(pod_id = %sandbox_id, error = %e, "record the pod NotReady");
        }
        self.exit_orphans(sandbox_id);
    }

    /// Marks every not-exited container of a pod without a shim as exited.
    pub(super) fn exit_orphans(&self, sandbox_id: &str) {
        let containers = match self.containers() {
            Ok(containers) => containers,
            Err(e) => {
                tracing::warn!(pod_id = %sandbox_id, error = %e, "list the containers of a pod whose shim died");
                return;
            }
        };
        for c in containers
            .iter()
            .filter(|c| c.sandbox_id == sandbox_id && c.state != ContainerState::Exited)
        {
            self.record_unseen_exit(c);
        }
    }

    /// Records the exit of a container no shim runs: its exit file's, else a lost one (code
    /// 255, reason Unknown).
    pub(super) fn record_unseen_exit(&self, c: &ContainerRecord) {
        match exit_from_file(c) {
            Some(event) => self.record_exit(&event),
            None => self.record_exit_as(
                &c.id,
                Exit {
                    code: LOST_EXIT_CODE,
                    finished_at: now_ns(),
                    reason: "Unknown".into(),
                    message: "the pod's shim died; the exit status was lost".into(),
                },
            ),
        }
    }
}

/// The exit code of a container whose exit was never observed.
const LOST_EXIT_CODE: i32 = 255;

/// The exit the shim wrote to the container's bundle, if any.
fn exit_from_file(c: &ContainerRecord) -> Option<ExitEvent> {
    let exit = crate::shimclient::exit_file::read(Path::new(&c.bundle))
        .ok()
        .flatten()?;
    Some(ExitEvent {
        id: c.id.clone(),
        exit,
    })
}
