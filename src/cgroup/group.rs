//! One cgroup: created, filled with processes, limited, read, signalled and removed.
//!
//! On v1 a cgroup is the same relative path in every mounted hierarchy (`name=systemd`
//! included, as runc does); on v2 it is one directory. Version-specific file handling lives in
//! `v1.rs` and `v2.rs`; this file holds what is shared.
//!
//! A cgroup whose path is a systemd scope in a slice (the systemd driver, `driver.rs`) is a
//! transient unit: it is started with the container's first process ([`Cgroup::enter`]), its
//! limits go through unit properties where systemd owns them, and deleting it stops the unit.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::driver::{Unit, unit_of};
use super::fs::{Result, read_pids, write};
use super::{
    CgroupError, Hierarchy, Mode, Pressure, Resources, Stats, systemd, unit_props, v1, v2,
};

/// How long `delete` keeps retrying while the kernel still reports tasks (EBUSY).
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `freeze` waits for every task to stop.
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// A cgroup at one cgroupfs path. Opening it touches nothing; each call reads or writes the
/// kernel files it needs and reports which file failed.
#[derive(Debug, Clone)]
pub struct Cgroup {
    hierarchy: Hierarchy,
    /// Validated, without the leading slash: `kubepods/besteffort/pod<uid>/<id>`.
    rel: String,
}

impl Cgroup {
    /// Creates the cgroup (and missing parents) in every hierarchy. On v1 a new cpuset level
    /// gets its parent's `cpus` and `mems` (the kernel leaves them empty, and an empty cpuset
    /// cannot hold tasks); on v2 every available controller is enabled in each ancestor's
    /// `cgroup.subtree_control`. Directories this call made are removed again on failure.
    ///
    /// A systemd scope cannot exist without a process: here only its slice is started (when
    /// nothing started it yet); the scope starts when the first process enters.
    pub fn create(h: &Hierarchy, path: &str) -> Result<Cgroup> {
        let cg = Cgroup::open(h, path)?;
        if let Some(unit) = cg.unit() {
            systemd::ensure_slice(&unit.slice)?;
            return Ok(cg);
        }
        let mut made = Vec::new();
        let result = match h.mode() {
            Mode::V1 => v1::create(&cg, &mut made),
            Mode::V2 => v2::create(&cg, &mut made),
        };
        if let Err(cause) = result {
            for dir in made.iter().rev() {
                if let Err(source) = fs::remove_dir(dir) {
                    let cleanup = CgroupError::Remove {
                        path: dir.clone(),
                        source,
                    };
                    return Err(CgroupError::Unwound {
                        cause: Box::new(cause),
                        cleanup: Box::new(cleanup),
                    });
                }
            }
            return Err(cause);
        }
        Ok(cg)
    }

    /// A handle on an existing cgroup (or one about to be deleted); only checks the path.
    pub fn open(h: &Hierarchy, path: &str) -> Result<Cgroup> {
        Ok(Cgroup {
            hierarchy: h.clone(),
            rel: validate(path)?,
        })
    }

