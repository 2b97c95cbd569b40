//! RunPodSandbox applies its plan over the fakes: the files, mounts, pins and record it says.

use super::super::records::{PinnedPaths, SandboxState};
use super::{Harness, pod_config};
use crate::cri_api as api;

#[tokio::test]
async fn a_pod_gets_the_files_pins_and_record_its_plan_names() {
    let h = Harness::new();
    let mut config = pod_config("web");
    config.hostname = "web-0".into();
    config.dns_config = Some(api::DnsConfig {
        servers: vec!["10.0.0.10".into()],
        ..Default::default()
    });
    let id = h.runtime.run_sandbox(config, "").await.expect("run pod");
    let pod = h.sandbox(&id);
    let (pod_dir, data_dir) = (h.pod_dir(&id), h.dir.path().join("root/pods").join(&id));
    assert_eq!((&pod.pod_dir, &pod.data_dir), (&pod_dir, &data_dir));
    assert_eq!(pod.state, SandboxState::Ready);
    assert_eq!(pod.hostname.as_deref(), Some("web-0"));
    let read = |name: &str| std::fs::read_to_string(data_dir.join(name)).unwrap();
    assert_eq!(read("hostname"), "web-0\n");
    assert_eq!(read("resolv.conf"), "nameserver 10.0.0.10\n");
    // The hosts file names the pod on the IP CNI gave it.
    assert!(
        read("hosts").contains("10.0.0.2\tweb-0"),
        "{}",
        read("hosts")
    );
    let ns = pod_dir.join("ns");
    assert_eq!(
        pod.namespaces,
        PinnedPaths {
            net: Some(ns.join("net")),
            ipc: Some(ns.join("ipc")),
            uts: Some(ns.join("uts")),
            // No namespace options: every mode is CRI's default, POD.
            pid: Some(ns.join("pid")),
            user: None,
        }
    );
    assert_eq!(pod.shm, Some(pod_dir.join("shm")));
    assert_eq!(h.host.mounted(), [pod_dir.join("shm")]);
    assert_eq!(h.network.attached_ids(), [id]);
}

#[tokio::test]
async fn a_host_network_and_host_ipc_pod_gets_no_network_no_shm_and_the_nodes_files() {
    let h = Harness::new();
    let mut config = pod_config("host");
    config.hostname = "ignored".into();
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(api::NamespaceOption {
                network: api::NamespaceMode::Node as i32,
                ipc: api::NamespaceMode::Node as i32,
                pid: api::NamespaceMode::Container as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = h.runtime.run_sandbox(config, "").await.expect("run pod");
    let pod = h.sandbox(&id);
    assert_eq!(pod.namespaces, PinnedPaths::default());
    assert_eq!((pod.shm, pod.hostname, pod.ips), (None, None, vec![]));
    assert!(h.host.mounted().is_empty(), "no shm");
    assert!(h.network.attached_ids().is_empty(), "no CNI");
    let node = nix::unistd::gethostname().unwrap();
    let hostname = std::fs::read_to_string(pod.data_dir.join("hostname")).unwrap();
    assert_eq!(hostname, format!("{}\n", node.to_string_lossy()));
    let hosts = std::fs::read_to_string(pod.data_dir.join("hosts")).unwrap();
    let node_hosts = std::fs::read_to_string("/etc/hosts").expect("the node's /etc/hosts");
    assert_eq!(hosts, node_hosts);
}
