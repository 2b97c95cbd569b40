//! Unit tests of the pod plan: paths, files, namespaces, cgroup parent, intent, shim request
//! and record, for the kinds of pod kubelet sends.

use super::*;
use crate::cgroup::Driver;
use crate::cri_api::{IdMapping, NamespaceMode, NamespaceOption, UserNamespace};
use crate::spec::IdMap;

fn settings(driver: Driver) -> RuntimeSettings {
    RuntimeSettings {
        root_dir: "/var/lib/berth".into(),
        state_dir: "/run/berth".into(),
        handlers: vec![],
        cdi: std::sync::Arc::new(crate::devices::Registry::new(vec![])),
        cgroup_driver: driver,
        without_host_devices: vec![],
    }
}

/// A pod named web-0 with these namespace options and cgroup parent.
fn pod(options: Option<NamespaceOption>, cgroup_parent: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        hostname: "web-0".into(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: options,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plan(config: &api::PodSandboxConfig) -> SandboxPlan {
    SandboxPlan::new(&settings(Driver::Cgroupfs), "p1", "", config).expect("a valid pod")
}

fn file<'a>(plan: &'a SandboxPlan, name: &str) -> &'a Contents {
    let path = plan.data_dir.join(name);
    let found = plan.files.iter().find(|f| f.path == path);
    &found.unwrap_or_else(|| panic!("no {name}")).contents
}

#[test]
fn a_plan_names_every_path_and_file_of_a_default_pod() {
    let plan = plan(&pod(None, ""));
    let pod_dir = PathBuf::from("/run/berth/pods/p1");
    let data_dir = PathBuf::from("/var/lib/berth/pods/p1");
    assert_eq!((&plan.pod_dir, &plan.data_dir), (&pod_dir, &data_dir));
    assert_eq!(
        plan.private_dirs,
        [(pod_dir.clone(), None), (data_dir.clone(), None)]
    );
    assert_eq!(plan.shm, Some(pod_dir.join("shm")));
    let names: Vec<_> = plan.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        names,
        ["hostname", "hosts", "resolv.conf"].map(|n| data_dir.join(n))
    );
    assert_eq!(*file(&plan, "hostname"), Contents::Text("web-0\n".into()));
    assert_eq!(
        *file(&plan, "hosts"),
        Contents::Text(dns::hosts(Some("web-0"), &[]))
    );
    assert_eq!(
        *file(&plan, "resolv.conf"),
        Contents::NodeFile {
            from: "/etc/resolv.conf".into(),
            fallback: String::new()
        }
    );
    assert_eq!(
        plan.intent(),
        Intent::CreatePod {
            pod_dir: pod_dir.clone(),
            data_dir
        }
    );
    assert_eq!(plan.cgroup_parent.as_deref(), Some("/berth"));
}

#[test]
fn the_shim_creates_the_pods_namespaces_and_keeps_the_hosts_others() {
    let ns = |network: NamespaceMode, pid: NamespaceMode, ipc: NamespaceMode| NamespaceOption {
        network: network as i32,
        pid: pid as i32,
        ipc: ipc as i32,
        ..Default::default()
    };
    use NamespaceMode::{Container, Node, Pod};
    let own = plan(&pod(Some(ns(Pod, Pod, Pod)), ""));
    assert_eq!(
        own.shim_options(),
        ShimOptions {
            net: true,
            ipc: true,
            uts: true,
            pid: true,
            hostname: Some("web-0".into()),
            userns: None,
        }
    );
    let host = plan(&pod(Some(ns(Node, Container, Node)), ""));
    assert_eq!(
        host.shim_options(),
        ShimOptions {
            hostname: None,
            ..Default::default()
        }
    );
    assert_eq!(host.shm, None, "host IPC: the node's /dev/shm");
    // Host networking: the node's hostname and hosts file.
    assert_eq!(*file(&host, "hostname"), Contents::NodeHostname);
    assert_eq!(
        *file(&host, "hosts"),
        Contents::NodeFile {
            from: "/etc/hosts".into(),
            fallback: dns::hosts(None, &[])
        }
    );
}

