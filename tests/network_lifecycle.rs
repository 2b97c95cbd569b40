//! The lifecycle of pod networks with the real CNI plugins: release of the IP after a `kill -9`
//! of berthd with the cached config, startup GC of networks whose pod is gone, unwinding of a
//! failed ADD, `NetworkReady` following the conf dir, host-network pods without CNI. Each test has
//! its own network (conf dir, name, bridge, subnet, host-local data dir).

mod common;

use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::network::{TestNet, busybox, daemon, pod_ip, pod_status, stdout};
use common::pods::{
    container_config, exec, pod_config, pod_config_with_namespaces, pull, run_pod, start_container,
    stop_pod,
};

#[tokio::test]
async fn kill9_then_stop_releases_the_ip_with_the_cached_config_and_gc_frees_lost_pods() {
    let net = TestNet::new("crash", 3);
    net.write_default();
    let mut daemon = daemon(&net);
    let mut cri = daemon.client().await;
    let logs = daemon.dir.path().join("logs");
    let kept = run_pod(&mut cri, pod_config("kept", &logs)).await;
    let lost = run_pod(&mut cri, pod_config("lost", &logs)).await;
    let kept_ip = pod_ip(&mut cri, &kept.id).await;
    let lost_ip = pod_ip(&mut cri, &lost.id).await;
    assert_eq!(net.leases().len(), 2);

    daemon.kill9();
    // The node's config changes meanwhile: DEL must still use what ADD used.
    std::fs::remove_file(net.conf_dir().join("10-test.conflist")).unwrap();
    std::fs::write(
        net.conf_dir().join("05-other.conflist"),
        r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    // And berthd lost the record of one pod (it died between ADD and the record).
    {
        let db = berth::store::Store::open(&daemon.dir.path().join("root/meta.redb")).unwrap();
        db.write(|w| w.delete(berth::store::Table::Sandboxes, &lost.id))
            .unwrap();
    }
    daemon.restart();
    let mut cri = daemon.client().await;
    assert!(
        !net.lease(&lost_ip).exists(),
        "startup GC kept the lease of a pod without a record"
    );
    assert!(net.lease(&kept_ip).exists());
    assert_eq!(
        pod_ip(&mut cri, &kept.id).await,
        kept_ip,
        "the IP survives the restart"
    );

    stop_pod(&mut cri, &kept.id).await;
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    let cache = std::fs::read_dir(daemon.dir.path().join("root/network"))
        .unwrap()
        .count();
    assert_eq!(cache, 0, "cached attachments left");
    // the lost pod's shim still runs; it is stopped when the test's daemon is dropped
}

#[tokio::test]
async fn a_failing_plugin_fails_run_pod_sandbox_with_nothing_left() {
    let net = TestNet::new("fail", 4);
    net.write_conflist(
        "10-test.conflist",
        vec![
            net.bridge_plugin(),
            serde_json::json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}}),
        ],
    );
    let daemon = daemon(&net);
    let mut cri = daemon.client().await;
    let err = cri
        .runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(pod_config("doomed", &daemon.dir.path().join("logs"))),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("plugin tuning"), "{}", err.message());

    // bridge's ADD ran and was undone: no lease, no pod, no pins, no shim, no cache entry
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    let pods = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    let root = daemon.dir.path();
    for dir in ["state/pods", "root/pods", "root/network"] {
        let left: Vec<_> = std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    assert_eq!(common::pods::mounts_under(root), Vec::<String>::new());
}

