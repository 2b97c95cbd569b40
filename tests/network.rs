//! Pod networking with the real CNI plugins (bridge, host-local, portmap): distinct IPs, pod to
//! pod and host to pod traffic, DNS, a host port serving nginx on 127.0.0.1, dual stack, and the
//! release of the IP on stop. Each test has its own network (conf dir, name, bridge, subnet,
//! host-local data dir).

mod common;

use berth::cri::api;
use common::network::{
    TestNet, busybox, daemon, http_get, http_get_eventually, pod_ip, pod_status, stdout,
};
use common::pods::{container_config, exec, pod_config, pull, run_pod, start_container, stop_pod};
use common::registry::registries;

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
