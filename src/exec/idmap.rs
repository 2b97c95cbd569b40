//! Id-mapped bind mounts (`idmap`, `ridmap`): the caller clones each source tree
//! (`open_tree(OPEN_TREE_CLONE)`, recursively for `rbind`) and id-maps the detached clone through
//! the container's user namespace; the container process attaches it with `move_mount`. The
//! id-mapping needs CAP_SYS_ADMIN in the user namespace of the source's filesystem (the host's),
//! which the container process no longer has once it joined the pod's; runc splits the work the
//! same way.
//!
//! Used with the pod's own user namespace, the mapping (container id -> host id) shows files with
//! the ids they have on disk: host uid 0 is the container's root, and what container uid 1000
//! writes is stored as uid 1000.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs::{AtFlags, CWD, StatxFlags};
use rustix::mount::{OpenTreeFlags, open_tree};

use super::error::{ExecError, StepError};
use super::mount_options::{IdmapScope, MountOptions};

/// Detached id-mapped trees, by index in `spec.mounts`.
#[derive(Debug, Default)]
pub(crate) struct Trees(Vec<(usize, OwnedFd)>);

impl Trees {
    /// Pairs the indexes the caller sent with the descriptors that followed.
    pub fn from_parts(indexes: &[usize], fds: Vec<OwnedFd>) -> Result<Trees, StepError> {
        if indexes.len() != fds.len() {
            let msg = format!("{} indexes, {} descriptors", indexes.len(), fds.len());
            return Err(StepError::new("receive the id-mapped mounts", msg));
        }
        Ok(Trees(indexes.iter().copied().zip(fds).collect()))
    }

    /// The mount indexes, in order.
    pub fn indexes(&self) -> Vec<usize> {
        self.0.iter().map(|(i, _)| *i).collect()
    }

    /// The descriptors, in the order of [`Trees::indexes`].
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.0.iter().map(|(_, fd)| fd.as_fd()).collect()
    }

    /// The tree prepared for mount `index`.
    pub fn get(&self, index: usize) -> Option<BorrowedFd<'_>> {
        self.0
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, fd)| fd.as_fd())
    }
}

/// Clones and id-maps the source of every `idmap`/`ridmap` mount of `spec` (whose checks
/// `validate::create` already made) through the user namespace the container joins.
pub(crate) fn prepare(bundle: &Path, spec: &Spec) -> Result<Trees, ExecError> {
    let mut trees = Vec::new();
    let mut userns: Option<OwnedFd> = None;
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let options = m.options().as_deref().unwrap_or_default();
        let Ok(opts) = MountOptions::parse(options) else {
            continue; // reported, naming the option, when the mount is made
        };
        let Some(scope) = opts.idmap else { continue };
        let ns = match &userns {
            Some(ns) => ns,
            None => userns.insert(open_userns(spec)?),
        };
        let dest = m.destination();
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_absolute() {
            source
        } else {
            bundle.join(source)
        };
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if opts.flags.contains(MsFlags::MS_REC) {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        let what = |step: &str| {
            format!(
                "id-mapped mount {} on {}: {step}",
                source.display(),
                dest.display()
            )
        };
        let tree = open_tree(CWD, &source, flags)
            .map_err(|e| ExecError::sys(what("clone the source"), errno(e)))?;
        let recursive = scope == IdmapScope::Recursive;
        match crate::sys::mount::set_idmap(tree.as_fd(), ns.as_fd(), recursive) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL) => {
                return Err(ExecError::IdmapUnsupported {
                    destination: dest.clone(),
                    path: source.clone(),
                    filesystem: filesystem_of(&source),
                });
            }
            Err(e) => return Err(ExecError::sys(what("set MOUNT_ATTR_IDMAP"), e)),
        }
        trees.push((index, tree));
    }
    Ok(Trees(trees))
}

/// The user namespace the container joins (by path; `validate` refuses a new one here).
fn open_userns(spec: &Spec) -> Result<OwnedFd, ExecError> {
    let path: PathBuf = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User))
        .and_then(|n| n.path().clone())
        .ok_or_else(|| {
            ExecError::InvalidSpec("idmap mount without a user namespace to join".into())
        })?;
    std::fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| ExecError::sys(format!("open user namespace {}", path.display()), io(&e)))
}

/// The type of the filesystem `path` is on, from its mount's line in `/proc/self/mountinfo`
/// (`ext4`, `nfs4`, `fuse.sshfs`), or its `statfs` magic number.
fn filesystem_of(path: &Path) -> String {
    let id = rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID)
        .ok()
        .map(|st| st.stx_mnt_id.to_string());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let from_info = id.and_then(|id| {
        info.lines()
            .filter(|l| l.split(' ').next() == Some(id.as_str()))
            .find_map(|l| l.split(" - ").nth(1)?.split(' ').next().map(str::to_string))
    });
    from_info.unwrap_or_else(|| match rustix::fs::statfs(path) {
        Ok(st) => format!("a filesystem of magic {:#x}", st.f_type),
        Err(_) => "an unknown filesystem".into(),
    })
}

fn errno(e: rustix::io::Errno) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error())
}

fn io(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
