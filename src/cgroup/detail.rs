//! The finer counters behind the CRI metrics (cAdvisor's names): CPU user/system time and CFS
//! throttling, memory cache, mapped files, kernel memory, peak usage, limit hits and swap, and
//! the task limit. Every counter is 0 when this kernel or hierarchy does not offer it.

use std::collections::BTreeMap;
use std::path::Path;

use super::fs::{Result, read_keyed_opt, read_opt, read_u64_opt};
use super::group::Cgroup;
use super::hierarchy::Mode;

/// `USER_HZ`: the unit of cgroup v1's `cpuacct.stat`.
const USER_HZ_NS: u64 = 10_000_000;

/// Counters of one cgroup beyond [`super::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetailedStats {
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// CFS enforcement periods that elapsed, and those in which the group was throttled.
    pub cfs_periods: u64,
    pub cfs_throttled_periods: u64,
    pub cfs_throttled_ns: u64,
    /// Page cache.
    pub memory_cache: u64,
    pub memory_mapped_file: u64,
    pub memory_kernel: u64,
    /// Highest usage seen (0 where the kernel does not track it).
    pub memory_max_usage: u64,
    /// How often usage hit the limit.
    pub memory_failcnt: u64,
    pub memory_swap: u64,
    /// `pids.max`; `None` when unlimited or without the pids controller.
    pub pids_max: Option<u64>,
}

fn keyed(path: &Path) -> Result<BTreeMap<String, u64>> {
    Ok(read_keyed_opt(path)?.unwrap_or_default())
}

fn pids_max(dir: Option<&Path>) -> Result<Option<u64>> {
    let Some(dir) = dir else { return Ok(None) };
    Ok(read_opt(&dir.join("pids.max"))?.and_then(|v| v.trim().parse().ok()))
}

impl Cgroup {
    /// Reads the detailed counters.
    pub fn detailed_stats(&self) -> Result<DetailedStats> {
        match self.hierarchy().mode() {
            Mode::V1 => v1(self),
            Mode::V2 => v2(self),
        }
    }
}

fn v1(cg: &Cgroup) -> Result<DetailedStats> {
    let mut out = DetailedStats::default();
    if let Some(d) = cg.v1_dir("cpuacct") {
        let stat = keyed(&d.join("cpuacct.stat"))?;
        let ticks = |k: &str| stat.get(k).copied().unwrap_or(0).saturating_mul(USER_HZ_NS);
        out.cpu_user_ns = ticks("user");
        out.cpu_system_ns = ticks("system");
    }
    if let Some(d) = cg.v1_dir("cpu") {
        let stat = keyed(&d.join("cpu.stat"))?;
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        out.cfs_periods = get("nr_periods");
        out.cfs_throttled_periods = get("nr_throttled");
        out.cfs_throttled_ns = get("throttled_time");
    }
    if let Some(d) = cg.v1_dir("memory") {
        let stat = keyed(&d.join("memory.stat"))?;
        let get = |k: &str| {
            stat.get(&format!("total_{k}"))
                .or_else(|| stat.get(k))
                .copied()
                .unwrap_or(0)
        };
        let file = |name: &str| read_u64_opt(&d.join(name)).map(Option::unwrap_or_default);
        out.memory_cache = get("cache");
        out.memory_mapped_file = get("mapped_file");
        out.memory_swap = get("swap");
        out.memory_kernel = file("memory.kmem.usage_in_bytes")?;
        out.memory_max_usage = file("memory.max_usage_in_bytes")?;
        out.memory_failcnt = file("memory.failcnt")?;
    }
    out.pids_max = pids_max(cg.v1_dir("pids").as_deref())?;
    Ok(out)
}

fn v2(cg: &Cgroup) -> Result<DetailedStats> {
    let dir = cg.v2_dir();
    let cpu = keyed(&dir.join("cpu.stat"))?;
    let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
    let memory = keyed(&dir.join("memory.stat"))?;
    let mem = |k: &str| memory.get(k).copied().unwrap_or(0);
    let events = keyed(&dir.join("memory.events"))?;
    let file = |name: &str| read_u64_opt(&dir.join(name)).map(Option::unwrap_or_default);
    Ok(DetailedStats {
        cpu_user_ns: get("user_usec").saturating_mul(1000),
        cpu_system_ns: get("system_usec").saturating_mul(1000),
        cfs_periods: get("nr_periods"),
        cfs_throttled_periods: get("nr_throttled"),
        cfs_throttled_ns: get("throttled_usec").saturating_mul(1000),
        memory_cache: mem("file"),
        memory_mapped_file: mem("file_mapped"),
        memory_kernel: mem("kernel"),
        memory_max_usage: file("memory.peak")?,
        memory_failcnt: events.get("max").copied().unwrap_or(0),
        memory_swap: file("memory.swap.current")?,
        pids_max: pids_max(Some(&dir))?,
    })
}
