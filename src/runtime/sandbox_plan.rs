//! RunPodSandbox as a plan: everything about a new pod that follows from its config and the
//! node's settings without touching the host (its directories and how private, the files in
//! them, its /dev/shm, the namespaces its shim creates and the host's it keeps, the user
//! namespace mappings, its hostname, its cgroup parent as the driver names it, its intent, the
//! shim request and the record). `sandbox.rs` applies it through the shim launcher, the pod
//! network and the host layer (`super::host`). Pure: unit-tested without root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cri_api as api;

use super::intents::Intent;
use super::records::{PinnedPaths, SandboxRecord, SandboxState, now_ns};
use super::{Result, RuntimeSettings};
use crate::network::dns;
use crate::shimclient::ShimOptions;
use crate::spec::{PinnedNamespaces, UserNamespaceMaps, sandbox_plan};

/// What creating pod `id` will make.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxPlan {
    pub id: String,
    /// The runtime handler kubelet named ("" for the built-in one).
    pub handler: String,
    /// `<state_dir>/pods/<id>`: the shim's socket and log, the namespace pins, the shm mount.
    pub pod_dir: PathBuf,
    /// `<root_dir>/pods/<id>`: hostname, hosts, resolv.conf.
    pub data_dir: PathBuf,
    /// Directories made private, with the pod root's host gid as group when the pod has its
    /// own user namespace (its containers must read the files in them).
    pub private_dirs: Vec<(PathBuf, Option<u32>)>,
    /// The files written into `data_dir`, in order.
    pub files: Vec<PodFile>,
    /// The pod's /dev/shm tmpfs, when it has its own IPC namespace.
    pub shm: Option<PathBuf>,
    /// Which namespaces the shim creates and pins; the others are the host's, which the pod's
    /// containers join.
    pub namespaces: PinnedNamespaces,
    /// The pod's own user namespace (`None`: the host's); it owns the others.
    pub userns: Option<UserNamespaceMaps>,
    /// The hostname set in the pod's UTS namespace; `None` with host networking.
    pub hostname: Option<String>,
    /// The cgroupfs directory the pod's containers go under, as the configured cgroup driver
    /// names the parent kubelet sent (`Driver::parent_path`; `/berth` when it sent none).
    /// `None` when the driver cannot name it (a cgroupfs path under the systemd driver): the
    /// pod is still made and each CreateContainer in it reports why it cannot be.
    pub cgroup_parent: Option<String>,
}

/// A file of the pod's data dir, which its containers bind-mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFile {
    pub path: PathBuf,
    pub contents: Contents,
}

/// What a pod file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    Text(String),
    /// The node's hostname and a newline (the pod shares the node's UTS namespace).
    NodeHostname,
    /// A copy of a file of the node, or `fallback` when it cannot be read.
    NodeFile {
        from: PathBuf,
        fallback: String,
    },
}

impl SandboxPlan {
    /// Plans pod `id` from its CRI config. Rejects what `spec::sandbox_plan` rejects (sysctls,
    /// namespace modes and user namespace options no pod can have).
    pub fn new(
        settings: &RuntimeSettings,
        id: &str,
        handler: &str,
        config: &api::PodSandboxConfig,
    ) -> Result<SandboxPlan> {
        let pod = sandbox_plan(config)?;
        let pod_dir = settings.state_dir.join("pods").join(id);
        let data_dir = settings.root_dir.join("pods").join(id);
        let gid = pod.userns.as_ref().map(|maps| maps.gids.host);
        Ok(SandboxPlan {
            id: id.to_string(),
            handler: handler.to_string(),
            private_dirs: vec![(pod_dir.clone(), gid), (data_dir.clone(), gid)],
            files: pod_files(&data_dir, config, pod.pinned.net, pod.hostname.as_deref()),
            shm: pod.pinned.ipc.then(|| pod_dir.join("shm")),
            namespaces: pod.pinned,
            userns: pod.userns,
            hostname: pod.hostname,
            cgroup_parent: settings.cgroup_driver.parent_path(&pod.cgroup_parent).ok(),
            pod_dir,
            data_dir,
        })
    }

    /// The intent recorded before the first side effect: what recovery must undo besides the
    /// shim (found by its `--dir`) and the CNI attachment (found in the network cache).
    pub fn intent(&self) -> Intent {
        Intent::CreatePod {
            pod_dir: self.pod_dir.clone(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// What the pod's new shim is asked to create and pin.
    pub fn shim_options(&self) -> ShimOptions {
        let PinnedNamespaces { net, ipc, uts, pid } = self.namespaces;
        ShimOptions {
            net,
            ipc,
            uts,
            pid,
            hostname: self.hostname.clone(),
            userns: self.userns,
        }
    }

    /// The Ready record of the pod, once its shim pinned `namespaces` and CNI gave it `ips`.
    pub fn record(
        &self,
        config: api::PodSandboxConfig,
        namespaces: PinnedPaths,
        ips: Vec<String>,
    ) -> SandboxRecord {
        SandboxRecord {
            id: self.id.clone(),
            state: SandboxState::Ready,
            created_at: now_ns(),
            config,
            runtime_handler: self.handler.clone(),
            pod_dir: self.pod_dir.clone(),
            data_dir: self.data_dir.clone(),
            namespaces,
            shm: self.shm.clone(),
            hostname: self.hostname.clone(),
            ips,
        }
    }
}

/// The pins a shim reported (namespace kind to path), as the record keeps them; kinds berth
/// does not know are left out.
pub fn pinned_paths(reported: BTreeMap<String, PathBuf>) -> PinnedPaths {
    let mut pinned = PinnedPaths::default();
    for (kind, path) in reported {
        match kind.as_str() {
            "net" => pinned.net = Some(path),
            "ipc" => pinned.ipc = Some(path),
            "uts" => pinned.uts = Some(path),
            "pid" => pinned.pid = Some(path),
            "user" => pinned.user = Some(path),
            _ => {}
        }
    }
    pinned
}

/// The pod's hostname (the node's when it shares the node's UTS namespace), hosts (its IPs are
/// added once CNI gave them; the node's own file with host networking, as kubelet expects) and
/// resolv.conf (from its DNS config, or else the node's).
fn pod_files(
    dir: &Path,
    config: &api::PodSandboxConfig,
    own_network: bool,
    hostname: Option<&str>,
) -> Vec<PodFile> {
    let file = |name: &str, contents| PodFile {
        path: dir.join(name),
        contents,
    };
    let hosts = match own_network {
        true => Contents::Text(dns::hosts(hostname, &[])),
        false => Contents::NodeFile {
            from: "/etc/hosts".into(),
            fallback: dns::hosts(None, &[]),
        },
    };
    let resolv = match dns::resolv_conf(config.dns_config.as_ref()) {
        Some(text) => Contents::Text(text),
        None => Contents::NodeFile {
            from: "/etc/resolv.conf".into(),
            fallback: String::new(),
        },
    };
    vec![
        file(
            "hostname",
            match hostname {
                Some(name) => Contents::Text(format!("{name}\n")),
                None => Contents::NodeHostname,
            },
        ),
        file("hosts", hosts),
        file("resolv.conf", resolv),
    ]
}

#[cfg(test)]
#[path = "sandbox_plan_tests.rs"]
mod tests;
