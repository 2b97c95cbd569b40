//! ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor-named metrics from a real pod's
//! cgroups, processes, writable layer and network namespace. Root; local registry.

mod common;

use std::collections::HashMap;

use berth::cri::api;
use common::pods::*;

/// What critest v1.37 wants described (its expected list less what no runtime has yet).
const EXPECTED: &[&str] = &[
    "container_blkio_device_usage_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_file_descriptors",
    "container_fs_inodes_free",
    "container_fs_inodes_total",
    "container_fs_limit_bytes",
    "container_fs_reads_bytes_total",
    "container_fs_reads_total",
    "container_fs_usage_bytes",
    "container_fs_writes_bytes_total",
    "container_fs_writes_total",
    "container_last_seen",
    "container_memory_cache",
    "container_memory_failcnt",
    "container_memory_failures_total",
    "container_memory_kernel_usage",
    "container_memory_mapped_file",
    "container_memory_max_usage_bytes",
    "container_memory_rss",
    "container_memory_swap",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_receive_errors_total",
    "container_network_receive_packets_dropped_total",
    "container_network_receive_packets_total",
    "container_network_transmit_bytes_total",
    "container_network_transmit_errors_total",
    "container_network_transmit_packets_dropped_total",
    "container_network_transmit_packets_total",
    "container_oom_events_total",
    "container_processes",
    "container_sockets",
    "container_spec_cpu_period",
    "container_spec_cpu_shares",
    "container_spec_memory_limit_bytes",
    "container_spec_memory_swap_limit_bytes",
    "container_start_time_seconds",
    "container_threads",
    "container_threads_max",
];

#[tokio::test]
async fn pod_metrics_come_from_the_running_pod() {
    let mut f = fixture("metrics", "library/busybox:latest").await;
    let descriptors = f
        .cri
        .runtime
        .list_metric_descriptors(api::ListMetricDescriptorsRequest {})
        .await
        .unwrap()
        .into_inner()
        .descriptors;
    let keys: HashMap<String, usize> = descriptors
        .iter()
        .map(|d| (d.name.clone(), d.label_keys.len()))
        .collect();
    for name in EXPECTED {
        assert!(keys.contains_key(*name), "{name} is described");
    }

    let mut config = container_config("metered", &f.image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        resources: Some(api::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 1024,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut f.cri, &f.pod, config).await;
    let script = "mkdir -p /var/lib/disk && for i in 1 2 3 4 5 6 7 8 9 10; do \
                  echo hi >> /var/lib/disk/f$i; done; sync";
    let out = exec(&mut f.cri, &id, &["sh", "-c", script], 10)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);

    let all = f
        .cri
        .runtime
        .list_pod_sandbox_metrics(api::ListPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pod_metrics;
    let pod = all.iter().find(|p| p.pod_sandbox_id == f.pod.id).unwrap();
    let container = pod
        .container_metrics
        .iter()
        .find(|c| c.container_id == id)
        .unwrap();
    let metrics: Vec<&api::Metric> = pod.metrics.iter().chain(&container.metrics).collect();
    for m in &metrics {
        assert_eq!(m.label_values.len(), keys[&m.name], "{}: labels", m.name);
    }
    let value = |name: &str| {
        let m = metrics.iter().find(|m| m.name == name);
        m.unwrap_or_else(|| panic!("{name} has a value"))
            .value
            .unwrap()
            .value
    };
    assert_eq!(value("container_spec_memory_limit_bytes"), 64 << 20);
    assert_eq!(value("container_spec_cpu_period"), 100_000);
    assert_eq!(value("container_spec_cpu_shares"), 1024);
    assert_eq!(value("container_processes"), 1, "sleep alone");
    assert!(value("container_threads") >= 1);
    assert!(value("container_file_descriptors") >= 3, "stdio at least");
    assert!(
        value("container_fs_usage_bytes") >= 30,
        "ten files of 3 bytes"
    );
    assert!(value("container_fs_inodes_total") > value("container_fs_inodes_free"));
    assert!(value("container_memory_usage_bytes") > 0);
    assert!(value("container_start_time_seconds") > 1_700_000_000);
    // The pod's own metrics: its network namespace's loopback.
    let lo = pod
        .metrics
        .iter()
        .find(|m| m.name == "container_network_receive_bytes_total")
        .unwrap();
    assert_eq!(lo.label_values.last().unwrap(), "lo");
    assert_eq!(lo.label_values[0], "POD");
    let name_label = &container.metrics[0].label_values;
    assert_eq!(name_label[0], "metered");
    assert_eq!(name_label[3], id);
    remove_pod(&mut f.cri, &f.pod.id).await;
}