#[test]
fn a_pod_dns_config_is_its_resolv_conf() {
    let mut config = pod(None, "");
    config.dns_config = Some(api::DnsConfig {
        servers: vec!["10.0.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec![],
    });
    assert_eq!(
        *file(&plan(&config), "resolv.conf"),
        Contents::Text("search default.svc.cluster.local\nnameserver 10.0.0.10\n".into())
    );
}

#[test]
fn a_user_namespace_pod_maps_ids_and_shares_its_dirs_with_the_pod_root() {
    let map = vec![IdMapping {
        container_id: 0,
        host_id: 100_000,
        length: 65_536,
    }];
    let options = NamespaceOption {
        userns_options: Some(UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids: map.clone(),
            gids: map,
        }),
        ..Default::default()
    };
    let plan = plan(&pod(Some(options), ""));
    let id_map = IdMap {
        container: 0,
        host: 100_000,
        size: 65_536,
    };
    let maps = UserNamespaceMaps {
        uids: id_map,
        gids: id_map,
    };
    assert_eq!(plan.userns, Some(maps));
    assert_eq!(plan.shim_options().userns, Some(maps));
    assert!(
        plan.private_dirs
            .iter()
            .all(|(_, gid)| *gid == Some(100_000)),
        "{:?}",
        plan.private_dirs
    );
}

#[test]
fn the_cgroup_parent_is_named_by_the_configured_driver() {
    let parent = |driver, sent: &str| {
        SandboxPlan::new(&settings(driver), "p1", "", &pod(None, sent))
            .expect("the pod is planned whatever its parent")
            .cgroup_parent
    };
    let slice = "kubepods-besteffort-pod1.slice";
    let slice_dir = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice";
    assert_eq!(
        parent(Driver::Cgroupfs, "/kubepods/besteffort/pod1/").as_deref(),
        Some("/kubepods/besteffort/pod1")
    );
    assert_eq!(parent(Driver::Cgroupfs, slice).as_deref(), Some(slice_dir));
    assert_eq!(parent(Driver::Systemd, slice).as_deref(), Some(slice_dir));
    assert_eq!(
        parent(Driver::Systemd, "").as_deref(),
        Some("/system.slice")
    );
    // kubelet runs the other driver: nothing the systemd driver can name, as before the pod is
    // still made.
    assert_eq!(parent(Driver::Systemd, "/kubepods/besteffort/pod1"), None);
}

#[test]
fn a_pod_no_plan_can_have_is_refused() {
    let mut config = pod(None, "");
    config.linux.as_mut().unwrap().sysctls = [("kernel.panic".to_string(), "1".to_string())].into();
    let err = SandboxPlan::new(&settings(Driver::Cgroupfs), "p1", "", &config).unwrap_err();
    assert_eq!(
        crate::error::Classify::kind(&err),
        crate::error::Kind::InvalidArgument,
        "{err}"
    );
}

#[test]
fn the_record_is_ready_with_the_plan_and_what_was_made() {
    let plan = SandboxPlan::new(&settings(Driver::Cgroupfs), "p1", "runc", &pod(None, ""))
        .expect("a valid pod");
    let reported: BTreeMap<String, PathBuf> = [
        ("net", "/run/berth/pods/p1/ns/net"),
        ("ipc", "/run/berth/pods/p1/ns/ipc"),
        ("uts", "/run/berth/pods/p1/ns/uts"),
        ("time", "/run/berth/pods/p1/ns/time"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
    .collect();
    let pins = pinned_paths(reported);
    assert_eq!(
        pins,
        PinnedPaths {
            net: Some("/run/berth/pods/p1/ns/net".into()),
            ipc: Some("/run/berth/pods/p1/ns/ipc".into()),
            uts: Some("/run/berth/pods/p1/ns/uts".into()),
            pid: None,
            user: None,
        },
        "an unknown kind is left out"
    );
    let config = pod(None, "");
    let record = plan.record(config.clone(), pins.clone(), vec!["10.0.0.2".into()]);
    assert_eq!(record.state, SandboxState::Ready);
    assert_eq!(
        (record.id.as_str(), record.runtime_handler.as_str()),
        ("p1", "runc")
    );
    assert_eq!(
        (record.pod_dir, record.data_dir),
        (plan.pod_dir, plan.data_dir)
    );
    assert_eq!((record.namespaces, record.shm), (pins, plan.shm));
    assert_eq!(record.hostname.as_deref(), Some("web-0"));
    assert_eq!(
        (record.config, record.ips),
        (config, vec!["10.0.0.2".into()])
    );
    assert!(record.created_at > 0);
}
