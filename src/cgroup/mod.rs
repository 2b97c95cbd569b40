//! Linux control groups through cgroupfs: cgroup v1 (including the hybrid layout) and v2.
//!
//! A [`Hierarchy`] says where the cgroup filesystems are mounted and which version is in charge.
//! A [`Cgroup`] is one kubelet-style cgroupfs path (`/kubepods/besteffort/pod<uid>/<id>`) across
//! every mounted v1 hierarchy, or one directory of the v2 hierarchy. [`Resources`] are the limits
//! written into it, [`Stats`] what is read back, and [`Pressure`] its PSI (v2 only).
//!
//! Every path is taken relative to a root passed in, so the same code runs against the host's
//! `/sys/fs/cgroup` and against a temporary directory laid out like it in tests.
//!
//! The hybrid layout (v1 controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified` that has
//! no resource controllers of its own) is driven as [`Mode::V1`], as containerd and runc do;
//! nothing is created in the unified mount there.
//! Two drivers name and make the cgroups ([`Driver`], `driver.rs`): `cgroupfs` writes the
//! directories itself (a pod parent in systemd's slice form is used as the slice's directory,
//! [`expand_slice`]); `systemd` makes the pod's slice and the container's scope transient units
//! over D-Bus (`systemd.rs`), limits through unit properties (`unit_props.rs`). Callers name a
//! cgroup by its cgroupfs path either way; [`Cgroup`] knows a scope when it sees one. systemd
//! removes a scope's cgroup once it is empty, so its reader can hold it (`hold.rs`).

mod detail;
mod device_bpf;
mod devices;
mod driver;
mod error;
mod fs;
mod group;
mod hierarchy;
mod hold;
mod psi;
mod resources;
mod slice;
mod stats;
mod systemd;
mod unit_props;
mod v1;
mod v2;

#[cfg(test)]
mod device_bpf_tests;
#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod host_v2_tests;
#[cfg(test)]
mod systemd_tests;
#[cfg(test)]
mod v1_tests;
#[cfg(test)]
mod v2_tests;

pub use detail::DetailedStats;
pub use devices::DeviceRule;
pub use driver::{Driver, Unit, is_container_cgroup, path_from_oci, scope_name, unit_of};
pub use error::CgroupError;
pub use group::Cgroup;
pub use hierarchy::{Hierarchy, Mode, unescape as unescape_mountinfo};
pub use hold::HOLD_CGROUP;
pub use psi::{Pressure, Psi, PsiLine};
pub(crate) use resources::valid_unified_key;
pub use resources::{Resources, shares_to_weight};
pub use slice::{expand_slice, is_slice_name};
pub use stats::{CpuStats, MemoryStats, PidsStats, Stats};

/// Checks that this host can run `driver`: the systemd driver needs systemd as PID 1 on a pure
/// cgroup v2 hierarchy.
pub fn check_driver(driver: Driver, hierarchy: &Hierarchy) -> Result<(), CgroupError> {
    if driver == Driver::Cgroupfs {
        return Ok(());
    }
    if hierarchy.mode() != Mode::V2 {
        return Err(CgroupError::Unsupported {
            cgroup: "/".into(),
            what: "the systemd cgroup driver on a cgroup v1 or hybrid host".into(),
        });
    }
    if !systemd::booted() {
        return Err(CgroupError::Unsupported {
            cgroup: "/".into(),
            what: "the systemd cgroup driver without systemd (/run/systemd/system is missing)"
                .into(),
        });
    }
    Ok(())
}

/// Stops the pod's slice `parent` when the systemd driver started it for the pod's containers
/// (kubelet's own pod slices are kubelet's to remove). Nothing for cgroupfs or a non-slice.
pub fn release_parent(driver: Driver, parent: &str) -> Result<(), CgroupError> {
    if driver != Driver::Systemd || !is_slice_name(parent) || parent == "-.slice" {
        return Ok(());
    }
    systemd::release_slice(parent)
}
