//! The container's mount table: the default kernel filesystems, then the pod's /etc files and
//! /dev/shm, then the CRI mounts; parents before children, a CRI mount replacing anything
//! else at (or under) its destination. A CRI mount with id mappings (kubelet's, in a pod with its
//! own user namespace) must carry exactly the pod's mappings; it becomes an `idmap` bind.

use std::path::{Path, PathBuf};

use crate::cri_api::{IdMapping, Mount as CriMount, MountPropagation};
use oci_spec::runtime::Mount;

use super::userns::{IdMap, UserNamespaceMaps};
use super::{EtcFiles, SpecError};

/// What the mount table adds to the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountPlan {
    pub mounts: Vec<Mount>,
    /// `rshared` when a mount is bidirectional, `rslave` when one is host-to-container, else
    /// `None` (the runtime's default).
    pub rootfs_propagation: Option<String>,
}

/// A bind mount request, from CRI or from the pod's files.
struct Bind {
    destination: String,
    source: PathBuf,
    propagation: MountPropagation,
    readonly: bool,
    recursive_readonly: bool,
    /// `Mount.mount_options`, each one of [`BIND_OPTIONS`].
    extra_options: Vec<String>,
    /// Id-mapped through the pod's user namespace (OCI option `idmap`, no per-mount mappings:
    /// the container's own, which [`idmapped`] checked are the ones asked for).
    idmap: bool,
}

/// The `Mount.mount_options` berth applies to a CRI bind mount; any other is refused.
const BIND_OPTIONS: [&str; 6] = [
    "nosuid",
    "nodev",
    "noexec",
    "noatime",
    "nodiratime",
    "relatime",
];
const BIND_OPTIONS_TEXT: &str = "nosuid, nodev, noexec, noatime, nodiratime, relatime";

/// Builds the mount table. `readonly_rootfs` makes the /etc file binds read-only; `privileged`
/// makes /sys and /sys/fs/cgroup writable; `userns` is the pod's user namespace, the only
/// mapping an id-mapped CRI mount may ask for.
pub(super) fn mounts(
    cri: &[CriMount],
    etc: &EtcFiles,
    shm: Option<&Path>,
    privileged: bool,
    readonly_rootfs: bool,
    userns: Option<&UserNamespaceMaps>,
) -> Result<MountPlan, SpecError> {
    let mut binds = cri
        .iter()
        .map(|m| cri_bind(m, userns))
        .collect::<Result<Vec<_>, _>>()?;
    let pod_files = [
        ("/etc/hostname", etc.hostname.as_deref(), readonly_rootfs),
        ("/etc/hosts", etc.hosts.as_deref(), readonly_rootfs),
        (
            "/etc/resolv.conf",
            etc.resolv_conf.as_deref(),
            readonly_rootfs,
        ),
        ("/dev/shm", shm, false),
    ];
    for (destination, source, readonly) in pod_files {
        let Some(source) = source else { continue };
        if binds.iter().any(|b| b.destination == destination) {
            continue;
        }
        binds.push(Bind {
            destination: destination.to_string(),
            source: source.to_path_buf(),
            propagation: MountPropagation::PropagationPrivate,
            readonly,
            recursive_readonly: false,
            extra_options: Vec::new(),
            idmap: false,
        });
    }
    binds.sort_by_key(|b| depth(&b.destination));

    let overridden = |dest: &str| {
        binds
            .iter()
            .any(|b| dest == b.destination || is_under(dest, &b.destination))
    };
    let mut mounts: Vec<Mount> = default_mounts(privileged)
        .into_iter()
        .filter(|m| !overridden(&m.destination().to_string_lossy()))
        .collect();
    mounts.extend(binds.iter().map(bind_mount));

    let has = |p| binds.iter().any(|b| b.propagation == p);
    let rootfs_propagation = if has(MountPropagation::PropagationBidirectional) {
        Some("rshared".to_string())
    } else if has(MountPropagation::PropagationHostToContainer) {
        Some("rslave".to_string())
    } else {
        None
    };
    Ok(MountPlan {
        mounts,
        rootfs_propagation,
    })
}

