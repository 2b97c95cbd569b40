//! ContainerStatus, ListContainers, ExecSync and ReopenContainerLog.

use super::records::{ContainerRecord, ContainerState};
use super::shim::ExecOutput;
use super::{Result, Runtime, RuntimeError};

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

    fn running(&self, id: &str) -> Result<ContainerRecord> {
        let container = self.container(id)?;
        if container.state != ContainerState::Running {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {} is not running",
                container.id
            )));
        }
        Ok(container)
    }
}
