//! Mounting the spec's `mounts` inside the rootfs, before `pivot_root`. Targets are resolved with
//! [`Root`] and mounted through `/proc/self/fd/N`, so nothing is mounted outside the rootfs.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use oci_spec::runtime::Mount;
use rustix::mount::{MoveMountFlags, move_mount};

use super::cgroupfs;
use super::error::{Context, StepError};
use super::mount_options::MountOptions;
use super::resolve::{Root, proc_fd_path};
use crate::sys::mount::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, set_attr_recursive,
};

/// What mounting needs besides the mount entry.
#[derive(Debug)]
pub(crate) struct MountCtx<'a> {
    /// The container's root.
    pub root: &'a Root,
    /// The bundle directory; relative bind sources are relative to it.
    pub bundle: &'a Path,
    /// Whether the container has a new cgroup namespace (cgroup v1 mounts depend on it).
    pub new_cgroup_ns: bool,
}

impl MountCtx<'_> {
    /// Reopens `dest` (to see the mount now on top of it).
    pub fn reopen(&self, dest: &Path) -> Result<std::os::fd::OwnedFd, StepError> {
        self.root
            .open_path(dest)
            .ctx(|| format!("open {}", self.root.display(dest)))
    }
}

/// Mounts one entry of `spec.mounts`; `tree` is its id-mapped source, cloned by the caller
/// (`exec::idmap`), for an `idmap`/`ridmap` bind.
pub(crate) fn mount_entry(
    ctx: &MountCtx<'_>,
    m: &Mount,
    tree: Option<BorrowedFd<'_>>,
) -> Result<(), StepError> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("none");
    let options = m.options().as_deref().unwrap_or_default();
    let opts = MountOptions::parse(options)
        .map_err(|e| StepError::new(format!("mount {typ} on {}", dest.display()), e))?;
    if typ == "bind" || opts.is_bind() {
        return match (opts.idmap, tree) {
            (None, _) => bind(ctx, m, &opts),
            (Some(_), Some(tree)) => attach(ctx, m, &opts, tree),
            (Some(_), None) => Err(StepError::new(
                format!("id-mapped mount on {}", dest.display()),
                "the caller prepared no id-mapped tree for it",
            )),
        };
    }
    match typ {
        "cgroup" | "cgroup2" => cgroupfs::mount(ctx, dest, &opts),
        "sysfs" => sysfs(ctx, m, &opts),
        _ => {
            let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
            let target = ctx.root.mkdir_all(dest)?;
            mount_fs(target.as_fd(), &source, typ, opts.flags, &opts.data)
                .ctx(|| format!("mount {typ} on {}", dest.display()))?;
            finish(ctx, dest, &opts)
        }
    }
}

