//! cgroup v1 files: one directory per hierarchy, v1 names and units.
//!
//! Hugepage limits are skipped when no hugetlb hierarchy is mounted: kubelet sends a limit for
//! every page size the host has whether or not the controller is usable, and runc ignores them
//! the same way. Every other limit needs its controller and fails without it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::fs::{Result, read, read_keyed, read_keyed_opt, read_u64, write, write_errno};
use super::group::FREEZE_TIMEOUT;
use super::resources::{
    effective_period, effective_quota, effective_shares, pids_max, valid_page_size,
};
use super::stats::working_set;
use super::{Cgroup, CgroupError, CpuStats, MemoryStats, PidsStats, Resources, Stats};

/// Makes the cgroup's directory in every hierarchy, level by level; new cpuset levels copy
/// their parent's `cpuset.cpus` and `cpuset.mems`. Directories made are pushed onto `made`.
pub(crate) fn create(cg: &Cgroup, made: &mut Vec<PathBuf>) -> Result<()> {
    let cpuset = cg.hierarchy().mount_of("cpuset");
    for mount in cg.hierarchy().v1_mount_dirs() {
        let mut dir = mount.to_path_buf();
        for part in cg.components() {
            let parent = dir.clone();
            dir.push(part);
            mkdir(&dir, made)?;
            if Some(mount) == cpuset {
                inherit_cpuset(&parent, &dir)?;
            }
        }
    }
    Ok(())
}

/// Creates one directory; an existing one is fine and is not recorded as made.
pub(crate) fn mkdir(dir: &Path, made: &mut Vec<PathBuf>) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {
            made.push(dir.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read(&dir.join(file))?.trim().is_empty() {
            let value = read(&parent.join(file))?;
            write(&dir.join(file), value.trim())?;
        }
    }
    Ok(())
}