    /// The cgroupfs path, with its leading slash.
    pub fn path(&self) -> String {
        format!("/{}", self.rel)
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// The systemd unit this cgroup is, when its path is a scope in a slice.
    pub fn unit(&self) -> Option<Unit> {
        unit_of(&self.rel)
    }

    /// Limits a cgroup `create` just made, before its first process enters. A systemd scope
    /// does not exist yet: it takes its limits as it starts ([`Cgroup::enter`]).
    pub fn apply_new(&self, r: &Resources) -> Result<()> {
        match self.unit() {
            Some(_) => Ok(()),
            None => self.apply(r),
        }
    }

    /// Puts a new container's first process in the cgroup: a systemd scope is started with it
    /// and with the limits `r` (properties, then the rest written into the delegated cgroup); a
    /// cgroupfs cgroup (made and limited by `create` and `apply_new`) just takes it.
    pub fn enter(&self, pid: i32, r: &Resources) -> Result<()> {
        let Some(unit) = self.unit() else {
            return self.add_process(pid);
        };
        let (props, rest) = unit_props::split(&self.path(), r)?;
        let pid = u32::try_from(pid).map_err(|_| CgroupError::InvalidPath {
            path: self.path(),
            reason: "a process id out of range",
        })?;
        systemd::start_scope(&unit.scope, &unit.slice, pid, &props, &self.v2_dir())?;
        v2::enable_hugetlb(self, &rest)?;
        v2::apply(self, &rest)
    }

    /// Writes the limits; fields left `None` are not touched. A systemd scope gets the ones
    /// systemd owns as unit properties.
    pub fn apply(&self, r: &Resources) -> Result<()> {
        if let Some(unit) = self.unit() {
            let (props, mut rest) = unit_props::split(&self.path(), r)?;
            // systemd (252) rewrites `memory.oom.group` from its own settings whenever it
            // applies a unit's properties: keep the value the container had.
            const OOM_GROUP: &str = "memory.oom.group";
            if !props.is_empty()
                && !rest.unified.contains_key(OOM_GROUP)
                && let Ok(value) = fs::read_to_string(self.v2_dir().join(OOM_GROUP))
            {
                rest.unified
                    .insert(OOM_GROUP.into(), value.trim().to_string());
            }
            systemd::set_properties(&unit.scope, &props)?;
            v2::enable_hugetlb(self, &rest)?;
            return v2::apply(self, &rest);
        }
        match self.hierarchy.mode() {
            Mode::V1 => v1::apply(self, r),
            Mode::V2 => v2::apply(self, r),
        }
    }

    /// Moves a process (all its threads) into the cgroup, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// On v1, for a cgroup that is not a systemd scope: its `tasks` file in every hierarchy. A
    /// thread that writes `0` there moves itself, and the kernel does that without taking the
    /// global lock that a move by pid (`cgroup.procs`) takes; a single-threaded process can join
    /// the cgroup so ([`crate::exec::Executor::create_in_v1_cgroup`]). `None` on v2, where a
    /// thread may only move within a threaded subtree.
    pub fn v1_tasks_files(&self) -> Option<Vec<PathBuf>> {
        if self.hierarchy.mode() != Mode::V1 || self.unit().is_some() {
            return None;
        }
        Some(self.dirs().iter().map(|d| d.join("tasks")).collect())
    }

    /// The processes directly in this cgroup (not in its descendants).
    pub fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.primary_dir().join("cgroup.procs"))
    }

    pub fn stats(&self) -> Result<Stats> {
        match self.hierarchy.mode() {
            Mode::V1 => v1::stats(self),
            Mode::V2 => v2::stats(self),
        }
    }

    /// The cgroup's pressure stall information. cgroup v1 has none: every field is `None` there
    /// (unknown, not zero), as it is on a v2 kernel without PSI.
    pub fn pressure(&self) -> Result<Pressure> {
        match self.hierarchy.mode() {
            Mode::V1 => Ok(Pressure::default()),
            Mode::V2 => super::psi::read_dir(&self.v2_dir()),
        }
    }

    /// Whether the kernel's OOM killer has killed a task in this cgroup. `false` when the
    /// memory controller is not available (nothing could have been OOM-killed by its limit).
    pub fn oom_killed(&self) -> Result<bool> {
        let kills = match self.hierarchy.mode() {
            Mode::V1 => v1::oom_kills(self)?,
            Mode::V2 => v2::oom_kills(self)?,
        };
        Ok(kills > 0)
    }

    /// Stops every task in the cgroup and its descendants, waiting until they are stopped.
    pub fn freeze(&self) -> Result<()> {
        match self.hierarchy.mode() {
            Mode::V1 => v1::set_frozen(self, true),
            Mode::V2 => v2::set_frozen(self, true),
        }
    }

    /// Lets the tasks of a frozen cgroup run again.
    pub fn thaw(&self) -> Result<()> {
        match self.hierarchy.mode() {
            Mode::V1 => v1::set_frozen(self, false),
            Mode::V2 => v2::set_frozen(self, false),
        }
    }

    /// Sends `sig` to every process in the cgroup and its descendants. SIGKILL on v2 uses
    /// `cgroup.kill`; otherwise the cgroup is frozen while signalling (when a freezer is
    /// available) so no task can fork a child that escapes, then thawed. A failed freeze does
    /// not stop the signals; the first error (signal, thaw, then freeze) is returned.
    pub fn kill_all(&self, sig: Signal) -> Result<()> {
        if self.hierarchy.mode() == Mode::V2 && sig == Signal::SIGKILL {
            let kill_file = self.v2_dir().join("cgroup.kill");
            if kill_file.exists() {
                return write(&kill_file, "1");
            }
        }
        let can_freeze = match self.hierarchy.mode() {
            Mode::V1 => self.v1_dir("freezer").is_some(),
            Mode::V2 => self.v2_dir().join("cgroup.freeze").exists(),
        };
        let frozen = if can_freeze { self.freeze() } else { Ok(()) };
        let signalled = self.signal_tree(sig);
        let thawed = if can_freeze { self.thaw() } else { Ok(()) };
        signalled.and(thawed).and(frozen)
    }

    fn signal_tree(&self, sig: Signal) -> Result<()> {
        let mut pids = BTreeSet::new();
        collect_pids(&self.primary_dir(), &mut pids)?;
        for pid in pids {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        cgroup: self.path(),
                        pid,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes the cgroup and any descendants from every hierarchy, retrying briefly while
    /// tasks are still leaving. A cgroup that is already gone is not an error. A systemd scope
    /// is stopped first (systemd then removes its cgroup).
    pub fn delete(&self) -> Result<()> {
        if let Some(unit) = self.unit() {
            systemd::stop(&unit.scope)?;
        }
        let deadline = Instant::now() + DELETE_TIMEOUT;
        let mut first_err = None;
        for dir in self.dirs() {
            if let Err(e) = remove_tree(&dir, deadline) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The cgroup's directory in the v1 hierarchy holding `controller`, if that is mounted.
    pub(crate) fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchy
            .mount_of(controller)
            .map(|m| m.join(&self.rel))
    }

    /// The cgroup's directory under the v2 root.
    pub(crate) fn v2_dir(&self) -> PathBuf {
        self.hierarchy.root().join(&self.rel)
    }

    /// Relative path components, outermost first.
    pub(crate) fn components(&self) -> impl Iterator<Item = &str> {
        self.rel.split('/')
    }

    /// One directory per hierarchy.
    fn dirs(&self) -> Vec<PathBuf> {
        match self.hierarchy.mode() {
            Mode::V1 => self
                .hierarchy
                .v1_mount_dirs()
                .into_iter()
                .map(|m| m.join(&self.rel))
                .collect(),
            Mode::V2 => vec![self.v2_dir()],
        }
    }

    /// Whether the cgroup's directory is there in any hierarchy.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.exists())
    }

    /// Where membership is read: v2's directory, or on v1 the pids, memory or first hierarchy.
    fn primary_dir(&self) -> PathBuf {
        match self.hierarchy.mode() {
            Mode::V2 => self.v2_dir(),
            Mode::V1 => ["pids", "memory", "freezer"]
                .iter()
                .find_map(|c| self.v1_dir(c))
                .or_else(|| self.dirs().into_iter().next())
                .unwrap_or_else(|| self.hierarchy.root().join(&self.rel)),
        }
    }
}

/// Checks a kubelet cgroupfs path and returns it without its leading slash.
fn validate(path: &str) -> Result<String> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    if rel.is_empty() {
        return Err(invalid("the root cgroup cannot be managed"));
    }
    for part in rel.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(invalid("empty, '.' or '..' component"));
        }
        if part.contains('\0') {
            return Err(invalid("NUL byte"));
        }
    }
    Ok(rel.to_string())
}

