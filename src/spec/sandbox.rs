//! The pod sandbox plan: which namespaces the shim pins for the pod, its hostname, its sysctls
//! grouped by the namespace they belong to, and its cgroup parent.

use std::collections::BTreeMap;

use crate::cri_api::{NamespaceMode, NamespaceOption, PodSandboxConfig};
use oci_spec::runtime::LinuxNamespaceType;

use super::SpecError;
use super::userns::{UserNamespaceMaps, pod_user_namespace};

/// What RunPodSandbox must set up before any container joins the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxPlan {
    pub pinned: PinnedNamespaces,
    /// The pod hostname, set in the pinned UTS namespace; `None` with host networking (the pod
    /// sees the node's hostname).
    pub hostname: Option<String>,
    pub sysctls: PodSysctls,
    /// `linux.cgroup_parent` as kubelet sent it.
    pub cgroup_parent: String,
    /// The pod's own user namespace (`None`: the host's); it owns the pod's other namespaces.
    pub userns: Option<UserNamespaceMaps>,
}

/// Which pod-level namespaces the shim creates and holds open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinnedNamespaces {
    /// A pod network namespace (CNI runs in it); false for host networking.
    pub net: bool,
    /// A pod IPC namespace; false for host IPC.
    pub ipc: bool,
    /// A pod UTS namespace; false for host networking, which implies the host's UTS.
    pub uts: bool,
    /// A pod-shared PID namespace: only when the pod asks for PID mode POD
    /// (`shareProcessNamespace`).
    pub pid: bool,
}

/// The pod's sysctls, grouped by the namespace that scopes them. Names use dots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSysctls {
    pub net: BTreeMap<String, String>,
    pub ipc: BTreeMap<String, String>,
    pub uts: BTreeMap<String, String>,
}

impl PodSysctls {
    /// Every sysctl of the pod, for a container spec.
    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.net.iter().chain(&self.ipc).chain(&self.uts)
    }
}

/// Plans a pod sandbox from its CRI config. Rejects sysctls that are not namespaced or whose
/// namespace the pod shares with the host, and user namespace options kubelet would refuse.
pub fn sandbox_plan(sandbox: &PodSandboxConfig) -> Result<SandboxPlan, SpecError> {
    let linux = sandbox.linux.as_ref();
    let sc = linux.and_then(|l| l.security_context.as_ref());
    let ns = sc.and_then(|sc| sc.namespace_options.as_ref());
    let pinned = pinned_namespaces(ns)?;
    let userns = pod_user_namespace(ns)?;
    if userns.is_some() {
        // The host's network is allowed (kubelet's UserNamespacesHostNetworkSupport): the
        // executor binds the host's /sys where the pod's user namespace may not mount sysfs.
        let host_pid = ns.is_some_and(|o| o.pid == NamespaceMode::Node as i32);
        if !pinned.ipc || host_pid {
            return Err(SpecError::UserNamespace(
                "a pod with its own user namespace cannot use the host's IPC or PID namespace"
                    .into(),
            ));
        }
        if sc.is_some_and(|sc| sc.privileged) {
            return Err(SpecError::UserNamespace(
                "a privileged pod cannot have its own user namespace".into(),
            ));
        }
    }

    let mut sysctls = PodSysctls::default();
    for (name, value) in linux.map(|l| &l.sysctls).into_iter().flatten() {
        let dotted = dotted(name);
        let (group, shared) = match sysctl_namespace(&dotted) {
            Some(LinuxNamespaceType::Network) => (&mut sysctls.net, pinned.net),
            Some(LinuxNamespaceType::Ipc) => (&mut sysctls.ipc, pinned.ipc),
            Some(LinuxNamespaceType::Uts) => (&mut sysctls.uts, pinned.uts),
            _ => return Err(sysctl_error(name, "not a namespaced sysctl")),
        };
        if !shared {
            return Err(sysctl_error(
                name,
                "the pod shares this namespace with the host",
            ));
        }
        group.insert(dotted, value.clone());
    }

    Ok(SandboxPlan {
        pinned,
        hostname: (pinned.uts && !sandbox.hostname.is_empty()).then(|| sandbox.hostname.clone()),
        sysctls,
        cgroup_parent: linux.map(|l| l.cgroup_parent.clone()).unwrap_or_default(),
        userns,
    })
}

/// Net and IPC are pinned unless NODE; UTS follows the network; PID only for POD. Absent options
/// mean all-POD, as in CRI's proto defaults.
fn pinned_namespaces(ns: Option<&NamespaceOption>) -> Result<PinnedNamespaces, SpecError> {
    let default = NamespaceOption::default();
    let ns = ns.unwrap_or(&default);
    let net = mode("network", ns.network)? != NamespaceMode::Node;
    let ipc = mode("ipc", ns.ipc)? != NamespaceMode::Node;
    let pid = mode("pid", ns.pid)? == NamespaceMode::Pod;
    Ok(PinnedNamespaces {
        net,
        ipc,
        uts: net,
        pid,
    })
}

/// Decodes a `NamespaceMode`, naming the namespace when the value is unknown.
pub(super) fn mode(namespace: &'static str, value: i32) -> Result<NamespaceMode, SpecError> {
    NamespaceMode::try_from(value).map_err(|_| SpecError::NamespaceMode {
        namespace,
        mode: value,
    })
}

