//! The `linux` section: namespaces to create or join, cgroup resources and the device
//! allow-list, device nodes, and the masked and read-only /proc and /sys paths.

use std::collections::HashMap;

use crate::cri_api::{LinuxContainerResources, LinuxContainerSecurityContext, NamespaceMode};
use oci_spec::runtime::{
    LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxNamespace, LinuxNamespaceType, LinuxResources,
};

use super::sandbox::{PinnedNamespaces, mode};
use super::{DeviceNode, PodNamespaces, SpecError};

/// Paths hidden from non-privileged containers when the security context names none.
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only for non-privileged containers when the security context names none.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices every non-privileged container may use (runc's default allow-list):
/// (major, minor or `None` for all, access).
const DEFAULT_DEVICE_RULES: [(i64, Option<i64>, &str); 9] = [
    (1, Some(3), "rwm"), // /dev/null
    (1, Some(5), "rwm"), // /dev/zero
    (1, Some(7), "rwm"), // /dev/full
    (1, Some(8), "rwm"), // /dev/random
    (1, Some(9), "rwm"), // /dev/urandom
    (5, Some(0), "rwm"), // /dev/tty
    (5, Some(1), "rwm"), // /dev/console
    (5, Some(2), "rwm"), // /dev/ptmx
    (136, None, "rwm"),  // /dev/pts/*
];

/// The container's namespaces, in the order pid, ipc, uts, mount, network, cgroup. Mount is
/// always new. Net, IPC and UTS join the pod's pinned namespaces, or are the host's. PID
/// follows the container's own mode: CONTAINER new, NODE the host's, POD/TARGET join `given.pid`.
/// A cgroup namespace is created when `cgroupns` is set.
pub(super) fn namespaces(
    pinned: PinnedNamespaces,
    sc: Option<&LinuxContainerSecurityContext>,
    given: &PodNamespaces,
    cgroupns: bool,
    pod_host_pid: bool,
) -> Result<Vec<LinuxNamespace>, SpecError> {
    let options = sc.and_then(|sc| sc.namespace_options.as_ref());
    let pid_mode = mode("pid", options.map_or(0, |o| o.pid))?;

    let mut out = Vec::new();
    match pid_mode {
        NamespaceMode::Container => out.push(namespace(LinuxNamespaceType::Pid, None)),
        NamespaceMode::Node => {}
        // "The pod's" PID namespace when the pod has none of its own: the host's for a host-PID
        // pod, else the container gets its own (under containerd it would share the pause
        // container's, which holds nothing else).
        NamespaceMode::Pod if given.pid.is_none() && pod_host_pid => {}
        NamespaceMode::Pod if given.pid.is_none() && !pinned.pid => {
            out.push(namespace(LinuxNamespaceType::Pid, None));
        }
        NamespaceMode::Pod | NamespaceMode::Target => {
            out.push(join(LinuxNamespaceType::Pid, "pid", given.pid.as_ref())?);
        }
    }
    let pod = [
        (
            LinuxNamespaceType::Ipc,
            "ipc",
            pinned.ipc,
            given.ipc.as_ref(),
        ),
        (
            LinuxNamespaceType::Uts,
            "uts",
            pinned.uts,
            given.uts.as_ref(),
        ),
    ];
    for (typ, name, is_pinned, path) in pod {
        if is_pinned {
            out.push(join(typ, name, path)?);
        }
    }
    out.push(namespace(LinuxNamespaceType::Mount, None));
    if pinned.net {
        out.push(join(
            LinuxNamespaceType::Network,
            "network",
            given.net.as_ref(),
        )?);
    }
    if cgroupns {
        out.push(namespace(LinuxNamespaceType::Cgroup, None));
    }
    Ok(out)
}

fn join(
    typ: LinuxNamespaceType,
    name: &'static str,
    path: Option<&std::path::PathBuf>,
) -> Result<LinuxNamespace, SpecError> {
    let path = path.ok_or(SpecError::MissingNamespace(name))?;
    Ok(namespace(typ, Some(path.clone())))
}

fn namespace(typ: LinuxNamespaceType, path: Option<std::path::PathBuf>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ).set_path(path);
    ns
}

