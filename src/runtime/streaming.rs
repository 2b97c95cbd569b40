//! What the streaming server asks of the runtime: the container an Exec or Attach targets, the
//! streamed session itself (through the pod's shim), and the network namespace a PortForward
//! connects in.

use std::path::PathBuf;

use super::records::SandboxState;
use super::{Result, Runtime, RuntimeError};
use crate::shimclient::{StreamInputs, StreamOutputs, StreamStart};

impl Runtime {
    /// The full id of running container `id` (which may be a unique prefix).
    pub fn stream_target(&self, id: &str) -> Result<String> {
        Ok(self.running(id)?.id)
    }

    /// Starts a streamed exec (`attach` false) or attach in the container `start.id` names.
    pub async fn stream(
        &self,
        attach: bool,
        mut start: StreamStart,
        inputs: StreamInputs,
    ) -> Result<StreamOutputs> {
        let container = self.running(&start.id)?;
        if !attach && start.args.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "exec: no command given".into(),
            ));
        }
        start.id = container.id.clone();
        let shim = self.shim(&container.sandbox_id)?;
        Ok(shim.stream(attach, &start, inputs).await?)
    }

    /// The full id of ready pod `id` and its pinned network namespace (`None` = the host's).
    pub fn pod_netns(&self, id: &str) -> Result<(String, Option<PathBuf>)> {
        let sandbox = self.sandbox(id)?;
        if sandbox.state != SandboxState::Ready {
            return Err(RuntimeError::SandboxNotReady(sandbox.id));
        }
        Ok((sandbox.id, sandbox.namespaces.net))
    }
}
