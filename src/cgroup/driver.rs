//! The cgroup driver (kubelet's `cgroupDriver`, which must match) and the names it gives a
//! container's cgroup: its cgroupfs path, and what an OCI runtime's `linux.cgroupsPath` says.
//!
//! - `cgroupfs`: the container's cgroup is `<cgroup_parent>/<id>`, a directory berth makes; a
//!   parent in systemd's slice form is used as the slice's directory.
//! - `systemd`: the pod's cgroup is the slice kubelet names (`kubepods-burstable-pod<uid>.slice`)
//!   and the container's a transient scope `berth-<id>.scope` in it, as containerd names its
//!   `cri-containerd-<id>.scope` and CRI-O its `crio-<id>.scope`. An OCI runtime is told
//!   `<slice>:berth:<id>` (runc's and crun's `--systemd-cgroup` form).
//!
//! Either way berth remembers the cgroupfs path: stats, OOM, signals and updates read the
//! directory, and a path whose leaf is a scope in a slice is a systemd unit (`unit_of`).

use serde::{Deserialize, Serialize};

use super::CgroupError;
use super::fs::Result;
use super::slice::{expand_slice, is_slice_name, slice_of_path};

/// Who makes pod and container cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// berth writes cgroupfs directories itself.
    #[default]
    Cgroupfs,
    /// systemd owns the tree: slices and scopes are transient units made over D-Bus.
    Systemd,
}

/// The prefix of berth's scope names (`berth-<id>.scope`) and the middle of runc's
/// `<slice>:berth:<id>`.
pub const SCOPE_PREFIX: &str = "berth";
/// A container's cgroup parent when the pod names none: berth's tree for cgroupfs, the slice
/// runc also uses by default for systemd.
const DEFAULT_PARENT: &str = "/berth";
const DEFAULT_SLICE: &str = "system.slice";

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }

    /// The cgroupfs path (with its leading `/`) of container `id` under the pod's
    /// `cgroup_parent` as kubelet sent it (empty: the default parent): a directory named by the
    /// id, or the id's scope.
    pub fn container_path(self, parent: &str, id: &str) -> Result<String> {
        let dir = self.parent_path(parent)?;
        Ok(format!("{}/{}", dir.trim_end_matches('/'), self.leaf(id)))
    }

    /// The last component of container `id`'s cgroup path: the id, or its scope.
    fn leaf(self, id: &str) -> String {
        match self {
            Driver::Cgroupfs => id.to_string(),
            Driver::Systemd => scope_name(id),
        }
    }

    /// The cgroupfs directory (with its leading `/`) the pod's containers go under, for its
    /// `cgroup_parent` as kubelet sent it (empty: the default parent). The systemd driver needs a
    /// slice there, by name or as its expanded path (kubelet sends the latter); any other cgroupfs
    /// path means kubelet runs the other driver.
    pub fn parent_path(self, parent: &str) -> Result<String> {
        let parent = parent.trim_end_matches('/');
        match self {
            Driver::Cgroupfs => {
                let parent = if parent.is_empty() {
                    DEFAULT_PARENT
                } else {
                    parent
                };
                match is_slice_name(parent) {
                    true => expand_slice(parent),
                    false => Ok(parent.to_string()),
                }
            }
            Driver::Systemd => {
                let slice = if parent.is_empty() {
                    DEFAULT_SLICE
                } else {
                    slice_of_path(parent).unwrap_or(parent)
                };
                if !is_slice_name(slice) {
                    return Err(CgroupError::InvalidPath {
                        path: parent.to_string(),
                        reason: "the systemd cgroup driver needs a slice name as the cgroup \
                                 parent (kubelet's cgroupDriver must be systemd too)",
                    });
                }
                expand_slice(slice)
            }
        }
    }

    /// What a bundle's `linux.cgroupsPath` says for the cgroup at `path`: the path itself, or
    /// for a systemd scope `<slice>:berth:<id>`.
    pub fn oci_path(self, path: &str) -> String {
        match (self, unit_of(path)) {
            (Driver::Systemd, Some(unit)) => {
                let id = unit
                    .scope
                    .strip_prefix(SCOPE_PREFIX)
                    .and_then(|s| s.strip_prefix('-'))
                    .and_then(|s| s.strip_suffix(".scope"))
                    .unwrap_or(&unit.scope);
                format!("{}:{SCOPE_PREFIX}:{id}", unit.slice)
            }
            _ => path.to_string(),
        }
    }
}

/// Whether `path` is container `id`'s own cgroup under either driver (its last component is the
/// id or the id's scope), not a parent it was placed in.
pub fn is_container_cgroup(path: &str, id: &str) -> bool {
    let leaf = std::path::Path::new(path)
        .file_name()
        .and_then(|l| l.to_str());
    [Driver::Cgroupfs, Driver::Systemd]
        .iter()
        .any(|d| leaf == Some(d.leaf(id).as_str()))
}

/// The scope of container `id`.
pub fn scope_name(id: &str) -> String {
    format!("{SCOPE_PREFIX}-{id}.scope")
}

/// A cgroup that is a systemd scope in a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The slice it is in (`-.slice` for the root).
    pub slice: String,
    /// The scope's unit name (`berth-<id>.scope`).
    pub scope: String,
}

