//! The samples behind CRI's ListPodSandboxMetrics, named as cAdvisor names them: per container
//! from its cgroup, its processes' descriptors and its writable layer's filesystem; per pod the
//! network counters of its network namespace. Values are integers, as CRI carries them
//! (seconds are whole seconds).

use std::path::Path;

use super::records::{ContainerRecord, ContainerState, SandboxRecord};
use super::{Result, Runtime, RuntimeError};
use crate::cgroup::Cgroup;

/// One value of a metric; `extra` are the values of the metric's own label keys, after the
/// common container labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub name: &'static str,
    pub extra: Vec<String>,
    pub value: u64,
}

fn sample(name: &'static str, value: u64) -> Sample {
    Sample {
        name,
        extra: Vec::new(),
        value,
    }
}

/// The metrics of one pod and of its containers that have a process.
#[derive(Debug)]
pub struct PodMetrics {
    pub sandbox: SandboxRecord,
    pub samples: Vec<Sample>,
    pub containers: Vec<(ContainerRecord, Vec<Sample>)>,
}

const NS: u64 = 1_000_000_000;

impl Runtime {
    /// Metrics of every pod.
    pub fn pod_metrics(&self) -> Result<Vec<PodMetrics>> {
        let containers = self.list_containers()?;
        let mut out = Vec::new();
        for sandbox in self.list_sandboxes()? {
            let mut pod = PodMetrics {
                samples: Vec::new(),
                containers: Vec::new(),
                sandbox,
            };
            for c in containers.iter().filter(|c| c.sandbox_id == pod.sandbox.id) {
                if c.state == ContainerState::Exited {
                    continue;
                }
                // A container may exit while it is read: skip it rather than fail the list.
                if let Ok(samples) = self.container_samples(c) {
                    if pod.samples.is_empty() && c.pid != 0 {
                        pod.samples = network_samples(c.pid);
                    }
                    pod.containers.push((c.clone(), samples));
                }
            }
            out.push(pod);
        }
        Ok(out)
    }

    fn container_samples(&self, c: &ContainerRecord) -> Result<Vec<Sample>> {
        let hierarchy = self
            .cgroups
            .as_ref()
            .ok_or(RuntimeError::NoCgroupHierarchy)?;
        let cgroup = Cgroup::open(hierarchy, &c.cgroup)?;
        let usage = self.container_usage(c)?;
        let detail = cgroup.detailed_stats()?;
        let mut s = Vec::new();
        let cpu = usage.cgroup.cpu.unwrap_or_default();
        s.push(sample(
            "container_cpu_usage_seconds_total",
            cpu.usage_ns / NS,
        ));
        s.push(sample(
            "container_cpu_user_seconds_total",
            detail.cpu_user_ns / NS,
        ));
        s.push(sample(
            "container_cpu_system_seconds_total",
            detail.cpu_system_ns / NS,
        ));
        s.push(sample(
            "container_cpu_cfs_periods_total",
            detail.cfs_periods,
        ));
        s.push(sample(
            "container_cpu_cfs_throttled_periods_total",
            detail.cfs_throttled_periods,
        ));
        s.push(sample(
            "container_cpu_cfs_throttled_seconds_total",
            detail.cfs_throttled_ns / NS,
        ));

        let mem = usage.cgroup.memory.unwrap_or_default();
        s.push(sample("container_memory_usage_bytes", mem.usage_bytes));
        s.push(sample(
            "container_memory_working_set_bytes",
            mem.working_set_bytes,
        ));
        s.push(sample("container_memory_rss", mem.rss_bytes));
        s.push(sample("container_memory_cache", detail.memory_cache));
        s.push(sample(
            "container_memory_mapped_file",
            detail.memory_mapped_file,
        ));
        s.push(sample(
            "container_memory_kernel_usage",
            detail.memory_kernel,
        ));
        s.push(sample(
            "container_memory_max_usage_bytes",
            detail.memory_max_usage,
        ));
        s.push(sample("container_memory_failcnt", detail.memory_failcnt));
        s.push(sample("container_memory_swap", detail.memory_swap));
        s.push(sample("container_oom_events_total", mem.oom_kills));
        for (kind, value) in [
            ("pgfault", mem.page_faults),
            ("pgmajfault", mem.major_page_faults),
        ] {
            for scope in ["container", "hierarchy"] {
                s.push(Sample {
                    name: "container_memory_failures_total",
                    extra: vec![kind.to_string(), scope.to_string()],
                    value,
                });
            }
        }

        let pids = cgroup.pids()?;
        let (fds, sockets) = descriptors(&pids);
        let threads = usage.cgroup.pids.map_or(pids.len() as u64, |p| p.current);
        s.push(sample("container_processes", pids.len() as u64));
        s.push(sample("container_threads", threads));
        s.push(sample(
            "container_threads_max",
            detail.pids_max.unwrap_or(0),
        ));
        s.push(sample("container_file_descriptors", fds));
        s.push(sample("container_sockets", sockets));

        let (device, fs) = filesystem(&c.rw_dir);
        let with_device = |name, value| Sample {
            name,
            extra: vec![device.clone()],
            value,
        };
        s.push(with_device("container_fs_usage_bytes", usage.layer_bytes));
        if let Some(fs) = fs {
            let fragment = fs.fragment_size();
            s.push(with_device(
                "container_fs_limit_bytes",
                fs.blocks() * fragment,
            ));
            s.push(with_device("container_fs_inodes_total", fs.files()));
            s.push(with_device("container_fs_inodes_free", fs.files_free()));
        }

        let resources = c.config.linux.as_ref().and_then(|l| l.resources.as_ref());
        let spec = |v: i64| u64::try_from(v).unwrap_or(0);
        if let Some(r) = resources {
            s.push(sample("container_spec_cpu_period", spec(r.cpu_period)));
            s.push(sample("container_spec_cpu_shares", spec(r.cpu_shares)));
            s.push(sample(
                "container_spec_memory_limit_bytes",
                spec(r.memory_limit_in_bytes),
            ));
            let swap = spec(r.memory_swap_limit_in_bytes);
            s.push(sample("container_spec_memory_swap_limit_bytes", swap));
        }
        s.push(sample(
            "container_start_time_seconds",
            spec(c.started_at) / NS,
        ));
        s.push(sample("container_last_seen", spec(usage.at) / NS));
        Ok(s)
    }
}

