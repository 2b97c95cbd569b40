//! CreateContainer's CDI step: the devices a container asks for, injected into its built spec
//! for the pod's runtime handler (`crate::devices`).

use oci_spec::runtime::Spec;

use crate::cri_api as api;
use crate::devices::Handler;

use super::{Result, Runtime};

impl Runtime {
    /// `spec` with the CDI devices of `config` injected; InvalidArgument names a device that is
    /// unknown or that `handler` cannot honour.
    pub(super) fn inject_cdi_devices(
        &self,
        config: &api::ContainerConfig,
        handler: &str,
        mut spec: Spec,
    ) -> Result<Spec> {
        let external = self.pod_runtime(handler)?.is_some();
        let target = match external {
            true => Handler::External(handler),
            false => Handler::BuiltIn,
        };
        let injected = crate::devices::inject(&self.settings.cdi, config, &mut spec, target)?;
        if !injected.is_empty() {
            tracing::debug!(devices = ?injected, "CDI devices injected");
        }
        Ok(spec)
    }
}
