//! Container exits: following each shim's exit stream and recording exits, also those of
//! containers whose shim died.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;

use super::Runtime;
use super::events::EventKind;
use super::records::{ContainerRecord, ContainerState, Exit, SandboxState, now_ns};
use crate::shimclient::ExitEvent;

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
        let mut changed = false;
        let updated = self.update_container(&event.id, |c| {
            if c.state != ContainerState::Exited {
                c.state = ContainerState::Exited;
                c.exit = Some(exit);
                changed = true;
            }
        });
        match updated {
            Ok(c) => {
                if changed {
                    tracing::info!(container_id = %c.id, code = event.exit.exit_code, "container exited");
                    self.emit(&c.id, &c.sandbox_id, EventKind::Stopped);
                }
                let _ = self.exited.send(c.id);
            }
            Err(e) => {
                tracing::debug!(container_id = %event.id, error = %e, "exit of unknown container")
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
        let _ = self.update_sandbox(sandbox_id, |s| s.state = SandboxState::NotReady);
        self.exit_orphans(sandbox_id);
    }

    /// Marks every not-exited container of a pod without a shim as exited.
    pub(super) fn exit_orphans(&self, sandbox_id: &str) {
        let Ok(containers) = self.containers() else {
            return;
        };
        for c in containers
            .iter()
            .filter(|c| c.sandbox_id == sandbox_id && c.state != ContainerState::Exited)
        {
            let event = exit_from_file(c).unwrap_or_else(|| lost_exit(c));
            self.record_exit(&event);
            if event.exit.exit_code == LOST_EXIT_CODE {
                let _ = self.update_container(&c.id, |c| {
                    if let Some(exit) = &mut c.exit {
                        exit.reason = "Unknown".into();
                        exit.message = "the pod's shim died; the exit status was lost".into();
                    }
                });
            }
        }
    }
}

/// The exit code of a container whose exit was never observed.
const LOST_EXIT_CODE: i32 = 255;

/// The exit the shim wrote to the container's bundle, if any.
pub(super) fn exit_from_file(c: &ContainerRecord) -> Option<ExitEvent> {
    let exit = crate::shimclient::exit_file::read(Path::new(&c.bundle))
        .ok()
        .flatten()?;
    Some(ExitEvent {
        id: c.id.clone(),
        exit,
    })
}

pub(super) fn lost_exit(c: &ContainerRecord) -> ExitEvent {
    ExitEvent {
        id: c.id.clone(),
        exit: crate::shimclient::Exit {
            exit_code: LOST_EXIT_CODE,
            signal: 0,
            finished_at: now_ns(),
            oom_killed: false,
            pid: c.pid,
        },
    }
}