/// Open descriptors of `pids`, and how many of them are sockets.
fn descriptors(pids: &[i32]) -> (u64, u64) {
    let (mut fds, mut sockets) = (0, 0);
    for pid in pids {
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            fds += 1;
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            if target.to_string_lossy().starts_with("socket:") {
                sockets += 1;
            }
        }
    }
    (fds, sockets)
}

/// The device (`major:minor`) and statistics of the filesystem holding `dir`.
fn filesystem(dir: &Path) -> (String, Option<nix::sys::statvfs::Statvfs>) {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(dir)
        .map(|m| {
            let dev = m.dev();
            format!("{}:{}", libc::major(dev), libc::minor(dev))
        })
        .unwrap_or_default();
    (device, nix::sys::statvfs::statvfs(dir).ok())
}

/// Network counters of the namespace `pid` lives in, one set per interface.
fn network_samples(pid: u32) -> Vec<Sample> {
    samples_of(&super::net_dev::interfaces_of(pid))
}

/// cAdvisor's eight network series for each interface.
fn samples_of(interfaces: &[super::net_dev::Interface]) -> Vec<Sample> {
    const COLUMNS: [(usize, &str); 8] = [
        (0, "container_network_receive_bytes_total"),
        (1, "container_network_receive_packets_total"),
        (2, "container_network_receive_errors_total"),
        (3, "container_network_receive_packets_dropped_total"),
        (8, "container_network_transmit_bytes_total"),
        (9, "container_network_transmit_packets_total"),
        (10, "container_network_transmit_errors_total"),
        (11, "container_network_transmit_packets_dropped_total"),
    ];
    let mut out = Vec::new();
    for iface in interfaces {
        for (column, name) in COLUMNS {
            out.push(Sample {
                name,
                extra: vec![iface.name.clone()],
                value: iface.column(column),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_gives_eight_counters_per_interface() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
 lo:     100       2    0    0    0     0          0         0      300       4    5    6    0     0       0          0\n";
        let s = samples_of(&super::super::net_dev::parse(dev));
        assert_eq!(s.len(), 8);
        let get = |name: &str| s.iter().find(|x| x.name == name).unwrap();
        assert_eq!(get("container_network_receive_bytes_total").value, 100);
        assert_eq!(get("container_network_receive_packets_total").value, 2);
        assert_eq!(get("container_network_transmit_bytes_total").value, 300);
        assert_eq!(get("container_network_transmit_errors_total").value, 5);
        assert_eq!(
            get("container_network_transmit_packets_dropped_total").value,
            6
        );
        assert_eq!(
            get("container_network_transmit_packets_total").extra,
            ["lo"]
        );
    }
}