pub(crate) fn apply(cg: &Cgroup, r: &Resources) -> Result<()> {
    if !r.unified.is_empty() {
        let keys: Vec<&str> = r.unified.keys().map(String::as_str).collect();
        return Err(CgroupError::Unsupported {
            cgroup: cg.path(),
            what: format!(
                "cgroup v2 unified settings on a v1 host ({})",
                keys.join(", ")
            ),
        });
    }
    apply_cpu(cg, r)?;
    if let Some(cpus) = &r.cpuset_cpus {
        write(&dir(cg, "cpuset")?.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = &r.cpuset_mems {
        write(&dir(cg, "cpuset")?.join("cpuset.mems"), mems)?;
    }
    apply_memory(cg, r)?;
    if let Some(limit) = r.pids_limit {
        write(&dir(cg, "pids")?.join("pids.max"), &pids_max(limit))?;
    }
    apply_hugetlb(cg, r)?;
    match &r.devices {
        Some(rules) => super::devices::apply_v1(cg, rules),
        None => Ok(()),
    }
}

fn apply_cpu(cg: &Cgroup, r: &Resources) -> Result<()> {
    let (shares, quota, period) = (effective_shares(r), effective_quota(r), effective_period(r));
    if shares.is_none() && quota.is_none() && period.is_none() {
        return Ok(());
    }
    let cpu = dir(cg, "cpu")?;
    if let Some(shares) = shares {
        write(&cpu.join("cpu.shares"), &shares.to_string())?;
    }
    let quota_file = cpu.join("cpu.cfs_quota_us");
    let mut quota_done = false;
    if let Some(period) = period {
        let period_file = cpu.join("cpu.cfs_period_us");
        match write(&period_file, &period.to_string()) {
            // The old quota may not fit the new period; set the quota first and try again.
            Err(e) if write_errno(&e) == Some(libc::EINVAL) && quota.is_some() => {
                write(&quota_file, &quota.unwrap_or(-1).to_string())?;
                write(&period_file, &period.to_string())?;
                quota_done = true;
            }
            other => other?,
        }
    }
    match quota {
        Some(quota) if !quota_done => write(&quota_file, &quota.to_string()),
        _ => Ok(()),
    }
}

fn apply_memory(cg: &Cgroup, r: &Resources) -> Result<()> {
    if r.memory_limit.is_none() && r.memory_swap.is_none() && r.oom_kill_disable.is_none() {
        return Ok(());
    }
    let memory = dir(cg, "memory")?;
    let limit = r.memory_limit.map(|l| l.max(-1));
    let mut swap = r.memory_swap.map(|s| s.max(-1));
    if let (Some(l), Some(s)) = (limit, swap)
        && l >= 0
        && s >= 0
        && s < l
    {
        return Err(CgroupError::InvalidResources {
            cgroup: cg.path(),
            reason: format!("memory+swap limit {s} is below the memory limit {l}"),
        });
    }
    let memsw = memory.join("memory.memsw.limit_in_bytes");
    if swap.is_some() && !memsw.exists() {
        // Without swap accounting, "no swap beyond the memory limit" is all that can be honoured.
        if swap == Some(-1) || swap == limit {
            swap = None;
        } else {
            return Err(CgroupError::MissingController {
                cgroup: cg.path(),
                controller: "memory swap accounting (memory.memsw.limit_in_bytes)".into(),
            });
        }
    }
    let limit_file = memory.join("memory.limit_in_bytes");
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memsw must stay >= the limit at every step: raise memsw first when the limit
            // write is refused, otherwise lower the limit first.
            match write(&limit_file, &l.to_string()) {
                Err(e) if write_errno(&e) == Some(libc::EINVAL) => {
                    write(&memsw, &s.to_string())?;
                    write(&limit_file, &l.to_string())?;
                }
                other => {
                    other?;
                    write(&memsw, &s.to_string())?;
                }
            }
        }
        (Some(l), None) => write(&limit_file, &l.to_string())?,
        (None, Some(s)) => write(&memsw, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(disable) = r.oom_kill_disable {
        write(
            &memory.join("memory.oom_control"),
            if disable { "1" } else { "0" },
        )?;
    }
    Ok(())
}

fn apply_hugetlb(cg: &Cgroup, r: &Resources) -> Result<()> {
    for (size, _) in &r.hugepage_limits {
        if !valid_page_size(size) {
            return Err(CgroupError::InvalidResources {
                cgroup: cg.path(),
                reason: format!("hugepage size {size:?} is not like 2MB or 1GB"),
            });
        }
    }
    let Some(hugetlb) = cg.v1_dir("hugetlb") else {
        return Ok(());
    };
    for (size, limit) in &r.hugepage_limits {
        let file = hugetlb.join(format!("hugetlb.{size}.limit_in_bytes"));
        write(&file, &limit.to_string())?;
    }
    Ok(())
}

pub(crate) fn stats(cg: &Cgroup) -> Result<Stats> {
    let cpu = match cg.v1_dir("cpuacct") {
        Some(d) => Some(CpuStats {
            usage_ns: read_u64(&d.join("cpuacct.usage"))?,
        }),
        None => None,
    };
    let memory = match cg.v1_dir("memory") {
        Some(d) => Some(memory_stats(&d)?),
        None => None,
    };
    let pids = match cg.v1_dir("pids") {
        Some(d) => Some(PidsStats {
            current: read_u64(&d.join("pids.current"))?,
        }),
        None => None,
    };
    Ok(Stats { cpu, memory, pids })
}

fn memory_stats(dir: &Path) -> Result<MemoryStats> {
    let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
    let stat = read_keyed(&dir.join("memory.stat"))?;
    // The total_* keys include descendants; older or trimmed kernels only have the local ones.
    let get = |key: &str| {
        stat.get(&format!("total_{key}"))
            .or_else(|| stat.get(key))
            .copied()
            .unwrap_or(0)
    };
    Ok(MemoryStats {
        usage_bytes: usage,
        working_set_bytes: working_set(usage, get("inactive_file")),
        rss_bytes: get("rss"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        oom_kills: oom_kills_in(dir)?,
    })
}

/// The `oom_kill` counter of `memory.oom_control` (kernel 4.13+); 0 when the kernel lacks it.
fn oom_kills_in(dir: &Path) -> Result<u64> {
    let control = read_keyed_opt(&dir.join("memory.oom_control"))?;
    Ok(control
        .and_then(|c| c.get("oom_kill").copied())
        .unwrap_or(0))
}

pub(crate) fn oom_kills(cg: &Cgroup) -> Result<u64> {
    match cg.v1_dir("memory") {
        Some(d) => oom_kills_in(&d),
        None => Ok(0),
    }
}

pub(crate) fn set_frozen(cg: &Cgroup, frozen: bool) -> Result<()> {
    let state = dir(cg, "freezer")?.join("freezer.state");
    if !frozen {
        return write(&state, "THAWED");
    }
    write(&state, "FROZEN")?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    while read(&state)?.trim() != "FROZEN" {
        if Instant::now() >= deadline {
            write(&state, "THAWED")?;
            return Err(CgroupError::Timeout {
                cgroup: cg.path(),
                what: "waiting for freezer.state FROZEN",
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// The cgroup's directory in `controller`'s hierarchy, or an error naming the controller.
pub(crate) fn dir(cg: &Cgroup, controller: &str) -> Result<PathBuf> {
    cg.v1_dir(controller)
        .ok_or_else(|| CgroupError::MissingController {
            cgroup: cg.path(),
            controller: controller.to_string(),
        })
}