/// Adds the pids of `dir` and every cgroup below it; a vanished directory adds nothing.
fn collect_pids(dir: &Path, pids: &mut BTreeSet<i32>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), pids)?;
        }
    }
    let procs = dir.join("cgroup.procs");
    if procs.exists() {
        pids.extend(read_pids(&procs)?);
    }
    Ok(())
}

/// Removes a cgroup directory depth-first. Control files are not removed (cgroupfs removes them
/// with the directory); EBUSY is retried until `deadline`.
fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path(), deadline)?;
            }
        }
    }
    let mut pause = Duration::from_millis(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated_and_normalised() {
        assert_eq!(validate("/kubepods/pod1/abc").unwrap(), "kubepods/pod1/abc");
        assert_eq!(validate("kubepods/x/").unwrap(), "kubepods/x");
        for bad in ["", "/", "/a/../b", "/a//b", "/a/./b", "/a\0b"] {
            let err = validate(bad).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn delete_is_idempotent_and_removes_descendants() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("memory/a/b/c")).unwrap();
        fs::create_dir_all(root.path().join("pids/a/b")).unwrap();
        let h = Hierarchy::at(root.path(), Mode::V1).unwrap();
        let cg = Cgroup::open(&h, "/a/b").unwrap();
        cg.delete().unwrap();
        assert!(!root.path().join("memory/a/b").exists());
        assert!(!root.path().join("pids/a/b").exists());
        assert!(root.path().join("memory/a").exists(), "parents stay");
        cg.delete().unwrap();
    }

    #[test]
    fn kill_all_on_an_empty_cgroup_signals_nobody() {
        let root = tempfile::tempdir().unwrap();
        let leaf = root.path().join("pids/a");
        fs::create_dir_all(&leaf).unwrap();
        fs::write(leaf.join("cgroup.procs"), "").unwrap();
        let h = Hierarchy::at(root.path(), Mode::V1).unwrap();
        Cgroup::open(&h, "/a")
            .unwrap()
            .kill_all(Signal::SIGKILL)
            .unwrap();
    }
}
