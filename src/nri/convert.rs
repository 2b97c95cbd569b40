//! berth's pod and container records, and a new container's OCI spec, as NRI's `PodSandbox`
//! and `Container` messages; NRI's `LinuxResources` as CRI resources.

use oci_spec::runtime::Spec;
use protobuf::MessageField;

use super::api;
use crate::cri_api as cri;
use crate::runtime::nri_seam::NewContainer;
use crate::runtime::records::{ContainerRecord, ContainerState, SandboxRecord};

pub fn pod(record: &SandboxRecord) -> api::PodSandbox {
    let meta = record.metadata();
    let mut pod = api::PodSandbox::new();
    pod.id = record.id.clone();
    pod.name = meta.name;
    pod.uid = meta.uid;
    pod.namespace = meta.namespace;
    pod.labels = record.config.labels.clone().into_iter().collect();
    pod.annotations = record.config.annotations.clone().into_iter().collect();
    pod.runtime_handler = record.runtime_handler.clone();
    pod.ips = record.ips.clone();
    let mut linux = api::LinuxPodSandbox::new();
    if let Some(l) = &record.config.linux {
        linux.cgroup_parent = l.cgroup_parent.clone();
    }
    pod.linux = MessageField::some(linux);
    pod
}

/// A recorded container, as plugins see it in events and Synchronize.
pub fn container(record: &ContainerRecord) -> api::Container {
    let mut c = api::Container::new();
    c.id = record.id.clone();
    c.pod_sandbox_id = record.sandbox_id.clone();
    c.name = record.metadata().name;
    c.state = protobuf::EnumOrUnknown::new(match record.state {
        ContainerState::Created => api::ContainerState::CONTAINER_CREATED,
        ContainerState::Running => api::ContainerState::CONTAINER_RUNNING,
        ContainerState::Exited => api::ContainerState::CONTAINER_STOPPED,
    });
    c.labels = record.config.labels.clone().into_iter().collect();
    c.annotations = record.config.annotations.clone().into_iter().collect();
    c.args = (record.config.command.iter())
        .chain(&record.config.args)
        .cloned()
        .collect();
    c.env = (record.config.envs.iter())
        .map(|kv| format!("{}={}", kv.key, String::from_utf8_lossy(&kv.value)))
        .collect();
    c.pid = record.pid;
    c.created_at = record.created_at;
    c.started_at = record.started_at;
    if let Some(exit) = &record.exit {
        c.finished_at = exit.finished_at;
        c.exit_code = exit.code;
        c.status_reason = exit.reason.clone();
        c.status_message = exit.message.clone();
    }
    let mut linux = api::LinuxContainer::new();
    linux.cgroups_path = record.cgroup.clone();
    c.linux = MessageField::some(linux);
    c
}