/// Validates one CRI mount. `selinux_relabel` is the caller's business (it needs I/O).
fn cri_bind(m: &CriMount, userns: Option<&UserNamespaceMaps>) -> Result<Bind, SpecError> {
    let fail = |reason| SpecError::Mount {
        container_path: m.container_path.clone(),
        reason,
    };
    if !m.container_path.starts_with('/') {
        return Err(fail("container path must be absolute"));
    }
    if m.host_path.is_empty() {
        return Err(fail(
            "no host path (image volumes must be resolved by the caller)",
        ));
    }
    let idmap = idmapped(m, userns).map_err(|reason| SpecError::IdMappedMount {
        container_path: m.container_path.clone(),
        reason,
    })?;
    let propagation =
        MountPropagation::try_from(m.propagation).map_err(|_| fail("unknown mount propagation"))?;
    if m.recursive_read_only && !m.readonly {
        return Err(fail("recursive read-only mount must also be read-only"));
    }
    if m.recursive_read_only && propagation != MountPropagation::PropagationPrivate {
        return Err(fail("recursive read-only mount needs private propagation"));
    }
    if let Some(option) = m
        .mount_options
        .iter()
        .find(|o| !BIND_OPTIONS.contains(&o.as_str()))
    {
        return Err(SpecError::MountOption {
            container_path: m.container_path.clone(),
            option: option.clone(),
            allowed: BIND_OPTIONS_TEXT,
        });
    }
    Ok(Bind {
        destination: clean(&m.container_path),
        source: PathBuf::from(&m.host_path),
        propagation,
        readonly: m.readonly,
        recursive_readonly: m.recursive_read_only,
        extra_options: m.mount_options.clone(),
        idmap,
    })
}

/// Whether `m` is id-mapped. kubelet gives each mount of a `hostUsers: false` pod the pod's own
/// mappings (container id -> host id), so that files show inside with the ids they have on disk;
/// that is the pod's user namespace used as the mount's idmapping, the only one berth builds.
/// Anything else (mappings on a pod without a user namespace, one list without the other,
/// other ranges) is refused.
fn idmapped(m: &CriMount, userns: Option<&UserNamespaceMaps>) -> Result<bool, String> {
    if m.uid_mappings.is_empty() && m.gid_mappings.is_empty() {
        return Ok(false);
    }
    let Some(pod) = userns else {
        return Err("id mappings on a mount of a pod that has no user namespace".into());
    };
    for (kind, maps, want) in [
        ("uid", &m.uid_mappings, pod.uids),
        ("gid", &m.gid_mappings, pod.gids),
    ] {
        if !matches!(maps.as_slice(), [one] if same(one, want)) {
            return Err(format!(
                "{kind} mappings {} are not the pod's user namespace mapping {}",
                show(maps),
                want.to_flag()
            ));
        }
    }
    Ok(true)
}

fn same(m: &IdMapping, want: IdMap) -> bool {
    (m.container_id, m.host_id, m.length) == (want.container, want.host, want.size)
}

/// `[container:host:length, ...]` for an error message.
fn show(maps: &[IdMapping]) -> String {
    let each: Vec<String> = maps
        .iter()
        .map(|m| format!("{}:{}:{}", m.container_id, m.host_id, m.length))
        .collect();
    format!("[{}]", each.join(", "))
}

fn bind_mount(b: &Bind) -> Mount {
    let propagation = match b.propagation {
        MountPropagation::PropagationPrivate => "rprivate",
        MountPropagation::PropagationHostToContainer => "rslave",
        MountPropagation::PropagationBidirectional => "rshared",
    };
    let access = match (b.readonly, b.recursive_readonly) {
        (_, true) => "rro",
        (true, false) => "ro",
        (false, false) => "rw",
    };
    let mut options = vec!["rbind", propagation, access];
    if b.idmap {
        options.push("idmap");
    }
    options.extend(b.extra_options.iter().map(String::as_str));
    mount(
        &b.destination,
        "bind",
        &b.source.to_string_lossy(),
        &options,
    )
}

/// The kernel filesystems every container gets (containerd's table, without /run).
fn default_mounts(privileged: bool) -> Vec<Mount> {
    let rw = if privileged { "rw" } else { "ro" };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", rw]),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", rw],
        ),
    ]
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into())
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// Lexically cleans an absolute path: no `.`, `..`, repeated or trailing slashes.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn depth(clean_path: &str) -> usize {
    clean_path.split('/').filter(|p| !p.is_empty()).count()
}

fn is_under(path: &str, parent: &str) -> bool {
    parent == "/"
        || path
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
#[path = "mounts_tests.rs"]
mod tests;
