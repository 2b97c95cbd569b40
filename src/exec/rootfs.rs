//! The container's mount namespace: root propagation, the rootfs bind, the spec's mounts, device
//! nodes, `/dev/console`, `pivot_root` and the final read-only remount of `/`.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{fchdir, pivot_root};
use oci_spec::runtime::Spec;

use super::devices;
use super::error::{Context, StepError};
use super::idmap::Trees;
use super::mounts::{MountCtx, bind_onto, kept_flags, mount_entry};
use super::namespaces::NsPlan;
use super::protocol::{Channel, Level};
use super::resolve::Root;

/// Propagation of `/` during setup and after it, from `linux.rootfsPropagation`.
fn propagation(spec: &Spec) -> Result<(MsFlags, Option<MsFlags>), StepError> {
    let value = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    let rec = MsFlags::MS_REC;
    Ok(match value.as_str() {
        "" | "rprivate" => (rec | MsFlags::MS_PRIVATE, None),
        "private" => (MsFlags::MS_PRIVATE, None),
        "rslave" => (rec | MsFlags::MS_SLAVE, None),
        "slave" => (MsFlags::MS_SLAVE, None),
        // Shared from the start, so host mounts keep their peer groups and Bidirectional
        // mounts propagate back to the host (a slave made shared again would get a new group of
        // its own). pivot_root's refusal of a shared parent is handled by `private_parent`.
        "rshared" => (rec | MsFlags::MS_SHARED, None),
        "shared" => (MsFlags::MS_SHARED, None),
        "runbindable" => (rec | MsFlags::MS_SLAVE, Some(rec | MsFlags::MS_UNBINDABLE)),
        "unbindable" => (rec | MsFlags::MS_SLAVE, Some(MsFlags::MS_UNBINDABLE)),
        other => {
            let msg = format!("unknown value {other:?}");
            return Err(StepError::new("linux.rootfsPropagation", msg));
        }
    })
}

/// Sets up the mount namespace and pivots into the rootfs. Needs a new mount namespace.
/// `trees` are the id-mapped bind mounts the caller prepared, by mount index.
pub(crate) fn prepare(
    channel: &Channel,
    bundle: &Path,
    rootfs: &Path,
    spec: &Spec,
    plan: &NsPlan,
    tty: bool,
    trees: &Trees,
) -> Result<(), StepError> {
    if !plan.new_mount() {
        return Err(StepError::new(
            "prepare rootfs",
            "a new mount namespace is required",
        ));
    }
    let (during, after) = propagation(spec)?;
    mount(None::<&str>, "/", None::<&str>, during, None::<&str>)
        .ctx(|| format!("set propagation {during:?} on /"))?;
    if during.contains(MsFlags::MS_SHARED) {
        private_parent(rootfs)?;
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount rootfs {} onto itself", rootfs.display()))?;
    let root = Root::open(rootfs)?;
    let ctx = MountCtx {
        root: &root,
        bundle,
        new_cgroup_ns: plan.new_cgroup,
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount_entry(&ctx, m, trees.get(i))?;
        channel.log(
            Level::Debug,
            format!("mounted {}", m.destination().display()),
        );
    }
    devices::create(&root, spec)?;
    if tty {
        bind_console(channel, &root)?;
    }
    enter(&root)?;
    if let Some(flags) = after {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .ctx(|| format!("set propagation {flags:?} on /"))?;
    }
    Ok(())
}

/// Makes the mount that holds `rootfs` private (that mount only), as pivot_root refuses a new
/// root whose parent mount is shared. The rootfs bind made next then sits on a private parent.
fn private_parent(rootfs: &Path) -> Result<(), StepError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    let parent = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(crate::cgroup::unescape_mountinfo)
        .filter(|m| rootfs.starts_with(m))
        .max_by_key(|m| m.len())
        .unwrap_or_else(|| "/".to_string());
    mount(
        None::<&str>,
        parent.as_str(),
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| format!("make the rootfs's parent mount {parent} private"))
}

/// Bind-mounts the terminal on descriptor 0 onto `/dev/console`. The bind goes by the terminal's
/// path: a descriptor opened in another mount namespace cannot be bind-mounted directly.
fn bind_console(channel: &Channel, root: &Root) -> Result<(), StepError> {
    let tty = std::fs::read_link("/proc/self/fd/0").ctx(|| "find the terminal's path")?;
    if !tty.is_absolute() || !tty.exists() {
        let msg = format!(
            "terminal {} has no path here; no /dev/console",
            tty.display()
        );
        channel.log(Level::Warn, msg);
        return Ok(());
    }
    let console = root.ensure(Path::new("/dev/console"), false)?;
    bind_onto(&tty, console.as_fd(), MsFlags::empty())
        .ctx(|| format!("bind mount the terminal {} on /dev/console", tty.display()))
}

/// `pivot_root` into `root` with the old root stacked on the same directory, then detach the old
/// root (the technique described in pivot_root(2)), so no directory of the host stays reachable.
fn enter(root: &Root) -> Result<(), StepError> {
    let old = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the old root")?;
    fchdir(root.fd()).ctx(|| "enter the rootfs")?;
    pivot_root(".", ".").ctx(|| "pivot_root")?;
    fchdir(old.as_fd()).ctx(|| "enter the old root")?;
    // The old root must not propagate its unmount back to the host.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make the old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root")?;
    std::env::set_current_dir("/").ctx(|| "chdir /")?;
    Ok(())
}

/// `root.readonly`: remounts `/` read-only (after every other mount is in place).
pub(crate) fn remount_root_readonly() -> Result<(), StepError> {
    remount_path(Path::new("/"), MsFlags::MS_RDONLY).ctx(|| "remount / read-only")
}

/// Remounts the mount at `path` (in the container, after pivot_root) with `flags` added.
pub(crate) fn remount_path(path: &Path, flags: MsFlags) -> nix::Result<()> {
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | kept_flags(fd.as_fd(), flags)?;
    mount(None::<&str>, path, None::<&str>, all, None::<&str>)
}
