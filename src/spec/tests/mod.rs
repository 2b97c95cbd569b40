//! Whole-spec tests: what a container's config.json says for typical and edge-case pods.
//! This file holds the fixture; the tests live in its submodules.

mod container;
mod pod;

use std::path::Path;

use crate::cri_api::{
    ContainerMetadata, KeyValue, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxMetadata,
};
use oci_spec::runtime::LinuxNamespaceType;

use super::*;

/// Owns what [`ContainerInputs`] borrows.
struct Fixture {
    container: ContainerConfig,
    sandbox: PodSandboxConfig,
    image: ImageConfig,
    host: Host,
    user: ResolvedUser,
}

impl Fixture {
    fn new() -> Fixture {
        let mut image = ImageConfig::default();
        image.config.entrypoint = vec!["/bin/server".into()];
        image.config.cmd = vec!["--port=80".into()];
        image.config.env = vec!["PATH=/app/bin:/bin".into(), "LANG=C.UTF-8".into()];
        Fixture {
            container: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "web".into(),
                    attempt: 0,
                }),
                envs: vec![KeyValue {
                    key: "MODE".into(),
                    value: "prod".into(),
                }],
                annotations: [("team".to_string(), "a".to_string())].into(),
                linux: Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        namespace_options: Some(namespaces(
                            NamespaceMode::Pod,
                            NamespaceMode::Container,
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            sandbox: PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web-0".into(),
                    uid: "uid-1".into(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                hostname: "web-0".into(),
                linux: Some(LinuxPodSandboxConfig {
                    security_context: Some(LinuxSandboxSecurityContext {
                        namespace_options: Some(namespaces(
                            NamespaceMode::Pod,
                            NamespaceMode::Container,
                        )),
                        ..Default::default()
                    }),
                    sysctls: [(
                        "net.ipv4.ip_unprivileged_port_start".to_string(),
                        "0".to_string(),
                    )]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            image,
            host: Host {
                cgroup_v2: true,
                swap_controller: true,
                hugetlb_controller: true,
                hostname: "node-1".into(),
                capabilities: None,
            },
            user: ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![20],
            },
        }
    }

    fn security(&mut self) -> &mut LinuxContainerSecurityContext {
        self.container
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
    }

    fn spec(&self) -> Result<Spec, SpecError> {
        container_spec(&ContainerInputs {
            container: &self.container,
            sandbox: &self.sandbox,
            image: &self.image,
            sandbox_id: "sb-1",
            image_name: "docker.io/library/web:1",
            rootfs: "/var/lib/berth/c1/rootfs".into(),
            namespaces: PodNamespaces {
                net: Some("/run/berth/sb-1/net".into()),
                ipc: Some("/run/berth/sb-1/ipc".into()),
                uts: Some("/run/berth/sb-1/uts".into()),
                pid: Some("/run/berth/sb-1/pid".into()),
                user: Some("/run/berth/sb-1/user".into()),
            },
            cgroups_path: "/kubepods/pod-uid-1/c1".into(),
            user: self.user.clone(),
            etc: EtcFiles {
                hosts: Some("/run/berth/sb-1/hosts".into()),
                resolv_conf: Some("/run/berth/sb-1/resolv.conf".into()),
                hostname: Some("/run/berth/sb-1/hostname".into()),
            },
            shm: Some("/run/berth/sb-1/shm".into()),
            devices: vec![],
            privileged_host_devices: true,
            seccomp: SeccompChoice::Unconfined,
            host: &self.host,
        })
    }
}

fn namespaces(network: NamespaceMode, pid: NamespaceMode) -> NamespaceOption {
    NamespaceOption {
        network: network as i32,
        pid: pid as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn ns_types(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<String>)> {
    let linux = spec.linux().as_ref().unwrap();
    linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n.typ(),
                n.path().as_ref().map(|p| p.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn mount_options<'a>(spec: &'a Spec, destination: &str) -> Vec<&'a str> {
    let mounts = spec.mounts().as_ref().unwrap();
    let m = mounts
        .iter()
        .find(|m| m.destination() == Path::new(destination))
        .unwrap();
    m.options()
        .as_ref()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect()
}

fn inputs_without_paths(f: &Fixture) -> ContainerInputs<'_> {
    ContainerInputs {
        container: &f.container,
        sandbox: &f.sandbox,
        image: &f.image,
        sandbox_id: "sb-1",
        image_name: "web",
        rootfs: "/r".into(),
        namespaces: PodNamespaces::default(),
        cgroups_path: String::new(),
        user: f.user.clone(),
        etc: EtcFiles::default(),
        shm: None,
        devices: vec![],
        privileged_host_devices: true,
        seccomp: SeccompChoice::Unconfined,
        host: &f.host,
    }
}