/// A container CreateContainer is making, from its final spec.
pub fn new_container(pod_id: &str, new: NewContainer<'_>, spec: &Spec) -> api::Container {
    let mut c = api::Container::new();
    c.id = new.id.to_string();
    c.pod_sandbox_id = pod_id.to_string();
    c.name = new.config.metadata.clone().unwrap_or_default().name;
    c.state = protobuf::EnumOrUnknown::new(api::ContainerState::CONTAINER_UNKNOWN);
    c.labels = new.config.labels.clone().into_iter().collect();
    c.annotations = spec.annotations().clone().unwrap_or_default();
    if let Some(process) = spec.process() {
        c.args = process.args().clone().unwrap_or_default();
        c.env = process.env().clone().unwrap_or_default();
        c.rlimits = (process.rlimits().iter().flatten())
            .map(|r| {
                let mut l = api::POSIXRlimit::new();
                l.type_ = r.typ().to_string();
                l.hard = r.hard();
                l.soft = r.soft();
                l
            })
            .collect();
    }
    c.mounts = (spec.mounts().iter().flatten())
        .map(|m| {
            let mut mount = api::Mount::new();
            mount.destination = m.destination().to_string_lossy().into_owned();
            mount.type_ = m.typ().clone().unwrap_or_default();
            mount.source = (m.source().as_ref())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            mount.options = m.options().clone().unwrap_or_default();
            mount
        })
        .collect();
    let mut linux = api::LinuxContainer::new();
    if let Some(l) = spec.linux() {
        linux.cgroups_path = (l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(r) = l.resources() {
            linux.resources = MessageField::some(resources_of_spec(r));
        }
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        let mut o = api::OptionalInt::new();
        o.value = i64::from(adj);
        linux.oom_score_adj = MessageField::some(o);
    }
    c.linux = MessageField::some(linux);
    c
}

fn resources_of_spec(r: &oci_spec::runtime::LinuxResources) -> api::LinuxResources {
    let mut out = api::LinuxResources::new();
    if let Some(cpu) = r.cpu() {
        let mut c = api::LinuxCPU::new();
        c.shares = cpu.shares().map(u64_opt).into();
        c.quota = cpu.quota().map(i64_opt).into();
        c.period = cpu.period().map(u64_opt).into();
        c.cpus = cpu.cpus().clone().unwrap_or_default();
        c.mems = cpu.mems().clone().unwrap_or_default();
        out.cpu = MessageField::some(c);
    }
    if let Some(mem) = r.memory() {
        let mut m = api::LinuxMemory::new();
        m.limit = mem.limit().map(i64_opt).into();
        m.swap = mem.swap().map(i64_opt).into();
        out.memory = MessageField::some(m);
    }
    out
}

fn u64_opt(value: u64) -> api::OptionalUInt64 {
    let mut o = api::OptionalUInt64::new();
    o.value = value;
    o
}

fn i64_opt(value: i64) -> api::OptionalInt64 {
    let mut o = api::OptionalInt64::new();
    o.value = value;
    o
}

/// `base` with what `update` sets (CRI resources from an NRI update or adjustment).
pub fn cri_resources(
    base: &cri::LinuxContainerResources,
    update: &api::LinuxResources,
) -> cri::LinuxContainerResources {
    let mut out = base.clone();
    if let Some(cpu) = update.cpu.as_ref() {
        if let Some(s) = cpu.shares.as_ref() {
            out.cpu_shares = s.value as i64;
        }
        if let Some(q) = cpu.quota.as_ref() {
            out.cpu_quota = q.value;
        }
        if let Some(p) = cpu.period.as_ref() {
            out.cpu_period = p.value as i64;
        }
        if !cpu.cpus.is_empty() {
            out.cpuset_cpus = cpu.cpus.clone();
        }
        if !cpu.mems.is_empty() {
            out.cpuset_mems = cpu.mems.clone();
        }
    }
    if let Some(mem) = update.memory.as_ref() {
        if let Some(l) = mem.limit.as_ref() {
            out.memory_limit_in_bytes = l.value;
        }
        if let Some(s) = mem.swap.as_ref() {
            out.memory_swap_limit_in_bytes = s.value;
        }
    }
    for (k, v) in &update.unified {
        out.unified.insert(k.clone(), v.clone());
    }
    out
}

/// NRI resources from CRI ones (what UpdateContainer tells plugins).
pub fn nri_resources(r: &cri::LinuxContainerResources) -> api::LinuxResources {
    let mut out = api::LinuxResources::new();
    let mut c = api::LinuxCPU::new();
    c.shares = MessageField::some(u64_opt(r.cpu_shares.max(0) as u64));
    c.quota = MessageField::some(i64_opt(r.cpu_quota));
    c.period = MessageField::some(u64_opt(r.cpu_period.max(0) as u64));
    c.cpus = r.cpuset_cpus.clone();
    c.mems = r.cpuset_mems.clone();
    out.cpu = MessageField::some(c);
    let mut m = api::LinuxMemory::new();
    m.limit = MessageField::some(i64_opt(r.memory_limit_in_bytes));
    m.swap = MessageField::some(i64_opt(r.memory_swap_limit_in_bytes));
    out.memory = MessageField::some(m);
    out.unified = r.unified.clone().into_iter().collect();
    out
}