/// Cgroup resources from the CRI values (zero means unset), plus the device allow-list.
/// Without `swap_controller` no swap limit is set; with it, a memory limit without a swap limit
/// also caps memory+swap at the memory limit (no swapping).
pub(super) fn resources(
    cri: Option<&LinuxContainerResources>,
    devices: &[DeviceNode],
    privileged: bool,
    swap_controller: bool,
) -> Result<LinuxResources, SpecError> {
    let mut out = LinuxResources::default();
    out.set_devices(Some(device_rules(devices, privileged)?));
    let Some(r) = cri else {
        return Ok(out);
    };

    let mut cpu = LinuxCpu::default();
    cpu.set_shares(positive("cpu_shares", r.cpu_shares)?)
        .set_period(positive("cpu_period", r.cpu_period)?)
        .set_quota(nonzero(r.cpu_quota))
        .set_cpus(nonempty(&r.cpuset_cpus))
        .set_mems(nonempty(&r.cpuset_mems));
    if cpu != LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }

    let limit = nonzero(r.memory_limit_in_bytes);
    let swap = match (swap_controller, nonzero(r.memory_swap_limit_in_bytes)) {
        (false, _) => None,
        (true, Some(swap)) => Some(swap),
        (true, None) => limit,
    };
    if limit.is_some() || swap.is_some() {
        let mut memory = LinuxMemory::default();
        memory.set_limit(limit).set_swap(swap);
        out.set_memory(Some(memory));
    }

    if !r.hugepage_limits.is_empty() {
        let mut limits = Vec::new();
        for h in &r.hugepage_limits {
            let value = i64::try_from(h.limit).map_err(|_| SpecError::Resource {
                field: "hugepage_limits",
                value: i64::MAX,
                reason: "limit does not fit in 64 signed bits",
            })?;
            let mut l = LinuxHugepageLimit::default();
            l.set_page_size(h.page_size.clone()).set_limit(value);
            limits.push(l);
        }
        out.set_hugepage_limits(Some(limits));
    }
    if !r.unified.is_empty() {
        let unified: HashMap<String, String> = r.unified.clone().into_iter().collect();
        out.set_unified(Some(unified));
    }
    Ok(out)
}

/// Privileged: every device. Otherwise deny all, allow mknod of any device and the default
/// character devices, then the caller's devices with their permissions.
fn device_rules(
    devices: &[DeviceNode],
    privileged: bool,
) -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    if privileged {
        return Ok(vec![rule(true, LinuxDeviceType::A, None, None, "rwm")]);
    }
    let mut rules = vec![
        rule(false, LinuxDeviceType::A, None, None, "rwm"),
        rule(true, LinuxDeviceType::C, None, None, "m"),
        rule(true, LinuxDeviceType::B, None, None, "m"),
    ];
    for (major, minor, access) in DEFAULT_DEVICE_RULES {
        rules.push(rule(true, LinuxDeviceType::C, Some(major), minor, access));
    }
    for d in devices {
        let p = &d.permissions;
        if p.is_empty() || !p.chars().all(|c| "rwm".contains(c)) {
            return Err(SpecError::DevicePermissions {
                path: d.path.to_string_lossy().into_owned(),
                permissions: p.clone(),
            });
        }
        rules.push(rule(true, d.typ, Some(d.major), Some(d.minor), p));
    }
    Ok(rules)
}

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// The device nodes the runtime creates in the container's /dev.
pub(super) fn device_nodes(devices: &[DeviceNode]) -> Vec<LinuxDevice> {
    devices
        .iter()
        .map(|d| {
            let mut n = LinuxDevice::default();
            n.set_path(d.path.clone())
                .set_typ(d.typ)
                .set_major(d.major)
                .set_minor(d.minor)
                .set_file_mode(Some(d.file_mode))
                .set_uid(Some(d.uid))
                .set_gid(Some(d.gid));
            n
        })
        .collect()
}

/// Masked and read-only paths: none when privileged, else the security context's lists, else
/// the defaults. (CRI cannot tell "empty" from "unset", so an empty list means the defaults.)
pub(super) fn protected_paths(
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> (Vec<String>, Vec<String>) {
    if privileged {
        return (Vec::new(), Vec::new());
    }
    let pick = |given: Option<&Vec<String>>, defaults: &[&str]| match given {
        Some(g) if !g.is_empty() => g.clone(),
        _ => defaults.iter().map(|s| s.to_string()).collect(),
    };
    (
        pick(sc.map(|sc| &sc.masked_paths), &DEFAULT_MASKED_PATHS),
        pick(sc.map(|sc| &sc.readonly_paths), &DEFAULT_READONLY_PATHS),
    )
}

fn positive(field: &'static str, value: i64) -> Result<Option<u64>, SpecError> {
    match value {
        0 => Ok(None),
        v => u64::try_from(v).map(Some).map_err(|_| SpecError::Resource {
            field,
            value,
            reason: "must not be negative",
        }),
    }
}

fn nonzero(value: i64) -> Option<i64> {
    (value != 0).then_some(value)
}

fn nonempty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
