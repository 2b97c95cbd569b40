//! Devices for containers through CDI, the Container Device Interface: vendors' spec files in
//! the node's CDI directories (`registry`, `schema`) describe named devices
//! (`vendor.com/class=name`, `names`) as edits to a container's OCI spec (device nodes with
//! their cgroup rules, mounts, env, hooks, extra groups; `edits`, `host`). kubelet's device
//! plugins and DRA drivers ask for them in `ContainerConfig.cdi_devices` or `cdi.k8s.io/*`
//! annotations; [`inject`] applies them after the spec is built. docs/devices.md tells the story.

pub mod edits;
pub mod error;
pub mod host;
pub mod names;
pub mod registry;
pub mod schema;

use oci_spec::runtime::Spec;

use crate::cri_api::ContainerConfig;
pub use edits::Handler;
pub use error::CdiError;
pub use registry::Registry;

/// Injects the CDI devices `container` asks for into `spec`, for a pod run by `handler`.
/// Returns the injected devices' names. Nothing is read when it asks for none.
pub fn inject(
    registry: &Registry,
    container: &ContainerConfig,
    spec: &mut Spec,
    handler: Handler,
) -> Result<Vec<String>, CdiError> {
    let asked: Vec<String> = container
        .cdi_devices
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let names = names::requested(&asked, &container.annotations)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let steps = registry.resolve(&names)?;
    edits::apply(spec, &steps, handler)?;
    Ok(names.iter().map(ToString::to_string).collect())
}
