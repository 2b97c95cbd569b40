//! The CRI `devices` of a container resolved on the host into [`DeviceNode`]s: each host path is
//! a character or block device, or a directory whose device nodes (recursively) are all taken,
//! as containerd does. Empty permissions mean `rwm`.

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
}