/// The unit a cgroupfs path is, when its leaf is a `.scope` and its parent a slice (or the root).
pub fn unit_of(path: &str) -> Option<Unit> {
    let path = path.trim_end_matches('/');
    let (parent, leaf) = path.rsplit_once('/')?;
    if !leaf.ends_with(".scope") || leaf.len() == ".scope".len() {
        return None;
    }
    let slice = match parent.rsplit('/').next() {
        _ if parent.is_empty() => "-.slice".to_string(),
        Some(s) if s.ends_with(".slice") => s.to_string(),
        _ => return None,
    };
    Some(Unit {
        slice,
        scope: leaf.to_string(),
    })
}

/// The cgroupfs path a bundle's `linux.cgroupsPath` names, in either form: a path, or
/// `<slice>:<prefix>:<name>` (the scope `<prefix>-<name>.scope`).
pub fn path_from_oci(cgroups_path: &str) -> Result<String> {
    if cgroups_path.starts_with('/') || !cgroups_path.contains(':') {
        return Ok(cgroups_path.to_string());
    }
    let invalid = |reason| CgroupError::InvalidPath {
        path: cgroups_path.to_string(),
        reason,
    };
    let mut parts = cgroups_path.split(':');
    let (Some(slice), Some(prefix), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not <slice>:<prefix>:<name>"));
    };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err(invalid("not <slice>:<prefix>:<name>"));
    }
    let slice = if slice.is_empty() { "-.slice" } else { slice };
    let dir = expand_slice(slice)?;
    let scope = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{}/{scope}", dir.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_cgroup_ends_in_its_id_or_its_scope() {
        assert!(is_container_cgroup("/berth/abc", "abc"));
        assert!(is_container_cgroup("/p.slice/berth-abc.scope", "abc"));
        assert!(!is_container_cgroup("/kubepods/pod1", "abc"));
        assert!(!is_container_cgroup("/p.slice/berth-abcd.scope", "abc"));
    }

    const POD: &str = "kubepods-burstable-pod1_2.slice";
    const POD_DIR: &str =
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice";

    #[test]
    fn cgroupfs_paths_nest_the_id_under_the_parent() {
        let d = Driver::Cgroupfs;
        assert_eq!(d.container_path("", "abc").unwrap(), "/berth/abc");
        assert_eq!(
            d.container_path("/kubepods/besteffort/pod1/", "abc")
                .unwrap(),
            "/kubepods/besteffort/pod1/abc"
        );
        assert_eq!(
            d.container_path(POD, "abc").unwrap(),
            format!("{POD_DIR}/abc")
        );
        assert!(d.container_path("kubepods--x.slice", "abc").is_err());
        assert_eq!(d.oci_path("/kubepods/pod1/abc"), "/kubepods/pod1/abc");
        assert_eq!(d.parent_path("").unwrap(), "/berth");
        assert_eq!(d.parent_path("/kubepods/pod1/").unwrap(), "/kubepods/pod1");
        assert_eq!(d.parent_path(POD).unwrap(), POD_DIR);
    }

    #[test]
    fn systemd_paths_are_scopes_in_the_pods_slice() {
        let d = Driver::Systemd;
        let path = d.container_path(POD, "abc").unwrap();
        assert_eq!(path, format!("{POD_DIR}/berth-abc.scope"));
        assert_eq!(d.oci_path(&path), format!("{POD}:berth:abc"));
        assert_eq!(
            d.container_path("", "abc").unwrap(),
            "/system.slice/berth-abc.scope"
        );
        let err = d.container_path("/kubepods/pod1", "abc").unwrap_err();
        assert!(err.to_string().contains("slice name"), "{err}");
        assert!(matches!(err, CgroupError::InvalidPath { .. }));
        assert!(d.container_path("kubepods--x.slice", "abc").is_err());
        assert_eq!(d.parent_path(POD).unwrap(), POD_DIR);
        // kubelet on the systemd driver sends the pod slice's expanded path.
        assert_eq!(d.parent_path(POD_DIR).unwrap(), POD_DIR);
        assert_eq!(
            d.container_path(POD_DIR, "abc").unwrap(),
            format!("{POD_DIR}/berth-abc.scope")
        );
        assert_eq!(d.parent_path("").unwrap(), "/system.slice");
        assert!(d.parent_path("/kubepods/pod1").is_err());
    }

    #[test]
    fn a_scope_in_a_slice_is_a_unit() {
        assert_eq!(
            unit_of(&format!("{POD_DIR}/berth-abc.scope")),
            Some(Unit {
                slice: POD.into(),
                scope: "berth-abc.scope".into()
            })
        );
        assert_eq!(
            unit_of("/berth-abc.scope").map(|u| u.slice),
            Some("-.slice".into())
        );
        for plain in [
            "/berth/abc",
            "/kubepods/pod1/abc.scope",
            "/a.slice/.scope",
            "/",
        ] {
            assert_eq!(unit_of(plain), None, "{plain}");
        }
    }

    #[test]
    fn oci_paths_in_either_form_name_the_cgroupfs_path() {
        assert_eq!(path_from_oci("/berth/abc").unwrap(), "/berth/abc");
        assert_eq!(
            path_from_oci(&format!("{POD}:berth:abc")).unwrap(),
            format!("{POD_DIR}/berth-abc.scope")
        );
        assert_eq!(
            path_from_oci("system.slice:cri-containerd:x").unwrap(),
            "/system.slice/cri-containerd-x.scope"
        );
        assert_eq!(path_from_oci(":runc:x").unwrap(), "/runc-x.scope");
        for bad in ["a.slice:b", "a.slice:b:c:d", "a.slice:b:", "x:b:c"] {
            assert!(path_from_oci(bad).is_err(), "{bad}");
        }
    }
}