/// A new sysfs, or, where the kernel refuses one (EPERM: a user namespace that does not own
/// the network namespace, i.e. a host-network pod with its own user namespace), the host's
/// `/sys` bound recursively, as runc does. The bound tree then gets the requested `ro`,
/// `nosuid`, `nodev`, `noexec` on every one of its mounts (`mount_setattr`), so no submount of
/// the host's `/sys` stays writable.
fn sysfs(ctx: &MountCtx<'_>, m: &Mount, opts: &MountOptions) -> Result<(), StepError> {
    let dest = m.destination();
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from("sysfs"));
    let target = ctx.root.mkdir_all(dest)?;
    match mount_fs(target.as_fd(), &source, "sysfs", opts.flags, &opts.data) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) => {
            let what = || {
                format!(
                    "bind the host's /sys on {} (no sysfs of its own)",
                    dest.display()
                )
            };
            bind_onto(Path::new("/sys"), target.as_fd(), MsFlags::MS_REC).ctx(what)?;
            let set = [
                (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
                (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
                (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
                (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            ]
            .into_iter()
            .filter(|(ms, _)| opts.flags.contains(*ms))
            .fold(0, |bits, (_, attr)| bits | attr);
            set_attr_recursive(ctx.reopen(dest)?.as_fd(), set, 0).ctx(what)?;
        }
        Err(e) => {
            return Err(StepError::new(
                format!("mount sysfs on {}", dest.display()),
                e,
            ));
        }
    }
    finish(ctx, dest, opts)
}

/// `mount(source, target, typ, flags, data)` onto an open target.
pub(crate) fn mount_fs(
    target: BorrowedFd<'_>,
    source: &Path,
    typ: &str,
    flags: MsFlags,
    data: &str,
) -> nix::Result<()> {
    let data = (!data.is_empty()).then_some(data);
    mount(
        Some(source),
        proc_fd_path(target).as_str(),
        Some(typ),
        flags,
        data,
    )
}

/// A bind mount of a host path, remounted with the requested flags.
fn bind(ctx: &MountCtx<'_>, m: &Mount, opts: &MountOptions) -> Result<(), StepError> {
    let dest = m.destination();
    let source = m
        .source()
        .as_ref()
        .ok_or_else(|| StepError::new(format!("bind mount on {}", dest.display()), "no source"))?;
    let source = if source.is_absolute() {
        source.clone()
    } else {
        ctx.bundle.join(source)
    };
    let what = || format!("bind mount {} on {}", source.display(), dest.display());
    let meta = std::fs::metadata(&source).ctx(what)?;
    let target = ctx.root.ensure(dest, meta.is_dir())?;
    bind_onto(&source, target.as_fd(), opts.flags & MsFlags::MS_REC).ctx(what)?;
    let flags = opts.remount_flags();
    if !flags.is_empty() {
        remount_bind(ctx.reopen(dest)?.as_fd(), flags)
            .ctx(|| format!("remount {}", dest.display()))?;
    }
    finish(ctx, dest, opts)
}

/// Attaches the caller's detached id-mapped clone of a bind source (`move_mount`), then
/// applies the requested flags and propagation as for any bind.
fn attach(
    ctx: &MountCtx<'_>,
    m: &Mount,
    opts: &MountOptions,
    tree: BorrowedFd<'_>,
) -> Result<(), StepError> {
    let dest = m.destination();
    let what = || format!("attach the id-mapped mount on {}", dest.display());
    let stat = rustix::fs::fstat(tree).ctx(what)?;
    let is_dir = rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir();
    let target = ctx.root.ensure(dest, is_dir)?;
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(tree, "", target.as_fd(), "", flags).ctx(what)?;
    let flags = opts.remount_flags();
    if !flags.is_empty() {
        remount_bind(ctx.reopen(dest)?.as_fd(), flags)
            .ctx(|| format!("remount {}", dest.display()))?;
    }
    finish(ctx, dest, opts)
}

/// Bind-mounts `source` onto an open target (`rec`: `MS_REC` or empty).
pub(crate) fn bind_onto(source: &Path, target: BorrowedFd<'_>, rec: MsFlags) -> nix::Result<()> {
    let flags = MsFlags::MS_BIND | rec;
    mount(
        Some(source),
        proc_fd_path(target).as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
}

/// Remounts the bind mount at `target` with `flags`, keeping the restrictions it already has
/// (read-only, nosuid, nodev, noexec: a bind never loosens its source) and its atime mode unless
/// `flags` sets one.
pub(crate) fn remount_bind(target: BorrowedFd<'_>, flags: MsFlags) -> nix::Result<()> {
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | kept_flags(target, flags)?;
    let path = proc_fd_path(target);
    mount(None::<&str>, path.as_str(), None::<&str>, all, None::<&str>)
}

/// The flags of the mount at `target` that a remount with `flags` must repeat to keep them.
pub(crate) fn kept_flags(target: BorrowedFd<'_>, flags: MsFlags) -> nix::Result<MsFlags> {
    let current = fstatvfs(target)?.flags();
    let mut keep = MsFlags::empty();
    let pairs = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ];
    let atime = [
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    let atime_mask = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    for (st, ms) in pairs {
        if current.contains(st) {
            keep |= ms;
        }
    }
    if !flags.intersects(atime_mask) {
        for (st, ms) in atime {
            if current.contains(st) {
                keep |= ms;
            }
        }
    }
    Ok(keep)
}

/// Recursive attributes (`rro`, ...) and propagation changes, after the mount exists.
pub(crate) fn finish(
    ctx: &MountCtx<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), StepError> {
    if opts.recursive_set != 0 || opts.recursive_clear != 0 {
        let fd = ctx.reopen(dest)?;
        set_attr_recursive(fd.as_fd(), opts.recursive_set, opts.recursive_clear).map_err(|e| {
            let what = format!("set recursive attributes (rro, ...) on {}", dest.display());
            match e {
                nix::errno::Errno::ENOSYS => StepError::new(
                    what,
                    "mount_setattr is not supported by this kernel (Linux 5.12+)",
                ),
                e => StepError::new(what, e),
            }
        })?;
    }
    for propagation in &opts.propagation {
        let fd = ctx.reopen(dest)?;
        let path = proc_fd_path(fd.as_fd());
        mount(
            None::<&str>,
            path.as_str(),
            None::<&str>,
            *propagation,
            None::<&str>,
        )
        .ctx(|| format!("set propagation {propagation:?} on {}", dest.display()))?;
    }
    Ok(())
}
