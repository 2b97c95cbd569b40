//! `UpdateRuntimeConfig`: kubelet hands the node's pod CIDR; berth records it (see
//! `runtime::pod_cidr`) and reports it in `Status` verbose info as `podCIDR`.

use super::api;
use crate::runtime::Runtime;
use crate::runtime::error::RuntimeError;

pub fn update(
    runtime: &Runtime,
    req: api::UpdateRuntimeConfigRequest,
) -> Result<api::UpdateRuntimeConfigResponse, RuntimeError> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    runtime.pod_cidr.set(&cidr)?;
    Ok(api::UpdateRuntimeConfigResponse {})
}
