//! The CRI `devices` of a container resolved on the host into [`DeviceNode`]s: each host path is
//! a character or block device, or a directory whose device nodes (recursively) are all taken,
//! as containerd does. Empty permissions mean `rwm`. Also the host's own device nodes, which a
//! privileged container gets.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::cri_api as api;
use oci_spec::runtime::LinuxDeviceType;

use super::{Result, RuntimeError};
use crate::spec::DeviceNode;

pub(super) fn cri_devices(config: &api::ContainerConfig) -> Result<Vec<DeviceNode>> {
    let mut nodes = Vec::new();
    for d in &config.devices {
        let invalid =
            |why: String| RuntimeError::InvalidArgument(format!("device {:?}: {why}", d.host_path));
        if !Path::new(&d.container_path).is_absolute() {
            return Err(invalid(format!(
                "container path {:?} is not absolute",
                d.container_path
            )));
        }
        let permissions = if d.permissions.is_empty() {
            "rwm".to_string()
        } else {
            d.permissions.clone()
        };
        let host = Path::new(&d.host_path);
        let meta = std::fs::metadata(host).map_err(|e| invalid(e.to_string()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(host, &mut found).map_err(|e| invalid(e.to_string()))?;
            for (path, meta) in found {
                let rel = path.strip_prefix(host).unwrap_or(&path);
                let inside = Path::new(&d.container_path).join(rel);
                nodes.push(node(inside, &meta, &permissions).expect("walk keeps devices"));
            }
            continue;
        }
        let path = PathBuf::from(&d.container_path);
        nodes.push(
            node(path, &meta, &permissions)
                .ok_or_else(|| invalid("not a character or block device".into()))?,
        );
    }
    Ok(nodes)
}

/// Directories of the host's /dev a privileged container does not get: its own terminals,
/// shared memory and message queues, and container managers' private state.
const HOST_DEV_SKIP_DIRS: &[&str] = &["pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev"];
/// Nodes of the host's /dev a privileged container does not get: the host's console, and the
/// host's pty multiplexer (the container's `/dev/ptmx` points at its own `/dev/pts`).
const HOST_DEV_SKIP_NODES: &[&str] = &["console", "ptmx"];

/// Every device node below `dev` (the host's `/dev`), at the same path in the container, then
/// `cri` (the CRI devices), which replace a host node at the same path. Nodes that vanish while
/// the directory is read are skipped.
pub(super) fn with_host_devices(dev: &Path, cri: Vec<DeviceNode>) -> Result<Vec<DeviceNode>> {
    let mut found = Vec::new();
    walk_host(dev, dev, &mut found).map_err(RuntimeError::io(format!(
        "list the host's devices in {}",
        dev.display()
    )))?;
    let mut nodes: Vec<DeviceNode> = found
        .into_iter()
        .filter(|n| !cri.iter().any(|c| c.path == n.path))
        .collect();
    nodes.extend(cri);
    Ok(nodes)
}

fn walk_host(dev: &Path, dir: &Path, found: &mut Vec<DeviceNode>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let rel = path.strip_prefix(dev).unwrap_or(&path);
        let name = rel.to_string_lossy();
        if meta.is_dir() {
            if !HOST_DEV_SKIP_DIRS.contains(&name.as_ref()) {
                walk_host(dev, &path, found)?;
            }
            continue;
        }
        if HOST_DEV_SKIP_NODES.contains(&name.as_ref()) || meta.rdev() == 0 {
            continue;
        }
        if let Some(node) = node(Path::new("/dev").join(rel), &meta, "rwm") {
            found.push(node);
        }
    }
    Ok(())
}

