//! ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor-named metrics (what kubelet's CRI
//! stats provider exposes on /metrics/cadvisor) from [`crate::runtime::metrics`]. Every metric
//! carries the labels `container`, `id`, `image`, `name`, `namespace`, `pod`, then its own.

use super::api;
use crate::runtime::metrics::Sample;
use crate::runtime::records::{ContainerRecord, SandboxRecord, now_ns};
use crate::runtime::{Runtime, RuntimeError};

const COMMON_LABELS: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

use api::MetricType::{Counter, Gauge};

/// (name, help, type, label keys after the common ones).
const DESCRIPTORS: &[(&str, &str, api::MetricType, &[&str])] = &[
    (
        "container_cpu_usage_seconds_total",
        "Cumulative CPU time consumed, in seconds.",
        Counter,
        &[],
    ),
    (
        "container_cpu_user_seconds_total",
        "Cumulative user CPU time consumed, in seconds.",
        Counter,
        &[],
    ),
    (
        "container_cpu_system_seconds_total",
        "Cumulative system CPU time consumed, in seconds.",
        Counter,
        &[],
    ),
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed CFS enforcement periods.",
        Counter,
        &[],
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled CFS periods.",
        Counter,
        &[],
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "Total time the container was throttled, in seconds.",
        Counter,
        &[],
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage, page cache included, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set (usage minus inactive file cache), in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_rss",
        "Size of anonymous memory (RSS), in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_cache",
        "Page cache memory, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_mapped_file",
        "Size of memory-mapped files, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_kernel_usage",
        "Kernel memory charged to the container, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_memory_failcnt",
        "Number of times memory usage hit its limit.",
        Counter,
        &[],
    ),
    ("container_memory_swap", "Swap usage, in bytes.", Gauge, &[]),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures (page faults).",
        Counter,
        &["failure_type", "scope"],
    ),
    (
        "container_oom_events_total",
        "Count of out-of-memory kills in the container.",
        Counter,
        &[],
    ),
    (
        "container_processes",
        "Number of processes running inside the container.",
        Gauge,
        &[],
    ),
    (
        "container_threads",
        "Number of threads running inside the container.",
        Gauge,
        &[],
    ),
    (
        "container_threads_max",
        "Maximum number of threads allowed (0: unlimited).",
        Gauge,
        &[],
    ),
    (
        "container_file_descriptors",
        "Number of open file descriptors of the container's processes.",
        Gauge,
        &[],
    ),
    (
        "container_sockets",
        "Number of open sockets of the container's processes.",
        Gauge,
        &[],
    ),
    (
        "container_fs_usage_bytes",
        "Bytes used by the container's writable layer.",
        Gauge,
        &["device"],
    ),
    (
        "container_fs_limit_bytes",
        "Size of the filesystem holding the writable layer, in bytes.",
        Gauge,
        &["device"],
    ),
    (
        "container_fs_inodes_total",
        "Inodes of the filesystem holding the writable layer.",
        Gauge,
        &["device"],
    ),
    (
        "container_fs_inodes_free",
        "Free inodes of the filesystem holding the writable layer.",
        Gauge,
        &["device"],
    ),
    (
        "container_fs_reads_bytes_total",
        "Cumulative bytes read (not collected by berth).",
        Counter,
        &["device"],
    ),
    (
        "container_fs_reads_total",
        "Cumulative reads completed (not collected by berth).",
        Counter,
        &["device"],
    ),
    (
        "container_fs_writes_bytes_total",
        "Cumulative bytes written (not collected by berth).",
        Counter,
        &["device"],
    ),
    (
        "container_fs_writes_total",
        "Cumulative writes completed (not collected by berth).",
        Counter,
        &["device"],
    ),
    (
        "container_blkio_device_usage_total",
        "Block I/O by device and operation (not collected by berth).",
        Counter,
        &["device", "major", "minor", "operation"],
    ),
    (
        "container_spec_cpu_period",
        "CPU CFS period requested.",
        Gauge,
        &[],
    ),
    (
        "container_spec_cpu_shares",
        "CPU shares requested.",
        Gauge,
        &[],
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit requested, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_spec_memory_swap_limit_bytes",
        "Memory plus swap limit requested, in bytes.",
        Gauge,
        &[],
    ),
    (
        "container_start_time_seconds",
        "Start time of the container since the Unix epoch, in seconds.",
        Gauge,
        &[],
    ),
    (
        "container_last_seen",
        "Last time the container was seen by the runtime, in Unix seconds.",
        Gauge,
        &[],
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative bytes received.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative packets received.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative errors while receiving.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative packets dropped while receiving.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative bytes transmitted.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative packets transmitted.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative errors while transmitting.",
        Counter,
        &["interface"],
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative packets dropped while transmitting.",
        Counter,
        &["interface"],
    ),
];

