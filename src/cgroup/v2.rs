//! cgroup v2 files: one directory, v2 names, and the conversions from v1/OCI units.
//!
//! A limit whose controller is not enabled in the cgroup (its control file is missing) is an
//! error naming the controller, except hugepage limits when the hierarchy offers no hugetlb
//! controller at all (kubelet sends them for every host page size; see `v1.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fs::{Result, read, read_keyed, read_keyed_opt, read_u64_opt, write};
use super::group::FREEZE_TIMEOUT;
use super::resources::{
    effective_period, effective_quota, effective_shares, pids_max, shares_to_weight, v2_bytes,
    v2_swap_max, valid_page_size, valid_unified_key,
};
use super::stats::working_set;
use super::v1::mkdir;
use super::{Cgroup, CgroupError, CpuStats, MemoryStats, PidsStats, Resources, Stats};

/// Makes the cgroup's directory level by level, enabling every controller the root offers in
/// each ancestor's `cgroup.subtree_control` before making the level below it.
pub(crate) fn create(cg: &Cgroup, made: &mut Vec<PathBuf>) -> Result<()> {
    let available = cg.hierarchy().v2_root_controllers()?;
    let mut dir = cg.hierarchy().root().to_path_buf();
    for part in cg.components() {
        enable_controllers(&dir, &available)?;
        dir.push(part);
        mkdir(&dir, made)?;
    }
    Ok(())
}

/// Enables hugetlb in each ancestor of `cg` when the limits `r` need it: systemd (252) enables in
/// a slice only the controllers it manages, and hugetlb is not one of them, so a delegated scope
/// has no hugetlb files until its ancestors enable it (kubelet sends hugepage limits to every
/// container). A no-op when the root offers no hugetlb (`apply` then skips those limits).
pub(crate) fn enable_hugetlb(cg: &Cgroup, r: &Resources) -> Result<()> {
    let available = cg.hierarchy().v2_root_controllers()?;
    if r.hugepage_limits.is_empty() || !available.contains("hugetlb") {
        return Ok(());
    }
    let wanted = BTreeSet::from(["hugetlb".to_string()]);
    let mut dir = cg.hierarchy().root().to_path_buf();
    for part in cg.components() {
        enable_controllers(&dir, &wanted)?;
        dir.push(part);
    }
    Ok(())
}

/// Writes `+name` for each wanted controller not yet enabled, in one write.
fn enable_controllers(dir: &Path, wanted: &BTreeSet<String>) -> Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = read(&control)?;
    let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.contains(c.as_str()))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(&control, &missing.join(" "))
}

