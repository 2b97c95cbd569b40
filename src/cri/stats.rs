//! ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats, from the
//! containers' cgroups and writable layers. A pod's usage is the sum of its containers'; its
//! pressure (PSI) is its own cgroup's, on cgroup v2 only: where the kernel has no pressure file
//! the `psi` and `io` fields stay unset rather than reading as zero.

use super::api;
use crate::cgroup::{Pressure, Psi, PsiLine};
use crate::network::POD_IFNAME;
use crate::runtime::net_dev;
use crate::runtime::records::{ContainerRecord, SandboxRecord};
use crate::runtime::stats::Usage;
use crate::runtime::{Runtime, RuntimeError};

fn u64v(value: u64) -> Option<api::UInt64Value> {
    Some(api::UInt64Value { value })
}

pub fn container(
    runtime: &Runtime,
    req: api::ContainerStatsRequest,
) -> Result<api::ContainerStatsResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    let c = runtime.container_status(&req.container_id)?;
    Ok(api::ContainerStatsResponse {
        stats: Some(to_cri(&c, &runtime.container_usage(&c)?)),
    })
}

pub fn list_containers(
    runtime: &Runtime,
    req: api::ListContainerStatsRequest,
) -> Result<api::ListContainerStatsResponse, RuntimeError> {
    let filter = req.filter.unwrap_or_default();
    let stats = running(runtime)?
        .into_iter()
        .filter(|c| filter.id.is_empty() || c.id.starts_with(&filter.id))
        .filter(|c| {
            filter.pod_sandbox_id.is_empty() || c.sandbox_id.starts_with(&filter.pod_sandbox_id)
        })
        .filter(|c| super::labels_match(&filter.label_selector, &c.config.labels))
        .filter_map(|c| Some(to_cri(&c, &runtime.container_usage(&c).ok()?)))
        .collect();
    Ok(api::ListContainerStatsResponse { stats })
}

pub fn pod(
    runtime: &Runtime,
    req: api::PodSandboxStatsRequest,
) -> Result<api::PodSandboxStatsResponse, RuntimeError> {
    super::record("pod_id", &req.pod_sandbox_id);
    let sandbox = runtime.sandbox_status(&req.pod_sandbox_id)?;
    Ok(api::PodSandboxStatsResponse {
        stats: Some(pod_stats(runtime, &sandbox)?),
    })
}

pub fn list_pods(
    runtime: &Runtime,
    req: api::ListPodSandboxStatsRequest,
) -> Result<api::ListPodSandboxStatsResponse, RuntimeError> {
    let filter = req.filter.unwrap_or_default();
    let mut stats = vec![];
    for sandbox in runtime.list_sandboxes()? {
        if (filter.id.is_empty() || sandbox.id.starts_with(&filter.id))
            && super::labels_match(&filter.label_selector, &sandbox.config.labels)
        {
            stats.push(pod_stats(runtime, &sandbox)?);
        }
    }
    Ok(api::ListPodSandboxStatsResponse { stats })
}

/// Containers that have a process (created or running): exited ones have no usage.
fn running(runtime: &Runtime) -> Result<Vec<ContainerRecord>, RuntimeError> {
    use crate::runtime::records::ContainerState;
    Ok(runtime
        .list_containers()?
        .into_iter()
        .filter(|c| c.state != ContainerState::Exited)
        .collect())
}

fn pod_stats(
    runtime: &Runtime,
    sandbox: &SandboxRecord,
) -> Result<api::PodSandboxStats, RuntimeError> {
    // One sample per container: a second one would skew the CPU rate.
    let sampled: Vec<(ContainerRecord, Usage)> = running(runtime)?
        .into_iter()
        .filter(|c| c.sandbox_id == sandbox.id)
        .filter_map(|c| {
            let usage = runtime.container_usage(&c).ok()?;
            Some((c, usage))
        })
        .collect();
    let processes: u64 = sampled
        .iter()
        .filter_map(|(_, u)| u.cgroup.pids.map(|p| p.current))
        .sum();
    let containers: Vec<api::ContainerStats> = sampled.iter().map(|(c, u)| to_cri(c, u)).collect();
    let at = crate::runtime::records::now_ns();
    let pressure = runtime.pod_pressure(sandbox);
    let sum = |f: &dyn Fn(&api::ContainerStats) -> Option<u64>| {
        containers.iter().filter_map(f).sum::<u64>()
    };
    let cpu = api::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: u64v(sum(&|c| {
            Some(c.cpu.as_ref()?.usage_core_nano_seconds?.value)
        })),
        usage_nano_cores: u64v(sum(&|c| Some(c.cpu.as_ref()?.usage_nano_cores?.value))),
        psi: pressure.cpu.map(psi),
    };
    let memory = api::MemoryUsage {
        timestamp: at,
        working_set_bytes: u64v(sum(&|c| Some(c.memory.as_ref()?.working_set_bytes?.value))),
        available_bytes: None,
        usage_bytes: u64v(sum(&|c| Some(c.memory.as_ref()?.usage_bytes?.value))),
        rss_bytes: u64v(sum(&|c| Some(c.memory.as_ref()?.rss_bytes?.value))),
        page_faults: u64v(sum(&|c| Some(c.memory.as_ref()?.page_faults?.value))),
        major_page_faults: u64v(sum(&|c| Some(c.memory.as_ref()?.major_page_faults?.value))),
        psi: pressure.memory.map(psi),
    };
    Ok(api::PodSandboxStats {
        attributes: Some(api::PodSandboxAttributes {
            id: sandbox.id.clone(),
            metadata: sandbox.config.metadata.clone(),
            labels: sandbox.config.labels.clone(),
            annotations: sandbox.config.annotations.clone(),
        }),
        linux: Some(api::LinuxPodSandboxStats {
            cpu: Some(cpu),
            memory: Some(memory),
            network: network(sandbox, &sampled, at),
            process: Some(api::ProcessUsage {
                timestamp: at,
                process_count: u64v(processes),
            }),
            containers,
            io: io(&pressure, at),
        }),
        windows: None,
    })
}

