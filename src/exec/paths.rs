//! Container-wide settings applied inside the container after `pivot_root`: hostname and
//! domainname, sysctls, read-only paths and masked paths.

use std::collections::HashMap;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use oci_spec::runtime::Spec;

use super::error::{Context, StepError};
use super::rootfs::remount_path;

/// Sets `hostname` and `domainname` (in the container's own or the pod's UTS namespace).
pub(crate) fn set_hostname(spec: &Spec) -> Result<(), StepError> {
    if let Some(name) = spec.hostname().as_deref().filter(|n| !n.is_empty()) {
        nix::unistd::sethostname(name).ctx(|| format!("set hostname {name:?}"))?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|n| !n.is_empty()) {
        std::fs::write("/proc/sys/kernel/domainname", name)
            .ctx(|| format!("set domainname {name:?}"))?;
    }
    Ok(())
}

/// Writes each sysctl to `/proc/sys` (`net.ipv4.ip_forward` -> `/proc/sys/net/ipv4/ip_forward`).
pub(crate) fn write_sysctls(sysctls: &HashMap<String, String>) -> Result<(), StepError> {
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        let rel = key.replace('.', "/");
        let path = Path::new("/proc/sys").join(&rel);
        let bad = Path::new(&rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)));
        if bad || rel.is_empty() {
            return Err(StepError::new(format!("sysctl {key}"), "invalid name"));
        }
        std::fs::write(&path, &sysctls[key]).ctx(|| format!("sysctl {key}={}", sysctls[key]))?;
    }
    Ok(())
}

/// Makes `path` read-only with a bind mount onto itself; a missing path is skipped.
pub(crate) fn make_readonly(path: &str) -> Result<(), StepError> {
    let what = || format!("make {path} read-only");
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(StepError::new(what(), e)),
    }
    remount_path(Path::new(path), MsFlags::MS_RDONLY).ctx(what)
}

/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory; a missing
/// path is skipped.
pub(crate) fn mask(path: &str) -> Result<(), StepError> {
    let what = || format!("mask {path}");
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StepError::new(what(), e)),
    };
    if meta.is_dir() {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), path, Some("tmpfs"), flags, None::<&str>).ctx(what)
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(what)
    }
}
