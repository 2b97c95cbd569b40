//! PURE builders: CRI container config + pod sandbox config + image config -> OCI runtime spec,
//! and the pod sandbox plan. No I/O: whatever needs the host or the rootfs (user names, device
//! numbers, namespace paths, cgroup version) arrives in [`ContainerInputs`] resolved.
//!
//! # Defaults (keep this table true)
//!
//! | field | non-privileged | privileged |
//! |---|---|---|
//! | `process.args` | CRI command+args; else image ENTRYPOINT + CRI args; else ENTRYPOINT + CMD; empty is an error | same |
//! | `process.env` | `PATH` (default below) and `HOSTNAME`, overlaid by image ENV, overlaid by CRI envs | same |
//! | default `PATH` | `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` | same |
//! | `process.cwd` | CRI working_dir, else image WorkingDir, else `/` (must be absolute) | same |
//! | `process.user` | [`ResolvedUser`]; additional gids = primary gid + supplemental groups (+ image /etc/group memberships under policy Merge) | same |
//! | `process.capabilities` | bounding = effective = permitted = [`DEFAULT_CAPS`] ± CRI add/drop (`ALL` allowed); inheritable, ambient empty | all of [`ALL_CAPS`] |
//! | `process.rlimits` | none: inherited from the shim, as under containerd's CRI plugin | same |
//! | `process.noNewPrivileges` | security context `no_new_privs` | same |
//! | `process.oomScoreAdj` | `linux.resources.oom_score_adj` when resources are given | same |
//! | `process.terminal` | CRI `tty` | same |
//! | apparmor, selinux | unset | same |
//! | `linux.seccomp` | none for Unconfined; berth's default profile for RuntimeDefault, the given profile for Localhost, each resolved for the bounding capabilities and the node's architecture | none |
//! | `root` | `rootfs` input, read-only if `readonly_rootfs` | same |
//! | `hostname` | the pod hostname when the pod has its own UTS namespace, else unset | same |
//! | mounts | `/proc`, `/dev` (tmpfs 755 64M), `/dev/pts`, `/dev/shm` (tmpfs 1777 64M or the pod's shm bind), `/dev/mqueue`, `/sys` (ro), `/sys/fs/cgroup` (ro), pod `/etc/{hostname,hosts,resolv.conf}` (ro with a read-only rootfs), CRI binds (`rbind`, `rprivate`/`rslave`/`rshared`, `ro`/`rw`/`rro`, `idmap` when the CRI mount carries the pod's user namespace mappings), sorted by depth; a CRI mount replaces anything at or under its destination | `/sys` and `/sys/fs/cgroup` rw |
//! | `linux.namespaces` | the pod's user namespace first when it has one; new pid (or the pod's for PID mode POD/TARGET, none for NODE), pod ipc/uts/net (none when the pod uses the host's), new mount, new cgroup on cgroup v2 | no cgroup namespace |
//! | `linux.uidMappings` / `gidMappings` | the pod's user namespace mappings, when it has one | same (a privileged pod cannot have one) |
//! | `linux.resources` | CRI cpu shares/quota/period, cpuset, memory limit, swap (= memory limit when unset, only with a swap controller), hugepages (only with a hugetlb controller), unified | same |
//! | `linux.resources.devices` | deny all; allow mknod; allow null, zero, full, random, urandom, tty, console, ptmx, pts; allow the [`DeviceNode`]s | allow all (as non-privileged without `privileged_host_devices`) |
//! | `linux.devices` | the [`DeviceNode`]s | same (the caller adds the host's) |
//! | `linux.sysctl` | the pod's namespaced sysctls ([`SandboxPlan::sysctls`]) | same |
//! | `linux.maskedPaths` / `readonlyPaths` | the security context's lists, or [`DEFAULT_MASKED_PATHS`] / [`DEFAULT_READONLY_PATHS`] when empty | none |
//! | `annotations` | CRI container annotations, then `io.kubernetes.cri.*` keys (container type, names, sandbox id, image) | same |
//!
//! Image VOLUMEs are not mounted here; CRI mounts are. A pod with its own user namespace
//! ([`SandboxPlan::userns`]) has every container join it first and carry its mappings in
//! `linux.uidMappings` / `gidMappings`; a CRI mount with exactly those mappings (kubelet puts them
//! on every mount of such a pod) is an `idmap` bind, id-mapped through the pod's user namespace;
//! other mappings, or mappings in a pod without a user namespace, are InvalidArgument.

mod caps;
mod error;
mod linux;
mod mounts;
mod process;
pub mod raw_env;
mod sandbox;
mod seccomp;
mod user;
mod userns;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::cri_api::{ContainerConfig, PodSandboxConfig};
use oci_spec::runtime::{Linux, LinuxCapabilities, LinuxDeviceType, Root, Spec};

use crate::image::manifest::ImageConfig;

