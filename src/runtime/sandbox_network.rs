//! A pod's network: CNI ADD into its pinned network namespace when it is created (with the undo
//! that DELs it), the hosts file with its IPs, DEL when it stops, and at startup the DEL of
//! networks whose pod no longer exists (so IPAM leases never leak).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::cri_api as api;

use super::undo::{Step, Undo};
use super::{Result, Runtime, RuntimeError};
use crate::network::{Attachment, PodIps, RuntimeConfig, dns};

impl Runtime {
    /// Attaches the pod's pinned network namespace to the node's network. The undo (DEL) is
    /// pushed before ADD runs: a failed ADD is undone like any later failure.
    pub(super) async fn attach_network(
        self: &Arc<Self>,
        id: &str,
        config: &api::PodSandboxConfig,
        netns: &Path,
        undo: &mut Undo,
    ) -> Result<PodIps> {
        let meta = config.metadata.clone().unwrap_or_default();
        let runtime_config = RuntimeConfig::from_pod(config).map_err(|e| {
            RuntimeError::InvalidArgument(format!("pod sandbox {}: {e}", meta.name))
        })?;
        let pod = Attachment {
            sandbox_id: id.to_string(),
            netns: netns.to_path_buf(),
            pod_name: meta.name,
            pod_namespace: meta.namespace,
            pod_uid: meta.uid,
            runtime_config,
        };
        undo.push(Step::DetachNetwork(id.to_string()));
        Ok(self.network.attach(&pod).await?)
    }

    /// CNI DEL of the pod, from what was cached at ADD. Always safe to call.
    pub(super) async fn detach_network(&self, id: &str) -> Result<()> {
        Ok(self.network.detach(id).await?)
    }

    /// Detaches every cached network whose pod has no record any more (berthd died between
    /// ADD and the record, or the record was lost). Failures are logged; startup goes on.
    pub(super) async fn collect_networks(&self) -> Result<()> {
        let known: HashSet<String> = self.sandboxes()?.into_iter().map(|s| s.id).collect();
        for id in self.network.attached()? {
            if known.contains(&id) {
                continue;
            }
            match self.network.detach(&id).await {
                Ok(()) => {
                    tracing::info!(pod_id = %id, "released the network of a pod that no longer exists")
                }
                Err(e) => {
                    tracing::warn!(pod_id = %id, error = %e, "release the network of a pod that no longer exists")
                }
            }
        }
        Ok(())
    }
}

/// Writes the pod's hosts file: loopback names and the pod hostname on its IPs.
pub(super) fn write_hosts(data_dir: &Path, hostname: Option<&str>, ips: &[String]) -> Result<()> {
    let path = data_dir.join("hosts");
    std::fs::write(&path, dns::hosts(hostname, ips))
        .map_err(RuntimeError::io(format!("write {}", path.display())))
}
