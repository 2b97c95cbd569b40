//! Pod networking with the real CNI plugins (bridge, host-local, portmap, tuning): IPs, pod to
//! pod and host to pod traffic, host ports, DNS, release of the IP on stop (also after a
//! `kill -9` of berthd), unwinding of a failed ADD, readiness following the conf dir, startup GC.
//! Each test has its own network (conf dir, name, bridge, subnet, host-local data dir).

mod common;

use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::network::TestNet;
use common::pods::{container_config, exec, pod_config, pull, run_pod, start_container, stop_pod};
use common::registry::registries;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn daemon(net: &TestNet) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n{}",
        registries().plain,
        net.yaml()
    ))
}

fn busybox() -> String {
    format!("{}/library/busybox:latest", registries().plain)
}

async fn pod_status(cri: &mut berth::client::CriClient, id: &str) -> api::PodSandboxStatus {
    cri.runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .unwrap()
}

async fn pod_ip(cri: &mut berth::client::CriClient, id: &str) -> String {
    pod_status(cri, id).await.network.unwrap().ip
}

/// GET `path` from `addr` over plain HTTP/1.0; the body, or `None` when nothing answers.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .ok()
        .flatten()
}

/// Polls `http_get` until it answers (a server in a fresh container needs a moment).
async fn http_get_eventually(addr: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = http_get(addr, path).await {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "nothing served http://{addr}{path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stdout(out: &api::ExecSyncResponse) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn pods_get_distinct_ips_reach_each_other_and_the_host_reaches_them() {
    let net = TestNet::new("pair", 1);
    net.write_default();
    let daemon = daemon(&net);
    let mut cri = daemon.client().await;
    pull(&mut cri, &busybox()).await;
    let logs = daemon.dir.path().join("logs");

    let mut a_config = pod_config("net-a", &logs);
    a_config.dns_config = Some(api::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into(), "timeout:2".into()],
    });
    let a = run_pod(&mut cri, a_config).await;
    let b = run_pod(&mut cri, pod_config("net-b", &logs)).await;
    let web = ["httpd", "-f", "-p", "8080", "-h", "/etc"];
    let a_ctr = start_container(&mut cri, &a, container_config("web", &busybox(), &web)).await;
    let b_ctr = start_container(&mut cri, &b, container_config("web", &busybox(), &web)).await;

    let (a_ip, b_ip) = (pod_ip(&mut cri, &a.id).await, pod_ip(&mut cri, &b.id).await);
    assert_ne!(a_ip, b_ip);
    for ip in [&a_ip, &b_ip] {
        assert!(ip.starts_with("10.99.1."), "{ip} is not in {}", net.subnet);
        assert!(net.lease(ip).exists(), "host-local has no lease for {ip}");
    }

    // pod to pod, both ways
    for (ctr, ip) in [(&a_ctr, &b_ip), (&b_ctr, &a_ip)] {
        let out = exec(&mut cri, ctr, &["ping", "-c", "1", "-W", "5", ip], 15)
            .await
            .unwrap();
        assert_eq!(out.exit_code, 0, "ping {ip}: {}", stdout(&out));
    }
    // the host to a pod, and the pod's own files
    let hostname = http_get_eventually(&format!("{a_ip}:8080"), "/hostname").await;
    assert_eq!(hostname, "net-a-host\n");
    let hosts = exec(&mut cri, &a_ctr, &["cat", "/etc/hosts"], 10)
        .await
        .unwrap();
    assert!(
        stdout(&hosts).contains(&format!("{a_ip}\tnet-a-host\n")),
        "{}",
        stdout(&hosts)
    );
    let resolv = exec(&mut cri, &a_ctr, &["cat", "/etc/resolv.conf"], 10)
        .await
        .unwrap();
    assert_eq!(
        stdout(&resolv),
        "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5 timeout:2\n"
    );

    // stopping a pod releases its IP; the other pod no longer reaches it
    stop_pod(&mut cri, &b.id).await;
    assert!(
        !net.lease(&b_ip).exists(),
        "StopPodSandbox left the lease of {b_ip}"
    );
    assert_eq!(net.leases(), vec![a_ip.clone()]);
    let out = exec(&mut cri, &a_ctr, &["ping", "-c", "1", "-W", "1", &b_ip], 10)
        .await
        .unwrap();
    assert_ne!(
        out.exit_code, 0,
        "{b_ip} still answers after StopPodSandbox"
    );
    stop_pod(&mut cri, &b.id).await; // idempotent
    stop_pod(&mut cri, &a.id).await;
    assert!(net.leases().is_empty(), "{:?}", net.leases());
}

#[tokio::test]
async fn a_host_port_serves_nginx_on_localhost_until_the_pod_stops() {
    let net = TestNet::new("hport", 2);
    net.write_default();
    let daemon = daemon(&net);
    let mut cri = daemon.client().await;
    let nginx = format!("{}/e2e-test-images/nginx:1.14-2", registries().plain);
    pull(&mut cri, &nginx).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = pod_config("hport", &daemon.dir.path().join("logs"));
    config.port_mappings = vec![api::PortMapping {
        protocol: api::Protocol::Tcp as i32,
        container_port: 80,
        host_port: port as i32,
        host_ip: "127.0.0.1".into(),
    }];
    let pod = run_pod(&mut cri, config).await;
    start_container(&mut cri, &pod, container_config("nginx", &nginx, &[])).await;

    let page = http_get_eventually(&format!("127.0.0.1:{port}"), "/").await;
    assert!(page.contains("nginx"), "{page}");
    stop_pod(&mut cri, &pod.id).await;
    assert!(
        http_get(&format!("127.0.0.1:{port}"), "/").await.is_none(),
        "host port {port} still served after StopPodSandbox"
    );
    assert!(net.leases().is_empty(), "{:?}", net.leases());
}

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
    let mut config = pod_config("hostnet", &daemon.dir.path().join("logs"));
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(api::NamespaceOption {
                network: api::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
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
async fn a_dual_stack_pod_reports_its_ipv4_first_and_its_ipv6_as_additional() {
    let net = TestNet::new("dual", 7);
    let mut bridge = net.bridge_plugin();
    bridge["ipam"]["ranges"] = serde_json::json!([
        [{"subnet": net.subnet, "gateway": net.gateway}],
        [{"subnet": "fd99:7::/64", "gateway": "fd99:7::1"}]
    ]);
    net.write_conflist("10-test.conflist", vec![bridge]);
    let daemon = daemon(&net);
    let mut cri = daemon.client().await;
    pull(&mut cri, &busybox()).await;
    let pod = run_pod(
        &mut cri,
        pod_config("dual", &daemon.dir.path().join("logs")),
    )
    .await;
    let network = pod_status(&mut cri, &pod.id).await.network.unwrap();
    assert!(network.ip.starts_with("10.99.7."), "{network:?}");
    let v6: Vec<_> = network
        .additional_ips
        .iter()
        .map(|ip| ip.ip.as_str())
        .collect();
    assert!(
        v6.len() == 1 && v6[0].starts_with("fd99:7::"),
        "{network:?}"
    );
    let ctr = start_container(
        &mut cri,
        &pod,
        container_config("c", &busybox(), &["sleep", "60"]),
    )
    .await;
    let addrs = exec(&mut cri, &ctr, &["ip", "addr", "show", "eth0"], 10)
        .await
        .unwrap();
    assert!(stdout(&addrs).contains(v6[0]), "{}", stdout(&addrs));
    stop_pod(&mut cri, &pod.id).await;
    assert!(net.leases().is_empty(), "{:?}", net.leases());
}
