//! The host effects of making and tearing down pods and containers that need root: mounts and
//! container cgroups. [`HostOps`] is the seam; [`RealHost`] does them, and the runtime's unit
//! tests use a recording fake (`super::tests::fakes`), so the state machines run without root.
//! Directories and files under berth's own dirs are plain file I/O and stay outside the seam.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::{Result, RuntimeError};
use crate::cgroup::{Cgroup, Hierarchy, Resources};
use crate::snapshot::mount::{MountError, Overlay, mount_overlay, mount_overlay_idmapped};

/// Size of a pod's /dev/shm, as containerd and kubelet default it.
const SHM_SIZE: &str = "size=65536k";

/// How a user-namespace pod's container rootfs is id-mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMapping {
    /// The pod's user namespace file.
    pub userns: PathBuf,
    /// A scratch directory for the mapped layers.
    pub scratch: PathBuf,
    /// The host uid and gid of the container's root.
    pub root: (u32, u32),
}

/// Mounts and cgroups, as the runtime needs them.
pub trait HostOps: Send + Sync {
    /// Mounts a container's rootfs overlay on `target`, id-mapped when `idmap` says.
    fn mount_rootfs(
        &self,
        overlay: &Overlay,
        target: &Path,
        idmap: Option<&IdMapping>,
    ) -> Result<(), MountError>;
    /// Mounts a pod's /dev/shm tmpfs on `target` (created first).
    fn mount_shm(&self, target: &Path) -> Result<()>;
    /// Detaches the mount on `target`; nothing mounted there is fine.
    fn unmount(&self, target: &Path) -> std::io::Result<()>;
    /// Mount points at or below `dir` (berthd's own mount namespace), in mount order.
    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf>;
    /// Creates a container cgroup.
    fn create_cgroup(&self, path: &str) -> Result<()>;
    /// Applies a new container cgroup's limits.
    fn limit_cgroup(&self, path: &str, resources: &Resources) -> Result<()>;
    /// Kills whatever runs in a container cgroup and removes it; a missing one is fine.
    fn remove_cgroup(&self, path: &str) -> Result<()>;
}

/// The real mounts and cgroups.
pub struct RealHost {
    pub cgroups: Option<Hierarchy>,
}

impl RealHost {
    fn hierarchy(&self) -> Result<&Hierarchy> {
        self.cgroups.as_ref().ok_or(RuntimeError::NoCgroupHierarchy)
    }
}

impl HostOps for RealHost {
    fn mount_rootfs(
        &self,
        overlay: &Overlay,
        target: &Path,
        idmap: Option<&IdMapping>,
    ) -> Result<(), MountError> {
        match idmap {
            Some(m) => mount_overlay_idmapped(overlay, target, &m.userns, &m.scratch, m.root),
            None => mount_overlay(overlay, target),
        }
    }

    fn mount_shm(&self, target: &Path) -> Result<()> {
        use nix::mount::{MsFlags, mount};
        std::fs::create_dir_all(target)
            .map_err(RuntimeError::io(format!("create {}", target.display())))?;
        mount(
            Some("shm"),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,{SHM_SIZE}").as_str()),
        )
        .map_err(|e| RuntimeError::io(format!("mount shm on {}", target.display()))(e.into()))
    }

    fn unmount(&self, target: &Path) -> std::io::Result<()> {
        crate::snapshot::mount::unmount_path(target)
    }

    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| PathBuf::from(crate::cgroup::unescape_mountinfo(m)))
            .filter(|m| m.starts_with(dir))
            .collect()
    }

    fn create_cgroup(&self, path: &str) -> Result<()> {
        Cgroup::create(self.hierarchy()?, path)?;
        Ok(())
    }

    fn limit_cgroup(&self, path: &str, resources: &Resources) -> Result<()> {
        // A systemd scope gets its limits when the shim starts it with the first process.
        Ok(Cgroup::open(self.hierarchy()?, path)?.apply_new(resources)?)
    }

    fn remove_cgroup(&self, path: &str) -> Result<()> {
        let Some(hierarchy) = &self.cgroups else {
            return Ok(()); // no hierarchy: nothing was ever made
        };
        let cgroup = Cgroup::open(hierarchy, path)?;
        if cgroup.pids().is_ok() {
            // A failure to signal shows as the delete's EBUSY below.
            let _ = cgroup.kill_all(Signal::SIGKILL);
        }
        Ok(cgroup.delete()?)
    }
}
