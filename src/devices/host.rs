//! CDI device nodes completed from the host: a node whose spec omits its type or numbers takes
//! them (and its file mode) from the host node at `hostPath` (or `path`), which must then be a
//! character, block or FIFO node itself (a symlink is not followed). A fully specified node needs
//! no host node.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxDeviceType;

use super::schema::DeviceNode;

/// A device node with everything the OCI spec needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNode {
    /// Inside the container.
    pub path: PathBuf,
    pub typ: LinuxDeviceType,
    pub major: i64,
    pub minor: i64,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The cgroup access to allow (`rwm` subset); `None` for none (`permissions: none`, FIFOs).
    pub access: Option<String>,
}

fn parse_type(t: &str) -> LinuxDeviceType {
    match t {
        "b" => LinuxDeviceType::B,
        "u" => LinuxDeviceType::U,
        "p" => LinuxDeviceType::P,
        _ => LinuxDeviceType::C,
    }
}

/// The type, numbers and permission bits of a host node, or why it is not one.
fn stat_node(path: &Path) -> Result<(LinuxDeviceType, i64, i64, u32), String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("host device {}: {e}", path.display()))?;
    let kind = meta.file_type();
    let typ = if kind.is_char_device() {
        LinuxDeviceType::C
    } else if kind.is_block_device() {
        LinuxDeviceType::B
    } else if kind.is_fifo() {
        LinuxDeviceType::P
    } else {
        return Err(format!("host device {}: not a device node", path.display()));
    };
    let rdev = meta.rdev();
    Ok((
        typ,
        i64::from(libc::major(rdev)),
        i64::from(libc::minor(rdev)),
        meta.mode() & 0o777,
    ))
}

/// Completes one node (paths were checked when its spec was loaded).
pub fn host_node(n: &DeviceNode) -> Result<HostNode, String> {
    let spec_type = n.typ.as_deref().filter(|t| !t.is_empty()).map(parse_type);
    let major = n.major.unwrap_or(0);
    let minimal = spec_type.is_some_and(|t| major != 0 || t == LinuxDeviceType::P);
    let host = n.host_path.as_deref().unwrap_or(&n.path);
    let mut node = HostNode {
        path: PathBuf::from(&n.path),
        typ: spec_type.unwrap_or(LinuxDeviceType::C),
        major,
        minor: n.minor.unwrap_or(0),
        file_mode: n.file_mode.map(|m| m & 0o777),
        uid: n.uid,
        gid: n.gid,
        access: None,
    };
    match stat_node(Path::new(host)) {
        Ok((typ, host_major, host_minor, mode)) => {
            node.file_mode.get_or_insert(mode);
            if !minimal {
                let same = |a: LinuxDeviceType, b: LinuxDeviceType| {
                    let c = |t| {
                        if t == LinuxDeviceType::U {
                            LinuxDeviceType::C
                        } else {
                            t
                        }
                    };
                    c(a) == c(b)
                };
                if let Some(t) = spec_type
                    && !same(t, typ)
                {
                    return Err(format!(
                        "device node {}: type {} in the spec, but host node {host} is {}",
                        n.path,
                        t.as_str(),
                        typ.as_str()
                    ));
                }
                node.typ = spec_type.unwrap_or(typ);
                if node.typ != LinuxDeviceType::P && major == 0 {
                    node.major = host_major;
                    node.minor = host_minor;
                }
            }
        }
        Err(why) if !minimal => return Err(why),
        Err(_) => {}
    }
    node.access = match (node.typ, n.permissions.as_deref()) {
        (LinuxDeviceType::P, _) | (_, Some("none")) => None,
        (_, None | Some("")) => Some("rwm".into()),
        (_, Some(p)) => Some(p.into()),
    };
    Ok(node)
}

/// [`host_node`] of each.
pub fn host_nodes(nodes: &[DeviceNode]) -> Result<Vec<HostNode>, String> {
    nodes.iter().map(host_node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, host: Option<&str>) -> DeviceNode {
        DeviceNode {
            path: path.into(),
            host_path: host.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn missing_type_and_numbers_come_from_the_host_node() {
        let n = host_node(&node("/dev/mynull", Some("/dev/null"))).unwrap();
        assert_eq!(
            (n.typ, n.major, n.minor, n.file_mode, n.access.as_deref()),
            (LinuxDeviceType::C, 1, 3, Some(0o666), Some("rwm"))
        );
        let mut read_only = node("/dev/null", None);
        read_only.permissions = Some("r".into());
        read_only.typ = Some("u".into());
        let n = host_node(&read_only).unwrap();
        assert_eq!(
            (n.typ, n.major, n.access.as_deref()),
            (LinuxDeviceType::U, 1, Some("r"))
        );
        let mut none = node("/dev/null", None);
        none.permissions = Some("none".into());
        assert_eq!(host_node(&none).unwrap().access, None);
    }

    #[test]
    fn a_fully_specified_node_needs_no_host_node() {
        let mut n = node("/dev/vendor0", Some("/nonexistent/vendor0"));
        n.typ = Some("c".into());
        n.major = Some(195);
        n.minor = Some(7);
        n.file_mode = Some(0o100_660 | (1 << 26)); // Go's FileMode bits are dropped
        let h = host_node(&n).unwrap();
        assert_eq!((h.major, h.minor, h.file_mode), (195, 7, Some(0o660)));
    }

    #[test]
    fn a_missing_or_wrong_host_node_is_refused() {
        let err = host_node(&node("/dev/x", Some("/nonexistent/x"))).unwrap_err();
        assert!(err.contains("/nonexistent/x"), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let err = host_node(&node("/dev/x", Some(path))).unwrap_err();
        assert!(err.contains("not a device node"), "{err}");
        let mut block = node("/dev/x", Some("/dev/null"));
        block.typ = Some("b".into());
        let err = host_node(&block).unwrap_err();
        assert!(err.contains("type b"), "{err}");
        // A symlink to a device is not followed.
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let err = host_node(&node("/dev/x", Some(link.to_str().unwrap()))).unwrap_err();
        assert!(err.contains("not a device node"), "{err}");
    }
}