pub use caps::{ALL_CAPS, DEFAULT_CAPS, capability_number};
pub use error::SpecError;
pub use linux::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
pub use process::DEFAULT_PATH;
pub use sandbox::{PinnedNamespaces, PodSysctls, SandboxPlan, sandbox_plan, sysctl_namespace};
pub use seccomp::{SeccompChoice, SeccompProfile, SeccompSource, node_arch, seccomp_source};
pub use user::{ResolvedUser, resolve_user, user_string};
pub use userns::{IdMap, UserNamespaceMaps};

/// The OCI runtime spec version berth's specs declare.
pub const OCI_VERSION: &str = "1.2.0";

/// Everything [`container_spec`] needs, with all I/O already done by the caller.
#[derive(Debug, Clone)]
pub struct ContainerInputs<'a> {
    pub container: &'a ContainerConfig,
    pub sandbox: &'a PodSandboxConfig,
    pub image: &'a ImageConfig,
    /// For the `io.kubernetes.cri.sandbox-id` annotation.
    pub sandbox_id: &'a str,
    /// The image as the container was created from it, for `io.kubernetes.cri.image-name`.
    pub image_name: &'a str,
    /// `root.path`.
    pub rootfs: PathBuf,
    /// Paths of the pod's pinned namespaces, as [`sandbox_plan`] asked for them.
    pub namespaces: PodNamespaces,
    /// `linux.cgroupsPath`, computed by the caller for its cgroup driver; empty leaves it unset.
    pub cgroups_path: String,
    /// The user from [`user_string`] resolved with [`resolve_user`] against the rootfs.
    pub user: ResolvedUser,
    /// The pod's /etc files to bind-mount.
    pub etc: EtcFiles,
    /// The pod-shared /dev/shm to bind (the host's for host IPC); `None` = a private tmpfs.
    pub shm: Option<PathBuf>,
    /// Device nodes to create and allow: the CRI `devices` (and for privileged containers the
    /// host's, when `privileged_host_devices`), stat-ed by the caller.
    pub devices: Vec<DeviceNode>,
    /// A privileged container may use every device (the allow-all device rule). `false` is the
    /// handler's `privileged_without_host_devices`: a privileged container then has the
    /// non-privileged device policy (the defaults and its `devices`).
    pub privileged_host_devices: bool,
    /// The seccomp confinement from [`seccomp_source`], a Localhost profile read by the caller.
    pub seccomp: SeccompChoice,
    pub host: &'a Host,
}

/// Paths of the pod's pinned namespace files; `None` where the pod uses the host's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pod-shared PID namespace (PID mode POD), or the target container's (TARGET).
    pub pid: Option<PathBuf>,
    /// The pod's user namespace, joined first (with [`SandboxPlan::userns`]).
    pub user: Option<PathBuf>,
}

/// Host files of the pod bound over the container's /etc ones; `None` = not bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
}

/// A device node resolved on the host by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: PathBuf,
    /// `C` (character) or `B` (block).
    pub typ: LinuxDeviceType,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// cgroup access: a non-empty subset of `rwm`.
    pub permissions: String,
}

/// Facts about the node the caller discovered once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// The unified cgroup hierarchy is mounted: containers get a cgroup namespace.
    pub cgroup_v2: bool,
    /// Swap accounting is available: memory+swap limits are set.
    pub swap_controller: bool,
    /// The hugetlb controller is mounted (v1) or offered (v2): hugepage limits are set. kubelet
    /// sends one for every page size the machine has, controller or not, and an external OCI
    /// runtime (runc) fails the container when it cannot apply one.
    pub hugetlb_controller: bool,
    /// The node's hostname: `HOSTNAME` for pods without one of their own (host network).
    pub hostname: String,
    /// The capabilities berth holds (its bounding set): what `ALL` and privileged grant.
    /// `None`: every capability.
    pub capabilities: Option<oci_spec::runtime::Capabilities>,
}

/// The cgroup resources of CRI container resources (for UpdateContainerResources). No device
/// rules: the container keeps the policy it was created with (its CRI devices, or all devices
/// when privileged).
pub fn container_resources(
    cri: &crate::cri_api::LinuxContainerResources,
    host: &Host,
) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    let mut resources = linux::resources(Some(cri), &[], false, host.swap_controller)?;
    resources.set_devices(None);
    if !host.hugetlb_controller {
        resources.set_hugepage_limits(None);
    }
    Ok(resources)
}

/// The device policy of a container that is not privileged and has no devices of its own: deny
/// all, allow mknod and the default character devices (`berth build`'s RUN steps get it).
pub fn default_device_rules() -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    linux::resources(None, &[], false, false)
        .ok()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default()
}