pub(crate) fn apply(cg: &Cgroup, r: &Resources) -> Result<()> {
    let dir = cg.v2_dir();
    let invalid = |reason: String| CgroupError::InvalidResources {
        cgroup: cg.path(),
        reason,
    };
    if r.oom_kill_disable == Some(true) {
        return Err(CgroupError::Unsupported {
            cgroup: cg.path(),
            what: "disabling the OOM killer on cgroup v2".into(),
        });
    }
    let swap = v2_swap_max(r.memory_limit, r.memory_swap).map_err(invalid)?;
    if let Some((size, _)) = r.hugepage_limits.iter().find(|(s, _)| !valid_page_size(s)) {
        return Err(invalid(format!(
            "hugepage size {size:?} is not like 2MB or 1GB"
        )));
    }
    if let Some(key) = r.unified.keys().find(|k| !valid_unified_key(k)) {
        return Err(invalid(format!(
            "unified key {key:?} is not a control file name"
        )));
    }

    if let Some(shares) = effective_shares(r) {
        set(
            cg,
            &dir,
            "cpu",
            "cpu.weight",
            &shares_to_weight(shares).to_string(),
        )?;
    }
    apply_cpu_max(cg, &dir, r)?;
    if let Some(cpus) = &r.cpuset_cpus {
        set(cg, &dir, "cpuset", "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = &r.cpuset_mems {
        set(cg, &dir, "cpuset", "cpuset.mems", mems)?;
    }
    if let Some(limit) = r.memory_limit {
        set(cg, &dir, "memory", "memory.max", &v2_bytes(limit))?;
    }
    if let Some(swap) = swap {
        let file = dir.join("memory.swap.max");
        // Without swap accounting there is no swap to allow; "none" and "max" both hold.
        if file.exists() || (swap != "0" && swap != "max") {
            set(cg, &dir, "memory", "memory.swap.max", &swap)?;
        }
    }
    if let Some(limit) = r.pids_limit {
        set(cg, &dir, "pids", "pids.max", &pids_max(limit))?;
    }
    if !r.hugepage_limits.is_empty() && cg.hierarchy().v2_root_controllers()?.contains("hugetlb") {
        for (size, limit) in &r.hugepage_limits {
            let file = format!("hugetlb.{size}.max");
            set(cg, &dir, "hugetlb", &file, &limit.to_string())?;
        }
    }
    for (key, value) in &r.unified {
        let controller = key.split('.').next().unwrap_or(key);
        set(cg, &dir, controller, key, value)?;
    }
    match &r.devices {
        Some(rules) => super::device_bpf::apply_v2(cg, rules),
        None => Ok(()),
    }
}

/// `cpu.max` is "quota period" with `max` for no quota; a lone part keeps the other as it is.
fn apply_cpu_max(cg: &Cgroup, dir: &Path, r: &Resources) -> Result<()> {
    let quota = effective_quota(r).map(|q| {
        if q < 0 {
            "max".to_string()
        } else {
            q.to_string()
        }
    });
    let value = match (quota, effective_period(r)) {
        (None, None) => return Ok(()),
        (Some(q), Some(p)) => format!("{q} {p}"),
        (Some(q), None) => q,
        (None, Some(p)) => {
            let current = read(&dir.join("cpu.max"))?;
            let q = current
                .split_whitespace()
                .next()
                .unwrap_or("max")
                .to_string();
            format!("{q} {p}")
        }
    };
    set(cg, dir, "cpu", "cpu.max", &value)
}

/// Writes one control file, or names the controller when the file does not exist.
fn set(cg: &Cgroup, dir: &Path, controller: &str, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(CgroupError::MissingController {
            cgroup: cg.path(),
            controller: format!("{controller} (no {file})"),
        });
    }
    write(&path, value)
}

pub(crate) fn stats(cg: &Cgroup) -> Result<Stats> {
    let dir = cg.v2_dir();
    let cpu = read_keyed_opt(&dir.join("cpu.stat"))?.map(|s| CpuStats {
        usage_ns: s
            .get("usage_usec")
            .copied()
            .unwrap_or(0)
            .saturating_mul(1000),
    });
    let memory = match read_u64_opt(&dir.join("memory.current"))? {
        Some(usage) => {
            let stat = read_keyed(&dir.join("memory.stat"))?;
            let get = |key: &str| stat.get(key).copied().unwrap_or(0);
            Some(MemoryStats {
                usage_bytes: usage,
                working_set_bytes: working_set(usage, get("inactive_file")),
                rss_bytes: get("anon"),
                page_faults: get("pgfault"),
                major_page_faults: get("pgmajfault"),
                oom_kills: oom_kills(cg)?,
            })
        }
        None => None,
    };
    let pids = read_u64_opt(&dir.join("pids.current"))?.map(|current| PidsStats { current });
    Ok(Stats { cpu, memory, pids })
}

/// The `oom_kill` counter of `memory.events`; 0 without the memory controller.
pub(crate) fn oom_kills(cg: &Cgroup) -> Result<u64> {
    let events = read_keyed_opt(&cg.v2_dir().join("memory.events"))?;
    Ok(events.and_then(|e| e.get("oom_kill").copied()).unwrap_or(0))
}

/// Writes `cgroup.freeze` and waits until `cgroup.events` reports the new state.
pub(crate) fn set_frozen(cg: &Cgroup, frozen: bool) -> Result<()> {
    let dir = cg.v2_dir();
    let want = u64::from(frozen);
    write(&dir.join("cgroup.freeze"), &want.to_string())?;
    let events = dir.join("cgroup.events");
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    while read_keyed(&events)?.get("frozen").copied() != Some(want) {
        if Instant::now() >= deadline {
            if frozen {
                write(&dir.join("cgroup.freeze"), "0")?;
            }
            return Err(CgroupError::Timeout {
                cgroup: cg.path(),
                what: "waiting for cgroup.events to report the freezer state",
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
