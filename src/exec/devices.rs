//! Device nodes in the container's `/dev`: the default set (null, zero, full, random, urandom,
//! tty) plus `linux.devices`, created with `mknod` (or, where that is not permitted, bind-mounted
//! from the host), and the standard symlinks (`/dev/fd`, `/dev/stdin`, ..., `/dev/ptmx`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, symlinkat, unlinkat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::error::{Context, StepError};
use super::mounts::bind_onto;
use super::resolve::Root;

/// One device node to create.
#[derive(Debug, Clone)]
struct Node {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices every container gets: (name, major, minor).
const DEFAULTS: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The standard symlinks: (link, target).
const LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

fn node(device: &LinuxDevice) -> Result<Node, StepError> {
    let kind = match device.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            let msg = "type \"a\" is only valid in cgroup rules";
            return Err(StepError::new(
                format!("device {}", device.path().display()),
                msg,
            ));
        }
    };
    Ok(Node {
        path: device.path().clone(),
        kind,
        major: device.major().try_into().unwrap_or(0),
        minor: device.minor().try_into().unwrap_or(0),
        mode: device.file_mode().unwrap_or(0o666),
        uid: device.uid().unwrap_or(0),
        gid: device.gid().unwrap_or(0),
    })
}

/// Creates the default devices (unless `/dev` is bind-mounted from the host), `linux.devices`
/// and the symlinks.
pub(crate) fn create(root: &Root, spec: &Spec) -> Result<(), StepError> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let dev_is_host_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    let mut nodes = Vec::new();
    if !dev_is_host_bind {
        nodes.extend(DEFAULTS.iter().map(|(name, major, minor)| Node {
            path: Path::new("/dev").join(name),
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }));
    }
    let devices = spec.linux().as_ref().and_then(|l| l.devices().clone());
    for device in devices.unwrap_or_default() {
        let n = node(&device)?;
        nodes.retain(|d| d.path != n.path);
        nodes.push(n);
    }
    for n in &nodes {
        create_node(root, n)?;
    }
    if !dev_is_host_bind {
        for (link, target) in LINKS {
            symlink(root, Path::new(link), target)?;
        }
    }
    Ok(())
}

/// Replaces whatever is at `n.path` (not a directory) with the device node.
fn create_node(root: &Root, n: &Node) -> Result<(), StepError> {
    let what = || format!("create device {}", n.path.display());
    let (parent, name) = root.parent_of(&n.path)?;
    match unlinkat(parent.as_fd(), &name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(StepError::new(what(), format!("remove existing: {e}"))),
    }
    let mode = Mode::from_bits_truncate(n.mode as nix::libc::mode_t);
    match mknodat(
        parent.as_fd(),
        &name,
        n.kind,
        mode,
        makedev(n.major, n.minor),
    ) {
        Ok(()) => {}
        Err(Errno::EPERM) if n.kind != SFlag::S_IFIFO => return bind_host_device(root, n),
        Err(e) => return Err(StepError::new(what(), e)),
    }
    fchownat(
        parent.as_fd(),
        &name,
        Some(Uid::from_raw(n.uid)),
        Some(Gid::from_raw(n.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown device {}", n.path.display()))
}

/// Without CAP_MKNOD (e.g. in a user namespace): bind-mount the host's node of the same number
/// onto an empty file: `/dev/{char,block}/M:m` (udev's links) or, on hosts without them, the
/// node at the same path on the host when its number matches.
fn bind_host_device(root: &Root, n: &Node) -> Result<(), StepError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let block = n.kind == SFlag::S_IFBLK;
    let class = if block { "block" } else { "char" };
    let by_number = PathBuf::from(format!("/dev/{class}/{}:{}", n.major, n.minor));
    let matches = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| {
            let kind_ok = if block {
                m.file_type().is_block_device()
            } else {
                m.file_type().is_char_device()
            };
            kind_ok && m.rdev() == makedev(n.major, n.minor)
        })
    };
    let host = if !matches(&by_number) && matches(&n.path) {
        n.path.clone()
    } else {
        by_number
    };
    let target = root.ensure(&n.path, false)?;
    bind_onto(&host, target.as_fd(), nix::mount::MsFlags::empty())
        .ctx(|| format!("bind mount {} on {}", host.display(), n.path.display()))
}

fn symlink(root: &Root, link: &Path, target: &str) -> Result<(), StepError> {
    let (parent, name) = root.parent_of(link)?;
    match unlinkat(parent.as_fd(), &name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        // A directory there (e.g. an image's /dev/fd): leave it as the image has it.
        Err(Errno::EISDIR) => return Ok(()),
        Err(e) => return Err(StepError::new(format!("replace {}", link.display()), e)),
    }
    symlinkat(target, parent.as_fd(), &name)
        .ctx(|| format!("symlink {} -> {target}", link.display()))
}