#[tokio::test]
async fn network_ready_follows_the_conf_dir_without_a_restart() {
    let net = TestNet::new("ready", 5);
    let daemon = daemon(&net);
    let mut cri = daemon.client().await;
    let network_condition = |s: api::StatusResponse| {
        s.status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .unwrap()
    };
    let status = cri
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .unwrap();
    let c = network_condition(status.into_inner());
    assert!(!c.status);
    assert_eq!(c.reason, "NetworkPluginNotReady");
    assert!(
        c.message.contains(&net.conf_dir().display().to_string()),
        "{}",
        c.message
    );

    let logs = daemon.dir.path().join("logs");
    let err = cri
        .runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(pod_config("early", &logs)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    // A config naming a plugin that is not installed does not make the network ready.
    net.write_conflist(
        "05-missing.conflist",
        vec![serde_json::json!({"type": "flannel-x"})],
    );
    let status = cri
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .unwrap();
    let c = network_condition(status.into_inner());
    assert!(
        !c.status && c.message.contains("flannel-x"),
        "{}",
        c.message
    );

    net.write_default();
    let status = cri
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .unwrap();
    let c = network_condition(status.into_inner());
    assert!(c.status, "{c:?}");
    assert!(c.reason.is_empty() && c.message.is_empty(), "{c:?}");
    let pod = run_pod(&mut cri, pod_config("late", &logs)).await;
    assert!(pod_ip(&mut cri, &pod.id).await.starts_with("10.99.5."));
    stop_pod(&mut cri, &pod.id).await;
    assert!(net.leases().is_empty());
}

#[tokio::test]
async fn host_network_pods_skip_cni_and_report_node_mode() {
    let net = TestNet::new("hostn", 6);
    net.write_default();
    let daemon = daemon(&net);
    let mut cri = daemon.client().await;
    pull(&mut cri, &busybox()).await;
    let config = pod_config_with_namespaces(
        "hostnet",
        &daemon.dir.path().join("logs"),
        api::NamespaceOption {
            network: api::NamespaceMode::Node as i32,
            ..Default::default()
        },
    );
    let pod = run_pod(&mut cri, config).await;
    let status = pod_status(&mut cri, &pod.id).await;
    assert_eq!(status.network.unwrap().ip, "");
    let mode = status
        .linux
        .unwrap()
        .namespaces
        .unwrap()
        .options
        .unwrap()
        .network;
    assert_eq!(mode, api::NamespaceMode::Node as i32);
    assert!(net.leases().is_empty(), "CNI ran for a host-network pod");
    let ctr = start_container(
        &mut cri,
        &pod,
        container_config("c", &busybox(), &["sleep", "60"]),
    )
    .await;
    let hosts = exec(&mut cri, &ctr, &["cat", "/etc/hosts"], 10)
        .await
        .unwrap();
    assert_eq!(
        stdout(&hosts),
        std::fs::read_to_string("/etc/hosts").unwrap()
    );
    let name = exec(&mut cri, &ctr, &["hostname"], 10).await.unwrap();
    assert_eq!(
        stdout(&name).trim(),
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
    stop_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn stop_releases_the_ip_when_the_network_namespace_is_gone() {
    let net = TestNet::new("gone", 8);
    net.write_default();
    let mut daemon = daemon(&net);
    let mut cri = daemon.client().await;
    let pod = run_pod(
        &mut cri,
        pod_config("gone", &daemon.dir.path().join("logs")),
    )
    .await;
    let ip = pod_ip(&mut cri, &pod.id).await;
    assert!(net.lease(&ip).exists());

    // As after a reboot: berthd, the shim and the namespace pins all gone, the lease still on disk.
    daemon.kill9();
    let pod_dir = daemon.dir.path().join("state/pods").join(&pod.id);
    let pid: i32 = std::fs::read_to_string(pod_dir.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The shim and its pause process (one process group); with the pins gone nothing holds
    // the namespace any more, and the kernel destroys it with the pod's end of the veth.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for pin in std::fs::read_dir(pod_dir.join("ns")).unwrap().flatten() {
        nix::mount::umount2(&pin.path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    let veths = || {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path().join("master")).is_ok_and(|m| m.ends_with(&net.bridge))
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while veths() > 0 {
        assert!(
            Instant::now() < deadline,
            "the pod's veth outlived its namespace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.restart();
    let mut cri = daemon.client().await;
    let status = pod_status(&mut cri, &pod.id).await;
    assert_eq!(status.state, api::PodSandboxState::SandboxNotready as i32);
    assert!(
        net.lease(&ip).exists(),
        "the lease lives until the pod is stopped"
    );

    stop_pod(&mut cri, &pod.id).await;
    assert!(net.leases().is_empty(), "{:?}", net.leases());
}

#[tokio::test]
async fn a_pod_whose_caller_gave_up_is_still_finished_and_removable_without_leaks() {
    use std::os::unix::fs::PermissionsExt;
    let net = TestNet::new("slow", 9);
    // A plugin that takes its time (real exec of a script, as of any plugin): it passes the
    // bridge's result on after a second, past the caller's deadline.
    let bin = net.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let slow = bin.join("slow");
    std::fs::write(
        &slow,
        "#!/bin/sh\nsleep 1\nif [ \"$CNI_COMMAND\" = ADD ]; then exec jq -c .prevResult; fi\ncat >/dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    net.write_conflist(
        "10-test.conflist",
        vec![net.bridge_plugin(), serde_json::json!({"type": "slow"})],
    );
    let daemon = Daemon::start(&format!(
        "network:\n  conf_dir: {}\n  bin_dirs: [{}, {}]\n",
        net.conf_dir().display(),
        bin.display(),
        common::network::PLUGIN_DIR
    ));
    let mut cri = daemon.client().await;
    let mut req = tonic::Request::new(api::RunPodSandboxRequest {
        config: Some(pod_config("slow", &daemon.dir.path().join("logs"))),
        runtime_handler: String::new(),
    });
    req.set_timeout(Duration::from_millis(300));
    let call = cri.runtime.run_pod_sandbox(req);
    let gave_up = tokio::time::timeout(Duration::from_millis(500), call).await;
    assert!(
        !matches!(gave_up, Ok(Ok(_))),
        "RunPodSandbox beat a 1 s plugin: {gave_up:?}"
    );

    // The creation finishes anyway: kubelet's next ListPodSandbox finds a Ready pod with its IP.
    let deadline = Instant::now() + Duration::from_secs(15);
    let pod = loop {
        let pods = cri
            .runtime
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .items;
        if let Some(pod) = pods.into_iter().next() {
            break pod;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned RunPodSandbox never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pod.state, api::PodSandboxState::SandboxReady as i32);
    let ip = pod_ip(&mut cri, &pod.id).await;
    assert_eq!(net.leases(), vec![ip]);

    cri.runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        })
        .await
        .unwrap();
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    let shims = std::fs::read_dir(daemon.dir.path().join("state/pods"))
        .unwrap()
        .count();
    assert_eq!(shims, 0, "pod state left behind");
}
