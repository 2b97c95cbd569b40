//! ContainerStatus, ListContainers, ExecSync and ReopenContainerLog.

use super::records::{ContainerRecord, ContainerState};
use super::{Result, Runtime, RuntimeError};
use crate::shimclient::ExecOutput;

impl Runtime {
    pub fn container_status(&self, id: &str) -> Result<ContainerRecord> {
        self.container(id)
    }

    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>> {
        self.containers()
    }

    /// Runs `args` in a running container and collects its output. A command still running after
    /// `timeout` seconds (0 = none) is killed and reported as DeadlineExceeded.
    pub async fn exec_sync(&self, id: &str, args: Vec<String>, timeout: i64) -> Result<ExecOutput> {
        let container = self.running(id)?;
        if args.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "exec: no command given".into(),
            ));
        }
        let shim = self.shim(&container.sandbox_id)?;
        let output = shim.exec_sync(&container.id, args, timeout).await?;
        if output.timed_out {
            return Err(RuntimeError::Timeout {
                action: format!("exec in container {}", container.id),
                seconds: timeout,
            });
        }
        Ok(output)
    }

    /// Makes the shim reopen the container's log file (kubelet rotated it).
    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let container = self.running(id)?;
        self.shim(&container.sandbox_id)?
            .reopen_log(&container.id)
            .await?;
        Ok(())
    }

    pub(super) fn running(&self, id: &str) -> Result<ContainerRecord> {
        let container = self.container(id)?;
        if container.state != ContainerState::Running {
            return Err(RuntimeError::ContainerState {
                id: container.id,
                state: container.state,
                wanted: "Running",
            });
        }
        Ok(container)
    }
}

impl Runtime {
    /// UpdateContainerResources: NRI plugins may adjust `resources` first, then
    /// [`Runtime::apply_resources`].
    pub async fn update_resources(
        &self,
        id: &str,
        resources: crate::cri_api::LinuxContainerResources,
    ) -> Result<()> {
        let container = self.container(id)?;
        let pod = self.sandbox(&container.sandbox_id)?;
        let resources = self
            .nri
            .update_container(&pod, &container, resources)
            .await?;
        self.apply_resources(&container.id, resources).await?;
        if let Ok(container) = self.container(&container.id) {
            self.nri.post_update_container(&pod, &container).await;
        }
        Ok(())
    }

    /// Applies new resources to a created or running container's cgroup and records them
    /// (also for updates NRI plugins ask for).
    pub async fn apply_resources(
        &self,
        id: &str,
        resources: crate::cri_api::LinuxContainerResources,
    ) -> Result<()> {
        let container = self.container(id)?;
        if container.state == ContainerState::Exited {
            return Err(RuntimeError::ContainerState {
                id: container.id,
                state: container.state,
                wanted: "Created or Running",
            });
        }
        let hierarchy = self
            .cgroups
            .as_ref()
            .ok_or(RuntimeError::NoCgroupHierarchy)?;
        let oci = crate::spec::container_resources(&resources, &self.host)?;
        let handler = self.sandbox(&container.sandbox_id)?.runtime_handler;
        match self.pod_runtime(&handler)? {
            // An external runtime keeps the limits in its own state too: let it write them.
            Some(runtime) => {
                let id = container.id.clone();
                tokio::task::spawn_blocking(move || runtime.update(&id, &oci))
                    .await
                    .map_err(|_| {
                        RuntimeError::Task(format!("update container {}", container.id))
                    })??;
            }
            None => crate::cgroup::Cgroup::open(hierarchy, &container.cgroup)?
                .apply(&crate::cgroup::Resources::from(&oci))?,
        }
        self.update_container(&container.id, |c| {
            c.config
                .linux
                .get_or_insert_with(Default::default)
                .resources = Some(resources);
        })?;
        Ok(())
    }
}
