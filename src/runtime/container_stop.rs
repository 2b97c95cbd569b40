//! StopContainer and RemoveContainer (the latter under an intent, see `super::intents`).

use std::time::Duration;

use super::events::EventKind;
use super::image_volumes::unmount_image_volumes;
use super::intents::Intent;
use super::records::{ContainerRecord, ContainerState};
use super::stop_signal;
use super::{Result, Runtime, RuntimeError};
use crate::error::{Classify, Kind};
use crate::store::Table;

impl Runtime {
    /// Sends the stop signal, waits up to `timeout` seconds, then kills. Stopping a stopped or
    /// unknown container is not an error.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<()> {
        let container = match self.container(id) {
            Ok(c) => c,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if container.state == ContainerState::Exited {
            self.tell_stopped(&container.id).await;
            return Ok(());
        }
        let Ok(shim) = self.shim(&container.sandbox_id) else {
            return Ok(()); // no shim: nothing runs (recovery marks it exited)
        };
        self.signal_and_wait(&container, &shim, timeout).await?;
        self.tell_stopped(&container.id).await;
        Ok(())
    }

    /// Tells NRI plugins a container stopped (once: the exit's own notice may be first).
    async fn tell_stopped(&self, id: &str) {
        if let Ok(container) = self.container(id)
            && let Ok(pod) = self.sandbox(&container.sandbox_id)
        {
            self.nri.stop_container(&pod, &container).await;
        }
    }

    /// The stop signal, a wait of `timeout` seconds, then SIGKILL.
    async fn signal_and_wait(
        &self,
        container: &ContainerRecord,
        shim: &std::sync::Arc<dyn crate::shimclient::PodShim>,
        timeout: i64,
    ) -> Result<()> {
        let mut exited = self.exited.subscribe();
        if container.state == ContainerState::Running && timeout > 0 {
            let signal = match stop_signal::number_of(container.stop_signal) {
                Some(n) => n,
                // A record from before stop signals were recorded: choose now.
                None => {
                    stop_signal::choose(
                        container.config.stop_signal,
                        &self.image_stop_signal(container),
                    )
                    .number
                }
            };
            shim.signal(&container.id, signal, false).await?;
            if self
                .wait_exit(
                    &container.id,
                    &mut exited,
                    Duration::from_secs(timeout as u64),
                )
                .await
            {
                return Ok(());
            }
        }
        shim.signal(&container.id, libc::SIGKILL, true).await?;
        if !self
            .wait_exit(&container.id, &mut exited, Duration::from_secs(10))
            .await
        {
            return Err(RuntimeError::Timeout {
                action: format!("stop container {}: SIGKILL", container.id),
                seconds: 10,
            });
        }
        Ok(())
    }

    /// With the pod's shim gone, removes what an external runtime still keeps of the container
    /// (its state directory and cgroup), killing what is left of it.
    async fn forget_in_runtime(&self, container: &ContainerRecord) -> Result<()> {
        let handler = self
            .sandbox(&container.sandbox_id)
            .map(|s| s.runtime_handler)
            .unwrap_or_default();
        let Ok(Some(runtime)) = self.pod_runtime(&handler) else {
            return Ok(());
        };
        if !runtime.knows(&container.id) {
            return Ok(());
        }
        let id = container.id.clone();
        tokio::task::spawn_blocking(move || runtime.delete(&id))
            .await
            .map_err(|_| RuntimeError::Task(format!("delete container {}", container.id)))?
            .map_err(RuntimeError::from)
    }

    /// Waits until the container's record says Exited; false on timeout.
    async fn wait_exit(
        &self,
        id: &str,
        exited: &mut tokio::sync::broadcast::Receiver<String>,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if matches!(self.container(id), Ok(c) if c.state == ContainerState::Exited) {
                return true;
            }
            match tokio::time::timeout_at(deadline, exited.recv()).await {
                Err(_) => return false,
                Ok(_) => continue, // an exit (or a lag): look at the record again
            }
        }
    }

    fn image_stop_signal(&self, container: &ContainerRecord) -> String {
        self.images
            .store()
            .lookup(&container.image_id)
            .ok()
            .flatten()
            .and_then(|image| self.image_config(&image).ok())
            .map(|c| c.config.stop_signal)
            .unwrap_or_default()
    }

    /// Kills the container if it runs, then removes its process, rootfs, cgroup, files and
    /// record. Unknown containers are not an error.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let container = match self.container(id) {
            Ok(c) => c,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        // Before the first side effect: a restart finishes what a kill interrupts, so the
        // container never comes back killed (Exited) but not removed.
        self.intend(&container.id, Intent::RemoveContainer)?;
        // A shim that no longer knows the container (a removal finished after a restart) has
        // nothing left to stop or delete.
        let known = |r: Result<()>| match r {
            Err(e) if e.kind() == Kind::NotFound => Ok(()),
            other => other,
        };
        known(self.stop_container(&container.id, 0).await)?;
        if let Ok(shim) = self.shim(&container.sandbox_id) {
            known(shim.delete(&container.id).await.map_err(RuntimeError::from))?;
        }
        self.forget_in_runtime(&container).await?;
        let rootfs = container.bundle.join("rootfs");
        self.effects
            .unmount(&rootfs)
            .map_err(RuntimeError::io(format!("unmount {}", rootfs.display())))?;
        unmount_image_volumes(self.effects.as_ref(), &container.image_volumes)?;
        // Without its shim nothing stopped what is left in it (processes of a container with
        // its own PID namespace outlive the shim).
        self.effects.remove_cgroup(&container.cgroup)?;
        for dir in [&container.bundle, &container.rw_dir] {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RuntimeError::io(format!("remove {}", dir.display()))(e));
                }
                _ => {}
            }
        }
        self.db.write(|w| {
            w.delete(Table::Containers, &container.id)?;
            w.delete(Table::Intents, &container.id)
        })?;
        self.cpu_samples.forget(&container.id);
        self.emit(&container.id, &container.sandbox_id, EventKind::Deleted);
        if let Ok(pod) = self.sandbox(&container.sandbox_id) {
            self.nri.remove_container(&pod, &container).await;
        }
        tracing::info!(container_id = %container.id, "container removed");
        Ok(())
    }
}
