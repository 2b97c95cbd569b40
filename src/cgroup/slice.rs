//! systemd's slice names as cgroupfs paths: `kubepods-burstable-pod1.slice` is the cgroup
//! `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice`.
//!
//! kubelet configured with the systemd cgroup driver sends a pod's `cgroup_parent` as a slice
//! name; each `-` in it opens one more level of the slice tree, and `-.slice` is the root.

use super::CgroupError;
use super::fs::Result;

/// Whether `parent` is a systemd slice name rather than a cgroupfs path.
pub fn is_slice_name(parent: &str) -> bool {
    parent.ends_with(".slice") && !parent.contains('/')
}

/// The slice name of `path` when it is the cgroupfs path of a slice, as kubelet on the systemd
/// driver sends a pod's `cgroup_parent` (`/kubepods.slice/kubepods-besteffort.slice/
/// kubepods-besteffort-pod1.slice`: the pod's slice expanded level by level); `None` otherwise.
pub fn slice_of_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?.rsplit('/').next()?;
    let expanded = expand_slice(name).ok()?;
    (expanded == path).then_some(name)
}

/// The cgroupfs path (from the hierarchy's root, starting with `/`) of the slice `name`; the root
/// slice `-.slice` is `/`. Empty levels (`a--b.slice`, `-a.slice`, `a-.slice`) are invalid, as
/// systemd refuses them.
pub fn expand_slice(name: &str) -> Result<String> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: name.to_string(),
        reason,
    };
    if !is_slice_name(name) {
        return Err(invalid("not a systemd slice name (<a>-<b>.slice)"));
    }
    let stem = &name[..name.len() - ".slice".len()];
    if stem == "-" {
        return Ok("/".to_string());
    }
    if stem.is_empty() || stem.split('-').any(str::is_empty) {
        return Err(invalid("a slice name has an empty level"));
    }
    if stem
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "-_.:\\".contains(c)))
    {
        return Err(invalid(
            "a slice name has a character systemd does not allow",
        ));
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for level in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(level);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_slices_expand_level_by_level() {
        assert_eq!(
            expand_slice("kubepods-burstable-pod1_2.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"
        );
        assert_eq!(expand_slice("kubepods.slice").unwrap(), "/kubepods.slice");
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
    }

    #[test]
    fn malformed_slice_names_are_invalid() {
        for bad in [
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            ".slice",
            "a b.slice",
            "/kubepods.slice",
            "kubepods",
            "../x.slice",
        ] {
            let err = expand_slice(bad).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn an_expanded_slice_path_names_its_slice() {
        assert_eq!(
            slice_of_path(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"
            ),
            Some("kubepods-burstable-pod1_2.slice")
        );
        assert_eq!(slice_of_path("/kubepods.slice"), Some("kubepods.slice"));
        for not in [
            "kubepods.slice",
            "/kubepods/besteffort/pod1",
            "/x.slice/kubepods-besteffort.slice",
            "/kubepods-besteffort.slice",
            "/kubepods.slice/kubepods-besteffort.slice/",
            "/kubepods.slice/../kubepods-a.slice",
            "/",
        ] {
            assert_eq!(slice_of_path(not), None, "{not}");
        }
    }

    #[test]
    fn only_bare_slice_names_are_slice_names() {
        assert!(is_slice_name("kubepods-besteffort.slice"));
        assert!(!is_slice_name("/kubepods/besteffort"));
        assert!(!is_slice_name("/kubepods.slice/kubepods-besteffort.slice"));
    }
}