/// Builds the OCI runtime spec of a container. Pure: same inputs, same spec.
pub fn container_spec(inputs: &ContainerInputs) -> Result<Spec, SpecError> {
    let container = inputs.container;
    let sc = container
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let privileged = sc.is_some_and(|sc| sc.privileged);
    if privileged && !sandbox_privileged(inputs.sandbox) {
        let name = container_name(container);
        return Err(SpecError::PrivilegedInUnprivilegedPod(name));
    }
    let plan = sandbox_plan(inputs.sandbox)?;
    let hostname = plan.hostname.as_deref().unwrap_or(&inputs.host.hostname);
    let caps = caps::capabilities(sc, inputs.host.capabilities.as_ref())?;
    let seccomp = seccomp::section(&inputs.seccomp, privileged, &bounding_names(&caps));
    let process = process::process(inputs, hostname, caps)?;

    let readonly_rootfs = sc.is_some_and(|sc| sc.readonly_rootfs);
    let mut root = Root::default();
    root.set_path(inputs.rootfs.clone())
        .set_readonly(Some(readonly_rootfs));

    let mount_plan = mounts::mounts(
        &container.mounts,
        &inputs.etc,
        inputs.shm.as_deref(),
        privileged,
        readonly_rootfs,
        plan.userns.as_ref(),
    )?;
    let mut linux = linux_section(inputs, &plan, privileged)?;
    linux.set_seccomp(seccomp);
    linux.set_rootfs_propagation(mount_plan.rootfs_propagation);

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string())
        .set_root(Some(root))
        .set_mounts(Some(mount_plan.mounts))
        .set_process(Some(process))
        .set_hostname(plan.hostname.clone())
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(Some(annotations(inputs, hostname)))
        .set_linux(Some(linux));
    Ok(spec)
}

/// `linux`, except `rootfsPropagation`, which the mount table decides.
fn linux_section(
    inputs: &ContainerInputs,
    plan: &SandboxPlan,
    privileged: bool,
) -> Result<Linux, SpecError> {
    let container_linux = inputs.container.linux.as_ref();
    let sc = container_linux.and_then(|l| l.security_context.as_ref());
    let mut resources = linux::resources(
        container_linux.and_then(|l| l.resources.as_ref()),
        &inputs.devices,
        privileged && inputs.privileged_host_devices,
        inputs.host.swap_controller,
    )?;
    if !inputs.host.hugetlb_controller {
        resources.set_hugepage_limits(None);
    }
    let cgroupns = inputs.host.cgroup_v2 && !privileged;
    let pod_host_pid = inputs
        .sandbox
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|sc| sc.namespace_options.as_ref())
        .is_some_and(|o| o.pid == crate::cri_api::NamespaceMode::Node as i32);
    userns::check_container(
        sc.and_then(|sc| sc.namespace_options.as_ref()),
        plan.userns.as_ref(),
    )?;
    let mut namespaces =
        linux::namespaces(plan.pinned, sc, &inputs.namespaces, cgroupns, pod_host_pid)?;
    if plan.userns.is_some() {
        let path = inputs.namespaces.user.clone();
        let path = path.ok_or(SpecError::MissingNamespace("user"))?;
        let mut user = oci_spec::runtime::LinuxNamespace::default();
        user.set_typ(oci_spec::runtime::LinuxNamespaceType::User)
            .set_path(Some(path));
        namespaces.insert(0, user);
    }
    let (masked, readonly) = linux::protected_paths(sc, privileged);
    let sysctl: HashMap<String, String> = plan
        .sysctls
        .all()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let devices = linux::device_nodes(&inputs.devices);
    let cgroups_path = &inputs.cgroups_path;

    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces))
        .set_cgroups_path((!cgroups_path.is_empty()).then(|| cgroups_path.into()))
        .set_resources(Some(resources))
        .set_devices((!devices.is_empty()).then_some(devices))
        .set_sysctl((!sysctl.is_empty()).then_some(sysctl))
        .set_masked_paths(Some(masked))
        .set_readonly_paths(Some(readonly));
    if let Some(maps) = &plan.userns {
        linux
            .set_uid_mappings(Some(vec![maps.uids.to_oci()]))
            .set_gid_mappings(Some(vec![maps.gids.to_oci()]));
    }
    Ok(linux)
}

fn bounding_names(caps: &LinuxCapabilities) -> Vec<String> {
    caps.bounding()
        .iter()
        .flatten()
        .map(|c| c.to_string())
        .collect()
}

/// The CRI annotations, then berth's debugging keys (named like containerd's, which tools such
/// as RuntimeClass handlers already read).
fn annotations(inputs: &ContainerInputs, hostname: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> =
        inputs.container.annotations.clone().into_iter().collect();
    let env = process::env(&inputs.image.config.env, &inputs.container.envs, hostname);
    if let (_, Some(exact)) = raw_env::split(&env) {
        out.insert(raw_env::ANNOTATION.to_string(), exact);
    }
    let pod = inputs.sandbox.metadata.clone().unwrap_or_default();
    let keys = [
        ("container-type", "container".to_string()),
        ("container-name", container_name(inputs.container)),
        ("sandbox-id", inputs.sandbox_id.to_string()),
        ("sandbox-name", pod.name),
        ("sandbox-namespace", pod.namespace),
        ("sandbox-uid", pod.uid),
        ("image-name", inputs.image_name.to_string()),
    ];
    for (key, value) in keys {
        out.insert(format!("io.kubernetes.cri.{key}"), value);
    }
    out
}

fn container_name(container: &ContainerConfig) -> String {
    container
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

fn sandbox_privileged(sandbox: &PodSandboxConfig) -> bool {
    sandbox
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|sc| sc.privileged)
}

#[cfg(test)]
mod tests;
