//! `Version`: the runtime's name and version, and the CRI API version it speaks.

use super::api;

/// kubelet checks this field; "0.1.0" is what every CRI v1 runtime reports.
const KUBELET_API_VERSION: &str = "0.1.0";

pub fn version() -> api::VersionResponse {
    api::VersionResponse {
        version: KUBELET_API_VERSION.into(),
        runtime_name: crate::RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: "v1".into(),
    }
}
