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
//! Only the cgroupfs driver exists: a pod parent in systemd's slice form is used as the slice's
//! directory ([`expand_slice`]); creating slices and scopes as systemd units is future work.

mod detail;
mod device_bpf;
mod devices;
mod error;
mod fs;
mod group;
mod hierarchy;
mod psi;
mod resources;
mod slice;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod device_bpf_tests;
#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod host_v2_tests;
#[cfg(test)]
mod v1_tests;
#[cfg(test)]
mod v2_tests;

pub use detail::DetailedStats;
pub use devices::DeviceRule;
pub use error::CgroupError;
pub use group::Cgroup;
pub use hierarchy::{Hierarchy, Mode, unescape as unescape_mountinfo};
pub use psi::{Pressure, Psi, PsiLine};
pub use resources::{Resources, shares_to_weight};
pub use slice::{expand_slice, is_slice_name};
pub use stats::{CpuStats, MemoryStats, PidsStats, Stats};