fn node(path: PathBuf, meta: &std::fs::Metadata, permissions: &str) -> Option<DeviceNode> {
    let kind = meta.file_type();
    let typ = if kind.is_char_device() {
        LinuxDeviceType::C
    } else if kind.is_block_device() {
        LinuxDeviceType::B
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(DeviceNode {
        path,
        typ,
        major: i64::from(libc::major(rdev)),
        minor: i64::from(libc::minor(rdev)),
        file_mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        permissions: permissions.to_string(),
    })
}

/// Every device node below `dir` (symlinks not followed).
fn walk(dir: &Path, found: &mut Vec<(PathBuf, std::fs::Metadata)>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            walk(&path, found)?;
        } else if kind.is_char_device() || kind.is_block_device() {
            found.push((path, meta));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(host: &str, inside: &str, permissions: &str) -> api::Device {
        api::Device {
            container_path: inside.into(),
            host_path: host.into(),
            permissions: permissions.into(),
        }
    }

    fn config(devices: Vec<api::Device>) -> api::ContainerConfig {
        api::ContainerConfig {
            devices,
            ..Default::default()
        }
    }

    #[test]
    fn a_host_device_is_resolved_with_its_numbers_and_permissions() {
        let nodes = cri_devices(&config(vec![device("/dev/null", "/dev/mynull", "")])).unwrap();
        assert_eq!(nodes.len(), 1);
        let n = &nodes[0];
        assert_eq!(n.path, PathBuf::from("/dev/mynull"));
        assert_eq!((n.typ, n.major, n.minor), (LinuxDeviceType::C, 1, 3));
        assert_eq!(n.permissions, "rwm");
        assert_eq!(n.file_mode, 0o666);
    }

    #[test]
    fn a_directory_gives_every_device_below_it() {
        let nodes = cri_devices(&config(vec![device("/dev", "/host-dev", "r")])).unwrap();
        let null = nodes
            .iter()
            .find(|n| n.path == Path::new("/host-dev/null"))
            .expect("/dev/null found");
        assert_eq!(
            (null.major, null.minor, null.permissions.as_str()),
            (1, 3, "r")
        );
    }

    #[test]
    fn bad_devices_are_invalid_arguments() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        for d in [
            device(path, "/dev/x", "r"),
            device("/nonexistent/dev", "/dev/x", "r"),
            device("/dev/null", "relative", "r"),
        ] {
            let err = cri_devices(&config(vec![d.clone()])).unwrap_err();
            assert!(
                matches!(err, RuntimeError::InvalidArgument(_)),
                "{d:?}: {err}"
            );
        }
    }

    /// A fake host /dev (root: device nodes are made with mknod): every node below it, at the
    /// same path under /dev, except the console, ptmx and what is under pts, shm and mqueue; a
    /// CRI device at the same path replaces the host's node.
    #[test]
    fn the_hosts_devices_skip_the_hosts_own_terminals_and_yield_to_cri_devices() {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        let dev = tempfile::tempdir().unwrap();
        let d = dev.path();
        for sub in ["pts", "shm", "mqueue", "net"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let mode = Mode::from_bits_truncate(0o600);
        for (name, major, minor) in [
            ("loop-control", 10, 237),
            ("net/tun", 10, 200),
            ("console", 5, 1),
            ("ptmx", 5, 2),
            ("pts/0", 136, 0),
            ("null", 1, 3),
        ] {
            mknod(&d.join(name), SFlag::S_IFCHR, mode, makedev(major, minor))
                .unwrap_or_else(|e| panic!("mknod {name} (this test needs root): {e}"));
        }
        std::os::unix::fs::symlink("/proc/self/fd", d.join("fd")).unwrap();
        std::fs::write(d.join("shm/file"), "x").unwrap();
        let cri = cri_devices(&config(vec![device("/dev/zero", "/dev/null", "r")])).unwrap();
        let nodes = with_host_devices(d, cri).unwrap();
        let found: Vec<(String, i64, i64, &str)> = nodes
            .iter()
            .map(|n| {
                let path = n.path.display().to_string();
                (path, n.major, n.minor, n.permissions.as_str())
            })
            .collect();
        let want = [
            ("/dev/loop-control".to_string(), 10, 237, "rwm"),
            ("/dev/net/tun".to_string(), 10, 200, "rwm"),
            ("/dev/null".to_string(), 1, 5, "r"),
        ];
        assert_eq!(found, want);
        assert_eq!(nodes[0].file_mode, 0o600);
    }
}