/// The namespace a sysctl belongs to, as the kernel scopes them (and runc validates them);
/// `None` for a sysctl that is not namespaced (writing it in a container would change the host).
/// The pod plan and the executor both check sysctls with it.
pub fn sysctl_namespace(name: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if name.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if IPC.contains(&name) || name.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if name == "kernel.hostname" || name == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// `net/ipv4/ip_forward` -> `net.ipv4.ip_forward`. When the first separator is a slash the name
/// uses slashes between components, and any dots are part of a component (an interface name
/// like `eth0.100`), so the two swap.
fn dotted(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

fn sysctl_error(name: &str, reason: &'static str) -> SpecError {
    SpecError::Sysctl {
        name: name.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use crate::cri_api::{LinuxPodSandboxConfig, LinuxSandboxSecurityContext, UserNamespace};

    use super::*;

    fn pod(ns: Option<NamespaceOption>, sysctls: &[(&str, &str)]) -> PodSandboxConfig {
        PodSandboxConfig {
            hostname: "web-0".into(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/pod1".into(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: ns,
                    ..Default::default()
                }),
                sysctls: sysctls
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ns(
        network: NamespaceMode,
        pid: NamespaceMode,
        ipc: NamespaceMode,
    ) -> Option<NamespaceOption> {
        Some(NamespaceOption {
            network: network as i32,
            pid: pid as i32,
            ipc: ipc as i32,
            ..Default::default()
        })
    }

    #[test]
    fn pins_namespaces_by_mode() {
        use NamespaceMode::*;
        let pinned = |net, ipc, uts, pid| PinnedNamespaces { net, ipc, uts, pid };
        let cases = [
            (None, pinned(true, true, true, true), Some("web-0")),
            (
                ns(Pod, Container, Pod),
                pinned(true, true, true, false),
                Some("web-0"),
            ),
            (
                ns(Pod, Pod, Pod),
                pinned(true, true, true, true),
                Some("web-0"),
            ),
            (
                ns(Node, Container, Pod),
                pinned(false, true, false, false),
                None,
            ),
            (
                ns(Pod, Node, Node),
                pinned(true, false, true, false),
                Some("web-0"),
            ),
            (
                ns(Node, Node, Node),
                pinned(false, false, false, false),
                None,
            ),
        ];
        for (options, want, hostname) in cases {
            let plan = sandbox_plan(&pod(options.clone(), &[])).unwrap();
            assert_eq!(plan.pinned, want, "{options:?}");
            assert_eq!(plan.hostname.as_deref(), hostname, "{options:?}");
            assert_eq!(plan.cgroup_parent, "/kubepods/pod1");
        }
    }

    #[test]
    fn rejects_unknown_modes_and_user_namespaces_without_mappings_or_with_host_ipc() {
        let bad = NamespaceOption {
            network: 9,
            ..Default::default()
        };
        assert_eq!(
            sandbox_plan(&pod(Some(bad), &[])),
            Err(SpecError::NamespaceMode {
                namespace: "network",
                mode: 9
            })
        );
        let userns = NamespaceOption {
            userns_options: Some(UserNamespace {
                mode: NamespaceMode::Pod as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            sandbox_plan(&pod(Some(userns), &[])),
            Err(SpecError::UserNamespace(_))
        ));
        let map = vec![crate::cri_api::IdMapping {
            container_id: 0,
            host_id: 100000,
            length: 65536,
        }];
        let mut userns = NamespaceOption {
            userns_options: Some(UserNamespace {
                mode: NamespaceMode::Pod as i32,
                uids: map.clone(),
                gids: map,
            }),
            ..Default::default()
        };
        let plan = sandbox_plan(&pod(Some(userns.clone()), &[])).expect("a valid userns pod");
        assert_eq!(plan.userns.map(|u| u.uids.host), Some(100000));
        userns.network = NamespaceMode::Node as i32;
        let plan = sandbox_plan(&pod(Some(userns.clone()), &[])).expect("host network is fine");
        assert!(plan.userns.is_some() && !plan.pinned.net && !plan.pinned.uts);
        userns.ipc = NamespaceMode::Node as i32;
        assert!(matches!(
            sandbox_plan(&pod(Some(userns), &[])),
            Err(SpecError::UserNamespace(_))
        ));
    }

    #[test]
    fn groups_sysctls_by_namespace() {
        let plan = sandbox_plan(&pod(
            None,
            &[
                ("net.ipv4.ip_unprivileged_port_start", "0"),
                ("net/ipv4/conf/eth0.100/forwarding", "1"),
                ("kernel.shm_rmid_forced", "1"),
                ("fs.mqueue.msg_max", "20"),
                ("kernel.domainname", "example.com"),
            ],
        ))
        .unwrap();
        let keys = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&plan.sysctls.net),
            [
                "net.ipv4.conf.eth0/100.forwarding",
                "net.ipv4.ip_unprivileged_port_start"
            ]
        );
        assert_eq!(
            keys(&plan.sysctls.ipc),
            ["fs.mqueue.msg_max", "kernel.shm_rmid_forced"]
        );
        assert_eq!(keys(&plan.sysctls.uts), ["kernel.domainname"]);
        assert_eq!(plan.sysctls.all().count(), 5);
    }

    #[test]
    fn rejects_sysctls_outside_the_pods_namespaces() {
        use NamespaceMode::*;
        let cases = [
            (None, "vm.swappiness", "not a namespaced sysctl"),
            (None, "kernel.pid_max", "not a namespaced sysctl"),
            (
                ns(Node, Container, Pod),
                "net.core.somaxconn",
                "the pod shares this namespace with the host",
            ),
            (
                ns(Pod, Container, Node),
                "kernel.sem",
                "the pod shares this namespace with the host",
            ),
            (
                ns(Node, Container, Pod),
                "kernel.domainname",
                "the pod shares this namespace with the host",
            ),
        ];
        for (options, name, reason) in cases {
            let err = sandbox_plan(&pod(options, &[(name, "1")])).unwrap_err();
            assert_eq!(
                err,
                SpecError::Sysctl {
                    name: name.into(),
                    reason
                }
            );
        }
    }
}
