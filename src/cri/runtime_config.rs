//! `RuntimeConfig`: the cgroup driver kubelet must match.

use super::api;
use crate::config::{CgroupDriver, Config};

pub fn runtime_config(config: &Config) -> api::RuntimeConfigResponse {
    let driver = match config.cgroup.driver {
        CgroupDriver::Cgroupfs => api::CgroupDriver::Cgroupfs,
        CgroupDriver::Systemd => api::CgroupDriver::Systemd,
    };
    api::RuntimeConfigResponse {
        linux: Some(api::LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    }
}
