//! The runtime handlers berthd offers: the built-in executor (kubelet's `""`, or `berth`) and
//! each configured OCI runtime (runc, crun), which is checked once at startup by running a probe
//! container (`oci::probe`). A handler that cannot run containers here is kept with its reason:
//! `Status` leaves it out and `RunPodSandbox` refuses it naming why.

use std::path::{Path, PathBuf};

use super::{Result, Runtime, RuntimeError};
use crate::oci::OciRuntime;
use crate::oci::probe::{self, Features};

/// One configured external runtime handler.
#[derive(Debug, Clone)]
pub struct Handler {
    /// The RuntimeClass handler name.
    pub name: String,
    /// Its binary and state directory (`<state_dir>/<name>`).
    pub runtime: OciRuntime,
    /// What it offers, or why it cannot run containers on this host.
    pub check: std::result::Result<Features, String>,
}

/// Checks every configured `(name, binary)` pair, keeping the runtimes' state under `state_dir`;
/// with the systemd cgroup `driver` the runtimes get `--systemd-cgroup`.
pub fn check(
    configured: &[(String, PathBuf)],
    state_dir: &Path,
    driver: crate::cgroup::Driver,
) -> Vec<Handler> {
    configured
        .iter()
        .map(|(name, path)| {
            let runtime = OciRuntime {
                path: path.clone(),
                root: state_dir.join(name),
                systemd_cgroup: driver == crate::cgroup::Driver::Systemd,
            };
            let scratch = state_dir.join(format!("probe-{name}"));
            let check = probe::check(&runtime, name, &scratch);
            match &check {
                Ok(_) => {
                    tracing::info!(handler = %name, path = %path.display(), "runtime handler ready")
                }
                Err(reason) => tracing::warn!(
                    handler = %name,
                    path = %path.display(),
                    "runtime handler cannot run containers here: {reason}"
                ),
            }
            Handler {
                name: name.clone(),
                runtime,
                check,
            }
        })
        .collect()
}

impl Runtime {
    /// The configured external handlers, working or not.
    pub fn handlers(&self) -> &[Handler] {
        &self.settings.handlers
    }

    /// The OCI runtime of handler `name` for a new pod: `None` for the built-in executor;
    /// InvalidArgument when no such handler is configured, FailedPrecondition when it cannot run
    /// containers on this host.
    pub(super) fn handler_for_new_pod(&self, name: &str) -> Result<Option<OciRuntime>> {
        if name.is_empty() || name == crate::DEFAULT_HANDLER {
            return Ok(None);
        }
        let handler = self
            .settings
            .handlers
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| {
                RuntimeError::InvalidArgument(format!("runtime handler {name:?} is not configured"))
            })?;
        match &handler.check {
            Ok(_) => Ok(Some(handler.runtime.clone())),
            Err(reason) => Err(RuntimeError::HandlerUnusable {
                name: name.to_string(),
                path: handler.runtime.path.clone(),
                reason: reason.to_string(),
            }),
        }
    }

    /// The `ociVersion` a bundle for handler `name` carries when it is not `own` (the runtime
    /// implements an older spec, `probe::Features::oci_version`).
    pub(super) fn handler_oci_version(&self, name: &str, own: &str) -> Option<String> {
        let handler = self.settings.handlers.iter().find(|h| h.name == name)?;
        let version = handler.check.as_ref().ok()?.oci_version(own);
        (version != own).then_some(version)
    }

    /// Whether privileged containers of handler `name` (`""` = the built-in executor) get the
    /// host's devices: yes unless it is configured `privileged_without_host_devices`.
    pub(super) fn privileged_host_devices(&self, name: &str) -> bool {
        let name = if name.is_empty() {
            crate::DEFAULT_HANDLER
        } else {
            name
        };
        !self.settings.without_host_devices.iter().any(|h| h == name)
    }

    /// The OCI runtime a pod's containers use: `None` for the built-in executor. A handler no
    /// longer configured (the config changed across a restart) is FailedPrecondition.
    pub(super) fn pod_runtime(&self, handler: &str) -> Result<Option<OciRuntime>> {
        if handler.is_empty() || handler == crate::DEFAULT_HANDLER {
            return Ok(None);
        }
        self.settings
            .handlers
            .iter()
            .find(|h| h.name == handler)
            .map(|h| Some(h.runtime.clone()))
            .ok_or_else(|| RuntimeError::HandlerGone(handler.to_string()))
    }
}
