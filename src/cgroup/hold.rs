//! Keeping a systemd scope's cgroup until its owner has read it. systemd stops a scope the moment
//! its cgroup holds no live process and removes the cgroup then (whatever keeps the unit itself
//! loaded: `CollectMode`, a reference, a failed state), so the container's `memory.events`, and
//! with it whether the OOM killer struck, can be gone before the shim has reaped the container.
//!
//! A hold is one idle process (the shim's, `berth-shim hold`) in a child cgroup of the scope,
//! `berth-hold`: it keeps the scope populated, hence active and its files readable, until the
//! shim has read them and lets it go. It is exempt from the OOM killer (`oom_score_adj` -1000), so
//! neither a victim choice nor a `memory.oom.group` kill takes it; a stop of the unit or
//! `cgroup.kill` does. In a child cgroup it is not among the container's `cgroup.procs`, and the
//! container may still enable controllers for its own subtree (no process sits in the scope's
//! own cgroup); it does count once in the scope's `pids.current`.

use std::fs;
use std::io::ErrorKind;

use super::fs::{Result, write};
use super::{Cgroup, CgroupError, Mode};

/// The child cgroup a hold process sits in.
pub const HOLD_CGROUP: &str = "berth-hold";

impl Cgroup {
    /// Whether someone else removes this cgroup as soon as its last process exits: a systemd
    /// scope (systemd stops it and removes its cgroup). Its reader then needs a hold.
    pub fn removed_when_empty(&self) -> bool {
        self.unit().is_some() && self.hierarchy().mode() == Mode::V2
    }

    /// Makes `pid` (an idle process of the caller's) this cgroup's hold: exempt from the OOM
    /// killer, then moved into the `berth-hold` child cgroup (made when missing). The cgroup
    /// stays populated while it lives.
    pub fn hold(&self, pid: i32) -> Result<()> {
        write(
            std::path::Path::new(&format!("/proc/{pid}/oom_score_adj")),
            "-1000",
        )?;
        let dir = self.v2_dir().join(HOLD_CGROUP);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: dir, source }),
        }
        write(&dir.join("cgroup.procs"), &pid.to_string())
    }
}