pub fn descriptors() -> api::ListMetricDescriptorsResponse {
    let descriptors = DESCRIPTORS
        .iter()
        .map(|(name, help, _, extra)| api::MetricDescriptor {
            name: name.to_string(),
            help: help.to_string(),
            label_keys: COMMON_LABELS
                .iter()
                .chain(*extra)
                .map(|k| k.to_string())
                .collect(),
        })
        .collect();
    api::ListMetricDescriptorsResponse { descriptors }
}

pub fn list(runtime: &Runtime) -> Result<api::ListPodSandboxMetricsResponse, RuntimeError> {
    let at = now_ns();
    let pod_metrics = runtime
        .pod_metrics()?
        .into_iter()
        .map(|pod| {
            let pod_labels = labels(&pod.sandbox, None);
            api::PodSandboxMetrics {
                pod_sandbox_id: pod.sandbox.id.clone(),
                metrics: metrics(&pod.samples, &pod_labels, at),
                container_metrics: pod
                    .containers
                    .iter()
                    .map(|(c, samples)| api::ContainerMetrics {
                        container_id: c.id.clone(),
                        metrics: metrics(samples, &labels(&pod.sandbox, Some(c)), at),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(api::ListPodSandboxMetricsResponse { pod_metrics })
}

/// The common label values, as cAdvisor fills them: `container` the container's name, `id` its
/// cgroup, `name` its runtime id. A pod's own metrics are labelled as its sandbox: container
/// `POD`, the pod's cgroup parent, the sandbox id.
fn labels(sandbox: &SandboxRecord, container: Option<&ContainerRecord>) -> Vec<String> {
    let pod = sandbox.metadata();
    let (container_name, cgroup, image, id) = match container {
        Some(c) => (
            c.metadata().name,
            c.cgroup.clone(),
            c.image_name.clone(),
            c.id.clone(),
        ),
        None => {
            let parent = sandbox
                .config
                .linux
                .as_ref()
                .map(|l| l.cgroup_parent.clone());
            let parent = parent.unwrap_or_default();
            ("POD".to_string(), parent, String::new(), sandbox.id.clone())
        }
    };
    vec![container_name, cgroup, image, id, pod.namespace, pod.name]
}

fn metrics(samples: &[Sample], common: &[String], at: i64) -> Vec<api::Metric> {
    samples
        .iter()
        .map(|s| {
            let metric_type = DESCRIPTORS
                .iter()
                .find(|d| d.0 == s.name)
                .map_or(Gauge, |d| d.2);
            api::Metric {
                name: s.name.to_string(),
                timestamp: at,
                metric_type: metric_type as i32,
                label_values: common.iter().chain(&s.extra).cloned().collect(),
                value: Some(api::UInt64Value { value: s.value }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_name_has_a_descriptor_with_matching_labels() {
        let names: Vec<&str> = DESCRIPTORS.iter().map(|d| d.0).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "no duplicates");
        let d = descriptors();
        let fs = d
            .descriptors
            .iter()
            .find(|d| d.name == "container_fs_usage_bytes");
        assert_eq!(fs.unwrap().label_keys.len(), COMMON_LABELS.len() + 1);
        assert!(d.descriptors.iter().all(|d| !d.help.is_empty()));
    }
}