/// The pod's interface counters, read through one of its running containers (they share the
/// pod's network namespace): the pod interface as the default, every other but loopback beside
/// it. None for a host-network pod (those are the node's) or one with no running container.
fn network(
    sandbox: &SandboxRecord,
    sampled: &[(ContainerRecord, Usage)],
    at: i64,
) -> Option<api::NetworkUsage> {
    let host_network = sandbox
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == api::NamespaceMode::Node as i32);
    if host_network {
        return None;
    }
    let (c, _) = sampled.iter().find(|(c, _)| c.pid != 0)?;
    let to_cri = |i: &net_dev::Interface| api::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: u64v(i.rx_bytes()),
        rx_errors: u64v(i.rx_errors()),
        tx_bytes: u64v(i.tx_bytes()),
        tx_errors: u64v(i.tx_errors()),
    };
    let interfaces = net_dev::interfaces_of(c.pid);
    let default = interfaces.iter().find(|i| i.name == POD_IFNAME)?;
    Some(api::NetworkUsage {
        timestamp: at,
        default_interface: Some(to_cri(default)),
        interfaces: interfaces
            .iter()
            .filter(|i| i.name != POD_IFNAME && i.name != "lo")
            .map(to_cri)
            .collect(),
    })
}

fn to_cri(c: &ContainerRecord, u: &Usage) -> api::ContainerStats {
    api::ContainerStats {
        attributes: Some(api::ContainerAttributes {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
        }),
        cpu: u.cgroup.cpu.map(|cpu| api::CpuUsage {
            timestamp: u.at,
            usage_core_nano_seconds: u64v(cpu.usage_ns),
            usage_nano_cores: u.nano_cores.and_then(u64v),
            psi: u.pressure.cpu.map(psi),
        }),
        memory: u.cgroup.memory.map(|m| api::MemoryUsage {
            timestamp: u.at,
            working_set_bytes: u64v(m.working_set_bytes),
            available_bytes: None,
            usage_bytes: u64v(m.usage_bytes),
            rss_bytes: u64v(m.rss_bytes),
            page_faults: u64v(m.page_faults),
            major_page_faults: u64v(m.major_page_faults),
            psi: u.pressure.memory.map(psi),
        }),
        writable_layer: Some(api::FilesystemUsage {
            timestamp: u.at,
            fs_id: Some(api::FilesystemIdentifier {
                mountpoint: c.rw_dir.display().to_string(),
            }),
            used_bytes: u64v(u.layer_bytes),
            inodes_used: u64v(u.layer_inodes),
        }),
        swap: None,
        io: io(&u.pressure, u.at),
    }
}

/// CRI's IO usage holds nothing but the IO pressure: absent without `io.pressure`.
fn io(p: &Pressure, at: i64) -> Option<api::IoUsage> {
    p.io.map(|io| api::IoUsage {
        timestamp: at,
        psi: Some(psi(io)),
    })
}

/// Kernel PSI (microseconds, hundredths of a percent) in CRI's units (nanoseconds, percent).
fn psi(p: Psi) -> api::PsiStats {
    let data = |l: PsiLine| api::PsiData {
        total: l.total_us.saturating_mul(1000),
        avg10: PsiLine::percent(l.avg10_centi),
        avg60: PsiLine::percent(l.avg60_centi),
        avg300: PsiLine::percent(l.avg300_centi),
    };
    api::PsiStats {
        full: p.full.map(data),
        some: Some(data(p.some)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_is_converted_to_cri_units_and_absent_stays_absent() {
        let line = PsiLine {
            total_us: 7,
            avg10_centi: 1250,
            avg60_centi: 5,
            avg300_centi: 0,
        };
        let cri = psi(Psi {
            some: line,
            full: None,
        });
        let some = cri.some.unwrap();
        assert_eq!(some.total, 7000, "microseconds to nanoseconds");
        assert_eq!((some.avg10, some.avg60, some.avg300), (12.5, 0.05, 0.0));
        assert_eq!(cri.full, None);
        assert_eq!(io(&Pressure::default(), 1), None, "v1: no IO usage at all");
        let p = Pressure {
            io: Some(Psi {
                some: line,
                full: Some(line),
            }),
            ..Default::default()
        };
        let io = io(&p, 5).unwrap();
        assert_eq!(io.timestamp, 5);
        assert_eq!(io.psi.unwrap().full.unwrap().total, 7000);
    }
}
